//! Request signing. The receiver recomputes the HMAC with the shared secret to know the call
//! came from Rapport and the body was not changed; the signed timestamp lets it refuse replays.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A webhook signing secret. Its `Debug` prints no part of it, so it cannot leak through a log
/// line or an error that formats the request.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

fn mac(secret: &WebhookSecret, timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(&secret.0).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Rapport-Signature` header value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
pub(crate) fn signature_header(secret: &WebhookSecret, timestamp: u64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let mut header = format!("t={timestamp},v1=");
    for byte in digest {
        header.push(char::from(HEX[usize::from(byte >> 4)]));
        header.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    header
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether a `Rapport-Signature` header is valid for `body` under `secret` and was made within
/// `tolerance` of `now` (either side, for clock skew). Any of several `v1=` entries may match, so
/// a sender can sign with an old and a new secret while they are rotated. The comparison takes
/// constant time.
pub fn verify_signature(secret: &WebhookSecret, header: &str, body: &[u8], now: SystemTime, tolerance: Duration) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", hex)) => signatures.extend(decode_hex(hex)),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else { return false };
    let Ok(now) = now.duration_since(UNIX_EPOCH) else { return false };
    if now.as_secs().abs_diff(timestamp) > tolerance.as_secs() {
        return false;
    }
    let expected = mac(secret, timestamp, body);
    signatures.iter().any(|signature| expected.clone().verify_slice(signature).is_ok())
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.as_bytes().chunks(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Python: hmac.new(b"Jefe", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        let header = signature_header(&WebhookSecret::new("Jefe"), 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(header, "t=1700000000,v1=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a");
    }

    #[test]
    fn verify_accepts_fresh_and_refuses_tampered_stale_or_foreign() {
        let secret = WebhookSecret::new("s3cret");
        let body = br#"{"event":"deal.won"}"#;
        let header = signature_header(&secret, 1_000_000, body);
        assert!(verify_signature(&secret, &header, body, at(1_000_030), MINUTE));
        assert!(verify_signature(&secret, &header, body, at(999_950), MINUTE));
        assert!(!verify_signature(&secret, &header, b"{}", at(1_000_000), MINUTE));
        assert!(!verify_signature(&secret, &header, body, at(1_000_061), MINUTE));
        assert!(!verify_signature(&WebhookSecret::new("other"), &header, body, at(1_000_000), MINUTE));
        assert!(!verify_signature(&secret, "v1=00", body, at(1_000_000), MINUTE));
        assert!(!verify_signature(&secret, "garbage", body, at(1_000_000), MINUTE));
        let rotated = format!("t=1000000,v1={},{}", "ab".repeat(32), &header["t=1000000,".len()..]);
        assert!(verify_signature(&secret, &rotated, body, at(1_000_000), MINUTE));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", WebhookSecret::new("hunter2-very-secret"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
