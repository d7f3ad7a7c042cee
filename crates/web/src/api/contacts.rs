use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use rapport_core::contact::{Contact, ContactDraft, ContactPatch};
use rapport_store::ContactFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{item_handlers, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Params;

list_of!(ContactList, Contact);

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
    /// A segment filter, e.g. `value_tier in ("gold","vip") and no visit.checked_in in last 21d`
    /// (see the segments guide). A filter that does not parse answers 400 with line and column.
    filter: Option<String>,
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
        filter: super::segments::query_filter(p.filter.as_deref())?,
    };
    Ok(Json(s.store.list_contacts(filter, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

item_handlers! {
    paths: ("/contacts", "/contacts/{id}", "/api/v1/contacts", "/api/v1/contacts/{id}"),
    tag: "contacts",
    entity: "contact",
    types: (Contact, ContactDraft, ContactPatch),
    allowed: can_write,
    store: (create_contact, get_contact, update_contact, delete_contact),
    create_args: |c| (),
    docs: ("Create a contact

Phones are normalised to E.164 (numbers without `+country` are read in the configured
default region). Send an `Idempotency-Key` header to make retries safe.", "Get a contact", "Update a contact

Absent fields stay as they are, `null` clears a field. Lists (emails, phones, tags,
external_ids) are replaced whole; `custom_fields` is merged key by key.", "Delete a contact

Also deletes their notes, relations and company links."),
}
