//! `rapport`: the one binary. Serves the API and pages, migrates, manages keys and users,
//! seeds the demo, and benchmarks itself.

mod bench;
mod bench_automation;
mod bench_email;
mod bench_ingest;
mod bench_segments;
mod config;
mod demo;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use rapport_core::user::{Role, UserDraft};
use rapport_core::{Clock, ManualClock, PhoneRegion, SystemClock};
use rapport_store::{DatabaseUrl, Store, StoreOptions};
use rapport_web::{AppState, WebConfig};

use crate::config::{Config, Overrides};

/// mimalloc instead of the system allocator: ingest allocates and frees many buffers across
/// threads, where glibc's per-thread arenas fragment and grow (measured in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rapport",
    version,
    about = "Rapport, a relationship-first CRM",
    long_about = "Rapport, a relationship-first CRM.\n\n\
Runs on an embedded SQLite file by default (./rapport.db) and on PostgreSQL with --database-url postgres://….\n\
Settings come from flags, then RAPPORT_* environment variables, then rapport.toml.\n\n\
Start here: `rapport demo` serves a demo business and prints a login."
)]
struct Cli {
    /// Database: sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DB [env: RAPPORT_DATABASE_URL]
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Configuration file (default: ./rapport.toml when present)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and web pages (applies pending migrations first)
    Serve(ServeArgs),
    /// Apply pending database migrations and exit
    Migrate,
    /// Create, list and revoke API keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create and list users
    #[command(subcommand)]
    Users(UsersCommand),
    /// Create a demo business (a few thousand contacts) and serve it, printing the URL and an admin key
    Demo(DemoArgs),
    /// Recompute every profile, value tier and lifecycle stage from the stored events
    ///
    /// Profiles are kept current on every ingest; run this after changing the `[profiles]`
    /// rules in rapport.toml (tiers, exchange rates, lifecycle thresholds) or to recover from a
    /// bug. Stage changes it causes are recorded on timelines like any other. Safe to stop and
    /// run again.
    Rebuild,
    /// Measure Rapport's speed on this machine (see docs/benchmarks.md)
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Single-contact reads and creates over HTTP against a large SQLite database, beside the
    /// throughput of a trivial endpoint of the same server
    Http(bench::BenchArgs),
    /// Sustained event ingest with profiles and lifecycle stages kept current, in process,
    /// reporting events/s and memory (a fresh SQLite file unless --database-url says otherwise)
    #[command(long_about = bench_ingest::LONG_ABOUT)]
    Ingest(bench_ingest::IngestArgs),
    /// Recommendations and profiles over HTTP for the demo business (with its year of events),
    /// beside the throughput of a trivial endpoint of the same server
    Recommendations(bench::RecommendationArgs),
    /// Segment counts, full refreshes and incremental maintenance on a generated dataset of
    /// 1M contacts and 20M events (SQLite unless --database-url says otherwise)
    #[command(long_about = bench_segments::LONG_ABOUT)]
    Segments(bench_segments::SegmentsArgs),
    /// The automation engine on 1M contacts: scheduling a birthday workflow, the daily
    /// date-trigger sweep, and event-to-run latency under ingest (SQLite, PostgreSQL or both)
    #[command(long_about = bench_automation::LONG_ABOUT)]
    Automation(bench_automation::AutomationArgs),
    /// Rendering and sending 100,000 personalised emails to a local SMTP sink, beside postfix's
    /// smtp-source against the same sink
    #[command(long_about = bench_email::LONG_ABOUT)]
    Email(bench_email::EmailArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080 [env: RAPPORT_BIND] [default: 127.0.0.1:8080]
    #[arg(long)]
    bind: Option<String>,
    /// The SMTP relay for email: smtp://host:587, smtps://user:password@host:465
    /// [env: RAPPORT_SMTP_URL]. Without one, messages wait in the outbox marked unsendable
    #[arg(long, value_name = "URL")]
    smtp_url: Option<String>,
    /// `system`, or `manual`: time stands still (starting at --clock-start) and moves only
    /// through `POST /api/v1/admin/clock` with an admin key, to demonstrate and test
    /// birthdays, inactivity and renewals without waiting
    #[arg(long, default_value = "system", value_parser = ["system", "manual"])]
    clock: String,
    /// Where a manual clock starts (RFC 3339) [default: now]
    #[arg(long, requires = "clock", value_name = "TIME")]
    clock_start: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (it is shown only once)
    Create {
        /// What the key is for, e.g. "website" or "zapier"
        #[arg(long)]
        name: String,
        /// admin, manager, member or viewer
        #[arg(long, default_value = "member")]
        role: Role,
    },
    /// List keys (without their secrets)
    List,
    /// Revoke a key by id or by the prefix shown in `keys list`
    Revoke {
        /// The key's id or displayed prefix (rk_xxxxxxxx)
        key: String,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user
    Create {
        #[arg(long)]
        email: String,
        /// Display name (defaults to the part of the email before @)
        #[arg(long)]
        name: Option<String>,
        /// Make the user an admin (same as --role admin)
        #[arg(long)]
        admin: bool,
        /// admin, manager, member or viewer
        #[arg(long, default_value = "member")]
        role: Role,
        /// Read a password from standard input; the user can then sign in to the web UI at /login
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users
    List,
}

#[derive(Args)]
struct DemoArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long)]
    bind: Option<String>,
    /// How many contacts the demo business has
    #[arg(long, default_value_t = 3000)]
    contacts: usize,
    /// Delete an existing demo database and start over
    #[arg(long)]
    fresh: bool,
    /// Seed only; do not serve
    #[arg(long)]
    no_serve: bool,
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_store_with_clock(config, Arc::new(SystemClock))
}

fn open_store_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Store> {
    let url = DatabaseUrl::parse(&config.database_url).map_err(anyhow::Error::msg)?;
    let region = PhoneRegion::parse(&config.phone_region).map_err(|e| anyhow::anyhow!("phone_region: {e}"))?;
    config.profiles.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let options = StoreOptions {
        phone_region: region,
        clock,
        sqlite_readers: config.sqlite_readers,
        pg_max_connections: config.pg_max_connections,
        pg_schema: None,
        profile_rules: Arc::new(config.profiles.clone()),
        default_time_zone: config.default_time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
            anyhow::anyhow!("default_time_zone: '{}' is not an IANA time zone such as Europe/Berlin", config.default_time_zone)
        })?,
        automation: {
            let mut a = config.automation.options()?;
            if config.smtp_url.is_some() {
                a.ready_channels.push(rapport_core::workflow::MessageChannel::Email);
            }
            if config.messaging.sms.is_some() {
                a.ready_channels.push(rapport_core::workflow::MessageChannel::Sms);
            }
            if config.messaging.chat.is_some() {
                a.ready_channels.push(rapport_core::workflow::MessageChannel::Chat);
            }
            a
        },
    };
    Store::open(&url, options).with_context(|| format!("cannot open the database at {}", url.redacted()))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bind = match &cli.command {
        Command::Serve(a) => a.bind.clone(),
        Command::Demo(a) => a.bind.clone(),
        _ => None,
    };
    let smtp_url = match &cli.command {
        Command::Serve(a) => a.smtp_url.clone(),
        _ => None,
    };
    let demo_default_db = matches!(cli.command, Command::Demo(_)) && cli.database_url.is_none();
    let mut config = Config::load(cli.config.as_deref(), Overrides { database_url: cli.database_url.clone(), bind, smtp_url })?;
    if demo_default_db && std::env::var_os("RAPPORT_DATABASE_URL").is_none() {
        // The demo never touches a real ./rapport.db.
        config.database_url = "sqlite://rapport-demo.db".into();
    }
    init_logging(&config.log_format);
    match cli.command {
        Command::Serve(args) => serve(config, args).await,
        Command::Rebuild => rebuild(config).await,
        Command::Migrate => {
            let c = config.clone();
            tokio::task::spawn_blocking(move || open_store(&c)).await??;
            println!(
                "The database at {} is up to date.",
                DatabaseUrl::parse(&config.database_url).map_err(anyhow::Error::msg)?.redacted()
            );
            Ok(())
        }
        Command::Keys(cmd) => keys(config, cmd).await,
        Command::Users(cmd) => users(config, cmd).await,
        Command::Demo(args) => run_demo(config, args).await,
        Command::Bench(BenchCommand::Http(args)) => bench::run(args).await,
        Command::Bench(BenchCommand::Ingest(args)) => bench_ingest::run(args, cli.database_url).await,
        Command::Bench(BenchCommand::Recommendations(args)) => bench::run_recommendations(args).await,
        Command::Bench(BenchCommand::Segments(args)) => bench_segments::run(args, cli.database_url).await,
        Command::Bench(BenchCommand::Automation(args)) => bench_automation::run(args, cli.database_url).await,
        Command::Bench(BenchCommand::Email(args)) => bench_email::run(args, cli.database_url).await,
    }
}

async fn connect(config: &Config) -> anyhow::Result<Store> {
    let c = config.clone();
    tokio::task::spawn_blocking(move || open_store(&c)).await?
}

async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let manual = (args.clock == "manual").then(|| Arc::new(ManualClock::new(args.clock_start.unwrap_or_else(chrono::Utc::now))));
    let clock: Arc<dyn Clock> = match &manual {
        Some(m) => m.clone(),
        None => Arc::new(SystemClock),
    };
    let c = config.clone();
    let store = tokio::task::spawn_blocking(move || open_store_with_clock(&c, clock)).await??;
    if let Some(secret) = config.bootstrap_key.clone()
        && store.create_key("bootstrap".into(), Role::Admin, None, Some(secret), true).await?.is_some()
    {
        tracing::info!("created the bootstrap admin key from RAPPORT_BOOTSTRAP_KEY");
    }
    if manual.is_some() {
        tracing::warn!(now = %store.now(), "the clock is manual: it moves only through POST /api/v1/admin/clock");
    }
    serve_store(store, &config, manual).await
}

async fn rebuild(config: Config) -> anyhow::Result<()> {
    let store = connect(&config).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} contacts ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("Rebuilding profiles");
    let b = bar.clone();
    let started = std::time::Instant::now();
    let report = store
        .rebuild_profiles(move |done, total| {
            b.set_length(total);
            b.set_position(done);
        })
        .await?;
    bar.finish_and_clear();
    println!(
        "Rebuilt {} profiles from {} events in {:.1} s; {} lifecycle stages changed.",
        report.contacts,
        report.events,
        started.elapsed().as_secs_f64(),
        report.stage_changes
    );
    Ok(())
}

async fn serve_store(store: Store, config: &Config, manual: Option<Arc<ManualClock>>) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(&config.bind).await.with_context(|| format!("cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    let web = WebConfig {
        max_body_bytes: config.max_body_bytes,
        request_timeout: Duration::from_secs(config.request_timeout_secs),
        max_ingest_body_bytes: config.max_ingest_body_bytes,
        segment_refresh_every: Duration::from_secs(config.segment_refresh_minutes.max(1) * 60),
        secure_cookies: config.secure_cookies,
        ..WebConfig::default()
    };
    tracing::info!(%addr, database = %DatabaseUrl::parse(&config.database_url).map_err(anyhow::Error::msg)?.redacted(), "Rapport is serving");
    let policy = rapport_channels::webhook::AddressPolicy::new(config.webhooks.allow_private, &config.webhooks.allow_hosts)
        .map_err(|e| anyhow::anyhow!("webhooks.allow_hosts: {e}"))?;
    let sender = rapport_web::ops::WebhookSender::new(policy, config.webhooks.secrets.0.clone())?;
    let mut state = AppState::new(store, web).with_webhooks(sender);
    if let Some(url) = &config.smtp_url {
        let settings = rapport_channels::email::SmtpSettings::parse(url).map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?;
        let from = config.smtp_from.parse().map_err(|e| {
            anyhow::anyhow!("smtp_from: '{}' is not an address such as Shop <hello@shop.example>: {e}", config.smtp_from)
        })?;
        let sender = rapport_channels::email::EmailSender::new(settings, config.email.limits()?).map_err(anyhow::Error::msg)?;
        state = state.with_email(rapport_web::email::EmailChannel { sender, from, public_url: config.public_url.clone() });
        tracing::info!("email goes out through the configured SMTP relay");
    }
    let mut texts = rapport_web::messaging::TextChannels::default();
    for (channel, provider) in [
        (rapport_core::workflow::MessageChannel::Sms, &config.messaging.sms),
        (rapport_core::workflow::MessageChannel::Chat, &config.messaging.chat),
    ] {
        if let Some(p) = provider {
            let provider = rapport_channels::messaging::TextProvider::new(p.settings())
                .map_err(|e| anyhow::anyhow!("messaging.{}.{e}", channel.as_str()))?;
            tracing::info!(
                channel = channel.as_str(),
                url = provider.url(),
                "text messages go out through the configured provider"
            );
            texts = texts.with(channel, provider);
        }
    }
    state = state.with_messaging(texts);
    if let Some(clock) = manual {
        state = state.with_manual_clock(clock);
    }
    rapport_web::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn keys(config: Config, cmd: KeysCommand) -> anyhow::Result<()> {
    let store = connect(&config).await?;
    match cmd {
        KeysCommand::Create { name, role } => {
            let created = store.create_key(name, role, None, None, false).await?.context("the key was not created")?;
            eprintln!(
                "Created {} key '{}' ({}). Store it now; it cannot be shown again:",
                role.as_str(),
                created.key.name,
                created.key.id
            );
            println!("{}", created.secret);
        }
        KeysCommand::List => {
            let keys = store.list_keys().await?;
            if keys.is_empty() {
                println!("No keys yet. Create one with: rapport keys create --name NAME --role admin");
            }
            for k in keys {
                let state = match (k.revoked_at, k.last_used_at) {
                    (Some(t), _) => format!("revoked {}", t.format("%Y-%m-%d %H:%M")),
                    (None, Some(t)) => format!("last used {}", t.format("%Y-%m-%d %H:%M")),
                    (None, None) => "never used".into(),
                };
                println!("{}  {:<12}  {:<8}  {:<24}  {}", k.id, k.prefix, k.role.as_str(), k.name, state);
            }
        }
        KeysCommand::Revoke { key } => {
            let k = store.revoke_key(key).await?;
            println!("Revoked key '{}' ({}). Running servers stop accepting it within 10 seconds.", k.name, k.prefix);
        }
    }
    Ok(())
}

async fn users(config: Config, cmd: UsersCommand) -> anyhow::Result<()> {
    let store = connect(&config).await?;
    match cmd {
        UsersCommand::Create { email, name, admin, role, password_stdin } => {
            let password_hash = if password_stdin {
                let mut pw = String::new();
                std::io::stdin().read_to_string(&mut pw).context("could not read the password from standard input")?;
                // A trailing newline from `echo` or a terminal is not part of the password.
                let pw = pw.strip_suffix('\n').map(|p| p.strip_suffix('\r').unwrap_or(p)).unwrap_or(&pw);
                Some(rapport_web::password::hash(pw).map_err(anyhow::Error::msg)?)
            } else {
                None
            };
            let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_string());
            let role = if admin { Role::Admin } else { role };
            let draft = UserDraft { name: Some(name), email: Some(email), role: Some(role), active: Some(true) };
            let created = match password_hash {
                Some(hash) => store.create_user_with_password(draft, hash).await,
                None => store.create_user(draft, None).await.map(|c| match c {
                    rapport_store::Created::New(u) => u,
                    rapport_store::Created::Replayed { .. } => unreachable!("no idempotency key was given"),
                }),
            };
            match created {
                Ok(u) => println!("Created {} {} <{}> ({})", u.role.as_str(), u.name, u.email, u.id),
                Err(rapport_store::StoreError::Invalid(v)) => bail!("{v}"),
                Err(rapport_store::StoreError::Conflict { message, .. }) => bail!("{message}"),
                Err(e) => return Err(e.into()),
            }
        }
        UsersCommand::List => {
            let page = store
                .list_users(Default::default(), rapport_store::PageRequest { limit: Some(500), ..Default::default() })
                .await?;
            for u in page.data {
                println!(
                    "{}  {:<8}  {:<6}  {} <{}>",
                    u.id,
                    u.role.as_str(),
                    if u.active { "active" } else { "off" },
                    u.name,
                    u.email
                );
            }
        }
    }
    Ok(())
}

async fn run_demo(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let url = DatabaseUrl::parse(&config.database_url).map_err(anyhow::Error::msg)?;
    if args.fresh
        && let DatabaseUrl::Sqlite(path) = &url
    {
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
            }
        }
    }
    let store = connect(&config).await?;
    if store.count_contacts().await? == 0 {
        let bar = indicatif::ProgressBar::new(args.contacts as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("Creating the demo business {bar:40.cyan/blue} {pos}/{len} records ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let progress = |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        };
        let summary = demo::seed(&store, args.contacts, 2026, &progress).await?;
        bar.finish_and_clear();
        eprintln!(
            "Created {} users, {} contacts, {} companies, {} relations, {} notes and {} open tasks in {} (the owner is {}).",
            summary.users,
            summary.contacts,
            summary.companies,
            summary.relations,
            summary.notes,
            summary.tasks,
            url.redacted(),
            summary.admin_email
        );
        eprintln!("{}", summary.events_line());
        eprintln!("{}", summary.segments_line());
        eprintln!("{}", summary.workflows_line());
        eprintln!("{}", summary.messaging_line());
    } else {
        eprintln!("Using the existing demo data in {} (add --fresh to start over).", url.redacted());
    }
    let key = store.create_key("demo".into(), Role::Admin, None, None, false).await?.context("no demo key was created")?;
    let (login_email, login_password) = demo::ensure_login(&store).await?;
    let base = format!("http://{}", config.bind);
    println!();
    println!("  Rapport demo is ready.");
    println!("  URL:        {base}/");
    println!("  Sign in:    {login_email}");
    println!("  Password:   {login_password}");
    println!("  API docs:   {base}/api/docs");
    println!("  Admin key:  {}", key.secret);
    println!();
    println!("  Try:  curl -H 'Authorization: Bearer {}' '{base}/api/v1/contacts?limit=3'", key.secret);
    println!();
    if args.no_serve {
        return Ok(());
    }
    serve_store(store, &config, None).await
}
