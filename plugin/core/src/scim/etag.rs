//! Entity tags and conditional requests (RFC 7232) as SCIM uses them (RFC 7644 §3.14).
//!
//! A resource's version is the weak entity tag `W/"{n}"` of its record's version counter: the
//! `ETag` header of every single-resource answer and its `meta.version`. Weak, so every
//! comparison here is the weak one (RFC 7232 §2.3.2: the opaque tags are equal, `W/` aside).
//! Pure: the callers hold the version they read and make the write conditional on it, so a
//! precondition is checked against the version actually written over.

use http::header::{HeaderMap, HeaderName, IF_MATCH, IF_NONE_MATCH};
use http::StatusCode;

use crate::error::{ScimError, ScimResult};

/// The entity tag of version `n` of a resource.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// The value of an `If-Match` or `If-None-Match` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tags {
    /// `*`: any current representation.
    Any,
    /// The opaque tags listed (without `W/` and quotes).
    List(Vec<String>),
}

impl Tags {
    /// The header's values (all lines, comma-separated lists), or `None` when it is absent.
    /// Lenient: an unquoted tag counts as its text, and empty list elements are skipped.
    fn parse(headers: &HeaderMap, name: &HeaderName) -> Option<Tags> {
        let mut tags = Vec::new();
        let mut present = false;
        for value in headers.get_all(name) {
            present = true;
            let text = String::from_utf8_lossy(value.as_bytes());
            for item in split_list(&text) {
                if item == "*" {
                    return Some(Tags::Any);
                }
                tags.push(opaque(item).to_owned());
            }
        }
        present.then_some(Tags::List(tags))
    }

    /// Weak comparison of the current entity tag `current` with the listed ones.
    fn matches(&self, current: &str) -> bool {
        match self {
            Tags::Any => true,
            Tags::List(tags) => tags.iter().any(|t| t == opaque(current)),
        }
    }
}

/// The elements of a comma-separated list of entity tags; commas inside quotes are part of a
/// tag (RFC 7232 `etagc` admits them).
fn split_list(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(text.get(start..).unwrap_or_default());
    out.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// An entity tag's opaque part: without `W/` and the quotes.
fn opaque(tag: &str) -> &str {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(tag)
}

/// A request's preconditions on the resource it names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<Tags>,
    pub if_none_match: Option<Tags>,
}

impl Preconditions {
    /// None: what internal callers (and requests without the headers) use.
    pub const NONE: Preconditions = Preconditions { if_match: None, if_none_match: None };

    pub fn from_headers(headers: &HeaderMap) -> Preconditions {
        Preconditions {
            if_match: Tags::parse(headers, &IF_MATCH),
            if_none_match: Tags::parse(headers, &IF_NONE_MATCH),
        }
    }

    /// Before a write (PUT, PATCH, DELETE) of the resource whose current entity tag is
    /// `current`: 412 when `If-Match` lists none that matches it, or `If-None-Match` one that
    /// does (RFC 7232 §3.1, §3.2). The caller then writes nothing.
    pub fn check_write(&self, resource: &str, current: &str) -> ScimResult<()> {
        if self.if_match.as_ref().is_some_and(|t| !t.matches(current)) {
            return Err(precondition_failed(format!(
                "If-Match does not match the current version {current} of {resource}: it was changed \
                 since it was read (nothing was changed; read it again)"
            )));
        }
        if self.if_none_match.as_ref().is_some_and(|t| t.matches(current)) {
            return Err(precondition_failed(format!(
                "If-None-Match matches the current version {current} of {resource} (nothing was changed)"
            )));
        }
        Ok(())
    }

    /// For a read (GET): whether the client's copy is current (`If-None-Match` matches, the
    /// answer is 304 Not Modified). `If-Match` on a read is 412 when it does not match.
    pub fn check_read(&self, resource: &str, current: &str) -> ScimResult<bool> {
        if self.if_match.as_ref().is_some_and(|t| !t.matches(current)) {
            return Err(precondition_failed(format!(
                "If-Match does not match the current version {current} of {resource}"
            )));
        }
        Ok(self.if_none_match.as_ref().is_some_and(|t| t.matches(current)))
    }
}

fn precondition_failed(detail: String) -> ScimError {
    ScimError::new(StatusCode::PRECONDITION_FAILED, detail)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn pre(if_match: &[&str], if_none_match: &[&str]) -> Preconditions {
        let mut h = HeaderMap::new();
        for v in if_match {
            h.append(IF_MATCH, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
        }
        for v in if_none_match {
            h.append(IF_NONE_MATCH, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
        }
        Preconditions::from_headers(&h)
    }

    #[test]
    fn if_match_uses_the_weak_comparison_over_lists_and_lines() {
        let v3 = etag(3);
        assert_eq!(v3, "W/\"3\"");
        for ok in [&["W/\"3\""][..], &["\"3\""], &["*"], &["W/\"1\", W/\"3\""], &["W/\"1\"", "\"3\""], &["3"]]
        {
            assert!(pre(ok, &[]).check_write("User x", &v3).is_ok(), "{ok:?}");
        }
        for stale in [&["W/\"2\""][..], &["\"33\""], &["W/\"1\", \"2\""], &[""], &["W/\"3,\""]] {
            let e = pre(stale, &[]).check_write("User x", &v3).err();
            assert_eq!(e.as_ref().map(|e| e.status), Some(StatusCode::PRECONDITION_FAILED), "{stale:?}");
            assert!(e.is_some_and(|e| e.scim_type.is_none() && e.detail.contains("W/\"3\"")));
        }
        assert!(Preconditions::NONE.check_write("User x", &v3).is_ok());
    }

    #[test]
    fn if_none_match_answers_not_modified_on_reads_and_refuses_writes() {
        let v3 = etag(3);
        assert_eq!(pre(&[], &["W/\"3\""]).check_read("User x", &v3).ok(), Some(true));
        assert_eq!(pre(&[], &["\"2\", \"3\""]).check_read("User x", &v3).ok(), Some(true));
        assert_eq!(pre(&[], &["*"]).check_read("User x", &v3).ok(), Some(true));
        assert_eq!(pre(&[], &["W/\"2\""]).check_read("User x", &v3).ok(), Some(false));
        assert_eq!(Preconditions::NONE.check_read("User x", &v3).ok(), Some(false));
        assert!(pre(&["W/\"2\""], &[]).check_read("User x", &v3).is_err());
        let e = pre(&[], &["*"]).check_write("User x", &v3).err();
        assert_eq!(e.map(|e| e.status), Some(StatusCode::PRECONDITION_FAILED));
        assert!(pre(&[], &["W/\"2\""]).check_write("User x", &v3).is_ok());
    }
}
