//! `Idempotency-Key` support: a create retried with the same key and the same body gets the
//! first answer again instead of a second record. The remembered answer is written in the
//! same transaction as the record, so either both exist or neither does.

use rapport_core::Timestamp;
use serde::Serialize;
use uuid::Uuid;

use crate::db::Tx;
use crate::value::Value;
use crate::{Result, Store, StoreError};

/// One client's key for one request. `fingerprint` identifies the request (method, path and
/// body digest): reusing a key for a different request is an error, not a replay.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub api_key_id: Uuid,
    pub key: String,
    pub fingerprint: String,
}

/// The outcome of a create.
#[derive(Debug, Clone)]
pub enum Created<T> {
    New(T),
    /// A retry: the answer given the first time.
    Replayed {
        status: u16,
        body: serde_json::Value,
    },
}

fn replay<T>(tx: &mut dyn Tx, k: &IdempotencyKey) -> Result<Option<Created<T>>> {
    let row = tx.query_opt(
        "SELECT fingerprint, status, response FROM idempotency_keys WHERE api_key_id = $1 AND key = $2",
        &[k.api_key_id.into(), k.key.as_str().into()],
    )?;
    match row {
        None => Ok(None),
        Some(r) if r.string(0)? == k.fingerprint => Ok(Some(Created::Replayed { status: r.i64(1)? as u16, body: r.json(2)? })),
        Some(_) => Err(StoreError::IdempotencyMismatch),
    }
}

fn remember(tx: &mut dyn Tx, k: &IdempotencyKey, status: u16, body: serde_json::Value, now: Timestamp) -> Result<()> {
    tx.execute(
        "INSERT INTO idempotency_keys (api_key_id, key, fingerprint, status, response, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[k.api_key_id.into(), k.key.as_str().into(), k.fingerprint.as_str().into(), Value::I64(status.into()), Value::Json(body), now.into()],
    )?;
    Ok(())
}

impl Store {
    /// Runs the create `f` at most once per idempotency key.
    pub(crate) async fn create_once<T, F>(&self, idem: Option<IdempotencyKey>, f: F) -> Result<Created<T>>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Clone + Send + 'static,
    {
        let now = self.now();
        let key = idem.clone();
        let outcome = self
            .write_checked(move |tx| {
                if let Some(k) = &key
                    && let Some(done) = replay(tx, k)?
                {
                    return Ok(done);
                }
                let created = f(tx)?;
                if let Some(k) = &key {
                    let body = serde_json::to_value(&created).map_err(|e| StoreError::Database(e.to_string()))?;
                    remember(tx, k, 201, body, now)?;
                }
                Ok(Created::New(created))
            })
            .await;
        match (outcome, idem) {
            // Two instances raced with the same key (PostgreSQL): the loser replays the winner.
            (Err(e @ StoreError::Conflict { .. }), Some(k)) => match self.read(move |tx| replay::<T>(tx, &k)).await {
                Ok(Some(first)) => Ok(first),
                _ => Err(e),
            },
            (outcome, _) => outcome,
        }
    }

    /// A write whose checks run inside it (an email must be unused, …). When a unique index
    /// still catches a concurrent duplicate (possible on PostgreSQL, where writers run in
    /// parallel), the write is tried once more: its checks then see the committed row and
    /// report which field conflicts.
    pub(crate) async fn write_checked<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Clone + Send + 'static,
    {
        match self.write(f.clone()).await {
            Err(StoreError::Conflict { field, .. }) if field.is_empty() => self.write(f).await,
            other => other,
        }
    }

    /// Refreshes the query planner's statistics where the data has changed a lot since they
    /// were gathered, so segment counts keep choosing the right indexes as the data grows.
    /// SQLite only: PostgreSQL's autovacuum already does it.
    ///
    /// A SQLite connection reads the statistics only when it loads the schema, so the readers,
    /// open for the server's lifetime, would keep planning with what they read at startup (a
    /// database that started empty: no statistics at all). When the statistics changed, the
    /// schema is changed too, by recreating a one-line view, which makes every connection load
    /// it again, statistics included, before its next statement.
    pub async fn refresh_planner_statistics(&self) -> Result<()> {
        if self.dialect() != crate::db::Dialect::Sqlite {
            return Ok(());
        }
        self.write(|tx| {
            let before = planner_statistics(tx)?;
            // 0x10002: look at every table, not only those this connection has queried.
            tx.execute_batch("PRAGMA optimize = 0x10002")?;
            if planner_statistics(tx)? != before {
                tx.execute_batch(
                    "DROP VIEW IF EXISTS planner_statistics_reloaded; \
                     CREATE VIEW planner_statistics_reloaded AS SELECT 'readers reload the statistics when this view changes' AS why",
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Forgets idempotency keys older than `before` (clients retry within minutes, not days).
    pub async fn purge_idempotency_keys(&self, before: Timestamp) -> Result<u64> {
        self.write(move |tx| tx.execute("DELETE FROM idempotency_keys WHERE created_at < $1", &[before.into()])).await
    }
}

/// SQLite's planner statistics as one text (empty before the first ANALYZE), to tell whether
/// they changed.
fn planner_statistics(tx: &mut dyn Tx) -> Result<String> {
    if tx.query_opt("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'", &[])?.is_none() {
        return Ok(String::new());
    }
    tx.query_one(
        "SELECT coalesce(group_concat(tbl || ' ' || coalesce(idx, '') || ' ' || stat, char(10)), '') FROM sqlite_stat1",
        &[],
    )?
    .string(0)
}
