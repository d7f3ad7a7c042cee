//! The web UI over HTTP (issue #8): sign-in, sessions, CSRF, escaping, forms with inline
//! errors, the filter box, and every page answering with a title. The browser tests drive the
//! same pages through a real Chromium; these check the server's side of the contract.

use rapport_core::user::{Role, UserDraft};
use reqwest::Method;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::{Resp, TestApp, id_of, send};

const PASSWORD: &str = "correct horse battery";

/// A browser: keeps cookies, does not follow redirects (so that tests see them).
struct Browser {
    client: reqwest::Client,
    base: String,
    /// The session's CSRF token, read from the last page that had one.
    csrf: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client");
        Self { client, base: app.base.clone(), csrf: String::new() }
    }

    async fn get(&mut self, path: &str) -> Resp {
        let r = send(self.client.get(format!("{}{path}", self.base))).await;
        if let Some(t) = attr_after(&r.text, "name=\"csrf-token\" content=\"") {
            self.csrf = t;
        }
        r
    }

    /// Posts a form as a same-site browser does (with its Origin).
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        let origin = self.base.clone();
        send(self.client.post(format!("{}{path}", self.base)).header("origin", origin).form(form)).await
    }

    /// Posts a form with the session's CSRF token added.
    async fn submit(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        let mut all: Vec<(&str, &str)> = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(form);
        self.post(path, &all).await
    }

    /// Opens the sign-in page and signs in; returns the answer to the POST.
    async fn sign_in(&mut self, email: &str, password: &str) -> Resp {
        let page = self.get("/login").await;
        assert_eq!(page.status, 200, "{}", page.text);
        let token = attr_after(&page.text, "name=\"_csrf\" value=\"").expect("the sign-in form has a token");
        self.post("/login", &[("_csrf", &token), ("email", email), ("password", password), ("next", "/")]).await
    }

    /// Signs in and loads the start page (for its CSRF token).
    async fn signed_in(app: &TestApp, email: &str) -> Self {
        let mut b = Browser::new(app);
        let r = b.sign_in(email, PASSWORD).await;
        assert_eq!(r.status, 303, "signing in: {}", r.text);
        let home = b.get("/").await;
        assert_eq!(home.status, 200, "{}", home.text);
        assert!(!b.csrf.is_empty(), "the page has a CSRF token");
        b
    }
}

/// HTML text with the entities the templates write turned back into characters.
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

/// The text after `marker` up to the next `"`.
fn attr_after(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)? + marker.len();
    Some(html[at..].split('"').next()?.to_string())
}

fn location(r: &Resp) -> String {
    r.header("location").unwrap_or_else(|| panic!("no Location in {} answer: {}", r.status, r.text)).to_string()
}

#[track_caller]
fn title_of(r: &Resp) -> String {
    let start = r.text.find("<title>").unwrap_or_else(|| panic!("no <title> in: {}", r.text)) + 7;
    let end = r.text[start..].find("</title>").expect("</title>") + start;
    r.text[start..end].to_string()
}

async fn user(app: &TestApp, email: &str, role: Role, active: bool) -> uuid::Uuid {
    let hash = rapport_web::password::hash(PASSWORD).expect("hash");
    let draft = UserDraft { name: Some("Eleanor Pine".into()), email: Some(email.into()), role: Some(role), active: Some(true) };
    let u = app.store().create_user_with_password(draft, hash).await.expect("create user");
    if !active {
        let admin = UserDraft {
            name: Some("Keeper".into()),
            email: Some("keeper@x.example".into()),
            role: Some(Role::Admin),
            active: Some(true),
        };
        app.store().create_user_with_password(admin, "x".into()).await.expect("another admin");
        let patch = rapport_core::user::UserPatch { active: Some(false), ..Default::default() };
        app.store().update_user(u.id, patch).await.expect("deactivate");
    }
    u.id
}

async fn contact(app: &TestApp, body: Value) -> String {
    id_of(&app.create("/api/v1/contacts", body).await)
}

async fn runs_of(app: &TestApp, contact: &str) -> usize {
    app.get(&format!("/api/v1/contacts/{contact}/automation")).await.expect(200)["runs"].as_array().map_or(0, Vec::len)
}

both_backends! {
    async fn signed_out_pages_send_the_browser_to_sign_in(app) {
        let mut b = Browser::new(app);
        let r = b.get("/contacts?q=ana").await;
        assert_eq!(r.status, 303);
        assert_eq!(location(&r), "/login?next=%2Fcontacts%3Fq%3Dana");
        assert_eq!(location(&b.get("/").await), "/login");
        assert_eq!(b.get("/ui/search?q=ana").await.status, 401);
        assert_eq!(b.post("/contacts", &[("first_name", "Ana")]).await.status, 403);
        let login = b.get("/login").await;
        assert_eq!(login.status, 200);
        assert_eq!(title_of(&login), "Sign in · Rapport");
        assert!(login.text.contains("id=\"login-form\""));
        // The API keeps its own answers.
        assert_eq!(send(app.anon(Method::GET, "/api/v1/contacts")).await.status, 401);
        assert_eq!(send(app.anon(Method::GET, "/api/docs")).await.status, 200);
    }

    async fn signing_in_and_out(app) {
        user(app, "owner@harbourpine.example", Role::Admin, true).await;
        let mut b = Browser::new(app);
        for (email, password) in [("owner@harbourpine.example", "wrong password"), ("nobody@harbourpine.example", PASSWORD), ("not an email", PASSWORD)] {
            let r = b.sign_in(email, password).await;
            assert_eq!(r.status, 401, "{email}: {}", r.text);
            assert!(r.text.contains("Wrong email or password."), "{}", r.text);
            assert!(r.header("set-cookie").is_none_or(|c| !c.contains("rapport_session=")), "no session on failure");
            // What was typed stays, but never the password.
            assert!(r.text.contains(&format!("value=\"{email}\"")), "{}", r.text);
            assert!(!r.text.contains(password), "{}", r.text);
        }
        let r = b.sign_in("Owner@HarbourPine.example", PASSWORD).await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(location(&r), "/");
        let cookie = r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find(|c| c.starts_with("rapport_session=")).expect("session cookie").to_string();
        for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(flag), "{cookie}");
        }
        let token = cookie.trim_start_matches("rapport_session=").split(';').next().unwrap().to_string();
        let home = b.get("/").await;
        assert_eq!(home.status, 200, "{}", home.text);
        assert_eq!(title_of(&home), "Today · Rapport");
        assert!(home.text.contains("Eleanor Pine"));
        assert!(home.header("content-security-policy").is_some_and(|c| c.contains("script-src 'self'")));

        // Signing in again while signed in goes straight on.
        assert_eq!(location(&b.get("/login?next=/contacts").await), "/contacts");

        let out = b.submit("/logout", &[]).await;
        assert_eq!(out.status, 303);
        assert_eq!(location(&out), "/login");
        assert_eq!(b.get("/").await.status, 303);
        // The old token is dead on the server too, not only forgotten by the browser.
        let other = Browser::new(app);
        let replay = send(other.client.get(app.url("/contacts")).header("cookie", format!("rapport_session={token}"))).await;
        assert_eq!(replay.status, 303);
        assert!(location(&replay).starts_with("/login"));
    }

    async fn inactive_users_and_users_without_a_password_cannot_sign_in(app) {
        user(app, "gone@x.example", Role::Member, false).await;
        let mut b = Browser::new(app);
        let r = b.sign_in("gone@x.example", PASSWORD).await;
        assert_eq!(r.status, 401);
        assert!(r.text.contains("Wrong email or password."));
        app.create("/api/v1/users", json!({"name": "No Password", "email": "nopw@x.example"})).await;
        let r = b.sign_in("nopw@x.example", "").await;
        assert_eq!(r.status, 401);
    }

    async fn sign_in_attempts_are_limited(app) {
        user(app, "ana@x.example", Role::Member, true).await;
        let mut b = Browser::new(app);
        for _ in 0..5 {
            assert_eq!(b.sign_in("ana@x.example", "guess").await.status, 401);
        }
        // Now even the right password waits.
        let r = b.sign_in("ana@x.example", PASSWORD).await;
        assert_eq!(r.status, 429, "{}", r.text);
        assert!(r.text.contains("Too many sign-in attempts. Try again in "), "{}", r.text);
        let secs: u64 = r.text.split("Try again in ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).expect("seconds");
        assert!((1..=900).contains(&secs), "{secs}");
    }

    async fn forms_need_the_session_token_and_this_origin(app) {
        user(app, "ana@x.example", Role::Member, true).await;
        let id = contact(app, json!({"first_name": "Bo"})).await;
        let b = Browser::signed_in(app, "ana@x.example").await;
        let path = format!("/contacts/{id}/notes");
        let no_token = b.post(&path, &[("body", "hello")]).await;
        assert_eq!(no_token.status, 403, "{}", no_token.text);
        assert!(no_token.text.contains("expired or did not come from Rapport"));
        assert_eq!(b.post(&path, &[("_csrf", "forged"), ("body", "hello")]).await.status, 403);
        let evil = send(b.client.post(format!("{}{path}", b.base)).header("origin", "https://evil.example").form(&[("_csrf", b.csrf.as_str()), ("body", "hello")])).await;
        assert_eq!(evil.status, 403);
        let notes = app.get(&format!("/api/v1/notes?contact_id={id}")).await.expect(200);
        assert_eq!(notes["data"].as_array().map(Vec::len), Some(0), "nothing was written");
        let ok = b.submit(&path, &[("body", "hello")]).await;
        assert_eq!(ok.status, 303, "{}", ok.text);
        // Signing in needs the sign-in form's own token.
        let fresh = Browser::new(app);
        assert_eq!(fresh.post("/login", &[("email", "ana@x.example"), ("password", PASSWORD)]).await.status, 403);
    }

    async fn stored_scripts_in_names_and_notes_do_not_run(app) {
        user(app, "ana@x.example", Role::Member, true).await;
        let id = contact(app, json!({"first_name": "<script>alert(1)</script>", "emails": [{"address": "xss@x.example"}], "tags": ["<b>bold</b>"]})).await;
        let mut b = Browser::signed_in(app, "ana@x.example").await;
        let r = b.submit(&format!("/contacts/{id}/notes"), &[("body", "<img src=x onerror=alert(1)>")]).await;
        assert_eq!(r.status, 303, "{}", r.text);
        for path in [format!("/contacts/{id}"), "/contacts".to_string(), "/search?q=script".to_string(), format!("/contacts/{id}/edit"), format!("/contacts/{id}/timeline")] {
            let page = b.get(&path).await;
            assert_eq!(page.status, 200, "{path}: {}", page.text);
            assert!(!page.text.contains("<script>alert(1)"), "{path} has the raw script");
            assert!(!page.text.contains("<img src=x"), "{path} has the raw img");
            assert!(!page.text.contains("<b>bold"), "{path} has raw markup from a tag");
            assert!(unescape(&page.text).contains("<script>alert(1)</script>") || path.contains("timeline"), "{path} shows the name as text");
        }
        let show = b.get(&format!("/contacts/{id}")).await;
        assert!(unescape(&show.text).contains("<img src=x onerror=alert(1)>"), "the note is shown as text");
        assert!(show.header("content-security-policy").is_some_and(|c| c.contains("default-src 'self'")));
        // The typeahead answers JSON (data, never markup).
        let hits = b.get("/ui/search?q=script").await;
        assert!(hits.header("content-type").is_some_and(|c| c.starts_with("application/json")));
        assert_eq!(hits.json["results"][0]["title"], "<script>alert(1)</script>");
    }

    async fn a_bad_email_is_shown_beside_its_input_with_the_input_kept(app) {
        user(app, "ana@x.example", Role::Member, true).await;
        let mut b = Browser::signed_in(app, "ana@x.example").await;
        let form = b.get("/contacts/new").await;
        assert_eq!(form.status, 200);
        assert_eq!(title_of(&form), "New contact · Rapport");
        let fields = [
            ("first_name", "Ana"),
            ("last_name", "Santos"),
            ("emails[0].address", "ana@"),
            ("emails[0].label", "work"),
            ("email_primary", "0"),
            ("phones[0].number", "+63 917 123 4567"),
            ("phones[0].label", ""),
            ("tags", "vip, new"),
        ];
        let r = b.submit("/contacts", &fields).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.text.contains("id=\"f-emails-0-address-error\""), "the error sits by the email input: {}", r.text);
        assert!(r.text.contains("aria-invalid=\"true\" aria-describedby=\"f-emails-0-address-error\""));
        assert!(r.text.contains("value=\"ana@\""), "the bad email is kept");
        assert!(r.text.contains("value=\"Ana\"") && r.text.contains("value=\"Santos\""), "the rest is kept");
        assert!(r.text.contains("value=\"+63 917 123 4567\""));
        assert!(r.text.contains("value=\"vip, new\""));
        assert!(r.text.contains("id=\"form-errors\""), "a summary links to the field");
        assert_eq!(app.contact_count().await, 0, "nothing was created");

        let mut fixed = fields.to_vec();
        fixed[2] = ("emails[0].address", "ana@santos.example");
        let r = b.submit("/contacts", &fixed).await;
        assert_eq!(r.status, 303, "{}", r.text);
        let page = b.get(&location(&r)).await;
        assert_eq!(title_of(&page), "Ana Santos · Rapport");
        assert!(page.text.contains("Created Ana Santos."), "the flash says so");
        assert!(page.text.contains("ana@santos.example") && page.text.contains("vip"));

        // A duplicate email is a conflict, also shown by the input.
        let r = b.submit("/contacts", &[("first_name", "Other"), ("emails[0].address", "ana@santos.example"), ("emails[0].label", "")]).await;
        assert_eq!(r.status, 422);
        assert!(r.text.contains("id=\"f-emails-0-address-error\""), "{}", r.text);
    }

    async fn editing_keeps_what_the_form_does_not_show(app) {
        user(app, "ana@x.example", Role::Member, true).await;
        let id = contact(app, json!({"first_name": "Ana", "middle_name": "Maria", "last_name": "Santos", "external_ids": [{"source": "shop", "id": "42"}],
            "emails": [{"address": "a@x.example"}, {"address": "b@x.example", "primary": true}]})).await;
        let mut b = Browser::signed_in(app, "ana@x.example").await;
        let edit = b.get(&format!("/contacts/{id}/edit")).await;
        assert_eq!(edit.status, 200);
        assert!(edit.text.contains("value=\"b@x.example\""));
        let r = b.submit(&format!("/contacts/{id}"), &[
            ("first_name", "Ana"), ("last_name", "Reyes"), ("display_name", ""), ("title", "Buyer"),
            ("emails[0].address", "a@x.example"), ("emails[0].label", ""),
            ("emails[1].address", "b@x.example"), ("emails[1].label", "home"), ("email_primary", "1"),
            ("phones[0].number", ""), ("phones[0].label", ""), ("birthday", "1990-02-03"), ("tags", "gold"),
        ]).await;
        assert_eq!(r.status, 303, "{}", r.text);
        let c = app.get(&format!("/api/v1/contacts/{id}")).await.expect(200);
        assert_eq!(c["display_name"], "Ana Maria Reyes");
        assert_eq!(c["middle_name"], "Maria");
        assert_eq!(c["external_ids"][0]["id"], "42");
        assert_eq!(c["emails"][1]["primary"], true);
        assert_eq!(c["emails"][1]["label"], "home");
        assert_eq!(c["title"], "Buyer");
        assert_eq!(c["tags"], json!(["gold"]));
        // A bad birthday keeps the person's typing.
        let r = b.submit(&format!("/contacts/{id}"), &[("first_name", "Ana"), ("birthday", "31/12/1990")]).await;
        assert_eq!(r.status, 422);
        assert!(r.text.contains("id=\"f-birthday-error\"") && r.text.contains("value=\"31/12/1990\""), "{}", r.text);
    }

    async fn the_filter_box_points_at_mistakes(app) {
        user(app, "ana@x.example", Role::Member, true).await;
        contact(app, json!({"first_name": "Vip", "tags": ["vip"]})).await;
        contact(app, json!({"first_name": "Plain"})).await;
        let mut b = Browser::signed_in(app, "ana@x.example").await;
        let r = b.get("/contacts?filter=tag%20%3D%20%22vip%22%20and%20%3D").await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("id=\"filter-error\""), "{}", r.text);
        assert!(r.text.contains("Line 1, column 17:"), "{}", r.text);
        assert!(unescape(&r.text).contains("tag = \"vip\" and ="), "the filter is kept in the box");
        let ok = b.get("/contacts?filter=tag%20%3D%20%22vip%22").await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.text.matches("data-testid=\"contact-row\"").count(), 1);
        assert!(ok.text.contains(">Vip<"));
        // Unknown fields are named too.
        let r = b.get("/contacts?filter=shoe_size%20%3E%2042").await;
        assert_eq!(r.status, 400);
        assert!(r.text.contains("id=\"filter-error\""), "{}", r.text);
        // The plain search and the tag select.
        let r = b.get("/contacts?q=pla").await;
        assert_eq!(r.text.matches("data-testid=\"contact-row\"").count(), 1);
        let r = b.get("/contacts?tag=VIP").await;
        assert_eq!(r.text.matches("data-testid=\"contact-row\"").count(), 1);
    }

    async fn every_page_answers_with_a_title(app) {
        let me = user(app, "ana@x.example", Role::Admin, true).await;
        let id = contact(app, json!({"first_name": "Ana", "last_name": "Santos", "phones": [{"number": "+63 917 123 4567"}], "owner_id": me})).await;
        let company = id_of(&app.create("/api/v1/companies", json!({"name": "Harbour & Pine", "domain": "harbourpine.example"})).await);
        app.create("/api/v1/links", json!({"contact_id": id, "company_id": company, "role": "buyer"})).await;
        let kid = contact(app, json!({"first_name": "Mia"})).await;
        app.create("/api/v1/relations", json!({"contact_id": id, "kind": "child", "related_contact_id": kid})).await;
        app.create("/api/v1/custom-fields", json!({"record_type": "contact", "key": "budget", "kind": "money"})).await;
        app.create("/api/v1/custom-fields", json!({"record_type": "contact", "key": "channel", "kind": "enum", "options": ["email", "phone"]})).await;
        let segment = id_of(&app.create("/api/v1/segments", json!({"name": "Everyone named Ana", "filter": "first_name = \"ana\""})).await);
        let events: Vec<Value> = (0..3).map(|i| json!({"id": format!("o-{i}"), "type": "order.completed", "contact": {"id": id},
            "occurred_at": format!("2026-01-1{i}T10:00:00Z"), "channel": "store", "payload": {"currency": "EUR", "total": 120.5, "items": [{"sku": "A1", "name": "Boots", "price": 120.5}]}})).collect();
        app.post("/api/v1/events", json!({"events": events})).await.expect(200);

        let mut b = Browser::signed_in(app, "ana@x.example").await;
        let pages = [
            ("/", "Today · Rapport"),
            ("/contacts", "Contacts · Rapport"),
            ("/contacts?sort=-updated_at&owner=me", "Contacts · Rapport"),
            ("/contacts/new", "New contact · Rapport"),
            (&format!("/contacts/{id}"), "Ana Santos · Rapport"),
            (&format!("/contacts/{id}/edit"), "Edit Ana Santos · Rapport"),
            (&format!("/contacts/{id}/timeline"), "Timeline of Ana Santos · Rapport"),
            ("/companies", "Companies · Rapport"),
            (&format!("/companies/{company}"), "Harbour & Pine · Rapport"),
            ("/segments", "Segments · Rapport"),
            ("/segments/new", "New segment · Rapport"),
            (&format!("/segments/{segment}"), "Everyone named Ana · Rapport"),
            ("/search?q=ana", "Search · Rapport"),
        ];
        for (path, title) in pages {
            let r = b.get(path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            assert_eq!(unescape(&title_of(&r)), title, "{path}");
            assert!(r.text.contains("<html lang=\"en\">"), "{path}");
        }
        let show = b.get(&format!("/contacts/{id}")).await;
        assert!(unescape(&show.text).contains("Harbour & Pine") && show.text.contains("Mia") && show.text.contains("Everyone named Ana"), "{}", show.text);
        assert!(show.text.contains("Bought 1 item for €120.50"), "the timeline reads well: {}", show.text);
        assert!(show.text.contains("€361.50"), "lifetime revenue");
        let dash = b.get("/").await;
        assert!(dash.text.contains("<svg") && dash.text.contains("Contacts by lifecycle stage"));
        let segs = b.get("/segments").await;
        assert!(segs.text.contains("<svg") && segs.text.contains("Members per segment"));
        assert_eq!(b.get("/contacts/00000000-0000-0000-0000-000000000000").await.status, 404);
        assert_eq!(b.get("/contacts/not-an-id").await.status, 404);

        // The stylesheet and script come from the binary, cacheable for a year under their hash.
        let css_url = attr_after(&dash.text, "rel=\"stylesheet\" href=\"").expect("css link");
        let css = b.get(&css_url).await;
        assert_eq!(css.status, 200);
        assert!(css.header("cache-control").is_some_and(|c| c.contains("immutable")));
        assert!(css.header("content-type").is_some_and(|c| c.starts_with("text/css")));
        let js_url = attr_after(&dash.text, "<script src=\"").expect("script");
        assert_eq!(b.get(&js_url).await.status, 200);
    }

    async fn search_finds_people_by_phone_digits_and_company(app) {
        user(app, "ana@x.example", Role::Member, true).await;
        let id = contact(app, json!({"first_name": "Ana", "phones": [{"number": "+63 917 123 4567"}]})).await;
        let company = id_of(&app.create("/api/v1/companies", json!({"name": "Northwind Traders"})).await);
        app.create("/api/v1/links", json!({"contact_id": id, "company_id": company})).await;
        contact(app, json!({"first_name": "Bo", "phones": [{"number": "+63 918 555 0000"}]})).await;
        let mut b = Browser::signed_in(app, "ana@x.example").await;
        let r = b.get("/ui/search?q=123%2045").await;
        let results = r.json["results"].as_array().expect("results").clone();
        assert_eq!(results.len(), 1, "{}", r.text);
        assert_eq!(results[0]["title"], "Ana");
        assert_eq!(results[0]["href"], format!("/contacts/{id}"));
        assert!(results[0]["detail"].as_str().unwrap_or("").contains("+63 917 123 4567"));
        let r = b.get("/ui/search?q=northw").await;
        let titles: Vec<&str> = r.json["results"].as_array().unwrap().iter().filter_map(|h| h["title"].as_str()).collect();
        assert_eq!(titles, ["Ana", "Northwind Traders"], "the person at the company, then the company");
        // Without JavaScript the form lands on a results page.
        let page = b.get("/search?q=4567").await;
        assert!(page.text.contains(&format!("href=\"/contacts/{id}\"")));
    }

    async fn bulk_tagging_assigning_and_saved_views(app) {
        let me = user(app, "ana@x.example", Role::Member, true).await;
        let ids = [contact(app, json!({"first_name": "A"})).await, contact(app, json!({"first_name": "B", "tags": ["vip"]})).await, contact(app, json!({"first_name": "C"})).await];
        let mut b = Browser::signed_in(app, "ana@x.example").await;
        let mut form = vec![("action", "tag"), ("tag", "VIP"), ("return_to", "/contacts?sort=-created_at")];
        form.extend(ids.iter().map(|i| ("ids", i.as_str())));
        let r = b.submit("/contacts/bulk", &form).await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(location(&r), "/contacts?sort=-created_at");
        let page = b.get(&location(&r)).await;
        assert!(page.text.contains("Tagged 2 contacts “VIP”. 1 contact already had it."), "{}", page.text);
        for id in &ids {
            assert_eq!(app.get(&format!("/api/v1/contacts/{id}")).await.expect(200)["tags"], json!(["vip"]));
        }
        let me = me.to_string();
        let mut form = vec![("action", "owner"), ("owner_id", me.as_str())];
        form.extend(ids.iter().take(2).map(|i| ("ids", i.as_str())));
        assert_eq!(b.submit("/contacts/bulk", &form).await.status, 303);
        let mine = b.get("/contacts?owner=me").await;
        assert_eq!(mine.text.matches("data-testid=\"contact-row\"").count(), 2);
        // A return address elsewhere is not followed.
        let r = b.submit("/contacts/bulk", &[("action", "untag"), ("tag", "vip"), ("ids", ids[0].as_str()), ("return_to", "https://evil.example/")]).await;
        assert_eq!(location(&r), "/contacts");

        let r = b.submit("/views", &[("name", "My VIPs"), ("query", "tag=vip&owner=me&evil=1")]).await;
        assert_eq!(r.status, 303);
        let list = b.get("/contacts").await;
        assert!(list.text.contains("My VIPs") && unescape(&list.text).contains("href=\"/contacts?tag=vip&owner=me\""), "{}", list.text);
        let view_id = attr_after(&list.text, "action=\"/views/").expect("delete form").split('/').next().unwrap().to_string();
        assert_eq!(b.submit(&format!("/views/{view_id}/delete"), &[]).await.status, 303);
        assert!(!b.get("/contacts").await.text.contains("My VIPs"));
    }

    async fn tags_notes_and_the_timeline_on_the_contact_page(app) {
        user(app, "ana@x.example", Role::Member, true).await;
        let id = contact(app, json!({"first_name": "Ana"})).await;
        let events: Vec<Value> = (0..60).map(|i| json!({"id": format!("v-{i}"), "type": "page.viewed", "contact": {"id": id},
            "occurred_at": format!("2026-01-14T{:02}:{:02}:00Z", i / 60, i % 60), "payload": {"url": format!("https://shop.example/p/{i}")}})).collect();
        app.post("/api/v1/events", json!({"events": events})).await.expect(200);
        let mut b = Browser::signed_in(app, "ana@x.example").await;
        assert_eq!(b.submit(&format!("/contacts/{id}/tags"), &[("tag", "Newsletter")]).await.status, 303);
        assert_eq!(b.submit(&format!("/contacts/{id}/notes"), &[("body", "Called about the boots")]).await.status, 303);
        let page = b.get(&format!("/contacts/{id}")).await;
        assert!(page.text.contains("Tagged “Newsletter”.") || page.text.contains("Note added."));
        assert!(page.text.contains("<span class=\"tag\">Newsletter</span>"));
        assert_eq!(page.text.matches("data-testid=\"timeline-item\"").count(), 25);
        assert!(page.text.contains("Called about the boots"), "the note is on the timeline and in the notes");
        let start = page.text.find("data-more><a href=\"").expect("more link") + "data-more><a href=\"".len();
        let href = page.text[start..].split('"').next().unwrap().replace("&amp;", "&");
        let fragment = b.get(&format!("{href}&fragment=1")).await;
        assert_eq!(fragment.status, 200);
        assert!(!fragment.text.contains("<html"), "a fragment only");
        assert_eq!(fragment.text.matches("data-testid=\"timeline-item\"").count(), 25);
        let full = b.get(&href).await;
        assert_eq!(title_of(&full), "Timeline of Ana · Rapport");
        assert_eq!(b.submit(&format!("/contacts/{id}/tags/remove"), &[("tag", "newsletter")]).await.status, 303);
        assert_eq!(app.get(&format!("/api/v1/contacts/{id}")).await.expect(200)["tags"], json!([]));
    }

    async fn tasks_on_the_start_page_and_the_contact_page(app) {
        let me = user(app, "ana@x.example", Role::Member, true).await;
        let id = contact(app, json!({"first_name": "Bo", "last_name": "Lind"})).await;
        // An overdue task from elsewhere, assigned to Ana; the clock stands at 2026-01-15 09:00 UTC.
        let late = app.create("/api/v1/tasks", json!({"title": "Send the <b>offer</b>", "assignee_id": me.to_string(),
            "contact_id": id, "due_at": "2026-01-14T10:00:00Z", "reason": "Asked twice"})).await;
        let mut b = Browser::signed_in(app, "ana@x.example").await;
        let home = b.get("/").await;
        assert!(home.text.contains("Send the &#60;b&#62;offer&#60;/b&#62;") || home.text.contains("Send the &lt;b&gt;offer&lt;/b&gt;"), "escaped");
        assert!(home.text.contains("Overdue since") && home.text.contains("Bo Lind") && home.text.contains("Asked twice"));

        // Added on Bo's page, due tomorrow morning (UTC is the default zone).
        let r = b.submit(&format!("/contacts/{id}/tasks"), &[("title", "Book the test drive"), ("due", "2026-01-16T09:30")]).await;
        assert_eq!((r.status, location(&r)), (303, format!("/contacts/{id}#tasks")));
        let tasks = app.get(&format!("/api/v1/tasks?contact_id={id}&status=open")).await.expect(200);
        let added = tasks["data"].as_array().unwrap().iter().find(|t| t["title"] == "Book the test drive").expect("added").clone();
        assert_eq!((added["due_at"].as_str(), added["assignee_id"].as_str()), (Some("2026-01-16T09:30:00Z"), Some(me.to_string().as_str())));
        let page = b.get(&format!("/contacts/{id}")).await;
        assert_eq!(page.text.matches("data-testid=\"task\"").count(), 2);

        // A bad due time or an empty title says so and saves nothing.
        let r = b.submit(&format!("/contacts/{id}/tasks"), &[("title", "x"), ("due", "soon")]).await;
        assert_eq!(r.status, 303);
        let r = b.submit(&format!("/contacts/{id}/tasks"), &[("title", "  ")]).await;
        assert_eq!(r.status, 303);
        assert_eq!(app.get(&format!("/api/v1/tasks?contact_id={id}")).await.expect(200)["data"].as_array().unwrap().len(), 2);

        // Done from the contact page: back there, and off the list.
        let r = b.submit(&format!("/tasks/{}/done", id_of(&late)), &[("return_to", &format!("/contacts/{id}#tasks"))]).await;
        assert_eq!((r.status, location(&r)), (303, format!("/contacts/{id}#tasks")));
        assert_eq!(app.get(&format!("/api/v1/tasks/{}", id_of(&late))).await.expect(200)["status"], "done");
        let page = b.get(&format!("/contacts/{id}")).await;
        assert_eq!(page.text.matches("data-testid=\"task\"").count(), 1);
        // Only local paths are followed.
        let other = app.create("/api/v1/tasks", json!({"title": "Tidy up", "assignee_id": me.to_string()})).await;
        let r = b.submit(&format!("/tasks/{}/done", id_of(&other)), &[("return_to", "https://evil.example/")]).await;
        assert_eq!(location(&r), "/");
        // Without the session token nothing changes.
        let third = app.create("/api/v1/tasks", json!({"title": "Call the bank", "assignee_id": me.to_string()})).await;
        assert_eq!(b.post(&format!("/tasks/{}/done", id_of(&third)), &[]).await.status, 403);
        assert_eq!(app.get(&format!("/api/v1/tasks/{}", id_of(&third))).await.expect(200)["status"], "open");
    }

    async fn segments_with_a_live_count(app) {
        user(app, "ana@x.example", Role::Member, true).await;
        contact(app, json!({"first_name": "Ana", "tags": ["vip"]})).await;
        let mut b = Browser::signed_in(app, "ana@x.example").await;
        let r = b.get("/ui/segments/preview?filter=tag%20%3D%20%22vip%22").await;
        assert_eq!(r.json["count"], 1, "{}", r.text);
        assert_eq!(r.json["sample"][0]["name"], "Ana");
        let r = b.get("/ui/segments/preview?filter=tag%20%3D").await;
        assert_eq!(r.json["error"]["line"], 1, "{}", r.text);
        assert_eq!(r.json["error"]["column"], 6, "{}", r.text);
        let bad = b.submit("/segments", &[("name", "VIPs"), ("filter", "tag =\n  and")]).await;
        assert_eq!(bad.status, 422);
        assert!(bad.text.contains("Line 1, column") || bad.text.contains("Line 2, column"), "{}", bad.text);
        assert!(bad.text.contains("value=\"VIPs\""), "the name is kept");
        let ok = b.submit("/segments", &[("name", "VIPs"), ("filter", "tag = \"vip\"")]).await;
        assert_eq!(ok.status, 303, "{}", ok.text);
        let page = b.get(&location(&ok)).await;
        assert!(page.text.contains("Created the segment “VIPs” with 1 members.") && page.text.contains("data-testid=\"member-row\""));
        let again = b.submit("/segments", &[("name", "vips"), ("filter", "tag = \"vip\"")]).await;
        assert_eq!(again.status, 422);
        assert!(again.text.contains("id=\"segment-name-error\""), "{}", again.text);
    }

    async fn viewers_can_look_but_not_change(app) {
        user(app, "viewer@x.example", Role::Viewer, true).await;
        let id = contact(app, json!({"first_name": "Ana"})).await;
        let mut b = Browser::signed_in(app, "viewer@x.example").await;
        let page = b.get(&format!("/contacts/{id}")).await;
        assert_eq!(page.status, 200);
        assert!(!page.text.contains("id=\"note-form\""));
        assert_eq!(b.get("/contacts/new").await.status, 403);
        assert_eq!(b.submit(&format!("/contacts/{id}/notes"), &[("body", "x")]).await.status, 403);
    }

    async fn automation_on_the_contact_page_the_start_page_and_the_workflows_page(app) {
        let manager = user(app, "manager@x.example", Role::Manager, true).await;
        let member = user(app, "member@x.example", Role::Member, true).await;
        // Ned has no email address (so the message is blocked) and a birthday in five days; the
        // clock stands at 2026-01-15 09:00 UTC.
        let ned = contact(app, json!({"first_name": "Ned", "last_name": "<b>Bold</b>", "birthday": "--01-20", "owner_id": manager})).await;
        let follow = id_of(&app.create("/api/v1/workflows", json!({"name": "Follow <i>up</i>", "trigger": {"kind": "manual"},
            "steps": [{"action": "send_message", "channel": "email", "template": "newsletter"},
                      {"wait": "P2D", "until_event": "order.completed"},
                      {"action": "create_task", "title": "Call <script>x</script> {{first_name}}"}]})).await);
        let birthday = id_of(&app.create("/api/v1/workflows", json!({"name": "Birthday card",
            "trigger": {"kind": "date", "field": "birthday", "offset": "P0D", "at": "09:00"},
            "steps": [{"action": "create_task", "title": "Send {{first_name}} a card"}]})).await);
        let tell = id_of(&app.create("/api/v1/workflows", json!({"name": "Tell the owner", "trigger": {"kind": "manual"},
            "steps": [{"action": "notify", "user": "owner", "message": "{{first_name}} asked for <u>a call</u>"}]})).await);
        let asleep = id_of(&app.create("/api/v1/workflows", json!({"name": "Not yet", "trigger": {"kind": "manual"},
            "steps": [{"action": "add_tag", "tag": "x"}]})).await);
        for w in [&follow, &birthday, &tell] {
            app.post(&format!("/api/v1/workflows/{w}/enable"), json!({})).await.expect(200);
        }
        // Started by hand with the member's own key, so the run names them.
        let key = app.create_key_for_user(&member.to_string()).await;
        for w in [&follow, &tell] {
            send(app.with_key(&key, Method::POST, &format!("/api/v1/workflows/{w}/start")).json(&json!({"contact_id": ned}))).await.expect(200);
        }
        app.post("/api/v1/admin/clock", json!({"advance": "PT0S"})).await.expect(200);

        let mut b = Browser::signed_in(app, "manager@x.example").await;
        let page = b.get(&format!("/contacts/{ned}")).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let text = unescape(&page.text);
        assert!(page.text.contains("id=\"automation\""), "the card is there");
        assert_eq!(page.text.matches("data-testid=\"run\"").count(), 2, "{}", page.text);
        assert!(text.contains("Follow <i>up</i>") && !page.text.contains("<i>up</i>"), "the workflow's name, escaped");
        assert!(!page.text.contains("<script>x</script>") && !page.text.contains("<b>Bold"), "nothing from the data is markup");
        assert!(text.contains(">Waiting<") && text.contains(">Done<"), "status badges");
        assert!(text.contains("started by hand by Eleanor Pine"), "why, with the person's name: {text}");
        assert!(text.contains("create a task \"Call <script>x</script> Ned\" · <strong>17 Jan 2026, 09:00</strong>, or sooner if order.completed happens"), "what comes next and when, with the person's name filled in: {text}");
        assert!(page.text.contains("class=\"outcome bad\" data-testid=\"step-outcome\">Blocked<"), "a blocked step is marked");
        assert!(text.contains("no email address to send to"), "and says why");
        assert!(text.contains("Ended 15 Jan 2026, 09:00:</span> every step is done"), "an ended run's end: {text}");
        assert!(text.contains("Birthday card</a> — 20 Jan 2026, 09:00"), "the scheduled trigger: {text}");

        // The start page's "Coming up": the run's next step and the birthday, each linking to Ned.
        let home = b.get("/").await;
        let text = unescape(&home.text);
        assert_eq!(home.text.matches("data-testid=\"coming-up-item\"").count(), 2, "{}", home.text);
        assert!(home.text.contains(&format!("href=\"/contacts/{ned}#automation\"")));
        assert!(text.contains("20 Jan 2026, 09:00") && text.contains("17 Jan 2026, 09:00") && text.contains("Send Ned a card"), "{text}");
        assert!(!home.text.contains("<script>x") && !home.text.contains("<i>up</i>") && !home.text.contains("<b>Bold"));

        // The notification of "Tell the owner" reached the manager, who owns Ned.
        assert!(home.text.contains("data-testid=\"unread-count\""), "the header counts it");
        assert!(text.contains("(unread: </span>1<"), "{text}");
        let list = b.get("/notifications").await;
        assert_eq!(list.status, 200);
        assert_eq!(title_of(&list), "Notifications · Rapport");
        assert!(unescape(&list.text).contains("Ned asked for <u>a call</u>") && !list.text.contains("<u>a call"), "escaped");
        let nid = attr_after(&list.text, "action=\"/notifications/").expect("mark read form").split('/').next().unwrap().to_string();
        assert_eq!(b.post(&format!("/notifications/{nid}/read"), &[]).await.status, 403, "the session token is needed");
        let r = b.submit(&format!("/notifications/{nid}/read"), &[]).await;
        assert_eq!((r.status, location(&r)), (303, "/notifications".to_string()));
        let list = b.get("/notifications").await;
        assert!(!list.text.contains("data-testid=\"unread-count\"") && !list.text.contains("data-testid=\"mark-read\""));
        // Someone else's notification is not theirs to mark.
        let mut other = Browser::signed_in(app, "member@x.example").await;
        assert_eq!(other.submit(&format!("/notifications/{nid}/read"), &[]).await.status, 404);
        assert!(other.get("/notifications").await.text.contains("id=\"no-notifications\""));

        // The workflows page: every workflow, what starts it, on or off, and how busy.
        let page = b.get("/workflows").await;
        assert_eq!(page.status, 200);
        assert_eq!(title_of(&page), "Workflows · Rapport");
        assert!(page.text.contains("id=\"nav-workflows\" aria-current=\"page\""));
        assert_eq!(page.text.matches("data-testid=\"workflow-row\"").count(), 4);
        let text = unescape(&page.text);
        assert!(text.contains("Follow <i>up</i>") && !page.text.contains("<i>up</i>"));
        assert!(text.contains("On their birthday, every year, at 09:00 their time"), "{text}");
        let row = text.split("data-testid=\"workflow-row\"").find(|r| r.contains("Follow <i>up</i>")).expect("the row").to_string();
        assert!(row.contains(">On<") && row.contains("data-testid=\"workflow-started\">1<") && row.contains("data-testid=\"workflow-active\">1<"), "{row}");
        assert_eq!(page.text.matches("data-testid=\"workflow-switch\"").count(), 4, "a manager may switch each");
        let show = b.get(&format!("/workflows/{follow}")).await;
        assert_eq!(show.status, 200);
        assert_eq!(unescape(&title_of(&show)), "Follow <i>up</i> · Rapport");
        assert!(show.text.contains("id=\"workflow-document\"") && show.text.contains("data-testid=\"run-row\""));
        assert!(!show.text.contains("<script>x"), "the document is text");

        // A member sees the same, read-only, and cannot switch by posting either.
        let mine = other.get("/workflows").await;
        assert_eq!(mine.status, 200);
        assert!(!mine.text.contains("data-testid=\"workflow-switch\"") && mine.text.contains("Managers and admins switch workflows"));
        assert!(!other.get(&format!("/workflows/{follow}")).await.text.contains("data-testid=\"workflow-switch\""));
        let r = other.submit(&format!("/workflows/{follow}/disable"), &[]).await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(other.submit(&format!("/workflows/{asleep}/enable"), &[]).await.status, 403);
        assert_eq!(app.get(&format!("/api/v1/workflows/{follow}")).await.expect(200)["enabled"], true);

        // The manager switches it off (the session token needed), and on again.
        assert_eq!(b.post(&format!("/workflows/{follow}/disable"), &[]).await.status, 403);
        let r = b.submit(&format!("/workflows/{follow}/disable"), &[("return_to", "/workflows")]).await;
        assert_eq!((r.status, location(&r)), (303, "/workflows".to_string()));
        assert_eq!(app.get(&format!("/api/v1/workflows/{follow}")).await.expect(200)["enabled"], false);
        let page = b.get("/workflows").await;
        assert!(unescape(&page.text).contains("is off. Its runs in flight wait"), "{}", page.text);
        // Ned's run now waits for it.
        assert!(b.get(&format!("/contacts/{ned}")).await.text.contains("Paused: the workflow is off"));
        let r = b.submit(&format!("/workflows/{asleep}/enable"), &[("return_to", "https://evil.example/")]).await;
        assert_eq!((r.status, location(&r)), (303, "/workflows".to_string()));
        assert_eq!(app.get(&format!("/api/v1/workflows/{asleep}")).await.expect(200)["enabled"], true);
    }

    async fn starting_a_workflow_by_hand_from_the_contact_page(app) {
        user(app, "member@x.example", Role::Member, true).await;
        user(app, "viewer@x.example", Role::Viewer, true).await;
        let ana = contact(app, json!({"first_name": "Ana", "last_name": "Santos"})).await;
        // "Call back" waits two days, so Ana is still in it when someone tries again.
        let call = id_of(&app.create("/api/v1/workflows", json!({"name": "Call back", "trigger": {"kind": "manual"},
            "steps": [{"wait": "P2D"}, {"action": "create_task", "title": "Call {{first_name}}"}]})).await);
        let welcome = id_of(&app.create("/api/v1/workflows", json!({"name": "A welcome", "trigger": {"kind": "event", "type": "order.completed"},
            "steps": [{"action": "add_tag", "tag": "customer"}]})).await);
        let asleep = id_of(&app.create("/api/v1/workflows", json!({"name": "Asleep", "trigger": {"kind": "manual"},
            "steps": [{"action": "add_tag", "tag": "x"}]})).await);
        for w in [&call, &welcome] {
            app.post(&format!("/api/v1/workflows/{w}/enable"), json!({})).await.expect(200);
        }

        let mut b = Browser::signed_in(app, "member@x.example").await;
        let page = b.get(&format!("/contacts/{ana}")).await;
        assert!(page.text.contains("id=\"start-workflow-form\""), "{}", page.text);
        // Switched-on workflows only, the manual ones first (even when another sorts before them).
        let (at_call, at_welcome) = (page.text.find(&format!("value=\"{call}\"")), page.text.find(&format!("value=\"{welcome}\"")));
        assert!(at_call.is_some() && at_welcome.is_some() && at_call < at_welcome, "{}", page.text);
        assert!(!page.text.contains(&format!("value=\"{asleep}\"")));

        let path = format!("/contacts/{ana}/automation/start");
        assert_eq!(b.post(&path, &[("workflow_id", &call)]).await.status, 403, "the session token is needed");
        assert_eq!(runs_of(app, &ana).await, 0);
        let r = b.submit(&path, &[("workflow_id", &call)]).await;
        assert_eq!((r.status, location(&r)), (303, format!("/contacts/{ana}#automation")), "{}", r.text);
        let page = b.get(&format!("/contacts/{ana}")).await;
        let text = unescape(&page.text);
        assert!(text.contains("Started “Call back” for Ana Santos."), "the flash says so: {text}");
        assert_eq!(page.text.matches("data-testid=\"run\"").count(), 1, "the run is on the card");
        assert!(text.contains("started by hand by Eleanor Pine"), "{text}");
        assert_eq!(runs_of(app, &ana).await, 1);

        // Again while Ana is in it; a workflow switched off since; no choice at all.
        let r = b.submit(&path, &[("workflow_id", &call)]).await;
        assert_eq!(r.status, 303);
        let text = unescape(&b.get(&format!("/contacts/{ana}")).await.text);
        assert!(text.contains("“Call back” did not start: Ana Santos is already in it, or does not meet its conditions."), "{text}");
        app.post(&format!("/api/v1/workflows/{welcome}/disable"), json!({})).await.expect(200);
        b.submit(&path, &[("workflow_id", &welcome)]).await;
        let text = unescape(&b.get(&format!("/contacts/{ana}")).await.text);
        assert!(text.contains("“A welcome” did not start: it is switched off."), "{text}");
        b.submit(&path, &[("workflow_id", "nonsense")]).await;
        assert!(b.get(&format!("/contacts/{ana}")).await.text.contains("Choose a workflow to start."));
        assert_eq!(runs_of(app, &ana).await, 1, "nothing else started");
        let r = b.submit("/contacts/00000000-0000-0000-0000-000000000000/automation/start", &[("workflow_id", &call)]).await;
        assert_eq!(r.status, 404, "{}", r.text);

        // A viewer sees the runs and no form, and is refused when posting anyway.
        let mut v = Browser::signed_in(app, "viewer@x.example").await;
        let page = v.get(&format!("/contacts/{ana}")).await;
        assert_eq!(page.text.matches("data-testid=\"run\"").count(), 1);
        assert!(!page.text.contains("start-workflow"), "{}", page.text);
        let r = v.submit(&path, &[("workflow_id", &call)]).await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("can look but not change records"));
        assert_eq!(runs_of(app, &ana).await, 1);
    }

    async fn trying_a_workflow_on_past_data(app) {
        user(app, "member@x.example", Role::Member, true).await;
        user(app, "viewer@x.example", Role::Viewer, true).await;
        let ana = contact(app, json!({"first_name": "Ana"})).await;
        let ben = contact(app, json!({"first_name": "Ben"})).await;
        // The clock stands at 2026-01-15 09:00 UTC (the business's zone).
        let viewed = |who: &str, at: &str| json!({"type": "product.viewed", "contact": {"id": who}, "occurred_at": at, "channel": "web",
            "payload": {"sku": "SHOE-1", "name": "Trail shoe", "category": "shoes"}});
        let events = json!([viewed(&ana, "2025-12-01T10:00:00Z"), viewed(&ana, "2025-12-01T11:00:00Z"),
            viewed(&ben, "2025-12-20T10:00:00Z"), viewed(&ben, "2026-01-10T10:00:00Z")]);
        app.post("/api/v1/events", json!({"events": events})).await.expect(200);
        let w = id_of(&app.create("/api/v1/workflows", json!({"name": "Viewed", "trigger": {"kind": "event", "type": "product.viewed"},
            "steps": [{"wait": "P1D"}, {"action": "create_task", "title": "Follow up"}, {"action": "add_tag", "tag": "viewer"}]})).await);

        let mut b = Browser::signed_in(app, "member@x.example").await;
        let page = b.get(&format!("/workflows/{w}")).await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("id=\"simulate-form\"") && !page.text.contains("id=\"simulation-result\""), "{}", page.text);
        assert!(page.text.contains("value=\"2025-10-17\"") && page.text.contains("value=\"2026-01-15\""), "the last 90 days by default");

        // December: Ana's second view falls inside her first run (a day of waiting).
        let r = b.get(&format!("/workflows/{w}?from=2025-12-01&to=2025-12-31")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let text = unescape(&r.text);
        for (figure, n) in [("sim-occurrences", 3), ("sim-runs", 2), ("sim-contacts", 2)] {
            assert!(text.contains(&format!("data-testid=\"{figure}\">{n}<")), "{figure}: {text}");
        }
        assert!(text.contains("1 Dec 2025 – 31 Dec 2025"), "{text}");
        assert!(r.text.contains("<svg") && text.contains("<th scope=\"row\">Create task</th><td>2</td>") && text.contains("<th scope=\"row\">Add tag</th><td>2</td>"), "a bar per action: {text}");
        assert_eq!(r.text.matches("data-testid=\"sim-sample\"").count(), 2);
        assert!(r.text.contains(&format!("href=\"/contacts/{ana}\"")) && r.text.contains(&format!("href=\"/contacts/{ben}\"")));
        assert!(text.contains("Guards (consent, frequency caps, quiet hours) are not applied"), "the notes: {text}");
        assert!(r.text.contains("value=\"2025-12-01\"") && r.text.contains("value=\"2025-12-31\""), "the period is kept");
        // Nothing happened for real.
        assert_eq!(app.get(&format!("/api/v1/tasks?contact_id={ana}")).await.expect(200)["data"].as_array().map(Vec::len), Some(0));
        assert_eq!(app.get(&format!("/api/v1/contacts/{ana}/automation")).await.expect(200)["runs"], json!([]));

        // Up to today stops at now; a viewer may try it too (it changes nothing).
        let mut v = Browser::signed_in(app, "viewer@x.example").await;
        let r = v.get(&format!("/workflows/{w}?from=2025-10-17&to=2026-01-15")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let text = unescape(&r.text);
        assert!(text.contains("data-testid=\"sim-occurrences\">4<") && text.contains("15 Jan 2026, 09:00 (now)"), "{text}");

        // A period that cannot be replayed is pointed out beside its field, as typed.
        let r = b.get(&format!("/workflows/{w}?from=2026-01-10&to=2026-01-01")).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("id=\"sim-to-error\"") && r.text.contains("Must be on or after the first day."), "{}", r.text);
        assert!(r.text.contains("aria-invalid=\"true\" aria-describedby=\"sim-to-error\""));
        assert!(r.text.contains("value=\"2026-01-10\"") && r.text.contains("value=\"2026-01-01\""));
        assert!(!r.text.contains("id=\"simulation-result\""));
        let r = b.get(&format!("/workflows/{w}?from=last%20week&to=2026-01-01")).await;
        assert_eq!(r.status, 400);
        assert!(r.text.contains("id=\"sim-from-error\"") && !r.text.contains("id=\"sim-to-error\""), "{}", r.text);
        let r = b.get(&format!("/workflows/{w}?from=2020-01-01&to=2026-01-01")).await;
        assert_eq!(r.status, 400);
        assert!(r.text.contains("id=\"sim-to-error\"") && r.text.contains("three years"), "{}", r.text);
        let r = b.get(&format!("/workflows/{w}?from=2026-02-01&to=2026-02-02")).await;
        assert_eq!(r.status, 400);
        assert!(r.text.contains("id=\"sim-from-error\""), "not in the future: {}", r.text);
    }

    async fn automation_pages_when_there_is_nothing_yet(app) {
        user(app, "viewer@x.example", Role::Viewer, true).await;
        let id = contact(app, json!({"first_name": "Ana"})).await;
        let mut b = Browser::signed_in(app, "viewer@x.example").await;
        let home = b.get("/").await;
        assert!(home.text.contains("id=\"nothing-coming-up\"") && !home.text.contains("data-testid=\"unread-count\""));
        assert!(b.get(&format!("/contacts/{id}")).await.text.contains("id=\"no-automation\""));
        assert!(b.get("/workflows").await.text.contains("id=\"no-workflows\""));
        assert!(b.get("/notifications").await.text.contains("id=\"no-notifications\""));
        assert_eq!(b.get("/workflows/00000000-0000-0000-0000-000000000000").await.status, 404);
        assert_eq!(b.get("/workflows/nonsense").await.status, 404);
    }
}
