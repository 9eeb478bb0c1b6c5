//! A core host over the in-memory fakes, shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, dead_code)]

use bytes::Bytes;
use scim_edge_core::testing::{FixedClock, MemStore, SeqRandom};
use scim_edge_core::{handle, Config, Env};
use serde_json::{json, Value};
use sha2::Digest;

pub const ADMIN: &str = "admin-token-for-tests";

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    scim_edge_core::testing::scenario::block_on(f).expect("the future completes without I/O")
}

pub struct Host {
    pub store: MemStore,
    pub clock: FixedClock,
    pub random: SeqRandom,
    pub config: Config,
}

impl Host {
    pub fn new() -> Self {
        Self::with_config("")
    }
    /// `extra`: more config keys (no braces), e.g. `"uniqueness": {"externalId": true}`.
    pub fn with_config(extra: &str) -> Self {
        let hash = hex::encode(sha2::Sha256::digest(ADMIN.as_bytes()));
        let extra = if extra.is_empty() { String::new() } else { format!(",{extra}") };
        // No rate limit: the clock stands still, so a bucket would never refill.
        let config =
            Config::from_json(&format!(r#"{{"adminTokenSha256":"{hash}","rateLimit":null{extra}}}"#))
                .unwrap();
        Host { store: MemStore::new(), clock: FixedClock::default(), random: SeqRandom::new(7), config }
    }
    pub fn request(
        &self,
        method: &str,
        uri: &str,
        token: &str,
        body: Option<Value>,
    ) -> http::Response<Bytes> {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "scim.test")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/scim+json")
            .body(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let env = Env { store: &self.store, clock: &self.clock, random: &self.random, config: &self.config };
        block_on(handle(req, &env))
    }
    pub fn send(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let res = self.request(method, uri, token, body);
        let status = res.status().as_u16();
        let body = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
        (status, body)
    }
    /// Store operations one request costs.
    pub fn cost(&self, method: &str, uri: &str, token: &str, body: Option<Value>, want: u16) -> u64 {
        let before = self.store.ops();
        let (status, b) = self.send(method, uri, token, body);
        assert_eq!(status, want, "{method} {uri}: {b}");
        self.store.ops() - before
    }
}

/// Creates tenant `t` with a SCIM connection and `users` users.
/// Returns (SCIM base path, token, user ids).
pub fn tenant(h: &Host, users: usize) -> (String, String, Vec<String>) {
    assert_eq!(
        h.send("PUT", "/admin/v1/tenants/t", ADMIN, Some(json!({"name":"T","plan":"advanced"}))).0,
        201
    );
    let (s, c) = h.send("POST", "/admin/v1/tenants/t/scim", ADMIN, None);
    assert_eq!(s, 201);
    let url = c["url"].as_str().unwrap();
    let base = url.trim_start_matches("http://scim.test").to_owned();
    let token = c["token"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for i in 0..users {
        let body = json!({"userName": format!("user{i}@example.com"), "externalId": format!("ext-{i}")});
        let (s, u) = h.send("POST", &format!("{base}/Users"), &token, Some(body));
        assert_eq!(s, 201, "{u}");
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    (base, token, ids)
}
