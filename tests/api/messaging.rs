//! SMS and chat (issue #7, item 7): workflow messages go to a provider webhook the test runs
//! (signed, with the message id as idempotency key), temporary failures are retried on the
//! manual clock, permanent ones recorded with the provider's answer, withdrawn consent stops
//! them; inbound messages land on the timeline, stop pending outreach, and STOP opts out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rapport_channels::messaging::ProviderSettings;
use rapport_channels::webhook::{WebhookSecret, verify_signature};
use rapport_core::workflow::MessageChannel;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::{Backend, TestApp, id_of};

const SECRET: &str = "sms-signing-secret";
const TOKEN: &str = "provider-api-token";

/// One request the provider received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    /// Lower-case names.
    headers: HashMap<String, String>,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Answers (status, body) still to give, by path.
type Script = HashMap<String, VecDeque<(u16, String)>>;

/// A provider on 127.0.0.1: records every request and answers each path from its script
/// (status, body), then `200 {"id": "prov-<n>"}`.
#[derive(Clone, Default)]
struct Provider {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    base: String,
}

impl Provider {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Provider { base: format!("http://{}", listener.local_addr().unwrap()), ..Default::default() };
        let me = p.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let Some((head, body)) = crate::automation::read_request(&mut socket).await else { return };
                    let mut lines = head.lines();
                    let path = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_string();
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let n = {
                        let mut got = me.received.lock().unwrap();
                        got.push(Received { path: path.clone(), headers, body });
                        got.len()
                    };
                    let (status, answer) = me
                        .script
                        .lock()
                        .unwrap()
                        .get_mut(&path)
                        .and_then(VecDeque::pop_front)
                        .unwrap_or_else(|| (200, format!(r#"{{"id":"prov-{n}"}}"#)));
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        p
    }

    /// The next answers to requests for `path`.
    fn answer(&self, path: &str, status: u16, body: &str) {
        self.script.lock().unwrap().entry(path.to_string()).or_default().push_back((status, body.to_string()));
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    fn settings(&self, path: &str) -> ProviderSettings {
        ProviderSettings {
            url: format!("{}{path}", self.base),
            secret: Some(SECRET.into()),
            auth_token: Some(TOKEN.into()),
            headers: vec![("X-Account".into(), "harbour-pine".into())],
            allow_private: true,
        }
    }
}

async fn spawn(backend: Backend, provider: &Provider) -> Option<TestApp> {
    TestApp::spawn_with_texts(
        backend,
        vec![(MessageChannel::Sms, provider.settings("/sms")), (MessageChannel::Chat, provider.settings("/chat"))],
        |o| {
            o.automation.quiet_hours = None;
            o.automation.caps.clear();
        },
    )
    .await
}

/// A contact with a phone number, a text template and a live workflow with `steps`; returns
/// (contact id, workflow id).
async fn setup(app: &TestApp, steps: Value) -> (String, String) {
    app.create(
        "/api/v1/templates",
        json!({"name": "offer-sms", "channel": "sms",
               "text": "Hi {{ contact.first_name }}, 10% off this week. Reply STOP to opt out."}),
    )
    .await;
    let ana = id_of(
        &app.create(
            "/api/v1/contacts",
            json!({"first_name": "Ana", "phones": [{"number": "+49 151 12345678"}], "time_zone": "UTC"}),
        )
        .await,
    );
    let w = id_of(
        &app.create(
            "/api/v1/workflows",
            json!({"name": "Texts", "trigger": {"kind": "manual"}, "reentry": "always", "steps": steps}),
        )
        .await,
    );
    app.post(&format!("/api/v1/workflows/{w}/enable"), json!({})).await.expect(200);
    (ana, w)
}

async fn start(app: &TestApp, w: &str, contact: &str) {
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": contact})).await.expect(200);
    advance(app, "PT0S").await;
}

async fn advance(app: &TestApp, by: &str) {
    let r = app.post("/api/v1/admin/clock", json!({"advance": by})).await.expect(200);
    assert_eq!(r["pending"], false, "{r}");
}

/// The latest run's step outcomes and details.
async fn latest_run(app: &TestApp, contact: &str) -> Value {
    app.get(&format!("/api/v1/contacts/{contact}/automation")).await.expect(200)["runs"][0].clone()
}

fn outcomes(run: &Value) -> Vec<String> {
    run["steps"].as_array().unwrap().iter().map(|s| s["outcome"].as_str().unwrap().to_string()).collect()
}

async fn timeline(app: &TestApp, contact: &str, types: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/contacts/{contact}/timeline?type={types}")).await.expect(200)["data"].as_array().unwrap().clone()
}

async fn inbound(app: &TestApp, body: Value) -> crate::Resp {
    app.post("/api/v1/messages/inbound", body).await
}

async fn sends_retries_and_records(backend: Backend) {
    let provider = Provider::start().await;
    let Some(mut app) = spawn(backend, &provider).await else { return };
    let (ana, w) = setup(
        &app,
        json!([{"action": "send_message", "channel": "sms", "template": "offer-sms"},
               {"action": "send_message", "channel": "chat", "template": "offer-sms"}]),
    )
    .await;
    // Only email has a subject.
    let bad = app
        .post(
            "/api/v1/workflows",
            json!({"name": "Bad", "trigger": {"kind": "manual"},
                   "steps": [{"action": "send_message", "channel": "chat", "template": "offer-sms", "subject": "Hi"}]}),
        )
        .await;
    assert_eq!((bad.status, bad.error_fields()), (400, vec!["steps[0].subject".to_string()]), "{}", bad.text);
    // The provider is down for the SMS at first; the chat goes through.
    provider.answer("/sms", 503, r#"{"error":"try later"}"#);
    start(&app, &w, &ana).await;
    let first = provider.received("/sms");
    assert_eq!(first.len(), 1, "one attempt so far");
    let chat = provider.received("/chat");
    assert_eq!(chat.len(), 1);
    assert_eq!(chat[0].json()["channel"], "chat");

    let sms = &first[0];
    let body = sms.json();
    let message_id = body["message_id"].as_str().unwrap().to_string();
    assert_eq!(body["channel"], "sms");
    assert_eq!(body["to"], "+4915112345678");
    assert_eq!(body["text"], "Hi Ana, 10% off this week. Reply STOP to opt out.");
    assert_eq!(body["contact_id"], ana.as_str());
    assert_eq!(body["metadata"]["template"], "offer-sms");
    assert_eq!(sms.headers.get("idempotency-key"), Some(&message_id));
    assert_eq!(sms.headers.get("authorization").map(String::as_str), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(sms.headers.get("x-account").map(String::as_str), Some("harbour-pine"));
    let signature = sms.headers.get("rapport-signature").expect("signed");
    assert!(verify_signature(
        &WebhookSecret::new(SECRET),
        signature,
        sms.body.as_bytes(),
        SystemTime::now(),
        Duration::from_secs(300)
    ));

    // Retried on the email schedule: not before a minute has passed.
    advance(&app, "PT30S").await;
    assert_eq!(provider.received("/sms").len(), 1);
    provider.answer("/sms", 200, r#"{"sid":"SM-42","status":"queued"}"#);
    advance(&app, "PT1M").await;
    let all = provider.received("/sms");
    assert_eq!(all.len(), 2, "sent on the retry");
    assert_eq!(all[1].headers.get("idempotency-key"), Some(&message_id), "the same key on every attempt");
    assert_eq!(all[1].json()["text"], body["text"]);
    assert_eq!(outcomes(&latest_run(&app, &ana).await), ["queued", "queued", "sent", "sent"]);

    let sent = timeline(&app, &ana, "sms.sent").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["id"], message_id.as_str());
    assert_eq!(sent[0]["payload"]["provider_message_id"], "SM-42");
    assert_eq!(sent[0]["payload"]["text"], body["text"]);
    let chats = timeline(&app, &ana, "chat.message").await;
    assert_eq!((chats.len(), chats[0]["payload"]["direction"].as_str()), (1, Some("outbound")), "{chats:?}");

    // Nothing more goes out, even after a restart.
    app.restart_server().await;
    advance(&app, "PT1H").await;
    assert_eq!((provider.received("/sms").len(), provider.received("/chat").len()), (2, 1));
    app.finish().await;
}

async fn refusals_and_consent(backend: Backend) {
    let provider = Provider::start().await;
    let Some(mut app) = spawn(backend, &provider).await else { return };
    let (ana, w) = setup(&app, json!([{"action": "send_message", "channel": "sms", "template": "offer-sms"}])).await;
    // A permanent refusal is recorded with the provider's answer and not retried.
    provider.answer("/sms", 400, r#"{"error":"number is not mobile"}"#);
    start(&app, &w, &ana).await;
    let run = latest_run(&app, &ana).await;
    assert_eq!(outcomes(&run), ["queued", "failed"], "{run}");
    let detail = run["steps"][1]["detail"].as_str().unwrap();
    assert!(detail.contains("400") && detail.contains("number is not mobile"), "{detail}");
    advance(&app, "P1D").await;
    assert_eq!(provider.received("/sms").len(), 1);

    // A message waiting for a retry when consent is withdrawn is not sent.
    provider.answer("/sms", 429, "{}");
    start(&app, &w, &ana).await;
    assert_eq!(provider.received("/sms").len(), 2);
    app.post(
        &format!("/api/v1/contacts/{ana}/consent"),
        json!({"purpose": "marketing", "channel": "sms", "granted": false, "source": "phone_call"}),
    )
    .await
    .expect(201);
    advance(&app, "PT10M").await;
    assert_eq!(provider.received("/sms").len(), 2, "not sent after the withdrawal");
    let run = latest_run(&app, &ana).await;
    assert_eq!(outcomes(&run), ["queued", "cancelled"], "{run}");
    // And no new one is queued.
    start(&app, &w, &ana).await;
    let run = latest_run(&app, &ana).await;
    assert_eq!(outcomes(&run), ["blocked"], "{run}");
    assert!(run["steps"][0]["detail"].as_str().unwrap().contains("withdrew consent to marketing by sms"), "{run}");
    assert_eq!(provider.received("/sms").len(), 2);
    app.finish().await;
}

async fn inbound_messages(backend: Backend) {
    let provider = Provider::start().await;
    let Some(mut app) = spawn(backend, &provider).await else { return };
    let (ana, w) = setup(
        &app,
        json!([{"action": "send_message", "channel": "sms", "template": "offer-sms"}, {"wait": "P2D"},
               {"action": "send_message", "channel": "sms", "template": "offer-sms"}]),
    )
    .await;
    start(&app, &w, &ana).await;
    assert_eq!(provider.received("/sms").len(), 1);
    assert_eq!(latest_run(&app, &ana).await["status"], "waiting");

    // Her answer lands on the timeline and stops the reminder.
    let reply = json!({"channel": "sms", "from": "+49 151 1234 5678", "to": "+4930123456",
        "body": "Yes please, book me in", "received_at": "2026-01-15T09:00:30Z", "provider_message_id": "in-1"});
    let got = inbound(&app, reply.clone()).await.expect(201);
    assert_eq!((got["status"].as_str(), got["contact_id"].as_str()), (Some("recorded"), Some(ana.as_str())), "{got}");
    assert_eq!((got["event_type"].as_str(), got["opted_out"].as_bool()), (Some("sms.received"), Some(false)));
    let again = inbound(&app, reply).await.expect(200);
    assert_eq!(again["status"], "duplicate");
    let received = timeline(&app, &ana, "sms.received").await;
    assert_eq!(received.len(), 1, "recorded once: {received:?}");
    assert_eq!(received[0]["payload"]["text"], "Yes please, book me in");
    assert_eq!(received[0]["occurred_at"], "2026-01-15T09:00:30Z");
    advance(&app, "P3D").await;
    let run = latest_run(&app, &ana).await;
    assert_eq!(run["status"], "exited", "{run}");
    assert!(run["end_reason"].as_str().unwrap().contains("they got in touch (sms.received"), "{run}");
    assert_eq!(provider.received("/sms").len(), 1, "no reminder after her answer");

    // Chat messages too.
    let chat =
        inbound(&app, json!({"channel": "chat", "from": "+4915112345678", "body": "Is it open on Sunday?"})).await.expect(201);
    assert_eq!(chat["event_type"], "chat.message");
    let chats = timeline(&app, &ana, "chat.message").await;
    assert_eq!(chats[0]["payload"]["direction"], "inbound");

    let spec = app.get("/api/openapi.json").await.expect(200);
    assert!(spec["paths"]["/api/v1/messages/inbound"]["post"].is_object(), "documented in OpenAPI");

    // Unknown numbers: 404 unless a lead is wanted.
    let stranger = json!({"channel": "sms", "from": "+4917098765432", "body": "Who is this?"});
    inbound(&app, stranger.clone()).await.expect_problem(404);
    let mut lead = stranger;
    lead["create_contact"] = json!(true);
    let made = inbound(&app, lead).await.expect(201);
    let contact = app.get(&format!("/api/v1/contacts/{}", made["contact_id"].as_str().unwrap())).await.expect(200);
    assert_eq!(contact["phones"][0]["e164"], "+4917098765432", "{contact}");

    // Validation names the field.
    inbound(&app, json!({"channel": "fax", "from": "+4915112345678", "body": "x"})).await.expect_field_problem(422, "channel");
    inbound(&app, json!({"channel": "sms", "from": "call me", "body": "x"})).await.expect_field_problem(422, "from");
    inbound(&app, json!({"channel": "sms", "from": "+4915112345678"})).await.expect_field_problem(422, "body");
    inbound(&app, json!({"channel": "sms", "from": "+4915112345678", "body": "x", "colour": "red"}))
        .await
        .expect_field_problem(422, "colour");

    // STOP withdraws consent to SMS marketing, cancels what is queued, and holds back the next.
    provider.answer("/sms", 503, "{}");
    start(&app, &w, &ana).await;
    assert_eq!(provider.received("/sms").len(), 2, "one attempt, waiting for its retry");
    let stop = inbound(&app, json!({"channel": "sms", "from": "+4915112345678", "body": "STOP", "provider_message_id": "in-2"}))
        .await
        .expect(201);
    assert_eq!((stop["opted_out"].as_bool(), stop["cancelled_messages"].as_u64()), (Some(true), Some(1)), "{stop}");
    let consent = app.get(&format!("/api/v1/contacts/{ana}/consent")).await.expect(200);
    let sms = consent["consents"].as_array().unwrap().iter().find(|c| c["channel"] == "sms").cloned().unwrap_or_default();
    assert_eq!((sms["purpose"].as_str(), sms["granted"].as_bool()), (Some("marketing"), Some(false)), "{consent}");
    advance(&app, "PT10M").await;
    assert_eq!(provider.received("/sms").len(), 2, "the queued message was cancelled");
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": ana})).await.expect(200);
    advance(&app, "PT0S").await;
    assert_eq!(outcomes(&latest_run(&app, &ana).await)[0], "blocked");
    // START asks for them again: consent is granted anew, recorded with the reply.
    let again =
        inbound(&app, json!({"channel": "sms", "from": "+4915112345678", "body": "Start", "provider_message_id": "in-3"}))
            .await
            .expect(201);
    assert_eq!((again["opted_in"].as_bool(), again["opted_out"].as_bool()), (Some(true), Some(false)), "{again}");
    let consent = app.get(&format!("/api/v1/contacts/{ana}/consent")).await.expect(200);
    let sms = consent["consents"].as_array().unwrap().iter().find(|c| c["channel"] == "sms").cloned().unwrap_or_default();
    assert_eq!(sms["granted"].as_bool(), Some(true), "{consent}");
    assert_eq!(consent["history"][0]["source"], "sms_reply", "{consent}");
    // A second START changes nothing.
    let twice =
        inbound(&app, json!({"channel": "sms", "from": "+4915112345678", "body": "START", "provider_message_id": "in-4"}))
            .await
            .expect(201);
    assert_eq!(twice["opted_in"].as_bool(), Some(false), "{twice}");
    app.finish().await;
}

async fn unsendable_until_configured(backend: Backend) {
    let provider = Provider::start().await;
    let Some(mut app) = TestApp::spawn_tuned(backend, |o| o.automation.quiet_hours = None).await else { return };
    let (ana, w) = setup(&app, json!([{"action": "send_message", "channel": "sms", "template": "offer-sms"}])).await;
    start(&app, &w, &ana).await;
    let run = latest_run(&app, &ana).await;
    assert_eq!(outcomes(&run), ["unsendable"], "{run}");
    assert!(run["steps"][0]["detail"].as_str().unwrap().contains("no sms channel is set up"), "{run}");
    // Once a provider is configured, the waiting message goes out.
    app.texts = vec![(MessageChannel::Sms, provider.settings("/sms"))];
    app.restart_server().await;
    advance(&app, "PT0S").await;
    assert_eq!(provider.received("/sms").len(), 1);
    assert_eq!(outcomes(&latest_run(&app, &ana).await), ["unsendable", "sent"]);
    app.finish().await;
}

macro_rules! on_both {
    ($($name:ident => $body:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(crate::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(crate::Backend::Postgres).await;
            }
        }
    )+};
}

on_both! {
    messaging_sends_retries_and_records => sends_retries_and_records,
    messaging_refusals_and_consent => refusals_and_consent,
    messaging_inbound => inbound_messages,
    messaging_unsendable_until_configured => unsendable_until_configured,
}
