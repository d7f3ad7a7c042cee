//! The email channel of the outbox: renders each queued message with its template and the
//! person's data, hands it to the SMTP relay, and records the outcome; and the unsubscribe
//! links every marketing message carries (`/u/{token}`: GET shows a page, POST unsubscribes at
//! once, without cookies, as RFC 8058 one-click asks).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rapport_channels::email::{BuiltEmail, EmailSender, ListUnsubscribe, Mailbox, OutgoingEmail, SendLimits};
use rapport_channels::template::{LayoutSource, RenderError, TemplateSource, Templates};
use rapport_channels::token::{self, Purpose};
use rapport_core::message::{MAX_SEND_ATTEMPTS as MAX_ATTEMPTS, retry_after};
use rapport_store::automation::MessageResult;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::AppState;

/// What sending email needs: the relay, who it is from, and where links point.
pub struct EmailChannel {
    pub sender: EmailSender,
    pub from: Mailbox,
    /// The address people reach this Rapport at (`https://crm.example.com`), for links in mail.
    pub public_url: String,
}

/// How long a claimed message is this instance's: longer than one SMTP transaction takes.
const LEASE_SECS: i64 = 120;

/// The unsubscribe link of a message to a contact.
fn unsubscribe_url(public_url: &str, secret: &[u8], contact: Uuid, message: Uuid) -> String {
    let t = token::sign(secret, Purpose::Unsubscribe, *contact.as_bytes(), *message.as_bytes());
    format!("{}/u/{t}", public_url.trim_end_matches('/'))
}

/// Messages claimed at once for each connection of the pool: enough that claiming (one write)
/// is a small part of sending them, few enough that a batch goes out well within its lease.
const CLAIM_PER_SESSION: usize = 256;
const MAX_CLAIM: usize = 4096;
/// Outcomes recorded in one transaction at most.
const RECORD_BATCH: usize = 256;

/// How many messages to claim at once. With rate limits, the whole batch must be able to go out
/// within a quarter of the lease even if every message is for the same domain.
fn claim_size(limits: SendLimits) -> usize {
    let mut n = usize::try_from(limits.pool_size).unwrap_or(MAX_CLAIM).saturating_mul(CLAIM_PER_SESSION).clamp(50, MAX_CLAIM);
    let quarter_lease = usize::try_from(LEASE_SECS / 4).unwrap_or(1);
    for rate in [limits.per_second, limits.per_domain_per_second] {
        if rate > 0 {
            n = n.min(usize::try_from(rate).unwrap_or(usize::MAX).saturating_mul(quarter_lease));
        }
    }
    n.max(1)
}

/// Where delivery passes have spent their time in this process, summed (see
/// [`delivery_times`]); the sender keeps its own part ([`EmailSender::times`]).
#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    claim: AtomicU64,
    prepare: AtomicU64,
    compose: AtomicU64,
    relay: AtomicU64,
    record: AtomicU64,
    record_wait: AtomicU64,
    transactions: AtomicU64,
}

static COUNTERS: Counters = Counters {
    messages: AtomicU64::new(0),
    claim: AtomicU64::new(0),
    prepare: AtomicU64::new(0),
    compose: AtomicU64::new(0),
    relay: AtomicU64::new(0),
    record: AtomicU64::new(0),
    record_wait: AtomicU64::new(0),
    transactions: AtomicU64::new(0),
};

fn add(to: &AtomicU64, d: Duration) {
    to.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Time spent by [`deliver_due`] in this process so far, by part. The parts done by each
/// session (`compose`, `relay`, `record_wait`) are summed over sessions, so with 16 sessions
/// they grow up to 16 times as fast as the clock; `claim`, `prepare` and `record` are done once
/// per pass or per transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryTimes {
    pub messages: u64,
    /// Claiming due messages (one write per pass).
    pub claim: Duration,
    /// Loading and compiling the templates (once per pass).
    pub prepare: Duration,
    /// Making each message: the person's data, rendering, tracking links, the MIME message
    /// ([`EmailSender::times`] has the MIME part).
    pub compose: Duration,
    /// Handing each message to the relay: waiting for a connection, the SMTP conversation
    /// ([`EmailSender::times`] has the split).
    pub relay: Duration,
    /// Writing outcomes, per transaction.
    pub record: Duration,
    /// Sessions waiting for their last outcome to be written before sending the next message
    /// (beyond the time spent composing it meanwhile).
    pub record_wait: Duration,
    /// Transactions that wrote outcomes.
    pub transactions: u64,
}

pub fn delivery_times() -> DeliveryTimes {
    let c = &COUNTERS;
    let d = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
    DeliveryTimes {
        messages: c.messages.load(Ordering::Relaxed),
        claim: d(&c.claim),
        prepare: d(&c.prepare),
        compose: d(&c.compose),
        relay: d(&c.relay),
        record: d(&c.record),
        record_wait: d(&c.record_wait),
        transactions: c.transactions.load(Ordering::Relaxed),
    }
}

/// One delivery pass at a time per channel (the background deliverer and the manual clock's
/// handler both run passes): every session of a pass waits for its last message's outcome to
/// be written before taking the next, so at most `pool_size` messages are ever accepted by the
/// relay and not yet marked sent — the ones a crash would send again.
fn pass_lock(channel: &Arc<EmailChannel>) -> Arc<tokio::sync::Mutex<()>> {
    type Locks = Vec<(Weak<EmailChannel>, Arc<tokio::sync::Mutex<()>>)>;
    static LOCKS: std::sync::Mutex<Locks> = std::sync::Mutex::new(Vec::new());
    let mut locks = LOCKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // A live `Weak` keeps its allocation, so no other channel can have the same address.
    locks.retain(|(w, _)| w.strong_count() > 0);
    if let Some((_, lock)) = locks.iter().find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(channel))) {
        return lock.clone();
    }
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    locks.push((Arc::downgrade(channel), lock.clone()));
    lock
}

/// A message's outcome on its way to the database, and how its session learns it is written.
type Outcome = (Uuid, MessageResult, oneshot::Sender<()>);

/// One delivery pass: claims due email messages in batches (the next while the last is being
/// sent, for up to `PASS_CLAIMS_FOR`), sends them over as many sessions at once as the relay
/// pool has connections, and records their outcomes in shared transactions; returns how many
/// it claimed, 0 when nothing was due.
///
/// Exactly once: a message is claimed with a lease, carries a Message-ID made from its outbox
/// id (the same on every attempt), and is marked sent only after the relay accepted it. A
/// session composes its next message while the outcome of its last one is written, but hands it
/// to the relay only once that outcome is committed, so a crash leaves at most one message per
/// session accepted but unmarked; it is sent again, with the same Message-ID, when its lease
/// runs out. A session starts no message whose lease could run out before its send times out
/// (another instance may claim it then).
pub async fn deliver_due(state: &AppState) -> usize {
    let Some(channel) = state.email.clone() else { return 0 };
    let lock = pass_lock(&channel);
    let _pass = lock.lock().await;
    let limits = channel.sender.limits();
    let lease = Duration::from_secs(LEASE_SECS.unsigned_abs());
    let start_by = lease.saturating_sub(limits.timeout + Duration::from_secs(5)).max(lease / 4);
    let batch = claim_size(limits);

    let pass_started = Instant::now();
    let first = claim(state, batch).await;
    if first.is_empty() {
        return 0;
    }
    let sessions = usize::try_from(limits.pool_size).unwrap_or(1).clamp(1, first.len());
    // The next batch is claimed while this many messages still wait, so that no session waits
    // for a claim.
    let low_water = (batch / 4).max(sessions);
    let queue = Arc::new(Pass {
        queue: std::sync::Mutex::new(PassQueue { waiting: first.into(), open: true }),
        more: Notify::new(),
        low: Notify::new(),
    });
    let (outcomes, written) = mpsc::channel::<Outcome>(sessions);
    let mut workers = JoinSet::new();
    for _ in 0..sessions {
        let (state, channel, queue, outcomes) = (state.clone(), channel.clone(), queue.clone(), outcomes.clone());
        workers.spawn(async move {
            // The last outcome handed to the recorder, until it is written.
            let mut unwritten: Option<oneshot::Receiver<()>> = None;
            while let Some(c) = queue.next(low_water).await {
                if c.claimed_at.elapsed() > start_by {
                    // Left to its lease running out; it is claimed again then.
                    continue;
                }
                let m = &c.message;
                let t = Instant::now();
                let composed = compose(&state, &channel, &c.prepared, m).await;
                add(&COUNTERS.compose, t.elapsed());
                let t = Instant::now();
                if let Some(written) = unwritten.take()
                    && written.await.is_err()
                {
                    return;
                }
                add(&COUNTERS.record_wait, t.elapsed());
                let t = Instant::now();
                let result = match composed {
                    Ok(email) => relay(&state, &channel, m, &email).await,
                    Err(outcome) => outcome,
                };
                add(&COUNTERS.relay, t.elapsed());
                if let MessageResult::Failed { error } = &result {
                    tracing::warn!(message = %m.id, %error, "an email could not be sent");
                }
                let (ack, written) = oneshot::channel();
                if outcomes.send((m.id, result, ack)).await.is_err() {
                    return;
                }
                unwritten = Some(written);
            }
            if let Some(written) = unwritten {
                let t = Instant::now();
                let _ = written.await;
                add(&COUNTERS.record_wait, t.elapsed());
            }
        });
    }
    drop(outcomes);

    // Claims more while the pass is young, then lets the sessions finish what they have.
    let feed = async {
        let mut claimed = queue.len();
        while let Some(left) = PASS_CLAIMS_FOR.checked_sub(pass_started.elapsed()) {
            if tokio::time::timeout(left, queue.running_low(low_water)).await.is_err() {
                break;
            }
            let more = claim(state, batch).await;
            if more.is_empty() {
                break;
            }
            claimed += more.len();
            queue.extend(more);
        }
        queue.close();
        claimed
    };
    let (claimed, ()) = tokio::join!(feed, record(&state.store, written));
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "an email session failed; its message is sent again after its lease");
        }
    }
    claimed
}

/// How long a pass keeps claiming batches; then it ends when they are sent, and the next pass
/// loads the templates again.
const PASS_CLAIMS_FOR: Duration = Duration::from_secs(1);

/// A claimed message with what composing it needs.
struct Claimed {
    message: rapport_store::automation::PendingMessage,
    prepared: Arc<Prepared>,
    claimed_at: Instant,
}

/// Claims up to `limit` due messages and loads the templates they are rendered with; empty when
/// nothing is due or the templates cannot be loaded (the messages are then put back).
async fn claim(state: &AppState, limit: usize) -> Vec<Claimed> {
    let claimed_at = Instant::now();
    let due = state.store.claim_messages("email", limit, chrono::Duration::seconds(LEASE_SECS)).await;
    add(&COUNTERS.claim, claimed_at.elapsed());
    let due = match due {
        Ok(d) if d.is_empty() => return Vec::new(),
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim email messages");
            return Vec::new();
        }
    };
    COUNTERS.messages.fetch_add(due.len() as u64, Ordering::Relaxed);
    let t = Instant::now();
    let prepared = prepare(state).await;
    add(&COUNTERS.prepare, t.elapsed());
    match prepared {
        Ok(p) => {
            let prepared = Arc::new(p);
            due.into_iter().map(|message| Claimed { message, prepared: prepared.clone(), claimed_at }).collect()
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not load message templates; messages stay queued");
            let at = state.store.now() + chrono::Duration::minutes(1);
            let results = due.into_iter().map(|m| (m.id, MessageResult::Retry { error: e.clone(), at })).collect();
            if let Err(e) = state.store.finish_messages(results).await {
                tracing::warn!(error = %e, "could not put email messages back in the queue; they wait for their lease");
            }
            Vec::new()
        }
    }
}

/// The messages of a pass that no session has taken yet.
struct Pass {
    queue: std::sync::Mutex<PassQueue>,
    /// Messages were added, or the queue closed.
    more: Notify,
    /// The queue ran low.
    low: Notify,
}

struct PassQueue {
    waiting: std::collections::VecDeque<Claimed>,
    /// More messages may still be claimed.
    open: bool,
}

impl Pass {
    fn lock(&self) -> std::sync::MutexGuard<'_, PassQueue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// The next message, waiting for a claim under way; `None` when the pass has no more.
    async fn next(&self, low_water: usize) -> Option<Claimed> {
        loop {
            // Created before looking, so that an addition right after is not missed.
            let more = self.more.notified();
            {
                let mut q = self.lock();
                if let Some(c) = q.waiting.pop_front() {
                    if q.waiting.len() <= low_water {
                        self.low.notify_one();
                    }
                    return Some(c);
                }
                if !q.open {
                    return None;
                }
            }
            self.low.notify_one();
            more.await;
        }
    }

    async fn running_low(&self, low_water: usize) {
        loop {
            let low = self.low.notified();
            if self.len() <= low_water {
                return;
            }
            low.await;
        }
    }

    fn extend(&self, claimed: Vec<Claimed>) {
        self.lock().waiting.extend(claimed);
        self.more.notify_waiters();
    }

    fn close(&self) {
        self.lock().open = false;
        self.more.notify_waiters();
    }
}

/// Writes outcomes as they come, one transaction at a time, each taking all that arrived
/// while the last was written (one per session at most), until every session has finished.
/// (Several writes under way at once were slower: more, smaller transactions.) Each commit
/// waits for the disk, so a power cut loses no recorded outcome either; committing without
/// the fsync was 25% faster in `rapport bench email` and is not needed for its target.
async fn record(store: &rapport_store::Store, mut written: mpsc::Receiver<Outcome>) {
    let mut arrived = Vec::with_capacity(RECORD_BATCH);
    while written.recv_many(&mut arrived, RECORD_BATCH).await > 0 {
        // Let sessions finishing at the same moment join this transaction: fewer, larger
        // commits. Their time waiting is spent composing their next message.
        tokio::task::yield_now().await;
        while arrived.len() < RECORD_BATCH
            && let Ok(outcome) = written.try_recv()
        {
            arrived.push(outcome);
        }
        let (results, acks): (Vec<_>, Vec<_>) = arrived.drain(..).map(|(id, result, ack)| ((id, result), ack)).unzip();
        let t = Instant::now();
        if let Err(e) = store.finish_messages(results.clone()).await {
            // One bad row must not keep the others unrecorded: write them one by one.
            tracing::warn!(error = %e, "could not record email outcomes together; recording them one by one");
            for (id, result) in results {
                if let Err(e) = store.finish_message(id, result).await {
                    tracing::warn!(message = %id, error = %e, "could not record an email's outcome; it is sent again after its lease");
                }
            }
        }
        add(&COUNTERS.record, t.elapsed());
        COUNTERS.transactions.fetch_add(1, Ordering::Relaxed);
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// A stored template as the renderer reads it.
pub(crate) fn template_source(t: &rapport_core::message::MessageTemplate) -> TemplateSource {
    TemplateSource {
        name: t.name.clone(),
        locale: t.locale.clone(),
        subject: t.subject.clone(),
        html: t.html.clone(),
        text: t.text.clone(),
        layout: t.layout.clone(),
    }
}

/// A stored layout as the renderer reads it.
pub(crate) fn layout_source(l: &rapport_core::message::MessageLayout) -> LayoutSource {
    LayoutSource { name: l.name.clone(), html: l.html.clone(), text: l.text.clone() }
}

struct Prepared {
    templates: Templates,
    secret: Vec<u8>,
}

async fn prepare(state: &AppState) -> Result<Prepared, String> {
    let (templates, layouts) = state.store.all_templates().await.map_err(|e| e.to_string())?;
    let sources = templates.iter().filter(|t| t.channel == "email").map(template_source).collect();
    let layouts = layouts.iter().map(layout_source).collect();
    let templates = Templates::new(sources, layouts).map_err(|p| {
        let first = p.first().map(|p| format!("{} ({}): {}", p.template, p.part, p.message)).unwrap_or_default();
        format!("a stored template does not load: {first}")
    })?;
    let secret = state.store.app_secret("unsubscribe").await.map_err(|e| e.to_string())?;
    Ok(Prepared { templates, secret })
}

/// Everything before the relay: the person's data, the template rendered, tracking, the
/// message as it will be sent, in MIME. `Err` is the outcome when there is nothing to send. Separate from
/// [`relay`] so that a session can compose its next message while its last one's outcome is
/// being written.
async fn compose(
    state: &AppState,
    channel: &EmailChannel,
    p: &Prepared,
    m: &rapport_store::automation::PendingMessage,
) -> Result<BuiltEmail, MessageResult> {
    let failed = |error: String| Err(MessageResult::Failed { error });
    let Some(address) = m.recipient.clone() else { return failed("no email address".into()) };
    let to: Mailbox = match address.parse() {
        Ok(mb) => mb,
        Err(e) => return failed(format!("{address} is not an address the relay can carry: {e}")),
    };
    let retry = |e: rapport_store::StoreError| {
        Err(MessageResult::Retry { error: e.to_string(), at: state.store.now() + retry_after(m.attempt) })
    };
    let (check, context) = match state.store.message_inputs(m.id, m.contact_id, &address).await {
        Ok(read) => read,
        Err(e) => return retry(e),
    };
    if let Some(s) = &check.suppressed {
        return failed(suppressed_reason(&address, s));
    }
    let mut context = match context {
        Some(Ok(c)) => c,
        Some(Err(rapport_store::StoreError::NotFound { .. })) => return failed("the contact was deleted".into()),
        Some(Err(e)) => return retry(e),
        None => return failed(format!("{address}: no data was read for this message")),
    };
    let unsubscribe = unsubscribe_url(&channel.public_url, &p.secret, m.contact_id, m.id);
    context["unsubscribe_url"] = serde_json::json!(unsubscribe);
    context["preferences_url"] =
        serde_json::json!(crate::preferences::preferences_url(&channel.public_url, &p.secret, m.contact_id, m.id));
    // A double opt-in confirmation carries the link that confirms its grant.
    let confirm =
        m.consent_id.map(|consent| crate::preferences::confirm_url(&channel.public_url, &p.secret, m.contact_id, consent));
    if let Some(url) = &confirm {
        context["confirm_url"] = serde_json::json!(url);
    }
    let locale = context["contact"]["locale"].as_str().map(str::to_string);
    let preferences = context["preferences_url"].as_str().unwrap_or_default().to_string();
    let mut rendered = match p.templates.render(&m.template, locale.as_deref(), &context) {
        Ok(r) => r,
        Err(RenderError::NotFound { .. }) => return failed(format!("no email template is named \"{}\"", m.template)),
        Err(e) => return failed(format!("the template \"{}\" did not render: {e}", m.template)),
    };
    // Opens and clicks, unless this is a test send or the person asked not to be tracked.
    if check.track
        && let Some(html) = &rendered.html
    {
        let keep = [unsubscribe.as_str(), preferences.as_str(), confirm.as_deref().unwrap_or_default()];
        rendered.html = Some(crate::tracking::track_html(html, &channel.public_url, &p.secret, m.contact_id, m.id, &keep));
    }
    let domain = channel.from.email.domain().to_string();
    let email = OutgoingEmail {
        message_id: format!("<{}@{domain}>", m.id),
        from: channel.from.clone(),
        reply_to: None,
        to,
        subject: m.subject.clone().unwrap_or(rendered.subject),
        text: rendered.text,
        html: rendered.html,
        list_unsubscribe: m.marketing.then_some(ListUnsubscribe { url: unsubscribe, mailto: None }),
        headers: vec![("X-Rapport-Message".into(), m.id.to_string())],
    };
    channel.sender.build(&email).map_err(|e| MessageResult::Failed { error: e.message().to_string() })
}

/// Hands a composed message to the relay: sent, to be tried again, or refused for good.
async fn relay(
    state: &AppState,
    channel: &EmailChannel,
    m: &rapport_store::automation::PendingMessage,
    email: &BuiltEmail,
) -> MessageResult {
    let failed = |error: String| MessageResult::Failed { error };
    match channel.sender.send_built(email).await {
        Ok(_) => MessageResult::Sent,
        Err(e) if e.is_temporary() && m.attempt < MAX_ATTEMPTS => {
            MessageResult::Retry { error: e.message().to_string(), at: state.store.now() + retry_after(m.attempt) }
        }
        Err(e) => failed(e.message().to_string()),
    }
}

/// Why a message to a suppressed address is not sent, for the outbox row and the run's history.
fn suppressed_reason(address: &str, s: &rapport_store::Suppression) -> String {
    let on = s.since.format("%Y-%m-%d");
    match s.reason.as_str() {
        "hard_bounce" => format!("the address {address} bounced permanently on {on}; it is not mailed again"),
        "complaint" => format!("the address {address} reported our email as spam on {on}; it is not mailed again"),
        _ => format!("the address {address} is suppressed since {on}; it is not mailed again"),
    }
}

/// Sends due email every second. A crash mid-send leaves the message claimed until its lease
/// runs out; it is then sent again with the same Message-ID.
pub async fn email_deliverer(state: AppState) {
    if state.email.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        while deliver_due(&state).await > 0 {}
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/u/{token}", get(unsubscribe_page).post(unsubscribe_now))
}

pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"robots\" content=\"noindex\"><title>{t}</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body class=\"standalone\"><main class=\"narrow\"><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    );
    (status, Html(html)).into_response()
}

async fn verified(state: &AppState, raw: &str) -> Option<(Uuid, Uuid)> {
    let secret = state.store.app_secret("unsubscribe").await.ok()?;
    let (c, m) = token::verify(&secret, Purpose::Unsubscribe, raw)?;
    Some((Uuid::from_bytes(c), Uuid::from_bytes(m)))
}

const BAD_LINK: &str = "<p>This unsubscribe link is not valid: it may have been cut off or changed. Use the link from the \
     email itself, or reply to the email and ask us to stop.</p>";

/// The page an unsubscribe link opens. It never unsubscribes by itself: mail scanners open
/// links to check them.
async fn unsubscribe_page(State(s): State<AppState>, Path(raw): Path<String>) -> Response {
    let Some((contact, _)) = verified(&s, &raw).await else {
        return page(StatusCode::NOT_FOUND, "Link not valid", BAD_LINK);
    };
    let who = match s.store.get_contact(contact).await {
        Ok(c) => c.primary_email().map(|e| e.as_str().to_string()).unwrap_or(c.display_name),
        Err(_) => return page(StatusCode::NOT_FOUND, "Link not valid", BAD_LINK),
    };
    let who = who.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop marketing email to <strong>{who}</strong>? You will still get messages about your own orders \
             and appointments.</p><form method=\"post\"><button type=\"submit\" class=\"primary\">Unsubscribe</button></form>"
        ),
    )
}

/// One-click unsubscribe (RFC 8058) and the page's button: works without cookies or a login,
/// the signed link is the proof.
async fn unsubscribe_now(State(s): State<AppState>, Path(raw): Path<String>) -> Response {
    let Some((contact, message)) = verified(&s, &raw).await else {
        return page(StatusCode::NOT_FOUND, "Link not valid", BAD_LINK);
    };
    let event = serde_json::json!({
        "type": "email.unsubscribed",
        "contact": {"id": contact},
        "occurred_at": s.store.now(),
        "channel": "email",
        "payload": {"source": "unsubscribe_link", "message_id": message},
    });
    match s.store.ingest(rapport_core::event::IngestRequest { events: vec![event], create_contact: false }).await {
        Ok(r) if r.count(rapport_store::ItemStatus::Rejected) == 0 => {
            s.automation_wake.notify_one();
            page(StatusCode::OK, "You are unsubscribed", "<p>We will send you no more marketing email. Sorry to see you go.</p>")
        }
        Ok(_) => page(StatusCode::NOT_FOUND, "Link not valid", BAD_LINK),
        Err(e) => {
            tracing::warn!(error = %e, "could not record an unsubscribe");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>We could not record that just now. Please try again in a minute.</p>",
            )
        }
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::*;

    #[test]
    fn a_claimed_batch_fits_in_its_lease_under_rate_limits() {
        let limits = |per_second, per_domain_per_second, pool_size| SendLimits {
            per_second,
            per_domain_per_second,
            pool_size,
            timeout: Duration::from_secs(60),
        };
        assert_eq!(claim_size(limits(0, 0, 16)), MAX_CLAIM);
        assert_eq!(claim_size(limits(0, 0, 1)), CLAIM_PER_SESSION);
        // 10 a second to one domain, for a quarter of the two-minute lease.
        assert_eq!(claim_size(SendLimits::default()), 300);
        assert_eq!(claim_size(limits(1, 0, 4)), 30);
    }
}
