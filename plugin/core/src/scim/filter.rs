//! RFC 7644 §3.4.2.2 filters and §3.5.2 PATCH paths: parser, printer and evaluator.
//! Pure functions over `serde_json::Value`; no I/O.
//!
//! (Skeleton: the AST and the public signatures are fixed; bodies are being written.)

use serde_json::Value;

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
