//! `rapport bench automation`: the automation engine on a large dataset — switching a birthday
//! workflow on for every contact, the daily sweep of date triggers, and how soon an ingested
//! event starts its workflow run while events keep arriving — on SQLite and PostgreSQL.
//!
//! The contacts (birthdays, time zones, owners) come from `rapport bench segments`'s set-based
//! generator, with one event per contact on average; everything measured goes through the
//! store's own API (`set_workflow_enabled`, `automation_until_idle`, `ingest`), the calls the
//! server makes. See docs/benchmarks.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{NaiveTime, SecondsFormat};
use rapport_core::{Clock, ManualClock, SystemClock, Timestamp};
use rapport_store::automation::PassReport;
use rapport_store::value::Value;
use rapport_store::{Created, DatabaseUrl, ItemStatus, Store, StoreOptions};
use serde_json::json;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::bench_segments::{self, CATEGORIES, Dataset, SKUS, Target, fmt_duration};
use crate::demo::thousands;

/// Targets from the automation issue.
const TARGET_SWEEP: Duration = Duration::from_secs(5);
const TARGET_P99_MS: f64 = 100.0;

/// Events per contact in the generated dataset: enough history for a realistic events table,
/// little enough to generate quickly (`bench segments` measures the 20-per-contact size).
const EVENTS_PER_CONTACT: u64 = 1;
/// Where the dataset lives, by size (so that kept datasets of different sizes stay apart).
const SQLITE_FILE: &str = "rapport-bench-automation";
const PG_SCHEMA: &str = "bench_automation";
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Passes allowed to go idle; scheduling 1M contacts takes 2,000 (500 per pass).
const MAX_PASSES: usize = 1_000_000;
/// What the server's worker allows per wake-up (crates/web/src/ops.rs).
const WORKER_PASSES: usize = 50;
/// How often the server's worker looks for due work when nothing wakes it.
const WORKER_TICK: Duration = Duration::from_secs(1);
/// Events for measuring ingest and the engine each alone, before the paced run.
const CAPACITY_EVENTS: u64 = 20_000;

const BIRTHDAY: &str = "Birthday card";
const VIEWED: &str = "Viewed, not bought";

/// `rapport bench automation --help`.
pub const LONG_ABOUT: &str = "Measures the automation engine on a large dataset.\n\n\
The dataset (--contacts contacts, default 1,000,000, with about one event each) is generated inside the database \
by the generator of `rapport bench segments`: birthdays for three in four contacts, spread over the year, a mix of \
time zones (four in ten have none and use UTC), and owners for 84%. Two workflows are created: a birthday workflow \
(date trigger at 09:00 local, one create_task step) and an event workflow (product.viewed, then a two-day wait \
for order.completed, then a task; exit on order.completed).\n\n\
Measured:\n\
  1. switching the birthday workflow on: the call (which marks every contact) and the automation passes that work \
out each contact's next birthday, in contacts/s;\n\
  2. the daily sweep: a manual clock moves a day at a time (--days days, each from 00:00 UTC to the next) and \
Store::automation_until_idle fires that day's birthdays, each run creating a task; target under 5 s per day;\n\
  3. event-trigger latency: with the system clock, product.viewed events about distinct contacts are ingested in \
batches of --batch at --rate events/s for --seconds from one task, while a worker task runs automation_until_idle \
whenever an ingest wakes it (as the server's worker does; on PostgreSQL also an event reactor task, as the server \
runs, draining the inbox beside it); a run counts as started once it is committed: the later \
of its started_at and the return of the ingest call that carried its event (on SQLite ingest starts the runs in its own \
transaction), compared with the event's received_at; target p99 under 100 ms.\n\n\
--database sqlite (the file rapport-bench-automation-N.db in the temporary directory), postgres (the schema \
bench_automation_N in --database-url, default postgres://postgres@127.0.0.1:5432/test) or both, N being --contacts. The dataset is removed afterwards; with --keep it is kept \
and reused by the next run of the same size (workflows, runs, tasks and events of earlier runs are removed first). \
Targets are reported, never asserted: the command fails only when it cannot run.";

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Database {
    Sqlite,
    Postgres,
    Both,
}

#[derive(clap::Args)]
pub struct AutomationArgs {
    /// Contacts in the dataset
    #[arg(long, default_value_t = 1_000_000)]
    contacts: u64,
    /// Backends to measure, one after the other
    #[arg(long, value_enum, default_value_t = Database::Sqlite)]
    database: Database,
    /// Keep the dataset afterwards, and reuse a kept one of the same size instead of generating it
    #[arg(long)]
    keep: bool,
    /// Days swept by the daily date-trigger sweep
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Events per second ingested while latency is measured
    #[arg(long, default_value_t = 6000)]
    rate: u32,
    /// Seconds of paced ingest while latency is measured
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Events per ingest call while latency is measured
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

/// Runs the benchmark. `database_url` is the global `--database-url` flag: the PostgreSQL
/// server to use, when given.
pub async fn run(args: AutomationArgs, database_url: Option<String>) -> anyhow::Result<()> {
    if args.contacts < 1000 {
        bail!("--contacts must be at least 1000");
    }
    if args.days == 0 || args.rate == 0 || args.seconds == 0 {
        bail!("--days, --rate and --seconds must be at least 1");
    }
    if !(1..=rapport_core::event::MAX_BATCH).contains(&args.batch) {
        bail!("--batch must be between 1 and {}", rapport_core::event::MAX_BATCH);
    }
    let pg_url = match database_url.as_deref().map(DatabaseUrl::parse).transpose().map_err(anyhow::Error::msg)? {
        None => DEFAULT_PG_URL.to_string(),
        Some(DatabaseUrl::Postgres(url)) => url,
        Some(DatabaseUrl::Sqlite(_)) => {
            bail!("--database-url names the PostgreSQL server here; choose the backends with --database")
        }
    };
    let mut targets = Vec::new();
    if args.database != Database::Postgres {
        targets.push(Target::Sqlite(std::env::temp_dir().join(format!("{SQLITE_FILE}-{}.db", args.contacts))));
    }
    if args.database != Database::Sqlite {
        targets.push(Target::Postgres { url: pg_url, schema: format!("{PG_SCHEMA}_{}", args.contacts) });
    }
    let mut results = Vec::new();
    for target in &targets {
        eprintln!("Database: {}", target.describe());
        let outcome = bench(&args, target).await;
        if args.keep {
            eprintln!("The dataset is kept in {} (--keep).", target.describe());
        } else {
            target.remove().await;
        }
        let r = outcome?;
        // Printed as each backend finishes, so a later failure does not lose the figures.
        r.print(&args, target);
        results.push(r);
    }
    if results.len() > 1 {
        println!();
        println!("| | {} |", targets.iter().map(short_name).collect::<Vec<_>>().join(" | "));
        println!("|---|{}", "---:|".repeat(results.len()));
        let row = |label: &str, f: &dyn Fn(&Results) -> String| {
            println!("| {label} | {} |", results.iter().map(f).collect::<Vec<_>>().join(" | "));
        };
        row("scheduling on enable", &|r| format!("{} contacts/s", thousands(r.enable.per_second() as u64)));
        row("daily sweep, slowest day", &|r| fmt_duration(r.slowest_day()));
        row("event → run started, p99", &|r| show_ms(r.latency.started.quantile(0.99)));
        row("ingest rate reached", &|r| format!("{} events/s", thousands(r.latency.rate() as u64)));
    }
    Ok(())
}

fn short_name(t: &Target) -> &'static str {
    match t {
        Target::Sqlite(_) => "SQLite",
        Target::Postgres { .. } => "PostgreSQL",
    }
}

// ---------------------------------------------------------------------------------------------
// The dataset
// ---------------------------------------------------------------------------------------------

/// Opens the dataset, generating it unless `--keep` finds a complete one of this size.
async fn prepare(target: &Target, contacts: u64, keep: bool) -> anyhow::Result<Dataset> {
    let existing = match target {
        Target::Sqlite(path) => path.exists(),
        Target::Postgres { url, schema } => {
            let (exists, ours) = bench_segments::pg_schema_state(url, schema).await?;
            if exists && !ours {
                bail!("the schema {schema} exists and holds no generated dataset; drop it or use another database");
            }
            exists
        }
    };
    if existing {
        let store = target.open().await?;
        match bench_segments::read_marker(&store).await? {
            None => bail!("{} exists and holds no generated dataset; it was left as it was", target.describe()),
            Some(m) if keep && m.complete && m.contacts == contacts => {
                eprintln!("Reusing the dataset generated {} ago.", bench_segments::age(m.generated_at));
                return Ok(Dataset::from_marker(m, false));
            }
            Some(_) => {
                drop(store);
                target.remove().await;
            }
        }
    }
    if let Target::Postgres { url, schema } = target {
        bench_segments::pg_run(url, None, format!("CREATE SCHEMA {schema}")).await?;
    }
    let store = target.open().await?;
    bench_segments::generate(&store, target, contacts, contacts * EVENTS_PER_CONTACT).await
}

async fn open_with(target: &Target, clock: Arc<dyn Clock>) -> anyhow::Result<Store> {
    let (url, schema) = match target {
        Target::Sqlite(path) => (DatabaseUrl::Sqlite(path.clone()), None),
        Target::Postgres { url, schema } => (DatabaseUrl::Postgres(url.clone()), Some(schema.clone())),
    };
    let shown = url.redacted();
    let options = StoreOptions { clock, pg_schema: schema, ..StoreOptions::default() };
    tokio::task::spawn_blocking(move || Store::open(&url, options))
        .await?
        .with_context(|| format!("cannot open the benchmark database {shown}"))
}

/// Removes what earlier runs on a kept dataset left: workflows (with their schedules, runs and
/// listens), the tasks and system events they made, the events ingested, the queues.
async fn reset(store: &Store) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = store.read(|tx| tx.query("SELECT id FROM workflows", &[])?.iter().map(|r| r.uuid(0)).collect()).await?;
    if ids.is_empty() {
        return Ok(());
    }
    eprintln!("Removing the workflows, runs, tasks and events of an earlier run…");
    store
        .write(|tx| {
            tx.execute("DELETE FROM tasks WHERE workflow_id IS NOT NULL", &[])?;
            tx.execute("DELETE FROM events WHERE type IN ('product.viewed', 'task.created', 'workflow.action')", &[])?;
            tx.execute("DELETE FROM automation_inbox", &[])?;
            tx.execute("DELETE FROM automation_dirty", &[])
        })
        .await?;
    for id in ids {
        store.delete_workflow(id).await?;
    }
    Ok(())
}

/// PostgreSQL plans with the statistics a table had when it was last analyzed, and leaves
/// deleted and updated rows in place until they are vacuumed. Without autovacuum (it is off on
/// the benchmark machine) the automation tables would be planned as the empty tables they were
/// when the dataset was generated, and would fill with dead rows: enabling the birthday workflow
/// slowed down quadratically and a second run's sweep took 4× as long. The benchmark then runs
/// `VACUUM (ANALYZE)` where autovacuum would have: during scheduling, after removing an earlier
/// run's data and before each measurement. Its time is included in the figures.
struct Autovacuum {
    /// The server and schema, when the benchmark stands in for autovacuum.
    standing_in: Option<(String, String)>,
    runs: u32,
    took: Duration,
}

impl Autovacuum {
    async fn new(store: &Store, target: &Target) -> anyhow::Result<Self> {
        let standing_in = match target {
            Target::Postgres { url, schema }
                if store.read(|tx| tx.query_one("SHOW autovacuum", &[])?.string(0)).await? == "off" =>
            {
                Some((url.clone(), schema.clone()))
            }
            _ => None,
        };
        Ok(Self { standing_in, runs: 0, took: Duration::ZERO })
    }

    async fn run(&mut self, tables: &[&str]) -> anyhow::Result<()> {
        let Some((url, schema)) = &self.standing_in else { return Ok(()) };
        let t = Instant::now();
        bench_segments::pg_run(url, Some(schema), format!("VACUUM (ANALYZE) {}", tables.join(", "))).await?;
        self.took += t.elapsed();
        self.runs += 1;
        Ok(())
    }
}

/// The tables the engine reads and writes.
const AUTOMATION_TABLES: &[&str] =
    &["workflow_schedules", "workflow_runs", "workflow_run_steps", "automation_inbox", "automation_dirty", "tasks"];
/// Scheduling passes between two vacuums of the schedules and marks (about 50,000 contacts).
const VACUUM_EVERY: u64 = 100;
/// How long the engine may take to work off what the paced ingest left; events still waiting
/// then count as not started.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

async fn create_workflow(store: &Store, doc: serde_json::Value) -> anyhow::Result<Uuid> {
    let name = doc["name"].as_str().unwrap_or_default().to_string();
    match store.create_workflow(doc, None, None).await.with_context(|| format!("creating the workflow \"{name}\""))? {
        Created::New(w) => Ok(w.id),
        Created::Replayed { .. } => bail!("unexpected replay creating \"{name}\""),
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

struct Enable {
    /// The `set_workflow_enabled` call, which marks every contact.
    call: Duration,
    /// The passes that worked out every marked contact's schedule.
    passes: Duration,
    pass_count: u64,
    contacts: u64,
    /// Schedules with a next birthday (contacts with a birthday).
    scheduled: i64,
}

impl Enable {
    fn per_second(&self) -> f64 {
        self.contacts as f64 / self.passes.as_secs_f64().max(1e-9)
    }
}

struct Day {
    date: chrono::NaiveDate,
    took: Duration,
    report: PassReport,
    tasks: i64,
}

/// Milliseconds, sorted.
#[derive(Default)]
struct Latencies(Vec<f64>);

impl Latencies {
    /// Nearest rank; `q` in 0..=1.
    fn quantile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    fn summary(&self, bold_p99: bool) -> String {
        let b = if bold_p99 { "**" } else { "" };
        format!(
            "p50 {}, p95 {}, {b}p99 {}{b}, max {}",
            show_ms(self.quantile(0.5)),
            show_ms(self.quantile(0.95)),
            show_ms(self.quantile(0.99)),
            show_ms(self.quantile(1.0))
        )
    }
}

#[derive(Default)]
struct Latency {
    sent: u64,
    accepted: u64,
    batches: u64,
    /// From the first ingest call to the end of the last.
    ingest_wall: Duration,
    /// Ingest calls that took longer than the pacing interval.
    late_batches: u64,
    /// Until every run had started, after the last ingest.
    drain: Duration,
    /// The engine had not started every run after `CATCH_UP_LIMIT`.
    gave_up: bool,
    /// Event received → run started and committed: the later of its `started_at` and the
    /// return of the ingest call that carried the event.
    started: Latencies,
    /// Event received → the run's first step (the wait) recorded.
    first_step: Latencies,
    /// The ingest call returned → run started, for runs the worker started: the engine's part
    /// of `started`.
    after_return: Latencies,
    /// Runs started in the ingest call's own transaction (SQLite).
    in_ingest: u64,
    /// Ingest calls, each a batch.
    calls: Latencies,
    /// Events with no run (the contact was already in one).
    without_run: u64,
    worker_rounds: u64,
    /// Runs the worker started.
    worker_runs: u64,
    worker_busy: Duration,
    worker_errors: u64,
    first_worker_error: Option<String>,
    retries: u64,
    /// Events ingested with the engine idle, then worked off by the engine alone.
    alone: u64,
    alone_ingest: Duration,
    alone_engine: Duration,
    alone_report: PassReport,
}

impl Latency {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.ingest_wall.as_secs_f64().max(1e-9)
    }
}

struct Results {
    autovacuum: Autovacuum,
    dataset: Dataset,
    with_birthday: i64,
    enable: Enable,
    days: Vec<Day>,
    latency: Latency,
}

impl Results {
    fn slowest_day(&self) -> Duration {
        self.days.iter().map(|d| d.took).max().unwrap_or_default()
    }
}

async fn bench(args: &AutomationArgs, target: &Target) -> anyhow::Result<Results> {
    let dataset = prepare(target, args.contacts, args.keep).await?;

    // Date triggers on a manual clock: midnight UTC today, moved a day at a time.
    let today = chrono::Utc::now().date_naive();
    let midnight = |d: chrono::NaiveDate| d.and_time(NaiveTime::MIN).and_utc();
    let clock = Arc::new(ManualClock::new(midnight(today)));
    let store = open_with(target, clock.clone()).await?;
    let mut stand_in = Autovacuum::new(&store, target).await?;
    reset(&store).await?;
    stand_in.run(&[AUTOMATION_TABLES, &["contacts", "events", "profiles", "profile_items", "products"]].concat()).await?;
    let with_birthday =
        store.read(|tx| tx.query_one("SELECT count(*) FROM contacts WHERE birthday_month IS NOT NULL", &[])?.i64(0)).await?;

    let birthday = create_workflow(
        &store,
        json!({"name": BIRTHDAY, "trigger": {"kind": "date", "field": "birthday", "at": "09:00"},
               "steps": [{"action": "create_task", "title": "Call {{first_name}} for their birthday"}]}),
    )
    .await?;
    let viewed = create_workflow(
        &store,
        json!({"name": VIEWED, "trigger": {"kind": "event", "type": "product.viewed"},
               "steps": [{"wait": "P2D", "until_event": "order.completed"},
                         {"action": "create_task", "title": "Follow up on {{event.name}} with {{first_name}}"}],
               "exit_when": ["order.completed"]}),
    )
    .await?;
    store.set_workflow_enabled(viewed, true).await?;

    eprintln!("Switching \"{BIRTHDAY}\" on for {} contacts…", thousands(args.contacts));
    let t = Instant::now();
    store.set_workflow_enabled(birthday, true).await?;
    let call = t.elapsed();
    let bar = indicatif::ProgressBar::new(args.contacts);
    bar.set_style(
        indicatif::ProgressStyle::with_template("Scheduling {bar:40.cyan/blue} {pos}/{len} contacts ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t = Instant::now();
    let (mut contacts, mut pass_count) = (0, 0);
    for _ in 0..MAX_PASSES {
        let r = store.automation_pass().await?;
        pass_count += 1;
        if r.is_idle() {
            break;
        }
        contacts += r.rescheduled;
        bar.set_position(contacts);
        if pass_count % VACUUM_EVERY == 0 {
            stand_in.run(&["workflow_schedules", "automation_dirty"]).await?;
        }
    }
    let passes = t.elapsed();
    bar.finish_and_clear();
    let scheduled = store
        .read(move |tx| {
            tx.query_one(
                "SELECT count(*) FROM workflow_schedules WHERE workflow_id = $1 AND next_at IS NOT NULL",
                &[birthday.into()],
            )?
            .i64(0)
        })
        .await?;
    let enable = Enable { call, passes, pass_count, contacts, scheduled };
    eprintln!(
        "Scheduled {} contacts in {} ({} contacts/s); {} have a next birthday.",
        thousands(contacts),
        fmt_duration(passes),
        thousands(enable.per_second() as u64),
        thousands(scheduled as u64)
    );

    stand_in.run(AUTOMATION_TABLES).await?;
    let mut days = Vec::new();
    for d in 1..=args.days {
        let date = today + chrono::Duration::days(i64::from(d - 1));
        clock.set(midnight(date + chrono::Duration::days(1)));
        let t = Instant::now();
        let report = store.automation_until_idle(MAX_PASSES).await?;
        let took = t.elapsed();
        let (from, to) = (midnight(date), midnight(date + chrono::Duration::days(1)));
        let tasks = store
            .read(move |tx| {
                tx.query_one(
                    "SELECT count(*) FROM tasks WHERE workflow_id = $1 AND created_at > $2 AND created_at <= $3",
                    &[birthday.into(), from.into(), to.into()],
                )?
                .i64(0)
            })
            .await?;
        eprintln!(
            "Swept {date}: {} birthdays fired, {} runs, {} tasks in {}.",
            thousands(report.fired),
            thousands(report.runs_started),
            thousands(tasks as u64),
            fmt_duration(took)
        );
        days.push(Day { date, took, report, tasks });
    }
    drop(store);

    // Every schedule is now past the last day swept, so nothing date-driven comes due while
    // the system clock (earlier) drives the latency phase.
    let store = open_with(target, Arc::new(SystemClock)).await?;
    stand_in.run(AUTOMATION_TABLES).await?;
    let latency = latency(args, &store, target, viewed).await?;
    Ok(Results { dataset, with_birthday, enable, days, latency, autovacuum: stand_in })
}

/// Paced ingest from this task, the engine in a worker task woken by each ingest.
async fn latency(args: &AutomationArgs, store: &Store, target: &Target, workflow: Uuid) -> anyhow::Result<Latency> {
    store.automation_until_idle(MAX_PASSES).await?;
    let total = u64::from(args.rate) * args.seconds;
    let alone = total.min(CAPACITY_EVENTS);
    let want = (total + alone).min(args.contacts) as i64;
    // Distinct contacts: a second view by someone already in the workflow starts no run.
    let ids: Vec<Uuid> = store
        .read(move |tx| {
            tx.query("SELECT id FROM contacts ORDER BY random() LIMIT $1", &[want.into()])?.iter().map(|r| r.uuid(0)).collect()
        })
        .await?;
    let run = chrono::Utc::now().timestamp_millis();
    let retries = AtomicU64::new(0);
    let postgres = matches!(target, Target::Postgres { .. });
    let retry = postgres;
    let mut rng = fastrand::Rng::with_seed(11);
    let mut out = Latency::default();

    // Each side alone first, on other contacts: ingest with the engine idle, then the engine
    // working off what ingest queued.
    eprintln!("Ingesting {} events with the engine idle, then running the engine alone…", thousands(alone));
    let t = Instant::now();
    let mut k = 0;
    while k < alone {
        let n = (args.batch as u64).min(alone - k);
        let now = store.now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let events = views(&mut rng, &ids, total + k, n, run, &now);
        crate::bench_ingest::ingest(store, events, retry, &retries).await?;
        k += n;
    }
    out.alone_ingest = t.elapsed();
    let t = Instant::now();
    out.alone_report = store.automation_until_idle(MAX_PASSES).await?;
    out.alone_engine = t.elapsed();
    out.alone = alone;
    let since_paced = store.now();

    let wake = Arc::new(Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (store, wake, stop) = (store.clone(), wake.clone(), stop.clone());
        tokio::spawn(async move {
            let mut out = Latency::default();
            let mut tick = tokio::time::interval(WORKER_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = wake.notified() => {}
                }
                if stop.load(Ordering::Relaxed) {
                    return out;
                }
                let t = Instant::now();
                match store.automation_until_idle(WORKER_PASSES).await {
                    Ok(r) => out.worker_runs += r.runs_started,
                    Err(e) => {
                        // As the server's worker: note it and try again on the next wake-up.
                        out.worker_errors += 1;
                        out.first_worker_error.get_or_insert_with(|| e.to_string());
                    }
                }
                out.worker_busy += t.elapsed();
                out.worker_rounds += 1;
            }
        })
    };

    // On PostgreSQL the server also runs an event reactor beside the worker (`ops::event_reactor`).
    let react_wake = Arc::new(Notify::new());
    let reactor = postgres.then(|| {
        let (store, wake, stop) = (store.clone(), react_wake.clone(), stop.clone());
        tokio::spawn(async move {
            let mut errors = 0u64;
            loop {
                wake.notified().await;
                if stop.load(Ordering::Relaxed) {
                    return errors;
                }
                if store.automation_react(WORKER_PASSES).await.is_err() {
                    errors += 1;
                }
            }
        })
    });

    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("Ingesting {bar:40.cyan/blue} {pos}/{len} events ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let period = Duration::from_secs_f64(args.batch as f64 / f64::from(args.rate));
    // When each batch's ingest call returned (its transaction committed), by batch.
    let mut returned: Vec<Timestamp> = Vec::new();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = started + period * out.batches as u32;
        tokio::time::sleep_until(due.into()).await;
        let n = (args.batch as u64).min(total - sent);
        let now = store.now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let events = views(&mut rng, &ids, sent, n, run, &now);
        let call = Instant::now();
        let report = crate::bench_ingest::ingest(store, events, retry, &retries).await?;
        wake.notify_one();
        react_wake.notify_one();
        out.calls.0.push(call.elapsed().as_secs_f64() * 1000.0);
        returned.push(chrono::Utc::now());
        if Instant::now() > due + period {
            out.late_batches += 1;
        }
        out.accepted += report.count(ItemStatus::Accepted) as u64;
        sent += n;
        out.batches += 1;
        bar.set_position(sent);
    }
    out.ingest_wall = started.elapsed();
    out.sent = sent;
    out.retries = retries.load(Ordering::Relaxed);
    bar.finish_and_clear();

    // Whatever the worker has not reached yet still counts, late.
    let t = Instant::now();
    loop {
        let pending = store.automation_pending().await?;
        if !pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        if t.elapsed() > CATCH_UP_LIMIT {
            out.gave_up = true;
            break;
        }
    }
    out.drain = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    wake.notify_one();
    let w = worker.await.context("the automation worker panicked")?;
    out.worker_rounds = w.worker_rounds;
    out.worker_runs = w.worker_runs;
    out.worker_busy = w.worker_busy;
    out.worker_errors = w.worker_errors;
    out.first_worker_error = w.first_worker_error;
    if let Some(r) = reactor {
        react_wake.notify_one();
        out.worker_errors += r.await.context("the event reactor panicked")?;
    }

    let (received, runs) = store
        .read(move |tx| {
            let received = tx
                .query(
                    "SELECT id, received_at, source_id FROM events WHERE type = 'product.viewed' AND received_at >= $1",
                    &[Value::Time(since_paced)],
                )?
                .iter()
                .map(|r| Ok((r.uuid(0)?, (r.time(1)?, r.opt_string(2)?))))
                .collect::<rapport_store::Result<HashMap<Uuid, (Timestamp, Option<String>)>>>()?;
            let runs = tx
                .query(
                    "SELECT r.occurrence, r.started_at, (SELECT min(s.at) FROM workflow_run_steps s WHERE s.run_id = r.id) \
                     FROM workflow_runs r WHERE r.workflow_id = $1 AND r.started_at >= $2",
                    &[workflow.into(), Value::Time(since_paced)],
                )?
                .iter()
                .map(|r| Ok((r.string(0)?, r.time(1)?, r.opt_time(2)?)))
                .collect::<rapport_store::Result<Vec<_>>>()?;
            Ok((received, runs))
        })
        .await?;
    let ms = |from: Timestamp, to: Timestamp| (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
    let mut matched = 0u64;
    for (occurrence, started_at, first_step) in runs {
        let Some(event) = occurrence.strip_prefix("event:").and_then(|s| s.parse::<Uuid>().ok()) else { continue };
        let Some((at, source)) = received.get(&event) else { continue };
        matched += 1;
        // The sender's id ends in the event's number, which gives its batch.
        let batch =
            source.as_deref().and_then(|s| s.rsplit('-').next()).and_then(|k| k.parse::<usize>().ok()).map(|k| k / args.batch);
        let back = batch.and_then(|b| returned.get(b)).copied();
        // A run started in the ingest call's transaction exists once the call has returned.
        out.started.0.push(ms(*at, back.map_or(started_at, |b| b.max(started_at))));
        match back {
            Some(back) if started_at <= back => out.in_ingest += 1,
            Some(back) => out.after_return.0.push(ms(back, started_at)),
            None => {}
        }
        if let Some(s) = first_step {
            out.first_step.0.push(ms(*at, s));
        }
    }
    out.without_run = (received.len() as u64).saturating_sub(matched);
    if out.gave_up {
        // Their latency is beyond the wait: they sort last.
        for _ in 0..out.without_run {
            out.started.0.push(f64::INFINITY);
            out.after_return.0.push(f64::INFINITY);
            out.first_step.0.push(f64::INFINITY);
        }
    }
    for l in [&mut out.started, &mut out.first_step, &mut out.after_return, &mut out.calls] {
        l.0.sort_by(f64::total_cmp);
    }
    if out.started.0.is_empty() {
        bail!("no product.viewed event started a run of \"{VIEWED}\"");
    }
    Ok(out)
}

/// `n` product views as a shop would send them, the k-th (from `from`) about `ids[k]` (wrapping).
fn views(rng: &mut fastrand::Rng, ids: &[Uuid], from: u64, n: u64, run: i64, now: &str) -> Vec<serde_json::Value> {
    (from..from + n)
        .map(|k| {
            let (category, prefix, names, _) = CATEGORIES[rng.usize(..CATEGORIES.len())];
            let sku = rng.i64(0..SKUS);
            json!({
                "id": format!("auto-{run}-{k:07}"),
                "type": "product.viewed",
                "contact": {"id": ids[k as usize % ids.len()]},
                "occurred_at": now,
                "channel": if rng.u32(..5) == 0 { "app" } else { "web" },
                "payload": {
                    "sku": format!("{prefix}-{sku:03}"),
                    "name": format!("{} {}", names[sku as usize % names.len()], sku + 1),
                    "category": category,
                },
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

impl Results {
    fn print(&self, args: &AutomationArgs, target: &Target) {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let d = &self.dataset;
        let e = &self.enable;
        let l = &self.latency;
        println!();
        println!("| | |");
        println!("|---|---|");
        println!("| machine | {cores} cores{} |", bench_segments::cpu_model().map(|m| format!(" ({m})")).unwrap_or_default());
        println!("| database | {} |", target.describe());
        if self.autovacuum.standing_in.is_some() {
            println!(
                "| autovacuum | off on this server: the benchmark ran VACUUM (ANALYZE) on the tables it writes {} times ({:.1} s; the runs during scheduling count in its time) |",
                self.autovacuum.runs,
                self.autovacuum.took.as_secs_f64()
            );
        }
        println!(
            "| dataset | {} contacts ({} with a birthday), {} events; {} |",
            thousands(d.contacts),
            thousands(self.with_birthday as u64),
            thousands(d.events),
            if d.fresh {
                format!("generated in {:.0} s (not timed)", d.generate_seconds)
            } else {
                format!("reused (generated in {:.0} s)", d.generate_seconds)
            }
        );
        println!("| switching the birthday workflow on | {} (marks every contact) |", fmt_duration(e.call));
        println!(
            "| **scheduling every contact** | **{}**, {} passes: **{} contacts/s**; {} next birthdays scheduled |",
            fmt_duration(e.passes),
            thousands(e.pass_count),
            thousands(e.per_second() as u64),
            thousands(e.scheduled as u64)
        );
        for day in &self.days {
            println!(
                "| **daily sweep {}** | **{}**: {} birthdays fired, {} runs started, {} ended, {} tasks |",
                day.date,
                fmt_duration(day.took),
                thousands(day.report.fired),
                thousands(day.report.runs_started),
                thousands(day.report.runs_ended),
                thousands(day.tasks as u64)
            );
        }
        let per_s = |d: Duration| l.alone as f64 / d.as_secs_f64().max(1e-9);
        println!(
            "| each alone, {} events | ingest {} events/s (batches of {}, one call at a time, engine idle); engine {} events/s \
             (automation_until_idle working off the queue: {} runs started, their waits scheduled); one after the other: {} events/s |",
            thousands(l.alone),
            thousands(per_s(l.alone_ingest) as u64),
            args.batch,
            thousands(per_s(l.alone_engine) as u64),
            thousands(l.alone_report.runs_started),
            thousands(per_s(l.alone_ingest + l.alone_engine) as u64)
        );
        println!(
            "| ingest while measuring latency | {} product.viewed events in {} batches of {}, paced at {} events/s: **{} events/s reached** over {:.1} s ({} batches late{}) |",
            thousands(l.sent),
            thousands(l.batches),
            args.batch,
            thousands(u64::from(args.rate)),
            thousands(l.rate() as u64),
            l.ingest_wall.as_secs_f64(),
            thousands(l.late_batches),
            if l.retries > 0 { format!(", {} sent again after a conflict", thousands(l.retries)) } else { String::new() }
        );
        println!(
            "| **event received → run started** (committed) | {} ({} events; {} started before the ingest call had returned) |",
            l.started.summary(true),
            thousands(l.started.0.len() as u64),
            thousands(l.in_ingest)
        );
        println!("| of which: the ingest call (received_at is stamped as it begins) | {} per call |", l.calls.summary(false));
        if !l.after_return.0.is_empty() {
            println!(
                "| of which: ingest call returned → run started by the engine | {} ({} runs) |",
                l.after_return.summary(false),
                thousands(l.after_return.0.len() as u64)
            );
        }
        println!("| event received → wait scheduled (first step) | {} |", l.first_step.summary(false));
        println!(
            "| worker | {} rounds of automation_until_idle starting {} runs, busy {:.1} s of {:.1} s; {} {} after the last ingest{} |",
            thousands(l.worker_rounds),
            thousands(l.worker_runs),
            l.worker_busy.as_secs_f64(),
            (l.ingest_wall + l.drain).as_secs_f64(),
            if l.gave_up { "still behind" } else { "caught up" },
            fmt_duration(l.drain),
            if l.worker_errors > 0 {
                format!("; {} failed rounds, first: {}", l.worker_errors, l.first_worker_error.as_deref().unwrap_or("?"))
            } else {
                String::new()
            }
        );
        if l.without_run > 0 || l.accepted < l.sent {
            println!(
                "| events without a run | {} ({} of {} accepted) |",
                thousands(l.without_run),
                thousands(l.accepted),
                thousands(l.sent)
            );
        }
        println!();
        let slowest = self.slowest_day();
        println!(
            "daily sweep, slowest of {} days: {} (target < {} s): {}",
            self.days.len(),
            fmt_duration(slowest),
            TARGET_SWEEP.as_secs(),
            verdict(slowest < TARGET_SWEEP)
        );
        let p99 = l.started.quantile(0.99);
        println!(
            "event → run started p99: {} at {} events/s (target < {TARGET_P99_MS} ms): {}",
            show_ms(p99),
            thousands(l.rate() as u64),
            verdict(p99 < TARGET_P99_MS)
        );
    }
}

/// Milliseconds; an infinite latency is an event whose run had not started when the
/// benchmark stopped waiting.
fn show_ms(ms: f64) -> String {
    if ms.is_finite() { format!("{ms:.1} ms") } else { format!("not started within {} s", CATCH_UP_LIMIT.as_secs()) }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let l = Latencies((1..=100).map(f64::from).collect());
        assert_eq!(l.quantile(0.5), 50.0);
        assert_eq!(l.quantile(0.99), 99.0);
        assert_eq!(l.quantile(1.0), 100.0);
        assert!(Latencies::default().quantile(0.5).is_nan());
    }

    /// The whole benchmark on a small SQLite dataset: every phase produces figures.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("rapport-bench-automation-test-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = Target::Sqlite(dir.join("a.db"));
        let args = AutomationArgs {
            contacts: 5000,
            database: Database::Sqlite,
            keep: false,
            days: 2,
            rate: 2000,
            seconds: 1,
            batch: 100,
        };
        let r = bench(&args, &target).await.unwrap();
        target.remove().await;
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(r.enable.contacts, 5000);
        assert_eq!(r.enable.scheduled, r.with_birthday);
        let runs: u64 = r.days.iter().map(|d| d.report.runs_started).sum();
        let tasks: i64 = r.days.iter().map(|d| d.tasks).sum();
        assert_eq!(runs as i64, tasks);
        assert_eq!(r.latency.sent, 2000);
        assert_eq!(r.latency.started.0.len(), 2000);
        assert_eq!(r.latency.without_run, 0);
    }
}
