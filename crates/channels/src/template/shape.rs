//! What a message template may read: the variables Rapport puts into its context and their
//! attributes, so that a typo is caught when the template is saved rather than when it is sent.

use std::collections::BTreeMap;

/// The shape of one value in the context.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Text, a number, a date or a flag: nothing to look up inside it.
    Scalar,
    /// An object whose attributes are all known.
    Object(BTreeMap<String, Shape>),
    /// Anything may be looked up inside, to any depth (a map keyed by currency, free-form data).
    Open,
    /// A list whose items have this shape.
    List(Box<Shape>),
}

impl Shape {
    fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Shape)>) -> Self {
        Shape::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn scalars(names: &[&str]) -> Self {
        Self::object(names.iter().map(|n| (*n, Shape::Scalar)))
    }

    fn list_of(item: Shape) -> Self {
        Shape::List(Box::new(item))
    }
}

/// The variables a template may use. [`ContextShape::standard`] describes what Rapport puts
/// into every message; callers add what varies per business, such as custom field keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextShape {
    pub(crate) root: BTreeMap<String, Shape>,
}

impl Default for ContextShape {
    fn default() -> Self {
        Self::standard()
    }
}

impl ContextShape {
    /// No variables at all.
    pub fn empty() -> Self {
        Self { root: BTreeMap::new() }
    }

    /// The context every message gets. `contact.custom` and `company.custom` start empty: add the
    /// business's custom field keys with [`ContextShape::with_custom_fields`] or [`ContextShape::add`].
    pub fn standard() -> Self {
        use Shape::{Open, Scalar};
        let address = || Shape::scalars(&["street", "street2", "city", "region", "postal_code", "country"]);
        let contact = Shape::object([
            ("id", Scalar),
            ("first_name", Scalar),
            ("middle_name", Scalar),
            ("last_name", Scalar),
            ("display_name", Scalar),
            ("title", Scalar),
            ("email", Scalar),
            ("phone", Scalar),
            ("locale", Scalar),
            ("time_zone", Scalar),
            ("birthday", Scalar),
            ("address", address()),
            ("tags", Shape::list_of(Scalar)),
            ("custom", Shape::object([])),
        ]);
        let interest = Shape::scalars(&["kind", "key", "name", "score", "mentions", "last_at"]);
        let mut profile = Shape::scalars(&[
            "value_tier",
            "lifecycle_stage",
            "stage_reason",
            "stage_since",
            "order_count",
            "orders_last_365d",
            "first_order_at",
            "last_order_at",
            "average_order_value",
            "average_order_value_currency",
            "refund_count",
            "visit_count",
            "last_visit_at",
            "visits_last_30d",
            "visits_last_90d",
            "first_seen_at",
            "last_seen_at",
            "last_engagement_at",
            "email_opens",
            "email_clicks",
            "last_open_at",
            "last_click_at",
        ]);
        if let Shape::Object(fields) = &mut profile {
            // Keyed by currency code: `profile.revenue.EUR` (major units), `revenue_minor.EUR`.
            fields.insert("revenue".into(), Open);
            fields.insert("revenue_minor".into(), Open);
            fields.insert("revenue_base".into(), Shape::scalars(&["currency", "amount"]));
            fields.insert("interests".into(), Shape::list_of(interest));
            fields.insert("purchased_skus".into(), Shape::list_of(Scalar));
            fields.insert("rfm".into(), Open);
            fields.insert("churn_risk".into(), Open);
        }
        let recommendation = Shape::scalars(&["sku", "name", "category", "reason", "price", "currency", "score"]);
        let company = Shape::object([
            ("name", Scalar),
            ("domain", Scalar),
            ("industry", Scalar),
            ("size", Scalar),
            ("tags", Shape::list_of(Scalar)),
            ("custom", Shape::object([])),
        ]);
        let root = [
            ("contact", contact),
            ("profile", profile),
            ("owner", Shape::scalars(&["name", "email", "phone"])),
            ("company", company),
            ("recommendations", Shape::list_of(recommendation)),
            ("coupon", Shape::scalars(&["code", "description", "expires_at"])),
            ("unsubscribe_url", Scalar),
            ("preferences_url", Scalar),
            ("confirm_url", Scalar),
            ("business", Shape::scalars(&["name", "address", "email", "phone", "website", "time_zone"])),
        ];
        Self { root: root.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
    }

    /// Adds the business's custom contact fields as `contact.custom.<key>`.
    pub fn with_custom_fields<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for key in keys {
            self.insert(&["contact", "custom", key.as_ref()], Shape::Scalar);
        }
        self
    }

    /// Declares `path` (dotted, e.g. `coupon.percent_off` or `recommendations.url`, where a list's
    /// items are reached through the list's name) as a plain value.
    pub fn add(&mut self, path: &str) -> &mut Self {
        self.add_shape(path, Shape::Scalar)
    }

    /// Declares `path` with the given shape, creating the objects on the way and turning a plain
    /// value on the way into an object.
    pub fn add_shape(&mut self, path: &str, shape: Shape) -> &mut Self {
        let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
        self.insert(&parts, shape);
        self
    }

    fn insert(&mut self, path: &[&str], shape: Shape) {
        let Some((first, rest)) = path.split_first() else { return };
        let mut slot = self.root.entry((*first).to_owned()).or_insert(Shape::Scalar);
        for part in rest {
            // A list's item stands in for the list when a path goes through it.
            while let Shape::List(item) = slot {
                slot = item;
            }
            match slot {
                Shape::Open => return,
                Shape::Object(_) => {}
                _ => *slot = Shape::Object(BTreeMap::new()),
            }
            let Shape::Object(fields) = slot else { return };
            slot = fields.entry((*part).to_owned()).or_insert(Shape::Scalar);
        }
        *slot = shape;
    }

    /// The shape of a top-level variable.
    pub fn get(&self, name: &str) -> Option<&Shape> {
        self.root.get(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.root.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(shape: &'a Shape, name: &str) -> Option<&'a Shape> {
        match shape {
            Shape::Object(fields) => fields.get(name),
            Shape::List(item) => field(item, name),
            _ => None,
        }
    }

    #[test]
    fn callers_extend_the_standard_context() {
        let mut shape = ContextShape::standard().with_custom_fields(["shoe_size"]);
        shape.add("recommendations.url").add("coupon.percent_off").add("event.order.total");
        let contact = shape.get("contact").unwrap();
        assert_eq!(field(field(contact, "custom").unwrap(), "shoe_size"), Some(&Shape::Scalar));
        let recs = shape.get("recommendations").unwrap();
        assert!(matches!(recs, Shape::List(_)), "a list stays a list");
        assert_eq!(field(recs, "url"), Some(&Shape::Scalar));
        assert_eq!(field(recs, "sku"), Some(&Shape::Scalar));
        assert_eq!(field(shape.get("coupon").unwrap(), "percent_off"), Some(&Shape::Scalar));
        let event = shape.get("event").unwrap();
        assert_eq!(field(field(event, "order").unwrap(), "total"), Some(&Shape::Scalar));
        // Inside an open value there is nothing to declare.
        shape.add("profile.revenue.EUR");
        assert_eq!(field(shape.get("profile").unwrap(), "revenue"), Some(&Shape::Open));
    }
}
