//! Consent and preferences (issue #7, item 5): subscription topics, the append-only consent
//! ledger with double opt-in, the preference centre a marketing email links to, and privacy
//! choices that stop messages ("do not contact") or tell the owner ("not interested").

use rapport_channels::email::sink::{Behaviour, SmtpSink};
use rapport_core::user::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, TestApp, id_of, send};

async fn contact(app: &TestApp, body: Value) -> String {
    id_of(&app.create("/api/v1/contacts", body).await)
}

async fn topics(app: &TestApp) {
    app.create("/api/v1/subscription-topics", json!({"key": "news", "name": "Newsletter", "description": "Once a month"})).await;
    app.create("/api/v1/subscription-topics", json!({"key": "offers", "name": "Offers & <sales>"})).await;
}

/// The outbox row of a contact's only message: status and reason.
async fn outbox(app: &TestApp, contact: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let id: uuid::Uuid = contact.parse().unwrap();
    app.store()
        .read(move |tx| {
            tx.query(
                "SELECT status, status_reason, topic FROM message_outbox WHERE contact_id = $1 ORDER BY created_at, id",
                &[id.into()],
            )?
            .into_iter()
            .map(|r| Ok((r.string(0)?, r.opt_string(1)?, r.opt_string(2)?)))
            .collect::<rapport_store::Result<Vec<_>>>()
        })
        .await
        .unwrap()
}

async fn welcome_workflow(app: &TestApp) -> String {
    let w = app
        .create(
            "/api/v1/workflows",
            json!({"name": "Welcome", "trigger": {"kind": "manual"}, "reentry": "always",
                   "steps": [{"action": "send_message", "channel": "email", "template": "welcome"}]}),
        )
        .await;
    let w = id_of(&w);
    app.post(&format!("/api/v1/workflows/{w}/enable"), json!({})).await.expect(200);
    w
}

both_backends! {
    async fn topics_have_crud_and_validation_naming_the_field(app) {
        let t = app.create("/api/v1/subscription-topics", json!({"key": "news", "name": "Newsletter"})).await;
        assert_eq!((t["key"].as_str(), t["default_subscribed"].as_bool()), (Some("news"), Some(true)), "{t}");
        send(app.req(Method::POST, "/api/v1/subscription-topics").json(&json!({"key": "news", "name": "Again"})))
            .await
            .expect_field_problem(409, "key");
        for (body, field) in [
            (json!({"key": "Big News", "name": "x"}), "key"),
            (json!({"key": "marketing", "name": "x"}), "key"),
            (json!({"name": "x"}), "key"),
            (json!({"key": "offers"}), "name"),
            (json!({"key": "offers", "name": "x", "colour": "red"}), "colour"),
        ] {
            send(app.req(Method::POST, "/api/v1/subscription-topics").json(&body)).await.expect_field_problem(422, field);
        }
        let p = app
            .patch("/api/v1/subscription-topics/news", json!({"name": "Monthly news", "description": "Once a month",
                "default_subscribed": false}))
            .await
            .expect(200);
        assert_eq!((p["name"].as_str(), p["default_subscribed"].as_bool()), (Some("Monthly news"), Some(false)), "{p}");
        // Segments follow the default for people who never chose: in while a topic is on by
        // default, out once it is not (explicit choices win either way).
        app.create("/api/v1/subscription-topics", json!({"key": "service", "name": "Service notes"})).await;
        let quiet = app.create("/api/v1/contacts", json!({"first_name": "Quinn"})).await;
        let chose = app.create("/api/v1/contacts", json!({"first_name": "Chloe"})).await;
        app.post("/api/v1/events", json!({"events": [{"type": "email.subscribed", "contact": {"id": chose["id"]},
            "payload": {"topic": "service"}}]}))
            .await
            .expect(200);
        let seg = app.create("/api/v1/segments", json!({"name": "Service", "filter": "subscribed(\"service\")"})).await;
        async fn members(app: &TestApp, segment: &Value) -> Vec<String> {
            let m = app.get(&format!("/api/v1/segments/{}/members", segment["id"].as_str().unwrap())).await.expect(200);
            let mut names: Vec<String> =
                m["data"].as_array().unwrap().iter().map(|c| c["first_name"].as_str().unwrap().to_string()).collect();
            names.sort();
            names
        }
        assert_eq!(members(app, &seg).await, ["Chloe", "Quinn"]);
        app.patch("/api/v1/subscription-topics/service", json!({"default_subscribed": false})).await.expect(200);
        app.post("/api/v1/admin/segments/maintain", json!({})).await.expect(200);
        assert_eq!(members(app, &seg).await, ["Chloe"], "{quiet}");
        send(app.req(Method::PATCH, "/api/v1/subscription-topics/news").json(&json!({"name": " "})))
            .await
            .expect_field_problem(422, "name");
        let list = app.get("/api/v1/subscription-topics").await.expect(200);
        assert_eq!(list["data"][0]["description"], "Once a month", "{list}");
        // Topics are a catalogue: a member may read it, not change it.
        let member = app.create_key("member", Role::Member).await;
        send(app.with_key(&member, Method::GET, "/api/v1/subscription-topics")).await.expect(200);
        send(app.with_key(&member, Method::POST, "/api/v1/subscription-topics").json(&json!({"key": "x", "name": "X"})))
            .await
            .expect_problem(403);
        send(app.with_key(&member, Method::DELETE, "/api/v1/subscription-topics/news")).await.expect_problem(403);
        assert_eq!(app.delete("/api/v1/subscription-topics/news").await.status, 204);
        app.get("/api/v1/subscription-topics/news").await.expect_problem(404);
        app.delete("/api/v1/subscription-topics/news").await.expect_problem(404);
        let spec = send(app.anon(Method::GET, "/api/openapi.json")).await.json;
        for path in ["/api/v1/subscription-topics/{key}", "/api/v1/contacts/{id}/consent", "/api/v1/contacts/{id}/privacy"] {
            assert!(spec["paths"][path].is_object(), "{path} is in the OpenAPI document");
        }
    }

    async fn the_ledger_is_append_only_and_double_opt_in_waits_for_confirmation(app) {
        app.create("/api/v1/subscription-topics", json!({"key": "news", "name": "Newsletter", "default_subscribed": false})).await;
        let ana = contact(app, json!({"first_name": "Ana", "emails": [{"address": "ana@example.com"}]})).await;
        let path = format!("/api/v1/contacts/{ana}/consent");
        for (body, field) in [
            (json!({"purpose": "Big News", "granted": true, "source": "form"}), "purpose"),
            (json!({"purpose": "nosuch", "granted": true, "source": "form"}), "purpose"),
            (json!({"purpose": "news", "granted": true}), "source"),
            (json!({"purpose": "news", "source": "form"}), "granted"),
            (json!({"purpose": "news", "granted": true, "source": "form", "channel": "pigeon"}), "channel"),
            (json!({"purpose": "news", "granted": true, "source": "form", "legal_basis": "whim"}), "legal_basis"),
            (json!({"purpose": "news", "granted": false, "source": "form", "double_opt_in": true}), "double_opt_in"),
        ] {
            send(app.req(Method::POST, &path).json(&body)).await.expect_field_problem(422, field);
        }
        let viewer = app.create_key("viewer", Role::Viewer).await;
        send(app.with_key(&viewer, Method::POST, &path).json(&json!({"purpose": "news", "granted": true, "source": "form"})))
            .await
            .expect_problem(403);

        // A double opt-in grant is recorded but not effective.
        let pending = app
            .create(&path, json!({"purpose": "news", "granted": true, "source": "signup_form", "double_opt_in": true,
                "evidence": "form #12"}))
            .await;
        assert_eq!(pending["status"], "pending", "{pending}");
        let confirm = pending["confirm_url"].as_str().expect("a confirmation link").to_string();
        assert!(confirm.starts_with("/p/confirm/"), "{confirm}");
        let state = app.get(&path).await.expect(200);
        assert_eq!((state["topics"][0]["key"].as_str(), state["topics"][0]["subscribed"].as_bool()), (Some("news"), Some(false)));
        assert_eq!(state["consents"][0]["pending_confirmation"], true, "{state}");
        // A link scanner's GET shows a button and confirms nothing.
        let page = send(app.anon(Method::GET, &confirm)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains("<form method=\"post\">") && page.text.contains("Newsletter"), "{}", page.text);
        assert_eq!(app.get(&path).await.expect(200)["topics"][0]["subscribed"], false);
        // A forged link is refused.
        let mut forged = confirm.clone();
        forged.pop();
        forged.push(if confirm.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(send(app.anon(Method::POST, &forged)).await.status, 404);
        // The POST confirms: effective now, and on the timeline.
        let done = send(app.anon(Method::POST, &confirm)).await;
        assert_eq!(done.status, 200, "{}", done.text);
        let state = app.get(&path).await.expect(200);
        assert_eq!((state["topics"][0]["subscribed"].as_bool(), state["topics"][0]["basis"].as_str()), (Some(true), Some("choice")));
        assert!(state["history"][0]["confirmed_at"].is_string(), "{state}");
        assert_eq!(state["consents"][0]["granted"], true, "{state}");
        let tl = app.get(&format!("/api/v1/contacts/{ana}/timeline?type=email.subscribed")).await.expect(200);
        assert_eq!(tl["data"][0]["payload"]["topic"], "news", "{tl}");
        // Confirming again changes nothing.
        assert_eq!(send(app.anon(Method::POST, &confirm)).await.status, 200);
        let tl = app.get(&format!("/api/v1/contacts/{ana}/timeline?type=email.subscribed")).await.expect(200);
        assert_eq!(tl["data"].as_array().unwrap().len(), 1, "{tl}");

        // A withdrawal is a new fact; the old ones stay, newest first.
        app.create(&path, json!({"purpose": "news", "granted": false, "source": "phone_call", "legal_basis": "consent"})).await;
        app.create(&path, json!({"purpose": "marketing", "channel": "sms", "granted": true, "source": "till",
            "legal_basis": "legitimate_interest"}))
            .await;
        let state = app.get(&path).await.expect(200);
        let history: Vec<(&str, &str, bool)> = state["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["purpose"].as_str().unwrap(), h["channel"].as_str().unwrap(), h["granted"].as_bool().unwrap()))
            .collect();
        assert_eq!(history, [("marketing", "sms", true), ("news", "email", false), ("news", "email", true)], "{state}");
        assert_eq!(state["history"][2]["evidence"], "form #12");
        assert_eq!(state["topics"][0]["subscribed"], false, "{state}");
        let tl = app.get(&format!("/api/v1/contacts/{ana}/timeline?type=consent.changed")).await.expect(200);
        assert_eq!(tl["data"][0]["payload"]["channel"], "sms", "{tl}");
        // An unsubscribe reported as an event (by a shop, an unsubscribe link) is a fact in the
        // ledger too, with where it came from.
        app.advance(chrono::Duration::seconds(1));
        app.post("/api/v1/events", json!({"events": [{"type": "email.unsubscribed", "contact": {"id": ana},
            "payload": {"source": "shop_checkout"}}]}))
            .await
            .expect(200);
        let state = app.get(&path).await.expect(200);
        let h = &state["history"][0];
        assert_eq!(
            (h["purpose"].as_str(), h["channel"].as_str(), h["granted"].as_bool(), h["source"].as_str()),
            (Some("marketing"), Some("email"), Some(false), Some("shop_checkout")),
            "{state}"
        );
        assert!(h["evidence"].as_str().unwrap().starts_with("event "), "{state}");

        // There is no way to change or remove a fact.
        assert_eq!(send(app.req(Method::DELETE, &path)).await.status, 405);
        assert_eq!(send(app.req(Method::PATCH, &path).json(&json!({}))).await.status, 405);

        // A grant withdrawn after it was asked for can no longer be confirmed.
        let again = app.create(&path, json!({"purpose": "news", "granted": true, "source": "form", "double_opt_in": true})).await;
        app.advance(chrono::Duration::seconds(1));
        app.create(&path, json!({"purpose": "news", "granted": false, "source": "form"})).await;
        let late = send(app.anon(Method::POST, again["confirm_url"].as_str().unwrap())).await;
        assert_eq!(late.status, 409, "{}", late.text);
        // A confirmation link works for 30 days.
        let old = app.create(&path, json!({"purpose": "news", "granted": true, "source": "form", "double_opt_in": true})).await;
        app.advance(chrono::Duration::days(31));
        let expired = send(app.anon(Method::POST, old["confirm_url"].as_str().unwrap())).await;
        assert_eq!(expired.status, 409, "{}", expired.text);
        assert!(expired.text.contains("expired"), "{}", expired.text);
        assert_eq!(app.get(&path).await.expect(200)["topics"][0]["subscribed"], false);
    }

    async fn not_interested_unsubscribes_and_tells_the_owner(app) {
        topics(app).await;
        let owner = app.create("/api/v1/users", json!({"name": "Olga Owner", "email": "olga@example.com", "role": "member"})).await;
        let ana = contact(app, json!({"first_name": "Ana", "owner_id": id_of(&owner), "emails": [{"address": "ana@example.com"}]}))
            .await;
        let secret = app.store().app_secret("unsubscribe").await.unwrap();
        let url = rapport_web::preferences::preferences_url("", &secret, ana.parse().unwrap(), rapport_core::new_id());
        let done = send(app.anon(Method::POST, &url).header("content-type", "application/x-www-form-urlencoded")
            .body("topic=news&not_interested=1"))
            .await;
        assert_eq!(done.status, 200, "{}", done.text);
        let state = app.get(&format!("/api/v1/contacts/{ana}/consent")).await.expect(200);
        assert_eq!((state["all_marketing"].as_bool(), state["privacy"]["not_interested"].as_bool()), (Some(false), Some(true)));
        assert!(state["topics"].as_array().unwrap().iter().all(|t| t["subscribed"] == false), "{state}");
        assert_eq!(state["history"][0]["source"], "preference_centre", "{state}");
        let key = app.create_key_for_user(&id_of(&owner)).await;
        let mine = send(app.with_key(&key, Method::GET, "/api/v1/notifications")).await.expect(200);
        assert_eq!(mine["data"][0]["contact_id"].as_str(), Some(ana.as_str()), "{mine}");
        assert!(mine["data"][0]["message"].as_str().unwrap().contains("not interested"), "{mine}");
        let tl = app.get(&format!("/api/v1/contacts/{ana}/timeline")).await.expect(200);
        let kinds: Vec<&str> = tl["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"privacy.changed") && kinds.contains(&"email.unsubscribed"), "{kinds:?}");
        // The page shows their choices as they now stand.
        let page = send(app.anon(Method::GET, &url)).await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("name=\"not_interested\" value=\"1\" checked"), "{}", page.text);
    }
}

async fn preference_centre(backend: Backend) {
    // The first attempt fails for now: the message waits in the outbox for its retry.
    let sink = SmtpSink::start(Behaviour::accept().fail_next(1)).await.expect("smtp sink");
    let Some(mut app) = TestApp::spawn_with_smtp(backend, sink.url()).await else { return };
    topics(&app).await;
    app.create(
        "/api/v1/templates",
        json!({"name": "welcome", "subject": "Hello", "text": "Hi {{ contact.first_name }}\nPreferences: {{ preferences_url }}"}),
    )
    .await;
    let w = welcome_workflow(&app).await;
    let ana = contact(&app, json!({"first_name": "Ana", "emails": [{"address": "ana@example.com"}]})).await;
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": ana})).await.expect(200);
    app.post("/api/v1/admin/clock", json!({"advance": "PT0S"})).await.expect(200);
    assert_eq!(sink.messages().len(), 0);
    // Make it a message about offers (what a campaign with that topic queues).
    let id: uuid::Uuid = ana.parse().unwrap();
    let message = app
        .store()
        .write(move |tx| {
            tx.execute("UPDATE message_outbox SET topic = 'offers' WHERE contact_id = $1", &[id.into()])?;
            tx.query_one("SELECT id FROM message_outbox WHERE contact_id = $1", &[id.into()])?.uuid(0)
        })
        .await
        .unwrap();
    let secret = app.store().app_secret("unsubscribe").await.unwrap();
    let url = rapport_web::preferences::preferences_url("", &secret, id, message);

    // GET shows every topic with its state, escaped, and changes nothing.
    let page = send(app.anon(Method::GET, &url)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("value=\"news\" checked") && page.text.contains("value=\"offers\" checked"), "{}", page.text);
    assert!(page.text.contains("Offers &amp; &lt;sales&gt;") && !page.text.contains("<sales>"), "{}", page.text);
    assert!(page.text.contains("name=\"unsubscribe_all\"") && page.text.contains("name=\"do_not_track\""));
    // A forged token is refused, both ways.
    let mut forged = url.clone();
    forged.pop();
    forged.push(if url.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(send(app.anon(Method::GET, &forged)).await.status, 404);
    assert_eq!(send(app.anon(Method::POST, &forged).body("topic=news")).await.status, 404);
    // An unsubscribe link's token is not a preference token.
    let unsub = rapport_channels::token::sign(
        &secret,
        rapport_channels::token::Purpose::Unsubscribe,
        *id.as_bytes(),
        *message.as_bytes(),
    );
    assert_eq!(send(app.anon(Method::GET, &format!("/p/{unsub}"))).await.status, 404);

    // POST: keep the newsletter, leave offers, don't track. No cookie, no key.
    let saved = send(
        app.anon(Method::POST, &url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("topic=news&do_not_track=1"),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert!(saved.text.contains("Newsletter"), "{}", saved.text);
    let state = app.get(&format!("/api/v1/contacts/{ana}/consent")).await.expect(200);
    let subscribed: Vec<(&str, bool)> = state["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["key"].as_str().unwrap(), t["subscribed"].as_bool().unwrap()))
        .collect();
    assert_eq!(subscribed, [("news", true), ("offers", false)], "{state}");
    assert_eq!((state["all_marketing"].as_bool(), state["privacy"]["do_not_track"].as_bool()), (Some(true), Some(true)));
    let tl = app.get(&format!("/api/v1/contacts/{ana}/timeline?type=email.unsubscribed")).await.expect(200);
    assert_eq!(tl["data"][0]["payload"]["topic"], "offers", "{tl}");
    assert_eq!(tl["data"][0]["payload"]["source"], "preference_centre", "{tl}");

    // The queued message about offers is cancelled when its retry comes up, with the reason.
    app.post("/api/v1/admin/clock", json!({"advance": "PT2M"})).await.expect(200);
    assert_eq!(sink.messages().len(), 0, "the offers message did not go");
    let (status, reason, topic) = outbox(&app, &ana).await.remove(0);
    assert_eq!((status.as_str(), topic.as_deref()), ("cancelled", Some("offers")));
    assert_eq!(reason.as_deref(), Some("they unsubscribed from the topic offers before it was sent"));

    // A message without a topic still goes (they left one topic, not all marketing), and it
    // links to their preference centre.
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": ana})).await.expect(200);
    app.post("/api/v1/admin/clock", json!({"advance": "PT1M"})).await.expect(200);
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    let parsed = mail_parser::MessageParser::default().parse(&got[0].data).expect("a MIME message");
    let text = parsed.body_text(0).expect("a text part").to_string();
    let start = text.find("https://crm.example/p/").expect("a preference link in the message");
    let link: String = text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || "/:._-".contains(*c)).collect();
    let page = send(app.anon(Method::GET, link.trim_start_matches("https://crm.example"))).await;
    assert_eq!(page.status, 200, "{link}: {}", page.text);
    assert!(page.text.contains("value=\"offers\">"), "offers shown unticked: {}", page.text);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preference_centre_changes_topics_and_stops_queued_messages_sqlite() {
    preference_centre(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preference_centre_changes_topics_and_stops_queued_messages_postgres() {
    preference_centre(Backend::Postgres).await;
}

/// Email is ready (so messages queue) but nothing sends them: the test claims by hand.
async fn do_not_contact(backend: Backend) {
    let Some(mut app) =
        TestApp::spawn_tuned(backend, |o| o.automation.ready_channels = vec![rapport_core::workflow::MessageChannel::Email])
            .await
    else {
        return;
    };
    let app = &mut app;
    app.create("/api/v1/templates", json!({"name": "welcome", "subject": "Hi", "text": "Hello"})).await;
    let w = welcome_workflow(app).await;
    let ana = contact(app, json!({"first_name": "Ana", "emails": [{"address": "ana@example.com"}]})).await;
    let ben = contact(app, json!({"first_name": "Ben", "emails": [{"address": "ben@example.com"}]})).await;
    // Ben's message is queued first; "do not contact" then stops it at claim time.
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": ben})).await.expect(200);
    app.post("/api/v1/admin/clock", json!({"advance": "PT0S"})).await.expect(200);
    assert_eq!(outbox(app, &ben).await[0].0, "queued");
    for c in [&ana, &ben] {
        let p = app.req(Method::PUT, &format!("/api/v1/contacts/{c}/privacy")).json(&json!({"do_not_contact": true}));
        let p = send(p).await.expect(200);
        assert_eq!((p["do_not_contact"].as_bool(), p["do_not_track"].as_bool()), (Some(true), Some(false)), "{p}");
    }
    let claimed = app.store().claim_messages("email", 10, chrono::Duration::seconds(60)).await.unwrap();
    assert!(claimed.is_empty(), "{claimed:?}");
    let (status, reason, _) = outbox(app, &ben).await.remove(0);
    assert_eq!(status, "cancelled");
    assert!(reason.unwrap().contains("do not contact"));

    // A workflow message is blocked before it is queued, and the reason is on the run.
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": ana})).await.expect(200);
    app.post("/api/v1/admin/clock", json!({"advance": "PT1M"})).await.expect(200);
    let view = app.get(&format!("/api/v1/contacts/{ana}/automation")).await.expect(200);
    let step = &view["runs"][0]["steps"][0];
    assert_eq!(step["outcome"], "blocked", "{view}");
    assert!(step["detail"].as_str().unwrap().contains("do not contact"), "{view}");
    assert!(outbox(app, &ana).await.is_empty());
    let tl = app.get(&format!("/api/v1/contacts/{ana}/timeline?type=privacy.changed")).await.expect(200);
    assert_eq!(tl["data"][0]["payload"]["changed"], json!(["do_not_contact"]), "{tl}");
    // Bad input names the field; a viewer may read but not change.
    send(app.req(Method::PUT, &format!("/api/v1/contacts/{ana}/privacy")).json(&json!({"do_not_contact": "yes"})))
        .await
        .expect_field_problem(422, "do_not_contact");
    let viewer = app.create_key("viewer", Role::Viewer).await;
    send(app.with_key(&viewer, Method::GET, &format!("/api/v1/contacts/{ana}/privacy"))).await.expect(200);
    send(app.with_key(&viewer, Method::PUT, &format!("/api/v1/contacts/{ana}/privacy")).json(&json!({"do_not_track": true})))
        .await
        .expect_problem(403);
    app.get("/api/v1/contacts/00000000-0000-0000-0000-000000000000/consent").await.expect_problem(404);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_contact_blocks_marketing_with_the_reason_shown_sqlite() {
    do_not_contact(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_contact_blocks_marketing_with_the_reason_shown_postgres() {
    do_not_contact(Backend::Postgres).await;
}

/// Double opt-in with a confirmation email: Rapport sends it (transactional: the person is not
/// subscribed yet), its link confirms the grant, and bad requests name the field.
async fn confirmation_email(backend: Backend) {
    let sink = SmtpSink::start(Behaviour::accept()).await.expect("smtp sink");
    let Some(mut app) = TestApp::spawn_with_smtp(backend, sink.url()).await else { return };
    topics(&app).await;
    app.create(
        "/api/v1/templates",
        json!({"name": "confirm-news", "purpose": "transactional", "subject": "Please confirm, {{ contact.first_name }}",
               "text": "Confirm your subscription: {{ confirm_url }}",
               "html": "<p><a href=\"{{ confirm_url }}\">Yes, subscribe me</a></p>"}),
    )
    .await;
    let ana = contact(&app, json!({"first_name": "Ana", "emails": [{"address": "ana@example.com"}]})).await;
    let nomail = contact(&app, json!({"first_name": "Ned"})).await;
    let path = |c: &str| format!("/api/v1/contacts/{c}/consent");
    let grant = |template: &str| {
        json!({"purpose": "news", "granted": true, "source": "signup_form", "double_opt_in": true,
               "confirmation_template": template})
    };
    send(app.req(Method::POST, &path(&ana)).json(&grant("nosuch"))).await.expect_field_problem(422, "confirmation_template");
    send(app.req(Method::POST, &path(&nomail)).json(&grant("confirm-news")))
        .await
        .expect_field_problem(422, "confirmation_template");
    send(app.req(Method::POST, &path(&ana)).json(&json!({"purpose": "news", "granted": true, "source": "form",
        "confirmation_template": "confirm-news"})))
    .await
    .expect_field_problem(422, "confirmation_template");
    assert!(app.get(&path(&ana)).await.expect(200)["history"].as_array().unwrap().is_empty(), "nothing half-written");

    let pending = app.create(&path(&ana), grant("confirm-news")).await;
    assert_eq!(pending["status"], "pending", "{pending}");
    app.post("/api/v1/admin/clock", json!({"advance": "PT1M"})).await.expect(200);
    let got = sink.messages();
    assert_eq!(got.len(), 1, "the confirmation email went out");
    let raw = String::from_utf8_lossy(&got[0].data).to_string();
    assert!(!raw.contains("List-Unsubscribe:"), "transactional: no unsubscribe header\n{raw}");
    let parsed = mail_parser::MessageParser::default().parse(&got[0].data).unwrap();
    let text = parsed.body_text(0).unwrap().to_string();
    let link = text.split_whitespace().find(|w| w.contains("/p/confirm/")).expect("a confirmation link").to_string();
    let html = parsed.body_html(0).unwrap().replace("&#x2f;", "/");
    assert!(html.contains(&format!("href=\"{link}\"")), "the link is not rewritten for tracking: {html}");
    let path_only = link.split_once("://").map(|(_, rest)| &rest[rest.find('/').unwrap()..]).unwrap().to_string();
    assert_eq!(
        path_only,
        pending["confirm_url"]
            .as_str()
            .unwrap()
            .split_once("://")
            .map_or(pending["confirm_url"].as_str().unwrap().to_string(), |(_, rest)| rest[rest.find('/').unwrap()..]
                .to_string())
    );
    let done = send(app.anon(Method::POST, &path_only)).await;
    assert_eq!(done.status, 200, "{}", done.text);
    let state = app.get(&path(&ana)).await.expect(200);
    let news = state["topics"].as_array().unwrap().iter().find(|t| t["key"] == "news").unwrap().clone();
    assert_eq!(news["subscribed"], true, "{state}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_opt_in_sends_its_confirmation_email_sqlite() {
    confirmation_email(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_opt_in_sends_its_confirmation_email_postgres() {
    confirmation_email(Backend::Postgres).await;
}
