//! The start page: how the business is doing at a glance, and who was active lately.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use rapport_core::profile::LifecycleStage;
use rapport_store::TaskFilter;

use super::automation::{ComingUpRow, coming_up};
use super::charts::BarChart;
use super::form::query_string;
use super::format::{ago, label, thousands, tier};
use super::tasks::{TaskRow, open_tasks};
use super::{Shell, Signed, UiError, render};
use crate::AppState;

/// How far ahead "Coming up" looks.
const COMING_UP_DAYS: u32 = 7;

pub struct Tile {
    pub label: &'static str,
    pub value: String,
    pub href: String,
}

pub struct RecentRow {
    pub href: String,
    pub name: String,
    pub when: String,
    pub stage: String,
    pub stage_key: String,
    pub tier: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    shell: Shell,
    first_name: String,
    tiles: Vec<Tile>,
    stages: BarChart,
    tiers: BarChart,
    recent: Vec<RecentRow>,
    tasks: Vec<TaskRow>,
    coming_up: Vec<ComingUpRow>,
    /// Email waits in the outbox because no SMTP relay is configured (templates/relay_notice.html).
    relay_missing: bool,
    relay_waiting: i64,
}

fn filter_link(filter: &str) -> String {
    format!("/contacts?{}", query_string([("filter", filter)]))
}

/// `GET /`
pub async fn page(State(s): State<AppState>, signed: Signed) -> Result<Response, UiError> {
    let d = s.store.dashboard(Some(signed.user.id), 12).await?;
    let now = s.store.now();
    let tiles = vec![
        Tile { label: "Contacts", value: thousands(d.contacts), href: "/contacts".into() },
        Tile { label: "Yours", value: thousands(d.my_contacts), href: "/contacts?owner=me".into() },
        Tile { label: "New in 30 days", value: thousands(d.new_contacts_30d), href: "/contacts?sort=-created_at".into() },
        Tile { label: "Companies", value: thousands(d.companies), href: "/companies".into() },
        Tile { label: "Segments", value: thousands(d.segments), href: "/segments".into() },
    ];
    let stages = BarChart::new(
        "stages",
        "Contacts by lifecycle stage",
        d.stages
            .iter()
            .map(|(stage, n)| {
                let key = stage.as_str();
                let link = if *stage == LifecycleStage::Lead {
                    // Contacts without events have no profile row; `stage` reads them as leads too.
                    filter_link("stage = \"lead\"")
                } else {
                    filter_link(&format!("stage = \"{key}\""))
                };
                (label(key), *n, format!("stage-{key}"), Some(link))
            })
            .collect(),
    );
    let tiers = BarChart::new(
        "tiers",
        "Contacts by value tier",
        d.tiers
            .iter()
            .enumerate()
            .map(|(i, (value_tier, n))| match value_tier {
                Some(t) => (
                    tier(t),
                    *n,
                    format!("c{}", i % 6),
                    Some(filter_link(&format!("value_tier = {}", serde_json::Value::String(t.clone())))),
                ),
                None => ("No purchases yet".to_string(), *n, "muted".to_string(), Some(filter_link("value_tier is not set"))),
            })
            .collect(),
    );
    let recent = d
        .recently_active
        .into_iter()
        .map(|r| RecentRow {
            href: format!("/contacts/{}", r.id),
            name: r.display_name,
            when: ago(r.last_seen_at, now),
            stage: label(&r.lifecycle_stage),
            stage_key: r.lifecycle_stage,
            tier: r.value_tier.map(|t| tier(&t)).unwrap_or_default(),
        })
        .collect();
    let mine = TaskFilter { assignee_id: Some(signed.user.id), ..Default::default() };
    let tasks = open_tasks(&s.store, mine, 10, true).await?;
    let coming_up = coming_up(&s.store, COMING_UP_DAYS, 20).await?;
    // Said only when something is actually waiting: a business that sends no email needs no relay.
    let relay_waiting = if super::campaigns::relay_configured(&s) { 0 } else { s.store.unsendable_email_count().await? };
    render(&DashboardPage {
        shell: signed.shell("today"),
        first_name: signed.user.name.split_whitespace().next().unwrap_or("").to_string(),
        tiles,
        stages,
        tiers,
        recent,
        tasks,
        coming_up,
        relay_missing: relay_waiting > 0,
        relay_waiting,
    })
}
