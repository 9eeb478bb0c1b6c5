//! RFC 7644 filters and PATCH paths: parsing never panics, the canonical printer round-trips
//! (`parse(print(f)) == f`), and evaluating a parsed filter against a realistic user (and
//! the query planner's walks) never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scim_edge_core::scim::filter::{self, AttrPath};
use scim_edge_core::scim::schema::{self, ResourceKind};
use serde_json::{json, Value};

fn user() -> &'static Value {
    static USER: OnceLock<Value> = OnceLock::new();
    USER.get_or_init(|| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "0123456789abcdef0123456789abcdef",
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_a1b2c3@testuser.com",
            "active": true,
            "displayName": "Test User",
            "emails": [{"primary": true, "type": "work", "value": "Test_User@testuser.com"},
                       {"type": "home", "value": "home@example.org"}],
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "phoneNumbers": [{"type": "mobile", "value": "+1 555 0100"}],
            "members": [{"value": "u1"}, {"value": "u2"}],
            "age": 42, "score": 1.5e10, "nothing": null, "empty": [], "obj": {},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Sales", "employeeNumber": "701984",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            },
            "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00.000Z",
                     "lastModified": "2026-01-02T03:04:05.678Z", "version": "W/\"3\""}
        })
    })
}

fn case_exact(p: &AttrPath) -> bool {
    schema::case_exact(ResourceKind::User, p)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(f) = filter::parse(s) {
        let printed = f.to_string();
        match filter::parse(&printed) {
            Ok(again) => assert_eq!(again, f, "print/parse round trip of {s:?} via {printed:?}"),
            Err(e) => panic!("the printed form {printed:?} of {s:?} does not parse: {e}"),
        }
        let _ = filter::matches(&f, user(), &case_exact);
        let _ = filter::matches(&f, &json!({}), &case_exact);
        let _ = filter::matches(&f, &json!([1, "x", null]), &case_exact);
        let _ = filter::required_equalities(&f);
        let _ = filter::compared_values(&f, "members");
    }
    if let Ok(p) = filter::parse_path(s) {
        let printed = p.to_string();
        match filter::parse_path(&printed) {
            Ok(again) => assert_eq!(again, p, "path round trip of {s:?} via {printed:?}"),
            Err(e) => panic!("the printed path {printed:?} of {s:?} does not parse: {e}"),
        }
    }
});
