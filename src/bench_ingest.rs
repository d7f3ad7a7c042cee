//! `rapport bench ingest`: sustained event ingest, with every profile and lifecycle stage kept
//! current in the same transactions, against a fresh database in this process.
//!
//! Contacts are created first (not timed). Then a generator thread builds batches of events — a
//! shop's realistic mix over a catalogue of 2,000 products, about skewed-popular contacts, spread
//! over the last year and partly out of order, half of them with sender ids and a few delivered
//! twice — and hands them through a bounded queue to `--in-flight` tasks calling
//! [`Store::ingest`]. The queue keeps memory flat however many events are sent. At the end a few
//! contacts' profiles are checked against what was sent. See docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::SecondsFormat;
use rapport_core::contact::{ContactDraft, EmailDraft};
use rapport_core::event::{IngestRequest, MAX_BATCH};
use rapport_core::profile::LifecycleStage;
use rapport_core::{SystemClock, Timestamp};
use rapport_store::{DatabaseUrl, IngestReport, ItemStatus, Store, StoreError, StoreOptions};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::demo::thousands;

/// Target from the issue, on SQLite.
const TARGET_EVENTS_PER_SECOND: f64 = 100_000.0;
/// Contacts created per transaction before the run.
const SEED_BATCH: usize = 5000;
const PRODUCTS: usize = 2000;
/// Contacts whose profiles are checked against what was sent.
const TRACKED: usize = 10;
/// Profiles read at the end to show how the stages came out.
const STAGE_SAMPLE: usize = 1000;
/// Share of events (per mille) delivered a second time with the same id.
const REDELIVERED_PER_MILLE: u32 = 2;

/// `rapport bench ingest --help`.
pub const LONG_ABOUT: &str = "Measures sustained event ingest with profiles and lifecycle stages kept current.\n\n\
Creates --contacts contacts in a fresh database (not timed), then ingests --events generated events \
(a shop's mix: page and product views, newsletter sends, opens and clicks, orders, refunds, store visits, \
abandoned carts, calls, chats, forms, feedback) in batches of --batch, --in-flight calls at a time, \
and reports events/s overall and per tenth of the run, resident memory (RSS) at each tenth and its peak, \
and checks sample profiles against the events sent. The results are printed as Markdown tables.\n\n\
The database is a fresh SQLite file in the temporary directory, removed afterwards unless --keep. \
With --database-url postgres://… the run uses a new schema in that database, dropped afterwards unless \
--keep; with --database-url sqlite://PATH, PATH must not exist yet. RAPPORT_DATABASE_URL and rapport.toml \
are ignored, so a configured database is never written to.";

#[derive(clap::Args)]
pub struct IngestArgs {
    /// Events to ingest
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Contacts the events are about (created before the timed run)
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    /// Events per ingest call (at most 10,000)
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Ingest calls in flight at once
    #[arg(long, default_value_t = 2)]
    in_flight: usize,
    /// Seed for the generated contacts and events (same seed, same run)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the database afterwards (the SQLite file or the PostgreSQL schema)
    #[arg(long)]
    keep: bool,
}

/// Runs the benchmark. `database_url` is the global `--database-url` flag, when given.
pub async fn run(args: IngestArgs, database_url: Option<String>) -> anyhow::Result<()> {
    if args.events == 0 || args.contacts == 0 || args.in_flight == 0 {
        bail!("--events, --contacts and --in-flight must be at least 1");
    }
    if !(1..=MAX_BATCH).contains(&args.batch) {
        bail!("--batch must be between 1 and {MAX_BATCH}");
    }
    let target = Target::create(database_url.as_deref(), args.seed).await?;
    let outcome = bench(&args, &target).await;
    target.finish(args.keep).await;
    let results = outcome?;
    results.print(&args, &target);
    results.verdict()
}

// ---------------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------------

enum Target {
    Sqlite { path: PathBuf, ours: bool },
    Postgres { url: String, schema: String },
}

impl Target {
    async fn create(database_url: Option<&str>, seed: u64) -> anyhow::Result<Target> {
        let url = match database_url {
            None => {
                let path = std::env::temp_dir().join(format!("rapport-bench-ingest-{}.db", std::process::id()));
                remove_sqlite(&path);
                return Ok(Target::Sqlite { path, ours: true });
            }
            Some(raw) => DatabaseUrl::parse(raw).map_err(anyhow::Error::msg)?,
        };
        match url {
            DatabaseUrl::Sqlite(path) => {
                if path.exists() {
                    bail!("{} exists; the benchmark needs a fresh database (give a new path)", path.display());
                }
                Ok(Target::Sqlite { path, ours: false })
            }
            DatabaseUrl::Postgres(url) => {
                let schema = format!("bench_ingest_{}_{seed}", Uuid::new_v4().simple());
                let (u, s) = (url.clone(), schema.clone());
                tokio::task::spawn_blocking(move || pg_execute(&u, &format!("CREATE SCHEMA {s}"))).await??;
                Ok(Target::Postgres { url, schema })
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Sqlite { path, .. } => format!("SQLite ({})", path.display()),
            Target::Postgres { url, schema } => format!("PostgreSQL ({}, schema {schema})", rapport_store::redact(url)),
        }
    }

    fn is_sqlite(&self) -> bool {
        matches!(self, Target::Sqlite { .. })
    }

    async fn open(&self) -> anyhow::Result<Store> {
        let (url, schema) = match self {
            Target::Sqlite { path, .. } => (DatabaseUrl::Sqlite(path.clone()), None),
            Target::Postgres { url, schema } => (DatabaseUrl::Postgres(url.clone()), Some(schema.clone())),
        };
        let shown = url.redacted();
        let options = StoreOptions { clock: Arc::new(SystemClock), pg_schema: schema, ..StoreOptions::default() };
        tokio::task::spawn_blocking(move || Store::open(&url, options))
            .await?
            .with_context(|| format!("cannot open the benchmark database {shown}"))
    }

    async fn finish(&self, keep: bool) {
        match self {
            Target::Sqlite { path, ours } => {
                if keep || !ours {
                    eprintln!("The database is kept at {}.", path.display());
                } else {
                    remove_sqlite(path);
                }
            }
            Target::Postgres { url, schema } => {
                if keep {
                    eprintln!("The schema {schema} is kept in {}.", rapport_store::redact(url));
                    return;
                }
                let (u, s) = (url.clone(), schema.clone());
                match tokio::task::spawn_blocking(move || pg_execute(&u, &format!("DROP SCHEMA IF EXISTS {s} CASCADE"))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("warning: could not drop the schema {schema}: {e:#}"),
                    Err(e) => eprintln!("warning: could not drop the schema {schema}: {e}"),
                }
            }
        }
    }
}

fn pg_execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut config: postgres::Config = url.parse().context("invalid PostgreSQL URL")?;
    config.connect_timeout(Duration::from_secs(10));
    config.application_name("rapport-bench-ingest");
    let mut client =
        config.connect(postgres::NoTls).with_context(|| format!("cannot connect to {}", rapport_store::redact(url)))?;
    client.batch_execute(sql).with_context(|| format!("running {sql}"))?;
    Ok(())
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

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Memory and progress at one point of the run.
#[derive(Clone, Copy)]
struct Mark {
    events: u64,
    at: Duration,
    memory: Memory,
}

/// The process's resident memory, split as the kernel accounts it: SQLite maps the database
/// file into memory, so RSS also counts file pages that the OS shares with its page cache and
/// can drop at any time. The heap (`RssAnon`) is what the process itself holds.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss_kib: Option<u64>,
    /// Anonymous memory: heap, stacks, caches.
    anon_kib: Option<u64>,
    /// Pages of mapped files (the database), reclaimable.
    file_kib: Option<u64>,
}

impl Memory {
    fn now() -> Memory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Memory {
            rss_kib: status_kib(&status, "VmRSS"),
            anon_kib: status_kib(&status, "RssAnon"),
            file_kib: status_kib(&status, "RssFile"),
        }
    }
}

/// Samples the heap every 100 ms while the ingest runs: /proc has a peak for RSS (which
/// counts mapped database pages) but none for the heap alone.
struct HeapPeak {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeapPeak {
    fn start() -> HeapPeak {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (peak_kib, stop) = (peak_kib.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bench-heap-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(k) = Memory::now().anon_kib {
                            peak_kib.fetch_max(k, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
                .ok()
        };
        HeapPeak { peak_kib, stop, thread }
    }

    /// The highest heap seen, if the sampler ran.
    fn finish(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let ran = self.thread.take().is_some_and(|t| t.join().is_ok());
        let peak = self.peak_kib.load(Ordering::Relaxed);
        (ran && peak > 0).then_some(peak)
    }
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    duplicate: u64,
    rejected: u64,
    first_rejections: Vec<String>,
    marks: Vec<Mark>,
    /// Batches sent again after the database asked for a retry (a transaction conflict).
    retries: u64,
}

/// Attempts per batch when the database answers "transaction conflict, retry".
const ATTEMPTS: u32 = 10;

/// Ingests one batch. With `retry` (PostgreSQL, where concurrent transactions can conflict), a
/// batch the database refused as a conflict is sent again, as any client would: ingest is
/// idempotent and the refused transaction left nothing behind.
pub(crate) async fn ingest(store: &Store, events: Vec<Value>, retry: bool, retries: &AtomicU64) -> anyhow::Result<IngestReport> {
    if !retry {
        return store.ingest(IngestRequest { events, create_contact: false }).await.context("ingest failed");
    }
    let mut attempt = 1;
    loop {
        match store.ingest(IngestRequest { events: events.clone(), create_contact: false }).await {
            Err(StoreError::Unavailable(message)) if attempt < ATTEMPTS => {
                retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(attempt, %message, "ingest refused; sending the batch again");
                tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
                attempt += 1;
            }
            other => return other.context("ingest failed"),
        }
    }
}

struct Results {
    contacts: usize,
    seed_time: Duration,
    wall: Duration,
    tally: Tally,
    rss_after_seed_kib: Option<u64>,
    peak_kib: Option<u64>,
    /// The highest heap (`RssAnon`) sampled during the ingest.
    heap_peak_kib: Option<u64>,
    /// Whether the peak covers only the ingest (the kernel let us reset it after seeding).
    peak_reset: bool,
    /// (contact, orders sent, profile's order_count)
    checks: Vec<(Uuid, i64, i64)>,
    stages: Vec<(LifecycleStage, usize)>,
    sqlite: bool,
    sent: u64,
}

async fn bench(args: &IngestArgs, target: &Target) -> anyhow::Result<Results> {
    eprintln!("Database: {}", target.describe());
    let store = target.open().await?;

    let seed_started = Instant::now();
    let ids = Arc::new(seed_contacts(&store, args.contacts).await?);
    let seed_time = seed_started.elapsed();
    eprintln!("Created {} contacts in {:.1} s.", ids.len(), seed_time.as_secs_f64());

    let rss_after_seed_kib = proc_status_kib("VmRSS");
    let heap_peak = HeapPeak::start();
    // Writing 5 to clear_refs resets the peak (VmHWM), so the peak reported is the ingest's own.
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();

    let mix = Arc::new(Mix::new(args.contacts, args.seed));
    let expected: Arc<Vec<AtomicI64>> = Arc::new((0..TRACKED).map(|_| AtomicI64::new(0)).collect());
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Value>>(args.in_flight);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));

    let started = Instant::now();
    let generator = {
        let (mix, ids, expected) = (mix.clone(), ids.clone(), expected.clone());
        let (events, batch, seed, now) = (args.events, args.batch, args.seed, store.now());
        std::thread::Builder::new()
            .name("bench-generator".into())
            .spawn(move || generate(&mix, &ids, &expected, events, batch, seed, now, tx))
            .context("cannot start the generator thread")?
    };

    let bar = indicatif::ProgressBar::new(args.events);
    bar.set_style(
        indicatif::ProgressStyle::with_template("Ingesting {bar:40.cyan/blue} {pos}/{len} events ({per_sec}, {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    tally.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.marks.push(Mark {
        events: 0,
        at: Duration::ZERO,
        memory: Memory::now(),
    });
    let done = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.in_flight {
        let (store, rx, tally, done, bar) = (store.clone(), rx.clone(), tally.clone(), done.clone(), bar.clone());
        let (total, retry, retries) = (args.events, !target.is_sqlite(), retries.clone());
        workers.spawn(async move {
            loop {
                let batch = rx.lock().await.recv().await;
                let Some(events) = batch else { return anyhow::Ok(()) };
                let n = events.len() as u64;
                let report = ingest(&store, events, retry, &retries).await?;
                let now = done.fetch_add(n, Ordering::Relaxed) + n;
                bar.set_position(now);
                let mut t = tally.lock().map_err(|_| anyhow::anyhow!("a worker panicked"))?;
                for r in &report.results {
                    match r.status {
                        ItemStatus::Accepted => t.accepted += 1,
                        ItemStatus::Duplicate => t.duplicate += 1,
                        ItemStatus::Rejected => {
                            t.rejected += 1;
                            if t.first_rejections.len() < 5 {
                                let errors: Vec<String> =
                                    r.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                                t.first_rejections.push(format!(
                                    "{}: {}",
                                    r.id.as_deref().unwrap_or("(no id)"),
                                    errors.join("; ")
                                ));
                            }
                        }
                    }
                }
                // A mark at every 5% (a twentieth of the run).
                let last = t.marks.last().map_or(0, |m| m.events);
                if now * 20 / total > last * 20 / total {
                    let mark = Mark { events: now, at: started.elapsed(), memory: Memory::now() };
                    t.marks.push(mark);
                    let rate = now as f64 / mark.at.as_secs_f64();
                    bar.suspend(|| {
                        eprintln!(
                            "{:>3}%  {now:>11} events  {:>8.1} s  {rate:>9.0} events/s  RSS {} (heap {})",
                            now * 100 / total,
                            mark.at.as_secs_f64(),
                            mib(mark.memory.rss_kib),
                            mib(mark.memory.anon_kib)
                        )
                    });
                }
            }
        });
    }
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        let r = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = r
            && failure.is_none()
        {
            failure = Some(e);
            // Stop the rest: dropping the receiver ends the generator too.
            workers.abort_all();
        }
    }
    let wall = started.elapsed();
    bar.finish_and_clear();
    drop(rx);
    let sent = generator.join().map_err(|_| anyhow::anyhow!("the generator thread panicked"))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let sent = sent?;
    let peak_kib = proc_status_kib("VmHWM");
    let heap_peak_kib = heap_peak.finish();

    let mut checks = Vec::new();
    for (slot, &contact) in mix.tracked.iter().enumerate() {
        let id = ids[contact];
        let view = store.profile(id).await.with_context(|| format!("reading the profile of {id}"))?;
        checks.push((id, expected[slot].load(Ordering::Relaxed), view.order_count));
    }
    let stages = stage_counts(&store, &ids).await?;
    let mut tally = std::mem::take(&mut *tally.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    tally.retries = retries.load(Ordering::Relaxed);
    Ok(Results {
        contacts: ids.len(),
        seed_time,
        wall,
        tally,
        rss_after_seed_kib,
        peak_kib,
        heap_peak_kib,
        peak_reset,
        checks,
        stages,
        sqlite: target.is_sqlite(),
        sent,
    })
}

async fn seed_contacts(store: &Store, n: usize) -> anyhow::Result<Vec<Uuid>> {
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("Creating contacts {bar:40.cyan/blue} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let from = ids.len();
        let to = (from + SEED_BATCH).min(n);
        let drafts = (from..to).map(contact_draft).collect();
        let created = store.create_contacts(drafts).await.with_context(|| format!("creating contacts {from}..{to}"))?;
        ids.extend(created);
        bar.set_position(ids.len() as u64);
    }
    bar.finish_and_clear();
    Ok(ids)
}

const FIRST_NAMES: &[&str] =
    &["Ada", "Bruno", "Chloé", "Dmitri", "Elif", "Farah", "Gustavo", "Hana", "Ivan", "Jia", "Kwame", "Lena"];
const LAST_NAMES: &[&str] = &["Andersen", "Bianchi", "Castillo", "Dubois", "Eriksson", "Fischer", "García", "Haddad", "Jensen"];

fn contact_draft(i: usize) -> ContactDraft {
    ContactDraft {
        first_name: Some(FIRST_NAMES[i % FIRST_NAMES.len()].into()),
        last_name: Some(LAST_NAMES[i / FIRST_NAMES.len() % LAST_NAMES.len()].into()),
        emails: Some(vec![EmailDraft { address: email(i), ..Default::default() }]),
        source: Some("bench".into()),
        ..Default::default()
    }
}

fn email(i: usize) -> String {
    format!("ingest{i}@bench.example")
}

/// Reads an even sample of profiles and counts their stages, most common first.
async fn stage_counts(store: &Store, ids: &[Uuid]) -> anyhow::Result<Vec<(LifecycleStage, usize)>> {
    let step = ids.len().div_ceil(STAGE_SAMPLE).max(1);
    let mut counts = std::collections::HashMap::new();
    for &id in ids.iter().step_by(step) {
        let view = store.profile(id).await.with_context(|| format!("reading the profile of {id}"))?;
        *counts.entry(view.lifecycle_stage).or_insert(0usize) += 1;
    }
    let mut out: Vec<(LifecycleStage, usize)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
    Ok(out)
}

/// A value from /proc/self/status, in KiB (Linux only).
fn proc_status_kib(key: &str) -> Option<u64> {
    status_kib(&std::fs::read_to_string("/proc/self/status").ok()?, key)
}

/// `key`'s value in the text of /proc/self/status, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..].split_whitespace().next()?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

// ---------------------------------------------------------------------------------------------
// The events
// ---------------------------------------------------------------------------------------------

struct ProductInfo {
    /// `{"sku", "name", "category"}`, cloned into payloads.
    mention: Map<String, Value>,
    category: &'static str,
    cents: i64,
}

/// The catalogue and who the events are about.
struct Mix {
    products: Vec<ProductInfo>,
    contacts: usize,
    /// Spreads popularity ranks over contact indexes.
    stride: usize,
    /// Contact indexes whose orders are counted.
    tracked: Vec<usize>,
}

const CATEGORIES: &[(&str, &[&str])] = &[
    ("running-shoes", &["Trail runner", "Road racer", "Daily trainer"]),
    ("hiking-boots", &["Mid hiker", "Alpine boot", "Approach shoe"]),
    ("sneakers", &["Court classic", "Canvas low", "Retro runner"]),
    ("sandals", &["Sport sandal", "Slide", "Leather sandal"]),
    ("jackets", &["Rain shell", "Down jacket", "Fleece"]),
    ("t-shirts", &["Merino tee", "Cotton tee", "Tech tee"]),
    ("shorts", &["Trail short", "Board short", "Run short"]),
    ("trousers", &["Hiking pant", "Chino", "Jogger"]),
    ("socks", &["Wool sock", "Run sock", "Liner sock"]),
    ("hats", &["Sun hat", "Beanie", "Cap"]),
    ("backpacks", &["Daypack 20L", "Trek pack 45L", "Commuter pack"]),
    ("tents", &["2-person tent", "Ultralight tent", "Family tent"]),
    ("sleeping-bags", &["Summer bag", "Three-season bag", "Down bag"]),
    ("stoves", &["Canister stove", "Liquid-fuel stove", "Stove set"]),
    ("headlamps", &["Headlamp 300", "Headlamp 600", "Running lamp"]),
    ("watches", &["GPS watch", "Altimeter watch", "Fitness band"]),
    ("bikes", &["Gravel bike", "City bike", "E-bike"]),
    ("bike-parts", &["Chain", "Brake pads", "Tyre"]),
    ("helmets", &["Road helmet", "MTB helmet", "Kids helmet"]),
    ("climbing", &["Harness", "Chalk bag", "Quickdraw set"]),
    ("ski", &["All-mountain ski", "Touring ski", "Ski poles"]),
    ("snowboard", &["Freestyle board", "Bindings", "Board bag"]),
    ("swim", &["Swim goggles", "Wetsuit", "Swim cap"]),
    ("yoga", &["Yoga mat", "Yoga block", "Strap"]),
    ("fitness", &["Kettlebell", "Resistance band", "Foam roller"]),
    ("nutrition", &["Energy bar", "Electrolyte mix", "Protein powder"]),
    ("bottles", &["Steel bottle", "Soft flask", "Filter bottle"]),
    ("sunglasses", &["Sport sunglasses", "Glacier glasses", "Polarised shades"]),
    ("gloves", &["Liner glove", "Ski glove", "Bike glove"]),
    ("kids", &["Kids jacket", "Kids boot", "Kids pack"]),
    ("fishing", &["Spinning rod", "Reel", "Tackle box"]),
    ("kayak", &["Touring kayak", "Paddle", "Dry bag"]),
    ("camp-furniture", &["Camp chair", "Camp table", "Hammock"]),
    ("navigation", &["Compass", "Handheld GPS", "Map case"]),
    ("first-aid", &["First-aid kit", "Blister kit", "Emergency blanket"]),
    ("books", &["Trail guide", "Climbing guide", "Cookbook"]),
    ("gift-cards", &["Gift card 25", "Gift card 50", "Gift card 100"]),
    ("repair", &["Repair tape", "Seam sealer", "Wax"]),
    ("dog-gear", &["Dog harness", "Dog jacket", "Dog bowl"]),
    ("electronics", &["Power bank", "Action camera", "Solar panel"]),
];

const BRANDS: &[&str] = &["Nordkap", "Ridgeline", "Fjell", "Cascade", "Bora", "Tundra", "Sierra", "Kestrel", "Ostra", "Vela"];

impl Mix {
    fn new(contacts: usize, seed: u64) -> Mix {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5052_4f44);
        let products = (0..PRODUCTS)
            .map(|i| {
                let (category, kinds) = CATEGORIES[i % CATEGORIES.len()];
                let name = format!(
                    "{} {} {}",
                    BRANDS[rng.usize(..BRANDS.len())],
                    kinds[rng.usize(..kinds.len())],
                    i / CATEGORIES.len() + 1
                );
                // Prices from 5 to 800 euros, mostly low, ending in .00, .50, .90 or .99.
                let euros = (5.0 + 795.0 * rng.f64().powi(3)) as i64;
                let cents = euros * 100 + [0, 50, 90, 99][rng.usize(..4)];
                let mut mention = Map::new();
                mention.insert("sku".into(), json!(format!("SKU-{i:05}")));
                mention.insert("name".into(), json!(name));
                mention.insert("category".into(), json!(category));
                ProductInfo { mention, category, cents }
            })
            .collect();
        let mut stride = (contacts as f64 * 0.618_033_988_7) as usize | 1;
        while gcd(stride, contacts) != 1 {
            stride += 2;
        }
        // Heavy and light contacts: the most active ones and a few at random.
        let mut tracked: Vec<usize> = [0usize, 1, 2, 10, 100, 1000].into_iter().filter(|&r| r < contacts).collect();
        while tracked.len() < TRACKED.min(contacts) {
            let rank = rng.usize(..contacts);
            if !tracked.contains(&rank) {
                tracked.push(rank);
            }
        }
        let tracked = tracked.into_iter().map(|rank| rank * stride % contacts).collect();
        Mix { products, contacts, stride, tracked }
    }

    /// A contact, popular ones far more often: about 12% of events are about the most active 1%.
    fn contact(&self, rng: &mut fastrand::Rng) -> usize {
        let rank = ((self.contacts as f64 * rng.f64().powf(2.2)) as usize).min(self.contacts - 1);
        rank * self.stride % self.contacts
    }

    /// A product, popular ones more often.
    fn product(&self, rng: &mut fastrand::Rng) -> &ProductInfo {
        &self.products[((PRODUCTS as f64 * rng.f64().powi(2)) as usize).min(PRODUCTS - 1)]
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// What kind of event comes next, per 10,000.
const KINDS: &[(&str, u32)] = &[
    ("page.viewed", 3500),
    ("product.viewed", 2500),
    ("email.sent", 1000),
    ("email.opened", 800),
    ("email.clicked", 300),
    ("order.completed", 500),
    ("order.refunded", 100),
    ("visit.checked_in", 500),
    ("cart.abandoned", 200),
    ("call.logged", 150),
    ("chat.message", 150),
    ("form.submitted", 90),
    ("feedback.given", 80),
    ("support.requested", 50),
    ("sms.sent", 40),
    ("sms.received", 20),
    ("social.mentioned", 20),
];

fn kind(rng: &mut fastrand::Rng) -> &'static str {
    let mut x = rng.u32(..10_000);
    for (k, w) in KINDS {
        if x < *w {
            return k;
        }
        x -= w;
    }
    KINDS[0].0
}

/// Builds `total` events in batches of `batch` and sends them down `tx` until done or until the
/// receiving side is gone. Counts the distinct orders sent for each tracked contact in
/// `expected`. Returns how many events were sent.
#[allow(clippy::too_many_arguments)]
fn generate(
    mix: &Mix,
    ids: &[Uuid],
    expected: &[AtomicI64],
    total: u64,
    batch: usize,
    seed: u64,
    now: Timestamp,
    tx: tokio::sync::mpsc::Sender<Vec<Value>>,
) -> anyhow::Result<u64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let year = chrono::Duration::days(365);
    let start = now - year;
    let span_secs = year.num_seconds() as f64;
    // Recent events with ids, some of which are delivered again.
    let mut recent: Vec<Value> = Vec::with_capacity(256);
    // Recent orders (id, total in cents) that refunds refer to.
    let mut orders: Vec<(String, i64)> = Vec::with_capacity(256);
    let mut sent = 0u64;
    let mut k = 0u64;
    while sent < total {
        let n = batch.min((total - sent) as usize);
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            if !recent.is_empty() && rng.u32(..1000) < REDELIVERED_PER_MILLE {
                events.push(recent[rng.usize(..recent.len())].clone());
                continue;
            }
            k += 1;
            let contact = mix.contact(&mut rng);
            // Mostly in order; one in twenty arrives up to a week late.
            let mut at = start + chrono::Duration::seconds((span_secs * k as f64 / total as f64) as i64);
            at += chrono::Duration::seconds(rng.i64(-3600..3600));
            if rng.u32(..20) == 0 {
                at -= chrono::Duration::seconds(rng.i64(0..7 * 86_400));
            }
            let at = at.min(now);
            let kind = kind(&mut rng);
            let (channel, payload) = payload(kind, mix, &mut rng, &orders);
            let reference =
                if kind.starts_with("email.") { json!({"email": email(contact)}) } else { json!({"id": ids[contact]}) };
            let mut event = Map::new();
            let id = match kind {
                "order.completed" => {
                    let id = format!("order-{seed}-{k}");
                    if let Some(slot) = mix.tracked.iter().position(|&t| t == contact) {
                        expected[slot].fetch_add(1, Ordering::Relaxed);
                    }
                    let cents = payload.get("total").and_then(Value::as_f64).map_or(0, |t| (t * 100.0).round() as i64);
                    if orders.len() == 256 {
                        orders.swap_remove(rng.usize(..256));
                    }
                    orders.push((id.clone(), cents));
                    Some(id)
                }
                _ if rng.bool() => Some(format!("ev-{seed}-{k}")),
                _ => None,
            };
            let has_id = id.is_some();
            if let Some(id) = id {
                event.insert("id".into(), Value::String(id));
            }
            event.insert("type".into(), Value::String(kind.into()));
            event.insert("contact".into(), reference);
            event.insert("occurred_at".into(), Value::String(at.to_rfc3339_opts(SecondsFormat::Secs, true)));
            event.insert("channel".into(), Value::String(channel.into()));
            event.insert("payload".into(), Value::Object(payload));
            let event = Value::Object(event);
            if has_id && rng.u32(..100) == 0 {
                if recent.len() == 256 {
                    recent.swap_remove(rng.usize(..256));
                }
                recent.push(event.clone());
            }
            events.push(event);
        }
        sent += events.len() as u64;
        if tx.blocking_send(events).is_err() {
            break;
        }
    }
    Ok(sent)
}

fn payload(kind: &str, mix: &Mix, rng: &mut fastrand::Rng, orders: &[(String, i64)]) -> (&'static str, Map<String, Value>) {
    let mut p = Map::new();
    let channel = match kind {
        "page.viewed" => {
            if rng.u32(..10) < 6 {
                let category = mix.product(rng).category;
                p.insert("url".into(), Value::String(format!("https://shop.example/c/{category}")));
                p.insert("category".into(), Value::String(category.into()));
            } else {
                let page = ["/", "/sale", "/stores", "/blog/trail-season", "/account", "/help/returns"][rng.usize(..6)];
                p.insert("url".into(), Value::String(format!("https://shop.example{page}")));
            }
            if rng.u32(..5) == 0 { "app" } else { "web" }
        }
        "product.viewed" => {
            p = mix.product(rng).mention.clone();
            if rng.u32(..5) == 0 { "app" } else { "web" }
        }
        "email.sent" | "email.opened" => {
            p.insert("campaign".into(), json!(format!("weekly-{:02}", rng.u32(1..53))));
            if kind == "email.sent" {
                p.insert("subject".into(), json!("New in this week"));
            }
            "email"
        }
        "email.clicked" => {
            p = mix.product(rng).mention.clone();
            p.remove("name");
            p.insert("url".into(), json!("https://shop.example/p?utm_source=newsletter"));
            "email"
        }
        "order.completed" => {
            let lines = 1 + rng.usize(..3);
            let mut items = Vec::with_capacity(lines);
            let mut total = 0;
            for _ in 0..lines {
                let product = mix.product(rng);
                let quantity = if rng.u32(..5) == 0 { 2 } else { 1 };
                total += product.cents * quantity;
                let mut item = product.mention.clone();
                item.insert("quantity".into(), json!(quantity));
                item.insert("price".into(), json!(product.cents as f64 / 100.0));
                items.push(Value::Object(item));
            }
            p.insert("currency".into(), json!("EUR"));
            p.insert("total".into(), json!(total as f64 / 100.0));
            p.insert("items".into(), Value::Array(items));
            match rng.u32(..10) {
                0..=5 => {
                    p.insert("store".into(), json!("web"));
                    "web"
                }
                6 => {
                    p.insert("store".into(), json!("app"));
                    "app"
                }
                _ => {
                    p.insert("store".into(), json!(format!("store-{}", rng.u32(1..13))));
                    "store"
                }
            }
        }
        "order.refunded" => {
            let (order, cents) = if orders.is_empty() {
                (None, 1999)
            } else {
                let (id, cents) = &orders[rng.usize(..orders.len())];
                (Some(id.clone()), *cents)
            };
            p.insert("currency".into(), json!("EUR"));
            p.insert("total".into(), json!(cents.max(1) as f64 / 100.0));
            if let Some(order) = order {
                p.insert("order_id".into(), json!(order));
            }
            "web"
        }
        "visit.checked_in" => {
            p.insert("location".into(), json!(format!("store-{}", rng.u32(1..13))));
            "store"
        }
        "cart.abandoned" => {
            let items: Vec<Value> = (0..1 + rng.usize(..3)).map(|_| Value::Object(mix.product(rng).mention.clone())).collect();
            p.insert("items".into(), Value::Array(items));
            "web"
        }
        "call.logged" => {
            let direction = if rng.bool() { "inbound" } else { "outbound" };
            let outcome = ["connected", "connected", "connected", "voicemail", "no_answer", "busy"][rng.usize(..6)];
            p.insert("direction".into(), json!(direction));
            p.insert("duration_seconds".into(), json!(rng.u32(5..900)));
            p.insert("outcome".into(), json!(outcome));
            "phone"
        }
        "chat.message" => {
            p.insert("direction".into(), json!(if rng.bool() { "inbound" } else { "outbound" }));
            p.insert("text".into(), json!("Do you have this in size 42?"));
            "chat"
        }
        "form.submitted" => {
            p.insert("form".into(), json!(["newsletter", "contact", "event-signup"][rng.usize(..3)]));
            "web"
        }
        "feedback.given" => {
            p.insert("score".into(), json!(rng.u32(0..11)));
            if rng.bool() {
                p.insert("comment".into(), json!("Fast delivery, good fit."));
            }
            "email"
        }
        "support.requested" => {
            p.insert("subject".into(), json!("Where is my order?"));
            "email"
        }
        "sms.sent" | "sms.received" => {
            p.insert("text".into(), json!("Your order is ready for pickup."));
            "sms"
        }
        _ => {
            p.insert("sentiment".into(), json!(["positive", "positive", "neutral", "negative"][rng.usize(..4)]));
            p.insert("network".into(), json!("instagram"));
            "social"
        }
    };
    (channel, p)
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

impl Results {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.wall.as_secs_f64()
    }

    /// (share of the run reached, events/s over the last tenth, memory) at each tenth.
    fn deciles(&self, total: u64) -> Vec<(u64, f64, Memory)> {
        let marks = &self.tally.marks;
        let mut out = Vec::new();
        let mut prev = marks.first().copied().unwrap_or(Mark { events: 0, at: Duration::ZERO, memory: Memory::default() });
        for tenth in 1..=10u64 {
            let Some(m) = marks.iter().find(|m| m.events * 10 >= total * tenth) else { continue };
            if m.events <= prev.events {
                continue;
            }
            let rate = (m.events - prev.events) as f64 / (m.at - prev.at).as_secs_f64().max(1e-9);
            out.push((tenth * 10, rate, m.memory));
            prev = *m;
        }
        out
    }

    fn print(&self, args: &IngestArgs, target: &Target) {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let t = &self.tally;
        let deciles = self.deciles(args.events);
        let first = deciles.first().map(|d| d.2).unwrap_or_default();
        let last = deciles.last().map(|d| d.2).unwrap_or_default();
        println!();
        println!("| | |");
        println!("|---|---|");
        println!("| machine | {cores} cores{} |", cpu_model().map(|m| format!(" ({m})")).unwrap_or_default());
        println!("| database | {} |", target.describe());
        println!(
            "| contacts | {} (created in {:.1} s, not timed) |",
            thousands(self.contacts as u64),
            self.seed_time.as_secs_f64()
        );
        println!(
            "| events | {} sent: {} accepted, {} duplicate (redelivered on purpose), {} rejected |",
            thousands(self.sent),
            thousands(t.accepted),
            thousands(t.duplicate),
            thousands(t.rejected)
        );
        println!("| batches | {} events, {} in flight |", args.batch, args.in_flight);
        if !self.sqlite {
            println!("| batches sent again after a transaction conflict | {} |", thousands(t.retries));
        }
        println!("| wall time | {:.1} s |", self.wall.as_secs_f64());
        println!("| **sustained** | **{} events/s** |", thousands(self.rate() as u64));
        if let Some(slowest) = deciles.iter().map(|d| d.1).reduce(f64::min) {
            println!("| slowest tenth | {} events/s |", thousands(slowest as u64));
        }
        println!("| RSS after creating contacts | {} |", mib(self.rss_after_seed_kib));
        println!("| heap (RssAnon) at 10% → 100% | {} → {} |", mib(first.anon_kib), mib(last.anon_kib));
        println!("| peak heap (sampled every 100 ms) | {} |", mib(self.heap_peak_kib));
        println!(
            "| RSS at 10% → 100% | {} → {} (of which mapped database pages {} → {}) |",
            mib(first.rss_kib),
            mib(last.rss_kib),
            mib(first.file_kib),
            mib(last.file_kib)
        );
        println!(
            "| peak RSS (VmHWM) | {}{} |",
            mib(self.peak_kib),
            if self.peak_reset { ", during the ingest" } else { ", whole process" }
        );
        let stages: Vec<String> = self.stages.iter().map(|(s, n)| format!("{} {n}", s.as_str())).collect();
        let sampled: usize = self.stages.iter().map(|(_, n)| n).sum();
        println!("| stages of {sampled} sampled contacts | {} |", stages.join(", "));
        println!();
        println!("| run | events/s | heap | RSS | mapped database pages |");
        println!("|---:|---:|---:|---:|---:|");
        for (pct, rate, m) in &deciles {
            println!("| {pct}% | {} | {} | {} | {} |", thousands(*rate as u64), mib(m.anon_kib), mib(m.rss_kib), mib(m.file_kib));
        }
        println!();
        for (id, sent, seen) in &self.checks {
            println!(
                "profile check {id}: {sent} orders sent, order_count {seen}{}",
                if sent == seen { "" } else { "  MISMATCH" }
            );
        }
        if !t.first_rejections.is_empty() {
            println!("first rejections:");
            for r in &t.first_rejections {
                println!("  {r}");
            }
        }
        println!();
        if self.sqlite {
            println!(
                "sustained {} events/s (target >= {} on SQLite): {}",
                thousands(self.rate() as u64),
                thousands(TARGET_EVENTS_PER_SECOND as u64),
                if self.rate() >= TARGET_EVENTS_PER_SECOND { "PASS" } else { "MISS" }
            );
        }
    }

    fn verdict(&self) -> anyhow::Result<()> {
        let wrong: Vec<String> = self
            .checks
            .iter()
            .filter(|(_, sent, seen)| sent != seen)
            .map(|(id, sent, seen)| format!("{id}: {sent} orders sent, profile says {seen}"))
            .collect();
        if !wrong.is_empty() {
            bail!("profiles do not match the events sent:\n{}", wrong.join("\n"));
        }
        if self.tally.rejected > 0 {
            bail!("the store rejected {} generated events (see above)", self.tally.rejected);
        }
        Ok(())
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_core::PhoneRegion;
    use rapport_core::event::parse_event;

    #[test]
    fn generated_events_are_valid_and_orders_are_counted() {
        let mix = Mix::new(1000, 3);
        let ids: Vec<Uuid> = (0..1000).map(|i| Uuid::from_u128(i + 1)).collect();
        let expected: Vec<AtomicI64> = (0..TRACKED).map(|_| AtomicI64::new(0)).collect();
        let (tx, mut rx) = tokio::sync::mpsc::channel(100);
        let now = chrono::Utc::now();
        let sent = generate(&mix, &ids, &expected, 20_000, 1000, 3, now, tx).unwrap();
        assert_eq!(sent, 20_000);
        let mut orders = vec![std::collections::HashSet::new(); TRACKED];
        let mut kinds = std::collections::HashMap::new();
        let mut n = 0;
        while let Ok(batch) = rx.try_recv() {
            for raw in batch {
                n += 1;
                let e = parse_event(raw.clone(), PhoneRegion::default(), now).unwrap_or_else(|err| panic!("{raw}: {err}"));
                *kinds.entry(e.kind.clone()).or_insert(0) += 1;
                if e.kind == "order.completed"
                    && let rapport_core::event::ContactRef::Id(id) = e.contact
                    && let Some(slot) = mix.tracked.iter().position(|&t| ids[t] == id)
                {
                    orders[slot].insert(e.source_id.clone().unwrap());
                }
            }
        }
        assert_eq!(n, 20_000);
        for (slot, set) in orders.iter().enumerate() {
            assert_eq!(set.len() as i64, expected[slot].load(Ordering::Relaxed));
        }
        assert!(expected[0].load(Ordering::Relaxed) > 5, "the most active contact orders often");
        for (kind, _) in KINDS {
            assert!(kinds.contains_key(*kind), "no {kind}");
        }
    }

    #[test]
    fn proc_status_is_read() {
        if Path::new("/proc/self/status").exists() {
            assert!(proc_status_kib("VmRSS").unwrap() > 0);
            assert!(proc_status_kib("VmHWM").unwrap() > 0);
            let m = Memory::now();
            assert!(m.anon_kib.unwrap() > 0 && m.file_kib.is_some());
            assert!(m.anon_kib.unwrap() + m.file_kib.unwrap() <= m.rss_kib.unwrap());
            let peak = HeapPeak::start();
            std::thread::sleep(Duration::from_millis(150));
            assert!(peak.finish().unwrap() > 0, "the sampler saw the heap");
        }
    }

    #[test]
    fn status_lines_are_matched_by_their_whole_key() {
        let status = "Name:\trapport\nRssAnonymous:\t 9 kB\nRssAnon:\t  204800 kB\nRssFile:\t   51200 kB\n";
        assert_eq!(status_kib(status, "RssAnon"), Some(204_800));
        assert_eq!(status_kib(status, "RssFile"), Some(51_200));
        assert_eq!(status_kib(status, "VmRSS"), None);
    }
}
