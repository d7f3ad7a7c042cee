//! Workflow documents (issue #6): the contract shapes, errors with the path of the bad part,
//! versions, switching on and off, and who may change them.

use rapport_core::user::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, id_of, send};

const WORKFLOWS: &str = "/api/v1/workflows";

fn birthday_card() -> Value {
    json!({"name": "Birthday card", "trigger": {"kind": "date", "field": "birthday", "offset": "P0D", "at": "09:00"},
        "steps": [{"action": "create_task", "title": "Call {{first_name}} for their birthday"}]})
}

fn viewed_not_bought() -> Value {
    json!({"name": "Viewed, not bought", "trigger": {"kind": "event", "type": "product.viewed"},
        "steps": [{"wait": "P2D", "until_event": "order.completed"}, {"action": "create_task", "title": "Follow up"}],
        "exit_when": ["order.completed", "email.replied"]})
}

async fn names(app: &TestApp, query: &str) -> Vec<String> {
    let body = app.get(&format!("{WORKFLOWS}{query}")).await.expect(200);
    body["data"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap().to_string()).collect()
}

both_backends! {
    async fn the_contract_documents_are_stored_versioned_and_switched(app) {
        let card = app.create(WORKFLOWS, birthday_card()).await;
        assert_eq!((card["enabled"].as_bool(), card["version"].as_i64()), (Some(false), Some(1)));
        assert_eq!(card["trigger"]["kind"], "date");
        assert_eq!(card["steps"][0]["title"], "Call {{first_name}} for their birthday");
        let viewed = app.create(WORKFLOWS, viewed_not_bought()).await;
        assert_eq!(viewed["exit_when"], json!(["order.completed", "email.replied"]));
        assert_eq!(viewed["steps"][0]["until_event"], "order.completed");
        let read = app.get(&format!("{WORKFLOWS}/{}", id_of(&viewed))).await.expect(200);
        assert_eq!(read, viewed);

        // A real change is a new version; sending the same document again is not.
        let path = format!("{WORKFLOWS}/{}", id_of(&card));
        let v2 = app.patch(&path, json!({"steps": [{"action": "create_task", "title": "Call {{first_name}}", "due": "P1D"}]})).await.expect(200);
        assert_eq!((v2["version"].as_i64(), v2["name"].as_str()), (Some(2), Some("Birthday card")));
        let same = app.patch(&path, json!({"steps": v2["steps"].clone()})).await.expect(200);
        assert_eq!(same["version"].as_i64(), Some(2));
        let cleared = app.patch(&format!("{WORKFLOWS}/{}", id_of(&viewed)), json!({"exit_when": null})).await.expect(200);
        assert!(cleared.get("exit_when").is_none() || cleared["exit_when"] == json!([]), "{cleared}");

        app.post(&format!("{path}/enable"), json!({})).await.expect(200);
        assert_eq!(names(app, "?enabled=true").await, ["Birthday card"]);
        assert_eq!(names(app, "?enabled=false").await, ["Viewed, not bought"]);
        assert_eq!(names(app, "").await, ["Birthday card", "Viewed, not bought"]);
        let off = app.post(&format!("{path}/disable"), json!({})).await.expect(200);
        assert_eq!(off["enabled"], false);

        app.delete(&path).await.expect(204);
        app.get(&path).await.expect_problem(404);
    }

    async fn invalid_documents_say_where(app) {
        let mut bad_wait = viewed_not_bought();
        bad_wait["steps"][0]["wait"] = json!("two days");
        let r = app.post(WORKFLOWS, bad_wait).await;
        r.expect_field_problem(400, "steps[0].wait");

        let mut doc = birthday_card();
        doc["steps"] = json!([{"action": "create_task", "title": "Hi"}, {"wait": "soon"}]);
        app.post(WORKFLOWS, doc).await.expect_field_problem(400, "steps[1].wait");

        let mut doc = birthday_card();
        doc["steps"][0]["title"] = json!("Call {{nickname}}");
        app.post(WORKFLOWS, doc).await.expect_field_problem(400, "steps[0].title");

        // Names are checked against the data.
        let doc = json!({"name": "Welcome VIPs", "trigger": {"kind": "segment_entered", "segment": "VIPs"},
            "steps": [{"action": "create_task", "title": "Welcome", "assignee": "nobody@dealer.example"}]});
        let r = app.post(WORKFLOWS, doc).await;
        let fields = r.error_fields();
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(fields.contains(&"trigger.segment".to_string()) && fields.contains(&"steps[0].assignee".to_string()), "{fields:?}");

        let mut doc = birthday_card();
        doc["conditions"] = json!("custom.nope >= 3");
        app.post(WORKFLOWS, doc).await.expect_field_problem(400, "conditions");

        let mut doc = birthday_card();
        doc["steps"] = json!([{"if": "value_tier = \"gold\"", "then": [{"action": "start_workflow", "workflow": "Nope"}]}]);
        app.post(WORKFLOWS, doc).await.expect_field_problem(400, "steps[0].then[0].workflow");

        app.create(WORKFLOWS, birthday_card()).await;
        app.post(WORKFLOWS, birthday_card()).await.expect_problem(409);
        let card = &app.list_all(WORKFLOWS).await[0];
        app.patch(&format!("{WORKFLOWS}/{}", id_of(card)), json!({"name": null})).await.expect_field_problem(400, "name");
        app.patch(&format!("{WORKFLOWS}/{}", id_of(card)), json!({"steps": []})).await.expect_field_problem(400, "steps");
        assert_eq!(app.get(&format!("{WORKFLOWS}/{}", id_of(card))).await.expect(200)["version"], 1);
    }

    async fn switching_on_checks_the_names_again(app) {
        let segment = app.create("/api/v1/segments", json!({"name": "VIPs", "filter": "value_tier = \"vip\""})).await;
        let welcome = app
            .create(WORKFLOWS, json!({"name": "Welcome VIPs", "trigger": {"kind": "segment_entered", "segment": "vips"},
                "steps": [{"action": "create_task", "title": "Welcome {{first_name}}"}]}))
            .await;
        app.delete(&format!("/api/v1/segments/{}", id_of(&segment))).await.expect(204);
        app.post(&format!("{WORKFLOWS}/{}/enable", id_of(&welcome)), json!({})).await.expect_field_problem(400, "trigger.segment");
    }

    async fn managers_write_workflows_others_read(app) {
        let member = app.create_key("member", Role::Member).await;
        let manager = app.create_key("manager", Role::Manager).await;
        send(app.with_key(&member, Method::POST, WORKFLOWS).json(&birthday_card())).await.expect_problem(403);
        let card = send(app.with_key(&manager, Method::POST, WORKFLOWS).json(&birthday_card())).await.expect(201);
        send(app.with_key(&member, Method::GET, &format!("{WORKFLOWS}/{}", id_of(&card)))).await.expect(200);
        send(app.with_key(&member, Method::POST, &format!("{WORKFLOWS}/{}/enable", id_of(&card)))).await.expect_problem(403);
        send(app.anon(Method::GET, WORKFLOWS)).await.expect_problem(401);
    }
}
