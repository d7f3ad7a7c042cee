//! Rapport's storage: the only crate with SQL. One [`Store`] API over two backends —
//! SQLite (an embedded file, the default) and PostgreSQL (for scale-out) — with the same
//! repositories, written once against the [`db::Tx`] seam, and migrations for each.

pub mod automation;
mod bulk;
pub mod campaigns;
mod common;
mod companies;
pub mod consent;
mod contacts;
mod custom_fields;
mod dashboard;
pub mod db;
mod deliverability;
mod error;
mod events;
mod idempotency;
mod keys;
mod links;
pub mod list;
pub mod migrate;
mod notes;
mod overview;
mod postgres;
mod profiles;
mod relations;
mod saved_views;
mod search;
pub mod segments;
pub mod sessions;
mod sqlite;
mod tags;
mod tasks;
pub mod templates;
mod users;
pub mod value;
mod workflows;

use std::path::PathBuf;
use std::sync::Arc;

use rapport_core::profile::ProfileRules;
use rapport_core::{Clock, PhoneRegion, SystemClock};

pub use bulk::{BulkReport, MAX_BULK};
pub use companies::CompanyFilter;
pub use contacts::ContactFilter;
pub use dashboard::{Dashboard, RecentContact};
pub use deliverability::{
    AUTO_REPLY_EVENT, BounceOutcome, BounceReport, BounceType, DeliveryCheck, Engagement, EngagementOutcome, InboundReply,
    IntakeStatus, ReplyOutcome, Suppression, address_key,
};
pub use error::StoreError;
pub use events::{Amount, IngestReport, ItemResult, ItemStatus, TimelineEvent, TimelineFilter};
pub use idempotency::{Created, IdempotencyKey};
pub use keys::{AuthenticatedKey, NewKey};
pub use links::LinkFilter;
pub use list::{Page, PageRequest};
pub use notes::NoteFilter;
pub use overview::{CompanyOverview, ContactOverview, InboundRelation, LinkedCompany, LinkedContact};
pub use profiles::RebuildReport;
pub use relations::RelationFilter;
pub use saved_views::SavedView;
pub use search::{HitKind, SearchHit};
pub use segments::{ExplainNode, Explanation, MaintainReport, Preview, Segment};
pub use sessions::{NewSession, Session, SessionLimits};
pub use tags::TagFilter;
pub use tasks::TaskFilter;
pub use users::UserFilter;
pub use workflows::WorkflowFilter;

use db::{Dialect, Tx};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// Accepts `sqlite://PATH`, `sqlite:PATH`, `postgres://…`, `postgresql://…`, or a bare path
    /// (taken as a SQLite file).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("the database URL is empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        if let Some(p) = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")) {
            if p.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://rapport.db".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(p)));
        }
        if raw.contains("://") {
            return Err(format!("unsupported database URL '{}': use sqlite://PATH or postgres://…", redact(raw)));
        }
        Ok(Self::Sqlite(PathBuf::from(raw)))
    }

    /// The URL with any password hidden, for logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            Self::Postgres(u) => redact(u),
        }
    }
}

/// Hides the password of `scheme://user:password@host`.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((cred, host)) = rest.split_once('@')
        && let Some((user, _)) = cred.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

/// How the store is set up.
#[derive(Clone)]
pub struct StoreOptions {
    /// Region for phone numbers written without a `+country` prefix (custom phone fields).
    pub phone_region: PhoneRegion,
    pub clock: Arc<dyn Clock>,
    /// SQLite reader connections.
    pub sqlite_readers: u32,
    /// PostgreSQL pool size per instance.
    pub pg_max_connections: u32,
    /// PostgreSQL schema to work in (tests use one schema each).
    pub pg_schema: Option<String>,
    /// How events add up to profiles, tiers and lifecycle stages.
    pub profile_rules: Arc<ProfileRules>,
    /// The time zone of contacts who have none (their "today" in segment filters).
    pub default_time_zone: chrono_tz::Tz,
    /// How workflows behave: catch-up after downtime, quiet hours, frequency caps.
    pub automation: automation::AutomationOptions,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            phone_region: PhoneRegion::default(),
            clock: Arc::new(SystemClock),
            sqlite_readers: 8,
            pg_max_connections: 16,
            pg_schema: None,
            profile_rules: Arc::new(ProfileRules::default()),
            default_time_zone: chrono_tz::Tz::UTC,
            automation: automation::AutomationOptions::default(),
        }
    }
}

enum Backend {
    Sqlite(sqlite::SqliteBackend),
    Postgres(postgres::PgBackend),
}

pub(crate) struct Inner {
    backend: Backend,
    options: StoreOptions,
    pub(crate) best_sellers: profiles::BestSellerCache,
    pub(crate) count_split: segments::CountSplitCache,
}

/// The handle every other layer holds. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl Store {
    /// Opens the database and brings its schema up to date. Blocking: call it before the
    /// runtime serves, or from `spawn_blocking`.
    pub fn open(url: &DatabaseUrl, options: StoreOptions) -> Result<Self> {
        let backend = match url {
            DatabaseUrl::Sqlite(path) => {
                Backend::Sqlite(sqlite::SqliteBackend::open(path, options.sqlite_readers, |tx| migrate::apply(tx).map(|_| ()))?)
            }
            DatabaseUrl::Postgres(u) => {
                Backend::Postgres(postgres::PgBackend::open(u, options.pg_schema.as_deref(), options.pg_max_connections, |tx| {
                    migrate::apply(tx).map(|_| ())
                })?)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner { backend, options, best_sellers: Default::default(), count_split: Default::default() }),
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self.inner.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    pub fn now(&self) -> rapport_core::Timestamp {
        self.inner.options.clock.now()
    }

    /// The SQLite file, when that is the backend.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.inner.backend {
            Backend::Sqlite(b) => Some(b.path().to_path_buf()),
            Backend::Postgres(_) => None,
        }
    }

    /// Runs `f` on a read connection, off the async runtime.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || match &inner.backend {
            Backend::Sqlite(b) => b.read(f),
            Backend::Postgres(b) => b.read(f),
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task failed: {e}")))?
    }

    /// Runs a short read — a lookup by key, a few index probes — right here when the backend
    /// is SQLite and a reader is free: handing tens of microseconds of work to the blocking
    /// pool and back costs as much as the work. Anything that may scan belongs in [`read`].
    ///
    /// [`read`]: Store::read
    pub async fn read_point<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.read_point_with(false, f).await
    }

    /// [`read_point`](Store::read_point) for several statements that must agree with each
    /// other: they run in one read transaction (one snapshot) on SQLite, as [`read`](Store::read)
    /// always does.
    pub async fn read_point_snapshot<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.read_point_with(true, f).await
    }

    async fn read_point_with<T, F>(&self, snapshot: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        if let Backend::Sqlite(b) = &self.inner.backend
            && let Some(conn) = b.try_reader()
        {
            return sqlite::SqliteBackend::read_with(&conn, snapshot, f);
        }
        self.read(f).await
    }

    /// Runs `f` in a write transaction: committed when it returns Ok, rolled back otherwise.
    /// Returns only once the commit is durable.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.write_queued(false, f).await
    }

    /// [`write`](Store::write) in a transaction of its own on SQLite rather than a share of a
    /// group: for large writes (an automation pass), whose every statement a group's savepoint
    /// would slow down. The same as `write` on PostgreSQL.
    pub async fn write_alone<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.write_queued(true, f).await
    }

    async fn write_queued<T, F>(&self, alone: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        match &self.inner.backend {
            Backend::Sqlite(b) => {
                let (done, result) = tokio::sync::oneshot::channel::<Result<T>>();
                let job: sqlite::WriteJob = Box::new(move |tx| {
                    let r = f(tx);
                    let ok = r.is_ok();
                    let finish = Box::new(move |committed: Result<()>| {
                        let _ = done.send(committed.and(r));
                    });
                    (ok, finish)
                });
                if let Some(job) = b.try_submit(sqlite::Queued { job, alone })? {
                    // The queue is full: wait for room off the async runtime.
                    let inner = self.inner.clone();
                    tokio::task::spawn_blocking(move || match &inner.backend {
                        Backend::Sqlite(b) => b.submit(job),
                        Backend::Postgres(_) => unreachable!("matched above"),
                    })
                    .await
                    .map_err(|e| StoreError::Database(format!("write task failed: {e}")))??;
                }
                result.await.map_err(|_| StoreError::Database("the write was abandoned (see the server log)".into()))?
            }
            Backend::Postgres(_) => {
                let inner = self.inner.clone();
                tokio::task::spawn_blocking(move || match &inner.backend {
                    Backend::Postgres(b) => b.transaction(f),
                    Backend::Sqlite(_) => unreachable!("matched above"),
                })
                .await
                .map_err(|e| StoreError::Database(format!("write task failed: {e}")))?
            }
        }
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        self.read(|tx| tx.query("SELECT 1", &[]).map(|_| ())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(DatabaseUrl::parse("sqlite://rapport.db").unwrap(), DatabaseUrl::Sqlite("rapport.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite:///var/lib/r.db").unwrap(), DatabaseUrl::Sqlite("/var/lib/r.db".into()));
        assert_eq!(DatabaseUrl::parse("data/r.db").unwrap(), DatabaseUrl::Sqlite("data/r.db".into()));
        assert!(matches!(DatabaseUrl::parse("postgres://u:p@h/db").unwrap(), DatabaseUrl::Postgres(_)));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
    }
}

#[cfg(test)]
mod group_commit_tests {
    use super::*;
    use rapport_core::tag::TagDraft;

    fn open_temp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("t.db")), StoreOptions::default()).unwrap();
        (dir, store)
    }

    /// Concurrent writes share transactions, yet a failing write is undone alone and every
    /// caller learns its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_in_a_group_does_not_undo_the_others() {
        let (_dir, store) = open_temp();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = store.clone();
            // Every tenth name repeats an earlier one and must fail with a conflict.
            let name = if i % 10 == 9 { format!("tag {}", i - 9) } else { format!("tag {i}") };
            tasks
                .push(tokio::spawn(async move { s.create_tag(TagDraft { name: Some(name), ..Default::default() }, None).await }));
        }
        let mut ok = 0;
        let mut conflicts = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!((ok, conflicts), (180, 20));
        let stored = store.read(|tx| tx.query_one("SELECT COUNT(*) FROM tags", &[])?.i64(0)).await.unwrap();
        assert_eq!(stored, 180);
    }

    #[tokio::test]
    async fn a_write_that_errors_leaves_nothing_behind() {
        let (_dir, store) = open_temp();
        let r: Result<()> = store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO tags (id, name, name_key, created_at) VALUES ($1, 'a', 'a', $2)",
                    &[rapport_core::new_id().into(), chrono::Utc::now().into()],
                )?;
                Err(StoreError::invalid("x", "changed my mind"))
            })
            .await;
        assert!(r.is_err());
        let n = store.read(|tx| tx.query_one("SELECT COUNT(*) FROM tags", &[])?.i64(0)).await.unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn reopening_applies_no_migration_twice() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db"));
        drop(Store::open(&url, StoreOptions::default()).unwrap());
        let store = Store::open(&url, StoreOptions::default()).unwrap();
        let versions = store.read(|tx| migrate::applied_versions(tx)).await.unwrap();
        let known: Vec<i64> = migrate::MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(versions, known);
        assert_eq!(known, (1..=known.len() as i64).collect::<Vec<_>>(), "versions count up from 1 without gaps");
    }
}
