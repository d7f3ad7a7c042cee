//! "Try it on past data" on a workflow's page: a period of whole days in the business's time
//! zone (the last 90 up to today unless chosen), replayed by the store without changing
//! anything, and what the replay found.

use chrono::{Duration, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;
use rapport_core::Timestamp;
use rapport_store::{Store, StoreError};
use uuid::Uuid;

use super::charts::BarChart;
use super::form::FormData;
use super::format::{datetime, label, thousands};

/// The period offered before anyone chooses one.
const DEFAULT_DAYS: i64 = 90;
const DAY_FORMAT: &str = "%Y-%m-%d";

/// The period form as typed, with a problem per field.
pub struct PeriodForm {
    pub from: String,
    pub to: String,
    pub from_error: Option<String>,
    pub to_error: Option<String>,
}

impl PeriodForm {
    pub fn has_errors(&self) -> bool {
        self.from_error.is_some() || self.to_error.is_some()
    }
}

pub struct SampleRow {
    pub contact: String,
    pub contact_href: String,
    pub when: String,
    pub steps: Vec<String>,
}

/// What the replay found, as the page shows it.
pub struct SimulationView {
    /// `1 Dec 2025 – 31 Dec 2025`
    pub period: String,
    pub occurrences: String,
    pub runs: String,
    pub contacts: String,
    /// Times each action would have run, most first; `None` when none would.
    pub actions: Option<BarChart>,
    pub samples: Vec<SampleRow>,
    pub notes: Vec<String>,
}

/// Reads the period from the query string and, when one was sent, replays workflow `id` over
/// it. A period that cannot be replayed comes back as field errors, with no result.
pub async fn try_on_past(store: &Store, id: Uuid, q: &FormData) -> Result<(PeriodForm, Option<SimulationView>), StoreError> {
    let tz = store.options().default_time_zone;
    let now = store.now();
    let today = now.with_timezone(&tz).date_naive();
    let sent = q.get("from").is_some() || q.get("to").is_some();
    let mut form = PeriodForm {
        from: q.get("from").map_or_else(|| (today - Duration::days(DEFAULT_DAYS)).format(DAY_FORMAT).to_string(), trimmed),
        to: q.get("to").map_or_else(|| today.format(DAY_FORMAT).to_string(), trimmed),
        from_error: None,
        to_error: None,
    };
    if !sent {
        return Ok((form, None));
    }
    let (from_day, to_day) = match (day(&form.from), day(&form.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (f, t) => {
            form.from_error = f.err();
            form.to_error = t.err();
            return Ok((form, None));
        }
    };
    if from_day > today {
        form.from_error = Some("Must be today or earlier: the replay uses what already happened.".into());
    }
    if to_day < from_day {
        form.to_error = Some("Must be on or after the first day.".into());
    }
    if form.has_errors() {
        return Ok((form, None));
    }
    let from = midnight(from_day, tz);
    // Up to the end of the last day, but never past now: what has not happened is not replayed.
    let to = midnight(to_day + Duration::days(1), tz).min(now);
    let sim = match store.simulate_workflow(id, from, to).await {
        Ok(sim) => sim,
        Err(StoreError::Invalid(v)) => {
            for e in v.errors {
                let message = sentence(&e.message);
                if e.field == "from" { form.from_error = Some(message) } else { form.to_error = Some(message) }
            }
            return Ok((form, None));
        }
        Err(e) => return Err(e),
    };
    let last = if to == now { format!("{} (now)", datetime(now, tz)) } else { to_day.format("%-d %b %Y").to_string() };
    let mut actions: Vec<(String, u64)> = sim.actions.into_iter().collect();
    actions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let actions = (!actions.is_empty()).then(|| {
        BarChart::new(
            "simulated-actions",
            "Times each action would have run",
            actions
                .into_iter()
                .enumerate()
                .map(|(i, (action, n))| (label(&action), count(n), format!("c{}", i % 6), None))
                .collect(),
        )
    });
    let view = SimulationView {
        period: format!("{} – {last}", from_day.format("%-d %b %Y")),
        occurrences: thousands(count(sim.occurrences)),
        runs: thousands(count(sim.runs)),
        contacts: thousands(count(sim.contacts)),
        actions,
        samples: sim
            .samples
            .into_iter()
            .map(|s| SampleRow {
                contact_href: format!("/contacts/{}", s.contact_id),
                contact: s.contact_name,
                when: datetime(s.at, tz),
                steps: s.steps,
            })
            .collect(),
        notes: sim.notes.iter().map(|n| sentence(n)).collect(),
    };
    Ok((form, Some(view)))
}

fn trimmed(s: &str) -> String {
    s.trim().to_string()
}

fn day(raw: &str) -> Result<NaiveDate, String> {
    if raw.is_empty() {
        return Err("Give a date such as 2026-01-01.".into());
    }
    NaiveDate::parse_from_str(raw, DAY_FORMAT).map_err(|_| format!("“{raw}” is not a date; give one such as 2026-01-01."))
}

/// The start of `day` in `tz` (the first moment that exists, where midnight falls in a
/// daylight-saving gap).
fn midnight(day: NaiveDate, tz: Tz) -> Timestamp {
    let local = day.and_time(NaiveTime::MIN);
    (0..=2)
        .find_map(|h| tz.from_local_datetime(&(local + Duration::hours(h))).earliest())
        .map_or_else(|| local.and_utc(), |t| t.to_utc())
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `must be after from` → `Must be after from.`
fn sentence(s: &str) -> String {
    let mut chars = s.trim().chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_start_at_local_midnight() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 15).expect("date");
        assert_eq!(midnight(d, chrono_tz::Asia::Manila).to_rfc3339(), "2026-01-14T16:00:00+00:00");
        // Midnight does not exist in Santiago on the day clocks go forward.
        let gap = NaiveDate::from_ymd_opt(2025, 9, 7).expect("date");
        assert_eq!(midnight(gap, chrono_tz::America::Santiago).to_rfc3339(), "2025-09-07T04:00:00+00:00");
        assert!(day("15/01/2026").is_err() && day("").is_err());
        assert_eq!(sentence("must be after from"), "Must be after from.");
    }
}
