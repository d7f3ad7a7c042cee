//! Segments (issue #5): the filter language over the HTTP API, previews, stored segments whose
//! members are kept current, entry and exit events, and explanations.
//!
//! The test clock starts on Thursday 2026-01-15T09:00:00Z. Contacts without a time zone live in
//! UTC (the default zone). Every time-based check moves the manual clock through
//! `POST /api/v1/admin/clock`, which refreshes time-dependent segments before it answers; other
//! changes are brought in with `POST /api/v1/admin/segments/maintain`. The server's own
//! maintainer also runs in the background, so the tests check states and events, never how
//! many changes one maintenance call reports.

use chrono::{DateTime, Utc};
use rapport_core::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, id_of, ids, send};

const SEGMENTS: &str = "/api/v1/segments";
const PREVIEW: &str = "/api/v1/segments/preview";
const MAINTAIN: &str = "/api/v1/admin/segments/maintain";
const CLOCK: &str = "/api/v1/admin/clock";
const EVENTS: &str = "/api/v1/events";

// ---------------------------------------------------------------------------------------------
// Helpers.

#[track_caller]
fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("not an RFC 3339 time '{s}': {e}")).to_utc()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn want(list: &[&String]) -> Vec<String> {
    sorted(list.iter().map(|s| s.to_string()).collect())
}

/// Creates a contact and returns its id.
async fn person(app: &TestApp, body: Value) -> String {
    id_of(&app.create("/api/v1/contacts", body).await)
}

/// `path?filter=<filter>`, encoded.
fn with_filter(path: &str, filter: &str) -> String {
    let url = reqwest::Url::parse_with_params(&format!("http://localhost{path}"), &[("filter", filter), ("limit", "500")])
        .expect("a valid url");
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

/// Who matches `filter` right now: the preview's sample (all of them), checked against its
/// count and against `GET /contacts?filter=`, which must agree.
async fn who(app: &TestApp, filter: &str) -> Vec<String> {
    let r = app.post(PREVIEW, json!({"filter": filter, "sample": 100})).await;
    assert_eq!(r.status, 200, "preview of `{filter}`: {}", r.text);
    let sample = r.json["sample"].as_array().unwrap_or_else(|| panic!("a sample list for `{filter}`: {}", r.text));
    let sample = ids(sample);
    assert_eq!(r.json["count"].as_u64(), Some(sample.len() as u64), "count and sample of `{filter}`: {}", r.text);
    let listed = ids(&app.list_all(&with_filter("/api/v1/contacts", filter)).await);
    assert_eq!(sorted(listed), sorted(sample.clone()), "GET /contacts?filter= agrees with the preview of `{filter}`");
    sorted(sample)
}

/// Checks that exactly `expected` match `filter`.
async fn expect_who(app: &TestApp, filter: &str, expected: &[&String]) {
    assert_eq!(who(app, filter).await, want(expected), "who matches `{filter}`");
}

/// A preview that must be refused with 400, whose errors mention `needle`.
async fn expect_refused(app: &TestApp, filter: &str, needle: &str) -> Value {
    let r = app.post(PREVIEW, json!({"filter": filter})).await;
    r.expect_problem(400);
    let detail = r.json["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("the filter is not valid"), "a body's filter is not a query parameter: {detail}");
    assert!(
        r.text.to_lowercase().contains(&needle.to_lowercase()),
        "the refusal of `{filter}` should mention '{needle}': {}",
        r.text
    );
    // The contacts list reads the same language and refuses the same way.
    let l = app.get(&with_filter("/api/v1/contacts", filter)).await;
    l.expect_problem(400);
    assert!(l.text.to_lowercase().contains(&needle.to_lowercase()), "GET /contacts?filter=`{filter}`: {}", l.text);
    r.json
}

async fn create_segment(app: &TestApp, name: &str, filter: &str) -> Value {
    let r = app.post(SEGMENTS, json!({"name": name, "filter": filter})).await;
    assert_eq!(r.status, 201, "creating segment {name} with `{filter}`: {}", r.text);
    r.json
}

/// The stored members, following cursors, after checking the count endpoint and the
/// segment's member_count agree.
async fn members(app: &TestApp, segment: &str) -> Vec<String> {
    let listed = ids(&app.list_all(&format!("{SEGMENTS}/{segment}/members?limit=500")).await);
    let count = app.get(&format!("{SEGMENTS}/{segment}/count")).await.expect(200);
    assert_eq!(count["count"].as_u64(), Some(listed.len() as u64), "the count endpoint agrees with the members: {count}");
    let s = app.get(&format!("{SEGMENTS}/{segment}")).await.expect(200);
    assert_eq!(s["member_count"].as_u64(), Some(listed.len() as u64), "member_count agrees with the members: {s}");
    sorted(listed)
}

async fn expect_members(app: &TestApp, segment: &Value, expected: &[&String]) {
    assert_eq!(members(app, &id_of(segment)).await, want(expected), "members of {}", segment["name"]);
}

/// Brings every segment up to date (drains the change queue, refreshes time-dependent ones).
async fn maintain(app: &TestApp) -> Value {
    send(app.req(Method::POST, MAINTAIN)).await.expect(200)
}

async fn set_clock(app: &TestApp, at: &str) {
    app.post(CLOCK, json!({ "set": at })).await.expect(200);
    assert_eq!(app.clock.now(), t(at));
}

async fn advance_clock(app: &TestApp, by: &str) {
    app.post(CLOCK, json!({ "advance": by })).await.expect(200);
}

/// Sends events, checking every one was accepted.
async fn ingest(app: &TestApp, events: Vec<Value>) {
    let answer = app.post(EVENTS, json!({ "events": events })).await.expect(200);
    for r in answer["results"].as_array().unwrap_or_else(|| panic!("results: {answer}")) {
        assert_eq!(r["status"], "accepted", "{r}");
    }
}

fn event(kind: &str, who: &str, at: &str, payload: Value) -> Value {
    json!({"type": kind, "contact": {"id": who}, "occurred_at": at, "payload": payload})
}

fn order(who: &str, at: &str, total: f64, category: &str) -> Value {
    json!({"type": "order.completed", "contact": {"id": who}, "occurred_at": at, "channel": "store",
        "payload": {"currency": "EUR", "total": total, "items": [
            {"sku": format!("{category}-1"), "name": "Thing", "category": category, "quantity": 1, "price": total}]}})
}

async fn tag_id(app: &TestApp, name: &str) -> String {
    let tags = app.list_all(&format!("/api/v1/tags?q={name}")).await;
    id_of(tags.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("tag {name}: {tags:?}")))
}

/// A contact's `segment.entered` or `segment.exited` events for `segment`, newest first.
async fn segment_events(app: &TestApp, contact: &str, kind: &str, segment: &Value) -> Vec<Value> {
    let all = app.list_all(&format!("/api/v1/contacts/{contact}/timeline?type={kind}")).await;
    for e in &all {
        assert_eq!(e["type"], kind, "{e}");
        assert_eq!(e["channel"], "system", "segment events are system events: {e}");
        assert!(e["payload"]["segment_id"].is_string() && e["payload"]["segment"].is_string(), "payload names the segment: {e}");
    }
    all.into_iter().filter(|e| e["payload"]["segment_id"] == segment["id"]).collect()
}

/// How many times `contact` entered and left `segment`.
async fn moves(app: &TestApp, contact: &str, segment: &Value) -> (usize, usize) {
    let entered = segment_events(app, contact, "segment.entered", segment).await;
    let exited = segment_events(app, contact, "segment.exited", segment).await;
    for e in entered.iter().chain(&exited) {
        assert_eq!(e["payload"]["segment"], segment["name"], "the payload carries the segment's name: {e}");
    }
    (entered.len(), exited.len())
}

// ---------------------------------------------------------------------------------------------
// Tests.

both_backends! {
    async fn preview_answers_count_and_sample_for_text_and_json(app) {
        let ana = person(app, json!({"first_name":"Ana","last_name":"Lima","address":{"city":"Lisbon","country":"PT"}})).await;
        let bo = person(app, json!({"first_name":"Bo","last_name":"Reyes","address":{"city":"Porto","country":"PT"}})).await;
        let _cy = person(app, json!({"first_name":"Cy","address":{"city":"Madrid","country":"ES"}})).await;

        let r = app.post(PREVIEW, json!({"filter":"country = \"PT\""})).await.expect(200);
        assert_eq!(r["count"], 2, "{r}");
        let sample = r["sample"].as_array().expect("a sample");
        assert_eq!(ids(sample), [ana.clone(), bo.clone()], "the sample comes in name order: {r}");
        assert_eq!(sample[0]["display_name"], "Ana Lima", "the sample holds whole contacts: {r}");
        assert_eq!(sample[0]["address"]["city"], "Lisbon", "{r}");
        assert_eq!(r["filter"], "country = \"PT\"", "the filter as understood: {r}");

        // The JSON form gives the same answer, and the text the preview echoes reads back to it.
        let as_json = r["filter_json"].clone();
        assert!(as_json.is_object(), "{r}");
        let again = app.post(PREVIEW, json!({"filter_json": as_json})).await.expect(200);
        assert_eq!(again["count"], 2);
        assert_eq!(again["filter"], r["filter"]);
        let by_json = app.post(PREVIEW, json!({"filter_json": {"compare": {"field": "city", "op": "=", "value": "PORTO"}}})).await.expect(200);
        assert_eq!(by_json["count"], 1, "{by_json}");
        assert_eq!(ids(by_json["sample"].as_array().expect("a sample")), [bo.as_str()]);
        assert_eq!(by_json["filter"], "city = \"PORTO\"");
        let nested = json!({"and": [{"compare": {"field": "country", "op": "=", "value": "PT"}},
            {"not": {"compare": {"field": "city", "op": "in", "value": ["porto", "faro"]}}}]});
        let r = app.post(PREVIEW, json!({"filter_json": nested})).await.expect(200);
        assert_eq!(r["count"], 1, "{r}");
        assert_eq!(r["filter"], "country = \"PT\" and not city in (\"porto\", \"faro\")");
        assert_eq!(ids(r["sample"].as_array().expect("a sample")), [ana.as_str()]);

        // The sample is capped by `sample`; the count is not.
        let r = app.post(PREVIEW, json!({"filter":"country = \"PT\"","sample":1})).await.expect(200);
        assert_eq!(r["count"], 2);
        assert_eq!(ids(r["sample"].as_array().expect("a sample")), [ana.as_str()]);
        let r = app.post(PREVIEW, json!({"filter":"country = \"PT\"","sample":0})).await.expect(200);
        assert_eq!((r["count"].clone(), r["sample"].clone()), (json!(2), json!([])));
        app.post(PREVIEW, json!({"filter":"country = \"PT\"","sample":101})).await.expect_field_problem(400, "sample");
        let r = app.post(PREVIEW, json!({"filter":"country = \"FR\""})).await.expect(200);
        assert_eq!((r["count"].clone(), r["sample"].clone()), (json!(0), json!([])));

        // Exactly one of the two forms.
        app.post(PREVIEW, json!({})).await.expect_field_problem(400, "filter");
        app.post(PREVIEW, json!({"filter":"city = \"x\"","filter_json":{"compare":{"field":"city","op":"=","value":"x"}}})).await
            .expect_field_problem(400, "filter");
        app.post(PREVIEW, json!({"filter_json":{"compare":{"field":"colour","op":"=","value":"red"}}})).await
            .expect_field_problem(400, "filter_json");
        app.post(PREVIEW, json!({"filter_json":{"and":[{"compare":{"field":"city","op":"=","value":"x"}}]}})).await
            .expect_field_problem(400, "filter_json");
        app.post(PREVIEW, json!({"filter_json":"city = \"x\""})).await.expect_field_problem(400, "filter_json");

        // Previews need a key; any role may preview.
        send(app.anon(Method::POST, PREVIEW).json(&json!({"filter":"country = \"PT\""}))).await.expect_problem(401);
        let viewer = app.create_key("viewer", rapport_core::user::Role::Viewer).await;
        let r = send(app.with_key(&viewer, Method::POST, PREVIEW).json(&json!({"filter":"country = \"PT\""}))).await.expect(200);
        assert_eq!(r["count"], 2);
    }

    async fn a_filter_that_does_not_parse_says_where_and_what_was_expected(app) {
        person(app, json!({"first_name":"Ana","address":{"city":"Lisbon"}})).await;
        let text = "city = \"Lisbon\"\nand (tag = \"x\" or )";
        let r = app.post(PREVIEW, json!({ "filter": text })).await;
        let body = r.expect_problem(400).clone();
        let errors = body["errors"].as_array().unwrap_or_else(|| panic!("errors: {body}"));
        assert_eq!(errors.len(), 1, "{body}");
        let e = &errors[0];
        assert_eq!(e["field"], "filter", "{e}");
        assert_eq!(e["line"], 2, "the mistake is on line 2: {e}");
        assert_eq!(e["column"], 19, "at the `)` that ends the empty `or`: {e}");
        let expected = e["expected"].as_str().unwrap_or_else(|| panic!("what was expected: {e}"));
        assert!(expected.contains("field name"), "says a condition was expected: {e}");
        assert!(e["message"].as_str().is_some_and(|m| m.contains("line 2")), "{e}");

        // The contacts list refuses the same text the same way.
        let l = app.get(&with_filter("/api/v1/contacts", text)).await;
        let lb = l.expect_problem(400);
        assert_eq!((lb["errors"][0]["line"].clone(), lb["errors"][0]["column"].clone()), (json!(2), json!(19)), "{lb}");

        // Columns count characters, not bytes.
        let r = app.post(PREVIEW, json!({"filter": "city = \"Zürich\" and\n  count(email.opened, last 90) >= 5"})).await;
        let e = r.expect_problem(400)["errors"][0].clone();
        assert_eq!((e["line"].clone(), e["column"].clone()), (json!(2), json!(28)), "at the unitless 90: {e}");
        let r = app.post(PREVIEW, json!({"filter": "name = \"Zoë\" andd city = \"x\""})).await;
        let e = r.expect_problem(400)["errors"][0].clone();
        assert_eq!((e["line"].clone(), e["column"].clone()), (json!(1), json!(14)), "at `andd`: {e}");
        // An unknown field is named, with where it stands.
        let body = expect_refused(app, "city = \"x\" or\ncolour = \"red\"", "colour").await;
        assert_eq!((body["errors"][0]["line"].clone(), body["errors"][0]["column"].clone()), (json!(2), json!(1)), "{body}");
        // An empty filter on the contacts list is no filter at all; in a preview it is an error.
        assert_eq!(app.list_all("/api/v1/contacts?filter=").await.len(), 1);
        app.post(PREVIEW, json!({"filter": "  "})).await.expect_field_problem(400, "filter");

        // Saving a segment with a broken filter is refused with the same position.
        let r = app.post(SEGMENTS, json!({"name": "Broken", "filter": text})).await;
        let body = r.expect_field_problem(422, "filter");
        assert_eq!((body["errors"][0]["line"].clone(), body["errors"][0]["column"].clone()), (json!(2), json!(19)), "{body}");
        assert!(app.list_all(SEGMENTS).await.is_empty(), "nothing was saved");
    }

    async fn unknown_names_are_errors_that_name_them(app) {
        app.create("/api/v1/custom-fields", json!({"record_type":"contact","key":"shoe_size","kind":"number"})).await;
        app.create("/api/v1/custom-fields", json!({"record_type":"contact","key":"vip_card","kind":"bool"})).await;
        person(app, json!({"first_name":"Ana"})).await;

        let body = expect_refused(app, "custom.nope = 1", "custom.nope").await;
        assert!(body.to_string().contains("shoe_size"), "lists the defined fields: {body}");
        expect_refused(app, "company.custom.size = \"big\"", "company.custom.size").await;
        expect_refused(app, "custom.nope is set", "custom.nope").await;
        expect_refused(app, "custom.vip_card = \"yes\"", "custom.vip_card").await;
        let body = expect_refused(app, "value_tier = \"platinum\"", "platinum").await;
        assert!(body.to_string().contains("gold"), "lists the tiers: {body}");
        expect_refused(app, "value_tier in (\"gold\", \"diamond\")", "diamond").await;
        expect_refused(app, "stage = \"sleeping\"", "sleeping").await;
        expect_refused(app, "in segment \"Nobody\"", "Nobody").await;
        expect_refused(app, "not (tag = \"x\" or in segment \"Ghosts\")", "Ghosts").await;
        expect_refused(app, "favourite_colour = \"red\"", "favourite_colour").await;
        expect_refused(app, "order_count >= \"many\"", "order_count").await;
        expect_refused(app, "birthday = \"2000-01-01\"", "birthday").await;
        expect_refused(app, "sum(order.completed, last 30d) > 1", "sum").await;

        // Saved segments refuse the same names (422: the body is well formed, its content not).
        for (filter, needle) in [("custom.nope = 1", "custom.nope"), ("value_tier = \"platinum\"", "platinum"), ("in segment \"Nobody\"", "Nobody")] {
            let r = app.post(SEGMENTS, json!({"name": "S", "filter": filter})).await;
            r.expect_field_problem(422, "filter");
            assert!(r.text.contains(needle), "{filter}: {}", r.text);
        }
        let r = app.post(SEGMENTS, json!({"filter": "tag = \"x\""})).await;
        r.expect_field_problem(422, "name");
        let r = app.post(SEGMENTS, json!({"name": "No filter"})).await;
        r.expect_field_problem(422, "filter");
        assert!(app.list_all(SEGMENTS).await.is_empty(), "nothing was saved");
    }

    async fn segments_are_created_listed_paged_changed_and_deleted(app) {
        let mut lisbon = Vec::new();
        for name in ["Ana", "Bea", "Cleo", "Dina", "Eva"] {
            lisbon.push(person(app, json!({"first_name": name, "address": {"city": "Lisbon"}})).await);
        }
        let porto = person(app, json!({"first_name": "Zé", "address": {"city": "Porto"}})).await;

        let seg = create_segment(app, "Lisbon", "city = \"lisbon\"").await;
        let id = id_of(&seg);
        assert_eq!(seg["name"], "Lisbon");
        assert_eq!(seg["filter"], "city = \"lisbon\"");
        assert_eq!(seg["filter_json"], json!({"compare": {"field": "city", "op": "=", "value": "lisbon"}}));
        assert_eq!(seg["depends_on_time"], false);
        assert_eq!(seg["member_count"], 5);
        assert!(seg["refreshed_at"].is_string(), "{seg}");
        assert_eq!(app.get(&format!("{SEGMENTS}/{id}")).await.expect(200), seg);

        // Members page by cursor, in name order.
        let page1 = app.get(&format!("{SEGMENTS}/{id}/members?limit=2")).await.expect(200);
        assert_eq!(ids(page1["data"].as_array().expect("data")), lisbon[..2]);
        let c1 = page1["next_cursor"].as_str().expect("a cursor after a full page").to_string();
        let page2 = app.get(&format!("{SEGMENTS}/{id}/members?limit=2&cursor={c1}")).await.expect(200);
        assert_eq!(ids(page2["data"].as_array().expect("data")), lisbon[2..4]);
        let c2 = page2["next_cursor"].as_str().expect("a cursor").to_string();
        let page3 = app.get(&format!("{SEGMENTS}/{id}/members?limit=2&cursor={c2}")).await.expect(200);
        assert_eq!(ids(page3["data"].as_array().expect("data")), lisbon[4..]);
        assert!(page3["next_cursor"].is_null(), "{page3}");
        let desc = app.get(&format!("{SEGMENTS}/{id}/members?sort=-display_name&limit=1")).await.expect(200);
        assert_eq!(ids(desc["data"].as_array().expect("data")), [lisbon[4].as_str()]);
        app.get(&format!("{SEGMENTS}/{id}/members?limit=0")).await.expect_problem(400);
        app.get(&format!("{SEGMENTS}/{id}/members?cursor=garbage")).await.expect_problem(400);
        let count = app.get(&format!("{SEGMENTS}/{id}/count")).await.expect(200);
        assert_eq!(count["count"], 5, "{count}");
        assert!(count["refreshed_at"].is_string(), "{count}");
        let in_segments = app.get(&format!("/api/v1/contacts/{}/segments", lisbon[0])).await.expect(200);
        assert_eq!(in_segments.as_array().map(|a| a.len()), Some(1), "{in_segments}");
        assert_eq!(in_segments[0]["id"], id.as_str());
        assert_eq!(in_segments[0]["name"], "Lisbon");
        assert_eq!(app.get(&format!("/api/v1/contacts/{porto}/segments")).await.expect(200), json!([]));

        // Names are unique whatever their case.
        app.post(SEGMENTS, json!({"name": "  lisbon ", "filter": "city = \"x\""})).await.expect_field_problem(409, "name");
        let other = app.post(SEGMENTS, json!({"name": "Porto", "filter_json": {"compare": {"field": "city", "op": "=", "value": "Porto"}}}))
            .await.expect(201);
        assert_eq!(other["filter"], "city = \"Porto\"");
        assert_eq!(other["member_count"], 1);
        app.patch(&format!("{SEGMENTS}/{}", id_of(&other)), json!({"name": "LISBON"})).await.expect_field_problem(409, "name");
        let listed = app.list_all(SEGMENTS).await;
        assert_eq!(listed.iter().map(|s| s["name"].as_str().unwrap_or_default()).collect::<Vec<_>>(), ["Lisbon", "Porto"]);

        // A rename keeps the members and tells nobody anything.
        let renamed = app.patch(&format!("{SEGMENTS}/{id}"), json!({"name": "Lisboa", "description": "Our home town"})).await.expect(200);
        assert_eq!(renamed["name"], "Lisboa");
        assert_eq!(renamed["description"], "Our home town");
        assert_eq!(renamed["filter"], seg["filter"]);
        assert_eq!(members(app, &id).await, sorted(lisbon.clone()));

        // A new filter moves people, and each move is an event.
        app.patch(&format!("/api/v1/contacts/{}", lisbon[0]), json!({"tags": ["x"]})).await.expect(200);
        let changed = app.patch(&format!("{SEGMENTS}/{id}"), json!({"filter": "city = \"Lisbon\" and tag = \"x\""})).await.expect(200);
        assert_eq!(changed["filter"], "city = \"Lisbon\" and tag = \"x\"");
        assert_eq!(changed["member_count"], 1);
        assert_eq!(members(app, &id).await, [lisbon[0].as_str()]);
        for (i, c) in lisbon.iter().enumerate() {
            assert_eq!(moves(app, c, &changed).await, if i == 0 { (0, 0) } else { (0, 1) }, "contact {i}");
        }
        let exit = &segment_events(app, &lisbon[1], "segment.exited", &changed).await[0];
        assert_eq!(exit["payload"], json!({"segment_id": id, "segment": "Lisboa"}), "{exit}");
        let back = app.patch(&format!("{SEGMENTS}/{id}"), json!({"filter_json": {"compare": {"field": "city", "op": "=", "value": "Lisbon"}}}))
            .await.expect(200);
        assert_eq!(back["member_count"], 5);
        for c in &lisbon[1..] {
            assert_eq!(moves(app, c, &back).await, (1, 1));
        }
        app.patch(&format!("{SEGMENTS}/{id}"), json!({"filter": "city = "})).await.expect_field_problem(422, "filter");
        app.patch(&format!("{SEGMENTS}/{id}"), json!({"filter": "tag = \"x\"", "filter_json": {}})).await.expect_field_problem(422, "filter");
        app.patch(&format!("{SEGMENTS}/{id}"), json!({"name": ""})).await.expect_field_problem(422, "name");
        assert_eq!(app.get(&format!("{SEGMENTS}/{id}")).await.expect(200)["filter"], "city = \"Lisbon\"");

        // A segment another one names cannot be deleted or renamed.
        let dependant = create_segment(app, "Tagged in Lisbon", "in segment \"LISBOA\" and tag = \"x\"").await;
        assert_eq!(dependant["member_count"], 1);
        let r = app.delete(&format!("{SEGMENTS}/{id}")).await;
        r.expect_problem(409);
        assert!(r.text.contains("Tagged in Lisbon"), "names who uses it: {}", r.text);
        app.patch(&format!("{SEGMENTS}/{id}"), json!({"name": "Lisbon again"})).await.expect_field_problem(409, "name");
        // A segment cannot name itself, nor two name each other.
        app.patch(&format!("{SEGMENTS}/{id}"), json!({"filter": "in segment \"Lisboa\""})).await.expect_field_problem(422, "filter");
        app.patch(&format!("{SEGMENTS}/{id}"), json!({"filter": "in segment \"Tagged in Lisbon\""})).await.expect_field_problem(422, "filter");
        assert_eq!(app.delete(&format!("{SEGMENTS}/{}", id_of(&dependant))).await.status, 204);
        assert_eq!(app.delete(&format!("{SEGMENTS}/{id}")).await.status, 204);
        app.get(&format!("{SEGMENTS}/{id}")).await.expect_problem(404);
        app.get(&format!("{SEGMENTS}/{id}/members")).await.expect_problem(404);
        app.get(&format!("{SEGMENTS}/{id}/count")).await.expect_problem(404);
        app.get(&format!("{SEGMENTS}/{id}/explain/{}", lisbon[0])).await.expect_problem(404);
        app.delete(&format!("{SEGMENTS}/{id}")).await.expect_problem(404);
        app.patch(&format!("{SEGMENTS}/{id}"), json!({"name": "x"})).await.expect_problem(404);
        assert_eq!(app.get(&format!("/api/v1/contacts/{}/segments", lisbon[0])).await.expect(200), json!([]));
        assert_eq!(app.list_all(SEGMENTS).await.len(), 1);

        // Changing segments needs a key that may write.
        let viewer = app.create_key("viewer", rapport_core::user::Role::Viewer).await;
        send(app.with_key(&viewer, Method::POST, SEGMENTS).json(&json!({"name": "V", "filter": "tag = \"x\""}))).await.expect_problem(403);
        let r = send(app.with_key(&viewer, Method::GET, &format!("{SEGMENTS}/{}/members", id_of(&other)))).await.expect(200);
        assert_eq!(ids(r["data"].as_array().expect("data")), [porto.as_str()]);
        send(app.with_key(&viewer, Method::POST, MAINTAIN)).await.expect_problem(403);
    }

    async fn contact_fields_tags_and_owner(app) {
        let olga = id_of(&app.create("/api/v1/users", json!({"name": "Olga Owner", "email": "olga@example.com"})).await);
        let ana = person(app, json!({"first_name": "Ana", "last_name": "Lima", "title": "Buyer", "owner_id": olga,
            "emails": [{"address": "Ana.Lima@Shop.example"}], "phones": [{"number": "+351 912 345 678"}],
            "address": {"city": "Lisbon", "country": "PT"}, "tags": ["VIP", "newsletter"], "source": "import"})).await;
        let bo = person(app, json!({"first_name": "Bo", "last_name": "Reyes",
            "emails": [{"address": "bo@other.example"}, {"address": "bo@shop.example.org"}], "phones": [{"number": "+63 917 123 4567"}],
            "address": {"city": "Manila", "country": "PH"}, "tags": ["staff"]})).await;
        let cy = person(app, json!({"first_name": "Cy"})).await;

        expect_who(app, "name = \"ana lima\"", &[&ana]).await;
        expect_who(app, "name starts_with \"B\"", &[&bo]).await;
        expect_who(app, "first_name in (\"Ana\", \"Cy\")", &[&ana, &cy]).await;
        expect_who(app, "last_name contains \"eye\"", &[&bo]).await;
        expect_who(app, "title = \"buyer\"", &[&ana]).await;
        expect_who(app, "source = \"import\"", &[&ana]).await;
        expect_who(app, "city = \"LISBON\"", &[&ana]).await;
        expect_who(app, "country in (\"PT\", \"PH\")", &[&ana, &bo]).await;
        // A negative test holds when the value is missing (two-valued logic).
        expect_who(app, "country != \"PT\"", &[&bo, &cy]).await;
        expect_who(app, "country not in (\"PT\")", &[&bo, &cy]).await;
        expect_who(app, "city is set", &[&ana, &bo]).await;
        expect_who(app, "city is not set", &[&cy]).await;
        expect_who(app, "email ends_with \"@shop.example\"", &[&ana]).await;
        expect_who(app, "email ends_with \".org\"", &[&bo]).await;
        expect_who(app, "email = \"ana.lima@shop.example\"", &[&ana]).await;
        expect_who(app, "email contains \"shop\"", &[&ana, &bo]).await;
        expect_who(app, "email is not set", &[&cy]).await;
        // Phones match on digits, however they are written.
        expect_who(app, "phone contains \"912 345\"", &[&ana]).await;
        expect_who(app, "phone contains \"(917) 123\"", &[&bo]).await;
        expect_who(app, "phone = \"+63 917 123 4567\"", &[&bo]).await;
        expect_who(app, "phone is set", &[&ana, &bo]).await;
        expect_who(app, "owner = \"OLGA@example.com\"", &[&ana]).await;
        expect_who(app, "owner ends_with \"@example.com\"", &[&ana]).await;
        expect_who(app, "owner is set", &[&ana]).await;
        expect_who(app, "owner is not set", &[&bo, &cy]).await;
        expect_who(app, "owner != \"olga@example.com\"", &[&bo, &cy]).await;
        expect_who(app, "tag = \"vip\"", &[&ana]).await;
        expect_who(app, "tag != \"staff\"", &[&ana, &cy]).await;
        expect_who(app, "tag in (\"staff\", \"newsletter\")", &[&ana, &bo]).await;
        expect_who(app, "tag not in (\"staff\", \"vip\")", &[&cy]).await;
        expect_who(app, "tag is set", &[&ana, &bo]).await;
        expect_who(app, "tag is not set", &[&cy]).await;
        expect_who(app, "tag starts_with \"news\"", &[&ana]).await;
        // LIKE wildcards in the value are taken literally.
        expect_who(app, "email contains \"%\"", &[]).await;
        expect_who(app, "name contains \"_\"", &[]).await;
        expect_who(app, "created_at within last 1d", &[&ana, &bo, &cy]).await;
        expect_who(app, "created_at before \"2026-01-01\"", &[]).await;
    }

    async fn custom_fields_of_every_kind(app) {
        for (key, kind, options) in [
            ("shoe_size", "number", json!(null)),
            ("renewal_date", "date", json!(null)),
            ("plan", "enum", json!(["basic", "pro"])),
            ("interests", "multi_enum", json!(["hiking", "cycling", "running"])),
            ("vip_card", "bool", json!(null)),
            ("nickname", "text", json!(null)),
        ] {
            let mut body = json!({"record_type": "contact", "key": key, "kind": kind});
            if !options.is_null() {
                body["options"] = options;
            }
            app.create("/api/v1/custom-fields", body).await;
        }
        let ana = person(app, json!({"first_name": "Ana", "custom_fields": {"shoe_size": 38, "renewal_date": "2026-02-01",
            "plan": "pro", "interests": ["hiking", "running"], "vip_card": true, "nickname": "Nana"}})).await;
        let bo = person(app, json!({"first_name": "Bo", "custom_fields": {"shoe_size": 44.5, "renewal_date": "2026-01-05",
            "plan": "basic", "interests": ["cycling"], "vip_card": false}})).await;
        let cy = person(app, json!({"first_name": "Cy"})).await;

        expect_who(app, "custom.shoe_size >= 40", &[&bo]).await;
        expect_who(app, "custom.shoe_size < 40", &[&ana]).await;
        expect_who(app, "custom.shoe_size = 44.5", &[&bo]).await;
        expect_who(app, "custom.shoe_size in (38, 39)", &[&ana]).await;
        expect_who(app, "custom.shoe_size != 38", &[&bo, &cy]).await;
        expect_who(app, "custom.renewal_date within next 30d", &[&ana]).await;
        expect_who(app, "custom.renewal_date within last 30d", &[&bo]).await;
        expect_who(app, "custom.renewal_date before 7d ago", &[&bo]).await;
        expect_who(app, "custom.renewal_date after \"2026-01-10\"", &[&ana]).await;
        expect_who(app, "custom.renewal_date before in 30d", &[&ana, &bo]).await;
        expect_who(app, "custom.renewal_date = \"2026-01-05\"", &[&bo]).await;
        expect_who(app, "custom.plan = \"PRO\"", &[&ana]).await;
        expect_who(app, "custom.plan in (\"basic\", \"pro\")", &[&ana, &bo]).await;
        expect_who(app, "custom.plan != \"pro\"", &[&bo, &cy]).await;
        expect_who(app, "custom.interests = \"cycling\"", &[&bo]).await;
        expect_who(app, "custom.interests in (\"hiking\", \"cycling\")", &[&ana, &bo]).await;
        expect_who(app, "custom.interests != \"hiking\"", &[&bo, &cy]).await;
        expect_who(app, "custom.interests not in (\"running\", \"cycling\")", &[&cy]).await;
        expect_who(app, "custom.vip_card = true", &[&ana]).await;
        expect_who(app, "custom.vip_card = false", &[&bo]).await;
        expect_who(app, "custom.vip_card != true", &[&bo, &cy]).await;
        expect_who(app, "custom.nickname starts_with \"na\"", &[&ana]).await;
        expect_who(app, "custom.shoe_size is set", &[&ana, &bo]).await;
        expect_who(app, "custom.plan is not set", &[&cy]).await;
        expect_who(app, "custom.nickname is not set", &[&bo, &cy]).await;

        // Explanations show the values as they are stored: numbers, text, lists, yes/no.
        let mix = create_segment(app, "Custom mix", "custom.shoe_size < 40 and custom.plan = \"pro\" and custom.interests = \"hiking\" \
            and custom.vip_card = true and custom.renewal_date after \"2026-01-10\" and custom.nickname is set").await;
        expect_members(app, &mix, &[&ana]).await;
        let x = app.get(&format!("{SEGMENTS}/{}/explain/{ana}", id_of(&mix))).await.expect(200);
        assert_eq!(x["matches"], true, "{x}");
        let values: Vec<Value> = x["reason"]["parts"].as_array().expect("parts").iter().map(|p| p["value"].clone()).collect();
        assert_eq!(values, [json!(38), json!("pro"), json!(["hiking", "running"]), json!(true), json!("2026-02-01"), json!("Nana")], "{x}");
        let x = app.get(&format!("{SEGMENTS}/{}/explain/{bo}", id_of(&mix))).await.expect(200);
        let parts = x["reason"]["parts"].as_array().expect("parts").clone();
        let held: Vec<Value> = parts.iter().map(|p| p["held"].clone()).collect();
        assert_eq!(held, [json!(false), json!(false), json!(false), json!(false), json!(false), json!(false)], "{x}");
        assert_eq!(parts[0]["value"], json!(44.5), "{x}");
        assert_eq!(parts[3]["value"], json!(false), "{x}");
        assert!(parts[5]["value"].is_null(), "{x}");

        // Custom fields of the JSON form, and the date moves with the clock.
        let r = app.post(PREVIEW, json!({"filter_json": {"date": {"date": {"field": "custom.renewal_date"}, "test": {"within_next": "30d"}}}}))
            .await.expect(200);
        assert_eq!(r["filter"], "custom.renewal_date within next 30d");
        assert_eq!(ids(r["sample"].as_array().expect("a sample")), [ana.as_str()]);
        let seg = create_segment(app, "Renewals", "custom.renewal_date within next 14d").await;
        assert_eq!(seg["depends_on_time"], true);
        expect_members(app, &seg, &[]).await;
        advance_clock(app, "P3D").await;
        expect_members(app, &seg, &[&ana]).await;
        assert_eq!(moves(app, &ana, &seg).await, (1, 0));
        // A contact edit moves the date out again.
        app.patch(&format!("/api/v1/contacts/{ana}"), json!({"custom_fields": {"renewal_date": "2026-06-01"}})).await.expect(200);
        maintain(app).await;
        expect_members(app, &seg, &[]).await;
        assert_eq!(moves(app, &ana, &seg).await, (1, 1));
    }

    async fn company_fields_follow_links_and_company_edits(app) {
        app.create("/api/v1/custom-fields", json!({"record_type": "company", "key": "employees", "kind": "number"})).await;
        let acme = id_of(&app.create("/api/v1/companies", json!({"name": "Acme", "industry": "Retail", "tags": ["key account"],
            "custom_fields": {"employees": 500}})).await);
        let globex = id_of(&app.create("/api/v1/companies", json!({"name": "Globex", "industry": "Energy"})).await);
        let ana = person(app, json!({"first_name": "Ana"})).await;
        let bo = person(app, json!({"first_name": "Bo"})).await;
        let cy = person(app, json!({"first_name": "Cy"})).await;
        let ana_link = id_of(&app.create("/api/v1/links", json!({"contact_id": ana, "company_id": acme})).await);
        app.create("/api/v1/links", json!({"contact_id": bo, "company_id": globex})).await;

        expect_who(app, "company.name = \"ACME\"", &[&ana]).await;
        expect_who(app, "company.name starts_with \"glob\"", &[&bo]).await;
        expect_who(app, "company.industry in (\"retail\", \"energy\")", &[&ana, &bo]).await;
        expect_who(app, "company.industry != \"retail\"", &[&bo, &cy]).await;
        expect_who(app, "company.tag = \"Key Account\"", &[&ana]).await;
        expect_who(app, "company.name is set", &[&ana, &bo]).await;
        expect_who(app, "company.name is not set", &[&cy]).await;
        expect_who(app, "company.industry is set and not company.name = \"acme\"", &[&bo]).await;
        expect_who(app, "company.custom.employees >= 100", &[&ana]).await;
        expect_who(app, "company.custom.employees is set", &[&ana]).await;
        expect_who(app, "company.custom.employees != 500", &[&bo, &cy]).await;
        expect_refused(app, "company.custom.revenue > 1", "company.custom.revenue").await;
        // The contacts list combines the filter with its other parameters.
        let listed = ids(&app.list_all(&format!("{}&q=an", with_filter("/api/v1/contacts", "company.name is set"))).await);
        assert_eq!(listed, [ana.as_str()]);

        let seg = create_segment(app, "Retail people", "company.industry = \"retail\"").await;
        expect_members(app, &seg, &[&ana]).await;
        // The company changes: its people are looked at again.
        app.patch(&format!("/api/v1/companies/{globex}"), json!({"industry": "retail"})).await.expect(200);
        maintain(app).await;
        expect_members(app, &seg, &[&ana, &bo]).await;
        assert_eq!(moves(app, &bo, &seg).await, (1, 0));
        // A link goes, and so does the membership.
        assert_eq!(app.delete(&format!("/api/v1/links/{ana_link}")).await.status, 204);
        maintain(app).await;
        expect_members(app, &seg, &[&bo]).await;
        assert_eq!(moves(app, &ana, &seg).await, (0, 1));
        // A new link brings someone in.
        app.create("/api/v1/links", json!({"contact_id": cy, "company_id": acme})).await;
        maintain(app).await;
        expect_members(app, &seg, &[&bo, &cy]).await;
        // So does deleting the company take them out.
        assert_eq!(app.delete(&format!("/api/v1/companies/{globex}")).await.status, 204);
        maintain(app).await;
        expect_members(app, &seg, &[&cy]).await;
        assert_eq!(moves(app, &bo, &seg).await, (1, 1));
    }

    async fn subscriptions_follow_the_latest_change_whatever_the_arrival_order(app) {
        let ana = person(app, json!({"first_name": "Ana"})).await;
        let bo = person(app, json!({"first_name": "Bo"})).await;
        let cy = person(app, json!({"first_name": "Cy"})).await;
        let dee = person(app, json!({"first_name": "Dee"})).await;
        let eve = person(app, json!({"first_name": "Eve"})).await;
        let sub = |who: &str, at: &str, topic: &str| event("email.subscribed", who, at, json!({"topic": topic}));
        let unsub = |who: &str, at: &str, topic: Option<&str>| {
            event("email.unsubscribed", who, at, topic.map_or(json!({}), |t| json!({"topic": t})))
        };

        // A subscription needs a topic.
        let r = app.post(EVENTS, json!({"events": [event("email.subscribed", &ana, "2026-01-10T10:00:00Z", json!({}))]})).await.expect(200);
        assert_eq!(r["results"][0]["status"], "rejected", "{r}");
        assert_eq!(r["results"][0]["errors"][0]["field"], "payload.topic", "{r}");

        ingest(app, vec![sub(&ana, "2026-01-10T10:00:00Z", "newsletter")]).await;
        // Bo unsubscribed on the 5th; the older subscription of the 1st arrives afterwards.
        ingest(app, vec![unsub(&bo, "2026-01-05T10:00:00Z", Some("newsletter"))]).await;
        ingest(app, vec![sub(&bo, "2026-01-01T10:00:00Z", "newsletter")]).await;
        // Cy subscribed, then left everything (no topic).
        ingest(app, vec![sub(&cy, "2026-01-02T10:00:00Z", "newsletter")]).await;
        ingest(app, vec![unsub(&cy, "2026-01-06T10:00:00Z", None)]).await;
        // Dee left everything, then came back to the newsletter: one batch, newest first.
        ingest(app, vec![sub(&dee, "2026-01-08T10:00:00Z", "Newsletter"), unsub(&dee, "2026-01-03T10:00:00Z", None)]).await;

        expect_who(app, "subscribed(\"newsletter\")", &[&ana, &dee]).await;
        expect_who(app, "subscribed(\"NEWSLETTER\")", &[&ana, &dee]).await;
        expect_who(app, "unsubscribed(\"newsletter\")", &[&bo, &cy]).await;
        expect_who(app, "not subscribed(\"newsletter\")", &[&bo, &cy, &eve]).await;
        expect_who(app, "unsubscribed(\"offers\")", &[&cy, &dee]).await;
        expect_who(app, "subscribed(\"offers\")", &[]).await;

        let seg = create_segment(app, "Newsletter readers", "subscribed(\"newsletter\")").await;
        expect_members(app, &seg, &[&ana, &dee]).await;
        // Ana leaves everything; an older subscription arriving late changes nothing.
        ingest(app, vec![unsub(&ana, "2026-01-12T10:00:00Z", None)]).await;
        ingest(app, vec![sub(&ana, "2026-01-11T10:00:00Z", "newsletter")]).await;
        // Bo subscribes again, later than his unsubscribe.
        ingest(app, vec![sub(&bo, "2026-01-14T10:00:00Z", "newsletter")]).await;
        maintain(app).await;
        expect_members(app, &seg, &[&bo, &dee]).await;
        assert_eq!(moves(app, &ana, &seg).await, (0, 1));
        assert_eq!(moves(app, &bo, &seg).await, (1, 0));
        assert_eq!(moves(app, &dee, &seg).await, (0, 0));
    }

    async fn profile_metrics_tiers_and_stages(app) {
        let ana = person(app, json!({"first_name": "Ana"})).await;
        let bo = person(app, json!({"first_name": "Bo"})).await;
        let cy = person(app, json!({"first_name": "Cy"})).await;
        ingest(app, vec![
            order(&ana, "2026-01-05T10:00:00Z", 1500.0, "bikes"),
            order(&ana, "2026-01-10T10:00:00Z", 1000.0, "bikes"),
            order(&bo, "2026-01-10T10:00:00Z", 100.0, "socks"),
        ]).await;
        let p = app.get(&format!("/api/v1/contacts/{ana}/profile")).await.expect(200);
        assert_eq!((p["value_tier"].clone(), p["lifecycle_stage"].clone()), (json!("gold"), json!("loyal")), "{p}");

        expect_who(app, "order_count >= 2", &[&ana]).await;
        expect_who(app, "order_count = 1", &[&bo]).await;
        expect_who(app, "order_count = 0", &[&cy]).await;
        expect_who(app, "order_count < 2", &[&bo, &cy]).await;
        expect_who(app, "order_count in (0, 2)", &[&ana, &cy]).await;
        expect_who(app, "revenue > 1000", &[&ana]).await;
        expect_who(app, "revenue >= 2500", &[&ana]).await;
        expect_who(app, "revenue < 500", &[&bo, &cy]).await;
        expect_who(app, "average_order_value = 1250", &[&ana]).await;
        expect_who(app, "average_order_value < 1000", &[&bo]).await;
        expect_who(app, "value_tier = \"GOLD\"", &[&ana]).await;
        expect_who(app, "value_tier in (\"gold\", \"bronze\")", &[&ana, &bo]).await;
        // A contact without a tier is "not gold".
        expect_who(app, "not value_tier = \"gold\"", &[&bo, &cy]).await;
        expect_who(app, "value_tier != \"gold\"", &[&bo, &cy]).await;
        expect_who(app, "value_tier not in (\"gold\", \"vip\")", &[&bo, &cy]).await;
        expect_who(app, "value_tier is not set", &[&cy]).await;
        expect_who(app, "stage = \"loyal\"", &[&ana]).await;
        expect_who(app, "stage = \"active\"", &[&bo]).await;
        expect_who(app, "stage = \"lead\"", &[&cy]).await;
        expect_who(app, "stage in (\"lead\", \"active\")", &[&bo, &cy]).await;
        expect_who(app, "stage != \"lead\"", &[&ana, &bo]).await;

        // Explanations give amounts in the units the filter is written in.
        let big = create_segment(app, "Big spenders", "revenue > 1000 and average_order_value >= 1000 and order_count >= 2 and stage = \"loyal\"").await;
        expect_members(app, &big, &[&ana]).await;
        let x = app.get(&format!("{SEGMENTS}/{}/explain/{ana}", id_of(&big))).await.expect(200);
        let parts = x["reason"]["parts"].as_array().expect("parts").clone();
        let values: Vec<Option<f64>> = parts[..3].iter().map(|p| p["value"].as_f64()).collect();
        assert_eq!(values, [Some(2500.0), Some(1250.0), Some(2.0)], "{x}");
        assert_eq!(parts[3]["value"], "loyal", "{x}");
        let x = app.get(&format!("{SEGMENTS}/{}/explain/{cy}", id_of(&big))).await.expect(200);
        assert_eq!(x["reason"]["parts"][3]["value"], "lead", "people without orders are leads: {x}");

        // Tiers follow orders: Bo spends his way to silver.
        let silver = create_segment(app, "Silver", "value_tier = \"silver\"").await;
        expect_members(app, &silver, &[]).await;
        ingest(app, vec![order(&bo, "2026-01-14T10:00:00Z", 450.0, "socks")]).await;
        maintain(app).await;
        expect_members(app, &silver, &[&bo]).await;
        assert_eq!(moves(app, &bo, &silver).await, (1, 0));
    }

    async fn time_in_stage_moves_with_the_clock(app) {
        let ana = person(app, json!({"first_name": "Ana"})).await;
        app.advance(chrono::Duration::days(2));
        let bo = person(app, json!({"first_name": "Bo"})).await;
        let buyer = person(app, json!({"first_name": "Cy"})).await;
        ingest(app, vec![order(&buyer, "2026-01-17T08:00:00Z", 10.0, "socks")]).await;

        // Leads have been leads since they were created.
        expect_who(app, "time_in_stage > 1d", &[&ana]).await;
        expect_who(app, "time_in_stage < 1d", &[&bo, &buyer]).await;
        let seg = create_segment(app, "Stuck leads", "stage = \"lead\" and time_in_stage >= 14d").await;
        assert_eq!(seg["depends_on_time"], true);
        expect_members(app, &seg, &[]).await;
        advance_clock(app, "P11D").await;
        expect_members(app, &seg, &[]).await;
        advance_clock(app, "P1D").await;
        expect_members(app, &seg, &[&ana]).await;
        advance_clock(app, "P2D").await;
        expect_members(app, &seg, &[&ana, &bo]).await;
        assert_eq!(moves(app, &ana, &seg).await, (1, 0));
        assert_eq!(moves(app, &bo, &seg).await, (1, 0));
        // Bo buys: no longer a lead, so out at once.
        ingest(app, vec![order(&bo, &app.clock.now().to_rfc3339(), 10.0, "socks")]).await;
        maintain(app).await;
        expect_members(app, &seg, &[&ana]).await;
        assert_eq!(moves(app, &bo, &seg).await, (1, 1));
        expect_who(app, "stage = \"active\" and time_in_stage >= 14d", &[&buyer]).await;
    }

    async fn event_history_counts_sums_windows_and_payloads(app) {
        let ana = person(app, json!({"first_name": "Ana"})).await;
        let bo = person(app, json!({"first_name": "Bo"})).await;
        let cy = person(app, json!({"first_name": "Cy"})).await;
        let mut events = vec![
            order(&ana, "2025-06-01T10:00:00Z", 900.0, "socks"),
            order(&ana, "2025-12-20T10:00:00Z", 120.0, "shoes"),
            event("visit.checked_in", &ana, "2026-01-10T10:00:00Z", json!({})),
            order(&bo, "2025-09-01T10:00:00Z", 50.0, "socks"),
            event("visit.checked_in", &bo, "2025-12-01T10:00:00Z", json!({})),
            event("email.opened", &bo, "2026-01-02T10:00:00Z", json!({})),
            event("email.opened", &bo, "2026-01-03T10:00:00Z", json!({})),
            event("email.clicked", &bo, "2026-01-03T10:05:00Z", json!({"url": "https://shop.example/a"})),
            // Older than 90 days: outside every 90-day window.
            event("email.opened", &cy, "2025-09-01T10:00:00Z", json!({})),
        ];
        for d in 1..=5 {
            events.push(event("email.opened", &ana, &format!("2025-12-0{d}T10:00:00Z"), json!({})));
        }
        ingest(app, events).await;

        expect_who(app, "count(email.opened, last 90d) >= 5", &[&ana]).await;
        expect_who(app, "count(email.opened) >= 1", &[&ana, &bo, &cy]).await;
        expect_who(app, "count(email.opened, last 90d) >= 1 and count(email.clicked, last 90d) = 0", &[&ana]).await;
        expect_who(app, "count(email.opened, last 90d) = 0", &[&cy]).await;
        expect_who(app, "count(email.opened, last 90d) > 1 and count(email.opened, last 90d) < 5", &[&bo]).await;
        expect_who(app, "count(order.completed) >= 2", &[&ana]).await;
        expect_who(app, "count(order.completed, last 90d) = 0", &[&bo, &cy]).await;
        expect_who(app, "count(order.completed, last 3mo) = 1", &[&ana]).await;
        expect_who(app, "sum(order.completed.total, last 365d) > 1000", &[&ana]).await;
        expect_who(app, "sum(order.completed.total, last 90d) > 100", &[&ana]).await;
        expect_who(app, "sum(order.completed.total) < 100", &[&bo, &cy]).await;
        expect_who(app, "sum(order.completed.total, last 1y) = 50", &[&bo]).await;
        expect_who(app, "max(order.completed.total) >= 500", &[&ana]).await;
        expect_who(app, "avg(order.completed.total) < 100", &[&bo]).await;
        expect_who(app, "min(order.completed.total) = 120", &[&ana]).await;
        expect_who(app, "count(order.completed where items.category = \"shoes\") >= 1", &[&ana]).await;
        expect_who(app, "count(order.completed where items.category = \"SOCKS\") >= 1", &[&ana, &bo]).await;
        expect_who(app, "count(order.completed where items.category = \"socks\", last 90d) >= 1", &[]).await;
        expect_who(app, "count(order.completed where items.category != \"socks\") >= 1", &[&ana]).await;
        expect_who(app, "count(order.completed where (items.category = \"socks\" and total > 100)) >= 1", &[&ana]).await;
        expect_who(app, "count(order.completed where items.category in (\"shoes\", \"hats\")) = 0", &[&bo, &cy]).await;
        expect_who(app, "count(order.completed where items.price >= 900) = 1", &[&ana]).await;
        expect_who(app, "has order.completed where total >= 100", &[&ana]).await;
        expect_who(app, "has order.completed where items.category = \"socks\"", &[&ana, &bo]).await;
        expect_who(app, "has email.clicked where url contains \"shop.example\"", &[&bo]).await;
        expect_who(app, "has visit.checked_in", &[&ana, &bo]).await;
        expect_who(app, "has visit.checked_in in last 21d", &[&ana]).await;
        expect_who(app, "no visit.checked_in in last 21d", &[&bo, &cy]).await;
        expect_who(app, "no visit.checked_in", &[&cy]).await;
        expect_who(app, "last(visit.checked_in) before 21d ago", &[&bo]).await;
        expect_who(app, "last(visit.checked_in) within last 7d", &[&ana]).await;
        expect_who(app, "last(order.completed) after \"2025-12-01\"", &[&ana]).await;
        expect_who(app, "first(order.completed where items.category = \"socks\") before \"2025-07-01\"", &[&ana]).await;
        expect_who(app, "last_order before 90d ago", &[&bo]).await;
        expect_who(app, "last_visit within last 60d", &[&ana, &bo]).await;
        expect_who(app, "last_open is not set", &[]).await;
        expect_who(app, "last_click is set", &[&bo]).await;
        // "Bought shoes, but not in the last 60 days" in one line, with parentheses and not.
        expect_who(app, "has order.completed where items.category = \"shoes\" and not (has order.completed where items.category = \"shoes\" in last 20d)", &[&ana]).await;
        expect_who(app, "has order.completed where items.category = \"shoes\" and no order.completed where items.category = \"shoes\" in last 30d", &[]).await;
        expect_who(app, "avg(order.completed.total, last 90d) > 100", &[&ana]).await;

        // Conditions the profile's counters answer, or narrow down, must agree with the events,
        // for someone without any event (and so without a profile) too.
        let di = person(app, json!({"first_name": "Di"})).await;
        expect_who(app, "no visit.checked_in in last 21d", &[&bo, &cy, &di]).await;
        expect_who(app, "not (has visit.checked_in in last 21d)", &[&bo, &cy, &di]).await;
        expect_who(app, "count(visit.checked_in) = 0", &[&cy, &di]).await;
        expect_who(app, "count(visit.checked_in) < 1 or count(order.completed) > 1", &[&ana, &cy, &di]).await;
        expect_who(app, "count(email.opened, last 90d) != 2", &[&ana, &cy, &di]).await;
        expect_who(app, "not (count(email.opened, last 90d) >= 5)", &[&bo, &cy, &di]).await;
        expect_who(app, "count(email.opened, last 90d) >= 2", &[&ana, &bo]).await;
        expect_who(app, "sum(order.completed.total, last 90d) < 10", &[&bo, &cy, &di]).await;
        expect_who(app, "count(email.clicked where url contains \"shop\", last 90d) < 1", &[&ana, &cy, &di]).await;
        expect_who(app, "no order.completed where total > 100", &[&bo, &cy, &di]).await;
        expect_who(app, "last(order.completed) before 90d ago", &[&bo]).await;
        expect_who(app, "last(email.opened) after \"2025-01-01\"", &[&ana, &bo, &cy]).await;
    }

    async fn relative_dates_in_the_contacts_time_zone(app) {
        // Today is Thursday 2026-01-15 (UTC).
        let ana = person(app, json!({"first_name": "Ana", "birthday": "1990-01-20"})).await;
        let bo = person(app, json!({"first_name": "Bo", "birthday": "--01-15"})).await;
        let cy = person(app, json!({"first_name": "Cy", "birthday": "1985-01-23"})).await;
        let dee = person(app, json!({"first_name": "Dee", "birthday": "1980-01-14"})).await;
        let eve = person(app, json!({"first_name": "Eve"})).await;
        let gus = person(app, json!({"first_name": "Gus"})).await;
        ingest(app, vec![
            // Eve's first order was two years ago on 17 January; Gus first bought in May.
            order(&eve, "2024-01-17T10:00:00Z", 30.0, "socks"),
            order(&eve, "2025-03-03T10:00:00Z", 30.0, "socks"),
            order(&gus, "2024-05-01T10:00:00Z", 30.0, "socks"),
            order(&gus, "2025-01-16T10:00:00Z", 30.0, "socks"),
        ]).await;

        expect_who(app, "birthday within next 7d", &[&ana, &bo]).await;
        expect_who(app, "birthday within next 8d", &[&ana, &bo, &cy]).await;
        expect_who(app, "birthday is today", &[&bo]).await;
        expect_who(app, "birthday within last 3d", &[&bo, &dee]).await;
        expect_who(app, "birthday anniversary within next 5d", &[&ana, &bo]).await;
        expect_who(app, "birthday is set", &[&ana, &bo, &cy, &dee]).await;
        expect_who(app, "birthday is not set", &[&eve, &gus]).await;
        expect_who(app, "age >= 40", &[&cy, &dee]).await;
        expect_who(app, "age = 40", &[&cy]).await;
        expect_who(app, "age < 40", &[&ana]).await;
        expect_who(app, "birthday before \"1986-01-01\"", &[&cy, &dee]).await;
        expect_who(app, "birthday after 40y ago", &[&ana]).await;
        expect_who(app, "birthday turns 36 within next 7d", &[&ana]).await;
        expect_who(app, "first_order anniversary within next 3d", &[&eve]).await;
        expect_who(app, "first(order.completed) anniversary within next 3d", &[&eve]).await;
        expect_who(app, "last_order anniversary within next 3d", &[&gus]).await;
        expect_who(app, "first_order before 1y ago", &[&eve, &gus]).await;
        expect_who(app, "first_order turns 2 within next 7d", &[&eve]).await;

        // The week's birthdays, kept as the days pass.
        let seg = create_segment(app, "Birthdays this week", "birthday within next 7d").await;
        assert_eq!(seg["depends_on_time"], true);
        expect_members(app, &seg, &[&ana, &bo]).await;
        advance_clock(app, "P1D").await;
        // Friday the 16th: Bo's day has passed, Cy's (the 23rd) is in reach.
        expect_members(app, &seg, &[&ana, &cy]).await;
        assert_eq!(moves(app, &bo, &seg).await, (0, 1));
        assert_eq!(moves(app, &cy, &seg).await, (1, 0));
        advance_clock(app, "P7D").await;
        // Friday the 23rd: only Cy.
        expect_members(app, &seg, &[&cy]).await;
        advance_clock(app, "P1D").await;
        expect_members(app, &seg, &[]).await;
        assert_eq!(moves(app, &ana, &seg).await, (0, 1), "the first filling was quiet; leaving is not");
        assert_eq!(moves(app, &cy, &seg).await, (1, 1));
    }

    async fn birthdays_on_29_february(app) {
        // 2027 is a common year, 2028 a leap year.
        let leap = person(app, json!({"first_name": "Leap", "birthday": "2000-02-29"})).await;
        let leap_no_year = person(app, json!({"first_name": "Lea", "birthday": "--02-29"})).await;
        let feb28 = person(app, json!({"first_name": "Feb", "birthday": "1990-02-28"})).await;
        let mar1 = person(app, json!({"first_name": "Mar", "birthday": "1990-03-01"})).await;
        let seg = create_segment(app, "Birthday today", "birthday is today").await;
        expect_members(app, &seg, &[]).await;

        set_clock(app, "2027-02-27T12:00:00Z").await;
        expect_who(app, "birthday is today", &[]).await;
        expect_who(app, "birthday within next 1d", &[&leap, &leap_no_year, &feb28]).await;
        expect_who(app, "birthday turns 27 within next 1d", &[&leap]).await;
        set_clock(app, "2027-02-28T12:00:00Z").await;
        // In a common year, 29 February is celebrated on the 28th.
        expect_who(app, "birthday is today", &[&leap, &leap_no_year, &feb28]).await;
        expect_members(app, &seg, &[&leap, &leap_no_year, &feb28]).await;
        set_clock(app, "2027-03-01T12:00:00Z").await;
        expect_who(app, "birthday is today", &[&mar1]).await;
        expect_who(app, "birthday within last 1d", &[&leap, &leap_no_year, &feb28, &mar1]).await;
        expect_members(app, &seg, &[&mar1]).await;
        assert_eq!(moves(app, &leap, &seg).await, (1, 1));

        set_clock(app, "2028-02-28T12:00:00Z").await;
        // In a leap year they wait for the 29th.
        expect_who(app, "birthday is today", &[&feb28]).await;
        expect_who(app, "birthday turns 28 within next 1d", &[&leap]).await;
        expect_members(app, &seg, &[&feb28]).await;
        set_clock(app, "2028-02-29T12:00:00Z").await;
        expect_who(app, "birthday is today", &[&leap, &leap_no_year]).await;
        expect_who(app, "age = 28", &[&leap]).await;
        expect_members(app, &seg, &[&leap, &leap_no_year]).await;
        set_clock(app, "2028-03-01T12:00:00Z").await;
        expect_who(app, "birthday is today", &[&mar1]).await;
        assert_eq!(moves(app, &leap, &seg).await, (2, 2));
        assert_eq!(moves(app, &feb28, &seg).await, (2, 2));
        assert_eq!(moves(app, &mar1, &seg).await, (2, 1));
    }

    async fn birthdays_around_midnight_follow_each_contacts_zone(app) {
        let akl_10 = person(app, json!({"first_name": "Aroha", "birthday": "--03-10", "time_zone": "Pacific/Auckland"})).await;
        let akl_11 = person(app, json!({"first_name": "Mere", "birthday": "--03-11", "time_zone": "Pacific/Auckland"})).await;
        let la_10 = person(app, json!({"first_name": "Lupe", "birthday": "--03-10", "time_zone": "America/Los_Angeles"})).await;
        let la_11 = person(app, json!({"first_name": "Lola", "birthday": "--03-11", "time_zone": "America/Los_Angeles"})).await;
        let utc_10 = person(app, json!({"first_name": "Uma", "birthday": "--03-10"})).await;
        let seg = create_segment(app, "Birthday today", "birthday is today").await;

        // 11:30 UTC on 10 March 2027: already 00:30 on the 11th in Auckland (UTC+13), still
        // 03:30 on the 10th in Los Angeles (UTC-8).
        set_clock(app, "2027-03-10T11:30:00Z").await;
        expect_who(app, "birthday is today", &[&akl_11, &la_10, &utc_10]).await;
        expect_members(app, &seg, &[&akl_11, &la_10, &utc_10]).await;
        expect_who(app, "birthday within next 1d", &[&akl_11, &la_10, &la_11, &utc_10]).await;
        expect_who(app, "birthday within last 1d", &[&akl_10, &akl_11, &la_10, &utc_10]).await;
        // Timestamps are judged by the local day too: a visit at 09:00 UTC was on the 10th in
        // Los Angeles (today) but on the evening of the 10th in Auckland (yesterday).
        ingest(app, vec![
            event("visit.checked_in", &akl_10, "2027-03-10T09:00:00Z", json!({})),
            event("visit.checked_in", &la_10, "2027-03-10T09:00:00Z", json!({})),
            event("visit.checked_in", &utc_10, "2027-03-09T23:00:00Z", json!({})),
        ]).await;
        expect_who(app, "last(visit.checked_in) is today", &[&la_10]).await;
        expect_who(app, "last_visit is today", &[&la_10]).await;

        // 10:59 UTC: Auckland is at 23:59 on the 10th.
        set_clock(app, "2027-03-10T10:59:00Z").await;
        expect_who(app, "birthday is today", &[&akl_10, &la_10, &utc_10]).await;
        expect_members(app, &seg, &[&akl_10, &la_10, &utc_10]).await;
        // 08:30 UTC on the 11th: midnight has passed in Los Angeles too.
        set_clock(app, "2027-03-11T08:30:00Z").await;
        expect_who(app, "birthday is today", &[&akl_11, &la_11]).await;
        expect_members(app, &seg, &[&akl_11, &la_11]).await;
        assert_eq!(moves(app, &akl_11, &seg).await, (2, 1));
        assert_eq!(moves(app, &la_10, &seg).await, (1, 1));
        assert_eq!(moves(app, &la_11, &seg).await, (1, 0));
        // 07:59 UTC was still the 10th in Los Angeles.
        set_clock(app, "2027-03-11T07:59:00Z").await;
        expect_who(app, "birthday is today", &[&akl_11, &la_10]).await;
    }

    async fn related_people_and_their_birthdays(app) {
        let ana = person(app, json!({"first_name": "Ana"})).await;
        let bo = person(app, json!({"first_name": "Bo"})).await;
        let cy = person(app, json!({"first_name": "Cy"})).await;
        let dee = person(app, json!({"first_name": "Dee"})).await;
        let eve = person(app, json!({"first_name": "Eve"})).await;
        let kai = person(app, json!({"first_name": "Kai", "birthday": "2005-01-20"})).await;
        // Mia turns 21 on 1 February, Leo on 1 March; Kai (a contact) on 20 January.
        let mia = id_of(&app.create("/api/v1/relations", json!({"contact_id": ana, "kind": "child", "related_name": "Mia",
            "related_birthday": "2005-02-01"})).await);
        app.create("/api/v1/relations", json!({"contact_id": bo, "kind": "child", "related_name": "Leo", "related_birthday": "2005-03-01"})).await;
        app.create("/api/v1/relations", json!({"contact_id": cy, "kind": "child", "related_contact_id": kai})).await;
        app.create("/api/v1/relations", json!({"contact_id": dee, "kind": "spouse", "related_name": "Sam", "related_birthday": "2005-02-01"})).await;
        app.create("/api/v1/relations", json!({"contact_id": eve, "kind": "custom", "custom_kind": "Godchild", "related_name": "Ines",
            "related_birthday": "--01-18"})).await;
        // Gus's child is Kai too, with a birthday of the relation's own (no year): that one
        // counts, whole, as the API shows it; it is not mixed with Kai's year.
        let gus = person(app, json!({"first_name": "Gus"})).await;
        let own = app.create("/api/v1/relations", json!({"contact_id": gus, "kind": "child", "related_contact_id": kai,
            "related_birthday": "--02-01"})).await;
        assert_eq!(own["related_birthday"], "--02-01", "{own}");

        expect_who(app, "related(child).birthday turns 21 within next 30d", &[&ana, &cy]).await;
        expect_who(app, "related(child).birthday turns 21 within next 10d", &[&cy]).await;
        expect_who(app, "related(child).birthday turns 20 within next 30d", &[]).await;
        expect_who(app, "related(child)", &[&ana, &bo, &cy, &gus]).await;
        expect_who(app, "related(spouse)", &[&dee]).await;
        expect_who(app, "related(spouse).birthday turns 21 within next 30d", &[&dee]).await;
        expect_who(app, "not related(child)", &[&dee, &eve, &kai]).await;
        expect_who(app, "related(child).birthday within next 7d", &[&cy]).await;
        expect_who(app, "related(child).birthday within next 30d", &[&ana, &cy, &gus]).await;
        expect_who(app, "related(godchild).birthday within next 7d", &[&eve]).await;
        expect_who(app, "related(\"Godchild\")", &[&eve]).await;
        expect_who(app, "related(child) and not related(child).birthday within next 30d", &[&bo]).await;

        let seg = create_segment(app, "Child turns 21", "related(child).birthday turns 21 within next 30d").await;
        assert_eq!(seg["depends_on_time"], true);
        expect_members(app, &seg, &[&ana, &cy]).await;
        // The relation's own birthday changes: Mia is a year younger after all.
        app.patch(&format!("/api/v1/relations/{mia}"), json!({"related_birthday": "2006-02-01"})).await.expect(200);
        maintain(app).await;
        expect_members(app, &seg, &[&cy]).await;
        app.patch(&format!("/api/v1/relations/{mia}"), json!({"related_birthday": "2005-02-01"})).await.expect(200);
        maintain(app).await;
        expect_members(app, &seg, &[&ana, &cy]).await;
        assert_eq!(moves(app, &ana, &seg).await, (1, 1));
        // Time alone: on 2 February Mia and Kai are 21, and Leo's day is within 30 days.
        set_clock(app, "2026-02-02T09:00:00Z").await;
        expect_members(app, &seg, &[&bo]).await;
        assert_eq!(moves(app, &ana, &seg).await, (1, 2));
        assert_eq!(moves(app, &bo, &seg).await, (1, 0));
        assert_eq!(moves(app, &cy, &seg).await, (0, 1));
    }

    async fn segment_membership_and_boolean_logic(app) {
        let ana = person(app, json!({"first_name": "Ana", "tags": ["gold"], "address": {"city": "Lisbon"}})).await;
        let bo = person(app, json!({"first_name": "Bo", "tags": ["gold", "staff"], "address": {"city": "Porto"}})).await;
        let cy = person(app, json!({"first_name": "Cy", "tags": ["silver"], "address": {"city": "Lisbon"}})).await;
        let dee = person(app, json!({"first_name": "Dee"})).await;

        expect_who(app, "(tag = \"gold\" or tag = \"silver\") and not tag = \"staff\"", &[&ana, &cy]).await;
        expect_who(app, "tag = \"gold\" or tag = \"silver\" and city = \"porto\"", &[&ana, &bo]).await;
        expect_who(app, "(tag = \"gold\" or tag = \"silver\") and city = \"porto\"", &[&bo]).await;
        expect_who(app, "not (tag = \"gold\" and city = \"lisbon\")", &[&bo, &cy, &dee]).await;
        expect_who(app, "not not tag = \"silver\"", &[&cy]).await;
        expect_who(app, "not city = \"lisbon\"", &[&bo, &dee]).await;
        expect_who(app, "! (city = \"lisbon\" || tag = \"staff\") && first_name is set", &[&dee]).await;
        expect_who(app, "tag = \"gold\" AND (city = \"x\" OR NOT city = \"porto\")", &[&ana]).await;

        let gold = create_segment(app, "Gold", "tag = \"gold\"").await;
        let gold_lisbon = create_segment(app, "Gold in Lisbon", "in segment \"gold\" and city = \"Lisbon\"").await;
        let not_gold = create_segment(app, "Not gold", "not in segment \"Gold\"").await;
        expect_members(app, &gold, &[&ana, &bo]).await;
        expect_members(app, &gold_lisbon, &[&ana]).await;
        expect_members(app, &not_gold, &[&cy, &dee]).await;
        expect_who(app, "in segment \"Gold\" or in segment \"Gold in Lisbon\"", &[&ana, &bo]).await;
        expect_who(app, "in segment \"GOLD IN LISBON\"", &[&ana]).await;

        // Cy earns gold: the segments that name Gold follow in the same pass.
        app.patch(&format!("/api/v1/contacts/{cy}"), json!({"tags": ["silver", "gold"]})).await.expect(200);
        maintain(app).await;
        expect_members(app, &gold, &[&ana, &bo, &cy]).await;
        expect_members(app, &gold_lisbon, &[&ana, &cy]).await;
        expect_members(app, &not_gold, &[&dee]).await;
        assert_eq!(moves(app, &cy, &gold).await, (1, 0));
        assert_eq!(moves(app, &cy, &gold_lisbon).await, (1, 0));
        assert_eq!(moves(app, &cy, &not_gold).await, (0, 1));
        // Changing Gold's filter moves people in the segments that name it too.
        app.patch(&format!("{SEGMENTS}/{}", id_of(&gold)), json!({"filter": "tag = \"gold\" and not tag = \"staff\""})).await.expect(200);
        maintain(app).await;
        expect_members(app, &gold, &[&ana, &cy]).await;
        expect_members(app, &not_gold, &[&bo, &dee]).await;
        assert_eq!(moves(app, &bo, &not_gold).await, (1, 0));
        // Deleting a segment someone names is refused, naming both users.
        let r = app.delete(&format!("{SEGMENTS}/{}", id_of(&gold))).await;
        r.expect_field_problem(409, "id");
        assert!(r.text.contains("Gold in Lisbon") && r.text.contains("Not gold"), "{}", r.text);
        expect_members(app, &gold, &[&ana, &cy]).await;
    }

    async fn events_move_people_in_and_out_with_timeline_events(app) {
        let ana = person(app, json!({"first_name": "Ana"})).await;
        let bo = person(app, json!({"first_name": "Bo"})).await;
        ingest(app, vec![order(&bo, "2026-01-02T10:00:00Z", 80.0, "shoes")]).await;
        let shoes = create_segment(app, "Shoe buyers", "count(order.completed where items.category = \"shoes\") >= 1").await;
        let readers = create_segment(app, "Readers", "subscribed(\"newsletter\")").await;
        assert_eq!(shoes["depends_on_time"], false);
        // The first filling is quiet: Bo is in, with no event.
        expect_members(app, &shoes, &[&bo]).await;
        assert_eq!(moves(app, &bo, &shoes).await, (0, 0));

        ingest(app, vec![
            order(&ana, "2026-01-14T10:00:00Z", 60.0, "shoes"),
            event("email.subscribed", &ana, "2026-01-14T11:00:00Z", json!({"topic": "newsletter"})),
        ]).await;
        maintain(app).await;
        expect_members(app, &shoes, &[&ana, &bo]).await;
        expect_members(app, &readers, &[&ana]).await;
        let entered = segment_events(app, &ana, "segment.entered", &shoes).await;
        assert_eq!(entered.len(), 1, "{entered:?}");
        assert_eq!(entered[0]["payload"], json!({"segment_id": shoes["id"], "segment": "Shoe buyers"}));
        assert_eq!(t(entered[0]["occurred_at"].as_str().expect("a time")), app.clock.now(), "entered now: {}", entered[0]);
        let in_segments = app.get(&format!("/api/v1/contacts/{ana}/segments")).await.expect(200);
        let names: Vec<&str> = in_segments.as_array().expect("a list").iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, ["Readers", "Shoe buyers"]);

        // Maintaining again changes nothing and tells nobody anything.
        maintain(app).await;
        assert_eq!(moves(app, &ana, &shoes).await, (1, 0));

        app.advance(chrono::Duration::hours(1));
        ingest(app, vec![event("email.unsubscribed", &ana, "2026-01-15T09:30:00Z", json!({"topic": "newsletter"}))]).await;
        maintain(app).await;
        expect_members(app, &readers, &[]).await;
        let exited = segment_events(app, &ana, "segment.exited", &readers).await;
        assert_eq!(exited.len(), 1, "{exited:?}");
        assert_eq!(exited[0]["payload"]["segment_id"], readers["id"]);
        assert_eq!(exited[0]["payload"]["segment"], "Readers");
        assert_eq!(t(exited[0]["occurred_at"].as_str().expect("a time")), app.clock.now());
        assert_eq!(moves(app, &ana, &readers).await, (1, 1));
        // Entry and exit are ordinary timeline entries, newest first.
        let timeline = app.list_all(&format!("/api/v1/contacts/{ana}/timeline?type=segment.*")).await;
        let kinds: Vec<&str> = timeline.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(kinds, ["segment.exited", "segment.entered", "segment.entered"], "{timeline:?}");
    }

    async fn contact_edits_move_people_in_and_out(app) {
        let ana = person(app, json!({"first_name": "Ana"})).await;
        let bo = person(app, json!({"first_name": "Bo", "tags": ["vip"]})).await;
        let vips = create_segment(app, "VIPs", "tag = \"vip\"").await;
        let named = create_segment(app, "Named Ana", "first_name = \"ana\"").await;
        expect_members(app, &vips, &[&bo]).await;
        expect_members(app, &named, &[&ana]).await;

        app.patch(&format!("/api/v1/contacts/{ana}"), json!({"tags": ["vip"]})).await.expect(200);
        maintain(app).await;
        expect_members(app, &vips, &[&ana, &bo]).await;
        assert_eq!(moves(app, &ana, &vips).await, (1, 0));
        assert_eq!(moves(app, &ana, &named).await, (0, 0), "an edit that does not matter moves nobody");

        app.patch(&format!("/api/v1/contacts/{ana}"), json!({"tags": [], "first_name": "Anna"})).await.expect(200);
        maintain(app).await;
        expect_members(app, &vips, &[&bo]).await;
        expect_members(app, &named, &[]).await;
        assert_eq!(moves(app, &ana, &vips).await, (1, 1));
        assert_eq!(moves(app, &ana, &named).await, (0, 1));

        // A new contact is looked at too.
        let cy = person(app, json!({"first_name": "Cy", "tags": ["VIP"]})).await;
        maintain(app).await;
        expect_members(app, &vips, &[&bo, &cy]).await;
        assert_eq!(moves(app, &cy, &vips).await, (1, 0));
        // Forcing a full refresh agrees with what maintenance kept.
        let r = app.post(&format!("{SEGMENTS}/{}/refresh", id_of(&vips)), json!({})).await.expect(200);
        assert_eq!((r["entered"].clone(), r["exited"].clone()), (json!(0), json!(0)), "{r}");
    }

    async fn the_clock_alone_moves_people(app) {
        let ana = person(app, json!({"first_name": "Ana"})).await;
        let bo = person(app, json!({"first_name": "Bo"})).await;
        ingest(app, vec![event("visit.checked_in", &ana, "2026-01-14T10:00:00Z", json!({}))]).await;
        let lapsed = create_segment(app, "Lapsed visitors", "has visit.checked_in and no visit.checked_in in last 21d").await;
        let absent = create_segment(app, "Absent", "no visit.checked_in in last 21d").await;
        // Not time-dependent itself, but follows one that is.
        let follows = create_segment(app, "Lapsed, named", "in segment \"Lapsed visitors\" and first_name is set").await;
        assert_eq!(lapsed["depends_on_time"], true);
        assert_eq!(follows["depends_on_time"], false);
        expect_members(app, &lapsed, &[]).await;
        expect_members(app, &absent, &[&bo]).await;

        advance_clock(app, "P20D").await;
        expect_members(app, &lapsed, &[]).await;
        advance_clock(app, "P2D").await;
        // 22 days on, with no new event, Ana's last visit is more than 21 days ago.
        expect_members(app, &lapsed, &[&ana]).await;
        expect_members(app, &follows, &[&ana]).await;
        expect_members(app, &absent, &[&ana, &bo]).await;
        assert_eq!(moves(app, &ana, &lapsed).await, (1, 0));
        assert_eq!(moves(app, &ana, &follows).await, (1, 0));
        assert_eq!(moves(app, &ana, &absent).await, (1, 0));
        assert_eq!(moves(app, &bo, &absent).await, (0, 0));
        // She comes back.
        ingest(app, vec![event("visit.checked_in", &ana, &app.clock.now().to_rfc3339(), json!({}))]).await;
        maintain(app).await;
        expect_members(app, &lapsed, &[]).await;
        expect_members(app, &follows, &[]).await;
        assert_eq!(moves(app, &ana, &lapsed).await, (1, 1));

        // Without the admin clock: the store's clock moves and maintenance refreshes.
        app.advance(chrono::Duration::days(22));
        maintain(app).await;
        expect_members(app, &lapsed, &[&ana]).await;
        assert_eq!(moves(app, &ana, &lapsed).await, (2, 1));
    }

    async fn member_counts_stay_right_when_contacts_go(app) {
        let ana = person(app, json!({"first_name": "Ana", "tags": ["a", "b"]})).await;
        let bo = person(app, json!({"first_name": "Bo", "tags": ["a"]})).await;
        let cy = person(app, json!({"first_name": "Cy", "tags": ["a", "b"]})).await;
        let a = create_segment(app, "A", "tag = \"a\"").await;
        let b = create_segment(app, "B", "tag = \"b\"").await;
        let in_a = create_segment(app, "In A", "in segment \"A\"").await;
        expect_members(app, &a, &[&ana, &bo, &cy]).await;
        expect_members(app, &b, &[&ana, &cy]).await;

        assert_eq!(app.delete(&format!("/api/v1/contacts/{ana}")).await.status, 204);
        expect_members(app, &a, &[&bo, &cy]).await;
        expect_members(app, &b, &[&cy]).await;
        expect_members(app, &in_a, &[&bo, &cy]).await;
        maintain(app).await;
        expect_members(app, &a, &[&bo, &cy]).await;
        expect_members(app, &in_a, &[&bo, &cy]).await;
        app.get(&format!("{SEGMENTS}/{}/explain/{ana}", id_of(&a))).await.expect_problem(404);

        // A contact who is in no segment leaves the counts alone.
        let dee = person(app, json!({"first_name": "Dee"})).await;
        assert_eq!(app.delete(&format!("/api/v1/contacts/{dee}")).await.status, 204);
        maintain(app).await;
        expect_members(app, &a, &[&bo, &cy]).await;
        expect_members(app, &b, &[&cy]).await;
        // And a full refresh agrees.
        for s in [&a, &b, &in_a] {
            let r = app.post(&format!("{SEGMENTS}/{}/refresh", id_of(s)), json!({})).await.expect(200);
            assert_eq!((r["entered"].clone(), r["exited"].clone()), (json!(0), json!(0)), "{r}");
        }
        expect_members(app, &a, &[&bo, &cy]).await;
    }

    async fn a_big_first_fill_leaves_the_membership_statistics_current(app) {
        // 1,200 readers, created as leads by their first page view.
        let views: Vec<Value> = (0..1_200)
            .map(|i| {
                json!({"type": "page.viewed", "contact": {"email": format!("reader{i}@example.com")},
                    "occurred_at": "2026-01-14T10:00:00Z", "payload": {"url": "https://shop.example/"}})
            })
            .collect();
        let answer = app.post(EVENTS, json!({"events": views, "create_contact": true})).await.expect(200);
        let results = answer["results"].as_array().unwrap_or_else(|| panic!("results: {answer}"));
        assert!(results.iter().all(|r| r["status"] == "accepted"), "every view accepted: {answer}");
        let readers = create_segment(app, "Readers", "has page.viewed in last 7d").await;
        assert_eq!(members(app, &id_of(&readers)).await.len(), 1_200);

        // PostgreSQL plans maintenance's membership lookups from these statistics; left as they
        // were when the table was empty (autovacuum off, or not yet round), it scans the table.
        if app.backend == crate::Backend::Postgres {
            let known = app
                .store()
                .read(|tx| tx.query_one("SELECT reltuples::float8 FROM pg_class WHERE oid = 'segment_members'::regclass", &[])?.f64(0))
                .await
                .expect("segment_members' statistics");
            assert!(known >= 1_200.0, "segment_members analysed after the first fill: reltuples {known}");
        }
    }

    async fn a_segment_whose_custom_field_is_gone_does_not_stop_the_others(app) {
        let size = id_of(&app.create("/api/v1/custom-fields", json!({"record_type": "contact", "key": "shoe_size", "kind": "number"})).await);
        let ana = person(app, json!({"first_name": "Ana", "custom_fields": {"shoe_size": 44}})).await;
        let bo = person(app, json!({"first_name": "Bo"})).await;
        let big = create_segment(app, "Big feet", "custom.shoe_size >= 40").await;
        let vips = create_segment(app, "VIPs", "tag = \"vip\"").await;
        let recent = create_segment(app, "Recent visitors", "has visit.checked_in in last 7d").await;
        expect_members(app, &big, &[&ana]).await;

        // The field goes; the filter that names it can no longer be evaluated.
        assert_eq!(app.delete(&format!("/api/v1/custom-fields/{size}")).await.status, 204);
        app.post(&format!("{SEGMENTS}/{}/refresh", id_of(&big)), json!({})).await.expect_field_problem(422, "filter");
        let r = app.get(&format!("{SEGMENTS}/{}/explain/{ana}", id_of(&big))).await;
        r.expect_field_problem(422, "filter");
        assert!(r.text.contains("custom.shoe_size"), "names the missing field: {}", r.text);

        // Every other segment is still kept current, by changes and by the clock.
        app.patch(&format!("/api/v1/contacts/{bo}"), json!({"tags": ["vip"]})).await.expect(200);
        ingest(app, vec![event("visit.checked_in", &bo, "2026-01-15T08:00:00Z", json!({}))]).await;
        maintain(app).await;
        expect_members(app, &vips, &[&bo]).await;
        expect_members(app, &recent, &[&bo]).await;
        advance_clock(app, "P8D").await;
        expect_members(app, &recent, &[]).await;
        assert_eq!(moves(app, &bo, &recent).await, (1, 1));
        // The broken segment keeps its last members until its filter is mended.
        expect_members(app, &big, &[&ana]).await;
        app.patch(&format!("{SEGMENTS}/{}", id_of(&big)), json!({"filter": "tag = \"big\""})).await.expect(200);
        expect_members(app, &big, &[]).await;
    }

    async fn renaming_a_tag_or_an_owners_email_reaches_segments(app) {
        let olga = id_of(&app.create("/api/v1/users", json!({"name": "Olga Owner", "email": "olga@example.com"})).await);
        let ana = person(app, json!({"first_name": "Ana", "tags": ["vip"], "owner_id": olga})).await;
        let bo = person(app, json!({"first_name": "Bo", "tags": ["old"]})).await;
        let vips = create_segment(app, "VIPs", "tag = \"vip\"").await;
        let olgas = create_segment(app, "Olga's", "owner = \"olga@example.com\"").await;
        let old = create_segment(app, "Old", "tag = \"old\"").await;
        expect_members(app, &vips, &[&ana]).await;
        expect_members(app, &olgas, &[&ana]).await;
        expect_members(app, &old, &[&bo]).await;

        app.patch(&format!("/api/v1/tags/{}", tag_id(app, "vip").await), json!({"name": "gold"})).await.expect(200);
        assert_eq!(app.delete(&format!("/api/v1/tags/{}", tag_id(app, "old").await)).await.status, 204);
        app.patch(&format!("/api/v1/users/{olga}"), json!({"email": "olga@new.example"})).await.expect(200);
        maintain(app).await;
        expect_who(app, "tag = \"vip\" or tag = \"old\" or owner = \"olga@example.com\"", &[]).await;
        expect_members(app, &vips, &[]).await;
        expect_members(app, &old, &[]).await;
        expect_members(app, &olgas, &[]).await;
    }

    async fn timestamp_anniversaries_use_the_contacts_local_date(app) {
        // 05:00 UTC on 18 January 2025 was the evening of the 17th in Los Angeles.
        let lupe = person(app, json!({"first_name": "Lupe", "time_zone": "America/Los_Angeles"})).await;
        ingest(app, vec![order(&lupe, "2025-01-18T05:00:00Z", 30.0, "socks")]).await;
        // It is 01:00 on 15 January in Los Angeles: the 17th is two days away.
        expect_who(app, "first_order anniversary within next 2d", &[&lupe]).await;
        expect_who(app, "first_order turns 1 within next 2d", &[&lupe]).await;
    }

    async fn explain_says_which_conditions_held_with_their_values(app) {
        let ana = person(app, json!({"first_name": "Ana", "birthday": "1990-01-20", "tags": ["runner"]})).await;
        let bo = person(app, json!({"first_name": "Bo", "tags": ["staff"]})).await;
        let cy = person(app, json!({"first_name": "Cy"})).await;
        ingest(app, vec![
            order(&ana, "2026-01-10T10:00:00Z", 2100.0, "shoes"),
            order(&ana, "2025-12-01T10:00:00Z", 10.0, "shoes"),
            order(&bo, "2026-01-10T10:00:00Z", 50.0, "shoes"),
            event("visit.checked_in", &ana, "2025-11-20T10:00:00Z", json!({})),
        ]).await;
        let filter = "value_tier = \"gold\" and count(order.completed where items.category = \"shoes\", last 90d) >= 2 \
            and not tag = \"staff\" and (birthday within next 7d or last(visit.checked_in) before 21d ago)";
        let seg = create_segment(app, "Gold shoe lovers", filter).await;
        expect_members(app, &seg, &[&ana]).await;

        let x = app.get(&format!("{SEGMENTS}/{}/explain/{ana}", id_of(&seg))).await.expect(200);
        assert_eq!(x["segment_id"], seg["id"]);
        assert_eq!(x["contact_id"], ana.as_str());
        assert_eq!((x["member"].clone(), x["matches"].clone()), (json!(true), json!(true)), "{x}");
        assert!(x["entered_at"].is_string(), "{x}");
        assert_eq!(x["filter"], seg["filter"]);
        let r = &x["reason"];
        assert_eq!((r["kind"].clone(), r["held"].clone()), (json!("and"), json!(true)), "{r}");
        let parts = r["parts"].as_array().unwrap_or_else(|| panic!("parts: {r}"));
        assert_eq!(parts.len(), 4, "{r}");
        assert_eq!(parts[0]["kind"], "condition");
        assert_eq!(parts[0]["condition"], "value_tier = \"gold\"");
        assert_eq!((parts[0]["held"].clone(), parts[0]["value"].clone()), (json!(true), json!("gold")), "{}", parts[0]);
        assert_eq!(parts[1]["condition"], "count(order.completed where items.category = \"shoes\", last 90d) >= 2");
        assert_eq!(parts[1]["held"], true);
        assert_eq!(parts[1]["value"].as_f64(), Some(2.0), "the count that decided: {}", parts[1]);
        assert_eq!((parts[2]["kind"].clone(), parts[2]["held"].clone()), (json!("not"), json!(true)), "{}", parts[2]);
        assert_eq!(parts[2]["parts"][0]["condition"], "tag = \"staff\"");
        assert_eq!(parts[2]["parts"][0]["held"], false);
        assert_eq!(parts[2]["parts"][0]["value"], "runner", "the tags: {}", parts[2]);
        assert_eq!((parts[3]["kind"].clone(), parts[3]["held"].clone()), (json!("or"), json!(true)), "{}", parts[3]);
        let or = parts[3]["parts"].as_array().expect("or parts");
        assert_eq!(or[0]["condition"], "birthday within next 7d");
        assert_eq!(or[0]["held"], true);
        assert!(!or[0]["value"].is_null(), "the birthday: {}", or[0]);
        assert_eq!(or[1]["condition"], "last(visit.checked_in) before 21d ago");
        assert_eq!(or[1]["held"], true);
        assert_eq!(t(or[1]["value"].as_str().unwrap_or_else(|| panic!("a time: {}", or[1]))), t("2025-11-20T10:00:00Z"));

        // Bo is out: bronze, one shoe order, staff.
        let x = app.get(&format!("{SEGMENTS}/{}/explain/{bo}", id_of(&seg))).await.expect(200);
        assert_eq!((x["member"].clone(), x["matches"].clone()), (json!(false), json!(false)), "{x}");
        assert!(x["entered_at"].is_null(), "{x}");
        let parts = x["reason"]["parts"].as_array().expect("parts").clone();
        assert_eq!((parts[0]["held"].clone(), parts[0]["value"].clone()), (json!(false), json!("bronze")));
        assert_eq!(parts[1]["held"], false);
        assert_eq!(parts[1]["value"].as_f64(), Some(1.0));
        assert_eq!((parts[2]["held"].clone(), parts[2]["parts"][0]["held"].clone()), (json!(false), json!(true)));
        assert_eq!(parts[3]["held"], false);
        // Cy has no profile at all: nothing held, and "not staff" did.
        let x = app.get(&format!("{SEGMENTS}/{}/explain/{cy}", id_of(&seg))).await.expect(200);
        let parts = x["reason"]["parts"].as_array().expect("parts").clone();
        assert_eq!(parts[0]["held"], false);
        assert!(parts[0]["value"].is_null(), "no tier: {}", parts[0]);
        assert_eq!(parts[1]["value"].as_f64(), Some(0.0));
        assert_eq!(parts[2]["held"], true);
        assert_eq!(x["matches"], false);

        // Explanations run on the filter now, even before maintenance has caught up.
        app.patch(&format!("/api/v1/contacts/{ana}"), json!({"tags": ["staff"]})).await.expect(200);
        let x = app.get(&format!("{SEGMENTS}/{}/explain/{ana}", id_of(&seg))).await.expect(200);
        assert_eq!(x["matches"], false, "{x}");
        assert_eq!(x["reason"]["parts"][2]["held"], false);
        maintain(app).await;
        let x = app.get(&format!("{SEGMENTS}/{}/explain/{ana}", id_of(&seg))).await.expect(200);
        assert_eq!((x["member"].clone(), x["matches"].clone()), (json!(false), json!(false)), "{x}");

        let nobody = uuid::Uuid::new_v4();
        app.get(&format!("{SEGMENTS}/{}/explain/{nobody}", id_of(&seg))).await.expect_problem(404);
        app.get(&format!("{SEGMENTS}/{nobody}/explain/{ana}")).await.expect_problem(404);
    }
}
