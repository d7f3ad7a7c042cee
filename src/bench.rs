//! `rapport bench`: single-contact reads and creates over HTTP against a large SQLite database,
//! beside the throughput of a trivial endpoint of the same server (the ceiling).
//!
//! The server runs as a child process of the same binary, so the loader (this process) and the
//! server are measured as a client on the same machine would see them. See docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rapport_core::contact::{ContactDraft, EmailDraft, PhoneDraft};
use rapport_core::user::Role;
use rapport_store::{DatabaseUrl, PageRequest, Store, StoreOptions};
use uuid::Uuid;

/// Reads target: this share of the ceiling's throughput or better.
const READ_SHARE_TARGET: f64 = 0.5;
/// Reads target: 99th percentile latency below this.
const READ_P99_TARGET_MS: f64 = 5.0;
/// Contacts inserted per transaction while seeding.
const SEED_BATCH: usize = 2000;
/// Contact ids sampled for the read phase.
const READ_SAMPLE: usize = 10_000;
const WARMUP: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Contacts in the database (missing ones are created first)
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    /// Seconds measured per phase (each phase warms up for one more second first)
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests in flight at once (one connection each)
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seeded SQLite file to start from: created or topped up to --contacts, then reused; each
    /// run serves a copy of it (PATH.run, removed afterwards), so the file itself is not changed
    /// [default: rapport-bench.db in the temporary directory, removed afterwards unless --keep]
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Keep the default database file for faster reruns
    #[arg(long)]
    keep: bool,
    /// The rapport executable to run as the server [default: this executable]
    #[arg(long, value_name = "PATH")]
    server_bin: Option<PathBuf>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.duration == 0 || args.contacts == 0 {
        bail!("--contacts, --duration and --concurrency must be at least 1");
    }
    let (db, remove_after) = match &args.db {
        Some(p) => (p.clone(), false),
        None => (std::env::temp_dir().join("rapport-bench.db"), !args.keep),
    };
    let server_bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot find this executable to start the server")?,
    };

    // Every run works on a fresh copy of the seeded database, so runs measure the same data
    // rather than one grown (or, after deletes, fragmented) by earlier creates phases.
    let copy = with_suffix(&db, ".run");
    let outcome = async {
        let prepared = prepare(&db, &copy, args.contacts).await?;
        let results = measure(&args, &copy, &server_bin, &prepared).await?;
        anyhow::Ok((prepared, results))
    }
    .await;
    remove_db(&copy);
    if remove_after {
        remove_db(&db);
    } else {
        eprintln!("The seeded database is kept at {} (a rerun with --db starts from it).", db.display());
    }
    let (prepared, results) = outcome?;
    report(&args, &prepared, &results);
    Ok(())
}

/// What the phases need from the prepared database.
struct Prepared {
    contacts: i64,
    key: String,
    ids: Vec<Uuid>,
}

async fn open_store(db: &Path) -> anyhow::Result<Store> {
    let url = DatabaseUrl::Sqlite(db.to_path_buf());
    tokio::task::spawn_blocking(move || Store::open(&url, StoreOptions::default()))
        .await?
        .with_context(|| format!("cannot open the benchmark database {}", db.display()))
}

/// Seeds `seeded` up to `contacts` if needed, copies it to `copy`, and readies the copy: a key
/// and a sample of contact ids to read.
async fn prepare(seeded: &Path, copy: &Path, contacts: usize) -> anyhow::Result<Prepared> {
    let store = open_store(seeded).await?;
    let existing = usize::try_from(store.count_contacts().await?).unwrap_or(0);
    if existing < contacts {
        seed(&store, existing, contacts).await?;
    } else {
        eprintln!("Using the {existing} contacts already in {}.", seeded.display());
    }
    // Copied while this handle is open and idle: closing it could checkpoint mid-copy.
    copy_db(seeded, copy)?;
    drop(store);

    let store = open_store(copy).await?;
    let key =
        store.create_key("bench".into(), Role::Admin, None, None, false).await?.context("the benchmark key was not created")?;

    let bar = progress_bar(READ_SAMPLE as u64, "Sampling contact ids")?;
    let mut ids = Vec::with_capacity(READ_SAMPLE);
    let mut cursor = None;
    while ids.len() < READ_SAMPLE {
        let page =
            store.list_contacts(Default::default(), PageRequest { limit: Some(500), cursor, ..Default::default() }).await?;
        ids.extend(page.data.iter().map(|c| c.id));
        bar.set_position(ids.len() as u64);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    bar.finish_and_clear();
    let contacts = store.count_contacts().await?;
    if ids.is_empty() {
        bail!("the benchmark database has no contacts to read");
    }
    Ok(Prepared { contacts, key: key.secret, ids })
}

async fn seed(store: &Store, existing: usize, target: usize) -> anyhow::Result<()> {
    let bar = progress_bar((target - existing) as u64, "Creating contacts")?;
    let started = Instant::now();
    let mut next = existing;
    while next < target {
        let end = (next + SEED_BATCH).min(target);
        let drafts = (next..end).map(seed_draft).collect();
        store.create_contacts(drafts).await.with_context(|| format!("could not create contacts {next}..{end}"))?;
        bar.inc((end - next) as u64);
        next = end;
    }
    bar.finish_and_clear();
    eprintln!("Created {} contacts in {:.1} s.", target - existing, started.elapsed().as_secs_f64());
    Ok(())
}

fn progress_bar(len: u64, what: &str) -> anyhow::Result<indicatif::ProgressBar> {
    let style = indicatif::ProgressStyle::with_template(&format!("{what} {{bar:40.cyan/blue}} {{pos}}/{{len}} ({{eta}})"))?;
    Ok(indicatif::ProgressBar::new(len).with_style(style))
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Bruno", "Chloé", "Dmitri", "Elif", "Farah", "Gustavo", "Hana", "Ivan", "Jia", "Kwame", "Lena", "Mateo", "Nadia",
    "Oscar", "Priya", "Quentin", "Rosa", "Sven", "Tomoko", "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoë",
];
const LAST_NAMES: &[&str] = &[
    "Andersen", "Bianchi", "Castillo", "Dubois", "Eriksson", "Fischer", "García", "Haddad", "Ivanova", "Jensen", "Kowalski",
    "López", "Müller", "Nakamura", "O'Brien", "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka", "Usman", "Varga", "Wójcik",
    "Yilmaz", "Zhang",
];
const TAGS: &[&str] = &["customer", "lead", "vip", "newsletter", "supplier", "press"];

/// A valid US number: 555-0100 to 555-0199 are reserved for fiction in every area code.
fn phone(n: usize) -> String {
    const AREAS: &[&str] = &["212", "312", "415", "512", "617", "702", "808", "919"];
    format!("+1 {} 555 01{:02}", AREAS[n / 100 % AREAS.len()], n % 100)
}

/// Contact `i` of the seeded database: varied names (so sorting by name scatters ids), a
/// unique email, a phone and usually a tag, as a typical record would have.
fn seed_draft(i: usize) -> ContactDraft {
    let mut rng = fastrand::Rng::with_seed(i as u64);
    let first = FIRST_NAMES[rng.usize(..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.usize(..LAST_NAMES.len())];
    let tags = match rng.usize(..4) {
        0 => vec![],
        _ => vec![TAGS[rng.usize(..TAGS.len())].to_string()],
    };
    ContactDraft {
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        emails: Some(vec![EmailDraft { address: format!("bench{i}@example.com"), ..Default::default() }]),
        phones: Some(vec![PhoneDraft { number: phone(rng.usize(..800)), ..Default::default() }]),
        tags: Some(tags),
        source: Some("bench".into()),
        ..Default::default()
    }
}

/// Copies a SQLite database with its write-ahead log, which may hold committed pages.
fn copy_db(from: &Path, to: &Path) -> anyhow::Result<()> {
    remove_db(to);
    for suffix in ["", "-wal"] {
        let (src, dst) = (with_suffix(from, suffix), with_suffix(to, suffix));
        if suffix.is_empty() || src.exists() {
            std::fs::copy(&src, &dst).with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let p = with_suffix(db, suffix);
        if p.exists()
            && let Err(e) = std::fs::remove_file(&p)
        {
            eprintln!("warning: could not remove {}: {e}", p.display());
        }
    }
}

/// The server child process; killed when dropped, so an error anywhere cannot leak it.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SQLite in WAL mode recovers from a kill; every acknowledged write is already durable.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(bin: &Path, db: &Path, addr: &str) -> anyhow::Result<Self> {
        let child = Command::new(bin)
            .arg("--database-url")
            .arg(format!("sqlite://{}", db.display()))
            .args(["serve", "--bind", addr])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start the server {}", bin.display()))?;
        Ok(Self { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_healthy(&mut self, client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited before answering ({status})");
            }
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the server did not answer {base}/healthz within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    // The port is free once the listener is dropped; the server binds it right after.
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ceiling,
    Reads,
    Creates,
    Recommendations,
    Profiles,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Self::Ceiling => "ceiling: GET /healthz",
            Self::Reads => "reads: GET /api/v1/contacts/{id}",
            Self::Creates => "creates: POST /api/v1/contacts",
            Self::Recommendations => "recommendations: GET …/{id}/recommendations",
            Self::Profiles => "profiles: GET …/{id}/profile",
        }
    }
}

struct PhaseResult {
    phase: Phase,
    /// Latencies of the measured requests, in microseconds, sorted.
    micros: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// Cores kept busy during the measured window, when /proc tells.
    cpu: CpuUse,
}

impl PhaseResult {
    fn per_second(&self) -> f64 {
        self.micros.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0..=1) in milliseconds.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.micros.len() as f64).ceil() as usize).clamp(1, self.micros.len());
        f64::from(self.micros[rank - 1]) / 1000.0
    }
}

/// Everything a worker needs, shared.
struct Load {
    client: reqwest::Client,
    base: String,
    auth: String,
    ids: Vec<Uuid>,
    /// Makes create emails unique across reruns on the same database.
    run: u32,
}

async fn measure(args: &BenchArgs, db: &Path, server_bin: &Path, prepared: &Prepared) -> anyhow::Result<Vec<PhaseResult>> {
    measure_phases(&Runner::from(args), db, server_bin, prepared, &[Phase::Ceiling, Phase::Reads, Phase::Creates]).await
}

/// How long and how hard each phase runs.
struct Runner {
    duration: u64,
    concurrency: usize,
}

impl From<&BenchArgs> for Runner {
    fn from(a: &BenchArgs) -> Self {
        Self { duration: a.duration, concurrency: a.concurrency }
    }
}

async fn measure_phases(
    args: &Runner,
    db: &Path,
    server_bin: &Path,
    prepared: &Prepared,
    phases: &[Phase],
) -> anyhow::Result<Vec<PhaseResult>> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let mut server = Server::start(server_bin, db, &addr)?;
    server.wait_healthy(&client, &base).await?;

    let load = Arc::new(Load {
        client,
        base,
        auth: format!("Bearer {}", prepared.key),
        ids: prepared.ids.clone(),
        run: fastrand::u32(..),
    });
    let mut results = Vec::new();
    for &phase in phases {
        eprintln!("Measuring {} for {} s ...", phase.label(), args.duration);
        let r = run_phase(phase, &load, args.concurrency, Duration::from_secs(args.duration), server.pid()).await?;
        if r.micros.is_empty() {
            bail!("{}: no request succeeded ({})", phase.label(), r.first_error.as_deref().unwrap_or("no error recorded"));
        }
        results.push(r);
    }
    drop(server);
    Ok(results)
}

async fn run_phase(
    phase: Phase,
    load: &Arc<Load>,
    concurrency: usize,
    duration: Duration,
    server_pid: u32,
) -> anyhow::Result<PhaseResult> {
    let start = Instant::now() + WARMUP;
    let end = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let load = load.clone();
            tokio::spawn(async move { worker(phase, &load, w, start, end).await })
        })
        .collect();

    tokio::time::sleep_until(start.into()).await;
    let cpu_before = CpuSample::take(server_pid);
    tokio::time::sleep_until(end.into()).await;
    let cpu = CpuSample::take(server_pid).since(&cpu_before, duration);

    let mut result = PhaseResult { phase, micros: Vec::new(), errors: 0, first_error: None, elapsed: duration, cpu };
    for w in workers {
        let r = w.await.context("a load worker failed")?;
        result.micros.extend(r.micros);
        result.errors += r.errors;
        if result.first_error.is_none() {
            result.first_error = r.first_error;
        }
    }
    result.micros.sort_unstable();
    Ok(result)
}

#[derive(Default)]
struct WorkerResult {
    micros: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Sends one request after another until `end`; records those started at or after `start`.
async fn worker(phase: Phase, load: &Load, w: usize, start: Instant, end: Instant) -> WorkerResult {
    let mut rng = fastrand::Rng::with_seed(w as u64);
    let mut out = WorkerResult::default();
    let mut n: u64 = 0;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            return out;
        }
        n += 1;
        let request = match phase {
            Phase::Ceiling => load.client.get(format!("{}/healthz", load.base)),
            Phase::Reads => {
                let id = load.ids[rng.usize(..load.ids.len())];
                load.client.get(format!("{}/api/v1/contacts/{id}", load.base)).header("authorization", &load.auth)
            }
            Phase::Recommendations | Phase::Profiles => {
                let id = load.ids[rng.usize(..load.ids.len())];
                let what = if phase == Phase::Recommendations { "recommendations" } else { "profile" };
                load.client.get(format!("{}/api/v1/contacts/{id}/{what}", load.base)).header("authorization", &load.auth)
            }
            Phase::Creates => {
                let body = serde_json::json!({
                    "first_name": FIRST_NAMES[rng.usize(..FIRST_NAMES.len())],
                    "last_name": LAST_NAMES[rng.usize(..LAST_NAMES.len())],
                    "emails": [{"address": format!("load-{:08x}-{w}-{n}@example.com", load.run)}],
                    "phones": [{"number": phone(rng.usize(..800))}],
                    "tags": [TAGS[rng.usize(..TAGS.len())]],
                    "source": "bench",
                });
                load.client.post(format!("{}/api/v1/contacts", load.base)).header("authorization", &load.auth).json(&body)
            }
        };
        // Read the whole body: the connection is reused only once it is drained.
        let outcome = match request.send().await {
            Ok(r) => {
                let status = r.status();
                match r.bytes().await {
                    Ok(_) if status.is_success() => Ok(()),
                    Ok(body) => Err(format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]))),
                    Err(e) => Err(format!("reading the response: {e}")),
                }
            }
            Err(e) => Err(format!("{e}")),
        };
        if t0 < start {
            continue;
        }
        let micros = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
        match outcome {
            Ok(()) => out.micros.push(micros),
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
}

/// CPU seconds used so far by the server, by this process and by the whole machine.
struct CpuSample {
    server: Option<f64>,
    loader: Option<f64>,
    machine: Option<f64>,
}

/// Average cores busy over a window; `machine` includes other programs and kernel work
/// (such as loopback networking) that neither process is charged for.
#[derive(Default)]
struct CpuUse {
    server: Option<f64>,
    loader: Option<f64>,
    machine: Option<f64>,
}

impl CpuSample {
    fn take(server_pid: u32) -> Self {
        Self {
            server: process_cpu_seconds(&server_pid.to_string()),
            loader: process_cpu_seconds("self"),
            machine: machine_cpu_seconds(),
        }
    }

    fn since(&self, before: &Self, window: Duration) -> CpuUse {
        let secs = window.as_secs_f64();
        let cores = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a - b) / secs);
        CpuUse {
            server: cores(self.server, before.server),
            loader: cores(self.loader, before.loader),
            machine: cores(self.machine, before.machine),
        }
    }
}

/// Linux reports CPU time in clock ticks, which are 100 per second on every mainstream build.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time (user + system) a process has used so far, from /proc (Linux only).
fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may itself contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// CPU time all cores have spent busy so far (everything but idle and I/O wait).
fn machine_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    Some(busy / TICKS_PER_SECOND)
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn print_table(args: &Runner, database: &str, results: &[PhaseResult]) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!();
    println!("Machine:     {cores} cores available{}", cpu_model().map(|m| format!(" ({m})")).unwrap_or_default());
    println!("Database:    {database}");
    println!(
        "Load:        {} connections, {} s per phase after {} s warm-up; loader and server on this machine",
        args.concurrency,
        args.duration,
        WARMUP.as_secs()
    );
    println!();
    println!(
        "{:<34} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>19}",
        "phase", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "cores srv/load/all"
    );
    for r in results {
        let show = |c: Option<f64>| c.map_or_else(|| "-".to_string(), |c| format!("{c:.2}"));
        let cpu = format!("{}/{}/{}", show(r.cpu.server), show(r.cpu.loader), show(r.cpu.machine));
        println!(
            "{:<34} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>19}",
            r.phase.label(),
            r.micros.len(),
            r.per_second(),
            r.quantile_ms(0.50),
            r.quantile_ms(0.90),
            r.quantile_ms(0.99),
            r.quantile_ms(1.0),
            r.errors,
            cpu
        );
    }
    println!(
        "(cores: average busy in the server, in the load generator, and in the whole machine, \
         which also counts kernel networking and any other programs)"
    );
    for r in results.iter().filter(|r| r.errors > 0) {
        println!("{}: first error: {}", r.phase.label(), r.first_error.as_deref().unwrap_or("?"));
    }
}

fn report(args: &BenchArgs, prepared: &Prepared, results: &[PhaseResult]) {
    print_table(&Runner::from(args), &format!("SQLite, {} contacts", prepared.contacts), results);
    let find = |p: Phase| results.iter().find(|r| r.phase == p);
    if let (Some(ceiling), Some(reads)) = (find(Phase::Ceiling), find(Phase::Reads)) {
        let share = reads.per_second() / ceiling.per_second();
        let p99 = reads.quantile_ms(0.99);
        println!();
        println!(
            "reads: {:.0}% of ceiling (target >= {:.0}%): {}",
            share * 100.0,
            READ_SHARE_TARGET * 100.0,
            verdict(share >= READ_SHARE_TARGET)
        );
        println!("read p99: {p99:.2} ms (target < {READ_P99_TARGET_MS} ms): {}", verdict(p99 < READ_P99_TARGET_MS));
    }
}

/// Recommendations target: 99th percentile latency below this, on the demo data under load.
const RECOMMENDATIONS_P99_TARGET_MS: f64 = 2.0;

#[derive(clap::Args)]
pub struct RecommendationArgs {
    /// Contacts in the demo business (with a year of events each, as `rapport demo` makes)
    #[arg(long, default_value_t = 3000)]
    contacts: usize,
    /// Seconds measured per phase (each phase warms up for one more second first)
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests in flight at once (one connection each)
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The rapport executable to run as the server [default: this executable]
    #[arg(long, value_name = "PATH")]
    server_bin: Option<PathBuf>,
}

/// `rapport bench recommendations`: seeds the demo business (with its year of events) into a
/// fresh SQLite file, then measures recommendations and profiles for random demo contacts
/// over HTTP beside the ceiling.
pub async fn run_recommendations(args: RecommendationArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.duration == 0 || args.contacts == 0 {
        bail!("--contacts, --duration and --concurrency must be at least 1");
    }
    let server_bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot find this executable to start the server")?,
    };
    let dir = tempfile_dir()?;
    let db = dir.join("rapport-bench-demo.db");
    let outcome = async {
        let store = open_store(&db).await?;
        let bar = progress_bar(0, "Seeding the demo business")?;
        let progress = |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        };
        // The seed `rapport demo` uses, so the data is the demo's.
        let summary = crate::demo::seed(&store, args.contacts, 2026, &progress).await?;
        bar.finish_and_clear();
        eprintln!("{}", summary.events_line());
        let key = store
            .create_key("bench".into(), Role::Admin, None, None, false)
            .await?
            .context("the benchmark key was not created")?;
        let mut ids = Vec::new();
        let mut cursor = None;
        loop {
            let page =
                store.list_contacts(Default::default(), PageRequest { limit: Some(500), cursor, ..Default::default() }).await?;
            ids.extend(page.data.iter().map(|c| c.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let prepared = Prepared { contacts: store.count_contacts().await?, key: key.secret, ids };
        drop(store);
        let runner = Runner { duration: args.duration, concurrency: args.concurrency };
        let results =
            measure_phases(&runner, &db, &server_bin, &prepared, &[Phase::Ceiling, Phase::Recommendations, Phase::Profiles])
                .await?;
        anyhow::Ok((runner, prepared, summary, results))
    }
    .await;
    remove_db(&db);
    let _ = std::fs::remove_dir(&dir);
    let (runner, prepared, summary, results) = outcome?;
    print_table(
        &runner,
        &format!("SQLite, the demo business: {} contacts, {} events", prepared.contacts, summary.events),
        &results,
    );
    if let Some(r) = results.iter().find(|r| r.phase == Phase::Recommendations) {
        let p99 = r.quantile_ms(0.99);
        println!();
        println!(
            "recommendations p99: {p99:.2} ms (target < {RECOMMENDATIONS_P99_TARGET_MS} ms): {}",
            verdict(p99 < RECOMMENDATIONS_P99_TARGET_MS)
        );
    }
    Ok(())
}

/// A fresh private directory for a benchmark database.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("rapport-bench-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_core::PhoneRegion;
    use rapport_core::contact::ContactInput;

    #[test]
    fn seeded_contacts_are_valid() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
        for i in 0..1000 {
            ContactInput::parse(seed_draft(i), PhoneRegion::default(), today).unwrap_or_else(|e| panic!("draft {i}: {e:?}"));
        }
        for n in 0..800 {
            rapport_core::PhoneNumber::parse(&phone(n), PhoneRegion::default()).unwrap_or_else(|e| panic!("{}: {e}", phone(n)));
        }
    }

    #[test]
    fn quantiles() {
        let r = PhaseResult {
            phase: Phase::Reads,
            micros: (1..=100).map(|i| i * 1000).collect(),
            errors: 0,
            first_error: None,
            elapsed: Duration::from_secs(2),
            cpu: CpuUse::default(),
        };
        assert_eq!(r.quantile_ms(0.5), 50.0);
        assert_eq!(r.quantile_ms(0.99), 99.0);
        assert_eq!(r.quantile_ms(1.0), 100.0);
        assert_eq!(r.per_second(), 50.0);
    }
}
