use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Json, Router, routing::get};
use chrono::{DateTime, Utc};
use rapport_core::contact::{Contact, ContactDraft, ContactPatch};
use rapport_store::ContactFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{created, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{CreateBody, JsonBody, Params, parse_id};

list_of!(ContactList, Contact);

pub fn routes() -> Router<AppState> {
    Router::new().route("/contacts", get(list).post(create)).route("/contacts/{id}", get(read).patch(update).delete(remove))
}

/// Query of `GET /contacts`. Every given filter must hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `display_name` (default), `last_name`, `created_at` or `updated_at`; `-` prefix for descending.
    sort: Option<String>,
    /// Part of a name, an email address, or three or more digits of a phone number.
    q: Option<String>,
    /// An exact email address (any case).
    email: Option<String>,
    /// A phone number in any format; matches numbers ending in its digits.
    phone: Option<String>,
    /// A tag name (any case).
    tag: Option<String>,
    owner_id: Option<Uuid>,
    /// Contacts linked to this company.
    company_id: Option<Uuid>,
    source: Option<String>,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
    updated_after: Option<DateTime<Utc>>,
}

/// List contacts
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ListParams),
    responses((status = 200, body = ContactList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<ContactList>> {
    let filter = ContactFilter {
        q: p.q,
        email: p.email,
        phone: p.phone,
        tag: p.tag,
        owner_id: p.owner_id,
        company_id: p.company_id,
        source: p.source,
        created_after: p.created_after,
        created_before: p.created_before,
        updated_after: p.updated_after,
    };
    Ok(Json(s.store.list_contacts(filter, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

/// Create a contact
///
/// Phones are normalised to E.164 (numbers without `+country` are read in the configured
/// default region). Send an `Idempotency-Key` header to make retries safe.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = ContactDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
    responses((status = 201, body = Contact), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(State(s): State<AppState>, c: Caller, body: CreateBody<ContactDraft>) -> ApiResult<Response> {
    c.can_write()?;
    let idem = body.idempotency.map(|i| i.for_key(c.key_id()));
    Ok(created(s.store.create_contact(body.value, idem).await?))
}

/// Get a contact
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = Uuid, Path)),
    responses((status = 200, body = Contact), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<Contact>> {
    Ok(Json(s.store.get_contact(parse_id(&id, "contact")?).await?))
}

/// Update a contact
///
/// Absent fields stay as they are, `null` clears a field. Lists (emails, phones, tags,
/// external_ids) are replaced whole; `custom_fields` is merged key by key.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = Uuid, Path)), request_body = ContactPatch,
    responses((status = 200, body = Contact), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<ContactPatch>,
) -> ApiResult<Json<Contact>> {
    c.can_write()?;
    Ok(Json(s.store.update_contact(parse_id(&id, "contact")?, patch).await?))
}

/// Delete a contact
///
/// Also deletes their notes, relations and company links.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.can_write()?;
    s.store.delete_contact(parse_id(&id, "contact")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
