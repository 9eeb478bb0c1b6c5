//! etcd v3's JSON gateway on the wire: the requests the store sends and the responses it reads.
//!
//! The gateway omits fields at their zero value (`"succeeded": false`, an empty `value`, an
//! absent `kvs`) and encodes 64-bit integers as strings; the response types follow that.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use scim_edge_core::{Condition, Version};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::policy::{FENCED, WRITTEN};

#[derive(Deserialize, Debug, Default)]
pub struct Header {
    #[serde(default)]
    pub revision: Option<Int>,
}

#[derive(Deserialize, Debug)]
pub struct RangeResponse {
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
}

#[derive(Deserialize, Debug)]
pub struct KeyValue {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub mod_revision: Option<Int>,
}

impl KeyValue {
    pub fn value_bytes(&self) -> Result<Vec<u8>, String> {
        match &self.value {
            None => Ok(Vec::new()),
            Some(b64) => BASE64.decode(b64).map_err(|e| format!("value is not base64: {e}")),
        }
    }
    pub fn mod_revision(&self) -> Option<u64> {
        self.mod_revision.as_ref().and_then(Int::get)
    }
}

#[derive(Deserialize, Debug)]
pub struct TxnResponse {
    #[serde(default)]
    pub header: Header,
    /// Absent means false.
    #[serde(default)]
    pub succeeded: bool,
    #[serde(default)]
    pub responses: Vec<ResponseOp>,
}

#[derive(Deserialize, Debug)]
pub struct ResponseOp {
    #[serde(default)]
    pub response_range: Option<RangeResponse>,
}

impl TxnResponse {
    /// The store's revision after the transaction.
    pub fn revision(&self) -> Result<u64, String> {
        self.header
            .revision
            .as_ref()
            .and_then(Int::get)
            .ok_or_else(|| "response without header.revision".into())
    }

    /// The write marker as a failed write's (or fence's) `failure` branch read it: `None` if
    /// the key does not exist.
    pub fn marker(&self) -> Result<Option<(u64, Vec<u8>)>, String> {
        let range = self
            .responses
            .first()
            .and_then(|r| r.response_range.as_ref())
            .ok_or("a failed transaction without the marker's range")?;
        let Some(kv) = range.kvs.first() else {
            return Ok(None);
        };
        let rev = kv.mod_revision().ok_or("the marker without mod_revision")?;
        Ok(Some((rev, kv.value_bytes()?)))
    }
}

/// An int64 the way the gateway writes it (a string), or a plain number.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Int {
    Str(String),
    Num(u64),
}

impl Int {
    pub fn get(&self) -> Option<u64> {
        match self {
            Int::Str(s) => s.parse().ok(),
            Int::Num(n) => Some(*n),
        }
    }
}

/// The etcd comparison that makes a write conditional, if it is.
pub fn compare(key: &str, cond: Condition) -> Option<Value> {
    match cond {
        Condition::Any => None,
        Condition::Absent => {
            Some(json!({"target": "CREATE", "key": key, "result": "EQUAL", "create_revision": "0"}))
        }
        Condition::Version(Version(v)) => Some(mod_equal(key, v)),
    }
}

fn mod_equal(key: &str, rev: u64) -> Value {
    json!({"target": "MOD", "key": key, "result": "EQUAL", "mod_revision": rev.to_string()})
}

/// A `put` (a value) or a `deleterange` (none) of one (encoded) key, as a transaction's op.
pub fn write_op(key: &str, value: Option<&[u8]>) -> Value {
    match value {
        Some(v) => json!({"request_put": {"key": key, "value": BASE64.encode(v)}}),
        None => json!({"request_delete_range": {"key": key}}),
    }
}

fn marker_txn(
    mut compares: Vec<Value>,
    mut writes: Vec<Value>,
    marker: &str,
    at: u64,
    value: &[u8],
) -> Value {
    compares.push(mod_equal(marker, at));
    writes.push(write_op(marker, Some(value)));
    json!({
        "compare": compares,
        "success": writes,
        "failure": [{"request_range": {"key": marker}}],
    })
}

/// A write guarded by its marker (at revision `at`): see the crate documentation.
pub fn write_txn(compares: Vec<Value>, writes: Vec<Value>, marker: &str, at: u64) -> Value {
    marker_txn(compares, writes, marker, at, WRITTEN)
}

/// The fence of a marker left at `at`: moves it unless a write already did.
pub fn fence_txn(marker: &str, at: u64) -> Value {
    marker_txn(Vec::new(), Vec::new(), marker, at, FENCED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_become_etcd_comparisons() {
        assert_eq!(compare("a2V5", Condition::Any), None);
        assert_eq!(
            compare("a2V5", Condition::Absent),
            Some(json!({"target": "CREATE", "key": "a2V5", "result": "EQUAL", "create_revision": "0"}))
        );
        assert_eq!(
            compare("a2V5", Condition::Version(Version(42))),
            Some(json!({"target": "MOD", "key": "a2V5", "result": "EQUAL", "mod_revision": "42"}))
        );
    }

    #[test]
    fn gateway_responses_with_omitted_zero_fields() {
        // As etcd 3.5's gateway answers: int64 as strings, false and empty fields left out.
        let failed: TxnResponse = serde_json::from_str(
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"7","raft_term":"2"},
                "responses":[{"response_range":{"header":{"revision":"7"}}}]}"#,
        )
        .unwrap();
        assert!(!failed.succeeded);
        assert_eq!(failed.marker(), Ok(None));
        let moved: TxnResponse = serde_json::from_str(
            r#"{"header":{"revision":"9"},"responses":[{"response_range":{"header":{},
                "kvs":[{"key":"bQ==","create_revision":"3","mod_revision":"8","version":"2","value":"dw=="}],"count":"1"}}]}"#,
        )
        .unwrap();
        assert_eq!(moved.marker(), Ok(Some((8, b"w".to_vec()))));
        let ok: TxnResponse =
            serde_json::from_str(r#"{"header":{"revision":"8"},"succeeded":true,"responses":[]}"#).unwrap();
        assert!(ok.succeeded);
        assert_eq!(ok.revision(), Ok(8));
        assert!(ok.marker().is_err(), "a success has no marker range");
        let none: RangeResponse = serde_json::from_str(r#"{"header":{"revision":"8"}}"#).unwrap();
        assert!(none.kvs.is_empty());
        let empty_value: RangeResponse = serde_json::from_str(
            r#"{"header":{},"kvs":[{"key":"YS9i","create_revision":"2","mod_revision":"3","version":"2"}],"count":"1"}"#,
        )
        .unwrap();
        let kv = empty_value.kvs.first().unwrap();
        assert_eq!((kv.value_bytes(), kv.mod_revision()), (Ok(Vec::new()), Some(3)));
        let no_revision: TxnResponse = serde_json::from_str(r#"{"header":{}}"#).unwrap();
        assert!(no_revision.revision().is_err());
    }

    #[test]
    fn a_write_carries_its_marker() {
        let txn = write_txn(
            vec![compare("aw==", Condition::Absent).unwrap()],
            vec![write_op("aw==", Some(b"1"))],
            "bQ==",
            5,
        );
        assert_eq!(
            txn,
            json!({
                "compare": [
                    {"target": "CREATE", "key": "aw==", "result": "EQUAL", "create_revision": "0"},
                    {"target": "MOD", "key": "bQ==", "result": "EQUAL", "mod_revision": "5"},
                ],
                "success": [
                    {"request_put": {"key": "aw==", "value": BASE64.encode("1")}},
                    {"request_put": {"key": "bQ==", "value": BASE64.encode("w")}},
                ],
                "failure": [{"request_range": {"key": "bQ=="}}],
            })
        );
        assert_eq!(
            fence_txn("bQ==", 5),
            json!({
                "compare": [{"target": "MOD", "key": "bQ==", "result": "EQUAL", "mod_revision": "5"}],
                "success": [{"request_put": {"key": "bQ==", "value": BASE64.encode("f")}}],
                "failure": [{"request_range": {"key": "bQ=="}}],
            })
        );
    }
}
