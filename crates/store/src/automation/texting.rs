//! Text messages (SMS and chat) around the outbox: the consent they need, messages waiting for
//! a channel that has since been set up, and what a reply of STOP does.
//!
//! Email reads its consent from `contact_subscriptions` (what unsubscribe links write); text
//! channels read the consent ledger itself: the latest effective fact about marketing on the
//! channel. A withdrawal stops marketing on that channel only ("STOP" to a text message is no
//! answer about email); "do not contact" and "unsubscribe from all marketing" stop every
//! channel, as the outbox and the workflow guards already make sure.

use rapport_core::Timestamp;
use rapport_core::consent::{ConsentChannel, ConsentInput, ConsentPurpose, LegalBasis};
use uuid::Uuid;

use super::outbox::PendingMessage;
use crate::db::Tx;
use crate::{Result, Store};

/// When the contact withdrew consent to marketing on `channel`, if the latest effective fact of
/// the ledger about it is a withdrawal. A grant waiting for double opt-in is not a fact yet.
pub(crate) fn marketing_withdrawn(tx: &mut dyn Tx, contact: Uuid, channel: &str) -> Result<Option<Timestamp>> {
    let row = tx.query_opt(
        "SELECT granted, COALESCE(confirmed_at, recorded_at) AS effective_at FROM consent_ledger \
         WHERE contact_id = $1 AND channel = $2 AND purpose = 'marketing' AND (NOT double_opt_in OR confirmed_at IS NOT NULL) \
         ORDER BY effective_at DESC, id DESC LIMIT 1",
        &[contact.into(), channel.into()],
    )?;
    match row {
        Some(r) if !r.bool(0)? => Ok(Some(r.time(1)?)),
        _ => Ok(None),
    }
}

/// What a STOP reply changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OptOut {
    /// A withdrawal was added to the ledger (false when one was already in effect).
    pub recorded: bool,
    /// Queued marketing messages on the channel that will now not be sent.
    pub cancelled: u64,
}

impl Store {
    /// The contact an event with the sender's id `source_id` was filed under, if there is one
    /// (for answering a repeated inbound message).
    pub async fn event_contact(&self, source_id: String) -> Result<Option<Uuid>> {
        self.read_point(move |tx| {
            tx.query_opt("SELECT contact_id FROM events WHERE source_id = $1", &[source_id.as_str().into()])?
                .map(|r| r.uuid(0))
                .transpose()
        })
        .await
    }

    /// Puts messages of `channel` that were queued while no channel could send them back in
    /// the queue, due now (campaign messages have their own bookkeeping and are left alone).
    /// Returns how many; cheap when there are none.
    pub async fn release_unsendable_messages(&self, channel: &str) -> Result<u64> {
        let ch = channel.to_string();
        let waiting = self
            .read(move |tx| {
                tx.exists(
                    "SELECT 1 FROM message_outbox WHERE status = 'unsendable' AND channel = $1 AND campaign_id IS NULL LIMIT 1",
                    &[ch.as_str().into()],
                )
            })
            .await?;
        if !waiting {
            return Ok(0);
        }
        let store = self.clone();
        let ch = channel.to_string();
        self.write(move |tx| {
            let now = store.now();
            tx.execute(
                "UPDATE message_outbox SET status = 'queued', status_reason = NULL, next_attempt_at = $2, updated_at = $2 \
                 WHERE status = 'unsendable' AND channel = $1 AND campaign_id IS NULL",
                &[ch.as_str().into(), now.into()],
            )
        })
        .await
    }

    /// For a claimed marketing text message: when its person has withdrawn consent to marketing
    /// on its channel, cancels it (and says so on its run) and returns why; otherwise `None`.
    pub async fn cancel_text_without_consent(&self, m: &PendingMessage) -> Result<Option<String>> {
        if !m.marketing {
            return Ok(None);
        }
        let (contact, channel) = (m.contact_id, m.channel.clone());
        let withdrawn = self.read_point(move |tx| marketing_withdrawn(tx, contact, &channel)).await?;
        let Some(since) = withdrawn else { return Ok(None) };
        let reason = format!("they withdrew consent to marketing by {} on {}", m.channel, since.format("%Y-%m-%d"));
        let store = self.clone();
        let (id, why) = (m.id, reason.clone());
        self.write(move |tx| {
            let now = store.now();
            let Some(r) = tx.query_opt(
                "UPDATE message_outbox SET status = 'cancelled', status_reason = $2, lease_until = NULL, updated_at = $3 \
                 WHERE id = $1 AND status = 'queued' RETURNING run_id, idempotency_key, channel, template",
                &[id.into(), why.as_str().into(), now.into()],
            )?
            else {
                return Ok(());
            };
            if let Some(run) = r.opt_uuid(0)? {
                let key = r.string(1)?;
                let step = key.rsplit(':').next().unwrap_or_default().to_string();
                let detail = format!("{} \"{}\" not sent: {why}", r.string(2)?, r.string(3)?);
                super::runs::log_step(tx, run, &step, "send_message", "cancelled", &detail, now)?;
            }
            Ok(())
        })
        .await?;
        Ok(Some(reason))
    }

    /// A person who had opted out replied START (or the like) on `channel`: records a grant of
    /// consent to marketing on that channel (source `sms_reply` or `chat_reply`, the reply as
    /// evidence). Returns whether it recorded one: nothing is recorded while no withdrawal is in
    /// effect.
    pub async fn record_text_opt_in(&self, contact: Uuid, channel: ConsentChannel, evidence: String) -> Result<bool> {
        let store = self.clone();
        self.write(move |tx| {
            if marketing_withdrawn(tx, contact, channel.as_str())?.is_none() {
                return Ok(false);
            }
            let input = ConsentInput {
                purpose: ConsentPurpose::AllMarketing,
                channel,
                granted: true,
                source: format!("{}_reply", channel.as_str()),
                legal_basis: LegalBasis::Consent,
                evidence: Some(evidence),
                double_opt_in: false,
                confirmation_template: None,
            };
            crate::consent::record_tx(tx, contact, &input, None, store.now())?;
            Ok(true)
        })
        .await
    }

    /// A person replied STOP (or the like) on `channel`: records the withdrawal of consent to
    /// marketing on that channel in the ledger (source `sms_reply` or `chat_reply`, the reply as
    /// evidence) unless one is already in effect, and cancels their queued marketing messages
    /// on the channel, in one transaction.
    pub async fn record_text_opt_out(&self, contact: Uuid, channel: ConsentChannel, evidence: String) -> Result<OptOut> {
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            let mut out = OptOut::default();
            if marketing_withdrawn(tx, contact, channel.as_str())?.is_none() {
                let input = ConsentInput {
                    purpose: ConsentPurpose::AllMarketing,
                    channel,
                    granted: false,
                    source: format!("{}_reply", channel.as_str()),
                    legal_basis: LegalBasis::Consent,
                    evidence: Some(evidence),
                    double_opt_in: false,
                    confirmation_template: None,
                };
                crate::consent::record_tx(tx, contact, &input, None, now)?;
                out.recorded = true;
            }
            out.cancelled = tx.execute(
                "UPDATE message_outbox SET status = 'cancelled', updated_at = $3, \
                 status_reason = 'they replied STOP before it was sent' \
                 WHERE contact_id = $1 AND channel = $2 AND marketing AND status IN ('queued', 'unsendable')",
                &[contact.into(), channel.as_str().into(), now.into()],
            )?;
            Ok(out)
        })
        .await
    }
}
