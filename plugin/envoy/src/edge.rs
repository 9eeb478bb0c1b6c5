//! The host side of the edge (`scim_edge_core::edge`): a guarded request's steps (identify the
//! caller from its headers and metadata, ask the worker's cache, else run the core's lookup on
//! the store, pausing the request meanwhile; then send the refusal, or set the product's
//! headers and let it continue). Every decision is the core's.
//!
//! The cache is a `thread_local`: one VM per worker thread, so each worker keeps its own, and
//! a change in the store reaches every worker (and every Envoy on the same etcd) when the
//! entry expires, within `cacheTtlMs`.

use std::cell::RefCell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, LogLevel, MapType};
use scim_edge_core::edge::{self as policy, Cache, CallerKey, Decision, EdgeConfig, Standing};
use scim_edge_core::{metrics as names, StoreError};

use crate::task::{self, metrics, Step, Task};
use crate::{host, Phase, Stream};

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

impl Stream {
    /// A request to a guarded route: who is calling, from the cache or the store.
    pub(crate) fn guard(&mut self, pairs: &[(String, Vec<u8>)]) -> Action {
        let Some(settings) = self.settings.clone() else { return Action::Continue };
        let Some(cfg) = settings.edge.as_ref() else { return Action::Continue };
        let key = match cfg.identify(pairs, &metadata(cfg)) {
            Ok(key) => key,
            Err(reason) => return self.enforce(policy::refuse(cfg, reason), false),
        };
        if let Some(standing) = cached(cfg, &key, host::now_millis()) {
            metrics::increment(names::EDGE_CACHE_HIT);
            return self.enforce(policy::decide(cfg, &key, Ok(&standing)), false);
        }
        metrics::increment(names::EDGE_CACHE_MISS);
        let (store, clock) = self.host_services(&settings);
        let (how, wanted) = (cfg.matching, key.clone());
        let lookup: Task<Result<Standing, StoreError>> = Box::pin(async move {
            let env = scim_edge_core::Env {
                store: &store,
                clock: &clock,
                random: &host::HostRandom,
                config: &settings.scim,
            };
            policy::look_up(&env, how, &wanted).await
        });
        self.phase = Phase::Guarding { lookup, key };
        self.drive_guard(false)
    }

    /// Polls the lookup; enforces its decision when it is ready (`resume`: the request was
    /// paused in its headers callback and must be resumed to go upstream).
    pub(crate) fn drive_guard(&mut self, resume: bool) -> Action {
        let step = match &mut self.phase {
            Phase::Guarding { lookup, .. } => task::drive(lookup, &self.callouts),
            _ => return Action::Pause,
        };
        let looked = match step {
            Step::Waiting => return Action::Pause,
            // The store's failure is logged by `HostStore`.
            Step::Done(r) => r.map_err(|_| ()),
            Step::Stalled => {
                host::log(
                    LogLevel::Error,
                    "scim-edge: bug: the guard's lookup is pending with no store call",
                );
                Err(())
            }
        };
        let (Phase::Guarding { key, .. }, Some(settings)) =
            (std::mem::replace(&mut self.phase, Phase::Answered), self.settings.clone())
        else {
            return Action::Pause;
        };
        let Some(cfg) = settings.edge.as_ref() else { return Action::Pause };
        if let Ok(standing) = &looked {
            remember(cfg, key.clone(), standing.clone(), host::now_millis());
        }
        self.enforce(policy::decide(cfg, &key, looked.as_ref().map_err(|_| ())), resume)
    }

    /// Sends the decision's refusal, or sets its headers and lets the request go upstream.
    fn enforce(&mut self, decision: Decision, resume: bool) -> Action {
        metrics::increment(decision.metric());
        if let Some(reply) = decision.reply() {
            return self.respond(reply);
        }
        if let Decision::Allow(headers) = &decision {
            if !set_headers(headers) {
                let refusal = Decision::Unavailable.reply().unwrap_or_default();
                return self.respond(refusal);
            }
        }
        self.phase = Phase::PassThrough;
        if resume {
            if let Err(status) = hostcalls::resume_http_request() {
                host::log(LogLevel::Error, &format!("scim-edge: cannot resume the request: {status:?}"));
            }
        }
        Action::Continue
    }
}

/// The values of the configuration's metadata paths, in order (`None`: absent).
pub fn metadata(cfg: &EdgeConfig) -> Vec<Option<Vec<u8>>> {
    cfg.metadata_paths().iter().map(|p| hostcalls::get_property(p.to_vec()).ok().flatten()).collect()
}

/// The caller's standing, if this worker looked it up less than the TTL ago (`None` also
/// tells the one request that refreshes an aging entry to look the caller up).
pub fn cached(cfg: &EdgeConfig, key: &CallerKey, now: u64) -> Option<Standing> {
    CACHE.with(|c| c.borrow_mut().as_mut().filter(|c| c.fits(cfg)).and_then(|c| c.get(key, now).cloned()))
}

/// Remembers a lookup made at `now`.
pub fn remember(cfg: &EdgeConfig, key: CallerKey, standing: Standing, now: u64) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let cache = match c.take() {
            Some(cache) if cache.fits(cfg) => c.insert(cache),
            _ => c.insert(Cache::new(cfg)),
        };
        cache.put(key, standing, now);
    });
}

/// Sets `headers` on the request (replacing any value). False if Envoy refused one.
pub fn set_headers(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .all(|(name, value)| hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).is_ok())
}
