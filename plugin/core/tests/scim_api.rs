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
