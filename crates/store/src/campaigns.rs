//! Campaigns: a template sent to a segment's members through the message outbox.
//!
//! Sending is resumable and exactly-once in effect. Choosing the audience is one transaction
//! (members minus exclusions, holdout picked); after that, recipients are queued in batches,
//! each batch one transaction that writes the outbox rows *and* marks those recipients queued.
//! A crash between batches resumes at the first recipient not yet queued; the outbox's own
//! lease and stable Message-ID make each message leave once. A campaign is finished only when
//! no recipient is left to queue and none of its messages is still waiting to leave — progress
//! is never recorded when a batch is read, only when it is written.

use std::collections::HashMap;

use rapport_core::campaign::{self, Campaign, CampaignCommand, CampaignInput, CampaignStatus};
use rapport_core::money::{Currency, Money};
use rapport_core::{Timestamp, new_id};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{Dialect, Tx, insert_many, select_in};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError};
use rapport_core::workflow::MessageChannel;

/// Recipients queued per transaction.
const BATCH: usize = 500;
/// Batches one campaign gets per pass, so that one big campaign does not hold up the others.
const BATCHES_PER_PASS: usize = 40;

const SORTS: &[SortField] = &[
    SortField { name: "created_at", expr: "k.created_at", kind: SortKind::Time },
    SortField { name: "name", expr: "k.name", kind: SortKind::Text },
    SortField { name: "updated_at", expr: "k.updated_at", kind: SortKind::Time },
];
const SELECT: &str = "SELECT k.id, k.name, k.template_id, t.name, k.segment_id, s.name, k.exclude_segment_ids, k.topic, k.send_at, \
     k.local_time, k.holdout_percent, k.conversion_days, k.status, k.status_reason, k.audience_at, k.started_at, k.finished_at, \
     k.created_by, k.created_at, k.updated_at";
const FROM: &str = "FROM campaigns k JOIN message_templates t ON t.id = k.template_id JOIN segments s ON s.id = k.segment_id";

fn map_row(r: Row) -> Result<Campaign> {
    let status = r.string(12)?;
    let exclusions: Vec<String> = serde_json::from_str(&r.string(6)?).unwrap_or_default();
    Ok(Campaign {
        id: r.uuid(0)?,
        name: r.string(1)?,
        template_id: r.uuid(2)?,
        template: r.string(3)?,
        segment_id: r.uuid(4)?,
        segment: r.string(5)?,
        exclude_segment_ids: exclusions.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect(),
        topic: r.opt_string(7)?,
        send_at: r.opt_time(8)?,
        local_time: r.bool(9)?,
        holdout_percent: u8::try_from(r.i64(10)?).unwrap_or(0),
        conversion_days: u16::try_from(r.i64(11)?).unwrap_or(campaign::DEFAULT_CONVERSION_DAYS),
        status: CampaignStatus::parse(&status)
            .ok_or_else(|| StoreError::Database(format!("unknown campaign status {status}")))?,
        status_reason: r.opt_string(13)?,
        audience_chosen_at: r.opt_time(14)?,
        started_at: r.opt_time(15)?,
        finished_at: r.opt_time(16)?,
        created_by: r.opt_uuid(17)?,
        created_at: r.time(18)?,
        updated_at: r.time(19)?,
    })
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<Campaign> {
    map_row(
        tx.query_opt(&format!("{SELECT} {FROM} WHERE k.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("campaign", id))?,
    )
}

/// Checks that what the campaign names exists and suits it.
fn check_refs(tx: &mut dyn Tx, c: &CampaignInput) -> Result<()> {
    let Some(t) = tx.query_opt("SELECT channel FROM message_templates WHERE id = $1", &[c.template_id.into()])? else {
        return Err(StoreError::invalid("template_id", "no template has this id"));
    };
    if t.string(0)? != "email" {
        return Err(StoreError::invalid("template_id", "is an SMS template; campaigns send email"));
    }
    if !tx.exists("SELECT 1 FROM segments WHERE id = $1", &[c.segment_id.into()])? {
        return Err(StoreError::invalid("segment_id", "no segment has this id"));
    }
    for (i, id) in c.exclude_segment_ids.iter().enumerate() {
        if !tx.exists("SELECT 1 FROM segments WHERE id = $1", &[(*id).into()])? {
            return Err(StoreError::invalid(format!("exclude_segment_ids[{i}]"), "no segment has this id"));
        }
    }
    if let Some(topic) = &c.topic
        && !tx.exists("SELECT 1 FROM subscription_topics WHERE key = $1", &[topic.as_str().into()])?
    {
        return Err(StoreError::invalid(
            "topic",
            format!("no subscription topic is named \"{topic}\"; create it under /api/v1/subscription-topics first"),
        ));
    }
    Ok(())
}

fn exclusions_json(c: &CampaignInput) -> String {
    serde_json::to_string(&c.exclude_segment_ids.iter().map(Uuid::to_string).collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

fn set_status(tx: &mut dyn Tx, id: Uuid, status: CampaignStatus, reason: Option<&str>, now: Timestamp) -> Result<()> {
    tx.execute(
        "UPDATE campaigns SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1",
        &[id.into(), status.as_str().into(), reason.map(str::to_string).into(), now.into()],
    )?;
    Ok(())
}

/// How a campaign's audience and messages stand.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignStats {
    pub campaign_id: Uuid,
    pub status: String,
    /// Everyone chosen: messaged, held out and skipped.
    pub audience: i64,
    /// Chosen but not yet handed to the outbox.
    pub pending: i64,
    /// Receive nothing, to measure the campaign against.
    pub holdout: i64,
    /// Chosen but not messaged, by reason (unsubscribed, no address, bounced before…).
    pub skipped: i64,
    pub skipped_reasons: Vec<ReasonCount>,
    /// What became of its messages (test sends excluded) and what their recipients did.
    #[serde(flatten)]
    pub figures: MessageFigures,
    pub conversions: Conversions,
}

#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonCount {
    pub reason: String,
    pub count: i64,
}

/// Orders after the message against orders in the holdout over the same window.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversions {
    pub window_days: u16,
    pub base_currency: String,
    /// People sent the message.
    pub messaged: GroupOutcome,
    pub holdout: GroupOutcome,
    /// How much the messaged group's conversion rate exceeds the holdout's, relative to it
    /// (`0.25` = 25% more); `null` without a holdout that converted.
    pub lift: Option<f64>,
    /// Conversions the campaign made that would not have happened without it (the rate
    /// difference times the people messaged); `null` without a holdout.
    pub incremental_conversions: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupOutcome {
    pub people: i64,
    /// People with at least one order in the window.
    pub converted: i64,
    pub rate: f64,
    pub orders: i64,
    /// In the base currency's major units (currencies without a configured rate left out).
    pub revenue: f64,
}

/// What a test send needs.
#[derive(Debug, Clone)]
pub struct TestSend {
    /// Where it goes.
    pub to: String,
    /// Whose data fills it in; any member of the segment when `None`.
    pub contact_id: Option<Uuid>,
}

impl Store {
    pub async fn create_campaign(&self, input: CampaignInput, caller: Option<Uuid>) -> Result<Campaign> {
        let now = self.now();
        self.write(move |tx| {
            check_refs(tx, &input)?;
            let id = new_id();
            tx.execute(
                "INSERT INTO campaigns (id, name, template_id, segment_id, exclude_segment_ids, topic, send_at, local_time, \
                 holdout_percent, conversion_days, status, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'draft', $11, $12, $12)",
                &[
                    id.into(),
                    input.name.as_str().into(),
                    input.template_id.into(),
                    input.segment_id.into(),
                    exclusions_json(&input).into(),
                    input.topic.clone().into(),
                    input.send_at.into(),
                    input.local_time.into(),
                    i64::from(input.holdout_percent).into(),
                    i64::from(input.conversion_days).into(),
                    caller.into(),
                    now.into(),
                ],
            )?;
            load(tx, id)
        })
        .await
    }

    pub async fn get_campaign(&self, id: Uuid) -> Result<Campaign> {
        self.read_point(move |tx| load(tx, id)).await
    }

    /// Changes a campaign's settings while it is a draft or scheduled.
    pub async fn update_campaign(&self, id: Uuid, input: CampaignInput) -> Result<Campaign> {
        let now = self.now();
        self.write(move |tx| {
            let current = load(tx, id)?;
            if !current.status.is_editable() {
                return Err(StoreError::conflict(
                    "status",
                    format!("a {} campaign can no longer be changed", current.status.as_str()),
                ));
            }
            check_refs(tx, &input)?;
            tx.execute(
                "UPDATE campaigns SET name = $2, template_id = $3, segment_id = $4, exclude_segment_ids = $5, topic = $6, \
                 send_at = $7, local_time = $8, holdout_percent = $9, conversion_days = $10, updated_at = $11 WHERE id = $1",
                &[
                    id.into(),
                    input.name.as_str().into(),
                    input.template_id.into(),
                    input.segment_id.into(),
                    exclusions_json(&input).into(),
                    input.topic.clone().into(),
                    input.send_at.into(),
                    input.local_time.into(),
                    i64::from(input.holdout_percent).into(),
                    i64::from(input.conversion_days).into(),
                    now.into(),
                ],
            )?;
            load(tx, id)
        })
        .await
    }

    /// Deletes a campaign that is not going out; its sent messages stay in the outbox history.
    pub async fn delete_campaign(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let current = load(tx, id)?;
            if matches!(current.status, CampaignStatus::Sending | CampaignStatus::Paused | CampaignStatus::Scheduled) {
                return Err(StoreError::conflict(
                    "status",
                    format!("the campaign is {}; cancel it before deleting it", current.status.as_str()),
                ));
            }
            tx.execute("DELETE FROM campaigns WHERE id = $1", &[id.into()])?;
            Ok(())
        })
        .await
    }

    /// Newest first by default.
    pub async fn list_campaigns(&self, status: Option<CampaignStatus>, page: PageRequest) -> Result<Page<Campaign>> {
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "-created_at", "k.id")?;
            if let Some(s) = status {
                let p = q.param(s.as_str());
                q.condition(format!("k.status = {p}"));
            }
            let rows = tx.query(&q.sql(SELECT, FROM), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }

    /// Sends, pauses, resumes or cancels a campaign. Cancelling stops every message of it that
    /// has not left yet.
    pub async fn command_campaign(&self, id: Uuid, command: CampaignCommand) -> Result<Campaign> {
        let now = self.now();
        self.write(move |tx| {
            let current = load(tx, id)?;
            let starts_later = current.send_at.is_some_and(|at| campaign::start_instant(at, current.local_time) > now);
            let to = command.apply(current.status, starts_later).map_err(|e| StoreError::conflict("status", e))?;
            // Resuming a campaign paused before it started brings it back to its schedule.
            let to = if to == CampaignStatus::Sending && current.started_at.is_none() && starts_later {
                CampaignStatus::Scheduled
            } else {
                to
            };
            set_status(tx, id, to, None, now)?;
            match to {
                CampaignStatus::Sending if current.started_at.is_none() => {
                    tx.execute("UPDATE campaigns SET started_at = $2 WHERE id = $1", &[id.into(), now.into()])?;
                }
                CampaignStatus::Cancelled => {
                    tx.execute(
                        "UPDATE message_outbox SET status = 'cancelled', status_reason = 'the campaign was cancelled', \
                         lease_until = NULL, updated_at = $2 WHERE campaign_id = $1 AND status IN ('queued', 'unsendable')",
                        &[id.into(), now.into()],
                    )?;
                    tx.execute(
                        "UPDATE campaign_recipients SET state = 'skipped', reason = 'the campaign was cancelled' \
                         WHERE campaign_id = $1 AND state = 'pending'",
                        &[id.into()],
                    )?;
                    tx.execute("UPDATE campaigns SET finished_at = $2 WHERE id = $1", &[id.into(), now.into()])?;
                }
                _ => {}
            }
            load(tx, id)
        })
        .await
    }

    /// Queues one message of the campaign to `to`, filled in with a real contact's data, now.
    /// It is marked a test: it counts in no statistic and ignores consent and caps.
    pub async fn campaign_test_send(&self, id: Uuid, test: TestSend) -> Result<Uuid> {
        let now = self.now();
        let ready = self.options().automation.ready_channels.contains(&MessageChannel::Email);
        self.write(move |tx| {
            let c = load(tx, id)?;
            let contact = match test.contact_id {
                Some(cid) => {
                    if !tx.exists("SELECT 1 FROM contacts WHERE id = $1", &[cid.into()])? {
                        return Err(StoreError::invalid("contact_id", "no contact has this id"));
                    }
                    cid
                }
                None => tx
                    .query_opt(
                        "SELECT contact_id FROM segment_members WHERE segment_id = $1 ORDER BY contact_id LIMIT 1",
                        &[c.segment_id.into()],
                    )?
                    .map(|r| r.uuid(0))
                    .transpose()?
                    .ok_or_else(|| {
                        StoreError::invalid("contact_id", "the segment has no members yet; name a contact whose data fills it in")
                    })?,
            };
            let message = new_id();
            let (status, reason) = if ready {
                ("queued", None)
            } else {
                ("unsendable", Some("no email relay is configured (set --smtp-url)".to_string()))
            };
            tx.execute(
                "INSERT INTO message_outbox (id, idempotency_key, contact_id, channel, template, marketing, status, status_reason, \
                 recipient, next_attempt_at, campaign_id, topic, test, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'email', $4, TRUE, $5, $6, $7, $8, $9, $10, TRUE, $8, $8)",
                &[
                    message.into(),
                    format!("campaign-test:{id}:{message}").into(),
                    contact.into(),
                    c.template.as_str().into(),
                    status.into(),
                    reason.into(),
                    test.to.as_str().into(),
                    now.into(),
                    id.into(),
                    c.topic.clone().into(),
                ],
            )?;
            Ok(message)
        })
        .await
    }

    /// Moves campaigns along: starts those due, chooses audiences, queues recipients in batches
    /// and finishes those with nothing left to send. Returns how much it did (0: nothing to do).
    pub async fn campaign_pass(&self) -> Result<usize> {
        let now = self.now();
        let mut work = self
            .write(move |tx| {
                let due = tx.query("SELECT id, send_at, local_time FROM campaigns WHERE status = 'scheduled'", &[])?;
                let mut started = 0;
                for r in due {
                    let id = r.uuid(0)?;
                    let start = r.opt_time(1)?.map(|at| campaign::start_instant(at, r.bool(2).unwrap_or(false)));
                    if start.is_none_or(|s| s <= now) {
                        started += tx.execute(
                            "UPDATE campaigns SET status = 'sending', started_at = coalesce(started_at, $2), updated_at = $2 \
                             WHERE id = $1 AND status = 'scheduled'",
                            &[id.into(), now.into()],
                        )?;
                    }
                }
                Ok(usize::try_from(started).unwrap_or(0))
            })
            .await?;
        let sending: Vec<Uuid> = self
            .read(|tx| {
                tx.query("SELECT id FROM campaigns WHERE status = 'sending' ORDER BY created_at", &[])?
                    .iter()
                    .map(|r| r.uuid(0))
                    .collect()
            })
            .await?;
        for id in sending {
            work += self.write(move |tx| choose_audience(tx, id, now)).await?;
            for _ in 0..BATCHES_PER_PASS {
                let store = self.clone();
                let queued = self.write(move |tx| queue_batch(tx, &store, id, now)).await?;
                work += queued;
                if queued == 0 {
                    break;
                }
            }
            let store = self.clone();
            work += self.write(move |tx| settle(tx, &store, id, now)).await?;
        }
        Ok(work)
    }

    /// Whether a campaign has work the next pass would do (for the manual clock's answer).
    pub async fn campaigns_due(&self) -> Result<bool> {
        let now = self.now();
        let scheduled = self
            .read(move |tx| {
                tx.query("SELECT send_at, local_time FROM campaigns WHERE status = 'scheduled'", &[])?
                    .iter()
                    .map(|r| Ok((r.opt_time(0)?, r.bool(1)?)))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        if scheduled.iter().any(|(at, local)| at.is_none_or(|at| campaign::start_instant(at, *local) <= now)) {
            return Ok(true);
        }
        self.read(|tx| {
            tx.exists(
                "SELECT 1 FROM campaigns k WHERE k.status = 'sending' AND (k.audience_at IS NULL OR EXISTS \
                 (SELECT 1 FROM campaign_recipients r WHERE r.campaign_id = k.id AND r.state = 'pending') OR NOT EXISTS \
                 (SELECT 1 FROM message_outbox o WHERE o.campaign_id = k.id AND o.status IN ('queued', 'unsendable') AND NOT o.test))",
                &[],
            )
        })
        .await
    }

    /// The campaign's numbers so far.
    pub async fn campaign_stats(&self, id: Uuid) -> Result<CampaignStats> {
        let store = self.clone();
        self.read(move |tx| stats(tx, &store, id)).await
    }
}

/// Writes the campaign's recipients, once: the segment's members now, minus the excluded
/// segments' members, with the holdout marked.
fn choose_audience(tx: &mut dyn Tx, id: Uuid, now: Timestamp) -> Result<usize> {
    // Claims the choice: on PostgreSQL a second instance waits here, then finds it made.
    if tx.execute(
        "UPDATE campaigns SET audience_at = $2, updated_at = $2 WHERE id = $1 AND audience_at IS NULL AND status = 'sending'",
        &[id.into(), now.into()],
    )? == 0
    {
        return Ok(0);
    }
    let c = load(tx, id)?;
    let mut sql = "SELECT m.contact_id FROM segment_members m WHERE m.segment_id = $1".to_string();
    let mut params: Vec<Value> = vec![c.segment_id.into()];
    if !c.exclude_segment_ids.is_empty() {
        let list: Vec<String> = (0..c.exclude_segment_ids.len()).map(|i| format!("${}", i + 2)).collect();
        sql.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM segment_members x WHERE x.contact_id = m.contact_id AND x.segment_id IN ({}))",
            list.join(", ")
        ));
        params.extend(c.exclude_segment_ids.iter().map(|s| Value::Uuid(*s)));
    }
    sql.push_str(" ORDER BY m.contact_id");
    let members: Vec<Uuid> = tx.query(&sql, &params)?.iter().map(|r| r.uuid(0)).collect::<Result<_>>()?;
    let holdout = campaign::holdout_flags(id, &members, c.holdout_percent);
    let mut values = Vec::with_capacity(members.len() * 4);
    for (m, h) in members.iter().zip(&holdout) {
        values.extend([id.into(), (*m).into(), (*h).into(), Value::Text(if *h { "holdout" } else { "pending" }.into())]);
    }
    insert_many(
        tx,
        "INSERT INTO campaign_recipients (campaign_id, contact_id, holdout, state)",
        4,
        &values,
        "ON CONFLICT (campaign_id, contact_id) DO NOTHING",
    )?;
    Ok(members.len().max(1))
}

/// A recipient about to be queued, with what the guards need.
struct Candidate {
    contact: Uuid,
    tz: Option<String>,
    address: Option<String>,
    unsubscribed_all: bool,
    topic_choice: Option<bool>,
    do_not_contact: bool,
}

/// Queues up to [`BATCH`] pending recipients: outbox rows for those the guards let through,
/// `skipped` with the reason for the others, in one transaction. Returns how many it handled.
fn queue_batch(tx: &mut dyn Tx, store: &Store, id: Uuid, now: Timestamp) -> Result<usize> {
    let Some(c) = tx.query_opt(
        "SELECT k.status, t.name, t.purpose, k.topic, k.send_at, k.local_time, \
         (SELECT default_subscribed FROM subscription_topics st WHERE st.key = k.topic) \
         FROM campaigns k JOIN message_templates t ON t.id = k.template_id WHERE k.id = $1",
        &[id.into()],
    )?
    else {
        return Ok(0);
    };
    if c.string(0)? != "sending" {
        return Ok(0);
    }
    let template = c.string(1)?;
    let marketing = c.string(2)? == "marketing";
    let topic = c.opt_string(3)?;
    let send_at = c.opt_time(4)?;
    let local_time = c.bool(5)?;
    let topic_default = if c.is_null(6) { true } else { c.bool(6)? };
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE OF r SKIP LOCKED" } else { "" };
    let rows = tx.query(
        &format!(
            "SELECT r.contact_id, c.time_zone, \
             (SELECT e.address FROM contact_emails e WHERE e.contact_id = r.contact_id ORDER BY e.is_primary DESC, e.position LIMIT 1), \
             EXISTS (SELECT 1 FROM contact_subscriptions s WHERE s.contact_id = r.contact_id AND s.topic = '*' AND NOT s.subscribed), \
             (SELECT s.subscribed FROM contact_subscriptions s WHERE s.contact_id = r.contact_id AND s.topic = $2), \
             EXISTS (SELECT 1 FROM contact_privacy p WHERE p.contact_id = r.contact_id AND p.do_not_contact) \
             FROM campaign_recipients r JOIN contacts c ON c.id = r.contact_id \
             WHERE r.campaign_id = $1 AND r.state = 'pending' ORDER BY r.contact_id LIMIT {BATCH}{lock}"
        ),
        &[id.into(), topic.clone().unwrap_or_default().into()],
    )?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut candidates = Vec::with_capacity(rows.len());
    for r in &rows {
        candidates.push(Candidate {
            contact: r.uuid(0)?,
            tz: r.opt_string(1)?,
            address: r.opt_string(2)?,
            unsubscribed_all: r.bool(3)?,
            topic_choice: if r.is_null(4) { None } else { Some(r.bool(4)?) },
            do_not_contact: r.bool(5)?,
        });
    }
    let addresses: Vec<Value> =
        candidates.iter().filter_map(|c| c.address.as_ref()).map(|a| Value::Text(a.to_lowercase())).collect();
    let suppressed: HashMap<String, String> =
        select_in(tx, "SELECT address_key, reason FROM email_suppressions WHERE address_key IN ({in})", &[], &addresses)?
            .iter()
            .map(|r| Ok((r.string(0)?, r.string(1)?)))
            .collect::<Result<_>>()?;
    let capped = if marketing { capped_contacts(tx, store, &candidates, now)? } else { HashMap::new() };

    let ready = store.options().automation.ready_channels.contains(&MessageChannel::Email);
    let (status, status_reason) =
        if ready { ("queued", None) } else { ("unsendable", Some("no email relay is configured (set --smtp-url)".to_string())) };
    let mut outbox = Vec::new();
    let mut queued = Vec::new();
    let mut skipped: HashMap<String, Vec<Uuid>> = HashMap::new();
    for cand in &candidates {
        let topic_off = topic.as_ref().is_some_and(|_| !cand.topic_choice.unwrap_or(topic_default));
        let why = match &cand.address {
            None => Some("no email address".to_string()),
            Some(a) => match suppressed.get(&a.to_lowercase()) {
                Some(r) if r == "complaint" => Some("the address reported our mail as spam".to_string()),
                Some(_) => Some("the address bounced permanently before".to_string()),
                None if !marketing => None,
                None if cand.do_not_contact => Some("they asked not to be contacted".to_string()),
                None if cand.unsubscribed_all => Some("they unsubscribed from all marketing".to_string()),
                None if topic_off => Some(format!("they are not subscribed to \"{}\"", topic.as_deref().unwrap_or_default())),
                None => capped.get(&cand.contact).cloned(),
            },
        };
        if let Some(why) = why {
            skipped.entry(why).or_default().push(cand.contact);
            continue;
        }
        let tz = cand.tz.as_deref().and_then(|t| t.parse().ok()).unwrap_or(store.options().default_time_zone);
        let due = campaign::due_for(send_at, local_time, tz, now);
        outbox.extend([
            Value::Uuid(new_id()),
            Value::Text(format!("campaign:{id}:{}", cand.contact)),
            cand.contact.into(),
            Value::Text("email".into()),
            Value::Text(template.clone()),
            marketing.into(),
            status.into(),
            status_reason.clone().into(),
            cand.address.clone().into(),
            due.into(),
            id.into(),
            topic.clone().into(),
            now.into(),
            now.into(),
        ]);
        queued.push(cand.contact);
    }
    insert_many(
        tx,
        "INSERT INTO message_outbox (id, idempotency_key, contact_id, channel, template, marketing, status, status_reason, \
         recipient, next_attempt_at, campaign_id, topic, created_at, updated_at)",
        14,
        &outbox,
        "ON CONFLICT (idempotency_key) DO NOTHING",
    )?;
    crate::bulk::execute_in(
        tx,
        "UPDATE campaign_recipients SET state = 'queued' WHERE campaign_id = $1 AND contact_id IN ({in})",
        &[id.into()],
        &queued,
    )?;
    for (why, contacts) in skipped {
        crate::bulk::execute_in(
            tx,
            "UPDATE campaign_recipients SET state = 'skipped', reason = $2 WHERE campaign_id = $1 AND contact_id IN ({in})",
            &[id.into(), why.into()],
            &contacts,
        )?;
    }
    Ok(candidates.len())
}

/// The candidates a frequency cap holds back, with the reason.
fn capped_contacts(tx: &mut dyn Tx, store: &Store, candidates: &[Candidate], now: Timestamp) -> Result<HashMap<Uuid, String>> {
    let mut out = HashMap::new();
    let keys: Vec<Value> = candidates.iter().map(|c| Value::Uuid(c.contact)).collect();
    for cap in &store.options().automation.caps {
        if cap.channel.is_some_and(|c| c != MessageChannel::Email) {
            continue;
        }
        let mut extra: Vec<Value> = vec![(now - cap.per).into()];
        let mut sql = "SELECT contact_id, count(*) FROM message_outbox WHERE created_at > $1 AND marketing AND NOT test \
                       AND status IN ('queued', 'sent')"
            .to_string();
        if let Some(c) = cap.channel {
            extra.push(c.as_str().into());
            sql.push_str(" AND channel = $2");
        }
        sql.push_str(" AND contact_id IN ({in}) GROUP BY contact_id");
        for r in select_in(tx, &sql, &extra, &keys)? {
            let sent = r.i64(1)?;
            if sent >= i64::from(cap.max) {
                let scope = cap.channel.map(|c| format!("{} ", c.as_str())).unwrap_or_default();
                out.entry(r.uuid(0)?).or_insert_with(|| {
                    format!(
                        "frequency cap: {sent} {scope}marketing messages in the last {} days (at most {})",
                        cap.per.num_days(),
                        cap.max
                    )
                });
            }
        }
    }
    Ok(out)
}

/// Finishes a campaign with nothing left to send, or says why it waits.
fn settle(tx: &mut dyn Tx, store: &Store, id: Uuid, now: Timestamp) -> Result<usize> {
    let Some(c) = tx.query_opt("SELECT status, audience_at, status_reason FROM campaigns WHERE id = $1", &[id.into()])? else {
        return Ok(0);
    };
    if c.string(0)? != "sending" || c.is_null(1) {
        return Ok(0);
    }
    let old_reason = c.opt_string(2)?;
    if tx.exists("SELECT 1 FROM campaign_recipients WHERE campaign_id = $1 AND state = 'pending'", &[id.into()])? {
        return Ok(0);
    }
    let ready = store.options().automation.ready_channels.contains(&MessageChannel::Email);
    let counts = tx.query_one(
        "SELECT CAST(coalesce(sum(CASE WHEN status = 'queued' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(coalesce(sum(CASE WHEN status = 'unsendable' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM message_outbox WHERE campaign_id = $1 AND NOT test",
        &[id.into()],
    )?;
    let (queued, unsendable) = (counts.i64(0)?, counts.i64(1)?);
    if unsendable > 0 && ready {
        // A relay has been configured since: the campaign still means to send them.
        tx.execute(
            "UPDATE message_outbox SET status = 'queued', status_reason = NULL, updated_at = $2 \
             WHERE campaign_id = $1 AND status = 'unsendable'",
            &[id.into(), now.into()],
        )?;
        set_status(tx, id, CampaignStatus::Sending, None, now)?;
        return Ok(1);
    }
    if unsendable > 0 {
        let reason = format!("{unsendable} message(s) wait in the outbox: no email relay is configured (set --smtp-url)");
        if old_reason.as_deref() != Some(reason.as_str()) {
            set_status(tx, id, CampaignStatus::Sending, Some(&reason), now)?;
        }
        return Ok(0);
    }
    if queued > 0 {
        return Ok(0);
    }
    set_status(tx, id, CampaignStatus::Finished, None, now)?;
    tx.execute("UPDATE campaigns SET finished_at = $2 WHERE id = $1", &[id.into(), now.into()])?;
    Ok(1)
}

fn stats(tx: &mut dyn Tx, store: &Store, id: Uuid) -> Result<CampaignStats> {
    let c = load(tx, id)?;
    let mut s = CampaignStats { campaign_id: id, status: c.status.as_str().to_string(), ..CampaignStats::default() };
    for r in tx.query("SELECT state, count(*) FROM campaign_recipients WHERE campaign_id = $1 GROUP BY state", &[id.into()])? {
        let n = r.i64(1)?;
        s.audience += n;
        match r.string(0)?.as_str() {
            "pending" => s.pending = n,
            "holdout" => s.holdout = n,
            "skipped" => s.skipped = n,
            _ => {}
        }
    }
    s.skipped_reasons = tx
        .query(
            "SELECT reason, count(*) FROM campaign_recipients WHERE campaign_id = $1 AND state = 'skipped' \
             GROUP BY reason ORDER BY count(*) DESC, reason",
            &[id.into()],
        )?
        .iter()
        .map(|r| Ok(ReasonCount { reason: r.opt_string(0)?.unwrap_or_default(), count: r.i64(1)? }))
        .collect::<Result<_>>()?;
    let r = tx.query_one(
        &format!("SELECT {} FROM message_outbox o WHERE o.campaign_id = $1 AND NOT o.test", MessageFigures::SELECT),
        &[id.into()],
    )?;
    s.figures = MessageFigures::read(&r, 0)?;
    s.conversions = conversions(tx, store, &c, s.figures.sent)?;
    Ok(s)
}

/// Orders within the window after each message was sent, and within the same window after the
/// campaign started for the holdout.
fn conversions(tx: &mut dyn Tx, store: &Store, c: &Campaign, sent: i64) -> Result<Conversions> {
    let days = c.conversion_days;
    let messaged_sql = format!(
        "SELECT e.contact_id, e.currency, e.amount_minor FROM message_outbox o JOIN events e ON e.contact_id = o.contact_id \
         AND e.type = 'order.completed' AND e.occurred_at >= o.sent_at AND e.occurred_at < {} \
         WHERE o.campaign_id = $1 AND NOT o.test AND o.status = 'sent'",
        days_after(tx.dialect(), "o.sent_at", days)
    );
    let messaged = (messaged_sql.as_str(), &[c.id.into()][..], sent);
    let holdout_people =
        tx.query_one("SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND holdout", &[c.id.into()])?.i64(0)?;
    match c.started_at {
        Some(start) if holdout_people > 0 => {
            // The messaged group's window opens when their message leaves: at send_at, not before.
            let start = match c.send_at {
                Some(at) if !c.local_time => at.max(start),
                _ => start,
            };
            let sql = format!(
                "SELECT e.contact_id, e.currency, e.amount_minor FROM campaign_recipients r JOIN events e \
                 ON e.contact_id = r.contact_id AND e.type = 'order.completed' AND e.occurred_at >= $2 AND e.occurred_at < {} \
                 WHERE r.campaign_id = $1 AND r.holdout",
                days_after(tx.dialect(), "$2", days)
            );
            compare_conversions(tx, store, days, messaged, (&sql, &[c.id.into(), start.into()], holdout_people))
        }
        _ => compare_conversions(tx, store, days, messaged, ("", &[], holdout_people)),
    }
}

/// `col` plus `days` days, in SQL.
pub(crate) fn days_after(dialect: Dialect, col: &str, days: u16) -> String {
    match dialect {
        Dialect::Sqlite => format!("{col} + {}", i64::from(days) * 86_400_000_000),
        Dialect::Postgres => format!("{col} + interval '{days} days'"),
    }
}

/// The messaged group against the holdout: each is a query listing `(contact_id, currency,
/// amount_minor)` of the orders that count, its parameters, and how many people are in it.
/// With nobody in the holdout its query is not run.
pub(crate) fn compare_conversions(
    tx: &mut dyn Tx,
    store: &Store,
    days: u16,
    messaged: (&str, &[Value], i64),
    holdout: (&str, &[Value], i64),
) -> Result<Conversions> {
    let rules = &store.options().profile_rules;
    let messaged = group(tx, rules, messaged.0, messaged.1, messaged.2)?;
    let holdout = if holdout.2 > 0 {
        group(tx, rules, holdout.0, holdout.1, holdout.2)?
    } else {
        GroupOutcome { people: holdout.2, ..GroupOutcome::default() }
    };
    let with_holdout = holdout.people > 0 && messaged.people > 0;
    Ok(Conversions {
        window_days: days,
        base_currency: rules.base_currency.clone(),
        lift: (with_holdout && holdout.rate > 0.0).then_some((messaged.rate - holdout.rate) / holdout.rate),
        incremental_conversions: with_holdout.then_some((messaged.rate - holdout.rate) * messaged.people as f64),
        messaged,
        holdout,
    })
}

/// What became of a set of outbox messages (`o`) and what their recipients did.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageFigures {
    pub messages: i64,
    /// Waiting to leave.
    pub queued: i64,
    /// Accepted by the relay or provider.
    pub sent: i64,
    /// Sent and not bounced.
    pub delivered: i64,
    pub bounced: i64,
    pub complained: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Waiting for a channel that is not set up.
    pub unsendable: i64,
    pub opened: i64,
    pub clicked: i64,
    pub replied: i64,
    /// Recipients who unsubscribed (from everything or the message's topic) after it was sent.
    pub unsubscribed: i64,
    /// Opened / delivered, clicked / delivered (0 when nothing was delivered).
    pub open_rate: f64,
    pub click_rate: f64,
}

impl MessageFigures {
    /// The twelve aggregate columns [`MessageFigures::read`] reads, over `message_outbox o`.
    pub(crate) const SELECT: &'static str = "count(*), \
        CAST(coalesce(sum(CASE WHEN o.status = 'queued' THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.status = 'sent' THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.status = 'cancelled' THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.status = 'unsendable' THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.bounced_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.complained_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.opened_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.clicked_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.replied_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(coalesce(sum(CASE WHEN o.sent_at IS NOT NULL AND (o.unsubscribed_at IS NOT NULL OR EXISTS (\
            SELECT 1 FROM contact_subscriptions cs WHERE cs.contact_id = o.contact_id \
            AND (cs.topic = '*' OR cs.topic = o.topic) AND NOT cs.subscribed AND cs.changed_at >= o.sent_at)) \
            THEN 1 ELSE 0 END), 0) AS BIGINT)";

    /// The figures from the columns of [`MessageFigures::SELECT`], starting at column `at`.
    pub(crate) fn read(r: &Row, at: usize) -> Result<Self> {
        let mut f = MessageFigures {
            messages: r.i64(at)?,
            queued: r.i64(at + 1)?,
            sent: r.i64(at + 2)?,
            failed: r.i64(at + 3)?,
            cancelled: r.i64(at + 4)?,
            unsendable: r.i64(at + 5)?,
            bounced: r.i64(at + 6)?,
            complained: r.i64(at + 7)?,
            opened: r.i64(at + 8)?,
            clicked: r.i64(at + 9)?,
            replied: r.i64(at + 10)?,
            unsubscribed: r.i64(at + 11)?,
            ..MessageFigures::default()
        };
        f.delivered = (f.sent - f.bounced).max(0);
        if f.delivered > 0 {
            f.open_rate = f.opened as f64 / f.delivered as f64;
            f.click_rate = f.clicked as f64 / f.delivered as f64;
        }
        Ok(f)
    }
}

fn group(
    tx: &mut dyn Tx,
    rules: &rapport_core::profile::ProfileRules,
    sql: &str,
    params: &[Value],
    people: i64,
) -> Result<GroupOutcome> {
    let mut converted = std::collections::HashSet::new();
    let mut g = GroupOutcome { people, ..GroupOutcome::default() };
    let mut base_minor = 0i64;
    for r in tx.query(sql, params)? {
        converted.insert(r.uuid(0)?);
        g.orders += 1;
        if let (Some(cur), Some(minor)) = (r.opt_string(1)?, r.opt_i64(2)?)
            && let Ok(cur) = Currency::parse(&cur)
        {
            base_minor += rules.to_base(&Money::new(cur, minor)).unwrap_or(0);
        }
    }
    g.converted = i64::try_from(converted.len()).unwrap_or(i64::MAX);
    if people > 0 {
        g.rate = g.converted as f64 / people as f64;
    }
    let base = Currency::parse(&rules.base_currency).ok();
    g.revenue = base.map_or(0.0, |b| Money::new(b, base_minor).major());
    Ok(g)
}

/// What the campaign list shows of each campaign's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CampaignFigures {
    /// Accepted by the relay.
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
}

impl Store {
    /// Sent, delivered, opened and clicked messages of each of `ids` (test sends left out), in
    /// one query; campaigns without messages are absent.
    pub async fn campaign_figures(&self, ids: Vec<Uuid>) -> Result<HashMap<Uuid, CampaignFigures>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.read(move |tx| {
            let keys: Vec<Value> = ids.iter().map(|id| Value::Uuid(*id)).collect();
            let sum = |cond: &str| format!("CAST(coalesce(sum(CASE WHEN {cond} THEN 1 ELSE 0 END), 0) AS BIGINT)");
            let sql = format!(
                "SELECT o.campaign_id, {}, {}, {}, {} FROM message_outbox o WHERE NOT o.test AND o.campaign_id IN ({{in}}) \
                 GROUP BY o.campaign_id",
                sum("o.status = 'sent'"),
                sum("o.bounced_at IS NOT NULL"),
                sum("o.opened_at IS NOT NULL"),
                sum("o.clicked_at IS NOT NULL"),
            );
            let mut out = HashMap::new();
            for r in select_in(tx, &sql, &[], &keys)? {
                let (sent, bounced) = (r.i64(1)?, r.i64(2)?);
                out.insert(
                    r.uuid(0)?,
                    CampaignFigures { sent, delivered: (sent - bounced).max(0), opened: r.i64(3)?, clicked: r.i64(4)? },
                );
            }
            Ok(out)
        })
        .await
    }

    /// Email messages (campaigns, workflows, tests) waiting in the outbox because no email relay
    /// is configured.
    pub async fn unsendable_email_count(&self) -> Result<i64> {
        self.read(|tx| {
            tx.query_one("SELECT count(*) FROM message_outbox WHERE channel = 'email' AND status = 'unsendable'", &[])?.i64(0)
        })
        .await
    }
}
