//! Saved views of the contact list: a name for a list's query string.

use axum::extract::{Path, State};
use axum::response::Response;
use rapport_store::StoreError;

use super::contacts::VIEW_KEYS;
use super::form::{FormData, query_string};
use super::{Signed, UiError, parse_id, redirect_with};
use crate::AppState;

/// `POST /views`: saves the list's current query under a name.
pub async fn save(State(s): State<AppState>, signed: Signed, form: FormData) -> Result<Response, UiError> {
    // Only the list's own parameters are kept, re-encoded: a view can only ever lead to the list.
    let query = FormData::parse(form.get("query").unwrap_or("").as_bytes());
    let query = query_string(VIEW_KEYS.iter().map(|k| (*k, query.get(k).unwrap_or("").trim())));
    let back = if query.is_empty() { "/contacts".to_string() } else { format!("/contacts?{query}") };
    let name = form.text("name");
    if name.is_empty() {
        return Ok(redirect_with(&back, "Give the view a name to save it."));
    }
    match s.store.save_view(signed.user.id, "contacts".into(), name, query).await {
        Ok(v) => Ok(redirect_with(&back, &format!("Saved the view “{}”.", v.name))),
        Err(StoreError::Invalid(e)) => Ok(redirect_with(
            &back,
            &format!("Not saved: {}", e.errors.iter().map(|x| x.message.as_str()).collect::<Vec<_>>().join("; ")),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /views/{id}/delete`
pub async fn delete(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Result<Response, UiError> {
    let id = parse_id(&id, "saved view")?;
    s.store.delete_view(signed.user.id, id).await?;
    Ok(redirect_with("/contacts", "Deleted the saved view."))
}
