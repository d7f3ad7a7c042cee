//! Message templates in the browser: the list, a form that creates or changes one (every
//! problem shown beside its part with the line, as the API reports it), and a preview of the
//! stored template filled in with a real contact's data. Managers and admins change templates,
//! as in the API; everyone signed in may read and preview them.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use rapport_channels::template::{self as tpl, ContextShape, LayoutSource, TemplateSource, Templates};
use rapport_core::FieldError;
use rapport_core::custom_field::RecordType;
use rapport_core::message::{MessageTemplate, Purpose, TemplateDraft, TemplateInput};
use rapport_store::{ContactFilter, PageRequest, StoreError};
use uuid::Uuid;

use super::form::{FieldForm, FormData, QueryData};
use super::format::{ago, label};
use super::{Shell, Signed, UiError, parse_id, redirect_with, render, render_status};
use crate::AppState;

pub struct TemplateRow {
    pub id: Uuid,
    pub name: String,
    pub locale: String,
    pub channel: String,
    pub purpose: String,
    pub subject: String,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "templates/list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<TemplateRow>,
    can_manage: bool,
}

/// `GET /templates`
pub async fn list(State(s): State<AppState>, signed: Signed) -> Result<Response, UiError> {
    let page = PageRequest { limit: Some(500), sort: Some("name".into()), ..Default::default() };
    let now = s.store.now();
    let rows = s
        .store
        .list_templates(page)
        .await?
        .data
        .into_iter()
        .map(|t| TemplateRow {
            id: t.id,
            name: t.name,
            locale: t.locale.unwrap_or_else(|| "default".into()),
            channel: if t.channel == "sms" { "SMS".into() } else { label(&t.channel) },
            purpose: label(t.purpose.as_str()),
            subject: t.subject,
            updated: ago(t.updated_at, now),
        })
        .collect();
    render(&ListPage { can_manage: signed.can_manage_automation(), shell: signed.shell("campaigns"), rows })
}

const FIELDS: [&str; 8] = ["name", "locale", "channel", "purpose", "subject", "text", "html", "layout"];

impl std::ops::Deref for TemplateForm {
    type Target = FieldForm;

    fn deref(&self) -> &FieldForm {
        &self.0
    }
}

/// The template form as typed (or stored), with the problems found, by part.
pub struct TemplateForm(FieldForm);

impl TemplateForm {
    pub fn id(&self, name: &str) -> String {
        format!("template-{name}")
    }

    fn from_form(form: &FormData) -> Self {
        // Bodies keep their spacing; the rest is trimmed.
        let values = FIELDS
            .iter()
            .map(|f| (*f, if matches!(*f, "text" | "html") { form.get(f).unwrap_or("").to_string() } else { form.text(f) }))
            .collect();
        Self(FieldForm::new(values))
    }

    fn from_template(t: &MessageTemplate) -> Self {
        let values = HashMap::from([
            ("name", t.name.clone()),
            ("locale", t.locale.clone().unwrap_or_default()),
            ("channel", t.channel.clone()),
            ("purpose", t.purpose.as_str().to_string()),
            ("subject", t.subject.clone()),
            ("text", t.text.clone()),
            ("html", t.html.clone().unwrap_or_default()),
            ("layout", t.layout.clone().unwrap_or_default()),
        ]);
        Self(FieldForm::new(values))
    }

    fn blank() -> Self {
        let values = HashMap::from([("channel", "email".to_string()), ("purpose", "marketing".to_string())]);
        Self(FieldForm::new(values))
    }

    fn add_errors(&mut self, errors: Vec<FieldError>) {
        for e in errors {
            // A problem in a layout's own source (`layout.html`) is shown beside the layout.
            let field = e.field.split('.').next().unwrap_or("").to_string();
            let beside_input = FIELDS.contains(&field.as_str());
            self.0.place(field, &e.message, beside_input);
        }
    }

    fn draft(&self) -> TemplateDraft {
        let opt = |name: &str| Some(self.v(name).to_string()).filter(|v| !v.trim().is_empty());
        TemplateDraft {
            name: Some(self.v("name").to_string()),
            locale: opt("locale"),
            channel: opt("channel"),
            purpose: Some(if self.v("purpose") == "transactional" { Purpose::Transactional } else { Purpose::Marketing }),
            subject: opt("subject"),
            text: Some(self.v("text").to_string()),
            html: opt("html"),
            layout: opt("layout"),
        }
    }
}

/// Checks the template's syntax and every name it uses against what a message can read, as
/// the API does; each problem names its part and line (`line 3: unknown variable …`).
async fn check(s: &AppState, input: &TemplateInput) -> Result<Vec<FieldError>, UiError> {
    let (_, layouts) = s.store.all_templates().await?;
    let fields =
        s.store.list_custom_fields(Some(RecordType::Contact), PageRequest { limit: Some(500), cursor: None, sort: None }).await?;
    let shape = ContextShape::standard().with_custom_fields(fields.data.iter().map(|f| f.key.clone()));
    let layouts: Vec<LayoutSource> = layouts.iter().map(crate::email::layout_source).collect();
    let source = TemplateSource {
        name: input.name.clone(),
        locale: input.locale.clone(),
        subject: input.subject.clone(),
        html: input.html.clone(),
        text: input.text.clone(),
        layout: input.layout.clone(),
    };
    Ok(match tpl::check(&source, &layouts, &shape) {
        Ok(()) => Vec::new(),
        Err(problems) => problems
            .into_iter()
            .map(|p| match p.line {
                Some(line) => FieldError::new(p.part, format!("line {line}: {}", p.message)),
                None => FieldError::new(p.part, p.message),
            })
            .collect(),
    })
}

/// What the preview shows: whose data, and the message they would receive.
pub struct PreviewView {
    pub contact: String,
    pub contact_href: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

#[derive(Template)]
#[template(path = "templates/form.html")]
struct FormPage {
    shell: Shell,
    form: TemplateForm,
    /// The stored template shown, when there is one.
    template_id: Option<Uuid>,
    heading: String,
    action: String,
    can_manage: bool,
    /// What was typed in "Preview for".
    preview_for: String,
    preview: Option<PreviewView>,
    preview_error: Option<String>,
}

fn form_page(signed: &Signed, form: TemplateForm, editing: Option<(Uuid, String)>) -> FormPage {
    FormPage {
        shell: signed.shell("campaigns"),
        action: editing.as_ref().map_or_else(|| "/templates".to_string(), |(id, _)| format!("/templates/{id}")),
        template_id: editing.as_ref().map(|(id, _)| *id),
        heading: editing.map_or_else(|| "New template".to_string(), |(_, name)| name),
        form,
        can_manage: signed.can_manage_automation(),
        preview_for: String::new(),
        preview: None,
        preview_error: None,
    }
}

/// Validates and saves; the form again with its problems otherwise.
async fn save(s: &AppState, signed: &Signed, form: FormData, editing: Option<(Uuid, String)>) -> Result<Response, UiError> {
    let mut f = TemplateForm::from_form(&form);
    let errors = match TemplateInput::parse(f.draft()) {
        Err(v) => v.errors,
        Ok(input) => {
            let problems = check(s, &input).await?;
            if problems.is_empty() {
                let saved = match &editing {
                    Some((id, _)) => s.store.update_template(*id, input).await,
                    None => s.store.create_template(input).await,
                };
                match saved {
                    Ok(t) => {
                        return Ok(redirect_with(&format!("/templates/{}", t.id), &format!("Saved the template “{}”.", t.name)));
                    }
                    Err(StoreError::Invalid(v)) => v.errors,
                    Err(StoreError::Conflict { field, message }) => vec![FieldError::new(field, message)],
                    Err(e) => return Err(e.into()),
                }
            } else {
                problems
            }
        }
    };
    f.add_errors(errors);
    render_status(StatusCode::UNPROCESSABLE_ENTITY, &form_page(signed, f, editing))
}

/// `GET /templates/new`
pub async fn new_form(signed: Signed) -> Result<Response, UiError> {
    signed.require_manager("change message templates: they reach customers")?;
    render(&form_page(&signed, TemplateForm::blank(), None))
}

/// `POST /templates`
pub async fn create(State(s): State<AppState>, signed: Signed, form: FormData) -> Result<Response, UiError> {
    signed.require_manager("change message templates: they reach customers")?;
    save(&s, &signed, form, None).await
}

/// `POST /templates/{id}`
pub async fn update(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, UiError> {
    signed.require_manager("change message templates: they reach customers")?;
    let t = s.store.get_template(parse_id(&id, "template")?).await?;
    save(&s, &signed, form, Some((t.id, t.name))).await
}

/// `GET /templates/{id}`, and with `?preview=<email or contact id>` the stored template filled
/// in for that person (the first contact when the box is left empty).
pub async fn show(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    QueryData(q): QueryData,
) -> Result<Response, UiError> {
    let t = s.store.get_template(parse_id(&id, "template")?).await?;
    let mut page = form_page(&signed, TemplateForm::from_template(&t), Some((t.id, t.name.clone())));
    if q.get("preview").is_some() {
        page.preview_for = q.text("preview");
        match preview(&s, &t, &page.preview_for).await? {
            Ok(p) => page.preview = Some(p),
            Err(e) => page.preview_error = Some(e),
        }
    }
    render(&page)
}

/// Renders `t` for the contact `who` names (an email address or an id; the first contact when
/// empty); `Err` says why it could not.
async fn preview(s: &AppState, t: &MessageTemplate, who: &str) -> Result<Result<PreviewView, String>, UiError> {
    let contact = if let Ok(id) = Uuid::parse_str(who) {
        match s.store.get_contact(id).await {
            Ok(c) => Some(c),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        let filter = ContactFilter { email: Some(who.to_string()).filter(|w| !w.is_empty()), ..Default::default() };
        s.store.list_contacts(filter, PageRequest { limit: Some(1), ..Default::default() }).await?.data.into_iter().next()
    };
    let Some(contact) = contact else {
        return Ok(Err(if who.is_empty() {
            "There are no contacts yet to fill the template in with.".to_string()
        } else {
            format!("No contact has the email address or id “{who}”.")
        }));
    };
    let (all, layouts) = s.store.all_templates().await?;
    let sources: Vec<TemplateSource> =
        all.iter().filter(|x| x.name.eq_ignore_ascii_case(&t.name)).map(crate::email::template_source).collect();
    let templates = match Templates::new(sources, layouts.iter().map(crate::email::layout_source).collect()) {
        Ok(ts) => ts,
        Err(problems) => {
            return Ok(Err(format!(
                "The template does not load: {}",
                problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ")
            )));
        }
    };
    let mut context = s.store.message_context(contact.id).await?;
    context["unsubscribe_url"] = serde_json::json!("https://example.invalid/unsubscribe (filled in when sent)");
    context["preferences_url"] = serde_json::json!("https://example.invalid/preferences (filled in when sent)");
    let locale = context["contact"]["locale"].as_str().map(str::to_string);
    Ok(match templates.render(&t.name, locale.as_deref(), &context) {
        Ok(r) => Ok(PreviewView {
            contact_href: format!("/contacts/{}", contact.id),
            contact: contact.display_name,
            subject: r.subject,
            text: r.text,
            html: r.html,
        }),
        Err(e) => Err(format!("It does not render for {}: {e}", contact.display_name)),
    })
}
