//! The core's [`Store`] over etcd v3, through HTTP callouts to its JSON gateway
//! (`POST /v3/kv/{range,put,deleterange,txn}`, served on etcd's client port).
//!
//! Every read and write is one callout to the Envoy cluster named in the settings, bounded by
//! `timeoutMs`; the request's future is parked while it is in flight (see [`crate::task`]).
//! Conditional writes are single etcd transactions, so they are atomic across worker threads,
//! Envoy processes and etcd members:
//!
//! | operation | etcd request |
//! |---|---|
//! | `get` | `range {key}`: `kvs[0].value`, version = `kvs[0].mod_revision` |
//! | `put(Any)` | `put {key, value}`: version = `header.revision` |
//! | `put(Absent)` | `txn` if `CREATE(key) == 0` then put |
//! | `put(Version(v))` | `txn` if `MOD(key) == v` then put |
//! | `delete(Any)` | `deleterange {key}` |
//! | `delete(Version(v))` | `txn` if `MOD(key) == v` then deleterange |
//! | `apply(changes)` | one `txn`: every change's comparison, then every put and deleterange |
//!
//! A transaction that did not succeed is a [`StoreError::Conflict`]. The version of a write is
//! the revision of the store after it, which etcd also records as the key's `mod_revision`.
//! Keys and values are base64 on the wire; every key is prefixed with `prefix`.
//!
//! The gateway omits fields at their zero value (`"succeeded": false`, an empty `value`, an
//! absent `kvs`) and encodes 64-bit integers as strings; the response types below follow that.
//! Anything but a 200 with a body that parses (a connection failure, Envoy's 504 on timeout,
//! an etcd error) is [`StoreError::Unavailable`], which the core answers with 503.

use std::rc::Rc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use scim_edge_core::{Change, Condition, Store, StoreError, Version, Versioned};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::settings::EtcdSettings;
use crate::task::{Callouts, Reply};

pub struct EtcdStore {
    settings: Rc<EtcdSettings>,
    callouts: Rc<Callouts>,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    revision: Option<Int>,
}

#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    mod_revision: Option<Int>,
}

#[derive(Deserialize)]
struct WriteResponse {
    header: Header,
    /// Only in `txn` responses; absent means false.
    #[serde(default)]
    succeeded: bool,
}

/// An int64 the way the gateway writes it (a string), or a plain number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int {
    Str(String),
    Num(u64),
}

impl Int {
    fn get(&self) -> Option<u64> {
        match self {
            Int::Str(s) => s.parse().ok(),
            Int::Num(n) => Some(*n),
        }
    }
}

fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("etcd: {what}"))
}

fn revision(header: &Header) -> Result<Version, StoreError> {
    header
        .revision
        .as_ref()
        .and_then(Int::get)
        .map(Version)
        .ok_or_else(|| unavailable("response without header.revision"))
}

/// The etcd comparison that makes a write conditional, if it is.
fn compare(key: &str, cond: Condition) -> Option<Value> {
    match cond {
        Condition::Any => None,
        Condition::Absent => {
            Some(json!({"target": "CREATE", "key": key, "result": "EQUAL", "create_revision": "0"}))
        }
        Condition::Version(Version(v)) => {
            Some(json!({"target": "MOD", "key": key, "result": "EQUAL", "mod_revision": v.to_string()}))
        }
    }
}

impl EtcdStore {
    pub fn new(settings: Rc<EtcdSettings>, callouts: Rc<Callouts>) -> Self {
        EtcdStore { settings, callouts }
    }

    /// The prefixed key, base64-encoded for the wire.
    fn wire_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.settings.prefix.len() + key.len());
        full.push_str(&self.settings.prefix);
        full.push_str(key);
        BASE64.encode(full)
    }

    /// One callout: `POST {path}` with a JSON body; the parsed JSON response of a 200.
    async fn call<T: serde::de::DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, StoreError> {
        let s = &self.settings;
        let body = body.to_string();
        let headers = vec![
            (":method", "POST"),
            (":path", path),
            (":authority", s.authority.as_str()),
            ("content-type", "application/json"),
        ];
        let token =
            self.callouts.dispatch(&s.cluster, headers, body.as_bytes(), s.timeout).map_err(unavailable)?;
        match self.callouts.wait(token).await {
            Reply::Response { status: 200, body } => serde_json::from_slice(&body)
                .map_err(|e| unavailable(format_args!("{path} answered with unexpected JSON: {e}"))),
            Reply::Response { status, body } => {
                let text = String::from_utf8_lossy(&body);
                let text: String = text.chars().take(200).collect();
                Err(unavailable(format_args!("{path} answered {status}: {}", text.trim())))
            }
            Reply::Failed(why) => Err(unavailable(format_args!("{path} failed: {why}"))),
        }
    }

    /// A write: unconditional as a plain `put` / `deleterange`, conditional as a `txn` whose
    /// success branch is that same request. Returns the revision after the write.
    async fn write(&self, key: &str, cond: Condition, op: Write<'_>) -> Result<Version, StoreError> {
        let wire_key = self.wire_key(key);
        let req = op.request(&wire_key);
        let res: WriteResponse = match compare(&wire_key, cond) {
            None => self.call(op.path(), &req).await?,
            Some(cmp) => {
                let txn = json!({"compare": [cmp], "success": [{ op.txn_request(): req }]});
                let res: WriteResponse = self.call("/v3/kv/txn", &txn).await?;
                if !res.succeeded {
                    return Err(StoreError::Conflict);
                }
                res
            }
        };
        revision(&res.header)
    }
}

/// etcd's default `--max-txn-ops`: a larger [`Store::apply`] goes change by change.
const MAX_TXN_OPS: usize = 128;

#[derive(Clone, Copy)]
enum Write<'a> {
    Put(&'a [u8]),
    Delete,
}

impl Write<'_> {
    /// The `put` / `deleterange` request body for an (encoded) key.
    fn request(self, wire_key: &str) -> Value {
        match self {
            Write::Put(value) => json!({"key": wire_key, "value": BASE64.encode(value)}),
            Write::Delete => json!({"key": wire_key}),
        }
    }
    fn path(self) -> &'static str {
        match self {
            Write::Put(_) => "/v3/kv/put",
            Write::Delete => "/v3/kv/deleterange",
        }
    }
    fn txn_request(self) -> &'static str {
        match self {
            Write::Put(_) => "request_put",
            Write::Delete => "request_delete_range",
        }
    }
}

impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let res: RangeResponse = self.call("/v3/kv/range", &json!({"key": self.wire_key(key)})).await?;
        let Some(kv) = res.kvs.into_iter().next() else {
            return Ok(None);
        };
        let value = match kv.value {
            None => Vec::new(),
            Some(b64) => {
                BASE64.decode(b64).map_err(|e| unavailable(format_args!("value is not base64: {e}")))?
            }
        };
        let version = kv
            .mod_revision
            .as_ref()
            .and_then(Int::get)
            .ok_or_else(|| unavailable("range response without mod_revision"))?;
        Ok(Some(Versioned { value, version: Version(version) }))
    }

    async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
        self.write(key, cond, Write::Put(value)).await
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
        if cond == Condition::Absent {
            return Err(StoreError::Conflict);
        }
        self.write(key, cond, Write::Delete).await.map(|_| ())
    }

    /// One transaction: atomic, one round trip and one fsync for all of them.
    async fn apply(&self, changes: &[Change<'_>]) -> Result<(), StoreError> {
        if changes.len() > MAX_TXN_OPS {
            return scim_edge_core::store::apply_in_order(self, changes).await;
        }
        let txn = self.txn(changes)?;
        let res: WriteResponse = self.call("/v3/kv/txn", &txn).await?;
        if res.succeeded {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }
}

impl EtcdStore {
    /// The `txn` request of [`Store::apply`].
    fn txn(&self, changes: &[Change<'_>]) -> Result<Value, StoreError> {
        let mut compares = Vec::new();
        let mut success = Vec::with_capacity(changes.len());
        for c in changes {
            let wire_key = self.wire_key(c.key);
            let op = match c.value {
                Some(value) => Write::Put(value),
                None if c.cond == Condition::Absent => return Err(StoreError::Conflict),
                None => Write::Delete,
            };
            compares.extend(compare(&wire_key, c.cond));
            success.push(json!({ op.txn_request(): op.request(&wire_key) }));
        }
        Ok(json!({"compare": compares, "success": success}))
    }
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
    fn apply_is_one_txn_of_every_comparison_and_write() {
        let settings = EtcdSettings {
            cluster: "etcd".into(),
            authority: "etcd".into(),
            prefix: "p/".into(),
            timeout: std::time::Duration::from_millis(100),
            pause_cluster: None,
        };
        let store = EtcdStore::new(Rc::new(settings), Rc::default());
        let changes = [
            Change { key: "a", value: Some(b"1"), cond: Condition::Any },
            Change { key: "b", value: None, cond: Condition::Any },
            Change { key: "c", value: Some(b"2"), cond: Condition::Version(Version(9)) },
        ];
        let (a, b, c) = (BASE64.encode("p/a"), BASE64.encode("p/b"), BASE64.encode("p/c"));
        assert_eq!(
            store.txn(&changes),
            Ok(json!({
                "compare": [{"target": "MOD", "key": c, "result": "EQUAL", "mod_revision": "9"}],
                "success": [
                    {"request_put": {"key": a, "value": BASE64.encode("1")}},
                    {"request_delete_range": {"key": b}},
                    {"request_put": {"key": c, "value": BASE64.encode("2")}},
                ],
            }))
        );
        let absent_delete = [Change { key: "a", value: None, cond: Condition::Absent }];
        assert_eq!(store.txn(&absent_delete), Err(StoreError::Conflict));
    }

    #[test]
    fn gateway_responses_with_omitted_zero_fields() {
        // As etcd 3.5's gateway answers: int64 as strings, false and empty fields left out.
        let failed: WriteResponse = serde_json::from_str(
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"7","raft_term":"2"}}"#,
        )
        .unwrap();
        assert!(!failed.succeeded);
        let ok: WriteResponse =
            serde_json::from_str(r#"{"header":{"revision":"8"},"succeeded":true,"responses":[]}"#).unwrap();
        assert!(ok.succeeded);
        assert_eq!(revision(&ok.header), Ok(Version(8)));
        let none: RangeResponse = serde_json::from_str(r#"{"header":{"revision":"8"}}"#).unwrap();
        assert!(none.kvs.is_empty());
        let empty_value: RangeResponse = serde_json::from_str(
            r#"{"header":{},"kvs":[{"key":"YS9i","create_revision":"2","mod_revision":"3","version":"2"}],"count":"1"}"#,
        )
        .unwrap();
        let kv = empty_value.kvs.first().unwrap();
        assert_eq!((kv.value.as_deref(), kv.mod_revision.as_ref().and_then(Int::get)), (None, Some(3)));
        assert!(revision(&Header { revision: None }).is_err());
    }
}
