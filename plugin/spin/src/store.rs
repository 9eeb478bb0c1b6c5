//! The core's [`Store`] over Spin's key-value store `default`, correct on both backends the
//! README offers — SQLite (Spin's default) and Redis (runtime config) — without being told which
//! one it runs on.
//!
//! Spin's key-value store has no versions and no conditional writes of its own. The only atomic
//! operations are those of `wasi:keyvalue/atomics@0.2.0-draft2`. Their semantics differ by
//! backend; measured in the real Spin 4.0.2 with Redis 7.0 (`MONITOR` by hand, `INFO
//! commandstats` in `host-tests/tests/real_spin.rs`) and read in its source (`crates/key-value-spin`, `crates/key-value-redis`,
//! `crates/factor-key-value/src/host.rs` at tag v4.0.2):
//!
//! | operation | SQLite (default) | Redis |
//! |---|---|---|
//! | `get` / `set` / `delete` | `SELECT` / upsert / `DELETE` | `GET` / `SET` / `DEL` |
//! | `increment(key, d)` | atomic (one transaction); absent = 0; stores the `i64` as 8 LE bytes; **panics the host task** on a value that is not 8 bytes | atomic `INCRBY`; absent = 0; stores decimal ASCII (`"1"`); a non-integer value is an error |
//! | `Cas::new` | nothing | opens a **new Redis connection** for this CAS |
//! | `current()` | reads and records the value | `WATCH key` + `GET key` on that connection |
//! | `swap` on an existing key | `UPDATE … WHERE value = recorded`: atomic, answer truthful | `MULTI; SET; EXEC`: atomic (`EXEC` is aborted if the key was written since `WATCH`) — **but the answer is always `CasFailed`** |
//! | `swap` when `current()` saw no value | unconditional upsert: **not atomic**, always `Ok` | atomic as above (`WATCH` covers an absent key), answer always `CasFailed` |
//!
//! Why Redis always answers `CasFailed`: after `EXEC`, Spin 4.0.2 sends `UNWATCH key`, and
//! `UNWATCH` takes no argument, so Redis answers `ERR wrong number of arguments for 'unwatch'
//! command` (Redis's `INFO commandstats` counts one `rejected_calls` of `unwatch` per swap),
//! which Spin turns into `CasFailed` — after the `SET` has (or has not) landed. On a
//! `CasFailed`, Spin also opens another connection and `WATCH`es/`GET`s the key for the new CAS
//! it hands back. The adapter before this one believed `CasFailed`, so on Redis every
//! conditional write it made looked lost although it had landed: the core retried against its
//! own writes until it gave up, and every write request answered 409 "changed by a concurrent
//! request", leaving a claim counter and log slots behind per retry.
//!
//! The wasmtime test host reproduces both: `host-tests/src/kv.rs` (`MemKv`/`SqliteKv` for
//! SQLite, `RedisKv` for Redis; the Entra suite and the contention workload run on both).
//!
//! So a `swap`'s answer is read as follows: `Ok` is believed (SQLite's `Ok` is truthful; Spin
//! 4.0.2's Redis store never answers `Ok`, and `host-tests/tests/real_spin.rs` would see two
//! 201s for one `userName` if a later Spin started to answer `Ok` for an aborted `EXEC`).
//! `CasFailed` is **checked**: the adapter re-reads the key and decides from what it finds,
//! which it can because every value it writes is unique (below). On SQLite a `CasFailed` is
//! truthful and the check agrees with it at the cost of one read on a lost race.
//!
//! ## Encoding
//! Every value the adapter writes carries a **write id**: 64 random bits from `wasi:random`,
//! fresh for each write, and the write id of the value it replaced (`prev`, 0 when unknown):
//! - `0x02` ‖ id (8 bytes LE) ‖ prev (8 bytes LE) ‖ the core's bytes — a live value;
//! - `0x03` ‖ id ‖ prev — a tombstone (a deleted key; [`Store::get`] treats it as absent).
//!
//! The [`Version`] of such a value is its write id: unique, so no two writes — even of the same
//! bytes, such as two requests raising the same counter to the same number — share a version.
//! Values of the earlier encoding are still read: `0x01` ‖ bytes (live) and `0x00` (tombstone),
//! whose version is a SipHash-1-3 of the stored bytes under a per-instance random key.
//!
//! **Deciding a `CasFailed`.** Let `mine` be the write id just swapped in. The re-read finds:
//! - a value whose id is `mine`: the write landed (Redis);
//! - a value whose `prev` is `mine`: the write landed and a conditional writer has since
//!   replaced it (it read `mine` first, so it records it as `prev`);
//! - anything else: the write did not land → `Conflict`.
//!
//! The last case is wrong only if, between this `EXEC` and the re-read — one `UNWATCH`, one
//! connection opened by Spin and one `GET` — **two or more** other writes replaced the key, or an
//! unconditional write did (it records no `prev`); then a write that landed is reported as a
//! `Conflict`, and the core, which retries conflicts by re-reading, may apply its change twice
//! (a counter counted twice shows as `CountDrift` in `scim-edge-fsck`). The core's
//! unconditional writes go to keys nobody else writes yet (a new record, a new connection), so
//! this needs three requests racing for one key within a few hundred microseconds.
//!
//! ## Conditional writes
//! - `put(Any)`: a plain `set`.
//! - `put(Version(v))`: CAS from the live value whose version is `v`; anything else is a
//!   `Conflict`, and so is a lost swap.
//! - `put(Absent)`: if `current()` shows a tombstone, CAS from the tombstone (atomic on both
//!   backends: the key exists); a live value is a `Conflict`. If the key has never existed,
//!   SQLite's `swap` would be a blind upsert, so creators first claim the key:
//!   `increment("claim/" + key, 1)`. Only the creator that gets 1 may write the absent key (it
//!   re-reads first, so a tombstone or live value written meanwhile is still honoured); later
//!   claimers re-read and may only CAS from a tombstone, otherwise they get `Conflict`. Redis
//!   would not need the claim (its `WATCH` covers absent keys), but the adapter cannot tell the
//!   backends apart (short of guessing from the stored form of a counter: 8 bytes or decimal
//!   text), and the claim is correct on both.
//! - `delete(Any)`: `set` a tombstone. `delete(Version(v))`: CAS from the live value to a
//!   tombstone. `delete(Absent)`: `Conflict`.
//!
//! **Keys are never physically removed.** Once a key has existed, every later create is a real
//! CAS against its tombstone. A physical delete would put the key back into the "never
//! existed" state, where creation depends on the claim counter — which is already ≥ 1, so the
//! key could never be created again. The price is one tombstone (key + 17 bytes) per deleted
//! key, and one `claim/…` counter per key first created with `Absent`; the core never lists keys.
//!
//! **A claimer that died.** A creator that wins the claim and then dies before its write (Spin
//! killed between those host calls: `Cas::new`, `current()`, `swap`) would leave the key
//! uncreatable with `Absent` for ever — a log slot that stops the tenant's provisioning log, a
//! `userName` that can never be provisioned, a list whose lease can never be taken. Measured:
//! `host-tests/tests/real_spin.rs` SIGKILLs a `spin up` on Redis in the middle of the
//! contention workload, and about one run in five killed a creator there. So a later creator
//! that finds the key claimed and still unwritten notes when it first saw that
//! (`claimseen/<key>`: milliseconds since the epoch, decimal) and answers `Conflict`; one that
//! finds it so for longer than [`TAKEOVER_MS`] takes the key over — the one that gets 1 from
//! `increment("claimtake/" + key)`: it writes a tombstone unconditionally and creates the key
//! from that tombstone, with a real CAS on both backends (a taker-over that dies as well leaves
//! the key to be repaired by hand, by writing a tombstone — Redis: `{ printf '\003'; head -c 16
//! /dev/zero; } | redis-cli -x SET '<key>'`, SQLite: `INSERT INTO spin_key_value VALUES
//! ('default', '<key>', X'0300000000000000000000000000000000')`).
//! A live claimer takes three host calls between its claim and its write, far below
//! `TAKEOVER_MS`; only one stopped for longer (SIGSTOP) and then resumed could still make its
//! write on SQLite, where its `swap` is a blind upsert and would replace the taker-over's
//! value. `scim-edge-fsck` reports a claim whose key holds nothing as garbage ("claimed for
//! creation … but not written").
//!
//! Host errors become [`StoreError::Unavailable`] with the host's message, also logged.

use std::cell::OnceCell;

use scim_edge_core::{Condition, Store, StoreError, Version, Versioned};
use std::hash::{BuildHasher, RandomState};

use spin_sdk::experimental::wasi::keyvalue::atomics::{self, Cas, CasError};
use spin_sdk::experimental::wasi::keyvalue::store::{self as wasi_kv, Bucket};

/// The store every key lives in; `spin.toml` grants the component exactly this one.
const STORE_LABEL: &str = "default";

/// Tag of a live value: `LIVE` ‖ write id ‖ prev ‖ the core's bytes.
const LIVE: u8 = 0x02;
/// Tag of a tombstone: `TOMBSTONE` ‖ write id ‖ prev.
const TOMBSTONE: u8 = 0x03;
/// The earlier encoding, still read: `LEGACY_LIVE` ‖ bytes, and the single byte
/// `LEGACY_TOMBSTONE`.
const LEGACY_LIVE: u8 = 0x01;
const LEGACY_TOMBSTONE: u8 = 0x00;
/// Tag, write id, prev.
const HEADER: usize = 17;
/// Prefix of the claim counters that settle creation of never-existing keys (the core's own
/// keys all start with `v1/`).
const CLAIM_PREFIX: &str = "claim/";
/// Prefix of the counters that let one creator take over a key whose claimer died.
const TAKE_PREFIX: &str = "claimtake/";
/// Prefix of the keys recording when a later creator first found a key claimed and unwritten.
const SEEN_PREFIX: &str = "claimseen/";
/// How long a key may stay claimed and unwritten before a later creator takes it over.
pub(crate) const TAKEOVER_MS: u64 = 30_000;

/// A stored value, tag removed.
#[derive(Debug, PartialEq, Eq)]
enum Stored<'a> {
    Live(&'a [u8]),
    Tombstone,
}

/// A stored value decoded: what it is, and the write ids it carries (`None` for the legacy
/// encoding, which has none).
#[derive(Debug, PartialEq, Eq)]
struct Decoded<'a> {
    stored: Stored<'a>,
    /// (write id, prev)
    ids: Option<(u64, u64)>,
}

fn id_at(raw: &[u8], at: usize) -> Option<u64> {
    raw.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
}

/// `None`: not a value this adapter wrote.
fn decode(raw: &[u8]) -> Option<Decoded<'_>> {
    let ids = || Some((id_at(raw, 1)?, id_at(raw, 9)?));
    match *raw.first()? {
        LIVE => Some(Decoded { stored: Stored::Live(raw.get(HEADER..)?), ids: Some(ids()?) }),
        TOMBSTONE if raw.len() == HEADER => Some(Decoded { stored: Stored::Tombstone, ids: Some(ids()?) }),
        LEGACY_LIVE => Some(Decoded { stored: Stored::Live(raw.get(1..)?), ids: None }),
        LEGACY_TOMBSTONE if raw.len() == 1 => Some(Decoded { stored: Stored::Tombstone, ids: None }),
        _ => None,
    }
}

/// [`decode`] the value read from `key`; a foreign value makes the store unusable for it.
fn decode_at<'a>(key: &str, raw: &'a [u8]) -> Result<Decoded<'a>, StoreError> {
    decode(raw)
        .ok_or_else(|| logged(format!("spin key-value: {key:?} holds a value scim-edge did not write")))
}

/// A value to write: `tag` ‖ `id` ‖ `prev` ‖ `value`.
fn encode(tag: u8, id: u64, prev: u64, value: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(HEADER + value.len());
    raw.push(tag);
    raw.extend_from_slice(&id.to_le_bytes());
    raw.extend_from_slice(&prev.to_le_bytes());
    raw.extend_from_slice(value);
    raw
}

/// A fresh write id: 64 bits from `wasi:random`, never 0 (0 is "prev unknown").
fn write_id() -> Result<u64, StoreError> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).map_err(|e| unavailable("random write id", e))?;
    Ok(u64::from_le_bytes(buf).max(1))
}

/// Versions of stored values: the write id, or for a legacy value a keyed hash of its bytes
/// (see the module doc), one key per store, so per instance and request.
struct Versions(RandomState);

impl Versions {
    fn of(&self, raw: &[u8], decoded: &Decoded<'_>) -> Version {
        match decoded.ids {
            Some((id, _)) => Version(id),
            None => Version(self.0.hash_one(raw)),
        }
    }

    /// True if `raw` is a live value read at version `v`.
    fn is_live_at(&self, key: &str, raw: &[u8], v: Version) -> Result<bool, StoreError> {
        let d = decode_at(key, raw)?;
        Ok(matches!(d.stored, Stored::Live(_)) && self.of(raw, &d) == v)
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

/// What a conditional write swaps in: the encoded value and its write id.
struct Write {
    raw: Vec<u8>,
    id: u64,
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

    async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv().await?.get(key).await.map_err(|e| unavailable("get", e))
    }

    async fn set(&self, key: &str, raw: &[u8]) -> Result<(), StoreError> {
        self.kv().await?.set(key, raw).await.map_err(|e| unavailable("set", e))
    }

    /// Starts a compare-and-swap: Spin records the value `current()` returns (SQLite) or
    /// `WATCH`es the key (Redis).
    fn begin(&self, key: &str) -> Result<(Cas, Option<Vec<u8>>), StoreError> {
        let cas = Cas::new(self.bucket()?, key).map_err(|e| unavailable("cas", e))?;
        let current = cas.current().map_err(|e| unavailable("cas current", e))?;
        Ok((cas, current))
    }

    /// The write replacing `old` (the raw value `current()` saw, if any).
    fn write(&self, tag: u8, old: Option<&[u8]>, value: &[u8]) -> Result<Write, StoreError> {
        let prev = old.and_then(|raw| decode(raw).map(|d| self.versions.of(raw, &d).0)).unwrap_or(0);
        let id = write_id()?;
        Ok(Write { raw: encode(tag, id, prev, value), id })
    }

    /// Swaps `w` in. `Ok` is believed; a `CasFailed` is checked against the stored value (see
    /// the module doc: Spin's Redis store answers `CasFailed` to every swap, landed or not).
    async fn swap(&self, key: &str, cas: Cas, w: &Write) -> Result<(), StoreError> {
        match atomics::swap(cas, &w.raw) {
            Ok(()) => Ok(()),
            Err(CasError::StoreError(e)) => Err(unavailable("swap", e)),
            Err(CasError::CasFailed(retry)) => {
                // Spin's fresh CAS for a retry: not used (the core decides about retries).
                drop(retry);
                let landed = self
                    .get_raw(key)
                    .await?
                    .as_deref()
                    .and_then(decode)
                    .and_then(|d| d.ids)
                    .is_some_and(|(id, prev)| id == w.id || prev == w.id);
                if landed {
                    Ok(())
                } else {
                    Err(StoreError::Conflict)
                }
            }
        }
    }

    /// Creates `key` only if it holds no live value (see the module doc).
    async fn create(&self, key: &str, value: &[u8]) -> Result<u64, StoreError> {
        let (mut cas, mut current) = self.begin(key)?;
        let mut first_claim = false;
        if current.is_none() {
            let claim = format!("{CLAIM_PREFIX}{key}");
            let n = atomics::increment(self.bucket()?, &claim, 1).map_err(|e| unavailable("increment", e))?;
            first_claim = n == 1;
            (cas, current) = self.begin(key)?;
        }
        let w = match current.as_deref() {
            // Only the first claimer may write a key that has never existed: for it, the
            // upsert that SQLite's `swap` performs here is the create.
            None if first_claim => self.write(LIVE, None, value)?,
            // Another creator claimed it first and is writing it now — or died doing so.
            None => {
                // One taker-over: the first to count itself in.
                if !self.claimer_died(key).await?
                    || atomics::increment(self.bucket()?, &format!("{TAKE_PREFIX}{key}"), 1)
                        .map_err(|e| unavailable("increment", e))?
                        != 1
                {
                    return Err(StoreError::Conflict);
                }
                // Taken over: from a tombstone, the create is a real CAS on both backends.
                self.set(key, &self.write(TOMBSTONE, None, &[])?.raw).await?;
                (cas, current) = self.begin(key)?;
                match current.as_deref() {
                    Some(old) if decode_at(key, old)?.stored == Stored::Tombstone => {
                        self.write(LIVE, Some(old), value)?
                    }
                    _ => return Err(StoreError::Conflict),
                }
            }
            Some(old) => match decode_at(key, old)?.stored {
                Stored::Tombstone => self.write(LIVE, Some(old), value)?,
                Stored::Live(_) => return Err(StoreError::Conflict),
            },
        };
        self.swap(key, cas, &w).await?;
        Ok(w.id)
    }

    /// For a key claimed by another creator and still unwritten: true once it has been so for
    /// [`TAKEOVER_MS`] since a creator first noticed (the claimer died); the first to notice
    /// records the time.
    async fn claimer_died(&self, key: &str) -> Result<bool, StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let seen_key = format!("{SEEN_PREFIX}{key}");
        let seen = self.get_raw(&seen_key).await?;
        match seen.as_deref().and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse::<u64>().ok()) {
            Some(first) => Ok(now.saturating_sub(first) >= TAKEOVER_MS),
            None => {
                self.set(&seen_key, now.to_string().as_bytes()).await?;
                Ok(false)
            }
        }
    }

    /// Replaces the live value read at version `v` with a value tagged `tag`.
    async fn replace(&self, key: &str, v: Version, tag: u8, value: &[u8]) -> Result<u64, StoreError> {
        let (cas, current) = self.begin(key)?;
        let w = match current.as_deref() {
            Some(old) if self.versions.is_live_at(key, old, v)? => self.write(tag, Some(old), value)?,
            _ => return Err(StoreError::Conflict),
        };
        self.swap(key, cas, &w).await?;
        Ok(w.id)
    }
}

impl Store for SpinStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let Some(raw) = self.get_raw(key).await? else {
            return Ok(None);
        };
        let d = decode_at(key, &raw)?;
        Ok(match d.stored {
            Stored::Live(value) => {
                Some(Versioned { value: value.to_vec(), version: self.versions.of(&raw, &d) })
            }
            Stored::Tombstone => None,
        })
    }

    async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
        let id = match cond {
            Condition::Any => {
                let w = self.write(LIVE, None, value)?;
                self.set(key, &w.raw).await?;
                w.id
            }
            Condition::Absent => self.create(key, value).await?,
            Condition::Version(v) => self.replace(key, v, LIVE, value).await?,
        };
        Ok(Version(id))
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
        match cond {
            Condition::Any => self.set(key, &self.write(TOMBSTONE, None, &[])?.raw).await,
            Condition::Version(v) => self.replace(key, v, TOMBSTONE, &[]).await.map(|_| ()),
            Condition::Absent => Err(StoreError::Conflict),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_values_and_tombstones_carry_their_write_ids() {
        let raw = encode(LIVE, 7, 5, b"{\"a\":1}");
        assert_eq!(raw.len(), HEADER + 7);
        let d = decode(&raw).unwrap();
        assert_eq!(d, Decoded { stored: Stored::Live(b"{\"a\":1}".as_slice()), ids: Some((7, 5)) });
        assert_eq!(decode(&encode(LIVE, 1, 0, b"")).unwrap().stored, Stored::Live(b"".as_slice()));
        let t = encode(TOMBSTONE, 9, 7, b"");
        assert_eq!(decode(&t), Some(Decoded { stored: Stored::Tombstone, ids: Some((9, 7)) }));
    }

    #[test]
    fn legacy_values_are_read_and_anything_else_is_foreign() {
        assert_eq!(decode(b"\x01{}"), Some(Decoded { stored: Stored::Live(b"{}".as_slice()), ids: None }));
        assert_eq!(decode(&[0x00]), Some(Decoded { stored: Stored::Tombstone, ids: None }));
        assert!(decode(&[]).is_none());
        assert!(decode(&[0x00, 0x01]).is_none());
        assert!(decode(&[LIVE, 1, 2]).is_none(), "a live value shorter than its header");
        assert!(decode(&[&encode(TOMBSTONE, 1, 0, b"")[..], b"x"].concat()).is_none());
        assert!(decode(&[0x04, b'x']).is_none());
        // Claim counters: SQLite's 8-byte i64, Redis's decimal ASCII.
        assert!(decode(&2i64.to_le_bytes()).is_none());
        assert!(decode(b"2").is_none());
        assert!(matches!(decode_at("claim/k", &2i64.to_le_bytes()), Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn version_is_the_write_id_or_a_hash_of_a_legacy_value() {
        let versions = Versions(RandomState::new());
        let a = encode(LIVE, 42, 0, b"same");
        let b = encode(LIVE, 43, 0, b"same");
        assert_eq!(versions.of(&a, &decode(&a).unwrap()), Version(42));
        // Same bytes written twice: two versions.
        assert_ne!(versions.of(&b, &decode(&b).unwrap()), versions.of(&a, &decode(&a).unwrap()));
        assert_eq!(versions.is_live_at("k", &a, Version(42)), Ok(true));
        assert_eq!(versions.is_live_at("k", &encode(TOMBSTONE, 42, 0, b""), Version(42)), Ok(false));
        let legacy = b"\x01x".to_vec();
        let v = versions.of(&legacy, &decode(&legacy).unwrap());
        assert_eq!(versions.is_live_at("k", &legacy, v), Ok(true));
        assert_ne!(v, versions.of(b"\x01y", &decode(b"\x01y").unwrap()));
    }
}
