use axum::Json;
use axum::extract::State;
use rapport_core::task::{DueFilter, Task, TaskDraft, TaskPatch, TaskStatus};
use rapport_store::TaskFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::{item_handlers, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Params;

list_of!(TaskList, Task);

/// Query of `GET /tasks`. Every given filter must hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `due_at` (default: soonest first, tasks without a due time last), `created_at` or
    /// `updated_at`; `-` prefix for descending.
    sort: Option<String>,
    /// A user's id, `me` (the user the key belongs to) or `none` (nobody assigned).
    assignee: Option<String>,
    /// `open`, `done` or `cancelled`.
    status: Option<String>,
    /// `today` (due during today), `overdue` (open and due before now), `upcoming` (the next 7
    /// days after today) or `none` (no due time). Days are local to `time_zone`.
    due: Option<String>,
    /// IANA time zone for `due` (default: the server's `default_time_zone`).
    time_zone: Option<String>,
    contact_id: Option<Uuid>,
    company_id: Option<Uuid>,
    /// Tasks a workflow created.
    workflow_id: Option<Uuid>,
}

fn filter(c: &Caller, p: &ListParams) -> Result<TaskFilter, ApiError> {
    let mut f =
        TaskFilter { contact_id: p.contact_id, company_id: p.company_id, workflow_id: p.workflow_id, ..Default::default() };
    match p.assignee.as_deref().map(str::trim) {
        None => {}
        Some("me") => {
            f.assignee_id = Some(c.user_id().ok_or_else(|| {
                ApiError::bad_field("assignee", "`me` needs a key that belongs to a user; give the user's id instead")
            })?)
        }
        Some("none") => f.unassigned = true,
        Some(raw) => {
            f.assignee_id = Some(
                Uuid::parse_str(raw)
                    .map_err(|_| ApiError::bad_field("assignee", format!("`{raw}` is not a user id, `me` or `none`")))?,
            )
        }
    }
    if let Some(raw) = &p.status {
        f.status = Some(
            TaskStatus::parse(raw.trim())
                .ok_or_else(|| ApiError::bad_field("status", format!("`{raw}` is not open, done or cancelled")))?,
        );
    }
    if let Some(raw) = &p.due {
        f.due = Some(
            DueFilter::parse(raw.trim())
                .ok_or_else(|| ApiError::bad_field("due", format!("`{raw}` is not today, overdue, upcoming or none")))?,
        );
    }
    if let Some(raw) = &p.time_zone {
        f.time_zone =
            Some(raw.trim().parse().map_err(|_| {
                ApiError::bad_field("time_zone", format!("`{raw}` is not an IANA time zone such as Europe/Berlin"))
            })?);
    }
    Ok(f)
}

/// List tasks
///
/// Someone's day: `?assignee=me&due=today&status=open`.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(ListParams),
    responses((status = 200, body = TaskList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<TaskList>> {
    let f = filter(&c, &p)?;
    Ok(Json(s.store.list_tasks(f, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into()))
}

item_handlers! {
    paths: ("/tasks", "/tasks/{id}", "/api/v1/tasks", "/api/v1/tasks/{id}"),
    tag: "tasks",
    entity: "task",
    types: (Task, TaskDraft, TaskPatch),
    allowed: can_write,
    store: (create_task, get_task, update_task, delete_task),
    create_args: |c| (c.user_id()),
    update_args: |c| (c.user_id()),
    docs: ("Create a task

Assigned to the caller's user unless `assignee_id` says otherwise. A task about a contact shows on their timeline.",
        "Get a task",
        "Update a task

Mark it done with `{\"status\": \"done\"}`; that too shows on the contact's timeline.",
        "Delete a task"),
}
