//! The core's [`Store`] over Spin's key-value store `default`.
//!
//! Spin's key-value store has no versions and no conditional writes of its own. The only atomic
//! operations are those of `wasi:keyvalue/atomics@0.2.0-draft2`, with these semantics in Spin
//! 4.0.2 (`crates/key-value-spin/src/store.rs`, and measured):
//! - `increment(bucket, key, delta)` is atomic; an absent key counts as 0 and the stored value
//!   is the `i64` as 8 little-endian bytes. On a value that is not exactly 8 bytes, Spin's SQLite
//!   backend panics the host task, so **a data key is never incremented**.
//! - `Cas::new(bucket, key)` + `cas.current()` records the value seen; `swap(cas, value)` then
//!   writes only if the stored value still equals the recorded one (an `UPDATE … WHERE
//!   value = old`) — **but when `current()` saw no value, `swap` is an unconditional upsert**.
//!   Compare-and-swap is atomic only on a key that exists.
//!
//! ## Encoding
//! Every value the core writes is stored as one tag byte and the payload: `0x01` + value for a
//! live value, the single byte `0x00` for a tombstone. [`Store::get`] treats tombstones like
//! absent keys. The [`Version`] of a live value is derived from its content, because Spin keeps
//! no version: SipHash-1-3 of the stored bytes under a key drawn from `wasi:random` for each
//! instance (std's `RandomState`). A version is only ever compared within the request that read
//! it (the core never stores or shows one; an ETag is the record's own counter), so it need not
//! be stable across instances; keyed, its 64 bits cannot be steered by whoever writes the values.
//! Two writes of the same bytes share a version; for "has it changed since I read it" that is
//! enough, since `swap` compares whole values anyway. (It was the first 8 bytes of SHA-256:
//! no stronger, as 64 bits of an unkeyed hash, and a tenth of the speed in wasm, where every
//! read of a user record hashed it.)
//!
//! ## Conditional writes
//! - `put(Any)`: a plain `set`.
//! - `put(Version(v))`: CAS from the live value whose version is `v`; anything else is a
//!   `Conflict`, and so is a lost swap (`CasFailed`).
//! - `put(Absent)`: if `current()` shows a tombstone, CAS from the tombstone (atomic: the key
//!   exists); a live value is a `Conflict`. If the key has never existed, CAS would be a blind
//!   upsert, so creators first claim the key: `increment("claim/" + key, 1)`. Only the creator
//!   that gets 1 may write the absent key (it re-reads first, so a tombstone or live value
//!   written meanwhile is still honoured); later claimers re-read and may only CAS from a
//!   tombstone, otherwise they get `Conflict`.
//! - `delete(Any)`: `set(key, [0x00])`. `delete(Version(v))`: CAS from the live value to a
//!   tombstone. `delete(Absent)`: `Conflict`.
//!
//! **Keys are never physically removed.** Once a key has existed, every later create is a real
//! CAS against its tombstone. A physical delete would put the key back into the "never
//! existed" state, where creation depends on the claim counter — which is already ≥ 1, so the
//! key could never be created again. The price is one tombstone (key + 1 byte) per deleted key,
//! and one 8-byte `claim/…` key per key first created with `Absent`; the core never lists keys.
//!
//! Residual risk: a creator that wins the claim and then dies before its write (the instance
//! traps between two host calls) leaves the key uncreatable with `Absent` until it is written
//! unconditionally. Nothing in this adapter traps between those calls.
//!
//! Host errors become [`StoreError::Unavailable`] with the host's message, also logged.

use std::cell::OnceCell;

use scim_edge_core::{Condition, Store, StoreError, Version, Versioned};
use std::hash::{BuildHasher, RandomState};

use spin_sdk::experimental::wasi::keyvalue::atomics::{self, Cas, CasError};
use spin_sdk::experimental::wasi::keyvalue::store::{self as wasi_kv, Bucket};

/// The store every key lives in; `spin.toml` grants the component exactly this one.
const STORE_LABEL: &str = "default";

/// Tag of a live value: `LIVE` followed by the core's bytes.
const LIVE: u8 = 0x01;
/// A deleted key: exactly this one byte.
const TOMBSTONE: [u8; 1] = [0x00];
/// Prefix of the claim counters that settle creation of never-existing keys (the core's own
/// keys all start with `v1/`).
const CLAIM_PREFIX: &str = "claim/";

/// A stored value, tag removed.
#[derive(Debug, PartialEq, Eq)]
enum Stored<'a> {
    Live(&'a [u8]),
    Tombstone,
}

/// `None`: not a value this adapter wrote.
fn decode(raw: &[u8]) -> Option<Stored<'_>> {
    match raw.split_first() {
        Some((&LIVE, value)) => Some(Stored::Live(value)),
        Some((0x00, [])) => Some(Stored::Tombstone),
        _ => None,
    }
}

/// [`decode`] the value read from `key`; a foreign value makes the store unusable for it.
fn decode_at<'a>(key: &str, raw: &'a [u8]) -> Result<Stored<'a>, StoreError> {
    decode(raw)
        .ok_or_else(|| logged(format!("spin key-value: {key:?} holds a value scim-edge did not write")))
}

fn encode_live(value: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(value.len() + 1);
    raw.push(LIVE);
    raw.extend_from_slice(value);
    raw
}

/// Versions of stored bytes: a keyed hash (see the module doc), one key per store, so per
/// instance and request.
struct Versions(RandomState);

impl Versions {
    fn of(&self, raw: &[u8]) -> Version {
        Version(self.0.hash_one(raw))
    }

    /// True if `raw` is a live value read at version `v`.
    fn is_live_at(&self, key: &str, raw: &[u8], v: Version) -> Result<bool, StoreError> {
        Ok(matches!(decode_at(key, raw)?, Stored::Live(_)) && self.of(raw) == v)
    }
}

/// A host failure. The core answers 503 with a generic detail, so the reason is logged here
/// (component stderr is Spin's log).
fn unavailable(what: &str, e: impl std::fmt::Debug) -> StoreError {
    logged(format!("spin key-value {what}: {e:?}"))
}

fn logged(message: String) -> StoreError {
    eprintln!("scim-edge: {message}");
    StoreError::Unavailable(message)
}

/// Spin's `default` store, opened on first use (once per request, since the instance is).
pub(crate) struct SpinStore {
    kv: OnceCell<spin_sdk::key_value::Store>,
    bucket: OnceCell<Bucket>,
    versions: Versions,
}

impl SpinStore {
    pub(crate) fn new() -> Self {
        SpinStore { kv: OnceCell::new(), bucket: OnceCell::new(), versions: Versions(RandomState::new()) }
    }

    /// `spin:key-value` (async) for plain reads and writes.
    async fn kv(&self) -> Result<&spin_sdk::key_value::Store, StoreError> {
        if let Some(kv) = self.kv.get() {
            return Ok(kv);
        }
        let kv = spin_sdk::key_value::Store::open(STORE_LABEL).await.map_err(|e| unavailable("open", e))?;
        Ok(self.kv.get_or_init(|| kv))
    }

    /// `wasi:keyvalue/store` (sync) for the atomics, over the same store.
    fn bucket(&self) -> Result<&Bucket, StoreError> {
        if let Some(b) = self.bucket.get() {
            return Ok(b);
        }
        let b = wasi_kv::open(STORE_LABEL).map_err(|e| unavailable("open", e))?;
        Ok(self.bucket.get_or_init(|| b))
    }

    async fn set(&self, key: &str, raw: &[u8]) -> Result<(), StoreError> {
        self.kv().await?.set(key, raw).await.map_err(|e| unavailable("set", e))
    }

    /// Starts a compare-and-swap: Spin records the value `current()` returns.
    fn begin(&self, key: &str) -> Result<(Cas, Option<Vec<u8>>), StoreError> {
        let cas = Cas::new(self.bucket()?, key).map_err(|e| unavailable("cas", e))?;
        let current = cas.current().map_err(|e| unavailable("cas current", e))?;
        Ok((cas, current))
    }

    /// Creates `key` only if it holds no live value (see the module doc).
    fn create(&self, key: &str, raw: &[u8]) -> Result<(), StoreError> {
        let (mut cas, mut current) = self.begin(key)?;
        let mut first_claim = false;
        if current.is_none() {
            let claim = format!("{CLAIM_PREFIX}{key}");
            let n = atomics::increment(self.bucket()?, &claim, 1).map_err(|e| unavailable("increment", e))?;
            first_claim = n == 1;
            (cas, current) = self.begin(key)?;
        }
        match current {
            // Only the first claimer may write a key that has never existed: for it, the
            // upsert that `swap` performs here is the create.
            None if first_claim => swap(cas, raw),
            // Another creator claimed it first and is writing it now.
            None => Err(StoreError::Conflict),
            Some(old) => match decode_at(key, &old)? {
                Stored::Tombstone => swap(cas, raw),
                Stored::Live(_) => Err(StoreError::Conflict),
            },
        }
    }

    /// Replaces the live value read at version `v` with `raw`.
    fn replace(&self, key: &str, v: Version, raw: &[u8]) -> Result<(), StoreError> {
        let (cas, current) = self.begin(key)?;
        match current {
            Some(old) if self.versions.is_live_at(key, &old, v)? => swap(cas, raw),
            _ => Err(StoreError::Conflict),
        }
    }
}

fn swap(cas: Cas, raw: &[u8]) -> Result<(), StoreError> {
    atomics::swap(cas, raw).map_err(|e| match e {
        CasError::CasFailed(_) => StoreError::Conflict,
        CasError::StoreError(e) => unavailable("swap", e),
    })
}

impl Store for SpinStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let Some(raw) = self.kv().await?.get(key).await.map_err(|e| unavailable("get", e))? else {
            return Ok(None);
        };
        Ok(match decode_at(key, &raw)? {
            Stored::Live(value) => Some(Versioned { value: value.to_vec(), version: self.versions.of(&raw) }),
            Stored::Tombstone => None,
        })
    }

    async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
        let raw = encode_live(value);
        match cond {
            Condition::Any => self.set(key, &raw).await?,
            Condition::Absent => self.create(key, &raw)?,
            Condition::Version(v) => self.replace(key, v, &raw)?,
        }
        Ok(self.versions.of(&raw))
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
        match cond {
            Condition::Any => self.set(key, &TOMBSTONE).await,
            Condition::Version(v) => self.replace(key, v, &TOMBSTONE),
            Condition::Absent => Err(StoreError::Conflict),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_values_round_trip_with_a_tag() {
        let raw = encode_live(b"{\"a\":1}");
        assert_eq!(raw.first(), Some(&LIVE));
        assert_eq!(decode(&raw), Some(Stored::Live(b"{\"a\":1}".as_slice())));
        assert_eq!(decode(&encode_live(b"")), Some(Stored::Live(b"".as_slice())));
    }

    #[test]
    fn tombstone_is_one_zero_byte_and_anything_else_is_foreign() {
        assert_eq!(decode(&TOMBSTONE), Some(Stored::Tombstone));
        assert!(decode(&[]).is_none());
        assert!(decode(&[0x00, 0x01]).is_none());
        assert!(decode(&[0x02, b'x']).is_none());
        // A claim counter (i64 LE) is not a value the core wrote.
        assert!(decode(&2i64.to_le_bytes()).is_none());
        assert!(matches!(decode_at("claim/k", &2i64.to_le_bytes()), Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn version_is_content_derived_and_tag_sensitive() {
        let versions = Versions(RandomState::new());
        let a = encode_live(b"a");
        assert_eq!(versions.of(&a), versions.of(&encode_live(b"a")));
        assert_ne!(versions.of(&a), versions.of(&encode_live(b"b")));
        assert_ne!(versions.of(b"a"), versions.of(&a));
        assert_eq!(versions.is_live_at("k", &a, versions.of(&a)), Ok(true));
        assert_eq!(versions.is_live_at("k", &TOMBSTONE, versions.of(&TOMBSTONE)), Ok(false));
    }
}
