//! `rapport demo`: fills an empty database with a believable small business, so the API, the
//! UI and benchmarks have something real-looking to work on.
//!
//! The business is Harbour & Pine Motors, a family-owned dealership on the Oakland waterfront:
//! new and used cars, a service workshop, and a fleet desk that sells vans and pickups to local
//! trades. Its customers are as mixed as the Bay Area, plus some who live overseas (relocating
//! families, parents of students, export buyers), so names, phone numbers, time zones and
//! locales come from a dozen countries, typed as messily as people really type them.
//!
//! Everything follows from one seed (same seed, same data) and from the store's clock, so
//! "turning 21 next month" stays true whenever the demo is loaded. Every email address uses a
//! reserved `.example` domain, and US numbers use the 555 exchange kept for fiction.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use anyhow::{Context, bail};
use chrono::{Datelike, Duration, NaiveDate};
use fastrand::Rng;
use rapport_core::EmailAddress;
use rapport_core::company::{COMPANY_SIZES, CompanyDraft, CompanyLinkDraft};
use rapport_core::contact::{Address, ContactDraft, EmailDraft, ExternalIdDraft, PhoneDraft};
use rapport_core::custom_field::{CustomFieldDraft, FieldKind, RecordType};
use rapport_core::note::NoteDraft;
use rapport_core::relation::{RelationDraft, RelationKind};
use rapport_core::segment::SegmentDraft;
use rapport_core::tag::TagDraft;
use rapport_core::task::TaskDraft;
use rapport_core::user::{Role, UserDraft};
use rapport_store::{Created, PageRequest, Store, StoreError};
use serde_json::{Map, json};
use tokio::task::JoinSet;
use uuid::Uuid;

mod events;

/// What the demo created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    pub users: usize,
    pub contacts: usize,
    pub companies: usize,
    pub notes: usize,
    pub relations: usize,
    pub admin_email: String,
    /// Events of the year of history ingested.
    pub events: usize,
    /// How many contacts are in each lifecycle stage once the history is in, most first.
    pub stages: Vec<(String, usize)>,
    /// The segments created, with their member counts.
    pub segments: Vec<(String, i64)>,
    /// Open tasks created for the team (by hand and by the starter workflows).
    pub tasks: usize,
    /// Starter workflows, all switched on.
    pub workflows: usize,
    /// Workflow runs started while seeding (this morning's enquiries).
    pub runs: u64,
    /// Message templates, and campaigns ready to send.
    pub templates: usize,
    pub campaigns: usize,
}

impl DemoSummary {
    /// One line on the event history, e.g. "Ingested 91,234 events (a year of history); lifecycle
    /// stages: loyal 812, lead 750, …".
    pub fn events_line(&self) -> String {
        let stages: Vec<String> = self.stages.iter().map(|(s, n)| format!("{s} {}", thousands(*n as u64))).collect();
        format!(
            "Ingested {} events (a year of history); lifecycle stages: {}.",
            thousands(self.events as u64),
            if stages.is_empty() { "none".to_string() } else { stages.join(", ") }
        )
    }

    /// One line on automation, e.g. "Workflows: 6 switched on; 3 runs started this morning.".
    pub fn workflows_line(&self) -> String {
        format!("Workflows: {} switched on; {} runs started this morning.", self.workflows, self.runs)
    }

    /// One line on messaging, e.g. "Email: 3 templates, 1 campaign ready to send.".
    pub fn messaging_line(&self) -> String {
        format!(
            "Email: {} templates, {} campaign{} ready to send (set --smtp-url to send for real).",
            self.templates,
            self.campaigns,
            if self.campaigns == 1 { "" } else { "s" }
        )
    }

    /// One line on the segments, e.g. "Segments: VIPs drifting away 261, Birthdays this week 29, …".
    pub fn segments_line(&self) -> String {
        let parts: Vec<String> = self.segments.iter().map(|(name, n)| format!("{name} {}", thousands(*n as u64))).collect();
        format!("Segments: {}.", parts.join(", "))
    }
}

/// The segments a dealership would keep: name, description, filter.
const SEGMENTS: &[(&str, &str, &str)] = &[
    (
        "VIPs drifting away",
        "Gold and VIP customers with no showroom or service visit in two months: call them before a competitor does.",
        r#"value_tier in ("gold", "vip") and no visit.checked_in in last 60d"#,
    ),
    ("Birthdays this week", "Birthdays in the next seven days, in each customer's own time zone.", "birthday within next 7d"),
    (
        "Children turning 21",
        "Customers whose child turns 21 within two months: a first car is not far off.",
        "related(child).birthday turns 21 within next 60d",
    ),
    (
        "Newsletter readers drifting",
        "They open the newsletter but have not clicked anything in six months: time for a different offer.",
        "count(email.opened, last 180d) >= 3 and count(email.clicked, last 180d) = 0",
    ),
    (
        "EV-curious prospects",
        "Interested in electric or hybrid cars and not yet loyal customers.",
        r#"custom.vehicle_interest in ("EV", "hybrid") and stage in ("lead", "active")"#,
    ),
    ("Fleet accounts", "People at companies running ten vehicles or more.", "company.custom.fleet_size >= 10"),
    (
        "Service regulars",
        "Two or more service visits paid in the last year.",
        r#"count(order.completed where items.category = "service", last 365d) >= 2"#,
    ),
    (
        "Browsing, not buying",
        "Looked at cars online this month without buying: a test-drive invitation may tip them.",
        "has product.viewed in last 30d and no order.completed in last 30d",
    ),
    (
        "Customer anniversaries",
        "The anniversary of their first purchase is within two weeks.",
        "first_order anniversary within next 14d",
    ),
];

/// The workflows a dealership starts with, all switched on: the greetings and reminders its
/// team used to keep on paper.
const STARTER_WORKFLOWS: &[&str] = &[
    r#"{"name": "Birthday greeting",
        "trigger": {"kind": "date", "field": "birthday", "at": "09:00"},
        "steps": [{"action": "create_task", "title": "Call {{first_name}} to wish them a happy birthday", "due": "PT8H",
                   "reason": "Birthday today"},
                  {"action": "send_message", "channel": "email", "template": "birthday-greeting",
                   "subject": "Happy birthday, {{first_name}}!"}]}"#,
    r#"{"name": "One-year thank-you",
        "trigger": {"kind": "date", "field": "first_order", "turns": 1, "at": "10:00"},
        "steps": [{"action": "award_points", "points": 100, "coupon": "THANKYOU-1Y", "reason": "A year with Harbour & Pine"},
                  {"action": "create_task", "title": "Thank {{first_name}}: a year since their first purchase", "due": "P2D"}]}"#,
    r#"{"name": "Inactive customer win-back",
        "trigger": {"kind": "inactivity", "type": "order.completed", "days": 180},
        "conditions": "stage in (\"active\", \"loyal\", \"at_risk\")",
        "steps": [{"action": "add_tag", "tag": "win-back"},
                  {"action": "create_task", "title": "Win back {{first_name}}: nothing bought in six months", "due": "P3D"},
                  {"wait": "P30D", "until_event": "order.completed"},
                  {"action": "remove_tag", "tag": "win-back"}],
        "exit_when": ["order.completed"]}"#,
    r#"{"name": "Prospect call-back",
        "trigger": {"kind": "event", "type": "form.submitted"},
        "steps": [{"action": "create_task", "title": "Call {{first_name}} back about their enquiry", "due": "PT4H",
                   "reason": "They filled in the form on the website"},
                  {"wait": "P3D", "until_event": "call.logged"},
                  {"if": "no call.logged in last 3d",
                   "then": [{"action": "notify", "user": "david.okafor@harbourpine.example",
                             "message": "{{display_name}} enquired three days ago and nobody has called yet"}]}],
        "exit_when": ["order.completed"]}"#,
    r#"{"name": "Feedback after the fifth visit",
        "trigger": {"kind": "threshold", "metric": "visit_count", "every": 5},
        "steps": [{"wait_until": {"at": "10:00"}},
                  {"action": "send_message", "channel": "email", "template": "feedback-request",
                   "subject": "How are we doing, {{first_name}}?"}],
        "reentry": {"after": "P90D"}}"#,
    r#"{"name": "VIP drifting: call",
        "trigger": {"kind": "segment_entered", "segment": "VIPs drifting away"},
        "steps": [{"action": "create_task", "title": "Call {{first_name}}: a VIP who has not been in for two months", "due": "P1D"},
                  {"action": "notify", "user": "owner", "message": "{{display_name}} has not been in for two months"}],
        "reentry": {"after": "P90D"}}"#,
];

/// Contacts per `create_contacts` call: one transaction each.
const BATCH: usize = 500;
/// Single creates in flight at once; the SQLite writer commits them in shared groups.
const CONCURRENCY: usize = 16;

/// Fills an empty database with a believable small business. `contacts` is how many people
/// (default the caller passes 3000). `progress` is called with (done, total) so the CLI can
/// draw a progress bar.
pub async fn seed(
    store: &Store,
    contacts: usize,
    seed: u64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<DemoSummary> {
    let existing = store.count_contacts().await.context("counting existing contacts")?;
    if existing > 0 {
        bail!("the database already holds {existing} contacts; the demo only fills an empty database");
    }
    let team = create_team(store).await?;
    let now = store.now();
    let plan = Plan::new(contacts, seed, now.date_naive(), &team);
    let Plan { companies, contacts, links, relations, notes, people } = plan;
    let history = events::History::new(&people, seed, now);

    let total = FIELDS.len()
        + TAGS.len()
        + companies.len()
        + contacts.len()
        + links.len()
        + relations.len()
        + notes.len()
        + history.len();
    let mut progress = Progress { report: progress, done: 0, total: total as u64 };
    progress.advance(0);

    define_fields(store, &mut progress).await?;
    define_tags(store, &mut progress).await?;

    let company_count = companies.len();
    let company_ids = run_all(
        companies
            .into_iter()
            .map(|draft| {
                let store = store.clone();
                job(async move {
                    let name = draft.name.clone().unwrap_or_default();
                    let created = store.create_company(draft, None).await.with_context(|| format!("creating company {name}"))?;
                    Ok(new(created)?.id)
                })
            })
            .collect(),
        &mut progress,
    )
    .await?;

    let mut contact_ids = Vec::with_capacity(contacts.len());
    let mut drafts = contacts.into_iter();
    loop {
        let batch: Vec<ContactDraft> = drafts.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let (from, n) = (contact_ids.len(), batch.len());
        let ids = store.create_contacts(batch).await.with_context(|| format!("inserting contacts {from}..{}", from + n))?;
        contact_ids.extend(ids);
        progress.advance(n as u64);
    }

    run_all(
        links
            .into_iter()
            .map(|l| {
                let store = store.clone();
                let draft = CompanyLinkDraft {
                    contact_id: Some(contact_ids[l.contact]),
                    company_id: Some(company_ids[l.company]),
                    role: Some(l.role.to_string()),
                    primary: Some(l.primary),
                };
                job(async move {
                    new(store.create_link(draft, None).await.context("linking a contact to a company")?)?;
                    Ok(())
                })
            })
            .collect(),
        &mut progress,
    )
    .await?;

    let relation_count = relations.len();
    run_all(
        relations
            .into_iter()
            .map(|r| {
                let store = store.clone();
                let draft = RelationDraft {
                    contact_id: Some(contact_ids[r.contact]),
                    kind: Some(r.kind),
                    custom_kind: r.custom_kind,
                    related_contact_id: r.related.map(|i| contact_ids[i]),
                    related_name: r.name,
                    related_birthday: r.birthday,
                    notes: r.notes,
                };
                job(async move {
                    new(store.create_relation(draft, None).await.context("creating a relation")?)?;
                    Ok(())
                })
            })
            .collect(),
        &mut progress,
    )
    .await?;

    let note_count = notes.len();
    run_all(
        notes
            .into_iter()
            .map(|n| {
                let store = store.clone();
                let (contact_id, company_id) = match n.on {
                    On::Contact(i) => (Some(contact_ids[i]), None),
                    On::Company(i) => (None, Some(company_ids[i])),
                };
                let draft = NoteDraft { contact_id, company_id, body: Some(n.body), author_id: None, pinned: Some(n.pinned) };
                job(async move {
                    new(store.create_note(draft, Some(n.author), None).await.context("creating a note")?)?;
                    Ok(())
                })
            })
            .collect(),
        &mut progress,
    )
    .await?;

    let event_count = history.len();
    history.ingest(store, &contact_ids, &mut progress).await?;
    let stages = events::count_stages(store, &contact_ids).await?;

    let mut segments = Vec::with_capacity(SEGMENTS.len());
    let mut segment_ids = Vec::with_capacity(SEGMENTS.len());
    for (name, description, filter) in SEGMENTS {
        let draft = SegmentDraft {
            name: Some(name.to_string()),
            description: Some(description.to_string()),
            filter: Some(filter.to_string()),
            filter_json: None,
        };
        let s = store.create_segment(draft, None).await.with_context(|| format!("creating the segment {name}"))?;
        segment_ids.push(s.id);
        segments.push((s.name, s.member_count));
    }
    let mut tasks = seed_tasks(store, &team, &segment_ids).await?;
    // Before the workflows: their messages name these templates.
    let campaigns = seed_messaging(store, &segment_ids).await?;
    let (workflows, runs, workflow_tasks) = start_automation(store, &contact_ids).await?;
    tasks += workflow_tasks;

    Ok(DemoSummary {
        users: STAFF.len(),
        contacts: contact_ids.len(),
        companies: company_count,
        notes: note_count,
        relations: relation_count,
        admin_email: STAFF[0].email.to_string(),
        events: event_count,
        stages,
        segments,
        tasks,
        workflows,
        runs,
        templates: TEMPLATES.len(),
        campaigns,
    })
}

/// What people can subscribe to: (key, name, description, on by default).
const TOPICS: &[(&str, &str, &str, bool)] = &[
    ("newsletter", "Monthly newsletter", "New arrivals, events at the showroom, tips for your car.", true),
    ("offers", "Offers", "Service deals and trade-in offers, a few times a year.", true),
    ("service", "Service reminders", "When your car is due for its inspection or a seasonal check.", true),
];

/// Message templates: (name, purpose, subject, text, html).
const TEMPLATES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "birthday-greeting",
        "marketing",
        "Happy birthday, {{ contact.first_name }}!",
        "Hi {{ contact.first_name }},\n\nall of us at Harbour & Pine wish you a happy birthday. Come by for a coffee \
         and a free car wash this month.\n\n{{ owner.name | default(\"The Harbour & Pine team\") }}\n\n\
         Unsubscribe: {{ unsubscribe_url }}",
        "<p>Hi {{ contact.first_name }},</p><p>all of us at Harbour &amp; Pine wish you a happy birthday. Come by for a \
         coffee and a free car wash this month.</p><p>{{ owner.name | default(\"The Harbour & Pine team\") }}</p>",
    ),
    (
        "feedback-request",
        "marketing",
        "How are we doing, {{ contact.first_name }}?",
        "Hi {{ contact.first_name }},\n\nthank you for coming back so often. Would you tell us in two minutes what we \
         could do better? Just reply to this email.\n\nUnsubscribe: {{ unsubscribe_url }}",
        "<p>Hi {{ contact.first_name }},</p><p>thank you for coming back so often. Would you tell us in two minutes what \
         we could do better? Just reply to this email.</p>",
    ),
    (
        "spring-service-check",
        "marketing",
        "{{ contact.first_name }}, is your car ready for spring?",
        "Hi {{ contact.first_name }},\n\nwinter is hard on tyres, brakes and batteries. Book a spring check before \
         the end of April: 45 minutes, while you wait.\n\nhttps://harbourpine.example/service/spring\n\n\
         {% if recommendations %}You might also like: {{ recommendations[0].name }}.\n\n{% endif %}\
         Unsubscribe: {{ unsubscribe_url }}",
        "<p>Hi {{ contact.first_name }},</p><p>winter is hard on tyres, brakes and batteries. Book a spring check \
         before the end of April: 45 minutes, while you wait.</p>\
         <p><a href=\"https://harbourpine.example/service/spring\">Book your spring check</a></p>\
         {% if recommendations %}<p>You might also like: {{ recommendations[0].name }}.</p>{% endif %}",
    ),
];

/// Topics, templates, and a campaign ready to send: returns how many campaigns it created.
/// The campaign is a draft (sending is the newcomer's choice, and without an SMTP relay it
/// would wait in the outbox).
async fn seed_messaging(store: &Store, segment_ids: &[Uuid]) -> anyhow::Result<usize> {
    use rapport_core::campaign::{CampaignDraft, CampaignInput};
    use rapport_core::consent::TopicDraft;
    use rapport_core::message::{Purpose, TemplateDraft, TemplateInput};
    for (key, name, description, on) in TOPICS {
        let draft = TopicDraft {
            key: Some(key.to_string()),
            name: Some(name.to_string()),
            description: Some(description.to_string()),
            default_subscribed: Some(*on),
        };
        store.create_topic(draft).await.with_context(|| format!("creating the topic {key}"))?;
    }
    let mut spring = None;
    for (name, purpose, subject, text, html) in TEMPLATES {
        let draft = TemplateDraft {
            name: Some(name.to_string()),
            locale: None,
            channel: Some("email".into()),
            purpose: Some(if *purpose == "transactional" { Purpose::Transactional } else { Purpose::Marketing }),
            subject: Some(subject.to_string()),
            text: Some(text.to_string()),
            html: Some(html.to_string()),
            layout: None,
        };
        let input = TemplateInput::parse(draft).map_err(|e| anyhow::anyhow!("the template {name}: {e}"))?;
        let t = store.create_template(input).await.with_context(|| format!("creating the template {name}"))?;
        if *name == "spring-service-check" {
            spring = Some(t.id);
        }
    }
    let segment = SEGMENTS.iter().position(|(name, ..)| *name == "Service regulars").and_then(|i| segment_ids.get(i));
    let (Some(template), Some(segment)) = (spring, segment) else { return Ok(0) };
    let draft = CampaignDraft {
        name: Some("Spring service check".into()),
        template_id: Some(template.to_string()),
        segment_id: Some(segment.to_string()),
        topic: Some("service".into()),
        holdout_percent: Some(10),
        conversion_days: Some(30),
        ..CampaignDraft::default()
    };
    let input = CampaignInput::parse(draft).map_err(|e| anyhow::anyhow!("the demo campaign: {e}"))?;
    store.create_campaign(input, None).await.context("creating the demo campaign")?;
    Ok(1)
}

/// Saves and switches on the [`STARTER_WORKFLOWS`], then lets this morning's website
/// enquiries arrive so that the team finds their call-backs waiting. Returns the workflows,
/// the runs started and the tasks they created.
async fn start_automation(store: &Store, contact_ids: &[Uuid]) -> anyhow::Result<(usize, u64, usize)> {
    for doc in STARTER_WORKFLOWS {
        let doc: serde_json::Value = serde_json::from_str(doc).context("a starter workflow is not JSON")?;
        let w = new(store.create_workflow(doc, None, None).await.context("saving a starter workflow")?)?;
        store.set_workflow_enabled(w.id, true).await.with_context(|| format!("switching on {}", w.spec.name))?;
    }
    // Work out everyone's dates now rather than on the server's first minute.
    store.automation_until_idle(10_000).await.context("scheduling the starter workflows")?;
    let now = store.now();
    let mut rng = Rng::with_seed(21);
    let events: Vec<serde_json::Value> = (0..3)
        .filter_map(|k| {
            let c = contact_ids.get(rng.usize(0..contact_ids.len().max(1)))?;
            let at = now - Duration::minutes(20 + 35 * k);
            Some(json!({"type": "form.submitted", "contact": {"id": c}, "occurred_at": at, "channel": "web",
                "payload": {"form": "test_drive", "category": "test drive"}}))
        })
        .collect();
    let before = store
        .list_tasks(rapport_store::TaskFilter::default(), PageRequest { limit: Some(500), cursor: None, sort: None })
        .await?;
    let enquirers: std::collections::BTreeSet<Uuid> =
        events.iter().filter_map(|e| e["contact"]["id"].as_str()?.parse().ok()).collect();
    store
        .ingest(rapport_core::event::IngestRequest { events, create_contact: false })
        .await
        .context("ingesting this morning's enquiries")?;
    store.automation_until_idle(1_000).await.context("running the starter workflows")?;
    // Counted on the people (on SQLite ingest starts the runs itself, before any pass).
    let mut runs = 0;
    for id in enquirers {
        let automation = store.contact_automation(id).await.context("reading an enquirer's runs")?;
        runs += automation.runs.iter().filter(|r| r.started_at >= now).count() as u64;
    }
    let after = store
        .list_tasks(rapport_store::TaskFilter::default(), PageRequest { limit: Some(500), cursor: None, sort: None })
        .await?;
    Ok((STARTER_WORKFLOWS.len(), runs, after.data.len().saturating_sub(before.data.len())))
}

/// Open tasks the demo gives the team for the first members of one of its segments.
struct TaskPlan {
    segment: &'static str,
    take: u32,
    /// Pages show the contact's name beside it.
    title: &'static str,
    reason: &'static str,
    /// Due times, in hours from today's midnight (UTC), one per task in turn.
    due_hours: &'static [i64],
    /// For the owner (who signs birthday cards) rather than the contact's salesperson.
    for_owner: bool,
}

const TASK_PLANS: &[TaskPlan] = &[
    TaskPlan {
        segment: "VIPs drifting away",
        take: 6,
        title: "Call: no visit in two months",
        reason: "Gold or VIP customer who has not been in for two months",
        due_hours: &[-20, -3, 10, 14, 16, 34],
        for_owner: false,
    },
    TaskPlan {
        segment: "Birthdays this week",
        take: 5,
        title: "Sign their birthday card",
        reason: "Birthday this week",
        due_hours: &[9, 33, 57, 81, 105],
        for_owner: true,
    },
    TaskPlan {
        segment: "Children turning 21",
        take: 3,
        title: "Talk about a first car for their child",
        reason: "Their child turns 21 within two months",
        due_hours: &[11, 59, 107],
        for_owner: false,
    },
];

/// The demo's open tasks, drawn from its segments ([`TASK_PLANS`]): some due today, some
/// already overdue. Returns how many.
async fn seed_tasks(store: &Store, team: &Team, segment_ids: &[Uuid]) -> anyhow::Result<usize> {
    let today = store.now().date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let mut created = 0;
    for plan in TASK_PLANS {
        let Some(i) = SEGMENTS.iter().position(|(n, _, _)| *n == plan.segment) else { continue };
        let page = PageRequest { limit: Some(plan.take), cursor: None, sort: None };
        let members =
            store.segment_members(segment_ids[i], page).await.with_context(|| format!("reading the segment {}", plan.segment))?;
        for (k, c) in members.data.iter().enumerate() {
            let assignee = if plan.for_owner { team.owner.id } else { c.owner_id.unwrap_or(team.manager.id) };
            let draft = TaskDraft {
                title: Some(plan.title.to_string()),
                reason: Some(plan.reason.to_string()),
                contact_id: Some(c.id),
                assignee_id: Some(assignee),
                due_at: Some(today + chrono::Duration::hours(plan.due_hours[k % plan.due_hours.len()])),
                ..Default::default()
            };
            new(store.create_task(draft, None, None).await.context("creating a task")?)?;
            created += 1;
        }
    }
    Ok(created)
}

/// Gives the demo's owner (an admin) a fresh random password so that the UI can be signed in
/// to, creating them if a partial run left them out; returns the email and the password. Each
/// run prints a new one (and ends the sessions of the previous).
pub async fn ensure_login(store: &Store) -> anyhow::Result<(String, String)> {
    let owner = &STAFF[0];
    let email = EmailAddress::parse(owner.email).map_err(anyhow::Error::msg)?;
    let id = match store.find_user_by_email(email).await? {
        Some(u) => u.id,
        None => {
            let draft = UserDraft {
                name: Some(owner.name.into()),
                email: Some(owner.email.into()),
                role: Some(owner.role),
                active: Some(true),
            };
            new(store.create_user(draft, None).await.context("creating the demo owner")?)?.id
        }
    };
    let token = rapport_store::sessions::random_token()?;
    let password: String = token.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    let hash = rapport_web::password::hash(&password).map_err(anyhow::Error::msg)?;
    store.set_user_password(id, Some(hash)).await?;
    Ok((owner.email.to_string(), password))
}

// ---------------------------------------------------------------------------------------------
// Running the writes
// ---------------------------------------------------------------------------------------------

struct Progress<'a> {
    report: &'a (dyn Fn(u64, u64) + Sync),
    done: u64,
    total: u64,
}

impl Progress<'_> {
    fn advance(&mut self, n: u64) {
        self.done += n;
        (self.report)(self.done, self.total);
    }
}

type Job<T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send>>;

fn job<T>(f: impl Future<Output = anyhow::Result<T>> + Send + 'static) -> Job<T> {
    Box::pin(f)
}

/// Runs `jobs` with at most [`CONCURRENCY`] in flight and returns their results in order. The
/// first failure stops the run (dropping the set aborts what is still running).
async fn run_all<T: Send + 'static>(jobs: Vec<Job<T>>, progress: &mut Progress<'_>) -> anyhow::Result<Vec<T>> {
    let mut out: Vec<Option<T>> = (0..jobs.len()).map(|_| None).collect();
    let mut set = JoinSet::new();
    for (i, j) in jobs.into_iter().enumerate() {
        if set.len() >= CONCURRENCY {
            finish_one(&mut set, &mut out, progress).await?;
        }
        set.spawn(async move { (i, j.await) });
    }
    while !set.is_empty() {
        finish_one(&mut set, &mut out, progress).await?;
    }
    out.into_iter().map(|o| o.context("a demo task ended without a result")).collect()
}

async fn finish_one<T: Send + 'static>(
    set: &mut JoinSet<(usize, anyhow::Result<T>)>,
    out: &mut [Option<T>],
    progress: &mut Progress<'_>,
) -> anyhow::Result<()> {
    if let Some(joined) = set.join_next().await {
        let (i, result) = joined.context("a demo task failed to run")?;
        out[i] = Some(result?);
        progress.advance(1);
    }
    Ok(())
}

/// The record of a create; without an idempotency key there is nothing to replay.
fn new<T>(c: Created<T>) -> anyhow::Result<T> {
    match c {
        Created::New(v) => Ok(v),
        Created::Replayed { .. } => bail!("the store replayed a create the demo never keyed"),
    }
}

/// Creates the staff, reusing users that already exist with the same email (an admin made
/// by setup, or a demo run that stopped half-way).
async fn create_team(store: &Store) -> anyhow::Result<Team> {
    let mut ids = Vec::with_capacity(STAFF.len());
    for m in STAFF {
        let email = EmailAddress::parse(m.email).map_err(anyhow::Error::msg)?;
        let id = match store.find_user_by_email(email).await? {
            Some(u) => u.id,
            None => {
                let draft =
                    UserDraft { name: Some(m.name.into()), email: Some(m.email.into()), role: Some(m.role), active: Some(true) };
                new(store.create_user(draft, None).await.with_context(|| format!("creating user {}", m.email))?)?.id
            }
        };
        ids.push(id);
    }
    Ok(Team::new(&ids))
}

/// Defines the custom fields; one that already exists (from an earlier run) is kept.
async fn define_fields(store: &Store, progress: &mut Progress<'_>) -> anyhow::Result<()> {
    for f in FIELDS {
        match store.create_custom_field(f.draft(), None).await {
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("defining custom field {}", f.key)),
        }
        progress.advance(1);
    }
    Ok(())
}

/// Creates the tags with colours; records would create them anyway, but without colour.
async fn define_tags(store: &Store, progress: &mut Progress<'_>) -> anyhow::Result<()> {
    for (name, color, description) in TAGS {
        let draft =
            TagDraft { name: Some(name.to_string()), color: Some(color.to_string()), description: Some(description.to_string()) };
        match store.create_tag(draft, None).await {
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("creating tag {name}")),
        }
        progress.advance(1);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The business
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Duty {
    Owner,
    Manager,
    Sales,
    Service,
}

struct StaffMember {
    name: &'static str,
    email: &'static str,
    role: Role,
    duty: Duty,
}

/// The first entry is the admin whose email the summary reports.
const STAFF: &[StaffMember] = &[
    StaffMember { name: "Eleanor Pine", email: "owner@harbourpine.example", role: Role::Admin, duty: Duty::Owner },
    StaffMember { name: "David Okafor", email: "david.okafor@harbourpine.example", role: Role::Manager, duty: Duty::Manager },
    StaffMember { name: "Marisol Reyes", email: "marisol.reyes@harbourpine.example", role: Role::Member, duty: Duty::Sales },
    StaffMember { name: "Jonas Becker", email: "jonas.becker@harbourpine.example", role: Role::Member, duty: Duty::Sales },
    StaffMember { name: "Priya Natarajan", email: "priya.natarajan@harbourpine.example", role: Role::Member, duty: Duty::Sales },
    StaffMember { name: "Tom Gallagher", email: "tom.gallagher@harbourpine.example", role: Role::Member, duty: Duty::Sales },
    StaffMember { name: "Kwame Mensah", email: "kwame.mensah@harbourpine.example", role: Role::Member, duty: Duty::Service },
];

#[derive(Clone, Copy)]
struct Member {
    id: Uuid,
    first: &'static str,
}

/// The staff by what they do, with their user ids.
struct Team {
    owner: Member,
    manager: Member,
    sales: Vec<Member>,
    service: Member,
}

impl Team {
    /// `ids` is parallel to [`STAFF`].
    fn new(ids: &[Uuid]) -> Self {
        let members: Vec<(Duty, Member)> = STAFF
            .iter()
            .zip(ids)
            .map(|(s, &id)| (s.duty, Member { id, first: s.name.split(' ').next().unwrap_or(s.name) }))
            .collect();
        let find = |duty: Duty| members.iter().find(|(d, _)| *d == duty).map(|(_, m)| *m);
        let owner = find(Duty::Owner).unwrap_or(members[0].1);
        Team {
            owner,
            manager: find(Duty::Manager).unwrap_or(owner),
            sales: members.iter().filter(|(d, _)| *d == Duty::Sales).map(|(_, m)| *m).collect(),
            service: find(Duty::Service).unwrap_or(owner),
        }
    }
}

struct FieldDef {
    record_type: RecordType,
    key: &'static str,
    label: &'static str,
    kind: FieldKind,
    options: &'static [&'static str],
    description: &'static str,
}

impl FieldDef {
    fn draft(&self) -> CustomFieldDraft {
        CustomFieldDraft {
            record_type: Some(self.record_type),
            key: Some(self.key.into()),
            label: Some(self.label.into()),
            kind: Some(self.kind),
            required: Some(false),
            options: (!self.options.is_empty()).then(|| self.options.iter().map(|o| o.to_string()).collect()),
            description: Some(self.description.into()),
        }
    }
}

const INTERESTS: &[&str] = &["sedan", "SUV", "pickup", "minivan", "EV", "hybrid", "van", "sports"];
const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];

const FIELDS: &[FieldDef] = &[
    FieldDef {
        record_type: RecordType::Contact,
        key: "preferred_contact_method",
        label: "Preferred contact method",
        kind: FieldKind::Enum,
        options: &["email", "phone", "sms"],
        description: "How the customer likes to be reached.",
    },
    FieldDef {
        record_type: RecordType::Contact,
        key: "vehicle_interest",
        label: "Vehicle interest",
        kind: FieldKind::MultiEnum,
        options: INTERESTS,
        description: "Kinds of vehicle the customer asked about.",
    },
    FieldDef {
        record_type: RecordType::Contact,
        key: "budget",
        label: "Budget",
        kind: FieldKind::Money,
        options: &[],
        description: "What the customer said they want to spend, all in.",
    },
    FieldDef {
        record_type: RecordType::Contact,
        key: "customer_since",
        label: "Customer since",
        kind: FieldKind::Date,
        options: &[],
        description: "First purchase or service visit.",
    },
    FieldDef {
        record_type: RecordType::Contact,
        key: "newsletter",
        label: "Newsletter",
        kind: FieldKind::Bool,
        options: &[],
        description: "Opted in to the monthly newsletter.",
    },
    FieldDef {
        record_type: RecordType::Contact,
        key: "loyalty_number",
        label: "Loyalty number",
        kind: FieldKind::Text,
        options: &[],
        description: "Harbour & Pine Rewards card number.",
    },
    FieldDef {
        record_type: RecordType::Contact,
        key: "current_vehicle",
        label: "Current vehicle",
        kind: FieldKind::Text,
        options: &[],
        description: "What they drive today (a trade-in candidate).",
    },
    FieldDef {
        record_type: RecordType::Company,
        key: "fleet_size",
        label: "Fleet size",
        kind: FieldKind::Number,
        options: &[],
        description: "Vehicles in the customer's fleet.",
    },
    FieldDef {
        record_type: RecordType::Company,
        key: "account_tier",
        label: "Account tier",
        kind: FieldKind::Enum,
        options: TIERS,
        description: "Fleet pricing tier.",
    },
    FieldDef {
        record_type: RecordType::Company,
        key: "contract_renewal",
        label: "Contract renewal",
        kind: FieldKind::Date,
        options: &[],
        description: "When the fleet maintenance contract is up for renewal.",
    },
];

/// (name, colour, description)
const TAGS: &[(&str, &str, &str)] = &[
    ("vip", "#d4a017", "Best customers: first call on new stock and events"),
    ("fleet", "#1f6feb", "Fleet accounts and their people"),
    ("service-customer", "#2da44e", "Brings a vehicle to our workshop"),
    ("newsletter", "#8250df", "Gets the monthly newsletter"),
    ("test-drive", "#fb8500", "Took a test drive"),
    ("lead", "#e5534b", "Has not bought yet"),
    ("trade-in", "#6e7781", "Had a trade-in appraisal"),
    ("ev-interest", "#0aa5a5", "Asked about electric vehicles"),
    ("lapsed", "#999999", "No visit in over two years"),
    ("net-30", "#57606a", "Invoiced on 30-day terms"),
    ("priority-service", "#cf222e", "Their vans jump the workshop queue"),
    ("ev-pilot", "#1a7f37", "Trialling EVs in their fleet"),
];

// ---------------------------------------------------------------------------------------------
// People and places
// ---------------------------------------------------------------------------------------------

struct City {
    name: &'static str,
    region: &'static str,
    tz: &'static str,
    postal: &'static [&'static str],
    /// Area codes the phone generator may use (US, MX, BR).
    area: &'static [&'static str],
    weight: u32,
}

/// A phone number as typed, and its digits with the country code (to avoid listing one twice).
struct Phone {
    key: String,
    text: String,
}

struct Country {
    code: &'static str,
    locales: &'static [&'static str],
    /// A national-flavoured mail domain under the reserved `.example` TLD.
    mail: &'static str,
    cities: &'static [City],
    /// `#` is replaced by the house number.
    streets: &'static [&'static str],
    phone: fn(&mut Gen, &City) -> Phone,
}

struct Heritage {
    male: &'static [&'static str],
    female: &'static [&'static str],
    last: &'static [&'static str],
    homes: &'static [&'static Country],
    /// Percent who live in their home country rather than the Bay Area.
    abroad: u32,
    weight: u32,
    /// The language a "prefers …" note names, when not English.
    language: Option<&'static str>,
}

const fn city(
    name: &'static str,
    region: &'static str,
    tz: &'static str,
    postal: &'static [&'static str],
    area: &'static [&'static str],
    weight: u32,
) -> City {
    City { name, region, tz, postal, area, weight }
}

const LA: &str = "America/Los_Angeles";

static US: Country = Country {
    code: "US",
    locales: &["en-US"],
    mail: "example.com",
    cities: &[
        city(
            "Oakland",
            "CA",
            LA,
            &["94601", "94602", "94606", "94607", "94609", "94610", "94611", "94612", "94618", "94619", "94621"],
            &["510", "341"],
            30,
        ),
        city(
            "San Francisco",
            "CA",
            LA,
            &[
                "94102", "94103", "94107", "94109", "94110", "94112", "94114", "94116", "94118", "94121", "94122", "94124",
                "94133",
            ],
            &["415", "628"],
            18,
        ),
        city("Berkeley", "CA", LA, &["94702", "94703", "94704", "94705", "94707", "94709", "94710"], &["510"], 8),
        city("Alameda", "CA", LA, &["94501", "94502"], &["510"], 8),
        city("San Leandro", "CA", LA, &["94577", "94578", "94579"], &["510"], 6),
        city("Hayward", "CA", LA, &["94541", "94542", "94544", "94545"], &["510"], 6),
        city("Fremont", "CA", LA, &["94536", "94538", "94539", "94555"], &["510"], 5),
        city("Emeryville", "CA", LA, &["94608"], &["510"], 3),
        city("Richmond", "CA", LA, &["94801", "94804", "94805"], &["510"], 4),
        city("Walnut Creek", "CA", LA, &["94595", "94596", "94597", "94598"], &["925"], 4),
        city("Daly City", "CA", LA, &["94014", "94015"], &["650", "415"], 4),
        city("San Jose", "CA", LA, &["95110", "95112", "95116", "95122", "95125", "95128"], &["408", "669"], 5),
        city("Palo Alto", "CA", LA, &["94301", "94303", "94306"], &["650"], 2),
        city("Sacramento", "CA", LA, &["95814", "95816", "95818", "95822"], &["916", "279"], 2),
        city("Los Angeles", "CA", LA, &["90012", "90026", "90034", "90042"], &["213", "323", "310"], 2),
        city("Seattle", "WA", LA, &["98101", "98103", "98115", "98122"], &["206"], 1),
        city("New York", "NY", "America/New_York", &["10001", "10011", "10025", "11215"], &["212", "646", "718"], 1),
        city("Chicago", "IL", "America/Chicago", &["60614", "60622", "60640"], &["312", "773"], 1),
        city("Boston", "MA", "America/New_York", &["02114", "02116", "02130"], &["617"], 1),
        city("Austin", "TX", "America/Chicago", &["78701", "78704", "78745"], &["512"], 1),
        city("Denver", "CO", "America/Denver", &["80202", "80205", "80210"], &["303", "720"], 1),
        city("Phoenix", "AZ", "America/Phoenix", &["85004", "85016"], &["602"], 1),
        city("Honolulu", "HI", "Pacific/Honolulu", &["96813", "96815", "96822"], &["808"], 1),
    ],
    streets: &[
        "# Telegraph Ave",
        "# Broadway",
        "# Grand Ave",
        "# Lakeshore Ave",
        "# Park Blvd",
        "# Fruitvale Ave",
        "# MacArthur Blvd",
        "# College Ave",
        "# Shattuck Ave",
        "# San Pablo Ave",
        "# International Blvd",
        "# Webster St",
        "# Mission St",
        "# Valencia St",
        "# Geary Blvd",
        "# Irving St",
        "# Clement St",
        "# El Camino Real",
        "# Santa Clara St",
        "# Park St",
    ],
    phone: us_phone,
};

static PH: Country = Country {
    code: "PH",
    locales: &["en-PH", "fil-PH"],
    mail: "mail.ph.example",
    cities: &[
        city("Manila", "Metro Manila", "Asia/Manila", &["1000", "1004", "1008"], &[], 3),
        city("Quezon City", "Metro Manila", "Asia/Manila", &["1100", "1101", "1105"], &[], 3),
        city("Makati", "Metro Manila", "Asia/Manila", &["1200", "1226", "1227"], &[], 2),
        city("Cebu City", "Cebu", "Asia/Manila", &["6000"], &[], 2),
        city("Davao City", "Davao del Sur", "Asia/Manila", &["8000"], &[], 1),
    ],
    streets: &["# Ayala Ave", "# Rizal St", "# Mabini St", "# Katipunan Ave", "# Osmeña Blvd"],
    phone: ph_phone,
};

static DE: Country = Country {
    code: "DE",
    locales: &["de-DE"],
    mail: "post.de.example",
    cities: &[
        city("Berlin", "Berlin", "Europe/Berlin", &["10115", "10245", "10437", "12043"], &["30"], 3),
        city("Hamburg", "Hamburg", "Europe/Berlin", &["20095", "22765"], &["40"], 2),
        city("München", "Bayern", "Europe/Berlin", &["80331", "80469", "81667"], &["89"], 2),
        city("Köln", "Nordrhein-Westfalen", "Europe/Berlin", &["50667", "50733"], &["221"], 1),
        city("Frankfurt am Main", "Hessen", "Europe/Berlin", &["60311", "60316"], &["69"], 1),
    ],
    streets: &["Friedrichstraße #", "Hauptstraße #", "Schillerstraße #", "Bahnhofstraße #", "Goethestraße #"],
    phone: de_phone,
};

static ES: Country = Country {
    code: "ES",
    locales: &["es-ES"],
    mail: "correo.es.example",
    cities: &[
        city("Madrid", "Comunidad de Madrid", "Europe/Madrid", &["28001", "28004", "28013"], &[], 3),
        city("Barcelona", "Cataluña", "Europe/Madrid", &["08001", "08012", "08036"], &[], 2),
        city("Valencia", "Comunitat Valenciana", "Europe/Madrid", &["46001", "46021"], &[], 1),
        city("Sevilla", "Andalucía", "Europe/Madrid", &["41001", "41010"], &[], 1),
    ],
    streets: &["Calle Mayor, #", "Calle de Alcalá, #", "Avenida de la Constitución, #", "Carrer de Balmes, #"],
    phone: es_phone,
};

static MX: Country = Country {
    code: "MX",
    locales: &["es-MX"],
    mail: "correo.mx.example",
    cities: &[
        city("Ciudad de México", "CDMX", "America/Mexico_City", &["06700", "03100", "11000"], &["55"], 3),
        city("Guadalajara", "Jalisco", "America/Mexico_City", &["44100", "44600"], &["33"], 2),
        city("Monterrey", "Nuevo León", "America/Monterrey", &["64000", "64620"], &["81"], 2),
    ],
    streets: &["Av. Insurgentes Sur #", "Calle Madero #", "Av. Juárez #", "Calle Morelos #"],
    phone: mx_phone,
};

static NG: Country = Country {
    code: "NG",
    locales: &["en-NG", "yo-NG", "ig-NG"],
    mail: "mail.ng.example",
    cities: &[
        city("Lagos", "Lagos", "Africa/Lagos", &["100001", "101233", "106104"], &[], 3),
        city("Abuja", "FCT", "Africa/Lagos", &["900001", "900211"], &[], 2),
        city("Port Harcourt", "Rivers", "Africa/Lagos", &["500001", "500272"], &[], 1),
        city("Ibadan", "Oyo", "Africa/Lagos", &["200001"], &[], 1),
    ],
    streets: &["# Awolowo Rd", "# Adeola Odeku St", "# Aminu Kano Cres", "# Allen Ave"],
    phone: ng_phone,
};

static IN: Country = Country {
    code: "IN",
    locales: &["en-IN", "hi-IN", "ta-IN", "kn-IN"],
    mail: "mail.in.example",
    cities: &[
        city("Bengaluru", "Karnataka", "Asia/Kolkata", &["560001", "560034", "560038"], &[], 3),
        city("Mumbai", "Maharashtra", "Asia/Kolkata", &["400001", "400050", "400076"], &[], 2),
        city("Chennai", "Tamil Nadu", "Asia/Kolkata", &["600001", "600017", "600040"], &[], 2),
        city("Pune", "Maharashtra", "Asia/Kolkata", &["411001", "411038"], &[], 1),
        city("Hyderabad", "Telangana", "Asia/Kolkata", &["500001", "500034"], &[], 1),
    ],
    streets: &["# MG Road", "# Brigade Road", "# Linking Road", "# Anna Salai"],
    phone: in_phone,
};

static CN: Country = Country {
    code: "CN",
    locales: &["zh-CN"],
    mail: "mail.cn.example",
    cities: &[
        city("Shanghai", "Shanghai", "Asia/Shanghai", &["200000", "200040"], &["21"], 3),
        city("Chengdu", "Sichuan", "Asia/Shanghai", &["610000", "610041"], &["28"], 2),
        city("Shenzhen", "Guangdong", "Asia/Shanghai", &["518000", "518057"], &["755"], 2),
        city("Guangzhou", "Guangdong", "Asia/Shanghai", &["510000", "510620"], &["20"], 1),
        city("Hangzhou", "Zhejiang", "Asia/Shanghai", &["310000"], &["571"], 1),
    ],
    streets: &["# Nanjing Rd", "# Huaihai Rd", "# Jianguo Rd", "# Shennan Blvd"],
    phone: cn_phone,
};

static PL: Country = Country {
    code: "PL",
    locales: &["pl-PL"],
    mail: "poczta.pl.example",
    cities: &[
        city("Warszawa", "mazowieckie", "Europe/Warsaw", &["00-001", "00-950", "02-495"], &[], 3),
        city("Kraków", "małopolskie", "Europe/Warsaw", &["30-001", "31-154"], &[], 2),
        city("Gdańsk", "pomorskie", "Europe/Warsaw", &["80-001", "80-831"], &[], 1),
        city("Wrocław", "dolnośląskie", "Europe/Warsaw", &["50-001", "53-332"], &[], 1),
        city("Poznań", "wielkopolskie", "Europe/Warsaw", &["60-001", "61-888"], &[], 1),
    ],
    streets: &["ul. Marszałkowska #", "ul. Floriańska #", "ul. Długa #", "ul. Piotrkowska #"],
    phone: pl_phone,
};

static VN: Country = Country {
    code: "VN",
    locales: &["vi-VN"],
    mail: "mail.vn.example",
    cities: &[
        city("Ho Chi Minh City", "", "Asia/Ho_Chi_Minh", &["700000"], &[], 3),
        city("Hanoi", "", "Asia/Ho_Chi_Minh", &["100000"], &[], 2),
        city("Da Nang", "", "Asia/Ho_Chi_Minh", &["550000"], &[], 1),
    ],
    streets: &["# Le Loi", "# Nguyen Hue", "# Tran Hung Dao", "# Hang Bai"],
    phone: vn_phone,
};

static KR: Country = Country {
    code: "KR",
    locales: &["ko-KR"],
    mail: "mail.kr.example",
    cities: &[
        city("Seoul", "", "Asia/Seoul", &["04524", "06164", "03187"], &["2"], 3),
        city("Busan", "", "Asia/Seoul", &["48058", "47285"], &["51"], 1),
        city("Incheon", "", "Asia/Seoul", &["21999"], &["32"], 1),
    ],
    streets: &["# Teheran-ro", "# Sejong-daero", "# Haeundae-ro"],
    phone: kr_phone,
};

static BR: Country = Country {
    code: "BR",
    locales: &["pt-BR"],
    mail: "email.br.example",
    cities: &[
        city("Rio de Janeiro", "RJ", "America/Sao_Paulo", &["22021-001", "20040-002"], &["21"], 3),
        city("Belo Horizonte", "MG", "America/Sao_Paulo", &["30130-010"], &["31"], 2),
        city("Curitiba", "PR", "America/Sao_Paulo", &["80010-000"], &["41"], 1),
        city("Porto Alegre", "RS", "America/Sao_Paulo", &["90010-000", "90035-001"], &["51"], 1),
        city("Salvador", "BA", "America/Bahia", &["40020-000"], &["71"], 1),
    ],
    streets: &["Av. Atlântica, #", "Rua da Bahia, #", "Rua XV de Novembro, #", "Av. Borges de Medeiros, #"],
    phone: br_phone,
};

static JP: Country = Country {
    code: "JP",
    locales: &["ja-JP"],
    mail: "mail.jp.example",
    cities: &[
        city("Tokyo", "Tokyo", "Asia/Tokyo", &["100-0005", "150-0002", "160-0022"], &[], 3),
        city("Osaka", "Osaka", "Asia/Tokyo", &["530-0001", "542-0086"], &[], 2),
        city("Yokohama", "Kanagawa", "Asia/Tokyo", &["220-0012"], &[], 1),
        city("Fukuoka", "Fukuoka", "Asia/Tokyo", &["810-0001"], &[], 1),
    ],
    streets: &["Shibuya 2-chome", "Umeda 1-chome", "Nishi-Shinjuku 6-chome", "Minatomirai 3-chome"],
    phone: jp_phone,
};

static HERITAGES: &[Heritage] = &[
    Heritage {
        male: &["James", "Michael", "Robert", "William", "Daniel", "Tyler", "Ryan", "Matthew", "Kevin", "Brian"],
        female: &["Emily", "Sarah", "Jessica", "Ashley", "Megan", "Hannah", "Rachel", "Lauren", "Amanda", "Nicole"],
        last: &[
            "Johnson", "Miller", "Davis", "Wilson", "Anderson", "Thompson", "Moore", "Clark", "Walker", "Bennett", "Foster",
            "Hughes",
        ],
        homes: &[&US],
        abroad: 0,
        weight: 22,
        language: None,
    },
    Heritage {
        male: &["Jose", "Mark", "John Paul", "Jericho", "Rodel", "Ramon", "Christian", "Arnel", "Paolo", "Jomar"],
        female: &["Maria", "Angelica", "Kristine", "Rowena", "Maricel", "Lovely", "Joy", "Rosalie", "Jocelyn", "Camille"],
        last: &[
            "Santos",
            "Reyes",
            "Cruz",
            "Bautista",
            "Ocampo",
            "Mendoza",
            "Dela Cruz",
            "Villanueva",
            "Aquino",
            "Pascual",
            "Manalo",
            "Castillo",
        ],
        homes: &[&PH],
        abroad: 25,
        weight: 11,
        language: Some("Tagalog"),
    },
    Heritage {
        male: &["Lukas", "Jonas", "Felix", "Maximilian", "Tobias", "Jürgen", "Stefan", "Florian", "Matthias", "Niklas"],
        female: &["Anna", "Lea", "Sophie", "Katharina", "Sabine", "Julia", "Lena", "Miriam", "Johanna", "Ursula"],
        last: &[
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Becker",
            "Hoffmann",
            "Schäfer",
            "Koch",
            "Wagner",
            "Zimmermann",
            "Braun",
        ],
        homes: &[&DE],
        abroad: 35,
        weight: 4,
        language: Some("German"),
    },
    Heritage {
        male: &["Alejandro", "Javier", "Diego", "Pablo", "Mateo", "Andrés", "Carlos", "Luis", "Miguel", "Raúl"],
        female: &["Lucía", "Carmen", "Sofía", "Valentina", "Guadalupe", "Ximena", "Isabel", "Elena", "Paola", "Rocío"],
        last: &[
            "García",
            "Martínez",
            "López",
            "Hernández",
            "González",
            "Rodríguez",
            "Sánchez",
            "Ramírez",
            "Torres",
            "Flores",
            "Morales",
            "Ortega",
        ],
        homes: &[&MX, &ES],
        abroad: 20,
        weight: 16,
        language: Some("Spanish"),
    },
    Heritage {
        male: &["Chinedu", "Oluwaseun", "Emeka", "Tunde", "Ifeanyi", "Babajide", "Chukwuemeka", "Segun", "Obinna", "Kelechi"],
        female: &["Ngozi", "Adaeze", "Funmilayo", "Chiamaka", "Yetunde", "Amaka", "Folake", "Nkechi", "Bisola", "Ifeoma"],
        last: &[
            "Okafor", "Adeyemi", "Okonkwo", "Balogun", "Eze", "Nwosu", "Adebayo", "Obi", "Ogunleye", "Chukwu", "Afolabi",
            "Olawale",
        ],
        homes: &[&NG],
        abroad: 25,
        weight: 5,
        language: None,
    },
    Heritage {
        male: &["Aarav", "Rohan", "Vikram", "Arjun", "Rahul", "Sanjay", "Karthik", "Aditya", "Nikhil", "Suresh"],
        female: &["Priya", "Ananya", "Deepika", "Kavya", "Sneha", "Lakshmi", "Meera", "Pooja", "Divya", "Asha"],
        last: &["Sharma", "Patel", "Iyer", "Reddy", "Gupta", "Nair", "Singh", "Kapoor", "Menon", "Desai", "Joshi", "Rao"],
        homes: &[&IN],
        abroad: 25,
        weight: 9,
        language: None,
    },
    Heritage {
        male: &["Wei", "Jun", "Hao", "Zhiwei", "Haoran", "Yuxuan", "Ming", "Jian", "Lei", "Tao"],
        female: &["Mei", "Yan", "Lin", "Xiu", "Jiayi", "Ling", "Fang", "Xin", "Hui", "Yue"],
        last: &["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun"],
        homes: &[&CN],
        abroad: 20,
        weight: 12,
        language: Some("Mandarin"),
    },
    Heritage {
        male: &["Jakub", "Kacper", "Piotr", "Tomasz", "Michał", "Wojciech", "Krzysztof", "Marek", "Paweł", "Łukasz"],
        female: &["Zofia", "Maja", "Agnieszka", "Katarzyna", "Magdalena", "Ewa", "Joanna", "Małgorzata", "Aleksandra", "Natalia"],
        last: &[
            "Nowak",
            "Kowalski",
            "Wiśniewski",
            "Wójcik",
            "Kowalczyk",
            "Kamiński",
            "Lewandowski",
            "Zieliński",
            "Szymański",
            "Woźniak",
            "Dąbrowski",
            "Kozłowski",
        ],
        homes: &[&PL],
        abroad: 35,
        weight: 3,
        language: Some("Polish"),
    },
    Heritage {
        male: &["Minh", "Duc", "Tuan", "Quang", "Hieu", "Khoa", "Long", "Nam", "Thanh", "Vinh"],
        female: &["Linh", "Anh", "Huong", "Thao", "Mai", "Ngoc", "Trang", "Lan", "Hoa", "Nhung"],
        last: &["Nguyen", "Tran", "Le", "Pham", "Hoang", "Phan", "Vu", "Dang", "Bui", "Do", "Ho", "Ngo"],
        homes: &[&VN],
        abroad: 15,
        weight: 7,
        language: Some("Vietnamese"),
    },
    Heritage {
        male: &["Min-jun", "Ji-hoon", "Hyun-woo", "Dong-hyun", "Jae-won", "Sung-min", "Tae-yang", "Joon-ho"],
        female: &["Seo-yeon", "Ji-woo", "Su-bin", "Eun-ji", "Ha-eun", "Min-seo", "Ye-jin", "Hye-won"],
        last: &["Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim"],
        homes: &[&KR],
        abroad: 25,
        weight: 4,
        language: Some("Korean"),
    },
    Heritage {
        male: &["João", "Pedro", "Lucas", "Gabriel", "Rafael", "Thiago", "Bruno", "Mateus"],
        female: &["Ana", "Beatriz", "Juliana", "Camila", "Fernanda", "Larissa", "Mariana", "Letícia"],
        last: &["Silva", "Souza", "Oliveira", "Costa", "Pereira", "Almeida", "Ferreira", "Carvalho", "Ribeiro", "Rocha"],
        homes: &[&BR],
        abroad: 35,
        weight: 3,
        language: Some("Portuguese"),
    },
    Heritage {
        male: &["Haruto", "Ren", "Sota", "Takeshi", "Kenta", "Hiroshi", "Daiki", "Yuto"],
        female: &["Yui", "Aoi", "Hina", "Yuki", "Sakura", "Emi", "Naoko", "Keiko"],
        last: &["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi", "Yoshida"],
        homes: &[&JP],
        abroad: 30,
        weight: 4,
        language: Some("Japanese"),
    },
];

/// Personal mail domains, all under reserved names.
const MAIL_DOMAINS: &[&str] =
    &["example.com", "example.net", "example.org", "mail.example", "inbox.example", "post.example", "webmail.example"];

// ---------------------------------------------------------------------------------------------
// Phone numbers: ranges that libphonenumber accepts as valid, in the shapes people type.
//
// No foreign number here starts with 1 after its country code: with US as the default region,
// the `phonenumber` crate strips that 1 as if it were the US trunk prefix (+49 171 2345678 is
// read as +49 71 2345678), so German, Chinese and Korean contacts get landlines and Brazilian
// ones live outside area code 11. See whisperfish/rust-phonenumber issues #68 and #76.
// ---------------------------------------------------------------------------------------------

fn us_phone(g: &mut Gen, city: &City) -> Phone {
    let area = g.pick(city.area);
    // 555-1212 and 555-4334 are real services; the rest of 555 is left to fiction.
    let line = loop {
        let l = g.rng.u16(100..10_000);
        if l != 1212 && l != 4334 {
            break l;
        }
    };
    let text = match g.rng.u8(0..10) {
        0..=2 => format!("({area}) 555-{line:04}"),
        3 | 4 => format!("{area}.555.{line:04}"),
        5 | 6 => format!("{area}-555-{line:04}"),
        7 => format!("+1 {area} 555 {line:04}"),
        8 => format!("1-{area}-555-{line:04}"),
        _ => format!("{area}555{line:04}"),
    };
    Phone { key: format!("1{area}555{line:04}"), text }
}

fn ph_phone(g: &mut Gen, _: &City) -> Phone {
    let p = g.pick(&["905", "906", "915", "916", "917", "918", "919", "920", "926", "927", "935", "945", "977", "995", "998"]);
    let (a, b) = (g.digits(3), g.digits(4));
    let text = match g.rng.u8(0..4) {
        0 => format!("+63 {p} {a} {b}"),
        1 => format!("+63{p}{a}{b}"),
        2 => format!("+63 ({p}) {a}-{b}"),
        _ => format!("+63-{p}-{a}-{b}"),
    };
    Phone { key: format!("63{p}{a}{b}"), text }
}

fn de_phone(g: &mut Gen, city: &City) -> Phone {
    let area = g.pick(city.area);
    let rest = format!("{}{}", g.rng.u8(2..10), g.digits(if area.len() == 3 { 6 } else { 7 }));
    let text = match g.rng.u8(0..3) {
        0 => format!("+49 {area} {rest}"),
        1 => format!("+49{area}{rest}"),
        _ => format!("+49-{area}-{rest}"),
    };
    Phone { key: format!("49{area}{rest}"), text }
}

fn es_phone(g: &mut Gen, _: &City) -> Phone {
    let first = if g.chance(80) { format!("6{}", g.digits(2)) } else { format!("7{}{}", g.rng.u8(1..5), g.digits(1)) };
    let (a, b) = (g.digits(3), g.digits(3));
    let text = match g.rng.u8(0..3) {
        0 => format!("+34 {first} {a} {b}"),
        1 => format!("+34 {first} {} {} {}{}", &a[..2], &a[2..], &b[..1], &b[1..]),
        _ => format!("+34{first}{a}{b}"),
    };
    Phone { key: format!("34{first}{a}{b}"), text }
}

fn mx_phone(g: &mut Gen, city: &City) -> Phone {
    let area = g.pick(city.area);
    let a = format!("{}{}", g.rng.u8(2..10), g.digits(3));
    let b = g.digits(4);
    let text = match g.rng.u8(0..3) {
        0 => format!("+52 {area} {a} {b}"),
        1 => format!("+52 ({area}) {a}-{b}"),
        _ => format!("+52{area}{a}{b}"),
    };
    Phone { key: format!("52{area}{a}{b}"), text }
}

fn ng_phone(g: &mut Gen, _: &City) -> Phone {
    let p = g.pick(&[
        "803", "805", "806", "807", "808", "809", "810", "813", "814", "816", "703", "706", "708", "802", "812", "902", "903",
    ]);
    let (a, b) = (g.digits(3), g.digits(4));
    let text = match g.rng.u8(0..3) {
        0 => format!("+234 {p} {a} {b}"),
        1 => format!("+234{p}{a}{b}"),
        _ => format!("+234-{p}-{a}-{b}"),
    };
    Phone { key: format!("234{p}{a}{b}"), text }
}

fn in_phone(g: &mut Gen, _: &City) -> Phone {
    let p = g.pick(&[
        "98", "99", "97", "96", "94", "93", "91", "90", "88", "87", "86", "85", "84", "81", "80", "79", "78", "77", "76", "75",
        "73", "72", "70",
    ]);
    let (a, b) = (g.digits(3), g.digits(5));
    let text = match g.rng.u8(0..3) {
        0 => format!("+91 {p}{a} {b}"),
        1 => format!("+91-{p}{a}-{b}"),
        _ => format!("+91{p}{a}{b}"),
    };
    Phone { key: format!("91{p}{a}{b}"), text }
}

fn cn_phone(g: &mut Gen, city: &City) -> Phone {
    let area = g.pick(city.area);
    // Subscriber numbers starting 61-69 exist in every city listed; 800 and friends do not.
    let (a, b) = (format!("6{}{}", g.rng.u8(1..10), g.digits(2)), g.digits(4));
    let text = match g.rng.u8(0..3) {
        0 => format!("+86 {area} {a} {b}"),
        1 => format!("+86-{area}-{a}{b}"),
        _ => format!("+86{area}{a}{b}"),
    };
    Phone { key: format!("86{area}{a}{b}"), text }
}

fn pl_phone(g: &mut Gen, _: &City) -> Phone {
    let p = g.pick(&[
        "501", "505", "509", "512", "530", "600", "601", "602", "604", "660", "661", "690", "691", "693", "696", "721", "724",
        "730", "781", "790", "792", "880", "884",
    ]);
    let (a, b) = (g.digits(3), g.digits(3));
    let text = match g.rng.u8(0..3) {
        0 => format!("+48 {p} {a} {b}"),
        1 => format!("+48 {p}-{a}-{b}"),
        _ => format!("+48{p}{a}{b}"),
    };
    Phone { key: format!("48{p}{a}{b}"), text }
}

fn vn_phone(g: &mut Gen, _: &City) -> Phone {
    let p = g.pick(&[
        "90", "91", "93", "94", "96", "97", "98", "32", "33", "34", "35", "36", "37", "38", "39", "70", "76", "77", "78", "79",
        "81", "82", "83", "84", "85",
    ]);
    let (a, b) = (g.digits(3), g.digits(4));
    let text = match g.rng.u8(0..3) {
        0 => format!("+84 {p} {a} {b}"),
        1 => format!("+84{p}{a}{b}"),
        _ => format!("+84 {p}-{a}-{b}"),
    };
    Phone { key: format!("84{p}{a}{b}"), text }
}

fn kr_phone(g: &mut Gen, city: &City) -> Phone {
    let area = g.pick(city.area);
    // Seoul numbers have eight digits after the area code, the other cities seven.
    let a = format!("{}{}", g.rng.u8(2..10), g.digits(if *area == "2" { 3 } else { 2 }));
    let b = g.digits(4);
    let text = match g.rng.u8(0..3) {
        0 => format!("+82 {area}-{a}-{b}"),
        1 => format!("+82 {area} {a} {b}"),
        _ => format!("+82{area}{a}{b}"),
    };
    Phone { key: format!("82{area}{a}{b}"), text }
}

fn br_phone(g: &mut Gen, city: &City) -> Phone {
    let area = g.pick(city.area);
    let (a, b) = (g.digits(4), g.digits(4));
    let text = match g.rng.u8(0..3) {
        0 => format!("+55 {area} 9{a}-{b}"),
        1 => format!("+55 ({area}) 9{a}-{b}"),
        _ => format!("+55{area}9{a}{b}"),
    };
    Phone { key: format!("55{area}9{a}{b}"), text }
}

fn jp_phone(g: &mut Gen, _: &City) -> Phone {
    let p = g.pick(&["90", "80", "70"]);
    // Japanese mobile numbers never continue with 0 after the prefix.
    let a = format!("{}{}", g.rng.u8(1..10), g.digits(3));
    let b = g.digits(4);
    let text = match g.rng.u8(0..3) {
        0 => format!("+81 {p}-{a}-{b}"),
        1 => format!("+81 {p} {a} {b}"),
        _ => format!("+81{p}{a}{b}"),
    };
    Phone { key: format!("81{p}{a}{b}"), text }
}

// ---------------------------------------------------------------------------------------------
// Companies
// ---------------------------------------------------------------------------------------------

const COMPANY_PREFIXES: &[&str] = &[
    "Bayview",
    "Redwood",
    "Golden Gate",
    "Mission",
    "Cascade",
    "Summit",
    "Pacific",
    "Cypress",
    "Granite",
    "Ironwood",
    "Sierra",
    "Coastal",
    "Northstar",
    "Blue Oak",
    "Presidio",
    "Alameda",
    "Sunset",
    "Marina",
    "Twin Peaks",
    "Lakeshore",
    "Fruitvale",
    "Temescal",
    "Diablo",
    "Tamalpais",
    "Embarcadero",
    "Eastshore",
    "Oakmont",
    "Bridgeview",
    "Harborside",
    "Canyon",
    "Madrone",
    "Sequoia",
    "Pinecrest",
    "Shoreline",
    "Foothill",
    "Baylight",
    "Crescent",
    "Keystone",
    "Clearwater",
    "Tidewater",
];

/// (trade, industry)
const TRADES: &[(&str, &str)] = &[
    ("Plumbing", "Construction & trades"),
    ("Electric", "Construction & trades"),
    ("Heating & Air", "Construction & trades"),
    ("Roofing", "Construction & trades"),
    ("Builders", "Construction & trades"),
    ("Landscaping", "Landscaping"),
    ("Tree Care", "Landscaping"),
    ("Logistics", "Transport & logistics"),
    ("Couriers", "Transport & logistics"),
    ("Movers", "Transport & logistics"),
    ("Catering", "Food & hospitality"),
    ("Bakery", "Food & hospitality"),
    ("Property Management", "Real estate"),
    ("Realty", "Real estate"),
    ("Home Health", "Healthcare"),
    ("Veterinary Clinic", "Healthcare"),
    ("Medical Transport", "Healthcare"),
    ("Pest Control", "Facility services"),
    ("Cleaning Services", "Facility services"),
    ("Security", "Facility services"),
    ("Appliance Repair", "Facility services"),
    ("Florists", "Retail"),
    ("Solar", "Energy"),
    ("Tours", "Travel & leisure"),
    ("Produce", "Wholesale"),
    ("Linen Supply", "Wholesale"),
    ("Charter Schools", "Education"),
];

const COMPANY_SUFFIXES: &[(&str, u32)] =
    &[("", 40), (" Co.", 12), (" LLC", 16), (" Inc.", 14), (" Group", 6), (" & Sons", 4), (" Partners", 4), (" Services", 4)];

/// (index into COMPANY_SIZES, weight, fleet size range)
const SIZE_BANDS: &[(usize, u32, (u32, u32))] =
    &[(0, 5, (1, 3)), (1, 40, (2, 7)), (2, 35, (4, 21)), (3, 15, (10, 61)), (4, 5, (25, 121))];

const COMPANY_ROLES: &[(&str, u32)] = &[
    ("driver", 30),
    ("operations manager", 12),
    ("office manager", 10),
    ("CFO", 6),
    ("procurement", 8),
    ("accounts payable", 8),
    ("technician", 12),
    ("dispatcher", 8),
    ("owner", 3),
];

const SECOND_ROLES: &[&str] = &["consultant", "board member", "former fleet manager", "part-time driver"];

struct CompanyInfo {
    name: String,
    fleet: u32,
}

// ---------------------------------------------------------------------------------------------
// Vehicles and note material
// ---------------------------------------------------------------------------------------------

/// (model, first model year), so nobody drives a 2012 Mustang Mach-E.
const CARS: &[(&str, i32)] = &[
    ("Toyota RAV4 Hybrid", 2016),
    ("Toyota Camry", 1990),
    ("Toyota Corolla", 1990),
    ("Toyota Tacoma", 1995),
    ("Honda CR-V", 1997),
    ("Honda Civic", 1990),
    ("Honda Odyssey", 1995),
    ("Ford F-150", 1990),
    ("Ford Maverick", 2022),
    ("Ford Mustang Mach-E", 2021),
    ("Hyundai Ioniq 5", 2022),
    ("Hyundai Tucson", 2005),
    ("Kia EV6", 2022),
    ("Kia Telluride", 2020),
    ("Subaru Outback", 1995),
    ("Subaru Forester", 1998),
    ("Chevrolet Bolt EUV", 2022),
    ("Mazda CX-5", 2013),
    ("Nissan Leaf", 2011),
    ("Volkswagen ID.4", 2021),
];

const FLEET_VEHICLES: &[&str] = &[
    "Ford Transit 250",
    "Ford E-Transit",
    "Ram ProMaster 2500",
    "Mercedes-Benz Sprinter",
    "Ford F-250",
    "Toyota Tacoma",
    "Chevrolet Silverado 1500",
    "Nissan NV200",
];

const COLORS: &[&str] = &["silver", "white", "black", "midnight blue", "red", "grey", "green"];
const LENDERS: &[&str] =
    &["Golden Coast Credit Union", "Tidewater Auto Finance", "Pine Financial Services", "Eastbay Members Credit Union"];

// ---------------------------------------------------------------------------------------------
// The plan: every record to create, generated up front from the seed
// ---------------------------------------------------------------------------------------------

/// What the notes and relations need to know about a generated contact.
struct Person {
    heritage: usize,
    female: bool,
    first: Option<String>,
    last: Option<String>,
    birth_year: Option<i32>,
    owner: Option<Uuid>,
    service: bool,
    vip: bool,
    /// What the event history needs (see [`events`]).
    lead: bool,
    abroad: bool,
    fleet: bool,
    lapsed: bool,
    test_drive: bool,
    /// The newsletter custom field, when set.
    newsletter: Option<bool>,
    /// The first email address, as typed.
    email: Option<String>,
    /// Vehicle kinds asked about, in the catalogue's spelling.
    interests: Vec<&'static str>,
}

impl Person {
    fn call(&self) -> &str {
        self.first.as_deref().unwrap_or("the customer")
    }

    fn full_name(&self) -> String {
        match (&self.first, &self.last) {
            (Some(f), Some(l)) => format!("{f} {l}"),
            (Some(n), None) | (None, Some(n)) => n.clone(),
            (None, None) => "a web lead".into(),
        }
    }
}

struct LinkPlan {
    contact: usize,
    company: usize,
    role: &'static str,
    primary: bool,
}

struct RelationPlan {
    contact: usize,
    kind: RelationKind,
    custom_kind: Option<String>,
    related: Option<usize>,
    name: Option<String>,
    birthday: Option<String>,
    notes: Option<String>,
}

enum On {
    Contact(usize),
    Company(usize),
}

struct NotePlan {
    on: On,
    body: String,
    author: Uuid,
    pinned: bool,
}

struct Plan {
    companies: Vec<CompanyDraft>,
    contacts: Vec<ContactDraft>,
    links: Vec<LinkPlan>,
    relations: Vec<RelationPlan>,
    notes: Vec<NotePlan>,
    people: Vec<Person>,
}

impl Plan {
    /// Everything for `contacts` people, scaled from the 3000-contact business: about 120
    /// companies, 350 company links, 300 relations and 1500 notes.
    fn new(contacts: usize, seed: u64, today: NaiveDate, team: &Team) -> Plan {
        let mut g =
            Gen { rng: Rng::with_seed(seed), today, emails: HashSet::new(), names: HashSet::new(), domains: HashSet::new() };
        let n_companies = (contacts / 25).clamp(3, 120);
        let n_links = contacts * 7 / 60;
        let n_relations = contacts / 10;
        let n_notes = contacts / 2;

        let mut companies = Vec::with_capacity(n_companies);
        let mut infos = Vec::with_capacity(n_companies);
        let mut domains = Vec::with_capacity(n_companies);
        for _ in 0..n_companies {
            let (draft, info, domain) = g.company(team);
            companies.push(draft);
            infos.push(info);
            domains.push(domain);
        }

        let links = g.links(contacts, n_companies, n_links);
        let mut primary_of: Vec<Option<&LinkPlan>> = (0..contacts).map(|_| None).collect();
        for l in links.iter().filter(|l| l.primary) {
            primary_of[l.contact] = Some(l);
        }

        let mut drafts = Vec::with_capacity(contacts);
        let mut people = Vec::with_capacity(contacts);
        for (i, link) in primary_of.iter().enumerate() {
            let work = link.map(|l| (l.company, l.role, domains[l.company].as_deref()));
            let (draft, person) = g.contact(i, work, team);
            drafts.push(draft);
            people.push(person);
        }

        let relations = g.relations(&people, &links, n_relations);
        let notes = g.notes(&people, &infos, &links, team, n_notes);
        Plan { companies, contacts: drafts, links, relations, notes, people }
    }
}

struct Gen {
    rng: Rng,
    today: NaiveDate,
    /// Email addresses handed out so far (normalised): the store refuses duplicates.
    emails: HashSet<String>,
    names: HashSet<String>,
    domains: HashSet<String>,
}

impl Gen {
    /// `items` is never empty: every list here is a non-empty constant.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.u32(..total);
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        &items[items.len() - 1].0
    }

    fn weighted_by<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
        let total: u32 = items.iter().map(&weight).sum();
        let mut x = self.rng.u32(..total);
        for item in items {
            let w = weight(item);
            if x < w {
                return item;
            }
            x -= w;
        }
        &items[items.len() - 1]
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.u32(..100) < percent
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.rng.u8(..10))).collect()
    }

    fn date_ago(&self, days: i64) -> NaiveDate {
        self.today - Duration::days(days)
    }

    fn day_ago(&mut self, min: i64, max: i64) -> String {
        let days = self.rng.i64(min..max);
        self.date_ago(days).format("%b %-d, %Y").to_string()
    }

    fn day_ahead(&mut self, min: i64, max: i64) -> String {
        let d = self.today + Duration::days(self.rng.i64(min..max));
        d.format("%b %-d").to_string()
    }

    fn member(&mut self, team: &Team) -> Member {
        if team.sales.is_empty() { team.manager } else { *self.pick(&team.sales) }
    }

    fn car(&mut self) -> String {
        let year = self.today.year() + 1 - self.rng.i32(0..3);
        format!("{year} {}", self.pick(CARS).0)
    }

    fn old_car(&mut self) -> String {
        let (model, since) = *self.pick(CARS);
        let year = (self.today.year() - self.rng.i32(4..17)).max(since);
        format!("{year} {model}")
    }

    // -- companies ------------------------------------------------------------------------------

    fn company(&mut self, team: &Team) -> (CompanyDraft, CompanyInfo, Option<String>) {
        let (trade, industry) = *self.pick(TRADES);
        let mut attempt = 0;
        let base = loop {
            attempt += 1;
            let lead = if self.chance(30) {
                let h = self.weighted_by(HERITAGES, |h| h.weight);
                self.pick(h.last).to_string()
            } else {
                self.pick(COMPANY_PREFIXES).to_string()
            };
            let mut name = match self.rng.u8(..10) {
                0 => format!("{lead} Brothers {trade}"),
                1 => format!("{lead} Bay {trade}"),
                _ => format!("{lead} {trade}"),
            };
            if attempt > 20 {
                name = format!("{name} {attempt}");
            }
            if self.names.insert(name.to_lowercase()) {
                break name;
            }
        };
        let name = format!("{base}{}", self.weighted(COMPANY_SUFFIXES));

        let domain = if self.chance(90) {
            let slug: String = ascii_fold(&base.replace(" & ", "and"));
            let mut d = format!("{slug}.example");
            let mut k = 1;
            while !self.domains.insert(d.clone()) {
                k += 1;
                d = format!("{slug}{k}.example");
            }
            Some(d)
        } else {
            None
        };
        // People paste domains in every shape; the store keeps the bare host.
        let typed_domain = domain.as_ref().map(|d| match self.rng.u8(..10) {
            0 => format!("https://www.{d}/"),
            1 => format!("www.{d}"),
            2 => d.to_uppercase(),
            _ => d.clone(),
        });

        let (size_idx, _, (lo, hi)) = *self.weighted_by(SIZE_BANDS, |b| b.1);
        let fleet = self.rng.u32(lo..hi);
        let tier = match fleet {
            0..5 => TIERS[0],
            5..15 => TIERS[1],
            15..40 => TIERS[2],
            _ => TIERS[3],
        };
        let owner = if fleet >= 15 && self.chance(50) { team.manager } else { self.member(team) };

        let mut tags = vec!["fleet".to_string()];
        if self.chance(30) {
            tags.push("net-30".into());
        }
        if fleet >= 10 && self.chance(40) {
            tags.push("priority-service".into());
        }
        if self.chance(10) {
            tags.push("ev-pilot".into());
        }

        let mut fields = Map::new();
        fields.insert("fleet_size".into(), json!(fleet));
        fields.insert("account_tier".into(), json!(tier));
        if self.chance(70) {
            let renewal = self.today + Duration::days(self.rng.i64(10..400));
            fields.insert("contract_renewal".into(), json!(renewal.format("%Y-%m-%d").to_string()));
        }

        let draft = CompanyDraft {
            name: Some(name.clone()),
            domain: typed_domain,
            industry: Some(industry.into()),
            size: Some(COMPANY_SIZES[size_idx].into()),
            owner_id: Some(owner.id),
            tags: Some(tags),
            custom_fields: Some(fields),
        };
        (draft, CompanyInfo { name, fleet }, domain)
    }

    /// Which contacts work where. Every company gets a fleet manager or owner first; about
    /// one linked contact in eleven also has a second, non-primary link.
    fn links(&mut self, contacts: usize, companies: usize, n_links: usize) -> Vec<LinkPlan> {
        let n_primary = (n_links * 10 / 11).min(contacts);
        let mut order: Vec<usize> = (0..contacts).collect();
        self.rng.shuffle(&mut order);
        let mut links = Vec::with_capacity(n_links);
        for (k, &contact) in order.iter().take(n_primary).enumerate() {
            let (company, role) = if k < companies {
                (k, if self.chance(70) { "fleet manager" } else { "owner" })
            } else {
                (self.rng.usize(..companies), *self.weighted(COMPANY_ROLES))
            };
            links.push(LinkPlan { contact, company, role, primary: true });
        }
        let extra = n_links.saturating_sub(n_primary).min(n_primary);
        if companies > 1 {
            // Spread the second links evenly over the linked contacts.
            for j in 0..extra {
                let k = j * n_primary / extra;
                let (contact, home) = (links[k].contact, links[k].company);
                let other = (home + 1 + self.rng.usize(..companies - 1)) % companies;
                let role = *self.pick(SECOND_ROLES);
                links.push(LinkPlan { contact, company: other, role, primary: false });
            }
        }
        links
    }

    // -- contacts -------------------------------------------------------------------------------

    fn contact(&mut self, i: usize, work: Option<(usize, &'static str, Option<&str>)>, team: &Team) -> (ContactDraft, Person) {
        let hi = {
            let h = self.weighted_by(HERITAGES, |h| h.weight);
            HERITAGES.iter().position(|x| std::ptr::eq(x, h)).unwrap_or(0)
        };
        let h = &HERITAGES[hi];
        let female = self.rng.bool();
        let mut first = Some(self.pick(if female { h.female } else { h.male }).to_string());
        let mut last = Some(feminine(self.pick::<&str>(h.last), female && std::ptr::eq(h.homes[0], &PL)));
        let middle = if std::ptr::eq(h.homes[0], &PH) && self.chance(40) {
            // Filipinos often carry the mother's maiden name as a middle name.
            Some(self.pick(h.last).to_string()).filter(|m| Some(m) != last.as_ref())
        } else if std::ptr::eq(h.homes[0], &US) && self.chance(15) {
            Some(format!("{}.", self.rng.uppercase()))
        } else {
            None
        };

        let abroad = work.is_none() && self.chance(h.abroad);
        let country: &Country = if abroad { self.pick::<&Country>(h.homes) } else { &US };
        let city = self.weighted_by(country.cities, |c| c.weight);

        // A few records are thin: a web form with only an email, a walk-in who left a first name.
        let thin = self.rng.u8(..100);
        let (nameless, first_only) = (work.is_none() && thin < 2, work.is_none() && (2..4).contains(&thin));
        if nameless {
            first = None;
            last = None;
        } else if first_only {
            last = None;
        }

        let age = 18 + self.rng.i32(0..45) + self.rng.i32(0..23);
        let birthday = if !nameless && self.chance(60) {
            if self.chance(80) {
                let year = self.today.year() - age;
                let date = NaiveDate::from_yo_opt(year, self.rng.u32(1..366)).unwrap_or(self.today);
                Some(date.min(self.date_ago(18 * 365)).format("%Y-%m-%d").to_string())
            } else {
                // Leap year, so 29 February can come up.
                let date = NaiveDate::from_yo_opt(2000, self.rng.u32(1..367)).unwrap_or(self.today);
                Some(date.format("--%m-%d").to_string())
            }
        } else {
            None
        };
        let birth_year = birthday.as_deref().filter(|b| !b.starts_with("--")).map(|_| self.today.year() - age);

        // Emails.
        let mut emails = Vec::new();
        if let Some((_, _, Some(domain))) = work {
            let address = self.email(first.as_deref(), last.as_deref(), domain, i, true);
            emails.push(EmailDraft { address, label: Some("work".into()), primary: None });
        }
        let personal = if nameless {
            1
        } else if work.is_some() {
            usize::from(self.chance(45))
        } else {
            *self.weighted(&[(0usize, 12), (1, 70), (2, 18)])
        };
        for k in 0..personal {
            let domain = if abroad && self.chance(40) { country.mail } else { *self.pick(MAIL_DOMAINS) };
            let address = self.email(first.as_deref(), last.as_deref(), domain, i, false);
            let label = match self.rng.u8(..5) {
                0 | 1 => Some("personal".to_string()),
                2 if k == 0 => Some("home".into()),
                3 => Some("Personal".into()),
                _ => None,
            };
            emails.push(EmailDraft { address, label, primary: None });
        }
        // Some people want the personal address used even when the work one came first.
        if emails.len() > 1 && self.chance(30) {
            emails[1].primary = Some(true);
        }

        // Phones.
        let n_phones =
            if first_only { 1 + usize::from(self.chance(20)) } else { *self.weighted(&[(0usize, 12), (1, 63), (2, 25)]) };
        let mut phones: Vec<PhoneDraft> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for k in 0..n_phones {
            let p = (country.phone)(self, city);
            if keys.contains(&p.key) {
                continue;
            }
            keys.push(p.key);
            let label = match (k, self.rng.u8(..6)) {
                (0, 0..=2) => Some("mobile".to_string()),
                (0, 3) => Some("Mobile".into()),
                (_, 0 | 1) => Some("home".into()),
                (_, 2) => Some("work".into()),
                (_, 3) => Some("whatsapp".into()),
                _ => None,
            };
            let text = if self.chance(5) { format!(" {} ", p.text) } else { p.text };
            phones.push(PhoneDraft { number: text, label, primary: None });
        }
        if work.is_some() && self.chance(40) {
            // The office line, with an extension now and then.
            let office = &US.cities[0];
            let p = us_phone(self, office);
            if !keys.contains(&p.key) {
                let number = if self.chance(40) { format!("{} x{}", p.text, self.rng.u16(100..400)) } else { p.text };
                phones.push(PhoneDraft { number, label: Some("work".into()), primary: None });
            }
        }

        let time_zone = self.chance(85).then(|| city.tz.to_string());
        let locale = self.chance(80).then(|| {
            if abroad {
                // Mostly the country's main locale.
                let main = self.chance(70);
                if main { country.locales[0].to_string() } else { self.pick(country.locales).to_string() }
            } else if let (Some(lang), true) = (h.language, self.chance(25)) {
                format!("{}-US", language_code(lang))
            } else {
                "en-US".to_string()
            }
        });
        let address = self.chance(70).then(|| self.address(country, city));

        let source = if work.is_some() {
            *self.pick(&["referral", "event", "import", "phone"])
        } else {
            *self.weighted(&[("walk-in", 25), ("website", 25), ("referral", 15), ("phone", 10), ("event", 8), ("import", 17)])
        };

        let lead = self.chance(25);
        // People living abroad rarely bring a car to an Oakland workshop.
        let service = !lead && !abroad && self.chance(45);
        let vip = !lead && self.chance(5);
        let owner = if !self.chance(90) {
            None
        } else if service && self.chance(40) {
            Some(team.service.id)
        } else if vip && self.chance(50) {
            Some(team.owner.id)
        } else {
            Some(self.member(team).id)
        };

        let mut tags: Vec<String> = Vec::new();
        let mut tag = |t: &str| tags.push(t.to_string());
        if lead {
            tag(if i.is_multiple_of(7) { "Lead" } else { "lead" });
        }
        if service {
            tag("service-customer");
        }
        if vip {
            tag(if i.is_multiple_of(5) { "VIP" } else { "vip" });
        }
        if work.is_some() {
            tag("fleet");
        }
        if self.chance(18) {
            tags.push("test-drive".into());
        }
        if self.chance(8) {
            tags.push("trade-in".into());
        }
        if !lead && self.chance(8) {
            tags.push("lapsed".into());
        }

        let mut fields = Map::new();
        if self.chance(65) {
            let mut ways = Vec::new();
            if !emails.is_empty() {
                ways.extend(["email", "Email"]);
            }
            if !phones.is_empty() {
                ways.extend(["phone", "sms", "SMS"]);
            }
            if !ways.is_empty() {
                fields.insert("preferred_contact_method".into(), json!(self.pick(&ways)));
            }
        }
        if self.chance(45) {
            let n = self.rng.usize(1..4);
            let picked: Vec<&str> = self.rng.choose_multiple(INTERESTS.iter().copied(), n);
            if picked.iter().any(|p| p.eq_ignore_ascii_case("ev")) {
                tags.push("ev-interest".into());
            }
            // Typed in any case; the catalogue stores its own spelling.
            let typed: Vec<String> =
                picked.iter().map(|p| if self.chance(30) { p.to_lowercase() } else { p.to_string() }).collect();
            fields.insert("vehicle_interest".into(), json!(typed));
        }
        if self.chance(25) {
            let dollars = self.rng.u64(24..190) * 500;
            let currency = if self.chance(10) { "usd" } else { "USD" };
            fields.insert("budget".into(), json!({"amount_minor": dollars * 100, "currency": currency}));
        }
        if !lead && self.chance(55) {
            let days = self.rng.i64(60..4500);
            let since = self.date_ago(days);
            fields.insert("customer_since".into(), json!(since.format("%Y-%m-%d").to_string()));
        }
        if self.chance(55) {
            let yes = self.chance(60);
            fields.insert("newsletter".into(), json!(yes));
            if yes && self.chance(90) {
                tags.push("newsletter".into());
            }
        }
        if !lead && !abroad && self.chance(30) {
            fields.insert("loyalty_number".into(), json!(format!("HP-{:06}", 100_000 + i)));
        }
        if self.chance(35) {
            fields.insert("current_vehicle".into(), json!(self.old_car()));
        }

        let external_ids =
            self.chance(40).then(|| vec![ExternalIdDraft { source: "dms".into(), id: format!("DMS-{:06}", i + 1) }]);

        let title = match work {
            Some((_, role, _)) => Some(title_case(role)),
            None if self.chance(4) => Some(self.pick(&["Dr.", "Prof.", "Rev.", "Atty.", "Engr."]).to_string()),
            None => None,
        };

        let draft = ContactDraft {
            first_name: first.clone(),
            middle_name: middle,
            last_name: last.clone(),
            display_name: None,
            title,
            emails: Some(emails),
            phones: Some(phones),
            birthday,
            time_zone,
            locale,
            address,
            source: Some(source.into()),
            owner_id: owner,
            tags: Some(tags),
            custom_fields: Some(fields),
            external_ids,
        };
        let has_tag = |t: &str| draft.tags.iter().flatten().any(|x| x == t);
        let (test_drive, lapsed) = (has_tag("test-drive"), has_tag("lapsed"));
        let fields = draft.custom_fields.as_ref();
        let newsletter = fields.and_then(|f| f.get("newsletter")).and_then(|v| v.as_bool());
        let interests = fields
            .and_then(|f| f.get("vehicle_interest"))
            .and_then(|v| v.as_array())
            .map(|typed| {
                INTERESTS
                    .iter()
                    .copied()
                    .filter(|i| typed.iter().any(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case(i))))
                    .collect()
            })
            .unwrap_or_default();
        let email = draft.emails.iter().flatten().next().map(|e| e.address.clone());
        let person = Person {
            heritage: hi,
            female,
            first,
            last,
            birth_year,
            owner,
            service,
            vip,
            lead,
            abroad,
            fleet: work.is_some(),
            lapsed,
            test_drive,
            newsletter,
            email,
            interests,
        };
        (draft, person)
    }

    /// A unique address for contact `i`, typed the way people type them.
    fn email(&mut self, first: Option<&str>, last: Option<&str>, domain: &str, i: usize, work: bool) -> String {
        let f = first.map(ascii_fold).filter(|s| !s.is_empty());
        let l = last.map(ascii_fold).filter(|s| !s.is_empty());
        let letters = match (f, l) {
            (Some(f), Some(l)) if work => match self.rng.u8(..3) {
                0 => format!("{}{l}", &f[..1]),
                _ => format!("{f}.{l}"),
            },
            (Some(f), Some(l)) => match self.rng.u8(..6) {
                0 | 1 => format!("{f}.{l}"),
                2 => format!("{f}{l}"),
                3 => format!("{}{l}", &f[..1]),
                4 => format!("{f}_{l}"),
                _ => format!("{l}.{f}"),
            },
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => self.pick(&["hello", "info", "carhunter", "roadtrip", "commuter"]).to_string(),
        };
        let mut local = if !work && self.chance(25) { format!("{letters}{}", self.rng.u32(1..100)) } else { letters.clone() };
        while !self.emails.insert(format!("{local}@{domain}")) {
            local = format!("{letters}{}", i + self.rng.usize(1..10_000));
        }
        let address = format!("{local}@{domain}");
        match self.rng.u8(..100) {
            0..12 => capitalise_parts(&address),
            12..14 => address.to_uppercase(),
            14..20 => format!(" {address} "),
            _ => address,
        }
    }

    fn address(&mut self, country: &Country, city: &City) -> Address {
        let us = std::ptr::eq(country, &US);
        let street = (us && self.chance(85) || !us && self.chance(55)).then(|| {
            let number = if us { self.rng.u32(100..9999) } else { self.rng.u32(1..240) };
            self.pick(country.streets).replace('#', &number.to_string())
        });
        let street2 = (street.is_some() && self.chance(12)).then(|| match self.rng.u8(..3) {
            0 => format!("Apt {}", self.rng.u32(1..40)),
            1 => format!("Unit {}{}", self.rng.u32(1..5), self.rng.uppercase()),
            _ => format!("Suite {}", self.rng.u32(100..400)),
        });
        let country_code = match self.rng.u8(..20) {
            0 => None,
            1 => Some(country.code.to_lowercase()),
            _ => Some(country.code.to_string()),
        };
        Address {
            street,
            street2,
            city: Some(city.name.to_string()),
            region: (!city.region.is_empty()).then(|| city.region.to_string()),
            postal_code: self.chance(85).then(|| self.pick(city.postal).to_string()),
            country: country_code,
        }
    }

    // -- relations ------------------------------------------------------------------------------

    fn relations(&mut self, people: &[Person], links: &[LinkPlan], n: usize) -> Vec<RelationPlan> {
        let mut out: Vec<RelationPlan> = Vec::with_capacity(n);
        if people.len() < 2 {
            return out;
        }
        let mut has_spouse: HashSet<usize> = HashSet::new();
        let named: Vec<usize> = (0..people.len()).filter(|&i| people[i].first.is_some()).collect();
        if named.len() < 2 {
            return out;
        }
        let mut guard = 0;
        while out.len() < n && guard < n * 20 {
            guard += 1;
            let a = *self.pick(&named);
            let p = &people[a];
            let h = &HERITAGES[p.heritage];
            let kind = *self.weighted(&[(0u8, 40), (1, 16), (2, 8), (3, 17), (4, 5), (5, 5), (6, 4), (7, 3), (8, 2)]);
            let rel = match kind {
                0 => self.child(a, p, h),
                1 | 2 if has_spouse.contains(&a) => continue,
                1 => {
                    has_spouse.insert(a);
                    let first = self.pick(if p.female { h.male } else { h.female });
                    let name = match (&p.last, self.chance(70)) {
                        (Some(l), true) => format!("{first} {l}"),
                        _ => first.to_string(),
                    };
                    let birthday = self.chance(50).then(|| {
                        let d = NaiveDate::from_yo_opt(2000, self.rng.u32(1..367)).unwrap_or(self.today);
                        d.format("--%m-%d").to_string()
                    });
                    let notes = self.chance(30).then(|| {
                        self.pick(&[
                            "Anniversary in June.",
                            "Usually comes along for test drives.",
                            "Drives the second car on the account.",
                        ])
                        .to_string()
                    });
                    RelationPlan {
                        contact: a,
                        kind: RelationKind::Spouse,
                        custom_kind: None,
                        related: None,
                        name: Some(name),
                        birthday,
                        notes,
                    }
                }
                2 => {
                    let b = *self.pick(&named);
                    if b == a || has_spouse.contains(&b) {
                        continue;
                    }
                    has_spouse.insert(a);
                    has_spouse.insert(b);
                    if out.len() + 1 < n {
                        out.push(RelationPlan {
                            contact: b,
                            kind: RelationKind::Spouse,
                            custom_kind: None,
                            related: Some(a),
                            name: None,
                            birthday: None,
                            notes: None,
                        });
                    }
                    RelationPlan {
                        contact: a,
                        kind: RelationKind::Spouse,
                        custom_kind: None,
                        related: Some(b),
                        name: None,
                        birthday: None,
                        notes: None,
                    }
                }
                3 => {
                    let b = *self.pick(&named);
                    if b == a {
                        continue;
                    }
                    let notes = self.chance(60).then(|| {
                        let car = self.pick(CARS).0;
                        format!("{} sent them our way after buying a {car}.", people[b].full_name())
                    });
                    RelationPlan {
                        contact: a,
                        kind: RelationKind::ReferredBy,
                        custom_kind: None,
                        related: Some(b),
                        name: None,
                        birthday: None,
                        notes,
                    }
                }
                4 => {
                    // Two people at the same fleet customer.
                    let primaries: Vec<&LinkPlan> = links.iter().filter(|l| l.primary).collect();
                    if primaries.is_empty() {
                        continue;
                    }
                    let first = *self.pick(&primaries);
                    let mates: Vec<usize> = primaries
                        .iter()
                        .filter(|l| l.company == first.company && l.contact != first.contact)
                        .map(|l| l.contact)
                        .collect();
                    if mates.is_empty() || people[first.contact].first.is_none() {
                        continue;
                    }
                    let b = *self.pick(&mates);
                    RelationPlan {
                        contact: first.contact,
                        kind: RelationKind::Colleague,
                        custom_kind: None,
                        related: Some(b),
                        name: None,
                        birthday: None,
                        notes: None,
                    }
                }
                5 => {
                    let female = self.rng.bool();
                    let first = self.pick(if female { h.female } else { h.male });
                    let name = p.last.as_ref().map_or(first.to_string(), |l| format!("{first} {l}"));
                    let birthday = p.birth_year.map(|y| {
                        let year = y - self.rng.i32(22..36);
                        let d = NaiveDate::from_yo_opt(year, self.rng.u32(1..366)).unwrap_or(self.today);
                        d.format("%Y-%m-%d").to_string()
                    });
                    RelationPlan {
                        contact: a,
                        kind: RelationKind::Parent,
                        custom_kind: None,
                        related: None,
                        name: Some(name),
                        birthday,
                        notes: None,
                    }
                }
                6 => {
                    let female = self.rng.bool();
                    let first = self.pick(if female { h.female } else { h.male });
                    let name = p.last.as_ref().map_or(first.to_string(), |l| format!("{first} {l}"));
                    let notes = self.chance(50).then(|| "Also services their car with us.".to_string());
                    RelationPlan {
                        contact: a,
                        kind: RelationKind::Sibling,
                        custom_kind: None,
                        related: None,
                        name: Some(name),
                        birthday: None,
                        notes,
                    }
                }
                7 => {
                    if has_spouse.contains(&a) {
                        continue;
                    }
                    has_spouse.insert(a);
                    let name = self.stranger();
                    RelationPlan {
                        contact: a,
                        kind: RelationKind::Partner,
                        custom_kind: None,
                        related: None,
                        name: Some(name),
                        birthday: None,
                        notes: None,
                    }
                }
                _ => {
                    let custom = self.pick(&["godparent", "carpool buddy", "caregiver", "landlord"]).to_string();
                    let name = self.stranger();
                    RelationPlan {
                        contact: a,
                        kind: RelationKind::Custom,
                        custom_kind: Some(custom),
                        related: None,
                        name: Some(name),
                        birthday: None,
                        notes: None,
                    }
                }
            };
            out.push(rel);
        }
        out
    }

    /// Someone from any background, by full name.
    fn stranger(&mut self) -> String {
        let h = &HERITAGES[self.rng.usize(..HERITAGES.len())];
        let first = if self.rng.bool() { self.pick(h.female) } else { self.pick(h.male) };
        format!("{first} {}", self.pick(h.last))
    }

    /// A named child with a birthday; about a quarter turn 21 within the next two months.
    fn child(&mut self, a: usize, p: &Person, h: &Heritage) -> RelationPlan {
        let female = self.rng.bool();
        let first = self.pick(if female { h.female } else { h.male });
        let name = p.last.as_ref().map_or(first.to_string(), |l| format!("{first} {l}"));
        let (birthday, notes) = if self.chance(25) {
            let turns = self.today + Duration::days(self.rng.i64(1..60));
            let born = NaiveDate::from_ymd_opt(turns.year() - 21, turns.month(), turns.day())
                .or_else(|| NaiveDate::from_ymd_opt(turns.year() - 21, turns.month(), 28))
                .unwrap_or(turns);
            let pronoun = if female { "She" } else { "He" };
            let note = self.pick(&[
                "turns 21 soon and is looking at a first car.",
                "has a 21st coming up; parent mentioned a used Civic or Corolla as a gift.",
                "turns 21 — ask about the graduate rebate.",
            ]);
            (Some(born.format("%Y-%m-%d").to_string()), Some(format!("{pronoun} {note}")))
        } else {
            let max_age = p.birth_year.map_or(30, |y| (self.today.year() - y - 18).clamp(1, 40));
            let age = self.rng.i32(0..max_age.max(1) + 1);
            let date =
                NaiveDate::from_yo_opt(self.today.year() - age, self.rng.u32(1..366)).unwrap_or(self.today).min(self.today);
            let b = if self.chance(85) { date.format("%Y-%m-%d") } else { date.format("--%m-%d") };
            (Some(b.to_string()), None)
        };
        RelationPlan {
            contact: a,
            kind: RelationKind::Child,
            custom_kind: None,
            related: None,
            name: Some(name),
            birthday,
            notes,
        }
    }

    // -- notes ----------------------------------------------------------------------------------

    fn notes(
        &mut self,
        people: &[Person],
        companies: &[CompanyInfo],
        links: &[LinkPlan],
        team: &Team,
        n: usize,
    ) -> Vec<NotePlan> {
        let mut out = Vec::with_capacity(n);
        if people.is_empty() {
            return out;
        }
        for _ in 0..n {
            if !companies.is_empty() && self.chance(15) {
                let c = self.rng.usize(..companies.len());
                let buyer = links.iter().find(|l| l.company == c && l.primary).map(|l| people[l.contact].call());
                let (body, pinned) = self.company_note(&companies[c], buyer, team);
                let author = if self.chance(70) { self.member(team).id } else { team.manager.id };
                out.push(NotePlan { on: On::Company(c), body, author, pinned });
            } else {
                let i = self.rng.usize(..people.len());
                let p = &people[i];
                let (body, author, pinned) = if self.chance(5) {
                    let author = p.owner.unwrap_or(team.owner.id);
                    (self.preference_note(p, team), author, true)
                } else if p.service && self.chance(60) {
                    (self.service_note(p, team), team.service.id, false)
                } else {
                    let author = match p.owner {
                        Some(o) if o != team.service.id => o,
                        _ => self.member(team).id,
                    };
                    (self.sales_note(p, team), author, self.chance(2))
                };
                out.push(NotePlan { on: On::Contact(i), body, author, pinned });
            }
        }
        out
    }

    fn sales_note(&mut self, p: &Person, team: &Team) -> String {
        let who = p.call().to_string();
        let car = self.car();
        match self.rng.u8(..9) {
            0 => {
                let color = self.pick(COLORS);
                let liked = self.pick(&[
                    "the ride height and the quiet cabin",
                    "the cargo space with the seats folded",
                    "adaptive cruise on the 880 stretch",
                    "the 360° camera for parking downtown",
                ]);
                let worry = self.pick(&[
                    "the monthly payment",
                    "range on the drive to Tahoe",
                    "third-row legroom for the kids",
                    "insurance for a teenage driver",
                    "the wait for the trim they want",
                ]);
                let monthly = usd(self.rng.u32(35..80) * 10);
                let next = self.pick(&[
                    "send two finance options by Friday.",
                    "call back after they talk it over at home.",
                    "book a second drive with their partner on Saturday.",
                    "check incoming stock for the colour they want.",
                ]);
                format!(
                    "**Test drive:** {car} ({color})\n\n- Liked {liked}\n- Worried about {worry}\n- Wants to stay under {monthly}/month\n\nNext step: {next}"
                )
            }
            1 => {
                let old = self.old_car();
                let miles = thousands(self.rng.u32(40..180) * 1000 + self.rng.u32(..1000));
                let cond = self.pick(&[
                    "clean interior, light scratches on the rear bumper",
                    "needs front tires",
                    "check-engine light on (likely the O2 sensor)",
                    "one owner, full service history with us",
                ]);
                let offer = self.rng.u32(4..25) * 1000;
                let hope = offer + self.rng.u32(1..5) * 500;
                let outcome = self.pick(&[
                    "Agreed to think it over.",
                    "Accepted once we matched the KBB number.",
                    "Will try selling privately first.",
                    "Manager approved an extra $500 to close.",
                ]);
                format!(
                    "Trade-in appraisal: {old}, {miles} mi, {cond}.\n\nOffered **{}**; {who} was hoping for {}. {outcome}",
                    usd(offer),
                    usd(hope)
                )
            }
            2 => {
                let outcome = self.pick(&[
                    "Still interested but waiting on a bonus at work.",
                    "Left a voicemail.",
                    "Asked us to hold the car until Saturday; told them 24 hours with a refundable deposit.",
                    "Bought elsewhere: the other dealer was $1,200 lower.",
                    "Wants the lease numbers for 24 months instead of 36.",
                ]);
                let when = self.day_ahead(2, 21);
                format!("Called {who} about the {car}. {outcome}\n\nFollow up on {when}.")
            }
            3 => {
                let day = self.day_ago(1, 400);
                let body = self.pick(&[
                    "small SUVs",
                    "hybrids",
                    "used pickups",
                    "EVs with 250+ miles of range",
                    "minivans",
                    "commuter sedans",
                ]);
                let budget = usd(self.rng.u32(15..60) * 1000);
                let extra = match self.rng.u8(..4) {
                    0 => "Came with their teenager, who just got a learner's permit. ".to_string(),
                    1 => format!("Currently driving a {}. ", self.old_car()),
                    2 => "Commutes over the Bay Bridge every day. ".to_string(),
                    _ => String::new(),
                };
                format!("Walk-in on {day}. Browsing {body} under {budget}. {extra}Gave them my card.")
            }
            4 => {
                let lender = self.pick(LENDERS);
                let apr = format!("{}.{}", self.rng.u8(3..9), self.rng.u8(..10));
                let months = self.pick(&[36, 48, 60, 72]);
                let down = usd(self.rng.u32(1..12) * 1000);
                format!(
                    "Credit application sent to {lender}. Approved at **{apr}% APR** for {months} months with {down} down.\n\n- [x] Proof of income\n- [x] Insurance card\n- [ ] Second ID"
                )
            }
            5 => {
                let color = self.pick(COLORS);
                let first_service = self.day_ahead(150, 200);
                format!(
                    "### Delivered 🎉\n\n{car}, {color}. Paired {who}'s phone, set up the app and walked through the driver-assist features.\n\nFirst service due at 5,000 mi (around {first_service})."
                )
            }
            6 => {
                let monthly = usd(self.rng.u32(29..65) * 10 + 9);
                let due = usd(self.rng.u32(2..5) * 1000 - 1);
                format!(
                    "Emailed the brochure for the {car} and this month's lease offer: {monthly}/mo, 36 months, 10k mi/yr, {due} due at signing."
                )
            }
            7 => {
                let time = self.pick(&["9:30", "10:30", "1:00", "3:15", "5:45"]);
                format!("No-show for the {time} test drive. Left a voicemail and sent a text.")
            }
            _ => {
                let msrp = self.rng.u32(26..70) * 1000 + 995;
                let ours = msrp - self.rng.u32(5..30) * 100;
                let ask = ours - self.rng.u32(5..25) * 100;
                format!(
                    "Worked the numbers on the {car}: MSRP {}, we're at {} plus doc fee. {who} wants {}. {} to decide.",
                    usd(msrp),
                    usd(ours),
                    usd(ask),
                    team.manager.first
                )
            }
        }
    }

    fn service_note(&mut self, p: &Person, team: &Team) -> String {
        let car = self.old_car();
        if self.chance(8) {
            let hours = self.rng.u8(2..5);
            return format!(
                "{} was unhappy about the wait ({hours} hours for an oil change). Apologised, comped the car wash and added a **$50 credit** to the account. Flag for {}.",
                p.call(),
                team.manager.first
            );
        }
        let date = self.day_ago(3, 700);
        let work = match self.rng.u8(..10) {
            0 => "60,000-mile service".to_string(),
            1 => "Oil and filter change".into(),
            2 => "Front brake pads and rotors".into(),
            3 => "Tire rotation and alignment".into(),
            4 => "12V battery replacement".into(),
            5 => "A/C recharge".into(),
            6 => "Check-engine light diagnosis".into(),
            7 => format!("Recall campaign {}V-{:03}", self.today.year() % 100 - 1, self.rng.u16(100..900)),
            8 => "Windshield chip repair".into(),
            _ => "Smog check".into(),
        };
        let finding = match self.rng.u8(..6) {
            0 => format!("Rear pads at 3 mm; quoted **{}**, customer declined for now.", usd(self.rng.u32(28..45) * 10)),
            1 => "All good; topped up the washer fluid.".to_string(),
            2 => "Cabin air filter was filthy; replaced with approval.".into(),
            3 => "Found a nail in the rear left tire; patched at no charge.".into(),
            4 => format!("Coolant seeping at the water pump; part ordered, back in on {}.", self.day_ahead(2, 14)),
            _ => "Customer waited in the lounge; done in under an hour.".into(),
        };
        let miles = thousands(self.rng.u32(8..160) * 1000 + self.rng.u32(..1000));
        let loaner = if self.chance(30) { "yes" } else { "no" };
        format!("### Service visit, {date}\n\n**{work}** on the {car}. {finding}\n\n- Mileage: {miles}\n- Loaner: {loaner}")
    }

    fn preference_note(&mut self, p: &Person, team: &Team) -> String {
        let h = &HERITAGES[p.heritage];
        match (self.rng.u8(..5), h.language) {
            (0, Some(lang)) => {
                let helper = if lang == "Spanish" {
                    format!("{} can take the call", team.sales.first().map_or("Marisol", |m| m.first))
                } else {
                    "use the interpreter line if needed".into()
                };
                format!("**Prefers {lang}** for anything contractual; {helper}.")
            }
            (1, _) => "**Prefers texts after 6pm.** Works nights; please don't call before noon.".into(),
            (2, _) => "**No financing offers.** Paid cash last time and was annoyed by the follow-up calls.".into(),
            (3, _) if p.vip => format!(
                "**VIP:** several cars from us over the years. {} knows the family; loop her in on big purchases.",
                team.owner.first
            ),
            _ => "**Allergic to dogs**; keep Biscuit (the showroom dog) in the office when they visit.".into(),
        }
    }

    fn company_note(&mut self, c: &CompanyInfo, buyer: Option<&str>, team: &Team) -> (String, bool) {
        let vehicle = self.pick(FLEET_VEHICLES);
        let units = self.rng.u32(1..(c.fleet / 3).max(1) + 2);
        let contact = buyer.unwrap_or("their fleet manager");
        match self.rng.u8(..7) {
            0 => {
                let q = self.rng.u8(1..5);
                let staff = self.member(team).first;
                let by = self.day_ahead(3, 20);
                (
                    format!(
                        "## Quarterly fleet review: {}\n\nMet with {contact}.\n\n- {units} of {} vehicles due for replacement in Q{q}\n- Interested in an EV pilot: 2 × Ford E-Transit\n- Wants one consolidated monthly service invoice\n\n**Action:** {staff} sends a quote by {by}.",
                        c.name, c.fleet
                    ),
                    false,
                )
            }
            1 => {
                let upfit = self.pick(&[
                    "shelving and a ladder rack",
                    "a partition and rubber flooring",
                    "refrigeration",
                    "a tow package",
                    "company livery",
                ]);
                let total = units * self.rng.u32(38..62) * 1000;
                (
                    format!(
                        "Quote Q-{} sent: {units} × {vehicle} with {upfit}. Total **{}** before tax. Valid 30 days.",
                        2000 + self.rng.u32(..8000),
                        usd(total)
                    ),
                    false,
                )
            }
            2 => {
                let (from, to) = (self.day_ahead(14, 30), self.day_ahead(31, 60));
                (
                    format!(
                        "PO {} received for {units} × {vehicle}. Delivery window {from} to {to}; upfitter booked.",
                        self.po()
                    ),
                    false,
                )
            }
            3 => (
                "Signed a 12-month fleet maintenance plan: oil changes, rotations, a priority bay and net-30 invoicing.".into(),
                false,
            ),
            4 => {
                let ends = self.day_ahead(20, 90);
                (
                    format!(
                        "**Renewal:** the maintenance contract ends {ends}. Talk to {contact} before then; they have a quote from another dealer."
                    ),
                    true,
                )
            }
            5 => (
                "One of their vans was rear-ended on I-880. Arranged a loaner and sent the estimate to their insurer.".into(),
                false,
            ),
            _ => (
                format!(
                    "Billing contact changed; invoices now go to accounts payable. PO references look like {} from now on.",
                    self.po()
                ),
                false,
            ),
        }
    }

    fn po(&mut self) -> String {
        format!("PO-{}-{:04}", self.today.year(), self.rng.u32(1..10_000))
    }
}

// ---------------------------------------------------------------------------------------------
// Small text helpers
// ---------------------------------------------------------------------------------------------

/// Lower-case ASCII letters and digits for email local parts and domains: "Müller" → "mueller".
fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'ä' | 'Ä' => out.push_str("ae"),
            'ö' | 'Ö' => out.push_str("oe"),
            'ü' | 'Ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'á' | 'à' | 'â' | 'ã' | 'ą' | 'Á' => out.push('a'),
            'é' | 'è' | 'ê' | 'ę' | 'É' => out.push('e'),
            'í' | 'ì' | 'î' | 'Í' => out.push('i'),
            'ó' | 'ò' | 'ô' | 'õ' | 'Ó' => out.push('o'),
            'ú' | 'ù' | 'û' | 'Ú' => out.push('u'),
            'ñ' | 'ń' => out.push('n'),
            'ç' | 'ć' => out.push('c'),
            'ł' | 'Ł' => out.push('l'),
            'ś' | 'Ś' => out.push('s'),
            'ź' | 'ż' | 'Ż' | 'Ź' => out.push('z'),
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    out
}

/// Polish surnames ending in -ski/-cki take -ska/-cka for women.
fn feminine(last: &str, polish_woman: bool) -> String {
    if polish_woman && let Some(stem) = last.strip_suffix("ki") {
        return format!("{stem}ka");
    }
    last.to_string()
}

fn language_code(language: &str) -> &'static str {
    match language {
        "Tagalog" => "fil",
        "German" => "de",
        "Spanish" => "es",
        "Mandarin" => "zh",
        "Polish" => "pl",
        "Vietnamese" => "vi",
        "Korean" => "ko",
        "Portuguese" => "pt",
        "Japanese" => "ja",
        _ => "en",
    }
}

/// "ana.santos@mail.example" → "Ana.Santos@Mail.Example".
fn capitalise_parts(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        out.push(if start { c.to_ascii_uppercase() } else { c });
        start = matches!(c, '.' | '_' | '@');
    }
    out
}

/// "fleet manager" → "Fleet Manager"; "CFO" stays.
fn title_case(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1234567` as `1,234,567` (also used by the benchmarks' reports).
pub(crate) fn thousands(n: impl Into<u64>) -> String {
    let n: u64 = n.into();
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn usd(dollars: u32) -> String {
    format!("${}", thousands(dollars))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use rapport_core::clock::ManualClock;
    use rapport_core::company::CompanyInput;
    use rapport_core::contact::ContactInput;
    use rapport_core::custom_field::{Catalogue, CustomFieldDefinition, CustomFieldSpec};
    use rapport_core::{PhoneNumber, PhoneRegion};
    use rapport_store::{DatabaseUrl, StoreOptions};

    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    /// The printed login works, and a new run replaces it.
    #[tokio::test]
    async fn the_demo_login_signs_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("d.db")), StoreOptions::default()).unwrap();
        let (email, first) = ensure_login(&store).await.unwrap();
        let (_, second) = ensure_login(&store).await.unwrap();
        assert_ne!(first, second);
        assert!(second.len() >= 12);
        let (user, hash) = store.find_login(EmailAddress::parse(&email).unwrap()).await.unwrap().expect("the owner");
        assert_eq!(user.role, Role::Admin);
        let hash = hash.expect("a password");
        assert!(rapport_web::password::verify(&second, &hash));
        assert!(!rapport_web::password::verify(&first, &hash));
    }

    fn fake_team() -> Team {
        let ids: Vec<Uuid> = (0..STAFF.len()).map(|i| Uuid::from_u128(i as u128 + 1)).collect();
        Team::new(&ids)
    }

    fn catalogue(rt: RecordType) -> Catalogue {
        let defs = FIELDS
            .iter()
            .filter(|f| f.record_type == rt)
            .map(|f| {
                let s = CustomFieldSpec::parse(f.draft()).unwrap();
                CustomFieldDefinition {
                    id: Uuid::nil(),
                    record_type: s.record_type,
                    key: s.key,
                    label: s.label,
                    kind: s.kind,
                    required: s.required,
                    options: s.options,
                    description: s.description,
                    created_at: Default::default(),
                    updated_at: Default::default(),
                }
            })
            .collect();
        Catalogue::new(defs)
    }

    #[test]
    fn every_phone_generator_makes_valid_numbers() {
        let mut g = Gen {
            rng: Rng::with_seed(7),
            today: today(),
            emails: HashSet::new(),
            names: HashSet::new(),
            domains: HashSet::new(),
        };
        let mut bad = Vec::new();
        for country in [&US, &PH, &DE, &ES, &MX, &NG, &IN, &CN, &PL, &VN, &KR, &BR, &JP] {
            for city in country.cities {
                for _ in 0..3000 {
                    let p = (country.phone)(&mut g, city);
                    match PhoneNumber::parse(&p.text, PhoneRegion::default()) {
                        Ok(parsed) if parsed.digits() != p.key => {
                            bad.push(format!("{} ({}): read as {}", p.text, country.code, parsed.e164()))
                        }
                        Ok(_) => {}
                        Err(e) => bad.push(format!("{} ({}): {e}", p.text, country.code)),
                    }
                }
            }
        }
        bad.sort();
        assert!(bad.is_empty(), "{} invalid numbers:\n{}", bad.len(), bad.join("\n"));
    }

    #[test]
    fn every_generated_contact_and_company_is_valid() {
        // 2026 is the seed `rapport demo` uses.
        for seed in [42, 2026] {
            let plan = Plan::new(3000, seed, today(), &fake_team());
            let contacts = catalogue(RecordType::Contact);
            let mut seen = HashSet::new();
            let mut external = HashSet::new();
            for d in &plan.contacts {
                for e in d.emails.iter().flatten() {
                    let parsed = EmailAddress::parse(&e.address).unwrap_or_else(|m| panic!("{}: {m}", e.address));
                    assert!(parsed.domain().ends_with(".example") || parsed.domain().starts_with("example."), "{parsed}");
                    assert!(seen.insert(parsed.to_string()), "duplicate {parsed}");
                }
                for p in d.phones.iter().flatten() {
                    PhoneNumber::parse(&p.number, PhoneRegion::default()).unwrap_or_else(|m| panic!("{}: {m}", p.number));
                }
                for x in d.external_ids.iter().flatten() {
                    assert!(external.insert(x.id.clone()), "duplicate {}", x.id);
                }
                let input =
                    ContactInput::parse(d.clone(), PhoneRegion::default(), today()).unwrap_or_else(|e| panic!("{d:?}: {e}"));
                contacts.validate(input.custom_fields, PhoneRegion::default()).unwrap();
            }
            let companies = catalogue(RecordType::Company);
            for d in &plan.companies {
                let input = CompanyInput::parse(d.clone()).unwrap_or_else(|e| panic!("{d:?}: {e}"));
                assert!(input.domain.as_deref().is_none_or(|d| d.ends_with(".example")));
                companies.validate(input.custom_fields, PhoneRegion::default()).unwrap();
            }
            assert_eq!(plan.companies.len(), 120);
            assert_eq!(plan.links.len(), 350);
            assert_eq!(plan.relations.len(), 300);
            assert_eq!(plan.notes.len(), 1500);
            assert_eq!(
                plan.contacts.iter().filter(|c| c.title.is_some() && c.tags.iter().flatten().any(|t| t == "fleet")).count(),
                318
            );
        }
    }

    #[test]
    fn the_story_holds() {
        let plan = Plan::new(3000, 42, today(), &fake_team());
        // Children turning 21 in the coming weeks, relative to the clock.
        let soon = plan
            .relations
            .iter()
            .filter(|r| r.kind == RelationKind::Child)
            .filter_map(|r| NaiveDate::parse_from_str(r.birthday.as_deref()?, "%Y-%m-%d").ok())
            .filter(|b| {
                let turns = b.with_year(b.year() + 21).unwrap_or(*b);
                turns > today() && turns <= today() + Duration::days(60)
            })
            .count();
        assert!(soon >= 10, "{soon} children turn 21 soon");
        for kind in [RelationKind::Spouse, RelationKind::ReferredBy, RelationKind::Colleague] {
            assert!(plan.relations.iter().any(|r| r.kind == kind), "{kind:?}");
        }
        assert!(plan.relations.iter().all(|r| r.related != Some(r.contact)));
        assert!(plan.notes.iter().any(|n| n.pinned));
        assert!(plan.notes.iter().any(|n| matches!(n.on, On::Company(_))));
        let linked_primary = plan.links.iter().filter(|l| l.primary).count();
        assert_eq!(linked_primary, plan.links.iter().filter(|l| l.primary).map(|l| l.contact).collect::<HashSet<_>>().len());
    }

    #[test]
    fn same_seed_same_business() {
        let a = Plan::new(300, 9, today(), &fake_team());
        let b = Plan::new(300, 9, today(), &fake_team());
        let emails = |p: &Plan| -> Vec<String> {
            p.contacts.iter().flat_map(|c| c.emails.iter().flatten().map(|e| e.address.clone())).collect()
        };
        assert_eq!(emails(&a), emails(&b));
        let c = Plan::new(300, 10, today(), &fake_team());
        assert_ne!(emails(&a), emails(&c));
    }

    #[test]
    fn tiny_businesses_work_too() {
        for n in [0, 1, 2, 7, 30] {
            let plan = Plan::new(n, 3, today(), &fake_team());
            assert_eq!(plan.contacts.len(), n);
            assert!(plan.links.iter().all(|l| l.contact < n && l.company < plan.companies.len()));
            assert!(plan.relations.iter().all(|r| r.contact < n && r.related.is_none_or(|b| b < n && b != r.contact)));
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(ascii_fold("Müller"), "mueller");
        assert_eq!(ascii_fold("Dela Cruz"), "delacruz");
        assert_eq!(ascii_fold("Wiśniewski"), "wisniewski");
        assert_eq!(feminine("Kowalski", true), "Kowalska");
        assert_eq!(feminine("Nowak", true), "Nowak");
        assert_eq!(capitalise_parts("ana.santos@mail.example"), "Ana.Santos@Mail.Example");
        assert_eq!(title_case("fleet manager"), "Fleet Manager");
        assert_eq!(usd(1234567), "$1,234,567");
        assert_eq!(usd(950), "$950");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeds_a_fresh_sqlite_database() {
        let dir = tempfile::tempdir().unwrap();
        let start = today().and_hms_opt(9, 0, 0).unwrap().and_utc();
        let options = StoreOptions { clock: Arc::new(ManualClock::new(start)), ..StoreOptions::default() };
        let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("demo.db")), options).unwrap();
        let last = AtomicU64::new(0);
        let report = |done: u64, total: u64| {
            assert!(done <= total);
            last.store(done, Ordering::Relaxed);
        };
        let summary = seed(&store, 200, 1, &report).await.unwrap();
        assert_eq!(summary.users, STAFF.len());
        assert_eq!(summary.contacts, 200);
        assert_eq!(summary.companies, 8);
        assert_eq!(summary.relations, 20);
        assert_eq!(summary.notes, 100);
        assert_eq!(summary.admin_email, "owner@harbourpine.example");
        assert_eq!(store.count_contacts().await.unwrap(), 200);
        let expected = (FIELDS.len() + TAGS.len() + 8 + 200 + 23 + 20 + 100 + summary.events) as u64;
        assert_eq!(last.load(Ordering::Relaxed), expected);
        // A year of history, every contact's profile in some lifecycle stage.
        assert!(summary.events > 200 * 15, "{} events", summary.events);
        assert_eq!(summary.stages.iter().map(|(_, n)| n).sum::<usize>(), 200);
        assert!(summary.stages.len() >= 4, "{:?}", summary.stages);
        assert!(summary.events_line().starts_with("Ingested "), "{}", summary.events_line());
        // Every demo segment parses, compiles and fills; the common ones are not empty.
        assert_eq!(summary.segments.len(), SEGMENTS.len());
        let count = |name: &str| summary.segments.iter().find(|(n, _)| n == name).map(|(_, c)| *c).unwrap();
        assert!(count("Service regulars") > 0, "{:?}", summary.segments);
        assert!(count("Browsing, not buying") > 0, "{:?}", summary.segments);
        assert!(summary.tasks > 0, "the team has open tasks");
        assert_eq!(summary.workflows, STARTER_WORKFLOWS.len());
        assert!(summary.runs >= 3, "this morning's enquiries started call-backs: {}", summary.runs);
        // The templates the workflows name exist, and a campaign waits to be sent.
        assert_eq!((summary.templates, summary.campaigns), (TEMPLATES.len(), 1));
        let (templates, _) = store.all_templates().await.unwrap();
        for (name, ..) in TEMPLATES {
            assert!(templates.iter().any(|t| t.name == *name), "{name}");
        }
        // A second run refuses to pile onto existing data.
        assert!(seed(&store, 10, 1, &report).await.is_err());
    }
}
