//! Companies and the links between contacts and companies.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{FieldError, ValidationErrors};
use crate::tag::TagName;
use crate::{Patch, text};

/// Head-count bands, as sales teams usually record them.
pub const COMPANY_SIZES: [&str; 8] = ["1", "2-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5001+"];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    /// Web domain without scheme or `www.`, e.g. `acme.com`.
    pub domain: Option<String>,
    pub industry: Option<String>,
    /// Head-count band: one of `1`, `2-10`, `11-50`, `51-200`, `201-500`, `501-1000`, `1001-5000`, `5001+`.
    pub size: Option<String>,
    pub owner_id: Option<Uuid>,
    pub tags: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom_fields: Map<String, Value>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompanyDraft {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub size: Option<String>,
    pub owner_id: Option<Uuid>,
    pub tags: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub custom_fields: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompanyPatch {
    pub name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub domain: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub industry: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub size: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub owner_id: Patch<Uuid>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub tags: Patch<Vec<String>>,
    /// Merged key by key; a `null` value removes a key.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub custom_fields: Option<Map<String, Value>>,
}

impl CompanyPatch {
    pub fn apply(self, c: &Company) -> CompanyDraft {
        let mut fields = c.custom_fields.clone();
        if let Some(changes) = self.custom_fields {
            fields.extend(changes);
        }
        CompanyDraft {
            name: Some(self.name.unwrap_or_else(|| c.name.clone())),
            domain: self.domain.apply(c.domain.clone()),
            industry: self.industry.apply(c.industry.clone()),
            size: self.size.apply(c.size.clone()),
            owner_id: self.owner_id.apply(c.owner_id),
            tags: Some(self.tags.apply(Some(c.tags.clone())).unwrap_or_default()),
            custom_fields: Some(fields),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompanyInput {
    pub name: String,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub size: Option<String>,
    pub owner_id: Option<Uuid>,
    pub tags: Vec<TagName>,
    pub custom_fields: Map<String, Value>,
}

impl CompanyInput {
    pub fn parse(d: CompanyDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = errs.take(text::required(d.name, "name", 200));
        let domain = errs.take(text::domain(d.domain, "domain")).flatten();
        let industry = errs.take(text::optional(d.industry, "industry", 100)).flatten();
        let size = match errs.take(text::optional(d.size, "size", 20)).flatten() {
            Some(s) if COMPANY_SIZES.contains(&s.as_str()) => Some(s),
            Some(s) => {
                errs.push("size", format!("'{s}' is not one of: {}", COMPANY_SIZES.join(", ")));
                None
            }
            None => None,
        };
        let mut tags: Vec<TagName> = Vec::new();
        for (i, t) in d.tags.unwrap_or_default().iter().enumerate() {
            if let Some(tag) = errs.take(TagName::parse(t).map_err(|m| FieldError::new(format!("tags[{i}]"), m)))
                && !tags.iter().any(|x| x.key() == tag.key())
            {
                tags.push(tag);
            }
        }
        errs.into_result()?;
        Ok(Self {
            name: name.expect("checked above"),
            domain,
            industry,
            size,
            owner_id: d.owner_id,
            tags,
            custom_fields: d.custom_fields.unwrap_or_default(),
        })
    }
}

/// A contact's place at a company.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompanyLink {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub company_id: Uuid,
    /// The contact's role there: `buyer`, `CFO`, `decision maker`, …
    pub role: Option<String>,
    /// The company the contact is mainly associated with.
    pub primary: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompanyLinkDraft {
    pub contact_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub role: Option<String>,
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompanyLinkPatch {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub role: Patch<String>,
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompanyLinkInput {
    pub contact_id: Uuid,
    pub company_id: Uuid,
    pub role: Option<String>,
    pub primary: bool,
}

impl CompanyLinkInput {
    pub fn parse(d: CompanyLinkDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if d.contact_id.is_none() {
            errs.push("contact_id", "is required");
        }
        if d.company_id.is_none() {
            errs.push("company_id", "is required");
        }
        let role = errs.take(text::optional(d.role, "role", 100)).flatten();
        errs.into_result()?;
        Ok(Self {
            contact_id: d.contact_id.expect("checked above"),
            company_id: d.company_id.expect("checked above"),
            role,
            primary: d.primary.unwrap_or(false),
        })
    }

    pub fn patched(current: &CompanyLink, p: CompanyLinkPatch) -> Result<Self, ValidationErrors> {
        let role = text::optional(p.role.apply(current.role.clone()), "role", 100).map_err(ValidationErrors::from)?;
        Ok(Self {
            contact_id: current.contact_id,
            company_id: current.company_id,
            role,
            primary: p.primary.unwrap_or(current.primary),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_needs_a_name_and_a_known_size() {
        let err =
            CompanyInput::parse(CompanyDraft { size: Some("huge".into()), domain: Some("nope".into()), ..Default::default() })
                .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "domain", "size"]);
        let ok = CompanyInput::parse(CompanyDraft {
            name: Some(" Acme ".into()),
            domain: Some("https://www.acme.com/".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((ok.name.as_str(), ok.domain.as_deref()), ("Acme", Some("acme.com")));
    }
}
