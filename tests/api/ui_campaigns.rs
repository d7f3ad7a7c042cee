//! Campaigns in the web UI (issue #7). Over plain HTTP: names are escaped, the pages follow the
//! API's permissions (managers and admins create and send, everyone else looks), the form puts
//! each problem beside its input, and without an SMTP relay the pages say why messages wait.
//! In a real headless Chromium (driven over WebDriver by fantoccini, as tests/browser does): a
//! manager creates a campaign through the form (a bad holdout first), sends a test and the
//! campaign through a local SMTP sink and reads its statistics; and, with no relay, sees the
//! notice on the campaign's page and the start page and pauses, resumes and cancels.
//!
//! The browser tests need `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/browser-deps`;
//! `RAPPORT_CHROMIUM` and `RAPPORT_CHROMEDRIVER` point elsewhere). Without them they are skipped
//! with a note, except under `CI=true`, where they fail.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use rapport_channels::email::sink::{Behaviour, SmtpSink};
use rapport_core::user::{Role, UserDraft};
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::chromium::{Chromedriver, browser_binaries};
use crate::{Backend, Resp, TestApp, id_of, send};

const PASSWORD: &str = "correct horse battery";
const CLOCK: &str = "/api/v1/admin/clock";
/// A name that would run if it were not escaped.
const NASTY: &str = "<script>window.__xss=1</script><img src=x onerror=alert(1)> Spring & \"sale\"";

// ---------------------------------------------------------------------------------------------
// The business: a template, ten VIPs with addresses, a segment of them, two people who sign in
// ---------------------------------------------------------------------------------------------

async fn user(app: &TestApp, name: &str, email: &str, role: Role) {
    let hash = rapport_web::password::hash(PASSWORD).expect("hash");
    let draft = UserDraft { name: Some(name.into()), email: Some(email.into()), role: Some(role), active: Some(true) };
    app.store().create_user_with_password(draft, hash).await.expect("create user");
}

/// The template's id and the VIP segment's id.
async fn business(app: &TestApp) -> (String, String) {
    app.post(CLOCK, json!({"set": "2027-02-27T12:00:00Z"})).await.expect(200);
    let template = app
        .create(
            "/api/v1/templates",
            json!({"name": "spring", "subject": "Spring is here, {{ contact.first_name }}",
                   "text": "Hi {{ contact.first_name }}, new arrivals: https://shop.example/spring\nUnsubscribe: {{ unsubscribe_url }}"}),
        )
        .await;
    for i in 0..10 {
        app.create(
            "/api/v1/contacts",
            json!({"first_name": format!("Vip{i}"), "tags": ["vip"], "emails": [{"address": format!("vip{i}@example.com")}]}),
        )
        .await;
    }
    let segment = app.create("/api/v1/segments", json!({"name": "VIPs", "filter": "tag = \"vip\""})).await;
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);
    user(app, "Maria Manager", "maria@harbourpine.example", Role::Manager).await;
    user(app, "Mel Member", "mel@harbourpine.example", Role::Member).await;
    (id_of(&template), id_of(&segment))
}

// ---------------------------------------------------------------------------------------------
// Over HTTP
// ---------------------------------------------------------------------------------------------

/// A signed-in browser without JavaScript: keeps cookies, does not follow redirects.
struct Session {
    client: reqwest::Client,
    base: String,
    csrf: String,
}

/// The text after `marker` up to the next `"`.
fn attr_after(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)? + marker.len();
    Some(html[at..].split('"').next()?.to_string())
}

fn unescape(html: &str) -> String {
    html.replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

impl Session {
    async fn sign_in(app: &TestApp, email: &str) -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut s = Self { client, base: app.base.clone(), csrf: String::new() };
        let login = s.get("/login").await;
        let token = attr_after(&login.text, "name=\"_csrf\" value=\"").expect("the sign-in form has a token");
        let r = s.post("/login", &[("_csrf", &token), ("email", email), ("password", PASSWORD), ("next", "/")]).await;
        assert_eq!(r.status, 303, "signing in: {}", r.text);
        let home = s.get("/").await;
        assert_eq!(home.status, 200, "{}", home.text);
        s
    }

    async fn get(&mut self, path: &str) -> Resp {
        let r = send(self.client.get(format!("{}{path}", self.base))).await;
        if let Some(t) = attr_after(&r.text, "name=\"csrf-token\" content=\"") {
            self.csrf = t;
        }
        r
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        send(self.client.post(format!("{}{path}", self.base)).header("origin", self.base.clone()).form(form)).await
    }

    /// Posts a form with the session's CSRF token.
    async fn submit(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(form);
        self.post(path, &all).await
    }
}

both_backends! {
    async fn campaign_pages_escape_names_follow_the_api_permissions_and_explain_a_missing_relay(app) {
        let (template, segment) = business(app).await;
        let c = app
            .create("/api/v1/campaigns", json!({"name": NASTY, "template_id": template, "segment_id": segment}))
            .await;
        let id = id_of(&c);

        // Markup in a name is text wherever the name is shown.
        let mut maria = Session::sign_in(app, "maria@harbourpine.example").await;
        for path in ["/campaigns".to_string(), format!("/campaigns/{id}"), format!("/campaigns/{id}/edit")] {
            let page = maria.get(&path).await;
            assert_eq!(page.status, 200, "{path}: {}", page.text);
            assert!(!page.text.contains("<script>window.__xss"), "{path} has the script as markup");
            assert!(!page.text.contains("<img src=x"), "{path} has the image as markup");
            assert!(unescape(&page.text).contains(NASTY), "{path} shows the name as text");
        }
        let list = maria.get("/campaigns").await;
        assert!(list.text.contains("id=\"nav-campaigns\" aria-current=\"page\""), "the main navigation leads here");
        assert!(list.text.contains("id=\"new-campaign\""), "managers may create campaigns");

        // A member may look, and nothing more: as in the API.
        let mut mel = Session::sign_in(app, "mel@harbourpine.example").await;
        let list = mel.get("/campaigns").await;
        assert_eq!(list.status, 200);
        assert!(!list.text.contains("id=\"new-campaign\""), "members get no New campaign button");
        let page = mel.get(&format!("/campaigns/{id}")).await;
        assert!(!page.text.contains("data-testid=\"campaign-command\""), "members get no commands");
        assert!(!page.text.contains("id=\"test-send-form\""), "nor a test send");
        assert_eq!(mel.get("/campaigns/new").await.status, 403);
        for action in ["send", "cancel", "test"] {
            let r = mel.submit(&format!("/campaigns/{id}/{action}"), &[("to", "mel@harbourpine.example")]).await;
            assert_eq!(r.status, 403, "a member cannot {action}: {}", r.text);
        }
        let r = mel.submit("/campaigns", &[("name", "Sneaky"), ("template_id", &template), ("segment_id", &segment)]).await;
        assert_eq!(r.status, 403);
        assert_eq!(app.get(&format!("/api/v1/campaigns/{id}")).await.expect(200)["status"], "draft");
        assert_eq!(app.get("/api/v1/campaigns").await.expect(200)["data"].as_array().unwrap().len(), 1);

        // The form puts each problem beside its input and keeps what was typed.
        let r = maria
            .submit(
                "/campaigns",
                &[("name", "Autumn <b>sale</b>"), ("template_id", &template), ("segment_id", ""), ("when", "at"),
                  ("send_at", ""), ("holdout_percent", "95")],
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text);
        for input in ["segment-id", "send-at", "holdout-percent"] {
            assert!(r.text.contains(&format!("id=\"campaign-{input}-error\"")), "an error beside {input}: {}", r.text);
        }
        assert!(r.text.contains("value=\"Autumn &#60;b&#62;sale&#60;/b&#62;\"") || r.text.contains("value=\"Autumn &lt;b&gt;sale&lt;/b&gt;\""),
            "the name is kept, escaped");
        assert!(r.text.contains(&format!("<option value=\"{template}\" selected>")), "the template stays chosen");
        assert!(r.text.contains("value=\"95\""), "the holdout typed is kept");

        // At 09:00 in each person's own zone: scheduled, and changeable until it starts.
        let r = maria
            .submit(
                "/campaigns",
                &[("name", "Local nine"), ("template_id", &template), ("segment_id", &segment), ("when", "local"),
                  ("send_at", "2027-03-01T09:00"), ("holdout_percent", "10")],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        let local = r.headers.get("location").and_then(|v| v.to_str().ok()).expect("a location").to_string();
        let local_id = local.trim_start_matches("/campaigns/").to_string();
        let stored = app.get(&format!("/api/v1/campaigns/{local_id}")).await.expect(200);
        assert_eq!((stored["local_time"].as_bool(), stored["send_at"].as_str()), (Some(true), Some("2027-03-01T09:00:00Z")), "{stored}");
        let page = maria.get(&local).await;
        assert!(page.text.contains("id=\"campaign-send\" data-testid=\"campaign-command\">Schedule<"), "{}", page.text);
        assert!(page.text.contains("1 Mar 2027, 09:00 in each person&#39;s own time zone")
            || page.text.contains("1 Mar 2027, 09:00 in each person&#x27;s own time zone")
            || unescape(&page.text).contains("1 Mar 2027, 09:00 in each person's own time zone"), "{}", page.text);
        assert_eq!(maria.submit(&format!("{local}/send"), &[]).await.status, 303);
        assert_eq!(app.get(&format!("/api/v1/campaigns/{local_id}")).await.expect(200)["status"], "scheduled");
        let edit = maria.get(&format!("{local}/edit")).await;
        assert_eq!(edit.status, 200);
        assert!(edit.text.contains("value=\"local\" id=\"campaign-when-local\" checked"), "{}", edit.text);
        assert!(edit.text.contains("value=\"2027-03-01T09:00\""));
        let r = maria
            .submit(
                &local,
                &[("name", "Local ten"), ("template_id", &template), ("segment_id", &segment), ("when", "local"),
                  ("send_at", "2027-03-01T10:00"), ("holdout_percent", "10")],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        let stored = app.get(&format!("/api/v1/campaigns/{local_id}")).await.expect(200);
        assert_eq!((stored["name"].as_str(), stored["send_at"].as_str()), (Some("Local ten"), Some("2027-03-01T10:00:00Z")));
        assert_eq!(maria.submit(&format!("{local}/cancel"), &[]).await.status, 303);

        // No relay: sending leaves everything in the outbox, and the pages say why and what to do.
        let r = maria.submit(&format!("/campaigns/{id}/send"), &[]).await;
        assert_eq!(r.status, 303, "{}", r.text);
        app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);
        let page = maria.get(&format!("/campaigns/{id}")).await;
        assert!(page.text.contains("id=\"relay-notice\""), "{}", page.text);
        assert!(page.text.contains("no SMTP relay is configured"));
        assert!(page.text.contains("RAPPORT_SMTP_URL") && page.text.contains("--smtp-url"));
        assert!(page.text.contains("<span data-testid=\"relay-waiting\">10</span> messages wait"), "{}", page.text);
        let home = maria.get("/").await;
        assert!(home.text.contains("id=\"relay-notice\""), "the start page says it too");
        let list = maria.get("/campaigns").await;
        assert!(list.text.contains("<span data-testid=\"relay-waiting\">10</span>"), "and the list: {}", list.text);
        assert!(list.text.contains("data-testid=\"campaign-sent\">0<"), "nothing has left: {}", list.text);
        // Only managers may pause or cancel; the buttons follow the status.
        assert!(page.text.contains("id=\"campaign-pause\"") && page.text.contains("id=\"campaign-cancel\""));
        assert!(!page.text.contains("id=\"campaign-send\"") && !page.text.contains("id=\"campaign-resume\""));
    }
}

both_backends! {
    async fn templates_are_checked_beside_their_part_and_previewed_for_a_contact(app) {
        business(app).await;
        let mut maria = Session::sign_in(app, "maria@harbourpine.example").await;
        let list = maria.get("/templates").await;
        assert_eq!(list.status, 200);
        assert!(list.text.contains(">spring</a>") && list.text.contains("id=\"new-template\""), "{}", list.text);

        let form = |text: &'static str| {
            vec![("name", "autumn"), ("channel", "email"), ("purpose", "marketing"), ("subject", "Autumn, {{ contact.first_name }}"),
                 ("text", text), ("html", ""), ("locale", ""), ("layout", "")]
        };
        let r = maria.submit("/templates", &form("Hi {{ contact.first_name }},\nyour {{ contact.nickname }}")).await;
        assert_eq!(r.status, 422, "{}", r.text);
        let page = unescape(&r.text);
        assert!(page.contains("id=\"template-text-error\""), "{page}");
        assert!(page.contains("Line 2: unknown variable `contact.nickname`"), "the line and the name: {page}");
        assert!(page.contains("your {{ contact.nickname }}</textarea>"), "the text is kept");
        let r = maria.submit("/templates", &form("Hi {{ contact.first_name }}, see you soon.")).await;
        assert_eq!(r.status, 303, "{}", r.text);
        let at = r.header("location").expect("a location").to_string();
        assert!(at.starts_with("/templates/"), "{at}");

        let preview = maria.get(&format!("{at}?preview=vip3%40example.com")).await;
        assert_eq!(preview.status, 200, "{}", preview.text);
        assert!(preview.text.contains("id=\"preview-subject\">Autumn, Vip3<"), "{}", preview.text);
        assert!(preview.text.contains("Hi Vip3, see you soon."));
        let nobody = maria.get(&format!("{at}?preview=nobody%40example.com")).await;
        assert!(nobody.text.contains("id=\"preview-error\""), "{}", nobody.text);

        // Members read and preview templates but do not change them, as in the API.
        let mut mel = Session::sign_in(app, "mel@harbourpine.example").await;
        assert_eq!(mel.get(&at).await.status, 200);
        assert_eq!(mel.get("/templates/new").await.status, 403);
        assert_eq!(mel.submit(&at, &form("Changed")).await.status, 403);
        assert_eq!(mel.submit("/templates", &form("New")).await.status, 403);
    }
}

both_backends! {
    async fn a_workflows_page_shows_its_message_steps_against_the_holdout(app) {
        let (_, segment) = business(app).await;
        let w = app
            .create(
                "/api/v1/workflows",
                json!({"name": "Spring nudge", "trigger": {"kind": "manual"}, "holdout_percent": 40,
                       "steps": [{"action": "send_message", "channel": "email", "template": "spring"}]}),
            )
            .await;
        let w = id_of(&w);
        app.post(&format!("/api/v1/workflows/{w}/enable"), json!({})).await.expect(200);
        app.post(&format!("/api/v1/workflows/{w}/start"), json!({"segment_id": segment})).await.expect(200);
        app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);
        let stats = app.get(&format!("/api/v1/workflows/{w}/stats")).await.expect(200);
        let held = stats["steps"][0]["held_out"].as_i64().unwrap();
        assert!(held > 0 && held < 10, "{stats}");

        let mut mel = Session::sign_in(app, "mel@harbourpine.example").await;
        let page = mel.get(&format!("/workflows/{w}")).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains("40% of the people who reach a message get none of them"), "{}", page.text);
        let table = &page.text[page.text.find("id=\"messages-table\"").expect("a table of message steps")..];
        let row = &table[table.find("data-testid=\"message-row\"").expect("a row")..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.contains("<code>steps[0]</code> email") && row.contains("spring"), "{row}");
        // Held out, and the others' messages unsendable without a relay: sent 0.
        let cells: Vec<&str> = row.split("<td").skip(1).map(|c| c.split_once('>').unwrap().1.split("</td>").next().unwrap()).collect();
        assert_eq!(cells[1], "0", "{row}");
        assert_eq!(cells[8], held.to_string(), "{row}");
    }
}

both_backends! {
    async fn a_contacts_page_says_whether_they_may_be_contacted(app) {
        business(app).await;
        app.create("/api/v1/subscription-topics", json!({"key": "news", "name": "Monthly news"})).await;
        app.create("/api/v1/subscription-topics", json!({"key": "offers", "name": "Offers", "default_subscribed": false})).await;
        let c = app.create("/api/v1/contacts", json!({"first_name": "Pia", "phones": [{"number": "+4915112345678"}]})).await;
        let id = id_of(&c);
        send(app.req(reqwest::Method::PUT, &format!("/api/v1/contacts/{id}/privacy")).json(&json!({"do_not_contact": true})))
            .await
            .expect(200);
        app.create(&format!("/api/v1/contacts/{id}/consent"), json!({"purpose": "marketing", "channel": "sms", "granted": false,
            "source": "sms_reply"}))
            .await;
        let mut mel = Session::sign_in(app, "mel@harbourpine.example").await;
        let page = mel.get(&format!("/contacts/{id}")).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let card = &page.text[page.text.find("id=\"reach\"").expect("the card")..];
        let card = &card[..card.find("</section>").unwrap()];
        assert!(card.contains(">Do not contact</span>"), "{card}");
        assert!(card.contains("✓ Monthly news <span class=\"muted\">by default</span>"), "{card}");
        assert!(card.contains("✗ Offers <span class=\"muted\">by default</span>"), "{card}");
        assert!(card.contains("Sms marketing: withdrawn (sms reply,"), "{card}");

        app.post("/api/v1/events", json!({"events": [{"type": "email.unsubscribed", "contact": {"id": id}, "payload": {}}]}))
            .await
            .expect(200);
        let page = mel.get(&format!("/contacts/{id}")).await;
        assert!(page.text.contains("data-testid=\"reach-all\">Unsubscribed from all marketing email on "), "{}", page.text);
        assert!(page.text.contains("✗ Monthly news <span class=\"muted\">all marketing</span>"), "{}", page.text);
    }
}

// ---------------------------------------------------------------------------------------------
// In Chromium
// ---------------------------------------------------------------------------------------------

const WAIT: Duration = Duration::from_secs(10);

struct Browser {
    c: Client,
    base: String,
}

impl Browser {
    async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap_or_else(|e| panic!("opening {path}: {e}"));
    }

    async fn path(&self) -> String {
        self.c.current_url().await.expect("current url").path().to_string()
    }

    async fn where_(&self) -> String {
        let text = self.c.execute("return document.body ? document.body.innerText : '';", vec![]).await.unwrap_or_default();
        let text: String = text.as_str().unwrap_or_default().chars().take(3000).collect();
        format!("on {}, showing:\n{text}", self.path().await)
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no {css} within {WAIT:?}: {e}\n{}", self.where_().await),
        }
    }

    async fn exists(&self, css: &str) -> bool {
        !self.c.find_all(Locator::Css(css)).await.expect("find_all").is_empty()
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    async fn value(&self, css: &str) -> String {
        self.find(css).await.prop("value").await.expect("value").unwrap_or_default()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap_or_else(|e| panic!("clearing {css}: {e}"));
        input.send_keys(text).await.unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    async fn choose(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap_or_else(|e| panic!("choosing {value} in {css}: {e}"));
    }

    /// Clicks `css` and waits until the next page has loaded.
    async fn click_and_load(&self, css: &str) {
        self.c.execute("window.__before_click = true;", vec![]).await.expect("mark the page");
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
        let deadline = Instant::now() + WAIT;
        loop {
            let script = "return window.__before_click === undefined && document.readyState === 'complete';";
            if let Ok(Value::Bool(true)) = self.c.execute(script, vec![]).await {
                return;
            }
            assert!(Instant::now() < deadline, "the page after clicking {css} did not load\n{}", self.where_().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sign_in(&self, email: &str) {
        self.go("/login").await;
        self.type_into("#email", email).await;
        self.type_into("#password", PASSWORD).await;
        self.click_and_load("#sign-in").await;
        assert_eq!(self.path().await, "/", "signed in");
    }
}

/// A chromedriver and a Chromium session on `app`, or `None` when the browser is missing.
async fn browser(app: &TestApp) -> Option<(Chromedriver, Browser)> {
    let (driver_path, chromium) = browser_binaries()?;
    let driver = Chromedriver::start(&driver_path).await;
    let b = Browser { c: driver.connect(&chromium, (1280, 900)).await, base: app.base.clone() };
    Some((driver, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_a_manager_creates_sends_and_measures_a_campaign_in_chromium() {
    let sink = SmtpSink::start(Behaviour::accept()).await.expect("smtp sink");
    let Some(mut app) = TestApp::spawn_with_smtp(Backend::Sqlite, sink.url()).await else { return };
    let (template, segment) = business(&app).await;
    let Some((driver, b)) = browser(&app).await else { return };
    b.sign_in("maria@harbourpine.example").await;
    assert!(!b.exists("#relay-notice").await, "with a relay there is nothing to explain");

    // From the main navigation to the form.
    b.click_and_load("#nav-campaigns").await;
    assert_eq!(b.path().await, "/campaigns");
    assert!(b.exists("#no-campaigns").await);
    b.click_and_load("#new-campaign").await;
    assert_eq!(b.path().await, "/campaigns/new");

    // A holdout beyond 90%: the error sits beside it, nothing typed is lost.
    b.type_into("#campaign-name", "Spring sale").await;
    b.choose("#campaign-template-id", &template).await;
    b.choose("#campaign-segment-id", &segment).await;
    b.type_into("#campaign-holdout-percent", "95").await;
    b.click_and_load("#save-campaign").await;
    assert_eq!(b.path().await, "/campaigns", "the form came back, nothing was created");
    assert!(b.text("#form-errors").await.contains("Please fix the marked fields."));
    let error = b.text("#campaign-holdout-percent-error").await;
    assert!(error.contains("90"), "the error says the limit: {error}");
    assert_eq!(b.value("#campaign-name").await, "Spring sale");
    assert_eq!(b.value("#campaign-template-id").await, template);
    assert_eq!(b.value("#campaign-segment-id").await, segment);
    b.type_into("#campaign-holdout-percent", "20").await;
    b.click_and_load("#save-campaign").await;
    let page = b.path().await;
    assert!(page.starts_with("/campaigns/"), "on the campaign's page: {}", b.where_().await);
    assert!(b.text("#flash").await.contains("Created the campaign “Spring sale”"));
    assert_eq!(b.text("#campaign-status").await, "Draft");
    assert!(b.exists("#audience-not-chosen").await);

    // A test to an address of one's own, then the campaign itself.
    b.type_into("#test-to", "maria@harbourpine.example").await;
    b.click_and_load("#send-test").await;
    assert!(b.text("#flash").await.contains("A test is on its way to maria@harbourpine.example"), "{}", b.where_().await);
    b.click_and_load("#campaign-send").await;
    assert!(b.text("#flash").await.contains("“Spring sale” is sending."), "{}", b.where_().await);
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);

    // Ten VIPs, 20% held out: eight messages, plus the test, reached the relay.
    let mut rcpts: Vec<String> = sink.messages().into_iter().flat_map(|m| m.rcpt_to).collect();
    rcpts.sort();
    assert_eq!(rcpts.len(), 9, "{rcpts:?}");
    assert!(rcpts.contains(&"maria@harbourpine.example".to_string()));

    b.go(&page).await;
    assert_eq!(b.text("#campaign-status").await, "Finished", "{}", b.where_().await);
    assert_eq!(b.text("[data-testid=audience-audience]").await.lines().next(), Some("10"));
    assert_eq!(b.text("[data-testid=audience-recipients]").await.lines().next(), Some("8"));
    assert_eq!(b.text("[data-testid=audience-holdout]").await.lines().next(), Some("2"));
    assert_eq!(b.text("[data-testid=stat-sent]").await, "8");
    assert_eq!(b.text("[data-testid=stat-delivered]").await, "8");
    assert!(b.exists("#campaign-funnel svg").await, "the funnel is drawn");
    assert!(b.exists("#campaign-conversions svg").await, "and the conversions against the holdout");
    assert_eq!(b.c.find_all(Locator::Css("[data-testid=conversion-row]")).await.expect("rows").len(), 2);
    assert!(!b.exists("[data-testid=campaign-command]").await, "a finished campaign takes no commands");
    assert!(!b.exists("#edit-campaign").await, "nor changes");

    // The list shows how it did.
    b.click_and_load("#nav-campaigns").await;
    assert_eq!(b.text("[data-testid=campaign-row] .campaign-link").await, "Spring sale");
    assert_eq!(b.text("[data-testid=campaign-status]").await, "Finished");
    assert_eq!(b.text("[data-testid=campaign-sent]").await, "8");
    assert_eq!(b.text("[data-testid=campaign-open-rate]").await, "0.0%");

    let _ = b.c.close().await;
    drop(driver);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_without_a_relay_the_pages_say_why_messages_wait_in_chromium() {
    let Some(mut app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let (template, segment) = business(&app).await;
    let id = id_of(
        &app.create("/api/v1/campaigns", json!({"name": "Spring sale", "template_id": template, "segment_id": segment})).await,
    );
    let Some((driver, b)) = browser(&app).await else { return };
    b.sign_in("maria@harbourpine.example").await;
    assert!(!b.exists("#relay-notice").await, "nothing waits yet, so the start page says nothing");

    b.go(&format!("/campaigns/{id}")).await;
    assert!(b.text("#relay-notice").await.contains("no SMTP relay is configured"), "a draft is warned before it is sent");
    b.click_and_load("#campaign-send").await;
    assert!(b.text("#flash").await.contains("wait in the outbox until an email relay is configured"), "{}", b.where_().await);
    app.post(CLOCK, json!({"advance": "PT1M"})).await.expect(200);

    b.go(&format!("/campaigns/{id}")).await;
    let notice = b.text("#relay-notice").await;
    assert!(notice.contains("Email is not going out: no SMTP relay is configured."), "{notice}");
    assert!(notice.contains("10 messages wait in the outbox"), "{notice}");
    assert!(notice.contains("--smtp-url") && notice.contains("RAPPORT_SMTP_URL") && notice.contains("docs/email.md"), "{notice}");
    assert_eq!(b.text("#campaign-status").await, "Sending");
    assert!(b.text("#status-reason").await.contains("no email relay is configured"));
    assert_eq!(b.text("[data-testid=stat-unsendable]").await.lines().next(), Some("10"));
    assert_eq!(b.text("[data-testid=stat-sent]").await, "0");

    b.go("/").await;
    assert!(b.text("#relay-notice").await.contains("10 messages wait in the outbox"), "{}", b.where_().await);

    // Only the commands the status allows, each doing what it says.
    b.go(&format!("/campaigns/{id}")).await;
    assert!(!b.exists("#campaign-send").await && !b.exists("#campaign-resume").await);
    b.click_and_load("#campaign-pause").await;
    assert_eq!(b.text("#campaign-status").await, "Paused");
    assert!(!b.exists("#campaign-pause").await);
    b.click_and_load("#campaign-resume").await;
    assert_eq!(b.text("#campaign-status").await, "Sending");
    b.click_and_load("#campaign-cancel").await;
    assert_eq!(b.text("#campaign-status").await, "Cancelled");
    assert!(!b.exists("[data-testid=campaign-command]").await);
    assert!(!b.exists("#relay-notice").await, "a cancelled campaign has nothing waiting");

    let _ = b.c.close().await;
    drop(driver);
    app.finish().await;
}
