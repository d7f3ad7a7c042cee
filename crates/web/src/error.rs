//! One error type for the HTTP edge, rendered once as RFC 9457 problem+json. Internal
//! details are logged with the request id and never sent to clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rapport_core::{FieldError, ValidationErrors};
use rapport_store::StoreError;
use serde::Serialize;

pub type ApiResult<T, E = ApiError> = std::result::Result<T, E>;

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:rapport:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For invalid input: every field that is wrong and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { detail: String, errors: Vec<FieldError> },
    #[error("invalid input")]
    Invalid(ValidationErrors),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{message}")]
    Conflict { field: String, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let e = FieldError::new(field, message);
        Self::BadRequest { detail: format!("{}: {}", e.field, e.message), errors: vec![e] }
    }
}

impl ApiError {
    /// For errors of list queries: a bad `limit`, `sort`, `cursor` or filter value is a bad
    /// request (400), not invalid data (422).
    pub fn query(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(v) => ApiError::BadRequest { detail: format!("invalid query parameters: {v}"), errors: v.errors },
            other => other.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => ApiError::NotFound(format!("no {entity} has id {id}")),
            StoreError::Invalid(v) => ApiError::Invalid(v),
            StoreError::Conflict { field, message } => ApiError::Conflict { field, message },
            StoreError::IdempotencyMismatch => ApiError::Invalid(ValidationErrors::single(
                "Idempotency-Key",
                "this key was already used for a different request; use a new key for a new request",
            )),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Database(m) => ApiError::Internal(m),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Invalid(e)
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid input"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    pub fn to_problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let (detail, errors) = match self {
            ApiError::BadRequest { detail, errors } => (detail.clone(), errors.clone()),
            ApiError::Invalid(v) => {
                let n = v.errors.len();
                (format!("{n} field{} failed validation: {v}", if n == 1 { "" } else { "s" }), v.errors.clone())
            }
            ApiError::Conflict { field, message } if !field.is_empty() => {
                (format!("{field}: {message}"), vec![FieldError::new(field.clone(), message.clone())])
            }
            ApiError::Conflict { message, .. } => (message.clone(), Vec::new()),
            ApiError::Unavailable(_) => ("the database is not available right now; retry shortly".to_string(), Vec::new()),
            ApiError::Internal(_) => {
                ("something went wrong on our side; it was logged with this request's id".to_string(), Vec::new())
            }
            other => (other.to_string(), Vec::new()),
        };
        Problem { kind: format!("urn:rapport:problem:{slug}"), title: title.to_string(), status: status.as_u16(), detail, errors }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(m) => tracing::error!(error = %m, "internal error"),
            ApiError::Unavailable(m) => tracing::warn!(error = %m, "database unavailable"),
            _ => {}
        }
        let problem = self.to_problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"rapport\""));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_inside() {
        let p = ApiError::Internal("SELECT secret FROM keys failed".into()).to_problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("secret"));
    }

    #[test]
    fn validation_names_fields() {
        let p = ApiError::from(StoreError::invalid("emails[0].address", "is not valid")).to_problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "emails[0].address");
        assert_eq!(p.kind, "urn:rapport:problem:validation");
    }
}
