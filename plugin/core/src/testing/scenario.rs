//! The Entra ID provisioning lifecycle as one scenario suite, written once and replayed
//! against every host: the core over [`super::MemStore`], the Spin component in wasmtime,
//! the Envoy filter. Requests are exactly those of `shared/reference/entra-provisioning.md`.

use bytes::Bytes;

/// A host under test.
#[allow(async_fn_in_trait)]
pub trait Target {
    /// Sends one HTTP request (path and query in the URI, e.g. `/scim/v2/…`; headers as given).
    async fn send(&mut self, req: http::Request<Bytes>) -> http::Response<Bytes>;
    /// The value the core stored under `key` (as the core wrote it, host encoding removed).
    async fn stored(&mut self, key: &str) -> Option<Vec<u8>>;
    /// The operator's admin token (plaintext) configured on this host.
    fn admin_token(&self) -> String;
}

/// Which of Entra's PATCH dialects to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Entra's default: capitalised ops, `"False"` strings, one op per attribute,
    /// `Remove` members with a value list.
    Default,
    /// `?aadOptscim062020`: lower-case ops, booleans, path-less multi-attribute replace,
    /// `members[value eq "…"]` removal.
    AadOptScim062020,
}
