//! What became of email after it left: opens and clicks (tracking), bounces and complaints
//! (which suppress an address for good), and answers. Each is recorded on the outbox row
//! (`opened_at`, `clicked_at`, `bounced_at`, `complained_at`, `replied_at`: the first time
//! only) and as an event on the person's timeline, in one transaction, through the same path
//! as ingested events so that profiles and workflows see it at once.

use rapport_core::Timestamp;
use rapport_core::event::parse_event;
use serde::Serialize;
use serde_json::{Map, Value as Json, json};
use uuid::Uuid;

use crate::events::{ItemStatus, ingest_tx};
use crate::{Result, Store};

/// Why an address must not be mailed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// `hard_bounce`, `complaint` or `manual`.
    pub reason: String,
    pub detail: Option<String>,
    pub since: Timestamp,
}

/// What the sender must know before a message goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCheck {
    /// The address bounced for good or complained: do not send.
    pub suppressed: Option<Suppression>,
    /// Whether opens and clicks may be tracked: not for test sends nor for people who asked
    /// not to be tracked.
    pub track: bool,
}

/// An open or a click of a tracked message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engagement {
    Opened,
    Clicked { url: String },
}

/// What recording an open or click did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngagementOutcome {
    Recorded,
    /// The person asked not to be tracked, or it was a test send: nothing was recorded.
    NotTracked,
    /// No such message for that contact (deleted since).
    UnknownMessage,
}

/// What a bounce or complaint report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BounceType {
    Hard,
    Soft,
    Complaint,
}

impl BounceType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hard => "hard",
            Self::Soft => "soft",
            Self::Complaint => "complaint",
        }
    }
}

/// One bounced or complaining recipient.
#[derive(Debug, Clone)]
pub struct BounceReport {
    pub recipient: String,
    pub kind: BounceType,
    /// Our messages the report names (outbox ids), best first.
    pub message_refs: Vec<Uuid>,
    pub detail: Option<String>,
    /// The enhanced status code, e.g. `5.1.1`.
    pub status: Option<String>,
}

/// Whether an item of intake was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum IntakeStatus {
    /// Recorded now.
    Recorded,
    /// The same report or answer was recorded before.
    Duplicate,
    /// Nothing to record it on (no contact has the address).
    Ignored,
}

/// What was recorded for one bounced or complaining recipient.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BounceOutcome {
    pub recipient: String,
    #[serde(rename = "type")]
    pub kind: BounceType,
    pub status: IntakeStatus,
    /// Whether the address is now suppressed (never mailed again).
    pub suppressed: bool,
    /// The message it was about, when the report named one of ours.
    pub message_id: Option<Uuid>,
    /// The person it was recorded on.
    pub contact_id: Option<Uuid>,
    /// What was done, in words.
    pub detail: String,
}

/// An answer to one of our messages, or mail from a contact.
#[derive(Debug, Clone)]
pub struct InboundReply {
    pub from: Option<String>,
    /// Our messages it answers (outbox ids), best first.
    pub message_refs: Vec<Uuid>,
    pub subject: Option<String>,
    pub snippet: String,
    /// The answer's own Message-ID: a repeated delivery of it is recorded once.
    pub reply_message_id: Option<String>,
    /// Why it is an automatic answer, when it is one.
    pub auto: Option<String>,
}

/// What was recorded for an answer.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplyOutcome {
    pub status: IntakeStatus,
    /// `reply` or `auto_reply`.
    pub kind: &'static str,
    /// The event type recorded (`email.replied` or `email.auto_replied`).
    pub event: Option<&'static str>,
    pub message_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub detail: String,
}

/// The event type of an automatic answer: on the timeline, never an unsubscribe nor an
/// inbound touch.
pub const AUTO_REPLY_EVENT: &str = "email.auto_replied";

/// An outbox row's facts that intake needs.
struct Sent {
    id: Uuid,
    contact_id: Uuid,
    campaign_id: Option<Uuid>,
    test: bool,
}

fn find_message(tx: &mut dyn crate::db::Tx, refs: &[Uuid]) -> Result<Option<Sent>> {
    for id in refs {
        if let Some(r) = tx.query_opt(
            "SELECT id, contact_id, campaign_id, test FROM message_outbox WHERE id = $1 AND channel = 'email'",
            &[(*id).into()],
        )? {
            return Ok(Some(Sent { id: r.uuid(0)?, contact_id: r.uuid(1)?, campaign_id: r.opt_uuid(2)?, test: r.bool(3)? }));
        }
    }
    Ok(None)
}

fn contact_by_address(tx: &mut dyn crate::db::Tx, address: &str) -> Result<Option<Uuid>> {
    tx.query_opt("SELECT contact_id FROM contact_emails WHERE address = $1", &[address.into()])?.map(|r| r.uuid(0)).transpose()
}

fn do_not_track(tx: &mut dyn crate::db::Tx, contact: Uuid) -> Result<bool> {
    Ok(match tx.query_opt("SELECT do_not_track FROM contact_privacy WHERE contact_id = $1", &[contact.into()])? {
        Some(r) => r.bool(0)?,
        None => false,
    })
}

/// The key email addresses are compared by.
pub fn address_key(address: &str) -> String {
    address.trim().trim_start_matches('<').trim_end_matches('>').trim().to_lowercase()
}

/// Records one event on `contact` inside `tx`, through ingest; `source_id` makes it
/// idempotent. Returns whether it was new.
fn record_event(
    tx: &mut dyn crate::db::Tx,
    store: &Store,
    contact: Uuid,
    kind: &str,
    payload: Map<String, Json>,
    source_id: Option<String>,
    now: Timestamp,
) -> Result<IntakeStatus> {
    let mut raw = json!({"type": kind, "contact": {"id": contact}, "occurred_at": now, "channel": "email", "payload": payload});
    if let Some(s) = &source_id {
        raw["id"] = json!(s);
    }
    let parsed = parse_event(raw, store.options().phone_region, now);
    if let Err(e) = &parsed {
        // Our own events are built to be valid; a rejection is a bug, not bad input.
        return Err(crate::StoreError::Database(format!("a {kind} event was refused: {e}")));
    }
    let report = ingest_tx(tx, store, vec![(source_id, parsed)], false, now)?;
    match report.results.first().map(|r| (r.status, r.errors.clone())) {
        Some((ItemStatus::Accepted, _)) => Ok(IntakeStatus::Recorded),
        Some((ItemStatus::Duplicate, _)) => Ok(IntakeStatus::Duplicate),
        Some((ItemStatus::Rejected, errors)) => {
            let why: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            Err(crate::StoreError::Database(format!("a {kind} event was refused: {}", why.join("; "))))
        }
        None => Ok(IntakeStatus::Ignored),
    }
}

fn put(payload: &mut Map<String, Json>, key: &str, value: impl Into<Json>) {
    let v = value.into();
    if !v.is_null() {
        payload.insert(key.to_string(), v);
    }
}

/// [`Store::delivery_check`] in a transaction, with the address's key.
pub(crate) fn check_delivery(tx: &mut dyn crate::db::Tx, message_id: Uuid, key: &str) -> Result<DeliveryCheck> {
    let suppressed = tx
        .query_opt("SELECT reason, detail, created_at FROM email_suppressions WHERE address_key = $1", &[key.into()])?
        .map(|r| Ok::<_, crate::StoreError>(Suppression { reason: r.string(0)?, detail: r.opt_string(1)?, since: r.time(2)? }))
        .transpose()?;
    let track = match tx.query_opt(
        "SELECT m.test, p.do_not_track FROM message_outbox m LEFT JOIN contact_privacy p ON p.contact_id = m.contact_id \
         WHERE m.id = $1",
        &[message_id.into()],
    )? {
        Some(r) => !r.bool(0)? && !(if r.is_null(1) { false } else { r.bool(1)? }),
        None => false,
    };
    Ok(DeliveryCheck { suppressed, track })
}

impl Store {
    /// Whether `address` may be mailed, and whether message `message_id` may carry tracking.
    pub async fn delivery_check(&self, message_id: Uuid, address: &str) -> Result<DeliveryCheck> {
        let key = address_key(address);
        // Two lookups by key, once per message sent: in place when a reader is free.
        self.read_point_snapshot(move |tx| check_delivery(tx, message_id, &key)).await
    }

    /// Records an open or a click of message `message_id` sent to `contact_id`: the row's
    /// `opened_at` / `clicked_at` the first time, and an `email.opened` / `email.clicked` event
    /// every time. Nothing is recorded for people who asked not to be tracked.
    pub async fn record_engagement(&self, message_id: Uuid, contact_id: Uuid, what: Engagement) -> Result<EngagementOutcome> {
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            let Some(sent) = find_message(tx, &[message_id])?.filter(|s| s.contact_id == contact_id) else {
                return Ok(EngagementOutcome::UnknownMessage);
            };
            if sent.test || do_not_track(tx, contact_id)? {
                return Ok(EngagementOutcome::NotTracked);
            }
            let (column, kind) = match &what {
                Engagement::Opened => ("opened_at", "email.opened"),
                Engagement::Clicked { .. } => ("clicked_at", "email.clicked"),
            };
            // A click shows the message was opened, even when its images were not loaded.
            let also_opened =
                if matches!(what, Engagement::Clicked { .. }) { ", opened_at = COALESCE(opened_at, $2)" } else { "" };
            tx.execute(
                &format!("UPDATE message_outbox SET {column} = COALESCE({column}, $2){also_opened} WHERE id = $1"),
                &[sent.id.into(), now.into()],
            )?;
            let mut payload = Map::new();
            put(&mut payload, "message_id", sent.id.to_string());
            put(&mut payload, "campaign_id", sent.campaign_id.map(|c| c.to_string()));
            if let Engagement::Clicked { url } = &what {
                put(&mut payload, "url", url.clone());
            }
            record_event(tx, &store, contact_id, kind, payload, None, now)?;
            Ok(EngagementOutcome::Recorded)
        })
        .await
    }

    /// Records bounces and complaints: a hard bounce or a complaint suppresses the address for
    /// good and marks the message; every one goes on the person's timeline as `email.bounced`.
    pub async fn record_bounces(&self, reports: Vec<BounceReport>) -> Result<Vec<BounceOutcome>> {
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            let mut out = Vec::with_capacity(reports.len());
            for r in reports {
                out.push(record_bounce(tx, &store, r, now)?);
            }
            Ok(out)
        })
        .await
    }

    /// Records an answer: `email.replied` (and the message's `replied_at`) for a person's
    /// answer, [`AUTO_REPLY_EVENT`] for an automatic one. Answers from an address no contact
    /// has, about none of our messages, are ignored.
    pub async fn record_reply(&self, reply: InboundReply) -> Result<ReplyOutcome> {
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            let sent = find_message(tx, &reply.message_refs)?;
            let from_key = reply.from.as_deref().map(address_key);
            let contact = match (&sent, &from_key) {
                (Some(s), _) => Some(s.contact_id),
                (None, Some(a)) => contact_by_address(tx, a)?,
                (None, None) => None,
            };
            let kind = if reply.auto.is_some() { "auto_reply" } else { "reply" };
            let Some(contact) = contact else {
                return Ok(ReplyOutcome {
                    status: IntakeStatus::Ignored,
                    kind,
                    event: None,
                    message_id: None,
                    contact_id: None,
                    detail: "ignored: no contact has this address".into(),
                });
            };
            let event = if reply.auto.is_some() { AUTO_REPLY_EVENT } else { "email.replied" };
            let mut payload = Map::new();
            put(&mut payload, "message_id", sent.as_ref().map(|s| s.id.to_string()));
            put(&mut payload, "campaign_id", sent.as_ref().and_then(|s| s.campaign_id).map(|c| c.to_string()));
            put(&mut payload, "subject", reply.subject.clone());
            put(&mut payload, "snippet", reply.snippet.clone());
            put(&mut payload, "from", from_key.clone());
            if let Some(why) = &reply.auto {
                put(&mut payload, "reason", why.clone());
            }
            let source = reply.reply_message_id.as_ref().map(|id| format!("rapport:inbound:{id}"));
            let status = record_event(tx, &store, contact, event, payload, source, now)?;
            if status == IntakeStatus::Recorded
                && reply.auto.is_none()
                && let Some(s) = &sent
            {
                tx.execute(
                    "UPDATE message_outbox SET replied_at = COALESCE(replied_at, $2) WHERE id = $1",
                    &[s.id.into(), now.into()],
                )?;
            }
            let detail = match (status, reply.auto.as_deref()) {
                (IntakeStatus::Duplicate, _) => "this message was recorded before".to_string(),
                (_, Some(why)) => format!("an automatic answer ({why}): recorded as {AUTO_REPLY_EVENT}, not as a reply"),
                (_, None) => "recorded as email.replied".to_string(),
            };
            Ok(ReplyOutcome {
                status,
                kind,
                event: Some(event),
                message_id: sent.map(|s| s.id),
                contact_id: Some(contact),
                detail,
            })
        })
        .await
    }
}

fn record_bounce(tx: &mut dyn crate::db::Tx, store: &Store, r: BounceReport, now: Timestamp) -> Result<BounceOutcome> {
    let key = address_key(&r.recipient);
    let sent = find_message(tx, &r.message_refs)?;
    let contact = match &sent {
        Some(s) => Some(s.contact_id),
        None => contact_by_address(tx, &key)?,
    };
    let permanent = matches!(r.kind, BounceType::Hard | BounceType::Complaint);
    let mut done = Vec::new();
    if permanent {
        let reason = if r.kind == BounceType::Complaint { "complaint" } else { "hard_bounce" };
        let detail = r.detail.clone().or_else(|| r.status.clone());
        let added = tx.execute(
            "INSERT INTO email_suppressions (address_key, reason, detail, contact_id, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (address_key) DO NOTHING",
            &[key.as_str().into(), reason.into(), detail.into(), contact.into(), now.into()],
        )?;
        done.push(if added > 0 { "the address is suppressed" } else { "the address was already suppressed" });
        if let Some(s) = &sent {
            let column = if r.kind == BounceType::Complaint { "complained_at" } else { "bounced_at" };
            tx.execute(
                &format!("UPDATE message_outbox SET {column} = COALESCE({column}, $2) WHERE id = $1"),
                &[s.id.into(), now.into()],
            )?;
        }
    }
    let status = match contact {
        Some(contact) => {
            let mut payload = Map::new();
            match r.kind {
                BounceType::Hard => put(&mut payload, "kind", "hard"),
                BounceType::Soft => put(&mut payload, "kind", "soft"),
                // email.bounced knows hard and soft; a complaint says so in `reason`.
                BounceType::Complaint => {}
            }
            put(
                &mut payload,
                "reason",
                match r.kind {
                    BounceType::Hard => "hard_bounce",
                    BounceType::Soft => "soft_bounce",
                    BounceType::Complaint => "complaint",
                },
            );
            put(&mut payload, "recipient", key.clone());
            put(&mut payload, "message_id", sent.as_ref().map(|s| s.id.to_string()));
            put(&mut payload, "campaign_id", sent.as_ref().and_then(|s| s.campaign_id).map(|c| c.to_string()));
            put(&mut payload, "status", r.status.clone());
            put(&mut payload, "detail", r.detail.clone().map(|d| d.chars().take(1000).collect::<String>()));
            // A report about one of our messages is recorded once however often it is posted.
            let source = sent.as_ref().map(|s| format!("rapport:{}:{}:{key}", r.kind.as_str(), s.id));
            let status = record_event(tx, store, contact, "email.bounced", payload, source, now)?;
            done.push(match status {
                IntakeStatus::Duplicate => "the report was recorded before",
                _ => "email.bounced is on the contact's timeline",
            });
            status
        }
        None => {
            done.push("no contact has this address");
            if permanent { IntakeStatus::Recorded } else { IntakeStatus::Ignored }
        }
    };
    let suppressed = tx.exists("SELECT 1 FROM email_suppressions WHERE address_key = $1", &[key.as_str().into()])?;
    Ok(BounceOutcome {
        recipient: key,
        kind: r.kind,
        status,
        suppressed,
        message_id: sent.map(|s| s.id),
        contact_id: contact,
        detail: done.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_compare_by_their_lowercase_form() {
        assert_eq!(address_key(" <Zoe@Example.COM> "), "zoe@example.com");
    }
}
