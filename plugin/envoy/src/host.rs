//! The host services the core gets from Envoy: wall clock, entropy, logging.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;
use scim_edge_core::{Clock, Pause, Random, RandomError};

use crate::settings::EtcdSettings;
use crate::task::Callouts;

/// Milliseconds since the Unix epoch, from Envoy's clock (0 if the host cannot tell, which
/// Envoy never does).
pub fn now_millis() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `proxy_get_current_time_nanoseconds`; on the etcd store, [`Clock::pause`] parks the request
/// on a delayed callout (see `pauseCluster` in [`crate::settings`]).
pub struct HostClock {
    pub pause: Option<(Rc<Callouts>, Rc<EtcdSettings>)>,
}

/// The path of a pause callout; the template's sink answers it with 204 after the delay.
pub const PAUSE_PATH: &str = "/scim-edge/pause";

/// 1 ms before the first retry, doubling to 8 ms: a list's holder keeps its lease for about
/// three etcd round trips, and a waiter that sleeps longer is overtaken by newcomers.
fn pause_millis(attempt: u32) -> u64 {
    1 << attempt.min(3)
}

impl Clock for HostClock {
    fn now_millis(&self) -> u64 {
        now_millis()
    }

    fn pause(&self, attempt: u32) -> Pause<'_> {
        match &self.pause {
            Some((callouts, settings)) => {
                pause(callouts, settings.pause_cluster.as_deref(), pause_millis(attempt))
            }
            None => Box::pin(std::future::ready(())),
        }
    }
}

/// Waits about `millis` on a delayed callout to `cluster` (the pause cluster); at once when
/// there is none, or the callout cannot be made.
pub fn pause<'a>(callouts: &'a Callouts, cluster: Option<&str>, millis: u64) -> Pause<'a> {
    let Some(cluster) = cluster else {
        return Box::pin(std::future::ready(()));
    };
    let delay = millis.to_string();
    let headers = vec![
        (":method", "GET"),
        (":path", PAUSE_PATH),
        (":authority", "scim-edge-pause"),
        ("x-envoy-fault-delay-request", delay.as_str()),
    ];
    match callouts.dispatch(cluster, headers, b"", Duration::from_millis(millis.saturating_add(1000))) {
        // Whatever the answer (the delayed 204, or an error at once), the wait is over.
        Ok(token) => Box::pin(async move {
            let _ = callouts.wait(token).await;
        }),
        Err(why) => {
            warn_once(&format!("scim-edge: waiters cannot pause, they retry at once: {why}"));
            Box::pin(std::future::ready(()))
        }
    }
}

thread_local! {
    static WARNED: Cell<bool> = const { Cell::new(false) };
}

/// Logs `message` as a warning the first time in this VM.
fn warn_once(message: &str) {
    if !WARNED.with(|w| w.replace(true)) {
        log(LogLevel::Warn, message);
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
