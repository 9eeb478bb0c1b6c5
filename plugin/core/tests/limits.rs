#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a failed unwrap is a failed test
//! Input limits (`scim_edge_core::limits`): each over-limit request gets its SCIM error naming
//! the limit and its value, and changes nothing in the store (dump before == dump after);
//! the request at the limit still works.

mod support;

use serde_json::{json, Value};
use support::{patch, Host, Tenant};

const LIMITS: &str = r#""maxBodyBytes": 8192, "maxJsonDepth": 10, "maxFilterLength": 300, "maxFilterDepth": 2,
    "maxPatchOperations": 3, "maxMembersPerRequest": 2, "maxAttributesPerResource": 20,
    "maxValueBytes": 500, "maxResourceBytes": 5000, "defaultPageSize": 2, "maxPageSize": 5"#;

struct Fixture {
    host: Host,
    t: Tenant,
    user: String,
    group: String,
    others: Vec<String>,
}

fn fixture() -> Fixture {
    let host = Host::with_config(LIMITS);
    let t = host.tenant("acme");
    let user = host.create_user(&t, "alice@acme.example");
    let others: Vec<String> = (0..6).map(|i| host.create_user(&t, &format!("u{i}@acme.example"))).collect();
    let group = host.create_group(&t, "Staff", &[&user]);
    Fixture { host, t, user, group, others }
}

/// Sends an over-limit request and checks the answer and that nothing changed.
fn refused(
    f: &Fixture,
    method: &str,
    path: &str,
    body: String,
    status: u16,
    scim_type: Option<&str>,
    names: &[&str],
) {
    let before = f.host.store.data();
    let r = f.host.raw(method, &format!("{}/{path}", f.t.base), Some(&f.t.token), body);
    assert_eq!(r.status, status, "{method} {path}: {}", r.body);
    assert_eq!(r.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{}", r.body);
    assert_eq!(r.body["status"], status.to_string());
    assert_eq!(r.body["scimType"].as_str(), scim_type, "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    for n in names {
        assert!(detail.contains(n), "detail {detail:?} names {n}");
    }
    assert_eq!(f.host.store.data(), before, "an over-limit {method} {path} changed the store");
}

#[test]
fn body_size_is_413_before_anything_else() {
    let f = fixture();
    let big = json!({"userName": "big@acme.example", "x": "y".repeat(8200)}).to_string();
    refused(&f, "POST", "Users", big.clone(), 413, None, &["maxBodyBytes", "8192"]);
    // Even without a token: the body is refused before authentication (and costs no read).
    let ops = f.host.store.ops();
    let r = f.host.raw("POST", &format!("{}/Users", f.t.base), None, big);
    assert_eq!(r.status, 413);
    assert_eq!(f.host.store.ops(), ops);
    let fits = json!({"userName": "fits@acme.example", "nickName": "n".repeat(400)}).to_string();
    assert_eq!(f.host.raw("POST", &format!("{}/Users", f.t.base), Some(&f.t.token), fits).status, 201);
}

#[test]
fn json_nesting_depth() {
    let f = fixture();
    let deep = format!(r#"{{"userName":"deep@acme.example","x":{}1{}}}"#, "[".repeat(10), "]".repeat(10));
    refused(&f, "POST", "Users", deep, 400, Some("invalidValue"), &["maxJsonDepth", "10"]);
    // Deeper than serde_json's own recursion limit: still the same clean 400.
    let deeper = format!(r#"{{"a":{}}}"#, "[".repeat(5000));
    refused(&f, "PATCH", &format!("Users/{}", f.user), deeper, 400, Some("invalidValue"), &["maxJsonDepth"]);
    let ok = format!(r#"{{"userName":"ok@acme.example","x":{}1{}}}"#, "[".repeat(9), "]".repeat(9));
    assert_eq!(f.host.raw("POST", &format!("{}/Users", f.t.base), Some(&f.t.token), ok).status, 201);
}

#[test]
fn filter_length_and_depth() {
    let f = fixture();
    let long = format!("Users?filter=userName%20eq%20%22{}%22", "x".repeat(300));
    refused(&f, "GET", &long, String::new(), 400, Some("invalidFilter"), &["maxFilterLength", "300"]);
    refused(
        &f,
        "GET",
        "Users?filter=(((userName%20pr)))",
        String::new(),
        400,
        Some("invalidFilter"),
        &["maxFilterDepth", "2"],
    );
    let (s, b) = f.host.scim(&f.t, "GET", "Users?filter=((userName%20pr))", None);
    assert_eq!(s, 200, "{b}");
    // .search bodies go through the same check.
    let body = json!({"filter": format!("userName eq \"{}\"", "x".repeat(300))}).to_string();
    refused(&f, "POST", "Users/.search", body, 400, Some("invalidFilter"), &["maxFilterLength"]);
}

#[test]
fn patch_operations_per_request() {
    let f = fixture();
    let op = json!({"op": "replace", "path": "nickName", "value": "n"});
    let four = patch(json!([op, op, op, op])).to_string();
    refused(
        &f,
        "PATCH",
        &format!("Users/{}", f.user),
        four.clone(),
        400,
        Some("tooMany"),
        &["maxPatchOperations", "3"],
    );
    refused(&f, "PATCH", &format!("Groups/{}", f.group), four, 400, Some("tooMany"), &["maxPatchOperations"]);
    let (s, b) = f.host.scim(&f.t, "PATCH", &format!("Users/{}", f.user), Some(patch(json!([op, op, op]))));
    assert_eq!(s, 200, "{b}");
}

#[test]
fn members_per_request() {
    let f = fixture();
    let m = |ids: &[String]| ids.iter().map(|i| json!({"value": i})).collect::<Vec<Value>>();
    let three = m(&f.others[..3]);
    let body = json!({"displayName": "Big", "members": three}).to_string();
    refused(&f, "POST", "Groups", body, 400, Some("tooMany"), &["maxMembersPerRequest", "2"]);
    let body = json!({"displayName": "Staff", "members": three}).to_string();
    refused(&f, "PUT", &format!("Groups/{}", f.group), body, 400, Some("tooMany"), &["maxMembersPerRequest"]);
    // Split over operations of one PATCH, the ids still add up.
    let body = patch(json!([
        {"op": "add", "path": "members", "value": m(&f.others[..2])},
        {"op": "remove", "path": "members", "value": m(&f.others[2..3])}
    ]))
    .to_string();
    refused(
        &f,
        "PATCH",
        &format!("Groups/{}", f.group),
        body,
        400,
        Some("tooMany"),
        &["maxMembersPerRequest"],
    );
    let (s, b) = f.host.scim(
        &f.t,
        "PATCH",
        &format!("Groups/{}", f.group),
        Some(patch(json!([{"op": "add", "path": "members", "value": m(&f.others[..2])}]))),
    );
    assert_eq!(s, 204, "{b}");
    f.host.assert_consistent();
}

#[test]
fn attribute_count_and_value_sizes_per_resource() {
    let f = fixture();
    let emails: Vec<Value> = (0..10).map(|i| json!({"type": "work", "value": format!("e{i}@x")})).collect();
    let body = json!({"userName": "many@acme.example", "emails": emails}).to_string();
    refused(&f, "POST", "Users", body, 400, Some("invalidValue"), &["maxAttributesPerResource", "20"]);
    let body = json!({"userName": "long@acme.example", "title": "t".repeat(501)}).to_string();
    refused(&f, "POST", "Users", body, 400, Some("invalidValue"), &["maxValueBytes", "500", "title"]);
    let body = json!({"userName": "k@acme.example", "k".repeat(501): 1}).to_string();
    refused(&f, "POST", "Users", body, 400, Some("invalidValue"), &["maxValueBytes"]);
    let big: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("custom{i}"), json!("v".repeat(450)))).collect();
    let mut body = Value::Object(big);
    body["userName"] = json!("huge@acme.example");
    refused(&f, "POST", "Users", body.to_string(), 400, Some("invalidValue"), &["maxResourceBytes", "5000"]);

    // Growth by PATCH is checked on the result: 8 more emails push the user over 20 values.
    let user = format!("Users/{}", f.user);
    let (s, _) = f.host.scim(
        &f.t,
        "PATCH",
        &user,
        Some(patch(json!([{"op": "add", "path": "emails", "value": emails[..8]}]))),
    );
    assert_eq!(s, 200);
    let fresh: Vec<Value> = (10..13).map(|i| json!({"type": "home", "value": format!("e{i}@x")})).collect();
    let more = patch(json!([{"op": "add", "path": "emails", "value": fresh}])).to_string();
    refused(&f, "PATCH", &user, more, 400, Some("invalidValue"), &["maxAttributesPerResource"]);
    let put = json!({"userName": "alice@acme.example", "title": "t".repeat(501)}).to_string();
    refused(&f, "PUT", &user, put, 400, Some("invalidValue"), &["maxValueBytes"]);
    let group = json!({"displayName": "g".repeat(501)}).to_string();
    refused(&f, "POST", "Groups", group, 400, Some("invalidValue"), &["maxValueBytes"]);
    f.host.assert_consistent();
}

#[test]
fn page_size_is_clamped_and_limits_are_declared() {
    let f = fixture();
    let (s, b) = f.host.scim(&f.t, "GET", "Users?count=1000", None);
    assert_eq!(s, 200);
    assert_eq!(b["itemsPerPage"], 5);
    assert_eq!(b["totalResults"], 7);
    let (_, b) = f.host.scim(&f.t, "GET", "Users", None);
    assert_eq!(b["itemsPerPage"], 2);
    let (s, spc) = f.host.scim(&f.t, "GET", "ServiceProviderConfig", None);
    assert_eq!(s, 200);
    assert_eq!(spc["filter"]["maxResults"], 5);
    assert_eq!(spc["bulk"]["maxPayloadSize"], 8192);
    assert_eq!(spc["bulk"]["supported"], false);
}

#[test]
fn defaults_take_entra_sized_requests() {
    // A group PATCH adding 500 members (Entra batches membership changes) and a user with
    // every attribute of the Entra mapping table fit the default limits.
    let host = Host::new();
    let t = host.tenant("big");
    let ids: Vec<String> = (0..500).map(|i| host.create_user(&t, &format!("m{i}@big.example"))).collect();
    let g = host.create_group(&t, "All", &[]);
    let members: Vec<Value> = ids.iter().map(|i| json!({"value": i})).collect();
    let (s, b) = host.scim(
        &t,
        "PATCH",
        &format!("Groups/{g}"),
        Some(patch(json!([{"op": "Add", "path": "members", "value": members}]))),
    );
    assert_eq!(s, 204, "{b}");
    let (s, b) = host.scim(&t, "GET", &format!("Groups/{g}"), None);
    assert_eq!(s, 200);
    assert_eq!(b["members"].as_array().map(Vec::len), Some(500));
    host.assert_consistent();
}

#[test]
fn rate_limit_is_per_tenant_with_429_and_retry_after() {
    let host = Host::with_config(r#""rateLimit": {"requestsPerSecond": 25, "burst": 30}"#);
    let a = host.tenant("a");
    let b = host.tenant("b");
    for i in 0..30 {
        assert_eq!(host.scim(&a, "GET", "Users", None).0, 200, "request {i} of the burst");
    }
    let before = host.store.data();
    let r =
        host.raw("POST", &format!("{}/Users", a.base), Some(&a.token), json!({"userName": "x"}).to_string());
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert_eq!(r.body["status"], "429");
    assert!(r.body["detail"].as_str().unwrap().contains("rateLimit"));
    // Refused requests are not counted against the bucket's refill and write nothing but
    // their log entry, request count and the connection's last refused sign-in.
    let changed: Vec<_> = host.store.data().into_iter().filter(|(k, v)| before.get(k) != Some(v)).collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].0, format!("v1/conn/{}", a.connection));
    let (_, c) = host.send("GET", "/admin/v1/tenants/a/scim", support::ADMIN, None);
    assert_eq!(c["lastRefusedReason"], "too many requests (rate limit)", "{c}");
    let (_, log) = host.send("GET", "/admin/v1/tenants/a/log?outcome=failure", support::ADMIN, None);
    let ops: Vec<_> = log["entries"].as_array().unwrap().iter().map(|e| e["operation"].clone()).collect();
    assert_eq!(ops, [json!("signIn.refused")], "{log}");
    // Another tenant and the admin API are not affected.
    assert_eq!(host.scim(&b, "GET", "Users", None).0, 200);
    assert_eq!(host.send("GET", "/admin/v1/tenants/a", support::ADMIN, None).0, 200);
    // A second later, 25 more.
    host.clock.advance(1000);
    for _ in 0..25 {
        assert_eq!(host.scim(&a, "GET", "Users", None).0, 200);
    }
    assert_eq!(host.scim(&a, "GET", "Users", None).0, 429);
    host.assert_consistent();
}

#[test]
fn lowering_a_limit_keeps_existing_resources_usable() {
    let mut host = Host::new();
    let t = host.tenant("acme");
    let (s, u) =
        host.scim(&t, "POST", "Users", Some(json!({"userName": "a@acme.example", "title": "t".repeat(600)})));
    assert_eq!(s, 201, "{u}");
    let user = format!("Users/{}", u["id"].as_str().unwrap());
    host.config.limits.max_value_bytes = 500;
    assert_eq!(host.scim(&t, "GET", &user, None).0, 200);
    // Entra re-sends unchanged values every cycle: still fine.
    let same = patch(json!([{"op": "Replace", "path": "title", "value": "t".repeat(600)}]));
    assert_eq!(host.scim(&t, "PATCH", &user, Some(same)).0, 200);
    // A change must produce a resource within the limits.
    let other = patch(json!([{"op": "Replace", "path": "nickName", "value": "n"}]));
    assert_eq!(host.scim(&t, "PATCH", &user, Some(other)).0, 400);
    let fix = patch(json!([{"op": "Replace", "path": "title", "value": "short"}]));
    assert_eq!(host.scim(&t, "PATCH", &user, Some(fix)).0, 200);
}
