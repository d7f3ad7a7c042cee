//! Email campaigns in the browser: the list with how each one did, the form that creates or
//! changes one, and a campaign's page with its audience, the commands its status allows, a test
//! send and its statistics against the holdout. As in the API, managers and admins create,
//! change and send campaigns (they reach customers); everyone signed in may look.
//!
//! When no SMTP relay is configured, messages wait in the outbox marked unsendable; the list,
//! the campaign's page and the start page say so and how to set one (templates/relay_notice.html).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rapport_core::FieldError;
use rapport_core::campaign::{Campaign, CampaignCommand, CampaignDraft, CampaignInput, CampaignStatus};
use rapport_core::email::EmailAddress;
use rapport_store::campaigns::{CampaignStats, GroupOutcome, MessageFigures, TestSend};
use rapport_store::{PageRequest, StoreError};
use uuid::Uuid;

use super::charts::BarChart;
use super::form::{FieldForm, FormData, sentence};
use super::format::{datetime, label, money, thousands};
use super::{Shell, Signed, UiError, parse_id, redirect_with, render, render_status};
use crate::AppState;

/// Whether email can leave this instance: an SMTP relay is configured (`--smtp-url`).
pub fn relay_configured(s: &AppState) -> bool {
    s.email.is_some()
}

/// `12.5%`
pub(super) fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// When it goes out, in words: `12 Mar 2027, 09:00` or `9:00 on 12 Mar 2027 in each person's zone`.
fn send_at_text(c: &Campaign, tz: Tz) -> Option<String> {
    c.send_at.map(|t| {
        if c.local_time { format!("{} in each person's own time zone", t.format("%-d %b %Y, %H:%M")) } else { datetime(t, tz) }
    })
}

fn when_text(c: &Campaign, tz: Tz) -> String {
    match (c.started_at, send_at_text(c, tz)) {
        (Some(t), _) => format!("Started {}", datetime(t, tz)),
        (None, Some(at)) if c.status == CampaignStatus::Scheduled => format!("Starts {at}"),
        (None, Some(at)) => format!("Set for {at}"),
        (None, None) if c.status == CampaignStatus::Draft => "When sent".into(),
        (None, None) => "Never started".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------------------------

pub struct CampaignRow {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub status_key: &'static str,
    pub segment: String,
    pub segment_id: Uuid,
    pub template: String,
    pub template_id: Uuid,
    pub when: String,
    pub sent: String,
    pub open_rate: String,
    pub click_rate: String,
}

#[derive(Template)]
#[template(path = "campaigns/list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<CampaignRow>,
    can_manage: bool,
    relay_missing: bool,
    relay_waiting: i64,
}

/// `GET /campaigns`
pub async fn list(State(s): State<AppState>, signed: Signed) -> Result<Response, UiError> {
    let page = PageRequest { limit: Some(200), ..Default::default() };
    let campaigns = s.store.list_campaigns(None, page).await?.data;
    let figures = s.store.campaign_figures(campaigns.iter().map(|c| c.id).collect()).await?;
    let tz = s.store.options().default_time_zone;
    let rows = campaigns
        .into_iter()
        .map(|c| {
            let f = figures.get(&c.id).copied().unwrap_or_default();
            let rate = |n: i64| if f.delivered > 0 { percent(n as f64 / f.delivered as f64) } else { "—".into() };
            CampaignRow {
                when: when_text(&c, tz),
                id: c.id,
                status: label(c.status.as_str()),
                status_key: c.status.as_str(),
                segment: c.segment,
                segment_id: c.segment_id,
                template: c.template,
                template_id: c.template_id,
                sent: thousands(f.sent),
                open_rate: rate(f.opened),
                click_rate: rate(f.clicked),
                name: c.name,
            }
        })
        .collect();
    let relay_missing = !relay_configured(&s);
    let relay_waiting = if relay_missing { s.store.unsendable_email_count().await? } else { 0 };
    render(&ListPage {
        can_manage: signed.can_manage_automation(),
        shell: signed.shell("campaigns"),
        rows,
        relay_missing,
        relay_waiting,
    })
}

// ---------------------------------------------------------------------------------------------
// The form
// ---------------------------------------------------------------------------------------------

/// An option of a select or a checkbox list.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The campaign form as typed (or stored), with the problems found, by input name.
pub struct CampaignForm {
    fields: FieldForm,
    pub templates: Vec<Choice>,
    pub segments: Vec<Choice>,
    pub exclusions: Vec<Choice>,
    pub topics: Vec<Choice>,
}

const FIELDS: [&str; 8] = ["name", "template_id", "segment_id", "topic", "when", "send_at", "holdout_percent", "conversion_days"];

impl CampaignForm {
    pub fn id(&self, name: &str) -> String {
        format!("campaign-{}", name.replace('_', "-"))
    }

    /// `now`, `at` or `local`.
    pub fn when_is(&self, which: &str) -> bool {
        match self.v("when") {
            "at" | "local" => self.v("when") == which,
            _ => which == "now",
        }
    }

    /// Puts each problem beside its input (the first one found for an input wins).
    fn add_errors(&mut self, errors: Vec<FieldError>) {
        for e in errors {
            // `exclude_segment_ids[2]` belongs to the exclusions list.
            let field = e.field.split('[').next().unwrap_or("").to_string();
            let field = if field == "local_time" { "when".to_string() } else { field };
            let beside_input = FIELDS.contains(&field.as_str()) || field == "exclude_segment_ids";
            self.fields.place(field, &e.message, beside_input);
        }
    }
}

impl std::ops::Deref for CampaignForm {
    type Target = FieldForm;

    fn deref(&self) -> &FieldForm {
        &self.fields
    }
}

/// What the form shows: typed values, the excluded segments ticked.
struct Values {
    values: HashMap<&'static str, String>,
    excluded: Vec<String>,
}

impl Values {
    fn from_form(form: &FormData) -> Self {
        let values = FIELDS.iter().map(|f| (*f, form.text(f))).collect();
        Self { values, excluded: form.all("exclude_segment_ids").into_iter().map(str::to_string).collect() }
    }

    fn from_campaign(c: &Campaign, tz: Tz) -> Self {
        let (when, send_at) = match c.send_at {
            Some(t) if c.local_time => ("local", t.format("%Y-%m-%dT%H:%M").to_string()),
            Some(t) => ("at", t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string()),
            None => ("now", String::new()),
        };
        let values = HashMap::from([
            ("name", c.name.clone()),
            ("template_id", c.template_id.to_string()),
            ("segment_id", c.segment_id.to_string()),
            ("topic", c.topic.clone().unwrap_or_default()),
            ("when", when.to_string()),
            ("send_at", send_at),
            ("holdout_percent", c.holdout_percent.to_string()),
            ("conversion_days", c.conversion_days.to_string()),
        ]);
        Self { values, excluded: c.exclude_segment_ids.iter().map(Uuid::to_string).collect() }
    }

    fn blank() -> Self {
        let values = HashMap::from([
            ("when", "now".to_string()),
            ("holdout_percent", "10".to_string()),
            ("conversion_days", rapport_core::campaign::DEFAULT_CONVERSION_DAYS.to_string()),
        ]);
        Self { values, excluded: Vec::new() }
    }
}

/// Builds the form with the templates, segments and topics to choose from.
async fn build_form(s: &AppState, v: Values, errors: Vec<FieldError>) -> Result<CampaignForm, UiError> {
    let templates =
        s.store.list_templates(PageRequest { limit: Some(500), sort: Some("name".into()), ..Default::default() }).await?;
    // A template's locales share its name; the campaign names one of them and sends each
    // person their locale's version, so each name is offered once (its default version first).
    let mut by_name: Vec<(String, Uuid, bool)> = Vec::new();
    for t in templates.data.into_iter().filter(|t| t.channel == "email") {
        match by_name.iter_mut().find(|(n, _, _)| n.eq_ignore_ascii_case(&t.name)) {
            Some(entry) if !entry.2 && t.locale.is_none() => *entry = (t.name, t.id, true),
            Some(_) => {}
            None => by_name.push((t.name, t.id, t.locale.is_none())),
        }
    }
    let chosen_template = v.values.get("template_id").cloned().unwrap_or_default();
    let templates = by_name
        .into_iter()
        .map(|(name, id, _)| Choice { selected: id.to_string() == chosen_template, value: id.to_string(), label: name })
        .collect();
    let segments = s.store.list_segments(PageRequest { limit: Some(500), ..Default::default() }).await?.data;
    let chosen_segment = v.values.get("segment_id").cloned().unwrap_or_default();
    let seg_label = |seg: &rapport_store::segments::Segment| format!("{} ({} members)", seg.name, thousands(seg.member_count));
    let exclusions = segments
        .iter()
        .map(|seg| Choice {
            value: seg.id.to_string(),
            label: seg_label(seg),
            selected: v.excluded.contains(&seg.id.to_string()),
        })
        .collect();
    let segments = segments
        .iter()
        .map(|seg| Choice { value: seg.id.to_string(), label: seg_label(seg), selected: seg.id.to_string() == chosen_segment })
        .collect();
    let chosen_topic = v.values.get("topic").cloned().unwrap_or_default();
    let topics = s
        .store
        .list_topics()
        .await?
        .into_iter()
        .map(|t| Choice { selected: t.key == chosen_topic, label: format!("{} ({})", t.name, t.key), value: t.key })
        .collect();
    let mut form = CampaignForm { fields: FieldForm::new(v.values), templates, segments, exclusions, topics };
    form.add_errors(errors);
    Ok(form)
}

/// The whole number typed in `name`; `None` when blank or when it is not one (then with
/// `problem` noted against the input).
fn whole_number<T: std::str::FromStr>(
    form: &FormData,
    name: &'static str,
    errors: &mut Vec<FieldError>,
    problem: impl FnOnce() -> String,
) -> Option<T> {
    match form.text(name).as_str() {
        "" => None,
        raw => raw.parse().map_err(|_| errors.push(FieldError::new(name, problem()))).ok(),
    }
}

/// The form as a draft for the domain to check, with the problems only the form can have (a
/// time that is not one, a holdout that is not a number).
fn read_form(form: &FormData, tz: Tz) -> (CampaignDraft, Vec<FieldError>) {
    let mut errors = Vec::new();
    let when = form.text("when");
    let raw_at = form.text("send_at");
    let local_time = when == "local";
    let send_at = if matches!(when.as_str(), "at" | "local") {
        let parsed = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(&raw_at, f).ok());
        match parsed {
            _ if raw_at.is_empty() => {
                errors.push(FieldError::new("send_at", "Choose the date and time to send at."));
                None
            }
            None => {
                errors.push(FieldError::new(
                    "send_at",
                    format!("“{raw_at}” is not a date and time; pick one like 2027-03-01 09:00."),
                ));
                None
            }
            Some(n) if local_time => Some(n.format("%Y-%m-%dT%H:%M:%S").to_string()),
            Some(n) => match tz.from_local_datetime(&n).earliest() {
                Some(t) => Some(t.with_timezone(&Utc).to_rfc3339()),
                None => {
                    errors.push(FieldError::new("send_at", format!("{raw_at} does not exist in {tz}: the clocks skip it.")));
                    None
                }
            },
        }
    } else {
        None
    };
    let holdout_percent = match form.text("holdout_percent").is_empty() {
        true => Some(0),
        false => whole_number(form, "holdout_percent", &mut errors, || {
            format!("A whole number from 0 to {}.", rapport_core::campaign::MAX_HOLDOUT_PERCENT)
        }),
    };
    let conversion_days = whole_number(form, "conversion_days", &mut errors, || {
        format!("A whole number of days from 1 to {}.", rapport_core::campaign::MAX_CONVERSION_DAYS)
    });
    let draft = CampaignDraft {
        name: Some(form.text("name")),
        template_id: form.opt("template_id"),
        segment_id: form.opt("segment_id"),
        exclude_segment_ids: form.all("exclude_segment_ids").into_iter().map(str::to_string).collect(),
        topic: form.opt("topic"),
        send_at,
        // Only set with a time, so that a missing time is reported once (above).
        local_time: Some(local_time && !raw_at.is_empty()),
        holdout_percent,
        conversion_days,
    };
    (draft, errors)
}

#[derive(Template)]
#[template(path = "campaigns/form.html")]
struct FormPage {
    shell: Shell,
    form: CampaignForm,
    /// Whether a stored campaign is being changed.
    editing: bool,
    heading: String,
    back_href: String,
    back_label: String,
    action: String,
    /// The business's time zone, for "at a set time".
    tz: String,
    relay_missing: bool,
    relay_waiting: i64,
}

async fn form_page(
    s: &AppState,
    signed: &Signed,
    editing: Option<(Uuid, String)>,
    v: Values,
    errors: Vec<FieldError>,
) -> Result<FormPage, UiError> {
    let form = build_form(s, v, errors).await?;
    let is_edit = editing.is_some();
    let (heading, back_href, back_label, action) = match editing {
        Some((id, name)) => (format!("Change {name}"), format!("/campaigns/{id}"), name, format!("/campaigns/{id}")),
        None => ("New campaign".into(), "/campaigns".into(), "Campaigns".into(), "/campaigns".into()),
    };
    Ok(FormPage {
        shell: signed.shell("campaigns"),
        editing: is_edit,
        heading,
        back_href,
        back_label,
        action,
        form,
        tz: s.store.options().default_time_zone.to_string(),
        relay_missing: !relay_configured(s),
        relay_waiting: 0,
    })
}

/// `GET /campaigns/new`
pub async fn new_form(State(s): State<AppState>, signed: Signed) -> Result<Response, UiError> {
    signed.require_manager("create, change or send campaigns: they reach customers")?;
    render(&form_page(&s, &signed, None, Values::blank(), Vec::new()).await?)
}

/// Checks the form and saves it with `save`; the form again with the problems otherwise.
async fn save_form(
    s: &AppState,
    signed: &Signed,
    form: &FormData,
    editing: Option<(Uuid, String)>,
) -> Result<Result<Campaign, FormPage>, UiError> {
    let (draft, mut errors) = read_form(form, s.store.options().default_time_zone);
    match CampaignInput::parse(draft) {
        Ok(input) if errors.is_empty() => {
            let saved = match &editing {
                Some((id, _)) => s.store.update_campaign(*id, input).await,
                None => s.store.create_campaign(input, Some(signed.user.id)).await,
            };
            match saved {
                Ok(c) => return Ok(Ok(c)),
                Err(StoreError::Invalid(v)) => errors.extend(v.errors),
                Err(StoreError::Conflict { field, message }) => errors.push(FieldError::new(field, message)),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(_) => {}
        Err(v) => errors.extend(v.errors),
    }
    Ok(Err(form_page(s, signed, editing, Values::from_form(form), errors).await?))
}

/// `POST /campaigns`
pub async fn create(State(s): State<AppState>, signed: Signed, form: FormData) -> Result<Response, UiError> {
    signed.require_manager("create, change or send campaigns: they reach customers")?;
    match save_form(&s, &signed, &form, None).await? {
        Ok(c) => Ok(redirect_with(
            &format!("/campaigns/{}", c.id),
            &format!("Created the campaign “{}”. Nothing goes out until you send it.", c.name),
        )),
        Err(page) => render_status(StatusCode::UNPROCESSABLE_ENTITY, &page),
    }
}

/// `GET /campaigns/{id}/edit`
pub async fn edit_form(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Result<Response, UiError> {
    signed.require_manager("create, change or send campaigns: they reach customers")?;
    let c = s.store.get_campaign(parse_id(&id, "campaign")?).await?;
    if !c.status.is_editable() {
        return Ok(redirect_with(
            &format!("/campaigns/{}", c.id),
            &format!("A {} campaign can no longer be changed.", c.status.as_str()),
        ));
    }
    let v = Values::from_campaign(&c, s.store.options().default_time_zone);
    render(&form_page(&s, &signed, Some((c.id, c.name)), v, Vec::new()).await?)
}

/// `POST /campaigns/{id}`
pub async fn update(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    signed.require_manager("create, change or send campaigns: they reach customers")?;
    let c = s.store.get_campaign(parse_id(&id, "campaign")?).await?;
    match save_form(&s, &signed, &form, Some((c.id, c.name))).await? {
        Ok(c) => Ok(redirect_with(&format!("/campaigns/{}", c.id), &format!("Saved the campaign “{}”.", c.name))),
        Err(page) => render_status(StatusCode::UNPROCESSABLE_ENTITY, &page),
    }
}

// ---------------------------------------------------------------------------------------------
// A campaign's page
// ---------------------------------------------------------------------------------------------

/// A command the campaign's status allows, as a button.
pub struct CommandButton {
    pub action: &'static str,
    pub label: &'static str,
    pub primary: bool,
}

/// The commands that make sense from `c`'s status (sending a scheduled campaign would only
/// keep it scheduled, so it is not offered).
fn commands(c: &Campaign, now: rapport_core::Timestamp) -> Vec<CommandButton> {
    let starts_later = c.send_at.is_some_and(|at| rapport_core::campaign::start_instant(at, c.local_time) > now);
    let mut out = Vec::new();
    for (cmd, label, primary) in [
        (CampaignCommand::Send, if starts_later { "Schedule" } else { "Send now" }, true),
        (CampaignCommand::Pause, "Pause", false),
        (CampaignCommand::Resume, "Resume", true),
        (CampaignCommand::Cancel, "Cancel campaign", false),
    ] {
        if cmd == CampaignCommand::Send && c.status != CampaignStatus::Draft {
            continue;
        }
        if cmd.apply(c.status, starts_later).is_ok() {
            out.push(CommandButton { action: cmd.as_str(), label, primary });
        }
    }
    out
}

pub struct Fact {
    pub label: &'static str,
    pub value: String,
    pub href: Option<String>,
}

/// One group's outcome as the conversions table shows it.
pub struct GroupRow {
    pub label: &'static str,
    pub people: String,
    pub converted: String,
    pub rate: String,
    pub orders: String,
    pub revenue: String,
}

fn group_row(label: &'static str, g: &GroupOutcome, currency: &str) -> GroupRow {
    GroupRow {
        label,
        people: thousands(g.people),
        converted: thousands(g.converted),
        rate: if g.people > 0 { percent(g.rate) } else { "—".into() },
        orders: thousands(g.orders),
        revenue: money(g.revenue, currency),
    }
}

pub struct Figure {
    pub label: &'static str,
    pub value: String,
    pub note: String,
    pub key: &'static str,
}

#[derive(Template)]
#[template(path = "campaigns/show.html")]
struct ShowPage {
    shell: Shell,
    id: Uuid,
    name: String,
    status: String,
    status_key: &'static str,
    status_reason: Option<String>,
    editable: bool,
    can_manage: bool,
    commands: Vec<CommandButton>,
    facts: Vec<Fact>,
    relay_missing: bool,
    relay_waiting: i64,
    /// Whether the audience has been chosen yet.
    audience_chosen: bool,
    audience: Vec<Figure>,
    skipped_reasons: Vec<(String, String)>,
    messages: Vec<Figure>,
    funnel: Option<BarChart>,
    conversion_chart: Option<BarChart>,
    groups: Vec<GroupRow>,
    window_days: u16,
    lift: String,
    incremental: String,
    test_to: String,
}

/// `GET /campaigns/{id}`
pub async fn show(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Result<Response, UiError> {
    let id = parse_id(&id, "campaign")?;
    let c = s.store.get_campaign(id).await?;
    let st = s.store.campaign_stats(id).await?;
    let tz = s.store.options().default_time_zone;
    let now = s.store.now();
    let mut facts = vec![
        Fact { label: "Template", value: c.template.clone(), href: Some(format!("/templates/{}", c.template_id)) },
        Fact { label: "Segment", value: c.segment.clone(), href: Some(format!("/segments/{}", c.segment_id)) },
    ];
    if !c.exclude_segment_ids.is_empty() {
        let names: HashMap<Uuid, String> = s
            .store
            .list_segments(PageRequest { limit: Some(500), ..Default::default() })
            .await?
            .data
            .into_iter()
            .map(|seg| (seg.id, seg.name))
            .collect();
        for x in &c.exclude_segment_ids {
            let name = names.get(x).cloned().unwrap_or_else(|| "a deleted segment".into());
            facts.push(Fact { label: "Leaves out", value: name, href: Some(format!("/segments/{x}")) });
        }
    }
    facts.push(Fact {
        label: "Topic",
        value: c.topic.clone().unwrap_or_else(|| "none (marketing consent applies)".into()),
        href: None,
    });
    facts.push(Fact { label: "Sends", value: send_at_text(&c, tz).unwrap_or_else(|| "when sent".into()), href: None });
    facts.push(Fact {
        label: "Holdout",
        value: format!("{}% of the audience receive nothing, to measure against", c.holdout_percent),
        href: None,
    });
    facts.push(Fact {
        label: "Conversions",
        value: format!("orders within {} days of the message", c.conversion_days),
        href: None,
    });
    facts.push(Fact { label: "Created", value: datetime(c.created_at, tz), href: None });
    if let Some(t) = c.started_at {
        facts.push(Fact { label: "Started", value: datetime(t, tz), href: None });
    }
    if let Some(t) = c.finished_at {
        let what = if c.status == CampaignStatus::Cancelled { "Cancelled" } else { "Finished" };
        facts.push(Fact { label: what, value: datetime(t, tz), href: None });
    }
    let relay_missing = !relay_configured(&s);
    let relay_waiting = if relay_missing { st.figures.unsendable } else { 0 };
    let conv = &st.conversions;
    let currency = conv.base_currency.clone();
    let page = ShowPage {
        shell: signed.shell("campaigns"),
        id,
        name: c.name.clone(),
        status: label(c.status.as_str()),
        status_key: c.status.as_str(),
        status_reason: c.status_reason.clone(),
        editable: c.status.is_editable(),
        can_manage: signed.can_manage_automation(),
        commands: commands(&c, now),
        facts,
        // The notice is for campaigns that mean to send; a finished or cancelled one is history.
        relay_missing: relay_missing
            && (relay_waiting > 0 || !matches!(c.status, CampaignStatus::Finished | CampaignStatus::Cancelled)),
        relay_waiting,
        audience_chosen: c.audience_chosen_at.is_some(),
        audience: audience_figures(&st),
        skipped_reasons: st.skipped_reasons.iter().map(|r| (sentence(&r.reason), thousands(r.count))).collect(),
        messages: message_figures(&st.figures),
        funnel: funnel(&st.figures),
        conversion_chart: conversion_chart(&st),
        groups: vec![group_row("Sent the campaign", &conv.messaged, &currency), group_row("Holdout", &conv.holdout, &currency)],
        window_days: conv.window_days,
        lift: conv.lift.map_or_else(|| "—".into(), |l| format!("{}{}", if l > 0.0 { "+" } else { "" }, percent(l))),
        incremental: conv.incremental_conversions.map_or_else(|| "—".into(), |n| format!("{n:.1}")),
        test_to: signed.user.email.to_string(),
    };
    render(&page)
}

fn audience_figures(st: &CampaignStats) -> Vec<Figure> {
    vec![
        Figure { label: "Audience", value: thousands(st.audience), note: "chosen when sending started".into(), key: "audience" },
        Figure { label: "Recipients", value: thousands(st.figures.messages), note: "messaged".into(), key: "recipients" },
        Figure { label: "Held out", value: thousands(st.holdout), note: "receive nothing".into(), key: "holdout" },
        Figure { label: "Skipped", value: thousands(st.skipped), note: "may not be mailed".into(), key: "skipped" },
        Figure { label: "Still to queue", value: thousands(st.pending), note: String::new(), key: "pending" },
    ]
}

fn message_figures(st: &MessageFigures) -> Vec<Figure> {
    let of_delivered = |n: i64| if st.delivered > 0 { percent(n as f64 / st.delivered as f64) } else { String::new() };
    let mut out = vec![
        Figure { label: "Sent", value: thousands(st.sent), note: String::new(), key: "sent" },
        Figure { label: "Delivered", value: thousands(st.delivered), note: String::new(), key: "delivered" },
        Figure { label: "Bounced", value: thousands(st.bounced), note: String::new(), key: "bounced" },
        Figure { label: "Opened", value: thousands(st.opened), note: of_delivered(st.opened), key: "opened" },
        Figure { label: "Clicked", value: thousands(st.clicked), note: of_delivered(st.clicked), key: "clicked" },
        Figure { label: "Replied", value: thousands(st.replied), note: String::new(), key: "replied" },
        Figure { label: "Unsubscribed", value: thousands(st.unsubscribed), note: String::new(), key: "unsubscribed" },
        Figure { label: "Waiting to leave", value: thousands(st.queued), note: String::new(), key: "queued" },
    ];
    for (n, label, key, note) in [
        (st.unsendable, "Unsendable", "unsendable", "no email relay is configured"),
        (st.failed, "Failed", "failed", "refused for good"),
        (st.cancelled, "Stopped", "cancelled", "before leaving"),
        (st.complained, "Complaints", "complained", "marked as spam"),
    ] {
        if n > 0 {
            out.push(Figure { label, value: thousands(n), note: note.into(), key });
        }
    }
    out
}

/// Sent → delivered → opened → clicked.
fn funnel(st: &MessageFigures) -> Option<BarChart> {
    if st.sent == 0 {
        return None;
    }
    Some(BarChart::new(
        "campaign-funnel",
        "From sent to clicked",
        vec![
            ("Sent".into(), st.sent, "c0".into(), None),
            ("Delivered".into(), st.delivered, "c1".into(), None),
            ("Opened".into(), st.opened, "c2".into(), None),
            ("Clicked".into(), st.clicked, "c3".into(), None),
        ],
    ))
}

/// The share of each group that ordered within the window, drawn to the same scale.
fn conversion_chart(st: &CampaignStats) -> Option<BarChart> {
    let c = &st.conversions;
    if c.messaged.people == 0 && c.holdout.people == 0 {
        return None;
    }
    let groups = [("Sent the campaign", &c.messaged, "c1"), ("Holdout", &c.holdout, "muted")];
    // Tenths of a percent, so that the bars compare rates, not group sizes.
    let rows = groups
        .iter()
        .map(|(l, g, class)| ((*l).to_string(), (g.rate * 1000.0).round() as i64, (*class).to_string(), None))
        .collect();
    let mut chart = BarChart::new("campaign-conversions", "People who ordered, campaign against holdout", rows);
    for (bar, (_, g, _)) in chart.bars.iter_mut().zip(groups) {
        bar.value_text = if g.people > 0 {
            format!("{} ({} of {})", percent(g.rate), thousands(g.converted), thousands(g.people))
        } else {
            "nobody".into()
        };
    }
    Some(chart)
}

/// `POST /campaigns/{id}/send|pause|resume|cancel`
pub async fn send(s: State<AppState>, signed: Signed, id: Path<String>) -> Result<Response, UiError> {
    command(s, signed, id, CampaignCommand::Send).await
}

pub async fn pause(s: State<AppState>, signed: Signed, id: Path<String>) -> Result<Response, UiError> {
    command(s, signed, id, CampaignCommand::Pause).await
}

pub async fn resume(s: State<AppState>, signed: Signed, id: Path<String>) -> Result<Response, UiError> {
    command(s, signed, id, CampaignCommand::Resume).await
}

pub async fn cancel(s: State<AppState>, signed: Signed, id: Path<String>) -> Result<Response, UiError> {
    command(s, signed, id, CampaignCommand::Cancel).await
}

async fn command(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    cmd: CampaignCommand,
) -> Result<Response, UiError> {
    signed.require_manager("create, change or send campaigns: they reach customers")?;
    let id = parse_id(&id, "campaign")?;
    let back = format!("/campaigns/{id}");
    let c = match s.store.command_campaign(id, cmd).await {
        Ok(c) => c,
        Err(StoreError::Conflict { message, .. }) => return Ok(redirect_with(&back, &format!("Not done: {message}."))),
        Err(e) => return Err(e.into()),
    };
    if c.status == CampaignStatus::Sending {
        s.campaign_wake.notify_one();
    }
    let tz = s.store.options().default_time_zone;
    let name = &c.name;
    let waits = if relay_configured(&s) { "" } else { " Its messages wait in the outbox until an email relay is configured." };
    let message = match (cmd, c.status) {
        (_, CampaignStatus::Scheduled) => {
            format!("“{name}” is scheduled: it starts {}.", send_at_text(&c, tz).unwrap_or_else(|| "soon".into()))
        }
        (CampaignCommand::Send, _) => format!("“{name}” is sending.{waits}"),
        (CampaignCommand::Pause, _) => format!("“{name}” is paused: nothing more leaves until you resume it."),
        (CampaignCommand::Resume, _) => format!("“{name}” is sending again.{waits}"),
        (CampaignCommand::Cancel, _) => format!("“{name}” is cancelled: what had not left never will."),
    };
    Ok(redirect_with(&back, &message))
}

/// `POST /campaigns/{id}/test`: one message to the address typed, filled in with a member's data.
pub async fn test_send(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    signed.require_manager("create, change or send campaigns: they reach customers")?;
    let id = parse_id(&id, "campaign")?;
    let back = format!("/campaigns/{id}#test-send");
    let raw = form.text("to");
    let Ok(to) = EmailAddress::parse(&raw) else {
        return Ok(redirect_with(&back, &format!("Test not sent: “{raw}” is not an email address.")));
    };
    let to = to.as_str().to_string();
    match s.store.campaign_test_send(id, TestSend { to: to.clone(), contact_id: None }).await {
        Ok(_) if relay_configured(&s) => Ok(redirect_with(&back, &format!("A test is on its way to {to}."))),
        Ok(_) => Ok(redirect_with(
            &back,
            &format!("The test to {to} waits in the outbox: no email relay is configured, so nothing can leave."),
        )),
        Err(StoreError::Invalid(v)) => Ok(redirect_with(
            &back,
            &format!("Test not sent: {}", v.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn a_set_time_is_read_in_the_business_zone_and_a_local_time_is_kept() {
        let lisbon: Tz = "Europe/Lisbon".parse().unwrap();
        let (d, errs) = read_form(&form(&[("when", "at"), ("send_at", "2027-07-01T09:00"), ("holdout_percent", "5")]), lisbon);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(d.send_at.as_deref(), Some("2027-07-01T08:00:00+00:00"));
        assert_eq!((d.local_time, d.holdout_percent), (Some(false), Some(5)));
        let (d, _) = read_form(&form(&[("when", "local"), ("send_at", "2027-07-01T09:00")]), lisbon);
        assert_eq!((d.send_at.as_deref(), d.local_time), (Some("2027-07-01T09:00:00"), Some(true)));
        let (d, _) = read_form(&form(&[("when", "now"), ("send_at", "2027-07-01T09:00")]), lisbon);
        assert_eq!(d.send_at, None, "sending now ignores a time left in the box");
    }

    #[test]
    fn what_only_the_form_can_get_wrong_is_named() {
        let tz: Tz = "UTC".parse().unwrap();
        let (_, errs) = read_form(&form(&[("when", "at"), ("send_at", ""), ("holdout_percent", "lots")]), tz);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["send_at", "holdout_percent"]);
        let (_, errs) = read_form(&form(&[("when", "local"), ("send_at", "tomorrow")]), tz);
        assert!(errs[0].message.contains("not a date and time"), "{}", errs[0].message);
    }
}
