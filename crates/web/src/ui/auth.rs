//! Signing in and out of the UI, sessions, CSRF protection and sign-in rate limiting.
//!
//! - The session cookie (`rapport_session`) is `HttpOnly; SameSite=Lax; Path=/`, plus `Secure`
//!   when configured or when the request came over HTTPS through a proxy.
//! - Every POST of a signed-in page must carry the session's CSRF token (form field `_csrf`
//!   or header `X-CSRF-Token`) and must not come from another origin; both are checked here,
//!   before any handler runs.
//! - The sign-in form has its own CSRF token (a short-lived cookie echoed by the form), so that
//!   another site cannot sign a browser in to an account of its choosing.
//! - Failed sign-ins are limited per email and per client address; the message says how long
//!   to wait. Wrong email and wrong password get the same answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use askama::Template;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rapport_core::EmailAddress;
use rapport_store::SessionLimits;
use sha2::{Digest, Sha256};

use super::form::{FormData, QueryData};
use super::{Signed, UiError, assets, local_path, render_status};
use crate::{AppState, WebConfig, password};

pub const SESSION_COOKIE: &str = "rapport_session";
const LOGIN_CSRF_COOKIE: &str = "rapport_login";
const FLASH_COOKIE: &str = "rapport_flash";
/// A session is marked used at most this often (a write per request would be wasteful).
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

pub fn session_limits(c: &WebConfig) -> SessionLimits {
    let d = |x: Duration| chrono::Duration::from_std(x).unwrap_or(chrono::Duration::days(1));
    SessionLimits { idle: d(c.session_idle), max_age: d(c.session_max_age) }
}

// ---------------------------------------------------------------------------------------------
// Rate limiting

/// Failures allowed per email within [`WINDOW`].
pub const MAX_FAILURES_PER_EMAIL: usize = 5;
/// Failures allowed per client address within [`WINDOW`] (several people may share one).
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Recent failed sign-ins, by email and by client address, in this process. Several instances
/// each keep their own (the limit then applies per instance), which still bounds guessing.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    fn keys(email: &str, ip: Option<IpAddr>) -> Vec<(String, usize)> {
        let mut keys = vec![(format!("email:{}", email.trim().to_lowercase()), MAX_FAILURES_PER_EMAIL)];
        if let Some(ip) = ip {
            keys.push((format!("ip:{ip}"), MAX_FAILURES_PER_ADDRESS));
        }
        keys
    }

    /// How long until another attempt is allowed; `None` when one is allowed now.
    pub fn wait(&self, email: &str, ip: Option<IpAddr>) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut longest: Option<Duration> = None;
        for (key, max) in Self::keys(email, ip) {
            if let Some(times) = map.get_mut(&key) {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                if times.len() >= max {
                    // Allowed again when the oldest failure that counts leaves the window.
                    let oldest = times[times.len() - max];
                    let wait = WINDOW.saturating_sub(now.duration_since(oldest));
                    longest = Some(longest.map_or(wait, |l| l.max(wait)));
                }
            }
        }
        longest
    }

    pub fn failed(&self, email: &str, ip: Option<IpAddr>) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            let now = Instant::now();
            map.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < WINDOW));
        }
        for (key, _) in Self::keys(email, ip) {
            map.entry(key).or_default().push(Instant::now());
        }
    }

    /// A successful sign-in clears the email's failures (not the address's).
    pub fn succeeded(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("email:{}", email.trim().to_lowercase()));
    }
}

// ---------------------------------------------------------------------------------------------
// Cookies

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// A one-time message for the next page.
pub fn flash_cookie(message: &str) -> String {
    let short: String = message.chars().take(300).collect();
    let encoded: String = form_urlencoded::byte_serialize(short.as_bytes()).collect();
    set_cookie(FLASH_COOKIE, &encoded, Some(60), false)
}

fn read_flash(headers: &HeaderMap) -> Option<String> {
    let raw = cookie(headers, FLASH_COOKIE)?;
    let text: String = form_urlencoded::parse(format!("m={raw}").as_bytes()).next().map(|(_, v)| v.into_owned())?;
    Some(text).filter(|t| !t.trim().is_empty())
}

fn append_cookie(res: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    // Comparing digests keeps the time independent of where the strings differ.
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0 && a.len() == b.len()
}

/// Whether a POST comes from this site: an `Origin` (or, without one, `Sec-Fetch-Site`) that
/// names another site is refused.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else { return false };
        let Some((_, rest)) = origin.split_once("://") else { return false };
        return !host.is_empty() && rest.trim_end_matches('/').eq_ignore_ascii_case(host);
    }
    !matches!(headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()), Some("cross-site"))
}

fn client_ip(req_parts: &axum::http::Extensions) -> Option<IpAddr> {
    req_parts.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

// ---------------------------------------------------------------------------------------------
// The session middleware

/// Runs before every signed-in page: finds the session (or sends the browser to sign in),
/// checks CSRF and origin on POSTs, and hands the handler a [`Signed`].
pub async fn require_session(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = cookie(req.headers(), SESSION_COOKIE);
    let session = match token.clone() {
        Some(t) => match state.store.find_session(t, session_limits(&state.config)).await {
            Ok(s) => s,
            Err(e) => return UiError::from(e).into_response(),
        },
        None => None,
    };
    let Some(session) = session else {
        return not_signed_in(&req);
    };
    let token = token.unwrap_or_default();
    if state.store.now() - session.last_seen_at > TOUCH_EVERY {
        let store = state.store.clone();
        let t = token.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_session(t).await {
                tracing::debug!(error = %e, "could not record session use");
            }
        });
    }

    let page = req.method() == Method::GET && !req.uri().path().starts_with("/ui/");
    let flash = if page { read_flash(req.headers()) } else { None };
    let had_flash = flash.is_some();
    let unread = if page {
        match state.store.unread_notification_count(session.user.id, super::UNREAD_CAP).await {
            Ok(n) => n,
            Err(e) => return UiError::from(e).into_response(),
        }
    } else {
        0
    };
    let (parts, body) = req.into_parts();
    let mut req = if parts.method == Method::POST {
        if !same_origin(&parts.headers) {
            return forbidden("This form was sent from another site, so it was refused.");
        }
        let bytes = match axum::body::to_bytes(body, state.config.max_body_bytes).await {
            Ok(b) => b,
            Err(_) => return UiError::BadRequest("The form is too large.".into()).into_response(),
        };
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| FormData::parse(&bytes).get("_csrf").map(str::to_string));
        if !sent.is_some_and(|s| constant_time_eq(&s, &session.csrf_token)) {
            return forbidden("This form has expired or did not come from Rapport. Go back, reload the page and try again.");
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };
    req.extensions_mut().insert(Signed { user: session.user, csrf: session.csrf_token, flash, unread });
    let mut res = next.run(req).await;
    if had_flash {
        append_cookie(&mut res, set_cookie(FLASH_COOKIE, "", Some(0), false));
    }
    res
}

fn forbidden(message: &str) -> Response {
    UiError::Forbidden(message.into()).into_response()
}

fn not_signed_in(req: &Request) -> Response {
    if req.uri().path().starts_with("/ui/") {
        return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": "sign in first"}))).into_response();
    }
    if req.method() != Method::GET {
        return forbidden("You are not signed in (any more). Sign in and try again.");
    }
    let here = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if here == "/" {
        return Redirect::to("/login").into_response();
    }
    let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    css: &'static str,
    email: String,
    next: String,
    csrf: String,
    error: Option<String>,
}

fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: String,
    next: String,
    error: Option<String>,
) -> Response {
    // Reuse the form token the browser has, so that two open tabs both work.
    let csrf = match cookie(headers, LOGIN_CSRF_COOKIE).filter(|c| c.len() == 43) {
        Some(c) => c,
        None => match rapport_store::sessions::random_token() {
            Ok(t) => t,
            Err(e) => return UiError::from(e).into_response(),
        },
    };
    let page = LoginPage { css: assets::css_url(), email, next, csrf: csrf.clone(), error };
    let mut res = match render_status(status, &page) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    append_cookie(&mut res, set_cookie(LOGIN_CSRF_COOKIE, &csrf, Some(3600), secure(state, headers)));
    res
}

/// `GET /login`
pub async fn login_page(State(state): State<AppState>, headers: HeaderMap, QueryData(q): QueryData) -> Response {
    let next = local_path(q.get("next").unwrap_or("/"), "/");
    // Already signed in: straight on.
    if let Some(t) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = state.store.find_session(t, session_limits(&state.config)).await
    {
        return Redirect::to(&next).into_response();
    }
    login_form(&state, &headers, StatusCode::OK, String::new(), next, None)
}

/// A stored hash to verify against when the email is unknown, so that both cases take the
/// same time.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash("not a real password, only for timing").unwrap_or_default())
}

/// `POST /login`
pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let ip = client_ip(&parts.extensions);
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return UiError::BadRequest("The form is too large.".into()).into_response();
    };
    let form = FormData::parse(&bytes);
    let email = form.text("email");
    let next = local_path(form.get("next").unwrap_or("/"), "/");
    let again = |status, message: String| login_form(&state, &headers, status, email.clone(), next.clone(), Some(message));

    let form_token = form.get("_csrf").unwrap_or("");
    let cookie_token = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || cookie_token.is_empty() || !constant_time_eq(form_token, &cookie_token) {
        return again(StatusCode::FORBIDDEN, "The sign-in form expired. Please try again.".into());
    }
    if let Some(wait) = state.login_limiter.wait(&email, ip) {
        let secs = wait.as_secs().max(1);
        return again(StatusCode::TOO_MANY_REQUESTS, format!("Too many sign-in attempts. Try again in {secs} s."));
    }
    let password = form.get("password").unwrap_or("").to_string();
    let found = match EmailAddress::parse(&email) {
        Ok(addr) => match state.store.find_login(addr).await {
            Ok(f) => f,
            Err(e) => return UiError::from(e).into_response(),
        },
        Err(_) => None,
    };
    let stored = found.as_ref().and_then(|(_, h)| h.clone()).unwrap_or_else(|| dummy_hash().to_string());
    // argon2 takes tens of milliseconds of CPU: off the async threads.
    let verified = tokio::task::spawn_blocking(move || password::verify(&password, &stored)).await.unwrap_or(false);
    let user = match found {
        Some((user, Some(_))) if verified && user.active => user,
        _ => {
            state.login_limiter.failed(&email, ip);
            tracing::info!(ip = ?ip, "failed sign-in");
            return again(StatusCode::UNAUTHORIZED, "Wrong email or password.".into());
        }
    };
    state.login_limiter.succeeded(&email);
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let session = match state.store.create_session(user.id, agent).await {
        Ok(s) => s,
        Err(e) => return UiError::from(e).into_response(),
    };
    tracing::info!(user = %user.id, "signed in");
    let max_age = i64::try_from(state.config.session_max_age.as_secs()).unwrap_or(i64::MAX);
    let mut res = Redirect::to(&next).into_response();
    append_cookie(&mut res, set_cookie(SESSION_COOKIE, &session.token, Some(max_age), secure(&state, &headers)));
    append_cookie(&mut res, set_cookie(LOGIN_CSRF_COOKIE, "", Some(0), false));
    res
}

/// `POST /logout` (the CSRF token was checked by [`require_session`]).
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, _signed: Signed) -> Response {
    if let Some(t) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.store.delete_session(t).await
    {
        return UiError::from(e).into_response();
    }
    let mut res = Redirect::to("/login").into_response();
    append_cookie(&mut res, set_cookie(SESSION_COOKIE, "", Some(0), secure(&state, &headers)));
    append_cookie(&mut res, super::auth::flash_cookie("You are signed out."));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_per_email_and_address() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(l.wait("Ana@x.example", Some(ip)).is_none());
            l.failed("ana@x.example", Some(ip));
        }
        let wait = l.wait("ANA@x.example", None).expect("locked");
        assert!(wait <= WINDOW && wait > WINDOW - Duration::from_secs(5));
        // Another email from the same address is still allowed, until the address's limit.
        assert!(l.wait("bo@x.example", Some(ip)).is_none());
        for _ in MAX_FAILURES_PER_EMAIL..MAX_FAILURES_PER_ADDRESS {
            l.failed("bo@x.example", Some(ip));
        }
        assert!(l.wait("cy@x.example", Some(ip)).is_some());
        assert!(l.wait("cy@x.example", None).is_none());
        l.succeeded("ana@x.example");
        assert!(l.wait("ana@x.example", None).is_none());
    }

    #[test]
    fn origins_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("crm.example:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://crm.example:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; rapport_session=abc; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert!(set_cookie(SESSION_COOKIE, "x", Some(5), true).ends_with("HttpOnly; SameSite=Lax; Max-Age=5; Secure"));
        assert!(constant_time_eq("abc", "abc") && !constant_time_eq("abc", "abd") && !constant_time_eq("abc", "abcd"));
        h.insert(header::COOKIE, HeaderValue::from_str(&flash_cookie("Saved <b>“Ana”</b>; ok")).unwrap());
        let value = flash_cookie("Saved <b>“Ana”</b>; ok");
        let raw = value.split(';').next().unwrap().to_string();
        let mut h2 = HeaderMap::new();
        h2.insert(header::COOKIE, HeaderValue::from_str(&raw).unwrap());
        assert_eq!(read_flash(&h2).as_deref(), Some("Saved <b>“Ana”</b>; ok"));
    }
}
