//! In-process cost of the Spin component, without HTTP: [`SpinHost::handle`] instantiates the
//! component in a fresh store (what Spin does for every request) and calls its `wasi:http`
//! handler. Measured per request, instantiate + handle, over Spin's key-value semantics in
//! memory (`kv::MemKv`), so the number is the component's and the host's, not SQLite's; with
//! the host's on-demand instance allocator (what the tests use) and with the pooling allocator
//! (what `spin up` and `scim-edge-dev` use). `SCIM_EDGE_NOOP_COMPONENT` (a `.wasm` that
//! answers 200 to anything, `bench/noop-component`) adds the host's floor: the same
//! instantiate + handle of a component that does nothing.
//!
//! ```text
//! cargo bench --profile bench-host -p scim-edge-host-tests --bench spin_inprocess -- [--iterations 2000] [--json out.json]
//! ```
//! `SCIM_EDGE_SPIN_COMPONENT` selects another build of the component (default: the one
//! `build.rs` made). The target is ≤ 200 µs p50 for a lookup by `userName`; only an
//! optimised host build means anything (a dev-profile wasmtime is ~10x slower).

// `serde_json::Value` indexing answers `Null` for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use scim_edge_host_tests::kv::MemKv;
use scim_edge_host_tests::{sha256_hex, SpinComponent, SpinHost, Variables, COMPONENT_WASM};
use serde_json::{json, Value};

const ADMIN: &str = "bench-admin-token";
const HOST: &str = "scim.bench";
/// Users in the tenant before measuring.
const USERS: usize = 100;

fn request(
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<http::Request<Bytes>> {
    Ok(http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json")
        .body(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default())?)
}

async fn call(host: &SpinHost, req: http::Request<Bytes>, want: u16) -> anyhow::Result<Value> {
    let what = format!("{} {}", req.method(), req.uri());
    let res = host.handle(req).await?;
    if res.status() != want {
        bail!("{what}: {} {}", res.status(), String::from_utf8_lossy(res.body()));
    }
    Ok(serde_json::from_slice(res.body()).unwrap_or(Value::Null))
}

struct Stats {
    allocator: &'static str,
    name: &'static str,
    samples: Vec<Duration>,
    /// Minor page faults of the process per request (Linux; 0 elsewhere): the pages an
    /// instance touches are mapped (and zeroed, or copied from the image) for every request.
    faults: f64,
}

/// The process's minor page faults so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its `)` are space-separated.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().nth(7).and_then(|f| f.parse().ok()).unwrap_or(0)
}

impl Stats {
    fn quantile_us(&self, q: f64) -> f64 {
        let mut s = self.samples.clone();
        s.sort_unstable();
        let i = ((s.len() as f64 - 1.0) * q).round() as usize;
        s.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }
    fn mean_us(&self) -> f64 {
        let total: Duration = self.samples.iter().sum();
        total.as_secs_f64() * 1e6 / self.samples.len().max(1) as f64
    }
    fn json(&self) -> Value {
        json!({"allocator": self.allocator, "request": self.name, "iterations": self.samples.len(),
               "p50_us": self.quantile_us(0.5),
               "p90_us": self.quantile_us(0.9), "p99_us": self.quantile_us(0.99), "mean_us": self.mean_us(),
               "page_faults": self.faults})
    }
}

async fn measure(
    host: &SpinHost,
    allocator: &'static str,
    name: &'static str,
    iterations: usize,
    mut make: impl FnMut(usize) -> anyhow::Result<(http::Request<Bytes>, u16)>,
) -> anyhow::Result<Stats> {
    for i in 0..iterations.min(50) {
        let (req, want) = make(i)?;
        call(host, req, want).await?; // warm-up: caches, lazy host state
    }
    let mut samples = Vec::with_capacity(iterations);
    let faults = minor_faults();
    for i in 0..iterations {
        let (req, want) = make(i + 1_000_000)?;
        let t0 = Instant::now();
        let res = host.handle(req).await?;
        samples.push(t0.elapsed());
        if res.status() != want {
            bail!("{name}: {} {}", res.status(), String::from_utf8_lossy(res.body()));
        }
    }
    let faults = minor_faults().saturating_sub(faults) as f64 / iterations.max(1) as f64;
    Ok(Stats { allocator, name, samples, faults })
}

fn component(wasm: &Path, allocator: &str) -> anyhow::Result<(SpinComponent, Duration)> {
    let t0 = Instant::now();
    let c = if allocator == POOLING {
        SpinComponent::from_file_pooling(wasm)?
    } else {
        SpinComponent::from_file(wasm)?
    };
    Ok((c, t0.elapsed()))
}

const ON_DEMAND: &str = "on-demand";
const POOLING: &str = "pooling";

/// The scim-edge component: a tenant of [`USERS`] users, then each kind of request.
async fn scim_edge(
    wasm: &Path,
    allocator: &'static str,
    iterations: usize,
) -> anyhow::Result<(Vec<Stats>, Duration)> {
    let (component, compile) = component(wasm, allocator)?;
    let variables = Variables::scim_edge()
        .with("admin_token_sha256", sha256_hex(ADMIN))
        .with("config", scim_edge_host_tests::NO_RATE_LIMIT);
    let host = SpinHost::new(component, Arc::new(MemKv::new()), variables);

    call(
        &host,
        request("PUT", "/admin/v1/tenants/t", ADMIN, Some(&json!({"name": "T", "plan": "advanced"})))?,
        201,
    )
    .await?;
    let conn = call(&host, request("POST", "/admin/v1/tenants/t/scim", ADMIN, None)?, 201).await?;
    let base =
        conn["url"].as_str().context("no url")?.trim_start_matches(&format!("http://{HOST}")).to_owned();
    let token = conn["token"].as_str().context("no token")?.to_owned();
    let mut ids = Vec::new();
    for i in 0..USERS {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                          "userName": format!("user{i}@example.com"), "externalId": format!("ext-{i}"),
                          "active": true, "emails": [{"primary": true, "type": "work", "value": format!("user{i}@example.com")}]});
        let u = call(&host, request("POST", &format!("{base}/Users"), &token, Some(&body))?, 201).await?;
        ids.push(u["id"].as_str().context("no id")?.to_owned());
    }
    let q = |f: String| format!("{base}/Users?filter={}", f.replace(' ', "%20").replace('"', "%22"));

    let mut all = Vec::new();
    all.push(
        measure(&host, allocator, "lookup userName", iterations, |i| {
            Ok((
                request("GET", &q(format!("userName eq \"user{}@example.com\"", i % USERS)), &token, None)?,
                200,
            ))
        })
        .await?,
    );
    all.push(
        measure(&host, allocator, "lookup userName (absent)", iterations, |i| {
            Ok((request("GET", &q(format!("userName eq \"nobody{i}@example.com\"")), &token, None)?, 200))
        })
        .await?,
    );
    all.push(
        measure(&host, allocator, "get by id", iterations, |i| {
            Ok((request("GET", &format!("{base}/Users/{}", ids[i % USERS]), &token, None)?, 200))
        })
        .await?,
    );
    let create = |i: usize| -> anyhow::Result<(http::Request<Bytes>, u16)> {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                          "userName": format!("new{i}@example.com"), "externalId": format!("new-{i}"), "active": true});
        Ok((request("POST", &format!("{base}/Users"), &token, Some(&body))?, 201))
    };
    all.push(measure(&host, allocator, "create", iterations, create).await?);
    // No store at all: the configuration, routing and an error body.
    all.push(
        measure(&host, allocator, "404 (no such endpoint)", iterations, |_| {
            Ok((request("GET", "/scim/elsewhere", &token, None)?, 404))
        })
        .await?,
    );
    // Rejected after one store read (the connection): what any request costs the component.
    all.push(
        measure(&host, allocator, "401 (bad token)", iterations, |_| {
            Ok((request("GET", &format!("{base}/Users"), "sce_wrong", None)?, 401))
        })
        .await?,
    );
    Ok((all, compile))
}

/// The host's floor: the no-op component answering the lookup request.
async fn noop(wasm: &Path, allocator: &'static str, iterations: usize) -> anyhow::Result<Stats> {
    let (component, _) = component(wasm, allocator)?;
    let host = SpinHost::new(component, Arc::new(MemKv::new()), Variables::scim_edge());
    measure(&host, allocator, "no-op component (floor)", iterations, |_| {
        Ok((request("GET", "/scim/v2/floor/Users?filter=userName%20eq%20%22x%22", "x", None)?, 200))
    })
    .await
}

async fn run(iterations: usize, json_out: Option<PathBuf>) -> anyhow::Result<()> {
    let wasm = std::env::var_os("SCIM_EDGE_SPIN_COMPONENT")
        .map_or_else(|| PathBuf::from(COMPONENT_WASM), PathBuf::from);
    let noop_wasm = std::env::var_os("SCIM_EDGE_NOOP_COMPONENT").map(PathBuf::from);
    let mut all = Vec::new();
    let mut compile = Duration::ZERO;
    for allocator in [ON_DEMAND, POOLING] {
        let (stats, c) = scim_edge(&wasm, allocator, iterations).await?;
        compile = c;
        all.extend(stats);
        if let Some(noop_wasm) = &noop_wasm {
            all.push(noop(noop_wasm, allocator, iterations).await?);
        }
    }

    let profile = if cfg!(debug_assertions) { "dev (debug assertions)" } else { "optimised" };
    eprintln!(
        "spin in-process ({profile}; {}; compile {} ms): instantiate + handle, {iterations} iterations",
        wasm.display(),
        compile.as_millis()
    );
    for s in &all {
        eprintln!(
            "  {:<10} {:<26} p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  mean {:>8.1} µs  {:>6.1} page faults",
            s.allocator,
            s.name,
            s.quantile_us(0.5),
            s.quantile_us(0.9),
            s.quantile_us(0.99),
            s.mean_us(),
            s.faults
        );
    }
    if let Some(path) = json_out {
        let doc = json!({"component": wasm.display().to_string(), "profile": profile,
                         "compile_ms": compile.as_millis() as u64, "iterations": iterations,
                         "results": all.iter().map(Stats::json).collect::<Vec<_>>()});
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut iterations = 2000;
    let mut json_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iterations" => iterations = args.next().context("--iterations N")?.parse()?,
            "--json" => json_out = Some(PathBuf::from(args.next().context("--json PATH")?)),
            // `cargo bench` passes --bench; a name filter may follow.
            _ => {}
        }
    }
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(iterations, json_out))
}
