//! The operator's admin API (`/admin/v1/…`), authenticated by the admin token whose SHA-256
//! is configured. Without that configuration the whole API answers 404, as if absent.
//!
//! ```text
//! PUT    /admin/v1/tenants/{tenant}        {"name": "...", "plan": "advanced"}  → 201 created / 200 updated
//! GET    /admin/v1/tenants/{tenant}                                             → 200
//! POST   /admin/v1/tenants/{tenant}/scim   generate or regenerate               → 201 {url, token, authorizationHeader, createdAt}
//! GET    /admin/v1/tenants/{tenant}/scim   the connection, without its secret   → 200 / 404
//! DELETE /admin/v1/tenants/{tenant}/scim   SCIM off                             → 204 / 404
//! ```

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::error::{ScimError, ScimResult};
use crate::router::{AdminEndpoint, SCIM_PREFIX};
use crate::service::{json_body, json_response};
use crate::tenants::{self, Tenant};
use crate::{auth, Env, Store};

pub async fn handle<S: Store>(
    endpoint: AdminEndpoint<'_>,
    req: &http::Request<Bytes>,
    env: &Env<'_, S>,
    public_base: &str,
) -> ScimResult<http::Response<Bytes>> {
    let Some(expected) = env.config.admin_token_sha256.as_ref() else {
        return Err(ScimError::not_found(
            "the admin API is off: configure adminTokenSha256 (the SHA-256 of an admin token) to enable it",
        ));
    };
    if !auth::bearer(req.headers()).is_some_and(|t| auth::token_matches(t, expected)) {
        return Err(ScimError::unauthorized("missing or invalid admin bearer token"));
    }
    let method = req.method();
    match endpoint {
        AdminEndpoint::Tenant(t) => match *method {
            Method::PUT => {
                let body = json_body(req)?;
                let name = match body.get("name") {
                    Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 200 => n.trim().to_owned(),
                    _ => {
                        return Err(ScimError::invalid_value(
                            "\"name\" is required: a non-empty string of at most 200 characters",
                        ))
                    }
                };
                let plan = match body.get("plan") {
                    None | Some(Value::Null) => tenants::SCIM_PLAN.to_owned(),
                    Some(Value::String(p)) if !p.trim().is_empty() && p.len() <= 64 => p.trim().to_owned(),
                    _ => return Err(ScimError::invalid_value("\"plan\" must be a non-empty string")),
                };
                let (tenant, created) = tenants::put(env, t, name, plan).await?;
                let status = if created { StatusCode::CREATED } else { StatusCode::OK };
                Ok(json_response(status, &tenant_json(env, t, &tenant, public_base).await?))
            }
            Method::GET => match tenants::get(env, t).await? {
                Some((tenant, _)) => {
                    Ok(json_response(StatusCode::OK, &tenant_json(env, t, &tenant, public_base).await?))
                }
                None => Err(ScimError::not_found(format!("tenant {t:?} does not exist"))),
            },
            _ => Err(ScimError::method_not_allowed("GET, PUT")),
        },
        AdminEndpoint::ScimConnection(t) => match *method {
            Method::POST => {
                let g = tenants::generate(env, t).await?;
                let body = json!({
                    "url": scim_url(public_base, &g.connection),
                    "token": g.token,
                    "authorizationHeader": format!("Bearer {}", g.token),
                    "createdAt": g.created_at,
                });
                Ok(json_response(StatusCode::CREATED, &body))
            }
            Method::GET => match tenants::connection(env, t).await? {
                Some((id, c)) => Ok(json_response(StatusCode::OK, &connection_json(public_base, &id, &c))),
                None => Err(ScimError::not_found(format!(
                    "tenant {t:?} has no SCIM connection; generate one with POST"
                ))),
            },
            Method::DELETE => {
                if tenants::revoke(env, t).await? {
                    Ok(http::Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Bytes::new())
                        .map_err(|e| ScimError::internal(e.to_string()))?)
                } else {
                    Err(ScimError::not_found(format!("tenant {t:?} has no SCIM connection")))
                }
            }
            _ => Err(ScimError::method_not_allowed("GET, POST, DELETE")),
        },
        AdminEndpoint::Unknown => Err(ScimError::not_found(
            "unknown admin endpoint; see /admin/v1/tenants/{tenant} and /admin/v1/tenants/{tenant}/scim",
        )),
    }
}

pub fn scim_url(public_base: &str, connection: &str) -> String {
    format!("{public_base}{SCIM_PREFIX}{connection}")
}

fn connection_json(public_base: &str, id: &str, c: &tenants::Connection) -> Value {
    json!({ "url": scim_url(public_base, id), "createdAt": c.created_at, "lastUsedAt": c.last_used_at })
}

async fn tenant_json<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    tenant: &Tenant,
    public_base: &str,
) -> ScimResult<Value> {
    let scim = match &tenant.connection {
        Some(_) => tenants::connection(env, t).await?.map(|(id, c)| connection_json(public_base, &id, &c)),
        None => None,
    };
    Ok(json!({
        "id": t,
        "name": tenant.name,
        "plan": tenant.plan,
        "createdAt": tenant.created_at,
        "scim": scim,
    }))
}
