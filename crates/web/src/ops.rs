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
