//! Segments: stored filters whose members are kept current.
//!
//! - Creating or changing a segment evaluates it in full, in the same transaction.
//! - Every write that can change who matches (events, contact edits, relations, company
//!   links) marks the contact in `segment_dirty` in its own transaction; the maintainer drains
//!   that queue in batches, re-evaluating only those contacts against every segment, in
//!   dependency order, and records `segment.entered` / `segment.exited` events in the same
//!   transaction as the membership change. A crash loses nothing: the marks are rows.
//! - Segments whose answer moves with the clock are re-evaluated in full when due.

mod compile;

pub(crate) use compile::custom_value_expr;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rapport_core::Timestamp;
use rapport_core::contact::Contact;
use rapport_core::custom_field::RecordType;
use rapport_core::segment::{Filter, SegmentDraft, SegmentPatch, SegmentSpec};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{Dialect, Tx, insert_many, select_in};
use crate::events::{SystemEvent, insert_system_events, push_system_event};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError, contacts, custom_fields};

pub(crate) use compile::{Context, event_conditions};

/// How many marked contacts one maintenance transaction re-evaluates.
pub const MAINTAIN_BATCH: usize = 2_000;

/// A stored segment.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segment {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// The filter in its canonical text form.
    pub filter: String,
    /// The same filter as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub filter_json: serde_json::Value,
    /// Whether time passing alone can change the members (so they are refreshed as it does).
    pub depends_on_time: bool,
    pub member_count: i64,
    pub refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The answer to a preview: how many match now, and a few of them.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preview {
    pub count: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub sample: Vec<Contact>,
    /// The filter in canonical text form, as understood.
    pub filter: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub filter_json: serde_json::Value,
}

/// Why a contact is (or is not) in a segment.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    pub segment_id: Uuid,
    pub contact_id: Uuid,
    /// Stored membership.
    pub member: bool,
    pub entered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether the filter holds right now (differs from `member` only until the maintainer
    /// catches up).
    pub matches: bool,
    pub filter: String,
    pub reason: ExplainNode,
}

/// One node of the filter with whether it held; leaves carry the value that decided.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExplainNode {
    /// `and`, `or`, `not`, or `condition`.
    pub kind: &'static str,
    /// The node in the text syntax.
    pub condition: String,
    pub held: bool,
    /// For conditions: the contact's value (a number, date, text or list), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub value: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub parts: Vec<ExplainNode>,
}

/// What one maintenance pass did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaintainReport {
    pub contacts: u64,
    pub entered: u64,
    pub exited: u64,
    pub segments_refreshed: u64,
}

const SORTS: &[SortField] = &[
    SortField { name: "name", expr: "s.name_key", kind: SortKind::Text },
    SortField { name: "created_at", expr: "s.created_at", kind: SortKind::Time },
    SortField { name: "updated_at", expr: "s.updated_at", kind: SortKind::Time },
];

const SELECT: &str = "SELECT s.id, s.name, s.description, s.filter, s.filter_json, s.depends_on_time, s.member_count, \
     s.refreshed_at, s.created_at, s.updated_at";

fn map_row(r: Row) -> Result<Segment> {
    Ok(Segment {
        id: r.uuid(0)?,
        name: r.string(1)?,
        description: r.opt_string(2)?,
        filter: r.string(3)?,
        filter_json: r.json(4)?,
        depends_on_time: r.bool(5)?,
        member_count: r.i64(6)?,
        refreshed_at: r.opt_time(7)?,
        created_at: r.time(8)?,
        updated_at: r.time(9)?,
    })
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<Segment> {
    let row = tx.query_opt(&format!("{SELECT} FROM segments s WHERE s.id = $1"), &[id.into()])?;
    map_row(row.ok_or_else(|| StoreError::not_found("segment", id))?)
}

/// A stored segment's filter, parsed back from its JSON form.
fn stored_filter(s: &Segment) -> Result<Filter> {
    serde_json::from_value(s.filter_json.clone())
        .map_err(|e| StoreError::Database(format!("segment {} has a bad filter: {e}", s.id)))
}

/// Marks edited contacts for re-evaluation (segments, and the schedules of date and inactivity
/// workflows), in the caller's transaction.
pub(crate) fn mark_dirty(tx: &mut dyn Tx, ids: &[Uuid], now: Timestamp) -> Result<()> {
    crate::automation::mark_contacts_changed(tx, ids, now)?;
    mark_segments_dirty(tx, ids, now)
}

/// Marks contacts for segment re-evaluation only: for events, whose effect on workflows goes
/// through the automation inbox instead. Does nothing while no segment exists, so a CRM
/// without segments pays one indexed probe per write.
pub(crate) fn mark_segments_dirty(tx: &mut dyn Tx, ids: &[Uuid], now: Timestamp) -> Result<()> {
    if ids.is_empty() || !tx.exists("SELECT 1 FROM segments LIMIT 1", &[])? {
        return Ok(());
    }
    crate::db::mark_queue(tx, "segment_dirty", ids, now)
}

/// Marks every contact a `SELECT contact_id …` query returns (links of a company, both ends
/// of a relation).
pub(crate) fn mark_dirty_where(tx: &mut dyn Tx, select_ids: &str, params: &[Value], now: Timestamp) -> Result<()> {
    if !tx.exists("SELECT 1 FROM segments LIMIT 1", &[])?
        && !tx.exists("SELECT 1 FROM workflow_listens WHERE event_type = $1", &[rapport_core::workflow::SCHEDULE_MARK.into()])?
    {
        return Ok(());
    }
    let rows = tx.query(select_ids, params)?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.uuid(0)).collect::<Result<_>>()?;
    mark_dirty(tx, &ids, now)
}

impl Store {
    /// What compiling needs, read in the caller's transaction.
    pub(crate) fn segment_context(&self, tx: &mut dyn Tx, now: Timestamp) -> Result<Context<'_>> {
        let kinds = |tx: &mut dyn Tx, rt| -> Result<HashMap<String, _>> {
            Ok(custom_fields::load_all(tx, Some(rt))?.into_iter().map(|d| (d.key, d.kind)).collect())
        };
        let contact_fields = kinds(tx, RecordType::Contact)?;
        let company_fields = kinds(tx, RecordType::Company)?;
        let segments = tx
            .query("SELECT name_key, id FROM segments", &[])?
            .into_iter()
            .map(|r| Ok((r.string(0)?, r.uuid(1)?)))
            .collect::<Result<_>>()?;
        Ok(Context {
            dialect: tx.dialect(),
            now,
            rules: &self.inner.options.profile_rules,
            default_tz: self.inner.options.default_time_zone,
            contact_fields,
            company_fields,
            segments,
        })
    }

    /// Counts who matches an unsaved filter right now, with a sample of them.
    pub async fn preview_segment(&self, filter: Filter, sample: u32) -> Result<Preview> {
        let store = self.clone();
        let unsaved = filter.clone();
        let (count_sql, sample_sql, params) = self
            .read(move |tx| {
                let cx = store.segment_context(tx, store.now())?;
                let mut params = Vec::new();
                let compiled = compile::compile(&cx, &unsaved, &mut params)?;
                let sample_sql = format!(
                    "{} {} WHERE {} ORDER BY c.name_key, c.id LIMIT {}",
                    contacts::SELECT,
                    compiled.from(),
                    compiled.sql,
                    sample.min(100)
                );
                let split = match tx.dialect() {
                    Dialect::Sqlite => store.inner.count_split.get(tx)?,
                    Dialect::Postgres => None,
                };
                Ok((count_statements(tx.dialect(), &compiled, split), sample_sql, params))
            })
            .await?;
        let params = Arc::new(params);
        let count_part = |sql: String| {
            let params = params.clone();
            self.read(move |tx| tx.query_one(&sql, &params)?.i64(0))
        };
        let (first, second) = count_sql;
        let sample_params = params.clone();
        let (first, second, rows) = tokio::try_join!(
            count_part(first),
            async {
                match second {
                    Some(sql) => count_part(sql).await,
                    None => Ok(0),
                }
            },
            self.read(move |tx| tx.query(&sample_sql, &sample_params))
        )?;
        let sample = rows.into_iter().map(contacts::map_row).collect::<Result<_>>()?;
        Ok(Preview { count: first + second, sample, filter: filter.to_string(), filter_json: to_json(&filter)? })
    }

    /// The statement [`preview_segment`](Store::preview_segment) counts with, and its
    /// parameters, compiled now: for benchmarks and diagnostics (EXPLAIN, timing the SQL alone).
    pub async fn preview_count_sql(&self, filter: Filter) -> Result<(String, Vec<Value>)> {
        let store = self.clone();
        self.read(move |tx| {
            let cx = store.segment_context(tx, store.now())?;
            let mut params = Vec::new();
            let compiled = compile::compile(&cx, &filter, &mut params)?;
            Ok((format!("SELECT count(*) {} WHERE {}", compiled.from(), compiled.sql), params))
        })
        .await
    }

    /// The contact condition for `GET /contacts?filter=…`: SQL over `contacts c` (with
    /// `profiles p` joined when `needs_profile`), parameters appended to `params`.
    pub(crate) fn contact_filter_sql(&self, tx: &mut dyn Tx, filter: &Filter, params: &mut Vec<Value>) -> Result<(String, bool)> {
        let cx = self.segment_context(tx, self.now())?;
        let compiled = compile::compile(&cx, filter, params)?;
        Ok((compiled.sql, compiled.needs_profile))
    }

    pub async fn create_segment(&self, draft: SegmentDraft, actor: Option<Uuid>) -> Result<Segment> {
        let spec = draft.parse()?;
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            let id = rapport_core::new_id();
            check_name_free(tx, &spec.name, None)?;
            let (text, json) = (spec.filter.to_string(), to_json(&spec.filter)?);
            tx.execute(
                "INSERT INTO segments (id, name, name_key, description, filter, filter_json, depends_on_time, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                &[
                    id.into(),
                    spec.name.clone().into(),
                    spec.name.to_lowercase().into(),
                    spec.description.clone().into(),
                    text.into(),
                    Value::Json(json),
                    spec.filter.depends_on_time().into(),
                    actor.into(),
                    now.into(),
                ],
            )?;
            write_dependencies(tx, &store, id, &spec)?;
            // The first evaluation fills the segment quietly: nobody "entered" it.
            refresh_tx(tx, &store, id, now, false)?;
            load(tx, id)
        })
        .await
    }

    pub async fn update_segment(&self, id: Uuid, patch: SegmentPatch) -> Result<Segment> {
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            let current = load(tx, id)?;
            let current_spec =
                SegmentSpec { name: current.name.clone(), description: current.description.clone(), filter: stored_filter(&current)? };
            let spec = patch.apply(current_spec.clone())?;
            if spec.name.to_lowercase() != current.name.to_lowercase() {
                check_name_free(tx, &spec.name, Some(id))?;
                if tx.exists("SELECT 1 FROM segment_dependencies WHERE depends_on_id = $1", &[id.into()])? {
                    return Err(StoreError::conflict("name", "other segments name this one in their filters; change them first"));
                }
            }
            tx.execute(
                "UPDATE segments SET name = $2, name_key = $3, description = $4, filter = $5, filter_json = $6, depends_on_time = $7, \
                 updated_at = $8 WHERE id = $1",
                &[
                    id.into(),
                    spec.name.clone().into(),
                    spec.name.to_lowercase().into(),
                    spec.description.clone().into(),
                    spec.filter.to_string().into(),
                    Value::Json(to_json(&spec.filter)?),
                    spec.filter.depends_on_time().into(),
                    now.into(),
                ],
            )?;
            if spec.filter != current_spec.filter {
                tx.execute("DELETE FROM segment_dependencies WHERE segment_id = $1", &[id.into()])?;
                write_dependencies(tx, &store, id, &spec)?;
                refresh_tx(tx, &store, id, now, true)?;
            }
            load(tx, id)
        })
        .await
    }

    pub async fn delete_segment(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let users: Vec<String> = tx
                .query(
                    "SELECT s.name FROM segment_dependencies d JOIN segments s ON s.id = d.segment_id WHERE d.depends_on_id = $1 ORDER BY s.name_key",
                    &[id.into()],
                )?
                .into_iter()
                .map(|r| r.string(0))
                .collect::<Result<_>>()?;
            if !users.is_empty() {
                return Err(StoreError::conflict("id", format!("used by the filters of: {}; change them first", users.join(", "))));
            }
            match tx.execute("DELETE FROM segments WHERE id = $1", &[id.into()])? {
                0 => Err(StoreError::not_found("segment", id)),
                _ => Ok(()),
            }
        })
        .await
    }

    pub async fn get_segment(&self, id: Uuid) -> Result<Segment> {
        self.read_point(move |tx| load(tx, id)).await
    }

    pub async fn list_segments(&self, page: PageRequest) -> Result<Page<Segment>> {
        self.read(move |tx| {
            let q = ListQuery::new(&page, SORTS, "name", "s.id")?;
            let rows = tx.query(&q.sql(SELECT, "FROM segments s"), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }

    /// The stored members, as contacts, in name order.
    pub async fn segment_members(&self, id: Uuid, page: PageRequest) -> Result<Page<Contact>> {
        self.read(move |tx| {
            if !tx.exists("SELECT 1 FROM segments WHERE id = $1", &[id.into()])? {
                return Err(StoreError::not_found("segment", id));
            }
            let mut q = ListQuery::new(&page, contacts::SORTS, "display_name", "c.id")?;
            let p = q.param(id);
            q.condition(format!("EXISTS (SELECT 1 FROM segment_members m WHERE m.segment_id = {p} AND m.contact_id = c.id)"));
            let rows = tx.query(&q.sql(contacts::SELECT, "FROM contacts c"), &q.params)?;
            q.page(rows, |r| r.uuid(0), contacts::map_row)
        })
        .await
    }

    /// The segments a contact is in, with when they entered.
    pub async fn contact_segments(&self, contact_id: Uuid) -> Result<Vec<(Uuid, String, Timestamp)>> {
        self.read_point(move |tx| {
            tx.query(
                "SELECT s.id, s.name, m.entered_at FROM segment_members m JOIN segments s ON s.id = m.segment_id \
                 WHERE m.contact_id = $1 ORDER BY s.name_key",
                &[contact_id.into()],
            )?
            .into_iter()
            .map(|r| Ok((r.uuid(0)?, r.string(1)?, r.time(2)?)))
            .collect()
        })
        .await
    }

    /// Which conditions of the segment's filter hold for the contact, with the values.
    pub async fn explain_segment(&self, id: Uuid, contact_id: Uuid) -> Result<Explanation> {
        let store = self.clone();
        self.read(move |tx| {
            let segment = load(tx, id)?;
            if !tx.exists("SELECT 1 FROM contacts WHERE id = $1", &[contact_id.into()])? {
                return Err(StoreError::not_found("contact", contact_id));
            }
            let filter = stored_filter(&segment)?;
            let entered_at = tx
                .query_opt(
                    "SELECT entered_at FROM segment_members WHERE segment_id = $1 AND contact_id = $2",
                    &[id.into(), contact_id.into()],
                )?
                .map(|r| r.time(0))
                .transpose()?;
            let cx = store.segment_context(tx, store.now())?;
            let mut params = vec![Value::Uuid(contact_id)];
            let (leaves, needs_profile) = compile::compile_leaves(&cx, &filter, &mut params)?;
            let mut cols = Vec::with_capacity(leaves.len() * 2);
            for l in &leaves {
                cols.push(format!("CASE WHEN {} THEN 1 ELSE 0 END", l.held_sql));
                cols.push(l.value_sql.clone().unwrap_or_else(|| "NULL".into()));
            }
            let from =
                if needs_profile { "FROM contacts c LEFT JOIN profiles p ON p.contact_id = c.id" } else { "FROM contacts c" };
            let row = tx.query_one(&format!("SELECT {} {from} WHERE c.id = $1", cols.join(", ")), &params)?;
            let mut leaf_values = Vec::with_capacity(leaves.len());
            for (i, leaf) in leaves.iter().enumerate() {
                let held = row.i64(i * 2)? == 1;
                let raw = &row.0[i * 2 + 1];
                let value = match (raw, leaf.value_is_time, leaf.value_is_json) {
                    (Value::I64(us), true, _) => {
                        chrono::DateTime::from_timestamp_micros(*us).map(Value::Time).unwrap_or(Value::Null)
                    }
                    // SQLite hands JSON over as its text.
                    (Value::Text(s), _, true) => serde_json::from_str(s).map(Value::Json).unwrap_or(Value::Null),
                    _ => raw.clone(),
                };
                leaf_values.push((held, json_value(&value)));
            }
            let mut next = leaf_values.into_iter();
            let reason = explain_node(&filter, &mut next);
            Ok(Explanation {
                segment_id: id,
                contact_id,
                member: entered_at.is_some(),
                entered_at,
                matches: reason.held,
                filter: segment.filter,
                reason,
            })
        })
        .await
    }

    /// Re-evaluates one batch of marked contacts against every segment. Returns what changed;
    /// `contacts == 0` means the queue was empty.
    pub async fn maintain_segments(&self, batch: usize) -> Result<MaintainReport> {
        let store = self.clone();
        self.write(move |tx| maintain_tx(tx, &store, batch)).await
    }

    /// Drains the whole queue (tests, the admin endpoint, after bulk loads).
    pub async fn maintain_segments_fully(&self) -> Result<MaintainReport> {
        let mut total = MaintainReport::default();
        loop {
            let r = self.maintain_segments(MAINTAIN_BATCH).await?;
            total.contacts += r.contacts;
            total.entered += r.entered;
            total.exited += r.exited;
            if r.contacts == 0 {
                return Ok(total);
            }
        }
    }

    /// Whether contacts are waiting to be re-evaluated, including those another maintainer is
    /// working on right now (which [`maintain_segments`](Store::maintain_segments) skips on
    /// PostgreSQL).
    pub async fn segment_changes_pending(&self) -> Result<bool> {
        self.read(|tx| tx.exists("SELECT 1 FROM segment_dirty", &[])).await
    }

    /// Re-evaluates in full every time-dependent segment whose refresh is due.
    pub async fn refresh_due_segments(&self, every: std::time::Duration) -> Result<MaintainReport> {
        let due: Vec<Uuid> = {
            let now = self.now();
            self.read(move |tx| {
                tx.query("SELECT id FROM segments WHERE refresh_due_at <= $1 ORDER BY refresh_due_at", &[now.into()])?
                    .iter()
                    .map(|r| r.uuid(0))
                    .collect()
            })
            .await?
        };
        let mut report = MaintainReport::default();
        for id in due {
            let r = match self.refresh_segment_every(id, every).await {
                Err(StoreError::Invalid(e)) => {
                    warn_broken(id, &e);
                    continue;
                }
                r => r?,
            };
            report.entered += r.entered;
            report.exited += r.exited;
            report.segments_refreshed += 1;
        }
        Ok(report)
    }

    /// Re-evaluates in full every segment that depends on time (after the clock jumped).
    pub async fn refresh_time_dependent_segments(&self) -> Result<MaintainReport> {
        let ids: Vec<Uuid> = self
            .read(|tx| {
                tx.query("SELECT id FROM segments WHERE depends_on_time ORDER BY id", &[])?.iter().map(|r| r.uuid(0)).collect()
            })
            .await?;
        let mut report = MaintainReport::default();
        for id in ids {
            let r = match self.refresh_segment(id).await {
                Err(StoreError::Invalid(e)) => {
                    warn_broken(id, &e);
                    continue;
                }
                r => r?,
            };
            report.entered += r.entered;
            report.exited += r.exited;
            report.segments_refreshed += 1;
        }
        Ok(report)
    }

    /// Re-evaluates one segment in full now.
    pub async fn refresh_segment(&self, id: Uuid) -> Result<MaintainReport> {
        self.refresh_segment_every(id, DEFAULT_REFRESH_EVERY).await
    }

    async fn refresh_segment_every(&self, id: Uuid, every: std::time::Duration) -> Result<MaintainReport> {
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            // It may have been deleted since it was found due.
            if !tx.exists("SELECT 1 FROM segments WHERE id = $1", &[id.into()])? {
                return Ok(MaintainReport::default());
            }
            let (entered, exited) = refresh_tx(tx, &store, id, now, true)?;
            let due = now + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::hours(1));
            // A bare `$2` in a CASE branch is typed text by PostgreSQL (and refused for a
            // timestamptz column); beside the column in coalesce it takes the column's type.
            tx.execute(
                "UPDATE segments SET refresh_due_at = CASE WHEN depends_on_time THEN coalesce($2, refresh_due_at) END WHERE id = $1",
                &[id.into(), due.into()],
            )?;
            Ok(MaintainReport { contacts: 0, entered, exited, segments_refreshed: 1 })
        })
        .await
    }
}

/// The statements that count who matches `compiled`, to run at once on separate connections.
/// SQLite runs each query on one core, so there the people are split in two halves at `split`
/// (the middle person; by the last byte of their id, random in a UUIDv7, when there is none
/// yet): a five-condition count over a million people took 140 ms in one piece and about 80 ms
/// in two (docs/benchmarks.md, "Segments"). The split reads the profile's key when only people
/// with a profile can match, so that each half reads only its own part of the profile index.
fn count_statements(d: Dialect, compiled: &compile::Compiled, split: Option<Uuid>) -> (String, Option<String>) {
    if d == Dialect::Postgres {
        return (format!("SELECT count(*) {} WHERE {}", compiled.from(), compiled.sql), None);
    }
    let (from, key) = if compiled.profile_required {
        ("FROM contacts c JOIN profiles p ON p.contact_id = c.id", "p.contact_id")
    } else {
        (compiled.from(), "c.id")
    };
    let (key, at) = match split {
        Some(id) => (key.to_string(), format!("x'{}'", id.simple())),
        None => (format!("substr({key}, 16, 1)"), "x'80'".to_string()),
    };
    let half = |op: &str| format!("SELECT count(*) {from} WHERE ({}) AND {key} {op} {at}", compiled.sql);
    (half("<"), Some(half(">=")))
}

/// How long the middle person stays the split point of counts: the split only needs to be
/// roughly even, and finding it reads half of the profiles (11 ms for a million).
const COUNT_SPLIT_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// The id of the person in the middle of all profiles, by id, found at most every
/// [`COUNT_SPLIT_TTL`]; `None` without profiles.
#[derive(Default)]
pub(crate) struct CountSplitCache(std::sync::Mutex<Option<(std::time::Instant, Option<Uuid>)>>);

impl CountSplitCache {
    fn get(&self, tx: &mut dyn Tx) -> Result<Option<Uuid>> {
        if let Some((at, split)) = *self.0.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < COUNT_SPLIT_TTL
        {
            return Ok(split);
        }
        let split = tx
            .query_opt(
                "SELECT contact_id FROM profiles ORDER BY contact_id LIMIT 1 OFFSET (SELECT count(*) FROM profiles) / 2",
                &[],
            )?
            .map(|r| r.uuid(0))
            .transpose()?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), split));
        Ok(split)
    }
}

/// A segment whose filter no longer compiles (it names a custom field since deleted, or one
/// whose kind changed) keeps its members as they were and is left out of maintenance, so that
/// it does not stop every other segment from being kept current. Refreshing or explaining it
/// alone still answers with the problem.
fn warn_broken(id: Uuid, e: &rapport_core::ValidationErrors) {
    tracing::warn!(segment = %id, error = %e, "a segment's filter no longer compiles; it is not being kept current");
}

/// How often time-dependent segments are refreshed unless configured otherwise.
pub const DEFAULT_REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

fn to_json(f: &Filter) -> Result<serde_json::Value> {
    serde_json::to_value(f).map_err(|e| StoreError::Database(format!("cannot encode a filter: {e}")))
}

fn check_name_free(tx: &mut dyn Tx, name: &str, except: Option<Uuid>) -> Result<()> {
    let taken = tx.query_opt("SELECT id FROM segments WHERE name_key = $1", &[name.to_lowercase().into()])?;
    match taken {
        Some(r) if Some(r.uuid(0)?) != except => {
            Err(StoreError::conflict("name", format!("a segment named \"{name}\" already exists")))
        }
        _ => Ok(()),
    }
}

/// Records which segments the filter names, refusing unknown names and cycles.
fn write_dependencies(tx: &mut dyn Tx, store: &Store, id: Uuid, spec: &SegmentSpec) -> Result<()> {
    let cx = store.segment_context(tx, store.now())?;
    let mut targets = Vec::new();
    for name in spec.filter.segments() {
        let target = *cx
            .segments
            .get(&name.trim().to_lowercase())
            .ok_or_else(|| StoreError::invalid("filter", format!("no segment is named \"{name}\"")))?;
        if target == id {
            return Err(StoreError::invalid("filter", "a segment cannot contain itself"));
        }
        targets.push(target);
    }
    for t in &targets {
        // A cycle exists when the target (transitively) depends on this segment.
        if depends_on(tx, *t, id)? {
            return Err(StoreError::invalid("filter", "segments would name each other in a circle"));
        }
        tx.execute(
            "INSERT INTO segment_dependencies (segment_id, depends_on_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[id.into(), (*t).into()],
        )?;
    }
    Ok(())
}

fn depends_on(tx: &mut dyn Tx, from: Uuid, target: Uuid) -> Result<bool> {
    let mut seen = HashSet::new();
    let mut stack = vec![from];
    while let Some(s) = stack.pop() {
        if s == target {
            return Ok(true);
        }
        if !seen.insert(s) {
            continue;
        }
        for r in tx.query("SELECT depends_on_id FROM segment_dependencies WHERE segment_id = $1", &[s.into()])? {
            stack.push(r.uuid(0)?);
        }
    }
    Ok(false)
}

/// All segments in dependency order (a segment after those it names).
fn segments_in_order(tx: &mut dyn Tx) -> Result<Vec<Segment>> {
    let all: Vec<Segment> =
        tx.query(&format!("{SELECT} FROM segments s ORDER BY s.id"), &[])?.into_iter().map(map_row).collect::<Result<_>>()?;
    let mut deps: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for r in tx.query("SELECT segment_id, depends_on_id FROM segment_dependencies", &[])? {
        deps.entry(r.uuid(0)?).or_default().push(r.uuid(1)?);
    }
    let mut placed: HashSet<Uuid> = HashSet::new();
    let mut ordered = Vec::with_capacity(all.len());
    let mut left = all;
    while !left.is_empty() {
        let before = left.len();
        let (ready, rest): (Vec<Segment>, Vec<Segment>) =
            left.into_iter().partition(|s| deps.get(&s.id).is_none_or(|d| d.iter().all(|x| placed.contains(x))));
        for s in &ready {
            placed.insert(s.id);
        }
        ordered.extend(ready);
        left = rest;
        if left.len() == before {
            // Cycles are refused on write; should one exist anyway, evaluate the rest as they are.
            ordered.append(&mut left);
        }
    }
    Ok(ordered)
}

/// What is only in `now` (entered) and only in `before` (exited); both sorted.
fn sorted_difference(now: &[Uuid], before: &[Uuid]) -> (Vec<Uuid>, Vec<Uuid>) {
    let (mut entered, mut exited) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < now.len() || j < before.len() {
        match (now.get(i), before.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                entered.push(*a);
                i += 1;
            }
            (Some(_), Some(b)) => {
                exited.push(*b);
                j += 1;
            }
            (Some(a), None) => {
                entered.push(*a);
                i += 1;
            }
            (None, Some(b)) => {
                exited.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (entered, exited)
}

/// Locks segment rows (one, or all) in id order on PostgreSQL; SQLite has one writer.
pub(crate) fn lock_segments(tx: &mut dyn Tx, one: Option<Uuid>) -> Result<()> {
    if tx.dialect() == Dialect::Postgres {
        match one {
            Some(id) => tx.query("SELECT id FROM segments WHERE id = $1 FOR UPDATE", &[id.into()])?,
            None => tx.query("SELECT id FROM segments ORDER BY id FOR UPDATE", &[])?,
        };
    }
    Ok(())
}

/// Segment events for the contacts that entered or left.
fn push_membership_events(values: &mut Vec<Value>, segment: &Segment, ids: &[Uuid], entered: bool, now: Timestamp) {
    for id in ids {
        push_system_event(
            values,
            SystemEvent {
                contact_id: *id,
                kind: if entered { "segment.entered" } else { "segment.exited" },
                occurred_at: now,
                payload: serde_json::json!({"segment_id": segment.id, "segment": segment.name}),
                actor_id: None,
            },
            now,
        );
    }
}

/// Evaluates a segment in full and stores the difference. With `announce`, who entered or
/// left gets a timeline event (and dependants are marked); without, the change is silent
/// (a new segment's first filling). Returns (entered, exited).
fn refresh_tx(tx: &mut dyn Tx, store: &Store, id: Uuid, now: Timestamp, announce: bool) -> Result<(u64, u64)> {
    lock_segments(tx, Some(id))?;
    let segment = load(tx, id)?;
    let filter = stored_filter(&segment)?;
    let cx = store.segment_context(tx, now)?;
    // The filter is evaluated once; who entered and who left is the difference of two sorted
    // id lists (16 bytes a person), so the filter's cost is paid once, not once per side.
    let mut params = Vec::new();
    let compiled = compile::compile(&cx, &filter, &mut params)?;
    let mut matched: Vec<Uuid> = tx
        .query(&format!("SELECT c.id {} WHERE {}", compiled.from(), compiled.sql), &params)?
        .iter()
        .map(|r| r.uuid(0))
        .collect::<Result<_>>()?;
    let mut current: Vec<Uuid> = tx
        .query("SELECT contact_id FROM segment_members WHERE segment_id = $1", &[id.into()])?
        .iter()
        .map(|r| r.uuid(0))
        .collect::<Result<_>>()?;
    matched.sort_unstable();
    current.sort_unstable();
    let (entered, exited) = sorted_difference(&matched, &current);
    if !entered.is_empty() {
        let mut values = Vec::with_capacity(entered.len() * 3);
        for c in &entered {
            values.extend([Value::Uuid(id), Value::Uuid(*c), Value::Time(now)]);
        }
        insert_many(tx, "INSERT INTO segment_members (segment_id, contact_id, entered_at)", 3, &values, "")?;
    }
    if !exited.is_empty() {
        let gone: Vec<Value> = exited.iter().map(|c| Value::Uuid(*c)).collect();
        select_in(
            tx,
            "DELETE FROM segment_members WHERE segment_id = $1 AND contact_id IN ({in}) RETURNING contact_id",
            &[id.into()],
            &gone,
        )?;
    }
    tx.execute(
        "UPDATE segments SET member_count = (SELECT count(*) FROM segment_members WHERE segment_id = $1), refreshed_at = $2, \
         refresh_due_at = CASE WHEN depends_on_time THEN coalesce(refresh_due_at, $3) END WHERE id = $1",
        &[id.into(), now.into(), (now + chrono::Duration::from_std(DEFAULT_REFRESH_EVERY).unwrap_or_default()).into()],
    )?;
    analyze_members_if_moved(tx, entered.len() + exited.len())?;
    if announce {
        let mut values = Vec::new();
        push_membership_events(&mut values, &segment, &entered, true, now);
        push_membership_events(&mut values, &segment, &exited, false, now);
        insert_system_events(tx, &values)?;
        // Segments that name this one need another look at whoever moved.
        if tx.exists("SELECT 1 FROM segment_dependencies WHERE depends_on_id = $1", &[id.into()])? {
            let moved: Vec<Uuid> = entered.iter().chain(&exited).copied().collect();
            mark_dirty(tx, &moved, now)?;
        }
    }
    Ok((entered.len() as u64, exited.len() as u64))
}

/// On PostgreSQL, refreshes `segment_members`' planner statistics after a refresh moved more
/// than a tenth of its rows (autovacuum's own rule, and at least 1,000 people). Until
/// autovacuum next looks (never, where it is off) the planner works from the old statistics:
/// after the first big segment was filled, maintenance's lookup of a batch by contact became a
/// scan of the whole table, 134 ms per 512 people instead of 12 on 850,000 members. ANALYZE
/// samples the table: about 0.1 s there.
fn analyze_members_if_moved(tx: &mut dyn Tx, moved: usize) -> Result<()> {
    if tx.dialect() != Dialect::Postgres || moved < 1_000 {
        return Ok(());
    }
    let known = tx.query_one("SELECT reltuples::float8 FROM pg_class WHERE oid = 'segment_members'::regclass", &[])?.f64(0)?;
    if moved as f64 > 0.1 * known.max(0.0) {
        tx.execute_batch("ANALYZE segment_members")?;
    }
    Ok(())
}

/// One batch of marked contacts against every segment, in dependency order.
fn maintain_tx(tx: &mut dyn Tx, store: &Store, batch: usize) -> Result<MaintainReport> {
    let now = store.now();
    if !tx.exists("SELECT 1 FROM segment_dirty LIMIT 1", &[])? {
        return Ok(MaintainReport::default());
    }
    // Segment rows first, in id order, and before any queue row: a full refresh (which locks
    // its segment, then may mark contacts) and this pass then wait for each other instead of
    // writing the same members at once or deadlocking. Passes on other instances still take
    // different contacts; they only queue for the segment rows.
    lock_segments(tx, None)?;
    let skip = if tx.dialect() == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let rows = tx.query(&format!("SELECT contact_id FROM segment_dirty ORDER BY marked_at LIMIT {batch}{skip}"), &[])?;
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.uuid(0)).collect::<Result<_>>()?;
    if ids.is_empty() {
        return Ok(MaintainReport::default());
    }
    ids.sort_unstable();
    let keys: Vec<Value> = ids.iter().map(|id| Value::Uuid(*id)).collect();
    let mut report = MaintainReport { contacts: ids.len() as u64, ..Default::default() };
    let segments = segments_in_order(tx)?;
    let cx = store.segment_context(tx, now)?;
    // Who of the batch is in which segment now, read once by contact: a lookup per segment by
    // (segment, contacts) let PostgreSQL pick the segment's whole member range and filter it
    // whenever its statistics predate the members (with autovacuum off, 33 ms per 512 people
    // on a segment of 290,000; 15.8 of 29 s of maintenance in `rapport bench segments`).
    let mut current_of: HashMap<Uuid, HashSet<Uuid>> = HashMap::new();
    for r in select_in(tx, "SELECT segment_id, contact_id FROM segment_members WHERE contact_id IN ({in})", &[], &keys)? {
        current_of.entry(r.uuid(0)?).or_default().insert(r.uuid(1)?);
    }
    let none = HashSet::new();
    let mut events = Vec::new();
    for segment in &segments {
        let filter = stored_filter(segment)?;
        let mut params = Vec::new();
        let compiled = match compile::compile(&cx, &filter, &mut params) {
            Ok(c) => c,
            Err(StoreError::Invalid(e)) => {
                warn_broken(segment.id, &e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let matched: HashSet<Uuid> = select_in(
            tx,
            &format!("SELECT c.id {} WHERE c.id IN ({{in}}) AND {}", compiled.from(), compiled.sql),
            &params,
            &keys,
        )?
        .iter()
        .map(|r| r.uuid(0))
        .collect::<Result<_>>()?;
        let current = current_of.get(&segment.id).unwrap_or(&none);
        let mut entered: Vec<Uuid> = matched.difference(current).copied().collect();
        let mut exited: Vec<Uuid> = current.difference(&matched).copied().collect();
        if entered.is_empty() && exited.is_empty() {
            continue;
        }
        entered.sort_unstable();
        exited.sort_unstable();
        if !entered.is_empty() {
            let mut values = Vec::with_capacity(entered.len() * 3);
            for id in &entered {
                values.extend([Value::Uuid(segment.id), Value::Uuid(*id), Value::Time(now)]);
            }
            insert_many(tx, "INSERT INTO segment_members (segment_id, contact_id, entered_at)", 3, &values, "")?;
        }
        if !exited.is_empty() {
            let gone: Vec<Value> = exited.iter().map(|id| Value::Uuid(*id)).collect();
            select_in(
                tx,
                "DELETE FROM segment_members WHERE segment_id = $1 AND contact_id IN ({in}) RETURNING contact_id",
                &[segment.id.into()],
                &gone,
            )?;
        }
        tx.execute(
            "UPDATE segments SET member_count = member_count + $2 WHERE id = $1",
            &[segment.id.into(), (entered.len() as i64 - exited.len() as i64).into()],
        )?;
        push_membership_events(&mut events, segment, &entered, true, now);
        push_membership_events(&mut events, segment, &exited, false, now);
        report.entered += entered.len() as u64;
        report.exited += exited.len() as u64;
    }
    insert_system_events(tx, &events)?;
    select_in(tx, "DELETE FROM segment_dirty WHERE contact_id IN ({in}) RETURNING contact_id", &[], &keys)?;
    Ok(report)
}

/// A database value as JSON for an explanation.
fn json_value(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::I64(i) => (*i).into(),
        Value::F64(f) => serde_json::Number::from_f64(*f).map(serde_json::Value::Number)?,
        Value::Text(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(j @ (serde_json::Value::Array(_) | serde_json::Value::Object(_))) => j,
            _ => s.clone().into(),
        },
        Value::Json(j) => j.clone(),
        Value::Uuid(u) => u.to_string().into(),
        Value::Time(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into(),
        Value::Bytes(_) => return None,
    })
}

/// Rebuilds the filter's tree from the leaves' answers, in the order `compile_leaves` visited.
fn explain_node(f: &Filter, leaves: &mut impl Iterator<Item = (bool, Option<serde_json::Value>)>) -> ExplainNode {
    match f {
        Filter::And(parts) | Filter::Or(parts) => {
            let parts: Vec<ExplainNode> = parts.iter().map(|p| explain_node(p, leaves)).collect();
            let and = matches!(f, Filter::And(_));
            let held = if and { parts.iter().all(|p| p.held) } else { parts.iter().any(|p| p.held) };
            ExplainNode { kind: if and { "and" } else { "or" }, condition: f.to_string(), held, value: None, parts }
        }
        Filter::Not(inner) => {
            let part = explain_node(inner, leaves);
            ExplainNode { kind: "not", condition: f.to_string(), held: !part.held, value: None, parts: vec![part] }
        }
        leaf => {
            let (held, value) = leaves.next().unwrap_or((false, None));
            ExplainNode { kind: "condition", condition: leaf.to_string(), held, value, parts: vec![] }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_of_sorted_lists() {
        let id = |n: u128| Uuid::from_u128(n);
        let (entered, exited) = sorted_difference(&[id(1), id(3), id(4), id(9)], &[id(2), id(3), id(9), id(10)]);
        assert_eq!(entered, vec![id(1), id(4)]);
        assert_eq!(exited, vec![id(2), id(10)]);
        assert_eq!(sorted_difference(&[], &[id(5)]), (vec![], vec![id(5)]));
        assert_eq!(sorted_difference(&[id(5)], &[]), (vec![id(5)], vec![]));
    }
}
