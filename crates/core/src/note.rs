//! Notes: markdown written by staff about a contact or a company.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationErrors;
use crate::text;

/// The longest note body, in characters.
pub const MAX_NOTE_CHARS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Note {
    pub id: Uuid,
    /// Exactly one of `contact_id` and `company_id` is set.
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    /// Markdown source. Clients render it; Rapport's own pages escape it.
    pub body: String,
    /// The user who wrote it.
    pub author_id: Option<Uuid>,
    pub pinned: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NoteDraft {
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub body: Option<String>,
    pub author_id: Option<Uuid>,
    pub pinned: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NotePatch {
    pub body: Option<String>,
    pub pinned: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NoteInput {
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub body: String,
    pub author_id: Option<Uuid>,
    pub pinned: bool,
}

impl NoteInput {
    pub fn parse(d: NoteDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        match (d.contact_id, d.company_id) {
            (None, None) => errs.push("contact_id", "a note belongs to a contact or a company: give contact_id or company_id"),
            (Some(_), Some(_)) => {
                errs.push("company_id", "a note belongs to one record: give contact_id or company_id, not both")
            }
            _ => {}
        }
        let body = errs.take(text::required(d.body, "body", MAX_NOTE_CHARS));
        errs.into_result()?;
        Ok(Self {
            contact_id: d.contact_id,
            company_id: d.company_id,
            body: body.expect("checked above"),
            author_id: d.author_id,
            pinned: d.pinned.unwrap_or(false),
        })
    }

    pub fn patched(current: &Note, p: NotePatch) -> Result<Self, ValidationErrors> {
        Self::parse(NoteDraft {
            contact_id: current.contact_id,
            company_id: current.company_id,
            body: Some(p.body.unwrap_or_else(|| current.body.clone())),
            author_id: current.author_id,
            pinned: Some(p.pinned.unwrap_or(current.pinned)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_needs_one_home_and_a_body() {
        let err = NoteInput::parse(NoteDraft { body: Some("  ".into()), ..Default::default() }).unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["contact_id", "body"]);
        let both = NoteInput::parse(NoteDraft {
            contact_id: Some(Uuid::nil()),
            company_id: Some(Uuid::nil()),
            body: Some("hi".into()),
            ..Default::default()
        });
        assert!(both.is_err());
    }
}
