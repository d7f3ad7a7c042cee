//! Rapport's HTTP edge: the REST API under `/api/v1` with its OpenAPI document, the
//! operations endpoints (`/healthz`, `/readyz`, `/metrics`) and the HTML pages.

pub mod api;
pub mod auth;
pub mod docs;
pub mod email;
pub mod error;
pub mod extract;
pub mod messaging;
pub mod ops;
pub mod password;
pub mod preferences;
pub mod telemetry;
pub mod tracking;
pub mod ui;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware;
use rapport_core::ManualClock;
use rapport_store::Store;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, Problem};

/// Settings of the HTTP edge.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A request taking longer is answered 408 and abandoned.
    pub request_timeout: Duration,
    /// Largest body of `POST /api/v1/events` (a batch of up to 10,000 events).
    pub max_ingest_body_bytes: usize,
    /// How often time-driven lifecycle changes (becoming at risk, lost) are applied.
    pub lifecycle_sweep_every: Duration,
    /// How often changed contacts are re-evaluated against the segments.
    pub segment_maintain_every: Duration,
    /// How often segments that depend on time are re-evaluated in full.
    pub segment_refresh_every: Duration,
    /// Marks the UI's session cookie `Secure` (sent over HTTPS only). Set it whenever Rapport
    /// is reached over HTTPS; requests that arrive with `X-Forwarded-Proto: https` get the
    /// flag regardless.
    pub secure_cookies: bool,
    /// A UI session unused for this long ends.
    pub session_idle: Duration,
    /// A UI session ends this long after sign-in, however busy.
    pub session_max_age: Duration,
    /// How often the automation engine looks for due work when nothing wakes it sooner (new
    /// events wake it at once).
    pub automation_every: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_ingest_body_bytes: 32 * 1024 * 1024,
            lifecycle_sweep_every: Duration::from_secs(60),
            segment_maintain_every: Duration::from_secs(1),
            segment_refresh_every: rapport_store::segments::DEFAULT_REFRESH_EVERY,
            secure_cookies: false,
            session_idle: Duration::from_secs(12 * 3600),
            session_max_age: Duration::from_secs(30 * 24 * 3600),
            automation_every: Duration::from_secs(1),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<WebConfig>,
    pub keys: Arc<auth::KeyCache>,
    pub metrics: telemetry::Metrics,
    /// Set when the server runs with `--clock manual`: the clock `POST /api/v1/admin/clock` moves.
    pub manual_clock: Option<Arc<ManualClock>>,
    /// Failed sign-ins by email and by client address (this process only).
    pub login_limiter: Arc<ui::auth::LoginLimiter>,
    /// Wakes this instance's automation worker (new events, a manual start).
    pub automation_wake: Arc<tokio::sync::Notify>,
    /// Wakes this instance's event reactor (PostgreSQL; new events).
    pub events_wake: Arc<tokio::sync::Notify>,
    /// Wakes this instance's campaign worker (a campaign was sent or resumed).
    pub campaign_wake: Arc<tokio::sync::Notify>,
    /// Delivers `webhook` steps; `None` leaves deliveries pending (tests that check the queue).
    pub webhooks: Option<Arc<ops::WebhookSender>>,
    /// Sends email from the outbox; `None` when no SMTP relay is configured.
    pub email: Option<Arc<email::EmailChannel>>,
    /// Sends SMS and chat messages from the outbox; `None` when no provider is configured.
    pub messaging: Option<Arc<messaging::TextChannels>>,
}

impl AppState {
    pub fn new(store: Store, config: WebConfig) -> Self {
        Self {
            store,
            config: Arc::new(config),
            keys: Arc::new(auth::KeyCache::default()),
            metrics: telemetry::Metrics::global(),
            manual_clock: None,
            login_limiter: Arc::new(ui::auth::LoginLimiter::default()),
            automation_wake: Arc::new(tokio::sync::Notify::new()),
            events_wake: Arc::new(tokio::sync::Notify::new()),
            campaign_wake: Arc::new(tokio::sync::Notify::new()),
            webhooks: None,
            email: None,
            messaging: None,
        }
    }

    /// Sends the outbox's email through `channel`.
    pub fn with_email(mut self, channel: email::EmailChannel) -> Self {
        self.email = Some(Arc::new(channel));
        self
    }

    /// Sends text messages (SMS, chat) through the providers of `channels`.
    pub fn with_messaging(mut self, channels: messaging::TextChannels) -> Self {
        self.messaging = messaging::shared(channels);
        self
    }

    /// Delivers webhook steps with `sender`.
    pub fn with_webhooks(mut self, sender: ops::WebhookSender) -> Self {
        self.webhooks = Some(Arc::new(sender));
        self
    }

    /// Lets `POST /api/v1/admin/clock` move `clock`, which must be the store's clock.
    pub fn with_manual_clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.manual_clock = Some(clock);
        self
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .merge(api::contacts::routes())
        .merge(api::companies::routes())
        .merge(api::links::routes())
        .merge(api::relations::routes())
        .merge(api::notes::routes())
        .merge(api::tags::routes())
        .merge(api::custom_fields::routes())
        .merge(api::users::routes())
        .merge(api::events::routes(state.config.max_ingest_body_bytes))
        .merge(api::segments::routes())
        .merge(api::campaigns::routes())
        .merge(api::tasks::routes())
        .merge(api::workflows::routes())
        .merge(api::automation::routes())
        .merge(api::templates::routes())
        .merge(api::deliverability::routes())
        .merge(api::consent::routes())
        .merge(api::messages::routes())
        .fallback(ops::api_not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_key));

    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
    });

    Router::new()
        .nest("/api/v1", v1)
        .merge(ops::routes())
        .merge(email::routes())
        .merge(tracking::routes())
        .merge(preferences::routes())
        .merge(docs::routes())
        .merge(ui::routes(state.clone()))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn(telemetry::record))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, state.config.request_timeout))
        .layer(CatchPanicLayer::custom(ops::panic_response))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION, axum::http::header::COOKIE]))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let maintenance = tokio::spawn(ops::maintenance(state.clone()));
    let lifecycle = tokio::spawn(ops::lifecycle_sweeper(state.clone()));
    let segments = tokio::spawn(ops::segment_maintainer(state.clone()));
    let automation = tokio::spawn(ops::automation_worker(state.clone()));
    // On SQLite ingest lets the workflows react itself, in its own transaction.
    let reactor =
        (state.store.dialect() == rapport_store::db::Dialect::Postgres).then(|| tokio::spawn(ops::event_reactor(state.clone())));
    let webhooks = tokio::spawn(ops::webhook_deliverer(state.clone()));
    let campaigns = tokio::spawn(ops::campaign_worker(state.clone()));
    let texts = tokio::spawn(messaging::text_deliverer(state.clone()));
    if state.email.is_some() {
        // Workflow email that waited for a relay goes out now that one is configured (campaigns
        // requeue their own when they settle).
        match state.store.release_unsendable_messages("email").await {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "email that waited for a relay is queued again"),
            Err(e) => tracing::warn!(error = %e, "could not queue waiting email again"),
        }
    }
    let email = tokio::spawn(email::email_deliverer(state));
    // The peer address feeds the per-address limit on sign-in attempts.
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, service).with_graceful_shutdown(shutdown).await;
    maintenance.abort();
    lifecycle.abort();
    segments.abort();
    automation.abort();
    if let Some(r) = reactor {
        r.abort();
    }
    webhooks.abort();
    campaigns.abort();
    email.abort();
    texts.abort();
    result
}
