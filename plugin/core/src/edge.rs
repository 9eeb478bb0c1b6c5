//! The gateway's enforcement of what the identity provider provisioned ("edge"): on the
//! product's own routes, the caller that an authentication filter in front of scim-edge
//! identified is looked up in the tenant's users, and the request is let through with the
//! caller's tenant, id, role and state in headers, or refused (403, or 503 when the store
//! cannot tell).
//!
//! Everything here is pure or store-only: the host adapter reads the request's headers and
//! metadata, calls [`EdgeConfig::identify`], asks its per-worker [`Cache`] (or runs
//! [`look_up`] against the store), and applies the [`Decision`] of [`decide`]: it sets
//! [`Decision::Allow`]'s headers and lets the request continue upstream, or sends the reply of
//! [`Decision::reply`].
//!
//! ## Configuration (`"edge"`, off unless present)
//! ```json
//! {"identity": {"header": "x-jwt-email"},
//!  "match": "userName",
//!  "tenant": {"fixed": "acme"},
//!  "routes": [{"prefix": "/app/"}],
//!  "unknown": "deny",
//!  "storeUnavailable": "deny",
//!  "headers": {"tenant": "x-scim-edge-tenant", "userId": "x-scim-edge-user-id",
//!              "role": "x-scim-edge-role", "state": "x-scim-edge-state"},
//!  "cacheTtlMs": 1000, "cacheEntries": 10000}
//! ```
//! - `identity`: where the caller's identity is, as written by a filter in front of this one:
//!   `{"header": name}` (jwt_authn `claim_to_headers`, an ext_authz response header, an
//!   identity-aware proxy's trusted header), `{"payloadHeader": name, "claim": c}` (jwt_authn
//!   `forward_payload_header`: base64url JSON of the JWT payload), or
//!   `{"metadata": namespace, "key": k, "claim": c}` (dynamic metadata, e.g. jwt_authn
//!   `payload_in_metadata`: namespace `envoy.filters.http.jwt_authn`). A header that appears
//!   more than once is refused (`unauthenticated`): a forged copy next to the real one.
//! - `match`: the SCIM attribute the identity is: `userName` (case-insensitively), `externalId`
//!   (needs `scim.uniqueness.externalId: true`, or two users could share it) or `id`.
//! - `tenant`: `{"fixed": t}`, `{"header": name}`, `{"claim": c}` (a claim of the identity's
//!   payload or metadata) or `{"hostSuffix": ".apps.example.com"}` (the Host minus the suffix).
//! - `routes`: the guarded paths (`{"prefix": p}` or `{"path": p}`; default: every path).
//!   SCIM and admin paths are scim-edge's own and never guarded.
//! - `unknown`: a caller with no identity, an unknown tenant or no such user: `deny` (403) or
//!   `pass` (upstream without the headers). Disabled and blocked callers are always refused.
//! - `storeUnavailable`: `deny` (503 with `Retry-After`, the default) or `pass` (unmarked).
//! - `headers`: the names of the headers set for the product. They, and `X-Acting-User`, are
//!   removed from every request a client sends ([`strip_list`]), guarded or not.
//! - `cacheTtlMs` (default 1000, 0 = no cache, at most 60000): how long a worker reuses a
//!   lookup. A change (disable, re-enable, role, removal) is enforced within it everywhere.
//!
//! ## Cost
//! [`look_up`] reads at most three keys (index entry, user record, block), two for most
//! callers; a cached caller costs none.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::config::ConfigError;
use crate::keys::{self, Index};
use crate::lifecycle::UserState;
use crate::store::{Store, StoreError};
use crate::{blocks, index, router, users, Config, Env};

pub const DEFAULT_TTL_MS: u64 = 1000;
const MAX_TTL_MS: u64 = 60_000;
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// The `Retry-After` of a 503 (seconds).
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The default names of the headers set for the product.
pub const DEFAULT_HEADERS: HeaderNames<'static> = HeaderNames {
    tenant: "x-scim-edge-tenant",
    user_id: "x-scim-edge-user-id",
    role: "x-scim-edge-role",
    state: "x-scim-edge-state",
};

/// The names of the four headers the product gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderNames<'a> {
    pub tenant: &'a str,
    pub user_id: &'a str,
    pub role: &'a str,
    pub state: &'a str,
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    Header(String),
    PayloadHeader { header: String, claim: String },
    Metadata { namespace: String, key: String, claim: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Match {
    #[serde(rename = "userName")]
    UserName,
    #[serde(rename = "externalId")]
    ExternalId,
    #[serde(rename = "id")]
    Id,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantSource {
    Fixed(String),
    Header(String),
    Claim(String),
    HostSuffix(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum RouteMatch {
    Prefix(String),
    Path(String),
}

/// What happens to an unknown caller, or to every guarded request while the store is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Policy {
    Deny,
    Pass,
}

/// The validated `edge` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeConfig {
    pub identity: IdentitySource,
    pub matching: Match,
    pub tenant: TenantSource,
    pub routes: Vec<RouteMatch>,
    pub unknown: Policy,
    pub store_unavailable: Policy,
    pub headers: [String; 4],
    pub cache_ttl_ms: u64,
    pub cache_entries: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    identity: RawSource,
    #[serde(rename = "match")]
    matching: Option<Match>,
    tenant: RawTenant,
    routes: Option<Vec<RouteMatch>>,
    unknown: Option<Policy>,
    store_unavailable: Option<Policy>,
    headers: Option<RawHeaders>,
    cache_ttl_ms: Option<u64>,
    cache_entries: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSource {
    header: Option<String>,
    payload_header: Option<String>,
    metadata: Option<String>,
    key: Option<String>,
    claim: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawTenant {
    fixed: Option<String>,
    header: Option<String>,
    claim: Option<String>,
    host_suffix: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawHeaders {
    tenant: Option<String>,
    user_id: Option<String>,
    role: Option<String>,
    state: Option<String>,
}

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(format!("edge: {}", msg.into()))
}

/// A lower-case HTTP header name (a token), not a pseudo-header.
fn header_name(what: &str, name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        return Err(bad(format!("{what} {name:?} is not a header name")));
    }
    Ok(name.to_ascii_lowercase())
}

fn claim_name(what: &str, c: &str) -> Result<String, ConfigError> {
    if c.is_empty() || c.len() > 100 {
        return Err(bad(format!("{what} must be a claim name")));
    }
    Ok(c.to_owned())
}

impl EdgeConfig {
    /// Parses and validates the `edge` section; `scim` is the core's configuration, which a
    /// setting here may contradict.
    pub fn from_value(v: &Value, scim: &Config) -> Result<EdgeConfig, ConfigError> {
        let raw = Raw::deserialize(v).map_err(|e| bad(e.to_string()))?;
        let s = raw.identity;
        let identity =
            match (s.header, s.payload_header, s.metadata) {
                (Some(h), None, None) if s.key.is_none() && s.claim.is_none() => {
                    IdentitySource::Header(header_name("identity.header", &h)?)
                }
                (None, Some(h), None) if s.key.is_none() => IdentitySource::PayloadHeader {
                    header: header_name("identity.payloadHeader", &h)?,
                    claim: claim_name("identity.claim", s.claim.as_deref().unwrap_or_default())?,
                },
                (None, None, Some(ns)) => IdentitySource::Metadata {
                    namespace: claim_name("identity.metadata", &ns)?,
                    key: claim_name("identity.key", s.key.as_deref().unwrap_or_default())?,
                    claim: claim_name("identity.claim", s.claim.as_deref().unwrap_or_default())?,
                },
                _ => return Err(bad(
                    "identity must be one of {\"header\": name}, {\"payloadHeader\": name, \"claim\": c} \
                     or {\"metadata\": namespace, \"key\": k, \"claim\": c}",
                )),
            };
        let matching = raw.matching.unwrap_or(Match::UserName);
        if matching == Match::ExternalId && !scim.uniqueness.external_id {
            return Err(bad(
                "match \"externalId\" needs scim.uniqueness.externalId: true (otherwise two users may \
                 share one externalId and the caller would be ambiguous)",
            ));
        }
        let t = raw.tenant;
        let tenant = match (t.fixed, t.header, t.claim, t.host_suffix) {
            (Some(f), None, None, None) => {
                if !keys::valid_tenant(&f) {
                    return Err(bad(format!("tenant.fixed {f:?} is not a tenant id")));
                }
                TenantSource::Fixed(f)
            }
            (None, Some(h), None, None) => TenantSource::Header(header_name("tenant.header", &h)?),
            (None, None, Some(c), None) => {
                if matches!(identity, IdentitySource::Header(_)) {
                    return Err(bad(
                        "tenant.claim needs an identity with claims (payloadHeader or metadata)",
                    ));
                }
                TenantSource::Claim(claim_name("tenant.claim", &c)?)
            }
            (None, None, None, Some(s)) => {
                if !s.starts_with('.') || s.len() < 2 {
                    return Err(bad(format!(
                        "tenant.hostSuffix {s:?} must start with a dot, e.g. \".apps.example.com\""
                    )));
                }
                TenantSource::HostSuffix(s.to_ascii_lowercase())
            }
            _ => {
                return Err(bad(
                    "tenant must be one of {\"fixed\": t}, {\"header\": name}, {\"claim\": c} or {\"hostSuffix\": s}",
                ))
            }
        };
        let routes = raw.routes.unwrap_or_else(|| vec![RouteMatch::Prefix("/".into())]);
        if routes.is_empty() {
            return Err(bad("routes is empty: omit it to guard every path"));
        }
        for r in &routes {
            let (RouteMatch::Prefix(p) | RouteMatch::Path(p)) = r;
            if !p.starts_with('/') {
                return Err(bad(format!("route {p:?} must start with /")));
            }
        }
        let h = raw.headers.unwrap_or_default();
        let d = DEFAULT_HEADERS;
        let headers = [
            header_name("headers.tenant", h.tenant.as_deref().unwrap_or(d.tenant))?,
            header_name("headers.userId", h.user_id.as_deref().unwrap_or(d.user_id))?,
            header_name("headers.role", h.role.as_deref().unwrap_or(d.role))?,
            header_name("headers.state", h.state.as_deref().unwrap_or(d.state))?,
        ];
        for (i, name) in headers.iter().enumerate() {
            if headers.iter().take(i).any(|n| n == name) {
                return Err(bad(format!("header {name:?} is named twice")));
            }
            let read = match (&identity, &tenant) {
                (IdentitySource::Header(x) | IdentitySource::PayloadHeader { header: x, .. }, _)
                    if x == name =>
                {
                    true
                }
                (_, TenantSource::Header(x)) => x == name,
                _ => false,
            };
            if read || name == crate::admin::ACTING_USER_HEADER || name == "host" {
                return Err(bad(format!(
                    "header {name:?} is read by scim-edge; the product's headers must be others"
                )));
            }
        }
        let cache_ttl_ms = raw.cache_ttl_ms.unwrap_or(DEFAULT_TTL_MS);
        if cache_ttl_ms > MAX_TTL_MS {
            return Err(bad(format!("cacheTtlMs must be at most {MAX_TTL_MS}, got {cache_ttl_ms}")));
        }
        let cache_entries = raw.cache_entries.unwrap_or(DEFAULT_CACHE_ENTRIES);
        if !(1..=1_000_000).contains(&cache_entries) {
            return Err(bad("cacheEntries must be between 1 and 1000000"));
        }
        Ok(EdgeConfig {
            identity,
            matching,
            tenant,
            routes,
            unknown: raw.unknown.unwrap_or(Policy::Deny),
            store_unavailable: raw.store_unavailable.unwrap_or(Policy::Deny),
            headers,
            cache_ttl_ms,
            cache_entries,
        })
    }

    /// Whether the request to `path` (without its query) is guarded. scim-edge's own paths
    /// never are.
    pub fn guards(&self, path: &str) -> bool {
        if !matches!(router::route(path), router::Route::Other) {
            return false;
        }
        self.routes.iter().any(|r| match r {
            RouteMatch::Prefix(p) => path.starts_with(p.as_str()),
            RouteMatch::Path(p) => path == p,
        })
    }

    /// The product's header names (tenant, user id, role, state).
    pub fn header_names(&self) -> HeaderNames<'_> {
        let [tenant, user_id, role, state] = &self.headers;
        HeaderNames { tenant, user_id, role, state }
    }

    /// The dynamic-metadata property paths the adapter must read for [`EdgeConfig::identify`]
    /// (Envoy's `metadata.filter_metadata.<namespace>.<key>.<claim>`), at most two.
    pub fn metadata_paths(&self) -> Vec<[&str; 5]> {
        let IdentitySource::Metadata { namespace, key, claim } = &self.identity else {
            return Vec::new();
        };
        let mut out = vec![["metadata", "filter_metadata", namespace, key, claim]];
        if let TenantSource::Claim(c) = &self.tenant {
            out.push(["metadata", "filter_metadata", namespace, key, c]);
        }
        out
    }

    /// Who the request says its caller is. `headers` are the request's headers as the host
    /// has them (lower-case names; `:authority` among them); `metadata` holds the values of
    /// [`EdgeConfig::metadata_paths`], in order (`None`: absent).
    pub fn identify(
        &self,
        headers: &[(String, Vec<u8>)],
        metadata: &[Option<Vec<u8>>],
    ) -> Result<CallerKey, Reason> {
        let claims = match &self.identity {
            IdentitySource::Header(_) => Claims::None,
            IdentitySource::PayloadHeader { header, .. } => {
                let raw = one_header(headers, header)?.ok_or(Reason::Unauthenticated)?;
                Claims::Json(decode_payload(raw).ok_or(Reason::Unauthenticated)?)
            }
            IdentitySource::Metadata { .. } => Claims::Metadata(metadata),
        };
        let value = match &self.identity {
            IdentitySource::Header(h) => {
                one_header(headers, h)?.and_then(text).map(str::to_owned).ok_or(Reason::Unauthenticated)?
            }
            IdentitySource::PayloadHeader { claim, .. } | IdentitySource::Metadata { claim, .. } => {
                claims.get(claim, 0).ok_or(Reason::Unauthenticated)?
            }
        };
        let value = value.trim();
        if value.is_empty() || value.len() > 512 {
            return Err(Reason::Unauthenticated);
        }
        let tenant = match &self.tenant {
            TenantSource::Fixed(t) => t.clone(),
            TenantSource::Header(h) => {
                one_header(headers, h)?.and_then(text).map(str::trim).ok_or(Reason::Unknown)?.to_owned()
            }
            TenantSource::Claim(c) => claims.get(c, 1).ok_or(Reason::Unknown)?,
            TenantSource::HostSuffix(suffix) => {
                let host = one_header(headers, ":authority")?
                    .or(one_header(headers, "host")?)
                    .and_then(text)
                    .ok_or(Reason::Unknown)?;
                let host = match host.rsplit_once(':') {
                    Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
                    _ => host,
                };
                let host = host.to_ascii_lowercase();
                host.strip_suffix(suffix.as_str()).ok_or(Reason::Unknown)?.to_owned()
            }
        };
        if !keys::valid_tenant(&tenant) {
            return Err(Reason::Unknown);
        }
        let value = match self.matching {
            Match::UserName => value.to_lowercase(),
            Match::ExternalId | Match::Id => value.to_owned(),
        };
        Ok(CallerKey { tenant, value })
    }
}

/// The value of header `name`, if it appears once; two copies are refused.
fn one_header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Result<Option<&'a [u8]>, Reason> {
    let mut found = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice());
    let first = found.next();
    if found.next().is_some() {
        // Two copies: one may be a client's forgery next to the authenticated one.
        return Err(Reason::Unauthenticated);
    }
    Ok(first)
}

fn text(v: &[u8]) -> Option<&str> {
    std::str::from_utf8(v).ok()
}

/// jwt_authn's `forward_payload_header`: the payload's base64url (with or without padding).
fn decode_payload(raw: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let raw = text(raw)?.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

enum Claims<'a> {
    None,
    Json(serde_json::Map<String, Value>),
    Metadata(&'a [Option<Vec<u8>>]),
}

impl Claims<'_> {
    /// The string claim `name`; `slot` is its position in the metadata values.
    fn get(&self, name: &str, slot: usize) -> Option<String> {
        match self {
            Claims::None => None,
            Claims::Json(m) => m.get(name)?.as_str().map(str::to_owned),
            Claims::Metadata(values) => {
                values.get(slot)?.as_deref().and_then(text).filter(|s| !s.is_empty()).map(str::to_owned)
            }
        }
    }
}

/// A caller as the cache and the store know it: the tenant and the identity's value
/// (lower-cased for `userName`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CallerKey {
    pub tenant: String,
    pub value: String,
}

/// What the store says about a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    Active {
        id: String,
        role: String,
    },
    Disabled,
    /// Removed by a tenant administrator: the block stands (`crate::blocks`).
    Blocked,
    /// Not provisioned in the tenant (never, or deleted by SCIM, which leaves no trace).
    Unknown,
}

/// Looks the caller up: at most three reads (index entry, record, block), none of them a
/// write. A stale index entry (a rename half done) that points at a record without the
/// value is no match.
pub async fn look_up<S: Store>(
    env: &Env<'_, S>,
    how: Match,
    key: &CallerKey,
) -> Result<Standing, StoreError> {
    let t = key.tenant.as_str();
    let v = key.value.as_str();
    let id = match how {
        Match::Id => v.to_owned(),
        Match::UserName | Match::ExternalId => {
            let ix = if how == Match::UserName { Index::UserName } else { Index::UserExternalId };
            match index::lookup(env, t, ix, v).await.map_err(store_error)?.into_iter().next() {
                Some(id) => id,
                None if how == Match::ExternalId => {
                    // A removal releases the externalId entry; its block keeps the value.
                    let blocked = blocks::on_external_id(env, t, v).await.map_err(store_error)?;
                    return Ok(if blocked.is_some() { Standing::Blocked } else { Standing::Unknown });
                }
                None => return Ok(Standing::Unknown),
            }
        }
    };
    if !keys::valid_id(&id) {
        return Ok(Standing::Unknown);
    }
    if let Some((rec, _)) = users::load(env, t, &id).await.map_err(store_error)? {
        let holds = match how {
            Match::Id => true,
            Match::UserName => rec.user_name().is_some_and(|u| u.to_lowercase() == v),
            Match::ExternalId => rec.external_id() == Some(v),
        };
        return Ok(match (holds, rec.state) {
            (false, _) => Standing::Unknown,
            (true, UserState::Active) => Standing::Active { id: rec.id, role: rec.role },
            (true, UserState::Disabled) => Standing::Disabled,
        });
    }
    let block = blocks::get(env, t, &id).await.map_err(store_error)?;
    let holds = block.as_ref().is_some_and(|b| match how {
        Match::Id => true,
        Match::UserName => b.user_name.to_lowercase() == v,
        Match::ExternalId => b.external_id.as_deref() == Some(v),
    });
    Ok(if holds { Standing::Blocked } else { Standing::Unknown })
}

/// The store's reads fail only as the store does; a corrupt record reads as unavailable
/// (refused, never let through).
fn store_error(e: crate::ScimError) -> StoreError {
    StoreError::Unavailable(e.detail)
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No identity (or two) where the configuration says it is.
    Unauthenticated,
    /// No such user in the tenant (or no tenant).
    Unknown,
    Disabled,
    Blocked,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unauthenticated => "unauthenticated",
            Reason::Unknown => "unknown",
            Reason::Disabled => "disabled",
            Reason::Blocked => "blocked",
        }
    }
}

/// What the adapter does with a guarded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Upstream, with these headers (name, value) set.
    Allow(Vec<(String, String)>),
    /// Upstream without the headers (the policy passes unknown callers, or an outage).
    PassUnmarked,
    Deny(Reason),
    /// The store could not tell: 503.
    Unavailable,
}

/// The decision for a caller `identify` could or could not name, and the lookup's result.
pub fn decide(cfg: &EdgeConfig, key: &CallerKey, standing: Result<&Standing, ()>) -> Decision {
    match standing {
        Err(()) => match cfg.store_unavailable {
            Policy::Deny => Decision::Unavailable,
            Policy::Pass => Decision::PassUnmarked,
        },
        Ok(Standing::Active { id, role }) => {
            let h = cfg.header_names();
            Decision::Allow(vec![
                (h.tenant.to_owned(), key.tenant.clone()),
                (h.user_id.to_owned(), id.clone()),
                (h.role.to_owned(), role.clone()),
                (h.state.to_owned(), "active".to_owned()),
            ])
        }
        Ok(Standing::Disabled) => Decision::Deny(Reason::Disabled),
        Ok(Standing::Blocked) => Decision::Deny(Reason::Blocked),
        Ok(Standing::Unknown) => refuse(cfg, Reason::Unknown),
    }
}

/// The decision for a request [`EdgeConfig::identify`] refused.
pub fn refuse(cfg: &EdgeConfig, reason: Reason) -> Decision {
    match (reason, cfg.unknown) {
        (Reason::Unauthenticated | Reason::Unknown, Policy::Pass) => Decision::PassUnmarked,
        _ => Decision::Deny(reason),
    }
}

impl Decision {
    /// The local reply of a refusal; `None` when the request goes upstream. The body names the
    /// reason, never the caller's data.
    pub fn reply(&self) -> Option<http::Response<Bytes>> {
        let (status, body, retry) = match self {
            Decision::Allow(_) | Decision::PassUnmarked => return None,
            Decision::Deny(r) => (
                http::StatusCode::FORBIDDEN,
                format!(r#"{{"error":"forbidden","reason":"{}"}}"#, r.name()),
                false,
            ),
            Decision::Unavailable => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error":"unavailable","reason":"store_unavailable"}"#.to_owned(),
                true,
            ),
        };
        let mut b = http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CACHE_CONTROL, "no-store");
        if retry {
            b = b.header(http::header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string());
        }
        b.body(Bytes::from(body)).ok()
    }

    /// The stat this decision counts in (`crate::metrics`).
    pub fn metric(&self) -> &'static str {
        match self {
            Decision::Allow(_) => "scim_edge.edge.allowed",
            Decision::PassUnmarked => "scim_edge.edge.passed_unmarked",
            Decision::Deny(Reason::Unauthenticated) => "scim_edge.edge.denied.unauthenticated",
            Decision::Deny(Reason::Unknown) => "scim_edge.edge.denied.unknown",
            Decision::Deny(Reason::Disabled) => "scim_edge.edge.denied.disabled",
            Decision::Deny(Reason::Blocked) => "scim_edge.edge.denied.blocked",
            Decision::Unavailable => "scim_edge.edge.unavailable",
        }
    }
}

/// The request headers a gateway removes from every client request before anything else:
/// `X-Acting-User` and the product's edge headers (the configured names, else the defaults,
/// so that a product reading them is safe even while the edge is off).
pub fn strip_list(cfg: Option<&EdgeConfig>) -> Vec<&str> {
    let h = cfg.map_or(DEFAULT_HEADERS, EdgeConfig::header_names);
    let mut out: Vec<&str> = crate::admin::PRODUCT_HEADERS.to_vec();
    out.extend([h.tenant, h.user_id, h.role, h.state]);
    out
}

/// A worker's memory of recent lookups. Pure: the caller passes the time.
///
/// An entry is used for at most the TTL after its lookup, never longer. In the second half of
/// its TTL the first request to see it is told to look the caller up again (a refresh) while
/// the others keep using it: a busy caller's entry is renewed before it expires, instead of
/// expiring under a crowd of concurrent requests that would all look the caller up at once.
pub struct Cache {
    ttl_ms: u64,
    capacity: usize,
    entries: BTreeMap<CallerKey, Entry>,
}

struct Entry {
    standing: Standing,
    /// When it was looked up.
    at: u64,
    /// When a request was told to refresh it (a refresh that never came back, its client gone,
    /// is handed to another request after a quarter of the TTL).
    refreshing: Option<u64>,
}

impl Cache {
    pub fn new(cfg: &EdgeConfig) -> Cache {
        Cache { ttl_ms: cfg.cache_ttl_ms, capacity: cfg.cache_entries, entries: BTreeMap::new() }
    }

    /// Whether this cache was built for `cfg`'s policy (a reconfigured filter starts afresh).
    pub fn fits(&self, cfg: &EdgeConfig) -> bool {
        self.ttl_ms == cfg.cache_ttl_ms && self.capacity == cfg.cache_entries
    }

    fn fresh(&self, fetched: u64, now: u64) -> bool {
        fetched <= now && now - fetched < self.ttl_ms
    }

    /// The caller's standing if it was looked up less than the TTL ago, unless this request
    /// is the one to refresh it (see [`Cache`]): then `None`, and the caller looks it up.
    pub fn get(&mut self, key: &CallerKey, now: u64) -> Option<&Standing> {
        let half = self.ttl_ms / 2;
        let fresh = self.entries.get(key).is_some_and(|e| self.fresh(e.at, now));
        let entry = self.entries.get_mut(key).filter(|_| fresh)?;
        let aging = now - entry.at >= half;
        let handed_on = (self.ttl_ms / 4).max(1);
        let claimable = entry.refreshing.is_none_or(|since| since > now || now - since >= handed_on);
        if aging && claimable {
            entry.refreshing = Some(now);
            return None;
        }
        Some(&entry.standing)
    }

    /// Remembers a lookup made at `now`. At capacity, expired entries go first, then all.
    pub fn put(&mut self, key: CallerKey, standing: Standing, now: u64) {
        if self.ttl_ms == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let ttl = self.ttl_ms;
            self.entries.retain(|_, e| e.at <= now && now - e.at < ttl);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.insert(key, Entry { standing, at: now, refreshing: None });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Actor;
    use crate::testing::{FixedClock, MemStore, SeqRandom};
    use crate::users::Scope;
    use serde_json::json;

    fn cfg(v: Value) -> EdgeConfig {
        EdgeConfig::from_value(&v, &Config::default()).unwrap()
    }

    fn err(v: Value) -> String {
        EdgeConfig::from_value(&v, &Config::default()).err().map(|e| e.0).unwrap_or_default()
    }

    fn hdrs(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
    }

    fn basic() -> EdgeConfig {
        cfg(
            json!({"identity": {"header": "x-user"}, "tenant": {"fixed": "acme"}, "routes": [{"prefix": "/app/"}]}),
        )
    }

    #[test]
    fn defaults_and_validation() {
        let c = cfg(json!({"identity": {"header": "X-User"}, "tenant": {"fixed": "acme"}}));
        assert_eq!(c.identity, IdentitySource::Header("x-user".into()));
        assert_eq!(
            (c.matching, c.unknown, c.store_unavailable),
            (Match::UserName, Policy::Deny, Policy::Deny)
        );
        assert_eq!((c.cache_ttl_ms, c.routes.clone()), (1000, vec![RouteMatch::Prefix("/".into())]));
        assert_eq!(c.header_names(), DEFAULT_HEADERS);
        assert!(err(json!({"identity": {}, "tenant": {"fixed": "a"}})).contains("identity must be"));
        assert!(err(json!({"identity": {"header": "x", "claim": "c"}, "tenant": {"fixed": "a"}}))
            .contains("identity must be"));
        assert!(
            err(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a/b"}})).contains("tenant.fixed")
        );
        assert!(
            err(json!({"identity": {"header": "x"}, "tenant": {"claim": "tid"}})).contains("tenant.claim")
        );
        assert!(err(json!({"identity": {"header": "x"}, "tenant": {"hostSuffix": "x.com"}})).contains("dot"));
        assert!(err(json!({"identity": {"header": "x y"}, "tenant": {"fixed": "a"}})).contains("header name"));
        assert!(err(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "match": "externalId"}))
            .contains("uniqueness.externalId"));
        let unique = Config {
            uniqueness: crate::config::UniqueAttributes { external_id: true, group_display_name: false },
            ..Config::default()
        };
        assert!(EdgeConfig::from_value(
            &json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "match": "externalId"}),
            &unique
        )
        .is_ok());
        assert!(err(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "routes": []}))
            .contains("empty"));
        assert!(err(
            json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "routes": [{"prefix": "a"}]})
        )
        .contains("start with /"));
        assert!(err(json!({"identity": {"header": "x-scim-edge-role"}, "tenant": {"fixed": "a"}}))
            .contains("read by scim-edge"));
        assert!(err(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "headers": {"role": "x-acting-user"}}))
            .contains("read by scim-edge"));
        assert!(err(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "headers": {"role": "x-scim-edge-tenant"}}))
            .contains("named twice"));
        assert!(err(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "cacheTtlMs": 60001}))
            .contains("cacheTtlMs"));
        assert!(err(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "unknown": "allow"}))
            .contains("unknown variant"));
        assert!(err(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "failOpen": true}))
            .contains("failOpen"));
    }

    #[test]
    fn routes_never_guard_scim_edges_own_paths() {
        let all = cfg(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}}));
        assert!(all.guards("/") && all.guards("/app/x"));
        assert!(!all.guards("/scim/v2/abc/Users") && !all.guards("/admin/v1/tenants"));
        let some = basic();
        assert!(some.guards("/app/") && some.guards("/app/x") && !some.guards("/public"));
        let exact =
            cfg(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "routes": [{"path": "/me"}]}));
        assert!(exact.guards("/me") && !exact.guards("/me/x"));
    }

    #[test]
    fn identity_from_a_header_a_payload_or_metadata() {
        let c = basic();
        let key = c.identify(&hdrs(&[("x-user", " Ada@Acme.example ")]), &[]).unwrap();
        assert_eq!(key, CallerKey { tenant: "acme".into(), value: "ada@acme.example".into() });
        assert_eq!(c.identify(&hdrs(&[]), &[]), Err(Reason::Unauthenticated));
        assert_eq!(c.identify(&hdrs(&[("x-user", "")]), &[]), Err(Reason::Unauthenticated));
        // A second copy (a forgery next to the authenticated one) is refused.
        assert_eq!(
            c.identify(&hdrs(&[("x-user", "a@x"), ("X-User", "admin@x")]), &[]),
            Err(Reason::Unauthenticated)
        );

        let p = cfg(json!({"identity": {"payloadHeader": "x-jwt-payload", "claim": "preferred_username"},
                           "tenant": {"claim": "tid"}}));
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = b64.encode(br#"{"preferred_username":"Bob@X","tid":"acme","n":1}"#);
        let key = p.identify(&hdrs(&[("x-jwt-payload", &payload)]), &[]).unwrap();
        assert_eq!(key, CallerKey { tenant: "acme".into(), value: "bob@x".into() });
        let no_tid = b64.encode(br#"{"preferred_username":"bob"}"#);
        assert_eq!(p.identify(&hdrs(&[("x-jwt-payload", &no_tid)]), &[]), Err(Reason::Unknown));
        assert_eq!(p.identify(&hdrs(&[("x-jwt-payload", "!!")]), &[]), Err(Reason::Unauthenticated));
        let bad_tenant = b64.encode(br#"{"preferred_username":"bob","tid":"../x"}"#);
        assert_eq!(p.identify(&hdrs(&[("x-jwt-payload", &bad_tenant)]), &[]), Err(Reason::Unknown));

        let m = cfg(json!({"identity": {"metadata": "envoy.filters.http.jwt_authn", "key": "jwt_payload",
                                        "claim": "sub"}, "match": "id", "tenant": {"claim": "tid"}}));
        assert_eq!(
            m.metadata_paths(),
            vec![
                ["metadata", "filter_metadata", "envoy.filters.http.jwt_authn", "jwt_payload", "sub"],
                ["metadata", "filter_metadata", "envoy.filters.http.jwt_authn", "jwt_payload", "tid"]
            ]
        );
        let key = m.identify(&[], &[Some(b"ABC".to_vec()), Some(b"t1".to_vec())]).unwrap();
        assert_eq!(key, CallerKey { tenant: "t1".into(), value: "ABC".into() });
        assert_eq!(m.identify(&[], &[None, Some(b"t1".to_vec())]), Err(Reason::Unauthenticated));

        let h = cfg(json!({"identity": {"header": "x-user"}, "tenant": {"hostSuffix": ".apps.example.com"}}));
        let ok = h.identify(&hdrs(&[(":authority", "Acme.apps.example.com:8443"), ("x-user", "a")]), &[]);
        assert_eq!(ok.map(|k| k.tenant), Ok("acme".to_owned()));
        let ok = h.identify(&hdrs(&[(":authority", "acme.apps.example.com"), ("x-user", "a")]), &[]);
        assert_eq!(ok.map(|k| k.tenant), Ok("acme".to_owned()));
        let other = h.identify(&hdrs(&[(":authority", "evil.com"), ("x-user", "a")]), &[]);
        assert_eq!(other, Err(Reason::Unknown));
    }

    struct World {
        store: MemStore,
        clock: FixedClock,
        random: SeqRandom,
        config: Config,
    }

    impl World {
        fn new() -> World {
            let config = Config {
                uniqueness: crate::config::UniqueAttributes { external_id: true, group_display_name: false },
                ..Config::default()
            };
            World { store: MemStore::new(), clock: FixedClock::default(), random: SeqRandom::new(7), config }
        }
        fn env(&self) -> Env<'_, MemStore> {
            Env { store: &self.store, clock: &self.clock, random: &self.random, config: &self.config }
        }
        fn create(&self, user_name: &str, active: bool) -> String {
            let body = json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": user_name,
                              "externalId": format!("x-{user_name}"), "active": active});
            let scope = Scope { tenant: "acme", base: "https://x/scim/v2/c" };
            let (rec, _) = crate::testing::scenario::block_on(users::create(&self.env(), &scope, &body))
                .unwrap()
                .unwrap();
            rec.id
        }
        /// The standing and the store operations the lookup cost.
        fn look(&self, how: Match, value: &str) -> (Standing, u64) {
            let before = self.store.ops();
            let key = CallerKey { tenant: "acme".into(), value: value.into() };
            let s = crate::testing::scenario::block_on(look_up(&self.env(), how, &key)).unwrap().unwrap();
            (s, self.store.ops() - before)
        }
    }

    #[test]
    fn lookups_read_at_most_three_keys_and_follow_every_state() {
        let w = World::new();
        let ada = w.create("Ada@acme.example", true);
        let bob = w.create("bob@acme.example", false);
        let active = Standing::Active { id: ada.clone(), role: "user".into() };
        assert_eq!(w.look(Match::UserName, "ada@acme.example"), (active.clone(), 2));
        assert_eq!(w.look(Match::ExternalId, "x-Ada@acme.example"), (active.clone(), 2));
        assert_eq!(w.look(Match::Id, &ada), (active, 1));
        assert_eq!(w.look(Match::UserName, "bob@acme.example"), (Standing::Disabled, 2));
        assert_eq!(w.look(Match::UserName, "nobody@acme.example"), (Standing::Unknown, 1));
        assert_eq!(w.look(Match::ExternalId, "x-nobody"), (Standing::Unknown, 2));
        assert_eq!(w.look(Match::Id, "not-an-id"), (Standing::Unknown, 0));
        assert_eq!(w.look(Match::Id, &"0".repeat(32)), (Standing::Unknown, 2));
        // A role change is seen by the next lookup.
        crate::testing::scenario::block_on(users::set_role(&w.env(), "acme", &ada, "administrator"))
            .unwrap()
            .unwrap();
        assert_eq!(
            w.look(Match::UserName, "ada@acme.example").0,
            Standing::Active { id: ada.clone(), role: "administrator".into() }
        );
        // Removal by hand: blocked, by every attribute.
        crate::testing::scenario::block_on(users::remove(&w.env(), "acme", &ada, &Actor::Operator))
            .unwrap()
            .unwrap();
        assert_eq!(w.look(Match::UserName, "ada@acme.example"), (Standing::Blocked, 3));
        assert_eq!(w.look(Match::ExternalId, "x-Ada@acme.example"), (Standing::Blocked, 3));
        assert_eq!(w.look(Match::Id, &ada), (Standing::Blocked, 2));
        // Deleted by SCIM: no trace, unknown.
        let scope = Scope { tenant: "acme", base: "https://x/scim/v2/c" };
        let pre = crate::scim::etag::Preconditions::NONE;
        crate::testing::scenario::block_on(users::delete(&w.env(), &scope, &bob, &pre)).unwrap().unwrap();
        assert_eq!(w.look(Match::UserName, "bob@acme.example").0, Standing::Unknown);
        // The store down: an error, never a standing.
        w.store.set_down(true);
        let key = CallerKey { tenant: "acme".into(), value: "ada@acme.example".into() };
        let r = crate::testing::scenario::block_on(look_up(&w.env(), Match::UserName, &key)).unwrap();
        assert!(matches!(r, Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn decisions_and_replies() {
        let c = basic();
        let key = CallerKey { tenant: "acme".into(), value: "ada".into() };
        let active = Standing::Active { id: "i1".into(), role: "administrator".into() };
        let allow = decide(&c, &key, Ok(&active));
        assert_eq!(
            allow,
            Decision::Allow(vec![
                ("x-scim-edge-tenant".into(), "acme".into()),
                ("x-scim-edge-user-id".into(), "i1".into()),
                ("x-scim-edge-role".into(), "administrator".into()),
                ("x-scim-edge-state".into(), "active".into()),
            ])
        );
        assert!(allow.reply().is_none());
        assert_eq!(decide(&c, &key, Ok(&Standing::Disabled)), Decision::Deny(Reason::Disabled));
        assert_eq!(decide(&c, &key, Ok(&Standing::Blocked)), Decision::Deny(Reason::Blocked));
        assert_eq!(decide(&c, &key, Ok(&Standing::Unknown)), Decision::Deny(Reason::Unknown));
        assert_eq!(decide(&c, &key, Err(())), Decision::Unavailable);
        assert_eq!(refuse(&c, Reason::Unauthenticated), Decision::Deny(Reason::Unauthenticated));
        let res = Decision::Deny(Reason::Disabled).reply().unwrap();
        assert_eq!(res.status(), 403);
        assert_eq!(res.body().as_ref(), br#"{"error":"forbidden","reason":"disabled"}"#);
        let res = Decision::Unavailable.reply().unwrap();
        assert_eq!((res.status().as_u16(), res.headers()["retry-after"].to_str().unwrap()), (503, "1"));

        let pass = cfg(json!({"identity": {"header": "x"}, "tenant": {"fixed": "a"}, "unknown": "pass",
                              "storeUnavailable": "pass", "headers": {"role": "x-role"}}));
        assert_eq!(decide(&pass, &key, Ok(&Standing::Unknown)), Decision::PassUnmarked);
        assert_eq!(refuse(&pass, Reason::Unauthenticated), Decision::PassUnmarked);
        assert_eq!(decide(&pass, &key, Ok(&Standing::Disabled)), Decision::Deny(Reason::Disabled));
        assert_eq!(decide(&pass, &key, Err(())), Decision::PassUnmarked);
        assert_eq!(
            strip_list(Some(&pass)),
            vec!["x-acting-user", "x-scim-edge-tenant", "x-scim-edge-user-id", "x-role", "x-scim-edge-state"]
        );
        assert_eq!(strip_list(None).len(), 5);
    }

    #[test]
    fn cache_keeps_a_lookup_for_its_ttl_and_stays_bounded() {
        let mut c = basic();
        c.cache_entries = 2;
        let mut cache = Cache::new(&c);
        let k = |v: &str| CallerKey { tenant: "acme".into(), value: v.into() };
        cache.put(k("a"), Standing::Disabled, 10_000);
        assert_eq!(cache.get(&k("a"), 10_000), Some(&Standing::Disabled));
        assert_eq!(cache.get(&k("a"), 10_499), Some(&Standing::Disabled));
        // Half-way: the first request refreshes, the others keep the entry until the TTL.
        assert_eq!(cache.get(&k("a"), 10_500), None);
        assert_eq!(cache.get(&k("a"), 10_501), Some(&Standing::Disabled));
        assert_eq!(cache.get(&k("a"), 10_749), Some(&Standing::Disabled));
        assert_eq!(cache.get(&k("a"), 11_000), None);
        // A clock that went back does not make an entry live for ever.
        assert_eq!(cache.get(&k("a"), 9_000), None);
        // The refresh came back: a new TTL. One that never did is handed on after half the TTL.
        cache.put(k("a"), Standing::Unknown, 10_510);
        assert_eq!(cache.get(&k("a"), 10_600), Some(&Standing::Unknown));
        assert_eq!(cache.get(&k("a"), 11_010), None);
        assert_eq!(cache.get(&k("a"), 11_200), Some(&Standing::Unknown));
        assert_eq!(cache.get(&k("a"), 11_260), None);
        assert_eq!(cache.get(&k("a"), 11_509), Some(&Standing::Unknown));
        assert_eq!(cache.get(&k("a"), 11_510), None);
        let mut cache = Cache::new(&c);
        cache.put(k("b"), Standing::Unknown, 10_500);
        cache.put(k("c"), Standing::Unknown, 11_200);
        assert!(cache.len() <= 2);
        assert_eq!(cache.get(&k("a"), 11_200), None);
        cache.put(k("d"), Standing::Unknown, 11_300);
        assert!(cache.len() <= 2);
        c.cache_ttl_ms = 0;
        let mut off = Cache::new(&c);
        off.put(k("a"), Standing::Disabled, 1);
        assert!(off.is_empty());
    }
}
