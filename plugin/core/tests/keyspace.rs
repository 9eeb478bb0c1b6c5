#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a failed unwrap is a failed test
//! Keys built from client input cannot leave their tenant's key space: tenant names, ids in
//! URLs, `userName`, `externalId`, `displayName` and member ids with `/`, `..`, NUL, 10 kB,
//! percent escapes and odd Unicode. Every key written stays under `v1/t/{tenant}/` of the
//! tenant that wrote it, or is one of the global keys `v1/tenant/{tenant}` and
//! `v1/conn/{connection}`; every key parses back with `keys::parse`; keys stay short.

mod support;

use std::collections::BTreeMap;

use scim_edge_core::keys::{self, Index};
use serde_json::json;
use support::{patch, Host, Tenant, ADMIN};

fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        "a/b",
        "../..",
        "..",
        ".",
        "~",
        "x\u{0}y",
        "%2F..%2F",
        "../../tenant/other",
        "v1/t/other/u/0123456789abcdef0123456789abcdef",
        "\u{202e}evil\u{0301}",
        "İstanbul",
        "ǅungla",
        "👩‍👩‍👧 family",
        "tab\there\nnewline",
        "back\\slash \"quote\"",
        " leading and trailing ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(10_000));
    v.push("/".repeat(5_000));
    v.push("é".repeat(4_000));
    v
}

/// Keys added or changed between two dumps.
fn written(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    after.iter().filter(|(k, v)| before.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect()
}

fn assert_in_key_space(keys: &[String], t: &Tenant) {
    let own = format!("v1/t/{}/", t.name);
    for k in keys {
        let allowed = k.starts_with(&own)
            || *k == keys::tenant(&t.name)
            || *k == keys::connection(&t.connection)
            || k.starts_with(&format!("{}/stats/", keys::connection(&t.connection)))
            || k == keys::TENANTS;
        assert!(allowed, "{k:?} is outside tenant {}'s key space", t.name);
        assert!(keys::parse(k).is_some(), "{k:?} is not a key of the layout");
        assert!(k.len() <= 300, "{k:?} is {} bytes", k.len());
        assert!(
            !k.contains('\0') && k.split('/').all(|seg| seg != "." && seg != ".." && !seg.is_empty()),
            "{k:?}"
        );
    }
}

#[test]
fn resource_attributes_stay_in_the_tenant() {
    // Long enough for filters on the 10 kB values.
    let host = Host::with_config(r#""maxFilterLength": 65536"#);
    let t = host.tenant("acme");
    let other = host.tenant("other");
    let other_before: Vec<_> =
        host.store.dump().into_iter().filter(|(k, _)| k.starts_with("v1/t/other/")).collect();
    let mut users = Vec::new();
    for (i, value) in hostile().into_iter().enumerate() {
        let before = host.store.dump();
        let body = json!({"userName": value, "externalId": value, "displayName": value,
                          "emails": [{"type": "work", "value": value}]});
        let (s, u) = host.scim(&t, "POST", "Users", Some(body));
        assert_eq!(s, 201, "{value:?}: {u}");
        let id = u["id"].as_str().unwrap().to_owned();
        assert_eq!(u["userName"], json!(value), "stored exactly as sent");
        let gname = format!("{value}#{i}");
        let (s, g) = host.scim(
            &t,
            "POST",
            "Groups",
            Some(json!({"displayName": gname, "externalId": value, "members": [{"value": id}]})),
        );
        assert_eq!(s, 201, "{value:?}: {g}");
        assert_in_key_space(&written(&before, &host.store.dump()), &t);
        // The escaped index entry finds exactly this user again, case-insensitively.
        let q =
            format!("Users?filter=userName%20eq%20{}", urlencode(&json!(value.to_uppercase()).to_string()));
        let (s, l) = host.scim(&t, "GET", &q, None);
        assert_eq!(s, 200, "{l}");
        assert_eq!(l["totalResults"], 1, "{value:?}: {l}");
        assert_eq!(l["Resources"][0]["id"], json!(id));
        assert!(host.store.raw(&keys::index("acme", Index::UserExternalId, &value)).is_some());
        users.push(id);
    }
    // Renames to hostile values move index entries within the tenant too.
    let before = host.store.dump();
    for (id, value) in users.iter().zip(hostile().into_iter().rev()) {
        let (s, b) = host.scim(
            &t,
            "PATCH",
            &format!("Users/{id}"),
            Some(patch(json!([{"op": "replace", "path": "userName", "value": format!("{value}!")}]))),
        );
        assert_eq!(s, 200, "{b}");
    }
    assert_in_key_space(&written(&before, &host.store.dump()), &t);
    let other_after: Vec<_> =
        host.store.dump().into_iter().filter(|(k, _)| k.starts_with("v1/t/other/")).collect();
    assert_eq!(other_before, other_after);
    let _ = other;
    host.assert_consistent();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[test]
fn ids_in_urls_never_reach_a_key() {
    let host = Host::with_config(r#""maxFilterLength": 65536"#);
    let t = host.tenant("acme");
    let other = host.tenant("other");
    let victim = host.create_user(&other, "victim@other.example");
    let uid = host.create_user(&t, "alice@acme.example");
    let gid = host.create_group(&t, "Staff", &[&uid]);
    let mut ids: Vec<String> = [
        "..%2F..%2Fv1%2Ftenant%2Fother",
        "..",
        "%00",
        "%2e%2e",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcdef%00",
        "%F0%9F%91%A9",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.push(victim.clone());
    ids.push("a".repeat(10_000));
    let before = host.store.dump();
    for id in &ids {
        for (method, body) in [
            ("GET", None),
            ("PUT", Some(json!({"userName": "x", "displayName": "x"}))),
            ("PATCH", Some(patch(json!([{"op": "add", "path": "nickName", "value": "x"}])))),
            ("DELETE", None),
        ] {
            for what in ["Users", "Groups"] {
                let (s, b) = host.scim(&t, method, &format!("{what}/{id}"), body.clone());
                assert_eq!(s, 404, "{method} {what}/{id}: {b}");
            }
        }
        // As member ids, too: only users of this tenant can be members.
        let (s, b) = host.scim(
            &t,
            "PATCH",
            &format!("Groups/{gid}"),
            Some(patch(json!([{"op": "add", "path": "members", "value": [{"value": id}]}]))),
        );
        assert_eq!(s, 400, "{b}");
        let (s, b) =
            host.scim(&t, "GET", &format!("Groups?filter=members%20eq%20%22{}%22", urlencode(id)), None);
        assert_eq!((s, b["totalResults"].as_u64()), (200, Some(0)), "{b}");
    }
    // Only bookkeeping changed: the connection's request counts and the tenant's log of the
    // refused writes (whose keys are checked like every other).
    assert_in_key_space(&written(&before, &host.store.dump()), &t);
    let mut before = before;
    before.retain(|k, _| !k.contains("/log/") && !k.contains("/stats/"));
    assert_eq!(host.store.data(), before, "requests naming foreign or malformed ids wrote nothing");
    host.assert_consistent();
}

#[test]
fn tenant_names_are_validated_before_any_key() {
    let host = Host::new();
    let before = host.store.dump();
    let long = "t".repeat(10_000);
    for name in [
        "a%2Fb",
        "..",
        ".",
        "%00",
        "a%00b",
        "%C3%A9",
        "a%20b",
        "a:b",
        "~x",
        long.as_str(),
        "x".repeat(65).as_str(),
    ] {
        for (method, path, body) in [
            ("PUT", format!("/admin/v1/tenants/{name}"), Some(json!({"name": "N"}))),
            ("GET", format!("/admin/v1/tenants/{name}"), None),
            ("POST", format!("/admin/v1/tenants/{name}/scim"), None),
            ("GET", format!("/admin/v1/tenants/{name}/scim"), None),
            ("DELETE", format!("/admin/v1/tenants/{name}/scim"), None),
        ] {
            let (s, b) = host.send(method, &path, ADMIN, body);
            assert!(s == 400 || s == 404, "{method} {path}: {s} {b}");
        }
    }
    assert_eq!(host.store.dump(), before);
    // The odd names that are valid keep to their own space.
    for name in ["...", "-", "_", "A.b-C_9", &"z".repeat(64)] {
        let before = host.store.dump();
        let t = host.tenant(name);
        host.create_user(&t, "u@x");
        assert_in_key_space(&written(&before, &host.store.dump()), &t);
    }
    host.assert_consistent();
}
