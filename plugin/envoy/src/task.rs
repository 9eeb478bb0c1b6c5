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

/// The core's response future, owned by the HTTP context of one request.
pub type ResponseFuture = Pin<Box<dyn Future<Output = http::Response<Bytes>>>>;

/// How one callout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The cluster answered (any status: Envoy's own 503/504 for connect failures and
    /// timeouts arrive here too).
    Response { status: u16, body: Vec<u8> },
    /// The callout failed without a response (stream reset).
    Failed(String),
}

/// The callouts of one request: dispatched, and those whose reply has arrived.
#[derive(Default)]
pub struct Callouts {
    slots: RefCell<Vec<(u32, Option<Reply>)>>,
}

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
        match hostcalls::dispatch_http_call(cluster, headers, Some(body), Vec::new(), timeout) {
            Ok(token) => {
                self.slots.borrow_mut().push((token, None));
                Ok(token)
            }
            // Envoy answers BadArgument for a cluster it does not know (or missing pseudo
            // headers) and InternalFailure when it cannot start the request.
            Err(status) => {
                Err(format!("cannot call cluster {cluster:?}: {status:?} (is it defined in envoy.yaml?)"))
            }
        }
    }

    /// Stores the reply of `token`. False if the token is not one of ours.
    pub fn complete(&self, token: u32, reply: Reply) -> bool {
        let mut slots = self.slots.borrow_mut();
        match slots.iter_mut().find(|(t, r)| *t == token && r.is_none()) {
            Some((_, slot)) => {
                *slot = Some(reply);
                true
            }
            None => false,
        }
    }

    /// Callouts dispatched whose reply has not arrived.
    pub fn in_flight(&self) -> usize {
        self.slots.borrow().iter().filter(|(_, r)| r.is_none()).count()
    }

    /// Removes and returns the reply of `token`, once it has arrived.
    fn take(&self, token: u32) -> Option<Reply> {
        let mut slots = self.slots.borrow_mut();
        let pos = slots.iter().position(|(t, r)| *t == token && r.is_some())?;
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
pub enum Step {
    Done(http::Response<Bytes>),
    /// Parked until a callout reply arrives.
    Waiting,
    /// Pending with nothing in flight: a bug, since nothing would ever poll it again.
    Stalled,
}

pub fn drive(future: &mut ResponseFuture, callouts: &Callouts) -> Step {
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(res) => Step::Done(res),
        Poll::Pending if callouts.in_flight() > 0 => Step::Waiting,
        Poll::Pending => Step::Stalled,
    }
}
