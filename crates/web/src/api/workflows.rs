//! Workflows: automation documents, versioned, switched on and off. The format is in
//! docs/automation.md.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rapport_core::workflow::{Workflow, WorkflowDraft};
use rapport_store::{StoreError, WorkflowFilter};
use serde::Deserialize;
use serde_json::Value;

use super::page_request;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{CreateBody, JsonBody, Params, parse_id};

/// A page of workflows.
#[derive(serde::Serialize)]
pub struct WorkflowList {
    pub data: Vec<Workflow>,
    pub next_cursor: Option<String>,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/workflows", get(list).post(create))
        .route("/workflows/{id}", get(read).patch(update).delete(remove))
        .route("/workflows/{id}/enable", post(enable))
        .route("/workflows/{id}/disable", post(disable))
        .route("/workflows/{id}/stats", get(stats))
}

/// An invalid workflow is a bad request (400) whose errors name the path of each bad part,
/// such as `steps[1].wait`.
fn invalid_workflow(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(v) => ApiError::BadRequest { detail: format!("the workflow is not valid: {v}"), errors: v.errors },
        other => other.into(),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `name` (default), `created_at` or `updated_at`; `-` prefix for descending.
    sort: Option<String>,
    /// Only workflows that are switched on (`true`) or off (`false`).
    enabled: Option<bool>,
}

/// List workflows
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(ListParams),
    responses((status = 200, description = "`{data: [workflow], next_cursor}`", body = Object), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<WorkflowList>> {
    let page = s
        .store
        .list_workflows(WorkflowFilter { enabled: p.enabled }, page_request(p.limit, p.cursor, p.sort))
        .await
        .map_err(ApiError::query)?;
    Ok(Json(WorkflowList { data: page.data, next_cursor: page.next_cursor }))
}

/// Create a workflow
///
/// Stored switched off, as version 1; `POST …/enable` switches it on. The answer is the
/// canonical document with `id`, `enabled` and `version`.
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body = WorkflowDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
    responses((status = 201, body = Object), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(State(s): State<AppState>, caller: Caller, body: CreateBody<Value>) -> ApiResult<axum::response::Response> {
    caller.can_manage_automation()?;
    let idem = body.idempotency.map(|i| i.for_key(caller.key_id()));
    let created = s.store.create_workflow(body.value, caller.user_id(), idem).await.map_err(invalid_workflow)?;
    Ok(crate::api::created(created))
}

/// Get a workflow
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<Workflow>> {
    Ok(Json(s.store.get_workflow(parse_id(&id, "workflow")?).await?))
}

/// Change a workflow
///
/// Each top-level key sent replaces the current one (`null` drops `conditions`, `exit_when` or
/// `reentry`); the whole result is checked again. A real change makes a new version: runs in
/// flight keep the version they started on.
#[utoipa::path(patch, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = Uuid, Path)), request_body = WorkflowDraft,
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<Value>,
) -> ApiResult<Json<Workflow>> {
    caller.can_manage_automation()?;
    let id = parse_id(&id, "workflow")?;
    Ok(Json(s.store.update_workflow(id, patch, caller.user_id()).await.map_err(invalid_workflow)?))
}

/// Delete a workflow
#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.can_manage_automation()?;
    s.store.delete_workflow(parse_id(&id, "workflow")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Switch a workflow on
///
/// Checks again that the segments, users and workflows it names exist.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/enable", tag = "workflows", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn enable(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Workflow>> {
    caller.can_manage_automation()?;
    Ok(Json(s.store.set_workflow_enabled(parse_id(&id, "workflow")?, true).await.map_err(invalid_workflow)?))
}

/// Switch a workflow off
#[utoipa::path(post, path = "/api/v1/workflows/{id}/disable", tag = "workflows", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn disable(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Workflow>> {
    caller.can_manage_automation()?;
    Ok(Json(s.store.set_workflow_enabled(parse_id(&id, "workflow")?, false).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Messages queued in the last this many days, 1–3650 (default 90).
    days: Option<u32>,
    /// An order within this many days after a message counts as a conversion, 1–365 (default 7).
    conversion_days: Option<u16>,
}

/// A workflow's message statistics
///
/// Per `send_message` step: what became of its messages (sent, delivered, bounced, opened,
/// clicked, replied, unsubscribed), how many runs the guards blocked there, how many were held
/// out (the workflow's `holdout_percent`), and conversions — people who ordered within
/// `conversion_days` of the message — against the holdout over the same window, with revenue
/// in the base currency.
#[utoipa::path(get, path = "/api/v1/workflows/{id}/stats", tag = "workflows", params(("id" = Uuid, Path), StatsParams),
    responses((status = 200, body = rapport_store::automation::WorkflowMessageStats), (status = 400, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn stats(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
    Params(p): Params<StatsParams>,
) -> ApiResult<Json<rapport_store::automation::WorkflowMessageStats>> {
    let id = parse_id(&id, "workflow")?;
    let days = p.days.unwrap_or(90);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::bad_field("days", "must be from 1 to 3650"));
    }
    let conversion_days = p.conversion_days.unwrap_or(7);
    if !(1..=365).contains(&conversion_days) {
        return Err(ApiError::bad_field("conversion_days", "must be from 1 to 365"));
    }
    Ok(Json(s.store.workflow_message_stats(id, days, conversion_days).await?))
}
