//! Tags: short labels on contacts and companies. Names are unique regardless of case.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationErrors;
use crate::{Patch, text};

/// A tag name: trimmed, inner whitespace collapsed, 1–64 characters, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagName(String);

impl TagName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            return Err("a tag must not be blank".into());
        }
        if collapsed.chars().count() > 64 {
            return Err(format!("'{collapsed}' is longer than 64 characters"));
        }
        if collapsed.chars().any(char::is_control) {
            return Err("a tag must not contain control characters".into());
        }
        Ok(Self(collapsed))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form tags are unique on.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tag {
    pub id: Uuid,
    pub name: String,
    /// `#rrggbb`, for the UI.
    pub color: Option<String>,
    pub description: Option<String>,
    /// How many contacts carry the tag.
    pub contact_count: i64,
    /// How many companies carry the tag.
    pub company_count: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TagDraft {
    pub name: Option<String>,
    pub color: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TagPatch {
    /// Renaming a tag renames it on every record that carries it.
    pub name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub color: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Patch<String>,
}

/// A validated tag.
#[derive(Debug, Clone, PartialEq)]
pub struct TagInput {
    pub name: TagName,
    pub color: Option<String>,
    pub description: Option<String>,
}

impl TagInput {
    pub fn parse(d: TagDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = match d.name {
            None => {
                errs.push("name", "is required");
                None
            }
            Some(n) => TagName::parse(&n).map_err(|m| errs.push("name", m)).ok(),
        };
        let color = parse_color(d.color, &mut errs);
        let description = errs.take(text::optional(d.description, "description", 500)).flatten();
        errs.into_result()?;
        Ok(Self { name: name.expect("checked above"), color, description })
    }

    pub fn patched(current: &Tag, p: TagPatch) -> Result<Self, ValidationErrors> {
        Self::parse(TagDraft {
            name: Some(p.name.unwrap_or_else(|| current.name.clone())),
            color: p.color.apply(current.color.clone()),
            description: p.description.apply(current.description.clone()),
        })
    }
}

fn parse_color(raw: Option<String>, errs: &mut ValidationErrors) -> Option<String> {
    let c = errs.take(text::optional(raw, "color", 7)).flatten()?;
    let ok = c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit());
    if ok {
        Some(c.to_ascii_lowercase())
    } else {
        errs.push("color", format!("'{c}' is not a colour in #rrggbb form"));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_collapsed_and_bounded() {
        assert_eq!(TagName::parse("  big   spender ").unwrap().as_str(), "big spender");
        assert_eq!(TagName::parse("VIP").unwrap().key(), "vip");
        assert!(TagName::parse("   ").is_err());
        assert!(TagName::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn colours() {
        let ok =
            TagInput::parse(TagDraft { name: Some("vip".into()), color: Some("#FFAA00".into()), description: None }).unwrap();
        assert_eq!(ok.color.as_deref(), Some("#ffaa00"));
        let bad = TagInput::parse(TagDraft { name: None, color: Some("red".into()), description: None }).unwrap_err();
        assert_eq!(bad.errors.len(), 2);
    }
}
