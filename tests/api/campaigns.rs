//! Campaigns (issue #7): a template sent to a segment through a real SMTP conversation, with
//! exclusions, a holdout that gets nothing, people who may not be mailed skipped with the
//! reason, local-time sending per time zone, pause/resume/cancel, a test send, and statistics
//! with conversions against the holdout.

use std::collections::HashMap;

use mail_parser::MessageParser;
use rapport_channels::email::sink::{Behaviour, SmtpSink};
use serde_json::json;

use crate::{Backend, TestApp, id_of};

const CLOCK: &str = "/api/v1/admin/clock";

async fn setup(backend: Backend) -> Option<(SmtpSink, TestApp)> {
    let sink = SmtpSink::start(Behaviour::accept()).await.expect("smtp sink");
    let app = TestApp::spawn_with_smtp(backend, sink.url()).await?;
    app.post(CLOCK, json!({"set": "2027-02-27T12:00:00Z"})).await.expect(200);
    app.create(
        "/api/v1/templates",
        json!({"name": "spring", "subject": "Spring is here, {{ contact.first_name }}",
               "text": "Hi {{ contact.first_name }}, new arrivals: https://shop.example/spring\nUnsubscribe: {{ unsubscribe_url }}",
               "html": "<p>Hi {{ contact.first_name }}, see <a href=\"https://shop.example/spring\">new arrivals</a>.</p>"}),
    )
    .await;
    Some((sink, app))
}

/// A contact tagged `tags`, with an email unless `email` is false.
async fn person(app: &TestApp, name: &str, tags: &[&str], email: bool, tz: &str) -> String {
    let mut body = json!({"first_name": name, "tags": tags, "time_zone": tz});
    if email {
        body["emails"] = json!([{"address": format!("{}@example.com", name.to_lowercase())}]);
    }
    id_of(&app.create("/api/v1/contacts", body).await)
}

async fn segment(app: &TestApp, name: &str, filter: &str) -> String {
    id_of(&app.create("/api/v1/segments", json!({"name": name, "filter": filter})).await)
}

async fn template_id(app: &TestApp) -> String {
    let list = app.get("/api/v1/templates").await.expect(200);
    list["data"][0]["id"].as_str().unwrap().to_string()
}

/// Who the sink received mail for, with how many messages each.
fn received(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in sink.messages() {
        for to in m.rcpt_to {
            *out.entry(to).or_default() += 1;
        }
    }
    out
}

/// Generates `<name>_sqlite` and `<name>_postgres` tests that run `async fn <name>(Backend)`.
macro_rules! on_both {
    ($($name:ident),+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::Backend::Postgres).await;
            }
        }
    )+};
}

on_both!(
    a_campaign_reaches_its_audience_once_minus_holdout_exclusions_and_the_unsubscribed,
    local_time_campaigns_reach_each_zone_at_its_own_nine_and_pause_resume_and_cancel,
    a_test_send_goes_to_the_address_given_with_a_real_contacts_data_and_counts_nowhere,
    a_workflows_message_steps_have_statistics_against_its_holdout
);

async fn a_campaign_reaches_its_audience_once_minus_holdout_exclusions_and_the_unsubscribed(backend: Backend) {
    let Some((sink, mut app)) = setup(backend).await else { return };
    let app = &mut app;
    let mut ids = HashMap::new();
    for i in 0..20 {
        let name = format!("Vip{i:02}");
        ids.insert(format!("{}@example.com", name.to_lowercase()), person(app, &name, &["vip"], true, "Europe/Lisbon").await);
    }
    person(app, "Staffer", &["vip", "staff"], true, "Europe/Lisbon").await;
    let quiet = person(app, "Quiet", &["vip"], true, "Europe/Lisbon").await;
    person(app, "Nomail", &["vip"], false, "Europe/Lisbon").await;
    person(app, "Outsider", &[], true, "Europe/Lisbon").await;
    app.post(
        "/api/v1/events",
        json!({"events": [{"type": "email.unsubscribed", "contact": {"id": quiet},
            "occurred_at": "2027-02-20T10:00:00Z", "channel": "email", "payload": {}}]}),
    )
    .await
    .expect(200);
    let vips = segment(app, "VIPs", "tag = \"vip\"").await;
    let staff_segment = segment(app, "Staff", "tag = \"staff\"").await;
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);

    // Bad input names the field.
    let bad = app
        .post(
            "/api/v1/campaigns",
            json!({"name": "x", "template_id": template_id(app).await,
            "segment_id": vips, "holdout_percent": 95}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.json["errors"][0]["field"], "holdout_percent", "{}", bad.text);
    let bad = app
        .post(
            "/api/v1/campaigns",
            json!({"name": "x", "template_id": template_id(app).await,
            "segment_id": uuid::Uuid::nil()}),
        )
        .await;
    assert_eq!((bad.status, bad.json["errors"][0]["field"].as_str()), (422, Some("segment_id")), "{}", bad.text);

    let c = app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Spring sale", "template_id": template_id(app).await,
            "segment_id": vips, "exclude_segment_ids": [staff_segment], "holdout_percent": 20}),
        )
        .await;
    let id = id_of(&c);
    assert_eq!(c["status"], "draft");
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);
    assert!(sink.messages().is_empty(), "a draft sends nothing");

    let sent = app.post(&format!("/api/v1/campaigns/{id}/send"), json!({})).await.expect(200);
    assert_eq!(sent["status"], "sending", "{sent}");
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);

    let stats = app.get(&format!("/api/v1/campaigns/{id}/stats")).await.expect(200);
    // 23 VIPs, one of them staff (excluded): 22 chosen, round(22 × 20%) = 4 held out.
    assert_eq!(stats["audience"], 22, "{stats}");
    assert_eq!(stats["holdout"], 4, "{stats}");
    assert_eq!(stats["status"], "finished", "{stats}");
    let got = received(&sink);
    assert!(got.values().all(|n| *n == 1), "nobody twice: {got:?}");
    assert!(!got.contains_key("staffer@example.com") && !got.contains_key("outsider@example.com"));
    assert!(!got.contains_key("quiet@example.com"), "unsubscribed people get nothing");
    let skipped = stats["skipped"].as_i64().unwrap();
    assert_eq!(got.len() as i64 + 4 + skipped, 22, "{stats} {got:?}");
    assert_eq!(stats["sent"].as_i64().unwrap(), got.len() as i64);
    assert_eq!(stats["delivered"], stats["sent"]);
    let reasons: Vec<&str> = stats["skipped_reasons"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    // Quiet and Nomail are skipped unless the holdout drew them first.
    for r in &reasons {
        assert!(["no email address", "they unsubscribed from all marketing"].contains(r), "{reasons:?}");
    }
    let members = app.get(&format!("/api/v1/segments/{vips}/members?limit=100")).await.expect(200);
    assert_eq!(members["data"].as_array().unwrap().len(), 23);

    // A message carries the person's data and the one-click unsubscribe headers.
    let m = &sink.messages()[0];
    let parsed = MessageParser::default().parse(&m.data).unwrap();
    let first = m.rcpt_to[0].split('@').next().unwrap();
    assert!(parsed.subject().unwrap().to_lowercase().ends_with(first), "{:?} for {first}", parsed.subject());
    assert!(String::from_utf8_lossy(&m.data).contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));

    // An order within the window counts as a conversion, with its revenue.
    let buyer_id = got.keys().find_map(|address| ids.get(address)).expect("a VIP got mail").clone();
    app.post("/api/v1/events", json!({"events": [{"type": "order.completed", "contact": {"id": buyer_id},
            "occurred_at": "2027-02-28T10:00:00Z", "channel": "web",
            "payload": {"currency": "EUR", "total": 80.0, "items": [{"sku": "S1", "name": "Scarf", "quantity": 1, "unit_price": 80.0}]}}]}))
            .await
            .expect(200);
    let stats = app.get(&format!("/api/v1/campaigns/{id}/stats")).await.expect(200);
    let conv = &stats["conversions"];
    assert_eq!(conv["messaged"]["converted"], 1, "{stats}");
    assert_eq!(conv["messaged"]["revenue"], 80.0, "{stats}");
    assert_eq!(conv["holdout"]["people"], 4, "{stats}");
    assert_eq!(conv["holdout"]["converted"], 0, "{stats}");
    assert!(conv["incremental_conversions"].as_f64().unwrap() > 0.0, "{stats}");

    // A finished campaign cannot be sent again or changed, and the outbox has nothing more.
    let again = app.post(&format!("/api/v1/campaigns/{id}/send"), json!({})).await;
    assert_eq!(again.status, 409, "{}", again.text);
    let change = app.patch(&format!("/api/v1/campaigns/{id}"), json!({"name": "Other"})).await;
    assert_eq!(change.status, 409, "{}", change.text);
    let before = sink.messages().len();
    app.post(CLOCK, json!({"advance": "P1D"})).await.expect(200);
    assert_eq!(sink.messages().len(), before);
    app.finish().await;
}

async fn local_time_campaigns_reach_each_zone_at_its_own_nine_and_pause_resume_and_cancel(backend: Backend) {
    let Some((sink, mut app)) = setup(backend).await else { return };
    let app = &mut app;
    person(app, "Kenji", &["news"], true, "Asia/Tokyo").await;
    person(app, "Lola", &["news"], true, "America/Los_Angeles").await;
    let news = segment(app, "News readers", "tag = \"news\"").await;
    let t = template_id(app).await;
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);

    // Local time needs a send time; a time without offset needs local_time.
    let bad = app
        .post(
            "/api/v1/campaigns",
            json!({"name": "x", "template_id": t, "segment_id": news,
            "send_at": "2027-03-01T09:00"}),
        )
        .await;
    assert_eq!((bad.status, bad.json["errors"][0]["field"].as_str()), (422, Some("send_at")), "{}", bad.text);

    let c = app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Nine o'clock", "template_id": t, "segment_id": news,
            "send_at": "2027-03-01T09:00", "local_time": true}),
        )
        .await;
    let id = id_of(&c);
    let s = app.post(&format!("/api/v1/campaigns/{id}/send"), json!({})).await.expect(200);
    assert_eq!(s["status"], "scheduled", "{s}");
    // 09:00 in Tokyo is 00:00 UTC.
    app.post(CLOCK, json!({"set": "2027-02-28T23:59:00Z"})).await.expect(200);
    assert!(sink.messages().is_empty());
    app.post(CLOCK, json!({"set": "2027-03-01T00:00:30Z"})).await.expect(200);
    assert_eq!(received(&sink).keys().collect::<Vec<_>>(), ["kenji@example.com"]);
    let s = app.get(&format!("/api/v1/campaigns/{id}")).await.expect(200);
    assert_eq!(s["status"], "sending", "not finished while Lola's message waits: {s}");

    // Paused: Lola's nine comes and goes; nothing leaves.
    app.post(&format!("/api/v1/campaigns/{id}/pause"), json!({})).await.expect(200);
    app.post(CLOCK, json!({"set": "2027-03-01T17:30:00Z"})).await.expect(200);
    assert_eq!(sink.messages().len(), 1);
    let stats = app.get(&format!("/api/v1/campaigns/{id}/stats")).await.expect(200);
    assert_eq!((stats["sent"].as_i64(), stats["queued"].as_i64()), (Some(1), Some(1)), "{stats}");
    // Resumed: it goes at once, and the campaign finishes.
    let r = app.post(&format!("/api/v1/campaigns/{id}/resume"), json!({})).await.expect(200);
    assert_eq!(r["status"], "sending");
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);
    assert_eq!(received(&sink).get("lola@example.com"), Some(&1));
    let s = app.get(&format!("/api/v1/campaigns/{id}")).await.expect(200);
    assert_eq!(s["status"], "finished", "{s}");
    assert!(app.post(&format!("/api/v1/campaigns/{id}/pause"), json!({})).await.status == 409);

    // Cancelled after Tokyo's nine: Lola's message never leaves.
    let c = app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Next day", "template_id": t, "segment_id": news,
            "send_at": "2027-03-02T09:00:00", "local_time": true}),
        )
        .await;
    let id = id_of(&c);
    app.post(&format!("/api/v1/campaigns/{id}/send"), json!({})).await.expect(200);
    app.post(CLOCK, json!({"set": "2027-03-02T01:00:00Z"})).await.expect(200);
    assert_eq!(sink.messages().len(), 3);
    let cancelled = app.post(&format!("/api/v1/campaigns/{id}/cancel"), json!({})).await.expect(200);
    assert_eq!(cancelled["status"], "cancelled");
    app.post(CLOCK, json!({"set": "2027-03-02T20:00:00Z"})).await.expect(200);
    assert_eq!(sink.messages().len(), 3);
    let stats = app.get(&format!("/api/v1/campaigns/{id}/stats")).await.expect(200);
    assert_eq!((stats["sent"].as_i64(), stats["cancelled"].as_i64()), (Some(1), Some(1)), "{stats}");
    // Only a campaign that is not going out can be deleted.
    app.delete(&format!("/api/v1/campaigns/{id}")).await.expect(204);
    app.finish().await;
}

async fn a_test_send_goes_to_the_address_given_with_a_real_contacts_data_and_counts_nowhere(backend: Backend) {
    let Some((sink, mut app)) = setup(backend).await else { return };
    let app = &mut app;
    let ines = person(app, "Inês", &["news"], true, "Europe/Lisbon").await;
    let news = segment(app, "News readers", "tag = \"news\"").await;
    let c = app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Spring", "template_id": template_id(app).await,
            "segment_id": news}),
        )
        .await;
    let id = id_of(&c);
    let bad = app.post(&format!("/api/v1/campaigns/{id}/test"), json!({"to": "not an address"})).await;
    assert_eq!((bad.status, bad.json["errors"][0]["field"].as_str()), (400, Some("to")), "{}", bad.text);
    let t = app.post(&format!("/api/v1/campaigns/{id}/test"), json!({"to": "Boss@Shop.example", "contact_id": ines})).await;
    assert_eq!(t.status, 202, "{}", t.text);
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["boss@shop.example"]);
    let parsed = MessageParser::default().parse(&got[0].data).unwrap();
    assert_eq!(parsed.subject(), Some("Spring is here, Inês"));
    let stats = app.get(&format!("/api/v1/campaigns/{id}/stats")).await.expect(200);
    assert_eq!((stats["messages"].as_i64(), stats["sent"].as_i64()), (Some(0), Some(0)), "{stats}");
    let c = app.get(&format!("/api/v1/campaigns/{id}")).await.expect(200);
    assert_eq!(c["status"], "draft", "a test send does not send the campaign");
    // Listing, with a status filter that is checked.
    let list = app.get("/api/v1/campaigns?status=draft").await.expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/v1/campaigns?status=sent").await.status, 400);
    app.finish().await;
}

/// An order from one of these people, `days` after the clock's now.
async fn order(app: &TestApp, contact: &str, at: &str, total: f64) {
    app.post(
        "/api/v1/events",
        json!({"events": [{"type": "order.completed", "contact": {"id": contact}, "occurred_at": at, "channel": "web",
            "payload": {"currency": "EUR", "total": total, "items": [{"sku": "B1", "name": "Boots", "quantity": 1, "unit_price": total}]}}]}),
    )
    .await
    .expect(200);
}

async fn a_workflows_message_steps_have_statistics_against_its_holdout(backend: Backend) {
    let Some((sink, mut app)) = setup(backend).await else { return };
    let app = &mut app;
    let mut people = Vec::new();
    for i in 0..40 {
        people.push(person(app, &format!("Fan{i:02}"), &["fans"], true, "Europe/Lisbon").await);
    }
    let nomail = person(app, "Nomail", &[], false, "Europe/Lisbon").await;
    let fans = segment(app, "Fans", "tag = \"fans\"").await;
    let bad = app
        .post(
            "/api/v1/workflows",
            json!({"name": "Spring nudge", "trigger": {"kind": "manual"}, "holdout_percent": 120,
                   "steps": [{"action": "send_message", "channel": "email", "template": "spring"}]}),
        )
        .await;
    assert_eq!((bad.status, bad.json["errors"][0]["field"].as_str()), (400, Some("holdout_percent")), "{}", bad.text);
    let w = app
        .create(
            "/api/v1/workflows",
            json!({"name": "Spring nudge", "trigger": {"kind": "manual"}, "holdout_percent": 30,
                   "steps": [{"action": "send_message", "channel": "email", "template": "spring"},
                             {"action": "add_tag", "tag": "nudged"}]}),
        )
        .await;
    let w = id_of(&w);
    assert_eq!(app.get(&format!("/api/v1/workflows/{w}")).await.expect(200)["holdout_percent"], 30);
    app.post(&format!("/api/v1/workflows/{w}/enable"), json!({})).await.expect(200);
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"segment_id": fans})).await.expect(200);
    app.post(CLOCK, json!({"advance": "PT5M"})).await.expect(200);

    // Who was held out: their run says so, they got nothing, and the rest of their run happened.
    let mut held = Vec::new();
    let mut messaged = Vec::new();
    for p in &people {
        let view = app.get(&format!("/api/v1/contacts/{p}/automation")).await.expect(200);
        let steps = view["runs"][0]["steps"].as_array().unwrap().clone();
        match steps[0]["outcome"].as_str() {
            Some("held_out") => held.push(p.clone()),
            Some("queued") => messaged.push(p.clone()),
            other => panic!("unexpected outcome {other:?}: {view}"),
        }
        assert_eq!(steps[1]["outcome"], "done", "the run goes on past a held-out message: {view}");
    }
    // Who is held out follows from random ids: 2..=24 of 40 at 30% misses once in about 30,000
    // runs (5..=20 missed once in about 200).
    assert!((2..=24).contains(&held.len()), "about 30% of 40 held out, not {}", held.len());
    let got = received(&sink);
    assert_eq!(got.len(), messaged.len(), "{got:?}");
    assert!(got.values().all(|n| *n == 1));

    app.post(CLOCK, json!({"set": "2027-03-21T00:00:00Z"})).await.expect(200);
    // Two messaged people order (one twice) and one held-out person does, within the window;
    // an order after the window does not count.
    order(app, &messaged[0], "2027-02-28T10:00:00Z", 100.0).await;
    order(app, &messaged[0], "2027-03-01T10:00:00Z", 50.0).await;
    order(app, &messaged[1], "2027-03-02T10:00:00Z", 30.0).await;
    order(app, &held[0], "2027-03-01T10:00:00Z", 40.0).await;
    order(app, &messaged[2], "2027-03-20T10:00:00Z", 999.0).await;

    let stats = app.get(&format!("/api/v1/workflows/{w}/stats")).await.expect(200);
    assert_eq!(stats["holdout_percent"], 30, "{stats}");
    let steps = stats["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "one message step: {stats}");
    let s = &steps[0];
    assert_eq!(
        (s["step"].as_str(), s["channel"].as_str(), s["template"].as_str()),
        (Some("steps[0]"), Some("email"), Some("spring"))
    );
    assert_eq!(s["sent"], messaged.len(), "{s}");
    assert_eq!(s["delivered"], messaged.len(), "{s}");
    assert_eq!(s["held_out"], held.len(), "{s}");
    assert_eq!(s["blocked"], 0, "Nomail is not in the start: {s}");
    let conv = &s["conversions"];
    assert_eq!(conv["messaged"]["people"], messaged.len(), "{s}");
    assert_eq!(conv["messaged"]["converted"], 2, "{s}");
    assert_eq!(conv["messaged"]["orders"], 3, "{s}");
    assert_eq!(conv["messaged"]["revenue"], 180.0, "{s}");
    assert_eq!(conv["holdout"]["people"], held.len(), "{s}");
    assert_eq!(conv["holdout"]["converted"], 1, "{s}");
    assert_eq!(conv["holdout"]["revenue"], 40.0, "{s}");
    let expected = 2.0 / messaged.len() as f64 - 1.0 / held.len() as f64;
    assert!((conv["incremental_conversions"].as_f64().unwrap() - expected * messaged.len() as f64).abs() < 1e-9, "{s}");

    // Someone the guards stop counts as blocked, not as held out or sent.
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": nomail})).await.expect(200);
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);
    let s = app.get(&format!("/api/v1/workflows/{w}/stats?conversion_days=30")).await.expect(200)["steps"][0].clone();
    assert_eq!((s["blocked"].as_i64(), s["held_out"].as_i64()), (Some(1), Some(held.len() as i64)), "{s}");
    assert_eq!(s["conversions"]["window_days"], 30);
    assert_eq!(s["conversions"]["messaged"]["converted"], 3, "the late order counts in a 30-day window: {s}");

    // Bad figures name the parameter.
    let bad = app.get(&format!("/api/v1/workflows/{w}/stats?days=0")).await;
    assert_eq!((bad.status, bad.json["errors"][0]["field"].as_str()), (400, Some("days")), "{}", bad.text);
    app.finish().await;
}
