//! Cursor pagination shared by every list: keyset pages over `(sort expression, id)`, so a
//! page costs the same at row 10 and row 1,000,000, and inserts never shift what a client sees.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;
use crate::value::{Row, Value};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// What a client asks of a list.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// A sort field name, `-` in front for descending, e.g. `-created_at`.
    pub sort: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { data: self.data.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortKind {
    Text,
    Time,
}

/// A field a list can be sorted by: its API name and the SQL expression behind it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SortField {
    pub name: &'static str,
    pub expr: &'static str,
    pub kind: SortKind,
}

#[derive(Serialize, Deserialize)]
struct CursorData {
    /// sort field and direction, e.g. `-created_at`
    s: String,
    /// last sort value (text, or microseconds for times)
    v: serde_json::Value,
    /// last id
    i: Uuid,
}

/// A SELECT being assembled: conditions, parameters, and the page to fetch.
pub(crate) struct ListQuery {
    conditions: Vec<String>,
    pub params: Vec<Value>,
    sort: SortField,
    desc: bool,
    sort_spec: String,
    limit: u32,
    id_expr: &'static str,
}

impl ListQuery {
    /// Validates the page request against the fields this list can sort by.
    pub fn new(req: &PageRequest, fields: &[SortField], default_sort: &str, id_expr: &'static str) -> Result<Self, StoreError> {
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(StoreError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let spec = req.sort.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or(default_sort);
        let (desc, name) = match spec.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, spec.strip_prefix('+').unwrap_or(spec)),
        };
        let sort = *fields.iter().find(|f| f.name == name).ok_or_else(|| {
            let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
            StoreError::invalid(
                "sort",
                format!("cannot sort by '{name}'; use one of {} (prefix - for descending)", names.join(", ")),
            )
        })?;
        let mut q = Self {
            conditions: Vec::new(),
            params: Vec::new(),
            sort,
            desc,
            sort_spec: format!("{}{}", if desc { "-" } else { "" }, name),
            limit,
            id_expr,
        };
        if let Some(c) = req.cursor.as_deref().filter(|c| !c.is_empty()) {
            q.apply_cursor(c)?;
        }
        Ok(q)
    }

    /// Adds a bound parameter and returns its placeholder.
    pub fn param(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("${}", self.params.len())
    }

    pub fn condition(&mut self, sql: String) {
        self.conditions.push(sql);
    }

    fn apply_cursor(&mut self, raw: &str) -> Result<(), StoreError> {
        let bad = || StoreError::invalid("cursor", "is not a cursor from this list; start again without it");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        let c: CursorData = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if c.s != self.sort_spec {
            return Err(StoreError::invalid("cursor", format!("belongs to sort '{}', not '{}'", c.s, self.sort_spec)));
        }
        let v = match (self.sort.kind, &c.v) {
            (SortKind::Text, serde_json::Value::String(s)) => Value::Text(s.clone()),
            (SortKind::Time, serde_json::Value::Number(n)) => {
                let us = n.as_i64().ok_or_else(bad)?;
                Value::Time(chrono::DateTime::from_timestamp_micros(us).ok_or_else(bad)?)
            }
            _ => return Err(bad()),
        };
        let op = if self.desc { "<" } else { ">" };
        let pv = self.param(v);
        let pid = self.param(c.i);
        let expr = self.sort.expr;
        let id = self.id_expr;
        self.condition(format!("({expr} {op} {pv} OR ({expr} = {pv} AND {id} {op} {pid}))"));
        Ok(())
    }

    /// `WHERE … ORDER BY … LIMIT n+1` with the sort value as the last selected column:
    /// `select` must be `SELECT cols` (without FROM), `from` the FROM clause with joins.
    pub fn sql(&self, select: &str, from: &str) -> String {
        let dir = if self.desc { "DESC" } else { "ASC" };
        let mut s = format!("{select}, {} AS sort_value {from}", self.sort.expr);
        if !self.conditions.is_empty() {
            s.push_str(" WHERE ");
            s.push_str(&self.conditions.join(" AND "));
        }
        s.push_str(&format!(" ORDER BY {} {dir}, {} {dir} LIMIT {}", self.sort.expr, self.id_expr, self.limit + 1));
        s
    }

    /// Turns fetched rows into a page; `id_of` reads a row's id, `map` builds the item.
    pub fn page<T>(
        &self,
        mut rows: Vec<Row>,
        id_of: impl Fn(&Row) -> Result<Uuid, StoreError>,
        mut map: impl FnMut(Row) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => {
                let sort_col = last.0.len() - 1;
                let v = match self.sort.kind {
                    SortKind::Text => serde_json::Value::String(last.string(sort_col)?),
                    SortKind::Time => serde_json::Value::from(last.time(sort_col)?.timestamp_micros()),
                };
                let data = CursorData { s: self.sort_spec.clone(), v, i: id_of(last)? };
                Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&data).map_err(|e| StoreError::Database(e.to_string()))?))
            }
            _ => None,
        };
        let data = rows.into_iter().map(&mut map).collect::<Result<Vec<T>, StoreError>>()?;
        Ok(Page { data, next_cursor })
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `%needle%` for a case-insensitive substring match against lower-cased columns.
pub(crate) fn contains_pattern(needle: &str) -> String {
    format!("%{}%", like_escape(&needle.trim().to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: [SortField; 2] = [
        SortField { name: "name", expr: "c.name_key", kind: SortKind::Text },
        SortField { name: "created_at", expr: "c.created_at", kind: SortKind::Time },
    ];

    #[test]
    fn rejects_bad_limits_sorts_and_cursors() {
        let q = |limit, sort: &str, cursor: &str| {
            ListQuery::new(&PageRequest { limit, sort: Some(sort.into()), cursor: Some(cursor.into()) }, &FIELDS, "name", "c.id")
        };
        assert!(matches!(q(Some(0), "name", ""), Err(StoreError::Invalid(e)) if e.errors[0].field == "limit"));
        assert!(matches!(q(Some(501), "name", ""), Err(StoreError::Invalid(_))));
        assert!(matches!(q(None, "shoe", ""), Err(StoreError::Invalid(e)) if e.errors[0].field == "sort"));
        assert!(matches!(q(None, "name", "garbage!"), Err(StoreError::Invalid(e)) if e.errors[0].field == "cursor"));
        let ok = q(Some(10), "-created_at", "").unwrap();
        assert!(ok.sql("SELECT c.id", "FROM contacts c").ends_with("ORDER BY c.created_at DESC, c.id DESC LIMIT 11"));
    }

    #[test]
    fn cursor_round_trip_adds_keyset_condition() {
        let q = ListQuery::new(&PageRequest { limit: Some(1), ..Default::default() }, &FIELDS, "name", "c.id").unwrap();
        let id = Uuid::now_v7();
        let rows =
            vec![Row(vec![Value::Uuid(id), Value::Text("ana".into())]), Row(vec![Value::Uuid(id), Value::Text("bo".into())])];
        let page = q.page(rows, |r| r.uuid(0), |r| r.string(1)).unwrap();
        assert_eq!(page.data, ["ana"]);
        let cursor = page.next_cursor.unwrap();
        let next =
            ListQuery::new(&PageRequest { cursor: Some(cursor.clone()), ..Default::default() }, &FIELDS, "name", "c.id").unwrap();
        assert!(next.sql("SELECT c.id", "FROM contacts c").contains("(c.name_key > $1 OR (c.name_key = $1 AND c.id > $2))"));
        let wrong_sort = ListQuery::new(
            &PageRequest { cursor: Some(cursor), sort: Some("-name".into()), ..Default::default() },
            &FIELDS,
            "name",
            "c.id",
        );
        assert!(wrong_sort.is_err());
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(contains_pattern(" 50%_Off "), "%50\\%\\_off%");
    }
}
