//! End-to-end tests of the REST API over real HTTP, on both backends.
//!
//! Every test body runs twice, once on SQLite (a file in a temporary directory) and once on
//! PostgreSQL (a fresh schema per test), through [`both_backends!`]. Each test gets its own
//! server on a random port, its own database, its own admin key and a [`ManualClock`].
//!
//! PostgreSQL comes from `RAPPORT_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached the PostgreSQL
//! variants are skipped with a note, except under `CI=true`, where they fail.

use std::sync::Arc;
use std::time::Duration;

use rapport_core::ManualClock;
use rapport_core::user::Role;
use rapport_store::{DatabaseUrl, Store, StoreOptions};
use rapport_web::{AppState, WebConfig};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The secret webhooks named `test` are signed with.
pub const TEST_WEBHOOK_SECRET: &str = "s3cret-for-tests";

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Where a test's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `<name>::sqlite` and `<name>::postgres` tests that run the same body.
///
/// ```ignore
/// both_backends! {
///     async fn creates_a_contact(app) {
///         app.post("/api/v1/contacts", json!({"first_name": "Ana"})).await.expect(201);
///     }
/// }
/// ```
/// Attributes given before `async fn` apply to both generated tests.
macro_rules! both_backends {
    ($($(#[$meta:meta])* async fn $name:ident($app:ident) $body:block)+) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($app: &mut $crate::TestApp) $body

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(mut app) = $crate::TestApp::spawn($crate::Backend::Sqlite).await {
                    body(&mut app).await;
                    app.finish().await;
                }
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(mut app) = $crate::TestApp::spawn($crate::Backend::Postgres).await {
                    body(&mut app).await;
                    app.finish().await;
                }
            }
        }
    )+};
}

// One binary for every API test: a single link on small machines. Declared after the macro
// so that they can use it.
mod auth;
mod automation;
mod campaigns;
#[path = "../support/chromium.rs"]
mod chromium;
mod consent;
mod contacts;
mod crash;
mod email;
mod events;
mod messaging;
mod ops;
mod resources;
mod segments;
mod tasks;
mod templates;
mod tracking;
mod ui;
mod ui_campaigns;
mod workflows;

/// A running server and how to stop it.
struct Server {
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    async fn start(store: Store, clock: Arc<ManualClock>, smtp: Option<String>, texts: &[TextProvider]) -> (String, Self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = oneshot::channel::<()>();
        // Webhooks may call the tests' own receivers on 127.0.0.1, signed with the secret "test".
        let policy = rapport_channels::webhook::AddressPolicy::new(false, ["127.0.0.1"]).expect("policy");
        let sender = rapport_web::ops::WebhookSender::new(policy, [("test".to_string(), TEST_WEBHOOK_SECRET.to_string())])
            .expect("webhook sender");
        let mut state = AppState::new(store, WebConfig::default()).with_manual_clock(clock).with_webhooks(sender);
        if let Some(url) = smtp {
            let settings = rapport_channels::email::SmtpSettings::parse(&url).expect("smtp url");
            let sender = rapport_channels::email::EmailSender::new(settings, Default::default()).expect("email sender");
            let from = "Harbour & Pine <hello@harbourpine.example>".parse().expect("from");
            state = state.with_email(rapport_web::email::EmailChannel { sender, from, public_url: "https://crm.example".into() });
        }
        let mut channels = rapport_web::messaging::TextChannels::default();
        for (channel, settings) in texts {
            let provider = rapport_channels::messaging::TextProvider::new(settings.clone()).expect("text provider");
            channels = channels.with(*channel, provider);
        }
        state = state.with_messaging(channels);
        let handle = tokio::spawn(rapport_web::serve(listener, state, async move {
            let _ = rx.await;
        }));
        (base, Self { shutdown: Some(tx), handle: Some(handle) })
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            match tokio::time::timeout(Duration::from_secs(10), handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => panic!("the server failed: {e}"),
                Ok(Err(e)) => panic!("the server task failed: {e}"),
                Err(_) => panic!("the server did not shut down within 10 s"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// One test's application: its database, its server, an admin key and a clock that only
/// moves when told.
pub struct TestApp {
    pub backend: Backend,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: reqwest::Client,
    /// The secret of an admin key.
    pub key: String,
    /// Always `Some` until the app is dropped (see [`TestApp::store`]).
    store: Option<Store>,
    pub clock: Arc<ManualClock>,
    url: DatabaseUrl,
    pg_schema: Option<String>,
    server: Option<Server>,
    _dir: Option<tempfile::TempDir>,
    /// The SMTP relay the server sends email through, when the test has one.
    smtp: Option<String>,
    /// The SMS and chat providers the server sends through; a restart picks up changes.
    texts: Vec<TextProvider>,
}

/// A text channel and the provider it sends through.
pub type TextProvider = (rapport_core::workflow::MessageChannel, rapport_channels::messaging::ProviderSettings);

/// Under CI a missing PostgreSQL is a failure, not a skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

pub fn pg_url() -> String {
    std::env::var("RAPPORT_TEST_DATABASE_URL").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| DEFAULT_PG_URL.to_string())
}

fn pg_connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(5));
    config.application_name("rapport-api-tests");
    config.connect(postgres::NoTls)
}

/// Creates a fresh schema; `None` when PostgreSQL cannot be reached (outside CI).
fn create_pg_schema(url: &str) -> Option<String> {
    let mut client = match pg_connect(url) {
        Ok(c) => c,
        Err(e) => {
            let shown = rapport_store::redact(url);
            if in_ci() {
                panic!(
                    "PostgreSQL at {shown} is unreachable and CI=true, so this test fails instead of skipping: {e}. \
                     Start it (scripts/pg-up) or point RAPPORT_TEST_DATABASE_URL at one."
                );
            }
            eprintln!(
                "note: skipping this PostgreSQL test: {shown} is unreachable ({e}); set RAPPORT_TEST_DATABASE_URL or run scripts/pg-up"
            );
            return None;
        }
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
    Some(schema)
}

fn drop_pg_schema(url: &str, schema: &str) {
    match pg_connect(url) {
        Ok(mut c) => {
            if let Err(e) = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")) {
                eprintln!("note: could not drop test schema {schema}: {e}");
            }
        }
        Err(e) => eprintln!("note: could not drop test schema {schema}: {e}"),
    }
}

fn start_time() -> rapport_core::Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-01-15T09:00:00Z").expect("valid time").to_utc()
}

/// Opens a store off the runtime (opening blocks).
async fn open_store(url: DatabaseUrl, schema: Option<String>, clock: Arc<ManualClock>) -> Store {
    open_store_with(url, schema, clock, PG_TEST_CONNECTIONS).await
}

const PG_TEST_CONNECTIONS: u32 = 2;

async fn open_store_with(url: DatabaseUrl, schema: Option<String>, clock: Arc<ManualClock>, pg_connections: u32) -> Store {
    open_store_tuned(url, schema, clock, pg_connections, |_| {}).await
}

/// Opens a store whose options `tune` adjusts first.
async fn open_store_tuned(
    url: DatabaseUrl,
    schema: Option<String>,
    clock: Arc<ManualClock>,
    pg_connections: u32,
    tune: impl FnOnce(&mut StoreOptions) + Send + 'static,
) -> Store {
    tokio::task::spawn_blocking(move || {
        let mut options = StoreOptions {
            pg_schema: schema,
            clock,
            pg_max_connections: pg_connections,
            sqlite_readers: 2,
            ..StoreOptions::default()
        };
        tune(&mut options);
        Store::open(&url, options).unwrap_or_else(|e| panic!("cannot open the store {}: {e}", url.redacted()))
    })
    .await
    .expect("open task")
}

/// Drops a store handle, off the async runtime (see [`open_store`]).
fn close_store(store: Option<Store>) {
    drop(store);
}

fn new_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client")
}

impl TestApp {
    /// A fresh database and server. `None` when the backend is not available (skipped).
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_tuned(backend, |_| {}).await
    }

    /// As [`TestApp::spawn`], with store options that `tune` adjusts.
    pub async fn spawn_tuned(backend: Backend, tune: impl FnOnce(&mut StoreOptions) + Send + 'static) -> Option<Self> {
        Self::spawn_full(backend, tune, None, Vec::new()).await
    }

    /// As [`TestApp::spawn`], sending email through the relay at `smtp` (the email channel is
    /// then ready).
    pub async fn spawn_with_smtp(backend: Backend, smtp: String) -> Option<Self> {
        Self::spawn_full(
            backend,
            |o| o.automation.ready_channels = vec![rapport_core::workflow::MessageChannel::Email],
            Some(smtp),
            Vec::new(),
        )
        .await
    }

    /// As [`TestApp::spawn_tuned`], sending SMS and chat through `texts` (those channels are
    /// then ready).
    pub async fn spawn_with_texts(
        backend: Backend,
        texts: Vec<TextProvider>,
        tune: impl FnOnce(&mut StoreOptions) + Send + 'static,
    ) -> Option<Self> {
        let ready: Vec<_> = texts.iter().map(|(c, _)| *c).collect();
        Self::spawn_full(
            backend,
            move |o| {
                o.automation.ready_channels.extend(ready);
                tune(o);
            },
            None,
            texts,
        )
        .await
    }

    async fn spawn_full(
        backend: Backend,
        tune: impl FnOnce(&mut StoreOptions) + Send + 'static,
        smtp: Option<String>,
        texts: Vec<TextProvider>,
    ) -> Option<Self> {
        let clock = Arc::new(ManualClock::new(start_time()));
        let (url, pg_schema, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                (DatabaseUrl::Sqlite(dir.path().join("rapport.db")), None, Some(dir))
            }
            Backend::Postgres => {
                let url = pg_url();
                let u = url.clone();
                let schema = tokio::task::spawn_blocking(move || create_pg_schema(&u)).await.expect("schema task")?;
                (DatabaseUrl::Postgres(url), Some(schema), None)
            }
        };
        let store = open_store_tuned(url.clone(), pg_schema.clone(), clock.clone(), PG_TEST_CONNECTIONS, tune).await;
        let key = store
            .create_key("test admin".into(), Role::Admin, None, None, false)
            .await
            .expect("create admin key")
            .expect("a key was created")
            .secret;
        let (base, server) = Server::start(store.clone(), clock.clone(), smtp.clone(), &texts).await;
        Some(Self {
            backend,
            base,
            client: new_client(),
            key,
            store: Some(store),
            clock,
            url,
            pg_schema,
            server: Some(server),
            _dir: dir,
            smtp,
            texts,
        })
    }

    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("the store is open")
    }

    /// Stops the server and waits for it, so that the store is closed by [`Drop`] off the
    /// async runtime.
    pub async fn finish(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    /// A new key with `role`; returns its secret.
    pub async fn create_key(&self, name: &str, role: Role) -> String {
        self.store()
            .create_key(name.into(), role, None, None, false)
            .await
            .expect("create key")
            .expect("a key was created")
            .secret
    }

    /// A new member key that belongs to user `user` (an id); returns its secret.
    pub async fn create_key_for_user(&self, user: &str) -> String {
        let id = uuid::Uuid::parse_str(user).expect("a user id");
        self.store()
            .create_key("user key".into(), Role::Member, Some(id), None, false)
            .await
            .expect("create key")
            .expect("a key was created")
            .secret
    }

    /// A new server (new AppState, so an empty key cache) on the same store.
    pub async fn restart_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        let (base, server) = Server::start(self.store().clone(), self.clock.clone(), self.smtp.clone(), &self.texts).await;
        self.base = base;
        self.client = new_client();
        self.server = Some(server);
    }

    /// Stops the server, closes the store, opens the same database again with a new
    /// [`Store`] and serves it: what a process restart does.
    pub async fn reopen(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        // Close the old handle off the runtime (see `close_store`); nothing else holds it
        // once the server has stopped.
        let old = self.store.take();
        tokio::task::spawn_blocking(move || close_store(old)).await.expect("close task");
        let fresh = open_store(self.url.clone(), self.pg_schema.clone(), self.clock.clone()).await;
        self.store = Some(fresh);
        let (base, server) = Server::start(self.store().clone(), self.clock.clone(), self.smtp.clone(), &self.texts).await;
        self.base = base;
        self.client = new_client();
        self.server = Some(server);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with no key.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with `key` as the bearer key.
    pub fn with_key(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(key)
    }

    /// A request with the admin key.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.with_key(&self.key, method, path)
    }

    pub async fn get(&self, path: &str) -> Resp {
        send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        send(self.req(Method::POST, path).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        send(self.req(Method::PATCH, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        send(self.req(Method::DELETE, path)).await
    }

    /// Creates a record and returns it (panics unless 201).
    pub async fn create(&self, path: &str, body: Value) -> Value {
        self.post(path, body).await.expect(201)
    }

    /// Every item of a list, following cursors (panics on an error).
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let url = match &cursor {
                None => path.to_string(),
                Some(c) => format!("{path}{sep}cursor={c}"),
            };
            let page = self.get(&url).await.expect(200);
            items.extend(page["data"].as_array().unwrap_or_else(|| panic!("no data array in {page}")).iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
        panic!("{path} did not end after 1000 pages");
    }

    /// How many contacts exist, counted through the API.
    pub async fn contact_count(&self) -> usize {
        self.list_all("/api/v1/contacts?limit=500").await.len()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop serving; the server task ends on its own.
        drop(self.server.take());
        let store = self.store.take();
        let schema = self.pg_schema.take();
        // On a plain thread: this runs inside the runtime, maybe while unwinding from a failed
        // assertion. Dropping the schema is best effort.
        let _ = std::thread::spawn(move || {
            close_store(store);
            if let Some(schema) = schema {
                drop_pg_schema(&pg_url(), &schema);
            }
        })
        .join();
    }
}

/// A received answer: status, headers and the body (as JSON when it is JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

pub async fn send(req: RequestBuilder) -> Resp {
    let res = req.send().await.unwrap_or_else(|e| panic!("request failed: {e}"));
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_else(|e| panic!("reading the body failed: {e}"));
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, headers, text, json }
}

impl Resp {
    /// The JSON body, after checking the status.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.text);
        self.json
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header(CONTENT_TYPE.as_str()).unwrap_or("")
    }

    /// The fields named in `errors[].field`.
    pub fn error_fields(&self) -> Vec<String> {
        self.json["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["field"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// Checks an RFC 9457 answer: the status, the content type and the body's `status`.
    #[track_caller]
    pub fn expect_problem(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "expected a {status} problem, got {}: {}", self.status, self.text);
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "expected application/problem+json, got '{}': {}",
            self.content_type(),
            self.text
        );
        assert_eq!(self.json["status"], status, "problem body status: {}", self.text);
        assert!(
            self.json["type"].is_string() && self.json["title"].is_string() && self.json["detail"].is_string(),
            "problem shape: {}",
            self.text
        );
        &self.json
    }

    /// Checks a problem that names `field` in `errors[].field`.
    #[track_caller]
    pub fn expect_field_problem(&self, status: u16, field: &str) -> &Value {
        self.expect_problem(status);
        let fields = self.error_fields();
        assert!(fields.iter().any(|f| f == field), "expected errors[].field to name '{field}', got {fields:?}: {}", self.text);
        &self.json
    }
}

/// The `id` of a record.
#[track_caller]
pub fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// The ids of a list of records.
pub fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(id_of).collect()
}

/// Whether PostgreSQL answers (panics under CI when it does not).
fn postgres_or_skip() -> bool {
    match pg_connect(&pg_url()) {
        Ok(_) => true,
        Err(e) if in_ci() => panic!("PostgreSQL at {} is unreachable and CI=true: {e}", rapport_store::redact(&pg_url())),
        Err(e) => {
            eprintln!("note: skipping this PostgreSQL test: {e}");
            false
        }
    }
}

// Dropping the last handle of a PostgreSQL `Store` on an async thread must not panic: that is
// what happens when `rapport serve` stops (the store in `AppState` goes away inside the runtime).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_can_be_dropped_inside_the_runtime() {
    let url = pg_url();
    let Some(schema) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || if postgres_or_skip() { create_pg_schema(&url) } else { None }
    })
    .await
    .expect("schema task") else {
        return;
    };
    let clock = Arc::new(ManualClock::new(start_time()));
    // One connection, so that the failure is one clean panic rather than an abort.
    let store = open_store_with(DatabaseUrl::Postgres(url.clone()), Some(schema.clone()), clock, 1).await;
    store.ping().await.expect("ping");
    // What happens when a server stops: its last Store handle goes away on a worker thread.
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(store)));
    tokio::task::spawn_blocking(move || drop_pg_schema(&url, &schema)).await.expect("cleanup");
    assert!(dropped.is_ok(), "dropping a PostgreSQL Store inside the runtime panicked");
}
