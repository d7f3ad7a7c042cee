//! Message templates and layouts as records: what a business writes once and Rapport fills in
//! for each person. Their template syntax (minijinja) is checked by the channels layer; here
//! the record's own fields are.
//!
//! Times are spelled `chrono::DateTime<chrono::Utc>` where the OpenAPI schema derives from them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationErrors;
use crate::text;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_SUBJECT_CHARS: usize = 500;
/// A body (text or HTML) or a layout part.
pub const MAX_BODY_CHARS: usize = 256 * 1024;

/// Marketing messages need consent and count against frequency caps; transactional ones (a
/// receipt, an appointment reminder) do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Marketing,
    Transactional,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Transactional => "transactional",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Purpose::Marketing, Purpose::Transactional].into_iter().find(|p| p.as_str() == raw)
    }
}

/// A stored template: one name may exist in several locales.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageTemplate {
    pub id: Uuid,
    pub name: String,
    /// BCP 47 (`de`, `pt-BR`); `null` for the default version.
    pub locale: Option<String>,
    /// `email` or `sms`.
    pub channel: String,
    pub purpose: Purpose,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The name of a layout that wraps it.
    pub layout: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateDraft {
    pub name: Option<String>,
    pub locale: Option<String>,
    /// `email` (default) or `sms`.
    pub channel: Option<String>,
    /// `marketing` (default) or `transactional`.
    pub purpose: Option<Purpose>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub layout: Option<String>,
}

/// A validated template record (its syntax is checked separately).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateInput {
    pub name: String,
    pub locale: Option<String>,
    pub channel: String,
    pub purpose: Purpose,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub layout: Option<String>,
}

/// Line endings as `\n` (editors on Windows send `\r\n`).
fn body(raw: Option<String>) -> Option<String> {
    raw.map(|s| s.replace("\r\n", "\n").replace('\r', "\n"))
}

impl TemplateInput {
    pub fn parse(d: TemplateDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = errs.take(text::required(d.name, "name", MAX_NAME_CHARS));
        let locale = errs.take(text::locale(d.locale, "locale")).flatten();
        let channel = d.channel.map(|c| c.trim().to_lowercase()).unwrap_or_else(|| "email".into());
        if !matches!(channel.as_str(), "email" | "sms") {
            errs.push("channel", "must be email or sms");
        }
        let subject = errs.take(text::optional(d.subject, "subject", MAX_SUBJECT_CHARS)).flatten();
        if channel == "email" && subject.is_none() {
            errs.push("subject", "is required for email");
        }
        if subject.as_deref().is_some_and(|s| s.contains('\n')) {
            errs.push("subject", "must be one line");
        }
        let text = errs.take(text::required(body(d.text), "text", MAX_BODY_CHARS));
        let html = errs.take(text::optional(body(d.html), "html", MAX_BODY_CHARS)).flatten();
        if channel == "sms" && html.is_some() {
            errs.push("html", "an SMS has no HTML body");
        }
        let layout = errs.take(text::optional(d.layout, "layout", MAX_NAME_CHARS)).flatten();
        errs.into_result()?;
        Ok(Self {
            name: name.expect("checked above"),
            locale,
            channel,
            purpose: d.purpose.unwrap_or(Purpose::Marketing),
            subject: subject.unwrap_or_default(),
            text: text.expect("checked above"),
            html,
            layout,
        })
    }

    /// The draft a change starts from: every field as it is now.
    pub fn draft_of(t: &MessageTemplate) -> TemplateDraft {
        TemplateDraft {
            name: Some(t.name.clone()),
            locale: t.locale.clone(),
            channel: Some(t.channel.clone()),
            purpose: Some(t.purpose),
            subject: Some(t.subject.clone()),
            text: Some(t.text.clone()),
            html: t.html.clone(),
            layout: t.layout.clone(),
        }
    }
}

/// A layout: the header and footer around messages (`{{ content }}` marks where).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageLayout {
    pub id: Uuid,
    pub name: String,
    pub html: String,
    pub text: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LayoutDraft {
    pub name: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
}

/// A validated layout record.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutInput {
    pub name: String,
    pub html: String,
    pub text: String,
}

impl LayoutInput {
    pub fn parse(d: LayoutDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = errs.take(text::required(d.name, "name", MAX_NAME_CHARS));
        let html = errs.take(text::required(body(d.html), "html", MAX_BODY_CHARS));
        let text = errs.take(text::required(body(d.text), "text", MAX_BODY_CHARS));
        errs.into_result()?;
        Ok(Self { name: name.expect("checked"), html: html.expect("checked"), text: text.expect("checked") })
    }
}

/// Attempts before a message that keeps failing for now (a 4xx reply, a timeout, a provider's
/// 503) is given up, on every channel.
pub const MAX_SEND_ATTEMPTS: u32 = 8;

/// When to try a message again after its `attempt`-th temporary failure: 1 min, 5 min, 15 min,
/// 1 h, then every 4 h (eight attempts span about 14 hours).
pub fn retry_after(attempt: u32) -> chrono::Duration {
    match attempt {
        0 | 1 => chrono::Duration::minutes(1),
        2 => chrono::Duration::minutes(5),
        3 => chrono::Duration::minutes(15),
        4 => chrono::Duration::hours(1),
        _ => chrono::Duration::hours(4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_are_checked_field_by_field() {
        let ok = TemplateInput::parse(TemplateDraft {
            name: Some(" Birthday ".into()),
            subject: Some("Happy birthday, {{ contact.first_name }}".into()),
            text: Some("Hi\r\nthere".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((ok.name.as_str(), ok.channel.as_str(), ok.text.as_str()), ("Birthday", "email", "Hi\nthere"));
        assert_eq!(ok.purpose, Purpose::Marketing);
        let bad = TemplateInput::parse(TemplateDraft {
            channel: Some("fax".into()),
            subject: Some("two\nlines".into()),
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<&str> = bad.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "channel", "subject", "text"]);
        let sms = TemplateInput::parse(TemplateDraft {
            name: Some("x".into()),
            channel: Some("sms".into()),
            text: Some("t".into()),
            html: Some("<p>".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(sms.errors[0].field, "html");
    }
}
