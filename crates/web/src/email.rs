//! The email channel of the outbox: renders each queued message with its template and the
//! person's data, hands it to the SMTP relay, and records the outcome; and the unsubscribe
//! links every marketing message carries (`/u/{token}`: GET shows a page, POST unsubscribes at
//! once, without cookies, as RFC 8058 one-click asks).

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rapport_channels::email::{EmailSender, ListUnsubscribe, Mailbox, OutgoingEmail};
use rapport_channels::template::{LayoutSource, RenderError, TemplateSource, Templates};
use rapport_channels::token::{self, Purpose};
use rapport_store::automation::MessageResult;
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
/// Attempts before a message that keeps failing for now is given up.
const MAX_ATTEMPTS: u32 = 8;

fn retry_after(attempt: u32) -> chrono::Duration {
    // 1 min, 5 min, 15 min, 1 h, then every 4 h.
    match attempt {
        0 | 1 => chrono::Duration::minutes(1),
        2 => chrono::Duration::minutes(5),
        3 => chrono::Duration::minutes(15),
        4 => chrono::Duration::hours(1),
        _ => chrono::Duration::hours(4),
    }
}

/// The unsubscribe link of a message to a contact.
fn unsubscribe_url(public_url: &str, secret: &[u8], contact: Uuid, message: Uuid) -> String {
    let t = token::sign(secret, Purpose::Unsubscribe, *contact.as_bytes(), *message.as_bytes());
    format!("{}/u/{t}", public_url.trim_end_matches('/'))
}

/// Sends the email messages that are due; returns how many it attempted.
pub async fn deliver_due(state: &AppState) -> usize {
    let Some(channel) = state.email.clone() else { return 0 };
    let due = match state.store.claim_messages("email", 50, chrono::Duration::seconds(LEASE_SECS)).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim email messages");
            return 0;
        }
    };
    if due.is_empty() {
        return 0;
    }
    let n = due.len();
    let prepared = match prepare(state).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "could not load message templates; messages stay queued");
            for m in due {
                let at = state.store.now() + chrono::Duration::minutes(1);
                let _ = state.store.finish_message(m.id, MessageResult::Retry { error: e.clone(), at }).await;
            }
            return n;
        }
    };
    for m in due {
        let result = send_one(state, &channel, &prepared, &m).await;
        if let MessageResult::Failed { error } = &result {
            tracing::warn!(message = %m.id, %error, "an email could not be sent");
        }
        if let Err(e) = state.store.finish_message(m.id, result).await {
            tracing::warn!(error = %e, "could not record an email's outcome");
        }
    }
    n
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

async fn send_one(
    state: &AppState,
    channel: &EmailChannel,
    p: &Prepared,
    m: &rapport_store::automation::PendingMessage,
) -> MessageResult {
    let failed = |error: String| MessageResult::Failed { error };
    let Some(address) = m.recipient.clone() else { return failed("no email address".into()) };
    let to: Mailbox = match address.parse() {
        Ok(mb) => mb,
        Err(e) => return failed(format!("{address} is not an address the relay can carry: {e}")),
    };
    let mut context = match state.store.message_context(m.contact_id).await {
        Ok(c) => c,
        Err(rapport_store::StoreError::NotFound { .. }) => return failed("the contact was deleted".into()),
        Err(e) => return MessageResult::Retry { error: e.to_string(), at: state.store.now() + retry_after(m.attempt) },
    };
    let unsubscribe = unsubscribe_url(&channel.public_url, &p.secret, m.contact_id, m.id);
    context["unsubscribe_url"] = serde_json::json!(unsubscribe);
    context["preferences_url"] = serde_json::json!(unsubscribe);
    let locale = context["contact"]["locale"].as_str().map(str::to_string);
    let rendered = match p.templates.render(&m.template, locale.as_deref(), &context) {
        Ok(r) => r,
        Err(RenderError::NotFound { .. }) => return failed(format!("no email template is named \"{}\"", m.template)),
        Err(e) => return failed(format!("the template \"{}\" did not render: {e}", m.template)),
    };
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
    match channel.sender.send(&email).await {
        Ok(_) => MessageResult::Sent,
        Err(e) if e.is_temporary() && m.attempt < MAX_ATTEMPTS => {
            MessageResult::Retry { error: e.message().to_string(), at: state.store.now() + retry_after(m.attempt) }
        }
        Err(e) => failed(e.message().to_string()),
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

fn page(status: StatusCode, title: &str, body: &str) -> Response {
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
