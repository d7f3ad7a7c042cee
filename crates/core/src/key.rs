//! API keys. A key is shown once when created; only its SHA-256 digest is stored (the key
//! itself has 256 bits of entropy, so a slow password hash would add nothing but latency).

use serde::Serialize;
use uuid::Uuid;

use crate::user::Role;

/// Every key starts with this, so leaked keys are easy to spot and scan for.
pub const KEY_PREFIX: &str = "rk_";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to tell keys apart in lists.
    pub prefix: String,
    /// The user the key acts for, when it belongs to one.
    pub user_id: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Formats 32 random bytes as a key: `rk_` and 64 hex digits.
pub fn format_key(secret: &[u8; 32]) -> String {
    let mut s = String::with_capacity(KEY_PREFIX.len() + 64);
    s.push_str(KEY_PREFIX);
    for b in secret {
        s.push(char::from_digit((b >> 4) as u32, 16).expect("nibble"));
        s.push(char::from_digit((b & 15) as u32, 16).expect("nibble"));
    }
    s
}

/// The part of a key shown in lists.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX.len() + 8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape() {
        let k = format_key(&[0xab; 32]);
        assert_eq!(k.len(), 67);
        assert!(k.starts_with("rk_abab"));
        assert_eq!(display_prefix(&k), "rk_abababab");
    }
}
