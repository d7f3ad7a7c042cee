//! Passwords for people who sign in: argon2id with a random salt, stored as a PHC string.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 8;

/// Checks the policy and hashes. The error says what is wrong, for the person choosing it.
pub fn hash(password: &str) -> Result<String, String> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(format!("the password must be at least {MIN_LENGTH} characters"));
    }
    if chars > 1024 {
        return Err("the password must be at most 1024 characters".into());
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("could not hash the password: {e}"))
}

/// True when `password` matches the stored PHC string.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("correct horse", &a));
        assert!(!verify("wrong horse", &a));
        assert!(hash("short").is_err());
    }
}
