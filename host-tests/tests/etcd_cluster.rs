//! Envoy on a three-member etcd cluster, in the real Envoy and the real etcd: two Envoys run
//! the Entra lifecycle for many users while the etcd leader is SIGKILLed, later a follower,
//! both are started again, and a member is paused (SIGSTOP) for longer than the callout
//! timeout. Afterwards every answer is checked against the store: every user whose create got
//! 201 exists exactly once, no user exists whose create failed, every 2xx write is visible,
//! group memberships agree with the users, and `scim-edge-fsck` finds the store consistent.
//! Requests may fail only with 503 + `Retry-After` (what Entra retries), never 500; the test
//! prints how many did and over what window.
//!
//! The members run with `--heartbeat-interval 50 --election-timeout 500` (elections in well
//! under a second; etcd's defaults are 100/1000) and `--unsafe-no-fsync`: the test kills
//! processes, not the machine, and a killed process loses nothing the kernel already has, so
//! fsync only slows the test down. `SCIM_EDGE_CHAOS_USERS` sets the number of users (default
//! 3,000, a few thousand as a real first sync: about four minutes on a 2-vCPU machine; 800 took
//! 63 s there).

// A test fails loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../src/envoy/mod.rs"]
mod envoy;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use envoy::procs::{render_config_members, EtcdCluster};
use envoy::{
    client, filter_wasm, group_body, request, tenant_with_connection, user_body, Connection, Envoy, TempDir,
};
use scim_edge_host_tests::report;
use scim_edge_host_tests::report::Report;
use serde_json::{json, Value};

const CLIENTS: usize = 16;
/// Users are spread over tenants (each an Entra app with its own connection), so that the
/// tenants' user lists, each changed by one request at a time, do not bound the load.
const TENANTS: usize = 4;
/// Groups per tenant.
const GROUPS: usize = 2;
/// The callout timeout: a paused member holds an attempt this long.
const TIMEOUT_MS: u64 = 1000;
/// Retries on other members for this long after a request started.
const DEADLINE_MS: u64 = 8000;
/// How long a member stays paused: longer than the callout timeout.
const PAUSE: Duration = Duration::from_millis(2500);
/// Tries of one non-create request while it is answered 503 (as Entra retries).
const TRIES: usize = 30;

fn users() -> usize {
    std::env::var("SCIM_EDGE_CHAOS_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
}

/// What the clients learnt about one user.
#[derive(Debug, Default, Clone)]
struct User {
    name: String,
    tenant: usize,
    /// The create's status.
    create: u16,
    id: Option<String>,
    /// `Some(v)`: the last 2xx write left this; `None`: never written, or its fate unknown.
    display_name: Option<String>,
    active: Option<bool>,
    /// `Some(true)`: deleted by a 2xx (or a 404 after a 503'd try).
    deleted: Option<bool>,
    /// (group index, member?) after the last membership change that got a 2xx.
    member: Option<(usize, bool)>,
}

/// Every answer that was not a success.
#[derive(Default)]
struct Failures {
    /// (ms since start, what) of each 503 with Retry-After.
    unavailable: Vec<(u128, String)>,
    /// Anything else: a 500, a 503 without Retry-After, an unexpected status.
    unexpected: Vec<String>,
}

/// One tenant's SCIM connection and groups.
struct Tenant {
    conn: Connection,
    groups: Vec<String>,
}

struct Load<'a> {
    envoys: &'a [Envoy],
    tenants: &'a [Tenant],
    started: Instant,
    sent: AtomicUsize,
    failures: Mutex<Failures>,
}

impl Load<'_> {
    /// One request through the next Envoy (they alternate): status and JSON body; a 503 is
    /// recorded, and must carry Retry-After.
    fn send(&self, t: &Tenant, what: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let n = self.sent.fetch_add(1, Ordering::SeqCst);
        let envoy = &self.envoys[n % self.envoys.len()];
        let full = format!("{}{path}", t.conn.base_path);
        let res = envoy.send(&request(method, &full, Some(&t.conn.token), body));
        let status = res.status().as_u16();
        let json = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
        if status == 503 {
            let mut f = self.failures.lock().unwrap();
            if res.headers().contains_key("retry-after") && json["status"] == "503" {
                let detail = json["detail"].as_str().unwrap_or_default();
                f.unavailable.push((self.started.elapsed().as_millis(), format!("{what}: {detail}")));
            } else {
                f.unexpected.push(format!("{what}: 503 without Retry-After or a SCIM body: {json}"));
            }
        } else if status >= 500 {
            self.failures.lock().unwrap().unexpected.push(format!("{what}: {status} {json}"));
        }
        (status, json)
    }

    /// A request that is retried while answered 503, as Entra does (after a short wait, not
    /// the Retry-After second: the test has a budget). The last status, and whether an
    /// earlier try was a 503 (then its fate is unknown).
    fn retried(
        &self,
        t: &Tenant,
        what: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value, bool) {
        let mut saw_503 = false;
        for _ in 0..TRIES {
            let (status, json) = self.send(t, what, method, path, body);
            if status != 503 {
                return (status, json, saw_503);
            }
            saw_503 = true;
            std::thread::sleep(Duration::from_millis(100));
        }
        (503, Value::Null, true)
    }

    fn unexpected(&self, what: String) {
        self.failures.lock().unwrap().unexpected.push(what);
    }

    /// The Entra lifecycle of user `i`, in tenant `i % TENANTS`.
    fn lifecycle(&self, i: usize) -> User {
        let t = &self.tenants[i % TENANTS];
        let name = format!("chaos-{i}@example.com");
        let mut user = User { name: name.clone(), tenant: i % TENANTS, ..User::default() };
        // Create: not retried, so that a failed create can be checked to have left nothing.
        let (status, created) = self.send(t, "create", "POST", "/Users", Some(&user_body(&name)));
        user.create = status;
        if status != 201 {
            if status != 503 {
                self.unexpected(format!("create {name}: {status} {created}"));
            }
            return user;
        }
        let Some(id) = created["id"].as_str().map(str::to_owned) else {
            self.unexpected(format!("create {name}: no id in {created}"));
            return user;
        };
        user.id = Some(id.clone());
        let path = format!("/Users/{id}");

        let (s, got, _) = self.retried(t, "get", "GET", &path, None);
        if s != 200 || got["userName"] != name.as_str() {
            self.unexpected(format!("get {name}: {s} {got}"));
        }

        let display = format!("Updated {i}");
        let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "Replace", "path": "displayName", "value": display}]});
        match self.retried(t, "update", "PATCH", &path, Some(&ops)) {
            (200 | 204, _, _) => user.display_name = Some(display),
            (503, _, _) => {}
            (s, v, _) => self.unexpected(format!("update {name}: {s} {v}")),
        }

        if i.is_multiple_of(3) {
            let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                             "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
            match self.retried(t, "disable", "PATCH", &path, Some(&ops)) {
                (200 | 204, _, _) => user.active = Some(false),
                (503, _, _) => {}
                (s, v, _) => self.unexpected(format!("disable {name}: {s} {v}")),
            }
        } else {
            user.active = Some(true);
        }

        let g = (i / TENANTS) % GROUPS;
        let group_path = format!("/Groups/{}", t.groups[g]);
        let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "Add", "path": "members", "value": [{"value": id}]}]});
        match self.retried(t, "member-add", "PATCH", &group_path, Some(&add)) {
            (200 | 204, _, _) => user.member = Some((g, true)),
            (503, _, _) => {}
            (s, v, _) => self.unexpected(format!("member-add {name}: {s} {v}")),
        }
        if i % 4 == 1 && user.member.is_some() {
            let remove = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                "Operations": [{"op": "Remove", "path": format!("members[value eq \"{id}\"]")}]});
            match self.retried(t, "member-remove", "PATCH", &group_path, Some(&remove)) {
                (200 | 204, _, _) => user.member = Some((g, false)),
                (503, _, _) => user.member = None,
                (s, v, _) => self.unexpected(format!("member-remove {name}: {s} {v}")),
            }
        }

        if i % 5 == 2 {
            match self.retried(t, "delete", "DELETE", &path, None) {
                (204, _, _) => user.deleted = Some(true),
                // The 503'd try did delete it.
                (404, _, true) => user.deleted = Some(true),
                (503, _, _) => {}
                (s, v, _) => self.unexpected(format!("delete {name}: {s} {v}")),
            }
        } else {
            user.deleted = Some(false);
        }
        user
    }
}

/// The chaos, step by step as the load progresses (so each happens under load whatever the
/// machine's speed): (fraction of users done, what).
#[derive(Clone, Copy, Debug)]
enum Chaos {
    KillLeader,
    RestartKilled,
    KillFollower,
    PauseLeader,
}

const SCHEDULE: [(f64, Chaos); 5] = [
    (0.10, Chaos::KillLeader),
    (0.25, Chaos::RestartKilled),
    (0.40, Chaos::KillFollower),
    (0.55, Chaos::RestartKilled),
    (0.70, Chaos::PauseLeader),
];

fn fsck(port: u16) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scim-edge-fsck"))
        .args(["--etcd", &format!("http://127.0.0.1:{port}")])
        .output()
        .expect("run scim-edge-fsck");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The users of one tenant as the clients saw them, against what the tenant holds.
fn check_tenant<'a>(envoy: &Envoy, tenant: &Tenant, users: impl Iterator<Item = &'a User>) {
    let conn = &tenant.conn;
    let get =
        |path: &str| envoy::call(envoy, "GET", &format!("{}{path}", conn.base_path), Some(&conn.token), None);
    let find = |name: &str| {
        let filter = format!("/Users?filter=userName%20eq%20%22{}%22", name.replace('@', "%40"));
        let (s, v) = get(&filter);
        assert_eq!(s, 200, "{v}");
        v["Resources"].as_array().cloned().unwrap_or_default()
    };
    let mut live = 0;
    let mut should_be_members: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut unknown_members: BTreeSet<String> = BTreeSet::new();
    for u in users {
        let found = find(&u.name);
        if u.create != 201 {
            assert!(
                found.is_empty(),
                "{}: its create failed ({}), yet it exists: {found:?}",
                u.name,
                u.create
            );
            continue;
        }
        let id = u.id.clone().unwrap();
        match u.deleted {
            Some(true) => {
                assert!(found.is_empty(), "{}: deleted (2xx), yet found: {found:?}", u.name);
                assert_eq!(get(&format!("/Users/{id}")).0, 404, "{}", u.name);
                continue;
            }
            Some(false) => assert_eq!(found.len(), 1, "{}: created once, found {found:?}", u.name),
            None => assert!(found.len() <= 1, "{}: found {found:?}", u.name),
        }
        let Some(rec) = found.first() else { continue };
        live += 1;
        assert_eq!(rec["id"], id.as_str(), "{}", u.name);
        if let Some(d) = &u.display_name {
            assert_eq!(rec["displayName"], d.as_str(), "{}: a 2xx update is visible", u.name);
        }
        if let Some(a) = u.active {
            assert_eq!(rec["active"], a, "{}: a 2xx disable is visible", u.name);
        }
        match u.member {
            Some((g, true)) => {
                should_be_members.entry(g).or_default().insert(id);
            }
            Some((_, false)) => {}
            None => {
                unknown_members.insert(id);
            }
        }
    }
    let (s, all) = get("/Users?count=1");
    assert_eq!(s, 200);
    assert_eq!(all["totalResults"], live, "the tenant holds exactly the users that should be there");
    for (g, gid) in tenant.groups.iter().enumerate() {
        let (s, v) = get(&format!("/Groups/{gid}"));
        assert_eq!(s, 200, "{v}");
        let members: BTreeSet<String> = v["members"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["value"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let want = should_be_members.remove(&g).unwrap_or_default();
        let missing: Vec<_> = want.difference(&members).collect();
        let extra: Vec<_> = members.difference(&want).filter(|id| !unknown_members.contains(*id)).collect();
        assert!(missing.is_empty() && extra.is_empty(), "group {g}: missing {missing:?}, extra {extra:?}");
    }
}

#[test]
fn three_members_killed_and_paused_under_the_lifecycle_lose_nothing() {
    let users = users();
    let dir = TempDir::new("cluster");
    let cluster = Mutex::new(EtcdCluster::start(
        &dir.0,
        3,
        &["--heartbeat-interval", "50", "--election-timeout", "500", "--unsafe-no-fsync"],
    ));
    let ports = cluster.lock().unwrap().client_ports();
    let echo = client::Echo::start();
    let config = envoy::etcd_cluster_config(ports[0], TIMEOUT_MS, DEADLINE_MS);
    let envoys: Vec<Envoy> = (0..2)
        .map(|i| {
            let p = Envoy::fresh_ports();
            let yaml = render_config_members(p, echo.port, &ports, filter_wasm(), &config);
            Envoy::start(&dir.0, &format!("envoy{i}"), &yaml, p)
        })
        .collect();
    let tenants: Vec<Tenant> = (0..TENANTS)
        .map(|t| {
            let conn = tenant_with_connection(&envoys[0], &format!("chaos{t}"));
            let groups = (0..GROUPS)
                .map(|g| {
                    let (s, v) = envoy::call(
                        &envoys[1],
                        "POST",
                        &format!("{}/Groups", conn.base_path),
                        Some(&conn.token),
                        Some(&group_body(&format!("Chaos {g}"))),
                    );
                    assert_eq!(s, 201, "{v}");
                    v["id"].as_str().unwrap().to_owned()
                })
                .collect();
            Tenant { conn, groups }
        })
        .collect();

    let load = Load {
        envoys: &envoys,
        tenants: &tenants,
        started: Instant::now(),
        sent: AtomicUsize::new(0),
        failures: Mutex::default(),
    };
    let done = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<User>> = Mutex::default();
    let events: Mutex<Vec<(u128, String)>> = Mutex::default();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut killed: Option<usize> = None;
            for (at, step) in SCHEDULE {
                while (done.load(Ordering::SeqCst) as f64) < at * users as f64 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let mut cluster = cluster.lock().unwrap();
                let note =
                    |what: String| events.lock().unwrap().push((load.started.elapsed().as_millis(), what));
                match step {
                    Chaos::KillLeader => {
                        let l = cluster.leader();
                        cluster.members[l].kill();
                        killed = Some(l);
                        note(format!("SIGKILL leader m{l}"));
                    }
                    Chaos::KillFollower => {
                        let l = cluster.leader();
                        let f = (l + 1) % cluster.members.len();
                        cluster.members[f].kill();
                        killed = Some(f);
                        note(format!("SIGKILL follower m{f}"));
                    }
                    Chaos::RestartKilled => {
                        let k = killed.take().unwrap();
                        cluster.restart(k);
                        note(format!("m{k} restarted and healthy"));
                    }
                    Chaos::PauseLeader => {
                        let l = cluster.leader();
                        cluster.members[l].pause();
                        note(format!("SIGSTOP leader m{l}"));
                        std::thread::sleep(PAUSE);
                        cluster.members[l].resume();
                        note(format!("SIGCONT m{l}"));
                    }
                }
            }
        });
        for _ in 0..CLIENTS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= users {
                    break;
                }
                let user = load.lifecycle(i);
                results.lock().unwrap().push(user);
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let took = load.started.elapsed();
    let cluster = cluster.into_inner().unwrap();
    cluster.wait_all_healthy();
    let users_seen = results.into_inner().unwrap();
    let failures = load.failures.into_inner().unwrap();

    // The report.
    let mut rep = Report::new("etcd-cluster-chaos");
    let created = users_seen.iter().filter(|u| u.create == 201).count();
    report!(
        rep,
        "etcd cluster chaos: {} users, {} requests through 2 Envoys in {took:.1?}; creates: {created} × 201, {} × 503",
        users_seen.len(),
        load.sent.load(Ordering::SeqCst),
        users_seen.iter().filter(|u| u.create == 503).count()
    );
    for (ms, what) in events.into_inner().unwrap() {
        report!(rep, "  {:>7.3} s  {what}", ms as f64 / 1000.0);
    }
    let by_kind = failures.unavailable.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, (_, w)| {
        *m.entry(w.as_str()).or_default() += 1;
        m
    });
    match (failures.unavailable.first(), failures.unavailable.last()) {
        (Some((first, _)), Some((last, _))) => report!(
            rep,
            "  503 + Retry-After: {} answers ({by_kind:?}), from {:.3} s to {:.3} s",
            failures.unavailable.len(),
            *first as f64 / 1000.0,
            *last as f64 / 1000.0
        ),
        _ => report!(rep, "  503 + Retry-After: none"),
    }
    // How Envoy balanced the etcd calls.
    for (i, e) in envoys.iter().enumerate() {
        let names = [
            "upstream_rq_total",
            "upstream_cx_connect_fail",
            "upstream_rq_timeout",
            "upstream_rq_503",
            "lb_healthy_panic",
            "health_check.failure",
            "outlier_detection.ejections_enforced_total",
        ];
        let counts: Vec<String> = names
            .iter()
            .map(|n| format!("{n} {}", e.counter(&format!("cluster.etcd.{n}")).unwrap_or(0)))
            .collect();
        report!(rep, "  envoy{i} cluster etcd: {}", counts.join(", "));
    }
    // Why, as the filter logged it (the store's failures are logged, never sent to clients).
    for (i, e) in envoys.iter().enumerate() {
        let log = std::fs::read_to_string(&e.log).unwrap_or_default();
        let failed: Vec<&str> = log.lines().filter(|l| l.contains("scim-edge: store")).collect();
        for line in failed.iter().take(3) {
            let at = line.find("scim-edge: store").unwrap_or(0);
            report!(rep, "  envoy{i}: {}", &line[at..]);
        }
        if failed.len() > 3 {
            report!(rep, "  envoy{i}: … {} store failures logged in all", failed.len());
        }
    }
    assert!(
        failures.unexpected.is_empty(),
        "answers other than 2xx and 503 + Retry-After:\n{}",
        failures.unexpected.join("\n")
    );

    // Every answer against the store, through the first Envoy.
    for (t, tenant) in tenants.iter().enumerate() {
        check_tenant(&envoys[0], tenant, users_seen.iter().filter(|u| u.tenant == t));
    }
    for port in &ports {
        let (code, text) = fsck(*port);
        let summary: Vec<&str> = text.lines().filter(|l| !l.starts_with("garbage")).take(6).collect();
        report!(rep, "  fsck via 127.0.0.1:{port}: exit {code}: {}", summary.join(" | "));
        assert_eq!(code, 0, "fsck found errors:\n{text}");
    }
    for e in &envoys {
        e.assert_log_clean();
    }
}
