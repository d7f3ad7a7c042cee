//! The scale-out backend: PostgreSQL through a pool of connections, each with its own
//! prepared-statement cache. Several Rapport instances may share one database.

use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{IsNull, Json, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use crate::StoreError;
use crate::db::{Dialect, Tx};
use crate::value::{Row, Value};

pub(crate) struct PgBackend {
    /// Always `Some` until dropped.
    pool: Option<r2d2::Pool<PgManager>>,
}

impl Drop for PgBackend {
    /// Closing a synchronous `postgres::Client` runs a small runtime of its own, which panics
    /// on a thread that is driving an async runtime; so the pool is closed on a plain thread.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let closer = std::thread::Builder::new().name("rapport-pg-close".into()).spawn(move || drop(pool));
            if let Ok(handle) = closer {
                let _ = handle.join();
            }
        }
    }
}

pub(crate) struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

pub(crate) struct PgManager {
    config: postgres::Config,
}

impl r2d2::ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        let client = self.config.connect(NoTls)?;
        Ok(PgConn { client, statements: HashMap::new() })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

impl PgBackend {
    pub(crate) fn open(
        url: &str,
        search_path: Option<&str>,
        max_connections: u32,
        init: impl FnOnce(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        let mut config: postgres::Config =
            url.parse().map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        config.application_name("rapport");
        config.connect_timeout(Duration::from_secs(10));
        // JIT compilation pays off for long analytic queries; for a CRM's short ones it cost
        // 30–700 ms whenever a plan's estimate crossed its threshold (measured on the UI's
        // search), so it is off for Rapport's sessions.
        let mut options = config.get_options().map(|o| format!("{o} ")).unwrap_or_default();
        options.push_str("-c jit=off");
        if let Some(schema) = search_path {
            options.push_str(&format!(" -c search_path={schema}"));
        }
        config.options(&options);
        let pool = r2d2::Pool::builder()
            .max_size(max_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .test_on_check_out(false)
            .build(PgManager { config })
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        let backend = Self { pool: Some(pool) };
        backend.transaction(init)?;
        Ok(backend)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<PgManager>, StoreError> {
        let pool = self.pool.as_ref().ok_or_else(|| StoreError::Unavailable("the PostgreSQL pool is closed".into()))?;
        pool.get().map_err(|e| StoreError::Unavailable(format!("no PostgreSQL connection: {e}")))
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        f(&mut *conn)
    }

    pub(crate) fn transaction<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        conn.client.batch_execute("BEGIN").map_err(pg_err)?;
        match f(&mut *conn) {
            Ok(v) => {
                conn.client.batch_execute("COMMIT").map_err(pg_err)?;
                Ok(v)
            }
            Err(e) => {
                let _ = conn.client.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl PgConn {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(pg_err)?;
        if self.statements.len() > 512 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

impl Tx for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let stmt = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.client.execute(&stmt, &refs).map_err(pg_err)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let stmt = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.client.query(&stmt, &refs).map_err(pg_err)?;
        rows.iter().map(read_row).collect()
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client.batch_execute(sql).map_err(pg_err)
    }
}

fn read_row(r: &postgres::Row) -> Result<Row, StoreError> {
    let mut vals = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let ty = col.type_();
        let v = match *ty {
            Type::BOOL => r.try_get::<_, Option<bool>>(i).map(|v| v.map_or(Value::Null, Value::Bool)),
            Type::INT2 => r.try_get::<_, Option<i16>>(i).map(|v| v.map_or(Value::Null, |x| Value::I64(x.into()))),
            Type::INT4 => r.try_get::<_, Option<i32>>(i).map(|v| v.map_or(Value::Null, |x| Value::I64(x.into()))),
            Type::INT8 => r.try_get::<_, Option<i64>>(i).map(|v| v.map_or(Value::Null, Value::I64)),
            Type::FLOAT4 => r.try_get::<_, Option<f32>>(i).map(|v| v.map_or(Value::Null, |x| Value::F64(x.into()))),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map(|v| v.map_or(Value::Null, Value::F64)),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                r.try_get::<_, Option<String>>(i).map(|v| v.map_or(Value::Null, Value::Text))
            }
            Type::JSON | Type::JSONB => r.try_get::<_, Option<serde_json::Value>>(i).map(|v| v.map_or(Value::Null, Value::Json)),
            Type::UUID => r.try_get::<_, Option<uuid::Uuid>>(i).map(|v| v.map_or(Value::Null, Value::Uuid)),
            Type::TIMESTAMPTZ => {
                r.try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(i).map(|v| v.map_or(Value::Null, Value::Time))
            }
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i).map(|v| v.map_or(Value::Null, Value::Bytes)),
            _ => return Err(StoreError::Database(format!("column {} has unsupported type {ty}", col.name()))),
        }
        .map_err(pg_err)?;
        vals.push(v);
    }
    Ok(Row(vals))
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Bool(b) => b.to_sql(ty, out),
            Value::I64(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::F64(f) => f.to_sql(ty, out),
            Value::Text(s) => match *ty {
                Type::UUID => uuid::Uuid::parse_str(s)?.to_sql(ty, out),
                _ => s.to_sql(ty, out),
            },
            Value::Json(j) => match *ty {
                Type::JSON | Type::JSONB => Json(j).to_sql(ty, out),
                _ => j.to_string().to_sql(ty, out),
            },
            Value::Uuid(u) => u.to_sql(ty, out),
            Value::Time(t) => t.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

pub(crate) fn pg_err(e: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict {
                field: String::new(),
                message: format!("already exists ({})", db.constraint().unwrap_or("unique constraint")),
            };
        }
        if *code == SqlState::FOREIGN_KEY_VIOLATION {
            return StoreError::Conflict { field: String::new(), message: "refers to a record that does not exist".into() };
        }
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
            return StoreError::Unavailable(format!("transaction conflict, retry: {}", db.message()));
        }
        return StoreError::Database(format!("{}: {}", code.code(), db.message()));
    }
    if e.is_closed() {
        return StoreError::Unavailable(format!("PostgreSQL connection lost: {e}"));
    }
    StoreError::Database(e.to_string())
}
