//! # scim-edge-core
//!
//! A SCIM 2.0 service provider (RFC 7643 / RFC 7644) for many tenants, with the quirks of
//! Microsoft Entra ID's provisioning service, plus the operator's admin API for tenants and
//! their SCIM connections.
//!
//! **What this crate does not do:** no networking, no clock, no entropy, no host key-value
//! access. The host adapter (Spin component, Envoy filter, test host) hands [`handle`] an
//! `http::Request`, an [`Env`] with a [`Store`], a [`Clock`], a [`Random`] source and the
//! validated [`Config`], and sends back the `http::Response` it returns. All state lives in
//! the store under the keys listed in [`keys`].
//!
//! No request path panics: every failure is a [`ScimError`] response.

pub mod admin;
pub mod auth;
pub mod blocks;
pub mod config;
pub mod consistency;
pub mod counters;
pub mod edge;
pub mod error;
pub mod groups;
pub mod index;
pub mod keys;
pub mod lifecycle;
pub mod limits;
pub mod list;
pub mod log;
pub mod metrics;
pub mod rate;
pub mod roles;
pub mod router;
pub mod scim;
pub mod sessions;
pub mod store;
pub mod tenants;
pub mod time;
pub mod users;

mod page;
mod service;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{Config, ConfigError};
pub use error::{ScimError, ScimType};
pub use service::handle;
pub use store::{Change, Condition, Store, StoreError, Version, Versioned};

/// Wall-clock time, injected.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// Waits a little before the `attempt`-th retry of something another request holds (a
    /// list's lease), so that waiters do not compete with the holder for the store. Spin
    /// blocks its instance (one per request); Envoy's filter parks the request on a delayed
    /// callout. The default does not wait.
    fn pause(&self, attempt: u32) -> Pause<'_> {
        let _ = attempt;
        Box::pin(core::future::ready(()))
    }
}

/// The future of [`Clock::pause`].
pub type Pause<'a> = core::pin::Pin<Box<dyn core::future::Future<Output = ()> + 'a>>;

/// Entropy, injected. Tokens and ids come from here.
pub trait Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError>;
}

/// The host could not supply entropy; the request fails with 503 rather than weak ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomError;

/// Everything a request needs from its host.
pub struct Env<'a, S> {
    pub store: &'a S,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Random,
    pub config: &'a Config,
}
