//! Where "now" comes from. Everything time-based (birthdays, inactivity, renewals) asks a
//! clock, so tests and `rapport simulate` can move time instead of sleeping.

use std::sync::Mutex;

use crate::Timestamp;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;

    fn today_utc(&self) -> chrono::NaiveDate {
        self.now().date_naive()
    }
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start))
    }

    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *g += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads an ISO 8601 duration made of weeks, days, hours, minutes and seconds (`P7D`,
/// `PT36H`, `P1W2DT3H30M`, `PT0.5S`). Months and years are refused: their length depends on
/// the date they start from.
pub fn parse_iso_duration(raw: &str) -> Result<chrono::Duration, String> {
    let bad = || format!("'{raw}' is not an ISO 8601 duration such as P7D, PT12H or P1DT30M");
    let s = raw.trim().to_ascii_uppercase();
    let body = s.strip_prefix('P').ok_or_else(bad)?;
    if body.is_empty() {
        return Err(bad());
    }
    let (date, time) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return Err(bad()),
        None => (body, None),
    };
    let mut millis: f64 = 0.0;
    let mut take = |part: &str, units: &[(char, f64)]| -> Result<(), String> {
        let mut number = String::new();
        let mut last_unit = None;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let pos = units.iter().position(|(u, _)| *u == c).ok_or_else(|| match c {
                'Y' | 'M' if units[0].0 == 'W' => "months and years have no fixed length; give days (P30D) instead".to_string(),
                _ => bad(),
            })?;
            if last_unit.is_some_and(|l| pos <= l) || number.is_empty() {
                return Err(bad());
            }
            last_unit = Some(pos);
            let n: f64 = number.parse().map_err(|_| bad())?;
            millis += n * units[pos].1;
            number.clear();
        }
        if number.is_empty() { Ok(()) } else { Err(bad()) }
    };
    take(date, &[('W', 604_800_000.0), ('D', 86_400_000.0)])?;
    if let Some(t) = time {
        take(t, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)])?;
    }
    if !millis.is_finite() || millis > 1e15 {
        return Err(format!("'{raw}' is too long"));
    }
    Ok(chrono::Duration::milliseconds(millis.round() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(parse_iso_duration("P7D").unwrap(), chrono::Duration::days(7));
        assert_eq!(parse_iso_duration("pt36h").unwrap(), chrono::Duration::hours(36));
        assert_eq!(parse_iso_duration("P1W2DT3H30M").unwrap(), chrono::Duration::minutes(9 * 1440 + 210));
        assert_eq!(parse_iso_duration("PT0.5S").unwrap(), chrono::Duration::milliseconds(500));
        for bad in ["", "P", "7D", "PT", "P1H", "PD", "P1D1W", "P1DT"] {
            assert!(parse_iso_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_iso_duration("P1M").unwrap_err().contains("months"));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        c.advance(chrono::Duration::days(1));
        assert_eq!(c.now() - start, chrono::Duration::days(1));
    }
}
