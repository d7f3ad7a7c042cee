use axum::Json;
use axum::extract::State;
use rapport_core::company::{CompanyLink, CompanyLinkDraft, CompanyLinkPatch};
use rapport_store::LinkFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{item_handlers, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Params;

list_of!(LinkList, CompanyLink);

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

item_handlers! {
    paths: ("/links", "/links/{id}", "/api/v1/links", "/api/v1/links/{id}"),
    tag: "links",
    entity: "link",
    types: (CompanyLink, CompanyLinkDraft, CompanyLinkPatch),
    allowed: can_write,
    store: (create_link, get_link, update_link, delete_link),
    create_args: |c| (),
    docs: ("Create a link", "Get a link", "Update a link", "Delete a link

The contact and the company stay."),
}
