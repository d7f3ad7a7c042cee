//! Companies: the list and the company page.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use rapport_store::{CompanyFilter, PageRequest, StoreError};
use uuid::Uuid;

use super::form::{QueryData, query_string};
use super::format::{date, datetime};
use super::{Shell, Signed, UiError, parse_id, render};
use crate::AppState;

pub struct CompanyRow {
    pub id: Uuid,
    pub name: String,
    pub domain: String,
    pub industry: String,
    pub size: String,
    pub tags: Vec<String>,
}

#[derive(Template)]
#[template(path = "companies/list.html")]
struct ListPage {
    shell: Shell,
    q: String,
    rows: Vec<CompanyRow>,
    next_url: Option<String>,
    first_url: Option<String>,
    error: Option<String>,
}

/// `GET /companies`
pub async fn list(State(s): State<AppState>, signed: Signed, QueryData(q): QueryData) -> Result<Response, UiError> {
    let text = q.text("q");
    let cursor = q.opt("cursor");
    let filter = CompanyFilter { q: Some(text.clone()).filter(|t| !t.is_empty()), ..Default::default() };
    let (rows, next, error) =
        match s.store.list_companies(filter, PageRequest { limit: Some(50), cursor: cursor.clone(), sort: None }).await {
            Ok(p) => (p.data, p.next_cursor, None),
            Err(StoreError::Invalid(v)) => (Vec::new(), None, Some(format!("This list cannot be shown: {v}"))),
            Err(e) => return Err(e.into()),
        };
    let base = query_string([("q", text.as_str())]);
    let next_url = next.map(|c| {
        let sep = if base.is_empty() { "" } else { "&" };
        format!("/companies?{base}{sep}{}", query_string([("cursor", c.as_str())]))
    });
    render(&ListPage {
        shell: signed.shell("companies"),
        rows: rows
            .into_iter()
            .map(|c| CompanyRow {
                id: c.id,
                name: c.name,
                domain: c.domain.unwrap_or_default(),
                industry: c.industry.unwrap_or_default(),
                size: c.size.unwrap_or_default(),
                tags: c.tags,
            })
            .collect(),
        first_url: cursor.map(|_| if base.is_empty() { "/companies".to_string() } else { format!("/companies?{base}") }),
        q: text,
        next_url,
        error,
    })
}

pub struct PersonRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub primary: bool,
}

pub struct NoteView {
    /// The note rendered from markdown, safe to insert (see `markdown::render`).
    pub body_html: String,
    pub author: String,
    pub when: String,
}

#[derive(Template)]
#[template(path = "companies/show.html")]
struct ShowPage {
    shell: Shell,
    name: String,
    facts: Vec<(&'static str, String)>,
    website: Option<String>,
    tags: Vec<String>,
    people: Vec<PersonRow>,
    more_people: bool,
    all_people_url: String,
    notes: Vec<NoteView>,
}

/// `GET /companies/{id}`
pub async fn show(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Result<Response, UiError> {
    let id = parse_id(&id, "company")?;
    let o = s.store.company_overview(id, 100).await?;
    let tz = s.store.options().default_time_zone;
    let c = o.company;
    let mut facts = Vec::new();
    for (label, v) in [("Industry", &c.industry), ("Size", &c.size)] {
        if let Some(v) = v {
            facts.push((label, v.clone()));
        }
    }
    if let Some(owner) = c.owner_id.and_then(|u| o.user_names.get(&u).cloned()) {
        facts.push(("Owner", owner));
    }
    facts.push(("Added", date(c.created_at, tz)));
    for (k, v) in &c.custom_fields {
        facts.push((
            "",
            format!(
                "{}: {}",
                k.replace('_', " "),
                match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            ),
        ));
    }
    // Text in the filter language is written with JSON escapes.
    let all_people_url = format!(
        "/contacts?{}",
        query_string([("filter", format!("company.name = {}", serde_json::Value::String(c.name.clone())).as_str())])
    );
    render(&ShowPage {
        shell: signed.shell("companies"),
        all_people_url,
        name: c.name,
        facts,
        // Only a plain domain becomes a link.
        website: c.domain.filter(|d| d.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')),
        tags: c.tags,
        people: o
            .contacts
            .into_iter()
            .map(|l| PersonRow { id: l.contact_id, name: l.display_name, role: l.role.unwrap_or_default(), primary: l.primary })
            .collect(),
        more_people: o.more_contacts,
        notes: o
            .notes
            .into_iter()
            .map(|n| NoteView {
                body_html: super::markdown::render(&n.body),
                author: n.author_id.and_then(|a| o.user_names.get(&a).cloned()).unwrap_or_else(|| "someone".into()),
                when: datetime(n.created_at, tz),
            })
            .collect(),
    })
}
