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

    /// The larger of two nullable values (NULL only when both are).
    pub fn greatest(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Sqlite => format!("max(coalesce({a}, {b}), coalesce({b}, {a}))"),
            Dialect::Postgres => format!("GREATEST({a}, {b})"),
        }
    }

    /// `FOR UPDATE` where rows can be locked (PostgreSQL); SQLite has one writer and needs none.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// Most parameters one statement binds (SQLite allows 32766, PostgreSQL 65535).
const MAX_PARAMS: usize = 30_000;
/// Most rows one multi-row statement carries.
const MAX_ROWS: usize = 256;

/// Splits `n` rows into statement sizes: full statements of the largest power of two that
/// fits, then the remainder in powers of two. Statements are prepared and cached by their
/// text, so only a handful of shapes ever exist, whatever the batch sizes.
fn statement_sizes(n: usize, max_rows: usize) -> impl Iterator<Item = usize> {
    let full = if max_rows == 0 { 1 } else { 1 << max_rows.ilog2() };
    let mut left = n;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = if left >= full { full } else { 1 << left.ilog2() };
        left -= size;
        Some(size)
    })
}

/// Runs `head VALUES (…), (…) tail` for `values`, a flat list with `cols` values per row, a few
/// hundred rows per statement: one round trip per few hundred rows instead of one per row.
/// Returns what a `RETURNING` tail gives back.
pub fn insert_many(tx: &mut dyn Tx, head: &str, cols: usize, values: &[Value], tail: &str) -> Result<Vec<Row>, StoreError> {
    debug_assert!(cols > 0 && values.len().is_multiple_of(cols));
    let returning = tail.contains("RETURNING");
    let mut out = Vec::new();
    let mut at = 0;
    for rows in statement_sizes(values.len() / cols, (MAX_PARAMS / cols).min(MAX_ROWS)) {
        let chunk = &values[at..at + rows * cols];
        at += rows * cols;
        let sql = values_sql(tx.dialect(), head, cols, rows, tail, &[]);
        if returning {
            out.extend(tx.query(&sql, chunk)?);
        } else {
            tx.execute(&sql, chunk)?;
        }
    }
    Ok(out)
}

/// Updates rows of `table` from a flat list of values, a few hundred rows per statement
/// (`WITH v (…) AS (VALUES …) UPDATE … FROM v`). `columns` names the key first, then the columns
/// to set, each with its PostgreSQL type: parameters in a list of values have none otherwise.
pub fn update_many(tx: &mut dyn Tx, table: &str, columns: &[(&str, &str)], values: &[Value]) -> Result<(), StoreError> {
    let cols = columns.len();
    debug_assert!(cols > 1 && values.len().is_multiple_of(cols));
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    let types: Vec<&str> = columns.iter().map(|(_, t)| *t).collect();
    let key = names[0];
    let sets: Vec<String> = names[1..].iter().map(|c| format!("{c} = v.{c}")).collect();
    let head = format!("WITH v ({}) AS (", names.join(", "));
    let tail = format!(") UPDATE {table} SET {} FROM v WHERE {table}.{key} = v.{key}", sets.join(", "));
    let mut at = 0;
    for rows in statement_sizes(values.len() / cols, (MAX_PARAMS / cols).min(MAX_ROWS)) {
        let chunk = &values[at..at + rows * cols];
        at += rows * cols;
        tx.execute(&values_sql(tx.dialect(), &head, cols, rows, &tail, &types), chunk)?;
    }
    Ok(())
}

fn placeholder(d: Dialect, sql: &mut String, n: usize) {
    use std::fmt::Write;
    let _ = match d {
        Dialect::Sqlite => write!(sql, "?{n}"),
        Dialect::Postgres => write!(sql, "${n}"),
    };
}

/// `head VALUES (…), (…) tail`; on PostgreSQL each parameter is cast to its column's entry of
/// `types`, when given.
fn values_sql(d: Dialect, head: &str, cols: usize, rows: usize, tail: &str, types: &[&str]) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 7 + 16);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    let mut n = 1;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            placeholder(d, &mut sql, n);
            if let (Dialect::Postgres, Some(t)) = (d, types.get(c)) {
                sql.push_str("::");
                sql.push_str(t);
            }
            n += 1;
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// Runs `SELECT … WHERE column IN (…)` over `keys` in chunks; `sql` holds one `{in}` where the
/// list goes, and `extra` parameters come first (`$1…`).
pub fn select_in(tx: &mut dyn Tx, sql: &str, extra: &[Value], keys: &[Value]) -> Result<Vec<Row>, StoreError> {
    let mut out = Vec::new();
    let mut at = 0;
    let d = tx.dialect();
    for n in statement_sizes(keys.len(), 512) {
        let chunk = &keys[at..at + n];
        at += n;
        let mut list = String::with_capacity(n * 6);
        for i in 0..n {
            if i > 0 {
                list.push_str(", ");
            }
            placeholder(d, &mut list, extra.len() + i + 1);
        }
        let mut params = Vec::with_capacity(extra.len() + n);
        params.extend_from_slice(extra);
        params.extend_from_slice(chunk);
        out.extend(tx.query(&sql.replace("{in}", &list), &params)?);
    }
    Ok(out)
}

/// Marks contacts in a work queue table (`segment_dirty`, `automation_dirty`: `contact_id`
/// primary key, `marked_at`), in sorted order so that concurrent writers lock alike.
/// DO UPDATE (not DO NOTHING) so that on PostgreSQL a mark made while a worker holds the row
/// waits for it and lands after its delete, instead of being swallowed by it.
pub(crate) fn mark_queue(
    tx: &mut dyn Tx,
    table: &str,
    ids: &[uuid::Uuid],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut values = Vec::with_capacity(sorted.len() * 2);
    for id in sorted {
        values.push(Value::Uuid(id));
        values.push(Value::Time(now));
    }
    insert_many(
        tx,
        &format!("INSERT INTO {table} (contact_id, marked_at)"),
        2,
        &values,
        "ON CONFLICT (contact_id) DO UPDATE SET marked_at = excluded.marked_at",
    )?;
    Ok(())
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
pub fn sqlite_placeholders(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains('$') {
        return std::borrow::Cow::Borrowed(sql);
    }
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
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_come_in_few_shapes() {
        assert_eq!(statement_sizes(0, 256).count(), 0);
        assert_eq!(statement_sizes(1000, 256).collect::<Vec<_>>(), vec![256, 256, 256, 128, 64, 32, 8]);
        assert_eq!(statement_sizes(5, 300).collect::<Vec<_>>(), vec![4, 1]);
        assert_eq!(statement_sizes(600, 300).collect::<Vec<_>>(), vec![256, 256, 64, 16, 8]);
    }

    #[test]
    fn placeholders_outside_strings_only() {
        assert_eq!(sqlite_placeholders("SELECT $1, '$2', $10 WHERE x = '$.a'"), "SELECT ?1, '$2', ?10 WHERE x = '$.a'");
    }
}
