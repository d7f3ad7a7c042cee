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
    /// For a double opt-in confirmation: the grant its `confirm_url` confirms.
    pub consent_id: Option<Uuid>,
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
    /// messages to people who have since unsubscribed (from everything, or from the message's
    /// topic) or asked not to be contacted are cancelled, with the reason, instead of claimed;
    /// messages of paused campaigns are left queued.
    ///
    /// Consent is checked for the rows being claimed only, and each batch is leased with one
    /// `UPDATE`, so a claim costs the same with 100 or 100,000 messages queued.
    pub async fn claim_messages(&self, channel: &str, limit: usize, lease: Duration) -> Result<Vec<PendingMessage>> {
        let store = self.clone();
        let channel = channel.to_string();
        self.write(move |tx| {
            let now = store.now();
            let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
            let mut out = Vec::with_capacity(limit.min(MAX_CLAIM_ROWS));
            // Cancelled rows leave room in the batch: claim again for it, while cancelling.
            while out.len() < limit {
                let want = limit - out.len();
                let rows = tx.query(
                    &format!(
                        "SELECT m.id, m.contact_id, m.run_id, m.template, m.subject, m.recipient, m.marketing, m.attempts, \
                         {BLOCKED}, m.consent_id FROM message_outbox m{indexed} \
                         WHERE m.status = 'queued' AND m.channel = $1 AND m.next_attempt_at <= $2 \
                         AND (m.lease_until IS NULL OR m.lease_until <= $2) \
                         AND (m.campaign_id IS NULL OR m.test OR m.campaign_id NOT IN (SELECT id FROM campaigns WHERE status = 'paused')) \
                         ORDER BY m.next_attempt_at, m.id LIMIT {want}{lock}",
                        // SQLite without statistics (a new database) would rather sort every
                        // queued row found by `status` than walk the queue's own index: 40 ms a
                        // claim at 100,000 queued instead of 5.
                        indexed = if tx.dialect() == Dialect::Sqlite { " INDEXED BY message_outbox_due" } else { "" }
                    ),
                    &[channel.as_str().into(), now.into()],
                )?;
                let found = rows.len();
                let mut blocked: [Vec<Uuid>; 3] = Default::default();
                let mut leased = Vec::with_capacity(found);
                for r in rows {
                    let id = r.uuid(0)?;
                    match r.i64(8)? {
                        b @ 1..=3 => blocked[usize::try_from(b - 1).unwrap_or_default()].push(id),
                        _ => {
                            leased.push(id);
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
                                consent_id: r.opt_uuid(9)?,
                            });
                        }
                    }
                }
                for (ids, reason) in blocked.iter().zip(BLOCKED_REASONS) {
                    in_chunks(
                        tx,
                        &format!("UPDATE message_outbox SET status = 'cancelled', updated_at = $1, status_reason = {reason} WHERE id IN ({{in}})"),
                        &[now.into()],
                        ids,
                    )?;
                }
                in_chunks(
                    tx,
                    "UPDATE message_outbox SET attempts = attempts + 1, lease_until = $1, updated_at = $2 WHERE id IN ({in})",
                    &[(now + lease).into(), now.into()],
                    &leased,
                )?;
                // Without a lease in the future, the rows just claimed would be found again.
                if found < want || blocked.iter().all(Vec::is_empty) || lease <= Duration::zero() {
                    break;
                }
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
        // Index probes by one contact's id: run in place when a reader is free. Handing them to
        // the blocking pool and back cost more than the reads (`rapport bench email`).
        self.read_point_snapshot(move |tx| context(tx, &store, contact_id)).await
    }

    /// What sending message `message_id` to `address` needs, in one read: the
    /// [`delivery_check`](Store::delivery_check), and unless the address is suppressed the
    /// [`message_context`](Store::message_context) of `contact_id`. One read transaction
    /// instead of three: beginning one was a tenth of a sender's time (`rapport bench email`).
    pub async fn message_inputs(
        &self,
        message_id: Uuid,
        contact_id: Uuid,
        address: &str,
    ) -> Result<(crate::DeliveryCheck, Option<Result<Json>>)> {
        let store = self.clone();
        let key = crate::deliverability::address_key(address);
        self.read_point_snapshot(move |tx| {
            let check = crate::deliverability::check_delivery(tx, message_id, &key)?;
            let context = if check.suppressed.is_some() { None } else { Some(context(tx, &store, contact_id)) };
            Ok((check, context))
        })
        .await
    }
}

/// [`Store::message_context`] in a transaction.
fn context(tx: &mut dyn crate::db::Tx, store: &Store, contact_id: Uuid) -> Result<Json> {
    let recommendations = crate::profiles::recommend(tx, store, contact_id, 5)?;
    let contact = crate::contacts::load(tx, contact_id)?;
    let profile = crate::profiles::profile_view(tx, store, contact_id)?;
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
}

/// Why a queued marketing message may no longer be sent, checked for each message as it is
/// claimed: 1, they unsubscribed from all marketing after it was queued; 2, they asked not to be
/// contacted (whenever that was); 3, they left the message's topic after it was queued (the
/// topic's own row beats an "all marketing" row of the same time; a later resubscription to all
/// beats it); 0, it may go. The first that holds is the reason given.
const BLOCKED: &str = "CASE WHEN NOT m.marketing THEN 0 \
     WHEN EXISTS (SELECT 1 FROM contact_subscriptions s WHERE s.contact_id = m.contact_id AND s.topic = '*' \
     AND NOT s.subscribed AND s.changed_at >= m.created_at) THEN 1 \
     WHEN EXISTS (SELECT 1 FROM contact_privacy p WHERE p.contact_id = m.contact_id AND p.do_not_contact) THEN 2 \
     WHEN m.topic IS NOT NULL AND EXISTS (SELECT 1 FROM contact_subscriptions s WHERE s.contact_id = m.contact_id \
     AND s.topic = m.topic AND NOT s.subscribed AND s.changed_at >= m.created_at AND NOT EXISTS \
     (SELECT 1 FROM contact_subscriptions a WHERE a.contact_id = s.contact_id AND a.topic = '*' AND a.subscribed \
     AND a.changed_at > s.changed_at)) THEN 3 \
     ELSE 0 END";

/// The `status_reason` of a cancelled message, by [`BLOCKED`]'s answer (1 to 3), as SQL.
const BLOCKED_REASONS: [&str; 3] = [
    "'they unsubscribed from marketing before it was sent'",
    "'they asked not to be contacted (do not contact) before it was sent'",
    "'they unsubscribed from the topic ' || topic || ' before it was sent'",
];

/// Ids per statement in [`in_chunks`]: a whole claimed batch in one `UPDATE` (SQLite allows
/// 32,766 parameters, PostgreSQL 65,535).
const MAX_CLAIM_ROWS: usize = 4096;

/// Runs `sql` (with `{in}` where the id list goes, after `extra` parameters) over `ids`, up to
/// [`MAX_CLAIM_ROWS`] at a time; nothing when `ids` is empty.
fn in_chunks(tx: &mut dyn crate::db::Tx, sql: &str, extra: &[crate::value::Value], ids: &[Uuid]) -> Result<u64> {
    let mut n = 0;
    for chunk in ids.chunks(MAX_CLAIM_ROWS) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", extra.len() + i + 1)).collect();
        let mut params = extra.to_vec();
        params.extend(chunk.iter().copied().map(crate::value::Value::Uuid));
        n += tx.execute(&sql.replace("{in}", &list.join(", ")), &params)?;
    }
    Ok(n)
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
