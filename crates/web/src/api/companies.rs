use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Json, Router, routing::get};
use rapport_core::company::{Company, CompanyDraft, CompanyPatch};
use rapport_store::CompanyFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{created, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{CreateBody, JsonBody, Params, parse_id};

list_of!(CompanyList, Company);

pub fn routes() -> Router<AppState> {
    Router::new().route("/companies", get(list).post(create)).route("/companies/{id}", get(read).patch(update).delete(remove))
}

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

/// Create a company
#[utoipa::path(post, path = "/api/v1/companies", tag = "companies", request_body = CompanyDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
    responses((status = 201, body = Company), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(State(s): State<AppState>, c: Caller, body: CreateBody<CompanyDraft>) -> ApiResult<Response> {
    c.can_write()?;
    let idem = body.idempotency.map(|i| i.for_key(c.key_id()));
    Ok(created(s.store.create_company(body.value, idem).await?))
}

/// Get a company
#[utoipa::path(get, path = "/api/v1/companies/{id}", tag = "companies", params(("id" = Uuid, Path)),
    responses((status = 200, body = Company), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<Company>> {
    Ok(Json(s.store.get_company(parse_id(&id, "company")?).await?))
}

/// Update a company
#[utoipa::path(patch, path = "/api/v1/companies/{id}", tag = "companies", params(("id" = Uuid, Path)), request_body = CompanyPatch,
    responses((status = 200, body = Company), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<CompanyPatch>,
) -> ApiResult<Json<Company>> {
    c.can_write()?;
    Ok(Json(s.store.update_company(parse_id(&id, "company")?, patch).await?))
}

/// Delete a company
///
/// Its notes, tags and contact links go with it; the contacts stay.
#[utoipa::path(delete, path = "/api/v1/companies/{id}", tag = "companies", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.can_write()?;
    s.store.delete_company(parse_id(&id, "company")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
