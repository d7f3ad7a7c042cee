//! What automation did and will do, as the pages show it: the "Automation" card of a contact
//! (their runs with each step, the triggers scheduled for them, and starting a workflow for
//! them by hand) and the start page's "Coming up" (the next days' nudges across everyone).

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono_tz::Tz;
use rapport_core::Timestamp;
use rapport_core::workflow::{Reentry, Trigger};
use rapport_store::automation::{NextStep, RunStepView, RunView, UpcomingItem};
use rapport_store::{PageRequest, Store, StoreError, WorkflowFilter};
use uuid::Uuid;

use super::form::FormData;
use super::format::{ago, datetime, duration_words, label};
use super::{Signed, UiError, parse_id, redirect_with};
use crate::AppState;

/// Outcomes that mean a step did not do what it was meant to (marked red).
const BAD_OUTCOMES: [&str; 2] = ["blocked", "failed"];
/// Outcomes that mean it waited or went out unsent (marked amber).
const HELD_OUTCOMES: [&str; 5] = ["deferred", "unsendable", "skipped", "held_out", "cancelled"];

/// One run on a contact's page.
pub struct RunCard {
    pub id: Uuid,
    pub workflow: String,
    pub workflow_href: String,
    /// `Waiting`, `Done`…
    pub status: String,
    /// `waiting`, `done`… (for the badge's colour).
    pub status_key: String,
    /// Why it started, in words.
    pub reason: String,
    pub started: String,
    pub next: Option<NextLine>,
    /// The run waits because its workflow is switched off.
    pub paused: bool,
    /// For an ended run: when, and why.
    pub ended: Option<(String, String)>,
    pub steps: Vec<StepLine>,
    /// "3 steps · 1 blocked"
    pub steps_summary: String,
}

/// What a run in flight does next.
pub struct NextLine {
    pub what: String,
    /// `17 Jan 2026, 09:00`, or `now` when it is due.
    pub when: String,
    /// An event that ends the wait sooner.
    pub or_when: Option<String>,
}

/// A line of a run's history.
pub struct StepLine {
    pub action: String,
    pub outcome: String,
    /// `bad` (blocked, failed), `held` (deferred, unsendable, skipped, held out, cancelled) or "".
    pub mark: &'static str,
    pub detail: String,
    pub when: String,
}

/// A date or inactivity trigger that will fire for this person.
pub struct ScheduledLine {
    pub workflow: String,
    pub workflow_href: String,
    pub when: String,
    pub what: String,
}

/// A switched-on workflow in the "Start a workflow" select.
pub struct StartOption {
    pub id: Uuid,
    pub name: String,
}

/// A contact's "Automation" card.
pub struct AutomationCard {
    pub runs: Vec<RunCard>,
    pub scheduled: Vec<ScheduledLine>,
    /// Switched-on workflows whose trigger is `manual`, by name: listed first in the select.
    pub by_hand: Vec<StartOption>,
    /// The other switched-on workflows, by name (any of them may be started by hand too).
    pub others: Vec<StartOption>,
}

impl AutomationCard {
    pub fn can_start_any(&self) -> bool {
        !self.by_hand.is_empty() || !self.others.is_empty()
    }
}

/// A nudge in the start page's "Coming up".
pub struct ComingUpRow {
    pub when: String,
    /// `in 2 days`, `now`
    pub relative: String,
    pub contact: String,
    pub contact_href: String,
    pub workflow: String,
    pub workflow_href: String,
    pub what: String,
    /// `Next step` (a run in flight) or `Trigger` (a date or inactivity trigger).
    pub kind: &'static str,
    pub paused: bool,
}

/// The workflows that are switched off, read only when something may be waiting on one.
async fn switched_off(store: &Store, needed: bool) -> Result<HashSet<Uuid>, StoreError> {
    if !needed {
        return Ok(HashSet::new());
    }
    let page = PageRequest { limit: Some(500), ..Default::default() };
    Ok(store.list_workflows(WorkflowFilter { enabled: Some(false) }, page).await?.data.into_iter().map(|w| w.id).collect())
}

fn in_flight(status: &str) -> bool {
    matches!(status, "ready" | "waiting")
}

fn when_text(at: Option<Timestamp>, now: Timestamp, tz: Tz) -> String {
    match at {
        Some(t) if t > now => datetime(t, tz),
        _ => "now".into(),
    }
}

/// A contact's runs (newest first) and scheduled triggers, and, when `startable` (the person
/// looking may write records), the workflows they may start for them.
pub async fn contact_card(store: &Store, contact_id: Uuid, startable: bool) -> Result<AutomationCard, StoreError> {
    let a = store.contact_automation(contact_id).await?;
    let tz = store.options().default_time_zone;
    let now = store.now();
    let off = switched_off(store, a.runs.iter().any(|r| in_flight(&r.status))).await?;
    // A run started by hand names the user by id; people read names.
    let names = if a.runs.iter().any(|r| r.cause.get("by").and_then(|b| b.as_str()).is_some()) {
        store.user_names().await?
    } else {
        Vec::new()
    };
    let runs = a.runs.into_iter().map(|r| run_card(r, &off, &names, now, tz)).collect();
    let scheduled = a
        .scheduled
        .into_iter()
        .map(|s| ScheduledLine {
            workflow_href: format!("/workflows/{}", s.workflow_id),
            workflow: s.workflow,
            when: datetime(s.at, tz),
            what: s.what,
        })
        .collect();
    let (by_hand, others) = if startable { start_options(store).await? } else { (Vec::new(), Vec::new()) };
    Ok(AutomationCard { runs, scheduled, by_hand, others })
}

/// The switched-on workflows, by name: (manual-trigger ones, the rest).
async fn start_options(store: &Store) -> Result<(Vec<StartOption>, Vec<StartOption>), StoreError> {
    let page = PageRequest { limit: Some(500), sort: Some("name".into()), ..Default::default() };
    let on = store.list_workflows(WorkflowFilter { enabled: Some(true) }, page).await?.data;
    let (by_hand, others): (Vec<_>, Vec<_>) = on.into_iter().partition(|w| matches!(w.spec.trigger, Trigger::Manual));
    let option = |w: rapport_core::workflow::Workflow| StartOption { id: w.id, name: w.spec.name };
    Ok((by_hand.into_iter().map(option).collect(), others.into_iter().map(option).collect()))
}

/// `POST /contacts/{id}/automation/start`: starts a switched-on workflow for this person now
/// (members and up), and says on their page whether it did.
pub async fn start(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    signed.require_write()?;
    let id = parse_id(&id, "contact")?;
    let back = format!("/contacts/{id}#automation");
    let Some(workflow_id) = form.opt("workflow_id").and_then(|w| Uuid::parse_str(&w).ok()) else {
        return Ok(redirect_with(&back, "Choose a workflow to start."));
    };
    let person = s.store.get_contact(id).await?.display_name;
    let w = match s.store.get_workflow(workflow_id).await {
        Ok(w) => w,
        Err(StoreError::NotFound { .. }) => return Ok(redirect_with(&back, "That workflow no longer exists.")),
        Err(e) => return Err(e.into()),
    };
    let name = &w.spec.name;
    let by = Some(signed.user.id.to_string());
    let message = match s.store.start_workflow_manually(workflow_id, Some(id), None, by).await {
        Ok(r) if r.started > 0 => {
            s.automation_wake.notify_one();
            format!("Started “{name}” for {person}.")
        }
        Ok(_) => format!("“{name}” did not start: {}.", not_started(&w.spec.reentry, &person)),
        Err(StoreError::Conflict { .. }) => {
            format!("“{name}” did not start: it is switched off. A manager or an admin can switch it on.")
        }
        Err(StoreError::NotFound { .. }) => "That workflow no longer exists.".to_string(),
        Err(StoreError::Invalid(v)) => format!("“{name}” did not start: {v}"),
        Err(e) => return Err(e.into()),
    };
    Ok(redirect_with(&back, &message))
}

/// Why a manual start passed `person` over: their earlier runs (by the re-entry rule) or the
/// workflow's conditions; the store does not say which.
fn not_started(reentry: &Reentry, person: &str) -> String {
    match reentry {
        Reentry::Always => format!("{person} does not meet its conditions"),
        Reentry::PerOccurrence => format!("{person} is already in it, or does not meet its conditions"),
        Reentry::Once => {
            format!("{person} has been through it already (it runs once per person), or does not meet its conditions")
        }
        Reentry::After(d) => format!(
            "{person} is already in it or started it less than {} ago, or does not meet its conditions",
            duration_words(*d)
        ),
    }
}

fn run_card(r: RunView, off: &HashSet<Uuid>, names: &[(Uuid, String, bool)], now: Timestamp, tz: Tz) -> RunCard {
    let going = in_flight(&r.status);
    let mut reason = r.reason;
    for (id, name, _) in names {
        reason = reason.replace(&id.to_string(), name);
    }
    let paused = going && off.contains(&r.workflow_id);
    let next = r.next.filter(|_| going).map(|NextStep { what, at, or_when, .. }| NextLine {
        what,
        when: match at {
            Some(t) if paused && t <= now => "once the workflow is on again".into(),
            _ => when_text(at, now, tz),
        },
        or_when,
    });
    let ended = if going {
        None
    } else {
        Some((r.ended_at.map(|t| datetime(t, tz)).unwrap_or_default(), r.end_reason.unwrap_or_default()))
    };
    let bad = r.steps.iter().filter(|s| BAD_OUTCOMES.contains(&s.outcome.as_str())).count();
    let mut steps_summary = match r.steps.len() {
        1 => "1 step".to_string(),
        n => format!("{n} steps"),
    };
    if bad > 0 {
        steps_summary.push_str(&format!(" · {bad} blocked or failed"));
    }
    RunCard {
        id: r.id,
        workflow_href: format!("/workflows/{}", r.workflow_id),
        paused,
        workflow: r.workflow,
        status: label(&r.status),
        status_key: r.status,
        reason,
        started: datetime(r.started_at, tz),
        next,
        ended,
        steps: r.steps.into_iter().map(|s| step_line(s, tz)).collect(),
        steps_summary,
    }
}

fn step_line(s: RunStepView, tz: Tz) -> StepLine {
    let mark = if BAD_OUTCOMES.contains(&s.outcome.as_str()) {
        "bad"
    } else if HELD_OUTCOMES.contains(&s.outcome.as_str()) {
        "held"
    } else {
        ""
    };
    StepLine { action: label(&s.action), outcome: label(&s.outcome), mark, detail: s.detail, when: datetime(s.at, tz) }
}

/// The next `days` days of nudges across everyone, soonest first.
pub async fn coming_up(store: &Store, days: u32, limit: usize) -> Result<Vec<ComingUpRow>, StoreError> {
    let items = store.upcoming_automation(days, limit).await?;
    let tz = store.options().default_time_zone;
    let now = store.now();
    let off = switched_off(store, items.iter().any(|i| i.kind == "run")).await?;
    Ok(items
        .into_iter()
        .map(|i: UpcomingItem| ComingUpRow {
            when: when_text(Some(i.at), now, tz),
            relative: if i.at > now { ago(i.at, now) } else { String::new() },
            contact_href: format!("/contacts/{}", i.contact_id),
            contact: i.contact_name,
            workflow_href: format!("/workflows/{}", i.workflow_id),
            paused: i.kind == "run" && off.contains(&i.workflow_id),
            workflow: i.workflow,
            what: i.what,
            kind: if i.kind == "run" { "Next step" } else { "Trigger" },
        })
        .collect())
}
