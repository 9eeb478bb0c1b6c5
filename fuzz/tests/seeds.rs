//! The `handle_request` seed corpus (fuzz/seeds/handle_request/), written from the requests of
//! shared/reference/entra-provisioning.md and the PATCH fixtures of the core, plus a check
//! that every seed plays cleanly through the harness (its oracles hold on real traffic).
//!
//! Regenerate the files after changing a seed: `SCIM_EDGE_WRITE_SEEDS=1 cargo test
//! --manifest-path fuzz/Cargo.toml --test seeds`.

use std::path::Path;

use scim_edge_fuzz::{Script, Step, World};
use serde_json::{json, Value};

const SCIM_JSON: &str = "content-type: application/scim+json";

fn step(method: &str, uri: &str, body: Value) -> Step {
    Step {
        flags: 0,
        fault: 0,
        method: method.into(),
        uri: uri.into(),
        headers: SCIM_JSON.into(),
        body: if body.is_null() { String::new() } else { body.to_string() },
    }
}

fn with(mut s: Step, flags: u8, fault: u8) -> Step {
    s.flags = flags;
    s.fault = fault;
    s
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn entra_user() -> Value {
    json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_ab6490ee@testuser.com","active":true,
        "emails":[{"primary":true,"type":"work","value":"Test_User_ab6490ee@testuser.com"}],"meta":{"resourceType":"User"},
        "name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[],
        "addresses":null,"phoneNumbers":null,"preferredLanguage":null,"title":null,"department":null,"manager":null,
        "displayName":"Test User"})
}

fn entra_group() -> Value {
    json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"displayName","meta":{"resourceType":"Group"}})
}

/// Hand-written scripts: the Entra catalogue (a.1 rows), admin API, cross-tenant, faults, limits.
fn scripts() -> Vec<(String, Script)> {
    let mut out: Vec<(String, Vec<Step>)> = vec![
        ("row01_test_connection".into(), vec![
            step("GET", "Users?filter=userName%20eq%20%22b1a6c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d%22", Value::Null),
            step("GET", "Groups?excludedAttributes=members&filter=displayName+eq+%22x%22", Value::Null),
        ]),
        ("row02_match_before_create".into(), vec![
            step("GET", "Users?filter=userName+eq+%22ALICE@fuzz.example%22", Value::Null),
            step("GET", "Users?filter=externalId+eq+ext-alice&aadOptscim062020", Value::Null),
        ]),
        ("row03_create_user_and_duplicate".into(), vec![
            step("POST", "Users", entra_user()),
            step("POST", "Users", entra_user()),
            step("GET", "Users/$U2", Value::Null),
        ]),
        ("row04_get_unknown".into(), vec![step("GET", "Users/ffffffffffffffffffffffffffffffff", Value::Null)]),
        ("row05_07_update".into(), vec![step("PATCH", "Users/$U0", patch(json!([
            {"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
            {"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},
            {"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Here"},
            {"op":"Replace","path":"externalId","value":"ext-new"}])))]),
        ("row06_rename_user".into(), vec![
            step("PATCH", "Users/$U0", patch(json!([{"op":"Replace","path":"userName","value":"BOB@fuzz.example"}]))),
            step("PATCH", "Users/$U0", patch(json!([{"op":"Replace","path":"userName","value":"carol@fuzz.example"}]))),
        ]),
        ("row08_flag_pathless".into(), vec![step("PATCH", "Users/$U1?aadOptscim062020", patch(json!([
            {"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
             "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}])))]),
        ("row09_manager".into(), vec![
            step("PATCH", "Users/$U0", patch(json!([{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"$U1"}]))),
            step("GET", "Users?filter=id+eq+%22$U0%22+and+manager+eq+%22$U1%22", Value::Null),
        ]),
        ("row10_disable_enable".into(), vec![
            step("PATCH", "Users/$U0", patch(json!([{"op":"Replace","path":"active","value":"False"}]))),
            step("PATCH", "Users/$U0", patch(json!([{"op":"replace","path":"active","value":true}]))),
        ]),
        ("row11_hard_delete".into(), vec![
            step("DELETE", "Users/$U0", Value::Null),
            step("GET", "Users/$U0", Value::Null),
            step("GET", "Groups/$G0", Value::Null),
        ]),
        ("row12_20_groups".into(), vec![
            step("POST", "Groups", entra_group()),
            step("GET", "Groups/$G1?excludedAttributes=members", Value::Null),
            step("GET", "Groups?excludedAttributes=members&filter=displayName+eq+%22displayName%22", Value::Null),
            step("PATCH", "Groups/$G1", patch(json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":"$U0"},{"$ref":null,"value":"$U1"}]}]))),
            step("GET", "Groups?filter=id+eq+%22$G1%22+and+members+eq+%22$U1%22", Value::Null),
            step("PATCH", "Groups/$G1", patch(json!([{"op":"Replace","path":"displayName","value":"updatedDisplayName"}]))),
            step("PATCH", "Groups/$G1", patch(json!([{"op":"Remove","path":"members","value":[{"$ref":null,"value":"$U0"}]}]))),
            step("PATCH", "Groups/$G1?aadOptscim062020", patch(json!([{"op":"remove","path":"members[value eq \"$U1\"]"}]))),
            step("DELETE", "Groups/$G1", Value::Null),
        ]),
        ("row21_discovery".into(), vec![
            step("GET", "ServiceProviderConfig", Value::Null),
            step("GET", "Schemas", Value::Null),
            step("GET", "Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", Value::Null),
            step("GET", "ResourceTypes/User", Value::Null),
        ]),
        ("row22_paging".into(), vec![step("GET",
            "Users?filter=active+eq+true+and+(meta.lastModified+ge+%222025-01-01T00:00:00Z%22+and+meta.lastModified+le+%222030-01-01T00:00:00Z%22)&count=1&startIndex=2&attributes=userName,emails",
            Value::Null)]),
        ("put_user_and_group".into(), vec![
            step("PUT", "Users/$U1", json!({"userName":"bob@fuzz.example","externalId":"ext-bob","active":true})),
            step("PUT", "Groups/$G0", json!({"displayName":"Fuzzers 2","members":[{"value":"$U1"}]})),
            step("GET", "Groups/$G0?attributes=members", Value::Null),
        ]),
        ("search".into(), vec![
            step("POST", "Users/.search", json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter":"userName sw \"a\"","count":5})),
            step("POST", ".search", json!({"filter":"externalId pr"})),
        ]),
        ("admin".into(), vec![
            with(step("GET", "/admin/v1/tenants/$T", Value::Null), 1, 0),
            with(step("PUT", "/admin/v1/tenants/$T", json!({"name":"Fuzz Inc","plan":"advanced"})), 1, 0),
            with(step("GET", "/admin/v1/tenants/$T/scim", Value::Null), 1, 0),
            with(step("POST", "/admin/v1/tenants/$T/scim", Value::Null), 1, 0),
            step("GET", "Users", Value::Null),
            with(step("PUT", "/admin/v1/tenants/new-tenant", json!({"name":"New"})), 1, 0),
            with(step("PUT", "/admin/v1/tenants/$T", json!({"name":"Fuzz Inc","plan":"basic"})), 1, 0),
            step("GET", "Users", Value::Null),
            with(step("DELETE", "/admin/v1/tenants/$T/scim", Value::Null), 1, 0),
        ]),
        ("administration".into(), vec![
            with(step("PUT", "/admin/v1/tenants/$T",
                json!({"name":"Fuzz Inc","admin":{"userName":"boss@fuzz.example","displayName":"Boss"},
                       "tokenLifetimeDays":30})), 1, 0),
            with(step("GET", "/admin/v1/tenants/$T/users?state=active&q=a&startIndex=1&count=5", Value::Null), 1, 0),
            with(step("PATCH", "/admin/v1/tenants/$T/users/$U0", json!({"role":"administrator"})), 1, 0),
            with(Step { headers: format!("{SCIM_JSON}\nx-acting-user: $U0"),
                ..step("PATCH", "/admin/v1/tenants/$T/users/$U1", json!({"role":"system_technician"})) }, 1, 0),
            with(Step { headers: format!("{SCIM_JSON}\nx-acting-user: $U1"),
                ..step("DELETE", "/admin/v1/tenants/$T/users/$U0", Value::Null) }, 1, 0),
            with(step("GET", "/admin/v1/tenants/$T/log?after=0&count=5&operation=user.&outcome=failure", Value::Null), 1, 0),
            with(step("GET", "/admin/v1/roles", Value::Null), 1, 0),
            with(step("POST", "/admin/v1/tenants/$T/scim", json!({"expiresInDays": 1})), 1, 4),
            step("GET", "Users", Value::Null),
            with(Step { headers: "accept-encoding: gzip".into(), ..step("GET", "/admin/", Value::Null) }, 2, 0),
            with(step("DELETE", "/admin/v1/tenants/$T/users/$U1", Value::Null), 1, 0),
            with(step("GET", "/admin/v1/tenants", Value::Null), 1, 0),
        ]),
        ("cross_tenant".into(), vec![
            step("GET", "/scim/v2/$C2/Users", Value::Null),
            step("GET", "Users/$V0", Value::Null),
            step("PATCH", "Groups/$G0", patch(json!([{"op":"add","path":"members","value":[{"value":"$V0"}]}]))),
            step("DELETE", "Groups/$W0", Value::Null),
            with(step("GET", "/admin/v1/tenants/$T2", Value::Null), 0, 0),
            with(step("GET", "Users", Value::Null), 3, 0),
        ]),
        ("bad_input".into(), vec![
            Step { headers: "authorization: Basic abc".into(), ..step("GET", "Users", Value::Null) },
            Step { body: "{\"userName\":".into(), ..step("POST", "Users", Value::Null) },
            step("POST", "Users", json!({"userName":"../../v1/tenant/x\u{0}/%2F\u{202e}"})),
            step("GET", "Users/..%2F..%2Fv1%2Ftenant%2Fother", Value::Null),
            step("GET", "Users?filter=((((((((((((((((((((((((((((((((((a pr))))))))))))))))))))))))))))))))))", Value::Null),
            step("GET", "Users?count=-5&startIndex=99999999999999999999", Value::Null),
            step("BREW", "Bulk", Value::Null),
        ]),
        ("store_faults".into(), vec![
            with(step("POST", "Users", json!({"userName":"faulty@fuzz.example","externalId":"f"})), 0, 224 + 9),
            step("POST", "Users", json!({"userName":"faulty@fuzz.example","externalId":"f"})),
            with(step("PATCH", "Groups/$G0", patch(json!([{"op":"add","path":"members","value":[{"value":"$U1"}]}]))), 0, 224 + 4),
            with(step("GET", "Users", Value::Null), 0, 255),
            step("DELETE", "Users/$U0", Value::Null),
        ]),
        ("lease_expiry".into(), vec![
            with(step("POST", "Groups", json!({"displayName":"g","members":[{"value":"$U0"}]})), 0, 224 + 12),
            with(step("POST", "Groups", json!({"displayName":"g2"})), 4 | 8, 0),
        ]),
    ];
    // Every PATCH fixture, against a user or the group, member ids mapped to real users.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin/core/tests/fixtures/patch");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("fixtures").flatten().map(|e| e.path()).collect();
    files.sort();
    for path in files {
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("fixture").to_owned();
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
        let mut body = fixture["request"].to_string();
        let mut ids = Vec::new();
        collect_strings(&fixture["members"], &mut ids);
        for (i, id) in ids.iter().enumerate() {
            body = body.replace(id.as_str(), &format!("$U{}", i % 2));
        }
        let uri = if fixture["kind"] == "Group" { "Groups/$G0" } else { "Users/$U0" };
        out.push((format!("patch_{name}"), vec![Step { body, ..step("PATCH", uri, Value::Null) }]));
    }
    out.into_iter().map(|(n, steps)| (n, Script { steps })).collect()
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if !out.contains(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

#[test]
fn seeds_decode_and_play_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/handle_request");
    let write = std::env::var_os("SCIM_EDGE_WRITE_SEEDS").is_some();
    if write {
        std::fs::create_dir_all(&dir).expect("seed dir");
    }
    for (name, script) in scripts() {
        let bytes = script.encode();
        let decoded: Script = arbitrary::Arbitrary::arbitrary_take_rest(arbitrary::Unstructured::new(&bytes))
            .expect("a script decodes");
        assert_eq!(decoded, script, "{name}: encode/decode round trip");
        World::new().run(&script);
        let file = dir.join(&name);
        if write {
            std::fs::write(&file, &bytes).expect("write seed");
        } else {
            let on_disk = std::fs::read(&file).unwrap_or_default();
            assert!(on_disk == bytes, "{name}: seed file out of date; rerun with SCIM_EDGE_WRITE_SEEDS=1");
        }
    }
}
