//! A workload of conflicting SCIM operations for any host: many clients at once creating,
//! renaming (`PUT` with another `userName`), disabling, re-enabling and deleting users and
//! adding and removing group members, all over a handful of `userName`s, `externalId`s and
//! groups, so that nearly every request races another one on the same keys.
//!
//! The host is a blocking `send` function (each client is an OS thread); the caller checks
//! the store afterwards with `scim_edge_core::consistency` / `scim-edge-fsck`. [`run`] itself
//! checks every answer: a status the operation may give under contention, and a SCIM error
//! body for every error.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier, Mutex};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use serde_json::{json, Value};

/// Shape of a run.
#[derive(Clone, Debug)]
pub struct Workload {
    pub clients: usize,
    pub ops_per_client: usize,
    /// Distinct `userName`s (and as many `externalId`s) the clients fight over.
    pub user_names: usize,
    pub groups: usize,
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload { clients: 8, ops_per_client: 40, user_names: 6, groups: 3, seed: 0x5c1e_ed9e }
    }
}

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// (operation, status) → how many.
    pub statuses: BTreeMap<(&'static str, u16), usize>,
    /// Answers no operation may give (a 500, a 2xx of the wrong kind, a non-SCIM error body).
    pub unexpected: Vec<String>,
    pub group_ids: Vec<String>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut op = "";
        for ((name, status), n) in &self.statuses {
            if *name != op {
                write!(f, "{}{name}:", if op.is_empty() { "" } else { "; " })?;
                op = name;
            }
            write!(f, " {status}×{n}")?;
        }
        Ok(())
    }
}

/// splitmix64: a deterministic stream per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn request(
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<http::Request<Bytes>> {
    let b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "scim-edge.test")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json");
    Ok(b.body(body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string())))?)
}

/// Statuses an operation may answer while others race it. 503 is the core's answer when a
/// list's lease stays taken ("too many concurrent changes") and 409 without `uniqueness` when
/// compare-and-swap retries ran out; both are "retry", which Entra does.
fn allowed(op: &str, status: u16) -> bool {
    match (op, status) {
        (_, 503) => true,
        ("create", s) => matches!(s, 201 | 409),
        ("rename", s) => matches!(s, 200 | 404 | 409),
        ("disable" | "enable", s) => matches!(s, 200 | 204 | 404 | 409),
        ("delete", s) => matches!(s, 204 | 404 | 409),
        // A member that does not exist (deleted meanwhile) is a 400.
        ("add member" | "remove member", s) => matches!(s, 200 | 204 | 400 | 404 | 409),
        _ => false,
    }
}

/// Creates the groups, then runs the clients against `base` (`/scim/v2/{connection}`).
pub fn run<F>(base: &str, token: &str, workload: &Workload, send: F) -> anyhow::Result<Outcome>
where
    F: Fn(http::Request<Bytes>) -> anyhow::Result<http::Response<Bytes>> + Sync,
{
    let mut group_ids = Vec::new();
    for g in 0..workload.groups {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                          "displayName": format!("Contended {g}"), "externalId": format!("group-{g}")});
        let res = send(request("POST", &format!("{base}/Groups"), token, Some(&body))?)?;
        anyhow::ensure!(
            res.status() == 201,
            "POST group: {} {}",
            res.status(),
            String::from_utf8_lossy(res.body())
        );
        let v: Value = serde_json::from_slice(res.body())?;
        group_ids.push(v.get("id").and_then(Value::as_str).context("group id")?.to_owned());
    }

    let ids: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let outcome = Mutex::new(Outcome { group_ids: group_ids.clone(), ..Outcome::default() });
    let start = Arc::new(Barrier::new(workload.clients));
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..workload.clients)
            .map(|client| {
                let (start, ids, outcome, group_ids, send) = (start.clone(), &ids, &outcome, &group_ids, &send);
                s.spawn(move || -> anyhow::Result<()> {
                    let mut rng = Rng(workload.seed ^ (client as u64).wrapping_mul(0x1000_0000_01b3));
                    start.wait();
                    for _ in 0..workload.ops_per_client {
                        let pick_id = |rng: &mut Rng| -> Option<String> {
                            let ids = ids.lock().ok()?;
                            ids.get(rng.below(ids.len())).cloned()
                        };
                        let user_name = format!("Person{}@Example.com", rng.below(workload.user_names));
                        let external_id = format!("ext-{}", rng.below(workload.user_names));
                        let group = group_ids.get(rng.below(group_ids.len())).context("no groups")?;
                        let roll = rng.below(100);
                        let (op, req) = match (roll, pick_id(&mut rng)) {
                            (0..25, _) | (_, None) => {
                                let body = json!({"schemas": [USER], "userName": user_name,
                                                  "externalId": external_id, "active": true});
                                ("create", request("POST", &format!("{base}/Users"), token, Some(&body))?)
                            }
                            (25..45, Some(id)) => {
                                let body = json!({"schemas": [USER], "userName": user_name,
                                                  "externalId": external_id, "active": rng.below(2) == 0,
                                                  "displayName": format!("renamed by {client}")});
                                ("rename", request("PUT", &format!("{base}/Users/{id}"), token, Some(&body))?)
                            }
                            (45..60, Some(id)) => {
                                let disable = rng.below(2) == 0;
                                let value = if disable { json!("False") } else { json!(true) };
                                let body = json!({"schemas": [PATCH],
                                                  "Operations": [{"op": "Replace", "path": "active", "value": value}]});
                                (
                                    if disable { "disable" } else { "enable" },
                                    request("PATCH", &format!("{base}/Users/{id}"), token, Some(&body))?,
                                )
                            }
                            (60..70, Some(id)) => {
                                ("delete", request("DELETE", &format!("{base}/Users/{id}"), token, None)?)
                            }
                            (70..85, Some(id)) => {
                                let body = json!({"schemas": [PATCH],
                                                  "Operations": [{"op": "Add", "path": "members", "value": [{"value": id}]}]});
                                ("add member", request("PATCH", &format!("{base}/Groups/{group}"), token, Some(&body))?)
                            }
                            (_, Some(id)) => {
                                // Both dialects: a filtered path, or Entra's value list.
                                let op = if rng.below(2) == 0 {
                                    json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")})
                                } else {
                                    json!({"op": "Remove", "path": "members", "value": [{"value": id}]})
                                };
                                let body = json!({"schemas": [PATCH], "Operations": [op]});
                                ("remove member", request("PATCH", &format!("{base}/Groups/{group}"), token, Some(&body))?)
                            }
                        };
                        let what = format!("{op} {} {}", req.method(), req.uri());
                        let res = send(req).with_context(|| what.clone())?;
                        let status = res.status().as_u16();
                        let body: Value = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
                        if status == 201 {
                            if let (Some(id), Ok(mut ids)) = (body.get("id").and_then(Value::as_str), ids.lock()) {
                                ids.push(id.to_owned());
                            }
                        }
                        let mut out = outcome.lock().map_err(|_| anyhow!("poisoned"))?;
                        *out.statuses.entry((op, status)).or_default() += 1;
                        let scim_error = body.get("schemas")
                            == Some(&json!(["urn:ietf:params:scim:api:messages:2.0:Error"]))
                            && body.get("status") == Some(&json!(status.to_string()));
                        if !allowed(op, status) || (status >= 400 && !scim_error) {
                            out.unexpected.push(format!("{what}: {status} {body}"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow!("a client thread panicked"))??;
        }
        Ok(())
    })?;
    outcome.into_inner().map_err(|_| anyhow!("poisoned"))
}

/// What the API shows after the run, checked from outside: `totalResults` agrees with the
/// listing, no `userName` twice, each `userName` found by filter is the listed user, each
/// `externalId` (shared by default: RFC 7643 does not make it unique) found by filter is
/// exactly the listed users that have it, and every group member is a listed user. Returns
/// the number of users.
pub fn check_through_the_api<F>(base: &str, token: &str, outcome: &Outcome, send: F) -> anyhow::Result<usize>
where
    F: Fn(http::Request<Bytes>) -> anyhow::Result<http::Response<Bytes>>,
{
    let get = |path: String| -> anyhow::Result<Value> {
        let res = send(request("GET", &path, token, None)?)?;
        anyhow::ensure!(
            res.status() == 200,
            "GET {path}: {} {}",
            res.status(),
            String::from_utf8_lossy(res.body())
        );
        Ok(serde_json::from_slice(res.body())?)
    };
    let list = get(format!("{base}/Users?count=1000"))?;
    let users = list.get("Resources").and_then(Value::as_array).cloned().unwrap_or_default();
    anyhow::ensure!(list.get("totalResults") == Some(&json!(users.len())), "totalResults disagrees: {list}");
    let mut names = BTreeMap::new();
    let mut external = BTreeMap::new();
    for u in &users {
        let id = u.get("id").and_then(Value::as_str).context("id")?;
        let name = u.get("userName").and_then(Value::as_str).context("userName")?.to_lowercase();
        if let Some(other) = names.insert(name.clone(), id.to_owned()) {
            anyhow::bail!("userName {name} twice: {other} and {id}");
        }
        if let Some(ext) = u.get("externalId").and_then(Value::as_str) {
            external
                .entry(ext.to_owned())
                .or_insert_with(std::collections::BTreeSet::new)
                .insert(id.to_owned());
        }
        let q = format!("{base}/Users?filter=userName%20eq%20%22{}%22", name.replace('@', "%40"));
        let found = get(q)?;
        anyhow::ensure!(
            found.get("totalResults") == Some(&json!(1))
                && found.pointer("/Resources/0/id").and_then(Value::as_str) == Some(id),
            "userName {name} finds {found}, listed as {id}"
        );
    }
    for (ext, ids) in &external {
        let found = get(format!("{base}/Users?filter=externalId%20eq%20%22{ext}%22&count=1000"))?;
        let found_ids: std::collections::BTreeSet<String> = found
            .get("Resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|u| u.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        anyhow::ensure!(
            &found_ids == ids && found.get("totalResults") == Some(&json!(ids.len())),
            "externalId {ext} finds {found}, listed for {ids:?}"
        );
    }
    for g in &outcome.group_ids {
        let group = get(format!("{base}/Groups/{g}"))?;
        for m in group.get("members").and_then(Value::as_array).into_iter().flatten() {
            let id = m.get("value").and_then(Value::as_str).context("member value")?;
            anyhow::ensure!(
                names.values().any(|v| v == id),
                "group {g} lists {id}, which is not a listed user"
            );
        }
    }
    Ok(users.len())
}
