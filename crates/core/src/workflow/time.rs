//! The clock side of workflows: lengths of time as written in workflow JSON, times of day, and
//! when a date trigger or a `wait_until` comes round in a contact's time zone.
//!
//! Every local time goes through [`local_instant`], so the daylight-saving rules are the same
//! everywhere: a time that does not exist (clocks jump forward) is read with the offset in force
//! before the jump, landing as far past the jump as it was meant to be past the last valid time
//! (02:30 on a day when 02:00 jumps to 03:00 fires at 03:30); a time that happens twice (clocks
//! go back) fires the first time.

use std::fmt;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use crate::{Birthday, Timestamp, parse_iso_duration};

/// How far a date trigger may move from its date: about ten years either way.
pub const MAX_OFFSET_DAYS: i32 = 3_660;

/// Reads an ISO 8601 duration that may carry a leading minus (`-P7D` is seven days before).
pub fn parse_signed_duration(raw: &str) -> Result<Duration, String> {
    let t = raw.trim();
    let (negative, rest) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let d = parse_iso_duration(rest).map_err(|m| m.replacen(&format!("'{rest}'"), &format!("'{t}'"), 1))?;
    Ok(if negative { -d } else { d })
}

/// Writes a duration the way workflow JSON stores it: days, then a time part when there is one
/// (`P2D`, `PT6H`, `P1DT12H30M`, `PT0.5S`, `-P7D`; zero is `P0D`). Weeks come out as days, so
/// `P1W` is stored as `P7D`. [`parse_signed_duration`] reads it back to the same value.
pub fn format_duration(d: Duration) -> String {
    let sign = if d < Duration::zero() { "-" } else { "" };
    let ms = d.num_milliseconds().unsigned_abs();
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (hours, rest) = (rest / 3_600_000, rest % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1_000, rest % 1_000);
    let mut out = format!("{sign}P");
    if days > 0 || ms == 0 {
        out.push_str(&format!("{days}D"));
    }
    if hours + minutes + seconds + millis > 0 {
        out.push('T');
        if hours > 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if millis > 0 {
            let fraction = format!("{millis:03}");
            out.push_str(&format!("{seconds}.{}S", fraction.trim_end_matches('0')));
        } else if seconds > 0 {
            out.push_str(&format!("{seconds}S"));
        }
    }
    out
}

/// A wall-clock time of day, to the minute, written `HH:MM` (24-hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeOfDay(NaiveTime);

impl TimeOfDay {
    pub fn new(hour: u32, minute: u32) -> Option<Self> {
        NaiveTime::from_hms_opt(hour, minute, 0).map(Self)
    }

    /// `09:00` or `9:00`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let t = raw.trim();
        let bad = || format!("'{t}' is not a time of day; write HH:MM on the 24-hour clock, such as 09:00 or 17:30");
        let (h, m) = t.split_once(':').ok_or_else(bad)?;
        let digits =
            |s: &str, len: std::ops::RangeInclusive<usize>| len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(h, 1..=2) || !digits(m, 2..=2) {
            return Err(bad());
        }
        Self::new(h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?).ok_or_else(bad)
    }

    pub fn time(self) -> NaiveTime {
        self.0
    }
}

/// Nine in the morning: when date triggers and `wait_until` fire unless told otherwise.
impl Default for TimeOfDay {
    fn default() -> Self {
        Self(NaiveTime::from_hms_opt(9, 0, 0).expect("09:00 is a time"))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0.hour(), self.0.minute())
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whole days before (negative) or after (positive) a date. Written as an ISO 8601 duration:
/// `P0D`, `P3D`, `-P7D`, `-P1W`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DayOffset(pub i32);

impl DayOffset {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let d = parse_signed_duration(raw)?;
        if d.num_milliseconds() % 86_400_000 != 0 {
            return Err(format!(
                "'{}' is not a whole number of days; write days such as P1D or -P7D, and set the time of day with at",
                raw.trim()
            ));
        }
        let days = d.num_days();
        if days.abs() > i64::from(MAX_OFFSET_DAYS) {
            return Err(format!("'{}' is too far from the date; at most {MAX_OFFSET_DAYS} days either way", raw.trim()));
        }
        Ok(Self(days as i32))
    }

    pub fn days(self) -> i32 {
        self.0
    }
}

impl fmt::Display for DayOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}P{}D", self.0.unsigned_abs())
    }
}

impl Serialize for DayOffset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which occurrences of its date a date trigger fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recurrence {
    /// Every anniversary: each year on the date's month and day. When the year is known, the
    /// first is one year after the date (a first order is not its own anniversary).
    Yearly,
    /// The date itself, once. Needs a full date (a birthday without a year never fires).
    Once,
    /// One anniversary only: `Turns(21)` is the 21st birthday. Needs the year.
    Turns(u32),
}

/// The date a date trigger counts from: a birthday (the year may be unknown), a first order,
/// a date custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnchorDate {
    pub month: u32,
    pub day: u32,
    pub year: Option<i32>,
}

impl AnchorDate {
    /// The date's anniversary in `year`; 29 February falls on 28 February in common years.
    pub fn in_year(&self, year: i32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(year, self.month, self.day)
            .or_else(|| (self.month == 2 && self.day == 29).then(|| NaiveDate::from_ymd_opt(year, 2, 28)).flatten())
    }
}

impl From<NaiveDate> for AnchorDate {
    fn from(d: NaiveDate) -> Self {
        Self { month: d.month(), day: d.day(), year: Some(d.year()) }
    }
}

impl From<Birthday> for AnchorDate {
    fn from(b: Birthday) -> Self {
        Self { month: b.month.into(), day: b.day.into(), year: b.year }
    }
}

/// The UTC instant of a wall-clock time in `tz`. A time skipped by a daylight-saving jump is read
/// with the offset from before the jump (02:30 becomes 03:30 when 02:00 jumps to 03:00); a time
/// that happens twice is the first of the two. `None` only outside the calendar's range.
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> Option<Timestamp> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return Some(t.to_utc());
    }
    // A day earlier read as UTC is an instant before the jump (zones are within ±14 hours of UTC
    // and no zone jumps twice in a day and a half).
    let before = local.checked_sub_signed(Duration::days(1))?;
    let offset = tz.offset_from_utc_datetime(&before).fix();
    let utc = local.checked_sub_signed(Duration::seconds(offset.local_minus_utc().into()))?;
    Some(utc.and_utc())
}

/// The next UTC instant strictly after `after` at which a date trigger fires: the occurrence of
/// `date` chosen by `rule`, moved by `offset` days, at `at` in the contact's time zone `tz`.
///
/// - 29 February fires on 28 February in common years (then the offset applies).
/// - A negative offset may reach into the previous year: a 3 January birthday with `-P7D` fires
///   on 27 December.
/// - Daylight-saving gaps and overlaps follow [`local_instant`].
///
/// `None` when there is no further occurrence: a one-off date that has passed, or a rule that
/// needs the year of a date that has none.
pub fn next_occurrence(
    rule: Recurrence,
    date: AnchorDate,
    tz: Tz,
    offset: DayOffset,
    at: TimeOfDay,
    after: Timestamp,
) -> Option<Timestamp> {
    let fire = |day: NaiveDate| -> Option<Timestamp> {
        let moved = day.checked_add_signed(Duration::days(offset.0.into()))?;
        local_instant(tz, moved.and_time(at.time()))
    };
    let single = |day: Option<NaiveDate>| day.and_then(fire).filter(|t| *t > after);
    match rule {
        Recurrence::Once => single(NaiveDate::from_ymd_opt(date.year?, date.month, date.day)),
        Recurrence::Turns(n) => single(date.in_year(date.year?.checked_add(n.try_into().ok()?)?)),
        Recurrence::Yearly => {
            // Occurrences grow with the year (a year is longer than any daylight-saving shift),
            // so the first one past `after` is the answer. An offset of up to a year moves an
            // occurrence into the neighbouring year; start early enough to see it.
            let reach = offset.0.unsigned_abs() / 365 + 1;
            let reach = i32::try_from(reach).ok()?;
            let local_year = after.with_timezone(&tz).year();
            let mut year = local_year.checked_sub(reach)?;
            if let Some(y) = date.year {
                year = year.max(y.checked_add(1)?);
            }
            (0..=2 * reach + 2).find_map(|i| single(date.in_year(year.checked_add(i)?)))
        }
    }
}

/// The next instant strictly after `after` whose local time in `tz` is `at`, on a day that
/// `day_ok` accepts (looking up to eight days ahead).
pub(super) fn next_local_time(tz: Tz, at: TimeOfDay, after: Timestamp, day_ok: impl Fn(NaiveDate) -> bool) -> Option<Timestamp> {
    let today = after.with_timezone(&tz).date_naive();
    (0..=8)
        .filter_map(|i| today.checked_add_signed(Duration::days(i)))
        .filter(|d| day_ok(*d))
        .filter_map(|d| local_instant(tz, d.and_time(at.time())))
        .find(|t| *t > after)
}

pub(super) fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

pub(super) fn parse_weekday(raw: &str) -> Result<Weekday, String> {
    let t = raw.trim().to_ascii_lowercase();
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun]
        .into_iter()
        .find(|d| weekday_name(*d) == t || weekday_name(*d)[..3] == t)
        .ok_or_else(|| format!("'{}' is not a day of the week; write monday, tuesday, … sunday", raw.trim()))
}
