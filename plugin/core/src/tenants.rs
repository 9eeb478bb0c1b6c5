//! Tenants and their SCIM connection: generate, regenerate, revoke.
//!
//! A tenant has at most one SCIM connection. The connection id is the last segment of the
//! SCIM URL handed to the admin (random, 128 bits) and the token is random (256 bits); only
//! the token's SHA-256 is stored. Regenerating writes a new connection, points the tenant at
//! it and deletes the old one, so the old URL and token stop working at once.

use serde::{Deserialize, Serialize};

use crate::error::{ScimError, ScimResult};
use crate::store::{get_json, put_json, Condition, Store, StoreError};
use crate::{auth, keys, time, Env};

/// The plan SCIM belongs to.
pub const SCIM_PLAN: &str = "advanced";

/// How often `lastUsedAt` is written at most: one write per minute, not per request.
const LAST_USED_GRANULARITY_MS: u64 = 60_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub name: String,
    pub plan: String,
    pub created_at: String,
    /// The current SCIM connection id, if SCIM is on.
    pub connection: Option<String>,
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
}

/// A connection that authenticated a request.
pub struct Authenticated {
    pub tenant: String,
    pub connection: String,
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

/// Creates or updates a tenant. Returns whether it was created. Leaving the SCIM plan
/// revokes the SCIM connection: moving back needs a new generate.
pub async fn put<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    name: String,
    plan: String,
) -> ScimResult<(Tenant, bool)> {
    check_tenant_name(t)?;
    for _ in 0..8 {
        match get_json::<S, Tenant>(env.store, &keys::tenant(t)).await? {
            None => {
                let tenant = Tenant {
                    name: name.clone(),
                    plan: plan.clone(),
                    created_at: time::rfc3339(env.clock.now_millis()),
                    connection: None,
                };
                match put_json(env.store, &keys::tenant(t), &tenant, Condition::Absent).await {
                    Ok(_) => return Ok((tenant, true)),
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Some((mut tenant, ver)) => {
                let old_connection = if plan != SCIM_PLAN { tenant.connection.take() } else { None };
                tenant.name = name.clone();
                tenant.plan = plan.clone();
                match put_json(env.store, &keys::tenant(t), &tenant, Condition::Version(ver)).await {
                    Ok(_) => {
                        if let Some(c) = old_connection {
                            env.store.delete(&keys::connection(&c), Condition::Any).await?;
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

/// The secret half of a generated connection: shown once, never stored.
pub struct Generated {
    pub connection: String,
    pub token: String,
    pub created_at: String,
}

/// Generates (or regenerates) the tenant's SCIM connection.
pub async fn generate<S: Store>(env: &Env<'_, S>, t: &str) -> ScimResult<Generated> {
    let connection = random_hex(env, 16)?;
    let token = format!("sce_{}", random_hex(env, 32)?);
    let created_at = time::rfc3339(env.clock.now_millis());
    let record = Connection {
        tenant: t.to_owned(),
        token_sha256: hex::encode(auth::sha256(&token)),
        created_at: created_at.clone(),
        last_used_at: None,
        last_used_ms: 0,
    };
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
        put_json(env.store, &keys::connection(&connection), &record, Condition::Any).await?;
        let old = tenant.connection.replace(connection.clone());
        match put_json(env.store, &keys::tenant(t), &tenant, Condition::Version(ver)).await {
            Ok(_) => {
                if let Some(old) = old {
                    env.store.delete(&keys::connection(&old), Condition::Any).await?;
                }
                return Ok(Generated { connection, token, created_at });
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => {
                // Best effort: the tenant still points at its old connection.
                let _ = env.store.delete(&keys::connection(&connection), Condition::Any).await;
                return Err(e.into());
            }
        }
    }
    let _ = env.store.delete(&keys::connection(&connection), Condition::Any).await;
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
        let Some(old) = tenant.connection.take() else { return Ok(false) };
        match put_json(env.store, &keys::tenant(t), &tenant, Condition::Version(ver)).await {
            Ok(_) => {
                env.store.delete(&keys::connection(&old), Condition::Any).await?;
                return Ok(true);
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Authenticates a SCIM request: the connection in the URL must exist, the token must hash
/// to its stored hash, and the tenant must still point at it and be on the SCIM plan.
/// Wrong token, unknown or revoked connection and missing header all get the same 401.
pub async fn authenticate<S: Store>(
    env: &Env<'_, S>,
    connection: &str,
    token: Option<&str>,
) -> ScimResult<Authenticated> {
    let unauthorized = || {
        ScimError::unauthorized(
            "missing or invalid bearer token for this SCIM URL; use the Tenant URL and Secret Token \
             from the latest generated SCIM configuration",
        )
    };
    let token = token.ok_or_else(unauthorized)?;
    if !keys::valid_id(connection) {
        return Err(unauthorized());
    }
    let Some((conn, ver)) = get_json::<S, Connection>(env.store, &keys::connection(connection)).await? else {
        return Err(unauthorized());
    };
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(&conn.token_sha256, &mut expected).is_err()
        || !auth::token_matches(token, &expected)
    {
        return Err(unauthorized());
    }
    let tenant = get_json::<S, Tenant>(env.store, &keys::tenant(&conn.tenant)).await?.map(|(t, _)| t);
    let Some(tenant) = tenant.filter(|t| t.connection.as_deref() == Some(connection)) else {
        return Err(unauthorized());
    };
    if tenant.plan != SCIM_PLAN {
        return Err(ScimError::forbidden(format!(
            "SCIM provisioning is off: it requires the {SCIM_PLAN:?} plan and this tenant is on {:?}",
            tenant.plan
        )));
    }
    let tenant_id = conn.tenant.clone();
    let now = env.clock.now_millis();
    if now.saturating_sub(conn.last_used_ms) >= LAST_USED_GRANULARITY_MS {
        let mut conn = conn;
        conn.last_used_ms = now;
        conn.last_used_at = Some(time::rfc3339(now));
        // Losing this race to a concurrent request is fine: it wrote the same minute.
        match put_json(env.store, &keys::connection(connection), &conn, Condition::Version(ver)).await {
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Authenticated { tenant: tenant_id, connection: connection.to_owned() })
}
