//! Tasks: something a person on the team should do, usually about a contact, by a time, with
//! the reason it exists ("Birthday on Friday", "Viewed the X5 twice, no order").
//!
//! Times are spelled `chrono::DateTime<chrono::Utc>` (not the `Timestamp` alias) where the
//! OpenAPI schema derives from them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationErrors;
use crate::patch::Patch;
use crate::text;

pub const MAX_TITLE_CHARS: usize = 300;
pub const MAX_REASON_CHARS: usize = 2_000;

/// Where a task stands. Only open tasks show up in someone's day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Done,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 3] = [TaskStatus::Open, TaskStatus::Done, TaskStatus::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    /// Why the task exists: what happened, or which rule created it.
    pub reason: Option<String>,
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    /// The user who should do it.
    pub assignee_id: Option<Uuid>,
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
    pub status: TaskStatus,
    /// When it was marked done or cancelled.
    pub closed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The user who created it; `null` when automation did.
    pub created_by: Option<Uuid>,
    /// The workflow that created it, if one did.
    pub workflow_id: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TaskDraft {
    pub title: Option<String>,
    pub reason: Option<String>,
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    /// Defaults to the user creating the task.
    pub assignee_id: Option<Uuid>,
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
    pub status: Option<TaskStatus>,
}

/// A change to a task; `null` clears `reason`, `contact_id`, `company_id`, `assignee_id` and
/// `due_at`.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    pub title: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub reason: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub contact_id: Patch<Uuid>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub company_id: Patch<Uuid>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub assignee_id: Patch<Uuid>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub due_at: Patch<chrono::DateTime<chrono::Utc>>,
    pub status: Option<TaskStatus>,
}

/// A validated task, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInput {
    pub title: String,
    pub reason: Option<String>,
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
    pub status: TaskStatus,
}

impl TaskInput {
    pub fn parse(d: TaskDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let title = errs.take(text::required(d.title, "title", MAX_TITLE_CHARS));
        let reason = errs.take(text::optional(d.reason, "reason", MAX_REASON_CHARS)).flatten();
        errs.into_result()?;
        Ok(Self {
            title: title.expect("checked above"),
            reason,
            contact_id: d.contact_id,
            company_id: d.company_id,
            assignee_id: d.assignee_id,
            due_at: d.due_at,
            status: d.status.unwrap_or(TaskStatus::Open),
        })
    }

    pub fn patched(current: &Task, p: TaskPatch) -> Result<Self, ValidationErrors> {
        Self::parse(TaskDraft {
            title: Some(p.title.unwrap_or_else(|| current.title.clone())),
            reason: p.reason.apply(current.reason.clone()),
            contact_id: p.contact_id.apply(current.contact_id),
            company_id: p.company_id.apply(current.company_id),
            assignee_id: p.assignee_id.apply(current.assignee_id),
            due_at: p.due_at.apply(current.due_at),
            status: Some(p.status.unwrap_or(current.status)),
        })
    }
}

/// Which tasks by their due time, relative to a local day (`today`) and `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueFilter {
    /// Due during today (local).
    Today,
    /// Open and due before now.
    Overdue,
    /// Due after today, within the next 7 days.
    Upcoming,
    /// Without a due time.
    None,
}

impl DueFilter {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "today" => DueFilter::Today,
            "overdue" => DueFilter::Overdue,
            "upcoming" => DueFilter::Upcoming,
            "none" => DueFilter::None,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(title: &str) -> TaskDraft {
        TaskDraft { title: Some(title.into()), ..Default::default() }
    }

    #[test]
    fn a_task_needs_a_title_and_is_open_by_default() {
        let t = TaskInput::parse(draft("  Call Ana back ")).unwrap();
        assert_eq!((t.title.as_str(), t.status), ("Call Ana back", TaskStatus::Open));
        let e = TaskInput::parse(draft("   ")).unwrap_err();
        assert_eq!(e.errors[0].field, "title");
        let long = "x".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(TaskInput::parse(draft(&long)).unwrap_err().errors[0].field, "title");
    }

    #[test]
    fn patches_clear_and_keep() {
        let now = chrono::Utc::now();
        let current = Task {
            id: Uuid::nil(),
            title: "Call".into(),
            reason: Some("birthday".into()),
            contact_id: Some(Uuid::nil()),
            company_id: None,
            assignee_id: Some(Uuid::nil()),
            due_at: Some(now),
            status: TaskStatus::Open,
            closed_at: None,
            created_by: None,
            workflow_id: None,
            created_at: now,
            updated_at: now,
        };
        let p: TaskPatch = serde_json::from_value(serde_json::json!({"due_at": null, "status": "done"})).unwrap();
        let t = TaskInput::patched(&current, p).unwrap();
        assert_eq!((t.due_at, t.status, t.reason.as_deref()), (None, TaskStatus::Done, Some("birthday")));
        assert!(serde_json::from_value::<TaskPatch>(serde_json::json!({"status": "later"})).is_err());
    }

    #[test]
    fn statuses_and_due_filters_parse() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DueFilter::parse("today"), Some(DueFilter::Today));
        assert_eq!(DueFilter::parse("tomorrow"), None);
    }
}
