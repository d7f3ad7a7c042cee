//! Automation workflows: "when this happens to a contact (and they match these conditions), do
//! these steps". A workflow is data — JSON a business writes or a UI builds — parsed once into a
//! [`WorkflowSpec`] that the engine trusts. `docs/automation.md` is the user's guide to the format.
//!
//! ```json
//! {"name": "Viewed, not bought",
//!  "trigger": {"kind": "event", "type": "product.viewed"},
//!  "steps": [{"wait": "P2D", "until_event": "order.completed"},
//!            {"action": "create_task", "title": "Follow up with {{first_name}}"}],
//!  "exit_when": ["order.completed", "email.replied"]}
//! ```
//!
//! Serialising a spec gives its canonical JSON (defaults written out, durations normalised,
//! filters as text), which parses back to an equal spec.

mod parse;
mod template;
#[cfg(test)]
mod tests;
mod time;

use std::fmt;
use std::str::FromStr;

use chrono::{Duration, NaiveDate, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::profile::LifecycleStage;
use crate::segment::{EventSelector, Filter};
use crate::{EmailAddress, Timestamp, ValidationErrors};

pub use template::{PLACEHOLDERS, Template};
pub use time::{
    AnchorDate, DayOffset, MAX_OFFSET_DAYS, Recurrence, TimeOfDay, format_duration, local_instant, next_occurrence,
    parse_signed_duration,
};

/// How many branches may enclose a step.
pub const MAX_BRANCH_DEPTH: usize = 16;
/// Steps in one workflow, counting those inside branches.
pub const MAX_STEPS: usize = 200;
/// Event types in `exit_when`.
pub const MAX_EXIT_EVENTS: usize = 20;
/// The longest `wait`, and the longest `due` of a task.
pub const MAX_WAIT_DAYS: i64 = 730;
/// The longest `reentry.after`.
pub const MAX_REENTRY_DAYS: i64 = 3_660;
/// The largest inactivity window.
pub const MAX_INACTIVITY_DAYS: u32 = 3_650;
/// The oldest anniversary `turns` may name.
pub const MAX_TURNS: u32 = 150;
/// Points one `award_points` step may give.
pub const MAX_POINTS: u32 = 1_000_000;

/// Checks an event type a workflow listens for (trigger, `until_event`, `exit_when`): any type
/// a segment filter may name.
pub fn check_event_type(raw: &str) -> Result<(), String> {
    crate::event::check_selectable_type(raw)
}

/// A workflow name: inner whitespace collapsed, 1–200 characters.
pub fn check_workflow_name(raw: &str) -> Result<String, String> {
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    match name.chars().count() {
        0 => Err("must not be empty".into()),
        n if n > 200 => Err("must be at most 200 characters".into()),
        _ if name.chars().any(char::is_control) => Err("must not contain control characters".into()),
        _ => Ok(name),
    }
}

/// A workflow as a client sends it. Every value is read by [`WorkflowDraft::parse`], which
/// reports each problem with its path (`steps[1].wait`), so the values stay raw JSON here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowDraft {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub trigger: Option<Value>,
    /// A segment filter, as text or in its JSON form.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub conditions: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub steps: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub exit_when: Option<Value>,
    /// `"per_occurrence"` (default), `"once"`, `"always"` or `{"after": "P30D"}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub reentry: Option<Value>,
    /// 0–90: this share of the people who enter, drawn at random, receive none of its
    /// messages, so that its effect can be measured against them.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u8>))]
    pub holdout_percent: Option<Value>,
}

impl WorkflowDraft {
    /// Validates the draft into a spec, collecting every problem.
    pub fn parse(self) -> Result<WorkflowSpec, ValidationErrors> {
        parse::workflow(self, ValidationErrors::default())
    }
}

/// A validated workflow. `Serialize` writes the canonical JSON, which [`WorkflowSpec::parse`]
/// reads back to an equal spec; `Deserialize` goes through `parse`, so stored workflows are
/// checked again when read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowSpec {
    pub name: String,
    pub trigger: Trigger,
    /// Who may start a run: checked when the trigger fires. Branches check again later.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "filter_text_opt")]
    pub conditions: Option<Filter>,
    pub steps: Vec<Step>,
    /// Event types that end a contact's run: when one happens, the steps still ahead are dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exit_when: Vec<String>,
    pub reentry: Reentry,
    /// This share (0–90 %) of the people who enter get none of its messages: the holdout its
    /// message statistics are measured against. Everything else in their run happens.
    #[serde(skip_serializing_if = "is_zero")]
    pub holdout_percent: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl WorkflowSpec {
    /// Whether `contact` is in this workflow's holdout: a stable draw from the two ids, the
    /// same on every run and every instance.
    pub fn holds_out(&self, workflow: uuid::Uuid, contact: uuid::Uuid) -> bool {
        crate::campaign::in_holdout(workflow, contact, self.holdout_percent)
    }
}

impl WorkflowSpec {
    /// Parses a workflow document, reporting every problem with its path.
    pub fn parse(value: Value) -> Result<Self, ValidationErrors> {
        let (draft, errs) = parse::draft(value)?;
        parse::workflow(draft, errs)
    }

    /// Every step with its path, depth first in the order they run: a branch comes before the
    /// steps of its `then`, which come before those of its `else`.
    pub fn walk(&self) -> impl Iterator<Item = (StepPath, &Step)> {
        fn go<'a>(steps: &'a [Step], at: &StepPath, arm: Arm, out: &mut Vec<(StepPath, &'a Step)>) {
            for (i, step) in steps.iter().enumerate() {
                let path = at.child(arm, i);
                out.push((path.clone(), step));
                if let Step::Branch(b) = step {
                    go(&b.then, &path, Arm::Then, out);
                    go(&b.otherwise, &path, Arm::Else, out);
                }
            }
        }
        let mut out = Vec::new();
        go(&self.steps, &StepPath(Vec::new()), Arm::Steps, &mut out);
        out.into_iter()
    }

    /// The step at `path`.
    pub fn step(&self, path: &StepPath) -> Option<&Step> {
        let mut list = &self.steps;
        let mut found: Option<&Step> = None;
        for &(arm, i) in &path.0 {
            list = match (found, arm) {
                (None, Arm::Steps) => list,
                (Some(Step::Branch(b)), Arm::Then) => &b.then,
                (Some(Step::Branch(b)), Arm::Else) => &b.otherwise,
                _ => return None,
            };
            found = Some(list.get(i)?);
        }
        found
    }

    /// Where a run goes once the step at `path` is done: the next step in its list, or, at the
    /// end of a branch's arm, the step after that branch. `None` when the run is finished. For a
    /// branch itself use [`WorkflowSpec::enter`].
    pub fn next(&self, path: &StepPath) -> Option<StepPath> {
        let mut p = path.clone();
        loop {
            let (arm, i) = *p.0.last()?;
            let sibling = p.sibling(i + 1);
            if self.step(&sibling).is_some() {
                return Some(sibling);
            }
            if arm == Arm::Steps {
                return None;
            }
            p.0.pop();
        }
    }

    /// Where a run goes from the branch at `path` once its condition is known: the first step of
    /// `then` or `else`, or the step after the branch when that arm is empty.
    pub fn enter(&self, path: &StepPath, condition_holds: bool) -> Option<StepPath> {
        let Some(Step::Branch(b)) = self.step(path) else { return None };
        let (arm, steps) = if condition_holds { (Arm::Then, &b.then) } else { (Arm::Else, &b.otherwise) };
        if steps.is_empty() { self.next(path) } else { Some(path.child(arm, 0)) }
    }

    /// The segments the workflow names (trigger, conditions, branches), in order of first mention.
    pub fn segments(&self) -> Vec<&str> {
        fn push<'a>(out: &mut Vec<&'a str>, name: &'a str) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        let mut out = Vec::new();
        if let Trigger::SegmentEntered { segment } | Trigger::SegmentExited { segment } = &self.trigger {
            push(&mut out, segment);
        }
        for s in self.conditions.iter().flat_map(Filter::segments) {
            push(&mut out, s);
        }
        for (_, step) in self.walk() {
            if let Step::Branch(b) = step {
                for s in b.condition.segments() {
                    push(&mut out, s);
                }
            }
        }
        out
    }

    /// The workflows `start_workflow` steps start, in order of first mention.
    pub fn started_workflows(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (_, step) in self.walk() {
            if let Step::Action(Action::StartWorkflow { workflow }) = step
                && !out.contains(&workflow.as_str())
            {
                out.push(workflow);
            }
        }
        out
    }
}

/// The mark in a workflow's listened types that says its trigger is time-based, so its
/// schedules must follow edits of the contacts (a changed birthday, a new relation).
pub const SCHEDULE_MARK: &str = "*schedule";

/// Interactions that come from the person (or that staff logged with them): any of these after
/// a run started means they are already in touch, so the run's outreach stops instead of
/// talking past them.
pub const INBOUND_TOUCH_TYPES: &[&str] =
    &["email.replied", "sms.received", "chat.message", "call.logged", "form.submitted", "support.requested", "feedback.given"];

/// Whether an event of `kind` with `payload` is the person getting in touch: one of
/// [`INBOUND_TOUCH_TYPES`], except an outbound chat message, or a call staff made that did not
/// reach them (voicemail, no answer).
pub fn is_inbound_touch(kind: &str, payload: &Value) -> bool {
    let text = |k: &str| payload.get(k).and_then(Value::as_str);
    match kind {
        "chat.message" => text("direction") != Some("outbound"),
        "call.logged" => text("direction") == Some("inbound") || text("outcome").is_none_or(|o| o == "connected"),
        other => INBOUND_TOUCH_TYPES.contains(&other),
    }
}

impl WorkflowSpec {
    /// The event types the engine must show this workflow when they happen: its trigger's, the
    /// types its waits wait for, and its exit types; plus [`SCHEDULE_MARK`] for time-based
    /// triggers. Sorted, without repeats.
    pub fn listens(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        match &self.trigger {
            Trigger::Event(sel) => out.push(sel.event_type.clone()),
            Trigger::SegmentEntered { .. } => out.push("segment.entered".into()),
            Trigger::SegmentExited { .. } => out.push("segment.exited".into()),
            Trigger::StageChanged { .. } => out.push("lifecycle.changed".into()),
            Trigger::Threshold(t) => out.extend(t.metric.event_types().iter().map(|s| s.to_string())),
            Trigger::Inactivity { event_type, .. } => {
                out.push(event_type.clone());
                out.push(SCHEDULE_MARK.into());
            }
            Trigger::Date(d) => {
                out.push(SCHEDULE_MARK.into());
                if d.field == DateField::FirstOrder {
                    out.push("order.completed".into());
                }
            }
            Trigger::Manual => {}
        }
        for (_, step) in self.walk() {
            if let Step::Wait(Wait::For { until_event: Some(t), .. }) = step {
                out.push(t.clone());
            }
        }
        out.extend(self.exit_when.iter().cloned());
        if self.has_outreach() {
            out.extend(INBOUND_TOUCH_TYPES.iter().map(|s| s.to_string()));
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether some step reaches out to the person (a message, or a task to contact them).
    pub fn has_outreach(&self) -> bool {
        self.walk().any(|(_, s)| matches!(s, Step::Action(a) if a.is_outreach()))
    }
}

impl<'de> Deserialize<'de> for WorkflowSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Self::parse(value).map_err(serde::de::Error::custom)
    }
}

/// What starts a run. JSON is tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// `{"kind": "event", "type": "product.viewed", "where": [{"path": "category", "op": "=", "value": "shoes"}]}`
    Event(EventSelector),
    /// `{"kind": "segment_entered", "segment": "Gold members"}`
    SegmentEntered { segment: String },
    /// `{"kind": "segment_exited", "segment": "Gold members"}`
    SegmentExited { segment: String },
    /// `{"kind": "date", "field": "birthday", "offset": "-P7D", "at": "09:00"}`
    Date(DateTrigger),
    /// `{"kind": "inactivity", "type": "visit.checked_in", "days": 60}`: no such event for that
    /// many days (counted from the latest one; fires once per quiet spell).
    Inactivity {
        #[serde(rename = "type")]
        event_type: String,
        days: u32,
    },
    /// `{"kind": "threshold", "metric": "revenue", "crosses": 1000}` or `"every": 5`.
    Threshold(ThresholdTrigger),
    /// `{"kind": "stage_changed", "to": "at_risk"}`, optionally `"from"`; at least one of them.
    StageChanged {
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<LifecycleStage>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<LifecycleStage>,
    },
    /// Started by a person or the API (`start_workflow` steps too).
    Manual,
}

impl Trigger {
    /// The `kind` as written in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Event(_) => "event",
            Trigger::SegmentEntered { .. } => "segment_entered",
            Trigger::SegmentExited { .. } => "segment_exited",
            Trigger::Date(_) => "date",
            Trigger::Inactivity { .. } => "inactivity",
            Trigger::Threshold(_) => "threshold",
            Trigger::StageChanged { .. } => "stage_changed",
            Trigger::Manual => "manual",
        }
    }

    /// Whether the trigger fires because time passed rather than because something happened, so
    /// the engine has to look for it on a schedule (dates, inactivity).
    pub fn is_time_based(&self) -> bool {
        matches!(self, Trigger::Date(_) | Trigger::Inactivity { .. })
    }

    /// Whether `{{event.<path>}}` placeholders have an event to read from.
    pub fn has_event(&self) -> bool {
        matches!(self, Trigger::Event(_))
    }
}

/// A date trigger. Fires once per occurrence, at `at` in the contact's time zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DateTrigger {
    pub field: DateField,
    /// A relation kind (`child`, `spouse`, a custom kind's name): the trigger then counts from
    /// the birthday of each person the contact has that relation to, and fires for each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of_related: Option<String>,
    /// Written `"repeat": "yearly"`, `"repeat": "once"` or `"turns": 21`.
    #[serde(flatten)]
    pub recurrence: Recurrence,
    pub offset: DayOffset,
    pub at: TimeOfDay,
}

impl DateTrigger {
    /// The next instant after `after` this trigger fires for a contact whose date is `date` and
    /// whose time zone is `tz`. See [`next_occurrence`].
    pub fn next_occurrence(&self, date: AnchorDate, tz: Tz, after: Timestamp) -> Option<Timestamp> {
        next_occurrence(self.recurrence, date, tz, self.offset, self.at, after)
    }
}

impl Serialize for Recurrence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Recurrence::Yearly => m.serialize_entry("repeat", "yearly")?,
            Recurrence::Once => m.serialize_entry("repeat", "once")?,
            Recurrence::Turns(n) => m.serialize_entry("turns", n)?,
        }
        m.end()
    }
}

/// The date a date trigger counts from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DateField {
    /// The contact's birthday (or, with `of_related`, the related person's).
    Birthday,
    /// The day of the contact's first order.
    FirstOrder,
    /// `custom.<key>`: a date custom field of the contact.
    Custom(String),
}

impl fmt::Display for DateField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateField::Birthday => f.write_str("birthday"),
            DateField::FirstOrder => f.write_str("first_order"),
            DateField::Custom(key) => write!(f, "custom.{key}"),
        }
    }
}

impl Serialize for DateField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdTrigger {
    pub metric: Metric,
    #[serde(flatten)]
    pub rule: ThresholdRule,
}

/// A running total of the profile a threshold watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Lifetime net revenue in the base currency, major units (as on the profile).
    Revenue,
    OrderCount,
    VisitCount,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Revenue, Metric::OrderCount, Metric::VisitCount];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Revenue => "revenue",
            Metric::OrderCount => "order_count",
            Metric::VisitCount => "visit_count",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
    }

    /// The event types that move the metric.
    pub fn event_types(self) -> &'static [&'static str] {
        match self {
            Metric::Revenue => &["order.completed", "order.refunded"],
            Metric::OrderCount => &["order.completed"],
            Metric::VisitCount => &["visit.checked_in"],
        }
    }

    /// Counts take whole numbers; revenue any amount.
    pub fn is_count(self) -> bool {
        !matches!(self, Metric::Revenue)
    }
}

/// When a threshold trigger fires, as the metric grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdRule {
    /// `"crosses": 1000`: when the metric goes from below the value to at least it.
    Crosses(f64),
    /// `"every": 5`: each time the metric reaches a further multiple (5, 10, 15, …).
    Every(f64),
}

impl ThresholdRule {
    /// Whether growing from `before` to `now` fires the trigger.
    pub fn fires(self, before: f64, now: f64) -> bool {
        match self {
            ThresholdRule::Crosses(v) => before < v && now >= v,
            ThresholdRule::Every(n) => (now / n).floor() > (before / n).floor() && now >= n,
        }
    }
}

impl Serialize for ThresholdRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            ThresholdRule::Crosses(v) => m.serialize_entry("crosses", &Number(*v))?,
            ThresholdRule::Every(v) => m.serialize_entry("every", &Number(*v))?,
        }
        m.end()
    }
}

/// A number written as an integer when it is whole (`5`, not `5.0`).
struct Number(f64);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 { s.serialize_i64(self.0 as i64) } else { s.serialize_f64(self.0) }
    }
}

/// Whether a contact may run through the workflow again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reentry {
    /// `"per_occurrence"` (the default): each occurrence of the trigger (each birthday, each
    /// matching event) starts one run, unless the contact is still in an earlier run of this
    /// workflow.
    PerOccurrence,
    /// `"once"`: at most one run per contact, ever.
    Once,
    /// `"always"`: every occurrence starts a run, even while earlier runs are still going.
    Always,
    /// `{"after": "P30D"}`: like `per_occurrence`, and only once this long has passed since the
    /// contact's previous run started.
    After(Duration),
}

impl Serialize for Reentry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Reentry::PerOccurrence => s.serialize_str("per_occurrence"),
            Reentry::Once => s.serialize_str("once"),
            Reentry::Always => s.serialize_str("always"),
            Reentry::After(d) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("after", &format_duration(*d))?;
                m.end()
            }
        }
    }
}

/// One step of a workflow. Written as an action (`{"action": …}`), a wait (`{"wait": …}` or
/// `{"wait_until": …}`) or a branch (`{"if": …, "then": […]}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Step {
    Action(Action),
    Wait(Wait),
    Branch(Branch),
}

impl Step {
    /// How long a `wait` step waits at most (its timeout when it has `until_event`).
    pub fn wait_duration(&self) -> Option<Duration> {
        match self {
            Step::Wait(w) => w.duration(),
            _ => None,
        }
    }
}

/// A pause in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Wait {
    /// `{"wait": "P2D"}`; with `"until_event": "order.completed"` the wait also ends as soon as
    /// the contact does that (the duration is then a timeout). The run goes on to the next step
    /// either way; to stop instead, list the type in `exit_when`.
    For {
        #[serde(rename = "wait", serialize_with = "duration_text")]
        duration: Duration,
        #[serde(skip_serializing_if = "Option::is_none")]
        until_event: Option<String>,
    },
    /// `{"wait_until": {"date": "2026-12-24", "at": "10:00"}}`, `{"wait_until": {"weekday":
    /// "monday"}}`, `{"wait_until": {"at": "09:00"}}`: a local time of the contact.
    Until { wait_until: WaitUntil },
}

impl Wait {
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Wait::For { duration, .. } => Some(*duration),
            Wait::Until { .. } => None,
        }
    }
}

/// A point in the contact's local time a run waits for. `at` defaults to 09:00.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitUntil {
    /// That date at `at`. A date already past when the run gets here ends the wait at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    /// The next such day at `at` (today if `at` is still ahead).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "weekday_text")]
    pub weekday: Option<Weekday>,
    /// Alone: the next time the contact's clock shows it (today or tomorrow).
    pub at: TimeOfDay,
}

impl WaitUntil {
    /// When a run that reaches this step at `now` stops waiting, for a contact in `tz`. With a
    /// `date` this is that instant even if it has passed (the wait is then already over);
    /// otherwise it is the first matching local time strictly after `now`.
    pub fn ends_at(&self, tz: Tz, now: Timestamp) -> Option<Timestamp> {
        use chrono::Datelike;
        match (self.date, self.weekday) {
            (Some(date), _) => local_instant(tz, date.and_time(self.at.time())),
            (None, Some(day)) => time::next_local_time(tz, self.at, now, |d| d.weekday() == day),
            (None, None) => time::next_local_time(tz, self.at, now, |_| true),
        }
    }
}

/// `{"if": <filter>, "then": [...], "else": [...]}`. Both arms rejoin: after either, the run
/// goes on with the step after the branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Branch {
    #[serde(rename = "if", serialize_with = "filter_text")]
    pub condition: Filter,
    pub then: Vec<Step>,
    #[serde(rename = "else", skip_serializing_if = "Vec::is_empty")]
    pub otherwise: Vec<Step>,
}

/// Something a run does. JSON is tagged by `action`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateTask(CreateTask),
    SendMessage(SendMessage),
    SetStage { stage: LifecycleStage },
    AddTag { tag: String },
    RemoveTag { tag: String },
    SetField(SetField),
    AwardPoints(AwardPoints),
    Notify(Notify),
    Webhook(Webhook),
    StartWorkflow { workflow: String },
}

impl Action {
    /// The `action` as written in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateTask(_) => "create_task",
            Action::SendMessage(_) => "send_message",
            Action::SetStage { .. } => "set_stage",
            Action::AddTag { .. } => "add_tag",
            Action::RemoveTag { .. } => "remove_tag",
            Action::SetField(_) => "set_field",
            Action::AwardPoints(_) => "award_points",
            Action::Notify(_) => "notify",
            Action::Webhook(_) => "webhook",
            Action::StartWorkflow { .. } => "start_workflow",
        }
    }
}

impl Action {
    /// Whether the action reaches out to the person: a message, or a task for someone to get in
    /// touch. An inbound touch after the run started stops these.
    pub fn is_outreach(&self) -> bool {
        matches!(self, Action::SendMessage(_) | Action::CreateTask(_))
    }
}

/// The trigger kinds, in the order the docs list them.
pub const TRIGGER_KINDS: &[&str] =
    &["event", "segment_entered", "segment_exited", "date", "inactivity", "threshold", "stage_changed", "manual"];

/// The action names, in the order the docs list them.
pub const ACTIONS: &[&str] = &[
    "create_task",
    "send_message",
    "set_stage",
    "add_tag",
    "remove_tag",
    "set_field",
    "award_points",
    "notify",
    "webhook",
    "start_workflow",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateTask {
    pub title: Template,
    /// Due this long after the step runs; no due time when absent.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "duration_text_opt")]
    pub due: Option<Duration>,
    pub assignee: UserRef,
    /// Why the task exists, shown with it. The engine names the workflow when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Template>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendMessage {
    pub channel: MessageChannel,
    /// The name of a message template; the channel renders it.
    pub template: String,
    /// The email subject (email only); the template's own subject when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Template>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageChannel {
    Email,
    Sms,
    /// A chat app reached by phone number (WhatsApp, Signal, RCS…) through a provider.
    Chat,
}

impl MessageChannel {
    pub const ALL: [MessageChannel; 3] = [MessageChannel::Email, MessageChannel::Sms, MessageChannel::Chat];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageChannel::Email => "email",
            MessageChannel::Sms => "sms",
            MessageChannel::Chat => "chat",
        }
    }

    /// Whether messages go to a phone number (SMS and chat) rather than an email address.
    pub fn uses_phone(self) -> bool {
        matches!(self, MessageChannel::Sms | MessageChannel::Chat)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw)
    }
}

/// `{"action": "set_field", "field": "custom.shoe_size", "value": 42}`. A `null` value clears
/// the field. Built-in values are normalised when parsed; custom values are checked against the
/// custom field catalogue when the step runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetField {
    pub field: String,
    pub value: Value,
}

/// Contact fields `set_field` may change besides `custom.<key>`.
pub const SETTABLE_FIELDS: &[&str] =
    &["first_name", "middle_name", "last_name", "display_name", "title", "source", "birthday", "time_zone", "locale", "owner"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AwardPoints {
    pub points: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Template>,
    /// A coupon code handed out with the points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notify {
    pub user: UserRef,
    pub message: Template,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    /// An absolute http(s) URL. Whether it may be called (private addresses, allow lists) is
    /// decided where requests are made.
    pub url: String,
    /// The name of a stored secret the request is signed with; never the secret itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
}

/// A user a step names: the contact's owner, or a user by email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserRef {
    Owner,
    User(EmailAddress),
}

impl Serialize for UserRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UserRef::Owner => s.serialize_str("owner"),
            UserRef::User(e) => s.serialize_str(e.as_str()),
        }
    }
}

/// Where a step sits: `steps[2]`, `steps[2].then[0]`, `steps[2].else[1].then[0]` — the same
/// paths error messages use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepPath(Vec<(Arm, usize)>);

/// The list a step is in: the workflow's `steps`, or a branch's `then` or `else`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arm {
    Steps,
    Then,
    Else,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Steps => "steps",
            Arm::Then => "then",
            Arm::Else => "else",
        }
    }
}

impl StepPath {
    /// `steps[i]`.
    pub fn top(i: usize) -> Self {
        Self(vec![(Arm::Steps, i)])
    }

    /// The `i`th step of this branch's `arm` (or of the top list, for an empty path).
    pub fn child(&self, arm: Arm, i: usize) -> Self {
        let mut p = self.0.clone();
        p.push((arm, i));
        Self(p)
    }

    /// The step at index `i` of the same list.
    fn sibling(&self, i: usize) -> Self {
        let mut p = self.0.clone();
        if let Some(last) = p.last_mut() {
            last.1 = i;
        }
        Self(p)
    }

    /// How many branches enclose the step.
    pub fn depth(&self) -> usize {
        self.0.len().saturating_sub(1)
    }
}

impl fmt::Display for StepPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (arm, i)) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(".")?;
            }
            write!(f, "{}[{i}]", arm.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for StepPath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a step path such as steps[2].then[0]");
        let mut out = Vec::new();
        for (n, part) in s.split('.').enumerate() {
            let (name, rest) = part.split_once('[').ok_or_else(bad)?;
            let index = rest.strip_suffix(']').ok_or_else(bad)?;
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let arm = match (n, name) {
                (0, "steps") => Arm::Steps,
                (1.., "then") => Arm::Then,
                (1.., "else") => Arm::Else,
                _ => return Err(bad()),
            };
            out.push((arm, index.parse().map_err(|_| bad())?));
        }
        Ok(Self(out))
    }
}

impl Serialize for StepPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn filter_text<S: Serializer>(f: &Filter, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(f)
}

fn filter_text_opt<S: Serializer>(f: &Option<Filter>, s: S) -> Result<S::Ok, S::Error> {
    match f {
        Some(f) => s.collect_str(f),
        None => s.serialize_none(),
    }
}

fn duration_text<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn duration_text_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

fn weekday_text<S: Serializer>(d: &Option<Weekday>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(time::weekday_name(*d)),
        None => s.serialize_none(),
    }
}

/// A stored workflow: the document of its current version and whether it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workflow {
    pub id: uuid::Uuid,
    /// Whether triggers start runs. New workflows start switched off.
    pub enabled: bool,
    /// Goes up with every change to the document; a run keeps the version it started on.
    pub version: i64,
    #[serde(flatten)]
    pub spec: WorkflowSpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Keys a `PATCH` may set to `null` to drop them (the others are required).
const CLEARABLE_KEYS: &[&str] = &["conditions", "exit_when", "reentry", "holdout_percent"];

impl WorkflowSpec {
    /// The document after a partial change: each top-level key of `patch` replaces the
    /// current one (`null` drops an optional key), and the whole result is checked again.
    pub fn patched(&self, patch: Value) -> Result<WorkflowSpec, ValidationErrors> {
        let Value::Object(changes) = patch else {
            let mut errs = ValidationErrors::default();
            errs.push("", "send a JSON object with the parts of the workflow to change");
            return Err(errs);
        };
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let mut errs = ValidationErrors::default();
        for (key, value) in changes {
            if value.is_null() {
                if CLEARABLE_KEYS.contains(&key.as_str()) {
                    doc.remove(&key);
                } else {
                    errs.push(key, "cannot be removed; leave it out to keep it, or send a new value");
                }
            } else {
                doc.insert(key, value);
            }
        }
        errs.into_result()?;
        WorkflowSpec::parse(Value::Object(doc))
    }

    /// Users the document names by email (task assignees, people to notify), with the path of
    /// the step that names them.
    pub fn named_users(&self) -> Vec<(String, &EmailAddress)> {
        let mut out = Vec::new();
        for (path, step) in self.walk() {
            match step {
                Step::Action(Action::CreateTask(CreateTask { assignee: UserRef::User(email), .. })) => {
                    out.push((format!("{path}.assignee"), email))
                }
                Step::Action(Action::Notify(Notify { user: UserRef::User(email), .. })) => {
                    out.push((format!("{path}.user"), email))
                }
                _ => {}
            }
        }
        out
    }

    /// Every segment filter in the document with its path: `conditions` and each branch's `if`.
    pub fn filters(&self) -> Vec<(String, &Filter)> {
        let mut out: Vec<(String, &Filter)> = self.conditions.iter().map(|f| ("conditions".to_string(), f)).collect();
        for (path, step) in self.walk() {
            if let Step::Branch(b) = step {
                out.push((format!("{path}.if"), &b.condition));
            }
        }
        out
    }
}
