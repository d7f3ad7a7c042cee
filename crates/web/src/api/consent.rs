//! Consent: subscription topics (the catalogue people choose from), a contact's consent ledger
//! and current state, and their privacy choices.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use rapport_core::consent::{ConsentDraft, PrivacyDraft, SubscriptionTopic, TopicDraft, TopicPatch};
use rapport_store::consent::{ConsentRecord, ContactConsent, PrivacyState};
use serde::Serialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, Problem};
use crate::extract::{JsonBody, parse_id};

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/subscription-topics", get(list_topics).post(create_topic))
        .route("/subscription-topics/{key}", patch(update_topic).get(read_topic).delete(delete_topic))
        .route("/contacts/{id}/consent", get(contact_consent).post(record_consent))
        .route("/contacts/{id}/privacy", get(read_privacy).put(put_privacy))
}

/// Every subscription topic (a short catalogue: one page).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TopicList {
    pub data: Vec<SubscriptionTopic>,
    /// Always `null`: the whole catalogue is one page.
    pub next_cursor: Option<String>,
}

/// List subscription topics
#[utoipa::path(get, path = "/api/v1/subscription-topics", tag = "consent",
    responses((status = 200, body = TopicList), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn list_topics(State(s): State<AppState>, _c: Caller) -> ApiResult<Json<TopicList>> {
    Ok(Json(TopicList { data: s.store.list_topics().await?, next_cursor: None }))
}

/// Create a subscription topic
///
/// `key` is a lowercase slug (`newsletter`), fixed once created; `marketing` and `*` are
/// reserved (they mean every topic). Managers and admins only.
#[utoipa::path(post, path = "/api/v1/subscription-topics", tag = "consent", request_body = TopicDraft,
    responses((status = 201, body = SubscriptionTopic), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_topic(State(s): State<AppState>, caller: Caller, JsonBody(d): JsonBody<TopicDraft>) -> ApiResult<Response> {
    caller.can_manage_catalogue()?;
    Ok((StatusCode::CREATED, Json(s.store.create_topic(d).await?)).into_response())
}

/// Get a subscription topic
#[utoipa::path(get, path = "/api/v1/subscription-topics/{key}", tag = "consent", params(("key" = String, Path)),
    responses((status = 200, body = SubscriptionTopic), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read_topic(State(s): State<AppState>, _c: Caller, Path(key): Path<String>) -> ApiResult<Json<SubscriptionTopic>> {
    Ok(Json(s.store.get_topic(key).await?))
}

/// Update a subscription topic
#[utoipa::path(patch, path = "/api/v1/subscription-topics/{key}", tag = "consent", params(("key" = String, Path)),
    request_body = TopicPatch,
    responses((status = 200, body = SubscriptionTopic), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update_topic(
    State(s): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(p): JsonBody<TopicPatch>,
) -> ApiResult<Json<SubscriptionTopic>> {
    caller.can_manage_catalogue()?;
    Ok(Json(s.store.update_topic(key, p).await?))
}

/// Delete a subscription topic
///
/// People's recorded choices about it are kept (the ledger is history).
#[utoipa::path(delete, path = "/api/v1/subscription-topics/{key}", tag = "consent", params(("key" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete_topic(State(s): State<AppState>, caller: Caller, Path(key): Path<String>) -> ApiResult<StatusCode> {
    caller.can_manage_catalogue()?;
    s.store.delete_topic(key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A contact's consent
///
/// Email topics now (`subscribed`, and whether that is their own `choice`, a choice about
/// `all_marketing`, or the topic's `default`), the current fact per purpose and channel,
/// privacy choices, and the whole ledger, newest first.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/consent", tag = "consent", params(("id" = Uuid, Path)),
    responses((status = 200, body = ContactConsent), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn contact_consent(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<ContactConsent>> {
    Ok(Json(s.store.contact_consent(parse_id(&id, "contact")?).await?))
}

/// A recorded fact, with the link that confirms it when it waits for confirmation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecordedConsent {
    #[serde(flatten)]
    pub record: ConsentRecord,
    /// For a pending double opt-in grant: the link to send the person (GET shows a button,
    /// POST confirms). Absolute when an email channel with a public URL is set up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_url: Option<String>,
}

/// Record consent
///
/// Appends a grant (`"granted": true`) or withdrawal to the ledger. For email, the
/// subscription state follows at once (`marketing` = every topic) and the timeline shows
/// `email.subscribed` / `email.unsubscribed`; other channels show `consent.changed`. With
/// `"double_opt_in": true` a grant is pending until the person confirms it through
/// `confirm_url`; with `"confirmation_template"` as well, Rapport emails them that link
/// (the template reads `{{ confirm_url }}`).
#[utoipa::path(post, path = "/api/v1/contacts/{id}/consent", tag = "consent", params(("id" = Uuid, Path)),
    request_body = ConsentDraft,
    responses((status = 201, body = RecordedConsent), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn record_consent(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<ConsentDraft>,
) -> ApiResult<Response> {
    caller.can_write()?;
    let contact = parse_id(&id, "contact")?;
    let record = s.store.record_consent(contact, d, caller.user_id()).await?;
    let confirm_url = if record.status == "pending" {
        let secret = s.store.app_secret("unsubscribe").await?;
        let base = s.email.as_ref().map(|e| e.public_url.as_str()).unwrap_or("");
        Some(crate::preferences::confirm_url(base, &secret, contact, record.id))
    } else {
        None
    };
    s.automation_wake.notify_one();
    Ok((StatusCode::CREATED, Json(RecordedConsent { record, confirm_url })).into_response())
}

/// A contact's privacy choices
#[utoipa::path(get, path = "/api/v1/contacts/{id}/privacy", tag = "consent", params(("id" = Uuid, Path)),
    responses((status = 200, body = PrivacyState), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read_privacy(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<PrivacyState>> {
    Ok(Json(s.store.get_privacy(parse_id(&id, "contact")?).await?))
}

/// Set privacy choices
///
/// `do_not_track` (opens and clicks are not recorded), `do_not_contact` (no marketing on any
/// channel, including messages already queued), `not_interested` (unsubscribes from all
/// marketing and notifies the contact's owner). An absent field keeps its value; each change
/// shows on the timeline as `privacy.changed`.
#[utoipa::path(put, path = "/api/v1/contacts/{id}/privacy", tag = "consent", params(("id" = Uuid, Path)),
    request_body = PrivacyDraft,
    responses((status = 200, body = PrivacyState), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_privacy(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<PrivacyDraft>,
) -> ApiResult<Json<PrivacyState>> {
    caller.can_write()?;
    let state = s.store.set_privacy(parse_id(&id, "contact")?, d, caller.user_id()).await?;
    s.automation_wake.notify_one();
    Ok(Json(state))
}
