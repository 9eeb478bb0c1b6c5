//! Conflicting operations from many clients at once through the real Spin component
//! (`scim_edge_host_tests::contention`: creates, renames, disables, deletes and membership
//! changes over a handful of `userName`s and groups), on Spin's SQLite table with reads
//! delivered late (so racing requests really act on the same snapshot), then the store is
//! checked: by the API, by `scim_edge_core::consistency` in-process, and by `scim-edge-fsck`
//! on the SQLite file; and the same on Spin's Redis semantics (`kv::RedisKv`). The same
//! workload runs through Envoy and etcd in `envoy_e2e.rs`, and through two real `spin up`s on
//! one Redis in `real_spin.rs`.

// `serde_json::Value` indexing answers `Null` for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use scim_edge_core::consistency;
use scim_edge_host_tests::contention::{self, Workload};
use scim_edge_host_tests::kv::{KvBackend, KvError, RedisKv, SqliteKv};
use scim_edge_host_tests::{sha256_hex, SpinComponent, SpinHost, Variables};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-token-for-contention";

/// Every read is delivered `latency` after it was taken (see `tests/concurrency.rs`).
struct SlowReads<B> {
    inner: B,
    latency: Duration,
}

impl<B: KvBackend> KvBackend for SlowReads<B> {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let value = self.inner.get(store, key);
        // Blocking on purpose: host KV calls are synchronous.
        std::thread::sleep(self.latency);
        value
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
        self.inner.increment(store, key, delta)
    }
    fn swap(&self, store: &str, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        self.inner.swap(store, key, expected, value)
    }
}

struct Db(PathBuf);

impl Drop for Db {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: store kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// One request on the calling thread (each client is its own OS thread).
fn send(host: &SpinHost, req: http::Request<Bytes>) -> anyhow::Result<http::Response<Bytes>> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(host.handle(req))
}

fn admin(method: &str, path: &str, body: Option<Value>) -> anyhow::Result<http::Request<Bytes>> {
    let b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "scim-edge.test")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json");
    Ok(b.body(body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string())))?)
}

/// Runs the workload on `kv` and checks the store through the API and in-process; returns
/// the number of users the API lists.
fn contended(kv: Arc<dyn KvBackend>, label: &str) -> anyhow::Result<usize> {
    let variables = Variables::scim_edge()
        .with("admin_token_sha256", sha256_hex(ADMIN_TOKEN))
        .with("config", scim_edge_host_tests::NO_RATE_LIMIT);
    let host = SpinHost::new(SpinComponent::shared()?, kv, variables);

    let res = send(
        &host,
        admin("PUT", "/admin/v1/tenants/contended", Some(json!({"name": "C", "plan": "advanced"})))?,
    )?;
    anyhow::ensure!(res.status() == 201, "PUT tenant: {}", res.status());
    let res = send(&host, admin("POST", "/admin/v1/tenants/contended/scim", None)?)?;
    let conn: Value = serde_json::from_slice(res.body())?;
    let url = conn["url"].as_str().context("url")?;
    let base = url.split_once("/scim/").map(|(_, p)| format!("/scim/{p}")).context("url path")?;
    let token = conn["token"].as_str().context("token")?;

    let workload = Workload::default();
    let t = Instant::now();
    let outcome = contention::run(&base, token, &workload, |req| send(&host, req))?;
    println!(
        "{label}: {} clients × {} ops in {:?}: {outcome}",
        workload.clients,
        workload.ops_per_client,
        t.elapsed()
    );
    assert!(outcome.unexpected.is_empty(), "unexpected answers:\n{}", outcome.unexpected.join("\n"));
    assert!(
        outcome.statuses.contains_key(&("create", 201)) && outcome.statuses.contains_key(&("create", 409))
    );

    let api = contention::check_through_the_api(&base, token, &outcome, |req| send(&host, req));

    // The consistency check in-process, over the store as scim-edge-fsck reads it: tags
    // removed, tombstones absent, the adapter's claim counters skipped.
    let mut raw = Vec::new();
    for key in host.kv().keys("default")? {
        let value = host.kv().get("default", &key)?.unwrap_or_default();
        raw.push((key, value));
    }
    let (dump, foreign) = scim_edge_host_tests::spin_value::core_entries(raw);
    anyhow::ensure!(foreign.is_empty(), "not values of the Spin adapter: {foreign:?}");
    let report = consistency::check(dump);
    println!("{label}: through the API: {api:?}\n{report}");
    let users = api?;
    // A request the store gave up on (503: compare-and-swap retries exhausted) may have stopped
    // between its writes and left garbage — leftovers that change no answer, which the retry
    // or a later write takes over. Never an error, and garbage only after a 503.
    let gave_up = outcome.statuses.keys().any(|(_, status)| *status == 503);
    let tolerated = |p: &&consistency::Problem| gave_up && p.severity() == consistency::Severity::Garbage;
    assert!(report.problems.iter().all(|p| tolerated(&p)), "{report}");
    assert_eq!(report.users, users, "{report}");
    Ok(users)
}

#[test]
fn conflicting_operations_leave_a_consistent_store_in_spin() -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let db = Db(std::env::temp_dir().join(format!("scim-edge-contention-{}-{nanos}.db", std::process::id())));
    let kv = SlowReads { inner: SqliteKv::open(&db.0)?, latency: Duration::from_millis(2) };
    contended(Arc::new(kv), "spin")?;
    let out = Command::new(env!("CARGO_BIN_EXE_scim-edge-fsck")).arg("--sqlite").arg(&db.0).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 problems") && text.contains("consistent"), "{text}");
    Ok(())
}

/// The same on Spin's Redis semantics ([`RedisKv`]: every swap answered "failed", landed or
/// not): the adapter settles each by reading the key back, and the store stays consistent.
#[test]
fn conflicting_operations_leave_a_consistent_store_on_spin_redis_semantics() -> anyhow::Result<()> {
    let kv = SlowReads { inner: RedisKv::new(), latency: Duration::from_millis(2) };
    contended(Arc::new(kv), "spin (Redis semantics)")?;
    Ok(())
}
