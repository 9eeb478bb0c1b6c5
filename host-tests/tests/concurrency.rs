//! Creates racing through the real component: the adapter's `put(Absent)` (claim counter for
//! keys that never existed, CAS on tombstones) must let exactly one of N concurrent creates of
//! the same `userName` win, on both backends.
//!
//! Checked against a mutant: with `put(Absent)` as a plain CAS (which Spin turns into a blind
//! upsert on an absent key), every run of this test fails with 2-15 of 16 creates answered 201.

// `serde_json::Value` indexing answers `Null` for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use std::sync::{Arc, Barrier};
use std::thread;

use anyhow::Context as _;
use bytes::Bytes;
use scim_edge_host_tests::kv::{KvBackend, KvError, MemKv, SqliteKv};
use scim_edge_host_tests::{sha256_hex, SpinComponent, SpinHost, Variables};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-token-for-concurrency";
const CLIENTS: usize = 16;

/// Widens every race window: each read (including a CAS's `current()`) is delivered a while
/// after it was taken, as from a remote store, so racing requests really do act on the same
/// snapshot. Without it the window between a read and the write that depends on it is
/// microseconds wide, and a broken create-if-absent passes this test.
struct SlowReads<B>(B);

const READ_LATENCY: std::time::Duration = std::time::Duration::from_millis(10);

impl<B: KvBackend> KvBackend for SlowReads<B> {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        // The value is read now and delivered later, so it can be stale by the time the
        // caller acts on it. A blocking sleep on purpose: host KV calls are synchronous.
        let value = self.0.get(store, key);
        std::thread::sleep(READ_LATENCY);
        value
    }
    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.0.set(store, key, value)
    }
    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        self.0.delete(store, key)
    }
    fn keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        self.0.keys(store)
    }
    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.0.increment(store, key, delta)
    }
    fn swap(&self, store: &str, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        self.0.swap(store, key, expected, value)
    }
}

fn req(method: &str, path: &str, token: &str, body: Option<Value>) -> anyhow::Result<http::Request<Bytes>> {
    let b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "scim-edge.test")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json");
    Ok(b.body(body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string())))?)
}

async fn connect(host: &SpinHost, tenant: &str) -> anyhow::Result<(String, String)> {
    let body = json!({"name": tenant, "plan": "advanced"});
    let res =
        host.handle(req("PUT", &format!("/admin/v1/tenants/{tenant}"), ADMIN_TOKEN, Some(body))?).await?;
    anyhow::ensure!(
        res.status() == 201 || res.status() == 200,
        "PUT tenant: {} {:?}",
        res.status(),
        res.body()
    );
    let res =
        host.handle(req("POST", &format!("/admin/v1/tenants/{tenant}/scim"), ADMIN_TOKEN, None)?).await?;
    anyhow::ensure!(res.status() == 201, "POST scim: {} {:?}", res.status(), res.body());
    let v: Value = serde_json::from_slice(res.body())?;
    let url = v["url"].as_str().context("url")?;
    let path = url.split_once("/scim/").map(|(_, p)| format!("/scim/{p}")).context("url path")?;
    Ok((path, v["token"].as_str().context("token")?.to_owned()))
}

async fn race(kv: Arc<dyn KvBackend>) -> anyhow::Result<()> {
    let variables = Variables::scim_edge()
        .with("admin_token_sha256", sha256_hex(ADMIN_TOKEN))
        .with("config", scim_edge_host_tests::NO_RATE_LIMIT);
    let host = SpinHost::new(SpinComponent::shared()?, kv, variables);
    let (base, token) = connect(&host, "race").await?;

    // Three names that never existed (the claim-counter path, raced independently), then the
    // last one again after a delete (CAS on the tombstone).
    let rounds = [("first", 1), ("second", 2), ("third", 3), ("after-delete", 3)];
    for (round, n) in rounds {
        let user_name = format!("Same.Person{n}@example.com");
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "externalId": round,
            "active": true,
        });
        // One OS thread (with its own runtime) per client, released together: the requests
        // really run side by side rather than one after the other on a busy runtime.
        let start = Arc::new(Barrier::new(CLIENTS));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (host, start) = (host.clone(), start.clone());
                let r = req("POST", &format!("{base}/Users"), &token, Some(user.clone()));
                thread::spawn(move || -> anyhow::Result<http::Response<Bytes>> {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    let r = r?;
                    start.wait();
                    rt.block_on(host.handle(r))
                })
            })
            .collect();
        let mut statuses = Vec::new();
        let mut created = None;
        for c in clients {
            let res = c.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
            if res.status() == 201 {
                created = Some(serde_json::from_slice::<Value>(res.body())?);
            }
            statuses.push(res.status().as_u16());
        }
        statuses.sort_unstable();
        let mut expected = vec![201];
        expected.extend([409; CLIENTS - 1]);
        assert_eq!(statuses, expected, "{round}");

        let id = created.as_ref().and_then(|v| v["id"].as_str()).context("id")?.to_owned();
        let filter = format!("{base}/Users?filter=userName%20eq%20%22same.person{n}%40example.com%22");
        let res = host.handle(req("GET", &filter, &token, None)?).await?;
        let list: Value = serde_json::from_slice(res.body())?;
        assert_eq!(list["totalResults"], 1, "{round}: {list}");
        assert_eq!(list["Resources"][0]["id"], id.as_str(), "{round}");

        if round == "third" {
            let res = host.handle(req("DELETE", &format!("{base}/Users/{id}"), &token, None)?).await?;
            assert_eq!(res.status(), 204);
        }
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_creates_of_one_user_name_memory() -> anyhow::Result<()> {
    race(Arc::new(SlowReads(MemKv::new()))).await
}

#[tokio::test]
async fn concurrent_creates_of_one_user_name_sqlite() -> anyhow::Result<()> {
    race(Arc::new(SlowReads(SqliteKv::in_memory()?))).await
}
