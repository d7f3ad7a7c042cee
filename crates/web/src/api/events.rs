//! Events in, and what they add up to out: ingest, a person's timeline, profile and
//! recommendations, and the manual clock for demonstrations and tests.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rapport_core::event::{Channel, IngestRequest};
use rapport_core::profile::{ProfileView, Recommendation};
use rapport_store::{IngestReport, TimelineEvent, TimelineFilter};
use serde::{Deserialize, Serialize};

use super::list_of;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Params, parse_id};

list_of!(Timeline, TimelineEvent);

pub fn routes(max_ingest_body: usize) -> Router<AppState> {
    Router::new()
        .route("/events", post(ingest).layer(DefaultBodyLimit::max(max_ingest_body)))
        .route("/contacts/{id}/timeline", get(timeline))
        .route("/contacts/{id}/profile", get(profile))
        .route("/contacts/{id}/recommendations", get(recommendations))
        .route("/admin/clock", post(move_clock))
}

/// The body of `POST /events`, for the API reference.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct IngestBody {
    /// 1–10,000 events: `{"id"?, "type", "contact": {"id"|"email"|"phone"|"external_id"}, "occurred_at"?, "channel"?, "payload"?}`.
    events: Vec<serde_json::Value>,
    /// Create a lead for a person no reference matches instead of rejecting the event.
    create_contact: Option<bool>,
}

/// Record events
///
/// Takes one event or a batch of up to 10,000 and answers per item, in request order:
/// `accepted`, `duplicate` (an event with this `id` was stored before) or `rejected` with the
/// fields at fault. Good events are stored even when others fail; profiles and lifecycle
/// stages are updated in the same transaction. Late and out-of-order events are fine.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = IngestBody,
    responses((status = 200, body = IngestReport), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 413, body = Problem)),
    security(("bearer" = [])))]
pub async fn ingest(
    State(s): State<AppState>,
    caller: Caller,
    body: Result<JsonBody<IngestRequest>, ApiError>,
) -> ApiResult<Json<IngestReport>> {
    caller.can_write()?;
    // A body that is not an ingest request at all is a bad request; problems with single
    // events are answered per item.
    let body = body.map_err(|e| match e {
        ApiError::Invalid(v) => ApiError::BadRequest { detail: format!("not an ingest request: {v}"), errors: v.errors },
        other => other,
    })?;
    let report = s.store.ingest(body.0).await.map_err(ApiError::query)?;
    let accepted = report.count(rapport_store::ItemStatus::Accepted);
    metrics::counter!("rapport_events_ingested_total").increment(accepted as u64);
    if accepted > 0 {
        // Event triggers act within moments of ingest, not at the next tick.
        s.automation_wake.notify_one();
        s.events_wake.notify_one();
    }
    Ok(Json(report))
}

/// Query of `GET /contacts/{id}/timeline`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Comma-separated types; `email.*` matches a whole namespace.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// Comma-separated channels.
    channel: Option<String>,
    /// Events at or after this time.
    since: Option<DateTime<Utc>>,
    /// Events before this time.
    until: Option<DateTime<Utc>>,
}

fn split(list: &Option<String>) -> impl Iterator<Item = &str> {
    list.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A person's timeline
///
/// Everything that happened with this person across all channels, newest first: their
/// events, and staff actions (notes, stage changes).
#[utoipa::path(get, path = "/api/v1/contacts/{id}/timeline", tag = "events", params(("id" = Uuid, Path), TimelineParams),
    responses((status = 200, body = Timeline), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn timeline(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
    Params(p): Params<TimelineParams>,
) -> ApiResult<Json<Timeline>> {
    let id = parse_id(&id, "contact")?;
    let mut filter = TimelineFilter { since: p.since, until: p.until, ..Default::default() };
    for t in split(&p.kind) {
        let name = t.strip_suffix(".*").unwrap_or(t);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.') {
            return Err(ApiError::bad_field("type", format!("'{t}' is not an event type or a prefix such as email.*")));
        }
        filter.types.push(t.to_string());
    }
    for c in split(&p.channel) {
        filter.channels.push(Channel::parse(c).ok_or_else(|| {
            let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
            ApiError::bad_field("channel", format!("unknown channel '{c}'; use {}", names.join(", ")))
        })?);
    }
    Ok(Json(s.store.timeline(id, filter, p.limit, p.cursor).await.map_err(ApiError::query)?.into()))
}

/// A person's profile
///
/// What their events add up to: value, rhythm, engagement, interests, products bought, RFM,
/// value tier, lifecycle stage with its reason, and churn risk judged against their own rhythm.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/profile", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 200, body = ProfileView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn profile(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<ProfileView>> {
    Ok(Json(s.store.profile(parse_id(&id, "contact")?).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationParams {
    /// How many, 1–50 (default 10).
    limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Recommendations {
    data: Vec<Recommendation>,
}

/// What to show this person
///
/// Products of their interests they have not bought anywhere, strongest first, each with the
/// reason: things they looked at or asked about, and best sellers of the categories they
/// browse. Never something they already bought. Cheap enough to call on every page view.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/recommendations", tag = "events",
    params(("id" = Uuid, Path), RecommendationParams),
    responses((status = 200, body = Recommendations), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn recommendations(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
    Params(p): Params<RecommendationParams>,
) -> ApiResult<Json<Recommendations>> {
    let id = parse_id(&id, "contact")?;
    let data = s.store.recommendations(id, p.limit.unwrap_or(10)).await.map_err(ApiError::query)?;
    Ok(Json(Recommendations { data }))
}

/// How to move the manual clock: exactly one of the two.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockMove {
    /// An ISO 8601 duration to move forward by, e.g. `P7D` or `PT12H`.
    advance: Option<String>,
    /// A time to jump to, e.g. `2027-01-01T09:00:00Z`.
    set: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClockState {
    pub now: DateTime<Utc>,
    /// Lifecycle stage changes the move caused (people becoming at risk or lost).
    pub transitions: usize,
    /// Segment entries and exits the move caused.
    pub segments: rapport_store::MaintainReport,
    /// What automation did because of the move: triggers fired, runs started and advanced.
    pub automation: rapport_store::automation::PassReport,
    /// Whether work due by the new time is still left (another instance holds it, or webhook
    /// calls are being retried). When `true`, poll `GET /readyz` or move the clock by `PT0S`
    /// until it is `false`.
    pub pending: bool,
}

/// Move the clock
///
/// Only on a server started with `--clock manual`, and only with an admin key: moves the
/// clock that birthdays, inactivity and lifecycle stages read, then applies the changes time
/// has caused before answering.
#[utoipa::path(post, path = "/api/v1/admin/clock", tag = "admin", request_body = ClockMove,
    responses((status = 200, body = ClockState), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn move_clock(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(m): JsonBody<ClockMove>,
) -> ApiResult<Json<ClockState>> {
    caller.can_manage_users().map_err(|_| ApiError::Forbidden("moving the clock needs an admin key".into()))?;
    let Some(clock) = &s.manual_clock else {
        return Err(ApiError::Conflict {
            field: String::new(),
            message: "this server runs on the system clock; start it with `rapport serve --clock manual` to move time".into(),
        });
    };
    match (m.advance, m.set) {
        (Some(d), None) => {
            let by = rapport_core::parse_iso_duration(&d).map_err(|e| ApiError::bad_field("advance", e))?;
            if by < chrono::Duration::zero() {
                return Err(ApiError::bad_field("advance", "the clock only moves forward; use set to jump back"));
            }
            clock.advance(by);
        }
        (None, Some(t)) => {
            let t = DateTime::parse_from_rfc3339(t.trim())
                .map_err(|_| ApiError::bad_field("set", "must be an RFC 3339 time such as 2027-01-01T09:00:00Z"))?;
            clock.set(t.to_utc());
        }
        _ => return Err(ApiError::bad_field("advance", "give exactly one of advance (e.g. \"P7D\") or set (an RFC 3339 time)")),
    }
    let transitions = s.store.sweep_lifecycle().await?;
    // Everything that moves with time catches up before the answer, so a client sees the
    // world as of the new now: segments, then automation, whose actions may move segments
    // again (a tag), and so on until nothing is left.
    let mut segments = super::segments::bring_up_to_date(&s).await?;
    let mut automation = rapport_store::automation::PassReport::default();
    let mut pending = true;
    // Another worker (this instance's own, or another instance's) may hold some of the due
    // rows: wait for it, up to a bound, rather than answer while work is under way.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let done = s.store.automation_until_idle(100).await?;
        let campaign_work = s.store.campaign_pass().await?;
        crate::ops::deliver_due_webhooks(&s).await;
        while crate::email::deliver_due(&s).await > 0 {}
        while crate::messaging::deliver_due(&s).await > 0 {}
        let more = super::segments::bring_up_to_date(&s).await?;
        segments.entered += more.entered;
        segments.exited += more.exited;
        automation.add(done);
        if done.is_idle() && campaign_work == 0 && more.entered + more.exited == 0 {
            // Segment marks too: another worker's step (a tag) may have committed since this
            // round brought the segments up to date.
            pending = s.store.automation_pending().await?
                || s.store.segment_changes_pending().await?
                || s.store.campaigns_due().await?
                || s.store.webhooks_due().await?
                || ((s.email.is_some() || s.messaging.is_some()) && s.store.messages_due().await?);
            if !pending {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    tracing::info!(now = %s.store.now(), transitions, runs = automation.runs_started, "the manual clock moved");
    Ok(Json(ClockState { now: s.store.now(), transitions, segments, automation, pending }))
}
