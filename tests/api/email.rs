//! Email through a real SMTP conversation (issue #7): a workflow's message is rendered with the
//! person's data and handed to a relay the test runs; marketing mail carries one-click
//! unsubscribe headers; the link's GET never unsubscribes, its POST does (without cookies), a
//! forged token is refused, and messages already queued stop.

use mail_parser::MessageParser;
use rapport_channels::email::sink::{Behaviour, SmtpSink};
use serde_json::json;

use crate::{Backend, TestApp, id_of, send};

async fn email_end_to_end(backend: Backend) {
    let sink = SmtpSink::start(Behaviour::accept().fail_next(1)).await.expect("smtp sink");
    let Some(mut app) = TestApp::spawn_with_smtp(backend, sink.url()).await else { return };
    app.create(
        "/api/v1/templates",
        json!({"name": "welcome", "subject": "Welcome, {{ contact.first_name }}!",
        "text": "Hi {{ contact.first_name }}, good to have you.\nUnsubscribe: {{ unsubscribe_url }}",
        "html": "<p>Hi {{ contact.first_name }}, good to <b>have</b> you.</p>"}),
    )
    .await;
    let ana = id_of(
        &app.create(
            "/api/v1/contacts",
            json!({"first_name": "Zoë", "emails": [{"address": "zoe@example.com"}],
        "time_zone": "UTC"}),
        )
        .await,
    );
    let w = app
        .create(
            "/api/v1/workflows",
            json!({"name": "Welcome", "trigger": {"kind": "manual"}, "reentry": "always",
        "steps": [{"action": "send_message", "channel": "email", "template": "welcome"}]}),
        )
        .await;
    let w = id_of(&w);
    app.post(&format!("/api/v1/workflows/{w}/enable"), json!({})).await.expect(200);
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": ana})).await.expect(200);
    // The relay's first answer is a temporary failure: the message waits and is retried.
    app.post("/api/v1/admin/clock", json!({"advance": "PT0S"})).await.expect(200);
    assert_eq!(sink.messages().len(), 0);
    app.post("/api/v1/admin/clock", json!({"advance": "PT2M"})).await.expect(200);
    if let Err(e) = app.store().message_context(ana.parse().unwrap()).await {
        panic!("the message context: {e}");
    }
    let got = sink.messages();
    assert_eq!(got.len(), 1, "sent once after the retry");
    assert_eq!(got[0].rcpt_to, ["zoe@example.com"]);
    let parsed = MessageParser::default().parse(&got[0].data).expect("a MIME message");
    assert_eq!(parsed.subject(), Some("Welcome, Zoë!"));
    assert_eq!(parsed.body_text(0).as_deref().map(|t| t.starts_with("Hi Zoë, good to have you.")), Some(true));
    assert!(parsed.body_html(0).unwrap().contains("<b>have</b>"));
    let raw = String::from_utf8_lossy(&got[0].data).to_string();
    let header = |name: &str| {
        raw.lines()
            .find_map(|l| l.split_once(": ").filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
    };
    assert_eq!(header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let list = header("List-Unsubscribe").expect("List-Unsubscribe");
    let url = list.trim_matches(|c| c == '<' || c == '>').to_string();
    assert!(url.starts_with("https://crm.example/u/"), "{url}");
    let path = url.trim_start_matches("https://crm.example");
    let run = app.get(&format!("/api/v1/contacts/{ana}/automation")).await.expect(200);
    let outcomes: Vec<&str> =
        run["runs"][0]["steps"].as_array().unwrap().iter().map(|s| s["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["queued", "sent"], "{run}");

    // A scanner's GET shows a page and changes nothing.
    let page = send(app.anon(reqwest::Method::GET, path)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("zoe@example.com") && page.text.contains("<form method=\"post\">"));
    // A forged or altered token is refused.
    let mut forged = path.to_string();
    forged.pop();
    forged.push(if path.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(send(app.anon(reqwest::Method::POST, &forged)).await.status, 404);
    // Queue another message, then unsubscribe with a bare POST (no cookie, no key) before it goes.
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": ana})).await.expect(200);
    let sent = sink.messages().len();
    let done = send(app.anon(reqwest::Method::POST, path)).await;
    assert_eq!(done.status, 200, "{}", done.text);
    app.post("/api/v1/admin/clock", json!({"advance": "PT5M"})).await.expect(200);
    assert_eq!(sink.messages().len(), sent, "nothing more after unsubscribing");
    let timeline = app.get(&format!("/api/v1/contacts/{ana}/timeline?type=email.unsubscribed")).await.expect(200);
    assert_eq!(timeline["data"].as_array().unwrap().len(), 1, "{timeline}");
    // Later runs are blocked before anything is queued.
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": ana})).await.expect(200);
    app.post("/api/v1/admin/clock", json!({"advance": "PT5M"})).await.expect(200);
    assert_eq!(sink.messages().len(), sent);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_out_over_smtp_and_unsubscribes_stop_it_sqlite() {
    email_end_to_end(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_out_over_smtp_and_unsubscribes_stop_it_postgres() {
    email_end_to_end(Backend::Postgres).await;
}
