//! End-to-end harness for the real Spin CLI: `spin build` and `spin up` on the project's own
//! `spin.toml`, on Spin's default SQLite store or on a `redis-server` the test starts.
//!
//! Included by `tests/real_spin.rs` with `#[path]`, next to the Envoy harness
//! (`src/envoy/mod.rs`, declared as `envoy` in the same test crate), whose HTTP client, request
//! builder and temp directories it reuses. Not part of the library.
//!
//! Binaries: `spin` from `SPIN_BIN` or `PATH` (the Spin CLI 4.0.2 is `../shared/bin/spin` on
//! the build machines), `redis-server` from `REDIS_SERVER_BIN` or `PATH` (Debian's
//! `redis-server`). When one is missing, a test calls [`require`]: under `CI=true` it fails
//! saying what is missing; elsewhere it prints one `real-spin: SKIPPED: …` line and passes.
//!
//! Failing loudly is the point of a test harness, hence `expect`/`panic!` here.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use scim_edge_host_tests::ports::free_port;
use scim_edge_host_tests::resp::Redis;
use serde_json::Value;

use crate::envoy::{client, request, workspace_root, TempDir, ADMIN_TOKEN};

/// How long `spin up` may take to listen (the first start compiles the component).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// `$var` (when it names a file), else `name` on `PATH`.
fn binary(var: &str, name: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        _ => find_on_path(name),
    }
}

pub fn spin_bin() -> Option<PathBuf> {
    binary("SPIN_BIN", "spin")
}

pub fn redis_bin() -> Option<PathBuf> {
    binary("REDIS_SERVER_BIN", "redis-server")
}

/// What a test needs from the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Spin,
    SpinAndRedis,
}

/// True when the binaries `need` names are there. Otherwise: under `CI=true` the test fails;
/// elsewhere one line `real-spin: SKIPPED: <test>: <why>` goes to stderr (past the harness's
/// capture, for `make test`'s summary) and the test returns early and passes.
pub fn require(test: &str, need: Need) -> bool {
    let mut missing = Vec::new();
    if spin_bin().is_none() {
        missing.push("no spin CLI on PATH or SPIN_BIN");
    }
    if need == Need::SpinAndRedis && redis_bin().is_none() {
        missing.push("no redis-server on PATH or REDIS_SERVER_BIN (Debian: apt-get install redis-server)");
    }
    if missing.is_empty() {
        return true;
    }
    let why = missing.join("; ");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("real-spin: FAILED: {test}: {why} (CI=true: the real-Spin tests must run in CI)");
    }
    let _ = writeln!(std::io::stderr(), "real-spin: SKIPPED: {test}: {why}");
    false
}

/// Runs `spin build` once per test binary in the workspace root (cargo for wasm32-wasip2,
/// release, into the workspace's `target/`) and prints how long it took.
pub fn build() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let spin = spin_bin().expect("spin CLI (call require first)");
        let started = Instant::now();
        let out = Command::new(&spin)
            .arg("build")
            .current_dir(workspace_root())
            // Host flags (e.g. -C target-cpu=native) must not reach the wasm build.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("run spin build");
        assert!(
            out.status.success(),
            "spin build failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = writeln!(
            std::io::stderr(),
            "real-spin: `spin build` took {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            spin.display()
        );
    });
}

fn log_file(path: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(path).expect("open a log file")
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A `redis-server` on a free loopback port, no persistence, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
}

impl RedisServer {
    pub fn start(dir: &Path) -> RedisServer {
        let port = free_port();
        let log = dir.join(format!("redis-{port}.log"));
        let child = Command::new(redis_bin().expect("redis-server (call require first)"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .spawn()
            .expect("start redis-server");
        let mut server = RedisServer { child: Some(child), port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("redis-server exited ({status}) while starting; log:\n{}", tail(&server.log));
            }
            if Redis::connect(&server.addr()).and_then(|mut r| r.cmd(&[b"PING"])).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not answer PING; log:\n{}", tail(&server.log));
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    pub fn client(&self) -> Redis {
        Redis::connect(&self.addr()).expect("connect to redis-server")
    }

    /// A runtime config putting Spin's `default` store in this Redis (what
    /// `spin/runtime-config-redis.toml` ships, with this server's URL).
    pub fn runtime_config(&self, dir: &Path) -> PathBuf {
        let shipped = std::fs::read_to_string(workspace_root().join("spin/runtime-config-redis.toml"))
            .expect("spin/runtime-config-redis.toml");
        let text = shipped.replace("redis://127.0.0.1:6379", &self.url());
        assert_ne!(text, shipped, "the shipped runtime config names redis://127.0.0.1:6379");
        let path = dir.join(format!("runtime-config-redis-{}.toml", self.port));
        std::fs::write(&path, text).expect("write the runtime config");
        path
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where a `spin up` keeps its key-value store.
#[derive(Clone, Debug)]
pub enum Backend {
    /// Spin's default: `<state dir>/sqlite_key_value.db`.
    Sqlite,
    /// `--runtime-config-file` with `[key_value_store.default]` on this Redis.
    Redis { runtime_config: PathBuf, addr: String },
}

/// One `spin up` of the project's `spin.toml`, with the admin token of the Envoy harness and
/// the rate limit off. Killed when dropped.
pub struct SpinApp {
    child: Option<Child>,
    pub port: u16,
    pub state_dir: PathBuf,
    pub backend: Backend,
    pub log: PathBuf,
}

impl SpinApp {
    /// Builds the app (once per test binary) and starts `spin up` with its state in `dir`.
    pub fn start(dir: &Path, name: &str, backend: Backend) -> SpinApp {
        build();
        let mut app = SpinApp {
            child: None,
            port: free_port(),
            state_dir: dir.join(format!("{name}-state")),
            backend,
            log: dir.join(format!("{name}.log")),
        };
        app.spawn();
        app
    }

    fn spawn(&mut self) {
        let root = workspace_root();
        let mut cmd = Command::new(spin_bin().expect("spin CLI"));
        cmd.current_dir(&root)
            .arg("up")
            .arg("--from")
            .arg(root.join("spin.toml"))
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .env("SPIN_VARIABLE_ADMIN_TOKEN_SHA256", scim_edge_host_tests::sha256_hex(ADMIN_TOKEN))
            .env("SPIN_VARIABLE_CONFIG", scim_edge_host_tests::NO_RATE_LIMIT)
            .stdin(Stdio::null())
            .stdout(log_file(&self.log))
            .stderr(log_file(&self.log));
        if let Backend::Redis { runtime_config, .. } = &self.backend {
            cmd.arg("--runtime-config-file").arg(runtime_config);
        }
        // Its own process group: `spin up` serves from a child process (`spin trigger http`),
        // which a signal to `spin up` alone does not reach.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("start spin up");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("spin up exited ({status}) while starting; log:\n{}", tail(&self.log));
            }
            if client::send(self.addr(), &request("GET", "/admin/v1/roles", None, None)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "spin up did not listen in time; log:\n{}", tail(&self.log));
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child = Some(child);
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn try_send(&self, req: &http::Request<Bytes>) -> std::io::Result<http::Response<Bytes>> {
        client::send(self.addr(), req)
    }

    pub fn send(&self, req: &http::Request<Bytes>) -> http::Response<Bytes> {
        self.try_send(req).unwrap_or_else(|e| panic!("request to spin up failed: {e}"))
    }

    /// Status and JSON body (Null when empty or not JSON).
    pub fn call(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let res = self.send(&request(method, path, bearer, body));
        (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(Value::Null))
    }

    /// The process id of the running `spin up`, which is also its process group's id (signal
    /// the group with [`send_signal_group`]: the serving child is in it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL to the instance's process group: `spin up` and the `spin trigger http` it runs
    /// as a child (which does the serving; killing `spin up` alone leaves it running and
    /// serving). Also reaps a process already killed from elsewhere.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal_group(c.id(), "KILL");
            let _ = c.wait();
            self.wait_port_closed();
        }
    }

    /// SIGINT (Ctrl-C, Spin's clean shutdown) to the process group, waiting for the exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal_group(c.id(), "INT");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    self.wait_port_closed();
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            signal_group(c.id(), "KILL");
            let _ = c.wait();
            self.wait_port_closed();
        }
    }

    /// Until nothing listens on the instance's port any more (the trigger process is gone).
    fn wait_port_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.addr()).is_ok() {
            assert!(
                Instant::now() < deadline,
                "spin on port {} still listens after it was stopped",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same port, state directory and store (the log is appended to).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop or kill spin up before starting it again");
        self.spawn();
    }

    /// The SQLite file of the default store (SQLite backend).
    pub fn sqlite_path(&self) -> PathBuf {
        self.state_dir.join("sqlite_key_value.db")
    }

    /// The raw value Spin stores under `key` (the adapter's encoding included).
    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        match &self.backend {
            // Spin creates the file on the store's first use.
            Backend::Sqlite if !self.sqlite_path().exists() => None,
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open_with_flags(
                    self.sqlite_path(),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .expect("open Spin's SQLite store");
                conn.query_row(
                    "SELECT value FROM spin_key_value WHERE store = 'default' AND key = ?1",
                    [key],
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .ok()
            }
            Backend::Redis { addr, .. } => {
                Redis::connect(addr).expect("connect to redis").get(key).expect("GET")
            }
        }
    }

    /// `scim-edge-fsck` on this app's store: (exit status, output).
    pub fn fsck(&self) -> (Option<i32>, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scim-edge-fsck"));
        match &self.backend {
            Backend::Sqlite => cmd.arg("--sqlite").arg(self.sqlite_path()),
            Backend::Redis { addr, .. } => cmd.arg("--redis").arg(format!("redis://{addr}")),
        };
        let out = cmd.output().expect("run scim-edge-fsck");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    }

    /// Lines of Spin's log (its own output and the component's stderr, over every run) that
    /// show a wasm trap or panic, or a store failure the adapter logged.
    pub fn bad_log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("panicked")
                    || l.contains("wasm trap")
                    || l.contains("wasm backtrace")
                    || l.contains("scim-edge: spin key-value")
            })
            .map(str::to_owned)
            .collect()
    }

    pub fn assert_log_clean(&self) {
        let bad = self.bad_log_lines();
        assert!(bad.is_empty(), "spin up log {} has bad lines:\n{}", self.log.display(), bad.join("\n"));
    }
}

impl Drop for SpinApp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `kill -<signal> -- -<pgid>`: every process of a process group.
pub fn send_signal_group(pgid: u32, signal: &str) {
    assert!(signal_group(pgid, signal), "kill -{signal} -- -{pgid} failed");
}

/// As [`send_signal_group`]; false when no process of the group was there to signal.
fn signal_group(pgid: u32, signal: &str) -> bool {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(Stdio::null())
        .status();
    status.is_ok_and(|s| s.success())
}

/// A temp directory for one test (logs kept when it fails).
pub fn temp_dir(tag: &str) -> TempDir {
    TempDir::new(&format!("spin-{tag}"))
}

/// The shared scenario suite's [`Target`](scim_edge_core::testing::scenario::Target) over one
/// or more `spin up`s of one store: request `n` goes to app `n % apps.len()`, so a lifecycle
/// alternates instances; `stored` reads the store directly.
pub struct SpinCliTarget<'a> {
    pub apps: Vec<&'a SpinApp>,
    sent: usize,
}

impl<'a> SpinCliTarget<'a> {
    pub fn new(apps: Vec<&'a SpinApp>) -> Self {
        assert!(!apps.is_empty());
        SpinCliTarget { apps, sent: 0 }
    }
}

impl scim_edge_core::testing::scenario::Target for SpinCliTarget<'_> {
    async fn send(&mut self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        let app = self.apps[self.sent % self.apps.len()];
        self.sent += 1;
        app.send(&req)
    }

    async fn stored(&mut self, key: &str) -> Option<Vec<u8>> {
        let raw = self.apps[0].raw(key)?;
        scim_edge_host_tests::spin_value::live(&raw).map(<[u8]>::to_vec)
    }

    fn admin_token(&self) -> String {
        ADMIN_TOKEN.to_owned()
    }
}
