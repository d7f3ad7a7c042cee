//! The REST API under `/api/v1`. Each resource has its own module; handlers parse, call
//! one store method, and render.

pub mod companies;
pub mod contacts;
pub mod custom_fields;
pub mod links;
pub mod notes;
pub mod relations;
pub mod tags;
pub mod users;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rapport_store::{Created, PageRequest};
use serde::Serialize;

/// Turns a create's outcome into `201 Created` (or the replayed first answer).
pub fn created<T: Serialize>(c: Created<T>) -> Response {
    match c {
        Created::New(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Created::Replayed { status, body } => {
            let mut res = (StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED), Json(body)).into_response();
            res.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
            res
        }
    }
}

pub fn page_request(limit: Option<u32>, cursor: Option<String>, sort: Option<String>) -> PageRequest {
    PageRequest { limit, cursor, sort }
}

/// Declares `Name { data: Vec<Item>, next_cursor }`, the shape of every list answer.
macro_rules! list_of {
    ($name:ident, $item:ty) => {
        #[derive(serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            pub data: Vec<$item>,
            /// Pass as `cursor` to get the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }

        impl From<rapport_store::Page<$item>> for $name {
            fn from(p: rapport_store::Page<$item>) -> Self {
                Self { data: p.data, next_cursor: p.next_cursor }
            }
        }
    };
}
pub(crate) use list_of;
