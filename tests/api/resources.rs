//! Companies, links, relations, notes, tags, custom fields and users.

use serde_json::{Value, json};

use crate::{TestApp, id_of, ids};

async fn contact(app: &TestApp, body: Value) -> (String, Value) {
    let c = app.create("/api/v1/contacts", body).await;
    (id_of(&c), c)
}

async fn get_contact(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/contacts/{id}")).await.expect(200)
}

both_backends! {
    async fn companies_and_links(app) {
        let acme = app.create("/api/v1/companies", json!({"name":" Acme ","domain":"https://www.acme.com/","industry":"Retail","tags":["key account"]})).await;
        let acme_id = id_of(&acme);
        assert_eq!(acme["name"], "Acme");
        assert_eq!(acme["domain"], "acme.com");
        assert_eq!(acme["tags"], json!(["key account"]));
        assert_eq!(app.get(&format!("/api/v1/companies/{acme_id}")).await.expect(200), acme);
        let globex = app.create("/api/v1/companies", json!({"name":"Globex"})).await;
        app.post("/api/v1/companies", json!({"domain":"x.com"})).await.expect_field_problem(422, "name");
        app.post("/api/v1/companies", json!({"name":"X","size":"huge"})).await.expect_field_problem(422, "size");
        let patched = app.patch(&format!("/api/v1/companies/{acme_id}"), json!({"industry":null,"name":"Acme Corp"})).await.expect(200);
        assert_eq!(patched["name"], "Acme Corp");
        assert!(patched["industry"].is_null());
        assert_eq!(patched["domain"], "acme.com");
        assert_eq!(ids(&app.list_all("/api/v1/companies?q=acme").await), [acme_id.as_str()]);

        let (ana, _) = contact(app, json!({"first_name":"Ana"})).await;
        let (bo, _) = contact(app, json!({"first_name":"Bo"})).await;
        let link = app.create("/api/v1/links", json!({"contact_id":ana,"company_id":acme_id,"role":"buyer","primary":true})).await;
        assert_eq!(link["role"], "buyer");
        assert_eq!(link["primary"], true);
        assert_eq!(link["contact_id"], ana.as_str());
        assert_eq!(link["company_id"], acme_id.as_str());
        let link_id = id_of(&link);

        // The same pair twice is a conflict; fix the link with PATCH instead.
        app.post("/api/v1/links", json!({"contact_id":ana,"company_id":acme_id,"role":"CFO"})).await.expect_field_problem(409, "company_id");
        // Links need both ends, and both must exist.
        app.post("/api/v1/links", json!({"contact_id":ana})).await.expect_field_problem(422, "company_id");
        app.post("/api/v1/links", json!({"contact_id":ana,"company_id":uuid::Uuid::new_v4()})).await.expect_field_problem(422, "company_id");
        app.post("/api/v1/links", json!({"contact_id":uuid::Uuid::new_v4(),"company_id":acme_id})).await.expect_field_problem(422, "contact_id");

        let p = app.patch(&format!("/api/v1/links/{link_id}"), json!({"role":"CFO"})).await.expect(200);
        assert_eq!(p["role"], "CFO");
        // A second primary company clears the first.
        let second = app.create("/api/v1/links", json!({"contact_id":ana,"company_id":id_of(&globex),"primary":true})).await;
        assert_eq!(app.get(&format!("/api/v1/links/{link_id}")).await.expect(200)["primary"], false);
        assert_eq!(second["primary"], true);

        // The contacts list filters by company.
        let at_acme: Vec<String> = ids(&app.list_all(&format!("/api/v1/contacts?company_id={acme_id}")).await);
        assert_eq!(at_acme, [ana.as_str()]);
        app.create("/api/v1/links", json!({"contact_id":bo,"company_id":acme_id})).await;
        let mut at_acme = ids(&app.list_all(&format!("/api/v1/contacts?company_id={acme_id}")).await);
        at_acme.sort();
        let mut want = vec![ana.clone(), bo.clone()];
        want.sort();
        assert_eq!(at_acme, want);
        assert_eq!(app.list_all(&format!("/api/v1/links?company_id={acme_id}")).await.len(), 2);
        assert_eq!(app.list_all(&format!("/api/v1/links?contact_id={ana}")).await.len(), 2);

        // Deleting a link keeps both sides; deleting a company takes its links, not its contacts.
        assert_eq!(app.delete(&format!("/api/v1/links/{link_id}")).await.status, 204);
        app.get(&format!("/api/v1/links/{link_id}")).await.expect_problem(404);
        assert_eq!(ids(&app.list_all(&format!("/api/v1/contacts?company_id={acme_id}")).await), [bo.as_str()]);
        assert_eq!(app.delete(&format!("/api/v1/companies/{acme_id}")).await.status, 204);
        app.get(&format!("/api/v1/companies/{acme_id}")).await.expect_problem(404);
        assert!(app.list_all(&format!("/api/v1/links?company_id={acme_id}")).await.is_empty());
        assert_eq!(app.contact_count().await, 2);
    }

    async fn relations(app) {
        let (ana, _) = contact(app, json!({"first_name":"Ana","last_name":"Santos"})).await;
        let (bo, _) = contact(app, json!({"first_name":"Bo","last_name":"Reyes","birthday":"1980-07-09"})).await;

        // A child who is not a contact: a name and a birthday.
        let mia = app.create("/api/v1/relations", json!({"contact_id":ana,"kind":"child","related_name":"Mia","related_birthday":"2015-04-02"})).await;
        assert_eq!(mia["kind"], "child");
        assert_eq!(mia["related_name"], "Mia");
        assert_eq!(mia["related_birthday"], "2015-04-02");
        assert!(mia["related_contact_id"].is_null());
        app.advance(chrono::Duration::minutes(1));

        // A spouse who is a contact: their name and birthday come from the contact.
        let spouse = app.create("/api/v1/relations", json!({"contact_id":ana,"kind":"spouse","related_contact_id":bo})).await;
        assert_eq!(spouse["related_contact_id"], bo.as_str());
        assert_eq!(spouse["related_name"], "Bo Reyes");
        assert_eq!(spouse["related_birthday"], "1980-07-09");
        let spouse_path = format!("/api/v1/relations/{}", id_of(&spouse));
        // ... and follow it when it changes.
        app.patch(&format!("/api/v1/contacts/{bo}"), json!({"first_name":"Bong"})).await.expect(200);
        assert_eq!(app.get(&spouse_path).await.expect(200)["related_name"], "Bong Reyes");

        // Nobody is their own relation.
        app.post("/api/v1/relations", json!({"contact_id":ana,"kind":"sibling","related_contact_id":ana})).await
            .expect_field_problem(422, "related_contact_id");
        app.post("/api/v1/relations", json!({"contact_id":ana,"kind":"child"})).await.expect_field_problem(422, "related_name");
        app.post("/api/v1/relations", json!({"contact_id":ana,"kind":"custom","related_name":"X"})).await.expect_field_problem(422, "custom_kind");
        app.post("/api/v1/relations", json!({"contact_id":ana,"kind":"cousin","related_name":"X"})).await.expect_field_problem(422, "kind");
        app.post("/api/v1/relations", json!({"contact_id":ana,"kind":"child","related_name":"X","related_birthday":"2999-01-01"})).await
            .expect_field_problem(422, "related_birthday");
        app.post("/api/v1/relations", json!({"contact_id":uuid::Uuid::new_v4(),"kind":"child","related_name":"X"})).await
            .expect_field_problem(422, "contact_id");
        app.post("/api/v1/relations", json!({"contact_id":ana,"kind":"spouse","related_contact_id":uuid::Uuid::new_v4()})).await
            .expect_field_problem(422, "related_contact_id");
        let mia_path = format!("/api/v1/relations/{}", id_of(&mia));
        app.patch(&mia_path, json!({"related_contact_id":ana})).await.expect_field_problem(422, "related_contact_id");

        let listed = app.list_all(&format!("/api/v1/relations?contact_id={ana}")).await;
        assert_eq!(ids(&listed), [id_of(&mia), id_of(&spouse)]);
        assert_eq!(ids(&app.list_all(&format!("/api/v1/relations?related_contact_id={bo}")).await), [id_of(&spouse)]);
        assert_eq!(ids(&app.list_all(&format!("/api/v1/relations?contact_id={ana}&kind=child")).await), [id_of(&mia)]);

        let p = app.patch(&mia_path, json!({"notes":"Loves horses","related_birthday":"2015-04-03"})).await.expect(200);
        assert_eq!(p["notes"], "Loves horses");
        assert_eq!(p["related_birthday"], "2015-04-03");
        assert_eq!(p["related_name"], "Mia");

        // When the related contact is deleted the relation keeps their name.
        assert_eq!(app.delete(&format!("/api/v1/contacts/{bo}")).await.status, 204);
        let orphan = app.get(&spouse_path).await.expect(200);
        assert!(orphan["related_contact_id"].is_null());
        assert_eq!(orphan["related_name"], "Bong Reyes");
        // When the contact is deleted, their relations go.
        assert_eq!(app.delete(&format!("/api/v1/contacts/{ana}")).await.status, 204);
        app.get(&mia_path).await.expect_problem(404);
        assert!(app.list_all("/api/v1/relations").await.is_empty());
    }

    async fn notes(app) {
        let (ana, _) = contact(app, json!({"first_name":"Ana"})).await;
        let (bo, _) = contact(app, json!({"first_name":"Bo"})).await;
        let first = app.create("/api/v1/notes", json!({"contact_id":ana,"body":"Called about the **order**"})).await;
        assert_eq!(first["body"], "Called about the **order**");
        assert_eq!(first["pinned"], false);
        assert_eq!(first["contact_id"], ana.as_str());
        app.advance(chrono::Duration::minutes(5));
        let second = app.create("/api/v1/notes", json!({"contact_id":ana,"body":"Sent the quote"})).await;
        app.advance(chrono::Duration::minutes(5));
        let third = app.create("/api/v1/notes", json!({"contact_id":ana,"body":"Quote accepted"})).await;
        app.create("/api/v1/notes", json!({"contact_id":bo,"body":"Other person"})).await;

        // Newest first, only this contact's.
        let listed = app.list_all(&format!("/api/v1/notes?contact_id={ana}")).await;
        assert_eq!(ids(&listed), [id_of(&third), id_of(&second), id_of(&first)]);
        let page = app.get(&format!("/api/v1/notes?contact_id={ana}&limit=2")).await.expect(200);
        assert_eq!(ids(page["data"].as_array().unwrap()), [id_of(&third), id_of(&second)]);
        assert!(page["next_cursor"].is_string());
        assert_eq!(ids(&app.list_all(&format!("/api/v1/notes?contact_id={ana}&sort=created_at")).await), [id_of(&first), id_of(&second), id_of(&third)]);

        // Pinning.
        app.advance(chrono::Duration::minutes(5));
        let pinned = app.patch(&format!("/api/v1/notes/{}", id_of(&first)), json!({"pinned":true})).await.expect(200);
        assert_eq!(pinned["pinned"], true);
        assert_eq!(pinned["body"], first["body"]);
        assert_ne!(pinned["updated_at"], first["updated_at"]);
        assert_eq!(ids(&app.list_all(&format!("/api/v1/notes?contact_id={ana}&pinned=true")).await), [id_of(&first)]);

        // A note belongs to a contact or a company.
        app.post("/api/v1/notes", json!({"body":"Nobody's"})).await.expect_field_problem(422, "contact_id");
        app.post("/api/v1/notes", json!({"contact_id":ana,"body":"   "})).await.expect_field_problem(422, "body");
        app.post("/api/v1/notes", json!({"contact_id":uuid::Uuid::new_v4(),"body":"x"})).await.expect_field_problem(422, "contact_id");
        app.patch(&format!("/api/v1/notes/{}", id_of(&first)), json!({"body":""})).await.expect_field_problem(422, "body");
        let acme = app.create("/api/v1/companies", json!({"name":"Acme"})).await;
        let on_company = app.create("/api/v1/notes", json!({"company_id":id_of(&acme),"body":"Renewal in May"})).await;
        assert_eq!(ids(&app.list_all(&format!("/api/v1/notes?company_id={}", id_of(&acme))).await), [id_of(&on_company)]);

        // Notes go with their contact.
        assert_eq!(app.delete(&format!("/api/v1/notes/{}", id_of(&second))).await.status, 204);
        assert_eq!(app.list_all(&format!("/api/v1/notes?contact_id={ana}")).await.len(), 2);
        assert_eq!(app.delete(&format!("/api/v1/contacts/{ana}")).await.status, 204);
        app.get(&format!("/api/v1/notes/{}", id_of(&third))).await.expect_problem(404);
    }

    async fn tags(app) {
        let (ana, _) = contact(app, json!({"first_name":"Ana","tags":["vip","  big   spender "]})).await;
        assert_eq!(get_contact(app, &ana).await["tags"], json!(["big spender", "vip"]));
        let tags = app.list_all("/api/v1/tags").await;
        assert_eq!(tags.iter().map(|t| t["name"].clone()).collect::<Vec<_>>(), [json!("big spender"), json!("vip")]);
        let vip = tags.iter().find(|t| t["name"] == "vip").expect("vip").clone();
        assert_eq!(vip["contact_count"], 1);
        let vip_path = format!("/api/v1/tags/{}", id_of(&vip));

        // Renaming a tag renames it on every record.
        let renamed = app.patch(&vip_path, json!({"name":"VIP Gold","color":"#FFAA00"})).await.expect(200);
        assert_eq!(renamed["name"], "VIP Gold");
        assert_eq!(renamed["color"], "#ffaa00");
        assert_eq!(get_contact(app, &ana).await["tags"], json!(["big spender", "VIP Gold"]));
        assert_eq!(ids(&app.list_all("/api/v1/contacts?tag=vip%20gold").await), [ana.as_str()]);
        assert!(app.list_all("/api/v1/contacts?tag=vip").await.is_empty());

        // Names are unique regardless of case.
        app.post("/api/v1/tags", json!({"name":"vip gold"})).await.expect_field_problem(409, "name");
        let other = app.create("/api/v1/tags", json!({"name":"Other"})).await;
        app.patch(&format!("/api/v1/tags/{}", id_of(&other)), json!({"name":"BIG SPENDER"})).await.expect_field_problem(409, "name");
        app.post("/api/v1/tags", json!({"name":"  "})).await.expect_field_problem(422, "name");
        app.post("/api/v1/tags", json!({"name":"x","color":"red"})).await.expect_field_problem(422, "color");
        // A contact naming an existing tag in another case uses that tag.
        let (bo, _) = contact(app, json!({"first_name":"Bo","tags":["other"]})).await;
        assert_eq!(get_contact(app, &bo).await["tags"], json!(["Other"]));

        // Deleting a tag removes it from every contact.
        assert_eq!(app.delete(&vip_path).await.status, 204);
        app.get(&vip_path).await.expect_problem(404);
        assert_eq!(get_contact(app, &ana).await["tags"], json!(["big spender"]));
        assert!(app.list_all("/api/v1/contacts?tag=vip%20gold").await.is_empty());
    }

    async fn custom_field_catalogue(app) {
        let plan = app.create("/api/v1/custom-fields", json!({"record_type":"contact","key":"plan","kind":"enum","options":["Basic","Premium"],"label":"Plan"})).await;
        assert_eq!(plan["kind"], "enum");
        assert_eq!(plan["options"], json!(["Basic", "Premium"]));
        app.create("/api/v1/custom-fields", json!({"record_type":"contact","key":"interests","kind":"multi_enum","options":["Yoga","Spin"]})).await;
        app.create("/api/v1/custom-fields", json!({"record_type":"contact","key":"budget","kind":"money"})).await;
        app.create("/api/v1/custom-fields", json!({"record_type":"contact","key":"member_since","kind":"date"})).await;

        // Values are normalised to the catalogue's spelling.
        let (ana, c) = contact(app, json!({"first_name":"Ana","custom_fields":{
            "plan":"premium","interests":["yoga","YOGA","Spin"],"budget":{"amount_minor":1250,"currency":"eur"},"member_since":"2024-02-29"}})).await;
        assert_eq!(c["custom_fields"], json!({"plan":"Premium","interests":["Yoga","Spin"],"budget":{"amount_minor":1250,"currency":"EUR"},"member_since":"2024-02-29"}));
        assert_eq!(get_contact(app, &ana).await["custom_fields"], c["custom_fields"]);
        app.post("/api/v1/contacts", json!({"first_name":"Bo","custom_fields":{"plan":"Gold"}})).await.expect_field_problem(422, "custom_fields.plan");
        app.post("/api/v1/contacts", json!({"first_name":"Bo","custom_fields":{"member_since":"29/02/2024"}})).await
            .expect_field_problem(422, "custom_fields.member_since");
        app.post("/api/v1/contacts", json!({"first_name":"Bo","custom_fields":{"budget":{"amount_minor":12.5,"currency":"EUR"}}})).await
            .expect_field_problem(422, "custom_fields.budget");

        // An option still in use cannot be removed; an unused one can, and options can be added.
        let plan_id_path = format!("/api/v1/custom-fields/{}", id_of(&plan));
        app.patch(&plan_id_path, json!({"options":["Basic"]})).await.expect_field_problem(409, "options");
        let interests = app.list_all("/api/v1/custom-fields?record_type=contact").await.into_iter().find(|f| f["key"] == "interests").unwrap();
        let interests_path = format!("/api/v1/custom-fields/{}", id_of(&interests));
        app.patch(&interests_path, json!({"options":["Spin","Pilates"]})).await.expect_field_problem(409, "options");
        let r = app.patch(&plan_id_path, json!({"options":["Premium","Gold"]})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(get_contact(app, &ana).await["custom_fields"]["plan"], "Premium");

        // Listing the catalogue.
        let keys: Vec<Value> = app.list_all("/api/v1/custom-fields?record_type=contact").await.iter().map(|f| f["key"].clone()).collect();
        assert_eq!(keys, [json!("budget"), json!("interests"), json!("member_since"), json!("plan")]);
        assert!(app.list_all("/api/v1/custom-fields?record_type=company").await.is_empty());

        // Deleting a definition removes its values from every contact.
        let plan_path = format!("/api/v1/custom-fields/{}", id_of(&plan));
        assert_eq!(app.delete(&plan_path).await.status, 204);
        app.get(&plan_path).await.expect_problem(404);
        let after = get_contact(app, &ana).await;
        assert!(after["custom_fields"].get("plan").is_none(), "plan still there: {after}");
        assert_eq!(after["custom_fields"]["budget"], json!({"amount_minor":1250,"currency":"EUR"}));
        // The key is free again, and values of the deleted field are unknown now.
        app.post("/api/v1/contacts", json!({"first_name":"Bo","custom_fields":{"plan":"Premium"}})).await.expect_field_problem(422, "custom_fields.plan");
        app.create("/api/v1/custom-fields", json!({"record_type":"contact","key":"plan","kind":"text"})).await;
    }

    async fn users(app) {
        let admin = app.create("/api/v1/users", json!({"name":"Ada Admin","email":"Ada@Example.com","role":"admin"})).await;
        assert_eq!(admin["email"], "ada@example.com");
        assert_eq!(admin["role"], "admin");
        assert_eq!(admin["active"], true);
        let admin_path = format!("/api/v1/users/{}", id_of(&admin));
        let member = app.create("/api/v1/users", json!({"name":"Max Member","email":"max@example.com"})).await;
        assert_eq!(member["role"], "member");
        app.post("/api/v1/users", json!({"name":"Dup","email":"ADA@example.com"})).await.expect_field_problem(409, "email");
        app.post("/api/v1/users", json!({"name":"No Mail"})).await.expect_field_problem(422, "email");
        app.post("/api/v1/users", json!({"name":"X","email":"x@example.com","role":"owner"})).await.expect_field_problem(422, "role");

        // A contact's owner must be a user.
        let (ana, c) = contact(app, json!({"first_name":"Ana","owner_id":id_of(&member)})).await;
        assert_eq!(c["owner_id"], id_of(&member).as_str());
        app.post("/api/v1/contacts", json!({"first_name":"Bo","owner_id":uuid::Uuid::new_v4()})).await.expect_field_problem(422, "owner_id");
        app.patch(&format!("/api/v1/contacts/{ana}"), json!({"owner_id":uuid::Uuid::new_v4()})).await.expect_field_problem(422, "owner_id");
        app.post("/api/v1/contacts", json!({"first_name":"Bo","owner_id":"not-a-uuid"})).await.expect_field_problem(422, "owner_id");

        // The last active admin stays an admin.
        app.patch(&admin_path, json!({"role":"member"})).await.expect_field_problem(409, "role");
        app.patch(&admin_path, json!({"active":false})).await.expect_problem(409);
        app.delete(&admin_path).await.expect_problem(409);
        assert_eq!(app.get(&admin_path).await.expect(200)["role"], "admin");
        // With a second admin, the first can step down.
        app.patch(&format!("/api/v1/users/{}", id_of(&member)), json!({"role":"admin"})).await.expect(200);
        assert_eq!(app.patch(&admin_path, json!({"role":"viewer"})).await.expect(200)["role"], "viewer");

        // Deleting a user keeps their contacts, without an owner.
        let (owned, _) = contact(app, json!({"first_name":"Owned","owner_id":id_of(&admin)})).await;
        assert_eq!(app.delete(&admin_path).await.status, 204);
        app.get(&admin_path).await.expect_problem(404);
        let owned = get_contact(app, &owned).await;
        assert!(owned["owner_id"].is_null(), "{owned}");
        app.patch(&format!("/api/v1/contacts/{ana}"), json!({"owner_id":id_of(&admin)})).await.expect_field_problem(422, "owner_id");
        let users = app.list_all("/api/v1/users").await;
        assert_eq!(ids(&users), [id_of(&member)]);
        assert_eq!(app.list_all("/api/v1/users?role=admin").await.len(), 1);
    }
}
