//! The segment filter language: who a business means ("gold members who have not visited for
//! three weeks"). One AST with two spellings — readable text for people, JSON for programs —
//! that convert into each other without loss. `store` compiles the AST to SQL; nothing here
//! knows about databases.
//!
//! ```text
//! value_tier in ("gold", "vip") and not tag = "staff"
//! count(email.opened, last 90d) >= 5 and count(email.clicked, last 90d) = 0
//! sum(order.completed.total, last 365d) > 1000
//! birthday within next 7d
//! related(child).birthday turns 21 within next 30d
//! no visit.checked_in in last 21d
//! ```

mod parse;
mod print;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use parse::{ParseError, parse};

/// A filter: conditions combined with and, or, not.
///
/// JSON is externally tagged: `{"and": [...]}`, `{"not": {...}}`, `{"compare": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Filter {
    /// Every part holds. Has at least two parts.
    And(Vec<Filter>),
    /// At least one part holds. Has at least two parts.
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `field op value`: `value_tier in ("gold","vip")`, `tag = "staff"`, `order_count >= 2`.
    Compare(Compare),
    /// `field is set` / `field is not set`.
    IsSet(IsSet),
    /// A test on a date: `birthday within next 7d`, `last_order before 60d ago`.
    Date(DateCondition),
    /// An event aggregate compared with a number: `count(email.opened, last 90d) >= 5`.
    Events(EventMetric),
    /// `has visit.checked_in in last 21d` / `no visit.checked_in in last 21d`.
    Occurred(Occurred),
    /// `related(child)` or `related(child).birthday turns 21 within next 30d`.
    Related(Related),
    /// `in segment "Gold members"`.
    Segment(String),
    /// `subscribed("newsletter")` / `unsubscribed("newsletter")`.
    Subscription(Subscription),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    pub field: String,
    pub op: CompareOp,
    pub value: Literal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsSet {
    pub field: String,
    pub set: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "in")]
    In,
    #[serde(rename = "not in")]
    NotIn,
    #[serde(rename = "contains")]
    Contains,
    #[serde(rename = "starts_with")]
    StartsWith,
    #[serde(rename = "ends_with")]
    EndsWith,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::In => "in",
            Self::NotIn => "not in",
            Self::Contains => "contains",
            Self::StartsWith => "starts_with",
            Self::EndsWith => "ends_with",
        }
    }

    /// The operators that compare a number with a number.
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Eq | Self::Ne | Self::Lt | Self::Le | Self::Gt | Self::Ge)
    }
}

/// A value written in a filter. JSON: a string, number, boolean, a list of those, or
/// `{"duration": "14d"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Number(f64),
    Text(String),
    List(Vec<Literal>),
    Duration(DurationLiteral),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurationLiteral {
    pub duration: Span,
}

/// A length of time written `90d`, `3w`, `12mo`, `1y`, `6h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub amount: u32,
    pub unit: SpanUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanUnit {
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

impl SpanUnit {
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Hours => "h",
            Self::Days => "d",
            Self::Weeks => "w",
            Self::Months => "mo",
            Self::Years => "y",
        }
    }
}

/// The largest amount a span may have: a hundred years in hours, well inside every date type.
pub const MAX_SPAN_AMOUNT: u32 = 876_600;

impl Span {
    pub fn days(amount: u32) -> Self {
        Self { amount, unit: SpanUnit::Days }
    }

    /// `now` moved back by this span (calendar months and years; `None` past the calendar's end).
    pub fn before(self, now: crate::Timestamp) -> Option<crate::Timestamp> {
        use chrono::{Duration, Months};
        let n = self.amount;
        match self.unit {
            SpanUnit::Hours => now.checked_sub_signed(Duration::hours(n.into())),
            SpanUnit::Days => now.checked_sub_signed(Duration::days(n.into())),
            SpanUnit::Weeks => now.checked_sub_signed(Duration::weeks(n.into())),
            SpanUnit::Months => now.checked_sub_months(Months::new(n)),
            SpanUnit::Years => now.checked_sub_months(Months::new(n.checked_mul(12)?)),
        }
    }

    /// `now` moved forward by this span.
    pub fn after(self, now: crate::Timestamp) -> Option<crate::Timestamp> {
        use chrono::{Duration, Months};
        let n = self.amount;
        match self.unit {
            SpanUnit::Hours => now.checked_add_signed(Duration::hours(n.into())),
            SpanUnit::Days => now.checked_add_signed(Duration::days(n.into())),
            SpanUnit::Weeks => now.checked_add_signed(Duration::weeks(n.into())),
            SpanUnit::Months => now.checked_add_months(Months::new(n)),
            SpanUnit::Years => now.checked_add_months(Months::new(n.checked_mul(12)?)),
        }
    }

    /// A date moved forward by this span, in whole days (hours round down).
    pub fn add_to_date(self, date: NaiveDate) -> Option<NaiveDate> {
        use chrono::{Days, Months};
        let n = self.amount;
        match self.unit {
            SpanUnit::Hours => date.checked_add_days(Days::new((n / 24).into())),
            SpanUnit::Days => date.checked_add_days(Days::new(n.into())),
            SpanUnit::Weeks => date.checked_add_days(Days::new(u64::from(n) * 7)),
            SpanUnit::Months => date.checked_add_months(Months::new(n)),
            SpanUnit::Years => date.checked_add_months(Months::new(n.checked_mul(12)?)),
        }
    }

    /// A date moved back by this span, in whole days (hours round down).
    pub fn sub_from_date(self, date: NaiveDate) -> Option<NaiveDate> {
        use chrono::{Days, Months};
        let n = self.amount;
        match self.unit {
            SpanUnit::Hours => date.checked_sub_days(Days::new((n / 24).into())),
            SpanUnit::Days => date.checked_sub_days(Days::new(n.into())),
            SpanUnit::Weeks => date.checked_sub_days(Days::new(u64::from(n) * 7)),
            SpanUnit::Months => date.checked_sub_months(Months::new(n)),
            SpanUnit::Years => date.checked_sub_months(Months::new(n.checked_mul(12)?)),
        }
    }

    /// An approximate length in seconds, for comparing with stored durations
    /// (months count 30 days, years 365).
    pub fn approx_seconds(self) -> i64 {
        let n = i64::from(self.amount);
        match self.unit {
            SpanUnit::Hours => n * 3_600,
            SpanUnit::Days => n * 86_400,
            SpanUnit::Weeks => n * 7 * 86_400,
            SpanUnit::Months => n * 30 * 86_400,
            SpanUnit::Years => n * 365 * 86_400,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let bad = || format!("'{s}' is not a duration; write a whole number and a unit: h, d, w, mo or y (90d, 12mo)");
        if digits == 0 {
            return Err(bad());
        }
        let unit = match &s[digits..] {
            "h" => SpanUnit::Hours,
            "d" => SpanUnit::Days,
            "w" => SpanUnit::Weeks,
            "mo" => SpanUnit::Months,
            "y" => SpanUnit::Years,
            _ => return Err(bad()),
        };
        let amount: u32 = s[..digits].parse().map_err(|_| bad())?;
        if amount > MAX_SPAN_AMOUNT {
            return Err(format!("'{s}' is too long a duration"));
        }
        Ok(Self { amount, unit })
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateCondition {
    pub date: DateSource,
    pub test: DateTest,
}

/// Where a date comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DateSource {
    /// A date field: `birthday`, `last_order`, `created_at`, `custom.renewal_date`, …
    Field(String),
    /// `last(visit.checked_in)`: when the latest such event happened.
    Last(EventSelector),
    /// `first(order.completed)`: when the earliest such event happened.
    First(EventSelector),
}

/// What is asked of a date. Day-based tests use the contact's local calendar day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DateTest {
    /// `within last 30d`: between that long ago and now.
    WithinLast(Span),
    /// `within next 30d`: between now and that far ahead. On `birthday`, the next birthday.
    WithinNext(Span),
    /// `anniversary within next 3d`: the date's month and day come round within the span.
    AnniversaryWithinNext(Span),
    /// `turns 21 within next 30d`: the date's 21st anniversary falls within the span.
    TurnsWithinNext { age: u32, within: Span },
    /// `before 60d ago`, `before "2026-01-01"`.
    Before(DateBound),
    /// `after 60d ago`, `after "2026-01-01"`.
    After(DateBound),
    /// `is today`: the contact's local today (on `birthday`, their birthday is today).
    Today,
}

/// A point in time a date is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DateBound {
    /// `60d ago`
    Ago(Span),
    /// `in 30d` (from now)
    FromNow(Span),
    /// `"2026-01-01"`
    On(NaiveDate),
}

/// Events of one type, optionally only those whose payload matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSelector {
    #[serde(rename = "type")]
    pub event_type: String,
    /// Every condition must hold (`where items.category = "shoes"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "where")]
    pub conditions: Vec<PayloadCondition>,
}

/// `items.category = "shoes"`, `total >= 100`, `outcome in ("connected","voicemail")`. A path
/// through a list (`items.category`) holds when any element matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadCondition {
    pub path: String,
    pub op: CompareOp,
    pub value: Literal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMetric {
    pub aggregate: Aggregate,
    #[serde(flatten)]
    pub events: EventSelector,
    /// For `sum`, `avg`, `min` and `max`: the payload field added up (`total`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Only events within this long before now; all time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Span>,
    pub op: CompareOp,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Occurred {
    /// `has …` when true, `no …` when false.
    pub occurred: bool,
    #[serde(flatten)]
    pub events: EventSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Span>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Related {
    /// The relation kind: child, parent, spouse, partner, sibling, colleague, referred_by, or a
    /// custom kind's name.
    pub kind: String,
    /// A test on the related person's birthday; absent means "has such a relation".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<DateTest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub topic: String,
    /// `subscribed(…)` when true, `unsubscribed(…)` when false.
    pub subscribed: bool,
}

/// What kind of value a built-in field holds; decides which conditions make sense on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    /// Several text values (emails, phones, tags, companies): a comparison holds when any does.
    TextSet,
    Number,
    /// A point in time.
    Time,
    /// A month and day with an optional year (birthdays).
    Birthday,
    /// A length of time (time in stage).
    Duration,
}

/// A built-in field a filter can name, with what it holds.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldInfo {
    pub name: &'static str,
    pub kind: FieldKind,
    pub about: &'static str,
}

/// Every built-in field. Custom fields are `custom.<key>`, company custom fields
/// `company.custom.<key>`.
pub const FIELDS: &[FieldInfo] = &[
    FieldInfo { name: "name", kind: FieldKind::Text, about: "display name" },
    FieldInfo { name: "first_name", kind: FieldKind::Text, about: "first name" },
    FieldInfo { name: "last_name", kind: FieldKind::Text, about: "last name" },
    FieldInfo { name: "title", kind: FieldKind::Text, about: "job title" },
    FieldInfo { name: "email", kind: FieldKind::TextSet, about: "any email address" },
    FieldInfo { name: "phone", kind: FieldKind::TextSet, about: "any phone number (E.164 or digits)" },
    FieldInfo { name: "tag", kind: FieldKind::TextSet, about: "any tag" },
    FieldInfo { name: "owner", kind: FieldKind::Text, about: "the owner's email address" },
    FieldInfo { name: "city", kind: FieldKind::Text, about: "address city" },
    FieldInfo { name: "region", kind: FieldKind::Text, about: "address region" },
    FieldInfo { name: "postal_code", kind: FieldKind::Text, about: "address postal code" },
    FieldInfo { name: "country", kind: FieldKind::Text, about: "address country (ISO code)" },
    FieldInfo { name: "time_zone", kind: FieldKind::Text, about: "IANA time zone" },
    FieldInfo { name: "locale", kind: FieldKind::Text, about: "preferred locale" },
    FieldInfo { name: "source", kind: FieldKind::Text, about: "where the contact came from" },
    FieldInfo { name: "birthday", kind: FieldKind::Birthday, about: "birthday (month and day, year when known)" },
    FieldInfo { name: "age", kind: FieldKind::Number, about: "age in whole years (needs a birth year)" },
    FieldInfo { name: "created_at", kind: FieldKind::Time, about: "when the contact was created" },
    FieldInfo { name: "updated_at", kind: FieldKind::Time, about: "when the contact last changed" },
    FieldInfo { name: "company.name", kind: FieldKind::TextSet, about: "any linked company's name" },
    FieldInfo { name: "company.domain", kind: FieldKind::TextSet, about: "any linked company's domain" },
    FieldInfo { name: "company.industry", kind: FieldKind::TextSet, about: "any linked company's industry" },
    FieldInfo { name: "company.size", kind: FieldKind::TextSet, about: "any linked company's size" },
    FieldInfo { name: "company.tag", kind: FieldKind::TextSet, about: "any tag of a linked company" },
    FieldInfo { name: "stage", kind: FieldKind::Text, about: "lifecycle stage" },
    FieldInfo { name: "stage_since", kind: FieldKind::Time, about: "when the current stage began" },
    FieldInfo { name: "time_in_stage", kind: FieldKind::Duration, about: "how long in the current stage" },
    FieldInfo { name: "value_tier", kind: FieldKind::Text, about: "value tier (bronze, silver, gold, vip)" },
    FieldInfo { name: "order_count", kind: FieldKind::Number, about: "orders ever" },
    FieldInfo { name: "revenue", kind: FieldKind::Number, about: "net revenue in the base currency" },
    FieldInfo { name: "average_order_value", kind: FieldKind::Number, about: "revenue per order, base currency" },
    FieldInfo { name: "refund_count", kind: FieldKind::Number, about: "refunds ever" },
    FieldInfo { name: "visit_count", kind: FieldKind::Number, about: "store visits ever" },
    FieldInfo { name: "email_opens", kind: FieldKind::Number, about: "emails opened ever" },
    FieldInfo { name: "email_clicks", kind: FieldKind::Number, about: "email clicks ever" },
    FieldInfo { name: "first_seen", kind: FieldKind::Time, about: "first event" },
    FieldInfo { name: "last_seen", kind: FieldKind::Time, about: "latest event" },
    FieldInfo { name: "last_engagement", kind: FieldKind::Time, about: "latest reply, visit, order or inbound contact" },
    FieldInfo { name: "first_order", kind: FieldKind::Time, about: "first purchase" },
    FieldInfo { name: "last_order", kind: FieldKind::Time, about: "latest purchase" },
    FieldInfo { name: "first_visit", kind: FieldKind::Time, about: "first store visit" },
    FieldInfo { name: "last_visit", kind: FieldKind::Time, about: "latest store visit" },
    FieldInfo { name: "last_open", kind: FieldKind::Time, about: "latest email open" },
    FieldInfo { name: "last_click", kind: FieldKind::Time, about: "latest email click" },
];

/// What a field name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRef<'a> {
    BuiltIn(&'static FieldInfo),
    /// `custom.<key>`: a contact custom field.
    Custom(&'a str),
    /// `company.custom.<key>`: a custom field of any linked company.
    CompanyCustom(&'a str),
}

/// Resolves a field name, or says what it could have been.
pub fn field(name: &str) -> Result<FieldRef<'_>, String> {
    if let Some(info) = FIELDS.iter().find(|f| f.name == name) {
        return Ok(FieldRef::BuiltIn(info));
    }
    let is_key = |k: &str| {
        !k.is_empty()
            && k.len() <= 64
            && k.starts_with(|c: char| c.is_ascii_lowercase())
            && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if let Some(key) = name.strip_prefix("company.custom.") {
        return if is_key(key) { Ok(FieldRef::CompanyCustom(key)) } else { Err(format!("'{key}' is not a custom field key")) };
    }
    if let Some(key) = name.strip_prefix("custom.") {
        return if is_key(key) { Ok(FieldRef::Custom(key)) } else { Err(format!("'{key}' is not a custom field key")) };
    }
    Err(format!("unknown field '{name}'; use one of {}, custom.<key> or company.custom.<key>", field_names()))
}

fn field_names() -> String {
    FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

impl Filter {
    /// The segments this filter names, in order of first mention.
    pub fn segments(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(&mut |f| {
            if let Filter::Segment(name) = f
                && !out.contains(&name.as_str())
            {
                out.push(name.as_str());
            }
        });
        out
    }

    /// Whether the filter's answer can change by time passing alone (windows, relative dates,
    /// time in stage), so that stored memberships need refreshing as the clock moves.
    pub fn depends_on_time(&self) -> bool {
        let mut yes = false;
        self.visit(&mut |f| {
            yes |= match f {
                Filter::Date(_) | Filter::Related(Related { birthday: Some(_), .. }) => true,
                Filter::Events(m) => m.last.is_some(),
                Filter::Occurred(o) => o.last.is_some(),
                Filter::Compare(c) => matches!(c.field.as_str(), "time_in_stage" | "age"),
                _ => false,
            }
        });
        yes
    }

    /// Calls `f` on this node and every node under it, parents first.
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Filter)) {
        f(self);
        match self {
            Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| p.visit(f)),
            Filter::Not(inner) => inner.visit(f),
            _ => {}
        }
    }

    /// Reads the JSON form, checking what serde cannot (field names, non-empty and/or).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        let filter: Filter = serde_json::from_value(value.clone()).map_err(|e| format!("is not a filter: {e}"))?;
        filter.check()?;
        Ok(filter)
    }

    /// The rules the parser enforces, for filters built another way (JSON).
    pub fn check(&self) -> Result<(), String> {
        if self.depth() > MAX_DEPTH {
            return Err(format!("is nested more than {MAX_DEPTH} levels deep"));
        }
        let mut problem = None;
        self.visit(&mut |f| {
            if problem.is_none() {
                problem = match f {
                    Filter::And(parts) | Filter::Or(parts) if parts.len() < 2 => Some("and/or need at least two parts".into()),
                    _ => check_leaf(f).err(),
                };
            }
        });
        problem.map_or(Ok(()), Err)
    }
}

/// How deep and/or/not may nest (the parser refuses deeper text, so JSON must match).
pub const MAX_DEPTH: usize = 64;

impl Filter {
    /// Levels of and/or/not above the deepest condition.
    pub fn depth(&self) -> usize {
        match self {
            Filter::And(parts) | Filter::Or(parts) => 1 + parts.iter().map(Filter::depth).max().unwrap_or(0),
            Filter::Not(inner) => 1 + inner.depth(),
            _ => 0,
        }
    }
}

/// Checks one condition on its own: the field exists and the test suits what it holds.
/// The parser calls this on every condition it reads, so errors carry a position.
pub fn check_leaf(f: &Filter) -> Result<(), String> {
    match f {
        Filter::Compare(c) => check_compare(c),
        Filter::IsSet(s) => field(&s.field).map(|_| ()),
        Filter::Date(d) => {
            if let DateSource::Field(name) = &d.date {
                match field(name)? {
                    FieldRef::BuiltIn(info) if !matches!(info.kind, FieldKind::Time | FieldKind::Birthday) => {
                        return Err(format!(
                            "{name} is not a date; date tests work on dates such as birthday, last_order or custom date fields"
                        ));
                    }
                    _ => {}
                }
            }
            check_date_test(&d.test)
        }
        Filter::Events(m) => {
            crate::event::check_selectable_type(&m.events.event_type)?;
            if !m.op.is_numeric() {
                return Err(format!("{}(…) is a number; compare it with =, !=, <, <=, > or >=", m.aggregate.as_str()));
            }
            if !m.value.is_finite() {
                return Err("the number must be finite".into());
            }
            match (m.aggregate, &m.field) {
                (Aggregate::Count, Some(_)) => Err("count(…) counts events and takes no field".into()),
                (Aggregate::Count, None) => Ok(()),
                (a, None) => Err(format!(
                    "{}(…) needs a payload field to add up, such as {}(order.completed.total)",
                    a.as_str(),
                    a.as_str()
                )),
                // The text form splits `sum(a.b.field)` after two parts.
                (a, Some(_)) if m.events.event_type.split('.').count() != 2 => Err(format!(
                    "{}(…) works on event types of two parts (namespace.name), not {}",
                    a.as_str(),
                    m.events.event_type
                )),
                (_, Some(path)) => check_path(path),
            }?;
            m.events.conditions.iter().try_for_each(check_payload_condition)
        }
        Filter::Occurred(o) => {
            crate::event::check_selectable_type(&o.events.event_type)?;
            o.events.conditions.iter().try_for_each(check_payload_condition)
        }
        Filter::Related(r) => {
            if r.kind.trim().is_empty() {
                return Err("related(…) needs a relation kind such as child".into());
            }
            r.birthday.as_ref().map_or(Ok(()), check_date_test)
        }
        Filter::Segment(name) if name.trim().is_empty() => Err("in segment needs a segment name".into()),
        Filter::Subscription(s) if s.topic.trim().is_empty() => Err("a subscription needs a topic such as \"newsletter\"".into()),
        _ => Ok(()),
    }
}

fn check_compare(c: &Compare) -> Result<(), String> {
    use CompareOp::*;
    let name = &c.field;
    let kind = match field(name)? {
        FieldRef::BuiltIn(info) => info.kind,
        // Custom fields are typed by their definitions, which only the store knows.
        FieldRef::Custom(_) | FieldRef::CompanyCustom(_) => return check_literal_shape(c.op, &c.value),
    };
    check_literal_shape(c.op, &c.value)?;
    let scalars: Vec<&Literal> = match &c.value {
        Literal::List(items) => items.iter().collect(),
        v => vec![v],
    };
    let all = |p: fn(&Literal) -> bool| scalars.iter().all(|l| p(l));
    match kind {
        FieldKind::Text | FieldKind::TextSet => {
            if matches!(c.op, Lt | Le | Gt | Ge) {
                return Err(format!("{name} is text; compare it with =, !=, in, not in, contains, starts_with or ends_with"));
            }
            if !all(|l| matches!(l, Literal::Text(_))) {
                return Err(format!("{name} is text; write the value in double quotes"));
            }
        }
        FieldKind::Number => {
            if matches!(c.op, Contains | StartsWith | EndsWith) {
                return Err(format!("{name} is a number; compare it with =, !=, <, <=, >, >=, in or not in"));
            }
            if !all(|l| matches!(l, Literal::Number(_))) {
                return Err(format!("{name} is a number; write a number such as 3 or 1000"));
            }
        }
        FieldKind::Duration => {
            if !c.op.is_numeric() || !all(|l| matches!(l, Literal::Duration(_))) {
                return Err(format!("{name} is a length of time; write e.g. {name} > 14d"));
            }
        }
        FieldKind::Time | FieldKind::Birthday => {
            return Err(format!(
                "{name} is a date; use a date test such as `{name} within last 30d` or `{name} before \"2026-01-01\"`"
            ));
        }
    }
    Ok(())
}

/// `in` and `not in` take a list, every other operator one value.
fn check_literal_shape(op: CompareOp, value: &Literal) -> Result<(), String> {
    match (op, value) {
        (CompareOp::In | CompareOp::NotIn, Literal::List(items)) => {
            if items.is_empty() {
                return Err(format!("{} needs at least one value", op.as_str()));
            }
            if items.iter().any(|i| matches!(i, Literal::List(_))) {
                return Err("a list cannot hold another list".into());
            }
            Ok(())
        }
        (CompareOp::In | CompareOp::NotIn, _) => Err(format!("{} needs a list such as (\"gold\", \"vip\")", op.as_str())),
        (_, Literal::List(_)) => Err(format!("{} compares with one value; use in (…) for a list", op.as_str())),
        (CompareOp::Contains | CompareOp::StartsWith | CompareOp::EndsWith, v) if !matches!(v, Literal::Text(_)) => {
            Err(format!("{} needs text in double quotes", op.as_str()))
        }
        (_, Literal::Number(n)) if !n.is_finite() => Err("the number must be finite".into()),
        _ => Ok(()),
    }
}

fn check_payload_condition(c: &PayloadCondition) -> Result<(), String> {
    check_path(&c.path)?;
    check_literal_shape(c.op, &c.value)
}

/// A payload path: dot-separated keys.
fn check_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.split('.').all(|k| {
            !k.is_empty()
                && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok { Ok(()) } else { Err(format!("'{path}' is not a payload path; write keys joined by dots, such as items.category")) }
}

fn check_date_test(t: &DateTest) -> Result<(), String> {
    let spans: &[Span] = match t {
        DateTest::WithinLast(s) | DateTest::WithinNext(s) | DateTest::AnniversaryWithinNext(s) => &[*s],
        DateTest::TurnsWithinNext { within, age } => {
            if *age > 150 {
                return Err(format!("turns {age} is not an age"));
            }
            &[*within]
        }
        DateTest::Before(DateBound::Ago(s) | DateBound::FromNow(s))
        | DateTest::After(DateBound::Ago(s) | DateBound::FromNow(s)) => &[*s],
        _ => &[],
    };
    match spans.iter().find(|s| s.amount > MAX_SPAN_AMOUNT) {
        Some(s) => Err(format!("{s} is too long a duration")),
        None => Ok(()),
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        print::write_filter(f, self)
    }
}

impl FromStr for Filter {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        parse(s)
    }
}

/// Reads a filter given as text or as JSON (exactly one), with errors that name the field and,
/// for text, the line and column.
pub fn read_filter(text: Option<&str>, json: Option<&serde_json::Value>) -> Result<Filter, crate::ValidationErrors> {
    use crate::{FieldError, ValidationErrors};
    match (text, json) {
        (Some(_), Some(_)) => Err(ValidationErrors::single("filter", "give filter (text) or filter_json, not both")),
        (None, None) => Err(ValidationErrors::single("filter", "is required: a filter such as value_tier = \"gold\"")),
        (Some(t), None) => parse(t).map_err(|e| ValidationErrors {
            errors: vec![FieldError::at("filter", e.to_string(), e.line, e.column, e.expected.clone())],
        }),
        (None, Some(j)) => Filter::from_json(j).map_err(|m| ValidationErrors::single("filter_json", m)),
    }
}

/// A segment as a client sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentDraft {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The filter in the text syntax.
    pub filter: Option<String>,
    /// The filter in the JSON form (instead of `filter`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter_json: Option<serde_json::Value>,
}

/// A change to a segment: absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentPatch {
    pub name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: crate::Patch<String>,
    pub filter: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter_json: Option<serde_json::Value>,
}

/// A validated segment definition.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSpec {
    pub name: String,
    pub description: Option<String>,
    pub filter: Filter,
}

/// A segment name: trimmed, 1–200 characters.
pub fn check_segment_name(raw: &str) -> Result<String, String> {
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    match name.chars().count() {
        0 => Err("must not be empty".into()),
        n if n > 200 => Err("must be at most 200 characters".into()),
        _ => Ok(name),
    }
}

impl SegmentDraft {
    pub fn parse(self) -> Result<SegmentSpec, crate::ValidationErrors> {
        let mut errs = crate::ValidationErrors::default();
        let name = match self.name.as_deref().map(check_segment_name) {
            Some(Ok(n)) => Some(n),
            Some(Err(m)) => {
                errs.push("name", m);
                None
            }
            None => {
                errs.push("name", "is required");
                None
            }
        };
        let description = self.description.map(|d| d.trim().to_string()).filter(|d| !d.is_empty());
        if description.as_ref().is_some_and(|d| d.chars().count() > 2000) {
            errs.push("description", "must be at most 2000 characters");
        }
        let filter = match read_filter(self.filter.as_deref(), self.filter_json.as_ref()) {
            Ok(f) => Some(f),
            Err(e) => {
                errs.errors.extend(e.errors);
                None
            }
        };
        match (name, filter) {
            (Some(name), Some(filter)) if errs.errors.is_empty() => Ok(SegmentSpec { name, description, filter }),
            _ => Err(errs),
        }
    }
}

impl SegmentPatch {
    /// The segment after the change.
    pub fn apply(self, current: SegmentSpec) -> Result<SegmentSpec, crate::ValidationErrors> {
        let filter_text = self.filter;
        let filter_json = self.filter_json;
        let draft = SegmentDraft {
            name: Some(self.name.unwrap_or(current.name)),
            description: self.description.apply(current.description),
            filter: if filter_text.is_none() && filter_json.is_none() { Some(current.filter.to_string()) } else { filter_text },
            filter_json,
        };
        draft.parse()
    }
}
