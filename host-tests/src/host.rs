//! A wasmtime 44 host that runs the scim-edge Spin component the way Spin 4.0.2 does: the
//! component is compiled and linked once, and every request gets a fresh instance in a fresh
//! store; WASI p2 and p3, `wasi:http@0.3.0-rc-2026-03-15` (outbound requests denied), Spin's
//! key-value store `default` and the component's variables.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{TrappableError, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::{RequestOptions, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::bindings::{self, SpinKv, SpinView, Variables};
use crate::kv::KvBackend;

/// The component built by `build.rs` (release, `wasm32-wasip2`).
pub const COMPONENT_WASM: &str = env!("SCIM_EDGE_SPIN_WASM");

/// The routes `spin.toml` sends to the component; Spin answers 404 to anything else.
pub const ROUTES: [&str; 2] = ["/scim", "/admin"];

/// The component compiled and linked: expensive to make (Cranelift), cheap to clone.
#[derive(Clone)]
pub struct SpinComponent {
    engine: Engine,
    pre: ServicePre<HostState>,
}

fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow!("{e:?}")
}

impl SpinComponent {
    /// Compiles `wasm` (a component file) and links it against the Spin host interfaces.
    pub fn from_file(wasm: &Path) -> anyhow::Result<Self> {
        Self::with_config(wasm, wasmtime::Config::new())
    }

    /// [`SpinComponent::from_file`] with wasmtime's pooling instance allocator, which `spin up`
    /// uses by default (`spin-core`'s `Config`): instances reuse pre-mapped memory slots instead
    /// of an `mmap`/`munmap` per request. The dev host (`scim-edge-dev`) and the in-process
    /// bench use it; the tests keep the on-demand allocator, which reserves no address space up
    /// front (many test threads each build their own host).
    pub fn from_file_pooling(wasm: &Path) -> anyhow::Result<Self> {
        let mut config = wasmtime::Config::new();
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
            wasmtime::PoolingAllocationConfig::default(),
        ));
        Self::with_config(wasm, config)
    }

    fn with_config(wasm: &Path, mut config: wasmtime::Config) -> anyhow::Result<Self> {
        config.wasm_component_model_async(true);
        // For profiling (`perf record`): wasmtime writes /tmp/perf-<pid>.map for the JIT code.
        if std::env::var_os("SCIM_EDGE_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(wt)?;
        let component = Component::from_file(&engine, wasm)
            .map_err(wt)
            .with_context(|| format!("compiling {}", wasm.display()))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wt)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(wt)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(wt)?;
        bindings::add_to_linker(&mut linker, HostState::spin).map_err(wt)?;
        let pre = ServicePre::new(linker.instantiate_pre(&component).map_err(wt)?).map_err(wt)?;
        Ok(SpinComponent { engine, pre })
    }

    /// The component `build.rs` built, compiled once per process (tests share it).
    pub fn shared() -> anyhow::Result<SpinComponent> {
        static SHARED: OnceLock<Result<SpinComponent, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| SpinComponent::from_file(Path::new(COMPONENT_WASM)).map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|e| anyhow!(e))
    }
}

/// One Spin application: the component, its key-value backend and its variables.
#[derive(Clone)]
pub struct SpinHost {
    component: SpinComponent,
    kv: SpinKv,
    variables: Arc<Variables>,
}

impl SpinHost {
    /// Stores granted to the component, as `key_value_stores = ["default"]` in `spin.toml`.
    pub fn new(component: SpinComponent, kv: Arc<dyn KvBackend>, variables: Variables) -> Self {
        SpinHost {
            component,
            kv: SpinKv { backend: kv, allowed_stores: Arc::from(vec!["default".to_owned()]) },
            variables: Arc::new(variables),
        }
    }

    /// The key-value backend, for inspecting what the component stored.
    pub fn kv(&self) -> &Arc<dyn KvBackend> {
        &self.kv.backend
    }

    /// Handles one request as Spin would: 404 outside the component's routes, otherwise a
    /// fresh instance. `Err` means the component trapped or returned a `wasi:http` error
    /// code (Spin logs it and answers 500).
    pub async fn handle(&self, req: http::Request<Bytes>) -> anyhow::Result<http::Response<Bytes>> {
        let (res, request_io) = self.handle_body(req.map(Full::new)).await?;
        request_io.map_err(|code| anyhow!("request body: {code:?}"))?;
        Ok(res)
    }

    /// [`Self::handle`] with a request body of any kind (one that streams in, say); also
    /// returns how the transfer of the request body ended, which is an error when the
    /// component answered without reading all of it.
    pub async fn handle_body<B>(
        &self,
        req: http::Request<B>,
    ) -> anyhow::Result<(http::Response<Bytes>, Result<(), ErrorCode>)>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        let path = req.uri().path();
        if !ROUTES
            .iter()
            .any(|r| path == *r || path.strip_prefix(r).is_some_and(|rest| rest.starts_with('/')))
        {
            let mut res = http::Response::new(Bytes::from_static(b"Not Found"));
            *res.status_mut() = http::StatusCode::NOT_FOUND;
            return Ok((res, Ok(())));
        }
        let req = with_absolute_uri(req)?;

        let mut store =
            Store::new(&self.component.engine, HostState::new(self.kv.clone(), self.variables.clone()));
        let service = self.component.pre.instantiate_async(&mut store).await.map_err(wt)?;
        let (req, request_io) = wasmtime_wasi_http::p3::Request::from_http(req);
        let result = store
            .run_concurrent(
                async move |s| -> anyhow::Result<(http::Response<Bytes>, Result<(), ErrorCode>)> {
                    let res = service
                        .handle(s, req)
                        .await
                        .map_err(wt)?
                        .map_err(|code| anyhow!("the component answered with error code {code:?}"))?;
                    let res = s.with(|s| res.into_http(s, async { Ok(()) })).map_err(wt)?;
                    let (parts, body) = res.into_parts();
                    let body =
                        body.collect().await.map_err(|code| anyhow!("response body: {code:?}"))?.to_bytes();
                    let request_io = request_io.await;
                    Ok((http::Response::from_parts(parts, body), request_io))
                },
            )
            .await
            .map_err(wt)?;
        result
    }
}

/// Spin hands the component an absolute URI (`http://host/path`), taken from `Host`.
fn with_absolute_uri<B>(req: http::Request<B>) -> anyhow::Result<http::Request<B>> {
    let (mut parts, body) = req.into_parts();
    if parts.uri.scheme().is_none() {
        let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        parts.uri = format!("http://{host}{path}").parse().context("request URI")?;
    }
    Ok(http::Request::from_parts(parts, body))
}

/// A request's store data.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: DenyOutbound,
    kv: SpinKv,
    variables: Arc<Variables>,
}

impl HostState {
    fn new(kv: SpinKv, variables: Arc<Variables>) -> Self {
        // The component's stdout/stderr go to ours, as Spin logs them (a guest panic message).
        let wasi = WasiCtx::builder().inherit_stdout().inherit_stderr().build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: DenyOutbound,
            kv,
            variables,
        }
    }

    fn spin(&mut self) -> SpinView<'_> {
        SpinView { table: &mut self.table, kv: &self.kv, variables: &self.variables }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// `allowed_outbound_hosts = []`: every outbound request is denied.
struct DenyOutbound;

type BoxFuture<T> = Box<dyn Future<Output = T> + Send>;

impl WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        _request: http::Request<UnsyncBoxBody<Bytes, ErrorCode>>,
        _options: Option<RequestOptions>,
        _fut: BoxFuture<Result<(), ErrorCode>>,
    ) -> BoxFuture<
        Result<
            (http::Response<UnsyncBoxBody<Bytes, ErrorCode>>, BoxFuture<Result<(), ErrorCode>>),
            TrappableError<ErrorCode>,
        >,
    > {
        Box::new(async { Err(ErrorCode::HttpRequestDenied.into()) })
    }
}
