//! Sign-in links and the browser sessions they become: how a tenant's own administrator uses the
//! admin page without the operator's token.
//!
//! The product (holding the operator's admin token) mints a **sign-in link** for one of its
//! users (`POST /admin/v1/tenants/{tenant}/sessions`). The link carries a one-time token: the
//! record's id (128 random bits, not secret: it names the session in the log and in `DELETE
//! …/sessions/{id}`) followed by a secret (256 random bits). Only the secret's SHA-256 is
//! stored. The link expires after `sessions.linkTtlSeconds` (or the `ttlSeconds` asked for).
//!
//! Opening the link (`GET /admin/v1/sign-in?t=…`) **redeems** it, once: the same record turns
//! into a session with a new secret (256 bits, stored as its SHA-256) that goes to the browser
//! in an `HttpOnly`, `SameSite=Strict` cookie limited to `/admin/v1` (so it is sent only to the
//! plugin, never to the product behind the gateway's other paths), `Secure` when the public URL
//! is https. Redeeming is a compare-and-swap on the record, so two browsers racing with one
//! link get one session.
//!
//! A request with the cookie acts exactly as "operator token + `X-Acting-User: <the user>`"
//! restricted to the session's tenant: the session record names the user, and every request
//! reads the user again, so the role checks of `crate::roles` apply unchanged with the user's
//! current role. The session ends — its record is deleted and the end logged — when it is used
//! after its absolute limit (`absoluteTimeoutSeconds` from sign-in) or its idle limit
//! (`idleTimeoutSeconds` since last use, recorded at most once a minute), or when its user is
//! removed (or deleted, or blocked by a removal), disabled, or lost a permission the role had
//! at sign-in. It also ends when revoked or signed out. Spin instantiates per request, so
//! everything lives in the store (`keys::session`).
//!
//! State-changing calls with a session need the anti-CSRF token in `X-CSRF-Token`: derived from
//! the session secret ([`csrf_token`]), handed to the page by `GET /admin/v1/session`, never
//! stored. A cross-site page can neither read the cookie nor that answer.
//!
//! No link, session or CSRF value is logged or stored: the log names sessions by id.

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ScimError, ScimResult};
use crate::log::{self, Actor};
use crate::roles;
use crate::store::{get_json, put_json, Condition, Store, StoreError};
use crate::users::{self, UserRecord};
use crate::{index, keys, tenants, time, Env, Version};

/// The session cookie's name.
pub const COOKIE: &str = "scim_edge_session";
/// The cookie's path: the admin API only (every host routes it to the plugin).
pub const COOKIE_PATH: &str = "/admin/v1";
/// The anti-CSRF token's request header.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The path a sign-in link opens.
pub const SIGN_IN_PATH: &str = "/admin/v1/sign-in";
/// Sign-in tokens start with this, so that one pasted somewhere is recognisable.
const LINK_PREFIX: &str = "sel_";
/// How often the last use is written at most.
const LAST_SEEN_GRANULARITY_MS: u64 = 60_000;
/// Longest `returnUrl` accepted.
const MAX_RETURN_URL: usize = 2048;

/// A sign-in link and, once redeemed, its session (`keys::session`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub tenant: String,
    /// The user's id, and the userName at minting (for the log).
    pub user: String,
    pub user_name: String,
    pub created_at: String,
    /// Hex SHA-256 of the link's secret.
    pub link_sha256: String,
    pub link_expires_ms: u64,
    /// Where the page sends the person back to (the product), if the product said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// Set by the sign-in: hex SHA-256 of the session's secret. `None`: the link is unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// The role at sign-in: losing a permission it had ends the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub signed_in_ms: u64,
    #[serde(default)]
    pub last_seen_ms: u64,
    /// The absolute end of the session.
    #[serde(default)]
    pub expires_ms: u64,
}

impl Session {
    pub fn actor(&self) -> Actor {
        Actor::User { id: self.user.clone(), user_name: self.user_name.clone() }
    }

    /// When an idle session ends, given the configured limit.
    pub fn idle_expires_ms(&self, idle_timeout_seconds: u64) -> u64 {
        self.last_seen_ms.saturating_add(idle_timeout_seconds.saturating_mul(1000))
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Whether `secret` hashes to the hex digest `expected_hex`, in constant time.
fn secret_matches(secret: &str, expected_hex: &str) -> bool {
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(expected_hex, &mut expected).is_err() {
        return false;
    }
    let got: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    got.ct_eq(&expected).into()
}

/// The anti-CSRF token of a session: derived from its secret (a different hash than the stored
/// one), so it needs no storage and only the cookie's holder can compute it.
pub fn csrf_token(session_secret: &str) -> String {
    sha256_hex(&format!("scim-edge csrf\u{0}{session_secret}"))
}

/// `(id, secret)` of `{id}{secret}` (32 + 64 lower-case hex digits), after `prefix`.
fn split_token<'a>(token: &'a str, prefix: &str, sep: &str) -> Option<(&'a str, &'a str)> {
    let rest = token.strip_prefix(prefix)?;
    let id = rest.get(..32)?;
    let secret = rest.get(32..)?.strip_prefix(sep)?;
    let hex64 = secret.len() == 64 && secret.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (keys::valid_id(id) && hex64).then_some((id, secret))
}

/// The session cookie's value (`{id}.{secret}`) among the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(value: &str, max_age_seconds: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age_seconds}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}

fn unavailable_entropy() -> ScimError {
    ScimError::new(http::StatusCode::SERVICE_UNAVAILABLE, "no entropy available to generate a secret; retry")
}

/// A freshly minted link: the token appears here and in the URL only.
pub struct Link {
    pub id: String,
    pub token: String,
    pub record: Session,
}

/// What `POST …/sessions` asks for, validated.
pub struct LinkRequest {
    pub user: UserRecord,
    pub ttl_seconds: u64,
    pub return_url: Option<String>,
}

/// Validates a link request: `user` (an id or a userName) names an active user of the tenant,
/// `ttlSeconds` is within the configured bounds, `returnUrl` an absolute http(s) URL.
pub async fn link_request<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    body: &serde_json::Value,
) -> ScimResult<LinkRequest> {
    let limits = &env.config.sessions;
    let Some(who) =
        body.get("user").and_then(serde_json::Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    else {
        return Err(ScimError::invalid_value(
            "the body must name the user: {\"user\": \"<user id or userName>\"}",
        ));
    };
    let mut found = None;
    if keys::valid_id(who) {
        found = users::load(env, t, who).await?;
    }
    if found.is_none() {
        if let Some(id) = index::lookup(env, t, keys::Index::UserName, who).await?.first() {
            found = users::load(env, t, id).await?;
        }
    }
    let short: String = who.chars().take(64).collect();
    let Some((user, _)) = found else {
        return Err(ScimError::not_found(format!("tenant {t:?} has no user {short:?}")));
    };
    if !user.state.is_active() {
        return Err(ScimError::forbidden(format!(
            "user {short:?} is disabled: a sign-in link is only for an active user"
        )));
    }
    let ttl_seconds = match body.get("ttlSeconds") {
        None | Some(serde_json::Value::Null) => limits.link_ttl_seconds,
        Some(v) => {
            v.as_u64().filter(|s| (10..=limits.max_link_ttl_seconds).contains(s)).ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "ttlSeconds must be a number of seconds from 10 to {}",
                    limits.max_link_ttl_seconds
                ))
            })?
        }
    };
    let return_url = match body.get("returnUrl") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(u)) if valid_return_url(u) => Some(u.clone()),
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "returnUrl must be an absolute http(s) URL of at most {MAX_RETURN_URL} characters"
            )))
        }
    };
    Ok(LinkRequest { user, ttl_seconds, return_url })
}

fn valid_return_url(u: &str) -> bool {
    let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
    u.len() <= MAX_RETURN_URL
        && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && u.bytes().all(|b| b.is_ascii_graphic())
}

/// Mints a one-time sign-in link for `req.user` of tenant `t`.
pub async fn mint<S: Store>(env: &Env<'_, S>, t: &str, req: LinkRequest) -> ScimResult<Link> {
    let now = env.clock.now_millis();
    let id = tenants::random_hex(env, 16)?;
    let secret = tenants::random_hex(env, 32)?;
    let record = Session {
        tenant: t.to_owned(),
        user: req.user.id.clone(),
        user_name: req.user.user_name().unwrap_or_default().to_owned(),
        created_at: time::rfc3339(now),
        link_sha256: sha256_hex(&secret),
        link_expires_ms: now.saturating_add(req.ttl_seconds.saturating_mul(1000)),
        return_url: req.return_url,
        secret_sha256: None,
        role: None,
        signed_in_ms: 0,
        last_seen_ms: 0,
        expires_ms: 0,
    };
    match put_json(env.store, &keys::session(&id), &record, Condition::Absent).await {
        Ok(_) => {}
        // 128 random bits collided: the random source is broken.
        Err(StoreError::Conflict) => return Err(unavailable_entropy()),
        Err(e) => return Err(e.into()),
    }
    Ok(Link { token: format!("{LINK_PREFIX}{id}{secret}"), id, record })
}

/// Why a sign-in link did not sign anybody in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRefusal {
    /// Not a link token, or no such link (revoked, or never minted), or the wrong secret.
    Invalid,
    Expired,
    /// Used before (a session exists or existed).
    Used,
    /// Its user was removed or disabled since it was minted.
    UserGone,
    UserDisabled,
}

impl LinkRefusal {
    /// The reason's name in the page's URL (`/admin/#/link/{code}`).
    pub fn code(self) -> &'static str {
        match self {
            LinkRefusal::Invalid => "invalid",
            LinkRefusal::Expired => "expired",
            LinkRefusal::Used => "used",
            LinkRefusal::UserGone | LinkRefusal::UserDisabled => "refused",
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            LinkRefusal::Invalid => {
                "this sign-in link is not valid (mistyped, revoked, or its session has ended): ask for a new one"
            }
            LinkRefusal::Expired => "this sign-in link has expired: ask for a new one",
            LinkRefusal::Used => {
                "this sign-in link was already used: each link signs in once; ask for a new one"
            }
            LinkRefusal::UserGone => "the user of this sign-in link no longer exists",
            LinkRefusal::UserDisabled => "the user of this sign-in link is disabled",
        }
    }
}

/// A refused link, with its record when the link exists (the refusal is then logged).
pub struct Refused {
    pub refusal: LinkRefusal,
    pub known: Option<Box<(String, Session)>>,
}

/// A redeemed link: the cookie's value goes to the browser, nowhere else.
pub struct SignedIn {
    pub id: String,
    pub cookie_value: String,
    pub record: Session,
}

/// Redeems a sign-in link token: at most once, before it expires, for a user still active.
pub async fn redeem<S: Store>(env: &Env<'_, S>, token: &str) -> Result<SignedIn, ScimRefused> {
    let refused = |refusal, known| Err(ScimRefused::Link(Refused { refusal, known }));
    let Some((id, secret)) = split_token(token.trim(), LINK_PREFIX, "") else {
        return refused(LinkRefusal::Invalid, None);
    };
    let key = keys::session(id);
    let (mut record, version): (Session, Version) = match get_json(env.store, &key).await {
        Ok(Some(r)) => r,
        Ok(None) => return refused(LinkRefusal::Invalid, None),
        Err(e) => return Err(ScimRefused::Error(e)),
    };
    if !secret_matches(secret, &record.link_sha256) {
        return refused(LinkRefusal::Invalid, None);
    }
    let known = Some(Box::new((id.to_owned(), record.clone())));
    if record.secret_sha256.is_some() {
        return refused(LinkRefusal::Used, known);
    }
    let now = env.clock.now_millis();
    if now >= record.link_expires_ms {
        return refused(LinkRefusal::Expired, known);
    }
    let user = match users::load(env, &record.tenant, &record.user).await {
        Ok(Some((u, _))) => u,
        Ok(None) => return refused(LinkRefusal::UserGone, known),
        Err(e) => return Err(ScimRefused::Error(e)),
    };
    if !user.state.is_active() {
        return refused(LinkRefusal::UserDisabled, known);
    }
    let session_secret = tenants::random_hex(env, 32).map_err(ScimRefused::Error)?;
    let limits = &env.config.sessions;
    record.secret_sha256 = Some(sha256_hex(&session_secret));
    record.role = Some(user.role.clone());
    record.user_name = user.user_name().unwrap_or_default().to_owned();
    record.signed_in_ms = now;
    record.last_seen_ms = now;
    record.expires_ms = now.saturating_add(limits.absolute_timeout_seconds.saturating_mul(1000));
    match put_json(env.store, &key, &record, Condition::Version(version)).await {
        Ok(_) => {}
        // Another browser redeemed it (or it was revoked) in between.
        Err(StoreError::Conflict) => return refused(LinkRefusal::Used, known),
        Err(e) => return Err(ScimRefused::Error(e.into())),
    }
    Ok(SignedIn { id: id.to_owned(), cookie_value: format!("{id}.{session_secret}"), record })
}

/// A failed redeem or authentication: a refusal to answer (and maybe log), or a store error.
pub enum ScimRefused {
    Link(Refused),
    Error(ScimError),
}

/// A request's valid session, with its user as of now.
pub struct Current {
    pub id: String,
    pub record: Session,
    pub user: UserRecord,
    /// The token state-changing requests must carry ([`csrf_token`]).
    pub csrf: String,
}

impl Current {
    /// 403 unless a state-changing request carries the session's anti-CSRF token.
    pub fn check_csrf(&self, method: &http::Method, headers: &HeaderMap) -> ScimResult<()> {
        if method == http::Method::GET || method == http::Method::HEAD {
            return Ok(());
        }
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or_default();
        if sent.len() == self.csrf.len() && bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(ScimError::forbidden(
                "this change needs the session's anti-CSRF token in X-CSRF-Token (GET /admin/v1/session \
                 hands it to the page); reload the page",
            ))
        }
    }
}

/// Why a session stopped working (401, and the browser's cookie is cleared).
#[derive(Debug)]
pub struct NoSession {
    pub error: ScimError,
}

fn no_session(detail: impl Into<String>) -> NoSession {
    NoSession { error: ScimError::unauthorized(detail) }
}

/// The session of a cookie value, checked against the store and its user's current state; a
/// session that must end is ended here (deleted and logged).
pub async fn authenticate<S: Store>(env: &Env<'_, S>, cookie_value: &str) -> Result<Current, NoSession> {
    let Some((id, secret)) = split_token(cookie_value, "", ".") else {
        return Err(no_session("the session cookie is not valid: sign in again with a new sign-in link"));
    };
    let key = keys::session(id);
    let (record, version): (Session, Version) = match get_json(env.store, &key).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(no_session(
            "your session has ended (signed out, revoked or expired): sign in again with a new sign-in link",
        )),
        Err(error) => return Err(NoSession { error }),
    };
    let valid = record.secret_sha256.as_deref().is_some_and(|h| secret_matches(secret, h));
    if !valid {
        return Err(no_session("the session cookie is not valid: sign in again with a new sign-in link"));
    }
    let now = env.clock.now_millis();
    let limits = &env.config.sessions;
    let ended = |reason: String| end(env, id, &record, version, reason);
    if now >= record.expires_ms {
        return Err(ended("the session reached its time limit".into()).await);
    }
    if now >= record.idle_expires_ms(limits.idle_timeout_seconds) {
        return Err(ended("the session was idle too long".into()).await);
    }
    let user = match users::load(env, &record.tenant, &record.user).await {
        Ok(Some((u, _))) => u,
        Ok(None) => return Err(ended(format!("the user {:?} was removed", record.user_name)).await),
        Err(error) => return Err(NoSession { error }),
    };
    if !user.state.is_active() {
        return Err(ended(format!("the user {:?} was disabled", record.user_name)).await);
    }
    let signed_in_role = record.role.clone().unwrap_or_default();
    let kept = roles::permissions(&signed_in_role).iter().all(|p| roles::permissions(&user.role).contains(p));
    if !kept {
        return Err(ended(format!(
            "the user's role changed from {signed_in_role:?} to {:?}: sign in again",
            user.role
        ))
        .await);
    }
    let mut record = record;
    if now.saturating_sub(record.last_seen_ms) >= LAST_SEEN_GRANULARITY_MS {
        record.last_seen_ms = now;
        // Best effort: a concurrent request wrote it, or the session just ended (seen next time).
        let _ = put_json(env.store, &key, &record, Condition::Version(version)).await;
    }
    Ok(Current { id: id.to_owned(), record, user, csrf: csrf_token(secret) })
}

/// Ends a session that may no longer be used: deletes it (if nobody did first) and logs why.
async fn end<S: Store>(
    env: &Env<'_, S>,
    id: &str,
    record: &Session,
    version: Version,
    reason: String,
) -> NoSession {
    if env.store.delete(&keys::session(id), Condition::Version(version)).await.is_ok() {
        let event = log::Event {
            actor: record.actor(),
            operation: "session.end",
            resource_type: "Session",
            target: Some(id.to_owned()),
            target_name: Some(record.user_name.clone()),
            status: 401,
            detail: Some(format!("session ended: {reason}")),
        };
        let _ = log::append(env, &record.tenant, event).await;
    }
    no_session(format!("your session has ended: {reason}; sign in again with a new sign-in link"))
}

/// A link or session of tenant `t` by id (`None`: no such link or session in that tenant).
pub async fn get<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<Option<(Session, Version)>> {
    if !keys::valid_id(id) {
        return Ok(None);
    }
    Ok(get_json::<S, Session>(env.store, &keys::session(id)).await?.filter(|(s, _)| s.tenant == t))
}

/// Revokes (deletes) a link or session of tenant `t`; returns it, or `None` if there is none.
pub async fn revoke<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<Option<Session>> {
    for _ in 0..4 {
        let Some((record, version)) = get(env, t, id).await? else { return Ok(None) };
        match env.store.delete(&keys::session(id), Condition::Version(version)).await {
            Ok(()) => return Ok(Some(record)),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// A link or session as the operator's API shows it (no hashes).
pub fn json(env_limits: &crate::config::SessionLimits, id: &str, s: &Session) -> serde_json::Value {
    let signed_in = s.secret_sha256.is_some();
    serde_json::json!({
        "id": id,
        "tenant": s.tenant,
        "user": s.user,
        "userName": s.user_name,
        "createdAt": s.created_at,
        "state": if signed_in { "signedIn" } else { "link" },
        "linkExpiresAt": time::rfc3339(s.link_expires_ms),
        "signedInAt": signed_in.then(|| time::rfc3339(s.signed_in_ms)),
        "role": s.role,
        "expiresAt": signed_in.then(|| time::rfc3339(s.expires_ms.min(s.idle_expires_ms(env_limits.idle_timeout_seconds)))),
        "returnUrl": s.return_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_only_when_exact() {
        let id = "0123456789abcdef0123456789abcdef";
        let secret = "a".repeat(64);
        assert_eq!(split_token(&format!("sel_{id}{secret}"), LINK_PREFIX, ""), Some((id, secret.as_str())));
        assert_eq!(split_token(&format!("{id}.{secret}"), "", "."), Some((id, secret.as_str())));
        for bad in [
            format!("sel_{id}{}", "a".repeat(63)),
            format!("sel_{id}{}", "A".repeat(64)),
            format!("{id}{secret}"),
            format!("sel_{id}.{secret}"),
            "sel_".to_owned(),
            format!("sel_{}{secret}", "é".repeat(16)),
        ] {
            assert_eq!(split_token(&bad, LINK_PREFIX, ""), None, "{bad}");
        }
    }

    #[test]
    fn cookies_are_read_among_others_and_set_strictly() {
        let mut h = HeaderMap::new();
        h.append(http::header::COOKIE, http::HeaderValue::from_static("a=1; scim_edge_session=x.y"));
        h.append(http::header::COOKIE, http::HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h), Some("x.y"));
        assert_eq!(cookie(&HeaderMap::new()), None);
        let c = set_cookie("v", 60, true);
        assert_eq!(c, "scim_edge_session=v; Path=/admin/v1; Max-Age=60; HttpOnly; SameSite=Strict; Secure");
        assert!(!set_cookie("v", 60, false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn csrf_tokens_are_not_the_stored_hash() {
        let secret = "b".repeat(64);
        assert_ne!(csrf_token(&secret), sha256_hex(&secret));
        assert_eq!(csrf_token(&secret).len(), 64);
        assert!(secret_matches(&secret, &sha256_hex(&secret)));
        assert!(!secret_matches(&secret, "zz"));
    }

    #[test]
    fn return_urls() {
        assert!(valid_return_url("https://app.example.com/settings?x=1"));
        assert!(valid_return_url("http://localhost:3000"));
        for bad in
            ["javascript:alert(1)", "//evil.example", "https://", "https:///x", "https://a b", "/admin"]
        {
            assert!(!valid_return_url(bad), "{bad}");
        }
    }
}
