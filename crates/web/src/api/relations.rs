use axum::Json;
use axum::extract::State;
use rapport_core::relation::RelationKind;
use rapport_core::relation::{Relation, RelationDraft, RelationPatch};
use rapport_store::RelationFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{item_handlers, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Params;

list_of!(RelationList, Relation);

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

item_handlers! {
    paths: ("/relations", "/relations/{id}", "/api/v1/relations", "/api/v1/relations/{id}"),
    tag: "relations",
    entity: "relation",
    types: (Relation, RelationDraft, RelationPatch),
    allowed: can_write,
    store: (create_relation, get_relation, update_relation, delete_relation),
    create_args: |c| (),
    docs: ("Create a relation", "Get a relation", "Update a relation", "Delete a relation

Both people stay."),
}
