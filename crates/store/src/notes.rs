//! Notes on contacts and companies.

use rapport_core::new_id;
use rapport_core::note::{Note, NoteDraft, NoteInput, NotePatch};
use uuid::Uuid;

use crate::common::{check_exists, check_user};
use crate::db::Tx;
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind};
use crate::value::Row;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct NoteFilter {
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
    pub pinned: Option<bool>,
}

const SORTS: &[SortField] = &[
    SortField { name: "created_at", expr: "n.created_at", kind: SortKind::Time },
    SortField { name: "updated_at", expr: "n.updated_at", kind: SortKind::Time },
];
pub(crate) const SELECT: &str =
    "SELECT n.id, n.contact_id, n.company_id, n.body, n.author_id, n.pinned, n.created_at, n.updated_at";

pub(crate) fn map_row(r: Row) -> Result<Note> {
    Ok(Note {
        id: r.uuid(0)?,
        contact_id: r.opt_uuid(1)?,
        company_id: r.opt_uuid(2)?,
        body: r.string(3)?,
        author_id: r.opt_uuid(4)?,
        pinned: r.bool(5)?,
        created_at: r.time(6)?,
        updated_at: r.time(7)?,
    })
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<Note> {
    map_row(
        tx.query_opt(&format!("{SELECT} FROM notes n WHERE n.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("note", id))?,
    )
}

impl Store {
    /// `default_author` (the caller's user) is used when the draft names no author.
    pub async fn create_note(
        &self,
        mut draft: NoteDraft,
        default_author: Option<Uuid>,
        idem: Option<IdempotencyKey>,
    ) -> Result<Created<Note>> {
        let now = self.now();
        draft.author_id = draft.author_id.or(default_author);
        self.create_once(idem, move |tx| {
            let input = NoteInput::parse(draft)?;
            if let Some(id) = input.contact_id {
                check_exists(tx, "contacts", id, "contact_id", "contact")?;
            }
            if let Some(id) = input.company_id {
                check_exists(tx, "companies", id, "company_id", "company")?;
            }
            check_user(tx, input.author_id, "author_id")?;
            let id = new_id();
            tx.execute(
                "INSERT INTO notes (id, contact_id, company_id, body, author_id, pinned, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    id.into(),
                    input.contact_id.into(),
                    input.company_id.into(),
                    input.body.as_str().into(),
                    input.author_id.into(),
                    input.pinned.into(),
                    now.into(),
                    now.into(),
                ],
            )?;
            if let Some(contact_id) = input.contact_id {
                crate::profiles::note_added(tx, contact_id, id, &input.body, input.author_id, now)?;
            }
            load(tx, id)
        })
        .await
    }

    pub async fn get_note(&self, id: Uuid) -> Result<Note> {
        self.read_point(move |tx| load(tx, id)).await
    }

    pub async fn update_note(&self, id: Uuid, patch: NotePatch) -> Result<Note> {
        let now = self.now();
        self.write(move |tx| {
            let input = NoteInput::patched(&load(tx, id)?, patch)?;
            tx.execute(
                "UPDATE notes SET body = $2, pinned = $3, updated_at = $4 WHERE id = $1",
                &[id.into(), input.body.as_str().into(), input.pinned.into(), now.into()],
            )?;
            let note = load(tx, id)?;
            if let Some(contact_id) = note.contact_id {
                crate::profiles::note_changed(tx, contact_id, id, Some(&input.body))?;
            }
            Ok(note)
        })
        .await
    }

    pub async fn delete_note(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let note = load(tx, id)?;
            tx.execute("DELETE FROM notes WHERE id = $1", &[id.into()])?;
            if let Some(contact_id) = note.contact_id {
                crate::profiles::note_changed(tx, contact_id, id, None)?;
            }
            Ok(())
        })
        .await
    }

    /// Newest first by default; pinned notes are not moved to the top here (the UI does that).
    pub async fn list_notes(&self, filter: NoteFilter, page: PageRequest) -> Result<Page<Note>> {
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "-created_at", "n.id")?;
            if let Some(id) = filter.contact_id {
                let p = q.param(id);
                q.condition(format!("n.contact_id = {p}"));
            }
            if let Some(id) = filter.company_id {
                let p = q.param(id);
                q.condition(format!("n.company_id = {p}"));
            }
            if let Some(id) = filter.author_id {
                let p = q.param(id);
                q.condition(format!("n.author_id = {p}"));
            }
            if let Some(pinned) = filter.pinned {
                let p = q.param(pinned);
                q.condition(format!("n.pinned = {p}"));
            }
            let rows = tx.query(&q.sql(SELECT, "FROM notes n"), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }
}
