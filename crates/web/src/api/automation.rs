//! What automation did and will do: a contact's runs, the queue of nudges due in the next
//! days, manual starts, simulations, notifications and webhook deliveries.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rapport_store::automation::{
    ContactAutomation, ManualStart, Notification, PointsAccount, Simulation, UpcomingItem, WebhookDelivery,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Params, parse_id};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/contacts/{id}/automation", get(contact_automation))
        .route("/contacts/{id}/points", get(points))
        .route("/automation/upcoming", get(upcoming))
        .route("/workflows/{id}/start", post(start))
        .route("/workflows/{id}/simulate", post(simulate))
        .route("/notifications", get(notifications))
        .route("/notifications/{id}/read", post(read_notification))
        .route("/webhooks/deliveries", get(deliveries))
}

/// A contact's automation
///
/// Every run of a workflow for this person (newest first, at most 50): what started it, each
/// step it took with its outcome (done, blocked and why, deferred, failed), what it will do next
/// and when; and the date and inactivity triggers scheduled for them.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/automation", tag = "automation", params(("id" = Uuid, Path)),
    responses((status = 200, body = ContactAutomation), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn contact_automation(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ContactAutomation>> {
    Ok(Json(s.store.contact_automation(parse_id(&id, "contact")?).await?))
}

/// A contact's points
///
/// The balance and the latest 100 entries of the points ledger (`award_points` steps), with the
/// coupon handed out and the run that awarded them.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/points", tag = "automation", params(("id" = Uuid, Path)),
    responses((status = 200, body = PointsAccount), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn points(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<PointsAccount>> {
    Ok(Json(s.store.points_account(parse_id(&id, "contact")?).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UpcomingParams {
    /// How many days ahead, 1–90 (default 7).
    days: Option<u32>,
    /// At most this many items, 1–1000 (default 200).
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UpcomingList {
    pub data: Vec<UpcomingItem>,
}

/// Upcoming nudges
///
/// Everything automation will do in the next days across all contacts, soonest first: the next
/// step of each run in flight and each date or inactivity trigger about to fire.
#[utoipa::path(get, path = "/api/v1/automation/upcoming", tag = "automation", params(UpcomingParams),
    responses((status = 200, body = UpcomingList), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn upcoming(State(s): State<AppState>, _c: Caller, Params(p): Params<UpcomingParams>) -> ApiResult<Json<UpcomingList>> {
    let days = p.days.unwrap_or(7);
    if !(1..=90).contains(&days) {
        return Err(ApiError::bad_field("days", "must be between 1 and 90"));
    }
    let limit = p.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_field("limit", "must be between 1 and 1000"));
    }
    Ok(Json(UpcomingList { data: s.store.upcoming_automation(days, limit as usize).await? }))
}

/// Who a manual start is for: exactly one of the two.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    contact_id: Option<Uuid>,
    /// Every current member of this segment.
    segment_id: Option<Uuid>,
}

/// Start a workflow by hand
///
/// For one contact or every member of a segment, now. The workflow must be switched on; its
/// re-entry rule and conditions apply as to any trigger.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/start", tag = "automation", params(("id" = Uuid, Path)),
    request_body = StartRequest,
    responses((status = 200, body = ManualStart), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn start(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<StartRequest>,
) -> ApiResult<Json<ManualStart>> {
    caller.can_write()?;
    let id = parse_id(&id, "workflow")?;
    let by = caller.user_id().map(|u| u.to_string());
    let report = s.store.start_workflow_manually(id, r.contact_id, r.segment_id, by).await?;
    s.automation_wake.notify_one();
    Ok(Json(report))
}

/// The period to replay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// Start of the period (RFC 3339).
    from: String,
    /// End of the period (RFC 3339), at most three years after `from`.
    to: String,
}

fn time_field(raw: &str, field: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.to_utc())
        .map_err(|_| ApiError::bad_field(field, "must be an RFC 3339 time such as 2026-01-01T00:00:00Z"))
}

/// Try a workflow on past data
///
/// Replays the workflow's trigger over a past period of real events and data and reports how
/// many people it would have reached, how many times each action would have run, and a sample
/// — without changing anything. Works whether the workflow is on or off.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/simulate", tag = "automation", params(("id" = Uuid, Path)),
    request_body = SimulateRequest,
    responses((status = 200, body = Simulation), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn simulate(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<SimulateRequest>,
) -> ApiResult<Json<Simulation>> {
    let id = parse_id(&id, "workflow")?;
    let (from, to) = (time_field(&r.from, "from")?, time_field(&r.to, "to")?);
    Ok(Json(s.store.simulate_workflow(id, from, to).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// Only those not yet read.
    unread: Option<bool>,
    /// 1–200 (default 50).
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NotificationList {
    pub data: Vec<Notification>,
}

fn me(c: &Caller) -> Result<Uuid, ApiError> {
    c.user_id().ok_or_else(|| ApiError::Forbidden("notifications belong to users; use a key that belongs to one".into()))
}

/// Your notifications
///
/// Messages automation sent to the user the key belongs to (`notify` steps), newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "automation", params(NotificationParams),
    responses((status = 200, body = NotificationList), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn notifications(
    State(s): State<AppState>,
    caller: Caller,
    Params(p): Params<NotificationParams>,
) -> ApiResult<Json<NotificationList>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_field("limit", "must be between 1 and 200"));
    }
    Ok(Json(NotificationList {
        data: s.store.list_notifications(me(&caller)?, p.unread.unwrap_or(false), limit as usize).await?,
    }))
}

/// Mark a notification read
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "automation", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read_notification(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.store.mark_notification_read(me(&caller)?, parse_id(&id, "notification")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// 1–500 (default 100).
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub data: Vec<WebhookDelivery>,
}

/// Webhook deliveries
///
/// Calls made by `webhook` steps, newest first, with attempts and the last error. Managers only.
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "automation", params(DeliveryParams),
    responses((status = 200, body = DeliveryList), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(s): State<AppState>,
    caller: Caller,
    Params(p): Params<DeliveryParams>,
) -> ApiResult<Json<DeliveryList>> {
    caller.can_manage_automation()?;
    if let Some(st) = &p.status
        && !["pending", "delivered", "failed"].contains(&st.as_str())
    {
        return Err(ApiError::bad_field("status", "must be pending, delivered or failed"));
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_field("limit", "must be between 1 and 500"));
    }
    Ok(Json(DeliveryList { data: s.store.list_webhook_deliveries(p.status, limit as usize).await? }))
}
