//! Crash safety of automation (issue #6): the real `rapport serve` binary is killed with
//! SIGKILL at random moments while workflow runs are taking steps, and started again; in the
//! end every run has done each of its steps exactly once — no task, tag or points entry lost
//! or doubled, and every webhook call made (a call cut off by the kill may be made again, with
//! the same `Idempotency-Key`). Then two instances on one PostgreSQL share the work.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rapport_core::ManualClock;
use serde_json::{Value, json};

use crate::automation::receiver;
use crate::{Backend, TEST_WEBHOOK_SECRET, create_pg_schema, drop_pg_schema, in_ci, pg_connect, pg_url, send};

const KEY: &str = "rk_crash_test_admin_key_0123456789";
const PEOPLE: usize = 120;

/// One `rapport serve` process.
struct Proc {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Proc {
    async fn start(dir: &std::path::Path, database_url: &str) -> Proc {
        Self::start_with(dir, database_url, &[]).await
    }

    /// `rapport serve` with further arguments, e.g. `--smtp-url`.
    async fn start_with(dir: &std::path::Path, database_url: &str, args: &[&str]) -> Proc {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(env!("CARGO_BIN_EXE_rapport"))
            .args(["serve", "--clock", "manual", "--clock-start", "2026-01-01T00:00:00Z", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("RAPPORT_DATABASE_URL", database_url)
            .env("RAPPORT_BOOTSTRAP_KEY", KEY)
            .env("RUST_LOG", "error")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start rapport serve");
        let p = Proc {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
        };
        for _ in 0..400 {
            if p.client.get(format!("{}/readyz", p.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rapport serve did not become ready");
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> crate::Resp {
        let mut r = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        send(r).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(r.status < 300, "POST {path}: {} {}", r.status, r.text);
        r.json
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await.expect(200)
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database for the binary: a SQLite file, or a fresh PostgreSQL database (the binary works
/// in the default schema). `None` when PostgreSQL is unavailable outside CI.
fn database(backend: Backend, dir: &std::path::Path) -> Option<(String, Option<String>)> {
    match backend {
        Backend::Sqlite => Some((format!("sqlite://{}", dir.join("crash.db").display()), None)),
        Backend::Postgres => {
            let mut admin = match pg_connect(&pg_url()) {
                Ok(c) => c,
                Err(e) if !in_ci() => {
                    eprintln!("note: skipping the PostgreSQL crash test: {e}");
                    return None;
                }
                Err(e) => panic!("PostgreSQL is unreachable and CI=true: {e}"),
            };
            let name = format!("crash_{}", uuid::Uuid::new_v4().simple());
            admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
            let base = pg_url();
            let url = match base.rsplit_once('/') {
                Some((head, _)) => format!("{head}/{name}"),
                None => panic!("cannot place a database name in {base}"),
            };
            Some((url, Some(name)))
        }
    }
}

fn drop_database(name: &str) {
    if let Ok(mut admin) = pg_connect(&pg_url()) {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

async fn kill_nine_at_random_moments(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let Some((url, pg_db)) = tokio::task::spawn_blocking(move || database(backend, &path)).await.unwrap() else { return };
    let (hook, received) = receiver().await;
    std::fs::write(
        dir.path().join("rapport.toml"),
        format!("[webhooks]\nallow_hosts = [\"127.0.0.1\"]\n[webhooks.secrets]\ntest = \"{TEST_WEBHOOK_SECRET}\"\n"),
    )
    .unwrap();

    let mut server = Proc::start(dir.path(), &url).await;
    let mut people = Vec::new();
    for i in 0..PEOPLE {
        let c = server
            .post("/api/v1/contacts", json!({"first_name": format!("P{i}"), "birthday": "--01-02", "time_zone": "UTC"}))
            .await;
        people.push(c["id"].as_str().unwrap().to_string());
    }
    let w = server
        .post(
            "/api/v1/workflows",
            json!({"name": "Birthday", "trigger": {"kind": "date", "field": "birthday", "at": "09:00"},
                "steps": [{"action": "create_task", "title": "Call {{first_name}}"},
                          {"action": "award_points", "points": 10},
                          {"action": "webhook", "url": hook, "secret_ref": "test"},
                          {"wait": "PT12H"},
                          {"action": "add_tag", "tag": "greeted"},
                          {"action": "create_task", "title": "Did {{first_name}} answer?"}]}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    server.post(&format!("/api/v1/workflows/{id}/enable"), json!({})).await;

    // Move time in steps across the birthday and the wait; kill the server while each move's
    // work is under way, at a random moment, and start it again.
    let mut rng = fastrand::Rng::with_seed(7);
    let mut kills = 0;
    for step in ["2026-01-02T09:00:00Z", "2026-01-02T12:00:00Z", "2026-01-02T21:00:00Z", "2026-01-03T09:00:00Z"] {
        for _ in 0..2 {
            let base = server.base.clone();
            let mover = tokio::spawn(async move {
                let c = reqwest::Client::new();
                let _ = c
                    .post(format!("{base}/api/v1/admin/clock"))
                    .bearer_auth(KEY)
                    .json(&json!({"set": step}))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
            });
            tokio::time::sleep(Duration::from_millis(rng.u64(0..60))).await;
            server.kill();
            kills += 1;
            let _ = mover.await;
            server = Proc::start(dir.path(), &url).await;
            // The restarted process's clock starts over: put it back where the move went.
        }
        let state = server.post("/api/v1/admin/clock", json!({"set": step})).await;
        assert_eq!(state["pending"], false, "{state}");
    }
    let state = server.post("/api/v1/admin/clock", json!({"set": "2026-01-04T00:00:00Z"})).await;
    assert_eq!(state["pending"], false, "{state}");

    // Every person: one run, done, each step once.
    for p in &people {
        let view = server.get(&format!("/api/v1/contacts/{p}/automation")).await;
        let runs = view["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "{view}");
        assert_eq!(runs[0]["status"], "done", "{view}");
        let steps = runs[0]["steps"].as_array().unwrap();
        let count =
            |action: &str, outcome: &str| steps.iter().filter(|s| s["action"] == action && s["outcome"] == outcome).count();
        assert_eq!(count("create_task", "done"), 2, "{view}");
        assert_eq!(count("award_points", "done"), 1, "{view}");
        assert_eq!(count("add_tag", "done"), 1, "{view}");
        let tasks = server.get(&format!("/api/v1/tasks?contact_id={p}")).await;
        assert_eq!(tasks["data"].as_array().unwrap().len(), 2, "{tasks}");
        let c = server.get(&format!("/api/v1/contacts/{p}")).await;
        assert_eq!(c["tags"], json!(["greeted"]));
    }
    // Every webhook call arrived; repeats carry the key of the first.
    let got = received.lock().unwrap().clone();
    let mut keys: HashMap<String, usize> = HashMap::new();
    for (head, _) in &got {
        let key = head
            .lines()
            .find_map(|l| {
                l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("idempotency-key")).map(|(_, v)| v.trim().to_string())
            })
            .expect("an Idempotency-Key");
        *keys.entry(key).or_default() += 1;
    }
    assert_eq!(keys.len(), PEOPLE, "one key per run: {keys:?}");
    let repeats: usize = keys.values().map(|n| n - 1).sum();
    assert!(repeats <= kills, "at most one repeat per kill, got {repeats} repeats for {kills} kills");
    server.kill();
    if let Some(name) = pg_db {
        tokio::task::spawn_blocking(move || drop_database(&name)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loses_and_repeats_nothing_sqlite() {
    kill_nine_at_random_moments(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loses_and_repeats_nothing_postgres() {
    kill_nine_at_random_moments(Backend::Postgres).await;
}

/// Two instances (two stores, each with its own automation worker) on one PostgreSQL schema,
/// sharing one clock, working through the same due runs at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_work_without_doing_anything_twice() {
    let url = pg_url();
    let u = url.clone();
    let Some(schema) = tokio::task::spawn_blocking(move || create_pg_schema(&u)).await.unwrap() else { return };
    let clock = Arc::new(ManualClock::new(chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc()));
    let open = |c: Arc<ManualClock>| {
        crate::open_store_with(rapport_store::DatabaseUrl::Postgres(url.clone()), Some(schema.clone()), c, 4)
    };
    let a = open(clock.clone()).await;
    let b = open(clock.clone()).await;
    let mut ids = Vec::new();
    let drafts: Vec<rapport_core::contact::ContactDraft> = (0..300)
        .map(|i| {
            serde_json::from_value(json!({"first_name": format!("P{i}"), "birthday": "--01-02", "time_zone": "UTC"})).unwrap()
        })
        .collect();
    ids.extend(a.create_contacts(drafts).await.unwrap());
    let w = a
        .create_workflow(
            json!({"name": "Birthday", "trigger": {"kind": "date", "field": "birthday", "at": "09:00"},
                "steps": [{"action": "create_task", "title": "Call {{first_name}}"}, {"action": "award_points", "points": 5},
                          {"wait": "PT1H"}, {"action": "add_tag", "tag": "greeted"}]}),
            None,
            None,
        )
        .await
        .unwrap();
    let rapport_store::Created::New(w) = w else { panic!("a new workflow") };
    a.set_workflow_enabled(w.id, true).await.unwrap();
    for at in ["2026-01-01T00:00:00Z", "2026-01-02T09:00:00Z", "2026-01-02T10:00:00Z"] {
        clock.set(chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc());
        // Both instances at once, several rounds, as their workers would.
        for _ in 0..3 {
            let (ra, rb) = tokio::join!(a.automation_until_idle(100), b.automation_until_idle(100));
            ra.unwrap();
            rb.unwrap();
        }
        assert!(!a.automation_pending().await.unwrap());
    }
    let check = {
        let url = url.clone();
        let schema = schema.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = pg_connect(&url).unwrap();
            c.batch_execute(&format!("SET search_path TO {schema}")).unwrap();
            let one = |c: &mut postgres::Client, sql: &str| -> i64 { c.query_one(sql, &[]).unwrap().get(0) };
            (
                one(&mut c, "SELECT count(*) FROM workflow_runs WHERE status = 'done'"),
                one(&mut c, "SELECT count(*) FROM tasks"),
                one(&mut c, "SELECT count(*) FROM points_ledger"),
                one(&mut c, "SELECT count(*) FROM contact_tags"),
                one(&mut c, "SELECT count(*) FROM workflow_run_steps WHERE action = 'create_task'"),
            )
        })
    };
    let (runs, tasks, points, tags, task_steps) = check.await.unwrap();
    assert_eq!((runs, tasks, points, tags, task_steps), (300, 300, 300, 300, 300));
    drop((a, b));
    tokio::task::spawn_blocking(move || drop_pg_schema(&pg_url(), &schema)).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The email sender killed mid-delivery (issue #7)
// ---------------------------------------------------------------------------------------------

/// Recipients of the killed sender's messages.
const RECIPIENTS: usize = 200;

/// The value of a header in a raw message (first occurrence, unfolded lines only).
fn header(raw: &str, name: &str) -> Option<String> {
    raw.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
}

/// `rapport serve` sends 200 birthday emails through an SMTP server the test runs and is
/// killed with SIGKILL while it sends, several times, each time started again (with the clock
/// moved past the claims' two-minute lease, so that what the dead process had claimed is
/// claimed again). In the end every person has received their message.
///
/// What "exactly once" can mean here: a message goes out, the relay answers 250, and only then
/// does Rapport write that it was sent. A kill between the two leaves a message the relay has
/// but the outbox calls unsent; after the lease it is sent again, with the same Message-ID (so
/// a receiving system can tell it is the same message, though the sink here, like most mail
/// servers, does not drop it). Each session of the sender takes its next message only once the
/// last one's outcome is written, and one delivery pass runs at a time, so a kill can leave at
/// most one such message per session: the pool's 4 (the default limits). The test asserts
/// exactly that: no message lost, no person with two different messages, every repeat carrying
/// its first copy's Message-ID, and at most 4 repeats per kill.
async fn killed_sender_sends_each_message_once(backend: Backend) {
    use rapport_channels::email::sink::{Behaviour, SmtpSink};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let Some((url, pg_db)) = tokio::task::spawn_blocking(move || database(backend, &path)).await.unwrap() else { return };
    let sink = SmtpSink::start(Behaviour::accept()).await.expect("smtp sink");
    let smtp = sink.url();
    let args = ["--smtp-url", smtp.as_str()];
    let sessions = rapport_channels::email::SendLimits::default().pool_size as usize;

    let mut server = Proc::start_with(dir.path(), &url, &args).await;
    server
        .post(
            "/api/v1/templates",
            json!({"name": "birthday", "subject": "Happy birthday, {{ contact.first_name }}!",
                   "text": "Hi {{ contact.first_name }}, all the best from all of us."}),
        )
        .await;
    let mut people = Vec::new();
    for i in 0..RECIPIENTS {
        // Ten domains, so that the per-domain limit (10/s) is not what paces the sender.
        let c = server
            .post(
                "/api/v1/contacts",
                json!({"first_name": format!("P{i}"), "birthday": "--01-02", "time_zone": "UTC",
                       "emails": [{"address": format!("p{i}@d{}.example", i % 10)}]}),
            )
            .await;
        people.push(c["id"].as_str().unwrap().to_string());
    }
    let w = server
        .post(
            "/api/v1/workflows",
            json!({"name": "Birthday email", "trigger": {"kind": "date", "field": "birthday", "at": "09:00"},
                   "steps": [{"action": "send_message", "channel": "email", "template": "birthday"}]}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    server.post(&format!("/api/v1/workflows/{id}/enable"), json!({})).await;

    // 09:00 starts the runs, which queue the messages; the sender works through them at its
    // default 50 a second, about 4 s for all. Each later step is past the lease of everything
    // the killed process had claimed.
    let mut rng = fastrand::Rng::with_seed(11);
    let mut kills = 0;
    let mut killed_mid_delivery = 0;
    for at in ["2026-01-02T09:00:00Z", "2026-01-02T09:03:00Z", "2026-01-02T09:06:00Z", "2026-01-02T09:09:00Z"] {
        let base = server.base.clone();
        let mover = tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(format!("{base}/api/v1/admin/clock"))
                .bearer_auth(KEY)
                .json(&json!({"set": at}))
                .timeout(Duration::from_secs(60))
                .send()
                .await;
        });
        tokio::time::sleep(Duration::from_millis(rng.u64(300..1500))).await;
        let received = sink.accepted() as usize;
        server.kill();
        kills += 1;
        if received > 0 && received < RECIPIENTS {
            killed_mid_delivery += 1;
        }
        let _ = mover.await;
        server = Proc::start_with(dir.path(), &url, &args).await;
    }
    let state = server.post("/api/v1/admin/clock", json!({"set": "2026-01-02T09:12:00Z"})).await;
    assert_eq!(state["pending"], false, "{state}");
    assert!(killed_mid_delivery > 0, "no kill came while messages were being sent; the test proves nothing");

    // What the relay received: one message per person, repeats only of a message cut off by a
    // kill, with the same Message-ID.
    let got = sink.messages();
    let mut by_outbox_id: HashMap<String, (String, String, usize)> = HashMap::new();
    for m in &got {
        let raw = String::from_utf8_lossy(&m.data);
        let outbox_id = header(&raw, "X-Rapport-Message").expect("an X-Rapport-Message header");
        let message_id = header(&raw, "Message-ID").expect("a Message-ID");
        assert_eq!(m.rcpt_to.len(), 1);
        let entry = by_outbox_id.entry(outbox_id).or_insert_with(|| (message_id.clone(), m.rcpt_to[0].clone(), 0));
        assert_eq!((&entry.0, &entry.1), (&message_id, &m.rcpt_to[0]), "a repeat is the same message to the same person");
        entry.2 += 1;
    }
    let mut recipients: Vec<&str> = by_outbox_id.values().map(|(_, to, _)| to.as_str()).collect();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!(recipients.len(), RECIPIENTS, "everyone received a message");
    assert_eq!(by_outbox_id.len(), RECIPIENTS, "nobody received two different messages");
    let repeats = got.len() - RECIPIENTS;
    assert!(
        repeats <= kills * sessions,
        "at most one repeat per session per kill: {repeats} repeats after {kills} kills with {sessions} sessions"
    );
    eprintln!("{kills} kills ({killed_mid_delivery} mid-delivery): {} messages received, {repeats} repeats", got.len());

    // And the outbox agrees: each person's run queued one message and recorded it sent, once.
    for p in &people {
        let view = server.get(&format!("/api/v1/contacts/{p}/automation")).await;
        let runs = view["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "{view}");
        let outcomes: Vec<&str> = runs[0]["steps"].as_array().unwrap().iter().filter_map(|s| s["outcome"].as_str()).collect();
        assert_eq!(outcomes, ["queued", "sent"], "{view}");
    }
    server.kill();
    if let Some(name) = pg_db {
        tokio::task::spawn_blocking(move || drop_database(&name)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_email_sender_loses_nothing_and_repeats_only_in_flight_sqlite() {
    killed_sender_sends_each_message_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_email_sender_loses_nothing_and_repeats_only_in_flight_postgres() {
    killed_sender_sends_each_message_once(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// A campaign killed mid-send (issue #7)
// ---------------------------------------------------------------------------------------------

/// People in the killed campaign's segment, and its holdout.
const AUDIENCE: usize = 1_500;
const HOLDOUT_PERCENT: usize = 10;

/// A campaign to 1,500 people (a tenth held out) is sent while `rapport serve` is killed with
/// SIGKILL again and again: once while it chooses the audience and queues its batches, then
/// while the messages go out. Each start finds it where the database says it was. In the end
/// every chosen person has exactly one message (a repeat only of a message cut off by a kill,
/// with its Message-ID), the holdout has none, and no state the campaign was ever seen in after
/// a restart claimed "finished" while anyone was still waiting.
async fn killed_campaign_reaches_everyone_once(backend: Backend) {
    use rapport_channels::email::sink::{Behaviour, SmtpSink};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let Some((url, pg_db)) = tokio::task::spawn_blocking(move || database(backend, &path)).await.unwrap() else { return };
    let sink = SmtpSink::start(Behaviour::accept()).await.expect("smtp sink");
    let smtp = sink.url();
    let args = ["--smtp-url", smtp.as_str()];
    // Fast enough to finish in seconds, slow enough that the kills land mid-delivery.
    std::fs::write(dir.path().join("rapport.toml"), "[email]\nper_second = 250\nper_domain_per_second = 0\n").unwrap();
    let sessions = rapport_channels::email::SendLimits::default().pool_size as usize;

    let mut server = Proc::start_with(dir.path(), &url, &args).await;
    let t = server
        .post(
            "/api/v1/templates",
            json!({"name": "winter", "subject": "Winter hours, {{ contact.first_name }}",
                   "text": "Hi {{ contact.first_name }}, we open late on Thursdays now.\n{{ unsubscribe_url }}"}),
        )
        .await;
    let events: Vec<Value> = (0..AUDIENCE)
        .map(|i| {
            json!({"type": "form.submitted", "channel": "web", "payload": {},
                   "contact": {"email": format!("r{i}@d{}.example", i % 7), "first_name": format!("R{i}")}})
        })
        .collect();
    let ingest = server.post("/api/v1/events", json!({"create_contact": true, "events": events})).await;
    assert!(ingest["results"].as_array().unwrap().iter().all(|r| r["status"] == "accepted"), "{ingest}");
    let segment = server.post("/api/v1/segments", json!({"name": "Signed up", "filter": "count(form.submitted) >= 1"})).await;
    let campaign = server
        .post(
            "/api/v1/campaigns",
            json!({"name": "Winter hours", "template_id": t["id"], "segment_id": segment["id"],
                   "holdout_percent": HOLDOUT_PERCENT}),
        )
        .await;
    let id = campaign["id"].as_str().unwrap().to_string();
    let expected = AUDIENCE - AUDIENCE * HOLDOUT_PERCENT / 100;

    // The distinct people the relay has had a message for.
    let reached = |sink: &SmtpSink| {
        let mut to: Vec<String> = sink.messages().into_iter().flat_map(|m| m.rcpt_to).collect();
        to.sort_unstable();
        to.dedup();
        to.len()
    };
    // A campaign seen "finished" has reached everyone.
    let check = |status: &Value, sink: &SmtpSink| {
        if status["status"] == "finished" {
            assert_eq!(reached(sink), expected, "finished while people were still waiting: {status}");
        }
    };

    // Where the campaign was after each restart, for the log: people still to queue, messages
    // waiting, messages sent.
    let progress = |s: &Value| format!("{}/{}/{}", s["pending"], s["queued"], s["sent"]);
    let mut seen = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    server.post(&format!("/api/v1/campaigns/{id}/send"), json!({})).await;
    // The first kills come while the audience is chosen and the batches are queued: each
    // start goes on with it at once.
    let mut kills = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(rng.u64(5..80))).await;
        server.kill();
        kills += 1;
        server = Proc::start_with(dir.path(), &url, &args).await;
        check(&server.get(&format!("/api/v1/campaigns/{id}")).await, &sink);
        seen.push(progress(&server.get(&format!("/api/v1/campaigns/{id}/stats")).await));
    }
    server.kill();
    kills += 1;
    let mut killed_mid_delivery = 0;
    for at in ["2026-01-01T00:03:00Z", "2026-01-01T00:06:00Z", "2026-01-01T00:09:00Z", "2026-01-01T00:12:00Z"] {
        server = Proc::start_with(dir.path(), &url, &args).await;
        check(&server.get(&format!("/api/v1/campaigns/{id}")).await, &sink);
        seen.push(progress(&server.get(&format!("/api/v1/campaigns/{id}/stats")).await));
        let base = server.base.clone();
        let mover = tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(format!("{base}/api/v1/admin/clock"))
                .bearer_auth(KEY)
                .json(&json!({"set": at}))
                .timeout(Duration::from_secs(60))
                .send()
                .await;
        });
        tokio::time::sleep(Duration::from_millis(rng.u64(500..2000))).await;
        let received = reached(&sink);
        server.kill();
        kills += 1;
        if received > 0 && received < expected {
            killed_mid_delivery += 1;
        }
        let _ = mover.await;
    }
    server = Proc::start_with(dir.path(), &url, &args).await;
    check(&server.get(&format!("/api/v1/campaigns/{id}")).await, &sink);
    let state = server.post("/api/v1/admin/clock", json!({"set": "2026-01-01T00:15:00Z"})).await;
    assert_eq!(state["pending"], false, "{state}");
    assert!(killed_mid_delivery > 0, "no kill came while messages were being sent; the test proves nothing");

    let stats = server.get(&format!("/api/v1/campaigns/{id}/stats")).await;
    assert_eq!(stats["status"], "finished", "{stats}");
    assert_eq!(stats["audience"], AUDIENCE, "{stats}");
    assert_eq!(stats["holdout"], AUDIENCE * HOLDOUT_PERCENT / 100, "{stats}");
    assert_eq!(stats["sent"], expected, "{stats}");
    assert_eq!(stats["skipped"], 0, "{stats}");

    let got = sink.messages();
    let mut by_outbox_id: HashMap<String, (String, String)> = HashMap::new();
    for m in &got {
        let raw = String::from_utf8_lossy(&m.data);
        let outbox_id = header(&raw, "X-Rapport-Message").expect("an X-Rapport-Message header");
        let message_id = header(&raw, "Message-ID").expect("a Message-ID");
        assert_eq!(m.rcpt_to.len(), 1);
        let entry = by_outbox_id.entry(outbox_id).or_insert_with(|| (message_id.clone(), m.rcpt_to[0].clone()));
        assert_eq!((&entry.0, &entry.1), (&message_id, &m.rcpt_to[0]), "a repeat is the same message to the same person");
    }
    assert_eq!(by_outbox_id.len(), expected, "one message per chosen person");
    assert_eq!(reached(&sink), expected, "nobody received two different messages");
    let repeats = got.len() - expected;
    assert!(
        repeats <= kills * sessions,
        "at most one repeat per session per kill: {repeats} repeats after {kills} kills with {sessions} sessions"
    );
    eprintln!(
        "{kills} kills ({killed_mid_delivery} mid-delivery): {} messages received, {repeats} repeats; \
         pending/queued/sent after each restart: {}",
        got.len(),
        seen.join(" ")
    );
    server.kill();
    if let Some(name) = pg_db {
        tokio::task::spawn_blocking(move || drop_database(&name)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_campaign_reaches_everyone_once_and_never_finishes_early_sqlite() {
    killed_campaign_reaches_everyone_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_campaign_reaches_everyone_once_and_never_finishes_early_postgres() {
    killed_campaign_reaches_everyone_once(Backend::Postgres).await;
}

/// Workflow email queued while no SMTP relay was configured waits in the outbox, marked
/// unsendable with the reason, and goes out once Rapport is started with a relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_email_waiting_for_a_relay_goes_out_once_one_is_configured() {
    use rapport_channels::email::sink::{Behaviour, SmtpSink};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("relay.db").display());
    let server = Proc::start(dir.path(), &url).await;
    server.post("/api/v1/admin/clock", json!({"set": "2026-01-01T12:00:00Z"})).await;
    server
        .post("/api/v1/templates", json!({"name": "welcome", "subject": "Welcome, {{ contact.first_name }}", "text": "Hello!"}))
        .await;
    let w = server
        .post(
            "/api/v1/workflows",
            json!({"name": "Welcome", "trigger": {"kind": "event", "type": "form.submitted"},
                   "steps": [{"action": "send_message", "channel": "email", "template": "welcome"}]}),
        )
        .await;
    server.post(&format!("/api/v1/workflows/{}/enable", w["id"].as_str().unwrap()), json!({})).await;
    let c = server.post("/api/v1/contacts", json!({"first_name": "Wen", "emails": [{"address": "wen@example.com"}]})).await;
    let id = c["id"].as_str().unwrap().to_string();
    server
        .post(
            "/api/v1/events",
            json!({"events": [{"type": "form.submitted", "channel": "web", "contact": {"id": id}, "payload": {}}]}),
        )
        .await;
    server.post("/api/v1/admin/clock", json!({"advance": "PT1M"})).await;
    let view = server.get(&format!("/api/v1/contacts/{id}/automation")).await;
    let step = &view["runs"][0]["steps"][0];
    assert_eq!(step["outcome"], "unsendable", "{view}");
    server.kill();

    let sink = SmtpSink::start(Behaviour::accept()).await.expect("smtp sink");
    let smtp = sink.url();
    let server = Proc::start_with(dir.path(), &url, &["--smtp-url", smtp.as_str()]).await;
    server.post("/api/v1/admin/clock", json!({"advance": "PT1M"})).await;
    let got = sink.messages();
    assert_eq!(got.len(), 1, "the waiting message went out");
    assert_eq!(got[0].rcpt_to, ["wen@example.com"]);
    server.kill();
}
