//! Message templates (issue #7): checked on save with the part and line of each problem,
//! localised versions, layouts, and a preview for a real contact.

use serde_json::json;

use crate::id_of;

both_backends! {
    async fn templates_are_checked_localised_laid_out_and_previewed(app) {
        app.post("/api/v1/template-layouts", json!({"name": "Brand",
            "html": "<html><body><h1>Harbour &amp; Pine</h1>{{ content }}<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p></body></html>",
            "text": "{{ content }}\n--\nHarbour & Pine"})).await.expect(200);
        // A typo in a name is reported with where it is and what was meant.
        let bad = app.post("/api/v1/templates", json!({"name": "Birthday", "subject": "Happy birthday",
            "text": "Hi {{ contact.first_name }}", "html": "<p>Hi</p>\n<p>{{ contact.frist_name }}</p>", "layout": "Brand"})).await;
        bad.expect_problem(400);
        assert_eq!(bad.error_fields(), ["html"], "{}", bad.text);
        let message = bad.json["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("line 2:") && message.contains("first_name"), "{message}");
        assert_eq!(bad.json["errors"][0]["line"], 2);
        // An unknown layout, and a missing text body.
        let r = app.post("/api/v1/templates", json!({"name": "X", "subject": "s", "text": "t", "layout": "Nope"})).await;
        assert_eq!(r.error_fields(), ["layout"], "{}", r.text);
        let r = app.post("/api/v1/templates", json!({"name": "X", "subject": "s"})).await;
        assert_eq!(r.error_fields(), ["text"], "{}", r.text);

        let en = app.create("/api/v1/templates", json!({"name": "Birthday", "subject": "Happy birthday, {{ contact.first_name }}!",
            "text": "Hi {{ contact.first_name }},\nall the best from {{ owner.name | default('us') }}.",
            "html": "<p>Hi {{ contact.first_name }}</p>", "layout": "Brand"})).await;
        assert_eq!(en["purpose"], "marketing");
        app.create("/api/v1/templates", json!({"name": "Birthday", "locale": "de", "subject": "Alles Gute, {{ contact.first_name }}!",
            "text": "Hallo {{ contact.first_name }}", "layout": "Brand"})).await;
        app.post("/api/v1/templates", json!({"name": "birthday", "locale": "de", "subject": "s", "text": "t"})).await.expect_problem(409);

        let ana = id_of(&app.create("/api/v1/contacts", json!({"first_name": "Ana <3", "locale": "de-AT"})).await);
        let ben = id_of(&app.create("/api/v1/contacts", json!({"first_name": "Ben"})).await);
        let p = app.post(&format!("/api/v1/templates/{}/preview", id_of(&en)), json!({"contact_id": ana})).await.expect(200);
        assert_eq!(p["subject"], "Alles Gute, Ana <3!", "the German version for de-AT: {p}");
        assert!(p["text"].as_str().unwrap().starts_with("Hallo Ana <3\n--\nHarbour & Pine"), "{p}");
        let p = app.post(&format!("/api/v1/templates/{}/preview", id_of(&en)), json!({"contact_id": ben})).await.expect(200);
        assert_eq!(p["subject"], "Happy birthday, Ben!");
        assert!(p["text"].as_str().unwrap().contains("all the best from us."), "{p}");
        let html = p["html"].as_str().unwrap();
        assert!(html.contains("<h1>Harbour &amp; Pine</h1><p>Hi Ben</p>"), "{html}");

        // HTML is escaped in the HTML part only.
        let cy = id_of(&app.create("/api/v1/contacts", json!({"first_name": "Cy <b>"})).await);
        let p = app.post(&format!("/api/v1/templates/{}/preview", id_of(&en)), json!({"contact_id": cy})).await.expect(200);
        assert!(p["html"].as_str().unwrap().contains("<p>Hi Cy &lt;b&gt;</p>"), "{p}");
        assert!(p["text"].as_str().unwrap().starts_with("Hi Cy <b>,"), "{p}");

        let changed = app.patch(&format!("/api/v1/templates/{}", id_of(&en)), json!({"purpose": "transactional", "html": null})).await.expect(200);
        assert_eq!((changed["purpose"].as_str(), changed["html"].is_null()), (Some("transactional"), true), "{changed}");
        assert_eq!(app.list_all("/api/v1/templates").await.len(), 2);
        app.delete(&format!("/api/v1/templates/{}", id_of(&en))).await.expect(204);
        assert_eq!(app.list_all("/api/v1/templates").await.len(), 1);
    }
}
