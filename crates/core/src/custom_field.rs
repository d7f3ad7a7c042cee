//! The custom field catalogue: which extra fields a business keeps on each record type, and
//! the validation every write of a record goes through.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{FieldError, ValidationErrors};
use crate::{EmailAddress, PhoneNumber, PhoneRegion, text};

/// The kind of record a custom field belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    Contact,
    Company,
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Contact => "contact",
            RecordType::Company => "company",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "contact" => Some(Self::Contact),
            "company" => Some(Self::Company),
            _ => None,
        }
    }
}

/// What values a custom field holds and how they are written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// A string.
    Text,
    /// A JSON number.
    Number,
    /// `{"amount_minor": 1250, "currency": "EUR"}`: integer minor units and an ISO 4217 code.
    Money,
    /// `"YYYY-MM-DD"`.
    Date,
    Bool,
    /// One of the definition's `options`.
    Enum,
    /// An array of distinct `options`.
    MultiEnum,
    /// An absolute http(s) URL.
    Url,
    /// An email address, stored lower-cased.
    Email,
    /// A phone number, stored in E.164 form.
    Phone,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Money => "money",
            FieldKind::Date => "date",
            FieldKind::Bool => "bool",
            FieldKind::Enum => "enum",
            FieldKind::MultiEnum => "multi_enum",
            FieldKind::Url => "url",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => Self::Text,
            "number" => Self::Number,
            "money" => Self::Money,
            "date" => Self::Date,
            "bool" => Self::Bool,
            "enum" => Self::Enum,
            "multi_enum" => Self::MultiEnum,
            "url" => Self::Url,
            "email" => Self::Email,
            "phone" => Self::Phone,
            _ => return None,
        })
    }

    fn has_options(self) -> bool {
        matches!(self, FieldKind::Enum | FieldKind::MultiEnum)
    }
}

/// One entry of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomFieldDefinition {
    pub id: Uuid,
    pub record_type: RecordType,
    /// The key under `custom_fields` in records: lower-case letters, digits and `_`.
    pub key: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    /// The allowed values of `enum` and `multi_enum` fields, in display order.
    pub options: Vec<String>,
    pub description: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A custom field definition as a client sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomFieldDraft {
    pub record_type: Option<RecordType>,
    pub key: Option<String>,
    pub label: Option<String>,
    pub kind: Option<FieldKind>,
    pub required: Option<bool>,
    pub options: Option<Vec<String>>,
    pub description: Option<String>,
}

/// A change to a definition. Record type, key and kind are fixed once records use them.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomFieldPatch {
    pub label: Option<String>,
    pub required: Option<bool>,
    pub options: Option<Vec<String>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: crate::Patch<String>,
}

/// A validated definition ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomFieldSpec {
    pub record_type: RecordType,
    pub key: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    pub options: Vec<String>,
    pub description: Option<String>,
}

impl CustomFieldSpec {
    pub fn parse(d: CustomFieldDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if d.record_type.is_none() {
            errs.push("record_type", "is required (contact or company)");
        }
        if d.kind.is_none() {
            errs.push("kind", "is required (text, number, money, date, bool, enum, multi_enum, url, email, phone)");
        }
        let key = match d.key {
            None => {
                errs.push("key", "is required");
                None
            }
            Some(k) => errs.take(parse_key(&k)),
        };
        let label = errs.take(text::optional(d.label, "label", 100)).flatten();
        let description = errs.take(text::optional(d.description, "description", 1000)).flatten();
        let options = d.options.unwrap_or_default();
        if let Some(kind) = d.kind {
            errs.take(check_options(kind, &options));
        }
        errs.into_result()?;
        let key = key.expect("checked above");
        Ok(Self {
            record_type: d.record_type.expect("checked above"),
            label: label.unwrap_or_else(|| humanise(&key)),
            key,
            kind: d.kind.expect("checked above"),
            required: d.required.unwrap_or(false),
            options: options.into_iter().map(|o| o.trim().to_string()).collect(),
            description,
        })
    }

    /// Applies a patch to an existing definition and validates the result.
    pub fn patched(current: &CustomFieldDefinition, p: CustomFieldPatch) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let label = match p.label {
            Some(l) => errs.take(text::required(Some(l), "label", 100)),
            None => Some(current.label.clone()),
        };
        let description = match p.description {
            crate::Patch::Missing => current.description.clone(),
            crate::Patch::Null => None,
            crate::Patch::Value(v) => errs.take(text::optional(Some(v), "description", 1000)).flatten(),
        };
        let options = p.options.unwrap_or_else(|| current.options.clone());
        errs.take(check_options(current.kind, &options));
        errs.into_result()?;
        Ok(Self {
            record_type: current.record_type,
            key: current.key.clone(),
            label: label.expect("checked above"),
            kind: current.kind,
            required: p.required.unwrap_or(current.required),
            options: options.into_iter().map(|o| o.trim().to_string()).collect(),
            description,
        })
    }
}

fn parse_key(k: &str) -> Result<String, FieldError> {
    let k = k.trim();
    let ok = !k.is_empty()
        && k.len() <= 63
        && k.starts_with(|c: char| c.is_ascii_lowercase())
        && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(k.to_string())
    } else {
        Err(FieldError::new(
            "key",
            format!("'{k}' must start with a lower-case letter and hold only a-z, 0-9 and _ (at most 63)"),
        ))
    }
}

fn check_options(kind: FieldKind, options: &[String]) -> Result<(), FieldError> {
    if kind.has_options() {
        if options.is_empty() {
            return Err(FieldError::new("options", format!("a {} field needs at least one option", kind.as_str())));
        }
        let mut seen = BTreeSet::new();
        for (i, o) in options.iter().enumerate() {
            let t = o.trim();
            if t.is_empty() || t.chars().count() > 100 {
                return Err(FieldError::new(format!("options[{i}]"), "must be 1 to 100 characters"));
            }
            if !seen.insert(t.to_lowercase()) {
                return Err(FieldError::new(format!("options[{i}]"), format!("'{t}' is listed twice")));
            }
        }
    } else if !options.is_empty() {
        return Err(FieldError::new("options", format!("only enum and multi_enum fields take options, not {}", kind.as_str())));
    }
    Ok(())
}

fn humanise(key: &str) -> String {
    let s = key.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// All definitions of one record type: validates and normalises a record's `custom_fields`.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub definitions: Vec<CustomFieldDefinition>,
}

impl Catalogue {
    pub fn new(definitions: Vec<CustomFieldDefinition>) -> Self {
        Self { definitions }
    }

    /// Checks every value against its definition, drops `null`s (a null clears a field) and
    /// returns the normalised map. Errors name `custom_fields.<key>`.
    pub fn validate(&self, values: Map<String, Value>, region: PhoneRegion) -> Result<Map<String, Value>, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let mut out = Map::new();
        for (key, value) in values {
            let field = format!("custom_fields.{key}");
            let Some(def) = self.definitions.iter().find(|d| d.key == key) else {
                errs.push(field, "is not a defined custom field; define it first under /api/v1/custom-fields");
                continue;
            };
            if value.is_null() {
                continue;
            }
            match normalise(def, value, region) {
                Ok(v) => {
                    out.insert(key, v);
                }
                Err(m) => errs.push(field, m),
            }
        }
        for def in self.definitions.iter().filter(|d| d.required) {
            if !out.contains_key(&def.key) {
                errs.push(format!("custom_fields.{}", def.key), "is required");
            }
        }
        errs.into_result().map(|()| out)
    }
}

fn normalise(def: &CustomFieldDefinition, value: Value, region: PhoneRegion) -> Result<Value, String> {
    let kind = def.kind;
    let wrong = |v: &Value| format!("expected {} but got {}", describe(kind), json_kind(v));
    match kind {
        FieldKind::Text => match value {
            Value::String(s) if s.chars().count() <= 10_000 => Ok(Value::String(s)),
            Value::String(_) => Err("must be at most 10000 characters".into()),
            v => Err(wrong(&v)),
        },
        FieldKind::Number => match value {
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(Value::Number(n)),
            v => Err(wrong(&v)),
        },
        FieldKind::Bool => match value {
            Value::Bool(b) => Ok(Value::Bool(b)),
            v => Err(wrong(&v)),
        },
        FieldKind::Date => match value {
            Value::String(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                .map_err(|_| format!("'{s}' is not a date in YYYY-MM-DD form")),
            v => Err(wrong(&v)),
        },
        FieldKind::Money => {
            let Value::Object(mut o) = value else { return Err(wrong(&value)) };
            let amount = o.remove("amount_minor");
            let currency = o.remove("currency");
            if let Some(extra) = o.keys().next() {
                return Err(format!("unknown key '{extra}'; money is {{\"amount_minor\": 1250, \"currency\": \"EUR\"}}"));
            }
            let Some(amount) = amount.as_ref().and_then(Value::as_i64) else {
                return Err("amount_minor must be an integer number of minor units (cents)".into());
            };
            let Some(cur) = currency.as_ref().and_then(Value::as_str).map(str::trim) else {
                return Err("currency is required, an ISO 4217 code such as EUR".into());
            };
            if cur.len() != 3 || !cur.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(format!("'{cur}' is not an ISO 4217 currency code such as EUR"));
            }
            Ok(serde_json::json!({"amount_minor": amount, "currency": cur.to_ascii_uppercase()}))
        }
        FieldKind::Enum => match value {
            Value::String(s) => match_option(def, &s).map(Value::String),
            v => Err(wrong(&v)),
        },
        FieldKind::MultiEnum => match value {
            Value::Array(items) => {
                let mut out: Vec<Value> = Vec::with_capacity(items.len());
                for item in items {
                    let Value::String(s) = item else {
                        return Err(format!("every item must be a string, got {}", json_kind(&item)));
                    };
                    let v = Value::String(match_option(def, &s)?);
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
                Ok(Value::Array(out))
            }
            v => Err(wrong(&v)),
        },
        FieldKind::Url => match value {
            Value::String(s) => text::url(&s, "").map(Value::String).map_err(|e| e.message),
            v => Err(wrong(&v)),
        },
        FieldKind::Email => match value {
            Value::String(s) => EmailAddress::parse(&s).map(|e| Value::String(e.as_str().to_string())),
            v => Err(wrong(&v)),
        },
        FieldKind::Phone => match value {
            Value::String(s) => PhoneNumber::parse(&s, region).map(|p| Value::String(p.e164().to_string())),
            v => Err(wrong(&v)),
        },
    }
}

/// Options match case-insensitively and are stored in the catalogue's spelling.
fn match_option(def: &CustomFieldDefinition, s: &str) -> Result<String, String> {
    let t = s.trim();
    def.options
        .iter()
        .find(|o| o.eq_ignore_ascii_case(t) || o.to_lowercase() == t.to_lowercase())
        .cloned()
        .ok_or_else(|| format!("'{t}' is not one of: {}", def.options.join(", ")))
}

fn describe(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "text",
        FieldKind::Number => "a number",
        FieldKind::Money => "money {\"amount_minor\": integer, \"currency\": \"EUR\"}",
        FieldKind::Date => "a date string YYYY-MM-DD",
        FieldKind::Bool => "true or false",
        FieldKind::Enum => "one option as a string",
        FieldKind::MultiEnum => "an array of options",
        FieldKind::Url => "a URL string",
        FieldKind::Email => "an email address string",
        FieldKind::Phone => "a phone number string",
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(key: &str, kind: FieldKind, required: bool, options: &[&str]) -> CustomFieldDefinition {
        CustomFieldDefinition {
            id: Uuid::nil(),
            record_type: RecordType::Contact,
            key: key.into(),
            label: key.into(),
            kind,
            required,
            options: options.iter().map(|s| s.to_string()).collect(),
            description: None,
            created_at: chrono::DateTime::<chrono::Utc>::default(),
            updated_at: chrono::DateTime::<chrono::Utc>::default(),
        }
    }

    fn catalogue() -> Catalogue {
        Catalogue::new(vec![
            def("shoe_size", FieldKind::Number, false, &[]),
            def("member_since", FieldKind::Date, false, &[]),
            def("plan", FieldKind::Enum, true, &["Basic", "Premium"]),
            def("interests", FieldKind::MultiEnum, false, &["Yoga", "Spin"]),
            def("budget", FieldKind::Money, false, &[]),
            def("backup_phone", FieldKind::Phone, false, &[]),
        ])
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn normalises_valid_values() {
        let out = catalogue()
            .validate(
                map(json!({"plan":"premium","interests":["yoga","Yoga","Spin"],"budget":{"amount_minor":1250,"currency":"eur"},"backup_phone":"(415) 555-2671","shoe_size":42.5,"member_since":null})),
                PhoneRegion::default(),
            )
            .unwrap();
        assert_eq!(out["plan"], json!("Premium"));
        assert_eq!(out["interests"], json!(["Yoga", "Spin"]));
        assert_eq!(out["budget"], json!({"amount_minor":1250,"currency":"EUR"}));
        assert_eq!(out["backup_phone"], json!("+14155552671"));
        assert!(!out.contains_key("member_since"));
    }

    #[test]
    fn names_each_bad_field() {
        let err = catalogue()
            .validate(map(json!({"shoe_size":"big","member_since":"14/03/2020","colour":"red"})), PhoneRegion::default())
            .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["custom_fields.colour", "custom_fields.member_since", "custom_fields.shoe_size", "custom_fields.plan"]
        );
        assert!(err.errors[3].message.contains("required"));
    }

    #[test]
    fn definitions_are_checked() {
        let bad = CustomFieldSpec::parse(CustomFieldDraft {
            record_type: Some(RecordType::Contact),
            key: Some("Shoe Size".into()),
            kind: Some(FieldKind::Enum),
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<_> = bad.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["key", "options"]);
        let ok = CustomFieldSpec::parse(CustomFieldDraft {
            record_type: Some(RecordType::Company),
            key: Some("annual_revenue".into()),
            kind: Some(FieldKind::Money),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.label, "Annual revenue");
    }
}
