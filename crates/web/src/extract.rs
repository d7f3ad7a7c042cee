//! Extractors that turn bad requests into problem+json naming the field, instead of axum's
//! plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use rapport_core::{FieldError, ValidationErrors};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

/// A JSON request body. Malformed JSON is a 400; a wrong type, a missing or an unknown field
/// is a 422 whose `errors[].field` is the path, e.g. `emails[0].address`.
pub struct JsonBody<T>(pub T);

/// A JSON body of a create, with its optional `Idempotency-Key` and the request fingerprint.
pub struct CreateBody<T> {
    pub value: T,
    pub idempotency: Option<IdempotencyHeader>,
}

/// The client's `Idempotency-Key` and a digest of what it was sent with.
#[derive(Debug, Clone)]
pub struct IdempotencyHeader {
    pub key: String,
    pub fingerprint: String,
}

impl IdempotencyHeader {
    pub fn for_key(self, api_key_id: Uuid) -> rapport_store::IdempotencyKey {
        rapport_store::IdempotencyKey { api_key_id, key: self.key, fingerprint: self.fingerprint }
    }
}

fn is_json(req_ct: Option<&str>) -> bool {
    let Some(ct) = req_ct else { return false };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

async fn body_bytes(req: Request) -> Result<Bytes, ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    if !is_json(ct.as_deref()) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the body as JSON with Content-Type: application/json (got {})",
            ct.as_deref().unwrap_or("no Content-Type")
        )));
    }
    Bytes::from_request(req, &()).await.map_err(|rej| {
        if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("the body is larger than the limit ({rej})"))
        } else {
            ApiError::bad_field("body", format!("could not read the body: {rej}"))
        }
    })
}

/// Parses JSON, reporting the exact path of a problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_field("body", "is empty; send a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => {
            // Reject trailing garbage after the object.
            let mut rest = serde_json::Deserializer::from_slice(bytes).into_iter::<serde::de::IgnoredAny>();
            let _ = rest.next();
            if rest.next().is_some() {
                return Err(ApiError::bad_field("body", "has data after the JSON value"));
            }
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let message = strip_position(&inner.to_string());
            match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
                    Err(ApiError::BadRequest {
                        detail: format!("the body is not valid JSON: {inner}"),
                        errors: vec![FieldError::new("body", format!("is not valid JSON: {inner}"))],
                    })
                }
                serde_json::error::Category::Data => Err(ApiError::Invalid(ValidationErrors::from(data_error(&path, &message)))),
            }
        }
    }
}

/// Names the field for unknown/missing-field errors, whose path is the parent object.
fn data_error(path: &str, message: &str) -> FieldError {
    let parent = if path == "." { "" } else { path };
    // For unknown fields the path already ends with the field; for missing ones it is the parent.
    let join = |name: &str| {
        if parent.is_empty() {
            name.to_string()
        } else if parent == name || parent.ends_with(&format!(".{name}")) {
            parent.to_string()
        } else {
            format!("{parent}.{name}")
        }
    };
    for prefix in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(name) = rest.split('`').next()
        {
            let msg = if prefix.starts_with("unknown") {
                let expected = rest.split_once(", expected ").map(|(_, e)| format!("; expected {e}")).unwrap_or_default();
                format!("is not a known field{expected}")
            } else {
                "is required".to_string()
            };
            return FieldError::new(join(name), msg);
        }
    }
    FieldError::new(if parent.is_empty() { "body".to_string() } else { parent.to_string() }, message.to_string())
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CreateBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let key = match req.headers().get("idempotency-key") {
            None => None,
            Some(v) => {
                let k =
                    v.to_str().map_err(|_| ApiError::bad_field("Idempotency-Key", "must be visible ASCII"))?.trim().to_string();
                if k.is_empty() || k.len() > 255 {
                    return Err(ApiError::bad_field("Idempotency-Key", "must be 1 to 255 characters"));
                }
                Some(k)
            }
        };
        let method_path = format!("{} {}", req.method(), req.uri().path());
        let bytes = body_bytes(req).await?;
        let value = parse_json(&bytes)?;
        let idempotency = key.map(|key| {
            let mut h = Sha256::new();
            h.update(method_path.as_bytes());
            h.update([0]);
            h.update(&bytes);
            let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            IdempotencyHeader { key, fingerprint }
        });
        Ok(CreateBody { value, idempotency })
    }
}

/// Query parameters; an unknown or malformed parameter is a 400 that names it.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(de).map(Params).map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            let fe = data_error(&path, &message);
            let field = if fe.field == "body" { "query".to_string() } else { fe.field };
            let message = if fe.message.starts_with("is not a known field") {
                "is not a known query parameter".to_string()
            } else {
                fe.message
            };
            ApiError::bad_field(field, message)
        })
    }
}

/// Parses a path id; garbage is a 404 (no such record) with a hint.
pub fn parse_id(raw: &str, entity: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no {entity} has id '{raw}' (ids are UUIDs)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Draft {
        name: Option<String>,
        emails: Option<Vec<Email>>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Email {
        address: String,
        primary: Option<bool>,
    }

    fn field_of(body: &str) -> (u16, String) {
        let p = parse_json::<Draft>(body.as_bytes()).unwrap_err().to_problem();
        (p.status, p.errors[0].field.clone())
    }

    #[test]
    fn errors_point_at_the_field() {
        assert_eq!(field_of(r#"{"name": 5}"#), (422, "name".into()));
        assert_eq!(field_of(r#"{"emails":[{"address":"a@b.c","primary":"yes"}]}"#), (422, "emails[0].primary".into()));
        assert_eq!(field_of(r#"{"emails":[{"primary":true}]}"#), (422, "emails[0].address".into()));
        assert_eq!(field_of(r#"{"nmae":"x"}"#), (422, "nmae".into()));
        assert_eq!(field_of(r#"{"name": "x""#), (400, "body".into()));
        assert_eq!(field_of(""), (400, "body".into()));
        assert_eq!(field_of(r#"{"name":"x"} {}"#), (400, "body".into()));
    }
}
