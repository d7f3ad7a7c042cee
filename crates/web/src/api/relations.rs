use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Json, Router, routing::get};
use rapport_core::relation::RelationKind;
use rapport_core::relation::{Relation, RelationDraft, RelationPatch};
use rapport_store::RelationFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{created, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{CreateBody, JsonBody, Params, parse_id};

list_of!(RelationList, Relation);

pub fn routes() -> Router<AppState> {
    Router::new().route("/relations", get(list).post(create)).route("/relations/{id}", get(read).patch(update).delete(remove))
}

/// Query of `GET /relations`. Every given filter must hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `created_at` (default) or `updated_at`; `-` prefix for descending.
    sort: Option<String>,
    /// Relations of this contact.
    contact_id: Option<Uuid>,
    /// Relations that point at this contact.
    related_contact_id: Option<Uuid>,
    kind: Option<RelationKind>,
}

/// List relations
#[utoipa::path(get, path = "/api/v1/relations", tag = "relations", params(ListParams),
    responses((status = 200, body = RelationList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<RelationList>> {
    let filter = RelationFilter { contact_id: p.contact_id, related_contact_id: p.related_contact_id, kind: p.kind };
    Ok(Json(s.store.list_relations(filter, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

/// Create a relation
#[utoipa::path(post, path = "/api/v1/relations", tag = "relations", request_body = RelationDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
    responses((status = 201, body = Relation), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(State(s): State<AppState>, c: Caller, body: CreateBody<RelationDraft>) -> ApiResult<Response> {
    c.can_write()?;
    let idem = body.idempotency.map(|i| i.for_key(c.key_id()));
    Ok(created(s.store.create_relation(body.value, idem).await?))
}

/// Get a relation
#[utoipa::path(get, path = "/api/v1/relations/{id}", tag = "relations", params(("id" = Uuid, Path)),
    responses((status = 200, body = Relation), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<Relation>> {
    Ok(Json(s.store.get_relation(parse_id(&id, "relation")?).await?))
}

/// Update a relation
#[utoipa::path(patch, path = "/api/v1/relations/{id}", tag = "relations", params(("id" = Uuid, Path)), request_body = RelationPatch,
    responses((status = 200, body = Relation), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<RelationPatch>,
) -> ApiResult<Json<Relation>> {
    c.can_write()?;
    Ok(Json(s.store.update_relation(parse_id(&id, "relation")?, patch).await?))
}

/// Delete a relation
///
/// Both people stay.
#[utoipa::path(delete, path = "/api/v1/relations/{id}", tag = "relations", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.can_write()?;
    s.store.delete_relation(parse_id(&id, "relation")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
