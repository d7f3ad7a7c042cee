//! Users: the people who work in Rapport. Owners of contacts and companies are users.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationErrors;
use crate::{EmailAddress, text};

/// What a user or an API key may do. Ordered: each role can do what the ones below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Works with contacts, companies, notes, tags and relations.
    Member,
    /// A member who also manages the custom field catalogue.
    Manager,
    /// Everything, including users and API keys.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "viewer" | "readonly" | "read-only" => Self::Viewer,
            "member" => Self::Member,
            "manager" => Self::Manager,
            "admin" => Self::Admin,
            _ => return None,
        })
    }

    pub fn can_write_records(self) -> bool {
        self >= Role::Member
    }

    pub fn can_manage_catalogue(self) -> bool {
        self >= Role::Manager
    }

    pub fn can_manage_users(self) -> bool {
        self == Role::Admin
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| format!("'{s}' is not a role: admin, manager, member or viewer"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: Uuid,
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "email"))]
    pub email: EmailAddress,
    pub role: Role,
    /// Deactivated users keep their records and history but cannot sign in.
    pub active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserDraft {
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserInput {
    pub name: String,
    pub email: EmailAddress,
    pub role: Role,
    pub active: bool,
}

impl UserInput {
    pub fn parse(d: UserDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = errs.take(text::required(d.name, "name", 200));
        let email = match d.email {
            None => {
                errs.push("email", "is required");
                None
            }
            Some(e) => errs.take(EmailAddress::parse_field(&e, "email")),
        };
        errs.into_result()?;
        Ok(Self {
            name: name.expect("checked above"),
            email: email.expect("checked above"),
            role: d.role.unwrap_or(Role::Member),
            active: d.active.unwrap_or(true),
        })
    }

    pub fn patched(current: &User, p: UserPatch) -> Result<Self, ValidationErrors> {
        Self::parse(UserDraft {
            name: Some(p.name.unwrap_or_else(|| current.name.clone())),
            email: Some(p.email.unwrap_or_else(|| current.email.to_string())),
            role: Some(p.role.unwrap_or(current.role)),
            active: Some(p.active.unwrap_or(current.active)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.can_manage_users());
        assert!(!Role::Manager.can_manage_users());
        assert!(Role::Manager.can_manage_catalogue());
        assert!(Role::Member.can_write_records());
        assert!(!Role::Viewer.can_write_records());
        assert_eq!("readonly".parse::<Role>().unwrap(), Role::Viewer);
    }

    #[test]
    fn user_needs_name_and_email() {
        let err = UserInput::parse(UserDraft { email: Some("nope".into()), ..Default::default() }).unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "email"]);
    }
}
