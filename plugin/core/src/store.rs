//! The host key-value interface the core runs against.
//!
//! Deliberately narrow, so every backend can offer it: Spin's key-value store (with
//! `wasi:keyvalue/atomics`), Envoy shared data, etcd. There is no listing: listing and
//! uniqueness come from the index keys in [`crate::keys`]. Several writes can go as one
//! [`Store::apply`], which a store with transactions (etcd) makes atomic and one round trip.

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

/// One write of [`Store::apply`]: `value` `None` deletes the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    pub key: &'a str,
    pub value: Option<&'a [u8]>,
    pub cond: Condition,
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

    /// Several writes as one step. A store with multi-key transactions (etcd's `txn`)
    /// overrides this to apply all of them, in one round trip, only if every condition holds,
    /// and otherwise none (`Conflict`). This default applies them in order and stops at the
    /// first failure, so a `Conflict` may leave the changes before it applied: callers put
    /// their conditional change last and find out what happened when that matters.
    async fn apply(&self, changes: &[Change<'_>]) -> Result<(), StoreError> {
        apply_in_order(self, changes).await
    }

    /// Whether [`Store::apply`] of `changes` changes is all-or-nothing, so that a process dying
    /// in it leaves none of them made. The default's is not; callers that need several keys
    /// changed together log their intent first where it is not (`crate::list`).
    fn atomic_apply(&self, changes: usize) -> bool {
        let _ = changes;
        false
    }
}

/// [`Store::apply`]'s default: each change with [`Store::put`] or [`Store::delete`], in order,
/// up to the first failure.
pub async fn apply_in_order<S: Store + ?Sized>(store: &S, changes: &[Change<'_>]) -> Result<(), StoreError> {
    for c in changes {
        match c.value {
            Some(value) => store.put(c.key, value, c.cond).await.map(|_| ())?,
            None => store.delete(c.key, c.cond).await?,
        }
    }
    Ok(())
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
