//! Contacts: the list (search, tag, segment-language filter, sorting, saved views, bulk
//! actions), the create and edit forms, and the contact page (the 360° view).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use rapport_core::contact::Contact;
use rapport_core::custom_field::{CustomFieldDefinition, RecordType};
use rapport_core::note::NoteDraft;
use rapport_core::segment::read_filter;
use rapport_core::{FieldError, ValidationErrors};
use rapport_store::{ContactFilter, PageRequest, StoreError, TagFilter, TaskFilter};
use uuid::Uuid;

use super::automation::{AutomationCard, contact_card};
use super::contact_form::{self, ContactForm};
use super::form::{FormData, QueryData, query_string};
use super::format::{ago, clip, date, datetime, label, money, thousands, tier};
use super::tasks::{TaskRow, open_tasks};
use super::timeline::{EventLine, line};
use super::{Shell, Signed, UiError, local_path, parse_id, redirect_with, render, render_status};
use crate::AppState;

const PAGE_SIZE: u32 = 50;
const TIMELINE_PAGE: u32 = 25;

/// The list's query parameters that a saved view keeps.
pub const VIEW_KEYS: [&str; 5] = ["q", "tag", "filter", "owner", "sort"];

/// Where a filter went wrong, with the line it is on and a caret under the column.
#[derive(Debug, Clone)]
pub struct FilterError {
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub expected: Option<String>,
    /// The filter line the problem is on, and spaces up to the column (for the caret).
    pub source_line: Option<String>,
    pub caret_pad: String,
}

impl FilterError {
    pub fn from_field(e: &FieldError, text: &str) -> Self {
        let source_line = e.line.and_then(|l| text.lines().nth(l.saturating_sub(1) as usize)).map(str::to_string);
        let caret_pad = " ".repeat(e.column.unwrap_or(1).saturating_sub(1) as usize);
        // The message may start with its own position, which the headline already gives.
        let message = match (e.line, e.column) {
            (Some(l), Some(c)) => e.message.strip_prefix(&format!("line {l}, column {c}: ")).unwrap_or(&e.message).to_string(),
            _ => e.message.clone(),
        };
        let expected = e.expected.clone().filter(|x| !message.contains(x.as_str()));
        Self { message, line: e.line, column: e.column, expected, source_line, caret_pad }
    }

    /// "Line 1, column 14: …"
    pub fn headline(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("Line {l}, column {c}: {}", self.message),
            _ => self.message.clone(),
        }
    }

    pub fn from_errors(v: &ValidationErrors, text: &str) -> Self {
        match v.errors.first() {
            Some(e) => Self::from_field(e, text),
            None => Self {
                message: v.to_string(),
                line: None,
                column: None,
                expected: None,
                source_line: None,
                caret_pad: String::new(),
            },
        }
    }
}

pub struct ContactRow {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub tags: Vec<String>,
    pub owner: String,
    pub updated: String,
}

#[derive(Clone)]
pub struct SortLink {
    pub label: &'static str,
    pub url: String,
    /// `ascending`, `descending` or `none` (for aria-sort).
    pub state: &'static str,
}

pub struct ViewLink {
    pub id: Uuid,
    pub name: String,
    pub url: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "contacts/list.html")]
struct ListPage {
    shell: Shell,
    q: String,
    tag: String,
    filter: String,
    owner: String,
    sort: String,
    rows: Vec<ContactRow>,
    sorts: Vec<SortLink>,
    name_sort: SortLink,
    updated_sort: SortLink,
    next_url: Option<String>,
    first_url: Option<String>,
    filter_error: Option<FilterError>,
    error: Option<String>,
    tags: Vec<String>,
    owners: Vec<(String, String)>,
    views: Vec<ViewLink>,
    /// The current list's query string (for "save this view" and to come back after a bulk action).
    query: String,
    return_to: String,
    fields: Vec<(&'static str, &'static str)>,
    filtered: bool,
    segment_url: String,
}

fn owners_of(users: &[(Uuid, String, bool)]) -> Vec<(String, String)> {
    users.iter().filter(|(_, _, active)| *active).map(|(id, name, _)| (id.to_string(), name.clone())).collect()
}

/// `GET /contacts`
pub async fn list(State(s): State<AppState>, signed: Signed, QueryData(q): QueryData) -> Result<Response, UiError> {
    let text = q.text("q");
    let tag = q.text("tag");
    let filter_text = q.get("filter").unwrap_or("").trim().to_string();
    let owner = q.text("owner");
    let sort = q.text("sort");
    let cursor = q.opt("cursor");
    let query = query_string(VIEW_KEYS.iter().map(|k| (*k, q.get(k).unwrap_or("").trim())));

    let users = s.store.user_names().await?;
    let names: HashMap<Uuid, String> = users.iter().map(|(id, n, _)| (*id, n.clone())).collect();
    let tags = s.store.list_tags(TagFilter::default(), PageRequest { limit: Some(500), ..Default::default() }).await?;
    let views = s.store.saved_views(signed.user.id, "contacts".into()).await?;

    let mut filter_error = None;
    let mut error = None;
    let filter = if filter_text.is_empty() {
        None
    } else {
        match read_filter(Some(&filter_text), None) {
            Ok(f) => Some(f),
            Err(e) => {
                filter_error = Some(FilterError::from_errors(&e, &filter_text));
                None
            }
        }
    };
    let owner_id = match owner.as_str() {
        "" => None,
        "me" => Some(signed.user.id),
        raw => Uuid::parse_str(raw).ok(),
    };
    let mut rows = Vec::new();
    let mut next_url = None;
    if filter_error.is_none() {
        let cf = ContactFilter {
            q: Some(text.clone()).filter(|t| !t.is_empty()),
            tag: Some(tag.clone()).filter(|t| !t.is_empty()),
            owner_id,
            filter,
            ..Default::default()
        };
        let page =
            PageRequest { limit: Some(PAGE_SIZE), cursor: cursor.clone(), sort: Some(sort.clone()).filter(|s| !s.is_empty()) };
        match s.store.list_contacts(cf, page).await {
            Ok(p) => {
                rows = p.data.iter().map(|c| row(c, &names, s.store.options().default_time_zone)).collect();
                next_url = p.next_cursor.map(|c| {
                    let mut qs = query.clone();
                    if !qs.is_empty() {
                        qs.push('&');
                    }
                    qs.push_str(&query_string([("cursor", c.as_str())]));
                    format!("/contacts?{qs}")
                });
            }
            Err(StoreError::Invalid(v)) => match v.errors.iter().find(|e| e.field.starts_with("filter")) {
                Some(e) => filter_error = Some(FilterError::from_field(e, &filter_text)),
                None => error = Some(format!("This list cannot be shown: {v}")),
            },
            Err(e) => return Err(e.into()),
        }
    }
    let current_sort = if sort.is_empty() { "display_name" } else { sort.as_str() };
    let sorts = [("Name", "display_name"), ("Last name", "last_name"), ("Created", "created_at"), ("Updated", "updated_at")]
        .into_iter()
        .map(|(label, field)| {
            let (state, next) = if current_sort == field {
                ("ascending", format!("-{field}"))
            } else if current_sort.strip_prefix('-') == Some(field) {
                ("descending", field.to_string())
            } else {
                ("none", field.to_string())
            };
            let qs = query_string(
                VIEW_KEYS.iter().map(|k| (*k, if *k == "sort" { next.as_str() } else { q.get(k).unwrap_or("").trim() })),
            );
            SortLink { label, url: format!("/contacts?{qs}"), state }
        })
        .collect::<Vec<_>>();
    let (name_sort, updated_sort) = (sorts[0].clone(), sorts[3].clone());
    let return_to = if query.is_empty() { "/contacts".to_string() } else { format!("/contacts?{query}") };
    let page = ListPage {
        shell: signed.shell("contacts"),
        filtered: !query.is_empty(),
        segment_url: format!("/segments/new?{}", query_string([("filter", filter_text.as_str())])),
        q: text,
        tag,
        filter: filter_text,
        owner,
        sort,
        rows,
        sorts,
        name_sort,
        updated_sort,
        first_url: cursor.map(|_| return_to.clone()),
        next_url,
        filter_error: filter_error.clone(),
        error,
        tags: tags.data.into_iter().map(|t| t.name).collect(),
        owners: owners_of(&users),
        views: views
            .into_iter()
            .map(|v| ViewLink { current: v.query == query, url: format!("/contacts?{}", v.query), id: v.id, name: v.name })
            .collect(),
        query,
        return_to,
        fields: rapport_core::segment::FIELDS.iter().map(|f| (f.name, f.about)).collect(),
    };
    let status = if page.filter_error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    render_status(status, &page)
}

fn row(c: &Contact, names: &HashMap<Uuid, String>, tz: chrono_tz::Tz) -> ContactRow {
    ContactRow {
        id: c.id,
        name: c.display_name.clone(),
        email: c.primary_email().map(|e| e.to_string()).unwrap_or_default(),
        phone: c.phones.iter().find(|p| p.primary).map(|p| p.number.clone()).unwrap_or_default(),
        tags: c.tags.clone(),
        owner: c.owner_id.and_then(|o| names.get(&o).cloned()).unwrap_or_default(),
        updated: date(c.updated_at, tz),
    }
}

/// `POST /contacts/bulk`: tag, untag or assign an owner to the ticked contacts.
pub async fn bulk(State(s): State<AppState>, signed: Signed, form: FormData) -> Result<Response, UiError> {
    signed.require_write()?;
    let back = local_path(form.get("return_to").unwrap_or("/contacts"), "/contacts");
    let mut ids = Vec::new();
    for raw in form.all("ids") {
        ids.push(Uuid::parse_str(raw).map_err(|_| UiError::BadRequest("A selected contact has a bad id.".into()))?);
    }
    if ids.is_empty() {
        return Ok(redirect_with(&back, "Select some contacts first (tick the boxes in the list)."));
    }
    let action = form.text("action");
    let result = match action.as_str() {
        "tag" | "untag" => {
            let tag = form.text("tag");
            if tag.is_empty() {
                return Ok(redirect_with(&back, "Type the tag to add or remove."));
            }
            s.store.tag_contacts(ids, tag.clone(), action == "tag").await.map(|r| {
                let verb = if action == "tag" { "Tagged" } else { "Removed the tag from" };
                let mut m = format!("{verb} {} “{tag}”.", plural(r.changed, "contact"));
                if r.unchanged > 0 {
                    m.push_str(&format!(
                        " {} already {}.",
                        plural(r.unchanged, "contact"),
                        if action == "tag" { "had it" } else { "did not have it" }
                    ));
                }
                if !r.missing.is_empty() {
                    m.push_str(&format!(" {} no longer exist.", plural(r.missing.len(), "contact")));
                }
                m
            })
        }
        "owner" => {
            let owner = match form.opt("owner_id") {
                None => None,
                Some(raw) => {
                    Some(Uuid::parse_str(&raw).map_err(|_| UiError::BadRequest("Choose an owner from the list.".into()))?)
                }
            };
            s.store.assign_owner(ids, owner).await.map(|r| {
                let mut m = format!("Assigned {}.", plural(r.changed, "contact"));
                if r.unchanged > 0 {
                    m.push_str(&format!(" {} already had that owner.", plural(r.unchanged, "contact")));
                }
                if !r.missing.is_empty() {
                    m.push_str(&format!(" {} no longer exist.", plural(r.missing.len(), "contact")));
                }
                m
            })
        }
        _ => return Err(UiError::BadRequest("Choose what to do with the selected contacts.".into())),
    };
    match result {
        Ok(message) => Ok(redirect_with(&back, &message)),
        Err(StoreError::Invalid(v)) => Ok(redirect_with(
            &back,
            &format!("Nothing changed: {}", v.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")),
        )),
        Err(e) => Err(e.into()),
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{} {one}s", thousands(n as i64)) }
}

// ---------------------------------------------------------------------------------------------
// Create and edit

#[derive(Template)]
#[template(path = "contacts/form.html")]
struct FormPage {
    shell: Shell,
    title: String,
    action: String,
    cancel: String,
    form: ContactForm,
}

async fn catalogue(s: &AppState) -> Result<Vec<CustomFieldDefinition>, UiError> {
    Ok(s.store.list_custom_fields(Some(RecordType::Contact), PageRequest { limit: Some(500), ..Default::default() }).await?.data)
}

async fn owners(s: &AppState) -> Result<Vec<(String, String)>, UiError> {
    Ok(owners_of(&s.store.user_names().await?))
}

/// `GET /contacts/new`
pub async fn new_form(State(s): State<AppState>, signed: Signed) -> Result<Response, UiError> {
    signed.require_write()?;
    let form = ContactForm::blank(&catalogue(&s).await?, owners(&s).await?, Some(signed.user.id));
    render(&FormPage {
        shell: signed.shell("contacts"),
        title: "New contact".into(),
        action: "/contacts".into(),
        cancel: "/contacts".into(),
        form,
    })
}

/// Problems the domain finds without the database, so that they are shown together with the
/// ones found while reading the form.
fn local_errors(s: &AppState, sub: &contact_form::Submitted, defs: &[CustomFieldDefinition]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let region = s.store.options().phone_region;
    if let Err(e) = rapport_core::contact::ContactInput::parse(sub.draft.clone(), region, s.store.now().date_naive()) {
        errors.extend(e.errors);
    }
    let catalogue = rapport_core::custom_field::Catalogue::new(defs.to_vec());
    let known: serde_json::Map<String, serde_json::Value> = sub.draft.custom_fields.clone().unwrap_or_default();
    if let Err(e) = catalogue.validate(known, region) {
        // A field that could not even be read already has its message.
        errors.extend(e.errors.into_iter().filter(|fe| !sub.errors.iter().any(|x| x.field == fe.field)));
    }
    errors
}

fn form_again(signed: &Signed, title: String, action: String, cancel: String, form: ContactForm) -> Result<Response, UiError> {
    render_status(StatusCode::UNPROCESSABLE_ENTITY, &FormPage { shell: signed.shell("contacts"), title, action, cancel, form })
}

fn store_field_errors(e: StoreError) -> Result<Vec<FieldError>, UiError> {
    match e {
        StoreError::Invalid(v) => Ok(v.errors),
        StoreError::Conflict { field, message } => Ok(vec![FieldError::new(field, message)]),
        other => Err(other.into()),
    }
}

/// `POST /contacts`
pub async fn create(State(s): State<AppState>, signed: Signed, form: FormData) -> Result<Response, UiError> {
    signed.require_write()?;
    let defs = catalogue(&s).await?;
    let sub = contact_form::read(&form, &defs, owners(&s).await?);
    let again = |errors: Vec<FieldError>, sub: contact_form::Submitted| {
        form_again(&signed, "New contact".into(), "/contacts".into(), "/contacts".into(), sub.with_errors(&errors))
    };
    let local = local_errors(&s, &sub, &defs);
    if !local.is_empty() || !sub.errors.is_empty() {
        return again(local, sub);
    }
    match s.store.create_contact(sub.draft.clone(), None).await {
        Ok(created) => {
            let c = match created {
                rapport_store::Created::New(c) => c,
                rapport_store::Created::Replayed { .. } => {
                    return Err(UiError::Internal("a create without a key was replayed".into()));
                }
            };
            Ok(redirect_with(&format!("/contacts/{}", c.id), &format!("Created {}.", c.display_name)))
        }
        Err(e) => again(store_field_errors(e)?, sub),
    }
}

/// `GET /contacts/{id}/edit`
pub async fn edit_form(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Result<Response, UiError> {
    signed.require_write()?;
    let id = parse_id(&id, "contact")?;
    let c = s.store.get_contact(id).await?;
    let form = ContactForm::of(&c, &catalogue(&s).await?, owners(&s).await?);
    render(&FormPage {
        shell: signed.shell("contacts"),
        title: format!("Edit {}", c.display_name),
        action: format!("/contacts/{id}"),
        cancel: format!("/contacts/{id}"),
        form,
    })
}

/// `POST /contacts/{id}`: saves the edit form.
pub async fn update(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    signed.require_write()?;
    let id = parse_id(&id, "contact")?;
    let current = s.store.get_contact(id).await?;
    let defs = catalogue(&s).await?;
    let sub = contact_form::read(&form, &defs, owners(&s).await?);
    let title = format!("Edit {}", current.display_name);
    let (action, cancel) = (format!("/contacts/{id}"), format!("/contacts/{id}"));
    let local = local_errors(&s, &sub, &defs);
    if !local.is_empty() || !sub.errors.is_empty() {
        return form_again(&signed, title, action, cancel, sub.with_errors(&local));
    }
    let patch = sub.patch();
    match s.store.update_contact(id, patch).await {
        Ok(c) => Ok(redirect_with(&format!("/contacts/{id}"), &format!("Saved {}.", c.display_name))),
        Err(e) => {
            let errors = store_field_errors(e)?;
            let sub = contact_form::read(&form, &defs, owners(&s).await?);
            form_again(&signed, title, action, cancel, sub.with_errors(&errors))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The contact page

pub struct Fact {
    pub label: &'static str,
    pub value: String,
    pub href: Option<String>,
}

pub struct Metric {
    pub label: &'static str,
    pub value: String,
    pub hint: Option<String>,
}

pub struct NoteView {
    /// The note rendered from markdown, safe to insert (see `markdown::render`).
    pub body_html: String,
    pub author: String,
    pub when: String,
    pub pinned: bool,
}

pub struct LinkView {
    pub href: Option<String>,
    pub name: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "contacts/show.html")]
struct ShowPage {
    shell: Shell,
    id: Uuid,
    name: String,
    subtitle: String,
    tags: Vec<String>,
    facts: Vec<Fact>,
    tier: Option<String>,
    stage: String,
    stage_key: String,
    stage_reason: String,
    stage_since: Option<String>,
    churn: String,
    churn_reason: String,
    metrics: Vec<Metric>,
    interests: Vec<String>,
    companies: Vec<LinkView>,
    relations: Vec<LinkView>,
    segments: Vec<LinkView>,
    notes: Vec<NoteView>,
    more_notes: bool,
    tasks: Vec<TaskRow>,
    /// Where marking one of `tasks` done comes back to.
    tasks_return: String,
    automation: AutomationCard,
    events: Vec<EventLine>,
    more_url: Option<String>,
    custom: Vec<Fact>,
    reach: ReachCard,
}

/// "May we contact them?": privacy choices, email topics and other channels' consent, as a
/// salesperson needs them before picking up the phone or writing.
pub struct ReachCard {
    /// ("Do not contact", "bad"): the choices that stop or limit outreach.
    pub flags: Vec<(String, &'static str)>,
    /// Each topic: name, whether they get it, and why ("their choice", "by default").
    pub topics: Vec<(String, bool, String)>,
    /// "Unsubscribed from all marketing email on 3 Mar 2027", when they did.
    pub all_marketing: Option<String>,
    /// Consent on other channels: "SMS marketing: withdrawn (sms reply, 4 Mar 2027)".
    pub channels: Vec<String>,
}

async fn reach_card(s: &AppState, id: Uuid, tz: chrono_tz::Tz) -> Result<ReachCard, UiError> {
    let c = s.store.contact_consent(id).await?;
    let mut flags = Vec::new();
    if c.privacy.do_not_contact {
        flags.push(("Do not contact".to_string(), "bad"));
    }
    if c.privacy.not_interested {
        flags.push(("Not interested".to_string(), "bad"));
    }
    if c.privacy.do_not_track {
        flags.push(("Do not track".to_string(), "held"));
    }
    let all_marketing = (!c.all_marketing).then(|| {
        let when = c.history.iter().find(|h| h.channel == "email" && h.purpose == "marketing" && !h.granted);
        match when {
            Some(h) => format!("Unsubscribed from all marketing email on {}", date(h.recorded_at, tz)),
            None => "Unsubscribed from all marketing email".to_string(),
        }
    });
    let topics = c
        .topics
        .iter()
        .map(|t| {
            let why = match t.basis {
                "choice" => "their choice",
                "all_marketing" => "all marketing",
                _ => "by default",
            };
            (t.name.clone(), t.subscribed, why.to_string())
        })
        .collect();
    let channels = c
        .consents
        .iter()
        .filter(|k| k.channel != "email")
        .map(|k| {
            let state = match (k.granted, k.pending_confirmation) {
                (_, true) => "waiting for confirmation",
                (Some(true), _) => "given",
                (Some(false), _) => "withdrawn",
                (None, _) => "not recorded",
            };
            let how = [k.source.as_deref().map(|s| label(s).to_lowercase()), k.since.map(|t| date(t, tz))]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            let purpose = if k.purpose == "marketing" { "marketing".to_string() } else { k.purpose.clone() };
            let how = if how.is_empty() { String::new() } else { format!(" ({how})") };
            format!("{} {purpose}: {state}{how}", label(&k.channel))
        })
        .collect();
    Ok(ReachCard { flags, topics, all_marketing, channels })
}

/// `GET /contacts/{id}`
pub async fn show(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Result<Response, UiError> {
    let id = parse_id(&id, "contact")?;
    let o = s.store.contact_overview(id, TIMELINE_PAGE, 20).await?;
    let tz = s.store.options().default_time_zone;
    let now = s.store.now();
    let c = &o.contact;
    let p = &o.profile;
    let names = &o.user_names;

    let mut facts = Vec::new();
    for e in &c.emails {
        let l = e.label.clone().map_or(String::new(), |l| format!(" ({l})"));
        facts.push(Fact { label: "Email", value: format!("{}{l}", e.address), href: Some(format!("mailto:{}", e.address)) });
    }
    for ph in &c.phones {
        let l = ph.label.clone().map_or(String::new(), |l| format!(" ({l})"));
        facts.push(Fact { label: "Phone", value: format!("{}{l}", ph.number), href: Some(format!("tel:{}", ph.e164)) });
    }
    if let Some(b) = c.birthday {
        facts.push(Fact { label: "Birthday", value: birthday_text(b), href: None });
    }
    if let Some(a) = &c.address {
        let parts: Vec<&str> = [&a.street, &a.street2, &a.postal_code, &a.city, &a.region, &a.country]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        facts.push(Fact { label: "Address", value: parts.join(", "), href: None });
    }
    if let Some(tz) = &c.time_zone {
        facts.push(Fact { label: "Time zone", value: tz.clone(), href: None });
    }
    if let Some(l) = &c.locale {
        facts.push(Fact { label: "Language", value: l.clone(), href: None });
    }
    if let Some(src) = &c.source {
        facts.push(Fact { label: "Source", value: src.clone(), href: None });
    }
    facts.push(Fact {
        label: "Owner",
        value: c.owner_id.and_then(|o| names.get(&o).cloned()).unwrap_or_else(|| "Nobody".into()),
        href: c.owner_id.map(|o| format!("/contacts?owner={o}")),
    });
    facts.push(Fact { label: "Added", value: date(c.created_at, tz), href: None });
    for x in &c.external_ids {
        facts.push(Fact { label: "External id", value: format!("{}: {}", x.source, x.id), href: None });
    }

    let custom_defs = catalogue(&s).await?;
    let custom = custom_defs
        .iter()
        .filter_map(|d| {
            c.custom_fields.get(&d.key).map(|v| Fact { label: "", value: format!("{}: {}", d.label, custom_text(v)), href: None })
        })
        .collect();

    let revenue = if p.revenue_base.amount != 0.0 || p.order_count > 0 {
        money(p.revenue_base.amount, &p.revenue_base.currency)
    } else {
        "—".into()
    };
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("never".to_string(), |t| ago(t, now));
    let metrics = vec![
        Metric {
            label: "Lifetime revenue",
            value: revenue,
            hint: Some(format!("{} refunds", p.refund_count)).filter(|_| p.refund_count > 0),
        },
        Metric {
            label: "Orders",
            value: thousands(p.order_count),
            hint: Some(format!("{} in the last year", p.orders_last_365d)),
        },
        Metric {
            label: "Average order",
            value: match (&p.average_order_value, &p.average_order_value_currency) {
                (Some(v), Some(cur)) => money(*v, cur),
                _ => "—".into(),
            },
            hint: p.usual_order_gap_days.map(|d| format!("orders every {d:.0} days")),
        },
        Metric {
            label: "Last order",
            value: when(p.last_order_at),
            hint: p.first_order_at.map(|t| format!("first {}", date(t, tz))),
        },
        Metric {
            label: "Visits",
            value: thousands(p.visit_count),
            hint: Some(format!("{} in 30 days, {} in 90", p.visits_last_30d, p.visits_last_90d)),
        },
        Metric {
            label: "Email opens / clicks",
            value: format!("{} / {}", p.email_opens, p.email_clicks),
            hint: p.last_open_at.map(|t| format!("last opened {}", ago(t, now))),
        },
        Metric {
            label: "Last seen",
            value: when(p.last_seen_at),
            hint: p.first_seen_at.map(|t| format!("first seen {}", date(t, tz))),
        },
        Metric {
            label: "RFM",
            value: p.rfm.as_ref().map_or("—".into(), |r| r.score.clone()),
            hint: Some("recency, frequency, money; 5 is best".into()),
        },
    ];
    let interests = p.interests.iter().take(6).map(|i| i.name.clone().unwrap_or_else(|| i.key.clone())).collect();

    let companies = o
        .companies
        .iter()
        .map(|l| LinkView {
            href: Some(format!("/companies/{}", l.company_id)),
            name: l.name.clone(),
            detail: [l.role.clone(), l.primary.then(|| "primary".to_string())]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let mut relations: Vec<LinkView> = o
        .relations
        .iter()
        .map(|r| {
            let kind =
                if r.kind.as_str() == "custom" { r.custom_kind.clone().unwrap_or_default() } else { label(r.kind.as_str()) };
            let mut detail = kind;
            if let Some(b) = r.related_birthday {
                detail.push_str(&format!(", born {}", birthday_text(b)));
            }
            LinkView {
                href: r.related_contact_id.map(|id| format!("/contacts/{id}")),
                name: r.related_name.clone().unwrap_or_else(|| "(unnamed)".into()),
                detail,
            }
        })
        .collect();
    relations.extend(o.inbound_relations.iter().map(|r| {
        let kind = if r.kind == "custom" { r.custom_kind.clone().unwrap_or_default() } else { label(&r.kind).to_lowercase() };
        LinkView {
            href: Some(format!("/contacts/{}", r.contact_id)),
            name: r.display_name.clone(),
            detail: format!("lists this person as their {kind}"),
        }
    }));
    let segments = o
        .segments
        .iter()
        .map(|(sid, name, entered)| LinkView {
            href: Some(format!("/segments/{sid}")),
            name: name.clone(),
            detail: format!("since {}", date(*entered, tz)),
        })
        .collect();
    let notes = o
        .notes
        .iter()
        .map(|n| NoteView {
            body_html: super::markdown::render(&n.body),
            author: n.author_id.and_then(|a| names.get(&a).cloned()).unwrap_or_else(|| "someone".into()),
            when: datetime(n.created_at, tz),
            pinned: n.pinned,
        })
        .collect();
    let events = o.timeline.data.iter().map(|e| line(e, tz, names)).collect();
    let more_url = o
        .timeline
        .next_cursor
        .as_ref()
        .map(|cur| format!("/contacts/{id}/timeline?{}", query_string([("cursor", cur.as_str())])));
    let subtitle =
        [c.title.clone(), o.companies.first().map(|l| l.name.clone())].into_iter().flatten().collect::<Vec<_>>().join(" · ");

    let tasks = open_tasks(&s.store, TaskFilter { contact_id: Some(id), ..Default::default() }, 20, false).await?;
    let automation = contact_card(&s.store, id, signed.user.role.can_write_records()).await?;
    let reach = reach_card(&s, id, tz).await?;
    render(&ShowPage {
        shell: signed.shell("contacts"),
        id,
        tasks,
        tasks_return: format!("/contacts/{id}#tasks"),
        automation,
        name: c.display_name.clone(),
        subtitle,
        tags: c.tags.clone(),
        facts,
        tier: p.value_tier.as_deref().map(tier),
        stage: label(p.lifecycle_stage.as_str()),
        stage_key: p.lifecycle_stage.as_str().to_string(),
        stage_reason: p.stage_reason.clone(),
        stage_since: p.stage_since.map(|t| date(t, tz)),
        churn: label(
            &serde_json::to_value(p.churn_risk.level).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        ),
        churn_reason: p.churn_risk.reason.clone(),
        metrics,
        interests,
        companies,
        relations,
        segments,
        notes,
        more_notes: o.more_notes,
        events,
        more_url,
        custom,
        reach,
    })
}

fn birthday_text(b: rapport_core::Birthday) -> String {
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .get(usize::from(b.month).saturating_sub(1))
        .copied()
        .unwrap_or("?");
    match b.year {
        Some(y) => format!("{} {month} {y}", b.day),
        None => format!("{} {month}", b.day),
    }
}

fn custom_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(true) => "yes".into(),
        serde_json::Value::Bool(false) => "no".into(),
        serde_json::Value::Array(items) => items.iter().map(custom_text).collect::<Vec<_>>().join(", "),
        serde_json::Value::Object(o) if o.contains_key("amount_minor") => {
            let cur = o.get("currency").and_then(|c| c.as_str()).unwrap_or("");
            let minor = o.get("amount_minor").and_then(serde_json::Value::as_i64).unwrap_or(0);
            match rapport_core::money::Currency::parse(cur) {
                Ok(c) => money(c.to_major(minor), cur),
                Err(_) => minor.to_string(),
            }
        }
        other => clip(&other.to_string(), 200),
    }
}

/// `POST /contacts/{id}/notes`
pub async fn add_note(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    signed.require_write()?;
    let id = parse_id(&id, "contact")?;
    let body = form.get("body").unwrap_or("").to_string();
    if body.trim().is_empty() {
        return Ok(redirect_with(&format!("/contacts/{id}#notes"), "Write something in the note first."));
    }
    let draft = NoteDraft {
        contact_id: Some(id),
        body: Some(body),
        pinned: Some(form.get("pinned") == Some("true")),
        ..Default::default()
    };
    match s.store.create_note(draft, Some(signed.user.id), None).await {
        Ok(_) => Ok(redirect_with(&format!("/contacts/{id}#notes"), "Note added.")),
        Err(StoreError::Invalid(v)) => {
            Ok(redirect_with(&format!("/contacts/{id}#notes"), &format!("The note was not saved: {v}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /contacts/{id}/tags`
pub async fn add_tag(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    tag_one(s, signed, id, form, true).await
}

/// `POST /contacts/{id}/tags/remove`
pub async fn remove_tag(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    tag_one(s, signed, id, form, false).await
}

async fn tag_one(s: AppState, signed: Signed, id: String, form: FormData, add: bool) -> Result<Response, UiError> {
    signed.require_write()?;
    let id = parse_id(&id, "contact")?;
    let back = format!("/contacts/{id}");
    let tag = form.text("tag");
    if tag.is_empty() {
        return Ok(redirect_with(&back, "Type a tag first."));
    }
    match s.store.tag_contacts(vec![id], tag.clone(), add).await {
        Ok(r) if !r.missing.is_empty() => Err(UiError::NotFound("There is no such contact. It may have been deleted.".into())),
        Ok(r) => {
            let m = match (add, r.changed) {
                (true, 0) => format!("Already tagged “{tag}”."),
                (true, _) => format!("Tagged “{tag}”."),
                (false, 0) => format!("Was not tagged “{tag}”."),
                (false, _) => format!("Removed the tag “{tag}”."),
            };
            Ok(redirect_with(&back, &m))
        }
        Err(StoreError::Invalid(v)) => Ok(redirect_with(
            &back,
            &format!("Not tagged: {}", v.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "contacts/timeline.html")]
struct TimelinePage {
    shell: Shell,
    id: Uuid,
    name: String,
    events: Vec<EventLine>,
    more_url: Option<String>,
}

#[derive(Template)]
#[template(path = "contacts/timeline_items.html")]
struct TimelineItems {
    events: Vec<EventLine>,
    more_url: Option<String>,
}

/// `GET /contacts/{id}/timeline?cursor=…`: older events. With `fragment=1`, only the list
/// items (for the page's script to append).
pub async fn timeline(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    QueryData(q): QueryData,
) -> Result<Response, UiError> {
    let id = parse_id(&id, "contact")?;
    let tz = s.store.options().default_time_zone;
    let (page, names) = match s.store.timeline_with_names(id, TIMELINE_PAGE, q.opt("cursor")).await {
        Err(StoreError::Invalid(_)) => {
            return Err(UiError::BadRequest("This link to older events is broken; open the contact again.".into()));
        }
        other => other?,
    };
    let events: Vec<EventLine> = page.data.iter().map(|e| line(e, tz, &names)).collect();
    let more_url =
        page.next_cursor.as_ref().map(|cur| format!("/contacts/{id}/timeline?{}", query_string([("cursor", cur.as_str())])));
    if q.get("fragment") == Some("1") {
        return render(&TimelineItems { events, more_url });
    }
    let c = s.store.get_contact(id).await?;
    render(&TimelinePage { shell: signed.shell("contacts"), id, name: c.display_name, events, more_url })
}
