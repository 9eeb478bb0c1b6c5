//! `scim-edge-dev`: the Spin component on a local HTTP port, without Spin.
//!
//! ```text
//! cargo run -p scim-edge-host-tests --bin scim-edge-dev [-- --listen 127.0.0.1:8787] [--public-base-url URL]
//!     [--component PATH] [--no-demo] [--config JSON]
//! ```
//!
//! `--component` serves another component build than the one `build.rs` made (the benchmark,
//! `bench/run.sh`, serves the exact `.wasm` it measures, and a no-op component as the host's
//! floor); `--no-demo` skips bootstrapping the demo tenant (needed for a component that is not
//! scim-edge); `--config` sets the component's `config` variable (the core's configuration
//! keys, e.g. `{"rateLimit": null}` for a benchmark; default `{}`, as in `spin.toml`).
//!
//! State lives in `./.scim-edge/` (created on first start):
//! - `sqlite_key_value.db` — Spin's key-value table (`spin_key_value`), as `spin up` keeps it in
//!   `.spin/`;
//! - `admin-token` (0600) — the operator token, generated once; the component gets its SHA-256
//!   as the `admin_token_sha256` variable;
//! - `demo-scim.json` (0600) — the SCIM connection of the `demo` tenant, bootstrapped through the
//!   component's own admin API so restarts keep the same URL and token.
//!
//! One log line per request: method, path (query elided), status, microseconds. Tokens are
//! printed once in the start banner and never logged.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use scim_edge_host_tests::kv::SqliteKv;
use scim_edge_host_tests::{sha256_hex, SpinComponent, SpinHost, Variables, COMPONENT_WASM};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const STATE_DIR: &str = ".scim-edge";
const DEMO_TENANT: &str = "demo";
/// Largest request body accepted (Entra's bulk-free requests are a few KiB).
const MAX_BODY: usize = 4 * 1024 * 1024;

struct Args {
    listen: SocketAddr,
    public_base_url: String,
    component: PathBuf,
    demo: bool,
    config: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
        public_base_url: String::new(),
        component: PathBuf::from(COMPONENT_WASM),
        demo: true,
        config: "{}".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => args.listen = it.next().context("--listen needs an address")?.parse()?,
            "--public-base-url" => {
                args.public_base_url = it.next().context("--public-base-url needs a URL")?
            }
            "--component" => args.component = it.next().context("--component needs a path")?.into(),
            "--no-demo" => args.demo = false,
            "--config" => args.config = it.next().context("--config needs a JSON object")?,
            "-h" | "--help" => {
                println!(
                    "scim-edge-dev [--listen 127.0.0.1:8787] [--public-base-url https://public.example]\n\
                     \x20             [--component {COMPONENT_WASM}] [--no-demo] [--config JSON]\n\
                     Runs the scim-edge Spin component with state in ./{STATE_DIR}/"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

/// Writes a new file readable only by its owner; fails if it exists.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)?;
    Ok(())
}

fn admin_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("admin-token");
    if path.exists() {
        let token = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let token = token.trim().to_owned();
        anyhow::ensure!(!token.is_empty(), "{} is empty; delete it to generate a new token", path.display());
        return Ok(token);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no entropy: {e}"))?;
    let token = hex::encode(bytes);
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

fn request(
    method: &str,
    path: &str,
    host: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<http::Request<Bytes>> {
    let b = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, host)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json");
    Ok(b.body(body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string())))?)
}

/// The demo tenant and its SCIM connection, created through the component's admin API.
async fn bootstrap(host: &SpinHost, authority: &str, token: &str, saved: &Path) -> anyhow::Result<Value> {
    let tenant_path = format!("/admin/v1/tenants/{DEMO_TENANT}");
    // `admin` counts only when the tenant is created (an update naming an unknown one is a 400).
    let exists =
        host.handle(request("GET", &tenant_path, authority, token, None)?).await?.status().is_success();
    let body = if exists {
        json!({"name": "Demo", "plan": "advanced"})
    } else {
        json!({"name": "Demo", "plan": "advanced",
               "admin": {"userName": "admin@demo.example", "displayName": "Demo Administrator"}})
    };
    let res = host.handle(request("PUT", &tenant_path, authority, token, Some(&body))?).await?;
    if !res.status().is_success() {
        bail!("PUT {tenant_path}: {} {}", res.status(), String::from_utf8_lossy(res.body()));
    }
    let scim_path = format!("{tenant_path}/scim");
    let res = host.handle(request("GET", &scim_path, authority, token, None)?).await?;
    let connected = match res.status().as_u16() {
        404 => false,
        200 => true,
        s => bail!("GET {scim_path}: {s} {}", String::from_utf8_lossy(res.body())),
    };
    if connected && saved.exists() {
        let text = fs::read_to_string(saved).with_context(|| format!("reading {}", saved.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("parsing {}", saved.display()));
    }
    let res = host.handle(request("POST", &scim_path, authority, token, None)?).await?;
    if res.status() != 201 {
        bail!("POST {scim_path}: {} {}", res.status(), String::from_utf8_lossy(res.body()));
    }
    let conn: Value = serde_json::from_slice(res.body()).context("the SCIM configuration is not JSON")?;
    if saved.exists() {
        fs::remove_file(saved)?;
    }
    write_private(saved, &serde_json::to_vec_pretty(&conn)?)?;
    Ok(conn)
}

async fn serve_one(host: &SpinHost, req: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = match req.uri().query() {
        Some(_) => format!("{}?…", req.uri().path()),
        None => req.uri().path().to_owned(),
    };
    let (parts, body) = req.into_parts();
    let res = match Limited::new(body, MAX_BODY).collect().await {
        Err(e) => plain(http::StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")),
        Ok(body) => match host.handle(http::Request::from_parts(parts, body.to_bytes())).await {
            Ok(res) => res,
            Err(e) => {
                eprintln!("component error: {e:#}");
                plain(http::StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error".to_owned())
            }
        },
    };
    println!("{method} {path} {} {}µs", res.status().as_u16(), started.elapsed().as_micros());
    res.map(Full::new)
}

fn plain(status: http::StatusCode, text: String) -> http::Response<Bytes> {
    let mut res = http::Response::new(Bytes::from(text));
    *res.status_mut() = status;
    res
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = PathBuf::from(STATE_DIR);
    // Owner-only: it holds the admin token and the demo connection's secret.
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let token = admin_token(&dir)?;
    let kv = SqliteKv::open(&dir.join("sqlite_key_value.db"))?;

    let started = Instant::now();
    // Pooling, as `spin up` allocates instances: one pre-mapped slot per concurrent request
    // instead of an mmap/munmap per request (~30 µs less per request in-process).
    let component = SpinComponent::from_file_pooling(&args.component)?;
    eprintln!("compiled {} in {} ms", args.component.display(), started.elapsed().as_millis());
    let variables = Variables::scim_edge()
        .with("admin_token_sha256", sha256_hex(&token))
        .with("public_base_url", args.public_base_url.clone())
        .with("config", args.config.clone());
    let host = SpinHost::new(component, Arc::new(kv), variables);

    let listener =
        TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    if !args.demo {
        println!("{} listening on http://{local} (no demo tenant)", args.component.display());
        return serve(listener, host).await;
    }
    let conn = bootstrap(&host, &local.to_string(), &token, &dir.join("demo-scim.json")).await?;
    let url = conn.get("url").and_then(Value::as_str).unwrap_or_default();
    let secret = conn.get("token").and_then(Value::as_str).unwrap_or_default();

    println!("scim-edge (Spin component in wasmtime) listening on http://{local}");
    println!("  state:            ./{STATE_DIR}/ (sqlite_key_value.db, admin-token, demo-scim.json)");
    println!("  admin page:       http://{local}/admin/   (sign in with the admin token)");
    println!("  admin token:      {token}");
    println!("  SCIM Tenant URL:  {url}");
    println!("  Secret Token:     {secret}");
    println!("  try:              curl -H 'Authorization: Bearer {secret}' '{url}/Users'");
    println!("Ctrl-C to stop.");
    serve(listener, host).await
}

async fn serve(listener: TcpListener, host: SpinHost) -> anyhow::Result<()> {
    let host = Arc::new(host);
    let mut shutdown = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = &mut shutdown => break,
        };
        let host = host.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let host = host.clone();
                async move { Ok::<_, std::convert::Infallible>(serve_one(&host, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
    println!("stopped");
    Ok(())
}
