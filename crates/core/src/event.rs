//! Events: every interaction, from any channel or system, as an append-only fact on a
//! person's timeline.
//!
//! An event arrives as JSON (the ingest API, imports, Rapport's own staff actions) and is
//! parsed here once into a [`NewEvent`]: the envelope is checked, a built-in type's payload
//! is validated field by field, and what the event means for the person's profile is read off
//! into an [`Effect`], so that the storage layer never looks inside a payload again.

use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ValidationErrors;
use crate::money::{Currency, Money};
use crate::{EmailAddress, PhoneNumber, PhoneRegion, Timestamp};

/// Most events one ingest request may carry.
pub const MAX_BATCH: usize = 10_000;
/// Longest sender-supplied event id.
pub const MAX_ID_LEN: usize = 200;
/// How far ahead of the server's clock an event may claim to have happened (clock skew).
pub const MAX_FUTURE_SKEW: chrono::Duration = chrono::Duration::hours(24);
/// Largest payload accepted, in bytes of JSON.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Where an interaction happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Web,
    Email,
    Sms,
    Chat,
    Phone,
    App,
    Store,
    Social,
    Import,
    System,
}

impl Channel {
    pub const ALL: [Channel; 10] = [
        Channel::Web,
        Channel::Email,
        Channel::Sms,
        Channel::Chat,
        Channel::Phone,
        Channel::App,
        Channel::Store,
        Channel::Social,
        Channel::Import,
        Channel::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Chat => "chat",
            Channel::Phone => "phone",
            Channel::App => "app",
            Channel::Store => "store",
            Channel::Social => "social",
            Channel::Import => "import",
            Channel::System => "system",
        }
    }

    pub fn parse(raw: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == raw)
    }
}

/// Who an event is about, as the sender knows them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContactRef {
    Id(Uuid),
    Email(EmailAddress),
    /// E.164.
    Phone(String),
    External {
        source: String,
        id: String,
    },
}

/// Names to give a person created as a lead from an event (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadNames {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    pub sku: String,
    pub name: Option<String>,
    pub category: Option<String>,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

/// A product mentioned by an event (viewed, asked about, clicked, left in a cart).
#[derive(Debug, Clone, PartialEq)]
pub struct ProductMention {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
}

/// What an event means for the person's profile. Applying effects is commutative, so
/// events may arrive late and in any order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A completed purchase.
    Order {
        money: Money,
        items: Vec<LineItem>,
    },
    /// Money given back.
    Refund {
        money: Money,
    },
    /// The person showed interest in products or categories (`weight` per mention).
    Interest {
        mentions: Vec<ProductMention>,
        weight: f64,
    },
    /// A visit in person (a check-in at a store, a service appointment).
    Visit,
    EmailOpened,
    EmailClicked {
        mentions: Vec<ProductMention>,
    },
    /// Something the person did themselves (a message, a call, a form, feedback).
    Engagement {
        mentions: Vec<ProductMention>,
    },
    /// Something that happened to the person without them acting (a message sent to them,
    /// a page view counts as activity but not as engagement).
    Activity,
    /// Outbound messages and system records: on the timeline, no effect on the profile.
    None,
}

impl Effect {
    /// Whether the person did something (counts for first/last seen).
    pub fn is_activity(&self) -> bool {
        !matches!(self, Effect::None)
    }

    /// Whether the person reached out or responded (counts for last engagement).
    pub fn is_engagement(&self) -> bool {
        matches!(
            self,
            Effect::Order { .. }
                | Effect::Visit
                | Effect::EmailOpened
                | Effect::EmailClicked { .. }
                | Effect::Engagement { .. }
                | Effect::Interest { .. }
        )
    }
}

/// An event ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The sender's id, which makes delivery idempotent.
    pub source_id: Option<String>,
    pub contact: ContactRef,
    pub lead: LeadNames,
    pub kind: String,
    pub occurred_at: Timestamp,
    pub channel: Channel,
    /// The money the event is about (an order's total, a refund), in minor units.
    pub money: Option<Money>,
    /// The payload as sent, validated.
    pub payload: Map<String, Value>,
    pub effect: Effect,
}

/// The body of `POST /api/v1/events`. Events stay raw JSON until each is parsed on its own,
/// so that one bad event is reported alone instead of failing the whole request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    pub events: Vec<Value>,
    /// Create a lead for a person no event reference matches, instead of rejecting the event.
    #[serde(default)]
    pub create_contact: bool,
}

/// Built-in types: their payloads are validated and they feed the profile.
pub const BUILT_IN_TYPES: &[&str] = &[
    "order.completed",
    "order.refunded",
    "product.viewed",
    "page.viewed",
    "cart.abandoned",
    "visit.checked_in",
    "email.sent",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.auto_replied",
    "email.unsubscribed",
    "email.subscribed",
    "email.replied",
    "email.auto_replied",
    "sms.sent",
    "sms.received",
    "chat.message",
    "call.logged",
    "form.submitted",
    "support.requested",
    "feedback.given",
    "social.mentioned",
];

/// Types only Rapport itself records.
pub const SYSTEM_TYPES: &[&str] = &[
    "consent.changed",
    "lifecycle.changed",
    "note.added",
    "privacy.changed",
    "segment.entered",
    "segment.exited",
    "task.created",
    "task.completed",
    "workflow.action",
];

/// Namespaces owned by the built-in and system types: a custom type may not use them, so a
/// typo such as `order.complete` is caught instead of stored as a custom event.
const RESERVED_NAMESPACES: &[&str] = &[
    "order",
    "product",
    "page",
    "cart",
    "visit",
    "email",
    "sms",
    "chat",
    "call",
    "form",
    "support",
    "feedback",
    "social",
    "lifecycle",
    "note",
    "segment",
    "task",
    "workflow",
];

/// Checks an event type name: a built-in, or a custom `namespace.name` in lowercase.
pub fn check_type(raw: &str) -> Result<(), String> {
    if BUILT_IN_TYPES.contains(&raw) {
        return Ok(());
    }
    if SYSTEM_TYPES.contains(&raw) {
        return Err(format!("{raw} is recorded by Rapport itself and cannot be sent"));
    }
    if raw.len() > 100 {
        return Err("must be at most 100 characters".into());
    }
    let mut parts = raw.split('.');
    let namespace = parts.next().unwrap_or_default();
    let well_formed = raw.contains('.')
        && raw.split('.').all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if !well_formed {
        return Err(format!(
            "'{raw}' is not a known type; custom types are namespaced lowercase names such as shop.wishlist_added"
        ));
    }
    if RESERVED_NAMESPACES.contains(&namespace) {
        let known: Vec<&str> = BUILT_IN_TYPES.iter().copied().filter(|t| t.starts_with(&format!("{namespace}."))).collect();
        return Err(format!("unknown {namespace} event '{raw}'; the {namespace} types are: {}", known.join(", ")));
    }
    Ok(())
}

/// Built-in types that never count as the person doing something: messages to them, delivery
/// reports, a mailbox's automatic answers and subscription changes. Chats and calls count or
/// not by their direction; refunds count when they carry an amount.
const NOT_ALWAYS_ACTIVITY: &[&str] = &[
    "email.sent",
    "email.bounced",
    "email.auto_replied",
    "email.unsubscribed",
    "email.subscribed",
    "sms.sent",
    "chat.message",
    "call.logged",
    "order.refunded",
];

/// Whether every accepted event of type `kind` is activity, i.e. moves the profile's last seen
/// time (see [`payload_effect`] and `Effect::is_activity`). Custom types are; system types
/// (staff actions, segment moves) are not, as they do not go through ingest.
pub fn always_activity(kind: &str) -> bool {
    !NOT_ALWAYS_ACTIVITY.contains(&kind) && !SYSTEM_TYPES.contains(&kind)
}

/// Checks an event type named in a filter: any built-in or system type, or a well-formed
/// custom type (whether or not such events exist yet).
pub fn check_selectable_type(raw: &str) -> Result<(), String> {
    if SYSTEM_TYPES.contains(&raw) {
        return Ok(());
    }
    check_type(raw)
}

/// The channel a built-in type happens on when the sender does not say.
fn default_channel(kind: &str) -> Option<Channel> {
    Some(match kind.split('.').next()? {
        "email" => Channel::Email,
        "sms" => Channel::Sms,
        "chat" => Channel::Chat,
        "call" => Channel::Phone,
        "page" | "product" | "cart" | "form" => Channel::Web,
        "visit" => Channel::Store,
        "social" => Channel::Social,
        _ => return None,
    })
}

/// Parses one raw event. `now` bounds how far in the future it may claim to be.
pub fn parse_event(raw: Value, region: PhoneRegion, now: Timestamp) -> Result<NewEvent, ValidationErrors> {
    let Value::Object(mut obj) = raw else {
        return Err(ValidationErrors::single("", "each event must be a JSON object"));
    };
    let mut errs = ValidationErrors::default();
    for key in obj.keys() {
        if !matches!(key.as_str(), "id" | "type" | "contact" | "occurred_at" | "channel" | "payload") {
            errs.push(key.clone(), "unknown field; an event has id, type, contact, occurred_at, channel and payload");
        }
    }

    let source_id = match obj.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let s = s.trim().to_string();
            if s.is_empty() {
                errs.push("id", "must not be empty (leave it out to let Rapport assign one)");
                None
            } else if s.len() > MAX_ID_LEN {
                errs.push("id", format!("must be at most {MAX_ID_LEN} characters"));
                None
            } else {
                Some(s)
            }
        }
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            errs.push("id", "must be a string");
            None
        }
    };

    let kind = match obj.remove("type") {
        Some(Value::String(s)) => match check_type(&s) {
            Ok(()) => Some(s),
            Err(m) => {
                errs.push("type", m);
                None
            }
        },
        None | Some(Value::Null) => {
            errs.push("type", "is required, e.g. order.completed");
            None
        }
        Some(_) => {
            errs.push("type", "must be a string");
            None
        }
    };

    let (contact, lead) = match obj.remove("contact") {
        Some(v) => match parse_contact_ref(v, region) {
            Ok(r) => r,
            Err(e) => {
                errs.errors.extend(e.errors);
                (ContactRef::Id(Uuid::nil()), LeadNames::default())
            }
        },
        None => {
            errs.push("contact", "is required: give one of id, email, phone or external_id");
            (ContactRef::Id(Uuid::nil()), LeadNames::default())
        }
    };

    let occurred_at = match obj.remove("occurred_at") {
        None | Some(Value::Null) => now,
        Some(Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => {
                let t = t.to_utc();
                if t > now + MAX_FUTURE_SKEW {
                    errs.push("occurred_at", format!("{s} is in the future (the server's time is {})", now.to_rfc3339()));
                }
                t
            }
            Err(_) => {
                errs.push("occurred_at", "must be an RFC 3339 time with a zone, e.g. 2026-11-01T10:00:00Z");
                now
            }
        },
        Some(_) => {
            errs.push("occurred_at", "must be an RFC 3339 time string");
            now
        }
    };

    let channel = match obj.remove("channel") {
        Some(Value::String(s)) => match Channel::parse(&s) {
            Some(Channel::System) => {
                errs.push("channel", "system is for events Rapport records itself");
                None
            }
            Some(c) => Some(c),
            None => {
                let names: Vec<&str> = Channel::ALL[..9].iter().map(|c| c.as_str()).collect();
                errs.push("channel", format!("unknown channel '{s}'; use one of {}", names.join(", ")));
                None
            }
        },
        None | Some(Value::Null) => match kind.as_deref().and_then(default_channel) {
            Some(c) => Some(c),
            None if kind.is_some() => {
                errs.push("channel", "is required for this type (web, email, sms, chat, phone, app, store, social or import)");
                None
            }
            None => None,
        },
        Some(_) => {
            errs.push("channel", "must be a string");
            None
        }
    };

    let payload = match obj.remove("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            errs.push("payload", "must be a JSON object");
            Map::new()
        }
    };

    let (money, effect) = match &kind {
        Some(k) => match payload_effect(k, &payload) {
            Ok(x) => x,
            Err(e) => {
                errs.errors.extend(e.errors);
                (None, Effect::None)
            }
        },
        None => (None, Effect::None),
    };
    if errs.is_empty() && serde_json::to_string(&payload).map(|s| s.len()).unwrap_or(0) > MAX_PAYLOAD_BYTES {
        errs.push("payload", format!("is larger than {} KiB", MAX_PAYLOAD_BYTES / 1024));
    }
    errs.into_result()?;
    Ok(NewEvent {
        source_id,
        contact,
        lead,
        kind: kind.unwrap_or_default(),
        occurred_at,
        channel: channel.unwrap_or(Channel::Import),
        money,
        payload,
        effect,
    })
}

fn parse_contact_ref(v: Value, region: PhoneRegion) -> Result<(ContactRef, LeadNames), ValidationErrors> {
    let Value::Object(obj) = v else {
        return Err(ValidationErrors::single("contact", "must be an object with one of id, email, phone or external_id"));
    };
    let mut errs = ValidationErrors::default();
    let mut refs = Vec::new();
    let mut lead = LeadNames::default();
    for (key, value) in obj {
        let field = format!("contact.{key}");
        match key.as_str() {
            "id" => match value.as_str().map(Uuid::parse_str) {
                Some(Ok(id)) => refs.push(ContactRef::Id(id)),
                _ => errs.push(field, "must be a contact id (a UUID)"),
            },
            "email" => match value.as_str().map(EmailAddress::parse) {
                Some(Ok(e)) => refs.push(ContactRef::Email(e)),
                Some(Err(m)) => errs.push(field, m),
                None => errs.push(field, "must be a string"),
            },
            "phone" => match value.as_str().map(|p| PhoneNumber::parse(p, region)) {
                Some(Ok(p)) => refs.push(ContactRef::Phone(p.e164().to_string())),
                Some(Err(m)) => errs.push(field, m),
                None => errs.push(field, "must be a string"),
            },
            "external_id" => {
                let source = value.get("source").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
                let id = match value.get("id") {
                    Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                match (source, id) {
                    (Some(s), Some(i)) => refs.push(ContactRef::External { source: s.to_string(), id: i }),
                    _ => errs.push(field, "must be {\"source\": \"…\", \"id\": \"…\"}"),
                }
            }
            "first_name" | "last_name" | "name" => match value {
                Value::String(s) if !s.trim().is_empty() => {
                    let s = Some(s.trim().to_string());
                    match key.as_str() {
                        "first_name" => lead.first_name = s,
                        "last_name" => lead.last_name = s,
                        _ => lead.display_name = s,
                    }
                }
                Value::Null => {}
                _ => errs.push(field, "must be a non-empty string"),
            },
            _ => errs.push(
                field,
                "unknown field; use id, email, phone or external_id (and first_name, last_name, name for a new lead)",
            ),
        }
    }
    errs.into_result()?;
    // With several references, the most precise one decides: id, external id, email, phone.
    refs.sort_by_key(|r| match r {
        ContactRef::Id(_) => 0,
        ContactRef::External { .. } => 1,
        ContactRef::Email(_) => 2,
        ContactRef::Phone(_) => 3,
    });
    match refs.into_iter().next() {
        Some(r) => Ok((r, lead)),
        None => Err(ValidationErrors::single("contact", "needs one of id, email, phone or external_id")),
    }
}

/// Reads a payload field path for error messages.
fn at(path: &str) -> String {
    format!("payload.{path}")
}

/// A small typed reader over a payload object that collects every problem.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
    errs: &'a mut ValidationErrors,
}

impl<'a> Fields<'a> {
    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() { at(key) } else { format!("{}.{key}", self.prefix) }
    }

    /// The value at `key`, or `None` when it is absent or null (an error when `required`).
    fn present(&mut self, key: &str, required: bool) -> Option<&'a Value> {
        match self.obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    let p = self.path(key);
                    self.errs.push(p, "is required");
                }
                None
            }
            some => some,
        }
    }

    fn text(&mut self, key: &str, required: bool) -> Option<String> {
        match self.present(key, required)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                let p = self.path(key);
                self.errs.push(p, "must be a non-empty string");
                None
            }
        }
    }

    fn number(&mut self, key: &str, required: bool) -> Option<f64> {
        match self.present(key, required)? {
            Value::Number(n) => n.as_f64(),
            _ => {
                let p = self.path(key);
                self.errs.push(p, "must be a number");
                None
            }
        }
    }

    fn integer(&mut self, key: &str, min: i64, max: i64, required: bool) -> Option<i64> {
        let v = self.number(key, required)?;
        if v.fract() != 0.0 || v < min as f64 || v > max as f64 {
            let p = self.path(key);
            self.errs.push(p, format!("must be a whole number from {min} to {max}"));
            return None;
        }
        Some(v as i64)
    }

    fn one_of(&mut self, key: &str, options: &[&str], required: bool) -> Option<String> {
        let v = self.text(key, required)?;
        if options.contains(&v.as_str()) {
            Some(v)
        } else {
            let p = self.path(key);
            self.errs.push(p, format!("must be one of {}", options.join(", ")));
            None
        }
    }

    fn amount(&mut self, key: &str, currency: Option<Currency>, required: bool) -> Option<i64> {
        let v = self.number(key, required)?;
        let currency = currency?;
        match currency.to_minor(v) {
            Ok(m) if m >= 0 => Some(m),
            Ok(_) => {
                let p = self.path(key);
                self.errs.push(p, "must not be negative");
                None
            }
            Err(m) => {
                let p = self.path(key);
                self.errs.push(p, m);
                None
            }
        }
    }

    fn currency(&mut self) -> Option<Currency> {
        let raw = self.text("currency", true)?;
        match Currency::parse(&raw) {
            Ok(c) => Some(c),
            Err(m) => {
                let p = self.path("currency");
                self.errs.push(p, m);
                None
            }
        }
    }

    fn product(&mut self) -> ProductMention {
        ProductMention {
            sku: self.text("sku", false),
            name: self.text("name", false),
            category: self.text("category", false).map(|c| c.to_lowercase()),
        }
    }
}

/// Validates a built-in type's payload and says what the event does to the profile.
/// Custom types keep any JSON object and count as activity.
pub fn payload_effect(kind: &str, payload: &Map<String, Value>) -> Result<(Option<Money>, Effect), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let mut f = Fields { obj: payload, prefix: String::new(), errs: &mut errs };
    let out = match kind {
        "order.completed" => {
            let currency = f.currency();
            let total = f.amount("total", currency, true);
            f.text("store", false);
            let mut items = Vec::new();
            match payload.get("items") {
                None | Some(Value::Null) => {}
                Some(Value::Array(list)) => {
                    for (i, item) in list.iter().enumerate() {
                        let prefix = at(&format!("items[{i}]"));
                        let Value::Object(obj) = item else {
                            f.errs.push(prefix, "must be an object with sku, name, category, quantity and price");
                            continue;
                        };
                        let mut g = Fields { obj, prefix, errs: f.errs };
                        let sku = g.text("sku", true);
                        let name = g.text("name", false);
                        let category = g.text("category", false).map(|c| c.to_lowercase());
                        let quantity =
                            if obj.contains_key("quantity") { g.integer("quantity", 1, 1_000_000, true) } else { Some(1) };
                        let price = g.amount("price", currency, !obj.contains_key("unit_price"));
                        let price = price.or_else(|| g.amount("unit_price", currency, false));
                        if let (Some(sku), Some(quantity)) = (sku, quantity) {
                            items.push(LineItem { sku, name, category, quantity, unit_price_minor: price.unwrap_or(0) });
                        }
                    }
                }
                Some(_) => f.errs.push(at("items"), "must be a list of line items"),
            }
            match (currency, total) {
                (Some(c), Some(t)) => (Some(Money::new(c, t)), Effect::Order { money: Money::new(c, t), items }),
                _ => (None, Effect::None),
            }
        }
        "order.refunded" => {
            let currency = f.currency();
            let total = f.amount("total", currency, !payload.contains_key("amount"));
            let total = total.or_else(|| f.amount("amount", currency, false));
            f.text("order_id", false);
            match (currency, total) {
                (Some(c), Some(t)) => (Some(Money::new(c, t)), Effect::Refund { money: Money::new(c, t) }),
                _ => (None, Effect::None),
            }
        }
        "product.viewed" => {
            let p = f.product();
            if p.sku.is_none() && p.name.is_none() {
                f.errs.push(at("sku"), "a product view needs the product's sku (or at least its name)");
            }
            (None, Effect::Interest { mentions: vec![p], weight: 1.0 })
        }
        "cart.abandoned" => {
            let mut mentions = Vec::new();
            if let Some(Value::Array(list)) = payload.get("items") {
                for (i, item) in list.iter().enumerate() {
                    match item {
                        Value::Object(obj) => {
                            let mut g = Fields { obj, prefix: at(&format!("items[{i}]")), errs: f.errs };
                            mentions.push(g.product());
                        }
                        _ => f.errs.push(at(&format!("items[{i}]")), "must be an object with sku, name and category"),
                    }
                }
            } else if payload.contains_key("items") {
                f.errs.push(at("items"), "must be a list of items");
            }
            if let Some(c) = payload.get("currency").filter(|v| !v.is_null()) {
                let currency = c.as_str().and_then(|c| Currency::parse(c).ok());
                if currency.is_none() {
                    f.errs.push(at("currency"), "must be an ISO 4217 code such as EUR");
                }
                f.amount("total", currency, false);
            }
            (None, Effect::Interest { mentions, weight: 3.0 })
        }
        "page.viewed" => {
            f.text("url", false);
            let mention = ProductMention { sku: None, name: None, category: f.text("category", false).map(|c| c.to_lowercase()) };
            if mention.category.is_some() {
                (None, Effect::Interest { mentions: vec![mention], weight: 0.5 })
            } else {
                (None, Effect::Activity)
            }
        }
        "visit.checked_in" => {
            f.text("location", false);
            (None, Effect::Visit)
        }
        "email.sent" | "sms.sent" => {
            f.text("subject", false);
            (None, Effect::None)
        }
        "email.bounced" => {
            f.one_of("kind", &["hard", "soft"], false);
            (None, Effect::None)
        }
        // Without a topic, an unsubscribe is from everything.
        "email.unsubscribed" => {
            f.text("topic", false);
            (None, Effect::None)
        }
        "email.subscribed" => {
            f.text("topic", true);
            (None, Effect::None)
        }
        "email.opened" => (None, Effect::EmailOpened),
        // An out-of-office or other automatic answer: on the timeline, but nobody answered, so
        // it is neither engagement nor a reply that stops outreach.
        "email.auto_replied" => {
            f.text("subject", false);
            (None, Effect::None)
        }
        // The customer's answer: engagement, which pending outreach listens for.
        "email.replied" => {
            f.text("subject", false);
            (None, Effect::Engagement { mentions: vec![] })
        }
        "email.clicked" => {
            f.text("url", false);
            let p = f.product();
            let mentions = if p.sku.is_some() || p.category.is_some() { vec![p] } else { vec![] };
            (None, Effect::EmailClicked { mentions })
        }
        "sms.received" | "chat.message" | "form.submitted" | "support.requested" => {
            if kind == "chat.message" {
                f.one_of("direction", &["inbound", "outbound"], false);
            }
            let p = f.product();
            let mentions = if p.sku.is_some() || p.category.is_some() { vec![p] } else { vec![] };
            if kind == "chat.message" && payload.get("direction").and_then(Value::as_str) == Some("outbound") {
                (None, Effect::None)
            } else {
                (None, Effect::Engagement { mentions })
            }
        }
        "call.logged" => {
            let direction = f.one_of("direction", &["inbound", "outbound"], true);
            f.integer("duration_seconds", 0, 86_400, false);
            f.one_of("outcome", &["connected", "voicemail", "no_answer", "busy", "wrong_number"], false);
            let reached = payload.get("outcome").and_then(Value::as_str).is_none_or(|o| o == "connected");
            if direction.as_deref() == Some("inbound") || reached {
                (None, Effect::Engagement { mentions: vec![] })
            } else {
                (None, Effect::None)
            }
        }
        "feedback.given" => {
            f.integer("score", 0, 10, true);
            f.text("comment", false);
            (None, Effect::Engagement { mentions: vec![] })
        }
        "social.mentioned" => {
            f.one_of("sentiment", &["positive", "neutral", "negative"], true);
            f.text("network", false);
            (None, Effect::Engagement { mentions: vec![] })
        }
        _ => (None, Effect::Activity),
    };
    errs.into_result()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z").unwrap().to_utc()
    }

    fn parse(v: Value) -> Result<NewEvent, ValidationErrors> {
        parse_event(v, PhoneRegion::default(), now())
    }

    fn fields(r: Result<NewEvent, ValidationErrors>) -> Vec<String> {
        r.unwrap_err().errors.into_iter().map(|e| e.field).collect()
    }

    /// Segments rely on `always_activity`: every accepted event of such a type moves last seen.
    #[test]
    fn always_activity_types_always_move_last_seen() {
        let variants = [
            json!({}),
            json!({"currency": "EUR", "total": 10, "items": [{"sku": "A1", "category": "shoes", "price": 10}]}),
            json!({"sku": "A1", "name": "Boot", "category": "shoes"}),
            json!({"url": "https://shop.example/a", "category": "shoes"}),
            json!({"direction": "outbound", "outcome": "no_answer", "score": 5, "sentiment": "neutral", "topic": "news"}),
        ];
        for kind in BUILT_IN_TYPES.iter().copied().chain(["acme.visit_booked"]) {
            let mut accepted = 0;
            for payload in &variants {
                let Ok((_, effect)) = payload_effect(kind, payload.as_object().unwrap()) else { continue };
                accepted += 1;
                if always_activity(kind) {
                    assert!(effect.is_activity(), "{kind} with {payload} is not activity");
                }
            }
            assert!(accepted > 0, "no variant of {kind} was accepted");
        }
        assert!(!always_activity("segment.entered") && !always_activity("email.sent"));
    }

    #[test]
    fn the_contract_example_parses_into_an_order() {
        let e = parse(json!({"id":"shop-order-1001","type":"order.completed","contact":{"email":"ana@example.com"},
            "occurred_at":"2026-11-01T10:00:00Z","channel":"store",
            "payload":{"currency":"EUR","total":129.00,"store":"main","items":[{"sku":"SHOE-1","name":"Trail shoe",
            "category":"shoes","quantity":1,"price":129.00}]}}))
        .unwrap();
        assert_eq!(e.source_id.as_deref(), Some("shop-order-1001"));
        assert_eq!(e.channel, Channel::Store);
        assert_eq!(e.money.unwrap().minor, 12900);
        let Effect::Order { items, .. } = e.effect else { panic!("not an order") };
        assert_eq!(items[0].unit_price_minor, 12900);
        assert_eq!(items[0].category.as_deref(), Some("shoes"));
    }

    #[test]
    fn every_problem_is_named() {
        let errs = fields(parse(json!({"type":"order.completed","contact":{"email":"nope"},"occurred_at":"yesterday",
            "payload":{"currency":"EURO","items":[{"name":"x","quantity":0}]}})));
        assert!(errs.contains(&"contact.email".to_string()), "{errs:?}");
        assert!(errs.contains(&"occurred_at".to_string()));
        assert!(errs.contains(&"payload.currency".to_string()));
        assert!(errs.contains(&"payload.items[0].sku".to_string()));
        assert!(errs.contains(&"payload.items[0].quantity".to_string()));
    }

    #[test]
    fn amounts_must_fit_the_currency() {
        let errs = fields(parse(json!({"type":"order.completed","contact":{"id":"0190a0a0-0000-7000-8000-000000000000"},
            "channel":"web","payload":{"currency":"JPY","total":10.5}})));
        assert_eq!(errs, vec!["payload.total"]);
        let e = parse(json!({"type":"order.completed","contact":{"id":"0190a0a0-0000-7000-8000-000000000000"},
            "channel":"web","payload":{"currency":"JPY","total":1050}}))
        .unwrap();
        assert_eq!(e.money.unwrap().minor, 1050);
    }

    #[test]
    fn types_are_checked() {
        assert!(check_type("order.completed").is_ok());
        assert!(check_type("shop.wishlist_added").is_ok());
        assert!(check_type("order.complete").unwrap_err().contains("order.completed"));
        assert!(check_type("lifecycle.changed").is_err());
        assert!(check_type("Purchase").is_err());
        assert!(check_type("nonamespace").is_err());
    }

    #[test]
    fn channel_defaults_by_type_and_is_required_for_custom_types() {
        let id = json!({"id":"0190a0a0-0000-7000-8000-000000000000"});
        assert_eq!(parse(json!({"type":"email.opened","contact":id})).unwrap().channel, Channel::Email);
        assert_eq!(fields(parse(json!({"type":"shop.wished","contact":id}))), vec!["channel"]);
        assert_eq!(fields(parse(json!({"type":"shop.wished","contact":id,"channel":"pigeon"}))), vec!["channel"]);
    }

    #[test]
    fn future_events_are_refused_but_late_ones_are_fine() {
        let id = json!({"id":"0190a0a0-0000-7000-8000-000000000000"});
        assert!(parse(json!({"type":"visit.checked_in","contact":id,"occurred_at":"2019-01-01T00:00:00Z"})).is_ok());
        assert_eq!(
            fields(parse(json!({"type":"visit.checked_in","contact":id,"occurred_at":"2027-01-01T00:00:00Z"}))),
            vec!["occurred_at"]
        );
    }

    #[test]
    fn the_most_precise_reference_wins() {
        let e =
            parse(json!({"type":"visit.checked_in","contact":{"email":"a@b.co","external_id":{"source":"pos","id":7}}})).unwrap();
        assert_eq!(e.contact, ContactRef::External { source: "pos".into(), id: "7".into() });
    }
}
