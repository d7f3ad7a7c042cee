//! How numbers, money, times and names of things read on the pages.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// `12 Mar 2026` in the business's time zone.
pub fn date(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%-d %b %Y").to_string()
}

/// `12 Mar 2026, 14:05` in the business's time zone.
pub fn datetime(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%-d %b %Y, %H:%M").to_string()
}

/// `3 days ago`, `in 2 hours`, `just now`.
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let (n, future) = if secs < 0 { (-secs, true) } else { (secs, false) };
    let (value, unit) = match n {
        0..=59 => return "just now".into(),
        60..=3_599 => (n / 60, "minute"),
        3_600..=86_399 => (n / 3_600, "hour"),
        86_400..=2_591_999 => (n / 86_400, "day"),
        2_592_000..=31_535_999 => (n / 2_592_000, "month"),
        _ => (n / 31_536_000, "year"),
    };
    let plural = if value == 1 { "" } else { "s" };
    if future { format!("in {value} {unit}{plural}") } else { format!("{value} {unit}{plural} ago") }
}

/// `30 days`, `12 hours`, `90 minutes`
pub fn duration_words(d: chrono::Duration) -> String {
    let plural = |n: i64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{} {unit}s", thousands(n)) };
    if d.num_seconds() % 86_400 == 0 {
        plural(d.num_days(), "day")
    } else if d.num_seconds() % 3_600 == 0 {
        plural(d.num_hours(), "hour")
    } else {
        plural(d.num_minutes(), "minute")
    }
}

/// `12,345`
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `€1,234.50`, `USD 12.00`
pub fn money(amount: f64, currency: &str) -> String {
    let cents = (amount.abs() * 100.0).round() as i64;
    let body = format!("{}.{:02}", thousands(cents / 100), cents % 100);
    let sign = if amount < 0.0 { "-" } else { "" };
    match currency {
        "EUR" => format!("{sign}€{body}"),
        "USD" => format!("{sign}${body}"),
        "GBP" => format!("{sign}£{body}"),
        c => format!("{sign}{c} {body}"),
    }
}

/// `at_risk` → `At risk`
pub fn label(key: &str) -> String {
    let s = key.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// A value tier's name as shown: `gold` → `Gold`, `vip` → `VIP`.
pub fn tier(name: &str) -> String {
    if name.chars().count() <= 3 { name.to_uppercase() } else { label(name) }
}

/// Text cut to `max` characters with an ellipsis.
pub fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_well() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-999), "-999");
        assert_eq!(money(1234.5, "EUR"), "€1,234.50");
        assert_eq!(money(-3.0, "PHP"), "-PHP 3.00");
        assert_eq!(label("at_risk"), "At risk");
        assert_eq!(clip("abcdef", 4), "abc…");
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::days(3), now), "3 days ago");
        assert_eq!(ago(now + chrono::Duration::hours(2), now), "in 2 hours");
    }
}
