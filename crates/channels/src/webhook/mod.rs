//! The automation engine's outgoing webhooks. The engine commits each call to its outbox and
//! hands it to [`WebhookClient::deliver`], which signs and posts it and says whether it went out,
//! failed for now (try again after [`retry_delay`]) or failed for good.
//!
//! The URL comes from a workflow author, so every call is held to an [`AddressPolicy`]: only
//! `http` and `https`, no credentials in the URL, and no loopback, private or reserved address
//! unless the operator opens it. Addresses are checked where the connection is made (in the DNS
//! resolver reqwest connects through) and again on every redirect.
//!
//! TLS: rustls with the `ring` provider and the bundled Mozilla roots (the same stack lettre
//! uses for SMTP), so `https://` endpoints are verified against the public web PKI.

mod address;
mod signature;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use tokio::time::Instant;
use url::{Host, Url};

pub use address::{AddressPolicy, PolicyError};
use address::{PolicyResolver, ResolvedToRefused};
use signature::signature_header;
pub use signature::{WebhookSecret, verify_signature};

/// Attempts after which the engine records a permanent failure.
pub const MAX_ATTEMPTS: u32 = 8;
/// Redirects one delivery follows before it gives up.
pub const MAX_REDIRECTS: u32 = 5;

const USER_AGENT: &str = "Rapport-Webhook/1";
/// Bytes of an error response read, only to quote it in the message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Characters of that body the message quotes.
const QUOTED_CHARS: usize = 300;
/// A receiver's `Retry-After` beyond this is read as this, so one answer cannot park a call for
/// months; it matches the longest step of [`retry_delay`].
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);
/// Where an operator opens an address; every refusal says so.
const ALLOW_HINT: &str = "allow it in [webhooks] allow_hosts to call it";

/// One webhook call, as the engine's outbox row describes it.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub url: String,
    /// JSON, sent and signed byte for byte as given.
    pub body: String,
    /// Signs the request when present (`Rapport-Signature`); unsigned calls carry no signature.
    pub secret: Option<WebhookSecret>,
    /// Sent as `Rapport-Delivery`, for the receiver's logs and support questions.
    pub delivery_id: String,
    /// Sent as `Idempotency-Key`: the same for every attempt of one workflow run's step, so a
    /// receiver can drop a repeat after the engine retried or crashed mid-call.
    pub idempotency_key: String,
}

/// How long a delivery may take, over all its redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open one TCP connection. Default 5 s.
    pub connect: Duration,
    /// For the whole delivery, redirects and reading the answer included. Default 15 s.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(5), request: Duration::from_secs(15) }
    }
}

/// A call the receiver accepted (2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub status: u16,
    /// Redirects followed on the way.
    pub redirects: u32,
}

/// An accepted call's answer (see [`WebhookClient::deliver_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub redirects: u32,
    /// The start of the response body (at most 64 KiB).
    pub body: Vec<u8>,
}

/// Why a call did not go through. The message names the URL and the problem in words an operator
/// can act on; it never contains the secret or URL credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The URL or an address it leads to is not allowed (or is not a webhook URL). Never retried:
    /// the same call would be refused again.
    #[error("{message}")]
    Refused { message: String },
    /// The receiver answered with a client error, or the call cannot succeed as it is.
    #[error("{message}")]
    Permanent { status: Option<u16>, message: String },
    /// A network error, timeout, 5xx, 408, 425 or 429: worth another attempt.
    #[error("{message}")]
    Temporary {
        status: Option<u16>,
        /// The receiver's `Retry-After` (seconds form, capped at 6 h): wait at least this long.
        retry_after: Option<Duration>,
        message: String,
    },
}

impl DeliveryError {
    fn refused(message: String) -> Self {
        Self::Refused { message }
    }

    fn temporary(message: String) -> Self {
        Self::Temporary { status: None, retry_after: None, message }
    }

    fn message_mut(&mut self) -> &mut String {
        match self {
            Self::Refused { message } | Self::Permanent { message, .. } | Self::Temporary { message, .. } => message,
        }
    }
}

/// The HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("could not set up the webhook HTTP client: {0}")]
pub struct BuildError(reqwest::Error);

/// Delivers webhooks under one address policy. Cheap to share: hold one per process.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    timeouts: Timeouts,
}

impl WebhookClient {
    pub fn new(policy: AddressPolicy, timeouts: Timeouts) -> Result<Self, BuildError> {
        let policy = Arc::new(policy);
        let http = reqwest::Client::builder()
            // Redirects are followed by hand so that each target is checked.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect in our place, out of reach of the address checks.
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver { policy: Arc::clone(&policy) }))
            .connect_timeout(timeouts.connect)
            .user_agent(USER_AGENT)
            .build()
            .map_err(BuildError)?;
        Ok(Self { http, policy, timeouts })
    }

    /// Posts `req.body` to `req.url`, signed, following up to [`MAX_REDIRECTS`] redirects.
    pub async fn deliver(&self, req: &WebhookRequest) -> Result<Delivered, DeliveryError> {
        let answer = self.call(req, &HeaderMap::new(), false).await?;
        Ok(Delivered { status: answer.status, redirects: answer.redirects })
    }

    /// As [`WebhookClient::deliver`], also sending `extra` headers (a provider's API token;
    /// they never replace the content type, signature or idempotency headers) and reading the
    /// accepted answer's body (at most 64 KiB), for channels whose receiver answers with data
    /// such as its own message id.
    pub async fn deliver_with(&self, req: &WebhookRequest, extra: &HeaderMap) -> Result<Answer, DeliveryError> {
        self.call(req, extra, true).await
    }

    async fn call(&self, req: &WebhookRequest, extra: &HeaderMap, read_body: bool) -> Result<Answer, DeliveryError> {
        let first = webhook_url(&req.url)?;
        let mut headers = request_headers(req)?;
        for (name, value) in extra {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        let deadline = Instant::now() + self.timeouts.request;
        let mut url = first.clone();
        for redirects in 0..=MAX_REDIRECTS {
            tracing::debug!(delivery = %req.delivery_id, host = url.host_str().unwrap_or_default(), redirects, "posting webhook");
            match self.post(&url, &headers, req, deadline, read_body).await {
                Ok(Hop::Done(status, body)) => return Ok(Answer { status, redirects, body }),
                Ok(Hop::Redirect(next)) => url = next,
                Err(mut error) => {
                    if redirects > 0 {
                        error.message_mut().push_str(&format!(" (reached by {redirects} redirect(s) from {first})"));
                    }
                    return Err(error);
                }
            }
        }
        Err(DeliveryError::Permanent {
            status: None,
            message: format!("{first} redirected more than {MAX_REDIRECTS} times; give the webhook its final URL"),
        })
    }

    async fn post(
        &self,
        url: &Url,
        headers: &HeaderMap,
        req: &WebhookRequest,
        deadline: Instant,
        read_body: bool,
    ) -> Result<Hop, DeliveryError> {
        self.check_ip_host(url)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(self.timed_out(url));
        }
        let response = self
            .http
            .post(url.clone())
            .headers(headers.clone())
            .body(req.body.clone())
            .timeout(remaining)
            .send()
            .await
            .map_err(|error| self.send_error(url, &error))?;
        let status = response.status();
        if status.is_success() {
            let body = if read_body { read_capped(response).await } else { Vec::new() };
            return Ok(Hop::Done(status.as_u16(), body));
        }
        // 301/302/303 are re-posted like 307/308, not turned into a GET without a body: a
        // receiver whose URL moved still expects the payload, and a bodiless GET would be
        // reported as delivered while the event was lost.
        if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            return redirect_target(url, &response).map(Hop::Redirect);
        }
        Err(status_error(url, response).await)
    }

    /// IP hosts never reach the resolver, so they are checked here.
    fn check_ip_host(&self, url: &Url) -> Result<(), DeliveryError> {
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => ip.into(),
            Some(Host::Ipv6(ip)) => ip.into(),
            _ => return Ok(()),
        };
        self.policy.check_ip(ip).map_err(|why| DeliveryError::refused(format!("{url} points at {ip}, {why}; {ALLOW_HINT}")))
    }

    fn send_error(&self, url: &Url, error: &reqwest::Error) -> DeliveryError {
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            if let Some(refused) = cause.downcast_ref::<ResolvedToRefused>() {
                return DeliveryError::refused(format!("{url} resolves to {}, {}; {ALLOW_HINT}", refused.ip, refused.why));
            }
            source = cause.source();
        }
        if error.is_timeout() {
            if error.is_connect() {
                return DeliveryError::temporary(format!(
                    "could not connect to {url} within {} s",
                    self.timeouts.connect.as_secs_f32()
                ));
            }
            return self.timed_out(url);
        }
        let detail = causes(error);
        if error.is_connect() {
            DeliveryError::temporary(format!("could not connect to {url}: {detail}"))
        } else if error.is_builder() {
            DeliveryError::refused(format!("{url} cannot be requested: {detail}"))
        } else {
            DeliveryError::temporary(format!("calling {url} failed: {detail}"))
        }
    }

    fn timed_out(&self, url: &Url) -> DeliveryError {
        DeliveryError::temporary(format!("{url} did not answer within {} s", self.timeouts.request.as_secs_f32()))
    }
}

enum Hop {
    Done(u16, Vec<u8>),
    Redirect(Url),
}

/// Parses a webhook URL (WHATWG rules, as browsers do: every IPv4 spelling becomes one address)
/// and refuses anything but credential-free http(s).
fn webhook_url(raw: &str) -> Result<Url, DeliveryError> {
    let mut url = Url::parse(raw).map_err(|e| DeliveryError::refused(format!("'{raw}' is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DeliveryError::refused(format!("{url} is not an http:// or https:// URL; webhooks call only those")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never repeat the credentials in a message that ends up in logs and the UI.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return Err(DeliveryError::refused(format!(
            "{url} was given with a user name or password, which webhooks do not send; sign requests with a webhook secret instead"
        )));
    }
    if url.host().is_none() {
        return Err(DeliveryError::refused(format!("{url} names no host")));
    }
    Ok(url)
}

fn request_headers(req: &WebhookRequest) -> Result<HeaderMap, DeliveryError> {
    let value = |what: &str, value: &str| {
        HeaderValue::from_str(value).map_err(|_| DeliveryError::Permanent {
            status: None,
            message: format!("the {what} '{value}' cannot be sent in an HTTP header"),
        })
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(HeaderName::from_static("rapport-delivery"), value("delivery id", &req.delivery_id)?);
    headers.insert(HeaderName::from_static("idempotency-key"), value("idempotency key", &req.idempotency_key)?);
    if let Some(secret) = &req.secret {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let signature = signature_header(secret, now, req.body.as_bytes());
        headers.insert(HeaderName::from_static("rapport-signature"), value("signature", &signature)?);
    }
    Ok(headers)
}

fn redirect_target(url: &Url, response: &Response) -> Result<Url, DeliveryError> {
    let status = response.status();
    let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| DeliveryError::Permanent {
        status: Some(status.as_u16()),
        message: format!("{url} answered {status} without a usable Location header"),
    })?;
    let next = url.join(location).map_err(|e| DeliveryError::Permanent {
        status: Some(status.as_u16()),
        message: format!("{url} redirected to '{location}', which is not a valid URL: {e}"),
    })?;
    webhook_url(next.as_str()).map_err(|mut error| {
        error.message_mut().insert_str(0, &format!("{url} redirected to a URL webhooks may not call: "));
        error
    })
}

async fn status_error(url: &Url, response: Response) -> DeliveryError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    let body = read_capped(response).await;
    let mut message = format!("{url} answered {status}");
    if let Some(wait) = retry_after {
        message.push_str(&format!(" and asked to retry after {} s", wait.as_secs()));
    }
    message.push_str(&quote(&body));
    let code = Some(status.as_u16());
    match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_EARLY | StatusCode::TOO_MANY_REQUESTS => {
            DeliveryError::Temporary { status: code, retry_after, message }
        }
        s if s.is_server_error() => DeliveryError::Temporary { status: code, retry_after, message },
        _ => DeliveryError::Permanent { status: code, message },
    }
}

/// At most [`MAX_ERROR_BODY`] bytes of the body; a read error ends it early.
async fn read_capped(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        let Ok(Some(chunk)) = response.chunk().await else { break };
        let take = chunk.len().min(MAX_ERROR_BODY - body.len());
        body.extend_from_slice(&chunk[..take]);
    }
    body
}

/// `: <first characters of the body, on one line>`, or nothing for an empty body.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return String::new();
    }
    let line = words.join(" ");
    let mut quoted: String = line.chars().take(QUOTED_CHARS).collect();
    if quoted.len() < line.len() {
        quoted.push('…');
    }
    format!(": {quoted}")
}

/// The error's causes joined, since reqwest's own message only says that sending failed.
fn causes(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() { error.to_string() } else { parts.join(": ") }
}

/// How long to wait before the next attempt after `attempt` failed ones (1 = the first try
/// failed): 30 s, 2 min, 10 min, 1 h, then 6 h each time. No jitter, so a test on a manual clock
/// can predict the schedule. With [`MAX_ATTEMPTS`] = 8 a call is given up about 19 h after its
/// first try.
pub fn retry_delay(attempt: u32) -> Duration {
    const SCHEDULE_SECS: [u64; 5] = [30, 2 * 60, 10 * 60, 60 * 60, 6 * 60 * 60];
    let step = (attempt.max(1) - 1) as usize;
    Duration::from_secs(SCHEDULE_SECS[step.min(SCHEDULE_SECS.len() - 1)])
}
