//! The store a request runs against, chosen by the plugin configuration.
//!
//! One enum rather than a generic parameter, so that the core's `handle` is compiled once
//! into the filter, not once per backend.

use scim_edge_core::{Change, Condition, Store, StoreError, Version, Versioned};

use proxy_wasm::types::LogLevel;

use crate::etcd::EtcdStore;
use crate::host;
use crate::shared_data::SharedDataStore;

pub enum HostStore {
    Etcd(EtcdStore),
    SharedData(SharedDataStore),
}

/// The core turns an unavailable store into a 503 with a generic detail and cannot log: the
/// reason goes to Envoy's log here.
fn logged<T>(op: &str, key: &str, r: Result<T, StoreError>) -> Result<T, StoreError> {
    if let Err(StoreError::Unavailable(why)) = &r {
        host::log(LogLevel::Warn, &format!("scim-edge: store {op} {key:?} failed: {why}"));
    }
    r
}

impl Store for HostStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let r = match self {
            HostStore::Etcd(s) => s.get(key).await,
            HostStore::SharedData(s) => s.get(key).await,
        };
        logged("get", key, r)
    }

    async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
        let r = match self {
            HostStore::Etcd(s) => s.put(key, value, cond).await,
            HostStore::SharedData(s) => s.put(key, value, cond).await,
        };
        logged("put", key, r)
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
        let r = match self {
            HostStore::Etcd(s) => s.delete(key, cond).await,
            HostStore::SharedData(s) => s.delete(key, cond).await,
        };
        logged("delete", key, r)
    }

    async fn apply(&self, changes: &[Change<'_>]) -> Result<(), StoreError> {
        let r = match self {
            HostStore::Etcd(s) => s.apply(changes).await,
            HostStore::SharedData(s) => s.apply(changes).await,
        };
        logged("apply", changes.first().map_or("", |c| c.key), r)
    }
    fn atomic_apply(&self, changes: usize) -> bool {
        match self {
            HostStore::Etcd(s) => s.atomic_apply(changes),
            HostStore::SharedData(s) => s.atomic_apply(changes),
        }
    }
}
