use axum::Json;
use axum::extract::State;
use rapport_core::company::{Company, CompanyDraft, CompanyPatch};
use rapport_store::CompanyFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{item_handlers, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Params;

list_of!(CompanyList, Company);

/// Query of `GET /companies`. Every given filter must hold.
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
    /// Part of the name or the domain.
    q: Option<String>,
    /// An exact domain, e.g. `acme.com`.
    domain: Option<String>,
    /// An industry (any case).
    industry: Option<String>,
    /// A tag name (any case).
    tag: Option<String>,
    owner_id: Option<Uuid>,
}

/// List companies
#[utoipa::path(get, path = "/api/v1/companies", tag = "companies", params(ListParams),
    responses((status = 200, body = CompanyList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<CompanyList>> {
    let filter = CompanyFilter { q: p.q, domain: p.domain, industry: p.industry, tag: p.tag, owner_id: p.owner_id };
    Ok(Json(s.store.list_companies(filter, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

item_handlers! {
    paths: ("/companies", "/companies/{id}", "/api/v1/companies", "/api/v1/companies/{id}"),
    tag: "companies",
    entity: "company",
    types: (Company, CompanyDraft, CompanyPatch),
    allowed: can_write,
    store: (create_company, get_company, update_company, delete_company),
    create_args: |c| (),
    docs: ("Create a company", "Get a company", "Update a company", "Delete a company

Its notes, tags and contact links go with it; the contacts stay."),
}
