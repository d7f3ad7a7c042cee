//! Profiles: folding events into each person's counters, keyed figures (interests, products
//! bought, revenue per currency) and lifecycle stage — incrementally on ingest, from scratch
//! on rebuild, and by the clock alone when time makes someone at risk or lost.

use std::collections::{BTreeMap, HashMap};

use rapport_core::Timestamp;
use rapport_core::event::{Effect, ProductMention, payload_effect};
use rapport_core::money::Currency;
use rapport_core::profile::{
    BaseAmount, Interest, LifecycleStage, ProfileRules, ProfileState, ProfileView, Recommendation, StageVerdict,
};
use serde_json::json;
use uuid::Uuid;

use crate::db::{Dialect, Tx, insert_many, select_in};
use crate::events::{SystemEvent, insert_system_events, push_system_event};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError};

/// One event's contribution to one person's profile.
pub(crate) struct Fold<'a> {
    pub contact_id: Uuid,
    pub at: Timestamp,
    pub effect: &'a Effect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Add to what is stored.
    Incremental,
    /// Start these people from nothing (the folds are all their events).
    Fresh,
}

const PROFILE_COLUMNS: &str = "contact_id, first_seen_at, last_seen_at, last_engagement_at, order_count, first_order_at, \
    last_order_at, prev_order_at, revenue_base_minor, refund_count, visit_count, first_visit_at, last_visit_at, email_opens, \
    last_open_at, email_clicks, last_click_at, value_tier, lifecycle_stage, stage_reason, stage_since, stage_due_at, updated_at";
const PROFILE_COLUMN_COUNT: usize = 23;

/// A stored profile row.
#[derive(Debug, Clone, Default)]
struct Stored {
    state: ProfileState,
    tier: Option<String>,
    stage: Option<LifecycleStage>,
    reason: String,
    since: Option<Timestamp>,
}

fn read_stored(r: &Row) -> Result<(Uuid, Stored)> {
    let state = ProfileState {
        first_seen_at: r.opt_time(1)?,
        last_seen_at: r.opt_time(2)?,
        last_engagement_at: r.opt_time(3)?,
        order_count: r.i64(4)?,
        first_order_at: r.opt_time(5)?,
        last_order_at: r.opt_time(6)?,
        prev_order_at: r.opt_time(7)?,
        revenue_base_minor: r.i64(8)?,
        refund_count: r.i64(9)?,
        visit_count: r.i64(10)?,
        first_visit_at: r.opt_time(11)?,
        last_visit_at: r.opt_time(12)?,
        email_opens: r.i64(13)?,
        last_open_at: r.opt_time(14)?,
        email_clicks: r.i64(15)?,
        last_click_at: r.opt_time(16)?,
    };
    Ok((
        r.uuid(0)?,
        Stored {
            state,
            tier: r.opt_string(17)?,
            stage: LifecycleStage::parse(&r.string(18)?),
            reason: r.string(19)?,
            since: r.opt_time(20)?,
        },
    ))
}

fn push_profile(
    values: &mut Vec<Value>,
    id: Uuid,
    s: &ProfileState,
    tier: Option<&str>,
    v: &StageVerdict,
    since: Timestamp,
    now: Timestamp,
) {
    values.extend([
        Value::Uuid(id),
        s.first_seen_at.into(),
        s.last_seen_at.into(),
        s.last_engagement_at.into(),
        Value::I64(s.order_count),
        s.first_order_at.into(),
        s.last_order_at.into(),
        s.prev_order_at.into(),
        Value::I64(s.revenue_base_minor),
        Value::I64(s.refund_count),
        Value::I64(s.visit_count),
        s.first_visit_at.into(),
        s.last_visit_at.into(),
        Value::I64(s.email_opens),
        s.last_open_at.into(),
        Value::I64(s.email_clicks),
        s.last_click_at.into(),
        tier.into(),
        v.stage.as_str().into(),
        Value::Text(v.reason.clone()),
        Value::Time(since),
        v.due_at.into(),
        Value::Time(now),
    ]);
}

/// The profile columns in an index besides the key (`profiles_tier`, `profiles_stage`).
const INDEXED_COLUMNS: [&str; 10] = [
    "value_tier",
    "lifecycle_stage",
    "order_count",
    "last_order_at",
    "visit_count",
    "last_visit_at",
    "email_opens",
    "last_open_at",
    "email_clicks",
    "last_click_at",
];

/// The upsert of profile rows; `indexed` says whether it sets the indexed columns too.
/// SQLite rewrites an index entry whenever an UPDATE sets one of the index's columns, changed
/// or not, so rows whose indexed figures stay the same (most events: a page view, a product
/// view) are written without them: two random index pages fewer per person.
fn upsert_profiles_sql(indexed: bool) -> String {
    let sets: Vec<String> = PROFILE_COLUMNS
        .split(", ")
        .skip(1)
        .filter(|c| indexed || !INDEXED_COLUMNS.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!("ON CONFLICT (contact_id) DO UPDATE SET {}", sets.join(", "))
}

/// Whether the figures in the profile indexes (the columns of [`INDEXED_COLUMNS`]) are the
/// same in `before` and the new state.
fn indexed_unchanged(before: &Stored, s: &ProfileState, tier: Option<&str>, stage: LifecycleStage) -> bool {
    let b = &before.state;
    before.stage == Some(stage)
        && before.tier.as_deref() == tier
        && b.order_count == s.order_count
        && b.last_order_at == s.last_order_at
        && b.visit_count == s.visit_count
        && b.last_visit_at == s.last_visit_at
        && b.email_opens == s.email_opens
        && b.last_open_at == s.last_open_at
        && b.email_clicks == s.email_clicks
        && b.last_click_at == s.last_click_at
}

/// Loads the stored rows of `ids` (sorted), locking them on PostgreSQL so that concurrent
/// batches touching the same person apply one after the other.
fn load_stored(tx: &mut dyn Tx, ids: &[Uuid], now: Timestamp) -> Result<HashMap<Uuid, Stored>> {
    let keys: Vec<Value> = ids.iter().map(|&id| Value::Uuid(id)).collect();
    let d = tx.dialect();
    if d == Dialect::Postgres {
        // Make sure every row exists so that FOR UPDATE has something to lock.
        let mut values = Vec::with_capacity(keys.len() * 2);
        for k in &keys {
            values.push(k.clone());
            values.push(Value::Time(now));
        }
        insert_many(tx, "INSERT INTO profiles (contact_id, updated_at)", 2, &values, "ON CONFLICT (contact_id) DO NOTHING")?;
    }
    let sql =
        format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE contact_id IN ({{in}}) ORDER BY contact_id{}", d.for_update());
    let mut out = HashMap::with_capacity(ids.len());
    for r in select_in(tx, &sql, &[], &keys)? {
        let (id, s) = read_stored(&r)?;
        out.insert(id, s);
    }
    Ok(out)
}

/// Keyed figures one batch adds, merged before writing: one row per person and key.
#[derive(Default)]
struct ItemDelta {
    mass: f64,
    count: i64,
    amount: i64,
    last_at: Option<Timestamp>,
}

#[derive(Default)]
struct ProductDelta {
    name: Option<String>,
    category: Option<String>,
    currency: Option<String>,
    price_minor: Option<i64>,
    purchases: i64,
    views: i64,
}

/// Weight of a mention in a click or a message (asking about something counts more than
/// glancing at it).
const ENGAGED_WEIGHT: f64 = 2.0;
/// Weight a purchase adds to its category.
const BOUGHT_CATEGORY_WEIGHT: f64 = 2.0;

struct Deltas<'r> {
    rules: &'r ProfileRules,
    items: BTreeMap<(Uuid, &'static str, String), ItemDelta>,
    products: BTreeMap<String, ProductDelta>,
}

impl Deltas<'_> {
    fn item(&mut self, id: Uuid, kind: &'static str, key: &str, at: Timestamp) -> &mut ItemDelta {
        let d = self.items.entry((id, kind, key.to_string())).or_default();
        d.last_at = Some(d.last_at.map_or(at, |l| l.max(at)));
        d
    }

    fn mention(&mut self, id: Uuid, m: &ProductMention, weight: f64, at: Timestamp) {
        let mass = self.rules.interest_mass(weight, at);
        if let Some(sku) = &m.sku {
            let d = self.item(id, "product", sku, at);
            d.mass += mass;
            d.count += 1;
            let p = self.products.entry(sku.clone()).or_default();
            p.views += 1;
            p.name = m.name.clone().or(p.name.take());
            p.category = m.category.clone().or(p.category.take());
        }
        if let Some(cat) = &m.category {
            let d = self.item(id, "category", cat, at);
            d.mass += mass;
            d.count += 1;
        }
    }

    fn add(&mut self, id: Uuid, effect: &Effect, at: Timestamp) {
        match effect {
            Effect::Order { money, items } => {
                let c = self.item(id, "currency", money.currency.as_str(), at);
                c.count += 1;
                c.amount += money.minor;
                for li in items {
                    let d = self.item(id, "sku", &li.sku, at);
                    d.count += li.quantity;
                    d.amount += li.quantity * li.unit_price_minor;
                    if let Some(cat) = &li.category {
                        let mass = self.rules.interest_mass(BOUGHT_CATEGORY_WEIGHT, at);
                        let d = self.item(id, "category", cat, at);
                        d.mass += mass;
                        d.count += 1;
                    }
                    let p = self.products.entry(li.sku.clone()).or_default();
                    p.purchases += li.quantity;
                    p.name = li.name.clone().or(p.name.take());
                    p.category = li.category.clone().or(p.category.take());
                    if li.unit_price_minor > 0 {
                        p.price_minor = Some(li.unit_price_minor);
                        p.currency = Some(money.currency.as_str().to_string());
                    }
                }
            }
            Effect::Refund { money } => {
                let c = self.item(id, "currency", money.currency.as_str(), at);
                c.amount -= money.minor;
            }
            Effect::Interest { mentions, weight } => {
                for m in mentions {
                    self.mention(id, m, *weight, at);
                }
            }
            Effect::EmailClicked { mentions } | Effect::Engagement { mentions } => {
                for m in mentions {
                    self.mention(id, m, ENGAGED_WEIGHT, at);
                }
            }
            Effect::Visit | Effect::EmailOpened | Effect::Activity | Effect::None => {}
        }
    }

    fn write(self, tx: &mut dyn Tx, now: Timestamp) -> Result<()> {
        let d = tx.dialect();
        if !self.items.is_empty() {
            let mut values = Vec::with_capacity(self.items.len() * 7);
            for ((id, kind, key), v) in self.items {
                values.extend([Value::Uuid(id), Value::Text(kind.into()), Value::Text(key), Value::F64(v.mass)]);
                values.extend([Value::I64(v.count), Value::I64(v.amount), v.last_at.into()]);
            }
            let tail = format!(
                "ON CONFLICT (contact_id, kind, key) DO UPDATE SET mass = profile_items.mass + excluded.mass, \
                 count = profile_items.count + excluded.count, amount_minor = profile_items.amount_minor + excluded.amount_minor, \
                 last_at = {}",
                d.greatest("profile_items.last_at", "excluded.last_at")
            );
            insert_many(
                tx,
                "INSERT INTO profile_items (contact_id, kind, key, mass, count, amount_minor, last_at)",
                7,
                &values,
                &tail,
            )?;
        }
        if !self.products.is_empty() {
            let mut values = Vec::with_capacity(self.products.len() * 8);
            for (sku, p) in self.products {
                values.extend([Value::Text(sku), p.name.into(), p.category.into(), p.currency.into(), p.price_minor.into()]);
                values.extend([Value::I64(p.purchases), Value::I64(p.views), Value::Time(now)]);
            }
            insert_many(
                tx,
                "INSERT INTO products (sku, name, category, currency, price_minor, purchases, views, updated_at)",
                8,
                &values,
                "ON CONFLICT (sku) DO UPDATE SET name = COALESCE(excluded.name, products.name), \
                 category = COALESCE(excluded.category, products.category), \
                 currency = COALESCE(excluded.currency, products.currency), \
                 price_minor = COALESCE(excluded.price_minor, products.price_minor), \
                 purchases = products.purchases + excluded.purchases, views = products.views + excluded.views, \
                 updated_at = excluded.updated_at",
            )?;
        }
        Ok(())
    }
}

/// Folds events into the profiles of the people they belong to and re-evaluates their stage
/// at `now`, recording every stage change as a `lifecycle.changed` event. Returns how many
/// stages changed. `folds` may be empty for a person (a clock-driven re-evaluation).
pub(crate) fn apply(tx: &mut dyn Tx, store: &Store, folds: &mut [Fold<'_>], mode: Mode, now: Timestamp) -> Result<usize> {
    folds.sort_unstable_by_key(|f| f.contact_id);
    let mut ids: Vec<Uuid> = folds.iter().map(|f| f.contact_id).collect();
    ids.dedup();
    restage(tx, store, &ids, folds, mode, now)
}

fn restage(tx: &mut dyn Tx, store: &Store, ids: &[Uuid], folds: &[Fold<'_>], mode: Mode, now: Timestamp) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let rules = store.options().profile_rules.clone();
    let mut stored = load_stored(tx, ids, now)?;
    if mode == Mode::Fresh {
        let keys: Vec<Value> = ids.iter().map(|&id| Value::Uuid(id)).collect();
        for chunk in keys.chunks(1000) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            tx.execute(&format!("DELETE FROM profile_items WHERE contact_id IN ({})", list.join(", ")), chunk)?;
        }
    }
    let mut deltas = Deltas { rules: &rules, items: BTreeMap::new(), products: BTreeMap::new() };
    let mut rows = Vec::with_capacity(ids.len() * PROFILE_COLUMN_COUNT);
    // Rows whose indexed figures did not change.
    let mut same_indexed = Vec::with_capacity(ids.len() * PROFILE_COLUMN_COUNT);
    let mut transitions = Vec::new();
    let mut changed = 0;
    let mut rest = folds;
    for &id in ids {
        let n = rest.iter().take_while(|f| f.contact_id == id).count();
        let (mine, tail) = rest.split_at(n);
        rest = tail;
        let before = stored.remove(&id);
        let mut state = match (&before, mode) {
            (Some(b), Mode::Incremental) => b.state.clone(),
            _ => ProfileState::default(),
        };
        for f in mine {
            state.apply(f.effect, f.at, &rules);
            deltas.add(id, f.effect, f.at);
        }
        let verdict = rules.stage(&state, now);
        let old_stage = before.as_ref().and_then(|b| b.stage).unwrap_or(LifecycleStage::Lead);
        let had_row = before.as_ref().is_some_and(|b| b.since.is_some());
        let since = if verdict.stage != old_stage || !had_row {
            if verdict.stage != old_stage {
                changed += 1;
                push_system_event(
                    &mut transitions,
                    SystemEvent {
                        contact_id: id,
                        kind: "lifecycle.changed",
                        occurred_at: now,
                        payload: json!({"from": old_stage.as_str(), "to": verdict.stage.as_str(), "reason": verdict.reason}),
                        actor_id: None,
                    },
                    now,
                );
            }
            now
        } else {
            before.as_ref().and_then(|b| b.since).unwrap_or(now)
        };
        let tier = rules.value_tier(&state);
        let unchanged = before.as_ref().is_some_and(|b| indexed_unchanged(b, &state, tier, verdict.stage));
        push_profile(if unchanged { &mut same_indexed } else { &mut rows }, id, &state, tier, &verdict, since, now);
    }
    for (values, indexed) in [(&rows, true), (&same_indexed, false)] {
        if !values.is_empty() {
            let head = format!("INSERT INTO profiles ({PROFILE_COLUMNS})");
            insert_many(tx, &head, PROFILE_COLUMN_COUNT, values, &upsert_profiles_sql(indexed))?;
        }
    }
    deltas.write(tx, now)?;
    insert_system_events(tx, &transitions)?;
    Ok(changed)
}

/// People whose stage is due to change by time alone, taken a chunk at a time.
const SWEEP_CHUNK: i64 = 500;

impl Store {
    /// Applies the stage changes that time alone has caused (customers becoming at risk or
    /// lost without doing anything) up to the clock's now. Returns how many stages changed.
    /// Safe to run on several instances at once: on PostgreSQL each takes different rows.
    pub async fn sweep_lifecycle(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let store = self.clone();
            let (n, more) = self
                .write(move |tx| {
                    let now = store.now();
                    let skip = if tx.dialect() == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
                    let rows = tx.query(
                        &format!(
                            "SELECT contact_id FROM profiles WHERE stage_due_at <= $1 ORDER BY stage_due_at LIMIT {SWEEP_CHUNK}{skip}"
                        ),
                        &[now.into()],
                    )?;
                    let mut ids = rows.iter().map(|r| r.uuid(0)).collect::<Result<Vec<_>>>()?;
                    ids.sort_unstable();
                    let more = ids.len() as i64 == SWEEP_CHUNK;
                    let changed = restage(tx, &store, &ids, &[], Mode::Incremental, now)?;
                    crate::segments::mark_segments_dirty(tx, &ids, now)?;
                    Ok((changed, more))
                })
                .await?;
            total += n;
            if !more {
                return Ok(total);
            }
        }
    }

    /// Recomputes every profile, keyed figure, product figure and stage from the stored
    /// events, a chunk of people per transaction (re-running it after an interruption is
    /// safe). `progress(done, total)` is called after each chunk. Returns the stage changes.
    pub async fn rebuild_profiles(&self, progress: impl Fn(u64, u64) + Send + Sync + 'static) -> Result<RebuildReport> {
        let total = self.read(|tx| tx.query_one("SELECT COUNT(*) FROM contacts", &[])?.i64(0)).await? as u64;
        self.write(|tx| tx.execute("DELETE FROM products", &[]).map(|_| ())).await?;
        let mut after: Option<Uuid> = None;
        let mut report = RebuildReport::default();
        let progress = std::sync::Arc::new(progress);
        loop {
            let store = self.clone();
            let (last, people, events, changed) = self
                .write(move |tx| {
                    let now = store.now();
                    let rows = match after {
                        Some(a) => tx.query("SELECT id FROM contacts WHERE id > $1 ORDER BY id LIMIT 500", &[a.into()])?,
                        None => tx.query("SELECT id FROM contacts ORDER BY id LIMIT 500", &[])?,
                    };
                    let ids = rows.iter().map(|r| r.uuid(0)).collect::<Result<Vec<_>>>()?;
                    let keys: Vec<Value> = ids.iter().map(|&i| Value::Uuid(i)).collect();
                    // Rapport's own records never feed a profile. Fixed names, safe to inline.
                    let system: Vec<String> = rapport_core::event::SYSTEM_TYPES.iter().map(|t| format!("'{t}'")).collect();
                    let sql = format!(
                        "SELECT contact_id, occurred_at, type, payload FROM events WHERE contact_id IN ({{in}}) \
                         AND type NOT IN ({})",
                        system.join(", ")
                    );
                    let mut effects = Vec::new();
                    for r in select_in(tx, &sql, &[], &keys)? {
                        let kind = r.string(2)?;
                        let payload = match r.json(3)? {
                            serde_json::Value::Object(m) => m,
                            _ => serde_json::Map::new(),
                        };
                        // Payloads were validated on the way in; one that no longer passes
                        // (a rule got stricter) counts as plain activity.
                        let effect = payload_effect(&kind, &payload).map(|(_, e)| e).unwrap_or(Effect::Activity);
                        effects.push((r.uuid(0)?, r.time(1)?, effect));
                    }
                    let mut folds: Vec<Fold<'_>> =
                        effects.iter().map(|(c, at, e)| Fold { contact_id: *c, at: *at, effect: e }).collect();
                    folds.sort_unstable_by_key(|f| f.contact_id);
                    let changed = restage(tx, &store, &ids, &folds, Mode::Fresh, now)?;
                    Ok((ids.last().copied(), ids.len() as u64, effects.len() as u64, changed))
                })
                .await?;
            report.contacts += people;
            report.events += events;
            report.stage_changes += changed as u64;
            progress(report.contacts, total);
            match last {
                Some(l) if people == 500 => after = Some(l),
                _ => {
                    self.inner.best_sellers.invalidate();
                    return Ok(report);
                }
            }
        }
    }

    /// A person's profile, with the time-relative figures computed at the clock's now.
    pub async fn profile(&self, contact_id: Uuid) -> Result<ProfileView> {
        let store = self.clone();
        self.read_point_snapshot(move |tx| profile_view(tx, &store, contact_id)).await
    }

    /// What a person should see next: products of their interests they have not bought
    /// anywhere, strongest first, each with the reason.
    pub async fn recommendations(&self, contact_id: Uuid, limit: usize) -> Result<Vec<Recommendation>> {
        if !(1..=50).contains(&limit) {
            return Err(StoreError::invalid("limit", "must be between 1 and 50"));
        }
        let store = self.clone();
        self.read_point_snapshot(move |tx| recommend(tx, &store, contact_id, limit)).await
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RebuildReport {
    pub contacts: u64,
    pub events: u64,
    pub stage_changes: u64,
}

pub(crate) fn profile_view(tx: &mut dyn Tx, store: &Store, contact_id: Uuid) -> Result<ProfileView> {
    let rules = &store.options().profile_rules;
    let now = store.now();
    if !tx.exists("SELECT 1 FROM contacts WHERE id = $1", &[contact_id.into()])? {
        return Err(StoreError::not_found("contact", contact_id));
    }
    let stored = tx
        .query_opt(&format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE contact_id = $1"), &[contact_id.into()])?
        .map(|r| read_stored(&r))
        .transpose()?
        .map(|(_, s)| s)
        .unwrap_or_default();
    let s = &stored.state;
    let windows = tx.query_one(
        "SELECT \
           COALESCE(SUM(CASE WHEN type = 'order.completed' THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN type = 'visit.checked_in' AND occurred_at >= $3 THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN type = 'visit.checked_in' AND occurred_at >= $4 THEN 1 ELSE 0 END), 0) \
         FROM events WHERE contact_id = $1 AND occurred_at >= $2 AND occurred_at <= $5 \
           AND type IN ('order.completed', 'visit.checked_in')",
        &[
            contact_id.into(),
            (now - chrono::Duration::days(365)).into(),
            (now - chrono::Duration::days(30)).into(),
            (now - chrono::Duration::days(90)).into(),
            now.into(),
        ],
    )?;
    let mut revenue = BTreeMap::new();
    let mut revenue_minor = BTreeMap::new();
    let mut orders_by_currency = BTreeMap::new();
    let mut interests = Vec::new();
    let mut purchased_skus = Vec::new();
    let items = tx.query(
        "SELECT i.kind, i.key, i.mass, i.count, i.amount_minor, i.last_at, p.name FROM profile_items i \
         LEFT JOIN products p ON i.kind = 'product' AND p.sku = i.key WHERE i.contact_id = $1 ORDER BY i.kind, i.mass DESC, i.key",
        &[contact_id.into()],
    )?;
    for r in &items {
        let kind = r.string(0)?;
        let key = r.string(1)?;
        match kind.as_str() {
            "currency" => {
                let minor = r.i64(4)?;
                let major = Currency::parse(&key).map(|c| c.to_major(minor)).unwrap_or(minor as f64);
                revenue.insert(key.clone(), major);
                revenue_minor.insert(key.clone(), minor);
                orders_by_currency.insert(key, r.i64(3)?);
            }
            "sku" => purchased_skus.push(key),
            "product" | "category" => {
                let score = rules.interest_score(r.f64(2)?, now);
                interests.push(Interest {
                    kind,
                    key,
                    name: r.opt_string(6)?,
                    score: (score * 1000.0).round() / 1000.0,
                    mentions: r.i64(3)?,
                    last_at: r.opt_time(5)?,
                });
            }
            _ => {}
        }
    }
    interests.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
    interests.truncate(30);
    purchased_skus.sort();
    let base = rules.base();
    let (average_order_value, aov_currency) = match (orders_by_currency.len(), s.order_count) {
        (_, 0) => (None, None),
        (1, _) => {
            let (cur, orders) = orders_by_currency.iter().next().expect("one currency");
            let total = revenue.get(cur).copied().unwrap_or(0.0);
            (Some(round2(total / (*orders).max(1) as f64)), Some(cur.clone()))
        }
        _ => (Some(round2(base.to_major(s.revenue_base_minor) / s.order_count as f64)), Some(base.as_str().to_string())),
    };
    let days = |d: Option<chrono::Duration>| d.map(|d| (d.num_seconds() as f64 / 86_400.0 * 10.0).round() / 10.0);
    Ok(ProfileView {
        contact_id,
        first_seen_at: s.first_seen_at,
        last_seen_at: s.last_seen_at,
        last_engagement_at: s.last_engagement_at,
        order_count: s.order_count,
        first_order_at: s.first_order_at,
        last_order_at: s.last_order_at,
        orders_last_365d: windows.i64(0)?,
        revenue,
        revenue_minor,
        revenue_base: BaseAmount { currency: base.as_str().to_string(), amount: base.to_major(s.revenue_base_minor) },
        average_order_value,
        average_order_value_currency: aov_currency,
        refund_count: s.refund_count,
        visit_count: s.visit_count,
        last_visit_at: s.last_visit_at,
        visits_last_30d: windows.i64(1)?,
        visits_last_90d: windows.i64(2)?,
        usual_order_gap_days: days(s.usual_order_gap(rules)),
        usual_visit_gap_days: days(s.usual_visit_gap(rules)),
        email_opens: s.email_opens,
        last_open_at: s.last_open_at,
        email_clicks: s.email_clicks,
        last_click_at: s.last_click_at,
        interests,
        purchased_skus,
        rfm: rules.rfm(s, now),
        value_tier: rules.value_tier(s).map(str::to_string),
        lifecycle_stage: stored.stage.unwrap_or(LifecycleStage::Lead),
        stage_reason: if stored.reason.is_empty() { "no purchase yet".into() } else { stored.reason.clone() },
        stage_since: stored.since,
        churn_risk: rules.churn_risk(s, now),
        computed_at: now,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// How many of a person's interests and categories recommendations look at.
const TOP_PRODUCTS: i64 = 20;
const TOP_CATEGORIES: i64 = 3;
/// A category's best sellers kept in memory (enough to fill a page after leaving out what
/// the person already bought).
const PER_CATEGORY: i64 = 30;
/// How long best sellers are reused before they are read again. They change slowly, and
/// reading them per request would cost more than the rest of a recommendation.
const BEST_SELLERS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// One best seller.
#[derive(Debug, Clone)]
struct BestSeller {
    sku: String,
    name: Option<String>,
    price_minor: Option<i64>,
    currency: Option<String>,
    purchases: i64,
}

#[derive(Debug, Default)]
pub(crate) struct BestSellers {
    by_category: HashMap<String, Vec<BestSeller>>,
}

/// The best sellers of every category, read at most every [`BEST_SELLERS_TTL`] per instance.
#[derive(Default)]
pub(crate) struct BestSellerCache(std::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<BestSellers>)>>);

impl BestSellerCache {
    fn get(&self, tx: &mut dyn Tx) -> Result<std::sync::Arc<BestSellers>> {
        if let Some((at, b)) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && at.elapsed() < BEST_SELLERS_TTL
        {
            return Ok(b.clone());
        }
        let rows = tx.query(
            &format!(
                "SELECT sku, name, category, price_minor, currency, purchases FROM (                    SELECT sku, name, category, price_minor, currency, purchases,                           ROW_NUMBER() OVER (PARTITION BY category ORDER BY purchases DESC, sku) AS rank                    FROM products WHERE category IS NOT NULL AND purchases > 0) ranked                  WHERE rank <= {PER_CATEGORY} ORDER BY category, rank"
            ),
            &[],
        )?;
        let mut best = BestSellers::default();
        for r in rows {
            best.by_category.entry(r.string(2)?).or_default().push(BestSeller {
                sku: r.string(0)?,
                name: r.opt_string(1)?,
                price_minor: r.opt_i64(3)?,
                currency: r.opt_string(4)?,
                purchases: r.i64(5)?,
            });
        }
        let best = std::sync::Arc::new(best);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), best.clone()));
        Ok(best)
    }

    /// Forgets the cached list (this instance changed the products).
    pub(crate) fn invalidate(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

pub(crate) fn recommend(tx: &mut dyn Tx, store: &Store, contact_id: Uuid, limit: usize) -> Result<Vec<Recommendation>> {
    let rules = &store.options().profile_rules;
    let now = store.now();
    // Everything about this person in one indexed range: interests and what they bought.
    let items = tx.query(
        "SELECT kind, key, mass, count, last_at FROM profile_items WHERE contact_id = $1 AND kind IN ('product', 'category', 'sku')",
        &[contact_id.into()],
    )?;
    if items.is_empty() && !tx.exists("SELECT 1 FROM contacts WHERE id = $1", &[contact_id.into()])? {
        return Err(StoreError::not_found("contact", contact_id));
    }
    let mut bought = std::collections::HashSet::new();
    let mut products = Vec::new();
    let mut categories = Vec::new();
    for r in &items {
        match r.string(0)?.as_str() {
            "sku" => {
                bought.insert(r.string(1)?);
            }
            "product" => products.push((r.string(1)?, r.f64(2)?, r.i64(3)?, r.opt_time(4)?)),
            _ => categories.push((r.string(1)?, r.f64(2)?)),
        }
    }
    products.retain(|p| !bought.contains(&p.0));
    products.sort_by(|a, b| b.1.total_cmp(&a.1));
    products.truncate(TOP_PRODUCTS as usize);
    categories.sort_by(|a, b| b.1.total_cmp(&a.1));
    categories.truncate(TOP_CATEGORIES as usize);

    let mut out: Vec<Recommendation> = Vec::new();
    let viewed_keys: Vec<Value> = products.iter().map(|p| Value::Text(p.0.clone())).collect();
    let mut catalogue: HashMap<String, CatalogueEntry> = HashMap::new();
    for r in
        select_in(tx, "SELECT sku, name, category, price_minor, currency FROM products WHERE sku IN ({in})", &[], &viewed_keys)?
    {
        catalogue.insert(r.string(0)?, (r.opt_string(1)?, r.opt_string(2)?, r.opt_i64(3)?, r.opt_string(4)?));
    }
    for (sku, mass, count, last) in &products {
        let (name, category, price, currency) = catalogue.remove(sku).unwrap_or_default();
        let label = name.clone().unwrap_or_else(|| sku.clone());
        let when = last.map(|t| format!(", most recently on {}", t.date_naive())).unwrap_or_default();
        out.push(Recommendation {
            sku: sku.clone(),
            price: price_major(price, currency.as_deref()),
            currency,
            name,
            category,
            score: rules.interest_score(*mass, now),
            reason: format!("showed interest in {label} {} without buying it{when}", times(*count)),
        });
    }
    let best = store.inner.best_sellers.get(tx)?;
    for (cat, mass) in &categories {
        let cat_score = rules.interest_score(*mass, now);
        let Some(list) = best.by_category.get(cat) else { continue };
        let top = list.first().map_or(1, |p| p.purchases).max(1) as f64;
        for p in list {
            if bought.contains(&p.sku) || out.iter().any(|o| o.sku == p.sku) {
                continue;
            }
            out.push(Recommendation {
                sku: p.sku.clone(),
                name: p.name.clone(),
                category: Some(cat.clone()),
                price: price_major(p.price_minor, p.currency.as_deref()),
                currency: p.currency.clone(),
                score: cat_score * 0.5 * p.purchases as f64 / top,
                reason: format!("a best seller in {cat} ({} sold), a category they are interested in", p.purchases),
            });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.sku.cmp(&b.sku)));
    out.truncate(limit);
    for r in &mut out {
        r.score = (r.score * 1000.0).round() / 1000.0;
    }
    Ok(out)
}

/// A product's name, category, price (minor units) and currency.
type CatalogueEntry = (Option<String>, Option<String>, Option<i64>, Option<String>);

fn price_major(minor: Option<i64>, currency: Option<&str>) -> Option<f64> {
    let c = Currency::parse(currency?).ok()?;
    Some(c.to_major(minor?))
}

fn times(n: i64) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

/// Records a staff note on the person's timeline (called where notes are created).
pub(crate) fn note_added(
    tx: &mut dyn Tx,
    contact_id: Uuid,
    note_id: Uuid,
    body: &str,
    author: Option<Uuid>,
    now: Timestamp,
) -> Result<()> {
    crate::events::record(
        tx,
        SystemEvent {
            contact_id,
            kind: "note.added",
            occurred_at: now,
            payload: json!({"note_id": note_id, "body": body}),
            actor_id: author,
        },
        now,
    )
}

/// Keeps a note's timeline entry in step with the note: a new body, or gone with the note.
pub(crate) fn note_changed(tx: &mut dyn Tx, contact_id: Uuid, note_id: Uuid, body: Option<&str>) -> Result<()> {
    let note_ref = match tx.dialect() {
        Dialect::Sqlite => "json_extract(payload, '$.note_id')",
        Dialect::Postgres => "payload->>'note_id'",
    };
    let which = format!("contact_id = $1 AND type = 'note.added' AND {note_ref} = $2");
    let params = [contact_id.into(), note_id.to_string().into()];
    match body {
        Some(body) => {
            let mut p = params.to_vec();
            p.push(Value::Json(json!({"note_id": note_id, "body": body})));
            tx.execute(&format!("UPDATE events SET payload = $3 WHERE {which}"), &p)?;
        }
        None => {
            tx.execute(&format!("DELETE FROM events WHERE {which}"), &params)?;
        }
    }
    Ok(())
}
