//! # scim-edge-envoy
//!
//! The Envoy HTTP filter (proxy-wasm ABI 0.2.1 through the `proxy-wasm` 0.2.5 SDK, built for
//! `wasm32-wasip1`): a thin adapter that hands `/scim/v2/…` and `/admin/v1/…` requests to
//! [`scim_edge_core::handle`] and answers with what it returns. Every other request passes
//! upstream untouched but for the product's own headers (`X-Acting-User` and the edge's
//! `x-scim-edge-*`, [`scim_edge_core::edge::strip_list`]), which are removed so that no client
//! can forge them; on a route the `edge` configuration guards, the caller is first looked up
//! (the worker's cache, else the store) and refused or let through with those headers set
//! ([`scim_edge_core::edge`] decides; see [`edge`] for the host side). It holds no SCIM logic.
//!
//! What the adapter supplies to the core:
//! - the request: method, path and query, every header (`:authority` as `Host`) and the whole
//!   body;
//! - the configuration, from the plugin configuration (see [`settings`]), validated in
//!   `on_configure`: a bad one fails the filter's load with an error log line naming the problem;
//! - a store: etcd through HTTP callouts (durable, shared by every Envoy, see [`etcd`]) or
//!   Envoy's shared data (volatile, one process, see [`shared_data`]);
//! - Envoy's clock and WASI `random_get`.
//!
//! ## How a request flows (Envoy 1.40 behaviour this relies on, see `envoy/README.md`)
//! - `on_http_request_headers` copies the pseudo-headers and headers; Envoy drops its header
//!   map once this callback returns `Continue`. A request without a body starts at once.
//! - A request with a body returns `Continue` from the headers (pausing there would mean the
//!   body callback is never called) and `Pause` from `on_http_request_body` until the end of
//!   the stream, so Envoy buffers it. The router has by then opened a stream upstream, which is
//!   why `envoy.yaml` routes these paths to a "sink" cluster that never answers first.
//! - The core's future is polled ([`task`]); while a store callout is in flight the callback
//!   returns `Pause`, and `on_http_call_response` polls again. When it is ready, the response
//!   goes out with `send_http_response` as a local reply.
//! - A guarded request whose caller is not cached pauses in its headers callback while the
//!   lookup's callouts run; then either a local reply, or the headers are set and
//!   `resume_http_request` lets it go upstream (a body sent meanwhile is buffered: the body
//!   callback returns `Pause` until then).
//!
//! No code path panics: a panic would kill this worker's VM for every later request. Host
//! calls go through the `Result`-returning `proxy_wasm::hostcalls`, never the SDK helpers that
//! unwrap, and only in the callbacks where Envoy answers them.

// The probe replaces the core, so the core's host services go unused in that build.
#![cfg_attr(feature = "store-probe", allow(dead_code))]

mod edge;
mod etcd;
mod host;
#[cfg(feature = "store-probe")]
mod probe;
mod settings;
mod shared_data;
mod store;
mod task;

use std::rc::Rc;

use bytes::Bytes;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use scim_edge_core::edge::{self as policy, CallerKey, Standing};
use scim_edge_core::router::{self, Route};
use scim_edge_core::{metrics as names, ScimError, StoreError};

use crate::settings::{Settings, StoreSettings};
use crate::shared_data::SharedDataStore;
use crate::store::HostStore;
use crate::task::{metrics, Callouts, Reply, ResponseFuture, Step, Task};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { settings: None }) });
}}

/// One per VM (one VM per worker thread): holds the validated settings.
struct Root {
    settings: Option<Rc<Settings>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let raw = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, plugin_configuration_size) {
            Ok(raw) => raw.unwrap_or_default(),
            Err(status) => {
                host::log(
                    LogLevel::Error,
                    &format!("scim-edge: cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        let settings = match Settings::from_json(&raw) {
            Ok(settings) => settings,
            Err(e) => {
                host::log(LogLevel::Error, &format!("scim-edge: {e}"));
                return false;
            }
        };
        if let StoreSettings::SharedData { prefix } = &settings.store {
            if let Err(e) = SharedDataStore::new(prefix).init() {
                host::log(LogLevel::Error, &format!("scim-edge: {e}"));
                return false;
            }
        }
        host::log(LogLevel::Info, &format!("scim-edge: configured, store: {}", settings.store.describe()));
        self.settings = Some(Rc::new(settings));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Never None: the SDK panics on None.
        Some(Box::new(Stream {
            settings: self.settings.clone(),
            phase: Phase::Idle,
            callouts: Rc::default(),
            request: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request.
struct Stream {
    settings: Option<Rc<Settings>>,
    phase: Phase,
    callouts: Rc<Callouts>,
    /// A SCIM or admin request's path and method, for its stats.
    request: Option<(String, http::Method)>,
}

enum Phase {
    /// Before the headers.
    Idle,
    /// Not a SCIM or admin path: every callback continues.
    PassThrough,
    /// A guarded route (`edge`), paused while the caller is looked up in the store.
    Guarding { lookup: Task<Result<Standing, StoreError>>, key: CallerKey },
    /// Ours, waiting for the end of the body.
    Reading(Box<http::request::Parts>),
    /// The core is working on it.
    Running(ResponseFuture),
    /// The local reply has been sent.
    Answered,
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let reply = callout_reply(num_headers, body_size);
        if self.callouts.complete(token, reply) {
            self.drive();
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // Envoy always answers this call here; it returns an empty list rather than an error.
        let pairs = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        let path = pairs
            .iter()
            .find(|(name, _)| name == ":path")
            .and_then(|(_, path)| std::str::from_utf8(path).ok())
            .map(|path| path.split('?').next().unwrap_or_default());
        let ours = path.is_some_and(|path| !matches!(router::route(path), Route::Other));
        if !ours {
            let edge = self.settings.as_ref().and_then(|s| s.edge.as_ref());
            let guarded = edge.is_some_and(|e| path.is_some_and(|p| e.guards(p)));
            // The product's own headers never come from a client (`X-Acting-User` and the
            // edge's): stripped from every request, or it is refused rather than passed on
            // with a forged one.
            for name in policy::strip_list(edge) {
                if hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).is_err() {
                    return self.respond(
                        ScimError::new(
                            http::StatusCode::SERVICE_UNAVAILABLE,
                            format!("the {name} header could not be removed from this request; retry"),
                        )
                        .into_response(),
                    );
                }
            }
            if guarded {
                return self.guard(&pairs);
            }
            self.phase = Phase::PassThrough;
            return Action::Continue;
        }
        let head = match request_head(pairs) {
            Ok(head) => head,
            Err(why) => {
                return self
                    .respond(ScimError::bad_request(format!("malformed request: {why}")).into_response())
            }
        };
        if end_of_stream {
            return self.start(head, Bytes::new());
        }
        self.phase = Phase::Reading(Box::new(head));
        // Not Pause: after a Pause here Envoy would never call on_http_request_body.
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match std::mem::replace(&mut self.phase, Phase::Answered) {
            Phase::Reading(head) if end_of_stream => {
                let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                self.start(*head, Bytes::from(body))
            }
            // Pause buffers the body until the end of the stream.
            Phase::Reading(head) => {
                self.phase = Phase::Reading(head);
                Action::Pause
            }
            phase @ (Phase::Idle | Phase::PassThrough) => {
                self.phase = phase;
                Action::Continue
            }
            // Buffered until the guard has decided.
            phase @ (Phase::Running(_) | Phase::Guarding { .. } | Phase::Answered) => {
                self.phase = phase;
                Action::Pause
            }
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match &self.phase {
            Phase::Idle | Phase::PassThrough => Action::Continue,
            Phase::Running(_) | Phase::Guarding { .. } | Phase::Answered => Action::Pause,
            // SCIM clients do not send trailers; reading a buffered body from this callback is
            // not something Envoy promises, so refuse rather than guess.
            Phase::Reading(_) => {
                self.respond(ScimError::bad_request("request trailers are not supported").into_response())
            }
        }
    }
}

impl Stream {
    /// Builds the core's future for a complete request and runs it as far as it goes.
    fn start(&mut self, head: http::request::Parts, body: Bytes) -> Action {
        let Some(settings) = self.settings.clone() else {
            return self.respond(ScimError::internal("scim-edge is not configured").into_response());
        };
        let (store, clock) = self.host_services(&settings);
        self.request = Some((head.uri.path().to_owned(), head.method.clone()));
        let req = http::Request::from_parts(head, body);
        #[cfg(not(feature = "store-probe"))]
        let future: ResponseFuture = Box::pin(async move {
            let env = scim_edge_core::Env {
                store: &store,
                clock: &clock,
                random: &host::HostRandom,
                config: &settings.scim,
            };
            scim_edge_core::handle(req, &env).await
        });
        #[cfg(feature = "store-probe")]
        let future: ResponseFuture = {
            // The probe serves the store alone; it never waits for a list.
            let _ = clock;
            Box::pin(async move { probe::serve(req, &store).await })
        };
        self.phase = Phase::Running(future);
        self.drive()
    }

    /// The store and clock of a request, over this VM's settings.
    fn host_services(&self, settings: &Settings) -> (HostStore, host::HostClock) {
        match &settings.store {
            StoreSettings::Etcd(etcd) => (
                HostStore::Etcd(etcd::store(etcd.clone(), self.callouts.clone())),
                host::HostClock { pause: Some((self.callouts.clone(), etcd.clone())) },
            ),
            // Shared data is read and written synchronously: a lease is seen held only across
            // worker threads, for microseconds, so a waiter retries at once.
            StoreSettings::SharedData { prefix } => {
                (HostStore::SharedData(SharedDataStore::new(prefix)), host::HostClock { pause: None })
            }
        }
    }

    /// Polls the core's future (or the guard's lookup); answers when it is ready.
    fn drive(&mut self) -> Action {
        let step = match &mut self.phase {
            Phase::Running(future) => task::drive(future, &self.callouts),
            Phase::Guarding { .. } => return self.drive_guard(true),
            _ => return Action::Pause,
        };
        match step {
            Step::Waiting => Action::Pause,
            Step::Done(res) => self.respond(res),
            Step::Stalled => {
                host::log(
                    LogLevel::Error,
                    "scim-edge: bug: the request is pending with no store call in flight",
                );
                self.respond(ScimError::internal("the request could not complete").into_response())
            }
        }
    }

    /// Sends `res` as Envoy's local reply and ends the request.
    fn respond(&mut self, res: http::Response<Bytes>) -> Action {
        self.phase = Phase::Answered;
        if let Some((path, method)) = self.request.take() {
            for name in names::request(&path, &method, res.status().as_u16()) {
                metrics::increment(&name);
            }
        }
        let (parts, body) = res.into_parts();
        let headers: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        if let Err(status) =
            hostcalls::send_http_response(u32::from(parts.status.as_u16()), headers, Some(&body))
        {
            host::log(LogLevel::Error, &format!("scim-edge: cannot send the response: {status:?}"));
        }
        Action::Pause
    }
}

/// The request line and headers as the core wants them: the URI is the path and query, and an
/// HTTP/2-style `:authority` becomes `Host` (Envoy turns HTTP/1's `Host` into `:authority`).
fn request_head(pairs: Vec<(String, Vec<u8>)>) -> Result<http::request::Parts, String> {
    let mut builder = http::Request::builder();
    let mut authority = None;
    let mut has_host = false;
    for (name, value) in pairs {
        match name.as_str() {
            ":method" => builder = builder.method(value.as_slice()),
            ":path" => builder = builder.uri(http::Uri::try_from(value).map_err(|e| e.to_string())?),
            ":authority" => authority = Some(value),
            pseudo if pseudo.starts_with(':') => {}
            name => {
                has_host |= name == "host";
                builder = builder.header(name, value);
            }
        }
    }
    if let (false, Some(authority)) = (has_host, authority) {
        builder = builder.header(http::header::HOST, authority);
    }
    builder.body(()).map(|req| req.into_parts().0).map_err(|e| e.to_string())
}

/// Reads the reply of the callout whose response callback is running.
fn callout_reply(num_headers: usize, body_size: usize) -> Reply {
    // Envoy reports a failed callout (connection reset) with no headers; then the response
    // header map does not exist, so nothing is read.
    if num_headers == 0 {
        return Reply::Failed("the connection failed (reset)".into());
    }
    let status = hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders)
        .unwrap_or_default()
        .into_iter()
        .find(|(name, _)| name == ":status")
        .and_then(|(_, v)| std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u16>().ok()));
    let Some(status) = status else {
        return Reply::Failed("a response without :status".into());
    };
    let body = if body_size == 0 {
        Vec::new()
    } else {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    Reply::Response { status, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn request_head_is_what_an_http1_request_would_carry() {
        let head = request_head(pairs(&[
            (":method", "PATCH"),
            (":path", "/scim/v2/c/Users/1?aadOptscim062020"),
            (":authority", "scim.example.com"),
            (":scheme", "http"),
            ("authorization", "Bearer t"),
            ("x-forwarded-proto", "https"),
        ]))
        .unwrap();
        assert_eq!(head.method, http::Method::PATCH);
        assert_eq!(head.uri, "/scim/v2/c/Users/1?aadOptscim062020");
        assert_eq!(head.headers.get("host").unwrap(), "scim.example.com");
        assert_eq!(head.headers.get("authorization").unwrap(), "Bearer t");
        assert_eq!(head.headers.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(head.headers.len(), 3, "pseudo-headers are not headers");
    }

    #[test]
    fn an_explicit_host_header_wins_and_bad_input_is_an_error() {
        let head =
            request_head(pairs(&[(":method", "GET"), (":path", "/"), (":authority", "a"), ("host", "b")]))
                .unwrap();
        assert_eq!(head.headers.get_all("host").iter().collect::<Vec<_>>(), ["b"]);
        assert!(request_head(pairs(&[(":method", "G E T"), (":path", "/")])).is_err());
    }
}
