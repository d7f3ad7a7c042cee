use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Json, Router, routing::get};
use rapport_core::user::Role;
use rapport_core::user::{User, UserDraft, UserPatch};
use rapport_store::UserFilter;
use serde::Deserialize;

use super::{created, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{CreateBody, JsonBody, Params, parse_id};

list_of!(UserList, User);

pub fn routes() -> Router<AppState> {
    Router::new().route("/users", get(list).post(create)).route("/users/{id}", get(read).patch(update).delete(remove))
}

/// Query of `GET /users`. Every given filter must hold.
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
    /// Part of the name or email.
    q: Option<String>,
    role: Option<Role>,
    active: Option<bool>,
}

/// List users
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(ListParams),
    responses((status = 200, body = UserList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<UserList>> {
    let filter = UserFilter { q: p.q, role: p.role, active: p.active };
    Ok(Json(s.store.list_users(filter, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

/// Create a user
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
    responses((status = 201, body = User), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(State(s): State<AppState>, c: Caller, body: CreateBody<UserDraft>) -> ApiResult<Response> {
    c.can_manage_users()?;
    let idem = body.idempotency.map(|i| i.for_key(c.key_id()));
    Ok(created(s.store.create_user(body.value, idem).await?))
}

/// Get a user
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<User>> {
    Ok(Json(s.store.get_user(parse_id(&id, "user")?).await?))
}

/// Update a user
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)), request_body = UserPatch,
    responses((status = 200, body = User), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<UserPatch>,
) -> ApiResult<Json<User>> {
    c.can_manage_users()?;
    Ok(Json(s.store.update_user(parse_id(&id, "user")?, patch).await?))
}

/// Delete a user
///
/// Their contacts, companies and notes stay, without an owner or author. The last active admin cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.can_manage_users()?;
    s.store.delete_user(parse_id(&id, "user")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
