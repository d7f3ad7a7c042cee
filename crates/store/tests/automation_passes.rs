//! How automation copes when a step fails part-way or a workflow cannot react to ingested
//! events, and how it treats several events of one person handled together. The failures
//! happen inside the database: a trigger put into the SQLite file beside the store.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rapport_core::ManualClock;
use rapport_core::contact::ContactDraft;
use rapport_core::event::IngestRequest;
use rapport_store::{Created, DatabaseUrl, ItemStatus, Store, StoreOptions};
use serde_json::{Value, json};
use uuid::Uuid;

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z").unwrap().to_utc()
}

struct Db {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    store: Store,
}

impl Db {
    fn open() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(start()));
        let options = StoreOptions { clock: clock.clone(), sqlite_readers: 1, ..StoreOptions::default() };
        let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("a.db")), options).unwrap();
        Db { dir, clock, store }
    }

    /// Runs SQL on the store's file through a connection of its own.
    fn sql(&self, sql: &str) {
        rusqlite::Connection::open(self.dir.path().join("a.db")).unwrap().execute_batch(sql).unwrap();
    }

    /// Makes inserts into `table` for the contact named Boom fail, until `DROP TRIGGER fail_boom`.
    fn fail_for_boom(&self, table: &str) {
        self.sql(&format!(
            "CREATE TRIGGER fail_boom BEFORE INSERT ON {table} \
             WHEN (SELECT first_name FROM contacts WHERE id = NEW.contact_id) = 'Boom' \
             BEGIN SELECT RAISE(ABORT, 'boom'); END;"
        ));
    }

    async fn contacts(&self, names: &[&str]) -> Vec<Uuid> {
        let drafts = names.iter().map(|n| ContactDraft { first_name: Some(n.to_string()), ..ContactDraft::default() }).collect();
        self.store.create_contacts(drafts).await.unwrap()
    }

    async fn workflow(&self, doc: Value) -> Uuid {
        let Created::New(w) = self.store.create_workflow(doc, None, None).await.unwrap() else {
            unreachable!("no idempotency key")
        };
        self.store.set_workflow_enabled(w.id, true).await.unwrap();
        w.id
    }

    async fn ingest(&self, events: Vec<Value>) {
        let report = self.store.ingest(IngestRequest { events, create_contact: false }).await.unwrap();
        assert!(report.results.iter().all(|r| r.status == ItemStatus::Accepted), "{report:?}");
    }

    async fn runs(&self, id: Uuid) -> Vec<rapport_store::automation::RunView> {
        self.store.contact_automation(id).await.unwrap().runs
    }

    async fn tags(&self, id: Uuid) -> Vec<String> {
        self.store.get_contact(id).await.unwrap().tags
    }
}

fn viewed(n: usize, contact: Uuid, at: DateTime<Utc>) -> Value {
    json!({"id": format!("view-{n}"), "type": "product.viewed", "channel": "web", "contact": {"id": contact},
        "occurred_at": at.to_rfc3339(), "payload": {"sku": "SKU-1", "name": "Trail shoe", "category": "shoes"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_is_retried_later_and_the_others_in_its_pass_go_on() {
    let db = Db::open();
    let ids = db.contacts(&["Ann", "Boom", "Cy"]).await;
    db.workflow(json!({"name": "Tag viewers", "trigger": {"kind": "event", "type": "product.viewed"},
        "steps": [{"action": "add_tag", "tag": "Viewed"}]}))
        .await;
    // Tagging Boom fails inside the database, as a full disk or a broken row would.
    db.fail_for_boom("contact_tags");
    let at = start() - Duration::hours(1);
    db.ingest(ids.iter().enumerate().map(|(n, id)| viewed(n, *id, at)).collect()).await;
    db.store.automation_until_idle(10).await.unwrap();
    for id in &ids {
        assert_eq!(db.runs(*id).await.len(), 1);
    }

    assert_eq!(db.tags(ids[0]).await, ["Viewed"]);
    assert_eq!(db.tags(ids[2]).await, ["Viewed"]);
    assert!(db.tags(ids[1]).await.is_empty());
    let boom = db.store.contact_automation(ids[1]).await.unwrap();
    let run = &boom.runs[0];
    assert_eq!(run.status, "ready", "{run:?}");
    let retry = run.steps.iter().find(|s| s.action == "error").expect("the failure is in the run's history");
    assert_eq!(retry.outcome, "retry");
    assert!(retry.detail.contains("trying again in 5 minutes"), "{}", retry.detail);
    assert_eq!(run.next.as_ref().and_then(|n| n.at), Some(start() + Duration::minutes(5)));

    // Once the cause is gone, the next try after five minutes goes through.
    db.sql("DROP TRIGGER fail_boom;");
    db.clock.advance(Duration::minutes(4));
    db.store.automation_until_idle(10).await.unwrap();
    assert!(db.tags(ids[1]).await.is_empty(), "not before its time");
    db.clock.advance(Duration::minutes(1));
    db.store.automation_until_idle(10).await.unwrap();
    assert_eq!(db.tags(ids[1]).await, ["Viewed"]);
    let run = &db.store.contact_automation(ids[1]).await.unwrap().runs[0];
    assert_eq!(run.status, "done", "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_person_in_one_pass_start_end_and_wake_runs_in_order() {
    let db = Db::open();
    let ids = db.contacts(&["Dee", "Eve"]).await;
    // Waits for an order for a day; a chat message ends it.
    db.workflow(json!({"name": "Viewed, not bought", "trigger": {"kind": "event", "type": "product.viewed"},
        "exit_when": ["chat.message"],
        "steps": [{"wait": "P1D", "until_event": "order.completed"}, {"action": "add_tag", "tag": "Bought after viewing"}]}))
        .await;
    // Minutes from the start of the clock: the first runs start then, and only what happens
    // after a run started concerns it.
    let t = |minutes: i64| start() + Duration::minutes(minutes);
    let order = |n: usize, contact: Uuid, at: DateTime<Utc>| {
        json!({"id": format!("order-{n}"), "type": "order.completed", "channel": "web", "contact": {"id": contact},
            "occurred_at": at.to_rfc3339(), "payload": {"currency": "EUR", "total": 10.0, "items": []}})
    };
    // Two views of one person in one pass start one run (one in flight at a time).
    db.ingest(vec![viewed(1, ids[0], t(-60)), viewed(2, ids[0], t(-59)), viewed(3, ids[1], t(-60))]).await;
    db.store.automation_until_idle(10).await.unwrap();
    assert_eq!(db.runs(ids[1]).await.len(), 1);
    let dee = db.runs(ids[0]).await;
    assert_eq!(dee.len(), 1);
    assert_eq!(dee[0].status, "waiting");

    // In one pass: Dee orders (ending the wait, so the tag follows) and views again (a new run
    // may not start while the first is in flight); Eve's order comes in the same pass.
    db.clock.advance(Duration::minutes(10));
    db.ingest(vec![order(1, ids[0], t(5)), viewed(4, ids[0], t(6)), order(2, ids[1], t(5))]).await;
    db.store.automation_until_idle(10).await.unwrap();
    for id in &ids {
        assert_eq!(db.tags(*id).await, ["Bought after viewing"]);
        let runs = db.store.contact_automation(*id).await.unwrap().runs;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].status, "done");
    }

    // Now the run is over, a view and a chat message in one pass: the view starts a run and the
    // later chat message ends it.
    db.clock.advance(Duration::minutes(10));
    let chat = json!({"id": "chat-1", "type": "chat.message", "channel": "chat", "contact": {"id": ids[0]},
        "occurred_at": (t(20) + Duration::seconds(1)).to_rfc3339(),
        "payload": {"direction": "inbound", "text": "Not now, thanks"}});
    db.ingest(vec![viewed(5, ids[0], t(19)), chat]).await;
    db.store.automation_until_idle(10).await.unwrap();
    let runs = db.runs(ids[0]).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let latest = runs.iter().max_by_key(|r| r.started_at).unwrap();
    assert_eq!(latest.status, "exited", "{latest:?}");
    assert!(latest.end_reason.as_deref().unwrap_or_default().contains("chat.message"), "{latest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_starts_runs_itself_and_events_the_workflows_cannot_react_to_wait_without_holding_up_others() {
    let db = Db::open();
    let ids = db.contacts(&["Fay", "Boom", "Gus"]).await;
    db.workflow(json!({"name": "Tag viewers", "trigger": {"kind": "event", "type": "product.viewed"},
        "steps": [{"action": "add_tag", "tag": "Viewed"}]}))
        .await;
    let at = start() - Duration::hours(1);
    // On SQLite the run exists as soon as ingest answers, before any pass.
    db.ingest(vec![viewed(1, ids[0], at)]).await;
    let fay = db.runs(ids[0]).await;
    assert_eq!(fay.len(), 1);
    assert_eq!(fay[0].status, "ready");
    assert_eq!(fay[0].cause["event_type"], "product.viewed");

    // Starting Boom's run fails inside the database. The batch's events are stored all the
    // same and left to the worker, whose pass starts Gus's run and keeps Boom's events, in
    // order, until the cause is gone.
    db.fail_for_boom("workflow_runs");
    db.ingest(vec![viewed(2, ids[1], at), viewed(3, ids[1], at + Duration::minutes(1)), viewed(4, ids[2], at)]).await;
    assert!(db.runs(ids[1]).await.is_empty());
    assert!(db.runs(ids[2]).await.is_empty(), "the batch's reaction was rolled back whole");
    let views = rapport_store::TimelineFilter { types: vec!["product.viewed".into()], ..Default::default() };
    let timeline = db.store.timeline(ids[1], views, None, None).await.unwrap();
    assert_eq!(timeline.data.len(), 2, "the events were stored");

    let report = db.store.automation_until_idle(3).await.unwrap();
    assert_eq!(report.runs_started, 1, "{report:?}");
    assert_eq!(db.tags(ids[2]).await, ["Viewed"]);
    assert_eq!(db.tags(ids[0]).await, ["Viewed"]);
    assert!(db.runs(ids[1]).await.is_empty());
    assert!(db.store.automation_pending().await.unwrap(), "Boom's events wait");

    db.sql("DROP TRIGGER fail_boom;");
    let report = db.store.automation_until_idle(10).await.unwrap();
    assert_eq!(report.runs_started, 1, "one run for Boom's two views: {report:?}");
    assert_eq!(db.tags(ids[1]).await, ["Viewed"]);
    assert!(!db.store.automation_pending().await.unwrap());
}
