use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Json, Router, routing::get};
use rapport_core::company::{CompanyLink, CompanyLinkDraft, CompanyLinkPatch};
use rapport_store::LinkFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{created, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{CreateBody, JsonBody, Params, parse_id};

list_of!(LinkList, CompanyLink);

pub fn routes() -> Router<AppState> {
    Router::new().route("/links", get(list).post(create)).route("/links/{id}", get(read).patch(update).delete(remove))
}

/// Query of `GET /links`. Every given filter must hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `created_at` (default); `-` prefix for descending.
    sort: Option<String>,
    /// Links of this contact.
    contact_id: Option<Uuid>,
    /// Links to this company.
    company_id: Option<Uuid>,
}

/// List contact–company links
#[utoipa::path(get, path = "/api/v1/links", tag = "links", params(ListParams),
    responses((status = 200, body = LinkList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<LinkList>> {
    let filter = LinkFilter { contact_id: p.contact_id, company_id: p.company_id };
    Ok(Json(s.store.list_links(filter, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

/// Create a link
#[utoipa::path(post, path = "/api/v1/links", tag = "links", request_body = CompanyLinkDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
    responses((status = 201, body = CompanyLink), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(State(s): State<AppState>, c: Caller, body: CreateBody<CompanyLinkDraft>) -> ApiResult<Response> {
    c.can_write()?;
    let idem = body.idempotency.map(|i| i.for_key(c.key_id()));
    Ok(created(s.store.create_link(body.value, idem).await?))
}

/// Get a link
#[utoipa::path(get, path = "/api/v1/links/{id}", tag = "links", params(("id" = Uuid, Path)),
    responses((status = 200, body = CompanyLink), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<CompanyLink>> {
    Ok(Json(s.store.get_link(parse_id(&id, "link")?).await?))
}

/// Update a link
#[utoipa::path(patch, path = "/api/v1/links/{id}", tag = "links", params(("id" = Uuid, Path)), request_body = CompanyLinkPatch,
    responses((status = 200, body = CompanyLink), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<CompanyLinkPatch>,
) -> ApiResult<Json<CompanyLink>> {
    c.can_write()?;
    Ok(Json(s.store.update_link(parse_id(&id, "link")?, patch).await?))
}

/// Delete a link
///
/// The contact and the company stay.
#[utoipa::path(delete, path = "/api/v1/links/{id}", tag = "links", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.can_write()?;
    s.store.delete_link(parse_id(&id, "link")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
