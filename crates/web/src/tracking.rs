//! Open and click tracking of email: every web link of a message's HTML goes through
//! `/t/c/{token}?u=…&s=…`, which records the click and redirects, and a 1×1 image
//! `/t/o/{token}` records the open.
//!
//! The token says which contact and message (signed, purpose-bound, see
//! `rapport_channels::token`); `s` signs the target URL together with the message, so a click
//! link only ever redirects to a URL that was in that message: no open redirect. People who
//! asked not to be tracked get neither rewritten links nor the pixel, and nothing is recorded
//! for them even if an old link of theirs is followed.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rapport_channels::template::rewrite_links_and_add_pixel;
use rapport_channels::token::{self, Purpose};
use rapport_store::{Engagement, EngagementOutcome};
use uuid::Uuid;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/t/o/{token}", get(open)).route("/t/c/{token}", get(click))
}

/// The secret tracking tokens are signed with: the one unsubscribe links use. Tokens carry
/// their purpose and URL signatures a prefix of their own, so one key serves all of them.
pub(crate) const SECRET_NAME: &str = "unsubscribe";

/// A message's HTML with its web links sent through click tracking and the open pixel added.
/// Links to this Rapport itself (unsubscribe, preferences) and the URLs in `keep` stay as they
/// are; `mailto:`, `tel:` and relative links are never touched.
pub(crate) fn track_html(html: &str, public_url: &str, secret: &[u8], contact: Uuid, message: Uuid, keep: &[&str]) -> String {
    let base = public_url.trim_end_matches('/');
    let own = format!("{base}/");
    let click_token = token::sign(secret, Purpose::Click, *contact.as_bytes(), *message.as_bytes());
    let open_token = token::sign(secret, Purpose::Open, *contact.as_bytes(), *message.as_bytes());
    let pixel = format!("{base}/t/o/{open_token}");
    // One pass over the HTML for both: it is most of the cost of tracking a message.
    rewrite_links_and_add_pixel(
        html,
        &mut |url: &str| {
            if keep.contains(&url) || url.starts_with(&own) || url == base {
                return None;
            }
            let signature = token::sign_url(secret, *message.as_bytes(), url);
            let query =
                form_urlencoded::Serializer::new(String::new()).append_pair("u", url).append_pair("s", &signature).finish();
            Some(format!("{base}/t/c/{click_token}?{query}"))
        },
        &pixel,
    )
}

/// A transparent 1×1 GIF (43 bytes).
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9,
    0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00,
    0x3b,
];

const NO_CACHE: &str = "no-cache, no-store, must-revalidate, private, max-age=0";

fn pixel() -> Response {
    let mut res = (StatusCode::OK, PIXEL).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    res
}

async fn verified(state: &AppState, purpose: Purpose, raw: &str) -> Option<(Vec<u8>, Uuid, Uuid)> {
    let secret = match state.store.app_secret(SECRET_NAME).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the tracking secret");
            return None;
        }
    };
    let (c, m) = token::verify(&secret, purpose, raw)?;
    Some((secret, Uuid::from_bytes(c), Uuid::from_bytes(m)))
}

async fn record(state: &AppState, contact: Uuid, message: Uuid, what: Engagement) {
    match state.store.record_engagement(message, contact, what).await {
        Ok(EngagementOutcome::Recorded) => state.automation_wake.notify_one(),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, %message, "could not record an open or click"),
    }
}

/// The open pixel: always the image, whatever the token; only a valid one is recorded.
async fn open(State(s): State<AppState>, Path(raw): Path<String>) -> Response {
    let raw = raw.strip_suffix(".gif").unwrap_or(&raw);
    if let Some((_, contact, message)) = verified(&s, Purpose::Open, raw).await {
        record(&s, contact, message, Engagement::Opened).await;
    }
    pixel()
}

/// `Location` carries visible ASCII only: other bytes of the URL are percent-encoded, as a
/// browser would send them.
fn location(url: &str) -> Option<HeaderValue> {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if (0x21..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).ok()
}

fn is_web_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn not_found() -> Response {
    let html = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
        content=\"width=device-width\"><meta name=\"robots\" content=\"noindex\"><title>Link not valid</title>\
        <link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body class=\"standalone\"><main class=\"narrow\">\
        <h1>Link not valid</h1><p>This link is not valid: it may have been cut off or changed. Use the link from the email \
        itself.</p></main></body></html>";
    let mut res = (StatusCode::NOT_FOUND, Html(html)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    res
}

/// A click: redirects to the link's URL when the token and the URL's signature hold, and
/// records it; anything else is a 404 page.
async fn click(State(s): State<AppState>, Path(raw): Path<String>, RawQuery(query): RawQuery) -> Response {
    let (mut url, mut signature) = (None, None);
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "u" if url.is_none() => url = Some(v.into_owned()),
            "s" if signature.is_none() => signature = Some(v.into_owned()),
            _ => {}
        }
    }
    let (Some(url), Some(signature)) = (url, signature) else { return not_found() };
    let Some((secret, contact, message)) = verified(&s, Purpose::Click, &raw).await else { return not_found() };
    if !is_web_url(&url) || !token::verify_url(&secret, *message.as_bytes(), &url, &signature) {
        return not_found();
    }
    let Some(to) = location(&url) else { return not_found() };
    record(&s, contact, message, Engagement::Clicked { url }).await;
    let mut res = StatusCode::FOUND.into_response();
    let h = res.headers_mut();
    h.insert(header::LOCATION, to);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    // The token stays here: the target does not learn it from the Referer.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_tracked_except_our_own_and_non_web_ones() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let (c, m) = (Uuid::from_bytes([1; 16]), Uuid::from_bytes([2; 16]));
        let html = concat!(
            r#"<html><body><a href="https://shop.example/sale?a=1&amp;b=2">Sale</a>"#,
            r#"<a href="https://crm.example/u/TOKEN">Unsubscribe</a><a href="mailto:hi@shop.example">Mail</a>"#,
            r#"<a href="https://keep.example/">keep</a></body></html>"#,
        );
        let out = track_html(html, "https://crm.example/", secret, c, m, &["https://keep.example/"]);
        assert!(out.contains(r#"href="https://crm.example/u/TOKEN""#), "{out}");
        assert!(out.contains(r#"href="mailto:hi@shop.example""#));
        assert!(out.contains(r#"href="https://keep.example/""#));
        assert!(!out.contains("https://shop.example/sale?a=1"), "the sale link is rewritten: {out}");
        let sig = token::sign_url(secret, *m.as_bytes(), "https://shop.example/sale?a=1&b=2");
        assert!(out.contains(&format!("?u=https%3A%2F%2Fshop.example%2Fsale%3Fa%3D1%26b%3D2&amp;s={sig}")), "{out}");
        assert!(out.contains(r#"<img src="https://crm.example/t/o/"#) && out.ends_with("</body></html>"));
    }

    #[test]
    fn locations_are_ascii() {
        assert_eq!(location("https://a.example/café x").unwrap(), "https://a.example/caf%C3%A9%20x");
    }

    #[test]
    fn the_pixel_is_a_gif() {
        assert!(PIXEL.starts_with(b"GIF89a") && PIXEL.len() == 43);
    }
}
