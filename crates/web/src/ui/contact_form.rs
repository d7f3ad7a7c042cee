//! The contact form: reads the posted fields into a draft (or a patch), and maps every error
//! the domain names (`emails[0].address`, `custom_fields.budget`) back to the input it belongs
//! to, with what the person typed kept in place.
//!
//! Blank email and phone rows are dropped before validation and the form is drawn again from
//! the rows that remain, so the indices in error paths always match the rows on the page.

use std::collections::HashMap;

use rapport_core::contact::{Address, Contact, ContactDraft, ContactPatch, EmailDraft, PhoneDraft, derive_display_name};
use rapport_core::custom_field::{CustomFieldDefinition, FieldKind};
use rapport_core::money::Currency;
use rapport_core::{FieldError, Patch};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::form::FormData;

/// One email or phone row.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub value: String,
    pub label: String,
    pub primary: bool,
}

/// A custom field's input.
#[derive(Debug, Clone)]
pub struct CustomInput {
    /// `custom_fields.<key>`: the input's name and the path errors use.
    pub name: String,
    pub id: String,
    pub label: String,
    /// `text`, `number`, … (see [`FieldKind`]).
    pub kind: &'static str,
    pub required: bool,
    pub description: Option<String>,
    pub options: Vec<String>,
    pub value: String,
    /// For money: the currency.
    pub currency: String,
    /// For multi_enum: the ticked options.
    pub selected: Vec<String>,
}

impl CustomInput {
    pub fn is_selected(&self, option: &str) -> bool {
        self.selected.iter().any(|s| s == option) || (self.kind == "enum" && self.value == option)
    }
}

/// Everything the form template shows.
#[derive(Debug, Clone, Default)]
pub struct ContactForm {
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    /// Errors that belong to no single input (or to a list as a whole), shown at the top.
    pub general: Vec<String>,
    pub emails: Vec<Row>,
    pub phones: Vec<Row>,
    pub custom: Vec<CustomInput>,
    /// (id, name) of the users a contact can belong to.
    pub owners: Vec<(String, String)>,
}

/// The id of an input from its name: `emails[0].address` → `f-emails-0-address`.
pub fn input_id(name: &str) -> String {
    let mut id = String::from("f-");
    for c in name.chars() {
        match c {
            '[' | '.' => id.push('-'),
            ']' => {}
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => id.push(c),
            _ => id.push('_'),
        }
    }
    id
}

/// One email or phone row as the template draws it.
#[derive(Debug, Clone)]
pub struct RowView {
    pub index: usize,
    pub value: String,
    pub label: String,
    pub primary: bool,
    pub value_name: String,
    pub value_id: String,
    pub label_name: String,
    pub label_id: String,
    pub error: Option<String>,
}

/// A summary line: the field's message, linking to its input.
#[derive(Debug, Clone)]
pub struct ErrorLink {
    pub id: String,
    pub message: String,
}

impl ContactForm {
    /// The value typed (or stored) for an input.
    pub fn v(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    pub fn err(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }

    pub fn id(&self, name: &str) -> String {
        input_id(name)
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || !self.general.is_empty()
    }

    /// Every error, for the summary at the top of the form.
    pub fn summary(&self) -> Vec<ErrorLink> {
        let mut out: Vec<ErrorLink> = self
            .errors
            .iter()
            .map(|(name, message)| ErrorLink { id: input_id(name), message: format!("{}: {message}", field_label(name)) })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    pub fn email_rows(&self) -> Vec<RowView> {
        self.row_views("emails", "address", &self.emails)
    }

    pub fn phone_rows(&self) -> Vec<RowView> {
        self.row_views("phones", "number", &self.phones)
    }

    fn row_views(&self, list: &str, value_key: &str, rows: &[Row]) -> Vec<RowView> {
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let value_name = format!("{list}[{i}].{value_key}");
                let label_name = format!("{list}[{i}].label");
                let error = self.err(&value_name).or_else(|| self.err(&label_name)).map(str::to_string);
                RowView {
                    index: i,
                    value: r.value.clone(),
                    label: r.label.clone(),
                    primary: r.primary,
                    value_id: input_id(&value_name),
                    label_id: input_id(&label_name),
                    value_name,
                    label_name,
                    error,
                }
            })
            .collect()
    }

    pub fn owner_selected(&self, id: &str) -> bool {
        self.v("owner_id") == id
    }

    /// A blank form, with one empty email and phone row.
    pub fn blank(defs: &[CustomFieldDefinition], owners: Vec<(String, String)>, default_owner: Option<Uuid>) -> Self {
        let mut f = ContactForm { owners, ..Default::default() };
        if let Some(o) = default_owner {
            f.values.insert("owner_id".into(), o.to_string());
        }
        f.emails = vec![Row { primary: true, ..Default::default() }];
        f.phones = vec![Row { primary: true, ..Default::default() }];
        f.custom = defs.iter().map(|d| custom_input(d, None)).collect();
        f
    }

    /// The form filled from a stored contact.
    pub fn of(c: &Contact, defs: &[CustomFieldDefinition], owners: Vec<(String, String)>) -> Self {
        let mut f = ContactForm { owners, ..Default::default() };
        let mut set = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                f.values.insert(k.to_string(), v.to_string());
            }
        };
        set("first_name", c.first_name.as_deref());
        set("last_name", c.last_name.as_deref());
        set("title", c.title.as_deref());
        // A display name that is only the name parts is left blank: it follows them.
        let derived = derive_display_name(c.first_name.as_deref(), c.middle_name.as_deref(), c.last_name.as_deref());
        if derived.as_deref() != Some(c.display_name.as_str()) {
            set("display_name", Some(&c.display_name));
        }
        let birthday = c.birthday.map(|b| b.to_string());
        set("birthday", birthday.as_deref());
        set("time_zone", c.time_zone.as_deref());
        set("locale", c.locale.as_deref());
        set("source", c.source.as_deref());
        let owner = c.owner_id.map(|o| o.to_string());
        set("owner_id", owner.as_deref());
        if let Some(a) = &c.address {
            set("address.street", a.street.as_deref());
            set("address.street2", a.street2.as_deref());
            set("address.city", a.city.as_deref());
            set("address.region", a.region.as_deref());
            set("address.postal_code", a.postal_code.as_deref());
            set("address.country", a.country.as_deref());
        }
        let tags = c.tags.join(", ");
        set("tags", Some(&tags));
        f.emails = c
            .emails
            .iter()
            .map(|e| Row { value: e.address.to_string(), label: e.label.clone().unwrap_or_default(), primary: e.primary })
            .collect();
        f.emails.push(Row { primary: f.emails.is_empty(), ..Default::default() });
        f.phones = c
            .phones
            .iter()
            .map(|p| Row { value: p.number.clone(), label: p.label.clone().unwrap_or_default(), primary: p.primary })
            .collect();
        f.phones.push(Row { primary: f.phones.is_empty(), ..Default::default() });
        f.custom = defs.iter().map(|d| custom_input(d, c.custom_fields.get(&d.key))).collect();
        f
    }
}

fn field_label(name: &str) -> String {
    let base = name.split(['[', '.']).next().unwrap_or(name);
    let index = name.split_once('[').and_then(|(_, r)| r.split_once(']')).and_then(|(n, _)| n.parse::<usize>().ok());
    let what = match base {
        "first_name" => "First name".to_string(),
        "last_name" => "Last name".to_string(),
        "display_name" => "Display name".to_string(),
        "emails" => "Email".to_string(),
        "phones" => "Phone".to_string(),
        "time_zone" => "Time zone".to_string(),
        "owner_id" => "Owner".to_string(),
        "address" => format!("Address {}", name.rsplit('.').next().unwrap_or("").replace('_', " ")),
        "custom_fields" => name.trim_start_matches("custom_fields.").replace('_', " "),
        other => super::format::label(other),
    };
    match index {
        Some(i) if i > 0 && matches!(base, "emails" | "phones") => format!("{what} {}", i + 1),
        _ => what,
    }
}

fn custom_input(d: &CustomFieldDefinition, stored: Option<&Value>) -> CustomInput {
    let name = format!("custom_fields.{}", d.key);
    let mut input = CustomInput {
        id: input_id(&name),
        name,
        label: d.label.clone(),
        kind: d.kind.as_str(),
        required: d.required,
        description: d.description.clone(),
        options: d.options.clone(),
        value: String::new(),
        currency: String::new(),
        selected: Vec::new(),
    };
    match (d.kind, stored) {
        (_, None | Some(Value::Null)) => {}
        (FieldKind::Money, Some(v)) => {
            let cur = v.get("currency").and_then(Value::as_str).unwrap_or("");
            let minor = v.get("amount_minor").and_then(Value::as_i64).unwrap_or(0);
            input.currency = cur.to_string();
            input.value = match Currency::parse(cur) {
                Ok(c) => format!("{:.*}", c.exponent() as usize, c.to_major(minor)),
                Err(_) => minor.to_string(),
            };
        }
        (FieldKind::MultiEnum, Some(Value::Array(items))) => {
            input.selected = items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect();
        }
        (_, Some(Value::String(s))) => input.value = s.clone(),
        (_, Some(Value::Bool(b))) => input.value = b.to_string(),
        (_, Some(v)) => input.value = v.to_string(),
    }
    input
}

/// What a posted form says: the draft for the store, the form to draw again, and problems
/// found before the domain looked (a number that is not a number).
pub struct Submitted {
    pub draft: ContactDraft,
    /// Every custom field of the catalogue: its value, or `Null` when left empty.
    pub custom_fields: Map<String, Value>,
    pub form: ContactForm,
    pub errors: Vec<FieldError>,
    /// Whether the display name was left blank (it then follows the name parts).
    pub display_name_blank: bool,
}

fn rows(form: &FormData, list: &str, value_key: &str, primary_key: &str) -> Vec<Row> {
    let primary: Option<usize> = form.get(primary_key).and_then(|p| p.parse().ok());
    let mut out = Vec::new();
    for i in 0..50 {
        let (v, l) = (format!("{list}[{i}].{value_key}"), format!("{list}[{i}].label"));
        let (Some(value), label) = (form.get(&v), form.get(&l)) else {
            if form.get(&l).is_none() {
                break;
            }
            continue;
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            continue;
        }
        out.push(Row { value, label: label.unwrap_or("").trim().to_string(), primary: primary == Some(i) });
    }
    if !out.iter().any(|r| r.primary)
        && let Some(first) = out.first_mut()
    {
        first.primary = true;
    }
    out
}

/// Reads a posted contact form.
pub fn read(form: &FormData, defs: &[CustomFieldDefinition], owners: Vec<(String, String)>) -> Submitted {
    let mut f = ContactForm { owners, ..Default::default() };
    let mut errors = Vec::new();
    for name in [
        "first_name",
        "last_name",
        "display_name",
        "title",
        "birthday",
        "time_zone",
        "locale",
        "source",
        "owner_id",
        "tags",
        "address.street",
        "address.street2",
        "address.city",
        "address.region",
        "address.postal_code",
        "address.country",
    ] {
        f.values.insert(name.to_string(), form.text(name));
    }
    f.emails = rows(form, "emails", "address", "email_primary");
    f.phones = rows(form, "phones", "number", "phone_primary");

    let owner_id = match form.opt("owner_id") {
        None => None,
        Some(raw) => match Uuid::parse_str(&raw) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(FieldError::new("owner_id", "choose an owner from the list"));
                None
            }
        },
    };
    let tags: Vec<String> = form.text("tags").split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect();
    let address = Address {
        street: form.opt("address.street"),
        street2: form.opt("address.street2"),
        city: form.opt("address.city"),
        region: form.opt("address.region"),
        postal_code: form.opt("address.postal_code"),
        country: form.opt("address.country"),
    };

    let mut custom_fields = Map::new();
    for d in defs {
        let name = format!("custom_fields.{}", d.key);
        let mut input = custom_input(d, None);
        let value = match d.kind {
            FieldKind::MultiEnum => {
                input.selected = form.all(&name).into_iter().map(str::to_string).collect();
                if input.selected.is_empty() {
                    Value::Null
                } else {
                    Value::Array(input.selected.iter().cloned().map(Value::String).collect())
                }
            }
            kind => {
                input.value = form.text(&name);
                input.currency = form.text(&format!("{name}.currency")).to_ascii_uppercase();
                match typed(kind, &input.value, &input.currency) {
                    Ok(v) => v,
                    Err(m) => {
                        errors.push(FieldError::new(name.clone(), m));
                        Value::Null
                    }
                }
            }
        };
        custom_fields.insert(d.key.clone(), value);
        f.custom.push(input);
    }

    let display_name_blank = form.opt("display_name").is_none();
    let draft = ContactDraft {
        first_name: form.opt("first_name"),
        middle_name: None,
        last_name: form.opt("last_name"),
        display_name: form.opt("display_name"),
        title: form.opt("title"),
        emails: Some(
            f.emails
                .iter()
                .map(|r| EmailDraft {
                    address: r.value.clone(),
                    label: Some(r.label.clone()).filter(|l| !l.is_empty()),
                    primary: Some(r.primary),
                })
                .collect(),
        ),
        phones: Some(
            f.phones
                .iter()
                .map(|r| PhoneDraft {
                    number: r.value.clone(),
                    label: Some(r.label.clone()).filter(|l| !l.is_empty()),
                    primary: Some(r.primary),
                })
                .collect(),
        ),
        birthday: form.opt("birthday"),
        time_zone: form.opt("time_zone"),
        locale: form.opt("locale"),
        address: Some(address),
        source: form.opt("source"),
        owner_id,
        tags: Some(tags),
        custom_fields: Some(custom_fields.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect()),
        external_ids: None,
    };
    Submitted { draft, custom_fields, form: f, errors, display_name_blank }
}

/// A custom field's typed text as JSON; empty is `Null`.
fn typed(kind: FieldKind, raw: &str, currency: &str) -> Result<Value, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    match kind {
        FieldKind::Number => {
            let cleaned = raw.replace([',', ' '], "");
            if let Ok(i) = cleaned.parse::<i64>() {
                return Ok(Value::from(i));
            }
            cleaned
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("'{raw}' is not a number"))
        }
        FieldKind::Money => {
            let cur = Currency::parse(if currency.is_empty() { "" } else { currency })
                .map_err(|_| "give the currency too, e.g. EUR".to_string())?;
            let amount: f64 =
                raw.replace([',', ' '], "").parse().map_err(|_| format!("'{raw}' is not an amount such as 1250.00"))?;
            let minor = cur.to_minor(amount)?;
            Ok(serde_json::json!({"amount_minor": minor, "currency": cur.as_str()}))
        }
        FieldKind::Bool => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("choose yes or no".into()),
        },
        _ => Ok(Value::String(raw.to_string())),
    }
}

impl Submitted {
    /// The form drawn again with `errors` next to their inputs.
    pub fn with_errors(mut self, errors: &[FieldError]) -> ContactForm {
        let inputs: Vec<String> = self.form.custom.iter().map(|c| c.name.clone()).collect();
        for e in errors.iter().chain(self.errors.iter()) {
            let name = input_for(&e.field, &self.form, &inputs);
            match name {
                Some(n) => {
                    self.form.errors.entry(n).or_insert_with(|| e.message.clone());
                }
                None => self.form.general.push(format!("{}: {}", field_label(&e.field), e.message)),
            }
        }
        // Keep a spare row to type into.
        self.form.emails.push(Row { primary: self.form.emails.is_empty(), ..Default::default() });
        self.form.phones.push(Row { primary: self.form.phones.is_empty(), ..Default::default() });
        self.form
    }

    /// The patch that makes a stored contact what the form says (external ids and the middle
    /// name, which the form does not show, stay as they are).
    pub fn patch(self) -> ContactPatch {
        let d = self.draft;
        let p = |v: Option<String>| v.map_or(Patch::Null, Patch::Value);
        ContactPatch {
            first_name: p(d.first_name),
            middle_name: Patch::Missing,
            last_name: p(d.last_name),
            display_name: if self.display_name_blank { Patch::Null } else { p(d.display_name) },
            title: p(d.title),
            emails: Patch::Value(d.emails.unwrap_or_default()),
            phones: Patch::Value(d.phones.unwrap_or_default()),
            birthday: p(d.birthday),
            time_zone: p(d.time_zone),
            locale: p(d.locale),
            address: d.address.map_or(Patch::Null, Patch::Value),
            source: p(d.source),
            owner_id: d.owner_id.map_or(Patch::Null, Patch::Value),
            tags: Patch::Value(d.tags.unwrap_or_default()),
            custom_fields: Some(self.custom_fields),
            external_ids: Patch::Missing,
        }
    }
}

/// The input an error path belongs to, or `None` for the summary only.
fn input_for(field: &str, form: &ContactForm, custom: &[String]) -> Option<String> {
    let direct = [
        "first_name",
        "last_name",
        "display_name",
        "title",
        "birthday",
        "time_zone",
        "locale",
        "source",
        "owner_id",
        "address.street",
        "address.street2",
        "address.city",
        "address.region",
        "address.postal_code",
        "address.country",
    ];
    if direct.contains(&field) || custom.iter().any(|c| c == field) {
        return Some(field.to_string());
    }
    if field == "tags" || field.starts_with("tags[") {
        return Some("tags".into());
    }
    for (list, value_key, rows) in [("emails", "address", &form.emails), ("phones", "number", &form.phones)] {
        if let Some(rest) = field.strip_prefix(&format!("{list}["))
            && let Some((i, sub)) = rest.split_once(']')
            && let Ok(i) = i.parse::<usize>()
            && i < rows.len()
        {
            let sub = sub.trim_start_matches('.');
            let key = if sub == "label" { "label" } else { value_key };
            return Some(format!("{list}[{i}].{key}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(key: &str, kind: FieldKind) -> CustomFieldDefinition {
        CustomFieldDefinition {
            id: Uuid::nil(),
            record_type: rapport_core::custom_field::RecordType::Contact,
            key: key.into(),
            label: key.into(),
            kind,
            required: false,
            options: vec![],
            description: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn blank_rows_drop_and_errors_land_on_their_inputs() {
        let body = "first_name=Ana&emails%5B0%5D.address=&emails%5B0%5D.label=&emails%5B1%5D.address=ana%40&emails%5B1%5D.label=work\
                    &email_primary=1&phones%5B0%5D.number=&phones%5B0%5D.label=&custom_fields.budget=lots&custom_fields.since=2020-01-01";
        let form = FormData::parse(body.as_bytes());
        let defs = [def("budget", FieldKind::Number), def("since", FieldKind::Date)];
        let s = read(&form, &defs, vec![]);
        assert_eq!(s.form.emails.len(), 1);
        assert!(s.form.emails[0].primary);
        assert_eq!(s.errors[0].field, "custom_fields.budget");
        assert_eq!(s.custom_fields["since"], Value::String("2020-01-01".into()));
        let store_errors =
            [FieldError::new("emails[0].address", "is not an email address"), FieldError::new("emails", "too many")];
        let f = s.with_errors(&store_errors);
        assert_eq!(f.err("emails[0].address"), Some("is not an email address"));
        assert_eq!(f.v("first_name"), "Ana");
        assert!(f.err("custom_fields.budget").is_some());
        assert_eq!(f.general.len(), 1);
        assert_eq!(f.emails.len(), 2, "the typed row and a spare one");
        assert_eq!(input_id("emails[1].address"), "f-emails-1-address");
    }

    #[test]
    fn custom_values_are_typed() {
        assert_eq!(typed(FieldKind::Number, "1,250", ""), Ok(Value::from(1250)));
        assert_eq!(typed(FieldKind::Number, "2.5", ""), Ok(serde_json::json!(2.5)));
        assert!(typed(FieldKind::Number, "x", "").is_err());
        assert_eq!(typed(FieldKind::Money, "12.50", "eur"), Ok(serde_json::json!({"amount_minor": 1250, "currency": "EUR"})));
        assert!(typed(FieldKind::Money, "12.50", "").is_err());
        assert_eq!(typed(FieldKind::Text, " ", ""), Ok(Value::Null));
    }
}
