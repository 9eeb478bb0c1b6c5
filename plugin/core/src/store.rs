//! The host key-value interface the core runs against.
//!
//! Deliberately narrow, so every backend can offer it: Spin's key-value store (with
//! `wasi:keyvalue/atomics`), Envoy shared data, etcd. There is no listing and no
//! transaction: listing and uniqueness come from the index keys in [`crate::keys`].

use std::fmt;

/// Opaque version of a stored value, handed back by [`Store::get`] and checked by
/// [`Condition::Version`]. Backends choose what it is (a counter, a content hash, etcd's
/// `mod_revision`); the core only compares it for equality by handing it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version(pub u64);

/// A value with the version it was read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub version: Version,
}

/// When a write may happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Unconditionally.
    Any,
    /// Only if the key holds no value (create).
    Absent,
    /// Only if the key still holds the value read at this version.
    Version(Version),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The write's [`Condition`] did not hold. Expected under concurrency: callers retry or
    /// turn it into a SCIM error (409 for uniqueness).
    Conflict,
    /// The backend failed or timed out. The message is for logs, never for clients.
    Unavailable(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict => f.write_str("write condition failed"),
            StoreError::Unavailable(m) => write!(f, "store unavailable: {m}"),
        }
    }
}

/// The host's key-value store.
///
/// Futures need not be `Send`: both hosts are single-threaded wasm.
#[allow(async_fn_in_trait)]
pub trait Store {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;
    /// Writes `value` if `cond` holds; returns the new version.
    async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError>;
    /// Removes the key if `cond` holds. Deleting an absent key with [`Condition::Any`] is
    /// not an error. [`Condition::Absent`] is meaningless here and answers `Conflict`.
    async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError>;
}

/// Reads and decodes a JSON record. A record that does not decode is reported as a 500
/// (it means a bug or a foreign writer), never a panic.
pub(crate) async fn get_json<S: Store, T: serde::de::DeserializeOwned>(
    store: &S,
    key: &str,
) -> Result<Option<(T, Version)>, crate::ScimError> {
    match store.get(key).await? {
        None => Ok(None),
        Some(v) => match serde_json::from_slice(&v.value) {
            Ok(t) => Ok(Some((t, v.version))),
            Err(_) => Err(crate::ScimError::internal(format!("stored record {key} is corrupt"))),
        },
    }
}

pub(crate) async fn put_json<S: Store, T: serde::Serialize>(
    store: &S,
    key: &str,
    value: &T,
    cond: Condition,
) -> Result<Version, StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    store.put(key, &bytes, cond).await
}
