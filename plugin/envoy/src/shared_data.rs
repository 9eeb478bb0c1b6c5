//! The core's [`Store`] over Envoy's shared data: **volatile** and **one Envoy process only**.
//!
//! Shared data is an in-memory map per Envoy process (per `vm_id`), shared by the VMs of all
//! worker threads. It survives a VM reload (`failure_policy: FAIL_RELOAD`) but not a restart,
//! and two Envoys do not see each other's. Use it for a single Envoy and for tests; use the
//! etcd store for anything that must be kept.
//!
//! What the host offers, and how the core's conditions are built on it:
//! - `get_shared_data(key)` returns the value and its `cas`, a number Envoy changes on every
//!   write. That `cas` is the [`Version`].
//! - `set_shared_data(key, value, cas)` writes only if the key's `cas` is still `cas` — **but a
//!   key that does not exist is written whatever the `cas`**, so compare-and-swap cannot make
//!   "create if absent" atomic. There is also no delete.
//! - So every write runs under one process-wide lock: the key `{prefix}lock`, created at
//!   configure time and acquired by compare-and-swap, which is atomic because that key always
//!   exists. Holding it, a write reads the key, checks its condition, writes, and reads the new
//!   `cas`, then releases the lock. The section is a handful of synchronous host calls and never
//!   spans a callback, so the lock is held for microseconds. Its value is the time (ms) until
//!   which it is held (`0`: free), so a lock left by a VM that died mid-section expires after
//!   [`LEASE_MS`] instead of blocking every write until a restart. Reads take no lock: a get
//!   returns a value and its `cas` atomically.
//!
//! Encoding: a live value is stored as the byte `0x01` followed by the core's bytes; an empty
//! value is a deleted key (the core may store empty values, so they need the tag).

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;
use scim_edge_core::{Condition, Store, StoreError, Version, Versioned};

use crate::host;

/// How long a lock holder may keep the lock before others may take it over.
const LEASE_MS: u64 = 2_000;
/// Lock attempts before a write gives up with `Unavailable`. Each attempt is one or two host
/// calls, so this bounds a blocked write to a few milliseconds of spinning.
const MAX_ATTEMPTS: u32 = 20_000;
const LIVE: u8 = 0x01;
const FREE: &[u8] = b"0";

pub struct SharedDataStore {
    prefix: String,
}

fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("shared data: {what}"))
}

/// The key's live value, if any, and its `cas`.
fn read(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
    let (raw, cas) =
        hostcalls::get_shared_data(key).map_err(|s| unavailable(format_args!("get {key}: {s:?}")))?;
    match raw.as_deref() {
        None | Some([]) => Ok((None, cas)),
        Some([LIVE, value @ ..]) => Ok((Some(value.to_vec()), cas)),
        Some(_) => Err(unavailable(format_args!("{key} holds a value scim-edge did not write"))),
    }
}

impl SharedDataStore {
    pub fn new(prefix: &str) -> Self {
        SharedDataStore { prefix: prefix.to_owned() }
    }

    fn lock_key(&self) -> String {
        format!("{}lock", self.prefix)
    }

    fn data_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Creates the lock key if this process has none yet. Runs in `on_configure`, before the
    /// VM serves requests. (Two VMs configuring at once may both create it, as `0`: harmless.)
    pub fn init(&self) -> Result<(), StoreError> {
        let key = self.lock_key();
        match hostcalls::get_shared_data(&key) {
            Ok((Some(_), _)) => Ok(()),
            _ => hostcalls::set_shared_data(&key, Some(FREE), None)
                .map_err(|s| unavailable(format_args!("cannot create {key}: {s:?}"))),
        }
    }

    /// Runs `f` holding the process-wide write lock.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let key = self.lock_key();
        let mut held_cas = None;
        for _ in 0..MAX_ATTEMPTS {
            let (value, cas) = hostcalls::get_shared_data(&key)
                .map_err(|s| unavailable(format_args!("get {key}: {s:?}")))?;
            let Some(value) = value else {
                return Err(unavailable(format_args!(
                    "the lock {key} does not exist (on_configure did not run?)"
                )));
            };
            let now = host::now_millis();
            let held_until =
                std::str::from_utf8(&value).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            if held_until > now {
                continue;
            }
            let until = (now + LEASE_MS).to_string();
            if hostcalls::set_shared_data(&key, Some(until.as_bytes()), cas).is_ok() {
                // Ours now; remember its cas so that releasing cannot free a lock that another
                // VM took over after our lease ran out.
                held_cas = hostcalls::get_shared_data(&key).ok().and_then(|(_, c)| c);
                break;
            }
        }
        let Some(cas) = held_cas else {
            return Err(unavailable(format_args!("the write lock {key} stayed busy")));
        };
        let result = f();
        // A mismatch means the lease expired and another writer holds the lock now: leave it.
        let _ = hostcalls::set_shared_data(&key, Some(FREE), Some(cas));
        result
    }
}

/// Writes `raw` over the key whose current `cas` is `cas`, then returns the new `cas`.
fn write(key: &str, raw: &[u8], cas: Option<u32>) -> Result<Version, StoreError> {
    match hostcalls::set_shared_data(key, Some(raw), cas) {
        Ok(()) => {}
        // Only a writer that bypassed the lock can cause this.
        Err(Status::CasMismatch) => return Err(StoreError::Conflict),
        Err(s) => return Err(unavailable(format_args!("set {key}: {s:?}"))),
    }
    match read(key)? {
        (_, Some(cas)) => Ok(Version(u64::from(cas))),
        (_, None) => Err(unavailable(format_args!("{key} has no cas after a write"))),
    }
}

fn holds(cond: Condition, live: bool, cas: Option<u32>) -> bool {
    match cond {
        Condition::Any => true,
        Condition::Absent => !live,
        Condition::Version(Version(v)) => live && cas.map(u64::from) == Some(v),
    }
}

impl Store for SharedDataStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let key = self.data_key(key);
        match read(&key)? {
            (Some(value), Some(cas)) => Ok(Some(Versioned { value, version: Version(u64::from(cas)) })),
            (Some(_), None) => Err(unavailable(format_args!("{key} has no cas"))),
            (None, _) => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
        let key = self.data_key(key);
        let mut raw = Vec::with_capacity(value.len() + 1);
        raw.push(LIVE);
        raw.extend_from_slice(value);
        self.locked(|| {
            let (current, cas) = read(&key)?;
            if !holds(cond, current.is_some(), cas) {
                return Err(StoreError::Conflict);
            }
            write(&key, &raw, cas)
        })
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
        if cond == Condition::Absent {
            return Err(StoreError::Conflict);
        }
        let key = self.data_key(key);
        self.locked(|| {
            let (current, cas) = read(&key)?;
            if !holds(cond, current.is_some(), cas) {
                return Err(StoreError::Conflict);
            }
            if current.is_none() {
                return Ok(());
            }
            write(&key, &[], cas).map(|_| ())
        })
    }
}
