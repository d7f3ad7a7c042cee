//! Tasks in the UI: "your tasks" on the start page, a contact's open tasks on their page, adding
//! one there, and marking one done.

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use rapport_core::task::{Task, TaskDraft, TaskPatch, TaskStatus};
use rapport_store::{PageRequest, Store, StoreError, TaskFilter};
use uuid::Uuid;

use super::form::FormData;
use super::format::datetime;
use super::{Signed, UiError, local_path, parse_id, redirect_with};
use crate::AppState;

/// One open task as a page shows it.
pub struct TaskRow {
    pub id: Uuid,
    pub title: String,
    pub reason: String,
    /// "Overdue since …", "Due …" or empty.
    pub due: String,
    pub overdue: bool,
    /// The contact it is about, when the page is not that contact's.
    pub contact: Option<(String, String)>,
}

/// The first `limit` open tasks of `filter`, soonest due first.
pub async fn open_tasks(
    store: &Store,
    mut filter: TaskFilter,
    limit: u32,
    with_contacts: bool,
) -> Result<Vec<TaskRow>, StoreError> {
    filter.status = Some(TaskStatus::Open);
    let page = store.list_tasks(filter, PageRequest { limit: Some(limit), cursor: None, sort: None }).await?;
    let tz = store.options().default_time_zone;
    let now = store.now();
    let mut rows = Vec::with_capacity(page.data.len());
    for t in page.data {
        let contact = match (with_contacts, t.contact_id) {
            (true, Some(id)) => match store.get_contact(id).await {
                Ok(c) => Some((c.display_name, format!("/contacts/{id}"))),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            _ => None,
        };
        rows.push(row(t, contact, now, tz));
    }
    Ok(rows)
}

fn row(t: Task, contact: Option<(String, String)>, now: rapport_core::Timestamp, tz: Tz) -> TaskRow {
    let overdue = t.due_at.is_some_and(|d| d < now);
    let due = match t.due_at {
        Some(d) if overdue => format!("Overdue since {}", datetime(d, tz)),
        Some(d) => format!("Due {}", datetime(d, tz)),
        None => String::new(),
    };
    TaskRow { id: t.id, title: t.title, reason: t.reason.unwrap_or_default(), due, overdue, contact }
}

/// Where to go after a form: a local path the form named, or the start page.
fn back_to(form: &FormData) -> String {
    local_path(form.get("return_to").unwrap_or("/"), "/")
}

/// `POST /tasks/{id}/done`
pub async fn done(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    signed.require_write()?;
    let id = parse_id(&id, "task")?;
    let patch = TaskPatch { status: Some(TaskStatus::Done), ..Default::default() };
    let task = s.store.update_task(id, patch, Some(signed.user.id)).await?;
    Ok(redirect_with(&back_to(&form), &format!("Done: {}.", task.title)))
}

/// `POST /contacts/{id}/tasks`: a task about the contact for the signed-in user, due at a local
/// date and time (`due`, as a `datetime-local` input sends it) when given.
pub async fn add_for_contact(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    signed.require_write()?;
    let id = parse_id(&id, "contact")?;
    let back = format!("/contacts/{id}#tasks");
    let tz = s.store.options().default_time_zone;
    let due_at = match form.get("due").map(str::trim).filter(|d| !d.is_empty()) {
        None => None,
        Some(raw) => match local_due(raw, tz) {
            Some(t) => Some(t),
            None => return Ok(redirect_with(&back, "The task was not saved: pick the due date and time again.")),
        },
    };
    let draft = TaskDraft {
        title: form.get("title").map(str::to_string),
        reason: form.get("reason").map(str::to_string).filter(|r| !r.trim().is_empty()),
        contact_id: Some(id),
        due_at,
        ..Default::default()
    };
    match s.store.create_task(draft, Some(signed.user.id), None).await {
        Ok(_) => Ok(redirect_with(&back, "Task added.")),
        Err(StoreError::Invalid(v)) => Ok(redirect_with(&back, &format!("The task was not saved: {v}"))),
        Err(e) => Err(e.into()),
    }
}

/// `YYYY-MM-DDTHH:MM` (or with seconds) in `tz`, as UTC; a time skipped by a clock change
/// moves to the first valid one after it.
fn local_due(raw: &str, tz: Tz) -> Option<rapport_core::Timestamp> {
    let local = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    (0..=180)
        .step_by(30)
        .find_map(|m| tz.from_local_datetime(&(local + chrono::Duration::minutes(m))).earliest())
        .map(|t| t.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_local() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(local_due("2026-07-01T09:30", berlin).unwrap().to_rfc3339(), "2026-07-01T07:30:00+00:00");
        // 02:30 does not exist on 29 March 2026 in Berlin; the task is due at 03:00.
        assert_eq!(local_due("2026-03-29T02:30", berlin).unwrap().to_rfc3339(), "2026-03-29T01:00:00+00:00");
        assert!(local_due("tomorrow", berlin).is_none());
    }

    #[test]
    fn only_local_paths_are_followed() {
        let form = |v: &str| FormData(vec![("return_to".into(), v.into())]);
        assert_eq!(back_to(&form("/contacts/1#tasks")), "/contacts/1#tasks");
        assert_eq!(back_to(&form("//evil.example")), "/");
        assert_eq!(back_to(&form("https://evil.example")), "/");
        assert_eq!(back_to(&form("/\\evil.example")), "/");
    }
}
