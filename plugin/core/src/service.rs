//! Request dispatch: route → authenticate → resource handlers → response.

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::error::{ScimError, ScimResult, SCIM_CONTENT_TYPE};
use crate::limits::{self, Limits};
use crate::router::{self, param, Route, ScimEndpoint};
use crate::scim::etag::Preconditions;
use crate::scim::projection::{project, wants};
use crate::scim::schema::ResourceKind;
use crate::scim::{filter, schema};
use crate::users::{Page, Resource, Scope};
use crate::{admin, auth, counters, groups, keys, log, rate, tenants, users, Env, Store};

/// The core's one entry point: every request gets a response, every failure a SCIM error.
pub async fn handle<S: Store>(req: http::Request<Bytes>, env: &Env<'_, S>) -> http::Response<Bytes> {
    match dispatch(&req, env).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn dispatch<S: Store>(
    req: &http::Request<Bytes>,
    env: &Env<'_, S>,
) -> ScimResult<http::Response<Bytes>> {
    let public_base = public_base(req, env);
    let route = router::route(req.uri().path());
    if route != Route::Other {
        // Before authentication and parsing: an oversized or deeply nested body costs nothing.
        limits::check_body(req.body(), &env.config.limits)?;
    }
    match route {
        Route::Other => Err(ScimError::not_found(
            "no such endpoint: SCIM is served under /scim/v2/{connection}/ and the admin API under /admin/v1/",
        )),
        // Like the admin API, the page exists only where an admin token is configured.
        Route::AdminPage(_) if env.config.admin_token_sha256.is_none() => Err(ScimError::not_found(
            "the admin page is off: configure adminTokenSha256 (the SHA-256 of an admin token) to enable it",
        )),
        Route::AdminPage(rest) => crate::page::serve(
            rest,
            req.method(),
            req.headers(),
            &env.config.sessions.frame_ancestors_csp(),
        ),
        Route::Admin(endpoint) => admin::handle(endpoint, req, env, &public_base).await,
        Route::Scim { connection, endpoint } => {
            let who = match tenants::authenticate(env, connection, auth::bearer(req.headers())).await {
                Ok(who) => who,
                Err(refused) => {
                    if let Some(known) = refused.known {
                        record_refusal(env, known).await;
                    }
                    return Err(refused.error);
                }
            };
            let write = write_operation(&endpoint, req.method());
            let admitted = match env.config.rate_limit {
                Some(limit) => rate::admit(env, &who.tenant, limit).await,
                None => Ok(()),
            };
            let base = admin::scim_url(&public_base, &who.connection);
            let scope = Scope { tenant: &who.tenant, base: &base };
            let result = match admitted {
                Ok(()) => scim(endpoint, req, env, &scope).await,
                // Refused like a sign-in: noted and logged at most once a minute, not per request.
                Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
                    let known = tenants::KnownRefusal {
                        connection: who.connection,
                        record: who.record,
                        version: who.version,
                        refusal: tenants::Refusal::RateLimited,
                    };
                    record_refusal(env, known).await;
                    return Err(e);
                }
                Err(e) => Err(e),
            };
            record(env, who, write, req.body(), &result).await;
            result
        }
    }
}

/// The log's name for a SCIM write: (operation, resource type, target id from the path).
type Write<'a> = (&'static str, &'static str, Option<&'a str>);

fn write_operation<'a>(endpoint: &ScimEndpoint<'a>, m: &Method) -> Option<Write<'a>> {
    let op = match (endpoint, m.as_str()) {
        (ScimEndpoint::Users, "POST") => ("user.create", "User", None),
        (ScimEndpoint::User(id), "PUT") => ("user.replace", "User", Some(*id)),
        (ScimEndpoint::User(id), "PATCH") => ("user.update", "User", Some(*id)),
        (ScimEndpoint::User(id), "DELETE") => ("user.delete", "User", Some(*id)),
        (ScimEndpoint::Groups, "POST") => ("group.create", "Group", None),
        (ScimEndpoint::Group(id), "PUT") => ("group.replace", "Group", Some(*id)),
        (ScimEndpoint::Group(id), "PATCH") => ("group.update", "Group", Some(*id)),
        (ScimEndpoint::Group(id), "DELETE") => ("group.delete", "Group", Some(*id)),
        _ => return None,
    };
    Some(op)
}

/// A SCIM write's log entry, set by the handler when it knows better than the route (a POST
/// that matched an existing local user).
#[derive(Clone, Copy)]
struct Operation(&'static str);

/// Set on the answer to what looks like Entra's Test Connection (see [`is_connection_test`]).
#[derive(Clone, Copy)]
struct ConnectionTest;

/// Successful reads are counted one in this many (see [`record`]).
const READ_SAMPLE: u8 = 8;

/// A sampled count: [`READ_SAMPLE`] one time in [`READ_SAMPLE`], else 0.
fn sampled<S>(env: &Env<'_, S>) -> i64 {
    let mut b = [0u8; 1];
    let _ = env.random.fill(&mut b);
    if b[0] % READ_SAMPLE != 0 {
        0
    } else {
        i64::from(READ_SAMPLE)
    }
}

async fn count<S: Store>(env: &Env<'_, S>, connection: &str, weight: i64, failed: bool) {
    if weight > 0 {
        let deltas = [("requests", weight), ("failures", if failed { weight } else { 0 })];
        let _ = counters::add(env, |s| keys::connection_stats(connection, s), &deltas).await;
    }
}

/// Counts and notes a refused sign-in on a known connection: the first refusal of each
/// reason in a minute becomes the connection's last refused sign-in, a log entry
/// (`signIn.refused`) and an exact count; the rest of that minute's are counted by sampling,
/// like reads. So a flood of refused requests costs one record write and one log entry per
/// reason a minute plus about one counter write in [`READ_SAMPLE`], and cannot push the
/// tenant's real entries out of its log. Best effort, like [`record`].
async fn record_refusal<S: Store>(env: &Env<'_, S>, known: tenants::KnownRefusal) {
    let tenants::KnownRefusal { connection, record, version, refusal } = known;
    let tenant = record.tenant.clone();
    let noted = tenants::note(env, &connection, record, version, refusal.reason(), Some(refusal)).await;
    count(env, &connection, if noted { 1 } else { sampled(env) }, true).await;
    if noted {
        let status = match refusal {
            tenants::Refusal::PlanOff => StatusCode::FORBIDDEN,
            tenants::Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        };
        let event = log::Event {
            actor: log::Actor::Scim { connection: connection.clone() },
            operation: "signIn.refused",
            resource_type: "ScimConnection",
            target: Some(connection),
            target_name: None,
            status: status.as_u16(),
            detail: Some(format!("signIn refused: {}", refusal.reason())),
        };
        let _ = log::append(env, &tenant, event).await;
    }
}

/// Counts the request for the connection's status and logs it when it was a write or Entra's
/// Test Connection. Best effort: the request's outcome stands whether or not the bookkeeping
/// could be written.
async fn record<S: Store>(
    env: &Env<'_, S>,
    who: tenants::Authenticated,
    write: Option<Write<'_>>,
    request_body: &Bytes,
    result: &ScimResult<http::Response<Bytes>>,
) {
    let failed = match result {
        Ok(r) => r.status().is_client_error() || r.status().is_server_error(),
        Err(_) => true,
    };
    // The store did not answer: each bookkeeping write would wait out the same timeout before
    // failing too, and hold the 503 back by that much (Entra retries a 503 anyway).
    if matches!(result, Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE) {
        return;
    }
    let tested = matches!(result, Ok(r) if r.extensions().get::<ConnectionTest>().is_some());
    // Writes and failures are counted exactly. Successful reads, most of a sync and of the
    // load, are sampled: one in READ_SAMPLE counts READ_SAMPLE, so a lookup does not turn into
    // a store write (an fsync on etcd) and the count stays right on average. The first request
    // of a new connection and Test Connection are counted exactly, so the page never shows 0
    // requests after a successful Test Connection.
    let exact = failed || write.is_some() || who.first_use || tested;
    count(env, &who.connection, if exact { 1 } else { sampled(env) }, failed).await;
    if tested {
        let tenants::Authenticated { tenant, connection, record, version, .. } = who;
        if tenants::note(env, &connection, record, version, tenants::TESTED, None).await {
            let event = log::Event {
                actor: log::Actor::Scim { connection: connection.clone() },
                operation: "connection.tested",
                resource_type: "ScimConnection",
                target: Some(connection),
                target_name: None,
                status: StatusCode::OK.as_u16(),
                detail: None,
            };
            let _ = log::append(env, &tenant, event).await;
        }
        return;
    }
    let Some((operation, resource_type, path_id)) = write else { return };
    let (status, detail, body, operation) = match result {
        Ok(r) => {
            let op = r.extensions().get::<Operation>().map_or(operation, |o| o.0);
            let body = serde_json::from_slice::<Value>(r.body()).ok();
            (r.status().as_u16(), None, body, op)
        }
        Err(e) => (e.status.as_u16(), Some(e.detail.clone()), None, operation),
    };
    let answered_id = body.as_ref().and_then(|b| b.get("id")).and_then(Value::as_str).map(str::to_owned);
    // The resource as answered; for a failure, as asked for (which userName did not make it).
    let body = body.or_else(|| serde_json::from_slice::<Value>(request_body).ok());
    let body_str = |k: &str| body.as_ref().and_then(|b| b.get(k)).and_then(Value::as_str).map(str::to_owned);
    let event = log::Event {
        actor: log::Actor::Scim { connection: who.connection.clone() },
        operation,
        resource_type,
        target: path_id.map(str::to_owned).or(answered_id),
        target_name: body_str(if resource_type == "User" { "userName" } else { "displayName" }),
        status,
        detail,
    };
    let _ = log::append(env, &who.tenant, event).await;
}

/// Whether a user query looks like Entra's Test Connection: the configured matching
/// attribute (`userName`, or `externalId`) equal to a random GUID — Entra's "user that doesn't
/// exist" (`shared/reference/entra-provisioning.md`, row 1). Counted only when it finds nothing.
fn is_connection_test(filter: &str) -> bool {
    let mut words = filter.split_ascii_whitespace();
    let (Some(attr), Some(op), Some(value), None) = (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    let guid = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    let is_guid = guid.len() == 36
        && guid.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    (attr.eq_ignore_ascii_case("userName") || attr.eq_ignore_ascii_case("externalId"))
        && op.eq_ignore_ascii_case("eq")
        && is_guid
}

/// `scheme://host` the SCIM URLs are built on: configured, else from the request.
fn public_base<S>(req: &http::Request<Bytes>, env: &Env<'_, S>) -> String {
    if let Some(b) = &env.config.public_base_url {
        return b.clone();
    }
    let header_str = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let scheme = req
        .uri()
        .scheme_str()
        .or_else(|| header_str("x-forwarded-proto").filter(|p| *p == "https" || *p == "http"))
        .unwrap_or("http");
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| header_str("host"))
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@'))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

pub fn json_body(req: &http::Request<Bytes>) -> ScimResult<Value> {
    if req.body().is_empty() {
        return Err(ScimError::invalid_syntax("the request body is empty; a JSON object is required"));
    }
    let v: Value = serde_json::from_slice(req.body())
        .map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ScimError::invalid_syntax("the request body must be a JSON object"));
    }
    Ok(v)
}

fn response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> http::Response<Bytes> {
    let mut res = http::Response::new(Bytes::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

pub fn json_response(status: StatusCode, body: &Value) -> http::Response<Bytes> {
    // Straight into bytes, not through `fmt::Display` (`to_string`): 2-6% off a lookup or read.
    response(status, "application/json", serde_json::to_vec(body).unwrap_or_default())
}

/// A SCIM response; a resource's `ETag` is its `meta.version`, and a 201's `Location` its
/// `meta.location` (RFC 7644 §3.1, §3.14).
fn scim_response(
    status: StatusCode,
    body: Vec<u8>,
    etag: Option<&str>,
    location: Option<&str>,
) -> http::Response<Bytes> {
    let mut res = response(status, SCIM_CONTENT_TYPE, body);
    let mut set = |name, value: Option<&str>| {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            res.headers_mut().insert(name, v);
        }
    };
    set(header::ETAG, etag);
    if status == StatusCode::CREATED {
        set(header::LOCATION, location);
    }
    res
}

fn scim_value(status: StatusCode, body: &Value) -> http::Response<Bytes> {
    scim_response(
        status,
        serde_json::to_vec(body).unwrap_or_default(),
        meta(body, "version"),
        meta(body, "location"),
    )
}

fn meta<'v>(body: &'v Value, name: &str) -> Option<&'v str> {
    body.get("meta").and_then(|m| m.get(name)).and_then(Value::as_str)
}

fn no_content() -> http::Response<Bytes> {
    let mut res = http::Response::new(Bytes::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

/// An answer without a body that carries the resource's `ETag`: 204 after a group PATCH, 304
/// Not Modified for a GET whose `If-None-Match` matched (RFC 7232 §4.1).
fn bodiless(status: StatusCode, etag: &str) -> http::Response<Bytes> {
    let mut res = http::Response::new(Bytes::new());
    *res.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// The parameters of a query (RFC 7644 §3.4.2), from the URL of a GET or the body of a
/// POST `.search` (§3.4.3). Unknown URL parameters (Entra's `aadOptscim062020`) are ignored.
#[derive(Default)]
struct Query {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    excluded: Option<String>,
}

const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

impl Query {
    fn from_url(query: Option<&str>) -> Query {
        let params = router::query_params(query);
        let get = |n: &str| param(&params, n).map(str::to_owned);
        Query {
            filter: get("filter"),
            start_index: get("startIndex"),
            count: get("count"),
            attributes: get("attributes"),
            excluded: get("excludedAttributes"),
        }
    }

    fn from_search_body(body: &Value) -> ScimResult<Query> {
        if let Some(schemas) = body.get("schemas") {
            let ok = schemas
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(SEARCH_REQUEST_SCHEMA)));
            if !ok {
                return Err(ScimError::invalid_syntax(format!(
                    "a search request's schemas must be [{SEARCH_REQUEST_SCHEMA:?}]"
                )));
            }
        }
        let text = |name: &str| -> ScimResult<Option<String>> {
            match body.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(Value::Array(items)) => {
                    let parts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                    parts.map(|p| Some(p.join(","))).ok_or_else(|| {
                        ScimError::invalid_value(format!("{name} must be an array of attribute names"))
                    })
                }
                Some(_) => Err(ScimError::invalid_value(format!("{name} has the wrong type"))),
            }
        };
        Ok(Query {
            filter: text("filter")?,
            start_index: text("startIndex")?,
            count: text("count")?,
            attributes: text("attributes")?,
            excluded: text("excludedAttributes")?,
        })
    }

    fn attributes(&self) -> Option<&str> {
        self.attributes.as_deref()
    }
    fn excluded(&self) -> Option<&str> {
        self.excluded.as_deref()
    }
    fn filter(&self, limits: &Limits) -> ScimResult<Option<filter::Filter>> {
        match self.filter.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(f) => {
                limits::check_filter_length(f, limits)?;
                let parsed = filter::parse_with_depth(f, limits.max_filter_depth, Some("maxFilterDepth"))
                    .map_err(|e| {
                        ScimError::invalid_filter(format!(
                            "invalid filter at offset {}: {}",
                            e.offset, e.message
                        ))
                    })?;
                Ok(Some(parsed))
            }
        }
    }
    /// (0-based start, count), RFC 7644 §3.4.2.4: startIndex < 1 means 1, a negative count
    /// means 0, and count is clamped to the configured maximum.
    fn paging<S>(&self, env: &Env<'_, S>) -> ScimResult<(u64, u64)> {
        let num = |name: &str, v: Option<&str>| -> ScimResult<Option<i64>> {
            match v.map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) => v
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer, got {v:?}"))),
            }
        };
        let start = num("startIndex", self.start_index.as_deref())?.unwrap_or(1).max(1) as u64 - 1;
        let max = env.config.max_page_size as u64;
        let count = num("count", self.count.as_deref())?
            .map(|c| c.max(0) as u64)
            .unwrap_or(env.config.default_page_size as u64)
            .min(max);
        Ok((start, count))
    }
}

/// Which resources a query searches.
#[derive(Clone, Copy)]
enum Searched {
    Users,
    Groups,
    /// `POST /.search` at the root: users, then groups.
    All,
}

async fn search<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    what: Searched,
    q: &Query,
) -> ScimResult<http::Response<Bytes>> {
    let f = q.filter(&env.config.limits)?;
    let (start, count) = q.paging(env)?;
    // Lists carry group members only when asked for by name (see groups::query).
    let with_members = q.attributes().is_some() && wants(q.attributes(), q.excluded(), "members");
    let probe = matches!(what, Searched::Users) && q.filter.as_deref().is_some_and(is_connection_test);
    let page = match what {
        Searched::Users => users::query(env, scope, f.as_ref(), start, count).await?,
        Searched::Groups => groups::query(env, scope, f.as_ref(), start, count, with_members).await?,
        Searched::All => {
            let mut page = users::query(env, scope, f.as_ref(), start, count).await?;
            let left = count.saturating_sub(page.resources.len() as u64);
            let group_start = start.saturating_sub(page.total);
            let g = groups::query(env, scope, f.as_ref(), group_start, left, with_members).await?;
            page.total += g.total;
            page.resources.extend(g.resources);
            page
        }
    };
    let found_nothing = page.total == 0;
    let mut res = scim_response(StatusCode::OK, list_response(page, start, q), None, None);
    if probe && found_nothing {
        res.extensions_mut().insert(ConnectionTest);
    }
    Ok(res)
}

/// The `ListResponse` (RFC 7644 §3.4.2), written as `serde_json` would write it (keys in order).
fn list_response(page: Page, start: u64, q: &Query) -> Vec<u8> {
    let items = page.resources.len();
    let mut out = b"{\"Resources\":[".to_vec();
    for (i, r) in page.resources.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match r {
            Resource::Json(json) => out.extend_from_slice(&projected(json, q)),
            Resource::Value(mut v) => {
                project(&mut v, q.attributes(), q.excluded());
                let _ = serde_json::to_writer(&mut out, &v);
            }
        }
    }
    let total = page.total;
    let tail = format!(
        "],\"itemsPerPage\":{items},\"schemas\":[\"{}\"],\"startIndex\":{},\"totalResults\":{total}}}",
        schema::LIST_RESPONSE_SCHEMA,
        start + 1
    );
    out.extend_from_slice(tail.as_bytes());
    out
}

/// A resource's JSON with the query's `attributes` / `excludedAttributes` applied.
fn projected(json: Vec<u8>, q: &Query) -> Vec<u8> {
    if q.attributes().is_none_or(|a| a.trim().is_empty()) && q.excluded().is_none() {
        return json;
    }
    match serde_json::from_slice::<Value>(&json) {
        Ok(mut v) => {
            project(&mut v, q.attributes(), q.excluded());
            serde_json::to_vec(&v).unwrap_or(json)
        }
        Err(_) => json,
    }
}

/// A single resource's answer; its `ETag` and `Location` are taken before the projection,
/// which may leave `meta` out.
fn single(mut resource: Value, q: &Query, status: StatusCode) -> http::Response<Bytes> {
    let etag = meta(&resource, "version").map(str::to_owned);
    let location = meta(&resource, "location").map(str::to_owned);
    project(&mut resource, q.attributes(), q.excluded());
    scim_response(
        status,
        serde_json::to_vec(&resource).unwrap_or_default(),
        etag.as_deref(),
        location.as_deref(),
    )
}

fn single_user(user: users::Rendered, q: &Query, status: StatusCode) -> http::Response<Bytes> {
    let etag = users::etag(user.version);
    scim_response(status, projected(user.json, q), Some(&etag), Some(&user.location))
}

async fn scim<S: Store>(
    endpoint: ScimEndpoint<'_>,
    req: &http::Request<Bytes>,
    env: &Env<'_, S>,
    scope: &Scope<'_>,
) -> ScimResult<http::Response<Bytes>> {
    let q = Query::from_url(req.uri().query());
    let m = req.method();
    // If-Match / If-None-Match (RFC 7644 §3.14) on a single resource.
    let pre = Preconditions::from_headers(req.headers());
    match endpoint {
        ScimEndpoint::Users => match *m {
            Method::GET => search(env, scope, Searched::Users, &q).await,
            Method::POST => {
                let (rec, how) = users::create(env, scope, &json_body(req)?).await?;
                let mut res = single_user(rec.render(scope.base)?, &q, StatusCode::CREATED);
                if how == users::Created::MatchedLocal {
                    res.extensions_mut().insert(Operation("user.match"));
                }
                Ok(res)
            }
            _ => Err(ScimError::method_not_allowed("GET, POST")),
        },
        ScimEndpoint::User(id) => match *m {
            Method::GET => {
                let user = users::get(env, scope, id).await?;
                let etag = users::etag(user.version);
                if pre.check_read(&format!("User {id}"), &etag)? {
                    return Ok(bodiless(StatusCode::NOT_MODIFIED, &etag));
                }
                Ok(single_user(user, &q, StatusCode::OK))
            }
            Method::PUT => {
                let rec = users::replace(env, scope, id, &json_body(req)?, &pre).await?;
                Ok(single_user(rec.render(scope.base)?, &q, StatusCode::OK))
            }
            Method::PATCH => {
                let rec = users::patch(env, scope, id, &json_body(req)?, &pre).await?;
                Ok(single_user(rec.render(scope.base)?, &q, StatusCode::OK))
            }
            Method::DELETE => {
                let mut res = no_content();
                if users::delete(env, scope, id, &pre).await? == users::Deleted::Block {
                    // Entra's hard delete of a user removed by hand: its block is lifted.
                    res.extensions_mut().insert(Operation("user.unblock"));
                }
                Ok(res)
            }
            _ => Err(ScimError::method_not_allowed("GET, PUT, PATCH, DELETE")),
        },
        ScimEndpoint::Groups => match *m {
            Method::GET => search(env, scope, Searched::Groups, &q).await,
            Method::POST => {
                let (rec, members) = groups::create(env, scope, &json_body(req)?).await?;
                Ok(single(rec.render(scope.base, Some(&members)), &q, StatusCode::CREATED))
            }
            _ => Err(ScimError::method_not_allowed("GET, POST")),
        },
        ScimEndpoint::Group(id) => match *m {
            Method::GET => {
                let with_members = wants(q.attributes(), q.excluded(), "members");
                let group = groups::get(env, scope, id, with_members).await?;
                let etag = meta(&group, "version").unwrap_or_default().to_owned();
                if pre.check_read(&format!("Group {id}"), &etag)? {
                    return Ok(bodiless(StatusCode::NOT_MODIFIED, &etag));
                }
                Ok(single(group, &q, StatusCode::OK))
            }
            Method::PUT => {
                let (rec, members) = groups::replace(env, scope, id, &json_body(req)?, &pre).await?;
                Ok(single(rec.render(scope.base, Some(&members)), &q, StatusCode::OK))
            }
            Method::PATCH => {
                // 204: a body would list every member (Entra advises against it).
                let version = groups::patch(env, scope, id, &json_body(req)?, &pre).await?;
                Ok(bodiless(StatusCode::NO_CONTENT, &users::etag(version)))
            }
            Method::DELETE => {
                groups::delete(env, scope, id, &pre).await?;
                Ok(no_content())
            }
            _ => Err(ScimError::method_not_allowed("GET, PUT, PATCH, DELETE")),
        },
        ScimEndpoint::Search(resource) => {
            if m != Method::POST {
                return Err(ScimError::method_not_allowed("POST"));
            }
            let what = match resource {
                Some(ResourceKind::User) => Searched::Users,
                Some(ResourceKind::Group) => Searched::Groups,
                None => Searched::All,
            };
            search(env, scope, what, &Query::from_search_body(&json_body(req)?)?).await
        }
        ScimEndpoint::ServiceProviderConfig => {
            read_only(m)?;
            Ok(scim_value(StatusCode::OK, &service_provider_config(env, scope.base)))
        }
        ScimEndpoint::Schemas => {
            read_only(m)?;
            Ok(scim_value(StatusCode::OK, &schema::schemas_list(scope.base, &env.config.uniqueness)))
        }
        ScimEndpoint::Schema(id) => {
            read_only(m)?;
            let s = schema::schema(scope.base, &id, &env.config.uniqueness)
                .ok_or_else(|| ScimError::not_found(format!("Schema {id:?} not found")))?;
            Ok(scim_value(StatusCode::OK, &s))
        }
        ScimEndpoint::ResourceTypes => {
            read_only(m)?;
            Ok(scim_value(StatusCode::OK, &schema::resource_types_list(scope.base)))
        }
        ScimEndpoint::ResourceType(name) => {
            read_only(m)?;
            let r = schema::resource_type(scope.base, name)
                .ok_or_else(|| ScimError::not_found(format!("ResourceType {name:?} not found")))?;
            Ok(scim_value(StatusCode::OK, &r))
        }
        ScimEndpoint::Unknown => Err(ScimError::not_found(
            "no such SCIM endpoint: this service provider offers /Users, /Groups, /ServiceProviderConfig, \
             /Schemas and /ResourceTypes (no /Bulk, no /Me)",
        )),
    }
}

fn read_only(m: &Method) -> ScimResult<()> {
    if m == Method::GET {
        Ok(())
    } else {
        Err(ScimError::method_not_allowed("GET"))
    }
}

fn service_provider_config<S>(env: &Env<'_, S>, base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": true},
        // No /Bulk; maxPayloadSize still tells a client the largest body any request may have.
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": env.config.limits.max_body_bytes},
        "filter": {"supported": true, "maxResults": env.config.max_page_size},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "pagination": {
            "cursor": false,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": env.config.default_page_size,
            "maxPageSize": env.config.max_page_size,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with the SCIM connection's secret token (Authorization: Bearer <token>)",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}
