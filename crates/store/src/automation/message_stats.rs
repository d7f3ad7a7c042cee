//! Statistics per message step of a workflow (issue #7): what became of the messages each
//! `send_message` step queued, what their recipients did, and the orders that followed,
//! against the workflow's holdout — the people who met the step but were held out of it.

use rapport_core::Timestamp;
use rapport_core::workflow::{Action, Step};
use serde::Serialize;
use uuid::Uuid;

use crate::campaigns::{Conversions, MessageFigures, compare_conversions, days_after};
use crate::db::Tx;
use crate::value::Value;
use crate::{Result, Store};

/// Where the step path starts in an outbox row's idempotency key, `run:<run id>:<step>`
/// (1-based, for `substr`): after `run:`, 36 characters of id and a colon.
const STEP_IN_KEY: usize = 42;

/// A workflow's message steps over a period.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowMessageStats {
    pub workflow_id: Uuid,
    /// The workflow's holdout now (earlier versions may have had another).
    pub holdout_percent: u8,
    /// Messages queued, and holdouts drawn, since this time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: Timestamp,
    /// Message steps of the current version first (in the order they run), then steps of
    /// earlier versions that still have messages in the period.
    pub steps: Vec<MessageStepStats>,
}

/// One `send_message` step.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageStepStats {
    /// Its path in the document: `steps[2]`, `steps[1].then[0]`.
    pub step: String,
    pub channel: String,
    pub template: String,
    /// Whether the current version still has it.
    pub current: bool,
    #[serde(flatten)]
    pub figures: MessageFigures,
    /// Runs the guards stopped at this step (consent, caps, no address…).
    pub blocked: i64,
    /// Runs that reached the step but were in the holdout: nothing was sent to them.
    pub held_out: i64,
    /// Orders within the window after the message, against orders within the same window
    /// after the step for the holdout.
    pub conversions: Conversions,
}

impl Store {
    /// Message statistics of workflow `id` over the last `days` days, counting orders within
    /// `conversion_days` after each message.
    pub async fn workflow_message_stats(&self, id: Uuid, days: u32, conversion_days: u16) -> Result<WorkflowMessageStats> {
        let workflow = self.get_workflow(id).await?;
        let since = self.now() - chrono::Duration::days(i64::from(days));
        let store = self.clone();
        self.read(move |tx| {
            // The current version's message steps, then any other step with messages.
            let mut steps: Vec<(String, String, String, bool)> = workflow
                .spec
                .walk()
                .filter_map(|(path, step)| match step {
                    Step::Action(Action::SendMessage(m)) => {
                        Some((path.to_string(), m.channel.as_str().to_string(), m.template.as_str().to_string(), true))
                    }
                    _ => None,
                })
                .collect();
            let seen = tx.query(
                &format!(
                    "SELECT DISTINCT substr(o.idempotency_key, {STEP_IN_KEY}), o.channel, o.template FROM message_outbox o \
                     JOIN workflow_runs r ON r.id = o.run_id WHERE r.workflow_id = $1 AND o.created_at >= $2"
                ),
                &[id.into(), since.into()],
            )?;
            for r in seen {
                let (step, channel, template) = (r.string(0)?, r.string(1)?, r.string(2)?);
                if !steps.iter().any(|s| s.0 == step && s.1 == channel && s.2 == template) {
                    steps.push((step, channel, template, false));
                }
            }
            steps
                .into_iter()
                .map(|(step, channel, template, current)| {
                    step_stats(tx, &store, id, since, conversion_days, step, channel, template, current)
                })
                .collect::<Result<Vec<_>>>()
                .map(|steps| WorkflowMessageStats {
                    workflow_id: id,
                    holdout_percent: workflow.spec.holdout_percent,
                    since,
                    steps,
                })
        })
        .await
    }
}

#[allow(clippy::too_many_arguments)]
fn step_stats(
    tx: &mut dyn Tx,
    store: &Store,
    id: Uuid,
    since: Timestamp,
    days: u16,
    step: String,
    channel: String,
    template: String,
    current: bool,
) -> Result<MessageStepStats> {
    let params: [Value; 5] = [id.into(), since.into(), step.clone().into(), channel.clone().into(), template.clone().into()];
    let messages = format!(
        "message_outbox o JOIN workflow_runs r ON r.id = o.run_id WHERE r.workflow_id = $1 AND o.created_at >= $2 \
         AND substr(o.idempotency_key, {STEP_IN_KEY}) = $3 AND o.channel = $4 AND o.template = $5"
    );
    let r = tx.query_one(
        &format!(
            "SELECT {}, count(DISTINCT CASE WHEN o.status = 'sent' THEN o.contact_id END) FROM {messages}",
            MessageFigures::SELECT
        ),
        &params,
    )?;
    let figures = MessageFigures::read(&r, 0)?;
    let messaged_people = r.i64(12)?;
    // The run log knows the steps that sent nothing: blocked by a guard, or held out.
    let log = "workflow_run_steps s JOIN workflow_runs r ON r.id = s.run_id WHERE r.workflow_id = $1 AND s.at >= $2 \
               AND s.step = $3 AND s.action = 'send_message'";
    let r = tx.query_one(
        &format!(
            "SELECT CAST(coalesce(sum(CASE WHEN s.outcome = 'blocked' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(coalesce(sum(CASE WHEN s.outcome = 'held_out' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             count(DISTINCT CASE WHEN s.outcome = 'held_out' THEN r.contact_id END) FROM {log}"
        ),
        &params[..3],
    )?;
    let (blocked, held_out, holdout_people) = (r.i64(0)?, r.i64(1)?, r.i64(2)?);
    let dialect = tx.dialect();
    let messaged_sql = format!(
        "SELECT e.contact_id, e.currency, e.amount_minor FROM message_outbox o JOIN workflow_runs r ON r.id = o.run_id \
         JOIN events e ON e.contact_id = o.contact_id AND e.type = 'order.completed' AND e.occurred_at >= o.sent_at \
         AND e.occurred_at < {} WHERE r.workflow_id = $1 AND o.created_at >= $2 \
         AND substr(o.idempotency_key, {STEP_IN_KEY}) = $3 AND o.channel = $4 AND o.template = $5 AND o.status = 'sent'",
        days_after(dialect, "o.sent_at", days)
    );
    let holdout_sql = format!(
        "SELECT e.contact_id, e.currency, e.amount_minor FROM workflow_run_steps s JOIN workflow_runs r ON r.id = s.run_id \
         JOIN events e ON e.contact_id = r.contact_id AND e.type = 'order.completed' AND e.occurred_at >= s.at \
         AND e.occurred_at < {} WHERE r.workflow_id = $1 AND s.at >= $2 AND s.step = $3 AND s.action = 'send_message' \
         AND s.outcome = 'held_out'",
        days_after(dialect, "s.at", days)
    );
    let conversions = compare_conversions(
        tx,
        store,
        days,
        (&messaged_sql, &params, messaged_people),
        (&holdout_sql, &params[..3], holdout_people),
    )?;
    Ok(MessageStepStats { step, channel, template, current, figures, blocked, held_out, conversions })
}
