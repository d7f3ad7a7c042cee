use std::fmt;

use chrono::{Datelike, NaiveDate};

/// A birthday: day and month always, year when known. Written `YYYY-MM-DD`, or `--MM-DD`
/// (the ISO 8601 / vCard form) when the year is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Birthday {
    pub month: u8,
    pub day: u8,
    pub year: Option<i32>,
}

impl Birthday {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let bad = || format!("'{s}' is not a birthday; use YYYY-MM-DD, or --MM-DD when the year is unknown");
        if let Some(rest) = s.strip_prefix("--") {
            let (m, d) = rest.split_once('-').ok_or_else(bad)?;
            if m.len() != 2 || d.len() != 2 {
                return Err(bad());
            }
            let month: u8 = m.parse().map_err(|_| bad())?;
            let day: u8 = d.parse().map_err(|_| bad())?;
            // 2000 is a leap year, so 29 February is accepted without a year.
            NaiveDate::from_ymd_opt(2000, month.into(), day.into()).ok_or_else(|| format!("'{s}' is not a day of the year"))?;
            return Ok(Self { month, day, year: None });
        }
        let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
        if date.year() < 1900 {
            return Err(format!("'{s}' is before 1900"));
        }
        Ok(Self { month: date.month() as u8, day: date.day() as u8, year: Some(date.year()) })
    }

    /// The full date when the year is known.
    pub fn date(&self) -> Option<NaiveDate> {
        self.year.and_then(|y| NaiveDate::from_ymd_opt(y, self.month.into(), self.day.into()))
    }

    /// Fails when the birth year lies after `today`.
    pub fn check_not_future(&self, today: NaiveDate) -> Result<(), String> {
        match self.date() {
            Some(d) if d > today => Err(format!("{self} is in the future")),
            _ => Ok(()),
        }
    }

    /// The date of the birthday in `year`; 29 February falls on 28 February in common years.
    pub fn in_year(&self, year: i32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, self.month.into(), self.day.into())
            .or_else(|| NaiveDate::from_ymd_opt(year, self.month.into(), 28))
            .expect("month and day were validated at parse time")
    }
}

impl fmt::Display for Birthday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.year {
            Some(y) => write!(f, "{y:04}-{:02}-{:02}", self.month, self.day),
            None => write!(f, "--{:02}-{:02}", self.month, self.day),
        }
    }
}

impl serde::Serialize for Birthday {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_round_trip() {
        for s in ["1988-03-14", "--03-14", "--02-29", "2000-02-29"] {
            assert_eq!(Birthday::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_impossible_dates() {
        for s in ["--13-01", "--02-30", "1999-02-29", "14/03/1988", "--3-14", "1800-01-01", ""] {
            assert!(Birthday::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn leap_day_in_common_year() {
        let b = Birthday::parse("--02-29").unwrap();
        assert_eq!(b.in_year(2027), NaiveDate::from_ymd_opt(2027, 2, 28).unwrap());
        assert_eq!(b.in_year(2028), NaiveDate::from_ymd_opt(2028, 2, 29).unwrap());
    }

    #[test]
    fn future_birth_is_refused() {
        let b = Birthday::parse("2030-01-01").unwrap();
        assert!(b.check_not_future(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()).is_err());
    }
}
