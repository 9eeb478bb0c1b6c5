//! Tenants and their SCIM connection: generate, regenerate, revoke.
//!
//! A tenant has at most one SCIM connection. The connection id is the last segment of the
//! SCIM URL handed to the admin (random, 128 bits) and the token is random (256 bits); only
//! the token's SHA-256 is stored.
//!
//! A SCIM request reads only its connection record: the record alone says whether it works
//! (it exists, the token matches, it has not expired and no plan change turned it `off`), so
//! authentication is one store read. Every change keeps that true by changing the connection
//! records *before* it points the tenant elsewhere: regenerating replaces the old connection's
//! record by a marker without a token ([`Connection::replaced_at`]), then points the tenant at
//! the new one; revoking deletes it, then clears the tenant; leaving the SCIM plan marks it off,
//! then writes the tenant. The old URL and token stop working at once, and a change that fails
//! halfway leaves SCIM off, never an old token working.
//!
//! The marker is there for the guide's troubleshooting: an identity provider still sending the
//! old Tenant URL after a Regenerate gets a 401 that says so, and the refusal is noted on the
//! tenant's current connection (its "last refused sign-in"), where the administrator looks.
//! One small record per Regenerate is kept for that.
//!
//! The record also carries the connection's bookkeeping that an administrator reads: when it
//! was last used, and its last refused sign-in ([`Refusal`]), noted at most once a minute per
//! kind ([`note`]) so that a flood of refused requests costs a bounded number of writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ScimError, ScimResult};
use crate::store::{get_json, put_json, Condition, Store, StoreError};
use crate::{auth, keys, time, Env, Version};

/// The plan SCIM belongs to.
pub const SCIM_PLAN: &str = "advanced";

/// How often `lastUsedAt` is written at most: one write per minute, not per request.
const LAST_USED_GRANULARITY_MS: u64 = 60_000;

/// How often one kind of connection event (a refusal reason, a Test Connection) is noted at
/// most: one record write and one log entry per kind a minute, however many requests.
const NOTE_INTERVAL_MS: u64 = 60_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub name: String,
    pub plan: String,
    pub created_at: String,
    /// The current SCIM connection id, if SCIM is on.
    pub connection: Option<String>,
    /// Lifetime of the SCIM tokens generated for this tenant; `None`: the configured default.
    #[serde(default)]
    pub token_lifetime_days: Option<u32>,
    /// Set when SCIM was turned off by a plan change: the connection it turned off (kept so
    /// that its requests get 403 with the reason instead of 401) and the plan moved to.
    #[serde(default)]
    pub scim_off: Option<ScimOff>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScimOff {
    pub connection: String,
    pub plan: String,
}

impl ScimOff {
    pub fn detail(&self) -> String {
        off_detail(&self.plan)
    }
}

/// Why a connection that a move to `plan` turned off gets 403.
fn off_detail(plan: &str) -> String {
    format!(
        "SCIM provisioning is off: this tenant moved to the {plan:?} plan and SCIM is part of the {SCIM_PLAN:?} \
         plan; after moving back, generate a new SCIM configuration and update Entra's Tenant URL and \
         Secret Token"
    )
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub tenant: String,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    #[serde(default)]
    pub last_used_ms: u64,
    /// When the token stops working; `None`: never.
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub expires_ms: Option<u64>,
    /// Set when a plan change turned SCIM off: the plan the tenant moved to. Its requests get
    /// 403 with the reason ([`ScimOff::detail`]) instead of 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<String>,
    /// The last refused sign-in on this connection ([`Refusal::reason`]) and when; written with
    /// its log entry, so at most once a minute per reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refused_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refused_reason: Option<String>,
    /// When each kind of event was last noted (milliseconds), by kind: a refusal reason or
    /// [`TESTED`]. Bounds the log entries such events write (see [`note`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub noted_ms: BTreeMap<String, u64>,
    /// Set when a Regenerate replaced this connection (RFC 3339): the record is then only a
    /// marker, with no token hash (no token matches it), kept to explain its 401 (see the
    /// module doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_at: Option<String>,
}

/// The kind [`note`] records Entra's Test Connection under.
pub const TESTED: &str = "tested";

/// Why a SCIM request on a known connection (its record exists) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer <token>` header.
    NoToken,
    /// A token that is not this connection's.
    WrongToken,
    /// The connection's token expired.
    Expired,
    /// A plan change turned SCIM off.
    PlanOff,
    /// The tenant's rate limit (after the token was accepted).
    RateLimited,
    /// The Tenant URL of a connection a Regenerate replaced (noted on the current connection).
    Replaced,
}

impl Refusal {
    /// What the log and the admin page say, in an administrator's words.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NoToken => "no token sent",
            Refusal::WrongToken => "wrong token",
            Refusal::Expired => "token expired",
            Refusal::PlanOff => "SCIM turned off by a plan change",
            Refusal::RateLimited => "too many requests (rate limit)",
            Refusal::Replaced => {
                "a replaced SCIM configuration (from before the last Regenerate) is still in use"
            }
        }
    }
}

impl Connection {
    /// A connection of tenant `t` with the token hashing to `token_sha256`, created `now`.
    fn new(t: &str, token_sha256: String, now: u64) -> Connection {
        Connection {
            tenant: t.to_owned(),
            token_sha256,
            created_at: time::rfc3339(now),
            last_used_at: None,
            last_used_ms: 0,
            expires_at: None,
            expires_ms: None,
            off: None,
            last_refused_at: None,
            last_refused_reason: None,
            noted_ms: BTreeMap::new(),
            replaced_at: None,
        }
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }
}

/// A connection that authenticated a request.
pub struct Authenticated {
    pub tenant: String,
    pub connection: String,
    /// Its record and version as of this request (after the `lastUsedAt` write, if any), for
    /// bookkeeping that writes it again ([`note`]).
    pub record: Connection,
    pub version: Version,
    /// The connection's first request since it was generated.
    pub first_use: bool,
}

/// A refused SCIM request, with the connection record when the connection id was known (the
/// refusal is then counted and noted on it).
pub struct Refused {
    pub error: ScimError,
    pub known: Option<KnownRefusal>,
}

pub struct KnownRefusal {
    pub connection: String,
    pub record: Connection,
    pub version: Version,
    pub refusal: Refusal,
}

impl From<ScimError> for Refused {
    fn from(error: ScimError) -> Self {
        Refused { error, known: None }
    }
}

pub fn random_hex<S>(env: &Env<'_, S>, bytes: usize) -> ScimResult<String> {
    let mut buf = vec![0u8; bytes];
    env.random.fill(&mut buf).map_err(|_| {
        ScimError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "no entropy available to generate a secret; retry",
        )
    })?;
    Ok(hex::encode(buf))
}

fn check_tenant_name(t: &str) -> ScimResult<()> {
    if keys::valid_tenant(t) {
        Ok(())
    } else {
        Err(ScimError::invalid_value(format!(
            "tenant id {t:?} is invalid: use 1-64 characters from A-Z a-z 0-9 - _ ."
        )))
    }
}

pub async fn get<S: Store>(env: &Env<'_, S>, t: &str) -> ScimResult<Option<(Tenant, crate::Version)>> {
    check_tenant_name(t)?;
    get_json(env.store, &keys::tenant(t)).await
}

/// What a tenant PUT asks for.
pub struct TenantUpdate {
    /// Required to create; `None` keeps the name.
    pub name: Option<String>,
    /// `None`: the SCIM plan for a new tenant, the current plan otherwise.
    pub plan: Option<String>,
    /// `Some(None)`: clear; `None`: keep.
    pub token_lifetime_days: Option<Option<u32>>,
}

/// Creates or updates a tenant. Returns the tenant and whether it was created. Leaving the SCIM
/// plan turns SCIM off (its requests then get 403 saying why); moving back needs a new generate.
pub async fn put<S: Store>(env: &Env<'_, S>, t: &str, u: &TenantUpdate) -> ScimResult<(Tenant, bool)> {
    check_tenant_name(t)?;
    for _ in 0..8 {
        match get_json::<S, Tenant>(env.store, &keys::tenant(t)).await? {
            None => {
                let Some(name) = u.name.clone() else {
                    return Err(ScimError::invalid_value(format!(
                        "tenant {t:?} does not exist; \"name\" is required to create it"
                    )));
                };
                let tenant = Tenant {
                    name,
                    plan: u.plan.clone().unwrap_or_else(|| SCIM_PLAN.to_owned()),
                    created_at: time::rfc3339(env.clock.now_millis()),
                    connection: None,
                    token_lifetime_days: u.token_lifetime_days.flatten(),
                    scim_off: None,
                };
                match put_json(env.store, &keys::tenant(t), &tenant, Condition::Absent).await {
                    Ok(_) => {
                        add_to_directory(env, t).await?;
                        return Ok((tenant, true));
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Some((mut tenant, ver)) => {
                let mut dropped = None;
                let mut turned_off = None;
                let plan = u.plan.clone().unwrap_or_else(|| tenant.plan.clone());
                if plan != SCIM_PLAN {
                    if let Some(c) = tenant.connection.take() {
                        // A connection turned off earlier by a plan change is replaced.
                        dropped = tenant.scim_off.take().map(|o| o.connection);
                        tenant.scim_off = Some(ScimOff { connection: c.clone(), plan: plan.clone() });
                        turned_off = Some(c);
                    } else if let Some(off) = tenant.scim_off.as_mut().filter(|o| o.plan != plan) {
                        off.plan = plan.clone();
                        turned_off = Some(off.connection.clone());
                    }
                }
                // The connection first: failing after this leaves SCIM off, not on.
                if let Some(c) = &turned_off {
                    turn_off(env, c, &plan).await?;
                }
                if let Some(name) = &u.name {
                    tenant.name = name.clone();
                }
                tenant.plan = plan;
                if let Some(days) = u.token_lifetime_days {
                    tenant.token_lifetime_days = days;
                }
                match put_json(env.store, &keys::tenant(t), &tenant, Condition::Version(ver)).await {
                    Ok(_) => {
                        if let Some(c) = dropped {
                            delete_connection(env, &c).await?;
                        }
                        return Ok((tenant, false));
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(StoreError::Conflict.into())
}

/// Adds a tenant id to `keys::TENANTS` (idempotent).
async fn add_to_directory<S: Store>(env: &Env<'_, S>, t: &str) -> ScimResult<()> {
    for _ in 0..16 {
        let (mut ids, cond) = match get_json::<S, Vec<String>>(env.store, keys::TENANTS).await? {
            Some((ids, v)) => (ids, Condition::Version(v)),
            None => (Vec::new(), Condition::Absent),
        };
        match ids.binary_search_by(|x| x.as_str().cmp(t)) {
            Ok(_) => return Ok(()),
            Err(at) => ids.insert(at, t.to_owned()),
        }
        match put_json(env.store, keys::TENANTS, &ids, cond).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Every tenant id, sorted.
pub async fn list<S: Store>(env: &Env<'_, S>) -> ScimResult<Vec<String>> {
    Ok(get_json::<S, Vec<String>>(env.store, keys::TENANTS).await?.map(|(ids, _)| ids).unwrap_or_default())
}

/// Marks a connection turned off by a move to `plan`; a deleted one stays deleted.
async fn turn_off<S: Store>(env: &Env<'_, S>, c: &str, plan: &str) -> ScimResult<()> {
    let key = keys::connection(c);
    for _ in 0..8 {
        let Some((mut conn, ver)) = get_json::<S, Connection>(env.store, &key).await? else {
            return Ok(());
        };
        if conn.off.as_deref() == Some(plan) {
            return Ok(());
        }
        conn.off = Some(plan.to_owned());
        match put_json(env.store, &key, &conn, Condition::Version(ver)).await {
            Ok(_) => return Ok(()),
            // A request's lastUsedAt write came between.
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Deletes a connection record and its counters.
async fn delete_connection<S: Store>(env: &Env<'_, S>, c: &str) -> ScimResult<()> {
    env.store.delete(&keys::connection(c), Condition::Any).await?;
    crate::counters::clear(env, |s| keys::connection_stats(c, s)).await
}

/// Replaces connection `c`'s record of tenant `t` by a marker of its replacement, with no token
/// hash, and deletes its counters.
async fn retire<S: Store>(env: &Env<'_, S>, t: &str, c: &str) -> ScimResult<()> {
    let now = env.clock.now_millis();
    let marker =
        Connection { replaced_at: Some(time::rfc3339(now)), ..Connection::new(t, String::new(), now) };
    put_json(env.store, &keys::connection(c), &marker, Condition::Any).await?;
    crate::counters::clear(env, |s| keys::connection_stats(c, s)).await
}

/// The tenant's current connection record, if it has one other than `not`: where a request on
/// a replaced connection is noted. Best effort: a store failure gives `None`.
async fn current_other_than<S: Store>(env: &Env<'_, S>, t: &str, not: &str) -> Option<KnownRefusal> {
    let (tenant, _) = get(env, t).await.ok()??;
    let c = tenant.connection.filter(|c| c != not)?;
    let (record, version) = get_json::<S, Connection>(env.store, &keys::connection(&c)).await.ok()??;
    if record.replaced_at.is_some() {
        return None;
    }
    Some(KnownRefusal { connection: c, record, version, refusal: Refusal::Replaced })
}

/// The secret half of a generated connection: shown once, never stored.
pub struct Generated {
    pub connection: String,
    pub token: String,
    pub record: Connection,
    /// Whether it replaced a connection (whose URL and token stopped working).
    pub regenerated: bool,
}

const DAY_MS: u64 = 86_400_000;

/// Generates (or regenerates) the tenant's SCIM connection. The token expires after
/// `lifetime_days`, else the tenant's lifetime, else the configured default, else never.
pub async fn generate<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    lifetime_days: Option<u32>,
) -> ScimResult<Generated> {
    let connection = random_hex(env, 16)?;
    let token = format!("sce_{}", random_hex(env, 32)?);
    let now = env.clock.now_millis();
    let mut record = Connection::new(t, hex::encode(auth::sha256(&token)), now);
    match point_at(env, t, &connection, &mut record, lifetime_days).await {
        Ok(regenerated) => Ok(Generated { connection, token, record, regenerated }),
        Err(e) => {
            // Best effort: nobody was given its token, so a leftover record is unusable.
            let _ = env.store.delete(&keys::connection(&connection), Condition::Any).await;
            Err(e)
        }
    }
}

/// Writes `record` as `connection`, replaces the tenant's old connections by markers
/// ([`retire`]), then points the tenant at the new one. Returns whether it replaced one.
async fn point_at<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    connection: &str,
    record: &mut Connection,
    lifetime_days: Option<u32>,
) -> ScimResult<bool> {
    let now = env.clock.now_millis();
    for _ in 0..8 {
        let Some((mut tenant, ver)) = get(env, t).await? else {
            return Err(ScimError::not_found(format!(
                "tenant {t:?} does not exist; create it with PUT first"
            )));
        };
        if tenant.plan != SCIM_PLAN {
            return Err(ScimError::forbidden(format!(
                "SCIM provisioning requires the {SCIM_PLAN:?} plan; tenant {t:?} is on the {:?} plan",
                tenant.plan
            )));
        }
        let days = lifetime_days.or(tenant.token_lifetime_days).or(env.config.default_token_lifetime_days);
        record.expires_ms = days.map(|d| now.saturating_add(u64::from(d) * DAY_MS));
        record.expires_at = record.expires_ms.map(time::rfc3339);
        put_json(env.store, &keys::connection(connection), &*record, Condition::Any).await?;
        let old = tenant.connection.replace(connection.to_owned());
        let off = tenant.scim_off.take().map(|o| o.connection);
        // The old ones first: from here on, only the new connection can work.
        for old in old.iter().chain(off.iter()) {
            retire(env, t, old).await?;
        }
        match put_json(env.store, &keys::tenant(t), &tenant, Condition::Version(ver)).await {
            Ok(_) => return Ok(old.is_some()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// The tenant's current connection, if any.
pub async fn connection<S: Store>(env: &Env<'_, S>, t: &str) -> ScimResult<Option<(String, Connection)>> {
    let Some((tenant, _)) = get(env, t).await? else {
        return Err(ScimError::not_found(format!("tenant {t:?} does not exist")));
    };
    let Some(id) = tenant.connection else { return Ok(None) };
    Ok(get_json::<S, Connection>(env.store, &keys::connection(&id)).await?.map(|(c, _)| (id, c)))
}

/// Turns SCIM off for the tenant. Returns whether there was a connection.
pub async fn revoke<S: Store>(env: &Env<'_, S>, t: &str) -> ScimResult<bool> {
    for _ in 0..8 {
        let Some((mut tenant, ver)) = get(env, t).await? else {
            return Err(ScimError::not_found(format!("tenant {t:?} does not exist")));
        };
        let off = tenant.scim_off.take().map(|o| o.connection);
        let current = tenant.connection.take();
        if current.is_none() && off.is_none() {
            return Ok(false);
        }
        // The connections first: failing after this leaves SCIM off.
        for c in current.iter().chain(off.iter()) {
            delete_connection(env, c).await?;
        }
        match put_json(env.store, &keys::tenant(t), &tenant, Condition::Version(ver)).await {
            Ok(_) => return Ok(true),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Authenticates a SCIM request: the connection in the URL must exist, the token must hash
/// to its stored hash, and it must not have expired or been turned off by a plan change. One
/// store read (and a write of `lastUsedAt` at most once a minute).
/// Wrong token, unknown or revoked connection and missing header all get the same 401; a
/// refusal on a connection that exists comes with its record ([`Refused::known`]).
pub async fn authenticate<S: Store>(
    env: &Env<'_, S>,
    connection: &str,
    token: Option<&str>,
) -> Result<Authenticated, Refused> {
    let unauthorized = || {
        ScimError::unauthorized(
            "missing or invalid bearer token for this SCIM URL; use the Tenant URL and Secret Token \
             from the latest generated SCIM configuration",
        )
    };
    if !keys::valid_id(connection) {
        return Err(unauthorized().into());
    }
    let Some((conn, ver)) = get_json::<S, Connection>(env.store, &keys::connection(connection)).await? else {
        return Err(unauthorized().into());
    };
    if let Some(at) = &conn.replaced_at {
        let error = ScimError::unauthorized(format!(
            "this Tenant URL was replaced at {at} by a newer SCIM configuration (Regenerate); update \
             Entra's Tenant URL and Secret Token with the latest ones (Settings > Security > SCIM \
             Provisioning)"
        ));
        return Err(Refused { error, known: current_other_than(env, &conn.tenant, connection).await });
    }
    let refused = |error: ScimError, refusal: Refusal, record: Connection| Refused {
        error,
        known: Some(KnownRefusal { connection: connection.to_owned(), record, version: ver, refusal }),
    };
    let Some(token) = token else {
        return Err(refused(unauthorized(), Refusal::NoToken, conn));
    };
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(&conn.token_sha256, &mut expected).is_err()
        || !auth::token_matches(token, &expected)
    {
        return Err(refused(unauthorized(), Refusal::WrongToken, conn));
    }
    let now = env.clock.now_millis();
    if conn.expired(now) {
        let error = ScimError::unauthorized(format!(
            "this SCIM token expired at {}; generate a new SCIM configuration (Settings > Security > SCIM \
             Provisioning) and update Entra's Tenant URL and Secret Token",
            conn.expires_at.as_deref().unwrap_or("an earlier time")
        ));
        return Err(refused(error, Refusal::Expired, conn));
    }
    // The record alone decides (see the module's doc): no read of the tenant.
    if let Some(plan) = &conn.off {
        let error = ScimError::forbidden(off_detail(plan));
        return Err(refused(error, Refusal::PlanOff, conn));
    }
    let first_use = conn.last_used_ms == 0;
    let (mut conn, mut ver) = (conn, ver);
    if now.saturating_sub(conn.last_used_ms) >= LAST_USED_GRANULARITY_MS {
        conn.last_used_ms = now;
        conn.last_used_at = Some(time::rfc3339(now));
        // Losing this race to a concurrent request is fine: it wrote the same minute.
        match put_json(env.store, &keys::connection(connection), &conn, Condition::Version(ver)).await {
            Ok(v) => ver = v,
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(ScimError::from(e).into()),
        }
    }
    Ok(Authenticated {
        tenant: conn.tenant.clone(),
        connection: connection.to_owned(),
        record: conn,
        version: ver,
        first_use,
    })
}

/// Notes an event of `kind` (a refusal's reason, or [`TESTED`]) on a connection unless one of
/// that kind was noted less than a minute ago; a refusal also becomes the connection's last
/// refused sign-in. Returns whether this call noted it — the caller then writes the minute's
/// one log entry for it. One conditional write of the connection record (and, when a
/// concurrent request changed the record, one read and one more try); concurrent callers
/// agree on one winner, and a deleted connection is never written back. Best effort: a store
/// failure notes nothing.
pub async fn note<S: Store>(
    env: &Env<'_, S>,
    connection: &str,
    mut record: Connection,
    mut version: Version,
    kind: &str,
    refusal: Option<Refusal>,
) -> bool {
    let now = env.clock.now_millis();
    let key = keys::connection(connection);
    for _ in 0..2 {
        if record.noted_ms.get(kind).is_some_and(|t| now.saturating_sub(*t) < NOTE_INTERVAL_MS) {
            return false;
        }
        record.noted_ms.insert(kind.to_owned(), now);
        if let Some(r) = refusal {
            record.last_refused_at = Some(time::rfc3339(now));
            record.last_refused_reason = Some(r.reason().to_owned());
        }
        match put_json(env.store, &key, &record, Condition::Version(version)).await {
            Ok(_) => return true,
            Err(StoreError::Conflict) => match get_json::<S, Connection>(env.store, &key).await {
                Ok(Some((r, v))) => (record, version) = (r, v),
                _ => return false,
            },
            Err(_) => return false,
        }
    }
    false
}
