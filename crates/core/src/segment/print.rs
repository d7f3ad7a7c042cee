//! The canonical text form. `parse(print(f)) == f` for every valid filter: nested and/or are
//! always parenthesised, so grouping survives the trip.

use std::fmt::{self, Formatter, Write};

use super::*;

pub(super) fn write_filter(f: &mut Formatter<'_>, filter: &Filter) -> fmt::Result {
    match filter {
        Filter::And(parts) => write_joined(f, parts, " and "),
        Filter::Or(parts) => write_joined(f, parts, " or "),
        Filter::Not(inner) => {
            f.write_str("not ")?;
            write_operand(f, inner)
        }
        Filter::Compare(c) => {
            write!(f, "{} {} ", c.field, c.op.as_str())?;
            write_literal(f, &c.value)
        }
        Filter::IsSet(s) => write!(f, "{} is {}set", s.field, if s.set { "" } else { "not " }),
        Filter::Date(d) => {
            match &d.date {
                DateSource::Field(name) => f.write_str(name)?,
                DateSource::Last(sel) => {
                    f.write_str("last(")?;
                    write_selector(f, sel)?;
                    f.write_char(')')?;
                }
                DateSource::First(sel) => {
                    f.write_str("first(")?;
                    write_selector(f, sel)?;
                    f.write_char(')')?;
                }
            }
            f.write_char(' ')?;
            write_date_test(f, &d.test)
        }
        Filter::Events(m) => {
            write!(f, "{}({}", m.aggregate.as_str(), m.events.event_type)?;
            if let Some(field) = &m.field {
                write!(f, ".{field}")?;
            }
            write_where(f, &m.events.conditions)?;
            if let Some(span) = m.last {
                write!(f, ", last {span}")?;
            }
            write!(f, ") {} ", m.op.as_str())?;
            write_number(f, m.value)
        }
        Filter::Occurred(o) => {
            f.write_str(if o.occurred { "has " } else { "no " })?;
            write_selector(f, &o.events)?;
            if let Some(span) = o.last {
                write!(f, " in last {span}")?;
            }
            Ok(())
        }
        Filter::Related(r) => {
            f.write_str("related(")?;
            write_name(f, &r.kind)?;
            f.write_char(')')?;
            if let Some(test) = &r.birthday {
                f.write_str(".birthday ")?;
                write_date_test(f, test)?;
            }
            Ok(())
        }
        Filter::Segment(name) => {
            f.write_str("in segment ")?;
            write_string(f, name)
        }
        Filter::Subscription(s) => {
            f.write_str(if s.subscribed { "subscribed(" } else { "unsubscribed(" })?;
            write_string(f, &s.topic)?;
            f.write_char(')')
        }
    }
}

fn write_joined(f: &mut Formatter<'_>, parts: &[Filter], sep: &str) -> fmt::Result {
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write_operand(f, p)?;
    }
    Ok(())
}

/// A part of and/or/not: compound parts go in parentheses.
fn write_operand(f: &mut Formatter<'_>, part: &Filter) -> fmt::Result {
    if matches!(part, Filter::And(_) | Filter::Or(_)) {
        f.write_char('(')?;
        write_filter(f, part)?;
        f.write_char(')')
    } else {
        write_filter(f, part)
    }
}

fn write_selector(f: &mut Formatter<'_>, sel: &EventSelector) -> fmt::Result {
    f.write_str(&sel.event_type)?;
    write_where(f, &sel.conditions)
}

/// ` where a = 1` or ` where (a = 1 and b = 2)`.
fn write_where(f: &mut Formatter<'_>, conditions: &[PayloadCondition]) -> fmt::Result {
    if conditions.is_empty() {
        return Ok(());
    }
    f.write_str(" where ")?;
    let many = conditions.len() > 1;
    if many {
        f.write_char('(')?;
    }
    for (i, c) in conditions.iter().enumerate() {
        if i > 0 {
            f.write_str(" and ")?;
        }
        write!(f, "{} {} ", c.path, c.op.as_str())?;
        write_literal(f, &c.value)?;
    }
    if many {
        f.write_char(')')?;
    }
    Ok(())
}

fn write_date_test(f: &mut Formatter<'_>, test: &DateTest) -> fmt::Result {
    match test {
        DateTest::WithinLast(s) => write!(f, "within last {s}"),
        DateTest::WithinNext(s) => write!(f, "within next {s}"),
        DateTest::AnniversaryWithinNext(s) => write!(f, "anniversary within next {s}"),
        DateTest::TurnsWithinNext { age, within } => write!(f, "turns {age} within next {within}"),
        DateTest::Before(b) => {
            f.write_str("before ")?;
            write_bound(f, b)
        }
        DateTest::After(b) => {
            f.write_str("after ")?;
            write_bound(f, b)
        }
        DateTest::Today => f.write_str("is today"),
    }
}

fn write_bound(f: &mut Formatter<'_>, bound: &DateBound) -> fmt::Result {
    match bound {
        DateBound::Ago(s) => write!(f, "{s} ago"),
        DateBound::FromNow(s) => write!(f, "in {s}"),
        DateBound::On(d) => write!(f, "\"{}\"", d.format("%Y-%m-%d")),
    }
}

fn write_literal(f: &mut Formatter<'_>, lit: &Literal) -> fmt::Result {
    match lit {
        Literal::Bool(b) => write!(f, "{b}"),
        Literal::Number(n) => write_number(f, *n),
        Literal::Text(s) => write_string(f, s),
        Literal::Duration(d) => write!(f, "{}", d.duration),
        Literal::List(items) => {
            f.write_char('(')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_literal(f, item)?;
            }
            f.write_char(')')
        }
    }
}

/// Whole numbers without a decimal point; others in Rust's shortest exact form, which the
/// parser reads back to the same `f64`.
fn write_number(f: &mut Formatter<'_>, n: f64) -> fmt::Result {
    if n == 0.0 {
        // -0 reads back as 0; print both the same so the text is canonical.
        f.write_char('0')
    } else {
        write!(f, "{n}")
    }
}

/// A double-quoted string with JSON escapes.
fn write_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?)
}

/// A bare word when it is one, a quoted string otherwise (relation kinds).
fn write_name(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    let bare = s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !super::parse::is_keyword(s);
    if bare { f.write_str(s) } else { write_string(f, s) }
}
