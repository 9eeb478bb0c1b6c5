//! The Entra ID provisioning lifecycle as one scenario suite, written once and replayed
//! against every host: the core over [`super::MemStore`], the Spin component in wasmtime,
//! the Envoy filter. Requests are exactly those of `shared/reference/entra-provisioning.md`.
//!
//! [`entra_lifecycle`] plays, for one tenant, what an operator and Entra's provisioning job
//! do over a tenant's life: create the tenant and generate its SCIM configuration (the
//! product guide's "Generate SCIM Configuration"), Test Connection, match-before-create,
//! create, update in the dialect's PATCH form, manager, rename, groups and members, disable
//! (unassigned: the user is kept) and re-enable, hard delete (the user is gone), the guide's
//! urgent removal by hand (a block that Entra's next cycle cannot undo), paging,
//! discovery, regenerate (old URL and token stop working, data stays) and revoke, and the
//! plan gate (SCIM is an Advanced-plan feature).
//!
//! Entra's requests carry `Authorization: Bearer Bearer <token>`: the administrator followed
//! the product guide word for word and pasted the *Authorization Header value* into Entra's
//! Secret Token. Before Test Connection, a wrong Secret Token floods the URL with 1,000
//! Test Connections: each is refused, the log holds one `signIn.refused` entry for them, and
//! the connection's status names the reason and the time (the host must answer them within a
//! minute). Test Connection itself is logged (`connection.tested`) and counted.
//!
//! Every step asserts the status, the body fields that matter, the `application/scim+json`
//! content type of SCIM answers, and what the core wrote under the keys of [`crate::keys`].
//! The suite never panics (this is non-test code): the first broken expectation comes back
//! as a [`Failure`] that shows the request, what was expected and the response.
//!
//! Requests carry a path-only URI plus a `Host` header ([`HOST`]); a host adapter that
//! forwards over a real connection may replace the `Host`. The tenant is fixed per dialect
//! ([`tenant_for`]), so both dialects can run against the same store, each once.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{header, HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::keys::{self, Index};

/// A host under test.
#[allow(async_fn_in_trait)]
pub trait Target {
    /// Sends one HTTP request (path and query in the URI, e.g. `/scim/v2/…`; headers as given).
    async fn send(&mut self, req: http::Request<Bytes>) -> http::Response<Bytes>;
    /// The value the core stored under `key` (as the core wrote it, host encoding removed).
    async fn stored(&mut self, key: &str) -> Option<Vec<u8>>;
    /// The operator's admin token (plaintext) configured on this host.
    fn admin_token(&self) -> String;
}

/// Which of Entra's PATCH dialects to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Entra's default: capitalised ops, `"False"` strings, one op per attribute,
    /// `Remove` members with a value list.
    Default,
    /// `?aadOptscim062020`: lower-case ops, booleans, path-less multi-attribute replace,
    /// `members[value eq "…"]` removal.
    AadOptScim062020,
}

/// The tenant [`entra_lifecycle`] creates for a dialect (distinct, so both can share a store).
pub fn tenant_for(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Default => "entra-default",
        Dialect::AadOptScim062020 => "entra-optflag",
    }
}

/// The `Host` header every request carries (the core derives the SCIM URL from it when no
/// `publicBaseUrl` is configured).
pub const HOST: &str = "scim-edge.test";

/// How often [`block_on`] polls before giving up.
pub const MAX_POLLS: usize = 100_000;

/// Drives a future that needs no real I/O (the core over in-memory fakes) to completion
/// with a no-op waker. `None` if it is still pending after [`MAX_POLLS`] polls, i.e. it
/// waits for something that will never wake it.
pub fn block_on<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

/// One HTTP exchange of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The scenario step it belongs to (e.g. `create user`).
    pub name: String,
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    pub status: u16,
}

/// What a successful run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub dialect: Dialect,
    pub tenant: String,
    pub steps: Vec<Step>,
    /// Number of individual checks that passed.
    pub assertions: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "entra lifecycle ({:?}, tenant {}): {} requests, {} checks passed",
            self.dialect,
            self.tenant,
            self.steps.len(),
            self.assertions
        )?;
        for s in &self.steps {
            writeln!(f, "  {} {:<6} {}  ({})", s.status, s.method, s.path, s.name)?;
        }
        Ok(())
    }
}

/// The first expectation that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub step: String,
    /// The request sent (or the store key read).
    pub request: String,
    pub expected: String,
    /// The response (status, headers, body) or the stored value.
    pub got: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "entra lifecycle step `{}` failed", self.step)?;
        writeln!(f, "  request:  {}", indent(&self.request))?;
        writeln!(f, "  expected: {}", indent(&self.expected))?;
        write!(f, "  got:      {}", indent(&self.got))
    }
}

impl std::error::Error for Failure {}

fn indent(s: &str) -> String {
    s.replace('\n', "\n            ")
}

/// Runs the whole lifecycle for `dialect` on a fresh tenant ([`tenant_for`]).
pub async fn entra_lifecycle<T: Target>(t: &mut T, dialect: Dialect) -> Result<Report, Failure> {
    let mut run = Run::new(t, dialect);
    run.admin_tenant().await?;
    run.conn = run.generate("admin: generate SCIM configuration").await?;
    run.admin_read_configuration().await?;
    run.authentication().await?;
    run.test_connection().await?;
    let a = run.new_user();
    run.match_before_create(&a).await?;
    let a = run.create_first_user(a).await?;
    run.duplicate_user(&a).await?;
    run.shared_external_id(&a).await?;
    run.bad_inputs(&a).await?;
    run.match_after_create(&a).await?;
    run.read_user(&a).await?;
    run.conditional_requests().await?;
    let a = run.update_user(a).await?;
    let m = run.manager(&a).await?;
    let a = run.rename_user(a).await?;
    let g = run.groups(&a, &m).await?;
    run.disable_and_reenable(&a, &g).await?;
    run.hard_delete(&a, &g).await?;
    run.urgent_removal(&g).await?;
    let all = run.paging(&m).await?;
    run.discovery().await?;
    run.delete_group(&g).await?;
    run.regenerate(&all).await?;
    run.plan_gate().await?;
    Ok(Report { dialect, tenant: run.tenant, steps: run.steps, assertions: run.assertions })
}

// ---------------------------------------------------------------------------------------
// Wire constants

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Entra sends this non-standard schema URN on group creation; it must not be rejected.
const ADSCIM_GROUP: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";
const JSON: &str = "application/json";
/// The feature flag Entra appends to the tenant URL.
const FLAG: &str = "aadOptscim062020";
/// Refused requests sent with a wrong token in one go: a flood the log must absorb with one
/// entry (the host must answer them within a minute).
const REFUSED_FLOOD: usize = 1000;
/// Longest response body quoted in a [`Failure`].
const CLIP: usize = 3000;

// ---------------------------------------------------------------------------------------
// The run

/// A SCIM connection as handed out by the admin API.
#[derive(Clone, Debug, Default)]
struct Conn {
    url: String,
    /// Path of `url` (`/scim/v2/{id}`): the base of every SCIM request.
    base: String,
    id: String,
    token: String,
    /// What the administrator pastes into Entra's Secret Token: the product guide's
    /// "Authorization Header value" (`Bearer <token>`), to which Entra adds its own `Bearer `.
    secret_token: String,
    created_at: String,
}

/// A user as this suite knows it.
#[derive(Clone, Debug, Default)]
struct User {
    id: String,
    user_name: String,
    external_id: String,
    email: String,
}

#[derive(Clone, Debug, Default)]
struct Group {
    id: String,
    display_name: String,
    external_id: String,
}

/// What was looked at: a request and its response, or a store key and its value.
#[derive(Clone, Debug, Default)]
struct Seen {
    request: String,
    got: String,
}

struct Exchange {
    seen: Seen,
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Exchange {
    fn header(&self, name: header::HeaderName) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Run<'t, T> {
    t: &'t mut T,
    dialect: Dialect,
    tenant: String,
    admin: String,
    conn: Conn,
    step: String,
    steps: Vec<Step>,
    assertions: usize,
    /// Makes every generated GUID of a run distinct (and the run deterministic).
    seq: u64,
}

impl<'t, T: Target> Run<'t, T> {
    fn new(t: &'t mut T, dialect: Dialect) -> Self {
        let admin = t.admin_token();
        Run {
            t,
            dialect,
            tenant: tenant_for(dialect).to_owned(),
            admin,
            conn: Conn::default(),
            step: String::new(),
            steps: Vec::new(),
            assertions: 0,
            seq: 0,
        }
    }

    fn step(&mut self, name: &str) {
        name.clone_into(&mut self.step);
    }

    fn opt(&self) -> bool {
        self.dialect == Dialect::AadOptScim062020
    }

    /// A PATCH op name in the dialect's spelling (`Replace` / `replace`).
    fn op(&self, capitalised: &str) -> String {
        if self.opt() {
            capitalised.to_ascii_lowercase()
        } else {
            capitalised.to_owned()
        }
    }

    /// A real-looking GUID, deterministic per tenant and call.
    fn guid(&mut self) -> String {
        self.seq += 1;
        let mut h = Sha256::new();
        h.update(self.tenant.as_bytes());
        h.update(self.seq.to_le_bytes());
        let hex = hex::encode(h.finalize());
        let mut out = String::with_capacity(36);
        for (i, c) in hex.chars().take(32).enumerate() {
            if matches!(i, 8 | 12 | 16 | 20) {
                out.push('-');
            }
            out.push(c);
        }
        out
    }

    /// 32 hex digits that are not the id of anything.
    fn unknown_id(&mut self) -> String {
        self.guid().replace('-', "")
    }

    fn new_user(&mut self) -> User {
        let user_name = format!("Test_User_{}", self.guid());
        let email = format!("Test_User_{}@testuser.com", self.guid());
        User { id: String::new(), user_name, external_id: self.guid(), email }
    }

    // ---- sending -----------------------------------------------------------------------

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        authorization: Option<String>,
        body: Option<(String, &'static str)>,
    ) -> Result<Exchange, Failure> {
        self.send_with(method, path, authorization, body, &[]).await
    }

    /// [`Run::send`] with more request headers.
    async fn send_with(
        &mut self,
        method: Method,
        path: &str,
        authorization: Option<String>,
        body: Option<(String, &'static str)>,
        headers: &[(header::HeaderName, &str)],
    ) -> Result<Exchange, Failure> {
        let mut request = format!("{method} {path}");
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, HOST)
            .header(header::ACCEPT, SCIM_JSON);
        if let Some(a) = &authorization {
            request.push_str(&format!("\nAuthorization: {a}"));
            builder = builder.header(header::AUTHORIZATION, a.as_str());
        }
        for (name, value) in headers {
            request.push_str(&format!("\n{name}: {value}"));
            builder = builder.header(name, *value);
        }
        let bytes = match body {
            Some((text, content_type)) => {
                request.push_str(&format!("\nContent-Type: {content_type}\n{text}"));
                builder = builder.header(header::CONTENT_TYPE, content_type);
                Bytes::from(text)
            }
            None => Bytes::new(),
        };
        let req = builder.body(bytes).map_err(|e| Failure {
            step: self.step.clone(),
            request: request.clone(),
            expected: "a request the http crate accepts".into(),
            got: e.to_string(),
        })?;
        let (parts, body) = self.t.send(req).await.into_parts();
        let status = parts.status.as_u16();
        self.steps.push(Step {
            name: self.step.clone(),
            method: method.to_string(),
            path: path.to_owned(),
            status,
        });
        let got = describe_response(parts.status, &parts.headers, &body);
        Ok(Exchange { seen: Seen { request, got }, status, headers: parts.headers, body })
    }

    /// An admin API request; `token: None` sends no `Authorization`.
    async fn admin_call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Exchange, Failure> {
        let auth = token.map(|t| format!("Bearer {t}"));
        self.send(method, path, auth, body.map(|b| (b.to_string(), JSON))).await
    }

    /// A SCIM request on the current connection, as Entra sends it when the administrator
    /// followed the product guide word for word: `Authorization: Bearer Bearer <token>`.
    async fn scim(&mut self, method: Method, rel: &str, body: Option<&Value>) -> Result<Exchange, Failure> {
        let (base, secret) = (self.conn.base.clone(), self.conn.secret_token.clone());
        self.scim_raw(method, &base, Some(&secret), rel, body.map(Value::to_string)).await
    }

    /// A SCIM request on the current connection with more headers (`If-Match`, …).
    async fn scim_with(
        &mut self,
        method: Method,
        rel: &str,
        body: Option<&Value>,
        headers: &[(header::HeaderName, &str)],
    ) -> Result<Exchange, Failure> {
        let mut path = format!("{}/{rel}", self.conn.base);
        if self.opt() {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(FLAG);
        }
        let auth = Some(format!("Bearer {}", self.conn.token));
        self.send_with(method, &path, auth, body.map(|b| (b.to_string(), SCIM_JSON)), headers).await
    }

    /// A SCIM request with an explicit base, token (`None`: no `Authorization`) and raw body.
    async fn scim_raw(
        &mut self,
        method: Method,
        base: &str,
        token: Option<&str>,
        rel: &str,
        body: Option<String>,
    ) -> Result<Exchange, Failure> {
        let mut path = format!("{base}/{rel}");
        if self.opt() {
            // Entra appends the flag to the tenant URL, so it ends up in every query.
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(FLAG);
        }
        let auth = token.map(|t| format!("Bearer {t}"));
        self.send(method, &path, auth, body.map(|b| (b, SCIM_JSON))).await
    }

    // ---- checks ------------------------------------------------------------------------

    fn fail(&self, seen: &Seen, expected: String) -> Failure {
        Failure { step: self.step.clone(), request: seen.request.clone(), expected, got: seen.got.clone() }
    }

    /// The one primitive every check goes through.
    fn ok(&mut self, cond: bool, seen: &Seen, expected: impl FnOnce() -> String) -> Result<(), Failure> {
        self.assertions += 1;
        if cond {
            Ok(())
        } else {
            Err(self.fail(seen, expected()))
        }
    }

    fn status(&mut self, ex: &Exchange, want: &[u16]) -> Result<u16, Failure> {
        self.ok(want.contains(&ex.status), &ex.seen, || format!("status {}", alternatives(want)))?;
        Ok(ex.status)
    }

    fn scim_content_type(&mut self, ex: &Exchange) -> Result<(), Failure> {
        let ct = ex.header(header::CONTENT_TYPE).unwrap_or_default();
        let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        self.ok(media == SCIM_JSON, &ex.seen, || format!("Content-Type: {SCIM_JSON}"))
    }

    fn parse(&mut self, ex: &Exchange) -> Result<Value, Failure> {
        let v = serde_json::from_slice::<Value>(&ex.body).ok();
        self.ok(v.as_ref().is_some_and(Value::is_object), &ex.seen, || "a JSON object body".into())?;
        Ok(v.unwrap_or(Value::Null))
    }

    /// Status in `want`, SCIM content type, a JSON object with no `null` anywhere.
    fn body(&mut self, ex: &Exchange, want: &[u16]) -> Result<Value, Failure> {
        self.status(ex, want)?;
        self.scim_content_type(ex)?;
        let v = self.parse(ex)?;
        let null = first_null(&v, "");
        self.ok(null.is_none(), &ex.seen, || {
            format!("no null values (Entra: \"no null values\"), found one at {}", null.unwrap_or_default())
        })?;
        Ok(v)
    }

    fn no_content(&mut self, ex: &Exchange) -> Result<(), Failure> {
        self.status(ex, &[204])?;
        self.ok(ex.body.is_empty(), &ex.seen, || "an empty body with 204".into())
    }

    /// A user PATCH answer: 200 with the resource, or 204 (Entra accepts both).
    fn patch_answer(&mut self, ex: &Exchange) -> Result<Option<Value>, Failure> {
        if ex.status == 204 {
            self.no_content(ex)?;
            return Ok(None);
        }
        let v = self.body(ex, &[200, 204])?;
        Ok(Some(v))
    }

    /// A SCIM error response with `status` (as a string) and optionally `scimType`.
    fn scim_error(&mut self, ex: &Exchange, status: u16, scim_type: Option<&str>) -> Result<Value, Failure> {
        let v = self.body(ex, &[status])?;
        self.eq(&ex.seen, &v, "/schemas", json!([ERROR]))?;
        self.eq(&ex.seen, &v, "/status", json!(status.to_string()))?;
        if let Some(st) = scim_type {
            self.eq(&ex.seen, &v, "/scimType", json!(st))?;
        }
        Ok(v)
    }

    fn unauthorized(&mut self, ex: &Exchange) -> Result<(), Failure> {
        self.scim_error(ex, 401, None)?;
        let challenge = ex.header(header::WWW_AUTHENTICATE).unwrap_or_default();
        self.ok(challenge.to_ascii_lowercase().starts_with("bearer"), &ex.seen, || {
            "a `WWW-Authenticate: Bearer …` challenge".into()
        })
    }

    /// A ListResponse; `total` if given must be `totalResults`.
    fn list(&mut self, ex: &Exchange, total: Option<u64>) -> Result<Vec<Value>, Failure> {
        let v = self.body(ex, &[200])?;
        self.eq(&ex.seen, &v, "/schemas", json!([LIST]))?;
        let n = v.get("totalResults").and_then(Value::as_u64);
        self.ok(n.is_some(), &ex.seen, || "`totalResults` a non-negative integer".into())?;
        if let Some(t) = total {
            self.eq(&ex.seen, &v, "/totalResults", json!(t))?;
        }
        for key in ["startIndex", "itemsPerPage"] {
            let is_num = v.get(key).is_some_and(Value::is_u64);
            self.ok(is_num, &ex.seen, || format!("`{key}` a non-negative integer"))?;
        }
        let resources = v.get("Resources").and_then(Value::as_array).cloned();
        self.ok(resources.is_some(), &ex.seen, || "`Resources` an array (also when empty)".into())?;
        let resources = resources.unwrap_or_default();
        let len = u64::try_from(resources.len()).unwrap_or(u64::MAX);
        self.ok(len <= n.unwrap_or(0), &ex.seen, || "no more Resources than totalResults".into())?;
        for r in &resources {
            let id = r.get("id").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
            self.ok(id, &ex.seen, || "an `id` on every resource".into())?;
        }
        Ok(resources)
    }

    /// A filtered query that must find exactly `total` resources, all on the first page.
    async fn query(&mut self, rel: &str, total: u64) -> Result<Vec<Value>, Failure> {
        let ex = self.scim(Method::GET, rel, None).await?;
        let resources = self.list(&ex, Some(total))?;
        let len = u64::try_from(resources.len()).unwrap_or(u64::MAX);
        self.ok(len == total, &ex.seen, || format!("{total} entries in Resources"))?;
        for r in &resources {
            let id = r.get("id").and_then(Value::as_str).is_some_and(keys::valid_id);
            self.ok(id, &ex.seen, || "resource ids of 32 lower-case hex digits".into())?;
        }
        Ok(resources)
    }

    /// `Users?filter=…` / `Groups?…&filter=…` that must find exactly `want` (by id, in order).
    async fn find(&mut self, resource_and_params: &str, filter: &str, want: &[&str]) -> Result<(), Failure> {
        let rel = format!("{resource_and_params}filter={}", encode(filter));
        let ex = self.scim(Method::GET, &rel, None).await?;
        let total = u64::try_from(want.len()).unwrap_or(u64::MAX);
        let resources = self.list(&ex, Some(total))?;
        let ids = ids_of(&resources);
        self.ok(ids == want, &ex.seen, || format!("Resources with ids {want:?}"))
    }

    fn eq(&mut self, seen: &Seen, v: &Value, ptr: &str, want: Value) -> Result<(), Failure> {
        let found = v.pointer(ptr);
        self.ok(found == Some(&want), seen, || format!("{ptr} == {want} (found {})", show(found)))
    }

    fn string_at(&mut self, seen: &Seen, v: &Value, ptr: &str) -> Result<String, Failure> {
        let found = v.pointer(ptr);
        let s = found.and_then(Value::as_str).filter(|s| !s.is_empty());
        self.ok(s.is_some(), seen, || format!("{ptr} a non-empty string (found {})", show(found)))?;
        Ok(s.unwrap_or_default().to_owned())
    }

    fn absent(&mut self, seen: &Seen, v: &Value, ptr: &str) -> Result<(), Failure> {
        let found = v.pointer(ptr);
        self.ok(found.is_none(), seen, || format!("no {ptr} (found {})", show(found)))
    }

    /// `ptr` is an array of strings that contains `want`.
    fn has_str(&mut self, seen: &Seen, v: &Value, ptr: &str, want: &str) -> Result<(), Failure> {
        let found = v.pointer(ptr);
        let ok = found.and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x.as_str() == Some(want)));
        self.ok(ok, seen, || format!("{ptr} contains \"{want}\" (found {})", show(found)))
    }

    // ---- store checks ------------------------------------------------------------------

    async fn read(&mut self, key: &str) -> (Seen, Option<Vec<u8>>) {
        let value = self.t.stored(key).await;
        let got = match &value {
            Some(v) => clip(&String::from_utf8_lossy(v)),
            None => "(absent)".into(),
        };
        (Seen { request: format!("store: {key}"), got }, value)
    }

    async fn stored_text(&mut self, key: &str) -> Result<(Seen, String), Failure> {
        let (seen, value) = self.read(key).await;
        self.ok(value.is_some(), &seen, || "the key is present".into())?;
        Ok((seen, String::from_utf8_lossy(&value.unwrap_or_default()).into_owned()))
    }

    async fn stored_json(&mut self, key: &str) -> Result<(Seen, Value), Failure> {
        let (seen, text) = self.stored_text(key).await?;
        let v = serde_json::from_str::<Value>(&text).ok();
        self.ok(v.as_ref().is_some_and(Value::is_object), &seen, || "a JSON object".into())?;
        Ok((seen, v.unwrap_or(Value::Null)))
    }

    async fn stored_absent(&mut self, key: &str) -> Result<(), Failure> {
        let (seen, value) = self.read(key).await;
        self.ok(value.is_none(), &seen, || "the key is absent".into())
    }

    /// An index key names the id (raw UTF-8 `{id} {claimed at}` lines, not JSON).
    async fn stored_id(&mut self, key: &str, id: &str) -> Result<(), Failure> {
        let (seen, value) = self.read(key).await;
        let holders = crate::index::parse_entry(value.as_deref().unwrap_or_default());
        self.ok(holders.iter().any(|h| h.id == id), &seen, || format!("an index entry naming {id}"))
    }

    /// An index key names exactly these ids, in this order.
    async fn stored_ids(&mut self, key: &str, ids: &[&str]) -> Result<(), Failure> {
        let (seen, value) = self.read(key).await;
        let holders = crate::index::parse_entry(value.as_deref().unwrap_or_default());
        let found: Vec<&str> = holders.iter().map(|h| h.id.as_str()).collect();
        self.ok(found == ids, &seen, || format!("an index entry naming {ids:?}"))
    }

    /// The user record: `state`, `role` "user", `source` "scim", `attributes.userName`.
    async fn stored_user(&mut self, u: &User, state: &str) -> Result<Value, Failure> {
        let (seen, rec) = self.stored_json(&keys::user(&self.tenant, &u.id)).await?;
        self.eq(&seen, &rec, "/state", json!(state))?;
        self.eq(&seen, &rec, "/role", json!("user"))?;
        self.eq(&seen, &rec, "/source", json!("scim"))?;
        self.eq(&seen, &rec, "/attributes/userName", json!(u.user_name))?;
        Ok(rec)
    }

    /// Whether `user_groups(user)` lists `group` (an absent key lists nothing).
    async fn user_groups_lists(&mut self, user: &str, group: &str, want: bool) -> Result<(), Failure> {
        let (seen, value) = self.read(&keys::user_groups(&self.tenant, user)).await;
        let list = value.as_deref().map(serde_json::from_slice::<Vec<String>>);
        if want {
            let ok = matches!(&list, Some(Ok(l)) if l.iter().any(|g| g == group));
            self.ok(ok, &seen, || format!("a JSON array of group ids containing \"{group}\""))
        } else {
            let ok = match &list {
                None => true,
                Some(Ok(l)) => l.iter().all(|g| g != group),
                Some(Err(_)) => false,
            };
            self.ok(ok, &seen, || format!("absent, or a JSON array of group ids without \"{group}\""))
        }
    }

    async fn member(&mut self, group: &str, user: &str, want: bool) -> Result<(), Failure> {
        let key = keys::membership(&self.tenant, group, user);
        let (seen, value) = self.read(&key).await;
        self.ok(value.is_some() == want, &seen, || {
            if want { "the membership key is present" } else { "the membership key is absent" }.into()
        })?;
        self.user_groups_lists(user, group, want).await
    }

    // ---- steps -------------------------------------------------------------------------

    async fn admin_tenant(&mut self) -> Result<(), Failure> {
        let path = format!("/admin/v1/tenants/{}", self.tenant);
        let body = json!({"name": "Entra test", "plan": "advanced"});
        let admin = self.admin.clone();

        self.step("admin: create tenant without the admin token");
        let ex = self.admin_call(Method::PUT, &path, None, Some(&body)).await?;
        self.status(&ex, &[401])?;
        self.step("admin: create tenant with a wrong admin token");
        let wrong = format!("{admin}-wrong");
        let ex = self.admin_call(Method::PUT, &path, Some(&wrong), Some(&body)).await?;
        self.status(&ex, &[401])?;
        self.stored_absent(&keys::tenant(&self.tenant)).await?;

        self.step("admin: create tenant");
        let ex = self.admin_call(Method::PUT, &path, Some(&admin), Some(&body)).await?;
        self.status(&ex, &[201])?;
        let (seen, text) = self.stored_text(&keys::tenant(&self.tenant)).await?;
        self.ok(text.contains("advanced"), &seen, || "the tenant record holds its plan".into())?;

        self.step("admin: repeated tenant PUT updates");
        let ex = self.admin_call(Method::PUT, &path, Some(&admin), Some(&body)).await?;
        self.status(&ex, &[200])?;

        self.step("admin: generate SCIM configuration without the admin token");
        let scim = format!("{path}/scim");
        let ex = self.admin_call(Method::POST, &scim, None, None).await?;
        self.status(&ex, &[401])?;
        let ex = self.admin_call(Method::POST, &scim, Some(&wrong), None).await?;
        self.status(&ex, &[401])?;
        Ok(())
    }

    /// `POST /admin/v1/tenants/{tenant}/scim`: the product's "Generate SCIM Configuration".
    async fn generate(&mut self, step: &str) -> Result<Conn, Failure> {
        self.step(step);
        let path = format!("/admin/v1/tenants/{}/scim", self.tenant);
        let admin = self.admin.clone();
        let ex = self.admin_call(Method::POST, &path, Some(&admin), None).await?;
        self.status(&ex, &[201])?;
        let v = self.parse(&ex)?;
        let seen = ex.seen.clone();
        let url = self.string_at(&seen, &v, "/url")?;
        let token = self.string_at(&seen, &v, "/token")?;
        let created_at = self.string_at(&seen, &v, "/createdAt")?;
        self.eq(&seen, &v, "/authorizationHeader", json!(format!("Bearer {token}")))?;
        // Where each value goes in Entra, beside the product guide's names.
        self.eq(&seen, &v, "/tenantUrl", json!(url))?;
        let secret_token = self.string_at(&seen, &v, "/secretToken")?;
        self.eq(&seen, &v, "/secretToken", json!(format!("Bearer {token}")))?;

        let base = url_path(&url);
        self.ok(base.is_some(), &seen, || "`url` an absolute http(s) URL".into())?;
        let base = base.unwrap_or_default();
        let id = base.strip_prefix("/scim/v2/").unwrap_or_default().to_owned();
        self.ok(keys::valid_id(&id), &seen, || {
            "`url` ending in /scim/v2/<connection id of 32 lower-case hex digits>".into()
        })?;
        let bits = token_bits(&token);
        self.ok(bits >= 128, &seen, || {
            format!("a token of at least 128 bits (≥32 hex or ≥22 base64url characters), got ~{bits} bits")
        })?;

        let (seen, record) = self.stored_text(&keys::connection(&id)).await?;
        self.ok(!record.contains(&token), &seen, || "no plaintext token in the connection record".into())?;
        self.ok(holds_sha256_of(&record, &token), &seen, || {
            "the SHA-256 of the token (hex, base64 or a byte array) in the connection record".into()
        })?;
        let (seen, tenant) = self.stored_text(&keys::tenant(&self.tenant)).await?;
        self.ok(tenant.contains(&id), &seen, || format!("the tenant record names connection {id}"))?;
        self.ok(!tenant.contains(&token), &seen, || "no plaintext token in the tenant record".into())?;
        Ok(Conn { url, base, id, token, secret_token, created_at })
    }

    async fn admin_read_configuration(&mut self) -> Result<(), Failure> {
        self.step("admin: read SCIM configuration");
        let path = format!("/admin/v1/tenants/{}/scim", self.tenant);
        let admin = self.admin.clone();
        let ex = self.admin_call(Method::GET, &path, Some(&admin), None).await?;
        self.status(&ex, &[200])?;
        let v = self.parse(&ex)?;
        let (url, created_at, token) =
            (self.conn.url.clone(), self.conn.created_at.clone(), self.conn.token.clone());
        self.eq(&ex.seen, &v, "/url", json!(url))?;
        self.eq(&ex.seen, &v, "/createdAt", json!(created_at))?;
        self.ok(!ex.text().contains(&token), &ex.seen, || "the token is never shown again".into())
    }

    async fn authentication(&mut self) -> Result<(), Failure> {
        let base = self.conn.base.clone();
        self.step("auth: no Authorization header");
        let ex = self.scim_raw(Method::GET, &base, None, "Users", None).await?;
        self.unauthorized(&ex)?;

        // An administrator pasted the wrong Secret Token and Entra's Test Connection is retried
        // (or a script hammers the URL): every request is refused, and the log holds one entry.
        self.step("auth: wrong token, a flood of Test Connections");
        let wrong = format!("{}x", self.conn.token);
        for _ in 0..REFUSED_FLOOD {
            let probe = self.guid();
            let rel = format!("Users?filter={}", encode(&format!("userName eq \"{probe}\"")));
            let ex = self.scim_raw(Method::GET, &base, Some(&wrong), &rel, None).await?;
            self.unauthorized(&ex)?;
        }
        let other = self.unknown_id();
        let token = self.conn.token.clone();
        let ex = self.scim_raw(Method::GET, &base, Some(&other), "Users", None).await?;
        self.unauthorized(&ex)?;
        // The scheme doubled is the pasted header value; tripled it is no token.
        let tripled = format!("Bearer Bearer {token}");
        let ex = self.scim_raw(Method::GET, &base, Some(&tripled), "Users", None).await?;
        self.unauthorized(&ex)?;

        self.step("auth: right token, unknown connection");
        let unknown = format!("/scim/v2/{other}");
        let ex = self.scim_raw(Method::GET, &unknown, Some(&token), "Users", None).await?;
        self.unauthorized(&ex)?;

        self.step("auth: refused sign-ins, one log entry per reason");
        let refused = self.log_entries("signIn.refused").await?;
        let seen = Seen {
            request: "GET /admin/v1/tenants/…/log?operation=signIn.refused".into(),
            got: format!("{refused:?}"),
        };
        let details: Vec<&str> =
            refused.iter().filter_map(|e| e.get("detail").and_then(Value::as_str)).collect();
        self.ok(details == ["signIn refused: wrong token", "signIn refused: no token sent"], &seen, || {
            format!(
                "exactly one entry for the {REFUSED_FLOOD} wrong tokens (and the ones after them) and one for \
                 the missing header, newest first"
            )
        })?;
        let ex = self.connection_status().await?;
        let v = self.parse(&ex)?;
        self.eq(&ex.seen, &v, "/lastRefusedReason", json!("wrong token"))?;
        let at = v.get("lastRefusedAt").and_then(Value::as_str).is_some_and(|t| t.ends_with('Z'));
        self.ok(at, &ex.seen, || "`lastRefusedAt` a time".into())?;
        let failures = v.get("failures").and_then(Value::as_u64).unwrap_or(0);
        self.ok(failures >= 2, &ex.seen, || "the refusals counted in `failures`".into())
    }

    /// `GET /admin/v1/tenants/{tenant}/scim`: the connection's status.
    async fn connection_status(&mut self) -> Result<Exchange, Failure> {
        let path = format!("/admin/v1/tenants/{}/scim", self.tenant);
        let admin = self.admin.clone();
        let ex = self.admin_call(Method::GET, &path, Some(&admin), None).await?;
        self.status(&ex, &[200])?;
        Ok(ex)
    }

    /// The tenant's provisioning log entries of `operation`, newest first.
    async fn log_entries(&mut self, operation: &str) -> Result<Vec<Value>, Failure> {
        let path = format!("/admin/v1/tenants/{}/log?count=500&operation={operation}", self.tenant);
        let admin = self.admin.clone();
        let ex = self.admin_call(Method::GET, &path, Some(&admin), None).await?;
        self.status(&ex, &[200])?;
        let v = self.parse(&ex)?;
        let entries = v.get("entries").and_then(Value::as_array).cloned();
        self.ok(entries.is_some(), &ex.seen, || "`entries` an array".into())?;
        Ok(entries.unwrap_or_default())
    }

    async fn test_connection(&mut self) -> Result<(), Failure> {
        self.step("Test Connection: user probe");
        let probe = self.guid();
        let rel = format!("Users?filter={}", encode(&format!("userName eq \"{probe}\"")));
        let ex = self.scim(Method::GET, &rel, None).await?;
        let resources = self.list(&ex, Some(0))?;
        self.ok(resources.is_empty(), &ex.seen, || "\"Resources\":[]".into())?;
        let v = self.parse(&ex)?;
        self.eq(&ex.seen, &v, "/startIndex", json!(1))?;

        self.step("Test Connection: group probe");
        let probe = self.guid();
        let filter = format!("displayName eq \"{probe}\"");
        self.find("Groups?excludedAttributes=members&", &filter, &[]).await?;

        self.step("Test Connection: in the log and the connection's status");
        let tested = self.log_entries("connection.tested").await?;
        let seen = Seen {
            request: "GET /admin/v1/tenants/…/log?operation=connection.tested".into(),
            got: format!("{tested:?}"),
        };
        self.ok(tested.len() == 1, &seen, || "one `connection.tested` entry".into())?;
        let ex = self.connection_status().await?;
        let v = self.parse(&ex)?;
        let used = v.get("lastUsedAt").and_then(Value::as_str).is_some();
        self.ok(used, &ex.seen, || "`lastUsedAt` set by the Test Connection".into())?;
        let requests = v.get("requests").and_then(Value::as_u64).unwrap_or(0);
        let failures = v.get("failures").and_then(Value::as_u64).unwrap_or(0);
        self.ok(requests > failures, &ex.seen, || {
            "the successful Test Connection counted in `requests` (not sampled away)".into()
        })
    }

    async fn match_before_create(&mut self, u: &User) -> Result<(), Failure> {
        self.step("match before create");
        self.find("Users?", &format!("userName eq \"{}\"", u.user_name), &[]).await?;
        self.find("Users?", &format!("externalId eq \"{}\"", u.external_id), &[]).await
    }

    /// Entra's create-user body (reference a.1 row 3); `example2` adds the null-valued
    /// attributes and `displayName` of the doc's "Example 2".
    fn user_body(u: &User, example2: bool) -> Value {
        if example2 {
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "externalId": u.external_id,
                "userName": u.user_name,
                "active": true,
                "addresses": null,
                "displayName": "Test User",
                "emails": [{"primary": true, "type": "work", "value": u.email}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
                "phoneNumbers": null,
                "preferredLanguage": null,
                "title": null,
                "department": null,
                "manager": null,
                "roles": []
            })
        } else {
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "externalId": u.external_id,
                "userName": u.user_name,
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": u.email}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
                "roles": []
            })
        }
    }

    /// Checks a full user resource (GET or create answer) against what the suite knows.
    fn check_user(&mut self, seen: &Seen, v: &Value, u: &User) -> Result<(), Failure> {
        self.has_str(seen, v, "/schemas", USER_SCHEMA)?;
        self.eq(seen, v, "/id", json!(u.id))?;
        self.eq(seen, v, "/userName", json!(u.user_name))?;
        self.eq(seen, v, "/externalId", json!(u.external_id))?;
        let work = typed(v, "emails", "work");
        let email = work.first().and_then(|e| e.get("value")).and_then(Value::as_str);
        self.ok(work.len() == 1 && email == Some(u.email.as_str()), seen, || {
            format!("exactly one work email, \"{}\"", u.email)
        })?;
        self.eq(seen, v, "/meta/resourceType", json!("User"))?;
        self.string_at(seen, v, "/meta/created")?;
        self.string_at(seen, v, "/meta/lastModified")?;
        let version = self.string_at(seen, v, "/meta/version")?;
        self.ok(is_weak_etag(&version), seen, || "meta.version a weak ETag W/\"…\"".into())?;
        let location = self.string_at(seen, v, "/meta/location")?;
        let suffix = format!("/Users/{}", u.id);
        self.ok(location.ends_with(&suffix), seen, || format!("meta.location ending in {suffix}"))?;
        let password = v.as_object().is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case("password")));
        self.ok(!password, seen, || "no password in a response".into())
    }

    /// POSTs `body` for `u` and checks the 201 answer and the store; returns `u` with its id.
    async fn create_user(&mut self, mut u: User, body: &Value) -> Result<(User, Value), Failure> {
        let ex = self.scim(Method::POST, "Users", Some(body)).await?;
        let v = self.body(&ex, &[201])?;
        let id = self.string_at(&ex.seen, &v, "/id")?;
        self.ok(keys::valid_id(&id), &ex.seen, || "an id of 32 lower-case hex digits".into())?;
        u.id = id;
        self.check_user(&ex.seen, &v, &u)?;
        self.eq(&ex.seen, &v, "/active", json!(true))?;
        let location = ex.header(header::LOCATION);
        let meta_location = v.pointer("/meta/location").and_then(Value::as_str);
        self.ok(location.is_some() && location.as_deref() == meta_location, &ex.seen, || {
            "a Location header equal to meta.location".into()
        })?;

        self.stored_user(&u, "active").await?;
        let tenant = self.tenant.clone();
        self.stored_id(&keys::index(&tenant, Index::UserName, &u.user_name), &u.id).await?;
        self.stored_id(&keys::index(&tenant, Index::UserExternalId, &u.external_id), &u.id).await?;
        Ok((u, v))
    }

    async fn create_first_user(&mut self, u: User) -> Result<User, Failure> {
        self.step("create user");
        let example2 = !self.opt();
        let body = Self::user_body(&u, example2);
        let (u, v) = self.create_user(u, &body).await?;
        if example2 {
            let seen = Seen { request: "POST …/Users (Example 2 body)".into(), got: clip(&v.to_string()) };
            self.eq(&seen, &v, "/displayName", json!("Test User"))?;
        }
        Ok(u)
    }

    async fn duplicate_user(&mut self, u: &User) -> Result<(), Failure> {
        self.step("create user: duplicate userName in another case");
        let mut dup = self.new_user();
        dup.user_name = swap_case(&u.user_name);
        let body = Self::user_body(&dup, false);
        let ex = self.scim(Method::POST, "Users", Some(&body)).await?;
        let v = self.scim_error(&ex, 409, Some("uniqueness"))?;
        self.string_at(&ex.seen, &v, "/detail")?;
        self.find("Users?", &format!("userName eq \"{}\"", u.user_name), &[&u.id]).await?;
        self.find("Users?", &format!("externalId eq \"{}\"", dup.external_id), &[]).await?;
        let tenant = self.tenant.clone();
        self.stored_absent(&keys::index(&tenant, Index::UserExternalId, &dup.external_id)).await
    }

    /// RFC 7643 gives `externalId` no uniqueness, and Entra's default mapping fills it from
    /// `mailNickname`, which two users may share: both are created and both found; changing
    /// one's externalId moves it, deleting it takes it out of the index.
    async fn shared_external_id(&mut self, a: &User) -> Result<(), Failure> {
        self.step("create user: another user with the same externalId");
        let mut b = self.new_user();
        b.external_id = a.external_id.clone();
        let body = Self::user_body(&b, false);
        let (mut b, _) = self.create_user(b, &body).await?;
        let by_external = format!("externalId eq \"{}\"", a.external_id);
        self.find("Users?", &by_external, &[&a.id, &b.id]).await?;
        let tenant = self.tenant.clone();
        let shared = keys::index(&tenant, Index::UserExternalId, &a.external_id);
        self.stored_ids(&shared, &[&a.id, &b.id]).await?;

        self.step("change the shared externalId of one of them");
        b.external_id = self.guid();
        let ops = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": self.op("Replace"), "path": "externalId", "value": b.external_id}
        ]});
        let ex = self.scim(Method::PATCH, &format!("Users/{}", b.id), Some(&ops)).await?;
        if let Some(v) = self.patch_answer(&ex)? {
            self.eq(&ex.seen, &v, "/externalId", json!(b.external_id))?;
        }
        self.find("Users?", &by_external, &[&a.id]).await?;
        self.find("Users?", &format!("externalId eq \"{}\"", b.external_id), &[&b.id]).await?;
        self.stored_ids(&shared, &[&a.id]).await?;
        self.stored_ids(&keys::index(&tenant, Index::UserExternalId, &b.external_id), &[&b.id]).await?;

        self.step("delete the user that shared the externalId");
        b.external_id.clone_from(&a.external_id);
        let ops = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": self.op("Replace"), "path": "externalId", "value": b.external_id}
        ]});
        let ex = self.scim(Method::PATCH, &format!("Users/{}", b.id), Some(&ops)).await?;
        self.patch_answer(&ex)?;
        self.find("Users?", &by_external, &[&a.id, &b.id]).await?;
        let ex = self.scim(Method::DELETE, &format!("Users/{}", b.id), None).await?;
        self.no_content(&ex)?;
        self.find("Users?", &by_external, &[&a.id]).await?;
        self.find("Users?", &format!("userName eq \"{}\"", b.user_name), &[]).await?;
        self.stored_ids(&shared, &[&a.id]).await
    }

    async fn get_user(&mut self, id: &str) -> Result<(Seen, Value), Failure> {
        let ex = self.scim(Method::GET, &format!("Users/{id}"), None).await?;
        let v = self.body(&ex, &[200])?;
        Ok((ex.seen, v))
    }

    async fn bad_inputs(&mut self, u: &User) -> Result<(), Failure> {
        self.step("bad input: snapshot");
        let (_, before) = self.get_user(&u.id).await?;

        self.step("bad input: malformed JSON");
        let (base, token) = (self.conn.base.clone(), self.conn.token.clone());
        let broken = format!(r#"{{"schemas":["{USER_SCHEMA}"],"userName":"Broken_{}","#, self.guid());
        let ex = self.scim_raw(Method::POST, &base, Some(&token), "Users", Some(broken)).await?;
        self.scim_error(&ex, 400, None)?;

        self.step("bad input: POST without userName");
        let mut nameless = self.new_user();
        nameless.user_name.clear();
        let body = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "externalId": nameless.external_id,
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": nameless.email}],
            "meta": {"resourceType": "User"},
            "roles": []
        });
        let ex = self.scim(Method::POST, "Users", Some(&body)).await?;
        self.scim_error(&ex, 400, None)?;
        self.find("Users?", &format!("externalId eq \"{}\"", nameless.external_id), &[]).await?;
        let tenant = self.tenant.clone();
        self.stored_absent(&keys::index(&tenant, Index::UserExternalId, &nameless.external_id)).await?;

        self.step("bad input: filter without a value");
        let ex = self.scim(Method::GET, &format!("Users?filter={}", encode("userName eq")), None).await?;
        self.scim_error(&ex, 400, Some("invalidFilter"))?;

        self.step("bad input: PATCH with an invalid path");
        // The valid first op must not be applied either: a PATCH is atomic (RFC 7644 §3.5.2).
        let patch = patch(vec![
            json!({"op": self.op("Replace"), "path": "displayName", "value": "Must Not Be Applied"}),
            json!({"op": self.op("Replace"), "path": "name..givenName", "value": "Nope"}),
        ]);
        let ex = self.scim(Method::PATCH, &format!("Users/{}", u.id), Some(&patch)).await?;
        self.scim_error(&ex, 400, Some("invalidPath"))?;

        self.step("bad input: the user is unchanged");
        let (seen, after) = self.get_user(&u.id).await?;
        self.ok(after == before, &seen, || format!("the user exactly as before: {before}"))
    }

    async fn match_after_create(&mut self, u: &User) -> Result<(), Failure> {
        self.step("match after create: userName in another case");
        let filter = format!("userName eq \"{}\"", swap_case(&u.user_name));
        let rel = format!("Users?filter={}", encode(&filter));
        let resources = self.query(&rel, 1).await?;
        let first = resources.first().cloned().unwrap_or(Value::Null);
        let seen = Seen { request: format!("GET …/{rel}"), got: clip(&first.to_string()) };
        self.check_user(&seen, &first, u)?;

        self.step("match after create: externalId");
        self.find("Users?", &format!("externalId eq \"{}\"", u.external_id), &[&u.id]).await?;
        if !self.opt() {
            self.step("match after create: unquoted externalId");
            self.find("Users?", &format!("externalId eq {}", u.external_id), &[&u.id]).await?;
        }
        Ok(())
    }

    async fn read_user(&mut self, u: &User) -> Result<(), Failure> {
        self.step("get user");
        let (seen, v) = self.get_user(&u.id).await?;
        self.check_user(&seen, &v, u)?;
        self.eq(&seen, &v, "/active", json!(true))?;

        self.step("get unknown user");
        let unknown = self.unknown_id();
        let ex = self.scim(Method::GET, &format!("Users/{unknown}"), None).await?;
        self.scim_error(&ex, 404, None)?;
        Ok(())
    }

    /// The `ETag` of an answer, which must equal its `meta.version` when it has a body.
    fn etag(&mut self, ex: &Exchange, body: Option<&Value>) -> Result<String, Failure> {
        let tag = ex.header(header::ETAG).unwrap_or_default();
        self.ok(tag.starts_with("W/\"") && tag.ends_with('"'), &ex.seen, || "a weak ETag header".into())?;
        if let Some(v) = body {
            self.eq(&ex.seen, v, "/meta/version", json!(tag))?;
        }
        Ok(tag)
    }

    /// A 412 for a stale `If-Match`: a SCIM error.
    fn precondition_failed(&mut self, ex: &Exchange) -> Result<(), Failure> {
        let v = self.scim_error(ex, 412, None)?;
        self.string_at(&ex.seen, &v, "/detail").map(|_| ())
    }

    /// RFC 7644 §3.14 on a user and a group of their own (removed at the end): the `ETag` of
    /// every single-resource answer is `meta.version`; `If-None-Match` on a GET answers 304;
    /// a stale `If-Match` on PUT, PATCH and DELETE answers 412 and changes nothing; `*` and a
    /// list holding the current version proceed.
    async fn conditional_requests(&mut self) -> Result<(), Failure> {
        self.step("conditional requests: create a user (ETag)");
        let u = self.new_user();
        let body = Self::user_body(&u, false);
        let ex = self.scim(Method::POST, "Users", Some(&body)).await?;
        let v = self.body(&ex, &[201])?;
        let id = self.string_at(&ex.seen, &v, "/id")?;
        let created = self.etag(&ex, Some(&v))?;
        let user = format!("Users/{id}");

        self.step("conditional requests: GET with If-None-Match of the current version: 304");
        let ex = self.scim_with(Method::GET, &user, None, &[(header::IF_NONE_MATCH, &created)]).await?;
        self.status(&ex, &[304])?;
        self.ok(ex.body.is_empty(), &ex.seen, || "no body with 304".into())?;
        let tag = self.etag(&ex, None)?;
        self.ok(tag == created, &ex.seen, || format!("ETag {created}"))?;
        let ex = self.scim_with(Method::GET, &user, None, &[(header::IF_NONE_MATCH, "W/\"0\"")]).await?;
        let v = self.body(&ex, &[200])?;
        self.etag(&ex, Some(&v))?;

        self.step("conditional requests: PATCH with a stale If-Match: 412, nothing changed");
        let ops = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": self.op("Replace"), "path": "displayName", "value": "Conditional"}
        ]});
        let stale = "W/\"0\"";
        let ex = self.scim_with(Method::PATCH, &user, Some(&ops), &[(header::IF_MATCH, stale)]).await?;
        self.precondition_failed(&ex)?;
        let (seen, v) = self.get_user(&id).await?;
        self.eq(&seen, &v, "/meta/version", json!(created))?;
        self.absent(&seen, &v, "/displayName")?;
        let tenant = self.tenant.clone();
        let (seen, rec) = self.stored_json(&keys::user(&tenant, &id)).await?;
        self.eq(&seen, &rec, "/version", json!(1))?;

        self.step("conditional requests: PATCH with If-Match listing the current version");
        let list = format!("W/\"0\", {created}");
        let ex = self.scim_with(Method::PATCH, &user, Some(&ops), &[(header::IF_MATCH, &list)]).await?;
        let patched = match self.patch_answer(&ex)? {
            Some(v) => {
                self.eq(&ex.seen, &v, "/displayName", json!("Conditional"))?;
                self.etag(&ex, Some(&v))?
            }
            None => self.etag(&ex, None)?,
        };
        self.ok(patched != created, &ex.seen, || format!("a new ETag, not {created}"))?;

        self.step("conditional requests: PUT with the old version: 412; with *: 200");
        let ex = self.scim_with(Method::PUT, &user, Some(&body), &[(header::IF_MATCH, &created)]).await?;
        self.precondition_failed(&ex)?;
        let ex = self.scim_with(Method::PUT, &user, Some(&body), &[(header::IF_MATCH, "*")]).await?;
        let v = self.body(&ex, &[200])?;
        let replaced = self.etag(&ex, Some(&v))?;
        self.absent(&ex.seen, &v, "/displayName")?;

        self.step("conditional requests: a group (ETag on 201, 304, member PATCH 204 with ETag)");
        let name = format!("Conditional_Group_{}", self.guid());
        let gbody = json!({"schemas": [GROUP_SCHEMA], "displayName": name});
        let ex = self.scim(Method::POST, "Groups", Some(&gbody)).await?;
        let v = self.body(&ex, &[201])?;
        let gid = self.string_at(&ex.seen, &v, "/id")?;
        let gcreated = self.etag(&ex, Some(&v))?;
        let group = format!("Groups/{gid}");
        let ex = self.scim_with(Method::GET, &group, None, &[(header::IF_NONE_MATCH, &gcreated)]).await?;
        self.status(&ex, &[304])?;
        self.ok(ex.body.is_empty(), &ex.seen, || "no body with 304".into())?;
        let add = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": self.op("Add"), "path": "members", "value": [{"value": id}]}
        ]});
        let ex = self.scim_with(Method::PATCH, &group, Some(&add), &[(header::IF_MATCH, stale)]).await?;
        self.precondition_failed(&ex)?;
        self.member(&gid, &id, false).await?;
        let ex = self.scim_with(Method::PATCH, &group, Some(&add), &[(header::IF_MATCH, &gcreated)]).await?;
        self.no_content(&ex)?;
        let gpatched = self.etag(&ex, None)?;
        self.ok(gpatched != gcreated, &ex.seen, || format!("a new ETag, not {gcreated}"))?;
        self.member(&gid, &id, true).await?;
        let ex = self.scim_with(Method::GET, &group, None, &[(header::IF_NONE_MATCH, &gcreated)]).await?;
        let v = self.body(&ex, &[200])?;
        self.eq(&ex.seen, &v, "/meta/version", json!(gpatched))?;
        self.etag(&ex, Some(&v))?;

        self.step("conditional requests: DELETE with a stale If-Match: 412; with the current: 204");
        let ex = self.scim_with(Method::DELETE, &group, None, &[(header::IF_MATCH, &gcreated)]).await?;
        self.precondition_failed(&ex)?;
        self.stored_json(&keys::group(&tenant, &gid)).await?;
        let ex = self.scim_with(Method::DELETE, &group, None, &[(header::IF_MATCH, &gpatched)]).await?;
        self.no_content(&ex)?;
        self.stored_absent(&keys::group(&tenant, &gid)).await?;
        self.member(&gid, &id, false).await?;
        let ex = self.scim_with(Method::DELETE, &user, None, &[(header::IF_MATCH, &patched)]).await?;
        self.precondition_failed(&ex)?;
        self.stored_user(&User { id: id.clone(), ..u.clone() }, "active").await?;
        let ex = self.scim_with(Method::DELETE, &user, None, &[(header::IF_MATCH, &replaced)]).await?;
        self.no_content(&ex)?;
        self.stored_absent(&keys::user(&tenant, &id)).await
    }

    async fn update_user(&mut self, mut u: User) -> Result<User, Failure> {
        self.step("update user: snapshot");
        let (_, before) = self.get_user(&u.id).await?;
        let old_version = before.pointer("/meta/version").cloned();
        let old_external = u.external_id.clone();
        u.external_id = self.guid();
        u.email = format!("updatedEmail_{}@testuser.com", self.guid());
        let employee_number = format!("{ENTERPRISE}:employeeNumber");
        let work_email = "emails[type eq \"work\"].value";
        let ops = if self.opt() {
            self.step("update user: path-less multi-attribute replace (aadOptscim062020)");
            vec![
                json!({"op": "replace", "value": {
                    "displayName": "Kkom Unua",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    "externalId": u.external_id,
                    employee_number.clone(): "Aklq"
                }}),
                json!({"op": "replace", "path": work_email, "value": u.email}),
                json!({"op": "add", "path": "nickName", "value": "Babs"}),
                json!({"op": "add", "path": "addresses[type eq \"work\"].locality", "value": "Redmond"}),
                json!({"op": "add", "path": "addresses[type eq \"work\"].postalCode", "value": "98052"}),
            ]
        } else {
            self.step("update user: one op per attribute (default)");
            vec![
                json!({"op": "Replace", "path": "displayName", "value": "Kkom Unua"}),
                json!({"op": "Replace", "path": work_email, "value": u.email}),
                json!({"op": "Replace", "path": "name.givenName", "value": "Kkom"}),
                json!({"op": "Replace", "path": "name.familyName", "value": "Unua"}),
                json!({"op": "Replace", "path": "externalId", "value": u.external_id}),
                json!({"op": "Replace", "path": employee_number, "value": "Aklq"}),
                json!({"op": "Add", "path": "nickName", "value": "Babs"}),
                json!({"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Redmond"}),
                json!({"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "98052"}),
            ]
        };
        let ex = self.scim(Method::PATCH, &format!("Users/{}", u.id), Some(&patch(ops))).await?;
        if let Some(v) = self.patch_answer(&ex)? {
            self.check_updated(&ex.seen, &v, &u)?;
        }

        self.step("update user: read back");
        let (seen, v) = self.get_user(&u.id).await?;
        self.check_updated(&seen, &v, &u)?;
        let version = v.pointer("/meta/version").cloned();
        self.ok(version != old_version, &seen, || {
            format!("meta.version changed by the update (was {})", show(old_version.as_ref()))
        })?;

        let rec = self.stored_user(&u, "active").await?;
        let seen = Seen {
            request: format!("store: {}", keys::user(&self.tenant, &u.id)),
            got: clip(&rec.to_string()),
        };
        self.eq(&seen, &rec, "/attributes/name/givenName", json!("Kkom"))?;
        let tenant = self.tenant.clone();
        self.stored_id(&keys::index(&tenant, Index::UserExternalId, &u.external_id), &u.id).await?;
        self.stored_absent(&keys::index(&tenant, Index::UserExternalId, &old_external)).await?;
        Ok(u)
    }

    fn check_updated(&mut self, seen: &Seen, v: &Value, u: &User) -> Result<(), Failure> {
        self.check_user(seen, v, u)?;
        self.eq(seen, v, "/displayName", json!("Kkom Unua"))?;
        self.eq(seen, v, "/name/givenName", json!("Kkom"))?;
        self.eq(seen, v, "/name/familyName", json!("Unua"))?;
        self.eq(seen, v, &format!("/{ENTERPRISE}/employeeNumber"), json!("Aklq"))?;
        self.has_str(seen, v, "/schemas", ENTERPRISE)?;
        self.eq(seen, v, "/nickName", json!("Babs"))?;
        let primary = typed(v, "emails", "work").first().and_then(|e| e.get("primary")).cloned();
        self.ok(primary == Some(json!(true)), seen, || "the work email is still primary".into())?;
        let work = typed(v, "addresses", "work");
        let one = work.len() == 1
            && work.first().and_then(|a| a.get("locality")) == Some(&json!("Redmond"))
            && work.first().and_then(|a| a.get("postalCode")) == Some(&json!("98052"));
        self.ok(one, seen, || {
            "exactly one work address holding both locality \"Redmond\" and postalCode \"98052\"".into()
        })?;
        for literal in [
            "name.givenName",
            "name.familyName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        ] {
            let stored_literally =
                v.as_object().is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case(literal)));
            self.ok(!stored_literally, seen, || {
                format!("\"{literal}\" resolved as a path, not kept as a key")
            })?;
        }
        Ok(())
    }

    async fn manager(&mut self, a: &User) -> Result<User, Failure> {
        self.step("manager: create the manager");
        let m = self.new_user();
        let body = Self::user_body(&m, false);
        let (m, _) = self.create_user(m, &body).await?;

        self.step("manager: set (bare string value)");
        let path = format!("{ENTERPRISE}:manager");
        let ops = vec![json!({"op": self.op("Add"), "path": path, "value": m.id})];
        let ex = self.scim(Method::PATCH, &format!("Users/{}", a.id), Some(&patch(ops))).await?;
        let pointer = format!("/{ENTERPRISE}/manager/value");
        if let Some(v) = self.patch_answer(&ex)? {
            self.eq(&ex.seen, &v, &pointer, json!(m.id))?;
        }
        let (seen, v) = self.get_user(&a.id).await?;
        self.eq(&seen, &v, &pointer, json!(m.id))?;
        Ok(m)
    }

    async fn rename_user(&mut self, mut u: User) -> Result<User, Failure> {
        self.step("rename userName");
        let old = u.user_name.clone();
        u.user_name = format!("{}@testuser.com", self.guid());
        let ops = vec![json!({"op": self.op("Replace"), "path": "userName", "value": u.user_name})];
        let ex = self.scim(Method::PATCH, &format!("Users/{}", u.id), Some(&patch(ops))).await?;
        if let Some(v) = self.patch_answer(&ex)? {
            self.eq(&ex.seen, &v, "/userName", json!(u.user_name))?;
        }
        self.find("Users?", &format!("userName eq \"{}\"", u.user_name), &[&u.id]).await?;
        self.find("Users?", &format!("userName eq \"{old}\""), &[]).await?;
        let tenant = self.tenant.clone();
        self.stored_absent(&keys::index(&tenant, Index::UserName, &old)).await?;
        self.stored_id(&keys::index(&tenant, Index::UserName, &u.user_name), &u.id).await?;
        self.stored_user(&u, "active").await?;
        Ok(u)
    }

    async fn get_group(&mut self, g: &Group, params: &str) -> Result<(Seen, Value), Failure> {
        let ex = self.scim(Method::GET, &format!("Groups/{}{params}", g.id), None).await?;
        let v = self.body(&ex, &[200])?;
        self.eq(&ex.seen, &v, "/id", json!(g.id))?;
        self.eq(&ex.seen, &v, "/displayName", json!(g.display_name))?;
        Ok((ex.seen, v))
    }

    /// GET the group and check its `members` are exactly `want` (any order).
    async fn group_members(&mut self, g: &Group, want: &[&str]) -> Result<(), Failure> {
        let (seen, v) = self.get_group(g, "").await?;
        let members = member_values(&v);
        let found: BTreeSet<&str> = members.iter().map(String::as_str).collect();
        let wanted: BTreeSet<&str> = want.iter().copied().collect();
        let ok = found == wanted && members.len() == want.len();
        self.ok(ok, &seen, || format!("members with exactly the values {want:?}"))
    }

    async fn group_patch(&mut self, g: &Group, ops: Vec<Value>) -> Result<(), Failure> {
        let ex = self.scim(Method::PATCH, &format!("Groups/{}", g.id), Some(&patch(ops))).await?;
        self.no_content(&ex)
    }

    async fn groups(&mut self, a: &User, m: &User) -> Result<Group, Failure> {
        self.step("create group");
        let mut g = Group {
            id: String::new(),
            display_name: format!("Test_Group_{}", self.guid()),
            external_id: self.guid(),
        };
        let body = json!({
            "schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
            "externalId": g.external_id,
            "displayName": g.display_name,
            "meta": {"resourceType": "Group"}
        });
        let ex = self.scim(Method::POST, "Groups", Some(&body)).await?;
        let v = self.body(&ex, &[201])?;
        g.id = self.string_at(&ex.seen, &v, "/id")?;
        self.ok(keys::valid_id(&g.id), &ex.seen, || "an id of 32 lower-case hex digits".into())?;
        self.has_str(&ex.seen, &v, "/schemas", GROUP_SCHEMA)?;
        self.eq(&ex.seen, &v, "/displayName", json!(g.display_name))?;
        self.eq(&ex.seen, &v, "/externalId", json!(g.external_id))?;
        self.eq(&ex.seen, &v, "/meta/resourceType", json!("Group"))?;
        let members = v.get("members");
        self.ok(members.is_none() || members == Some(&json!([])), &ex.seen, || {
            "members [] (or absent)".into()
        })?;
        let location = ex.header(header::LOCATION);
        let meta_location = v.pointer("/meta/location").and_then(Value::as_str);
        let suffix = format!("/Groups/{}", g.id);
        self.ok(
            location.as_deref() == meta_location && meta_location.is_some_and(|l| l.ends_with(&suffix)),
            &ex.seen,
            || format!("a Location header equal to meta.location, ending in {suffix}"),
        )?;
        let tenant = self.tenant.clone();
        self.stored_json(&keys::group(&tenant, &g.id)).await?;
        self.stored_id(&keys::index(&tenant, Index::GroupName, &g.display_name), &g.id).await?;
        self.stored_id(&keys::index(&tenant, Index::GroupExternalId, &g.external_id), &g.id).await?;

        self.step("create group: same displayName in another case");
        // Entra allows two groups with one name, and assigns both to an app.
        let dup = json!({
            "schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
            "externalId": self.guid(),
            "displayName": swap_case(&g.display_name),
            "meta": {"resourceType": "Group"}
        });
        let ex = self.scim(Method::POST, "Groups", Some(&dup)).await?;
        let v = self.body(&ex, &[201])?;
        let dup_id = self.string_at(&ex.seen, &v, "/id")?;
        let by_name = format!("displayName eq \"{}\"", g.display_name);
        self.find("Groups?excludedAttributes=members&", &by_name, &[&g.id, &dup_id]).await?;
        let name_key = keys::index(&tenant, Index::GroupName, &g.display_name);
        self.stored_ids(&name_key, &[&g.id, &dup_id]).await?;
        self.step("delete the group that shared the displayName");
        let ex = self.scim(Method::DELETE, &format!("Groups/{dup_id}"), None).await?;
        self.no_content(&ex)?;
        self.find("Groups?excludedAttributes=members&", &by_name, &[&g.id]).await?;
        self.stored_ids(&name_key, &[&g.id]).await?;

        self.step("find group");
        let filter = format!("displayName eq \"{}\"", g.display_name);
        let rel = format!("Groups?excludedAttributes=members&filter={}", encode(&filter));
        let found = self.query(&rel, 1).await?;
        let first = found.first().cloned().unwrap_or(Value::Null);
        let seen = Seen { request: format!("GET …/{rel}"), got: clip(&first.to_string()) };
        self.eq(&seen, &first, "/id", json!(g.id))?;
        self.absent(&seen, &first, "/members")?;

        self.step("get group without members");
        let (seen, v) = self.get_group(&g, "?excludedAttributes=members").await?;
        self.absent(&seen, &v, "/members")?;

        self.step("add members (one PATCH, both users)");
        let add = vec![json!({"op": self.op("Add"), "path": "members", "value": [
            {"$ref": null, "value": a.id},
            {"$ref": null, "value": m.id}
        ]})];
        self.group_patch(&g, add.clone()).await?;
        self.step("add members again (idempotent)");
        self.group_patch(&g, add).await?;
        self.group_members(&g, &[&a.id, &m.id]).await?;

        self.step("membership check");
        let gid = g.id.clone();
        self.find("Groups?", &format!("id eq \"{gid}\" and members eq \"{}\"", a.id), &[&gid]).await?;
        let stranger = self.unknown_id();
        self.find("Groups?", &format!("id eq \"{gid}\" and members eq \"{stranger}\""), &[]).await?;
        self.member(&gid, &a.id, true).await?;
        self.member(&gid, &m.id, true).await?;

        self.step("rename group");
        let old_name = g.display_name.clone();
        g.display_name = format!("{old_name}_updatedDisplayName");
        let ops = vec![json!({"op": self.op("Replace"), "path": "displayName", "value": g.display_name})];
        self.group_patch(&g, ops).await?;
        self.get_group(&g, "?excludedAttributes=members").await?;
        self.find(
            "Groups?excludedAttributes=members&",
            &format!("displayName eq \"{}\"", g.display_name),
            &[&gid],
        )
        .await?;
        self.find("Groups?excludedAttributes=members&", &format!("displayName eq \"{old_name}\""), &[])
            .await?;
        self.stored_absent(&keys::index(&tenant, Index::GroupName, &old_name)).await?;
        self.stored_id(&keys::index(&tenant, Index::GroupName, &g.display_name), &gid).await?;

        let ops = if self.opt() {
            self.step("remove one member (members[value eq …])");
            vec![json!({"op": "remove", "path": format!("members[value eq \"{}\"]", m.id)})]
        } else {
            self.step("remove one member (Remove members with a value list)");
            vec![json!({"op": "Remove", "path": "members", "value": [{"$ref": null, "value": m.id}]})]
        };
        self.group_patch(&g, ops).await?;
        self.group_members(&g, &[&a.id]).await?;
        self.find("Groups?", &format!("id eq \"{gid}\" and members eq \"{}\"", m.id), &[]).await?;
        self.find("Groups?", &format!("id eq \"{gid}\" and members eq \"{}\"", a.id), &[&gid]).await?;
        self.member(&gid, &m.id, false).await?;
        self.member(&gid, &a.id, true).await?;
        Ok(g)
    }

    /// `active` in the dialect's form: `"False"`/`"True"` strings by default, booleans with the flag.
    fn active_value(&self, active: bool) -> Value {
        match (self.opt(), active) {
            (true, b) => json!(b),
            (false, true) => json!("True"),
            (false, false) => json!("False"),
        }
    }

    async fn set_active(&mut self, u: &User, g: &Group, active: bool) -> Result<(), Failure> {
        let ops =
            vec![json!({"op": self.op("Replace"), "path": "active", "value": self.active_value(active)})];
        let ex = self.scim(Method::PATCH, &format!("Users/{}", u.id), Some(&patch(ops))).await?;
        if let Some(v) = self.patch_answer(&ex)? {
            self.eq(&ex.seen, &v, "/active", json!(active))?;
        }
        let (seen, v) = self.get_user(&u.id).await?;
        self.check_user(&seen, &v, u)?;
        self.eq(&seen, &v, "/active", json!(active))?;
        // Soft delete: a disabled user is still found by Entra's matching query.
        let filter = format!("userName eq \"{}\"", u.user_name);
        let rel = format!("Users?filter={}", encode(&filter));
        let found = self.query(&rel, 1).await?;
        let first = found.first().cloned().unwrap_or(Value::Null);
        let seen = Seen { request: format!("GET …/{rel}"), got: clip(&first.to_string()) };
        self.eq(&seen, &first, "/id", json!(u.id))?;
        self.eq(&seen, &first, "/active", json!(active))?;
        self.stored_user(u, if active { "active" } else { "disabled" }).await?;
        self.member(&g.id, &u.id, true).await?;
        self.group_members(g, &[&u.id]).await
    }

    async fn disable_and_reenable(&mut self, u: &User, g: &Group) -> Result<(), Failure> {
        self.step("disable user (unassigned in Entra)");
        self.set_active(u, g, false).await?;

        self.step("roles cannot be provisioned");
        let ops = vec![json!({"op": self.op("Add"), "path": "roles", "value": [
            {"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Administrator"}
        ]})];
        let ex = self.scim(Method::PATCH, &format!("Users/{}", u.id), Some(&patch(ops))).await?;
        // Accepted-and-ignored or rejected are both fine; the stored role is what matters.
        self.status(&ex, &[200, 204, 400, 403])?;
        self.stored_user(u, "disabled").await?;

        self.step("re-enable user");
        self.set_active(u, g, true).await
    }

    async fn hard_delete(&mut self, u: &User, g: &Group) -> Result<(), Failure> {
        self.step("hard delete user");
        let ex = self.scim(Method::DELETE, &format!("Users/{}", u.id), None).await?;
        self.no_content(&ex)?;
        let ex = self.scim(Method::GET, &format!("Users/{}", u.id), None).await?;
        self.scim_error(&ex, 404, None)?;
        self.find("Users?", &format!("userName eq \"{}\"", u.user_name), &[]).await?;
        self.find("Users?", &format!("externalId eq \"{}\"", u.external_id), &[]).await?;
        let tenant = self.tenant.clone();
        self.stored_absent(&keys::user(&tenant, &u.id)).await?;
        self.stored_absent(&keys::index(&tenant, Index::UserName, &u.user_name)).await?;
        self.stored_absent(&keys::index(&tenant, Index::UserExternalId, &u.external_id)).await?;
        self.stored_absent(&keys::membership(&tenant, &g.id, &u.id)).await?;
        self.stored_absent(&keys::user_groups(&tenant, &u.id)).await?;
        self.group_members(g, &[]).await?;

        self.step("hard delete user again");
        let ex = self.scim(Method::DELETE, &format!("Users/{}", u.id), None).await?;
        self.scim_error(&ex, 404, None)?;
        Ok(())
    }

    /// The product guide: "If you need to remove a user's access urgently, manually remove them
    /// from the Users page." The removal leaves a block that Entra's next cycle — an attribute
    /// change (PATCH), re-enable (PATCH `active` true, path and path-less), PUT, and its
    /// match-before-create (query, then POST) — cannot undo, while another person sharing its
    /// `externalId` can still be provisioned; an administrator lifts it; Entra's hard delete
    /// lifts it too.
    /// Leaves the tenant without the users it created.
    async fn urgent_removal(&mut self, g: &Group) -> Result<(), Failure> {
        self.step("urgent removal: user provisioned and in a group");
        let u = self.new_user();
        let body = Self::user_body(&u, !self.opt());
        let (u, _) = self.create_user(u, &body).await?;
        let add = vec![json!({"op": self.op("Add"), "path": "members", "value": [{"value": u.id}]})];
        let ex = self.scim(Method::PATCH, &format!("Groups/{}", g.id), Some(&patch(add))).await?;
        self.status(&ex, &[200, 204])?;
        self.member(&g.id, &u.id, true).await?;

        self.step("urgent removal: removed by hand on the Users page");
        let tenant = self.tenant.clone();
        let admin = self.admin.clone();
        let users = format!("/admin/v1/tenants/{tenant}/users");
        let ex = self.admin_call(Method::DELETE, &format!("{users}/{}", u.id), Some(&admin), None).await?;
        self.status(&ex, &[204])?;
        let blocked_at = self.listed_block(&u, true).await?;
        self.stored_absent(&keys::user(&tenant, &u.id)).await?;
        self.stored_absent(&keys::membership(&tenant, &g.id, &u.id)).await?;
        self.stored_json(&keys::block(&tenant, &u.id)).await?;
        // The userName's entry stays, naming the removed id: the block's anchor.
        self.stored_id(&keys::index(&tenant, Index::UserName, &u.user_name), &u.id).await?;
        // `externalId` is not unique by default (two people may share one): the block does
        // not cover it (`blocks` module doc).
        self.stored_absent(&keys::block_external_id(&tenant, &u.external_id)).await?;
        let ex = self.scim(Method::GET, &format!("Users/{}", u.id), None).await?;
        self.scim_error(&ex, 404, None)?;

        self.step("urgent removal: Entra updates an attribute (PATCH)");
        let change =
            vec![json!({"op": self.op("Replace"), "path": "displayName", "value": "Changed In Entra"})];
        let ex = self.scim(Method::PATCH, &format!("Users/{}", u.id), Some(&patch(change))).await?;
        self.refused_by_block(&ex, &u, &blocked_at)?;

        self.step("urgent removal: Entra re-enables (PATCH active true)");
        let on = self.active_value(true);
        let with_path = vec![json!({"op": self.op("Replace"), "path": "active", "value": on})];
        let ex = self.scim(Method::PATCH, &format!("Users/{}", u.id), Some(&patch(with_path))).await?;
        self.refused_by_block(&ex, &u, &blocked_at)?;
        let pathless = vec![json!({"op": self.op("Replace"), "value": {"active": self.active_value(true)}})];
        let ex = self.scim(Method::PATCH, &format!("Users/{}", u.id), Some(&patch(pathless))).await?;
        self.refused_by_block(&ex, &u, &blocked_at)?;

        self.step("urgent removal: Entra replaces the user (PUT active true)");
        let ex = self.scim(Method::PUT, &format!("Users/{}", u.id), Some(&body)).await?;
        self.refused_by_block(&ex, &u, &blocked_at)?;

        self.step("urgent removal: Entra's match-before-create, then create");
        self.find("Users?", &format!("userName eq \"{}\"", u.user_name), &[]).await?;
        let ex = self.scim(Method::POST, "Users", Some(&body)).await?;
        self.refused_by_block(&ex, &u, &blocked_at)?;
        let mut other_case = body.clone();
        if let Some(o) = other_case.as_object_mut() {
            o.insert("userName".into(), json!(swap_case(&u.user_name)));
        }
        let ex = self.scim(Method::POST, "Users", Some(&other_case)).await?;
        self.refused_by_block(&ex, &u, &blocked_at)?;

        self.step("urgent removal: another person with the same externalId is not blocked");
        // By default two people may share an externalId (Entra fills it from mailNickname):
        // a create under another userName is another person, not the removed one.
        let other = User { user_name: format!("Other_{}", self.guid()), id: String::new(), ..u.clone() };
        let (other, _) = self.create_user(other.clone(), &Self::user_body(&other, false)).await?;
        let ex = self.scim(Method::DELETE, &format!("Users/{}", other.id), None).await?;
        self.no_content(&ex)?;

        self.step("urgent removal: the user stays absent");
        self.find("Users?", &format!("userName eq \"{}\"", u.user_name), &[]).await?;
        self.find("Users?", &format!("externalId eq \"{}\"", u.external_id), &[]).await?;
        self.find("Users?", &format!("userName eq \"{}\"", other.user_name), &[]).await?;
        self.stored_absent(&keys::user(&tenant, &u.id)).await?;
        let ex = self.admin_call(Method::GET, &format!("{users}/{}", u.id), Some(&admin), None).await?;
        self.status(&ex, &[404])?;
        self.group_members(g, &[]).await?;

        self.step("urgent removal: an administrator lifts the block");
        let blocks = format!("/admin/v1/tenants/{tenant}/blocks");
        let ex = self.admin_call(Method::DELETE, &format!("{blocks}/{}", u.id), Some(&admin), None).await?;
        self.status(&ex, &[204])?;
        self.listed_block(&u, false).await?;
        self.stored_absent(&keys::block(&tenant, &u.id)).await?;
        self.stored_absent(&keys::block_external_id(&tenant, &u.external_id)).await?;
        self.stored_absent(&keys::index(&tenant, Index::UserName, &u.user_name)).await?;
        let ex = self.admin_call(Method::DELETE, &format!("{blocks}/{}", u.id), Some(&admin), None).await?;
        self.status(&ex, &[404])?;

        self.step("urgent removal: Entra's next create succeeds");
        let (again, _) = self.create_user(u.clone(), &body).await?;
        self.ok(again.id != u.id, &Seen::default(), || "a new id".into())?;

        self.step("urgent removal: removed by hand again, then hard-deleted in Entra");
        let ex =
            self.admin_call(Method::DELETE, &format!("{users}/{}", again.id), Some(&admin), None).await?;
        self.status(&ex, &[204])?;
        self.listed_block(&again, true).await?;
        let ex = self.scim(Method::DELETE, &format!("Users/{}", again.id), None).await?;
        self.no_content(&ex)?;
        self.listed_block(&again, false).await?;
        self.stored_absent(&keys::block(&tenant, &again.id)).await?;
        self.stored_absent(&keys::index(&tenant, Index::UserName, &again.user_name)).await?;
        let ex = self.scim(Method::DELETE, &format!("Users/{}", again.id), None).await?;
        self.scim_error(&ex, 404, None)?;

        self.step("urgent removal: the name is free again");
        let (last, _) = self.create_user(again.clone(), &body).await?;
        let ex = self.scim(Method::DELETE, &format!("Users/{}", last.id), None).await?;
        self.no_content(&ex)?;

        self.step("urgent removal: blocks and lifts are in the provisioning log");
        let log = format!("/admin/v1/tenants/{tenant}/log?resourceType=User&count=100");
        let ex = self.admin_call(Method::GET, &log, Some(&admin), None).await?;
        self.status(&ex, &[200])?;
        let v = self.parse(&ex)?;
        let entries = v.get("entries").and_then(Value::as_array).cloned().unwrap_or_default();
        let has = |op: &str, target: &str, status: u64| {
            entries.iter().any(|e| {
                e.get("operation").and_then(Value::as_str) == Some(op)
                    && e.get("target").and_then(Value::as_str) == Some(target)
                    && e.get("status").and_then(Value::as_u64) == Some(status)
            })
        };
        for (op, target, status) in [
            ("user.remove", &u.id, 204),
            ("user.block", &u.id, 204),
            ("user.update", &u.id, 403),
            ("user.replace", &u.id, 403),
            ("user.unblock", &u.id, 204),
            ("user.block", &again.id, 204),
            ("user.unblock", &again.id, 204),
        ] {
            self.ok(has(op, target, status), &ex.seen, || {
                format!("a {op} entry for {target} with status {status}")
            })?;
        }
        let refused = entries.iter().any(|e| {
            e.get("operation").and_then(Value::as_str) == Some("user.create")
                && e.get("status").and_then(Value::as_u64) == Some(403)
                && e.get("detail")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.contains("blocked by a tenant administrator"))
        });
        self.ok(refused, &ex.seen, || "a refused user.create entry with the block's detail".into())
    }

    /// Whether the admin API lists a block on `u` (and shows it); returns its `blockedAt`.
    async fn listed_block(&mut self, u: &User, want: bool) -> Result<String, Failure> {
        let admin = self.admin.clone();
        let path = format!("/admin/v1/tenants/{}/blocks", self.tenant);
        let ex = self.admin_call(Method::GET, &path, Some(&admin), None).await?;
        self.status(&ex, &[200])?;
        let v = self.parse(&ex)?;
        let block = v
            .get("blocks")
            .and_then(Value::as_array)
            .and_then(|b| b.iter().find(|b| b.get("id").and_then(Value::as_str) == Some(u.id.as_str())))
            .cloned();
        self.ok(block.is_some() == want, &ex.seen, || {
            format!("the block on {} {}listed", u.id, if want { "" } else { "no longer " })
        })?;
        let Some(block) = block else { return Ok(String::new()) };
        let seen = Seen { request: format!("GET {path}"), got: clip(&block.to_string()) };
        self.eq(&seen, &block, "/userName", json!(u.user_name))?;
        self.eq(&seen, &block, "/externalId", json!(u.external_id))?;
        self.eq(&seen, &block, "/blockedBy/type", json!("operator"))?;
        let at = self.string_at(&seen, &block, "/blockedAt")?;
        let ex = self.admin_call(Method::GET, &format!("{path}/{}", u.id), Some(&admin), None).await?;
        self.status(&ex, &[200])?;
        let one = self.parse(&ex)?;
        self.eq(&ex.seen, &one, "/blockedAt", json!(at))?;
        Ok(at)
    }

    /// A SCIM write refused by the block on `u`: 403, a detail that says who blocked it and when.
    fn refused_by_block(&mut self, ex: &Exchange, u: &User, blocked_at: &str) -> Result<(), Failure> {
        let v = self.scim_error(ex, 403, None)?;
        self.absent(&ex.seen, &v, "/scimType")?;
        let detail = self.string_at(&ex.seen, &v, "/detail")?;
        let ok = detail.contains("blocked by a tenant administrator")
            && detail.contains(blocked_at)
            && detail.contains(&u.user_name);
        self.ok(ok, &ex.seen, || {
            format!("a detail saying {:?} was blocked by a tenant administrator at {blocked_at}", u.user_name)
        })
    }

    /// Creates more users and pages through all of them; returns every user id of the tenant.
    async fn paging(&mut self, m: &User) -> Result<Vec<String>, Failure> {
        self.step("paging: create more users");
        let mut all = vec![m.id.clone()];
        for _ in 0..4 {
            let u = self.new_user();
            let body = Self::user_body(&u, !self.opt());
            let (u, _) = self.create_user(u, &body).await?;
            all.push(u.id);
        }
        let total = u64::try_from(all.len()).unwrap_or(u64::MAX);

        self.step("paging: pages of 2");
        let mut seen_ids: Vec<String> = Vec::new();
        let mut first_page: Vec<String> = Vec::new();
        for start in [1u64, 3, 5] {
            let ex = self.scim(Method::GET, &format!("Users?startIndex={start}&count=2"), None).await?;
            let resources = self.list(&ex, Some(total))?;
            let v = self.parse(&ex)?;
            let expect = total.saturating_sub(start - 1).min(2);
            self.eq(&ex.seen, &v, "/startIndex", json!(start))?;
            self.eq(&ex.seen, &v, "/itemsPerPage", json!(expect))?;
            let len = u64::try_from(resources.len()).unwrap_or(u64::MAX);
            self.ok(len == expect, &ex.seen, || format!("{expect} entries in Resources"))?;
            let ids = ids_of(&resources);
            let fresh = ids.iter().all(|id| !seen_ids.contains(id));
            self.ok(fresh, &ex.seen, || format!("ids not on earlier pages {seen_ids:?}"))?;
            if start == 1 {
                first_page.clone_from(&ids);
            }
            seen_ids.extend(ids);
        }
        let found: BTreeSet<&String> = seen_ids.iter().collect();
        let wanted: BTreeSet<&String> = all.iter().collect();
        let seen = Seen { request: "GET …/Users pages 1,3,5 of 2".into(), got: format!("{seen_ids:?}") };
        self.ok(found == wanted && seen_ids.len() == all.len(), &seen, || {
            format!("every user exactly once: {all:?}")
        })?;

        self.step("paging: overlapping page");
        let ex = self.scim(Method::GET, "Users?startIndex=2&count=2", None).await?;
        let resources = self.list(&ex, Some(total))?;
        let ids = ids_of(&resources);
        let expected: Vec<String> = seen_ids.iter().skip(1).take(2).cloned().collect();
        self.ok(ids == expected, &ex.seen, || format!("the 2nd and 3rd users {expected:?}"))?;

        self.step("attributes=userName");
        let ex = self.scim(Method::GET, "Users?attributes=userName", None).await?;
        let resources = self.list(&ex, Some(total))?;
        self.ok(resources.len() == all.len(), &ex.seen, || format!("{} entries in Resources", all.len()))?;
        for r in &resources {
            self.string_at(&ex.seen, r, "/id")?;
            self.string_at(&ex.seen, r, "/userName")?;
            self.absent(&ex.seen, r, "/emails")?;
            self.absent(&ex.seen, r, "/name")?;
        }
        Ok(all)
    }

    async fn discovery(&mut self) -> Result<(), Failure> {
        self.step("discovery: ServiceProviderConfig");
        let ex = self.scim(Method::GET, "ServiceProviderConfig", None).await?;
        let v = self.body(&ex, &[200])?;
        self.has_str(&ex.seen, &v, "/schemas", SPC_SCHEMA)?;
        self.eq(&ex.seen, &v, "/patch/supported", json!(true))?;
        self.eq(&ex.seen, &v, "/filter/supported", json!(true))?;
        let max = v.pointer("/filter/maxResults").is_some_and(Value::is_u64);
        self.ok(max, &ex.seen, || "filter.maxResults a number".into())?;

        self.step("discovery: Schemas");
        let ex = self.scim(Method::GET, "Schemas", None).await?;
        let resources = self.list(&ex, None)?;
        let ids = ids_of(&resources);
        for want in [USER_SCHEMA, ENTERPRISE, GROUP_SCHEMA] {
            self.ok(ids.iter().any(|i| i == want), &ex.seen, || format!("a Schema resource with id {want}"))?;
        }

        self.step("discovery: ResourceTypes");
        let ex = self.scim(Method::GET, "ResourceTypes", None).await?;
        let resources = self.list(&ex, None)?;
        let names: Vec<&str> =
            resources.iter().filter_map(|r| r.get("name").and_then(Value::as_str)).collect();
        for want in ["User", "Group"] {
            self.ok(names.contains(&want), &ex.seen, || format!("a ResourceType named {want}"))?;
        }

        self.step("discovery: POST /Schemas");
        let ex = self.scim(Method::POST, "Schemas", Some(&json!({"schemas": [USER_SCHEMA]}))).await?;
        self.status(&ex, &[405])?;
        Ok(())
    }

    async fn delete_group(&mut self, g: &Group) -> Result<(), Failure> {
        self.step("delete group");
        let ex = self.scim(Method::DELETE, &format!("Groups/{}", g.id), None).await?;
        self.no_content(&ex)?;
        let ex = self.scim(Method::GET, &format!("Groups/{}", g.id), None).await?;
        self.scim_error(&ex, 404, None)?;
        self.find(
            "Groups?excludedAttributes=members&",
            &format!("displayName eq \"{}\"", g.display_name),
            &[],
        )
        .await?;
        let tenant = self.tenant.clone();
        self.stored_absent(&keys::group(&tenant, &g.id)).await?;
        self.stored_absent(&keys::index(&tenant, Index::GroupName, &g.display_name)).await?;
        self.stored_absent(&keys::index(&tenant, Index::GroupExternalId, &g.external_id)).await
    }

    async fn regenerate(&mut self, all: &[String]) -> Result<(), Failure> {
        let old = self.conn.clone();
        let new = self.generate("regenerate SCIM settings").await?;
        let seen = Seen { request: "POST /admin/v1/tenants/…/scim (again)".into(), got: new.url.clone() };
        self.ok(new.url != old.url && new.id != old.id, &seen, || format!("a new url, not {}", old.url))?;
        self.ok(new.token != old.token, &seen, || "a new token".into())?;

        self.step("regenerate: old credentials stop working");
        for (base, token) in [(&old.base, &old.token), (&new.base, &old.token), (&old.base, &new.token)] {
            let ex = self.scim_raw(Method::GET, base, Some(token), "Users", None).await?;
            self.unauthorized(&ex)?;
        }

        self.step("regenerate: new credentials see the same data");
        self.conn = new;
        let ex = self.scim(Method::GET, "Users", None).await?;
        let total = u64::try_from(all.len()).unwrap_or(u64::MAX);
        let resources = self.list(&ex, Some(total))?;
        let found: BTreeSet<String> = ids_of(&resources).into_iter().collect();
        let wanted: BTreeSet<String> = all.iter().cloned().collect();
        self.ok(found == wanted, &ex.seen, || format!("the users created earlier: {all:?}"))?;
        self.admin_read_configuration().await?;

        self.step("revoke SCIM configuration");
        let path = format!("/admin/v1/tenants/{}/scim", self.tenant);
        let admin = self.admin.clone();
        let ex = self.admin_call(Method::DELETE, &path, Some(&admin), None).await?;
        self.status(&ex, &[204])?;
        let ex = self.scim(Method::GET, "Users", None).await?;
        self.unauthorized(&ex)
    }

    async fn plan_gate(&mut self) -> Result<(), Failure> {
        self.step("plan: downgrade to basic");
        let path = format!("/admin/v1/tenants/{}", self.tenant);
        let admin = self.admin.clone();
        let body = json!({"name": "Entra test", "plan": "basic"});
        let ex = self.admin_call(Method::PUT, &path, Some(&admin), Some(&body)).await?;
        self.status(&ex, &[200])?;

        self.step("plan: SCIM needs the Advanced plan");
        let ex = self.admin_call(Method::POST, &format!("{path}/scim"), Some(&admin), None).await?;
        self.status(&ex, &[403])?;
        let detail = serde_json::from_slice::<Value>(&ex.body)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| ex.text());
        self.ok(detail.to_ascii_lowercase().contains("advanced"), &ex.seen, || {
            "a detail that names the Advanced plan".into()
        })
    }
}

// ---------------------------------------------------------------------------------------
// Pure helpers

fn patch(ops: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path of an absolute http(s) URL, without a trailing slash; `None` if not absolute.
fn url_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let slash = rest.find('/')?;
    let (host, path) = rest.split_at(slash);
    if host.is_empty() || path.contains('?') || path.contains('#') {
        return None;
    }
    Some(path.trim_end_matches('/').to_owned())
}

/// Rough entropy of a token from its alphabet: hex 4 bits a character, base64(url) 6.
fn token_bits(token: &str) -> usize {
    let t = token.trim_end_matches('=');
    if t.bytes().all(|b| b.is_ascii_hexdigit()) {
        t.len() * 4
    } else if t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/')) {
        t.len() * 6
    } else {
        0
    }
}

/// Whether a stored record holds SHA-256(token) in a usual encoding.
fn holds_sha256_of(record: &str, token: &str) -> bool {
    let hash = Sha256::digest(token.as_bytes());
    let encodings = [hex::encode(hash), hex::encode_upper(hash), base64(&hash, false), base64(&hash, true)];
    if encodings.iter().any(|e| record.contains(e.as_str())) {
        return true;
    }
    let bytes: Vec<Value> = hash.iter().map(|b| json!(b)).collect();
    serde_json::from_str::<Value>(record).is_ok_and(|v| contains_value(&v, &Value::Array(bytes)))
}

fn contains_value(v: &Value, want: &Value) -> bool {
    v == want
        || match v {
            Value::Array(a) => a.iter().any(|x| contains_value(x, want)),
            Value::Object(o) => o.values().any(|x| contains_value(x, want)),
            _ => false,
        }
}

/// Unpadded base64 (standard or URL-safe alphabet).
fn base64(bytes: &[u8], url_safe: bool) -> String {
    let table: &[u8] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..=chunk.len() {
            let idx = (n >> (18 - 6 * i)) & 63;
            out.push(table.get(idx as usize).map_or('A', |&c| char::from(c)));
        }
    }
    out
}

fn is_weak_etag(s: &str) -> bool {
    s.len() > 4 && s.starts_with("W/\"") && s.ends_with('"')
}

/// The JSON pointer of the first `null` in `v`, if any.
fn first_null(v: &Value, at: &str) -> Option<String> {
    match v {
        Value::Null => Some(if at.is_empty() { "/".into() } else { at.to_owned() }),
        Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| first_null(x, &format!("{at}/{i}"))),
        Value::Object(o) => o.iter().find_map(|(k, x)| first_null(x, &format!("{at}/{k}"))),
        _ => None,
    }
}

/// Entries of the multi-valued `attr` whose `type` is `ty`.
fn typed<'v>(v: &'v Value, attr: &str, ty: &str) -> Vec<&'v Value> {
    v.get(attr)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|e| e.get("type").and_then(Value::as_str) == Some(ty)).collect())
        .unwrap_or_default()
}

fn ids_of(resources: &[Value]) -> Vec<String> {
    resources.iter().filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned)).collect()
}

/// The `value`s of a group's `members` (none when `members` is absent).
fn member_values(group: &Value) -> Vec<String> {
    group
        .get("members")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn swap_case(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_lowercase() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing".into(), |v| clip(&v.to_string()))
}

fn alternatives(want: &[u16]) -> String {
    want.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
}

fn clip(s: &str) -> String {
    if s.chars().count() > CLIP {
        let mut out: String = s.chars().take(CLIP).collect();
        out.push_str("… (clipped)");
        out
    } else {
        s.to_owned()
    }
}

fn describe_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> String {
    let mut s = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    for (name, value) in headers {
        s.push_str(&format!("\n{name}: {}", String::from_utf8_lossy(value.as_bytes())));
    }
    if !body.is_empty() {
        s.push('\n');
        s.push_str(&clip(&String::from_utf8_lossy(body)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(encode("userName eq \"a b\""), "userName%20eq%20%22a%20b%22");
        assert_eq!(url_path("https://x.example/scim/v2/ab").as_deref(), Some("/scim/v2/ab"));
        assert_eq!(url_path("/scim/v2/ab"), None);
        assert_eq!(token_bits(&"a".repeat(32)), 128);
        assert!(token_bits(&"Z".repeat(22)) >= 128);
        assert_eq!(base64(b"foob", false), "Zm9vYg");
        assert_eq!(base64(&[0xfb, 0xff], true), "-_8");
        assert_eq!(first_null(&json!({"a": [1, null]}), "").as_deref(), Some("/a/1"));
        assert_eq!(swap_case("Test_User"), "tEST_uSER");
        assert!(is_weak_etag("W/\"1\""));
        assert!(!is_weak_etag("\"1\""));
        assert_eq!(block_on(async { 7 }), Some(7));
    }
}
