//! The admin API (`/admin/v1/…`), authenticated by the operator's admin token whose SHA-256 is
//! configured; without that configuration the whole API answers 404, as if absent. The
//! endpoints, the acting-user header and who may do what are in `docs/admin-api.md`.
//!
//! A call made on behalf of a person of the tenant names that person with `X-Acting-User`;
//! the person's role then decides (`crate::roles`). Without the header the call acts as the
//! operator. Every change, allowed or refused, goes to the tenant's provisioning log.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::error::{ScimError, ScimResult};
use crate::lifecycle::Source;
use crate::log::{self, Actor, Cursor};
use crate::roles::{self, Permission};
use crate::router::{param, query_params, AdminEndpoint, SCIM_PREFIX};
use crate::service::{json_body, json_response};
use crate::tenants::{self, Tenant, TenantUpdate};
use crate::users::{self, UserRecord};
use crate::{auth, blocks, counters, groups, index, keys, list, sessions, Env, Store};

pub const ACTING_USER_HEADER: &str = "x-acting-user";

/// Request headers that speak for the product (who acts, on whose behalf): only the admin API
/// reads them, and a gateway must strip them from every request it passes to the product
/// behind it, so that no client can forge them there.
pub const PRODUCT_HEADERS: &[&str] = &[ACTING_USER_HEADER];

/// Who a call acts as.
enum Acting {
    Operator,
    User(UserRecord),
}

impl Acting {
    fn actor(&self) -> Actor {
        match self {
            Acting::Operator => Actor::Operator,
            Acting::User(u) => {
                Actor::User { id: u.id.clone(), user_name: u.user_name().unwrap_or_default().to_owned() }
            }
        }
    }

    fn require(&self, p: Permission, action: &str) -> ScimResult<()> {
        match self {
            Acting::Operator => Ok(()),
            Acting::User(u) => roles::require(&u.role, u.user_name().unwrap_or_default(), p, action),
        }
    }

    fn is(&self, id: &str) -> bool {
        matches!(self, Acting::User(u) if u.id == id)
    }
}

/// What a change is called in the log; the handler may refine it through the response's
/// extensions (`tenant.update` that created the tenant, say).
#[derive(Clone)]
struct Note {
    operation: &'static str,
    target_name: Option<String>,
    /// The target when the route does not name it (a minted link's id).
    target: Option<String>,
    /// A second entry the change writes, same actor and target (`user.remove` → `user.block`).
    then: Option<&'static str>,
}

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
    let secure = public_base.starts_with("https://");
    if endpoint == AdminEndpoint::SignIn {
        return sign_in(req, env, secure).await;
    }
    // The operator's token, or else a tenant person's browser session (`crate::sessions`).
    let session = match auth::bearer(req.headers()) {
        Some(t) if auth::token_matches(t, expected) => None,
        Some(_) => return Err(ScimError::unauthorized("missing or invalid admin bearer token")),
        None => match sessions::cookie(req.headers()) {
            None => {
                return Err(ScimError::unauthorized(
                    "missing or invalid admin bearer token (or browser session: open a sign-in link)",
                ))
            }
            Some(value) => match sessions::authenticate(env, value).await {
                Ok(current) => Some(current),
                Err(ended) => {
                    // The browser forgets the dead session.
                    let mut res = ended.error.into_response();
                    if let Ok(v) = http::HeaderValue::from_str(&sessions::clear_cookie(secure)) {
                        res.headers_mut().append(http::header::SET_COOKIE, v);
                    }
                    return Ok(res);
                }
            },
        },
    };
    let method = req.method();
    if let Some(current) = &session {
        current.check_csrf(method, req.headers())?;
        match endpoint {
            AdminEndpoint::CurrentSession => return current_session(env, current, method, secure).await,
            AdminEndpoint::Tenants | AdminEndpoint::Sessions(_) | AdminEndpoint::Session(..) => {
                return Err(ScimError::forbidden(
                    "this is an operator action: a signed-in tenant session cannot do it",
                ))
            }
            _ if endpoint.tenant().is_some_and(|t| t != current.record.tenant) => {
                return Err(ScimError::forbidden(format!(
                    "this session is signed in to tenant {:?} only",
                    current.record.tenant
                )));
            }
            _ => {}
        }
    } else if endpoint == AdminEndpoint::CurrentSession {
        return Err(ScimError::not_found(
            "no browser session: /admin/v1/session is the session of a browser signed in with a sign-in link",
        ));
    }
    // A session acts as its user, whatever X-Acting-User says.
    let acting_id = match (&session, req.headers().get(ACTING_USER_HEADER)) {
        (Some(current), _) => Some(current.user.id.as_str()),
        (None, None) => None,
        (None, Some(v)) => Some(
            v.to_str()
                .map(str::trim)
                .map_err(|_| ScimError::invalid_value("X-Acting-User must be a user id (32 hex digits)"))?,
        ),
    };
    let tenant = match endpoint {
        AdminEndpoint::Roles => {
            get_only(method)?;
            return Ok(json_response(StatusCode::OK, &roles::all(env.config)));
        }
        AdminEndpoint::Tenants => {
            get_only(method)?;
            if acting_id.is_some() {
                return Err(ScimError::forbidden(
                    "listing every tenant is an operator action: call it without X-Acting-User",
                ));
            }
            let mut out = Vec::new();
            for t in tenants::list(env).await? {
                if let Some((tenant, _)) = tenants::get(env, &t).await? {
                    out.push(tenant_json(env, &t, &tenant, public_base).await?);
                }
            }
            return Ok(json_response(StatusCode::OK, &json!({ "tenants": out })));
        }
        _ => endpoint.tenant().ok_or_else(|| {
            ScimError::not_found(
                "unknown admin endpoint; see /admin/v1/tenants, /admin/v1/tenants/{tenant}, \
                 …/{tenant}/scim, …/{tenant}/users, …/{tenant}/blocks, …/{tenant}/log, …/{tenant}/sessions \
                 and /admin/v1/roles",
            )
        })?,
    };
    let existing = tenants::get(env, tenant).await?;
    let change = change_of(&endpoint, method);
    let acting = match (&session, acting_id, &existing) {
        // Authenticated just now, with the user as of this request.
        (Some(current), _, _) => Ok(Acting::User(current.user.clone())),
        (None, None, _) => Ok(Acting::Operator),
        (None, Some(id), Some(_)) => acting_user(env, tenant, id).await,
        (None, Some(_), None) => Err(ScimError::not_found(format!("tenant {tenant:?} does not exist"))),
    };
    let (actor, result) = match acting {
        Ok(acting) => {
            let r = tenant_call(
                endpoint,
                req,
                env,
                public_base,
                &acting,
                tenant,
                existing.as_ref().map(|(t, _)| t),
            )
            .await;
            (acting.actor(), r)
        }
        // Refused before it started: still logged, with the id the caller claimed.
        Err(e) => {
            let id = acting_id.unwrap_or_default().chars().take(64).collect();
            (Actor::User { id, user_name: String::new() }, Err(e))
        }
    };
    if let Some((operation, resource_type, target)) = change {
        // A tenant that does not exist (and was not just created) has no log.
        let created = matches!(&result, Ok(r) if r.status() == StatusCode::CREATED);
        if existing.is_some() || created {
            let (status, detail, note) = match &result {
                Ok(r) => (r.status().as_u16(), None, r.extensions().get::<Note>().cloned()),
                Err(e) => (e.status.as_u16(), Some(e.detail.clone()), None),
            };
            let then = note.as_ref().and_then(|n| n.then);
            let event = log::Event {
                actor,
                operation: note.as_ref().map_or(operation, |n| n.operation),
                resource_type,
                target: note
                    .as_ref()
                    .and_then(|n| n.target.clone())
                    .or_else(|| target.map(str::to_owned))
                    .or_else(|| Some(tenant.to_owned())),
                target_name: note.and_then(|n| n.target_name),
                status,
                detail,
            };
            let next = then.map(|operation| log::Event { operation, ..event.clone() });
            // Best effort: the change stands whether or not its log entry could be written.
            let _ = log::append(env, tenant, event).await;
            if let Some(event) = next {
                let _ = log::append(env, tenant, event).await;
            }
        }
    }
    result
}

/// `GET /admin/v1/sign-in?t=…`: a browser opens a sign-in link. Signed in, it is sent to the
/// page with the session cookie; refused, a browser is sent to the page with the reason
/// (`/admin/#/link/{expired|used|invalid|refused}`) and any other client gets 401.
async fn sign_in<S: Store>(
    req: &http::Request<Bytes>,
    env: &Env<'_, S>,
    secure: bool,
) -> ScimResult<http::Response<Bytes>> {
    get_only(req.method())?;
    let params = query_params(req.uri().query());
    let token = param(&params, "t").unwrap_or_default();
    let browser = req
        .headers()
        .get_all(http::header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("text/html")));
    let event =
        |actor, operation, id: &str, rec: &sessions::Session, status: StatusCode, detail| log::Event {
            actor,
            operation,
            resource_type: "Session",
            target: Some(id.to_owned()),
            target_name: Some(rec.user_name.clone()),
            status: status.as_u16(),
            detail,
        };
    match sessions::redeem(env, token).await {
        Ok(signed) => {
            let e = event(
                signed.record.actor(),
                "session.start",
                &signed.id,
                &signed.record,
                StatusCode::SEE_OTHER,
                Some(format!(
                    "signed in with sign-in link {} as {:?}",
                    signed.id,
                    signed.record.role.clone().unwrap_or_default()
                )),
            );
            let _ = log::append(env, &signed.record.tenant, e).await;
            let max_age = env.config.sessions.absolute_timeout_seconds;
            let mut res = redirect(crate::page::PAGE_PATH);
            if let Ok(v) =
                http::HeaderValue::from_str(&sessions::set_cookie(&signed.cookie_value, max_age, secure))
            {
                res.headers_mut().append(http::header::SET_COOKIE, v);
            }
            Ok(res)
        }
        Err(sessions::ScimRefused::Error(e)) => Err(e),
        Err(sessions::ScimRefused::Link(refused)) => {
            let detail = refused.refusal.detail();
            if let Some((id, rec)) = refused.known.as_deref() {
                let e = event(
                    Actor::Operator,
                    "session.refused",
                    id,
                    rec,
                    StatusCode::UNAUTHORIZED,
                    Some(format!("sign-in refused: {detail}")),
                );
                let _ = log::append(env, &rec.tenant, e).await;
            }
            if browser {
                Ok(redirect(&format!("{}#/link/{}", crate::page::PAGE_PATH, refused.refusal.code())))
            } else {
                Err(ScimError::unauthorized(detail))
            }
        }
    }
}

/// 303 to `location`, not cached, no referrer (the link's token is in this request's URL).
fn redirect(location: &str) -> http::Response<Bytes> {
    let mut res = http::Response::new(Bytes::new());
    *res.status_mut() = StatusCode::SEE_OTHER;
    let h = res.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(location) {
        h.insert(http::header::LOCATION, v);
    }
    h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    h.insert(http::header::REFERRER_POLICY, http::HeaderValue::from_static("no-referrer"));
    res
}

/// `/admin/v1/session`: `GET` who is signed in (with the anti-CSRF token), `DELETE` signs out.
async fn current_session<S: Store>(
    env: &Env<'_, S>,
    current: &sessions::Current,
    method: &Method,
    secure: bool,
) -> ScimResult<http::Response<Bytes>> {
    let rec = &current.record;
    match *method {
        Method::GET => {
            let name = tenants::get(env, &rec.tenant).await?.map(|(t, _)| t.name);
            let limits = &env.config.sessions;
            let perms: Vec<&str> = roles::permissions(&current.user.role).iter().map(|p| p.name()).collect();
            let body = json!({
                "id": current.id,
                "tenant": rec.tenant,
                "tenantName": name,
                "user": {
                    "id": current.user.id,
                    "userName": current.user.user_name(),
                    "displayName": current.user.display_name(),
                },
                "role": current.user.role,
                "permissions": perms,
                "csrfToken": current.csrf,
                "expiresAt": crate::time::rfc3339(rec.expires_ms),
                "idleTimeoutSeconds": limits.idle_timeout_seconds,
                "returnUrl": rec.return_url,
            });
            let mut res = json_response(StatusCode::OK, &body);
            res.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
            Ok(res)
        }
        Method::DELETE => {
            env.store.delete(&keys::session(&current.id), crate::Condition::Any).await?;
            let event = log::Event {
                actor: rec.actor(),
                operation: "session.end",
                resource_type: "Session",
                target: Some(current.id.clone()),
                target_name: Some(rec.user_name.clone()),
                status: StatusCode::OK.as_u16(),
                detail: Some("signed out".into()),
            };
            let _ = log::append(env, &rec.tenant, event).await;
            let mut res =
                json_response(StatusCode::OK, &json!({"signedOut": true, "returnUrl": rec.return_url}));
            if let Ok(v) = http::HeaderValue::from_str(&sessions::clear_cookie(secure)) {
                res.headers_mut().append(http::header::SET_COOKIE, v);
            }
            Ok(res)
        }
        _ => Err(ScimError::method_not_allowed("GET, DELETE")),
    }
}

/// The change a call makes, for the log: (operation, resource type, target id).
fn change_of<'a>(
    endpoint: &AdminEndpoint<'a>,
    m: &Method,
) -> Option<(&'static str, &'static str, Option<&'a str>)> {
    Some(match (endpoint, m.as_str()) {
        (AdminEndpoint::Tenant(_), "PUT") => ("tenant.update", "Tenant", None),
        (AdminEndpoint::ScimConnection(_), "POST") => ("scim.generate", "ScimConnection", None),
        (AdminEndpoint::ScimConnection(_), "DELETE") => ("scim.revoke", "ScimConnection", None),
        (AdminEndpoint::User(_, id), "PATCH") => ("user.role", "User", Some(*id)),
        (AdminEndpoint::User(_, id), "DELETE") => ("user.remove", "User", Some(*id)),
        (AdminEndpoint::Block(_, id), "DELETE") => ("user.unblock", "User", Some(*id)),
        (AdminEndpoint::Sessions(_), "POST") => ("session.link", "Session", None),
        (AdminEndpoint::Session(_, id), "DELETE") => ("session.revoke", "Session", Some(*id)),
        _ => return None,
    })
}

fn get_only(m: &Method) -> ScimResult<()> {
    if m == Method::GET {
        Ok(())
    } else {
        Err(ScimError::method_not_allowed("GET"))
    }
}

async fn acting_user<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<Acting> {
    let Some((u, _)) = users::load(env, t, id).await? else {
        return Err(ScimError::forbidden(format!(
            "X-Acting-User {:?} is not a user of tenant {t:?}",
            id.chars().take(64).collect::<String>()
        )));
    };
    if !u.state.is_active() {
        return Err(ScimError::forbidden(format!(
            "the acting user {:?} is disabled and may not administer this tenant",
            u.user_name().unwrap_or_default()
        )));
    }
    Ok(Acting::User(u))
}

fn with_note(
    mut res: http::Response<Bytes>,
    operation: &'static str,
    target_name: Option<&str>,
) -> http::Response<Bytes> {
    res.extensions_mut().insert(Note {
        operation,
        target_name: target_name.map(str::to_owned),
        target: None,
        then: None,
    });
    res
}

fn no_content() -> http::Response<Bytes> {
    let mut res = http::Response::new(Bytes::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

fn not_found_tenant(t: &str) -> ScimError {
    ScimError::not_found(format!("tenant {t:?} does not exist"))
}

async fn tenant_call<S: Store>(
    endpoint: AdminEndpoint<'_>,
    req: &http::Request<Bytes>,
    env: &Env<'_, S>,
    public_base: &str,
    acting: &Acting,
    tenant: &str,
    existing: Option<&Tenant>,
) -> ScimResult<http::Response<Bytes>> {
    let method = req.method();
    let exists = existing.is_some();
    match endpoint {
        AdminEndpoint::Tenant(t) => match *method {
            Method::PUT => {
                if exists {
                    acting.require(Permission::ManageUsers, "changing the tenant")?;
                }
                put_tenant(env, t, &json_body(req)?, public_base, acting, existing).await
            }
            Method::GET => {
                acting.require(Permission::ViewUsers, "viewing the tenant")?;
                let tenant = existing.ok_or_else(|| not_found_tenant(t))?;
                Ok(json_response(StatusCode::OK, &tenant_json(env, t, tenant, public_base).await?))
            }
            _ => Err(ScimError::method_not_allowed("GET, PUT")),
        },
        _ if !exists => Err(not_found_tenant(tenant)),
        AdminEndpoint::ScimConnection(t) => {
            let action = match *method {
                Method::POST => "generating a SCIM configuration",
                Method::DELETE => "turning SCIM off",
                _ => "viewing the SCIM configuration",
            };
            acting.require(Permission::ManageScim, action)?;
            match *method {
                Method::POST => {
                    let days = if req.body().is_empty() {
                        None
                    } else {
                        days_field(&json_body(req)?, "expiresInDays")?
                    };
                    let g = tenants::generate(env, t, days.flatten()).await?;
                    let url = scim_url(public_base, &g.connection);
                    let header = format!("Bearer {}", g.token);
                    // The product guide's names (`url`, the "Authorization Header value") and,
                    // added beside them, Entra's: where each value is pasted. Entra's Secret Token
                    // takes either the token or the header value (`auth::bearer`).
                    let body = json!({
                        "url": url,
                        "tenantUrl": url,
                        "token": g.token,
                        "authorizationHeader": header,
                        "secretToken": header,
                        "createdAt": g.record.created_at,
                        "expiresAt": g.record.expires_at,
                        "regenerated": g.regenerated,
                    });
                    let res = json_response(StatusCode::CREATED, &body);
                    Ok(if g.regenerated { with_note(res, "scim.regenerate", None) } else { res })
                }
                Method::GET => match tenants::connection(env, t).await? {
                    Some((id, c)) => {
                        Ok(json_response(StatusCode::OK, &connection_json(env, public_base, &id, &c).await?))
                    }
                    None => Err(ScimError::not_found(format!(
                        "tenant {t:?} has no SCIM connection; generate one with POST"
                    ))),
                },
                Method::DELETE => {
                    if tenants::revoke(env, t).await? {
                        Ok(no_content())
                    } else {
                        Err(ScimError::not_found(format!("tenant {t:?} has no SCIM connection")))
                    }
                }
                _ => Err(ScimError::method_not_allowed("GET, POST, DELETE")),
            }
        }
        AdminEndpoint::Users(t) => {
            get_only(method)?;
            acting.require(Permission::ViewUsers, "viewing users")?;
            list_users(env, t, req.uri().query()).await
        }
        AdminEndpoint::User(t, id) => match *method {
            Method::GET => {
                acting.require(Permission::ViewUsers, "viewing users")?;
                let (u, _) = users::load(env, t, id).await?.ok_or_else(|| user_not_found(id))?;
                // One user: also its attributes as the SCIM client sent them, and its groups.
                let mut body = user_json(&u);
                let mut in_groups = Vec::new();
                for g in groups::of_user(env, t, id).await? {
                    let name = groups::load(env, t, &g)
                        .await?
                        .and_then(|(r, _)| r.display_name().map(str::to_owned));
                    in_groups.push(json!({"id": g, "displayName": name}));
                }
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("attributes".into(), Value::Object(u.attributes.clone()));
                    obj.insert("groups".into(), Value::Array(in_groups));
                }
                Ok(json_response(StatusCode::OK, &body))
            }
            Method::PATCH => {
                acting.require(Permission::ManageUsers, "changing a user's role")?;
                let body = json_body(req)?;
                let Some(role) = body.get("role").and_then(Value::as_str) else {
                    return Err(ScimError::invalid_value("the body must be {\"role\": \"<role name>\"}"));
                };
                if acting.is(id) {
                    return Err(ScimError::forbidden(
                        "you cannot change your own role; ask another administrator",
                    ));
                }
                if users::load(env, t, id).await?.is_none() {
                    return Err(user_not_found(id));
                }
                let u = users::set_role(env, t, id, role).await?;
                Ok(with_note(json_response(StatusCode::OK, &user_json(&u)), "user.role", u.user_name()))
            }
            Method::DELETE => {
                acting.require(Permission::ManageUsers, "removing a user")?;
                if acting.is(id) {
                    return Err(ScimError::forbidden(
                        "you cannot remove yourself; ask another administrator",
                    ));
                }
                // Removed and blocked: SCIM cannot bring the user back (crate::blocks).
                let block = users::remove(env, t, id, &acting.actor()).await?;
                let mut res = with_note(no_content(), "user.remove", Some(&block.user_name));
                if let Some(note) = res.extensions_mut().get_mut::<Note>() {
                    note.then = Some("user.block");
                }
                Ok(res)
            }
            _ => Err(ScimError::method_not_allowed("GET, PATCH, DELETE")),
        },
        AdminEndpoint::Blocks(t) => {
            get_only(method)?;
            acting.require(Permission::ViewUsers, "viewing blocked users")?;
            let params = query_params(req.uri().query());
            let (start, count) = paging(env, &params, 50)?;
            let (total, blocks) = blocks::page(env, t, start, count).await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"totalResults": total, "startIndex": start + 1, "itemsPerPage": blocks.len(), "blocks": blocks}),
            ))
        }
        AdminEndpoint::Block(t, id) => match *method {
            Method::GET => {
                acting.require(Permission::ViewUsers, "viewing blocked users")?;
                let block = blocks::get(env, t, id).await?.ok_or_else(|| block_not_found(id))?;
                Ok(json_response(StatusCode::OK, &json!(block)))
            }
            Method::DELETE => {
                acting.require(Permission::ManageUsers, "lifting a block")?;
                let block = users::unblock(env, t, id).await?.ok_or_else(|| block_not_found(id))?;
                Ok(with_note(no_content(), "user.unblock", Some(&block.user_name)))
            }
            _ => Err(ScimError::method_not_allowed("GET, DELETE")),
        },
        AdminEndpoint::Log(t) => {
            get_only(method)?;
            acting.require(Permission::ViewUsers, "viewing the provisioning log")?;
            read_log(env, t, req.uri().query()).await
        }
        AdminEndpoint::Groups(t) => {
            get_only(method)?;
            acting.require(Permission::ViewUsers, "viewing groups")?;
            let (start, count) = paging(env, &query_params(req.uri().query()), 50)?;
            let total = list::len(env, t, &keys::List::Groups).await?;
            let mut out = Vec::new();
            for id in list::page(env, t, &keys::List::Groups, start, count).await? {
                if let Some((g, _)) = groups::load(env, t, &id).await? {
                    let members = list::len(env, t, &keys::List::Members(id.clone())).await?;
                    out.push(
                        json!({"id": id, "displayName": g.display_name(), "externalId": g.external_id(),
                                    "members": members, "lastModified": g.last_modified}),
                    );
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"totalResults": total, "startIndex": start + 1, "itemsPerPage": out.len(), "groups": out}),
            ))
        }
        AdminEndpoint::Group(t, id) => {
            get_only(method)?;
            acting.require(Permission::ViewUsers, "viewing groups")?;
            let (g, _) = groups::load(env, t, id).await?.ok_or_else(|| {
                ScimError::not_found(format!("group {:?} not found", id.chars().take(64).collect::<String>()))
            })?;
            let (start, count) = paging(env, &query_params(req.uri().query()), 50)?;
            let members = keys::List::Members(id.to_owned());
            let total = list::len(env, t, &members).await?;
            let mut out = Vec::new();
            for uid in list::page(env, t, &members, start, count).await? {
                if let Some((u, _)) = users::load(env, t, &uid).await? {
                    out.push(json!({"id": u.id, "userName": u.user_name(), "displayName": u.display_name(),
                                    "state": if u.state.is_active() { "active" } else { "disabled" }}));
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"id": id, "displayName": g.display_name(), "externalId": g.external_id(),
                        "totalResults": total, "startIndex": start + 1, "itemsPerPage": out.len(), "members": out}),
            ))
        }
        AdminEndpoint::Sessions(t) => {
            if method != Method::POST {
                return Err(ScimError::method_not_allowed("POST"));
            }
            let Acting::Operator = acting else {
                return Err(ScimError::forbidden(
                    "minting a sign-in link is an operator action: call without X-Acting-User",
                ));
            };
            let request = sessions::link_request(env, t, &json_body(req)?).await?;
            let link = sessions::mint(env, t, request).await?;
            let url = format!("{public_base}{}?t={}", sessions::SIGN_IN_PATH, link.token);
            let body = json!({
                "id": link.id,
                "url": url,
                "expiresAt": crate::time::rfc3339(link.record.link_expires_ms),
                "user": link.record.user,
                "userName": link.record.user_name,
            });
            let mut res = with_note(
                json_response(StatusCode::CREATED, &body),
                "session.link",
                Some(&link.record.user_name),
            );
            if let Some(note) = res.extensions_mut().get_mut::<Note>() {
                note.target = Some(link.id);
            }
            Ok(res)
        }
        AdminEndpoint::Session(t, id) => {
            let Acting::Operator = acting else {
                return Err(ScimError::forbidden(
                    "sign-in links and sessions are the operator's: call without X-Acting-User",
                ));
            };
            let missing = || {
                ScimError::not_found(format!(
                    "tenant {t:?} has no sign-in link or session {:?}",
                    id.chars().take(64).collect::<String>()
                ))
            };
            match *method {
                Method::GET => {
                    let (s, _) = sessions::get(env, t, id).await?.ok_or_else(missing)?;
                    Ok(json_response(StatusCode::OK, &sessions::json(&env.config.sessions, id, &s)))
                }
                Method::DELETE => {
                    let s = sessions::revoke(env, t, id).await?.ok_or_else(missing)?;
                    Ok(with_note(no_content(), "session.revoke", Some(&s.user_name)))
                }
                _ => Err(ScimError::method_not_allowed("GET, DELETE")),
            }
        }
        AdminEndpoint::Tenants
        | AdminEndpoint::Roles
        | AdminEndpoint::Unknown
        | AdminEndpoint::SignIn
        | AdminEndpoint::CurrentSession => Err(ScimError::not_found("unknown admin endpoint")),
    }
}

fn block_not_found(id: &str) -> ScimError {
    ScimError::not_found(format!(
        "no block on user {:?}: it was lifted, or the user was never removed by hand",
        id.chars().take(64).collect::<String>()
    ))
}

fn user_not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("user {:?} not found", id.chars().take(64).collect::<String>()))
}

/// A lifetime in days: absent → `None`, `null` → `Some(None)`, 1..=36500 → `Some(Some(n))`.
fn days_field(body: &Value, name: &str) -> ScimResult<Option<Option<u32>>> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_u64().filter(|d| (1..=36_500).contains(d)) {
            Some(d) => Ok(Some(Some(d as u32))),
            None => Err(ScimError::invalid_value(format!(
                "{name} must be a number of days from 1 to 36500, or null"
            ))),
        },
    }
}

fn opt_string(body: &Value, name: &str, max: usize) -> ScimResult<Option<String>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.trim().len() <= max => {
            Ok(Some(s.trim().to_owned()))
        }
        Some(_) => Err(ScimError::invalid_value(format!(
            "{name:?} must be a non-empty string of at most {max} characters"
        ))),
    }
}

/// Creates or updates a tenant. What only the operator may do — change the plan, create a
/// local administrator — is refused to an acting user before anything is written; `admin`
/// creates the first administrator when the tenant is created, and only then.
async fn put_tenant<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    body: &Value,
    public_base: &str,
    acting: &Acting,
    existing: Option<&Tenant>,
) -> ScimResult<http::Response<Bytes>> {
    let update = TenantUpdate {
        name: opt_string(body, "name", 200)?,
        plan: opt_string(body, "plan", 64)?,
        token_lifetime_days: days_field(body, "tokenLifetimeDays")?,
    };
    if let (Acting::User(_), Some(current), Some(plan)) = (acting, existing, &update.plan) {
        if *plan != current.plan {
            return Err(ScimError::forbidden(format!(
                "changing the plan (from {:?} to {plan:?}) is an operator action: the plan is part of the \
                 tenant's subscription; call without X-Acting-User",
                current.plan
            )));
        }
    }
    // The first administrator: validated before anything is written.
    let admin = match body.get("admin") {
        None | Some(Value::Null) => None,
        Some(a) if a.is_object() => {
            let Some(user_name) = opt_string(a, "userName", 256)? else {
                return Err(ScimError::invalid_value("admin.userName is required"));
            };
            Some((user_name, opt_string(a, "displayName", 256)?))
        }
        Some(_) => {
            return Err(ScimError::invalid_value(
                "\"admin\" must be {\"userName\": \"…\", \"displayName\": \"…\"}",
            ))
        }
    };
    if let (Some((user_name, _)), Some(_)) = (&admin, existing) {
        // An update: `admin` creates nobody. Naming the tenant's existing user is accepted (a
        // retried create whose first answer was lost), anyone else is refused.
        if let Acting::User(_) = acting {
            return Err(ScimError::forbidden(
                "creating a local administrator is an operator action: call without X-Acting-User; an \
                 administrator raises an existing user with PATCH …/users/{id} {\"role\": \"administrator\"}",
            ));
        }
        if index::lookup(env, t, keys::Index::UserName, user_name).await?.is_empty() {
            return Err(ScimError::invalid_value(format!(
                "\"admin\" creates the first administrator only when the tenant is created, and tenant {t:?} \
                 exists; to make a user an administrator, PATCH …/users/{{id}} {{\"role\": \"administrator\"}}"
            )));
        }
    }
    let (tenant, created) = tenants::put(env, t, &update).await?;
    if let (Some((user_name, display_name)), true) = (admin, created) {
        // A new tenant has no users and no SCIM connection yet: nothing to look up.
        users::create_local(env, t, &user_name, display_name.as_deref(), roles::ADMINISTRATOR).await?;
    }
    let body = tenant_json(env, t, &tenant, public_base).await?;
    Ok(if created {
        with_note(json_response(StatusCode::CREATED, &body), "tenant.create", Some(&tenant.name))
    } else {
        with_note(json_response(StatusCode::OK, &body), "tenant.update", Some(&tenant.name))
    })
}

pub fn scim_url(public_base: &str, connection: &str) -> String {
    format!("{public_base}{SCIM_PREFIX}{connection}")
}

async fn connection_json<S: Store>(
    env: &Env<'_, S>,
    public_base: &str,
    id: &str,
    c: &tenants::Connection,
) -> ScimResult<Value> {
    let stats = counters::sum(env, |s| keys::connection_stats(id, s)).await?;
    let get = |n: &str| stats.get(n).copied().unwrap_or(0).max(0);
    Ok(json!({
        "url": scim_url(public_base, id),
        "createdAt": c.created_at,
        "expiresAt": c.expires_at,
        "expired": c.expired(env.clock.now_millis()),
        "lastUsedAt": c.last_used_at,
        "requests": get("requests"),
        "failures": get("failures"),
        "lastRefusedAt": c.last_refused_at,
        "lastRefusedReason": c.last_refused_reason,
    }))
}

async fn tenant_json<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    tenant: &Tenant,
    public_base: &str,
) -> ScimResult<Value> {
    let scim = match &tenant.connection {
        Some(_) => match tenants::connection(env, t).await? {
            Some((id, c)) => Some(connection_json(env, public_base, &id, &c).await?),
            None => None,
        },
        None => None,
    };
    let scim_off =
        tenant.scim_off.as_ref().map(|o| json!({"reason": "plan", "plan": o.plan, "detail": o.detail()}));
    let (active, disabled) = users::counts(env, t).await?;
    Ok(json!({
        "id": t,
        "name": tenant.name,
        "plan": tenant.plan,
        "createdAt": tenant.created_at,
        "tokenLifetimeDays": tenant.token_lifetime_days,
        "scim": scim,
        "scimOff": scim_off,
        "users": {"active": active, "disabled": disabled},
    }))
}

pub fn user_json(u: &UserRecord) -> Value {
    json!({
        "id": u.id,
        "userName": u.user_name(),
        "displayName": u.display_name(),
        "email": u.email(),
        "externalId": u.external_id(),
        "state": if u.state.is_active() { "active" } else { "disabled" },
        "role": u.role,
        "source": match u.source { Source::Scim => "scim", Source::Local => "local" },
        "created": u.created,
        "lastModified": u.last_modified,
    })
}

/// `startIndex`/`count` as in SCIM: 1-based, count clamped to the page-size limit.
fn paging<S>(env: &Env<'_, S>, params: &[(String, String)], default_count: u64) -> ScimResult<(u64, u64)> {
    let num = |name: &str| -> ScimResult<Option<u64>> {
        match param(params, name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ScimError::invalid_value(format!("{name} must be a non-negative integer, got {v:?}"))
            }),
        }
    };
    let start = num("startIndex")?.unwrap_or(1).max(1) - 1;
    let count = num("count")?.unwrap_or(default_count).min(env.config.max_page_size as u64);
    Ok((start, count))
}

/// Users a filtered list of the admin API reads at most per request (its filters — state,
/// role, source, text — are not indexed): a search continues with `scanFrom`.
pub const SCAN_LIMIT: u64 = 1000;

async fn list_users<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    query: Option<&str>,
) -> ScimResult<http::Response<Bytes>> {
    let params = query_params(query);
    let (start, count) = paging(env, &params, 50)?;
    let state = param(&params, "state").filter(|s| !s.is_empty());
    if let Some(s) = state {
        if s != "active" && s != "disabled" {
            return Err(ScimError::invalid_value("state must be active or disabled"));
        }
    }
    let role = param(&params, "role").filter(|s| !s.is_empty());
    let source = param(&params, "source").filter(|s| !s.is_empty());
    let q = param(&params, "q").map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
    let matches = |u: &UserRecord| {
        let j = user_json(u);
        state.is_none_or(|s| j.get("state").and_then(Value::as_str) == Some(s))
            && role.is_none_or(|r| u.role == r)
            && source.is_none_or(|s| j.get("source").and_then(Value::as_str) == Some(s))
            && q.as_deref().is_none_or(|q| {
                [u.user_name(), u.display_name(), u.email()]
                    .into_iter()
                    .flatten()
                    .any(|v| v.to_lowercase().contains(q))
            })
    };
    let filtered = state.is_some() || role.is_some() || source.is_some() || q.is_some();
    if !filtered {
        let total = list::len(env, t, &keys::List::Users).await?;
        let mut users = Vec::new();
        for id in list::page(env, t, &keys::List::Users, start, count).await? {
            if let Some((u, _)) = users::load(env, t, &id).await? {
                users.push(user_json(&u));
            }
        }
        return Ok(json_response(
            StatusCode::OK,
            &json!({"totalResults": total, "startIndex": start + 1, "itemsPerPage": users.len(), "users": users}),
        ));
    }
    // The filters are not indexed: a filtered list scans the tenant's users in list order, at
    // most SCAN_LIMIT records a request, from `scanFrom` (0-based), until `count` match. An
    // exact userName is found through its index first, wherever it is in the list.
    let scan_from = match param(&params, "scanFrom").map(str::trim).filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| ScimError::invalid_value("scanFrom must be a position in the list (0, 1000, …)"))?,
    };
    let total = list::len(env, t, &keys::List::Users).await?;
    let mut users = Vec::new();
    let exact = match q.as_deref() {
        Some(q) => index::lookup(env, t, keys::Index::UserName, q).await?,
        None => Vec::new(),
    };
    if scan_from == 0 {
        for id in &exact {
            if let Some((u, _)) = users::load(env, t, id).await? {
                if matches(&u) {
                    users.push(user_json(&u));
                }
            }
        }
    }
    let end = total.min(scan_from.saturating_add(SCAN_LIMIT));
    let mut pos = scan_from.min(end);
    if pos < end && (users.len() as u64) < count {
        for id in list::page(env, t, &keys::List::Users, pos, end - pos).await? {
            pos += 1;
            if exact.contains(&id) {
                continue;
            }
            if let Some((u, _)) = users::load(env, t, &id).await? {
                if matches(&u) {
                    users.push(user_json(&u));
                    if users.len() as u64 >= count {
                        break;
                    }
                }
            }
        }
    }
    let next = (pos < total).then_some(pos);
    // Every match is known when the scan started at the beginning and reached the end.
    let complete = scan_from == 0 && next.is_none();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "totalResults": complete.then_some(users.len()),
            "startIndex": 1,
            "itemsPerPage": users.len(),
            "users": users,
            "scanned": {"from": scan_from.min(total), "to": pos, "of": total},
            "nextScanFrom": next,
        }),
    ))
}

async fn read_log<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    query: Option<&str>,
) -> ScimResult<http::Response<Bytes>> {
    let params = query_params(query);
    let seq = |name: &str| -> ScimResult<Option<u64>> {
        match param(&params, name).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ScimError::invalid_value(format!("{name} must be a log sequence number, got {v:?}"))
            }),
        }
    };
    let cursor = match (seq("after")?, seq("before")?) {
        (Some(_), Some(_)) => return Err(ScimError::invalid_value("use either after or before, not both")),
        (Some(a), None) => Cursor::After(a),
        (None, Some(b)) => Cursor::Before(b),
        (None, None) => Cursor::Newest,
    };
    let count = seq("count")?.unwrap_or(50).clamp(1, 500) as usize;
    let text = |name: &str| param(&params, name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let outcome = match text("outcome").as_deref() {
        None => None,
        Some("success") => Some(log::Outcome::Success),
        Some("failure") => Some(log::Outcome::Failure),
        Some(o) => {
            return Err(ScimError::invalid_value(format!("outcome must be success or failure, got {o:?}")))
        }
    };
    let filter = log::Filter {
        operation: text("operation"),
        outcome,
        actor: text("actor"),
        target: text("target"),
        resource_type: text("resourceType"),
        user: text("user"),
        since: text("since"),
        until: text("until"),
    };
    let page = log::page(env, t, cursor, count, &filter).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"entries": page.entries, "oldest": page.oldest, "latest": page.latest, "next": page.next}),
    ))
}
