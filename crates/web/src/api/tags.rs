use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Json, Router, routing::get};
use rapport_core::tag::{Tag, TagDraft, TagPatch};
use rapport_store::TagFilter;
use serde::Deserialize;

use super::{created, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{CreateBody, JsonBody, Params, parse_id};

list_of!(TagList, Tag);

pub fn routes() -> Router<AppState> {
    Router::new().route("/tags", get(list).post(create)).route("/tags/{id}", get(read).patch(update).delete(remove))
}

/// Query of `GET /tags`. Every given filter must hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `name` (default) or `created_at`; `-` prefix for descending.
    sort: Option<String>,
    /// Part of the name.
    q: Option<String>,
}

/// List tags
#[utoipa::path(get, path = "/api/v1/tags", tag = "tags", params(ListParams),
    responses((status = 200, body = TagList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<TagList>> {
    let filter = TagFilter { q: p.q };
    Ok(Json(s.store.list_tags(filter, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

/// Create a tag
#[utoipa::path(post, path = "/api/v1/tags", tag = "tags", request_body = TagDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
    responses((status = 201, body = Tag), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(State(s): State<AppState>, c: Caller, body: CreateBody<TagDraft>) -> ApiResult<Response> {
    c.can_write()?;
    let idem = body.idempotency.map(|i| i.for_key(c.key_id()));
    Ok(created(s.store.create_tag(body.value, idem).await?))
}

/// Get a tag
#[utoipa::path(get, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = Uuid, Path)),
    responses((status = 200, body = Tag), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<Tag>> {
    Ok(Json(s.store.get_tag(parse_id(&id, "tag")?).await?))
}

/// Update a tag
#[utoipa::path(patch, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = Uuid, Path)), request_body = TagPatch,
    responses((status = 200, body = Tag), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<TagPatch>,
) -> ApiResult<Json<Tag>> {
    c.can_write()?;
    Ok(Json(s.store.update_tag(parse_id(&id, "tag")?, patch).await?))
}

/// Delete a tag
///
/// The tag is removed from every contact and company.
#[utoipa::path(delete, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.can_write()?;
    s.store.delete_tag(parse_id(&id, "tag")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
