use axum::Json;
use axum::extract::State;
use rapport_core::note::{Note, NoteDraft, NotePatch};
use rapport_store::NoteFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{item_handlers, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Params;

list_of!(NoteList, Note);

/// Query of `GET /notes`. Every given filter must hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `created_at` (default `-created_at`, newest first) or `updated_at`; `-` prefix for descending.
    sort: Option<String>,
    /// Notes on this contact.
    contact_id: Option<Uuid>,
    /// Notes on this company.
    company_id: Option<Uuid>,
    author_id: Option<Uuid>,
    pinned: Option<bool>,
}

/// List notes
#[utoipa::path(get, path = "/api/v1/notes", tag = "notes", params(ListParams),
    responses((status = 200, body = NoteList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<NoteList>> {
    let filter = NoteFilter { contact_id: p.contact_id, company_id: p.company_id, author_id: p.author_id, pinned: p.pinned };
    Ok(Json(s.store.list_notes(filter, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

item_handlers! {
    paths: ("/notes", "/notes/{id}", "/api/v1/notes", "/api/v1/notes/{id}"),
    tag: "notes",
    entity: "note",
    types: (Note, NoteDraft, NotePatch),
    allowed: can_write,
    store: (create_note, get_note, update_note, delete_note),
    create_args: |c| (c.user_id()),
    docs: ("Create a note", "Get a note", "Update a note", "Delete a note

Deleted for good."),
}
