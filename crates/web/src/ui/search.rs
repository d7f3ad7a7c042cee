//! The global search: a results page (the search box works without JavaScript) and the JSON
//! its typeahead asks.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rapport_store::{HitKind, SearchHit};
use serde_json::json;

use super::form::QueryData;
use super::{Shell, Signed, UiError, render};
use crate::AppState;

pub struct HitView {
    pub href: String,
    pub title: String,
    pub detail: String,
    pub kind: &'static str,
}

fn view(h: &SearchHit) -> HitView {
    let (kind, base) = match h.kind {
        HitKind::Contact => ("Contact", "/contacts"),
        HitKind::Company => ("Company", "/companies"),
    };
    HitView { href: format!("{base}/{}", h.id), title: h.title.clone(), detail: h.detail.clone().unwrap_or_default(), kind }
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    shell: Shell,
    q: String,
    contacts: Vec<HitView>,
    companies: Vec<HitView>,
    searched: bool,
}

/// `GET /search?q=…`
pub async fn page(State(s): State<AppState>, signed: Signed, QueryData(q): QueryData) -> Result<Response, UiError> {
    let text = q.text("q");
    let hits = if text.is_empty() { Vec::new() } else { s.store.search(text.clone(), 50).await? };
    let (contacts, companies): (Vec<_>, Vec<_>) = hits.iter().partition(|h| h.kind == HitKind::Contact);
    render(&SearchPage {
        shell: signed.shell(""),
        searched: !text.is_empty(),
        q: text,
        contacts: contacts.into_iter().map(view).collect(),
        companies: companies.into_iter().map(view).collect(),
    })
}

/// `GET /ui/search?q=…`: up to 8 people and 8 companies for the typeahead.
pub async fn json(State(s): State<AppState>, _signed: Signed, QueryData(q): QueryData) -> Result<Response, UiError> {
    let text = q.text("q");
    let hits = if text.is_empty() { Vec::new() } else { s.store.search(text, 8).await? };
    let items: Vec<_> =
        hits.iter().map(view).map(|h| json!({"href": h.href, "title": h.title, "detail": h.detail, "kind": h.kind})).collect();
    Ok(Json(json!({"results": items})).into_response())
}
