//! The values that cross the boundary between repositories and the two database drivers.
//! Repositories are written once against these; each backend maps them to its own types
//! (SQLite keeps times as integer microseconds and UUIDs as 16-byte blobs; PostgreSQL uses
//! `timestamptz`, `uuid` and `jsonb`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    I64(i64),
    F64(f64),
    Text(String),
    Json(serde_json::Value),
    Uuid(Uuid),
    Time(DateTime<Utc>),
    Bytes(Vec<u8>),
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::I64(v.into())
    }
}
impl From<u8> for Value {
    fn from(v: u8) -> Self {
        Value::I64(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Uuid(v)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Time(v)
    }
}
impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        Value::Json(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row. Getters convert from whatever the backend returned and fail with a
/// decode error (a bug, never user input) when the column holds something else.
#[derive(Debug, Clone, Default)]
pub struct Row(pub Vec<Value>);

fn decode(i: usize, want: &str, got: &Value) -> StoreError {
    StoreError::Database(format!("column {i}: expected {want}, found {got:?}"))
}

impl Row {
    fn at(&self, i: usize) -> Result<&Value, StoreError> {
        self.0.get(i).ok_or_else(|| StoreError::Database(format!("row has no column {i}")))
    }

    pub fn is_null(&self, i: usize) -> bool {
        matches!(self.0.get(i), Some(Value::Null) | None)
    }

    pub fn uuid(&self, i: usize) -> Result<Uuid, StoreError> {
        match self.at(i)? {
            Value::Uuid(u) => Ok(*u),
            Value::Bytes(b) => Uuid::from_slice(b).map_err(|_| decode(i, "uuid", &Value::Bytes(b.clone()))),
            Value::Text(s) => Uuid::parse_str(s).map_err(|_| decode(i, "uuid", &Value::Text(s.clone()))),
            v => Err(decode(i, "uuid", v)),
        }
    }

    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.at(i)? {
            Value::Bytes(b) => Ok(b.clone()),
            v => Err(decode(i, "bytes", v)),
        }
    }

    pub fn opt_uuid(&self, i: usize) -> Result<Option<Uuid>, StoreError> {
        if self.is_null(i) { Ok(None) } else { self.uuid(i).map(Some) }
    }

    pub fn string(&self, i: usize) -> Result<String, StoreError> {
        match self.at(i)? {
            Value::Text(s) => Ok(s.clone()),
            v => Err(decode(i, "text", v)),
        }
    }

    pub fn opt_string(&self, i: usize) -> Result<Option<String>, StoreError> {
        if self.is_null(i) { Ok(None) } else { self.string(i).map(Some) }
    }

    pub fn i64(&self, i: usize) -> Result<i64, StoreError> {
        match self.at(i)? {
            Value::I64(v) => Ok(*v),
            Value::Bool(b) => Ok(i64::from(*b)),
            v => Err(decode(i, "integer", v)),
        }
    }

    pub fn opt_i64(&self, i: usize) -> Result<Option<i64>, StoreError> {
        if self.is_null(i) { Ok(None) } else { self.i64(i).map(Some) }
    }

    pub fn f64(&self, i: usize) -> Result<f64, StoreError> {
        match self.at(i)? {
            Value::F64(v) => Ok(*v),
            Value::I64(v) => Ok(*v as f64),
            v => Err(decode(i, "number", v)),
        }
    }

    pub fn bool(&self, i: usize) -> Result<bool, StoreError> {
        match self.at(i)? {
            Value::Bool(b) => Ok(*b),
            Value::I64(v) => Ok(*v != 0),
            v => Err(decode(i, "boolean", v)),
        }
    }

    pub fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError> {
        match self.at(i)? {
            Value::Time(t) => Ok(*t),
            Value::I64(us) => DateTime::from_timestamp_micros(*us).ok_or_else(|| decode(i, "time", &Value::I64(*us))),
            v => Err(decode(i, "time", v)),
        }
    }

    pub fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
        if self.is_null(i) { Ok(None) } else { self.time(i).map(Some) }
    }

    pub fn json(&self, i: usize) -> Result<serde_json::Value, StoreError> {
        match self.at(i)? {
            Value::Json(j) => Ok(j.clone()),
            Value::Text(s) => serde_json::from_str(s).map_err(|e| StoreError::Database(format!("column {i}: bad JSON: {e}"))),
            Value::Null => Ok(serde_json::Value::Null),
            v => Err(decode(i, "json", v)),
        }
    }
}
