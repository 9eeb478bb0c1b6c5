//! scim-edge end to end in the real Envoy 1.40 (`--concurrency 2`) with the filter built from
//! source, over the real etcd 3.5 (and Envoy's shared data): the shared Entra lifecycle suite
//! in both dialects, concurrent creates, restarts and SIGKILL, two Envoys on one etcd,
//! regenerate, pass-through, an etcd outage, a bad configuration. Every test ends by checking
//! that no Envoy logged a wasm panic or a critical line.
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
        let per_worker = e.worker_connections();
        assert!(
            per_worker.len() == 2 && per_worker.iter().all(|&n| n > 0),
            "both workers served: {per_worker:?}"
        );
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
fn non_scim_paths_reach_the_upstream_unchanged() {
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
