//! Message templates and layouts, stored as written. Their syntax is checked before they get
//! here (the channels layer knows minijinja); here names are kept unique per locale.

use rapport_core::message::{LayoutDraft, LayoutInput, MessageLayout, MessageTemplate, Purpose, TemplateInput};
use rapport_core::new_id;
use uuid::Uuid;

use crate::db::Tx;
use crate::list::{ListQuery, Page, PageRequest, SortField, SortKind};
use crate::value::Row;
use crate::{Result, Store, StoreError};

const SORTS: &[SortField] = &[
    SortField { name: "name", expr: "t.name_key", kind: SortKind::Text },
    SortField { name: "created_at", expr: "t.created_at", kind: SortKind::Time },
    SortField { name: "updated_at", expr: "t.updated_at", kind: SortKind::Time },
];
const SELECT: &str =
    "SELECT t.id, t.name, t.locale, t.channel, t.purpose, t.subject, t.text, t.html, t.layout, t.created_at, t.updated_at";

fn map_row(r: Row) -> Result<MessageTemplate> {
    let purpose = r.string(4)?;
    Ok(MessageTemplate {
        id: r.uuid(0)?,
        name: r.string(1)?,
        locale: Some(r.string(2)?).filter(|l| !l.is_empty()),
        channel: r.string(3)?,
        purpose: Purpose::parse(&purpose).ok_or_else(|| StoreError::Database(format!("unknown purpose {purpose}")))?,
        subject: r.string(5)?,
        text: r.string(6)?,
        html: r.opt_string(7)?,
        layout: r.opt_string(8)?,
        created_at: r.time(9)?,
        updated_at: r.time(10)?,
    })
}

fn load(tx: &mut dyn Tx, id: Uuid) -> Result<MessageTemplate> {
    map_row(
        tx.query_opt(&format!("{SELECT} FROM message_templates t WHERE t.id = $1"), &[id.into()])?
            .ok_or_else(|| StoreError::not_found("template", id))?,
    )
}

fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn check_free(tx: &mut dyn Tx, t: &TemplateInput, id: Uuid) -> Result<()> {
    let locale = t.locale.clone().unwrap_or_default();
    if tx.exists(
        "SELECT 1 FROM message_templates WHERE name_key = $1 AND locale = $2 AND id <> $3",
        &[key(&t.name).into(), locale.into(), id.into()],
    )? {
        let which = t.locale.as_deref().map(|l| format!(" in {l}")).unwrap_or_default();
        return Err(StoreError::conflict("name", format!("a template \"{}\"{which} exists already", t.name)));
    }
    if let Some(layout) = &t.layout
        && !tx.exists("SELECT 1 FROM message_layouts WHERE name_key = $1", &[key(layout).into()])?
    {
        return Err(StoreError::invalid("layout", format!("no layout is named \"{layout}\"")));
    }
    Ok(())
}

fn write(tx: &mut dyn Tx, id: Uuid, t: &TemplateInput, now: rapport_core::Timestamp, insert: bool) -> Result<()> {
    let sql = if insert {
        "INSERT INTO message_templates (id, name, name_key, locale, channel, purpose, subject, text, html, layout, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"
    } else {
        "UPDATE message_templates SET name = $2, name_key = $3, locale = $4, channel = $5, purpose = $6, subject = $7, text = $8, \
         html = $9, layout = $10, updated_at = $11 WHERE id = $1"
    };
    tx.execute(
        sql,
        &[
            id.into(),
            t.name.as_str().into(),
            key(&t.name).into(),
            t.locale.clone().unwrap_or_default().into(),
            t.channel.as_str().into(),
            t.purpose.as_str().into(),
            t.subject.as_str().into(),
            t.text.as_str().into(),
            t.html.clone().into(),
            t.layout.clone().into(),
            now.into(),
        ],
    )?;
    Ok(())
}

impl Store {
    /// Stores a template whose syntax the caller has checked.
    pub async fn create_template(&self, input: TemplateInput) -> Result<MessageTemplate> {
        let store = self.clone();
        self.write(move |tx| {
            let id = new_id();
            check_free(tx, &input, id)?;
            write(tx, id, &input, store.now(), true)?;
            load(tx, id)
        })
        .await
    }

    pub async fn get_template(&self, id: Uuid) -> Result<MessageTemplate> {
        self.read_point(move |tx| load(tx, id)).await
    }

    /// Replaces a template with `input` (the caller merged the change and checked the syntax).
    pub async fn update_template(&self, id: Uuid, input: TemplateInput) -> Result<MessageTemplate> {
        let store = self.clone();
        self.write(move |tx| {
            load(tx, id)?;
            check_free(tx, &input, id)?;
            write(tx, id, &input, store.now(), false)?;
            load(tx, id)
        })
        .await
    }

    pub async fn delete_template(&self, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            load(tx, id)?;
            tx.execute("DELETE FROM message_templates WHERE id = $1", &[id.into()])?;
            Ok(())
        })
        .await
    }

    /// By name by default.
    pub async fn list_templates(&self, page: PageRequest) -> Result<Page<MessageTemplate>> {
        self.read(move |tx| {
            let q = ListQuery::new(&page, SORTS, "name", "t.id")?;
            let rows = tx.query(&q.sql(SELECT, "FROM message_templates t"), &q.params)?;
            q.page(rows, |r| r.uuid(0), map_row)
        })
        .await
    }

    /// Every template and layout, for the renderer.
    pub async fn all_templates(&self) -> Result<(Vec<MessageTemplate>, Vec<MessageLayout>)> {
        self.read(move |tx| {
            let templates = tx
                .query(&format!("{SELECT} FROM message_templates t ORDER BY t.name_key, t.locale"), &[])?
                .into_iter()
                .map(map_row)
                .collect::<Result<_>>()?;
            let layouts = tx
                .query("SELECT id, name, html, text, created_at, updated_at FROM message_layouts ORDER BY name_key", &[])?
                .into_iter()
                .map(map_layout)
                .collect::<Result<_>>()?;
            Ok((templates, layouts))
        })
        .await
    }

    /// Stores a layout, or replaces the one with the same name.
    pub async fn put_layout(&self, draft: LayoutDraft) -> Result<MessageLayout> {
        let input = LayoutInput::parse(draft)?;
        let store = self.clone();
        self.write(move |tx| {
            let now = store.now();
            tx.execute(
                "INSERT INTO message_layouts (id, name, name_key, html, text, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (name_key) DO UPDATE SET name = excluded.name, html = excluded.html, text = excluded.text, \
                 updated_at = excluded.updated_at",
                &[new_id().into(), input.name.as_str().into(), key(&input.name).into(), input.html.as_str().into(), input.text.as_str().into(), now.into()],
            )?;
            map_layout(tx.query_one(
                "SELECT id, name, html, text, created_at, updated_at FROM message_layouts WHERE name_key = $1",
                &[key(&input.name).into()],
            )?)
        })
        .await
    }
}

fn map_layout(r: Row) -> Result<MessageLayout> {
    Ok(MessageLayout {
        id: r.uuid(0)?,
        name: r.string(1)?,
        html: r.string(2)?,
        text: r.string(3)?,
        created_at: r.time(4)?,
        updated_at: r.time(5)?,
    })
}
