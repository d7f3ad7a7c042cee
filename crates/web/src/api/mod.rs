//! The REST API under `/api/v1`. Each resource has its own module; handlers parse, call
//! one store method, and render.

pub mod automation;
pub mod campaigns;
pub mod companies;
pub mod consent;
pub mod contacts;
pub mod custom_fields;
pub mod deliverability;
pub mod events;
pub mod links;
pub mod messages;
pub mod notes;
pub mod relations;
pub mod segments;
pub mod tags;
pub mod tasks;
pub mod templates;
pub mod users;
pub mod workflows;

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

/// Declares a resource's routes and its create, read, update and delete handlers, which are
/// alike for every resource but for types, the role check and the store calls. The list
/// handler, whose filters differ, stays in each module.
macro_rules! item_handlers {
    (
        paths: ($collection:tt, $item:tt, $api_collection:tt, $api_item:tt),
        tag: $tag:tt,
        entity: $entity:tt,
        types: ($Item:ident, $Draft:ident, $Patch:ident),
        allowed: $allowed:ident,
        store: ($create:ident, $get:ident, $update:ident, $delete:ident),
        create_args: |$caller:ident| ($($arg:expr),*),
        $(update_args: |$ucaller:ident| ($($uarg:expr),*),)?
        docs: ($create_doc:tt, $get_doc:tt, $update_doc:tt, $delete_doc:tt $(,)?) $(,)?
    ) => {
        pub fn routes() -> axum::Router<crate::AppState> {
            axum::Router::new()
                .route($collection, axum::routing::get(list).post(create))
                .route($item, axum::routing::get(read).patch(update).delete(remove))
        }

        #[doc = $create_doc]
        #[utoipa::path(post, path = $api_collection, tag = $tag, request_body = $Draft,
            params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first answer")),
            responses((status = 201, body = $Item), (status = 400, body = Problem), (status = 403, body = Problem),
                (status = 409, body = Problem), (status = 422, body = Problem)),
            security(("bearer" = [])))]
        pub async fn create(
            axum::extract::State(s): axum::extract::State<crate::AppState>,
            $caller: crate::auth::Caller,
            body: crate::extract::CreateBody<$Draft>,
        ) -> crate::error::ApiResult<axum::response::Response> {
            $caller.$allowed()?;
            let idem = body.idempotency.map(|i| i.for_key($caller.key_id()));
            Ok(crate::api::created(s.store.$create(body.value, $($arg,)* idem).await?))
        }

        #[doc = $get_doc]
        #[utoipa::path(get, path = $api_item, tag = $tag, params(("id" = Uuid, Path)),
            responses((status = 200, body = $Item), (status = 404, body = Problem)), security(("bearer" = [])))]
        pub async fn read(
            axum::extract::State(s): axum::extract::State<crate::AppState>,
            _caller: crate::auth::Caller,
            axum::extract::Path(id): axum::extract::Path<String>,
        ) -> crate::error::ApiResult<axum::Json<$Item>> {
            Ok(axum::Json(s.store.$get(crate::extract::parse_id(&id, $entity)?).await?))
        }

        #[doc = $update_doc]
        #[utoipa::path(patch, path = $api_item, tag = $tag, params(("id" = Uuid, Path)), request_body = $Patch,
            responses((status = 200, body = $Item), (status = 403, body = Problem), (status = 404, body = Problem),
                (status = 409, body = Problem), (status = 422, body = Problem)),
            security(("bearer" = [])))]
        pub async fn update(
            axum::extract::State(s): axum::extract::State<crate::AppState>,
            caller: crate::auth::Caller,
            axum::extract::Path(id): axum::extract::Path<String>,
            crate::extract::JsonBody(patch): crate::extract::JsonBody<$Patch>,
        ) -> crate::error::ApiResult<axum::Json<$Item>> {
            caller.$allowed()?;
            $(let $ucaller = &caller;)?
            Ok(axum::Json(s.store.$update(crate::extract::parse_id(&id, $entity)?, patch $($(, $uarg)*)?).await?))
        }

        #[doc = $delete_doc]
        #[utoipa::path(delete, path = $api_item, tag = $tag, params(("id" = Uuid, Path)),
            responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
        pub async fn remove(
            axum::extract::State(s): axum::extract::State<crate::AppState>,
            caller: crate::auth::Caller,
            axum::extract::Path(id): axum::extract::Path<String>,
        ) -> crate::error::ApiResult<axum::http::StatusCode> {
            caller.$allowed()?;
            s.store.$delete(crate::extract::parse_id(&id, $entity)?).await?;
            Ok(axum::http::StatusCode::NO_CONTENT)
        }
    };
}
pub(crate) use item_handlers;
