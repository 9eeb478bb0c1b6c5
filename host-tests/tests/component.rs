//! The real Spin component in the wasmtime host: configuration, routing, auth and what it
//! writes to Spin's key-value store.

// `serde_json::Value` indexing answers `Null` for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use scim_edge_host_tests::kv::MemKv;
use scim_edge_host_tests::{sha256_hex, SpinComponent, SpinHost, Variables};
use serde_json::{json, Value};

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

/// With no admin token configured the admin API is off.
#[tokio::test]
async fn admin_api_is_off_without_a_token() -> anyhow::Result<()> {
    let host = host(Variables::scim_edge())?;
    let res = host.handle(request("GET", "/admin/v1/tenants/demo", Some(ADMIN_TOKEN), None)?).await?;
    assert_eq!(res.status(), 404, "{}", text(&res));
    Ok(())
}

/// Through the admin API and SCIM: every value lands in Spin's store as 0x01 + the core's
/// bytes; deletes leave a one-byte tombstone; creates of never-seen keys leave claim counters.
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
    assert_eq!(raw.first(), Some(&0x01));
    let tenant: Value = serde_json::from_slice(raw.get(1..).unwrap_or_default())?;
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
            assert!(matches!(raw.first(), Some(0x00 | 0x01)), "{k}: {raw:?}");
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
        .filter(|k| host.kv().get("default", k).ok().flatten().as_deref() == Some(&[0x00]))
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
