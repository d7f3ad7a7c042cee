//! The webhook outbox: calls that workflow runs committed to, claimed by a deliverer with a
//! lease, retried with backoff, and recorded on the run when they end.

use chrono::{DateTime, Duration, Utc};
use rapport_core::Timestamp;
use serde::Serialize;
use serde_json::Value as Json;
use uuid::Uuid;

use super::runs::log_step;
use crate::db::Dialect;
use crate::{Result, Store};

/// A call to make.
#[derive(Debug, Clone)]
pub struct PendingWebhook {
    pub id: Uuid,
    pub url: String,
    /// The name of the configured secret to sign with.
    pub secret_ref: Option<String>,
    pub body: Json,
    /// Including this one.
    pub attempt: u32,
    /// The same for every attempt: receivers drop repeats by it.
    pub idempotency_key: String,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum WebhookResult {
    Delivered {
        status: u16,
    },
    /// Try again at `at`.
    Retry {
        error: String,
        at: Timestamp,
    },
    /// Give up.
    Failed {
        error: String,
    },
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub run_id: Option<Uuid>,
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Claims up to `limit` due deliveries for `lease`: another deliverer (another instance)
    /// leaves them alone until the lease runs out, so a crashed one's calls are picked up again.
    pub async fn claim_webhooks(&self, limit: usize, lease: Duration) -> Result<Vec<PendingWebhook>> {
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
            let rows = tx.query(
                &format!(
                    "SELECT id, url, secret_ref, body, attempts, idempotency_key FROM webhook_deliveries \
                     WHERE status = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
                     ORDER BY next_attempt_at, id LIMIT {limit}{lock}"
                ),
                &[now.into()],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id = r.uuid(0)?;
                tx.execute(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = $2, updated_at = $3 WHERE id = $1",
                    &[id.into(), (now + lease).into(), now.into()],
                )?;
                out.push(PendingWebhook {
                    id,
                    url: r.string(1)?,
                    secret_ref: r.opt_string(2)?,
                    body: r.json(3)?,
                    attempt: u32::try_from(r.i64(4)? + 1).unwrap_or(u32::MAX),
                    idempotency_key: r.string(5)?,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Records how an attempt ended; a final outcome also goes on the run's history.
    pub async fn finish_webhook(&self, id: Uuid, result: WebhookResult) -> Result<()> {
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            let (status, next, error) = match &result {
                WebhookResult::Delivered { .. } => ("delivered", None, None),
                WebhookResult::Retry { error, at } => ("pending", Some(*at), Some(error.clone())),
                WebhookResult::Failed { error } => ("failed", None, Some(error.clone())),
            };
            tx.execute(
                "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, last_error = $4, lease_until = NULL, \
                 updated_at = $5 WHERE id = $1",
                &[id.into(), status.into(), next.into(), error.clone().into(), now.into()],
            )?;
            let Some(r) =
                tx.query_opt("SELECT run_id, url, body, attempts FROM webhook_deliveries WHERE id = $1", &[id.into()])?
            else {
                return Ok(());
            };
            let (Some(run), url, body, attempts) = (r.opt_uuid(0)?, r.string(1)?, r.json(2)?, r.i64(3)?) else {
                return Ok(());
            };
            let step = body.get("step").and_then(Json::as_str).unwrap_or_default().to_string();
            match result {
                WebhookResult::Delivered { status } => log_step(
                    tx,
                    run,
                    &step,
                    "webhook",
                    "delivered",
                    &format!("{url} answered {status} (attempt {attempts})"),
                    now,
                )?,
                WebhookResult::Failed { error } => {
                    log_step(tx, run, &step, "webhook", "failed", &format!("gave up after {attempts} attempts: {error}"), now)?
                }
                WebhookResult::Retry { .. } => {}
            }
            Ok(())
        })
        .await
    }

    /// Deliveries, newest first; `status` narrows to `pending`, `delivered` or `failed`.
    pub async fn list_webhook_deliveries(&self, status: Option<String>, limit: usize) -> Result<Vec<WebhookDelivery>> {
        self.read(move |tx| {
            let mut sql = "SELECT id, run_id, url, status, attempts, next_attempt_at, last_error, created_at, updated_at \
                           FROM webhook_deliveries"
                .to_string();
            let mut params = Vec::new();
            if let Some(s) = status {
                params.push(s.into());
                sql.push_str(" WHERE status = $1");
            }
            sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {limit}"));
            tx.query(&sql, &params)?
                .into_iter()
                .map(|r| {
                    Ok(WebhookDelivery {
                        id: r.uuid(0)?,
                        run_id: r.opt_uuid(1)?,
                        url: r.string(2)?,
                        status: r.string(3)?,
                        attempts: r.i64(4)?,
                        next_attempt_at: r.opt_time(5)?,
                        last_error: r.opt_string(6)?,
                        created_at: r.time(7)?,
                        updated_at: r.time(8)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Whether a webhook call is due and free to be made (one another worker holds is under
    /// way, or its worker died and the lease will free it).
    pub async fn webhooks_due(&self) -> Result<bool> {
        let now = self.now();
        self.read(move |tx| {
            tx.exists(
                "SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
                 AND (lease_until IS NULL OR lease_until <= $1) LIMIT 1",
                &[now.into()],
            )
        })
        .await
    }
}
