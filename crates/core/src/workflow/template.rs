//! Text with placeholders: `Call {{first_name}} for their birthday`.

use std::fmt;

use serde::Serialize;

/// Placeholders every workflow may use.
pub const PLACEHOLDERS: &[&str] = &["first_name", "last_name", "display_name", "owner_name", "email"];

/// Text in which `{{name}}` stands for a value of the contact (or, as `{{event.<path>}}`, of
/// the event that started the run). Spaces inside the braces are allowed (`{{ first_name }}`).
/// `{{` always opens a placeholder; a lone `{` or `}` is plain text.
///
/// Rendering is plain text substitution with no escaping: whoever puts the result into HTML,
/// an email or an SMS escapes it for that medium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Placeholder(String),
}

impl Template {
    /// Reads `raw`. `event_placeholders` allows `{{event.<path>}}`, which only workflows with an
    /// event trigger have a value for.
    pub fn parse(raw: &str, event_placeholders: bool) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!(
                    "'{{{{' at character {} is not closed; write placeholders such as {{{{first_name}}}}",
                    raw[..raw.len() - rest.len() + open].chars().count() + 1
                ));
            };
            let name = after[..close].trim();
            check_placeholder(name, event_placeholders)?;
            parts.push(Part::Placeholder(name.to_string()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { source: raw.to_string(), parts })
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The placeholder names used, in order (`first_name`, `event.items.0.sku`).
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Substitutes every placeholder with `vars(name)`. A missing or blank value renders as
    /// nothing, except `first_name`, which falls back to `display_name` (a contact known only
    /// by a company-style or single name still gets a sensible greeting).
    pub fn render(&self, vars: &dyn Fn(&str) -> Option<String>) -> String {
        let value = |name: &str| vars(name).filter(|v| !v.trim().is_empty());
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder(name) => {
                    let v = value(name).or_else(|| if name == "first_name" { value("display_name") } else { None });
                    out.push_str(v.as_deref().unwrap_or_default());
                }
            }
        }
        out
    }
}

fn check_placeholder(name: &str, event_placeholders: bool) -> Result<(), String> {
    if PLACEHOLDERS.contains(&name) {
        return Ok(());
    }
    if let Some(path) = name.strip_prefix("event.") {
        let ok = !path.is_empty()
            && path.split('.').all(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if !ok {
            return Err(format!(
                "{{{{{name}}}}} is not an event placeholder; write {{{{event.}}}} and a payload path such as {{{{event.items.0.name}}}}"
            ));
        }
        if !event_placeholders {
            return Err(format!(
                "{{{{{name}}}}} needs an event trigger: only a workflow started by an event has an event to read from"
            ));
        }
        return Ok(());
    }
    let known: Vec<String> = PLACEHOLDERS.iter().map(|p| format!("{{{{{p}}}}}")).collect();
    Err(format!(
        "unknown placeholder {{{{{name}}}}}; use {}, or {{{{event.<path>}}}} in workflows with an event trigger",
        known.join(", ")
    ))
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}
