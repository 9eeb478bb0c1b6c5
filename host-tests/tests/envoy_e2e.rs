//! scim-edge end to end in the real Envoy 1.40 (`--concurrency 2`) with the filter built from
//! source, over the real etcd 3.5 (and Envoy's shared data): the shared Entra lifecycle suite
//! in both dialects, concurrent creates, restarts and SIGKILL, two Envoys on one etcd,
//! regenerate, pass-through, an etcd outage, a full etcd compaction, a bad configuration.
//! Every test ends by checking that no Envoy logged a wasm panic or a critical line.
//!
//! Needs Envoy and etcd: `envoy/setup.sh`.

// A test reports failure by panicking; `serde_json::Value` indexing answers `Null` for a
// missing key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../src/envoy/mod.rs"]
mod envoy;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use envoy::{
    block_on, call, filter_wasm, group_body, regenerate, tenant_with_connection, user_body, Connection,
    Envoy, EnvoyTarget, Stack, StoreKind, ADMIN_TOKEN, PREFIX,
};
use scim_edge_core::testing::scenario::{entra_lifecycle, Dialect};
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;

#[test]
fn filter_release_wasm_is_under_1_mib() {
    let size = std::fs::metadata(filter_wasm()).map(|m| m.len()).unwrap();
    println!("scim_edge_envoy.wasm (release): {size} bytes");
    assert!(size < MIB, "the release filter is {size} bytes, over 1 MiB");
}

fn lifecycle(dialect: Dialect) {
    let stack = Stack::start(StoreKind::Etcd, 1);
    let mut target = EnvoyTarget { envoy: stack.envoy(), etcd: stack.etcd.as_ref() };
    match block_on(entra_lifecycle(&mut target, dialect)) {
        Ok(report) => println!("{report}"),
        Err(failure) => panic!("{failure}"),
    }
    stack.assert_logs_clean();
}

#[test]
fn entra_lifecycle_default_dialect_through_envoy_and_etcd() {
    lifecycle(Dialect::Default);
}

#[test]
fn entra_lifecycle_aad_opt_scim_062020_through_envoy_and_etcd() {
    lifecycle(Dialect::AadOptScim062020);
}

/// `clients` concurrent POSTs of one userName, each on its own connection (spread over both
/// worker threads), for a name that never existed and again after the winner was deleted.
fn one_201_for_concurrent_creates(stack: &Stack, clients: usize) {
    let conn = tenant_with_connection(stack.envoy(), "race");
    let users = format!("{}/Users", conn.base_path);
    for round in ["never-existed", "after-delete"] {
        let barrier = Arc::new(Barrier::new(clients));
        let results: Vec<(u16, Value)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..clients)
                .map(|i| {
                    let (barrier, users, token) = (barrier.clone(), users.clone(), conn.token.clone());
                    let envoy = &stack.envoys[i % stack.envoys.len()];
                    s.spawn(move || {
                        let mut body = user_body("Same.Person@example.com");
                        body["externalId"] = json!(format!("{round}-{i}"));
                        barrier.wait();
                        call(envoy, "POST", &users, Some(&token), Some(&body))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
        let created: Vec<&Value> = results.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
        assert_eq!(created.len(), 1, "{round}: exactly one 201, got {statuses:?}");
        assert!(
            results.iter().all(|(s, b)| *s == 201 || (*s == 409 && b["scimType"] == "uniqueness")),
            "{round}: the others are 409 uniqueness: {results:?}"
        );
        let id = created[0]["id"].as_str().unwrap().to_owned();
        let filter = format!("{users}?filter=userName%20eq%20%22same.person%40example.com%22");
        let (s, list) = call(stack.envoy(), "GET", &filter, Some(&conn.token), None);
        assert_eq!((s, list["totalResults"].as_u64()), (200, Some(1)), "{round}: one user: {list}");
        assert_eq!(list["Resources"][0]["id"], json!(id));
        if round == "never-existed" {
            let (s, _) = call(stack.envoy(), "DELETE", &format!("{users}/{id}"), Some(&conn.token), None);
            assert_eq!(s, 204);
        }
    }
    for e in &stack.envoys {
        e.assert_both_workers_served();
    }
    stack.assert_logs_clean();
}

#[test]
fn concurrent_creates_of_one_user_name_give_one_201_on_etcd() {
    one_201_for_concurrent_creates(&Stack::start(StoreKind::Etcd, 1), 12);
}

#[test]
fn concurrent_creates_of_one_user_name_give_one_201_on_shared_data() {
    one_201_for_concurrent_creates(&Stack::start(StoreKind::SharedData, 1), 12);
}

/// What a tenant looks like from outside: its users, groups with members, and the connection.
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: BTreeSet<(String, String, bool)>,
    groups: BTreeSet<(String, String, BTreeSet<String>)>,
    connection_url: String,
}

fn snapshot(envoy: &Envoy, tenant: &str, conn: &Connection) -> Snapshot {
    let (s, users) =
        call(envoy, "GET", &format!("{}/Users?count=100", conn.base_path), Some(&conn.token), None);
    assert_eq!(s, 200, "{users}");
    let users = users["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap().to_owned(),
                u["userName"].as_str().unwrap().to_owned(),
                u["active"] == true,
            )
        })
        .collect();
    let (s, groups) =
        call(envoy, "GET", &format!("{}/Groups?count=100", conn.base_path), Some(&conn.token), None);
    assert_eq!(s, 200, "{groups}");
    let groups = groups["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let id = g["id"].as_str().unwrap().to_owned();
            let (s, full) =
                call(envoy, "GET", &format!("{}/Groups/{id}", conn.base_path), Some(&conn.token), None);
            assert_eq!(s, 200, "{full}");
            let members = full["members"]
                .as_array()
                .map(|m| m.iter().map(|m| m["value"].as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            (id, full["displayName"].as_str().unwrap().to_owned(), members)
        })
        .collect();
    let (s, c) = call(envoy, "GET", &format!("/admin/v1/tenants/{tenant}/scim"), Some(ADMIN_TOKEN), None);
    assert_eq!(s, 200, "{c}");
    Snapshot { users, groups, connection_url: c["url"].as_str().unwrap().to_owned() }
}

/// A tenant with three users (one disabled) and a group of two.
fn populate(envoy: &Envoy, tenant: &str) -> Connection {
    let conn = tenant_with_connection(envoy, tenant);
    let mut ids = Vec::new();
    for name in ["ada@example.com", "grace@example.com", "linus@example.com"] {
        let (s, u) = call(
            envoy,
            "POST",
            &format!("{}/Users", conn.base_path),
            Some(&conn.token),
            Some(&user_body(name)),
        );
        assert_eq!(s, 201, "{u}");
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let disable = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let (s, u) = call(
        envoy,
        "PATCH",
        &format!("{}/Users/{}", conn.base_path, ids[2]),
        Some(&conn.token),
        Some(&disable),
    );
    assert!(s == 200 || s == 204, "{u}");
    let (s, g) = call(
        envoy,
        "POST",
        &format!("{}/Groups", conn.base_path),
        Some(&conn.token),
        Some(&group_body("Engineers")),
    );
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap();
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "Add", "path": "members", "value": [{"value": ids[0]}, {"value": ids[1]}]}]});
    let (s, r) =
        call(envoy, "PATCH", &format!("{}/Groups/{gid}", conn.base_path), Some(&conn.token), Some(&add));
    assert!(s == 200 || s == 204, "{r}");
    conn
}

#[test]
fn restart_and_sigkill_keep_users_groups_and_connections() {
    let mut stack = Stack::start(StoreKind::Etcd, 1);
    let conn = populate(stack.envoy(), "acme");
    let before = snapshot(stack.envoy(), "acme", &conn);
    assert_eq!(before.users.len(), 3);
    assert!(before.users.iter().any(|(_, n, active)| n == "linus@example.com" && !active), "{before:?}");
    assert_eq!(before.groups.iter().map(|g| g.2.len()).collect::<Vec<_>>(), vec![2]);

    let envoy = &mut stack.envoys[0];
    envoy.stop().expect("Envoy was running");
    envoy.start_again();
    assert_eq!(snapshot(&stack.envoys[0], "acme", &conn), before, "after a clean restart");

    let envoy = &mut stack.envoys[0];
    envoy.kill();
    envoy.start_again();
    assert_eq!(snapshot(&stack.envoys[0], "acme", &conn), before, "after SIGKILL");
    // Uniqueness survives too.
    let (s, b) = call(
        stack.envoy(),
        "POST",
        &format!("{}/Users", conn.base_path),
        Some(&conn.token),
        Some(&user_body("ADA@example.com")),
    );
    assert_eq!((s, b["scimType"].as_str()), (409, Some("uniqueness")), "{b}");
    stack.assert_logs_clean();
}

/// etcd in production runs with auto-compaction (`envoy/run.sh` starts it so), which drops every
/// older revision of every key; without it etcd's database grows with every write until its
/// quota stops all writes. scim-edge only compares keys' current `mod_revision`s, so a full
/// compaction in the middle of a tenant's life changes nothing: the same data reads back, and
/// every kind of write (records, index entries, lists, memberships, counters, the log) still
/// succeeds on keys last written before it.
#[test]
fn a_full_etcd_compaction_changes_nothing_and_every_write_still_succeeds() {
    let stack = Stack::start(StoreKind::Etcd, 1);
    let envoy = stack.envoy();
    let conn = populate(envoy, "acme");
    let before = snapshot(envoy, "acme", &conn);
    let rev = stack.etcd().compact();
    // It happened: the revision before it can no longer be read.
    let (status, old) =
        stack.etcd().try_call("/v3/kv/range", json!({"key": "AA==", "revision": (rev - 1).to_string()}));
    assert!(status != 200 && old.to_string().contains("compacted"), "{status} {old}");
    assert_eq!(snapshot(envoy, "acme", &conn), before, "after the compaction");

    let users = format!("{}/Users", conn.base_path);
    let (s, found) = call(
        envoy,
        "GET",
        &format!("{users}?filter=userName%20eq%20%22ada%40example.com%22"),
        Some(&conn.token),
        None,
    );
    assert_eq!((s, found["totalResults"].as_u64()), (200, Some(1)), "{found}");
    let ada = found["Resources"][0]["id"].as_str().unwrap().to_owned();
    let (_, groups) = call(envoy, "GET", &format!("{}/Groups", conn.base_path), Some(&conn.token), None);
    let gid = groups["Resources"][0]["id"].as_str().unwrap().to_owned();
    // A rename (record and index entry), a disable, a membership change, a delete, a create.
    for (what, path, ops) in [
        (
            "rename",
            format!("{users}/{ada}"),
            json!([{"op": "Replace", "path": "userName", "value": "ada.l@example.com"}]),
        ),
        ("disable", format!("{users}/{ada}"), json!([{"op": "Replace", "path": "active", "value": "False"}])),
        (
            "member removal",
            format!("{}/Groups/{gid}", conn.base_path),
            json!([{"op": "Remove", "path": "members", "value": [{"value": ada}]}]),
        ),
    ] {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let (s, r) = call(envoy, "PATCH", &path, Some(&conn.token), Some(&body));
        assert!(s == 200 || s == 204, "{what}: {s} {r}");
    }
    let grace = before.users.iter().find(|u| u.1 == "grace@example.com").unwrap().0.clone();
    let (s, r) = call(envoy, "DELETE", &format!("{users}/{grace}"), Some(&conn.token), None);
    assert_eq!(s, 204, "delete: {r}");
    let (s, r) = call(envoy, "POST", &users, Some(&conn.token), Some(&user_body("grace@example.com")));
    assert_eq!(s, 201, "the freed userName is taken again: {r}");
    // (ada keeps her externalId, so the new user has another.)
    let mut new_ada = user_body("ada@example.com");
    new_ada["externalId"] = json!("ext-ada-2");
    let (s, r) = call(envoy, "POST", &users, Some(&conn.token), Some(&new_ada));
    assert_eq!(s, 201, "the renamed user's old userName is free: {r}");
    let (s, r) = call(envoy, "POST", &users, Some(&conn.token), Some(&user_body("ADA.L@example.com")));
    assert_eq!((s, r["scimType"].as_str()), (409, Some("uniqueness")), "the new one is held: {r}");
    let after = snapshot(envoy, "acme", &conn);
    assert_eq!(after.users.len(), 4, "{:?}", after.users);
    assert!(
        after.users.iter().any(|u| u.0 == ada && u.1 == "ada.l@example.com" && !u.2),
        "{:?}",
        after.users
    );
    stack.assert_logs_clean();
}

#[test]
fn two_envoys_on_one_etcd_share_users_uniqueness_and_regeneration() {
    let mut stack = Stack::start(StoreKind::Etcd, 2);
    let (a, b) = (&stack.envoys[0], &stack.envoys[1]);
    let conn = tenant_with_connection(a, "shared");
    let users = format!("{}/Users", conn.base_path);

    let (s, created) = call(a, "POST", &users, Some(&conn.token), Some(&user_body("alice@example.com")));
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (s, seen) = call(b, "GET", &format!("{users}/{id}"), Some(&conn.token), None);
    assert_eq!((s, &seen["userName"]), (200, &json!("alice@example.com")), "B sees A's user: {seen}");
    let (s, dup) = call(b, "POST", &users, Some(&conn.token), Some(&user_body("Alice@Example.com")));
    assert_eq!((s, dup["scimType"].as_str()), (409, Some("uniqueness")), "unique through B: {dup}");

    let new = regenerate(a, "shared");
    for (name, envoy) in [("A", a), ("B", b)] {
        let (s, _) = call(envoy, "GET", &users, Some(&conn.token), None);
        assert_eq!(s, 401, "{name} rejects the old token on the old URL");
        let (s, _) = call(envoy, "GET", &format!("{}/Users", new.base_path), Some(&conn.token), None);
        assert_eq!(s, 401, "{name} rejects the old token on the new URL");
        let (s, list) = call(envoy, "GET", &format!("{}/Users", new.base_path), Some(&new.token), None);
        assert_eq!((s, list["totalResults"].as_u64()), (200, Some(1)), "{name} serves the new token: {list}");
    }
    // A third Envoy started now sees the same.
    stack.add_envoy();
    let (s, _) = call(&stack.envoys[2], "GET", &users, Some(&conn.token), None);
    assert_eq!(s, 401);
    stack.assert_logs_clean();
}

#[test]
fn non_scim_paths_reach_the_upstream_unchanged_but_for_the_products_headers() {
    let stack = Stack::start(StoreKind::Etcd, 1);
    let e = stack.envoy();
    let cases: [(&str, &str, &str); 5] = [
        ("GET", "/", ""),
        ("POST", "/api/orders?id=7&x=%2F", "{\"order\": 1}"),
        ("PUT", "/scim/v1/Users", "not under /scim/v2/"),
        ("DELETE", "/scimx/v2/abc/Users", ""),
        ("PATCH", "/admin/v2/tenants/x", "[1,2]"),
    ];
    for (method, path, body) in cases {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer not-for-the-filter")
            .header("x-custom", "kept as is")
            // The product's own header, forged by a client: never passed on.
            .header("X-Acting-User", "0123456789abcdef0123456789abcdef")
            .body(bytes::Bytes::from(body))
            .unwrap();
        let res = e.send(&req);
        assert_eq!(res.status(), 200, "{method} {path}");
        assert_eq!(
            res.headers().get("x-echo").map(|v| v.as_bytes()),
            Some(&b"upstream"[..]),
            "{method} {path}"
        );
        let echo: Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(echo["requestLine"], json!(format!("{method} {path} HTTP/1.1")));
        assert_eq!(echo["body"], json!(body), "{method} {path}");
        let headers = echo["headers"].as_array().unwrap();
        for (name, value) in [("authorization", "Bearer not-for-the-filter"), ("x-custom", "kept as is")] {
            assert!(headers.contains(&json!([name, value])), "{method} {path}: {name} arrived: {headers:?}");
        }
        let forged =
            headers.iter().any(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case("x-acting-user")));
        assert!(!forged, "{method} {path}: X-Acting-User reached the upstream: {headers:?}");
    }
    assert_eq!(stack.echo.requests(), cases.len());

    // Ours, with and without a body: answered by scim-edge, never seen upstream.
    for (method, path) in
        [("PUT", "/scim/v2"), ("POST", "/scim/v2/abc/Users"), ("GET", "/admin/v1/tenants/x")]
    {
        let body = json!({"userName": "x"});
        let (s, b) = call(e, method, path, Some("wrong"), Some(&body).filter(|_| method != "GET"));
        assert!(s == 401 || s == 404, "{method} {path}: {s} {b}");
        assert_eq!(
            b["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
            "{method} {path}: {b}"
        );
    }
    assert_eq!(stack.echo.requests(), cases.len(), "the upstream saw none of the SCIM requests");
    stack.assert_logs_clean();
}

#[test]
fn etcd_outage_answers_503_within_the_timeout_and_recovers() {
    let timeout_ms = 1000;
    let mut stack = Stack::start_with(StoreKind::Etcd, 1, filter_wasm(), timeout_ms);
    let conn = tenant_with_connection(stack.envoy(), "outage");
    let users = format!("{}/Users", conn.base_path);
    let (s, _) =
        call(stack.envoy(), "POST", &users, Some(&conn.token), Some(&user_body("before@example.com")));
    assert_eq!(s, 201);
    let keys_before = stack.etcd().keys(PREFIX);

    let expect_503 = |envoy: &Envoy, what: &str| {
        let t = Instant::now();
        let (s, body) =
            call(envoy, "POST", &users, Some(&conn.token), Some(&user_body("during@example.com")));
        let took = t.elapsed();
        assert_eq!(s, 503, "{what}: {body}");
        assert_eq!(body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{what}: {body}");
        assert_eq!(body["status"], json!("503"), "{what}: {body}");
        assert!(took < Duration::from_millis(timeout_ms + 1500), "{what}: answered after {took:?}");
    };
    stack.etcd().pause();
    expect_503(stack.envoy(), "etcd hung");
    stack.etcd().resume();
    stack.etcd.as_mut().unwrap().kill();
    expect_503(stack.envoy(), "etcd down");

    stack.etcd.as_mut().unwrap().restart();
    assert_eq!(stack.etcd().keys(PREFIX), keys_before, "nothing half-written during the outage");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (0, Value::Null);
    while Instant::now() < deadline {
        last = call(stack.envoy(), "GET", &users, Some(&conn.token), None);
        if last.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!((last.0, last.1["totalResults"].as_u64()), (200, Some(1)), "served again: {}", last.1);
    let (s, _) =
        call(stack.envoy(), "POST", &users, Some(&conn.token), Some(&user_body("after@example.com")));
    assert_eq!(s, 201);
    stack.assert_logs_clean();
}

#[test]
fn shared_data_store_serves_scim_in_one_envoy() {
    let stack = Stack::start(StoreKind::SharedData, 1);
    let conn = populate(stack.envoy(), "volatile");
    let snap = snapshot(stack.envoy(), "volatile", &conn);
    assert_eq!((snap.users.len(), snap.groups.len()), (3, 1));
    stack.assert_logs_clean();
}

#[test]
fn bad_plugin_config_fails_validation_naming_the_problem() {
    let dir = envoy::TempDir::new("validate");
    let cases = [
        (r#"{"scim":{},"store":{"type":"redis"}}"#, "store.type \"redis\" is not a store"),
        (r#"{"scim":{"adminTokenSha256":"abc"},"store":{"type":"etcd"}}"#, "64 hex digits"),
        (r#"{"scim":{},"store":{"type":"etcd","timeoutMs":0}}"#, "store.timeoutMs must be between 1 and"),
        (r#"{"scim":{}}"#, "\"store\" is missing"),
    ];
    for (i, (config, problem)) in cases.into_iter().enumerate() {
        let ports = Envoy::fresh_ports();
        let yaml = envoy::procs::render_config(ports, 1, 2, filter_wasm(), config);
        let path = dir.0.join(format!("bad{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let out = std::process::Command::new(&envoy::bins().envoy)
            .arg("-c")
            .arg(&path)
            .args(["--mode", "validate", "--disable-hot-restart"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{config}: validation passed:\n{log}");
        let line = log
            .lines()
            .find(|l| l.contains("[error]") && l.contains("invalid scim-edge plugin configuration"));
        assert!(
            line.is_some_and(|l| l.contains(problem)),
            "{config}: no error line naming {problem:?}:\n{log}"
        );
    }
    // And the good one passes.
    let yaml =
        envoy::procs::render_config(Envoy::fresh_ports(), 1, 2, filter_wasm(), &envoy::etcd_config(2, 2000));
    let path = dir.0.join("good.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(&envoy::bins().envoy)
        .arg("-c")
        .arg(&path)
        .args(["--mode", "validate", "--disable-hot-restart"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

// ---- limits, the rate limit, secrets and contention through Envoy ------------------------

/// The lowest body limit the core accepts, with the resource limits it implies.
fn small_limits() -> Value {
    json!({"maxBodyBytes": 4096, "maxResourceBytes": 4096, "maxValueBytes": 1024})
}

/// Every key under the store's prefix with its value.
fn etcd_dump(stack: &Stack) -> Vec<(String, Option<Vec<u8>>)> {
    stack.etcd().keys(PREFIX).into_iter().map(|k| (k.clone(), stack.etcd().get(&k))).collect()
}

fn assert_scim_error(body: &Value, status: u16, what: &str) {
    assert_eq!(body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{what}: {body}");
    assert_eq!(body["status"], json!(status.to_string()), "{what}: {body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {body}");
}

/// `maxBodyBytes` from the filter's `scim` configuration: a bigger SCIM or admin body gets the
/// core's 413 (a SCIM error naming the limit) through Envoy and etcd is not touched; a body
/// over Envoy's own buffer limit (1 MiB per connection, the default, which is also the sink's
/// buffer) is refused by Envoy itself before the filter sees it — also 413, not a SCIM error
/// body — and nothing is written either. Envoy serves on afterwards.
#[test]
fn oversized_bodies_get_413_through_envoy_and_change_nothing() {
    let stack = Stack::start_with_scim(StoreKind::Etcd, 1, small_limits());
    let e = stack.envoy();
    let conn = tenant_with_connection(e, "limits");
    let users = format!("{}/Users", conn.base_path);
    let before = etcd_dump(&stack);

    let mut big = user_body("big@example.com");
    big["displayName"] = json!("x".repeat(5000));
    let (s, body) = call(e, "POST", &users, Some(&conn.token), Some(&big));
    assert_eq!(s, 413, "{body}");
    assert_scim_error(&body, 413, "POST /Users over maxBodyBytes");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("maxBodyBytes") && detail.contains("4096"), "{body}");
    // Before authentication: a wrong token gets the same 413, and so does the admin API.
    let (s, body) = call(e, "POST", &users, Some("sce_wrong"), Some(&big));
    assert_eq!(s, 413, "{body}");
    let (s, body) = call(
        e,
        "PUT",
        "/admin/v1/tenants/limits",
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "y".repeat(5000), "plan": "advanced"})),
    );
    assert_eq!(s, 413, "{body}");
    assert_scim_error(&body, 413, "admin PUT over maxBodyBytes");
    assert_eq!(etcd_dump(&stack), before, "a refused body writes nothing");

    let (s, body) = call(e, "POST", &users, Some(&conn.token), Some(&user_body("small@example.com")));
    assert_eq!(s, 201, "a body within the limit: {body}");

    // 2 MiB: over Envoy's buffer limit.
    let before = etcd_dump(&stack);
    let mut huge = user_body("huge@example.com");
    huge["displayName"] = json!("z".repeat(2 << 20));
    let res = e.send(&envoy::request("POST", &users, Some(&conn.token), Some(&huge)));
    let text = String::from_utf8_lossy(res.body()).into_owned();
    println!(
        "2 MiB POST: {} content-type {:?}: {text:?}",
        res.status(),
        res.headers().get("content-type").map(|v| v.to_str().unwrap_or_default().to_owned())
    );
    assert_eq!(res.status(), 413, "{text}");
    // Envoy's own local reply, not the core's SCIM error: the filter never saw the body.
    assert_eq!(text, "Payload Too Large");
    assert_eq!(etcd_dump(&stack), before, "nothing written for the 2 MiB body");

    let (s, list) = call(e, "GET", &users, Some(&conn.token), None);
    assert_eq!((s, list["totalResults"].as_u64()), (200, Some(1)), "{list}");
    stack.assert_logs_clean();
}

/// The per-tenant token bucket lives in etcd, so it holds across Envoy's two worker threads:
/// many more requests than the burst from parallel connections get at most the burst plus
/// the refill over the elapsed time answered 200, the rest 429 with a SCIM error and
/// `Retry-After`. Another tenant is not limited by it, and the bucket refills.
#[test]
fn the_rate_limit_holds_across_envoy_workers_on_etcd() {
    let (rps, burst) = (5u64, 20u64);
    let stack = Stack::start_with_scim(
        StoreKind::Etcd,
        1,
        json!({"rateLimit": {"requestsPerSecond": rps, "burst": burst}}),
    );
    let e = stack.envoy();
    let conn = tenant_with_connection(e, "limited");
    let bystander = tenant_with_connection(e, "bystander");
    let users = format!("{}/Users?count=1", conn.base_path);

    let (clients, per_client) = (8, 12);
    let barrier = Arc::new(Barrier::new(clients));
    let started = Instant::now();
    let results: Vec<(u16, Option<String>, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (barrier, users, token) = (barrier.clone(), users.clone(), conn.token.clone());
                s.spawn(move || {
                    barrier.wait();
                    (0..per_client)
                        .map(|_| {
                            let res = e.send(&envoy::request("GET", &users, Some(&token), None));
                            let retry_after =
                                res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                            let body = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
                            (res.status().as_u16(), retry_after, body)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();

    let ok = results.iter().filter(|r| r.0 == 200).count() as u64;
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    let statuses: BTreeSet<u16> = results.iter().map(|r| r.0).collect();
    let bound = burst + (rps as f64 * elapsed.as_secs_f64()).ceil() as u64 + 1;
    println!(
        "rate limit {rps}/s burst {burst}: {} requests from {clients} connections in {elapsed:?}: \
         {ok} × 200, {} × 429 (bound on 200s: {bound})",
        results.len(),
        limited.len()
    );
    assert_eq!(ok + limited.len() as u64, results.len() as u64, "only 200 and 429: {statuses:?}");
    assert!(ok <= bound, "{ok} requests admitted, at most {bound} allowed");
    assert!(ok >= 1, "nothing admitted");
    for (_, retry_after, body) in &limited {
        assert_scim_error(body, 429, "429");
        assert!(body["detail"].as_str().unwrap().contains("rateLimit"), "{body}");
        let secs: u64 = retry_after.as_deref().expect("Retry-After on a 429").parse().unwrap();
        assert!(secs >= 1, "Retry-After {secs}");
    }
    e.assert_both_workers_served();
    let rate_key = format!("{PREFIX}{}", scim_edge_core::keys::rate("limited"));
    assert!(stack.etcd().get(&rate_key).is_some(), "the bucket is in etcd at {rate_key}");

    let (s, body) = call(e, "GET", &format!("{}/Users", bystander.base_path), Some(&bystander.token), None);
    assert_eq!(s, 200, "another tenant has its own bucket: {body}");
    std::thread::sleep(Duration::from_millis(1000 / rps + 500));
    let (s, body) = call(e, "GET", &users, Some(&conn.token), None);
    assert_eq!(s, 200, "the bucket refilled: {body}");
    stack.assert_logs_clean();
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A lifecycle with every kind of credential — the admin token (right and wrong), generated
/// and regenerated SCIM tokens, wrong SCIM tokens, a revoked one — and then none of them is in
/// Envoy's log, in any key or value in etcd, or anywhere in etcd's files (WAL and database,
/// which keep every value ever written). Only SHA-256 hashes are stored.
#[test]
fn no_token_appears_in_envoys_log_or_in_etcd() {
    let stack = Stack::start(StoreKind::Etcd, 1);
    let e = stack.envoy();
    let wrong_admin = "wrong-admin-token-5be0c1d2e3f4a5b6";
    let wrong_scim = format!("sce_{}", "7e".repeat(32));
    let mut secrets = vec![ADMIN_TOKEN.to_owned(), wrong_admin.to_owned(), wrong_scim.clone()];

    let (s, _) = call(e, "GET", "/admin/v1/tenants/secrets", Some(wrong_admin), None);
    assert!(s == 401 || s == 404, "wrong admin token: {s}");
    let first = tenant_with_connection(e, "secrets");
    secrets.push(first.token.clone());
    let users = format!("{}/Users", first.base_path);
    let (s, u) = call(e, "POST", &users, Some(&first.token), Some(&user_body("kept@example.com")));
    assert_eq!(s, 201, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    let disable = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let (s, _) = call(e, "PATCH", &format!("{users}/{id}"), Some(&first.token), Some(&disable));
    assert_eq!(s, 200);
    let (s, g) =
        call(e, "POST", &format!("{}/Groups", first.base_path), Some(&first.token), Some(&group_body("G")));
    assert_eq!(s, 201, "{g}");
    for bad in [wrong_scim.as_str(), ADMIN_TOKEN, ""] {
        let (s, _) = call(e, "GET", &users, Some(bad), None);
        assert_eq!(s, 401, "{bad:?} is not a SCIM token");
    }

    let second = regenerate(e, "secrets");
    secrets.push(second.token.clone());
    let (s, _) = call(e, "GET", &users, Some(&first.token), None);
    assert_eq!(s, 401, "the old token after regenerate");
    let (s, _) = call(e, "GET", &format!("{}/Users", second.base_path), Some(&first.token), None);
    assert_eq!(s, 401, "the old token on the new URL");
    let (s, list) = call(e, "GET", &format!("{}/Users", second.base_path), Some(&second.token), None);
    assert_eq!((s, list["totalResults"].as_u64()), (200, Some(1)), "{list}");
    let (s, _) = call(e, "GET", "/admin/v1/tenants/secrets/scim", Some(ADMIN_TOKEN), None);
    assert_eq!(s, 200);
    let (s, _) = call(e, "DELETE", "/admin/v1/tenants/secrets/scim", Some(ADMIN_TOKEN), None);
    assert_eq!(s, 204);
    let (s, _) = call(e, "GET", &format!("{}/Users", second.base_path), Some(&second.token), None);
    assert_eq!(s, 401, "revoked");
    let third = regenerate(e, "secrets");
    secrets.push(third.token.clone());
    let (s, _) = call(e, "DELETE", &format!("{}/Users/{id}", third.base_path), Some(&third.token), None);
    assert_eq!(s, 204);

    // A tenant person's sign-in link, session and anti-CSRF token (`sessions`): through Envoy
    // the cookie reaches the filter and Set-Cookie reaches the browser; none of the three values
    // is logged or stored.
    let (s, u) = call(
        e,
        "POST",
        &format!("{}/Users", third.base_path),
        Some(&third.token),
        Some(&user_body("admin@example.com")),
    );
    assert_eq!(s, 201, "{u}");
    let admin_id = u["id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        e,
        "PATCH",
        &format!("/admin/v1/tenants/secrets/users/{admin_id}"),
        Some(ADMIN_TOKEN),
        Some(&json!({"role": "administrator"})),
    );
    assert_eq!(s, 200);
    let (s, link) = call(
        e,
        "POST",
        "/admin/v1/tenants/secrets/sessions",
        Some(ADMIN_TOKEN),
        Some(&json!({"user": "admin@example.com"})),
    );
    assert_eq!(s, 201, "{link}");
    let link_token = link["url"].as_str().unwrap().split_once("?t=").unwrap().1.to_owned();
    secrets.push(link_token.clone());
    secrets.push(link_token[4 + 32..].to_owned());
    let with = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut b = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        e.send(&b.body(bytes::Bytes::new()).unwrap())
    };
    let html = ("accept", "text/html");
    let res = with("GET", &format!("/admin/v1/sign-in?t={link_token}"), &[html]);
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/admin/"));
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    secrets.push(cookie.split_once('.').unwrap().1.to_owned());
    let res = with("GET", "/admin/v1/session", &[("cookie", &cookie)]);
    assert_eq!(res.status().as_u16(), 200);
    let who: Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(who["user"]["userName"], "admin@example.com");
    let csrf = who["csrfToken"].as_str().unwrap().to_owned();
    secrets.push(csrf.clone());
    let res = with("GET", "/admin/v1/tenants/secrets/users", &[("cookie", &cookie)]);
    assert_eq!(res.status().as_u16(), 200);
    let res = with("GET", &format!("/admin/v1/sign-in?t={link_token}"), &[html]);
    assert_eq!(res.headers()["location"].to_str().unwrap(), "/admin/#/link/used");
    let res = with("DELETE", "/admin/v1/session", &[("cookie", &cookie)]);
    assert_eq!(res.status().as_u16(), 403, "signing out needs the anti-CSRF token");
    let res = with("DELETE", "/admin/v1/session", &[("cookie", &cookie), ("x-csrf-token", &csrf)]);
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let res = with("GET", "/admin/v1/session", &[("cookie", &cookie)]);
    assert_eq!(res.status().as_u16(), 401, "signed out");
    // Signed out, the session is deleted: its link is unknown now.
    let res = with("GET", &format!("/admin/v1/sign-in?t={link_token}"), &[html]);
    assert_eq!(res.headers()["location"].to_str().unwrap(), "/admin/#/link/invalid");

    // The search itself finds a token, whole or cut short.
    let cut = &third.token[20..50];
    assert_eq!(
        scim_edge_host_tests::leaks(format!("x{cut}y").as_bytes(), &secrets),
        vec![third.token.clone()]
    );
    let log = std::fs::read(&e.log).unwrap();
    assert!(!log.is_empty());
    assert_eq!(
        scim_edge_host_tests::leaks(&log, &secrets),
        Vec::<String>::new(),
        "tokens in Envoy's log {}",
        e.log.display()
    );

    let dump = etcd_dump(&stack);
    assert!(dump.len() > 5, "{dump:?}");
    for (key, value) in &dump {
        let mut both = key.as_bytes().to_vec();
        both.extend_from_slice(value.as_deref().unwrap_or_default());
        assert_eq!(scim_edge_host_tests::leaks(&both, &secrets), Vec::<String>::new(), "etcd key {key}");
    }
    let files = files_under(&stack.dir.0.join("etcd-data"));
    assert!(files.iter().any(|f| f.extension().is_some_and(|x| x == "wal")), "{files:?}");
    for file in files.iter().chain([&stack.dir.0.join("etcd.log")]) {
        let bytes = std::fs::read(file).unwrap();
        assert_eq!(
            scim_edge_host_tests::leaks(&bytes, &secrets),
            Vec::<String>::new(),
            "etcd file {}",
            file.display()
        );
    }
    stack.assert_logs_clean();
}

/// Many clients at once creating, renaming, disabling and deleting users over a handful of
/// `userName`s and adding and removing group members, through both Envoy workers on etcd
/// (`scim_edge_host_tests::contention`); then the API shows no duplicate and no dangling
/// member, and `scim-edge-fsck` finds etcd consistent.
#[test]
fn conflicting_operations_through_envoy_leave_etcd_consistent() {
    use scim_edge_host_tests::contention::{self, Workload};

    let stack = Stack::start(StoreKind::Etcd, 1);
    let e = stack.envoy();
    let conn = tenant_with_connection(e, "contended");
    let workload = Workload::default();
    let started = Instant::now();
    let outcome = contention::run(&conn.base_path, &conn.token, &workload, |req| Ok(e.send(&req))).unwrap();
    println!(
        "envoy: {} clients × {} ops in {:?}: {outcome}",
        workload.clients,
        workload.ops_per_client,
        started.elapsed()
    );
    assert!(outcome.unexpected.is_empty(), "unexpected answers:\n{}", outcome.unexpected.join("\n"));
    let api =
        contention::check_through_the_api(&conn.base_path, &conn.token, &outcome, |req| Ok(e.send(&req)));
    e.assert_both_workers_served();
    // Requests that found a list taken waited on the pause cluster (store.pauseCluster), each
    // pause delayed by the sink's fault filter and then answered, instead of re-reading etcd.
    let delayed = e.counter("http.scim_sink.fault.delays_injected");
    let answered = e.counter("cluster.scim_pause.upstream_rq_204");
    println!("envoy: {delayed:?} pauses delayed, {answered:?} answered");
    assert!(
        delayed.is_some_and(|n| n > 0) && delayed == answered,
        "{delayed:?} delayed, {answered:?} answered"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scim-edge-fsck"))
        .args(["--etcd", &format!("http://127.0.0.1:{}", stack.etcd().client_port), "--prefix", PREFIX])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("envoy: through the API: {api:?}\n{text}");
    let users = api.unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 problems") && text.contains("consistent"), "{text}");
    assert!(text.contains(&format!(", {users} users,")), "{text}");
    stack.assert_logs_clean();
}
