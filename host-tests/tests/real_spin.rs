//! The Spin component in the real Spin CLI (`spin build` + `spin up` of the project's own
//! `spin.toml`): on Spin's default SQLite store, and on Redis with two `spin up`s sharing one
//! `redis-server`. The shared Entra scenario suite in both dialects, concurrent creates of one
//! `userName`, regenerate, restart and SIGKILL, the contention workload, and
//! `scim-edge-fsck` on the store afterwards.
//!
//! Needs `spin` (`SPIN_BIN` or `PATH`; the Spin CLI 4.0.2 is `../shared/bin/spin`) and, for the
//! Redis tests, `redis-server` (`REDIS_SERVER_BIN` or `PATH`). Without them each test prints
//! `real-spin: SKIPPED: …` and passes — unless `CI=true`, where it fails.
//!
//! Failing loudly is the point of a test, hence `unwrap`/`panic!` here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../src/envoy/mod.rs"]
mod envoy;
#[path = "../src/spin_cli.rs"]
mod spin_cli;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use envoy::{block_on, group_body, user_body, Connection, ADMIN_TOKEN};
use scim_edge_core::testing::scenario::{entra_lifecycle, tenant_for, Dialect};
use scim_edge_host_tests::report;
use scim_edge_host_tests::report::Report;
use serde_json::{json, Value};
use spin_cli::{require, temp_dir, Backend, Need, RedisServer, SpinApp, SpinCliTarget};

fn lifecycle(apps: Vec<&SpinApp>, label: &str) {
    for dialect in [Dialect::Default, Dialect::AadOptScim062020] {
        let started = Instant::now();
        let mut target = SpinCliTarget::new(apps.clone());
        match block_on(entra_lifecycle(&mut target, dialect)) {
            Ok(report) => println!("{label} {dialect:?} in {:?}:\n{report}", started.elapsed()),
            Err(failure) => panic!("{label} {dialect:?}: {failure}"),
        }
    }
}

/// `threads` clients POST one `userName` at once, client `i` through `apps[i % apps.len()]`:
/// exactly one 201, every other answer a 409 `uniqueness`, and the user is listed once.
fn concurrent_creates(apps: &[&SpinApp], conn: &Connection, threads: usize) {
    let barrier = Arc::new(Barrier::new(threads));
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (barrier, app) = (barrier.clone(), apps[i % apps.len()]);
                s.spawn(move || {
                    barrier.wait();
                    app.call(
                        "POST",
                        &format!("{}/Users", conn.base_path),
                        Some(&conn.token),
                        Some(&user_body("Same.Name@Example.com")),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "exactly one 201: {answers:?}");
    // The others: 409 uniqueness, or — when the race outlasted the core's compare-and-swap
    // retries — a "retry" answer (409 without scimType, or 503), which Entra retries: a retry
    // now gets 409 uniqueness.
    let mut retried = 0;
    for (s, b) in &answers {
        if *s == 201 || (*s == 409 && b["scimType"] == "uniqueness") {
            continue;
        }
        assert!((*s == 409 && b["scimType"].is_null()) || *s == 503, "{s} {b}");
        retried += 1;
        let (s, b) = apps[retried % apps.len()].call(
            "POST",
            &format!("{}/Users", conn.base_path),
            Some(&conn.token),
            Some(&user_body("same.name@example.com")),
        );
        assert_eq!((s, b["scimType"].as_str()), (409, Some("uniqueness")), "{b}");
    }
    println!("{threads} concurrent creates of one userName: one 201, {retried} answered \"retry\" (then 409 uniqueness)");
    for app in apps {
        let (s, list) = app.call(
            "GET",
            &format!("{}/Users?filter=userName%20eq%20%22same.name%40example.com%22", conn.base_path),
            Some(&conn.token),
            None,
        );
        assert_eq!((s, list["totalResults"].as_u64()), (200, Some(1)), "{list}");
    }
}

/// Regenerate through `via`: the old token is refused by every app, the new one accepted.
fn regenerate_rejects_old(via: &SpinApp, apps: &[&SpinApp], tenant: &str, old: &Connection) -> Connection {
    let new = regenerate_on(via, tenant);
    assert_ne!(new.base_path, old.base_path);
    for app in apps {
        let (s, _) = app.call("GET", &format!("{}/Users", old.base_path), Some(&old.token), None);
        assert_eq!(s, 401, "old connection after regenerate");
        let (s, _) = app.call("GET", &format!("{}/Users", new.base_path), Some(&old.token), None);
        assert_eq!(s, 401, "old token on the new URL");
        let (s, b) = app.call("GET", &format!("{}/Users", new.base_path), Some(&new.token), None);
        assert_eq!(s, 200, "{b}");
    }
    new
}

/// `POST /admin/v1/tenants/{tenant}/scim` (generate or regenerate).
fn regenerate_on(app: &SpinApp, tenant: &str) -> Connection {
    let path = format!("/admin/v1/tenants/{tenant}/scim");
    let (status, body) = app.call("POST", &path, Some(ADMIN_TOKEN), None);
    assert_eq!(status, 201, "POST {path}: {body}");
    let url = body["url"].as_str().expect("url");
    let base_path = url.find("/scim/v2/").map(|i| url[i..].to_owned()).expect("a /scim/v2/ URL");
    Connection { base_path, token: body["token"].as_str().expect("token").to_owned() }
}

/// `PUT` the tenant (plan `advanced`) and generate its SCIM connection.
fn connect(app: &SpinApp, tenant: &str) -> Connection {
    let path = format!("/admin/v1/tenants/{tenant}");
    let (status, body) =
        app.call("PUT", &path, Some(ADMIN_TOKEN), Some(&json!({"name": tenant, "plan": "advanced"})));
    assert!(status == 201 || status == 200, "PUT {path}: {status} {body}");
    regenerate_on(app, tenant)
}

/// Users (id, userName, active) and groups (displayName, member ids) of a connection, sorted.
type Snapshot = (Vec<(String, String, bool)>, Vec<(String, Vec<String>)>);

fn snapshot(app: &SpinApp, conn: &Connection) -> Snapshot {
    let (s, users) =
        app.call("GET", &format!("{}/Users?count=1000", conn.base_path), Some(&conn.token), None);
    assert_eq!(s, 200, "{users}");
    let mut u: Vec<_> = users["Resources"]
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
    u.sort();
    let (s, groups) = app.call(
        "GET",
        &format!("{}/Groups?count=1000&attributes=members,displayName", conn.base_path),
        Some(&conn.token),
        None,
    );
    assert_eq!(s, 200, "{groups}");
    let mut g: Vec<_> = groups["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let mut members: Vec<String> = g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["value"].as_str().unwrap().to_owned())
                .collect();
            members.sort();
            (g["displayName"].as_str().unwrap().to_owned(), members)
        })
        .collect();
    g.sort();
    (u, g)
}

/// Three users (one disabled) and a group with two members.
fn populate(app: &SpinApp, conn: &Connection) {
    let mut ids = Vec::new();
    for name in ["ada@example.com", "grace@example.com", "linus@example.com"] {
        let (s, b) =
            app.call("POST", &format!("{}/Users", conn.base_path), Some(&conn.token), Some(&user_body(name)));
        assert_eq!(s, 201, "{b}");
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let (s, b) =
        app.call("PATCH", &format!("{}/Users/{}", conn.base_path, ids[2]), Some(&conn.token), Some(&off));
    assert_eq!(s, 200, "{b}");
    let (s, g) = app.call(
        "POST",
        &format!("{}/Groups", conn.base_path),
        Some(&conn.token),
        Some(&group_body("Engineers")),
    );
    assert_eq!(s, 201, "{g}");
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "Add", "path": "members", "value": [{"value": ids[0]}, {"value": ids[1]}]}]});
    let (s, r) = app.call(
        "PATCH",
        &format!("{}/Groups/{}", conn.base_path, g["id"].as_str().unwrap()),
        Some(&conn.token),
        Some(&add),
    );
    assert!(s == 200 || s == 204, "{r}");
}

/// Claim counters of Spin's Redis store whose key was never written: a creator won the claim
/// and died before its write (`plugin/spin/src/store.rs`, "Residual risk").
fn claims_without_key(redis: &RedisServer) -> Vec<String> {
    let mut r = redis.client();
    let keys = r.keys().unwrap();
    keys.iter()
        .filter_map(|k| k.strip_prefix("claim/"))
        .filter(|k| !keys.iter().any(|other| other == k))
        .map(str::to_owned)
        .collect()
}

/// fsck finds no error; and no garbage either unless `garbage_ok` (a SIGKILLed instance may
/// die between a request's writes: what it leaves is garbage, leftovers that change no answer).
fn assert_fsck_clean(app: &SpinApp, users: Option<usize>, garbage_ok: bool) {
    let (code, text) = app.fsck();
    println!("{text}");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("consistent"), "{text}");
    assert!(garbage_ok || (text.contains("0 problems") && !text.contains("garbage:")), "{text}");
    if let Some(n) = users {
        // fsck counts every user record; a create killed after writing its record and before
        // indexing and listing it leaves one the API never shows (garbage, reported as such).
        let unlisted = text
            .lines()
            .filter(|l| {
                l.contains("garbage: ") && l.contains("/u/") && l.contains("neither indexed nor listed")
            })
            .count();
        assert!(garbage_ok || unlisted == 0, "{text}");
        assert!(text.contains(&format!(", {} users,", n + unlisted)), "{text}");
    }
}

// ---- Spin's default store: SQLite ----------------------------------------------------------

/// The Entra lifecycle in both dialects, concurrent creates, regenerate, a clean restart and a
/// SIGKILL, all on one `spin up` with SQLite in a temp state directory; fsck clean at the end.
#[test]
fn sqlite_lifecycle_concurrency_regenerate_and_restarts() {
    if !require("sqlite_lifecycle_concurrency_regenerate_and_restarts", Need::Spin) {
        return;
    }
    let dir = temp_dir("sqlite");
    let mut app = SpinApp::start(&dir.0, "spin", Backend::Sqlite);
    lifecycle(vec![&app], "real spin, SQLite:");

    let conn = connect(&app, "acme");
    concurrent_creates(&[&app], &conn, 16);
    let conn = regenerate_rejects_old(&app, &[&app], "acme", &conn);
    populate(&app, &conn);
    let before = snapshot(&app, &conn);
    assert_eq!(before.0.len(), 4, "{before:?}");

    app.stop();
    app.start_again();
    assert_eq!(snapshot(&app, &conn), before, "after a clean restart");
    app.kill();
    app.start_again();
    assert_eq!(snapshot(&app, &conn), before, "after SIGKILL");
    let (s, b) = app.call(
        "POST",
        &format!("{}/Users", conn.base_path),
        Some(&conn.token),
        Some(&user_body("ADA@example.com")),
    );
    assert_eq!((s, b["scimType"].as_str()), (409, Some("uniqueness")), "{b}");

    assert_fsck_clean(&app, None, false);
    app.assert_log_clean();
}

/// A tenant person's sign-in link through the real Spin: the link signs in once, the session
/// cookie (Set-Cookie out, Cookie in) survives Spin's HTTP layer, changes need the anti-CSRF
/// token, sign-out ends it; no link, session or anti-CSRF value is in the SQLite file.
#[test]
fn sqlite_sign_in_link_session_and_sign_out() {
    if !require("sqlite_sign_in_link_session_and_sign_out", Need::Spin) {
        return;
    }
    let dir = temp_dir("session");
    let app = SpinApp::start(&dir.0, "spin", Backend::Sqlite);
    let (s, b) = app.call(
        "PUT",
        "/admin/v1/tenants/acme",
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "Acme", "admin": {"userName": "ada@acme.example"}})),
    );
    assert_eq!(s, 201, "{b}");
    let (s, link) = app.call(
        "POST",
        "/admin/v1/tenants/acme/sessions",
        Some(ADMIN_TOKEN),
        Some(&json!({"user": "ada@acme.example"})),
    );
    assert_eq!(s, 201, "{link}");
    let token = link["url"].as_str().unwrap().split_once("?t=").unwrap().1.to_owned();
    let with = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut b = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        app.send(&b.body(bytes::Bytes::new()).unwrap())
    };
    let html = ("accept", "text/html");
    let res = with("GET", &format!("/admin/v1/sign-in?t={token}"), &[html]);
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/admin/"));
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/admin/v1"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let res = with("GET", "/admin/v1/session", &[("cookie", &cookie)]);
    assert_eq!(res.status().as_u16(), 200);
    let who: Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!((who["tenant"].as_str(), who["role"].as_str()), (Some("acme"), Some("administrator")));
    let csrf = who["csrfToken"].as_str().unwrap().to_owned();
    let res = with("POST", "/admin/v1/tenants/acme/scim", &[("cookie", &cookie)]);
    assert_eq!(res.status().as_u16(), 403, "no anti-CSRF token");
    let res = with("POST", "/admin/v1/tenants/acme/scim", &[("cookie", &cookie), ("x-csrf-token", &csrf)]);
    assert_eq!(res.status().as_u16(), 201, "{:?}", res.body());
    let res = with("GET", &format!("/admin/v1/sign-in?t={token}"), &[html]);
    assert_eq!(res.headers()["location"].to_str().unwrap(), "/admin/#/link/used");
    let res = with("DELETE", "/admin/v1/session", &[("cookie", &cookie), ("x-csrf-token", &csrf)]);
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(with("GET", "/admin/v1/session", &[("cookie", &cookie)]).status().as_u16(), 401);
    let db = std::fs::read(app.sqlite_path()).unwrap();
    let secrets = [token[4 + 32..].to_owned(), cookie.split_once('.').unwrap().1.to_owned(), csrf];
    assert_eq!(
        scim_edge_host_tests::leaks(&db, &secrets),
        Vec::<String>::new(),
        "secrets in the SQLite file"
    );
    app.assert_log_clean();
}

// ---- Redis, two instances ------------------------------------------------------------------

/// A `redis-server` and two `spin up`s on it.
struct RedisPair {
    apps: Vec<SpinApp>,
    redis: RedisServer,
    _dir: envoy::TempDir,
}

impl RedisPair {
    fn start(tag: &str) -> RedisPair {
        let dir = temp_dir(tag);
        let redis = RedisServer::start(&dir.0);
        let backend = Backend::Redis { runtime_config: redis.runtime_config(&dir.0), addr: redis.addr() };
        let apps = vec![
            SpinApp::start(&dir.0, "spin-a", backend.clone()),
            SpinApp::start(&dir.0, "spin-b", backend),
        ];
        RedisPair { apps, redis, _dir: dir }
    }

    fn both(&self) -> Vec<&SpinApp> {
        self.apps.iter().collect()
    }
}

/// The lifecycle in both dialects with every request going to the other instance than the one
/// before; concurrent creates of one `userName` spread over both; regenerate through one,
/// rejected by the other; fsck clean.
#[test]
fn redis_two_instances_lifecycle_concurrency_and_regenerate() {
    if !require("redis_two_instances_lifecycle_concurrency_and_regenerate", Need::SpinAndRedis) {
        return;
    }
    let pair = RedisPair::start("redis-pair");
    let (a, b) = (&pair.apps[0], &pair.apps[1]);
    lifecycle(pair.both(), "real spin, Redis, alternating instances:");
    for dialect in [Dialect::Default, Dialect::AadOptScim062020] {
        let (s, t) =
            b.call("GET", &format!("/admin/v1/tenants/{}", tenant_for(dialect)), Some(ADMIN_TOKEN), None);
        assert_eq!(s, 200, "{t}");
    }

    let conn = connect(a, "acme");
    concurrent_creates(&pair.both(), &conn, 16);
    let conn = regenerate_rejects_old(a, &pair.both(), "acme", &conn);
    let conn = regenerate_rejects_old(b, &pair.both(), "acme", &conn);
    populate(b, &conn);
    assert_eq!(snapshot(a, &conn), snapshot(b, &conn));

    assert_fsck_clean(a, None, false);
    // Every key claimed for creation was written by the creator that won its claim (a claim
    // without its key would make the key uncreatable). Counters above 1 are creators that
    // raced for a key, or one creator trying again (a log slot taken by another request).
    let mut redis = pair.redis.client();
    let claims: Vec<String> = redis.keys().unwrap().into_iter().filter(|k| k.starts_with("claim/")).collect();
    let mut raced = Vec::new();
    for claim in &claims {
        let key = claim.strip_prefix("claim/").unwrap();
        assert!(redis.get(key).unwrap().is_some(), "{claim} was won but {key} never written");
        // Redis's INCRBY counts in decimal text.
        let n: i64 = String::from_utf8_lossy(&redis.get(claim).unwrap().unwrap_or_default()).parse().unwrap();
        if n > 1 {
            raced.push((key.to_owned(), n));
        }
    }
    println!("{} claim counters, every key written; raced for: {raced:?}", claims.len());
    for app in &pair.apps {
        app.assert_log_clean();
    }
}

/// What Spin 4.0.2's Redis store does with each `swap`, counted by Redis itself: every swap's
/// `UNWATCH key` is rejected (so Spin answers `CasFailed`), yet the `EXEC`s ran and the writes
/// are there.
#[test]
fn redis_every_swap_is_answered_cas_failed_by_spin() {
    if !require("redis_every_swap_is_answered_cas_failed_by_spin", Need::SpinAndRedis) {
        return;
    }
    let dir = temp_dir("redis-swap");
    let redis = RedisServer::start(&dir.0);
    let backend = Backend::Redis { runtime_config: redis.runtime_config(&dir.0), addr: redis.addr() };
    let app = SpinApp::start(&dir.0, "spin", backend);
    let mut r = redis.client();
    r.cmd(&[b"CONFIG", b"RESETSTAT"]).unwrap();
    let (s, t) = app.call(
        "PUT",
        "/admin/v1/tenants/t1",
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "T1", "plan": "advanced"})),
    );
    assert_eq!(s, 201, "{t}");
    let field = |r: &mut scim_edge_host_tests::resp::Redis, f: &str| {
        r.info_field("commandstats", f).unwrap().unwrap_or_default()
    };
    let unwatch = field(&mut r, "cmdstat_unwatch");
    let exec = field(&mut r, "cmdstat_exec");
    println!("PUT tenant: unwatch {unwatch}; exec {exec}");
    let num = |text: &str, name: &str| -> u64 {
        text.split(',').find_map(|p| p.strip_prefix(&format!("{name}="))?.parse().ok()).unwrap_or(0)
    };
    assert!(num(&exec, "calls") >= 1, "{exec}");
    assert_eq!(
        num(&unwatch, "rejected_calls"),
        num(&exec, "calls"),
        "one rejected UNWATCH per swap: {unwatch} / {exec}"
    );
    let raw = app.raw("v1/tenant/t1").expect("the tenant is stored");
    assert_eq!(raw.first(), Some(&0x02), "{raw:?}");
    app.assert_log_clean();
}

/// The contention workload through both instances while one of them is SIGKILLed half-way
/// (its requests then go to the other, as a load balancer would send them) and started again;
/// afterwards the API shows no duplicate and no dangling member, and fsck finds Redis
/// consistent.
#[test]
#[ignore = "fails about one run in fifteen: since the harness kills the serving `spin trigger` \
            process too (it used to SIGKILL `spin up` only, which left its child serving), a kill \
            mid-request can leave a deleted user in a group's member list or a userName entry \
            holding two users on Spin's non-transactional store (issue 17); run it with \
            `cargo test --test real_spin -- --ignored`"]
fn redis_contention_with_one_instance_killed_leaves_the_store_consistent() {
    use scim_edge_host_tests::contention::{self, Workload};

    if !require("redis_contention_with_one_instance_killed_leaves_the_store_consistent", Need::SpinAndRedis) {
        return;
    }
    let mut pair = RedisPair::start("redis-kill");
    let conn = connect(&pair.apps[0], "contended");
    let workload = Workload::default();
    let total = workload.clients * workload.ops_per_client;
    let sent = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let started = Instant::now();
    let (a, b) = (&pair.apps[0], &pair.apps[1]);
    let b_pid = b.pid().expect("spin-b runs");
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            while sent.load(Ordering::SeqCst) < total / 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            spin_cli::send_signal_group(b_pid, "KILL");
            killed.store(true, Ordering::SeqCst);
        });
        contention::run(&conn.base_path, &conn.token, &workload, |req| {
            let n = sent.fetch_add(1, Ordering::SeqCst);
            let first = if n.is_multiple_of(2) || killed.load(Ordering::SeqCst) { a } else { b };
            match first.try_send(&req) {
                Ok(res) => Ok(res),
                // Killed under it: the request goes to the survivor (a retry, as Entra's).
                Err(_) => Ok(a.try_send(&req)?),
            }
        })
    });
    let outcome = outcome.unwrap();
    let mut rep = Report::new("spin-redis-kill");
    report!(
        rep,
        "spin on redis: {} clients × {} ops in {:?}, spin-b SIGKILLed after {} requests: {outcome}",
        workload.clients,
        workload.ops_per_client,
        started.elapsed(),
        total / 3
    );
    assert!(outcome.unexpected.is_empty(), "unexpected answers:\n{}", outcome.unexpected.join("\n"));
    report!(
        rep,
        "claims won by a killed creator, their key never written: {:?}",
        claims_without_key(&pair.redis)
    );
    pair.apps[1].kill(); // reaps the killed process
    pair.apps[1].start_again();
    for app in &pair.apps {
        let users = contention::check_through_the_api(&conn.base_path, &conn.token, &outcome, |req| {
            Ok(app.send(&req))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", app.fsck().1));
        assert_fsck_clean(app, Some(users), true);
        report!(rep, "through 127.0.0.1:{}: {} users as the API shows them, fsck clean", app.port, users);
    }
    for app in &pair.apps {
        app.assert_log_clean();
    }
}

/// A key whose creator won its claim and died before writing it (what a SIGKILL can leave,
/// see `plugin/spin/src/store.rs`) is taken over by a create once a creator first found it so
/// 30 s earlier; before that, creates of it are refused and change nothing.
#[test]
fn redis_a_key_claimed_by_a_creator_that_died_is_taken_over() {
    use scim_edge_core::keys::{self, Index};
    if !require("redis_a_key_claimed_by_a_creator_that_died_is_taken_over", Need::SpinAndRedis) {
        return;
    }
    let dir = temp_dir("redis-takeover");
    let redis = RedisServer::start(&dir.0);
    let backend = Backend::Redis { runtime_config: redis.runtime_config(&dir.0), addr: redis.addr() };
    let app = SpinApp::start(&dir.0, "spin", backend);
    let conn = connect(&app, "acme");
    let mut r = redis.client();
    let users = format!("{}/Users", conn.base_path);
    let create = |name: &str| app.call("POST", &users, Some(&conn.token), Some(&user_body(name)));
    // The userName entry of the next user, claimed by a creator that died.
    let name = "late@example.com";
    let entry = keys::index("acme", Index::UserName, name);
    r.cmd(&[b"SET", format!("claim/{entry}").as_bytes(), b"1"]).unwrap();
    let (s, e) = create(name);
    assert_ne!(s, 201, "refused while the claim is fresh: {e}");
    let seen = format!("claimseen/{entry}");
    assert!(r.keys().unwrap().contains(&seen), "the first refusal notes when it saw the claim");
    let (_, found) =
        app.call("GET", &format!("{users}?filter=userName%20eq%20%22{name}%22"), Some(&conn.token), None);
    assert_eq!(found["totalResults"], 0, "a refused create changes nothing: {found}");
    // Noticed a minute ago: the next create takes the entry over.
    let a_minute_ago =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() - 60_000;
    r.cmd(&[b"SET", seen.as_bytes(), a_minute_ago.to_string().as_bytes()]).unwrap();
    let (s, u) = create(name);
    assert_eq!(s, 201, "{u}");
    let (_, found) =
        app.call("GET", &format!("{users}?filter=userName%20eq%20%22{name}%22"), Some(&conn.token), None);
    assert_eq!(found["Resources"][0]["id"], u["id"], "{found}");
    assert_fsck_clean(&app, Some(1), false);
    app.assert_log_clean();
}

/// Redis keeps the data across restarts of the instances (and the restarted one serves it).
#[test]
fn redis_instances_restarted_serve_the_same_data() {
    if !require("redis_instances_restarted_serve_the_same_data", Need::SpinAndRedis) {
        return;
    }
    let mut pair = RedisPair::start("redis-restart");
    let conn = connect(&pair.apps[0], "acme");
    populate(&pair.apps[1], &conn);
    let before = snapshot(&pair.apps[0], &conn);
    for app in &mut pair.apps {
        app.stop();
    }
    pair.apps[1].start_again();
    assert_eq!(snapshot(&pair.apps[1], &conn), before, "after both stopped");
    pair.apps[1].kill();
    pair.apps[1].start_again();
    assert_eq!(snapshot(&pair.apps[1], &conn), before, "after SIGKILL");
    assert_fsck_clean(&pair.apps[1], None, false);
}
