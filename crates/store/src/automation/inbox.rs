//! New events meet workflows: triggers start runs, awaited events end waits, exit events and
//! inbound touches end runs.

use std::collections::{HashMap, HashSet};

use rapport_core::money::{Currency, Money};
use rapport_core::profile::LifecycleStage;
use rapport_core::workflow::{Metric, ThresholdRule, Trigger, is_inbound_touch};
use rapport_core::{Timestamp, new_id};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::runs::{self, Start};
use super::{Live, PassReport, Specs, live_workflows, schedule};
use crate::db::{Dialect, Tx, insert_many, select_in};
use crate::events::EVENT_COLUMNS;
use crate::value::{Row, Value};
use crate::{Result, Store, segments};

/// Copies the events in `rows` (laid out as `INSERT_EVENTS` columns, `EVENT_COLUMNS` per
/// event) whose type some enabled workflow listens to into the inbox, in the caller's
/// transaction. `keep` says which rows were really stored (a repeated delivery was not).
pub(crate) fn enqueue_event_rows(tx: &mut dyn Tx, rows: &[Value], keep: &dyn Fn(&[Value]) -> bool, now: Timestamp) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let listened: HashSet<String> = tx
        .query("SELECT DISTINCT event_type FROM workflow_listens", &[])?
        .into_iter()
        .map(|r| r.string(0))
        .collect::<Result<_>>()?;
    if listened.is_empty() {
        return Ok(());
    }
    let mut values = Vec::new();
    for row in rows.chunks_exact(EVENT_COLUMNS) {
        let Value::Text(kind) = &row[4] else { continue };
        if !listened.contains(kind) || !keep(row) {
            continue;
        }
        // id, contact, type, occurred_at, currency, amount, payload, queued_at
        values.extend([
            row[2].clone(),
            row[0].clone(),
            row[4].clone(),
            row[1].clone(),
            row[6].clone(),
            row[7].clone(),
            row[8].clone(),
            Value::Time(now),
        ]);
    }
    if !values.is_empty() {
        insert_many(
            tx,
            "INSERT INTO automation_inbox (id, contact_id, type, occurred_at, currency, amount_minor, payload, queued_at)",
            8,
            &values,
            "ON CONFLICT (id) DO NOTHING",
        )?;
    }
    Ok(())
}

/// An inbox event.
pub(crate) struct InboxEvent {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub kind: String,
    pub occurred_at: Timestamp,
    pub currency: Option<String>,
    pub amount_minor: Option<i64>,
    pub payload: Json,
}

const INBOX_COLUMNS: &str = "id, contact_id, type, occurred_at, currency, amount_minor, payload";

/// Looks at up to `batch` inbox events, oldest first, and removes them. `careful` takes one
/// contact at a time under a savepoint: the events of a contact the workflows cannot react to
/// (a database error) stay in the inbox, in order, for the next pass, and the others go on.
/// The caller tries without first: savepoints are not free.
pub(super) fn drain(tx: &mut dyn Tx, store: &Store, batch: usize, careful: bool) -> Result<PassReport> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let rows =
        tx.query(&format!("SELECT {INBOX_COLUMNS} FROM automation_inbox ORDER BY queued_at, id LIMIT {batch}{lock}"), &[])?;
    if !careful {
        return react(tx, store, rows);
    }
    let mut by_contact: Vec<(Uuid, Vec<Row>)> = Vec::new();
    let mut at: HashMap<Uuid, usize> = HashMap::new();
    for r in rows {
        let contact = r.uuid(1)?;
        let slot = *at.entry(contact).or_insert_with(|| {
            by_contact.push((contact, Vec::new()));
            by_contact.len() - 1
        });
        by_contact[slot].1.push(r);
    }
    let mut report = PassReport::default();
    for (contact, rows) in by_contact {
        tx.execute_batch("SAVEPOINT contact")?;
        match react(tx, store, rows) {
            Ok(r) => {
                tx.execute_batch("RELEASE SAVEPOINT contact")?;
                report.add(r);
            }
            Err(e) => {
                tracing::warn!(contact = %contact, error = %e, "workflows could not react to a contact's events; they wait for the next pass");
                tx.execute_batch("ROLLBACK TO SAVEPOINT contact; RELEASE SAVEPOINT contact")?;
            }
        }
    }
    Ok(report)
}

/// The inbox events of `contacts`, oldest first (those of each contact in order: what the
/// workflows make of an event depends on the ones before).
pub(crate) fn inbox_of(tx: &mut dyn Tx, contacts: &[Uuid]) -> Result<Vec<Row>> {
    let keys: Vec<Value> = contacts.iter().map(|c| Value::Uuid(*c)).collect();
    select_in(
        tx,
        &format!("SELECT {INBOX_COLUMNS} FROM automation_inbox WHERE contact_id IN ({{in}}) ORDER BY queued_at, id"),
        &[],
        &keys,
    )
}

/// Lets the workflows react to inbox events read with [`INBOX_COLUMNS`], and removes them.
pub(crate) fn react(tx: &mut dyn Tx, store: &Store, rows: Vec<Row>) -> Result<PassReport> {
    if rows.is_empty() {
        return Ok(PassReport::default());
    }
    let events: Vec<InboxEvent> = rows
        .into_iter()
        .map(|r| {
            Ok(InboxEvent {
                id: r.uuid(0)?,
                contact_id: r.uuid(1)?,
                kind: r.string(2)?,
                occurred_at: r.time(3)?,
                currency: r.opt_string(4)?,
                amount_minor: r.opt_i64(5)?,
                payload: r.json(6)?,
            })
        })
        .collect::<Result<_>>()?;
    let live = live_workflows(tx)?;
    let now = store.now();
    let mut specs = Specs::default();
    let mut report = PassReport { events: events.len() as u64, ..Default::default() };
    // Events of a contact that no longer exists have nothing to act on.
    let keys: Vec<Value> = events.iter().map(|e| Value::Uuid(e.contact_id)).collect();
    let existing: HashSet<Uuid> = select_in(tx, "SELECT id FROM contacts WHERE id IN ({in})", &[], &keys)?
        .into_iter()
        .map(|r| r.uuid(0))
        .collect::<Result<_>>()?;
    let mut flights = Flights::load(tx, &existing)?;
    for ev in events.iter().filter(|e| existing.contains(&e.contact_id)) {
        react_in_runs(tx, &mut specs, &mut flights, ev, now, &mut report)?;
        for w in &live {
            if let Some((occurrence, cause)) = trigger(tx, store, w, ev, now, &mut report)? {
                flights.start(tx, store, w, ev.contact_id, Start { occurrence, cause, at: now })?;
            }
        }
    }
    flights.write_starts(tx, &mut report)?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    crate::bulk::execute_in(tx, "DELETE FROM automation_inbox WHERE id IN ({in})", &[], &ids)?;
    Ok(report)
}

/// A run in flight (ready or waiting) of one of the pass's contacts.
#[derive(Clone)]
struct Flight {
    id: Uuid,
    workflow_id: Uuid,
    version: i64,
    waiting: bool,
    waiting_for: Option<String>,
    step: Option<String>,
    started_at: Timestamp,
    /// The event that started it, if one did.
    cause_event: Option<Uuid>,
    /// Started in this pass and not written yet.
    unwritten: bool,
}

/// The runs in flight of a pass's contacts, oldest first, read in one query and kept current
/// as the pass ends, wakes and starts runs. The runs a pass starts are written together at its
/// end (one statement instead of two per event), or before one of them is changed.
struct Flights {
    by_contact: HashMap<Uuid, Vec<Flight>>,
    /// `INSERT_RUN` rows of the runs started and not written yet, and whose they are.
    rows: Vec<Value>,
    unwritten: Vec<(Uuid, Uuid)>,
}

impl Flights {
    fn load(tx: &mut dyn Tx, contacts: &HashSet<Uuid>) -> Result<Self> {
        const COLUMNS: &str = "r.contact_id, r.id, r.workflow_id, r.version, r.status, r.waiting_for, r.step, r.started_at";
        let rows = match tx.dialect() {
            Dialect::Sqlite => {
                let keys: Vec<Value> = contacts.iter().map(|c| Value::Uuid(*c)).collect();
                select_in(
                    tx,
                    &format!(
                        "SELECT {COLUMNS}, json_extract(r.cause, '$.event_id') FROM workflow_runs r \
                         WHERE r.contact_id IN ({{in}}) AND r.status IN ('ready', 'waiting') ORDER BY r.started_at, r.id"
                    ),
                    &[],
                    &keys,
                )?
            }
            // One index probe per contact whatever the statistics say (`OFFSET 0` keeps the
            // planner from turning it into a join): planned with the statistics of a table
            // that was empty when last analysed, an IN list scanned every run in flight.
            Dialect::Postgres => {
                let keys = contacts.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
                tx.query(
                    &format!(
                        "SELECT {COLUMNS}, r.cause->>'event_id' FROM unnest(string_to_array($1, ',')::uuid[]) AS k (id) \
                         CROSS JOIN LATERAL (SELECT * FROM workflow_runs w WHERE w.contact_id = k.id \
                         AND w.status IN ('ready', 'waiting') OFFSET 0) r ORDER BY r.started_at, r.id"
                    ),
                    &[keys.into()],
                )?
            }
        };
        let mut by_contact: HashMap<Uuid, Vec<Flight>> = HashMap::new();
        for r in rows {
            by_contact.entry(r.uuid(0)?).or_default().push(Flight {
                id: r.uuid(1)?,
                workflow_id: r.uuid(2)?,
                version: r.i64(3)?,
                waiting: r.string(4)? == "waiting",
                waiting_for: r.opt_string(5)?,
                step: r.opt_string(6)?,
                started_at: r.time(7)?,
                cause_event: r.opt_string(8)?.and_then(|id| id.parse().ok()),
                unwritten: false,
            });
        }
        Ok(Self { by_contact, rows: Vec::new(), unwritten: Vec::new() })
    }

    fn of(&self, contact: Uuid) -> &[Flight] {
        self.by_contact.get(&contact).map_or(&[], Vec::as_slice)
    }

    fn get_mut(&mut self, contact: Uuid, run: Uuid) -> Option<&mut Flight> {
        self.by_contact.get_mut(&contact)?.iter_mut().find(|f| f.id == run)
    }

    fn remove(&mut self, contact: Uuid, run: Uuid) {
        if let Some(list) = self.by_contact.get_mut(&contact) {
            list.retain(|f| f.id != run);
        }
    }

    /// Starts a run of `w` unless its re-entry rule or conditions say no (`runs::start`, with
    /// the runs in flight known).
    fn start(&mut self, tx: &mut dyn Tx, store: &Store, w: &Live, contact: Uuid, s: Start) -> Result<()> {
        let in_flight = self.of(contact).iter().any(|f| f.workflow_id == w.id);
        if !runs::may_start(tx, store, w, contact, s.at, Some(in_flight))? {
            return Ok(());
        }
        let id = new_id();
        let flight = Flight {
            id,
            workflow_id: w.id,
            version: w.version,
            waiting: false,
            waiting_for: None,
            step: None,
            started_at: s.at,
            cause_event: s.cause.get("event_id").and_then(Json::as_str).and_then(|id| id.parse().ok()),
            unwritten: true,
        };
        self.rows.extend(runs::run_row(id, w, contact, s));
        self.unwritten.push((contact, id));
        self.by_contact.entry(contact).or_default().push(flight);
        Ok(())
    }

    /// Writes the runs started so far. One whose occurrence had already started a run is not
    /// in flight after all.
    fn write_starts(&mut self, tx: &mut dyn Tx, report: &mut PassReport) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let started: HashSet<Uuid> = insert_many(tx, runs::INSERT_RUN, runs::RUN_COLUMNS, &self.rows, runs::ON_NEW_RUN)?
            .into_iter()
            .map(|r| r.uuid(0))
            .collect::<Result<_>>()?;
        report.runs_started += started.len() as u64;
        for (contact, run) in std::mem::take(&mut self.unwritten) {
            if started.contains(&run) {
                if let Some(f) = self.get_mut(contact, run) {
                    f.unwritten = false;
                }
            } else {
                self.remove(contact, run);
            }
        }
        self.rows.clear();
        Ok(())
    }
}

enum Reaction {
    End(String),
    Wake,
}

/// What the event means for the contact's runs in flight: an awaited event ends the wait; an
/// exit event, or an inbound touch while outreach is pending, ends the run.
fn react_in_runs(
    tx: &mut dyn Tx,
    specs: &mut Specs,
    flights: &mut Flights,
    ev: &InboxEvent,
    now: Timestamp,
    report: &mut PassReport,
) -> Result<()> {
    for f in flights.of(ev.contact_id).to_vec() {
        if f.cause_event == Some(ev.id) || ev.occurred_at < f.started_at {
            continue;
        }
        let Some(spec) = specs.get(tx, f.workflow_id, f.version)? else { continue };
        let when = ev.occurred_at.format("%Y-%m-%d %H:%M UTC");
        let reaction = if spec.exit_when.contains(&ev.kind) {
            Reaction::End(format!("{} on {when}: the workflow ends on it", ev.kind))
        } else if f.waiting && f.waiting_for.as_deref() == Some(ev.kind.as_str()) {
            Reaction::Wake
        } else if f.waiting && is_inbound_touch(&ev.kind, &ev.payload) && spec.has_outreach() {
            Reaction::End(format!("they got in touch ({} on {when}), so the pending outreach was stopped", ev.kind))
        } else {
            continue;
        };
        match reaction {
            Reaction::End(reason) => {
                // Only an exit event can end a run started in this pass (a new run is not
                // waiting); it has to be written first.
                if f.unwritten {
                    flights.write_starts(tx, report)?;
                    if flights.get_mut(ev.contact_id, f.id).is_none() {
                        continue;
                    }
                }
                runs::end(tx, f.id, "exited", &reason, now)?;
                flights.remove(ev.contact_id, f.id);
                report.runs_ended += 1;
            }
            Reaction::Wake => {
                let step = f.step.clone().unwrap_or_default();
                let next = runs::wake(tx, f.id, &spec, &step, &format!("{} happened on {when}", ev.kind), now)?;
                if let Some(woken) = flights.get_mut(ev.contact_id, f.id) {
                    woken.waiting = false;
                    woken.waiting_for = None;
                    if let Some(next) = next {
                        woken.step = next;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The run of `w` the event starts, if it fires its trigger: its occurrence and cause.
fn trigger(
    tx: &mut dyn Tx,
    store: &Store,
    w: &Live,
    ev: &InboxEvent,
    now: Timestamp,
    report: &mut PassReport,
) -> Result<Option<(String, Json)>> {
    let base_cause =
        || json!({"trigger": w.spec.trigger.kind(), "event_id": ev.id, "event_type": ev.kind, "occurred_at": ev.occurred_at});
    let start = match &w.spec.trigger {
        Trigger::Event(sel) if sel.event_type == ev.kind => {
            if !sel.conditions.is_empty() {
                let mut params = vec![Value::Uuid(ev.id)];
                let cx = store.segment_context(tx, now)?;
                let cond = segments::event_conditions(&cx, sel, &mut params)?;
                drop(cx);
                if !tx.exists(&format!("SELECT 1 FROM automation_inbox e WHERE e.id = $1 AND {cond}"), &params)? {
                    return Ok(None);
                }
            }
            let mut cause = base_cause();
            cause["payload"] = ev.payload.clone();
            Some((format!("event:{}", ev.id), cause))
        }
        Trigger::SegmentEntered { segment } if ev.kind == "segment.entered" => segment_start(segment, ev, base_cause()),
        Trigger::SegmentExited { segment } if ev.kind == "segment.exited" => segment_start(segment, ev, base_cause()),
        Trigger::StageChanged { from, to } if ev.kind == "lifecycle.changed" => {
            let stage = |k: &str| ev.payload.get(k).and_then(Json::as_str).and_then(LifecycleStage::parse);
            let (was, is) = (stage("from"), stage("to"));
            let fits = |want: &Option<LifecycleStage>, got: Option<LifecycleStage>| want.is_none() || *want == got;
            if !fits(from, was) || !fits(to, is) {
                return Ok(None);
            }
            let mut cause = base_cause();
            cause["from"] = json!(was.map(|s| s.as_str()));
            cause["to"] = json!(is.map(|s| s.as_str()));
            cause["reason"] = ev.payload.get("reason").cloned().unwrap_or(Json::Null);
            Some((format!("stage:{}", ev.id), cause))
        }
        Trigger::Threshold(t) if t.metric.event_types().contains(&ev.kind.as_str()) => {
            threshold_start(tx, store, t.metric, t.rule, ev, base_cause())?
        }
        Trigger::Inactivity { event_type, .. } if *event_type == ev.kind => {
            report.rescheduled += schedule::reschedule_contacts(tx, store, &[ev.contact_id], Some(w.id))?;
            None
        }
        Trigger::Date(d) if d.field == rapport_core::workflow::DateField::FirstOrder && ev.kind == "order.completed" => {
            report.rescheduled += schedule::reschedule_contacts(tx, store, &[ev.contact_id], Some(w.id))?;
            None
        }
        _ => None,
    };
    Ok(start)
}

fn segment_start(segment: &str, ev: &InboxEvent, mut cause: Json) -> Option<(String, Json)> {
    let name = ev.payload.get("segment").and_then(Json::as_str)?;
    if name.trim().to_lowercase() != segment.trim().to_lowercase() {
        return None;
    }
    cause["segment"] = json!(name);
    cause["segment_id"] = ev.payload.get("segment_id").cloned().unwrap_or(Json::Null);
    Some((format!("segment:{}", ev.id), cause))
}

/// Whether the event moved the metric across the threshold. The profile already counts every
/// stored event, so the value just after this one is the profile's minus what the contact's
/// later inbox events added.
fn threshold_start(
    tx: &mut dyn Tx,
    store: &Store,
    metric: Metric,
    rule: ThresholdRule,
    ev: &InboxEvent,
    mut cause: Json,
) -> Result<Option<(String, Json)>> {
    let Some(p) = tx.query_opt(
        "SELECT revenue_base_minor, order_count, visit_count FROM profiles WHERE contact_id = $1",
        &[ev.contact_id.into()],
    )?
    else {
        return Ok(None);
    };
    let rules = &store.options().profile_rules;
    let contribution = |kind: &str, currency: Option<&str>, minor: Option<i64>| -> f64 {
        match (metric, kind) {
            (Metric::OrderCount, "order.completed") | (Metric::VisitCount, "visit.checked_in") => 1.0,
            (Metric::Revenue, "order.completed" | "order.refunded") => {
                let base = currency
                    .and_then(|c| Currency::parse(c).ok())
                    .zip(minor)
                    .and_then(|(c, m)| rules.to_base(&Money::new(c, m)))
                    .unwrap_or(0);
                let major = rules.base().to_major(base);
                if kind == "order.refunded" { -major } else { major }
            }
            _ => 0.0,
        }
    };
    let current = match metric {
        Metric::Revenue => rules.base().to_major(p.i64(0)?),
        Metric::OrderCount => p.i64(1)? as f64,
        Metric::VisitCount => p.i64(2)? as f64,
    };
    // Later events of the contact still in the inbox (this batch's included).
    let later = tx.query(
        "SELECT type, currency, amount_minor FROM automation_inbox WHERE contact_id = $1 \
         AND (queued_at, id) > (SELECT queued_at, id FROM automation_inbox WHERE id = $2)",
        &[ev.contact_id.into(), ev.id.into()],
    )?;
    let mut after = current;
    for r in later {
        after -= contribution(&r.string(0)?, r.opt_string(1)?.as_deref(), r.opt_i64(2)?);
    }
    let before = after - contribution(&ev.kind, ev.currency.as_deref(), ev.amount_minor);
    if !rule.fires(before, after) {
        return Ok(None);
    }
    cause["metric"] = json!(metric.as_str());
    cause["before"] = json!(before);
    cause["after"] = json!(after);
    let occurrence = match rule {
        ThresholdRule::Crosses(v) => format!("threshold:{v}:{}", ev.id),
        ThresholdRule::Every(n) => {
            let level = (after / n).floor() * n;
            cause["level"] = json!(level);
            format!("threshold:level:{level}")
        }
    };
    Ok(Some((occurrence, cause)))
}
