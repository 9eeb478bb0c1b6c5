//! Test-only service (feature `store-probe`): the configured store over HTTP, so the
//! end-to-end tests can check conditional writes in the real Envoy without the SCIM service.
//!
//! `/scim/v2/_probe/{key}` — `GET` → 200 with the value and `x-version`, or 404;
//! `PUT` (body = value) and `DELETE`, with `x-condition: any | absent | <version>` → 200 with
//! `x-version` (PUT) / 204 (DELETE), 409 on a failed condition, 503 when the store is down.

use bytes::Bytes;
use http::{Method, StatusCode};
use scim_edge_core::{Condition, Store, StoreError, Version};

const PREFIX: &str = "/scim/v2/_probe/";

fn reply(status: StatusCode, version: Option<Version>, body: impl Into<Bytes>) -> http::Response<Bytes> {
    let mut res = http::Response::new(body.into());
    *res.status_mut() = status;
    if let Some(Version(v)) = version {
        if let Ok(v) = http::HeaderValue::from_str(&v.to_string()) {
            res.headers_mut().insert("x-version", v);
        }
    }
    res
}

fn failed(e: StoreError) -> http::Response<Bytes> {
    match e {
        StoreError::Conflict => reply(StatusCode::CONFLICT, None, "conflict"),
        StoreError::Unavailable(why) => reply(StatusCode::SERVICE_UNAVAILABLE, None, why),
    }
}

pub async fn serve<S: Store>(req: http::Request<Bytes>, store: &S) -> http::Response<Bytes> {
    let Some(key) = req.uri().path().strip_prefix(PREFIX).map(str::to_owned) else {
        return reply(StatusCode::NOT_FOUND, None, "not a probe path");
    };
    let cond = match req.headers().get("x-condition").and_then(|v| v.to_str().ok()).unwrap_or("any") {
        "any" => Condition::Any,
        "absent" => Condition::Absent,
        v => match v.parse() {
            Ok(v) => Condition::Version(Version(v)),
            Err(_) => return reply(StatusCode::BAD_REQUEST, None, "bad x-condition"),
        },
    };
    match *req.method() {
        Method::GET => match store.get(&key).await {
            Ok(Some(v)) => reply(StatusCode::OK, Some(v.version), v.value),
            Ok(None) => reply(StatusCode::NOT_FOUND, None, ""),
            Err(e) => failed(e),
        },
        Method::PUT => match store.put(&key, req.body(), cond).await {
            Ok(v) => reply(StatusCode::OK, Some(v), ""),
            Err(e) => failed(e),
        },
        Method::DELETE => match store.delete(&key, cond).await {
            Ok(()) => reply(StatusCode::NO_CONTENT, None, ""),
            Err(e) => failed(e),
        },
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, None, ""),
    }
}
