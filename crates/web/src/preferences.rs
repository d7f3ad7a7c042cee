//! The preference centre a marketing email links to (`/p/{token}`): each subscription topic as a
//! checkbox, "unsubscribe from all marketing", "not interested" and "don't track my opens and
//! clicks"; and the double opt-in confirmation link (`/p/confirm/{token}`). The signed token is
//! the proof of who is asking: no login, no cookies. A GET never changes anything (mail
//! scanners open links); the form's POST does.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use rapport_channels::token::{self, Purpose};
use rapport_store::StoreError;
use rapport_store::consent::{ContactConsent, PreferenceChoices};
use uuid::Uuid;

use crate::AppState;
use crate::docs::escape;
use crate::email::page;

/// Link tokens share the unsubscribe links' secret; the purpose byte keeps them apart.
const SECRET: &str = "unsubscribe";

/// The preference centre link of a message to a contact.
pub fn preferences_url(public_url: &str, secret: &[u8], contact: Uuid, message: Uuid) -> String {
    let t = token::sign(secret, Purpose::Preferences, *contact.as_bytes(), *message.as_bytes());
    format!("{}/p/{t}", public_url.trim_end_matches('/'))
}

/// The link that confirms a double opt-in grant (`consent` is its ledger id).
pub fn confirm_url(public_url: &str, secret: &[u8], contact: Uuid, consent: Uuid) -> String {
    let t = token::sign(secret, Purpose::ConfirmConsent, *contact.as_bytes(), *consent.as_bytes());
    format!("{}/p/confirm/{t}", public_url.trim_end_matches('/'))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{token}", get(preferences_page).post(save_preferences))
        .route("/p/confirm/{token}", get(confirm_page).post(confirm_now))
}

async fn verified(state: &AppState, purpose: Purpose, raw: &str) -> Option<(Uuid, Uuid)> {
    let secret = state.store.app_secret(SECRET).await.ok()?;
    let (c, m) = token::verify(&secret, purpose, raw)?;
    Some((Uuid::from_bytes(c), Uuid::from_bytes(m)))
}

fn bad_link() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not valid",
        "<p>This link is not valid: it may have been cut off or changed. Use the link from the email itself, or reply \
         to the email and tell us what you would like.</p>",
    )
}

fn try_again() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<p>We could not do that just now. Please try again in a minute.</p>",
    )
}

/// Who the page is about, as shown: their email address, or their name.
async fn who(state: &AppState, contact: Uuid) -> Result<String, StoreError> {
    let c = state.store.get_contact(contact).await?;
    Ok(c.primary_email().map(|e| e.as_str().to_string()).unwrap_or(c.display_name))
}

fn checked(on: bool) -> &'static str {
    if on { " checked" } else { "" }
}

fn form(who: &str, consent: &ContactConsent) -> String {
    let mut topics = String::new();
    for t in &consent.topics {
        let description = t.description.as_deref().map(|d| format!("<br><small>{}</small>", escape(d))).unwrap_or_default();
        topics.push_str(&format!(
            "<li><label><input type=\"checkbox\" name=\"topic\" value=\"{key}\"{c}> {name}</label>{description}</li>",
            key = escape(&t.key),
            c = checked(t.subscribed),
            name = escape(&t.name),
        ));
    }
    let topics = if topics.is_empty() {
        String::new()
    } else {
        format!("<fieldset><legend>What we send</legend><ul class=\"plain\">{topics}</ul></fieldset>")
    };
    format!(
        "<p>Choose what we send to <strong>{who}</strong>. Messages about your own orders and appointments still reach you.</p>\
         <form method=\"post\">{topics}\
         <p><label><input type=\"checkbox\" name=\"unsubscribe_all\" value=\"1\"{all}> Unsubscribe from all marketing email</label></p>\
         <p><label><input type=\"checkbox\" name=\"not_interested\" value=\"1\"{ni}> I'm not interested: please stop contacting me with offers</label></p>\
         <p><label><input type=\"checkbox\" name=\"do_not_track\" value=\"1\"{dnt}> Don't track my opens and clicks</label></p>\
         <button type=\"submit\" class=\"primary\">Save my choices</button></form>",
        who = escape(who),
        all = checked(!consent.all_marketing),
        ni = checked(consent.privacy.not_interested),
        dnt = checked(consent.privacy.do_not_track),
    )
}

async fn preferences_page(State(s): State<AppState>, Path(raw): Path<String>) -> Response {
    let Some((contact, _)) = verified(&s, Purpose::Preferences, &raw).await else { return bad_link() };
    let who = match who(&s, contact).await {
        Ok(w) => w,
        Err(StoreError::NotFound { .. }) => return bad_link(),
        Err(e) => {
            tracing::warn!(error = %e, "could not show a preference centre");
            return try_again();
        }
    };
    match s.store.contact_consent(contact).await {
        Ok(consent) => page(StatusCode::OK, "Your email preferences", &form(&who, &consent)),
        Err(StoreError::NotFound { .. }) => bad_link(),
        Err(e) => {
            tracing::warn!(error = %e, "could not show a preference centre");
            try_again()
        }
    }
}

/// Reads the form: `topic` repeats once per ticked topic; the flags are present when ticked.
fn choices(body: &[u8]) -> PreferenceChoices {
    let mut c = PreferenceChoices { topics: BTreeSet::new(), ..Default::default() };
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "topic" => {
                c.topics.insert(v.trim().to_string());
            }
            "unsubscribe_all" => c.unsubscribe_all = true,
            "not_interested" => c.not_interested = true,
            "do_not_track" => c.do_not_track = true,
            _ => {}
        }
    }
    c
}

async fn save_preferences(State(s): State<AppState>, Path(raw): Path<String>, body: Bytes) -> Response {
    let Some((contact, _)) = verified(&s, Purpose::Preferences, &raw).await else { return bad_link() };
    let choices = choices(&body);
    match s.store.apply_preferences(contact, choices).await {
        Ok(consent) => {
            s.automation_wake.notify_one();
            let summary = if consent.privacy.not_interested {
                "<p>Understood: we will send you no more marketing, and we have let your contact here know.</p>".to_string()
            } else if !consent.all_marketing {
                "<p>You are unsubscribed from all marketing email.</p>".to_string()
            } else {
                let on: Vec<String> = consent.topics.iter().filter(|t| t.subscribed).map(|t| escape(&t.name)).collect();
                if on.is_empty() {
                    "<p>You will get none of our newsletters or offers.</p>".to_string()
                } else {
                    format!("<p>You will get: {}.</p>", on.join(", "))
                }
            };
            let tracking = if consent.privacy.do_not_track {
                "<p>We will not record when you open our emails or click their links.</p>"
            } else {
                ""
            };
            page(
                StatusCode::OK,
                "Your choices are saved",
                &format!("{summary}{tracking}<p><a href=\"{}\">Change them again</a></p>", escape(&format!("/p/{raw}"))),
            )
        }
        Err(StoreError::NotFound { .. }) => bad_link(),
        Err(e) => {
            tracing::warn!(error = %e, "could not save preference centre choices");
            try_again()
        }
    }
}

/// What a consent is about, in words.
async fn what(s: &AppState, purpose: &str) -> String {
    if purpose == rapport_core::consent::ALL_MARKETING {
        return "our marketing email".into();
    }
    match s.store.get_topic(purpose.to_string()).await {
        Ok(t) => format!("“{}”", t.name),
        Err(_) => format!("“{purpose}”"),
    }
}

/// Shows a button: link scanners follow links, so only the POST confirms.
async fn confirm_page(State(s): State<AppState>, Path(raw): Path<String>) -> Response {
    let Some((contact, id)) = verified(&s, Purpose::ConfirmConsent, &raw).await else { return bad_link() };
    let rec = match s.store.consent_record(contact, id).await {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return bad_link(),
        Err(e) => {
            tracing::warn!(error = %e, "could not show a confirmation page");
            return try_again();
        }
    };
    let what = escape(&what(&s, &rec.purpose).await);
    if rec.confirmed_at.is_some() {
        return page(
            StatusCode::OK,
            "Already confirmed",
            &format!("<p>Your subscription to {what} is confirmed. Thank you.</p>"),
        );
    }
    page(
        StatusCode::OK,
        "Confirm your subscription",
        &format!(
            "<p>Please confirm that you want to receive {what}.</p>\
             <form method=\"post\"><button type=\"submit\" class=\"primary\">Yes, subscribe me</button></form>"
        ),
    )
}

async fn confirm_now(State(s): State<AppState>, Path(raw): Path<String>) -> Response {
    let Some((contact, id)) = verified(&s, Purpose::ConfirmConsent, &raw).await else { return bad_link() };
    match s.store.confirm_consent(contact, id).await {
        Ok(rec) => {
            s.automation_wake.notify_one();
            let what = escape(&what(&s, &rec.purpose).await);
            page(StatusCode::OK, "Subscription confirmed", &format!("<p>Thank you: you will receive {what}.</p>"))
        }
        Err(StoreError::NotFound { .. }) => bad_link(),
        Err(StoreError::Conflict { field, .. }) if field == "recorded_at" => page(
            StatusCode::CONFLICT,
            "This link has expired",
            &format!(
                "<p>Confirmation links work for {} days, and this one is older. Sign up again and confirm with the new \
                 link.</p>",
                rapport_store::consent::CONFIRM_WITHIN_DAYS
            ),
        ),
        Err(StoreError::Conflict { .. }) => page(
            StatusCode::CONFLICT,
            "No longer open",
            "<p>You unsubscribed after asking for this, so this link no longer subscribes you. Sign up again if you changed \
             your mind.</p>",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not confirm a subscription");
            try_again()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_repeated_topics_and_flags() {
        let c = choices(b"topic=news&topic=offers&do_not_track=1&other=x");
        assert_eq!(c.topics.into_iter().collect::<Vec<_>>(), ["news", "offers"]);
        assert!(c.do_not_track && !c.unsubscribe_all && !c.not_interested);
    }

    #[test]
    fn links_carry_their_purpose() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let (c, m) = (Uuid::from_bytes([1; 16]), Uuid::from_bytes([2; 16]));
        let url = preferences_url("https://crm.example/", secret, c, m);
        let t = url.strip_prefix("https://crm.example/p/").unwrap();
        assert_eq!(token::verify(secret, Purpose::Preferences, t), Some(([1; 16], [2; 16])));
        assert_eq!(token::verify(secret, Purpose::ConfirmConsent, t), None);
        let url = confirm_url("", secret, c, m);
        assert!(url.starts_with("/p/confirm/"));
    }
}
