//! Contacts: the people a business has a relationship with.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{FieldError, ValidationErrors};
use crate::tag::TagName;
use crate::{Birthday, EmailAddress, Patch, PhoneNumber, PhoneRegion, text};

/// A contact as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    pub id: Uuid,
    /// What the UI shows: given, or built from the name parts (or the email when unnamed).
    pub display_name: String,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    /// Job title or honorific.
    pub title: Option<String>,
    pub emails: Vec<ContactEmail>,
    pub phones: Vec<ContactPhone>,
    /// `YYYY-MM-DD`, or `--MM-DD` when the year is unknown.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "--03-14"))]
    pub birthday: Option<Birthday>,
    /// IANA time zone, e.g. `Asia/Manila`; birthdays and quiet hours use it.
    pub time_zone: Option<String>,
    /// BCP 47 language tag, e.g. `pt-BR`.
    pub locale: Option<String>,
    pub address: Option<Address>,
    /// Where the contact came from: `website`, `import`, `walk-in`, …
    pub source: Option<String>,
    /// The responsible user.
    pub owner_id: Option<Uuid>,
    pub tags: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom_fields: Map<String, Value>,
    pub external_ids: Vec<ExternalId>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl Contact {
    pub fn primary_email(&self) -> Option<&EmailAddress> {
        self.emails.iter().find(|e| e.primary).map(|e| &e.address)
    }

    /// The contact as a complete draft, the starting point of a PATCH.
    pub fn to_draft(&self) -> ContactDraft {
        ContactDraft {
            first_name: self.first_name.clone(),
            middle_name: self.middle_name.clone(),
            last_name: self.last_name.clone(),
            display_name: Some(self.display_name.clone()),
            title: self.title.clone(),
            emails: Some(
                self.emails
                    .iter()
                    .map(|e| EmailDraft { address: e.address.to_string(), label: e.label.clone(), primary: Some(e.primary) })
                    .collect(),
            ),
            phones: Some(
                self.phones
                    .iter()
                    .map(|p| PhoneDraft { number: p.number.clone(), label: p.label.clone(), primary: Some(p.primary) })
                    .collect(),
            ),
            birthday: self.birthday.map(|b| b.to_string()),
            time_zone: self.time_zone.clone(),
            locale: self.locale.clone(),
            address: self.address.clone().map(Address::into_draft),
            source: self.source.clone(),
            owner_id: self.owner_id,
            tags: Some(self.tags.clone()),
            custom_fields: Some(self.custom_fields.clone()),
            external_ids: Some(
                self.external_ids.iter().map(|x| ExternalIdDraft { source: x.source.clone(), id: x.id.clone() }).collect(),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactEmail {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "email"))]
    pub address: EmailAddress,
    /// `work`, `home`, …
    pub label: Option<String>,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactPhone {
    /// As entered.
    pub number: String,
    /// Normalised, e.g. `+639171234567`.
    pub e164: String,
    pub label: Option<String>,
    pub primary: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub street: Option<String>,
    pub street2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166 two-letter code, upper case.
    pub country: Option<String>,
}

impl Address {
    fn into_draft(self) -> Address {
        self
    }

    /// Trims every part; an address with no parts is `None`.
    pub fn parse(a: Address, field: &str) -> Result<Option<Address>, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let f = |n: &str| format!("{field}.{n}");
        let out = Address {
            street: errs.take(text::optional(a.street, &f("street"), 200)).flatten(),
            street2: errs.take(text::optional(a.street2, &f("street2"), 200)).flatten(),
            city: errs.take(text::optional(a.city, &f("city"), 100)).flatten(),
            region: errs.take(text::optional(a.region, &f("region"), 100)).flatten(),
            postal_code: errs.take(text::optional(a.postal_code, &f("postal_code"), 20)).flatten(),
            country: match errs.take(text::optional(a.country, &f("country"), 2)).flatten() {
                Some(c) if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => Some(c.to_ascii_uppercase()),
                Some(c) => {
                    errs.push(f("country"), format!("'{c}' is not a two-letter country code such as PH"));
                    None
                }
                None => None,
            },
        };
        errs.into_result()?;
        Ok(if out == Address::default() { None } else { Some(out) })
    }
}

/// An id the contact has in another system (a shop, a till, a spreadsheet).
/// `(source, id)` is unique across contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExternalId {
    pub source: String,
    pub id: String,
}

/// A contact as a client sends it (create, or the result of applying a patch).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContactDraft {
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub title: Option<String>,
    pub emails: Option<Vec<EmailDraft>>,
    pub phones: Option<Vec<PhoneDraft>>,
    /// `YYYY-MM-DD` or `--MM-DD`.
    #[cfg_attr(feature = "openapi", schema(example = "--03-14"))]
    pub birthday: Option<String>,
    pub time_zone: Option<String>,
    pub locale: Option<String>,
    pub address: Option<Address>,
    pub source: Option<String>,
    pub owner_id: Option<Uuid>,
    pub tags: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub custom_fields: Option<Map<String, Value>>,
    pub external_ids: Option<Vec<ExternalIdDraft>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EmailDraft {
    pub address: String,
    pub label: Option<String>,
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PhoneDraft {
    pub number: String,
    pub label: Option<String>,
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExternalIdDraft {
    pub source: String,
    pub id: String,
}

/// A PATCH body: absent fields stay, `null` clears. Lists (emails, phones, tags, external
/// ids) are replaced whole; `custom_fields` is merged key by key (a `null` value removes a key).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub first_name: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub middle_name: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_name: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub display_name: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub title: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<EmailDraft>>))]
    pub emails: Patch<Vec<EmailDraft>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<PhoneDraft>>))]
    pub phones: Patch<Vec<PhoneDraft>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub birthday: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub time_zone: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub locale: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Address>))]
    pub address: Patch<Address>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub source: Patch<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub owner_id: Patch<Uuid>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub tags: Patch<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub custom_fields: Option<Map<String, Value>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<ExternalIdDraft>>))]
    pub external_ids: Patch<Vec<ExternalIdDraft>>,
}

impl ContactPatch {
    /// The draft that results from applying this patch to `current`. When the name parts
    /// change but the display name is not given, the display name is rebuilt from them.
    pub fn apply(self, current: &Contact) -> ContactDraft {
        let mut d = current.to_draft();
        let names_changed = !(self.first_name.is_missing() && self.middle_name.is_missing() && self.last_name.is_missing());
        d.first_name = self.first_name.apply(d.first_name);
        d.middle_name = self.middle_name.apply(d.middle_name);
        d.last_name = self.last_name.apply(d.last_name);
        let derived_before =
            derive_display_name(current.first_name.as_deref(), current.middle_name.as_deref(), current.last_name.as_deref());
        d.display_name = match self.display_name {
            Patch::Missing if names_changed && derived_before.as_deref() == Some(current.display_name.as_str()) => None,
            other => other.apply(d.display_name),
        };
        d.title = self.title.apply(d.title);
        d.emails = Some(self.emails.apply(d.emails).unwrap_or_default());
        d.phones = Some(self.phones.apply(d.phones).unwrap_or_default());
        d.birthday = self.birthday.apply(d.birthday);
        d.time_zone = self.time_zone.apply(d.time_zone);
        d.locale = self.locale.apply(d.locale);
        d.address = self.address.apply(d.address);
        d.source = self.source.apply(d.source);
        d.owner_id = self.owner_id.apply(d.owner_id);
        d.tags = Some(self.tags.apply(d.tags).unwrap_or_default());
        if let Some(changes) = self.custom_fields {
            let fields = d.custom_fields.get_or_insert_with(Map::new);
            for (k, v) in changes {
                // Keep explicit nulls: the catalogue drops them and still sees the key.
                fields.insert(k, v);
            }
        }
        d.external_ids = Some(self.external_ids.apply(d.external_ids).unwrap_or_default());
        d
    }
}

/// A validated contact, ready to be stored. Custom fields are checked against the catalogue
/// by the store, inside the write transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactInput {
    pub display_name: String,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub emails: Vec<ContactEmail>,
    pub phones: Vec<ContactPhone>,
    pub birthday: Option<Birthday>,
    pub time_zone: Option<String>,
    pub locale: Option<String>,
    pub address: Option<Address>,
    pub source: Option<String>,
    pub owner_id: Option<Uuid>,
    pub tags: Vec<TagName>,
    pub custom_fields: Map<String, Value>,
    pub external_ids: Vec<ExternalId>,
}

/// Limits that keep one record from swallowing the database.
const MAX_EMAILS: usize = 20;
const MAX_PHONES: usize = 20;
const MAX_TAGS: usize = 100;
const MAX_EXTERNAL_IDS: usize = 50;

impl ContactInput {
    /// Parses a draft; `today` bounds birth years, `region` reads local phone numbers.
    pub fn parse(d: ContactDraft, region: PhoneRegion, today: chrono::NaiveDate) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let first_name = errs.take(text::optional(d.first_name, "first_name", 100)).flatten();
        let middle_name = errs.take(text::optional(d.middle_name, "middle_name", 100)).flatten();
        let last_name = errs.take(text::optional(d.last_name, "last_name", 100)).flatten();
        let display_name = errs.take(text::optional(d.display_name, "display_name", 200)).flatten();
        let title = errs.take(text::optional(d.title, "title", 100)).flatten();

        let emails = parse_emails(d.emails.unwrap_or_default(), &mut errs);
        let phones = parse_phones(d.phones.unwrap_or_default(), region, &mut errs);

        let birthday = match d.birthday.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(b) => errs.take(
                Birthday::parse(b)
                    .and_then(|b| b.check_not_future(today).map(|()| b))
                    .map_err(|m| FieldError::new("birthday", m)),
            ),
        };
        let time_zone = errs.take(text::time_zone(d.time_zone, "time_zone")).flatten();
        let locale = errs.take(text::locale(d.locale, "locale")).flatten();
        let address = match d.address {
            None => None,
            Some(a) => match Address::parse(a, "address") {
                Ok(a) => a,
                Err(e) => {
                    errs.errors.extend(e.errors);
                    None
                }
            },
        };
        let source = errs.take(text::optional(d.source, "source", 100)).flatten();
        let tags = parse_tags(d.tags.unwrap_or_default(), &mut errs);
        let external_ids = parse_external_ids(d.external_ids.unwrap_or_default(), &mut errs);

        let display_name = display_name
            .or_else(|| derive_display_name(first_name.as_deref(), middle_name.as_deref(), last_name.as_deref()))
            .or_else(|| emails.iter().find(|e| e.primary).map(|e| e.address.to_string()))
            .or_else(|| phones.iter().find(|p| p.primary).map(|p| p.e164.clone()));
        if display_name.is_none() && errs.is_empty() {
            errs.push("first_name", "a contact needs at least a name, an email address or a phone number");
        }
        errs.into_result()?;
        Ok(Self {
            display_name: display_name.expect("checked above"),
            first_name,
            middle_name,
            last_name,
            title,
            emails,
            phones,
            birthday,
            time_zone,
            locale,
            address,
            source,
            owner_id: d.owner_id,
            tags,
            custom_fields: d.custom_fields.unwrap_or_default(),
            external_ids,
        })
    }
}

/// "Ana Maria Santos" from the parts that are present.
pub fn derive_display_name(first: Option<&str>, middle: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, middle, last].into_iter().flatten().collect();
    if parts.is_empty() { None } else { Some(parts.join(" ")) }
}

fn parse_label(label: Option<String>, field: String, errs: &mut ValidationErrors) -> Option<String> {
    errs.take(text::optional(label, &field, 40)).flatten().map(|l| l.to_lowercase())
}

fn parse_emails(drafts: Vec<EmailDraft>, errs: &mut ValidationErrors) -> Vec<ContactEmail> {
    if drafts.len() > MAX_EMAILS {
        errs.push("emails", format!("at most {MAX_EMAILS} email addresses"));
        return Vec::new();
    }
    let mut out: Vec<ContactEmail> = Vec::with_capacity(drafts.len());
    let mut primary_seen = false;
    for (i, e) in drafts.into_iter().enumerate() {
        let label = parse_label(e.label, format!("emails[{i}].label"), errs);
        let Some(address) = errs.take(EmailAddress::parse_field(&e.address, &format!("emails[{i}].address"))) else {
            continue;
        };
        if out.iter().any(|x| x.address == address) {
            errs.push(format!("emails[{i}].address"), format!("{address} is listed twice"));
            continue;
        }
        let primary = e.primary.unwrap_or(false);
        if primary && primary_seen {
            errs.push(format!("emails[{i}].primary"), "only one email address can be primary");
        }
        primary_seen |= primary;
        out.push(ContactEmail { address, label, primary });
    }
    if !primary_seen && let Some(first) = out.first_mut() {
        first.primary = true;
    }
    out
}

fn parse_phones(drafts: Vec<PhoneDraft>, region: PhoneRegion, errs: &mut ValidationErrors) -> Vec<ContactPhone> {
    if drafts.len() > MAX_PHONES {
        errs.push("phones", format!("at most {MAX_PHONES} phone numbers"));
        return Vec::new();
    }
    let mut out: Vec<ContactPhone> = Vec::with_capacity(drafts.len());
    let mut primary_seen = false;
    for (i, p) in drafts.into_iter().enumerate() {
        let label = parse_label(p.label, format!("phones[{i}].label"), errs);
        let parsed = match PhoneNumber::parse(&p.number, region) {
            Ok(n) => n,
            Err(m) => {
                errs.push(format!("phones[{i}].number"), m);
                continue;
            }
        };
        if out.iter().any(|x| x.e164 == parsed.e164()) {
            errs.push(format!("phones[{i}].number"), format!("{} is listed twice", parsed.e164()));
            continue;
        }
        let primary = p.primary.unwrap_or(false);
        if primary && primary_seen {
            errs.push(format!("phones[{i}].primary"), "only one phone number can be primary");
        }
        primary_seen |= primary;
        out.push(ContactPhone { number: parsed.raw().to_string(), e164: parsed.e164().to_string(), label, primary });
    }
    if !primary_seen && let Some(first) = out.first_mut() {
        first.primary = true;
    }
    out
}

fn parse_tags(raw: Vec<String>, errs: &mut ValidationErrors) -> Vec<TagName> {
    if raw.len() > MAX_TAGS {
        errs.push("tags", format!("at most {MAX_TAGS} tags"));
        return Vec::new();
    }
    let mut out: Vec<TagName> = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        if let Some(tag) = errs.take(TagName::parse(t).map_err(|m| FieldError::new(format!("tags[{i}]"), m)))
            && !out.iter().any(|x| x.key() == tag.key())
        {
            out.push(tag);
        }
    }
    out
}

fn parse_external_ids(raw: Vec<ExternalIdDraft>, errs: &mut ValidationErrors) -> Vec<ExternalId> {
    if raw.len() > MAX_EXTERNAL_IDS {
        errs.push("external_ids", format!("at most {MAX_EXTERNAL_IDS} external ids"));
        return Vec::new();
    }
    let mut out: Vec<ExternalId> = Vec::with_capacity(raw.len());
    for (i, x) in raw.into_iter().enumerate() {
        let source =
            errs.take(text::required(Some(x.source), &format!("external_ids[{i}].source"), 64).map(|s| s.to_lowercase()));
        let id = errs.take(text::required(Some(x.id), &format!("external_ids[{i}].id"), 200));
        if let (Some(source), Some(id)) = (source, id) {
            if out.iter().any(|o| o.source == source) {
                errs.push(
                    format!("external_ids[{i}].source"),
                    format!("'{source}' is listed twice; a contact has one id per source"),
                );
            } else {
                out.push(ExternalId { source, id });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    fn parse(v: Value) -> Result<ContactInput, ValidationErrors> {
        let d: ContactDraft = serde_json::from_value(v).unwrap();
        ContactInput::parse(d, PhoneRegion::default(), today())
    }

    #[test]
    fn the_contract_example_parses() {
        let c = parse(json!({"first_name":"Ana","last_name":"Santos","emails":[{"address":"ana@example.com","primary":true}],
            "phones":[{"number":"+63 917 123 4567"}],"birthday":"--03-14","time_zone":"Asia/Manila","tags":["vip"],"custom_fields":{}}))
        .unwrap();
        assert_eq!(c.display_name, "Ana Santos");
        assert_eq!(c.phones[0].e164, "+639171234567");
        assert!(c.phones[0].primary);
        assert_eq!(c.birthday.unwrap().to_string(), "--03-14");
        assert_eq!(c.tags[0].as_str(), "vip");
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = parse(json!({"emails":[{"address":"ana@"},{"address":"b@x.com","primary":true},{"address":"c@x.com","primary":true}],
            "phones":[{"number":"banana"}],"birthday":"31/12/1990","time_zone":"Nowhere/Land","address":{"country":"Philippines"}}))
        .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["emails[0].address", "emails[2].primary", "phones[0].number", "birthday", "time_zone", "address.country"]
        );
    }

    #[test]
    fn needs_something_to_call_them() {
        let err = parse(json!({})).unwrap_err();
        assert_eq!(err.errors[0].field, "first_name");
        assert_eq!(parse(json!({"emails":[{"address":"x@y.com"}]})).unwrap().display_name, "x@y.com");
    }

    #[test]
    fn patch_rebuilds_derived_display_name_and_merges_custom_fields() {
        let input = parse(json!({"first_name":"Ana","last_name":"Santos","custom_fields":{"a":1,"b":2}})).unwrap();
        let contact = Contact {
            id: Uuid::nil(),
            display_name: input.display_name,
            first_name: input.first_name,
            middle_name: None,
            last_name: input.last_name,
            title: None,
            emails: vec![],
            phones: vec![],
            birthday: None,
            time_zone: None,
            locale: None,
            address: None,
            source: None,
            owner_id: None,
            tags: vec![],
            custom_fields: input.custom_fields,
            external_ids: vec![],
            created_at: chrono::DateTime::<chrono::Utc>::default(),
            updated_at: chrono::DateTime::<chrono::Utc>::default(),
        };
        let patch: ContactPatch = serde_json::from_value(json!({"last_name":"Reyes","custom_fields":{"a":null,"c":3}})).unwrap();
        let draft = patch.apply(&contact);
        let next = ContactInput::parse(draft.clone(), PhoneRegion::default(), today()).unwrap();
        assert_eq!(next.display_name, "Ana Reyes");
        assert_eq!(Value::Object(draft.custom_fields.unwrap()), json!({"a":null,"b":2,"c":3}));
    }
}
