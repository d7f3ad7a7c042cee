//! The UI's own stylesheet and script, compiled into the binary and served with a content
//! hash in the URL, so browsers may keep them for a year and still see every new version.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("../../assets/app.css");
const JS: &str = include_str!("../../assets/app.js");

fn versioned(name: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    format!("/assets/{stem}.{hex}.{ext}")
}

/// `/assets/app.<hash>.css`
pub fn css_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| versioned("app.css", CSS))
}

/// `/assets/app.<hash>.js`
pub fn js_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| versioned("app.js", JS))
}

/// `GET /assets/{name}`: the current files under their hashed names (for a year), or under
/// their plain names (revalidated every time).
pub async fn serve(Path(name): Path<String>) -> Response {
    let path = format!("/assets/{name}");
    let (body, mime, immutable) = if path == css_url() {
        (CSS, "text/css; charset=utf-8", true)
    } else if path == js_url() {
        (JS, "text/javascript; charset=utf-8", true)
    } else if name == "app.css" {
        (CSS, "text/css; charset=utf-8", false)
    } else if name == "app.js" {
        (JS, "text/javascript; charset=utf-8", false)
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}
