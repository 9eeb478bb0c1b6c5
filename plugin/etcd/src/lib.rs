//! # scim-edge-etcd
//!
//! The core's [`Store`] over etcd v3's JSON gateway (`POST /v3/kv/{range,txn}` on etcd's
//! client port), through a one-method [`Transport`]: the Envoy filter implements it with HTTP
//! callouts to an Envoy cluster of every etcd member; tests implement it with a script. It
//! does no I/O of its own and needs no async runtime.
//!
//! ## Requests
//!
//! | operation | etcd request |
//! |---|---|
//! | `get` | `range {key}`: `kvs[0].value`, version = `kvs[0].mod_revision` |
//! | `put(cond)`, `delete(cond)`, `apply(changes)` | one `txn`: the conditions' comparisons (`CREATE(key) == 0` for absent, `MOD(key) == v` for a version) and the write marker's, then every `put` / `deleterange` and the marker's `put`; on failure, a `range` of the marker |
//!
//! A transaction whose comparisons fail is a [`StoreError::Conflict`]; the version of a write
//! is the store's revision after it (the key's `mod_revision`). Keys and values are base64 on
//! the wire; every key is prefixed with the configured prefix. The gateway omits fields at
//! their zero value and writes int64 as strings ([`wire`]).
//!
//! ## Against a cluster: retries, and writes that happen exactly once
//!
//! A call that fails on one member (it is dead, paused, or lost its leader) is tried again,
//! the balancer in front of the members (Envoy: round robin, health checks, outlier
//! detection) picking another, for as long as the request's deadline allows ([`policy`]).
//! Reads are retried freely. A write is not: when an attempt timed out or its connection broke
//! after the request went out, etcd may have applied it, or may still apply it (a paused
//! member holds the request and forwards it when it resumes). Sending it again as a new
//! write could apply it twice, or report a conflict with itself.
//!
//! So every write carries a **write marker**: a key `writes/{writer}/{slot}` under the prefix
//! (outside the core's `v1/` layout, which `scim_edge_core::consistency` ignores), owned by
//! one writer (one wasm VM, named by a random id) and used by one write at a time. The writer
//! knows the marker's `mod_revision` `m` from its last use. A write's transaction compares
//! `MOD(marker) == m` besides its own conditions, puts the marker (`"w"`) besides its own
//! writes, and on failure reads the marker. That makes the transaction idempotent:
//!
//! - it applies at most once: once it applied, the marker moved, and every copy of it fails;
//! - a retry of the same transaction that fails says why ([`policy::marker_seen`]): the
//!   marker moved (an earlier attempt applied, at the marker's `mod_revision`: success), or it
//!   did not (the write's own conditions failed: a conflict).
//!
//! One case remains: a conflict seen after an attempt whose fate was unknown. That attempt
//! may still be on its way (held by a paused member), and could apply later if its
//! conditions come to hold again (a key created-if-absent is deleted meanwhile). Before
//! reporting the conflict, the store **fences** the marker: a transaction that puts `"f"` if
//! the marker is still at `m`. If it succeeds, no copy of the write can ever apply: a
//! conflict. If it fails, the marker shows `"w"`: the write applied after all, and the store
//! reports success. A fence is itself safe to re-send (a re-sent fence finds `"f"`).
//!
//! What cannot be learnt is a write's fate when no member answered before the deadline: the
//! store reports [`StoreError::Unavailable`] (the core's 503), and the write may still apply.
//! That marker is then retired, never reused. Markers cost one small key per writer and
//! concurrent write (a VM restart leaves its markers behind: garbage, tens of keys).

pub mod policy;
pub mod wire;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use scim_edge_core::{Change, Condition, Store, StoreError, Version, Versioned};
use serde_json::{json, Value};

use crate::policy::{Attempt, Budget, MarkerSeen, Next};
use crate::wire::{RangeResponse, TxnResponse};

/// How one call ended, as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An HTTP response, from etcd or from the proxy in between (Envoy's own 503 on a
    /// connection failure, 504 on a timeout).
    Response { status: u16, body: Vec<u8> },
    /// No response: the request may have been sent (a reset, a timeout).
    Failed(String),
    /// The request could not be sent at all.
    NotSent(String),
}

/// One HTTP round trip to some member of the etcd cluster.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// `POST {path}` with a JSON `body`, bounded by `timeout`. `attempt` counts the attempts
    /// of one store call from 0: a transport that picks members itself should use another one
    /// for each attempt; one behind a balancer (Envoy) leaves the choice to it.
    async fn call(&self, attempt: u32, path: &str, body: &[u8], timeout: Duration) -> Reply;
    /// Waits about `d` before a retry. May return at once (then retries come sooner).
    async fn pause(&self, d: Duration);
    /// Time since some fixed point (the Unix epoch will do), for the request's deadline.
    fn now(&self) -> Duration;
}

impl<T: Transport + ?Sized> Transport for &T {
    async fn call(&self, attempt: u32, path: &str, body: &[u8], timeout: Duration) -> Reply {
        (**self).call(attempt, path, body, timeout).await
    }
    async fn pause(&self, d: Duration) {
        (**self).pause(d).await;
    }
    fn now(&self) -> Duration {
        (**self).now()
    }
}

/// The store's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Put before every key.
    pub prefix: String,
    pub budget: Budget,
}

/// The write markers of one writer: free slots with the `mod_revision` each was left at.
/// Shared by every request of the writer (one wasm VM: single-threaded).
#[derive(Debug)]
pub struct Markers {
    writer: String,
    slots: RefCell<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    free: Vec<Marker>,
    next: u64,
}

/// One marker, in use by one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marker {
    slot: u64,
    /// Its `mod_revision` (0: never written).
    at: u64,
}

impl Markers {
    /// `writer` must be unique to this writer among all that share the etcd cluster and
    /// prefix, for all time: a random id of 64 bits or more.
    pub fn new(writer: impl Into<String>) -> Markers {
        Markers { writer: writer.into(), slots: RefCell::default() }
    }

    fn take(&self) -> Marker {
        let mut slots = self.slots.borrow_mut();
        if let Some(m) = slots.free.pop() {
            return m;
        }
        let slot = slots.next;
        slots.next += 1;
        Marker { slot, at: 0 }
    }

    fn give_back(&self, marker: Marker) {
        self.slots.borrow_mut().free.push(marker);
    }

    fn key(&self, marker: Marker) -> String {
        format!("writes/{}/{}", self.writer, marker.slot)
    }

    /// Slots handed out so far (for tests: a retired marker is never reused).
    pub fn slots_created(&self) -> u64 {
        self.slots.borrow().next
    }
}

/// The store of one request.
pub struct EtcdStore<T: Transport> {
    config: Rc<EtcdConfig>,
    transport: T,
    markers: Rc<Markers>,
    /// When the request started: retries end at `started + deadline`.
    started: Duration,
    /// A call of this request failed: past the deadline, later calls fail without an attempt
    /// (the request is answered 503 anyway; each would wait out the timeout again first).
    failed: std::cell::Cell<bool>,
}

fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("etcd: {what}"))
}

/// The marker as a failed transaction's `failure` branch read it.
fn marker_seen(at: u64, res: &TxnResponse) -> Result<MarkerSeen, StoreError> {
    let marker = res.marker().map_err(unavailable)?;
    policy::marker_seen(at, marker.as_ref().map(|(rev, value)| (*rev, value.as_slice()))).map_err(unavailable)
}

/// etcd's default `--max-txn-ops`, minus the marker's put: a larger [`Store::apply`] goes
/// change by change.
const MAX_TXN_CHANGES: usize = 127;

/// What one store call learnt besides its answer.
#[derive(Default)]
struct Sent {
    /// Some attempt failed after its request may have reached etcd.
    maybe: bool,
}

impl<T: Transport> EtcdStore<T> {
    /// The store of one request, which starts now.
    pub fn new(config: Rc<EtcdConfig>, transport: T, markers: Rc<Markers>) -> Self {
        let started = transport.now();
        EtcdStore { config, transport, markers, started, failed: std::cell::Cell::new(false) }
    }

    /// The prefixed key, base64-encoded for the wire.
    fn wire_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.config.prefix.len() + key.len());
        full.push_str(&self.config.prefix);
        full.push_str(key);
        BASE64.encode(full)
    }

    /// One call with retries: the body of etcd's 200.
    async fn call(&self, path: &str, body: &Value, sent: &mut Sent) -> Result<Vec<u8>, StoreError> {
        let body = body.to_string();
        let mut done = 0;
        let mut last: Option<Attempt> = None;
        let elapsed = self.transport.now().saturating_sub(self.started);
        if self.failed.get() && elapsed >= self.config.budget.deadline {
            return Err(unavailable(format_args!(
                "{path} not tried: this request's calls failed past its deadline"
            )));
        }
        loop {
            let elapsed = self.transport.now().saturating_sub(self.started);
            let (pause, timeout) = match policy::next(&self.config.budget, elapsed, done, last.as_ref()) {
                Next::Try { pause, timeout } => (pause, timeout),
                Next::GiveUp => {
                    self.failed.set(true);
                    let why = last.as_ref().map_or_else(String::new, Attempt::describe);
                    return Err(unavailable(format_args!("{path} failed {done} times, last: {why}")));
                }
            };
            if !pause.is_zero() {
                self.transport.pause(pause).await;
            }
            let attempt = policy::classify(self.transport.call(done, path, body.as_bytes(), timeout).await);
            done += 1;
            match attempt {
                Attempt::Answered(body) => return Ok(body),
                Attempt::Refused(why) => {
                    self.failed.set(true);
                    return Err(unavailable(format_args!("{path} {why}")));
                }
                Attempt::Unknown { .. } => sent.maybe = true,
                Attempt::NotSent(_) => {}
            }
            last = Some(attempt);
        }
    }

    async fn call_json<R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        sent: &mut Sent,
    ) -> Result<R, StoreError> {
        let bytes = self.call(path, body, sent).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format_args!("{path} answered with unexpected JSON: {e}")))
    }

    /// One write transaction: `compares` and `writes` (already on the wire), guarded by a
    /// marker (see the crate documentation). The revision it applied at.
    async fn write(&self, compares: Vec<Value>, writes: Vec<Value>) -> Result<Version, StoreError> {
        let marker = self.markers.take();
        let key = self.wire_key(&self.markers.key(marker));
        let txn = wire::write_txn(compares, writes, &key, marker.at);
        let mut sent = Sent::default();
        let body = match self.call("/v3/kv/txn", &txn, &mut sent).await {
            Ok(body) => body,
            Err(e) => {
                if !sent.maybe {
                    self.markers.give_back(marker);
                }
                return Err(e);
            }
        };
        // etcd ran it: a reply that does not parse leaves the marker's revision unknown, so
        // the marker is retired (not given back).
        let res: TxnResponse = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format_args!("/v3/kv/txn answered with unexpected JSON: {e}")))?;
        if res.succeeded {
            let rev = res.revision().map_err(unavailable)?;
            self.markers.give_back(Marker { at: rev, ..marker });
            return Ok(Version(rev));
        }
        match marker_seen(marker.at, &res)? {
            MarkerSeen::Written(rev) => {
                self.markers.give_back(Marker { at: rev, ..marker });
                Ok(Version(rev))
            }
            MarkerSeen::Unmoved if !sent.maybe => {
                self.markers.give_back(marker);
                Err(StoreError::Conflict)
            }
            MarkerSeen::Unmoved => self.fence(marker, &key).await,
            MarkerSeen::Fenced(_) => Err(unavailable("a write found its marker fenced before the fence")),
        }
    }

    /// Makes sure no copy of the write guarded by `marker` can still apply: its outcome.
    async fn fence(&self, marker: Marker, key: &str) -> Result<Version, StoreError> {
        let txn = wire::fence_txn(key, marker.at);
        let res: TxnResponse = self.call_json("/v3/kv/txn", &txn, &mut Sent::default()).await?;
        let seen = if res.succeeded {
            MarkerSeen::Fenced(res.revision().map_err(unavailable)?)
        } else {
            marker_seen(marker.at, &res)?
        };
        match seen {
            MarkerSeen::Fenced(rev) => {
                self.markers.give_back(Marker { at: rev, ..marker });
                Err(StoreError::Conflict)
            }
            MarkerSeen::Written(rev) => {
                self.markers.give_back(Marker { at: rev, ..marker });
                Ok(Version(rev))
            }
            MarkerSeen::Unmoved => Err(unavailable("a fence that failed left its marker unmoved")),
        }
    }

    /// The comparisons and writes of `changes`, on the wire.
    fn txn_parts(&self, changes: &[Change<'_>]) -> Result<(Vec<Value>, Vec<Value>), StoreError> {
        let mut compares = Vec::new();
        let mut writes = Vec::with_capacity(changes.len());
        for c in changes {
            let key = self.wire_key(c.key);
            if c.value.is_none() && c.cond == Condition::Absent {
                return Err(StoreError::Conflict);
            }
            compares.extend(wire::compare(&key, c.cond));
            writes.push(wire::write_op(&key, c.value));
        }
        Ok((compares, writes))
    }
}

impl<T: Transport> Store for EtcdStore<T> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let body = json!({"key": self.wire_key(key)});
        let res: RangeResponse = self.call_json("/v3/kv/range", &body, &mut Sent::default()).await?;
        let Some(kv) = res.kvs.into_iter().next() else {
            return Ok(None);
        };
        let value = kv.value_bytes().map_err(unavailable)?;
        let version = kv.mod_revision().ok_or_else(|| unavailable("range response without mod_revision"))?;
        Ok(Some(Versioned { value, version: Version(version) }))
    }

    async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
        let (compares, writes) = self.txn_parts(&[Change { key, value: Some(value), cond }])?;
        self.write(compares, writes).await
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
        let (compares, writes) = self.txn_parts(&[Change { key, value: None, cond }])?;
        self.write(compares, writes).await.map(|_| ())
    }

    /// One transaction: atomic, one round trip and one fsync for all of them.
    async fn apply(&self, changes: &[Change<'_>]) -> Result<(), StoreError> {
        if changes.len() > MAX_TXN_CHANGES {
            return scim_edge_core::store::apply_in_order(self, changes).await;
        }
        let (compares, writes) = self.txn_parts(changes)?;
        self.write(compares, writes).await.map(|_| ())
    }
    fn atomic_apply(&self, changes: usize) -> bool {
        changes <= MAX_TXN_CHANGES
    }
}

#[cfg(test)]
mod tests;
