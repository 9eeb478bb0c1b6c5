//! The host services the core gets from Envoy: wall clock, entropy, logging.

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;
use scim_edge_core::{Clock, Random, RandomError};

/// Milliseconds since the Unix epoch, from Envoy's clock (0 if the host cannot tell, which
/// Envoy never does).
pub fn now_millis() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `proxy_get_current_time_nanoseconds`.
pub struct HostClock;

impl Clock for HostClock {
    fn now_millis(&self) -> u64 {
        now_millis()
    }
}

/// WASI `random_get`, which Envoy implements with its own CSPRNG.
pub struct HostRandom;

impl Random for HostRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|_| RandomError)
    }
}

/// Writes one line to Envoy's log (`wasm log <plugin> <root_id> <vm_id>: <message>`).
pub fn log(level: LogLevel, message: &str) {
    // Envoy accepts every level; a failure to log is not worth failing a request for.
    let _ = hostcalls::log(level, message);
}
