//! Input limits: every request is bounded before it costs the store anything, and an
//! over-limit request is refused whole with a SCIM error that names the limit and its value
//! (the configuration key in parentheses), so nothing is written for it.
//!
//! | limit (config key)          | default   | checked                                   | answer |
//! |-----------------------------|-----------|-------------------------------------------|--------|
//! | `maxBodyBytes`              | 1 MiB     | any request body, before authentication   | 413 |
//! | `maxJsonDepth`              | 32        | any request body, before it is parsed     | 400 `invalidValue` |
//! | `maxFilterLength`           | 4096      | `filter` (bytes, decoded)                 | 400 `invalidFilter` |
//! | `maxFilterDepth`            | 16        | nesting of `(`, `not (`, `[` in `filter`  | 400 `invalidFilter` |
//! | `maxPatchOperations`        | 256       | `Operations` of one PATCH                 | 400 `tooMany` |
//! | `maxMembersPerRequest`      | 1000      | member ids in one POST/PUT/PATCH of a group | 400 `tooMany` |
//! | `maxAttributesPerResource`  | 1000      | attribute values of a stored resource     | 400 `invalidValue` |
//! | `maxValueBytes`             | 16 KiB    | each string value and attribute name      | 400 `invalidValue` |
//! | `maxResourceBytes`          | 64 KiB    | a stored resource, serialised             | 400 `invalidValue` |
//! | `maxPageSize` (config.rs)   | 1000      | `count` of a query is clamped to it       | —   |
//!
//! Attribute values are counted at any depth: every string, number and boolean (an email
//! with `type` and `value` counts 2). The resource checks run on what would be stored — after
//! `schema::normalize` and after a PATCH is applied — so a sequence of small PATCHes cannot
//! grow a resource past them either. `maxResourceBytes` keeps a record within what every
//! backend takes in one write (etcd refuses requests over 1.5 MiB by default).
//!
//! `filter.maxResults` and `bulk.maxPayloadSize` of `/ServiceProviderConfig` publish
//! `maxPageSize` and `maxBodyBytes`; SCIM has no field for the others.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult, ScimType};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub max_filter_length: usize,
    pub max_filter_depth: usize,
    pub max_patch_operations: usize,
    pub max_members_per_request: usize,
    pub max_attributes_per_resource: usize,
    pub max_value_bytes: usize,
    pub max_resource_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_json_depth: 32,
            max_filter_length: 4096,
            max_filter_depth: 16,
            max_patch_operations: 256,
            max_members_per_request: 1000,
            max_attributes_per_resource: 1000,
            max_value_bytes: 16 << 10,
            max_resource_bytes: 64 << 10,
        }
    }
}

/// The accepted range of each limit, by config key: below the minimum SCIM stops working
/// (Entra's requests must fit), above the maximum the limit protects nothing.
pub(crate) const RANGES: [(&str, usize, usize); 9] = [
    ("maxBodyBytes", 4 << 10, 64 << 20),
    ("maxJsonDepth", 8, 100),
    ("maxFilterLength", 256, 1 << 20),
    ("maxFilterDepth", 1, crate::scim::filter::MAX_NESTING),
    ("maxPatchOperations", 1, 100_000),
    ("maxMembersPerRequest", 1, 1_000_000),
    ("maxAttributesPerResource", 16, 1_000_000),
    ("maxValueBytes", 256, 16 << 20),
    ("maxResourceBytes", 4 << 10, 16 << 20),
];

impl Limits {
    /// The limits with their config keys, in [`RANGES`] order.
    pub(crate) fn by_key(&self) -> [(&'static str, usize); 9] {
        [
            ("maxBodyBytes", self.max_body_bytes),
            ("maxJsonDepth", self.max_json_depth),
            ("maxFilterLength", self.max_filter_length),
            ("maxFilterDepth", self.max_filter_depth),
            ("maxPatchOperations", self.max_patch_operations),
            ("maxMembersPerRequest", self.max_members_per_request),
            ("maxAttributesPerResource", self.max_attributes_per_resource),
            ("maxValueBytes", self.max_value_bytes),
            ("maxResourceBytes", self.max_resource_bytes),
        ]
    }
}

/// The 413 for a body over `maxBodyBytes`: `size` when it is known (read whole or declared by
/// `Content-Length`); `None` for a body a host stopped reading past the limit.
pub fn body_too_large(size: Option<u64>, limits: &Limits) -> ScimError {
    let size = match size {
        Some(n) => format!("{n} bytes"),
        None => format!("more than {} bytes", limits.max_body_bytes),
    };
    ScimError::new(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is {size}; this server accepts at most {} (maxBodyBytes)",
            limits.max_body_bytes
        ),
    )
}

/// Body size and JSON nesting, before anything else looks at the request.
pub fn check_body(body: &Bytes, limits: &Limits) -> ScimResult<()> {
    if body.len() > limits.max_body_bytes {
        return Err(body_too_large(Some(body.len() as u64), limits));
    }
    let depth = json_depth(body);
    if depth > limits.max_json_depth {
        return Err(ScimError::invalid_value(format!(
            "the request body nests JSON {depth} levels deep; this server accepts at most {} (maxJsonDepth)",
            limits.max_json_depth
        )));
    }
    Ok(())
}

/// The deepest nesting of `[`/`{` in `bytes`, outside strings. Linear, no allocation, and
/// tolerant of invalid JSON (the parser reports that); it runs before the parser so that
/// neither parsing nor dropping a deep document can exhaust a 1 MiB wasm stack.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The filter's length; its depth is bounded by the parser (`filter::parse_with_depth`).
pub fn check_filter_length(filter: &str, limits: &Limits) -> ScimResult<()> {
    if filter.len() > limits.max_filter_length {
        return Err(ScimError::invalid_filter(format!(
            "the filter is {} bytes long; this server accepts at most {} (maxFilterLength)",
            filter.len(),
            limits.max_filter_length
        )));
    }
    Ok(())
}

/// The number of operations of a PATCH body, before they are parsed.
pub fn check_patch_operations(body: &Value, limits: &Limits) -> ScimResult<()> {
    let ops = body
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("Operations")))
        .and_then(|(_, v)| v.as_array())
        .map_or(0, Vec::len);
    if ops > limits.max_patch_operations {
        return Err(ScimError::typed(
            ScimType::TooMany,
            format!(
                "the PATCH has {ops} operations; this server accepts at most {} per request (maxPatchOperations)",
                limits.max_patch_operations
            ),
        ));
    }
    Ok(())
}

/// The number of member ids one group request names.
pub fn check_members(count: usize, limits: &Limits) -> ScimResult<()> {
    if count > limits.max_members_per_request {
        return Err(ScimError::typed(
            ScimType::TooMany,
            format!(
                "the request names {count} members; this server accepts at most {} per request \
                 (maxMembersPerRequest): send the members in several PATCH requests",
                limits.max_members_per_request
            ),
        ));
    }
    Ok(())
}

/// A resource as it would be stored: value count, each value's size, total size.
pub fn check_resource(attrs: &Map<String, Value>, limits: &Limits) -> ScimResult<()> {
    let mut values = 0usize;
    // Iterative walk: stored documents are shallow, but nothing here should recurse on input.
    let mut pending: Vec<(&str, &Value)> = attrs.iter().map(|(k, v)| (k.as_str(), v)).collect();
    while let Some((key, v)) = pending.pop() {
        if key.len() > limits.max_value_bytes {
            return Err(too_long("an attribute name", key.len(), limits));
        }
        match v {
            Value::Object(m) => pending.extend(m.iter().map(|(k, v)| (k.as_str(), v))),
            Value::Array(items) => pending.extend(items.iter().map(|v| ("", v))),
            Value::String(s) => {
                values += 1;
                if s.len() > limits.max_value_bytes {
                    let label = if key.is_empty() { "a value" } else { key };
                    return Err(too_long(label, s.len(), limits));
                }
            }
            Value::Null => {}
            Value::Bool(_) | Value::Number(_) => values += 1,
        }
        if values > limits.max_attributes_per_resource {
            return Err(ScimError::invalid_value(format!(
                "the resource would hold more than {} attribute values (maxAttributesPerResource)",
                limits.max_attributes_per_resource
            )));
        }
    }
    let size = serde_json::to_vec(attrs).map_or(usize::MAX, |v| v.len());
    if size > limits.max_resource_bytes {
        return Err(ScimError::invalid_value(format!(
            "the resource would take {size} bytes; this server stores at most {} per resource (maxResourceBytes)",
            limits.max_resource_bytes
        )));
    }
    Ok(())
}

fn too_long(what: &str, len: usize, limits: &Limits) -> ScimError {
    let what: String = what.chars().take(64).collect();
    ScimError::invalid_value(format!(
        "{what:?} is {len} bytes long; this server accepts at most {} per value (maxValueBytes)",
        limits.max_value_bytes
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(b"{}"), 1);
        assert_eq!(json_depth(br#"{"a":[{"b":"[[[{{{"}]}"#), 3);
        assert_eq!(json_depth(br#"{"a":"\"[[[", "b": [[1]]}"#), 3);
        assert_eq!(json_depth(b"not json ]]]] [["), 2);
        assert_eq!(json_depth(&[b'['; 10_000]), 10_000);
    }

    #[test]
    fn limits_name_themselves() {
        let l = Limits { max_value_bytes: 300, max_attributes_per_resource: 20, ..Limits::default() };
        let e = check_resource(json!({"userName": "x".repeat(301)}).as_object().unwrap(), &l).unwrap_err();
        assert!(e.detail.contains("maxValueBytes") && e.detail.contains("300"), "{}", e.detail);
        let many: Vec<Value> = (0..21).map(|i| json!(i)).collect();
        let e = check_resource(json!({"x": many}).as_object().unwrap(), &l).unwrap_err();
        assert!(e.detail.contains("maxAttributesPerResource"), "{}", e.detail);
        let e = check_body(&Bytes::from(vec![b' '; (1 << 20) + 1]), &Limits::default()).unwrap_err();
        assert_eq!(e.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        let e = check_patch_operations(&json!({"operations": vec![json!({}); 257]}), &Limits::default());
        assert_eq!(e.unwrap_err().scim_type, Some(ScimType::TooMany));
    }
}
