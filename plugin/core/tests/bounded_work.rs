#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a failed unwrap is a failed test
//! Per-request store work must not grow with the tenant's size: the same requests against a
//! tenant of 100 users and one of 10,000 users touch the same number of keys.

use bytes::Bytes;
use scim_edge_core::testing::{FixedClock, MemStore, SeqRandom};
use scim_edge_core::{handle, Config, Env};
use serde_json::{json, Value};
use sha2::Digest;

const ADMIN: &str = "admin-token-for-tests";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    scim_edge_core::testing::scenario::block_on(f).expect("the future completes without I/O")
}

struct Host {
    store: MemStore,
    clock: FixedClock,
    random: SeqRandom,
    config: Config,
}

impl Host {
    fn new() -> Self {
        let hash = hex::encode(sha2::Sha256::digest(ADMIN.as_bytes()));
        let config = Config::from_json(&format!(r#"{{"adminTokenSha256":"{hash}"}}"#)).unwrap();
        Host { store: MemStore::new(), clock: FixedClock::default(), random: SeqRandom::new(7), config }
    }
    fn send(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "scim.test")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/scim+json")
            .body(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let env = Env { store: &self.store, clock: &self.clock, random: &self.random, config: &self.config };
        let res = block_on(handle(req, &env));
        let status = res.status().as_u16();
        let body = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
        (status, body)
    }
    /// Store operations one request costs.
    fn cost(&self, method: &str, uri: &str, token: &str, body: Option<Value>, want: u16) -> u64 {
        let before = self.store.ops();
        let (status, b) = self.send(method, uri, token, body);
        assert_eq!(status, want, "{method} {uri}: {b}");
        self.store.ops() - before
    }
}

/// Returns (SCIM base path, token, user ids).
fn tenant(h: &Host, users: usize) -> (String, String, Vec<String>) {
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

fn costs(users: usize) -> Vec<(&'static str, u64)> {
    let h = Host::new();
    let (base, tok, ids) = tenant(&h, users);
    let (s, g) = h.send("POST", &format!("{base}/Groups"), &tok, Some(json!({"displayName": "big"})));
    assert_eq!(s, 201);
    let gid = g["id"].as_str().unwrap().to_owned();
    // A large group: every user is a member.
    for chunk in ids.chunks(500) {
        let members: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        let op = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations":[{"op":"Add","path":"members","value":members}]});
        assert_eq!(h.send("PATCH", &format!("{base}/Groups/{gid}"), &tok, Some(op)).0, 204);
    }
    let mid = users / 2;
    let q = |f: &str| format!("{base}/Users?filter={}", f.replace(' ', "%20").replace('"', "%22"));
    let new_user = json!({"userName": "newcomer@example.com", "externalId": "ext-new"});
    let patch = |op: &str, uid: &str| {
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations":[{"op":op,"path":"members","value":[{"value":uid}]}]})
    };
    let disable = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations":[{"op":"Replace","path":"active","value":"False"}]});
    let mut out = vec![
        (
            "filter userName",
            h.cost("GET", &q(&format!("userName eq \"USER{mid}@example.com\"")), &tok, None, 200),
        ),
        ("filter externalId", h.cost("GET", &q(&format!("externalId eq \"ext-{mid}\"")), &tok, None, 200)),
        ("create", h.cost("POST", &format!("{base}/Users"), &tok, Some(new_user), 201)),
        ("patch disable", h.cost("PATCH", &format!("{base}/Users/{}", ids[mid]), &tok, Some(disable), 200)),
        (
            "member remove",
            h.cost("PATCH", &format!("{base}/Groups/{gid}"), &tok, Some(patch("Remove", &ids[mid])), 204),
        ),
        (
            "member add",
            h.cost("PATCH", &format!("{base}/Groups/{gid}"), &tok, Some(patch("Add", &ids[mid])), 204),
        ),
        (
            "member check",
            h.cost(
                "GET",
                &format!(
                    "{base}/Groups?filter=id%20eq%20%22{gid}%22%20and%20members%20eq%20%22{}%22",
                    ids[mid]
                ),
                &tok,
                None,
                200,
            ),
        ),
        (
            "page of 10 deep",
            h.cost("GET", &format!("{base}/Users?startIndex={}&count=10", users - 39), &tok, None, 200),
        ),
        (
            "get group without members",
            h.cost("GET", &format!("{base}/Groups/{gid}?excludedAttributes=members"), &tok, None, 200),
        ),
    ];
    // Deleting a user that is in a large group.
    out.push((
        "delete member user",
        h.cost("DELETE", &format!("{base}/Users/{}", ids[mid + 1]), &tok, None, 204),
    ));
    out
}

#[test]
fn store_work_per_request_does_not_grow_with_the_tenant() {
    let small = costs(100);
    let large = costs(10_000);
    for ((name, s), (_, l)) in small.iter().zip(large.iter()) {
        println!("{name:28} 100 users: {s:3} store ops   10,000 users: {l:3} store ops");
        assert!(*s <= 40, "{name} costs {s} store operations");
        // Equal, except that each swap-remove may read and write one more list chunk when the
        // hole and the list's end are in different chunks (never the case in a 100-id list);
        // deleting a group member does two swap-removes.
        assert!(l <= &(s + 4), "{name}: {s} store ops with 100 users but {l} with 10,000");
    }
}
