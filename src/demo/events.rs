//! A year of event history for the demo business: what Harbour & Pine's website, workshop,
//! parts counter, newsletter and phones would have recorded about its people, so that profiles,
//! value tiers and lifecycle stages have something real to add up.
//!
//! Each contact gets a story that fits what the contact plan says about them:
//!
//! - **leads** browse vehicles on the website for a few weeks, ask for a test drive or a
//!   trade-in appraisal, get a call back from sales, maybe come in for a test drive — and have
//!   not bought (yet);
//! - **regulars** bring their car to the workshop every five to seven months (a check-in, a
//!   service invoice, often a reminder text before and a feedback survey after) and buy the odd
//!   accessory or part;
//! - **occasional** buyers order once or twice a year, online or at the parts counter;
//! - **new buyers** bought a vehicle in the last few months, after browsing and a test drive;
//! - **fleet** buyers (people at the companies) book vans and pickups in every few weeks;
//! - some **drift away** (their orders stop months ago: at risk), some were last seen a year ago
//!   (lost), and a few **come back** after a long silence (reactivated).
//!
//! On top of that: the monthly newsletter (sent, opened, clicked), calls logged by the staff,
//! support requests, a few refunds and social mentions. The history spans 13 months ending at the
//! store's clock, so customers whose last order is just over a year old come out as lost.
//!
//! Prices are in EUR, the default base currency of profiles, so that revenue, value tiers and
//! RFM scores count every order. Everything follows from the seed and the clock: the same seed
//! gives the same events, at the same distance from "now".

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, NaiveTime, SecondsFormat, Utc};
use fastrand::Rng;
use rapport_core::event::IngestRequest;
use rapport_store::{ItemStatus, Store};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{Duty, Person, Progress, STAFF};

type Time = DateTime<Utc>;

/// Events per ingest call.
const INGEST_BATCH: usize = 5000;
/// Days of history: a year, and a month more so that some customers' last order is just over
/// a year old (lost).
const HISTORY_DAYS: i64 = 395;
/// Mixed into the demo seed, so the history has its own random stream and adding to it never
/// changes the contacts.
const SEED_SALT: u64 = 0x6576_656e_7473;
/// Profiles read to count lifecycle stages (all of them in a demo of this size or smaller).
const STAGE_SAMPLE: usize = 5000;
/// Profile reads in flight while counting stages.
const STAGE_CONCURRENCY: usize = 8;

const SITE: &str = "https://harbourpine.example";
const WEB_SHOP: &str = "shop.harbourpine.example";

// ---------------------------------------------------------------------------------------------
// The catalogue
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Product {
    sku: &'static str,
    name: &'static str,
    category: &'static str,
    /// Unit price in euro cents.
    cents: i64,
}

const fn product(sku: &'static str, name: &'static str, category: &'static str, cents: i64) -> Product {
    Product { sku, name, category, cents }
}

impl Product {
    fn mention(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("sku".into(), json!(self.sku));
        m.insert("name".into(), json!(self.name));
        m.insert("category".into(), json!(self.category));
        m
    }

    fn line(&self, quantity: i64) -> Value {
        json!({"sku": self.sku, "name": self.name, "category": self.category, "quantity": quantity, "price": major(self.cents)})
    }
}

/// Vehicle categories use the spelling of the contacts' "vehicle interest" field, lowercased.
const VEHICLES: &[Product] = &[
    product("VEH-RAV4H-26", "2026 Toyota RAV4 Hybrid XLE", "hybrid", 3_849_000),
    product("VEH-PRIUS-26", "2026 Toyota Prius LE", "hybrid", 2_995_000),
    product("VEH-CAMRY-26", "2026 Toyota Camry SE", "sedan", 3_129_000),
    product("VEH-COROLLA-26", "2026 Toyota Corolla LE", "sedan", 2_399_000),
    product("VEH-CIVIC-26", "2026 Honda Civic Sport", "sedan", 2_745_000),
    product("VEH-TACOMA-26", "2026 Toyota Tacoma TRD Sport", "pickup", 4_190_000),
    product("VEH-F150-26", "2026 Ford F-150 XLT", "pickup", 5_240_000),
    product("VEH-MAVERICK-26", "2026 Ford Maverick XLT Hybrid", "pickup", 3_180_000),
    product("VEH-CRV-26", "2026 Honda CR-V EX", "suv", 3_475_000),
    product("VEH-TELLURIDE-26", "2026 Kia Telluride S", "suv", 4_210_000),
    product("VEH-OUTBACK-26", "2026 Subaru Outback Premium", "suv", 3_360_000),
    product("VEH-CX5-26", "2026 Mazda CX-5 Preferred", "suv", 3_150_000),
    product("VEH-ODYSSEY-26", "2026 Honda Odyssey EX-L", "minivan", 4_499_000),
    product("VEH-SIENNA-26", "2026 Toyota Sienna XLE", "minivan", 4_650_000),
    product("VEH-MACHE-26", "2026 Ford Mustang Mach-E Premium", "ev", 4_999_000),
    product("VEH-IONIQ5-26", "2026 Hyundai Ioniq 5 SEL", "ev", 4_630_000),
    product("VEH-EV6-26", "2026 Kia EV6 Wind", "ev", 4_870_000),
    product("VEH-ID4-26", "2026 Volkswagen ID.4 Pro", "ev", 4_520_000),
    product("VEH-MX5-26", "2026 Mazda MX-5 Miata Club", "sports", 3_625_000),
    product("VEH-GR86-26", "2026 Toyota GR86 Premium", "sports", 3_390_000),
    product("VEH-TRANSIT-26", "2026 Ford Transit 250 Cargo Van", "van", 5_180_000),
    product("VEH-ETRANSIT-26", "2026 Ford E-Transit Cargo Van", "van", 5_590_000),
    product("VEH-PROMASTER-26", "2026 Ram ProMaster 2500", "van", 4_860_000),
    product("USED-CIVIC-21", "Certified 2021 Honda Civic EX", "sedan", 2_140_000),
    product("USED-LEAF-22", "Certified 2022 Nissan Leaf SV", "ev", 1_890_000),
    product("USED-TUCSON-22", "Certified 2022 Hyundai Tucson SEL", "suv", 2_480_000),
    product("USED-F150-20", "Certified 2020 Ford F-150 Lariat", "pickup", 3_350_000),
    product("USED-PRIUS-21", "Certified 2021 Toyota Prius LE", "hybrid", 2_230_000),
];

/// Workshop work; the first two are the routine services.
const SERVICES: &[Product] = &[
    product("SVC-MINOR", "Minor service: oil, filter and 21-point check", "service", 18_900),
    product("SVC-MAJOR", "Major service (60,000 miles)", "service", 64_900),
    product("SVC-BRAKES", "Front brake pads and rotors", "service", 42_800),
    product("SVC-AC", "Air conditioning service", "service", 14_900),
    product("SVC-ALIGN", "Four-wheel alignment", "service", 11_900),
    product("SVC-SMOG", "Smog check", "service", 6_900),
    product("SVC-DIAG", "Check-engine light diagnosis", "service", 12_500),
    product("SVC-DETAIL", "Full interior and exterior detail", "service", 22_900),
    product("SVC-ROTATE", "Tire rotation and balance", "service", 5_900),
];
const EV_CHECK: Product = product("SVC-EVCHECK", "EV battery health check", "service", 12_900);

const PARTS: &[Product] = &[
    product("PRT-WIPERS", "Wiper blade set", "parts", 3_990),
    product("PRT-BATT12", "12V battery", "parts", 18_900),
    product("PRT-CABINFLT", "Cabin air filter", "parts", 3_250),
    product("PRT-AIRFLT", "Engine air filter", "parts", 2_890),
    product("PRT-PLUGS", "Spark plug set", "parts", 6_400),
    product("PRT-BULBS", "LED headlight bulbs (pair)", "parts", 4_400),
    product("PRT-COOLANT", "Long-life coolant, 1 gallon", "parts", 2_490),
];

const TIRES: &[Product] = &[
    product("TIR-AS-17", "All-season tire 225/65 R17", "tires", 14_900),
    product("TIR-AS-18", "All-season tire 235/60 R18", "tires", 16_900),
    product("TIR-AT-17", "All-terrain tire 265/70 R17", "tires", 21_500),
    product("TIR-EV-19", "Low-noise EV tire 235/55 R19", "tires", 21_900),
];

const ACCESSORIES: &[Product] = &[
    product("ACC-MATS", "All-weather floor mats", "accessories", 12_900),
    product("ACC-LINER", "Cargo liner", "accessories", 11_900),
    product("ACC-RACK", "Roof rack crossbars", "accessories", 34_900),
    product("ACC-BIKE", "Hitch bike carrier", "accessories", 28_900),
    product("ACC-HITCH", "Tow hitch, installed", "accessories", 54_900),
    product("ACC-DASHCAM", "Front and rear dash cam", "accessories", 21_900),
    product("ACC-MOUNT", "Phone mount", "accessories", 3_990),
    product("ACC-CHILDSEAT", "Convertible child seat", "accessories", 27_900),
    product("ACC-MUDFLAPS", "Mud flaps", "accessories", 8_900),
    product("ACC-TINT", "Window tint, installed", "accessories", 39_900),
    product("CHG-WALLBOX", "Home wallbox charger, 11 kW", "charging", 89_900),
    product("CHG-CABLE", "Portable charging cable", "charging", 34_900),
    product("CHG-INSTALL", "Wallbox installation", "charging", 65_000),
];

const WARRANTY: Product = product("WAR-EXT3", "Extended warranty, 3 years", "warranty", 149_000);
const MAINTENANCE_PLAN: Product = product("WAR-PREPAID", "Prepaid maintenance plan, 2 years", "warranty", 89_000);

/// (subject, featured product sku) of the monthly newsletter, newest first.
const ISSUES: &[(&str, &str)] = &[
    ("Spring service special: 15% off brakes", "SVC-BRAKES"),
    ("Meet the 2026 Ioniq 5", "VEH-IONIQ5-26"),
    ("Road-trip ready? Roof racks and bike carriers", "ACC-RACK"),
    ("Charging at home, made simple", "CHG-WALLBOX"),
    ("Certified pre-owned: this month's picks", "USED-TUCSON-22"),
    ("New year, new tires", "TIR-AS-17"),
    ("Holiday hours and gift ideas", "ACC-DASHCAM"),
    ("Winter check: is your battery ready?", "PRT-BATT12"),
    ("The F-150 is back in stock", "VEH-F150-26"),
    ("Back to school: child seats fitted free", "ACC-CHILDSEAT"),
    ("Summer A/C check for €149", "SVC-AC"),
    ("Test drive the Mach-E this weekend", "VEH-MACHE-26"),
    ("Fleet desk: vans for every trade", "VEH-TRANSIT-26"),
];

fn all_products() -> impl Iterator<Item = &'static Product> {
    VEHICLES.iter().chain(SERVICES).chain(PARTS).chain(TIRES).chain(ACCESSORIES).chain([&EV_CHECK, &WARRANTY, &MAINTENANCE_PLAN])
}

fn find(sku: &str) -> Product {
    all_products().find(|p| p.sku == sku).copied().unwrap_or(SERVICES[0])
}

fn major(cents: i64) -> f64 {
    cents as f64 / 100.0
}

// ---------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------

/// One event to ingest; the contact is an index into the demo's contacts.
struct Planned {
    at: Time,
    contact: usize,
    kind: &'static str,
    channel: &'static str,
    payload: Map<String, Value>,
    /// Refer to the person by email (as the newsletter platform does) instead of by id.
    by_email: bool,
    /// An order, by its key: orders get sender ids numbered in time order once all are known.
    order: Option<u32>,
    /// A refund of the order with this key.
    refund_of: Option<u32>,
    id: Option<String>,
}

/// The demo's event history, in time order.
pub(super) struct History {
    events: Vec<Planned>,
    /// Each contact's first email address, for the events sent by email.
    emails: Vec<Option<String>>,
}

impl History {
    /// The history of `people` for the year up to `now`.
    pub(super) fn new(people: &[Person], seed: u64, now: Time) -> History {
        let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
        let mut g = Gen { rng: Rng::with_seed(seed ^ SEED_SALT), now, midnight, events: Vec::new(), orders: 0 };
        for (c, p) in people.iter().enumerate() {
            g.person(c, p);
        }
        let mut events = g.events;
        // Stable: same-time events of one person keep the order they were made in.
        events.sort_by_key(|e| (e.at, e.contact));

        // Orders are numbered in the order they happened, like a shop's order numbers.
        let mut number = vec![0u32; g.orders as usize];
        let mut next = 0;
        for e in events.iter_mut() {
            if let Some(k) = e.order {
                next += 1;
                number[k as usize] = next;
                e.id = Some(format!("hp-order-{next:06}"));
            }
        }
        for e in events.iter_mut() {
            if let Some(k) = e.refund_of {
                let order = format!("hp-order-{:06}", number[k as usize]);
                e.id = Some(format!("hp-refund-{:06}", number[k as usize]));
                e.payload.insert("order_id".into(), json!(order));
            }
        }
        History { events, emails: people.iter().map(|p| p.email.clone()).collect() }
    }

    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    fn to_json(&self, e: &Planned, ids: &[Uuid]) -> Value {
        let contact = match (&self.emails[e.contact], e.by_email) {
            (Some(email), true) => json!({"email": email}),
            _ => json!({"id": ids[e.contact]}),
        };
        let mut obj = Map::new();
        if let Some(id) = &e.id {
            obj.insert("id".into(), json!(id));
        }
        obj.insert("type".into(), json!(e.kind));
        obj.insert("contact".into(), contact);
        obj.insert("occurred_at".into(), json!(e.at.to_rfc3339_opts(SecondsFormat::Secs, true)));
        obj.insert("channel".into(), json!(e.channel));
        obj.insert("payload".into(), Value::Object(e.payload.clone()));
        Value::Object(obj)
    }

    /// Ingests the history in time order, [`INGEST_BATCH`] events per call; `ids` are the
    /// contacts' ids in plan order. Any event the store does not accept is an error.
    pub(super) async fn ingest(&self, store: &Store, ids: &[Uuid], progress: &mut Progress<'_>) -> anyhow::Result<()> {
        for (b, chunk) in self.events.chunks(INGEST_BATCH).enumerate() {
            let events: Vec<Value> = chunk.iter().map(|e| self.to_json(e, ids)).collect();
            let from = b * INGEST_BATCH;
            let report = store
                .ingest(IngestRequest { events, create_contact: false })
                .await
                .with_context(|| format!("ingesting demo events {from}..{}", from + chunk.len()))?;
            if report.results.len() != chunk.len() {
                bail!("the store answered {} results for {} demo events", report.results.len(), chunk.len());
            }
            let bad: Vec<String> = report
                .results
                .iter()
                .filter(|r| !matches!(r.status, ItemStatus::Accepted))
                .take(5)
                .map(|r| {
                    let errors: Vec<String> = r.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                    format!(
                        "{:?} {} [{}] in {}",
                        r.status,
                        r.id.as_deref().unwrap_or("-"),
                        errors.join("; "),
                        self.to_json(&chunk[r.index], ids)
                    )
                })
                .collect();
            if !bad.is_empty() {
                let n = report.results.iter().filter(|r| !matches!(r.status, ItemStatus::Accepted)).count();
                bail!("the store did not accept {n} of demo events {from}..{}:\n{}", from + chunk.len(), bad.join("\n"));
            }
            progress.advance(chunk.len() as u64);
        }
        Ok(())
    }
}

/// Reads the profiles of the contacts (an even sample of [`STAGE_SAMPLE`] when there are more)
/// and counts them by lifecycle stage, most common first.
pub(super) async fn count_stages(store: &Store, ids: &[Uuid]) -> anyhow::Result<Vec<(String, usize)>> {
    let step = ids.len().div_ceil(STAGE_SAMPLE).max(1);
    let sample: Vec<Uuid> = ids.iter().step_by(step).copied().collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut set = JoinSet::new();
    for chunk in sample.chunks(sample.len().div_ceil(STAGE_CONCURRENCY).max(1)) {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        set.spawn(async move {
            let mut stages = Vec::with_capacity(chunk.len());
            for id in chunk {
                let view = store.profile(id).await.with_context(|| format!("reading the profile of {id}"))?;
                stages.push(view.lifecycle_stage.as_str().to_string());
            }
            anyhow::Ok(stages)
        });
    }
    while let Some(joined) = set.join_next().await {
        for s in joined.context("a profile reader failed to run")?? {
            *counts.entry(s).or_default() += 1;
        }
    }
    let mut out: Vec<(String, usize)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Generating it
// ---------------------------------------------------------------------------------------------

/// How a person relates to the business over the year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persona {
    Lead,
    Regular,
    Occasional,
    NewBuyer,
    Fleet,
    Drifting,
    Lost,
    Reactivated,
}

/// What a person's routine orders are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Habit {
    /// Workshop visits.
    Service,
    /// Fleet servicing, several vehicles at a time.
    Fleet,
    /// Accessories and parts, online or at the counter.
    Shop,
}

struct Gen {
    rng: Rng,
    now: Time,
    /// 00:00 UTC today.
    midnight: Time,
    events: Vec<Planned>,
    /// Order keys handed out.
    orders: u32,
}

fn staff(duty: Duty) -> impl Iterator<Item = &'static str> {
    STAFF.iter().filter(move |s| s.duty == duty).map(|s| s.name)
}

impl Gen {
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.usize(..items.len())]
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.u32(..total.max(1));
        for (item, w) in items {
            if x < *w {
                return *item;
            }
            x -= w;
        }
        items[items.len() - 1].0
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.u32(..100) < percent
    }

    /// A moment `days_ago` days back, in opening hours (8 am to 6 pm in Oakland).
    fn day(&mut self, days_ago: i64) -> Time {
        self.midnight - Duration::days(days_ago) + Duration::seconds(15 * 3600 + self.rng.i64(0..10 * 3600))
    }

    /// A moment `days_ago` days back at any waking hour (people browse in the evening too).
    fn any_time(&mut self, days_ago: i64) -> Time {
        self.midnight - Duration::days(days_ago) + Duration::seconds(14 * 3600 + self.rng.i64(0..16 * 3600))
    }

    fn minutes(&mut self, min: i64, max: i64) -> Duration {
        Duration::seconds(self.rng.i64(min * 60..max * 60))
    }

    /// Adds an event unless it would lie in the future or before the history begins; returns
    /// its index.
    fn push(&mut self, contact: usize, at: Time, kind: &'static str, channel: &'static str, payload: Value) -> Option<usize> {
        if at > self.now || at < self.midnight - Duration::days(HISTORY_DAYS) {
            return None;
        }
        let payload = match payload {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let by_email = kind.starts_with("email.");
        self.events.push(Planned { at, contact, kind, channel, payload, by_email, order: None, refund_of: None, id: None });
        Some(self.events.len() - 1)
    }

    /// Adds an order of `lines` (product, quantity); returns its key and total in cents.
    fn order(
        &mut self,
        contact: usize,
        at: Time,
        channel: &'static str,
        store: &str,
        lines: &[(Product, i64)],
    ) -> Option<(u32, i64)> {
        let total: i64 = lines.iter().map(|(p, q)| p.cents * q).sum();
        let items: Vec<Value> = lines.iter().map(|(p, q)| p.line(*q)).collect();
        let payload = json!({"currency": "EUR", "total": major(total), "store": store, "items": items});
        let i = self.push(contact, at, "order.completed", channel, payload)?;
        let key = self.orders;
        self.orders += 1;
        self.events[i].order = Some(key);
        Some((key, total))
    }

    fn refund(&mut self, contact: usize, at: Time, order: u32, cents: i64, reason: &str) {
        let payload = json!({"currency": "EUR", "total": major(cents), "reason": reason});
        if let Some(i) = self.push(contact, at, "order.refunded", "store", payload) {
            self.events[i].refund_of = Some(order);
        }
    }

    fn persona(&mut self, p: &Person) -> Persona {
        use Persona::*;
        if p.lead {
            return Lead;
        }
        if p.lapsed {
            return Lost;
        }
        let table: &[(Persona, u32)] = if p.fleet {
            &[(Fleet, 80), (Drifting, 10), (Reactivated, 5), (Lost, 5)]
        } else if p.service {
            &[(Regular, 60), (Drifting, 12), (Reactivated, 6), (Lost, 4), (Occasional, 8), (NewBuyer, 10)]
        } else if p.abroad {
            &[(Occasional, 50), (Regular, 10), (Drifting, 20), (Lost, 20)]
        } else {
            &[(Occasional, 30), (NewBuyer, 22), (Regular, 22), (Drifting, 11), (Reactivated, 6), (Lost, 9)]
        };
        self.weighted(table)
    }

    /// A vehicle the person would look at: usually one of their stated interests.
    fn vehicle_for(&mut self, p: &Person) -> Product {
        if !p.interests.is_empty() && self.chance(75) {
            let want = self.pick(&p.interests);
            let matching: Vec<Product> = VEHICLES.iter().filter(|v| v.category.eq_ignore_ascii_case(want)).copied().collect();
            if !matching.is_empty() {
                return self.pick(&matching);
            }
        }
        self.pick(VEHICLES)
    }

    fn shop_item(&mut self) -> Product {
        match self.rng.u8(..10) {
            0..=5 => self.pick(ACCESSORIES),
            6..=8 => self.pick(PARTS),
            _ => self.pick(TIRES),
        }
    }

    // -- one person ----------------------------------------------------------------------------

    fn person(&mut self, c: usize, p: &Person) {
        let persona = self.persona(p);
        let habit = if p.fleet {
            Habit::Fleet
        } else if p.service {
            Habit::Service
        } else {
            Habit::Shop
        };
        // Days ago the person first appears (newsletters start then).
        let mut known_since = HISTORY_DAYS;
        match persona {
            Persona::Lead => known_since = self.lead(c, p),
            Persona::Regular => {
                let gap = if habit == Habit::Service { self.rng.i64(125..185) } else { self.rng.i64(70..120) };
                // Some also stop by the parts counter or the web shop halfway between visits.
                let between = habit == Habit::Service && self.chance(40);
                let mut d = self.rng.i64(HISTORY_DAYS - 40..HISTORY_DAYS);
                while d > 2 {
                    self.routine(c, p, habit, d);
                    let next = d - gap - self.rng.i64(-15..16);
                    if between && (d + next) / 2 > 2 {
                        let mid = (d + next) / 2 + self.rng.i64(-10..11);
                        self.shop_order(c, p, mid);
                    }
                    d = next;
                }
            }
            Persona::Occasional => {
                let mut d = self.rng.i64(3..HISTORY_DAYS - 30);
                for _ in 0..self.weighted(&[(1, 60), (2, 30), (3, 10)]) {
                    if d < 2 {
                        break;
                    }
                    if habit == Habit::Service && self.chance(50) {
                        self.service_visit(c, p, d);
                    } else {
                        self.shop_order(c, p, d);
                    }
                    d -= self.rng.i64(40..120);
                }
            }
            Persona::NewBuyer => {
                let d = self.rng.i64(4..130);
                self.vehicle_purchase(c, p, d);
                if self.chance(35) {
                    let after = d - self.rng.i64(3..30);
                    if after > 0 {
                        self.shop_order(c, p, after);
                    }
                }
                if habit == Habit::Service && d > 100 && self.chance(50) {
                    self.service_visit(c, p, d - 90);
                }
                known_since = d + self.rng.i64(10..60);
            }
            Persona::Fleet => {
                let gap = self.rng.i64(25..50);
                let mut d = self.rng.i64(HISTORY_DAYS - 40..HISTORY_DAYS);
                while d > 2 {
                    self.fleet_visit(c, p, d);
                    d -= gap + self.rng.i64(-7..8);
                }
                if self.chance(15) {
                    let d = self.rng.i64(5..HISTORY_DAYS - 30);
                    self.fleet_purchase(c, d);
                }
            }
            Persona::Drifting => {
                let gap = self.rng.i64(40..100);
                let stop = self.rng.i64((gap * 8 / 5).max(150)..330);
                let mut d = self.rng.i64(HISTORY_DAYS - 20..HISTORY_DAYS);
                let mut any = false;
                while d > stop || !any {
                    self.routine(c, p, habit, d.max(stop));
                    any = true;
                    d -= gap + self.rng.i64(-10..11);
                }
                if self.chance(50) {
                    let d = self.rng.i64(30..stop - 20);
                    self.retention_call(c, d);
                }
            }
            Persona::Lost => {
                let n = self.weighted(&[(1, 50), (2, 35), (3, 15)]);
                for _ in 0..n {
                    let d = self.rng.i64(368..HISTORY_DAYS);
                    self.routine(c, p, habit, d);
                }
                if self.chance(30) {
                    let d = self.rng.i64(60..300);
                    self.retention_call(c, d);
                }
            }
            Persona::Reactivated => {
                let mut d = self.rng.i64(330..HISTORY_DAYS);
                for _ in 0..self.weighted(&[(1, 30), (2, 40), (3, 30)]) {
                    self.routine(c, p, habit, d);
                    d -= self.rng.i64(30..60);
                }
                if self.chance(60) {
                    let d = self.rng.i64(120..220);
                    self.retention_call(c, d);
                }
                let back = self.rng.i64(3..60);
                // Back with a workshop visit, an order, or (now and then) a new car.
                if self.chance(15) {
                    self.vehicle_purchase(c, p, back);
                } else {
                    self.routine(c, p, habit, back);
                }
            }
        }
        if p.vip && persona != Persona::Lead && persona != Persona::Lost && self.chance(40) {
            let d = self.rng.i64(10..HISTORY_DAYS - 30);
            self.vehicle_purchase(c, p, d);
        }
        self.everyday(c, p, persona, known_since);
        self.newsletter(c, p, persona, known_since);
    }

    fn routine(&mut self, c: usize, p: &Person, habit: Habit, d: i64) {
        match habit {
            Habit::Service => self.service_visit(c, p, d),
            Habit::Fleet => self.fleet_visit(c, p, d),
            Habit::Shop => self.shop_order(c, p, d),
        }
    }

    /// A lead's few weeks of interest; returns the day (days ago) it began.
    fn lead(&mut self, c: usize, p: &Person) -> i64 {
        let start = self.rng.i64(2..HISTORY_DAYS - 5);
        let span = self.rng.i64(5..60).min(start - 1).max(1);
        let focus = self.vehicle_for(p);
        let day_in = |g: &mut Gen| start - g.rng.i64(0..=span);
        for _ in 0..self.rng.usize(3..15) {
            let v = if self.chance(55) { focus } else { self.vehicle_for(p) };
            let d = day_in(self);
            let at = self.any_time(d);
            self.push(c, at, "product.viewed", "web", Value::Object(v.mention()));
        }
        for _ in 0..self.rng.usize(2..12) {
            let d = day_in(self);
            let at = self.any_time(d);
            let page = self.vehicle_page(focus);
            self.push(c, at, "page.viewed", "web", page);
        }
        if p.test_drive || self.chance(65) {
            let d = day_in(self);
            let at = self.any_time(d);
            let form = if p.test_drive {
                "test_drive"
            } else {
                self.weighted(&[("test_drive", 50), ("trade_in_appraisal", 20), ("finance_quote", 20), ("contact_us", 10)])
            };
            let mut payload = focus.mention();
            payload.insert("form".into(), json!(form));
            payload.insert("url".into(), json!(format!("{SITE}/forms/{}", form.replace('_', "-"))));
            self.push(c, at, "form.submitted", "web", Value::Object(payload));
            if self.chance(85) {
                let call_day = (d - self.rng.i64(0..3)).max(1);
                let outcome = self.sales_call(c, call_day, "follow-up on web enquiry");
                if form == "test_drive" && outcome == "connected" && self.chance(55) {
                    let visit_day = (call_day - self.rng.i64(1..8)).max(1);
                    let at = self.day(visit_day);
                    self.push(c, at, "visit.checked_in", "store", json!({"location": "Showroom", "purpose": "test drive"}));
                    if self.chance(60) {
                        let after = (visit_day - self.rng.i64(2..10)).max(1);
                        self.sales_call(c, after, "after the test drive");
                    }
                }
            }
        }
        if self.chance(25) {
            let d = day_in(self);
            self.chat(c, Some(focus), d);
        }
        start
    }

    fn vehicle_page(&mut self, v: Product) -> Value {
        match self.rng.u8(..10) {
            0..=5 => json!({"url": format!("{SITE}/inventory/{}", v.category), "category": v.category}),
            6 => json!({"url": format!("{SITE}/finance"), "title": "Finance and leasing"}),
            7 => json!({"url": format!("{SITE}/offers"), "title": "Current offers"}),
            8 => json!({"url": format!("{SITE}/inventory/certified-pre-owned"), "category": v.category}),
            _ => json!({"url": format!("{SITE}/"), "title": "Harbour & Pine Motors"}),
        }
    }

    fn sales_call(&mut self, c: usize, d: i64, topic: &str) -> &'static str {
        let at = self.day(d);
        let outcome = self.weighted(&[("connected", 50), ("voicemail", 30), ("no_answer", 14), ("busy", 4), ("wrong_number", 2)]);
        let who: Vec<&str> = staff(Duty::Sales).collect();
        let who = if who.is_empty() { STAFF[0].name } else { self.pick(&who) };
        let duration = if outcome == "connected" { self.rng.i64(90..1200) } else { self.rng.i64(5..60) };
        self.push(
            c,
            at,
            "call.logged",
            "phone",
            json!({"direction": "outbound", "duration_seconds": duration, "outcome": outcome, "staff": who, "topic": topic}),
        );
        outcome
    }

    fn retention_call(&mut self, c: usize, d: i64) {
        let at = self.day(d);
        let outcome = self.weighted(&[("connected", 30), ("voicemail", 45), ("no_answer", 20), ("wrong_number", 5)]);
        let duration = if outcome == "connected" { self.rng.i64(60..600) } else { self.rng.i64(5..50) };
        let who: Vec<&str> = staff(Duty::Service).chain(staff(Duty::Sales)).collect();
        let who = if who.is_empty() { STAFF[0].name } else { self.pick(&who) };
        self.push(
            c,
            at,
            "call.logged",
            "phone",
            json!({"direction": "outbound", "duration_seconds": duration, "outcome": outcome, "staff": who,
                   "topic": "we have not seen you in a while"}),
        );
    }

    fn chat(&mut self, c: usize, about: Option<Product>, d: i64) {
        let at = self.any_time(d);
        let question = self.pick(&[
            "Is this one still available?",
            "Do you take trade-ins?",
            "What would the monthly payment be?",
            "Can I book a test drive for Saturday?",
            "How long is the wait for a service slot?",
        ]);
        let mut payload = about.map(|p| p.mention()).unwrap_or_default();
        payload.insert("direction".into(), json!("inbound"));
        payload.insert("text".into(), json!(question));
        self.push(c, at, "chat.message", "chat", Value::Object(payload));
        let reply = at + self.minutes(1, 20);
        self.push(
            c,
            reply,
            "chat.message",
            "chat",
            json!({"direction": "outbound", "text": "Happy to help! Let me check for you."}),
        );
    }

    /// A workshop visit: a reminder before, the check-in, the invoice, feedback after.
    fn service_visit(&mut self, c: usize, p: &Person, d: i64) {
        if self.chance(60) {
            let before = d + self.rng.i64(5..12);
            let at = self.day(before);
            self.push(c, at, "sms.sent", "sms", json!({"text": "Your car is due for service. Reply YES to book."}));
            if self.chance(35) {
                let reply = at + self.minutes(5, 600);
                self.push(c, reply, "sms.received", "sms", json!({"text": "YES"}));
            }
        } else if self.chance(30) {
            let before = d + self.rng.i64(2..10);
            let at = self.day(before);
            let duration = self.rng.i64(60..420);
            self.push(
                c,
                at,
                "call.logged",
                "phone",
                json!({"direction": "inbound", "duration_seconds": duration, "outcome": "connected",
                       "staff": staff(Duty::Service).next().unwrap_or(STAFF[0].name), "topic": "booking a service"}),
            );
        }
        let checkin = self.midnight - Duration::days(d) + Duration::seconds(15 * 3600 + self.rng.i64(0..3 * 3600));
        self.push(c, checkin, "visit.checked_in", "store", json!({"location": "Service drive"}));
        let ev = p.interests.iter().any(|i| i.eq_ignore_ascii_case("ev"));
        let main = if ev && self.chance(40) {
            EV_CHECK
        } else {
            match self.rng.u8(..100) {
                0..=61 => SERVICES[0],
                62..=77 => SERVICES[1],
                _ => self.pick(&SERVICES[2..]),
            }
        };
        let mut lines = vec![(main, 1)];
        if self.chance(30) {
            lines.push((self.pick(PARTS), 1));
        }
        if self.chance(12) {
            let tire = if ev { TIRES[3] } else { self.pick(&TIRES[..3]) };
            lines.push((tire, 4));
        }
        let done = checkin + self.minutes(90, 360);
        let Some((key, total)) = self.order(c, done, "store", "Harbour & Pine Service", &lines) else { return };
        if self.chance(45) {
            let at = done + Duration::hours(self.rng.i64(2..72));
            self.feedback(c, at);
        }
        if self.chance(2) {
            let at = done + Duration::days(self.rng.i64(2..15));
            let goodwill = (total / 10).max(2_000).min(total);
            self.refund(c, at, key, goodwill, "goodwill credit");
        }
    }

    fn feedback(&mut self, c: usize, at: Time) {
        let score: i64 = self.weighted(&[(10, 30), (9, 25), (8, 16), (7, 10), (6, 6), (5, 4), (4, 3), (3, 3), (2, 2), (1, 1)]);
        let comment = match score {
            9..=10 => self.pick(&[
                "Quick and friendly, as always.",
                "Kwame explained everything. Thanks!",
                "Car was ready early and washed.",
                "",
            ]),
            7..=8 => self.pick(&["Good work, the wait was a bit long.", "Fine, but the lounge coffee machine was broken.", ""]),
            _ => self.pick(&[
                "Took three hours for an oil change.",
                "Nobody called me when the car was ready.",
                "Price was higher than quoted.",
            ]),
        };
        let channel = if self.chance(70) { "email" } else { "sms" };
        let mut payload = json!({"score": score, "survey": "service"});
        if !comment.is_empty() {
            payload["comment"] = json!(comment);
        }
        self.push(c, at, "feedback.given", channel, payload);
    }

    /// Accessories and parts: online after a look at the product, or at the parts counter.
    fn shop_order(&mut self, c: usize, _p: &Person, d: i64) {
        let first = self.shop_item();
        let mut lines = vec![(first, if first.category == "tires" { 4 } else { 1 })];
        if self.chance(25) {
            let second = self.shop_item();
            if second.sku != first.sku {
                lines.push((second, if second.category == "tires" { 4 } else { 1 }));
            }
        }
        let online = self.chance(55);
        let at = if online { self.any_time(d) } else { self.day(d) };
        if online {
            for _ in 0..self.rng.usize(1..4) {
                let seen = at - Duration::seconds(self.rng.i64(600..14 * 86_400));
                self.push(c, seen, "product.viewed", "web", Value::Object(first.mention()));
            }
            if self.chance(20) {
                let left = at - Duration::seconds(self.rng.i64(3600..10 * 86_400));
                let items: Vec<Value> = lines.iter().map(|(p, _)| Value::Object(p.mention())).collect();
                self.push(c, left, "cart.abandoned", "web", json!({"items": items}));
            }
        } else {
            let walk_in = at - self.minutes(5, 30);
            self.push(c, walk_in, "visit.checked_in", "store", json!({"location": "Parts counter"}));
        }
        let (channel, store) = if online { ("web", WEB_SHOP) } else { ("store", "Harbour & Pine Parts") };
        let Some((key, total)) = self.order(c, at, channel, store, &lines) else { return };
        if self.chance(6) {
            // A return: the person asks, the money goes back.
            let asked = at + Duration::days(self.rng.i64(2..20));
            let (item, _) = lines[0];
            let mut payload = item.mention();
            payload.insert("subject".into(), json!(format!("Return: {}", item.name)));
            self.push(c, asked, "support.requested", if online { "email" } else { "phone" }, Value::Object(payload));
            let refunded = if lines.len() > 1 { lines[0].0.cents * lines[0].1 } else { total };
            let at = asked + Duration::days(self.rng.i64(1..6));
            self.refund(c, at, key, refunded, "returned");
        }
    }

    /// A new car: weeks of browsing, a test drive, the deal with extras.
    fn vehicle_purchase(&mut self, c: usize, p: &Person, d: i64) {
        let v = self.vehicle_for(p);
        let lead_in = self.rng.i64(7..45);
        for _ in 0..self.rng.usize(2..9) {
            let before = d + self.rng.i64(1..=lead_in);
            let at = self.any_time(before);
            self.push(c, at, "product.viewed", "web", Value::Object(v.mention()));
        }
        if self.chance(70) {
            let before = d + self.rng.i64(1..=lead_in);
            let at = self.any_time(before);
            let mut payload = v.mention();
            payload.insert("form".into(), json!("test_drive"));
            self.push(c, at, "form.submitted", "web", Value::Object(payload));
        }
        let before = d + self.rng.i64(1..8);
        let test_drive = self.day(before);
        self.push(c, test_drive, "visit.checked_in", "store", json!({"location": "Showroom", "purpose": "test drive"}));
        self.sales_call(c, d + 1, "offer and trade-in value");
        let mut lines = vec![(v, 1)];
        if self.chance(40) {
            lines.push((WARRANTY, 1));
        }
        if self.chance(25) {
            lines.push((MAINTENANCE_PLAN, 1));
        }
        if self.chance(35) {
            lines.push((ACCESSORIES[0], 1));
        }
        if v.category == "ev" && self.chance(50) {
            lines.push((ACCESSORIES[10], 1));
            lines.push((ACCESSORIES[12], 1));
        }
        let at = self.day(d);
        let arrived = at - self.minutes(30, 120);
        self.push(c, arrived, "visit.checked_in", "store", json!({"location": "Showroom", "purpose": "delivery"}));
        self.order(c, at, "store", "Harbour & Pine Motors", &lines);
        if self.chance(50) {
            let later = at + Duration::days(self.rng.i64(3..10));
            self.feedback(c, later);
        }
    }

    /// Fleet servicing: several of the company's vehicles in one visit.
    fn fleet_visit(&mut self, c: usize, _p: &Person, d: i64) {
        let checkin = self.midnight - Duration::days(d) + Duration::seconds(14 * 3600 + self.rng.i64(0..3 * 3600));
        self.push(c, checkin, "visit.checked_in", "store", json!({"location": "Fleet desk"}));
        let vehicles = self.rng.i64(2..7);
        let mut lines = vec![(SERVICES[0], vehicles)];
        if self.chance(30) {
            let (work, n) = (self.pick(&SERVICES[2..]), self.rng.i64(1..vehicles + 1));
            lines.push((work, n));
        }
        if self.chance(25) {
            let (tire, sets) = (self.pick(&TIRES[..3]), self.rng.i64(1..3));
            lines.push((tire, 4 * sets));
        }
        let done = checkin + self.minutes(180, 480);
        self.order(c, done, "store", "Harbour & Pine Fleet", &lines);
    }

    fn fleet_purchase(&mut self, c: usize, d: i64) {
        let vans: Vec<Product> = VEHICLES.iter().filter(|v| v.category == "van" || v.category == "pickup").copied().collect();
        let v = self.pick(&vans);
        let n = self.rng.i64(2..5);
        let at = self.day(d);
        let quoted = d + self.rng.i64(3..20);
        self.sales_call(c, quoted, "fleet quote");
        self.order(c, at, "store", "Harbour & Pine Fleet", &[(v, n)]);
    }

    /// Browsing, calls, support, chat and social mentions through the year.
    fn everyday(&mut self, c: usize, p: &Person, persona: Persona, known_since: i64) {
        if persona == Persona::Lead {
            return;
        }
        let active_until = match persona {
            Persona::Lost => 300,
            Persona::Drifting => 120,
            _ => 1,
        };
        let span = |g: &mut Gen| g.rng.i64(active_until.min(known_since - 1).max(1)..known_since.max(2));
        for _ in 0..self.rng.usize(1..11) {
            let d = span(self);
            let at = self.any_time(d);
            let payload = if self.chance(50) {
                let v = self.vehicle_for(p);
                self.vehicle_page(v)
            } else {
                let page = self.pick(&[
                    ("service/book", Some("service")),
                    ("shop/accessories", Some("accessories")),
                    ("shop/charging", Some("charging")),
                    ("shop/tires", Some("tires")),
                    ("about", None),
                    ("contact", None),
                ]);
                match page.1 {
                    Some(cat) => json!({"url": format!("{SITE}/{}", page.0), "category": cat}),
                    None => json!({"url": format!("{SITE}/{}", page.0)}),
                }
            };
            self.push(c, at, "page.viewed", "web", payload);
        }
        for _ in 0..self.rng.usize(0..8) {
            let d = span(self);
            let at = self.any_time(d);
            let item = if self.chance(50) { self.vehicle_for(p) } else { self.shop_item() };
            let channel = if self.chance(20) { "app" } else { "web" };
            self.push(c, at, "product.viewed", channel, Value::Object(item.mention()));
        }
        if self.chance(20) {
            for _ in 0..self.rng.usize(1..3) {
                let d = span(self);
                let at = self.day(d);
                let topic = self.pick(&["question about an invoice", "recall notice", "loaner car", "warranty question"]);
                let duration = self.rng.i64(45..900);
                self.push(
                    c,
                    at,
                    "call.logged",
                    "phone",
                    json!({"direction": "inbound", "duration_seconds": duration, "outcome": "connected", "topic": topic}),
                );
            }
        }
        if self.chance(5) {
            let d = span(self);
            let at = self.any_time(d);
            let subject = self.pick(&[
                "Check-engine light came on again",
                "Warranty claim: infotainment screen",
                "Where is my registration?",
                "Rattle from the rear after the service",
            ]);
            let channel = self.pick(&["email", "phone", "web"]);
            self.push(c, at, "support.requested", channel, json!({"subject": subject}));
        }
        if self.chance(6) {
            let d = span(self);
            self.chat(c, None, d);
        }
        if self.chance(2) {
            let d = span(self);
            let at = self.any_time(d);
            let sentiment = self.weighted(&[("positive", 70), ("neutral", 20), ("negative", 10)]);
            let network = self.pick(&["instagram", "facebook", "yelp", "x"]);
            self.push(c, at, "social.mentioned", "social", json!({"sentiment": sentiment, "network": network}));
        }
    }

    /// The monthly newsletter, from the issue after the person became known.
    fn newsletter(&mut self, c: usize, p: &Person, persona: Persona, known_since: i64) {
        if p.email.is_none() {
            return;
        }
        let subscribed = match p.newsletter {
            Some(yes) => yes,
            None => self.chance(65),
        };
        if !subscribed {
            return;
        }
        // People known before the history began came in with the imported mailing list;
        // newer ones signed up on the website when they first got in touch.
        if known_since >= HISTORY_DAYS - 1 {
            let imported = self.midnight - Duration::days(HISTORY_DAYS - 1) + Duration::seconds(9 * 3600);
            self.push(c, imported, "email.subscribed", "import", json!({"topic": "newsletter"}));
        } else {
            let signed_up = self.any_time(known_since);
            self.push(c, signed_up, "email.subscribed", "web", json!({"topic": "newsletter", "source": "website"}));
        }
        let mut open_rate = self.rng.u32(5..70);
        if matches!(persona, Persona::Drifting | Persona::Lost) {
            open_rate /= 2;
        }
        let bad_address = self.chance(2);
        for (k, &(subject, sku)) in ISSUES.iter().enumerate().rev() {
            let d = 4 + 30 * k as i64;
            if d >= known_since {
                continue;
            }
            let sent = self.midnight - Duration::days(d) + Duration::seconds(15 * 3600 + self.rng.i64(0..1800));
            let campaign = format!("newsletter-{}", sent.format("%Y-%m"));
            self.push(c, sent, "email.sent", "email", json!({"subject": subject, "campaign": campaign}));
            if bad_address {
                let bounced = sent + self.minutes(1, 10);
                self.push(c, bounced, "email.bounced", "email", json!({"kind": "hard", "campaign": campaign}));
                return;
            }
            // Someone on holiday: the mailbox answers by itself (which is no reply).
            if self.chance(1) {
                let answered = sent + self.minutes(0, 2);
                self.push(
                    c,
                    answered,
                    "email.auto_replied",
                    "email",
                    json!({"subject": format!("Out of office: {subject}"), "campaign": campaign}),
                );
            }
            if !self.chance(open_rate) {
                continue;
            }
            let opened = sent + Duration::seconds(self.rng.i64(300..48 * 3600));
            self.push(c, opened, "email.opened", "email", json!({"campaign": campaign}));
            if self.chance(2) {
                let left = opened + self.minutes(1, 5);
                self.push(c, left, "email.unsubscribed", "email", json!({"campaign": campaign}));
                return;
            }
            // A few write back: a question about the featured car, a "please call me".
            if self.chance(1) {
                let replied = opened + self.minutes(5, 240);
                self.push(
                    c,
                    replied,
                    "email.replied",
                    "email",
                    json!({"subject": format!("Re: {subject}"), "campaign": campaign}),
                );
            }
            if self.chance(25) {
                let featured = find(sku);
                let clicked = opened + self.minutes(0, 3);
                let mut payload = featured.mention();
                payload.remove("name");
                payload.insert("url".into(), json!(format!("{SITE}/p/{}?utm_campaign={campaign}", featured.sku)));
                payload.insert("campaign".into(), json!(campaign));
                self.push(c, clicked, "email.clicked", "email", Value::Object(payload));
                if self.chance(60) {
                    let viewed = clicked + self.minutes(0, 2);
                    self.push(c, viewed, "product.viewed", "web", Value::Object(featured.mention()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rapport_core::PhoneRegion;
    use rapport_core::event::parse_event;
    use rapport_core::profile::{LifecycleStage, ProfileRules, ProfileState};

    use super::super::{Plan, Team};
    use super::*;

    fn now() -> Time {
        chrono::DateTime::parse_from_rfc3339("2026-03-01T17:30:00Z").unwrap().to_utc()
    }

    fn team() -> Team {
        let ids: Vec<Uuid> = (0..STAFF.len()).map(|i| Uuid::from_u128(i as u128 + 1)).collect();
        Team::new(&ids)
    }

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|i| Uuid::from_u128(0x1000 + i as u128)).collect()
    }

    /// Every event parses, and the profiles they add up to land in every lifecycle stage.
    #[test]
    fn the_history_is_valid_and_the_stages_are_varied() {
        let plan = Plan::new(3000, 2026, now().date_naive(), &team());
        let history = History::new(&plan.people, 2026, now());
        let per_contact = history.len() as f64 / 3000.0;
        assert!((20.0..=40.0).contains(&per_contact), "{per_contact} events per contact");

        let rules = ProfileRules::default();
        let ids = ids(3000);
        let mut states = vec![ProfileState::default(); 3000];
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        let mut sender_ids = std::collections::HashSet::new();
        for e in &history.events {
            let raw = history.to_json(e, &ids);
            let parsed = parse_event(raw.clone(), PhoneRegion::default(), now()).unwrap_or_else(|err| panic!("{raw}: {err}"));
            if let Some(id) = &parsed.source_id {
                assert!(sender_ids.insert(id.clone()), "duplicate id {id}");
            }
            assert!(parsed.occurred_at <= now());
            assert!(parsed.occurred_at >= now() - Duration::days(HISTORY_DAYS + 1), "{raw}");
            *kinds.entry(e.kind).or_default() += 1;
            states[e.contact].apply(&parsed.effect, parsed.occurred_at, &rules);
        }
        for kind in rapport_core::event::BUILT_IN_TYPES {
            assert!(kinds.get(kind).copied().unwrap_or(0) > 0, "no {kind} events: {kinds:?}");
        }
        let mut stages: HashMap<LifecycleStage, usize> = HashMap::new();
        for s in &states {
            *stages.entry(rules.stage(s, now()).stage).or_default() += 1;
        }
        let tiers: HashMap<&str, usize> = states.iter().filter_map(|s| rules.value_tier(s)).fold(HashMap::new(), |mut m, t| {
            *m.entry(t).or_default() += 1;
            m
        });
        eprintln!(
            "{} events, {per_contact:.1} per contact\nkinds: {kinds:?}\nstages: {stages:?}\ntiers: {tiers:?}",
            history.len()
        );
        for stage in LifecycleStage::ALL {
            let n = stages.get(&stage).copied().unwrap_or(0);
            assert!(n >= 60, "only {n} contacts are {} ({stages:?})", stage.as_str());
        }
        assert_eq!(tiers.len(), 4, "{tiers:?}");
    }

    #[test]
    fn same_seed_same_history() {
        let plan = Plan::new(300, 9, now().date_naive(), &team());
        let render = |h: &History| -> Vec<String> { h.events.iter().map(|e| h.to_json(e, &ids(300)).to_string()).collect() };
        let a = render(&History::new(&plan.people, 9, now()));
        assert_eq!(a, render(&History::new(&plan.people, 9, now())));
        assert_ne!(a, render(&History::new(&plan.people, 10, now())));
        let orders: Vec<&String> = a.iter().filter(|e| e.contains("hp-order-")).collect();
        assert!(orders[0].contains("hp-order-000001"), "{}", orders[0]);
    }
}
