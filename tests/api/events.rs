//! Events, timelines, profiles, lifecycle stages, recommendations and the admin clock (issue #4).
//!
//! The test clock starts at 2026-01-15T09:00:00Z and events may not be more than 24 h in the
//! future, so most events here happen shortly before that. Time-driven stage changes are made
//! through `POST /api/v1/admin/clock`, which applies them before it answers.

use chrono::{DateTime, Utc};
use rapport_core::Clock;
use rapport_core::user::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, id_of, send};

const EVENTS: &str = "/api/v1/events";
const CLOCK: &str = "/api/v1/admin/clock";

// ---------------------------------------------------------------------------------------------
// Small readers.

#[track_caller]
fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("not an RFC 3339 time '{s}': {e}")).to_utc()
}

/// A JSON time string, parsed (so that `Z` and `+00:00` compare equal).
#[track_caller]
fn time_of(v: &Value) -> DateTime<Utc> {
    t(v.as_str().unwrap_or_else(|| panic!("expected a time string, got {v}")))
}

#[track_caller]
fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("expected a number, got {v}"))
}

#[track_caller]
fn assert_num(v: &Value, want: f64, what: &str) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{what}: expected the number {want}, got {v}"));
    assert!((got - want).abs() < 1e-6, "{what}: expected {want}, got {v}");
}

#[track_caller]
fn assert_time(v: &Value, want: &str, what: &str) {
    assert!(v.is_string(), "{what}: expected the time {want}, got {v}");
    assert_eq!(time_of(v), t(want), "{what}: expected {want}, got {v}");
}

#[track_caller]
fn nonempty_str(v: &Value, what: &str) -> String {
    match v.as_str() {
        Some(s) if !s.trim().is_empty() => s.to_string(),
        _ => panic!("{what}: expected a non-empty string, got {v}"),
    }
}

/// `revenue` as a map of currency to amount: exactly the given currencies.
#[track_caller]
fn assert_revenue(profile: &Value, want: &[(&str, f64)]) {
    let revenue = profile["revenue"].as_object().unwrap_or_else(|| panic!("revenue is an object: {profile}"));
    let mut got: Vec<&str> = revenue.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut expected: Vec<&str> = want.iter().map(|(c, _)| *c).collect();
    expected.sort_unstable();
    assert_eq!(got, expected, "revenue currencies: {}", profile["revenue"]);
    for (currency, amount) in want {
        assert_num(&revenue[*currency], *amount, &format!("revenue.{currency}"));
    }
}

/// The `revenue_base` amount, checking it is in EUR.
#[track_caller]
fn assert_revenue_base(profile: &Value, amount: f64) {
    assert_eq!(profile["revenue_base"]["currency"], "EUR", "revenue_base: {}", profile["revenue_base"]);
    assert_num(&profile["revenue_base"]["amount"], amount, "revenue_base.amount");
}

#[track_caller]
fn skus(profile: &Value) -> Vec<String> {
    let mut out: Vec<String> = profile["purchased_skus"]
        .as_array()
        .unwrap_or_else(|| panic!("purchased_skus is a list: {profile}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("a sku is a string: {s}")).to_string())
        .collect();
    out.sort();
    out
}

/// The interest `kind`/`key`, checking the list is ordered by score, highest first.
#[track_caller]
fn interest<'a>(profile: &'a Value, kind: &str, key: &str) -> Option<&'a Value> {
    let list = profile["interests"].as_array().unwrap_or_else(|| panic!("interests is a list: {profile}"));
    for pair in list.windows(2) {
        assert!(num(&pair[0]["score"]) >= num(&pair[1]["score"]), "interests are highest first: {}", profile["interests"]);
    }
    for i in list {
        assert!(matches!(i["kind"].as_str(), Some("product" | "category")), "interest kind: {i}");
    }
    list.iter().find(|i| i["kind"] == kind && i["key"] == key)
}

/// Compares two JSON values, numbers with a relative tolerance (scores are sums of floats that
/// may be added in another order).
fn same_json(a: &Value, b: &Value, path: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            if (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0) { Ok(()) } else { Err(format!("{path}: {a} != {b}")) }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{path}: {} items != {} items ({a} vs {b})", x.len(), y.len()));
            }
            x.iter().zip(y).enumerate().try_for_each(|(i, (x, y))| same_json(x, y, &format!("{path}[{i}]")))
        }
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<&String> = x.keys().collect();
            let ky: Vec<&String> = y.keys().collect();
            if kx != ky {
                return Err(format!("{path}: keys {kx:?} != {ky:?}"));
            }
            x.iter().try_for_each(|(k, v)| same_json(v, &y[k], &format!("{path}.{k}")))
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{path}: {a} != {b}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

async fn new_contact(app: &TestApp, first_name: &str, email: &str) -> String {
    id_of(&app.create("/api/v1/contacts", json!({"first_name": first_name, "emails": [{"address": email}]})).await)
}

/// Posts `{"events": events}` and returns the per-item results (see [`ingest_body`]).
async fn ingest(app: &TestApp, events: Vec<Value>) -> Vec<Value> {
    ingest_body(app, json!({ "events": events })).await
}

/// Posts a request body to the ingest API and returns the per-item results, after checking the
/// answer's shape: one result per event in request order, an id for every stored or duplicate
/// event, errors exactly when rejected, each naming a field with a message.
async fn ingest_body(app: &TestApp, body: Value) -> Vec<Value> {
    let sent = body["events"].as_array().cloned().unwrap_or_default();
    let answer = app.post(EVENTS, body).await.expect(200);
    let results = answer["results"].as_array().unwrap_or_else(|| panic!("no results list: {answer}")).clone();
    assert_eq!(results.len(), sent.len(), "one result per event");
    for (i, (r, event)) in results.iter().zip(&sent).enumerate() {
        assert_eq!(r["index"], i, "results come in request order: {r}");
        let errors = r["errors"].as_array().unwrap_or_else(|| panic!("errors is a list: {r}"));
        match r["status"].as_str() {
            Some("accepted" | "duplicate") => {
                assert!(errors.is_empty(), "errors only when rejected: {r}");
                let id = nonempty_str(&r["id"], "the id of a stored event");
                match event["id"].as_str() {
                    Some(sender) => assert_eq!(id, sender, "the sender's id is the event's id"),
                    None => {
                        uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("a generated id is a UUID, got {id}: {e}"));
                    }
                }
            }
            Some("rejected") => {
                assert!(!errors.is_empty(), "a rejected event says why: {r}");
                for e in errors {
                    assert!(e["field"].is_string(), "each error names a field: {e}");
                    nonempty_str(&e["message"], "an error's message");
                }
                if let Some(sender) = event["id"].as_str() {
                    assert_eq!(r["id"], sender, "a rejected event keeps the sender's id");
                }
            }
            _ => panic!("unknown status: {r}"),
        }
    }
    results
}

fn statuses(results: &[Value]) -> Vec<&str> {
    results.iter().map(|r| r["status"].as_str().unwrap_or("?")).collect()
}

fn error_fields(result: &Value) -> Vec<String> {
    result["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["field"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[track_caller]
fn assert_rejected(result: &Value, field: &str) {
    assert_eq!(result["status"], "rejected", "expected a rejection naming '{field}': {result}");
    assert!(error_fields(result).iter().any(|f| f == field), "expected the errors to name '{field}': {result}");
}

async fn profile(app: &TestApp, id: &str) -> Value {
    let p = app.get(&format!("/api/v1/contacts/{id}/profile")).await.expect(200);
    assert_eq!(p["contact_id"], id, "profile of the right person: {p}");
    p
}

/// Every timeline entry matching `query` (`""` or `"?type=…"`), following cursors.
async fn timeline(app: &TestApp, id: &str, query: &str) -> Vec<Value> {
    let items = app.list_all(&format!("/api/v1/contacts/{id}/timeline{query}")).await;
    for pair in items.windows(2) {
        assert!(
            time_of(&pair[0]["occurred_at"]) >= time_of(&pair[1]["occurred_at"]),
            "newest first: {} then {}",
            pair[0],
            pair[1]
        );
    }
    items
}

async fn timeline_ids(app: &TestApp, id: &str, query: &str) -> Vec<String> {
    event_ids(&timeline(app, id, query).await)
}

fn event_ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|e| e["id"].as_str().unwrap_or_else(|| panic!("a timeline entry has an id: {e}")).to_string()).collect()
}

fn types(items: &[Value]) -> Vec<String> {
    items.iter().map(|e| e["type"].as_str().unwrap_or_default().to_string()).collect()
}

/// The timeline without the stage changes Rapport records itself.
async fn activity(app: &TestApp, id: &str) -> Vec<Value> {
    timeline(app, id, "").await.into_iter().filter(|e| e["type"] != "lifecycle.changed").collect()
}

/// The person's stage changes as (from, to), newest first, checking each one's shape.
async fn stage_changes(app: &TestApp, id: &str) -> Vec<(String, String)> {
    timeline(app, id, "?type=lifecycle.changed")
        .await
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "lifecycle.changed");
            assert_eq!(e["channel"], "system", "stage changes are system events: {e}");
            nonempty_str(&e["payload"]["reason"], "a stage change's reason");
            let from = e["payload"]["from"].as_str().unwrap_or("").to_string();
            (from, nonempty_str(&e["payload"]["to"], "a stage change's new stage"))
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// Moves the clock through the admin API; returns how many stage changes it caused, after
/// checking the answer's `now` is the clock's new time.
async fn move_clock(app: &TestApp, body: Value) -> i64 {
    let answer = app.post(CLOCK, body.clone()).await.expect(200);
    assert_eq!(time_of(&answer["now"]), app.clock.now(), "the answer's now is the clock's time: {answer}");
    answer["transitions"].as_i64().unwrap_or_else(|| panic!("transitions is a number: {answer} (after {body})"))
}

async fn advance_clock(app: &TestApp, iso: &str) -> i64 {
    move_clock(app, json!({ "advance": iso })).await
}

// ---------------------------------------------------------------------------------------------
// Events.

fn by_email(email: &str) -> Value {
    json!({ "email": email })
}

fn by_id(id: &str) -> Value {
    json!({ "id": id })
}

fn line(sku: &str, category: &str, price: f64) -> Value {
    json!({"sku": sku, "name": format!("Product {sku}"), "category": category, "quantity": 1, "price": price})
}

fn order(id: &str, who: &Value, at: &str, total: f64, items: Vec<Value>) -> Value {
    json!({"id": id, "type": "order.completed", "contact": who, "occurred_at": at, "channel": "store",
        "payload": {"currency": "EUR", "total": total, "store": "main", "items": items}})
}

fn refund(id: &str, who: &Value, at: &str, total: f64) -> Value {
    json!({"id": id, "type": "order.refunded", "contact": who, "occurred_at": at, "channel": "store",
        "payload": {"currency": "EUR", "total": total}})
}

fn view(id: &str, who: &Value, at: &str, sku: &str, category: &str) -> Value {
    json!({"id": id, "type": "product.viewed", "contact": who, "occurred_at": at,
        "payload": {"sku": sku, "name": format!("Product {sku}"), "category": category}})
}

fn simple(id: &str, kind: &str, who: &Value, at: &str) -> Value {
    json!({"id": id, "type": kind, "contact": who, "occurred_at": at})
}

fn contract_example() -> Value {
    json!({"id":"shop-order-1001","type":"order.completed","contact":{"email":"ana@example.com"},"occurred_at":"2026-11-01T10:00:00Z",
        "channel":"store","payload":{"currency":"EUR","total":129.00,"store":"main","items":[{"sku":"SHOE-1","name":"Trail shoe",
        "category":"shoes","quantity":1,"price":129.00}]}})
}

/// A year of one customer's history, oldest first; sender ids start with `prefix`.
fn history(prefix: &str, who: &Value) -> Vec<Value> {
    let id = |n: &str| format!("{prefix}-{n}");
    vec![
        order(&id("o1"), who, "2025-03-01T10:00:00Z", 40.0, vec![line("S-1", "socks", 40.0)]),
        order(&id("o2"), who, "2025-04-01T10:00:00Z", 60.0, vec![line("T-1", "tees", 60.0)]),
        order(&id("o3"), who, "2025-05-01T10:00:00Z", 100.0, vec![line("S-2", "socks", 30.0), line("T-2", "tees", 70.0)]),
        refund(&id("r1"), who, "2025-05-10T10:00:00Z", 20.0),
        simple(&id("eo"), "email.opened", who, "2025-12-01T08:00:00Z"),
        json!({"id": id("ec"), "type": "email.clicked", "contact": who, "occurred_at": "2025-12-02T08:00:00Z",
            "payload": {"url": "https://shop.example/jackets"}}),
        order(&id("o4"), who, "2025-12-20T10:00:00Z", 80.0, vec![line("J-1", "jackets", 80.0)]),
        simple(&id("vi1"), "visit.checked_in", who, "2025-12-20T11:00:00Z"),
        view(&id("v1"), who, "2025-12-28T10:00:00Z", "J-2", "jackets"),
        simple(&id("vi2"), "visit.checked_in", who, "2026-01-03T10:00:00Z"),
        view(&id("v2"), who, "2026-01-05T10:00:00Z", "J-2", "jackets"),
        view(&id("v3"), who, "2026-01-10T10:00:00Z", "J-2", "jackets"),
        json!({"id": id("pv"), "type": "page.viewed", "contact": who, "occurred_at": "2026-01-12T10:00:00Z",
            "payload": {"url": "https://shop.example/jackets", "category": "jackets"}}),
    ]
}

/// The profile fields that must not depend on the order events arrived in.
const ORDER_INDEPENDENT: &[&str] = &[
    "first_seen_at",
    "last_seen_at",
    "order_count",
    "revenue",
    "revenue_base",
    "average_order_value",
    "last_order_at",
    "orders_last_365d",
    "visits_last_30d",
    "visits_last_90d",
    "usual_order_gap_days",
    "usual_visit_gap_days",
    "email_opens",
    "email_clicks",
    "last_open_at",
    "last_click_at",
    "last_engagement_at",
    "interests",
    "purchased_skus",
    "rfm",
    "value_tier",
    "lifecycle_stage",
    "stage_reason",
    "churn_risk",
];

both_backends! {
    async fn a_namespace_filter_takes_underscores_literally(app) {
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        let events = ["shop_a.viewed", "shopxa.viewed", "shop_a.liked"]
            .iter()
            .map(|t| json!({"type": t, "channel": "web", "contact": {"id": ana}}))
            .collect();
        let results = ingest(app, events).await;
        assert!(results.iter().all(|r| r["status"] == "accepted"), "{results:?}");
        let page = app.get(&format!("/api/v1/contacts/{ana}/timeline?type=shop_a.*")).await.expect(200);
        let mut types: Vec<&str> = page["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        types.sort_unstable();
        assert_eq!(types, ["shop_a.liked", "shop_a.viewed"]);
    }

    async fn contract_example_is_accepted_and_feeds_the_profile(app) {
        // The example happens on 2026-11-01; move the clock past it before anything exists.
        app.clock.set(t("2026-11-20T12:00:00Z"));
        let ana = new_contact(app, "Ana", "ana@example.com").await;

        let results = ingest(app, vec![contract_example()]).await;
        let r = &results[0];
        assert_eq!(r["index"], 0, "{r}");
        assert_eq!(r["status"], "accepted", "{r}");
        assert_eq!(r["id"], "shop-order-1001", "{r}");
        assert_eq!(r["errors"], json!([]), "{r}");

        let p = profile(app, &ana).await;
        assert_eq!(p["order_count"], 1, "{p}");
        assert_revenue(&p, &[("EUR", 129.0)]);
        assert_revenue_base(&p, 129.0);
        assert_num(&p["average_order_value"], 129.0, "average_order_value");
        assert_time(&p["last_order_at"], "2026-11-01T10:00:00Z", "last_order_at");
        assert_time(&p["first_seen_at"], "2026-11-01T10:00:00Z", "first_seen_at");
        assert_time(&p["last_seen_at"], "2026-11-01T10:00:00Z", "last_seen_at");
        assert_eq!(p["orders_last_365d"], 1, "{p}");
        assert_eq!(skus(&p), ["SHOE-1"]);
        assert_eq!(p["lifecycle_stage"], "active", "{p}");
        nonempty_str(&p["stage_reason"], "stage_reason");
        assert!(p["stage_since"].is_string(), "stage_since: {p}");
        assert_eq!(p["value_tier"], "bronze", "{p}");
        for k in ["recency", "frequency", "monetary", "score"] {
            assert!(!p["rfm"][k].is_null(), "rfm.{k}: {p}");
        }
        let churn = &p["churn_risk"];
        assert_eq!(churn["level"], "low", "19 days into a 90-day default gap: {churn}");
        assert_eq!(churn["days_since_last_order"], 19, "{churn}");
        assert_num(&churn["usual_gap_days"], 90.0, "churn_risk.usual_gap_days");
        nonempty_str(&churn["reason"], "churn_risk.reason");
        assert!(p["interests"].is_array(), "{p}");

        // The order is on the timeline as sent, and the stage change beside it.
        let orders = timeline(app, &ana, "?type=order.completed").await;
        assert_eq!(orders.len(), 1, "{orders:?}");
        let e = &orders[0];
        assert_eq!(e["id"], "shop-order-1001");
        assert_eq!(e["type"], "order.completed");
        assert_eq!(e["channel"], "store");
        assert_time(&e["occurred_at"], "2026-11-01T10:00:00Z", "occurred_at");
        assert_time(&e["received_at"], "2026-11-20T12:00:00Z", "received_at");
        assert_eq!(e["payload"]["currency"], "EUR");
        assert_num(&e["payload"]["total"], 129.0, "payload.total");
        assert_eq!(e["payload"]["store"], "main");
        assert_eq!(e["payload"]["items"][0]["sku"], "SHOE-1");
        assert_num(&e["payload"]["items"][0]["price"], 129.0, "payload.items[0].price");
        assert_eq!(stage_changes(app, &ana).await.first(), Some(&("lead".to_string(), "active".to_string())));

        // All of it survives a restart.
        app.reopen().await;
        assert_eq!(profile(app, &ana).await, p, "the same profile after a restart");
        assert_eq!(timeline(app, &ana, "?type=order.completed").await, orders);

        // Unknown people have no profile, timeline or recommendations.
        let nobody = uuid::Uuid::new_v4();
        for what in ["profile", "timeline", "recommendations"] {
            app.get(&format!("/api/v1/contacts/{nobody}/{what}")).await.expect_problem(404);
        }
    }

    async fn a_mixed_batch_answers_per_item_and_keeps_the_good_ones(app) {
        let ana = id_of(&app.create("/api/v1/contacts", json!({"first_name":"Ana","emails":[{"address":"ana@example.com"}],
            "phones":[{"number":"+63 917 123 4567"}],"external_ids":[{"source":"pos","id":"C-7"}]})).await);
        let who = by_email("ana@example.com");
        let batch = vec![
            /* 0 */ order("o-1", &who, "2026-01-10T10:00:00Z", 50.0, vec![line("A-1", "bags", 50.0)]),
            /* 1 */ order("o-2", &who, "2026-01-10T11:00:00Z", 10.0, vec![json!({"name":"No sku","quantity":1,"price":10.0})]),
            /* 2 */ json!({"type":"email.opened","contact":{"email":"not-an-email"}}),
            /* 3 */ simple("far-future", "visit.checked_in", &who, "2026-01-17T09:00:00Z"),
            /* 4 */ json!({"type":"order.complete","contact":who,"channel":"store","payload":{"currency":"EUR","total":5.0}}),
            /* 5 */ json!({"type":"shop.wishlist_added","contact":who,"payload":{"sku":"W-1"}}),
            /* 6 */ json!({"type":"shop.wishlist_added","contact":{"external_id":{"source":"pos","id":"C-7"}},"channel":"web",
                "occurred_at":"2026-01-11T10:00:00Z","payload":{"sku":"W-1"}}),
            /* 7 */ json!({"type":"email.opened","contact":{"email":"nobody@example.com"}}),
            /* 8 */ json!({"type":"lifecycle.changed","contact":who,"channel":"system","payload":{"from":"lead","to":"vip","reason":"x"}}),
            /* 9 */ json!({"type":"feedback.given","contact":who,"channel":"web","payload":{"score":11}}),
            /* 10 */ json!({"type":"call.logged","contact":who,"payload":{"duration_seconds":60}}),
            /* 11 */ json!({"type":"social.mentioned","contact":who,"payload":{"sentiment":"angry"}}),
            /* 12 */ json!({"type":"product.viewed","contact":{"id":ana},"occurred_at":"2026-01-12T10:00:00Z",
                "payload":{"sku":"B-2","name":"Big bag","category":"bags"}}),
            /* 13 */ json!({"type":"page.viewed","contact":who,"channel":"pigeon","payload":{"url":"https://shop.example/"}}),
            /* 14 */ json!({"type":"page.viewed","contact":{"phone":"+639171234567"},"occurred_at":"2026-01-13T10:00:00Z",
                "payload":{"url":"https://shop.example/bags","category":"bags"}}),
            /* 15 */ json!({"type":"order.refunded","contact":who,"channel":"store","payload":{"total":5.0}}),
            /* 16 */ json!({"type":"email.opened","contact":who,"occurred_at":"yesterday"}),
            /* 17 */ json!({"contact":who,"channel":"web"}),
            /* 18 */ json!({"type":"call.logged","contact":who,"occurred_at":"2026-01-14T10:00:00Z",
                "payload":{"direction":"inbound","duration_seconds":120,"outcome":"connected"}}),
            /* 19 */ json!({"type":"email.opened","contact":{"id":uuid::Uuid::new_v4()}}),
            /* 20 */ json!({"type":"page.viewed","contact":who,"payload":[1, 2]}),
            /* 21 */ json!("not an event"),
        ];
        let results = ingest(app, batch).await;
        let accepted = [0, 6, 12, 14, 18];
        for (i, r) in results.iter().enumerate() {
            if accepted.contains(&i) {
                assert_eq!(r["status"], "accepted", "item {i}: {r}");
            } else {
                assert_eq!(r["status"], "rejected", "item {i}: {r}");
            }
        }
        assert_rejected(&results[1], "payload.items[0].sku");
        assert_rejected(&results[2], "contact.email");
        assert_rejected(&results[3], "occurred_at");
        assert_rejected(&results[4], "type");
        assert_rejected(&results[5], "channel");
        assert_rejected(&results[7], "contact");
        let message = results[7]["errors"][0]["message"].as_str().unwrap_or_default().to_lowercase();
        assert!(message.contains("no contact matches"), "an unknown person is named as such: {}", results[7]);
        assert_rejected(&results[8], "type");
        assert_rejected(&results[9], "payload.score");
        assert_rejected(&results[10], "payload.direction");
        assert_rejected(&results[11], "payload.sentiment");
        assert_rejected(&results[13], "channel");
        assert_rejected(&results[15], "payload.currency");
        assert_rejected(&results[16], "occurred_at");
        assert_rejected(&results[17], "type");
        assert_rejected(&results[19], "contact");
        assert_rejected(&results[20], "payload");
        assert_eq!(results[21]["status"], "rejected", "{}", results[21]);
        let mut generated: Vec<&str> = [6, 12, 14, 18].iter().map(|&i| results[i]["id"].as_str().unwrap_or_default()).collect();
        generated.sort_unstable();
        generated.dedup();
        assert_eq!(generated.len(), 4, "each accepted event gets its own id: {results:?}");

        // Exactly the good events were stored, on the right person, with default channels.
        let stored = activity(app, &ana).await;
        assert_eq!(types(&stored), ["call.logged", "page.viewed", "product.viewed", "shop.wishlist_added", "order.completed"]);
        let want_ids: Vec<String> = [18, 14, 12, 6, 0].iter().map(|&i| results[i]["id"].as_str().unwrap_or_default().to_string()).collect();
        assert_eq!(event_ids(&stored), want_ids);
        let channels: Vec<&str> = stored.iter().map(|e| e["channel"].as_str().unwrap_or_default()).collect();
        assert_eq!(channels, ["phone", "web", "web", "web", "store"]);
        assert_eq!(stored[3]["payload"], json!({"sku":"W-1"}), "a custom payload is kept as sent");
        assert_eq!(app.contact_count().await, 1, "a rejected unknown person creates no contact");

        let p = profile(app, &ana).await;
        assert_eq!(p["order_count"], 1, "{p}");
        assert_revenue(&p, &[("EUR", 50.0)]);
        assert_eq!(skus(&p), ["A-1"]);
        assert!(interest(&p, "product", "B-2").is_some(), "the viewed bag is an interest: {}", p["interests"]);
        assert!(interest(&p, "category", "bags").is_some(), "bags is an interest: {}", p["interests"]);
    }

    async fn duplicate_delivery_changes_nothing(app) {
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        let who = by_email("ana@example.com");
        let batch = vec![
            order("o-1", &who, "2026-01-02T10:00:00Z", 100.0, vec![line("X-1", "hats", 100.0)]),
            order("o-2", &who, "2026-01-09T10:00:00Z", 40.0, vec![line("X-2", "hats", 40.0)]),
            refund("r-1", &who, "2026-01-10T10:00:00Z", 10.0),
            view("v-1", &who, "2026-01-11T10:00:00Z", "X-3", "hats"),
            view("v-2", &who, "2026-01-12T10:00:00Z", "X-3", "hats"),
            // The same event twice in one batch.
            order("o-1", &who, "2026-01-02T10:00:00Z", 100.0, vec![line("X-1", "hats", 100.0)]),
        ];
        let first = ingest(app, batch.clone()).await;
        assert_eq!(statuses(&first), ["accepted", "accepted", "accepted", "accepted", "accepted", "duplicate"]);
        let p1 = profile(app, &ana).await;
        assert_eq!(p1["order_count"], 2, "{p1}");
        assert_revenue(&p1, &[("EUR", 130.0)]);
        let t1 = timeline(app, &ana, "").await;
        assert_eq!(t1.iter().filter(|e| e["type"] != "lifecycle.changed").count(), 5);

        // The whole batch again: every item is a duplicate and nothing moves.
        let again = ingest(app, batch.clone()).await;
        assert_eq!(statuses(&again), ["duplicate"; 6]);
        assert_eq!(profile(app, &ana).await, p1, "a redelivery leaves the profile as it was");
        assert_eq!(timeline(app, &ana, "").await, t1, "a redelivery adds nothing to the timeline");

        // An id already stored wins over different content; a new id is new.
        let changed = order("o-1", &who, "2026-01-03T10:00:00Z", 999.0, vec![line("Z-9", "hats", 999.0)]);
        let third = ingest(app, vec![changed, order("o-3", &who, "2026-01-13T10:00:00Z", 20.0, vec![line("X-4", "hats", 20.0)])]).await;
        assert_eq!(statuses(&third), ["duplicate", "accepted"]);
        let p3 = profile(app, &ana).await;
        assert_eq!(p3["order_count"], 3, "{p3}");
        assert_revenue(&p3, &[("EUR", 150.0)]);
        assert_eq!(skus(&p3), ["X-1", "X-2", "X-4"]);

        // Sender ids are global: the same id for someone else is still a duplicate.
        let bea = new_contact(app, "Bea", "bea@example.com").await;
        let r = ingest(app, vec![order("o-2", &by_id(&bea), "2026-01-09T10:00:00Z", 40.0, vec![line("X-2", "hats", 40.0)])]).await;
        assert_eq!(statuses(&r), ["duplicate"]);
        assert_eq!(profile(app, &bea).await["order_count"], 0);
    }

    async fn out_of_order_events_give_the_same_profile(app) {
        let a = new_contact(app, "Ana", "a@example.com").await;
        let b = new_contact(app, "Bea", "b@example.com").await;
        let c = new_contact(app, "Cy", "c@example.com").await;

        // Ana's history in order, in one batch.
        assert_eq!(statuses(&ingest(app, history("a", &by_email("a@example.com"))).await), ["accepted"; 13]);
        // Bea's newest first, four at a time.
        let mut bea = history("b", &by_email("b@example.com"));
        bea.reverse();
        for chunk in bea.chunks(4) {
            assert!(statuses(&ingest(app, chunk.to_vec()).await).iter().all(|s| *s == "accepted"));
        }
        // Cy's shuffled, one request per event.
        let cy = history("c", &by_id(&c));
        for i in 0..cy.len() {
            let e = cy[(i * 5) % cy.len()].clone();
            assert_eq!(statuses(&ingest(app, vec![e]).await), ["accepted"]);
        }

        let pa = profile(app, &a).await;
        // What the history means, at 2026-01-15T09:00.
        assert_eq!(pa["order_count"], 4, "{pa}");
        assert_revenue(&pa, &[("EUR", 260.0)]);
        assert_revenue_base(&pa, 260.0);
        assert_eq!(pa["value_tier"], "bronze", "{pa}");
        assert_time(&pa["last_order_at"], "2025-12-20T10:00:00Z", "last_order_at");
        assert_time(&pa["first_seen_at"], "2025-03-01T10:00:00Z", "first_seen_at");
        assert_time(&pa["last_seen_at"], "2026-01-12T10:00:00Z", "last_seen_at");
        assert_eq!(pa["orders_last_365d"], 4, "{pa}");
        assert_eq!(pa["visits_last_30d"], 2, "{pa}");
        assert_eq!(pa["visits_last_90d"], 2, "{pa}");
        assert_eq!(pa["email_opens"], 1, "{pa}");
        assert_eq!(pa["email_clicks"], 1, "{pa}");
        assert_time(&pa["last_open_at"], "2025-12-01T08:00:00Z", "last_open_at");
        assert_time(&pa["last_click_at"], "2025-12-02T08:00:00Z", "last_click_at");
        // 294 days from the first to the last of four orders.
        assert_num(&pa["usual_order_gap_days"], 98.0, "usual_order_gap_days");
        assert_eq!(skus(&pa), ["J-1", "S-1", "S-2", "T-1", "T-2"]);
        // The last order ended 233 days of silence, against a usual gap of 30.5 days before it.
        assert_eq!(pa["lifecycle_stage"], "reactivated", "{pa}");
        assert_eq!(pa["churn_risk"]["level"], "low", "{pa}");
        assert_eq!(pa["churn_risk"]["days_since_last_order"], 25, "{pa}");
        assert!(interest(&pa, "product", "J-2").is_some(), "{}", pa["interests"]);
        assert!(interest(&pa, "category", "jackets").is_some(), "{}", pa["interests"]);

        let pb = profile(app, &b).await;
        let pc = profile(app, &c).await;
        for field in ORDER_INDEPENDENT {
            assert!(pa.get(*field).is_some(), "the profile has {field}: {pa}");
            if let Err(e) = same_json(&pa[*field], &pb[*field], field) {
                panic!("newest-first ingest gave another profile: {e}");
            }
            if let Err(e) = same_json(&pa[*field], &pc[*field], field) {
                panic!("shuffled ingest gave another profile: {e}");
            }
        }
        for (x, y) in [(&a, &b), (&a, &c)] {
            let tx: Vec<(String, String)> = activity(app, x).await.iter().map(|e| (e["type"].to_string(), e["occurred_at"].to_string())).collect();
            let ty: Vec<(String, String)> = activity(app, y).await.iter().map(|e| (e["type"].to_string(), e["occurred_at"].to_string())).collect();
            assert_eq!(tx, ty, "the same timeline whatever the arrival order");
        }
    }

    async fn unknown_people_are_rejected_or_created_as_leads(app) {
        let nia = json!({"email":"nia@example.com","first_name":"Nia","last_name":"Cole"});
        let seen = |create: Option<bool>| {
            let mut body = json!({"events":[{"id":"v-1","type":"product.viewed","contact":nia,"occurred_at":"2026-01-14T10:00:00Z",
                "payload":{"sku":"HAT-1","name":"Felt hat","category":"hats"}}]});
            if let Some(c) = create {
                body["create_contact"] = json!(c);
            }
            body
        };

        // Rejected by default and when asked to.
        for create in [None, Some(false)] {
            let r = ingest_body(app, seen(create)).await;
            assert_rejected(&r[0], "contact");
            let message = r[0]["errors"][0]["message"].as_str().unwrap_or_default().to_lowercase();
            assert!(message.contains("no contact matches"), "{}", r[0]);
        }
        assert_eq!(app.contact_count().await, 0, "a rejected event creates nobody");

        // Created as a lead when asked (the rejected id was not remembered).
        let r = ingest_body(app, seen(Some(true))).await;
        assert_eq!(statuses(&r), ["accepted"]);
        let found = app.list_all("/api/v1/contacts?q=nia@example.com").await;
        assert_eq!(found.len(), 1, "{found:?}");
        let lead = &found[0];
        assert_eq!(lead["first_name"], "Nia");
        assert_eq!(lead["last_name"], "Cole");
        assert_eq!(lead["emails"][0]["address"], "nia@example.com");
        let nia_id = id_of(lead);
        assert_eq!(event_ids(&activity(app, &nia_id).await), ["v-1"]);

        let p = profile(app, &nia_id).await;
        assert_eq!(p["lifecycle_stage"], "lead", "{p}");
        nonempty_str(&p["stage_reason"], "stage_reason");
        assert_eq!(p["order_count"], 0, "{p}");
        assert!(p["value_tier"].is_null(), "no tier before a first order: {p}");
        assert!(p["average_order_value"].is_null(), "{p}");
        assert!(p["last_order_at"].is_null(), "{p}");
        assert!(p["rfm"].is_null(), "{p}");
        assert_eq!(p["churn_risk"]["level"], "unknown", "{p}");
        assert_eq!(skus(&p), Vec::<String>::new());
        assert_revenue(&p, &[]);
        assert_time(&p["first_seen_at"], "2026-01-14T10:00:00Z", "first_seen_at");
        assert!(interest(&p, "product", "HAT-1").is_some(), "{}", p["interests"]);
        assert!(interest(&p, "category", "hats").is_some(), "{}", p["interests"]);

        // The same unknown person twice in one batch is one contact; a known one is matched.
        let zed = by_email("zed@example.com");
        let r = ingest_body(app, json!({"create_contact": true, "events": [
            simple("z-1", "email.opened", &zed, "2026-01-13T10:00:00Z"),
            simple("z-2", "email.clicked", &zed, "2026-01-13T10:05:00Z"),
            simple("n-2", "email.opened", &by_email("NIA@example.com"), "2026-01-13T11:00:00Z"),
        ]})).await;
        assert_eq!(statuses(&r), ["accepted"; 3]);
        assert_eq!(app.contact_count().await, 2, "nia and zed");
        let zed_id = id_of(&app.list_all("/api/v1/contacts?q=zed@example.com").await[0]);
        assert_eq!(event_ids(&activity(app, &zed_id).await), ["z-2", "z-1"]);
        assert_eq!(event_ids(&activity(app, &nia_id).await), ["v-1", "n-2"]);

        // By external id, with a display name; then matched without create_contact.
        let shop = json!({"external_id":{"source":"shop","id":"u-9"},"name":"Shop User 9"});
        let r = ingest_body(app, json!({"create_contact": true, "events": [simple("s-1", "email.opened", &shop, "2026-01-13T10:00:00Z")]})).await;
        assert_eq!(statuses(&r), ["accepted"]);
        let r = ingest(app, vec![simple("s-2", "email.opened", &json!({"external_id":{"source":"shop","id":"u-9"}}), "2026-01-14T10:00:00Z")]).await;
        assert_eq!(statuses(&r), ["accepted"]);
        let all = app.list_all("/api/v1/contacts?limit=500").await;
        let shop_user = all.iter().find(|c| c["display_name"] == "Shop User 9").unwrap_or_else(|| panic!("the lead from the shop: {all:?}"));
        assert!(
            shop_user["external_ids"].as_array().is_some_and(|x| x.iter().any(|e| e["source"] == "shop" && e["id"] == "u-9")),
            "the lead keeps its external id: {shop_user}"
        );
        assert_eq!(event_ids(&activity(app, &id_of(shop_user)).await), ["s-2", "s-1"]);

        // By phone.
        let r = ingest_body(app, json!({"create_contact": true, "events": [
            {"type":"sms.received","contact":{"phone":"+44 20 7946 0958"},"occurred_at":"2026-01-14T10:00:00Z","payload":{"text":"Hi"}}
        ]})).await;
        assert_eq!(statuses(&r), ["accepted"]);
        let by_phone = app.list_all("/api/v1/contacts?phone=%2B442079460958").await;
        assert_eq!(by_phone.len(), 1, "{by_phone:?}");
        assert_eq!(by_phone[0]["phones"][0]["e164"], "+442079460958");
        assert_eq!(app.contact_count().await, 4);

        // A lead who buys becomes active.
        assert_eq!(statuses(&ingest(app, vec![order("n-o1", &by_email("nia@example.com"), "2026-01-15T08:00:00Z", 30.0,
            vec![line("HAT-1", "hats", 30.0)])]).await), ["accepted"]);
        assert_eq!(profile(app, &nia_id).await["lifecycle_stage"], "active");
        assert_eq!(stage_changes(app, &nia_id).await.first(), Some(&("lead".to_string(), "active".to_string())));
    }

    async fn refunds_subtract_from_revenue(app) {
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        let who = by_email("ana@example.com");
        ingest(app, vec![
            order("o-1", &who, "2026-01-01T10:00:00Z", 300.0, vec![line("C-1", "coats", 300.0)]),
            order("o-2", &who, "2026-01-05T10:00:00Z", 250.0, vec![line("C-2", "coats", 250.0)]),
        ]).await;
        let p = profile(app, &ana).await;
        assert_revenue(&p, &[("EUR", 550.0)]);
        assert_revenue_base(&p, 550.0);
        assert_num(&p["average_order_value"], 275.0, "average_order_value");
        assert_eq!(p["value_tier"], "silver", "550 EUR: {p}");

        assert_eq!(statuses(&ingest(app, vec![refund("r-1", &who, "2026-01-06T10:00:00Z", 100.0)]).await), ["accepted"]);
        let p = profile(app, &ana).await;
        assert_revenue(&p, &[("EUR", 450.0)]);
        assert_revenue_base(&p, 450.0);
        assert_eq!(p["order_count"], 2, "a refund is not an order: {p}");
        assert_eq!(p["value_tier"], "bronze", "450 EUR after the refund: {p}");

        ingest(app, vec![order("o-3", &who, "2026-01-07T10:00:00Z", 1600.0, vec![line("C-3", "coats", 1600.0)])]).await;
        let p = profile(app, &ana).await;
        assert_revenue(&p, &[("EUR", 2050.0)]);
        assert_eq!(p["value_tier"], "gold", "2050 EUR: {p}");

        // A late refund, older than the last order, counts the same.
        ingest(app, vec![refund("r-2", &who, "2026-01-02T10:00:00Z", 60.0)]).await;
        let p = profile(app, &ana).await;
        assert_revenue(&p, &[("EUR", 1990.0)]);
        assert_revenue_base(&p, 1990.0);
        assert_eq!(p["value_tier"], "silver", "1990 EUR: {p}");

        // Exactly at a threshold reaches the tier.
        ingest(app, vec![order("o-5", &who, "2026-01-09T10:00:00Z", 8010.0, vec![line("C-5", "coats", 8010.0)])]).await;
        let p = profile(app, &ana).await;
        assert_revenue_base(&p, 10000.0);
        assert_eq!(p["value_tier"], "vip", "10000 EUR: {p}");

        // Other currencies are totalled apart.
        ingest(app, vec![json!({"id":"o-4","type":"order.completed","contact":who,"occurred_at":"2026-01-08T10:00:00Z","channel":"web",
            "payload":{"currency":"USD","total":40.0,"items":[{"sku":"C-4","name":"Socks","category":"socks","quantity":2,"price":20.0}]}})]).await;
        let p = profile(app, &ana).await;
        assert_revenue(&p, &[("EUR", 10000.0), ("USD", 40.0)]);
        assert_eq!(p["order_count"], 5, "{p}");
    }

    async fn the_timeline_pages_newest_first_and_filters(app) {
        let tia = new_contact(app, "Tia", "tia@example.com").await;
        let who = by_email("tia@example.com");
        // 25 page views, two per hour (pairs share a time) from 2026-01-01T00:00.
        let base = t("2026-01-01T00:00:00Z");
        let views: Vec<Value> = (0..25)
            .map(|i| {
                let at = (base + chrono::Duration::hours(i / 2)).to_rfc3339();
                json!({"id": format!("pv-{i:02}"), "type": "page.viewed", "contact": who, "occurred_at": at,
                    "payload": {"url": format!("https://shop.example/p/{i}")}})
            })
            .collect();
        assert_eq!(statuses(&ingest(app, views).await), ["accepted"; 25]);
        let others = vec![
            simple("es-1", "email.sent", &who, "2026-01-04T10:00:00Z"),
            simple("eo-1", "email.opened", &who, "2026-01-05T10:00:00Z"),
            simple("eo-2", "email.opened", &who, "2026-01-06T10:00:00Z"),
            simple("ec-1", "email.clicked", &who, "2026-01-07T10:00:00Z"),
            simple("ss-1", "sms.sent", &who, "2026-01-08T10:00:00Z"),
            simple("vi-1", "visit.checked_in", &who, "2026-01-09T10:00:00Z"),
            simple("vi-2", "visit.checked_in", &who, "2026-01-10T10:00:00Z"),
            order("or-1", &who, "2026-01-11T10:00:00Z", 20.0, vec![line("K-1", "keys", 20.0)]),
            json!({"id":"wl-1","type":"shop.wishlist_added","contact":who,"channel":"app","occurred_at":"2026-01-12T10:00:00Z","payload":{}}),
        ];
        assert_eq!(statuses(&ingest(app, others).await), ["accepted"; 9]);

        // limit 10: three pages, newest first, each view once.
        let path = format!("/api/v1/contacts/{tia}/timeline?type=page.viewed&limit=10");
        let first = app.get(&path).await.expect(200);
        let mut pages = vec![first.clone()];
        let mut cursor = first["next_cursor"].as_str().map(str::to_string);
        while let Some(c) = cursor {
            assert!(pages.len() < 10, "runaway pagination");
            let page = app.get(&format!("{path}&cursor={c}")).await.expect(200);
            cursor = page["next_cursor"].as_str().map(str::to_string);
            pages.push(page);
        }
        let sizes: Vec<usize> = pages.iter().map(|p| p["data"].as_array().map_or(0, Vec::len)).collect();
        assert_eq!(sizes, [10, 10, 5]);
        assert!(pages[2]["next_cursor"].is_null(), "next_cursor is null on the last page: {}", pages[2]);
        let walked: Vec<Value> = pages.iter().flat_map(|p| p["data"].as_array().cloned().unwrap_or_default()).collect();
        for pair in walked.windows(2) {
            assert!(time_of(&pair[0]["occurred_at"]) >= time_of(&pair[1]["occurred_at"]), "newest first across pages");
        }
        let mut got = event_ids(&walked);
        got.sort();
        let want: Vec<String> = (0..25).map(|i| format!("pv-{i:02}")).collect();
        assert_eq!(got, want, "every view exactly once");
        assert_time(&walked[0]["occurred_at"], "2026-01-01T12:00:00Z", "the newest view first");
        for e in &walked {
            assert_eq!(e["channel"], "web");
            assert!(e["received_at"].is_string(), "{e}");
        }

        // Filters.
        assert_eq!(timeline_ids(app, &tia, "?type=email.opened").await, ["eo-2", "eo-1"]);
        assert_eq!(timeline_ids(app, &tia, "?type=email.*").await, ["ec-1", "eo-2", "eo-1", "es-1"]);
        assert_eq!(timeline_ids(app, &tia, "?type=email.opened,sms.sent").await, ["ss-1", "eo-2", "eo-1"]);
        assert_eq!(timeline_ids(app, &tia, "?type=email.*,visit.checked_in").await, ["vi-2", "vi-1", "ec-1", "eo-2", "eo-1", "es-1"]);
        assert_eq!(timeline_ids(app, &tia, "?channel=store").await, ["or-1", "vi-2", "vi-1"]);
        assert_eq!(timeline_ids(app, &tia, "?channel=store&limit=2").await, ["or-1", "vi-2", "vi-1"]);
        assert_eq!(timeline_ids(app, &tia, "?channel=email").await, ["ec-1", "eo-2", "eo-1", "es-1"]);
        assert_eq!(timeline_ids(app, &tia, "?channel=web,app").await.len(), 26);
        assert_eq!(timeline_ids(app, &tia, "?since=2026-01-06T00:00:00Z&until=2026-01-10T00:00:00Z").await, ["vi-1", "ss-1", "ec-1", "eo-2"]);
        assert_eq!(timeline_ids(app, &tia, "?type=email.*&since=2026-01-05T12:00:00Z").await, ["ec-1", "eo-2"]);
        assert_eq!(timeline_ids(app, &tia, "?type=visit.checked_in&until=2026-01-09T12:00:00Z").await, ["vi-1"]);
        assert_eq!(timeline_ids(app, &tia, "?type=shop.wishlist_added&channel=web").await, Vec::<String>::new());
        let everything = timeline(app, &tia, "").await;
        assert_eq!(everything.iter().filter(|e| e["type"] != "lifecycle.changed").count(), 34);

        app.get(&format!("/api/v1/contacts/{tia}/timeline?since=yesterday")).await.expect_field_problem(400, "since");
        app.get(&format!("/api/v1/contacts/{}/timeline", uuid::Uuid::new_v4())).await.expect_problem(404);
    }

    async fn a_note_appears_on_the_timeline(app) {
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        ingest(app, vec![json!({"id":"c-1","type":"chat.message","contact":by_id(&ana),"occurred_at":"2026-01-15T08:00:00Z",
            "payload":{"direction":"inbound","text":"Do you have size 42?"}})]).await;
        let body = "Called back about the **boots**.";
        let note = app.create("/api/v1/notes", json!({"contact_id": ana, "body": body})).await;

        let notes = timeline(app, &ana, "?type=note.added").await;
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0]["payload"]["note_id"], note["id"], "{}", notes[0]);
        assert_eq!(notes[0]["payload"]["body"], body);
        assert_time(&notes[0]["occurred_at"], "2026-01-15T09:00:00Z", "a note happens when it is written");
        assert_eq!(types(&activity(app, &ana).await), ["note.added", "chat.message"]);
    }

    async fn the_clock_makes_customers_at_risk_then_lost(app) {
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        let bea = new_contact(app, "Bea", "bea@example.com").await;
        let cara = new_contact(app, "Cara", "cara@example.com").await;
        ingest(app, vec![
            order("a-1", &by_id(&ana), "2026-01-15T08:00:00Z", 129.0, vec![line("SHOE-1", "shoes", 129.0)]),
            order("b-1", &by_id(&bea), "2026-01-14T08:00:00Z", 50.0, vec![line("SOCK-1", "socks", 50.0)]),
            json!({"type":"page.viewed","contact":by_id(&cara),"occurred_at":"2026-01-15T08:30:00Z","payload":{"url":"https://shop.example/"}}),
        ]).await;
        assert_eq!(profile(app, &ana).await["lifecycle_stage"], "active");
        assert_eq!(profile(app, &bea).await["lifecycle_stage"], "active");

        // One order: judged against the default 90-day gap, at risk after 135 days.
        assert_eq!(advance_clock(app, "P134D").await, 1, "bea is 135 days past her order");
        assert_eq!(app.clock.now(), t("2026-05-29T09:00:00Z"));
        let p = profile(app, &ana).await;
        assert_eq!(p["lifecycle_stage"], "active", "134 days is not yet overdue: {p}");
        assert_eq!(p["churn_risk"]["days_since_last_order"], 134, "{p}");
        assert_eq!(profile(app, &bea).await["lifecycle_stage"], "at_risk");

        assert_eq!(advance_clock(app, "P2D").await, 1, "ana passes 135 days");
        let p = profile(app, &ana).await;
        assert_eq!(p["lifecycle_stage"], "at_risk", "{p}");
        nonempty_str(&p["stage_reason"], "stage_reason");
        let since = time_of(&p["stage_since"]);
        assert!(since >= t("2026-05-30T08:00:00Z") && since <= app.clock.now(), "stage_since {since}: {p}");
        let churn = &p["churn_risk"];
        assert_eq!(churn["level"], "high", "{churn}");
        assert_eq!(churn["days_since_last_order"], 136, "{churn}");
        assert_num(&churn["usual_gap_days"], 90.0, "churn_risk.usual_gap_days");
        nonempty_str(&churn["reason"], "churn_risk.reason");
        assert_eq!(stage_changes(app, &ana).await, pairs(&[("active", "at_risk"), ("lead", "active")]));
        let latest = &timeline(app, &ana, "?type=lifecycle.changed").await[0];
        assert_eq!(latest["payload"]["reason"], p["stage_reason"], "the event carries the stage's reason: {latest}");

        // A year without an order: lost.
        assert_eq!(move_clock(app, json!({"set": "2027-01-15T09:00:00Z"})).await, 2, "both are lost");
        let p = profile(app, &ana).await;
        assert_eq!(p["lifecycle_stage"], "lost", "{p}");
        assert_eq!(p["churn_risk"]["level"], "lost", "{p}");
        nonempty_str(&p["stage_reason"], "stage_reason");
        assert_eq!(stage_changes(app, &ana).await, pairs(&[("at_risk", "lost"), ("active", "at_risk"), ("lead", "active")]));
        assert_eq!(profile(app, &bea).await["lifecycle_stage"], "lost");

        // Nothing more happens by time alone; a lead stays a lead.
        assert_eq!(advance_clock(app, "P30D").await, 0);
        assert_eq!(profile(app, &cara).await["lifecycle_stage"], "lead");
        assert!(stage_changes(app, &cara).await.iter().all(|(_, to)| to == "lead"), "a lead never changed stage");
    }

    async fn a_late_order_reactivates(app) {
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        ingest(app, vec![order("o-1", &by_id(&ana), "2026-01-15T08:00:00Z", 80.0, vec![line("B-1", "bags", 80.0)])]).await;
        assert_eq!(advance_clock(app, "P200D").await, 1);
        assert_eq!(profile(app, &ana).await["lifecycle_stage"], "at_risk");

        // An order now (occurred_at defaults to the server's time).
        let r = ingest(app, vec![json!({"type":"order.completed","contact":by_id(&ana),"channel":"web",
            "payload":{"currency":"EUR","total":20.0,"items":[{"sku":"B-2","name":"Strap","category":"bags","quantity":1,"price":20.0}]}})]).await;
        assert_eq!(statuses(&r), ["accepted"]);
        let p = profile(app, &ana).await;
        assert_eq!(p["lifecycle_stage"], "reactivated", "an order after 200 silent days: {p}");
        nonempty_str(&p["stage_reason"], "stage_reason");
        assert_eq!(p["order_count"], 2, "{p}");
        assert_eq!(p["churn_risk"]["level"], "low", "{p}");
        assert_time(&p["last_order_at"], &app.clock.now().to_rfc3339(), "last_order_at");
        assert_eq!(stage_changes(app, &ana).await, pairs(&[("at_risk", "reactivated"), ("active", "at_risk"), ("lead", "active")]));
    }

    async fn a_second_order_makes_a_customer_loyal(app) {
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        ingest(app, vec![order("o-1", &by_id(&ana), "2026-01-15T08:00:00Z", 80.0, vec![line("B-1", "bags", 80.0)])]).await;
        assert_eq!(profile(app, &ana).await["lifecycle_stage"], "active");
        assert_eq!(advance_clock(app, "P30D").await, 0);
        ingest(app, vec![order("o-2", &by_id(&ana), "2026-02-14T08:00:00Z", 40.0, vec![line("B-2", "bags", 40.0)])]).await;
        let p = profile(app, &ana).await;
        assert_eq!(p["lifecycle_stage"], "loyal", "{p}");
        nonempty_str(&p["stage_reason"], "stage_reason");
        assert_num(&p["usual_order_gap_days"], 30.0, "usual_order_gap_days");
        assert_eq!(stage_changes(app, &ana).await, pairs(&[("active", "loyal"), ("lead", "active")]));
    }

    async fn at_risk_follows_the_persons_own_rhythm(app) {
        let bea = new_contact(app, "Bea", "bea@example.com").await;
        let who = by_id(&bea);
        ingest(app, vec![
            order("o-1", &who, "2025-12-26T08:00:00Z", 10.0, vec![line("M-1", "milk", 10.0)]),
            order("o-2", &who, "2026-01-05T08:00:00Z", 10.0, vec![line("M-1", "milk", 10.0)]),
            order("o-3", &who, "2026-01-15T08:00:00Z", 10.0, vec![line("M-1", "milk", 10.0)]),
        ]).await;
        let p = profile(app, &bea).await;
        assert_eq!(p["lifecycle_stage"], "loyal", "{p}");
        assert_num(&p["usual_order_gap_days"], 10.0, "usual_order_gap_days");
        assert_num(&p["churn_risk"]["usual_gap_days"], 10.0, "churn_risk.usual_gap_days");

        // Every ten days, so overdue after fifteen: long before the 135 days of a one-off buyer.
        assert_eq!(advance_clock(app, "P14D").await, 0);
        assert_eq!(profile(app, &bea).await["lifecycle_stage"], "loyal");
        assert_eq!(advance_clock(app, "P1D").await, 1);
        let p = profile(app, &bea).await;
        assert_eq!(p["lifecycle_stage"], "at_risk", "{p}");
        assert_eq!(p["churn_risk"]["level"], "high", "{p}");
        assert_eq!(p["churn_risk"]["days_since_last_order"], 15, "{p}");
        assert_eq!(stage_changes(app, &bea).await.first(), Some(&("loyal".to_string(), "at_risk".to_string())));
    }

    async fn engagement_counters_and_visit_windows_follow_the_clock(app) {
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        let who = by_id(&ana);
        let mut events = vec![simple("es", "email.sent", &who, "2026-01-15T08:00:00Z")];
        for (i, at) in ["2026-01-02T10:00:00Z", "2026-01-06T10:00:00Z", "2026-01-10T10:00:00Z"].iter().enumerate() {
            events.push(simple(&format!("eo-{i}"), "email.opened", &who, at));
        }
        for (i, at) in ["2026-01-06T10:05:00Z", "2026-01-12T10:00:00Z"].iter().enumerate() {
            events.push(json!({"id": format!("ec-{i}"), "type": "email.clicked", "contact": who, "occurred_at": at,
                "payload": {"url": "https://shop.example/knitwear"}}));
        }
        for (i, at) in ["2025-10-01T10:00:00Z", "2025-12-01T10:00:00Z", "2026-01-01T10:00:00Z", "2026-01-10T10:00:00Z"].iter().enumerate() {
            events.push(simple(&format!("vi-{i}"), "visit.checked_in", &who, at));
        }
        events.push(json!({"id":"ch","type":"chat.message","contact":who,"occurred_at":"2026-01-14T12:00:00Z",
            "payload":{"direction":"inbound","text":"Is the blue one back?"}}));
        events.push(view("kv", &who, "2026-01-14T11:00:00Z", "KNIT-1", "knitwear"));
        assert!(statuses(&ingest(app, events).await).iter().all(|s| *s == "accepted"));

        let p = profile(app, &ana).await;
        assert_eq!(p["email_opens"], 3, "email.sent is not an open: {p}");
        assert_eq!(p["email_clicks"], 2, "{p}");
        assert_time(&p["last_open_at"], "2026-01-10T10:00:00Z", "last_open_at");
        assert_time(&p["last_click_at"], "2026-01-12T10:00:00Z", "last_click_at");
        assert_time(&p["last_engagement_at"], "2026-01-14T12:00:00Z", "last_engagement_at");
        assert_time(&p["first_seen_at"], "2025-10-01T10:00:00Z", "first_seen_at");
        assert_eq!(p["visits_last_30d"], 2, "{p}");
        assert_eq!(p["visits_last_90d"], 3, "{p}");
        let gap = num(&p["usual_visit_gap_days"]);
        assert!((33.0..=34.0).contains(&gap), "101 days over three gaps: usual_visit_gap_days {gap}");
        assert_eq!(p["order_count"], 0, "{p}");
        assert_eq!(p["lifecycle_stage"], "lead", "{p}");
        let before = num(&interest(&p, "product", "KNIT-1").unwrap_or_else(|| panic!("{}", p["interests"]))["score"]);

        // Thirty days on, the recent visits have aged out of the 30-day window and interest decays.
        assert_eq!(advance_clock(app, "P30D").await, 0);
        let p = profile(app, &ana).await;
        assert_eq!(p["visits_last_30d"], 0, "{p}");
        assert_eq!(p["visits_last_90d"], 3, "{p}");
        let after = num(&interest(&p, "product", "KNIT-1").unwrap_or_else(|| panic!("{}", p["interests"]))["score"]);
        assert!(after < before, "interest decays with time: {before} then {after}");

        ingest(app, vec![json!({"type":"email.opened","contact":who})]).await;
        let p = profile(app, &ana).await;
        assert_eq!(p["email_opens"], 4, "{p}");
        assert_time(&p["last_open_at"], &app.clock.now().to_rfc3339(), "last_open_at");
    }

    async fn recommendations_never_include_what_was_bought(app) {
        // Other customers make some products popular.
        let mut sales = Vec::new();
        for (n, bought) in [vec!["BOOT-1", "BOOT-2", "HAT-1"], vec!["BOOT-2", "HAT-1"], vec!["BOOT-3", "HAT-1"], vec!["HAT-1"]].iter().enumerate() {
            let email = format!("buyer{n}@example.com");
            new_contact(app, &format!("Buyer{n}"), &email).await;
            let items: Vec<Value> = bought.iter().map(|s| line(s, if s.starts_with("BOOT") { "boots" } else { "hats" }, 50.0)).collect();
            let total = 50.0 * items.len() as f64;
            sales.push(order(&format!("sale-{n}"), &by_email(&email), "2026-01-05T10:00:00Z", total, items));
        }
        assert!(statuses(&ingest(app, sales).await).iter().all(|s| *s == "accepted"));

        // Ana bought BOOT-1 in another shop, keeps looking at it, and looks at a scarf and gloves.
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        let who = by_id(&ana);
        let mut events = vec![json!({"id":"ana-o1","type":"order.completed","contact":who,"occurred_at":"2026-01-02T10:00:00Z",
            "channel":"store","payload":{"currency":"EUR","total":90.0,"store":"partner-shop",
            "items":[{"sku":"BOOT-1","name":"Trail boot","category":"boots","quantity":1,"price":90.0}]}})];
        for d in 3..13 {
            events.push(view(&format!("ana-b{d}"), &who, &format!("2026-01-{d:02}T10:00:00Z"), "BOOT-1", "boots"));
        }
        for (i, at) in ["2026-01-13T10:00:00Z", "2026-01-14T10:00:00Z"].iter().enumerate() {
            events.push(json!({"id": format!("ana-s{i}"), "type": "product.viewed", "contact": who, "occurred_at": at,
                "payload": {"sku": "SCARF-1", "name": "Silk scarf", "category": "scarves"}}));
        }
        events.push(json!({"id":"ana-cart","type":"cart.abandoned","contact":who,"occurred_at":"2026-01-14T12:00:00Z",
            "payload":{"items":[{"sku":"GLOVE-1","name":"Wool gloves","category":"gloves"}]}}));
        assert!(statuses(&ingest(app, events).await).iter().all(|s| *s == "accepted"));
        assert_eq!(skus(&profile(app, &ana).await), ["BOOT-1"]);

        let path = format!("/api/v1/contacts/{ana}/recommendations");
        let recs = app.get(&format!("{path}?limit=10")).await.expect(200);
        let data = recs["data"].as_array().unwrap_or_else(|| panic!("data is a list: {recs}")).clone();
        let rec_skus: Vec<&str> = data.iter().map(|r| r["sku"].as_str().unwrap_or_else(|| panic!("a sku: {r}"))).collect();
        assert!(!rec_skus.contains(&"BOOT-1"), "never something already bought, however often viewed: {recs}");
        for want in ["SCARF-1", "GLOVE-1", "BOOT-2", "BOOT-3"] {
            assert!(rec_skus.contains(&want), "{want} should be recommended: {recs}");
        }
        assert!(!rec_skus.contains(&"HAT-1"), "hats are popular but not among Ana's interests: {recs}");
        let mut unique = rec_skus.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), rec_skus.len(), "no sku twice: {recs}");
        let pos = |sku: &str| rec_skus.iter().position(|s| *s == sku);
        assert!(pos("BOOT-2") < pos("BOOT-3"), "bought by two others ranks above bought by one: {recs}");
        for r in &data {
            num(&r["score"]);
            nonempty_str(&r["reason"], "a recommendation's reason");
        }
        for pair in data.windows(2) {
            assert!(num(&pair[0]["score"]) >= num(&pair[1]["score"]), "ranked by score: {recs}");
        }
        let scarf = &data[pos("SCARF-1").unwrap_or_default()];
        assert_eq!(scarf["name"], "Silk scarf");
        assert_eq!(scarf["category"], "scarves");

        let two = app.get(&format!("{path}?limit=2")).await.expect(200);
        assert_eq!(two["data"], json!(data[..2]), "limit keeps the top of the ranking");

        // Once bought, the scarf is no longer recommended.
        ingest(app, vec![order("ana-o2", &who, "2026-01-15T08:00:00Z", 40.0, vec![line("SCARF-1", "scarves", 40.0)])]).await;
        let recs = app.get(&format!("{path}?limit=10")).await.expect(200);
        let rec_skus: Vec<&str> = recs["data"].as_array().map(|d| d.iter().filter_map(|r| r["sku"].as_str()).collect()).unwrap_or_default();
        assert!(!rec_skus.contains(&"SCARF-1") && !rec_skus.contains(&"BOOT-1"), "{recs}");
        assert!(rec_skus.contains(&"GLOVE-1"), "{recs}");
    }

    async fn roles_decide_who_may_send_events_and_move_the_clock(app) {
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        let body = json!({"events":[simple("e-1", "email.opened", &by_id(&ana), "2026-01-14T10:00:00Z")]});

        let r = send(app.anon(Method::POST, EVENTS).json(&body)).await;
        r.expect_problem(401);
        let viewer = app.create_key("viewer", Role::Viewer).await;
        send(app.with_key(&viewer, Method::POST, EVENTS).json(&body)).await.expect_problem(403);
        assert!(activity(app, &ana).await.is_empty(), "a refused request stores nothing");
        for what in ["profile", "timeline", "recommendations"] {
            let r = send(app.with_key(&viewer, Method::GET, &format!("/api/v1/contacts/{ana}/{what}"))).await;
            assert_eq!(r.status, 200, "a viewer reads the {what}: {}", r.text);
        }

        let member = app.create_key("member", Role::Member).await;
        let r = send(app.with_key(&member, Method::POST, EVENTS).json(&body)).await.expect(200);
        assert_eq!(r["results"][0]["status"], "accepted", "{r}");
        assert_eq!(event_ids(&activity(app, &ana).await), ["e-1"]);

        let manager = app.create_key("manager", Role::Manager).await;
        for key in [&member, &manager, &viewer] {
            send(app.with_key(key, Method::POST, CLOCK).json(&json!({"advance":"P7D"}))).await.expect_problem(403);
        }
        send(app.anon(Method::POST, CLOCK).json(&json!({"advance":"P7D"}))).await.expect_problem(401);
        assert_eq!(app.clock.now(), t("2026-01-15T09:00:00Z"), "a refused request does not move the clock");
    }

    async fn the_admin_clock_moves_and_checks_its_input(app) {
        assert_eq!(advance_clock(app, "P1W").await, 0);
        assert_eq!(app.clock.now(), t("2026-01-22T09:00:00Z"));
        advance_clock(app, "PT36H").await;
        assert_eq!(app.clock.now(), t("2026-01-23T21:00:00Z"));
        advance_clock(app, "P1DT2H30M15S").await;
        assert_eq!(app.clock.now(), t("2026-01-24T23:30:15Z"));
        move_clock(app, json!({"set":"2026-03-01T12:00:00Z"})).await;
        assert_eq!(app.clock.now(), t("2026-03-01T12:00:00Z"));

        for (body, field) in [
            (json!({"advance":"7 days"}), "advance"),
            (json!({"advance":"P"}), "advance"),
            (json!({"set":"next tuesday"}), "set"),
        ] {
            app.post(CLOCK, body).await.expect_field_problem(400, field);
        }
        assert_eq!(app.clock.now(), t("2026-03-01T12:00:00Z"), "a refused move does not move the clock");

        // Events are judged against the moved clock.
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        let r = ingest(app, vec![simple("ahead", "email.opened", &by_id(&ana), "2026-03-01T20:00:00Z")]).await;
        assert_eq!(statuses(&r), ["accepted"]);
        let r = ingest(app, vec![json!({"id":"now","type":"email.opened","contact":by_id(&ana)})]).await;
        assert_eq!(statuses(&r), ["accepted"]);
        let e = timeline(app, &ana, "?type=email.opened").await;
        assert_time(&e[1]["occurred_at"], "2026-03-01T12:00:00Z", "occurred_at defaults to the clock's now");
    }

    async fn the_clock_is_refused_without_a_manual_clock(app) {
        // A server built like `rapport serve` without `--clock manual`.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = rapport_web::AppState::new(app.store().clone(), rapport_web::WebConfig::default());
        let handle = tokio::spawn(rapport_web::serve(listener, state, async move {
            let _ = rx.await;
        }));
        let r = send(app.client.post(format!("{base}{CLOCK}")).bearer_auth(&app.key).json(&json!({"advance":"P1D"}))).await;
        r.expect_problem(409);
        assert_eq!(app.clock.now(), t("2026-01-15T09:00:00Z"));
        let _ = tx.send(());
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), handle).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "the second server stops cleanly: {stopped:?}");
    }

    async fn bad_bodies_are_400_and_batches_are_capped(app) {
        let raw = |body: &'static str| app.req(Method::POST, EVENTS).header("content-type", "application/json").body(body);
        send(raw("nope")).await.expect_problem(400);
        send(raw(r#"{"events": ["#)).await.expect_problem(400);
        app.post(EVENTS, json!({})).await.expect_problem(400);
        app.post(EVENTS, json!({"events": []})).await.expect_field_problem(400, "events");
        app.post(EVENTS, json!({"events": vec![json!({}); 10_001]})).await.expect_field_problem(400, "events");
        // Over the body size limit.
        let limit = rapport_web::WebConfig::default().max_ingest_body_bytes;
        let huge = format!(r#"{{"events":[{{"type":"shop.note","channel":"web","payload":{{"s":"{}"}}}}]}}"#, "a".repeat(limit));
        send(app.req(Method::POST, EVENTS).header("content-type", "application/json").body(huge)).await.expect_problem(413);

        // Exactly 10,000 is fine, and every one is stored.
        let ana = new_contact(app, "Ana", "ana@example.com").await;
        let events = vec![json!({"type":"email.opened","contact":{"id":ana}}); 10_000];
        let answer = app.post(EVENTS, json!({ "events": events })).await.expect(200);
        let results = answer["results"].as_array().expect("a results list");
        assert_eq!(results.len(), 10_000);
        assert!(results.iter().all(|r| r["status"] == "accepted"), "every event of a full batch is accepted");
        assert_eq!(results[9_999]["index"], 9_999);
        assert_eq!(profile(app, &ana).await["email_opens"], 10_000);
    }
}
