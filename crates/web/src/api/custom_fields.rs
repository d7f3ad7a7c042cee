use axum::Json;
use axum::extract::State;
use rapport_core::custom_field::RecordType;
use rapport_core::custom_field::{CustomFieldDefinition, CustomFieldDraft, CustomFieldPatch};
use serde::Deserialize;

use super::{item_handlers, list_of, page_request};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Params;

list_of!(CustomFieldList, CustomFieldDefinition);

/// Query of `GET /custom-fields`. Every given filter must hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `key` (default) or `created_at`; `-` prefix for descending.
    sort: Option<String>,
    /// `contact` or `company`.
    record_type: Option<RecordType>,
}

/// List custom field definitions
#[utoipa::path(get, path = "/api/v1/custom-fields", tag = "custom fields", params(ListParams),
    responses((status = 200, body = CustomFieldList), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<CustomFieldList>> {
    Ok(Json(
        s.store.list_custom_fields(p.record_type, page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?.into(),
    ))
}

item_handlers! {
    paths: ("/custom-fields", "/custom-fields/{id}", "/api/v1/custom-fields", "/api/v1/custom-fields/{id}"),
    tag: "custom fields",
    entity: "custom field",
    types: (CustomFieldDefinition, CustomFieldDraft, CustomFieldPatch),
    allowed: can_manage_catalogue,
    store: (create_custom_field, get_custom_field, update_custom_field, delete_custom_field),
    create_args: |c| (),
    docs: ("Create a custom field", "Get a custom field", "Update a custom field", "Delete a custom field

Its values are removed from every record of its type."),
}
