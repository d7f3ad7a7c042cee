use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

fn source(name: &str, locale: Option<&str>, subject: &str, html: Option<&str>, text: &str) -> TemplateSource {
    TemplateSource {
        name: name.into(),
        locale: locale.map(Into::into),
        subject: subject.into(),
        html: html.map(Into::into),
        text: text.into(),
        layout: None,
    }
}

fn layout() -> LayoutSource {
    LayoutSource {
        name: "brand".into(),
        html: "<html><body><h1>{{ business.name }}</h1>{{ content }}<footer>{{ business.address }}</footer></body></html>".into(),
        text: "{{ content }}\n--\n{{ business.name }}, {{ business.address }}".into(),
    }
}

fn context() -> serde_json::Value {
    json!({
        "contact": {"first_name": "Ana", "last_name": null, "locale": "pt-BR", "time_zone": "America/Sao_Paulo",
                    "custom": {"shoe_size": 38}},
        "profile": {"order_count": 3, "last_order_at": "2025-03-01T02:30:00Z"},
        "recommendations": [
            {"sku": "A1", "name": "Tea <green>", "category": "tea", "reason": "you liked matcha"},
            {"sku": "B2", "name": "Cups & saucers", "category": "kitchen", "reason": "goes with tea"}
        ],
        "business": {"name": "Chá & Co", "address": "Rua 1, Lisboa"},
        "unsubscribe_url": "https://shop.example/u/abc"
    })
}

fn problems_of(t: &TemplateSource) -> Vec<TemplateProblem> {
    check(t, &[layout()], &ContextShape::standard()).expect_err("problems expected")
}

#[test]
fn renders_through_the_layout_and_picks_the_locale() {
    let mut default = source("welcome", None, "Welcome, {{ contact.first_name }}", Some("<p>Welcome</p>"), "Welcome");
    default.layout = Some("brand".into());
    let mut pt = source("welcome", Some("pt"), "Olá {{ contact.first_name }}", Some("<p>Olá</p>"), "Olá");
    pt.layout = Some("brand".into());
    let pt_br = source("welcome", Some("pt-BR"), "Oi {{ contact.first_name }}", None, "Oi, tudo bem?");
    let de = source("welcome", Some("de"), "Hallo", None, "Hallo");
    let templates = Templates::new(vec![default, pt, pt_br, de], vec![layout()]).unwrap();

    let ctx = context();
    let exact = templates.render("welcome", Some("pt-BR"), &ctx).unwrap();
    assert_eq!(exact.subject, "Oi Ana");
    assert_eq!(exact.text, "Oi, tudo bem?");
    assert_eq!(exact.html, None, "that variant is text only");

    let language = templates.render("welcome", Some("pt_PT"), &ctx).unwrap();
    assert_eq!(language.subject, "Olá Ana");
    assert_eq!(language.text, "Olá\n--\nChá & Co, Rua 1, Lisboa");
    assert_eq!(
        language.html.as_deref(),
        Some("<html><body><h1>Chá &amp; Co</h1><p>Olá</p><footer>Rua 1, Lisboa</footer></body></html>"),
        "the body goes in unescaped, the layout's own values escaped"
    );
    assert_eq!(templates.render("welcome", Some("de-AT"), &ctx).unwrap().subject, "Hallo");
    assert_eq!(templates.render("welcome", Some("fr"), &ctx).unwrap().subject, "Welcome, Ana");
    assert_eq!(templates.render("welcome", None, &ctx).unwrap().subject, "Welcome, Ana");
    assert_eq!(templates.render("welcome", Some("not a locale!"), &ctx).unwrap().subject, "Welcome, Ana");
    assert_eq!(templates.render("nope", None, &ctx), Err(RenderError::NotFound("nope".into())));

    // Only regional variants and no default: another region of the language, else the first.
    let only = Templates::new(vec![source("t", Some("pt-BR"), "br", None, ""), source("t", Some("es"), "es", None, "")], vec![])
        .unwrap();
    assert_eq!(only.render("t", Some("pt"), &ctx).unwrap().subject, "br");
    assert_eq!(only.render("t", Some("pt-PT"), &ctx).unwrap().subject, "br");
    assert_eq!(only.render("t", Some("fr"), &ctx).unwrap().subject, "es");
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let body = "{% for r in recommendations %}{{ r.name }} ({{ r.reason }}){% if not loop.last %}, {% endif %}{% endfor %}";
    let t = source("recs", None, "For you: {{ recommendations[0].name }}", Some(&format!("<p>{body}</p>")), body);
    let templates = Templates::new(vec![t], vec![]).unwrap();
    let out = templates.render("recs", None, &context()).unwrap();
    assert_eq!(out.subject, "For you: Tea <green>");
    assert_eq!(out.text, "Tea <green> (you liked matcha), Cups & saucers (goes with tea)");
    assert_eq!(out.html.as_deref(), Some("<p>Tea &lt;green&gt; (you liked matcha), Cups &amp; saucers (goes with tea)</p>"));
}

#[test]
fn the_subject_is_one_line() {
    let t = source("s", None, "Hi {{ contact.first_name }}\r\n  {{ coupon.code }}", None, "x");
    let templates = Templates::new(vec![t], vec![]).unwrap();
    let ctx = json!({"contact": {"first_name": "Eve\r\nBcc: victim@example.com"}, "coupon": {"code": "SAVE\n10"}});
    let out = templates.render("s", None, &ctx).unwrap();
    assert_eq!(out.subject, "Hi Eve Bcc: victim@example.com SAVE 10");
    assert!(!out.subject.contains(['\r', '\n']));
}

#[test]
fn missing_optional_values_render_empty() {
    let t = source(
        "m",
        None,
        "Hi {{ contact.first_name|default(\"there\") }}{{ contact.last_name }}",
        Some("<p>{{ owner.name }}{{ contact.custom.favourite }}</p>"),
        "{{ contact.last_name|default(\"friend\") }} [{{ coupon.code }}] {% for r in recommendations %}x{% endfor %}",
    );
    let templates = Templates::new(vec![t], vec![]).unwrap();
    let out = templates.render("m", None, &json!({"contact": {"first_name": null, "last_name": null}})).unwrap();
    assert_eq!(out.subject, "Hi there");
    assert_eq!(out.text, "friend [] ");
    assert_eq!(out.html.as_deref(), Some("<p></p>"));
}

#[test]
fn unknown_names_are_reported_with_line_and_suggestion() {
    let html = "<p>Hi {{ contact.first_name }}</p>\n\
                {% for r in recommendations %}\n\
                <li>{{ r.nmae }} {{ loop.indx }}</li>\n\
                {% endfor %}\n\
                <p>{{ contcat.email }} {{ contact.custom.shoe_size }}</p>";
    let t = source(
        "promo",
        None,
        "{{ contact.frist_name }}",
        Some(html),
        "Line one\n{{ profile.order_count|monye('EUR') }}\n{{ contact.first_name.upper() }}\n{{ recommendations.name }}",
    );
    let problems = problems_of(&t);
    let found: Vec<(&str, Option<usize>, &str)> = problems.iter().map(|p| (p.part, p.line, p.message.as_str())).collect();
    assert_eq!(
        found,
        [
            ("subject", Some(1), "unknown variable `contact.frist_name`; did you mean `contact.first_name`?"),
            ("html", Some(3), "unknown variable `r.nmae`; did you mean `r.name`?"),
            ("html", Some(3), "`loop` has no attribute `indx`; did you mean `loop.index`?"),
            ("html", Some(5), "unknown variable `contcat`; did you mean `contact`?"),
            ("html", Some(5), "unknown variable `contact.custom.shoe_size`"),
            ("text", Some(2), "unknown filter `monye`; did you mean `money`?"),
            (
                "text",
                Some(3),
                "`contact.first_name.upper()`: values have no methods here; use a filter, e.g. `contact.first_name|upper`"
            ),
            ("text", Some(4), "`recommendations` is a list and has no attribute `name`; loop over it with {% for item in … %}"),
        ]
    );
    assert_eq!(
        problems[0].to_string(),
        "promo subject, line 1: unknown variable `contact.frist_name`; did you mean `contact.first_name`?"
    );

    // Declaring the custom field makes it known; `is defined` probes are not mistakes.
    let known = ContextShape::standard().with_custom_fields(["shoe_size"]);
    let fine = source(
        "ok",
        None,
        "{% set n = contact.first_name|default('there') %}Hi {{ n|title }}",
        Some("{% if contact.custom.vip is defined %}VIP{% endif %}{{ contact.custom.shoe_size }}"),
        "{% for r in recommendations|sort(attribute='name') %}{{ loop.index }}. {{ r.name }}{% else %}none{% endfor %}\n\
         {% with c = coupon %}{{ c.code }}{% endwith %} {{ (recommendations|first).sku }} {{ profile.revenue.EUR }}\n\
         {{ profile.last_order_at|date('%d %B') }} {{ 1250|money('EUR') }} {{ range(3)|join(',') }}",
    );
    assert_eq!(check(&fine, &[], &known), Ok(()));
}

#[test]
fn checking_covers_syntax_layouts_and_locales() {
    let mut t = source("bad", Some("pt_BR!"), "{{ contact.first_name", None, "{% include 'x' %}");
    t.layout = Some("brnad".into());
    let problems = check(&t, &[layout()], &ContextShape::standard()).unwrap_err();
    let parts: Vec<&str> = problems.iter().map(|p| p.part).collect();
    assert_eq!(parts, ["locale", "subject", "text", "layout"], "{problems:#?}");
    assert_eq!(problems[1].line, Some(1));
    assert!(problems[1].message.starts_with("syntax error"), "{}", problems[1].message);
    assert!(problems[2].message.contains("include"), "no loader, no include: {}", problems[2].message);
    assert_eq!(problems[3].message, "there is no layout named `brnad`; did you mean `brand`?");

    let mut uses = source("ok", None, "s", Some("<p>x</p>"), "x");
    uses.layout = Some("brand".into());
    let mut broken = layout();
    broken.name = "brand".into();
    broken.html = "<body>\n{{ busines.name }}</body>".into();
    let problems = check(&uses, &[broken], &ContextShape::standard()).unwrap_err();
    let found: Vec<_> = problems.iter().map(|p| (p.template.as_str(), p.part, p.line, p.message.as_str())).collect();
    assert_eq!(
        found,
        [
            ("brand", "layout.html", Some(2), "unknown variable `busines`; did you mean `business`?"),
            ("brand", "layout.html", None, NO_CONTENT),
        ]
    );
}

#[test]
fn loading_reports_every_broken_source_at_once() {
    let mut missing = source("a", None, "ok", None, "ok");
    missing.layout = Some("nope".into());
    let templates = vec![
        source("a", Some("de"), "{% if %}", None, "ok"),
        source("a", Some("DE"), "dup", None, "ok"),
        missing,
        source("b", None, "ok", Some("<p>\n\n{{ 1 + }}</p>"), "ok"),
    ];
    let no_content = LayoutSource { name: "plain".into(), html: "<p>hi</p>".into(), text: "{{ content }}".into() };
    let problems = Templates::new(templates, vec![no_content]).unwrap_err();
    let found: Vec<_> = problems.iter().map(|p| (p.template.as_str(), p.part, p.line)).collect();
    assert_eq!(
        found,
        [
            ("a", "subject", Some(1)),
            ("a", "locale", None),
            ("a", "layout", None),
            ("b", "html", Some(3)),
            ("plain", "layout.html", None)
        ],
        "{problems:#?}"
    );
}

#[test]
fn a_loop_bomb_runs_out_of_fuel() {
    let bomb = "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}";
    let templates = Templates::new(vec![source("bomb", None, "s", None, bomb)], vec![]).unwrap();
    let started = Instant::now();
    let err = templates.render("bomb", None, &json!({})).unwrap_err();
    assert_eq!(err, RenderError::TooMuchWork { part: "text", fuel: Limits::default().fuel });
    assert!(started.elapsed() < Duration::from_secs(5), "stopped after {:?}", started.elapsed());
    assert!(err.to_string().contains("loop"), "{err}");

    // Building a huge string is work too, even without a loop.
    let doubling = (0..40).map(|i| format!("{{% set s{} = s{i} ~ s{i} %}}", i + 1)).collect::<String>();
    let memory = format!("{{% set s0 = 'xxxxxxxxxxxxxxxx' %}}{doubling}{{{{ s40|length }}}}");
    let templates = Templates::new(vec![source("mem", None, "s", None, &memory)], vec![]).unwrap();
    assert!(matches!(templates.render("mem", None, &json!({})), Err(RenderError::TooMuchWork { .. })));
}

#[test]
fn output_is_capped() {
    let limits = Limits { max_output_bytes: 10_000, ..Limits::default() };
    let big = "{% for i in range(5000) %}0123456789{% endfor %}";
    let mut wrapped = source("wrapped", None, "s", None, "{% for i in range(900) %}0123456789{% endfor %}");
    wrapped.layout = Some("pad".into());
    let pad = LayoutSource { name: "pad".into(), html: "{{ content }}".into(), text: "{{ content }}{{ content }}".into() };
    let templates = Templates::with_limits(vec![source("big", None, "s", None, big), wrapped], vec![pad], limits).unwrap();
    assert_eq!(templates.render("big", None, &json!({})), Err(RenderError::TooLarge { part: "text", limit: 10_000 }));
    assert_eq!(templates.render("wrapped", None, &json!({})), Err(RenderError::TooLarge { part: "layout.text", limit: 10_000 }));
}

#[test]
fn dates_and_money_follow_the_contact() {
    let text = "{{ profile.last_order_at|date }}|{{ profile.last_order_at|datetime }}|{{ profile.last_order_at|date('%Y-%m-%d %H:%M %Z') }}|\
                {{ 123450|money('EUR') }}|{{ contact.custom.budget|money }}|{{ contact.birthday|date }}|{{ nothing|money('EUR') }}";
    let templates = Templates::new(
        vec![
            source("d", None, "s", None, text),
            source("d", Some("de"), "s", None, text),
            source("bad", None, "{{ 5|date('%Q') }}", None, ""),
        ],
        vec![],
    )
    .unwrap();
    let mut ctx = context();
    ctx["contact"]["custom"]["budget"] = json!({"amount_minor": 5000, "currency": "USD"});
    ctx["contact"]["birthday"] = json!("1990-07-14");
    // 02:30 UTC on 1 March is still 28 February in São Paulo (UTC-3).
    ctx["contact"]["locale"] = json!("en-US");
    let en = templates.render("d", Some("en-US"), &ctx).unwrap().text;
    assert_eq!(en, "February 28, 2025|February 28, 2025 11:30 PM|2025-02-28 23:30 -03|€1,234.50|$50.00|July 14, 1990|");
    let de = templates.render("d", Some("de-DE"), &ctx).unwrap().text;
    assert_eq!(de, "28.02.2025|28.02.2025 23:30|2025-02-28 23:30 -03|1.234,50\u{a0}€|50,00\u{a0}$|14.07.1990|");
    ctx["contact"]["time_zone"] = json!("Not/AZone");
    let utc = templates.render("d", Some("en"), &ctx).unwrap().text;
    assert!(utc.starts_with("March 1, 2025|March 1, 2025 2:30 AM|"), "{utc}");

    let err = templates.render("bad", None, &ctx).unwrap_err();
    assert!(matches!(&err, RenderError::Failed { part: "subject", line: Some(1), message } if message.contains("%Q")), "{err}");
    let problems = problems_of(&source("bad", None, "{{ profile.last_order_at|date('%Q') }}", None, ""));
    assert!(problems[0].message.contains("not a valid date format"), "{problems:?}");
}

#[test]
fn templates_are_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Templates>();
}
