//! The key-value backends reproduce Spin 4.0.2's semantics as measured (reference/hosts.md):
//! `increment` is atomic; CAS on an absent key is an unconditional upsert; CAS on an existing
//! key detects conflicts. Not stronger, not weaker. `RedisKv` reproduces Spin 4.0.2's Redis
//! store instead (measured in `real_spin.rs`): CAS atomic on absent keys too, every swap
//! answered "failed".

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use scim_edge_host_tests::kv::{KvBackend, KvError, MemKv, RedisKv, SqliteKv};

const STORE: &str = "default";

struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        TempDb(std::env::temp_dir().join(format!("scim-edge-kv-{name}-{}-{nanos}.db", std::process::id())))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

type Named = (&'static str, Arc<dyn KvBackend>);

/// Every backend, plus the temp file that must outlive the SQLite one.
fn backends(name: &str) -> anyhow::Result<(TempDb, Vec<Named>)> {
    let file = TempDb::new(name);
    let list: Vec<Named> = vec![
        ("memory", Arc::new(MemKv::new())),
        ("sqlite :memory:", Arc::new(SqliteKv::in_memory()?)),
        ("sqlite file", Arc::new(SqliteKv::open(&file.0)?)),
    ];
    Ok((file, list))
}

#[test]
fn increment_counts_from_zero_and_stores_an_i64_le() -> anyhow::Result<()> {
    let (_f, all) = backends("incr")?;
    for (name, kv) in all {
        assert_eq!(kv.increment(STORE, "n", 1)?, 1, "{name}");
        assert_eq!(kv.increment(STORE, "n", 2)?, 3, "{name}");
        assert_eq!(kv.increment(STORE, "n", -10)?, -7, "{name}");
        assert_eq!(kv.get(STORE, "n")?, Some((-7i64).to_le_bytes().to_vec()), "{name}");
        // Spin panics on a value of another length; here it is an error (a trap in the host).
        kv.set(STORE, "data", b"\x01{\"a\":12}")?;
        assert!(matches!(kv.increment(STORE, "data", 1), Err(KvError::NotAnI64 { len: 9, .. })), "{name}");
        kv.set(STORE, "short", b"\x01")?;
        assert!(matches!(kv.increment(STORE, "short", 1), Err(KvError::NotAnI64 { len: 1, .. })), "{name}");
        assert_eq!(kv.get(STORE, "short")?, Some(b"\x01".to_vec()), "{name}: unchanged");
        // Stores are separate namespaces.
        assert_eq!(kv.get("other", "n")?, None, "{name}");
    }
    Ok(())
}

/// hosts.md: 400 concurrent increments from 16 clients gave 400 distinct values.
#[test]
fn concurrent_increments_are_all_distinct() -> anyhow::Result<()> {
    let (_f, all) = backends("incr-concurrent")?;
    for (name, kv) in all {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let kv = kv.clone();
                thread::spawn(move || {
                    (0..25).map(|_| kv.increment(STORE, "claim/x", 1)).collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut seen = Vec::new();
        for h in handles {
            seen.extend(h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??);
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=400).collect::<Vec<i64>>(), "{name}");
        assert_eq!(kv.get(STORE, "claim/x")?, Some(400i64.to_le_bytes().to_vec()), "{name}");
    }
    Ok(())
}

/// hosts.md: when `current()` saw no value, `swap` is an unconditional upsert — two
/// "create if absent" attempts both succeed and the first write is lost.
#[test]
fn cas_on_an_absent_key_is_an_upsert() -> anyhow::Result<()> {
    let (_f, all) = backends("cas-absent")?;
    for (name, kv) in all {
        let seen_by_a = kv.get(STORE, "k")?;
        let seen_by_b = kv.get(STORE, "k")?;
        assert_eq!((seen_by_a.as_deref(), seen_by_b.as_deref()), (None, None), "{name}");
        assert!(kv.swap(STORE, "k", seen_by_a.as_deref(), b"from a")?, "{name}");
        assert!(kv.swap(STORE, "k", seen_by_b.as_deref(), b"from b")?, "{name}: b succeeds too");
        assert_eq!(kv.get(STORE, "k")?, Some(b"from b".to_vec()), "{name}: a's write was lost");
    }
    Ok(())
}

/// hosts.md: with the key created first, every read-append-swap survived.
#[test]
fn cas_on_an_existing_key_detects_conflicts() -> anyhow::Result<()> {
    let (_f, all) = backends("cas-existing")?;
    for (name, kv) in all {
        kv.set(STORE, "k", b"a")?;
        let seen_by_a = kv.get(STORE, "k")?;
        let seen_by_b = kv.get(STORE, "k")?;
        assert!(kv.swap(STORE, "k", seen_by_a.as_deref(), b"ab")?, "{name}");
        assert!(!kv.swap(STORE, "k", seen_by_b.as_deref(), b"ac")?, "{name}: b's view is stale");
        assert_eq!(kv.get(STORE, "k")?, Some(b"ab".to_vec()), "{name}");
        // Equal values compare equal: an A→B→A change is not detected (as in Spin).
        kv.set(STORE, "k", b"x")?;
        kv.set(STORE, "k", b"ab")?;
        assert!(kv.swap(STORE, "k", Some(b"ab"), b"abd")?, "{name}");

        kv.set(STORE, "log", b"")?;
        let handles: Vec<_> = (0..16u8)
            .map(|t| {
                let kv = kv.clone();
                thread::spawn(move || -> Result<u32, KvError> {
                    let mut conflicts = 0;
                    for _ in 0..20 {
                        loop {
                            let old = kv.get(STORE, "log")?.unwrap_or_default();
                            let mut new = old.clone();
                            new.push(b'a' + t);
                            if kv.swap(STORE, "log", Some(&old), &new)? {
                                break;
                            }
                            conflicts += 1;
                        }
                    }
                    Ok(conflicts)
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??;
        }
        assert_eq!(kv.get(STORE, "log")?.map(|v| v.len()), Some(320), "{name}: no append lost");
    }
    Ok(())
}

#[test]
fn sqlite_uses_spins_table_and_persists() -> anyhow::Result<()> {
    let file = TempDb::new("persist");
    {
        let kv = SqliteKv::open(&file.0)?;
        kv.set(STORE, "v1/tenant/demo", b"\x01{}")?;
        kv.set(STORE, "gone", b"x")?;
        kv.delete(STORE, "gone")?;
        kv.increment(STORE, "claim/v1/tenant/demo", 1)?;
    }
    let kv = SqliteKv::open(&file.0)?;
    assert_eq!(kv.get(STORE, "v1/tenant/demo")?, Some(b"\x01{}".to_vec()));
    assert_eq!(kv.keys(STORE)?, vec!["claim/v1/tenant/demo".to_owned(), "v1/tenant/demo".to_owned()]);
    assert!(!kv.exists(STORE, "gone")?);
    drop(kv);

    let conn = rusqlite::Connection::open(&file.0)?;
    let rows: Vec<(String, String, Vec<u8>)> = conn
        .prepare("SELECT store, key, value FROM spin_key_value ORDER BY key")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1], ("default".to_owned(), "v1/tenant/demo".to_owned(), b"\x01{}".to_vec()));
    Ok(())
}

/// Spin's Redis store: `increment` counts in decimal text and refuses a non-number (an error,
/// no panic); a swap lands only if the key still holds what `current()` saw (absent included),
/// and is answered "failed" either way.
#[test]
fn redis_semantics_swap_always_answers_failed_and_increment_counts_in_text() -> anyhow::Result<()> {
    let kv = RedisKv::new();
    assert_eq!(kv.increment(STORE, "claim/x", 1)?, 1);
    assert_eq!(kv.increment(STORE, "claim/x", 1)?, 2);
    assert_eq!(kv.get(STORE, "claim/x")?, Some(b"2".to_vec()));
    kv.set(STORE, "data", b"\x02json")?;
    assert!(matches!(kv.increment(STORE, "data", 1), Err(KvError::Other(_))));

    // Absent at current(): lands only while still absent, answered false both times.
    assert!(!kv.swap(STORE, "k", None, b"first")?);
    assert_eq!(kv.get(STORE, "k")?, Some(b"first".to_vec()));
    assert!(!kv.swap(STORE, "k", None, b"second")?);
    assert_eq!(kv.get(STORE, "k")?, Some(b"first".to_vec()));
    // Existing: lands only on the value seen.
    assert!(!kv.swap(STORE, "k", Some(b"first"), b"third")?);
    assert_eq!(kv.get(STORE, "k")?, Some(b"third".to_vec()));
    assert!(!kv.swap(STORE, "k", Some(b"first"), b"fourth")?);
    assert_eq!(kv.get(STORE, "k")?, Some(b"third".to_vec()));
    Ok(())
}
