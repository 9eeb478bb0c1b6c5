#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a failed unwrap is a failed test
//! Per-request store work must not grow with the tenant's size: the same requests against a
//! tenant of 100 users and one of 10,000 users touch the same number of keys.
//!
//! Values of `externalId` and group `displayName` may be shared (RFC 7643 makes neither
//! unique): a lookup by a shared value reads its index entry and every record it names, so
//! its work grows with the number of resources sharing that value — never with the tenant —
//! and that number is capped at `index::MAX_HOLDERS` (1,000).

mod common;

use common::{tenant, Host, ADMIN};
use serde_json::{json, Value};

/// Users sharing one externalId in every tenant measured.
const SHARED: usize = 100;

fn costs(users: usize) -> Vec<(&'static str, u64)> {
    let h = Host::new();
    let (base, tok, ids) = tenant(&h, users);
    let mut sharers = Vec::new();
    for i in 0..SHARED {
        let body = json!({"userName": format!("sharer{i}@example.com"), "externalId": "shared"});
        let (s, u) = h.send("POST", &format!("{base}/Users"), &tok, Some(body));
        assert_eq!(s, 201, "{u}");
        sharers.push(u["id"].as_str().unwrap().to_owned());
    }
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
    // Another person with the removed user's externalId: not blocked (not unique by default).
    let sharer_of_removed =
        json!({"userName": "someone.else@example.com", "externalId": format!("ext-{}", mid + 2)});
    let blocks = "/admin/v1/tenants/t/blocks";
    out.extend([
        (
            "remove by hand",
            h.cost("DELETE", &format!("/admin/v1/tenants/t/users/{removed}"), ADMIN, None, 204),
        ),
        ("create blocked userName", h.cost("POST", &format!("{base}/Users"), &tok, Some(again), 403)),
        (
            "create removed user's externalId",
            h.cost("POST", &format!("{base}/Users"), &tok, Some(sharer_of_removed), 201),
        ),
        ("patch blocked", h.cost("PATCH", &format!("{base}/Users/{removed}"), &tok, Some(disable), 403)),
        ("list blocks", h.cost("GET", blocks, ADMIN, None, 200)),
        ("unblock", h.cost("DELETE", &format!("{blocks}/{removed}"), ADMIN, None, 204)),
    ]);
    let sharer = json!({"userName": "one-more@example.com", "externalId": "shared"});
    out.push((
        "create with shared externalId",
        h.cost("POST", &format!("{base}/Users"), &tok, Some(sharer), 201),
    ));
    let move_away = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                           "Operations":[{"op":"replace","path":"externalId","value":"elsewhere"}]});
    out.push((
        "move off shared externalId",
        h.cost("PATCH", &format!("{base}/Users/{}", sharers[SHARED / 2]), &tok, Some(move_away), 200),
    ));
    out.push(("delete sharer", h.cost("DELETE", &format!("{base}/Users/{}", sharers[1]), &tok, None, 204)));
    let (s, _) = h.send("POST", &format!("{base}/Groups"), &tok, Some(json!({"displayName": "BIG"})));
    assert_eq!(s, 201);
    out.push((
        "filter shared displayName",
        h.cost("GET", &format!("{base}/Groups?filter=displayName%20eq%20%22big%22"), &tok, None, 200),
    ));
    // Reads every sharer's record: bounded by SHARED, checked below.
    out.push(("filter shared externalId", h.cost("GET", &q("externalId eq \"shared\""), &tok, None, 200)));
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
        // Removing a user from a group gives the group a new version (its ETag): a read and a
        // write per group the user is in (one here). This store's `apply` is not atomic (as
        // Spin's is not): each list change logs its intent in the list's lease first (one write
        // more per list; removing a user changes three).
        let bound = match *name {
            "filter shared externalId" => SHARED as u64 + 10,
            "remove by hand" | "delete member user" => 50 + 8,
            _ => 50,
        };
        assert!(*s <= bound, "{name} costs {s} store operations");
        // Equal, except that each swap-remove may read and write one more list chunk when the
        // hole and the list's end are in different chunks (never the case in a 100-id list);
        // deleting a group member does two swap-removes.
        assert!(l <= &(s + 4), "{name}: {s} store ops with 100 users but {l} with 10,000");
    }
}

/// A value is shared by at most `MAX_HOLDERS` resources, so a lookup by it reads at most that
/// many records; one more is refused with a detail saying why, and a place freed is reusable.
#[test]
fn a_value_is_shared_by_at_most_max_holders() {
    use scim_edge_core::index::MAX_HOLDERS;
    let h = Host::new();
    let (base, tok, _) = tenant(&h, 0);
    let mut ids = Vec::new();
    for i in 0..MAX_HOLDERS {
        let body = json!({"userName": format!("u{i}@example.com"), "externalId": "everyone"});
        let (s, u) = h.send("POST", &format!("{base}/Users"), &tok, Some(body));
        assert_eq!(s, 201, "{u}");
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let late = json!({"userName": "late@example.com", "externalId": "everyone"});
    let (s, e) = h.send("POST", &format!("{base}/Users"), &tok, Some(late.clone()));
    assert_eq!((s, e["scimType"].as_str()), (409, Some("uniqueness")), "{e}");
    assert!(e["detail"].as_str().unwrap().contains("shared by 1000"), "{e}");
    let filter = format!("{base}/Users?filter=externalId%20eq%20%22everyone%22&count=10");
    let cost = h.cost("GET", &filter, &tok, None, 200);
    assert!(cost <= MAX_HOLDERS as u64 + 10, "a lookup of a full value costs {cost} store operations");
    let (_, l) = h.send("GET", &filter, &tok, None);
    assert_eq!(l["totalResults"].as_u64(), Some(MAX_HOLDERS as u64));
    assert_eq!(h.send("DELETE", &format!("{base}/Users/{}", ids[7]), &tok, None).0, 204);
    assert_eq!(h.send("POST", &format!("{base}/Users"), &tok, Some(late)).0, 201);
}

/// The users page's search (the admin API's filtered user list) is not indexed: it reads at
/// most `SCAN_LIMIT` users a request and says where to go on, so a search of a large tenant is
/// a few bounded requests, never one whole-tenant read; an exact userName is found at once
/// through its index.
#[test]
fn a_user_search_reads_at_most_scan_limit_users_a_request() {
    use scim_edge_core::admin::SCAN_LIMIT;
    let h = Host::new();
    let n = 2 * SCAN_LIMIT as usize + 500;
    let (_, _, ids) = tenant(&h, n);
    let search = |q: &str, from: Option<u64>| {
        let from = from.map(|f| format!("&scanFrom={f}")).unwrap_or_default();
        format!("/admin/v1/tenants/t/users?q={q}{from}")
    };
    let costed = |uri: &str| {
        let before = h.store.ops();
        let (s, page) = h.send("GET", uri, ADMIN, None);
        assert_eq!(s, 200, "{uri}: {page}");
        let cost = h.store.ops() - before;
        assert!(cost <= SCAN_LIMIT + 40, "{uri} costs {cost} store operations");
        assert_eq!(page["scanned"]["of"], n as u64, "{page}");
        page
    };
    // Part of the last user's userName: not in the first two scans, found in the third.
    let part = format!("USER{}@", n - 1);
    let (mut from, mut pages) = (None, Vec::new());
    loop {
        let page = costed(&search(&part, from));
        from = page["nextScanFrom"].as_u64();
        pages.push(page);
        if from.is_none() {
            break;
        }
    }
    let found: Vec<Vec<&str>> = pages
        .iter()
        .map(|p| p["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect())
        .collect();
    assert_eq!(found, vec![vec![], vec![], vec![ids[n - 1].as_str()]]);
    assert_eq!(pages[0]["scanned"], json!({"from": 0, "to": SCAN_LIMIT, "of": n}));
    assert_eq!(pages[0]["totalResults"], Value::Null, "unknown until the whole tenant is searched");
    // The whole userName: found in the first request, through the index, and listed once.
    let page = costed(&search(&format!("user{}@example.com", n - 1), None));
    assert_eq!(page["users"][0]["id"], ids[n - 1].as_str());
    let later = costed(&search(&format!("user{}@example.com", n - 1), Some(2 * SCAN_LIMIT)));
    assert_eq!(later["users"], json!([]), "not listed again when the scan reaches it");
    assert_eq!(later["nextScanFrom"], Value::Null);
    // A bad position is a SCIM error.
    let (s, e) = h.send("GET", "/admin/v1/tenants/t/users?q=x&scanFrom=-1", ADMIN, None);
    assert_eq!((s, e["scimType"].as_str()), (400, Some("invalidValue")), "{e}");
}
