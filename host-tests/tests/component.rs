//! The real Spin component in the wasmtime host: configuration, routing, auth and what it
//! writes to Spin's key-value store.

// `serde_json::Value` indexing answers `Null` for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use scim_edge_host_tests::kv::MemKv;
use scim_edge_host_tests::{sha256_hex, SpinComponent, SpinHost, Variables};
use serde_json::{json, Value};
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;

const ADMIN_TOKEN: &str = "admin-token-for-tests";

fn host(variables: Variables) -> anyhow::Result<SpinHost> {
    Ok(SpinHost::new(SpinComponent::shared()?, Arc::new(MemKv::new()), variables))
}

fn configured() -> anyhow::Result<SpinHost> {
    host(Variables::scim_edge().with("admin_token_sha256", sha256_hex(ADMIN_TOKEN)))
}

fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<http::Request<Bytes>> {
    let mut b = http::Request::builder().method(method).uri(path).header("host", "scim-edge.test");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/scim+json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    Ok(b.body(body)?)
}

fn text(res: &http::Response<Bytes>) -> String {
    String::from_utf8_lossy(res.body()).into_owned()
}

#[tokio::test]
async fn scim_request_without_a_token_is_401_with_www_authenticate() -> anyhow::Result<()> {
    let host = configured()?;
    let res = host.handle(request("GET", "/scim/v2/x/Users", None, None)?).await?;
    assert_eq!(res.status(), 401, "{}", text(&res));
    assert!(res.headers().contains_key("www-authenticate"), "{:?}", res.headers());
    Ok(())
}

#[tokio::test]
async fn paths_outside_the_routes_never_reach_the_component() -> anyhow::Result<()> {
    let host = configured()?;
    for path in ["/", "/scimx/v2", "/other/admin/v1"] {
        let res = host.handle(request("GET", path, None, None)?).await?;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(text(&res), "Not Found", "{path}: the host's 404, not the core's");
    }
    assert!(host.kv().keys("default")?.is_empty());
    Ok(())
}

/// The routes the test host serves the component on are `spin.toml`'s own: the test above
/// proves what `spin up` of this manifest does only while they agree.
#[test]
fn the_test_hosts_routes_are_the_manifests() -> anyhow::Result<()> {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spin.toml"))?;
    let mut in_manifest: Vec<String> = manifest
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("route")?
                .trim()
                .strip_prefix('=')?
                .trim()
                .strip_prefix('"')?
                .strip_suffix('"')
        })
        .map(|r| r.strip_suffix("/...").unwrap_or(r).to_owned())
        .collect();
    in_manifest.sort();
    let mut in_host: Vec<String> = scim_edge_host_tests::ROUTES.iter().map(|r| (*r).to_owned()).collect();
    in_host.sort();
    assert!(!in_manifest.is_empty(), "spin.toml has no route");
    assert_eq!(in_host, in_manifest, "the test host's ROUTES and spin.toml's [[trigger.http]] routes differ");
    Ok(())
}

#[tokio::test]
async fn an_invalid_configuration_answers_500_with_the_reason() -> anyhow::Result<()> {
    let host = host(Variables::scim_edge().with("admin_token_sha256", "not-hex"))?;
    let res = host.handle(request("GET", "/scim/v2/x/Users", None, None)?).await?;
    assert_eq!(res.status(), 500);
    assert!(text(&res).contains("adminTokenSha256 must be the SHA-256"), "{}", text(&res));

    let host = host_with_base("ftp://nope")?;
    let res = host.handle(request("GET", "/admin/v1/tenants/a", Some(ADMIN_TOKEN), None)?).await?;
    assert_eq!(res.status(), 500);
    assert!(text(&res).contains("publicBaseUrl"), "{}", text(&res));
    Ok(())
}

fn host_with_base(base: &str) -> anyhow::Result<SpinHost> {
    host(Variables::scim_edge().with("public_base_url", base))
}

/// Spin's rule: a variable the manifest does not declare is `undefined`. A `spin.toml`
/// without scim-edge's variables gets a 500 that names the missing one.
#[tokio::test]
async fn a_manifest_without_the_variables_answers_500_naming_them() -> anyhow::Result<()> {
    let host = host(Variables::new())?;
    let res = host.handle(request("GET", "/scim/v2/x/Users", None, None)?).await?;
    assert_eq!(res.status(), 500);
    let body = text(&res);
    assert!(body.contains("admin_token_sha256") && body.contains("Undefined"), "{body}");
    Ok(())
}

/// The variables the test host gives the component are the ones `spin.toml` maps into it,
/// each with the default of the application variable it names: Spin refuses an application
/// whose component variable names an undeclared one, and answers `undefined` for a variable
/// the component reads but the manifest does not map.
#[test]
fn the_test_host_defines_exactly_the_variables_of_spin_toml() -> anyhow::Result<()> {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spin.toml"))?;
    let mut section = "";
    let (mut declared, mut mapped) = (std::collections::BTreeMap::new(), Vec::new());
    for line in manifest.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((name, value)) = line.split_once(" = ") else { continue };
        match section {
            "[variables]" => {
                // `name = { default = "…", secret = true }`: the default, unescaped.
                let default = value.split_once("default = ").map(|(_, d)| d).context(line.to_owned())?;
                let default: String = serde_json::Deserializer::from_str(default)
                    .into_iter::<String>()
                    .next()
                    .context(line.to_owned())??;
                declared.insert(name.to_owned(), default);
            }
            "[component.scim-edge.variables]" => {
                let template = value.trim_matches('"');
                let app = template.strip_prefix("{{ ").and_then(|t| t.strip_suffix(" }}"));
                mapped.push((name.to_owned(), app.context(line.to_owned())?.to_owned()));
            }
            _ => {}
        }
    }
    let from_manifest: Vec<(String, String)> = mapped
        .into_iter()
        .map(|(name, app)| declared.get(&app).map(|d| (name, d.clone())).context(app))
        .collect::<anyhow::Result<_>>()?;
    let mut from_manifest = from_manifest;
    from_manifest.sort();
    let host: Vec<(String, String)> =
        Variables::scim_edge().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    assert_eq!(host, from_manifest);
    assert!(host.iter().any(|(k, v)| k == "config" && v == "{}"), "{host:?}");
    Ok(())
}

/// A limit set in the `config` variable: a body over `maxBodyBytes` is refused with 413 and a
/// SCIM error naming the limit before anything is read or written; one within it works, and
/// `/ServiceProviderConfig` publishes the limit.
#[tokio::test]
async fn the_config_variable_sets_the_limits() -> anyhow::Result<()> {
    // maxBodyBytes can go no lower than 4096, and maxResourceBytes ≤ maxBodyBytes and
    // maxValueBytes ≤ maxResourceBytes must hold (Config::from_json).
    let config = json!({"maxBodyBytes": 4096, "maxResourceBytes": 4096, "maxValueBytes": 1024});
    let host = host(
        Variables::scim_edge()
            .with("admin_token_sha256", sha256_hex(ADMIN_TOKEN))
            .with("config", config.to_string()),
    )?;
    let (url, token) = connect(&host, "limited").await?;
    let base = url.split_once("/scim/").map(|(_, p)| format!("/scim/{p}")).context("url path")?;
    let dump = |host: &SpinHost| -> anyhow::Result<Vec<(String, Option<Vec<u8>>)>> {
        host.kv()
            .keys("default")?
            .into_iter()
            .map(|k| Ok((k.clone(), host.kv().get("default", &k)?)))
            .collect()
    };
    let before = dump(&host)?;

    let big = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "big@example.com",
        "displayName": "x".repeat(5000),
    });
    let res = host.handle(request("POST", &format!("{base}/Users"), Some(&token), Some(big))?).await?;
    assert_eq!(res.status(), 413, "{}", text(&res));
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/scim+json")
    );
    let error: Value = serde_json::from_slice(res.body())?;
    assert_eq!(error["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{error}");
    assert_eq!(error["status"], "413", "{error}");
    let detail = error["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("maxBodyBytes") && detail.contains("4096"), "{error}");
    // RFC 7644 §3.12 has no scimType for 413; if one is ever sent it must be a string.
    assert!(error.get("scimType").is_none_or(Value::is_string), "{error}");
    assert_eq!(dump(&host)?, before, "a refused body changes nothing");
    let res = host
        .handle(request(
            "GET",
            &format!("{base}/Users?filter=userName%20eq%20%22big%40example.com%22"),
            Some(&token),
            None,
        )?)
        .await?;
    assert_eq!(serde_json::from_slice::<Value>(res.body())?["totalResults"], 0, "{}", text(&res));

    let small =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "small@example.com"});
    let res = host.handle(request("POST", &format!("{base}/Users"), Some(&token), Some(small))?).await?;
    assert_eq!(res.status(), 201, "{}", text(&res));
    let res =
        host.handle(request("GET", &format!("{base}/ServiceProviderConfig"), Some(&token), None)?).await?;
    let spc: Value = serde_json::from_slice(res.body())?;
    assert_eq!(spc["bulk"]["maxPayloadSize"], 4096, "{spc}");
    Ok(())
}

/// A request body that streams in 64 KiB chunks, up to `total` bytes, and counts how many
/// bytes the component pulled.
struct Streamed {
    left: usize,
    pulled: Arc<AtomicUsize>,
}

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, ErrorCode>>> {
        static CHUNK: [u8; 65_536] = [b' '; 65_536];
        let n = self.left.min(CHUNK.len());
        if n == 0 {
            return Poll::Ready(None);
        }
        self.left -= n;
        self.pulled.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }
}

/// A body over `maxBodyBytes` is answered 413 once the limit is passed: the component stops
/// reading there (a streamed body) or reads nothing (a `Content-Length` over the limit), so
/// a client's 64 MiB never sit in the instance's memory.
#[tokio::test]
async fn a_body_over_the_limit_is_not_read_past_it() -> anyhow::Result<()> {
    const LIMIT: usize = 65_536;
    const TOTAL: usize = 64 << 20;
    let config = json!({"maxBodyBytes": LIMIT, "maxResourceBytes": LIMIT});
    let host = host(
        Variables::scim_edge()
            .with("admin_token_sha256", sha256_hex(ADMIN_TOKEN))
            .with("config", config.to_string()),
    )?;
    let (url, token) = connect(&host, "streamed").await?;
    let base = url.split_once("/scim/").map(|(_, p)| format!("/scim/{p}")).context("url path")?;
    for declared in [None, Some(TOTAL)] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let mut b = http::Request::builder()
            .method("POST")
            .uri(format!("{base}/Users"))
            .header("host", "scim-edge.test")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/scim+json");
        if let Some(n) = declared {
            b = b.header("content-length", n.to_string());
        }
        let req = b.body(Streamed { left: TOTAL, pulled: pulled.clone() })?;
        let (res, _transfer) = host.handle_body(req).await?;
        assert_eq!(res.status(), 413, "{declared:?}: {}", text(&res));
        let error: Value = serde_json::from_slice(res.body())?;
        assert_eq!(error["status"], "413", "{error}");
        let detail = error["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("maxBodyBytes") && detail.contains(&LIMIT.to_string()), "{error}");
        let pulled = pulled.load(Ordering::SeqCst);
        // What the host's pipe holds ahead of the reader (a few chunks) at most, never the rest.
        assert!(pulled <= 8 * LIMIT, "{declared:?}: {pulled} of {TOTAL} bytes pulled");
        if declared.is_some() {
            assert!(detail.contains(&TOTAL.to_string()), "the declared size is named: {error}");
        }
    }
    // A body within the limit still works, and nothing was created by the refused ones.
    let user =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "s@example.com"});
    let res = host.handle(request("POST", &format!("{base}/Users"), Some(&token), Some(user))?).await?;
    assert_eq!(res.status(), 201, "{}", text(&res));
    let res = host.handle(request("GET", &format!("{base}/Users"), Some(&token), None)?).await?;
    assert_eq!(serde_json::from_slice::<Value>(res.body())?["totalResults"], 1, "{}", text(&res));
    Ok(())
}

/// `admin_token_sha256` and `public_base_url` win over the same keys in `config` when they are
/// set, and `config`'s are used when they are empty.
#[tokio::test]
async fn the_dedicated_variables_win_over_config() -> anyhow::Result<()> {
    let config = json!({"adminTokenSha256": sha256_hex("the-token-in-config"),
                        "publicBaseUrl": "https://from-config.example"});
    let both = host(
        Variables::scim_edge()
            .with("config", config.to_string())
            .with("admin_token_sha256", sha256_hex(ADMIN_TOKEN))
            .with("public_base_url", "https://from-variable.example"),
    )?;
    let (url, _) = connect(&both, "a").await?;
    assert!(url.starts_with("https://from-variable.example/scim/v2/"), "{url}");
    let res = both.handle(request("GET", "/admin/v1/tenants/a", Some("the-token-in-config"), None)?).await?;
    assert_eq!(res.status(), 401, "{}", text(&res));

    let only_config = host(Variables::scim_edge().with("config", config.to_string()))?;
    let res = only_config
        .handle(request(
            "PUT",
            "/admin/v1/tenants/b",
            Some("the-token-in-config"),
            Some(json!({"name": "b", "plan": "advanced"})),
        )?)
        .await?;
    assert_eq!(res.status(), 201, "{}", text(&res));
    let res = only_config
        .handle(request("POST", "/admin/v1/tenants/b/scim", Some("the-token-in-config"), None)?)
        .await?;
    let v: Value = serde_json::from_slice(res.body())?;
    assert!(v["url"].as_str().is_some_and(|u| u.starts_with("https://from-config.example/")), "{v}");
    Ok(())
}

/// A `config` that does not parse, is not an object, or that the core rejects: every request
/// (SCIM and admin) gets a 500 SCIM error that names the variable, and nothing is stored.
#[tokio::test]
async fn an_invalid_config_variable_answers_500_naming_it() -> anyhow::Result<()> {
    let cases = [
        (r#"{"maxBodyBytes": "#, "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (r#"{"limits": {"maxBodyBytes": 65536}}"#, "unknown field `limits`"),
        (r#"{"maxBodyBytes": 1024}"#, "maxBodyBytes must be between 4096"),
        (r#"{"rateLimit": {"requestsPerSecond": 0}}"#, "rateLimit.requestsPerSecond"),
    ];
    for (config, reason) in cases {
        let host = host(
            Variables::scim_edge().with("admin_token_sha256", sha256_hex(ADMIN_TOKEN)).with("config", config),
        )?;
        for (method, path, token) in
            [("GET", "/scim/v2/x/Users", None), ("PUT", "/admin/v1/tenants/t", Some(ADMIN_TOKEN))]
        {
            let body = (method == "PUT").then(|| json!({"name": "t", "plan": "advanced"}));
            let res = host.handle(request(method, path, token, body)?).await?;
            assert_eq!(res.status(), 500, "{config}: {}", text(&res));
            let error: Value = serde_json::from_slice(res.body())?;
            assert_eq!(error["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{error}");
            assert_eq!(error["status"], "500", "{error}");
            let detail = error["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("`config`") && detail.contains(reason), "{config}: {detail}");
        }
        assert!(host.kv().keys("default")?.is_empty(), "{config}");
    }

    // A manifest from before `config` existed (it maps only the two other variables).
    let host = host(Variables::new().with("admin_token_sha256", "").with("public_base_url", ""))?;
    let res = host.handle(request("GET", "/scim/v2/x/Users", None, None)?).await?;
    assert_eq!(res.status(), 500);
    assert!(
        text(&res).contains("`config` could not be read") && text(&res).contains("Undefined"),
        "{}",
        text(&res)
    );
    Ok(())
}

/// With no admin token configured the admin API is off.
#[tokio::test]
async fn admin_api_is_off_without_a_token() -> anyhow::Result<()> {
    let host = host(Variables::scim_edge())?;
    let res = host.handle(request("GET", "/admin/v1/tenants/demo", Some(ADMIN_TOKEN), None)?).await?;
    assert_eq!(res.status(), 404, "{}", text(&res));
    Ok(())
}

/// Through the admin API and SCIM: every value lands in Spin's store as 0x02 + write id + the
/// id it replaced + the core's bytes; deletes leave a 17-byte tombstone (0x03 + the two ids);
/// creates of never-seen keys leave claim counters; every write has its own write id.
#[tokio::test]
async fn values_are_stored_tagged_and_deletes_leave_tombstones() -> anyhow::Result<()> {
    let host = configured()?;
    let res = host
        .handle(request(
            "PUT",
            "/admin/v1/tenants/acme",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "Acme", "plan": "advanced"})),
        )?)
        .await?;
    assert!(res.status() == 201 || res.status() == 200, "{} {}", res.status(), text(&res));
    let raw = host.kv().get("default", "v1/tenant/acme")?.context("tenant key")?;
    assert_eq!(raw.first(), Some(&0x02));
    let tenant: Value = serde_json::from_slice(raw.get(17..).unwrap_or_default())?;
    assert!(tenant.is_object(), "{tenant}");

    let (url, token) = connect(&host, "acme").await?;
    let path = url.split_once("/scim/").map(|(_, p)| format!("/scim/{p}")).context("url path")?;
    let res = host
        .handle(request(
            "POST",
            &format!("{path}/Users"),
            Some(&token),
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Tomb@Example.com", "active": true})),
        )?)
        .await?;
    assert_eq!(res.status(), 201, "{}", text(&res));
    let user: Value = serde_json::from_slice(res.body())?;
    let id = user["id"].as_str().context("id")?.to_owned();

    let keys = host.kv().keys("default")?;
    let index: Vec<&String> =
        keys.iter().filter(|k| k.starts_with("v1/") && k.contains("/ix/userName/")).collect();
    assert_eq!(index.len(), 1, "{keys:?}");
    let claim = format!("claim/{}", index[0]);
    assert_eq!(host.kv().get("default", &claim)?, Some(1i64.to_le_bytes().to_vec()), "{keys:?}");
    for k in &keys {
        let raw = host.kv().get("default", k)?.unwrap_or_default();
        if k.starts_with("claim/") {
            assert_eq!(raw.len(), 8, "{k}");
        } else {
            assert!(matches!(raw.first(), Some(0x02 | 0x03)), "{k}: {raw:?}");
            assert!(scim_edge_host_tests::spin_value::decode(&raw).is_some(), "{k}: {raw:?}");
        }
    }

    let res = host.handle(request("DELETE", &format!("{path}/Users/{id}"), Some(&token), None)?).await?;
    assert_eq!(res.status(), 204, "{}", text(&res));
    let res = host.handle(request("GET", &format!("{path}/Users/{id}"), Some(&token), None)?).await?;
    assert_eq!(res.status(), 404, "{}", text(&res));
    let tombstones: Vec<String> = host
        .kv()
        .keys("default")?
        .into_iter()
        .filter(|k| {
            let raw = host.kv().get("default", k).ok().flatten().unwrap_or_default();
            raw.first() == Some(&0x03) && raw.len() == 17
        })
        .collect();
    assert!(tombstones.iter().any(|k| k.contains("/ix/userName/")), "{tombstones:?}");

    // The name is free again: re-creating it goes through CAS on the tombstone.
    let res = host
        .handle(request(
            "POST",
            &format!("{path}/Users"),
            Some(&token),
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "tomb@example.com"})),
        )?)
        .await?;
    assert_eq!(res.status(), 201, "{}", text(&res));
    assert_eq!(host.kv().get("default", &claim)?, Some(1i64.to_le_bytes().to_vec()), "no second claim");
    Ok(())
}

/// `PUT` the tenant, then `POST …/scim`: the SCIM URL and token.
pub async fn connect(host: &SpinHost, tenant: &str) -> anyhow::Result<(String, String)> {
    let res = host
        .handle(request(
            "PUT",
            &format!("/admin/v1/tenants/{tenant}"),
            Some(ADMIN_TOKEN),
            Some(json!({"name": tenant, "plan": "advanced"})),
        )?)
        .await?;
    anyhow::ensure!(
        res.status() == 201 || res.status() == 200,
        "PUT tenant: {} {}",
        res.status(),
        text(&res)
    );
    let res = host
        .handle(request("POST", &format!("/admin/v1/tenants/{tenant}/scim"), Some(ADMIN_TOKEN), None)?)
        .await?;
    anyhow::ensure!(res.status() == 201, "POST scim: {} {}", res.status(), text(&res));
    let v: Value = serde_json::from_slice(res.body())?;
    let url = v["url"].as_str().context("url")?.to_owned();
    let token = v["token"].as_str().context("token")?.to_owned();
    Ok((url, token))
}
