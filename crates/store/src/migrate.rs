//! Schema migrations, one ordered list per backend, embedded in the binary. Each migration
//! runs in its own transaction together with its bookkeeping row, so a failed migration
//! leaves the schema as it was. On PostgreSQL an advisory lock keeps several instances that
//! start at once from migrating twice.

use crate::StoreError;
use crate::db::{Dialect, Tx};
use crate::value::Value;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sqlite: include_str!("../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "events",
        sqlite: include_str!("../migrations/sqlite/0002_events.sql"),
        postgres: include_str!("../migrations/postgres/0002_events.sql"),
    },
    Migration {
        version: 3,
        name: "segments",
        sqlite: include_str!("../migrations/sqlite/0003_segments.sql"),
        postgres: include_str!("../migrations/postgres/0003_segments.sql"),
    },
    Migration {
        version: 4,
        name: "sessions",
        sqlite: include_str!("../migrations/sqlite/0004_sessions.sql"),
        postgres: include_str!("../migrations/postgres/0004_sessions.sql"),
    },
    Migration {
        version: 5,
        name: "event money",
        sqlite: include_str!("../migrations/sqlite/0005_event_money.sql"),
        postgres: include_str!("../migrations/postgres/0005_event_money.sql"),
    },
    Migration {
        version: 6,
        name: "tasks",
        sqlite: include_str!("../migrations/sqlite/0006_tasks.sql"),
        postgres: include_str!("../migrations/postgres/0006_tasks.sql"),
    },
    Migration {
        version: 7,
        name: "workflows",
        sqlite: include_str!("../migrations/sqlite/0007_workflows.sql"),
        postgres: include_str!("../migrations/postgres/0007_workflows.sql"),
    },
    Migration {
        version: 8,
        name: "automation",
        sqlite: include_str!("../migrations/sqlite/0008_automation.sql"),
        postgres: include_str!("../migrations/postgres/0008_automation.sql"),
    },
    Migration {
        version: 9,
        name: "message templates",
        sqlite: include_str!("../migrations/sqlite/0009_templates.sql"),
        postgres: include_str!("../migrations/postgres/0009_templates.sql"),
    },
    Migration {
        version: 10,
        name: "campaigns, deliverability and consent",
        sqlite: include_str!("../migrations/sqlite/0010_campaigns.sql"),
        postgres: include_str!("../migrations/postgres/0010_campaigns.sql"),
    },
    Migration {
        version: 11,
        name: "workflow message statistics",
        sqlite: include_str!("../migrations/sqlite/0011_message_stats.sql"),
        postgres: include_str!("../migrations/postgres/0011_message_stats.sql"),
    },
    Migration {
        version: 12,
        name: "double opt-in confirmation email",
        sqlite: include_str!("../migrations/sqlite/0012_confirmation_email.sql"),
        postgres: include_str!("../migrations/postgres/0012_confirmation_email.sql"),
    },
    Migration {
        version: 13,
        name: "profile figures for segment counts",
        sqlite: include_str!("../migrations/sqlite/0013_profile_segment_index.sql"),
        postgres: include_str!("../migrations/postgres/0013_profile_segment_index.sql"),
    },
];

/// An arbitrary constant that names Rapport's migration lock.
const PG_MIGRATION_LOCK: i64 = 0x5241_5050_4f52_5401;

/// Applies every migration not yet applied; returns the versions it applied. The caller
/// supplies the transaction (SQLite: the writer connection; PostgreSQL: one transaction).
pub fn apply(tx: &mut dyn Tx) -> Result<Vec<i64>, StoreError> {
    let dialect = tx.dialect();
    let time_type = match dialect {
        Dialect::Sqlite => "INTEGER",
        Dialect::Postgres => "TIMESTAMPTZ",
    };
    if dialect == Dialect::Postgres {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[Value::I64(PG_MIGRATION_LOCK)])?;
    }
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at {time_type} NOT NULL)"
    ))?;
    let applied: Vec<i64> =
        tx.query("SELECT version FROM schema_migrations", &[])?.iter().map(|r| r.i64(0)).collect::<Result<_, _>>()?;
    let newest_known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(newer) = applied.iter().find(|v| **v > newest_known) {
        return Err(StoreError::Unavailable(format!(
            "the database has schema version {newer}, newer than this Rapport knows ({newest_known}); upgrade Rapport"
        )));
    }
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let sql = match dialect {
            Dialect::Sqlite => m.sqlite,
            Dialect::Postgres => m.postgres,
        };
        // SQLite's writer connection is not inside a transaction here; PostgreSQL's is.
        if dialect == Dialect::Sqlite {
            tx.execute_batch("BEGIN IMMEDIATE")?;
        }
        let result = tx.execute_batch(sql).and_then(|()| {
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[Value::I64(m.version), m.name.into(), Value::Time(chrono::Utc::now())],
            )
        });
        if dialect == Dialect::Sqlite {
            match &result {
                Ok(_) => tx.execute_batch("COMMIT")?,
                Err(_) => tx.execute_batch("ROLLBACK")?,
            }
        }
        result.map_err(|e| StoreError::Unavailable(format!("migration {} ({}) failed: {e}", m.version, m.name)))?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        done.push(m.version);
    }
    // Custom field indexes depend on the fields defined, so they are not a fixed migration.
    if dialect == Dialect::Sqlite {
        tx.execute_batch("BEGIN IMMEDIATE")?;
    }
    let result = crate::custom_fields::ensure_all_indexes(tx);
    if dialect == Dialect::Sqlite {
        tx.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    }
    result.map_err(|e| StoreError::Unavailable(format!("could not index the custom fields: {e}")))?;
    if dialect == Dialect::Sqlite {
        // Gathers the planner's statistics for tables that have none or have grown a lot
        // (PostgreSQL's autovacuum does this by itself); bounded by `analysis_limit`.
        tx.execute_batch("PRAGMA optimize = 0x10002")?;
    }
    Ok(done)
}

/// The versions a database has applied, newest last.
pub fn applied_versions(tx: &mut dyn Tx) -> Result<Vec<i64>, StoreError> {
    tx.query("SELECT version FROM schema_migrations ORDER BY version", &[])?.iter().map(|r| r.i64(0)).collect()
}
