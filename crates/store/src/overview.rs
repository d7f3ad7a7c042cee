//! Everything one page shows about a contact or a company, read in one snapshot: the record,
//! the profile, companies, relations, notes, segments and the first page of the timeline, with
//! the names of the people and records they point at — one round trip for the page, no query
//! per item.

use std::collections::HashMap;

use rapport_core::Timestamp;
use rapport_core::company::Company;
use rapport_core::contact::Contact;
use rapport_core::note::Note;
use rapport_core::profile::ProfileView;
use rapport_core::relation::Relation;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{Tx, select_in};
use crate::events::{TimelineEvent, TimelineFilter};
use crate::list::Page;
use crate::value::Value;
use crate::{Result, Store, StoreError, companies, contacts, events, notes, profiles, relations};

/// A company a contact works at.
#[derive(Debug, Clone, Serialize)]
pub struct LinkedCompany {
    pub company_id: Uuid,
    pub name: String,
    pub role: Option<String>,
    pub primary: bool,
}

/// A person at a company.
#[derive(Debug, Clone, Serialize)]
pub struct LinkedContact {
    pub contact_id: Uuid,
    pub display_name: String,
    pub role: Option<String>,
    pub primary: bool,
}

/// Someone who names this contact in one of their relations ("Ana has a child: this person").
#[derive(Debug, Clone, Serialize)]
pub struct InboundRelation {
    pub contact_id: Uuid,
    pub display_name: String,
    pub kind: String,
    pub custom_kind: Option<String>,
}

/// What the contact page shows.
#[derive(Debug, Clone, Serialize)]
pub struct ContactOverview {
    pub contact: Contact,
    pub profile: ProfileView,
    pub companies: Vec<LinkedCompany>,
    pub relations: Vec<Relation>,
    pub inbound_relations: Vec<InboundRelation>,
    /// Newest first, pinned ones first.
    pub notes: Vec<Note>,
    /// Whether there are more notes than shown.
    pub more_notes: bool,
    /// (segment id, name, entered at)
    pub segments: Vec<(Uuid, String, Timestamp)>,
    pub timeline: Page<TimelineEvent>,
    /// Names of the users the page mentions (owner, note authors, event actors).
    pub user_names: HashMap<Uuid, String>,
}

/// What the company page shows.
#[derive(Debug, Clone, Serialize)]
pub struct CompanyOverview {
    pub company: Company,
    pub contacts: Vec<LinkedContact>,
    /// Whether more people are linked than listed.
    pub more_contacts: bool,
    pub notes: Vec<Note>,
    pub user_names: HashMap<Uuid, String>,
}

fn user_names(tx: &mut dyn Tx, ids: impl IntoIterator<Item = Uuid>) -> Result<HashMap<Uuid, String>> {
    let mut keys: Vec<Uuid> = ids.into_iter().collect();
    keys.sort_unstable();
    keys.dedup();
    let values: Vec<Value> = keys.into_iter().map(Value::Uuid).collect();
    let mut out = HashMap::new();
    for r in select_in(tx, "SELECT id, name FROM users WHERE id IN ({in})", &[], &values)? {
        out.insert(r.uuid(0)?, r.string(1)?);
    }
    Ok(out)
}

fn notes_of(tx: &mut dyn Tx, column: &str, id: Uuid, limit: u32) -> Result<(Vec<Note>, bool)> {
    let rows = tx.query(
        &format!(
            "{} FROM notes n WHERE n.{column} = $1 ORDER BY n.pinned DESC, n.created_at DESC, n.id DESC LIMIT {}",
            notes::SELECT,
            limit + 1
        ),
        &[id.into()],
    )?;
    let more = rows.len() > limit as usize;
    let notes = rows.into_iter().take(limit as usize).map(notes::map_row).collect::<Result<_>>()?;
    Ok((notes, more))
}

impl Store {
    /// The contact page: the contact with everything around them. `timeline_limit` events and
    /// `notes_limit` notes are included; the rest is paged separately.
    pub async fn contact_overview(&self, id: Uuid, timeline_limit: u32, notes_limit: u32) -> Result<ContactOverview> {
        if !(1..=crate::list::MAX_LIMIT).contains(&timeline_limit) {
            return Err(StoreError::invalid("limit", "must be between 1 and 500"));
        }
        let store = self.clone();
        self.read_point_snapshot(move |tx| {
            let contact = contacts::load(tx, id)?;
            let profile = profiles::profile_view(tx, &store, id)?;
            let companies = tx
                .query(
                    "SELECT co.id, co.name, l.role, l.is_primary FROM contact_companies l JOIN companies co ON co.id = l.company_id \
                     WHERE l.contact_id = $1 ORDER BY l.is_primary DESC, co.name_key",
                    &[id.into()],
                )?
                .into_iter()
                .map(|r| Ok(LinkedCompany { company_id: r.uuid(0)?, name: r.string(1)?, role: r.opt_string(2)?, primary: r.bool(3)? }))
                .collect::<Result<_>>()?;
            let relations = tx
                .query(&format!("{} {} WHERE r.contact_id = $1 ORDER BY r.created_at, r.id LIMIT 100", relations::SELECT, relations::FROM), &[
                    id.into(),
                ])?
                .into_iter()
                .map(relations::map_row)
                .collect::<Result<_>>()?;
            let inbound_relations = tx
                .query(
                    "SELECT c.id, c.display_name, r.kind, r.custom_kind FROM relations r JOIN contacts c ON c.id = r.contact_id \
                     WHERE r.related_contact_id = $1 AND r.contact_id <> $1 ORDER BY c.name_key LIMIT 100",
                    &[id.into()],
                )?
                .into_iter()
                .map(|r| {
                    Ok(InboundRelation {
                        contact_id: r.uuid(0)?,
                        display_name: r.string(1)?,
                        kind: r.string(2)?,
                        custom_kind: r.opt_string(3)?,
                    })
                })
                .collect::<Result<_>>()?;
            let (notes, more_notes) = notes_of(tx, "contact_id", id, notes_limit)?;
            let segments = tx
                .query(
                    "SELECT s.id, s.name, m.entered_at FROM segment_members m JOIN segments s ON s.id = m.segment_id \
                     WHERE m.contact_id = $1 ORDER BY s.name_key",
                    &[id.into()],
                )?
                .into_iter()
                .map(|r| Ok((r.uuid(0)?, r.string(1)?, r.time(2)?)))
                .collect::<Result<_>>()?;
            let timeline = events::timeline_page(tx, id, &TimelineFilter::default(), timeline_limit, None)?;
            let mentioned = contact
                .owner_id
                .into_iter()
                .chain(notes.iter().filter_map(|n: &Note| n.author_id))
                .chain(timeline.data.iter().filter_map(|e| e.actor_id));
            let user_names = user_names(tx, mentioned)?;
            Ok(ContactOverview {
                contact,
                profile,
                companies,
                relations,
                inbound_relations,
                notes,
                more_notes,
                segments,
                timeline,
                user_names,
            })
        })
        .await
    }

    /// A page of a contact's timeline with the names of the users who recorded its events.
    pub async fn timeline_with_names(
        &self,
        contact_id: Uuid,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<(Page<TimelineEvent>, HashMap<Uuid, String>)> {
        if !(1..=crate::list::MAX_LIMIT).contains(&limit) {
            return Err(StoreError::invalid("limit", "must be between 1 and 500"));
        }
        let after = cursor.as_deref().map(events::decode_cursor).transpose()?;
        self.read_point_snapshot(move |tx| {
            if !tx.exists("SELECT 1 FROM contacts WHERE id = $1", &[contact_id.into()])? {
                return Err(StoreError::not_found("contact", contact_id));
            }
            let page = events::timeline_page(tx, contact_id, &TimelineFilter::default(), limit, after)?;
            let names = user_names(tx, page.data.iter().filter_map(|e| e.actor_id))?;
            Ok((page, names))
        })
        .await
    }

    /// The company page: the company, up to `contacts_limit` people linked to it, its notes.
    pub async fn company_overview(&self, id: Uuid, contacts_limit: u32) -> Result<CompanyOverview> {
        self.read_point_snapshot(move |tx| {
            let company = companies::load(tx, id)?;
            let rows = tx.query(
                &format!(
                    "SELECT c.id, c.display_name, l.role, l.is_primary FROM contact_companies l JOIN contacts c ON c.id = l.contact_id \
                     WHERE l.company_id = $1 ORDER BY c.name_key, c.id LIMIT {}",
                    contacts_limit + 1
                ),
                &[id.into()],
            )?;
            let more_contacts = rows.len() > contacts_limit as usize;
            let contacts = rows
                .into_iter()
                .take(contacts_limit as usize)
                .map(|r| {
                    Ok(LinkedContact { contact_id: r.uuid(0)?, display_name: r.string(1)?, role: r.opt_string(2)?, primary: r.bool(3)? })
                })
                .collect::<Result<_>>()?;
            let (notes, _) = notes_of(tx, "company_id", id, 50)?;
            let user_names = user_names(tx, company.owner_id.into_iter().chain(notes.iter().filter_map(|n| n.author_id)))?;
            Ok(CompanyOverview { company, contacts, more_contacts, notes, user_names })
        })
        .await
    }
}
