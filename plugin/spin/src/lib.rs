//! # scim-edge-spin
//!
//! The Spin component (spin-sdk 6, `wasm32-wasip2`, Spin ≥ 4.0): a thin adapter that hands
//! every HTTP request to [`scim_edge_core::handle`] and sends back what it returns. It holds no
//! SCIM logic and no `static` state (Spin instantiates the component for every request); all
//! state lives in Spin's key-value store `default` (see [`store`] for how the core's
//! conditional writes are built on Spin's atomics).
//!
//! What the adapter supplies to the core:
//! - the request: method, path and query, headers and the whole body. The URI is reduced to
//!   path and query; an HTTP/2 `:authority` is copied into `Host` when that header is missing,
//!   so the core sees what an HTTP/1.1 request would carry;
//! - [`Config`] from the Spin variables `admin_token_sha256` and `public_base_url` (declare both
//!   in `spin.toml`; an empty value means "not set"). A configuration the core rejects, or a
//!   variable Spin cannot resolve, answers 500 with the reason as plain text;
//! - the wall clock (`wasi:clocks` through `std::time::SystemTime`) and entropy
//!   (`wasi:random` through `getrandom`).

mod store;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, StatusCode, Uri};
use scim_edge_core::{Clock, Config, Env, Random, RandomError};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::FullBody;

use crate::store::SpinStore;

/// The Spin variables the configuration is assembled from, with the JSON key each one fills.
const CONFIG_VARIABLES: [(&str, &str); 2] =
    [("admin_token_sha256", "adminTokenSha256"), ("public_base_url", "publicBaseUrl")];

#[spin_sdk::http_service]
async fn serve(
    req: spin_sdk::http::Request,
) -> Result<http::Response<FullBody<Bytes>>, spin_sdk::http::Error> {
    let (mut parts, body) = req.into_parts();
    // A body that cannot be read is a transport failure: Spin answers it, not the core.
    let body = body.bytes().await?;

    let config = match load_config().await {
        Ok(config) => config,
        Err(reason) => {
            // Component stderr is Spin's log.
            eprintln!("scim-edge: {reason}");
            return Ok(plain_text(StatusCode::INTERNAL_SERVER_ERROR, reason));
        }
    };

    if !parts.headers.contains_key(HOST) {
        if let Some(host) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            parts.headers.insert(HOST, host);
        }
    }
    parts.uri = parts.uri.path_and_query().cloned().map_or_else(|| Uri::from_static("/"), Uri::from);
    parts.extensions = http::Extensions::new();
    let req = http::Request::from_parts(parts, body);

    let store = SpinStore::new();
    let env = Env { store: &store, clock: &SystemClock, random: &HostRandom, config: &config };
    let res = scim_edge_core::handle(req, &env).await;
    Ok(res.map(FullBody::new))
}

/// Reads the Spin variables and validates them as the core's [`Config`]. Runs on every
/// request, because a Spin instance lives for one request only.
async fn load_config() -> Result<Config, String> {
    let mut json = serde_json::Map::new();
    for (variable, key) in CONFIG_VARIABLES {
        let value = spin_sdk::variables::get(variable)
            .await
            .map_err(|e| format!("spin variable `{variable}` could not be read: {e}"))?;
        json.insert(key.to_owned(), serde_json::Value::String(value));
    }
    Config::from_json(&serde_json::Value::Object(json).to_string()).map_err(|e| e.to_string())
}

fn plain_text(status: StatusCode, text: String) -> http::Response<FullBody<Bytes>> {
    let mut res = http::Response::new(FullBody::new(Bytes::from(text)));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    res
}

/// `wasi:clocks/wall-clock`.
struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// `wasi:random/random`, the host's cryptographically secure source.
struct HostRandom;

impl Random for HostRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|_| RandomError)
    }
}
