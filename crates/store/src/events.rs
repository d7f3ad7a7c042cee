//! Events: ingest (idempotent, per-item results, profiles kept current in the same
//! transaction) and the timeline.
//!
//! An ingest request is parsed outside the transaction; inside it, contacts are resolved with
//! one query per kind of reference, events are written a few hundred rows per statement, and
//! [`crate::profiles::apply`] folds what they mean into the affected profiles. Nothing on this
//! path costs a round trip per event.

use std::collections::{HashMap, HashSet};

use rapport_core::contact::{ContactDraft, EmailDraft, ExternalIdDraft, PhoneDraft};
use rapport_core::event::{Channel, ContactRef, IngestRequest, MAX_BATCH, NewEvent, parse_event};
use rapport_core::{FieldError, Timestamp, ValidationErrors, new_id};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{Dialect, Tx, insert_many, select_in};
use crate::list::{DEFAULT_LIMIT, MAX_LIMIT, Page};
use crate::profiles::{self, Fold};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError, contacts, segments};

/// The answer to an ingest request: one result per event, in request order.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestReport {
    pub results: Vec<ItemResult>,
    /// Whether sales figures changed (cached best sellers are then out of date).
    #[serde(skip)]
    sold: bool,
}

impl IngestReport {
    pub fn count(&self, status: ItemStatus) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Stored now.
    Accepted,
    /// An event with this id was stored before (or earlier in the same request).
    Duplicate,
    /// Not stored; `errors` says why.
    Rejected,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemResult {
    pub index: usize,
    pub status: ItemStatus,
    /// The sender's id, or the one Rapport assigned; null for a rejected event without one.
    pub id: Option<String>,
    /// The contact the event was filed under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<Uuid>,
    pub errors: Vec<FieldError>,
}

/// An event on a timeline.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEvent {
    /// The sender's id, or the one Rapport assigned.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub channel: String,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub received_at: chrono::DateTime<chrono::Utc>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// The money the event is about, when it is about money.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    /// The user who recorded it, for staff actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Amount {
    pub currency: String,
    /// Major units, e.g. 129.0.
    pub value: f64,
    /// Minor units, e.g. 12900.
    pub minor: i64,
}

/// Which events a timeline shows.
#[derive(Debug, Clone, Default)]
pub struct TimelineFilter {
    /// Exact types, or prefixes written `email.*`.
    pub types: Vec<String>,
    pub channels: Vec<Channel>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// A system event recorded by Rapport itself (a note, a stage change) inside a transaction.
pub(crate) struct SystemEvent {
    pub contact_id: Uuid,
    pub kind: &'static str,
    pub occurred_at: Timestamp,
    pub payload: serde_json::Value,
    pub actor_id: Option<Uuid>,
}

pub(crate) const EVENT_COLUMNS: usize = 11;
const INSERT_EVENTS: &str = "INSERT INTO events (contact_id, occurred_at, id, source_id, type, channel, currency, amount_minor, \
     payload, received_at, actor_id)";

pub(crate) fn push_system_event(values: &mut Vec<Value>, e: SystemEvent, now: Timestamp) {
    values.extend([
        e.contact_id.into(),
        e.occurred_at.into(),
        new_id().into(),
        Value::Null,
        e.kind.into(),
        Channel::System.as_str().into(),
        Value::Null,
        Value::Null,
        Value::Json(e.payload),
        now.into(),
        e.actor_id.into(),
    ]);
}

/// Writes rows built by [`push_system_event`].
pub(crate) fn insert_system_events(tx: &mut dyn Tx, values: &[Value]) -> Result<()> {
    if !values.is_empty() {
        insert_many(tx, INSERT_EVENTS, EVENT_COLUMNS, values, "")?;
        let now = match values.get(9) {
            Some(Value::Time(t)) => *t,
            _ => chrono::Utc::now(),
        };
        crate::automation::enqueue_event_rows(tx, values, &|_| true, now)?;
    }
    Ok(())
}

/// Records one system event.
pub(crate) fn record(tx: &mut dyn Tx, e: SystemEvent, now: Timestamp) -> Result<()> {
    let mut values = Vec::with_capacity(EVENT_COLUMNS);
    push_system_event(&mut values, e, now);
    insert_system_events(tx, &values)
}

/// The raw `id` of an event, kept for the answer even when the event is rejected.
fn raw_id(v: &serde_json::Value) -> Option<String> {
    match v.get("id")? {
        serde_json::Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parsing 10,000 events takes milliseconds: big batches go to the blocking pool.
const PARSE_INLINE_MAX: usize = 64;

impl Store {
    /// Stores a batch of events (idempotently, by sender id) and updates the profiles they
    /// touch, all in one transaction. Bad events are reported one by one; the good ones are
    /// stored regardless.
    pub async fn ingest(&self, request: IngestRequest) -> Result<IngestReport> {
        let IngestRequest { events, create_contact } = request;
        if events.is_empty() {
            return Err(StoreError::invalid("events", "must hold at least one event"));
        }
        if events.len() > MAX_BATCH {
            return Err(StoreError::invalid(
                "events",
                format!("holds {} events; send at most {MAX_BATCH} per request", events.len()),
            ));
        }
        let now = self.now();
        let region = self.options().phone_region;
        let parse =
            move |events: Vec<serde_json::Value>| -> Vec<(Option<String>, std::result::Result<NewEvent, ValidationErrors>)> {
                events
                    .into_iter()
                    .map(|raw| {
                        let id = raw_id(&raw);
                        (id, parse_event(raw, region, now))
                    })
                    .collect()
            };
        let mut parsed = if events.len() <= PARSE_INLINE_MAX {
            parse(events)
        } else {
            tokio::task::spawn_blocking(move || parse(events))
                .await
                .map_err(|e| StoreError::Database(format!("parse task failed: {e}")))?
        };
        // On PostgreSQL two instances may take the same locks in different orders (two batches
        // creating the same two leads); the loser is rolled back whole and simply runs again.
        let mut attempts = if self.dialect() == Dialect::Postgres { 3 } else { 1 };
        let report = loop {
            attempts -= 1;
            let store = self.clone();
            let (items, retry_with) = if attempts > 0 { (parsed.clone(), Some(parsed)) } else { (parsed, None) };
            match self.write(move |tx| ingest_tx(tx, &store, items, create_contact, now)).await {
                Err(StoreError::Unavailable(m)) if retry_with.is_some() && m.starts_with("transaction conflict") => {
                    tracing::debug!(reason = %m, "ingest ran into another transaction; running it again");
                    parsed = retry_with.expect("checked above");
                }
                other => break other?,
            }
        };
        if report.sold {
            self.inner.best_sellers.invalidate();
        }
        Ok(report)
    }

    /// A person's events, newest first.
    pub async fn timeline(
        &self,
        contact_id: Uuid,
        filter: TimelineFilter,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> Result<Page<TimelineEvent>> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(StoreError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let after = cursor.as_deref().map(decode_cursor).transpose()?;
        self.read_point_snapshot(move |tx| {
            if !tx.exists("SELECT 1 FROM contacts WHERE id = $1", &[contact_id.into()])? {
                return Err(StoreError::not_found("contact", contact_id));
            }
            timeline_page(tx, contact_id, &filter, limit, after)
        })
        .await
    }
}

pub(crate) fn timeline_page(
    tx: &mut dyn Tx,
    contact_id: Uuid,
    filter: &TimelineFilter,
    limit: u32,
    after: Option<(Timestamp, i64)>,
) -> Result<Page<TimelineEvent>> {
    let mut sql = String::from(
        "SELECT id, source_id, type, channel, occurred_at, received_at, payload, currency, amount_minor, actor_id, seq \
         FROM events WHERE contact_id = $1",
    );
    let mut params: Vec<Value> = vec![contact_id.into()];
    let push = |params: &mut Vec<Value>, v: Value| -> String {
        params.push(v);
        format!("${}", params.len())
    };
    if !filter.types.is_empty() {
        let mut alts = Vec::new();
        for t in &filter.types {
            match t.strip_suffix(".*") {
                Some(prefix) => {
                    // `_` and `%` in a type name are literal characters, not wildcards.
                    let literal = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    let p = push(&mut params, format!("{literal}.%").into());
                    alts.push(format!("type LIKE {p} ESCAPE '\\'"));
                }
                None => {
                    let p = push(&mut params, t.as_str().into());
                    alts.push(format!("type = {p}"));
                }
            }
        }
        sql.push_str(&format!(" AND ({})", alts.join(" OR ")));
    }
    if !filter.channels.is_empty() {
        let list: Vec<String> = filter.channels.iter().map(|c| push(&mut params, c.as_str().into())).collect();
        sql.push_str(&format!(" AND channel IN ({})", list.join(", ")));
    }
    if let Some(since) = filter.since {
        let p = push(&mut params, since.into());
        sql.push_str(&format!(" AND occurred_at >= {p}"));
    }
    if let Some(until) = filter.until {
        let p = push(&mut params, until.into());
        sql.push_str(&format!(" AND occurred_at < {p}"));
    }
    if let Some((t, seq)) = after {
        let pt = push(&mut params, t.into());
        let ps = push(&mut params, Value::I64(seq));
        sql.push_str(&format!(" AND (occurred_at < {pt} OR (occurred_at = {pt} AND seq < {ps}))"));
    }
    sql.push_str(&format!(" ORDER BY occurred_at DESC, seq DESC LIMIT {}", limit + 1));
    let mut rows = tx.query(&sql, &params)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut data = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in rows {
        let id = r.uuid(0)?;
        let occurred_at = r.time(4)?;
        last = Some((occurred_at, r.i64(10)?));
        let amount = match (r.opt_string(7)?, r.opt_i64(8)?) {
            (Some(c), Some(minor)) => {
                let value = rapport_core::money::Currency::parse(&c).map(|cur| cur.to_major(minor)).unwrap_or(minor as f64);
                Some(Amount { currency: c, value, minor })
            }
            _ => None,
        };
        data.push(TimelineEvent {
            id: r.opt_string(1)?.unwrap_or_else(|| id.to_string()),
            kind: r.string(2)?,
            channel: r.string(3)?,
            occurred_at,
            received_at: r.time(5)?,
            payload: r.json(6)?,
            amount,
            actor_id: r.opt_uuid(9)?,
        });
    }
    let next_cursor = if more { last.map(|(t, seq)| encode_cursor(t, seq)) } else { None };
    Ok(Page { data, next_cursor })
}

fn encode_cursor(t: Timestamp, seq: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}.{seq}", t.timestamp_micros()))
}

pub(crate) fn decode_cursor(raw: &str) -> Result<(Timestamp, i64)> {
    use base64::Engine;
    let bad = || StoreError::invalid("cursor", "is not a cursor from this timeline; start again without it");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (t, seq) = text.split_once('.').ok_or_else(bad)?;
    let t = t.parse::<i64>().ok().and_then(chrono::DateTime::from_timestamp_micros).ok_or_else(bad)?;
    Ok((t, seq.parse().map_err(|_| bad())?))
}

/// Finds the contacts the events refer to, with one query per kind of reference.
#[derive(Default)]
struct Directory {
    ids: HashSet<Uuid>,
    emails: HashMap<String, Uuid>,
    phones: HashMap<String, Uuid>,
    external: HashMap<(String, String), Uuid>,
}

impl Directory {
    fn load<'a>(tx: &mut dyn Tx, refs: impl Iterator<Item = &'a ContactRef>) -> Result<Self> {
        let mut ids = Vec::new();
        let mut emails = Vec::new();
        let mut phones = Vec::new();
        let mut external = Vec::new();
        let mut seen = HashSet::new();
        for r in refs {
            if !seen.insert(r) {
                continue;
            }
            match r {
                ContactRef::Id(id) => ids.push(Value::Uuid(*id)),
                ContactRef::Email(e) => emails.push(Value::Text(e.as_str().to_string())),
                ContactRef::Phone(p) => phones.push(Value::Text(p.clone())),
                ContactRef::External { source, id } => external.push((source.clone(), id.clone())),
            }
        }
        let mut dir = Directory::default();
        for r in select_in(tx, "SELECT id FROM contacts WHERE id IN ({in})", &[], &ids)? {
            dir.ids.insert(r.uuid(0)?);
        }
        for r in select_in(tx, "SELECT address, contact_id FROM contact_emails WHERE address IN ({in})", &[], &emails)? {
            dir.emails.insert(r.string(0)?, r.uuid(1)?);
        }
        // A number shared by several people files the event under the oldest contact.
        for r in select_in(
            tx,
            "SELECT e164, contact_id FROM contact_phones WHERE e164 IN ({in}) ORDER BY contact_id DESC",
            &[],
            &phones,
        )? {
            dir.phones.insert(r.string(0)?, r.uuid(1)?);
        }
        for chunk in external.chunks(200) {
            let mut conds = Vec::with_capacity(chunk.len());
            let mut params = Vec::with_capacity(chunk.len() * 2);
            for (source, id) in chunk {
                params.push(Value::Text(source.clone()));
                params.push(Value::Text(id.clone()));
                conds.push(format!("(source = ${} AND external_id = ${})", params.len() - 1, params.len()));
            }
            let sql = format!("SELECT source, external_id, contact_id FROM contact_external_ids WHERE {}", conds.join(" OR "));
            for r in tx.query(&sql, &params)? {
                dir.external.insert((r.string(0)?, r.string(1)?), r.uuid(2)?);
            }
        }
        Ok(dir)
    }

    fn find(&self, r: &ContactRef) -> Option<Uuid> {
        match r {
            ContactRef::Id(id) => self.ids.contains(id).then_some(*id),
            ContactRef::Email(e) => self.emails.get(e.as_str()).copied(),
            ContactRef::Phone(p) => self.phones.get(p).copied(),
            ContactRef::External { source, id } => self.external.get(&(source.clone(), id.clone())).copied(),
        }
    }

    fn remember(&mut self, r: &ContactRef, id: Uuid) {
        match r {
            ContactRef::Id(x) => {
                self.ids.insert(*x);
            }
            ContactRef::Email(e) => {
                self.emails.insert(e.as_str().to_string(), id);
            }
            ContactRef::Phone(p) => {
                self.phones.insert(p.clone(), id);
            }
            ContactRef::External { source, id: x } => {
                self.external.insert((source.clone(), x.clone()), id);
            }
        }
    }
}

fn describe(r: &ContactRef) -> String {
    match r {
        ContactRef::Id(id) => format!("id {id}"),
        ContactRef::Email(e) => format!("email {e}"),
        ContactRef::Phone(p) => format!("phone {p}"),
        ContactRef::External { source, id } => format!("external id {source}:{id}"),
    }
}

/// Creates a lead for an unknown person, inside its own savepoint so a failure stays with
/// its event.
fn create_lead(tx: &mut dyn Tx, store: &Store, e: &NewEvent) -> std::result::Result<Uuid, Vec<FieldError>> {
    let mut draft = ContactDraft {
        first_name: e.lead.first_name.clone(),
        last_name: e.lead.last_name.clone(),
        display_name: e.lead.display_name.clone(),
        source: Some("events".into()),
        ..ContactDraft::default()
    };
    match &e.contact {
        ContactRef::Email(a) => {
            draft.emails = Some(vec![EmailDraft { address: a.as_str().to_string(), label: None, primary: Some(true) }]);
            if draft.first_name.is_none() && draft.last_name.is_none() && draft.display_name.is_none() {
                draft.display_name = Some(a.as_str().to_string());
            }
        }
        ContactRef::Phone(p) => {
            draft.phones = Some(vec![PhoneDraft { number: p.clone(), label: None, primary: Some(true) }]);
            if draft.first_name.is_none() && draft.last_name.is_none() && draft.display_name.is_none() {
                draft.display_name = Some(p.clone());
            }
        }
        ContactRef::External { source, id } => {
            draft.external_ids = Some(vec![ExternalIdDraft { source: source.clone(), id: id.clone() }]);
            if draft.first_name.is_none() && draft.last_name.is_none() && draft.display_name.is_none() {
                draft.display_name = Some(format!("{source} {id}"));
            }
        }
        ContactRef::Id(id) => {
            return Err(vec![FieldError::new(
                "contact.id",
                format!("no contact has id {id}; a lead needs an email, phone or external id"),
            )]);
        }
    }
    let failed = |e: StoreError| -> Vec<FieldError> {
        match e {
            StoreError::Invalid(v) => {
                v.errors.into_iter().map(|f| FieldError::new(format!("contact.{}", f.field), f.message)).collect()
            }
            other => vec![FieldError::new("contact", format!("could not create a lead: {other}"))],
        }
    };
    tx.execute_batch("SAVEPOINT lead").map_err(failed)?;
    match contacts::insert(tx, store, draft) {
        Ok(c) => {
            tx.execute_batch("RELEASE SAVEPOINT lead").map_err(failed)?;
            Ok(c.id)
        }
        Err(err) => {
            let _ = tx.execute_batch("ROLLBACK TO SAVEPOINT lead; RELEASE SAVEPOINT lead");
            Err(failed(err))
        }
    }
}

pub(crate) type Parsed = (Option<String>, std::result::Result<NewEvent, ValidationErrors>);

/// Stores parsed events inside the caller's transaction (see [`Store::ingest`]).
pub(crate) fn ingest_tx(
    tx: &mut dyn Tx,
    store: &Store,
    parsed: Vec<Parsed>,
    create_contact: bool,
    now: Timestamp,
) -> Result<IngestReport> {
    let mut dir = Directory::load(tx, parsed.iter().filter_map(|(_, p)| p.as_ref().ok().map(|e| &e.contact)))?;
    let mut results = Vec::with_capacity(parsed.len());
    // Accepted-so-far events: the event, its contact, its Rapport id and its result's position.
    let mut events: Vec<(NewEvent, Uuid, Uuid, usize)> = Vec::with_capacity(parsed.len());
    let mut seen_sources: HashSet<String> = HashSet::new();
    for (index, (raw_id, item)) in parsed.into_iter().enumerate() {
        let e = match item {
            Ok(e) => e,
            Err(v) => {
                results.push(ItemResult { index, status: ItemStatus::Rejected, id: raw_id, contact_id: None, errors: v.errors });
                continue;
            }
        };
        if let Some(s) = &e.source_id
            && !seen_sources.insert(s.clone())
        {
            results.push(ItemResult { index, status: ItemStatus::Duplicate, id: raw_id, contact_id: None, errors: vec![] });
            continue;
        }
        let contact = match dir.find(&e.contact) {
            Some(id) => id,
            None if create_contact => match create_lead(tx, store, &e) {
                Ok(id) => {
                    dir.remember(&e.contact, id);
                    id
                }
                Err(errors) => {
                    results.push(ItemResult { index, status: ItemStatus::Rejected, id: raw_id, contact_id: None, errors });
                    continue;
                }
            },
            None => {
                let hint =
                    if matches!(e.contact, ContactRef::Id(_)) { "" } else { "; send \"create_contact\": true to create a lead" };
                results.push(ItemResult {
                    index,
                    status: ItemStatus::Rejected,
                    id: raw_id,
                    contact_id: None,
                    errors: vec![FieldError::new("contact", format!("no contact matches {}{hint}", describe(&e.contact)))],
                });
                continue;
            }
        };
        let id = new_id();
        events.push((e, contact, id, results.len()));
        let e = &events[events.len() - 1].0;
        results.push(ItemResult {
            index,
            status: ItemStatus::Accepted,
            id: Some(e.source_id.clone().unwrap_or_else(|| id.to_string())),
            contact_id: Some(contact),
            errors: vec![],
        });
    }

    // Write: events with a sender id learn from RETURNING which were new; the rest are new by
    // construction.
    // Subscription changes, kept aside before payloads move into the rows: the topic, and
    // where the change came from for the consent ledger.
    let subscriptions: Vec<SubscriptionChange> = events
        .iter()
        .filter(|(e, ..)| matches!(e.kind.as_str(), "email.subscribed" | "email.unsubscribed"))
        .map(|(e, contact, id, _)| {
            let text = |k: &str| e.payload.get(k).and_then(|t| t.as_str()).map(|t| t.trim().to_string());
            SubscriptionChange {
                source_id: e.source_id.clone(),
                event_id: *id,
                contact: *contact,
                topic: text("topic").map(|t| t.to_lowercase()).unwrap_or_else(|| "*".into()),
                subscribed: e.kind == "email.subscribed",
                at: e.occurred_at,
                source: text("source").filter(|s| !s.is_empty()).unwrap_or_else(|| "event".into()),
            }
        })
        .collect();
    let mut with_source = Vec::new();
    let mut without_source = Vec::new();
    // Sender ids in one order for every transaction, so that two instances storing the same
    // delivery wait for each other on the unique index instead of deadlocking.
    events.sort_by(|a, b| a.0.source_id.cmp(&b.0.source_id));
    for (e, contact, id, _) in &mut events {
        let values = if e.source_id.is_some() { &mut with_source } else { &mut without_source };
        values.extend([
            Value::Uuid(*contact),
            Value::Time(e.occurred_at),
            Value::Uuid(*id),
            e.source_id.clone().into(),
            Value::Text(e.kind.clone()),
            Value::Text(e.channel.as_str().to_string()),
            e.money.map(|m| m.currency.as_str().to_string()).into(),
            e.money.map(|m| m.minor).into(),
            Value::Json(serde_json::Value::Object(std::mem::take(&mut e.payload))),
            Value::Time(now),
            Value::Null,
        ]);
    }
    let mut stored: Option<HashSet<String>> = None;
    if !with_source.is_empty() {
        let rows = insert_many(
            tx,
            INSERT_EVENTS,
            EVENT_COLUMNS,
            &with_source,
            "ON CONFLICT (source_id) WHERE source_id IS NOT NULL DO NOTHING RETURNING source_id",
        )?;
        stored = Some(rows.into_iter().map(|r: Row| r.string(0)).collect::<Result<_>>()?);
    }
    if !without_source.is_empty() {
        insert_many(tx, INSERT_EVENTS, EVENT_COLUMNS, &without_source, "")?;
    }
    // Workflows learn of the new events in the same transaction.
    let is_new = |row: &[Value]| match (&row[3], &stored) {
        (Value::Text(s), Some(stored)) => stored.contains(s),
        _ => true,
    };
    crate::automation::enqueue_event_rows(tx, &with_source, &is_new, now)?;
    drop(with_source);
    crate::automation::enqueue_event_rows(tx, &without_source, &|_| true, now)?;

    let mut folds = Vec::with_capacity(events.len());
    for (e, contact, _, at) in &events {
        let result = &mut results[*at];
        if let (Some(s), Some(stored)) = (&e.source_id, &stored)
            && !stored.contains(s)
        {
            result.status = ItemStatus::Duplicate;
            result.contact_id = None;
            continue;
        }
        folds.push(Fold { contact_id: *contact, at: e.occurred_at, effect: &e.effect });
    }
    let sold = folds.iter().any(|f| matches!(f.effect, rapport_core::event::Effect::Order { .. }));
    let touched: Vec<Uuid> = folds.iter().map(|f| f.contact_id).collect();
    profiles::apply(tx, store, &mut folds, profiles::Mode::Incremental, now)?;
    let new_event = |source: &Option<String>| match (source, &stored) {
        (Some(s), Some(stored)) => stored.contains(s),
        _ => true,
    };
    let subscriptions: Vec<SubscriptionChange> = subscriptions.into_iter().filter(|s| new_event(&s.source_id)).collect();
    // Each change is a fact in the consent ledger too, whoever reported it (an unsubscribe
    // link, a shop, an import): the record of who agreed to what, when, and how we know.
    let mut ledger = Vec::with_capacity(subscriptions.len() * 9);
    for s in &subscriptions {
        let purpose = if s.topic == "*" { rapport_core::consent::ALL_MARKETING } else { s.topic.as_str() };
        ledger.extend([
            Value::Uuid(new_id()),
            Value::Uuid(s.contact),
            Value::Text(purpose.to_string()),
            Value::Text("email".into()),
            Value::Bool(s.subscribed),
            Value::Text(s.source.chars().take(100).collect()),
            Value::Text("consent".into()),
            Value::Text(format!("event {}", s.event_id)),
            Value::Time(s.at),
        ]);
    }
    if !ledger.is_empty() {
        insert_many(
            tx,
            "INSERT INTO consent_ledger (id, contact_id, purpose, channel, granted, source, legal_basis, evidence, recorded_at)",
            9,
            &ledger,
            "",
        )?;
    }
    // One row per person and topic (a statement may not update a row twice): the latest.
    let mut latest: std::collections::BTreeMap<(Uuid, String), (bool, Timestamp)> = Default::default();
    for s in subscriptions {
        let slot = latest.entry((s.contact, s.topic)).or_insert((s.subscribed, s.at));
        if s.at >= slot.1 {
            *slot = (s.subscribed, s.at);
        }
    }
    let mut values = Vec::new();
    for ((contact, topic), (subscribed, at)) in latest {
        values.extend([Value::Uuid(contact), Value::Text(topic), Value::Bool(subscribed), Value::Time(at)]);
    }
    if !values.is_empty() {
        // The latest change wins, whatever order the events arrive in.
        insert_many(
            tx,
            "INSERT INTO contact_subscriptions (contact_id, topic, subscribed, changed_at)",
            4,
            &values,
            "ON CONFLICT (contact_id, topic) DO UPDATE SET subscribed = excluded.subscribed, changed_at = excluded.changed_at \
             WHERE excluded.changed_at >= contact_subscriptions.changed_at",
        )?;
    }
    segments::mark_segments_dirty(tx, &touched, now)?;
    let mut contacts = touched;
    contacts.sort_unstable();
    contacts.dedup();
    crate::automation::react_in_ingest(tx, store, &contacts)?;
    Ok(IngestReport { results, sold })
}

/// An `email.subscribed` / `email.unsubscribed` event's change, for the subscription state and
/// the consent ledger.
struct SubscriptionChange {
    source_id: Option<String>,
    event_id: Uuid,
    contact: Uuid,
    /// The topic key, `*` for all marketing.
    topic: String,
    subscribed: bool,
    at: Timestamp,
    /// The payload's `source` (`unsubscribe_link`, `shop`), or `event`.
    source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let t = chrono::DateTime::from_timestamp_micros(1_767_225_600_123_456).unwrap();
        assert_eq!(decode_cursor(&encode_cursor(t, 42)).unwrap(), (t, 42));
        assert!(decode_cursor("nonsense").is_err());
    }
}
