//! # scim-edge-host-tests
//!
//! Hosts that run the built scim-edge components outside their real gateways, for tests and
//! local development:
//! - [`SpinHost`]: wasmtime 44 (the version Spin 4.0.2 embeds) running the Spin component with
//!   Spin's own interfaces — `spin:key-value@3.0.0`, `spin:variables@3.0.0`,
//!   `wasi:keyvalue/{store,atomics}@0.2.0-draft2` — with Spin's semantics, a fresh instance per
//!   request, outbound HTTP denied;
//! - [`kv`]: Spin's key-value semantics over memory (tests) or SQLite in Spin's own table
//!   (the dev server, `scim-edge-dev`) — those of Spin's SQLite store — and, in memory, those of
//!   Spin's Redis store ([`kv::RedisKv`]);
//! - [`contention`]: a workload of conflicting SCIM operations from many clients, for any host;
//! - [`spin_value`]: the Spin adapter's value encoding, for readers of Spin's store; [`resp`]: a
//!   minimal Redis client to read Spin's Redis store;
//! - [`SpinTarget`]: the shared scenario suite's [`Target`](scim_edge_core::testing::scenario::Target)
//!   over a [`SpinHost`].
//!
//! `build.rs` builds the component from `plugin/spin` (release); [`COMPONENT_WASM`] is its path.
//!
//! The real hosts are driven by harnesses the test files include with `#[path]`:
//! `src/envoy/` (Envoy and etcd) and `src/spin_cli.rs` (the Spin CLI: `spin build`, `spin up`,
//! `redis-server`).

mod bindings;
pub mod contention;
mod host;
pub mod kv;
pub mod ports;
pub mod report;
pub mod resp;
pub mod spin_value;
mod target;

pub use bindings::Variables;
pub use host::{SpinComponent, SpinHost, COMPONENT_WASM, ROUTES};
pub use target::SpinTarget;

/// The `config` variable of hosts that send many requests in a burst (the scenario suite, the
/// concurrency tests, benchmarks): the per-tenant rate limit, on by default, off.
pub const NO_RATE_LIMIT: &str = r#"{"rateLimit":null}"#;

/// Lower-case hex SHA-256 of a token: what `admin_token_sha256` expects.
pub fn sha256_hex(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Each secret found in `haystack`, whole or as a 12-character piece of its middle (a token
/// printed cut short is still a leak): the tests' check that logs and stores hold no tokens.
pub fn leaks(haystack: &[u8], secrets: &[String]) -> Vec<String> {
    let contains = |needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    secrets
        .iter()
        .filter(|s| {
            let mid = s.len() / 2;
            contains(s.as_bytes()) || s.as_bytes().get(mid.saturating_sub(6)..mid + 6).is_some_and(contains)
        })
        .cloned()
        .collect()
}
