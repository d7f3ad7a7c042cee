//! Text messages that come in: a provider's inbound webhook (or glue in front of it) posts each
//! SMS or chat message here. It lands on the sender's timeline as `sms.received` or an inbound
//! `chat.message`, which stops a workflow's pending outreach like any reply, and a reply of
//! STOP withdraws consent to marketing on that channel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rapport_channels::messaging::{is_start_request, is_stop_request};
use rapport_core::consent::ConsentChannel;
use rapport_core::event::IngestRequest;
use rapport_core::{PhoneNumber, ValidationErrors};
use rapport_store::ItemStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::JsonBody;

/// Longest text accepted (a long concatenated SMS is about 1,600 characters; chats run longer).
const MAX_BODY_CHARS: usize = 10_000;
/// Longest provider message id: the event id is `<channel>:<id>`, at most 200 characters.
const MAX_PROVIDER_ID_CHARS: usize = 190;

pub fn routes() -> Router<AppState> {
    Router::new().route("/messages/inbound", post(inbound))
}

/// A text message someone sent, as the provider reported it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundMessage {
    /// `sms` or `chat`.
    pub channel: Option<String>,
    /// The sender's phone number: E.164 (`+4915112345678`), or national, read in the
    /// configured phone region. The contact with this number gets the message.
    pub from: Option<String>,
    /// The number or account it was sent to (yours); kept with the message.
    pub to: Option<String>,
    /// The text.
    pub body: Option<String>,
    /// When the provider received it: RFC 3339 (`2026-01-15T09:00:00Z`) or Unix seconds. Now
    /// when absent.
    #[schema(value_type = Option<String>)]
    pub received_at: Option<Value>,
    /// The provider's id for the message: a message posted again with the same id is
    /// recorded once.
    pub provider_message_id: Option<String>,
    /// Record a message from a number no contact has under a new lead, instead of answering 404.
    pub create_contact: Option<bool>,
}

/// What was recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboundOutcome {
    /// `recorded`, or `duplicate` when a message with this `provider_message_id` was recorded
    /// before.
    pub status: &'static str,
    pub contact_id: Uuid,
    /// The timeline event's id: `<channel>:<provider_message_id>`, or one Rapport assigned.
    pub event_id: String,
    /// `sms.received` or `chat.message`.
    pub event_type: &'static str,
    /// The message asked to stop (STOP, UNSUBSCRIBE, STOPP, ARRET…): consent to marketing on
    /// this channel is withdrawn.
    pub opted_out: bool,
    /// Queued marketing messages on this channel cancelled by the opt-out.
    pub cancelled_messages: u64,
    /// The message asked to start again (START, UNSTOP) after an opt-out: consent to marketing
    /// on this channel is granted again.
    pub opted_in: bool,
}

/// A checked inbound message.
struct Inbound {
    channel: ConsentChannel,
    from: String,
    to: Option<String>,
    body: String,
    received_at: Option<chrono::DateTime<chrono::Utc>>,
    provider_message_id: Option<String>,
    create_contact: bool,
}

fn check(m: InboundMessage, region: rapport_core::PhoneRegion) -> Result<Inbound, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let channel = match m.channel.as_deref().map(str::trim) {
        Some("sms") => Some(ConsentChannel::Sms),
        Some("chat") => Some(ConsentChannel::Chat),
        Some(other) => {
            errs.push("channel", format!("'{other}' is not a text channel; use sms or chat"));
            None
        }
        None => {
            errs.push("channel", "is required: sms or chat");
            None
        }
    };
    let from = match m.from.as_deref() {
        Some(raw) => match PhoneNumber::parse(raw, region) {
            Ok(p) => Some(p.e164().to_string()),
            Err(e) => {
                errs.push("from", e);
                None
            }
        },
        None => {
            errs.push("from", "is required: the sender's phone number, e.g. +4915112345678");
            None
        }
    };
    let to = match m.to.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) if t.chars().count() > 64 => {
            errs.push("to", "must be at most 64 characters");
            None
        }
        Some(t) => Some(PhoneNumber::parse(t, region).map(|p| p.e164().to_string()).unwrap_or_else(|_| t.to_string())),
    };
    let body = match m.body {
        Some(b) if b.trim().is_empty() => {
            errs.push("body", "must not be empty");
            None
        }
        Some(b) if b.chars().count() > MAX_BODY_CHARS => {
            errs.push("body", format!("must be at most {MAX_BODY_CHARS} characters"));
            None
        }
        Some(b) => Some(b),
        None => {
            errs.push("body", "is required: the text of the message");
            None
        }
    };
    let received_at = match &m.received_at {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => Some(t.to_utc()),
            Err(_) => {
                errs.push("received_at", "must be an RFC 3339 time with a zone, e.g. 2026-01-15T09:00:00Z");
                None
            }
        },
        Some(Value::Number(n)) => match n.as_i64().and_then(|s| chrono::DateTime::from_timestamp(s, 0)) {
            Some(t) => Some(t),
            None => {
                errs.push("received_at", "must be whole Unix seconds");
                None
            }
        },
        Some(_) => {
            errs.push("received_at", "must be an RFC 3339 time or Unix seconds");
            None
        }
    };
    let provider_message_id = match m.provider_message_id.as_deref().map(str::trim) {
        None => None,
        Some("") => {
            errs.push("provider_message_id", "must not be empty (leave it out when the provider gives none)");
            None
        }
        Some(id) if id.chars().count() > MAX_PROVIDER_ID_CHARS => {
            errs.push("provider_message_id", format!("must be at most {MAX_PROVIDER_ID_CHARS} characters"));
            None
        }
        Some(id) => Some(id.to_string()),
    };
    errs.into_result()?;
    Ok(Inbound {
        channel: channel.expect("checked above"),
        from: from.expect("checked above"),
        to,
        body: body.expect("checked above"),
        received_at,
        provider_message_id,
        create_contact: m.create_contact.unwrap_or(false),
    })
}

/// The ingest's complaint about a field, in the words of this request.
fn request_field(field: &str) -> String {
    match field {
        "occurred_at" => "received_at".into(),
        f if f.starts_with("contact") => "from".into(),
        f if f.starts_with("payload") => "body".into(),
        "id" => "provider_message_id".into(),
        other => other.into(),
    }
}

/// Receive an SMS or chat message
///
/// For a provider's inbound webhook. The sender is found by phone number (normalised to
/// E.164); a number no contact has is answered 404 unless `create_contact` is true, which
/// records the message under a new lead. The message lands on the timeline as `sms.received`
/// or `chat.message` (direction `inbound`) and counts as the person getting in touch: waiting
/// workflow runs that reach out stop. A message that is only a stop word (STOP, STOPALL,
/// UNSUBSCRIBE, CANCEL, END, QUIT, STOPP, ARRET, BAJA…) withdraws consent to marketing on that
/// channel in the consent ledger and cancels queued marketing messages there. Posting the same
/// `provider_message_id` again records nothing new (200, `duplicate`).
#[utoipa::path(post, path = "/api/v1/messages/inbound", tag = "messaging", request_body = InboundMessage,
    responses((status = 201, body = InboundOutcome), (status = 200, body = InboundOutcome, description = "Recorded before"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn inbound(State(s): State<AppState>, caller: Caller, JsonBody(m): JsonBody<InboundMessage>) -> ApiResult<Response> {
    caller.can_write()?;
    let m = check(m, s.store.options().phone_region)?;
    let (kind, channel) = match m.channel {
        ConsentChannel::Chat => ("chat.message", "chat"),
        _ => ("sms.received", "sms"),
    };
    let mut payload = json!({"direction": "inbound", "text": m.body, "from": m.from});
    if let Some(to) = &m.to {
        payload["to"] = json!(to);
    }
    if let Some(id) = &m.provider_message_id {
        payload["provider_message_id"] = json!(id);
    }
    let mut event = json!({
        "type": kind,
        "contact": {"phone": m.from},
        "channel": channel,
        "payload": payload,
    });
    if let Some(id) = &m.provider_message_id {
        event["id"] = json!(format!("{channel}:{id}"));
    }
    if let Some(at) = m.received_at {
        event["occurred_at"] = json!(at.to_rfc3339());
    }
    let report = s.store.ingest(IngestRequest { events: vec![event], create_contact: m.create_contact }).await?;
    let Some(item) = report.results.into_iter().next() else {
        return Err(ApiError::Internal("ingest answered nothing for one event".into()));
    };
    let contact_id = match (item.status, item.contact_id) {
        (ItemStatus::Accepted, Some(c)) => c,
        // A repeat: the contact the first delivery was filed under.
        (ItemStatus::Duplicate, _) => {
            let source = item.id.clone().unwrap_or_default();
            s.store
                .event_contact(source)
                .await?
                .ok_or_else(|| ApiError::Internal("a repeated inbound message has no stored event to answer with".into()))?
        }
        _ if !m.create_contact && item.errors.iter().any(|e| e.field.starts_with("contact")) => {
            return Err(ApiError::NotFound(format!(
                "no contact has the phone number {}; send \"create_contact\": true to record it under a new lead",
                m.from
            )));
        }
        _ => {
            let mut v = ValidationErrors::default();
            for e in &item.errors {
                v.push(request_field(&e.field), e.message.clone());
            }
            if v.is_empty() {
                return Err(ApiError::Internal(format!("ingest refused an inbound message without a reason: {:?}", item.status)));
            }
            return Err(ApiError::Invalid(v));
        }
    };
    let recorded = item.status == ItemStatus::Accepted;
    // Also for a repeat: the first delivery may have stopped before the opt-out was written;
    // a withdrawal already in effect is not recorded twice.
    let evidence = || format!("replied \"{}\" from {}", m.body.trim(), m.from);
    let (opted_out, cancelled_messages) = if is_stop_request(&m.body) {
        let out = s.store.record_text_opt_out(contact_id, m.channel, evidence()).await?;
        (true, out.cancelled)
    } else {
        (false, 0)
    };
    let opted_in = is_start_request(&m.body) && s.store.record_text_opt_in(contact_id, m.channel, evidence()).await?;
    if recorded {
        s.automation_wake.notify_one();
        metrics::counter!("rapport_messages_received_total", "channel" => channel).increment(1);
    }
    let outcome = InboundOutcome {
        status: if recorded { "recorded" } else { "duplicate" },
        contact_id,
        event_id: item.id.unwrap_or_default(),
        event_type: kind,
        opted_out,
        cancelled_messages,
        opted_in,
    };
    let code = if recorded { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, Json(outcome)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(v: Value) -> InboundMessage {
        serde_json::from_value(v).unwrap()
    }

    fn fields(v: Value) -> Vec<String> {
        match check(draft(v), rapport_core::PhoneRegion::parse("DE").unwrap()) {
            Err(e) => e.errors.into_iter().map(|e| e.field).collect(),
            Ok(_) => vec![],
        }
    }

    #[test]
    fn problems_name_their_field() {
        assert_eq!(fields(json!({"channel": "sms", "from": "+4915112345678", "body": "Hi"})), Vec::<String>::new());
        assert_eq!(fields(json!({})), ["channel", "from", "body"]);
        assert_eq!(fields(json!({"channel": "fax", "from": "+4915112345678", "body": "Hi"})), ["channel"]);
        assert_eq!(fields(json!({"channel": "sms", "from": "not a number", "body": "Hi"})), ["from"]);
        assert_eq!(fields(json!({"channel": "sms", "from": "+4915112345678", "body": "  "})), ["body"]);
        assert_eq!(
            fields(json!({"channel": "chat", "from": "+4915112345678", "body": "Hi", "received_at": "yesterday"})),
            ["received_at"]
        );
        assert_eq!(
            fields(json!({"channel": "sms", "from": "+4915112345678", "body": "Hi", "provider_message_id": ""})),
            ["provider_message_id"]
        );
    }

    #[test]
    fn numbers_are_normalised() {
        let m = check(
            draft(json!({"channel": "sms", "from": "0151 12345678", "to": "+49 30 1234567", "body": "Hi", "received_at": 1_768_467_600})),
            rapport_core::PhoneRegion::parse("DE").unwrap(),
        )
        .unwrap();
        assert_eq!((m.from.as_str(), m.to.as_deref()), ("+4915112345678", Some("+49301234567")));
        assert_eq!(m.received_at.unwrap().to_rfc3339(), "2026-01-15T09:00:00+00:00");
    }
}
