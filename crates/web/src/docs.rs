//! The OpenAPI 3.1 document, generated from the handlers and types, and a browsable
//! reference page rendered from it on the server (no external assets, works offline).

use std::fmt::Write;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::{Router, routing::get};
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::api::{
    automation, campaigns, companies, consent, contacts, custom_fields, deliverability, events, links, messages, notes,
    relations, segments, tags, tasks, templates, users, workflows,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Rapport API", description = "A relationship-first CRM. Every call under /api/v1 needs `Authorization: Bearer <key>`. \
        Errors are RFC 9457 problem+json; validation errors list each field. Lists are cursor-paginated: \
        `{\"data\": [...], \"next_cursor\": \"...\" | null}`."),
    paths(
        contacts::list, contacts::create, contacts::read, contacts::update, contacts::remove,
        companies::list, companies::create, companies::read, companies::update, companies::remove,
        links::list, links::create, links::read, links::update, links::remove,
        relations::list, relations::create, relations::read, relations::update, relations::remove,
        notes::list, notes::create, notes::read, notes::update, notes::remove,
        tags::list, tags::create, tags::read, tags::update, tags::remove,
        custom_fields::list, custom_fields::create, custom_fields::read, custom_fields::update, custom_fields::remove,
        users::list, users::create, users::read, users::update, users::remove,
        events::ingest, events::timeline, events::profile, events::recommendations, events::move_clock,
        segments::preview, segments::create, segments::list, segments::read, segments::update, segments::remove,
        segments::members, segments::count, segments::explain, segments::refresh, segments::contact_segments, segments::maintain,
        tasks::list, tasks::create, tasks::read, tasks::update, tasks::remove,
        workflows::list, workflows::create, workflows::read, workflows::update, workflows::remove, workflows::enable, workflows::disable,
        workflows::stats,
        automation::contact_automation, automation::points, automation::upcoming, automation::start, automation::simulate, automation::notifications,
        automation::read_notification, automation::deliveries,
        templates::list, templates::create, templates::read, templates::update, templates::remove, templates::preview,
        templates::layouts, templates::put_layout,
        deliverability::bounces, deliverability::inbound_mail,
        messages::inbound,
        consent::list_topics, consent::create_topic, consent::read_topic, consent::update_topic, consent::delete_topic,
        consent::contact_consent, consent::record_consent, consent::read_privacy, consent::put_privacy,
        campaigns::list, campaigns::create, campaigns::read, campaigns::update, campaigns::remove, campaigns::send,
        campaigns::pause, campaigns::resume, campaigns::cancel, campaigns::test_send, campaigns::stats,
    ),
    components(schemas(crate::error::Problem, rapport_core::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "contacts", description = "People the business has a relationship with."),
        (name = "companies", description = "Organisations, for B2B relationships."),
        (name = "links", description = "Which contacts belong to which companies, and their role there."),
        (name = "relations", description = "Relations between people: children, spouses, colleagues, referrals."),
        (name = "notes", description = "Markdown notes on contacts and companies."),
        (name = "tags", description = "Labels on contacts and companies."),
        (name = "custom fields", description = "The catalogue of extra fields per record type, validated on every write."),
        (name = "users", description = "The people who work in Rapport and own records."),
        (name = "events", description = "Every interaction as an event; the profiles, stages and recommendations they add up to."),
        (name = "segments", description = "Who a business means: stored filters whose members are kept current, with entry and exit events."),
        (name = "tasks", description = "What someone on the team should do, about whom, by when, and why."),
        (name = "workflows", description = "Automation: when something happens to a contact, do these steps. The format is in docs/automation.md."),
        (name = "automation", description = "What workflows did and will do: runs per contact, the upcoming queue, manual starts, simulations, notifications, webhook deliveries."),
        (name = "templates", description = "Message templates (minijinja) and layouts, checked on save, previewed for a real contact."),
        (name = "campaigns", description = "A template sent to a segment, now or at a local time, with a holdout to measure it against; statistics and conversions."),
        (name = "consent", description = "Subscription topics, the consent ledger per contact (purpose, channel, source, legal basis, double opt-in) and privacy choices."),
        (name = "email", description = "Mail that comes back: bounces and complaints (which suppress an address), answers and automatic answers. Opens and clicks are tracked at /t/o and /t/c; see docs/email.md."),
        (name = "messaging", description = "SMS and chat: inbound messages from a provider land on the timeline (STOP opts out). Outgoing ones are sent from the outbox through a provider webhook; see docs/messaging.md."),
        (name = "admin", description = "Operations for administrators."),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

fn spec_json() -> &'static str {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into()))
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi_json)).route("/api/docs", get(docs_page))
}

async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], spec_json()).into_response()
}

async fn docs_page() -> Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(PAGE.get_or_init(|| render(&serde_json::from_str(spec_json()).unwrap_or(Value::Null))))
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn type_of(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", escape(name));
    }
    if let Some(items) = schema.get("items") {
        return format!("array of {}", type_of(items));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(alts)) = schema.get(key) {
            let parts: Vec<String> = alts.iter().map(type_of).filter(|t| t != "null").collect();
            return parts.join(" or ");
        }
    }
    let mut t = match schema.get("type") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect::<Vec<_>>().join(" or "),
        _ => "any".into(),
    };
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        let _ = write!(t, " ({})", escape(f));
    }
    if let Some(Value::Array(vals)) = schema.get("enum") {
        let vals: Vec<String> = vals.iter().filter_map(Value::as_str).map(escape).collect();
        let _ = write!(t, ": {}", vals.join(", "));
    }
    t
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).map(escape).unwrap_or_default()
}

fn render(spec: &Value) -> String {
    let mut h = String::with_capacity(64 * 1024);
    h.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Rapport API reference</title><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}\
         h2{border-bottom:1px solid #dde2ea;padding-bottom:.2rem;margin-top:2.5rem}\
         .op{border:1px solid #dde2ea;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}\
         .m{display:inline-block;min-width:4.2rem;font-weight:600;font-family:monospace}\
         .get{color:#1a7f37}.post{color:#1f5fbf}.patch{color:#9a6700}.delete{color:#cf222e}\
         code,.path{font-family:ui-monospace,monospace}table{border-collapse:collapse;margin:.4rem 0}\
         td,th{border:1px solid #e4e8ef;padding:.2rem .5rem;text-align:left;vertical-align:top;font-size:14px}\
         nav a{margin-right:.8rem}</style></head><body>",
    );
    let info = &spec["info"];
    let _ = write!(h, "<h1>{}</h1><p>{}</p>", text(info.get("title")), text(info.get("description")));
    h.push_str("<p>Machine-readable: <a href=\"/api/openapi.json\">/api/openapi.json</a> (OpenAPI 3.1).</p><nav>");
    let tags: Vec<(String, String)> = spec["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| (text(t.get("name")), text(t.get("description")))).collect())
        .unwrap_or_default();
    for (name, _) in &tags {
        let _ = write!(h, "<a href=\"#tag-{0}\">{0}</a>", name);
    }
    h.push_str("<a href=\"#schemas\">schemas</a></nav>");
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();
    for (tag, desc) in &tags {
        let _ = write!(h, "<h2 id=\"tag-{tag}\">{tag}</h2><p>{desc}</p>");
        for (path, item) in &paths {
            let Some(ops) = item.as_object() else { continue };
            for method in ["get", "post", "patch", "put", "delete"] {
                let Some(op) = ops.get(method) else { continue };
                let in_tag =
                    op["tags"].as_array().is_some_and(|t| t.iter().any(|x| x.as_str().map(escape).as_deref() == Some(tag)));
                if !in_tag {
                    continue;
                }
                let _ = write!(
                    h,
                    "<div class=\"op\"><span class=\"m {method}\">{}</span> <span class=\"path\">{}</span> — <strong>{}</strong>",
                    method.to_uppercase(),
                    escape(path),
                    text(op.get("summary"))
                );
                if let Some(d) = op.get("description").and_then(Value::as_str) {
                    let _ = write!(h, "<p>{}</p>", escape(d));
                }
                if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                    h.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>");
                    for p in params {
                        let req = if p["required"].as_bool().unwrap_or(false) { " (required)" } else { "" };
                        let _ = write!(
                            h,
                            "<tr><td><code>{}</code>{req}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            text(p.get("name")),
                            text(p.get("in")),
                            type_of(&p["schema"]),
                            text(p.get("description"))
                        );
                    }
                    h.push_str("</table>");
                }
                if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
                    let _ = write!(h, "<p>Body: {}</p>", type_of(schema));
                }
                if let Some(resps) = op["responses"].as_object() {
                    h.push_str("<p>Responses: ");
                    let parts: Vec<String> = resps
                        .iter()
                        .map(|(code, r)| {
                            let schema = r.pointer("/content/application~1json/schema").map(type_of);
                            match schema {
                                Some(s) => format!("<code>{}</code> {s}", escape(code)),
                                None => format!("<code>{}</code>", escape(code)),
                            }
                        })
                        .collect();
                    h.push_str(&parts.join(" · "));
                    h.push_str("</p>");
                }
                h.push_str("</div>");
            }
        }
    }
    h.push_str("<h2 id=\"schemas\">Schemas</h2>");
    if let Some(schemas) = spec.pointer("/components/schemas").and_then(Value::as_object) {
        for (name, schema) in schemas {
            let _ = write!(h, "<h3 id=\"schema-{0}\">{0}</h3>", escape(name));
            if let Some(d) = schema.get("description").and_then(Value::as_str) {
                let _ = write!(h, "<p>{}</p>", escape(d));
            }
            let required: Vec<&str> =
                schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            if let Some(props) = schema["properties"].as_object() {
                h.push_str("<table><tr><th>field</th><th>type</th><th>description</th></tr>");
                for (field, p) in props {
                    let req = if required.contains(&field.as_str()) { "" } else { " <small>optional</small>" };
                    let _ = write!(
                        h,
                        "<tr><td><code>{}</code>{req}</td><td>{}</td><td>{}</td></tr>",
                        escape(field),
                        type_of(p),
                        text(p.get("description"))
                    );
                }
                h.push_str("</table>");
            } else {
                let _ = write!(h, "<p>{}</p>", type_of(schema));
            }
        }
    }
    h.push_str("</body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_is_openapi_31_and_lists_the_contract_routes() {
        let spec: Value = serde_json::from_str(spec_json()).unwrap();
        assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
        for p in ["/api/v1/contacts", "/api/v1/contacts/{id}", "/api/v1/custom-fields", "/api/v1/users/{id}"] {
            assert!(spec["paths"].get(p).is_some(), "{p} missing");
        }
        let page = render(&spec);
        assert!(page.contains("List contacts"));
        assert!(page.contains("id=\"schema-Contact\""));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
    }
}
