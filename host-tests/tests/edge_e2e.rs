//! The edge (`scim_edge_core::edge`) end to end: Envoy 1.40's `jwt_authn` in front of the
//! scim-edge filter with a local JWKS (an HS256 `oct` key made here), over the real etcd, two
//! Envoys (`--concurrency 2` each) on one etcd. A provisioned user's JWT reaches the upstream
//! with the tenant, id, role and state headers; Entra's disable, a re-enable, a role change and
//! a manual removal are enforced on both workers of both Envoys within the cache TTL (measured
//! and printed); forged product headers never reach the upstream; etcd down gives 503 on
//! guarded routes while unguarded ones still pass; the stats move with the requests.
//!
//! Needs Envoy and etcd: `envoy/setup.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../src/envoy/mod.rs"]
mod envoy;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use envoy::{call, tenant_with_connection, user_body, Envoy, Stack, StoreKind, ADMIN_TOKEN};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TTL_MS: u64 = 1000;
const ISSUER: &str = "https://idp.e2e.test";
/// The HS256 key of the test's JWKS (an `oct` key).
const KEY: &[u8] = b"scim-edge e2e jwt signing key, 256 bits at least......";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// A JWT for `email` in tenant `tid`, signed with [`KEY`], valid for an hour.
fn jwt(email: &str, tid: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    let claims = json!({"iss": ISSUER, "sub": format!("sub-{email}"), "email": email, "tid": tid,
                        "iat": now, "exp": now + 3600});
    let input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let sig = hmac_sha256(KEY, input.as_bytes());
    format!("{input}.{}", b64url(&sig))
}

/// `jwt_authn` for `/app/` (the guarded routes): the payload goes to dynamic metadata
/// (`payload_in_metadata`) and to the `x-jwt-payload` header (`forward_payload_header`), where
/// the scim-edge filter reads the caller's `email` and `tid`.
fn jwt_filter() -> String {
    let jwks = json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": b64url(KEY)}]}).to_string();
    format!(
        r#"          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idp:
                  issuer: {ISSUER}
                  local_jwks: {{inline_string: '{jwks}'}}
                  payload_in_metadata: jwt_payload
                  forward_payload_header: x-jwt-payload
                  forward: false
              rules:
              - match: {{prefix: /app/}}
                requires: {{provider_name: idp}}
"#
    )
}

fn edge_config(identity: Value) -> Value {
    json!({
        "identity": identity,
        "match": "userName",
        "tenant": {"claim": "tid"},
        "routes": [{"prefix": "/app/"}],
        "cacheTtlMs": TTL_MS
    })
}

/// A request through Envoy to the upstream (`/app/…` is guarded, the rest is not).
fn get(envoy: &Envoy, path: &str, headers: &[(&str, &str)]) -> http::Response<Bytes> {
    let mut b = http::Request::get(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    envoy.send(&b.body(Bytes::new()).unwrap())
}

fn as_user(envoy: &Envoy, token: &str) -> http::Response<Bytes> {
    get(envoy, "/app/hello", &[("authorization", &format!("Bearer {token}"))])
}

/// The headers the echo upstream received (name → values).
fn upstream_headers(res: &http::Response<Bytes>) -> Vec<(String, String)> {
    assert_eq!(res.headers().get("x-echo").map(|v| v.to_str().unwrap()), Some("upstream"), "{res:?}");
    let v: Value = serde_json::from_slice(res.body()).unwrap();
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_str().unwrap().to_owned()))
        .collect()
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    h.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
}

/// The refusal's reason, or "allowed" when the upstream answered (`role` then), for a poll.
fn outcome(res: &http::Response<Bytes>) -> String {
    match res.status().as_u16() {
        200 => {
            let h = upstream_headers(res);
            format!("allowed:{}", header(&h, "x-scim-edge-role").join(","))
        }
        s => {
            let v: Value = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
            format!("{s}:{}", v["reason"].as_str().unwrap_or("?"))
        }
    }
}

/// Polls every worker of every Envoy (fresh connections spread over both workers) until
/// `rounds` consecutive rounds all give `want`; returns the time from `since` to the first of
/// those rounds. Fails after 60 s: with etcd down, every answer waits out the store's retries
/// (up to `deadlineMs`, 2 s here), so a round of 8 requests takes about 16 s.
fn until_everywhere(stack: &Stack, token: &str, want: &str, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(60);
    let mut first_ok: Option<Duration> = None;
    let mut streak = 0;
    loop {
        let round: Vec<String> =
            stack.envoys.iter().flat_map(|e| (0..4).map(move |_| outcome(&as_user(e, token)))).collect();
        if round.iter().all(|o| o == want) {
            first_ok.get_or_insert(since.elapsed());
            streak += 1;
            if streak >= 3 {
                return first_ok.unwrap();
            }
        } else {
            first_ok = None;
            streak = 0;
        }
        assert!(Instant::now() < deadline, "not {want} everywhere after 60 s: {round:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stats(envoy: &Envoy) -> String {
    let admin = SocketAddr::from(([127, 0, 0, 1], envoy.ports.admin));
    let req = http::Request::get("/stats?filter=scim_edge").body(Bytes::new()).unwrap();
    String::from_utf8_lossy(envoy::client::send(admin, &req).unwrap().body()).into_owned()
}

/// A counter of the filter's (`scim_edge.…`) as Envoy shows it (0 while undefined).
fn stat(envoy: &Envoy, name: &str) -> u64 {
    let full = format!("scim_edge.{name}");
    stats(envoy)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .find(|(n, _)| *n == full || n.ends_with(&format!(".{full}")))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn patch_active(stack: &Stack, conn: &envoy::Connection, id: &str, value: &str) {
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "Replace", "path": "active", "value": value}]});
    let path = format!("{}/Users/{id}", conn.base_path);
    let (s, b) = call(stack.envoy(), "PATCH", &path, Some(&conn.token), Some(&body));
    assert_eq!(s, 200, "{b}");
}

#[test]
fn entra_changes_are_enforced_at_the_edge_on_every_worker_and_envoy_within_the_ttl() {
    let metadata =
        json!({"metadata": "envoy.filters.http.jwt_authn", "key": "jwt_payload", "claim": "email"});
    let mut stack = Stack::start_edge(StoreKind::Etcd, 1, Value::Null, edge_config(metadata), &jwt_filter());
    stack.add_envoy();
    let conn = tenant_with_connection(stack.envoy(), "acme");
    let (s, ada) = call(
        stack.envoy(),
        "POST",
        &format!("{}/Users", conn.base_path),
        Some(&conn.token),
        Some(&user_body("Ada@acme.example")),
    );
    assert_eq!(s, 201, "{ada}");
    let id = ada["id"].as_str().unwrap().to_owned();
    let token = jwt("ada@ACME.example", "acme");

    // A provisioned user's JWT reaches the upstream with the headers, on both Envoys; forged
    // product headers from the client never do.
    for e in &stack.envoys {
        let res = get(
            e,
            "/app/hello",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-scim-edge-role", "administrator"),
                ("x-scim-edge-user-id", "0123456789abcdef0123456789abcdef"),
                ("x-acting-user", "0123456789abcdef0123456789abcdef"),
            ],
        );
        assert_eq!(res.status(), 200, "{res:?}");
        let h = upstream_headers(&res);
        assert_eq!(header(&h, "x-scim-edge-tenant"), ["acme"]);
        assert_eq!(header(&h, "x-scim-edge-user-id"), [id.as_str()]);
        assert_eq!(header(&h, "x-scim-edge-role"), ["user"]);
        assert_eq!(header(&h, "x-scim-edge-state"), ["active"]);
        assert!(header(&h, "x-acting-user").is_empty(), "{h:?}");
    }
    // Unguarded: passes, stripped of every product header.
    let res = get(stack.envoy(), "/public", &[("x-scim-edge-role", "administrator"), ("x-acting-user", "x")]);
    let h = upstream_headers(&res);
    assert!(h.iter().all(|(n, _)| !n.starts_with("x-scim-edge-") && n != "x-acting-user"), "{h:?}");
    // No JWT: jwt_authn refuses before us. A JWT of a user the tenant does not have: 403 unknown.
    assert_eq!(get(stack.envoy(), "/app/hello", &[]).status(), 401);
    assert_eq!(outcome(&as_user(stack.envoy(), &jwt("nobody@acme.example", "acme"))), "403:unknown");
    assert_eq!(outcome(&as_user(stack.envoy(), &jwt("ada@acme.example", "other"))), "403:unknown");
    // A request with a body, of a caller no worker has cached (so it pauses for the lookup),
    // goes upstream whole.
    let (s, _) = call(
        stack.envoy(),
        "POST",
        &format!("{}/Users", conn.base_path),
        Some(&conn.token),
        Some(&user_body("eve@acme.example")),
    );
    assert_eq!(s, 201);
    let post = http::Request::post("/app/form")
        .header("authorization", format!("Bearer {}", jwt("eve@acme.example", "acme")))
        .body(Bytes::from_static(b"a=1&b=2"))
        .unwrap();
    let res = stack.envoys[1].send(&post);
    assert_eq!(res.status(), 200);
    assert_eq!(serde_json::from_slice::<Value>(res.body()).unwrap()["body"], "a=1&b=2");

    // Warm every worker's cache, then Entra disables the user.
    until_everywhere(&stack, &token, "allowed:user", Instant::now());
    let t0 = Instant::now();
    patch_active(&stack, &conn, &id, "False");
    let disabled = until_everywhere(&stack, &token, "403:disabled", t0);
    println!(
        "disable enforced on every worker of both Envoys after {} ms (TTL {TTL_MS} ms)",
        disabled.as_millis()
    );
    // The TTL plus the time a loaded machine takes for one round of requests.
    assert!(disabled <= Duration::from_millis(TTL_MS + 1500), "disable took {disabled:?}");

    let t0 = Instant::now();
    patch_active(&stack, &conn, &id, "True");
    let enabled = until_everywhere(&stack, &token, "allowed:user", t0);
    println!("re-enable enforced everywhere after {} ms", enabled.as_millis());
    assert!(enabled <= Duration::from_millis(TTL_MS + 1500), "re-enable took {enabled:?}");

    let t0 = Instant::now();
    let role = format!("/admin/v1/tenants/acme/users/{id}");
    let (s, b) =
        call(stack.envoy(), "PATCH", &role, Some(ADMIN_TOKEN), Some(&json!({"role": "administrator"})));
    assert_eq!(s, 200, "{b}");
    let promoted = until_everywhere(&stack, &token, "allowed:administrator", t0);
    println!("role change seen everywhere after {} ms", promoted.as_millis());
    assert!(promoted <= Duration::from_millis(TTL_MS + 1500), "role change took {promoted:?}");

    let t0 = Instant::now();
    let (s, b) = call(stack.envoy(), "DELETE", &role, Some(ADMIN_TOKEN), None);
    assert_eq!(s, 204, "{b}");
    let removed = until_everywhere(&stack, &token, "403:blocked", t0);
    println!("manual removal enforced everywhere after {} ms", removed.as_millis());
    assert!(removed <= Duration::from_millis(TTL_MS + 1500), "removal took {removed:?}");
    // The refusal names the reason, never the data.
    let res = as_user(stack.envoy(), &token);
    assert_eq!(res.body().as_ref(), br#"{"error":"forbidden","reason":"blocked"}"#);

    for e in &stack.envoys {
        e.assert_both_workers_served();
        for name in [
            "edge.allowed",
            "edge.denied.disabled",
            "edge.denied.blocked",
            "edge.cache_hit",
            "edge.cache_miss",
        ] {
            assert!(stat(e, name) > 0, "{name} did not move:\n{}", stats(e));
        }
        let s = stats(e);
        assert!(!s.contains("acme") && !s.contains(&id), "a stat names a tenant or user:\n{s}");
    }
    let e = stack.envoy();
    assert!(stat(e, "edge.denied.unknown") >= 2, "{}", stats(e));
    assert!(stat(e, "scim.users_create.2xx") >= 1 && stat(e, "scim.user_update.2xx") >= 2, "{}", stats(e));
    assert!(stat(e, "store.callouts") > 0, "{}", stats(e));
    stack.assert_logs_clean();
}

#[test]
fn etcd_down_refuses_guarded_routes_with_503_while_unguarded_ones_pass() {
    // The caller from jwt_authn's forward_payload_header this time.
    let payload = json!({"payloadHeader": "x-jwt-payload", "claim": "email"});
    let mut stack = Stack::start_edge(StoreKind::Etcd, 1, Value::Null, edge_config(payload), &jwt_filter());
    let conn = tenant_with_connection(stack.envoy(), "acme");
    let users = format!("{}/Users", conn.base_path);
    let (s, _) = call(stack.envoy(), "POST", &users, Some(&conn.token), Some(&user_body("bob@acme.example")));
    assert_eq!(s, 201);
    let token = jwt("bob@acme.example", "acme");
    assert_eq!(outcome(&as_user(stack.envoy(), &token)), "allowed:user");
    // A payload header the client sends next to the JWT's is not taken for the caller.
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"email": "bob@acme.example", "tid": "acme"}).to_string());
    let res = get(stack.envoy(), "/app/x", &[("x-jwt-payload", &forged)]);
    assert_eq!(res.status(), 401, "no JWT: jwt_authn refuses whatever payload header comes along");
    let res = get(
        stack.envoy(),
        "/app/x",
        &[
            ("authorization", &format!("Bearer {}", jwt("nobody@acme.example", "acme"))),
            ("x-jwt-payload", &forged),
        ],
    );
    assert_eq!(outcome(&res), "403:unknown", "jwt_authn's own payload header, never the client's");
    let failures_before = stat(stack.envoy(), "store.callout_failures");

    stack.etcd.as_mut().unwrap().kill();
    // Not cached anywhere: the lookup fails at once.
    let res = as_user(stack.envoy(), &jwt("carol@acme.example", "acme"));
    assert_eq!(res.status(), 503, "{res:?}");
    assert_eq!(res.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    assert_eq!(res.body().as_ref(), br#"{"error":"unavailable","reason":"store_unavailable"}"#);
    // Cached callers too, once the TTL has passed on every worker.
    until_everywhere(&stack, &token, "503:store_unavailable", Instant::now());
    let res = get(stack.envoy(), "/public", &[]);
    assert_eq!(res.status(), 200, "{res:?}");
    assert!(stat(stack.envoy(), "store.callout_failures") > failures_before, "{}", stats(stack.envoy()));
    assert!(stat(stack.envoy(), "edge.unavailable") > 0);

    stack.etcd.as_mut().unwrap().restart();
    until_everywhere(&stack, &token, "allowed:user", Instant::now());
    stack.assert_logs_clean();
}
