//! Campaigns: a template sent to a segment, now or at a set time (optionally at that local time
//! in each contact's zone), with a holdout to measure it against, exclusion segments, a test
//! send, and pause, resume and cancel. Sending goes through the message outbox.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rapport_core::campaign::{Campaign, CampaignCommand, CampaignDraft, CampaignInput, CampaignStatus};
use rapport_core::email::EmailAddress;
use rapport_store::campaigns::{CampaignStats, TestSend};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Params, parse_id};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/campaigns", get(list).post(create))
        .route("/campaigns/{id}", get(read).patch(update).delete(remove))
        .route("/campaigns/{id}/send", post(send))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/cancel", post(cancel))
        .route("/campaigns/{id}/test", post(test_send))
        .route("/campaigns/{id}/stats", get(stats))
}

list_of!(CampaignList, Campaign);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    limit: Option<u32>,
    cursor: Option<String>,
    /// `-created_at` (default), `name`, `updated_at`; `-` for descending.
    sort: Option<String>,
    /// Only campaigns in this state: draft, scheduled, sending, paused, cancelled, finished.
    status: Option<String>,
}

/// List campaigns
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", params(ListParams),
    responses((status = 200, body = CampaignList), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<CampaignList>> {
    let status = match p.status.as_deref() {
        Some(raw) => Some(CampaignStatus::parse(raw.trim()).ok_or_else(|| {
            ApiError::bad_field("status", "must be one of draft, scheduled, sending, paused, cancelled, finished")
        })?),
        None => None,
    };
    let page = s.store.list_campaigns(status, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?;
    Ok(Json(page.into()))
}

/// Create a campaign
///
/// It starts as a draft: nothing goes out until `POST /api/v1/campaigns/{id}/send`.
/// `send_at` (RFC 3339) schedules it; with `local_time`, `send_at` is a wall-clock time read in
/// each contact's own zone. `holdout_percent` of the audience, picked at random, receives
/// nothing so the campaign can be measured against them.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = CampaignDraft,
    responses((status = 201, body = Campaign), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(draft): JsonBody<CampaignDraft>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    caller.can_manage_automation()?;
    let input = CampaignInput::parse(draft)?;
    Ok((StatusCode::CREATED, Json(s.store.create_campaign(input, caller.user_id()).await?)))
}

/// Get a campaign
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = Uuid, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<Campaign>> {
    Ok(Json(s.store.get_campaign(parse_id(&id, "campaign")?).await?))
}

/// Change a campaign
///
/// Only while it is a draft or scheduled. The fields sent replace the current ones.
#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = Uuid, Path)),
    request_body = CampaignDraft,
    responses((status = 200, body = Campaign), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> ApiResult<Json<Campaign>> {
    caller.can_manage_automation()?;
    let id = parse_id(&id, "campaign")?;
    let current = s.store.get_campaign(id).await?;
    let serde_json::Value::Object(changes) = patch else {
        return Err(ApiError::bad_field("", "send a JSON object with the fields to change"));
    };
    let mut doc = serde_json::to_value(CampaignInput::draft_of(&current)).unwrap_or_default();
    for (k, v) in changes {
        doc[k] = v;
    }
    let draft: CampaignDraft = serde_json::from_value(doc).map_err(|e| ApiError::bad_field("", e.to_string()))?;
    let input = CampaignInput::parse(draft)?;
    Ok(Json(s.store.update_campaign(id, input).await?))
}

/// Delete a campaign
///
/// Not while it is scheduled, sending or paused: cancel it first. Messages it sent stay on
/// their contacts' timelines.
#[utoipa::path(delete, path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.can_manage_automation()?;
    s.store.delete_campaign(parse_id(&id, "campaign")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn command(s: AppState, caller: Caller, id: String, command: CampaignCommand) -> ApiResult<Json<Campaign>> {
    caller.can_manage_automation()?;
    let id = parse_id(&id, "campaign")?;
    let campaign = s.store.command_campaign(id, command).await?;
    if campaign.status == CampaignStatus::Sending {
        s.campaign_wake.notify_one();
    }
    Ok(Json(campaign))
}

/// Send a campaign
///
/// Now, or at its `send_at` (it becomes `scheduled`). The audience is the segment's members
/// when sending starts, minus the exclusion segments' members.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/send", tag = "campaigns", params(("id" = Uuid, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn send(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Campaign>> {
    command(s, caller, id, CampaignCommand::Send).await
}

/// Pause a campaign
///
/// Messages not yet handed to the relay wait until it is resumed.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns", params(("id" = Uuid, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn pause(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Campaign>> {
    command(s, caller, id, CampaignCommand::Pause).await
}

/// Resume a paused campaign
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns", params(("id" = Uuid, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn resume(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Campaign>> {
    command(s, caller, id, CampaignCommand::Resume).await
}

/// Cancel a campaign
///
/// For good: every message of it that has not left is cancelled.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/cancel", tag = "campaigns", params(("id" = Uuid, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Campaign>> {
    command(s, caller, id, CampaignCommand::Cancel).await
}

/// Where a test send goes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSendRequest {
    /// The address to send the test to.
    to: String,
    /// Whose data fills the template in; the segment's first member when left out.
    contact_id: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestSendQueued {
    /// The test message in the outbox.
    message_id: Uuid,
    to: String,
}

/// Send a test
///
/// One message, filled in with a real contact's data, to the address given, right away. It
/// counts in no statistic.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/test", tag = "campaigns", params(("id" = Uuid, Path)),
    request_body = TestSendRequest,
    responses((status = 202, body = TestSendQueued), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn test_send(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<TestSendRequest>,
) -> ApiResult<(StatusCode, Json<TestSendQueued>)> {
    caller.can_manage_automation()?;
    let to = EmailAddress::parse(&r.to).map_err(|e| ApiError::bad_field("to", e))?;
    let to = to.as_str().to_string();
    let message_id =
        s.store.campaign_test_send(parse_id(&id, "campaign")?, TestSend { to: to.clone(), contact_id: r.contact_id }).await?;
    Ok((StatusCode::ACCEPTED, Json(TestSendQueued { message_id, to })))
}

/// A campaign's statistics
///
/// The audience (messaged, held out, skipped and why), what became of the messages (sent,
/// delivered, bounced, opened, clicked, replied, unsubscribed), and conversions — people who
/// ordered within `conversion_days` of their message — against the holdout over the same
/// window, with the revenue in the base currency.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/stats", tag = "campaigns", params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignStats), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn stats(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<CampaignStats>> {
    Ok(Json(s.store.campaign_stats(parse_id(&id, "campaign")?).await?))
}
