//! The seam between repositories and drivers: a transaction that runs SQL with [`Value`]s.

use crate::StoreError;
use crate::value::{Row, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `json_group_array` / `json_agg` of objects built from `(key, expression)` pairs, or of a
    /// bare expression when `fields` has one entry with an empty key; `'[]'` when no rows.
    pub fn json_agg(self, fields: &[(&str, &str)], order_by: &str) -> String {
        let item = if fields.len() == 1 && fields[0].0.is_empty() {
            fields[0].1.to_string()
        } else {
            let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("'{k}', {v}")).collect();
            match self {
                Dialect::Sqlite => format!("json_object({})", pairs.join(", ")),
                Dialect::Postgres => format!("json_build_object({})", pairs.join(", ")),
            }
        };
        match self {
            Dialect::Sqlite => format!("json_group_array({item} ORDER BY {order_by})"),
            Dialect::Postgres => format!("COALESCE(json_agg({item} ORDER BY {order_by}), '[]'::json)"),
        }
    }

    /// An expression that removes `key_param` (a bound text parameter) from a JSON object column.
    pub fn json_remove_key(self, column: &str, key_param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_remove({column}, '$.\"' || {key_param} || '\"')"),
            Dialect::Postgres => format!("{column} - {key_param}::text"),
        }
    }
}

/// One open transaction (or, for reads, a connection). SQL uses `$1, $2, …` placeholders in
/// both dialects; the SQLite backend rewrites them to `?1, ?2, …`.
pub trait Tx {
    fn dialect(&self) -> Dialect;
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Runs several statements without parameters (migrations).
    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError>;
}

impl dyn Tx + '_ {
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    pub fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, StoreError> {
        self.query_opt(sql, params)?.ok_or_else(|| StoreError::Database(format!("expected a row from: {sql}")))
    }

    pub fn exists(&mut self, sql: &str, params: &[Value]) -> Result<bool, StoreError> {
        Ok(self.query_opt(sql, params)?.is_some())
    }
}

/// Rewrites `$n` placeholders to SQLite's `?n`, leaving string literals alone. Runs on every
/// statement, so it works on bytes and copies untouched runs whole.
pub fn sqlite_placeholders(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut in_str = false;
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' => in_str = !in_str,
            b'$' if !in_str && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(&sql[run_start..i]);
                out.push('?');
                run_start = i + 1;
            }
            _ => {}
        }
    }
    out.push_str(&sql[run_start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_outside_strings_only() {
        assert_eq!(sqlite_placeholders("SELECT $1, '$2', $10 WHERE x = '$.a'"), "SELECT ?1, '$2', ?10 WHERE x = '$.a'");
    }
}
