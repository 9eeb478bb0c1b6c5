//! A one-future executor driven by proxy-wasm callbacks.
//!
//! The core's `handle` is an `async fn`; Envoy has no async runtime to give it. Each request
//! owns one boxed future. The HTTP context polls it (with a waker that does nothing) when the
//! request is complete, and again from `on_http_call_response` every time a callout it waits
//! for has finished. A store operation that needs the network dispatches an HTTP callout
//! through [`Callouts::dispatch`], then awaits [`Callouts::wait`], which stays `Pending` until
//! the context has handed the reply to [`Callouts::complete`]. Nothing else can wake a future
//! here, so a `Pending` future with no callout in flight would never finish: [`drive`] reports
//! that as [`Step::Stalled`] and the context answers 500 instead of hanging the client.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use proxy_wasm::hostcalls;
use scim_edge_core::metrics as names;

/// A future the HTTP context of one request owns and drives.
pub type Task<T> = Pin<Box<dyn Future<Output = T>>>;

/// The core's response future.
pub type ResponseFuture = Task<http::Response<Bytes>>;

/// How one callout ended (Envoy's own 503/504 for connect failures and timeouts arrive as
/// responses; a stream reset as `Failed`).
pub use scim_edge_etcd::Reply;

/// The callouts of one request: dispatched, and those whose reply has arrived.
#[derive(Default)]
pub struct Callouts {
    slots: RefCell<Vec<Slot>>,
}

/// A callout's token, its reply once arrived, and when it was sent (ms; `None` for a pause,
/// which is not a store call and not in the store's stats).
type Slot = (u32, Option<Reply>, Option<u64>);

impl Callouts {
    /// Sends an HTTP request to `cluster` and registers its token. The reply is delivered to
    /// the HTTP context that is current now, which must be the one owning `self`.
    pub fn dispatch(
        &self,
        cluster: &str,
        headers: Vec<(&str, &str)>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, String> {
        // A waiter's pause (`host::HostClock`) is no store call: not in the store's stats.
        let store = !headers.iter().any(|(n, v)| *n == ":path" && *v == crate::host::PAUSE_PATH);
        match hostcalls::dispatch_http_call(cluster, headers, Some(body), Vec::new(), timeout) {
            Ok(token) => {
                let sent = if store {
                    metrics::increment(metrics::STORE_CALLOUTS);
                    Some(crate::host::now_millis())
                } else {
                    None
                };
                self.slots.borrow_mut().push((token, None, sent));
                Ok(token)
            }
            // Envoy answers BadArgument for a cluster it does not know (or missing pseudo
            // headers) and InternalFailure when it cannot start the request.
            Err(status) => {
                if store {
                    metrics::increment(metrics::STORE_CALLOUT_FAILURES);
                }
                Err(format!("cannot call cluster {cluster:?}: {status:?} (is it defined in envoy.yaml?)"))
            }
        }
    }

    /// Stores the reply of `token`. False if the token is not one of ours.
    pub fn complete(&self, token: u32, reply: Reply) -> bool {
        let mut slots = self.slots.borrow_mut();
        match slots.iter_mut().find(|(t, r, _)| *t == token && r.is_none()) {
            Some((_, slot, sent)) => {
                if let Some(sent) = *sent {
                    metrics::record(
                        metrics::STORE_CALLOUT_MS,
                        crate::host::now_millis().saturating_sub(sent),
                    );
                    if matches!(reply, Reply::Failed(_) | Reply::Response { status: 500.., .. }) {
                        metrics::increment(metrics::STORE_CALLOUT_FAILURES);
                    }
                }
                *slot = Some(reply);
                true
            }
            None => false,
        }
    }

    /// Callouts dispatched whose reply has not arrived.
    pub fn in_flight(&self) -> usize {
        self.slots.borrow().iter().filter(|(_, r, _)| r.is_none()).count()
    }

    /// Removes and returns the reply of `token`, once it has arrived.
    fn take(&self, token: u32) -> Option<Reply> {
        let mut slots = self.slots.borrow_mut();
        let pos = slots.iter().position(|(t, r, _)| *t == token && r.is_some())?;
        slots.swap_remove(pos).1
    }

    /// Resolves to the reply of `token`.
    pub fn wait(&self, token: u32) -> Wait<'_> {
        Wait { callouts: self, token }
    }
}

/// Future of one callout's reply.
pub struct Wait<'a> {
    callouts: &'a Callouts,
    token: u32,
}

impl Future for Wait<'_> {
    type Output = Reply;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Reply> {
        match self.callouts.take(self.token) {
            Some(reply) => Poll::Ready(reply),
            None => Poll::Pending,
        }
    }
}

/// Where a request stands after one poll.
pub enum Step<T> {
    Done(T),
    /// Parked until a callout reply arrives.
    Waiting,
    /// Pending with nothing in flight: a bug, since nothing would ever poll it again.
    Stalled,
}

pub fn drive<T>(future: &mut Task<T>, callouts: &Callouts) -> Step<T> {
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(res) => Step::Done(res),
        Poll::Pending if callouts.in_flight() > 0 => Step::Waiting,
        Poll::Pending => Step::Stalled,
    }
}

/// Envoy stats (see `scim_edge_core::metrics`), defined on first use in this VM.
pub mod metrics {
    pub use super::names::{STORE_CALLOUTS, STORE_CALLOUT_FAILURES, STORE_CALLOUT_MS};
    use proxy_wasm::hostcalls;
    use proxy_wasm::types::MetricType;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    thread_local! {
        static IDS: RefCell<BTreeMap<String, Option<u32>>> = const { RefCell::new(BTreeMap::new()) };
    }

    fn id(name: &str, kind: MetricType) -> Option<u32> {
        IDS.with(|ids| {
            let mut ids = ids.borrow_mut();
            if let Some(id) = ids.get(name) {
                return *id;
            }
            // A stat that cannot be defined is not worth failing a request for: not counted.
            let id = hostcalls::define_metric(kind, name).ok();
            ids.insert(name.to_owned(), id);
            id
        })
    }

    pub fn increment(name: &str) {
        if let Some(id) = id(name, MetricType::Counter) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn record(name: &str, value: u64) {
        if let Some(id) = id(name, MetricType::Histogram) {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}
