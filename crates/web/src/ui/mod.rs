//! The HTML UI: server-rendered pages (askama templates in `crates/web/templates`) with a
//! little JavaScript as progressive enhancement. Every flow works without JavaScript.
//!
//! People sign in with email and password ([`auth`]); a session cookie identifies them and
//! every state-changing form carries the session's CSRF token, checked in one place
//! ([`auth::require_session`]) before any handler runs. Handlers parse, call the store, render.

pub mod assets;
pub mod auth;
mod automation;
mod campaigns;
mod charts;
mod companies;
mod contact_form;
mod contacts;
mod dashboard;
mod form;
mod format;
mod markdown;
mod notifications;
mod search;
mod segments;
mod simulation;
mod tasks;
mod templates;
mod timeline;
mod views;
mod workflows;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rapport_core::user::User;
use rapport_store::StoreError;

use crate::AppState;

pub fn routes(state: AppState) -> Router<AppState> {
    let public =
        Router::new().route("/login", get(auth::login_page).post(auth::login)).route("/assets/{name}", get(assets::serve));
    let private = Router::new()
        .route("/", get(dashboard::page))
        .route("/logout", post(auth::logout))
        .route("/search", get(search::page))
        .route("/ui/search", get(search::json))
        .route("/contacts", get(contacts::list).post(contacts::create))
        .route("/contacts/new", get(contacts::new_form))
        .route("/contacts/bulk", post(contacts::bulk))
        .route("/contacts/{id}", get(contacts::show).post(contacts::update))
        .route("/contacts/{id}/edit", get(contacts::edit_form))
        .route("/contacts/{id}/notes", post(contacts::add_note))
        .route("/contacts/{id}/tasks", post(tasks::add_for_contact))
        .route("/tasks/{id}/done", post(tasks::done))
        .route("/contacts/{id}/tags", post(contacts::add_tag))
        .route("/contacts/{id}/tags/remove", post(contacts::remove_tag))
        .route("/contacts/{id}/timeline", get(contacts::timeline))
        .route("/contacts/{id}/automation/start", post(automation::start))
        .route("/views", post(views::save))
        .route("/views/{id}/delete", post(views::delete))
        .route("/companies", get(companies::list))
        .route("/companies/{id}", get(companies::show))
        .route("/segments", get(segments::list).post(segments::create))
        .route("/segments/new", get(segments::new_form))
        .route("/segments/{id}", get(segments::show))
        .route("/ui/segments/preview", get(segments::preview))
        .route("/workflows", get(workflows::list))
        .route("/workflows/{id}", get(workflows::show))
        .route("/workflows/{id}/enable", post(workflows::enable))
        .route("/workflows/{id}/disable", post(workflows::disable))
        .route("/campaigns", get(campaigns::list).post(campaigns::create))
        .route("/campaigns/new", get(campaigns::new_form))
        .route("/campaigns/{id}", get(campaigns::show).post(campaigns::update))
        .route("/campaigns/{id}/edit", get(campaigns::edit_form))
        .route("/campaigns/{id}/send", post(campaigns::send))
        .route("/campaigns/{id}/pause", post(campaigns::pause))
        .route("/campaigns/{id}/resume", post(campaigns::resume))
        .route("/campaigns/{id}/cancel", post(campaigns::cancel))
        .route("/campaigns/{id}/test", post(campaigns::test_send))
        .route("/templates", get(templates::list).post(templates::create))
        .route("/templates/new", get(templates::new_form))
        .route("/templates/{id}", get(templates::show).post(templates::update))
        .route("/notifications", get(notifications::list))
        .route("/notifications/{id}/read", post(notifications::mark_read))
        .route_layer(middleware::from_fn_with_state(state, auth::require_session));
    public.merge(private).layer(middleware::from_fn(page_headers))
}

/// Headers of every UI answer: a strict content security policy (no inline script or style,
/// nothing from elsewhere), no framing, no sniffing, and the server time spent.
async fn page_headers(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={ms:.1}")) {
        h.insert(HeaderName::from_static("server-timing"), v);
    }
    res
}

/// The signed-in person, put in place by [`auth::require_session`].
#[derive(Debug, Clone)]
pub struct Signed {
    pub user: User,
    pub csrf: String,
    /// A one-time message from the previous request ("Contact saved").
    pub flash: Option<String>,
    /// Unread notifications, up to [`UNREAD_CAP`]; counted for pages only (0 for forms and JSON).
    pub unread: i64,
}

/// The header counts unread notifications no further than this ("99+").
pub const UNREAD_CAP: u32 = 100;

impl<S: Send + Sync> FromRequestParts<S> for Signed {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, UiError> {
        parts.extensions.get::<Signed>().cloned().ok_or(UiError::SignIn)
    }
}

impl Signed {
    /// The frame every page is drawn in.
    pub fn shell(&self, nav: &'static str) -> Shell {
        Shell {
            user_name: self.user.name.clone(),
            user_email: self.user.email.to_string(),
            csrf: self.csrf.clone(),
            nav,
            flash: self.flash.clone(),
            can_write: self.user.role.can_write_records(),
            unread: match self.unread {
                0 => String::new(),
                n if n >= i64::from(UNREAD_CAP) => format!("{}+", UNREAD_CAP - 1),
                n => n.to_string(),
            },
            css: assets::css_url(),
            js: assets::js_url(),
        }
    }

    /// Workflows act on customers: managers and admins switch them on and off.
    pub fn can_manage_automation(&self) -> bool {
        self.user.role.can_manage_catalogue()
    }

    /// Refuses members and viewers.
    pub fn require_manage_automation(&self) -> Result<(), UiError> {
        self.require_manager("switch workflows on or off: they act on customers")
    }

    /// Refuses members and viewers what only managers and admins may do (what reaches or acts
    /// on customers): "Your role (member) cannot {what}. Ask a manager or an admin."
    pub fn require_manager(&self, what: &str) -> Result<(), UiError> {
        if self.can_manage_automation() {
            Ok(())
        } else {
            Err(UiError::Forbidden(format!("Your role ({}) cannot {what}. Ask a manager or an admin.", self.user.role.as_str())))
        }
    }

    /// Refuses viewers.
    pub fn require_write(&self) -> Result<(), UiError> {
        if self.user.role.can_write_records() {
            Ok(())
        } else {
            Err(UiError::Forbidden(
                "Your role (viewer) can look but not change records. Ask an admin for the member role.".into(),
            ))
        }
    }
}

/// What the page frame (templates/base.html) needs.
#[derive(Debug, Clone)]
pub struct Shell {
    pub user_name: String,
    pub user_email: String,
    pub csrf: String,
    /// Which navigation entry is current: `today`, `contacts`, `companies`, `segments`,
    /// `workflows`, `campaigns` (also templates), `notifications`, or "".
    pub nav: &'static str,
    pub flash: Option<String>,
    pub can_write: bool,
    /// Unread notifications as the header shows them (`3`, `99+`), empty when there are none.
    pub unread: String,
    pub css: &'static str,
    pub js: &'static str,
}

/// Renders a template as a page.
pub fn render<T: Template>(t: &T) -> Result<Response, UiError> {
    render_status(StatusCode::OK, t)
}

pub fn render_status<T: Template>(status: StatusCode, t: &T) -> Result<Response, UiError> {
    let body = t.render().map_err(|e| UiError::Internal(format!("template: {e}")))?;
    Ok((status, Html(body)).into_response())
}

/// `303 See Other` to a local path, with a one-time message for the next page.
pub fn redirect_with(to: &str, flash: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::flash_cookie(flash)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// Only local paths are followed after a form (never another site).
pub fn local_path(raw: &str, fallback: &str) -> String {
    let ok = raw.starts_with('/') && !raw.starts_with("//") && !raw.starts_with("/\\") && !raw.chars().any(char::is_control);
    // Never back to the sign-in page itself (a signed-in browser would go round in circles).
    let ok = ok && !raw.starts_with("/login");
    if ok { raw.to_string() } else { fallback.to_string() }
}

/// What goes wrong on a page. Internal details are logged and never shown.
#[derive(Debug)]
pub enum UiError {
    /// Not signed in: go to the sign-in page.
    SignIn,
    NotFound(String),
    Forbidden(String),
    BadRequest(String),
    Unavailable,
    Internal(String),
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, .. } => {
                UiError::NotFound(format!("There is no such {entity}. It may have been deleted."))
            }
            StoreError::Invalid(v) => UiError::BadRequest(v.to_string()),
            StoreError::Conflict { message, .. } => UiError::BadRequest(message),
            StoreError::IdempotencyMismatch => UiError::BadRequest("This request was already made differently.".into()),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                UiError::Unavailable
            }
            StoreError::Database(m) => UiError::Internal(m),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
    css: &'static str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            UiError::SignIn => return Redirect::to("/login").into_response(),
            UiError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m.as_str()),
            UiError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m.as_str()),
            UiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "That did not work", m.as_str()),
            UiError::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "Try again shortly", "The database is not answering right now.")
            }
            UiError::Internal(m) => {
                tracing::error!(error = %m, "internal error on a page");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "It was logged with this request's id; try again.")
            }
        };
        let page = ErrorPage { status: status.as_u16(), title, message, css: assets::css_url() };
        match page.render() {
            Ok(body) => (status, Html(body)).into_response(),
            Err(_) => (status, title.to_string()).into_response(),
        }
    }
}

/// Parses a path id; garbage is "not found".
pub fn parse_id(raw: &str, what: &str) -> Result<uuid::Uuid, UiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| UiError::NotFound(format!("There is no such {what}.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path("/contacts?q=a", "/"), "/contacts?q=a");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/login?next=/login",
            "/a\nb",
            "",
        ] {
            assert_eq!(local_path(bad, "/"), "/", "{bad:?}");
        }
    }
}
