//! Pieces several repositories share.

use rapport_core::custom_field::{Catalogue, RecordType};
use rapport_core::tag::TagName;
use rapport_core::{Birthday, Timestamp, new_id};
use uuid::Uuid;

use serde::de::DeserializeOwned;

use crate::db::Tx;

use crate::value::{Row, Value};
use crate::{StoreError, custom_fields};

/// Fails with a field error when `owner_id` names no user.
pub(crate) fn check_user(tx: &mut dyn Tx, id: Option<Uuid>, field: &str) -> Result<(), StoreError> {
    if let Some(id) = id
        && !tx.exists("SELECT 1 FROM users WHERE id = $1", &[id.into()])?
    {
        return Err(StoreError::invalid(field, format!("no user has id {id}")));
    }
    Ok(())
}

/// Fails with a field error when `id` names no row of `table`.
pub(crate) fn check_exists(tx: &mut dyn Tx, table: &str, id: Uuid, field: &str, what: &str) -> Result<(), StoreError> {
    if !tx.exists(&format!("SELECT 1 FROM {table} WHERE id = $1"), &[id.into()])? {
        return Err(StoreError::invalid(field, format!("no {what} has id {id}")));
    }
    Ok(())
}

/// The catalogue of one record type, read inside the write transaction so that validation
/// and the write see the same definitions.
pub(crate) fn catalogue(tx: &mut dyn Tx, record_type: RecordType) -> Result<Catalogue, StoreError> {
    Ok(Catalogue::new(custom_fields::load_all(tx, Some(record_type))?))
}

/// The ids of `names`, creating tags that do not exist yet.
pub(crate) fn resolve_tags(tx: &mut dyn Tx, names: &[TagName], now: Timestamp) -> Result<Vec<Uuid>, StoreError> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let key = name.key();
        let id = match tx.query_opt("SELECT id FROM tags WHERE name_key = $1", &[key.clone().into()])? {
            Some(r) => r.uuid(0)?,
            None => {
                // Another transaction may be creating the same tag right now (two instances, or
                // a workflow and a person): the insert then waits for it and yields to it.
                tx.execute(
                    "INSERT INTO tags (id, name, name_key, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name_key) DO NOTHING",
                    &[new_id().into(), name.as_str().into(), key.clone().into(), now.into()],
                )?;
                tx.query_one("SELECT id FROM tags WHERE name_key = $1", &[key.into()])?.uuid(0)?
            }
        };
        ids.push(id);
    }
    Ok(ids)
}

pub(crate) fn birthday_values(b: Option<Birthday>) -> [Value; 3] {
    match b {
        Some(b) => [Value::I64(b.month.into()), Value::I64(b.day.into()), b.year.map_or(Value::Null, |y| Value::I64(y.into()))],
        None => [Value::Null, Value::Null, Value::Null],
    }
}

pub(crate) fn birthday_at(r: &Row, month_col: usize) -> Result<Option<Birthday>, StoreError> {
    let (Some(month), Some(day)) = (r.opt_i64(month_col)?, r.opt_i64(month_col + 1)?) else { return Ok(None) };
    let year = r.opt_i64(month_col + 2)?;
    Ok(Some(Birthday { month: month as u8, day: day as u8, year: year.map(|y| y as i32) }))
}

pub(crate) fn string_list(v: serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(items) => items.into_iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// Decodes a JSON column straight into `T`: from text (SQLite) without building a value tree
/// first, or from the driver's JSON value (PostgreSQL).
pub(crate) fn decode_json<T: DeserializeOwned + Default>(r: &Row, i: usize) -> Result<T, StoreError> {
    let bad = |e: serde_json::Error| StoreError::Database(format!("column {i}: bad JSON: {e}"));
    match r.0.get(i) {
        Some(Value::Text(s)) => serde_json::from_str(s).map_err(bad),
        Some(Value::Json(j)) => T::deserialize(j).map_err(bad),
        Some(Value::Null) | None => Ok(T::default()),
        Some(other) => Err(StoreError::Database(format!("column {i}: expected JSON, found {other:?}"))),
    }
}
