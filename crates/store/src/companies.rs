//! Companies, with tags in a join table and custom fields checked against the catalogue.

use std::sync::OnceLock;

use rapport_core::company::{Company, CompanyDraft, CompanyInput, CompanyPatch};
use rapport_core::custom_field::RecordType;
use rapport_core::new_id;
use uuid::Uuid;

use crate::common::{catalogue, check_user, decode_json, resolve_tags, string_list};
use crate::db::{Dialect, Tx};
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind, contains_pattern};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct CompanyFilter {
    /// Part of the name or domain.
    pub q: Option<String>,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub tag: Option<String>,
    pub owner_id: Option<Uuid>,
}

const SORTS: &[SortField] = &[
    SortField { name: "name", expr: "co.name_key", kind: SortKind::Text },
    SortField { name: "created_at", expr: "co.created_at", kind: SortKind::Time },
    SortField { name: "updated_at", expr: "co.updated_at", kind: SortKind::Time },
];

fn select(d: Dialect) -> &'static str {
    static SQLITE: OnceLock<String> = OnceLock::new();
    static POSTGRES: OnceLock<String> = OnceLock::new();
    let cell = match d {
        Dialect::Sqlite => &SQLITE,
        Dialect::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| {
        let tags = d.json_agg(&[("", "t.name")], "t.name_key");
        format!(
            "SELECT co.id, co.name, co.domain, co.industry, co.size, co.owner_id, co.custom_fields, co.created_at, co.updated_at, \
             (SELECT {tags} FROM company_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.company_id = co.id)"
        )
    })
}

fn map_row(r: Row) -> Result<Company> {
    Ok(Company {
        id: r.uuid(0)?,
        name: r.string(1)?,
        domain: r.opt_string(2)?,
        industry: r.opt_string(3)?,
        size: r.opt_string(4)?,
        owner_id: r.opt_uuid(5)?,
        custom_fields: decode_json(&r, 6)?,
        created_at: r.time(7)?,
        updated_at: r.time(8)?,
        tags: string_list(r.json(9)?),
    })
}

pub(crate) fn load(tx: &mut dyn Tx, id: Uuid) -> Result<Company> {
    let sql = format!("{} FROM companies co WHERE co.id = $1", select(tx.dialect()));
    map_row(tx.query_opt(&sql, &[id.into()])?.ok_or_else(|| StoreError::not_found("company", id))?)
}

fn prepare(tx: &mut dyn Tx, store: &Store, draft: CompanyDraft) -> Result<CompanyInput> {
    let mut input = CompanyInput::parse(draft)?;
    check_user(tx, input.owner_id, "owner_id")?;
    input.custom_fields =
        catalogue(tx, RecordType::Company)?.validate(std::mem::take(&mut input.custom_fields), store.options().phone_region)?;
    Ok(input)
}

fn write_tags(tx: &mut dyn Tx, id: Uuid, input: &CompanyInput, store: &Store) -> Result<()> {
    tx.execute("DELETE FROM company_tags WHERE company_id = $1", &[id.into()])?;
    for tag_id in resolve_tags(tx, &input.tags, store.now())? {
        tx.execute("INSERT INTO company_tags (company_id, tag_id) VALUES ($1, $2)", &[id.into(), tag_id.into()])?;
    }
    Ok(())
}

fn values(input: &CompanyInput) -> Vec<Value> {
    vec![
        input.name.as_str().into(),
        input.name.to_lowercase().into(),
        input.domain.clone().into(),
        input.industry.clone().into(),
        input.size.clone().into(),
        input.owner_id.into(),
        Value::Json(serde_json::Value::Object(input.custom_fields.clone())),
    ]
}

pub(crate) fn insert(tx: &mut dyn Tx, store: &Store, draft: CompanyDraft) -> Result<Company> {
    let input = prepare(tx, store, draft)?;
    let id = new_id();
    let now = store.now();
    let mut params = vec![Value::Uuid(id)];
    params.extend(values(&input));
    params.push(now.into());
    params.push(now.into());
    tx.execute(
        "INSERT INTO companies (id, name, name_key, domain, industry, size, owner_id, custom_fields, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &params,
    )?;
    write_tags(tx, id, &input, store)?;
    load(tx, id)
}

impl Store {
    pub async fn create_company(&self, draft: CompanyDraft, idem: Option<IdempotencyKey>) -> Result<Created<Company>> {
        let store = self.clone();
        self.create_once(idem, move |tx| insert(tx, &store, draft)).await
    }

    pub async fn get_company(&self, id: Uuid) -> Result<Company> {
        self.read_point(move |tx| load(tx, id)).await
    }

    pub async fn update_company(&self, id: Uuid, patch: CompanyPatch) -> Result<Company> {
        let store = self.clone();
        self.write(move |tx| {
            let current = load(tx, id)?;
            let input = prepare(tx, &store, patch.apply(&current))?;
            let mut params = vec![Value::Uuid(id)];
            params.extend(values(&input));
            params.push(store.now().into());
            tx.execute(
                "UPDATE companies SET name = $2, name_key = $3, domain = $4, industry = $5, size = $6, owner_id = $7, \
                 custom_fields = $8, updated_at = $9 WHERE id = $1",
                &params,
            )?;
            write_tags(tx, id, &input, &store)?;
            // Company fields and tags are part of their people's filters.
            crate::segments::mark_dirty_where(
                tx,
                "SELECT contact_id FROM contact_companies WHERE company_id = $1",
                &[id.into()],
                store.now(),
            )?;
            load(tx, id)
        })
        .await
    }

    pub async fn delete_company(&self, id: Uuid) -> Result<()> {
        let now = self.now();
        self.write(move |tx| {
            crate::segments::mark_dirty_where(
                tx,
                "SELECT contact_id FROM contact_companies WHERE company_id = $1",
                &[id.into()],
                now,
            )?;
            match tx.execute("DELETE FROM companies WHERE id = $1", &[id.into()])? {
                0 => Err(StoreError::not_found("company", id)),
                _ => Ok(()),
            }
        })
        .await
    }

    pub async fn list_companies(&self, filter: CompanyFilter, page: PageRequest) -> Result<Page<Company>> {
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "name", "co.id")?;
            if let Some(text) = filter.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                let p = q.param(contains_pattern(text));
                q.condition(format!("(co.name_key LIKE {p} ESCAPE '\\' OR co.domain LIKE {p} ESCAPE '\\')"));
            }
            if let Some(domain) = filter.domain {
                let p = q.param(domain.trim().to_lowercase());
                q.condition(format!("co.domain = {p}"));
            }
            if let Some(industry) = filter.industry {
                let p = q.param(industry.trim().to_lowercase());
                q.condition(format!("lower(co.industry) = {p}"));
            }
            if let Some(tag) = filter.tag {
                let p = q.param(tag.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase());
                q.condition(format!(
                    "EXISTS (SELECT 1 FROM company_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.company_id = co.id AND t.name_key = {p})"
                ));
            }
            if let Some(owner) = filter.owner_id {
                let p = q.param(owner);
                q.condition(format!("co.owner_id = {p}"));
            }
            let sql = q.sql(select(tx.dialect()), "FROM companies co");
            let rows = tx.query(&sql, &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }
}
