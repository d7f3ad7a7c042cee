//! Workflows: the list with what starts each, whether it is on and how busy it is; a
//! workflow's page with its document, latest runs and a replay over past data; switching one
//! on or off (managers and admins). Workflows are written through the API (docs/automation.md);
//! here they are read.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use rapport_core::workflow::{DateField, DateTrigger, Metric, Recurrence, Reentry, ThresholdRule, Trigger, Workflow};
use rapport_store::automation::WorkflowRunStats;
use rapport_store::{PageRequest, StoreError, WorkflowFilter};
use uuid::Uuid;

use super::form::{FormData, QueryData};
use super::format::{ago, datetime, duration_words, label, thousands};
use super::simulation::{PeriodForm, SimulationView, try_on_past};
use super::{Shell, Signed, UiError, local_path, parse_id, redirect_with, render, render_status};
use crate::AppState;

/// The period "started lately" counts.
const RECENT_DAYS: u32 = 30;
/// Runs listed on a workflow's page.
const RUNS_SHOWN: usize = 50;

pub struct WorkflowRow {
    pub id: Uuid,
    pub name: String,
    pub trigger: String,
    pub enabled: bool,
    pub version: i64,
    pub started: String,
    pub active: String,
    pub last_run: String,
}

#[derive(Template)]
#[template(path = "workflows/list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<WorkflowRow>,
    can_manage: bool,
    recent_days: u32,
}

fn row(w: Workflow, stats: &HashMap<Uuid, WorkflowRunStats>, now: rapport_core::Timestamp) -> WorkflowRow {
    let s = stats.get(&w.id);
    WorkflowRow {
        id: w.id,
        trigger: trigger_text(&w.spec.trigger),
        name: w.spec.name,
        enabled: w.enabled,
        version: w.version,
        started: thousands(s.map_or(0, |s| s.started)),
        active: thousands(s.map_or(0, |s| s.active)),
        last_run: s.and_then(|s| s.last_started_at).map_or_else(|| "never".into(), |t| ago(t, now)),
    }
}

async fn stats(s: &AppState) -> Result<HashMap<Uuid, WorkflowRunStats>, StoreError> {
    Ok(s.store.workflow_run_stats(RECENT_DAYS).await?.into_iter().map(|st| (st.workflow_id, st)).collect())
}

/// `GET /workflows`
pub async fn list(State(s): State<AppState>, signed: Signed) -> Result<Response, UiError> {
    let page = PageRequest { limit: Some(500), ..Default::default() };
    let workflows = s.store.list_workflows(WorkflowFilter::default(), page).await?.data;
    let stats = stats(&s).await?;
    let now = s.store.now();
    render(&ListPage {
        can_manage: signed.can_manage_automation(),
        shell: signed.shell("workflows"),
        rows: workflows.into_iter().map(|w| row(w, &stats, now)).collect(),
        recent_days: RECENT_DAYS,
    })
}

pub struct RunRow {
    pub contact: String,
    pub contact_href: String,
    pub status: String,
    pub status_key: String,
    pub reason: String,
    pub started: String,
    pub ended: String,
}

/// One message step's figures over the last [`MESSAGE_DAYS`] days.
pub struct MessageRow {
    pub step: String,
    pub template: String,
    pub channel: String,
    pub current: bool,
    pub sent: String,
    pub delivered: String,
    pub opened: String,
    pub clicked: String,
    pub replied: String,
    pub unsubscribed: String,
    pub blocked: String,
    pub held_out: String,
    /// "12.5% of 40" for the messaged, and the same for the holdout ("—" without one).
    pub converted: String,
    pub holdout_converted: String,
    pub revenue: String,
    /// "+3.1 orders the messages added", when there is a holdout to compare with.
    pub effect: Option<String>,
}

/// Message statistics on a workflow's page cover this many days.
const MESSAGE_DAYS: u32 = 90;

fn message_rows(stats: rapport_store::automation::WorkflowMessageStats) -> Vec<MessageRow> {
    use super::campaigns::percent;
    use super::format::{money, thousands};
    stats
        .steps
        .into_iter()
        .map(|s| {
            let f = &s.figures;
            let c = &s.conversions;
            let group = |g: &rapport_store::campaigns::GroupOutcome| {
                if g.people == 0 { "—".to_string() } else { format!("{} of {}", percent(g.rate), thousands(g.people)) }
            };
            MessageRow {
                step: s.step,
                template: s.template,
                channel: s.channel,
                current: s.current,
                sent: thousands(f.sent),
                delivered: thousands(f.delivered),
                opened: format!("{} ({})", thousands(f.opened), percent(f.open_rate)),
                clicked: format!("{} ({})", thousands(f.clicked), percent(f.click_rate)),
                replied: thousands(f.replied),
                unsubscribed: thousands(f.unsubscribed),
                blocked: thousands(s.blocked),
                held_out: thousands(s.held_out),
                converted: group(&c.messaged),
                holdout_converted: group(&c.holdout),
                revenue: money(c.messaged.revenue, &c.base_currency),
                effect: c.incremental_conversions.map(|n| format!("{n:+.1} orders the messages added")),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "workflows/show.html")]
struct ShowPage {
    shell: Shell,
    w: WorkflowRow,
    /// This page, to come back to after switching.
    here: String,
    can_manage: bool,
    recent_days: u32,
    reentry: String,
    exit_when: Vec<String>,
    updated: String,
    /// The document as stored, pretty-printed.
    document: String,
    runs: Vec<RunRow>,
    /// "10% of the people who reach a message get none (to measure the workflow)", if any.
    holdout: Option<String>,
    messages: Vec<MessageRow>,
    message_days: u32,
    conversion_days: u16,
    /// "Try it on past data": the period as typed, and what the replay found once asked.
    period: PeriodForm,
    simulation: Option<SimulationView>,
}

/// `GET /workflows/{id}`, and with `?from=…&to=…` (days) a replay of that period.
pub async fn show(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    QueryData(q): QueryData,
) -> Result<Response, UiError> {
    let id = parse_id(&id, "workflow")?;
    let w = s.store.get_workflow(id).await?;
    let (period, simulation) = try_on_past(&s.store, id, &q).await?;
    let stats = stats(&s).await?;
    let tz = s.store.options().default_time_zone;
    let now = s.store.now();
    let document = serde_json::to_string_pretty(&w.spec).map_err(|e| UiError::Internal(format!("workflow document: {e}")))?;
    let runs = s
        .store
        .workflow_runs(id, RUNS_SHOWN)
        .await?
        .into_iter()
        .map(|r| RunRow {
            contact_href: format!("/contacts/{}#automation", r.contact_id),
            contact: r.contact_name,
            status: label(&r.status),
            status_key: r.status,
            reason: r.reason,
            started: datetime(r.started_at, tz),
            ended: match (r.ended_at, r.end_reason) {
                (Some(t), Some(why)) => format!("{}: {why}", datetime(t, tz)),
                (Some(t), None) => datetime(t, tz),
                _ => String::new(),
            },
        })
        .collect();
    let reentry = match w.spec.reentry {
        Reentry::PerOccurrence => "Once per occurrence, and not while an earlier run is still going".to_string(),
        Reentry::Once => "At most once per person, ever".to_string(),
        Reentry::Always => "Every occurrence, even while earlier runs are still going".to_string(),
        Reentry::After(d) => {
            format!("Once per occurrence, and only {} after the person's previous run started", duration_words(d))
        }
    };
    let exit_when = w.spec.exit_when.clone();
    let holdout = (w.spec.holdout_percent > 0).then(|| {
        format!("{}% of the people who reach a message get none of them, to measure what the messages do", w.spec.holdout_percent)
    });
    let conversion_days = 7;
    let messages = message_rows(s.store.workflow_message_stats(id, MESSAGE_DAYS, conversion_days).await?);
    let updated = datetime(w.updated_at, tz);
    let status = if period.has_errors() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    render_status(
        status,
        &ShowPage {
            can_manage: signed.can_manage_automation(),
            shell: signed.shell("workflows"),
            here: format!("/workflows/{id}"),
            w: row(w, &stats, now),
            recent_days: RECENT_DAYS,
            reentry,
            exit_when,
            updated,
            document,
            runs,
            holdout,
            messages,
            message_days: MESSAGE_DAYS,
            conversion_days,
            period,
            simulation,
        },
    )
}

/// `POST /workflows/{id}/enable`
pub async fn enable(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    switch(s, signed, id, form, true).await
}

/// `POST /workflows/{id}/disable`
pub async fn disable(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    switch(s, signed, id, form, false).await
}

async fn switch(s: AppState, signed: Signed, id: String, form: FormData, on: bool) -> Result<Response, UiError> {
    signed.require_manage_automation()?;
    let id = parse_id(&id, "workflow")?;
    let back = local_path(form.get("return_to").unwrap_or("/workflows"), "/workflows");
    match s.store.set_workflow_enabled(id, on).await {
        Ok(w) if on => {
            s.automation_wake.notify_one();
            Ok(redirect_with(&back, &format!("“{}” is on: {}.", w.spec.name, trigger_text(&w.spec.trigger).to_lowercase())))
        }
        Ok(w) => {
            Ok(redirect_with(&back, &format!("“{}” is off. Its runs in flight wait until it is switched on again.", w.spec.name)))
        }
        Err(StoreError::Invalid(v)) => Ok(redirect_with(
            &back,
            &format!("Not switched on: {}", v.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")),
        )),
        Err(e) => Err(e.into()),
    }
}

/// What starts a workflow, in words: "On their birthday, every year, at 09:00 their time".
pub fn trigger_text(t: &Trigger) -> String {
    match t {
        Trigger::Event(e) => {
            let conditions = match e.conditions.len() {
                0 => String::new(),
                1 => " (with 1 condition)".into(),
                n => format!(" (with {n} conditions)"),
            };
            format!("When {} happens{conditions}", e.event_type)
        }
        Trigger::SegmentEntered { segment } => format!("When someone joins the segment “{segment}”"),
        Trigger::SegmentExited { segment } => format!("When someone leaves the segment “{segment}”"),
        Trigger::Date(d) => date_text(d),
        Trigger::Inactivity { event_type, days } => {
            format!("When there has been no {event_type} for {} days", thousands(i64::from(*days)))
        }
        Trigger::Threshold(th) => {
            let (what, unit) = match th.metric {
                Metric::Revenue => ("lifetime revenue", "of revenue"),
                Metric::OrderCount => ("the number of orders", "orders"),
                Metric::VisitCount => ("the number of visits", "visits"),
            };
            match th.rule {
                ThresholdRule::Crosses(v) => format!("When {what} reaches {}", number(v)),
                ThresholdRule::Every(v) => format!("Every {} {unit}", number(v)),
            }
        }
        Trigger::StageChanged { from, to } => {
            let stage = |s: &rapport_core::profile::LifecycleStage| label(s.as_str()).to_lowercase();
            match (from, to) {
                (Some(f), Some(t)) => format!("When the stage changes from {} to {}", stage(f), stage(t)),
                (None, Some(t)) => format!("When someone becomes {}", stage(t)),
                (Some(f), None) => format!("When someone stops being {}", stage(f)),
                (None, None) => "When the stage changes".into(),
            }
        }
        Trigger::Manual => "Started by hand (or by another workflow)".into(),
    }
}

fn date_text(d: &DateTrigger) -> String {
    let whose = d.of_related.as_ref().map_or_else(|| "their".to_string(), |k| format!("their {k}'s"));
    let field = match &d.field {
        DateField::Birthday => "birthday".to_string(),
        DateField::FirstOrder => "first order".to_string(),
        DateField::Custom(key) => key.replace('_', " "),
    };
    let days = |n: i32| if n.unsigned_abs() == 1 { "1 day".to_string() } else { format!("{} days", n.unsigned_abs()) };
    let (day, every) = match d.recurrence {
        Recurrence::Turns(n) => {
            let who = d.of_related.as_ref().map_or_else(|| "they turn".to_string(), |k| format!("their {k} turns"));
            (format!("{who} {n}"), "")
        }
        Recurrence::Yearly => (format!("{whose} {field}"), ", every year"),
        Recurrence::Once => (format!("{whose} {field}"), ", once"),
    };
    let lead = match (d.offset.0, d.recurrence) {
        (0, Recurrence::Turns(_)) => format!("On the day {day}"),
        (0, _) => format!("On {day}"),
        (n, _) if n < 0 => format!("{} before {day}", days(n)),
        (n, _) => format!("{} after {day}", days(n)),
    };
    format!("{lead}{every}, at {} their time", d.at)
}

/// `1000`, `12.5`
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { thousands(v as i64) } else { v.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_core::workflow::WorkflowSpec;
    use serde_json::json;

    fn trigger(t: serde_json::Value) -> String {
        let spec =
            WorkflowSpec::parse(json!({"name": "x", "trigger": t, "steps": [{"action": "add_tag", "tag": "x"}]})).expect("valid");
        trigger_text(&spec.trigger)
    }

    #[test]
    fn triggers_read_as_sentences() {
        assert_eq!(
            trigger(json!({"kind": "date", "field": "birthday", "offset": "P0D", "at": "09:00"})),
            "On their birthday, every year, at 09:00 their time"
        );
        assert_eq!(
            trigger(
                json!({"kind": "date", "field": "birthday", "of_related": "child", "turns": 21, "offset": "-P30D", "at": "10:00"})
            ),
            "30 days before their child turns 21, at 10:00 their time"
        );
        assert_eq!(
            trigger(
                json!({"kind": "event", "type": "product.viewed", "where": [{"path": "category", "op": "=", "value": "shoes"}]})
            ),
            "When product.viewed happens (with 1 condition)"
        );
        assert_eq!(
            trigger(json!({"kind": "threshold", "metric": "revenue", "crosses": 1000})),
            "When lifetime revenue reaches 1,000"
        );
        assert_eq!(trigger(json!({"kind": "threshold", "metric": "order_count", "every": 2})), "Every 2 orders");
        assert_eq!(
            trigger(json!({"kind": "inactivity", "type": "visit.checked_in", "days": 60})),
            "When there has been no visit.checked_in for 60 days"
        );
        assert_eq!(trigger(json!({"kind": "stage_changed", "to": "at_risk"})), "When someone becomes at risk");
        assert_eq!(trigger(json!({"kind": "segment_entered", "segment": "Gold"})), "When someone joins the segment “Gold”");
        assert_eq!(trigger(json!({"kind": "manual"})), "Started by hand (or by another workflow)");
    }
}
