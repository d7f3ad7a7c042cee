//! The automation engine's durable side: everything a workflow run needs, as rows.
//!
//! - **Listening.** Each enabled workflow lists the event types it reacts to in
//!   `workflow_listens`. Whatever writes events (ingest, Rapport's own system events) copies those
//!   of a listened type into `automation_inbox` in the same transaction, so nothing that happened
//!   can be missed by a crash. On SQLite, ingest then lets the workflows react to its events in
//!   that same transaction ([`react_in_ingest`]); elsewhere the engine's passes drain the inbox.
//! - **Schedules.** Date and inactivity triggers keep one `workflow_schedules` row per contact
//!   (and related person) with the next instant they fire; contact edits mark the contact in
//!   `automation_dirty` and the engine works the row out again.
//! - **Runs.** A trigger that fires starts a run, keyed by (workflow, contact, occurrence), so
//!   firing twice starts it once. A pass claims due runs (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL) and moves each through its steps in the same transaction as the steps' effects
//!   (a task, a tag, an outbox row): a crash before commit undoes both, a commit records both, so
//!   no effect happens twice. Calls to the outside world (webhooks, messages) are outbox rows
//!   delivered afterwards with the run and step as idempotency key.
//!
//! [`Store::automation_pass`] does one round of all of it; the server calls it in a loop.

mod inbox;
mod message_stats;
mod outbox;
mod runs;
mod schedule;
mod simulate;
mod stats;
mod texting;
mod view;
mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use rapport_core::Timestamp;
use rapport_core::workflow::{MessageChannel, SCHEDULE_MARK, TimeOfDay, WorkflowSpec};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{Tx, insert_many};
use crate::value::Value;
use crate::{Result, Store, StoreError};

pub use message_stats::{MessageStepStats, WorkflowMessageStats};
pub use outbox::{MessageResult, NewMessage, PendingMessage};
pub use runs::ManualStart;
pub use simulate::{Simulation, SimulationSample};
pub use stats::{WorkflowRunRow, WorkflowRunStats};
pub use texting::OptOut;
pub use view::{ContactAutomation, NextStep, Notification, PointsAccount, PointsEntry, RunStepView, RunView, UpcomingItem};
pub use webhooks::{PendingWebhook, WebhookDelivery, WebhookResult};

/// How many inbox events, schedules or runs one transaction of a pass handles.
pub const PASS_BATCH: usize = 500;

/// How the engine behaves; `[automation]` in the configuration.
#[derive(Debug, Clone)]
pub struct AutomationOptions {
    /// How late a date or inactivity trigger may still fire after downtime. Older occurrences
    /// are skipped (and shown as missed), so a server that was off for a week does not send a
    /// week of birthday greetings at once.
    pub catch_up: Duration,
    /// Local hours of the contact in which no message goes out; messages wait for the end.
    pub quiet_hours: Option<(TimeOfDay, TimeOfDay)>,
    /// Limits on marketing messages per person.
    pub caps: Vec<FrequencyCap>,
    /// Channels that can deliver. Messages for any other wait in the outbox, marked unsendable.
    pub ready_channels: Vec<MessageChannel>,
}

impl Default for AutomationOptions {
    fn default() -> Self {
        Self {
            catch_up: Duration::days(1),
            quiet_hours: TimeOfDay::new(21, 0).zip(TimeOfDay::new(8, 0)),
            caps: vec![
                FrequencyCap { channel: None, max: 3, per: Duration::days(7) },
                FrequencyCap { channel: Some(MessageChannel::Email), max: 2, per: Duration::days(7) },
                FrequencyCap { channel: Some(MessageChannel::Sms), max: 1, per: Duration::days(7) },
                FrequencyCap { channel: Some(MessageChannel::Chat), max: 1, per: Duration::days(7) },
            ],
            ready_channels: Vec::new(),
        }
    }
}

/// "No more than `max` marketing messages per `per`", on one channel or all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct FrequencyCap {
    pub channel: Option<MessageChannel>,
    pub max: u32,
    pub per: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PassReport {
    /// Contacts whose schedules were worked out again.
    pub rescheduled: u64,
    /// Date and inactivity occurrences that came due.
    pub fired: u64,
    /// Inbox events looked at.
    pub events: u64,
    pub runs_started: u64,
    /// Runs that took steps (some more than one).
    pub runs_advanced: u64,
    pub runs_ended: u64,
}

impl PassReport {
    /// Whether the pass found nothing to do.
    pub fn is_idle(&self) -> bool {
        *self == PassReport::default()
    }

    pub fn add(&mut self, o: PassReport) {
        self.rescheduled += o.rescheduled;
        self.fired += o.fired;
        self.events += o.events;
        self.runs_started += o.runs_started;
        self.runs_advanced += o.runs_advanced;
        self.runs_ended += o.runs_ended;
    }
}

/// An enabled workflow with its current document.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub id: Uuid,
    pub version: i64,
    pub spec: Arc<WorkflowSpec>,
}

/// The enabled workflows, read in the caller's transaction.
pub(crate) fn live_workflows(tx: &mut dyn Tx) -> Result<Vec<Live>> {
    tx.query(
        "SELECT w.id, w.version, v.spec FROM workflows w \
         JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.version WHERE w.enabled ORDER BY w.id",
        &[],
    )?
    .into_iter()
    .map(|r| {
        let id = r.uuid(0)?;
        Ok(Live { id, version: r.i64(1)?, spec: Arc::new(parse_spec(id, r.json(2)?)?) })
    })
    .collect()
}

fn parse_spec(id: Uuid, doc: serde_json::Value) -> Result<WorkflowSpec> {
    WorkflowSpec::parse(doc).map_err(|e| StoreError::Database(format!("stored workflow {id} no longer parses: {e}")))
}

/// Documents by (workflow, version), read once per pass: runs keep the version they started on.
#[derive(Default)]
pub(crate) struct Specs(HashMap<(Uuid, i64), Option<Arc<WorkflowSpec>>>);

impl Specs {
    pub fn get(&mut self, tx: &mut dyn Tx, id: Uuid, version: i64) -> Result<Option<Arc<WorkflowSpec>>> {
        if let Some(s) = self.0.get(&(id, version)) {
            return Ok(s.clone());
        }
        let spec = match tx.query_opt(
            "SELECT spec FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
            &[id.into(), version.into()],
        )? {
            Some(r) => Some(Arc::new(parse_spec(id, r.json(0)?)?)),
            None => None,
        };
        self.0.insert((id, version), spec.clone());
        Ok(spec)
    }
}

/// Keeps `workflow_listens` in step with a workflow's state: what an enabled workflow reacts
/// to, nothing for a disabled one. Switching a time-based workflow on (or changing it while on)
/// marks every contact so that their schedules are worked out.
pub(crate) fn sync_listens(
    tx: &mut dyn Tx,
    id: Uuid,
    enabled: bool,
    spec: &WorkflowSpec,
    schedule_changed: bool,
    now: Timestamp,
) -> Result<()> {
    tx.execute("DELETE FROM workflow_listens WHERE workflow_id = $1", &[id.into()])?;
    if !enabled {
        tx.execute("DELETE FROM workflow_schedules WHERE workflow_id = $1", &[id.into()])?;
        return Ok(());
    }
    let mut values = Vec::new();
    for t in spec.listens() {
        values.push(Value::Text(t));
        values.push(Value::Uuid(id));
    }
    if !values.is_empty() {
        insert_many(tx, "INSERT INTO workflow_listens (event_type, workflow_id)", 2, &values, "")?;
    }
    if spec.trigger.is_time_based() && schedule_changed {
        tx.execute("DELETE FROM workflow_schedules WHERE workflow_id = $1", &[id.into()])?;
        tx.execute(
            // `WHERE TRUE`: SQLite needs it to tell the SELECT from the upsert clause.
            "INSERT INTO automation_dirty (contact_id, marked_at) SELECT id, $1 FROM contacts WHERE TRUE \
             ON CONFLICT (contact_id) DO UPDATE SET marked_at = excluded.marked_at",
            &[now.into()],
        )?;
    }
    Ok(())
}

/// Marks contacts whose dates may have changed, when some enabled workflow has a time-based
/// trigger; one indexed probe otherwise.
pub(crate) fn mark_contacts_changed(tx: &mut dyn Tx, ids: &[Uuid], now: Timestamp) -> Result<()> {
    if ids.is_empty() || !tx.exists("SELECT 1 FROM workflow_listens WHERE event_type = $1", &[SCHEDULE_MARK.into()])? {
        return Ok(());
    }
    crate::db::mark_queue(tx, "automation_dirty", ids, now)
}

pub(crate) use inbox::enqueue_event_rows;

/// On SQLite, ingest lets the workflows react to its events itself, in the transaction that
/// stores them: the runs they start exist when the call returns, instead of after the worker's
/// next pass, which would queue on the one writer behind the next batches. Each contact's inbox
/// events are taken in order, older ones (a segment entered) included. A failure leaves the
/// events in the inbox for the worker (a savepoint), so a workflow gone wrong never costs a
/// batch of events. Not on PostgreSQL, where transactions write side by side: two of them could
/// react to one contact's events out of order; there the worker's drain takes the inbox in
/// order, under row locks.
pub(crate) fn react_in_ingest(tx: &mut dyn Tx, store: &Store, contacts: &[Uuid]) -> Result<()> {
    if tx.dialect() != crate::db::Dialect::Sqlite || contacts.is_empty() {
        return Ok(());
    }
    let rows = inbox::inbox_of(tx, contacts)?;
    if rows.is_empty() {
        return Ok(());
    }
    tx.execute_batch("SAVEPOINT react")?;
    match inbox::react(tx, store, rows) {
        Ok(_) => tx.execute_batch("RELEASE SAVEPOINT react"),
        Err(e) => {
            tracing::warn!(error = %e, "workflows could not react to ingested events; the automation worker will try again");
            tx.execute_batch("ROLLBACK TO SAVEPOINT react; RELEASE SAVEPOINT react")
        }
    }
}

impl Store {
    /// One round of automation: schedules of edited contacts, date and inactivity triggers
    /// that came due, new events, and runs whose next step is due — each in batches of
    /// [`PASS_BATCH`] per transaction. Safe to call from any number of instances at once.
    pub async fn automation_pass(&self) -> Result<PassReport> {
        let mut report = PassReport::default();
        report.add(
            self.write_alone({
                let store = self.clone();
                move |tx| schedule::reschedule_dirty(tx, &store, PASS_BATCH)
            })
            .await?,
        );
        report.add(
            self.write_alone({
                let store = self.clone();
                move |tx| schedule::fire_due(tx, &store, PASS_BATCH)
            })
            .await?,
        );
        // Without savepoints first; if something fails, again with them: the events of a
        // contact the workflows cannot react to stay queued, a step that fails is retried later.
        report.add(self.fast_then_careful(inbox::drain).await?);
        report.add(self.fast_then_careful(runs::advance_due).await?);
        Ok(report)
    }

    /// One part of a pass, run without savepoints and, if it fails, again `careful`ly.
    async fn fast_then_careful(&self, part: fn(&mut dyn Tx, &Store, usize, bool) -> Result<PassReport>) -> Result<PassReport> {
        let run = |careful| {
            let store = self.clone();
            self.write_alone(move |tx| part(tx, &store, PASS_BATCH, careful))
        };
        match run(false).await {
            Ok(r) => Ok(r),
            Err(_) => run(true).await,
        }
    }

    /// Lets the workflows react to queued events until none are left (at most `max_batches`
    /// batches of [`PASS_BATCH`]), without the rest of a pass. A server on PostgreSQL runs it as
    /// soon as events arrive, beside its passes, so that a new event does not wait for the
    /// advance of hundreds of runs under way (on SQLite ingest reacts itself). Safe beside
    /// passes of this and other instances: each takes inbox rows no other holds.
    pub async fn automation_react(&self, max_batches: usize) -> Result<PassReport> {
        let mut total = PassReport::default();
        for _ in 0..max_batches {
            let r = self.fast_then_careful(inbox::drain).await?;
            total.add(r);
            if r.events == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Runs passes until one finds nothing to do (at most `max_passes`): what is due by now
    /// has then been done. Used after the manual clock moves, by tests and by the demo.
    pub async fn automation_until_idle(&self, max_passes: usize) -> Result<PassReport> {
        let mut total = PassReport::default();
        for _ in 0..max_passes {
            let r = self.automation_pass().await?;
            total.add(r);
            if r.is_idle() {
                break;
            }
        }
        Ok(total)
    }

    /// Whether automation work is due now (for "wait until done" answers).
    pub async fn automation_pending(&self) -> Result<bool> {
        let now = self.now();
        self.read(move |tx| {
            Ok(tx.exists("SELECT 1 FROM automation_inbox LIMIT 1", &[])?
                || tx.exists("SELECT 1 FROM automation_dirty LIMIT 1", &[])?
                || tx.exists("SELECT 1 FROM workflow_schedules WHERE next_at <= $1 LIMIT 1", &[now.into()])?
                || tx.exists(
                    "SELECT 1 FROM workflow_runs r JOIN workflows w ON w.id = r.workflow_id \
                     WHERE r.status IN ('ready', 'waiting') AND r.due_at <= $1 AND w.enabled LIMIT 1",
                    &[now.into()],
                )?)
        })
        .await
    }
}
