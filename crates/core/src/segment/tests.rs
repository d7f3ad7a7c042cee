//! The segment language end to end: parsing, printing, errors and the JSON form.

use super::parse::KEYWORDS;
use chrono::Datelike;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::*;

fn p(text: &str) -> Filter {
    parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn err(text: &str) -> ParseError {
    match parse(text) {
        Ok(f) => panic!("{text:?} should not parse, got {f:?}"),
        Err(e) => e,
    }
}

/// Parses, checks the tree, and checks the canonical text reads back the same.
fn round(input: &str) -> Filter {
    let f = p(input);
    assert_eq!(f.check(), Ok(()), "{input}");
    assert_eq!(parse(&f.to_string()), Ok(f.clone()), "{input} printed as {f}");
    f
}

fn cmp(field: &str, op: CompareOp, value: Literal) -> Filter {
    Filter::Compare(Compare { field: field.into(), op, value })
}

fn text(s: &str) -> Literal {
    Literal::Text(s.into())
}

fn num(n: f64) -> Literal {
    Literal::Number(n)
}

fn not(f: Filter) -> Filter {
    Filter::Not(Box::new(f))
}

fn tag(s: &str) -> Filter {
    cmp("tag", CompareOp::Eq, text(s))
}

fn sel(event_type: &str) -> EventSelector {
    EventSelector { event_type: event_type.into(), conditions: vec![] }
}

fn pc(path: &str, op: CompareOp, value: Literal) -> PayloadCondition {
    PayloadCondition { path: path.into(), op, value }
}

fn date(field: &str, test: DateTest) -> Filter {
    Filter::Date(DateCondition { date: DateSource::Field(field.into()), test })
}

fn count(event_type: &str, last: Option<Span>, op: CompareOp, value: f64) -> Filter {
    Filter::Events(EventMetric { aggregate: Aggregate::Count, events: sel(event_type), field: None, last, op, value })
}

// --- the examples in the module docs ---

#[test]
fn example_list_and_not() {
    let f = p(r#"value_tier in ("gold","vip") and not tag = "staff""#);
    assert_eq!(
        f,
        Filter::And(vec![cmp("value_tier", CompareOp::In, Literal::List(vec![text("gold"), text("vip")])), not(tag("staff"))])
    );
    assert_eq!(f.to_string(), r#"value_tier in ("gold", "vip") and not tag = "staff""#);
}

#[test]
fn example_counts() {
    let input = "count(email.opened, last 90d) >= 5 and count(email.clicked, last 90d) = 0";
    let f = p(input);
    assert_eq!(
        f,
        Filter::And(vec![
            count("email.opened", Some(Span::days(90)), CompareOp::Ge, 5.0),
            count("email.clicked", Some(Span::days(90)), CompareOp::Eq, 0.0),
        ])
    );
    assert_eq!(f.to_string(), input);
}

#[test]
fn example_sum() {
    let input = "sum(order.completed.total, last 365d) > 1000";
    let f = p(input);
    assert_eq!(
        f,
        Filter::Events(EventMetric {
            aggregate: Aggregate::Sum,
            events: sel("order.completed"),
            field: Some("total".into()),
            last: Some(Span::days(365)),
            op: CompareOp::Gt,
            value: 1000.0,
        })
    );
    assert_eq!(f.to_string(), input);
}

#[test]
fn example_birthday() {
    let f = p("birthday within next 7d");
    assert_eq!(f, date("birthday", DateTest::WithinNext(Span::days(7))));
    assert_eq!(f.to_string(), "birthday within next 7d");
}

#[test]
fn example_related_birthday() {
    let input = "related(child).birthday turns 21 within next 30d";
    let f = p(input);
    assert_eq!(
        f,
        Filter::Related(Related {
            kind: "child".into(),
            birthday: Some(DateTest::TurnsWithinNext { age: 21, within: Span::days(30) }),
        })
    );
    assert_eq!(f.to_string(), input);
}

#[test]
fn example_no_visit() {
    let input = "no visit.checked_in in last 21d";
    let f = p(input);
    assert_eq!(f, Filter::Occurred(Occurred { occurred: false, events: sel("visit.checked_in"), last: Some(Span::days(21)) }));
    assert_eq!(f.to_string(), input);
}

// --- and, or, not, parentheses ---

#[test]
fn chains_are_n_ary_and_groups_stay_nodes() {
    let (a, b, c) = (tag("a"), tag("b"), tag("c"));
    assert_eq!(p(r#"tag = "a" and tag = "b" and tag = "c""#), Filter::And(vec![a.clone(), b.clone(), c.clone()]));
    assert_eq!(p(r#"tag = "a" or tag = "b" or tag = "c""#), Filter::Or(vec![a.clone(), b.clone(), c.clone()]));
    assert_eq!(
        p(r#"tag = "a" and (tag = "b" and tag = "c")"#),
        Filter::And(vec![a.clone(), Filter::And(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        p(r#"(tag = "a" and tag = "b") and tag = "c""#),
        Filter::And(vec![Filter::And(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(p(r#"(tag = "a")"#), a);
    assert_eq!(p(r#"((((tag = "a"))))"#), a);
    assert_eq!(p(r#"((tag = "a") and (tag = "b"))"#), Filter::And(vec![a.clone(), b.clone()]));
}

#[test]
fn precedence_is_or_then_and_then_not() {
    let (a, b, c) = (tag("a"), tag("b"), tag("c"));
    assert_eq!(
        p(r#"tag = "a" or tag = "b" and tag = "c""#),
        Filter::Or(vec![a.clone(), Filter::And(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        p(r#"tag = "a" and tag = "b" or tag = "c""#),
        Filter::Or(vec![Filter::And(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(p(r#"not tag = "a" and tag = "b""#), Filter::And(vec![not(a.clone()), b.clone()]));
    assert_eq!(p(r#"not (tag = "a" or tag = "b")"#), not(Filter::Or(vec![a.clone(), b.clone()])));
    assert_eq!(p(r#"not not tag = "a""#), not(not(a.clone())));
    let mixed = round(r#"tag = "a" and tag = "b" or not tag = "c""#);
    assert_eq!(mixed.to_string(), r#"(tag = "a" and tag = "b") or not tag = "c""#);
}

#[test]
fn sugar_and_letter_case() {
    let canonical = p(r#"tag = "a" and not tag = "b" or tag != "c""#);
    assert_eq!(p(r#"tag == "a" && !tag = "b" || tag <> "c""#), canonical);
    assert_eq!(p(r#"tag = "a" AND NOT tag = "b" Or tag != "c""#), canonical);
    assert_eq!(p(r#"tag = "a"&&!tag = "b"||tag<>"c""#), canonical);
    assert_eq!(p("email IS NOT SET"), Filter::IsSet(IsSet { field: "email".into(), set: false }));
    assert_eq!(p("name NOT IN (\"x\")"), cmp("name", CompareOp::NotIn, Literal::List(vec![text("x")])));
    assert_eq!(p("COUNT(email.opened) > 1"), count("email.opened", None, CompareOp::Gt, 1.0));
    assert_eq!(p("custom.flag = TRUE"), cmp("custom.flag", CompareOp::Eq, Literal::Bool(true)));
}

#[test]
fn whitespace_newlines_and_comments() {
    let input = "# gold members\n  value_tier = \"gold\"  # the tier\n\tand\r\n  tag != \"staff\" # done";
    assert_eq!(
        p(input),
        Filter::And(vec![cmp("value_tier", CompareOp::Eq, text("gold")), cmp("tag", CompareOp::Ne, text("staff"))])
    );
    assert_eq!(p("related ( child ) . birthday is today"), p("related(child).birthday is today"));
    assert_eq!(p("tag = \"a # not a comment\""), tag("a # not a comment"));
}

// --- conditions ---

#[test]
fn comparisons() {
    use CompareOp::*;
    assert_eq!(round("order_count >= 2"), cmp("order_count", Ge, num(2.0)));
    assert_eq!(round("custom.fleet_size > 5"), cmp("custom.fleet_size", Gt, num(5.0)));
    assert_eq!(round("company.custom.seats <= -2.5"), cmp("company.custom.seats", Le, num(-2.5)));
    assert_eq!(round("revenue < 1e5"), cmp("revenue", Lt, num(100_000.0)));
    assert_eq!(round("revenue < 1.5E-3"), cmp("revenue", Lt, num(0.0015)));
    assert_eq!(
        round("time_in_stage > 14d"),
        cmp("time_in_stage", Gt, Literal::Duration(DurationLiteral { duration: Span::days(14) }))
    );
    assert_eq!(round(r#"email ends_with "@gmail.com""#), cmp("email", EndsWith, text("@gmail.com")));
    assert_eq!(round(r#"name starts_with "Jo""#), cmp("name", StartsWith, text("Jo")));
    assert_eq!(round(r#"company.name contains "Acme""#), cmp("company.name", Contains, text("Acme")));
    assert_eq!(round(r#"name not in ("a")"#), cmp("name", NotIn, Literal::List(vec![text("a")])));
    assert_eq!(round("age in (18, 21)"), cmp("age", In, Literal::List(vec![num(18.0), num(21.0)])));
    assert_eq!(
        round(r#"custom.mixed in (1, "a", true, 2w)"#),
        cmp(
            "custom.mixed",
            In,
            Literal::List(vec![
                num(1.0),
                text("a"),
                Literal::Bool(true),
                Literal::Duration(DurationLiteral { duration: Span { amount: 2, unit: SpanUnit::Weeks } })
            ])
        )
    );
    assert_eq!(round("custom.vip = false"), cmp("custom.vip", Eq, Literal::Bool(false)));
}

#[test]
fn string_escapes() {
    let f = round(r#"name = "a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00 é😀""#);
    assert_eq!(f, cmp("name", CompareOp::Eq, text("a\"b\\c/d\u{8}\u{c}\n\r\té😀 é😀")));
    // The printer writes JSON escapes only where needed.
    assert_eq!(f.to_string(), "name = \"a\\\"b\\\\c/d\\b\\f\\n\\r\\té😀 é😀\"");
}

#[test]
fn is_set_and_dates() {
    let span = |amount, unit| Span { amount, unit };
    assert_eq!(round("email is set"), Filter::IsSet(IsSet { field: "email".into(), set: true }));
    assert_eq!(round("custom.x is not set"), Filter::IsSet(IsSet { field: "custom.x".into(), set: false }));
    assert_eq!(round("birthday is today"), date("birthday", DateTest::Today));
    assert_eq!(round("created_at within last 30d"), date("created_at", DateTest::WithinLast(Span::days(30))));
    assert_eq!(round("custom.renewal within next 2mo"), date("custom.renewal", DateTest::WithinNext(span(2, SpanUnit::Months))));
    assert_eq!(round("birthday anniversary within next 3d"), date("birthday", DateTest::AnniversaryWithinNext(Span::days(3))));
    assert_eq!(round("last_order before 60d ago"), date("last_order", DateTest::Before(DateBound::Ago(Span::days(60)))));
    assert_eq!(
        round("stage_since after in 12h"),
        date("stage_since", DateTest::After(DateBound::FromNow(span(12, SpanUnit::Hours))))
    );
    let on = |y, m, d| DateBound::On(NaiveDate::from_ymd_opt(y, m, d).expect("a real date"));
    assert_eq!(round(r#"first_seen after "2026-01-01""#), date("first_seen", DateTest::After(on(2026, 1, 1))));
    assert_eq!(round(r#"first_seen before "2024-02-29""#), date("first_seen", DateTest::Before(on(2024, 2, 29))));
    // Years beyond four digits carry a sign, as chrono writes them.
    let far = date("first_seen", DateTest::Before(on(10_000, 1, 1)));
    assert_eq!(far.to_string(), r#"first_seen before "+10000-01-01""#);
    assert_eq!(p(&far.to_string()), far);
    let early = date("first_seen", DateTest::Before(on(-1, 12, 31)));
    assert_eq!(p(&early.to_string()), early);
    assert_eq!(
        round("last(visit.checked_in) before 1y ago"),
        Filter::Date(DateCondition {
            date: DateSource::Last(sel("visit.checked_in")),
            test: DateTest::Before(DateBound::Ago(span(1, SpanUnit::Years))),
        })
    );
    assert_eq!(
        round(r#"first(order.completed where total > 100) within last 1w"#),
        Filter::Date(DateCondition {
            date: DateSource::First(EventSelector {
                event_type: "order.completed".into(),
                conditions: vec![pc("total", CompareOp::Gt, num(100.0))],
            }),
            test: DateTest::WithinLast(span(1, SpanUnit::Weeks)),
        })
    );
}

#[test]
fn events_and_occurrences() {
    use CompareOp::*;
    assert_eq!(round("count(email.opened) > 3"), count("email.opened", None, Gt, 3.0));
    assert_eq!(round("count(shop.wish.added) = 0"), count("shop.wish.added", None, Eq, 0.0));
    assert_eq!(
        round(
            r#"avg(order.completed.items.price where (currency = "EUR" and items.category in ("shoes", "bags")), last 6mo) >= 49.9"#
        ),
        Filter::Events(EventMetric {
            aggregate: Aggregate::Avg,
            events: EventSelector {
                event_type: "order.completed".into(),
                conditions: vec![
                    pc("currency", Eq, text("EUR")),
                    pc("items.category", In, Literal::List(vec![text("shoes"), text("bags")])),
                ],
            },
            field: Some("items.price".into()),
            last: Some(Span { amount: 6, unit: SpanUnit::Months }),
            op: Ge,
            value: 49.9,
        })
    );
    assert_eq!(
        round(r#"no order.completed where items.category = "shoes" in last 60d"#),
        Filter::Occurred(Occurred {
            occurred: false,
            events: EventSelector {
                event_type: "order.completed".into(),
                conditions: vec![pc("items.category", Eq, text("shoes"))],
            },
            last: Some(Span::days(60)),
        })
    );
    // After a list value, `in last` is still the window.
    assert_eq!(
        round(r#"has call.logged where outcome in ("connected", "voicemail") in last 7d"#),
        Filter::Occurred(Occurred {
            occurred: true,
            events: EventSelector {
                event_type: "call.logged".into(),
                conditions: vec![pc("outcome", In, Literal::List(vec![text("connected"), text("voicemail")]))],
            },
            last: Some(Span::days(7)),
        })
    );
    assert_eq!(
        round("has segment.entered"),
        Filter::Occurred(Occurred { occurred: true, events: sel("segment.entered"), last: None })
    );
    // Payload paths are read by position, so keywords (in any case) may be keys.
    let f = round(r#"has order.completed where (in = 1 and AND = "x" and where.last != true)"#);
    let Filter::Occurred(o) = &f else { panic!("{f:?}") };
    let paths: Vec<&str> = o.events.conditions.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["in", "AND", "where.last"]);
    // A single condition may also be parenthesised.
    assert_eq!(p("has order.completed where (total > 1)"), p("has order.completed where total > 1"));
}

#[test]
fn aggregates_take_a_two_part_type() {
    // Everything after the first two parts is the payload field, so a custom type with three
    // parts cannot be summed in text (only counted).
    let Filter::Events(m) = p("sum(shop.wish.added.total) > 1") else { panic!("an event metric") };
    assert_eq!((m.events.event_type.as_str(), m.field.as_deref()), ("shop.wish", Some("added.total")));
}

#[test]
fn zero_is_canonical() {
    let f = round("revenue = -0");
    assert_eq!(f.to_string(), "revenue = 0");
}

#[test]
fn related_segments_subscriptions() {
    assert_eq!(round("related(child)"), Filter::Related(Related { kind: "child".into(), birthday: None }));
    assert_eq!(round(r#"related("Step child")"#), Filter::Related(Related { kind: "Step child".into(), birthday: None }));
    assert_eq!(p(r#"related("child")"#).to_string(), "related(child)");
    assert_eq!(round(r#"in segment "Gold members""#), Filter::Segment("Gold members".into()));
    assert_eq!(
        round(r#"subscribed("newsletter") and unsubscribed("sms")"#),
        Filter::And(vec![
            Filter::Subscription(Subscription { topic: "newsletter".into(), subscribed: true }),
            Filter::Subscription(Subscription { topic: "sms".into(), subscribed: false }),
        ])
    );
}

#[test]
fn keyword_relation_kinds_are_quoted() {
    for kw in KEYWORDS {
        assert!(parse::is_keyword(kw), "{kw}");
        assert!(parse::is_keyword(&kw.to_uppercase()), "{kw}");
        let f = Filter::Related(Related { kind: (*kw).into(), birthday: None });
        assert_eq!(f.to_string(), format!("related(\"{kw}\")"));
        assert_eq!(parse(&f.to_string()), Ok(f));
        assert!(parse(&format!("related({kw})")).is_err(), "{kw}");
    }
    assert!(!parse::is_keyword("child"));
    assert!(!parse::is_keyword("birthday"));
}

#[test]
fn parsed_text_implements_from_str() {
    let f: Filter = "tag = \"a\"".parse().expect("parses");
    assert_eq!(f, tag("a"));
}

// --- errors ---

#[track_caller]
fn assert_err(text: &str, line: u32, column: u32, expected: &str, found: &str) {
    let e = err(text);
    assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
    assert!(e.expected.contains(expected), "{text:?}: expected {:?} to contain {expected:?}", e.expected);
    assert_eq!(e.found, found, "{text:?}: {e}");
}

#[test]
fn error_on_second_line() {
    assert_err("tag = \"a\"\n  and foo = 1", 2, 7, "a known field: unknown field 'foo'; use one of name, first_name", "`foo`");
    assert_err("tag = \"a\"\r\nand tag = ", 2, 11, "a value", "end of input");
}

#[test]
fn error_unknown_field() {
    let e = err("value_teir = \"gold\"");
    assert_eq!((e.line, e.column, e.found.as_str()), (1, 1, "`value_teir`"));
    assert!(e.expected.starts_with("a known field: unknown field 'value_teir'; use one of"), "{e}");
    assert!(e.expected.contains("custom.<key>"), "{e}");
    assert_err("custom.Fleet > 1", 1, 1, "'Fleet' is not a custom field key", "`custom.Fleet`");
    // The field is checked before what follows it.
    assert_err("foo", 1, 1, "unknown field 'foo'", "`foo`");
}

#[test]
fn error_missing_value() {
    assert_err("tag =", 1, 6, "a value: text in double quotes", "end of input");
    assert_err("tag = and tag = \"b\"", 1, 7, "a value", "`and`");
    assert_err("order_count >", 1, 14, "a value", "end of input");
    assert_err("tag", 1, 4, "a comparison operator (=, !=, <, <=, >, >=, in, not in", "end of input");
    assert_err("birthday", 1, 9, "a date test", "end of input");
    assert_err("tag = \"a\" and", 1, 14, "a field name, `not`, `(` or a condition", "end of input");
    assert_err("", 1, 1, "a field name, `not`, `(` or a condition", "end of input");
    assert_err("   # only a comment", 1, 20, "a field name", "end of input");
}

#[test]
fn error_unclosed_paren() {
    assert_err("(tag = \"a\" or tag = \"b\"", 1, 24, "`and`, `or` or `)` to close the `(` at line 1, column 1", "end of input");
    assert_err("tag = \"a\" and\n  (tag = \"b\" tag", 2, 14, "`)` to close the `(` at line 2, column 3", "`tag`");
    assert_err("tag = \"a\")", 1, 10, "`and`, `or` or end of input", "`)`");
    assert_err("tag in (\"a\", \"b\"", 1, 17, "`,` or `)`", "end of input");
    assert_err("count(email.opened > 1", 1, 20, "`where`, `, last …` or `)`", "`>`");
}

#[test]
fn error_bad_span() {
    assert_err("count(email.opened, last 90x) > 1", 1, 26, "a duration: a whole number followed by h, d, w, mo or y", "`90x`");
    assert_err("time_in_stage > 5days", 1, 17, "a duration", "`5days`");
    assert_err("time_in_stage > -5d", 1, 17, "a duration", "`-5d`");
    assert_err("birthday within next 7", 1, 22, "a duration such as 30d", "`7`");
    assert_err("birthday within next 9999999d", 1, 22, "too long a duration", "`9999999d`");
    assert_err("last_order before 60d", 1, 22, "`ago`", "end of input");
}

#[test]
fn error_checked_conditions() {
    assert_err("tag > 5", 1, 1, "a valid condition: tag is text; compare it with =, !=, in", "`tag > 5`");
    assert_err("tag = \"a\" or\n  order_count = \"2\"", 2, 3, "order_count is a number", "`order_count = \"2\"`");
    assert_err("birthday = 5", 1, 1, "birthday is a date", "`birthday = 5`");
    assert_err("order_count within last 5d", 1, 1, "order_count is not a date", "`order_count within last 5d`");
    assert_err("tag in ()", 1, 1, "in needs at least one value", "`tag in ()`");
    assert_err("tag = (\"a\")", 1, 1, "= compares with one value", "`tag = (\"a\")`");
    assert_err("tag in \"a\"", 1, 1, "in needs a list", "`tag in \"a\"`");
    assert_err(
        "related(child).birthday turns 200 within next 1d",
        1,
        1,
        "turns 200 is not an age",
        "`related(child).birthday turns 200 within…`",
    );
    assert_err("in segment \"  \"", 1, 1, "needs a segment name", "`in segment \"  \"`");
    assert_err("subscribed(\"\")", 1, 1, "needs a topic", "`subscribed(\"\")`");
    assert_err("has order.completed where total contains 5", 1, 27, "contains needs text", "`total contains 5`");
}

#[test]
fn error_events() {
    assert_err("no visit in last 3d", 1, 4, "a known event type: 'visit' is not a known type", "`visit`");
    assert_err("has order.complete", 1, 5, "unknown order event 'order.complete'", "`order.complete`");
    assert_err("sum(order.completed) > 1", 1, 5, "such as sum(order.completed.total)", "`order.completed`");
    assert_err("count(email.opened) in (1)", 1, 21, "(=, !=, <, <=, >, >=): count(…) is a number", "`in`");
    assert_err("count(email.opened) > \"1\"", 1, 23, "a number", "`\"1\"`");
    assert_err("count email.opened > 1", 1, 7, "`(` after count", "`email.opened`");
    assert_err("count(email.opened, 90d) > 1", 1, 21, "`last`", "`90d`");
    assert_err("has order.completed where 1 = 1", 1, 27, "a payload path", "`1`");
    assert_err("has order.completed where (a = 1 or b = 2)", 1, 34, "`and` or `)`", "`or`");
    assert_err("has order.completed in 3d", 1, 24, "`last`", "`3d`");
    assert_err("last(visit.checked_in)", 1, 23, "a date test", "end of input");
    assert_err("last(visit.checked_in) = 1", 1, 24, "a date test", "`=`");
    assert_err("related(child).age > 3", 1, 16, "`birthday`", "`age`");
}

#[test]
fn error_misc_tokens() {
    assert_err("tag = \"a\" tag = \"b\"", 1, 11, "`and`, `or` or end of input", "`tag`");
    assert_err("tag = \"héllo wörld\" xyz", 1, 21, "`and`, `or` or end of input", "`xyz`");
    assert_err("tag = é", 1, 7, "a value", "`é`");
    assert_err("tag = \"a\" & tag = \"b\"", 1, 11, "`and`, `or` or end of input", "`&`");
    assert_err("tag = \"abc", 1, 7, "a closing `\"`", "text without its closing quote");
    assert_err("tag = \"ab\nc\"", 1, 7, "a closing `\"`", "text without its closing quote");
    assert_err("tag = \"a\\qb\"", 1, 9, "an escape", "`\\q`");
    assert_err("tag = \"\\ud83d\"", 1, 8, "a low surrogate", "`\\ud83d`");
    assert_err("tag = \"\\ude00\"", 1, 8, "a high surrogate", "`\\ude00`");
    assert_err("tag = \"\\u12\"", 1, 8, "four hex digits", "`\\u`");
    assert_err("revenue > 1e999", 1, 11, "a number of a sensible size", "`1e999`");
    assert_err("revenue > -", 1, 11, "a number after `-`", "`-`");
    assert_err("last_order before \"2026-02-30\"", 1, 19, "a real date written YYYY-MM-DD", "`\"2026-02-30\"`");
    assert_err("last_order before \"1/2/2026\"", 1, 19, "YYYY-MM-DD", "`\"1/2/2026\"`");
    assert_err("related(Child)", 1, 9, "a relation kind", "`Child`");
    assert_err("related(and)", 1, 9, "a relation kind", "`and`");
    assert_err("in segment Gold", 1, 12, "a segment name in double quotes", "`Gold`");
    assert_err("email is", 1, 9, "`set`, `not set` or `today`", "end of input");
    assert_err("email is not", 1, 13, "`set`", "end of input");
    assert_err("name not like \"a\"", 1, 10, "`in`", "`like`");
    assert_err("and tag = \"a\"", 1, 1, "a field name, `not`, `(`", "`and`");
    assert_err("42", 1, 1, "a field name", "`42`");
    let long = format!("tag = \"a\" {}", "x".repeat(100));
    assert_eq!(err(&long).found, format!("`{}…`", "x".repeat(40)));
}

#[test]
fn nesting_is_capped() {
    let nested = |n: usize| format!("{}tag = \"a\"{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(p(&nested(64)), tag("a"));
    assert_err(&nested(65), 1, 65, "at most 64 nested", "`(`");
    assert_err(&nested(100_000), 1, 65, "at most 64 nested", "`(`");
    let nots = |n: usize| format!("{}tag = \"a\"", "not ".repeat(n));
    assert!(parse(&nots(64)).is_ok());
    assert_err(&nots(65), 1, 257, "at most 64 nested", "`not`");
    assert!(parse(&"!".repeat(1_000_000)).is_err());
    assert!(parse(&"(not ".repeat(100_000)).is_err());
}

#[test]
fn long_input() {
    let text = vec!["tag = \"a\""; 20_000].join(" or\n");
    let Filter::Or(parts) = p(&text) else { panic!("an or") };
    assert_eq!(parts.len(), 20_000);
    let e = err(&format!("{text} or"));
    assert_eq!((e.line, e.column), (20_000, 13));
}

#[test]
fn json_form() {
    let f = p(r#"value_tier in ("gold", "vip") and not tag = "staff" and time_in_stage > 14d"#);
    let json = serde_json::to_value(&f).expect("serialises");
    assert_eq!(
        json,
        serde_json::json!({"and": [
            {"compare": {"field": "value_tier", "op": "in", "value": ["gold", "vip"]}},
            {"not": {"compare": {"field": "tag", "op": "=", "value": "staff"}}},
            {"compare": {"field": "time_in_stage", "op": ">", "value": {"duration": "14d"}}},
        ]})
    );
    assert_eq!(Filter::from_json(&json), Ok(f));
    let events = serde_json::json!({"events": {
        "aggregate": "sum", "type": "order.completed", "field": "total", "last": "365d", "op": ">", "value": 1000
    }});
    assert_eq!(Filter::from_json(&events), Ok(p("sum(order.completed.total, last 365d) > 1000")));
    let typo = serde_json::json!({"occurred": {"occurred": true, "type": "visit.checked_in", "lats": "3d"}});
    assert!(Filter::from_json(&typo).is_err());
}

// --- properties ---

/// Tokens that reach deep into the grammar when strung together at random.
#[rustfmt::skip]
const VOCAB: &[&str] = &[
    "tag", "email", "birthday", "order_count", "time_in_stage", "custom.x", "last_order",
    "=", "==", "!=", "<>", "<", "<=", ">", ">=", "in", "not", "and", "or", "&&", "||", "!", "(", ")", ",", ".",
    "is", "set", "today", "within", "last", "next", "anniversary", "turns", "before", "after", "ago",
    "has", "no", "where", "segment", "related", "subscribed", "unsubscribed", "count", "sum", "avg", "first",
    "contains", "starts_with", "ends_with", "true", "false",
    "\"a\"", "\"2026-01-01\"", "\"\\u00e9\"", "\"", "\\", "5", "-2.5", "1e5", "21", "90d", "3mo", "90x",
    "email.opened", "order.completed", "order.completed.total", "visit.checked_in", "items.category", "child",
    "#", "\n", "é", "😀",
    // Whole conditions, so that more strings get past the first few tokens.
    "tag = \"a\"", "count(email.opened, last 90d) >= 5", "has visit.checked_in", "related(child)",
    "birthday is today", "in segment \"s\"", "no order.completed where items.category = \"shoes\"",
];

fn vocab_text() -> impl Strategy<Value = String> {
    let tokens = prop_oneof![vec(select(VOCAB), 0..8), vec(select(VOCAB), 0..40)];
    (tokens, any::<bool>()).prop_map(|(tokens, glued)| tokens.join(if glued { "" } else { " " }))
}

/// Whatever parses is valid, prints canonically, and reads back the same; errors point inside
/// the text.
fn check_any(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Ok(f) => {
            prop_assert_eq!(f.check(), Ok(()));
            let printed = f.to_string();
            prop_assert_eq!(parse(&printed), Ok(f), "printed as {}", printed);
        }
        Err(e) => {
            let lines = u32::try_from(text.split('\n').count()).unwrap_or(u32::MAX);
            prop_assert!(e.line >= 1 && e.line <= lines, "{e}");
            let line_len = text.split('\n').nth(e.line as usize - 1).map_or(0, |l| l.chars().count());
            prop_assert!(e.column >= 1 && e.column as usize <= line_len + 1, "{e}");
            prop_assert!(!e.expected.is_empty() && !e.found.is_empty());
        }
    }
    Ok(())
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn ops(list: &[CompareOp]) -> impl Strategy<Value = CompareOp> + use<> {
    select(list.to_vec())
}

const NUMERIC: &[CompareOp] = &[CompareOp::Eq, CompareOp::Ne, CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge];
const TEXTUAL: &[CompareOp] = &[CompareOp::Eq, CompareOp::Ne, CompareOp::Contains, CompareOp::StartsWith, CompareOp::EndsWith];
const LISTS: &[CompareOp] = &[CompareOp::In, CompareOp::NotIn];

fn builtin(pred: fn(FieldKind) -> bool) -> impl Strategy<Value = String> {
    select(FIELDS.iter().filter(|f| pred(f.kind)).map(|f| f.name.to_string()).collect::<Vec<_>>())
}

fn custom_field() -> impl Strategy<Value = String> {
    ("(company\\.)?custom", "[a-z][a-z0-9_]{0,10}").prop_map(|(prefix, key)| format!("{prefix}.{key}"))
}

fn any_field() -> impl Strategy<Value = String> {
    prop_oneof![builtin(|_| true), custom_field()]
}

/// Text with the characters that stress quoting and escaping.
fn any_text() -> impl Strategy<Value = String> {
    let tricky = prop_oneof![
        Just('"'),
        Just('\\'),
        Just('/'),
        Just('\n'),
        Just('\t'),
        Just('\u{1}'),
        Just('\u{7f}'),
        Just('é'),
        Just('😀'),
        Just('\u{2028}'),
        Just(' '),
        Just('#'),
        Just(')'),
        any::<char>(),
    ];
    prop_oneof![any::<String>(), vec(tricky, 0..8).prop_map(String::from_iter), "[a-z ]{0,8}"]
}

fn non_blank() -> impl Strategy<Value = String> {
    any_text().prop_filter("not blank", |s| !s.trim().is_empty())
}

fn any_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<i32>().prop_map(f64::from),
        (any::<i32>(), 1..1000i32).prop_map(|(a, b)| f64::from(a) / f64::from(b)),
        any::<f64>().prop_filter("finite", |n| n.is_finite()),
        select(vec![0.0, -0.0, f64::MAX, f64::MIN, f64::MIN_POSITIVE, 5e-324, 1e21, -1e-7, 0.1]),
    ]
}

fn any_span() -> impl Strategy<Value = Span> {
    let units = vec![SpanUnit::Hours, SpanUnit::Days, SpanUnit::Weeks, SpanUnit::Months, SpanUnit::Years];
    (prop_oneof![0..=MAX_SPAN_AMOUNT, Just(MAX_SPAN_AMOUNT), 0..100u32], select(units))
        .prop_map(|(amount, unit)| Span { amount, unit })
}

fn scalar() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<bool>().prop_map(Literal::Bool),
        any_number().prop_map(Literal::Number),
        any_text().prop_map(Literal::Text),
        any_span().prop_map(|duration| Literal::Duration(DurationLiteral { duration })),
    ]
}

/// An operator with a value that suits it, for custom fields and payloads (typed elsewhere).
fn op_and_value() -> impl Strategy<Value = (CompareOp, Literal)> {
    prop_oneof![
        (ops(NUMERIC), scalar()),
        (ops(&TEXTUAL[2..]), any_text().prop_map(Literal::Text)),
        (ops(LISTS), vec(scalar(), 1..4).prop_map(Literal::List)),
    ]
}

fn compare() -> impl Strategy<Value = Compare> {
    let text_field = || builtin(|k| matches!(k, FieldKind::Text | FieldKind::TextSet));
    let number = || builtin(|k| k == FieldKind::Number);
    let texts = || vec(any_text().prop_map(Literal::Text), 1..4).prop_map(Literal::List);
    let numbers = || vec(any_number().prop_map(Literal::Number), 1..4).prop_map(Literal::List);
    let duration = any_span().prop_map(|duration| Literal::Duration(DurationLiteral { duration }));
    prop_oneof![
        (text_field(), ops(TEXTUAL), any_text().prop_map(Literal::Text)),
        (text_field(), ops(LISTS), texts()),
        (number(), ops(NUMERIC), any_number().prop_map(Literal::Number)),
        (number(), ops(LISTS), numbers()),
        (builtin(|k| k == FieldKind::Duration), ops(NUMERIC), duration),
        (custom_field(), op_and_value()).prop_map(|(f, (op, v))| (f, op, v)),
    ]
    .prop_map(|(field, op, value)| Compare { field, op, value })
}

/// A key of a custom event type, including words that are keywords elsewhere.
fn type_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,6}",
        select(vec!["and", "or", "in", "where", "last", "has", "no", "not"]).prop_map(String::from)
    ]
}

/// A selectable event type; `parts` bounds the parts of a custom one.
fn event_type(parts: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop_oneof![
        select(crate::event::BUILT_IN_TYPES.to_vec()).prop_map(String::from),
        select(crate::event::SYSTEM_TYPES.to_vec()).prop_map(String::from),
        vec(type_part(), parts)
            .prop_map(|p| p.join("."))
            .prop_filter("a custom type", |t| crate::event::check_selectable_type(t).is_ok()),
    ]
}

fn payload_path() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        "[A-Za-z_][A-Za-z0-9_]{0,6}",
        select(vec!["in", "and", "AND", "Or", "where", "last", "not", "is", "true"]).prop_map(String::from),
    ];
    vec(key, 1..4).prop_map(|p| p.join("."))
}

fn payload_conditions() -> impl Strategy<Value = Vec<PayloadCondition>> {
    vec((payload_path(), op_and_value()).prop_map(|(path, (op, value))| PayloadCondition { path, op, value }), 0..3)
}

fn selector() -> impl Strategy<Value = EventSelector> {
    (event_type(2..4), payload_conditions()).prop_map(|(event_type, conditions)| EventSelector { event_type, conditions })
}

fn any_date() -> impl Strategy<Value = NaiveDate> {
    let days = NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce();
    let recent = NaiveDate::from_ymd_opt(1900, 1, 1).map_or(0, |d| d.num_days_from_ce())..800_000;
    prop_oneof![days, recent].prop_map(|d| NaiveDate::from_num_days_from_ce_opt(d).unwrap_or_default())
}

fn date_test() -> impl Strategy<Value = DateTest> {
    let bound = || {
        prop_oneof![
            any_span().prop_map(DateBound::Ago),
            any_span().prop_map(DateBound::FromNow),
            any_date().prop_map(DateBound::On),
        ]
    };
    prop_oneof![
        any_span().prop_map(DateTest::WithinLast),
        any_span().prop_map(DateTest::WithinNext),
        any_span().prop_map(DateTest::AnniversaryWithinNext),
        (0..=150u32, any_span()).prop_map(|(age, within)| DateTest::TurnsWithinNext { age, within }),
        bound().prop_map(DateTest::Before),
        bound().prop_map(DateTest::After),
        Just(DateTest::Today),
    ]
}

fn date_source() -> impl Strategy<Value = DateSource> {
    prop_oneof![
        builtin(|k| matches!(k, FieldKind::Time | FieldKind::Birthday)).prop_map(DateSource::Field),
        custom_field().prop_map(DateSource::Field),
        selector().prop_map(DateSource::Last),
        selector().prop_map(DateSource::First),
    ]
}

fn events() -> impl Strategy<Value = EventMetric> {
    let aggregate = select(vec![Aggregate::Sum, Aggregate::Avg, Aggregate::Min, Aggregate::Max]);
    // Other aggregates take the first two parts as the type, so their types have two.
    let counted = (Just(Aggregate::Count), event_type(2..4), Just(None));
    let summed = (aggregate, event_type(2..3), payload_path().prop_map(Some));
    (prop_oneof![counted, summed], payload_conditions(), proptest::option::of(any_span()), ops(NUMERIC), any_number()).prop_map(
        |((aggregate, event_type, field), conditions, last, op, value)| EventMetric {
            aggregate,
            events: EventSelector { event_type, conditions },
            field,
            last,
            op,
            value,
        },
    )
}

fn relation_kind() -> impl Strategy<Value = String> {
    prop_oneof![non_blank(), select(KEYWORDS.to_vec()).prop_map(String::from), "[a-z_][a-z0-9_]{0,8}"]
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        compare().prop_map(Filter::Compare),
        (any_field(), any::<bool>()).prop_map(|(field, set)| Filter::IsSet(IsSet { field, set })),
        (date_source(), date_test()).prop_map(|(date, test)| Filter::Date(DateCondition { date, test })),
        events().prop_map(Filter::Events),
        (any::<bool>(), selector(), proptest::option::of(any_span()))
            .prop_map(|(occurred, events, last)| Filter::Occurred(Occurred { occurred, events, last })),
        (relation_kind(), proptest::option::of(date_test()))
            .prop_map(|(kind, birthday)| Filter::Related(Related { kind, birthday })),
        non_blank().prop_map(Filter::Segment),
        (non_blank(), any::<bool>()).prop_map(|(topic, subscribed)| Filter::Subscription(Subscription { topic, subscribed })),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 2..4).prop_map(Filter::And),
            vec(inner.clone(), 2..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_any(&text)?;
    }

    #[test]
    fn token_soup_never_panics(text in vocab_text()) {
        check_any(&text)?;
    }

    #[test]
    fn damaged_filters_never_panic(f in filter(), cut in any::<prop::sample::Index>(), insert in select(VOCAB)) {
        let text = f.to_string();
        let at = text.char_indices().map(|(i, _)| i).nth(cut.index(text.chars().count().max(1))).unwrap_or(text.len());
        check_any(&text[..at])?;
        check_any(&format!("{}{insert}{}", &text[..at], &text[at..]))?;
    }

    #[test]
    fn valid_filters_round_trip(f in filter()) {
        prop_assert_eq!(f.check(), Ok(()));
        let text = f.to_string();
        prop_assert_eq!(parse(&text), Ok(f.clone()), "text: {}", text);

        let json = serde_json::to_value(&f).map_err(fail)?;
        prop_assert_eq!(Filter::from_json(&json), Ok(f.clone()), "json: {}", json);

        // text → JSON → text
        let json = serde_json::to_value(parse(&text).map_err(fail)?).map_err(fail)?;
        prop_assert_eq!(Filter::from_json(&json).map_err(fail)?.to_string(), text);
    }
}
