//! Bearer keys and roles.

use rapport_core::user::Role;
use reqwest::Method;
use serde_json::json;

use crate::{TestApp, send};

/// Checks a 401 problem with its `WWW-Authenticate` challenge.
async fn expect_unauthorized(req: reqwest::RequestBuilder) {
    let r = send(req).await;
    r.expect_problem(401);
    let challenge = r.header("www-authenticate").unwrap_or_else(|| panic!("401 without WWW-Authenticate: {}", r.text));
    assert!(challenge.starts_with("Bearer"), "challenge: {challenge}");
}

async fn count(app: &TestApp) -> usize {
    app.contact_count().await
}

both_backends! {
    async fn missing_and_wrong_keys_are_401(app) {
        for (method, path) in [
            (Method::GET, "/api/v1/contacts"),
            (Method::POST, "/api/v1/contacts"),
            (Method::GET, "/api/v1/contacts/00000000-0000-0000-0000-000000000000"),
            (Method::DELETE, "/api/v1/contacts/00000000-0000-0000-0000-000000000000"),
            (Method::GET, "/api/v1/users"),
            (Method::GET, "/api/v1/custom-fields"),
        ] {
            expect_unauthorized(app.anon(method.clone(), path)).await;
            expect_unauthorized(app.with_key("rk_definitely-not-a-real-key-0000000000000000", method.clone(), path)).await;
            expect_unauthorized(app.anon(method.clone(), path).header("authorization", format!("Basic {}", app.key))).await;
            expect_unauthorized(app.anon(method.clone(), path).header("authorization", "Bearer ")).await;
            expect_unauthorized(app.anon(method, path).header("authorization", app.key.clone())).await;
        }
        // An unauthenticated write writes nothing.
        let r = send(app.anon(Method::POST, "/api/v1/contacts").json(&json!({"first_name":"Ana"}))).await;
        r.expect_problem(401);
        assert_eq!(count(app).await, 0);
        // The real key works, with the scheme in any case.
        let r = send(app.anon(Method::GET, "/api/v1/contacts").header("authorization", format!("bearer {}", app.key))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        // Nothing sensitive is echoed back.
        let r = send(app.with_key("rk_secret-value-that-must-not-leak-000000000000", Method::GET, "/api/v1/contacts")).await;
        assert!(!r.text.contains("secret-value-that-must-not-leak"), "{}", r.text);
    }

    async fn revoked_keys_are_401(app) {
        // Revoked before it was ever used.
        let unused = app.create_key("unused", Role::Member).await;
        app.store().revoke_key(prefix_of(app, "unused").await).await.expect("revoke by prefix");
        expect_unauthorized(app.with_key(&unused, Method::GET, "/api/v1/contacts")).await;

        // Used, then revoked: a server started afterwards (an empty key cache) refuses it.
        let used = app.create_key("used", Role::Member).await;
        assert_eq!(send(app.with_key(&used, Method::GET, "/api/v1/contacts")).await.status, 200);
        let id = app.store().list_keys().await.expect("keys").into_iter().find(|k| k.name == "used").expect("the key").id;
        let revoked = app.store().revoke_key(id.to_string()).await.expect("revoke by id");
        assert!(revoked.revoked_at.is_some());
        app.restart_server().await;
        expect_unauthorized(app.with_key(&used, Method::GET, "/api/v1/contacts")).await;
        expect_unauthorized(app.with_key(&unused, Method::GET, "/api/v1/contacts")).await;
        // Other keys are untouched.
        assert_eq!(app.get("/api/v1/contacts").await.status, 200);
    }

    async fn viewer_reads_but_cannot_write(app) {
        let ana = app.create("/api/v1/contacts", json!({"first_name":"Ana"})).await;
        let id = crate::id_of(&ana);
        let viewer = app.create_key("viewer", Role::Viewer).await;
        let as_viewer = |m: Method, p: &str| app.with_key(&viewer, m, p);

        assert_eq!(send(as_viewer(Method::GET, "/api/v1/contacts")).await.expect(200)["data"][0]["id"], id.as_str());
        assert_eq!(send(as_viewer(Method::GET, &format!("/api/v1/contacts/{id}"))).await.expect(200), ana);
        for path in ["/api/v1/companies", "/api/v1/notes", "/api/v1/tags", "/api/v1/custom-fields", "/api/v1/users", "/api/v1/links", "/api/v1/relations"] {
            assert_eq!(send(as_viewer(Method::GET, path)).await.status, 200, "{path}");
        }

        send(as_viewer(Method::POST, "/api/v1/contacts").json(&json!({"first_name":"Bo"}))).await.expect_problem(403);
        send(as_viewer(Method::PATCH, &format!("/api/v1/contacts/{id}")).json(&json!({"first_name":"Bo"}))).await.expect_problem(403);
        send(as_viewer(Method::DELETE, &format!("/api/v1/contacts/{id}"))).await.expect_problem(403);
        send(as_viewer(Method::POST, "/api/v1/companies").json(&json!({"name":"Acme"}))).await.expect_problem(403);
        send(as_viewer(Method::POST, "/api/v1/notes").json(&json!({"contact_id":id,"body":"hi"}))).await.expect_problem(403);
        send(as_viewer(Method::POST, "/api/v1/tags").json(&json!({"name":"x"}))).await.expect_problem(403);
        assert_eq!(count(app).await, 1);
        assert_eq!(app.get(&format!("/api/v1/contacts/{id}")).await.expect(200), ana, "unchanged");

        // A member writes records but not the catalogue or users; a manager also the catalogue.
        let member = app.create_key("member", Role::Member).await;
        let r = send(app.with_key(&member, Method::POST, "/api/v1/contacts").json(&json!({"first_name":"Bo"}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let field = json!({"record_type":"contact","key":"plan","kind":"text"});
        send(app.with_key(&member, Method::POST, "/api/v1/custom-fields").json(&field)).await.expect_problem(403);
        send(app.with_key(&member, Method::POST, "/api/v1/users").json(&json!({"name":"U","email":"u@example.com"}))).await.expect_problem(403);
        let manager = app.create_key("manager", Role::Manager).await;
        let r = send(app.with_key(&manager, Method::POST, "/api/v1/custom-fields").json(&field)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        send(app.with_key(&manager, Method::POST, "/api/v1/users").json(&json!({"name":"U","email":"u@example.com"}))).await.expect_problem(403);
    }
}

/// The displayed prefix of the key named `name`.
async fn prefix_of(app: &TestApp, name: &str) -> String {
    app.store().list_keys().await.expect("keys").into_iter().find(|k| k.name == name).expect("the key").prefix
}
