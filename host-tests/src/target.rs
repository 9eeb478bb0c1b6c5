//! The scenario suite's [`Target`] over the Spin component.

use std::sync::Arc;

use bytes::Bytes;
use scim_edge_core::testing::scenario::Target;

use crate::host::SpinHost;
use crate::kv::{KvBackend, MemKv};
use crate::{SpinComponent, Variables};

/// The store label the component uses.
const STORE: &str = "default";

/// A [`SpinHost`] over an in-memory store, configured with an admin token.
pub struct SpinTarget {
    pub host: SpinHost,
    admin_token: String,
}

impl SpinTarget {
    /// A fresh application (empty store) with `admin_token` configured.
    pub fn new(component: SpinComponent, admin_token: &str) -> Self {
        Self::with_kv(component, admin_token, Arc::new(MemKv::new()))
    }

    /// The same over another backend, e.g. [`crate::kv::RedisKv`].
    pub fn with_kv(component: SpinComponent, admin_token: &str, kv: Arc<dyn KvBackend>) -> Self {
        let variables = Variables::scim_edge()
            .with("admin_token_sha256", crate::sha256_hex(admin_token))
            .with("config", crate::NO_RATE_LIMIT);
        SpinTarget { host: SpinHost::new(component, kv, variables), admin_token: admin_token.to_owned() }
    }
}

impl Target for SpinTarget {
    async fn send(&mut self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        match self.host.handle(req).await {
            Ok(res) => res,
            Err(e) => {
                let mut res = http::Response::new(Bytes::from(format!("host error: {e:#}")));
                *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                res
            }
        }
    }

    /// The core's bytes, the adapter's encoding removed ([`crate::spin_value`]).
    async fn stored(&mut self, key: &str) -> Option<Vec<u8>> {
        let raw = self.host.kv().get(STORE, key).ok()??;
        crate::spin_value::live(&raw).map(<[u8]>::to_vec)
    }

    fn admin_token(&self) -> String {
        self.admin_token.clone()
    }
}
