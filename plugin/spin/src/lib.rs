//! # scim-edge-spin
//!
//! The Spin component (spin-sdk 6, `wasm32-wasip2`, Spin ≥ 4.0): a thin adapter that hands
//! every HTTP request to [`scim_edge_core::handle`] and sends back what it returns. It holds no
//! SCIM logic and no `static` state (Spin instantiates the component for every request); all
//! state lives in Spin's key-value store `default` (see [`store`] for how the core's
//! conditional writes are built on Spin's atomics).
//!
//! What the adapter supplies to the core:
//! - the request: method, path and query, headers and the body, read only up to the core's
//!   `maxBodyBytes`: a longer body (by `Content-Length`, or as it streams in) is answered 413
//!   without reading the rest (a client's gigabyte never sits in the instance's memory). The URI is reduced to
//!   path and query; an HTTP/2 `:authority` is copied into `Host` when that header is missing,
//!   so the core sees what an HTTP/1.1 request would carry;
//! - [`Config`] from three Spin variables, all declared in `spin.toml`: `config`, a JSON object
//!   with any key of [`Config::from_json`] (limits, `rateLimit`, …; empty or `{}`: the
//!   defaults), and `admin_token_sha256` and `public_base_url`, which set `adminTokenSha256`
//!   and `publicBaseUrl` over what `config` says when they are not empty. A `config` that is
//!   not a JSON object, a configuration the core rejects, or a variable Spin cannot resolve
//!   answers every request with a 500 SCIM error whose `detail` gives the reason and names the
//!   variables, also written to stderr (Spin's log). The validated configuration is kept for
//!   the instance's lifetime: with Spin's default of one instance per request that saves
//!   nothing, with WASIp3 instance reuse turned on it saves the variable reads and the parsing
//!   for every later request the instance serves;
//! - the wall clock (`wasi:clocks` through `std::time::SystemTime`) and entropy
//!   (`wasi:random` through `getrandom`).

mod store;

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderValue, Uri};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use scim_edge_core::{Clock, Config, Env, Pause, Random, RandomError, ScimError};
use spin_sdk::http::FullBody;

use crate::store::SpinStore;

/// The Spin variable holding the core's configuration as one JSON object.
const CONFIG_VARIABLE: &str = "config";

/// The Spin variables that set `adminTokenSha256` and `publicBaseUrl` over `config`'s.
const ADMIN_TOKEN_VARIABLE: &str = "admin_token_sha256";
const BASE_URL_VARIABLE: &str = "public_base_url";

/// The validated configuration, once this instance has read it: what the variables said then
/// (an instance lives for one request, or a few with WASIp3 instance reuse; a new instance
/// reads them again). No other `static` may hold anything: all state is in the store.
static CONFIG: OnceLock<Config> = OnceLock::new();

#[spin_sdk::http_service]
async fn serve(
    req: spin_sdk::http::Request,
) -> Result<http::Response<FullBody<Bytes>>, spin_sdk::http::Error> {
    let (mut parts, body) = req.into_parts();

    let config = match CONFIG.get() {
        Some(config) => config,
        None => match load_config().await {
            // A request running concurrently in this instance may have set it first; both
            // read the same variables.
            Ok(config) => CONFIG.get_or_init(|| config),
            Err(reason) => {
                // Component stderr is Spin's log.
                eprintln!("scim-edge: {reason}");
                return Ok(ScimError::internal(reason).into_response().map(FullBody::new));
            }
        },
    };

    let limits = &config.limits;
    let declared =
        parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limits.max_body_bytes as u64) {
        return Ok(too_large(Some(n), config));
    }
    let body = match Limited::new(body, limits.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Ok(too_large(None, config)),
        // A body that cannot be read is a transport failure: Spin answers it, not the core.
        Err(e) => return Err(spin_sdk::http::Error::Other(e)),
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
    let env = Env { store: &store, clock: &SystemClock, random: &HostRandom, config };
    let res = scim_edge_core::handle(req, &env).await;
    Ok(res.map(FullBody::new))
}

/// The core's 413 for a body over `maxBodyBytes` (`size`: when known), without its body read.
fn too_large(size: Option<u64>, config: &Config) -> http::Response<FullBody<Bytes>> {
    scim_edge_core::limits::body_too_large(size, &config.limits).into_response().map(FullBody::new)
}

/// Reads the Spin variables and validates them as the core's [`Config`].
async fn load_config() -> Result<Config, String> {
    let admin = variable(ADMIN_TOKEN_VARIABLE).await?;
    let base = variable(BASE_URL_VARIABLE).await?;
    let text = variable(CONFIG_VARIABLE).await?;
    let trimmed = text.trim();
    if !trimmed.is_empty() && !trimmed.starts_with('{') {
        return Err(format!(
            "spin variable `{CONFIG_VARIABLE}` must be a JSON object such as {{\"maxBodyBytes\": 65536}}, got {}",
            excerpt(trimmed)
        ));
    }
    Config::from_json_with(trimmed, Some(&admin), Some(&base))
        .map_err(|e| format!("{e} (from the spin variables `{CONFIG_VARIABLE}`, `{ADMIN_TOKEN_VARIABLE}` and `{BASE_URL_VARIABLE}`)"))
}

async fn variable(name: &str) -> Result<String, String> {
    spin_sdk::variables::get(name).await.map_err(|e| format!("spin variable `{name}` could not be read: {e}"))
}

/// The start of `config`'s value, for an error message.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}…", text.get(..end).unwrap_or_default()),
        None => format!("{text:?}"),
    }
}

/// `wasi:clocks/wall-clock`.
struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// A Spin instance serves one request, so blocking it (`wasi:clocks` monotonic-clock
    /// subscribe + block) holds up nobody else — unlike spinning on the key-value store, which
    /// competes with the lease's holder. 0.25 ms, growing to 2 ms: short, so a waiter that
    /// sleeps is not overtaken for long by one that just arrived.
    fn pause(&self, attempt: u32) -> Pause<'_> {
        let micros = 250u64 << attempt.min(3);
        Box::pin(async move { std::thread::sleep(std::time::Duration::from_micros(micros)) })
    }
}

/// `wasi:random/random`, the host's cryptographically secure source.
struct HostRandom;

impl Random for HostRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|_| RandomError)
    }
}
