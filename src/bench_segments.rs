//! `rapport bench segments`: segment counts, refreshes and incremental maintenance on a large
//! generated dataset (1M contacts and 20M events by default), on SQLite or PostgreSQL.
//!
//! The dataset is generated inside the database with set-based SQL (recursive CTEs on SQLite,
//! `generate_series` on PostgreSQL), not through the ingest API, whose speed `rapport bench
//! ingest` measures. Contact ids sort in generation order and events are inserted in
//! (contact, time) order, so every per-person B-tree (the timeline and by-type event indexes,
//! the profile table) is appended to rather than written at random pages. Profiles are derived
//! from the generated events with the default tier and lifecycle rules, so segment conditions on
//! profiles and on event windows agree with each other. See docs/benchmarks.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{NaiveDate, SecondsFormat};
use rapport_core::custom_field::{CustomFieldDraft, FieldKind, RecordType};
use rapport_core::event::IngestRequest;
use rapport_core::profile::ProfileRules;
use rapport_core::segment::{Filter, SegmentDraft};
use rapport_core::tag::TagDraft;
use rapport_core::user::{Role, UserDraft};
use rapport_core::{SystemClock, Timestamp};
use rapport_store::db::{Dialect, insert_many};
use rapport_store::value::Value;
use rapport_store::{Created, DatabaseUrl, ItemStatus, MaintainReport, Store, StoreOptions};
use serde_json::json;
use uuid::Uuid;

use crate::demo::thousands;

/// Targets from the segments issue (SQLite).
const TARGET_PREVIEW: Duration = Duration::from_millis(80);
const TARGET_REFRESH_ALL: Duration = Duration::from_secs(10);

/// The unsaved five-condition segment that is counted: profile (tier, stage), custom field and
/// event-window conditions.
const FIVE_CONDITIONS: &str = r#"value_tier in ("gold", "vip") and custom.fleet_size >= 3 and count(email.opened, last 90d) >= 3 and stage != "lost" and no visit.checked_in in last 30d"#;

/// The stored segments a dealership would keep: name and filter.
const SEGMENTS: &[(&str, &str)] = &[
    ("Gold drifting", r#"value_tier in ("gold", "vip") and no visit.checked_in in last 21d"#),
    ("Birthdays this week", "birthday within next 7d"),
    ("Newsletter readers drifting", "count(email.opened, last 90d) >= 5 and count(email.clicked, last 90d) = 0"),
    ("Big spenders", "sum(order.completed.total, last 365d) > 1000"),
    ("At risk", r#"stage = "at_risk""#),
    ("Renewals due", "custom.renewal_date within next 30d"),
    ("Service regulars", r#"count(order.completed where items.category = "service", last 365d) >= 2"#),
    ("Browsing, not buying", "has page.viewed in last 30d and no order.completed in last 30d"),
];

/// Marks a database (or schema) as a dataset of this benchmark, with what it holds.
const MARKER: &str = "bench_segments_dataset";

/// `rapport bench segments --help`.
pub const LONG_ABOUT: &str = "Measures segments on a large dataset: counting an unsaved segment, reading a stored \
segment's count, refreshing a set of stored segments in full, and keeping them current incrementally while events \
are ingested.\n\n\
The dataset (--contacts contacts, --events events over the last two years, default 1,000,000 and 20,000,000) is \
generated inside the database with set-based SQL, not through the ingest API (`rapport bench ingest` measures \
ingest): a few owners, three contact custom fields (fleet_size, renewal_date, preferred_channel), names, \
birthdays, time zones, tags, and a skewed number of events per person (orders with line items, newsletter \
opens and clicks, showroom visits, page views), with each person's profile (value tier, lifecycle stage, \
order and visit figures) derived from their events by the default rules. Generating the full size takes \
several minutes; --reuse keeps the dataset and uses it again on the next run of the same size.\n\n\
Measured, each --runs times after one untimed first run, with median, p95 and min:\n\
  a. Store::preview_segment counting an unsaved five-condition segment, the compiled SQL alone, and a \
hand-written SQL equivalent (its query plans are printed);\n\
  b. a stored segment's count (Store::get_segment), a lookup;\n\
  c. a full refresh of eight stored segments, one by one, and once through refresh_time_dependent_segments;\n\
  d. --live-events events ingested through Store::ingest in batches of --live-batch about random existing \
contacts, then Store::maintain_segments_fully re-evaluating the contacts they touched.\n\n\
SQLite by default: the dataset lives in --db (default $TMPDIR/rapport-bench-segments.db). With --database-url \
postgres://… it lives in its own schema (--schema, default bench_segments). Without --reuse the file or schema \
is removed afterwards. An existing file or schema that this benchmark did not create is refused, never deleted or filled \
(a SQLite file is opened first, which applies Rapport's migrations to it). \
RAPPORT_DATABASE_URL and rapport.toml are ignored.";

#[derive(clap::Args)]
pub struct SegmentsArgs {
    /// Contacts in the dataset
    #[arg(long, default_value_t = 1_000_000)]
    contacts: u64,
    /// Events in the dataset, spread over the contacts with a skew (a tenth have none, a few have hundreds)
    #[arg(long, default_value_t = 20_000_000)]
    events: u64,
    /// SQLite file holding the dataset [default: $TMPDIR/rapport-bench-segments.db]
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// PostgreSQL schema holding the dataset, with --database-url postgres://…
    #[arg(long, value_name = "NAME", default_value = "bench_segments")]
    schema: String,
    /// Keep the dataset afterwards, and use an existing one of the same size instead of generating it again
    #[arg(long)]
    reuse: bool,
    /// Timed runs of each measurement (after one untimed first run); lookups run 100 times as many
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Events ingested through Store::ingest before timing incremental maintenance
    #[arg(long, default_value_t = 50_000)]
    live_events: usize,
    /// Events per ingest call for --live-events
    #[arg(long, default_value_t = 1000)]
    live_batch: usize,
}

/// Runs the benchmark. `database_url` is the global `--database-url` flag, when given.
pub async fn run(args: SegmentsArgs, database_url: Option<String>) -> anyhow::Result<()> {
    if args.contacts < 100 || args.events < 100 {
        bail!("--contacts and --events must be at least 100");
    }
    if args.runs == 0 || args.live_events == 0 {
        bail!("--runs and --live-events must be at least 1");
    }
    if !(1..=rapport_core::event::MAX_BATCH).contains(&args.live_batch) {
        bail!("--live-batch must be between 1 and {}", rapport_core::event::MAX_BATCH);
    }
    let target = Target::new(&args, database_url.as_deref())?;
    eprintln!("Database: {}", target.describe());
    let (store, dataset) = prepare(&args, &target).await?;
    let mut outcome = measure(&args, &store).await;
    if let Ok(results) = &mut outcome {
        results.size = target.size_bytes(&store).await;
    }
    drop(store);
    if args.reuse {
        eprintln!("The dataset is kept in {} (--reuse).", target.describe());
    } else {
        target.remove().await;
    }
    let results = outcome?;
    results.print(&args, &target, &dataset);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Where the dataset lives
// ---------------------------------------------------------------------------------------------

pub(crate) enum Target {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

impl Target {
    fn new(args: &SegmentsArgs, database_url: Option<&str>) -> anyhow::Result<Target> {
        match database_url.map(DatabaseUrl::parse).transpose().map_err(anyhow::Error::msg)? {
            None => Ok(Target::Sqlite(args.db.clone().unwrap_or_else(|| std::env::temp_dir().join("rapport-bench-segments.db")))),
            Some(DatabaseUrl::Sqlite(path)) => {
                if args.db.is_some() {
                    bail!("give the SQLite file either with --db or with --database-url, not both");
                }
                Ok(Target::Sqlite(path))
            }
            Some(DatabaseUrl::Postgres(url)) => {
                if args.db.is_some() {
                    bail!("--db is for SQLite; with --database-url postgres://… the dataset lives in --schema");
                }
                let schema = &args.schema;
                let valid = schema.len() <= 60
                    && schema.starts_with(|c: char| c.is_ascii_lowercase())
                    && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    bail!("--schema must be lower-case letters, digits and _, starting with a letter");
                }
                Ok(Target::Postgres { url, schema: schema.clone() })
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("SQLite ({})", path.display()),
            Target::Postgres { url, schema } => format!("PostgreSQL ({}, schema {schema})", rapport_store::redact(url)),
        }
    }

    pub(crate) async fn open(&self) -> anyhow::Result<Store> {
        let (url, schema) = match self {
            Target::Sqlite(path) => (DatabaseUrl::Sqlite(path.clone()), None),
            Target::Postgres { url, schema } => (DatabaseUrl::Postgres(url.clone()), Some(schema.clone())),
        };
        let shown = url.redacted();
        let options = StoreOptions { clock: Arc::new(SystemClock), pg_schema: schema, ..StoreOptions::default() };
        tokio::task::spawn_blocking(move || Store::open(&url, options))
            .await?
            .with_context(|| format!("cannot open the benchmark database {shown}"))
    }

    /// Removes the dataset: the SQLite file, or the PostgreSQL schema.
    pub(crate) async fn remove(&self) {
        match self {
            Target::Sqlite(path) => remove_sqlite(path),
            Target::Postgres { url, schema } => {
                let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                if let Err(e) = pg_run(url, None, sql).await {
                    eprintln!("warning: could not drop the schema {schema}: {e:#}");
                }
            }
        }
    }

    /// The database's size on disk, when it can be told.
    async fn size_bytes(&self, store: &Store) -> Option<u64> {
        match self {
            Target::Sqlite(path) => {
                let mut total = 0;
                for suffix in ["", "-wal"] {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    total += std::fs::metadata(PathBuf::from(name)).map(|m| m.len()).unwrap_or(0);
                }
                Some(total)
            }
            Target::Postgres { .. } => store
                .read(|tx| {
                    tx.query_one(
                        "SELECT CAST(coalesce(sum(pg_total_relation_size(c.oid)), 0) AS BIGINT) FROM pg_class c \
                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                        &[],
                    )?
                    .i64(0)
                })
                .await
                .ok()
                .map(|n| n as u64),
        }
    }
}

fn remove_sqlite(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let p = PathBuf::from(name);
        if p.exists()
            && let Err(e) = std::fs::remove_file(&p)
        {
            eprintln!("warning: could not remove {}: {e}", p.display());
        }
    }
}

fn pg_connect(url: &str, schema: Option<&str>) -> anyhow::Result<postgres::Client> {
    let mut config: postgres::Config = url.parse().context("invalid PostgreSQL URL")?;
    config.connect_timeout(Duration::from_secs(10));
    config.application_name("rapport-bench-segments");
    if let Some(s) = schema {
        config.options(&format!("-c search_path={s}"));
    }
    config.connect(postgres::NoTls).with_context(|| format!("cannot connect to {}", rapport_store::redact(url)))
}

/// Runs one statement outside a transaction (`VACUUM` refuses to run inside one).
pub(crate) async fn pg_run(url: &str, schema: Option<&str>, sql: String) -> anyhow::Result<()> {
    let (url, schema) = (url.to_string(), schema.map(str::to_string));
    tokio::task::spawn_blocking(move || {
        let mut client = pg_connect(&url, schema.as_deref())?;
        client.batch_execute(&sql).with_context(|| format!("running {sql}"))
    })
    .await?
}

/// Whether the schema exists, and whether this benchmark made it.
pub(crate) async fn pg_schema_state(url: &str, schema: &str) -> anyhow::Result<(bool, bool)> {
    let (url, schema) = (url.to_string(), schema.to_string());
    tokio::task::spawn_blocking(move || {
        let mut client = pg_connect(&url, None)?;
        let row = client.query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), to_regclass($2) IS NOT NULL",
            &[&schema, &format!("{schema}.{MARKER}")],
        )?;
        Ok((row.get(0), row.get(1)))
    })
    .await?
}

// ---------------------------------------------------------------------------------------------
// The dataset
// ---------------------------------------------------------------------------------------------

/// What the marker table says about a dataset.
pub(crate) struct Marker {
    pub(crate) contacts: u64,
    events: u64,
    pub(crate) complete: bool,
    pub(crate) generated_at: i64,
    seconds: f64,
    summary: serde_json::Value,
}

/// The dataset measured, and how it came to be.
pub(crate) struct Dataset {
    /// Generated by this run (false: reused).
    pub(crate) fresh: bool,
    pub(crate) contacts: u64,
    pub(crate) events: u64,
    pub(crate) generated_at: i64,
    pub(crate) generate_seconds: f64,
    analyze_seconds: f64,
    /// Generated events by type.
    types: Vec<(String, u64)>,
}

impl Dataset {
    pub(crate) fn from_marker(m: Marker, fresh: bool) -> Dataset {
        let types = m
            .summary
            .get("types")
            .and_then(|t| t.as_object())
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
            .unwrap_or_default();
        Dataset {
            fresh,
            contacts: m.contacts,
            events: m.summary.get("generated_events").and_then(|v| v.as_u64()).unwrap_or(m.events),
            generated_at: m.generated_at,
            generate_seconds: m.seconds,
            analyze_seconds: m.summary.get("analyze_seconds").and_then(|v| v.as_f64()).unwrap_or(0.0),
            types,
        }
    }
}

pub(crate) async fn read_marker(store: &Store) -> anyhow::Result<Option<Marker>> {
    let exists = match store.dialect() {
        Dialect::Sqlite => format!("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{MARKER}'"),
        Dialect::Postgres => {
            format!("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '{MARKER}'")
        }
    };
    let marker = store
        .read(move |tx| {
            if !tx.exists(&exists, &[])? {
                return Ok(None);
            }
            tx.query_opt(&format!("SELECT contacts, events, complete, generated_at, seconds, summary FROM {MARKER}"), &[])
        })
        .await?;
    let Some(r) = marker else { return Ok(None) };
    Ok(Some(Marker {
        contacts: r.i64(0)? as u64,
        events: r.i64(1)? as u64,
        complete: r.i64(2)? == 1,
        generated_at: r.i64(3)?,
        seconds: r.f64(4)?,
        summary: serde_json::from_str(&r.string(5)?).unwrap_or_default(),
    }))
}

/// Opens the dataset, generating it unless `--reuse` finds a complete one of the same size.
async fn prepare(args: &SegmentsArgs, target: &Target) -> anyhow::Result<(Store, Dataset)> {
    let existing = match target {
        Target::Sqlite(path) => path.exists(),
        Target::Postgres { url, schema } => {
            let (exists, ours) = pg_schema_state(url, schema).await?;
            if exists && !ours {
                bail!("the schema {schema} exists and was not made by rapport bench segments; give another --schema");
            }
            exists
        }
    };
    if existing {
        let store = target.open().await?;
        match read_marker(&store).await? {
            None => bail!(
                "{} exists and was not made by rapport bench segments; give another --db (it was left as it was)",
                target.describe()
            ),
            Some(m) if args.reuse && m.complete && m.contacts == args.contacts && m.events == args.events => {
                eprintln!("Reusing the dataset generated {} ago.", age(m.generated_at));
                return Ok((store, Dataset::from_marker(m, false)));
            }
            Some(m) => {
                if args.reuse && m.complete {
                    eprintln!(
                        "The kept dataset holds {} contacts and {} events; generating {} and {} instead.",
                        thousands(m.contacts),
                        thousands(m.events),
                        thousands(args.contacts),
                        thousands(args.events)
                    );
                } else if !m.complete {
                    eprintln!("The kept dataset is incomplete (an interrupted run); generating it again.");
                }
                drop(store);
                target.remove().await;
            }
        }
    }
    if let Target::Postgres { url, schema } = target {
        pg_run(url, None, format!("CREATE SCHEMA {schema}")).await?;
    }
    let store = target.open().await?;
    let dataset = generate(&store, target, args.contacts, args.events).await?;
    Ok((store, dataset))
}

pub(crate) fn age(unix_seconds: i64) -> String {
    let secs = (chrono::Utc::now().timestamp() - unix_seconds).max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

const FIRST_NAMES: [&str; 64] = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Greta",
    "Hannah",
    "Ida",
    "Jonas",
    "Karl",
    "Lena",
    "Mia",
    "Noah",
    "Oskar",
    "Paula",
    "Quentin",
    "Rosa",
    "Sophie",
    "Tom",
    "Ulla",
    "Vera",
    "Willem",
    "Xenia",
    "Yusuf",
    "Zoe",
    "Ahmet",
    "Bianca",
    "Carlos",
    "Daria",
    "Elias",
    "Fatima",
    "Georg",
    "Helena",
    "Ivan",
    "Julia",
    "Kenji",
    "Laura",
    "Marco",
    "Nina",
    "Olga",
    "Pavel",
    "Rania",
    "Stefan",
    "Tanja",
    "Uwe",
    "Valentina",
    "Wei",
    "Yara",
    "Aiko",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elif",
    "Finn",
    "Giulia",
    "Hugo",
    "Ines",
    "Jan",
    "Katrin",
    "Luca",
    "Maria",
    "Nils",
    "Omar",
];

const LAST_NAMES: [&str; 64] = [
    "Mueller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Schroeder",
    "Neumann",
    "Schwarz",
    "Braun",
    "Zimmermann",
    "Hofmann",
    "Hartmann",
    "Krueger",
    "Lange",
    "Werner",
    "Krause",
    "Lehmann",
    "Koehler",
    "Maier",
    "Huber",
    "Kaiser",
    "Fuchs",
    "Peters",
    "Scholz",
    "Moeller",
    "Weiss",
    "Jung",
    "Hahn",
    "Vogel",
    "Keller",
    "Roth",
    "Frank",
    "Berger",
    "Winkler",
    "Lorenz",
    "Baumann",
    "Albrecht",
    "Simon",
    "Ludwig",
    "Boehm",
    "Winter",
    "Kraus",
    "Martin",
    "Schumacher",
    "Otto",
    "Brandt",
    "Jansen",
    "Rossi",
    "Garcia",
    "Novak",
    "Smith",
    "Kowalski",
    "Dubois",
    "Yilmaz",
    "Andersen",
];

/// Time zones with their share of contacts, locale and country; the rest have none.
const ZONES: &[(f64, &str, &str, &str)] = &[
    (0.25, "Europe/Berlin", "de-DE", "DE"),
    (0.05, "Europe/Vienna", "de-AT", "AT"),
    (0.04, "Europe/Zurich", "de-CH", "CH"),
    (0.08, "Europe/London", "en-GB", "GB"),
    (0.04, "Europe/Paris", "fr-FR", "FR"),
    (0.06, "America/New_York", "en-US", "US"),
    (0.03, "America/Los_Angeles", "en-US", "US"),
    (0.02, "Asia/Tokyo", "ja-JP", "JP"),
    (0.03, "Australia/Sydney", "en-AU", "AU"),
];

/// What the shop sells: category, SKU prefix, product names, typical price in euros.
pub(crate) const CATEGORIES: &[(&str, &str, &[&str], i64)] = &[
    ("service", "SER", &["Inspection", "Oil service", "Brake service", "Air-con service"], 280),
    ("parts", "PAR", &["Wiper blades", "Brake pads", "Battery", "Air filter"], 90),
    ("tyres", "TYR", &["Summer tyre", "Winter tyre", "All-season tyre"], 160),
    ("accessories", "ACC", &["Floor mats", "Roof box", "Child seat", "Charging cable"], 70),
    ("vehicle", "VEH", &["Compact EV", "Family SUV", "Estate hybrid", "City car"], 28_000),
];

/// SKUs per category.
pub(crate) const SKUS: i64 = 64;
/// Events generated per transaction, about.
const CHUNK_EVENTS: u64 = 500_000;
/// Most events one contact gets.
const MAX_EVENTS_PER_CONTACT: u64 = 5000;
/// Share of contacts without any event (imported and never heard from).
const SILENT_SHARE: f64 = 0.10;

const DAY_US: i64 = 86_400_000_000;
const HOUR_US: i64 = 3_600_000_000;

/// Events per contact for 1,024 evenly spaced quantiles: none for a tenth, then a long-tailed
/// (Weibull, shape 0.7) spread whose mean makes `events` over `contacts`.
fn event_quantiles(contacts: u64, events: u64) -> Vec<i64> {
    let n = 1024usize;
    let silent = (n as f64 * SILENT_SHARE) as usize;
    let raw: Vec<f64> =
        (0..n).map(|i| if i < silent { 0.0 } else { (-(1.0 - (i as f64 + 0.5) / n as f64).ln()).powf(1.0 / 0.7) }).collect();
    let want = events as f64 * n as f64 / contacts as f64;
    let scale = want / raw.iter().sum::<f64>();
    let mut q: Vec<i64> = raw
        .iter()
        .enumerate()
        .map(|(i, r)| if i < silent { 0 } else { ((r * scale).round() as i64).clamp(1, MAX_EVENTS_PER_CONTACT as i64) })
        .collect();
    // Hand the rounding remainder to the busiest quantiles so the mean is as asked.
    let mut diff = want.round() as i64 - q.iter().sum::<i64>();
    let mut i = n - 1;
    while diff != 0 && i > silent {
        let step = diff.signum();
        if q[i] + step >= 1 && q[i] + step <= MAX_EVENTS_PER_CONTACT as i64 {
            q[i] += step;
            diff -= step;
        }
        i = if i == silent + 1 { n - 1 } else { i - 1 };
    }
    q
}

/// SQL fragments in the dialect at hand.
struct Sql {
    d: Dialect,
}

/// A 16-bit slice of a 62-bit random column: slots 0–2 are bits 0–47; slot 3 is bits 46–61, as
/// bits 48–63 would leave it only 14 random bits (a value always under a quarter of the range,
/// so every "75 %" share was everyone). It shares its two lowest bits with slot 2's highest.
fn u16s(col: &str, slot: u32) -> String {
    let shift = match slot {
        0 => return format!("({col} & 65535)"),
        1 | 2 => 16 * slot,
        _ => 46,
    };
    format!("(({col} >> {shift}) & 65535)")
}

/// A share as a threshold on a 16-bit slice.
fn share(p: f64) -> i64 {
    (p * 65536.0).round() as i64
}

impl Sql {
    fn sqlite(&self) -> bool {
        self.d == Dialect::Sqlite
    }

    /// A uniformly random non-negative 62-bit integer.
    fn rnd(&self) -> &'static str {
        if self.sqlite() {
            "(random() & 4611686018427387903)"
        } else {
            "((CAST(floor(random() * 2147483648) AS BIGINT) << 31) | CAST(floor(random() * 2147483648) AS BIGINT))"
        }
    }

    fn key(&self) -> &'static str {
        if self.sqlite() { "INTEGER PRIMARY KEY" } else { "BIGINT PRIMARY KEY" }
    }

    fn id_type(&self) -> &'static str {
        if self.sqlite() { "BLOB" } else { "UUID" }
    }

    /// Microseconds since the epoch as the backend's time.
    fn ts(&self, us: &str) -> String {
        if self.sqlite() { us.to_string() } else { format!("(TIMESTAMPTZ 'epoch' + ({us}) * INTERVAL '1 microsecond')") }
    }

    /// A UUIDv7 from milliseconds and a sequence number: ids made in order sort in order.
    fn uuid(&self, ms: &str, n: &str) -> String {
        if self.sqlite() {
            format!("unhex(printf('%012x70008%015x', {ms}, {n}))")
        } else {
            format!("CAST(lpad(to_hex({ms}), 12, '0') || '70008' || lpad(to_hex({n}), 15, '0') AS UUID)")
        }
    }

    fn id_literal(&self, id: Uuid) -> String {
        if self.sqlite() { format!("X'{}'", id.simple()) } else { format!("CAST('{id}' AS UUID)") }
    }

    fn pad(&self, expr: &str, width: usize) -> String {
        if self.sqlite() { format!("printf('%0{width}d', {expr})") } else { format!("lpad(CAST({expr} AS TEXT), {width}, '0')") }
    }

    fn object(&self, pairs: &[(&str, String)]) -> String {
        let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("'{k}', {v}")).collect();
        let f = if self.sqlite() { "json_object" } else { "jsonb_build_object" };
        format!("{f}({})", inner.join(", "))
    }

    fn array(&self, items: &[String]) -> String {
        let f = if self.sqlite() { "json_array" } else { "jsonb_build_array" };
        format!("{f}({})", items.join(", "))
    }

    /// Minor units as a JSON number of major units.
    fn money(&self, minor: &str) -> String {
        if self.sqlite() { format!("(({minor}) / 100.0)") } else { format!("round(({minor}) / 100.0, 2)") }
    }

    fn greatest(&self, a: &str, b: &str) -> String {
        if self.sqlite() { format!("max({a}, {b})") } else { format!("GREATEST({a}, {b})") }
    }

    fn least(&self, a: &str, b: &str) -> String {
        if self.sqlite() { format!("min({a}, {b})") } else { format!("LEAST({a}, {b})") }
    }

    fn yes(&self) -> &'static str {
        if self.sqlite() { "1" } else { "TRUE" }
    }

    /// `YYYY-MM-DD`, `days` (an SQL integer) after `today`.
    fn date_after(&self, today: NaiveDate, days: &str) -> String {
        if self.sqlite() {
            format!("date(julianday('{today}') + ({days}))")
        } else {
            format!("to_char(DATE '{today}' + CAST({days} AS INTEGER), 'YYYY-MM-DD')")
        }
    }

    /// `DROP`/`CREATE` of a scratch table for one chunk: on SQLite a temporary table of the
    /// writer connection, on PostgreSQL one that vanishes at commit.
    fn temp_table(&self, name: &str, columns: &str) -> String {
        if self.sqlite() {
            format!("DROP TABLE IF EXISTS temp.{name}; CREATE TEMP TABLE {name} ({columns});")
        } else {
            format!("CREATE TEMP TABLE {name} ({columns}) ON COMMIT DROP;")
        }
    }
}

/// Everything generation needs besides the chunk bounds.
struct Generator {
    sql: Sql,
    contacts: u64,
    now_us: i64,
    today: NaiveDate,
    owners: Vec<Uuid>,
    /// Fleet, Newsletter, Staff, Trade-in.
    tags: [Uuid; 4],
    rules: ProfileRules,
}

/// A CASE picking from `choices` by a 16-bit slice, each with its share; NULL for the rest.
fn weighted(slice: &str, choices: &[(f64, String)]) -> String {
    let mut sql = String::from("CASE");
    let mut cum = 0.0;
    for (p, v) in choices {
        cum += p;
        sql.push_str(&format!(" WHEN {slice} < {} THEN {v}", share(cum)));
    }
    sql.push_str(" END");
    sql
}

impl Generator {
    fn s(&self) -> &Sql {
        &self.sql
    }

    /// Month and day of day-of-year `d` (0–365) in a leap year, so 29 February occurs.
    fn month_day(d: &str) -> (String, String) {
        let ends = [31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335, 366];
        let mut month = String::from("CASE");
        let mut day = String::from("CASE");
        let mut start = 0;
        for (i, end) in ends.iter().enumerate() {
            month.push_str(&format!(" WHEN {d} < {end} THEN {}", i + 1));
            day.push_str(&format!(" WHEN {d} < {end} THEN {d} - {} + 1", start));
            start = *end;
        }
        month.push_str(" END");
        day.push_str(" END");
        (month, day)
    }

    fn tier_case(&self, rev: &str) -> String {
        let base = 100.0; // EUR minor units per major unit.
        let mut sql = String::from("CASE");
        for t in self.rules.tiers.iter().rev() {
            sql.push_str(&format!(" WHEN {rev} >= {} THEN '{}'", (t.min * base).round() as i64, t.name));
        }
        sql.push_str(" END");
        sql
    }

    /// The statements that generate contacts `a..b` (0-based), their events numbered from `g0`,
    /// their emails, tags, profiles and revenue figures.
    fn chunk(&self, a: u64, b: u64, g0: i64) -> Vec<String> {
        let s = self.s();
        let now = self.now_us;
        let r = s.rnd();
        let mut out = Vec::new();
        out.push(format!(
            "{}{}{}{}",
            s.temp_table("bench_r", &format!("n {}, r1 BIGINT, r2 BIGINT, r3 BIGINT, r4 BIGINT, r5 BIGINT, r6 BIGINT", s.key())),
            s.temp_table(
                "bench_c",
                &format!(
                    "n {}, id {}, created_us BIGINT, events BIGINT, first_g BIGINT, quiet_us BIGINT, start_us BIGINT, span_us BIGINT, \
                     p_order BIGINT, p_open BIGINT, p_click BIGINT, p_visit BIGINT, aov BIGINT, fleet BIGINT",
                    s.key(),
                    s.id_type()
                )
            ),
            s.temp_table("bench_ev0", &format!("g {}, cn BIGINT, i BIGINT, r BIGINT, j BIGINT", s.key())),
            s.temp_table("bench_ev", &format!("g {}, cn BIGINT, occ BIGINT, r BIGINT, k BIGINT, amt BIGINT", s.key())),
        ));

        // Six random numbers per contact, drawn once: every attribute is a slice of them.
        let seq = if s.sqlite() {
            format!("WITH RECURSIVE seq(n) AS (SELECT {a} UNION ALL SELECT n + 1 FROM seq WHERE n < {}) SELECT n", b - 1)
        } else {
            "SELECT n".to_string()
        };
        let from = if s.sqlite() { "FROM seq".to_string() } else { format!("FROM generate_series({a}, {}) AS s(n)", b - 1) };
        out.push(format!("INSERT INTO bench_r (n, r1, r2, r3, r4, r5, r6) {seq}, {r}, {r}, {r}, {r}, {r}, {r} {from}"));

        // The plan of each contact: when created, how many events over which span, how likely
        // each kind of event is, what they spend.
        let span_created = 6 * 365 * DAY_US;
        let step_created = (span_created - 2 * DAY_US) / self.contacts as i64;
        let created = format!("{} + r.n * {step_created} + ({} * {step_created}) / 65536", now - span_created, u16s("r.r3", 3));
        let quiet = format!(
            "CASE WHEN {q} < {} THEN ({v} * {}) / 65536 WHEN {q} < {} THEN {} + ({v} * {}) / 65536 ELSE {} + ({v} * {}) / 65536 END",
            share(0.55),
            7 * DAY_US,
            share(0.80),
            7 * DAY_US,
            83 * DAY_US,
            90 * DAY_US,
            610 * DAY_US,
            q = u16s("r.r5", 1),
            v = u16s("r.r5", 3),
        );
        // Chances per 16,384 events; at most 3,199 + 7,499 + 2,549 + 2,799 < 16,384, the rest
        // being page views.
        // How busy the contact is, 0–65535 (the rank of their event count): busier people are
        // more often businesses with a fleet, and more often read the newsletter.
        let busy = "(q.q * 64)";
        let business = format!("{} < {} + ({busy} * {busy} / 65536) * {} / 65536", u16s("r.r2", 2), share(0.10), share(0.5));
        let subscriber = format!("{} < {} + ({busy} * {}) / 65536", u16s("r.r4", 1), share(0.5), share(0.35));
        let p_order = format!("CASE WHEN {u} < {} THEN 1200 + ({u} % 2000) ELSE 0 END", share(0.70), u = u16s("r.r4", 0));
        let p_open = format!("CASE WHEN {subscriber} THEN 2500 + ({} % 5000) ELSE 0 END", u16s("r.r4", 1));
        let p_click = format!(
            "CASE WHEN {subscriber} AND {u} >= {} THEN (({p_open}) * (10 + ({u} % 25))) / 100 ELSE 0 END",
            share(0.35),
            u = u16s("r.r4", 2),
        );
        let p_visit = format!("CASE WHEN {u} < {} THEN 800 + ({u} % 2000) ELSE 0 END", share(0.50), u = u16s("r.r4", 3));
        // Businesses run 3–40 vehicles (mostly few); half the private customers give 1 or 2.
        let v = format!("({} >> 8)", u16s("r.r6", 0));
        let fleet = format!(
            "CASE WHEN {business} THEN 3 + ({v} * {v} * {v} * {v} * 37) / 4294967296 WHEN {p} < {} THEN 1 + ({p} & 1) END",
            share(0.5),
            p = u16s("r.r6", 1)
        );
        let aov = format!(
            "(4000 + (({a} * {a}) / 65536) * 80000 / 65536) * (CASE WHEN {business} THEN 2 ELSE 1 END)",
            a = u16s("r.r5", 2)
        );
        out.push(format!(
            "INSERT INTO bench_c (n, id, created_us, events, first_g, quiet_us, p_order, p_open, p_click, p_visit, aov, fleet) \
             SELECT n, {id}, created_us, events, \
             {g0} + coalesce(sum(events) OVER (ORDER BY n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0), \
             quiet_us, p_order, p_open, p_click, p_visit, aov, fleet \
             FROM (SELECT r.n AS n, {created} AS created_us, q.events AS events, {quiet} AS quiet_us, {p_order} AS p_order, \
             {p_open} AS p_open, {p_click} AS p_click, {p_visit} AS p_visit, {aov} AS aov, {fleet} AS fleet \
             FROM bench_r r JOIN bench_quantiles q ON q.q = ((r.n * 389) % 1024)) x ORDER BY n",
            id = s.uuid("created_us / 1000", "n"),
        ));
        // Events run from creation (at most two years back) until the contact went quiet.
        out.push(format!("UPDATE bench_c SET start_us = {}", s.greatest("created_us", &(now - 730 * DAY_US).to_string())));
        let end = s.least(&now.to_string(), &s.greatest(&format!("start_us + {HOUR_US}"), &format!("{now} - quiet_us")));
        out.push(format!("UPDATE bench_c SET span_us = {}", s.greatest("1", &format!("{end} - start_us"))));

        // Contacts.
        let (month, day) = Self::month_day(&format!("({} % 366)", u16s("r.r2", 0)));
        let birthday = u16s("r.r1", 3);
        let zone = u16s("r.r1", 2);
        let zones = |pick: fn(&(f64, &'static str, &'static str, &'static str)) -> &'static str| {
            weighted(&zone, &ZONES.iter().map(|z| (z.0, format!("'{}'", pick(z)))).collect::<Vec<_>>())
        };
        let owners: Vec<(f64, String)> =
            self.owners.iter().map(|id| (0.84 / self.owners.len() as f64, s.id_literal(*id))).collect();
        let channel = u16s("r.r3", 0);
        let channel = format!(
            "CASE WHEN {channel} < {} THEN CASE ({channel} % 4) WHEN 0 THEN 'email' WHEN 1 THEN 'phone' WHEN 2 THEN 'sms' ELSE 'whatsapp' END END",
            share(0.5)
        );
        let renewal = u16s("r.r2", 3);
        let renewal = format!(
            "CASE WHEN {renewal} < {} THEN {} END",
            share(0.6),
            s.date_after(self.today, &format!("({renewal} % 425) - 60"))
        );
        let custom = if s.sqlite() {
            format!(
                "'{{' || rtrim(CASE WHEN c.fleet IS NOT NULL THEN '\"fleet_size\":' || c.fleet || ',' ELSE '' END \
                 || coalesce('\"preferred_channel\":\"' || ({channel}) || '\",', '') \
                 || coalesce('\"renewal_date\":\"' || ({renewal}) || '\",', ''), ',') || '}}'"
            )
        } else {
            format!(
                "jsonb_strip_nulls(jsonb_build_object('fleet_size', c.fleet, 'preferred_channel', {channel}, 'renewal_date', {renewal}))"
            )
        };
        let special = u16s("r.r3", 2);
        let trade_in = format!("{special} < {}", share(0.03));
        let staff = format!("({special} >= {} AND {special} < {})", share(0.03), share(0.033));
        let email = format!("{} || '.' || lower(f.first_name) || '@bench.example'", s.pad("c.n", 7));
        let tag_names = [
            ("c.fleet >= 5".to_string(), "Fleet"),
            ("c.p_open > 0".to_string(), "Newsletter"),
            (staff.clone(), "Staff"),
            (trade_in.clone(), "Trade-in"),
        ];
        let children = if s.sqlite() {
            let tags: Vec<String> =
                tag_names.iter().map(|(cond, name)| format!("CASE WHEN {cond} THEN '\"{name}\",' ELSE '' END")).collect();
            format!(
                "json_object('emails', json_array(json_object('address', {email}, 'label', NULL, 'primary', 1)), 'phones', json_array(), \
                 'tags', json('[' || rtrim({}, ',') || ']'), 'external_ids', json_array())",
                tags.join(" || ")
            )
        } else {
            let tags: Vec<String> = tag_names.iter().map(|(cond, name)| format!("CASE WHEN {cond} THEN '{name}' END")).collect();
            format!(
                "jsonb_build_object('emails', jsonb_build_array(jsonb_build_object('address', {email}, 'label', CAST(NULL AS TEXT), 'primary', TRUE)), \
                 'phones', '[]'::jsonb, 'tags', to_jsonb(array_remove(ARRAY[{}], NULL)), 'external_ids', '[]'::jsonb)",
                tags.join(", ")
            )
        };
        let names = format!(
            "FROM bench_c c JOIN bench_r r ON r.n = c.n JOIN bench_names f ON f.i = ({} & 63) JOIN bench_names l ON l.i = ({} & 63)",
            u16s("r.r1", 0),
            u16s("r.r1", 1)
        );
        out.push(format!(
            "INSERT INTO contacts (id, display_name, name_key, first_name, last_name, birthday_month, birthday_day, birthday_year, \
             time_zone, locale, address_country, source, owner_id, custom_fields, children, created_at, updated_at) \
             SELECT c.id, f.first_name || ' ' || l.last_name, lower(f.first_name || ' ' || l.last_name), f.first_name, l.last_name, \
             CASE WHEN {birthday} < {b75} THEN {month} END, CASE WHEN {birthday} < {b75} THEN {day} END, \
             CASE WHEN {birthday} < {b45} THEN 1950 + ({year} % 56) END, \
             {tz}, {locale}, {country}, 'import', {owner}, {custom}, {children}, {created}, {created} {names} ORDER BY c.n",
            b75 = share(0.75),
            b45 = share(0.45),
            year = u16s("r.r2", 1),
            tz = zones(|z| z.1),
            locale = zones(|z| z.2),
            country = zones(|z| z.3),
            owner = weighted(&u16s("r.r3", 1), &owners),
            created = s.ts("c.created_us"),
        ));
        out.push(format!(
            "INSERT INTO contact_emails (contact_id, position, address, label, is_primary) \
             SELECT c.id, 0, {email}, NULL, {} {names} ORDER BY c.n",
            s.yes()
        ));
        let [fleet_tag, news_tag, staff_tag, trade_tag] = self.tags.map(|t| s.id_literal(t));
        out.push(format!(
            "INSERT INTO contact_tags (contact_id, tag_id) SELECT id, tag FROM (\
             SELECT c.n AS n, c.id AS id, {fleet_tag} AS tag FROM bench_c c WHERE c.fleet >= 5 \
             UNION ALL SELECT c.n, c.id, {news_tag} FROM bench_c c WHERE c.p_open > 0 \
             UNION ALL SELECT c.n, c.id, {staff_tag} FROM bench_c c JOIN bench_r r ON r.n = c.n WHERE {staff} \
             UNION ALL SELECT c.n, c.id, {trade_tag} FROM bench_c c JOIN bench_r r ON r.n = c.n WHERE {trade_in}) t ORDER BY n, tag"
        ));

        // Events: the i-th of n at x = (i + a random fraction) / n along each contact's span,
        // mapped through x(3 - x)/2 so they grow denser towards the end (recent activity is
        // busier) and still come out in time order; then the kind and the money of each.
        let numbers = if s.sqlite() {
            "FROM bench_c c JOIN bench_numbers s ON s.k < c.events"
        } else {
            "FROM bench_c c CROSS JOIN LATERAL generate_series(0, c.events - 1) AS s(k)"
        };
        out.push(format!(
            "INSERT INTO bench_ev0 (g, cn, i, r, j) SELECT c.first_g + s.k, c.n, s.k, {r}, {r} {numbers} ORDER BY c.n, s.k"
        ));
        let x = "((CAST(e.i AS DOUBLE PRECISION) + CAST((e.j & 65535) AS DOUBLE PRECISION) / 65536) / c.events)";
        let occ = format!("c.start_us + CAST(c.span_us * {x} * (3 - {x}) / 2 AS BIGINT)");
        let t = "(e.r & 16383)";
        let kind = format!(
            "CASE WHEN {t} < c.p_order THEN 0 WHEN {t} < c.p_order + c.p_open THEN 1 WHEN {t} < c.p_order + c.p_open + c.p_click THEN 2 \
             WHEN {t} < c.p_order + c.p_open + c.p_click + c.p_visit THEN 3 ELSE 4 END"
        );
        let vehicle = "(((e.r >> 14) & 1023) < 8)";
        let price = "((e.r >> 24) & 65535)";
        let amount = format!(
            "CASE WHEN {t} < c.p_order THEN CASE WHEN {vehicle} THEN 1500000 + {price} * 38 ELSE c.aov / 2 + ({price} * c.aov) / 65536 END END"
        );
        out.push(format!(
            "INSERT INTO bench_ev (g, cn, occ, r, k, amt) SELECT e.g, e.cn, {occ}, e.r, {kind}, {amount} \
             FROM bench_ev0 e JOIN bench_c c ON c.n = e.cn ORDER BY e.g"
        ));
        out.push(self.events_insert());
        out.push(self.profiles_insert());
        out.push(
            "INSERT INTO profile_items (contact_id, kind, key, mass, count, amount_minor, last_at) \
             SELECT p.contact_id, 'currency', 'EUR', 0, p.order_count, p.revenue_base_minor, p.last_order_at \
             FROM bench_c c JOIN profiles p ON p.contact_id = c.id WHERE p.order_count > 0 ORDER BY c.n"
                .to_string(),
        );
        out
    }

    /// `bench_ev` into `events`, with payloads.
    fn events_insert(&self) -> String {
        let s = self.s();
        let vehicle = "(((e.r >> 14) & 1023) < 8)";
        let other = "((e.r >> 40) & 3)";
        let mut category = format!("CASE WHEN {vehicle} THEN 'vehicle' ELSE CASE {other}");
        let mut prefix = format!("CASE WHEN {vehicle} THEN 'VEH' ELSE CASE {other}");
        for (i, (name, p, _, _)) in CATEGORIES.iter().take(4).enumerate() {
            category.push_str(&format!(" WHEN {i} THEN '{name}'"));
            prefix.push_str(&format!(" WHEN {i} THEN '{p}'"));
        }
        category.push_str(" END END");
        prefix.push_str(" END END");
        let sku1 = format!("{prefix} || '-' || {}", s.pad("((e.r >> 44) & 63)", 3));
        let sku2 = format!("'ACC-' || {}", s.pad("((e.r >> 50) & 63)", 3));
        let item = |sku: &str, cat: &str, price: &str| {
            s.object(&[
                ("sku", sku.to_string()),
                ("category", cat.to_string()),
                ("quantity", "1".into()),
                ("unit_price", s.money(price)),
            ])
        };
        let two = format!("(((e.r >> 42) & 3) = 0 AND NOT {vehicle})");
        let first_share = "(e.amt * 6) / 10";
        let items = format!(
            "CASE WHEN {two} THEN {} ELSE {} END",
            s.array(&[item(&sku1, &category, first_share), item(&sku2, "'accessories'", &format!("e.amt - {first_share}"))]),
            s.array(&[item(&sku1, &category, "e.amt")]),
        );
        let order = s.object(&[("currency", "'EUR'".into()), ("total", s.money("e.amt")), ("items", items)]);
        let campaign = "'weekly-' || CAST((e.occ / 604800000000) % 53 + 1 AS TEXT)".to_string();
        let open = s.object(&[("campaign", campaign.clone())]);
        let click = s.object(&[
            ("campaign", campaign),
            (
                "url",
                "'https://dealer.example/offers/' || CASE ((e.r >> 14) & 3) WHEN 0 THEN 'service' WHEN 1 THEN 'tyres' WHEN 2 THEN 'ev' ELSE 'used-cars' END"
                    .into(),
            ),
        ]);
        let visit = s.object(&[(
            "location",
            "CASE ((e.r >> 14) & 3) WHEN 0 THEN 'showroom' WHEN 1 THEN 'service-desk' WHEN 2 THEN 'parts-counter' ELSE 'test-drive' END".into(),
        )]);
        let page = s.object(&[(
            "url",
            "'https://dealer.example/' || CASE ((e.r >> 14) & 7) WHEN 0 THEN 'models/ev' WHEN 1 THEN 'models/suv' WHEN 2 THEN 'models/estate' \
             WHEN 3 THEN 'service' WHEN 4 THEN 'offers' WHEN 5 THEN 'used-cars' WHEN 6 THEN 'tyres' ELSE 'contact' END"
                .into(),
        )]);
        format!(
            "INSERT INTO events (contact_id, occurred_at, id, source_id, type, channel, currency, amount_minor, payload, received_at, actor_id) \
             SELECT c.id, {occ}, {id}, CASE WHEN e.k = 0 THEN 'ord-' || {g} END, \
             CASE e.k WHEN 0 THEN 'order.completed' WHEN 1 THEN 'email.opened' WHEN 2 THEN 'email.clicked' WHEN 3 THEN 'visit.checked_in' ELSE 'page.viewed' END, \
             CASE e.k WHEN 0 THEN CASE WHEN {vehicle} OR {other} = 0 THEN 'store' ELSE 'web' END WHEN 1 THEN 'email' WHEN 2 THEN 'email' WHEN 3 THEN 'store' ELSE 'web' END, \
             CASE WHEN e.k = 0 THEN 'EUR' END, e.amt, \
             CASE e.k WHEN 0 THEN {order} WHEN 1 THEN {open} WHEN 2 THEN {click} WHEN 3 THEN {visit} ELSE {page} END, \
             {received}, NULL \
             FROM bench_ev e JOIN bench_c c ON c.n = e.cn ORDER BY e.g",
            occ = s.ts("e.occ"),
            id = s.uuid("e.occ / 1000", "e.g"),
            g = s.pad("e.g", 10),
            received = s.ts("e.occ + ((e.r >> 50) & 1023) * 50000"),
        )
    }

    /// Profiles folded from `bench_ev` the way ingest folds events, with the stage by the
    /// default lifecycle rules.
    fn profiles_insert(&self) -> String {
        let s = self.s();
        let l = &self.rules.lifecycle;
        let now = self.now_us;
        let (min_gap, default_gap, lost_after) =
            (l.min_gap_days * DAY_US, l.default_order_gap_days * DAY_US, l.lost_after_days * DAY_US);
        let factor = l.at_risk_factor;
        let agg = "SELECT cn, min(occ) AS fs, max(occ) AS ls, max(CASE WHEN k < 4 THEN occ END) AS le, \
             CAST(sum(CASE WHEN k = 0 THEN 1 ELSE 0 END) AS BIGINT) AS oc, min(CASE WHEN k = 0 THEN occ END) AS fo, \
             max(CASE WHEN k = 0 THEN occ END) AS lo, max(CASE WHEN k = 0 AND occ < lo_all THEN occ END) AS po, \
             CAST(coalesce(sum(amt), 0) AS BIGINT) AS rev, CAST(sum(CASE WHEN k = 3 THEN 1 ELSE 0 END) AS BIGINT) AS vc, \
             min(CASE WHEN k = 3 THEN occ END) AS fv, max(CASE WHEN k = 3 THEN occ END) AS lv, \
             CAST(sum(CASE WHEN k = 1 THEN 1 ELSE 0 END) AS BIGINT) AS eo, max(CASE WHEN k = 1 THEN occ END) AS lop, \
             CAST(sum(CASE WHEN k = 2 THEN 1 ELSE 0 END) AS BIGINT) AS ec, max(CASE WHEN k = 2 THEN occ END) AS lc \
             FROM (SELECT e.cn AS cn, e.occ AS occ, e.k AS k, e.amt AS amt, \
             max(CASE WHEN e.k = 0 THEN e.occ END) OVER (PARTITION BY e.cn) AS lo_all FROM bench_ev e) w GROUP BY cn";
        let gap = format!(
            "CASE WHEN a.oc >= 2 THEN {} ELSE {default_gap} END",
            s.greatest(&min_gap.to_string(), "(a.lo - a.fo) / (a.oc - 1)")
        );
        let before = format!(
            "CASE WHEN a.oc >= 3 THEN {} ELSE {default_gap} END",
            s.greatest(&min_gap.to_string(), "(a.po - a.fo) / (a.oc - 2)")
        );
        let stage = format!(
            "CASE WHEN b.oc = 0 THEN 'lead' WHEN {now} >= b.lost_at THEN 'lost' WHEN {now} >= b.risk_at THEN 'at_risk' \
             WHEN b.po IS NOT NULL AND b.lo - b.po > b.before_risk THEN 'reactivated' WHEN b.oc >= {} THEN 'loyal' ELSE 'active' END",
            l.loyal_min_orders
        );
        let reason = "CASE s.stage WHEN 'lead' THEN 'no purchase yet' WHEN 'lost' THEN 'no order for a year' \
             WHEN 'at_risk' THEN 'no order for longer than usual' WHEN 'reactivated' THEN 'ordered again after a long silence' \
             WHEN 'loyal' THEN 'repeat customer' ELSE 'first purchase' END";
        let since =
            "CASE s.stage WHEN 'lead' THEN c.created_us WHEN 'lost' THEN s.lost_at WHEN 'at_risk' THEN s.risk_at ELSE s.lo END";
        let due = format!(
            "CASE WHEN s.stage = 'at_risk' THEN s.lost_at WHEN s.stage IN ('active', 'loyal', 'reactivated') THEN {} END",
            s.least("s.risk_at", "s.lost_at")
        );
        format!(
            "INSERT INTO profiles (contact_id, first_seen_at, last_seen_at, last_engagement_at, order_count, first_order_at, last_order_at, \
             prev_order_at, revenue_base_minor, refund_count, visit_count, first_visit_at, last_visit_at, email_opens, last_open_at, \
             email_clicks, last_click_at, value_tier, lifecycle_stage, stage_reason, stage_since, stage_due_at, updated_at) \
             SELECT c.id, {}, {}, {}, s.oc, {}, {}, {}, s.rev, 0, s.vc, {}, {}, s.eo, {}, s.ec, {}, \
             CASE WHEN s.oc > 0 THEN {tier} END, s.stage, {reason}, {}, {}, {} \
             FROM (SELECT b.*, {stage} AS stage FROM (SELECT a.*, a.lo + {lost_after} AS lost_at, \
             a.lo + CAST(({gap}) * {factor:?} AS BIGINT) AS risk_at, CAST(({before}) * {factor:?} AS BIGINT) AS before_risk \
             FROM ({agg}) a) b) s JOIN bench_c c ON c.n = s.cn ORDER BY c.n",
            s.ts("s.fs"),
            s.ts("s.ls"),
            s.ts("s.le"),
            s.ts("s.fo"),
            s.ts("s.lo"),
            s.ts("s.po"),
            s.ts("s.fv"),
            s.ts("s.lv"),
            s.ts("s.lop"),
            s.ts("s.lc"),
            s.ts(since),
            s.ts(&due),
            s.ts(&now.to_string()),
            tier = self.tier_case("s.rev"),
        )
    }
}

/// Fills an empty store with the dataset. Returns what was made.
pub(crate) async fn generate(store: &Store, target: &Target, contacts: u64, events: u64) -> anyhow::Result<Dataset> {
    let started = Instant::now();
    let d = store.dialect();
    let now = store.now();
    let marker_sql = format!(
        "CREATE TABLE {MARKER} (contacts BIGINT NOT NULL, events BIGINT NOT NULL, complete BIGINT NOT NULL, generated_at BIGINT NOT NULL, \
         seconds DOUBLE PRECISION NOT NULL, summary TEXT NOT NULL)"
    );
    let generated_at = now.timestamp();
    store
        .write(move |tx| {
            tx.execute_batch(&marker_sql)?;
            tx.execute(
                &format!("INSERT INTO {MARKER} (contacts, events, complete, generated_at, seconds, summary) VALUES ($1, $2, 0, $3, 0, '{{}}')"),
                &[(contacts as i64).into(), (events as i64).into(), generated_at.into()],
            )
        })
        .await?;

    // What the application itself would hold: a sales team, custom fields, tags.
    let mut owners = Vec::new();
    for (name, email) in [
        ("Sabine Keller", "sabine.keller@dealer.example"),
        ("Marco Rossi", "marco.rossi@dealer.example"),
        ("Aylin Demir", "aylin.demir@dealer.example"),
        ("Jonas Berg", "jonas.berg@dealer.example"),
        ("Priya Nair", "priya.nair@dealer.example"),
    ] {
        let draft = UserDraft { name: Some(name.into()), email: Some(email.into()), role: Some(Role::Member), active: None };
        owners.push(created(store.create_user(draft, None).await.with_context(|| format!("creating the user {email}"))?)?.id);
    }
    let fields = [
        ("fleet_size", "Fleet size", FieldKind::Number, None, "Vehicles the customer runs"),
        ("renewal_date", "Renewal date", FieldKind::Date, None, "When their lease or service plan renews"),
        (
            "preferred_channel",
            "Preferred channel",
            FieldKind::Enum,
            Some(vec!["email".to_string(), "phone".into(), "sms".into(), "whatsapp".into()]),
            "How they like to be contacted",
        ),
    ];
    for (key, label, kind, options, description) in fields {
        let draft = CustomFieldDraft {
            record_type: Some(RecordType::Contact),
            key: Some(key.into()),
            label: Some(label.into()),
            kind: Some(kind),
            required: None,
            options,
            description: Some(description.into()),
        };
        created(store.create_custom_field(draft, None).await.with_context(|| format!("defining the custom field {key}"))?)?;
    }
    let mut tags = Vec::new();
    for name in ["Fleet", "Newsletter", "Staff", "Trade-in"] {
        let draft = TagDraft { name: Some(name.into()), color: None, description: None };
        tags.push(created(store.create_tag(draft, None).await.with_context(|| format!("creating the tag {name}"))?)?.id);
    }
    let tags: [Uuid; 4] = tags.try_into().map_err(|_| anyhow::anyhow!("expected four tags"))?;

    // Helper tables: names, events per contact by quantile, and (SQLite) a numbers table.
    let quantiles = event_quantiles(contacts, events);
    let max_events = quantiles.iter().copied().max().unwrap_or(0);
    let sql = Sql { d };
    let key = sql.key();
    store
        .write(move |tx| {
            tx.execute_batch(&format!(
                "CREATE TABLE bench_names (i {key}, first_name TEXT NOT NULL, last_name TEXT NOT NULL); \
                 CREATE TABLE bench_quantiles (q {key}, events BIGINT NOT NULL);"
            ))?;
            let mut values = Vec::new();
            for (i, (f, l)) in FIRST_NAMES.iter().zip(LAST_NAMES).enumerate() {
                values.extend([Value::I64(i as i64), (*f).into(), l.into()]);
            }
            insert_many(tx, "INSERT INTO bench_names (i, first_name, last_name)", 3, &values, "")?;
            let values: Vec<Value> = quantiles.iter().enumerate().flat_map(|(i, n)| [Value::I64(i as i64), Value::I64(*n)]).collect();
            insert_many(tx, "INSERT INTO bench_quantiles (q, events)", 2, &values, "")?;
            if tx.dialect() == Dialect::Sqlite {
                tx.execute_batch(&format!(
                    "CREATE TABLE bench_numbers (k INTEGER PRIMARY KEY); \
                     INSERT INTO bench_numbers (k) WITH RECURSIVE s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k < {max_events}) SELECT k FROM s;"
                ))?;
            }
            Ok(())
        })
        .await?;

    let generator = Arc::new(Generator {
        sql: Sql { d },
        contacts,
        now_us: now.timestamp_micros(),
        today: now.date_naive(),
        owners,
        tags,
        rules: ProfileRules::default(),
    });
    let per_chunk = (CHUNK_EVENTS * contacts / events).clamp(1000, 50_000);
    let bar = indicatif::ProgressBar::new(contacts);
    bar.set_style(
        indicatif::ProgressStyle::with_template("Generating {bar:40.cyan/blue} {pos}/{len} contacts, {msg} ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut g0 = 1i64;
    let mut types: BTreeMap<i64, u64> = BTreeMap::new();
    let mut a = 0;
    while a < contacts {
        let b = (a + per_chunk).min(contacts);
        let statements = generator.chunk(a, b, g0);
        let counts = store
            .write(move |tx| {
                for sql in &statements {
                    tx.execute_batch(sql)?;
                }
                tx.query("SELECT k, count(*) FROM bench_ev GROUP BY k ORDER BY k", &[])?
                    .iter()
                    .map(|r| Ok((r.i64(0)?, r.i64(1)? as u64)))
                    .collect::<rapport_store::Result<Vec<_>>>()
            })
            .await
            .with_context(|| format!("generating contacts {a}..{b}"))?;
        for (k, n) in counts {
            *types.entry(k).or_default() += n;
            g0 += n as i64;
        }
        a = b;
        bar.set_position(a);
        bar.set_message(format!("{} events", thousands((g0 - 1) as u64)));
    }
    bar.finish_and_clear();

    // The catalogue the orders name, and the end of the helper tables.
    store
        .write(move |tx| {
            let mut values = Vec::new();
            for (category, prefix, names, euros) in CATEGORIES {
                for i in 0..SKUS {
                    let price = euros * 100 * (80 + (i * 37) % 60) / 100;
                    values.extend([
                        Value::Text(format!("{prefix}-{i:03}")),
                        Value::Text(format!("{} {}", names[i as usize % names.len()], i + 1)),
                        (*category).into(),
                        "EUR".into(),
                        Value::I64(price),
                        Value::I64(0),
                        Value::I64(0),
                        now.into(),
                    ]);
                }
            }
            insert_many(
                tx,
                "INSERT INTO products (sku, name, category, currency, price_minor, purchases, views, updated_at)",
                8,
                &values,
                "ON CONFLICT (sku) DO NOTHING",
            )?;
            tx.execute_batch("DROP TABLE bench_names; DROP TABLE bench_quantiles;")?;
            if tx.dialect() == Dialect::Sqlite {
                tx.execute_batch(
                    "DROP TABLE bench_numbers; DROP TABLE IF EXISTS temp.bench_r; DROP TABLE IF EXISTS temp.bench_c; \
                     DROP TABLE IF EXISTS temp.bench_ev0; DROP TABLE IF EXISTS temp.bench_ev;",
                )?;
            }
            Ok(())
        })
        .await?;
    let generate_seconds = started.elapsed().as_secs_f64();
    let generated_events = (g0 - 1) as u64;
    eprintln!(
        "Generated {} contacts and {} events in {generate_seconds:.1} s; analysing…",
        thousands(contacts),
        thousands(generated_events)
    );

    let analyze_started = Instant::now();
    match target {
        Target::Sqlite(_) => store.write(|tx| tx.execute_batch("ANALYZE")).await?,
        Target::Postgres { url, schema } => pg_run(url, Some(schema), "VACUUM (ANALYZE)".into()).await?,
    }
    let analyze_seconds = analyze_started.elapsed().as_secs_f64();

    let names = ["order.completed", "email.opened", "email.clicked", "visit.checked_in", "page.viewed"];
    let by_type: serde_json::Map<String, serde_json::Value> =
        types.iter().map(|(k, n)| (names.get(*k as usize).unwrap_or(&"?").to_string(), json!(n))).collect();
    let summary = json!({"types": by_type, "generated_events": generated_events, "analyze_seconds": analyze_seconds}).to_string();
    store
        .write(move |tx| {
            tx.execute(
                &format!("UPDATE {MARKER} SET complete = 1, seconds = $1, summary = $2"),
                &[Value::F64(generate_seconds), summary.into()],
            )
        })
        .await?;
    // The marker keeps the size asked for (what --reuse compares); the summary what was made.
    let marker = read_marker(store).await?.ok_or_else(|| anyhow::anyhow!("the dataset marker vanished"))?;
    Ok(Dataset::from_marker(marker, true))
}

fn created<T>(c: Created<T>) -> anyhow::Result<T> {
    match c {
        Created::New(t) => Ok(t),
        Created::Replayed { .. } => bail!("unexpected replay"),
    }
}

// ---------------------------------------------------------------------------------------------
// The measurements
// ---------------------------------------------------------------------------------------------

/// One measurement: a first untimed run and the timed ones.
struct Timing {
    label: String,
    result: String,
    first: Duration,
    samples: Vec<Duration>,
    target: Option<Duration>,
}

impl Timing {
    fn sorted(&self) -> Vec<Duration> {
        let mut s = self.samples.clone();
        s.sort_unstable();
        s
    }

    fn median(&self) -> Duration {
        let s = self.sorted();
        if s.is_empty() {
            return Duration::ZERO;
        }
        if s.len() % 2 == 1 { s[s.len() / 2] } else { (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2 }
    }

    /// Nearest rank.
    fn p95(&self) -> Duration {
        let s = self.sorted();
        let rank = ((s.len() as f64 * 0.95).ceil() as usize).clamp(1, s.len().max(1));
        s.get(rank - 1).copied().unwrap_or_default()
    }

    fn min(&self) -> Duration {
        self.samples.iter().copied().min().unwrap_or_default()
    }
}

struct SegmentResult {
    name: &'static str,
    filter: &'static str,
    members: i64,
    create: Duration,
    refresh: Vec<Duration>,
}

struct LiveResult {
    events: usize,
    batches: usize,
    contacts: usize,
    accepted: usize,
    rejected: usize,
    first_rejection: Option<String>,
    ingest: Duration,
    marked: i64,
    maintain: Duration,
    report: MaintainReport,
}

struct Results {
    dialect: Dialect,
    contacts: i64,
    events: i64,
    profiles: i64,
    tiers: Vec<(String, i64)>,
    stages: Vec<(String, i64)>,
    size: Option<u64>,
    preview_count: i64,
    hand_count: i64,
    timings: Vec<Timing>,
    compiled_sql: String,
    compiled_params: Vec<Value>,
    hand_sql: String,
    compiled_plan: Vec<String>,
    hand_plan: Vec<String>,
    segments: Vec<SegmentResult>,
    refresh_time_dependent: (Duration, MaintainReport),
    live: LiveResult,
}

fn hand_written_sql(d: Dialect) -> String {
    let fleet = match d {
        Dialect::Sqlite => "json_extract(c.custom_fields, '$.fleet_size') >= 3",
        Dialect::Postgres => "CAST(c.custom_fields ->> 'fleet_size' AS NUMERIC) >= 3",
    };
    // The profile's counters rule most people out before their row or events are read.
    format!(
        "SELECT count(*) FROM profiles p JOIN contacts c ON c.id = p.contact_id \
         WHERE p.value_tier IN ('gold', 'vip') AND p.lifecycle_stage <> 'lost' \
         AND p.email_opens >= 3 AND p.last_open_at >= $1 AND (p.last_visit_at IS NULL OR p.last_visit_at < $2) \
         AND {fleet} \
         AND (SELECT count(*) FROM events e WHERE e.contact_id = p.contact_id AND e.type = 'email.opened' AND e.occurred_at >= $1) >= 3"
    )
}

fn hand_params(now: Timestamp) -> Vec<Value> {
    vec![Value::Time(now - chrono::Duration::days(90)), Value::Time(now - chrono::Duration::days(30))]
}

async fn count_sql(store: &Store, sql: &str, params: Vec<Value>) -> anyhow::Result<i64> {
    let sql = sql.to_string();
    Ok(store.read(move |tx| tx.query_one(&sql, &params)?.i64(0)).await?)
}

/// The plan of a query: SQLite's EXPLAIN QUERY PLAN as a tree, PostgreSQL's EXPLAIN ANALYZE.
async fn explain(store: &Store, sql: &str, params: Vec<Value>) -> anyhow::Result<Vec<String>> {
    let d = store.dialect();
    let sql = match d {
        Dialect::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
        Dialect::Postgres => format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"),
    };
    let rows = store.read(move |tx| tx.query(&sql, &params)).await?;
    let mut lines = Vec::new();
    match d {
        Dialect::Sqlite => {
            let mut depth: BTreeMap<i64, usize> = BTreeMap::new();
            for r in rows {
                let (id, parent, detail) = (r.i64(0)?, r.i64(1)?, r.string(3)?);
                let level = if parent == 0 { 0 } else { depth.get(&parent).map_or(0, |l| l + 1) };
                depth.insert(id, level);
                lines.push(format!("{}{detail}", "  ".repeat(level)));
            }
        }
        Dialect::Postgres => {
            for r in rows {
                lines.push(r.string(0)?);
            }
        }
    }
    Ok(lines)
}

async fn measure(args: &SegmentsArgs, store: &Store) -> anyhow::Result<Results> {
    let d = store.dialect();
    let runs = args.runs;
    eprintln!("Measuring…");

    // The dataset as it stands.
    let (contacts, events, profiles, tiers, stages) = store
        .read(|tx| {
            let one = |tx: &mut dyn rapport_store::db::Tx, sql: &str| tx.query_one(sql, &[])?.i64(0);
            let contacts = one(tx, "SELECT count(*) FROM contacts")?;
            let events = one(tx, "SELECT coalesce(max(seq), 0) FROM events")?;
            let profiles = one(tx, "SELECT count(*) FROM profiles")?;
            let groups = |tx: &mut dyn rapport_store::db::Tx, col: &str| -> rapport_store::Result<Vec<(String, i64)>> {
                tx.query(
                    &format!("SELECT coalesce({col}, '(none)'), count(*) FROM profiles GROUP BY {col} ORDER BY 2 DESC"),
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.string(0)?, r.i64(1)?)))
                .collect()
            };
            let tiers = groups(tx, "value_tier")?;
            let stages = groups(tx, "lifecycle_stage")?;
            Ok((contacts, events, profiles, tiers, stages))
        })
        .await?;

    // a. Counting an unsaved segment.
    let filter: Filter = FIVE_CONDITIONS.parse().map_err(|e| anyhow::anyhow!("the benchmark filter does not parse: {e}"))?;
    let mut timings = Vec::new();
    let mut preview = Timing {
        label: "a. preview_segment(filter, 0): count an unsaved 5-condition segment".into(),
        result: String::new(),
        first: Duration::ZERO,
        samples: Vec::new(),
        target: (d == Dialect::Sqlite).then_some(TARGET_PREVIEW),
    };
    let mut preview_count = 0;
    for i in 0..=runs {
        let t = Instant::now();
        let p = store.preview_segment(filter.clone(), 0).await?;
        let took = t.elapsed();
        preview_count = p.count;
        if i == 0 { preview.first = took } else { preview.samples.push(took) }
    }
    preview.result = format!("{} contacts", thousands(preview_count as u64));
    timings.push(preview);

    let (compiled_sql, compiled_params) = store.preview_count_sql(filter.clone()).await?;
    let mut compiled = Timing {
        label: "a. the compiled SQL alone (no parsing, compiling or sample query)".into(),
        result: String::new(),
        first: Duration::ZERO,
        samples: Vec::new(),
        target: None,
    };
    let mut compiled_count = 0;
    for i in 0..=runs {
        let t = Instant::now();
        compiled_count = count_sql(store, &compiled_sql, compiled_params.clone()).await?;
        let took = t.elapsed();
        if i == 0 { compiled.first = took } else { compiled.samples.push(took) }
    }
    compiled.result = format!("{} contacts", thousands(compiled_count as u64));
    timings.push(compiled);

    let hand_sql = hand_written_sql(d);
    let mut hand = Timing {
        label: "a. hand-written SQL equivalent (same indexes)".into(),
        result: String::new(),
        first: Duration::ZERO,
        samples: Vec::new(),
        target: None,
    };
    let mut hand_count = 0;
    for i in 0..=runs {
        let params = hand_params(store.now());
        let t = Instant::now();
        hand_count = count_sql(store, &hand_sql, params).await?;
        let took = t.elapsed();
        if i == 0 { hand.first = took } else { hand.samples.push(took) }
    }
    hand.result = format!("{} contacts", thousands(hand_count as u64));
    timings.push(hand);
    let compiled_plan = explain(store, &compiled_sql, compiled_params.clone()).await?;
    let hand_plan = explain(store, &hand_sql, hand_params(store.now())).await?;

    // c. Stored segments: created afresh (creating evaluates them), then refreshed in full.
    let old: Vec<Uuid> = store.read(|tx| tx.query("SELECT id FROM segments", &[])?.iter().map(|r| r.uuid(0)).collect()).await?;
    for id in old {
        store.delete_segment(id).await.context("deleting a segment of an earlier run")?;
    }
    let mut segments = Vec::new();
    let mut ids = Vec::new();
    let bar = indicatif::ProgressBar::new(SEGMENTS.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("Creating segments {bar:40.cyan/blue} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for &(name, filter) in SEGMENTS {
        bar.set_message(name);
        let draft = SegmentDraft { name: Some(name.into()), description: None, filter: Some(filter.into()), filter_json: None };
        let t = Instant::now();
        let s = store.create_segment(draft, None).await.with_context(|| format!("creating the segment {name}"))?;
        segments.push(SegmentResult { name, filter, members: s.member_count, create: t.elapsed(), refresh: Vec::new() });
        ids.push(s.id);
        bar.inc(1);
    }
    bar.finish_and_clear();

    // b. A stored segment's count: a lookup.
    let lookups = runs * 100;
    let mut lookup = Timing {
        label: format!("b. get_segment(id).member_count ({} lookups)", thousands(lookups as u64)),
        result: String::new(),
        first: Duration::ZERO,
        samples: Vec::new(),
        target: None,
    };
    for i in 0..=lookups {
        let t = Instant::now();
        let s = store.get_segment(ids[0]).await?;
        let took = t.elapsed();
        lookup.result = format!("{} members", thousands(s.member_count as u64));
        if i == 0 { lookup.first = took } else { lookup.samples.push(took) }
    }
    timings.push(lookup);

    let bar = indicatif::ProgressBar::new((runs + 1) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("Refreshing segments {bar:40.cyan/blue} {pos}/{len} runs {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut refresh_all = Timing {
        label: format!("c. full refresh of all {} segments, one by one", SEGMENTS.len()),
        result: String::new(),
        first: Duration::ZERO,
        samples: Vec::new(),
        target: (d == Dialect::Sqlite).then_some(TARGET_REFRESH_ALL),
    };
    let mut moved = (0, 0);
    for run in 0..=runs {
        let mut total = Duration::ZERO;
        for (i, id) in ids.iter().enumerate() {
            bar.set_message(segments[i].name);
            let t = Instant::now();
            let r = store.refresh_segment(*id).await?;
            let took = t.elapsed();
            total += took;
            moved.0 += r.entered;
            moved.1 += r.exited;
            if run > 0 {
                segments[i].refresh.push(took);
            }
        }
        if run == 0 {
            refresh_all.first = total
        } else {
            refresh_all.samples.push(total)
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    refresh_all.result = format!("{} entered, {} exited over all runs", thousands(moved.0), thousands(moved.1));
    timings.push(refresh_all);
    let t = Instant::now();
    let report = store.refresh_time_dependent_segments().await?;
    let refresh_time_dependent = (t.elapsed(), report);

    // d. Incremental maintenance behind a stream of ingested events.
    let live = live(args, store).await?;
    for (s, id) in segments.iter_mut().zip(&ids) {
        s.members = store.get_segment(*id).await?.member_count;
    }

    Ok(Results {
        dialect: d,
        contacts,
        events,
        profiles,
        tiers,
        stages,
        size: None,
        preview_count,
        hand_count,
        timings,
        compiled_sql,
        compiled_params,
        hand_sql,
        compiled_plan,
        hand_plan,
        segments,
        refresh_time_dependent,
        live,
    })
}

async fn live(args: &SegmentsArgs, store: &Store) -> anyhow::Result<LiveResult> {
    // Start from an empty queue.
    store.maintain_segments_fully().await?;
    let sample = args.live_events.min(1_000_000) as i64;
    let ids: Vec<Uuid> = store
        .read(move |tx| {
            tx.query("SELECT id FROM contacts ORDER BY random() LIMIT $1", &[sample.into()])?.iter().map(|r| r.uuid(0)).collect()
        })
        .await?;
    let mut rng = fastrand::Rng::with_seed(7);
    let run = chrono::Utc::now().timestamp_millis();
    let bar = indicatif::ProgressBar::new(args.live_events as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("Ingesting {bar:40.cyan/blue} {pos}/{len} events ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut touched = std::collections::HashSet::new();
    let (mut accepted, mut rejected, mut batches, mut first_rejection) = (0, 0, 0, None);
    let mut ingest = Duration::ZERO;
    let mut sent = 0;
    while sent < args.live_events {
        let n = args.live_batch.min(args.live_events - sent);
        let now = store.now();
        let events: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                let contact = ids[rng.usize(..ids.len())];
                touched.insert(contact);
                live_event(&mut rng, contact, format!("live-{run}-{:07}", sent + i), now)
            })
            .collect();
        let t = Instant::now();
        let report = store.ingest(IngestRequest { events, create_contact: false }).await.context("ingest failed")?;
        ingest += t.elapsed();
        for r in &report.results {
            match r.status {
                ItemStatus::Accepted => accepted += 1,
                ItemStatus::Duplicate => {}
                ItemStatus::Rejected => {
                    rejected += 1;
                    if first_rejection.is_none() {
                        first_rejection =
                            Some(r.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "));
                    }
                }
            }
        }
        sent += n;
        batches += 1;
        bar.set_position(sent as u64);
    }
    bar.finish_and_clear();
    let marked = store.read(|tx| tx.query_one("SELECT count(*) FROM segment_dirty", &[])?.i64(0)).await?;
    eprintln!("Maintaining segments for {} marked contacts…", thousands(marked as u64));
    let t = Instant::now();
    let report = store.maintain_segments_fully().await?;
    let maintain = t.elapsed();
    Ok(LiveResult {
        events: args.live_events,
        batches,
        contacts: touched.len(),
        accepted,
        rejected,
        first_rejection,
        ingest,
        marked,
        maintain,
        report,
    })
}

/// One event as a client would send it, happening in the last ten minutes.
fn live_event(rng: &mut fastrand::Rng, contact: Uuid, id: String, now: Timestamp) -> serde_json::Value {
    let at = now - chrono::Duration::seconds(rng.i64(0..600));
    let campaign = format!("weekly-{}", rng.u32(1..53));
    let (kind, channel, payload) = match rng.u32(..100) {
        0..=49 => {
            let model = ["ev", "suv", "estate"][rng.usize(..3)];
            ("page.viewed", "web", json!({"url": format!("https://dealer.example/models/{model}")}))
        }
        50..=69 => ("email.opened", "email", json!({"campaign": campaign})),
        70..=75 => ("email.clicked", "email", json!({"campaign": campaign, "url": "https://dealer.example/offers/ev"})),
        76..=87 => {
            let location = ["showroom", "service-desk"][rng.usize(..2)];
            ("visit.checked_in", "store", json!({"location": location}))
        }
        _ => {
            let (category, prefix, _, euros) = CATEGORIES[rng.usize(..4)];
            let cents = euros * 100 * rng.i64(50..150) / 100;
            let total = cents as f64 / 100.0;
            let item = json!({"sku": format!("{prefix}-{:03}", rng.i64(0..SKUS)), "category": category, "quantity": 1, "unit_price": total});
            ("order.completed", "store", json!({"currency": "EUR", "total": total, "items": [item]}))
        }
    };
    json!({
        "id": id,
        "type": kind,
        "contact": {"id": contact},
        "occurred_at": at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "channel": channel,
        "payload": payload,
    })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

fn fmt_bytes(b: u64) -> String {
    let gib = b as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 { format!("{gib:.1} GiB") } else { format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64) }
}

fn per_second(n: f64, d: Duration) -> u64 {
    (n / d.as_secs_f64().max(1e-9)) as u64
}

fn share_list(groups: &[(String, i64)], total: i64) -> String {
    groups
        .iter()
        .map(|(name, n)| format!("{name} {} ({:.1}%)", thousands(*n as u64), 100.0 * *n as f64 / total.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn show_param(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("'{s}'"),
        Value::Time(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        Value::F64(f) => format!("{f}"),
        Value::I64(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

impl Results {
    fn print(&self, args: &SegmentsArgs, target: &Target, dataset: &Dataset) {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let sqlite = self.dialect == Dialect::Sqlite;
        println!();
        println!("| | |");
        println!("|---|---|");
        println!("| machine | {cores} cores{} |", cpu_model().map(|m| format!(" ({m})")).unwrap_or_default());
        println!("| database | {} |", target.describe());
        let how = if dataset.fresh {
            format!(
                "generated by this run in {:.0} s with set-based SQL inside the database, not through the ingest API \
                 (ingest speed is `rapport bench ingest`); ANALYZE took {:.0} s",
                dataset.generate_seconds, dataset.analyze_seconds
            )
        } else {
            format!(
                "reused (--reuse), generated {} ago in {:.0} s with set-based SQL, not through the ingest API; ANALYZE took {:.0} s",
                age(dataset.generated_at),
                dataset.generate_seconds,
                dataset.analyze_seconds
            )
        };
        println!("| dataset | {} contacts, {} events ({how}) |", thousands(dataset.contacts), thousands(dataset.events));
        println!(
            "| now holds | {} contacts, {} events (incl. this and earlier runs' live events and segment events), {} profiles{} |",
            thousands(self.contacts as u64),
            thousands(self.events as u64),
            thousands(self.profiles as u64),
            self.size.map(|b| format!(", {} on disk", fmt_bytes(b))).unwrap_or_default()
        );
        if !dataset.types.is_empty() {
            let total: u64 = dataset.types.iter().map(|t| t.1).sum();
            let list: Vec<String> = dataset
                .types
                .iter()
                .map(|(k, n)| format!("{k} {} ({:.1}%)", thousands(*n), 100.0 * *n as f64 / total.max(1) as f64))
                .collect();
            println!("| generated events by type | {} |", list.join(", "));
        }
        println!("| value tiers (of profiles) | {} |", share_list(&self.tiers, self.profiles));
        println!("| lifecycle stages (of profiles) | {} |", share_list(&self.stages, self.profiles));
        println!();
        println!(
            "Each measurement ran once untimed (\"first\"), then {} times timed (lookups {} times).",
            args.runs,
            args.runs * 100
        );
        println!();
        println!("| measurement | result | first | median | p95 | min | target |");
        println!("|---|---|---:|---:|---:|---:|---|");
        for t in &self.timings {
            let verdict = match t.target {
                Some(target) => {
                    format!("< {} (SQLite): **{}**", fmt_duration(target), if t.median() < target { "PASS" } else { "MISS" })
                }
                None => String::new(),
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {verdict} |",
                t.label,
                t.result,
                fmt_duration(t.first),
                fmt_duration(t.median()),
                fmt_duration(t.p95()),
                fmt_duration(t.min())
            );
        }
        let (rt, rr) = &self.refresh_time_dependent;
        println!(
            "| c. refresh_time_dependent_segments() once | {} segments, {} entered, {} exited | {} | | | | |",
            rr.segments_refreshed,
            rr.entered,
            rr.exited,
            fmt_duration(*rt)
        );
        if self.preview_count != self.hand_count {
            println!();
            println!(
                "Note: the compiled filter counts {} and the hand-written SQL {} (windows are taken at slightly different moments).",
                self.preview_count, self.hand_count
            );
        }

        println!();
        println!("Filter counted in (a): `{FIVE_CONDITIONS}`");
        println!();
        println!("| segment | filter | members | create (first evaluation) | refresh median | refresh min |");
        println!("|---|---|---:|---:|---:|---:|");
        for s in &self.segments {
            let t =
                Timing { label: String::new(), result: String::new(), first: s.create, samples: s.refresh.clone(), target: None };
            println!(
                "| {} | `{}` | {} | {} | {} | {} |",
                s.name,
                s.filter,
                thousands(s.members as u64),
                fmt_duration(s.create),
                fmt_duration(t.median()),
                fmt_duration(t.min())
            );
        }

        let l = &self.live;
        let ingest_rate = per_second(l.accepted as f64, l.ingest);
        let maintain_events = per_second(l.events as f64, l.maintain);
        let maintain_contacts = per_second(l.report.contacts as f64, l.maintain);
        println!();
        println!("Incremental maintenance (d), with the {} segments above defined:", self.segments.len());
        println!();
        println!("| | |");
        println!("|---|---|");
        println!(
            "| ingest (Store::ingest) | {} events in {} batches of {}, one at a time, about {} random existing contacts (by id): {:.2} s, **{} events/s**; {} accepted, {} rejected |",
            thousands(l.events as u64),
            l.batches,
            thousands(args.live_batch as u64),
            thousands(l.contacts as u64),
            l.ingest.as_secs_f64(),
            thousands(ingest_rate),
            thousands(l.accepted as u64),
            thousands(l.rejected as u64)
        );
        if let Some(r) = &l.first_rejection {
            println!("| first rejection | {r} |");
        }
        println!("| contacts marked for re-evaluation | {} |", thousands(l.marked as u64));
        println!(
            "| maintain_segments_fully() | {} contacts against {} segments in {:.2} s: **{} contacts/s, {} events/s** ({} entered, {} exited) |",
            thousands(l.report.contacts),
            self.segments.len(),
            l.maintain.as_secs_f64(),
            thousands(maintain_contacts),
            thousands(maintain_events),
            thousands(l.report.entered),
            thousands(l.report.exited)
        );
        let keeps_up = l.maintain <= l.ingest;
        println!(
            "| keeps up with ingest | **{}**: maintenance takes {:.2} s for what took {:.2} s to ingest ({:.0}% of the writer's time on top of ingest) |",
            if keeps_up { "yes" } else { "no" },
            l.maintain.as_secs_f64(),
            l.ingest.as_secs_f64(),
            100.0 * l.maintain.as_secs_f64() / l.ingest.as_secs_f64().max(1e-9)
        );

        println!();
        println!("Compiled SQL of (a), as preview_segment counts it:");
        println!();
        println!("```sql");
        println!("{}", self.compiled_sql);
        println!("```");
        let params: Vec<String> =
            self.compiled_params.iter().enumerate().map(|(i, v)| format!("${} = {}", i + 1, show_param(v))).collect();
        println!("Parameters: {}", params.join(", "));
        println!();
        println!("{} of the compiled SQL:", if sqlite { "EXPLAIN QUERY PLAN" } else { "EXPLAIN (ANALYZE, BUFFERS)" });
        println!();
        println!("```");
        for line in &self.compiled_plan {
            println!("{line}");
        }
        println!("```");
        println!();
        println!("Hand-written SQL ($1 = now - 90 days, $2 = now - 30 days):");
        println!();
        println!("```sql");
        println!("{}", self.hand_sql);
        println!("```");
        println!();
        println!("```");
        for line in &self.hand_plan {
            println!("{line}");
        }
        println!("```");
        if sqlite {
            println!();
            for t in &self.timings {
                if let Some(target) = t.target {
                    println!(
                        "{}: median {} (target < {}): {}",
                        t.label,
                        fmt_duration(t.median()),
                        fmt_duration(target),
                        if t.median() < target { "PASS" } else { "MISS" }
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_add_up_and_leave_a_tenth_silent() {
        for (contacts, events) in [(1_000_000u64, 20_000_000u64), (20_000, 400_000), (1000, 5000)] {
            let q = event_quantiles(contacts, events);
            assert_eq!(q.len(), 1024);
            let want = (events as f64 * 1024.0 / contacts as f64).round() as i64;
            assert_eq!(q.iter().sum::<i64>(), want);
            assert!(q.iter().all(|&n| (0..=MAX_EVENTS_PER_CONTACT as i64).contains(&n)));
            assert_eq!(q.iter().filter(|&&n| n == 0).count(), 102);
        }
    }

    /// A small dataset generates, holds what it claims, and the compiled filter counts what the
    /// hand-written SQL counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_dataset_is_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Sqlite(dir.path().join("bench.db"));
        let store = target.open().await.unwrap();
        let dataset = generate(&store, &target, 3000, 60_000).await.unwrap();
        assert_eq!(dataset.contacts, 3000);
        assert!((dataset.events as i64 - 60_000).abs() < 1800, "{}", dataset.events);
        let (contacts, events, profiles, leads_with_orders, bad_tiers) = store
            .read(|tx| {
                let one = |tx: &mut dyn rapport_store::db::Tx, sql: &str| tx.query_one(sql, &[])?.i64(0);
                Ok((
                    one(tx, "SELECT count(*) FROM contacts")?,
                    one(tx, "SELECT count(*) FROM events")?,
                    one(tx, "SELECT count(*) FROM profiles")?,
                    one(tx, "SELECT count(*) FROM profiles WHERE lifecycle_stage = 'lead' AND order_count > 0")?,
                    one(tx, "SELECT count(*) FROM profiles WHERE (value_tier IS NULL) <> (order_count = 0)")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(contacts, 3000);
        assert_eq!(events as u64, dataset.events);
        assert!(profiles > 2500 && profiles < 3000, "{profiles}");
        assert_eq!(leads_with_orders, 0);
        assert_eq!(bad_tiers, 0);
        // The shares the generator promises, within ±5 points (σ is under 1 point at 3,000).
        let shares = store
            .read(|tx| {
                let row = tx.query_one(
                    "SELECT avg(CASE WHEN birthday_month IS NOT NULL THEN 1.0 ELSE 0.0 END), \
                     avg(CASE WHEN birthday_year IS NOT NULL THEN 1.0 ELSE 0.0 END), \
                     avg(CASE WHEN json_extract(custom_fields, '$.renewal_date') IS NOT NULL THEN 1.0 ELSE 0.0 END) FROM contacts",
                    &[],
                )?;
                Ok([row.f64(0)?, row.f64(1)?, row.f64(2)?])
            })
            .await
            .unwrap();
        for (what, share, want) in
            [("a birthday", shares[0], 0.75), ("a birth year", shares[1], 0.45), ("a renewal date", shares[2], 0.6)]
        {
            assert!((share - want).abs() < 0.05, "{share:.3} of the contacts have {what}, not about {want}");
        }
        // Profiles agree with the events they were folded from.
        let mismatched = store
            .read(|tx| {
                tx.query_one(
                    "SELECT count(*) FROM profiles p WHERE p.order_count <> (SELECT count(*) FROM events e WHERE e.contact_id = p.contact_id \
                     AND e.type = 'order.completed') OR p.email_opens <> (SELECT count(*) FROM events e WHERE e.contact_id = p.contact_id \
                     AND e.type = 'email.opened')",
                    &[],
                )?
                .i64(0)
            })
            .await
            .unwrap();
        assert_eq!(mismatched, 0);
        // Stored contacts read back through the API.
        let sample = store.preview_segment("custom.fleet_size >= 1".parse().unwrap(), 5).await.unwrap();
        assert!(sample.count > 0);
        assert!(sample.sample.iter().all(|c| c.custom_fields.contains_key("fleet_size")));
        let filter: Filter = FIVE_CONDITIONS.parse().unwrap();
        let preview = store.preview_segment(filter, 0).await.unwrap();
        let hand = count_sql(&store, &hand_written_sql(Dialect::Sqlite), hand_params(store.now())).await.unwrap();
        assert_eq!(preview.count, hand);
        for (name, filter) in SEGMENTS {
            let draft =
                SegmentDraft { name: Some((*name).into()), description: None, filter: Some((*filter).into()), filter_json: None };
            store.create_segment(draft, None).await.unwrap();
        }
        let plan = explain(&store, &hand_written_sql(Dialect::Sqlite), hand_params(store.now())).await.unwrap();
        assert!(!plan.is_empty());
    }
}
