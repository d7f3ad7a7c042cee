//! The SMTP client: lettre's connection (greeting, EHLO, STARTTLS, AUTH, reply parsing) under
//! Rapport's own pool, rate limits, timeout and transaction.
//!
//! Why not lettre's pooled `AsyncSmtpTransport`: with tokio it bounds only connecting, not the
//! commands after, so a relay that stops answering holds a send forever; a send cancelled by an
//! outer timeout hands its half-finished connection back to the pool, where the next message
//! reads the previous one's replies; and its pool size caps idle connections, not open ones. Here
//! a connection belongs to one send at a time, a timed-out send closes it, and a semaphore caps
//! how many are open. The transaction is ours too (on lettre's command and reply types), so that
//! the message and its closing dot go out in one write; with that and Nagle's algorithm off, 16
//! connections to the loopback sink went from 360 to 10,400 messages a second (debug build,
//! 2 cores): lettre's separate small write waited for the server's delayed ACK, 40 ms each.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};

use super::mime::{build_message, formatted};
use super::rate::RateLimiter;
use super::{Accepted, OutgoingEmail, Security, SendError, SendLimits, SmtpSettings};

/// A pooled connection idle longer than this is checked with `NOOP` before it carries a message:
/// relays drop idle clients (often after 30–300 s) and a message sent into a closed connection
/// would fail for nothing.
const PROBE_AFTER: Duration = Duration::from_secs(2);
/// A pooled connection idle longer than this is closed instead of reused.
const IDLE_LIMIT: Duration = Duration::from_secs(50);
/// For RSET after a refused message and QUIT at shutdown, outside the send timeout: the refusal
/// is already known and must not turn into a timeout.
const QUIT_WAIT: Duration = Duration::from_secs(5);

/// Sends [`OutgoingEmail`]s to one relay. Cheap to clone; clones share the pool and the limits.
#[derive(Clone)]
pub struct EmailSender {
    inner: Arc<Inner>,
}

struct Inner {
    settings: SmtpSettings,
    limits: SendLimits,
    hello: ClientId,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    redactor: Redactor,
    /// One permit per connection that may be open.
    slots: Semaphore,
    /// Connections free for the next message, the most recently used last.
    idle: Mutex<Vec<Idle>>,
    rate: RateLimiter,
    times: Times,
}

/// Nanoseconds spent in each part of [`EmailSender::send`], summed over all sends.
#[derive(Default)]
struct Times {
    sends: AtomicU64,
    mime: AtomicU64,
    waiting: AtomicU64,
    smtp: AtomicU64,
}

/// Where [`EmailSender::send`] has spent its time since the sender was made, summed over all
/// sends (concurrent sends each count in full): for benchmarks and for telling a slow relay
/// from a slow Rapport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendTimes {
    pub sends: u64,
    /// Building the MIME message and its bytes.
    pub mime: Duration,
    /// Waiting for the rate limits and a free connection.
    pub waiting: Duration,
    /// Connecting (when no pooled connection was free) and the SMTP transaction.
    pub smtp: Duration,
}

struct Idle {
    connection: Connection,
    since: Instant,
}

/// An open, logged-in connection to the relay.
struct Connection {
    smtp: AsyncSmtpConnection,
    /// The relay offers PIPELINING (RFC 2920): MAIL, RCPT and DATA go out in one write.
    pipelining: bool,
}

impl EmailSender {
    /// Checks the limits and prepares TLS; connects only when the first message is sent.
    pub fn new(settings: SmtpSettings, limits: SendLimits) -> Result<Self, String> {
        if limits.pool_size == 0 {
            return Err("the SMTP pool size must be at least 1".to_owned());
        }
        if limits.timeout.is_zero() {
            return Err("the SMTP send timeout must be more than zero".to_owned());
        }
        let tls = match settings.security() {
            Security::None => None,
            _ => Some(
                TlsParameters::new_rustls(settings.host().to_owned())
                    .map_err(|e| format!("TLS for {} cannot be set up: {e}", settings.server()))?,
            ),
        };
        let hello = settings.helo_name().map(|name| ClientId::Domain(name.to_owned())).unwrap_or_default();
        let credentials = match (settings.user(), settings.password()) {
            (Some(user), Some(password)) => Some(Credentials::new(user.to_owned(), password.to_owned())),
            _ => None,
        };
        let redactor = Redactor::new(settings.user(), settings.password());
        let pool_size = usize::try_from(limits.pool_size).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        Ok(Self {
            inner: Arc::new(Inner {
                rate: RateLimiter::new(limits.per_second, limits.per_domain_per_second),
                slots: Semaphore::new(pool_size),
                idle: Mutex::new(Vec::with_capacity(pool_size.min(64))),
                settings,
                limits,
                hello,
                tls,
                credentials,
                redactor,
                times: Times::default(),
            }),
        })
    }

    /// Where sending has spent its time so far.
    pub fn times(&self) -> SendTimes {
        let t = &self.inner.times;
        let d = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        SendTimes { sends: t.sends.load(Ordering::Relaxed), mime: d(&t.mime), waiting: d(&t.waiting), smtp: d(&t.smtp) }
    }

    pub fn settings(&self) -> &SmtpSettings {
        &self.inner.settings
    }

    pub fn limits(&self) -> SendLimits {
        self.inner.limits
    }

    /// Renders `m`, waits for the rate limits and a free connection, and sends it.
    pub async fn send(&self, m: &OutgoingEmail) -> Result<Accepted, SendError> {
        let built = self.build(m)?;
        self.send_built(&built).await
    }

    /// Renders `m` as it goes over the wire, to send later with [`send_built`]: a caller that
    /// must wait before sending can build the message meanwhile. A message that cannot be built
    /// is refused for good ([`SendError::Permanent`]).
    ///
    /// [`send_built`]: EmailSender::send_built
    pub fn build(&self, m: &OutgoingEmail) -> Result<BuiltEmail, SendError> {
        let started = Instant::now();
        let message = build_message(m).map_err(|message| SendError::Permanent { message })?;
        let built = BuiltEmail {
            bytes: formatted(&message),
            envelope: message.envelope().clone(),
            domain: m.to.email.domain().to_owned(),
        };
        add(&self.inner.times.mime, started.elapsed());
        Ok(built)
    }

    /// Waits for the rate limits and a free connection, and sends a message [`build`] made.
    ///
    /// [`build`]: EmailSender::build
    pub async fn send_built(&self, m: &BuiltEmail) -> Result<Accepted, SendError> {
        let times = &self.inner.times;
        times.sends.fetch_add(1, Ordering::Relaxed);
        let built = Instant::now();
        self.inner.rate.wait(&m.domain).await;
        let slot = self.inner.slots.acquire().await;
        let connected = Instant::now();
        add(&times.waiting, connected - built);
        let _slot = slot.map_err(|_| self.inner.temporary("the sender is shut down".to_owned()))?;
        let _smtp = AddOnDrop { to: &times.smtp, since: connected };
        let limit = self.inner.limits.timeout;
        let attempt = timeout(limit, async {
            let mut connection = self.inner.checkout().await?;
            let result = transaction(&mut connection, &m.envelope, &m.bytes).await;
            Ok((connection, result))
        });
        match attempt.await {
            Ok(Ok((connection, result))) => self.inner.settle(connection, result).await,
            Ok(Err(error)) => Err(error),
            // The connection was owned by the cancelled future and is closed with it.
            Err(_) => Err(self.inner.temporary(format!("{} did not answer within {limit:?}", self.inner.settings.server()))),
        }
    }

    /// Says `QUIT` on the idle connections and refuses further sends. Sends in flight finish.
    pub async fn shutdown(&self) {
        self.inner.slots.close();
        let idle = std::mem::take(&mut *self.inner.lock_idle());
        for mut idle in idle {
            timeout(QUIT_WAIT, idle.connection.smtp.quit()).await.ok();
        }
    }
}

/// A message ready for the wire ([`EmailSender::build`]).
pub struct BuiltEmail {
    /// As sent after DATA, before dot stuffing.
    bytes: Vec<u8>,
    envelope: Envelope,
    /// The recipient's domain, for the rate limits.
    domain: String,
}

impl fmt::Debug for BuiltEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltEmail").field("bytes", &self.bytes.len()).field("envelope", &self.envelope).finish()
    }
}

fn add(to: &AtomicU64, d: Duration) {
    to.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Adds the time since `since` to `to` when the send ends, however it ends.
struct AddOnDrop<'a> {
    to: &'a AtomicU64,
    since: Instant,
}

impl Drop for AddOnDrop<'_> {
    fn drop(&mut self) {
        add(self.to, self.since.elapsed());
    }
}

impl fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSender").field("settings", &self.inner.settings).field("limits", &self.inner.limits).finish()
    }
}

impl Inner {
    /// Reports a finished transaction and decides the connection's fate.
    async fn settle(&self, mut connection: Connection, result: Result<Response, Failure>) -> Result<Accepted, SendError> {
        match result {
            Ok(response) => {
                self.checkin(connection);
                let mut reply = response.code().to_string();
                for line in response.message() {
                    reply.push(' ');
                    reply.push_str(line);
                }
                Ok(Accepted { reply })
            }
            Err(Failure::Refused(error)) => {
                // After a negative reply the conversation is still in step (a pipelined
                // group's replies are all read): RSET and keep the connection, or a campaign
                // with many dead addresses reconnects, TLS and login included, after each. 421
                // means the server is closing; a broken or garbled connection is dropped.
                let in_step = error.status().is_some_and(|code| code.to_string() != "421");
                if in_step && matches!(timeout(QUIT_WAIT, connection.smtp.command(Rset)).await, Ok(Ok(_))) {
                    self.checkin(connection);
                }
                Err(self.classify(&error))
            }
            Err(Failure::Unsendable(reason)) => {
                self.checkin(connection);
                Err(SendError::Permanent { message: format!("{} cannot carry this message: {reason}", self.settings.server()) })
            }
        }
    }

    /// The most recently used idle connection that still answers, or a new one.
    async fn checkout(&self) -> Result<Connection, SendError> {
        loop {
            let Some(Idle { mut connection, since }) = self.lock_idle().pop() else {
                return self.connect().await;
            };
            let idle = since.elapsed();
            if idle > IDLE_LIMIT || (idle > PROBE_AFTER && !connection.smtp.test_connected().await) {
                continue;
            }
            return Ok(connection);
        }
    }

    fn checkin(&self, connection: Connection) {
        self.lock_idle().push(Idle { connection, since: Instant::now() });
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Connects, secures and logs in. Every failure here is temporary: it is the relay or the
    /// configuration at fault, not the message.
    async fn connect(&self) -> Result<Connection, SendError> {
        let settings = &self.settings;
        let server = settings.server();
        let failed = |step: &str, error: SmtpError| self.temporary(format!("{step} {server}: {}", describe(&error)));
        let mut connection = match &self.tls {
            Some(tls) if settings.security() == Security::ImplicitTls => AsyncSmtpConnection::connect_tokio1(
                (settings.host(), settings.port()),
                Some(self.limits.timeout),
                &self.hello,
                Some(tls.clone()),
                None,
            )
            .await
            .map_err(|e| failed("connecting to", e))?,
            // Connected here rather than by lettre, to turn off Nagle's algorithm, which lettre
            // leaves on: a short write behind an unacknowledged one waits for the server's
            // delayed ACK (40 ms on Linux). smtps:// still goes through lettre.
            _ => {
                let tcp = TcpStream::connect((settings.host(), settings.port()))
                    .await
                    .and_then(|tcp| tcp.set_nodelay(true).map(|()| tcp))
                    .map_err(|e| self.temporary(format!("connecting to {server}: {e}")))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                    .await
                    .map_err(|e| failed("greeting", e))?
            }
        };

        match (&self.tls, settings.security()) {
            (Some(tls), Security::StartTlsRequired) => {
                if !connection.can_starttls() {
                    connection.abort().await;
                    return Err(self.temporary(format!("{server} does not offer STARTTLS, which ?tls=required insists on")));
                }
                connection.starttls(tls.clone(), &self.hello).await.map_err(|e| failed("STARTTLS with", e))?;
            }
            (Some(tls), Security::StartTlsIfOffered) if connection.can_starttls() => {
                connection.starttls(tls.clone(), &self.hello).await.map_err(|e| failed("STARTTLS with", e))?;
            }
            _ => {}
        }

        // lettre keeps the extensions it uses, not PIPELINING: ask again (before AUTH, as a
        // new EHLO may reset the session) and read the keywords ourselves.
        let ehlo = connection.command(Ehlo::new(self.hello.clone())).await.map_err(|e| failed("greeting", e))?;
        let pipelining = ehlo
            .message()
            .skip(1)
            .any(|line| line.split_whitespace().next().is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING")));

        if let Some(credentials) = &self.credentials {
            if !connection.is_encrypted() && settings.security() != Security::None {
                connection.abort().await;
                return Err(self.temporary(format!(
                    "{server} offered no STARTTLS, and Rapport does not send the password in clear (add ?tls=none to allow it)"
                )));
            }
            connection.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await.map_err(|e| failed("logging in to", e))?;
        }
        Ok(Connection { smtp: connection, pipelining })
    }

    /// A failed transaction: a 5xx reply is permanent; a 4xx reply, a broken connection or an
    /// unreadable reply is temporary.
    fn classify(&self, error: &SmtpError) -> SendError {
        let server = self.settings.server();
        let message = match error.status() {
            Some(_) => format!("{server} {}", describe(error)),
            None => format!("{server} failed mid-transaction: {error}"),
        };
        let message = self.redactor.redact(message);
        if error.is_permanent() { SendError::Permanent { message } } else { SendError::Temporary { message } }
    }

    fn temporary(&self, message: String) -> SendError {
        SendError::Temporary { message: self.redactor.redact(message) }
    }
}

enum Failure {
    /// A negative reply, a broken connection or an unreadable reply.
    Refused(SmtpError),
    /// The server lacks an extension this message needs; nothing was sent.
    Unsendable(&'static str),
}

impl From<SmtpError> for Failure {
    fn from(error: SmtpError) -> Self {
        Self::Refused(error)
    }
}

/// MAIL, RCPT, DATA, then the message with its closing dot in one write. lettre's own `send`
/// writes the closing dot separately, which is one more small segment per message.
async fn transaction(connection: &mut Connection, envelope: &Envelope, bytes: &[u8]) -> Result<Response, Failure> {
    let pipelining = connection.pipelining;
    let connection = &mut connection.smtp;
    // lettre renders messages from strings, so they are UTF-8; mostly 7-bit ASCII too.
    let text = std::str::from_utf8(bytes).map_err(|_| Failure::Unsendable("the message is not UTF-8"))?;
    let mut parameters = Vec::new();
    let non_ascii_address =
        envelope.from().into_iter().chain(envelope.to()).any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_address {
        if !connection.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(Failure::Unsendable("a non-ASCII address needs SMTPUTF8, which the server does not offer"));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !text.is_ascii() {
        if !connection.server_info().supports_feature(Extension::EightBitMime) {
            return Err(Failure::Unsendable("8-bit content needs 8BITMIME, which the server does not offer"));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(envelope.from().cloned(), parameters);
    let recipients: Vec<Rcpt> = envelope.to().iter().map(|r| Rcpt::new(r.clone(), Vec::new())).collect();
    if pipelining {
        // One write, then every reply in order, whatever each says, so that the conversation
        // stays in step. Half the round trips: `rapport bench email` (16 connections to the
        // loopback sink, release build) went from 5,750 to 6,650 messages a second.
        let mut refused = connection.command(Pipelined { mail: &mail, recipients: &recipients }).await.err();
        for _ in &recipients {
            let reply = connection.read_response().await;
            refused = refused.or(reply.err());
        }
        let data = connection.read_response().await;
        match (refused, data) {
            (None, Ok(_)) => {}
            (Some(error), Ok(_)) => {
                // A server must refuse DATA when MAIL or every RCPT was refused (RFC 2920);
                // one that did not gets an empty message, which it has nobody to deliver to.
                connection.command(".\r\n").await?;
                return Err(error.into());
            }
            (Some(error), Err(_)) | (None, Err(error)) => return Err(error.into()),
        }
    } else {
        connection.command(mail).await?;
        for recipient in recipients {
            connection.command(recipient).await?;
        }
        connection.command(Data).await?;
    }
    Ok(connection.command(DotStuffed(text)).await?)
}

/// MAIL, the RCPTs and DATA as one pipelined group (each command renders with its CRLF).
struct Pipelined<'a> {
    mail: &'a Mail,
    recipients: &'a [Rcpt],
}

impl fmt::Display for Pipelined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mail)?;
        for recipient in self.recipients {
            write!(f, "{recipient}")?;
        }
        write!(f, "{Data}")
    }
}

/// A message as sent after DATA: a dot doubled at the start of every line, then the lone dot.
/// Lines end with CRLF in lettre's output; a bare LF is treated as a line end as well, so no
/// reading of line ends by the server can find the end of data inside the message.
struct DotStuffed<'a>(&'a str);

impl fmt::Display for DotStuffed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.0.split_inclusive('\n') {
            if line.starts_with('.') {
                f.write_str(".")?;
            }
            f.write_str(line)?;
        }
        if !self.0.is_empty() && !self.0.ends_with("\r\n") {
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

/// `answered 550 5.1.1 <x@example.org>: User unknown`, or lettre's own words for the rest.
fn describe(error: &SmtpError) -> String {
    let detail = std::error::Error::source(error).map(ToString::to_string);
    match (error.status(), detail) {
        (Some(code), Some(detail)) => format!("answered {code} {detail}"),
        (Some(code), None) => format!("answered {code}"),
        _ => error.to_string(),
    }
}

/// Removes the password from messages, in clear and in the encodings it travels in (percent-
/// encoded in the URL, base64 in AUTH PLAIN and AUTH LOGIN), should a server or a library quote
/// it back.
struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    fn new(user: Option<&str>, password: Option<&str>) -> Self {
        let mut secrets = Vec::new();
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            secrets.push(password.to_owned());
            secrets.push(percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC).to_string());
            secrets.push(BASE64.encode(password));
            secrets.push(BASE64.encode(format!("\0{}\0{password}", user.unwrap_or_default())));
            // Longest first, so a secret containing another is removed whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
            secrets.dedup();
        }
        Self { secrets }
    }

    fn redact(&self, mut message: String) -> String {
        for secret in &self.secrets {
            if secret.chars().count() >= SHORT_SECRET {
                if message.contains(secret.as_str()) {
                    message = message.replace(secret.as_str(), "***");
                }
            } else if message.split(' ').any(|word| word == secret) {
                message = message.split(' ').map(|word| if word == secret { "***" } else { word }).collect::<Vec<_>>().join(" ");
            }
        }
        message
    }
}

/// A secret shorter than this is removed only where it stands as a word of its own: the
/// password `p` must not turn "temporary" into "tem***orary".
const SHORT_SECRET: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_removes_the_password_in_every_encoding() {
        let redactor = Redactor::new(Some("me"), Some("p@ss w0rd"));
        let plain = BASE64.encode("\0me\0p@ss w0rd");
        let login = BASE64.encode("p@ss w0rd");
        let message = format!("535 rejected p@ss w0rd / p%40ss%20w0rd / {plain} / {login}");
        assert_eq!(redactor.redact(message), "535 rejected *** / *** / *** / ***");
        assert_eq!(Redactor::new(None, None).redact("nothing to hide".to_owned()), "nothing to hide");
        let short = Redactor::new(Some("u"), Some("p"));
        assert_eq!(short.redact("451 temporary failure: p".to_owned()), "451 temporary failure: ***");
    }
}
