//! Segments: stored filters with members kept current, previews of unsaved filters, and the
//! explanation of why a person is in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rapport_core::ValidationErrors;
use rapport_core::segment::{Filter, SegmentDraft, SegmentPatch, read_filter};
use rapport_store::{Explanation, MaintainReport, Preview, Segment};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{list_of, page_request};
use crate::AppState;
use crate::api::contacts::ContactList;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Params, parse_id};

list_of!(SegmentList, Segment);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/segments", get(list).post(create))
        .route("/segments/preview", post(preview))
        .route("/segments/{id}", get(read).patch(update).delete(remove))
        .route("/segments/{id}/members", get(members))
        .route("/segments/{id}/count", get(count))
        .route("/segments/{id}/explain/{contact_id}", get(explain))
        .route("/segments/{id}/refresh", post(refresh))
        .route("/contacts/{id}/segments", get(contact_segments))
        .route("/admin/segments/maintain", post(maintain))
}

/// A filter that does not parse is a bad request, with the line and column in `errors`.
pub fn filter_error(e: ValidationErrors) -> ApiError {
    ApiError::BadRequest { detail: format!("the filter is not valid: {e}"), errors: e.errors }
}

/// Reads the `filter` query parameter of a list.
pub fn query_filter(raw: Option<&str>) -> ApiResult<Option<Filter>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => read_filter(Some(text), None).map(Some).map_err(filter_error),
    }
}

/// The body of `POST /segments/preview`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The filter in the text syntax.
    filter: Option<String>,
    /// Or the filter as JSON.
    #[schema(value_type = Option<Object>)]
    filter_json: Option<serde_json::Value>,
    /// How many matching contacts to return, 0–100 (default 10).
    sample: Option<u32>,
}

/// Preview an unsaved filter
///
/// Counts who matches right now and returns a sample (by name), so an editor can show a live
/// count while the filter is typed. A filter that does not parse answers 400 with `errors`
/// giving the `line`, `column` and what was `expected`.
#[utoipa::path(post, path = "/api/v1/segments/preview", tag = "segments", request_body = PreviewRequest,
    responses((status = 200, body = Preview), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn preview(State(s): State<AppState>, _c: Caller, JsonBody(req): JsonBody<PreviewRequest>) -> ApiResult<Json<Preview>> {
    let filter = read_filter(req.filter.as_deref(), req.filter_json.as_ref()).map_err(filter_error)?;
    let sample = req.sample.unwrap_or(10);
    if sample > 100 {
        return Err(ApiError::bad_field("sample", "must be between 0 and 100"));
    }
    // A filter that parses can still name what does not exist (a deleted custom field): the
    // same 400 as a parse error, said of the filter, not of query parameters.
    Ok(Json(s.store.preview_segment(filter, sample).await.map_err(|e| match e {
        rapport_store::StoreError::Invalid(v) => filter_error(v),
        e => ApiError::from(e),
    })?))
}

/// Create a segment
///
/// `{"name": "…", "filter": "<text>"}` or with `filter_json`. Members are evaluated at once
/// (quietly: the first filling records no `segment.entered` events); from then on they are kept
/// current and every entry and exit is an event on the person's timeline.
#[utoipa::path(post, path = "/api/v1/segments", tag = "segments", request_body = SegmentDraft,
    responses((status = 201, body = Segment), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(draft): JsonBody<SegmentDraft>,
) -> ApiResult<(StatusCode, Json<Segment>)> {
    caller.can_write()?;
    Ok((StatusCode::CREATED, Json(s.store.create_segment(draft, caller.user_id()).await?)))
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
}

/// List segments
#[utoipa::path(get, path = "/api/v1/segments", tag = "segments", params(ListParams),
    responses((status = 200, body = SegmentList), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<SegmentList>> {
    Ok(Json(s.store.list_segments(page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

/// Get a segment
#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = Uuid, Path)),
    responses((status = 200, body = Segment), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<Segment>> {
    Ok(Json(s.store.get_segment(parse_id(&id, "segment")?).await?))
}

/// Update a segment
///
/// Absent fields stay as they are. A changed filter is evaluated at once; whoever enters or
/// leaves because of it gets a `segment.entered` / `segment.exited` event.
#[utoipa::path(patch, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = Uuid, Path)), request_body = SegmentPatch,
    responses((status = 200, body = Segment), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<SegmentPatch>,
) -> ApiResult<Json<Segment>> {
    caller.can_write()?;
    Ok(Json(s.store.update_segment(parse_id(&id, "segment")?, patch).await?))
}

/// Delete a segment
///
/// Refused (409) while another segment's filter names it.
#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.can_write()?;
    s.store.delete_segment(parse_id(&id, "segment")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemberParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `display_name` (default), `last_name`, `created_at` or `updated_at`; `-` prefix for descending.
    sort: Option<String>,
}

/// List a segment's members
#[utoipa::path(get, path = "/api/v1/segments/{id}/members", tag = "segments", params(("id" = Uuid, Path), MemberParams),
    responses((status = 200, body = ContactList), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn members(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
    Params(p): Params<MemberParams>,
) -> ApiResult<Json<ContactList>> {
    let id = parse_id(&id, "segment")?;
    let page = s.store.segment_members(id, page_request(p.limit, p.cursor, p.sort)).await.map_err(|e| match e {
        e @ rapport_store::StoreError::NotFound { .. } => ApiError::from(e),
        e => ApiError::query(e),
    })?;
    Ok(Json(page.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentCount {
    pub count: i64,
    pub refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Count a segment's members
///
/// A lookup: the count is kept with the stored members.
#[utoipa::path(get, path = "/api/v1/segments/{id}/count", tag = "segments", params(("id" = Uuid, Path)),
    responses((status = 200, body = SegmentCount), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn count(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<SegmentCount>> {
    let seg = s.store.get_segment(parse_id(&id, "segment")?).await?;
    Ok(Json(SegmentCount { count: seg.member_count, refreshed_at: seg.refreshed_at }))
}

/// Why is this person in the segment?
///
/// Evaluates each condition of the filter for the contact now and answers which held, with
/// the values that decided (the count, the date, the tier…), beside the stored membership.
#[utoipa::path(get, path = "/api/v1/segments/{id}/explain/{contact_id}", tag = "segments",
    params(("id" = Uuid, Path), ("contact_id" = Uuid, Path)),
    responses((status = 200, body = Explanation), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn explain(
    State(s): State<AppState>,
    _c: Caller,
    Path((id, contact)): Path<(String, String)>,
) -> ApiResult<Json<Explanation>> {
    let id = parse_id(&id, "segment")?;
    let contact = parse_id(&contact, "contact")?;
    Ok(Json(s.store.explain_segment(id, contact).await?))
}

/// Re-evaluate a segment now
///
/// Members are normally kept current on their own; this forces a full evaluation (after a
/// bulk import, say).
#[utoipa::path(post, path = "/api/v1/segments/{id}/refresh", tag = "segments", params(("id" = Uuid, Path)),
    responses((status = 200, body = MaintainReport), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn refresh(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<MaintainReport>> {
    caller.can_write()?;
    let id = parse_id(&id, "segment")?;
    s.store.get_segment(id).await?;
    Ok(Json(s.store.refresh_segment(id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactSegment {
    pub id: Uuid,
    pub name: String,
    pub entered_at: chrono::DateTime<chrono::Utc>,
}

/// The segments a contact is in
#[utoipa::path(get, path = "/api/v1/contacts/{id}/segments", tag = "segments", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<ContactSegment>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn contact_segments(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ContactSegment>>> {
    let id = parse_id(&id, "contact")?;
    s.store.get_contact(id).await?;
    let list = s.store.contact_segments(id).await?;
    Ok(Json(list.into_iter().map(|(id, name, entered_at)| ContactSegment { id, name, entered_at }).collect()))
}

/// Bring every segment up to date now
///
/// Drains the queue of changed contacts and refreshes every time-dependent segment. The
/// server does this on its own every second (changes) and every few minutes (time); this is
/// for scripts and tests that need it done before they go on.
#[utoipa::path(post, path = "/api/v1/admin/segments/maintain", tag = "admin",
    responses((status = 200, body = MaintainReport), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn maintain(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<MaintainReport>> {
    caller.can_manage_users().map_err(|_| ApiError::Forbidden("maintaining segments needs an admin key".into()))?;
    Ok(Json(bring_up_to_date(&s).await?))
}

/// Refreshes time-dependent segments, then drains the change queue (which the refresh may
/// have added to).
pub async fn bring_up_to_date(s: &AppState) -> ApiResult<MaintainReport> {
    let mut timed = s.store.refresh_time_dependent_segments().await?;
    // And segments flagged for a full pass (a subscription topic's default changed).
    let flagged = s.store.refresh_due_segments(s.config.segment_refresh_every).await?;
    timed.entered += flagged.entered;
    timed.exited += flagged.exited;
    timed.segments_refreshed += flagged.segments_refreshed;
    let mut r = s.store.maintain_segments_fully().await?;
    // On PostgreSQL a pass skips the contacts another maintainer (the server's own, every
    // second) holds, so it can end before that one has committed: wait for it, briefly, so
    // that the answer means "up to date".
    for _ in 0..200 {
        if !s.store.segment_changes_pending().await? {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let more = s.store.maintain_segments_fully().await?;
        r.contacts += more.contacts;
        r.entered += more.entered;
        r.exited += more.exited;
    }
    r.entered += timed.entered;
    r.exited += timed.exited;
    r.segments_refreshed = timed.segments_refreshed;
    Ok(r)
}
