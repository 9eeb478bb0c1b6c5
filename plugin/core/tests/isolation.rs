#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a failed unwrap is a failed test
//! Tenant isolation at the core: every token × every other tenant's SCIM URL and resource
//! ids gets 401 (wrong token for the URL) or 404 (right URL, foreign id), leaks none of the
//! other tenant's data and changes none of its keys. Also: the admin API is off (404, no store
//! access) unless configured, admin and SCIM tokens are not interchangeable, and regenerated
//! or revoked credentials stop working at once.

mod support;

use scim_edge_core::testing::{FixedClock, MemStore, SeqRandom};
use scim_edge_core::{handle, Config, Env};
use serde_json::{json, Value};
use support::{block_on, patch, Host, Tenant, ADMIN};

struct Data {
    t: Tenant,
    users: Vec<String>,
    groups: Vec<String>,
    /// A `userName` only this tenant has.
    marker: String,
}

fn populate(host: &Host, name: &str) -> Data {
    let t = host.tenant(name);
    let marker = format!("only-in-{name}@example.com");
    // The same userName and group name in both tenants is fine: uniqueness is per tenant.
    let u0 = host.create_user(&t, "shared@example.com");
    let u1 = host.create_user(&t, &marker);
    let g0 = host.create_group(&t, "Shared", &[&u0, &u1]);
    Data { t, users: vec![u0, u1], groups: vec![g0], marker }
}

/// A tenant's data, without leases and the provisioning log (where the tenant's own refused
/// attempts are recorded: checked by [`failures_logged`]).
fn tenant_keys(host: &Host, name: &str) -> Vec<(String, String)> {
    let prefix = format!("v1/t/{name}/");
    host.store
        .dump()
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix) && !k.contains("/lock/") && !k.contains("/log/"))
        .collect()
}

/// The outcomes of a tenant's log entries from number `from` on.
fn log_outcomes(host: &Host, name: &str, from: u64) -> Vec<String> {
    let prefix = format!("v1/t/{name}/log/s/");
    host.store
        .dump()
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(_, v)| serde_json::from_str::<Value>(&v).ok())
        .filter(|e| e["seq"].as_u64().unwrap() >= from)
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect()
}

fn log_next(host: &Host, name: &str) -> u64 {
    host.store
        .raw(&format!("v1/t/{name}/log/head"))
        .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
}

#[test]
fn every_token_against_every_other_tenant() {
    let host = Host::new();
    let tenants = [populate(&host, "alpha"), populate(&host, "beta"), populate(&host, "gamma")];
    let snapshot: Vec<_> = tenants.iter().map(|d| tenant_keys(&host, &d.t.name)).collect();
    let log_from: Vec<u64> = tenants.iter().map(|d| log_next(&host, &d.t.name)).collect();
    let mut checked = 0;
    for me in &tenants {
        for other in tenants.iter().filter(|o| o.t.name != me.t.name) {
            // My token on the other tenant's URL: 401 whatever the path.
            for path in ["Users", "Groups", "ServiceProviderConfig", "Schemas", "ResourceTypes"]
                .into_iter()
                .map(str::to_owned)
                .chain(other.users.iter().map(|u| format!("Users/{u}")))
                .chain(other.groups.iter().map(|g| format!("Groups/{g}")))
                .chain(me.users.iter().map(|u| format!("Users/{u}")))
            {
                for method in ["GET", "PUT", "PATCH", "DELETE", "POST"] {
                    let r = host.raw(
                        method,
                        &format!("{}/{path}", other.t.base),
                        Some(&me.t.token),
                        json!({"userName": "x", "displayName": "x"}).to_string(),
                    );
                    assert_eq!(r.status, 401, "{method} {}/{path} with {}'s token", other.t.name, me.t.name);
                    assert!(r.headers.contains_key("www-authenticate"));
                    assert!(!String::from_utf8_lossy(&r.raw).contains(&other.marker));
                    checked += 1;
                }
            }
            // My URL and token, the other tenant's ids: 404, and filters find nothing.
            for (what, ids) in [("Users", &other.users), ("Groups", &other.groups)] {
                for id in ids {
                    for (method, body) in [
                        ("GET", None),
                        ("PUT", Some(json!({"userName": "hijack", "displayName": "hijack"}))),
                        (
                            "PATCH",
                            Some(patch(json!([{"op": "replace", "path": "displayName", "value": "x"}]))),
                        ),
                        ("DELETE", None),
                    ] {
                        let (s, b) = host.scim(&me.t, method, &format!("{what}/{id}"), body);
                        assert_eq!(s, 404, "{method} {what}/{id}: {b}");
                        checked += 1;
                    }
                    let (s, b) =
                        host.scim(&me.t, "GET", &format!("{what}?filter=id%20eq%20%22{id}%22"), None);
                    assert_eq!((s, b["totalResults"].as_u64()), (200, Some(0)), "{b}");
                }
            }
            let (s, b) = host.scim(
                &me.t,
                "GET",
                &format!("Users?filter=userName%20eq%20%22{}%22", other.marker),
                None,
            );
            assert_eq!((s, b["totalResults"].as_u64()), (200, Some(0)), "{b}");
            let (s, b) = host.scim(
                &me.t,
                "GET",
                &format!("Groups?filter=members%20eq%20%22{}%22", other.users[0]),
                None,
            );
            assert_eq!((s, b["totalResults"].as_u64()), (200, Some(0)), "{b}");
            // The other tenant's users cannot become my members.
            let (s, b) = host.scim(
                &me.t,
                "PATCH",
                &format!("Groups/{}", me.groups[0]),
                Some(patch(json!([{"op": "add", "path": "members", "value": [{"value": other.users[1]}]}]))),
            );
            assert_eq!(s, 400, "{b}");
            let (s, b) = host.scim(
                &me.t,
                "POST",
                "Groups",
                Some(json!({"displayName": "steal", "members": [{"value": other.users[0]}]})),
            );
            assert_eq!(s, 400, "{b}");
        }
        // Nothing I listed, searched or read mentions another tenant's data.
        for path in ["Users", "Groups?attributes=members", "Users?filter=userName%20pr"] {
            let r = host.raw("GET", &format!("{}/{path}", me.t.base), Some(&me.t.token), "");
            for other in tenants.iter().filter(|o| o.t.name != me.t.name) {
                let text = String::from_utf8_lossy(&r.raw);
                assert!(!text.contains(&other.marker) && !text.contains(&other.users[0]), "{path}: {text}");
            }
        }
    }
    assert!(checked > 300);
    let after: Vec<_> = tenants.iter().map(|d| tenant_keys(&host, &d.t.name)).collect();
    assert_eq!(snapshot, after, "cross-tenant requests changed a tenant's data");
    // Each tenant's refused writes are in its own log, as failures, and only there.
    for (d, from) in tenants.iter().zip(log_from) {
        let outcomes = log_outcomes(&host, &d.t.name, from);
        assert!(outcomes.len() >= 8 && outcomes.iter().all(|o| o == "failure"), "{}: {outcomes:?}", d.t.name);
    }
    host.assert_consistent();
}

#[test]
fn admin_and_scim_tokens_are_not_interchangeable() {
    let host = Host::new();
    let d = populate(&host, "alpha");
    // The admin token is no SCIM token.
    let (s, _) = host.send("GET", &format!("{}/Users", d.t.base), ADMIN, None);
    assert_eq!(s, 401);
    // A SCIM token is no admin token.
    for (method, path) in [("GET", "/admin/v1/tenants/alpha"), ("POST", "/admin/v1/tenants/alpha/scim")] {
        let (s, _) = host.send(method, path, &d.t.token, None);
        assert_eq!(s, 401, "{method} {path}");
    }
    // Missing, malformed and near-miss tokens.
    let base = format!("{}/Users", d.t.base);
    assert_eq!(host.raw("GET", &base, None, "").status, 401);
    let mut near = d.t.token.clone();
    near.pop();
    near.push('x');
    for tok in [near.as_str(), "", " ", &d.t.token.to_uppercase(), &format!("{} ", d.t.token)] {
        let s = host.send("GET", &base, tok, None).0;
        assert!(tok.trim() == d.t.token || s == 401, "{tok:?} → {s}");
    }
}

#[test]
fn regenerate_and_revoke_cut_off_old_credentials() {
    let host = Host::new();
    let d = populate(&host, "alpha");
    let fresh = host.connect("alpha");
    assert_eq!(host.scim(&d.t, "GET", "Users", None).0, 401, "old URL + old token");
    let old_url_new_token = host.send("GET", &format!("{}/Users", d.t.base), &fresh.token, None).0;
    assert_eq!(old_url_new_token, 401);
    let new_url_old_token = host.send("GET", &format!("{}/Users", fresh.base), &d.t.token, None).0;
    assert_eq!(new_url_old_token, 401);
    let (s, b) = host.scim(&fresh, "GET", "Users", None);
    assert_eq!((s, b["totalResults"].as_u64()), (200, Some(2)), "data survives a regenerate");
    let (s, _) = host.send("DELETE", "/admin/v1/tenants/alpha/scim", ADMIN, None);
    assert_eq!(s, 204);
    assert_eq!(host.scim(&fresh, "GET", "Users", None).0, 401);
    host.assert_consistent();
}

#[test]
fn the_admin_api_is_off_unless_configured() {
    let store = MemStore::new();
    let (clock, random, config) = (FixedClock::default(), SeqRandom::new(1), Config::default());
    let env = Env { store: &store, clock: &clock, random: &random, config: &config };
    for (method, path) in [
        ("PUT", "/admin/v1/tenants/acme"),
        ("GET", "/admin/v1/tenants/acme"),
        ("POST", "/admin/v1/tenants/acme/scim"),
        ("DELETE", "/admin/v1/tenants/acme/scim"),
        ("GET", "/admin/v1/"),
    ] {
        for token in ["", "anything", "Bearer x"] {
            let req = http::Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(bytes::Bytes::from(json!({"name": "x"}).to_string()))
                .unwrap();
            let res = block_on(handle(req, &env));
            assert_eq!(res.status(), 404, "{method} {path}");
            let body: Value = serde_json::from_slice(res.body()).unwrap();
            assert!(body["detail"].as_str().unwrap().contains("admin API is off"));
        }
    }
    assert_eq!(store.ops(), 0, "a disabled admin API touches no key");
    assert!(store.is_empty());
}
