#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a failed unwrap is a failed test
//! Per-request store work must not grow with the tenant's size: the same requests against a
//! tenant of 100 users and one of 10,000 users touch the same number of keys.

mod common;

use common::{tenant, Host, ADMIN};
use serde_json::{json, Value};

fn costs(users: usize) -> Vec<(&'static str, u64)> {
    let h = Host::new();
    let (base, tok, ids) = tenant(&h, users);
    let (s, g) = h.send("POST", &format!("{base}/Groups"), &tok, Some(json!({"displayName": "big"})));
    assert_eq!(s, 201);
    let gid = g["id"].as_str().unwrap().to_owned();
    // A large group: every user is a member.
    for chunk in ids.chunks(500) {
        let members: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        let op = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations":[{"op":"Add","path":"members","value":members}]});
        assert_eq!(h.send("PATCH", &format!("{base}/Groups/{gid}"), &tok, Some(op)).0, 204);
    }
    let mid = users / 2;
    let q = |f: &str| format!("{base}/Users?filter={}", f.replace(' ', "%20").replace('"', "%22"));
    let new_user = json!({"userName": "newcomer@example.com", "externalId": "ext-new"});
    let patch = |op: &str, uid: &str| {
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations":[{"op":op,"path":"members","value":[{"value":uid}]}]})
    };
    let disable = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations":[{"op":"Replace","path":"active","value":"False"}]});
    let mut out = vec![
        (
            "filter userName",
            h.cost("GET", &q(&format!("userName eq \"USER{mid}@example.com\"")), &tok, None, 200),
        ),
        ("filter externalId", h.cost("GET", &q(&format!("externalId eq \"ext-{mid}\"")), &tok, None, 200)),
        ("create", h.cost("POST", &format!("{base}/Users"), &tok, Some(new_user), 201)),
        (
            "patch disable",
            h.cost("PATCH", &format!("{base}/Users/{}", ids[mid]), &tok, Some(disable.clone()), 200),
        ),
        (
            "member remove",
            h.cost("PATCH", &format!("{base}/Groups/{gid}"), &tok, Some(patch("Remove", &ids[mid])), 204),
        ),
        (
            "member add",
            h.cost("PATCH", &format!("{base}/Groups/{gid}"), &tok, Some(patch("Add", &ids[mid])), 204),
        ),
        (
            "member check",
            h.cost(
                "GET",
                &format!(
                    "{base}/Groups?filter=id%20eq%20%22{gid}%22%20and%20members%20eq%20%22{}%22",
                    ids[mid]
                ),
                &tok,
                None,
                200,
            ),
        ),
        (
            "page of 10 deep",
            h.cost("GET", &format!("{base}/Users?startIndex={}&count=10", users - 39), &tok, None, 200),
        ),
        (
            "get group without members",
            h.cost("GET", &format!("{base}/Groups/{gid}?excludedAttributes=members"), &tok, None, 200),
        ),
    ];
    // Deleting a user that is in a large group.
    out.push((
        "delete member user",
        h.cost("DELETE", &format!("{base}/Users/{}", ids[mid + 1]), &tok, None, 204),
    ));
    // Removing one by hand (a block), Entra's refused create and re-enable, listing the
    // blocks, lifting one.
    let removed = &ids[mid + 2];
    let again = json!({"userName": format!("user{}@example.com", mid + 2), "externalId": "ext-other"});
    let renamed = json!({"userName": "someone.else@example.com", "externalId": format!("ext-{}", mid + 2)});
    let blocks = "/admin/v1/tenants/t/blocks";
    out.extend([
        (
            "remove by hand",
            h.cost("DELETE", &format!("/admin/v1/tenants/t/users/{removed}"), ADMIN, None, 204),
        ),
        ("create blocked userName", h.cost("POST", &format!("{base}/Users"), &tok, Some(again), 403)),
        ("create blocked externalId", h.cost("POST", &format!("{base}/Users"), &tok, Some(renamed), 403)),
        ("patch blocked", h.cost("PATCH", &format!("{base}/Users/{removed}"), &tok, Some(disable), 403)),
        ("list blocks", h.cost("GET", blocks, ADMIN, None, 200)),
        ("unblock", h.cost("DELETE", &format!("{blocks}/{removed}"), ADMIN, None, 204)),
    ]);
    out
}

#[test]
fn store_work_per_request_does_not_grow_with_the_tenant() {
    let small = costs(100);
    let large = costs(10_000);
    for ((name, s), (_, l)) in small.iter().zip(large.iter()) {
        println!("{name:28} 100 users: {s:3} store ops   10,000 users: {l:3} store ops");
        // Every request also counts itself for the connection's status (2 ops); every write
        // appends to the provisioning log (about 4) and may move the user counts (2).
        assert!(*s <= 50, "{name} costs {s} store operations");
        // Equal, except that each swap-remove may read and write one more list chunk when the
        // hole and the list's end are in different chunks (never the case in a 100-id list);
        // deleting a group member does two swap-removes.
        assert!(l <= &(s + 4), "{name}: {s} store ops with 100 users but {l} with 10,000");
    }
}
