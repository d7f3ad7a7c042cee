//! Money: integer minor units with an ISO 4217 currency, so sums never drift.

use std::fmt;

/// An ISO 4217 currency code, stored inline (three ASCII capitals).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// Currencies whose minor unit is not a hundredth (ISO 4217). Everything else has two decimals.
pub const ZERO_DECIMALS: &[&str] =
    &["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"];
pub const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let up = raw.trim().to_ascii_uppercase();
        let b = up.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_uppercase) {
            return Err(format!("'{raw}' is not an ISO 4217 currency code such as EUR or USD"));
        }
        Ok(Self([b[0], b[1], b[2]]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a currency holds three ASCII capitals")
    }

    /// Digits after the decimal point.
    pub fn exponent(&self) -> u32 {
        let s = self.as_str();
        if ZERO_DECIMALS.contains(&s) {
            0
        } else if THREE_DECIMALS.contains(&s) {
            3
        } else {
            2
        }
    }

    fn scale(&self) -> f64 {
        10f64.powi(self.exponent() as i32)
    }

    /// Converts an amount in major units (`129.99`) to minor units (`12999`), refusing more
    /// decimals than the currency has.
    pub fn to_minor(&self, major: f64) -> Result<i64, String> {
        if !major.is_finite() || major.abs() > 1e13 {
            return Err("is not a usable amount".into());
        }
        let scaled = major * self.scale();
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 * rounded.abs().max(1.0) {
            return Err(format!("{major} has more decimals than {} allows ({})", self.as_str(), self.exponent()));
        }
        Ok(rounded as i64)
    }

    pub fn to_major(&self, minor: i64) -> f64 {
        minor as f64 / self.scale()
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of one currency in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    pub currency: Currency,
    pub minor: i64,
}

impl Money {
    pub fn new(currency: Currency, minor: i64) -> Self {
        Self { currency, minor }
    }

    pub fn major(&self) -> f64 {
        self.currency.to_major(self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_follow_the_currency() {
        let eur = Currency::parse("eur").unwrap();
        assert_eq!(eur.as_str(), "EUR");
        assert_eq!(eur.to_minor(129.0), Ok(12900));
        assert_eq!(eur.to_minor(0.1 + 0.2), Ok(30));
        assert!(eur.to_minor(1.005).is_err());
        assert_eq!(Currency::parse("JPY").unwrap().to_minor(1200.0), Ok(1200));
        assert_eq!(Currency::parse("KWD").unwrap().to_minor(1.234), Ok(1234));
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("E1R").is_err());
    }
}
