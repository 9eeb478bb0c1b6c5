//! The RFC 7644 filter parser and evaluator (`scim::filter`), on what Entra sends (a
//! `userName`/`externalId` equality), on the RFC's own examples, and on a filter near the
//! parser's limits. `cargo bench -p scim-edge-core --bench filter`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // bench setup: a failure is a broken bench

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use scim_edge_core::scim::filter;
use scim_edge_core::scim::schema::{self, ResourceKind};
use serde_json::json;

const FILTERS: [(&str, &str); 5] = [
    ("entra userName eq", r#"userName eq "Test_User_4f0c2a3b-9d1e-4c5f-8a7b-6e2d1f0a9b8c@contoso.example""#),
    (
        "entra id and members",
        r#"id eq "3f2a9c1d7b4e4a6f8c0d2e1f3a5b7c9d" and members eq "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f""#,
    ),
    (
        "rfc complex",
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
    ),
    (
        "rfc value path",
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ),
    (
        "date range and not",
        r#"meta.lastModified gt "2011-05-13T04:42:34Z" and meta.lastModified lt "2031-05-13T04:42:34Z" and not (title pr) and active eq true"#,
    ),
];

fn user() -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "3f2a9c1d7b4e4a6f8c0d2e1f3a5b7c9d",
        "externalId": "0a21f0f2-8d2a-4f8e-8c9f-2d2e3f4a5b6c",
        "userName": "Test_User_4f0c2a3b-9d1e-4c5f-8a7b-6e2d1f0a9b8c@contoso.example",
        "userType": "Employee",
        "active": true,
        "displayName": "Test User",
        "name": {"formatted": "Test User", "familyName": "User", "givenName": "Test"},
        "emails": [{"primary": true, "type": "work", "value": "test.user@example.com"},
                   {"type": "home", "value": "test@home.example.org"}],
        "ims": [{"type": "xmpp", "value": "test@foo.com"}],
        "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00Z", "lastModified": "2026-06-01T00:00:00Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "department": "R&D"}
    })
}

fn bench(c: &mut Criterion) {
    let mut parse = c.benchmark_group("filter/parse");
    for (name, text) in FILTERS {
        parse.bench_function(name, |b| b.iter(|| filter::parse(black_box(text)).expect("parses")));
    }
    // Many terms: the parser must stay linear.
    let long = (0..100).map(|i| format!("userName eq \"u{i}@example.com\"")).collect::<Vec<_>>().join(" or ");
    parse.bench_function("100 or-terms", |b| b.iter(|| filter::parse(black_box(&long)).expect("parses")));
    parse.finish();

    let resource = user();
    let case_exact = |p: &filter::AttrPath| schema::case_exact(ResourceKind::User, p);
    let mut eval = c.benchmark_group("filter/evaluate");
    for (name, text) in FILTERS {
        let f = filter::parse(text).expect("parses");
        eval.bench_function(name, |b| {
            b.iter(|| filter::matches(black_box(&f), black_box(&resource), &case_exact))
        });
    }
    eval.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
