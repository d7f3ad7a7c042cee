//! Tasks for the team. Creating one about a contact, and finishing it, shows on the contact's
//! timeline.

use chrono::{Days, TimeZone};
use rapport_core::Timestamp;
use rapport_core::new_id;
use rapport_core::task::{DueFilter, Task, TaskDraft, TaskInput, TaskPatch, TaskStatus};
use serde_json::json;
use uuid::Uuid;

use crate::common::{check_exists, check_user};
use crate::db::{Dialect, Tx};
use crate::events::SystemEvent;
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind};
use crate::value::Row;
use crate::{Result, Store, StoreError};

/// Which tasks `list_tasks` returns; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub assignee_id: Option<Uuid>,
    /// Only tasks nobody is assigned to.
    pub unassigned: bool,
    pub status: Option<TaskStatus>,
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    pub due: Option<DueFilter>,
    /// The time zone "today" is taken in for `due`; the store's default when absent.
    pub time_zone: Option<chrono_tz::Tz>,
}

/// Sort fields per dialect: tasks without a due time sort as due on 9999-12-31, so that they
/// come last and keyset pages never compare with NULL.
const SORTS_SQLITE: &[SortField] = &[
    SortField { name: "due_at", expr: "coalesce(t.due_at, 253402214400000000)", kind: SortKind::Time },
    SortField { name: "created_at", expr: "t.created_at", kind: SortKind::Time },
    SortField { name: "updated_at", expr: "t.updated_at", kind: SortKind::Time },
];
const SORTS_POSTGRES: &[SortField] = &[
    SortField { name: "due_at", expr: "coalesce(t.due_at, TIMESTAMPTZ '9999-12-31 00:00:00+00')", kind: SortKind::Time },
    SortField { name: "created_at", expr: "t.created_at", kind: SortKind::Time },
    SortField { name: "updated_at", expr: "t.updated_at", kind: SortKind::Time },
];
const SELECT: &str = "SELECT t.id, t.title, t.reason, t.contact_id, t.company_id, t.assignee_id, t.due_at, t.status, \
     t.closed_at, t.created_by, t.workflow_id, t.created_at, t.updated_at";

fn map_row(r: Row) -> Result<Task> {
    let status = r.string(7)?;
    Ok(Task {
        id: r.uuid(0)?,
        title: r.string(1)?,
        reason: r.opt_string(2)?,
        contact_id: r.opt_uuid(3)?,
        company_id: r.opt_uuid(4)?,
        assignee_id: r.opt_uuid(5)?,
        due_at: r.opt_time(6)?,
        status: TaskStatus::parse(&status).ok_or_else(|| StoreError::Database(format!("unknown task status {status}")))?,
        closed_at: r.opt_time(8)?,
        created_by: r.opt_uuid(9)?,
        workflow_id: r.opt_uuid(10)?,
        created_at: r.time(11)?,
        updated_at: r.time(12)?,
    })
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<Task> {
    map_row(
        tx.query_opt(&format!("{SELECT} FROM tasks t WHERE t.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("task", id))?,
    )
}

fn check_refs(tx: &mut dyn Tx, input: &TaskInput) -> Result<()> {
    if let Some(id) = input.contact_id {
        check_exists(tx, "contacts", id, "contact_id", "contact")?;
    }
    if let Some(id) = input.company_id {
        check_exists(tx, "companies", id, "company_id", "company")?;
    }
    check_user(tx, input.assignee_id, "assignee_id")
}

/// A task's moments on its contact's timeline: created, and done.
fn record(tx: &mut dyn Tx, task: &Task, kind: &'static str, actor: Option<Uuid>, now: Timestamp) -> Result<()> {
    let Some(contact_id) = task.contact_id else { return Ok(()) };
    let payload = json!({
        "task_id": task.id,
        "title": task.title,
        "reason": task.reason,
        "due_at": task.due_at,
        "assignee_id": task.assignee_id,
    });
    crate::events::record(tx, SystemEvent { contact_id, kind, occurred_at: now, payload, actor_id: actor }, now)
}

/// The closed time after a status change: set when a task closes, kept while it stays closed,
/// cleared when it is opened again.
fn closed_at(before: Option<&Task>, status: TaskStatus, now: Timestamp) -> Option<Timestamp> {
    match (status, before) {
        (TaskStatus::Open, _) => None,
        (_, Some(t)) if t.status == status => t.closed_at,
        _ => Some(now),
    }
}

/// The instant local `date` begins in `tz` (the first valid local time, across DST gaps).
fn day_start(tz: chrono_tz::Tz, date: chrono::NaiveDate) -> Timestamp {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    (0..=3)
        .find_map(|h| tz.from_local_datetime(&(midnight + chrono::Duration::hours(h))).earliest())
        .map(|t| t.to_utc())
        .unwrap_or_else(|| midnight.and_utc())
}

impl Store {
    /// `caller` (the user creating the task) is its author and, when the draft names nobody,
    /// its assignee.
    pub async fn create_task(
        &self,
        mut draft: TaskDraft,
        caller: Option<Uuid>,
        idem: Option<IdempotencyKey>,
    ) -> Result<Created<Task>> {
        let now = self.now();
        draft.assignee_id = draft.assignee_id.or(caller);
        self.create_once(idem, move |tx| {
            let input = TaskInput::parse(draft)?;
            check_refs(tx, &input)?;
            let id = new_id();
            let closed = closed_at(None, input.status, now);
            tx.execute(
                "INSERT INTO tasks (id, title, reason, contact_id, company_id, assignee_id, due_at, status, closed_at, \
                 created_by, workflow_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $11)",
                &[
                    id.into(),
                    input.title.as_str().into(),
                    input.reason.clone().into(),
                    input.contact_id.into(),
                    input.company_id.into(),
                    input.assignee_id.into(),
                    input.due_at.into(),
                    input.status.as_str().into(),
                    closed.into(),
                    caller.into(),
                    now.into(),
                ],
            )?;
            let task = load(tx, id)?;
            record(tx, &task, "task.created", caller, now)?;
            Ok(task)
        })
        .await
    }

    pub async fn get_task(&self, id: Uuid) -> Result<Task> {
        self.read_point(move |tx| load(tx, id)).await
    }

    /// Changes a task; `caller` is who did it, for the timeline when it is marked done.
    pub async fn update_task(&self, id: Uuid, patch: TaskPatch, caller: Option<Uuid>) -> Result<Task> {
        let now = self.now();
        self.write(move |tx| {
            let before = load(tx, id)?;
            let input = TaskInput::patched(&before, patch)?;
            check_refs(tx, &input)?;
            tx.execute(
                "UPDATE tasks SET title = $2, reason = $3, contact_id = $4, company_id = $5, assignee_id = $6, due_at = $7, \
                 status = $8, closed_at = $9, updated_at = $10 WHERE id = $1",
                &[
                    id.into(),
                    input.title.as_str().into(),
                    input.reason.clone().into(),
                    input.contact_id.into(),
                    input.company_id.into(),
                    input.assignee_id.into(),
                    input.due_at.into(),
                    input.status.as_str().into(),
                    closed_at(Some(&before), input.status, now).into(),
                    now.into(),
                ],
            )?;
            let task = load(tx, id)?;
            if task.status == TaskStatus::Done && before.status != TaskStatus::Done {
                record(tx, &task, "task.completed", caller, now)?;
            }
            Ok(task)
        })
        .await
    }

    pub async fn delete_task(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            load(tx, id)?;
            tx.execute("DELETE FROM tasks WHERE id = $1", &[id.into()])?;
            Ok(())
        })
        .await
    }

    /// Open tasks due soonest first by default (those without a due time last).
    pub async fn list_tasks(&self, filter: TaskFilter, page: PageRequest) -> Result<Page<Task>> {
        let now = self.now();
        let tz = filter.time_zone.unwrap_or(self.inner.options.default_time_zone);
        self.read(move |tx| {
            let sorts = match tx.dialect() {
                Dialect::Sqlite => SORTS_SQLITE,
                Dialect::Postgres => SORTS_POSTGRES,
            };
            let mut q = ListQuery::new(&page, sorts, "due_at", "t.id")?;
            if let Some(id) = filter.assignee_id {
                let p = q.param(id);
                q.condition(format!("t.assignee_id = {p}"));
            }
            if filter.unassigned {
                q.condition("t.assignee_id IS NULL".to_string());
            }
            if let Some(status) = filter.status {
                let p = q.param(status.as_str());
                q.condition(format!("t.status = {p}"));
            }
            for (column, id) in
                [("contact_id", filter.contact_id), ("company_id", filter.company_id), ("workflow_id", filter.workflow_id)]
            {
                if let Some(id) = id {
                    let p = q.param(id);
                    q.condition(format!("t.{column} = {p}"));
                }
            }
            let today = now.with_timezone(&tz).date_naive();
            let start = day_start(tz, today);
            match filter.due {
                Some(DueFilter::Today) => {
                    let end = day_start(tz, today.checked_add_days(Days::new(1)).unwrap_or(today));
                    let (a, b) = (q.param(start), q.param(end));
                    q.condition(format!("t.due_at >= {a} AND t.due_at < {b}"));
                }
                Some(DueFilter::Overdue) => {
                    let p = q.param(now);
                    q.condition(format!("t.status = 'open' AND t.due_at < {p}"));
                }
                Some(DueFilter::Upcoming) => {
                    let from = day_start(tz, today.checked_add_days(Days::new(1)).unwrap_or(today));
                    let to = day_start(tz, today.checked_add_days(Days::new(8)).unwrap_or(today));
                    let (a, b) = (q.param(from), q.param(to));
                    q.condition(format!("t.due_at >= {a} AND t.due_at < {b}"));
                }
                Some(DueFilter::None) => q.condition("t.due_at IS NULL".to_string()),
                None => {}
            }
            let rows = tx.query(&q.sql(SELECT, "FROM tasks t"), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_sets_the_time_once_and_reopening_clears_it() {
        let t0 = chrono::Utc::now();
        let t1 = t0 + chrono::Duration::hours(1);
        assert_eq!(closed_at(None, TaskStatus::Open, t0), None);
        assert_eq!(closed_at(None, TaskStatus::Done, t0), Some(t0));
        let done = Task {
            id: Uuid::nil(),
            title: "x".into(),
            reason: None,
            contact_id: None,
            company_id: None,
            assignee_id: None,
            due_at: None,
            status: TaskStatus::Done,
            closed_at: Some(t0),
            created_by: None,
            workflow_id: None,
            created_at: t0,
            updated_at: t0,
        };
        assert_eq!(closed_at(Some(&done), TaskStatus::Done, t1), Some(t0));
        assert_eq!(closed_at(Some(&done), TaskStatus::Cancelled, t1), Some(t1));
        assert_eq!(closed_at(Some(&done), TaskStatus::Open, t1), None);
    }

    #[test]
    fn a_day_starts_at_local_midnight_or_the_first_hour_after_a_gap() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let d = chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        assert_eq!(day_start(berlin, d).to_rfc3339(), "2026-06-30T22:00:00+00:00");
        // Santiago skips midnight when summer time starts (2026-09-06 00:00 → 01:00).
        let santiago: chrono_tz::Tz = "America/Santiago".parse().unwrap();
        let d = chrono::NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        assert_eq!(day_start(santiago, d).to_rfc3339(), "2026-09-06T04:00:00+00:00");
    }
}
