//! # scim-edge-bench-noop
//!
//! The floor of the Spin rows of the benchmark (`bench/run.sh`): a spin-sdk 6 component that
//! does what the scim-edge adapter does around the core — read the whole request body, answer
//! with a `FullBody` — and nothing else. Every request gets the same empty SCIM
//! `ListResponse`, so the load tool's `floor` phase (status-only) sees what a SCIM lookup of an
//! absent user looks like, at the cost of the host alone: the instance per request, WASI p2/p3
//! and `wasi:http`. No key-value store, no variables.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::HeaderValue;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::FullBody;

/// An empty SCIM list, byte for byte what scim-edge answers to a lookup that finds nobody.
const EMPTY_LIST: &[u8] = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]}"#;

#[spin_sdk::http_service]
async fn serve(
    req: spin_sdk::http::Request,
) -> Result<http::Response<FullBody<Bytes>>, spin_sdk::http::Error> {
    let _body = req.into_body().bytes().await?;
    let mut res = http::Response::new(FullBody::new(Bytes::from_static(EMPTY_LIST)));
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    Ok(res)
}
