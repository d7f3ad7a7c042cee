//! Browser tests of the web UI (issue #8): a real headless Chromium, driven over WebDriver
//! (fantoccini talking to chromedriver), through a salesperson's day: sign in, find a contact by
//! part of a phone number, create a contact (a bad email first, shown beside its input), add a
//! note and see it on the timeline, tag, filter the list, sign out; a stored-XSS attempt that
//! must not run; and a tour of the main pages on the demo business.
//!
//! Each test starts the app in-process on a fresh SQLite database, its own chromedriver on a
//! free port and one Chromium session. They need `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (Debian's `chromium` and `chromium-driver`, installed by `scripts/browser-deps`, which
//! `scripts/test` runs first); `RAPPORT_CHROMIUM` and `RAPPORT_CHROMEDRIVER` point elsewhere.
//! Without them the tests are skipped with a note, except under `CI=true`, where they fail.
//!
//! `RAPPORT_SCREENSHOTS=1` makes the tour write its screenshots to `docs/screenshots/` (tracked
//! files, so ordinary runs leave them alone):
//!
//! ```sh
//! RAPPORT_SCREENSHOTS=1 cargo test --test browser tour
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use rapport_core::contact::ContactDraft;
use rapport_core::user::{Role, UserDraft};
use rapport_store::{Created, DatabaseUrl, Store, StoreOptions};
use rapport_web::{AppState, WebConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[path = "../support/chromium.rs"]
mod chromium;
use chromium::{Chromedriver, browser_binaries};
use tokio::task::JoinHandle;

const PASSWORD: &str = "correct horse battery staple";
/// How long a page gets to show what a step waits for.
const WAIT: Duration = Duration::from_secs(10);
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

// ---------------------------------------------------------------------------------------------
// The browser: chromedriver and a Chromium session
// ---------------------------------------------------------------------------------------------

/// Opens a Chromium session through `driver` with a viewport of `size` CSS pixels.
async fn session(driver: &Chromedriver, chromium: &Path, size: (u32, u32)) -> Browser {
    let browser = Browser { c: driver.connect(chromium, size).await, base: String::new() };
    browser.resize(size).await;
    browser
}

/// A Chromium session on the app at `base`, with the steps the tests take.
struct Browser {
    c: Client,
    base: String,
}

impl Browser {
    /// Makes the viewport `width`×`height`: the window has room for browser chrome even when
    /// headless, so it is sized by what the page sees.
    async fn resize(&self, (width, height): (u32, u32)) {
        let viewport = async || {
            let v = self.js("return [window.innerWidth, window.innerHeight];", vec![]).await;
            (v[0].as_i64().expect("width"), v[1].as_i64().expect("height"))
        };
        let want = (i64::from(width), i64::from(height));
        self.c.set_window_size(width, height).await.expect("window size");
        // The page learns its new size a moment after the window changes: poll, and size the
        // window again by the chrome measured once the page has caught up.
        let mut got = viewport().await;
        for _ in 0..40 {
            if got == want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let (w, h) = viewport().await;
            if (w, h) != got {
                got = (w, h);
                continue;
            }
            let (outer_w, outer_h) = self.c.get_window_size().await.expect("window size");
            let size = |outer: u64, want: i64, got: i64| u32::try_from(outer as i64 + want - got).expect("a window size");
            self.c.set_window_size(size(outer_w, want.0, w), size(outer_h, want.1, h)).await.expect("window size");
            got = viewport().await;
        }
        assert_eq!(got, want, "the viewport is {width}×{height}");
    }

    async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap_or_else(|e| panic!("opening {path}: {e}"));
    }

    /// The current path and query, e.g. `/contacts?tag=vip`.
    async fn path(&self) -> String {
        let url = self.c.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Where the browser is and what it shows, for a failure's message.
    async fn where_(&self) -> String {
        let text = self.c.execute("return document.body ? document.body.innerText : '';", vec![]).await.unwrap_or_default();
        let text: String = text.as_str().unwrap_or_default().chars().take(4000).collect();
        format!("on {} ({}), showing:\n{text}", self.path().await, self.title().await)
    }

    async fn title(&self) -> String {
        self.c.title().await.expect("title")
    }

    /// Runs `script` (a function body) in the page and returns its value.
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.c.execute(script, args).await.unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// Waits for the element matching `css`.
    async fn find(&self, css: &str) -> Element {
        match self.c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no {css} within {WAIT:?}: {e}\n{}", self.where_().await),
        }
    }

    async fn exists(&self, css: &str) -> bool {
        !self.c.find_all(Locator::Css(css)).await.expect("find_all").is_empty()
    }

    /// The rendered text of the element matching `css`.
    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// The rendered texts of every element matching `css`.
    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.c.find_all(Locator::Css(css)).await.expect("find_all") {
            out.push(e.text().await.expect("text"));
        }
        out
    }

    async fn value(&self, css: &str) -> String {
        self.find(css).await.prop("value").await.expect("value").unwrap_or_default()
    }

    /// Replaces what the input matching `css` holds with `text`, typed key by key.
    async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap_or_else(|e| panic!("clearing {css}: {e}"));
        input.send_keys(text).await.unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Clicks `css` and waits until the next page has loaded.
    async fn click_and_load(&self, css: &str) {
        self.js("window.__rapport_before_click = true;", vec![]).await;
        self.click(css).await;
        self.until(
            "the next page has loaded",
            "return window.__rapport_before_click === undefined && document.readyState === 'complete';",
        )
        .await;
    }

    /// Polls `script` (a function body returning a boolean) until it is true.
    async fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            // Between two pages the script may have no document to run in: try again.
            if let Ok(Value::Bool(true)) = self.c.execute(script, vec![]).await {
                return;
            }
            if Instant::now() > deadline {
                panic!("waited {WAIT:?} for {what}\n{}", self.where_().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element matching `css` shows text containing `needle`.
    async fn until_text(&self, css: &str, needle: &str) {
        let script =
            format!("var e = document.querySelector({}); return !!e && e.innerText.indexOf({}) >= 0;", json!(css), json!(needle));
        self.until(&format!("{css} to show “{needle}”"), &script).await;
    }

    /// The names in the contact list, sorted.
    async fn contact_rows(&self) -> Vec<String> {
        let mut names = self.texts("[data-testid=contact-row] .contact-link").await;
        names.sort();
        names
    }

    async fn sign_in(&self, email: &str, password: &str) {
        self.type_into("#email", email).await;
        self.type_into("#password", password).await;
        self.click_and_load("#sign-in").await;
    }

    async fn sign_out(&self) {
        self.click_and_load("#sign-out").await;
    }

    /// Whether a script planted in data ran: it would set `window.__xss`.
    async fn xss_ran(&self) -> bool {
        self.js("return typeof window.__xss !== 'undefined';", vec![]).await == json!(true)
    }

    /// Elements that markup planted in data would have created if it were not escaped. The
    /// Content-Security-Policy would stop them from running anyway: this checks the escaping.
    async fn planted_elements(&self) -> i64 {
        let script = "return document.querySelectorAll('img[src=\"x\"], img[onerror], svg[onload], [onmouseover], script:not([src])').length;";
        self.js(script, vec![]).await.as_i64().expect("a count")
    }

    async fn screenshot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot {name} is a PNG");
        if screenshots_wanted() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            std::fs::create_dir_all(&dir).expect("docs/screenshots");
            let path = dir.join(format!("{name}.png"));
            std::fs::write(&path, &png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            eprintln!("wrote {}", path.display());
        }
    }

    async fn close(self) {
        let _ = self.c.close().await;
    }
}

/// `RAPPORT_SCREENSHOTS=1`: write the tour's screenshots to docs/screenshots.
fn screenshots_wanted() -> bool {
    std::env::var("RAPPORT_SCREENSHOTS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

// ---------------------------------------------------------------------------------------------
// The app: served in-process on 127.0.0.1:0
// ---------------------------------------------------------------------------------------------

struct App {
    base: String,
    store: Option<Store>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl App {
    /// Serves the SQLite database `db` in `dir` (a fresh one when the file does not exist).
    async fn serve(dir: tempfile::TempDir, db: PathBuf) -> Self {
        let store = tokio::task::spawn_blocking(move || {
            let options = StoreOptions { sqlite_readers: 2, ..StoreOptions::default() };
            Store::open(&DatabaseUrl::Sqlite(db), options).unwrap_or_else(|e| panic!("cannot open the store: {e}"))
        })
        .await
        .expect("open task");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(store.clone(), WebConfig::default());
        let handle = tokio::spawn(rapport_web::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Self { base, store: Some(store), shutdown: Some(tx), handle: Some(handle), _dir: dir }
    }

    async fn fresh() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("rapport.db");
        Self::serve(dir, db).await
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("the store is open")
    }

    /// A user who signs in with [`PASSWORD`].
    async fn user(&self, name: &str, email: &str, role: Role) -> uuid::Uuid {
        let hash = rapport_web::password::hash(PASSWORD).expect("hash");
        let draft = UserDraft { name: Some(name.into()), email: Some(email.into()), role: Some(role), active: Some(true) };
        self.store().create_user_with_password(draft, hash).await.expect("create user").id
    }

    async fn contact(&self, body: Value) -> uuid::Uuid {
        let draft: ContactDraft = serde_json::from_value(body).expect("a contact draft");
        match self.store().create_contact(draft, None).await.expect("create contact") {
            Created::New(c) => c.id,
            Created::Replayed { .. } => panic!("a replay without an idempotency key"),
        }
    }

    /// Stops serving and closes the store off the async runtime.
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            match tokio::time::timeout(Duration::from_secs(10), h).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => panic!("the server failed: {e}"),
                Ok(Err(e)) => panic!("the server task failed: {e}"),
                Err(_) => panic!("the server did not stop within 10 s"),
            }
        }
        let store = self.store.take();
        tokio::task::spawn_blocking(move || drop(store)).await.expect("close task");
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let store = self.store.take();
        // Maybe inside the runtime, unwinding from a failed step: close on a plain thread.
        let _ = std::thread::spawn(move || drop(store)).join();
    }
}

/// The app, a chromedriver and a desktop-sized Chromium session on the app, or `None` when the
/// browser is missing (outside CI).
async fn start(app: App) -> Option<(App, Chromedriver, Browser)> {
    let (driver_path, chromium) = browser_binaries()?;
    let driver = Chromedriver::start(&driver_path).await;
    let mut browser = session(&driver, &chromium, DESKTOP).await;
    browser.base = app.base.clone();
    Some((app, driver, browser))
}

async fn finish(app: App, driver: Chromedriver, browser: Browser) {
    browser.close().await;
    drop(driver);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// The flow of issue #8, step by step, in one browser session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salespersons_day() {
    let app = App::fresh().await;
    app.user("Maria Cruz", "maria@harbourpine.example", Role::Member).await;
    let ana = app
        .contact(json!({"first_name": "Ana", "last_name": "Santos", "emails": [{"address": "ana.santos@example.com"}],
            "phones": [{"number": "+63 917 123 4567"}], "tags": ["vip"]}))
        .await;
    app.contact(json!({"first_name": "Bruno", "last_name": "Keller", "emails": [{"address": "bruno@keller.example"}],
        "phones": [{"number": "+49 30 2345 6789"}], "tags": ["newsletter"]}))
        .await;
    app.contact(
        json!({"first_name": "Chen", "last_name": "Wei", "phones": [{"number": "+1 415 555 0142"}], "tags": ["vip", "fleet"]}),
    )
    .await;
    let Some((app, driver, b)) = start(app).await else { return };

    // Signed out, a page sends the browser to sign in, and back to the page afterwards.
    b.go("/contacts").await;
    assert_eq!(b.path().await, "/login?next=%2Fcontacts");
    assert_eq!(b.title().await, "Sign in · Rapport");
    b.sign_in("maria@harbourpine.example", "not the password").await;
    assert_eq!(b.text("#login-error").await, "Wrong email or password.");
    assert_eq!(b.value("#email").await, "maria@harbourpine.example", "the email is kept");
    b.sign_in("maria@harbourpine.example", PASSWORD).await;
    assert_eq!(b.path().await, "/contacts");
    assert_eq!(b.title().await, "Contacts · Rapport");
    assert_eq!(b.contact_rows().await, ["Ana Santos", "Bruno Keller", "Chen Wei"]);
    assert!(b.text(".me .who").await.contains("Maria Cruz"));

    // The global search finds Ana by part of her phone number, typed differently from how it
    // was stored; the typeahead shows her and opens her page.
    b.type_into("#search", "917-123").await;
    b.until_text("#search-results", "Ana Santos").await;
    let hits = b.texts("[data-testid=search-result]").await;
    assert_eq!(hits.len(), 1, "only Ana has those digits: {hits:?}");
    assert!(hits[0].contains("+63 917 123 4567"), "the matching number is shown: {hits:?}");
    b.click_and_load("[data-testid=search-result] a").await;
    assert_eq!(b.path().await, format!("/contacts/{ana}"));
    assert_eq!(b.text("#contact-name").await, "Ana Santos");
    assert_eq!(b.title().await, "Ana Santos · Rapport");

    // A new contact with a bad email: the error sits beside the input, nothing is lost.
    b.go("/contacts").await;
    b.click_and_load("#new-contact").await;
    assert_eq!(b.title().await, "New contact · Rapport");
    b.type_into("#f-first_name", "Dana").await;
    b.type_into("#f-last_name", "Okafor").await;
    b.type_into("#f-emails-0-address", "dana.okafor@").await;
    b.type_into("#f-phones-0-number", "+234 803 555 0199").await;
    b.click_and_load("#save-contact").await;
    assert_eq!(b.path().await, "/contacts", "the form came back, nothing was created");
    assert!(b.text("#form-errors").await.contains("Please fix the marked fields."));
    let error = b.text("#f-emails-0-address-error").await;
    assert!(error.to_lowercase().contains("email"), "the error says what is wrong: {error}");
    let input = b.find("#f-emails-0-address").await;
    assert_eq!(input.attr("aria-invalid").await.expect("attr").as_deref(), Some("true"));
    assert_eq!(input.attr("aria-describedby").await.expect("attr").as_deref(), Some("f-emails-0-address-error"));
    assert_eq!(b.value("#f-emails-0-address").await, "dana.okafor@", "the bad email is kept to fix");
    assert_eq!(b.value("#f-first_name").await, "Dana");
    assert_eq!(b.value("#f-phones-0-number").await, "+234 803 555 0199");
    assert_eq!(b.js("return document.activeElement.id;", vec![]).await, "form-errors", "the summary has the focus");
    // The summary links to the field.
    b.click("#form-errors a[href='#f-emails-0-address']").await;
    b.type_into("#f-emails-0-address", "dana.okafor@lagosmotors.example").await;
    b.click_and_load("#save-contact").await;
    assert_eq!(b.text("#contact-name").await, "Dana Okafor");
    assert_eq!(b.text("#flash").await, "Created Dana Okafor.");
    let dana = b.path().await;
    assert!(dana.starts_with("/contacts/"), "{dana}");
    assert!(b.text("#facts").await.contains("dana.okafor@lagosmotors.example"));

    // A note, on the notes and on the timeline.
    let note = "Test drive of the hybrid estate on Friday; bring the trade-in papers.";
    b.type_into("#note-body", note).await;
    b.click_and_load("#add-note").await;
    assert_eq!(b.text("#flash").await, "Note added.");
    assert_eq!(b.texts("[data-testid=note] .note-body").await, [note]);
    let timeline = b.texts("#timeline [data-testid=timeline-item]").await;
    assert!(timeline.iter().any(|t| t.contains(note)), "the note is on the timeline: {timeline:?}");

    // A tag.
    b.type_into("#tag-input", "test-drive").await;
    b.click_and_load("#add-tag").await;
    assert_eq!(b.texts("#tags .tag").await, ["test-drive"]);

    // The list filtered by tag, then with the segment language.
    b.go("/contacts").await;
    b.find("#tag").await.select_by_value("test-drive").await.expect("select the tag");
    b.click_and_load("#apply-filters").await;
    assert!(b.path().await.contains("tag=test-drive"), "{}", b.path().await);
    assert_eq!(b.contact_rows().await, ["Dana Okafor"]);
    b.go("/contacts").await;
    b.type_into("#filter", "tag = \"vip\" and phone").await;
    b.click_and_load("#apply-filters").await;
    let problem = b.text("#filter-error").await;
    assert!(problem.contains("Line 1, column"), "a mistake is pointed at: {problem}");
    assert_eq!(b.find("#filter").await.attr("aria-invalid").await.expect("attr").as_deref(), Some("true"));
    b.type_into("#filter", "tag = \"vip\"").await;
    b.click_and_load("#apply-filters").await;
    assert!(!b.exists("#filter-error").await);
    assert_eq!(b.contact_rows().await, ["Ana Santos", "Chen Wei"]);
    b.type_into("#filter", "tag = \"vip\" and not tag = \"fleet\"").await;
    b.click_and_load("#apply-filters").await;
    assert_eq!(b.contact_rows().await, ["Ana Santos"]);

    // The segment editor counts who matches while the filter is typed.
    b.go("/segments/new").await;
    b.type_into("#segment-filter", "tag = \"vip\"").await;
    b.until_text("#preview", "2 people match right now").await;
    b.type_into("#segment-filter", "tag = ").await;
    b.until_text("#preview", "Line 1, column").await;

    // Signing out ends the session: a protected page sends the browser to sign in again.
    b.sign_out().await;
    assert_eq!(b.path().await, "/login");
    assert!(b.exists("#login-form").await);
    b.go(&dana).await;
    assert!(b.path().await.starts_with("/login?next="), "{}", b.path().await);
    assert!(b.exists("#login-form").await);
    b.go("/").await;
    assert_eq!(b.path().await, "/login");

    finish(app, driver, b).await;
}

/// Markup typed into a name, a note and a tag is shown as text on every page that shows them,
/// and never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_markup_is_shown_as_text_and_never_runs() {
    let app = App::fresh().await;
    app.user("Maria Cruz", "maria@harbourpine.example", Role::Member).await;
    let Some((app, driver, b)) = start(app).await else { return };
    b.go("/login").await;
    b.sign_in("maria@harbourpine.example", PASSWORD).await;
    assert_eq!(b.title().await, "Today · Rapport");

    let first = "<img src=x onerror=\"window.__xss=1\">";
    let last = "<script>window.__xss=1</script>";
    let name = format!("{first} {last}");
    let note =
        "<script>window.__xss=2</script><img src=x onerror=\"window.__xss=2\"> <b onmouseover=\"window.__xss=2\">hover</b>";
    let tag = "<svg onload=\"window.__xss=3\">";

    // Typed in through the forms, as an attacker with an account would.
    b.go("/contacts/new").await;
    b.type_into("#f-first_name", first).await;
    b.type_into("#f-last_name", last).await;
    b.type_into("#f-emails-0-address", "xss@attacker.example").await;
    b.click_and_load("#save-contact").await;
    assert_eq!(b.text("#contact-name").await, name, "the name is shown as typed");
    let id = b.path().await;
    b.type_into("#note-body", note).await;
    b.click_and_load("#add-note").await;
    b.type_into("#tag-input", tag).await;
    b.click_and_load("#add-tag").await;
    b.type_into("#tag-input", "xss").await;
    b.click_and_load("#add-tag").await;

    for path in [
        id.clone(),
        format!("{id}/edit"),
        format!("{id}/timeline"),
        "/contacts".to_string(),
        "/contacts?tag=xss".to_string(),
        "/search?q=script".to_string(),
        "/".to_string(),
    ] {
        b.go(&path).await;
        b.find("main").await;
        assert!(!b.xss_ran().await, "a planted script ran on {path}");
        assert_eq!(b.planted_elements().await, 0, "planted markup became elements on {path}");
    }

    // Shown literally where it belongs.
    b.go(&id).await;
    assert_eq!(b.text("#contact-name").await, name);
    assert_eq!(b.title().await, format!("{name} · Rapport"));
    assert_eq!(b.texts("[data-testid=note] .note-body").await, [note]);
    assert!(b.texts("#timeline [data-testid=timeline-item]").await.iter().any(|t| t.contains(note)), "the note on the timeline");
    let mut tags = b.texts("#tags .tag").await;
    tags.sort();
    assert_eq!(tags, [tag, "xss"]);
    b.go(&format!("{id}/edit")).await;
    assert_eq!(b.value("#f-first_name").await, first);
    assert_eq!(b.value("#f-last_name").await, last);
    b.go("/contacts").await;
    assert_eq!(b.contact_rows().await, std::slice::from_ref(&name));

    // The typeahead and the live segment count put names in with text, not markup.
    b.type_into("#search", "script").await;
    b.until_text("#search-results", &name).await;
    assert!(!b.xss_ran().await, "the typeahead ran a planted script");
    assert_eq!(b.planted_elements().await, 0, "the typeahead made elements of planted markup");
    b.go("/segments/new").await;
    b.type_into("#segment-filter", "tag = \"xss\"").await;
    b.until_text("#preview", &name).await;
    assert!(!b.xss_ran().await, "the segment preview ran a planted script");
    assert_eq!(b.planted_elements().await, 0, "the segment preview made elements of planted markup");

    finish(app, driver, b).await;
}

/// The main pages on the demo business, each checked and photographed (written to
/// docs/screenshots only with `RAPPORT_SCREENSHOTS=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tour_of_the_main_pages_on_the_demo_business() {
    if browser_binaries().is_none() {
        return;
    }
    // The real demo, seeded by the real binary into a database this test then serves.
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(["demo", "--no-serve", "--contacts", "300", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run rapport demo");
    assert!(
        out.status.success(),
        "rapport demo failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let app = App::serve(dir, db).await;
    let owner = app
        .store()
        .find_user_by_email(rapport_core::EmailAddress::parse("owner@harbourpine.example").expect("email"))
        .await
        .expect("find the owner")
        .expect("the demo has its owner");
    app.store().set_user_password(owner.id, Some(rapport_web::password::hash(PASSWORD).expect("hash"))).await.expect("password");
    let Some((app, driver, b)) = start(app).await else { return };

    b.go("/login").await;
    b.type_into("#email", "owner@harbourpine.example").await;
    b.screenshot("login").await;
    b.type_into("#password", PASSWORD).await;
    b.click_and_load("#sign-in").await;
    assert_eq!(b.title().await, "Today · Rapport");
    b.find("svg").await;
    b.screenshot("dashboard").await;

    b.go("/contacts").await;
    assert_eq!(b.title().await, "Contacts · Rapport");
    assert_eq!(b.texts("[data-testid=contact-row]").await.len(), 50, "a full first page");
    b.screenshot("contacts").await;

    // A gold customer with a history: their page is the 360° view.
    b.go("/contacts?filter=value_tier+%3D+%22gold%22+and+count%28order.completed%2C+last+365d%29+%3E%3D+2&sort=display_name")
        .await;
    let first = b.find("[data-testid=contact-row] .contact-link").await;
    let name = first.text().await.expect("name");
    b.click_and_load("[data-testid=contact-row] .contact-link").await;
    assert_eq!(b.text("#contact-name").await, name);
    assert!(b.texts("#timeline [data-testid=timeline-item]").await.len() >= 5, "a history on the timeline");
    let contact = b.path().await;
    // Tall enough to show the notes and the start of the timeline.
    b.resize((DESKTOP.0, 1500)).await;
    b.screenshot("contact").await;
    b.resize(DESKTOP).await;

    b.go("/segments/new").await;
    b.type_into("#segment-name", "Gold customers gone quiet").await;
    b.type_into("#segment-filter", "value_tier in (\"gold\", \"vip\") and no visit.checked_in in last 60d").await;
    b.until(
        "the live count",
        "var p = document.getElementById('preview'); return /\\d+ (people match|person matches) right now/.test(p.textContent);",
    )
    .await;
    b.screenshot("segment-editor").await;

    b.go("/segments").await;
    assert_eq!(b.title().await, "Segments · Rapport");
    b.screenshot("segments").await;

    // The demo's starter workflows, on, with the runs they started this morning.
    b.go("/workflows").await;
    assert_eq!(b.title().await, "Workflows · Rapport");
    assert!(!b.texts("[data-testid=workflow-row]").await.is_empty(), "the starter workflows are listed");
    assert!(b.exists("[data-testid=workflow-switch]").await, "the owner may switch them");

    // The same contact on a phone: one column, nothing cut off sideways.
    b.resize(PHONE).await;
    b.go(&contact).await;
    assert_eq!(b.text("#contact-name").await, name);
    let overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await;
    assert_eq!(overflow, json!(0), "the page fits the phone's width");
    b.screenshot("contact-phone").await;
    for path in ["/", "/workflows"] {
        b.go(path).await;
        let overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await;
        assert_eq!(overflow, json!(0), "{path} fits the phone's width");
    }

    finish(app, driver, b).await;
}
