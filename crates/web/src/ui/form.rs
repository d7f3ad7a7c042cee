//! Form bodies and query strings as ordered name/value pairs: repeated names (`ids`, one per
//! ticked row) and indexed names (`emails[0].address`) both keep their order.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use super::UiError;

#[derive(Debug, Clone, Default)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn parse(bytes: &[u8]) -> Self {
        Self(form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).map(str::trim).unwrap_or("").to_string()
    }

    /// The trimmed value of `name`, or `None` when absent or blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.text(name)).filter(|s| !s.is_empty())
    }
}

/// What an edit form shows back: the values typed (or stored) by input name, and the problems
/// found, each beside its input or, when it belongs to none, above the form.
#[derive(Debug, Default)]
pub struct FieldForm {
    values: HashMap<&'static str, String>,
    errors: HashMap<String, String>,
    /// Problems that belong to no input.
    pub general: Vec<String>,
}

impl FieldForm {
    pub fn new(values: HashMap<&'static str, String>) -> Self {
        Self { values, ..Self::default() }
    }

    /// The value typed (or stored) for an input.
    pub fn v(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    pub fn err(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || !self.general.is_empty()
    }

    /// Shows a problem beside input `field` when `beside_input` (the first one found for an
    /// input wins), above the form otherwise; either way as a sentence.
    pub fn place(&mut self, field: String, message: &str, beside_input: bool) {
        let message = sentence(message);
        if beside_input {
            self.errors.entry(field).or_insert(message);
        } else {
            self.general.push(message);
        }
    }
}

/// A message from the domain (`must be between 0 and 90`) as a sentence: capitalised.
pub fn sentence(message: &str) -> String {
    let mut c = message.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, UiError> {
        let bytes =
            Bytes::from_request(req, state).await.map_err(|_| UiError::BadRequest("The form could not be read.".into()))?;
        Ok(Self::parse(&bytes))
    }
}

/// The query string of a GET.
#[derive(Debug, Clone, Default)]
pub struct QueryData(pub FormData);

impl<S: Send + Sync> FromRequestParts<S> for QueryData {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, UiError> {
        Ok(Self(FormData::parse(parts.uri.query().unwrap_or("").as_bytes())))
    }
}

/// A query string from pairs, leaving out empty values.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_indexed_names_keep_order() {
        let f = FormData::parse(b"ids=a&ids=b&emails%5B0%5D.address=x%40y.z&name=+Ana+&empty=");
        assert_eq!(f.all("ids"), ["a", "b"]);
        assert_eq!(f.get("emails[0].address"), Some("x@y.z"));
        assert_eq!(f.text("name"), "Ana");
        assert_eq!(f.opt("empty"), None);
        assert_eq!(query_string([("q", "a b"), ("tag", ""), ("filter", "x = \"1\"")]), "q=a+b&filter=x+%3D+%221%22");
    }
}
