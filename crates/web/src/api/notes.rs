use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Json, Router, routing::get};
use rapport_core::note::{Note, NoteDraft, NotePatch};
use rapport_store::NoteFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{created, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{CreateBody, JsonBody, Params, parse_id};

list_of!(NoteList, Note);

pub fn routes() -> Router<AppState> {
    Router::new().route("/notes", get(list).post(create)).route("/notes/{id}", get(read).patch(update).delete(remove))
}

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

/// Create a note
#[utoipa::path(post, path = "/api/v1/notes", tag = "notes", request_body = NoteDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
    responses((status = 201, body = Note), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(State(s): State<AppState>, c: Caller, body: CreateBody<NoteDraft>) -> ApiResult<Response> {
    c.can_write()?;
    let idem = body.idempotency.map(|i| i.for_key(c.key_id()));
    Ok(created(s.store.create_note(body.value, c.user_id(), idem).await?))
}

/// Get a note
#[utoipa::path(get, path = "/api/v1/notes/{id}", tag = "notes", params(("id" = Uuid, Path)),
    responses((status = 200, body = Note), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<Note>> {
    Ok(Json(s.store.get_note(parse_id(&id, "note")?).await?))
}

/// Update a note
#[utoipa::path(patch, path = "/api/v1/notes/{id}", tag = "notes", params(("id" = Uuid, Path)), request_body = NotePatch,
    responses((status = 200, body = Note), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<NotePatch>,
) -> ApiResult<Json<Note>> {
    c.can_write()?;
    Ok(Json(s.store.update_note(parse_id(&id, "note")?, patch).await?))
}

/// Delete a note
///
/// Deleted for good.
#[utoipa::path(delete, path = "/api/v1/notes/{id}", tag = "notes", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.can_write()?;
    s.store.delete_note(parse_id(&id, "note")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
