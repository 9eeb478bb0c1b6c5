//! The proxy-wasm floor of the benchmark (`bench/run.sh`, row "Envoy + no-op wasm filter"): the
//! least a proxy-wasm filter can do for a request it owns. It answers every request from
//! `on_http_request_headers` with a local reply carrying the body scim-edge gives a lookup that
//! finds nobody, as the Envoy floor's `direct_response` does, and reads nothing. What is left
//! between this row and the `direct_response` floor is Envoy's wasm machinery (the V8 VM, the
//! per-request context, the ABI calls, the local reply); what is left between this row and
//! scim-edge is scim-edge.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

const BODY: &[u8] = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]}"#;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream;

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // An error here would leave the request to the next filter; there is nothing to add.
        let _ =
            hostcalls::send_http_response(200, vec![("content-type", "application/scim+json")], Some(BODY));
        Action::Pause
    }
}
