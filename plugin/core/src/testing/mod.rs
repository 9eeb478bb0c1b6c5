//! Deterministic fakes for tests, benches and fuzzing (feature `testing`): an in-memory
//! [`MemStore`] with versions (conflicts can be forced), a [`FixedClock`] that moves only
//! when told, and a [`SeqRandom`] whose output depends only on its seed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::store::{Condition, Store, StoreError, Version, Versioned};
use crate::{Clock, Random, RandomError};

pub mod scenario;

/// An in-memory [`Store`]. Versions are a global counter, so every write gets a new one.
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<MemInner>,
}

#[derive(Default)]
struct MemInner {
    map: BTreeMap<String, (Vec<u8>, u64)>,
    next_version: u64,
    /// When set, every operation fails with `Unavailable` (a store outage).
    down: bool,
    /// Number of operations served.
    ops: u64,
    /// Operations left before the store goes down by itself (see [`MemStore::fail_after`]).
    fail_in: Option<u64>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }
    /// A snapshot of every key and value (values as UTF-8, lossily).
    pub fn dump(&self) -> BTreeMap<String, String> {
        match self.inner.lock() {
            Ok(g) => {
                g.map.iter().map(|(k, (v, _))| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect()
            }
            Err(_) => BTreeMap::new(),
        }
    }
    /// [`MemStore::dump`] without bookkeeping: the provisioning log and the counters of
    /// requests and user states, which every request (refused ones too) may write.
    pub fn data(&self) -> BTreeMap<String, String> {
        let mut d = self.dump();
        d.retain(|k, _| !k.contains("/log/") && !k.contains("/stats/"));
        d
    }
    /// Every key with its value as stored, in key order: the input of
    /// [`crate::consistency::check`].
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        match self.inner.lock() {
            Ok(g) => g.map.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }
    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.lock().ok().and_then(|g| g.map.get(key).map(|(v, _)| v.clone()))
    }
    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.map.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Simulates an outage: while down, every operation fails.
    pub fn set_down(&self, down: bool) {
        if let Ok(mut g) = self.inner.lock() {
            g.down = down;
        }
    }
    /// An outage at an arbitrary point of a request: the next `ops` operations succeed, then
    /// the store is down (every operation fails) until `set_down(false)`. `None` cancels.
    pub fn fail_after(&self, ops: Option<u64>) {
        if let Ok(mut g) = self.inner.lock() {
            g.fail_in = ops;
        }
    }
    /// Whether the store is down (by [`MemStore::set_down`] or [`MemStore::fail_after`]).
    pub fn is_down(&self) -> bool {
        self.inner.lock().map(|g| g.down).unwrap_or(true)
    }
    /// Operations served so far (reads and writes); for "bounded work" tests.
    pub fn ops(&self) -> u64 {
        self.inner.lock().map(|g| g.ops).unwrap_or(0)
    }
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("mem store lock poisoned".into())
}

impl MemInner {
    /// Counts an operation; `Err` when the store is (or just went) down.
    fn begin(&mut self) -> Result<(), StoreError> {
        self.ops += 1;
        match self.fail_in {
            Some(0) => {
                self.fail_in = None;
                self.down = true;
            }
            Some(n) => self.fail_in = Some(n - 1),
            None => {}
        }
        if self.down {
            return Err(StoreError::Unavailable("mem store is down".into()));
        }
        Ok(())
    }
}

impl Store for MemStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let mut g = self.inner.lock().map_err(|_| poisoned())?;
        g.begin()?;
        Ok(g.map.get(key).map(|(v, ver)| Versioned { value: v.clone(), version: Version(*ver) }))
    }

    async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
        let mut g = self.inner.lock().map_err(|_| poisoned())?;
        g.begin()?;
        let current = g.map.get(key).map(|(_, v)| *v);
        let ok = match cond {
            Condition::Any => true,
            Condition::Absent => current.is_none(),
            Condition::Version(Version(v)) => current == Some(v),
        };
        if !ok {
            return Err(StoreError::Conflict);
        }
        g.next_version += 1;
        let ver = g.next_version;
        g.map.insert(key.to_owned(), (value.to_vec(), ver));
        Ok(Version(ver))
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
        let mut g = self.inner.lock().map_err(|_| poisoned())?;
        g.begin()?;
        let current = g.map.get(key).map(|(_, v)| *v);
        let ok = match cond {
            Condition::Any => true,
            Condition::Absent => false,
            Condition::Version(Version(v)) => current == Some(v),
        };
        if !ok {
            return Err(StoreError::Conflict);
        }
        g.map.remove(key);
        Ok(())
    }
}

/// A clock that stands still until [`FixedClock::advance`].
pub struct FixedClock(AtomicU64);

impl FixedClock {
    /// 2026-01-01T00:00:00Z.
    pub const START: u64 = 1_767_225_600_000;
    pub fn new(millis: u64) -> Self {
        FixedClock(AtomicU64::new(millis))
    }
    pub fn advance(&self, millis: u64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Default for FixedClock {
    fn default() -> Self {
        Self::new(Self::START)
    }
}

impl Clock for FixedClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Deterministic bytes: SHA-256(seed ‖ counter) blocks.
pub struct SeqRandom {
    seed: u64,
    counter: AtomicU64,
}

impl SeqRandom {
    pub fn new(seed: u64) -> Self {
        SeqRandom { seed, counter: AtomicU64::new(0) }
    }
}

impl Random for SeqRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        for chunk in buf.chunks_mut(32) {
            let n = self.counter.fetch_add(1, Ordering::SeqCst);
            let mut h = Sha256::new();
            h.update(self.seed.to_le_bytes());
            h.update(n.to_le_bytes());
            let block = h.finalize();
            for (dst, src) in chunk.iter_mut().zip(block.iter()) {
                *dst = *src;
            }
        }
        Ok(())
    }
}
