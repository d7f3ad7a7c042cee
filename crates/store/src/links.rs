//! Links between contacts and companies, with the contact's role there.

use rapport_core::company::{CompanyLink, CompanyLinkDraft, CompanyLinkInput, CompanyLinkPatch};
use rapport_core::new_id;
use uuid::Uuid;

use crate::common::check_exists;
use crate::db::Tx;
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind};
use crate::value::Row;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct LinkFilter {
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
}

const SORTS: &[SortField] = &[SortField { name: "created_at", expr: "l.created_at", kind: SortKind::Time }];
const SELECT: &str = "SELECT l.id, l.contact_id, l.company_id, l.role, l.is_primary, l.created_at";

fn map_row(r: Row) -> Result<CompanyLink> {
    Ok(CompanyLink {
        id: r.uuid(0)?,
        contact_id: r.uuid(1)?,
        company_id: r.uuid(2)?,
        role: r.opt_string(3)?,
        primary: r.bool(4)?,
        created_at: r.time(5)?,
    })
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<CompanyLink> {
    map_row(
        tx.query_opt(&format!("{SELECT} FROM contact_companies l WHERE l.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("link", id))?,
    )
}

/// A contact has at most one primary company: marking one clears the others.
fn clear_other_primaries(tx: &mut dyn Tx, input: &CompanyLinkInput, except: Uuid) -> Result<()> {
    if input.primary {
        tx.execute(
            "UPDATE contact_companies SET is_primary = $1 WHERE contact_id = $2 AND id <> $3",
            &[false.into(), input.contact_id.into(), except.into()],
        )?;
    }
    Ok(())
}

impl Store {
    pub async fn create_link(&self, draft: CompanyLinkDraft, idem: Option<IdempotencyKey>) -> Result<Created<CompanyLink>> {
        let now = self.now();
        self.create_once(idem, move |tx| {
            let input = CompanyLinkInput::parse(draft)?;
            check_exists(tx, "contacts", input.contact_id, "contact_id", "contact")?;
            check_exists(tx, "companies", input.company_id, "company_id", "company")?;
            if tx.exists(
                "SELECT 1 FROM contact_companies WHERE contact_id = $1 AND company_id = $2",
                &[input.contact_id.into(), input.company_id.into()],
            )? {
                return Err(StoreError::conflict("company_id", "the contact is already linked to this company; PATCH the link instead"));
            }
            let id = new_id();
            clear_other_primaries(tx, &input, id)?;
            tx.execute(
                "INSERT INTO contact_companies (id, contact_id, company_id, role, is_primary, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[id.into(), input.contact_id.into(), input.company_id.into(), input.role.clone().into(), input.primary.into(), now.into()],
            )?;
            crate::segments::mark_dirty(tx, &[input.contact_id], now)?;
            load(tx, id)
        })
        .await
    }

    pub async fn get_link(&self, id: Uuid) -> Result<CompanyLink> {
        self.read_point(move |tx| load(tx, id)).await
    }

    pub async fn update_link(&self, id: Uuid, patch: CompanyLinkPatch) -> Result<CompanyLink> {
        self.write(move |tx| {
            let current = load(tx, id)?;
            let input = CompanyLinkInput::patched(&current, patch)?;
            clear_other_primaries(tx, &input, id)?;
            tx.execute(
                "UPDATE contact_companies SET role = $2, is_primary = $3 WHERE id = $1",
                &[id.into(), input.role.into(), input.primary.into()],
            )?;
            load(tx, id)
        })
        .await
    }

    pub async fn delete_link(&self, id: Uuid) -> Result<()> {
        let now = self.now();
        self.write(move |tx| {
            let contact = tx.query_opt("DELETE FROM contact_companies WHERE id = $1 RETURNING contact_id", &[id.into()])?;
            let contact = contact.ok_or_else(|| StoreError::not_found("link", id))?.uuid(0)?;
            crate::segments::mark_dirty(tx, &[contact], now)
        })
        .await
    }

    pub async fn list_links(&self, filter: LinkFilter, page: PageRequest) -> Result<Page<CompanyLink>> {
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "created_at", "l.id")?;
            if let Some(id) = filter.contact_id {
                let p = q.param(id);
                q.condition(format!("l.contact_id = {p}"));
            }
            if let Some(id) = filter.company_id {
                let p = q.param(id);
                q.condition(format!("l.company_id = {p}"));
            }
            let rows = tx.query(&q.sql(SELECT, "FROM contact_companies l"), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }
}
