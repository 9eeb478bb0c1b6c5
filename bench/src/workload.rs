//! The workload: Microsoft Entra ID's provisioning requests, one phase per kind of request, each
//! checked for the status and the body fields that matter. A wrong status or body is an error.
//!
//! Users are named after the run prefix, so runs never collide on one server:
//! `{prefix}-u{i}@bench.example` (externalId `{prefix}-xu{i}`) for the measured users,
//! `{prefix}-s{i}@…` for the seeded ones, `{prefix}-w{i}@…` (never created) for the warm-up.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::bail;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::client::{encode, Conn, Reply};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The extra schema Entra puts on every group it creates (not an RFC schema).
const ADSCIM_GROUP: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Members per PATCH when seeding the large group (Entra batches membership changes too).
pub const SEED_MEMBERS_PER_PATCH: usize = 100;
/// `count` of the deep-page phase.
pub const PAGE_COUNT: usize = 100;

/// One kind of request. Phases run one after another; inside a phase, `--concurrency`
/// workers share the operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not measured: absent-user lookups before the first measured phase (V8 and caches warm up).
    Warmup,
    /// Seeds `--seed` users (measured and reported, but not part of the lifecycle).
    Seed,
    /// Adds the first `--group-members` seeded users to the group, 100 per PATCH.
    SeedMembers,
    /// The lookup request of [`Phase::Lookup`] with only the status checked (200): for the
    /// hosts' floors, which answer every request with a fixed body.
    Floor,
    /// `GET /Users?filter=userName eq "…"` for a user that does not exist yet: Entra's Test
    /// Connection and match-before-create. 200, `totalResults` 0.
    Absent,
    /// `POST /Users` with Entra's body. 201, `id`, `userName`.
    Create,
    /// `GET /Users?filter=userName eq "…"`. 200, `totalResults` 1, the created `id`.
    Lookup,
    /// `GET /Users?filter=externalId eq "…"`. 200, `totalResults` 1, the created `id`.
    LookupExternalId,
    /// `GET /Users/{id}`. 200, `id`, `userName`.
    Get,
    /// `PATCH /Users/{id}`: Entra's default-dialect update (one `Replace` per attribute:
    /// displayName, the work email through a filtered path, name.familyName). 200 with the
    /// new displayName, or 204.
    Update,
    /// `PATCH /Users/{id}` `Replace active "False"` (Entra's string form). 200 with
    /// `active: false`, or 204.
    Disable,
    /// `PATCH /Groups/{gid}` adding one member (`Add members [{"$ref": null, "value": id}]`). 204 or 200.
    MemberAdd,
    /// `PATCH /Groups/{gid}` removing that member again (see [`Dialect`] for the form). 204 or 200.
    MemberRemove,
    /// `GET /Users?startIndex=S&count=100`: a page deep into the tenant. 200, a consistent page.
    Page,
    /// `DELETE /Users/{id}`: Entra's hard delete. 204.
    Delete,
}

impl Phase {
    pub const MEASURED: [Phase; 12] = [
        Phase::Floor,
        Phase::Absent,
        Phase::Create,
        Phase::Lookup,
        Phase::LookupExternalId,
        Phase::Get,
        Phase::Update,
        Phase::Disable,
        Phase::MemberAdd,
        Phase::MemberRemove,
        Phase::Page,
        Phase::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Warmup => "warmup",
            Phase::Seed => "seed",
            Phase::SeedMembers => "seed-members",
            Phase::Floor => "floor",
            Phase::Absent => "absent",
            Phase::Create => "create",
            Phase::Lookup => "lookup",
            Phase::LookupExternalId => "lookup-ext",
            Phase::Get => "get",
            Phase::Update => "update",
            Phase::Disable => "disable",
            Phase::MemberAdd => "member-add",
            Phase::MemberRemove => "member-remove",
            Phase::Page => "page",
            Phase::Delete => "delete",
        }
    }

    /// Reads repeat `--reads` times over the users; writes happen once per user.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Phase::Floor | Phase::Absent | Phase::Lookup | Phase::LookupExternalId | Phase::Get | Phase::Page
        )
    }

    pub fn needs_group(self) -> bool {
        matches!(self, Phase::MemberAdd | Phase::MemberRemove | Phase::SeedMembers)
    }

    /// The Entra user lifecycle plus membership churn: what `--phases lifecycle` runs.
    pub const LIFECYCLE: [Phase; 9] = [
        Phase::Absent,
        Phase::Create,
        Phase::Lookup,
        Phase::Get,
        Phase::Update,
        Phase::Disable,
        Phase::MemberAdd,
        Phase::MemberRemove,
        Phase::Delete,
    ];

    /// The lifecycle plus the lookups and the deep page the scale comparison needs.
    pub const SCALE: [Phase; 11] = [
        Phase::Absent,
        Phase::Create,
        Phase::Lookup,
        Phase::LookupExternalId,
        Phase::Get,
        Phase::Update,
        Phase::Disable,
        Phase::MemberAdd,
        Phase::MemberRemove,
        Phase::Page,
        Phase::Delete,
    ];

    /// `lifecycle`, `scale`, or a comma-separated list of phase names.
    pub fn parse_list(spec: &str) -> anyhow::Result<Vec<Phase>> {
        let mut out = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "lifecycle" => out.extend(Phase::LIFECYCLE),
                "scale" => out.extend(Phase::SCALE),
                name => out.push(name.parse()?),
            }
        }
        if out.is_empty() {
            bail!("--phases is empty");
        }
        Ok(out)
    }
}

impl FromStr for Phase {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Phase> {
        Phase::MEASURED.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Phase::MEASURED.iter().map(|p| p.name()).collect();
            anyhow::anyhow!("unknown phase {s:?}; phases: lifecycle, scale, {}", names.join(", "))
        })
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which forms the group requests take. The user requests are Entra's in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Entra's default dialect: groups carry Entra's ADSCIM schema URN, members are removed
    /// with `{"op":"Remove","path":"members","value":[{"value":id}]}`.
    Entra,
    /// For servers that reject those two Entra-specific forms (scim2-server does, with 400):
    /// groups with the core Group schema only, members removed with the RFC 7644 form
    /// `{"op":"remove","path":"members[value eq \"id\"]"}` (also Entra's `aadOptscim062020` form).
    Rfc,
}

impl FromStr for Dialect {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Dialect> {
        match s {
            "entra" => Ok(Dialect::Entra),
            "rfc" => Ok(Dialect::Rfc),
            _ => bail!("--dialect is entra or rfc, not {s:?}"),
        }
    }
}

/// What the phases share: names, and the ids the server handed out.
pub struct Workload {
    pub prefix: String,
    pub dialect: Dialect,
    pub users: usize,
    pub seed: usize,
    pub group_members: usize,
    pub page_start: usize,
    pub ids: Vec<OnceLock<String>>,
    pub seed_ids: Vec<OnceLock<String>>,
    pub group_id: OnceLock<String>,
    /// The warm-up checks the status only (the run measures a floor, which answers anything).
    pub warmup_status_only: bool,
}

/// Which user an operation is about.
#[derive(Clone, Copy)]
enum Who {
    Measured(usize),
    Seeded(usize),
}

impl Workload {
    pub fn new(
        prefix: String,
        dialect: Dialect,
        users: usize,
        seed: usize,
        group_members: usize,
        page_start: usize,
        warmup_status_only: bool,
    ) -> Self {
        Workload {
            warmup_status_only,
            prefix,
            dialect,
            users,
            seed,
            group_members,
            page_start,
            ids: (0..users).map(|_| OnceLock::new()).collect(),
            seed_ids: (0..seed).map(|_| OnceLock::new()).collect(),
            group_id: OnceLock::new(),
        }
    }

    /// How many operations a phase runs.
    pub fn ops(&self, phase: Phase, reads: usize, warmup: usize) -> usize {
        match phase {
            Phase::Warmup => warmup,
            Phase::Seed => self.seed,
            Phase::SeedMembers => self.group_members.div_ceil(SEED_MEMBERS_PER_PATCH),
            p if p.is_read() => reads,
            _ => self.users,
        }
    }

    fn user_name(&self, who: Who) -> String {
        match who {
            Who::Measured(i) => format!("{}-u{i}@bench.example", self.prefix),
            Who::Seeded(i) => format!("{}-s{i}@bench.example", self.prefix),
        }
    }

    fn external_id(&self, who: Who) -> String {
        match who {
            Who::Measured(i) => format!("{}-xu{i}", self.prefix),
            Who::Seeded(i) => format!("{}-xs{i}", self.prefix),
        }
    }

    fn id(&self, i: usize) -> Result<&str, String> {
        self.ids
            .get(i)
            .and_then(OnceLock::get)
            .map(String::as_str)
            .ok_or_else(|| format!("user {i} has no id (its create failed)"))
    }

    fn group(&self) -> Result<&str, String> {
        self.group_id.get().map(String::as_str).ok_or_else(|| "the group was not created".to_owned())
    }

    /// Creates the group the membership phases use. Part of the setup, not measured.
    pub async fn create_group(&self, conn: &mut Conn) -> anyhow::Result<()> {
        let schemas = match self.dialect {
            Dialect::Entra => json!([GROUP_SCHEMA, ADSCIM_GROUP]),
            Dialect::Rfc => json!([GROUP_SCHEMA]),
        };
        let body = json!({
            "schemas": schemas,
            "externalId": format!("{}-xg", self.prefix),
            "displayName": format!("{}-group", self.prefix),
            "meta": {"resourceType": "Group"}
        });
        let reply = conn.send(Method::POST, "/Groups", Some(Bytes::from(body.to_string()))).await?;
        let v = check(&reply, &[StatusCode::CREATED]).map_err(anyhow::Error::msg)?;
        let id = str_at(&v, "/id").map_err(anyhow::Error::msg)?;
        let _ = self.group_id.set(id.to_owned());
        Ok(())
    }

    /// Runs operation `i` of `phase`. `Err` is the reason it counts as an error.
    pub async fn run(&self, phase: Phase, i: usize, conn: &mut Conn) -> Result<(), String> {
        match phase {
            Phase::Warmup => {
                let name = format!("{}-w{i}@bench.example", self.prefix);
                let reply = self.find(conn, "userName", &name).await?;
                if self.warmup_status_only {
                    check_status(&reply, &[StatusCode::OK])
                } else {
                    expect_total(&reply, 0, None)
                }
            }
            Phase::Seed => self.create(conn, Who::Seeded(i)).await,
            Phase::SeedMembers => {
                let from = i * SEED_MEMBERS_PER_PATCH;
                let to = ((i + 1) * SEED_MEMBERS_PER_PATCH).min(self.group_members).min(self.seed_ids.len());
                let members: Vec<Value> = self
                    .seed_ids
                    .get(from..to)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(OnceLock::get)
                    .map(|id| json!({"$ref": null, "value": id}))
                    .collect();
                if members.len() != to.saturating_sub(from) {
                    return Err("some seeded users have no id".into());
                }
                let ops = json!([{"op": "Add", "path": "members", "value": members}]);
                self.patch_group(conn, ops).await
            }
            Phase::Floor => {
                let u = i % self.users.max(1);
                let reply = self.find(conn, "userName", &self.user_name(Who::Measured(u))).await?;
                check_status(&reply, &[StatusCode::OK])
            }
            Phase::Absent => {
                let u = i % self.users.max(1);
                let reply = self.find(conn, "userName", &self.user_name(Who::Measured(u))).await?;
                expect_total(&reply, 0, None)
            }
            Phase::Create => self.create(conn, Who::Measured(i)).await,
            Phase::Lookup => {
                let u = i % self.users.max(1);
                let id = self.id(u)?;
                let reply = self.find(conn, "userName", &self.user_name(Who::Measured(u))).await?;
                expect_total(&reply, 1, Some(id))
            }
            Phase::LookupExternalId => {
                let u = i % self.users.max(1);
                let id = self.id(u)?;
                let reply = self.find(conn, "externalId", &self.external_id(Who::Measured(u))).await?;
                expect_total(&reply, 1, Some(id))
            }
            Phase::Get => {
                let u = i % self.users.max(1);
                let id = self.id(u)?;
                let reply = send(conn, Method::GET, &format!("/Users/{id}"), None).await?;
                let v = check(&reply, &[StatusCode::OK])?;
                expect_str(&v, "/id", id)?;
                let name = self.user_name(Who::Measured(u));
                let got = str_at(&v, "/userName")?;
                if !got.eq_ignore_ascii_case(&name) {
                    return Err(format!("userName {got:?}, want {name:?}"));
                }
                Ok(())
            }
            Phase::Update => {
                let id = self.id(i)?;
                let display = format!("Updated User {i}");
                let ops = json!([
                    {"op": "Replace", "path": "displayName", "value": display},
                    {"op": "Replace", "path": "emails[type eq \"work\"].value",
                     "value": format!("{}-u{i}@updated.example", self.prefix)},
                    {"op": "Replace", "path": "name.familyName", "value": format!("Family{i}")}
                ]);
                let reply = patch(conn, &format!("/Users/{id}"), ops).await?;
                if let Some(v) = check_patch(&reply)? {
                    expect_str(&v, "/displayName", &display)?;
                }
                Ok(())
            }
            Phase::Disable => {
                let id = self.id(i)?;
                let ops = json!([{"op": "Replace", "path": "active", "value": "False"}]);
                let reply = patch(conn, &format!("/Users/{id}"), ops).await?;
                if let Some(v) = check_patch(&reply)? {
                    if v.pointer("/active") != Some(&Value::Bool(false)) {
                        return Err(format!("active is {:?}, want false", v.pointer("/active")));
                    }
                }
                Ok(())
            }
            Phase::MemberAdd => {
                let id = self.id(i)?;
                self.patch_group(
                    conn,
                    json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": id}]}]),
                )
                .await
            }
            Phase::MemberRemove => {
                let id = self.id(i)?;
                let ops = match self.dialect {
                    Dialect::Entra => {
                        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": id}]}])
                    }
                    Dialect::Rfc => json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
                };
                self.patch_group(conn, ops).await
            }
            Phase::Page => {
                let start = self.page_start;
                let reply =
                    send(conn, Method::GET, &format!("/Users?startIndex={start}&count={PAGE_COUNT}"), None)
                        .await?;
                let v = check(&reply, &[StatusCode::OK])?;
                let total = v.pointer("/totalResults").and_then(Value::as_u64).ok_or("no totalResults")?;
                let total = usize::try_from(total).map_err(|e| e.to_string())?;
                let want = PAGE_COUNT.min((total + 1).saturating_sub(start));
                let got = v.pointer("/Resources").and_then(Value::as_array).map_or(0, Vec::len);
                if got != want {
                    return Err(format!("{got} resources from startIndex {start} of {total}, want {want}"));
                }
                if start + PAGE_COUNT <= self.seed + 1 && got != PAGE_COUNT {
                    return Err(format!("{got} resources, want a full page of {PAGE_COUNT}"));
                }
                Ok(())
            }
            Phase::Delete => {
                let id = self.id(i)?;
                let reply = send(conn, Method::DELETE, &format!("/Users/{id}"), None).await?;
                check_status(&reply, &[StatusCode::NO_CONTENT])
            }
        }
    }

    async fn find(&self, conn: &mut Conn, attr: &str, value: &str) -> Result<Reply, String> {
        let filter = encode(&format!("{attr} eq \"{value}\""));
        send(conn, Method::GET, &format!("/Users?filter={filter}"), None).await
    }

    async fn create(&self, conn: &mut Conn, who: Who) -> Result<(), String> {
        let user_name = self.user_name(who);
        // Entra's create-user request (the Microsoft tutorial's body).
        let body = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER],
            "externalId": self.external_id(who),
            "userName": user_name,
            "active": true,
            "displayName": "Bench User",
            "emails": [{"primary": true, "type": "work", "value": user_name}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "Bench User", "familyName": "User", "givenName": "Bench"},
            "roles": []
        });
        let reply = send(conn, Method::POST, "/Users", Some(body)).await?;
        let v = check(&reply, &[StatusCode::CREATED])?;
        let id = str_at(&v, "/id")?;
        let got = str_at(&v, "/userName")?;
        if !got.eq_ignore_ascii_case(&user_name) {
            return Err(format!("userName {got:?}, want {user_name:?}"));
        }
        let slot = match who {
            Who::Measured(i) => self.ids.get(i),
            Who::Seeded(i) => self.seed_ids.get(i),
        };
        if let Some(slot) = slot {
            let _ = slot.set(id.to_owned());
        }
        Ok(())
    }

    async fn patch_group(&self, conn: &mut Conn, ops: Value) -> Result<(), String> {
        let gid = self.group()?.to_owned();
        let reply = patch(conn, &format!("/Groups/{gid}"), ops).await?;
        check_status(&reply, &[StatusCode::NO_CONTENT, StatusCode::OK])
    }
}

async fn send(conn: &mut Conn, method: Method, path: &str, body: Option<Value>) -> Result<Reply, String> {
    conn.send(method, path, body.map(|b| Bytes::from(b.to_string()))).await.map_err(|e| format!("{e:#}"))
}

async fn patch(conn: &mut Conn, path: &str, ops: Value) -> Result<Reply, String> {
    send(conn, Method::PATCH, path, Some(json!({"schemas": [PATCH_OP], "Operations": ops}))).await
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

fn check_status(reply: &Reply, want: &[StatusCode]) -> Result<(), String> {
    if want.contains(&reply.status) {
        Ok(())
    } else {
        let want: Vec<u16> = want.iter().map(|s| s.as_u16()).collect();
        Err(format!("status {} (want {want:?}): {}", reply.status.as_u16(), excerpt(&reply.body)))
    }
}

/// The status is one of `want` and the body is a JSON object.
fn check(reply: &Reply, want: &[StatusCode]) -> Result<Value, String> {
    check_status(reply, want)?;
    let v: Value = serde_json::from_slice(&reply.body)
        .map_err(|e| format!("body is not JSON ({e}): {}", excerpt(&reply.body)))?;
    if !v.is_object() {
        return Err(format!("body is not a JSON object: {}", excerpt(&reply.body)));
    }
    Ok(v)
}

/// A user PATCH answers 200 with the resource or 204 (both are what Entra accepts).
fn check_patch(reply: &Reply) -> Result<Option<Value>, String> {
    if reply.status == StatusCode::NO_CONTENT {
        return Ok(None);
    }
    check(reply, &[StatusCode::OK]).map(Some)
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Result<&'v str, String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("no {pointer}"))
}

fn expect_str(v: &Value, pointer: &str, want: &str) -> Result<(), String> {
    let got = str_at(v, pointer)?;
    if got == want {
        Ok(())
    } else {
        Err(format!("{pointer} is {got:?}, want {want:?}"))
    }
}

/// A `ListResponse` with `total` results (and, for 1, the resource with `id`).
fn expect_total(reply: &Reply, total: u64, id: Option<&str>) -> Result<(), String> {
    let v = check(reply, &[StatusCode::OK])?;
    let is_list = v
        .pointer("/schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(LIST_RESPONSE)));
    if !is_list {
        return Err(format!("not a ListResponse: {}", excerpt(&reply.body)));
    }
    let got = v.pointer("/totalResults").and_then(Value::as_u64);
    if got != Some(total) {
        return Err(format!("totalResults {got:?}, want {total}: {}", excerpt(&reply.body)));
    }
    if let Some(id) = id {
        expect_str(&v, "/Resources/0/id", id)?;
    }
    Ok(())
}
