//! Segment filters compiled to one SQL condition over `contacts c` (and `profiles p`, LEFT
//! JOINed when a condition reads the profile), so the database filters and contacts are never
//! loaded to be checked one by one.
//!
//! Conventions that keep both dialects and the explanation in step:
//! - Two-valued logic: a condition on a missing value is false, and `not` flips it
//!   (`NOT coalesce(x, FALSE)`), so "not gold" includes people without a tier.
//! - Text compares case-insensitively; user text is always a bound parameter; only numbers the
//!   compiler computed and names from fixed lists (time zones, validated keys) are inlined.
//! - "Today" is the contact's local day: conditions that depend on it become a CASE over the
//!   groups of time zones that share a local date at `now` (two or three groups at any moment).

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Days, NaiveDate, TimeZone};
use chrono_tz::Tz;
use rapport_core::Timestamp;
use rapport_core::custom_field::FieldKind as CustomKind;
use rapport_core::event::always_activity;
use rapport_core::money::{Currency, THREE_DECIMALS, ZERO_DECIMALS};
use rapport_core::profile::{LifecycleStage, ProfileRules};
use rapport_core::relation::RelationKind;
use rapport_core::segment::{
    Aggregate, Compare, CompareOp, DateBound, DateCondition, DateSource, DateTest, EventMetric, EventSelector, FieldKind,
    FieldRef, Filter, Literal, Occurred, PayloadCondition, Related, Span, field,
};
use uuid::Uuid;

use crate::db::Dialect;
use crate::value::Value;
use crate::{Result, StoreError};

/// What compiling needs to know besides the filter.
pub(crate) struct Context<'a> {
    pub dialect: Dialect,
    pub now: Timestamp,
    pub rules: &'a ProfileRules,
    /// The time zone of contacts without one.
    pub default_tz: Tz,
    /// Contact and company custom fields by key.
    pub contact_fields: HashMap<String, CustomKind>,
    pub company_fields: HashMap<String, CustomKind>,
    /// Segment ids by lower-cased name.
    pub segments: HashMap<String, Uuid>,
}

/// A compiled condition and whether it needs `profiles p` joined.
pub(crate) struct Compiled {
    pub sql: String,
    pub needs_profile: bool,
    /// Whether only people with a profile row (everyone with an event has one) can match, so
    /// that `profiles p` may be joined as an inner join and the count split over its key.
    pub profile_required: bool,
}

impl Compiled {
    /// The FROM clause the condition expects.
    pub fn from(&self) -> &'static str {
        if self.needs_profile { "FROM contacts c LEFT JOIN profiles p ON p.contact_id = c.id" } else { "FROM contacts c" }
    }
}

/// Compiles `filter`, appending its parameters to `params` (placeholders continue from there).
pub(crate) fn compile(cx: &Context<'_>, filter: &Filter, params: &mut Vec<Value>) -> Result<Compiled> {
    let mut c = Compiler::new(cx, params);
    let sql = c.filter(filter)?;
    Ok(Compiled { sql, needs_profile: c.needs_profile, profile_required: c.needs_profile && requires_profile_row(filter) })
}

/// The payload conditions of `sel` over an events row aliased `e` (`TRUE` when it has none):
/// how a workflow's event trigger decides, exactly as a segment's event condition would.
pub(crate) fn event_conditions(cx: &Context<'_>, sel: &EventSelector, params: &mut Vec<Value>) -> Result<String> {
    let mut c = Compiler::new(cx, params);
    let mut parts = Vec::with_capacity(sel.conditions.len());
    for pc in &sel.conditions {
        parts.push(c.payload_condition(&sel.event_type, pc)?);
    }
    Ok(if parts.is_empty() { "TRUE".into() } else { parts.join(" AND ") })
}

/// One leaf of a filter for an explanation: whether it held, and the value that decided.
pub(crate) struct ExplainLeaf {
    pub held_sql: String,
    pub value_sql: Option<String>,
    /// The value is a point in time (SQLite returns those as integer microseconds).
    pub value_is_time: bool,
    /// The value is JSON (custom fields): SQLite returns its text, PostgreSQL a jsonb.
    pub value_is_json: bool,
}

/// Compiles every leaf of `filter` (in visiting order) for an explanation query.
pub(crate) fn compile_leaves(cx: &Context<'_>, filter: &Filter, params: &mut Vec<Value>) -> Result<(Vec<ExplainLeaf>, bool)> {
    let mut c = Compiler::new(cx, params);
    let mut leaves = Vec::new();
    let mut err = None;
    filter.visit(&mut |f| {
        if err.is_some() || matches!(f, Filter::And(_) | Filter::Or(_) | Filter::Not(_)) {
            return;
        }
        match c.leaf(f).and_then(|held| Ok((held, c.value_of(f)?))) {
            Ok((held_sql, value_sql)) => {
                let value_is_time = is_time_valued(f);
                let value_is_json = is_json_valued(f);
                leaves.push(ExplainLeaf { held_sql, value_sql, value_is_time, value_is_json })
            }
            Err(e) => err = Some(e),
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok((leaves, c.needs_profile)),
    }
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::invalid("filter", message)
}

/// The built-in event types whose money (total or amount) is stored in `amount_minor`.
const MONEY_TYPES: &[&str] = &["order.completed", "order.refunded", "cart.abandoned"];

/// How a date-valued expression is stored, which decides how each test is written.
enum DateExpr {
    /// Month, day and optional year columns (birthdays): `md` = month·100+day, `ymd` with year.
    Birthday { md: String, ymd: String, set: String },
    /// A timestamp column or subquery.
    Time(String),
    /// `YYYY-MM-DD` text (custom date fields).
    DateText(String),
}

struct Compiler<'a, 'p> {
    cx: &'a Context<'a>,
    d: Dialect,
    params: &'p mut Vec<Value>,
    needs_profile: bool,
    /// Time zone names grouped by their local date at `now`.
    zones_by_date: Option<BTreeMap<NaiveDate, Vec<&'static str>>>,
}

impl<'a, 'p> Compiler<'a, 'p> {
    fn new(cx: &'a Context<'a>, params: &'p mut Vec<Value>) -> Self {
        Self { cx, d: cx.dialect, params, needs_profile: false, zones_by_date: None }
    }

    fn param(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("${}", self.params.len())
    }

    /// A number parameter, typed for PostgreSQL (a float bound to a bigint context fails).
    fn num_param(&mut self, v: f64) -> String {
        let p = self.param(Value::F64(v));
        match self.d {
            Dialect::Sqlite => p,
            Dialect::Postgres => format!("CAST({p} AS DOUBLE PRECISION)"),
        }
    }

    fn time_param(&mut self, t: Timestamp) -> String {
        self.param(Value::Time(t))
    }

    fn profile(&mut self, column: &str) -> String {
        self.needs_profile = true;
        format!("p.{column}")
    }

    fn filter(&mut self, f: &Filter) -> Result<String> {
        match f {
            Filter::And(parts) => {
                // Cheap column tests first: both engines stop at the first false term, and the
                // event subqueries are the expensive ones.
                let mut ordered: Vec<&Filter> = parts.iter().collect();
                ordered.sort_by_key(|p| cost(p));
                let sql: Vec<String> = ordered.into_iter().map(|p| self.filter(p)).collect::<Result<_>>()?;
                Ok(format!("({})", sql.join(" AND ")))
            }
            Filter::Or(parts) => {
                let sql: Vec<String> = parts.iter().map(|p| self.filter(p)).collect::<Result<_>>()?;
                Ok(format!("({})", sql.join(" OR ")))
            }
            Filter::Not(inner) => Ok(format!("NOT coalesce({}, FALSE)", self.filter(inner)?)),
            leaf => self.leaf(leaf),
        }
    }

    fn leaf(&mut self, f: &Filter) -> Result<String> {
        rapport_core::segment::check_leaf(f).map_err(invalid)?;
        match f {
            Filter::Compare(c) => self.compare(c),
            Filter::IsSet(s) => {
                let sql = self.is_set(&s.field)?;
                Ok(if s.set { sql } else { format!("NOT coalesce({sql}, FALSE)") })
            }
            Filter::Date(d) => self.date_condition(d),
            Filter::Events(m) => self.metric(m),
            Filter::Occurred(o) => self.occurred(o),
            Filter::Related(r) => self.related(r),
            Filter::Segment(name) => {
                let id = *self
                    .cx
                    .segments
                    .get(&name.trim().to_lowercase())
                    .ok_or_else(|| invalid(format!("no segment is named \"{name}\"")))?;
                let p = self.param(id);
                Ok(format!("EXISTS (SELECT 1 FROM segment_members m WHERE m.segment_id = {p} AND m.contact_id = c.id)"))
            }
            Filter::Subscription(s) => {
                let topic = self.param(s.topic.trim().to_lowercase());
                let want = if s.subscribed { "TRUE" } else { "FALSE" };
                let mut latest = format!(
                    "(SELECT s.subscribed FROM contact_subscriptions s WHERE s.contact_id = c.id AND s.topic IN ({topic}, '*') \
                     ORDER BY s.changed_at DESC LIMIT 1)"
                );
                // Someone who never chose is subscribed to a topic that is on by default (as
                // sending treats them); "unsubscribed" stays an explicit choice.
                if s.subscribed {
                    latest = format!(
                        "coalesce({latest}, (SELECT st.default_subscribed FROM subscription_topics st WHERE st.key = {topic}))"
                    );
                }
                Ok(match self.d {
                    Dialect::Sqlite => format!("{latest} = {}", if s.subscribed { 1 } else { 0 }),
                    Dialect::Postgres => format!("{latest} = {want}"),
                })
            }
            Filter::And(_) | Filter::Or(_) | Filter::Not(_) => self.filter(f),
        }
    }

    // ---- comparisons -------------------------------------------------------------------

    fn compare(&mut self, c: &Compare) -> Result<String> {
        match field(&c.field).map_err(invalid)? {
            FieldRef::BuiltIn(info) => match info.kind {
                FieldKind::Text => self.text_field_compare(info.name, c),
                FieldKind::TextSet => self.set_compare(info.name, c),
                FieldKind::Number => {
                    let (expr, scale, zero_default) = self.number_field(info.name);
                    self.number_compare(&expr, c.op, &c.value, scale, zero_default)
                }
                FieldKind::Duration => self.duration_compare(c),
                FieldKind::Time | FieldKind::Birthday => Err(invalid(format!("{} is a date; use a date test", info.name))),
            },
            FieldRef::Custom(key) => {
                let kind = self.custom_kind(false, key)?;
                let col = "c.custom_fields";
                self.custom_compare(col, key, kind, c, &format!("custom.{key}"))
            }
            FieldRef::CompanyCustom(key) => {
                let kind = self.custom_kind(true, key)?;
                let positive = Compare { op: positive_op(c.op), ..c.clone() };
                let inner = self.custom_compare("co.custom_fields", key, kind, &positive, &format!("company.custom.{key}"))?;
                let exists = format!(
                    "EXISTS (SELECT 1 FROM contact_companies cc JOIN companies co ON co.id = cc.company_id \
                     WHERE cc.contact_id = c.id AND {inner})"
                );
                Ok(negate_if(is_negative(c.op), exists))
            }
        }
    }

    fn custom_kind(&self, company: bool, key: &str) -> Result<CustomKind> {
        let (fields, what, prefix) = if company {
            (&self.cx.company_fields, "company", "company.custom.")
        } else {
            (&self.cx.contact_fields, "contact", "custom.")
        };
        fields.get(key).copied().ok_or_else(|| {
            let mut known: Vec<&str> = fields.keys().map(String::as_str).collect();
            known.sort_unstable();
            let list = if known.is_empty() { "none are defined".to_string() } else { format!("defined: {}", known.join(", ")) };
            invalid(format!("{prefix}{key} is not a {what} custom field ({list})"))
        })
    }

    fn custom_compare(&mut self, col: &str, key: &str, kind: CustomKind, c: &Compare, name: &str) -> Result<String> {
        let d = self.d;
        let indexed = custom_value_expr(d, col, key, kind).unwrap_or_default();
        match kind {
            CustomKind::Number => self.number_compare(&indexed, c.op, &c.value, 1.0, false),
            CustomKind::Money => {
                let amount = json_num(d, col, &[key, "amount_minor"]);
                let currency = json_text(d, col, &[key, "currency"]);
                let major = format!("({amount} / {})", minor_divisor(&currency));
                self.number_compare(&major, c.op, &c.value, 1.0, false)
            }
            CustomKind::Bool => match (&c.value, c.op) {
                (Literal::Bool(b), CompareOp::Eq | CompareOp::Ne) => {
                    let eq = match d {
                        Dialect::Sqlite => format!("json_type({col}, '{}') = '{b}'", json_path(&[key])),
                        Dialect::Postgres => {
                            format!("jsonb_typeof({col} -> '{key}') = 'boolean' AND ({col} ->> '{key}') = '{b}'")
                        }
                    };
                    Ok(negate_if(c.op == CompareOp::Ne, format!("({eq})")))
                }
                _ => Err(invalid(format!("{name} is yes/no; compare it with = true or = false"))),
            },
            CustomKind::MultiEnum => {
                let inner = self.text_compare("lower(v.value)", positive_op(c.op), &c.value, name)?;
                let list = match d {
                    Dialect::Sqlite => format!("json_each({col}, '{}') v", json_path(&[key])),
                    Dialect::Postgres => {
                        format!(
                            "jsonb_array_elements_text(CASE jsonb_typeof({col} -> '{key}') WHEN 'array' THEN {col} -> '{key}' END) v(value)"
                        )
                    }
                };
                Ok(negate_if(is_negative(c.op), format!("EXISTS (SELECT 1 FROM {list} WHERE {inner})")))
            }
            CustomKind::Date => {
                // Dates are stored as YYYY-MM-DD, so text order is date order.
                let expr = indexed;
                match (&c.value, c.op) {
                    (Literal::Text(s), op) if op.is_numeric() => {
                        let date = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                            .map_err(|_| invalid(format!("{name} is a date; write it as \"YYYY-MM-DD\"")))?;
                        let p = self.param(date.format("%Y-%m-%d").to_string());
                        let sql = format!("{expr} {} {p}", sql_op(positive_op(op)));
                        Ok(negate_if(op == CompareOp::Ne, sql))
                    }
                    _ => Err(invalid(format!("{name} is a date; use a date test such as `{name} within next 30d`"))),
                }
            }
            _ => self.text_compare(&indexed, c.op, &c.value, name),
        }
    }

    /// A text column or expression compared with a literal; `expr` must already be lower-cased.
    fn text_compare(&mut self, expr: &str, op: CompareOp, value: &Literal, name: &str) -> Result<String> {
        let texts = literal_texts(value).ok_or_else(|| invalid(format!("{name} is text; write the value in double quotes")))?;
        let lowered: Vec<String> = texts.iter().map(|s| s.trim().to_lowercase()).collect();
        let sql = match positive_op(op) {
            CompareOp::Eq => format!("{expr} = {}", self.param(lowered[0].clone())),
            CompareOp::In => {
                let ps: Vec<String> = lowered.into_iter().map(|s| self.param(s)).collect();
                format!("{expr} IN ({})", ps.join(", "))
            }
            CompareOp::Contains => format!("{expr} LIKE {} ESCAPE '\\'", self.param(format!("%{}%", like_escape(&lowered[0])))),
            CompareOp::StartsWith => format!("{expr} LIKE {} ESCAPE '\\'", self.param(format!("{}%", like_escape(&lowered[0])))),
            CompareOp::EndsWith => format!("{expr} LIKE {} ESCAPE '\\'", self.param(format!("%{}", like_escape(&lowered[0])))),
            CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => {
                format!("{expr} {} {}", sql_op(op), self.param(lowered[0].clone()))
            }
            CompareOp::Ne | CompareOp::NotIn => unreachable!("positive_op never returns a negative operator"),
        };
        Ok(negate_if(is_negative(op), sql))
    }

    fn text_field_compare(&mut self, name: &str, c: &Compare) -> Result<String> {
        match name {
            "stage" => return self.stage_compare(c),
            "value_tier" => return self.tier_compare(c),
            "owner" => {
                let email = self.text_compare("lower(u.email)", positive_op(c.op), &c.value, name)?;
                let uname = self.text_compare("u.name_key", positive_op(c.op), &c.value, name)?;
                let exists = format!("EXISTS (SELECT 1 FROM users u WHERE u.id = c.owner_id AND ({email} OR {uname}))");
                return Ok(negate_if(is_negative(c.op), exists));
            }
            _ => {}
        }
        let expr = text_column(name);
        self.text_compare(&expr, c.op, &c.value, name)
    }

    /// Stages are a fixed vocabulary: unknown names are an error, not an empty segment. People
    /// without a profile are leads.
    fn stage_compare(&mut self, c: &Compare) -> Result<String> {
        let texts = literal_texts(&c.value).ok_or_else(|| invalid("stage is text; write the value in double quotes"))?;
        let mut stages = Vec::new();
        for t in &texts {
            let s = LifecycleStage::parse(&t.trim().to_lowercase()).ok_or_else(|| {
                invalid(format!("'{t}' is not a lifecycle stage; use lead, active, loyal, at_risk, lost or reactivated"))
            })?;
            stages.push(s.as_str());
        }
        if !matches!(positive_op(c.op), CompareOp::Eq | CompareOp::In) {
            return Err(invalid("compare stage with =, !=, in or not in"));
        }
        let col = self.profile("lifecycle_stage");
        let ps: Vec<String> = stages.iter().map(|s| self.param(*s)).collect();
        let mut sql = format!("{col} IN ({})", ps.join(", "));
        if stages.contains(&"lead") {
            sql = format!("({sql} OR p.contact_id IS NULL)");
        }
        Ok(negate_if(is_negative(c.op), sql))
    }

    fn tier_compare(&mut self, c: &Compare) -> Result<String> {
        let texts = literal_texts(&c.value).ok_or_else(|| invalid("value_tier is text; write the value in double quotes"))?;
        let tiers = &self.cx.rules.tiers;
        let mut names = Vec::new();
        for t in &texts {
            let tier = tiers.iter().find(|x| x.name.eq_ignore_ascii_case(t.trim())).ok_or_else(|| {
                let known: Vec<&str> = tiers.iter().map(|x| x.name.as_str()).collect();
                invalid(format!("'{t}' is not a value tier; the tiers are {}", known.join(", ")))
            })?;
            names.push(tier.name.clone());
        }
        if !matches!(positive_op(c.op), CompareOp::Eq | CompareOp::In) {
            return Err(invalid("compare value_tier with =, !=, in or not in"));
        }
        let col = self.profile("value_tier");
        let ps: Vec<String> = names.into_iter().map(|s| self.param(s)).collect();
        Ok(negate_if(is_negative(c.op), format!("{col} IN ({})", ps.join(", "))))
    }

    /// Multi-valued fields: the comparison holds when any value matches; a negative operator
    /// holds when none does.
    fn set_compare(&mut self, name: &str, c: &Compare) -> Result<String> {
        let op = positive_op(c.op);
        let inner = match name {
            "email" => {
                let t = self.text_compare("ce.address", op, &c.value, name)?;
                format!("SELECT 1 FROM contact_emails ce WHERE ce.contact_id = c.id AND {t}")
            }
            "phone" => {
                // Phone numbers match on their digits, so any formatting finds them.
                let value = match &c.value {
                    Literal::Text(s) => Literal::Text(digits(s)),
                    Literal::List(items) => Literal::List(
                        items
                            .iter()
                            .map(|i| if let Literal::Text(s) = i { Literal::Text(digits(s)) } else { i.clone() })
                            .collect(),
                    ),
                    v => v.clone(),
                };
                let t = self.text_compare("cp.digits", op, &value, name)?;
                format!("SELECT 1 FROM contact_phones cp WHERE cp.contact_id = c.id AND {t}")
            }
            "tag" => {
                let value = map_texts(&c.value, &|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
                let t = self.text_compare("t.name_key", op, &value, name)?;
                format!("SELECT 1 FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id AND {t}")
            }
            "company.tag" => {
                let value = map_texts(&c.value, &|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
                let t = self.text_compare("t.name_key", op, &value, name)?;
                format!(
                    "SELECT 1 FROM contact_companies cc JOIN company_tags kt ON kt.company_id = cc.company_id \
                     JOIN tags t ON t.id = kt.tag_id WHERE cc.contact_id = c.id AND {t}"
                )
            }
            company => {
                let col = match company {
                    "company.name" => "co.name_key",
                    "company.domain" => "lower(co.domain)",
                    "company.industry" => "lower(co.industry)",
                    _ => "lower(co.size)",
                };
                let t = self.text_compare(col, op, &c.value, name)?;
                format!(
                    "SELECT 1 FROM contact_companies cc JOIN companies co ON co.id = cc.company_id WHERE cc.contact_id = c.id AND {t}"
                )
            }
        };
        Ok(negate_if(is_negative(c.op), format!("EXISTS ({inner})")))
    }

    /// The SQL of a built-in number field, the factor from literal units to stored units, and
    /// whether a missing profile counts as zero.
    fn number_field(&mut self, name: &str) -> (String, f64, bool) {
        let base_scale = 10f64.powi(self.cx.rules.base().exponent() as i32);
        match name {
            "age" => {
                let today = self
                    .by_local_date(|day| (day.year() as i64 * 10_000 + day.month() as i64 * 100 + day.day() as i64).to_string());
                (
                    format!(
                        "(CASE WHEN c.birthday_year IS NOT NULL THEN ({today} - (c.birthday_year * 10000 + c.birthday_month * 100 + c.birthday_day)) / 10000 END)"
                    ),
                    1.0,
                    false,
                )
            }
            "revenue" => (self.profile("revenue_base_minor"), base_scale, true),
            "average_order_value" => {
                let count = self.profile("order_count");
                (
                    format!("(CASE WHEN {count} > 0 THEN CAST(p.revenue_base_minor AS DOUBLE PRECISION) / {count} END)"),
                    base_scale,
                    false,
                )
            }
            other => (self.profile(other), 1.0, true),
        }
    }

    /// `expr op value`, with literal numbers multiplied by `scale` into stored units. When a
    /// missing value counts as zero and zero would pass, missing rows are let through
    /// explicitly; otherwise the bare column keeps the condition index-friendly.
    fn number_compare(&mut self, expr: &str, op: CompareOp, value: &Literal, scale: f64, zero_default: bool) -> Result<String> {
        let numbers: Vec<f64> =
            match value {
                Literal::Number(n) => vec![*n],
                Literal::List(items) => items
                    .iter()
                    .map(|i| {
                        if let Literal::Number(n) = i {
                            Ok(*n)
                        } else {
                            Err(invalid("write numbers in the list, such as (1, 2)"))
                        }
                    })
                    .collect::<Result<_>>()?,
                _ => return Err(invalid("compare a number with a number, such as >= 3")),
            };
        let zero_passes = zero_default && {
            let pos = positive_op(op);
            let passes = match pos {
                CompareOp::Eq => numbers[0] == 0.0,
                CompareOp::Lt => 0.0 < numbers[0],
                CompareOp::Le => 0.0 <= numbers[0],
                CompareOp::Gt => 0.0 > numbers[0],
                CompareOp::Ge => 0.0 >= numbers[0],
                CompareOp::In => numbers.contains(&0.0),
                _ => false,
            };
            passes != is_negative(op)
        };
        let expr = if zero_passes { format!("coalesce({expr}, 0)") } else { expr.to_string() };
        let sql = match positive_op(op) {
            CompareOp::In => {
                let ps: Vec<String> = numbers.iter().map(|n| self.num_param(n * scale)).collect();
                format!("{expr} IN ({})", ps.join(", "))
            }
            pos @ (CompareOp::Eq | CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge) => {
                format!("{expr} {} {}", sql_op(pos), self.num_param(numbers[0] * scale))
            }
            _ => return Err(invalid("compare a number with =, !=, <, <=, >, >=, in or not in")),
        };
        Ok(negate_if(is_negative(op), sql))
    }

    /// `time_in_stage > 14d` is `stage_since` more than 14 days ago; people without a profile
    /// have been leads since they were created.
    fn duration_compare(&mut self, c: &Compare) -> Result<String> {
        let Literal::Duration(d) = &c.value else {
            return Err(invalid("time_in_stage is a length of time; write e.g. time_in_stage > 14d"));
        };
        let since = self.profile("stage_since");
        let since = format!("coalesce({since}, c.created_at)");
        let at = d.duration.before(self.cx.now).ok_or_else(|| invalid("the duration reaches before the calendar begins"))?;
        let p = self.time_param(at);
        // Longer in the stage means an earlier start.
        let op = match c.op {
            CompareOp::Gt => "<",
            CompareOp::Ge => "<=",
            CompareOp::Lt => ">",
            CompareOp::Le => ">=",
            _ => return Err(invalid("compare time_in_stage with <, <=, > or >=")),
        };
        Ok(format!("{since} {op} {p}"))
    }

    fn is_set(&mut self, name: &str) -> Result<String> {
        let d = self.d;
        Ok(match field(name).map_err(invalid)? {
            FieldRef::BuiltIn(info) => match info.name {
                "email" => "EXISTS (SELECT 1 FROM contact_emails ce WHERE ce.contact_id = c.id)".into(),
                "phone" => "EXISTS (SELECT 1 FROM contact_phones cp WHERE cp.contact_id = c.id)".into(),
                "tag" => "EXISTS (SELECT 1 FROM contact_tags ct WHERE ct.contact_id = c.id)".into(),
                "company.tag" => "EXISTS (SELECT 1 FROM contact_companies cc JOIN company_tags kt ON kt.company_id = cc.company_id WHERE cc.contact_id = c.id)".into(),
                "company.name" => "EXISTS (SELECT 1 FROM contact_companies cc WHERE cc.contact_id = c.id)".into(),
                n @ ("company.domain" | "company.industry" | "company.size") => {
                    let col = &n["company.".len()..];
                    format!(
                        "EXISTS (SELECT 1 FROM contact_companies cc JOIN companies co ON co.id = cc.company_id WHERE cc.contact_id = c.id AND co.{col} IS NOT NULL AND co.{col} <> '')"
                    )
                }
                "owner" => "c.owner_id IS NOT NULL".into(),
                "birthday" => "c.birthday_month IS NOT NULL".into(),
                "age" => "c.birthday_year IS NOT NULL".into(),
                "created_at" | "updated_at" => "TRUE".into(),
                "stage" | "time_in_stage" | "order_count" | "refund_count" | "visit_count" | "email_opens" | "email_clicks" | "revenue" => {
                    "TRUE".into()
                }
                "value_tier" => format!("{} IS NOT NULL", self.profile("value_tier")),
                "average_order_value" => format!("{} > 0", self.profile("order_count")),
                n if info.kind == FieldKind::Time => {
                    let (expr, _) = self.time_column(n);
                    format!("{expr} IS NOT NULL")
                }
                n => {
                    let col = text_column(n);
                    format!("({col} IS NOT NULL AND {col} <> '')")
                }
            },
            FieldRef::Custom(key) => {
                self.custom_kind(false, key)?;
                json_present(d, "c.custom_fields", key)
            }
            FieldRef::CompanyCustom(key) => {
                self.custom_kind(true, key)?;
                format!(
                    "EXISTS (SELECT 1 FROM contact_companies cc JOIN companies co ON co.id = cc.company_id WHERE cc.contact_id = c.id AND {})",
                    json_present(d, "co.custom_fields", key)
                )
            }
        })
    }

    // ---- dates -------------------------------------------------------------------------

    /// A built-in time field's column and whether it lives on the profile.
    fn time_column(&mut self, name: &str) -> (String, bool) {
        let col = match name {
            "created_at" => return ("c.created_at".into(), false),
            "updated_at" => return ("c.updated_at".into(), false),
            "stage_since" => "stage_since",
            "first_seen" => "first_seen_at",
            "last_seen" => "last_seen_at",
            "last_engagement" => "last_engagement_at",
            "first_order" => "first_order_at",
            "last_order" => "last_order_at",
            "first_visit" => "first_visit_at",
            "last_visit" => "last_visit_at",
            "last_open" => "last_open_at",
            _ => "last_click_at",
        };
        (self.profile(col), true)
    }

    fn date_condition(&mut self, dc: &DateCondition) -> Result<String> {
        let expr = self.date_expr(&dc.date)?;
        self.date_test(&expr, &dc.test)
    }

    fn date_expr(&mut self, source: &DateSource) -> Result<DateExpr> {
        Ok(match source {
            DateSource::Field(name) => match field(name).map_err(invalid)? {
                FieldRef::BuiltIn(info) if info.kind == FieldKind::Birthday => {
                    birthday_expr("c.birthday_year", "c.birthday_month", "c.birthday_day")
                }
                FieldRef::BuiltIn(info) => DateExpr::Time(self.time_column(info.name).0),
                FieldRef::Custom(key) => match self.custom_kind(false, key)? {
                    kind @ CustomKind::Date => {
                        DateExpr::DateText(custom_value_expr(self.d, "c.custom_fields", key, kind).unwrap_or_default())
                    }
                    _ => return Err(invalid(format!("custom.{key} is not a date field"))),
                },
                FieldRef::CompanyCustom(key) => {
                    return Err(invalid(format!("company.custom.{key}: date tests work on contact fields only")));
                }
            },
            DateSource::Last(sel) if let Some(t) = tally(sel) => DateExpr::Time(self.profile(t.last)),
            DateSource::Last(sel) | DateSource::First(sel) => {
                let agg = if matches!(source, DateSource::Last(_)) { "max" } else { "min" };
                let cond = self.events_where(sel, None)?;
                DateExpr::Time(format!("(SELECT {agg}(e.occurred_at) FROM events e WHERE {cond})"))
            }
        })
    }

    fn date_test(&mut self, expr: &DateExpr, test: &DateTest) -> Result<String> {
        let now = self.cx.now;
        let too_far = || invalid("the date reaches beyond the calendar");
        match expr {
            DateExpr::Time(x) => {
                let x = x.clone();
                match test {
                    DateTest::WithinLast(s) => {
                        let from = self.time_param(s.before(now).ok_or_else(too_far)?);
                        let to = self.time_param(now);
                        Ok(format!("({x} >= {from} AND {x} <= {to})"))
                    }
                    DateTest::WithinNext(s) => {
                        let from = self.time_param(now);
                        let to = self.time_param(s.after(now).ok_or_else(too_far)?);
                        Ok(format!("({x} >= {from} AND {x} <= {to})"))
                    }
                    DateTest::Before(b) => {
                        let at = self.bound_instant(b)?;
                        Ok(format!("{x} < {}", self.time_param(at)))
                    }
                    DateTest::After(b) => {
                        let at = self.bound_instant(b)?;
                        Ok(format!("{x} > {}", self.time_param(at)))
                    }
                    DateTest::Today => {
                        // Local midnight differs per zone: group zones by the instant their day began.
                        let zones = self.zones_by_day_start();
                        let default_start = day_start(self.cx.default_tz, now);
                        let default_sql = self.time_window(&x, default_start);
                        let mut branches = Vec::new();
                        for (start, names) in zones {
                            if start != default_start {
                                let w = self.time_window(&x, start);
                                branches.push(format!("WHEN c.time_zone IN ({}) THEN {w}", quote_list(&names)));
                            }
                        }
                        Ok(case_or(branches, default_sql))
                    }
                    DateTest::AnniversaryWithinNext(s) => {
                        let md = timestamp_part(self.d, &x, false, self.cx.default_tz);
                        let ymd = timestamp_part(self.d, &x, true, self.cx.default_tz);
                        self.anniversary(&md, &ymd, *s)
                    }
                    DateTest::TurnsWithinNext { age, within } => {
                        let ymd = timestamp_part(self.d, &x, true, self.cx.default_tz);
                        self.turns(&ymd, *age, *within)
                    }
                }
            }
            DateExpr::Birthday { md, ymd, set } => match test {
                DateTest::WithinNext(s) | DateTest::AnniversaryWithinNext(s) => {
                    let (md, s) = (md.clone(), *s);
                    Ok(format!("({set} AND {})", self.by_local_date(|day| md_in(&md, day, s, true))))
                }
                DateTest::WithinLast(s) => {
                    let (md, s) = (md.clone(), *s);
                    Ok(format!("({set} AND {})", self.by_local_date(|day| md_in(&md, day, s, false))))
                }
                DateTest::Today => {
                    let md = md.clone();
                    Ok(format!("({set} AND {})", self.by_local_date(|day| md_in(&md, day, Span::days(0), true))))
                }
                DateTest::TurnsWithinNext { age, within } => self.turns(&ymd.clone(), *age, *within),
                DateTest::Before(b) | DateTest::After(b) => {
                    let op = if matches!(test, DateTest::Before(_)) { "<" } else { ">" };
                    let ymd = ymd.clone();
                    let b = *b;
                    let mut bad = false;
                    let sql = self.by_local_date(|day| match bound_date(&b, day) {
                        Some(date) => format!("{ymd} {op} {}", ymd_number(date)),
                        None => {
                            bad = true;
                            "FALSE".into()
                        }
                    });
                    if bad { Err(too_far()) } else { Ok(sql) }
                }
            },
            DateExpr::DateText(x) => {
                let x = x.clone();
                let mut bad = false;
                // A plain range that holds wherever the per-zone test can: the field's index
                // serves it, and the exact test only runs on what it finds.
                let days = self.local_days();
                let text = |d: NaiveDate| format!("'{}'", d.format("%Y-%m-%d"));
                let (first, last) = (days[0], days[days.len() - 1]);
                let superset = match test {
                    DateTest::WithinLast(s) => {
                        s.sub_from_date(first).map(|lo| format!("{x} >= {} AND {x} <= {}", text(lo), text(last)))
                    }
                    DateTest::WithinNext(s) => {
                        s.add_to_date(last).map(|hi| format!("{x} >= {} AND {x} <= {}", text(first), text(hi)))
                    }
                    DateTest::Today => Some(format!("{x} >= {} AND {x} <= {}", text(first), text(last))),
                    DateTest::Before(b) => {
                        days.iter().filter_map(|d| bound_date(b, *d)).max().map(|d| format!("{x} < {}", text(d)))
                    }
                    DateTest::After(b) => {
                        days.iter().filter_map(|d| bound_date(b, *d)).min().map(|d| format!("{x} > {}", text(d)))
                    }
                    DateTest::AnniversaryWithinNext(_) | DateTest::TurnsWithinNext { .. } => None,
                };
                let sql = match test {
                    DateTest::WithinLast(s) | DateTest::WithinNext(s) => {
                        let past = matches!(test, DateTest::WithinLast(_));
                        let s = *s;
                        self.by_local_date(|day| {
                            let other = if past { s.sub_from_date(day) } else { s.add_to_date(day) };
                            match other {
                                Some(o) => {
                                    let (a, b) = if past { (o, day) } else { (day, o) };
                                    format!("({x} >= '{}' AND {x} <= '{}')", a.format("%Y-%m-%d"), b.format("%Y-%m-%d"))
                                }
                                None => {
                                    bad = true;
                                    "FALSE".into()
                                }
                            }
                        })
                    }
                    DateTest::Today => self.by_local_date(|day| format!("{x} = '{}'", day.format("%Y-%m-%d"))),
                    DateTest::Before(b) | DateTest::After(b) => {
                        let op = if matches!(test, DateTest::Before(_)) { "<" } else { ">" };
                        let b = *b;
                        self.by_local_date(|day| match bound_date(&b, day) {
                            Some(date) => format!("{x} {op} '{}'", date.format("%Y-%m-%d")),
                            None => {
                                bad = true;
                                "FALSE".into()
                            }
                        })
                    }
                    DateTest::AnniversaryWithinNext(s) => {
                        let md = format!("CAST(substr({x}, 6, 2) || substr({x}, 9, 2) AS INTEGER)");
                        let ymd = format!("CAST(replace({x}, '-', '') AS INTEGER)");
                        return self.anniversary(&md, &ymd, *s);
                    }
                    DateTest::TurnsWithinNext { age, within } => {
                        let ymd = format!("CAST(replace({x}, '-', '') AS INTEGER)");
                        return self.turns(&ymd, *age, *within);
                    }
                };
                if bad {
                    return Err(too_far());
                }
                Ok(match superset {
                    Some(range) => format!("({range} AND {sql})"),
                    None => sql,
                })
            }
        }
    }

    /// `[start, start + 1 day)` for a timestamp expression.
    fn time_window(&mut self, x: &str, start: Timestamp) -> String {
        let from = self.time_param(start);
        let to = self.time_param(start + chrono::Duration::days(1));
        format!("({x} >= {from} AND {x} < {to})")
    }

    /// The date's month and day come round within the span, and at least a year has passed
    /// since the date itself (a purchase today has no anniversary today). `ymd` is the date as
    /// year·10000+month·100+day, compared with the last date that has a full year behind it by
    /// the window's end.
    fn anniversary(&mut self, md: &str, ymd: &str, span: Span) -> Result<String> {
        let mut bad = false;
        let sql = self.by_local_date(|day| {
            match span.add_to_date(day).and_then(|end| end.checked_sub_months(chrono::Months::new(12))) {
                Some(latest) => format!("({} AND {ymd} <= {})", md_in(md, day, span, true), ymd_number(latest)),
                None => {
                    bad = true;
                    "FALSE".into()
                }
            }
        });
        if bad { Err(invalid("the date reaches beyond the calendar")) } else { Ok(sql) }
    }

    /// The date's `age`th anniversary falls within the span from the local today.
    fn turns(&mut self, ymd: &str, age: u32, span: Span) -> Result<String> {
        let ymd = ymd.to_string();
        let mut bad = false;
        let sql = self.by_local_date(|day| match span.add_to_date(day) {
            Some(end) => {
                let mut values = Vec::new();
                let mut d = day;
                while d <= end && values.len() < 800 {
                    let y = d.year() - age as i32;
                    values.push(y as i64 * 10_000 + d.month() as i64 * 100 + d.day() as i64);
                    // Born on 29 February: the birthday falls on the 28th in common years.
                    if d.month() == 2 && d.day() == 28 && !is_leap(d.year()) && is_leap(y) {
                        values.push(y as i64 * 10_000 + 229);
                    }
                    d = match d.checked_add_days(Days::new(1)) {
                        Some(n) => n,
                        None => break,
                    };
                }
                format!("{ymd} IN ({})", join_numbers(&values))
            }
            None => {
                bad = true;
                "FALSE".into()
            }
        });
        if bad { Err(invalid("the date reaches beyond the calendar")) } else { Ok(sql) }
    }

    fn bound_instant(&self, b: &DateBound) -> Result<Timestamp> {
        let now = self.cx.now;
        let too_far = || invalid("the date reaches beyond the calendar");
        match b {
            DateBound::Ago(s) => s.before(now).ok_or_else(too_far),
            DateBound::FromNow(s) => s.after(now).ok_or_else(too_far),
            // Absolute dates begin at midnight in Rapport's default time zone.
            DateBound::On(date) => {
                let midnight = date.and_hms_opt(0, 0, 0).ok_or_else(too_far)?;
                self.cx
                    .default_tz
                    .from_local_datetime(&midnight)
                    .earliest()
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .ok_or_else(too_far)
            }
        }
    }

    /// `sql(today)` for each local date contacts are in at `now`: a CASE over the time zones
    /// whose date differs from the default zone's, the default's branch covering the rest
    /// (including contacts without a time zone).
    /// Every local date some contact is on at `now`, earliest first.
    fn local_days(&mut self) -> Vec<NaiveDate> {
        let default_day = self.cx.now.with_timezone(&self.cx.default_tz).date_naive();
        let mut days: Vec<NaiveDate> = self.zone_groups().keys().copied().collect();
        days.push(default_day);
        days.sort_unstable();
        days.dedup();
        days
    }

    /// Time zone names grouped by their local date at `now`, computed once per compilation.
    fn zone_groups(&mut self) -> &BTreeMap<NaiveDate, Vec<&'static str>> {
        let now = self.cx.now;
        self.zones_by_date.get_or_insert_with(|| {
            let mut groups: BTreeMap<NaiveDate, Vec<&'static str>> = BTreeMap::new();
            for tz in chrono_tz::TZ_VARIANTS {
                groups.entry(now.with_timezone(&tz).date_naive()).or_default().push(tz.name());
            }
            groups
        })
    }

    fn by_local_date(&mut self, mut sql: impl FnMut(NaiveDate) -> String) -> String {
        let default_day = self.cx.now.with_timezone(&self.cx.default_tz).date_naive();
        let groups = self.zone_groups();
        let others: Vec<(NaiveDate, Vec<&'static str>)> =
            groups.iter().filter(|(d, _)| **d != default_day).map(|(d, n)| (*d, n.clone())).collect();
        let default_sql = sql(default_day);
        let branches: Vec<String> = others
            .into_iter()
            .map(|(day, names)| format!("WHEN c.time_zone IN ({}) THEN {}", quote_list(&names), sql(day)))
            .collect();
        case_or(branches, default_sql)
    }

    fn zones_by_day_start(&self) -> BTreeMap<Timestamp, Vec<&'static str>> {
        let mut groups: BTreeMap<Timestamp, Vec<&'static str>> = BTreeMap::new();
        for tz in chrono_tz::TZ_VARIANTS {
            groups.entry(day_start(tz, self.cx.now)).or_default().push(tz.name());
        }
        groups
    }

    // ---- events ------------------------------------------------------------------------

    /// The WHERE of a per-contact event subquery over `events e`.
    fn events_where(&mut self, sel: &EventSelector, last: Option<Span>) -> Result<String> {
        let t = self.param(sel.event_type.clone());
        let mut sql = format!("e.contact_id = c.id AND e.type = {t}");
        if let Some(span) = last {
            let since = self.since(span)?;
            sql.push_str(&format!(" AND e.occurred_at >= {}", self.time_param(since)));
        }
        for pc in &sel.conditions {
            let cond = self.payload_condition(&sel.event_type, pc)?;
            sql.push_str(" AND ");
            sql.push_str(&cond);
        }
        Ok(sql)
    }

    fn since(&self, span: Span) -> Result<Timestamp> {
        span.before(self.cx.now).ok_or_else(|| invalid("the window reaches before the calendar begins"))
    }

    /// Whether the profile's last time says an event of the tallied type may lie in the window:
    /// exact for a type's own counters, a necessary condition for last seen.
    fn tally_any(&mut self, t: Tally, last: Option<Span>) -> Result<String> {
        Ok(match last {
            Some(span) => {
                let since = self.since(span)?;
                format!("{} >= {}", self.profile(t.last), self.time_param(since))
            }
            None => format!("{} IS NOT NULL", self.profile(t.last)),
        })
    }

    fn payload_condition(&mut self, event_type: &str, pc: &PayloadCondition) -> Result<String> {
        let cond = self.payload_condition_exact(event_type, pc)?;
        Ok(match self.payload_text_hint(pc) {
            Some(hint) => format!("({hint} AND {cond})"),
            None => cond,
        })
    }

    /// On SQLite, a text condition that holds on some payload value also finds its text in the
    /// payload's JSON, which is stored as serde_json writes it (letters, digits and non-ASCII
    /// unescaped): a substring test rules out most events before their JSON is parsed.
    fn payload_text_hint(&mut self, pc: &PayloadCondition) -> Option<String> {
        if self.d != Dialect::Sqlite
            || !matches!(pc.op, CompareOp::Eq | CompareOp::In | CompareOp::Contains | CompareOp::StartsWith | CompareOp::EndsWith)
        {
            return None;
        }
        let texts = literal_texts(&pc.value)?;
        let lowered: Vec<String> = texts.iter().map(|t| t.trim().to_lowercase()).collect();
        // Not for text JSON escapes, and not for text that could be a number or yes/no value
        // (SQLite compares those as it prints them, which need not be how the JSON spells them).
        let usable = |t: &String| {
            !t.chars().any(|ch| ch == '"' || ch == '\\' || ch.is_control())
                && t.chars().any(|ch| !(ch.is_ascii_digit() || "+-.e".contains(ch)))
        };
        if !lowered.iter().all(usable) {
            return None;
        }
        let tests: Vec<String> = lowered.into_iter().map(|t| format!("instr(lower(e.payload), {}) > 0", self.param(t))).collect();
        Some(if tests.len() == 1 { tests.into_iter().next().unwrap_or_default() } else { format!("({})", tests.join(" OR ")) })
    }

    fn payload_condition_exact(&mut self, event_type: &str, pc: &PayloadCondition) -> Result<String> {
        let keys: Vec<&str> = pc.path.split('.').collect();
        let name = format!("payload field {}", pc.path);
        if let Some(money) = self.money_value(event_type, &pc.path) {
            return self.number_compare(&money, pc.op, &pc.value, 1.0, false);
        }
        // A path through `items` holds when any line item matches.
        if keys[0] == "items" && keys.len() > 1 {
            let positive = PayloadCondition { op: positive_op(pc.op), ..pc.clone() };
            let (list, item) = match self.d {
                Dialect::Sqlite => ("json_each(e.payload, '$.items') j".to_string(), "j.value"),
                Dialect::Postgres => (
                    "jsonb_array_elements(CASE jsonb_typeof(e.payload -> 'items') WHEN 'array' THEN e.payload -> 'items' END) j(value)"
                        .to_string(),
                    "j.value",
                ),
            };
            let inner = self.json_compare(item, &keys[1..], &positive, &name)?;
            return Ok(negate_if(is_negative(pc.op), format!("EXISTS (SELECT 1 FROM {list} WHERE {inner})")));
        }
        self.json_compare("e.payload", &keys, pc, &name)
    }

    /// A JSON value at `path` under `col` compared with a literal, typed by the literal.
    fn json_compare(&mut self, col: &str, path: &[&str], pc: &PayloadCondition, name: &str) -> Result<String> {
        let d = self.d;
        let first = match &pc.value {
            Literal::List(items) => items.first(),
            v => Some(v),
        };
        match first {
            Some(Literal::Number(_)) => self.number_compare(&json_num(d, col, path), pc.op, &pc.value, 1.0, false),
            Some(Literal::Bool(b)) => {
                let eq = match d {
                    Dialect::Sqlite => format!("json_type({col}, '{}') = '{b}'", json_path(path)),
                    Dialect::Postgres => format!("({col} #>> '{{{}}}') = '{b}'", path.join(",")),
                };
                match pc.op {
                    CompareOp::Eq => Ok(eq),
                    CompareOp::Ne => Ok(negate_if(true, eq)),
                    _ => Err(invalid(format!("{name}: compare true/false with = or !="))),
                }
            }
            Some(Literal::Text(_)) => self.text_compare(&format!("lower({})", json_text(d, col, path)), pc.op, &pc.value, name),
            _ => Err(invalid(format!("{name}: compare with text, a number or true/false"))),
        }
    }

    /// The event's stored money in base-currency major units, for `total`/`amount` of the
    /// built-in types that carry money.
    fn money_value(&self, event_type: &str, path: &str) -> Option<String> {
        if !MONEY_TYPES.contains(&event_type) || !matches!(path, "total" | "amount") {
            return None;
        }
        let rules = self.cx.rules;
        let base = rules.base();
        let mut arms =
            vec![format!("WHEN '{}' THEN {}", base.as_str(), float_lit(self.d, 1.0 / 10f64.powi(base.exponent() as i32)))];
        for (code, rate) in &rules.exchange_rates {
            if let Ok(cur) = Currency::parse(code)
                && cur != base
            {
                arms.push(format!(
                    "WHEN '{}' THEN {}",
                    cur.as_str(),
                    float_lit(self.d, rate / 10f64.powi(cur.exponent() as i32))
                ));
            }
        }
        Some(format!("(e.amount_minor * CASE e.currency {} END)", arms.join(" ")))
    }

    fn metric_value(&mut self, m: &EventMetric) -> Result<(String, bool)> {
        let cond = self.events_where(&m.events, m.last)?;
        if m.aggregate == Aggregate::Count {
            return Ok((format!("(SELECT count(*) FROM events e WHERE {cond})"), false));
        }
        let path = m.field.as_deref().unwrap_or_default();
        let (value, cond) = match self.money_value(&m.events.event_type, path) {
            // Aggregates skip NULLs anyway; saying so lets the partial `events_money` index serve.
            Some(money) => (money, format!("{cond} AND e.amount_minor IS NOT NULL")),
            None => (json_num(self.d, "e.payload", &path.split('.').collect::<Vec<_>>()), cond),
        };
        Ok(match m.aggregate {
            Aggregate::Sum => (format!("(SELECT coalesce(sum({value}), 0) FROM events e WHERE {cond})"), false),
            a => (format!("(SELECT {}({value}) FROM events e WHERE {cond})", a.as_str()), true),
        })
    }

    fn metric(&mut self, m: &EventMetric) -> Result<String> {
        // Existence is cheaper than counting: the index seek stops at the first event.
        if m.aggregate == Aggregate::Count {
            let exists = match (m.op, m.value) {
                (CompareOp::Ge, v) if v > 0.0 && v <= 1.0 => Some(true),
                (CompareOp::Gt, v) if (0.0..1.0).contains(&v) => Some(true),
                (CompareOp::Eq, 0.0) => Some(false),
                (CompareOp::Lt, v) if v > 0.0 && v <= 1.0 => Some(false),
                (CompareOp::Le, v) if (0.0..1.0).contains(&v) => Some(false),
                _ => None,
            };
            if let Some(occurred) = exists {
                return self.occurred(&Occurred { occurred, events: m.events.clone(), last: m.last });
            }
        }
        if let Some(Tally { count: Some(count), .. }) = tally(&m.events)
            && m.aggregate == Aggregate::Count
            && m.last.is_none()
        {
            let count = self.profile(count);
            return self.number_compare(&count, m.op, &Literal::Number(m.value), 1.0, true);
        }
        let probe = match (min_count(m), m.op, count_cap(m)) {
            // "At least k" holds when a k-th event exists: the index range stops there, and
            // nothing is counted (3% faster than counting the first k on a million people).
            (Some(k), CompareOp::Ge | CompareOp::Gt, Some(_)) => {
                let cond = self.events_where(&m.events, m.last)?;
                format!("EXISTS (SELECT 1 FROM events e WHERE {cond} LIMIT 1 OFFSET {})", k - 1)
            }
            (_, _, cap) => {
                let value = match cap {
                    // Whether another count comparison passes is settled by its first `cap`
                    // events: the index range stops there instead of running through a heavy
                    // reader's history.
                    Some(cap) => {
                        let cond = self.events_where(&m.events, m.last)?;
                        format!("(SELECT count(*) FROM (SELECT 1 FROM events e WHERE {cond} LIMIT {cap}) capped)")
                    }
                    None => self.metric_value(m)?.0,
                };
                self.number_compare(&value, m.op, &Literal::Number(m.value), 1.0, false)?
            }
        };
        let Some(t) = bound_of_type(&m.events.event_type) else {
            return Ok(probe);
        };
        // The profile rules most people out before their events are read: with no event of the
        // type in the window, count and sum are 0 and the other aggregates have no value; and
        // a windowed (or filtered) count never exceeds the all-time count.
        let any = self.tally_any(t, m.last)?;
        let empty_passes = matches!(m.aggregate, Aggregate::Count | Aggregate::Sum) && zero_passes(m.op, m.value);
        if empty_passes {
            return Ok(format!("(NOT coalesce({any}, FALSE) OR {probe})"));
        }
        match (min_count(m), t.count) {
            (Some(k), Some(count)) if k > 1 => {
                let count = self.profile(count);
                Ok(format!("({count} >= {k} AND {any} AND {probe})"))
            }
            _ => Ok(format!("({any} AND {probe})")),
        }
    }

    fn occurred(&mut self, o: &Occurred) -> Result<String> {
        // Without payload conditions the profile answers outright; with them it still rules out
        // the people who had no event of the type in the window.
        if let Some(t) = tally(&o.events) {
            let any = self.tally_any(t, o.last)?;
            return Ok(if o.occurred { any } else { format!("NOT coalesce({any}, FALSE)") });
        }
        let cond = self.events_where(&o.events, o.last)?;
        let exists = format!("EXISTS (SELECT 1 FROM events e WHERE {cond})");
        let sql = match bound_of_type(&o.events.event_type) {
            Some(t) => format!("({} AND {exists})", self.tally_any(t, o.last)?),
            None => exists,
        };
        Ok(if o.occurred { sql } else { format!("NOT coalesce({sql}, FALSE)") })
    }

    fn related(&mut self, r: &Related) -> Result<String> {
        let kind_sql = match RelationKind::parse(r.kind.trim()) {
            Some(k) if k != RelationKind::Custom => format!("r.kind = {}", self.param(k.as_str())),
            _ => format!("r.kind = 'custom' AND lower(r.custom_kind) = {}", self.param(r.kind.trim().to_lowercase())),
        };
        let mut sql = format!(
            "EXISTS (SELECT 1 FROM relations r LEFT JOIN contacts rc ON rc.id = r.related_contact_id WHERE r.contact_id = c.id AND {kind_sql}"
        );
        if let Some(test) = &r.birthday {
            // The relation's own birthday, or the linked contact's when the relation has none:
            // taken whole, as the API shows it (a relation's `--02-01` must not borrow the
            // contact's year).
            let own = "r.related_birthday_month IS NOT NULL";
            let expr = birthday_expr(
                &format!("(CASE WHEN {own} THEN r.related_birthday_year ELSE rc.birthday_year END)"),
                &format!("(CASE WHEN {own} THEN r.related_birthday_month ELSE rc.birthday_month END)"),
                &format!("(CASE WHEN {own} THEN r.related_birthday_day ELSE rc.birthday_day END)"),
            );
            sql.push_str(" AND ");
            sql.push_str(&self.date_test(&expr, test)?);
        }
        sql.push(')');
        Ok(sql)
    }

    // ---- explanation values ------------------------------------------------------------

    /// The value that decided a leaf, for "why is this person in here?".
    fn value_of(&mut self, f: &Filter) -> Result<Option<String>> {
        let d = self.d;
        let list = |sql: &str, col: &str| match d {
            Dialect::Sqlite => format!("(SELECT group_concat({col}, ', ') FROM ({sql}))"),
            Dialect::Postgres => format!("(SELECT string_agg({col}, ', ') FROM ({sql}) x)"),
        };
        Ok(Some(match f {
            Filter::Compare(Compare { field: name, .. }) | Filter::IsSet(rapport_core::segment::IsSet { field: name, .. }) => {
                match field(name).map_err(invalid)? {
                    FieldRef::BuiltIn(info) => match info.name {
                        "email" => list(
                            "SELECT ce.address AS v FROM contact_emails ce WHERE ce.contact_id = c.id ORDER BY ce.position",
                            "v",
                        ),
                        "phone" => list(
                            "SELECT cp.e164 AS v FROM contact_phones cp WHERE cp.contact_id = c.id ORDER BY cp.position",
                            "v",
                        ),
                        "tag" => list(
                            "SELECT t.name AS v FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id ORDER BY t.name_key",
                            "v",
                        ),
                        "owner" => "(SELECT u.email FROM users u WHERE u.id = c.owner_id)".into(),
                        "stage" => format!("coalesce({}, 'lead')", self.profile("lifecycle_stage")),
                        "value_tier" => self.profile("value_tier"),
                        "time_in_stage" => format!("coalesce({}, c.created_at)", self.profile("stage_since")),
                        n if n.starts_with("company.") => {
                            let col = match n {
                                "company.tag" => return Ok(None),
                                "company.name" => "co.name",
                                "company.domain" => "co.domain",
                                "company.industry" => "co.industry",
                                _ => "co.size",
                            };
                            list(
                                &format!(
                                    "SELECT {col} AS v FROM contact_companies cc JOIN companies co ON co.id = cc.company_id WHERE cc.contact_id = c.id"
                                ),
                                "v",
                            )
                        }
                        n => match info.kind {
                            // In the units the filter is written in (revenue is stored in minor units).
                            FieldKind::Number => match self.number_field(n) {
                                (expr, scale, _) if scale != 1.0 => format!("({expr} / {})", float_lit(d, scale)),
                                (expr, ..) => expr,
                            },
                            FieldKind::Time => self.time_column(n).0,
                            FieldKind::Birthday => "c.birthday_month * 100 + c.birthday_day".into(),
                            _ => text_column_raw(n),
                        },
                    },
                    FieldRef::Custom(key) => json_raw(d, "c.custom_fields", key),
                    FieldRef::CompanyCustom(_) => return Ok(None),
                }
            }
            Filter::Date(dc) => match self.date_expr(&dc.date)? {
                DateExpr::Time(x) | DateExpr::DateText(x) => x,
                DateExpr::Birthday { ymd, md, .. } => format!("coalesce({ymd}, {md})"),
            },
            Filter::Events(m) => self.metric_value(m)?.0,
            Filter::Occurred(o) => {
                let cond = self.events_where(&o.events, None)?;
                format!("(SELECT max(e.occurred_at) FROM events e WHERE {cond})")
            }
            _ => return Ok(None),
        }))
    }
}

/// Whether a leaf's explanation value is a point in time.
fn is_time_valued(f: &Filter) -> bool {
    match f {
        Filter::Occurred(_) => true,
        Filter::Date(DateCondition { date: DateSource::Last(_) | DateSource::First(_), .. }) => true,
        Filter::Date(DateCondition { date: DateSource::Field(name), .. })
        | Filter::Compare(Compare { field: name, .. })
        | Filter::IsSet(rapport_core::segment::IsSet { field: name, .. }) => {
            matches!(field(name), Ok(FieldRef::BuiltIn(info)) if info.kind == FieldKind::Time || info.name == "time_in_stage")
        }
        _ => false,
    }
}

/// Whether a leaf's explanation value is a custom field's JSON value.
fn is_json_valued(f: &Filter) -> bool {
    match f {
        Filter::Compare(Compare { field: name, .. }) | Filter::IsSet(rapport_core::segment::IsSet { field: name, .. }) => {
            matches!(field(name), Ok(FieldRef::Custom(_)))
        }
        _ => false,
    }
}

/// Profile columns that bound the events of a type, kept in the same transaction as the
/// events (`ProfileState::apply`). A type's own counters are exact: each event of the type, and
/// only those, adds one to `count` and raises `last` to its time. For other types that always
/// count as activity, last seen is an upper bound of their times.
#[derive(Clone, Copy)]
struct Tally {
    count: Option<&'static str>,
    last: &'static str,
    exact: bool,
}

fn bound_of_type(event_type: &str) -> Option<Tally> {
    let (count, last) = match event_type {
        "order.completed" => ("order_count", "last_order_at"),
        "visit.checked_in" => ("visit_count", "last_visit_at"),
        "email.opened" => ("email_opens", "last_open_at"),
        "email.clicked" => ("email_clicks", "last_click_at"),
        other if always_activity(other) => return Some(Tally { count: None, last: "last_seen_at", exact: false }),
        _ => return None,
    };
    Some(Tally { count: Some(count), last, exact: true })
}

/// The counters that answer for `sel` exactly: a type's own, without payload conditions.
fn tally(sel: &EventSelector) -> Option<Tally> {
    bound_of_type(&sel.event_type).filter(|t| t.exact && sel.conditions.is_empty())
}

/// Whether `0 op value` holds: a count or sum over no events.
fn zero_passes(op: CompareOp, value: f64) -> bool {
    match op {
        CompareOp::Eq => value == 0.0,
        CompareOp::Ne => value != 0.0,
        CompareOp::Lt => 0.0 < value,
        CompareOp::Le => 0.0 <= value,
        CompareOp::Gt => 0.0 > value,
        CompareOp::Ge => 0.0 >= value,
        _ => false,
    }
}

/// How many events settle a count comparison: `min(count, cap)` compares against the value
/// exactly as the count itself does (`count >= 3` needs 3 events; `count = 3` and `count <= 3`
/// need 4).
fn count_cap(m: &EventMetric) -> Option<i64> {
    if m.aggregate != Aggregate::Count || !m.value.is_finite() || m.value >= 1e9 {
        return None;
    }
    let cap = match m.op {
        CompareOp::Ge => m.value.ceil(),
        _ => m.value.floor() + 1.0,
    };
    Some((cap as i64).max(1))
}

/// The fewest events a passing count needs, for a count comparison that 0 fails.
fn min_count(m: &EventMetric) -> Option<i64> {
    if m.aggregate != Aggregate::Count {
        return None;
    }
    let k = match m.op {
        CompareOp::Ge | CompareOp::Eq => m.value.ceil(),
        CompareOp::Gt => m.value.floor() + 1.0,
        _ => return None,
    };
    (k.is_finite() && k >= 1.0).then_some(k as i64)
}

/// Whether `f` can hold only for people with a profile row. Ingest writes the row with a
/// person's first event, so anything that needs an event needs it; so does a value tier, which
/// people without a row lack. Conservative: `false` whenever unsure (every `not`, every `no …`).
fn requires_profile_row(f: &Filter) -> bool {
    match f {
        Filter::Occurred(o) => o.occurred,
        // A count or sum over no events is 0; another aggregate over none has no value.
        Filter::Events(m) => !(matches!(m.aggregate, Aggregate::Count | Aggregate::Sum) && zero_passes(m.op, m.value)),
        Filter::Compare(c) => {
            matches!(field(&c.field), Ok(FieldRef::BuiltIn(info)) if info.name == "value_tier")
                && matches!(c.op, CompareOp::Eq | CompareOp::In)
                && literal_texts(&c.value).is_some()
        }
        Filter::And(parts) => parts.iter().any(requires_profile_row),
        Filter::Or(parts) => !parts.is_empty() && parts.iter().all(requires_profile_row),
        _ => false,
    }
}

/// How expensive a condition is to test per contact, for ordering the parts of an `and`.
fn cost(f: &Filter) -> u8 {
    match f {
        Filter::Compare(c) => match field(&c.field) {
            Ok(FieldRef::BuiltIn(info)) if matches!(info.kind, FieldKind::Text | FieldKind::Number | FieldKind::Duration) => {
                if info.name == "owner" {
                    1
                } else {
                    0
                }
            }
            _ => 1,
        },
        Filter::IsSet(_) | Filter::Segment(_) => 1,
        Filter::Date(DateCondition { date: DateSource::Field(_), .. }) => 1,
        Filter::Subscription(_) | Filter::Related(_) => 2,
        // Answered by the profile's counters alone.
        Filter::Occurred(o) if tally(&o.events).is_some() => 1,
        Filter::Events(m) if tally(&m.events).is_some() && m.aggregate == Aggregate::Count && m.last.is_none() => 1,
        Filter::Date(_) | Filter::Events(_) | Filter::Occurred(_) => 3,
        Filter::Not(inner) => cost(inner),
        Filter::And(parts) | Filter::Or(parts) => parts.iter().map(cost).max().unwrap_or(0),
    }
}

fn birthday_expr(year: &str, month: &str, day: &str) -> DateExpr {
    DateExpr::Birthday {
        md: format!("({month} * 100 + {day})"),
        ymd: format!("({year} * 10000 + {month} * 100 + {day})"),
        set: format!("{month} IS NOT NULL"),
    }
}

fn is_leap(year: i32) -> bool {
    NaiveDate::from_ymd_opt(year, 2, 29).is_some()
}

/// `md IN (…)` for the days from `day` forward (or back) over `span`, inclusive. Someone born
/// on 29 February celebrates on the 28th in common years.
fn md_in(md: &str, day: NaiveDate, span: Span, forward: bool) -> String {
    let other = if forward { span.add_to_date(day) } else { span.sub_from_date(day) };
    let (start, end) = match other {
        Some(o) if forward => (day, o),
        Some(o) => (o, day),
        None => return format!("{md} IS NOT NULL"),
    };
    if (end - start).num_days() >= 366 {
        return format!("{md} IS NOT NULL");
    }
    let mut values = Vec::new();
    let mut d = start;
    while d <= end {
        values.push(d.month() as i64 * 100 + d.day() as i64);
        if d.month() == 2 && d.day() == 28 && !is_leap(d.year()) {
            values.push(229);
        }
        match d.checked_add_days(Days::new(1)) {
            Some(n) => d = n,
            None => break,
        }
    }
    values.sort_unstable();
    values.dedup();
    format!("{md} IN ({})", join_numbers(&values))
}

fn ymd_number(d: NaiveDate) -> i64 {
    d.year() as i64 * 10_000 + d.month() as i64 * 100 + d.day() as i64
}

/// The date a bound names, seen from the local `today`.
fn bound_date(b: &DateBound, today: NaiveDate) -> Option<NaiveDate> {
    match b {
        DateBound::Ago(s) => s.sub_from_date(today),
        DateBound::FromNow(s) => s.add_to_date(today),
        DateBound::On(d) => Some(*d),
    }
}

/// When the local day containing `now` began in `tz`, as an instant.
fn day_start(tz: Tz, now: Timestamp) -> Timestamp {
    let local = now.with_timezone(&tz).date_naive();
    local
        .and_hms_opt(0, 0, 0)
        .and_then(|m| tz.from_local_datetime(&m).earliest())
        .map(|t| t.with_timezone(&chrono::Utc))
        // A zone that skips midnight (a DST change at 00:00) starts its day at 01:00.
        .or_else(|| {
            local.and_hms_opt(1, 0, 0).and_then(|m| tz.from_local_datetime(&m).earliest()).map(|t| t.with_timezone(&chrono::Utc))
        })
        .unwrap_or(now)
}

/// Month·100+day (or year·10000+…) of a timestamp's date in the contact's time zone (the
/// default zone for contacts without one). SQLite calls `rapport_local_ymd`, registered on every
/// connection; PostgreSQL converts with `AT TIME ZONE`, falling back to the default zone for a
/// name its own zone database does not know.
fn timestamp_part(d: Dialect, x: &str, with_year: bool, default_tz: Tz) -> String {
    let default = default_tz.name();
    let ymd = match d {
        Dialect::Sqlite => format!("rapport_local_ymd({x}, c.time_zone, '{default}')"),
        Dialect::Postgres => format!(
            "CAST(to_char({x} AT TIME ZONE (CASE WHEN c.time_zone IN (SELECT name FROM pg_timezone_names) THEN c.time_zone \
             ELSE '{default}' END), 'YYYYMMDD') AS INTEGER)"
        ),
    };
    if with_year { ymd } else { format!("({ymd} % 10000)") }
}

fn case_or(branches: Vec<String>, default: String) -> String {
    if branches.is_empty() { default } else { format!("(CASE {} ELSE {default} END)", branches.join(" ")) }
}

fn quote_list(names: &[&str]) -> String {
    // Zone names come from chrono-tz's fixed list: letters, digits, `/`, `_`, `-`, `+`.
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

fn join_numbers(values: &[i64]) -> String {
    values.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

fn float_lit(d: Dialect, x: f64) -> String {
    match d {
        Dialect::Sqlite => format!("{x:?}"),
        Dialect::Postgres => format!("CAST({x:?} AS DOUBLE PRECISION)"),
    }
}

/// Divides minor units into major units by the currency in `currency` (a SQL expression).
fn minor_divisor(currency: &str) -> String {
    let list = |codes: &[&str]| codes.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
    format!(
        "(CASE WHEN {currency} IN ({}) THEN 1.0 WHEN {currency} IN ({}) THEN 1000.0 ELSE 100.0 END)",
        list(ZERO_DECIMALS),
        list(THREE_DECIMALS)
    )
}

fn json_path(keys: &[&str]) -> String {
    let mut s = String::from("$");
    for k in keys {
        s.push_str(&format!(".\"{k}\""));
    }
    s
}

/// The value of custom field `key` (of `kind`) in the JSON column `col` as conditions compare
/// it, for the kinds that compare a single value. It is also the expression each such field's
/// index is built on (`custom_fields::ensure_index`): an index serves a query only when the
/// query holds the same expression, so both come from here.
pub(crate) fn custom_value_expr(d: Dialect, col: &str, key: &str, kind: CustomKind) -> Option<String> {
    match kind {
        CustomKind::Number => Some(json_num(d, col, &[key])),
        // Dates are stored as YYYY-MM-DD, so text order is date order.
        CustomKind::Date => Some(json_text(d, col, &[key])),
        CustomKind::Text | CustomKind::Enum | CustomKind::Url | CustomKind::Email | CustomKind::Phone => {
            Some(format!("lower({})", json_text(d, col, &[key])))
        }
        CustomKind::Money | CustomKind::Bool | CustomKind::MultiEnum => None,
    }
}

/// The JSON value at `keys` as text (NULL when absent).
fn json_text(d: Dialect, col: &str, keys: &[&str]) -> String {
    match d {
        Dialect::Sqlite => format!("json_extract({col}, '{}')", json_path(keys)),
        Dialect::Postgres => format!("({col} #>> '{{{}}}')", keys.join(",")),
    }
}

/// The JSON value at `keys` as a number, NULL when it is not one.
fn json_num(d: Dialect, col: &str, keys: &[&str]) -> String {
    match d {
        Dialect::Sqlite => {
            let p = json_path(keys);
            format!("(CASE WHEN json_type({col}, '{p}') IN ('integer', 'real') THEN json_extract({col}, '{p}') END)")
        }
        Dialect::Postgres => {
            let p = keys.join(",");
            format!(
                "(CASE WHEN jsonb_typeof({col} #> '{{{p}}}') = 'number' THEN CAST({col} #>> '{{{p}}}' AS DOUBLE PRECISION) END)"
            )
        }
    }
}

/// A custom field's value as JSON, for explanations: `->` keeps its type on both engines
/// (`->>` and `json_extract` would give PostgreSQL text and SQLite 1 for true).
fn json_raw(d: Dialect, col: &str, key: &str) -> String {
    match d {
        Dialect::Sqlite => format!("({col} -> '{}')", json_path(&[key])),
        Dialect::Postgres => format!("({col} -> '{key}')"),
    }
}

fn json_present(d: Dialect, col: &str, key: &str) -> String {
    match d {
        Dialect::Sqlite => format!("coalesce(json_type({col}, '{}') NOT IN ('null'), FALSE)", json_path(&[key])),
        Dialect::Postgres => format!("coalesce(jsonb_typeof({col} -> '{key}') <> 'null', FALSE)"),
    }
}

/// A built-in text field as a lower-cased SQL expression.
fn text_column(name: &str) -> String {
    match name {
        "name" => "c.name_key".into(),
        other => format!("lower({})", text_column_raw(other)),
    }
}

fn text_column_raw(name: &str) -> String {
    let col = match name {
        "name" => "display_name",
        "city" => "address_city",
        "region" => "address_region",
        "postal_code" => "address_postal_code",
        "country" => "address_country",
        other => other,
    };
    format!("c.{col}")
}

fn literal_texts(v: &Literal) -> Option<Vec<String>> {
    match v {
        Literal::Text(s) => Some(vec![s.clone()]),
        Literal::List(items) => items.iter().map(|i| if let Literal::Text(s) = i { Some(s.clone()) } else { None }).collect(),
        _ => None,
    }
}

fn map_texts(v: &Literal, f: &dyn Fn(&str) -> String) -> Literal {
    match v {
        Literal::Text(s) => Literal::Text(f(s)),
        Literal::List(items) => Literal::List(items.iter().map(|i| map_texts(i, f)).collect()),
        other => other.clone(),
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn like_escape(s: &str) -> String {
    crate::list::like_escape(s)
}

fn is_negative(op: CompareOp) -> bool {
    matches!(op, CompareOp::Ne | CompareOp::NotIn)
}

fn positive_op(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Ne => CompareOp::Eq,
        CompareOp::NotIn => CompareOp::In,
        other => other,
    }
}

fn negate_if(negative: bool, sql: String) -> String {
    if negative { format!("NOT coalesce({sql}, FALSE)") } else { sql }
}

fn sql_op(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        _ => "=",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(x: f64, op: CompareOp, v: f64) -> bool {
        match op {
            CompareOp::Eq => x == v,
            CompareOp::Ne => x != v,
            CompareOp::Lt => x < v,
            CompareOp::Le => x <= v,
            CompareOp::Gt => x > v,
            CompareOp::Ge => x >= v,
            _ => unreachable!("not a count comparison"),
        }
    }

    #[test]
    fn only_filters_that_need_an_event_or_a_tier_require_a_profile_row() {
        let required = |text: &str| requires_profile_row(&rapport_core::segment::parse(text).expect(text));
        for text in [
            r#"value_tier in ("gold", "vip")"#,
            r#"value_tier = "gold" and tag = "staff""#,
            "has order.completed in last 30d",
            "count(email.opened, last 90d) >= 3",
            "sum(order.completed.total, last 365d) > 1000",
            "has visit.checked_in or count(order.completed) > 2",
        ] {
            assert!(required(text), "{text} can only hold for people with events");
        }
        for text in [
            "no visit.checked_in in last 21d",
            "count(email.clicked, last 90d) = 0",
            "count(order.completed) < 2",
            r#"not value_tier = "gold""#,
            r#"value_tier != "gold""#,
            r#"stage = "lead""#,
            r#"has order.completed or tag = "staff""#,
            "birthday within next 7d",
        ] {
            assert!(!required(text), "{text} can hold for someone who never did anything");
        }
    }

    #[test]
    fn a_capped_count_or_the_kth_event_decides_every_comparison_as_the_full_count_does() {
        let ops = [CompareOp::Eq, CompareOp::Ne, CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge];
        for op in ops {
            for tenths in -20..=80 {
                let value = f64::from(tenths) / 10.0;
                let m = EventMetric {
                    aggregate: Aggregate::Count,
                    events: EventSelector { event_type: "email.opened".into(), conditions: Vec::new() },
                    field: None,
                    last: None,
                    op,
                    value,
                };
                let cap = count_cap(&m).expect("a finite count comparison has a cap");
                let nth = min_count(&m).filter(|_| matches!(op, CompareOp::Ge | CompareOp::Gt));
                for count in 0..20i64 {
                    if let Some(k) = nth {
                        assert_eq!(
                            count >= k,
                            holds(count as f64, op, value),
                            "count {count} {op:?} {value}: k-th event, k = {k}"
                        );
                    }
                    let capped = count.min(cap) as f64;
                    assert_eq!(
                        holds(capped, op, value),
                        holds(count as f64, op, value),
                        "count {count} {op:?} {value} with cap {cap}"
                    );
                }
            }
        }
    }
}
