//! Contacts: one row each, with emails, phones, external ids and tags in child tables, read
//! back in a single query (child rows aggregated as JSON).

use std::sync::OnceLock;

use rapport_core::contact::{Address, Contact, ContactDraft, ContactEmail, ContactInput, ContactPatch, ContactPhone, ExternalId};
use rapport_core::custom_field::RecordType;
use rapport_core::{EmailAddress, Timestamp, new_id};
use serde::Deserialize;
use uuid::Uuid;

use crate::common::{birthday_at, birthday_values, catalogue, check_user, decode_json, resolve_tags};
use crate::db::{Dialect, Tx};
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind, contains_pattern};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError};

/// Field filters of the contacts list; all given ones must hold.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Part of a name, an email address or a phone number.
    pub q: Option<String>,
    pub email: Option<String>,
    /// A phone number in any format; matched on its digits.
    pub phone: Option<String>,
    pub tag: Option<String>,
    pub owner_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub source: Option<String>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    pub updated_after: Option<Timestamp>,
    /// A segment filter (the same language as segments).
    pub filter: Option<rapport_core::segment::Filter>,
}

pub(crate) const SORTS: &[SortField] = &[
    SortField { name: "display_name", expr: "c.name_key", kind: SortKind::Text },
    SortField { name: "last_name", expr: "lower(coalesce(c.last_name, ''))", kind: SortKind::Text },
    SortField { name: "created_at", expr: "c.created_at", kind: SortKind::Time },
    SortField { name: "updated_at", expr: "c.updated_at", kind: SortKind::Time },
];

/// The same text in both dialects: the child lists come from `contacts.children`.
macro_rules! contact_columns {
    () => {
        "SELECT c.id, c.display_name, c.first_name, c.middle_name, c.last_name, c.title, \
         c.birthday_month, c.birthday_day, c.birthday_year, c.time_zone, c.locale, \
         c.address_street, c.address_street2, c.address_city, c.address_region, c.address_postal_code, c.address_country, \
         c.source, c.owner_id, c.custom_fields, c.created_at, c.updated_at, c.children"
    };
}
pub(crate) const SELECT: &str = contact_columns!();
const SELECT_BY_ID: &str = concat!(contact_columns!(), " FROM contacts c WHERE c.id = $1");

/// SQL that rebuilds `contacts.children` from the child tables for the contacts selected by
/// `which` (a condition on `contacts.id` with its own parameters).
pub(crate) fn refresh_children_sql(d: Dialect, which: &str) -> String {
    let emails = d.json_agg(&[("address", "e.address"), ("label", "e.label"), ("primary", "e.is_primary")], "e.position");
    let phones =
        d.json_agg(&[("number", "p.raw"), ("e164", "p.e164"), ("label", "p.label"), ("primary", "p.is_primary")], "p.position");
    let tags = d.json_agg(&[("", "t.name")], "t.name_key");
    let ext = d.json_agg(&[("source", "x.source"), ("id", "x.external_id")], "x.source");
    let parts = [
        ("emails", format!("SELECT {emails} FROM contact_emails e WHERE e.contact_id = contacts.id")),
        ("phones", format!("SELECT {phones} FROM contact_phones p WHERE p.contact_id = contacts.id")),
        ("tags", format!("SELECT {tags} FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = contacts.id")),
        ("external_ids", format!("SELECT {ext} FROM contact_external_ids x WHERE x.contact_id = contacts.id")),
    ];
    let object = match d {
        // json() keeps each aggregate a JSON value (not a string) inside the object.
        Dialect::Sqlite => {
            let fields: Vec<String> = parts.iter().map(|(k, q)| format!("'{k}', json(({q}))")).collect();
            format!("json_object({})", fields.join(", "))
        }
        Dialect::Postgres => {
            let fields: Vec<String> = parts.iter().map(|(k, q)| format!("'{k}', ({q})")).collect();
            format!("jsonb_build_object({})", fields.join(", "))
        }
    };
    format!("UPDATE contacts SET children = {object} WHERE {which}")
}

fn refresh_one_sql(d: Dialect) -> &'static str {
    static SQLITE: OnceLock<String> = OnceLock::new();
    static POSTGRES: OnceLock<String> = OnceLock::new();
    let cell = match d {
        Dialect::Sqlite => &SQLITE,
        Dialect::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| refresh_children_sql(d, "id = $1"))
}

/// `contacts.children` as written by [`refresh_children_sql`].
#[derive(Deserialize, Default)]
#[serde(default)]
struct Children {
    emails: Vec<EmailRow>,
    phones: Vec<PhoneRow>,
    tags: Vec<String>,
    external_ids: Vec<ExternalIdRow>,
}

#[derive(Deserialize)]
struct ExternalIdRow {
    source: String,
    id: String,
}

#[derive(Deserialize)]
struct EmailRow {
    address: String,
    label: Option<String>,
    primary: Flag,
}

#[derive(Deserialize)]
struct PhoneRow {
    number: String,
    e164: String,
    label: Option<String>,
    primary: Flag,
}

/// A boolean as SQLite's `json_object` writes it (0/1) or as PostgreSQL does (true/false).
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Int(i64),
}

impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        match f {
            Flag::Bool(b) => b,
            Flag::Int(i) => i != 0,
        }
    }
}

pub(crate) fn map_row(r: Row) -> Result<Contact> {
    let address = Address {
        street: r.opt_string(11)?,
        street2: r.opt_string(12)?,
        city: r.opt_string(13)?,
        region: r.opt_string(14)?,
        postal_code: r.opt_string(15)?,
        country: r.opt_string(16)?,
    };
    let children: Children = decode_json(&r, 22)?;
    let emails = children
        .emails
        .into_iter()
        .map(|e| ContactEmail { address: EmailAddress::from_trusted(e.address), label: e.label, primary: e.primary.into() })
        .collect();
    let phones = children
        .phones
        .into_iter()
        .map(|p| ContactPhone { number: p.number, e164: p.e164, label: p.label, primary: p.primary.into() })
        .collect();
    let external_ids = children.external_ids.into_iter().map(|x| ExternalId { source: x.source, id: x.id }).collect();
    let tags = children.tags;
    Ok(Contact {
        id: r.uuid(0)?,
        display_name: r.string(1)?,
        first_name: r.opt_string(2)?,
        middle_name: r.opt_string(3)?,
        last_name: r.opt_string(4)?,
        title: r.opt_string(5)?,
        birthday: birthday_at(&r, 6)?,
        time_zone: r.opt_string(9)?,
        locale: r.opt_string(10)?,
        address: if address == Address::default() { None } else { Some(address) },
        source: r.opt_string(17)?,
        owner_id: r.opt_uuid(18)?,
        custom_fields: decode_json(&r, 19)?,
        created_at: r.time(20)?,
        updated_at: r.time(21)?,
        emails,
        phones,
        tags,
        external_ids,
    })
}

pub(crate) fn load(tx: &mut dyn Tx, id: Uuid) -> Result<Contact> {
    let row = tx.query_opt(SELECT_BY_ID, &[id.into()])?.ok_or_else(|| StoreError::not_found("contact", id))?;
    map_row(row)
}

/// Parses the draft and checks everything that needs the database: the owner exists, the
/// custom fields fit the catalogue, and no other contact has these emails or external ids.
fn prepare(tx: &mut dyn Tx, store: &Store, draft: ContactDraft, id: Uuid) -> Result<ContactInput> {
    let opts = store.options();
    let fields = draft.custom_fields.clone().unwrap_or_default();
    let catalogue = catalogue(tx, RecordType::Contact)?;
    // Report problems with custom fields together with the others, so one answer lists all.
    let mut input = match ContactInput::parse(draft, opts.phone_region, store.now().date_naive()) {
        Ok(i) => i,
        Err(mut errs) => {
            if let Err(more) = catalogue.validate(fields, opts.phone_region) {
                errs.errors.extend(more.errors);
            }
            return Err(errs.into());
        }
    };
    check_user(tx, input.owner_id, "owner_id")?;
    input.custom_fields = catalogue.validate(std::mem::take(&mut input.custom_fields), opts.phone_region)?;
    for (i, e) in input.emails.iter().enumerate() {
        if let Some(r) = tx.query_opt(
            "SELECT contact_id FROM contact_emails WHERE address = $1 AND contact_id <> $2",
            &[e.address.as_str().into(), id.into()],
        )? {
            return Err(StoreError::conflict(
                format!("emails[{i}].address"),
                format!("{} already belongs to contact {}", e.address, r.uuid(0)?),
            ));
        }
    }
    for (i, x) in input.external_ids.iter().enumerate() {
        if let Some(r) = tx.query_opt(
            "SELECT contact_id FROM contact_external_ids WHERE source = $1 AND external_id = $2 AND contact_id <> $3",
            &[x.source.as_str().into(), x.id.as_str().into(), id.into()],
        )? {
            return Err(StoreError::conflict(
                format!("external_ids[{i}].id"),
                format!("{}:{} already belongs to contact {}", x.source, x.id, r.uuid(0)?),
            ));
        }
    }
    Ok(input)
}

fn row_values(id: Uuid, c: &ContactInput) -> Vec<Value> {
    let a = c.address.clone().unwrap_or_default();
    let [bm, bd, by] = birthday_values(c.birthday);
    vec![
        id.into(),
        c.display_name.as_str().into(),
        c.display_name.to_lowercase().into(),
        c.first_name.clone().into(),
        c.middle_name.clone().into(),
        c.last_name.clone().into(),
        c.title.clone().into(),
        bm,
        bd,
        by,
        c.time_zone.clone().into(),
        c.locale.clone().into(),
        a.street.into(),
        a.street2.into(),
        a.city.into(),
        a.region.into(),
        a.postal_code.into(),
        a.country.into(),
        c.source.clone().into(),
        c.owner_id.into(),
        Value::Json(serde_json::Value::Object(c.custom_fields.clone())),
    ]
}

const COLUMNS: &str = "id, display_name, name_key, first_name, middle_name, last_name, title, birthday_month, birthday_day, \
    birthday_year, time_zone, locale, address_street, address_street2, address_city, address_region, address_postal_code, \
    address_country, source, owner_id, custom_fields";

fn write_children(tx: &mut dyn Tx, id: Uuid, c: &ContactInput, now: Timestamp) -> Result<()> {
    for (i, e) in c.emails.iter().enumerate() {
        tx.execute(
            "INSERT INTO contact_emails (contact_id, position, address, label, is_primary) VALUES ($1, $2, $3, $4, $5)",
            &[id.into(), Value::I64(i as i64), e.address.as_str().into(), e.label.clone().into(), e.primary.into()],
        )?;
    }
    for (i, p) in c.phones.iter().enumerate() {
        let digits: String = p.e164.chars().filter(char::is_ascii_digit).collect();
        tx.execute(
            "INSERT INTO contact_phones (contact_id, position, e164, raw, digits, label, is_primary) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[id.into(), Value::I64(i as i64), p.e164.as_str().into(), p.number.as_str().into(), digits.into(), p.label.clone().into(), p.primary.into()],
        )?;
    }
    for x in &c.external_ids {
        tx.execute(
            "INSERT INTO contact_external_ids (source, external_id, contact_id) VALUES ($1, $2, $3)",
            &[x.source.as_str().into(), x.id.as_str().into(), id.into()],
        )?;
    }
    for tag_id in resolve_tags(tx, &c.tags, now)? {
        tx.execute("INSERT INTO contact_tags (contact_id, tag_id) VALUES ($1, $2)", &[id.into(), tag_id.into()])?;
    }
    tx.execute(refresh_one_sql(tx.dialect()), &[id.into()])?;
    Ok(())
}

/// Inserts a contact inside an open transaction (used by the API and by bulk loaders).
pub(crate) fn insert(tx: &mut dyn Tx, store: &Store, draft: ContactDraft) -> Result<Contact> {
    let id = new_id();
    let input = prepare(tx, store, draft, id)?;
    let now = store.now();
    let mut params = row_values(id, &input);
    params.push(now.into());
    params.push(now.into());
    let placeholders: Vec<String> = (1..=params.len()).map(|i| format!("${i}")).collect();
    tx.execute(
        &format!("INSERT INTO contacts ({COLUMNS}, created_at, updated_at) VALUES ({})", placeholders.join(", ")),
        &params,
    )?;
    write_children(tx, id, &input, now)?;
    crate::segments::mark_dirty(tx, &[id], now)?;
    load(tx, id)
}

impl Store {
    pub async fn create_contact(&self, draft: ContactDraft, idem: Option<IdempotencyKey>) -> Result<Created<Contact>> {
        let store = self.clone();
        self.create_once(idem, move |tx| insert(tx, &store, draft)).await
    }

    /// Creates many contacts in one transaction: all or none (the demo and imports).
    pub async fn create_contacts(&self, drafts: Vec<ContactDraft>) -> Result<Vec<Uuid>> {
        let store = self.clone();
        self.write(move |tx| {
            let mut ids = Vec::with_capacity(drafts.len());
            for (i, d) in drafts.into_iter().enumerate() {
                let c = insert(tx, &store, d).map_err(|e| match e {
                    StoreError::Invalid(mut v) => {
                        for f in &mut v.errors {
                            f.field = format!("[{i}].{}", f.field);
                        }
                        StoreError::Invalid(v)
                    }
                    other => other,
                })?;
                ids.push(c.id);
            }
            Ok(ids)
        })
        .await
    }

    pub async fn get_contact(&self, id: Uuid) -> Result<Contact> {
        self.read_point(move |tx| load(tx, id)).await
    }

    pub async fn update_contact(&self, id: Uuid, patch: ContactPatch) -> Result<Contact> {
        let store = self.clone();
        self.write_checked(move |tx| update_tx(tx, &store, id, patch)).await
    }

    pub async fn delete_contact(&self, id: Uuid) -> Result<()> {
        let now = self.now();
        self.write(move |tx| {
            // Memberships go with the contact: keep the stored counts true, and let people
            // whose filters read this person (as a relation) be looked at again.
            if tx.dialect() == crate::db::Dialect::Postgres {
                // In id order, as the segment maintainer locks them.
                tx.query(
                    "SELECT id FROM segments WHERE id IN (SELECT segment_id FROM segment_members WHERE contact_id = $1) ORDER BY id FOR UPDATE",
                    &[id.into()],
                )?;
            }
            tx.execute(
                "UPDATE segments SET member_count = member_count - 1 \
                 WHERE id IN (SELECT segment_id FROM segment_members WHERE contact_id = $1)",
                &[id.into()],
            )?;
            crate::segments::mark_dirty_where(
                tx,
                "SELECT contact_id FROM relations WHERE related_contact_id = $1 AND contact_id <> $1",
                &[id.into()],
                now,
            )?;
            // Relations that pointed at this person keep their name.
            tx.execute(
                "UPDATE relations SET related_name = (SELECT display_name FROM contacts WHERE id = $1) \
                 WHERE related_contact_id = $1 AND related_name IS NULL",
                &[id.into()],
            )?;
            match tx.execute("DELETE FROM contacts WHERE id = $1", &[id.into()])? {
                0 => Err(StoreError::not_found("contact", id)),
                _ => Ok(()),
            }
        })
        .await
    }

    pub async fn list_contacts(&self, filter: ContactFilter, page: PageRequest) -> Result<Page<Contact>> {
        let store = self.clone();
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "display_name", "c.id")?;
            if let Some(text) = filter.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                let pat = q.param(contains_pattern(text));
                let digits: String = text.chars().filter(char::is_ascii_digit).collect();
                let mut alts = vec![
                    format!("c.name_key LIKE {pat} ESCAPE '\\'"),
                    format!("EXISTS (SELECT 1 FROM contact_emails e WHERE e.contact_id = c.id AND e.address LIKE {pat} ESCAPE '\\')"),
                ];
                // Three digits or more look like part of a phone number.
                if digits.len() >= 3 {
                    let dp = q.param(format!("%{digits}%"));
                    alts.push(format!("EXISTS (SELECT 1 FROM contact_phones p WHERE p.contact_id = c.id AND p.digits LIKE {dp})"));
                }
                q.condition(format!("({})", alts.join(" OR ")));
            }
            if let Some(email) = filter.email {
                let p = q.param(email.trim().to_lowercase());
                q.condition(format!("EXISTS (SELECT 1 FROM contact_emails e WHERE e.contact_id = c.id AND e.address = {p})"));
            }
            if let Some(phone) = filter.phone {
                let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
                if digits.is_empty() {
                    return Err(StoreError::invalid("phone", "must contain digits"));
                }
                // Match the end of the number so local and international forms both find it.
                let p = q.param(format!("%{digits}"));
                q.condition(format!("EXISTS (SELECT 1 FROM contact_phones p WHERE p.contact_id = c.id AND p.digits LIKE {p})"));
            }
            if let Some(tag) = filter.tag {
                let p = q.param(tag.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase());
                q.condition(format!(
                    "EXISTS (SELECT 1 FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id AND t.name_key = {p})"
                ));
            }
            if let Some(owner) = filter.owner_id {
                let p = q.param(owner);
                q.condition(format!("c.owner_id = {p}"));
            }
            if let Some(company) = filter.company_id {
                let p = q.param(company);
                q.condition(format!("EXISTS (SELECT 1 FROM contact_companies l WHERE l.contact_id = c.id AND l.company_id = {p})"));
            }
            if let Some(source) = filter.source {
                let p = q.param(source);
                q.condition(format!("c.source = {p}"));
            }
            if let Some(t) = filter.created_after {
                let p = q.param(t);
                q.condition(format!("c.created_at >= {p}"));
            }
            if let Some(t) = filter.created_before {
                let p = q.param(t);
                q.condition(format!("c.created_at < {p}"));
            }
            if let Some(t) = filter.updated_after {
                let p = q.param(t);
                q.condition(format!("c.updated_at >= {p}"));
            }
            let mut from = "FROM contacts c";
            if let Some(f) = &filter.filter {
                let (sql, needs_profile) = store.contact_filter_sql(tx, f, &mut q.params)?;
                q.condition(sql);
                if needs_profile {
                    from = "FROM contacts c LEFT JOIN profiles p ON p.contact_id = c.id";
                }
            }
            let sql = q.sql(SELECT, from);
            let rows = tx.query(&sql, &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }

    /// How many contacts there are (for the demo and dashboards).
    pub async fn count_contacts(&self) -> Result<i64> {
        self.read(|tx| tx.query_one("SELECT COUNT(*) FROM contacts", &[])?.i64(0)).await
    }
}

/// Applies `patch` to a contact in the caller's transaction (the API, and workflows'
/// `set_field`).
pub(crate) fn update_tx(tx: &mut dyn Tx, store: &Store, id: Uuid, patch: ContactPatch) -> Result<Contact> {
    let current = load(tx, id)?;
    let input = prepare(tx, store, patch.apply(&current), id)?;
    let mut params = row_values(id, &input);
    params.push(store.now().into());
    let sets: Vec<String> = COLUMNS.split(", ").enumerate().skip(1).map(|(i, c)| format!("{c} = ${}", i + 1)).collect();
    let sql = format!("UPDATE contacts SET {}, updated_at = ${} WHERE id = $1", sets.join(", "), params.len());
    tx.execute(&sql, &params)?;
    for table in ["contact_emails", "contact_phones", "contact_external_ids", "contact_tags"] {
        tx.execute(&format!("DELETE FROM {table} WHERE contact_id = $1"), &[id.into()])?;
    }
    write_children(tx, id, &input, store.now())?;
    crate::segments::mark_dirty(tx, &[id], store.now())?;
    // People who have this person as a relation read their birthday.
    crate::segments::mark_dirty_where(
        tx,
        "SELECT contact_id FROM relations WHERE related_contact_id = $1 AND contact_id <> $1",
        &[id.into()],
        store.now(),
    )?;
    load(tx, id)
}
