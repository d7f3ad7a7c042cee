//! Tasks (first part of issue #6): someone's day, overdue work, filters, timeline entries.
//!
//! The test clock starts on Thursday 2026-01-15T09:00:00Z; "today" is taken in UTC (the
//! default zone) unless `time_zone` says otherwise.

use rapport_core::user::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, id_of, send};

const TASKS: &str = "/api/v1/tasks";

/// A user with a member key of their own; returns (user id, key).
async fn user_with_key(app: &TestApp, name: &str, email: &str) -> (String, String) {
    let user = app.create("/api/v1/users", json!({"name": name, "email": email})).await;
    let id = id_of(&user);
    let key = app
        .store()
        .create_key(format!("{name}'s key"), Role::Member, Some(id.parse().unwrap()), None, false)
        .await
        .expect("create key")
        .expect("a key was created")
        .secret;
    (id, key)
}

async fn titles(app: &TestApp, key: &str, query: &str) -> Vec<String> {
    let body = send(app.with_key(key, Method::GET, &format!("{TASKS}?{query}"))).await.expect(200);
    body["data"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_string()).collect()
}

fn task(title: &str, extra: Value) -> Value {
    let mut t = json!({"title": title});
    t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    t
}

both_backends! {
    async fn a_salespersons_day_overdue_and_upcoming(app) {
        let (sabine, key) = user_with_key(app, "Sabine Keller", "sabine@dealer.example").await;
        let ana = id_of(&app.create("/api/v1/contacts", json!({"first_name": "Ana", "last_name": "Silva"})).await);

        // Created with Sabine's own key: hers by default, and written by her.
        let call = send(app.with_key(&key, Method::POST, TASKS).json(&task(
            "Call Ana about the X5",
            json!({"contact_id": ana, "due_at": "2026-01-15T15:00:00Z", "reason": "Viewed the X5 twice this week"}),
        )))
        .await
        .expect(201);
        assert_eq!((call["assignee_id"].as_str(), call["created_by"].as_str()), (Some(sabine.as_str()), Some(sabine.as_str())));
        assert_eq!((call["status"].as_str(), call["closed_at"].is_null()), (Some("open"), true));

        for (title, extra) in [
            ("Send the lease offer", json!({"assignee_id": sabine, "due_at": "2026-01-16T10:00:00Z"})),
            ("Chase the signed contract", json!({"assignee_id": sabine, "due_at": "2026-01-14T10:00:00Z"})),
            ("Tidy the showroom notes", json!({"assignee_id": sabine})),
            ("Late-evening callback", json!({"assignee_id": sabine, "due_at": "2026-01-15T23:30:00Z"})),
            ("Far-off service reminder", json!({"assignee_id": sabine, "due_at": "2026-02-20T10:00:00Z"})),
        ] {
            app.create(TASKS, task(title, extra)).await;
        }
        // The admin key belongs to no user, so this one is nobody's.
        let loose = app.create(TASKS, task("Who takes the trade-in?", json!({}))).await;
        assert!(loose["assignee_id"].is_null());

        assert_eq!(titles(app, &key, "assignee=me&due=today").await, ["Call Ana about the X5", "Late-evening callback"]);
        // In Berlin the late callback falls on Friday.
        assert_eq!(titles(app, &key, "assignee=me&due=today&time_zone=Europe/Berlin").await, ["Call Ana about the X5"]);
        assert_eq!(titles(app, &key, &format!("assignee={sabine}&due=overdue")).await, ["Chase the signed contract"]);
        assert_eq!(titles(app, &key, "assignee=me&due=upcoming").await, ["Send the lease offer"]);
        assert_eq!(titles(app, &key, "assignee=me&due=none").await, ["Tidy the showroom notes"]);
        assert_eq!(titles(app, &key, "assignee=none").await, ["Who takes the trade-in?"]);
        // Soonest first, tasks without a due time last, across pages.
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("{TASKS}?assignee=me&limit=2&cursor={c}"),
                None => format!("{TASKS}?assignee=me&limit=2"),
            };
            let page = send(app.with_key(&key, Method::GET, &q)).await.expect(200);
            all.extend(page["data"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_string()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(
            all,
            [
                "Chase the signed contract",
                "Call Ana about the X5",
                "Late-evening callback",
                "Send the lease offer",
                "Far-off service reminder",
                "Tidy the showroom notes",
            ]
        );
        assert_eq!(titles(app, &key, &format!("contact_id={ana}")).await, ["Call Ana about the X5"]);

        // Done: closed, out of the day's open list, and on Ana's timeline with who did it.
        let done = send(app.with_key(&key, Method::PATCH, &format!("{TASKS}/{}", id_of(&call))).json(&json!({"status": "done"})))
            .await
            .expect(200);
        assert_eq!(done["status"], "done");
        assert!(done["closed_at"].is_string());
        assert_eq!(titles(app, &key, "assignee=me&due=today&status=open").await, ["Late-evening callback"]);
        let timeline = app.get(&format!("/api/v1/contacts/{ana}/timeline")).await.expect(200);
        let kinds: Vec<&str> = timeline["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"task.created") && kinds.contains(&"task.completed"), "{kinds:?}");
        let completed = timeline["data"].as_array().unwrap().iter().find(|e| e["type"] == "task.completed").unwrap();
        assert_eq!(completed["payload"]["title"], "Call Ana about the X5");

        // Opened again: no closed time.
        let reopened = app.patch(&format!("{TASKS}/{}", id_of(&call)), json!({"status": "open", "due_at": null})).await.expect(200);
        assert!(reopened["closed_at"].is_null() && reopened["due_at"].is_null());
    }

    async fn bad_task_input_names_the_field(app) {
        app.post(TASKS, json!({"title": "   "})).await.expect_field_problem(422, "title");
        app.post(TASKS, json!({"title": "x", "contact_id": "0194a6c5-0000-7000-8000-000000000000"}))
            .await
            .expect_field_problem(422, "contact_id");
        app.post(TASKS, json!({"title": "x", "assignee_id": "0194a6c5-0000-7000-8000-000000000000"}))
            .await
            .expect_field_problem(422, "assignee_id");
        app.post(TASKS, json!({"title": "x", "due": "tomorrow"})).await.expect_field_problem(422, "due");
        app.post(TASKS, json!({"title": "x", "due_at": "tomorrow"})).await.expect_field_problem(422, "due_at");
        app.post(TASKS, json!({"title": "x", "status": "later"})).await.expect_field_problem(422, "status");
        // The admin key has no user: `me` cannot mean anyone.
        app.get(&format!("{TASKS}?assignee=me")).await.expect_field_problem(400, "assignee");
        app.get(&format!("{TASKS}?due=tomorrow")).await.expect_field_problem(400, "due");
        app.get(&format!("{TASKS}?status=later")).await.expect_field_problem(400, "status");
        app.get(&format!("{TASKS}?due=today&time_zone=Mars/Olympus")).await.expect_field_problem(400, "time_zone");
        let t = app.create(TASKS, json!({"title": "Keep me"})).await;
        app.patch(&format!("{TASKS}/{}", id_of(&t)), json!({"title": ""})).await.expect_field_problem(422, "title");
        assert_eq!(app.get(&format!("{TASKS}/{}", id_of(&t))).await.expect(200)["title"], "Keep me");
    }

    async fn viewers_read_tasks_but_do_not_change_them(app) {
        let viewer = app.create_key("viewer", Role::Viewer).await;
        let t = app.create(TASKS, json!({"title": "Order brochures"})).await;
        send(app.with_key(&viewer, Method::GET, &format!("{TASKS}/{}", id_of(&t)))).await.expect(200);
        send(app.with_key(&viewer, Method::POST, TASKS).json(&json!({"title": "x"}))).await.expect_problem(403);
        send(app.with_key(&viewer, Method::PATCH, &format!("{TASKS}/{}", id_of(&t))).json(&json!({"status": "done"})))
            .await
            .expect_problem(403);
        send(app.with_key(&viewer, Method::DELETE, &format!("{TASKS}/{}", id_of(&t)))).await.expect_problem(403);
        send(app.anon(Method::GET, TASKS)).await.expect_problem(401);
        app.delete(&format!("{TASKS}/{}", id_of(&t))).await.expect(204);
        app.get(&format!("{TASKS}/{}", id_of(&t))).await.expect_problem(404);
    }
}
