//! Runs: starting one (re-entry and conditions), and moving it through its steps with their
//! effects, in the transaction that claimed it.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

use chrono::Timelike;
use chrono_tz::Tz;
use rapport_core::Timestamp;
use rapport_core::contact::{Contact, ContactPatch};
use rapport_core::new_id;
use rapport_core::profile::LifecycleStage;
use rapport_core::segment::Filter;
use rapport_core::tag::TagName;
use rapport_core::workflow::{
    Action, CreateTask, MAX_STEPS, MessageChannel, Reentry, SendMessage, Step, StepPath, Template, UserRef, Wait, WorkflowSpec,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::{Live, PassReport, Specs};
use crate::db::{Dialect, Tx, insert_many, select_in, update_many};
use crate::events::SystemEvent;
use crate::value::Value;
use crate::{Result, Store, StoreError, contacts};

/// A run to start: its occurrence (the idempotency key within the workflow and contact), what
/// caused it, and when.
pub(crate) struct Start {
    pub occurrence: String,
    pub cause: Json,
    pub at: Timestamp,
}

/// What a manual start did.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManualStart {
    /// Runs started.
    pub started: u64,
    /// Contacts passed over: already in a run, or not matching the workflow's conditions.
    pub skipped: u64,
}

/// Whether `contact` matches `filter` now.
pub(crate) fn contact_matches(tx: &mut dyn Tx, store: &Store, contact: Uuid, filter: &Filter) -> Result<bool> {
    let mut params = Vec::new();
    let (sql, _) = store.contact_filter_sql(tx, filter, &mut params)?;
    params.push(Value::Uuid(contact));
    let n = params.len();
    tx.exists(
        &format!("SELECT 1 FROM contacts c LEFT JOIN profiles p ON p.contact_id = c.id WHERE c.id = ${n} AND ({sql})"),
        &params,
    )
}

/// Starts a run of `w` for `contact` unless its re-entry rule or conditions say no, or this
/// occurrence already started one. Returns whether it started.
pub(crate) fn start(tx: &mut dyn Tx, store: &Store, w: &Live, contact: Uuid, s: Start) -> Result<bool> {
    if !may_start(tx, store, w, contact, s.at, None)? {
        return Ok(false);
    }
    let rows = insert_many(tx, INSERT_RUN, RUN_COLUMNS, &run_row(new_id(), w, contact, s), ON_NEW_RUN)?;
    Ok(!rows.is_empty())
}

/// The columns of a new run, in the order of [`run_row`].
pub(crate) const INSERT_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, version, contact_id, occurrence, status, step, \
     due_at, cause, started_at, updated_at)";
pub(crate) const RUN_COLUMNS: usize = 11;
/// A run is started once per occurrence; the ids returned are those of the runs started.
pub(crate) const ON_NEW_RUN: &str = "ON CONFLICT (workflow_id, contact_id, occurrence) DO NOTHING RETURNING id";

/// A new run, ready to take its first step now.
pub(crate) fn run_row(id: Uuid, w: &Live, contact: Uuid, s: Start) -> [Value; RUN_COLUMNS] {
    [
        id.into(),
        w.id.into(),
        w.version.into(),
        contact.into(),
        s.occurrence.into(),
        "ready".into(),
        StepPath::top(0).to_string().into(),
        s.at.into(),
        Value::Json(s.cause),
        s.at.into(),
        s.at.into(),
    ]
}

/// Whether `w`'s re-entry rule and conditions let a run start for `contact` at `at`.
/// `in_flight`: whether the contact has a run of `w` in flight, when the caller knows it.
pub(crate) fn may_start(
    tx: &mut dyn Tx,
    store: &Store,
    w: &Live,
    contact: Uuid,
    at: Timestamp,
    in_flight: Option<bool>,
) -> Result<bool> {
    let active = |tx: &mut dyn Tx| match in_flight {
        Some(known) => Ok(known),
        None => tx.exists(
            "SELECT 1 FROM workflow_runs WHERE contact_id = $1 AND workflow_id = $2 AND status IN ('ready', 'waiting')",
            &[contact.into(), w.id.into()],
        ),
    };
    let allowed = match w.spec.reentry {
        Reentry::Always => true,
        Reentry::PerOccurrence => !active(tx)?,
        Reentry::Once => {
            // A run in flight was started, even one not written yet.
            in_flight != Some(true)
                && !tx.exists(
                    "SELECT 1 FROM workflow_runs WHERE contact_id = $1 AND workflow_id = $2",
                    &[contact.into(), w.id.into()],
                )?
        }
        Reentry::After(d) => {
            !active(tx)?
                && !tx.exists(
                    "SELECT 1 FROM workflow_runs WHERE contact_id = $1 AND workflow_id = $2 AND started_at > $3",
                    &[contact.into(), w.id.into(), (at - d).into()],
                )?
        }
    };
    if !allowed {
        return Ok(false);
    }
    if let Some(f) = &w.spec.conditions {
        match contact_matches(tx, store, contact, f) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            // A condition that no longer compiles (a custom field deleted since) starts nothing.
            Err(StoreError::Invalid(e)) => {
                tracing::warn!(workflow = %w.id, error = %e, "a workflow's conditions no longer compile; it starts no runs");
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Appends a line to a run's history.
pub(crate) fn log_step(
    tx: &mut dyn Tx,
    run_id: Uuid,
    step: &str,
    action: &str,
    outcome: &str,
    detail: &str,
    now: Timestamp,
) -> Result<()> {
    tx.execute(
        "INSERT INTO workflow_run_steps (run_id, seq, step, action, outcome, detail, at) \
         VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM workflow_run_steps WHERE run_id = $1), $2, $3, $4, $5, $6)",
        &[run_id.into(), step.into(), action.into(), outcome.into(), detail.into(), now.into()],
    )?;
    Ok(())
}

/// Ends a run.
pub(crate) fn end(tx: &mut dyn Tx, run_id: Uuid, status: &str, reason: &str, now: Timestamp) -> Result<()> {
    RunLog::direct().state(tx, run_id, RunState::Ended(status, reason), now)
}

/// Where a run stands after a pass took it as far as it goes.
enum RunState<'a> {
    /// Ended: `done`, `failed`…, with the reason.
    Ended(&'a str, &'a str),
    /// The step to run at that time (quiet hours put it off).
    Ready(&'a StepPath, Timestamp),
    /// Waiting at the step until that time, or until the event happens.
    Waiting(&'a StepPath, Timestamp, Option<&'a str>),
}

/// The lines of run history and the run updates of a pass. Written as they come
/// ([`RunLog::direct`]), or gathered and written together at the end of the pass
/// ([`RunLog::gathered`]): a few statements instead of two or three per run, which is what a
/// pass costs on PostgreSQL, where every statement is a round trip.
pub(crate) struct RunLog {
    /// The last history line of each run, when gathering.
    last_seq: Option<HashMap<Uuid, i64>>,
    lines: Vec<Value>,
    states: Vec<Value>,
}

const STEP_COLUMNS: usize = 7;
const STATE_COLUMNS: usize = 8;

impl RunLog {
    fn direct() -> Self {
        Self { last_seq: None, lines: Vec::new(), states: Vec::new() }
    }

    /// Gathers for `runs`, whose history so far is read here.
    fn gathered(tx: &mut dyn Tx, runs: &[Uuid]) -> Result<Self> {
        let keys: Vec<Value> = runs.iter().map(|r| Value::Uuid(*r)).collect();
        let mut last_seq: HashMap<Uuid, i64> = runs.iter().map(|r| (*r, 0)).collect();
        for r in
            select_in(tx, "SELECT run_id, max(seq) FROM workflow_run_steps WHERE run_id IN ({in}) GROUP BY run_id", &[], &keys)?
        {
            last_seq.insert(r.uuid(0)?, r.i64(1)?);
        }
        Ok(Self { last_seq: Some(last_seq), lines: Vec::new(), states: Vec::new() })
    }

    /// Appends a line to a run's history.
    #[allow(clippy::too_many_arguments)]
    fn line(
        &mut self,
        tx: &mut dyn Tx,
        run_id: Uuid,
        step: &str,
        action: &str,
        outcome: &str,
        detail: &str,
        now: Timestamp,
    ) -> Result<()> {
        let Some(last_seq) = &mut self.last_seq else { return log_step(tx, run_id, step, action, outcome, detail, now) };
        let seq = last_seq.get_mut(&run_id).ok_or_else(|| StoreError::Database(format!("run {run_id} is not in this pass")))?;
        *seq += 1;
        self.lines.extend([run_id.into(), (*seq).into(), step.into(), action.into(), outcome.into(), detail.into(), now.into()]);
        Ok(())
    }

    /// Records where a run stands.
    fn state(&mut self, tx: &mut dyn Tx, run_id: Uuid, state: RunState<'_>, now: Timestamp) -> Result<()> {
        let (status, step, due, waiting_for, ended_at, reason) = match state {
            RunState::Ended(status, reason) => (status, None, None, None, Some(now), Some(reason.to_string())),
            RunState::Ready(p, at) => ("ready", Some(p.to_string()), Some(at), None, None, None),
            RunState::Waiting(p, at, event) => ("waiting", Some(p.to_string()), Some(at), event.map(str::to_string), None, None),
        };
        let row: [Value; STATE_COLUMNS] = [
            run_id.into(),
            status.into(),
            step.into(),
            due.into(),
            waiting_for.into(),
            ended_at.into(),
            reason.into(),
            now.into(),
        ];
        if self.last_seq.is_some() {
            self.states.extend(row);
            return Ok(());
        }
        tx.execute(
            "UPDATE workflow_runs SET status = $2, step = $3, due_at = $4, waiting_for = $5, ended_at = $6, end_reason = $7, \
             updated_at = $8 WHERE id = $1",
            &row,
        )?;
        Ok(())
    }

    /// Writes what was gathered.
    fn write(self, tx: &mut dyn Tx) -> Result<()> {
        if !self.lines.is_empty() {
            insert_many(
                tx,
                "INSERT INTO workflow_run_steps (run_id, seq, step, action, outcome, detail, at)",
                STEP_COLUMNS,
                &self.lines,
                "",
            )?;
        }
        update_many(
            tx,
            "workflow_runs",
            &[
                ("id", "uuid"),
                ("status", "text"),
                ("step", "text"),
                ("due_at", "timestamptz"),
                ("waiting_for", "text"),
                ("ended_at", "timestamptz"),
                ("end_reason", "text"),
                ("updated_at", "timestamptz"),
            ],
            &self.states,
        )
    }
}

/// Ends a wait early because the awaited event happened: the run goes on with the next step,
/// which it answers (`Some(None)`: there is none). `None` when the run was no longer waiting
/// at `step`: on PostgreSQL a pass that found the wait over may have moved it on meanwhile
/// (the update waits for that pass and then finds nothing to change, so the step after the
/// wait is not taken twice).
pub(crate) fn wake(
    tx: &mut dyn Tx,
    run_id: Uuid,
    spec: &WorkflowSpec,
    step: &str,
    detail: &str,
    now: Timestamp,
) -> Result<Option<Option<String>>> {
    let next = step.parse::<StepPath>().ok().and_then(|p| spec.next(&p)).map(|p| p.to_string());
    let woken = tx.execute(
        "UPDATE workflow_runs SET status = 'ready', step = $2, due_at = $3, waiting_for = NULL, updated_at = $3 \
         WHERE id = $1 AND status = 'waiting' AND step = $4",
        &[run_id.into(), next.clone().into(), now.into(), step.into()],
    )?;
    if woken == 0 {
        return Ok(None);
    }
    log_step(tx, run_id, step, "wait", "ended", detail, now)?;
    Ok(Some(next))
}

/// A claimed run.
struct Run {
    id: Uuid,
    workflow_id: Uuid,
    version: i64,
    contact_id: Uuid,
    waiting: bool,
    step: Option<String>,
    waiting_for: Option<String>,
    cause: Json,
}

/// Claims up to `batch` runs whose next step is due and moves each as far as it goes now. A run
/// whose contact has events still in the inbox waits for them to be looked at first: one of
/// them may end it (a reply, an order) or end its wait.
///
/// `careful` puts each run in a savepoint, so that a step that fails is recorded and tried
/// again later while the others' work stands. Without it a failing step fails the whole pass
/// (its transaction is rolled back) and the caller runs it again carefully: savepoints cost a
/// round trip each on PostgreSQL, and steps rarely fail.
pub(super) fn advance_due(tx: &mut dyn Tx, store: &Store, batch: usize, careful: bool) -> Result<PassReport> {
    let now = store.now();
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE OF r SKIP LOCKED" } else { "" };
    let rows = tx.query(
        &format!(
            "SELECT r.id, r.workflow_id, r.version, r.contact_id, r.status, r.step, r.waiting_for, r.cause \
             FROM workflow_runs r JOIN workflows w ON w.id = r.workflow_id \
             WHERE r.status IN ('ready', 'waiting') AND r.due_at <= $1 AND w.enabled \
             AND NOT EXISTS (SELECT 1 FROM automation_inbox i WHERE i.contact_id = r.contact_id) \
             ORDER BY r.due_at, r.id LIMIT {batch}{lock}"
        ),
        &[now.into()],
    )?;
    let mut report = PassReport::default();
    let mut specs = Specs::default();
    let runs = rows
        .into_iter()
        .map(|r| {
            Ok(Run {
                id: r.uuid(0)?,
                workflow_id: r.uuid(1)?,
                version: r.i64(2)?,
                contact_id: r.uuid(3)?,
                waiting: r.string(4)? == "waiting",
                step: r.opt_string(5)?,
                waiting_for: r.opt_string(6)?,
                cause: r.json(7)?,
            })
        })
        .collect::<Result<Vec<Run>>>()?;
    report.runs_advanced = runs.len() as u64;
    if !careful {
        let log = RefCell::new(RunLog::gathered(tx, &runs.iter().map(|r| r.id).collect::<Vec<_>>())?);
        for run in &runs {
            report.runs_ended += u64::from(advance(tx, store, &mut specs, &log, run, now)?);
        }
        log.into_inner().write(tx)?;
        return Ok(report);
    }
    let log = RefCell::new(RunLog::direct());
    for run in &runs {
        tx.execute_batch("SAVEPOINT run")?;
        match advance(tx, store, &mut specs, &log, run, now) {
            Ok(ended) => {
                tx.execute_batch("RELEASE SAVEPOINT run")?;
                report.runs_ended += u64::from(ended);
            }
            Err(e) => {
                tx.execute_batch("ROLLBACK TO SAVEPOINT run; RELEASE SAVEPOINT run")?;
                tracing::warn!(run = %run.id, error = %e, "a workflow step failed; it is tried again in 5 minutes");
                let step = run.step.clone().unwrap_or_default();
                log_step(
                    tx,
                    run.id,
                    &step,
                    "error",
                    "retry",
                    &format!("could not run the step ({e}); trying again in 5 minutes"),
                    now,
                )?;
                tx.execute(
                    "UPDATE workflow_runs SET due_at = $2, updated_at = $3 WHERE id = $1",
                    &[run.id.into(), (now + chrono::Duration::minutes(5)).into(), now.into()],
                )?;
            }
        }
    }
    Ok(report)
}

/// What an action came to.
enum Outcome {
    /// Go on with the next step.
    Next,
    /// Run this step again at that time (quiet hours).
    Defer(Timestamp),
}

/// What a run's steps can read.
struct Ctx<'a> {
    store: &'a Store,
    run: &'a Run,
    spec: &'a WorkflowSpec,
    /// The contact and their time zone, loaded when a step first needs them (a wait does not).
    contact: OnceCell<(Contact, Tz)>,
    log: &'a RefCell<RunLog>,
    now: Timestamp,
}

impl Ctx<'_> {
    fn contact(&self, tx: &mut dyn Tx) -> Result<&Contact> {
        Ok(&self.loaded(tx)?.0)
    }

    fn tz(&self, tx: &mut dyn Tx) -> Result<Tz> {
        Ok(self.loaded(tx)?.1)
    }

    fn loaded(&self, tx: &mut dyn Tx) -> Result<&(Contact, Tz)> {
        if let Some(loaded) = self.contact.get() {
            return Ok(loaded);
        }
        let contact = contacts::load(tx, self.run.contact_id)?;
        let tz = contact.time_zone.as_deref().and_then(|t| t.parse().ok()).unwrap_or(self.store.options().default_time_zone);
        Ok(self.contact.get_or_init(|| (contact, tz)))
    }

    fn render(&self, tx: &mut dyn Tx, t: &Template) -> Result<String> {
        let c = self.contact(tx)?;
        let owner = match (t.placeholders().any(|p| p == "owner_name"), c.owner_id) {
            (true, Some(id)) => {
                tx.query_opt("SELECT name FROM users WHERE id = $1", &[id.into()])?.map(|r| r.string(0)).transpose()?
            }
            _ => None,
        };
        let payload = self.run.cause.get("payload");
        Ok(t.render(&|name| match name {
            "first_name" => c.first_name.clone(),
            "last_name" => c.last_name.clone(),
            "display_name" => Some(c.display_name.clone()),
            "owner_name" => owner.clone(),
            "email" => c.primary_email().map(|e| e.as_str().to_string()),
            other => {
                let path = other.strip_prefix("event.")?;
                let mut v = payload?;
                for key in path.split('.') {
                    v = match v {
                        Json::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                        Json::Object(m) => m.get(key)?,
                        _ => return None,
                    };
                }
                match v {
                    Json::String(s) => Some(s.clone()),
                    Json::Null => None,
                    other => Some(other.to_string()),
                }
            }
        }))
    }

    /// A line of the run's history, and the same on the contact's timeline with its cause.
    fn record(&self, tx: &mut dyn Tx, step: &StepPath, action: &str, outcome: &str, detail: &str) -> Result<()> {
        self.log.borrow_mut().line(tx, self.run.id, &step.to_string(), action, outcome, detail, self.now)?;
        crate::events::record(
            tx,
            SystemEvent {
                contact_id: self.run.contact_id,
                kind: "workflow.action",
                occurred_at: self.now,
                payload: json!({
                    "workflow_id": self.run.workflow_id,
                    "workflow": self.spec.name,
                    "version": self.run.version,
                    "run_id": self.run.id,
                    "step": step.to_string(),
                    "action": action,
                    "outcome": outcome,
                    "detail": detail,
                    "cause": cause_summary(&self.run.cause),
                }),
                actor_id: None,
            },
            self.now,
        )
    }

    /// The user a step names: the contact's owner, or a user by email.
    fn user(&self, tx: &mut dyn Tx, who: &UserRef) -> Result<std::result::Result<Uuid, String>> {
        match who {
            UserRef::Owner => Ok(self.contact(tx)?.owner_id.ok_or_else(|| "the contact has no owner".to_string())),
            UserRef::User(email) => Ok(tx
                .query_opt("SELECT id FROM users WHERE lower(email) = $1 AND active", &[email.as_str().to_lowercase().into()])?
                .map(|r| r.uuid(0))
                .transpose()?
                .ok_or_else(|| format!("no active user has the email {}", email.as_str()))),
        }
    }

    fn idempotency_key(&self, step: &StepPath) -> String {
        format!("run:{}:{step}", self.run.id)
    }
}

/// The cause without a (possibly large) event payload, for timelines and views.
pub(crate) fn cause_summary(cause: &Json) -> Json {
    let mut c = cause.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("payload");
    }
    c
}

/// Moves one run as far as it goes now. Returns whether it ended.
fn advance(tx: &mut dyn Tx, store: &Store, specs: &mut Specs, log: &RefCell<RunLog>, run: &Run, now: Timestamp) -> Result<bool> {
    let end =
        |tx: &mut dyn Tx, status: &str, reason: &str| log.borrow_mut().state(tx, run.id, RunState::Ended(status, reason), now);
    let Some(spec) = specs.get(tx, run.workflow_id, run.version)? else {
        end(tx, "failed", &format!("version {} of the workflow is gone", run.version))?;
        return Ok(true);
    };
    let cx = Ctx { store, run, spec: &spec, contact: OnceCell::new(), log, now };
    let mut path = match run.step.as_deref().map(str::parse::<StepPath>) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            end(tx, "failed", &e)?;
            return Ok(true);
        }
        None => None,
    };
    if run.waiting
        && let Some(p) = &path
    {
        let detail = match &run.waiting_for {
            Some(t) => format!("no {t} before the wait ran out"),
            None => "the wait is over".to_string(),
        };
        log.borrow_mut().line(tx, run.id, &p.to_string(), "wait", "ended", &detail, now)?;
        path = spec.next(p);
    }
    for _ in 0..MAX_STEPS * 2 {
        let Some(p) = path.take() else {
            end(tx, "done", "every step is done")?;
            return Ok(true);
        };
        match spec.step(&p) {
            None => {
                end(tx, "failed", &format!("version {} has no step {p}", run.version))?;
                return Ok(true);
            }
            Some(Step::Action(a)) => match perform(tx, &cx, &p, a)? {
                Outcome::Next => path = spec.next(&p),
                Outcome::Defer(until) => {
                    log.borrow_mut().state(tx, run.id, RunState::Ready(&p, until), now)?;
                    return Ok(false);
                }
            },
            Some(Step::Wait(w)) => {
                let (until, event) = match w {
                    Wait::For { duration, until_event } => (Some(now + *duration), until_event.clone()),
                    Wait::Until { wait_until } => (wait_until.ends_at(cx.tz(tx)?, now), None),
                };
                let Some(until) = until.filter(|u| *u > now) else {
                    log.borrow_mut().line(
                        tx,
                        run.id,
                        &p.to_string(),
                        "wait",
                        "skipped",
                        "the time it waits for has already passed",
                        now,
                    )?;
                    path = spec.next(&p);
                    continue;
                };
                let detail = match &event {
                    Some(t) => format!("until {t} or {}", until.format("%Y-%m-%d %H:%M UTC")),
                    None => format!("until {}", until.format("%Y-%m-%d %H:%M UTC")),
                };
                log.borrow_mut().line(tx, run.id, &p.to_string(), "wait", "waiting", &detail, now)?;
                log.borrow_mut().state(tx, run.id, RunState::Waiting(&p, until, event.as_deref()), now)?;
                return Ok(false);
            }
            Some(Step::Branch(b)) => {
                let holds = match contact_matches(tx, store, run.contact_id, &b.condition) {
                    Ok(h) => h,
                    Err(StoreError::Invalid(e)) => {
                        end(tx, "failed", &format!("the condition of {p} no longer compiles: {e}"))?;
                        return Ok(true);
                    }
                    Err(e) => return Err(e),
                };
                let arm = if holds { "then" } else { "else" };
                log.borrow_mut().line(
                    tx,
                    run.id,
                    &p.to_string(),
                    "branch",
                    arm,
                    &format!("{} {}", b.condition, if holds { "holds" } else { "does not hold" }),
                    now,
                )?;
                path = spec.enter(&p, holds);
            }
        }
    }
    end(tx, "failed", "the run took more steps than the workflow has")?;
    Ok(true)
}

/// Does one action, recording what it did (or why it did not).
fn perform(tx: &mut dyn Tx, cx: &Ctx<'_>, p: &StepPath, action: &Action) -> Result<Outcome> {
    let name = action.name();
    let now = cx.now;
    match action {
        Action::CreateTask(t) => create_task(tx, cx, p, t)?,
        Action::SendMessage(m) => return send_message(tx, cx, p, m),
        Action::SetStage { stage } => set_stage(tx, cx, p, *stage)?,
        Action::AddTag { tag } | Action::RemoveTag { tag } => {
            let add = matches!(action, Action::AddTag { .. });
            let name_ok = TagName::parse(tag).map_err(|m| StoreError::invalid("tag", m))?;
            let changed = if add {
                let ids = crate::common::resolve_tags(tx, std::slice::from_ref(&name_ok), now)?;
                let mut n = 0;
                for tag_id in ids {
                    n += tx.execute(
                        "INSERT INTO contact_tags (contact_id, tag_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[cx.run.contact_id.into(), tag_id.into()],
                    )?;
                }
                n
            } else {
                tx.execute(
                    "DELETE FROM contact_tags WHERE contact_id = $1 AND tag_id IN (SELECT id FROM tags WHERE name_key = $2)",
                    &[cx.run.contact_id.into(), name_ok.key().into()],
                )?
            };
            if changed > 0 {
                crate::bulk::touch(tx, &[cx.run.contact_id], now, true)?;
            }
            let detail = match (add, changed > 0) {
                (true, true) => format!("tagged {tag}"),
                (true, false) => format!("already tagged {tag}"),
                (false, true) => format!("removed the tag {tag}"),
                (false, false) => format!("was not tagged {tag}"),
            };
            cx.record(tx, p, name, "done", &detail)?;
        }
        Action::SetField(f) => {
            let mut value = f.value.clone();
            let patch = if let Some(key) = f.field.strip_prefix("custom.") {
                json!({"custom_fields": {key: value}})
            } else if f.field == "owner" {
                if let Json::String(email) = &value {
                    match tx.query_opt("SELECT id FROM users WHERE lower(email) = $1", &[email.to_lowercase().into()])? {
                        Some(r) => value = json!(r.uuid(0)?),
                        None => {
                            cx.record(tx, p, name, "failed", &format!("no user has the email {email}"))?;
                            return Ok(Outcome::Next);
                        }
                    }
                }
                json!({"owner_id": value})
            } else {
                json!({ f.field.as_str(): value })
            };
            let patch: ContactPatch = serde_json::from_value(patch).map_err(|e| StoreError::invalid(&f.field, e.to_string()))?;
            tx.execute_batch("SAVEPOINT set_field")?;
            match contacts::update_tx(tx, cx.store, cx.run.contact_id, patch) {
                Ok(_) => {
                    tx.execute_batch("RELEASE SAVEPOINT set_field")?;
                    cx.record(tx, p, name, "done", &format!("set {} to {}", f.field, f.value))?;
                }
                Err(StoreError::Invalid(e)) => {
                    tx.execute_batch("ROLLBACK TO SAVEPOINT set_field; RELEASE SAVEPOINT set_field")?;
                    cx.record(tx, p, name, "failed", &format!("could not set {}: {e}", f.field))?;
                }
                Err(e) => return Err(e),
            }
        }
        Action::AwardPoints(a) => {
            let reason = match &a.reason {
                Some(t) => Some(cx.render(tx, t)?),
                None => Some(format!("workflow \"{}\"", cx.spec.name)),
            };
            tx.execute(
                "INSERT INTO points_ledger (id, contact_id, points, reason, coupon, run_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    new_id().into(),
                    cx.run.contact_id.into(),
                    i64::from(a.points).into(),
                    reason.clone().into(),
                    a.coupon.clone().into(),
                    cx.run.id.into(),
                    now.into(),
                ],
            )?;
            let coupon = a.coupon.as_deref().map(|c| format!(" and coupon {c}")).unwrap_or_default();
            cx.record(tx, p, name, "done", &format!("awarded {} points{coupon}", a.points))?;
        }
        Action::Notify(n) => match cx.user(tx, &n.user)? {
            Ok(user) => {
                let message = cx.render(tx, &n.message)?;
                tx.execute(
                    "INSERT INTO notifications (id, user_id, contact_id, message, run_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[new_id().into(), user.into(), cx.run.contact_id.into(), message.as_str().into(), cx.run.id.into(), now.into()],
                )?;
                cx.record(tx, p, name, "done", &format!("notified: {message}"))?;
            }
            Err(why) => cx.record(tx, p, name, "failed", &format!("nobody to notify: {why}"))?,
        },
        Action::Webhook(h) => {
            let id = new_id();
            let body = json!({
                "id": id,
                "type": "workflow.webhook",
                "workflow": {"id": cx.run.workflow_id, "name": cx.spec.name, "version": cx.run.version},
                "run_id": cx.run.id,
                "step": p.to_string(),
                "cause": cause_summary(&cx.run.cause),
                "contact": cx.contact(tx)?,
                "created_at": now,
            });
            tx.execute(
                "INSERT INTO webhook_deliveries (id, run_id, idempotency_key, url, secret_ref, body, status, next_attempt_at, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7, $7) ON CONFLICT (idempotency_key) DO NOTHING",
                &[
                    id.into(),
                    cx.run.id.into(),
                    cx.idempotency_key(p).into(),
                    h.url.as_str().into(),
                    h.secret_ref.clone().into(),
                    Value::Json(body),
                    now.into(),
                ],
            )?;
            cx.record(tx, p, name, "queued", &format!("calls {}", h.url))?;
        }
        Action::StartWorkflow { workflow } => {
            let target = super::live_workflows(tx)?.into_iter().find(|w| w.spec.name.to_lowercase() == workflow.to_lowercase());
            match target {
                None => cx.record(tx, p, name, "blocked", &format!("\"{workflow}\" is switched off or gone"))?,
                Some(w) => {
                    let started = start(
                        tx,
                        cx.store,
                        &w,
                        cx.run.contact_id,
                        Start {
                            occurrence: format!("from:{}:{p}", cx.run.id),
                            cause: json!({"trigger": "workflow", "workflow": cx.spec.name, "workflow_id": cx.run.workflow_id, "run_id": cx.run.id, "step": p.to_string()}),
                            at: now,
                        },
                    )?;
                    let detail = if started {
                        format!("started \"{workflow}\"")
                    } else {
                        format!("\"{workflow}\" did not start: the contact is already in it, or does not meet its conditions")
                    };
                    cx.record(tx, p, name, if started { "done" } else { "skipped" }, &detail)?;
                }
            }
        }
    }
    Ok(Outcome::Next)
}

fn create_task(tx: &mut dyn Tx, cx: &Ctx<'_>, p: &StepPath, t: &CreateTask) -> Result<()> {
    let title = cx.render(tx, &t.title)?;
    let title = if title.trim().is_empty() { format!("Follow up ({})", cx.spec.name) } else { title };
    let reason = match &t.reason {
        Some(r) => cx.render(tx, r)?,
        None => format!("Workflow \"{}\": {}", cx.spec.name, describe_cause(&cx.run.cause)),
    };
    let (assignee, note) = match cx.user(tx, &t.assignee)? {
        Ok(id) => (Some(id), String::new()),
        Err(why) => (None, format!(" (unassigned: {why})")),
    };
    let due = t.due.map(|d| cx.now + d);
    let id = new_id();
    let title: String = title.chars().take(200).collect();
    tx.execute(
        "INSERT INTO tasks (id, title, reason, contact_id, company_id, assignee_id, due_at, status, closed_at, created_by, \
         workflow_id, run_id, created_at, updated_at) VALUES ($1, $2, $3, $4, NULL, $5, $6, 'open', NULL, NULL, $7, $8, $9, $9)",
        &[
            id.into(),
            title.as_str().into(),
            reason.as_str().into(),
            cx.run.contact_id.into(),
            assignee.into(),
            due.into(),
            cx.run.workflow_id.into(),
            cx.run.id.into(),
            cx.now.into(),
        ],
    )?;
    crate::events::record(
        tx,
        SystemEvent {
            contact_id: cx.run.contact_id,
            kind: "task.created",
            occurred_at: cx.now,
            payload: json!({
                "task_id": id, "title": title, "reason": reason, "due_at": due, "assignee_id": assignee,
                "workflow_id": cx.run.workflow_id, "workflow": cx.spec.name, "run_id": cx.run.id, "step": p.to_string(),
                "cause": cause_summary(&cx.run.cause),
            }),
            actor_id: None,
        },
        cx.now,
    )?;
    cx.log.borrow_mut().line(tx, cx.run.id, &p.to_string(), "create_task", "done", &format!("task \"{title}\"{note}"), cx.now)
}

/// The guards every message passes (consent, quiet hours, frequency caps) before it goes to
/// the outbox.
fn send_message(tx: &mut dyn Tx, cx: &Ctx<'_>, p: &StepPath, m: &SendMessage) -> Result<Outcome> {
    let name = "send_message";
    let opts = &cx.store.options().automation;
    let channel = m.channel.as_str();
    // Text channels send to the primary phone in E.164, which is what providers expect.
    let address = match m.channel {
        MessageChannel::Email => cx.contact(tx)?.primary_email().map(|e| e.as_str().to_string()),
        MessageChannel::Sms | MessageChannel::Chat => {
            let phones = &cx.contact(tx)?.phones;
            phones.iter().find(|ph| ph.primary).or(phones.first()).map(|ph| ph.e164.clone())
        }
    };
    if address.is_none() {
        let why = if m.channel.uses_phone() {
            format!("no phone number to send {channel} to")
        } else {
            "no email address to send to".to_string()
        };
        cx.record(tx, p, name, "blocked", &why)?;
        return Ok(Outcome::Next);
    }
    // "Do not contact" stops marketing on every channel, whatever the consent says.
    if let Some(r) = tx.query_opt(
        "SELECT changed_at FROM contact_privacy WHERE contact_id = $1 AND do_not_contact",
        &[cx.run.contact_id.into()],
    )? {
        let when = r.time(0)?.format("%Y-%m-%d");
        cx.record(tx, p, name, "blocked", &format!("they asked not to be contacted (do not contact, since {when})"))?;
        return Ok(Outcome::Next);
    }
    if let Some(r) = tx.query_opt(
        "SELECT changed_at FROM contact_subscriptions WHERE contact_id = $1 AND topic = '*' AND NOT subscribed",
        &[cx.run.contact_id.into()],
    )? {
        let when = r.time(0)?.format("%Y-%m-%d");
        cx.record(tx, p, name, "blocked", &format!("they unsubscribed from all marketing on {when}"))?;
        return Ok(Outcome::Next);
    }
    // Text channels follow the consent ledger of their own channel (a STOP reply, a recorded
    // withdrawal); email follows its subscription state above.
    if m.channel.uses_phone()
        && let Some(when) = super::texting::marketing_withdrawn(tx, cx.run.contact_id, channel)?
    {
        let when = when.format("%Y-%m-%d");
        cx.record(tx, p, name, "blocked", &format!("they withdrew consent to marketing by {channel} on {when}"))?;
        return Ok(Outcome::Next);
    }
    let tz = cx.tz(tx)?;
    if let Some((from, to)) = opts.quiet_hours
        && let Some(until) = quiet_until(tz, cx.now, from.time(), to.time())
    {
        cx.record(tx, p, name, "deferred", &format!("quiet hours in {}; sending at {}", tz, until.format("%Y-%m-%d %H:%M UTC")))?;
        return Ok(Outcome::Defer(until));
    }
    for cap in &opts.caps {
        if cap.channel.is_some_and(|c| c != m.channel) {
            continue;
        }
        let mut params: Vec<Value> = vec![cx.run.contact_id.into(), (cx.now - cap.per).into()];
        let mut sql = "SELECT count(*) FROM message_outbox WHERE contact_id = $1 AND marketing AND status IN ('queued', 'sent') \
                       AND created_at > $2"
            .to_string();
        if let Some(c) = cap.channel {
            params.push(c.as_str().into());
            sql.push_str(" AND channel = $3");
        }
        let sent = tx.query_one(&sql, &params)?.i64(0)?;
        if sent >= i64::from(cap.max) {
            let scope = cap.channel.map(|c| format!("{} ", c.as_str())).unwrap_or_default();
            cx.record(
                tx,
                p,
                name,
                "blocked",
                &format!(
                    "frequency cap: {sent} {scope}marketing messages in the last {} days (at most {})",
                    cap.per.num_days(),
                    cap.max
                ),
            )?;
            return Ok(Outcome::Next);
        }
    }
    // After the guards, so that the holdout holds only people the message would have reached:
    // the group its statistics compare the messaged with.
    if cx.spec.holds_out(cx.run.workflow_id, cx.run.contact_id) {
        cx.record(
            tx,
            p,
            name,
            "held_out",
            &format!(
                "{channel} \"{}\" not sent: in the workflow's {}% holdout, to measure its effect",
                m.template, cx.spec.holdout_percent
            ),
        )?;
        return Ok(Outcome::Next);
    }
    let subject = match &m.subject {
        Some(t) => Some(cx.render(tx, t)?),
        None => None,
    };
    let ready = opts.ready_channels.contains(&m.channel);
    let (status, reason) = if ready {
        ("queued", None)
    } else {
        ("unsendable", Some(format!("no {channel} channel is set up; configure one to send (see docs/configuration.md)")))
    };
    tx.execute(
        "INSERT INTO message_outbox (id, run_id, idempotency_key, contact_id, channel, template, subject, marketing, status, \
         status_reason, recipient, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $9, $11, $10, $10, $10) \
         ON CONFLICT (idempotency_key) DO NOTHING",
        &[
            new_id().into(),
            cx.run.id.into(),
            cx.idempotency_key(p).into(),
            cx.run.contact_id.into(),
            channel.into(),
            m.template.as_str().into(),
            subject.into(),
            status.into(),
            reason.clone().into(),
            cx.now.into(),
            address.clone().into(),
        ],
    )?;
    let detail = match reason {
        None => format!("{channel} \"{}\" queued", m.template),
        Some(r) => format!("{channel} \"{}\" is in the outbox but cannot go out: {r}", m.template),
    };
    cx.record(tx, p, name, if ready { "queued" } else { "unsendable" }, &detail)?;
    Ok(Outcome::Next)
}

/// When quiet hours (`from` to `to`, local) end, if `now` falls inside them.
fn quiet_until(tz: Tz, now: Timestamp, from: chrono::NaiveTime, to: chrono::NaiveTime) -> Option<Timestamp> {
    let local = now.with_timezone(&tz);
    let t = local.time().with_nanosecond(0)?;
    let inside = if from <= to { t >= from && t < to } else { t >= from || t < to };
    if !inside {
        return None;
    }
    let day = if from > to && t >= from { local.date_naive().succ_opt()? } else { local.date_naive() };
    rapport_core::workflow::local_instant(tz, day.and_time(to))
}

fn set_stage(tx: &mut dyn Tx, cx: &Ctx<'_>, p: &StepPath, stage: LifecycleStage) -> Result<()> {
    let current = tx
        .query_opt("SELECT lifecycle_stage FROM profiles WHERE contact_id = $1", &[cx.run.contact_id.into()])?
        .map(|r| r.string(0))
        .transpose()?
        .and_then(|s| LifecycleStage::parse(&s))
        .unwrap_or(LifecycleStage::Lead);
    if current == stage {
        return cx.record(tx, p, "set_stage", "done", &format!("already {}", stage.as_str()));
    }
    let reason = format!("set by workflow \"{}\"", cx.spec.name);
    tx.execute(
        "INSERT INTO profiles (contact_id, lifecycle_stage, stage_reason, stage_since, updated_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (contact_id) DO UPDATE SET lifecycle_stage = excluded.lifecycle_stage, stage_reason = excluded.stage_reason, \
         stage_since = excluded.stage_since, updated_at = excluded.updated_at",
        &[cx.run.contact_id.into(), stage.as_str().into(), reason.as_str().into(), cx.now.into()],
    )?;
    crate::events::record(
        tx,
        SystemEvent {
            contact_id: cx.run.contact_id,
            kind: "lifecycle.changed",
            occurred_at: cx.now,
            payload: json!({"from": current.as_str(), "to": stage.as_str(), "reason": reason, "workflow_id": cx.run.workflow_id, "run_id": cx.run.id}),
            actor_id: None,
        },
        cx.now,
    )?;
    crate::segments::mark_segments_dirty(tx, &[cx.run.contact_id], cx.now)?;
    cx.record(tx, p, "set_stage", "done", &format!("moved from {} to {}", current.as_str(), stage.as_str()))
}

/// The cause in words, for task reasons.
pub(crate) fn describe_cause(cause: &Json) -> String {
    let s = |k: &str| cause.get(k).and_then(Json::as_str).unwrap_or_default().to_string();
    match s("trigger").as_str() {
        "event" => format!("{} on {}", s("event_type"), s("occurred_at").get(..10).unwrap_or_default()),
        "segment_entered" => format!("entered the segment \"{}\"", s("segment")),
        "segment_exited" => format!("left the segment \"{}\"", s("segment")),
        "date" => match cause.get("related").and_then(Json::as_str) {
            Some(kind) => format!("their {kind}'s {} ({}) comes up on {}", s("field"), s("date"), s("fires_on")),
            None => format!("their {} ({}) comes up on {}", s("field").replace('_', " "), s("date"), s("fires_on")),
        },
        "inactivity" => format!(
            "no {} for {} days (last on {})",
            s("event_type"),
            cause.get("days").and_then(Json::as_u64).unwrap_or_default(),
            s("last_at").get(..10).unwrap_or_default()
        ),
        "threshold" => format!(
            "{} reached {}",
            s("metric").replace('_', " "),
            cause.get("level").or_else(|| cause.get("after")).map(|v| v.to_string()).unwrap_or_default()
        ),
        "stage_changed" => format!("became {} ({})", s("to").replace('_', " "), s("reason")),
        "manual" => {
            format!("started by hand{}", cause.get("by").and_then(Json::as_str).map(|b| format!(" by {b}")).unwrap_or_default())
        }
        "workflow" => format!("started by the workflow \"{}\"", s("workflow")),
        other => other.to_string(),
    }
}

impl Store {
    /// Starts `workflow` by hand for one contact or for every member of a segment, now.
    pub async fn start_workflow_manually(
        &self,
        workflow: Uuid,
        contact: Option<Uuid>,
        segment: Option<Uuid>,
        by: Option<String>,
    ) -> Result<ManualStart> {
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            let w = super::live_workflows(tx)?.into_iter().find(|w| w.id == workflow);
            let Some(w) = w else {
                if tx.exists("SELECT 1 FROM workflows WHERE id = $1", &[workflow.into()])? {
                    return Err(StoreError::conflict("enabled", "the workflow is switched off; enable it first"));
                }
                return Err(StoreError::not_found("workflow", workflow));
            };
            let targets: Vec<Uuid> = match (contact, segment) {
                (Some(c), None) => {
                    crate::common::check_exists(tx, "contacts", c, "contact_id", "contact")?;
                    vec![c]
                }
                (None, Some(s)) => {
                    crate::common::check_exists(tx, "segments", s, "segment_id", "segment")?;
                    tx.query("SELECT contact_id FROM segment_members WHERE segment_id = $1 ORDER BY contact_id", &[s.into()])?
                        .into_iter()
                        .map(|r| r.uuid(0))
                        .collect::<Result<_>>()?
                }
                _ => return Err(StoreError::invalid("contact_id", "give exactly one of contact_id or segment_id")),
            };
            let batch = new_id();
            let mut report = ManualStart::default();
            for c in targets {
                let cause = json!({"trigger": "manual", "by": by, "segment_id": segment, "batch": batch});
                if start(tx, &store, &w, c, Start { occurrence: format!("manual:{batch}"), cause, at: now })? {
                    report.started += 1;
                } else {
                    report.skipped += 1;
                }
            }
            Ok(report)
        })
        .await
    }
}
