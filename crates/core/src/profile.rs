//! The living profile of a person: what their events add up to (value, rhythm, engagement,
//! interests) and what that means (value tier, lifecycle stage, churn risk, RFM).
//!
//! [`ProfileState`] holds the counters kept current on every ingest. Applying an event to it
//! is commutative — counts add, first/last times take the min/max — so late and out-of-order
//! events give the same state as a rebuild from scratch. Everything that depends on "now"
//! (stage, churn risk, recency) is a pure function of that state and the clock.

use std::collections::BTreeMap;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::event::Effect;
use crate::money::{Currency, Money};

/// The counters of one person, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileState {
    pub first_seen_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    pub last_engagement_at: Option<Timestamp>,
    pub order_count: i64,
    pub first_order_at: Option<Timestamp>,
    pub last_order_at: Option<Timestamp>,
    /// The order before the last one: tells whether the last order ended a long silence.
    pub prev_order_at: Option<Timestamp>,
    /// Net revenue in the base currency (orders minus refunds; currencies without a rate are
    /// left out and listed in the per-currency figures only).
    pub revenue_base_minor: i64,
    pub refund_count: i64,
    pub visit_count: i64,
    pub first_visit_at: Option<Timestamp>,
    pub last_visit_at: Option<Timestamp>,
    pub email_opens: i64,
    pub last_open_at: Option<Timestamp>,
    pub email_clicks: i64,
    pub last_click_at: Option<Timestamp>,
}

fn min_opt(a: Option<Timestamp>, b: Timestamp) -> Option<Timestamp> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn max_opt(a: Option<Timestamp>, b: Timestamp) -> Option<Timestamp> {
    Some(a.map_or(b, |a| a.max(b)))
}

impl ProfileState {
    /// Adds one event. Commutative: any order of the same events gives the same state.
    pub fn apply(&mut self, effect: &Effect, at: Timestamp, rules: &ProfileRules) {
        if effect.is_activity() {
            self.first_seen_at = min_opt(self.first_seen_at, at);
            self.last_seen_at = max_opt(self.last_seen_at, at);
        }
        if effect.is_engagement() {
            self.last_engagement_at = max_opt(self.last_engagement_at, at);
        }
        match effect {
            Effect::Order { money, .. } => {
                self.order_count += 1;
                self.first_order_at = min_opt(self.first_order_at, at);
                // Keep the two latest order times (a top-2 of a multiset is order-independent).
                match self.last_order_at {
                    Some(last) if at <= last => {
                        if self.prev_order_at.is_none_or(|p| at > p) {
                            self.prev_order_at = Some(at);
                        }
                    }
                    last => {
                        self.prev_order_at = last;
                        self.last_order_at = Some(at);
                    }
                }
                self.revenue_base_minor += rules.to_base(money).unwrap_or(0);
            }
            Effect::Refund { money } => {
                self.refund_count += 1;
                self.revenue_base_minor -= rules.to_base(money).unwrap_or(0);
            }
            Effect::Visit => {
                self.visit_count += 1;
                self.first_visit_at = min_opt(self.first_visit_at, at);
                self.last_visit_at = max_opt(self.last_visit_at, at);
            }
            Effect::EmailOpened => {
                self.email_opens += 1;
                self.last_open_at = max_opt(self.last_open_at, at);
            }
            Effect::EmailClicked { .. } => {
                self.email_clicks += 1;
                self.last_click_at = max_opt(self.last_click_at, at);
            }
            Effect::Interest { .. } | Effect::Engagement { .. } | Effect::Activity | Effect::None => {}
        }
    }

    /// The person's usual time between orders: the mean gap, once there are two orders.
    pub fn usual_order_gap(&self, rules: &ProfileRules) -> Option<Duration> {
        mean_gap(self.first_order_at, self.last_order_at, self.order_count, rules)
    }

    /// The person's usual time between visits.
    pub fn usual_visit_gap(&self, rules: &ProfileRules) -> Option<Duration> {
        mean_gap(self.first_visit_at, self.last_visit_at, self.visit_count, rules)
    }

    /// The gap against which lateness is judged: their own rhythm, or the default for people
    /// with a single order.
    fn expected_order_gap(&self, rules: &ProfileRules) -> Duration {
        self.usual_order_gap(rules).unwrap_or(Duration::days(rules.lifecycle.default_order_gap_days))
    }
}

fn mean_gap(first: Option<Timestamp>, last: Option<Timestamp>, count: i64, rules: &ProfileRules) -> Option<Duration> {
    let (first, last) = (first?, last?);
    if count < 2 {
        return None;
    }
    let gap = (last - first) / (count - 1) as i32;
    Some(gap.max(Duration::days(rules.lifecycle.min_gap_days)))
}

/// Where a person is in their life as a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    Lead,
    Active,
    Loyal,
    AtRisk,
    Lost,
    Reactivated,
}

impl LifecycleStage {
    pub const ALL: [LifecycleStage; 6] = [
        LifecycleStage::Lead,
        LifecycleStage::Active,
        LifecycleStage::Loyal,
        LifecycleStage::AtRisk,
        LifecycleStage::Lost,
        LifecycleStage::Reactivated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Lead => "lead",
            LifecycleStage::Active => "active",
            LifecycleStage::Loyal => "loyal",
            LifecycleStage::AtRisk => "at_risk",
            LifecycleStage::Lost => "lost",
            LifecycleStage::Reactivated => "reactivated",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The rules that turn counters into stages. Defaults suit a shop with a few purchases a year.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleRules {
    /// Orders that make a repeat buyer loyal.
    pub loyal_min_orders: i64,
    /// A customer is at risk once the time since their last order exceeds this many times
    /// their usual gap between orders.
    pub at_risk_factor: f64,
    /// The expected gap for customers with one order, who have no rhythm of their own yet.
    pub default_order_gap_days: i64,
    /// Gaps shorter than this count as this (two orders on one day are not a rhythm).
    pub min_gap_days: i64,
    /// Days without an order after which a customer is lost.
    pub lost_after_days: i64,
}

impl Default for LifecycleRules {
    fn default() -> Self {
        Self { loyal_min_orders: 2, at_risk_factor: 1.5, default_order_gap_days: 90, min_gap_days: 7, lost_after_days: 365 }
    }
}

/// A value tier: reached when lifetime net revenue (base currency, major units) is at least `min`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    pub min: f64,
}

/// Thresholds for RFM scores (1 = weakest, 5 = strongest), each list ascending with four entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RfmRules {
    /// Days since the last order at or under which recency scores 5, 4, 3, 2 (else 1).
    pub recency_days: [i64; 4],
    /// Order counts at or over which frequency scores 2, 3, 4, 5.
    pub frequency_orders: [i64; 4],
    /// Net revenue (base currency, major units) at or over which monetary scores 2, 3, 4, 5.
    pub monetary: [f64; 4],
}

impl Default for RfmRules {
    fn default() -> Self {
        Self { recency_days: [30, 90, 180, 365], frequency_orders: [2, 3, 5, 10], monetary: [100.0, 500.0, 1000.0, 5000.0] }
    }
}

/// Everything configurable about profiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileRules {
    /// The currency revenue is totalled in.
    pub base_currency: String,
    /// How many units of the base currency one unit of another currency is worth.
    pub exchange_rates: BTreeMap<String, f64>,
    /// Ascending by `min`.
    pub tiers: Vec<Tier>,
    pub lifecycle: LifecycleRules,
    pub rfm: RfmRules,
    /// Days after which an interest counts half as much.
    pub interest_half_life_days: f64,
}

impl Default for ProfileRules {
    fn default() -> Self {
        Self {
            base_currency: "EUR".into(),
            exchange_rates: BTreeMap::new(),
            tiers: vec![
                Tier { name: "bronze".into(), min: 0.0 },
                Tier { name: "silver".into(), min: 500.0 },
                Tier { name: "gold".into(), min: 2000.0 },
                Tier { name: "vip".into(), min: 10000.0 },
            ],
            lifecycle: LifecycleRules::default(),
            rfm: RfmRules::default(),
            interest_half_life_days: 30.0,
        }
    }
}

/// The fixed origin of interest masses (see [`ProfileRules::interest_mass`]).
fn interest_epoch() -> Timestamp {
    chrono::DateTime::from_timestamp(1_577_836_800, 0).unwrap_or_default() // 2020-01-01
}

impl ProfileRules {
    /// Checks the rules once at start-up, naming what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let base = Currency::parse(&self.base_currency).map_err(|e| format!("profiles.base_currency: {e}"))?;
        for (code, rate) in &self.exchange_rates {
            Currency::parse(code).map_err(|e| format!("profiles.exchange_rates: {e}"))?;
            if !(rate.is_finite() && *rate > 0.0) {
                return Err(format!("profiles.exchange_rates.{code}: must be a positive number"));
            }
        }
        let _ = base;
        if self.tiers.windows(2).any(|w| w[0].min >= w[1].min) {
            return Err("profiles.tiers: must be in ascending order of min".into());
        }
        let l = &self.lifecycle;
        if l.loyal_min_orders < 1 || l.at_risk_factor <= 1.0 || l.default_order_gap_days < 1 || l.lost_after_days < 1 {
            return Err("profiles.lifecycle: loyal_min_orders, default_order_gap_days and lost_after_days must be positive, at_risk_factor above 1".into());
        }
        if self.interest_half_life_days <= 0.0 {
            return Err("profiles.interest_half_life_days: must be positive".into());
        }
        Ok(())
    }

    pub fn base(&self) -> Currency {
        Currency::parse(&self.base_currency).unwrap_or_else(|_| Currency::parse("EUR").expect("EUR is a currency"))
    }

    /// An amount in base-currency minor units, when a rate is known.
    pub fn to_base(&self, money: &Money) -> Option<i64> {
        let base = self.base();
        if money.currency == base {
            return Some(money.minor);
        }
        let rate = self.exchange_rates.get(money.currency.as_str())?;
        base.to_minor((money.major() * rate * base_scale(base)).round() / base_scale(base)).ok()
    }

    /// An interest event's weight as a time-independent "mass": `weight · 2^(t / half-life)`.
    /// Masses add up commutatively; the score at any moment is the mass divided by the same
    /// factor for that moment ([`ProfileRules::interest_score`]), so ranking by mass is
    /// ranking by current score.
    pub fn interest_mass(&self, weight: f64, at: Timestamp) -> f64 {
        weight * (self.half_lives(at)).exp2()
    }

    /// The decayed score of a mass at `now`.
    pub fn interest_score(&self, mass: f64, now: Timestamp) -> f64 {
        mass / self.half_lives(now).exp2()
    }

    fn half_lives(&self, at: Timestamp) -> f64 {
        (at - interest_epoch()).num_seconds() as f64 / (self.interest_half_life_days * 86_400.0)
    }

    /// The value tier for a lifetime net revenue; none before a first order.
    pub fn value_tier(&self, state: &ProfileState) -> Option<&str> {
        if state.order_count == 0 {
            return None;
        }
        let revenue = self.base().to_major(state.revenue_base_minor);
        self.tiers.iter().rev().find(|t| revenue >= t.min).or(self.tiers.first()).map(|t| t.name.as_str())
    }

    /// The stage a person is in at `now`, why, and when it would next change by time alone.
    pub fn stage(&self, state: &ProfileState, now: Timestamp) -> StageVerdict {
        let l = &self.lifecycle;
        let (Some(last), true) = (state.last_order_at, state.order_count > 0) else {
            return StageVerdict { stage: LifecycleStage::Lead, reason: "no purchase yet".into(), due_at: None };
        };
        let gap = state.expected_order_gap(self);
        let lost_at = last + Duration::days(l.lost_after_days);
        let risk_at = last + scale(gap, l.at_risk_factor);
        let since = now - last;
        if now >= lost_at {
            return StageVerdict {
                stage: LifecycleStage::Lost,
                reason: format!("no order for {} days (lost after {} days)", since.num_days(), l.lost_after_days),
                due_at: None,
            };
        }
        if now >= risk_at {
            return StageVerdict {
                stage: LifecycleStage::AtRisk,
                reason: format!(
                    "no order for {} days; usually orders every {} days ({:.1}× their usual gap, at risk from {:.1}×)",
                    since.num_days(),
                    gap.num_days().max(1),
                    ratio(since, gap),
                    l.at_risk_factor
                ),
                due_at: Some(lost_at),
            };
        }
        let due_at = Some(risk_at.min(lost_at));
        if let Some(prev) = state.prev_order_at {
            // The rhythm before the last order: did it end a silence long enough to be at risk?
            let before = if state.order_count >= 3 {
                state.first_order_at.map(|f| ((prev - f) / (state.order_count - 2) as i32).max(Duration::days(l.min_gap_days)))
            } else {
                None
            }
            .unwrap_or(Duration::days(l.default_order_gap_days));
            let silence = last - prev;
            if silence > scale(before, l.at_risk_factor) {
                return StageVerdict {
                    stage: LifecycleStage::Reactivated,
                    reason: format!(
                        "ordered again on {} after {} days without an order (usual gap {} days)",
                        last.date_naive(),
                        silence.num_days(),
                        before.num_days().max(1)
                    ),
                    due_at,
                };
            }
        }
        if state.order_count >= l.loyal_min_orders {
            return StageVerdict {
                stage: LifecycleStage::Loyal,
                reason: format!("{} orders (loyal from {})", state.order_count, l.loyal_min_orders),
                due_at,
            };
        }
        StageVerdict {
            stage: LifecycleStage::Active,
            reason: format!(
                "first purchase on {}",
                state.first_order_at.map(|t| t.date_naive().to_string()).unwrap_or_else(|| "an unknown day".into())
            ),
            due_at,
        }
    }

    /// How likely the person is drifting away, judged against their own rhythm.
    pub fn churn_risk(&self, state: &ProfileState, now: Timestamp) -> ChurnRisk {
        let Some(last) = state.last_order_at.filter(|_| state.order_count > 0) else {
            let reason = match state.last_seen_at {
                Some(seen) => format!("no purchase yet; last active {} days ago", (now - seen).num_days().max(0)),
                None => "no purchase and no activity yet".into(),
            };
            return ChurnRisk {
                level: ChurnLevel::Unknown,
                score: None,
                days_since_last_order: None,
                usual_gap_days: None,
                reason,
            };
        };
        let gap = state.expected_order_gap(self);
        let since = (now - last).max(Duration::zero());
        let r = ratio(since, gap);
        let own = state.usual_order_gap(self).is_some();
        let level = if since >= Duration::days(self.lifecycle.lost_after_days) {
            ChurnLevel::Lost
        } else if r >= self.lifecycle.at_risk_factor {
            ChurnLevel::High
        } else if r >= 1.0 {
            ChurnLevel::Medium
        } else {
            ChurnLevel::Low
        };
        let rhythm = if own {
            format!("usually orders every {} days", gap.num_days().max(1))
        } else {
            format!("one order so far, judged against the default gap of {} days", gap.num_days())
        };
        ChurnRisk {
            level,
            score: Some((r * 100.0).round() / 100.0),
            days_since_last_order: Some(since.num_days()),
            usual_gap_days: Some(gap.num_days().max(1)),
            reason: format!("last order {} days ago; {rhythm} ({r:.1}× the usual gap)", since.num_days()),
        }
    }

    /// Recency, frequency and monetary scores, 1–5 each; none before a first order.
    pub fn rfm(&self, state: &ProfileState, now: Timestamp) -> Option<Rfm> {
        let last = state.last_order_at.filter(|_| state.order_count > 0)?;
        let days = (now - last).num_days();
        let r = &self.rfm;
        let recency = 5 - r.recency_days.iter().take_while(|&&d| days > d).count() as u8;
        let frequency = 1 + r.frequency_orders.iter().filter(|&&n| state.order_count >= n).count() as u8;
        let revenue = self.base().to_major(state.revenue_base_minor);
        let monetary = 1 + r.monetary.iter().filter(|&&m| revenue >= m).count() as u8;
        Some(Rfm { recency, frequency, monetary, score: format!("{recency}{frequency}{monetary}") })
    }
}

fn base_scale(c: Currency) -> f64 {
    10f64.powi(c.exponent() as i32)
}

fn scale(d: Duration, factor: f64) -> Duration {
    Duration::seconds((d.num_seconds() as f64 * factor).round() as i64)
}

fn ratio(since: Duration, gap: Duration) -> f64 {
    since.num_seconds() as f64 / gap.num_seconds().max(1) as f64
}

/// A stage with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageVerdict {
    pub stage: LifecycleStage,
    pub reason: String,
    /// When the stage would next change if nothing else happened.
    pub due_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChurnLevel {
    /// No purchase yet: there is no rhythm to judge against.
    Unknown,
    Low,
    Medium,
    High,
    Lost,
}

/// Churn risk with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChurnRisk {
    pub level: ChurnLevel,
    /// Time since the last order divided by the usual gap.
    pub score: Option<f64>,
    pub days_since_last_order: Option<i64>,
    pub usual_gap_days: Option<i64>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rfm {
    pub recency: u8,
    pub frequency: u8,
    pub monetary: u8,
    /// The three digits together, e.g. `"545"`.
    pub score: String,
}

/// What `GET /contacts/{id}/profile` shows: the stored counters with everything derived
/// from them at read time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileView {
    pub contact_id: uuid::Uuid,
    pub first_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last time the person reached out or responded (ordered, visited, opened, clicked,
    /// wrote, called, gave feedback).
    pub last_engagement_at: Option<chrono::DateTime<chrono::Utc>>,
    pub order_count: i64,
    pub first_order_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_order_at: Option<chrono::DateTime<chrono::Utc>>,
    pub orders_last_365d: i64,
    /// Net revenue per currency, in major units (`{"EUR": 129.0}`).
    pub revenue: BTreeMap<String, f64>,
    /// The same in minor units.
    pub revenue_minor: BTreeMap<String, i64>,
    /// Net revenue converted to the base currency (currencies without a rate left out).
    pub revenue_base: BaseAmount,
    /// Net revenue per order, in `average_order_value_currency`: the person's only currency,
    /// or the base currency when they paid in several.
    pub average_order_value: Option<f64>,
    pub average_order_value_currency: Option<String>,
    pub refund_count: i64,
    pub visit_count: i64,
    pub last_visit_at: Option<chrono::DateTime<chrono::Utc>>,
    pub visits_last_30d: i64,
    pub visits_last_90d: i64,
    pub usual_order_gap_days: Option<f64>,
    pub usual_visit_gap_days: Option<f64>,
    pub email_opens: i64,
    pub last_open_at: Option<chrono::DateTime<chrono::Utc>>,
    pub email_clicks: i64,
    pub last_click_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Products and categories viewed, asked about or clicked, strongest first, decayed.
    pub interests: Vec<Interest>,
    /// Every product bought, from any store.
    pub purchased_skus: Vec<String>,
    pub rfm: Option<Rfm>,
    pub value_tier: Option<String>,
    pub lifecycle_stage: LifecycleStage,
    pub stage_reason: String,
    pub stage_since: Option<chrono::DateTime<chrono::Utc>>,
    pub churn_risk: ChurnRisk,
    /// The clock reading the time-relative figures were computed at.
    pub computed_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BaseAmount {
    pub currency: String,
    pub amount: f64,
}

/// One interest with its current score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Interest {
    /// `product` or `category`.
    pub kind: String,
    /// The sku or the category name.
    pub key: String,
    pub name: Option<String>,
    /// Weighted mentions, halved every `interest_half_life_days`.
    pub score: f64,
    /// How many times the person showed this interest.
    pub mentions: i64,
    pub last_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Something a person should see next, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendation {
    pub sku: String,
    pub name: Option<String>,
    pub category: Option<String>,
    pub price: Option<f64>,
    pub currency: Option<String>,
    pub score: f64,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(day: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_767_225_600 + day * 86_400, 0).unwrap() // 2026-01-01 + day
    }

    fn eur(minor: i64) -> Money {
        Money::new(Currency::parse("EUR").unwrap(), minor)
    }

    fn order(minor: i64) -> Effect {
        Effect::Order { money: eur(minor), items: vec![] }
    }

    fn state_with_orders(days: &[i64]) -> ProfileState {
        let rules = ProfileRules::default();
        let mut s = ProfileState::default();
        for &d in days {
            s.apply(&order(10_000), t(d), &rules);
        }
        s
    }

    #[test]
    fn applying_is_order_independent() {
        let rules = ProfileRules::default();
        let events = [(order(5000), 10), (Effect::Visit, 3), (order(700), 40), (Effect::EmailOpened, 2), (order(100), 25)];
        let mut a = ProfileState::default();
        for (e, d) in &events {
            a.apply(e, t(*d), &rules);
        }
        let mut b = ProfileState::default();
        for (e, d) in events.iter().rev() {
            b.apply(e, t(*d), &rules);
        }
        assert_eq!(a, b);
        assert_eq!((a.last_order_at, a.prev_order_at, a.first_order_at), (Some(t(40)), Some(t(25)), Some(t(10))));
        assert_eq!(a.revenue_base_minor, 5800);
    }

    #[test]
    fn stages_follow_the_default_rules() {
        let rules = ProfileRules::default();
        assert_eq!(rules.stage(&ProfileState::default(), t(0)).stage, LifecycleStage::Lead);
        let one = state_with_orders(&[0]);
        assert_eq!(rules.stage(&one, t(10)).stage, LifecycleStage::Active);
        // One order: judged against the default 90-day gap, at risk after 135 days.
        let v = rules.stage(&one, t(10));
        assert_eq!(v.due_at, Some(t(135)));
        assert_eq!(rules.stage(&one, t(135)).stage, LifecycleStage::AtRisk);
        assert_eq!(rules.stage(&one, t(365)).stage, LifecycleStage::Lost);
        let regular = state_with_orders(&[0, 30, 60]);
        assert_eq!(rules.stage(&regular, t(70)).stage, LifecycleStage::Loyal);
        let at_risk = rules.stage(&regular, t(106));
        assert_eq!(at_risk.stage, LifecycleStage::AtRisk, "{}", at_risk.reason);
        assert!(at_risk.reason.contains("usually orders every 30 days"), "{}", at_risk.reason);
        let back = state_with_orders(&[0, 30, 60, 200]);
        let v = rules.stage(&back, t(201));
        assert_eq!(v.stage, LifecycleStage::Reactivated, "{}", v.reason);
        let settled = state_with_orders(&[0, 30, 60, 200, 230]);
        assert_eq!(rules.stage(&settled, t(231)).stage, LifecycleStage::Loyal);
    }

    #[test]
    fn churn_risk_explains_itself() {
        let rules = ProfileRules::default();
        let s = state_with_orders(&[0, 20, 40]);
        let c = rules.churn_risk(&s, t(80));
        assert_eq!(c.level, ChurnLevel::High);
        assert_eq!(c.days_since_last_order, Some(40));
        assert!(c.reason.contains("2.0×"), "{}", c.reason);
        assert_eq!(rules.churn_risk(&ProfileState::default(), t(0)).level, ChurnLevel::Unknown);
    }

    #[test]
    fn tiers_and_rfm() {
        let rules = ProfileRules::default();
        let mut s = state_with_orders(&[0, 10, 20]);
        assert_eq!(rules.value_tier(&s), Some("bronze")); // 3 × 100 EUR
        s.revenue_base_minor = 250_000;
        assert_eq!(rules.value_tier(&s), Some("gold"));
        assert_eq!(rules.value_tier(&ProfileState::default()), None);
        let rfm = rules.rfm(&s, t(25)).unwrap();
        assert_eq!((rfm.recency, rfm.frequency, rfm.monetary), (5, 3, 4));
    }

    #[test]
    fn interest_mass_ranks_like_the_decayed_score() {
        let rules = ProfileRules::default();
        let old = rules.interest_mass(3.0, t(0));
        let new = rules.interest_mass(1.0, t(60));
        // Two half-lives later, 3 is worth 0.75 < 1.
        assert!(new > old);
        let score = rules.interest_score(new, t(90));
        assert!((score - 0.5).abs() < 1e-9);
    }

    #[test]
    fn other_currencies_convert_with_a_rate() {
        let mut rules = ProfileRules::default();
        rules.exchange_rates.insert("USD".into(), 0.5);
        let usd = Money::new(Currency::parse("USD").unwrap(), 1000);
        assert_eq!(rules.to_base(&usd), Some(500));
        assert_eq!(rules.to_base(&Money::new(Currency::parse("GBP").unwrap(), 1)), None);
        assert!(rules.validate().is_ok());
    }
}
