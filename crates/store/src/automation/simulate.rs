//! "What would this workflow have done?" — replays a trigger over a past period of real data,
//! in a read-only transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use rapport_core::Timestamp;
use rapport_core::money::{Currency, Money};
use rapport_core::profile::LifecycleStage;
use rapport_core::workflow::{Metric, Reentry, Step, Trigger, Wait, WorkflowSpec};
use serde::Serialize;
use serde_json::Value as Json;
use uuid::Uuid;

use super::Live;
use super::view::describe_step;
use crate::db::{Tx, select_in};
use crate::value::Value;
use crate::{Result, Store, StoreError, segments};

/// The most trigger occurrences one simulation looks at.
const MAX_OCCURRENCES: usize = 200_000;
const SAMPLES: usize = 10;

/// What a workflow would have done over a period.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Simulation {
    pub workflow_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Times the trigger fired in the period.
    pub occurrences: u64,
    /// Runs that would have started (after the re-entry rule and the conditions).
    pub runs: u64,
    /// Different people those runs reach.
    pub contacts: u64,
    /// How many times each action would have run, by action name.
    pub actions: BTreeMap<String, u64>,
    pub samples: Vec<SimulationSample>,
    /// What the replay assumes.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimulationSample {
    pub contact_id: Uuid,
    pub contact_name: String,
    pub at: DateTime<Utc>,
    pub steps: Vec<String>,
}

/// The longest a run can last: every wait on its longest path added up.
fn run_length(steps: &[Step]) -> Duration {
    steps.iter().fold(Duration::zero(), |acc, s| {
        acc + match s {
            Step::Wait(Wait::For { duration, .. }) => *duration,
            Step::Wait(Wait::Until { .. }) => Duration::days(7),
            Step::Branch(b) => run_length(&b.then).max(run_length(&b.otherwise)),
            Step::Action(_) => Duration::zero(),
        }
    })
}

/// Occurrences of the trigger in [from, to): (contact, when), in time order per contact.
fn occurrences(tx: &mut dyn Tx, store: &Store, w: &Live, from: Timestamp, to: Timestamp) -> Result<Vec<(Uuid, Timestamp)>> {
    let mut out = Vec::new();
    let events = |tx: &mut dyn Tx, kind: &str| -> Result<Vec<(Uuid, Timestamp, Json)>> {
        tx.query(
            &format!(
                "SELECT contact_id, occurred_at, payload FROM events WHERE type = $1 AND occurred_at >= $2 AND occurred_at < $3 \
                 ORDER BY occurred_at, seq LIMIT {MAX_OCCURRENCES}"
            ),
            &[kind.into(), from.into(), to.into()],
        )?
        .into_iter()
        .map(|r| Ok((r.uuid(0)?, r.time(1)?, r.json(2)?)))
        .collect()
    };
    match &w.spec.trigger {
        Trigger::Event(sel) => {
            let mut params = vec![Value::Text(sel.event_type.clone()), from.into(), to.into()];
            let cx = store.segment_context(tx, store.now())?;
            let cond = segments::event_conditions(&cx, sel, &mut params)?;
            drop(cx);
            for r in tx.query(
                &format!(
                    "SELECT e.contact_id, e.occurred_at FROM events e WHERE e.type = $1 AND e.occurred_at >= $2 \
                     AND e.occurred_at < $3 AND {cond} ORDER BY e.occurred_at, e.seq LIMIT {MAX_OCCURRENCES}"
                ),
                &params,
            )? {
                out.push((r.uuid(0)?, r.time(1)?));
            }
        }
        Trigger::SegmentEntered { segment } | Trigger::SegmentExited { segment } => {
            let kind =
                if matches!(w.spec.trigger, Trigger::SegmentEntered { .. }) { "segment.entered" } else { "segment.exited" };
            let want = segment.trim().to_lowercase();
            for (c, at, payload) in events(tx, kind)? {
                if payload.get("segment").and_then(Json::as_str).map(|s| s.trim().to_lowercase()) == Some(want.clone()) {
                    out.push((c, at));
                }
            }
        }
        Trigger::StageChanged { from: was, to: is } => {
            for (c, at, payload) in events(tx, "lifecycle.changed")? {
                let stage = |k: &str| payload.get(k).and_then(Json::as_str).and_then(LifecycleStage::parse);
                if (was.is_none() || *was == stage("from")) && (is.is_none() || *is == stage("to")) {
                    out.push((c, at));
                }
            }
        }
        Trigger::Date(_) => {
            // Every contact's anchor, a thousand at a time.
            let mut after: Option<Uuid> = None;
            loop {
                let ids: Vec<Uuid> = match after {
                    None => tx.query("SELECT id FROM contacts ORDER BY id LIMIT 1000", &[])?,
                    Some(a) => tx.query("SELECT id FROM contacts WHERE id > $1 ORDER BY id LIMIT 1000", &[a.into()])?,
                }
                .into_iter()
                .map(|r| r.uuid(0))
                .collect::<Result<_>>()?;
                let Some(last) = ids.last().copied() else { break };
                after = Some(last);
                for ((contact, _), anchor) in super::schedule::anchors(tx, store, w, &ids)? {
                    let mut t = from - Duration::seconds(1);
                    while let Some(at) = super::schedule::next_after(&w.spec.trigger, anchor, t).filter(|at| *at < to) {
                        out.push((contact, at));
                        t = at;
                    }
                }
                if out.len() >= MAX_OCCURRENCES {
                    break;
                }
            }
        }
        Trigger::Inactivity { event_type, days } => {
            let quiet = Duration::days(i64::from(*days));
            let rows = tx.query(
                &format!(
                    "SELECT contact_id, occurred_at FROM events WHERE type = $1 AND occurred_at >= $2 AND occurred_at < $3 \
                     ORDER BY contact_id, occurred_at LIMIT {MAX_OCCURRENCES}"
                ),
                &[event_type.as_str().into(), (from - quiet).into(), to.into()],
            )?;
            let mut by_contact: BTreeMap<Uuid, Vec<Timestamp>> = BTreeMap::new();
            for r in rows {
                by_contact.entry(r.uuid(0)?).or_default().push(r.time(1)?);
            }
            for (c, times) in by_contact {
                for (i, t) in times.iter().enumerate() {
                    let deadline = *t + quiet;
                    let broken = times.get(i + 1).is_some_and(|n| *n < deadline);
                    if !broken && deadline >= from && deadline < to {
                        out.push((c, deadline));
                    }
                }
            }
        }
        Trigger::Threshold(t) => {
            let rules = &store.options().profile_rules;
            let kinds = t.metric.event_types();
            let list: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 2)).collect();
            let mut params: Vec<Value> = vec![to.into()];
            params.extend(kinds.iter().map(|k| Value::Text(k.to_string())));
            let rows = tx.query(
                &format!(
                    "SELECT contact_id, occurred_at, type, currency, amount_minor FROM events WHERE occurred_at < $1 \
                     AND type IN ({}) ORDER BY contact_id, occurred_at, seq",
                    list.join(", ")
                ),
                &params,
            )?;
            let mut running: HashMap<Uuid, f64> = HashMap::new();
            for r in rows {
                let (c, at, kind) = (r.uuid(0)?, r.time(1)?, r.string(2)?);
                let add = match (t.metric, kind.as_str()) {
                    (Metric::Revenue, k) => {
                        let base = r
                            .opt_string(3)?
                            .and_then(|c| Currency::parse(&c).ok())
                            .zip(r.opt_i64(4)?)
                            .and_then(|(c, m)| rules.to_base(&Money::new(c, m)))
                            .unwrap_or(0);
                        let major = rules.base().to_major(base);
                        if k == "order.refunded" { -major } else { major }
                    }
                    _ => 1.0,
                };
                let before = *running.get(&c).unwrap_or(&0.0);
                let after = before + add;
                running.insert(c, after);
                if at >= from && t.rule.fires(before, after) {
                    out.push((c, at));
                }
                if out.len() >= MAX_OCCURRENCES {
                    break;
                }
            }
        }
        Trigger::Manual => {}
    }
    out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    out.truncate(MAX_OCCURRENCES);
    Ok(out)
}

/// Counts each action along the steps for the given runs (contact → runs), splitting at
/// branches by who matches their condition now.
fn count_actions(
    tx: &mut dyn Tx,
    store: &Store,
    steps: &[Step],
    runs: &BTreeMap<Uuid, u64>,
    out: &mut BTreeMap<String, u64>,
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    for step in steps {
        match step {
            Step::Action(a) => *out.entry(a.name().to_string()).or_default() += runs.values().sum::<u64>(),
            Step::Wait(_) => {}
            Step::Branch(b) => {
                let matching = matching_set(tx, store, &b.condition, runs.keys().copied().collect())?;
                let (yes, no): (BTreeMap<Uuid, u64>, BTreeMap<Uuid, u64>) =
                    runs.iter().map(|(k, v)| (*k, *v)).partition(|(k, _)| matching.contains(k));
                count_actions(tx, store, &b.then, &yes, out)?;
                count_actions(tx, store, &b.otherwise, &no, out)?;
            }
        }
    }
    Ok(())
}

/// Which of `ids` match `filter` now.
fn matching_set(tx: &mut dyn Tx, store: &Store, filter: &rapport_core::segment::Filter, ids: Vec<Uuid>) -> Result<HashSet<Uuid>> {
    let mut params = Vec::new();
    let (sql, _) = store.contact_filter_sql(tx, filter, &mut params)?;
    let keys: Vec<Value> = ids.into_iter().map(Value::Uuid).collect();
    select_in(
        tx,
        &format!("SELECT c.id FROM contacts c LEFT JOIN profiles p ON p.contact_id = c.id WHERE ({sql}) AND c.id IN ({{in}})"),
        &params,
        &keys,
    )?
    .into_iter()
    .map(|r| r.uuid(0))
    .collect()
}

fn spec_notes(spec: &WorkflowSpec) -> Vec<String> {
    let mut notes = vec!["conditions and branches are checked against the data as it is now, not as it was then".to_string()];
    if !spec.exit_when.is_empty() || spec.walk().any(|(_, s)| matches!(s, Step::Wait(Wait::For { until_event: Some(_), .. }))) {
        notes.push("exit events and waits that end on an event are not replayed: every run is counted to its end".into());
    }
    if !matches!(spec.reentry, Reentry::Always) {
        notes.push("a person is counted as busy in a run for the length of its waits, for the re-entry rule".into());
    }
    notes.push("guards (consent, frequency caps, quiet hours) are not applied: messages are counted as sent".into());
    notes
}

impl Store {
    /// Replays workflow `id` over [from, to) of real data, without changing anything.
    pub async fn simulate_workflow(&self, id: Uuid, from: Timestamp, to: Timestamp) -> Result<Simulation> {
        if to <= from {
            return Err(StoreError::invalid("to", "must be after from"));
        }
        if to - from > Duration::days(3 * 366) {
            return Err(StoreError::invalid("to", "simulate at most three years at a time"));
        }
        let store = self.clone();
        self.read(move |tx| {
            let r = tx
                .query_opt(
                    "SELECT w.version, v.spec FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.version \
                     WHERE w.id = $1",
                    &[id.into()],
                )?
                .ok_or_else(|| StoreError::not_found("workflow", id))?;
            let w = Live { id, version: r.i64(0)?, spec: std::sync::Arc::new(super::parse_spec(id, r.json(1)?)?) };
            let occ = occurrences(tx, &store, &w, from, to)?;
            let busy = match w.spec.reentry {
                Reentry::Always => None,
                Reentry::Once => Some(Duration::days(365 * 1000)),
                Reentry::PerOccurrence => Some(run_length(&w.spec.steps)),
                Reentry::After(d) => Some(run_length(&w.spec.steps).max(d)),
            };
            let allowed: HashSet<Uuid> = match &w.spec.conditions {
                Some(f) => {
                    let ids: Vec<Uuid> = occ.iter().map(|o| o.0).collect::<HashSet<_>>().into_iter().collect();
                    matching_set(tx, &store, f, ids)?
                }
                None => occ.iter().map(|o| o.0).collect(),
            };
            let mut last_start: HashMap<Uuid, Timestamp> = HashMap::new();
            let mut runs: BTreeMap<Uuid, u64> = BTreeMap::new();
            let mut started: Vec<(Uuid, Timestamp)> = Vec::new();
            for (c, at) in &occ {
                if !allowed.contains(c) {
                    continue;
                }
                if let (Some(b), Some(prev)) = (busy, last_start.get(c))
                    && *at < *prev + b.max(Duration::seconds(1))
                {
                    continue;
                }
                last_start.insert(*c, *at);
                *runs.entry(*c).or_default() += 1;
                started.push((*c, *at));
            }
            let mut actions = BTreeMap::new();
            count_actions(tx, &store, &w.spec.steps, &runs, &mut actions)?;
            let mut samples = Vec::new();
            let steps: Vec<String> = w.spec.steps.iter().map(describe_step).collect();
            for (c, at) in started.iter().take(SAMPLES) {
                let name = tx
                    .query_opt("SELECT display_name FROM contacts WHERE id = $1", &[(*c).into()])?
                    .map(|r| r.string(0))
                    .transpose()?
                    .unwrap_or_default();
                samples.push(SimulationSample { contact_id: *c, contact_name: name, at: *at, steps: steps.clone() });
            }
            let mut notes = spec_notes(&w.spec);
            if matches!(w.spec.trigger, Trigger::Manual) {
                notes.push("a manual workflow starts only when someone starts it: there is nothing to replay".into());
            }
            if occ.len() >= MAX_OCCURRENCES {
                notes.push(format!("stopped after {MAX_OCCURRENCES} occurrences; simulate a shorter period for exact figures"));
            }
            Ok(Simulation {
                workflow_id: id,
                from,
                to,
                occurrences: occ.len() as u64,
                runs: started.len() as u64,
                contacts: runs.len() as u64,
                actions,
                samples,
                notes,
            })
        })
        .await
    }
}
