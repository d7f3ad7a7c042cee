//! Message templates: a subject, a plain-text body and optionally an HTML body, written in
//! Jinja (minijinja), wrapped in a reusable layout and picked by the contact's locale.
//!
//! The rules a template author and the code around it can rely on:
//!
//! - **Sandbox.** Templates see only the context they are given: there is no loader, so no
//!   `include`, `import` or `extends` (those tags are not even compiled in), no file or network
//!   access, and no methods on values. Each render of each part has a work budget (minijinja's
//!   fuel, which also bounds the memory a template can build), an output cap and a recursion
//!   limit ([`Limits`]); past one, rendering stops with a [`RenderError`] saying which.
//! - **Layouts** wrap the message with `{{ content }}`: the layout's HTML gets the rendered HTML
//!   body, its text the rendered text body; the rest of the context is there too (for a footer's
//!   `business.address` and `unsubscribe_url`). A subject is never wrapped.
//! - **Escaping.** The HTML body and HTML layout escape every value (`|safe` opts out); the
//!   subject and text do not. A subject is one line: line breaks become spaces, so no value can
//!   add a mail header.
//! - **Missing values.** [`check`] is strict: it walks every branch and reports each name the
//!   [`ContextShape`] does not know, with its line and the near miss it probably meant. A render
//!   is lenient: a missing optional value (no first name, no owner) renders as nothing, and JSON
//!   `null` counts as missing, so `{{ contact.first_name|default("there") }}` works. A message
//!   already queued is never lost to a value that happens to be empty for one contact.
//! - **Locales.** Several sources may share a name with different BCP 47 locales. For `pt-BR`
//!   the pick is `pt-BR`, then `pt`, then another `pt-*`, then the source without a locale, then
//!   (so a send never fails on a missing translation) the first one there is.
//! - **Whitespace.** A block tag's own line break is dropped and the indentation before it too
//!   (`trim_blocks`, `lstrip_blocks`), so `{% for %}` lines leave no blank lines in a text body.
//!
//! Filters beyond minijinja's builtins (`default`, `upper`, `title`, `join`, …): `date` and
//! `datetime` (in the contact's time zone, formatted for the locale; an optional strftime
//! format) and `money` (minor units: `{{ 123450|money("EUR") }}` → `€1,234.50`, `1.234,50 €`
//! in German).

mod check;
mod filters;
mod html;
mod shape;

use std::collections::HashMap;
use std::fmt;
use std::io;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

pub use html::{add_open_pixel, rewrite_links, rewrite_links_and_add_pixel};
pub use shape::{ContextShape, Shape};

/// One message template as the business wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSource {
    pub name: String,
    /// BCP 47 (`de`, `pt-BR`); `None` is the default for every other locale.
    pub locale: Option<String>,
    pub subject: String,
    /// `None` sends plain text only.
    pub html: Option<String>,
    pub text: String,
    /// The name of a [`LayoutSource`] to wrap the bodies in.
    pub layout: Option<String>,
}

/// A header and footer shared by many templates; `{{ content }}` marks where the message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutSource {
    pub name: String,
    pub html: String,
    pub text: String,
}

/// A message ready to hand to a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, trimmed.
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Something wrong with a template, found when it is saved or loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// The template's name (or the layout's, for a problem in a layout's source).
    pub template: String,
    /// `name`, `locale`, `subject`, `html`, `text`, `layout` (the layout named does not exist),
    /// `layout.html` or `layout.text` (a problem in that layout's source).
    pub part: &'static str,
    /// 1-based, in that part's source.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.template, self.part)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a message could not be rendered. `part` is as in [`TemplateProblem`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("there is no template named `{0}`")]
    NotFound(String),
    #[error("{part}: the template did more work than allowed (fuel {fuel}); look for a loop that runs too long")]
    TooMuchWork { part: &'static str, fuel: u64 },
    #[error("{part}: the output is larger than {limit} bytes")]
    TooLarge { part: &'static str, limit: usize },
    #[error("{part}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Failed { part: &'static str, line: Option<usize>, message: String },
}

/// Bounds on what one template may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// minijinja fuel per part per render: about one unit per instruction and per 64 bytes of
    /// data built. A long newsletter with a dozen recommendations uses a few thousand.
    pub fuel: u64,
    /// Bytes of output per part per render (a layout's output included).
    pub max_output_bytes: usize,
    /// Bytes of source per part.
    pub max_source_bytes: usize,
    /// Nesting depth of loops and conditions while rendering.
    pub max_recursion: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { fuel: 1_000_000, max_output_bytes: 1 << 20, max_source_bytes: 256 << 10, max_recursion: 100 }
    }
}

/// The filters offered as suggestions for a misspelt one (all exist in this build).
const FILTER_NAMES: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "capitalize",
    "count",
    "date",
    "datetime",
    "default",
    "dictsort",
    "escape",
    "first",
    "float",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "money",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "trim",
    "unique",
    "upper",
    "wordcount",
];

fn environment(limits: &Limits) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| if name.ends_with("/html") { AutoEscape::Html } else { AutoEscape::None });
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.max_recursion);
    if let Ok(syntax) = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build() {
        env.set_syntax(syntax);
    }
    // A `none` that slipped through (in a list, say) prints as nothing, never as "none".
    env.set_formatter(|out, state, value| {
        minijinja::escape_formatter(out, state, if value.is_none() { &Value::UNDEFINED } else { value })
    });
    env.add_filter("date", filters::date);
    env.add_filter("datetime", filters::datetime);
    env.add_filter("money", filters::money);
    env
}

/// `de_AT`, ` PT-br ` → `de-at`, `pt-br`; `None` when it is not a language tag.
fn normalise_locale(raw: &str) -> Option<String> {
    let tag = raw.trim().replace('_', "-").to_ascii_lowercase();
    let mut parts = tag.split('-');
    let language = parts.next()?;
    let language_ok = (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_lowercase());
    let rest_ok = parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    (language_ok && rest_ok).then_some(tag)
}

fn language(locale: &str) -> &str {
    locale.split('-').next().unwrap_or(locale)
}

/// A subject on one line: every line break or other control character becomes a space, runs
/// of blanks collapse, and the ends are trimmed.
fn one_line(subject: &str) -> String {
    let spaced = subject.replace(|c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}', " ");
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// JSON to template values. `null` in an object is left out, so it reads as missing.
fn to_value(json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => Value::from(items.iter().map(to_value).collect::<Vec<_>>()),
        J::Object(map) => Value::from_pairs(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.as_str(), to_value(v)))),
    }
}

/// An `io::Write` into memory that refuses to grow past `limit` bytes.
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.len() + bytes.len() > self.limit {
            self.over = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn describe(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

#[derive(Debug)]
struct Variant {
    /// Normalised (`pt-br`).
    locale: Option<String>,
    /// The names its parts are compiled under in the environment.
    subject: String,
    text: String,
    html: Option<String>,
    layout: Option<usize>,
}

/// A set of compiled templates and layouts, ready to render. Cheap to share between threads.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    variants: HashMap<String, Vec<Variant>>,
    limits: Limits,
}

impl Templates {
    /// Compiles every template and layout with the default [`Limits`]. Fails with every syntax
    /// error, duplicate, bad locale and missing layout at once. Names are not checked against a
    /// context here (a deleted custom field must not stop sending): [`check`] does that on save.
    pub fn new(templates: Vec<TemplateSource>, layouts: Vec<LayoutSource>) -> Result<Self, Vec<TemplateProblem>> {
        Self::with_limits(templates, layouts, Limits::default())
    }

    pub fn with_limits(
        templates: Vec<TemplateSource>,
        layouts: Vec<LayoutSource>,
        limits: Limits,
    ) -> Result<Self, Vec<TemplateProblem>> {
        let mut env = environment(&limits);
        let mut problems = Vec::new();
        let mut layout_ids = HashMap::new();
        for (i, layout) in layouts.into_iter().enumerate() {
            let mut found = layout_problems(&layout, &limits);
            if layout_ids.insert(layout.name.clone(), i).is_some() {
                found.push(problem(&layout.name, "layout", None, format!("two layouts are named `{}`", layout.name)));
            }
            for (part, name, source) in
                [("layout.html", format!("l{i}/html"), layout.html), ("layout.text", format!("l{i}/text"), layout.text)]
            {
                if let Err(e) = env.add_template_owned(name, source) {
                    found.push(problem(&layout.name, part, e.line(), describe(&e)));
                }
            }
            problems.extend(found);
        }
        let mut variants: HashMap<String, Vec<Variant>> = HashMap::new();
        for (i, t) in templates.into_iter().enumerate() {
            let mut found = source_problems(&t, &limits);
            let locale = t.locale.as_deref().and_then(normalise_locale);
            let bad_locale = t.locale.is_some() && locale.is_none();
            let same = !bad_locale && variants.get(&t.name).is_some_and(|vs| vs.iter().any(|v| v.locale == locale));
            if same {
                let which = t.locale.as_deref().map(|l| format!("locale `{l}`")).unwrap_or_else(|| "no locale".into());
                found.push(problem(&t.name, "locale", None, format!("another `{}` template has {which}", t.name)));
            }
            let layout = match &t.layout {
                None => None,
                Some(name) => {
                    let id = layout_ids.get(name).copied();
                    if id.is_none() {
                        found.push(unknown_layout(&t.name, name, layout_ids.keys().map(String::as_str)));
                    }
                    id
                }
            };
            let variant = Variant {
                locale,
                subject: format!("t{i}/subject"),
                text: format!("t{i}/text"),
                html: t.html.is_some().then(|| format!("t{i}/html")),
                layout,
            };
            let parts = [("subject", Some(&variant.subject), Some(t.subject)), ("text", Some(&variant.text), Some(t.text))];
            for (part, name, source) in parts.into_iter().chain([("html", variant.html.as_ref(), t.html)]) {
                if let (Some(name), Some(source)) = (name, source)
                    && let Err(e) = env.add_template_owned(name.clone(), source)
                {
                    found.push(problem(&t.name, part, e.line(), describe(&e)));
                }
            }
            problems.extend(found);
            variants.entry(t.name).or_default().push(variant);
        }
        for (name, &i) in &layout_ids {
            for (part, id) in [("layout.html", format!("l{i}/html")), ("layout.text", format!("l{i}/text"))] {
                if let Ok(t) = env.get_template(&id)
                    && !t.undeclared_variables(false).contains("content")
                {
                    problems.push(problem(name, part, None, NO_CONTENT.into()));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for list in variants.values_mut() {
            list.sort_by(|a, b| a.locale.cmp(&b.locale));
        }
        Ok(Templates { env, variants, limits })
    }

    /// Renders the best variant of `name` for `locale` (the contact's) with `context`, a JSON
    /// object shaped like [`ContextShape::standard`].
    pub fn render(&self, name: &str, locale: Option<&str>, context: &serde_json::Value) -> Result<Rendered, RenderError> {
        let wanted = locale.and_then(normalise_locale);
        let variant = self
            .variants
            .get(name)
            .and_then(|vs| pick(vs, wanted.as_deref()))
            .ok_or_else(|| RenderError::NotFound(name.to_owned()))?;
        let mut pairs: Vec<(String, Value)> = match context {
            serde_json::Value::Object(map) => {
                map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), to_value(v))).collect()
            }
            _ => Vec::new(),
        };
        // Numbers and dates follow the language of the text being sent.
        if let Some(l) = variant.locale.as_ref().or(wanted.as_ref()) {
            pairs.push((filters::LOCALE_KEY.to_owned(), Value::from(l.as_str())));
        }
        let root = Value::from_pairs(pairs.iter().cloned());
        let wrap =
            |content: Value| Value::from_pairs(pairs.iter().cloned().chain(std::iter::once(("content".to_owned(), content))));

        let subject = one_line(&self.part(&variant.subject, "subject", root.clone())?);
        let mut text = self.part(&variant.text, "text", root.clone())?;
        if let Some(l) = variant.layout {
            text = self.part(&format!("l{l}/text"), "layout.text", wrap(Value::from(text)))?;
        }
        let html = match &variant.html {
            None => None,
            Some(id) => {
                let mut html = self.part(id, "html", root)?;
                if let Some(l) = variant.layout {
                    html = self.part(&format!("l{l}/html"), "layout.html", wrap(Value::from_safe_string(html)))?;
                }
                Some(html)
            }
        };
        Ok(Rendered { subject, text, html })
    }

    fn part(&self, id: &str, part: &'static str, context: Value) -> Result<String, RenderError> {
        let template = self.env.get_template(id).map_err(|e| RenderError::Failed { part, line: None, message: describe(&e) })?;
        let mut out = Capped { buf: Vec::new(), limit: self.limits.max_output_bytes, over: false };
        match template.render_captured_to(context, &mut out) {
            Ok(_) => Ok(String::from_utf8(out.buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
            Err(_) if out.over => Err(RenderError::TooLarge { part, limit: self.limits.max_output_bytes }),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(RenderError::TooMuchWork { part, fuel: self.limits.fuel }),
            Err(e) => Err(RenderError::Failed { part, line: e.line(), message: describe(&e) }),
        }
    }
}

/// The variant to send for `wanted` (normalised): exact, then ever shorter prefixes of the tag,
/// then another region of the same language, then the default, then the first.
fn pick<'v>(variants: &'v [Variant], wanted: Option<&str>) -> Option<&'v Variant> {
    let with = |tag: &str| variants.iter().find(|v| v.locale.as_deref() == Some(tag));
    if let Some(wanted) = wanted {
        let mut tag = wanted;
        loop {
            if let Some(v) = with(tag) {
                return Some(v);
            }
            match tag.rfind('-') {
                Some(cut) => tag = &tag[..cut],
                None => break,
            }
        }
        let lang = language(wanted);
        if let Some(v) = variants.iter().find(|v| v.locale.as_deref().is_some_and(|l| language(l) == lang)) {
            return Some(v);
        }
    }
    variants.iter().find(|v| v.locale.is_none()).or_else(|| variants.first())
}

const NO_CONTENT: &str = "the layout never shows the message: put {{ content }} where it goes";

fn problem(template: &str, part: &'static str, line: Option<usize>, message: String) -> TemplateProblem {
    TemplateProblem { template: template.to_owned(), part, line, message }
}

fn unknown_layout<'a>(template: &str, name: &str, known: impl Iterator<Item = &'a str>) -> TemplateProblem {
    let hint = check::suggestion(name, known).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
    problem(template, "layout", None, format!("there is no layout named `{name}`{hint}"))
}

fn too_big(template: &str, part: &'static str, source: &str, limits: &Limits) -> Option<TemplateProblem> {
    (source.len() > limits.max_source_bytes)
        .then(|| problem(template, part, None, format!("longer than {} bytes", limits.max_source_bytes)))
}

/// Problems with a template's name, locale and sizes, before any parsing.
fn source_problems(t: &TemplateSource, limits: &Limits) -> Vec<TemplateProblem> {
    let mut found = Vec::new();
    if t.name.trim().is_empty() {
        found.push(problem(&t.name, "name", None, "a template needs a name".into()));
    }
    if let Some(l) = &t.locale
        && normalise_locale(l).is_none()
    {
        found.push(problem(&t.name, "locale", None, format!("`{l}` is not a language tag such as `de` or `pt-BR`")));
    }
    let parts = [("subject", Some(&t.subject)), ("text", Some(&t.text)), ("html", t.html.as_ref())];
    found.extend(parts.into_iter().filter_map(|(part, s)| too_big(&t.name, part, s?, limits)));
    found
}

fn layout_problems(l: &LayoutSource, limits: &Limits) -> Vec<TemplateProblem> {
    let mut found = Vec::new();
    if l.name.trim().is_empty() {
        found.push(problem(&l.name, "layout", None, "a layout needs a name".into()));
    }
    found.extend(too_big(&l.name, "layout.html", &l.html, limits));
    found.extend(too_big(&l.name, "layout.text", &l.text, limits));
    found
}

/// Checks one template (and the layout it names) before it is saved: syntax, locale, sizes, and
/// every variable, attribute, filter and test against `known`, on every branch. `content` is
/// known inside the layout. All problems are reported, each with its line where it has one.
pub fn check(t: &TemplateSource, layouts: &[LayoutSource], known: &ContextShape) -> Result<(), Vec<TemplateProblem>> {
    let limits = Limits::default();
    let env = environment(&limits);
    let mut problems = source_problems(t, &limits);
    let parts = [("subject", Some(&t.subject)), ("html", t.html.as_ref()), ("text", Some(&t.text))];
    for (part, source) in parts {
        if let Some(source) = source {
            problems.extend(check_source(&env, known, &t.name, part, source));
        }
    }
    if let Some(name) = &t.layout {
        match layouts.iter().find(|l| &l.name == name) {
            None => problems.push(unknown_layout(&t.name, name, layouts.iter().map(|l| l.name.as_str()))),
            Some(layout) => {
                let mut with_content = known.clone();
                with_content.add("content");
                problems.extend(layout_problems(layout, &limits));
                for (part, source) in [("layout.html", &layout.html), ("layout.text", &layout.text)] {
                    problems.extend(check_source(&env, &with_content, &layout.name, part, source));
                    let shows = env.template_from_str(source).map(|c| c.undeclared_variables(false).contains("content"));
                    if matches!(shows, Ok(false)) {
                        problems.push(problem(&layout.name, part, None, NO_CONTENT.into()));
                    }
                }
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn check_source(
    env: &Environment<'static>,
    known: &ContextShape,
    template: &str,
    part: &'static str,
    source: &str,
) -> Vec<TemplateProblem> {
    match minijinja::machinery::parse(source, part, env.syntax().clone()) {
        Err(e) => vec![problem(template, part, e.line(), describe(&e))],
        Ok(ast) => check::Checker::new(known, env)
            .check(&ast)
            .into_iter()
            .map(|(line, message)| problem(template, part, line, message))
            .collect(),
    }
}

#[cfg(test)]
mod tests;
