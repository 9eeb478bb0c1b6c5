//! Key-value backends with the semantics of Spin 4.0.2's SQLite store
//! (`crates/key-value-spin/src/store.rs`), exactly — not stronger:
//! - `increment` is atomic, treats an absent key as 0 and stores the `i64` as 8 little-endian
//!   bytes; a stored value of any other length is [`KvError::NotAnI64`] (Spin panics the host
//!   task there; the host bindings turn it into a trap);
//! - `swap(expected = Some(old))` writes only if the value still equals `old`;
//!   `swap(expected = None)` — a CAS whose `current()` saw no value, or was never called — is
//!   an unconditional upsert that always succeeds.
//!
//! Values are plain bytes; stores are named (`store` column), as in Spin's table
//! `spin_key_value(store, key, value)`. Both backends are shared across concurrent requests.
//!
//! [`RedisKv`] has the semantics of Spin 4.0.2's **Redis** store instead (measured with the real
//! Spin, `tests/real_spin.rs`; see `plugin/spin/src/store.rs`), in memory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// `increment` found a value that is not an 8-byte `i64`.
    NotAnI64 { key: String, len: usize },
    /// Anything else (I/O, a poisoned lock); Spin's `error::other`.
    Other(String),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::NotAnI64 { key, len } => {
                write!(f, "increment of {key:?}: stored value has {len} bytes, not an 8-byte i64")
            }
            KvError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for KvError {}

/// A key-value backend shared by every instance of the component.
pub trait KvBackend: Send + Sync + 'static {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, store: &str, key: &str) -> Result<(), KvError>;
    fn exists(&self, store: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.get(store, key)?.is_some())
    }
    /// Every key of `store`, in key order.
    fn keys(&self, store: &str) -> Result<Vec<String>, KvError>;
    /// Atomically adds `delta` to the `i64` under `key` (absent: 0) and returns the sum.
    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Spin's `swap`: with `Some(old)`, writes `value` only if the stored value equals `old`
    /// (returns whether it did); with `None`, upserts unconditionally and returns `true`.
    fn swap(&self, store: &str, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError>;
}

fn add(key: &str, current: Option<Vec<u8>>, delta: i64) -> Result<i64, KvError> {
    let n = match current {
        None => 0,
        Some(v) => {
            let len = v.len();
            let bytes: [u8; 8] = v.try_into().map_err(|_| KvError::NotAnI64 { key: key.to_owned(), len })?;
            i64::from_le_bytes(bytes)
        }
    };
    // Spin is built in release mode: `numeric + delta` wraps.
    Ok(n.wrapping_add(delta))
}

/// In memory, for tests. One lock around the whole map, like Spin's one SQLite connection.
#[derive(Default)]
pub struct MemKv {
    map: Mutex<Map>,
}

/// (store, key) → value.
type Map = BTreeMap<(String, String), Vec<u8>>;

impl MemKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Map>, KvError> {
        self.map.lock().map_err(|_| KvError::Other("memory store lock poisoned".into()))
    }
}

fn k(store: &str, key: &str) -> (String, String) {
    (store.to_owned(), key.to_owned())
}

impl KvBackend for MemKv {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.lock()?.get(&k(store, key)).cloned())
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.lock()?.insert(k(store, key), value.to_vec());
        Ok(())
    }

    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        self.lock()?.remove(&k(store, key));
        Ok(())
    }

    fn keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        Ok(self.lock()?.keys().filter(|(s, _)| s == store).map(|(_, key)| key.clone()).collect())
    }

    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut map = self.lock()?;
        let n = add(key, map.get(&k(store, key)).cloned(), delta)?;
        map.insert(k(store, key), n.to_le_bytes().to_vec());
        Ok(n)
    }

    fn swap(&self, store: &str, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        let mut map = self.lock()?;
        let entry = k(store, key);
        if let Some(old) = expected {
            if map.get(&entry).map(Vec::as_slice) != Some(old) {
                return Ok(false);
            }
        }
        map.insert(entry, value.to_vec());
        Ok(true)
    }
}

/// SQLite, in Spin's own table and with Spin's statements, so a dev database can be inspected
/// with the same queries as `.spin/sqlite_key_value.db`.
pub struct SqliteKv {
    conn: Mutex<Connection>,
}

fn sql(e: rusqlite::Error) -> KvError {
    KvError::Other(format!("sqlite: {e}"))
}

const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                      ON CONFLICT(store, key) DO UPDATE SET value=$3";
const SELECT: &str = "SELECT value FROM spin_key_value WHERE store=$1 AND key=$2";

impl SqliteKv {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, KvError> {
        Self::with(Connection::open(path).map_err(sql)?)
    }

    pub fn in_memory() -> Result<Self, KvError> {
        Self::with(Connection::open_in_memory().map_err(sql)?)
    }

    fn with(conn: Connection) -> Result<Self, KvError> {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
            [],
        )
        .map_err(sql)?;
        Ok(SqliteKv { conn: Mutex::new(conn) })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, KvError> {
        self.conn.lock().map_err(|_| KvError::Other("sqlite connection lock poisoned".into()))
    }
}

fn select(conn: &Connection, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    conn.prepare_cached(SELECT)
        .map_err(sql)?
        .query_row(params![store, key], |row| row.get::<_, Vec<u8>>(0))
        .optional()
        .map_err(sql)
}

impl KvBackend for SqliteKv {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        select(&*self.lock()?, store, key)
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.lock()?.prepare_cached(UPSERT).map_err(sql)?.execute(params![store, key, value]).map_err(sql)?;
        Ok(())
    }

    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        self.lock()?
            .prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")
            .map_err(sql)?
            .execute(params![store, key])
            .map_err(sql)?;
        Ok(())
    }

    fn keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        let conn = self.lock()?;
        let mut stmt =
            conn.prepare_cached("SELECT key FROM spin_key_value WHERE store=$1 ORDER BY key").map_err(sql)?;
        let rows = stmt.query_map(params![store], |row| row.get::<_, String>(0)).map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction().map_err(sql)?;
        let n = add(key, select(&tx, store, key)?, delta)?;
        tx.prepare_cached(UPSERT).map_err(sql)?.execute(params![store, key, n.to_le_bytes()]).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(n)
    }

    fn swap(&self, store: &str, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        let conn = self.lock()?;
        let rows = match expected {
            // `?N` binds by position; SQLite's `$N` would be a *named* parameter.
            Some(old) => conn
                .prepare_cached("UPDATE spin_key_value SET value=?4 WHERE store=?1 AND key=?2 AND value=?3")
                .map_err(sql)?
                .execute(params![store, key, old, value])
                .map_err(sql)?,
            None => {
                conn.prepare_cached(UPSERT).map_err(sql)?.execute(params![store, key, value]).map_err(sql)?
            }
        };
        Ok(rows == 1)
    }
}

/// Spin 4.0.2's Redis store (`crates/key-value-redis`), in memory:
/// - `increment` is atomic (`INCRBY`), treats an absent key as 0 and stores the sum as decimal
///   text; a value that is not such a number is an error (Redis's), not a panic;
/// - `swap` is atomic whether or not the key existed — `current()` `WATCH`es the key, and `EXEC`
///   writes only if nobody wrote it since — **and always answers "failed"** (`Ok(false)`), landed
///   or not, because Spin's `UNWATCH key` is rejected by Redis after the `EXEC`.
///
/// `WATCH` notices any write, even of the same bytes; this double compares values, which is the
/// same for a writer whose values are all unique (the Spin adapter's carry a random write id).
/// A `swap` with nothing recorded is taken as "the key was absent at `current()`": the adapter
/// always calls `current()` first.
#[derive(Default)]
pub struct RedisKv {
    inner: MemKv,
}

impl RedisKv {
    pub fn new() -> Self {
        Self::default()
    }
}

impl KvBackend for RedisKv {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(store, key)
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.inner.set(store, key, value)
    }

    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        self.inner.delete(store, key)
    }

    fn keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        self.inner.keys(store)
    }

    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut map = self.inner.lock()?;
        let n = match map.get(&k(store, key)) {
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| KvError::Other("ERR value is not an integer or out of range".into()))?,
        };
        let n = n
            .checked_add(delta)
            .ok_or_else(|| KvError::Other("ERR increment or decrement would overflow".into()))?;
        map.insert(k(store, key), n.to_string().into_bytes());
        Ok(n)
    }

    fn swap(&self, store: &str, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        let mut map = self.inner.lock()?;
        let entry = k(store, key);
        if map.get(&entry).map(Vec::as_slice) == expected {
            map.insert(entry, value.to_vec());
        }
        Ok(false)
    }
}
