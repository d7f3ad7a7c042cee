//! Workflows end to end: the contract examples, every trigger, step and action, exact error
//! paths, the canonical JSON, templates and the date rules.

use chrono::{DateTime, Datelike, NaiveDate};
use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn ok(v: Value) -> WorkflowSpec {
    match WorkflowSpec::parse(v.clone()) {
        Ok(spec) => spec,
        Err(e) => panic!("{v} should parse: {e}"),
    }
}

fn errors(v: Value) -> Vec<FieldErrorView> {
    match WorkflowSpec::parse(v.clone()) {
        Ok(spec) => panic!("{v} should not parse, got {spec:?}"),
        Err(e) => e.errors.into_iter().map(|e| FieldErrorView { field: e.field, message: e.message }).collect(),
    }
}

#[derive(Debug)]
struct FieldErrorView {
    field: String,
    message: String,
}

/// A workflow around `steps` with a manual trigger.
fn with_steps(steps: Value) -> Value {
    json!({"name": "W", "trigger": {"kind": "manual"}, "steps": steps})
}

/// A workflow around `trigger` with one task.
fn with_trigger(trigger: Value) -> Value {
    json!({"name": "W", "trigger": trigger, "steps": [{"action": "create_task", "title": "Call"}]})
}

/// Parses, writes the canonical JSON, and checks it reads back to the same spec and is stable.
fn round_trip(v: Value) -> WorkflowSpec {
    let spec = ok(v);
    let canonical = serde_json::to_value(&spec).unwrap();
    let again = WorkflowSpec::parse(canonical.clone()).unwrap_or_else(|e| panic!("canonical {canonical} does not parse: {e}"));
    assert_eq!(again, spec, "canonical: {canonical}");
    assert_eq!(serde_json::to_value(&again).unwrap(), canonical);
    spec
}

fn utc(s: &str) -> Timestamp {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

// ---- the contract --------------------------------------------------------------------------

#[test]
fn the_birthday_card_contract_example_parses() {
    let spec =
        round_trip(json!({"name":"Birthday card","trigger":{"kind":"date","field":"birthday","offset":"P0D","at":"09:00"},
        "steps":[{"action":"create_task","title":"Call {{first_name}} for their birthday"}]}));
    assert_eq!(spec.name, "Birthday card");
    let Trigger::Date(d) = &spec.trigger else { panic!("not a date trigger") };
    assert_eq!(d.field, DateField::Birthday);
    assert_eq!(d.offset, DayOffset(0));
    assert_eq!(d.at, TimeOfDay::new(9, 0).unwrap());
    assert_eq!(d.recurrence, Recurrence::Yearly);
    assert!(spec.trigger.is_time_based());
    let Step::Action(Action::CreateTask(t)) = &spec.steps[0] else { panic!("not a task") };
    assert_eq!(t.title.as_str(), "Call {{first_name}} for their birthday");
    assert_eq!(t.assignee, UserRef::Owner);
    assert_eq!(spec.reentry, Reentry::PerOccurrence);
}

#[test]
fn the_viewed_not_bought_contract_example_parses() {
    assert!(crate::event::check_selectable_type("email.replied").is_ok(), "a built-in type");
    let spec = round_trip(json!({"name":"Viewed, not bought","trigger":{"kind":"event","type":"product.viewed"},
        "steps":[{"wait":"P2D","until_event":"order.completed"},{"action":"create_task","title":"Follow up"}],
        "exit_when":["order.completed","email.replied"]}));
    assert_eq!(spec.exit_when, ["order.completed", "email.replied"]);
    assert!(!spec.trigger.is_time_based());
    assert_eq!(spec.steps[0].wait_duration(), Some(chrono::Duration::days(2)));
    let Step::Wait(Wait::For { until_event, .. }) = &spec.steps[0] else { panic!("not a wait") };
    assert_eq!(until_event.as_deref(), Some("order.completed"));
}

// ---- triggers ------------------------------------------------------------------------------

#[test]
fn every_trigger_kind_parses() {
    let cases = [
        (json!({"kind":"event","type":"product.viewed","where":[{"path":"category","op":"=","value":"shoes"}]}), "event"),
        (json!({"kind":"event","type":"shop.wishlist_added"}), "event"),
        (json!({"kind":"segment_entered","segment":"Gold members"}), "segment_entered"),
        (json!({"kind":"segment_exited","segment":"Gold members"}), "segment_exited"),
        (json!({"kind":"date","field":"birthday","offset":"-P7D","at":"18:30"}), "date"),
        (json!({"kind":"date","field":"first_order"}), "date"),
        (json!({"kind":"date","field":"custom.renewal_date","repeat":"once","offset":"-P30D"}), "date"),
        (json!({"kind":"date","field":"birthday","of_related":"child","turns":21,"offset":"-P30D"}), "date"),
        (json!({"kind":"inactivity","type":"visit.checked_in","days":60}), "inactivity"),
        (json!({"kind":"threshold","metric":"revenue","crosses":1000}), "threshold"),
        (json!({"kind":"threshold","metric":"order_count","every":5}), "threshold"),
        (json!({"kind":"threshold","metric":"visit_count","crosses":10}), "threshold"),
        (json!({"kind":"stage_changed","to":"at_risk"}), "stage_changed"),
        (json!({"kind":"stage_changed","from":"loyal","to":"at_risk"}), "stage_changed"),
        (json!({"kind":"stage_changed","from":"loyal"}), "stage_changed"),
        (json!({"kind":"manual"}), "manual"),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (trigger, kind) in cases {
        let spec = round_trip(with_trigger(trigger.clone()));
        assert_eq!(spec.trigger.kind(), kind, "{trigger}");
        seen.insert(kind);
    }
    assert_eq!(seen, TRIGGER_KINDS.iter().copied().collect(), "every trigger kind is covered");
}

#[test]
fn trigger_details_are_read() {
    let spec = ok(with_trigger(json!({"kind":"date","field":"birthday","of_related":"Child","turns":21,"offset":"-P1W"})));
    let Trigger::Date(d) = spec.trigger else { panic!() };
    assert_eq!(d.of_related.as_deref(), Some("child"));
    assert_eq!(d.recurrence, Recurrence::Turns(21));
    assert_eq!(d.offset, DayOffset(-7));

    let spec = ok(with_trigger(json!({"kind":"date","field":"birthday","of_related":"godchild"})));
    let Trigger::Date(d) = spec.trigger else { panic!() };
    assert_eq!(d.of_related.as_deref(), Some("godchild"));

    let spec = ok(with_trigger(json!({"kind":"date","field":"custom.member_since"})));
    let Trigger::Date(d) = spec.trigger else { panic!() };
    assert_eq!(d.field, DateField::Custom("member_since".into()));

    let spec = ok(with_trigger(json!({"kind":"threshold","metric":"revenue","crosses":999.5})));
    assert_eq!(
        spec.trigger,
        Trigger::Threshold(ThresholdTrigger { metric: Metric::Revenue, rule: ThresholdRule::Crosses(999.5) })
    );

    let spec = ok(with_trigger(json!({"kind":"stage_changed","to":"at_risk"})));
    assert_eq!(spec.trigger, Trigger::StageChanged { from: None, to: Some(LifecycleStage::AtRisk) });

    let spec =
        ok(with_trigger(json!({"kind":"event","type":"order.completed","where":[{"path":"total","op":">=","value":100}]})));
    let Trigger::Event(sel) = &spec.trigger else { panic!() };
    assert_eq!(sel.conditions[0].path, "total");
    assert!(spec.trigger.has_event());
}

#[test]
fn threshold_rules_fire_on_the_way_up() {
    let crosses = ThresholdRule::Crosses(1000.0);
    assert!(crosses.fires(900.0, 1000.0));
    assert!(!crosses.fires(1000.0, 1200.0));
    assert!(!crosses.fires(100.0, 999.99));
    let every = ThresholdRule::Every(5.0);
    assert!(every.fires(4.0, 5.0));
    assert!(every.fires(9.0, 10.0));
    assert!(!every.fires(5.0, 6.0));
    assert!(!every.fires(0.0, 0.0));
}

// ---- steps and actions ---------------------------------------------------------------------

#[test]
fn every_action_parses() {
    let actions = [
        json!({"action":"create_task","title":"Call {{first_name}} for their birthday","due":"P1D","assignee":"owner","reason":"Birthday on {{display_name}}'s calendar"}),
        json!({"action":"create_task","title":"Call","assignee":"Ana@Example.com"}),
        json!({"action":"send_message","channel":"email","template":"birthday-card","subject":"Happy birthday, {{first_name}}!"}),
        json!({"action":"send_message","channel":"sms","template":"birthday-sms"}),
        json!({"action":"set_stage","stage":"active"}),
        json!({"action":"add_tag","tag":"  VIP  "}),
        json!({"action":"remove_tag","tag":"lapsed"}),
        json!({"action":"set_field","field":"custom.shoe_size","value":42}),
        json!({"action":"set_field","field":"custom.notes","value":null}),
        json!({"action":"set_field","field":"birthday","value":"--03-14"}),
        json!({"action":"set_field","field":"owner","value":"Ben@Example.com"}),
        json!({"action":"set_field","field":"time_zone","value":"Europe/Berlin"}),
        json!({"action":"set_field","field":"title","value":null}),
        json!({"action":"award_points","points":100,"reason":"Birthday bonus","coupon":"BDAY-10"}),
        json!({"action":"award_points","points":5}),
        json!({"action":"notify","user":"ana@example.com","message":"{{display_name}} spent over 1000"}),
        json!({"action":"notify","user":"owner","message":"Heads up"}),
        json!({"action":"webhook","url":"https://hooks.example.com/rapport","secret_ref":"shop_hook"}),
        json!({"action":"webhook","url":"http://10.0.0.5:8080/x"}),
        json!({"action":"start_workflow","workflow":"Welcome series"}),
    ];
    let mut names = std::collections::BTreeSet::new();
    for a in actions {
        let spec = round_trip(with_steps(json!([a.clone()])));
        let Step::Action(action) = &spec.steps[0] else { panic!("{a} is not an action") };
        assert_eq!(action.name(), a["action"].as_str().unwrap());
        names.insert(action.name());
    }
    assert_eq!(names.len(), ACTIONS.len(), "every action is covered");
}

#[test]
fn actions_are_normalised() {
    let spec = ok(with_steps(json!([
        {"action":"add_tag","tag":"  big   spender "},
        {"action":"create_task","title":"  Call  ","assignee":"Ana@Example.com","due":"P1W"},
        {"action":"set_field","field":"birthday","value":"1990-02-03"},
        {"action":"set_field","field":"owner","value":"Ben@Example.COM"},
        {"action":"set_field","field":"custom.size","value":{"eu":42}}
    ])));
    let canonical = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        canonical["steps"],
        json!([
            {"action":"add_tag","tag":"big spender"},
            {"action":"create_task","title":"Call","assignee":"ana@example.com","due":"P7D"},
            {"action":"set_field","field":"birthday","value":"1990-02-03"},
            {"action":"set_field","field":"owner","value":"ben@example.com"},
            {"action":"set_field","field":"custom.size","value":{"eu":42}}
        ])
    );
}

#[test]
fn waits_and_branches_parse() {
    let spec = round_trip(with_steps(json!([
        {"wait":"PT36H"},
        {"wait":"P2D","until_event":"order.completed"},
        {"wait_until":{"date":"2026-12-24","at":"10:00"}},
        {"wait_until":{"at":"9:00"}},
        {"wait_until":{"weekday":"Monday"}},
        {"if":"tag = \"vip\"","then":[{"action":"create_task","title":"VIP call"}],"else":[{"action":"add_tag","tag":"nurture"}]},
        {"if":{"compare":{"field":"order_count","op":">=","value":2}},"then":[
            {"if":"value_tier = \"gold\"","then":[{"action":"notify","message":"Gold!"}]}
        ]}
    ])));
    assert_eq!(spec.steps[0].wait_duration(), Some(chrono::Duration::hours(36)));
    let Step::Wait(Wait::Until { wait_until }) = &spec.steps[3] else { panic!() };
    assert_eq!((wait_until.date, wait_until.weekday, wait_until.at.to_string()), (None, None, "09:00".into()));
    let Step::Wait(Wait::Until { wait_until }) = &spec.steps[4] else { panic!() };
    assert_eq!(wait_until.weekday, Some(chrono::Weekday::Mon));
    assert_eq!(wait_until.at, TimeOfDay::default());
    let Step::Branch(b) = &spec.steps[5] else { panic!() };
    assert_eq!(b.condition.to_string(), "tag = \"vip\"");
    assert_eq!((b.then.len(), b.otherwise.len()), (1, 1));

    // The JSON form of a filter is stored as text.
    let canonical = serde_json::to_value(&spec).unwrap();
    assert_eq!(canonical["steps"][6]["if"], json!("order_count >= 2"));
    assert_eq!(canonical["steps"][0], json!({"wait":"P1DT12H"}));
    assert_eq!(canonical["steps"][4], json!({"wait_until":{"weekday":"monday","at":"09:00"}}));
}

#[test]
fn conditions_take_text_or_json() {
    let text = ok(json!({"name":"W","trigger":{"kind":"manual"},"conditions":"value_tier in (\"gold\", \"vip\")",
        "steps":[{"action":"add_tag","tag":"x"}]}));
    let json_form = ok(json!({"name":"W","trigger":{"kind":"manual"},
        "conditions":{"compare":{"field":"value_tier","op":"in","value":["gold","vip"]}},
        "steps":[{"action":"add_tag","tag":"x"}]}));
    assert_eq!(text, json_form);
    assert_eq!(serde_json::to_value(&text).unwrap()["conditions"], json!("value_tier in (\"gold\", \"vip\")"));
}

#[test]
fn canonical_json_writes_defaults_out() {
    let spec = ok(json!({"name":"  Birthday   card ","trigger":{"kind":"date","field":"birthday"},
        "steps":[{"action":"create_task","title":"Call"}],"exit_when":["order.completed","order.completed"],
        "conditions": null}));
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        json!({"name":"Birthday card","trigger":{"kind":"date","field":"birthday","repeat":"yearly","offset":"P0D","at":"09:00"},
            "steps":[{"action":"create_task","title":"Call","assignee":"owner"}],"exit_when":["order.completed"],
            "reentry":"per_occurrence"})
    );
}

#[test]
fn reentry_rules() {
    for (raw, expected) in [
        (json!("once"), Reentry::Once),
        (json!("always"), Reentry::Always),
        (json!("per_occurrence"), Reentry::PerOccurrence),
        (json!({"after":"P30D"}), Reentry::After(chrono::Duration::days(30))),
    ] {
        let mut v = with_steps(json!([{"action":"add_tag","tag":"x"}]));
        v["reentry"] = raw;
        assert_eq!(round_trip(v).reentry, expected);
    }
}

#[test]
fn specs_deserialize_through_parse() {
    let spec: WorkflowSpec = serde_json::from_value(with_steps(json!([{"wait":"P1D"},{"action":"add_tag","tag":"x"}]))).unwrap();
    assert_eq!(spec.steps.len(), 2);
    let err = serde_json::from_value::<WorkflowSpec>(with_steps(json!([]))).unwrap_err();
    assert!(err.to_string().contains("steps: must have at least one step"), "{err}");
}

#[test]
fn drafts_deserialize_with_serde_and_refuse_unknown_keys() {
    let draft: WorkflowDraft = serde_json::from_value(with_steps(json!([{"action":"add_tag","tag":"x"}]))).unwrap();
    assert_eq!(draft.parse().unwrap().name, "W");
    assert!(serde_json::from_value::<WorkflowDraft>(json!({"name":"W","trigger":{"kind":"manual"},"step":[]})).is_err());
}

// ---- errors --------------------------------------------------------------------------------

#[test]
fn invalid_documents_name_the_exact_path() {
    let task = json!({"action":"create_task","title":"Call"});
    let cases: Vec<(Value, &[&str])> = vec![
        (json!([]), &[""]),
        (json!({}), &["name", "trigger", "steps"]),
        (json!({"name":"W","trigger":{"kind":"manual"},"steps":[task],"colour":"red"}), &["colour"]),
        (json!({"name":"","trigger":{"kind":"manual"},"steps":[task]}), &["name"]),
        (json!({"name":7,"trigger":{"kind":"manual"},"steps":[task]}), &["name"]),
        (with_steps(json!([])), &["steps"]),
        (with_steps(json!({"action":"add_tag"})), &["steps"]),
        (with_steps(json!([task, {"wait":"2 days"}])), &["steps[1].wait"]),
        (with_steps(json!([task, {"wait":"P1M"}])), &["steps[1].wait"]),
        (with_steps(json!([{"wait":"-P1D"}])), &["steps[0].wait"]),
        (with_steps(json!([{"wait":"PT0S"}])), &["steps[0].wait"]),
        (with_steps(json!([{"wait":"P1000D"}])), &["steps[0].wait"]),
        (with_steps(json!([{"wait":"P1D","until_event":"order.complete"}])), &["steps[0].until_event"]),
        (with_steps(json!([{"wait":"P1D","until":"order.completed"}])), &["steps[0].until"]),
        (with_steps(json!([{"wait":"P1D","action":"add_tag","tag":"x"}])), &["steps[0]"]),
        (with_steps(json!([{"tag":"x"}])), &["steps[0]"]),
        (with_steps(json!(["add_tag"])), &["steps[0]"]),
        (with_steps(json!([{"wait_until":{}}])), &["steps[0].wait_until"]),
        (with_steps(json!([{"wait_until":{"at":"25:00"}}])), &["steps[0].wait_until.at"]),
        (with_steps(json!([{"wait_until":{"date":"24.12.2026"}}])), &["steps[0].wait_until.date"]),
        (with_steps(json!([{"wait_until":{"date":"2026-12-24","weekday":"friday"}}])), &["steps[0].wait_until.weekday"]),
        (with_steps(json!([{"wait_until":{"weekday":"someday"}}])), &["steps[0].wait_until.weekday"]),
        (with_steps(json!([{"wait_until":{"at":"09:00","tz":"UTC"}}])), &["steps[0].wait_until.tz"]),
        (with_steps(json!([{"action":"create_task","titel":"Call"}])), &["steps[0].titel", "steps[0].title"]),
        (with_steps(json!([{"action":"create_task","title":"   "}])), &["steps[0].title"]),
        (with_steps(json!([{"action":"create_task","title":"Call {{frist_name}}"}])), &["steps[0].title"]),
        (with_steps(json!([{"action":"create_task","title":"Call {{first_name"}])), &["steps[0].title"]),
        (with_steps(json!([{"action":"create_task","title":"{{event.sku}}"}])), &["steps[0].title"]),
        (with_steps(json!([{"action":"create_task","title":"x","due":"tomorrow"}])), &["steps[0].due"]),
        (with_steps(json!([{"action":"create_task","title":"x","assignee":"the boss"}])), &["steps[0].assignee"]),
        (with_steps(json!([{"action":"create_task","title":"x".repeat(301)}])), &["steps[0].title"]),
        (with_steps(json!([{"action":"send_mail"}])), &["steps[0].action"]),
        (with_steps(json!([{"action":7}])), &["steps[0].action"]),
        (with_steps(json!([{"action":"send_message","channel":"fax","template":"t"}])), &["steps[0].channel"]),
        (with_steps(json!([{"action":"send_message","channel":"sms","template":"t","subject":"Hi"}])), &["steps[0].subject"]),
        (with_steps(json!([{"action":"send_message","channel":"email"}])), &["steps[0].template"]),
        (with_steps(json!([{"action":"set_stage","stage":"gold"}])), &["steps[0].stage"]),
        (with_steps(json!([{"action":"add_tag","tag":""}])), &["steps[0].tag"]),
        (with_steps(json!([{"action":"remove_tag"}])), &["steps[0].tag"]),
        (with_steps(json!([{"action":"set_field","field":"stage","value":"lost"}])), &["steps[0].field"]),
        (with_steps(json!([{"action":"set_field","field":"revenue","value":1}])), &["steps[0].field"]),
        (with_steps(json!([{"action":"set_field","field":"custom.Bad Key","value":1}])), &["steps[0].field"]),
        (with_steps(json!([{"action":"set_field","field":"custom.x"}])), &["steps[0].value"]),
        (with_steps(json!([{"action":"set_field","field":"birthday","value":"March 14"}])), &["steps[0].value"]),
        (with_steps(json!([{"action":"set_field","field":"time_zone","value":"Mars/Base"}])), &["steps[0].value"]),
        (with_steps(json!([{"action":"set_field","field":"first_name","value":3}])), &["steps[0].value"]),
        (with_steps(json!([{"action":"award_points","points":0}])), &["steps[0].points"]),
        (with_steps(json!([{"action":"award_points","points":1.5}])), &["steps[0].points"]),
        (with_steps(json!([{"action":"award_points","points":10,"coupon":"TEN OFF"}])), &["steps[0].coupon"]),
        (with_steps(json!([{"action":"notify","user":"owner"}])), &["steps[0].message"]),
        (with_steps(json!([{"action":"webhook","url":"ftp://example.com"}])), &["steps[0].url"]),
        (with_steps(json!([{"action":"webhook","url":"/relative"}])), &["steps[0].url"]),
        (with_steps(json!([{"action":"webhook","url":"https://user:pw@example.com/x"}])), &["steps[0].url"]),
        (
            with_steps(json!([{"action":"webhook","url":"https://example.com","secret_ref":"s3cr3t value!"}])),
            &["steps[0].secret_ref"],
        ),
        (with_steps(json!([{"action":"webhook","url":"https://example.com","secret":"abc"}])), &["steps[0].secret"]),
        (with_steps(json!([{"action":"start_workflow","workflow":"w"}])), &["steps[0].workflow"]),
        (with_steps(json!([{"action":"start_workflow"}])), &["steps[0].workflow"]),
        (with_steps(json!([{"if":"tag = ","then":[task]}])), &["steps[0].if"]),
        (with_steps(json!([{"if":{"compare":{"field":"nope","op":"=","value":1}},"then":[task]}])), &["steps[0].if"]),
        (with_steps(json!([{"if":"tag = \"vip\"","then":[]}])), &["steps[0].then"]),
        (with_steps(json!([{"if":"tag = \"vip\""}])), &["steps[0].then"]),
        (with_steps(json!([{"then":[task]}])), &["steps[0]"]),
        (with_steps(json!([{"if":"tag = \"vip\"","then":[task],"elif":[]}])), &["steps[0].elif"]),
        (
            with_steps(json!([task, task, {"if":"tag = \"vip\"","then":[{"action":"create_task","title":"{{nope}}"}],
                "else":[task, {"wait":"soon"}]}])),
            &["steps[2].then[0].title", "steps[2].else[1].wait"],
        ),
        (with_trigger(json!("manual")), &["trigger"]),
        (with_trigger(json!({})), &["trigger.kind"]),
        (with_trigger(json!({"kind":"webhook"})), &["trigger.kind"]),
        (with_trigger(json!({"kind":"manual","type":"x.y"})), &["trigger.type"]),
        (with_trigger(json!({"kind":"event"})), &["trigger.type"]),
        (with_trigger(json!({"kind":"event","type":"order.complete"})), &["trigger.type"]),
        (with_trigger(json!({"kind":"event","type":"Purchase"})), &["trigger.type"]),
        (with_trigger(json!({"kind":"event","type":"order.completed","where":{"path":"total"}})), &["trigger.where"]),
        (
            with_trigger(
                json!({"kind":"event","type":"order.completed","where":[{"path":"total","op":">","value":1},{"pth":"x","op":"=","value":1}]}),
            ),
            &["trigger.where[1].pth"],
        ),
        (
            with_trigger(json!({"kind":"event","type":"order.completed","where":[{"path":"total","op":"in","value":1}]})),
            &["trigger.where[0]"],
        ),
        (with_trigger(json!({"kind":"segment_entered"})), &["trigger.segment"]),
        (with_trigger(json!({"kind":"segment_exited","segment":"  "})), &["trigger.segment"]),
        (with_trigger(json!({"kind":"date"})), &["trigger.field"]),
        (with_trigger(json!({"kind":"date","field":"last_order"})), &["trigger.field"]),
        (with_trigger(json!({"kind":"date","field":"custom.Renewal"})), &["trigger.field"]),
        (with_trigger(json!({"kind":"date","field":"birthday","offset":"7 days before"})), &["trigger.offset"]),
        (with_trigger(json!({"kind":"date","field":"birthday","offset":"-PT2H"})), &["trigger.offset"]),
        (with_trigger(json!({"kind":"date","field":"birthday","offset":"P5000D"})), &["trigger.offset"]),
        (with_trigger(json!({"kind":"date","field":"birthday","at":"9am"})), &["trigger.at"]),
        (with_trigger(json!({"kind":"date","field":"birthday","at":"09:00:00"})), &["trigger.at"]),
        (with_trigger(json!({"kind":"date","field":"birthday","turns":0})), &["trigger.turns"]),
        (with_trigger(json!({"kind":"date","field":"birthday","turns":21,"repeat":"once"})), &["trigger.repeat"]),
        (with_trigger(json!({"kind":"date","field":"birthday","repeat":"monthly"})), &["trigger.repeat"]),
        (with_trigger(json!({"kind":"date","field":"first_order","of_related":"child"})), &["trigger.of_related"]),
        (with_trigger(json!({"kind":"date","field":"birthday","of_related":"custom"})), &["trigger.of_related"]),
        (with_trigger(json!({"kind":"date","field":"birthday","days":3})), &["trigger.days"]),
        (with_trigger(json!({"kind":"inactivity","type":"visit.checked_in"})), &["trigger.days"]),
        (with_trigger(json!({"kind":"inactivity","type":"visit.checked_in","days":0})), &["trigger.days"]),
        (with_trigger(json!({"kind":"inactivity","type":"visit.checked_in","days":"60"})), &["trigger.days"]),
        (with_trigger(json!({"kind":"threshold","metric":"profit","crosses":10})), &["trigger.metric"]),
        (with_trigger(json!({"kind":"threshold","metric":"revenue"})), &["trigger"]),
        (with_trigger(json!({"kind":"threshold","metric":"revenue","crosses":1,"every":2})), &["trigger.every"]),
        (with_trigger(json!({"kind":"threshold","metric":"order_count","every":2.5})), &["trigger.every"]),
        (with_trigger(json!({"kind":"threshold","metric":"revenue","crosses":-5})), &["trigger.crosses"]),
        (with_trigger(json!({"kind":"stage_changed"})), &["trigger"]),
        (with_trigger(json!({"kind":"stage_changed","to":"vip"})), &["trigger.to"]),
        (with_trigger(json!({"kind":"stage_changed","from":"lost","to":"lost"})), &["trigger.to"]),
        (json!({"name":"W","trigger":{"kind":"manual"},"conditions":"tag =","steps":[task]}), &["conditions"]),
        (json!({"name":"W","trigger":{"kind":"manual"},"conditions":42,"steps":[task]}), &["conditions"]),
        (json!({"name":"W","trigger":{"kind":"manual"},"steps":[task],"exit_when":"order.completed"}), &["exit_when"]),
        (
            json!({"name":"W","trigger":{"kind":"manual"},"steps":[task],"exit_when":["order.completed","email.replyed"]}),
            &["exit_when[1]"],
        ),
        (json!({"name":"W","trigger":{"kind":"manual"},"steps":[task],"reentry":"twice"}), &["reentry"]),
        (json!({"name":"W","trigger":{"kind":"manual"},"steps":[task],"reentry":{"after":"P1Y"}}), &["reentry.after"]),
        (
            json!({"name":"W","trigger":{"kind":"manual"},"steps":[task],"reentry":{"every":"P1D"}}),
            &["reentry.every", "reentry.after"],
        ),
        (json!({"name":"W","trigger":{"kind":"manual"},"steps":[task],"holdout_percent":95}), &["holdout_percent"]),
        (json!({"name":"W","trigger":{"kind":"manual"},"steps":[task],"holdout_percent":"10%"}), &["holdout_percent"]),
    ];
    for (doc, expected) in cases {
        let errs = errors(doc.clone());
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, expected, "{doc}\n{errs:#?}");
        for e in &errs {
            assert!(!e.message.is_empty(), "{doc}");
        }
    }
}

#[test]
fn error_messages_say_what_is_wrong_and_what_to_do() {
    let message = |doc: Value| errors(doc).remove(0).message;
    let m = message(with_steps(json!([{"action":"create_task","title":"Call"}, {"wait":"2 days"}])));
    assert!(m.contains("'2 days'") && m.contains("P7D"), "{m}");
    let m = message(with_steps(json!([{"wait":"P1M"}])));
    assert!(m.contains("months") && m.contains("P30D"), "{m}");
    let m = message(with_steps(json!([{"action":"create_task","title":"Hi {{frist_name}}"}])));
    assert!(m.contains("{{frist_name}}") && m.contains("{{first_name}}"), "{m}");
    let m = message(with_steps(json!([{"action":"create_task","title":"{{event.sku}}"}])));
    assert!(m.contains("event trigger"), "{m}");
    let m = message(with_steps(json!([{"action":"create_task","titel":"x","title":"x"}])));
    assert!(m.contains("unknown key") && m.contains("title, due, assignee and reason"), "{m}");
    let m = message(with_trigger(json!({"kind":"webhook"})));
    assert!(m.contains("'webhook'") && m.contains("stage_changed or manual"), "{m}");
    let m = message(with_trigger(json!({"kind":"event","type":"email.replid"})));
    assert!(m.contains("email.opened"), "{m}");
    let m = message(with_trigger(json!({"kind":"date","field":"birthday","offset":"-PT2H"})));
    assert!(m.contains("whole number of days") && m.contains("at"), "{m}");
}

#[test]
fn filter_errors_keep_their_position() {
    let err = WorkflowSpec::parse(with_steps(
        json!([{"if":"tag = \"vip\" and\n  order_count >","then":[{"action":"add_tag","tag":"x"}]}]),
    ))
    .unwrap_err();
    let e = &err.errors[0];
    assert_eq!(e.field, "steps[0].if");
    assert_eq!(e.line, Some(2));
    assert!(e.column.is_some() && e.expected.is_some());
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors(json!({"name":"","trigger":{"kind":"date","field":"birthday","at":"noon"},"steps":[
        {"wait":"soon"},{"action":"add_tag"},{"action":"create_task","title":"{{x}}"}],"reentry":"never"}));
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["name", "trigger.at", "steps[0].wait", "steps[1].tag", "steps[2].title", "reentry"]);
}

#[test]
fn branch_depth_is_capped() {
    fn nest(depth: usize) -> Value {
        let mut step = json!({"action":"add_tag","tag":"deep"});
        for _ in 0..depth {
            step = json!({"if":"tag = \"a\"","then":[step]});
        }
        with_steps(json!([step]))
    }
    let spec = ok(nest(MAX_BRANCH_DEPTH));
    assert_eq!(spec.walk().map(|(p, _)| p.depth()).max(), Some(MAX_BRANCH_DEPTH));
    let errs = errors(nest(MAX_BRANCH_DEPTH + 1));
    let expected = format!("steps[0]{}", ".then[0]".repeat(MAX_BRANCH_DEPTH));
    assert_eq!(errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), [expected.as_str()]);
    assert!(errs[0].message.contains("16"));
}

#[test]
fn step_count_is_capped() {
    let steps: Vec<Value> = (0..=MAX_STEPS).map(|_| json!({"action":"add_tag","tag":"x"})).collect();
    let errs = errors(with_steps(Value::Array(steps)));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "steps");
}

#[test]
fn a_workflow_cannot_start_itself() {
    let errs = errors(json!({"name":"Loop","trigger":{"kind":"manual"},"steps":[{"action":"start_workflow","workflow":"loop"}]}));
    assert_eq!(errs[0].field, "steps[0].workflow");
}

#[test]
fn event_placeholders_need_an_event_trigger() {
    let doc = |kind: Value| json!({"name":"W","trigger":kind,"steps":[{"action":"notify","message":"Viewed {{event.name}} ({{ event.items.0.sku }})"}]});
    ok(doc(json!({"kind":"event","type":"product.viewed"})));
    assert_eq!(errors(doc(json!({"kind":"inactivity","type":"visit.checked_in","days":3})))[0].field, "steps[0].message");
    // A broken trigger is reported once, not again for every placeholder.
    let fields: Vec<String> = errors(doc(json!({"kind":"nope"}))).into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["trigger.kind"]);
}

// ---- walking the steps ---------------------------------------------------------------------

fn branching() -> WorkflowSpec {
    ok(with_steps(json!([
        {"action":"add_tag","tag":"a"},
        {"if":"tag = \"vip\"","then":[{"wait":"P1D"},{"action":"add_tag","tag":"b"}],"else":[
            {"if":"tag = \"x\"","then":[{"action":"add_tag","tag":"c"}]}
        ]},
        {"action":"add_tag","tag":"d"}
    ])))
}

#[test]
fn walk_lists_every_step_with_its_path() {
    let spec = branching();
    let paths: Vec<String> = spec.walk().map(|(p, _)| p.to_string()).collect();
    assert_eq!(
        paths,
        [
            "steps[0]",
            "steps[1]",
            "steps[1].then[0]",
            "steps[1].then[1]",
            "steps[1].else[0]",
            "steps[1].else[0].then[0]",
            "steps[2]"
        ]
    );
    for (path, step) in spec.walk() {
        assert_eq!(path.to_string().parse::<StepPath>().unwrap(), path);
        assert_eq!(spec.step(&path), Some(step));
    }
    assert_eq!(spec.walk().filter_map(|(_, s)| s.wait_duration()).collect::<Vec<_>>(), [chrono::Duration::days(1)]);
    for bad in ["", "steps", "then[0]", "steps[0].steps[1]", "steps[-1]", "steps[0]then[1]", "steps[x]"] {
        assert!(bad.parse::<StepPath>().is_err(), "{bad}");
    }
    assert_eq!(spec.step(&"steps[0].then[0]".parse().unwrap()), None);
    assert_eq!(spec.step(&"steps[9]".parse().unwrap()), None);
    assert_eq!(StepPath::top(1).child(Arm::Else, 0).to_string(), "steps[1].else[0]");
    assert_eq!(StepPath::top(1).child(Arm::Else, 0).depth(), 1);
}

#[test]
fn a_run_moves_through_branches_and_back_out() {
    let spec = branching();
    let p = |s: &str| s.parse::<StepPath>().unwrap();
    assert_eq!(spec.next(&p("steps[0]")), Some(p("steps[1]")));
    assert_eq!(spec.enter(&p("steps[1]"), true), Some(p("steps[1].then[0]")));
    assert_eq!(spec.next(&p("steps[1].then[0]")), Some(p("steps[1].then[1]")));
    assert_eq!(spec.next(&p("steps[1].then[1]")), Some(p("steps[2]")));
    assert_eq!(spec.enter(&p("steps[1]"), false), Some(p("steps[1].else[0]")));
    // The inner branch has no else: a false condition goes on after the outer branch.
    assert_eq!(spec.enter(&p("steps[1].else[0]"), false), Some(p("steps[2]")));
    assert_eq!(spec.next(&p("steps[1].else[0].then[0]")), Some(p("steps[2]")));
    assert_eq!(spec.next(&p("steps[2]")), None);
    assert_eq!(spec.enter(&p("steps[0]"), true), None, "not a branch");
}

#[test]
fn names_of_segments_and_started_workflows_are_listed() {
    let spec = ok(json!({"name":"W","trigger":{"kind":"segment_entered","segment":"Gold"},
        "conditions":"in segment \"Newsletter\" and in segment \"Gold\"",
        "steps":[{"if":"in segment \"VIP\"","then":[{"action":"start_workflow","workflow":"Welcome"}]},
                 {"action":"start_workflow","workflow":"Welcome"},{"action":"start_workflow","workflow":"Thanks"}]}));
    assert_eq!(spec.segments(), ["Gold", "Newsletter", "VIP"]);
    assert_eq!(spec.started_workflows(), ["Welcome", "Thanks"]);
}

// ---- templates -----------------------------------------------------------------------------

fn vars(name: &str) -> Option<String> {
    match name {
        "first_name" => Some("Ana".into()),
        "display_name" => Some("Ana Reyes".into()),
        "event.items.0.name" => Some("Trail <shoe>".into()),
        "owner_name" => Some("   ".into()),
        _ => None,
    }
}

#[test]
fn templates_substitute_placeholders() {
    let t = Template::parse("Call {{first_name}} about {{ event.items.0.name }}{{owner_name}}{{email}}!", true).unwrap();
    assert_eq!(t.render(&vars), "Call Ana about Trail <shoe>!");
    assert_eq!(t.placeholders().collect::<Vec<_>>(), ["first_name", "event.items.0.name", "owner_name", "email"]);
    let plain = Template::parse("No {placeholders} here }}", false).unwrap();
    assert_eq!(plain.render(&vars), "No {placeholders} here }}");
    assert_eq!(Template::parse("", false).unwrap().render(&vars), "");
}

#[test]
fn first_name_falls_back_to_display_name() {
    let t = Template::parse("Hi {{first_name}}", false).unwrap();
    let no_first = |n: &str| if n == "display_name" { Some("Acme Ltd".to_string()) } else { None };
    assert_eq!(t.render(&no_first), "Hi Acme Ltd");
    assert_eq!(t.render(&|_| None), "Hi ");
}

#[test]
fn template_errors_name_the_placeholder() {
    assert!(Template::parse("{{ unknown }}", true).unwrap_err().contains("{{unknown}}"));
    assert!(Template::parse("{{}}", true).is_err());
    assert!(Template::parse("{{event.}}", true).is_err());
    assert!(Template::parse("{{event.a..b}}", true).is_err());
    assert!(Template::parse("{{event.total}}", false).unwrap_err().contains("event trigger"));
    assert!(Template::parse("ab {{first_name", true).unwrap_err().contains("character 4"));
    for p in PLACEHOLDERS {
        assert!(Template::parse(&format!("{{{{{p}}}}}"), false).is_ok());
    }
}

// ---- durations and times -------------------------------------------------------------------

#[test]
fn durations_are_written_canonically() {
    for (raw, canonical) in [
        ("P0D", "P0D"),
        ("PT0S", "P0D"),
        ("P1W", "P7D"),
        ("P2D", "P2D"),
        ("PT36H", "P1DT12H"),
        ("P1DT30M", "P1DT30M"),
        ("PT0.5S", "PT0.5S"),
        ("PT1.25S", "PT1.25S"),
        ("PT90S", "PT1M30S"),
        ("-P7D", "-P7D"),
        ("-PT6H", "-PT6H"),
    ] {
        let d = parse_signed_duration(raw).unwrap();
        assert_eq!(format_duration(d), canonical, "{raw}");
        assert_eq!(parse_signed_duration(canonical).unwrap(), d);
    }
    assert!(parse_signed_duration("-7D").unwrap_err().contains("'-7D'"));
}

#[test]
fn times_of_day_and_offsets() {
    assert_eq!(TimeOfDay::parse("9:05").unwrap().to_string(), "09:05");
    assert_eq!(TimeOfDay::parse("23:59").unwrap().to_string(), "23:59");
    for bad in ["24:00", "12:60", "9", "09:5", "0900", "09:00:00", "-1:00", " : "] {
        assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(DayOffset::parse("-P1W").unwrap(), DayOffset(-7));
    assert_eq!(DayOffset(-7).to_string(), "-P7D");
    assert_eq!(DayOffset(0).to_string(), "P0D");
    assert!(DayOffset::parse("P1DT1H").is_err());
}

// ---- date triggers -------------------------------------------------------------------------

fn at(h: u32, m: u32) -> TimeOfDay {
    TimeOfDay::new(h, m).unwrap()
}

fn md(month: u32, day: u32) -> AnchorDate {
    AnchorDate { month, day, year: None }
}

fn ymd(year: i32, month: u32, day: u32) -> AnchorDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap().into()
}

fn yearly(date: AnchorDate, tz: chrono_tz::Tz, offset: i32, time: TimeOfDay, after: &str) -> Option<Timestamp> {
    next_occurrence(Recurrence::Yearly, date, tz, DayOffset(offset), time, utc(after))
}

#[test]
fn a_birthday_fires_at_local_time() {
    // 14 March, Berlin is on CET (+01:00): 09:00 local is 08:00 UTC.
    assert_eq!(yearly(md(3, 14), Berlin, 0, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2026-03-14T08:00:00Z")));
    // Strictly after: at the firing instant itself, the next one is a year later.
    assert_eq!(yearly(md(3, 14), Berlin, 0, at(9, 0), "2026-03-14T08:00:00Z"), Some(utc("2027-03-14T08:00:00Z")));
    assert_eq!(yearly(md(3, 14), Berlin, 0, at(9, 0), "2026-03-14T07:59:59Z"), Some(utc("2026-03-14T08:00:00Z")));
    // In summer Berlin is +02:00.
    assert_eq!(yearly(md(7, 1), Berlin, 0, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2026-07-01T07:00:00Z")));
    assert_eq!(yearly(md(7, 1), New_York, 0, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2026-07-01T13:00:00Z")));
}

#[test]
fn the_local_date_decides_not_the_utc_date() {
    // 01:00 UTC on 1 January is still 31 December (20:00) in New York, so the 1 January
    // birthday there is still ahead: 09:00 New York time, 14:00 UTC.
    assert_eq!(yearly(md(1, 1), New_York, 0, at(9, 0), "2027-01-01T01:00:00Z"), Some(utc("2027-01-01T14:00:00Z")));
    // A birthday at 23:30 in Auckland (+13:00 in January) is the previous day in UTC.
    let auckland: chrono_tz::Tz = "Pacific/Auckland".parse().unwrap();
    assert_eq!(yearly(md(1, 10), auckland, 0, at(23, 30), "2026-01-01T00:00:00Z"), Some(utc("2026-01-10T10:30:00Z")));
}

#[test]
fn the_29th_of_february_fires_on_the_28th_in_common_years() {
    let leapling = ymd(2000, 2, 29);
    assert_eq!(yearly(leapling, Berlin, 0, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2026-02-28T08:00:00Z")));
    assert_eq!(yearly(leapling, Berlin, 0, at(9, 0), "2027-03-01T00:00:00Z"), Some(utc("2028-02-29T08:00:00Z")));
    assert_eq!(yearly(md(2, 29), Berlin, 0, at(9, 0), "2100-01-01T00:00:00Z"), Some(utc("2100-02-28T08:00:00Z")));
    // The offset counts from the day it falls on: a week before 28 February is 21 February.
    assert_eq!(yearly(leapling, Berlin, -7, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2026-02-21T08:00:00Z")));
    // A day after falls on 1 March in both kinds of year.
    assert_eq!(yearly(leapling, Berlin, 1, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2026-03-01T08:00:00Z")));
    assert_eq!(yearly(leapling, Berlin, 1, at(9, 0), "2028-01-01T00:00:00Z"), Some(utc("2028-03-01T08:00:00Z")));
}

#[test]
fn negative_offsets_reach_into_the_previous_year() {
    // A 3 January birthday, a week before: 27 December of the year before.
    assert_eq!(yearly(md(1, 3), Berlin, -7, at(9, 0), "2026-12-01T00:00:00Z"), Some(utc("2026-12-27T08:00:00Z")));
    // After that, the next is the one for the birthday of 2028.
    assert_eq!(yearly(md(1, 3), Berlin, -7, at(9, 0), "2026-12-27T08:00:00Z"), Some(utc("2027-12-27T08:00:00Z")));
    // And a positive one into the next: 30 December plus five days.
    assert_eq!(yearly(md(12, 30), Berlin, 5, at(9, 0), "2026-12-31T00:00:00Z"), Some(utc("2027-01-04T08:00:00Z")));
    // An offset longer than a year still finds the nearest occurrence.
    assert_eq!(yearly(md(6, 1), Berlin, -400, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2026-04-27T07:00:00Z")));
}

#[test]
fn a_known_year_starts_with_the_first_anniversary() {
    // A first order on 10 May 2026 at 08:00: its first anniversary is in 2027, not that day.
    assert_eq!(yearly(ymd(2026, 5, 10), Berlin, 0, at(9, 0), "2026-05-10T06:00:00Z"), Some(utc("2027-05-10T07:00:00Z")));
    // Even with an offset that would fall before the date itself.
    assert_eq!(yearly(ymd(2026, 5, 10), Berlin, -3, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2027-05-07T07:00:00Z")));
    // A date far ahead fires from its first anniversary.
    assert_eq!(yearly(ymd(2090, 5, 10), Berlin, 0, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2091-05-10T07:00:00Z")));
}

#[test]
fn once_and_turns_fire_a_single_time() {
    let renewal = ymd(2026, 12, 1);
    let once = |after: &str| next_occurrence(Recurrence::Once, renewal, Berlin, DayOffset(-30), at(9, 0), utc(after));
    assert_eq!(once("2026-06-01T00:00:00Z"), Some(utc("2026-11-01T08:00:00Z")));
    assert_eq!(once("2026-11-01T08:00:00Z"), None);
    let daughter = ymd(2005, 4, 2);
    let turns = |n, after: &str| next_occurrence(Recurrence::Turns(n), daughter, Berlin, DayOffset(-30), at(10, 0), utc(after));
    assert_eq!(turns(21, "2026-01-01T00:00:00Z"), Some(utc("2026-03-03T09:00:00Z")));
    assert_eq!(turns(21, "2026-03-04T00:00:00Z"), None);
    assert_eq!(turns(18, "2026-01-01T00:00:00Z"), None, "already past");
    // Both need the year.
    assert_eq!(next_occurrence(Recurrence::Once, md(4, 2), Berlin, DayOffset(0), at(9, 0), utc("2026-01-01T00:00:00Z")), None);
    assert_eq!(
        next_occurrence(Recurrence::Turns(21), md(4, 2), Berlin, DayOffset(0), at(9, 0), utc("2026-01-01T00:00:00Z")),
        None
    );
    // A leapling turns 21 on 28 February 2021.
    assert_eq!(
        next_occurrence(
            Recurrence::Turns(21),
            ymd(2000, 2, 29),
            chrono_tz::UTC,
            DayOffset(0),
            at(9, 0),
            utc("2020-01-01T00:00:00Z")
        ),
        Some(utc("2021-02-28T09:00:00Z"))
    );
}

#[test]
fn a_time_skipped_by_daylight_saving_moves_forward() {
    // Berlin, 29 March 2026: 02:00 jumps to 03:00. 02:30 does not exist and fires at 03:30 CEST.
    assert_eq!(yearly(md(3, 29), Berlin, 0, at(2, 30), "2026-01-01T00:00:00Z"), Some(utc("2026-03-29T01:30:00Z")));
    assert_eq!(
        local_instant(Berlin, NaiveDate::from_ymd_opt(2026, 3, 29).unwrap().and_hms_opt(2, 0, 0).unwrap()),
        Some(utc("2026-03-29T01:00:00Z"))
    );
    // The times around the gap are untouched.
    assert_eq!(yearly(md(3, 29), Berlin, 0, at(1, 59), "2026-01-01T00:00:00Z"), Some(utc("2026-03-29T00:59:00Z")));
    assert_eq!(yearly(md(3, 29), Berlin, 0, at(3, 0), "2026-01-01T00:00:00Z"), Some(utc("2026-03-29T01:00:00Z")));
    // New York, 8 March 2026: 02:00 jumps to 03:00 (EST −5 to EDT −4).
    assert_eq!(yearly(md(3, 8), New_York, 0, at(2, 30), "2026-01-01T00:00:00Z"), Some(utc("2026-03-08T07:30:00Z")));
    assert_eq!(yearly(md(3, 8), New_York, 0, at(9, 0), "2026-01-01T00:00:00Z"), Some(utc("2026-03-08T13:00:00Z")));
    // Samoa skipped 30 December 2011 entirely: the whole day moves forward a day.
    let apia: chrono_tz::Tz = "Pacific/Apia".parse().unwrap();
    let skipped = NaiveDate::from_ymd_opt(2011, 12, 30).unwrap().and_hms_opt(9, 0, 0).unwrap();
    let fired = local_instant(apia, skipped).unwrap();
    assert_eq!(
        fired.with_timezone(&apia).naive_local(),
        NaiveDate::from_ymd_opt(2011, 12, 31).unwrap().and_hms_opt(9, 0, 0).unwrap()
    );
}

#[test]
fn a_time_that_happens_twice_fires_the_first_time() {
    // Berlin, 25 October 2026: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    assert_eq!(yearly(md(10, 25), Berlin, 0, at(2, 30), "2026-01-01T00:00:00Z"), Some(utc("2026-10-25T00:30:00Z")));
    // New York, 1 November 2026: 01:30 happens at −4 and again at −5.
    assert_eq!(yearly(md(11, 1), New_York, 0, at(1, 30), "2026-01-01T00:00:00Z"), Some(utc("2026-11-01T05:30:00Z")));
    // Asked after the first, the next is a year later, not the repeat an hour on.
    assert_eq!(yearly(md(11, 1), New_York, 0, at(1, 30), "2026-11-01T05:30:00Z"), Some(utc("2027-11-01T05:30:00Z")));
}

#[test]
fn a_date_trigger_computes_its_own_next_occurrence() {
    let spec = ok(with_trigger(json!({"kind":"date","field":"birthday","offset":"-P1D","at":"18:00"})));
    let Trigger::Date(d) = &spec.trigger else { panic!() };
    let birthday = crate::Birthday::parse("--12-25").unwrap();
    assert_eq!(d.next_occurrence(birthday.into(), New_York, utc("2026-06-01T00:00:00Z")), Some(utc("2026-12-24T23:00:00Z")));
}

#[test]
fn wait_until_ends_at_the_next_local_time() {
    let now = utc("2026-03-27T10:00:00Z"); // Friday 11:00 in Berlin
    let w = |v: Value| {
        let spec = ok(with_steps(json!([{"wait_until": v}])));
        let Step::Wait(Wait::Until { wait_until }) = &spec.steps[0] else { panic!() };
        wait_until.clone()
    };
    assert_eq!(w(json!({"at":"12:00"})).ends_at(Berlin, now), Some(utc("2026-03-27T11:00:00Z")));
    assert_eq!(w(json!({"at":"09:00"})).ends_at(Berlin, now), Some(utc("2026-03-28T08:00:00Z")));
    // Monday after the clocks change: 09:00 CEST.
    assert_eq!(w(json!({"weekday":"monday"})).ends_at(Berlin, now), Some(utc("2026-03-30T07:00:00Z")));
    // The same weekday: today if the time is still ahead, else a week on.
    assert_eq!(w(json!({"weekday":"fri","at":"17:00"})).ends_at(Berlin, now), Some(utc("2026-03-27T16:00:00Z")));
    assert_eq!(w(json!({"weekday":"friday","at":"08:00"})).ends_at(Berlin, now), Some(utc("2026-04-03T06:00:00Z")));
    // A date is that instant, even once it has passed.
    assert_eq!(w(json!({"date":"2026-12-24","at":"10:00"})).ends_at(Berlin, now), Some(utc("2026-12-24T09:00:00Z")));
    assert_eq!(w(json!({"date":"2020-01-01"})).ends_at(Berlin, now), Some(utc("2020-01-01T08:00:00Z")));
}

// ---- property tests ------------------------------------------------------------------------

fn any_duration() -> impl Strategy<Value = chrono::Duration> {
    prop_oneof![
        (1i64..=730).prop_map(chrono::Duration::days),
        (1i64..=72).prop_map(chrono::Duration::hours),
        (1i64..=10_000).prop_map(chrono::Duration::minutes),
        (1i64..=100_000).prop_map(chrono::Duration::milliseconds),
    ]
}

fn any_filter() -> impl Strategy<Value = Filter> {
    prop::sample::select(vec![
        "tag = \"vip\"",
        "value_tier in (\"gold\", \"vip\") and not tag = \"staff\"",
        "count(email.opened, last 90d) >= 5",
        "birthday within next 7d",
        "no visit.checked_in in last 21d",
        "in segment \"Gold members\"",
        "revenue > 1000.5",
    ])
    .prop_map(|t| t.parse::<Filter>().unwrap())
}

fn any_template() -> impl Strategy<Value = Template> {
    prop::sample::select(vec!["Call {{first_name}}", "Follow up", "{{display_name}} ({{email}})", "Hi {{ owner_name }}!"])
        .prop_map(|t| Template::parse(t, false).unwrap())
}

fn any_user() -> impl Strategy<Value = UserRef> {
    prop_oneof![Just(UserRef::Owner), Just(UserRef::User(EmailAddress::parse("ana@example.com").unwrap()))]
}

fn any_stage() -> impl Strategy<Value = LifecycleStage> {
    prop::sample::select(LifecycleStage::ALL.to_vec())
}

fn any_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (any_template(), proptest::option::of(any_duration()), any_user(), proptest::option::of(any_template()))
            .prop_map(|(title, due, assignee, reason)| Action::CreateTask(CreateTask { title, due, assignee, reason })),
        (any::<bool>(), proptest::option::of(any_template())).prop_map(|(email, subject)| Action::SendMessage(SendMessage {
            channel: if email { MessageChannel::Email } else { MessageChannel::Sms },
            template: "welcome".into(),
            subject: if email { subject } else { None },
        })),
        any_stage().prop_map(|stage| Action::SetStage { stage }),
        "[a-z]{1,10}( [A-Z]{1,5})?".prop_map(|tag| Action::AddTag { tag }),
        "[a-z]{1,10}".prop_map(|tag| Action::RemoveTag { tag }),
        (any::<i32>()).prop_map(|n| Action::SetField(SetField { field: "custom.score".into(), value: json!(n) })),
        Just(Action::SetField(SetField { field: "first_name".into(), value: Value::Null })),
        (1..=MAX_POINTS, proptest::option::of(any_template()), proptest::option::of("[A-Z0-9]{4,8}"))
            .prop_map(|(points, reason, coupon)| Action::AwardPoints(AwardPoints { points, reason, coupon })),
        (any_user(), any_template()).prop_map(|(user, message)| Action::Notify(Notify { user, message })),
        proptest::option::of("[a-z_]{1,12}")
            .prop_map(|secret_ref| Action::Webhook(Webhook { url: "https://hooks.example.com/a?b=c".into(), secret_ref })),
        "[A-Z][a-z]{1,8}( [a-z]{1,8})?".prop_map(|workflow| Action::StartWorkflow { workflow }),
    ]
}

fn any_wait() -> impl Strategy<Value = Wait> {
    let until = (
        proptest::option::of(
            (2000i32..2100, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap()),
        ),
        proptest::option::of(prop::sample::select(vec![chrono::Weekday::Mon, chrono::Weekday::Sat])),
        (0u32..24, 0u32..60),
    )
        .prop_map(|(date, weekday, (h, m))| WaitUntil {
            weekday: if date.is_some() { None } else { weekday },
            date,
            at: at(h, m),
        });
    prop_oneof![
        (any_duration(), proptest::option::of(prop::sample::select(vec!["order.completed", "email.replied", "shop.wished"])))
            .prop_map(|(duration, e)| Wait::For { duration, until_event: e.map(str::to_string) }),
        until.prop_map(|wait_until| Wait::Until { wait_until }),
    ]
}

fn any_steps() -> impl Strategy<Value = Vec<Step>> {
    let leaf = prop_oneof![any_action().prop_map(Step::Action), any_wait().prop_map(Step::Wait)];
    let step = leaf.prop_recursive(4, 24, 3, |inner| {
        (any_filter(), prop::collection::vec(inner.clone(), 1..3), prop::collection::vec(inner, 0..3))
            .prop_map(|(condition, then, otherwise)| Step::Branch(Branch { condition, then, otherwise }))
    });
    prop::collection::vec(step, 1..5)
}

fn any_trigger() -> impl Strategy<Value = Trigger> {
    let date = (
        prop::sample::select(vec![DateField::Birthday, DateField::FirstOrder, DateField::Custom("renewal".into())]),
        prop_oneof![Just(Recurrence::Yearly), Just(Recurrence::Once), (1..=MAX_TURNS).prop_map(Recurrence::Turns)],
        -MAX_OFFSET_DAYS..=MAX_OFFSET_DAYS,
        (0u32..24, 0u32..60),
        any::<bool>(),
    )
        .prop_map(|(field, recurrence, offset, (h, m), related)| {
            let of_related = (related && field == DateField::Birthday).then(|| "child".to_string());
            Trigger::Date(DateTrigger { field, of_related, recurrence, offset: DayOffset(offset), at: at(h, m) })
        });
    prop_oneof![
        Just(Trigger::Event(EventSelector { event_type: "product.viewed".into(), conditions: vec![] })),
        Just(Trigger::SegmentEntered { segment: "Gold members".into() }),
        Just(Trigger::SegmentExited { segment: "Gold".into() }),
        date,
        (1..=MAX_INACTIVITY_DAYS).prop_map(|days| Trigger::Inactivity { event_type: "visit.checked_in".into(), days }),
        (1u32..100_000, any::<bool>()).prop_map(|(n, every)| Trigger::Threshold(ThresholdTrigger {
            metric: Metric::Revenue,
            rule: if every { ThresholdRule::Every(f64::from(n) / 4.0) } else { ThresholdRule::Crosses(f64::from(n)) },
        })),
        (1u32..1000).prop_map(|n| Trigger::Threshold(ThresholdTrigger {
            metric: Metric::OrderCount,
            rule: ThresholdRule::Every(f64::from(n))
        })),
        (proptest::option::of(any_stage()), any_stage())
            .prop_filter("a change goes somewhere", |(from, to)| *from != Some(*to))
            .prop_map(|(from, to)| Trigger::StageChanged { from, to: Some(to) }),
        Just(Trigger::Manual),
    ]
}

fn any_reentry() -> impl Strategy<Value = Reentry> {
    prop_oneof![Just(Reentry::PerOccurrence), Just(Reentry::Once), Just(Reentry::Always), any_duration().prop_map(Reentry::After),]
}

fn any_spec() -> impl Strategy<Value = WorkflowSpec> {
    (
        "[A-Z][a-z]{0,10}( [a-z0-9]{1,6}){0,3}",
        any_trigger(),
        proptest::option::of(any_filter()),
        any_steps(),
        prop::sample::subsequence(vec!["order.completed", "email.replied", "visit.checked_in"], 0..=3),
        any_reentry(),
        prop_oneof![Just(0u8), 1u8..=90],
    )
        .prop_map(|(name, trigger, conditions, steps, exit, reentry, holdout_percent)| WorkflowSpec {
            name,
            trigger,
            conditions,
            steps,
            exit_when: exit.into_iter().map(str::to_string).collect(),
            reentry,
            holdout_percent,
        })
        .prop_filter("at most MAX_STEPS steps", |s| s.walk().count() <= MAX_STEPS)
        .prop_filter("a workflow does not start itself", |s| {
            s.started_workflows().iter().all(|w| !w.eq_ignore_ascii_case(&s.name))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_specs_round_trip_through_canonical_json(spec in any_spec()) {
        let json = serde_json::to_value(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = WorkflowSpec::parse(json.clone()).map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
        prop_assert_eq!(&back, &spec, "json: {}", json);
        prop_assert_eq!(serde_json::to_value(&back).map_err(|e| TestCaseError::fail(e.to_string()))?, json);
    }

    #[test]
    fn durations_round_trip(ms in -10_000_000_000i64..10_000_000_000) {
        let d = chrono::Duration::milliseconds(ms);
        prop_assert_eq!(parse_signed_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn arbitrary_json_never_panics(doc in arbitrary_json()) {
        let _ = WorkflowSpec::parse(doc);
    }

    /// The next occurrence is after `after`, on the right local day (or the 28 February stand-in),
    /// at the asked time unless a daylight-saving gap moved it, and nothing fires in between.
    #[test]
    fn next_occurrence_is_the_next_one(
        month in 1u32..=12, day in 1u32..=31, offset in -400i32..=400, h in 0u32..24, m in 0u32..60,
        secs in 946_684_800i64..4_102_444_800, zone in prop::sample::select(vec![Berlin, New_York, chrono_tz::UTC]),
    ) {
        prop_assume!(NaiveDate::from_ymd_opt(2000, month, day).is_some());
        let date = md(month, day);
        let after = DateTime::from_timestamp(secs, 0).unwrap();
        let next = yearly_at(date, zone, offset, at(h, m), after).expect("yearly always has a next");
        prop_assert!(next > after);
        let local = next.with_timezone(&zone).naive_local();
        let base = local.date() - chrono::Duration::days(offset.into());
        let expected = date.in_year(base.year()).unwrap();
        prop_assert_eq!(base, expected);
        // Nothing fires between `after` and `next`: the one before `next` is not after `after`.
        let earlier = yearly_at(date, zone, offset, at(h, m), after - chrono::Duration::days(366));
        prop_assert!(earlier.is_some_and(|e| e <= after || e == next));
    }
}

fn yearly_at(date: AnchorDate, tz: chrono_tz::Tz, offset: i32, time: TimeOfDay, after: Timestamp) -> Option<Timestamp> {
    next_occurrence(Recurrence::Yearly, date, tz, DayOffset(offset), time, after)
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "P2D",
            "-P1D",
            "09:00",
            "manual",
            "event",
            "date",
            "birthday",
            "create_task",
            "if",
            "{{first_name}}",
            "tag = \"x\"",
            "order.completed",
            "owner",
            "x",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let keys = prop::sample::select(vec![
            "name",
            "trigger",
            "kind",
            "type",
            "steps",
            "action",
            "wait",
            "wait_until",
            "if",
            "then",
            "else",
            "title",
            "at",
            "field",
            "offset",
            "reentry",
            "after",
            "exit_when",
            "where",
            "value",
            "turns",
            "repeat",
            "date",
            "weekday",
            "tag",
            "stage",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

#[test]
fn inbound_touches_are_the_person_getting_in_touch() {
    use serde_json::json;
    assert!(super::is_inbound_touch("email.replied", &json!({})));
    assert!(super::is_inbound_touch("call.logged", &json!({"direction": "outbound", "outcome": "connected"})));
    assert!(super::is_inbound_touch("call.logged", &json!({"direction": "inbound", "outcome": "voicemail"})));
    assert!(!super::is_inbound_touch("call.logged", &json!({"direction": "outbound", "outcome": "voicemail"})));
    assert!(super::is_inbound_touch("chat.message", &json!({"direction": "inbound"})));
    assert!(!super::is_inbound_touch("chat.message", &json!({"direction": "outbound"})));
    assert!(!super::is_inbound_touch("order.completed", &json!({})));
}
