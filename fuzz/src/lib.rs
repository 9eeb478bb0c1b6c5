//! The `handle_request` fuzz target's harness: a script of HTTP requests, decoded from the
//! fuzzer's bytes with `arbitrary`, played through `scim_edge_core::handle` over a
//! `MemStore` that already holds two tenants with SCIM connections, users and a group.
//!
//! # Input format
//! A script is up to [`MAX_STEPS`] steps; each step is read from the bytes as
//!
//! ```text
//! flags: u8   bits 0-1 auth: 0 this tenant's SCIM token, 1 admin token, 2 none, 3 the other tenant's token
//!             bits 2-3 clock: +0, +1 s, +61 s, +1 h before the request
//! fault: u8   0..=223 none; 224..=254 the store goes down after (fault - 224) operations;
//!             255 the store is down for the whole request (it is back for the next step)
//! method, uri, headers, body: each a u16 little-endian length and that many bytes (UTF-8, lossy)
//! ```
//!
//! so the fuzzer's mutations of text stay text. Placeholders in `uri`, `headers` and `body`
//! are replaced by the run's real values, so most inputs get past authentication and name
//! resources that exist: `$C`/`$K` this tenant's connection id and token, `$A` the admin
//! token, `$T` this tenant, `$C2`/`$K2`/`$T2` the other tenant's, `$U0`-`$U9` and
//! `$G0`-`$G9` this tenant's users and groups in creation order (two users and one group are
//! there from the start), `$V0`/`$W0` the other tenant's user and group. A `uri` that does not
//! start with `/` is relative to this tenant's SCIM base `/scim/v2/$C/`. `headers` is
//! `name: value` lines; an `authorization` line there replaces the one from `flags`.
//!
//! `SCIM_EDGE_FUZZ_TRACE=1` prints every request and answer (to replay an artifact:
//! `SCIM_EDGE_FUZZ_TRACE=1 cargo +nightly fuzz run handle_request <artifact>`).
//!
//! The configuration has the rate limit on (10 requests/s, bursts of 20 per tenant), so a
//! long enough script at one instant meets a 429.
//!
//! # Oracles
//! - no panic, and no 500 (store failures are 503; nothing here can corrupt a record);
//! - every error body is a SCIM error whose `status` is the response's;
//! - a response authenticated as this tenant never carries the other tenant's data;
//! - the other tenant's keys change only through requests that authenticate as it or as the
//!   operator (but for its log's `signIn.refused` entries: refusals on its URL);
//! - after a run without store faults, [`scim_edge_core::consistency::check`] finds nothing,
//!   and after any run it finds no key outside the layout.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use scim_edge_core::consistency::{self, ProblemKind};
use scim_edge_core::testing::{FixedClock, MemStore, SeqRandom};
use scim_edge_core::{handle, Condition, Config, Env, Store};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const MAX_STEPS: usize = 12;
pub const ADMIN_TOKEN: &str = "fuzz-admin-token";
pub const TENANT: &str = "fuzz";
pub const OTHER: &str = "other";
/// The other tenant's user's `userName`: it must never appear in this tenant's answers.
pub const OTHER_MARKER: &str = "zz-other-tenant-user@other.example";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub flags: u8,
    pub fault: u8,
    pub method: String,
    pub uri: String,
    pub headers: String,
    pub body: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    pub steps: Vec<Step>,
}

fn text(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let len = usize::from(u16::arbitrary(u)?).min(u.len());
    Ok(String::from_utf8_lossy(u.bytes(len)?).into_owned())
}

impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut steps = Vec::new();
        while !u.is_empty() && steps.len() < MAX_STEPS {
            steps.push(Step {
                flags: u8::arbitrary(u)?,
                fault: u8::arbitrary(u)?,
                method: text(u)?,
                uri: text(u)?,
                headers: text(u)?,
                body: text(u)?,
            });
        }
        Ok(Script { steps })
    }
}

impl Script {
    /// The bytes that decode to this script (for writing seeds).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &self.steps {
            out.push(s.flags);
            out.push(s.fault);
            for t in [&s.method, &s.uri, &s.headers, &s.body] {
                let b = t.as_bytes();
                let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&b[..usize::from(len)]);
            }
        }
        out
    }
}

#[derive(Clone)]
struct Conn {
    id: String,
    token: String,
}

/// The pre-seeded world, built once per process and copied into each run's fresh store.
struct Template {
    entries: Vec<(String, Vec<u8>)>,
    clock: u64,
    conn: Conn,
    other: Conn,
    users: Vec<String>,
    groups: Vec<String>,
    other_user: String,
    other_group: String,
}

/// The world a script runs in.
pub struct World {
    store: MemStore,
    clock: FixedClock,
    random: SeqRandom,
    config: Config,
    conn: Conn,
    other: Conn,
    users: Vec<String>,
    groups: Vec<String>,
    other_user: String,
    other_group: String,
}

const BLOCK_ON: &str = "the core's futures complete without I/O over MemStore";

impl World {
    fn env(&self) -> Env<'_, MemStore> {
        Env { store: &self.store, clock: &self.clock, random: &self.random, config: &self.config }
    }

    fn send(&self, method: &str, uri: &str, token: &str, body: Value) -> (u16, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "scim.fuzz")
            .header("authorization", format!("Bearer {token}"))
            .body(if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) })
            .expect("a valid setup request");
        let res = scim_edge_core::testing::scenario::block_on(handle(req, &self.env())).expect(BLOCK_ON);
        (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(Value::Null))
    }

    fn connect(&self, tenant: &str) -> Conn {
        let (s, _) =
            self.send("PUT", &format!("/admin/v1/tenants/{tenant}"), ADMIN_TOKEN, json!({"name": tenant}));
        assert_eq!(s, 201, "setup: create tenant {tenant}");
        let (s, c) = self.send("POST", &format!("/admin/v1/tenants/{tenant}/scim"), ADMIN_TOKEN, Value::Null);
        assert_eq!(s, 201, "setup: generate SCIM for {tenant}");
        conn_of(&c).expect("setup: a connection")
    }

    fn create(&self, conn: &Conn, what: &str, body: Value) -> String {
        let (s, v) = self.send("POST", &format!("/scim/v2/{}/{what}", conn.id), &conn.token, body);
        assert_eq!(s, 201, "setup: create {what}: {v}");
        v["id"].as_str().expect("setup: an id").to_owned()
    }

    /// Two tenants with SCIM on; `fuzz` with users `$U0`, `$U1` and group `$G0` ∋ `$U0`;
    /// `other` with a user and a group holding it. Built through the API once per process,
    /// then copied key by key (ids come from another seed from then on, so new ones never
    /// collide with the copied ones).
    pub fn new() -> World {
        static TEMPLATE: OnceLock<Template> = OnceLock::new();
        let t = TEMPLATE.get_or_init(|| {
            let w = World::build();
            Template {
                entries: w.store.entries(),
                clock: scim_edge_core::Clock::now_millis(&w.clock),
                conn: w.conn.clone(),
                other: w.other.clone(),
                users: w.users.clone(),
                groups: w.groups.clone(),
                other_user: w.other_user.clone(),
                other_group: w.other_group.clone(),
            }
        });
        let store = MemStore::new();
        for (k, v) in &t.entries {
            scim_edge_core::testing::scenario::block_on(store.put(k, v, Condition::Any))
                .expect(BLOCK_ON)
                .expect("copying the template");
        }
        World {
            store,
            clock: FixedClock::new(t.clock),
            random: SeqRandom::new(2),
            config: config(),
            conn: t.conn.clone(),
            other: t.other.clone(),
            users: t.users.clone(),
            groups: t.groups.clone(),
            other_user: t.other_user.clone(),
            other_group: t.other_group.clone(),
        }
    }

    fn build() -> World {
        let config = config();
        let placeholder = Conn { id: String::new(), token: String::new() };
        let mut w = World {
            store: MemStore::new(),
            clock: FixedClock::default(),
            random: SeqRandom::new(1),
            config,
            conn: placeholder,
            other: Conn { id: String::new(), token: String::new() },
            users: Vec::new(),
            groups: Vec::new(),
            other_user: String::new(),
            other_group: String::new(),
        };
        w.conn = w.connect(TENANT);
        w.other = w.connect(OTHER);
        let conn = Conn { id: w.conn.id.clone(), token: w.conn.token.clone() };
        let u0 = w.create(
            &conn,
            "Users",
            json!({"userName": "alice@fuzz.example", "externalId": "ext-alice",
            "emails": [{"type": "work", "value": "alice@fuzz.example", "primary": true}],
            "name": {"givenName": "Alice", "familyName": "Fuzz"}}),
        );
        let u1 = w.create(&conn, "Users", json!({"userName": "bob@fuzz.example", "active": false}));
        let g0 = w.create(
            &conn,
            "Groups",
            json!({"displayName": "Fuzzers", "externalId": "grp-1",
            "members": [{"value": u0}]}),
        );
        w.users = vec![u0, u1];
        w.groups = vec![g0];
        let other = Conn { id: w.other.id.clone(), token: w.other.token.clone() };
        w.other_user =
            w.create(&other, "Users", json!({"userName": OTHER_MARKER, "externalId": "ext-other"}));
        w.other_group = w.create(
            &other,
            "Groups",
            json!({"displayName": "Other group", "members": [{"value": w.other_user}]}),
        );
        w
    }

    fn substitute(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let digit = after.as_bytes().get(1).filter(|b| b.is_ascii_digit()).map(|b| usize::from(b - b'0'));
            let fake = "00000000000000000000000000000000";
            let (value, used): (String, usize) = match (after.as_bytes().first(), digit) {
                (Some(b'C'), Some(2)) => (self.other.id.clone(), 2),
                (Some(b'K'), Some(2)) => (self.other.token.clone(), 2),
                (Some(b'T'), Some(2)) => (OTHER.to_owned(), 2),
                (Some(b'U'), Some(n)) => (self.users.get(n).map_or(fake, String::as_str).to_owned(), 2),
                (Some(b'G'), Some(n)) => (self.groups.get(n).map_or(fake, String::as_str).to_owned(), 2),
                (Some(b'V'), Some(_)) => (self.other_user.clone(), 2),
                (Some(b'W'), Some(_)) => (self.other_group.clone(), 2),
                (Some(b'C'), _) => (self.conn.id.clone(), 1),
                (Some(b'K'), _) => (self.conn.token.clone(), 1),
                (Some(b'A'), _) => (ADMIN_TOKEN.to_owned(), 1),
                (Some(b'T'), _) => (TENANT.to_owned(), 1),
                _ => ("$".to_owned(), 0),
            };
            out.push_str(&value);
            rest = &after[used..];
        }
        out.push_str(rest);
        out
    }

    fn other_keys(&self) -> Vec<(String, Vec<u8>)> {
        let prefix = format!("v1/t/{OTHER}/");
        let mut keys: Vec<_> =
            self.store.entries().into_iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
        keys.retain(|(k, _)| !k.contains("/lock/"));
        // A refused sign-in on the other tenant's URL is the other tenant's business: it is
        // noted in its log (`signIn.refused`, at most once a minute per reason), which moves
        // the log's head. Nothing else may change.
        let log_head = format!("{prefix}log/head");
        keys.retain(|(k, v)| {
            *k != log_head
                && !(k.starts_with(&format!("{prefix}log/s/"))
                    && serde_json::from_slice::<Value>(v).is_ok_and(|e| e["operation"] == "signIn.refused"))
        });
        keys
    }

    /// Plays one step; returns whether the store failed during it.
    fn step(&mut self, step: &Step) -> bool {
        self.clock.advance(match (step.flags >> 2) & 3 {
            0 => 0,
            1 => 1_000,
            2 => 61_000,
            _ => 3_600_000,
        });
        let auth = step.flags & 3;
        let uri = self.substitute(&step.uri);
        let uri = if uri.starts_with('/') { uri } else { format!("/scim/v2/{}/{uri}", self.conn.id) };
        let method = if step.method.is_empty() { "GET" } else { step.method.as_str() };
        let headers = self.substitute(&step.headers);
        let headers: Vec<(&str, &str)> =
            headers.lines().filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim(), v.trim())).collect();
        // The step's own authorization header wins over the one from `flags`.
        let header_auth = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
        let mut builder =
            http::Request::builder().method(method).uri(uri.as_str()).header("host", "scim.fuzz");
        let token = match auth {
            0 => Some(self.conn.token.as_str()),
            1 => Some(ADMIN_TOKEN),
            3 => Some(self.other.token.as_str()),
            _ => None,
        };
        if let (Some(t), false) = (token, header_auth) {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let Ok(req) = builder.body(Bytes::from(self.substitute(&step.body))) else { return false };
        let as_other = auth == 3 || auth == 1 || header_auth;
        let other_before = (!as_other).then(|| self.other_keys());

        match step.fault {
            255 => self.store.set_down(true),
            f @ 224..=254 => self.store.fail_after(Some(u64::from(f - 224))),
            _ => {}
        }
        let res = scim_edge_core::testing::scenario::block_on(handle(req, &self.env())).expect(BLOCK_ON);
        let faulted = self.store.is_down();
        self.store.set_down(false);
        self.store.fail_after(None);
        if faulted {
            // The client retries later: list leases a failed request left behind have expired
            // by then (waiting them out costs thousands of store round trips per step).
            self.clock.advance(3_000);
        }

        let status = res.status().as_u16();
        let body: Option<Value> = serde_json::from_slice(res.body()).ok();
        if std::env::var_os("SCIM_EDGE_FUZZ_TRACE").is_some() {
            let shown: String = String::from_utf8_lossy(res.body()).chars().take(300).collect();
            eprintln!("{status} {method} {uri} (fault {}, down {faulted}) {shown}", step.fault);
        }
        assert_ne!(status, 500, "500 for {step:?}: {}", String::from_utf8_lossy(res.body()));
        if status >= 400 {
            let b = body.as_ref().expect("an error has a JSON body");
            assert_eq!(b["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{b}");
            assert_eq!(b["status"].as_str(), Some(res.status().as_str()), "{b}");
        }
        if !as_other {
            let leaked = String::from_utf8_lossy(res.body()).contains(OTHER_MARKER);
            assert!(
                !leaked || step.uri.contains(OTHER_MARKER) || step.body.contains(OTHER_MARKER),
                "the other tenant's data in an answer to {step:?}"
            );
            if let Some(before) = other_before {
                assert!(before == self.other_keys(), "the other tenant's keys changed by {step:?}");
            }
        }
        self.learn(method, &uri, status, body.as_ref());
        faulted
    }

    /// Remembers what a successful request created or rotated.
    fn learn(&mut self, method: &str, uri: &str, status: u16, body: Option<&Value>) {
        let Some(body) = body else { return };
        if status == 201 && method.eq_ignore_ascii_case("POST") {
            if let Some(c) = conn_of(body) {
                if uri.contains(&format!("/tenants/{TENANT}/")) {
                    self.conn = c;
                } else if uri.contains(&format!("/tenants/{OTHER}/")) {
                    self.other = c;
                }
                return;
            }
            let id = body["id"].as_str().map(str::to_owned);
            match (body["meta"]["resourceType"].as_str(), id) {
                (Some("User"), Some(id)) if self.users.len() < 10 => self.users.push(id),
                (Some("Group"), Some(id)) if self.groups.len() < 10 => self.groups.push(id),
                _ => {}
            }
        }
    }

    /// Plays a script and checks the store afterwards.
    pub fn run(&mut self, script: &Script) {
        let mut faulted = false;
        for step in &script.steps {
            faulted |= self.step(step);
        }
        let report = consistency::check(self.store.entries());
        let unknown: Vec<_> = report.problems.iter().filter(|p| p.kind == ProblemKind::UnknownKey).collect();
        assert!(unknown.is_empty(), "keys outside the layout: {unknown:?}");
        if !faulted {
            assert!(report.problems.is_empty(), "inconsistent store after {script:?}:\n{report}");
        }
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

fn config() -> Config {
    let hash = hex::encode(Sha256::digest(ADMIN_TOKEN.as_bytes()));
    // The rate limit is on (and low) so that its path and its 429s are part of the traffic.
    let rate = r#""rateLimit": {"requestsPerSecond": 10, "burst": 20}"#;
    Config::from_json(&format!(r#"{{"adminTokenSha256":"{hash}", {rate}}}"#)).expect("config")
}

fn conn_of(v: &Value) -> Option<Conn> {
    let url = v["url"].as_str()?;
    let id = url.rsplit('/').next()?.to_owned();
    Some(Conn { id, token: v["token"].as_str()?.to_owned() })
}
