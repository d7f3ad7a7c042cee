use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Json, Router, routing::get};
use rapport_core::custom_field::RecordType;
use rapport_core::custom_field::{CustomFieldDefinition, CustomFieldDraft, CustomFieldPatch};
use serde::Deserialize;

use super::{created, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{CreateBody, JsonBody, Params, parse_id};

list_of!(CustomFieldList, CustomFieldDefinition);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/custom-fields", get(list).post(create))
        .route("/custom-fields/{id}", get(read).patch(update).delete(remove))
}

/// Query of `GET /custom-fields`. Every given filter must hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `key` (default) or `created_at`; `-` prefix for descending.
    sort: Option<String>,
    /// `contact` or `company`.
    record_type: Option<RecordType>,
}

/// List custom field definitions
#[utoipa::path(get, path = "/api/v1/custom-fields", tag = "custom fields", params(ListParams),
    responses((status = 200, body = CustomFieldList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<CustomFieldList>> {
    Ok(Json(
        s.store.list_custom_fields(p.record_type, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into(),
    ))
}

/// Create a custom field
#[utoipa::path(post, path = "/api/v1/custom-fields", tag = "custom fields", request_body = CustomFieldDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
    responses((status = 201, body = CustomFieldDefinition), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(State(s): State<AppState>, c: Caller, body: CreateBody<CustomFieldDraft>) -> ApiResult<Response> {
    c.can_manage_catalogue()?;
    let idem = body.idempotency.map(|i| i.for_key(c.key_id()));
    Ok(created(s.store.create_custom_field(body.value, idem).await?))
}

/// Get a custom field
#[utoipa::path(get, path = "/api/v1/custom-fields/{id}", tag = "custom fields", params(("id" = Uuid, Path)),
    responses((status = 200, body = CustomFieldDefinition), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<CustomFieldDefinition>> {
    Ok(Json(s.store.get_custom_field(parse_id(&id, "custom field")?).await?))
}

/// Update a custom field
#[utoipa::path(patch, path = "/api/v1/custom-fields/{id}", tag = "custom fields", params(("id" = Uuid, Path)), request_body = CustomFieldPatch,
    responses((status = 200, body = CustomFieldDefinition), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<CustomFieldPatch>,
) -> ApiResult<Json<CustomFieldDefinition>> {
    c.can_manage_catalogue()?;
    Ok(Json(s.store.update_custom_field(parse_id(&id, "custom field")?, patch).await?))
}

/// Delete a custom field
///
/// Its values are removed from every record of its type.
#[utoipa::path(delete, path = "/api/v1/custom-fields/{id}", tag = "custom fields", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.can_manage_catalogue()?;
    s.store.delete_custom_field(parse_id(&id, "custom field")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
