//! Signed link tokens: what an unsubscribe (or tracking) link carries so that Rapport knows
//! whom and which message it is about without a login, and can tell a forged or altered link
//! from a real one.
//!
//! A token is `base64url(purpose byte ‖ contact id ‖ message id ‖ first 16 bytes of
//! HMAC-SHA256(secret, purpose ‖ contact ‖ message))`: 49 bytes, 66 characters.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What a token may be used for: a token made for one purpose is refused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unsubscribe = 1,
    Preferences = 2,
    /// The open pixel of a message.
    Open = 3,
    /// A message's click links; the target URL is signed separately ([`sign_url`]).
    Click = 4,
    /// A double opt-in confirmation link: the contact and the consent ledger entry it confirms.
    ConfirmConsent = 16,
}

const TAG_BYTES: usize = 16;
const BODY_BYTES: usize = 1 + 16 + 16;

fn tag(secret: &[u8], body: &[u8]) -> [u8; TAG_BYTES] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_BYTES];
    out.copy_from_slice(&full[..TAG_BYTES]);
    out
}

/// A token for `contact` and `message` (each 16 bytes: UUIDs).
pub fn sign(secret: &[u8], purpose: Purpose, contact: [u8; 16], message: [u8; 16]) -> String {
    let mut bytes = Vec::with_capacity(BODY_BYTES + TAG_BYTES);
    bytes.push(purpose as u8);
    bytes.extend_from_slice(&contact);
    bytes.extend_from_slice(&message);
    let t = tag(secret, &bytes);
    bytes.extend_from_slice(&t);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The contact and message a token names, when it was made with `secret` for `purpose` and not
/// changed since. The comparison takes constant time.
pub fn verify(secret: &[u8], purpose: Purpose, token: &str) -> Option<([u8; 16], [u8; 16])> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    if bytes.len() != BODY_BYTES + TAG_BYTES || bytes[0] != purpose as u8 {
        return None;
    }
    let (body, given) = bytes.split_at(BODY_BYTES);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac.verify_truncated_left(given).ok()?;
    let mut contact = [0u8; 16];
    let mut message = [0u8; 16];
    contact.copy_from_slice(&body[1..17]);
    message.copy_from_slice(&body[17..33]);
    Some((contact, message))
}

/// Bytes of HMAC kept in a click link's URL signature: 96 bits, 16 characters.
const URL_TAG_BYTES: usize = 12;

fn url_tag(secret: &[u8], message: [u8; 16], url: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    // A domain prefix keeps these tags apart from the tokens' tags made with the same key.
    mac.update(b"rapport-click-url\0");
    mac.update(&message);
    mac.update(url.as_bytes());
    mac
}

/// The signature a click link carries for its target: a short HMAC over the message id and
/// the URL exactly as it appeared in the message, so that a link can only ever redirect to a
/// URL that was in that message (no open redirect).
pub fn sign_url(secret: &[u8], message: [u8; 16], url: &str) -> String {
    let full = url_tag(secret, message, url).finalize().into_bytes();
    URL_SAFE_NO_PAD.encode(&full[..URL_TAG_BYTES])
}

/// Whether `signature` is [`sign_url`]'s for this message and URL. Constant time.
pub fn verify_url(secret: &[u8], message: [u8; 16], url: &str, signature: &str) -> bool {
    let Ok(given) = URL_SAFE_NO_PAD.decode(signature.trim()) else { return false };
    given.len() == URL_TAG_BYTES && url_tag(secret, message, url).verify_truncated_left(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_refuse_tampering() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let (c, m) = ([7u8; 16], [9u8; 16]);
        let t = sign(secret, Purpose::Unsubscribe, c, m);
        assert_eq!(verify(secret, Purpose::Unsubscribe, &t), Some((c, m)));
        assert_eq!(verify(secret, Purpose::Preferences, &t), None, "another purpose");
        assert_eq!(verify(b"another secret", Purpose::Unsubscribe, &t), None, "another key");
        // Every single-character change is refused.
        for i in 0..t.len() {
            let mut chars: Vec<char> = t.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let altered: String = chars.into_iter().collect();
            if altered != t {
                assert_eq!(verify(secret, Purpose::Unsubscribe, &altered), None, "position {i}");
            }
        }
        assert_eq!(verify(secret, Purpose::Unsubscribe, "garbage"), None);
        assert_eq!(verify(secret, Purpose::Unsubscribe, ""), None);
    }

    #[test]
    fn click_urls_are_bound_to_their_message() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let (m, other) = ([3u8; 16], [4u8; 16]);
        let url = "https://shop.example/sale?x=1&y=2";
        let s = sign_url(secret, m, url);
        assert_eq!(s.len(), 16);
        assert!(verify_url(secret, m, url, &s));
        assert!(!verify_url(secret, m, "https://evil.example/", &s), "a forged target");
        assert!(!verify_url(secret, m, "https://shop.example/sale?x=1&y=3", &s), "an altered target");
        assert!(!verify_url(secret, other, url, &s), "another message");
        assert!(!verify_url(b"another secret", m, url, &s), "another key");
        for i in 0..s.len() {
            let mut chars: Vec<char> = s.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let altered: String = chars.into_iter().collect();
            if altered != s {
                assert!(!verify_url(secret, m, url, &altered), "signature position {i}");
            }
        }
        assert!(!verify_url(secret, m, url, &s[..15]), "a cut signature");
        assert!(!verify_url(secret, m, url, ""), "no signature");
        assert!(!verify_url(secret, m, url, "%%%"), "not base64");
        // A click token is not an unsubscribe token, and the other way round.
        let t = sign(secret, Purpose::Click, [1; 16], m);
        assert_eq!(verify(secret, Purpose::Unsubscribe, &t), None);
        assert_eq!(verify(secret, Purpose::Click, &t), Some(([1; 16], m)));
        assert_eq!(verify(secret, Purpose::Open, &t), None);
    }
}
