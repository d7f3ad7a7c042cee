//! Relations between people: a customer's child, spouse, colleague, who referred them.
//! The other person may be a contact or only a name (with a birthday), like the dealer who
//! knows a customer's daughter turns 21 in spring.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationErrors;
use crate::{Birthday, Patch, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    Child,
    Parent,
    Spouse,
    Partner,
    Sibling,
    Colleague,
    /// The related person referred this contact.
    ReferredBy,
    /// Described by `custom_kind`.
    Custom,
}

impl RelationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::Child => "child",
            RelationKind::Parent => "parent",
            RelationKind::Spouse => "spouse",
            RelationKind::Partner => "partner",
            RelationKind::Sibling => "sibling",
            RelationKind::Colleague => "colleague",
            RelationKind::ReferredBy => "referred_by",
            RelationKind::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "child" => Self::Child,
            "parent" => Self::Parent,
            "spouse" => Self::Spouse,
            "partner" => Self::Partner,
            "sibling" => Self::Sibling,
            "colleague" => Self::Colleague,
            "referred_by" => Self::ReferredBy,
            "custom" => Self::Custom,
            _ => return None,
        })
    }
}

/// "`contact_id` has a `kind`": e.g. contact A has a child named Mia born 2005-04-02.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Relation {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub kind: RelationKind,
    /// The kind's name when `kind` is `custom` (e.g. `godparent`).
    pub custom_kind: Option<String>,
    /// The related person when they are a contact too.
    pub related_contact_id: Option<Uuid>,
    /// The related person's name (the contact's display name when linked).
    pub related_name: Option<String>,
    /// The related person's birthday (the contact's when linked and not given here).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "2005-04-02"))]
    pub related_birthday: Option<Birthday>,
    pub notes: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RelationDraft {
    pub contact_id: Option<Uuid>,
    pub kind: Option<RelationKind>,
    pub custom_kind: Option<String>,
    pub related_contact_id: Option<Uuid>,
    pub related_name: Option<String>,
    pub related_birthday: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RelationPatch {
    pub kind: Option<RelationKind>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub custom_kind: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub related_contact_id: Patch<Uuid>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub related_name: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub related_birthday: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub notes: Patch<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationInput {
    pub contact_id: Uuid,
    pub kind: RelationKind,
    pub custom_kind: Option<String>,
    pub related_contact_id: Option<Uuid>,
    pub related_name: Option<String>,
    pub related_birthday: Option<Birthday>,
    pub notes: Option<String>,
}

impl RelationInput {
    pub fn parse(d: RelationDraft, today: chrono::NaiveDate) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if d.contact_id.is_none() {
            errs.push("contact_id", "is required");
        }
        if d.kind.is_none() {
            errs.push("kind", "is required: child, parent, spouse, partner, sibling, colleague, referred_by or custom");
        }
        let custom_kind = errs.take(text::optional(d.custom_kind, "custom_kind", 50)).flatten();
        match (d.kind, &custom_kind) {
            (Some(RelationKind::Custom), None) => errs.push("custom_kind", "is required when kind is custom"),
            (Some(k), Some(_)) if k != RelationKind::Custom => errs.push("custom_kind", "is only allowed when kind is custom"),
            _ => {}
        }
        let related_name = errs.take(text::optional(d.related_name, "related_name", 200)).flatten();
        if d.related_contact_id.is_none() && related_name.is_none() {
            errs.push("related_name", "give the related person's name, or related_contact_id when they are a contact");
        }
        if d.related_contact_id.is_some() && d.related_contact_id == d.contact_id {
            errs.push("related_contact_id", "a contact cannot be related to themselves");
        }
        let related_birthday = match d.related_birthday.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(b) => match Birthday::parse(b).and_then(|b| b.check_not_future(today).map(|()| b)) {
                Ok(b) => Some(b),
                Err(m) => {
                    errs.push("related_birthday", m);
                    None
                }
            },
        };
        let notes = errs.take(text::optional(d.notes, "notes", 2000)).flatten();
        errs.into_result()?;
        Ok(Self {
            contact_id: d.contact_id.expect("checked above"),
            kind: d.kind.expect("checked above"),
            custom_kind,
            related_contact_id: d.related_contact_id,
            related_name,
            related_birthday,
            notes,
        })
    }

    pub fn patched(current: &Relation, p: RelationPatch, today: chrono::NaiveDate) -> Result<Self, ValidationErrors> {
        let kind = p.kind.unwrap_or(current.kind);
        let custom_kind = match (&p.custom_kind, kind) {
            // Leaving custom clears the custom name unless the patch says otherwise.
            (Patch::Missing, k) if k != RelationKind::Custom => None,
            _ => p.custom_kind.apply(current.custom_kind.clone()),
        };
        Self::parse(
            RelationDraft {
                contact_id: Some(current.contact_id),
                kind: Some(kind),
                custom_kind,
                related_contact_id: p.related_contact_id.apply(current.related_contact_id),
                related_name: p.related_name.apply(current.related_name.clone()),
                related_birthday: p.related_birthday.apply(current.related_birthday.map(|b| b.to_string())),
                notes: p.notes.apply(current.notes.clone()),
            },
            today,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn a_named_child_with_a_birthday() {
        let r = RelationInput::parse(
            RelationDraft {
                contact_id: Some(Uuid::now_v7()),
                kind: Some(RelationKind::Child),
                related_name: Some("Mia".into()),
                related_birthday: Some("2005-12-01".into()),
                ..Default::default()
            },
            today(),
        )
        .unwrap();
        assert_eq!(r.related_birthday.unwrap().year, Some(2005));
    }

    #[test]
    fn needs_someone_and_a_consistent_kind() {
        let id = Uuid::now_v7();
        let err = RelationInput::parse(
            RelationDraft {
                contact_id: Some(id),
                kind: Some(RelationKind::Custom),
                related_contact_id: Some(id),
                ..Default::default()
            },
            today(),
        )
        .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["custom_kind", "related_contact_id"]);
    }
}
