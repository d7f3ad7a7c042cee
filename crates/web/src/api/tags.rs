use axum::Json;
use axum::extract::State;
use rapport_core::tag::{Tag, TagDraft, TagPatch};
use rapport_store::TagFilter;
use serde::Deserialize;

use super::{item_handlers, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Params;

list_of!(TagList, Tag);

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

item_handlers! {
    paths: ("/tags", "/tags/{id}", "/api/v1/tags", "/api/v1/tags/{id}"),
    tag: "tags",
    entity: "tag",
    types: (Tag, TagDraft, TagPatch),
    allowed: can_write,
    store: (create_tag, get_tag, update_tag, delete_tag),
    create_args: |c| (),
    docs: ("Create a tag", "Get a tag", "Update a tag", "Delete a tag

The tag is removed from every contact and company."),
}
