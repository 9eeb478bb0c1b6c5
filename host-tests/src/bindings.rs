//! Spin's own interfaces, implemented as Spin 4.0.2 implements them
//! (`crates/factor-key-value/src/host.rs`, `crates/factor-variables/src/host.rs`):
//! `spin:key-value@3.0.0`, `spin:variables@3.0.0` and `wasi:keyvalue/{store,atomics}@0.2.0-draft2`.
//!
//! The component may open only the stores its manifest grants (`key_value_stores =
//! ["default"]`); any other label answers `access-denied`, as in Spin.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Resource, ResourceTable};

use crate::kv::{KvBackend, KvError};

wasmtime::component::bindgen!({
    path: "wit",
    world: "scim-edge:host/spin-imports",
    imports: { default: trappable },
    with: {
        "spin:key-value/key-value.store": KvStore,
        "wasi:keyvalue/store.bucket": KvStore,
        "wasi:keyvalue/atomics.cas": CasHandle,
    },
});

use spin::key_value::key_value as skv;
use spin::variables::variables as svar;
use wasi::keyvalue::{atomics, store as wkv};

/// An open store (a `spin:key-value` store or a `wasi:keyvalue` bucket): its label.
pub struct KvStore {
    label: String,
}

/// An open compare-and-swap. `recorded` is what `current()` saw; before `current()` is
/// called it is `None`, so a `swap` then is an unconditional upsert — as in Spin.
pub struct CasHandle {
    label: String,
    key: String,
    recorded: Option<Vec<u8>>,
}

/// The key-value state every instance shares: the backend and the stores it may open.
#[derive(Clone)]
pub struct SpinKv {
    pub backend: Arc<dyn KvBackend>,
    pub allowed_stores: Arc<[String]>,
}

/// The values of the component's variables (what `[component.x.variables]` resolves to).
#[derive(Clone, Debug, Default)]
pub struct Variables {
    values: BTreeMap<String, String>,
}

impl Variables {
    pub fn new() -> Self {
        Self::default()
    }

    /// The variables `spin.toml` maps into the scim-edge component, with the defaults it
    /// declares for them (`tests/component.rs` checks the two agree).
    pub fn scim_edge() -> Self {
        Self::new().with("admin_token_sha256", "").with("public_base_url", "").with("config", "{}")
    }

    /// Every variable with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.values.insert(name.to_owned(), value.into());
        self
    }

    /// Spin's resolution: an invalid name is `invalid-name`, a name the component does not
    /// declare is `undefined`.
    fn get(&self, name: &str) -> Result<String, svar::Error> {
        if let Err(reason) = check_variable_name(name) {
            return Err(svar::Error::InvalidName(format!("{name:?}: {reason}")));
        }
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| svar::Error::Undefined(format!("no variable for \"scim-edge\".{name:?}")))
    }
}

/// `spin_expressions::Key::validate`.
fn check_variable_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (None, _) | (_, None) => Err("must not be empty"),
        _ if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_') => {
            Err("Variable names may contain only lower-case letters, numbers, and underscores.")
        }
        (Some(first), _) if !first.is_ascii_lowercase() => Err("must start with a lowercase ASCII letter"),
        (_, Some(last)) if !last.is_ascii_alphanumeric() => {
            Err("must end with a lowercase ASCII letter or digit")
        }
        _ if name.contains("__") => Err("must not contain multiple consecutive underscores"),
        _ => Ok(()),
    }
}

/// What the bindings reach in the store's data.
pub struct SpinView<'a> {
    pub table: &'a mut ResourceTable,
    pub kv: &'a SpinKv,
    pub variables: &'a Variables,
}

/// Marker for the accessor-style (WIT `async func`) interfaces.
pub struct SpinData;

impl HasData for SpinData {
    type Data<'a> = SpinView<'a>;
}

/// Adds our three packages to a linker whose store data can give a [`SpinView`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> SpinView<'_>,
) -> wasmtime::Result<()> {
    skv::add_to_linker::<T, SpinData>(linker, view)?;
    svar::add_to_linker::<T, SpinData>(linker, view)?;
    wkv::add_to_linker::<T, SpinData>(linker, view)?;
    atomics::add_to_linker::<T, SpinData>(linker, view)?;
    Ok(())
}

fn other(e: KvError) -> String {
    e.to_string()
}

impl SpinView<'_> {
    fn open(&mut self, label: String) -> wasmtime::Result<Option<Resource<KvStore>>> {
        if !self.kv.allowed_stores.contains(&label) {
            return Ok(None);
        }
        Ok(Some(self.table.push(KvStore { label })?))
    }

    fn label(&self, store: &Resource<KvStore>) -> wasmtime::Result<String> {
        Ok(self.table.get(store)?.label.clone())
    }
}

// ---- spin:key-value@3.0.0 (async) ----

impl skv::Host for SpinView<'_> {}

impl skv::HostStore for SpinView<'_> {
    fn drop(&mut self, rep: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

/// Runs one backend call for `store` on the shared backend.
fn with_store<T, R>(
    a: &Accessor<T, SpinData>,
    store: &Resource<KvStore>,
    f: impl FnOnce(&dyn KvBackend, &str) -> Result<R, KvError>,
) -> wasmtime::Result<Result<R, skv::Error>> {
    a.with(|mut x| {
        let view = x.get();
        let label = view.label(store)?;
        Ok(f(view.kv.backend.as_ref(), &label).map_err(|e| skv::Error::Other(other(e))))
    })
}

impl skv::HostStoreWithStore for SpinData {
    async fn open<T>(
        a: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvStore>, skv::Error>> {
        a.with(|mut x| Ok(x.get().open(label)?.ok_or(skv::Error::AccessDenied)))
    }

    async fn get<T>(
        a: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, skv::Error>> {
        with_store(a, &store, |kv, label| kv.get(label, &key))
    }

    async fn set<T>(
        a: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), skv::Error>> {
        with_store(a, &store, |kv, label| kv.set(label, &key, &value))
    }

    async fn delete<T>(
        a: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), skv::Error>> {
        with_store(a, &store, |kv, label| kv.delete(label, &key))
    }

    async fn exists<T>(
        a: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, skv::Error>> {
        with_store(a, &store, |kv, label| kv.exists(label, &key))
    }

    async fn get_keys<T>(
        a: &Accessor<T, Self>,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<(
        wasmtime::component::StreamReader<String>,
        wasmtime::component::FutureReader<Result<(), skv::Error>>,
    )> {
        let keys = with_store(a, &store, |kv, label| kv.keys(label))?;
        a.with(|mut x| {
            let (keys, result) = match keys {
                Ok(keys) => (keys, Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            };
            let stream = wasmtime::component::StreamReader::new(&mut x, keys)?;
            let future =
                wasmtime::component::FutureReader::new(
                    &mut x,
                    async move { Ok::<_, wasmtime::Error>(result) },
                )?;
            Ok((stream, future))
        })
    }
}

// ---- spin:variables@3.0.0 (async) ----

impl svar::Host for SpinView<'_> {}

impl svar::HostWithStore for SpinData {
    async fn get<T>(a: &Accessor<T, Self>, name: String) -> wasmtime::Result<Result<String, svar::Error>> {
        Ok(a.with(|mut x| x.get().variables.get(&name)))
    }
}

// ---- wasi:keyvalue/store@0.2.0-draft2 (sync) ----

fn wasi_err(e: KvError) -> wkv::Error {
    wkv::Error::Other(other(e))
}

impl wkv::Host for SpinView<'_> {
    fn open(&mut self, identifier: String) -> wasmtime::Result<Result<Resource<KvStore>, wkv::Error>> {
        Ok(self.open(identifier)?.ok_or(wkv::Error::AccessDenied))
    }
}

impl wkv::HostBucket for SpinView<'_> {
    fn get(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wkv::Error>> {
        let label = self.label(&bucket)?;
        Ok(self.kv.backend.get(&label, &key).map_err(wasi_err))
    }

    fn set(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wkv::Error>> {
        let label = self.label(&bucket)?;
        Ok(self.kv.backend.set(&label, &key, &value).map_err(wasi_err))
    }

    fn delete(&mut self, bucket: Resource<KvStore>, key: String) -> wasmtime::Result<Result<(), wkv::Error>> {
        let label = self.label(&bucket)?;
        Ok(self.kv.backend.delete(&label, &key).map_err(wasi_err))
    }

    fn exists(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wkv::Error>> {
        let label = self.label(&bucket)?;
        Ok(self.kv.backend.exists(&label, &key).map_err(wasi_err))
    }

    fn list_keys(
        &mut self,
        bucket: Resource<KvStore>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wkv::KeyResponse, wkv::Error>> {
        if cursor.is_some() {
            return Ok(Err(wkv::Error::Other("list_keys: cursor not supported".into())));
        }
        let label = self.label(&bucket)?;
        Ok(self.kv.backend.keys(&label).map(|keys| wkv::KeyResponse { keys, cursor: None }).map_err(wasi_err))
    }

    fn drop(&mut self, rep: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

// ---- wasi:keyvalue/atomics@0.2.0-draft2 (sync) ----

impl atomics::Host for SpinView<'_> {
    fn increment(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wkv::Error>> {
        let label = self.label(&bucket)?;
        match self.kv.backend.increment(&label, &key, delta) {
            Ok(n) => Ok(Ok(n)),
            // Spin's SQLite store panics here (`expect("incorrect length")`): the request
            // dies. A trap is the closest a test host can come.
            Err(e @ KvError::NotAnI64 { .. }) => Err(wasmtime::format_err!("spin key-value host panic: {e}")),
            Err(e) => Ok(Err(wasi_err(e))),
        }
    }

    fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let handle = self.table.delete(cas)?;
        match self.kv.backend.swap(&handle.label, &handle.key, handle.recorded.as_deref(), &value) {
            Ok(true) => Ok(Ok(())),
            // As Spin: a failed swap hands back a fresh CAS that has already read the value.
            Ok(false) => match self.kv.backend.get(&handle.label, &handle.key) {
                Ok(recorded) => {
                    let retry =
                        self.table.push(CasHandle { label: handle.label, key: handle.key, recorded })?;
                    Ok(Err(atomics::CasError::CasFailed(retry)))
                }
                Err(e) => Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
            },
            Err(e) => Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
        }
    }
}

impl atomics::HostCas for SpinView<'_> {
    fn new(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, wkv::Error>> {
        let label = self.label(&bucket)?;
        Ok(Ok(self.table.push(CasHandle { label, key, recorded: None })?))
    }

    fn current(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<Result<Option<Vec<u8>>, wkv::Error>> {
        let (label, key) = {
            let h = self.table.get(&cas)?;
            (h.label.clone(), h.key.clone())
        };
        let value = match self.kv.backend.get(&label, &key) {
            Ok(v) => v,
            Err(e) => return Ok(Err(wasi_err(e))),
        };
        self.table.get_mut(&cas)?.recorded.clone_from(&value);
        Ok(Ok(value))
    }

    fn drop(&mut self, rep: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_follow_spin() {
        for ok in ["a", "abc", "a1b2c3", "a_1", "admin_token_sha256"] {
            assert!(check_variable_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y"] {
            assert!(check_variable_name(bad).is_err(), "{bad}");
        }
    }

    fn view<'a>(table: &'a mut ResourceTable, kv: &'a SpinKv, variables: &'a Variables) -> SpinView<'a> {
        SpinView { table, kv, variables }
    }

    fn spin_kv() -> SpinKv {
        SpinKv {
            backend: Arc::new(crate::kv::MemKv::new()),
            allowed_stores: Arc::from(vec!["default".to_owned()]),
        }
    }

    fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
        Resource::new_borrow(r.rep())
    }

    #[test]
    fn only_the_granted_store_opens() -> wasmtime::Result<()> {
        let (mut table, kv, vars) = (ResourceTable::new(), spin_kv(), Variables::new());
        let mut v = view(&mut table, &kv, &vars);
        assert!(matches!(wkv::Host::open(&mut v, "other".into())?, Err(wkv::Error::AccessDenied)));
        assert!(wkv::Host::open(&mut v, "default".into())?.is_ok());
        Ok(())
    }

    /// Spin's CAS: `current()` records the value; `swap` compares against the recording, and
    /// with nothing recorded it is an upsert; a failed swap hands back a CAS that has read
    /// the latest value.
    #[test]
    fn cas_records_at_current_and_upserts_without_a_recording() -> wasmtime::Result<()> {
        let (mut table, kv, vars) = (ResourceTable::new(), spin_kv(), Variables::new());
        let mut v = view(&mut table, &kv, &vars);
        let Ok(bucket) = wkv::Host::open(&mut v, "default".into())? else { panic!("open") };

        // Absent key: current() sees None, a concurrent write lands, swap still succeeds.
        let Ok(cas) = atomics::HostCas::new(&mut v, borrow(&bucket), "k".into())? else { panic!("cas") };
        assert_eq!(atomics::HostCas::current(&mut v, borrow(&cas))?.ok(), Some(None));
        kv.backend.set("default", "k", b"other")?;
        assert!(atomics::Host::swap(&mut v, cas, b"mine".to_vec())?.is_ok());
        assert_eq!(kv.backend.get("default", "k")?, Some(b"mine".to_vec()));

        // Existing key: a write between current() and swap is detected.
        let Ok(cas) = atomics::HostCas::new(&mut v, borrow(&bucket), "k".into())? else { panic!("cas") };
        assert_eq!(atomics::HostCas::current(&mut v, borrow(&cas))?.ok(), Some(Some(b"mine".to_vec())));
        kv.backend.set("default", "k", b"theirs")?;
        let Err(atomics::CasError::CasFailed(retry)) = atomics::Host::swap(&mut v, cas, b"lost".to_vec())?
        else {
            panic!("expected CasFailed")
        };
        assert_eq!(kv.backend.get("default", "k")?, Some(b"theirs".to_vec()));
        // The retry handle has already recorded "theirs".
        assert!(atomics::Host::swap(&mut v, retry, b"retried".to_vec())?.is_ok());
        assert_eq!(kv.backend.get("default", "k")?, Some(b"retried".to_vec()));

        // No current() at all: nothing recorded, so swap overwrites whatever is there.
        let Ok(cas) = atomics::HostCas::new(&mut v, borrow(&bucket), "k".into())? else { panic!("cas") };
        assert!(atomics::Host::swap(&mut v, cas, b"blind".to_vec())?.is_ok());
        assert_eq!(kv.backend.get("default", "k")?, Some(b"blind".to_vec()));
        Ok(())
    }

    #[test]
    fn increment_of_a_non_counter_traps() -> wasmtime::Result<()> {
        let (mut table, kv, vars) = (ResourceTable::new(), spin_kv(), Variables::new());
        let mut v = view(&mut table, &kv, &vars);
        let Ok(bucket) = wkv::Host::open(&mut v, "default".into())? else { panic!("open") };
        assert_eq!(atomics::Host::increment(&mut v, borrow(&bucket), "n".into(), 5)?.ok(), Some(5));
        kv.backend.set("default", "data", b"\x01{}")?;
        assert!(atomics::Host::increment(&mut v, borrow(&bucket), "data".into(), 1).is_err());
        Ok(())
    }

    #[test]
    fn unknown_variables_are_undefined() {
        let v = Variables::scim_edge();
        assert_eq!(v.get("public_base_url").ok().as_deref(), Some(""));
        assert!(matches!(v.get("nope"), Err(svar::Error::Undefined(_))));
        assert!(matches!(v.get("No"), Err(svar::Error::InvalidName(_))));
    }
}
