//! Profiles are a pure function of the events: ingesting the same events in any order and
//! in any batches gives the same profiles as `rebuild` computes from scratch.

use std::sync::Arc;

use proptest::prelude::*;
use rapport_core::ManualClock;
use rapport_core::contact::{ContactDraft, EmailDraft};
use rapport_core::event::IngestRequest;
use rapport_core::profile::ProfileView;
use rapport_store::{DatabaseUrl, ItemStatus, Store, StoreOptions};
use serde_json::{Value, json};
use uuid::Uuid;

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z").unwrap().to_utc()
}

#[derive(Debug, Clone)]
struct Ev {
    contact: usize,
    kind: u8,
    days_ago: u32,
    sku: u8,
    amount: u32,
}

fn event_json(e: &Ev, n: usize, ids: &[Uuid]) -> Value {
    let at = (now() - chrono::Duration::hours(e.days_ago as i64 * 24 + n as i64 % 24)).to_rfc3339();
    let sku = format!("SKU-{}", e.sku);
    let category = format!("cat-{}", e.sku % 3);
    let contact = json!({"id": ids[e.contact]});
    let (kind, channel, payload) = match e.kind {
        0 => (
            "order.completed",
            "web",
            json!({"currency": "EUR", "total": e.amount as f64 / 100.0,
            "items": [{"sku": sku, "name": format!("Product {}", e.sku), "category": category, "quantity": 1, "price": e.amount as f64 / 100.0}]}),
        ),
        1 => ("order.refunded", "web", json!({"currency": "EUR", "total": (e.amount / 4) as f64 / 100.0})),
        2 => ("product.viewed", "web", json!({"sku": sku, "name": format!("Product {}", e.sku), "category": category})),
        3 => ("visit.checked_in", "store", json!({})),
        4 => ("email.opened", "email", json!({})),
        5 => ("email.clicked", "email", json!({"category": category})),
        6 => ("page.viewed", "web", json!({"url": "/x", "category": category})),
        7 => ("order.completed", "store", json!({"currency": "USD", "total": e.amount as f64 / 100.0})),
        _ => ("shop.wishlist_added", "app", json!({"sku": sku})),
    };
    json!({"id": format!("ev-{n}"), "type": kind, "channel": channel, "contact": contact, "occurred_at": at, "payload": payload})
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        (0usize..3, 0u8..9, 0u32..800, 0u8..6, 100u32..50_000).prop_map(|(contact, kind, days_ago, sku, amount)| Ev {
            contact,
            kind,
            days_ago,
            sku,
            amount,
        }),
        1..60,
    )
}

struct Db {
    _dir: tempfile::TempDir,
    store: Store,
    ids: Vec<Uuid>,
}

async fn open() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = rapport_core::profile::ProfileRules::default();
    rules.exchange_rates.insert("USD".into(), 0.9);
    let options = StoreOptions {
        clock: Arc::new(ManualClock::new(now())),
        profile_rules: Arc::new(rules),
        sqlite_readers: 1,
        ..StoreOptions::default()
    };
    let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("p.db")), options).unwrap();
    let drafts = (0..3)
        .map(|i| ContactDraft {
            first_name: Some(format!("P{i}")),
            emails: Some(vec![EmailDraft { address: format!("p{i}@example.com"), label: None, primary: None }]),
            ..ContactDraft::default()
        })
        .collect();
    let ids = store.create_contacts(drafts).await.unwrap();
    Db { _dir: dir, store, ids }
}

/// The profile without what legitimately depends on when things were computed.
async fn profiles(db: &Db) -> Vec<ProfileView> {
    let mut out = Vec::new();
    for id in &db.ids {
        let mut p = db.store.profile(*id).await.unwrap();
        p.stage_since = None;
        for i in &mut p.interests {
            // Masses summed in another order may differ in the last bits.
            i.score = (i.score * 100.0).round() / 100.0;
            i.last_at = i.last_at.map(|t| t.with_timezone(&chrono::Utc));
        }
        out.push(p);
    }
    out
}

async fn ingest(db: &Db, events: Vec<Value>) {
    let report = db.store.ingest(IngestRequest { events, create_contact: false }).await.unwrap();
    assert!(report.results.iter().all(|r| r.status == ItemStatus::Accepted), "{report:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_batching_gives_the_rebuilt_profile(evs in events(), seed in any::<u64>(), splits in prop::collection::vec(1usize..8, 1..10)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            // In order, one batch.
            let a = open().await;
            let ids_a = a.ids.clone();
            ingest(&a, evs.iter().enumerate().map(|(n, e)| event_json(e, n, &ids_a)).collect()).await;

            // Shuffled, in uneven batches.
            let b = open().await;
            let mut order: Vec<usize> = (0..evs.len()).collect();
            let mut rng = fastrand_like(seed);
            for i in (1..order.len()).rev() {
                order.swap(i, (rng() % (i as u64 + 1)) as usize);
            }
            let mut rest = &order[..];
            let mut k = 0;
            while !rest.is_empty() {
                let n = splits[k % splits.len()].min(rest.len());
                let (now_batch, tail) = rest.split_at(n);
                ingest(&b, now_batch.iter().map(|&i| event_json(&evs[i], i, &b.ids)).collect()).await;
                rest = tail;
                k += 1;
            }
            // Delivering everything again changes nothing.
            let again = b.store.ingest(IngestRequest {
                events: evs.iter().enumerate().map(|(n, e)| event_json(e, n, &b.ids)).collect(),
                create_contact: false,
            }).await.unwrap();
            assert!(again.results.iter().all(|r| r.status == ItemStatus::Duplicate));

            let mut in_order = profiles(&a).await;
            // The profiles really hold the events (not three empty profiles that trivially agree).
            let orders = evs.iter().filter(|e| e.kind == 0 || e.kind == 7).count() as i64;
            assert_eq!(in_order.iter().map(|p| p.order_count).sum::<i64>(), orders);
            let visits = evs.iter().filter(|e| e.kind == 3).count() as i64;
            assert_eq!(in_order.iter().map(|p| p.visit_count).sum::<i64>(), visits);
            let mut shuffled = profiles(&b).await;
            // Contact ids differ between the two databases.
            for (x, y) in in_order.iter_mut().zip(shuffled.iter_mut()) {
                y.contact_id = x.contact_id;
            }
            assert_eq!(in_order, shuffled);

            b.store.rebuild_profiles(|_, _| {}).await.unwrap();
            let mut rebuilt = profiles(&b).await;
            for (x, y) in in_order.iter_mut().zip(rebuilt.iter_mut()) {
                y.contact_id = x.contact_id;
            }
            assert_eq!(in_order, rebuilt);
        });
    }
}

/// A tiny deterministic generator for the shuffle (xorshift), seeded by proptest.
fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
