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
