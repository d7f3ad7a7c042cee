//! The filters Rapport adds to minijinja's builtins: dates in the contact's time zone and money
//! from minor units, both formatted for the message's locale.
//!
//! The locale is the one of the template variant being rendered (a German text gets German
//! numbers), else the contact's. The time zone is the contact's, else the business's, else UTC.
//! A missing value renders as nothing, like any other missing optional value.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind, State};
use std::fmt::Write;

/// The context key the renderer puts the formatting locale under.
pub(crate) const LOCALE_KEY: &str = "__rapport_locale";

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

fn lookup_text(state: &State, object: &str, attr: &str) -> Option<String> {
    let value = state.lookup(object)?.get_attr(attr).ok()?;
    value.as_str().map(str::to_owned)
}

fn locale(state: &State) -> String {
    state
        .lookup(LOCALE_KEY)
        .and_then(|v| v.as_str().map(str::to_owned))
        .or_else(|| lookup_text(state, "contact", "locale"))
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn time_zone(state: &State) -> Tz {
    ["contact", "business"]
        .into_iter()
        .filter_map(|object| lookup_text(state, object, "time_zone"))
        .find_map(|name| name.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

/// Refuses a strftime format chrono cannot render (formatting one would panic).
pub(crate) fn check_format(format: &str) -> Result<(), String> {
    if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        Err(format!("`{format}` is not a valid date format (see chrono's strftime: %Y-%m-%d, %H:%M, %B …)"))
    } else {
        Ok(())
    }
}

fn language(locale: &str) -> &str {
    locale.split('-').next().unwrap_or_default()
}

fn default_date_format(locale: &str) -> &'static str {
    match language(locale) {
        "en" if locale == "en" || locale == "en-us" => "%B %-d, %Y",
        "en" => "%-d %B %Y",
        "de" | "da" | "fi" | "nb" | "no" | "nn" | "ru" | "uk" | "pl" | "cs" | "sk" | "tr" | "ro" | "hr" | "sl" | "et" | "lv" => {
            "%d.%m.%Y"
        }
        "fr" | "es" | "it" | "pt" | "el" | "ca" | "vi" | "id" => "%d/%m/%Y",
        "nl" => "%d-%m-%Y",
        _ => "%Y-%m-%d",
    }
}

fn default_time_format(locale: &str) -> &'static str {
    if locale == "en" || locale == "en-us" { "%-I:%M %p" } else { "%H:%M" }
}

enum When {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

fn parse_when(value: &Value) -> Result<Option<When>, Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(None);
    }
    if let Some(s) = value.as_str() {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Some(When::Instant(t.with_timezone(&Utc))));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
            return Ok(Some(When::Instant(t.and_utc())));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Some(When::Day(d)));
        }
        return Err(invalid(format!("`{s}` is not a date; expected e.g. 2025-03-01 or 2025-03-01T09:30:00Z")));
    }
    if value.kind() == ValueKind::Number {
        let secs = value.as_i64().ok_or_else(|| invalid("a timestamp must be whole seconds since 1970"))?;
        return match Utc.timestamp_opt(secs, 0).single() {
            Some(t) => Ok(Some(When::Instant(t))),
            None => Err(invalid(format!("{secs} is out of range for a timestamp"))),
        };
    }
    Err(invalid(format!("cannot format a {} as a date", value.kind())))
}

fn format_when(state: &State, value: &Value, format: Option<&str>, with_time: bool) -> Result<String, Error> {
    let Some(when) = parse_when(value)? else { return Ok(String::new()) };
    let locale = locale(state);
    let default;
    let format = match format {
        Some(f) => {
            check_format(f).map_err(invalid)?;
            f
        }
        None if with_time => {
            default = format!("{} {}", default_date_format(&locale), default_time_format(&locale));
            &default
        }
        None => default_date_format(&locale),
    };
    let mut out = String::new();
    let written = match when {
        When::Instant(t) => write!(out, "{}", t.with_timezone(&time_zone(state)).format(format)),
        // A calendar day has no time zone; formatting a time of day from it shows midnight.
        When::Day(d) => write!(out, "{}", d.and_hms_opt(0, 0, 0).unwrap_or_default().format(format)),
    };
    written.map_err(|_| invalid(format!("`{format}` cannot format this date")))?;
    Ok(out)
}

/// `{{ profile.last_order_at|date }}`, `{{ x|date("%d %B") }}`: the day in the contact's time zone.
pub(crate) fn date(state: &State, value: Value, format: Option<String>) -> Result<String, Error> {
    format_when(state, &value, format.as_deref(), false)
}

/// `{{ appointment.starts_at|datetime }}`: day and time of day in the contact's time zone.
pub(crate) fn datetime(state: &State, value: Value, format: Option<String>) -> Result<String, Error> {
    format_when(state, &value, format.as_deref(), true)
}

/// Currencies whose minor unit is not a hundredth (ISO 4217); mirrors `rapport_core::money`.
const ZERO_DECIMALS: &[&str] =
    &["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"];
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

fn symbol(currency: &str) -> Option<&'static str> {
    Some(match currency {
        "EUR" => "€",
        "USD" => "$",
        "GBP" => "£",
        "JPY" => "¥",
        "INR" => "₹",
        "KRW" => "₩",
        "ILS" => "₪",
        "NGN" => "₦",
        "PHP" => "₱",
        "UAH" => "₴",
        "VND" => "₫",
        "TRY" => "₺",
        _ => return None,
    })
}

/// How a locale writes an amount: group and decimal separators, and where the symbol goes.
struct NumberStyle {
    group: &'static str,
    decimal: &'static str,
    symbol_after: bool,
}

fn number_style(locale: &str) -> NumberStyle {
    const NBSP: &str = "\u{a0}";
    match language(locale) {
        "de" | "es" | "it" | "pt" | "da" | "el" | "ro" | "hr" | "sl" | "id" | "tr" | "ca" => {
            NumberStyle { group: ".", decimal: ",", symbol_after: true }
        }
        "fr" | "sv" | "nb" | "no" | "nn" | "fi" | "pl" | "cs" | "sk" | "ru" | "uk" | "hu" | "lt" | "lv" | "et" | "bg" => {
            NumberStyle { group: NBSP, decimal: ",", symbol_after: true }
        }
        "nl" => NumberStyle { group: ".", decimal: ",", symbol_after: false },
        _ => NumberStyle { group: ",", decimal: ".", symbol_after: false },
    }
}

/// Formats `minor` units of `currency` for `locale`: `€1,234.50` (en), `1.234,50 €` (de).
pub(crate) fn format_money(minor: i64, currency: &str, locale: &str) -> String {
    let currency = currency.trim().to_ascii_uppercase();
    let exponent = if ZERO_DECIMALS.contains(&currency.as_str()) {
        0
    } else if THREE_DECIMALS.contains(&currency.as_str()) {
        3
    } else {
        2
    };
    let scale = 10u64.pow(exponent);
    let abs = minor.unsigned_abs();
    let (whole, fraction) = (abs / scale, abs % scale);
    let style = number_style(locale);
    let digits = whole.to_string();
    let mut number = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            number.push_str(style.group);
        }
        number.push(d);
    }
    if exponent > 0 {
        let _ = write!(number, "{}{:0width$}", style.decimal, fraction, width = exponent as usize);
    }
    let sign = if minor < 0 { "-" } else { "" };
    let mark = symbol(&currency).map(str::to_owned);
    match (mark, style.symbol_after) {
        (Some(s), false) => format!("{sign}{s}{number}"),
        (None, false) => format!("{sign}{currency}\u{a0}{number}"),
        (Some(s), true) => format!("{sign}{number}\u{a0}{s}"),
        (None, true) => format!("{sign}{number}\u{a0}{currency}"),
    }
}

/// `{{ 123450|money("EUR") }}` or `{{ contact.custom.budget|money }}` (an
/// `{"amount_minor": 123450, "currency": "EUR"}` object): an amount in minor units.
pub(crate) fn money(state: &State, value: Value, currency: Option<String>) -> Result<String, Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(String::new());
    }
    let (minor, currency) = if value.kind() == ValueKind::Map {
        let amount = value.get_attr("amount_minor").ok().filter(|v| !v.is_undefined());
        let amount = amount.or_else(|| value.get_attr("minor").ok().filter(|v| !v.is_undefined()));
        let code = value.get_attr("currency").ok().and_then(|v| v.as_str().map(str::to_owned));
        match (amount, currency.or(code)) {
            (Some(a), Some(c)) => (a, c),
            _ => return Err(invalid("money expects {\"amount_minor\": 1250, \"currency\": \"EUR\"}")),
        }
    } else {
        let Some(c) = currency else {
            return Err(invalid("money needs a currency: {{ amount|money(\"EUR\") }}"));
        };
        (value, c)
    };
    if minor.is_undefined() || minor.is_none() {
        return Ok(String::new());
    }
    let Some(minor) = minor.as_i64().filter(|_| minor.is_integer()) else {
        return Err(invalid(format!("money expects whole minor units (cents), got {minor}")));
    };
    let currency = currency.trim();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(invalid(format!("`{currency}` is not an ISO 4217 currency code such as EUR")));
    }
    Ok(format_money(minor, currency, &locale(state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_follows_the_locale_and_the_currency() {
        assert_eq!(format_money(123450, "EUR", "en"), "€1,234.50");
        assert_eq!(format_money(123450, "eur", "de-at"), "1.234,50\u{a0}€");
        assert_eq!(format_money(123450, "EUR", "fr"), "1\u{a0}234,50\u{a0}€");
        assert_eq!(format_money(123450, "EUR", "nl"), "€1.234,50");
        assert_eq!(format_money(-5, "USD", ""), "-$0.05");
        assert_eq!(format_money(1200, "JPY", "en"), "¥1,200");
        assert_eq!(format_money(1234, "KWD", "en"), "KWD\u{a0}1.234");
        assert_eq!(format_money(100_000_000, "CHF", "de"), "1.000.000,00\u{a0}CHF");
    }

    #[test]
    fn bad_formats_are_refused_not_panicked_on() {
        assert!(check_format("%Y-%m-%d").is_ok());
        assert!(check_format("%Q").is_err());
        assert!(check_format("%").is_err());
    }
}
