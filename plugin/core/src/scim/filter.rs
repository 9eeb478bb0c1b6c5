//! RFC 7644 §3.4.2.2 filters and §3.5.2 PATCH paths: parser, printer and evaluator.
//! Pure functions over `serde_json::Value`; no I/O.
//!
//! # Grammar
//!
//! The parser is a hand-written recursive descent over the RFC grammar, with precedence
//! `or` < `and` < `not (…)` / `(…)` / attribute expression:
//!
//! ```text
//! filter    = or
//! or        = and *("or" and)
//! and       = unary *("and" unary)
//! unary     = "not" "(" filter ")" / "(" filter ")" / attrExp / valuePath
//! valuePath = attrPath "[" filter "]" ["." ATTRNAME ("pr" / compareOp compValue)]
//! attrExp   = attrPath ("pr" / compareOp compValue)
//! attrPath  = [URI ":"] ATTRNAME ["." ATTRNAME]
//! ```
//!
//! Operators and the words `and or not pr true false null` are ASCII case-insensitive.
//! `and`/`or` chains are left-associative (`a or b or c` is `Or(Or(a, b), c)`).
//!
//! Tolerated beyond the RFC, because real clients send them:
//! - `emails[type eq "work"].value eq "x"`: a comparison on a sub-attribute of the element
//!   selected by the value filter (Entra, for email used as a matching attribute);
//! - unquoted values (`externalId eq jyoung`, `meta.Created gt 2015-10-10T14:38:21-07:00`):
//!   `true`/`false`/`null` and JSON numbers keep their type, anything else is a string;
//! - any ASCII whitespace where the RFC says SP, and no whitespace where a delimiter
//!   makes it unambiguous (`not(`, `and(`, `eq"x"`).
//!
//! Not accepted: value filters nested inside value filters (`a[b[c pr]]`) and value filters
//! on a sub-attribute (`name.givenName[…]`) — neither can mean anything in SCIM's schema
//! model.
//!
//! # Limits
//!
//! Nesting of `(`, `not (` and `[` is capped at [`MAX_NESTING`] and the number of attribute
//! expressions at [`MAX_TERMS`], so the AST — and every recursive walk over it (printing,
//! evaluation, `Drop`) — stays shallow enough for a 1 MiB wasm stack. Exceeding either is
//! a [`ParseError`], never a stack overflow.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde_json::{Number, Value};

/// `[urn ":"] name ["." sub]`. Names keep the client's spelling; every comparison of
/// names is ASCII case-insensitive. `urn` is the schema URN prefix when present
/// (e.g. `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A comparison value. Unquoted simple values that are not `true`/`false`/`null` or a
/// number are tolerated as strings (Entra: `externalId eq jyoung`).
#[derive(Clone, Debug, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `attr pr`
    Present(AttrPath),
    /// `attr op value`
    Compare(AttrPath, CompareOp, CompValue),
    /// `attr[inner]`, optionally followed by `.sub op value` / `.sub pr`
    /// (`emails[type eq "work"].value eq "x"`). `inner` is evaluated relative to each
    /// element of the multi-valued `attr`.
    ///
    /// The parser only produces a `then` that is a `Present` or `Compare` on a bare name
    /// (no URN, no sub-attribute); it is evaluated against the same element as `inner`.
    ValuePath {
        attr: AttrPath,
        inner: Box<Filter>,
        then: Option<Box<Filter>>,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// Where and why parsing failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the input.
    pub offset: usize,
    pub message: String,
}

/// A PATCH `path`: `attrPath [ "[" valFilter "]" ] [ "." subAttr ]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// Sub-attribute after a value filter (`emails[type eq "work"].value` → `value`).
    pub sub: Option<String>,
}

/// How deep `(…)`, `not (…)` and `[…]` may nest.
pub const MAX_NESTING: usize = 32;

/// How many attribute expressions (`x pr`, `x op v`) one filter may hold. `and`/`or`
/// chains are parsed by a loop, not by recursion, but they still become a left-deep tree
/// whose depth is bounded only by this.
pub const MAX_TERMS: usize = 256;

// ---------------------------------------------------------------------------------------
// Public types: small conveniences
// ---------------------------------------------------------------------------------------

impl AttrPath {
    /// A plain attribute name, without URN or sub-attribute.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath { urn: None, name: name.into(), sub: None }
    }
}

impl CompareOp {
    /// The operator as the canonical printer writes it (`eq`, `ne`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

impl CompValue {
    /// The value as text: strings as they are, numbers, `true`/`false` and `null` as
    /// their JSON spelling. For index look-ups (`userName eq …`, `members eq …`).
    pub fn as_str_lossy(&self) -> String {
        match self {
            CompValue::Str(s) => s.clone(),
            CompValue::Num(n) => n.to_string(),
            CompValue::Bool(b) => bool_text(*b).to_owned(),
            CompValue::Null => "null".to_owned(),
        }
    }
}

impl ParseError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        ParseError { offset, message: message.into() }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

impl FromStr for Filter {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl FromStr for PatchPath {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_path(s)
    }
}

// ---------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------

/// Parses a `filter` query parameter (already percent-decoded).
pub fn parse(input: &str) -> Result<Filter, ParseError> {
    parse_with_depth(input, MAX_NESTING, None)
}

/// [`parse`] with nesting capped at `max_nesting` (itself capped at [`MAX_NESTING`]); the
/// error names `limit` (a configuration key) when that cap is what was exceeded.
pub fn parse_with_depth(
    input: &str,
    max_nesting: usize,
    limit: Option<&'static str>,
) -> Result<Filter, ParseError> {
    let mut p = Parser::new(input, "filter");
    p.max_nesting = max_nesting.min(MAX_NESTING);
    p.limit = limit;
    p.skip_ws();
    if p.peek().is_none() {
        return Err(ParseError::new(0, "the filter is empty: expected e.g. userName eq \"bjensen\""));
    }
    let filter = p.or_expr()?;
    p.close(Closer::End)?;
    Ok(filter)
}

/// Parses a PATCH operation's `path`; the value filter uses the [`parse`] grammar.
///
/// A path that is only a schema URN (`urn:…:enterprise:2.0:User`, replacing the whole
/// extension) cannot be told from `urn:…:2.0` + attribute `User` by syntax; it parses as
/// the latter, and the PATCH engine recognises it by comparing `attr.to_string()` with the
/// schema URNs it knows.
pub fn parse_path(input: &str) -> Result<PatchPath, ParseError> {
    let mut p = Parser::new(input, "path");
    p.skip_ws();
    if p.peek().is_none() {
        return Err(ParseError::new(0, "the path is empty"));
    }
    let start = p.pos;
    let attr = p.attr_path("an attribute name")?;
    p.skip_ws();
    let mut filter = None;
    let mut sub = None;
    if p.peek() == Some(b'[') {
        filter = Some(p.value_filter(&attr, start)?);
        if p.peek() == Some(b'.') {
            p.pos += 1;
            sub = Some(p.sub_attr_name()?.to_owned());
        }
    }
    p.skip_ws();
    if p.peek().is_some() {
        let expected = match (&filter, &sub) {
            (None, _) => "\"[\" or the end of the path",
            (Some(_), None) => "\".\" or the end of the path",
            (Some(_), Some(_)) => "the end of the path",
        };
        return Err(ParseError::new(p.pos, format!("expected {expected}, found {}", p.found())));
    }
    Ok(PatchPath { attr, filter, sub })
}

/// What ends the expression being parsed; the offset is that of the opening delimiter.
#[derive(Clone, Copy)]
enum Closer {
    End,
    Paren(usize),
    Bracket(usize),
}

enum Op {
    Pr,
    Cmp(CompareOp),
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    nesting: usize,
    /// At most [`MAX_NESTING`].
    max_nesting: usize,
    /// The configuration key to name when `max_nesting` is exceeded.
    limit: Option<&'static str>,
    terms: usize,
    in_value_filter: bool,
    /// "filter" or "path", for messages about the input as a whole.
    subject: &'static str,
}

/// Bytes of attribute paths (URNs included), operators and keywords.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'$' | b'/')
}

/// Bytes that end an unquoted value.
fn ends_unquoted(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'(' | b')' | b'[' | b']' | b'"')
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, subject: &'static str) -> Self {
        Parser {
            src,
            pos: 0,
            nesting: 0,
            max_nesting: MAX_NESTING,
            limit: None,
            terms: 0,
            in_value_filter: false,
            subject,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// The run of word bytes at the cursor (possibly empty), not consumed.
    fn peek_word(&self) -> &'a str {
        let rest = self.rest();
        let len = rest.bytes().take_while(|&b| is_word_byte(b)).count();
        rest.get(..len).unwrap_or("")
    }

    /// Consumes `kw` (case-insensitive, as a whole word) after optional whitespace.
    fn keyword(&mut self, kw: &str) -> bool {
        self.skip_ws();
        let word = self.peek_word();
        let hit = word.eq_ignore_ascii_case(kw);
        if hit {
            self.pos += word.len();
        }
        hit
    }

    /// What is at the cursor, for "found …" in messages.
    fn found(&self) -> String {
        let Some(c) = self.rest().chars().next() else {
            return format!("the end of the {}", self.subject);
        };
        let word = self.peek_word();
        let token: String = if word.is_empty() { c.to_string() } else { word.chars().take(40).collect() };
        format!("{token:?}")
    }

    fn or_expr(&mut self) -> Result<Filter, ParseError> {
        let mut lhs = self.and_expr()?;
        while self.keyword("or") {
            let rhs = self.and_expr()?;
            lhs = Filter::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn and_expr(&mut self) -> Result<Filter, ParseError> {
        let mut lhs = self.unary()?;
        while self.keyword("and") {
            let rhs = self.unary()?;
            lhs = Filter::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Filter, ParseError> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some(b'(') {
            self.pos += 1;
            return self.nested(Closer::Paren(start));
        }
        let word = self.peek_word();
        if word.eq_ignore_ascii_case("not") {
            // `not` is the operator only before "("; otherwise it is an attribute named
            // "not" (`not pr` is a valid filter).
            let after = self.rest().get(word.len()..).unwrap_or("");
            let ws = after.bytes().take_while(u8::is_ascii_whitespace).count();
            if after.as_bytes().get(ws) == Some(&b'(') {
                let open = start + word.len() + ws;
                self.pos = open + 1;
                return Ok(Filter::Not(Box::new(self.nested(Closer::Paren(open))?)));
            }
        }
        self.attr_expr()
    }

    /// The inside of `(…)` or `[…]`, cursor just past the opening delimiter.
    fn nested(&mut self, closer: Closer) -> Result<Filter, ParseError> {
        if self.nesting >= self.max_nesting {
            let open = match closer {
                Closer::Paren(at) | Closer::Bracket(at) => at,
                Closer::End => self.pos,
            };
            let limit = self.limit.map(|l| format!(" ({l})")).unwrap_or_default();
            return Err(ParseError::new(
                open,
                format!("the {} nests more than {} levels deep{limit}", self.subject, self.max_nesting),
            ));
        }
        self.nesting += 1;
        let inner = self.or_expr()?;
        self.close(closer)?;
        self.nesting -= 1;
        Ok(inner)
    }

    fn close(&mut self, closer: Closer) -> Result<(), ParseError> {
        self.skip_ws();
        let at = self.pos;
        let message = match (closer, self.peek()) {
            (Closer::End, None) => return Ok(()),
            (Closer::Paren(_), Some(b')')) | (Closer::Bracket(_), Some(b']')) => {
                self.pos += 1;
                return Ok(());
            }
            (Closer::Paren(open), None) => {
                format!("the \"(\" at offset {open} is never closed: expected \")\"")
            }
            (Closer::Bracket(open), None) => {
                format!("the \"[\" at offset {open} is never closed: expected \"]\"")
            }
            (Closer::End, Some(_)) => {
                format!("expected \"and\", \"or\" or the end of the {}, found {}", self.subject, self.found())
            }
            (Closer::Paren(_), Some(_)) => {
                format!("expected \"and\", \"or\" or \")\", found {}", self.found())
            }
            (Closer::Bracket(_), Some(_)) => {
                format!("expected \"and\", \"or\" or \"]\", found {}", self.found())
            }
        };
        Err(ParseError::new(at, message))
    }

    fn attr_expr(&mut self) -> Result<Filter, ParseError> {
        let start = self.pos;
        let attr = self.attr_path("an attribute name, \"not (\" or \"(\"")?;
        self.skip_ws();
        if self.peek() != Some(b'[') {
            let text = self.src.get(start..self.pos).unwrap_or("").trim_end();
            return self.comparison(attr, text);
        }
        let inner = self.value_filter(&attr, start)?;
        // Non-RFC but sent by Entra: `emails[type eq "work"].value eq "x"`.
        let then = if self.peek() == Some(b'.') {
            self.pos += 1;
            let name = self.sub_attr_name()?;
            let text = self.src.get(start..self.pos).unwrap_or("");
            Some(Box::new(self.comparison(AttrPath::new(name), text)?))
        } else {
            None
        };
        Ok(Filter::ValuePath { attr, inner: Box::new(inner), then })
    }

    /// `[…]` after `attr` (which started at `start`), cursor on the "[".
    fn value_filter(&mut self, attr: &AttrPath, start: usize) -> Result<Filter, ParseError> {
        let open = self.pos;
        if self.in_value_filter {
            return Err(ParseError::new(open, "value filters cannot be nested (\"[\" inside \"[…]\")"));
        }
        if attr.sub.is_some() {
            let text = self.src.get(start..open).unwrap_or("").trim_end();
            return Err(ParseError::new(
                open,
                format!(
                    "a value filter \"[…]\" must follow a multi-valued attribute, \
                     not the sub-attribute {text:?}"
                ),
            ));
        }
        self.pos += 1;
        self.in_value_filter = true;
        let inner = self.nested(Closer::Bracket(open));
        self.in_value_filter = false;
        inner
    }

    /// `[URI ":"] name ["." sub]`; `expected` names what may stand here, for the message.
    fn attr_path(&mut self, expected: &str) -> Result<AttrPath, ParseError> {
        let start = self.pos;
        let word = self.peek_word();
        if word.is_empty() {
            return Err(ParseError::new(start, format!("expected {expected}, found {}", self.found())));
        }
        let path = split_attr_path(word).map_err(|(at, message)| ParseError::new(start + at, message))?;
        self.pos += word.len();
        Ok(path)
    }

    /// The sub-attribute name right after `].`.
    fn sub_attr_name(&mut self) -> Result<&'a str, ParseError> {
        let word = self.peek_word();
        if !is_attr_name(word) {
            return Err(ParseError::new(
                self.pos,
                format!("expected a sub-attribute name after \"].\", found {}", self.found()),
            ));
        }
        self.pos += word.len();
        Ok(word)
    }

    /// The operator (and value) after an attribute path written as `text`.
    fn comparison(&mut self, attr: AttrPath, text: &str) -> Result<Filter, ParseError> {
        self.skip_ws();
        let at = self.pos;
        let word = self.peek_word();
        let Some(op) = parse_op(word) else {
            let message = if text.eq_ignore_ascii_case("not") {
                "expected \"(\" after \"not\"".to_owned()
            } else {
                format!("expected an operator (eq, ne, co, sw, ew, pr, gt, ge, lt, le) after {text:?}")
            };
            return Err(ParseError::new(at, message));
        };
        self.pos += word.len();
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(ParseError::new(
                at,
                format!("the {} has more than {MAX_TERMS} comparisons", self.subject),
            ));
        }
        match op {
            Op::Pr => Ok(Filter::Present(attr)),
            Op::Cmp(op) => {
                self.skip_ws();
                let value = self.comp_value(word)?;
                Ok(Filter::Compare(attr, op, value))
            }
        }
    }

    fn comp_value(&mut self, op_word: &str) -> Result<CompValue, ParseError> {
        if self.peek() == Some(b'"') {
            return self.quoted().map(CompValue::Str);
        }
        let rest = self.rest();
        let len = rest.bytes().take_while(|&b| !ends_unquoted(b)).count();
        let raw = rest.get(..len).unwrap_or("");
        if raw.is_empty() {
            return Err(ParseError::new(
                self.pos,
                format!("expected a value after {op_word:?}, found {}", self.found()),
            ));
        }
        self.pos += len;
        Ok(unquoted_value(raw))
    }

    /// A JSON string literal, cursor on the opening quote.
    fn quoted(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let Some(run) = rest.bytes().position(|b| b == b'"' || b == b'\\') else {
                return Err(ParseError::new(open, "unterminated string: missing the closing '\"'"));
            };
            out.push_str(rest.get(..run).unwrap_or(""));
            self.pos += run;
            if self.peek() == Some(b'"') {
                self.pos += 1;
                return Ok(out);
            }
            let escape = self.pos;
            self.pos += 1;
            let c = match self.peek() {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    self.pos += 1;
                    out.push(self.unicode_escape(escape)?);
                    continue;
                }
                None => return Err(ParseError::new(open, "unterminated string: missing the closing '\"'")),
                Some(_) => {
                    let c = self.rest().chars().next().unwrap_or('?');
                    return Err(ParseError::new(
                        escape,
                        format!(
                            "invalid escape \"\\{c}\" in string \
                             (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)"
                        ),
                    ));
                }
            };
            out.push(c);
            self.pos += 1;
        }
    }

    /// After `\u` (the backslash was at `escape`): four hex digits, and for a high
    /// surrogate a following `\uXXXX` low surrogate.
    fn unicode_escape(&mut self, escape: usize) -> Result<char, ParseError> {
        let high = self.hex4(escape)?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !self.rest().starts_with("\\u") {
                    return Err(unpaired(escape));
                }
                let low_escape = self.pos;
                self.pos += 2;
                let low = self.hex4(low_escape)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(unpaired(escape));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(unpaired(escape)),
            _ => high,
        };
        char::from_u32(code).ok_or_else(|| unpaired(escape))
    }

    fn hex4(&mut self, escape: usize) -> Result<u32, ParseError> {
        let digits = self.rest().get(..4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let code = digits.and_then(|d| u32::from_str_radix(d, 16).ok()).ok_or_else(|| {
            ParseError::new(escape, "invalid \\u escape in string: expected four hex digits")
        })?;
        self.pos += 4;
        Ok(code)
    }
}

fn unpaired(escape: usize) -> ParseError {
    ParseError::new(escape, "invalid \\u escape in string: unpaired UTF-16 surrogate")
}

fn parse_op(word: &str) -> Option<Op> {
    const OPS: [(&str, CompareOp); 9] = [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ];
    if word.eq_ignore_ascii_case("pr") {
        return Some(Op::Pr);
    }
    OPS.iter().find(|(name, _)| word.eq_ignore_ascii_case(name)).map(|&(_, op)| Op::Cmp(op))
}

/// `true`/`false`/`null` and JSON numbers keep their type; anything else is a string.
fn unquoted_value(raw: &str) -> CompValue {
    if raw.eq_ignore_ascii_case("true") {
        CompValue::Bool(true)
    } else if raw.eq_ignore_ascii_case("false") {
        CompValue::Bool(false)
    } else if raw.eq_ignore_ascii_case("null") {
        CompValue::Null
    } else {
        parse_number(raw).map_or_else(|| CompValue::Str(raw.to_owned()), CompValue::Num)
    }
}

/// A JSON number. Integers stay exact; other numbers go through the standard library's
/// correctly rounded `f64` parser, so that printing (shortest round-trip form) and
/// parsing again yields the same value.
fn parse_number(raw: &str) -> Option<Number> {
    let n = Number::from_str(raw).ok()?;
    if n.is_f64() {
        raw.parse::<f64>().ok().and_then(Number::from_f64)
    } else {
        Some(n)
    }
}

/// ATTRNAME = ALPHA *(ALPHA / DIGIT / "-" / "_"), plus `$ref`-style names.
fn is_attr_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'$')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits `[URI ":"] name ["." sub]`. The URN itself contains dots and colons
/// (`…:enterprise:2.0:User`), so the attribute is what follows the last colon.
/// Errors carry an offset relative to `word`.
fn split_attr_path(word: &str) -> Result<AttrPath, (usize, String)> {
    let (urn, rest, rest_at) = match word.rfind(':') {
        Some(colon) => {
            let urn = word.get(..colon).unwrap_or("");
            if urn.is_empty() {
                return Err((0, "the schema URN before \":\" is empty".to_owned()));
            }
            (Some(urn), word.get(colon + 1..).unwrap_or(""), colon + 1)
        }
        None => (None, word, 0),
    };
    if rest.is_empty() {
        return Err((rest_at, format!("expected an attribute name after the schema URN {word:?}")));
    }
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    let bad_name = |at: usize, name: &str| {
        (
            at,
            format!(
                "invalid attribute name {name:?}: a name starts with a letter and continues \
                 with letters, digits, \"-\" or \"_\""
            ),
        )
    };
    if !is_attr_name(name) {
        return Err(bad_name(rest_at, name));
    }
    if let Some(sub) = sub {
        let sub_at = rest_at + name.len() + 1;
        if sub.contains('.') {
            return Err((
                sub_at,
                format!("the attribute path {word:?} has more than one level of sub-attributes"),
            ));
        }
        if !is_attr_name(sub) {
            return Err(bad_name(sub_at, sub));
        }
    }
    Ok(AttrPath { urn: urn.map(str::to_owned), name: name.to_owned(), sub: sub.map(str::to_owned) })
}

// ---------------------------------------------------------------------------------------
// Printer: canonical form, `parse(&f.to_string()) == Ok(f)`
// ---------------------------------------------------------------------------------------

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Values print as JSON literals; strings are always quoted, so `"true"`, `"42"` and
/// `"and"` stay strings when parsed back.
impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Str(s) => write_json_string(s, f),
            CompValue::Num(n) => write!(f, "{n}"),
            CompValue::Bool(b) => f.write_str(bool_text(*b)),
            CompValue::Null => f.write_str("null"),
        }
    }
}

fn write_json_string(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Binding strength, weakest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Or,
    And,
    Atom,
}

fn precedence(filter: &Filter) -> Prec {
    match filter {
        Filter::Or(..) => Prec::Or,
        Filter::And(..) => Prec::And,
        _ => Prec::Atom,
    }
}

/// Writes `filter` where an expression of at least `min` binding strength is expected,
/// parenthesising only when needed. Chains are left-associative, so a right operand of
/// the same kind (`a or (b or c)`) gets parentheses and a left one does not.
fn write_filter(filter: &Filter, f: &mut fmt::Formatter<'_>, min: Prec) -> fmt::Result {
    if precedence(filter) < min {
        f.write_char('(')?;
        write_filter(filter, f, Prec::Or)?;
        return f.write_char(')');
    }
    match filter {
        Filter::Present(path) => write!(f, "{path} pr"),
        Filter::Compare(path, op, value) => write!(f, "{path} {op} {value}"),
        Filter::ValuePath { attr, inner, then } => {
            write!(f, "{attr}[")?;
            write_filter(inner, f, Prec::Or)?;
            f.write_char(']')?;
            if let Some(then) = then {
                f.write_char('.')?;
                write_filter(then, f, Prec::Atom)?;
            }
            Ok(())
        }
        Filter::And(lhs, rhs) => {
            write_filter(lhs, f, Prec::And)?;
            f.write_str(" and ")?;
            write_filter(rhs, f, Prec::Atom)
        }
        Filter::Or(lhs, rhs) => {
            write_filter(lhs, f, Prec::Or)?;
            f.write_str(" or ")?;
            write_filter(rhs, f, Prec::And)
        }
        Filter::Not(inner) => {
            f.write_str("not (")?;
            write_filter(inner, f, Prec::Or)?;
            f.write_char(')')
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(self, f, Prec::Or)
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

/// Whether `resource` satisfies `filter`.
///
/// `case_exact(path)` says whether string comparisons on `path` are case-sensitive (the
/// caller knows the schema: `id` and `externalId` are, `userName` is not). Inside a value
/// filter it is asked about the qualified path: `emails[type eq "work"]` asks about
/// `emails.type`.
///
/// Semantics, beyond RFC 7644 §3.4.2.2:
/// - Attribute names match JSON keys ASCII-case-insensitively at every level.
/// - `urn:…:name` looks inside the object under that URN key. Core schema URNs
///   (`urn:ietf:params:scim:schemas:core:…`) also fall back to the top level, where core
///   attributes live. A name without URN looks at the top level first and then inside the
///   extension objects (keys starting with `urn:`), because clients do send
///   `manager eq "…"` for the enterprise extension's manager.
/// - Multi-valued attributes: a comparison holds if it holds for ANY value (`ne` too, per
///   the RFC's "any of the values match": `emails.type ne "work"` holds for a user with a
///   work and a home email). A complex value compared without sub-attribute is compared
///   through its `value` sub-attribute (`emails co "example.com"`, `members eq "<id>"`).
/// - Missing attributes (absent, `null`, `[]`): every comparison is false except `ne`,
///   which is true — "the attribute and operator values are not identical" holds when
///   there is no attribute value. `eq null` holds exactly when the attribute is missing,
///   and `ne null` when it is present.
/// - `pr`: present and not null, not `""`, not `[]`, not `{}`.
/// - Strings: `case_exact` false compares Unicode-lowercased text. `gt ge lt le` compare
///   lexicographically, except that two RFC 3339 date-times compare as instants.
/// - Numbers compare numerically; a quoted number against a number attribute is parsed,
///   and an unquoted number against a string attribute compares as text
///   (`externalId eq 12345`).
/// - Booleans: `eq`/`ne` only; a string `"True"`/`"false"` matches a boolean by its text,
///   case-insensitively, and vice versa.
/// - `co sw ew` apply to strings only; type mismatches make everything false but `ne`.
pub fn matches(filter: &Filter, resource: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
    Evaluator { case_exact, parent: None }.eval(filter, resource)
}

/// Whether [`matches`] may read the resource's top-level attribute `key` when evaluating
/// `filter`, so a caller can build only those attributes of a stored record. Mirrors
/// [`lookup`]: a bare name is looked up case-insensitively, then inside every `urn:` object;
/// a URN-qualified one inside that URN's object, or at the top level for a core schema.
pub fn reads(filter: &Filter, key: &str) -> bool {
    let path_reads = |p: &AttrPath| match p.urn.as_deref() {
        None => key.eq_ignore_ascii_case(&p.name) || starts_with_ci(key, "urn:"),
        Some(urn) => {
            key.eq_ignore_ascii_case(urn) || (is_core_schema(urn) && key.eq_ignore_ascii_case(&p.name))
        }
    };
    match filter {
        Filter::Present(p) | Filter::Compare(p, _, _) => path_reads(p),
        // `inner` and `then` are evaluated inside the elements of `attr`.
        Filter::ValuePath { attr, .. } => path_reads(attr),
        Filter::And(l, r) | Filter::Or(l, r) => reads(l, key) || reads(r, key),
        Filter::Not(inner) => reads(inner, key),
    }
}

struct Evaluator<'a> {
    case_exact: &'a dyn Fn(&AttrPath) -> bool,
    /// The multi-valued attribute whose elements are being filtered (`emails` in
    /// `emails[type eq "work"]`), so `case_exact` can be asked about `emails.type`.
    parent: Option<&'a AttrPath>,
}

impl Evaluator<'_> {
    fn eval(&self, filter: &Filter, node: &Value) -> bool {
        match filter {
            Filter::Present(path) => for_each_value(node, path, &mut is_present),
            Filter::Compare(path, op, want) => self.compare(node, path, *op, want),
            Filter::ValuePath { attr, inner, then } => {
                let Some(target) = lookup(node, attr) else { return false };
                let nested = Evaluator { case_exact: self.case_exact, parent: Some(attr) };
                let element_matches = |element: &Value| {
                    nested.eval(inner, element) && then.as_ref().is_none_or(|then| nested.eval(then, element))
                };
                match target {
                    Value::Array(items) => items.iter().any(element_matches),
                    object @ Value::Object(_) => element_matches(object),
                    _ => false,
                }
            }
            Filter::And(lhs, rhs) => self.eval(lhs, node) && self.eval(rhs, node),
            Filter::Or(lhs, rhs) => self.eval(lhs, node) || self.eval(rhs, node),
            Filter::Not(inner) => !self.eval(inner, node),
        }
    }

    fn is_case_exact(&self, path: &AttrPath) -> bool {
        match self.parent {
            None => (self.case_exact)(path),
            Some(parent) => (self.case_exact)(&AttrPath {
                urn: parent.urn.clone(),
                name: parent.name.clone(),
                sub: Some(path.name.clone()),
            }),
        }
    }

    fn compare(&self, node: &Value, path: &AttrPath, op: CompareOp, want: &CompValue) -> bool {
        if *want == CompValue::Null {
            let present = for_each_value(node, path, &mut |_| true);
            return match op {
                CompareOp::Eq => !present,
                CompareOp::Ne => present,
                _ => false,
            };
        }
        let mut seen = false;
        let mut exact = None;
        let hit = for_each_value(node, path, &mut |value| {
            // A complex value without sub-attribute is compared through its "value".
            let value = match value {
                Value::Object(_) => match get_ci(value, "value") {
                    Some(inner) if !inner.is_null() => inner,
                    _ => return false,
                },
                other => other,
            };
            seen = true;
            let mut case_exact = || *exact.get_or_insert_with(|| self.is_case_exact(path));
            compare_value(value, op, want, &mut case_exact)
        });
        hit || (!seen && op == CompareOp::Ne)
    }
}

/// The value of `path`'s attribute (not its sub-attribute) in `node`, or `None`.
fn lookup<'v>(node: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let name = path.name.as_str();
    match path.urn.as_deref() {
        Some(urn) => {
            let scoped = get_ci(node, urn).and_then(|extension| get_ci(extension, name));
            // Core attributes live at the top level, not under their schema URN.
            if scoped.is_none() && is_core_schema(urn) {
                get_ci(node, name)
            } else {
                scoped
            }
        }
        None => get_ci(node, name).filter(|v| !v.is_null()).or_else(|| {
            let Value::Object(map) = node else { return None };
            map.iter()
                .filter(|(key, value)| value.is_object() && starts_with_ci(key, "urn:"))
                .find_map(|(_, extension)| get_ci(extension, name))
        }),
    }
}

/// Calls `visit` on each non-null value `path` selects in `node`, flattening
/// multi-valued attributes, until it returns true. Returns whether it did.
fn for_each_value<'v>(node: &'v Value, path: &AttrPath, visit: &mut dyn FnMut(&'v Value) -> bool) -> bool {
    let Some(target) = lookup(node, path) else { return false };
    let Some(sub) = path.sub.as_deref() else { return visit_flat(target, visit) };
    match target {
        Value::Array(items) => {
            items.iter().any(|item| get_ci(item, sub).is_some_and(|value| visit_flat(value, visit)))
        }
        other => get_ci(other, sub).is_some_and(|value| visit_flat(value, visit)),
    }
}

fn visit_flat<'v>(value: &'v Value, visit: &mut dyn FnMut(&'v Value) -> bool) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => items.iter().filter(|item| !item.is_null()).any(visit),
        other => visit(other),
    }
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Object member by ASCII-case-insensitive key (exact spelling first).
fn get_ci<'v>(node: &'v Value, key: &str) -> Option<&'v Value> {
    let Value::Object(map) = node else { return None };
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn is_core_schema(urn: &str) -> bool {
    starts_with_ci(urn, "urn:ietf:params:scim:schemas:core:")
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// One attribute value against the comparison value.
fn compare_value(
    actual: &Value,
    op: CompareOp,
    want: &CompValue,
    case_exact: &mut dyn FnMut() -> bool,
) -> bool {
    match (actual, want) {
        (Value::String(a), CompValue::Str(w)) => compare_strings(a, w, op, case_exact()),
        (Value::String(a), CompValue::Num(w)) => match parse_number(a.trim()) {
            Some(a) if is_ordering(op) => order_holds(op, compare_numbers(&a, w)),
            _ => compare_strings(a, &w.to_string(), op, case_exact()),
        },
        (Value::String(a), CompValue::Bool(w)) => equality_holds(op, a.eq_ignore_ascii_case(bool_text(*w))),
        (Value::Bool(a), CompValue::Bool(w)) => equality_holds(op, a == w),
        (Value::Bool(a), CompValue::Str(w)) => equality_holds(op, w.eq_ignore_ascii_case(bool_text(*a))),
        (Value::Number(a), CompValue::Num(w)) => order_holds(op, compare_numbers(a, w)),
        (Value::Number(a), CompValue::Str(w)) => match parse_number(w.trim()) {
            Some(w) => order_holds(op, compare_numbers(a, &w)),
            None => equality_holds(op, false),
        },
        _ => equality_holds(op, false),
    }
}

fn is_ordering(op: CompareOp) -> bool {
    matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
}

/// For values that can only be equal or not: `eq`/`ne` decide, the rest are false.
fn equality_holds(op: CompareOp, equal: bool) -> bool {
    match op {
        CompareOp::Eq => equal,
        CompareOp::Ne => !equal,
        _ => false,
    }
}

/// For ordered values; `co sw ew` do not apply. `None` (incomparable) holds only for `ne`.
fn order_holds(op: CompareOp, ordering: Option<Ordering>) -> bool {
    match (op, ordering) {
        (CompareOp::Ne, ordering) => ordering != Some(Ordering::Equal),
        (_, None) => false,
        (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
        (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
        (CompareOp::Ge, Some(o)) => o != Ordering::Less,
        (CompareOp::Lt, Some(o)) => o == Ordering::Less,
        (CompareOp::Le, Some(o)) => o != Ordering::Greater,
        (CompareOp::Co | CompareOp::Sw | CompareOp::Ew, Some(_)) => false,
    }
}

fn compare_strings(actual: &str, want: &str, op: CompareOp, case_exact: bool) -> bool {
    if is_ordering(op) {
        if let (Some(a), Some(w)) = (parse_instant(actual), parse_instant(want)) {
            return order_holds(op, Some(a.cmp(&w)));
        }
    }
    let (a, w) = (fold_case(actual, case_exact), fold_case(want, case_exact));
    match op {
        CompareOp::Co => a.contains(w.as_ref()),
        CompareOp::Sw => a.starts_with(w.as_ref()),
        CompareOp::Ew => a.ends_with(w.as_ref()),
        _ => order_holds(op, Some(a.cmp(&w))),
    }
}

fn fold_case(s: &str, case_exact: bool) -> Cow<'_, str> {
    if case_exact || s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    let exact = |n: &Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    match (exact(a), exact(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// An RFC 3339 date-time (`2011-05-13T04:42:34Z`, `2015-10-10T14:38:21.8617979-07:00`;
/// `t`/`z` and a space separator tolerated, offset colon optional) as (seconds since the
/// Unix epoch, nanoseconds). Digits beyond nanoseconds are ignored.
fn parse_instant(s: &str) -> Option<(i64, u32)> {
    let mut c = Cursor { bytes: s.as_bytes(), pos: 0 };
    let year = c.number(4)?;
    c.expect(b'-')?;
    let month = c.number(2)?;
    c.expect(b'-')?;
    let day = c.number(2)?;
    if !matches!(c.next()?, b'T' | b't' | b' ') {
        return None;
    }
    let hour = c.number(2)?;
    c.expect(b':')?;
    let minute = c.number(2)?;
    c.expect(b':')?;
    let second = c.number(2)?;
    let mut nanos = 0u32;
    if c.eat(b'.') {
        let mut scale = 100_000_000;
        let mut digits = 0;
        while let Some(d) = c.digit() {
            nanos += d * scale;
            scale /= 10;
            digits += 1;
        }
        if digits == 0 {
            return None;
        }
    }
    let offset = match c.next()? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let hours = c.number(2)?;
            c.eat(b':');
            let minutes = c.number(2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let valid = c.pos == c.bytes.len()
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 60; // leap second
    if !valid {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some((seconds, nanos))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.pos).copied()?;
        self.pos += 1;
        Some(b)
    }
    fn eat(&mut self, want: u8) -> bool {
        let hit = self.bytes.get(self.pos) == Some(&want);
        if hit {
            self.pos += 1;
        }
        hit
    }
    fn expect(&mut self, want: u8) -> Option<()> {
        self.eat(want).then_some(())
    }
    fn digit(&mut self) -> Option<u32> {
        let d = self.bytes.get(self.pos).filter(|b| b.is_ascii_digit())?;
        self.pos += 1;
        Some(u32::from(d - b'0'))
    }
    /// Exactly `len` decimal digits.
    fn number(&mut self, len: usize) -> Option<i64> {
        (0..len).try_fold(0i64, |acc, _| Some(acc * 10 + i64::from(self.digit()?)))
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ---------------------------------------------------------------------------------------
// Query planning
// ---------------------------------------------------------------------------------------

/// The `eq` comparisons that must all hold for `filter` to hold: those on the top-level
/// `and` chain. Or/Not/value paths are not descended into, and `eq null` (which means
/// "missing", not "equals a value") is left out. The service layer uses these to pick an
/// index (`userName eq "x"`, `externalId eq "y"`, `displayName eq "z"`) and still
/// evaluates the whole filter on what the index returns.
pub fn required_equalities(filter: &Filter) -> Vec<(&AttrPath, &CompValue)> {
    fn walk<'f>(filter: &'f Filter, out: &mut Vec<(&'f AttrPath, &'f CompValue)>) {
        match filter {
            Filter::Compare(path, CompareOp::Eq, value) if *value != CompValue::Null => {
                out.push((path, value))
            }
            Filter::And(lhs, rhs) => {
                walk(lhs, out);
                walk(rhs, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(filter, &mut out);
    out
}

/// Every value compared with `eq` against attribute `attr` or `attr.value`, anywhere in
/// `filter` (names ASCII-case-insensitive, URN prefix ignored): `members eq "u1"`,
/// `members.value eq "u1"`, `members[value eq "u1"]`. The service uses these to fetch
/// exactly the memberships the filter can test, instead of loading every member.
/// `eq null` is left out.
pub fn compared_values<'a>(filter: &'a Filter, attr: &str) -> Vec<&'a CompValue> {
    fn targets(path: &AttrPath, attr: &str) -> bool {
        path.name.eq_ignore_ascii_case(attr)
            && path.sub.as_deref().is_none_or(|sub| sub.eq_ignore_ascii_case("value"))
    }
    /// `inside` is true within `attr[…]`, where paths are relative to `attr`'s elements.
    fn walk<'f>(filter: &'f Filter, attr: &str, inside: bool, out: &mut Vec<&'f CompValue>) {
        match filter {
            Filter::Compare(path, CompareOp::Eq, value) if *value != CompValue::Null => {
                let hit = if inside {
                    path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("value")
                } else {
                    targets(path, attr)
                };
                if hit {
                    out.push(value);
                }
            }
            Filter::ValuePath { attr: path, inner, then }
                if !inside && path.sub.is_none() && path.name.eq_ignore_ascii_case(attr) =>
            {
                walk(inner, attr, true, out);
                if let Some(then) = then {
                    walk(then, attr, true, out);
                }
            }
            Filter::And(lhs, rhs) | Filter::Or(lhs, rhs) => {
                walk(lhs, attr, inside, out);
                walk(rhs, attr, inside, out);
            }
            Filter::Not(inner) => walk(inner, attr, inside, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(filter, attr, false, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn p(s: &str) -> Filter {
        match parse(s) {
            Ok(f) => f,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn path(name: &str) -> AttrPath {
        AttrPath::new(name)
    }

    fn sub(name: &str, sub: &str) -> AttrPath {
        AttrPath { urn: None, name: name.into(), sub: Some(sub.into()) }
    }

    fn urn(urn: &str, name: &str, sub: Option<&str>) -> AttrPath {
        AttrPath { urn: Some(urn.into()), name: name.into(), sub: sub.map(Into::into) }
    }

    fn cmp(path: AttrPath, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare(path, op, value)
    }

    fn s(v: &str) -> CompValue {
        CompValue::Str(v.into())
    }

    fn num(v: i64) -> CompValue {
        CompValue::Num(v.into())
    }

    fn and(l: Filter, r: Filter) -> Filter {
        Filter::And(Box::new(l), Box::new(r))
    }

    fn or(l: Filter, r: Filter) -> Filter {
        Filter::Or(Box::new(l), Box::new(r))
    }

    fn not(f: Filter) -> Filter {
        Filter::Not(Box::new(f))
    }

    fn pr(path: AttrPath) -> Filter {
        Filter::Present(path)
    }

    fn vp(attr: &str, inner: Filter, then: Option<Filter>) -> Filter {
        Filter::ValuePath { attr: path(attr), inner: Box::new(inner), then: then.map(Box::new) }
    }

    fn assert_round_trip(f: &Filter) {
        let printed = f.to_string();
        assert_eq!(parse(&printed).as_ref(), Ok(f), "round trip through {printed:?}");
    }

    /// RFC 7644 §3.4.2.2 examples, verbatim.
    const RFC_EXAMPLES: &[&str] = &[
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];

    /// What Microsoft Entra ID (and its reference code's test collection) sends.
    const ENTRA_EXAMPLES: &[&str] = &[
        r#"userName eq "0f9a5a4e-3d1c-4d0b-9e3a-6b1c2d3e4f50""#,
        r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#,
        r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#,
        r#"externalId eq jyoung"#,
        r#"displayName eq "displayName""#,
        r#"DisplayName eq "Group1DisplayName""#,
        r#"emails[type eq "work"].value eq "Test_User_x@testuser.com""#,
        r#"id eq "2819c223-7f76-453a-919d-413861904646" and manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
        r#"id eq "9a3f2ac0-d7b1-4b3a-8a36-0f55e4a7f2a1" and members eq "f648f8d5ea4e4cd38e9c""#,
        r#"active eq true and (meta.lastModified ge "2023-01-01T00:00:00Z" and meta.lastModified le "2023-12-31T23:59:59Z")"#,
        r#"name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)"#,
        r#"userName sw O"#,
        r#"meta.Created gt 2015-10-10T14:38:21.8617979-07:00"#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
        r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
    ];

    // ---- parsing: structure -------------------------------------------------------------

    #[test]
    fn parses_rfc_and_entra_examples() {
        for input in RFC_EXAMPLES.iter().chain(ENTRA_EXAMPLES) {
            assert_round_trip(&p(input));
        }
    }

    #[test]
    fn parses_structure_of_rfc_examples() {
        assert_eq!(p(r#"userName eq "bjensen""#), cmp(path("userName"), CompareOp::Eq, s("bjensen")));
        assert_eq!(
            p(r#"name.familyName co "O'Malley""#),
            cmp(sub("name", "familyName"), CompareOp::Co, s("O'Malley"))
        );
        assert_eq!(
            p(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#),
            cmp(urn("urn:ietf:params:scim:schemas:core:2.0:User", "userName", None), CompareOp::Sw, s("J"))
        );
        assert_eq!(p("title pr"), pr(path("title")));
        assert_eq!(
            p(r#"title pr and userType eq "Employee""#),
            and(pr(path("title")), cmp(path("userType"), CompareOp::Eq, s("Employee")))
        );
        assert_eq!(
            p(r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#),
            and(
                cmp(path("userType"), CompareOp::Ne, s("Employee")),
                not(or(
                    cmp(path("emails"), CompareOp::Co, s("example.com")),
                    cmp(sub("emails", "value"), CompareOp::Co, s("example.org"))
                ))
            )
        );
        assert_eq!(
            p(
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#
            ),
            or(
                vp(
                    "emails",
                    and(
                        cmp(path("type"), CompareOp::Eq, s("work")),
                        cmp(path("value"), CompareOp::Co, s("@example.com"))
                    ),
                    None
                ),
                vp(
                    "ims",
                    and(
                        cmp(path("type"), CompareOp::Eq, s("xmpp")),
                        cmp(path("value"), CompareOp::Co, s("@foo.com"))
                    ),
                    None
                ),
            )
        );
    }

    #[test]
    fn parses_value_path_with_trailing_comparison() {
        assert_eq!(
            p(r#"emails[type eq "work"].value eq "x@example.com""#),
            vp(
                "emails",
                cmp(path("type"), CompareOp::Eq, s("work")),
                Some(cmp(path("value"), CompareOp::Eq, s("x@example.com")))
            )
        );
        assert_eq!(
            p(r#"emails[type eq "work"].primary pr and title pr"#),
            and(
                vp("emails", cmp(path("type"), CompareOp::Eq, s("work")), Some(pr(path("primary")))),
                pr(path("title"))
            )
        );
    }

    #[test]
    fn splits_urn_prefixed_paths_at_the_last_colon() {
        assert_eq!(
            p(&format!("{ENTERPRISE}:employeeNumber eq \"1\"")),
            cmp(urn(ENTERPRISE, "employeeNumber", None), CompareOp::Eq, s("1"))
        );
        assert_eq!(
            p(&format!("{ENTERPRISE}:manager.value eq \"1\"")),
            cmp(urn(ENTERPRISE, "manager", Some("value")), CompareOp::Eq, s("1"))
        );
        assert_eq!(
            p("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:tag pr"),
            pr(urn("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User", "tag", None))
        );
        assert_eq!(p("meta.lastModified pr"), pr(sub("meta", "lastModified")));
        assert_eq!(p("members.$ref pr"), pr(sub("members", "$ref")));
    }

    #[test]
    fn and_binds_tighter_than_or_and_chains_are_left_associative() {
        let (a, b, c) = (pr(path("a")), pr(path("b")), pr(path("c")));
        assert_eq!(p("a pr or b pr and c pr"), or(a.clone(), and(b.clone(), c.clone())));
        assert_eq!(p("a pr and b pr or c pr"), or(and(a.clone(), b.clone()), c.clone()));
        assert_eq!(p("a pr or b pr or c pr"), or(or(a.clone(), b.clone()), c.clone()));
        assert_eq!(p("a pr and b pr and c pr"), and(and(a.clone(), b.clone()), c.clone()));
        assert_eq!(p("(a pr or b pr) and c pr"), and(or(a.clone(), b.clone()), c.clone()));
        assert_eq!(p("a pr and (b pr or c pr)"), and(a.clone(), or(b.clone(), c.clone())));
        assert_eq!(p("not (a pr) and b pr"), and(not(a.clone()), b.clone()));
        assert_eq!(p("((a pr))"), a);
    }

    #[test]
    fn keywords_and_operators_are_case_insensitive() {
        assert_eq!(p(r#"userName EQ "x" AND title PR"#), p(r#"userName eq "x" and title pr"#));
        assert_eq!(p(r#"NOT (title Pr) Or userName Sw "J""#), p(r#"not (title pr) or userName sw "J""#));
        for (op, want) in [
            ("Eq", CompareOp::Eq),
            ("NE", CompareOp::Ne),
            ("cO", CompareOp::Co),
            ("SW", CompareOp::Sw),
            ("Ew", CompareOp::Ew),
            ("GT", CompareOp::Gt),
            ("gE", CompareOp::Ge),
            ("Lt", CompareOp::Lt),
            ("LE", CompareOp::Le),
        ] {
            assert_eq!(p(&format!("x {op} 1")), cmp(path("x"), want, num(1)));
        }
        assert_eq!(p("active eq TRUE"), cmp(path("active"), CompareOp::Eq, CompValue::Bool(true)));
        assert_eq!(p("active eq False"), cmp(path("active"), CompareOp::Eq, CompValue::Bool(false)));
        assert_eq!(p("manager eq NULL"), cmp(path("manager"), CompareOp::Eq, CompValue::Null));
    }

    #[test]
    fn tolerates_whitespace_variants() {
        let want = p(r#"not (a eq "x") and (b pr)"#);
        assert_eq!(p("not(a eq \"x\")and(b pr)"), want);
        assert_eq!(p("  not\t( a  eq\"x\" )\n and ( b pr )  "), want);
        assert_eq!(
            p(r#"emails [type eq "work"]"#),
            vp("emails", cmp(path("type"), CompareOp::Eq, s("work")), None)
        );
    }

    #[test]
    fn not_without_parenthesis_is_an_attribute_name() {
        assert_eq!(p("not pr"), pr(path("not")));
        assert_eq!(p(r#"not eq "x""#), cmp(path("not"), CompareOp::Eq, s("x")));
        assert_eq!(p("a pr and and pr"), and(pr(path("a")), pr(path("and"))));
    }

    #[test]
    fn parses_values() {
        let value = |input: &str| match p(&format!("x eq {input}")) {
            Filter::Compare(_, _, v) => v,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(value(r#""plain""#), s("plain"));
        assert_eq!(value(r#""""#), s(""));
        assert_eq!(value(r#""a\"b\\c\/d\b\f\n\r\t""#), s("a\"b\\c/d\u{8}\u{c}\n\r\t"));
        assert_eq!(value(r#""caf\u00e9 \u00C9""#), s("café É"));
        assert_eq!(value(r#""\ud83d\ude00""#), s("😀"));
        assert_eq!(value(r#""ünïcødé (and) [or] not""#), s("ünïcødé (and) [or] not"));
        assert_eq!(value("42"), num(42));
        assert_eq!(value("-7"), num(-7));
        assert_eq!(value("18446744073709551615"), CompValue::Num(u64::MAX.into()));
        assert_eq!(value("1.5"), CompValue::Num(Number::from_f64(1.5).unwrap()));
        assert_eq!(value("1e3"), CompValue::Num(Number::from_f64(1000.0).unwrap()));
        assert_eq!(value("true"), CompValue::Bool(true));
        assert_eq!(value("null"), CompValue::Null);
        // Unquoted non-literals are strings.
        assert_eq!(value("jyoung"), s("jyoung"));
        assert_eq!(value("example.com"), s("example.com"));
        assert_eq!(value("2015-10-10T14:38:21.8617979-07:00"), s("2015-10-10T14:38:21.8617979-07:00"));
        assert_eq!(value("007"), s("007"));
        assert_eq!(value("+1"), s("+1"));
        assert_eq!(value("trueish"), s("trueish"));
        assert_eq!(value("ünï"), s("ünï"));
        // Quoted literals stay strings.
        assert_eq!(value(r#""true""#), s("true"));
        assert_eq!(value(r#""42""#), s("42"));
    }

    #[test]
    fn unquoted_value_ends_at_a_delimiter() {
        assert_eq!(p("(externalId eq jyoung)"), cmp(path("externalId"), CompareOp::Eq, s("jyoung")),);
        assert_eq!(
            p("members[value eq abc]"),
            vp("members", cmp(path("value"), CompareOp::Eq, s("abc")), None)
        );
    }

    // ---- parsing: errors ----------------------------------------------------------------

    #[test]
    fn reports_errors_with_offsets() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "the filter is empty"),
            ("   ", 0, "the filter is empty"),
            (
                "userName",
                8,
                "expected an operator (eq, ne, co, sw, ew, pr, gt, ge, lt, le) after \"userName\"",
            ),
            (r#"userName foo "x""#, 9, "expected an operator"),
            (r#"userName equals "x""#, 9, "expected an operator"),
            (
                r#"userName eq "bjensen" extra"#,
                22,
                "expected \"and\", \"or\" or the end of the filter, found \"extra\"",
            ),
            (r#"userName eq "bjensen"#, 12, "unterminated string"),
            (r#"userName eq "bjensen\"#, 12, "unterminated string"),
            (r#"emails[type eq "work""#, 21, "the \"[\" at offset 6 is never closed"),
            (r#"(userName eq "x""#, 16, "the \"(\" at offset 0 is never closed"),
            (r#"not (userName eq "x""#, 20, "the \"(\" at offset 4 is never closed"),
            (r#"userName eq "x")"#, 15, "found \")\""),
            (r#"(userName eq "x"]"#, 16, "expected \"and\", \"or\" or \")\", found \"]\""),
            (r#"emails[type eq "x")"#, 18, "expected \"and\", \"or\" or \"]\", found \")\""),
            ("userName eq", 11, "expected a value after \"eq\", found the end of the filter"),
            ("userName eq )", 12, "expected a value after \"eq\", found \")\""),
            (r#""x" eq userName"#, 0, "expected an attribute name, \"not (\" or \"(\", found \"\\\"\""),
            (r#"1abc eq "x""#, 0, "invalid attribute name \"1abc\""),
            (r#"name.1x eq "x""#, 5, "invalid attribute name \"1x\""),
            (r#"name.a.b eq "x""#, 5, "more than one level of sub-attributes"),
            (r#"urn:foo: eq "x""#, 8, "expected an attribute name after the schema URN"),
            (r#":name eq "x""#, 0, "schema URN before \":\" is empty"),
            (r#"userName eq "\q""#, 13, "invalid escape \"\\q\""),
            (r#"userName eq "\u12""#, 13, "expected four hex digits"),
            (r#"userName eq "\ud800""#, 13, "unpaired UTF-16 surrogate"),
            (r#"userName eq "\ud800\u0041""#, 13, "unpaired UTF-16 surrogate"),
            (r#"userName eq "\udc00""#, 13, "unpaired UTF-16 surrogate"),
            (r#"not userName eq "x""#, 4, "expected \"(\" after \"not\""),
            ("title pr and", 12, "found the end of the filter"),
            ("title pr and ()", 14, "found \")\""),
            ("()", 1, "expected an attribute name"),
            (r#"emails[ims[type eq "x"]]"#, 10, "value filters cannot be nested"),
            (r#"name.givenName[value pr]"#, 14, "must follow a multi-valued attribute"),
            (r#"emails[type eq "work"]."#, 23, "expected a sub-attribute name after \"].\""),
            (r#"emails[type eq "work"].value"#, 28, "after \"emails[type eq \\\"work\\\"].value\""),
            (r#"emails[type eq "work"] eq "x""#, 23, "found \"eq\""),
        ];
        for &(input, offset, message) in cases {
            match parse(input) {
                Ok(f) => panic!("{input:?} parsed as {f:?}"),
                Err(e) => {
                    assert!(e.message.contains(message), "{input:?}: {e:?} should contain {message:?}");
                    assert_eq!(e.offset, offset, "{input:?}: {e}");
                    assert!(e.offset <= input.len());
                }
            }
        }
    }

    #[test]
    fn error_display_names_the_offset() {
        let e = parse(r#"userName foo "x""#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"expected an operator (eq, ne, co, sw, ew, pr, gt, ge, lt, le) after "userName" at offset 9"#
        );
    }

    #[test]
    fn bounds_nesting_depth() {
        let nested = |depth: usize, open: &str| format!("{}a pr{}", open.repeat(depth), ")".repeat(depth));
        assert!(parse(&nested(MAX_NESTING, "(")).is_ok());
        assert!(parse(&nested(MAX_NESTING, "not (")).is_ok());
        let e = parse(&nested(64, "(")).unwrap_err();
        assert_eq!(e.offset, MAX_NESTING);
        assert!(e.message.contains("nests more than 32 levels"), "{e}");
        assert!(parse(&nested(64, "not (")).unwrap_err().message.contains("nests"));
        // Far beyond anything a stack could take, and unbalanced.
        assert!(parse(&"(".repeat(1_000_000)).is_err());
        assert!(parse(&"not (".repeat(100_000)).is_err());
    }

    #[test]
    fn bounds_the_number_of_comparisons() {
        let chain = |n: usize| vec!["a pr"; n].join(" or ");
        let f = p(&chain(MAX_TERMS));
        assert!(matches(&f, &json!({"a": 1}), &|_| false));
        assert_round_trip(&f);
        let e = parse(&chain(MAX_TERMS + 1)).unwrap_err();
        assert!(e.message.contains("more than 256 comparisons"), "{e}");
        assert!(parse(&vec!["a pr"; 100_000].join(" and ")).is_err());
    }

    // ---- PATCH paths --------------------------------------------------------------------

    #[test]
    fn parses_patch_paths() {
        let pp = |input: &str| match parse_path(input) {
            Ok(path) => path,
            Err(e) => panic!("{input:?}: {e}"),
        };
        assert_eq!(pp("userName"), PatchPath { attr: path("userName"), filter: None, sub: None });
        assert_eq!(
            pp("name.givenName"),
            PatchPath { attr: sub("name", "givenName"), filter: None, sub: None }
        );
        assert_eq!(
            pp(r#"emails[type eq "work"].value"#),
            PatchPath {
                attr: path("emails"),
                filter: Some(cmp(path("type"), CompareOp::Eq, s("work"))),
                sub: Some("value".into())
            }
        );
        assert_eq!(
            pp(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#),
            PatchPath {
                attr: path("members"),
                filter: Some(cmp(path("value"), CompareOp::Eq, s("2819c223-7f76-453a-919d-413861904646"))),
                sub: None
            }
        );
        assert_eq!(
            pp(&format!("{ENTERPRISE}:employeeNumber")),
            PatchPath { attr: urn(ENTERPRISE, "employeeNumber", None), filter: None, sub: None }
        );
        assert_eq!(
            pp(&format!("{ENTERPRISE}:manager")),
            PatchPath { attr: urn(ENTERPRISE, "manager", None), filter: None, sub: None }
        );
        assert_eq!(
            pp(&format!("{ENTERPRISE}:manager.value")),
            PatchPath { attr: urn(ENTERPRISE, "manager", Some("value")), filter: None, sub: None }
        );
        assert_eq!(
            pp(r#"addresses[type eq "work" and primary eq true].Formatted"#),
            PatchPath {
                attr: path("addresses"),
                filter: Some(and(
                    cmp(path("type"), CompareOp::Eq, s("work")),
                    cmp(path("primary"), CompareOp::Eq, CompValue::Bool(true))
                )),
                sub: Some("Formatted".into())
            }
        );
        assert_eq!(pp("  members "), PatchPath { attr: path("members"), filter: None, sub: None });
        for input in [
            "userName",
            "name.givenName",
            r#"emails[type eq "work"].value"#,
            r#"members[value eq "x" or not (display pr)]"#,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        ] {
            let parsed = pp(input);
            assert_eq!(parse_path(&parsed.to_string()), Ok(parsed));
        }
    }

    #[test]
    fn reports_patch_path_errors() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "the path is empty"),
            ("userName extra", 9, "expected \"[\" or the end of the path, found \"extra\""),
            (r#"emails[type eq "work""#, 21, "never closed"),
            (r#"emails[type eq "work"]."#, 23, "expected a sub-attribute name"),
            (r#"emails[type eq "work"].value.x"#, 23, "expected a sub-attribute name"),
            (r#"emails[type eq "work"]x"#, 22, "expected \".\" or the end of the path"),
            (r#"emails[type eq "work"].value x"#, 29, "expected the end of the path"),
            (r#"emails[]"#, 7, "expected an attribute name"),
            (r#"[type eq "work"]"#, 0, "expected an attribute name, found \"[\""),
            ("name.givenName[value pr]", 14, "must follow a multi-valued attribute"),
            ("a.b.c", 2, "more than one level"),
        ];
        for &(input, offset, message) in cases {
            match parse_path(input) {
                Ok(path) => panic!("{input:?} parsed as {path:?}"),
                Err(e) => {
                    assert!(e.message.contains(message), "{input:?}: {e:?} should contain {message:?}");
                    assert_eq!(e.offset, offset, "{input:?}: {e}");
                }
            }
        }
    }

    // ---- printing -----------------------------------------------------------------------

    #[test]
    fn prints_canonical_form() {
        let cases = [
            (r#"userName EQ bjensen"#, r#"userName eq "bjensen""#),
            (r#"  title   PR  "#, "title pr"),
            ("((a pr or b pr)) and c pr", "(a pr or b pr) and c pr"),
            ("a pr or (b pr and c pr)", "a pr or b pr and c pr"),
            ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
            ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
            ("(a pr and b pr) and c pr", "a pr and b pr and c pr"),
            ("NOT(a pr)", "not (a pr)"),
            (r#"emails[type eq "work"].value eq x"#, r#"emails[type eq "work"].value eq "x""#),
            (r#"x eq "a\"b\\c\n\u0001é""#, r#"x eq "a\"b\\c\n\u0001é""#),
            ("x gt 1.50", "x gt 1.5"),
            ("x eq True", "x eq true"),
            ("x eq NULL", "x eq null"),
        ];
        for (input, printed) in cases {
            assert_eq!(p(input).to_string(), printed, "{input:?}");
        }
        assert_eq!(
            or(pr(path("a")), or(pr(path("b")), and(pr(path("c")), not(pr(path("d")))))).to_string(),
            "a pr or (b pr or c pr and not (d pr))"
        );
    }

    /// A tiny deterministic generator (xorshift), enough for property-style tests
    /// without a dev-dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    fn random_path(rng: &mut Rng, plain: bool) -> AttrPath {
        let names = ["userName", "emails", "not", "and", "or", "pr", "eq", "$ref", "x-y_z9", "Value"];
        let name = rng.pick(&names).to_string();
        if plain {
            return AttrPath::new(name);
        }
        let urns = [None, Some(ENTERPRISE), Some("urn:ietf:params:scim:schemas:core:2.0:User"), Some("a:b")];
        let subs = [None, None, Some("value"), Some("familyName"), Some("not")];
        AttrPath { urn: rng.pick(&urns).map(str::to_owned), name, sub: rng.pick(&subs).map(str::to_owned) }
    }

    fn random_value(rng: &mut Rng) -> CompValue {
        let strings = [
            "",
            "x",
            "true",
            "42",
            "and",
            "a b",
            "q\"uote",
            "back\\slash",
            "ctl\u{1}\u{7f}\n\t",
            "é😀",
            ")]",
            "null",
        ];
        match rng.below(6) {
            0 => CompValue::Str(rng.pick(&strings).to_string()),
            1 => CompValue::Num((rng.next() as i64).into()),
            2 => {
                CompValue::Num(Number::from_f64(f64::from_bits(rng.next()) % 1e6).unwrap_or_else(|| 0.into()))
            }
            3 => CompValue::Bool(rng.below(2) == 0),
            4 => CompValue::Null,
            _ => CompValue::Num(rng.next().into()),
        }
    }

    fn random_filter(rng: &mut Rng, depth: usize, in_value_filter: bool) -> Filter {
        let leaf = depth == 0 || rng.below(3) == 0;
        let ops = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        let attr_exp = |rng: &mut Rng, plain: bool| {
            if rng.below(4) == 0 {
                Filter::Present(random_path(rng, plain))
            } else {
                Filter::Compare(random_path(rng, plain), *rng.pick(&ops), random_value(rng))
            }
        };
        if leaf {
            return attr_exp(rng, false);
        }
        let sub = |rng: &mut Rng| Box::new(random_filter(rng, depth - 1, in_value_filter));
        match rng.below(if in_value_filter { 3 } else { 4 }) {
            0 => Filter::And(sub(rng), sub(rng)),
            1 => Filter::Or(sub(rng), sub(rng)),
            2 => Filter::Not(sub(rng)),
            _ => Filter::ValuePath {
                attr: AttrPath { sub: None, ..random_path(rng, false) },
                inner: Box::new(random_filter(rng, depth - 1, true)),
                then: (rng.below(2) == 0).then(|| Box::new(attr_exp(rng, true))),
            },
        }
    }

    #[test]
    fn random_filters_round_trip() {
        let mut rng = Rng(0x5eed_cafe_f00d_d00d);
        for _ in 0..5_000 {
            let f = random_filter(&mut rng, 5, false);
            assert_round_trip(&f);
        }
    }

    #[test]
    fn random_inputs_never_panic_and_round_trip_when_accepted() {
        let tokens = [
            "userName",
            "emails",
            " ",
            " ",
            "eq",
            "pr",
            "ne",
            "gt",
            "and",
            "or",
            "not",
            "(",
            ")",
            "[",
            "]",
            ".",
            ":",
            "\"",
            "\"x\"",
            "\\",
            "\\u",
            "d83d",
            "1.5",
            "-",
            "true",
            "null",
            "é",
            "😀",
            "urn:a:b",
            "value",
            "\t",
            "title pr",
            "userName eq \"b\"",
            "emails[type eq \"w\"]",
            "and a pr",
            "or x lt 2",
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let user = sample_user();
        let mut accepted = 0;
        for _ in 0..30_000 {
            let len = rng.below(12);
            let input: String = (0..len)
                .map(|_| {
                    let sep = if rng.below(3) == 0 { "" } else { " " };
                    format!("{sep}{}", rng.pick(&tokens))
                })
                .collect();
            if let Ok(f) = parse(&input) {
                accepted += 1;
                assert_round_trip(&f);
                let _ = matches(&f, &user, &|_| false);
                let _ = required_equalities(&f);
                let _ = compared_values(&f, "emails");
            }
            if let Ok(path) = parse_path(&input) {
                assert_eq!(parse_path(&path.to_string()), Ok(path.clone()), "{input:?}");
            }
        }
        assert!(accepted > 300, "only {accepted} random inputs parsed; the generator needs tuning");
        // Arbitrary characters, including multi-byte ones next to delimiters.
        for _ in 0..30_000 {
            let len = rng.below(16);
            let input: String = (0..len)
                .map(|_| {
                    // Mostly ASCII (where the grammar lives), sometimes anything.
                    let limit = if rng.below(4) == 0 { 0x11_0000 } else { 0x80 };
                    char::from_u32(rng.below(limit) as u32).unwrap_or('\u{fffd}')
                })
                .collect();
            if let Ok(f) = parse(&input) {
                assert_round_trip(&f);
            }
            let _ = parse_path(&input);
        }
    }

    // ---- evaluation ---------------------------------------------------------------------

    fn sample_user() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "bjensen",
            "userName": "bjensen@example.com",
            "name": { "familyName": "Jensen", "givenName": "Barbara", "honorificPrefix": "Ms." },
            "displayName": "Babs Jensen",
            "nickName": null,
            "profileUrl": "",
            "title": "Tour Guide",
            "userType": "Employee",
            "active": true,
            "loginCount": 42,
            "ratio": 0.25,
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" }
            ],
            "ims": [ { "value": "someaimhandle", "type": "aim" } ],
            "roles": [],
            "nicknames": ["Babs", "BJ"],
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z"
            },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith" }
            }
        })
    }

    /// `id` and `externalId` are case-exact (RFC 7643), as is the made-up `emails.type`
    /// here, to show that value filters ask about the qualified path.
    fn user_case_exact(path: &AttrPath) -> bool {
        let top = path.urn.is_none() && path.sub.is_none();
        (top && (path.name.eq_ignore_ascii_case("id") || path.name.eq_ignore_ascii_case("externalId")))
            || (path.name.eq_ignore_ascii_case("emails") && path.sub.as_deref() == Some("type"))
    }

    fn check(resource: &Value, cases: &[(&str, bool)]) {
        for &(input, want) in cases {
            let f = p(input);
            assert_eq!(matches(&f, resource, &user_case_exact), want, "{input}");
            assert_round_trip(&f);
        }
    }

    #[test]
    fn evaluates_rfc_examples() {
        check(
            &sample_user(),
            &[
                (r#"userName eq "bjensen@example.com""#, true),
                (r#"name.familyName co "O'Malley""#, false),
                (r#"name.familyName co "ens""#, true),
                (r#"userName sw "J""#, false),
                (r#"userName sw "B""#, true),
                (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#, true),
                (r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "barbara""#, true),
                ("title pr", true),
                (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
                (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
                (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
                (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
                (r#"title pr and userType eq "Employee""#, true),
                (r#"title pr or userType eq "Intern""#, true),
                (r#"userType eq "Intern" or nickName pr"#, false),
                (r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#, true),
                (
                    r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                    true,
                ),
                (
                    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                    false,
                ),
                (r#"not (emails co "example.net" or emails.value co "example.org")"#, true),
                (r#"userType eq "Employee" and (emails.type eq "work")"#, true),
                (r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#, true),
                (r#"emails[type eq "home" and value co "@example.com"]"#, false),
                (
                    r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                    true,
                ),
                (r#"ims[type eq "xmpp" and value co "@foo.com"]"#, false),
            ],
        );
    }

    #[test]
    fn evaluates_entra_forms() {
        check(
            &sample_user(),
            &[
                (r#"userName eq "BJensen@Example.com""#, true),
                (r#"UserName eq "bjensen@example.com""#, true),
                (r#"DisplayName eq "babs jensen""#, true),
                (r#"externalId eq bjensen"#, true),
                (r#"externalId eq "BJENSEN""#, false),
                (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
                (
                    r#"id eq "2819c223-7f76-453a-919d-413861904646" and manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                    true,
                ),
                (r#"emails[type eq "work"].value eq "bjensen@example.com""#, true),
                (r#"emails[type eq "home"].value eq "bjensen@example.com""#, false),
                (r#"emails[type eq "WORK"].value eq "bjensen@example.com""#, false),
                (r#"emails[type eq "work"].primary eq true"#, true),
                (r#"emails[type eq "home"].primary pr"#, false),
                (
                    r#"name.FamilyName eq jensen and (emails.Value co example.com or emails.Value co example.org)"#,
                    true,
                ),
                (
                    r#"name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)"#,
                    false,
                ),
                ("meta.Created gt 2015-10-10T14:38:21.8617979-07:00", false),
                ("meta.Created lt 2015-10-10T14:38:21.8617979-07:00", true),
                (
                    r#"active eq true and (meta.lastModified ge "2011-01-01T00:00:00Z" and meta.lastModified le "2011-12-31T23:59:59Z")"#,
                    true,
                ),
                (
                    r#"active eq true and (meta.lastModified ge "2026-01-01T00:00:00.000Z" and meta.lastModified le "2026-12-31T23:59:59Z")"#,
                    false,
                ),
                (
                    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                    true,
                ),
                ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 701984", true),
                ("URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:EmployeeNumber sw 70", true),
                (
                    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                    true,
                ),
                (
                    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                    true,
                ),
                (r#"urn:ietf:params:scim:schemas:extension:other:2.0:User:employeeNumber pr"#, false),
                (r#"department eq "tour operations""#, true),
            ],
        );
    }

    #[test]
    fn evaluates_types_and_missing_attributes() {
        check(
            &sample_user(),
            &[
                // Booleans, including Entra's string spelling.
                ("active eq true", true),
                ("active eq false", false),
                ("active ne false", true),
                (r#"active eq "True""#, true),
                (r#"active eq "false""#, false),
                ("active gt false", false),
                ("active co true", false),
                ("active eq 1", false),
                ("active ne 1", true),
                // Numbers.
                ("loginCount eq 42", true),
                ("loginCount eq 42.0", true),
                (r#"loginCount eq "42""#, true),
                ("loginCount gt 41", true),
                ("loginCount ge 42", true),
                ("loginCount lt 42", false),
                (r#"loginCount le "1e2""#, true),
                ("loginCount co 4", false),
                (r#"loginCount eq "forty-two""#, false),
                ("ratio lt 0.5", true),
                ("ratio gt 0", true),
                // Strings: lexicographic ordering, case folded unless case-exact.
                (r#"userName gt "a""#, true),
                (r#"userName lt "C""#, true),
                (r#"externalId lt "C""#, false),
                (r#"title ew "GUIDE""#, true),
                (r#"title sw "tour""#, true),
                (r#"name.givenName eq 42"#, false),
                // Multi-valued simple attribute: any element.
                (r#"nicknames eq "bj""#, true),
                (r#"nicknames ne "babs""#, true),
                (r#"nicknames sw "x""#, false),
                // `ne` on a multi-valued attribute holds if any value differs.
                (r#"emails.type ne "work""#, true),
                (r#"ims.type ne "aim""#, false),
                // Presence.
                ("nickName pr", false),
                ("profileUrl pr", false),
                ("roles pr", false),
                ("name pr", true),
                ("emails pr", true),
                ("emails.primary pr", true),
                ("ims.primary pr", false),
                ("nosuch pr", false),
                // Missing attributes: everything false except `ne`.
                (r#"nickName eq "x""#, false),
                (r#"nickName ne "x""#, true),
                (r#"nosuch gt "a""#, false),
                (r#"nosuch co "a""#, false),
                (r#"roles eq "x""#, false),
                (r#"roles ne "x""#, true),
                (r#"name.middleName ne "x""#, true),
                ("nosuch eq null", true),
                ("nickName eq null", true),
                ("userName eq null", false),
                ("userName ne null", true),
                ("userName gt null", false),
                // A complex attribute without `value` compares as missing.
                (r#"name eq "Jensen""#, false),
                (r#"name ne "Jensen""#, true),
                (r#"not (userName eq "x")"#, true),
            ],
        );
    }

    #[test]
    fn value_filters_ask_case_exactness_of_the_qualified_path() {
        let user = sample_user();
        let asked = std::cell::RefCell::new(Vec::new());
        let case_exact = |path: &AttrPath| {
            asked.borrow_mut().push(path.to_string());
            false
        };
        assert!(matches(&p(r#"emails[type eq "WORK"].value eq "BJENSEN@example.com""#), &user, &case_exact));
        assert_eq!(asked.borrow().as_slice(), ["emails.type", "emails.value"]);
    }

    #[test]
    fn compares_date_times_as_instants() {
        let at = |stamp: &str| json!({ "meta": { "lastModified": stamp } });
        let cases = [
            ("2011-05-13T04:42:34Z", r#"meta.lastModified lt "2011-05-12T23:42:35-05:00""#, true),
            ("2011-05-13T04:42:34Z", r#"meta.lastModified eq "2011-05-12T23:42:34-05:00""#, false),
            ("2011-05-13T04:42:34Z", r#"meta.lastModified ge "2011-05-12T23:42:34-05:00""#, true),
            ("2011-05-13T04:42:34Z", r#"meta.lastModified le "2011-05-12T23:42:34-05:00""#, true),
            ("2011-05-13T04:42:34.000Z", r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
            ("2011-05-13T04:42:34.5Z", r#"meta.lastModified gt "2011-05-13T04:42:34.4999999999Z""#, true),
            ("2015-10-10T21:38:21.8617979Z", "meta.lastModified ge 2015-10-10T14:38:21.8617979-07:00", true),
            ("2015-10-10T21:38:21.8617979Z", "meta.lastModified gt 2015-10-10T14:38:21.8617979-07:00", false),
            ("2026-01-01T00:00:00.000Z", r#"meta.lastModified gt "2025-12-31T23:59:59.999+00:00""#, true),
            ("2026-01-01T00:00:00.000Z", r#"meta.lastModified lt "2026-01-01T01:00:00+0100""#, false),
            ("2024-02-29t12:00:00z", r#"meta.lastModified gt "2024-02-29T11:59:59Z""#, true),
            // Not date-times on both sides: lexicographic.
            ("2011-05-13", r#"meta.lastModified lt "2011-05-14""#, true),
            ("2023-02-30T00:00:00Z", r#"meta.lastModified gt "2023-03-01T00:00:00+14:00""#, false),
        ];
        for (stamp, input, want) in cases {
            assert_eq!(matches(&p(input), &at(stamp), &|_| false), want, "{stamp} vs {input}");
        }
    }

    #[test]
    fn parses_instants() {
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(parse_instant("1970-01-01T01:00:00+01:00"), Some((0, 0)));
        assert_eq!(parse_instant("2000-03-01T00:00:00Z"), Some((951_868_800, 0)));
        assert_eq!(parse_instant("1969-12-31T23:59:59.25Z"), Some((-1, 250_000_000)));
        assert_eq!(parse_instant("2015-10-10T14:38:21.8617979-07:00"), Some((1_444_513_101, 861_797_900)));
        for bad in [
            "",
            "2011-05-13",
            "2011-05-13T04:42:34",
            "2011-05-13T04:42Z",
            "2011-13-13T04:42:34Z",
            "2011-02-29T04:42:34Z",
            "2011-05-13T24:00:00Z",
            "2011-05-13T04:42:34.Z",
            "2011-05-13T04:42:34Zjunk",
            "2011-05-13T04:42:34+24:00",
            "20110-05-13T04:42:34Z",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn evaluates_group_membership() {
        let group = json!({
            "id": "g1",
            "displayName": "Admins",
            "members": [
                { "value": "u1", "display": "One" },
                { "value": "u2", "$ref": "https://example.com/Users/u2" }
            ]
        });
        check(
            &group,
            &[
                (r#"id eq "g1" and members eq "u2""#, true),
                (r#"id eq "g1" and members eq "u3""#, false),
                (r#"members.value eq "u1""#, true),
                (r#"Members[Value eq "u2"]"#, true),
                (r#"members[value eq "u1" and display pr]"#, true),
                (r#"members[value eq "u2" and display pr]"#, false),
                ("members.$ref pr", true),
                (r#"displayName eq "admins""#, true),
            ],
        );
        let empty = json!({ "id": "g2", "displayName": "Empty", "members": [] });
        check(
            &empty,
            &[(r#"members eq "u1""#, false), ("members pr", false), (r#"members[value eq "u1"]"#, false)],
        );
    }

    #[test]
    fn evaluation_tolerates_odd_resources() {
        let f = p(r#"emails[type eq "work"].value eq "x" or name.givenName co "a" or urn:x:y:z pr"#);
        for resource in [
            json!(null),
            json!("string"),
            json!([1, 2]),
            json!({ "emails": "x", "name": [1, null, {"givenName": ["a"]}], "urn:x:y": 5 }),
            json!({ "emails": [null, 1, [], {"type": ["work"], "value": [["x"]]}] }),
            json!({ "emails": { "type": "work", "value": "x" } }),
        ] {
            let _ = matches(&f, &resource, &|_| true);
        }
        // A single complex object where a multi-valued one was expected is still filtered.
        assert!(matches(&f, &json!({ "emails": { "type": "work", "value": "x" } }), &|_| true));
        assert!(matches(&f, &json!({ "name": [{"givenName": "Kai"}] }), &|_| true));
    }

    // ---- query planning -----------------------------------------------------------------

    #[test]
    fn finds_required_equalities_on_the_top_level_and_chain() {
        let eqs = |input: &str| -> Vec<(String, CompValue)> {
            required_equalities(&p(input))
                .into_iter()
                .map(|(path, v)| (path.to_string(), v.clone()))
                .collect()
        };
        assert_eq!(eqs(r#"userName eq "x""#), [("userName".into(), s("x"))]);
        assert_eq!(
            eqs(r#"id eq "g1" and members eq "u1""#),
            [("id".into(), s("g1")), ("members".into(), s("u1"))]
        );
        assert_eq!(
            eqs(r#"active eq true and (meta.lastModified ge "a" and meta.lastModified le "b")"#),
            [("active".into(), CompValue::Bool(true))]
        );
        assert_eq!(
            eqs(r#"a eq 1 and (b eq "2" and c eq "3") and d ne "4""#),
            [("a".into(), num(1)), ("b".into(), s("2")), ("c".into(), s("3"))]
        );
        assert_eq!(eqs(r#"userName eq "x" and not (title pr)"#), [("userName".into(), s("x"))]);
        assert!(eqs(r#"userName eq "x" or externalId eq "y""#).is_empty());
        assert!(eqs(r#"not (userName eq "x")"#).is_empty());
        assert!(eqs(r#"emails[type eq "work"].value eq "x""#).is_empty());
        assert!(eqs(r#"userName eq null"#).is_empty());
        assert!(eqs(r#"(a eq "1" or b eq "2") and c eq "3""#).len() == 1);
    }

    #[test]
    fn finds_compared_values_anywhere() {
        let vals = |input: &str, attr: &str| -> Vec<CompValue> {
            compared_values(&p(input), attr).into_iter().cloned().collect()
        };
        assert_eq!(vals(r#"id eq "g1" and members eq "u1""#, "members"), [s("u1")]);
        assert_eq!(vals(r#"members.value eq "u1" or MEMBERS eq "u2""#, "members"), [s("u1"), s("u2")]);
        assert_eq!(vals(r#"Members[Value eq "u3" or display eq "x"]"#, "members"), [s("u3")]);
        assert_eq!(vals(r#"members[type eq "User"].value eq "u4""#, "members"), [s("u4")]);
        assert_eq!(vals(r#"not (members eq "u5")"#, "members"), [s("u5")]);
        assert_eq!(
            vals(r#"urn:ietf:params:scim:schemas:core:2.0:Group:members eq "u6""#, "members"),
            [s("u6")]
        );
        assert!(vals(r#"members.display eq "x""#, "members").is_empty());
        assert!(vals(r#"members ne "x""#, "members").is_empty());
        assert!(vals(r#"members eq null"#, "members").is_empty());
        assert!(vals(r#"displayName eq "members""#, "members").is_empty());
        assert!(vals(r#"emails[value eq "x"]"#, "members").is_empty());
        assert!(vals(r#"emails[type eq "work"]"#, "emails").is_empty());
        assert_eq!(vals(r#"manager eq "m1""#, "manager"), [s("m1")]);
    }

    #[test]
    fn comp_value_as_text() {
        assert_eq!(s("x").as_str_lossy(), "x");
        assert_eq!(num(12345).as_str_lossy(), "12345");
        assert_eq!(CompValue::Bool(false).as_str_lossy(), "false");
        assert_eq!(CompValue::Null.as_str_lossy(), "null");
    }
}
