use std::fmt;
use std::str::FromStr;

use crate::error::FieldError;

/// A syntactically valid email address, trimmed and lower-cased so that the same mailbox is
/// always stored and compared the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.len() > 254 {
            return Err("is longer than 254 characters".into());
        }
        if email_address::EmailAddress::from_str(trimmed).is_err() {
            return Err(format!("'{trimmed}' is not a valid email address"));
        }
        let (_, domain) = trimmed.rsplit_once('@').ok_or("has no @")?;
        // Addresses a mail server would accept have a dotted domain; "ana@localhost" in a CRM
        // is almost always a typo.
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(format!("'{trimmed}' has no valid domain after the @"));
        }
        if domain.starts_with('[') {
            return Err(format!("'{trimmed}' uses an IP literal, which Rapport does not accept"));
        }
        Ok(Self(trimmed.to_lowercase()))
    }

    /// Parses and reports a failure against `field`.
    pub fn parse_field(raw: &str, field: &str) -> Result<Self, FieldError> {
        Self::parse(raw).map_err(|m| FieldError::new(field, m))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// For values read back from storage, which were validated when written.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_space() {
        let e = EmailAddress::parse("  Ana.Santos@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "ana.santos@example.com");
        assert_eq!(e.domain(), "example.com");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "ana", "ana@", "@example.com", "ana@@example.com", "ana example@x.com", "ana@localhost", "ana@example."] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn accepts_plus_and_subdomains() {
        assert!(EmailAddress::parse("ana+crm@mail.example.co.uk").is_ok());
    }
}
