//! Mail that comes back: bounce and complaint intake (`POST /email/bounces`, JSON from a
//! provider's webhook or a raw delivery status notification) and inbound mail
//! (`POST /email/inbound`, a raw message from an MTA pipe or a provider): answers, automatic
//! answers, and reports posted there too.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rapport_channels::email::inbound::{self, BounceKind, Inbound};
use rapport_core::email::EmailAddress;
use rapport_core::{FieldError, ValidationErrors};
use rapport_store::{BounceOutcome, BounceReport, BounceType, InboundReply, IntakeStatus, ReplyOutcome};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};

/// Largest report or message accepted: bounces return the original, attachments and all.
const MAX_MAIL_BYTES: usize = 10 * 1024 * 1024;
/// Most bounces in one JSON batch.
const MAX_BATCH: usize = 1000;
const MAX_DETAIL_CHARS: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/email/bounces", post(bounces).layer(DefaultBodyLimit::max(MAX_MAIL_BYTES)))
        .route("/email/inbound", post(inbound_mail).layer(DefaultBodyLimit::max(MAX_MAIL_BYTES)))
}

/// What was recorded for each bounced or complaining recipient, in request order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BounceResults {
    pub results: Vec<BounceOutcome>,
}

/// One bounce in JSON, for the API reference.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BounceItem {
    /// The address that bounced or complained.
    recipient: String,
    /// `hard`, `soft` or `complaint`.
    #[schema(rename = "type")]
    kind: String,
    /// Our `Message-ID` (`<id@domain>`) or the outbox message id, when known.
    message_id: Option<String>,
    /// What the receiving server said.
    detail: Option<String>,
}

/// Our outbox id in a `Message-ID` (`<{id}@{domain}>`), an `X-Rapport-Message` value or a
/// bare id.
fn outbox_id(raw: &str) -> Option<Uuid> {
    let v = raw.trim().trim_start_matches('<').trim_end_matches('>');
    let local = v.split('@').next().unwrap_or(v);
    Uuid::parse_str(local.trim()).ok()
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_mail_type(media: &str) -> bool {
    matches!(media, "message/rfc822" | "text/plain" | "application/octet-stream" | "" | "message/global")
        || media.starts_with("multipart/")
}

/// Reads a raw message; a multipart body posted without its headers (the boundary in the
/// request's `Content-Type`) is read with the request's `Content-Type` as its header.
fn parse_mail(headers: &HeaderMap, body: &[u8]) -> Result<Inbound, ApiError> {
    let parsed = inbound::parse(body);
    let media = media_type(headers);
    if media.starts_with("multipart/") && !matches!(parsed, Ok(Inbound::Report(_))) {
        let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let mut whole = format!("MIME-Version: 1.0\r\nContent-Type: {ctype}\r\n\r\n").into_bytes();
        whole.extend_from_slice(body);
        if let Ok(r @ Inbound::Report(_)) = inbound::parse(&whole) {
            return Ok(r);
        }
    }
    parsed.map_err(|e| ApiError::bad_field("body", e.to_string()))
}

fn kind_of(k: BounceKind) -> BounceType {
    match k {
        BounceKind::Hard => BounceType::Hard,
        BounceKind::Soft => BounceType::Soft,
        BounceKind::Complaint => BounceType::Complaint,
    }
}

fn reports_of(bounces: Vec<inbound::Bounce>) -> Vec<BounceReport> {
    bounces
        .into_iter()
        .map(|b| BounceReport {
            recipient: b.recipient,
            kind: kind_of(b.kind),
            message_refs: b.message_refs.iter().filter_map(|r| outbox_id(r)).collect(),
            detail: Some(b.detail.chars().take(MAX_DETAIL_CHARS).collect()),
            status: b.status,
        })
        .collect()
}

/// One JSON bounce, its problems reported against `at` (`recipient`, `[2].recipient`).
fn json_bounce(v: &Value, at: &str, errs: &mut Vec<FieldError>) -> Option<BounceReport> {
    let path = |f: &str| if at.is_empty() { f.to_string() } else { format!("{at}.{f}") };
    let Value::Object(obj) = v else {
        errs.push(FieldError::new(if at.is_empty() { "body" } else { at }, "must be an object with recipient and type"));
        return None;
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "recipient" | "type" | "message_id" | "detail") {
            errs.push(FieldError::new(path(k), "unknown field; a bounce has recipient, type, message_id and detail"));
        }
    }
    let recipient = match obj.get("recipient") {
        Some(Value::String(s)) => match EmailAddress::parse(s) {
            Ok(a) => Some(a.as_str().to_string()),
            Err(m) => {
                errs.push(FieldError::new(path("recipient"), m));
                None
            }
        },
        None | Some(Value::Null) => {
            errs.push(FieldError::new(path("recipient"), "is required: the address that bounced"));
            None
        }
        Some(_) => {
            errs.push(FieldError::new(path("recipient"), "must be a string"));
            None
        }
    };
    let kind = match obj.get("type").and_then(Value::as_str).and_then(BounceKind::parse) {
        Some(k) => Some(kind_of(k)),
        None => {
            errs.push(FieldError::new(path("type"), "is required: hard, soft or complaint"));
            None
        }
    };
    let message_refs = match obj.get("message_id") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => match outbox_id(s) {
            Some(id) => vec![id],
            None => {
                errs.push(FieldError::new(path("message_id"), "must be our Message-ID (<id@domain>) or a message id"));
                vec![]
            }
        },
        Some(_) => {
            errs.push(FieldError::new(path("message_id"), "must be a string"));
            vec![]
        }
    };
    let detail = match obj.get("detail") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_DETAIL_CHARS => Some(s.trim().to_string()),
        Some(Value::String(_)) => {
            errs.push(FieldError::new(path("detail"), format!("must be at most {MAX_DETAIL_CHARS} characters")));
            None
        }
        Some(_) => {
            errs.push(FieldError::new(path("detail"), "must be a string"));
            None
        }
    };
    Some(BounceReport { recipient: recipient?, kind: kind?, message_refs, detail, status: None })
}

fn json_bounces(body: &[u8]) -> Result<Vec<BounceReport>, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_field("body", format!("is not valid JSON: {e}")))?;
    let mut errs = Vec::new();
    let items: Vec<Option<BounceReport>> = match &v {
        Value::Array(list) if list.is_empty() => return Err(ApiError::bad_field("body", "holds no bounces")),
        Value::Array(list) if list.len() > MAX_BATCH => {
            return Err(ApiError::bad_field("body", format!("holds {} bounces; send at most {MAX_BATCH}", list.len())));
        }
        Value::Array(list) => list.iter().enumerate().map(|(i, b)| json_bounce(b, &format!("[{i}]"), &mut errs)).collect(),
        other => vec![json_bounce(other, "", &mut errs)],
    };
    if !errs.is_empty() {
        let v = ValidationErrors { errors: errs };
        return Err(ApiError::BadRequest { detail: format!("not a bounce report: {v}"), errors: v.errors });
    }
    Ok(items.into_iter().flatten().collect())
}

/// Record bounces and complaints
///
/// Takes a provider's webhook JSON — one `{"recipient", "type": "hard"|"soft"|"complaint",
/// "message_id"?, "detail"?}` or an array of them — or a raw delivery status notification
/// (RFC 3464) or abuse report (RFC 5965) as `message/rfc822`, `multipart/report` or
/// `text/plain`. A hard bounce or a complaint suppresses the address: nothing more is sent to
/// it. Every item goes on the person's timeline as `email.bounced`; the answer says per
/// recipient what was recorded.
#[utoipa::path(post, path = "/api/v1/email/bounces", tag = "email",
    request_body(content(
        (Vec<BounceItem> = "application/json"),
        (String = "message/rfc822"),
        (String = "multipart/report"),
    )),
    responses((status = 200, body = BounceResults), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 415, body = Problem)),
    security(("bearer" = [])))]
pub async fn bounces(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<BounceResults>> {
    caller.can_write()?;
    let media = media_type(&headers);
    let reports = if media == "application/json" || media.ends_with("+json") {
        json_bounces(&body)?
    } else if is_mail_type(&media) {
        match parse_mail(&headers, &body)? {
            Inbound::Report(b) => reports_of(b),
            Inbound::Reply(_) => {
                return Err(ApiError::bad_field(
                    "body",
                    "is not a delivery status notification (multipart/report with message/delivery-status) or an abuse report",
                ));
            }
        }
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send application/json, or the raw report as message/rfc822, multipart/report or text/plain (got {media})"
        )));
    };
    let results = if reports.is_empty() { vec![] } else { s.store.record_bounces(reports).await? };
    if results.iter().any(|r| r.status == IntakeStatus::Recorded) {
        s.automation_wake.notify_one();
    }
    Ok(Json(BounceResults { results }))
}

/// What inbound mail turned out to be and what was recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboundResult {
    /// `reply`, `auto_reply` or `report`.
    pub kind: &'static str,
    /// For an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyOutcome>,
    /// For a delivery report or complaint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<BounceOutcome>>,
    pub status: IntakeStatus,
    pub detail: String,
}

/// Receive inbound mail
///
/// Takes one raw RFC 5322 message, as an MTA pipe or a provider's inbound webhook posts it.
/// A person's answer (its `In-Reply-To`/`References` name one of our messages, or its sender
/// is a contact) becomes `email.replied` on their timeline, which stops pending outreach of
/// workflows. Automatic answers (RFC 3834 `Auto-Submitted`, `X-Autoreply`, `Precedence: bulk`,
/// out-of-office subjects…) become `email.auto_replied` and never a reply nor an unsubscribe.
/// A delivery report posted here is handled as by `POST /email/bounces`. Mail from an address
/// no contact has is answered 202 and ignored.
#[utoipa::path(post, path = "/api/v1/email/inbound", tag = "email",
    request_body(content((String = "message/rfc822"), (String = "text/plain"))),
    responses((status = 200, body = InboundResult), (status = 202, body = InboundResult), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 415, body = Problem)),
    security(("bearer" = [])))]
pub async fn inbound_mail(State(s): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    caller.can_write()?;
    let media = media_type(&headers);
    if !is_mail_type(&media) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the raw message as message/rfc822 or text/plain (got {media})"
        )));
    }
    let result = match parse_mail(&headers, &body)? {
        Inbound::Report(b) => {
            let reports = reports_of(b);
            let results = if reports.is_empty() { vec![] } else { s.store.record_bounces(reports).await? };
            let status = if results.iter().any(|r| r.status == IntakeStatus::Recorded) {
                IntakeStatus::Recorded
            } else if results.iter().any(|r| r.status == IntakeStatus::Duplicate) {
                IntakeStatus::Duplicate
            } else {
                IntakeStatus::Ignored
            };
            let detail = if results.is_empty() {
                "a delivery report that names no failed recipient: nothing to record".to_string()
            } else {
                format!("a delivery report about {} recipient(s), handled as bounces", results.len())
            };
            InboundResult { kind: "report", reply: None, results: Some(results), status, detail }
        }
        Inbound::Reply(r) => {
            let reply = InboundReply {
                from: r.from,
                message_refs: r.in_reply_to.iter().filter_map(|id| outbox_id(id)).collect(),
                subject: r.subject,
                snippet: r.snippet,
                reply_message_id: r.message_id,
                auto: r.auto,
            };
            let outcome = s.store.record_reply(reply).await?;
            InboundResult {
                kind: outcome.kind,
                status: outcome.status,
                detail: outcome.detail.clone(),
                reply: Some(outcome),
                results: None,
            }
        }
    };
    if result.status == IntakeStatus::Recorded {
        s.automation_wake.notify_one();
    }
    let code = if result.status == IntakeStatus::Ignored { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((code, Json(result)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_ids_are_read_from_message_ids() {
        let id = Uuid::from_bytes([7; 16]);
        assert_eq!(outbox_id(&format!("<{id}@shop.example>")), Some(id));
        assert_eq!(outbox_id(&format!("{id}@shop.example")), Some(id));
        assert_eq!(outbox_id(&id.to_string()), Some(id));
        assert_eq!(outbox_id("CAF=abc@mail.example"), None);
    }

    #[test]
    fn json_bounces_name_the_field_at_fault() {
        let err = |body: &str| match json_bounces(body.as_bytes()) {
            Err(ApiError::BadRequest { errors, .. }) => errors.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(err(r#"{"recipient":"a@b.example"}"#), ["type"]);
        assert_eq!(err(r#"{"recipient":"nope","type":"hard"}"#), ["recipient"]);
        assert_eq!(err(r#"[{"recipient":"a@b.example","type":"hard"},{"recipient":"a@b.example","type":"x"}]"#), ["[1].type"]);
        assert_eq!(err(r#"{"recipient":"a@b.example","type":"hard","message_id":"<x@y>"}"#), ["message_id"]);
        assert_eq!(err(r#"{"recipient":"a@b.example","type":"hard","extra":1}"#), ["extra"]);
        assert_eq!(err("[]"), ["body"]);
        assert_eq!(err("{"), ["body"]);
        let ok = json_bounces(br#"{"recipient":"A@B.example","type":"complaint","detail":"spam"}"#).unwrap();
        assert_eq!(ok[0].recipient, "a@b.example");
        assert_eq!(ok[0].kind, BounceType::Complaint);
    }
}
