//! The message outbox: messages workflow runs (and later campaigns) committed to, claimed by a
//! channel's sender with a lease, and marked sent or failed. Consent is checked again at claim
//! time, so an unsubscribe stops messages already queued.

use chrono::{Duration, Utc};
use rapport_core::Timestamp;
use serde_json::{Value as Json, json};
use uuid::Uuid;

use crate::db::Dialect;
use crate::{Result, Store};

/// A message to hand to its channel.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub run_id: Option<Uuid>,
    pub channel: String,
    pub template: String,
    /// The step's own subject, already rendered; the template's when `None`.
    pub subject: Option<String>,
    pub recipient: Option<String>,
    pub marketing: bool,
    /// Including this one.
    pub attempt: u32,
}

/// How handing a message over ended.
#[derive(Debug, Clone)]
pub enum MessageResult {
    Sent,
    /// Try again at `at`.
    Retry {
        error: String,
        at: Timestamp,
    },
    /// Give up: a permanent refusal, a template that cannot render, no address.
    Failed {
        error: String,
    },
}

impl Store {
    /// Claims up to `limit` queued messages of `channel` that are due, for `lease`. Marketing
    /// messages to people who have since unsubscribed are cancelled instead of claimed.
    pub async fn claim_messages(&self, channel: &str, limit: usize, lease: Duration) -> Result<Vec<PendingMessage>> {
        let store = self.clone();
        let channel = channel.to_string();
        self.write(move |tx| {
            let now = store.now();
            tx.execute(
                "UPDATE message_outbox SET status = 'cancelled', updated_at = $1, \
                 status_reason = 'they unsubscribed from marketing before it was sent' \
                 WHERE status = 'queued' AND marketing AND contact_id IN \
                 (SELECT contact_id FROM contact_subscriptions WHERE topic = '*' AND NOT subscribed AND changed_at >= message_outbox.created_at)",
                &[now.into()],
            )?;
            // "Do not contact" stops every marketing message on every channel, whenever it was set.
            tx.execute(
                "UPDATE message_outbox SET status = 'cancelled', updated_at = $1, \
                 status_reason = 'they asked not to be contacted (do not contact) before it was sent' \
                 WHERE status = 'queued' AND marketing AND contact_id IN (SELECT contact_id FROM contact_privacy WHERE do_not_contact)",
                &[now.into()],
            )?;
            // A message about a topic they left after it was queued (the topic's own row beats
            // an "all marketing" row of the same time; a later resubscription to all beats it).
            tx.execute(
                "UPDATE message_outbox SET status = 'cancelled', updated_at = $1, \
                 status_reason = 'they unsubscribed from the topic ' || topic || ' before it was sent' \
                 WHERE status = 'queued' AND marketing AND topic IS NOT NULL AND EXISTS \
                 (SELECT 1 FROM contact_subscriptions s WHERE s.contact_id = message_outbox.contact_id AND s.topic = message_outbox.topic \
                 AND NOT s.subscribed AND s.changed_at >= message_outbox.created_at AND NOT EXISTS \
                 (SELECT 1 FROM contact_subscriptions a WHERE a.contact_id = s.contact_id AND a.topic = '*' AND a.subscribed \
                 AND a.changed_at > s.changed_at))",
                &[now.into()],
            )?;
            let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
            let rows = tx.query(
                &format!(
                    "SELECT id, contact_id, run_id, template, subject, recipient, marketing, attempts FROM message_outbox \
                     WHERE status = 'queued' AND channel = $1 AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
                     AND (campaign_id IS NULL OR test OR campaign_id NOT IN (SELECT id FROM campaigns WHERE status = 'paused')) \
                     ORDER BY next_attempt_at, id LIMIT {limit}{lock}"
                ),
                &[channel.as_str().into(), now.into()],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id = r.uuid(0)?;
                tx.execute(
                    "UPDATE message_outbox SET attempts = attempts + 1, lease_until = $2, updated_at = $3 WHERE id = $1",
                    &[id.into(), (now + lease).into(), now.into()],
                )?;
                out.push(PendingMessage {
                    id,
                    contact_id: r.uuid(1)?,
                    run_id: r.opt_uuid(2)?,
                    channel: channel.clone(),
                    template: r.string(3)?,
                    subject: r.opt_string(4)?,
                    recipient: r.opt_string(5)?,
                    marketing: r.bool(6)?,
                    attempt: u32::try_from(r.i64(7)? + 1).unwrap_or(u32::MAX),
                });
            }
            Ok(out)
        })
        .await
    }

    /// Records how handing a message over ended; a final outcome goes on the run's history.
    pub async fn finish_message(&self, id: Uuid, result: MessageResult) -> Result<()> {
        self.finish_messages(vec![(id, result)]).await
    }

    /// Whether a message is due on a channel that can send it, or being sent right now (for the
    /// manual clock's answer).
    pub async fn messages_due(&self) -> Result<bool> {
        let now = self.now();
        let ready: Vec<String> = self.options().automation.ready_channels.iter().map(|c| c.as_str().to_string()).collect();
        if ready.is_empty() {
            return Ok(false);
        }
        self.read(move |tx| {
            let list: Vec<String> = (0..ready.len()).map(|i| format!("${}", i + 2)).collect();
            let mut params: Vec<crate::value::Value> = vec![now.into()];
            params.extend(ready.into_iter().map(crate::value::Value::Text));
            tx.exists(
                &format!(
                    "SELECT 1 FROM message_outbox WHERE status = 'queued' AND next_attempt_at <= $1 AND channel IN ({}) \
                     AND (campaign_id IS NULL OR test OR campaign_id NOT IN (SELECT id FROM campaigns WHERE status = 'paused')) LIMIT 1",
                    list.join(", ")
                ),
                &params,
            )
        })
        .await
    }

    /// What a message template can use about a contact: the contact, their profile, owner,
    /// first company, and what to recommend to them.
    pub async fn message_context(&self, contact_id: Uuid) -> Result<Json> {
        let store = self.clone();
        let recommendations = self.recommendations(contact_id, 5).await?;
        // Index probes by one contact's id: run in place when a reader is free. Handing them to
        // the blocking pool and back cost more than the reads (`rapport bench email`).
        self.read_point_snapshot(move |tx| {
            let contact = crate::contacts::load(tx, contact_id)?;
            let profile = crate::profiles::profile_view(tx, &store, contact_id)?;
            let owner = match contact.owner_id {
                Some(id) => tx
                    .query_opt("SELECT name, email FROM users WHERE id = $1", &[id.into()])?
                    .map(|r| Ok::<_, crate::StoreError>(json!({"name": r.string(0)?, "email": r.string(1)?})))
                    .transpose()?,
                None => None,
            };
            let company = tx
                .query_opt(
                    "SELECT co.name, co.domain FROM contact_companies cc JOIN companies co ON co.id = cc.company_id \
                     WHERE cc.contact_id = $1 ORDER BY cc.is_primary DESC, cc.created_at LIMIT 1",
                    &[contact_id.into()],
                )?
                .map(|r| Ok::<_, crate::StoreError>(json!({"name": r.string(0)?, "domain": r.opt_string(1)?})))
                .transpose()?;
            Ok(json!({
                "contact": {
                    "id": contact.id,
                    "first_name": contact.first_name,
                    "last_name": contact.last_name,
                    "display_name": contact.display_name,
                    "email": contact.primary_email().map(|e| e.as_str().to_string()),
                    "phone": contact.phones.first().map(|p| p.e164.clone()),
                    "locale": contact.locale,
                    "time_zone": contact.time_zone,
                    "tags": contact.tags,
                    "custom": contact.custom_fields,
                },
                "profile": profile,
                "owner": owner,
                "company": company,
                "recommendations": recommendations,
                "now": Utc::now(),
            }))
        })
        .await
    }
}

/// A message to queue as it is, outside a workflow run (a benchmark, a bulk send).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub contact_id: Uuid,
    pub recipient: String,
    /// Unique per message: queueing the same key again does nothing.
    pub idempotency_key: String,
}

/// Rows per `INSERT` in [`Store::queue_messages`]: 8 parameters each, far below both backends'
/// limits, and long enough statements to make 100,000 rows a matter of seconds.
const QUEUE_ROWS_PER_STATEMENT: usize = 200;

impl Store {
    /// Records how handing several messages over ended, in one transaction. Senders that hand
    /// over many messages at once call this with what finished meanwhile, instead of one write
    /// per message; each row is recorded exactly as [`Store::finish_message`] would.
    pub async fn finish_messages(&self, results: Vec<(Uuid, MessageResult)>) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            for (id, result) in results {
                record_outcome(tx, now, id, result)?;
            }
            Ok(())
        })
        .await
    }

    /// Queues `messages` on `channel` with `template`, due now, in one transaction; returns how
    /// many were new (a repeated idempotency key is skipped). Consent is checked when they are
    /// claimed, as for every queued message.
    pub async fn queue_messages(&self, channel: &str, template: &str, marketing: bool, messages: Vec<NewMessage>) -> Result<u64> {
        let store = self.clone();
        let (channel, template) = (channel.to_string(), template.to_string());
        self.write(move |tx| {
            let now = store.now();
            let mut added = 0;
            for chunk in messages.chunks(QUEUE_ROWS_PER_STATEMENT) {
                let mut rows = Vec::with_capacity(chunk.len());
                let mut params: Vec<crate::value::Value> = Vec::with_capacity(chunk.len() * 8);
                for (i, m) in chunk.iter().enumerate() {
                    let b = i * 8;
                    rows.push(format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, 'queued', ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7,
                        b + 8,
                        b + 8,
                        b + 8
                    ));
                    params.extend([
                        rapport_core::new_id().into(),
                        m.idempotency_key.as_str().into(),
                        m.contact_id.into(),
                        channel.as_str().into(),
                        template.as_str().into(),
                        marketing.into(),
                        m.recipient.as_str().into(),
                        now.into(),
                    ]);
                }
                added += tx.execute(
                    &format!(
                        "INSERT INTO message_outbox (id, idempotency_key, contact_id, channel, template, marketing, status, recipient, \
                         next_attempt_at, created_at, updated_at) VALUES {} ON CONFLICT (idempotency_key) DO NOTHING",
                        rows.join(", ")
                    ),
                    &params,
                )?;
            }
            Ok(added)
        })
        .await
    }
}

/// One message's outcome: its row, and for a final outcome the step history of its run.
fn record_outcome(tx: &mut dyn crate::db::Tx, now: Timestamp, id: Uuid, result: MessageResult) -> Result<()> {
    let (status, next, reason, sent) = match &result {
        MessageResult::Sent => ("sent", None, None, Some(now)),
        MessageResult::Retry { error, at } => ("queued", Some(*at), Some(error.clone()), None),
        MessageResult::Failed { error } => ("failed", None, Some(error.clone()), None),
    };
    let Some(r) = tx.query_opt(
        "UPDATE message_outbox SET status = $2, next_attempt_at = $3, status_reason = $4, sent_at = $5, lease_until = NULL, \
         updated_at = $6 WHERE id = $1 RETURNING run_id, idempotency_key, channel, template",
        &[id.into(), status.into(), next.into(), reason.into(), sent.into(), now.into()],
    )?
    else {
        return Ok(());
    };
    let Some(run) = r.opt_uuid(0)? else { return Ok(()) };
    // The idempotency key ends with the step's path.
    let key = r.string(1)?;
    let step = key.rsplit(':').next().unwrap_or_default().to_string();
    let what = format!("{} \"{}\"", r.string(2)?, r.string(3)?);
    match result {
        MessageResult::Sent => super::runs::log_step(tx, run, &step, "send_message", "sent", &format!("{what} sent"), now),
        MessageResult::Failed { error } => {
            super::runs::log_step(tx, run, &step, "send_message", "failed", &format!("{what} not sent: {error}"), now)
        }
        MessageResult::Retry { .. } => Ok(()),
    }
}
