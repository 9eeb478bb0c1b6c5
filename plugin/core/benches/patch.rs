//! The PATCH engine (`scim::patch`): parsing a request and applying it to a stored user, in
//! both of Entra's dialects, plus the group-membership split. `cargo bench -p scim-edge-core
//! --bench patch`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // bench setup: a failure is a broken bench

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use scim_edge_core::scim::patch;
use scim_edge_core::scim::schema::{self, ResourceKind};
use serde_json::{json, Value};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn stored_user() -> serde_json::Map<String, Value> {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-8c9f-2d2e3f4a5b6c",
        "userName": "Test_User_4f0c2a3b@contoso.example",
        "active": true,
        "displayName": "Test User",
        "emails": [{"primary": true, "type": "work", "value": "Test_User_4f0c2a3b@contoso.example"}],
        "name": {"formatted": "Test User", "familyName": "User", "givenName": "Test"},
        "roles": []
    });
    schema::normalize(ResourceKind::User, &body).expect("a valid user")
}

fn requests() -> Vec<(&'static str, Value)> {
    let ops = |ops: Value| json!({"schemas": [PATCH_OP], "Operations": ops});
    vec![
        ("entra disable", ops(json!([{"op": "Replace", "path": "active", "value": "False"}]))),
        (
            "entra default update",
            ops(json!([
                {"op": "Replace", "path": "displayName", "value": "Kkom Unua"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "kkom@contoso.example"},
                {"op": "Replace", "path": "name.givenName", "value": "Kkom"},
                {"op": "Replace", "path": "name.familyName", "value": "Unua"},
                {"op": "Replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "Aklq"},
                {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Redmond"},
                {"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "98052"}
            ])),
        ),
        (
            "aadOptscim062020 path-less",
            ops(json!([
                {"op": "replace", "value": {"displayName": "Bjfe", "name.givenName": "Kkom",
                  "name.familyName": "Unua", format!("{ENTERPRISE}:employeeNumber"): "Aklq"}},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "kkom@contoso.example"}
            ])),
        ),
        (
            "manager bare string",
            ops(json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"),
                        "value": "3f2a9c1d7b4e4a6f8c0d2e1f3a5b7c9d"}])),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let user = stored_user();
    let mut parse = c.benchmark_group("patch/parse");
    for (name, body) in requests() {
        parse.bench_function(name, |b| b.iter(|| patch::parse_request(black_box(&body)).expect("parses")));
    }
    parse.finish();

    let mut apply = c.benchmark_group("patch/apply");
    for (name, body) in requests() {
        let ops = patch::parse_request(&body).expect("parses");
        apply.bench_function(name, |b| {
            b.iter_batched_ref(
                || user.clone(),
                |u| patch::apply(ResourceKind::User, u, black_box(&ops)).expect("applies"),
                BatchSize::SmallInput,
            )
        });
    }
    apply.finish();

    // A group PATCH: membership operations are split off (each becomes one key write).
    let members: Vec<Value> = (0..100).map(|i| json!({"$ref": null, "value": format!("{i:032x}")})).collect();
    let body = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": "displayName", "value": "Renamed"},
        {"op": "Add", "path": "members", "value": members},
        {"op": "Remove", "path": "members", "value": [{"$ref": null, "value": format!("{:032x}", 7)}]},
        {"op": "remove", "path": format!("members[value eq \"{:032x}\"]", 8)}
    ]});
    c.bench_function("patch/split_members 100 adds + 2 removes", |b| {
        b.iter_batched(
            || patch::parse_request(&body).expect("parses"),
            |ops| patch::split_members(black_box(ops)).expect("splits"),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
