//! Consent: subscription topics, the append-only consent ledger, the email subscription state
//! it keeps current, and privacy choices.
//!
//! Every change is one transaction: the ledger row, `contact_subscriptions` (what sending
//! reads), and the timeline event (`email.subscribed` / `email.unsubscribed` for email,
//! `consent.changed` for other channels, `privacy.changed` for privacy choices). Events written
//! here do not go through ingest, so nothing derives the subscription state from them a second
//! time.
//!
//! Subscription state per topic: the later of the topic's own row and the `*` row (all
//! marketing) wins; on a tie the topic's row wins. Changes to "all marketing" rewrite the
//! topic rows too, so that a later choice about one topic never has to be ordered against them.

use std::collections::{BTreeMap, BTreeSet};

use rapport_core::consent::{
    ALL_MARKETING, ALL_TOPICS, ConsentChannel, ConsentDraft, ConsentInput, ConsentPurpose, LegalBasis, Privacy, PrivacyDraft,
    SubscriptionTopic, TopicDraft, TopicInput, TopicPatch,
};
use rapport_core::event::Channel;
use rapport_core::{Timestamp, new_id};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::db::Tx;
use crate::events::{EVENT_COLUMNS, insert_system_events};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError};

/// One fact of the ledger.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentRecord {
    pub id: Uuid,
    pub contact_id: Uuid,
    /// `marketing` (every topic) or a topic key.
    pub purpose: String,
    pub channel: String,
    pub granted: bool,
    pub source: String,
    pub legal_basis: String,
    pub evidence: Option<String>,
    pub double_opt_in: bool,
    pub confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `effective`, or `pending` for a double opt-in grant not confirmed yet.
    pub status: &'static str,
    pub recorded_by: Option<Uuid>,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// Whether a contact gets a topic's email now, and why.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicState {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub subscribed: bool,
    /// `choice` (their own for this topic), `all_marketing` (a choice about every topic) or
    /// `default` (no choice recorded: the topic's default).
    pub basis: &'static str,
    pub changed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The latest effective fact per purpose and channel.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrentConsent {
    pub purpose: String,
    pub channel: String,
    /// `None` when only an unconfirmed double opt-in grant exists.
    pub granted: Option<bool>,
    pub source: Option<String>,
    pub legal_basis: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// A double opt-in grant newer than the effective fact waits for confirmation.
    pub pending_confirmation: bool,
}

/// Privacy choices with when they last changed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrivacyState {
    pub do_not_track: bool,
    pub do_not_contact: bool,
    pub not_interested: bool,
    pub changed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Everything about a contact's consent: email topics now, the current fact per purpose and
/// channel, privacy choices, and the whole ledger (newest first).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactConsent {
    pub contact_id: Uuid,
    /// Whether marketing email without a topic may go to them (no "unsubscribe from all").
    pub all_marketing: bool,
    pub topics: Vec<TopicState>,
    pub consents: Vec<CurrentConsent>,
    pub privacy: PrivacyState,
    pub history: Vec<ConsentRecord>,
}

/// What a person chose in the preference centre.
#[derive(Debug, Clone, Default)]
pub struct PreferenceChoices {
    /// The topics ticked; every other topic is a withdrawal.
    pub topics: BTreeSet<String>,
    pub unsubscribe_all: bool,
    pub not_interested: bool,
    pub do_not_track: bool,
}

const TOPIC_SELECT: &str = "SELECT key, name, description, default_subscribed, created_at FROM subscription_topics";
const LEDGER_SELECT: &str = "SELECT id, contact_id, purpose, channel, granted, source, legal_basis, evidence, double_opt_in, \
    confirmed_at, recorded_by, recorded_at FROM consent_ledger";

fn topic_row(r: Row) -> Result<SubscriptionTopic> {
    Ok(SubscriptionTopic {
        key: r.string(0)?,
        name: r.string(1)?,
        description: r.opt_string(2)?,
        default_subscribed: r.bool(3)?,
        created_at: r.time(4)?,
    })
}

fn ledger_row(r: Row) -> Result<ConsentRecord> {
    let double_opt_in = r.bool(8)?;
    let confirmed_at = r.opt_time(9)?;
    Ok(ConsentRecord {
        id: r.uuid(0)?,
        contact_id: r.uuid(1)?,
        purpose: r.string(2)?,
        channel: r.string(3)?,
        granted: r.bool(4)?,
        source: r.string(5)?,
        legal_basis: r.string(6)?,
        evidence: r.opt_string(7)?,
        double_opt_in,
        confirmed_at,
        status: if double_opt_in && confirmed_at.is_none() { "pending" } else { "effective" },
        recorded_by: r.opt_uuid(10)?,
        recorded_at: r.time(11)?,
    })
}

fn load_topic(tx: &mut dyn Tx, key: &str) -> Result<SubscriptionTopic> {
    topic_row(
        tx.query_opt(&format!("{TOPIC_SELECT} WHERE key = $1"), &[key.into()])?
            .ok_or_else(|| StoreError::not_found("subscription topic", key))?,
    )
}

fn all_topics(tx: &mut dyn Tx) -> Result<Vec<SubscriptionTopic>> {
    tx.query(&format!("{TOPIC_SELECT} ORDER BY key"), &[])?.into_iter().map(topic_row).collect()
}

fn check_contact(tx: &mut dyn Tx, contact: Uuid) -> Result<()> {
    if !tx.exists("SELECT 1 FROM contacts WHERE id = $1", &[contact.into()])? {
        return Err(StoreError::not_found("contact", contact));
    }
    Ok(())
}

/// Writes one event on the contact's timeline (and tells workflows about it).
fn timeline_event(
    tx: &mut dyn Tx,
    contact: Uuid,
    kind: &'static str,
    channel: Channel,
    payload: serde_json::Value,
    actor: Option<Uuid>,
    now: Timestamp,
) -> Result<()> {
    let mut values: Vec<Value> = Vec::with_capacity(EVENT_COLUMNS);
    values.extend([
        contact.into(),
        now.into(),
        new_id().into(),
        Value::Null,
        kind.into(),
        channel.as_str().into(),
        Value::Null,
        Value::Null,
        Value::Json(payload),
        now.into(),
        actor.into(),
    ]);
    insert_system_events(tx, &values)
}

/// Sets the email subscription state `purpose` names. "All marketing" rewrites every topic
/// row of the contact as well (see the module notes).
fn set_subscription(tx: &mut dyn Tx, contact: Uuid, purpose: &ConsentPurpose, subscribed: bool, now: Timestamp) -> Result<()> {
    tx.execute(
        "INSERT INTO contact_subscriptions (contact_id, topic, subscribed, changed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (contact_id, topic) DO UPDATE SET subscribed = excluded.subscribed, changed_at = excluded.changed_at \
         WHERE excluded.changed_at >= contact_subscriptions.changed_at",
        &[contact.into(), purpose.subscription_topic().into(), subscribed.into(), now.into()],
    )?;
    if *purpose == ConsentPurpose::AllMarketing {
        tx.execute(
            "UPDATE contact_subscriptions SET subscribed = $2, changed_at = $3 \
             WHERE contact_id = $1 AND topic <> '*' AND changed_at <= $3",
            &[contact.into(), subscribed.into(), now.into()],
        )?;
    }
    crate::segments::mark_segments_dirty(tx, &[contact], now)
}

/// Makes an effective fact take effect: the subscription state (email) and the timeline.
fn take_effect(
    tx: &mut dyn Tx,
    rec: &ConsentRecord,
    purpose: &ConsentPurpose,
    now: Timestamp,
    actor: Option<Uuid>,
) -> Result<()> {
    let mut payload = json!({
        "source": rec.source,
        "legal_basis": rec.legal_basis,
        "consent_id": rec.id,
    });
    if rec.double_opt_in {
        payload["double_opt_in"] = json!(true);
    }
    if rec.channel == ConsentChannel::Email.as_str() {
        set_subscription(tx, rec.contact_id, purpose, rec.granted, now)?;
        payload["topic"] = json!(purpose.subscription_topic());
        let kind = if rec.granted { "email.subscribed" } else { "email.unsubscribed" };
        timeline_event(tx, rec.contact_id, kind, Channel::Email, payload, actor, now)
    } else {
        payload["purpose"] = json!(rec.purpose);
        payload["channel"] = json!(rec.channel);
        payload["granted"] = json!(rec.granted);
        timeline_event(tx, rec.contact_id, "consent.changed", Channel::System, payload, actor, now)
    }
}

/// Appends a fact to the ledger and, unless it waits for confirmation, applies it.
pub(crate) fn record_tx(
    tx: &mut dyn Tx,
    contact: Uuid,
    input: &ConsentInput,
    recorded_by: Option<Uuid>,
    now: Timestamp,
) -> Result<ConsentRecord> {
    if let ConsentPurpose::Topic(t) = &input.purpose
        && !tx.exists("SELECT 1 FROM subscription_topics WHERE key = $1", &[t.as_str().into()])?
    {
        return Err(StoreError::invalid(
            "purpose",
            format!("no subscription topic has key '{}'; create it first, or use {ALL_MARKETING} for every topic", t.as_str()),
        ));
    }
    let id = new_id();
    tx.execute(
        "INSERT INTO consent_ledger (id, contact_id, purpose, channel, granted, source, legal_basis, evidence, double_opt_in, \
         confirmed_at, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11)",
        &[
            id.into(),
            contact.into(),
            input.purpose.as_str().into(),
            input.channel.as_str().into(),
            input.granted.into(),
            input.source.as_str().into(),
            input.legal_basis.as_str().into(),
            input.evidence.clone().into(),
            input.double_opt_in.into(),
            recorded_by.into(),
            now.into(),
        ],
    )?;
    let rec = ledger_row(tx.query_one(&format!("{LEDGER_SELECT} WHERE id = $1"), &[id.into()])?)?;
    if rec.status == "pending" {
        timeline_event(
            tx,
            contact,
            "consent.changed",
            Channel::System,
            json!({
                "purpose": rec.purpose, "channel": rec.channel, "granted": true, "status": "pending",
                "source": rec.source, "legal_basis": rec.legal_basis, "consent_id": rec.id,
            }),
            recorded_by,
            now,
        )?;
    } else {
        take_effect(tx, &rec, &input.purpose, now, recorded_by)?;
    }
    Ok(rec)
}

fn load_privacy(tx: &mut dyn Tx, contact: Uuid) -> Result<PrivacyState> {
    Ok(
        match tx.query_opt(
            "SELECT do_not_track, do_not_contact, not_interested, changed_at FROM contact_privacy WHERE contact_id = $1",
            &[contact.into()],
        )? {
            Some(r) => PrivacyState {
                do_not_track: r.bool(0)?,
                do_not_contact: r.bool(1)?,
                not_interested: r.bool(2)?,
                changed_at: Some(r.time(3)?),
            },
            None => PrivacyState { do_not_track: false, do_not_contact: false, not_interested: false, changed_at: None },
        },
    )
}

/// Whether every marketing topic is withdrawn right now (a `*` row that says no).
fn all_withdrawn(tx: &mut dyn Tx, contact: Uuid) -> Result<bool> {
    tx.exists("SELECT 1 FROM contact_subscriptions WHERE contact_id = $1 AND topic = '*' AND NOT subscribed", &[contact.into()])
}

fn withdraw_all(tx: &mut dyn Tx, contact: Uuid, source: &str, evidence: &str, actor: Option<Uuid>, now: Timestamp) -> Result<()> {
    let input = ConsentInput {
        purpose: ConsentPurpose::AllMarketing,
        channel: ConsentChannel::Email,
        granted: false,
        source: source.to_string(),
        legal_basis: LegalBasis::Consent,
        evidence: Some(evidence.to_string()),
        double_opt_in: false,
        confirmation_template: None,
    };
    record_tx(tx, contact, &input, actor, now).map(|_| ())
}

/// Stores new privacy choices with their consequences: a `privacy.changed` event, and for
/// "not interested" a withdrawal of all marketing and a notification to the owner.
fn set_privacy_tx(
    tx: &mut dyn Tx,
    contact: Uuid,
    next: Privacy,
    source: &str,
    actor: Option<Uuid>,
    now: Timestamp,
) -> Result<PrivacyState> {
    let before = load_privacy(tx, contact)?;
    let mut changed = Vec::new();
    if before.do_not_track != next.do_not_track {
        changed.push("do_not_track");
    }
    if before.do_not_contact != next.do_not_contact {
        changed.push("do_not_contact");
    }
    if before.not_interested != next.not_interested {
        changed.push("not_interested");
    }
    if changed.is_empty() {
        return Ok(before);
    }
    tx.execute(
        "INSERT INTO contact_privacy (contact_id, do_not_track, do_not_contact, not_interested, changed_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (contact_id) DO UPDATE SET do_not_track = excluded.do_not_track, \
         do_not_contact = excluded.do_not_contact, not_interested = excluded.not_interested, changed_at = excluded.changed_at",
        &[contact.into(), next.do_not_track.into(), next.do_not_contact.into(), next.not_interested.into(), now.into()],
    )?;
    timeline_event(
        tx,
        contact,
        "privacy.changed",
        Channel::System,
        json!({
            "do_not_track": next.do_not_track, "do_not_contact": next.do_not_contact,
            "not_interested": next.not_interested, "changed": changed, "source": source,
        }),
        actor,
        now,
    )?;
    if next.not_interested && !before.not_interested {
        if !all_withdrawn(tx, contact)? {
            withdraw_all(tx, contact, source, "said they are not interested", actor, now)?;
        }
        notify_owner(tx, contact, source, now)?;
    }
    load_privacy(tx, contact)
}

/// Tells the contact's owner, at once, that the person is not interested.
fn notify_owner(tx: &mut dyn Tx, contact: Uuid, source: &str, now: Timestamp) -> Result<()> {
    let Some(r) = tx.query_opt("SELECT owner_id, display_name FROM contacts WHERE id = $1", &[contact.into()])? else {
        return Ok(());
    };
    let Some(owner) = r.opt_uuid(0)? else { return Ok(()) };
    let name = r.string(1)?;
    let via = match source {
        "preference_centre" => " in the preference centre",
        _ => "",
    };
    let message = format!("{name} said they are not interested{via}: unsubscribed from all marketing");
    tx.execute(
        "INSERT INTO notifications (id, user_id, contact_id, message, run_id, created_at) VALUES ($1, $2, $3, $4, NULL, $5)",
        &[new_id().into(), owner.into(), contact.into(), message.into(), now.into()],
    )?;
    Ok(())
}

/// The email subscription rows of a contact by topic (including `*`).
fn subscription_rows(tx: &mut dyn Tx, contact: Uuid) -> Result<BTreeMap<String, (bool, Timestamp)>> {
    tx.query("SELECT topic, subscribed, changed_at FROM contact_subscriptions WHERE contact_id = $1", &[contact.into()])?
        .into_iter()
        .map(|r| Ok((r.string(0)?, (r.bool(1)?, r.time(2)?))))
        .collect()
}

fn topic_states(topics: Vec<SubscriptionTopic>, rows: &BTreeMap<String, (bool, Timestamp)>) -> Vec<TopicState> {
    let all = rows.get(ALL_TOPICS).copied();
    topics
        .into_iter()
        .map(|t| {
            let own = rows.get(&t.key).copied();
            let (subscribed, basis, changed_at) = match (own, all) {
                (Some((s, at)), Some((_, all_at))) if at >= all_at => (s, "choice", Some(at)),
                (Some((s, at)), None) => (s, "choice", Some(at)),
                (_, Some((s, at))) => (s, "all_marketing", Some(at)),
                (None, None) => (t.default_subscribed, "default", None),
            };
            TopicState { key: t.key, name: t.name, description: t.description, subscribed, basis, changed_at }
        })
        .collect()
}

fn current_consents(history: &[ConsentRecord]) -> Vec<CurrentConsent> {
    // History is newest first: the first effective fact per key is the current one.
    let mut out: BTreeMap<(String, String), CurrentConsent> = BTreeMap::new();
    for rec in history.iter().rev() {
        let entry = out.entry((rec.purpose.clone(), rec.channel.clone())).or_insert_with(|| CurrentConsent {
            purpose: rec.purpose.clone(),
            channel: rec.channel.clone(),
            granted: None,
            source: None,
            legal_basis: None,
            since: None,
            pending_confirmation: false,
        });
        if rec.status == "pending" {
            entry.pending_confirmation = true;
        } else {
            // A confirmed grant takes effect when confirmed.
            let at = rec.confirmed_at.unwrap_or(rec.recorded_at);
            if entry.since.is_none_or(|s| at >= s) {
                entry.granted = Some(rec.granted);
                entry.source = Some(rec.source.clone());
                entry.legal_basis = Some(rec.legal_basis.clone());
                entry.since = Some(at);
                // A withdrawal after a pending grant settles it.
                if !rec.granted {
                    entry.pending_confirmation = false;
                }
            }
        }
    }
    out.into_values().collect()
}

/// Puts the confirmation email of double opt-in grant `consent` in the outbox: transactional
/// (it must reach someone who is not subscribed yet), to their primary address, carrying the
/// grant so that the sender can fill in `{{ confirm_url }}`.
fn queue_confirmation(
    tx: &mut dyn Tx,
    store: &Store,
    contact: Uuid,
    consent: Uuid,
    template: &str,
    now: Timestamp,
) -> Result<()> {
    if !tx.exists("SELECT 1 FROM message_templates WHERE name = $1 AND channel = 'email'", &[template.into()])? {
        return Err(rapport_core::ValidationErrors::single(
            "confirmation_template",
            format!("no email template is named \"{template}\""),
        )
        .into());
    }
    let address = tx
        .query_opt(
            "SELECT address FROM contact_emails WHERE contact_id = $1 ORDER BY is_primary DESC, position LIMIT 1",
            &[contact.into()],
        )?
        .map(|r| r.string(0))
        .transpose()?
        .ok_or_else(|| {
            rapport_core::ValidationErrors::single("confirmation_template", "the contact has no email address to confirm by")
        })?;
    let ready = store.options().automation.ready_channels.contains(&rapport_core::workflow::MessageChannel::Email);
    let (status, reason) =
        if ready { ("queued", None) } else { ("unsendable", Some("no email relay is configured (set --smtp-url)")) };
    tx.execute(
        "INSERT INTO message_outbox (id, idempotency_key, contact_id, channel, template, marketing, status, status_reason, \
         recipient, next_attempt_at, consent_id, created_at, updated_at) \
         VALUES ($1, $2, $3, 'email', $4, FALSE, $5, $6, $7, $8, $9, $8, $8) ON CONFLICT (idempotency_key) DO NOTHING",
        &[
            new_id().into(),
            format!("consent:{consent}").into(),
            contact.into(),
            template.into(),
            status.into(),
            reason.into(),
            address.into(),
            now.into(),
            consent.into(),
        ],
    )?;
    Ok(())
}

/// How long a double opt-in confirmation link works.
pub const CONFIRM_WITHIN_DAYS: i64 = 30;

impl Store {
    /// Every subscription topic, by key.
    pub async fn list_topics(&self) -> Result<Vec<SubscriptionTopic>> {
        self.read_point(all_topics).await
    }

    pub async fn get_topic(&self, key: String) -> Result<SubscriptionTopic> {
        self.read_point(move |tx| load_topic(tx, &key)).await
    }

    pub async fn create_topic(&self, draft: TopicDraft) -> Result<SubscriptionTopic> {
        let now = self.now();
        self.write(move |tx| {
            let input = TopicInput::parse(draft)?;
            let key = input.key.as_str().to_string();
            let n = tx.execute(
                "INSERT INTO subscription_topics (key, name, description, default_subscribed, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
                &[key.as_str().into(), input.name.into(), input.description.into(), input.default_subscribed.into(), now.into()],
            )?;
            if n == 0 {
                return Err(StoreError::conflict("key", format!("a subscription topic with key '{key}' already exists")));
            }
            load_topic(tx, &key)
        })
        .await
    }

    pub async fn update_topic(&self, key: String, patch: TopicPatch) -> Result<SubscriptionTopic> {
        let now = self.now();
        self.write(move |tx| {
            let before = load_topic(tx, &key)?;
            let input = TopicInput::patched(&before, patch)?;
            tx.execute(
                "UPDATE subscription_topics SET name = $2, description = $3, default_subscribed = $4 WHERE key = $1",
                &[key.as_str().into(), input.name.into(), input.description.into(), input.default_subscribed.into()],
            )?;
            if before.default_subscribed != input.default_subscribed {
                // Everyone who never chose moves with the default: segments that test
                // subscriptions are evaluated again in full by the next maintenance pass.
                tx.execute(
                    "UPDATE segments SET refresh_due_at = $1 WHERE CAST(filter_json AS TEXT) LIKE '%\"subscription\"%'",
                    &[now.into()],
                )?;
            }
            load_topic(tx, &key)
        })
        .await
    }

    /// Deletes a topic. People's recorded choices about it stay (the ledger is history, and a
    /// topic created again under the same key keeps honouring earlier unsubscribes).
    pub async fn delete_topic(&self, key: String) -> Result<()> {
        self.write(move |tx| {
            if tx.execute("DELETE FROM subscription_topics WHERE key = $1", &[key.as_str().into()])? == 0 {
                return Err(StoreError::not_found("subscription topic", key));
            }
            Ok(())
        })
        .await
    }

    /// Appends a grant or withdrawal to the ledger and, unless it is a double opt-in grant
    /// waiting for confirmation, applies it: the email subscription state and the timeline.
    pub async fn record_consent(&self, contact: Uuid, draft: ConsentDraft, recorded_by: Option<Uuid>) -> Result<ConsentRecord> {
        let now = self.now();
        let store = self.clone();
        self.write(move |tx| {
            check_contact(tx, contact)?;
            let input = ConsentInput::parse(draft)?;
            let rec = record_tx(tx, contact, &input, recorded_by, now)?;
            if let Some(template) = &input.confirmation_template
                && rec.status == "pending"
            {
                queue_confirmation(tx, &store, contact, rec.id, template, now)?;
            }
            Ok(rec)
        })
        .await
    }

    /// One fact of a contact's ledger.
    pub async fn consent_record(&self, contact: Uuid, id: Uuid) -> Result<ConsentRecord> {
        self.read_point(move |tx| {
            tx.query_opt(&format!("{LEDGER_SELECT} WHERE id = $1 AND contact_id = $2"), &[id.into(), contact.into()])?
                .map(ledger_row)
                .transpose()?
                .ok_or_else(|| StoreError::not_found("consent", id))
        })
        .await
    }

    /// Confirms a double opt-in grant, which then takes effect. Confirming twice changes
    /// nothing; a grant withdrawn since, or asked for more than [`CONFIRM_WITHIN_DAYS`] days
    /// ago, cannot be confirmed.
    pub async fn confirm_consent(&self, contact: Uuid, id: Uuid) -> Result<ConsentRecord> {
        let now = self.now();
        self.write(move |tx| {
            let rec = tx
                .query_opt(&format!("{LEDGER_SELECT} WHERE id = $1 AND contact_id = $2"), &[id.into(), contact.into()])?
                .map(ledger_row)
                .transpose()?
                .ok_or_else(|| StoreError::not_found("consent", id))?;
            if !rec.double_opt_in || rec.confirmed_at.is_some() {
                return Ok(rec);
            }
            // An old link in a forgotten inbox is no proof of what the person wants today.
            if now - rec.recorded_at > chrono::Duration::days(CONFIRM_WITHIN_DAYS) {
                // Named by the fact that is too old, so callers can tell it from a withdrawal.
                return Err(StoreError::conflict(
                    "recorded_at",
                    format!("this confirmation link has expired ({CONFIRM_WITHIN_DAYS} days); sign up again"),
                ));
            }
            if tx.exists(
                "SELECT 1 FROM consent_ledger WHERE contact_id = $1 AND purpose = $2 AND channel = $3 AND NOT granted \
                 AND recorded_at > $4",
                &[contact.into(), rec.purpose.as_str().into(), rec.channel.as_str().into(), rec.recorded_at.into()],
            )? {
                return Err(StoreError::conflict("consent", "this grant was withdrawn after it was asked for; ask again"));
            }
            let purpose =
                ConsentPurpose::parse(&rec.purpose).map_err(|m| StoreError::Database(format!("ledger purpose: {m}")))?;
            // The only change the ledger allows: a double opt-in grant learns when it was confirmed.
            tx.execute(
                "UPDATE consent_ledger SET confirmed_at = $2 WHERE id = $1 AND confirmed_at IS NULL",
                &[id.into(), now.into()],
            )?;
            let rec = ledger_row(tx.query_one(&format!("{LEDGER_SELECT} WHERE id = $1"), &[id.into()])?)?;
            take_effect(tx, &rec, &purpose, now, None)?;
            Ok(rec)
        })
        .await
    }

    /// A contact's consent: email topics now, the current fact per purpose and channel,
    /// privacy choices, and the ledger, newest first.
    pub async fn contact_consent(&self, contact: Uuid) -> Result<ContactConsent> {
        self.read_point_snapshot(move |tx| {
            check_contact(tx, contact)?;
            let history: Vec<ConsentRecord> = tx
                .query(&format!("{LEDGER_SELECT} WHERE contact_id = $1 ORDER BY recorded_at DESC, id DESC"), &[contact.into()])?
                .into_iter()
                .map(ledger_row)
                .collect::<Result<_>>()?;
            let rows = subscription_rows(tx, contact)?;
            let topics = topic_states(all_topics(tx)?, &rows);
            Ok(ContactConsent {
                contact_id: contact,
                all_marketing: rows.get(ALL_TOPICS).is_none_or(|(s, _)| *s),
                topics,
                consents: current_consents(&history),
                privacy: load_privacy(tx, contact)?,
                history,
            })
        })
        .await
    }

    pub async fn get_privacy(&self, contact: Uuid) -> Result<PrivacyState> {
        self.read_point_snapshot(move |tx| {
            check_contact(tx, contact)?;
            load_privacy(tx, contact)
        })
        .await
    }

    /// Changes privacy choices; an absent field keeps its value.
    pub async fn set_privacy(&self, contact: Uuid, draft: PrivacyDraft, actor: Option<Uuid>) -> Result<PrivacyState> {
        let now = self.now();
        self.write(move |tx| {
            check_contact(tx, contact)?;
            let b = load_privacy(tx, contact)?;
            let current =
                Privacy { do_not_track: b.do_not_track, do_not_contact: b.do_not_contact, not_interested: b.not_interested };
            let (next, source) = current.patched(draft)?;
            set_privacy_tx(tx, contact, next, &source, actor, now)
        })
        .await
    }

    /// Applies what a person chose in the preference centre, in one transaction, through the
    /// same ledger as every other consent (source `preference_centre`, basis consent). Only
    /// what changed is recorded.
    pub async fn apply_preferences(&self, contact: Uuid, choices: PreferenceChoices) -> Result<ContactConsent> {
        let now = self.now();
        const SOURCE: &str = "preference_centre";
        self.write(move |tx| {
            check_contact(tx, contact)?;
            let b = load_privacy(tx, contact)?;
            let next = Privacy {
                do_not_track: choices.do_not_track,
                do_not_contact: b.do_not_contact,
                not_interested: choices.not_interested,
            };
            set_privacy_tx(tx, contact, next, SOURCE, None, now)?;
            let withdrawn = all_withdrawn(tx, contact)?;
            let grant = |purpose: ConsentPurpose, granted: bool| ConsentInput {
                purpose,
                channel: ConsentChannel::Email,
                granted,
                source: SOURCE.into(),
                legal_basis: LegalBasis::Consent,
                evidence: None,
                double_opt_in: false,
                confirmation_template: None,
            };
            if choices.unsubscribe_all || choices.not_interested {
                if !withdrawn {
                    record_tx(tx, contact, &grant(ConsentPurpose::AllMarketing, false), None, now)?;
                }
            } else {
                let topics = all_topics(tx)?;
                if withdrawn {
                    // Back from "unsubscribe from all": every topic, then the ones left unticked.
                    record_tx(tx, contact, &grant(ConsentPurpose::AllMarketing, true), None, now)?;
                }
                let states = topic_states(topics, &subscription_rows(tx, contact)?);
                for t in states {
                    let want = choices.topics.contains(&t.key);
                    if want != t.subscribed {
                        let key = rapport_core::consent::TopicKey::parse(&t.key)
                            .map_err(|m| StoreError::Database(format!("stored topic key: {m}")))?;
                        record_tx(tx, contact, &grant(ConsentPurpose::Topic(key), want), None, now)?;
                    }
                }
            }
            let history: Vec<ConsentRecord> = tx
                .query(&format!("{LEDGER_SELECT} WHERE contact_id = $1 ORDER BY recorded_at DESC, id DESC"), &[contact.into()])?
                .into_iter()
                .map(ledger_row)
                .collect::<Result<_>>()?;
            let rows = subscription_rows(tx, contact)?;
            Ok(ContactConsent {
                contact_id: contact,
                all_marketing: rows.get(ALL_TOPICS).is_none_or(|(s, _)| *s),
                topics: topic_states(all_topics(tx)?, &rows),
                consents: current_consents(&history),
                privacy: load_privacy(tx, contact)?,
                history,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_767_225_600 + secs, 0).unwrap()
    }

    fn topic(key: &str, default_subscribed: bool) -> SubscriptionTopic {
        SubscriptionTopic { key: key.into(), name: key.into(), description: None, default_subscribed, created_at: t(0) }
    }

    #[test]
    fn the_later_of_topic_and_all_wins_and_the_topic_wins_ties() {
        let topics = || vec![topic("news", true), topic("offers", true), topic("partners", false)];
        let none = BTreeMap::new();
        let s = topic_states(topics(), &none);
        assert_eq!(s.iter().map(|t| t.subscribed).collect::<Vec<_>>(), [true, true, false]);
        assert!(s.iter().all(|t| t.basis == "default"));

        let rows: BTreeMap<String, (bool, Timestamp)> =
            [("*".to_string(), (false, t(10))), ("news".to_string(), (true, t(20))), ("offers".to_string(), (true, t(5)))].into();
        let s = topic_states(topics(), &rows);
        assert_eq!(
            s.iter().map(|t| (t.subscribed, t.basis)).collect::<Vec<_>>(),
            [(true, "choice"), (false, "all_marketing"), (false, "all_marketing")]
        );
        let tie: BTreeMap<String, (bool, Timestamp)> =
            [("*".to_string(), (true, t(10))), ("news".to_string(), (false, t(10)))].into();
        assert!(!topic_states(topics(), &tie)[0].subscribed);
    }

    #[test]
    fn a_pending_grant_is_not_current_until_confirmed() {
        let rec = |granted: bool, doi: bool, confirmed: Option<Timestamp>, at: i64| ConsentRecord {
            id: new_id(),
            contact_id: Uuid::nil(),
            purpose: "news".into(),
            channel: "email".into(),
            granted,
            source: "form".into(),
            legal_basis: "consent".into(),
            evidence: None,
            double_opt_in: doi,
            confirmed_at: confirmed,
            status: if doi && confirmed.is_none() { "pending" } else { "effective" },
            recorded_by: None,
            recorded_at: t(at),
        };
        // Newest first, as the ledger is read.
        let c = current_consents(&[rec(true, true, None, 20), rec(false, false, None, 10)]);
        assert_eq!((c[0].granted, c[0].pending_confirmation), (Some(false), true));
        let c = current_consents(&[rec(true, true, Some(t(30)), 20), rec(false, false, None, 10)]);
        assert_eq!((c[0].granted, c[0].pending_confirmation, c[0].since), (Some(true), false, Some(t(30))));
    }
}
