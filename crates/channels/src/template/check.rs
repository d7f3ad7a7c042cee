//! Checks what a template reads against a [`ContextShape`]: every variable, attribute, filter,
//! test and function, with the line it is on and, for a near miss, the name that was probably
//! meant. It walks minijinja's syntax tree, so a branch that a sample render would skip is
//! checked too.

use std::collections::BTreeMap;

use minijinja::machinery::ast::{self, CallArg, CallType, Expr, Stmt};
use minijinja::{Environment, ErrorKind};

use super::shape::{ContextShape, Shape};

/// What the checker knows about a value.
#[derive(Clone, Copy)]
enum Ty<'s> {
    /// Computed or open data: not checked any further.
    Any,
    Shape(&'s Shape),
    /// The `loop` variable inside a for loop.
    Loop,
}

impl<'s> Ty<'s> {
    /// What iterating over a value of this type yields.
    fn item(self) -> Ty<'s> {
        match self {
            Ty::Shape(Shape::List(item)) => Ty::Shape(item),
            // Iterating a map yields its keys, a string its characters.
            Ty::Shape(Shape::Object(_) | Shape::Scalar) => Ty::Shape(&Shape::Scalar),
            _ => Ty::Any,
        }
    }
}

/// A value with the dotted path it was reached by, for messages (`contact.first_name`, `r.name`).
#[derive(Clone)]
struct Val<'s> {
    ty: Ty<'s>,
    path: Option<String>,
}

impl<'s> Val<'s> {
    fn any() -> Self {
        Val { ty: Ty::Any, path: None }
    }
}

/// Attributes of the `loop` variable in this build (no `previtem`/`nextitem`).
const LOOP_ATTRIBUTES: &[&str] = &["index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0"];
const LOOP_METHODS: &[&str] = &["cycle", "changed"];

/// Filters whose result has the shape of their input.
const SAME_SHAPE_FILTERS: &[&str] = &["default", "d", "sort", "reverse", "unique", "list", "selectattr", "rejectattr"];
/// Filters that pick one item out of a list.
const ITEM_FILTERS: &[&str] = &["first", "last", "random", "min", "max"];

pub(crate) struct Checker<'s, 'e> {
    shape: &'s ContextShape,
    env: &'e Environment<'static>,
    /// Local names bound by `set`, `for` and `with`, innermost scope last.
    scopes: Vec<BTreeMap<String, Ty<'s>>>,
    /// Inside `x is defined` and the like a missing name is the point, not a mistake.
    probing: usize,
    pub(crate) problems: Vec<(Option<usize>, String)>,
}

impl<'s, 'e> Checker<'s, 'e> {
    pub(crate) fn new(shape: &'s ContextShape, env: &'e Environment<'static>) -> Self {
        Checker { shape, env, scopes: vec![BTreeMap::new()], probing: 0, problems: Vec::new() }
    }

    pub(crate) fn check(mut self, template: &Stmt<'_>) -> Vec<(Option<usize>, String)> {
        self.stmt(template);
        let mut seen = std::collections::BTreeSet::new();
        self.problems.retain(|p| seen.insert(p.clone()));
        self.problems
    }

    fn report(&mut self, line: u16, message: String) {
        self.problems.push((Some(usize::from(line)), message));
    }

    fn bind(&mut self, name: &str, ty: Ty<'s>) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(name.to_owned(), ty);
        }
    }

    fn local(&self, name: &str) -> Option<Ty<'s>> {
        self.scopes.iter().rev().find_map(|scope| scope.get(name).copied())
    }

    fn scoped(&mut self, f: impl FnOnce(&mut Self)) {
        self.scopes.push(BTreeMap::new());
        f(self);
        self.scopes.pop();
    }

    fn stmts(&mut self, body: &[Stmt<'_>]) {
        for stmt in body {
            self.stmt(stmt);
        }
    }

    fn stmt(&mut self, stmt: &Stmt<'_>) {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => {
                self.expr(&e.expr);
            }
            Stmt::EmitRaw(_) => {}
            Stmt::ForLoop(f) => {
                let items = self.expr(&f.iter).ty.item();
                self.scoped(|c| {
                    c.bind_target(&f.target, items);
                    c.bind("loop", Ty::Loop);
                    if let Some(filter) = &f.filter_expr {
                        c.expr(filter);
                    }
                    c.stmts(&f.body);
                });
                self.scoped(|c| c.stmts(&f.else_body));
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr);
                self.stmts(&i.true_body);
                self.stmts(&i.false_body);
            }
            Stmt::WithBlock(w) => {
                let values: Vec<_> = w.assignments.iter().map(|(_, value)| self.expr(value).ty).collect();
                self.scoped(|c| {
                    for ((target, _), ty) in w.assignments.iter().zip(values) {
                        c.bind_target(target, ty);
                    }
                    c.stmts(&w.body);
                });
            }
            Stmt::Set(s) => {
                let ty = self.expr(&s.expr).ty;
                self.bind_target(&s.target, ty);
            }
            Stmt::SetBlock(s) => {
                self.scoped(|c| c.stmts(&s.body));
                if let Some(filter) = &s.filter {
                    self.expr(filter);
                }
                self.bind_target(&s.target, Ty::Shape(&Shape::Scalar));
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled);
                self.stmts(&a.body);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter);
                self.stmts(&f.body);
            }
            Stmt::Do(d) => {
                self.call(&d.call, d.call.span().start_line);
            }
        }
    }

    /// Binds the names an assignment target introduces; `ns.attr` targets assign into a value.
    fn bind_target(&mut self, target: &Expr<'_>, ty: Ty<'s>) {
        match target {
            Expr::Var(v) => self.bind(v.id, ty),
            Expr::Tuple(t) => {
                for item in &t.items {
                    self.bind_target(item, Ty::Any);
                }
            }
            other => {
                self.expr(other);
            }
        }
    }

    fn expr(&mut self, expr: &Expr<'_>) -> Val<'s> {
        match expr {
            Expr::Var(v) => self.var(v.id, v.span().start_line),
            Expr::Const(_) => Val { ty: Ty::Shape(&Shape::Scalar), path: None },
            Expr::Slice(s) => {
                let base = self.expr(&s.expr);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part);
                }
                Val { ty: base.ty, path: None }
            }
            Expr::UnaryOp(u) => {
                self.expr(&u.expr);
                Val::any()
            }
            Expr::BinOp(b) => {
                self.expr(&b.left);
                self.expr(&b.right);
                Val::any()
            }
            Expr::Compare(c) => {
                self.expr(&c.expr);
                for op in &c.ops {
                    self.expr(&op.expr);
                }
                Val::any()
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr);
                self.expr(&i.true_expr);
                if let Some(e) = &i.false_expr {
                    self.expr(e);
                }
                Val::any()
            }
            Expr::Filter(f) => self.filter(f),
            Expr::Test(t) => {
                let line = t.span().start_line;
                if !self.known_test(t.name) {
                    self.report(line, format!("unknown test `{}`", t.name));
                }
                let probe = matches!(t.name, "defined" | "undefined" | "none");
                self.probing += usize::from(probe);
                self.expr(&t.expr);
                self.probing -= usize::from(probe);
                self.args(&t.args);
                Val::any()
            }
            Expr::GetAttr(g) => {
                let base = self.expr(&g.expr);
                self.attr(base, g.name, g.span().start_line)
            }
            Expr::GetItem(g) => {
                let base = self.expr(&g.expr);
                let line = g.span().start_line;
                match &g.subscript_expr {
                    Expr::Const(c) if c.value.as_str().is_some() => {
                        let key = c.value.as_str().unwrap_or_default().to_owned();
                        self.attr(base, &key, line)
                    }
                    Expr::Const(c) if c.value.is_integer() => match base.ty {
                        Ty::Shape(Shape::List(item)) => Val { ty: Ty::Shape(item), path: None },
                        _ => Val::any(),
                    },
                    other => {
                        self.expr(other);
                        match base.ty {
                            Ty::Shape(Shape::List(item)) => Val { ty: Ty::Shape(item), path: None },
                            _ => Val::any(),
                        }
                    }
                }
            }
            Expr::Call(c) => self.call(c, c.span().start_line),
            Expr::List(l) => {
                for item in &l.items {
                    self.expr(item);
                }
                Val::any()
            }
            Expr::Tuple(t) => {
                for item in &t.items {
                    self.expr(item);
                }
                Val::any()
            }
            Expr::Map(m) => {
                for e in m.keys.iter().chain(&m.values) {
                    self.expr(e);
                }
                Val::any()
            }
        }
    }

    fn var(&mut self, name: &str, line: u16) -> Val<'s> {
        let path = Some(name.to_owned());
        if let Some(ty) = self.local(name) {
            return Val { ty, path };
        }
        if let Some(shape) = self.shape.get(name) {
            return Val { ty: Ty::Shape(shape), path };
        }
        if self.env.globals().any(|(global, _)| global == name) {
            return Val { ty: Ty::Any, path };
        }
        if self.probing == 0 {
            let mut candidates: Vec<String> = self.shape.names().map(str::to_owned).collect();
            candidates.extend(self.scopes.iter().flat_map(|s| s.keys().cloned()));
            let hint = suggestion(name, candidates.iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.report(line, format!("unknown variable `{name}`{hint}"));
        }
        // Reported once; what is read from it is not reported again.
        Val::any()
    }

    fn attr(&mut self, base: Val<'s>, name: &str, line: u16) -> Val<'s> {
        let path = base.path.as_ref().map(|p| format!("{p}.{name}"));
        let ty = match base.ty {
            Ty::Any | Ty::Shape(Shape::Open) => Ty::Any,
            Ty::Loop => {
                if !LOOP_ATTRIBUTES.contains(&name) {
                    let hint = suggestion(name, LOOP_ATTRIBUTES.iter().copied())
                        .map(|s| format!("; did you mean `loop.{s}`?"))
                        .unwrap_or_default();
                    self.report(line, format!("`loop` has no attribute `{name}`{hint}"));
                }
                Ty::Any
            }
            Ty::Shape(Shape::Object(fields)) => match fields.get(name) {
                Some(shape) => Ty::Shape(shape),
                None => {
                    if self.probing == 0 {
                        let full = path.clone().unwrap_or_else(|| name.to_owned());
                        let hint = suggestion(name, fields.keys().map(String::as_str))
                            .map(|s| match &base.path {
                                Some(p) => format!("; did you mean `{p}.{s}`?"),
                                None => format!("; did you mean `{s}`?"),
                            })
                            .unwrap_or_default();
                        self.report(line, format!("unknown variable `{full}`{hint}"));
                    }
                    Ty::Any
                }
            },
            Ty::Shape(Shape::Scalar) => {
                if self.probing == 0 {
                    let what = base.path.as_deref().map(|p| format!("`{p}`")).unwrap_or_else(|| "this value".into());
                    self.report(line, format!("{what} is a plain value and has no attribute `{name}`"));
                }
                Ty::Any
            }
            Ty::Shape(Shape::List(_)) => {
                if self.probing == 0 {
                    let what = base.path.as_deref().map(|p| format!("`{p}`")).unwrap_or_else(|| "this value".into());
                    self.report(
                        line,
                        format!("{what} is a list and has no attribute `{name}`; loop over it with {{% for item in … %}}"),
                    );
                }
                Ty::Any
            }
        };
        Val { ty, path }
    }

    fn filter(&mut self, f: &ast::Spanned<ast::Filter<'_>>) -> Val<'s> {
        let line = f.span().start_line;
        let input = match &f.expr {
            Some(e) => self.expr(e),
            None => Val::any(),
        };
        self.args(&f.args);
        if !self.known_filter(f.name) {
            let hint = suggestion(f.name, super::FILTER_NAMES.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.report(line, format!("unknown filter `{}`{hint}", f.name));
            return Val::any();
        }
        if matches!(f.name, "date" | "datetime")
            && let Some(CallArg::Pos(Expr::Const(c))) = f.args.first()
            && let Some(format) = c.value.as_str()
            && let Err(e) = super::filters::check_format(format)
        {
            self.report(line, e);
        }
        if SAME_SHAPE_FILTERS.contains(&f.name) {
            input
        } else if ITEM_FILTERS.contains(&f.name) {
            Val { ty: input.ty.item(), path: None }
        } else {
            Val::any()
        }
    }

    fn call(&mut self, c: &ast::Call<'_>, line: u16) -> Val<'s> {
        match c.identify_call() {
            CallType::Function(name) => {
                let callable = self.local(name).is_some() || self.env.globals().any(|(global, _)| global == name);
                if !callable {
                    self.report(line, format!("unknown function `{name}`"));
                }
            }
            CallType::Method(receiver, name) => {
                let base = self.expr(receiver);
                let fine = matches!(base.ty, Ty::Loop) && LOOP_METHODS.contains(&name);
                if !fine {
                    let on = base.path.as_deref().unwrap_or("value");
                    self.report(line, format!("`{on}.{name}()`: values have no methods here; use a filter, e.g. `{on}|{name}`"));
                }
            }
            CallType::Object(callee) => {
                self.expr(callee);
            }
        }
        self.args(&c.args);
        Val::any()
    }

    fn args(&mut self, args: &[CallArg<'_>]) {
        for arg in args {
            match arg {
                CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                    self.expr(e);
                }
            }
        }
    }

    fn known_filter(&self, name: &str) -> bool {
        let mut state = self.env.empty_state();
        !matches!(state.apply_filter(name, &[]), Err(e) if e.kind() == ErrorKind::UnknownFilter)
    }

    fn known_test(&self, name: &str) -> bool {
        let mut state = self.env.empty_state();
        !matches!(state.perform_test(name, &[]), Err(e) if e.kind() == ErrorKind::UnknownTest)
    }
}

/// The candidate closest to `typo`, if it is close enough to be what was meant.
pub(crate) fn suggestion<'a>(typo: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (typo.chars().count() / 3).max(1);
    candidates
        .filter(|c| *c != typo)
        .map(|c| (edit_distance(&typo.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: edits, with a swap of two neighbours counting as one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(edit_distance("frist_name", "first_name"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let names = ["first_name", "last_name", "display_name"];
        assert_eq!(suggestion("frist_name", names.into_iter()), Some("first_name"));
        assert_eq!(suggestion("lastname", names.into_iter()), Some("last_name"));
        assert_eq!(suggestion("shoe_size", names.into_iter()), None);
    }
}
