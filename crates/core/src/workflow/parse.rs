//! Reading workflow JSON. Values are read by hand rather than by serde so that every problem is
//! collected, not only the first, and each names its exact path (`steps[2].then[0].title`).

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::time::parse_weekday;
use super::*;
use crate::error::FieldError;
use crate::segment::{self, FieldRef, Occurred, PayloadCondition};
use crate::tag::TagName;
use crate::{Birthday, text};

const TOP_KEYS: &[&str] = &["name", "trigger", "conditions", "steps", "exit_when", "reentry", "holdout_percent"];

const STEP_SHAPE: &str = "must be an action such as {\"action\": \"create_task\", \"title\": \"Call {{first_name}}\"}, \
     a wait such as {\"wait\": \"P2D\"} or a branch such as {\"if\": \"tag = \\\"vip\\\"\", \"then\": [...]}";

const TITLE_CHARS: usize = 300;
const TEXT_CHARS: usize = 2_000;
const NAME_CHARS: usize = 200;

/// Splits a document into its top-level values, reporting every unknown key.
pub(super) fn draft(value: Value) -> Result<(WorkflowDraft, ValidationErrors), ValidationErrors> {
    let Value::Object(mut map) = value else {
        return Err(ValidationErrors::single(
            "",
            "a workflow must be a JSON object such as {\"name\": \"…\", \"trigger\": {…}, \"steps\": […]}",
        ));
    };
    let mut errs = ValidationErrors::default();
    unknown_keys(&mut errs, &map, "", TOP_KEYS, "a workflow");
    let mut take = |key: &str| map.remove(key);
    let draft = WorkflowDraft {
        name: take("name"),
        trigger: take("trigger"),
        conditions: take("conditions"),
        steps: take("steps"),
        exit_when: take("exit_when"),
        reentry: take("reentry"),
        holdout_percent: take("holdout_percent"),
    };
    Ok((draft, errs))
}

pub(super) fn workflow(d: WorkflowDraft, errs: ValidationErrors) -> Result<WorkflowSpec, ValidationErrors> {
    let present = |v: Option<Value>| v.filter(|v| !v.is_null());
    let d = WorkflowDraft {
        name: present(d.name),
        trigger: present(d.trigger),
        conditions: present(d.conditions),
        steps: present(d.steps),
        exit_when: present(d.exit_when),
        reentry: present(d.reentry),
        holdout_percent: present(d.holdout_percent),
    };
    let mut p = Parser { errs, event_placeholders: true, name: None, steps_seen: 0 };
    let name = match &d.name {
        None => p.fail("name", "is required, such as \"Birthday call\""),
        Some(v) => p.string(v, "name").and_then(|s| p.or_fail("name", check_workflow_name(s))),
    };
    p.name = name.clone();
    let trigger = match &d.trigger {
        None => p.fail("trigger", "is required, such as {\"kind\": \"event\", \"type\": \"order.completed\"}"),
        Some(v) => p.trigger(v),
    };
    // Without a readable trigger, placeholders are not held against the workflow.
    p.event_placeholders = trigger.as_ref().is_none_or(Trigger::has_event);
    let conditions = d.conditions.as_ref().and_then(|v| p.filter(v, "conditions"));
    let steps = match &d.steps {
        None => p.fail("steps", "is required: a list of at least one step"),
        Some(v) => p.steps(v, "steps", 0, true),
    };
    let exit_when = d.exit_when.as_ref().map(|v| p.exit_when(v)).unwrap_or_default();
    let reentry = match &d.reentry {
        None => Some(Reentry::PerOccurrence),
        Some(v) => p.reentry(v),
    };
    let holdout_percent = match &d.holdout_percent {
        None => Some(0),
        Some(v) => match v.as_u64() {
            Some(n) if n <= u64::from(crate::campaign::MAX_HOLDOUT_PERCENT) => u8::try_from(n).ok(),
            _ => p.fail("holdout_percent", format!("must be a whole number from 0 to {}", crate::campaign::MAX_HOLDOUT_PERCENT)),
        },
    };
    let mut errs = p.errs;
    match (name, trigger, steps, reentry, holdout_percent) {
        (Some(name), Some(trigger), Some(steps), Some(reentry), Some(holdout_percent)) if errs.is_empty() => {
            Ok(WorkflowSpec { name, trigger, conditions, steps, exit_when, reentry, holdout_percent })
        }
        _ => {
            if errs.is_empty() {
                errs.push("", "is not a valid workflow");
            }
            Err(errs)
        }
    }
}

struct Parser {
    errs: ValidationErrors,
    /// Whether `{{event.…}}` placeholders are allowed (the trigger is an event).
    event_placeholders: bool,
    /// The workflow's own name, so that it cannot start itself.
    name: Option<String>,
    steps_seen: usize,
}

/// `path.key`, or `key` at the top.
fn at(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn unknown_keys(errs: &mut ValidationErrors, map: &Map<String, Value>, path: &str, allowed: &[&str], what: &str) {
    for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errs.push(at(path, key), format!("unknown key; {what} takes {}", and_list(allowed)));
    }
}

/// A serde error about `path` as a field error, naming the key it is about when serde says.
fn serde_error(path: &str, e: &serde_json::Error) -> FieldError {
    let raw = e.to_string();
    for (prefix, what) in [("unknown field `", "unknown key"), ("missing field `", "is required")] {
        if let Some((name, rest)) = raw.strip_prefix(prefix).and_then(|r| r.split_once('`')) {
            let rest = rest.trim_start_matches(", ").replace('`', "");
            let message = if rest.is_empty() { what.to_string() } else { format!("{what}; {rest}") };
            return FieldError::new(at(path, name), message);
        }
    }
    FieldError::new(path, raw.replace('`', ""))
}

/// A map's value, with `null` read as absent.
fn get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

impl Parser {
    fn fail<T>(&mut self, path: impl Into<String>, message: impl Into<String>) -> Option<T> {
        self.errs.push(path, message);
        None
    }

    fn or_fail<T>(&mut self, path: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| self.errs.push(path, m)).ok()
    }

    fn field_result<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        self.errs.take(r)
    }

    fn string<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v str> {
        match v {
            Value::String(s) => Some(s),
            _ => self.fail(path, "must be a string"),
        }
    }

    /// The string at `key`; an error when required and absent.
    fn str_key<'v>(&mut self, map: &'v Map<String, Value>, path: &str, key: &str, required: bool) -> Option<&'v str> {
        match get(map, key) {
            None if required => self.fail(at(path, key), "is required"),
            None => None,
            Some(v) => self.string(v, &at(path, key)),
        }
    }

    /// Trimmed text of at most `max` characters.
    fn text_key(&mut self, map: &Map<String, Value>, path: &str, key: &str, max: usize, required: bool) -> Option<String> {
        let p = at(path, key);
        let s = self.str_key(map, path, key, required)?;
        match text::optional(Some(s.to_string()), &p, max) {
            Ok(Some(t)) => Some(t),
            Ok(None) if required => self.fail(p, "must not be empty"),
            Ok(None) => None,
            Err(e) => self.field_result(Err(e)),
        }
    }

    fn template_key(&mut self, map: &Map<String, Value>, path: &str, key: &str, max: usize, required: bool) -> Option<Template> {
        let t = self.text_key(map, path, key, max, required)?;
        let r = Template::parse(&t, self.event_placeholders);
        self.or_fail(&at(path, key), r)
    }

    fn integer(&mut self, v: &Value, path: &str, min: u32, max: u32) -> Option<u32> {
        match v.as_f64() {
            Some(n) if n.fract() == 0.0 && n >= f64::from(min) && n <= f64::from(max) => Some(n as u32),
            _ => self.fail(path, format!("must be a whole number from {min} to {max}")),
        }
    }

    /// A positive amount (whole for counts).
    fn amount(&mut self, v: &Value, path: &str, whole: bool) -> Option<f64> {
        match v.as_f64() {
            Some(n) if whole && (n.fract() != 0.0 || !(1.0..=1e12).contains(&n)) => {
                self.fail(path, "must be a whole number of at least 1, such as 5")
            }
            Some(n) if n > 0.0 && n <= 1e12 => Some(n),
            _ => self.fail(path, "must be a number greater than zero, such as 1000"),
        }
    }

    /// A length of time such as `P2D`: more than zero (or zero, when `zero_ok`) and at most
    /// `max_days` days.
    fn duration(&mut self, v: &Value, path: &str, max_days: i64, zero_ok: bool) -> Option<chrono::Duration> {
        let raw = self.string(v, path)?;
        if raw.trim().starts_with('-') {
            return self.fail(path, format!("'{}' is negative; write a length of time such as P2D", raw.trim()));
        }
        let d = self.or_fail(path, crate::parse_iso_duration(raw))?;
        if d <= chrono::Duration::zero() && !(zero_ok && d.is_zero()) {
            return self.fail(path, "must be longer than zero, such as P2D (two days) or PT6H (six hours)");
        }
        if d > chrono::Duration::days(max_days) {
            return self.fail(path, format!("must be at most {max_days} days (P{max_days}D)"));
        }
        Some(d)
    }

    fn event_type(&mut self, v: &Value, path: &str) -> Option<String> {
        let t = self.string(v, path)?.trim().to_string();
        let r = check_event_type(&t);
        self.or_fail(path, r).map(|()| t)
    }

    fn filter(&mut self, v: &Value, path: &str) -> Option<Filter> {
        let read = match v {
            Value::String(s) => segment::read_filter(Some(s), None),
            Value::Object(_) => segment::read_filter(None, Some(v)),
            _ => return self.fail(path, "must be a segment filter: text such as tag = \"vip\", or the filter's JSON form"),
        };
        match read {
            Ok(f) => Some(f),
            Err(e) => {
                // read_filter names its own fields (filter, filter_json); here the filter is `path`.
                self.errs.errors.extend(e.errors.into_iter().map(|fe| FieldError { field: path.to_string(), ..fe }));
                None
            }
        }
    }

    fn user(&mut self, v: &Value, path: &str) -> Option<UserRef> {
        let s = self.string(v, path)?.trim();
        if s == "owner" {
            return Some(UserRef::Owner);
        }
        match EmailAddress::parse(s) {
            Ok(e) => Some(UserRef::User(e)),
            Err(_) => self.fail(path, format!("'{s}' is neither owner nor a user's email address")),
        }
    }

    fn trigger(&mut self, v: &Value) -> Option<Trigger> {
        let path = "trigger";
        let Value::Object(map) = v else {
            return self.fail(path, "must be an object such as {\"kind\": \"event\", \"type\": \"order.completed\"}");
        };
        let kinds = or_list(TRIGGER_KINDS);
        let kind = match get(map, "kind") {
            None => return self.fail("trigger.kind", format!("is required: {kinds}")),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return self.fail("trigger.kind", format!("must be one of {kinds}")),
        };
        let keys: &[&str] = match kind {
            "event" => &["kind", "type", "where"],
            "segment_entered" | "segment_exited" => &["kind", "segment"],
            "date" => &["kind", "field", "of_related", "turns", "repeat", "offset", "at"],
            "inactivity" => &["kind", "type", "days"],
            "threshold" => &["kind", "metric", "crosses", "every"],
            "stage_changed" => &["kind", "from", "to"],
            "manual" => &["kind"],
            other => return self.fail("trigger.kind", format!("unknown trigger kind '{other}'; use {kinds}")),
        };
        unknown_keys(&mut self.errs, map, path, keys, &format!("a {kind} trigger"));
        match kind {
            "event" => {
                let event_type = match get(map, "type") {
                    None => self.fail("trigger.type", "is required: the event type, such as product.viewed"),
                    Some(v) => self.event_type(v, "trigger.type"),
                };
                let conditions = get(map, "where").map(|v| self.payload_conditions(v, "trigger.where")).unwrap_or_default();
                Some(Trigger::Event(EventSelector { event_type: event_type?, conditions }))
            }
            "segment_entered" | "segment_exited" => {
                let raw = self.str_key(map, path, "segment", true)?;
                let segment = self.or_fail("trigger.segment", segment::check_segment_name(raw))?;
                Some(if kind == "segment_entered" {
                    Trigger::SegmentEntered { segment }
                } else {
                    Trigger::SegmentExited { segment }
                })
            }
            "date" => self.date_trigger(map).map(Trigger::Date),
            "inactivity" => {
                let event_type = match get(map, "type") {
                    None => self.fail("trigger.type", "is required: the event type that counts, such as visit.checked_in"),
                    Some(v) => self.event_type(v, "trigger.type"),
                };
                let days = match get(map, "days") {
                    None => self.fail("trigger.days", "is required: the number of quiet days, such as 60"),
                    Some(v) => self.integer(v, "trigger.days", 1, MAX_INACTIVITY_DAYS),
                };
                Some(Trigger::Inactivity { event_type: event_type?, days: days? })
            }
            "threshold" => {
                let metric = match self.str_key(map, path, "metric", true) {
                    Some(m) => Metric::parse(m.trim()).or_else(|| {
                        let all: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
                        self.fail("trigger.metric", format!("'{m}' is not a metric; use {}", or_list(&all)))
                    }),
                    None => None,
                };
                let whole = metric.is_none_or(Metric::is_count);
                let rule = match (get(map, "crosses"), get(map, "every")) {
                    (Some(v), None) => self.amount(v, "trigger.crosses", whole).map(ThresholdRule::Crosses),
                    (None, Some(v)) => self.amount(v, "trigger.every", whole).map(ThresholdRule::Every),
                    (Some(_), Some(_)) => self.fail("trigger.every", "give crosses or every, not both"),
                    (None, None) => self
                        .fail("trigger", "needs crosses (fire once, such as \"crosses\": 1000) or every (such as \"every\": 5)"),
                };
                Some(Trigger::Threshold(ThresholdTrigger { metric: metric?, rule: rule? }))
            }
            "stage_changed" => {
                let mut stage = |key: &str| -> Result<Option<LifecycleStage>, ()> {
                    let Some(raw) = self.str_key(map, path, key, false) else {
                        return if get(map, key).is_some() { Err(()) } else { Ok(None) };
                    };
                    match LifecycleStage::parse(raw.trim()) {
                        Some(s) => Ok(Some(s)),
                        None => {
                            let all: Vec<&str> = LifecycleStage::ALL.iter().map(|s| s.as_str()).collect();
                            self.errs.push(at(path, key), format!("'{raw}' is not a stage; use {}", or_list(&all)));
                            Err(())
                        }
                    }
                };
                let (from, to) = (stage("from"), stage("to"));
                let (Ok(from), Ok(to)) = (from, to) else { return None };
                match (from, to) {
                    (None, None) => {
                        self.fail(path, "needs to, from or both, such as {\"kind\": \"stage_changed\", \"to\": \"at_risk\"}")
                    }
                    (Some(f), Some(t)) if f == t => {
                        self.fail("trigger.to", "is the same as from; a stage change goes somewhere else")
                    }
                    _ => Some(Trigger::StageChanged { from, to }),
                }
            }
            _ => Some(Trigger::Manual),
        }
    }

    fn payload_conditions(&mut self, v: &Value, path: &str) -> Vec<PayloadCondition> {
        let Value::Array(items) = v else {
            self.errs.push(
                path,
                "must be a list of payload conditions such as [{\"path\": \"category\", \"op\": \"=\", \"value\": \"shoes\"}]",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let c: PayloadCondition = match serde_json::from_value(item.clone()) {
                Ok(c) => c,
                Err(e) => {
                    self.errs.errors.push(serde_error(&p, &e));
                    continue;
                }
            };
            // The segment rules check payload conditions as part of an event condition; the type
            // is checked on its own above, so any valid one stands in here.
            let probe = Filter::Occurred(Occurred {
                occurred: true,
                events: EventSelector { event_type: "order.completed".into(), conditions: vec![c.clone()] },
                last: None,
            });
            if self.or_fail(&p, segment::check_leaf(&probe)).is_some() {
                out.push(c);
            }
        }
        out
    }

    fn date_trigger(&mut self, map: &Map<String, Value>) -> Option<DateTrigger> {
        let path = "trigger";
        let field = self.str_key(map, path, "field", true).and_then(|raw| {
            let raw = raw.trim();
            match raw {
                "birthday" => Some(DateField::Birthday),
                "first_order" => Some(DateField::FirstOrder),
                _ => match segment::field(raw) {
                    Ok(FieldRef::Custom(key)) => Some(DateField::Custom(key.to_string())),
                    Err(m) if raw.starts_with("custom.") => self.fail("trigger.field", m),
                    _ => self.fail(
                        "trigger.field",
                        format!("'{raw}' is not a date a trigger can count from; use birthday, first_order or custom.<key> (a date custom field)"),
                    ),
                },
            }
        });
        let of_related = self.text_key(map, path, "of_related", 50, false).and_then(|kind| {
            if field.as_ref().is_some_and(|f| *f != DateField::Birthday) {
                return self.fail(
                    "trigger.of_related",
                    "only works with field birthday: related people carry a birthday, no other dates",
                );
            }
            match crate::relation::RelationKind::parse(&kind.to_lowercase()) {
                Some(crate::relation::RelationKind::Custom) => {
                    self.fail("trigger.of_related", "name the custom relation kind itself, such as godchild")
                }
                Some(k) => Some(k.as_str().to_string()),
                None => Some(kind),
            }
        });
        let turns = get(map, "turns").and_then(|v| self.integer(v, "trigger.turns", 1, MAX_TURNS));
        let repeat = self.str_key(map, path, "repeat", false).and_then(|r| match r.trim() {
            "yearly" => Some(Recurrence::Yearly),
            "once" => Some(Recurrence::Once),
            other => self.fail("trigger.repeat", format!("'{other}' is not a repeat rule; use yearly or once")),
        });
        let recurrence = match (get(map, "turns").is_some(), get(map, "repeat").is_some()) {
            (true, true) => {
                self.fail("trigger.repeat", "give turns or repeat, not both: turns fires on that one anniversary only")
            }
            (true, false) => turns.map(Recurrence::Turns),
            (false, true) => repeat,
            (false, false) => Some(Recurrence::Yearly),
        };
        let offset = match get(map, "offset") {
            None => Some(DayOffset::default()),
            Some(v) => self.string(v, "trigger.offset").and_then(|s| {
                let r = DayOffset::parse(s);
                self.or_fail("trigger.offset", r)
            }),
        };
        let at_time = self.time_of_day(map, path);
        Some(DateTrigger { field: field?, of_related, recurrence: recurrence?, offset: offset?, at: at_time? })
    }

    /// `at`, 09:00 when absent.
    fn time_of_day(&mut self, map: &Map<String, Value>, path: &str) -> Option<TimeOfDay> {
        match get(map, "at") {
            None => Some(TimeOfDay::default()),
            Some(v) => {
                let p = at(path, "at");
                let s = self.string(v, &p)?;
                self.or_fail(&p, TimeOfDay::parse(s))
            }
        }
    }

    /// A list of steps at `path` (`steps`, `steps[2].then`).
    fn steps(&mut self, v: &Value, path: &str, depth: usize, non_empty: bool) -> Option<Vec<Step>> {
        let Value::Array(items) = v else {
            return self.fail(path, "must be a list of steps");
        };
        if items.is_empty() && non_empty {
            return self.fail(path, "must have at least one step");
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(step) = self.step(item, &format!("{path}[{i}]"), depth) {
                out.push(step);
            }
        }
        Some(out)
    }

    fn step(&mut self, v: &Value, path: &str, depth: usize) -> Option<Step> {
        self.steps_seen += 1;
        if self.steps_seen == MAX_STEPS + 1 {
            self.errs.push(
                "steps",
                format!("has more than {MAX_STEPS} steps (counting those inside branches); split it up and use start_workflow"),
            );
        }
        let Value::Object(map) = v else {
            return self.fail(path, STEP_SHAPE);
        };
        let kinds: Vec<&str> = ["action", "wait", "wait_until", "if"].into_iter().filter(|k| map.contains_key(*k)).collect();
        match kinds[..] {
            ["action"] => self.action(map, path).map(Step::Action),
            ["wait"] => self.wait_for(map, path).map(Step::Wait),
            ["wait_until"] => self.wait_until(map, path).map(Step::Wait),
            ["if"] => self.branch(map, path, depth).map(Step::Branch),
            [] => self.fail(path, STEP_SHAPE),
            _ => self.fail(path, format!("a step is one action, one wait or one branch, but this one has {}", and_list(&kinds))),
        }
    }

    fn wait_for(&mut self, map: &Map<String, Value>, path: &str) -> Option<Wait> {
        unknown_keys(&mut self.errs, map, path, &["wait", "until_event"], "a wait");
        let wait_path = at(path, "wait");
        let duration = match get(map, "wait") {
            None => self.fail(wait_path, "must be a length of time such as P2D"),
            Some(v) => self.duration(v, &wait_path, MAX_WAIT_DAYS, false),
        };
        let until_event = get(map, "until_event").and_then(|v| self.event_type(v, &at(path, "until_event")));
        Some(Wait::For { duration: duration?, until_event })
    }

    fn wait_until(&mut self, map: &Map<String, Value>, path: &str) -> Option<Wait> {
        unknown_keys(&mut self.errs, map, path, &["wait_until"], "a wait_until step");
        let path = at(path, "wait_until");
        let Some(Value::Object(inner)) = get(map, "wait_until") else {
            return self
                .fail(path, "must be an object such as {\"at\": \"09:00\"} or {\"date\": \"2026-12-24\", \"at\": \"10:00\"}");
        };
        unknown_keys(&mut self.errs, inner, &path, &["date", "weekday", "at"], "wait_until");
        if inner.values().all(Value::is_null) {
            return self.fail(path, "needs date, weekday or at, such as {\"at\": \"09:00\"}");
        }
        let date =
            self.str_key(inner, &path, "date", false).and_then(|s| match NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    self.fail(at(&path, "date"), format!("'{}' is not a date; write YYYY-MM-DD, such as 2026-12-24", s.trim()))
                }
            });
        let weekday = self.str_key(inner, &path, "weekday", false).and_then(|s| {
            let r = parse_weekday(s);
            self.or_fail(&at(&path, "weekday"), r)
        });
        if get(inner, "date").is_some() && get(inner, "weekday").is_some() {
            return self.fail(at(&path, "weekday"), "give date or weekday, not both");
        }
        let at_time = self.time_of_day(inner, &path)?;
        let bad_date = get(inner, "date").is_some() && date.is_none();
        let bad_weekday = get(inner, "weekday").is_some() && weekday.is_none();
        if bad_date || bad_weekday {
            return None;
        }
        Some(Wait::Until { wait_until: WaitUntil { date, weekday, at: at_time } })
    }

    fn branch(&mut self, map: &Map<String, Value>, path: &str, depth: usize) -> Option<Branch> {
        unknown_keys(&mut self.errs, map, path, &["if", "then", "else"], "a branch");
        if depth >= MAX_BRANCH_DEPTH {
            return self.fail(path, format!("branches nest more than {MAX_BRANCH_DEPTH} deep; move the inner part to its own workflow and use start_workflow"));
        }
        let condition = match get(map, "if") {
            None => self.fail(at(path, "if"), "must be a segment filter such as tag = \"vip\""),
            Some(v) => self.filter(v, &at(path, "if")),
        };
        let then_path = at(path, "then");
        let then = match get(map, "then") {
            None => self.fail(then_path, "is required: the steps to run when the condition holds"),
            Some(Value::Array(a)) if a.is_empty() => self.fail(
                then_path,
                "must have at least one step; to act only when the condition does not hold, put not (…) around it",
            ),
            Some(v) => self.steps(v, &then_path, depth + 1, true),
        };
        let otherwise = match get(map, "else") {
            None => Some(Vec::new()),
            Some(v) => self.steps(v, &at(path, "else"), depth + 1, false),
        };
        Some(Branch { condition: condition?, then: then?, otherwise: otherwise? })
    }

    fn action(&mut self, map: &Map<String, Value>, path: &str) -> Option<Action> {
        let action_path = at(path, "action");
        let all = or_list(ACTIONS);
        let name = match map.get("action") {
            Some(Value::String(s)) => s.trim(),
            _ => return self.fail(action_path, format!("must be one of {all}")),
        };
        let keys: &[&str] = match name {
            "create_task" => &["action", "title", "due", "assignee", "reason"],
            "send_message" => &["action", "channel", "template", "subject"],
            "set_stage" => &["action", "stage"],
            "add_tag" | "remove_tag" => &["action", "tag"],
            "set_field" => &["action", "field", "value"],
            "award_points" => &["action", "points", "reason", "coupon"],
            "notify" => &["action", "user", "message"],
            "webhook" => &["action", "url", "secret_ref"],
            "start_workflow" => &["action", "workflow"],
            other => return self.fail(action_path, format!("unknown action '{other}'; use {all}")),
        };
        unknown_keys(&mut self.errs, map, path, keys, name);
        match name {
            "create_task" => {
                let title = self.template_key(map, path, "title", TITLE_CHARS, true);
                let due = get(map, "due").and_then(|v| self.duration(v, &at(path, "due"), MAX_WAIT_DAYS, true));
                let assignee = match get(map, "assignee") {
                    None => Some(UserRef::Owner),
                    Some(v) => self.user(v, &at(path, "assignee")),
                };
                let reason = self.template_key(map, path, "reason", TEXT_CHARS, false);
                Some(Action::CreateTask(CreateTask { title: title?, due, assignee: assignee?, reason }))
            }
            "send_message" => {
                let channel = self.str_key(map, path, "channel", true).and_then(|c| {
                    MessageChannel::parse(c.trim())
                        .or_else(|| self.fail(at(path, "channel"), format!("'{c}' is not a channel; use email, sms or chat")))
                });
                let template = self.text_key(map, path, "template", NAME_CHARS, true);
                let subject = self.template_key(map, path, "subject", TITLE_CHARS, false);
                if channel.is_some_and(MessageChannel::uses_phone) && subject.is_some() {
                    return self.fail(at(path, "subject"), "only email messages have a subject");
                }
                Some(Action::SendMessage(SendMessage { channel: channel?, template: template?, subject }))
            }
            "set_stage" => {
                let raw = self.str_key(map, path, "stage", true)?;
                match LifecycleStage::parse(raw.trim()) {
                    Some(stage) => Some(Action::SetStage { stage }),
                    None => {
                        let all: Vec<&str> = LifecycleStage::ALL.iter().map(|s| s.as_str()).collect();
                        self.fail(at(path, "stage"), format!("'{raw}' is not a stage; use {}", or_list(&all)))
                    }
                }
            }
            "add_tag" | "remove_tag" => {
                let raw = self.str_key(map, path, "tag", true)?;
                let tag = self.or_fail(&at(path, "tag"), TagName::parse(raw))?.as_str().to_string();
                Some(if name == "add_tag" { Action::AddTag { tag } } else { Action::RemoveTag { tag } })
            }
            "set_field" => self.set_field(map, path).map(Action::SetField),
            "award_points" => {
                let points = match get(map, "points") {
                    None => self.fail(at(path, "points"), "is required, such as 100"),
                    Some(v) => self.integer(v, &at(path, "points"), 1, MAX_POINTS),
                };
                let reason = self.template_key(map, path, "reason", TITLE_CHARS, false);
                let coupon = self.text_key(map, path, "coupon", 64, false).and_then(|c| {
                    if c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
                        Some(c)
                    } else {
                        self.fail(at(path, "coupon"), format!("'{c}' is not a coupon code; use letters, digits, - and _"))
                    }
                });
                Some(Action::AwardPoints(AwardPoints { points: points?, reason, coupon }))
            }
            "notify" => {
                let user = match get(map, "user") {
                    None => Some(UserRef::Owner),
                    Some(v) => self.user(v, &at(path, "user")),
                };
                let message = self.template_key(map, path, "message", TEXT_CHARS, true);
                Some(Action::Notify(Notify { user: user?, message: message? }))
            }
            "webhook" => {
                let url = self.str_key(map, path, "url", true).and_then(|raw| {
                    let url = self.field_result(text::url(raw, &at(path, "url")))?;
                    let authority = url.split_once("://").map_or("", |(_, r)| r.split(['/', '?', '#']).next().unwrap_or(""));
                    if authority.contains('@') {
                        return self.fail(
                            at(path, "url"),
                            "must not carry a user name or password; keep credentials in a secret and name it in secret_ref",
                        );
                    }
                    Some(url)
                });
                let secret_ref = self.text_key(map, path, "secret_ref", 100, false).and_then(|s| {
                    if s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
                        Some(s)
                    } else {
                        self.fail(
                            at(path, "secret_ref"),
                            format!("'{s}' is not a secret name; use letters, digits, ., - and _ (the name of a stored secret, never the secret)"),
                        )
                    }
                });
                Some(Action::Webhook(Webhook { url: url?, secret_ref }))
            }
            _ => {
                let raw = self.str_key(map, path, "workflow", true)?;
                let workflow = self.or_fail(&at(path, "workflow"), check_workflow_name(raw))?;
                if self.name.as_ref().is_some_and(|own| own.to_lowercase() == workflow.to_lowercase()) {
                    return self.fail(at(path, "workflow"), "a workflow cannot start itself");
                }
                Some(Action::StartWorkflow { workflow })
            }
        }
    }

    fn set_field(&mut self, map: &Map<String, Value>, path: &str) -> Option<SetField> {
        let field_path = at(path, "field");
        let value_path = at(path, "value");
        let field = self.str_key(map, path, "field", true).map(|f| f.trim().to_string());
        // Unlike elsewhere, null is a value here: it clears the field.
        let Some(value) = map.get("value") else {
            return self.fail(value_path, "is required (null clears the field)");
        };
        let field = field?;
        let settable = SETTABLE_FIELDS.join(", ");
        let value = match field.as_str() {
            f if f.starts_with("custom.") => match segment::field(f) {
                Ok(FieldRef::Custom(_)) => Some(value.clone()),
                Ok(_) | Err(_) => self.fail(&field_path, format!("'{f}' is not a custom field name; write custom.<key>")),
            },
            "stage" => self.fail(&field_path, "is changed with the set_stage action"),
            "tag" | "tags" => self.fail(&field_path, "tags are changed with the add_tag and remove_tag actions"),
            f if !SETTABLE_FIELDS.contains(&f) => {
                self.fail(&field_path, format!("'{f}' cannot be set by a workflow; use one of {settable}, or custom.<key>"))
            }
            _ if value.is_null() => Some(Value::Null),
            f => {
                let Value::String(s) = value else {
                    return self.fail(value_path, "must be a string, or null to clear the field");
                };
                let r = match f {
                    "birthday" => Birthday::parse(s).map(|b| Some(b.to_string())).map_err(|m| FieldError::new(&value_path, m)),
                    "time_zone" => text::time_zone(Some(s.clone()), &value_path),
                    "locale" => text::locale(Some(s.clone()), &value_path),
                    "owner" => EmailAddress::parse_field(s, &value_path).map(|e| Some(e.as_str().to_string())),
                    _ => text::optional(Some(s.clone()), &value_path, NAME_CHARS),
                };
                self.field_result(r).map(|v| v.map_or(Value::Null, Value::String))
            }
        };
        Some(SetField { field, value: value? })
    }

    fn exit_when(&mut self, v: &Value) -> Vec<String> {
        let Value::Array(items) = v else {
            self.errs.push("exit_when", "must be a list of event types such as [\"order.completed\"]");
            return Vec::new();
        };
        if items.len() > MAX_EXIT_EVENTS {
            self.errs.push("exit_when", format!("must list at most {MAX_EXIT_EVENTS} event types"));
        }
        let mut out: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(t) = self.event_type(item, &format!("exit_when[{i}]"))
                && !out.contains(&t)
            {
                out.push(t);
            }
        }
        out
    }

    fn reentry(&mut self, v: &Value) -> Option<Reentry> {
        let rules = "per_occurrence, once, always or {\"after\": \"P30D\"}";
        match v {
            Value::String(s) => match s.trim() {
                "per_occurrence" => Some(Reentry::PerOccurrence),
                "once" => Some(Reentry::Once),
                "always" => Some(Reentry::Always),
                other => self.fail("reentry", format!("'{other}' is not a re-entry rule; use {rules}")),
            },
            Value::Object(map) => {
                unknown_keys(&mut self.errs, map, "reentry", &["after"], "reentry");
                match get(map, "after") {
                    None => self.fail(
                        "reentry.after",
                        "is required: how long after a run starts the contact may start again, such as P30D",
                    ),
                    Some(v) => self.duration(v, "reentry.after", MAX_REENTRY_DAYS, false).map(Reentry::After),
                }
            }
            _ => self.fail("reentry", format!("must be {rules}")),
        }
    }
}
