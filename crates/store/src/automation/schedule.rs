//! Date and inactivity triggers: one row per contact (and related person) holding the next
//! instant the trigger fires, so a sweep reads only what is due.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use rapport_core::Timestamp;
use rapport_core::workflow::{AnchorDate, DateField, DateTrigger, Trigger};
use serde_json::json;
use uuid::Uuid;

use super::runs::{self, Start};
use super::{Live, PassReport, live_workflows};
use crate::db::{Dialect, Tx, insert_many, select_in};
use crate::value::Value;
use crate::{Result, Store};

/// What a schedule counts from, for one contact and subject.
#[derive(Debug, Clone, Copy)]
pub(super) enum Anchor {
    /// A date (birthday, first order, custom field) in the contact's time zone.
    Date(AnchorDate, Tz),
    /// The latest event of the inactivity trigger's type.
    LastEvent(Timestamp),
}

/// (contact, subject) → anchor. `subject` is the relation's id for a related person's date,
/// empty otherwise.
type Anchors = HashMap<(Uuid, String), Anchor>;

fn time_zone(store: &Store, raw: Option<String>) -> Tz {
    raw.and_then(|t| t.parse().ok()).unwrap_or(store.options().default_time_zone)
}

fn ids_values(ids: &[Uuid]) -> Vec<Value> {
    ids.iter().copied().map(Value::Uuid).collect()
}

/// The anchors of `w` for `ids`, from the data as it is now.
pub(super) fn anchors(tx: &mut dyn Tx, store: &Store, w: &Live, ids: &[Uuid]) -> Result<Anchors> {
    let keys = ids_values(ids);
    let mut out = Anchors::new();
    match &w.spec.trigger {
        Trigger::Date(DateTrigger { field: DateField::Birthday, of_related: None, .. }) => {
            for r in select_in(
                tx,
                "SELECT id, birthday_month, birthday_day, birthday_year, time_zone FROM contacts \
                 WHERE birthday_month IS NOT NULL AND id IN ({in})",
                &[],
                &keys,
            )? {
                let date = AnchorDate { month: r.i64(1)? as u32, day: r.i64(2)? as u32, year: r.opt_i64(3)?.map(|y| y as i32) };
                out.insert((r.uuid(0)?, String::new()), Anchor::Date(date, time_zone(store, r.opt_string(4)?)));
            }
        }
        Trigger::Date(DateTrigger { field: DateField::Birthday, of_related: Some(kind), .. }) => {
            // The related person's own record wins over the birthday typed on the relation.
            for r in select_in(
                tx,
                "SELECT r.contact_id, r.id, coalesce(rc.birthday_month, r.related_birthday_month), \
                 coalesce(rc.birthday_day, r.related_birthday_day), \
                 CASE WHEN rc.birthday_month IS NOT NULL THEN rc.birthday_year ELSE r.related_birthday_year END, c.time_zone \
                 FROM relations r JOIN contacts c ON c.id = r.contact_id LEFT JOIN contacts rc ON rc.id = r.related_contact_id \
                 WHERE (r.kind = $1 OR (r.kind = 'custom' AND lower(r.custom_kind) = $1)) AND r.contact_id IN ({in})",
                &[kind.to_lowercase().into()],
                &keys,
            )? {
                let (Some(month), Some(day)) = (r.opt_i64(2)?, r.opt_i64(3)?) else { continue };
                let date = AnchorDate { month: month as u32, day: day as u32, year: r.opt_i64(4)?.map(|y| y as i32) };
                out.insert((r.uuid(0)?, r.uuid(1)?.to_string()), Anchor::Date(date, time_zone(store, r.opt_string(5)?)));
            }
        }
        Trigger::Date(DateTrigger { field: DateField::FirstOrder, .. }) => {
            for r in select_in(
                tx,
                "SELECT c.id, p.first_order_at, c.time_zone FROM contacts c JOIN profiles p ON p.contact_id = c.id \
                 WHERE p.first_order_at IS NOT NULL AND c.id IN ({in})",
                &[],
                &keys,
            )? {
                let tz = time_zone(store, r.opt_string(2)?);
                let day = r.time(1)?.with_timezone(&tz).date_naive();
                out.insert((r.uuid(0)?, String::new()), Anchor::Date(day.into(), tz));
            }
        }
        Trigger::Date(DateTrigger { field: DateField::Custom(key), .. }) => {
            for r in select_in(tx, "SELECT id, custom_fields, time_zone FROM contacts WHERE id IN ({in})", &[], &keys)? {
                let fields = r.json(1)?;
                let Some(day) = fields.get(key).and_then(|v| v.as_str()).and_then(|s| s.parse::<NaiveDate>().ok()) else {
                    continue;
                };
                out.insert((r.uuid(0)?, String::new()), Anchor::Date(day.into(), time_zone(store, r.opt_string(2)?)));
            }
        }
        Trigger::Inactivity { event_type, .. } => {
            for r in select_in(
                tx,
                "SELECT contact_id, max(occurred_at) FROM events WHERE type = $1 AND contact_id IN ({in}) GROUP BY contact_id",
                &[event_type.as_str().into()],
                &keys,
            )? {
                out.insert((r.uuid(0)?, String::new()), Anchor::LastEvent(r.time(1)?));
            }
        }
        _ => {}
    }
    Ok(out)
}

/// The first instant after `handled` the trigger fires for this anchor.
pub(super) fn next_after(trigger: &Trigger, anchor: Anchor, handled: Timestamp) -> Option<Timestamp> {
    match (trigger, anchor) {
        (Trigger::Date(d), Anchor::Date(date, tz)) => d.next_occurrence(date, tz, handled),
        (Trigger::Inactivity { days, .. }, Anchor::LastEvent(last)) => {
            let deadline = last + Duration::days(i64::from(*days));
            (deadline > handled).then_some(deadline)
        }
        _ => None,
    }
}

/// Works out the schedules of `ids` again from their current data, for every enabled
/// time-based workflow (or only `only`). Occurrences already handled stay handled; new rows
/// start from now. Returns how many contacts it looked at.
pub(super) fn reschedule_contacts(tx: &mut dyn Tx, store: &Store, ids: &[Uuid], only: Option<Uuid>) -> Result<u64> {
    reschedule_since(tx, store, ids, only, &HashMap::new())
}

/// As [`reschedule_contacts`], with new rows starting from when each contact was marked
/// (`since`): an occurrence between switching a workflow on and the engine getting to the
/// contact still fires.
fn reschedule_since(
    tx: &mut dyn Tx,
    store: &Store,
    ids: &[Uuid],
    only: Option<Uuid>,
    since: &HashMap<Uuid, Timestamp>,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let now = store.now();
    let keys = ids_values(ids);
    for w in live_workflows(tx)? {
        if !w.spec.trigger.is_time_based() || only.is_some_and(|o| o != w.id) {
            continue;
        }
        let found = anchors(tx, store, &w, ids)?;
        let mut handled: HashMap<(Uuid, String), Timestamp> = HashMap::new();
        for r in select_in(
            tx,
            "SELECT contact_id, subject, handled_through FROM workflow_schedules WHERE workflow_id = $1 AND contact_id IN ({in})",
            &[w.id.into()],
            &keys,
        )? {
            handled.insert((r.uuid(0)?, r.string(1)?), r.time(2)?);
        }
        // Rows whose anchor is gone (birthday removed, relation deleted) go.
        for key in handled.keys().filter(|k| !found.contains_key(*k)) {
            tx.execute(
                "DELETE FROM workflow_schedules WHERE workflow_id = $1 AND contact_id = $2 AND subject = $3",
                &[w.id.into(), key.0.into(), key.1.as_str().into()],
            )?;
        }
        let mut values = Vec::with_capacity(found.len() * 5);
        let mut sorted: Vec<_> = found.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for ((contact, subject), anchor) in sorted {
            let start = since.get(&contact).copied().map_or(now, |t| t.min(now));
            let done = handled.get(&(contact, subject.clone())).copied().unwrap_or(start);
            let next = next_after(&w.spec.trigger, anchor, done);
            values.extend([
                Value::Uuid(w.id),
                Value::Uuid(contact),
                Value::Text(subject),
                Value::Time(done),
                next.map(Value::Time).unwrap_or(Value::Null),
            ]);
        }
        if !values.is_empty() {
            insert_many(
                tx,
                "INSERT INTO workflow_schedules (workflow_id, contact_id, subject, handled_through, next_at)",
                5,
                &values,
                "ON CONFLICT (workflow_id, contact_id, subject) DO UPDATE SET next_at = excluded.next_at",
            )?;
        }
    }
    Ok(ids.len() as u64)
}

/// Works out the schedules of up to `batch` marked contacts and clears their marks.
pub(super) fn reschedule_dirty(tx: &mut dyn Tx, store: &Store, batch: usize) -> Result<PassReport> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let rows =
        tx.query(&format!("SELECT contact_id, marked_at FROM automation_dirty ORDER BY contact_id LIMIT {batch}{lock}"), &[])?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut since = HashMap::with_capacity(rows.len());
    for r in rows {
        let id = r.uuid(0)?;
        ids.push(id);
        since.insert(id, r.time(1)?);
    }
    if ids.is_empty() {
        return Ok(PassReport::default());
    }
    let n = reschedule_since(tx, store, &ids, None, &since)?;
    crate::bulk::execute_in(tx, "DELETE FROM automation_dirty WHERE contact_id IN ({in})", &[], &ids)?;
    Ok(PassReport { rescheduled: n, ..Default::default() })
}

/// Fires up to `batch` schedules that have come due. An occurrence later than the catch-up
/// window (the server was off) is passed over; the schedule moves on to the next one.
pub(super) fn fire_due(tx: &mut dyn Tx, store: &Store, batch: usize) -> Result<PassReport> {
    let now = store.now();
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let rows = tx.query(
        &format!(
            "SELECT workflow_id, contact_id, subject, handled_through FROM workflow_schedules \
             WHERE next_at <= $1 ORDER BY next_at LIMIT {batch}{lock}"
        ),
        &[now.into()],
    )?;
    if rows.is_empty() {
        return Ok(PassReport::default());
    }
    let mut due: HashMap<Uuid, Vec<(Uuid, String, Timestamp)>> = HashMap::new();
    for r in rows {
        due.entry(r.uuid(0)?).or_default().push((r.uuid(1)?, r.string(2)?, r.time(3)?));
    }
    let live: HashMap<Uuid, Live> = live_workflows(tx)?.into_iter().map(|w| (w.id, w)).collect();
    let catch_up = store.options().automation.catch_up;
    let mut report = PassReport::default();
    let mut workflows: Vec<Uuid> = due.keys().copied().collect();
    workflows.sort();
    for workflow_id in workflows {
        let rows = &due[&workflow_id];
        let Some(w) = live.get(&workflow_id) else {
            // Switched off since: its schedules go (they are rebuilt when it is switched on).
            tx.execute("DELETE FROM workflow_schedules WHERE workflow_id = $1", &[workflow_id.into()])?;
            continue;
        };
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let found = anchors(tx, store, w, &ids)?;
        for (contact, subject, handled) in rows {
            let Some(anchor) = found.get(&(*contact, subject.clone())).copied() else {
                tx.execute(
                    "DELETE FROM workflow_schedules WHERE workflow_id = $1 AND contact_id = $2 AND subject = $3",
                    &[workflow_id.into(), (*contact).into(), subject.as_str().into()],
                )?;
                continue;
            };
            let mut handled = *handled;
            let mut next = next_after(&w.spec.trigger, anchor, handled);
            while let Some(at) = next.filter(|at| *at <= now) {
                report.fired += 1;
                if now - at <= catch_up {
                    let start = occurrence(&w.spec.trigger, anchor, subject, at, now);
                    if runs::start(tx, store, w, *contact, start)? {
                        report.runs_started += 1;
                    }
                } else {
                    tracing::info!(workflow = %w.id, contact = %contact, due = %at, "a date trigger came due while automation was not running; passed over");
                }
                handled = at;
                next = next_after(&w.spec.trigger, anchor, handled);
            }
            tx.execute(
                "UPDATE workflow_schedules SET handled_through = $4, next_at = $5 \
                 WHERE workflow_id = $1 AND contact_id = $2 AND subject = $3",
                &[workflow_id.into(), (*contact).into(), subject.as_str().into(), handled.into(), next.into()],
            )?;
        }
    }
    Ok(report)
}

/// The run a due occurrence starts: its idempotency key and cause.
fn occurrence(trigger: &Trigger, anchor: Anchor, subject: &str, at: Timestamp, now: Timestamp) -> Start {
    match (trigger, anchor) {
        (Trigger::Date(d), Anchor::Date(date, tz)) => {
            let local = at.with_timezone(&tz).date_naive();
            let mut cause = json!({
                "trigger": "date",
                "field": d.field.to_string(),
                "date": format!("{:02}-{:02}", date.month, date.day),
                "fires_on": local.to_string(),
                "due_at": at,
            });
            if let Some(kind) = &d.of_related {
                cause["related"] = json!(kind);
                cause["relation_id"] = json!(subject);
            }
            Start { occurrence: format!("date:{subject}:{local}"), cause, at: now }
        }
        (Trigger::Inactivity { event_type, days }, Anchor::LastEvent(last)) => Start {
            occurrence: format!("inactive:{}", last.to_rfc3339()),
            cause: json!({"trigger": "inactivity", "event_type": event_type, "days": days, "last_at": last, "due_at": at}),
            at: now,
        },
        _ => Start {
            occurrence: format!("time:{subject}:{}", at.to_rfc3339()),
            cause: json!({"trigger": trigger.kind()}),
            at: now,
        },
    }
}
