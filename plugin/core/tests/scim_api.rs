#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code
//! SCIM protocol behaviours beyond the Entra lifecycle: search, projection, methods.

mod common;

use common::{tenant, Host};
use serde_json::{json, Value};

fn ids(list: &Value) -> Vec<String> {
    list["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn post_search_matches_get_with_the_same_query() {
    let h = Host::new();
    let (base, tok, users) = tenant(&h, 5);
    let (s, g) = h.send("POST", &format!("{base}/Groups"), &tok, Some(json!({"displayName": "Staff"})));
    assert_eq!(s, 201);
    let search = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName sw \"user\"", "startIndex": 2, "count": 2, "attributes": ["userName"]
    });
    let (s, by_post) = h.send("POST", &format!("{base}/Users/.search"), &tok, Some(search));
    assert_eq!(s, 200, "{by_post}");
    let (s, by_get) = h.send(
        "GET",
        &format!("{base}/Users?filter=userName%20sw%20%22user%22&startIndex=2&count=2&attributes=userName"),
        &tok,
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(by_post, by_get);
    assert_eq!(by_post["totalResults"], 5);
    assert_eq!(ids(&by_post), users[1..3].to_vec());
    assert_eq!(by_post["Resources"][0].get("emails"), None);
    assert_eq!(by_post["Resources"][0].get("meta"), None);

    // The root searches users, then groups.
    let root = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": 5, "count": 10});
    let (s, all) = h.send("POST", &format!("{base}/.search"), &tok, Some(root));
    assert_eq!(s, 200, "{all}");
    assert_eq!(all["totalResults"], 6);
    assert_eq!(ids(&all), vec![users[4].clone(), g["id"].as_str().unwrap().to_owned()]);

    // GET on .search is not a search; a malformed search body is a 400.
    assert_eq!(h.send("GET", &format!("{base}/Users/.search"), &tok, None).0, 405);
    let (s, e) = h.send("POST", &format!("{base}/Users/.search"), &tok, Some(json!({"schemas": ["x"]})));
    assert_eq!((s, e["scimType"].as_str()), (400, Some("invalidSyntax")));
    let (s, e) =
        h.send("POST", &format!("{base}/Users/.search"), &tok, Some(json!({"filter": "userName eq"})));
    assert_eq!((s, e["scimType"].as_str()), (400, Some("invalidFilter")));
}

#[test]
fn paging_is_clamped_and_validated() {
    let h = Host::new();
    let (base, tok, _) = tenant(&h, 3);
    let (s, l) = h.send("GET", &format!("{base}/Users?startIndex=-4&count=1000000"), &tok, None);
    assert_eq!(s, 200);
    assert_eq!((l["startIndex"].as_u64(), l["itemsPerPage"].as_u64()), (Some(1), Some(3)));
    let (s, l) = h.send("GET", &format!("{base}/Users?count=0"), &tok, None);
    assert_eq!(
        (s, l["totalResults"].as_u64(), l["Resources"].as_array().map(Vec::len)),
        (200, Some(3), Some(0))
    );
    let (s, e) = h.send("GET", &format!("{base}/Users?count=ten"), &tok, None);
    assert_eq!((s, e["scimType"].as_str()), (400, Some("invalidValue")));
}

#[test]
fn writes_to_discovery_endpoints_are_405_with_allow() {
    let h = Host::new();
    let (base, tok, _) = tenant(&h, 0);
    for ep in ["ServiceProviderConfig", "Schemas", "ResourceTypes"] {
        let res = h.request("POST", &format!("{base}/{ep}"), &tok, Some(json!({})));
        assert_eq!(res.status(), 405, "{ep}");
        assert_eq!(res.headers()["allow"], "GET");
    }
    let res =
        h.request("GET", &format!("{base}/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"), &tok, None);
    assert_eq!(res.status(), 200);
    assert_eq!(h.send("GET", &format!("{base}/Bulk"), &tok, None).0, 404);
}

fn filter(base: &str, resource: &str, attr: &str, value: &str) -> String {
    format!("{base}/{resource}?filter={attr}%20eq%20%22{value}%22")
}

/// RFC 7643 makes neither externalId nor group displayName unique, and Entra sends both
/// shared: by default two resources with one value are both created and both found; the
/// config key `uniqueness` makes either unique again (409 `uniqueness`, nothing written).
#[test]
fn external_ids_and_group_names_are_shared_unless_configured_unique() {
    let h = Host::new();
    let (base, tok, _) = tenant(&h, 0);
    let mut users = Vec::new();
    for name in ["ann@example.com", "bob@example.com"] {
        let (s, u) = h.send(
            "POST",
            &format!("{base}/Users"),
            &tok,
            Some(json!({"userName": name, "externalId": "ann"})),
        );
        assert_eq!(s, 201, "{u}");
        users.push(u["id"].as_str().unwrap().to_owned());
    }
    let (_, l) = h.send("GET", &filter(&base, "Users", "externalId", "ann"), &tok, None);
    assert_eq!((l["totalResults"].as_u64(), ids(&l)), (Some(2), users.clone()));
    let mut groups = Vec::new();
    for name in ["Sales", "SALES"] {
        let (s, g) = h.send(
            "POST",
            &format!("{base}/Groups"),
            &tok,
            Some(json!({"displayName": name, "externalId": "sales"})),
        );
        assert_eq!(s, 201, "{g}");
        groups.push(g["id"].as_str().unwrap().to_owned());
    }
    for (attr, value) in [("displayName", "sales"), ("externalId", "sales")] {
        let (_, l) = h.send("GET", &filter(&base, "Groups", attr, value), &tok, None);
        assert_eq!(ids(&l), groups, "{attr}");
    }
    // userName stays unique, ignoring case.
    let (s, e) = h.send("POST", &format!("{base}/Users"), &tok, Some(json!({"userName": "ANN@example.com"})));
    assert_eq!((s, e["scimType"].as_str()), (409, Some("uniqueness")));
    let report = scim_edge_core::consistency::check(h.store.entries());
    assert!(report.problems.is_empty(), "{report}");

    let h = Host::with_config(r#""uniqueness": {"externalId": true, "groupDisplayName": true}"#);
    let (base, tok, _) = tenant(&h, 0);
    let (s, ann) = h.send(
        "POST",
        &format!("{base}/Users"),
        &tok,
        Some(json!({"userName": "ann@example.com", "externalId": "ann"})),
    );
    assert_eq!(s, 201);
    let (s, bob) = h.send(
        "POST",
        &format!("{base}/Users"),
        &tok,
        Some(json!({"userName": "bob@example.com", "externalId": "bob"})),
    );
    assert_eq!(s, 201);
    let (s, g) = h.send("POST", &format!("{base}/Groups"), &tok, Some(json!({"displayName": "Sales"})));
    assert_eq!(s, 201);
    let (s, ops) = h.send("POST", &format!("{base}/Groups"), &tok, Some(json!({"displayName": "Ops"})));
    assert_eq!(s, 201);
    let before = h.store.dump();
    let (s, e) = h.send(
        "POST",
        &format!("{base}/Users"),
        &tok,
        Some(json!({"userName": "cy@example.com", "externalId": "ann"})),
    );
    assert_eq!((s, e["scimType"].as_str()), (409, Some("uniqueness")), "{e}");
    assert!(e["detail"].as_str().unwrap().contains("externalId \"ann\""), "{e}");
    let (s, e) = h.send("POST", &format!("{base}/Groups"), &tok, Some(json!({"displayName": "SALES"})));
    assert_eq!((s, e["scimType"].as_str()), (409, Some("uniqueness")), "{e}");
    let patch = |path: &str, value: &str| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": path, "value": value}]})
    };
    let (s, e) = h.send(
        "PATCH",
        &format!("{base}/Users/{}", bob["id"].as_str().unwrap()),
        &tok,
        Some(patch("externalId", "ann")),
    );
    assert_eq!((s, e["scimType"].as_str()), (409, Some("uniqueness")), "{e}");
    let (s, e) = h.send(
        "PATCH",
        &format!("{base}/Groups/{}", ops["id"].as_str().unwrap()),
        &tok,
        Some(patch("displayName", "sales")),
    );
    assert_eq!((s, e["scimType"].as_str()), (409, Some("uniqueness")), "{e}");
    // Nothing written but the log and the request counters.
    let after = h.store.dump();
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v) && !k.contains("/log/") && !k.contains("/stats/"))
        .map(|(k, _)| k)
        .chain(before.keys().filter(|k| !after.contains_key(*k)))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    let (_, l) = h.send("GET", &filter(&base, "Users", "externalId", "ann"), &tok, None);
    assert_eq!(ids(&l), vec![ann["id"].as_str().unwrap().to_owned()]);
    let (_, l) = h.send("GET", &filter(&base, "Groups", "displayName", "sales"), &tok, None);
    assert_eq!(ids(&l), vec![g["id"].as_str().unwrap().to_owned()]);
}

/// Entries written when every index was unique (one holder, with or without its claim time)
/// are read as they are and shared from there: no migration.
#[test]
fn index_entries_of_the_unique_layout_are_read_and_shared() {
    use scim_edge_core::keys::{self, Index};
    use scim_edge_core::Store;
    let h = Host::new();
    let (base, tok, users) = tenant(&h, 1);
    // What the unique layout wrote before claims carried their time: the id alone.
    let key = keys::index("t", Index::UserExternalId, "ext-0");
    common::block_on(h.store.put(&key, users[0].as_bytes(), scim_edge_core::Condition::Any)).unwrap();
    let (s, u) = h.send(
        "POST",
        &format!("{base}/Users"),
        &tok,
        Some(json!({"userName": "two@example.com", "externalId": "ext-0"})),
    );
    assert_eq!(s, 201);
    let second = u["id"].as_str().unwrap().to_owned();
    let (_, l) = h.send("GET", &filter(&base, "Users", "externalId", "ext-0"), &tok, None);
    assert_eq!(ids(&l), vec![users[0].clone(), second.clone()]);
    assert_eq!(h.send("DELETE", &format!("{base}/Users/{}", users[0]), &tok, None).0, 204);
    let (_, l) = h.send("GET", &filter(&base, "Users", "externalId", "ext-0"), &tok, None);
    assert_eq!(ids(&l), vec![second]);
    let report = scim_edge_core::consistency::check(h.store.entries());
    assert!(report.problems.is_empty(), "{report}");
}

fn etag_of(res: &http::Response<bytes::Bytes>) -> String {
    res.headers().get("etag").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

fn conditional(
    h: &Host,
    method: &str,
    uri: &str,
    tok: &str,
    header: (&str, &str),
    body: Option<Value>,
) -> http::Response<bytes::Bytes> {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "scim.test")
        .header("authorization", format!("Bearer {tok}"))
        .header(header.0, header.1)
        .body(body.map(|b| bytes::Bytes::from(b.to_string())).unwrap_or_default())
        .unwrap();
    let env = scim_edge_core::Env { store: &h.store, clock: &h.clock, random: &h.random, config: &h.config };
    common::block_on(scim_edge_core::handle(req, &env))
}

/// RFC 7644 §3.14: the ETag of a single-resource answer is its `meta.version` (also when a
/// projection leaves `meta` out); a stale `If-Match` is 412 and changes nothing.
#[test]
fn etags_on_every_single_resource_answer_and_stale_if_match_changes_nothing() {
    let h = Host::new();
    let (base, tok, users) = tenant(&h, 1);
    let user = format!("{base}/Users/{}", users[0]);
    let res = h.request("GET", &format!("{user}?attributes=userName"), &tok, None);
    assert_eq!((res.status().as_u16(), etag_of(&res)), (200, "W/\"1\"".to_owned()));
    let (s, g) = h.send("POST", &format!("{base}/Groups"), &tok, Some(json!({"displayName": "Staff"})));
    assert_eq!(s, 201);
    let group = format!("{base}/Groups/{}", g["id"].as_str().unwrap());
    let res = h.request("GET", &format!("{group}?attributes=displayName"), &tok, None);
    assert_eq!(etag_of(&res), "W/\"1\"");
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "add", "path": "members", "value": [{"value": users[0]}]}]});
    let disable = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let before = h.store.data();
    for (method, uri, body) in [
        ("PATCH", &user, Some(disable.clone())),
        ("PUT", &user, Some(json!({"userName": "renamed@example.com"}))),
        ("DELETE", &user, None),
        ("PATCH", &group, Some(add.clone())),
        ("PUT", &group, Some(json!({"displayName": "Renamed"}))),
        ("DELETE", &group, None),
    ] {
        let res = conditional(&h, method, uri, &tok, ("if-match", "W/\"7\", \"8\""), body);
        assert_eq!(res.status(), 412, "{method} {uri}");
        let e: Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!((e["status"].as_str(), e.get("scimType")), (Some("412"), None), "{e}");
        assert!(e["detail"].as_str().unwrap().contains("W/\"1\""), "{e}");
    }
    assert_eq!(h.store.data(), before, "a refused write changes nothing");
    // If-None-Match: * on a write of an existing resource is refused too.
    assert_eq!(conditional(&h, "DELETE", &user, &tok, ("if-none-match", "*"), None).status(), 412);
    // The group PATCH answers 204 with the new version.
    let res = conditional(&h, "PATCH", &group, &tok, ("if-match", "W/\"1\""), Some(add));
    assert_eq!((res.status().as_u16(), etag_of(&res)), (204, "W/\"2\"".to_owned()));
    let res = conditional(&h, "GET", &group, &tok, ("if-none-match", "W/\"2\""), None);
    assert_eq!((res.status().as_u16(), etag_of(&res), res.body().len()), (304, "W/\"2\"".to_owned(), 0));
    // Deleting a member changes the group: a new version, the cached copy is stale.
    assert_eq!(h.send("DELETE", &user, &tok, None).0, 204);
    let res = conditional(&h, "GET", &group, &tok, ("if-none-match", "W/\"2\""), None);
    assert_eq!((res.status().as_u16(), etag_of(&res)), (200, "W/\"3\"".to_owned()));
    // An unknown resource is 404 whatever the preconditions (RFC 7232 §5).
    let unknown = format!("{base}/Users/{}", "0".repeat(32));
    assert_eq!(conditional(&h, "PATCH", &unknown, &tok, ("if-match", "*"), Some(disable)).status(), 404);
}

/// The version `If-Match` is checked against is the one the write is conditional on: a
/// concurrent write between the read and the write makes the write fail its compare-and-swap,
/// and the retry finds `If-Match` stale (412) instead of writing over the other change.
#[test]
fn if_match_is_checked_against_the_version_written_over() {
    use scim_edge_core::{Condition, Store, StoreError, Version, Versioned};
    use std::cell::RefCell;

    /// Writes `sneak` to its key just before the first conditional write of that key.
    struct Interleaved<'a> {
        inner: &'a scim_edge_core::testing::MemStore,
        sneak: RefCell<Option<(String, Vec<u8>)>>,
    }
    impl Store for Interleaved<'_> {
        async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
            let sneak =
                self.sneak.borrow_mut().take_if(|(k, _)| k == key && matches!(cond, Condition::Version(_)));
            if let Some((k, v)) = sneak {
                self.inner.put(&k, &v, Condition::Any).await?;
            }
            self.inner.put(key, value, cond).await
        }
        async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
            self.inner.delete(key, cond).await
        }
    }

    let h = Host::new();
    let (base, tok, users) = tenant(&h, 1);
    let key = scim_edge_core::keys::user("t", &users[0]);
    // The concurrent change: the same user at version 2 with another displayName.
    let mut other: Value = serde_json::from_slice(&h.store.raw(&key).unwrap()).unwrap();
    other["version"] = json!(2);
    other["attributes"]["displayName"] = json!("Concurrent");
    let store = Interleaved {
        inner: &h.store,
        sneak: RefCell::new(Some((key.clone(), other.to_string().into_bytes()))),
    };
    let env = scim_edge_core::Env { store: &store, clock: &h.clock, random: &h.random, config: &h.config };
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "path": "displayName", "value": "Mine"}]});
    let req = http::Request::builder()
        .method("PATCH")
        .uri(format!("{base}/Users/{}", users[0]))
        .header("host", "scim.test")
        .header("authorization", format!("Bearer {tok}"))
        .header("if-match", "W/\"1\"")
        .body(bytes::Bytes::from(patch.to_string()))
        .unwrap();
    let res = common::block_on(scim_edge_core::handle(req, &env));
    assert_eq!(res.status(), 412, "{}", String::from_utf8_lossy(res.body()));
    assert!(store.sneak.borrow().is_none(), "the concurrent write happened");
    let (_, u) = h.send("GET", &format!("{base}/Users/{}", users[0]), &tok, None);
    assert_eq!(
        (u["displayName"].as_str(), u["meta"]["version"].as_str()),
        (Some("Concurrent"), Some("W/\"2\""))
    );
}
