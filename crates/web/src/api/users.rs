use axum::Json;
use axum::extract::State;
use rapport_core::user::Role;
use rapport_core::user::{User, UserDraft, UserPatch};
use rapport_store::UserFilter;
use serde::Deserialize;

use super::{item_handlers, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Params;

list_of!(UserList, User);

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

item_handlers! {
    paths: ("/users", "/users/{id}", "/api/v1/users", "/api/v1/users/{id}"),
    tag: "users",
    entity: "user",
    types: (User, UserDraft, UserPatch),
    allowed: can_manage_users,
    store: (create_user, get_user, update_user, delete_user),
    create_args: |c| (),
    docs: ("Create a user", "Get a user", "Update a user", "Delete a user

Their contacts, companies and notes stay, without an owner or author. The last active admin cannot be deleted."),
}
