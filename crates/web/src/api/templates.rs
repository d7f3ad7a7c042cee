//! Message templates and layouts: written once, filled in for each person. The syntax is
//! minijinja; every save is checked, each problem named with its part and line, and a preview
//! renders a template for a real contact.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rapport_channels::template::{self as tpl, ContextShape, LayoutSource, TemplateProblem, TemplateSource, Templates};
use rapport_core::FieldError;
use rapport_core::custom_field::RecordType;
use rapport_core::message::{LayoutDraft, MessageLayout, MessageTemplate, TemplateDraft, TemplateInput};
use rapport_store::PageRequest;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::page_request;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Params, parse_id};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/templates", get(list).post(create))
        .route("/templates/{id}", get(read).patch(update).delete(remove))
        .route("/templates/{id}/preview", post(preview))
        .route("/template-layouts", get(layouts).post(put_layout))
}

#[derive(Serialize)]
pub struct TemplateList {
    pub data: Vec<MessageTemplate>,
    pub next_cursor: Option<String>,
}

fn source(t: &TemplateInput) -> TemplateSource {
    TemplateSource {
        name: t.name.clone(),
        locale: t.locale.clone(),
        subject: t.subject.clone(),
        html: t.html.clone(),
        text: t.text.clone(),
        layout: t.layout.clone(),
    }
}

/// Template problems as a 400 whose errors name the part (`html`, `subject`, …) and line.
fn problems(list: Vec<TemplateProblem>) -> ApiError {
    let errors: Vec<FieldError> = list
        .into_iter()
        .map(|p| match p.line {
            Some(line) => FieldError {
                line: Some(u32::try_from(line).unwrap_or(u32::MAX)),
                ..FieldError::new(p.part, format!("line {line}: {}", p.message))
            },
            None => FieldError::new(p.part, p.message),
        })
        .collect();
    let detail = format!("the template has {} problem(s): {}", errors.len(), errors[0].message);
    ApiError::BadRequest { detail, errors }
}

/// Checks the template's syntax and every name it uses against what a message can read
/// (including the contact custom fields that exist).
async fn check(s: &AppState, input: &TemplateInput) -> ApiResult<()> {
    let (_, layouts) = s.store.all_templates().await?;
    let fields =
        s.store.list_custom_fields(Some(RecordType::Contact), PageRequest { limit: Some(500), cursor: None, sort: None }).await?;
    let shape = ContextShape::standard().with_custom_fields(fields.data.iter().map(|f| f.key.clone()));
    let layouts: Vec<LayoutSource> = layouts.iter().map(crate::email::layout_source).collect();
    tpl::check(&source(input), &layouts, &shape).map_err(problems)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    limit: Option<u32>,
    cursor: Option<String>,
    /// `name` (default), `created_at` or `updated_at`; `-` for descending.
    sort: Option<String>,
}

/// List message templates
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", params(ListParams),
    responses((status = 200, description = "`{data: [template], next_cursor}`", body = Object)), security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, _c: Caller, Params(p): Params<ListParams>) -> ApiResult<Json<TemplateList>> {
    let page = s.store.list_templates(page_request(p.limit, p.cursor, p.sort)).await.map_err(ApiError::query)?;
    Ok(Json(TemplateList { data: page.data, next_cursor: page.next_cursor }))
}

/// Create a message template
///
/// `subject`, `text` and optional `html` are minijinja templates that read `contact`, `profile`,
/// `owner`, `company`, `recommendations`, `unsubscribe_url` and more (docs/email.md). Every
/// problem is reported with its part and line; an unknown name gets a suggestion.
#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", request_body = TemplateDraft,
    responses((status = 201, body = MessageTemplate), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(draft): JsonBody<TemplateDraft>,
) -> ApiResult<(StatusCode, Json<MessageTemplate>)> {
    caller.can_manage_automation()?;
    let input = TemplateInput::parse(draft)?;
    check(&s, &input).await?;
    Ok((StatusCode::CREATED, Json(s.store.create_template(input).await?)))
}

/// Get a message template
#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = Uuid, Path)),
    responses((status = 200, body = MessageTemplate), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(State(s): State<AppState>, _c: Caller, Path(id): Path<String>) -> ApiResult<Json<MessageTemplate>> {
    Ok(Json(s.store.get_template(parse_id(&id, "template")?).await?))
}

/// Change a message template
///
/// The fields sent replace the current ones (`null` clears `locale`, `html` or `layout`); the
/// result is checked again as a whole.
#[utoipa::path(patch, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = Uuid, Path)),
    request_body = TemplateDraft,
    responses((status = 200, body = MessageTemplate), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> ApiResult<Json<MessageTemplate>> {
    caller.can_manage_automation()?;
    let id = parse_id(&id, "template")?;
    let current = s.store.get_template(id).await?;
    let serde_json::Value::Object(changes) = patch else {
        return Err(ApiError::bad_field("", "send a JSON object with the fields to change"));
    };
    let mut doc = serde_json::to_value(TemplateInput::draft_of(&current)).unwrap_or_default();
    for (k, v) in changes {
        doc[k] = v;
    }
    let draft: TemplateDraft = serde_json::from_value(doc).map_err(|e| ApiError::bad_field("", e.to_string()))?;
    let input = TemplateInput::parse(draft)?;
    check(&s, &input).await?;
    Ok(Json(s.store.update_template(id, input).await?))
}

/// Delete a message template
#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.can_manage_automation()?;
    s.store.delete_template(parse_id(&id, "template")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whom to preview a template for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    contact_id: Uuid,
}

/// Preview a template for a contact
///
/// Renders the template (in the contact's locale when a version exists) with that person's
/// real data: what they would receive. Nothing is sent.
#[utoipa::path(post, path = "/api/v1/templates/{id}/preview", tag = "templates", params(("id" = Uuid, Path)),
    request_body = PreviewRequest,
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn preview(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<PreviewRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let template = s.store.get_template(parse_id(&id, "template")?).await?;
    let (all, layouts) = s.store.all_templates().await?;
    let sources: Vec<TemplateSource> =
        all.iter().filter(|t| t.name.eq_ignore_ascii_case(&template.name)).map(crate::email::template_source).collect();
    let templates = Templates::new(sources, layouts.iter().map(crate::email::layout_source).collect()).map_err(problems)?;
    let mut context = s.store.message_context(r.contact_id).await.map_err(|e| match e {
        rapport_store::StoreError::NotFound { .. } => {
            ApiError::bad_field("contact_id", format!("no contact has id {}", r.contact_id))
        }
        other => other.into(),
    })?;
    context["unsubscribe_url"] = serde_json::json!("https://example.invalid/unsubscribe (filled in when sent)");
    context["preferences_url"] = serde_json::json!("https://example.invalid/preferences (filled in when sent)");
    let locale = context["contact"]["locale"].as_str().map(str::to_string);
    let rendered = templates
        .render(&template.name, locale.as_deref(), &context)
        .map_err(|e| ApiError::bad_field("template", e.to_string()))?;
    Ok(Json(serde_json::json!({"subject": rendered.subject, "text": rendered.text, "html": rendered.html, "locale": locale})))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LayoutList {
    pub data: Vec<MessageLayout>,
}

/// List layouts
#[utoipa::path(get, path = "/api/v1/template-layouts", tag = "templates",
    responses((status = 200, body = LayoutList)), security(("bearer" = [])))]
pub async fn layouts(State(s): State<AppState>, _c: Caller) -> ApiResult<Json<LayoutList>> {
    Ok(Json(LayoutList { data: s.store.all_templates().await?.1 }))
}

/// Create or replace a layout
///
/// A layout wraps messages that name it: `{{ content }}` marks where the message goes, in both
/// the HTML and the text part.
#[utoipa::path(post, path = "/api/v1/template-layouts", tag = "templates", request_body = LayoutDraft,
    responses((status = 200, body = MessageLayout), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_layout(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(draft): JsonBody<LayoutDraft>,
) -> ApiResult<Json<MessageLayout>> {
    caller.can_manage_automation()?;
    let input = rapport_core::message::LayoutInput::parse(draft.clone())?;
    let probe = LayoutSource { name: input.name.clone(), html: input.html.clone(), text: input.text.clone() };
    Templates::new(Vec::new(), vec![probe]).map_err(problems)?;
    Ok(Json(s.store.put_layout(draft).await?))
}
