//! A core host over the in-memory fakes for the hardening tests (limits, key space, tenant
//! isolation, consistency, properties).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, dead_code)]

use bytes::Bytes;
use scim_edge_core::testing::{FixedClock, MemStore, SeqRandom};
use scim_edge_core::{consistency, handle, Config, Env};
use serde_json::{json, Value};
use sha2::Digest;

pub const ADMIN: &str = "hardening-admin-token";

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    scim_edge_core::testing::scenario::block_on(f).expect("the future completes without I/O")
}

pub struct Host {
    pub store: MemStore,
    pub clock: FixedClock,
    pub random: SeqRandom,
    pub config: Config,
}

/// A tenant with SCIM on.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub name: String,
    /// `/scim/v2/{connection}`
    pub base: String,
    pub connection: String,
    pub token: String,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub raw: Bytes,
    pub headers: http::HeaderMap,
}

impl Host {
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// `extra`: more config keys, e.g. `"maxPatchOperations": 3` (no braces). The rate limit is
    /// off unless `extra` sets it: the clock stands still, so a bucket would never refill.
    pub fn with_config(extra: &str) -> Self {
        let hash = hex::encode(sha2::Sha256::digest(ADMIN.as_bytes()));
        let sep = if extra.trim().is_empty() { "" } else { "," };
        let rate = if extra.contains("rateLimit") { "" } else { r#","rateLimit":null"# };
        let config =
            Config::from_json(&format!(r#"{{"adminTokenSha256":"{hash}"{rate}{sep}{extra}}}"#)).unwrap();
        Host { store: MemStore::new(), clock: FixedClock::default(), random: SeqRandom::new(11), config }
    }

    pub fn raw(&self, method: &str, uri: &str, token: Option<&str>, body: impl Into<Bytes>) -> Reply {
        self.raw_with(method, uri, token, &[], body)
    }

    pub fn raw_with(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut b = http::Request::builder().method(method).uri(uri).header("host", "scim.test");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = b.header("content-type", "application/scim+json").body(body.into()).unwrap();
        let env = Env { store: &self.store, clock: &self.clock, random: &self.random, config: &self.config };
        let res = block_on(handle(req, &env));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let raw = res.into_body();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply { status, body, raw, headers }
    }

    pub fn send(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.raw(method, uri, Some(token), body.map(|b| b.to_string()).unwrap_or_default());
        (r.status, r.body)
    }

    /// An admin API call on behalf of user `acting`.
    pub fn acting(&self, acting: &str, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = self.raw_with(method, uri, Some(ADMIN), &[("x-acting-user", acting)], body);
        (r.status, r.body)
    }

    /// Creates tenant `name` on the SCIM plan and generates its SCIM connection.
    pub fn tenant(&self, name: &str) -> Tenant {
        let (s, b) =
            self.send("PUT", &format!("/admin/v1/tenants/{name}"), ADMIN, Some(json!({"name": name})));
        assert!(s == 201 || s == 200, "{s} {b}");
        self.connect(name)
    }

    /// (Re)generates the tenant's SCIM connection.
    pub fn connect(&self, name: &str) -> Tenant {
        let (s, c) = self.send("POST", &format!("/admin/v1/tenants/{name}/scim"), ADMIN, None);
        assert_eq!(s, 201, "{c}");
        let url = c["url"].as_str().unwrap();
        let base = url.trim_start_matches("http://scim.test").to_owned();
        let connection = base.rsplit('/').next().unwrap().to_owned();
        Tenant { name: name.to_owned(), base, connection, token: c["token"].as_str().unwrap().to_owned() }
    }

    pub fn scim(&self, t: &Tenant, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(method, &format!("{}/{path}", t.base), &t.token, body)
    }

    pub fn create_user(&self, t: &Tenant, user_name: &str) -> String {
        let (s, u) = self.scim(t, "POST", "Users", Some(json!({"userName": user_name})));
        assert_eq!(s, 201, "{u}");
        u["id"].as_str().unwrap().to_owned()
    }

    pub fn create_group(&self, t: &Tenant, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let (s, g) = self.scim(t, "POST", "Groups", Some(json!({"displayName": name, "members": members})));
        assert_eq!(s, 201, "{g}");
        g["id"].as_str().unwrap().to_owned()
    }

    /// The store's consistency check must find nothing.
    pub fn assert_consistent(&self) {
        let report = consistency::check(self.store.entries());
        assert!(report.problems.is_empty(), "{report}");
    }
}

pub fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}
