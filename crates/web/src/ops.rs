//! Operations endpoints and background upkeep.

use std::any::Any;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// Liveness: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers too.
async fn readyz(State(s): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), s.store.ping()).await {
        Ok(Ok(())) => Json(json!({"status": "ready", "database": "ok"})).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "error"}))).into_response()
        }
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "timeout"}))).into_response()
        }
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

/// Unknown `/api/v1/...` routes answer problem+json like everything else there.
pub async fn api_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("there is no API route {}; see /api/docs", uri.path()))
}

/// Outside `/api/v1`: problem+json under `/api`, a small page elsewhere.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api") {
        return api_not_found(uri).await.into_response();
    }
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><title>Not found · Rapport</title><p>There is no page here. <a href=\"/\">Start page</a></p>"),
    )
        .into_response()
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}; see /api/docs", uri.path())).into_response()
}

pub fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::Internal("a request handler panicked".into()).into_response()
}

/// Periodic upkeep that any instance may do: forgets day-old idempotency keys and ended UI
/// sessions, and keeps the query planner's statistics current.
pub async fn maintenance(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let cutoff = state.store.now() - chrono::Duration::hours(24);
        match state.store.purge_idempotency_keys(cutoff).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "forgot old idempotency keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not purge idempotency keys"),
        }
        match state.store.purge_sessions(crate::ui::auth::session_limits(&state.config)).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "forgot ended sessions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not purge sessions"),
        }
        if let Err(e) = state.store.refresh_planner_statistics().await {
            tracing::warn!(error = %e, "could not refresh the query planner's statistics");
        }
    }
}

/// Keeps segment memberships current: drains the queue of changed contacts every
/// `segment_maintain_every`, and re-evaluates time-dependent segments when their refresh is due.
/// Safe on several instances at once (PostgreSQL hands each its own contacts).
pub async fn segment_maintainer(state: AppState) {
    let mut tick = tokio::time::interval(state.config.segment_maintain_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_refresh_check = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        match state.store.maintain_segments_fully().await {
            Ok(r) if r.entered + r.exited > 0 => {
                tracing::info!(contacts = r.contacts, entered = r.entered, exited = r.exited, "segment memberships changed")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not maintain segments"),
        }
        if last_refresh_check.elapsed() >= std::time::Duration::from_secs(30) {
            last_refresh_check = tokio::time::Instant::now();
            match state.store.refresh_due_segments(state.config.segment_refresh_every).await {
                Ok(r) if r.segments_refreshed > 0 => tracing::info!(
                    segments = r.segments_refreshed,
                    entered = r.entered,
                    exited = r.exited,
                    "refreshed time-dependent segments"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not refresh segments"),
            }
        }
    }
}

/// Applies the lifecycle changes time alone causes (people becoming at risk or lost) as the
/// clock moves. Every instance may run it: the store hands each one different people.
pub async fn lifecycle_sweeper(state: AppState) {
    let mut tick = tokio::time::interval(state.config.lifecycle_sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.store.sweep_lifecycle().await {
            Ok(n) if n > 0 => tracing::info!(changes = n, "applied time-driven lifecycle changes"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not apply time-driven lifecycle changes"),
        }
    }
}

/// Runs the automation engine: a pass whenever new events or a manual start wake it, and every
/// `automation_every` regardless (waits ending, dates coming due, other instances' events).
/// Any number of instances may run it: the store hands each one different rows.
pub async fn automation_worker(state: AppState) {
    let mut tick = tokio::time::interval(state.config.automation_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.automation_wake.notified() => {}
        }
        match state.store.automation_until_idle(50).await {
            Ok(r) if r.runs_started + r.runs_ended + r.fired > 0 => tracing::info!(
                fired = r.fired,
                started = r.runs_started,
                advanced = r.runs_advanced,
                ended = r.runs_ended,
                "automation ran"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "automation pass failed; trying again shortly"),
        }
    }
}

/// Lets workflows react to new events as soon as ingest wakes it, beside the automation worker,
/// whose pass under way (hundreds of runs advanced) they would otherwise wait for. Run on
/// PostgreSQL only: on SQLite ingest reacts in its own transaction.
pub async fn event_reactor(state: AppState) {
    loop {
        state.events_wake.notified().await;
        match state.store.automation_react(50).await {
            Ok(r) if r.runs_started + r.runs_ended > 0 => {
                tracing::debug!(started = r.runs_started, ended = r.runs_ended, "workflows reacted to new events")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "workflows could not react to new events; the automation worker will"),
        }
    }
}

/// Moves campaigns along: starts scheduled ones, chooses audiences and queues their messages in
/// batches. Any number of instances may run it: each batch is one transaction over rows no
/// other instance holds.
pub async fn campaign_worker(state: AppState) {
    let mut tick = tokio::time::interval(state.config.automation_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.campaign_wake.notified() => {}
        }
        loop {
            match state.store.campaign_pass().await {
                Ok(0) => break,
                Ok(n) => tracing::debug!(work = n, "campaigns moved on"),
                Err(e) => {
                    tracing::warn!(error = %e, "campaign pass failed; trying again shortly");
                    break;
                }
            }
        }
    }
}

/// Delivers the webhook calls workflow runs queued: signs them with the configured secrets and
/// keeps them to the address policy.
pub struct WebhookSender {
    client: rapport_channels::webhook::WebhookClient,
    secrets: std::collections::HashMap<String, rapport_channels::webhook::WebhookSecret>,
}

impl WebhookSender {
    /// `secrets` maps the names workflows give in `secret_ref` to the secrets themselves.
    pub fn new(
        policy: rapport_channels::webhook::AddressPolicy,
        secrets: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, rapport_channels::webhook::BuildError> {
        Ok(Self {
            client: rapport_channels::webhook::WebhookClient::new(policy, Default::default())?,
            secrets: secrets.into_iter().map(|(k, v)| (k, rapport_channels::webhook::WebhookSecret::new(v))).collect(),
        })
    }
}

/// How long a claimed call is this instance's: longer than any one attempt takes.
const WEBHOOK_LEASE_SECS: i64 = 60;

/// Makes the webhook calls that are due; returns how many it attempted.
pub async fn deliver_due_webhooks(state: &AppState) -> usize {
    use rapport_channels::webhook::{DeliveryError, MAX_ATTEMPTS, WebhookRequest, retry_delay};
    use rapport_store::automation::WebhookResult;
    let Some(sender) = state.webhooks.clone() else { return 0 };
    let due = match state.store.claim_webhooks(20, chrono::Duration::seconds(WEBHOOK_LEASE_SECS)).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim webhook deliveries");
            return 0;
        }
    };
    let n = due.len();
    for call in due {
        let secret = match &call.secret_ref {
            None => None,
            Some(name) => match sender.secrets.get(name) {
                Some(s) => Some(s.clone()),
                None => {
                    let error = format!("no webhook secret named \"{name}\" is configured; add it under [webhooks.secrets]");
                    if let Err(e) = state.store.finish_webhook(call.id, WebhookResult::Failed { error }).await {
                        tracing::warn!(error = %e, "could not record a webhook outcome");
                    }
                    continue;
                }
            },
        };
        let request = WebhookRequest {
            url: call.url.clone(),
            body: call.body.to_string(),
            secret,
            delivery_id: call.id.to_string(),
            idempotency_key: call.idempotency_key.clone(),
        };
        let result = match sender.client.deliver(&request).await {
            Ok(d) => WebhookResult::Delivered { status: d.status },
            Err(DeliveryError::Temporary { retry_after, message, .. }) if call.attempt < MAX_ATTEMPTS => {
                let wait = retry_delay(call.attempt).max(retry_after.unwrap_or_default());
                let at = state.store.now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
                WebhookResult::Retry { error: message, at }
            }
            Err(e) => WebhookResult::Failed { error: e.to_string() },
        };
        match &result {
            WebhookResult::Delivered { status } => tracing::info!(delivery = %call.id, status, "webhook delivered"),
            WebhookResult::Retry { error, at } => {
                tracing::info!(delivery = %call.id, %error, retry_at = %at, "webhook failed; will retry")
            }
            WebhookResult::Failed { error } => tracing::warn!(delivery = %call.id, %error, "webhook failed for good"),
        }
        if let Err(e) = state.store.finish_webhook(call.id, result).await {
            tracing::warn!(error = %e, "could not record a webhook outcome");
        }
    }
    n
}

/// Delivers due webhook calls every second. A crash mid-call leaves the call claimed until its
/// lease runs out; then it is made again with the same `Idempotency-Key`.
pub async fn webhook_deliverer(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        while deliver_due_webhooks(&state).await > 0 {}
    }
}
