//! The core's `handle` end to end over the in-memory store (`testing::MemStore`): routing,
//! auth, JSON, the store round trips — everything but a host. Each request is one of Entra's,
//! against a tenant of 1,000 users (lookups also at 10,000: per-request work must not grow
//! with the tenant). `cargo bench -p scim-edge-core --bench handle`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // bench setup: a failure is a broken bench

use std::cell::Cell;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use scim_edge_core::testing::{scenario, FixedClock, MemStore, SeqRandom};
use scim_edge_core::{handle, Config, Env};
use serde_json::{json, Value};
use sha2::Digest;

const ADMIN: &str = "bench-admin-token";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Host {
    store: MemStore,
    clock: FixedClock,
    random: SeqRandom,
    config: Config,
}

impl Host {
    fn new() -> Host {
        let hash = hex::encode(sha2::Sha256::digest(ADMIN.as_bytes()));
        // The request path alone: no rate limit (measured apart, see rate.rs).
        let config = Config::from_json(&format!(r#"{{"adminTokenSha256":"{hash}","rateLimit":null}}"#))
            .expect("config");
        Host { store: MemStore::new(), clock: FixedClock::default(), random: SeqRandom::new(7), config }
    }

    fn request(method: &str, uri: &str, token: &str, body: Option<&Value>) -> http::Request<Bytes> {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "scim.bench")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/scim+json")
            .body(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default())
            .expect("request")
    }

    fn send(&self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        let env = Env { store: &self.store, clock: &self.clock, random: &self.random, config: &self.config };
        scenario::block_on(handle(req, &env)).expect("the core completes without I/O")
    }

    fn call(&self, method: &str, uri: &str, token: &str, body: Option<&Value>, want: u16) -> Value {
        let res = self.send(Self::request(method, uri, token, body));
        let status = res.status().as_u16();
        let v = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
        assert_eq!(status, want, "{method} {uri}: {v}");
        v
    }
}

fn user_body(name: &str, ext: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": ext,
        "userName": name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []
    })
}

/// A tenant with `users` users and a group holding all of them. Returns (base, token, ids, gid).
fn tenant(h: &Host, users: usize) -> (String, String, Vec<String>, String) {
    h.call("PUT", "/admin/v1/tenants/t", ADMIN, Some(&json!({"name": "T", "plan": "advanced"})), 201);
    let c = h.call("POST", "/admin/v1/tenants/t/scim", ADMIN, None, 201);
    let base = c["url"].as_str().expect("url").trim_start_matches("http://scim.bench").to_owned();
    let token = c["token"].as_str().expect("token").to_owned();
    let ids: Vec<String> = (0..users)
        .map(|i| {
            let body = user_body(&format!("user{i}@example.com"), &format!("ext-{i}"));
            let u = h.call("POST", &format!("{base}/Users"), &token, Some(&body), 201);
            u["id"].as_str().expect("id").to_owned()
        })
        .collect();
    let g = h.call("POST", &format!("{base}/Groups"), &token, Some(&json!({"displayName": "big"})), 201);
    let gid = g["id"].as_str().expect("id").to_owned();
    for chunk in ids.chunks(500) {
        let members: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        let op = json!({"schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "members", "value": members}]});
        h.call("PATCH", &format!("{base}/Groups/{gid}"), &token, Some(&op), 204);
    }
    (base, token, ids, gid)
}

fn filter_uri(base: &str, filter: &str) -> String {
    format!("{base}/Users?filter={}", filter.replace(' ', "%20").replace('"', "%22"))
}

fn lookups(c: &mut Criterion, users: usize) {
    let h = Host::new();
    let (base, token, ids, _) = tenant(&h, users);
    let mid = users / 2;
    let mut g = c.benchmark_group(format!("handle/{users} users"));
    let absent = filter_uri(&base, "userName eq \"nobody-4f0c2a3b@example.com\"");
    g.bench_function("lookup userName absent", |b| {
        b.iter(|| h.send(black_box(Host::request("GET", &absent, &token, None))))
    });
    let present = filter_uri(&base, &format!("userName eq \"USER{mid}@example.com\""));
    g.bench_function("lookup userName", |b| {
        b.iter(|| h.send(black_box(Host::request("GET", &present, &token, None))))
    });
    let by_ext = filter_uri(&base, &format!("externalId eq \"ext-{mid}\""));
    g.bench_function("lookup externalId", |b| {
        b.iter(|| h.send(black_box(Host::request("GET", &by_ext, &token, None))))
    });
    let get = format!("{base}/Users/{}", ids[mid]);
    g.bench_function("get by id", |b| b.iter(|| h.send(black_box(Host::request("GET", &get, &token, None)))));
    g.finish();
}

fn writes(c: &mut Criterion) {
    let h = Host::new();
    let (base, token, ids, gid) = tenant(&h, 1000);
    let mut g = c.benchmark_group("handle/1000 users");
    let n = Cell::new(0u64);
    let users = format!("{base}/Users");
    g.bench_function("create", |b| {
        b.iter_batched(
            || {
                n.set(n.get() + 1);
                let i = n.get();
                Host::request(
                    "POST",
                    &users,
                    &token,
                    Some(&user_body(&format!("new{i}@example.com"), &format!("new-{i}"))),
                )
            },
            |req| h.send(req),
            BatchSize::SmallInput,
        )
    });
    let user = format!("{base}/Users/{}", ids[500]);
    let update = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": "displayName", "value": "Updated"},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updated@example.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Updated"}
    ]});
    g.bench_function("patch update", |b| {
        b.iter_batched(
            || Host::request("PATCH", &user, &token, Some(&update)),
            |req| h.send(req),
            BatchSize::SmallInput,
        )
    });
    let disable =
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    g.bench_function("patch disable", |b| {
        b.iter_batched(
            || Host::request("PATCH", &user, &token, Some(&disable)),
            |req| h.send(req),
            BatchSize::SmallInput,
        )
    });
    // One member out and back in, on a group of 1,000 members.
    let group = format!("{base}/Groups/{gid}");
    let member = |op: &str| json!({"schemas": [PATCH_OP], "Operations": [{"op": op, "path": "members", "value": [{"$ref": null, "value": ids[7]}]}]});
    let (remove, add) = (member("Remove"), member("Add"));
    g.bench_function("member remove + add", |b| {
        b.iter_batched(
            || {
                (
                    Host::request("PATCH", &group, &token, Some(&remove)),
                    Host::request("PATCH", &group, &token, Some(&add)),
                )
            },
            |(r, a)| (h.send(r), h.send(a)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("create + delete", |b| {
        b.iter_batched(
            || {
                n.set(n.get() + 1);
                let i = n.get();
                Host::request(
                    "POST",
                    &users,
                    &token,
                    Some(&user_body(&format!("tmp{i}@example.com"), &format!("tmp-{i}"))),
                )
            },
            |req| {
                let created = h.send(req);
                let v: Value = serde_json::from_slice(created.body()).unwrap_or(Value::Null);
                let id = v["id"].as_str().unwrap_or_default();
                h.send(Host::request("DELETE", &format!("{users}/{id}"), &token, None))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    lookups(c, 1000);
    lookups(c, 10_000);
    writes(c);
}

criterion_group!(benches, bench);
criterion_main!(benches);
