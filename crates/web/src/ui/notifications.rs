//! The signed-in person's notifications (from `notify` steps of workflows): the list, and
//! marking one read. The header shows how many are unread.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use uuid::Uuid;

use super::format::{ago, datetime};
use super::{Shell, Signed, UiError, parse_id, redirect_with, render};
use crate::AppState;

/// Notifications listed, newest first.
const SHOWN: usize = 100;

pub struct NotificationRow {
    pub id: Uuid,
    pub message: String,
    pub contact: Option<(String, String)>,
    pub when: String,
    pub when_exact: String,
    pub unread: bool,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<NotificationRow>,
}

/// `GET /notifications`
pub async fn list(State(s): State<AppState>, signed: Signed) -> Result<Response, UiError> {
    let tz = s.store.options().default_time_zone;
    let now = s.store.now();
    let rows = s
        .store
        .list_notifications(signed.user.id, false, SHOWN)
        .await?
        .into_iter()
        .map(|n| NotificationRow {
            id: n.id,
            message: n.message,
            contact: n.contact_id.map(|id| (n.contact_name.unwrap_or_else(|| "(unnamed)".into()), format!("/contacts/{id}"))),
            when: ago(n.created_at, now),
            when_exact: datetime(n.created_at, tz),
            unread: n.read_at.is_none(),
        })
        .collect();
    render(&ListPage { shell: signed.shell("notifications"), rows })
}

/// `POST /notifications/{id}/read`
pub async fn mark_read(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Result<Response, UiError> {
    let id = parse_id(&id, "notification")?;
    s.store.mark_notification_read(signed.user.id, id).await?;
    Ok(redirect_with("/notifications", "Marked read."))
}
