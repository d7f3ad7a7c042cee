use std::fmt;

use phonenumber::country::Id as CountryId;

/// The region a number without a `+country` prefix is read in (ISO 3166 alpha-2, e.g. "US").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneRegion(CountryId);

impl PhoneRegion {
    pub fn parse(code: &str) -> Result<Self, String> {
        code.trim()
            .to_ascii_uppercase()
            .parse::<CountryId>()
            .map(Self)
            .map_err(|_| format!("'{code}' is not an ISO 3166 two-letter region code"))
    }

    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

impl Default for PhoneRegion {
    fn default() -> Self {
        Self(CountryId::US)
    }
}

/// A phone number as the user typed it plus its E.164 form, which is what Rapport compares,
/// dials and deduplicates on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    raw: String,
}

impl PhoneNumber {
    pub fn parse(raw: &str, default_region: PhoneRegion) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.len() > 64 {
            return Err("is longer than 64 characters".into());
        }
        // With a `+country` prefix the default region must not take part: phonenumber 0.3
        // otherwise strips a leading 1 from some foreign numbers as if it were the US trunk
        // prefix (+49 171… became +4971…).
        let region = if trimmed.starts_with('+') { None } else { Some(default_region.0) };
        let parsed = phonenumber::parse(region, trimmed).map_err(|_| {
            format!("'{trimmed}' is not a phone number (numbers without a +country prefix are read as {})", default_region.code())
        })?;
        if !phonenumber::is_valid(&parsed) {
            return Err(format!("'{trimmed}' is not a valid phone number for its country"));
        }
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        Ok(Self { e164, raw: trimmed.to_string() })
    }

    /// For values read back from storage, which were validated when written.
    pub fn from_trusted(e164: String, raw: String) -> Self {
        Self { e164, raw }
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The digits of the E.164 form (no '+'), for "type part of a number" search.
    pub fn digits(&self) -> String {
        self.e164.chars().filter(char::is_ascii_digit).collect()
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_international_and_local_forms() {
        let ph = PhoneRegion::parse("ph").unwrap();
        let p = PhoneNumber::parse("+63 917 123 4567", ph).unwrap();
        assert_eq!(p.e164(), "+639171234567");
        assert_eq!(p.raw(), "+63 917 123 4567");
        let local = PhoneNumber::parse("0917-123-4567", ph).unwrap();
        assert_eq!(local.e164(), "+639171234567");
        let us = PhoneNumber::parse("(415) 555-2671", PhoneRegion::default()).unwrap();
        assert_eq!(us.e164(), "+14155552671");
        assert_eq!(us.digits(), "14155552671");
    }

    #[test]
    fn international_numbers_ignore_the_default_region() {
        for (raw, e164) in [
            ("+49 171 2345678", "+491712345678"),
            ("+86 138 0013 8000", "+8613800138000"),
            ("+82 10-2345-6789", "+821023456789"),
            ("+55 11 91234-5678", "+5511912345678"),
        ] {
            let p = PhoneNumber::parse(raw, PhoneRegion::default()).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(p.e164(), e164, "{raw}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        assert!(PhoneNumber::parse("call me maybe", PhoneRegion::default()).is_err());
        assert!(PhoneNumber::parse("12", PhoneRegion::default()).is_err());
        assert!(PhoneNumber::parse("", PhoneRegion::default()).is_err());
    }

    #[test]
    fn region_codes() {
        assert_eq!(PhoneRegion::parse("de").unwrap().code(), "DE");
        assert!(PhoneRegion::parse("XX").is_err());
    }
}
