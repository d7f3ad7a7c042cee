//! `rapport bench email`: rendering and handing personalised messages to a local SMTP sink
//! through the server's own delivery code, beside postfix's load generator `smtp-source`
//! against the same sink with the same message size and session count.
//!
//! The contacts, one marketing template with a layout, and one outbox message per contact are
//! made first (not timed). Then [`rapport_web::email::deliver_due`] — what the server's email
//! worker runs — is called until the outbox is empty, with `--sessions` connections to an
//! in-process [`SmtpSink`] that only counts. Time is split with the counters of the delivery
//! code and of the SMTP sender. See docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rapport_channels::email::sink::{Behaviour, SmtpSink};
use rapport_channels::email::{EmailSender, SendLimits, SendTimes, SmtpSettings};
use rapport_core::SystemClock;
use rapport_core::contact::{ContactDraft, EmailDraft};
use rapport_core::message::{LayoutDraft, TemplateDraft, TemplateInput};
use rapport_store::automation::NewMessage;
use rapport_store::{DatabaseUrl, Store, StoreOptions};
use rapport_web::email::{DeliveryTimes, EmailChannel, deliver_due, delivery_times};
use rapport_web::{AppState, WebConfig};
use uuid::Uuid;

use crate::demo::thousands;

/// Target from the email issue: Rapport's rate against smtp-source's.
const TARGET_RATIO: f64 = 0.8;
/// Contacts created per transaction before the run.
const SEED_BATCH: usize = 5000;
/// Messages queued per transaction before the run.
const QUEUE_BATCH: usize = 10_000;
/// Messages sent to a sink that keeps them, before the timed run, to measure their size.
const SAMPLE: usize = 1000;
const TEMPLATE: &str = "Spring newsletter";

/// `rapport bench email --help`.
pub const LONG_ABOUT: &str = "Measures sending personalised email: rendering each message for its contact and handing \
it to an SMTP server, through the code the server's email worker runs.\n\n\
Creates --messages contacts (with addresses at twenty domains), one marketing template with a layout (the contact's \
name, recommendations, a few links, the unsubscribe link), and queues one message to each (not timed). A first \
1,000 messages go to a sink that keeps them, to measure their size (p50). Then rapport_web::email::deliver_due is \
called until the outbox is empty, with --sessions connections to an in-process SMTP sink on a loopback port that \
counts messages and keeps nothing; reported: messages/s, resident memory (RSS) over the run and its peak, and where \
the time went (the person's data and rendering, MIME, the SMTP conversation, recording outcomes).\n\n\
Then postfix's load generator smtp-source sends the same number of messages of the same size with the same number \
of sessions to the same sink, twice: as it does by default (a new connection for each message; the target is Rapport \
at least 80% of this rate) and reusing its connections as Rapport does (-d). smtp-source comes with postfix (Debian: apt-get install \
postfix, or scripts/install-smtp-source, which leaves no mail server running); without it, Rapport's figures are \
still printed.\n\n\
The database is a fresh SQLite file in the temporary directory, removed afterwards unless --keep. With \
--database-url postgres://… the run uses a new schema in that database, dropped afterwards unless --keep. \
RAPPORT_DATABASE_URL and rapport.toml are ignored, so a configured database is never written to.";

#[derive(clap::Args)]
pub struct EmailArgs {
    /// Messages to send (one per contact)
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// SMTP connections at once, for Rapport and for smtp-source
    #[arg(long, default_value_t = 16)]
    sessions: u32,
    /// smtp-source to run [default: smtp-source on the PATH, or /usr/sbin/smtp-source]
    #[arg(long, value_name = "PATH")]
    smtp_source: Option<PathBuf>,
    /// Keep the database afterwards (the SQLite file or the PostgreSQL schema)
    #[arg(long)]
    keep: bool,
}

/// Runs the benchmark. `database_url` is the global `--database-url` flag, when given.
pub async fn run(args: EmailArgs, database_url: Option<String>) -> anyhow::Result<()> {
    if args.messages < 100 {
        bail!("--messages must be at least 100");
    }
    if !(1..=256).contains(&args.sessions) {
        bail!("--sessions must be between 1 and 256");
    }
    let target = Target::create(database_url.as_deref()).await?;
    eprintln!("Database: {}", target.describe());
    let outcome = bench(&args, &target).await;
    target.finish(args.keep).await;
    let mut results = outcome?;
    // Rapport's figures first, so that a missing or failing smtp-source loses nothing.
    results.print_rapport(&args);
    results.smtp_source = compare(&args, &results).await;
    results.print_comparison(&args);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------------

enum Target {
    Sqlite { path: PathBuf, ours: bool },
    Postgres { url: String, schema: String },
}

impl Target {
    async fn create(database_url: Option<&str>) -> anyhow::Result<Target> {
        let url = match database_url {
            None => {
                let path = std::env::temp_dir().join(format!("rapport-bench-email-{}.db", std::process::id()));
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
                let schema = format!("bench_email_{}", Uuid::new_v4().simple());
                crate::bench_segments::pg_run(&url, None, format!("CREATE SCHEMA {schema}")).await?;
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

    fn name(&self) -> &'static str {
        match self {
            Target::Sqlite { .. } => "SQLite",
            Target::Postgres { .. } => "PostgreSQL",
        }
    }

    async fn open(&self) -> anyhow::Result<Store> {
        let (url, schema) = match self {
            Target::Sqlite { path, .. } => (DatabaseUrl::Sqlite(path.clone()), None),
            Target::Postgres { url, schema } => (DatabaseUrl::Postgres(url.clone()), Some(schema.clone())),
        };
        let shown = url.redacted();
        let mut options = StoreOptions { clock: Arc::new(SystemClock), pg_schema: schema, ..StoreOptions::default() };
        options.automation.ready_channels.push(rapport_core::workflow::MessageChannel::Email);
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
                } else if let Err(e) =
                    crate::bench_segments::pg_run(url, None, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await
                {
                    eprintln!("warning: could not drop the schema {schema}: {e:#}");
                }
            }
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

// ---------------------------------------------------------------------------------------------
// The dataset
// ---------------------------------------------------------------------------------------------

const FIRST_NAMES: &[&str] =
    &["Ada", "Bruno", "Chloé", "Dmitri", "Elif", "Farah", "Gustavo", "Hana", "Ivan", "Jia", "Kwame", "Lena", "Mateus", "Noor"];
const LAST_NAMES: &[&str] =
    &["Andersen", "Bianchi", "Castillo", "Dubois", "Eriksson", "Fischer", "García", "Haddad", "Jensen", "Kowalski", "Lindqvist"];
const DOMAINS: &[&str] = &[
    "gmail.example",
    "outlook.example",
    "yahoo.example",
    "icloud.example",
    "gmx.example",
    "web.example",
    "orange.example",
    "libero.example",
    "proton.example",
    "fastmail.example",
    "acme-logistics.example",
    "bakery-schmidt.example",
    "northwind.example",
    "contoso.example",
    "fabrikam.example",
    "tailspin.example",
    "wingtip.example",
    "adatum.example",
    "litware.example",
    "woodgrove.example",
];

fn contact_draft(i: usize) -> ContactDraft {
    let first = FIRST_NAMES[i % FIRST_NAMES.len()];
    let last = LAST_NAMES[i / FIRST_NAMES.len() % LAST_NAMES.len()];
    let local: String = format!("{first}.{last}").to_lowercase().chars().filter(char::is_ascii_alphanumeric).collect();
    ContactDraft {
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        emails: Some(vec![EmailDraft { address: format!("{local}.{i}@{}", DOMAINS[i % DOMAINS.len()]), ..Default::default() }]),
        source: Some("bench".into()),
        ..Default::default()
    }
}

/// A newsletter as a shop would send it: a branded layout, the person's name, their
/// recommendations, a few links, the unsubscribe link.
const LAYOUT_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Fahrradhaus Keller</title></head>
<body style="margin:0;background:#f4f1ec;font-family:Georgia,serif;color:#2b2b2b">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
<table role="presentation" width="600" cellpadding="24" cellspacing="0" style="background:#ffffff">
<tr><td style="border-bottom:3px solid #7a4e2d"><a href="https://shop.example/?utm_source=newsletter"
 style="font-size:24px;color:#7a4e2d;text-decoration:none">Fahrradhaus Keller</a></td></tr>
<tr><td>{{ content }}</td></tr>
<tr><td style="font-size:12px;color:#777;border-top:1px solid #ddd">
Fahrradhaus Keller GmbH · Lindenstraße 12 · 10969 Berlin · <a href="https://shop.example/impressum">Imprint</a><br>
You get this email because you are a customer of ours.
<a href="{{ unsubscribe_url }}">Unsubscribe</a> · <a href="{{ preferences_url }}">Choose what you get</a>
</td></tr></table></td></tr></table></body></html>"#;

const LAYOUT_TEXT: &str = "FAHRRADHAUS KELLER\n\n{{ content }}\n\n--\nFahrradhaus Keller GmbH, Lindenstraße 12, 10969 Berlin\n\
Unsubscribe: {{ unsubscribe_url }}\nChoose what you get: {{ preferences_url }}\n";

const BODY_HTML: &str = r#"<h1 style="font-size:22px">Spring is here, {{ contact.first_name }}!</h1>
<p>Dear {{ contact.first_name }} {{ contact.last_name }},</p>
<p>the days are getting longer and the roads are drying out. Time to get your bike ready: this
week our workshop checks brakes, gears and tyres for a fixed price, and every customer gets a
free chain clean.</p>
<p><a href="https://shop.example/workshop/spring-check?utm_campaign=spring"
 style="display:inline-block;background:#7a4e2d;color:#fff;padding:10px 18px;text-decoration:none">Book your spring check</a></p>
{% if recommendations %}
<h2 style="font-size:18px">Picked for you</h2>
<ul>
{% for r in recommendations %}
<li><a href="https://shop.example/p/{{ r.sku }}?utm_campaign=spring">{{ r.name or r.sku }}</a>{% if r.price %} — {{ r.price }} {{ r.currency }}{% endif %}</li>
{% endfor %}
</ul>
{% endif %}
<p>New this season: commuter bikes with belt drive, lights that charge while you ride, and rain
gear that actually breathes. <a href="https://shop.example/new?utm_campaign=spring">See what's new</a>.</p>
<p>See you soon in the shop,<br>Sabine Keller and the team</p>"#;

const BODY_TEXT: &str = "Dear {{ contact.first_name }} {{ contact.last_name }},\n\n\
the days are getting longer and the roads are drying out. Time to get your bike ready: this week our workshop \
checks brakes, gears and tyres for a fixed price, and every customer gets a free chain clean.\n\n\
Book your spring check: https://shop.example/workshop/spring-check?utm_campaign=spring\n\n\
{% if recommendations %}Picked for you:\n{% for r in recommendations %}- {{ r.name or r.sku }}: https://shop.example/p/{{ r.sku }}\n{% endfor %}\n{% endif %}\
New this season: commuter bikes with belt drive, lights that charge while you ride, and rain gear that actually \
breathes. https://shop.example/new?utm_campaign=spring\n\n\
See you soon in the shop,\nSabine Keller and the team";

async fn seed(store: &Store, n: usize) -> anyhow::Result<Vec<(Uuid, String)>> {
    let bar = progress(n as u64, "Creating contacts");
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let from = out.len();
        let to = (from + SEED_BATCH).min(n);
        let drafts: Vec<ContactDraft> = (from..to).map(contact_draft).collect();
        let addresses: Vec<String> = drafts
            .iter()
            .map(|d| d.emails.as_ref().and_then(|e| e.first()).map(|e| e.address.clone()).unwrap_or_default())
            .collect();
        let ids = store.create_contacts(drafts).await.with_context(|| format!("creating contacts {from}..{to}"))?;
        out.extend(ids.into_iter().zip(addresses));
        bar.set_position(out.len() as u64);
    }
    bar.finish_and_clear();

    store
        .put_layout(LayoutDraft { name: Some("Brand".into()), html: Some(LAYOUT_HTML.into()), text: Some(LAYOUT_TEXT.into()) })
        .await
        .context("creating the layout")?;
    let template = TemplateInput::parse(TemplateDraft {
        name: Some(TEMPLATE.into()),
        subject: Some("{{ contact.first_name }}, your bike is ready for spring".into()),
        html: Some(BODY_HTML.into()),
        text: Some(BODY_TEXT.into()),
        layout: Some("Brand".into()),
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!("the benchmark's template: {e}"))?;
    store.create_template(template).await.context("creating the template")?;
    Ok(out)
}

async fn queue(store: &Store, contacts: &[(Uuid, String)], key: &str) -> anyhow::Result<u64> {
    let mut added = 0;
    for (c, chunk) in contacts.chunks(QUEUE_BATCH).enumerate() {
        let messages = chunk
            .iter()
            .enumerate()
            .map(|(i, (id, address))| NewMessage {
                contact_id: *id,
                recipient: address.clone(),
                idempotency_key: format!("{key}:{}", c * QUEUE_BATCH + i),
            })
            .collect();
        added += store.queue_messages("email", TEMPLATE, true, messages).await.context("queueing messages")?;
    }
    Ok(added)
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("{what} {{bar:40.cyan/blue}} {{pos}}/{{len}} ({{eta}})"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

fn channel(sink: &SmtpSink, sessions: u32) -> anyhow::Result<EmailChannel> {
    let settings = SmtpSettings::parse(&sink.url()).map_err(anyhow::Error::msg)?;
    // No rate limits: the sink is the relay, and the point is how fast Rapport can go.
    let limits = SendLimits { per_second: 0, per_domain_per_second: 0, pool_size: sessions, timeout: Duration::from_secs(60) };
    Ok(EmailChannel {
        sender: EmailSender::new(settings, limits).map_err(anyhow::Error::msg)?,
        from: "Fahrradhaus Keller <news@shop.example>".parse().context("the sender's address")?,
        public_url: "https://crm.shop.example".into(),
    })
}

/// Memory and progress at one point of the run.
#[derive(Clone, Copy)]
struct Mark {
    messages: u64,
    at: Duration,
    rss_kib: Option<u64>,
}

struct Results {
    backend: &'static str,
    messages: u64,
    seed_time: Duration,
    queue_time: Duration,
    sizes: Sizes,
    wall: Duration,
    passes: u64,
    marks: Vec<Mark>,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    peak_kib: Option<u64>,
    peak_reset: bool,
    delivery: DeliveryTimes,
    sender: SendTimes,
    sink_bytes: u64,
    /// Kept for smtp-source, which sends to the same sink.
    sink: Arc<SmtpSink>,
    smtp_source: Result<SourceRun, String>,
}

struct Sizes {
    p50: usize,
    min: usize,
    max: usize,
}

async fn bench(args: &EmailArgs, target: &Target) -> anyhow::Result<Results> {
    let store = target.open().await?;
    let t = Instant::now();
    let contacts = seed(&store, args.messages).await?;
    let seed_time = t.elapsed();

    // The sample: sent first, alone in the outbox, to a sink that keeps what it gets.
    let sample_sink = SmtpSink::start(Behaviour::accept()).await.context("starting the sample SMTP sink")?;
    let sample_state = AppState::new(store.clone(), WebConfig::default()).with_email(channel(&sample_sink, args.sessions)?);
    let sample = &contacts[..SAMPLE.min(contacts.len())];
    let sample_len = sample.len() as u64;
    queue(&store, sample, "bench-email-sample").await?;
    while deliver_due(&sample_state).await > 0 {}
    let mut sizes: Vec<usize> = sample_sink.messages().iter().map(|m| m.data.len()).collect();
    if sizes.len() != sample.len() {
        bail!("{} of {} sample messages reached the sink; {}", sizes.len(), sample.len(), outbox_summary(&store).await);
    }
    sizes.sort_unstable();
    let sizes = Sizes { p50: sizes[sizes.len() / 2], min: sizes[0], max: sizes[sizes.len() - 1] };
    drop((sample_state, sample_sink));

    let t = Instant::now();
    let queued = queue(&store, &contacts, "bench-email").await?;
    let queue_time = t.elapsed();
    if queued != contacts.len() as u64 {
        bail!("queued {queued} of {} messages", contacts.len());
    }
    drop(contacts);
    eprintln!(
        "Created {} contacts in {:.1} s and queued a message to each in {:.1} s; p50 message size {} bytes.",
        thousands(args.messages as u64),
        seed_time.as_secs_f64(),
        queue_time.as_secs_f64(),
        thousands(sizes.p50 as u64)
    );

    let sink = Arc::new(SmtpSink::start(Behaviour::count_only()).await.context("starting the SMTP sink")?);
    let state = AppState::new(store.clone(), WebConfig::default()).with_email(channel(&sink, args.sessions)?);
    let sender = state.email.as_ref().map(|c| c.sender.clone()).context("the email channel")?;

    let rss_before_kib = proc_status_kib("VmRSS");
    // Writing 5 to clear_refs resets the peak (VmHWM), so the peak reported is the run's own.
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let total = args.messages as u64;
    let delivery_before = delivery_times();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, sink) = (done.clone(), sink.clone());
        tokio::spawn(async move {
            let mut marks = Vec::new();
            let mut next = 1;
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let n = sink.accepted();
                while next <= 10 && n * 10 >= total * next {
                    let mark = Mark { messages: n, at: started.elapsed(), rss_kib: proc_status_kib("VmRSS") };
                    eprintln!(
                        "{:>3}%  {n:>9} messages  {:>7.1} s  {:>7.0} messages/s  RSS {}",
                        next * 10,
                        mark.at.as_secs_f64(),
                        n as f64 / mark.at.as_secs_f64().max(1e-9),
                        mib(mark.rss_kib)
                    );
                    marks.push(mark);
                    next += 1;
                }
            }
            marks
        })
    };
    let mut passes = 0;
    loop {
        passes += 1;
        if deliver_due(&state).await == 0 {
            break;
        }
    }
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let marks = watcher.await?;
    let delivery = minus(delivery_times(), delivery_before);
    let peak_kib = proc_status_kib("VmHWM");
    let rss_after_kib = proc_status_kib("VmRSS");
    if sink.accepted() != total {
        bail!("the sink accepted {} of {total} messages; {}", sink.accepted(), outbox_summary(&store).await);
    }
    let sent = store.read(|tx| tx.query_one("SELECT count(*) FROM message_outbox WHERE status = 'sent'", &[])?.i64(0)).await?;
    if sent as u64 != total + sample_len {
        bail!("{sent} messages are marked sent; {}", outbox_summary(&store).await);
    }
    Ok(Results {
        backend: target.name(),
        messages: total,
        seed_time,
        queue_time,
        wall,
        passes,
        marks,
        rss_before_kib,
        rss_after_kib,
        peak_kib,
        peak_reset,
        delivery,
        sender: sender.times(),
        sink_bytes: sink.bytes(),
        sizes,
        sink,
        smtp_source: Err("not run".into()),
    })
}

/// Where the time of the run went: the delivery code's counters, minus those before the run.
fn minus(a: DeliveryTimes, b: DeliveryTimes) -> DeliveryTimes {
    DeliveryTimes {
        messages: a.messages - b.messages,
        claim: a.claim.saturating_sub(b.claim),
        prepare: a.prepare.saturating_sub(b.prepare),
        compose: a.compose.saturating_sub(b.compose),
        relay: a.relay.saturating_sub(b.relay),
        record: a.record.saturating_sub(b.record),
        record_wait: a.record_wait.saturating_sub(b.record_wait),
        transactions: a.transactions - b.transactions,
    }
}

/// The outbox by status, and the first reason given, for a run that went wrong.
async fn outbox_summary(store: &Store) -> String {
    let read = store
        .read(|tx| {
            let counts = tx
                .query("SELECT status, count(*) FROM message_outbox GROUP BY status ORDER BY status", &[])?
                .iter()
                .map(|r| Ok(format!("{} {}", r.string(0)?, r.i64(1)?)))
                .collect::<rapport_store::Result<Vec<_>>>()?;
            let reason = tx
                .query_opt("SELECT status_reason FROM message_outbox WHERE status_reason IS NOT NULL LIMIT 1", &[])?
                .map(|r| r.string(0))
                .transpose()?;
            Ok((counts, reason))
        })
        .await;
    match read {
        Ok((counts, reason)) => {
            format!("the outbox holds {}{}", counts.join(", "), reason.map(|r| format!(" (\"{r}\")")).unwrap_or_default())
        }
        Err(e) => format!("the outbox could not be read: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// smtp-source
// ---------------------------------------------------------------------------------------------

struct SourceRun {
    /// A new connection for each message (smtp-source's default).
    wall: Duration,
    /// Connections kept for the next message (`-d`), as Rapport's sender does.
    wall_reusing: Duration,
    /// Bytes per message as the sink counted them (headers included).
    size: u64,
    /// The `-l` given: the body, without smtp-source's own headers.
    length: u64,
}

impl SourceRun {
    fn rate(&self, messages: u64) -> f64 {
        messages as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn rate_reusing(&self, messages: u64) -> f64 {
        messages as f64 / self.wall_reusing.as_secs_f64().max(1e-9)
    }
}

fn smtp_source_path(args: &EmailArgs) -> Option<PathBuf> {
    if let Some(p) = &args.smtp_source {
        return Some(p.clone());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("smtp-source"))
        .find(|p| p.is_file());
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/smtp-source")).filter(|p| p.is_file()))
}

/// Runs smtp-source against the sink and measures its wall time; the sink's counters say what
/// arrived.
async fn smtp_source(
    path: &Path,
    sink: &SmtpSink,
    reuse: bool,
    sessions: u32,
    messages: u64,
    length: u64,
) -> Result<Duration, String> {
    let before = sink.accepted();
    let mut command = std::process::Command::new(path);
    if reuse {
        command.arg("-d");
    }
    command
        .args(["-s", &sessions.to_string(), "-m", &messages.to_string(), "-l", &length.to_string()])
        .args(["-f", "news@shop.example", "-t", "customer@gmail.example"])
        .arg(format!("127.0.0.1:{}", sink.addr().port()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output()).await.map_err(|e| e.to_string())?;
    let wall = started.elapsed();
    let output = output.map_err(|e| format!("{} did not run: {e}", path.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed: {}", path.display(), String::from_utf8_lossy(&output.stderr).trim()));
    }
    let arrived = sink.accepted() - before;
    if arrived != messages {
        return Err(format!("smtp-source delivered {arrived} of {messages} messages"));
    }
    Ok(wall)
}

/// smtp-source with the same sessions, message count and size, against the same sink.
async fn compare(args: &EmailArgs, r: &Results) -> Result<SourceRun, String> {
    let Some(path) = smtp_source_path(args) else {
        return Err("smtp-source was not found: it comes with postfix (Debian: `apt-get install postfix`, or \
                    `scripts/install-smtp-source`, which leaves no mail server running), or give --smtp-source PATH"
            .into());
    };
    eprintln!("Running {} against the same sink…", path.display());
    // smtp-source adds its own headers to the -l bytes of body: measure them first.
    const PROBE: u64 = 20;
    const PROBE_LENGTH: u64 = 1000;
    let bytes = r.sink.bytes();
    smtp_source(&path, &r.sink, true, 1, PROBE, PROBE_LENGTH).await?;
    let overhead = ((r.sink.bytes() - bytes) / PROBE).saturating_sub(PROBE_LENGTH);
    let length = (r.sizes.p50 as u64).saturating_sub(overhead).max(1);
    let bytes = r.sink.bytes();
    let wall = smtp_source(&path, &r.sink, false, args.sessions, r.messages, length).await?;
    let size = (r.sink.bytes() - bytes) / r.messages;
    let wall_reusing = smtp_source(&path, &r.sink, true, args.sessions, r.messages, length).await?;
    Ok(SourceRun { wall, wall_reusing, size, length })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

impl Results {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn print_rapport(&self, args: &EmailArgs) {
        let n = self.messages as f64;
        let per = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6 / n);
        println!();
        println!(
            "## rapport bench email: {} messages, {} sessions, {} ({} s to create the contacts, {} s to queue)",
            thousands(self.messages),
            args.sessions,
            self.backend,
            fmt1(self.seed_time),
            fmt1(self.queue_time)
        );
        println!();
        println!("| | |");
        println!("|---|---:|");
        println!(
            "| messages sent | {} in {} s, **{} messages/s** |",
            thousands(self.messages),
            fmt1(self.wall),
            thousands(self.rate() as u64)
        );
        println!(
            "| message size | p50 {} bytes (min {}, max {}, of {SAMPLE}); mean {} bytes at the sink |",
            thousands(self.sizes.p50 as u64),
            thousands(self.sizes.min as u64),
            thousands(self.sizes.max as u64),
            thousands(self.sink_bytes / self.messages.max(1))
        );
        println!(
            "| delivery passes / outcome transactions | {} / {} ({:.1} outcomes each) |",
            thousands(self.passes),
            thousands(self.delivery.transactions),
            n / self.delivery.transactions.max(1) as f64
        );
        println!(
            "| RSS before / after / peak{} | {} / {} / {} |",
            if self.peak_reset { " (of the run)" } else { " (of the process)" },
            mib(self.rss_before_kib),
            mib(self.rss_after_kib),
            mib(self.peak_kib)
        );
        println!();
        println!("Progress (memory stays flat when RSS does not grow with the messages sent):");
        println!();
        println!("| sent | time | messages/s so far | RSS |");
        println!("|---:|---:|---:|---:|");
        for m in &self.marks {
            println!(
                "| {} | {} s | {} | {} |",
                thousands(m.messages),
                fmt1(m.at),
                thousands((m.messages as f64 / m.at.as_secs_f64().max(1e-9)) as u64),
                mib(m.rss_kib)
            );
        }

        // Session time: what the sessions did, summed over them; the rest of the wall time
        // times the sessions is the passes' serial parts (claiming, loading templates) and the
        // tail of each batch.
        let d = &self.delivery;
        let s = &self.sender;
        let session_total = self.wall * args.sessions;
        let accounted = d.compose + d.relay + d.record_wait;
        // The MIME message is built while composing (before waiting for the last outcome), so
        // it is part of `compose`; the relay's time outside the sender is reading its answer.
        let compose = d.compose.saturating_sub(s.mime);
        let relay_rest = d.relay.saturating_sub(s.waiting + s.smtp);
        let idle = session_total.saturating_sub(accounted);
        let share = |x: Duration| format!("{:.0}%", 100.0 * x.as_secs_f64() / session_total.as_secs_f64().max(1e-9));
        println!();
        println!(
            "Where the time went, summed over the {} sessions ({} s × {} = {} s):",
            args.sessions,
            fmt1(self.wall),
            args.sessions,
            fmt1(session_total)
        );
        println!();
        println!("| part | per message | share |");
        println!("|---|---:|---:|");
        println!(
            "| composing: the person's data (store reads), rendering the template, tracking links | {} | {} |",
            per(compose),
            share(compose)
        );
        println!("| building the MIME message | {} | {} |", per(s.mime), share(s.mime));
        println!("| waiting for a connection | {} | {} |", per(s.waiting), share(s.waiting));
        println!(
            "| **the SMTP conversation** (MAIL, RCPT, DATA, the sink's replies) | {} | **{}** |",
            per(s.smtp),
            share(s.smtp)
        );
        println!("| the relay's answer as an outcome | {} | {} |", per(relay_rest), share(relay_rest));
        println!(
            "| waiting for the last outcome to be written (after composing the next message) | {} | {} |",
            per(d.record_wait),
            share(d.record_wait)
        );
        println!("| no message in hand (claiming, loading templates, a batch's tail) | {} | {} |", per(idle), share(idle));
        println!();
        println!(
            "Serial parts: claiming {} s over {} passes, loading templates {} s, writing outcomes {} s in {} transactions \
             (overlapping the sending).",
            fmt2(d.claim),
            thousands(self.passes),
            fmt2(d.prepare),
            fmt2(d.record),
            thousands(d.transactions)
        );
    }

    fn print_comparison(&self, args: &EmailArgs) {
        println!();
        match &self.smtp_source {
            Err(why) => {
                println!("smtp-source: not measured: {why}");
                println!();
                println!("Rapport: **{} messages/s**.", thousands(self.rate() as u64));
            }
            Ok(run) => {
                let theirs = run.rate(self.messages);
                let ratio = self.rate() / theirs.max(1e-9);
                let reusing = run.rate_reusing(self.messages);
                println!(
                    "| {} messages, {} sessions, same sink | messages/s | message size at the sink |",
                    thousands(self.messages),
                    args.sessions
                );
                println!("|---|---:|---:|");
                println!(
                    "| Rapport (render, MIME, SMTP, record) | **{}** | {} bytes (mean) |",
                    thousands(self.rate() as u64),
                    thousands(self.sink_bytes / self.messages.max(1))
                );
                println!(
                    "| postfix smtp-source (-l {}: a connection per message, its default) | **{}** | {} bytes |",
                    run.length,
                    thousands(theirs as u64),
                    thousands(run.size)
                );
                println!(
                    "| postfix smtp-source -d (connections reused, as Rapport does) | {} | {} bytes |",
                    thousands(reusing as u64),
                    thousands(run.size)
                );
                println!();
                println!(
                    "Rapport reaches **{:.0}%** of smtp-source's rate (target at least {:.0}%): {}. \
                     Against smtp-source reusing its connections: {:.0}%.",
                    ratio * 100.0,
                    TARGET_RATIO * 100.0,
                    if ratio >= TARGET_RATIO { "met" } else { "missed" },
                    100.0 * self.rate() / reusing.max(1e-9)
                );
            }
        }
    }
}

fn fmt1(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn fmt2(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// A value from /proc/self/status, in KiB (Linux only).
fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..].split_whitespace().next()?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}
