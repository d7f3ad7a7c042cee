//! Text → [`Filter`]: a small lexer that turns the text into tokens carrying their byte
//! positions, and a recursive-descent parser over those tokens.
//!
//! ```text
//! filter    := or
//! or        := and (("or" | "||") and)*
//! and       := unary (("and" | "&&") unary)*
//! unary     := ("not" | "!") unary | "(" or ")" | condition
//! condition := field (cmp literal | "is" ["not"] "set" | date_test)
//!            | agg "(" type [where] ["," "last" span] ")" cmp number
//!            | ("has" | "no") selector ["in" "last" span]
//!            | ("last" | "first") "(" selector ")" date_test
//!            | "related" "(" kind ")" ["." "birthday" date_test]
//!            | "in" "segment" string
//!            | ("subscribed" | "unsubscribed") "(" string ")"
//! selector  := type ["where" (payload | "(" payload ("and" payload)* ")")]
//! ```
//!
//! Every condition is checked with [`check_leaf`] as soon as it is read, so a parsed filter
//! always passes [`Filter::check`] and every mistake is reported with a position.

use std::str::FromStr;

use chrono::NaiveDate;

use super::*;

/// Where a filter's text went wrong and what would have been right there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What the parser expected at that point.
    pub expected: String,
    /// What it found instead (a token, or "end of input").
    pub found: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}: expected {}, found {}", self.line, self.column, self.expected, self.found)
    }
}

impl std::error::Error for ParseError {}

/// Reads a filter written in the segment language.
pub fn parse(text: &str) -> Result<Filter, ParseError> {
    let mut parser = Parser { src: text, tokens: lex(text), pos: 0, depth: 0 };
    let filter = parser.or_chain()?;
    if !matches!(parser.peek().tok, Tok::Eof) {
        return Err(parser.error_here("`and`, `or` or end of input"));
    }
    Ok(filter)
}

/// Words the grammar gives a meaning wherever a bare word could stand. A relation kind that
/// is one of these must be quoted, so the printer asks here.
pub(super) const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "is",
    "set",
    "within",
    "last",
    "next",
    "anniversary",
    "turns",
    "before",
    "after",
    "ago",
    "today",
    "has",
    "no",
    "where",
    "segment",
    "related",
    "subscribed",
    "unsubscribed",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "true",
    "false",
    "contains",
    "starts_with",
    "ends_with",
];

/// Whether `word` is reserved (in any letter case, as the parser reads keywords).
pub(super) fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

// Deeper nesting of parentheses and `not` is refused rather than risking the stack.
use super::MAX_DEPTH;

const START: &str = "a field name, `not`, `(` or a condition such as count(…), has/no, related(…), in segment, subscribed(…)";
const COMPARE_OPS: &str = "a comparison operator (=, !=, <, <=, >, >=, in, not in, contains, starts_with, ends_with)";
const NUMERIC_OPS: &str = "a comparison operator (=, !=, <, <=, >, >=)";
const VALUE: &str =
    "a value: text in double quotes, a number, true, false, a duration such as 14d, or a list such as (\"gold\", \"vip\")";
const DATE_TEST: &str =
    "a date test: within last …, within next …, anniversary within next …, turns … within next …, before …, after … or is today";
const DATE_FIELD_TESTS: &str = "a date test (within last …, within next …, anniversary within next …, turns … within next …, before …, after …, is today), `is set` or `is not set`";
const SPAN: &str = "a duration such as 30d (a whole number followed by h, d, w, mo or y)";
const BOUND: &str = "a time such as 30d ago or in 30d, or a date in double quotes such as \"2026-01-01\"";
const EVENT_TYPE: &str = "an event type such as visit.checked_in";
const PAYLOAD_PATH: &str = "a payload path such as items.category";
const GLUED: &str = "a number, or a duration: a whole number followed by h, d, w, mo or y (such as 90d or 12mo)";

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A name, possibly dotted (`tag`, `custom.fleet_size`, `order.completed.total`). Keywords
    /// are words too: whether one is a keyword depends on where it stands.
    Word,
    Str(String),
    Number(f64),
    Span(Span),
    LParen,
    RParen,
    Comma,
    Dot,
    /// `=`/`==`, `!=`/`<>`, `<`, `<=`, `>`, `>=`.
    Op(CompareOp),
    AndAnd,
    OrOr,
    Bang,
    Eof,
    /// A character no token starts with. Reported with what the parser wanted there.
    Unknown(char),
    /// A malformed string or number, with its own message and position.
    Bad {
        at: usize,
        expected: String,
        found: String,
    },
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offsets into the source.
    start: usize,
    end: usize,
}

impl Token {
    /// Eof, Unknown and Bad end the token list: the parser never moves past them.
    fn is_last(&self) -> bool {
        matches!(self.tok, Tok::Eof | Tok::Unknown(_) | Tok::Bad { .. })
    }
}

/// Lexes the whole text up front. Lexing stops at the first bad token, which the parser reports
/// only if it gets that far, so errors still come out in reading order.
fn lex(src: &str) -> Vec<Token> {
    let mut lexer = Lexer { src, bytes: src.as_bytes(), pos: 0 };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.token();
        let last = token.is_last();
        tokens.push(token);
        if last {
            return tokens;
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    /// Always on a character boundary.
    pos: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Lexer<'_> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.bytes.get(at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let yes = self.byte(self.pos) == Some(b);
        if yes {
            self.pos += 1;
        }
        yes
    }

    /// Whitespace and `#` comments to the end of the line.
    fn skip_trivia(&mut self) {
        while let Some(c) = self.src[self.pos..].chars().next() {
            if c == '#' {
                self.pos = self.src[self.pos..].find('\n').map_or(self.src.len(), |i| self.pos + i);
            } else if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn token(&mut self) -> Token {
        self.skip_trivia();
        let start = self.pos;
        let tok = match self.src[start..].chars().next() {
            None => Tok::Eof,
            Some(c) => {
                self.pos += c.len_utf8();
                match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    ',' => Tok::Comma,
                    '.' => Tok::Dot,
                    '=' => {
                        self.eat(b'=');
                        Tok::Op(CompareOp::Eq)
                    }
                    '!' if self.eat(b'=') => Tok::Op(CompareOp::Ne),
                    '!' => Tok::Bang,
                    '<' if self.eat(b'=') => Tok::Op(CompareOp::Le),
                    '<' if self.eat(b'>') => Tok::Op(CompareOp::Ne),
                    '<' => Tok::Op(CompareOp::Lt),
                    '>' if self.eat(b'=') => Tok::Op(CompareOp::Ge),
                    '>' => Tok::Op(CompareOp::Gt),
                    '&' if self.eat(b'&') => Tok::AndAnd,
                    '|' if self.eat(b'|') => Tok::OrOr,
                    '"' => self.string(start),
                    '-' | '0'..='9' => self.number(start),
                    c if c.is_ascii_alphabetic() || c == '_' => self.word(),
                    c => Tok::Unknown(c),
                }
            }
        };
        Token { tok, start, end: self.pos }
    }

    /// The rest of a name: identifier characters, and dots between identifiers.
    fn word(&mut self) -> Tok {
        loop {
            while self.byte(self.pos).is_some_and(is_ident_char) {
                self.pos += 1;
            }
            if self.byte(self.pos) == Some(b'.') && self.byte(self.pos + 1).is_some_and(is_ident_start) {
                self.pos += 1;
            } else {
                return Tok::Word;
            }
        }
    }

    /// A number (`-12.5`, `1e5`) or a span (`14d`), after its first character.
    fn number(&mut self, start: usize) -> Tok {
        let digit = |lexer: &Self, at: usize| lexer.byte(at).is_some_and(|b| b.is_ascii_digit());
        let negative = self.bytes[start] == b'-';
        if negative && !digit(self, self.pos) {
            return Tok::Bad { at: start, expected: "a number after `-`".into(), found: "`-`".into() };
        }
        while digit(self, self.pos) {
            self.pos += 1;
        }
        // Only a plain whole number can carry a span unit.
        let mut whole = !negative;
        if self.byte(self.pos) == Some(b'.') && digit(self, self.pos + 1) {
            whole = false;
            self.pos += 1;
            while digit(self, self.pos) {
                self.pos += 1;
            }
        }
        if matches!(self.byte(self.pos), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.byte(self.pos + 1), Some(b'+' | b'-')));
            if digit(self, self.pos + 1 + sign) {
                whole = false;
                self.pos += 1 + sign;
                while digit(self, self.pos) {
                    self.pos += 1;
                }
            }
        }
        let number_end = self.pos;
        if self.byte(self.pos).is_some_and(is_ident_char) {
            // Letters glued on: a unit, or a mistake such as `90x` or `5days`.
            while self.byte(self.pos).is_some_and(is_ident_char) {
                self.pos += 1;
            }
            let text = &self.src[start..self.pos];
            let unit = &self.src[number_end..self.pos];
            let found = quote(text);
            if !whole || !matches!(unit, "h" | "d" | "w" | "mo" | "y") {
                return Tok::Bad { at: start, expected: GLUED.into(), found };
            }
            return match Span::from_str(text) {
                Ok(span) => Tok::Span(span),
                Err(msg) => Tok::Bad { at: start, expected: format!("a shorter duration ({msg})"), found },
            };
        }
        let text = &self.src[start..number_end];
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Tok::Number(n),
            _ => Tok::Bad { at: start, expected: "a number of a sensible size".into(), found: quote(text) },
        }
    }

    /// A double-quoted string with JSON escapes, after its opening quote.
    fn string(&mut self, open: usize) -> Tok {
        let unclosed = || Tok::Bad {
            at: open,
            expected: "a closing `\"` on the same line (write a line break as \\n)".into(),
            found: "text without its closing quote".into(),
        };
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                return unclosed();
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            match c {
                '"' => return Tok::Str(out),
                '\n' | '\r' => return unclosed(),
                '\\' => match self.escape(at) {
                    Ok(Some(c)) => out.push(c),
                    Ok(None) => return unclosed(),
                    Err(bad) => return bad,
                },
                c => out.push(c),
            }
        }
    }

    /// One escape after its backslash (at `at`). `None` when the text ends inside it.
    fn escape(&mut self, at: usize) -> Result<Option<char>, Tok> {
        let Some(c) = self.src[self.pos..].chars().next() else {
            return Ok(None);
        };
        self.pos += c.len_utf8();
        let bad = |lexer: &Self, what: &str| Tok::Bad {
            at,
            expected: what.into(),
            found: quote(lexer.src.get(at..lexer.pos).unwrap_or("\\")),
        };
        Ok(Some(match c {
            '"' | '\\' | '/' => c,
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let Some(unit) = self.hex4() else {
                    return Err(bad(self, "four hex digits after \\u"));
                };
                match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate: JSON writes characters beyond the BMP as a pair.
                        let low = if self.eat(b'\\') && self.eat(b'u') { self.hex4() } else { None };
                        match low {
                            Some(low @ 0xDC00..=0xDFFF) => {
                                let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                                char::from_u32(code).ok_or_else(|| bad(self, "a valid surrogate pair"))?
                            }
                            _ => return Err(bad(self, "a low surrogate escape (\\uDC00–\\uDFFF) after a high surrogate")),
                        }
                    }
                    0xDC00..=0xDFFF => return Err(bad(self, "a high surrogate escape before a low surrogate")),
                    _ => char::from_u32(unit).ok_or_else(|| bad(self, "a valid \\u escape"))?,
                }
            }
            _ => return Err(bad(self, "an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX")),
        }))
    }

    /// Four hex digits, consumed only if all four are there.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let value = digits.iter().try_fold(0u32, |acc, &b| Some(acc * 16 + char::from(b).to_digit(16)?))?;
        self.pos += 4;
        Some(value)
    }
}

/// A piece of source for an error message, shortened and on one line.
fn quote(text: &str) -> String {
    const MAX: usize = 40;
    let mut short: String = text.chars().take(MAX).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(MAX).is_some() {
        short.push('…');
    }
    format!("`{short}`")
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'a> {
    src: &'a str,
    /// Never empty; ends with the one token for which `is_last` holds.
    tokens: Vec<Token>,
    pos: usize,
    /// Open parentheses and `not`s around the current point.
    depth: usize,
}

type Result<T, E = ParseError> = std::result::Result<T, E>;

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token {
        // `pos` stops at the last token (see `bump`), so it is always in range.
        &self.tokens[self.pos]
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if !token.is_last() {
            self.pos += 1;
        }
        token
    }

    /// Where the previous token ended (the end of what has been read).
    fn prev_end(&self) -> usize {
        self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)).map_or(0, |t| t.end)
    }

    fn text(&self, token: &Token) -> &'a str {
        self.src.get(token.start..token.end).unwrap_or("")
    }

    /// Whether the current token is the keyword `kw` (in any letter case).
    fn at_kw(&self, kw: &str) -> bool {
        let token = self.peek();
        token.tok == Tok::Word && self.text(token).eq_ignore_ascii_case(kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.at_kw(kw);
        if yes {
            self.bump();
        }
        yes
    }

    fn expect_kw(&mut self, kw: &str, expected: &str) -> Result<()> {
        if self.eat_kw(kw) { Ok(()) } else { Err(self.error_here(expected)) }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        let yes = &self.peek().tok == tok;
        if yes {
            self.bump();
        }
        yes
    }

    fn expect(&mut self, tok: &Tok, expected: &str) -> Result<()> {
        if self.eat(tok) { Ok(()) } else { Err(self.error_here(expected)) }
    }

    fn eat_and(&mut self) -> bool {
        self.eat(&Tok::AndAnd) || self.eat_kw("and")
    }

    fn eat_or(&mut self) -> bool {
        self.eat(&Tok::OrOr) || self.eat_kw("or")
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, at: usize) -> (u32, u32) {
        let before = self.src.get(..at).unwrap_or(self.src);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        (u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(column).unwrap_or(u32::MAX))
    }

    fn error_at(&self, at: usize, expected: impl Into<String>, found: impl Into<String>) -> ParseError {
        let (line, column) = self.line_col(at);
        ParseError { line, column, expected: expected.into(), found: found.into() }
    }

    /// The current token is not what `expected` describes. A bad token reports its own problem.
    fn error_here(&self, expected: impl Into<String>) -> ParseError {
        let token = self.peek();
        match &token.tok {
            Tok::Bad { at, expected: own, found } => self.error_at(*at, own.clone(), found.clone()),
            Tok::Eof => self.error_at(token.start, expected, "end of input"),
            _ => self.error_at(token.start, expected, quote(self.text(token))),
        }
    }

    /// Goes one level deeper into parentheses or `not`, if allowed.
    fn enter(&mut self) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error_here(format!("a simpler filter: at most {MAX_DEPTH} nested parentheses and `not`s")));
        }
        self.depth += 1;
        Ok(())
    }

    // --- and, or, not, parentheses ---

    fn or_chain(&mut self) -> Result<Filter> {
        let first = self.and_chain()?;
        if !matches!(self.peek().tok, Tok::OrOr) && !self.at_kw("or") {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat_or() {
            parts.push(self.and_chain()?);
        }
        Ok(Filter::Or(parts))
    }

    fn and_chain(&mut self) -> Result<Filter> {
        let first = self.unary()?;
        if !matches!(self.peek().tok, Tok::AndAnd) && !self.at_kw("and") {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat_and() {
            parts.push(self.unary()?);
        }
        Ok(Filter::And(parts))
    }

    fn unary(&mut self) -> Result<Filter> {
        if matches!(self.peek().tok, Tok::Bang) || self.at_kw("not") {
            self.enter()?;
            self.bump();
            let inner = self.unary();
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner?)));
        }
        if matches!(self.peek().tok, Tok::LParen) {
            self.enter()?;
            let open = self.bump();
            // A group is one part of the enclosing chain, never merged into it.
            let inner = self.or_chain();
            self.depth -= 1;
            let inner = inner?;
            let (line, column) = self.line_col(open.start);
            self.expect(&Tok::RParen, &format!("`and`, `or` or `)` to close the `(` at line {line}, column {column}"))?;
            return Ok(inner);
        }
        self.condition()
    }

    // --- conditions ---

    fn condition(&mut self) -> Result<Filter> {
        let token = self.peek().clone();
        if token.tok != Tok::Word {
            return Err(self.error_here(START));
        }
        let word = self.text(&token).to_ascii_lowercase();
        let filter = match word.as_str() {
            "count" => self.events(Aggregate::Count)?,
            "sum" => self.events(Aggregate::Sum)?,
            "avg" => self.events(Aggregate::Avg)?,
            "min" => self.events(Aggregate::Min)?,
            "max" => self.events(Aggregate::Max)?,
            "has" => self.occurred(true)?,
            "no" => self.occurred(false)?,
            "last" => self.event_date(true)?,
            "first" => self.event_date(false)?,
            "related" => self.related()?,
            "in" => self.segment()?,
            "subscribed" => self.subscription(true)?,
            "unsubscribed" => self.subscription(false)?,
            w if is_keyword(w) => return Err(self.error_here(START)),
            _ => self.field_condition()?,
        };
        // The grammar says nothing of fields and kinds; this catches `tag > 5` and the like.
        check_leaf(&filter).map_err(|msg| {
            let source = self.src.get(token.start..self.prev_end()).unwrap_or("");
            self.error_at(token.start, format!("a valid condition: {msg}"), quote(source))
        })?;
        Ok(filter)
    }

    /// `tag = "staff"`, `email is set`, `birthday within next 7d`, …
    fn field_condition(&mut self) -> Result<Filter> {
        let token = self.bump();
        let name = self.text(&token);
        let kind = match field(name) {
            Ok(FieldRef::BuiltIn(info)) => Some(info.kind),
            Ok(FieldRef::Custom(_) | FieldRef::CompanyCustom(_)) => None,
            Err(msg) => return Err(self.error_at(token.start, format!("a known field: {msg}"), quote(name))),
        };
        if self.eat_kw("is") {
            if self.eat_kw("set") {
                return Ok(Filter::IsSet(IsSet { field: name.into(), set: true }));
            }
            if self.eat_kw("not") {
                self.expect_kw("set", "`set` (as in `is not set`)")?;
                return Ok(Filter::IsSet(IsSet { field: name.into(), set: false }));
            }
            if self.eat_kw("today") {
                return Ok(Filter::Date(DateCondition { date: DateSource::Field(name.into()), test: DateTest::Today }));
            }
            return Err(self.error_here("`set`, `not set` or `today`"));
        }
        if self.at_date_test() {
            let test = self.date_test()?;
            return Ok(Filter::Date(DateCondition { date: DateSource::Field(name.into()), test }));
        }
        let Some(op) = self.compare_op()? else {
            let expected = match kind {
                Some(FieldKind::Time | FieldKind::Birthday) => DATE_FIELD_TESTS.to_string(),
                Some(_) => format!("{COMPARE_OPS}, `is set` or `is not set`"),
                None => format!("{COMPARE_OPS}, `is set`, `is not set` or a date test (within, before, after, …)"),
            };
            return Err(self.error_here(expected));
        };
        let value = self.literal()?;
        Ok(Filter::Compare(Compare { field: name.into(), op, value }))
    }

    /// `count(email.opened, last 90d) >= 5`, `sum(order.completed.total) > 1000`.
    fn events(&mut self, aggregate: Aggregate) -> Result<Filter> {
        let agg = aggregate.as_str();
        self.bump();
        self.expect(&Tok::LParen, &format!("`(` after {agg}"))?;
        let token = self.peek().clone();
        if token.tok != Tok::Word {
            return Err(self.error_here(EVENT_TYPE));
        }
        self.bump();
        let name = self.text(&token);
        // Counting needs only a type; the others name a payload field after the two-part type.
        let (event_type, field) = match aggregate {
            Aggregate::Count => (name, None),
            _ => match name.match_indices('.').nth(1) {
                Some((dot, _)) => (&name[..dot], Some(name[dot + 1..].to_string())),
                None => {
                    let expected = format!("an event type and the payload field to use, such as {agg}(order.completed.total)");
                    return Err(self.error_at(token.start, expected, quote(name)));
                }
            },
        };
        self.check_event_type(&token, event_type)?;
        let conditions = self.where_clause()?;
        let last = if self.eat(&Tok::Comma) {
            self.expect_kw("last", "`last` (as in `, last 90d`)")?;
            Some(self.span()?)
        } else {
            None
        };
        let expected = match (conditions.is_empty(), last) {
            (_, Some(_)) => "`)`",
            (true, None) => "`where`, `, last …` or `)`",
            (false, None) => "`, last …` or `)`",
        };
        self.expect(&Tok::RParen, expected)?;
        let op_token = self.peek().clone();
        let expected = format!("{NUMERIC_OPS}: {agg}(…) is a number");
        let op = match self.compare_op()? {
            Some(op) if op.is_numeric() => op,
            Some(_) => return Err(self.error_at(op_token.start, expected, quote(self.text(&op_token)))),
            None => return Err(self.error_here(expected)),
        };
        let value = match self.peek().tok {
            Tok::Number(n) => n,
            _ => return Err(self.error_here("a number")),
        };
        self.bump();
        let events = EventSelector { event_type: event_type.into(), conditions };
        Ok(Filter::Events(EventMetric { aggregate, events, field, last, op, value }))
    }

    /// `has visit.checked_in`, `no order.completed where total > 100 in last 60d`.
    fn occurred(&mut self, occurred: bool) -> Result<Filter> {
        self.bump();
        let events = self.selector()?;
        let last = if self.eat_kw("in") {
            self.expect_kw("last", "`last` (as in `in last 30d`)")?;
            Some(self.span()?)
        } else {
            None
        };
        Ok(Filter::Occurred(Occurred { occurred, events, last }))
    }

    /// `last(visit.checked_in) before 30d ago`, `first(order.completed) within last 1y`.
    fn event_date(&mut self, latest: bool) -> Result<Filter> {
        self.bump();
        self.expect(&Tok::LParen, if latest { "`(` after last" } else { "`(` after first" })?;
        let selector = self.selector()?;
        let expected = if selector.conditions.is_empty() { "`where` or `)`" } else { "`)`" };
        self.expect(&Tok::RParen, expected)?;
        let test = self.date_test()?;
        let date = if latest { DateSource::Last(selector) } else { DateSource::First(selector) };
        Ok(Filter::Date(DateCondition { date, test }))
    }

    /// `related(child)`, `related("step child").birthday within next 7d`.
    fn related(&mut self) -> Result<Filter> {
        self.bump();
        self.expect(&Tok::LParen, "`(` after related")?;
        let token = self.peek().clone();
        let kind = match &token.tok {
            Tok::Str(s) => s.clone(),
            // A bare kind is what the printer leaves unquoted: a lowercase word, not a keyword.
            Tok::Word if is_bare_kind(self.text(&token)) => self.text(&token).to_string(),
            _ => return Err(self.error_here("a relation kind: a lowercase word such as child, or a name in double quotes")),
        };
        self.bump();
        self.expect(&Tok::RParen, "`)`")?;
        let birthday = if self.eat(&Tok::Dot) {
            self.expect_kw("birthday", "`birthday` (as in related(child).birthday within next 30d)")?;
            Some(self.date_test()?)
        } else {
            None
        };
        Ok(Filter::Related(Related { kind, birthday }))
    }

    /// `in segment "Gold members"`.
    fn segment(&mut self) -> Result<Filter> {
        self.bump();
        self.expect_kw("segment", "`segment` (as in `in segment \"Gold members\"`)")?;
        let name = self.string("a segment name in double quotes")?;
        Ok(Filter::Segment(name))
    }

    /// `subscribed("newsletter")`, `unsubscribed("newsletter")`.
    fn subscription(&mut self, subscribed: bool) -> Result<Filter> {
        self.bump();
        self.expect(&Tok::LParen, "`(`")?;
        let topic = self.string("a topic in double quotes such as \"newsletter\"")?;
        self.expect(&Tok::RParen, "`)`")?;
        Ok(Filter::Subscription(Subscription { topic, subscribed }))
    }

    // --- events ---

    fn check_event_type(&self, token: &Token, event_type: &str) -> Result<()> {
        crate::event::check_selectable_type(event_type)
            .map_err(|msg| self.error_at(token.start, format!("a known event type: {msg}"), quote(self.text(token))))
    }

    /// An event type with an optional `where` clause.
    fn selector(&mut self) -> Result<EventSelector> {
        let token = self.peek().clone();
        if token.tok != Tok::Word {
            return Err(self.error_here(EVENT_TYPE));
        }
        self.bump();
        let event_type = self.text(&token);
        self.check_event_type(&token, event_type)?;
        let conditions = self.where_clause()?;
        Ok(EventSelector { event_type: event_type.into(), conditions })
    }

    /// ` where a = 1` or ` where (a = 1 and b = 2)`; nothing when there is no `where`.
    fn where_clause(&mut self) -> Result<Vec<PayloadCondition>> {
        if !self.eat_kw("where") {
            return Ok(Vec::new());
        }
        if !self.eat(&Tok::LParen) {
            return Ok(vec![self.payload_condition()?]);
        }
        let mut conditions = vec![self.payload_condition()?];
        while self.eat_and() {
            conditions.push(self.payload_condition()?);
        }
        self.expect(&Tok::RParen, "`and` or `)`")?;
        Ok(conditions)
    }

    /// `items.category = "shoes"`. The path is read by position, so it may be any word.
    fn payload_condition(&mut self) -> Result<PayloadCondition> {
        let token = self.peek().clone();
        if token.tok != Tok::Word {
            return Err(self.error_here(PAYLOAD_PATH));
        }
        self.bump();
        let path = self.text(&token);
        check_path(path).map_err(|msg| self.error_at(token.start, format!("a payload path: {msg}"), quote(path)))?;
        let Some(op) = self.compare_op()? else {
            return Err(self.error_here(COMPARE_OPS));
        };
        let value = self.literal()?;
        let condition = PayloadCondition { path: path.into(), op, value };
        check_payload_condition(&condition).map_err(|msg| {
            let source = self.src.get(token.start..self.prev_end()).unwrap_or("");
            self.error_at(token.start, format!("a valid payload condition: {msg}"), quote(source))
        })?;
        Ok(condition)
    }

    // --- dates ---

    fn at_date_test(&self) -> bool {
        ["within", "anniversary", "turns", "before", "after", "is"].iter().any(|kw| self.at_kw(kw))
    }

    fn date_test(&mut self) -> Result<DateTest> {
        if self.eat_kw("within") {
            if self.eat_kw("last") {
                return Ok(DateTest::WithinLast(self.span()?));
            }
            self.expect_kw("next", "`last` or `next`")?;
            return Ok(DateTest::WithinNext(self.span()?));
        }
        if self.eat_kw("anniversary") {
            self.expect_kw("within", "`within` (as in `anniversary within next 7d`)")?;
            self.expect_kw("next", "`next` (as in `anniversary within next 7d`)")?;
            return Ok(DateTest::AnniversaryWithinNext(self.span()?));
        }
        if self.eat_kw("turns") {
            let age = self.age()?;
            self.expect_kw("within", "`within` (as in `turns 21 within next 30d`)")?;
            self.expect_kw("next", "`next` (as in `turns 21 within next 30d`)")?;
            return Ok(DateTest::TurnsWithinNext { age, within: self.span()? });
        }
        if self.eat_kw("before") {
            return Ok(DateTest::Before(self.bound()?));
        }
        if self.eat_kw("after") {
            return Ok(DateTest::After(self.bound()?));
        }
        if self.eat_kw("is") {
            self.expect_kw("today", "`today`")?;
            return Ok(DateTest::Today);
        }
        Err(self.error_here(DATE_TEST))
    }

    fn age(&mut self) -> Result<u32> {
        let token = self.peek().clone();
        let text = self.text(&token);
        let age = match token.tok {
            Tok::Number(_) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
            _ => None,
        };
        let age = age.ok_or_else(|| self.error_here("an age in whole years, such as 21"))?;
        self.bump();
        Ok(age)
    }

    fn bound(&mut self) -> Result<DateBound> {
        let token = self.peek().clone();
        match &token.tok {
            Tok::Span(span) => {
                let span = *span;
                self.bump();
                self.expect_kw("ago", "`ago` (as in `30d ago`)")?;
                Ok(DateBound::Ago(span))
            }
            Tok::Word if self.at_kw("in") => {
                self.bump();
                Ok(DateBound::FromNow(self.span()?))
            }
            Tok::Str(s) => {
                let date = parse_date(s).ok_or_else(|| {
                    self.error_at(token.start, "a real date written YYYY-MM-DD, such as \"2026-01-01\"", quote(self.text(&token)))
                })?;
                self.bump();
                Ok(DateBound::On(date))
            }
            _ => Err(self.error_here(BOUND)),
        }
    }

    // --- values ---

    fn span(&mut self) -> Result<Span> {
        match self.peek().tok {
            Tok::Span(span) => {
                self.bump();
                Ok(span)
            }
            _ => Err(self.error_here(SPAN)),
        }
    }

    fn string(&mut self, expected: &str) -> Result<String> {
        match &self.peek().tok {
            Tok::Str(s) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => Err(self.error_here(expected)),
        }
    }

    /// A comparison operator, or `None` (nothing consumed) when there is none here.
    fn compare_op(&mut self) -> Result<Option<CompareOp>> {
        let op = match self.peek().tok {
            Tok::Op(op) => op,
            Tok::Word if self.at_kw("in") => CompareOp::In,
            Tok::Word if self.at_kw("contains") => CompareOp::Contains,
            Tok::Word if self.at_kw("starts_with") => CompareOp::StartsWith,
            Tok::Word if self.at_kw("ends_with") => CompareOp::EndsWith,
            Tok::Word if self.at_kw("not") => {
                self.bump();
                self.expect_kw("in", "`in` (as in `not in (…)`)")?;
                return Ok(Some(CompareOp::NotIn));
            }
            _ => return Ok(None),
        };
        self.bump();
        Ok(Some(op))
    }

    fn literal(&mut self) -> Result<Literal> {
        if !self.eat(&Tok::LParen) {
            return self.scalar(VALUE);
        }
        // A list; an empty one parses so that the check can say what is wrong with it.
        let mut items = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(Literal::List(items));
        }
        loop {
            if matches!(self.peek().tok, Tok::LParen) {
                return Err(self.error_here("a single value (a list cannot hold another list)"));
            }
            items.push(self.scalar("a value: text in double quotes, a number, true, false or a duration such as 14d")?);
            if self.eat(&Tok::RParen) {
                return Ok(Literal::List(items));
            }
            self.expect(&Tok::Comma, "`,` or `)`")?;
        }
    }

    fn scalar(&mut self, expected: &str) -> Result<Literal> {
        let value = match &self.peek().tok {
            Tok::Str(s) => Literal::Text(s.clone()),
            Tok::Number(n) => Literal::Number(*n),
            Tok::Span(span) => Literal::Duration(DurationLiteral { duration: *span }),
            Tok::Word if self.at_kw("true") => Literal::Bool(true),
            Tok::Word if self.at_kw("false") => Literal::Bool(false),
            _ => return Err(self.error_here(expected)),
        };
        self.bump();
        Ok(value)
    }
}

/// Whether a relation kind can be written without quotes (the printer's rule).
fn is_bare_kind(word: &str) -> bool {
    word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') && !is_keyword(word)
}

/// `YYYY-MM-DD`. Years outside 0–9999 carry a sign (`+10000-01-01`), as chrono prints them.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let mut parts = rest.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |p: &str, min: usize, max: usize| (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !digits(year, 4, 6) || !digits(month, 2, 2) || !digits(day, 2, 2) {
        return None;
    }
    NaiveDate::from_ymd_opt(sign * year.parse::<i32>().ok()?, month.parse().ok()?, day.parse().ok()?)
}
