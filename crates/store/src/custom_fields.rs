//! The custom field catalogue. Deleting a definition also removes its values from every
//! record, so no record is left holding a field that no longer validates.

use rapport_core::custom_field::{
    CustomFieldDefinition, CustomFieldDraft, CustomFieldPatch, CustomFieldSpec, FieldKind, RecordType,
};
use rapport_core::new_id;
use uuid::Uuid;

use crate::common::string_list;
use crate::db::{Dialect, Tx};
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError};

const SORTS: &[SortField] = &[
    SortField { name: "key", expr: "f.key", kind: SortKind::Text },
    SortField { name: "created_at", expr: "f.created_at", kind: SortKind::Time },
];
const SELECT: &str =
    "SELECT f.id, f.record_type, f.key, f.label, f.kind, f.required, f.options, f.description, f.created_at, f.updated_at";

fn map_row(r: Row) -> Result<CustomFieldDefinition> {
    let rt = r.string(1)?;
    let kind = r.string(4)?;
    Ok(CustomFieldDefinition {
        id: r.uuid(0)?,
        record_type: RecordType::parse(&rt).ok_or_else(|| StoreError::Database(format!("unknown record type {rt}")))?,
        key: r.string(2)?,
        label: r.string(3)?,
        kind: FieldKind::parse(&kind).ok_or_else(|| StoreError::Database(format!("unknown field kind {kind}")))?,
        required: r.bool(5)?,
        options: string_list(r.json(6)?),
        description: r.opt_string(7)?,
        created_at: r.time(8)?,
        updated_at: r.time(9)?,
    })
}

/// Every definition (of one record type, when given), in key order.
pub(crate) fn load_all(tx: &mut dyn Tx, record_type: Option<RecordType>) -> Result<Vec<CustomFieldDefinition>> {
    let rows = match record_type {
        Some(rt) => tx.query(
            &format!("{SELECT} FROM custom_field_definitions f WHERE f.record_type = $1 ORDER BY f.key"),
            &[rt.as_str().into()],
        )?,
        None => tx.query(&format!("{SELECT} FROM custom_field_definitions f ORDER BY f.record_type, f.key"), &[])?,
    };
    rows.into_iter().map(map_row).collect()
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<CustomFieldDefinition> {
    map_row(
        tx.query_opt(&format!("{SELECT} FROM custom_field_definitions f WHERE f.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("custom field", id))?,
    )
}

fn table_of(rt: RecordType) -> &'static str {
    match rt {
        RecordType::Contact => "contacts",
        RecordType::Company => "companies",
    }
}

/// The name of a field's index: from its id, because keys can be longer than PostgreSQL's
/// 63-character identifiers.
fn index_name(def: &CustomFieldDefinition) -> String {
    format!("custom_field_{}", def.id.simple())
}

/// The name of a field's second index on SQLite, by record id (see [`ensure_index`]).
fn by_id_index_name(def: &CustomFieldDefinition) -> String {
    format!("custom_field_{}_by_id", def.id.simple())
}

/// Indexes the field's values (only the records that hold one), so segment conditions on it
/// (`custom.fleet_size >= 3`, `custom.renewal_date within next 30d`) seek instead of reading
/// every record. Kinds without a single comparable value (money, yes/no, multi-choice) get none.
///
/// On SQLite the field also gets an index by record id holding the value: when another
/// condition picks the people (a tier, an event) and the field only narrows them, each person's
/// value is then read from that small index instead of their whole record, with its JSON parsed
/// (a five-condition count over a million people: 82.8 → 77.5 ms, docs/benchmarks.md). About
/// 25 bytes per record. PostgreSQL would not answer from it (an index-only scan cannot return
/// an expression), so it has only the first.
pub(crate) fn ensure_index(tx: &mut dyn Tx, def: &CustomFieldDefinition) -> Result<()> {
    let Some(expr) = crate::segments::custom_value_expr(tx.dialect(), "custom_fields", &def.key, def.kind) else {
        return Ok(());
    };
    let (name, table) = (index_name(def), table_of(def.record_type));
    tx.execute_batch(&format!("CREATE INDEX IF NOT EXISTS {name} ON {table} (({expr})) WHERE {expr} IS NOT NULL"))?;
    if tx.dialect() == Dialect::Sqlite {
        tx.execute_batch(&format!("CREATE INDEX IF NOT EXISTS {} ON {table} (id, ({expr}))", by_id_index_name(def)))?;
    }
    Ok(())
}

fn drop_index(tx: &mut dyn Tx, def: &CustomFieldDefinition) -> Result<()> {
    tx.execute_batch(&format!("DROP INDEX IF EXISTS {}", index_name(def)))?;
    tx.execute_batch(&format!("DROP INDEX IF EXISTS {}", by_id_index_name(def)))
}

/// Creates the index of every defined field that lacks one (databases from before field
/// indexes, or a field created by an older version).
pub(crate) fn ensure_all_indexes(tx: &mut dyn Tx) -> Result<()> {
    for def in load_all(tx, None)? {
        ensure_index(tx, &def)?;
    }
    Ok(())
}

/// A field that becomes required may not leave existing records without a value.
fn check_required_filled(tx: &mut dyn Tx, spec: &CustomFieldSpec) -> Result<()> {
    if !spec.required {
        return Ok(());
    }
    let missing_expr = match tx.dialect() {
        Dialect::Sqlite => "json_extract(custom_fields, '$.\"' || $1 || '\"') IS NULL",
        Dialect::Postgres => "NOT (custom_fields ? $1::text)",
    };
    let n = tx
        .query_one(
            &format!("SELECT COUNT(*) FROM {} WHERE {missing_expr}", table_of(spec.record_type)),
            &[spec.key.as_str().into()],
        )?
        .i64(0)?;
    if n > 0 {
        return Err(StoreError::conflict(
            "required",
            format!(
                "{n} existing {} have no value for '{}'; fill them in before making it required",
                table_of(spec.record_type),
                spec.key
            ),
        ));
    }
    Ok(())
}

/// An option may only be removed while no record holds it; otherwise those records would fail
/// validation on their next, unrelated, change.
fn check_removed_options_unused(tx: &mut dyn Tx, current: &CustomFieldDefinition, spec: &CustomFieldSpec) -> Result<()> {
    let table = table_of(spec.record_type);
    for removed in current.options.iter().filter(|o| !spec.options.contains(o)) {
        let holds = match (tx.dialect(), spec.kind) {
            (Dialect::Sqlite, FieldKind::MultiEnum) => {
                "EXISTS (SELECT 1 FROM json_each(custom_fields, '$.\"' || $1 || '\"') WHERE value = $2)"
            }
            (Dialect::Sqlite, _) => "json_extract(custom_fields, '$.\"' || $1 || '\"') = $2",
            (Dialect::Postgres, FieldKind::MultiEnum) => "(custom_fields -> $1::text) ? $2::text",
            (Dialect::Postgres, _) => "(custom_fields ->> $1::text) = $2::text",
        };
        let n = tx
            .query_one(
                &format!("SELECT COUNT(*) FROM {table} WHERE {holds}"),
                &[spec.key.as_str().into(), removed.as_str().into()],
            )?
            .i64(0)?;
        if n > 0 {
            return Err(StoreError::conflict(
                "options",
                format!("'{removed}' is still set on {n} {table}; change those records before removing the option"),
            ));
        }
    }
    Ok(())
}

impl Store {
    pub async fn create_custom_field(
        &self,
        draft: CustomFieldDraft,
        idem: Option<IdempotencyKey>,
    ) -> Result<Created<CustomFieldDefinition>> {
        let now = self.now();
        self.create_once(idem, move |tx| {
            let spec = CustomFieldSpec::parse(draft)?;
            if tx.exists(
                "SELECT 1 FROM custom_field_definitions WHERE record_type = $1 AND key = $2",
                &[spec.record_type.as_str().into(), spec.key.as_str().into()],
            )? {
                return Err(StoreError::conflict("key", format!("{} already has a custom field '{}'", spec.record_type.as_str(), spec.key)));
            }
            check_required_filled(tx, &spec)?;
            let id = new_id();
            tx.execute(
                "INSERT INTO custom_field_definitions (id, record_type, key, label, kind, required, options, description, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    id.into(),
                    spec.record_type.as_str().into(),
                    spec.key.as_str().into(),
                    spec.label.as_str().into(),
                    spec.kind.as_str().into(),
                    spec.required.into(),
                    Value::Json(serde_json::json!(spec.options)),
                    spec.description.clone().into(),
                    now.into(),
                    now.into(),
                ],
            )?;
            let def = load(tx, id)?;
            ensure_index(tx, &def)?;
            Ok(def)
        })
        .await
    }

    pub async fn get_custom_field(&self, id: Uuid) -> Result<CustomFieldDefinition> {
        self.read_point(move |tx| load(tx, id)).await
    }

    pub async fn update_custom_field(&self, id: Uuid, patch: CustomFieldPatch) -> Result<CustomFieldDefinition> {
        let now = self.now();
        self.write(move |tx| {
            let current = load(tx, id)?;
            let spec = CustomFieldSpec::patched(&current, patch)?;
            if spec.required && !current.required {
                check_required_filled(tx, &spec)?;
            }
            check_removed_options_unused(tx, &current, &spec)?;
            tx.execute(
                "UPDATE custom_field_definitions SET label = $2, required = $3, options = $4, description = $5, updated_at = $6 WHERE id = $1",
                &[id.into(), spec.label.into(), spec.required.into(), Value::Json(serde_json::json!(spec.options)), spec.description.into(), now.into()],
            )?;
            load(tx, id)
        })
        .await
    }

    pub async fn delete_custom_field(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let def = load(tx, id)?;
            drop_index(tx, &def)?;
            let table = table_of(def.record_type);
            let expr = tx.dialect().json_remove_key("custom_fields", "$1");
            tx.execute(&format!("UPDATE {table} SET custom_fields = {expr}"), &[def.key.as_str().into()])?;
            tx.execute("DELETE FROM custom_field_definitions WHERE id = $1", &[id.into()])?;
            Ok(())
        })
        .await
    }

    pub async fn list_custom_fields(
        &self,
        record_type: Option<RecordType>,
        page: PageRequest,
    ) -> Result<Page<CustomFieldDefinition>> {
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "key", "f.id")?;
            if let Some(rt) = record_type {
                let p = q.param(rt.as_str());
                q.condition(format!("f.record_type = {p}"));
            }
            let rows = tx.query(&q.sql(SELECT, "FROM custom_field_definitions f"), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use rapport_core::segment::Filter;

    use super::*;
    use crate::{DatabaseUrl, StoreOptions};

    async fn create(store: &Store, key: &str, kind: FieldKind) -> CustomFieldDefinition {
        match store.create_custom_field(draft(key, kind), None).await.unwrap() {
            Created::New(def) => def,
            Created::Replayed { .. } => unreachable!("no idempotency key was given"),
        }
    }

    fn draft(key: &str, kind: FieldKind) -> CustomFieldDraft {
        CustomFieldDraft {
            record_type: Some(RecordType::Contact),
            key: Some(key.into()),
            label: Some(key.into()),
            kind: Some(kind),
            ..Default::default()
        }
    }

    async fn plan(store: &Store, filter: &str) -> String {
        let filter: Filter = filter.parse().unwrap();
        let (sql, params) = store.preview_count_sql(filter).await.unwrap();
        let rows = store
            .read(move |tx| {
                // EXPLAIN alone does not notice a changed schema; a statement that runs does, and
                // reloads it (with the statistics) first, as the count itself would.
                tx.query("SELECT count(*) FROM contacts", &[])?;
                tx.query(&format!("EXPLAIN QUERY PLAN {sql}"), &params)
            })
            .await
            .unwrap();
        rows.iter().map(|r| r.string(3).unwrap()).collect::<Vec<_>>().join("\n")
    }

    async fn indexes(store: &Store) -> Vec<String> {
        let rows = store
            .read(|tx| tx.query("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'custom_field_%'", &[]))
            .await
            .unwrap();
        rows.iter().map(|r| r.string(0).unwrap()).collect()
    }

    /// Conditions on a custom field seek its index; deleting the field drops the index, and
    /// reopening a database whose index is missing puts it back.
    #[tokio::test]
    async fn field_conditions_use_the_fields_index() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db"));
        let store = Store::open(&url, StoreOptions::default()).unwrap();
        let fleet = create(&store, "fleet_size", FieldKind::Number).await;
        let renewal = create(&store, "renewal_date", FieldKind::Date).await;
        create(&store, "vip", FieldKind::Bool).await;
        let name = |d: &CustomFieldDefinition| format!("custom_field_{}", d.id.simple());
        let by_id = |d: &CustomFieldDefinition| format!("custom_field_{}_by_id", d.id.simple());
        let mut expected = vec![name(&fleet), by_id(&fleet), name(&renewal), by_id(&renewal)];
        expected.sort();
        let mut found = indexes(&store).await;
        found.sort();
        assert_eq!(found, expected, "numbers and dates are indexed, by value and by id; yes/no is not");

        let p = plan(&store, "custom.fleet_size >= 3").await;
        assert!(p.contains(&format!("INDEX {} (", name(&fleet))), "{p}");
        let p = plan(&store, r#"custom.renewal_date < "2027-01-01""#).await;
        assert!(p.contains(&format!("INDEX {} (", name(&renewal))), "{p}");
        // Relative dates depend on each contact's time zone, and still seek.
        let p = plan(&store, "custom.renewal_date within next 30d").await;
        assert!(p.contains(&format!("INDEX {} (", name(&renewal))), "{p}");
        // When a tier picks the people, each one's value comes from the index by id once the
        // planner has statistics, which Rapport refreshes at startup and every hour; the
        // readers, open all along, must see the refreshed ones.
        let drafts = (0..300)
            .map(|i| {
                serde_json::from_value(serde_json::json!({"first_name": format!("P{i}"), "custom_fields": {"fleet_size": i % 7}}))
            })
            .collect::<std::result::Result<Vec<rapport_core::contact::ContactDraft>, _>>()
            .unwrap();
        store.create_contacts(drafts).await.unwrap();
        store.refresh_planner_statistics().await.unwrap();
        let p = plan(&store, r#"value_tier = "gold" and custom.fleet_size >= 3"#).await;
        assert!(p.contains(&format!("COVERING INDEX {} (id=?", by_id(&fleet))), "the readers use the new statistics: {p}");

        let fleet_index = name(&fleet);
        store.write(move |tx| tx.execute_batch(&format!("DROP INDEX {fleet_index}"))).await.unwrap();
        drop(store);
        let store = Store::open(&url, StoreOptions::default()).unwrap();
        assert_eq!(indexes(&store).await.len(), 4, "reopening restores the missing index");

        store.delete_custom_field(fleet.id).await.unwrap();
        let mut left = indexes(&store).await;
        left.sort();
        assert_eq!(left, vec![name(&renewal), by_id(&renewal)]);
    }
}
