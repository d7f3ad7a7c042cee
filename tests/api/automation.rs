//! The automation engine (issue #6), end to end through the API on both backends: triggers
//! firing exactly when they should (moving the manual clock, never sleeping), once per
//! occurrence and in the contact's time zone; waits, exits and branches; guards; webhooks;
//! what a contact's automation view and the upcoming queue show; simulations.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{TEST_WEBHOOK_SECRET, TestApp, id_of};

const WORKFLOWS: &str = "/api/v1/workflows";

/// Creates a workflow and switches it on; returns its id.
async fn live(app: &TestApp, doc: Value) -> String {
    let w = app.create(WORKFLOWS, doc).await;
    let id = id_of(&w);
    app.post(&format!("{WORKFLOWS}/{id}/enable"), json!({})).await.expect(200);
    settle(app).await;
    id
}

/// Moves the clock to `t` (RFC 3339); the answer comes once due work is done.
async fn set_clock(app: &TestApp, t: &str) -> Value {
    let state = app.post("/api/v1/admin/clock", json!({"set": t})).await.expect(200);
    assert_eq!(state["pending"], false, "work was left after moving the clock: {state}");
    state
}

async fn advance(app: &TestApp, by: &str) -> Value {
    let state = app.post("/api/v1/admin/clock", json!({"advance": by})).await.expect(200);
    assert_eq!(state["pending"], false, "work was left after moving the clock: {state}");
    state
}

/// Lets automation catch up without moving time.
async fn settle(app: &TestApp) {
    advance(app, "PT0S").await;
}

async fn contact(app: &TestApp, body: Value) -> String {
    id_of(&app.create("/api/v1/contacts", body).await)
}

async fn tasks_of(app: &TestApp, contact: &str) -> Vec<Value> {
    app.list_all(&format!("/api/v1/tasks?contact_id={contact}")).await
}

async fn ingest(app: &TestApp, events: Value) {
    let report = app.post("/api/v1/events", json!({ "events": events })).await.expect(200);
    for r in report["results"].as_array().unwrap() {
        assert_eq!(r["status"], "accepted", "{report}");
    }
}

fn viewed(contact: &str, at: &str) -> Value {
    json!({"type": "product.viewed", "contact": {"id": contact}, "occurred_at": at, "channel": "web",
        "payload": {"sku": "SHOE-1", "name": "Trail shoe", "category": "shoes"}})
}

fn order(contact: &str, at: &str, total: f64) -> Value {
    json!({"type": "order.completed", "contact": {"id": contact}, "occurred_at": at, "channel": "store",
        "payload": {"currency": "EUR", "total": total, "items": [{"sku": "SHOE-1", "name": "Trail shoe", "category": "shoes",
            "quantity": 1, "price": total}]}})
}

async fn automation(app: &TestApp, contact: &str) -> Value {
    app.get(&format!("/api/v1/contacts/{contact}/automation")).await.expect(200)
}

both_backends! {
    async fn a_birthday_fires_once_a_year_at_nine_in_the_contacts_time_zone(app) {
        let ana = contact(app, json!({"first_name": "Ana", "birthday": "--03-10", "time_zone": "Asia/Manila"})).await;
        let ben = contact(app, json!({"first_name": "Ben", "birthday": "1990-03-10", "time_zone": "America/New_York"})).await;
        live(app, json!({"name": "Birthday card", "trigger": {"kind": "date", "field": "birthday", "offset": "P0D", "at": "09:00"},
            "steps": [{"action": "create_task", "title": "Call {{first_name}} for their birthday", "due": "PT8H"}]})).await;

        // Scheduled, and visible before it happens: 09:00 in Manila is 01:00 UTC.
        let view = automation(app, &ana).await;
        assert_eq!(view["scheduled"][0]["at"], "2026-03-10T01:00:00Z", "{view}");
        let upcoming = app.get("/api/v1/automation/upcoming?days=90").await.expect(200);
        assert_eq!(upcoming["data"].as_array().unwrap().len(), 2, "{upcoming}");

        set_clock(app, "2026-03-10T00:59:00Z").await;
        assert!(tasks_of(app, &ana).await.is_empty());
        set_clock(app, "2026-03-10T01:00:00Z").await;
        let tasks = tasks_of(app, &ana).await;
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0]["title"], "Call Ana for their birthday");
        assert_eq!(tasks[0]["due_at"], "2026-03-10T09:00:00Z");
        assert!(tasks[0]["reason"].as_str().unwrap().contains("Birthday card"), "{}", tasks[0]);
        // New York's 09:00 comes later the same day.
        assert!(tasks_of(app, &ben).await.is_empty());
        set_clock(app, "2026-03-10T14:00:00Z").await;
        assert_eq!(tasks_of(app, &ben).await.len(), 1);

        // Once per occurrence: the rest of the year adds nothing.
        advance(app, "P30D").await;
        assert_eq!(tasks_of(app, &ana).await.len(), 1);
        let view = automation(app, &ana).await;
        assert_eq!(view["runs"].as_array().unwrap().len(), 1, "{view}");
        let run = &view["runs"][0];
        assert_eq!(run["status"], "done");
        assert_eq!(run["cause"]["trigger"], "date");
        assert!(run["reason"].as_str().unwrap().contains("birthday"), "{run}");
        assert_eq!(run["steps"][0]["action"], "create_task");
        assert_eq!(view["scheduled"][0]["at"], "2027-03-10T01:00:00Z", "{view}");

        // The timeline carries the task with its cause chain.
        let timeline = app.get(&format!("/api/v1/contacts/{ana}/timeline?type=task.created")).await.expect(200);
        assert_eq!(timeline["data"][0]["payload"]["workflow"], "Birthday card", "{timeline}");
        assert_eq!(timeline["data"][0]["payload"]["cause"]["trigger"], "date");

        // Next year, again once.
        set_clock(app, "2027-03-10T01:00:00Z").await;
        assert_eq!(tasks_of(app, &ana).await.len(), 2);

        // A changed birthday moves the schedule.
        app.patch(&format!("/api/v1/contacts/{ana}"), json!({"birthday": "--04-01"})).await.expect(200);
        settle(app).await;
        let view = automation(app, &ana).await;
        assert_eq!(view["scheduled"][0]["at"], "2027-04-01T01:00:00Z", "{view}");

        // After a long outage an old occurrence is passed over, not sent late.
        set_clock(app, "2027-04-20T00:00:00Z").await;
        assert_eq!(tasks_of(app, &ana).await.len(), 2);
        let view = automation(app, &ana).await;
        assert_eq!(view["scheduled"][0]["at"], "2028-04-01T01:00:00Z", "{view}");
    }

    async fn an_event_starts_a_run_that_waits_and_stops_when_the_customer_answers(app) {
        let ana = contact(app, json!({"first_name": "Ana", "emails": [{"address": "ana@example.com"}]})).await;
        let ben = contact(app, json!({"first_name": "Ben"})).await;
        let cy = contact(app, json!({"first_name": "Cy"})).await;
        live(app, json!({"name": "Viewed, not bought", "trigger": {"kind": "event", "type": "product.viewed",
                "where": [{"path": "category", "op": "=", "value": "shoes"}]},
            "steps": [{"wait": "P2D", "until_event": "order.completed"},
                      {"action": "create_task", "title": "Follow up with {{first_name}} about {{event.name}}"}],
            "exit_when": ["order.completed", "email.replied"]})).await;

        ingest(app, json!([viewed(&ana, "2026-01-15T08:00:00Z"), viewed(&ben, "2026-01-15T08:00:00Z"),
            viewed(&cy, "2026-01-15T08:00:00Z")])).await;
        settle(app).await;
        let view = automation(app, &ana).await;
        assert_eq!(view["runs"][0]["status"], "waiting", "{view}");
        assert_eq!(view["runs"][0]["next"]["what"], "create a task \"Follow up with {{first_name}} about {{event.name}}\"");
        assert_eq!(view["runs"][0]["next"]["at"], "2026-01-17T09:00:00Z");

        // Ben buys, Cy replies: their runs end; Ana's goes on.
        advance(app, "P1D").await;
        ingest(app, json!([order(&ben, "2026-01-16T09:00:00Z", 129.0),
            {"type": "email.replied", "contact": {"id": cy}, "occurred_at": "2026-01-16T09:00:00Z", "channel": "email",
             "payload": {"subject": "Re: shoes"}}])).await;
        settle(app).await;
        assert_eq!(automation(app, &ben).await["runs"][0]["status"], "exited");
        let cy_run = &automation(app, &cy).await["runs"][0];
        assert_eq!(cy_run["status"], "exited");
        assert!(cy_run["end_reason"].as_str().unwrap().contains("email.replied"), "{cy_run}");

        advance(app, "P1D").await;
        let tasks = tasks_of(app, &ana).await;
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0]["title"], "Follow up with Ana about Trail shoe");
        assert!(tasks_of(app, &ben).await.is_empty() && tasks_of(app, &cy).await.is_empty());

        // Another view while no run is going starts a new one; a view of something else does not.
        ingest(app, json!([viewed(&ana, "2026-01-17T10:00:00Z"),
            {"type": "product.viewed", "contact": {"id": ana}, "occurred_at": "2026-01-17T10:00:00Z", "channel": "web",
             "payload": {"sku": "HAT-1", "name": "Hat", "category": "hats"}}])).await;
        settle(app).await;
        assert_eq!(automation(app, &ana).await["runs"].as_array().unwrap().len(), 2);
    }

    async fn an_inbound_call_stops_pending_outreach(app) {
        let ana = contact(app, json!({"first_name": "Ana"})).await;
        let w = live(app, json!({"name": "Call back", "trigger": {"kind": "manual"},
            "steps": [{"wait": "P3D"}, {"action": "create_task", "title": "Call {{first_name}} back"}]})).await;
        let started = app.post(&format!("{WORKFLOWS}/{w}/start"), json!({"contact_id": ana})).await.expect(200);
        assert_eq!(started["started"], 1);
        settle(app).await;
        // Staff logged a call with her: the reminder would talk past it.
        advance(app, "P1D").await;
        ingest(app, json!([{"type": "call.logged", "contact": {"id": ana}, "occurred_at": "2026-01-16T08:00:00Z",
            "channel": "phone", "payload": {"direction": "inbound", "duration": 120, "outcome": "connected"}}])).await;
        advance(app, "P3D").await;
        assert!(tasks_of(app, &ana).await.is_empty());
        let run = &automation(app, &ana).await["runs"][0];
        assert_eq!(run["status"], "exited");
        assert!(run["end_reason"].as_str().unwrap().contains("call.logged"), "{run}");
    }

    async fn inactivity_fires_once_per_quiet_spell(app) {
        let ana = contact(app, json!({"first_name": "Ana"})).await;
        let visit = |at: &str| json!({"type": "visit.checked_in", "contact": {"id": ana}, "occurred_at": at, "channel": "store",
            "payload": {}});
        ingest(app, json!([visit("2026-01-14T10:00:00Z")])).await;
        live(app, json!({"name": "Win back", "trigger": {"kind": "inactivity", "type": "visit.checked_in", "days": 30},
            "steps": [{"action": "add_tag", "tag": "win-back"}, {"action": "create_task", "title": "Invite {{first_name}} back"}]})).await;
        set_clock(app, "2026-02-13T09:59:00Z").await;
        assert!(tasks_of(app, &ana).await.is_empty());
        set_clock(app, "2026-02-13T10:00:00Z").await;
        assert_eq!(tasks_of(app, &ana).await.len(), 1);
        let c = app.get(&format!("/api/v1/contacts/{ana}")).await.expect(200);
        assert_eq!(c["tags"], json!(["win-back"]));
        advance(app, "P60D").await;
        assert_eq!(tasks_of(app, &ana).await.len(), 1, "one spell, one nudge");
        set_clock(app, "2026-04-20T12:00:00Z").await;
        ingest(app, json!([visit("2026-04-20T10:00:00Z")])).await;
        set_clock(app, "2026-05-20T10:00:00Z").await;
        assert_eq!(tasks_of(app, &ana).await.len(), 2);
    }

    async fn thresholds_stages_and_segments_start_runs(app) {
        let ana = contact(app, json!({"first_name": "Ana"})).await;
        live(app, json!({"name": "Every second order", "trigger": {"kind": "threshold", "metric": "order_count", "every": 2},
            "steps": [{"action": "award_points", "points": 50, "coupon": "THANKS10"}]})).await;
        live(app, json!({"name": "Big spender", "trigger": {"kind": "threshold", "metric": "revenue", "crosses": 500},
            "steps": [{"action": "add_tag", "tag": "big-spender"}]})).await;
        live(app, json!({"name": "Welcome buyer", "trigger": {"kind": "stage_changed", "to": "active"},
            "steps": [{"action": "add_tag", "tag": "welcomed"}]})).await;
        app.create("/api/v1/segments", json!({"name": "Spenders", "filter": "tag = \"big-spender\""})).await;
        live(app, json!({"name": "Spender call", "trigger": {"kind": "segment_entered", "segment": "Spenders"},
            "steps": [{"action": "create_task", "title": "Thank {{first_name}}"}]})).await;

        ingest(app, json!([order(&ana, "2026-01-15T08:00:00Z", 100.0)])).await;
        settle(app).await;
        let c = app.get(&format!("/api/v1/contacts/{ana}")).await.expect(200);
        assert_eq!(c["tags"], json!(["welcomed"]), "the first order made her active");
        let runs = |v: &Value, name: &str| v["runs"].as_array().unwrap().iter().filter(|r| r["workflow"] == name).count();
        assert_eq!(runs(&automation(app, &ana).await, "Every second order"), 0);

        // Two orders in one batch: the second one is the second order, and 500 is crossed.
        ingest(app, json!([order(&ana, "2026-01-15T08:10:00Z", 150.0), order(&ana, "2026-01-15T08:20:00Z", 300.0)])).await;
        settle(app).await;
        let view = automation(app, &ana).await;
        assert_eq!(runs(&view, "Every second order"), 1, "{view}");
        let points = app.get(&format!("/api/v1/contacts/{ana}/points")).await.expect(200);
        assert_eq!((points["balance"].as_i64(), points["entries"][0]["coupon"].as_str()), (Some(50), Some("THANKS10")), "{points}");
        assert_eq!(runs(&view, "Big spender"), 1, "{view}");
        assert_eq!(runs(&view, "Spender call"), 1, "the tag put her in the segment: {view}");
        assert_eq!(tasks_of(app, &ana).await[0]["title"], "Thank Ana");

        ingest(app, json!([order(&ana, "2026-01-15T09:00:00Z", 10.0)])).await;
        settle(app).await;
        let view = automation(app, &ana).await;
        assert_eq!(runs(&view, "Every second order"), 2, "{view}");
        assert_eq!(runs(&view, "Big spender"), 1, "crossed once");
    }

    async fn messages_pass_consent_quiet_hours_and_caps(app) {
        let ana = contact(app, json!({"first_name": "Ana", "emails": [{"address": "ana@example.com"}], "time_zone": "Europe/Berlin"})).await;
        let nomail = contact(app, json!({"first_name": "Ned"})).await;
        let gone = contact(app, json!({"first_name": "Gus", "emails": [{"address": "gus@example.com"}]})).await;
        ingest(app, json!([{"type": "email.unsubscribed", "contact": {"id": gone}, "occurred_at": "2026-01-10T10:00:00Z",
            "channel": "email", "payload": {}}])).await;
        let w = live(app, json!({"name": "News", "trigger": {"kind": "manual"}, "reentry": "always",
            "steps": [{"action": "send_message", "channel": "email", "template": "newsletter"}]})).await;
        let start = |c: &str| json!({"contact_id": c});
        let path = format!("{WORKFLOWS}/{w}/start");

        // 22:00 in Berlin: quiet hours hold the message until 08:00.
        set_clock(app, "2026-01-15T21:00:00Z").await;
        app.post(&path, start(&ana)).await.expect(200);
        settle(app).await;
        let run = automation(app, &ana).await["runs"][0].clone();
        assert_eq!(run["steps"][0]["outcome"], "deferred", "{run}");
        assert_eq!(run["next"]["at"], "2026-01-16T07:00:00Z", "{run}");
        set_clock(app, "2026-01-16T07:00:00Z").await;
        let run = automation(app, &ana).await["runs"][0].clone();
        assert_eq!(run["status"], "done");
        // No channel is set up yet: the message waits in the outbox, marked unsendable, and
        // says why.
        assert_eq!(run["steps"][1]["outcome"], "unsendable", "{run}");
        assert!(run["steps"][1]["detail"].as_str().unwrap().contains("no email channel"), "{run}");

        app.post(&path, start(&nomail)).await.expect(200);
        app.post(&path, start(&gone)).await.expect(200);
        settle(app).await;
        let blocked = |v: &Value| v["runs"][0]["steps"][0].clone();
        let b = blocked(&automation(app, &nomail).await);
        assert_eq!((b["outcome"].as_str(), b["detail"].as_str()), (Some("blocked"), Some("no email address to send to")));
        let b = blocked(&automation(app, &gone).await);
        assert_eq!(b["outcome"], "blocked");
        assert!(b["detail"].as_str().unwrap().contains("unsubscribed"), "{b}");

        // The timeline shows what was blocked and why.
        let timeline = app.get(&format!("/api/v1/contacts/{gone}/timeline?type=workflow.action")).await.expect(200);
        assert_eq!(timeline["data"][0]["payload"]["outcome"], "blocked", "{timeline}");
    }

    async fn branches_and_data_actions(app) {
        let owner = app.create("/api/v1/users", json!({"name": "Olga Owner", "email": "olga@example.com", "role": "member"})).await;
        let ana = contact(app, json!({"first_name": "Ana", "owner_id": id_of(&owner), "tags": ["vip"]})).await;
        let ben = contact(app, json!({"first_name": "Ben"})).await;
        let w = live(app, json!({"name": "Sort out", "trigger": {"kind": "manual"},
            "steps": [{"if": "tag = \"vip\"",
                       "then": [{"action": "notify", "user": "owner", "message": "{{first_name}} is a VIP"},
                                {"action": "set_field", "field": "title", "value": "Dr."}],
                       "else": [{"action": "set_stage", "stage": "at_risk"}]},
                      {"action": "remove_tag", "tag": "vip"}]})).await;
        for c in [&ana, &ben] {
            app.post(&format!("{WORKFLOWS}/{w}/start"), json!({"contact_id": c})).await.expect(200);
        }
        settle(app).await;
        let a = app.get(&format!("/api/v1/contacts/{ana}")).await.expect(200);
        assert_eq!((a["title"].as_str(), a["tags"].clone()), (Some("Dr."), json!([])));
        let view = automation(app, &ana).await;
        assert_eq!(view["runs"][0]["steps"][0]["outcome"], "then", "{view}");
        let b = app.get(&format!("/api/v1/contacts/{ben}/profile")).await.expect(200);
        assert_eq!(b["lifecycle_stage"], "at_risk", "{b}");

        // The owner sees the notification; the admin key belongs to nobody, so it has none.
        let key = app.create_key_for_user(&id_of(&owner)).await;
        let mine = crate::send(app.with_key(&key, reqwest::Method::GET, "/api/v1/notifications")).await.expect(200);
        assert_eq!(mine["data"][0]["message"], "Ana is a VIP", "{mine}");
    }

    async fn webhooks_are_signed_and_private_addresses_refused(app) {
        let (url, received) = receiver().await;
        let ana = contact(app, json!({"first_name": "Ana"})).await;
        let w = live(app, json!({"name": "Tell the shop", "trigger": {"kind": "manual"},
            "steps": [{"action": "webhook", "url": url, "secret_ref": "test"},
                      {"action": "webhook", "url": "http://169.254.169.254/latest/meta-data"},
                      {"action": "webhook", "url": "http://0x0a.1:9/"}]})).await;
        app.post(&format!("{WORKFLOWS}/{w}/start"), json!({"contact_id": ana})).await.expect(200);
        settle(app).await;
        let got = received.lock().unwrap().clone();
        assert_eq!(got.len(), 1, "{got:?}");
        let (headers, body) = &got[0];
        let header = |name: &str| {
            headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let signature = header("rapport-signature").expect("signed");
        let secret = rapport_channels::webhook::WebhookSecret::new(TEST_WEBHOOK_SECRET);
        assert!(rapport_channels::webhook::verify_signature(
            &secret,
            &signature,
            body.as_bytes(),
            std::time::SystemTime::now(),
            std::time::Duration::from_secs(300)
        ));
        assert!(header("idempotency-key").unwrap().ends_with(":steps[0]"));
        let payload: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload["contact"]["id"], ana.as_str());
        assert_eq!(payload["workflow"]["name"], "Tell the shop");

        let deliveries = app.get("/api/v1/webhooks/deliveries").await.expect(200);
        let by_url = |u: &str| deliveries["data"].as_array().unwrap().iter().find(|d| d["url"] == u).cloned().unwrap();
        assert_eq!(by_url(&url)["status"], "delivered");
        for refused in ["http://169.254.169.254/latest/meta-data", "http://0x0a.1:9/"] {
            let d = by_url(refused);
            assert_eq!(d["status"], "failed", "{d}");
            assert!(d["last_error"].as_str().unwrap().contains("address"), "{d}");
        }
        let run = &automation(app, &ana).await["runs"][0];
        assert!(run["steps"].as_array().unwrap().iter().any(|s| s["outcome"] == "delivered"), "{run}");
    }

    async fn simulation_replays_the_past_without_touching_anything(app) {
        let ana = contact(app, json!({"first_name": "Ana"})).await;
        let ben = contact(app, json!({"first_name": "Ben"})).await;
        ingest(app, json!([viewed(&ana, "2025-12-01T10:00:00Z"), viewed(&ana, "2025-12-01T11:00:00Z"),
            viewed(&ben, "2025-12-20T10:00:00Z"), viewed(&ben, "2026-01-10T10:00:00Z")])).await;
        let w = app.create(WORKFLOWS, json!({"name": "Viewed", "trigger": {"kind": "event", "type": "product.viewed"},
            "steps": [{"wait": "P1D"}, {"action": "create_task", "title": "Follow up"}, {"action": "add_tag", "tag": "viewer"}]})).await;
        let sim = app.post(&format!("{WORKFLOWS}/{}/simulate", id_of(&w)),
            json!({"from": "2025-12-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})).await.expect(200);
        assert_eq!(sim["occurrences"], 3, "{sim}");
        // Ana's second view falls inside her first run (a day of waiting).
        assert_eq!((sim["runs"].as_u64(), sim["contacts"].as_u64()), (Some(2), Some(2)), "{sim}");
        assert_eq!(sim["actions"], json!({"add_tag": 2, "create_task": 2}));
        assert_eq!(sim["samples"].as_array().unwrap().len(), 2);
        assert!(tasks_of(app, &ana).await.is_empty());
        assert!(automation(app, &ana).await["runs"].as_array().unwrap().is_empty());
        app.post(&format!("{WORKFLOWS}/{}/simulate", id_of(&w)), json!({"from": "2026-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}))
            .await
            .expect_problem(422);
    }

    async fn related_dates_custom_dates_and_local_waits(app) {
        // A child turning 21 (their birthday is on the relation), a renewal date with an offset,
        // and a wait until Monday 09:00 in the contact's time zone.
        app.create("/api/v1/custom-fields", json!({"record_type": "contact", "key": "renewal", "kind": "date"})).await;
        let ana = contact(app, json!({"first_name": "Ana", "time_zone": "Europe/Berlin",
            "custom_fields": {"renewal": "2026-03-01"}})).await;
        app.create("/api/v1/relations", json!({"contact_id": ana, "kind": "child", "related_name": "Mia",
            "related_birthday": "2005-02-20"})).await;
        app.create("/api/v1/relations", json!({"contact_id": ana, "kind": "child", "related_name": "Leo",
            "related_birthday": "2010-02-20"})).await;
        live(app, json!({"name": "First car", "trigger": {"kind": "date", "field": "birthday", "of_related": "child",
                "turns": 21, "offset": "-P30D", "at": "10:00"},
            "steps": [{"action": "create_task", "title": "Talk to {{first_name}} about a first car"}]})).await;
        live(app, json!({"name": "Renewal call", "trigger": {"kind": "manual"},
            "steps": [{"action": "create_task", "title": "Renewal: call {{first_name}}"}]})).await;
        live(app, json!({"name": "Renewal", "trigger": {"kind": "date", "field": "custom.renewal", "repeat": "once",
                "offset": "-P7D", "at": "09:00"},
            "steps": [{"wait_until": {"weekday": "monday", "at": "09:00"}},
                      {"action": "start_workflow", "workflow": "Renewal call"}]})).await;

        // Mia turns 21 on 20 February 2026: 30 days before, 10:00 in Berlin (09:00 UTC).
        set_clock(app, "2026-01-21T08:59:00Z").await;
        assert!(tasks_of(app, &ana).await.is_empty());
        set_clock(app, "2026-01-21T09:00:00Z").await;
        let titles = |t: Vec<Value>| t.iter().map(|t| t["title"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(titles(tasks_of(app, &ana).await), ["Talk to Ana about a first car"]);
        // Renewal on 1 March, 7 days before is Sunday 22 February 09:00 Berlin; the run then
        // waits for Monday 09:00 Berlin (08:00 UTC) and starts the call workflow.
        set_clock(app, "2026-02-22T08:00:00Z").await;
        let run = automation(app, &ana).await["runs"].as_array().unwrap().iter().find(|r| r["workflow"] == "Renewal").cloned().unwrap();
        assert_eq!((run["status"].as_str(), run["next"]["at"].as_str()), (Some("waiting"), Some("2026-02-23T08:00:00Z")), "{run}");
        set_clock(app, "2026-02-23T08:00:00Z").await;
        let mut got = titles(tasks_of(app, &ana).await);
        got.sort();
        assert_eq!(got, ["Renewal: call Ana", "Talk to Ana about a first car"]);
        // Leo turns 21 in 2031, once; a one-off renewal does not come back next year.
        set_clock(app, "2027-03-01T00:00:00Z").await;
        assert_eq!(tasks_of(app, &ana).await.len(), 2);
        let view = automation(app, &ana).await;
        let scheduled: Vec<&str> = view["scheduled"].as_array().unwrap().iter().map(|s| s["workflow"].as_str().unwrap()).collect();
        assert_eq!(scheduled, Vec::<&str>::new(), "Leo's is more than a year away: {view}");
    }

    async fn a_switched_off_workflow_holds_its_runs(app) {
        let ana = contact(app, json!({"first_name": "Ana"})).await;
        let w = live(app, json!({"name": "Slow", "trigger": {"kind": "manual"},
            "steps": [{"wait": "P1D"}, {"action": "add_tag", "tag": "done"}]})).await;
        app.post(&format!("{WORKFLOWS}/{w}/start"), json!({"contact_id": ana})).await.expect(200);
        settle(app).await;
        app.post(&format!("{WORKFLOWS}/{w}/disable"), json!({})).await.expect(200);
        advance(app, "P2D").await;
        assert_eq!(app.get(&format!("/api/v1/contacts/{ana}")).await.expect(200)["tags"], json!([]));
        app.post(&format!("{WORKFLOWS}/{w}/start"), json!({"contact_id": ana})).await.expect_problem(409);
        app.post(&format!("{WORKFLOWS}/{w}/enable"), json!({})).await.expect(200);
        settle(app).await;
        assert_eq!(app.get(&format!("/api/v1/contacts/{ana}")).await.expect(200)["tags"], json!(["done"]));
    }
}

/// Frequency caps count what was queued for real, so this needs a channel that can send.
async fn caps_hold_back_the_third_email(backend: crate::Backend) {
    let Some(mut app) = TestApp::spawn_tuned(backend, |o| {
        o.automation.ready_channels = vec![rapport_core::workflow::MessageChannel::Email];
        o.automation.quiet_hours = None;
    })
    .await
    else {
        return;
    };
    let ana = contact(&app, json!({"first_name": "Ana", "emails": [{"address": "ana@example.com"}]})).await;
    let w = live(
        &app,
        json!({"name": "Offers", "trigger": {"kind": "manual"}, "reentry": "always",
        "steps": [{"action": "send_message", "channel": "email", "template": "offer"}]}),
    )
    .await;
    for day in 0..4 {
        app.post(&format!("{WORKFLOWS}/{w}/start"), json!({"contact_id": ana})).await.expect(200);
        settle(&app).await;
        advance(&app, if day == 2 { "P7D" } else { "PT1H" }).await;
    }
    let view = automation(&app, &ana).await;
    // Newest first: the 4th (a week after the first two), the 3rd (blocked: two already in the
    // last 7 days), the 2nd and the 1st.
    let outcomes: Vec<&str> =
        view["runs"].as_array().unwrap().iter().map(|r| r["steps"][0]["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["queued", "blocked", "queued", "queued"], "{view}");
    let blocked = &view["runs"][1]["steps"][0]["detail"];
    assert!(blocked.as_str().unwrap().contains("frequency cap: 2 email marketing messages"), "{blocked}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_hold_back_the_third_email_sqlite() {
    caps_hold_back_the_third_email(crate::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_hold_back_the_third_email_postgres() {
    caps_hold_back_the_third_email(crate::Backend::Postgres).await;
}

/// Raw requests (headers, body) a tiny HTTP server on 127.0.0.1 received; it answers 200.
pub(crate) async fn receiver() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let Some((head, body)) = read_request(&mut socket).await else { return };
                sink.lock().unwrap().push((head, body));
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            });
        }
    });
    (url, got)
}

/// Reads one HTTP/1.1 request from `socket`: its head (request line and headers) and its body,
/// whole by its `Content-Length`. `None` when the client goes away first.
pub(crate) async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        let len = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
            .unwrap_or(0);
        if body.len() >= len {
            return Some((head.to_string(), body.to_string()));
        }
    }
}
