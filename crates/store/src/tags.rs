//! Tags. Renaming a tag renames it everywhere (records link to the tag's id).

use rapport_core::new_id;
use rapport_core::tag::{Tag, TagDraft, TagInput, TagPatch};
use uuid::Uuid;

use crate::contacts;
use crate::db::Tx;
use crate::idempotency::{Created, IdempotencyKey};
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind, contains_pattern};
use crate::value::Row;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    /// Part of the name.
    pub q: Option<String>,
}

const SORTS: &[SortField] = &[
    SortField { name: "name", expr: "t.name_key", kind: SortKind::Text },
    SortField { name: "created_at", expr: "t.created_at", kind: SortKind::Time },
];
const SELECT: &str = "SELECT t.id, t.name, t.color, t.description, t.created_at, \
    (SELECT COUNT(*) FROM contact_tags ct WHERE ct.tag_id = t.id), \
    (SELECT COUNT(*) FROM company_tags ct WHERE ct.tag_id = t.id)";

fn map_row(r: Row) -> Result<Tag> {
    Ok(Tag {
        id: r.uuid(0)?,
        name: r.string(1)?,
        color: r.opt_string(2)?,
        description: r.opt_string(3)?,
        created_at: r.time(4)?,
        contact_count: r.i64(5)?,
        company_count: r.i64(6)?,
    })
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<Tag> {
    map_row(
        tx.query_opt(&format!("{SELECT} FROM tags t WHERE t.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("tag", id))?,
    )
}

fn check_unique(tx: &mut dyn Tx, input: &TagInput, except: Uuid) -> Result<()> {
    if let Some(r) =
        tx.query_opt("SELECT id FROM tags WHERE name_key = $1 AND id <> $2", &[input.name.key().into(), except.into()])?
    {
        return Err(StoreError::conflict(
            "name",
            format!("a tag named '{}' already exists (id {})", input.name.as_str(), r.uuid(0)?),
        ));
    }
    Ok(())
}

impl Store {
    pub async fn create_tag(&self, draft: TagDraft, idem: Option<IdempotencyKey>) -> Result<Created<Tag>> {
        let now = self.now();
        self.create_once(idem, move |tx| {
            let input = TagInput::parse(draft)?;
            let id = new_id();
            check_unique(tx, &input, id)?;
            tx.execute(
                "INSERT INTO tags (id, name, name_key, color, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    id.into(),
                    input.name.as_str().into(),
                    input.name.key().into(),
                    input.color.into(),
                    input.description.into(),
                    now.into(),
                ],
            )?;
            load(tx, id)
        })
        .await
    }

    pub async fn get_tag(&self, id: Uuid) -> Result<Tag> {
        self.read_point(move |tx| load(tx, id)).await
    }

    pub async fn update_tag(&self, id: Uuid, patch: TagPatch) -> Result<Tag> {
        let now = self.now();
        self.write(move |tx| {
            let input = TagInput::patched(&load(tx, id)?, patch)?;
            check_unique(tx, &input, id)?;
            tx.execute(
                "UPDATE tags SET name = $2, name_key = $3, color = $4, description = $5 WHERE id = $1",
                &[id.into(), input.name.as_str().into(), input.name.key().into(), input.color.into(), input.description.into()],
            )?;
            // Contacts keep their tag names with the row; rename them there too.
            let refresh =
                contacts::refresh_children_sql(tx.dialect(), "id IN (SELECT contact_id FROM contact_tags WHERE tag_id = $1)");
            tx.execute(&refresh, &[id.into()])?;
            // Filters name tags: whoever carries this one, directly or through a company, may
            // change segments.
            crate::segments::mark_dirty_where(
                tx,
                "SELECT contact_id FROM contact_tags WHERE tag_id = $1 UNION \
                 SELECT cc.contact_id FROM company_tags kt JOIN contact_companies cc ON cc.company_id = kt.company_id WHERE kt.tag_id = $1",
                &[id.into()],
                now,
            )?;
            load(tx, id)
        })
        .await
    }

    /// Deleting a tag removes it from every record.
    pub async fn delete_tag(&self, id: Uuid) -> Result<()> {
        let now = self.now();
        self.write(move |tx| {
            crate::segments::mark_dirty_where(
                tx,
                "SELECT contact_id FROM contact_tags WHERE tag_id = $1 UNION \
                 SELECT cc.contact_id FROM company_tags kt JOIN contact_companies cc ON cc.company_id = kt.company_id WHERE kt.tag_id = $1",
                &[id.into()],
                now,
            )?;
            let tagged: Vec<Uuid> = tx
                .query("SELECT contact_id FROM contact_tags WHERE tag_id = $1", &[id.into()])?
                .iter()
                .map(|r| r.uuid(0))
                .collect::<Result<_>>()?;
            if tx.execute("DELETE FROM tags WHERE id = $1", &[id.into()])? == 0 {
                return Err(StoreError::not_found("tag", id));
            }
            let refresh = contacts::refresh_children_sql(tx.dialect(), "id = $1");
            for contact in tagged {
                tx.execute(&refresh, &[contact.into()])?;
            }
            Ok(())
        })
        .await
    }

    pub async fn list_tags(&self, filter: TagFilter, page: PageRequest) -> Result<Page<Tag>> {
        self.read(move |tx| {
            let mut q = ListQuery::new(&page, SORTS, "name", "t.id")?;
            if let Some(text) = filter.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                let p = q.param(contains_pattern(text));
                q.condition(format!("t.name_key LIKE {p} ESCAPE '\\'"));
            }
            let rows = tx.query(&q.sql(SELECT, "FROM tags t"), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }
}
