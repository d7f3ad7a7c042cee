//! Relations between people. When the related person is a contact, their current name and
//! birthday are read through the link, so they never go stale.

use rapport_core::new_id;
use rapport_core::relation::{Relation, RelationDraft, RelationInput, RelationKind, RelationPatch};
use uuid::Uuid;

use crate::common::{birthday_at, birthday_values, check_exists};
use crate::db::Tx;
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind};
use crate::value::{Row, Value};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct RelationFilter {
    pub contact_id: Option<Uuid>,
    pub related_contact_id: Option<Uuid>,
    pub kind: Option<RelationKind>,
}

const SORTS: &[SortField] = &[
    SortField { name: "created_at", expr: "r.created_at", kind: SortKind::Time },
    SortField { name: "updated_at", expr: "r.updated_at", kind: SortKind::Time },
];
pub(crate) const SELECT: &str = "SELECT r.id, r.contact_id, r.kind, r.custom_kind, r.related_contact_id, r.related_name, \
    r.related_birthday_month, r.related_birthday_day, r.related_birthday_year, r.notes, r.created_at, r.updated_at, \
    rc.display_name, rc.birthday_month, rc.birthday_day, rc.birthday_year";
pub(crate) const FROM: &str = "FROM relations r LEFT JOIN contacts rc ON rc.id = r.related_contact_id";

pub(crate) fn map_row(r: Row) -> Result<Relation> {
    let kind = r.string(2)?;
    Ok(Relation {
        id: r.uuid(0)?,
        contact_id: r.uuid(1)?,
        kind: RelationKind::parse(&kind).ok_or_else(|| StoreError::Database(format!("unknown relation kind {kind}")))?,
        custom_kind: r.opt_string(3)?,
        related_contact_id: r.opt_uuid(4)?,
        related_name: r.opt_string(5)?.or(r.opt_string(12)?),
        related_birthday: birthday_at(&r, 6)?.or(birthday_at(&r, 13)?),
        notes: r.opt_string(9)?,
        created_at: r.time(10)?,
        updated_at: r.time(11)?,
    })
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<Relation> {
    map_row(
        tx.query_opt(&format!("{SELECT} {FROM} WHERE r.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("relation", id))?,
    )
}

fn check(tx: &mut dyn Tx, input: &RelationInput) -> Result<()> {
    check_exists(tx, "contacts", input.contact_id, "contact_id", "contact")?;
    if let Some(other) = input.related_contact_id {
        check_exists(tx, "contacts", other, "related_contact_id", "contact")?;
    }
    Ok(())
}

fn values(input: &RelationInput) -> Vec<Value> {
    let [bm, bd, by] = birthday_values(input.related_birthday);
    vec![
        input.kind.as_str().into(),
        input.custom_kind.clone().into(),
        input.related_contact_id.into(),
        input.related_name.clone().into(),
        bm,
        bd,
        by,
        input.notes.clone().into(),
    ]
}

impl Store {
    pub async fn create_relation(&self, draft: RelationDraft, idem: Option<IdempotencyKey>) -> Result<Created<Relation>> {
        let now = self.now();
        self.create_once(idem, move |tx| {
            let input = RelationInput::parse(draft, now.date_naive())?;
            check(tx, &input)?;
            let id = new_id();
            let mut params = vec![Value::Uuid(id), input.contact_id.into()];
            params.extend(values(&input));
            params.push(now.into());
            params.push(now.into());
            tx.execute(
                "INSERT INTO relations (id, contact_id, kind, custom_kind, related_contact_id, related_name, related_birthday_month, \
                 related_birthday_day, related_birthday_year, notes, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &params,
            )?;
            crate::segments::mark_dirty(tx, &[input.contact_id], now)?;
            load(tx, id)
        })
        .await
    }

    pub async fn get_relation(&self, id: Uuid) -> Result<Relation> {
        self.read_point(move |tx| load(tx, id)).await
    }

    pub async fn update_relation(&self, id: Uuid, patch: RelationPatch) -> Result<Relation> {
        let now = self.now();
        self.write(move |tx| {
            let current = load(tx, id)?;
            // Compare against what is stored, not the values read through a linked contact.
            let stored = tx.query_one(
                "SELECT related_name, related_birthday_month, related_birthday_day, related_birthday_year FROM relations WHERE id = $1",
                &[id.into()],
            )?;
            let base = Relation { related_name: stored.opt_string(0)?, related_birthday: birthday_at(&stored, 1)?, ..current };
            let input = RelationInput::patched(&base, patch, now.date_naive())?;
            check(tx, &input)?;
            let mut params = vec![Value::Uuid(id)];
            params.extend(values(&input));
            params.push(now.into());
            tx.execute(
                "UPDATE relations SET kind = $2, custom_kind = $3, related_contact_id = $4, related_name = $5, \
                 related_birthday_month = $6, related_birthday_day = $7, related_birthday_year = $8, notes = $9, updated_at = $10 \
                 WHERE id = $1",
                &params,
            )?;
            crate::segments::mark_dirty(tx, &[base.contact_id], now)?;
            load(tx, id)
        })
        .await
    }

    pub async fn delete_relation(&self, id: Uuid) -> Result<()> {
        let now = self.now();
        self.write(move |tx| {
            let owner = tx.query_opt("DELETE FROM relations WHERE id = $1 RETURNING contact_id", &[id.into()])?;
            let owner = owner.ok_or_else(|| StoreError::not_found("relation", id))?.uuid(0)?;
            crate::segments::mark_dirty(tx, &[owner], now)
        })
        .await
    }

    pub async fn list_relations(&self, filter: RelationFilter, page: PageRequest) -> Result<Page<Relation>> {
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "created_at", "r.id")?;
            if let Some(id) = filter.contact_id {
                let p = q.param(id);
                q.condition(format!("r.contact_id = {p}"));
            }
            if let Some(id) = filter.related_contact_id {
                let p = q.param(id);
                q.condition(format!("r.related_contact_id = {p}"));
            }
            if let Some(kind) = filter.kind {
                let p = q.param(kind.as_str());
                q.condition(format!("r.kind = {p}"));
            }
            let rows = tx.query(&q.sql(SELECT, FROM), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }
}
