//! Small helpers for free-text input fields.

use crate::error::FieldError;

/// Trims `raw`; empty becomes `None`; longer than `max` characters is an error.
pub fn optional(raw: Option<String>, field: &str, max: usize) -> Result<Option<String>, FieldError> {
    match raw {
        None => Ok(None),
        Some(s) => {
            let t = s.trim();
            if t.is_empty() {
                Ok(None)
            } else if t.chars().count() > max {
                Err(FieldError::new(field, format!("must be at most {max} characters")))
            } else if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                Err(FieldError::new(field, "must not contain control characters"))
            } else {
                Ok(Some(t.to_string()))
            }
        }
    }
}

/// Like [`optional`] but the value must be present and non-blank.
pub fn required(raw: Option<String>, field: &str, max: usize) -> Result<String, FieldError> {
    optional(raw, field, max)?.ok_or_else(|| FieldError::new(field, "is required"))
}

/// Validates an IANA time zone name such as `Asia/Manila`.
pub fn time_zone(raw: Option<String>, field: &str) -> Result<Option<String>, FieldError> {
    match optional(raw, field, 64)? {
        None => Ok(None),
        Some(tz) => tz
            .parse::<chrono_tz::Tz>()
            .map(|z| Some(z.name().to_string()))
            .map_err(|_| FieldError::new(field, format!("'{tz}' is not an IANA time zone such as Europe/Berlin"))),
    }
}

/// Validates a BCP 47 language tag in its common shapes (`en`, `pt-BR`, `zh-Hant-TW`).
pub fn locale(raw: Option<String>, field: &str) -> Result<Option<String>, FieldError> {
    match optional(raw, field, 35)? {
        None => Ok(None),
        Some(l) => {
            let mut parts = l.split(['-', '_']);
            let lang = parts.next().unwrap_or("");
            let lang_ok = (2..=3).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_alphabetic());
            let rest_ok = parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
            if lang_ok && rest_ok {
                Ok(Some(l.replace('_', "-")))
            } else {
                Err(FieldError::new(field, format!("'{l}' is not a language tag such as en or pt-BR")))
            }
        }
    }
}

/// Validates an absolute http(s) URL.
pub fn url(raw: &str, field: &str) -> Result<String, FieldError> {
    let t = raw.trim();
    let rest = t.strip_prefix("https://").or_else(|| t.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !t.chars().any(char::is_whitespace) && t.len() <= 2048 => {
            Ok(t.to_string())
        }
        _ => Err(FieldError::new(field, format!("'{t}' is not an http(s) URL"))),
    }
}

/// Normalises a web domain: lower case, no scheme, no path, no `www.`.
pub fn domain(raw: Option<String>, field: &str) -> Result<Option<String>, FieldError> {
    let Some(d) = optional(raw, field, 253)? else { return Ok(None) };
    let lower = d.to_lowercase();
    let no_scheme = lower.trim_start_matches("https://").trim_start_matches("http://");
    let host = no_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.strip_prefix("www.").unwrap_or(host);
    let valid = host.contains('.')
        && host.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if valid {
        Ok(Some(host.to_string()))
    } else {
        Err(FieldError::new(field, format!("'{d}' is not a domain such as example.com")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_trims_and_limits() {
        assert_eq!(optional(Some("  a ".into()), "f", 5).unwrap(), Some("a".into()));
        assert_eq!(optional(Some("   ".into()), "f", 5).unwrap(), None);
        assert!(optional(Some("abcdef".into()), "f", 5).is_err());
        assert!(optional(Some("a\u{0}b".into()), "f", 5).is_err());
        assert!(required(None, "f", 5).is_err());
    }

    #[test]
    fn zones_locales_domains_urls() {
        assert_eq!(time_zone(Some("Asia/Manila".into()), "tz").unwrap().as_deref(), Some("Asia/Manila"));
        assert!(time_zone(Some("Mars/Olympus".into()), "tz").is_err());
        assert_eq!(locale(Some("pt_BR".into()), "l").unwrap().as_deref(), Some("pt-BR"));
        assert!(locale(Some("english please".into()), "l").is_err());
        assert_eq!(domain(Some("https://www.Acme.com/about".into()), "d").unwrap().as_deref(), Some("acme.com"));
        assert!(domain(Some("acme".into()), "d").is_err());
        assert!(url("https://acme.com/x", "u").is_ok());
        assert!(url("javascript:alert(1)", "u").is_err());
    }
}
