//! What automation did and will do: for one contact, and across everyone for the days ahead.

use chrono::{DateTime, Utc};
use rapport_core::Timestamp;
use rapport_core::workflow::{Action, Step, StepPath, Template, Wait, WorkflowSpec};
use serde::Serialize;
use serde_json::Value as Json;
use uuid::Uuid;

use super::Specs;
use super::runs::{cause_summary, describe_cause};
use crate::db::Tx;
use crate::value::Row;
use crate::{Result, Store};

/// A contact's automation: runs (newest first) and the triggers scheduled for them.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactAutomation {
    pub contact_id: Uuid,
    pub runs: Vec<RunView>,
    /// Date and inactivity triggers that will fire for this person, soonest first.
    pub scheduled: Vec<UpcomingItem>,
}

/// One run: why it started, what it did, and what comes next.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunView {
    pub id: Uuid,
    pub workflow_id: Uuid,
    pub workflow: String,
    pub version: i64,
    /// `ready`, `waiting`, `done`, `exited`, `failed` or `cancelled`.
    pub status: String,
    /// What started it, as data (trigger kind, event, segment, date…).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub cause: Json,
    /// The same in words.
    pub reason: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    /// For a run still going: the step it will take next, and when.
    pub next: Option<NextStep>,
    pub steps: Vec<RunStepView>,
}

/// A step still ahead of a run.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NextStep {
    pub step: String,
    pub what: String,
    pub at: Option<DateTime<Utc>>,
    /// An event that would end the wait sooner.
    pub or_when: Option<String>,
}

/// A line of a run's history.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunStepView {
    pub step: String,
    /// The action's name, `wait` or `branch`.
    pub action: String,
    /// `done`, `queued`, `blocked`, `failed`, `deferred`, `skipped`, `unsendable`, `waiting`,
    /// `ended`, `then`, `else`.
    pub outcome: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// Something automation will do: a run's next step, or a trigger that will fire.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpcomingItem {
    pub at: DateTime<Utc>,
    /// `run` (a step of a run in flight) or `trigger` (a date or inactivity trigger).
    pub kind: &'static str,
    pub workflow_id: Uuid,
    pub workflow: String,
    pub contact_id: Uuid,
    pub contact_name: String,
    pub what: String,
    pub run_id: Option<Uuid>,
}

/// Whom a step is described for: their names fill in the placeholders of task titles and
/// notifications ("Call Ana for her birthday" rather than "Call {{first_name}} …").
pub(crate) struct Person {
    pub display_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl Person {
    /// The template with this person's names, or as written when it needs more than names
    /// (an event's details, the owner), which only the run itself knows.
    fn fill(&self, t: &Template) -> String {
        let names_only = t.placeholders().all(|p| matches!(p, "first_name" | "last_name" | "display_name"));
        if !names_only {
            return t.as_str().to_string();
        }
        t.render(&|name| match name {
            "first_name" => self.first_name.clone(),
            "last_name" => self.last_name.clone(),
            "display_name" => Some(self.display_name.clone()),
            _ => None,
        })
    }
}

/// A step in words: `create a task "Call {{first_name}}"`, `wait P2D`.
pub(crate) fn describe_step(step: &Step) -> String {
    describe_step_for(step, None)
}

/// A step in words, with `who`'s names filled in.
pub(crate) fn describe_step_for(step: &Step, who: Option<&Person>) -> String {
    let text = |t: &Template| match who {
        Some(p) => p.fill(t),
        None => t.as_str().to_string(),
    };
    match step {
        Step::Action(a) => match a {
            Action::CreateTask(t) => format!("create a task \"{}\"", text(&t.title)),
            Action::SendMessage(m) => format!("send {} \"{}\"", m.channel.as_str(), m.template),
            Action::SetStage { stage } => format!("set the stage to {}", stage.as_str()),
            Action::AddTag { tag } => format!("tag {tag}"),
            Action::RemoveTag { tag } => format!("remove the tag {tag}"),
            Action::SetField(f) => format!("set {} to {}", f.field, f.value),
            Action::AwardPoints(p) => format!("award {} points", p.points),
            Action::Notify(n) => format!("notify: {}", text(&n.message)),
            Action::Webhook(h) => format!("call {}", h.url),
            Action::StartWorkflow { workflow } => format!("start \"{workflow}\""),
        },
        Step::Wait(Wait::For { duration, until_event }) => {
            let d = rapport_core::workflow::format_duration(*duration);
            match until_event {
                Some(t) => format!("wait {d} or until {t}"),
                None => format!("wait {d}"),
            }
        }
        Step::Wait(Wait::Until { .. }) => "wait until a local time".into(),
        Step::Branch(b) => format!("if {}", b.condition),
    }
}

/// The run's next step: for a waiting run the step after the wait, at the wait's end.
fn next_step(
    spec: &WorkflowSpec,
    status: &str,
    step: Option<&str>,
    due: Option<Timestamp>,
    waiting_for: Option<String>,
    who: &Person,
) -> Option<NextStep> {
    let path: StepPath = step?.parse().ok()?;
    let (path, or_when) = if status == "waiting" { (spec.next(&path)?, waiting_for) } else { (path, None) };
    let s = spec.step(&path)?;
    Some(NextStep { step: path.to_string(), what: describe_step_for(s, Some(who)), at: due, or_when })
}

const RUN_SELECT: &str = "SELECT r.id, r.workflow_id, w.name, r.version, r.status, r.cause, r.started_at, r.ended_at, \
     r.end_reason, r.step, r.due_at, r.waiting_for, r.contact_id, c.display_name, c.first_name, c.last_name \
     FROM workflow_runs r JOIN workflows w ON w.id = r.workflow_id JOIN contacts c ON c.id = r.contact_id";

/// The run's contact from a [`RUN_SELECT`] row.
fn run_person(r: &Row) -> Result<(Uuid, Person)> {
    Ok((r.uuid(12)?, Person { display_name: r.string(13)?, first_name: r.opt_string(14)?, last_name: r.opt_string(15)? }))
}

fn run_view(tx: &mut dyn Tx, specs: &mut Specs, r: Row) -> Result<RunView> {
    let (_, who) = run_person(&r)?;
    let id = r.uuid(0)?;
    let (workflow_id, version) = (r.uuid(1)?, r.i64(3)?);
    let status = r.string(4)?;
    let cause = r.json(5)?;
    let next = match specs.get(tx, workflow_id, version)? {
        Some(spec) => next_step(&spec, &status, r.opt_string(9)?.as_deref(), r.opt_time(10)?, r.opt_string(11)?, &who),
        None => None,
    };
    let steps = tx
        .query("SELECT step, action, outcome, detail, at FROM workflow_run_steps WHERE run_id = $1 ORDER BY seq", &[id.into()])?
        .into_iter()
        .map(|s| {
            Ok(RunStepView {
                step: s.string(0)?,
                action: s.string(1)?,
                outcome: s.string(2)?,
                detail: s.string(3)?,
                at: s.time(4)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(RunView {
        id,
        workflow_id,
        workflow: r.string(2)?,
        version,
        reason: describe_cause(&cause),
        cause: cause_summary(&cause),
        status,
        started_at: r.time(6)?,
        ended_at: r.opt_time(7)?,
        end_reason: r.opt_string(8)?,
        next,
        steps,
    })
}

/// Scheduled triggers (`contact` for one person), soonest first, up to `until`.
fn scheduled(tx: &mut dyn Tx, contact: Option<Uuid>, until: Timestamp, limit: usize) -> Result<Vec<UpcomingItem>> {
    let mut params: Vec<crate::value::Value> = vec![until.into()];
    let mut sql = "SELECT s.next_at, s.workflow_id, w.name, s.contact_id, c.display_name, v.spec, c.first_name, c.last_name \
                   FROM workflow_schedules s \
                   JOIN workflows w ON w.id = s.workflow_id JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.version \
                   JOIN contacts c ON c.id = s.contact_id WHERE s.next_at IS NOT NULL AND s.next_at <= $1"
        .to_string();
    if let Some(c) = contact {
        params.push(c.into());
        sql.push_str(" AND s.contact_id = $2");
    }
    sql.push_str(&format!(" ORDER BY s.next_at, s.contact_id LIMIT {limit}"));
    tx.query(&sql, &params)?
        .into_iter()
        .map(|r| {
            let who = Person { display_name: r.string(4)?, first_name: r.opt_string(6)?, last_name: r.opt_string(7)? };
            let first = rapport_core::workflow::WorkflowSpec::parse(r.json(5)?)
                .ok()
                .and_then(|s| s.steps.first().map(|step| describe_step_for(step, Some(&who))))
                .unwrap_or_default();
            Ok(UpcomingItem {
                at: r.time(0)?,
                kind: "trigger",
                workflow_id: r.uuid(1)?,
                workflow: r.string(2)?,
                contact_id: r.uuid(3)?,
                contact_name: r.string(4)?,
                what: first,
                run_id: None,
            })
        })
        .collect()
}

impl Store {
    /// A contact's runs (newest first, at most 50) and their scheduled triggers for the next year.
    pub async fn contact_automation(&self, contact_id: Uuid) -> Result<ContactAutomation> {
        let now = self.now();
        self.read(move |tx| {
            crate::common::check_exists(tx, "contacts", contact_id, "contact_id", "contact")
                .map_err(|_| crate::StoreError::not_found("contact", contact_id))?;
            let rows = tx.query(
                &format!("{RUN_SELECT} WHERE r.contact_id = $1 ORDER BY r.started_at DESC, r.id DESC LIMIT 50"),
                &[contact_id.into()],
            )?;
            let mut specs = Specs::default();
            let runs = rows.into_iter().map(|r| run_view(tx, &mut specs, r)).collect::<Result<_>>()?;
            let scheduled = scheduled(tx, Some(contact_id), now + chrono::Duration::days(400), 50)?;
            Ok(ContactAutomation { contact_id, runs, scheduled })
        })
        .await
    }

    /// Everything automation will do in the next `days` days across all contacts: steps of
    /// runs in flight and triggers that will fire, soonest first (at most `limit`).
    pub async fn upcoming_automation(&self, days: u32, limit: usize) -> Result<Vec<UpcomingItem>> {
        let now = self.now();
        let until = now + chrono::Duration::days(i64::from(days));
        self.read(move |tx| {
            let rows = tx.query(
                &format!(
                    "{RUN_SELECT} WHERE r.status IN ('ready', 'waiting') AND r.due_at <= $1 ORDER BY r.due_at, r.id LIMIT {limit}"
                ),
                &[until.into()],
            )?;
            let mut specs = Specs::default();
            let mut out = Vec::new();
            for r in rows {
                let (contact_id, who) = run_person(&r)?;
                let view = run_view(tx, &mut specs, r)?;
                let Some(next) = view.next else { continue };
                out.push(UpcomingItem {
                    at: next.at.unwrap_or(now),
                    kind: "run",
                    workflow_id: view.workflow_id,
                    workflow: view.workflow,
                    contact_id,
                    contact_name: who.display_name,
                    what: next.what,
                    run_id: Some(view.id),
                });
            }
            out.extend(scheduled(tx, None, until, limit)?);
            out.sort_by(|a, b| a.at.cmp(&b.at).then(a.contact_id.cmp(&b.contact_id)));
            out.truncate(limit);
            Ok(out)
        })
        .await
    }
}

/// A message for a user from automation.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    pub id: Uuid,
    pub contact_id: Option<Uuid>,
    pub contact_name: Option<String>,
    pub message: String,
    pub run_id: Option<Uuid>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// A user's notifications, newest first.
    pub async fn list_notifications(&self, user_id: Uuid, unread_only: bool, limit: usize) -> Result<Vec<Notification>> {
        self.read(move |tx| {
            let unread = if unread_only { " AND n.read_at IS NULL" } else { "" };
            tx.query(
                &format!(
                    "SELECT n.id, n.contact_id, c.display_name, n.message, n.run_id, n.read_at, n.created_at FROM notifications n \
                     LEFT JOIN contacts c ON c.id = n.contact_id WHERE n.user_id = $1{unread} \
                     ORDER BY n.created_at DESC, n.id DESC LIMIT {limit}"
                ),
                &[user_id.into()],
            )?
            .into_iter()
            .map(|r| {
                Ok(Notification {
                    id: r.uuid(0)?,
                    contact_id: r.opt_uuid(1)?,
                    contact_name: r.opt_string(2)?,
                    message: r.string(3)?,
                    run_id: r.opt_uuid(4)?,
                    read_at: r.opt_time(5)?,
                    created_at: r.time(6)?,
                })
            })
            .collect()
        })
        .await
    }

    /// Marks one of the user's notifications read. Someone else's is not found.
    pub async fn mark_notification_read(&self, user_id: Uuid, id: Uuid) -> Result<()> {
        let store = self.clone();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE notifications SET read_at = coalesce(read_at, $3) WHERE id = $1 AND user_id = $2",
                &[id.into(), user_id.into(), store.now().into()],
            )?;
            if n == 0 {
                return Err(crate::StoreError::not_found("notification", id));
            }
            Ok(())
        })
        .await
    }
}

/// A contact's loyalty points: the balance and the ledger, newest first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointsAccount {
    pub contact_id: Uuid,
    pub balance: i64,
    pub entries: Vec<PointsEntry>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointsEntry {
    pub id: Uuid,
    pub points: i64,
    pub reason: Option<String>,
    pub coupon: Option<String>,
    /// The workflow run that awarded them.
    pub run_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// A contact's points balance and their latest 100 ledger entries.
    pub async fn points_account(&self, contact_id: Uuid) -> Result<PointsAccount> {
        self.read(move |tx| {
            crate::common::check_exists(tx, "contacts", contact_id, "contact_id", "contact")
                .map_err(|_| crate::StoreError::not_found("contact", contact_id))?;
            let balance = tx
                .query_one(
                    "SELECT CAST(coalesce(sum(points), 0) AS BIGINT) FROM points_ledger WHERE contact_id = $1",
                    &[contact_id.into()],
                )?
                .i64(0)?;
            let entries = tx
                .query(
                    "SELECT id, points, reason, coupon, run_id, created_at FROM points_ledger WHERE contact_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT 100",
                    &[contact_id.into()],
                )?
                .into_iter()
                .map(|r| {
                    Ok(PointsEntry {
                        id: r.uuid(0)?,
                        points: r.i64(1)?,
                        reason: r.opt_string(2)?,
                        coupon: r.opt_string(3)?,
                        run_id: r.opt_uuid(4)?,
                        created_at: r.time(5)?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(PointsAccount { contact_id, balance, entries })
        })
        .await
    }
}
