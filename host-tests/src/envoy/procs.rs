//! etcd and Envoy as child processes of the test, on free loopback ports. Both are killed
//! when dropped; a test stops, restarts, pauses or kills them on purpose through the methods.

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;

use super::client;
use super::{bins, send_signal};

const READY_TIMEOUT: Duration = Duration::from_secs(40);

pub use scim_edge_host_tests::ports::free_port;

fn log_file(path: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(path).expect("open a log file")
}

fn get(addr: SocketAddr, path: &str) -> Option<http::Response<Bytes>> {
    let req = http::Request::get(path).body(Bytes::new()).ok()?;
    client::send(addr, &req).ok()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// One etcd member with its own data directory.
pub struct Etcd {
    child: Option<Child>,
    pub client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    pub name: String,
    /// `--initial-cluster` (this member alone, or every member of a cluster).
    initial_cluster: String,
    extra_args: Vec<String>,
}

impl Etcd {
    pub fn start(dir: &Path) -> Etcd {
        let peer_port = free_port();
        let mut etcd = Etcd {
            child: None,
            client_port: free_port(),
            peer_port,
            data_dir: dir.join("etcd-data"),
            log: dir.join("etcd.log"),
            name: "e2e".into(),
            initial_cluster: format!("e2e=http://127.0.0.1:{peer_port}"),
            extra_args: Vec::new(),
        };
        etcd.spawn();
        etcd
    }

    /// The OS process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `/v3/maintenance/status`: (this member's id, the leader's id as it sees it), or None
    /// when it does not answer.
    pub fn status(&self) -> Option<(String, String)> {
        let req = http::Request::post("/v3/maintenance/status").body(Bytes::from_static(b"{}")).ok()?;
        let res = client::send(self.addr(), &req).ok()?;
        let v: serde_json::Value = serde_json::from_slice(res.body()).ok()?;
        let me = v["header"]["member_id"].as_str()?.to_owned();
        let leader = v["leader"].as_str()?.to_owned();
        Some((me, leader))
    }

    /// etcd's `/health` says true.
    pub fn healthy(&self) -> bool {
        get(self.addr(), "/health")
            .is_some_and(|r| r.status() == 200 && String::from_utf8_lossy(r.body()).contains("true"))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_healthy();
    }

    fn spawn_process(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&bins().etcd)
            .args(["--name", &self.name, "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster, "--log-level", "warn"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log_file(&self.log))
            .stderr(log_file(&self.log))
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
    }

    /// Waits until `/health` says true (for a cluster member: once the cluster has a leader).
    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("etcd exited ({status}) while starting; log:\n{}", tail(&self.log));
            }
            if get(self.addr(), "/health")
                .is_some_and(|r| r.status() == 200 && String::from_utf8_lossy(r.body()).contains("true"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not become healthy; log:\n{}", tail(&self.log));
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: etcd keeps its sockets but answers nothing (a hung store).
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            send_signal(c.id(), "STOP");
        }
    }

    pub fn resume(&self) {
        if let Some(c) = &self.child {
            send_signal(c.id(), "CONT");
        }
    }

    /// The raw value of `key`, read through etcd's JSON gateway.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let v = self.call("/v3/kv/range", serde_json::json!({ "key": b64.encode(key) }));
        let kv = v.get("kvs")?.get(0)?;
        Some(
            kv.get("value")
                .and_then(|v| v.as_str())
                .map(|s| b64.decode(s).expect("base64"))
                .unwrap_or_default(),
        )
    }

    /// Compacts away every revision older than the current one, as etcd's auto-compaction does
    /// over time (`physical`: the call returns once it is done). Returns that revision.
    pub fn compact(&self) -> u64 {
        let rev: u64 = self.call("/v3/kv/range", serde_json::json!({"key": "AA=="}))["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .expect("header.revision");
        let body = serde_json::json!({"revision": rev.to_string(), "physical": true});
        let res = self.call("/v3/kv/compaction", body);
        assert!(res.get("header").is_some(), "etcd compaction: {res}");
        rev
    }

    /// A JSON gateway call that etcd may refuse: (status, body).
    pub fn try_call(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let req = http::Request::post(path).body(Bytes::from(body.to_string())).expect("etcd request");
        let res = client::send(self.addr(), &req).expect("etcd request");
        (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(serde_json::Value::Null))
    }

    fn call(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, v) = self.try_call(path, body);
        assert_eq!(status, 200, "etcd {path}: {v}");
        v
    }

    /// Every key under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let body =
            serde_json::json!({"key": b64.encode(prefix), "range_end": b64.encode(&end), "keys_only": true});
        self.call("/v3/kv/range", body)
            .get("kvs")
            .and_then(|k| k.as_array())
            .map(|kvs| {
                kvs.iter()
                    .filter_map(|kv| kv.get("key")?.as_str())
                    .map(|k| String::from_utf8_lossy(&b64.decode(k).expect("base64")).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// A cluster of etcd members on loopback, each with its own ports, data and log
/// (`dir/etcd-{name}.log`).
pub struct EtcdCluster {
    pub members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Starts `n` members (`m0`, `m1`, …) with `extra_args` (e.g. `--heartbeat-interval`) and
    /// waits until every one is healthy (the cluster elected a leader).
    pub fn start(dir: &Path, n: usize, extra_args: &[&str]) -> EtcdCluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Etcd> = ports
            .iter()
            .enumerate()
            .map(|(i, &(client_port, peer_port))| Etcd {
                child: None,
                client_port,
                peer_port,
                data_dir: dir.join(format!("etcd-m{i}")),
                log: dir.join(format!("etcd-m{i}.log")),
                name: format!("m{i}"),
                initial_cluster: initial_cluster.clone(),
                extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            })
            .collect();
        for m in &mut members {
            m.spawn_process();
        }
        for m in &mut members {
            m.wait_healthy();
        }
        EtcdCluster { members }
    }

    pub fn client_ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.client_port).collect()
    }

    /// The index of the member every running member agrees is the leader, once they do.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            let seen: Vec<(String, String)> =
                self.members.iter().filter(|m| m.is_running()).filter_map(Etcd::status).collect();
            if let Some((_, leader)) = seen.first() {
                if leader != "0" && seen.iter().all(|(_, l)| l == leader) {
                    if let Some(i) = self
                        .members
                        .iter()
                        .position(|m| m.is_running() && m.status().is_some_and(|(me, _)| &me == leader))
                    {
                        return i;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the etcd members did not agree on a leader");
    }

    /// Restarts member `i` (killed before) on its ports and data, and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.kill();
        m.spawn();
    }

    /// Waits until every running member is healthy.
    pub fn wait_all_healthy(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.members.iter().all(Etcd::healthy) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("not every etcd member became healthy");
    }
}

/// The ports one Envoy listens on.
#[derive(Clone, Copy, Debug)]
pub struct EnvoyPorts {
    pub listen: u16,
    pub sink: u16,
    pub demo: u16,
    pub admin: u16,
}

/// One Envoy process (`--concurrency 2`) running the filter.
pub struct Envoy {
    child: Option<Child>,
    pub ports: EnvoyPorts,
    config: PathBuf,
    pub log: PathBuf,
}

/// Renders `envoy/envoy.yaml.tmpl` for one etcd member.
pub fn render_config(
    ports: EnvoyPorts,
    upstream_port: u16,
    etcd_port: u16,
    wasm: &Path,
    plugin_config: &str,
) -> String {
    render_config_members(ports, upstream_port, &[etcd_port], wasm, plugin_config)
}

/// The `@ETCD_ENDPOINTS@` of `envoy/envoy.yaml.tmpl`: one flow-style endpoint per member.
pub fn etcd_endpoints(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| {
            format!("{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}}}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders `envoy/envoy.yaml.tmpl` with the etcd cluster of these members' client ports.
pub fn render_config_members(
    ports: EnvoyPorts,
    upstream_port: u16,
    etcd_ports: &[u16],
    wasm: &Path,
    plugin_config: &str,
) -> String {
    let template = std::fs::read_to_string(super::workspace_root().join("envoy/envoy.yaml.tmpl"))
        .expect("read envoy/envoy.yaml.tmpl");
    template
        .replace("@LISTEN_PORT@", &ports.listen.to_string())
        .replace("@SINK_PORT@", &ports.sink.to_string())
        .replace("@DEMO_UPSTREAM_PORT@", &ports.demo.to_string())
        .replace("@UPSTREAM_PORT@", &upstream_port.to_string())
        .replace("@ADMIN_PORT@", &ports.admin.to_string())
        .replace("@ETCD_ENDPOINTS@", &etcd_endpoints(etcd_ports))
        .replace("@WASM_PATH@", &wasm.display().to_string())
        .replace("@PLUGIN_CONFIG@", plugin_config)
}

impl Envoy {
    /// Starts an Envoy whose rendered config is written to `dir/{name}.yaml`.
    pub fn start(dir: &Path, name: &str, config_yaml: &str, ports: EnvoyPorts) -> Envoy {
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, config_yaml).expect("write envoy config");
        let mut envoy = Envoy { child: None, ports, config, log: dir.join(format!("{name}.log")) };
        envoy.spawn();
        envoy
    }

    pub fn fresh_ports() -> EnvoyPorts {
        EnvoyPorts { listen: free_port(), sink: free_port(), demo: free_port(), admin: free_port() }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.listen))
    }

    fn spawn(&mut self) {
        let child = Command::new(&bins().envoy)
            .arg("-c")
            .arg(&self.config)
            .args(["--concurrency", "2", "--disable-hot-restart", "--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(log_file(&self.log))
            .stderr(log_file(&self.log))
            .spawn()
            .expect("start envoy");
        self.child = Some(child);
        let admin = SocketAddr::from(([127, 0, 0, 1], self.ports.admin));
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("envoy exited ({status}) while starting; log:\n{}", tail(&self.log));
            }
            if get(admin, "/ready").is_some_and(|r| r.status() == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("envoy did not become ready; log:\n{}", tail(&self.log));
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        send_signal(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with the same config and ports (the log is appended to).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop or kill Envoy before starting it again");
        self.spawn();
    }

    pub fn send(&self, req: &http::Request<Bytes>) -> http::Response<Bytes> {
        client::send(self.addr(), req).unwrap_or_else(|e| panic!("request to Envoy failed: {e}"))
    }

    /// Fails the test unless both worker threads (`--concurrency 2`), and so both wasm VMs,
    /// accepted connections: what a test of cross-worker behaviour needs to have exercised.
    pub fn assert_both_workers_served(&self) {
        let per_worker = self.worker_connections();
        assert!(
            per_worker.len() == 2 && per_worker.iter().all(|&n| n > 0),
            "both workers served: {per_worker:?}"
        );
    }

    /// Connections each worker thread accepted on the main listener (Envoy's admin stats).
    fn worker_connections(&self) -> Vec<u64> {
        let admin = SocketAddr::from(([127, 0, 0, 1], self.ports.admin));
        let res = get(admin, "/stats?filter=downstream_cx_total").expect("Envoy admin /stats");
        let prefix = format!("listener.127.0.0.1_{}.worker_", self.ports.listen);
        String::from_utf8_lossy(res.body())
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(": ").next()?.trim().parse().ok())
            .collect()
    }

    /// The value of one of Envoy's counters (`/stats`), if Envoy has it.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let admin = SocketAddr::from(([127, 0, 0, 1], self.ports.admin));
        let res = get(admin, &format!("/stats?filter=^{name}$")).expect("Envoy admin /stats");
        let text = String::from_utf8_lossy(res.body()).into_owned();
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(": ")?.trim().parse().ok())
    }

    /// Lines of the log (over every run of this Envoy) that show a wasm panic or a critical
    /// error. A log that cannot be read is a failure, never "clean": Envoy writes it from its
    /// first line on, so an unreadable one means the check would see nothing.
    pub fn bad_log_lines(&self) -> Vec<String> {
        let text = std::fs::read(&self.log)
            .unwrap_or_else(|e| panic!("Envoy's log {} cannot be read: {e}", self.log.display()));
        assert!(!text.is_empty(), "Envoy's log {} is empty: Envoy logs its start-up", self.log.display());
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| l.contains("panicked") || l.contains("[critical]") || l.contains("RuntimeError"))
            .map(str::to_owned)
            .collect()
    }

    pub fn assert_log_clean(&self) {
        let bad = self.bad_log_lines();
        assert!(
            bad.is_empty(),
            "Envoy log {} has panics or critical lines:\n{}",
            self.log.display(),
            bad.join("\n")
        );
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.kill();
    }
}
