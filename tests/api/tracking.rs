//! What happens to email after it leaves (issue #7, tracking and intake): click links redirect
//! only to URLs that were in the message and land on the timeline, the open pixel records
//! opens, people who asked not to be tracked get neither; bounces and complaints (JSON or raw
//! DSN) suppress the address so that later messages are not sent; answers are told from
//! automatic answers, and an answer stops a workflow's outreach.

use mail_parser::MessageParser;
use rapport_channels::email::sink::{Behaviour, ReceivedMessage as Received, SmtpSink};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, TestApp, id_of, send};

const PUBLIC: &str = "https://crm.example";

async fn clock(app: &TestApp, by: &str) {
    app.post("/api/v1/admin/clock", json!({"advance": by})).await.expect(200);
}

async fn contact(app: &TestApp, name: &str, email: &str) -> String {
    id_of(&app.create("/api/v1/contacts", json!({"first_name": name, "emails": [{"address": email}], "time_zone": "UTC"})).await)
}

/// A live workflow started by hand whose steps are `steps`.
async fn workflow(app: &TestApp, steps: Value, exit_when: Value) -> String {
    let w = id_of(
        &app.create(
            "/api/v1/workflows",
            json!({"name": "Mail", "trigger": {"kind": "manual"}, "reentry": "always", "steps": steps, "exit_when": exit_when}),
        )
        .await,
    );
    app.post(&format!("/api/v1/workflows/{w}/enable"), json!({})).await.expect(200);
    w
}

async fn start(app: &TestApp, w: &str, contact: &str) {
    app.post(&format!("/api/v1/workflows/{w}/start"), json!({"contact_id": contact})).await.expect(200);
}

async fn promo_template(app: &TestApp) {
    app.create(
        "/api/v1/templates",
        json!({"name": "promo", "subject": "Spring sale, {{ contact.first_name }}",
        "text": "Our sale: https://shop.example/sale\nUnsubscribe: {{ unsubscribe_url }}",
        "html": "<html><body><p>Hi {{ contact.first_name }}!</p><a href=\"https://shop.example/sale?x=1&amp;y=2\">Sale</a> \
                 <a href=\"mailto:hi@shop.example\">Write to us</a> <a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></body></html>"}),
    )
    .await;
}

fn to_of(m: &Received) -> &str {
    m.rcpt_to.first().map(String::as_str).unwrap_or_default()
}

fn html_of(m: &Received) -> String {
    MessageParser::default().parse(&m.data).expect("a MIME message").body_html(0).expect("an HTML part").into_owned()
}

/// The outbox id the message carries.
fn rapport_id(m: &Received) -> String {
    let raw = String::from_utf8_lossy(&m.data).to_string();
    raw.lines()
        .find_map(|l| l.strip_prefix("X-Rapport-Message: "))
        .map(|v| v.trim().to_string())
        .expect("an X-Rapport-Message header")
}

/// Every `attr="…"` value in `html`, entities decoded.
fn attrs(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            // Templates escape `/` in URLs they insert.
            rest[..rest.find('"').unwrap()].replace("&#x2f;", "/").replace("&amp;", "&")
        })
        .collect()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn timeline(app: &TestApp, contact: &str, kind: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/contacts/{contact}/timeline?type={kind}")).await.expect(200)["data"].as_array().unwrap().clone()
}

async fn outbox_times(app: &TestApp, message: &str) -> Vec<Option<chrono::DateTime<chrono::Utc>>> {
    let id: uuid::Uuid = message.parse().unwrap();
    app.store()
        .read(move |tx| {
            let r = tx.query_one(
                "SELECT opened_at, clicked_at, bounced_at, complained_at, replied_at FROM message_outbox WHERE id = $1",
                &[id.into()],
            )?;
            (0..5).map(|i| r.opt_time(i)).collect()
        })
        .await
        .unwrap()
}

async fn set_do_not_track(app: &TestApp, contact: &str) {
    let id: uuid::Uuid = contact.parse().unwrap();
    let now = app.store().now();
    app.store()
        .write(move |tx| {
            tx.execute(
                "INSERT INTO contact_privacy (contact_id, do_not_track, changed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (contact_id) DO UPDATE SET do_not_track = excluded.do_not_track",
                &[id.into(), true.into(), now.into()],
            )
        })
        .await
        .unwrap();
}

async fn clicks_and_opens(backend: Backend) {
    let sink = SmtpSink::start(Behaviour::accept()).await.expect("smtp sink");
    let Some(mut app) = TestApp::spawn_with_smtp(backend, sink.url()).await else { return };
    promo_template(&app).await;
    let ana = contact(&app, "Ana", "ana@example.com").await;
    let bo = contact(&app, "Bo", "bo@example.com").await;
    set_do_not_track(&app, &bo).await;
    let w = workflow(&app, json!([{"action": "send_message", "channel": "email", "template": "promo"}]), json!([])).await;
    start(&app, &w, &ana).await;
    start(&app, &w, &bo).await;
    clock(&app, "PT1M").await;
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    let to_ana = got.iter().find(|m| to_of(m) == "ana@example.com").unwrap();
    let to_bo = got.iter().find(|m| to_of(m) == "bo@example.com").unwrap();
    let message = rapport_id(to_ana);

    // Ana's web link goes through click tracking; mailto and unsubscribe links do not.
    let html = html_of(to_ana);
    let links = attrs(&html, "href");
    assert_eq!(links.len(), 3, "{html}");
    assert!(links[0].starts_with(&format!("{PUBLIC}/t/c/")), "{html}");
    assert_eq!(links[1], "mailto:hi@shop.example");
    assert!(links[2].starts_with(&format!("{PUBLIC}/u/")), "{html}");
    let pixels: Vec<String> = attrs(&html, "src").into_iter().filter(|s| s.starts_with(&format!("{PUBLIC}/t/o/"))).collect();
    assert_eq!(pixels.len(), 1, "one open pixel: {html}");
    // The text part is left as written.
    let text = MessageParser::default().parse(&to_ana.data).unwrap().body_text(0).unwrap().into_owned();
    assert!(text.contains("https://shop.example/sale"), "{text}");

    // Bo asked not to be tracked: no pixel, links as written.
    let bo_html = html_of(to_bo);
    assert!(bo_html.contains("href=\"https://shop.example/sale?x=1&amp;y=2\""), "{bo_html}");
    assert!(!bo_html.contains("/t/o/") && !bo_html.contains("/t/c/"), "{bo_html}");

    // Following the click link: 302 to the original URL, the click on the timeline, the row marked.
    let click = links[0].trim_start_matches(PUBLIC).to_string();
    let res = no_redirects().get(app.url(&click)).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "https://shop.example/sale?x=1&y=2");
    let clicks = timeline(&app, &ana, "email.clicked").await;
    assert_eq!(clicks.len(), 1, "{clicks:?}");
    assert_eq!(clicks[0]["payload"]["url"], "https://shop.example/sale?x=1&y=2");
    assert_eq!(clicks[0]["payload"]["message_id"], message.as_str());
    let times = outbox_times(&app, &message).await;
    assert!(times[1].is_some(), "clicked_at is set");
    let first_click = times[1];

    // A changed target or signature is refused, and records nothing.
    let (base, query) = click.split_once('?').unwrap();
    let signature = query.split('&').find_map(|p| p.strip_prefix("s=")).unwrap();
    let forged = format!("{base}?u=https%3A%2F%2Fevil.example%2F&s={signature}");
    assert_eq!(send(app.anon(Method::GET, &forged)).await.status, 404);
    let altered = format!("{base}?u=https%3A%2F%2Fshop.example%2Fsale%3Fx%3D1%26y%3D2&s=AAAAAAAAAAAAAAAA");
    assert_eq!(send(app.anon(Method::GET, &altered)).await.status, 404);
    let mut bad_token = base.to_string();
    bad_token.pop();
    bad_token.push(if base.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(send(app.anon(Method::GET, &format!("{bad_token}?{query}"))).await.status, 404);
    assert_eq!(send(app.anon(Method::GET, base)).await.status, 404, "no target at all");
    assert_eq!(timeline(&app, &ana, "email.clicked").await.len(), 1);

    // The pixel: a GIF that is never cached; a valid one records the open.
    let pixel = pixels[0].trim_start_matches(PUBLIC).to_string();
    let res = send(app.anon(Method::GET, &pixel)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("image/gif"));
    assert!(res.header("cache-control").unwrap().contains("no-store"));
    let opens = timeline(&app, &ana, "email.opened").await;
    assert_eq!(opens.len(), 1, "{opens:?}");
    assert_eq!(opens[0]["payload"]["message_id"], message.as_str());
    assert!(outbox_times(&app, &message).await[0].is_some(), "opened_at is set");
    // A bad token still gets the image, and records nothing.
    let res = send(app.anon(Method::GET, "/t/o/not-a-token")).await;
    assert_eq!((res.status, res.header("content-type")), (200, Some("image/gif")));
    assert_eq!(timeline(&app, &ana, "email.opened").await.len(), 1);

    // A second click is another event; clicked_at keeps the first time.
    clock(&app, "PT5M").await;
    assert_eq!(no_redirects().get(app.url(&click)).send().await.unwrap().status(), 302);
    assert_eq!(timeline(&app, &ana, "email.clicked").await.len(), 2);
    assert_eq!(outbox_times(&app, &message).await[1], first_click);

    // Once Ana asks not to be tracked, her old links still work but record nothing.
    set_do_not_track(&app, &ana).await;
    assert_eq!(no_redirects().get(app.url(&click)).send().await.unwrap().status(), 302);
    assert_eq!(send(app.anon(Method::GET, &pixel)).await.status, 200);
    assert_eq!(timeline(&app, &ana, "email.clicked").await.len(), 2);
    assert_eq!(timeline(&app, &ana, "email.opened").await.len(), 1);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicks_and_opens_are_tracked_sqlite() {
    clicks_and_opens(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicks_and_opens_are_tracked_postgres() {
    clicks_and_opens(Backend::Postgres).await;
}

/// A Postfix-style report that `address` does not exist, about message `id`.
fn dsn(address: &str, id: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.relay.example (Mail Delivery System)\r\n\
         To: news@shop.example\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\n\
         Message-Id: <20260303100005.3F1A2B@mx.relay.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         Your message could not be delivered.\r\n\
         --B1\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.relay.example\r\n\
         \r\n\
         Final-Recipient: rfc822; {address}\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{address}>: Recipient address rejected: User unknown\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         To: {address}\r\n\
         Message-ID: <{id}@shop.example>\r\n\
         X-Rapport-Message: {id}\r\n\
         \r\n\
         --B1--\r\n"
    )
}

async fn last_step(app: &TestApp, contact: &str) -> Value {
    let view = app.get(&format!("/api/v1/contacts/{contact}/automation")).await.expect(200);
    let runs = view["runs"].as_array().unwrap();
    // The newest run first or last: take the one that started last.
    let run = runs.iter().max_by_key(|r| r["started_at"].as_str().unwrap_or_default().to_string()).unwrap();
    run["steps"].as_array().unwrap().last().cloned().unwrap()
}

async fn bounces_suppress(backend: Backend) {
    let sink = SmtpSink::start(Behaviour::accept()).await.expect("smtp sink");
    let Some(mut app) = TestApp::spawn_with_smtp(backend, sink.url()).await else { return };
    promo_template(&app).await;
    let cy = contact(&app, "Cy", "cy@example.com").await;
    let dee = contact(&app, "Dee", "dee@example.com").await;
    let w = workflow(&app, json!([{"action": "send_message", "channel": "email", "template": "promo"}]), json!([])).await;
    start(&app, &w, &cy).await;
    start(&app, &w, &dee).await;
    clock(&app, "PT1M").await;
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    let cy_message = rapport_id(got.iter().find(|m| to_of(m) == "cy@example.com").unwrap());
    let dee_message = rapport_id(got.iter().find(|m| to_of(m) == "dee@example.com").unwrap());

    // Bad input names the field; no key, no intake.
    app.post("/api/v1/email/bounces", json!({"recipient": "cy@example.com"})).await.expect_field_problem(400, "type");
    app.post("/api/v1/email/bounces", json!([{"recipient": "nope", "type": "hard"}]))
        .await
        .expect_field_problem(400, "[0].recipient");
    let anon = send(app.anon(Method::POST, "/api/v1/email/bounces").json(&json!({"recipient": "a@b.example", "type": "hard"})));
    assert_eq!(anon.await.status, 401);
    let not_dsn = send(
        app.req(Method::POST, "/api/v1/email/bounces")
            .header("content-type", "message/rfc822")
            .body("From: someone@example.com\r\nSubject: hi\r\n\r\nhello\r\n"),
    )
    .await;
    not_dsn.expect_field_problem(400, "body");

    // A hard bounce in a provider's JSON.
    let res = app
        .post(
            "/api/v1/email/bounces",
            json!({"recipient": "CY@example.com", "type": "hard", "message_id": format!("<{cy_message}@shop.example>"),
                "detail": "550 5.1.1 user unknown"}),
        )
        .await
        .expect(200);
    let r = &res["results"][0];
    assert_eq!((r["status"].as_str(), r["suppressed"].as_bool()), (Some("recorded"), Some(true)), "{res}");
    assert_eq!((r["contact_id"].as_str(), r["message_id"].as_str()), (Some(cy.as_str()), Some(cy_message.as_str())));
    let bounced = timeline(&app, &cy, "email.bounced").await;
    assert_eq!(bounced.len(), 1);
    assert_eq!(bounced[0]["payload"]["kind"], "hard");
    assert!(outbox_times(&app, &cy_message).await[2].is_some(), "bounced_at is set");
    // Posting it again records nothing more.
    let again = app
        .post("/api/v1/email/bounces", json!({"recipient": "cy@example.com", "type": "hard", "message_id": cy_message}))
        .await
        .expect(200);
    assert_eq!(again["results"][0]["status"], "duplicate", "{again}");
    assert_eq!(timeline(&app, &cy, "email.bounced").await.len(), 1);

    // A raw DSN for Dee.
    let res = send(
        app.req(Method::POST, "/api/v1/email/bounces")
            .header("content-type", "message/rfc822")
            .body(dsn("dee@example.com", &dee_message)),
    )
    .await
    .expect(200);
    let r = &res["results"][0];
    assert_eq!((r["type"].as_str(), r["suppressed"].as_bool()), (Some("hard"), Some(true)), "{res}");
    assert_eq!(r["message_id"].as_str(), Some(dee_message.as_str()));
    assert_eq!(timeline(&app, &dee, "email.bounced").await[0]["payload"]["status"], "5.1.1");

    // A soft bounce is an event only; a complaint suppresses.
    let eve = contact(&app, "Eve", "eve@example.com").await;
    let res = app
        .post(
            "/api/v1/email/bounces",
            json!([{"recipient": "eve@example.com", "type": "soft", "detail": "mailbox full"},
                   {"recipient": "stranger@example.com", "type": "complaint"}]),
        )
        .await
        .expect(200);
    assert_eq!(res["results"][0]["suppressed"], false, "{res}");
    assert_eq!(res["results"][0]["contact_id"], eve.as_str());
    assert_eq!(res["results"][1]["suppressed"], true, "{res}");
    assert!(res["results"][1]["contact_id"].is_null());
    assert_eq!(timeline(&app, &eve, "email.bounced").await[0]["payload"]["kind"], "soft");

    // Later messages to the suppressed addresses are not sent, and say why.
    start(&app, &w, &cy).await;
    start(&app, &w, &dee).await;
    start(&app, &w, &eve).await;
    clock(&app, "PT1M").await;
    let got = sink.messages();
    assert_eq!(got.len(), 3, "only Eve's went out");
    assert_eq!(to_of(&got[2]), "eve@example.com");
    for who in [&cy, &dee] {
        let step = last_step(&app, who).await;
        assert_eq!(step["outcome"], "failed", "{step}");
        assert!(step["detail"].as_str().unwrap().contains("bounced permanently on"), "{step}");
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_and_complaints_suppress_addresses_sqlite() {
    bounces_suppress(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_and_complaints_suppress_addresses_postgres() {
    bounces_suppress(Backend::Postgres).await;
}

fn answer(from: &str, in_reply_to: &str, extra: &str, subject: &str, body: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: news@shop.example\r\nSubject: {subject}\r\nMessage-ID: <{}@mail.customer.example>\r\n\
         In-Reply-To: <{in_reply_to}@shop.example>\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        uuid::Uuid::now_v7().simple()
    )
}

async fn post_inbound(app: &TestApp, raw: String) -> crate::Resp {
    send(app.req(Method::POST, "/api/v1/email/inbound").header("content-type", "message/rfc822").body(raw)).await
}

async fn replies(backend: Backend) {
    let sink = SmtpSink::start(Behaviour::accept()).await.expect("smtp sink");
    let Some(mut app) = TestApp::spawn_with_smtp(backend, sink.url()).await else { return };
    promo_template(&app).await;
    let fay = contact(&app, "Fay", "fay@example.com").await;
    let gus = contact(&app, "Gus", "gus@example.com").await;
    // A first message, and a follow-up three days later unless they answer.
    let w = workflow(
        &app,
        json!([{"action": "send_message", "channel": "email", "template": "promo"}, {"wait": "P3D"},
               {"action": "send_message", "channel": "email", "template": "promo"}]),
        json!(["email.replied"]),
    )
    .await;
    start(&app, &w, &fay).await;
    start(&app, &w, &gus).await;
    clock(&app, "PT1M").await;
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    let fay_message = rapport_id(got.iter().find(|m| to_of(m) == "fay@example.com").unwrap());
    let gus_message = rapport_id(got.iter().find(|m| to_of(m) == "gus@example.com").unwrap());

    // Gus is away: an automatic answer is not a reply, nor an unsubscribe.
    let auto = post_inbound(
        &app,
        answer("gus@example.com", &gus_message, "Auto-Submitted: auto-replied\r\n", "Automatic reply: Spring sale", "I am away."),
    )
    .await
    .expect(200);
    assert_eq!(auto["kind"], "auto_reply", "{auto}");
    assert_eq!(timeline(&app, &gus, "email.auto_replied").await.len(), 1);
    assert!(timeline(&app, &gus, "email.replied").await.is_empty());
    assert!(timeline(&app, &gus, "email.unsubscribed").await.is_empty());
    let ooo = post_inbound(&app, answer("gus@example.com", &gus_message, "", "Abwesenheitsnotiz: Spring sale", "Bis Montag."))
        .await
        .expect(200);
    assert_eq!(ooo["kind"], "auto_reply", "{ooo}");

    // Fay answers.
    let body = "Yes, I'd like the blue one!\r\n\r\nOn Tue, Shop wrote:\r\n> Spring sale\r\n";
    let res = post_inbound(&app, answer("Fay@Example.com", &fay_message, "", "Re: Spring sale", body)).await.expect(200);
    assert_eq!((res["kind"].as_str(), res["status"].as_str()), (Some("reply"), Some("recorded")), "{res}");
    let replied = timeline(&app, &fay, "email.replied").await;
    assert_eq!(replied.len(), 1);
    assert_eq!(replied[0]["payload"]["snippet"], "Yes, I'd like the blue one!");
    assert_eq!(replied[0]["payload"]["subject"], "Re: Spring sale");
    assert_eq!(replied[0]["payload"]["message_id"], fay_message.as_str());
    assert!(outbox_times(&app, &fay_message).await[4].is_some(), "replied_at is set");
    assert!(outbox_times(&app, &gus_message).await[4].is_none(), "an automatic answer is no reply");

    // A stranger's mail is ignored; a DSN posted here is a bounce.
    let stranger = post_inbound(
        &app,
        "From: someone@elsewhere.example\r\nSubject: Hello\r\nMessage-ID: <x1@elsewhere.example>\r\n\r\nHi there\r\n".into(),
    )
    .await;
    assert_eq!(stranger.status, 202, "{}", stranger.text);
    assert_eq!(stranger.json["detail"], "ignored: no contact has this address");
    let report = post_inbound(&app, dsn("nobody@example.com", "01968f2e-7c1a-7d3e-9b41-6a0c2f1e5d77")).await.expect(200);
    assert_eq!(report["kind"], "report", "{report}");
    assert_eq!(report["results"][0]["suppressed"], true);
    let json_body = send(app.req(Method::POST, "/api/v1/email/inbound").json(&json!({"raw": "x"}))).await;
    json_body.expect_problem(415);

    // Three days on: Gus gets the follow-up, Fay's run stopped when she answered.
    clock(&app, "P4D").await;
    let got = sink.messages();
    assert_eq!(got.len(), 3, "one follow-up");
    assert_eq!(to_of(&got[2]), "gus@example.com");
    let view = app.get(&format!("/api/v1/contacts/{fay}/automation")).await.expect(200);
    assert_eq!(view["runs"][0]["status"], "exited", "{view}");
    assert!(view["runs"][0]["end_reason"].as_str().unwrap().contains("email.replied"), "{view}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_stop_outreach_and_auto_replies_do_not_sqlite() {
    replies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_stop_outreach_and_auto_replies_do_not_postgres() {
    replies(Backend::Postgres).await;
}
