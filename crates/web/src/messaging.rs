//! The text channels of the outbox, SMS and chat: each queued message is rendered from the text
//! part of its template with the person's data and posted to the channel's provider
//! ([`TextProvider`]), and the outcome is recorded like email's: sent (with `sms.sent` or an
//! outbound `chat.message` on the timeline), retried on the email schedule for a network error,
//! 408/425/429 or 5xx, or failed for good with the provider's answer for any other refusal.
//!
//! Exactly once, as far as the provider helps: a message is claimed with a lease, posted with
//! its outbox id as `Idempotency-Key` (the same on every attempt) and marked sent as soon as the
//! provider accepted it. A crash between the two posts it again after the lease, with the same
//! key, for the provider to drop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rapport_channels::messaging::{TextMessage, TextProvider};
use rapport_channels::template::{RenderError, Templates};
use rapport_channels::webhook::DeliveryError;
use rapport_core::PhoneNumber;
use rapport_core::event::IngestRequest;
use rapport_core::message::{MAX_SEND_ATTEMPTS as MAX_ATTEMPTS, retry_after};
use rapport_core::workflow::MessageChannel;
use rapport_store::automation::{MessageResult, PendingMessage};
use serde_json::json;

use crate::AppState;

/// The configured text channels. A channel without a provider keeps its messages in the
/// outbox, marked unsendable, until one is configured.
#[derive(Default)]
pub struct TextChannels {
    providers: Vec<(MessageChannel, TextProvider)>,
    /// One delivery pass at a time (the background deliverer and the manual clock's handler
    /// both run them), so that the clock's answer waits for messages being sent.
    pass: tokio::sync::Mutex<()>,
}

impl TextChannels {
    /// Sends `channel` (SMS or chat) through `provider`.
    pub fn with(mut self, channel: MessageChannel, provider: TextProvider) -> Self {
        self.providers.retain(|(c, _)| *c != channel);
        self.providers.push((channel, provider));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

/// How long a claimed message is this instance's: well beyond one provider call (15 s at most).
const LEASE_SECS: i64 = 60;
/// A message claimed longer ago than this is not started: its lease could run out mid-call.
const START_BY: Duration = Duration::from_secs(40);
/// Messages claimed at once per channel.
const CLAIM: usize = 20;

/// One delivery pass over every configured text channel: messages that waited for a channel
/// to be set up are queued again, then due messages are claimed and sent one by one. Returns
/// how many were claimed.
pub async fn deliver_due(state: &AppState) -> usize {
    let Some(channels) = state.messaging.clone() else { return 0 };
    let _pass = channels.pass.lock().await;
    let mut claimed = 0;
    for (channel, provider) in &channels.providers {
        claimed += deliver_channel(state, *channel, provider).await;
    }
    claimed
}

async fn deliver_channel(state: &AppState, channel: MessageChannel, provider: &TextProvider) -> usize {
    let name = channel.as_str();
    match state.store.release_unsendable_messages(name).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(channel = name, messages = n, "messages that waited for a provider are queued again"),
        Err(e) => tracing::warn!(channel = name, error = %e, "could not queue waiting messages again"),
    }
    let claimed_at = Instant::now();
    let due = match state.store.claim_messages(name, CLAIM, chrono::Duration::seconds(LEASE_SECS)).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(channel = name, error = %e, "could not claim messages");
            return 0;
        }
    };
    if due.is_empty() {
        return 0;
    }
    let n = due.len();
    let templates = match prepare(state).await {
        Ok(t) => t,
        Err(error) => {
            tracing::warn!(channel = name, %error, "could not load message templates; messages stay queued");
            let at = state.store.now() + chrono::Duration::minutes(1);
            let results = due.into_iter().map(|m| (m.id, MessageResult::Retry { error: error.clone(), at })).collect();
            if let Err(e) = state.store.finish_messages(results).await {
                tracing::warn!(error = %e, "could not put messages back in the queue; they wait for their lease");
            }
            return n;
        }
    };
    for m in due {
        if claimed_at.elapsed() > START_BY {
            // Left to its lease running out; it is claimed again then.
            continue;
        }
        let Some(result) = send_one(state, channel, provider, &templates, &m).await else { continue };
        match &result {
            MessageResult::Sent => {
                metrics::counter!("rapport_messages_sent_total", "channel" => name).increment(1);
            }
            MessageResult::Retry { error, at } => {
                tracing::info!(message = %m.id, channel = name, %error, retry_at = %at, "a text message failed for now; will retry")
            }
            MessageResult::Failed { error } => {
                tracing::warn!(message = %m.id, channel = name, %error, "a text message could not be sent")
            }
        }
        if let Err(e) = state.store.finish_message(m.id, result).await {
            tracing::warn!(message = %m.id, error = %e, "could not record a text message's outcome; it is sent again after its lease");
        }
    }
    n
}

/// The stored text templates (channel `sms`, used by SMS and chat alike) with their layouts.
async fn prepare(state: &AppState) -> Result<Templates, String> {
    let (templates, layouts) = state.store.all_templates().await.map_err(|e| e.to_string())?;
    let sources = templates.iter().filter(|t| t.channel == "sms").map(crate::email::template_source).collect();
    let layouts = layouts.iter().map(crate::email::layout_source).collect();
    Templates::new(sources, layouts).map_err(|p| {
        let first = p.first().map(|p| format!("{} ({}): {}", p.template, p.part, p.message)).unwrap_or_default();
        format!("a stored template does not load: {first}")
    })
}

/// Sends one message; `None` when it was cancelled instead (consent withdrawn), which is
/// already recorded.
async fn send_one(
    state: &AppState,
    channel: MessageChannel,
    provider: &TextProvider,
    templates: &Templates,
    m: &PendingMessage,
) -> Option<MessageResult> {
    let failed = |error: String| Some(MessageResult::Failed { error });
    let retry = |error: String| Some(MessageResult::Retry { error, at: state.store.now() + retry_after(m.attempt) });
    match state.store.cancel_text_without_consent(m).await {
        Ok(Some(reason)) => {
            tracing::info!(message = %m.id, %reason, "a queued text message was cancelled");
            return None;
        }
        Ok(None) => {}
        Err(e) => return retry(e.to_string()),
    }
    let Some(raw) = m.recipient.as_deref() else { return failed("no phone number".into()) };
    let to = match PhoneNumber::parse(raw, state.store.options().phone_region) {
        Ok(p) => p.e164().to_string(),
        Err(e) => return failed(format!("the phone number {e}")),
    };
    let context = match state.store.message_context(m.contact_id).await {
        Ok(c) => c,
        Err(rapport_store::StoreError::NotFound { .. }) => return failed("the contact was deleted".into()),
        Err(e) => return retry(e.to_string()),
    };
    let locale = context["contact"]["locale"].as_str().map(str::to_string);
    let rendered = match templates.render(&m.template, locale.as_deref(), &context) {
        Ok(r) => r,
        Err(RenderError::NotFound { .. }) => {
            return failed(format!("no text template (channel sms) is named \"{}\"", m.template));
        }
        Err(e) => return failed(format!("the template \"{}\" did not render: {e}", m.template)),
    };
    let text = rendered.text.trim().to_string();
    if text.is_empty() {
        return failed(format!("the template \"{}\" rendered an empty message", m.template));
    }
    let message = TextMessage {
        message_id: m.id.to_string(),
        channel: channel.as_str().to_string(),
        to,
        text,
        contact_id: m.contact_id.to_string(),
        metadata: json!({"template": m.template, "run_id": m.run_id, "marketing": m.marketing, "attempt": m.attempt}),
    };
    match provider.send(&message).await {
        Ok(accepted) => {
            record_sent(state, m, &message, accepted.provider_message_id.as_deref()).await;
            Some(MessageResult::Sent)
        }
        Err(DeliveryError::Temporary { retry_after: asked, message, .. }) if m.attempt < MAX_ATTEMPTS => {
            let wait = chrono::Duration::from_std(asked.unwrap_or_default()).unwrap_or_default().max(retry_after(m.attempt));
            Some(MessageResult::Retry { error: message, at: state.store.now() + wait })
        }
        Err(DeliveryError::Temporary { message, .. }) => failed(format!("gave up after {} attempts: {message}", m.attempt)),
        Err(e) => failed(e.to_string()),
    }
}

/// Puts the sent message on the person's timeline: `sms.sent`, or `chat.message` with direction
/// `outbound`. The event's id is the outbox id, so a message sent again after a crash is
/// recorded once; the provider's id goes in the payload.
async fn record_sent(state: &AppState, m: &PendingMessage, message: &TextMessage, provider_id: Option<&str>) {
    let kind = if message.channel == "chat" { "chat.message" } else { "sms.sent" };
    let mut payload = json!({
        "direction": "outbound",
        "text": message.text,
        "to": message.to,
        "template": m.template,
        "message_id": m.id,
    });
    if let Some(id) = provider_id {
        payload["provider_message_id"] = json!(id);
    }
    if let Some(run) = m.run_id {
        payload["run_id"] = json!(run);
    }
    let event = json!({
        "id": m.id.to_string(),
        "type": kind,
        "contact": {"id": m.contact_id},
        "occurred_at": state.store.now(),
        "channel": message.channel,
        "payload": payload,
    });
    match state.store.ingest(IngestRequest { events: vec![event], create_contact: false }).await {
        Ok(r) if r.count(rapport_store::ItemStatus::Rejected) > 0 => {
            tracing::warn!(message = %m.id, results = ?r.results, "the sent message could not go on the timeline")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(message = %m.id, error = %e, "the sent message could not go on the timeline"),
    }
}

/// Sends due text messages every second.
pub async fn text_deliverer(state: AppState) {
    if state.messaging.as_ref().is_none_or(|c| c.is_empty()) {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        while deliver_due(&state).await > 0 {}
    }
}

/// For [`AppState::with_messaging`].
pub(crate) fn shared(channels: TextChannels) -> Option<Arc<TextChannels>> {
    (!channels.is_empty()).then(|| Arc::new(channels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_email_schedule() {
        let mins: Vec<i64> = (1..=6).map(|a| retry_after(a).num_minutes()).collect();
        assert_eq!(mins, [1, 5, 15, 60, 240, 240]);
    }
}
