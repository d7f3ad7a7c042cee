//! Segments: the list with a chart of their sizes, the editor with a live count, and a
//! segment's members.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rapport_core::FieldError;
use rapport_core::segment::{SegmentDraft, read_filter};
use rapport_store::{PageRequest, StoreError};
use serde_json::json;
use uuid::Uuid;

use super::charts::BarChart;
use super::contacts::FilterError;
use super::form::{FormData, QueryData, query_string};
use super::format::{ago, date, thousands};
use super::{Shell, Signed, UiError, parse_id, redirect_with, render, render_status};
use crate::AppState;

pub struct SegmentRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub filter: String,
    pub members: String,
    pub refreshed: String,
}

#[derive(Template)]
#[template(path = "segments/list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<SegmentRow>,
    chart: BarChart,
}

/// `GET /segments`
pub async fn list(State(s): State<AppState>, signed: Signed) -> Result<Response, UiError> {
    let segments = s.store.list_segments(PageRequest { limit: Some(500), ..Default::default() }).await?.data;
    let now = s.store.now();
    let chart = BarChart::new(
        "segment-sizes",
        "Members per segment",
        segments
            .iter()
            .enumerate()
            .map(|(i, seg)| (seg.name.clone(), seg.member_count, format!("c{}", i % 6), Some(format!("/segments/{}", seg.id))))
            .collect(),
    );
    let rows = segments
        .into_iter()
        .map(|seg| SegmentRow {
            id: seg.id,
            name: seg.name,
            description: seg.description.unwrap_or_default(),
            filter: seg.filter,
            members: thousands(seg.member_count),
            refreshed: seg.refreshed_at.map_or_else(|| "not yet".into(), |t| ago(t, now)),
        })
        .collect();
    render(&ListPage { shell: signed.shell("segments"), rows, chart })
}

#[derive(Template)]
#[template(path = "segments/new.html")]
struct NewPage {
    shell: Shell,
    name: String,
    description: String,
    filter: String,
    name_error: Option<String>,
    description_error: Option<String>,
    filter_error: Option<FilterError>,
    fields: Vec<(&'static str, &'static str)>,
}

fn new_page(signed: &Signed, name: String, description: String, filter: String) -> NewPage {
    NewPage {
        shell: signed.shell("segments"),
        name,
        description,
        filter,
        name_error: None,
        description_error: None,
        filter_error: None,
        fields: rapport_core::segment::FIELDS.iter().map(|f| (f.name, f.about)).collect(),
    }
}

/// `GET /segments/new` (a `filter` parameter fills the filter in, e.g. from the contact list).
pub async fn new_form(signed: Signed, QueryData(q): QueryData) -> Result<Response, UiError> {
    signed.require_write()?;
    render(&new_page(&signed, String::new(), String::new(), q.get("filter").unwrap_or("").to_string()))
}

/// `POST /segments`
pub async fn create(State(s): State<AppState>, signed: Signed, form: FormData) -> Result<Response, UiError> {
    signed.require_write()?;
    let (name, description, filter) = (form.text("name"), form.text("description"), form.get("filter").unwrap_or("").to_string());
    let draft = SegmentDraft {
        name: Some(name.clone()),
        description: Some(description.clone()).filter(|d| !d.is_empty()),
        filter: Some(filter.clone()),
        filter_json: None,
    };
    let errors: Vec<FieldError> = match s.store.create_segment(draft, Some(signed.user.id)).await {
        Ok(seg) => {
            return Ok(redirect_with(
                &format!("/segments/{}", seg.id),
                &format!("Created the segment “{}” with {} members.", seg.name, thousands(seg.member_count)),
            ));
        }
        Err(StoreError::Invalid(v)) => v.errors,
        Err(StoreError::Conflict { field, message }) => vec![FieldError::new(field, message)],
        Err(e) => return Err(e.into()),
    };
    let mut page = new_page(&signed, name, description, filter.clone());
    for e in &errors {
        match e.field.as_str() {
            "name" => page.name_error = Some(e.message.clone()),
            "description" => page.description_error = Some(e.message.clone()),
            _ => page.filter_error = Some(FilterError::from_field(e, &filter)),
        }
    }
    render_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// `GET /ui/segments/preview?filter=…`: the live count of the editor, as JSON.
pub async fn preview(State(s): State<AppState>, _signed: Signed, QueryData(q): QueryData) -> Response {
    let text = q.get("filter").unwrap_or("").to_string();
    if text.trim().is_empty() {
        return Json(json!({"count": null, "error": null, "sample": []})).into_response();
    }
    let error = |e: &FieldError| {
        Json(json!({"count": null, "error": {"message": e.message, "line": e.line, "column": e.column, "expected": e.expected}}))
            .into_response()
    };
    let filter = match read_filter(Some(&text), None) {
        Ok(f) => f,
        Err(v) => return v.errors.first().map_or_else(|| StatusCode::BAD_REQUEST.into_response(), error),
    };
    match s.store.preview_segment(filter, 5).await {
        Ok(p) => Json(json!({
            "count": p.count,
            "count_text": thousands(p.count),
            "error": null,
            "sample": p.sample.iter().map(|c| json!({"id": c.id, "name": c.display_name})).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(StoreError::Invalid(v)) => v.errors.first().map_or_else(|| StatusCode::BAD_REQUEST.into_response(), error),
        Err(e) => UiError::from(e).into_response(),
    }
}

pub struct MemberRow {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub tags: Vec<String>,
}

#[derive(Template)]
#[template(path = "segments/show.html")]
struct ShowPage {
    shell: Shell,
    name: String,
    description: String,
    filter: String,
    members: String,
    refreshed: String,
    created: String,
    rows: Vec<MemberRow>,
    next_url: Option<String>,
    first_url: Option<String>,
    list_url: String,
}

/// `GET /segments/{id}`
pub async fn show(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    QueryData(q): QueryData,
) -> Result<Response, UiError> {
    let id = parse_id(&id, "segment")?;
    let seg = s.store.get_segment(id).await?;
    let cursor = q.opt("cursor");
    let page = match s.store.segment_members(id, PageRequest { limit: Some(50), cursor: cursor.clone(), sort: None }).await {
        Err(StoreError::Invalid(_)) => {
            return Err(UiError::BadRequest("This page link is broken; open the segment again.".into()));
        }
        other => other?,
    };
    let tz = s.store.options().default_time_zone;
    let now = s.store.now();
    render(&ShowPage {
        shell: signed.shell("segments"),
        list_url: format!(
            "/contacts?{}",
            query_string([("filter", format!("in segment {}", serde_json::Value::String(seg.name.clone())).as_str())])
        ),
        name: seg.name,
        description: seg.description.unwrap_or_default(),
        filter: seg.filter,
        members: thousands(seg.member_count),
        refreshed: seg.refreshed_at.map_or_else(|| "not yet".into(), |t| ago(t, now)),
        created: date(seg.created_at, tz),
        rows: page
            .data
            .iter()
            .map(|c| MemberRow {
                id: c.id,
                name: c.display_name.clone(),
                email: c.primary_email().map(|e| e.to_string()).unwrap_or_default(),
                tags: c.tags.clone(),
            })
            .collect(),
        next_url: page.next_cursor.map(|c| format!("/segments/{id}?{}", query_string([("cursor", c.as_str())]))),
        first_url: cursor.map(|_| format!("/segments/{id}")),
    })
}
