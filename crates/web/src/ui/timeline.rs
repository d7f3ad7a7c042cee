//! Timeline events as lines a person reads: "Bought 3 items for €129.00 at Harbour Street".

use std::collections::HashMap;

use chrono_tz::Tz;
use rapport_store::TimelineEvent;
use serde_json::Value;
use uuid::Uuid;

use super::format::{clip, datetime, label, money};

/// One line of the timeline.
#[derive(Debug, Clone)]
pub struct EventLine {
    pub id: String,
    /// `order.completed`
    pub kind: String,
    pub channel: String,
    /// What happened, in words.
    pub title: String,
    /// More about it (a note's text, a comment, a URL), already cut to size.
    pub detail: Option<String>,
    pub when: String,
    /// RFC 3339, for `<time datetime>`.
    pub when_iso: String,
    /// Who recorded it, for staff actions.
    pub actor: Option<String>,
}

fn s<'a>(p: &'a Value, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty())
}

fn item_count(p: &Value) -> usize {
    p.get("items")
        .and_then(Value::as_array)
        .map_or(0, |a| a.iter().map(|i| i.get("quantity").and_then(Value::as_i64).unwrap_or(1).max(0) as usize).sum())
}

fn product(p: &Value) -> String {
    match (s(p, "name"), s(p, "sku")) {
        (Some(n), _) => n.to_string(),
        (None, Some(sku)) => sku.to_string(),
        _ => "a product".to_string(),
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") }
}

/// Describes one event.
pub fn line(e: &TimelineEvent, tz: Tz, users: &HashMap<Uuid, String>) -> EventLine {
    let p = &e.payload;
    let amount = e.amount.as_ref().map(|a| money(a.value, &a.currency));
    let (title, detail): (String, Option<String>) = match e.kind.as_str() {
        "order.completed" => {
            let n = item_count(p);
            let mut t = "Bought".to_string();
            if n > 0 {
                t.push_str(&format!(" {}", plural(n, "item")));
            }
            if let Some(a) = &amount {
                t.push_str(&format!(" for {a}"));
            }
            if let Some(store) = s(p, "store") {
                t.push_str(&format!(" at {store}"));
            }
            let names: Vec<String> =
                p.get("items").and_then(Value::as_array).map(|a| a.iter().take(5).map(product).collect()).unwrap_or_default();
            (t, (!names.is_empty()).then(|| names.join(", ")))
        }
        "order.refunded" => (format!("Refunded {}", amount.unwrap_or_default()).trim().to_string(), None),
        "product.viewed" => (format!("Viewed {}", product(p)), s(p, "category").map(str::to_string)),
        "cart.abandoned" => {
            let names: Vec<String> =
                p.get("items").and_then(Value::as_array).map(|a| a.iter().take(5).map(product).collect()).unwrap_or_default();
            (format!("Left {} in the cart", plural(names.len(), "item")), (!names.is_empty()).then(|| names.join(", ")))
        }
        "page.viewed" => ("Viewed a page".into(), s(p, "url").map(str::to_string)),
        "visit.checked_in" => (s(p, "location").map_or("Visited".into(), |l| format!("Visited {l}")), None),
        "email.sent" => ("Was sent an email".into(), s(p, "subject").map(str::to_string)),
        "sms.sent" => ("Was sent a text message".into(), s(p, "text").or(s(p, "body")).or(s(p, "subject")).map(str::to_string)),
        "email.opened" => ("Opened an email".into(), s(p, "subject").map(str::to_string)),
        "email.clicked" => ("Clicked a link in an email".into(), s(p, "url").map(str::to_string)),
        "email.bounced" => (format!("An email bounced ({})", s(p, "kind").unwrap_or("unknown")), None),
        "email.unsubscribed" => (
            s(p, "topic")
                .filter(|t| *t != "*")
                .map_or("Unsubscribed from all marketing email".into(), |t| format!("Unsubscribed from {t}")),
            s(p, "source").map(|src| format!("via {}", label(src).to_lowercase())),
        ),
        "email.subscribed" => (
            s(p, "topic").filter(|t| *t != "*").map_or("Subscribed to marketing email".into(), |t| format!("Subscribed to {t}")),
            s(p, "source").map(|src| format!("via {}", label(src).to_lowercase())),
        ),
        "email.replied" => ("Replied to an email".into(), s(p, "snippet").or(s(p, "subject")).map(str::to_string)),
        "email.auto_replied" => {
            ("Automatic answer to an email (out of office or similar)".into(), s(p, "subject").map(str::to_string))
        }
        "consent.changed" => {
            let granted = p.get("granted").and_then(Value::as_bool).unwrap_or(false);
            let purpose = s(p, "purpose").map_or("marketing".to_string(), |t| label(t).to_lowercase());
            let channel = s(p, "channel").map_or(String::new(), |c| format!(" by {}", label(c).to_lowercase()));
            (
                format!("{} consent to {purpose}{channel}", if granted { "Gave" } else { "Withdrew" }),
                s(p, "source").map(|src| {
                    let basis = s(p, "legal_basis").map_or(String::new(), |b| format!(" ({})", label(b).to_lowercase()));
                    format!("via {}{basis}", label(src).to_lowercase())
                }),
            )
        }
        "privacy.changed" => {
            let on = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(false);
            let changed: Vec<String> = p
                .get("changed")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|k| {
                            let what = match k {
                                "do_not_track" => "do not track",
                                "do_not_contact" => "do not contact",
                                "not_interested" => "not interested",
                                other => other,
                            };
                            format!("{what} {}", if on(k) { "on" } else { "off" })
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                if changed.is_empty() { "Privacy choices changed".into() } else { format!("Privacy: {}", changed.join(", ")) },
                s(p, "source").map(|src| format!("via {}", label(src).to_lowercase())),
            )
        }
        "task.created" => (format!("Task: {}", s(p, "title").unwrap_or("?")), s(p, "reason").map(str::to_string)),
        "task.completed" => (format!("Task done: {}", s(p, "title").unwrap_or("?")), s(p, "reason").map(str::to_string)),
        "workflow.action" => (
            format!(
                "{}: {} ({})",
                s(p, "workflow").unwrap_or("Workflow"),
                label(s(p, "action").unwrap_or("step")).to_lowercase(),
                label(s(p, "outcome").unwrap_or("done")).to_lowercase()
            ),
            s(p, "detail").map(str::to_string),
        ),
        "sms.received" => ("Sent a text message".into(), s(p, "text").or(s(p, "body")).map(str::to_string)),
        "chat.message" => (
            if s(p, "direction") == Some("outbound") { "Was sent a chat message".into() } else { "Wrote in chat".into() },
            s(p, "text").or(s(p, "body")).map(str::to_string),
        ),
        "form.submitted" => ("Submitted a form".into(), s(p, "form").map(str::to_string)),
        "support.requested" => ("Asked for support".into(), s(p, "subject").or(s(p, "text")).map(str::to_string)),
        "call.logged" => {
            let dir = if s(p, "direction") == Some("inbound") { "Called in" } else { "Was called" };
            let mut parts = Vec::new();
            if let Some(secs) = p.get("duration_seconds").and_then(Value::as_i64) {
                parts.push(format!("{} min", (secs + 30) / 60));
            }
            if let Some(o) = s(p, "outcome") {
                parts.push(label(o).to_lowercase());
            }
            (
                if parts.is_empty() { dir.to_string() } else { format!("{dir} ({})", parts.join(", ")) },
                s(p, "notes").map(str::to_string),
            )
        }
        "feedback.given" => (
            format!("Gave feedback: {}/10", p.get("score").and_then(Value::as_i64).map_or("?".into(), |n| n.to_string())),
            s(p, "comment").map(str::to_string),
        ),
        "social.mentioned" => (
            format!(
                "Mentioned us{} ({})",
                s(p, "network").map_or(String::new(), |n| format!(" on {n}")),
                s(p, "sentiment").unwrap_or("neutral")
            ),
            s(p, "text").map(str::to_string),
        ),
        "note.added" => ("Note".into(), s(p, "body").map(str::to_string)),
        "lifecycle.changed" => (
            format!("Stage changed from {} to {}", label(s(p, "from").unwrap_or("?")), label(s(p, "to").unwrap_or("?"))),
            s(p, "reason").map(str::to_string),
        ),
        "segment.entered" => (format!("Entered segment {}", s(p, "segment").unwrap_or("?")), None),
        "segment.exited" => (format!("Left segment {}", s(p, "segment").unwrap_or("?")), None),
        other => {
            let compact = serde_json::to_string(p).unwrap_or_default();
            (other.to_string(), (compact != "{}" && compact != "null").then_some(compact))
        }
    };
    EventLine {
        id: e.id.clone(),
        kind: e.kind.clone(),
        channel: e.channel.clone(),
        title: clip(&title, 200),
        detail: detail.map(|d| clip(&d, 600)),
        when: datetime(e.occurred_at, tz),
        when_iso: e.occurred_at.to_rfc3339(),
        actor: e.actor_id.and_then(|a| users.get(&a).cloned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn title_and_detail(kind: &str, payload: Value) -> (String, Option<String>) {
        let at = "2027-03-01T10:00:00Z".parse().unwrap();
        let e = TimelineEvent {
            id: "e1".into(),
            kind: kind.into(),
            channel: "system".into(),
            occurred_at: at,
            received_at: at,
            payload,
            amount: None,
            actor_id: None,
        };
        let l = line(&e, chrono_tz::UTC, &HashMap::new());
        (l.title, l.detail)
    }

    #[test]
    fn consent_and_privacy_read_as_sentences_not_json() {
        let (t, d) = title_and_detail(
            "consent.changed",
            json!({"purpose": "marketing", "channel": "sms", "granted": false, "source": "sms_reply", "legal_basis": "consent"}),
        );
        assert_eq!(t, "Withdrew consent to marketing by sms");
        assert_eq!(d.as_deref(), Some("via sms reply (consent)"));
        let (t, _) = title_and_detail(
            "privacy.changed",
            json!({"do_not_track": true, "do_not_contact": false, "changed": ["do_not_track"], "source": "preference_centre"}),
        );
        assert_eq!(t, "Privacy: do not track on");
        let (t, d) = title_and_detail("email.unsubscribed", json!({"topic": "*", "source": "unsubscribe_link"}));
        assert_eq!((t.as_str(), d.as_deref()), ("Unsubscribed from all marketing email", Some("via unsubscribe link")));
        let (t, d) = title_and_detail(
            "workflow.action",
            json!({"workflow": "Birthday", "action": "send_message", "outcome": "held_out", "detail": "in the holdout"}),
        );
        assert_eq!((t.as_str(), d.as_deref()), ("Birthday: send message (held out)", Some("in the holdout")));
    }
}
