#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a failed unwrap is a failed test
//! `consistency::check`: silent on what the API writes (the Entra lifecycle, in both
//! dialects), and each kind of damage to a store is reported as its typed problem.

mod support;

use scim_edge_core::consistency::{check, ProblemKind, Severity};
use scim_edge_core::keys::{self, Index, List};
use scim_edge_core::testing::scenario::{entra_lifecycle, Dialect, Target};
use scim_edge_core::{Condition, Store};
use serde_json::json;
use support::{block_on, patch, Host, ADMIN};

struct Core<'h>(&'h Host);

impl Target for Core<'_> {
    async fn send(&mut self, req: http::Request<bytes::Bytes>) -> http::Response<bytes::Bytes> {
        let h = self.0;
        h.clock.advance(10);
        let env =
            scim_edge_core::Env { store: &h.store, clock: &h.clock, random: &h.random, config: &h.config };
        scim_edge_core::handle(req, &env).await
    }
    async fn stored(&mut self, key: &str) -> Option<Vec<u8>> {
        self.0.store.raw(key)
    }
    fn admin_token(&self) -> String {
        ADMIN.to_owned()
    }
}

#[test]
fn the_entra_lifecycle_leaves_a_consistent_store() {
    let host = Host::new();
    for dialect in [Dialect::Default, Dialect::AadOptScim062020] {
        let report = block_on(entra_lifecycle(&mut Core(&host), dialect));
        assert!(report.is_ok(), "{}", report.err().map(|e| e.to_string()).unwrap_or_default());
    }
    let r = check(host.store.entries());
    assert!(r.problems.is_empty(), "{r}");
    assert!(r.tenants >= 2 && r.users > 0, "{r}");
}

/// A tenant with two users (`alice` in group `Staff`), and the ids.
fn world() -> (Host, String, String, String, String) {
    world_with(Host::new())
}

fn world_with(host: Host) -> (Host, String, String, String, String) {
    let t = host.tenant("acme");
    let alice = host.create_user(&t, "alice@acme.example");
    let bob = host.create_user(&t, "bob@acme.example");
    let staff = host.create_group(&t, "Staff", &[&alice]);
    let (s, _) = host.scim(
        &t,
        "PATCH",
        &format!("Users/{alice}"),
        Some(patch(json!([{"op": "add", "path": "externalId", "value": "ext-a"}]))),
    );
    assert_eq!(s, 200);
    host.assert_consistent();
    (host, t.connection, alice, bob, staff)
}

fn kinds(host: &Host) -> Vec<ProblemKind> {
    check(host.store.entries()).problems.into_iter().map(|p| p.kind).collect()
}

fn put(host: &Host, key: &str, value: &[u8]) {
    block_on(host.store.put(key, value, Condition::Any)).unwrap();
}

fn del(host: &Host, key: &str) {
    block_on(host.store.delete(key, Condition::Any)).unwrap();
}

#[test]
fn a_missing_index_entry_and_a_dangling_one() {
    let (host, _, alice, _, _) = world();
    let ix = keys::index("acme", Index::UserName, "alice@acme.example");
    del(&host, &ix);
    assert!(kinds(&host).iter().any(|k| matches!(k, ProblemKind::NotIndexed { index: Index::UserName, .. })));
    put(&host, &ix, alice.as_bytes());
    // A create that failed after claiming its userName leaves this behind: garbage, since the
    // next claim of the name takes it over.
    put(
        &host,
        &keys::index("acme", Index::UserName, "ghost@acme.example"),
        b"0123456789abcdef0123456789abcdef",
    );
    let r = check(host.store.entries());
    assert_eq!(r.problems.len(), 1, "{r}");
    assert!(matches!(r.problems[0].kind, ProblemKind::IndexDangling { .. }));
    assert_eq!(r.problems[0].severity(), Severity::Garbage);
    assert!(!r.has_errors());
    let t = host.connect("acme");
    assert_eq!(host.create_user(&t, "Ghost@acme.example").len(), 32);
    assert!(check(host.store.entries()).problems.is_empty());
}

#[test]
fn a_stale_index_entry_and_a_duplicate_user_name() {
    let (host, _, alice, bob, _) = world();
    // bob renamed to ALICE behind the index's back: two users share a userName.
    let key = keys::user("acme", &bob);
    let mut rec: serde_json::Value = serde_json::from_slice(&host.store.raw(&key).unwrap()).unwrap();
    rec["attributes"]["userName"] = json!("ALICE@acme.example");
    put(&host, &key, rec.to_string().as_bytes());
    let k = kinds(&host);
    assert!(
        k.iter()
            .any(|k| matches!(k, ProblemKind::Duplicate { index: Index::UserName, ids } if ids.len() == 2
        && ids.contains(&alice) && ids.contains(&bob))),
        "{k:?}"
    );
    assert!(k.iter().any(|k| matches!(k, ProblemKind::IndexStale { id } if *id == bob)), "{k:?}");
}

#[test]
fn list_damage() {
    let (host, _, alice, bob, _) = world();
    // A pos key pointing at the wrong place, then a user missing from the users list.
    put(&host, &List::Users.pos_key("acme", &alice), b"1");
    let k = kinds(&host);
    assert!(k.iter().any(|k| matches!(k, ProblemKind::PositionWrong { id, recorded: 1, actual: Some(0), .. } if *id == alice)), "{k:?}");
    put(&host, &List::Users.pos_key("acme", &alice), b"0");
    put(&host, &List::Users.chunk_key("acme", 0), json!([alice]).to_string().as_bytes());
    put(&host, &List::Users.len_key("acme"), b"1");
    let k = kinds(&host);
    assert!(k.iter().any(|k| matches!(k, ProblemKind::NotListed { id, .. } if *id == bob)), "{k:?}");
    assert!(
        k.iter().any(|k| matches!(k, ProblemKind::PositionBeyondEnd { id, recorded: 1, .. } if *id == bob)),
        "{k:?}"
    );
    put(&host, &List::Users.chunk_key("acme", 3), b"[]");
    assert!(kinds(&host).iter().any(|k| matches!(k, ProblemKind::ChunkBeyondEnd { n: 3, .. })));
    put(&host, &List::Users.chunk_key("acme", 0), json!([alice, alice]).to_string().as_bytes());
    put(&host, &List::Users.len_key("acme"), b"2");
    assert!(kinds(&host).iter().any(|k| matches!(k, ProblemKind::ListedTwice { .. })));
}

#[test]
fn membership_disagreements() {
    let (host, _, alice, bob, staff) = world();
    // Membership key without the user's group set or the member list.
    put(&host, &keys::membership("acme", &staff, &bob), b"1");
    let k = kinds(&host);
    assert!(
        k.iter().any(|k| matches!(k, ProblemKind::MembershipNotInUserGroups { user, .. } if *user == bob)),
        "{k:?}"
    );
    assert!(k.iter().any(|k| matches!(k, ProblemKind::NotListed { id, .. } if *id == bob)), "{k:?}");
    del(&host, &keys::membership("acme", &staff, &bob));
    // The user's group set names a group without the membership key.
    del(&host, &keys::membership("acme", &staff, &alice));
    let k = kinds(&host);
    assert!(
        k.iter().any(|k| matches!(k, ProblemKind::UserGroupsExtra { user, .. } if *user == alice)),
        "{k:?}"
    );
    assert!(k.iter().any(|k| matches!(k, ProblemKind::ListedMissing { id, .. } if *id == alice)), "{k:?}");
    // A membership of a user that does not exist.
    let ghost = "0123456789abcdef0123456789abcdef";
    put(&host, &keys::membership("acme", &staff, ghost), b"1");
    assert!(kinds(&host)
        .iter()
        .any(|k| matches!(k, ProblemKind::MembershipDangling { user, .. } if user == ghost)));
}

/// The connection record alone decides a SCIM request, so the one a plan change turned off
/// must say so, and the current one must not.
#[test]
fn a_connection_turned_off_must_be_marked_off_and_the_current_one_not() {
    let (host, conn, _, _, _) = world();
    assert_eq!(host.send("PUT", "/admin/v1/tenants/acme", ADMIN, Some(json!({"plan": "basic"}))).0, 200);
    assert!(kinds(&host).is_empty());
    let key = keys::connection(&conn);
    let mut record: serde_json::Value = serde_json::from_slice(&host.store.raw(&key).unwrap()).unwrap();
    assert_eq!(record["off"], "basic");
    record.as_object_mut().unwrap().remove("off");
    put(&host, &key, record.to_string().as_bytes());
    assert!(kinds(&host).iter().any(|k| matches!(k, ProblemKind::ConnectionNotOff { .. })));

    let (host, conn, _, _, _) = world();
    let key = keys::connection(&conn);
    let mut record: serde_json::Value = serde_json::from_slice(&host.store.raw(&key).unwrap()).unwrap();
    record["off"] = json!("basic");
    put(&host, &key, record.to_string().as_bytes());
    assert!(kinds(&host).iter().any(|k| matches!(k, ProblemKind::ConnectionOff { .. })));
}

#[test]
fn tenants_connections_foreign_and_corrupt_keys() {
    let (host, conn, _, _, _) = world();
    del(&host, &keys::connection(&conn));
    assert!(kinds(&host).iter().any(|k| matches!(k, ProblemKind::ConnectionMissing { .. })));
    put(
        &host,
        &keys::connection("fedcba9876543210fedcba9876543210"),
        json!({"tenant": "acme",
        "tokenSha256": "00", "createdAt": "x", "lastUsedAt": null})
        .to_string()
        .as_bytes(),
    );
    let r = check(host.store.entries());
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::ConnectionOrphan { .. })
                && p.severity() == Severity::Garbage)
    );
    put(&host, "v1/t/acme/u/not-an-id", b"{}");
    put(&host, "v1/t/acme/ix/userName/a/b", b"x");
    put(&host, "claim/v1/anything", b"\x01");
    put(&host, &keys::user("acme", "00000000000000000000000000000000"), b"{not json");
    put(&host, "v1/t/nobody/u/00000000000000000000000000000000", json!({}).to_string().as_bytes());
    let k = kinds(&host);
    assert_eq!(k.iter().filter(|k| **k == ProblemKind::UnknownKey).count(), 2, "{k:?}");
    assert!(k.iter().any(|k| matches!(k, ProblemKind::Corrupt { .. })), "{k:?}");
    let r = check(host.store.entries());
    let text = r.to_string();
    assert!(text.contains("not a key of layout v1") && text.contains("value does not decode"), "{text}");
}

/// Finding (handle_request seeds, `store_faults`): an outage between claiming a userName and
/// writing the user left an index entry pointing at nothing, and the name answered 409 for
/// ever — while Entra's match-before-create found no user, so its retries looped on 409.
/// Now the record is written first and a claim takes over entries whose record is missing.
#[test]
fn a_store_outage_at_any_point_of_a_create_never_blocks_the_user_name() {
    let mut outcomes = std::collections::BTreeMap::new();
    for n in 0..60 {
        let (host, _, _, _, _) = world();
        let t = host.connect("acme");
        let body = json!({"userName": "carol@acme.example", "externalId": "ext-carol"});
        host.store.fail_after(Some(n));
        let (first, _) = host.scim(&t, "POST", "Users", Some(body.clone()));
        host.store.set_down(false);
        host.store.fail_after(None);
        let r = check(host.store.entries());
        assert!(r.problems.iter().all(|p| p.kind != ProblemKind::UnknownKey), "n={n}: {r}");
        if first == 201 {
            // The outage may have hit only the user count that follows the write (best effort).
            assert!(
                r.problems.iter().all(|p| matches!(p.kind, ProblemKind::CountDrift { .. })),
                "n={n}: {r}"
            );
            if r.problems.is_empty() {
                break;
            }
            continue;
        }
        assert_eq!(first, 503, "n={n}");
        // The store is back, and Entra retries later (its next cycle; here past the list
        // lease the failed request may have left held, which the retry may need): it matches
        // by userName, then creates if nothing matched.
        host.clock.advance(5_000);
        let (_, found) = host.scim(&t, "GET", "Users?filter=userName%20eq%20%22carol@acme.example%22", None);
        let matched = found["totalResults"].as_u64().unwrap();
        let (retry, b) = host.scim(&t, "POST", "Users", Some(body));
        match (matched, retry) {
            (0, 201) | (1, 409) => {}
            other => panic!("n={n}: match found {}, retry answered {}: {b}", other.0, other.1),
        }
        *outcomes.entry((matched, retry)).or_insert(0) += 1;
        // What is left is garbage, or a matched user missing from unfiltered listing
        // (SECURITY.md, residual risks); never an entry blocking the name.
        let r = check(host.store.entries());
        let blocking = r.problems.iter().filter(|p| matches!(p.kind, ProblemKind::IndexDangling { .. }));
        assert_eq!(blocking.count(), 0, "n={n}: {r}");
    }
    eprintln!("(users matched, retry status) → outage points: {outcomes:?}");
    assert!(outcomes.contains_key(&(0, 201)), "{outcomes:?}");
}

/// The errors (not garbage) a check finds.
fn errors(host: &Host) -> Vec<ProblemKind> {
    check(host.store.entries())
        .problems
        .into_iter()
        .filter(|p| p.severity() == Severity::Error)
        .map(|p| p.kind)
        .collect()
}

/// Residual risk 2 of SECURITY.md, closed: a rename interrupted between claiming the new
/// value and writing the record left the value claimed by a user that does not have it, and
/// nobody could take it. Now a claim older than a minute whose record lacks the value is taken
/// over; a younger one may be a rename in progress and still answers 409.
#[test]
fn an_interrupted_rename_does_not_block_the_new_name_for_ever() {
    let mut stale_seen = 0;
    for n in 0..40 {
        let (host, _, alice, _, _) = world();
        let t = host.connect("acme");
        let rename = json!({"userName": "zed@acme.example", "externalId": "ext-a"});
        host.store.fail_after(Some(n));
        let (first, _) = host.scim(&t, "PUT", &format!("Users/{alice}"), Some(rename));
        host.store.set_down(false);
        host.store.fail_after(None);
        if first == 200 {
            break;
        }
        assert_eq!(first, 503, "n={n}");
        if !errors(&host).iter().any(|k| matches!(k, ProblemKind::IndexStale { .. })) {
            continue;
        }
        stale_seen += 1;
        // Interrupted before the record was written, the new name is left claimed; after, the
        // old one is. Either way it is the name the record does not have.
        let (_, a) = host.scim(&t, "GET", &format!("Users/{alice}"), None);
        let left =
            if a["userName"] == "alice@acme.example" { "Zed@acme.example" } else { "ALICE@acme.example" };
        let other = json!({"userName": left});
        assert_eq!(
            host.scim(&t, "POST", "Users", Some(other.clone())).0,
            409,
            "n={n}: young claims are respected"
        );
        host.clock.advance(61_000);
        let (s, b) = host.scim(&t, "POST", "Users", Some(other));
        assert_eq!(s, 201, "n={n}: {b}");
        assert!(errors(&host).is_empty(), "n={n}: {:?}", errors(&host));
    }
    assert!(stale_seen > 0, "no outage point left a stale claim: the test no longer covers the window");
}

/// Residual risk 1 of SECURITY.md, closed: a create interrupted after its record and index
/// entries were written, before it was listed, left a user that filters find and unfiltered
/// listing misses. Entra's next cycle finds it by filter and writes it; that write lists it.
#[test]
fn an_unlisted_user_is_listed_by_its_next_write() {
    let mut unlisted_seen = 0;
    for n in 0..40 {
        let (host, _, _, _, _) = world();
        let t = host.connect("acme");
        let body = json!({"userName": "carol@acme.example", "externalId": "ext-carol"});
        host.store.fail_after(Some(n));
        let (first, _) = host.scim(&t, "POST", "Users", Some(body.clone()));
        host.store.set_down(false);
        host.store.fail_after(None);
        if first == 201 {
            break;
        }
        if !errors(&host).iter().any(|k| matches!(k, ProblemKind::NotListed { .. })) {
            continue;
        }
        unlisted_seen += 1;
        let (_, found) = host.scim(&t, "GET", "Users?filter=userName%20eq%20%22carol@acme.example%22", None);
        assert_eq!(found["totalResults"], 1, "n={n}");
        let id = found["Resources"][0]["id"].as_str().unwrap().to_owned();
        let (_, all) = host.scim(&t, "GET", "Users", None);
        assert_eq!(all["totalResults"], 2, "n={n}: unlisted before the write");
        // A lease the failed create could not release expires by itself (residual risk 3).
        host.clock.advance(3_000);
        // Entra re-sends the same values: no change, but the user is listed.
        assert_eq!(host.scim(&t, "PUT", &format!("Users/{id}"), Some(body)).0, 200);
        let (_, all) = host.scim(&t, "GET", "Users", None);
        assert_eq!(all["totalResults"], 3, "n={n}");
        assert!(errors(&host).is_empty(), "n={n}: {:?}", errors(&host));
    }
    assert!(unlisted_seen > 0, "no outage point left an unlisted user: the test no longer covers the window");
}

/// A shared entry (externalId, group displayName) names several records: no problem while
/// each has the value; a holder that does not exist or no longer has it is reported alone.
#[test]
fn a_shared_index_entry_is_checked_holder_by_holder() {
    let (host, _, alice, bob, _) = world();
    let t = host.connect("acme");
    let add = Some(patch(json!([{"op": "add", "path": "externalId", "value": "ext-a"}])));
    assert_eq!(host.scim(&t, "PATCH", &format!("Users/{bob}"), add).0, 200);
    let other_staff = host.create_group(&t, "STAFF", &[]);
    assert!(check(host.store.entries()).problems.is_empty());
    let entry = keys::index("acme", Index::UserExternalId, "ext-a");
    let holders: Vec<String> = scim_edge_core::index::parse_entry(&host.store.raw(&entry).unwrap())
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(holders, vec![alice.clone(), bob.clone()]);
    let names = keys::index("acme", Index::GroupName, "staff");
    assert_eq!(scim_edge_core::index::parse_entry(&host.store.raw(&names).unwrap()).len(), 2);

    // bob's externalId changed behind the index's back, and the other Staff group vanished.
    let key = keys::user("acme", &bob);
    let mut rec: serde_json::Value = serde_json::from_slice(&host.store.raw(&key).unwrap()).unwrap();
    rec["attributes"]["externalId"] = json!("ext-b");
    put(&host, &key, rec.to_string().as_bytes());
    del(&host, &keys::group("acme", &other_staff));
    let k = kinds(&host);
    assert!(k.iter().any(|k| matches!(k, ProblemKind::IndexStale { id } if *id == bob)), "{k:?}");
    assert!(k.iter().any(|k| matches!(k, ProblemKind::IndexDangling { id } if *id == other_staff)), "{k:?}");
    assert!(!k.iter().any(
        |k| matches!(k, ProblemKind::IndexStale { id } | ProblemKind::IndexDangling { id } if *id == alice)
    ));
    assert!(!k.iter().any(|k| matches!(k, ProblemKind::Duplicate { .. })), "{k:?}");
}

/// A group DELETE removes the record first (conditional on the version `If-Match` was checked
/// against), then the rest: after an outage at any point of it, Entra's retry finishes the
/// cleanup — no membership, member list or group list entry is left of the group. (An outage
/// in the middle of one list change's in-order writes can still leave that list's own chunk
/// and positions out of step, as for every list change on a store without transactions.)
#[test]
fn a_store_outage_at_any_point_of_a_group_delete_is_finished_by_the_retry() {
    let mut hit = 0;
    for n in 0..60 {
        let (host, _, _, _, staff) = world();
        let t = host.connect("acme");
        host.store.fail_after(Some(n));
        let (first, _) = host.scim(&t, "DELETE", &format!("Groups/{staff}"), None);
        host.store.set_down(false);
        host.store.fail_after(None);
        if first == 204 {
            let r = check(host.store.entries());
            assert!(!r.has_errors(), "n={n}: {r}");
            break;
        }
        assert_eq!(first, 503, "n={n}");
        hit += 1;
        // A list lease the outage left held expires (2 s) before Entra retries.
        host.clock.advance(5_000);
        let (retry, b) = host.scim(&t, "DELETE", &format!("Groups/{staff}"), None);
        assert!(retry == 204 || retry == 404, "n={n}: {retry} {b}");
        let (s, _) = host.scim(&t, "GET", &format!("Groups/{staff}"), None);
        assert_eq!(s, 404, "n={n}");
        let r = check(host.store.entries());
        let list_internal = |k: &ProblemKind| {
            matches!(
                k,
                ProblemKind::ChunkLength { .. }
                    | ProblemKind::PositionWrong { .. }
                    | ProblemKind::PositionMissing { .. }
            )
        };
        let left: Vec<_> = r
            .problems
            .iter()
            .filter(|p| p.severity() == Severity::Error && !list_internal(&p.kind))
            .collect();
        assert!(left.is_empty(), "n={n}: {r}");
        assert!(
            !r.problems.iter().any(|p| p.key.contains(&staff) && p.severity() == Severity::Error),
            "n={n}: {r}"
        );
    }
    assert!(hit > 5, "the outage hit {hit} points of the delete");
}

/// An add of a member cut short by a host's death, after a concurrent delete of that user had
/// cleaned up (so the add's own undo never ran), leaves a membership of a user that is gone.
/// The identity provider retries the add: its 400 (no such user) undoes the leftover first.
#[test]
fn a_retried_add_of_a_deleted_member_undoes_what_the_cut_short_add_left() {
    let (host, _, _, bob, staff) = world();
    let t = host.connect("acme");
    assert_eq!(host.scim(&t, "DELETE", &format!("Users/{bob}"), None).0, 204);
    host.assert_consistent();
    // What the cut-short add wrote before it died: the membership, the member list position
    // and the user's group set.
    put(&host, &keys::membership("acme", &staff, &bob), b"1");
    put(&host, &keys::user_groups("acme", &bob), json!([staff]).to_string().as_bytes());
    let env = scim_edge_core::Env {
        store: &host.store,
        clock: &host.clock,
        random: &host.random,
        config: &host.config,
    };
    block_on(scim_edge_core::list::push(
        &env,
        "acme",
        &List::Members(staff.clone()),
        std::slice::from_ref(&bob),
    ))
    .unwrap();
    assert!(!kinds(&host).is_empty(), "the leftover is a problem: {}", check(host.store.entries()));
    let (s, g) = host.scim(&t, "GET", &format!("Groups/{staff}"), None);
    assert!(s == 200 && g.to_string().contains(&bob), "{g}");

    let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": bob}]}]));
    let (s, b) = host.scim(&t, "PATCH", &format!("Groups/{staff}"), Some(add));
    assert_eq!((s, b["scimType"].as_str()), (400, Some("invalidValue")), "{b}");
    host.assert_consistent();
    let (_, g) = host.scim(&t, "GET", &format!("Groups/{staff}"), None);
    assert!(!g.to_string().contains(&bob), "{g}");
}

/// Removing a user by hand and lifting its block leave a consistent store; each broken anchor
/// of a block is reported as its typed problem.
#[test]
fn blocks_are_checked_and_a_broken_anchor_is_reported() {
    // `externalId` unique: the block holds an `externalId` key too (`blocks` module doc).
    let (host, _, alice, bob, _) = world_with(Host::with_config(r#""uniqueness": {"externalId": true}"#));
    let users = "/admin/v1/tenants/acme/users";
    assert_eq!(host.send("DELETE", &format!("{users}/{alice}"), ADMIN, None).0, 204);
    host.assert_consistent();
    let anchor = |host: &Host, attr: &str| {
        errors(host)
            .iter()
            .any(|k| matches!(k, ProblemKind::BlockNotAnchored { attribute, .. } if attribute == attr))
    };

    // The userName entry no longer names the block: SCIM could create alice again.
    let entry = keys::index("acme", Index::UserName, "alice@acme.example");
    let saved = host.store.raw(&entry).unwrap();
    block_on(host.store.delete(&entry, Condition::Any)).unwrap();
    assert!(anchor(&host, "userName"), "{}", check(host.store.entries()));
    block_on(host.store.put(&entry, &saved, Condition::Any)).unwrap();
    host.assert_consistent();

    // Likewise the externalId key; one naming no such block is garbage.
    let ext = keys::block_external_id("acme", "ext-a");
    block_on(host.store.delete(&ext, Condition::Any)).unwrap();
    assert!(anchor(&host, "externalId"), "{}", check(host.store.entries()));
    block_on(host.store.put(&ext, alice.as_bytes(), Condition::Any)).unwrap();
    let stray = keys::block_external_id("acme", "ext-stray");
    block_on(host.store.put(&stray, alice.as_bytes(), Condition::Any)).unwrap();
    let r = check(host.store.entries());
    assert!(
        r.problems.iter().any(|p| p.key == stray
            && matches!(p.kind, ProblemKind::BlockKeyDangling { .. })
            && p.severity() == Severity::Garbage),
        "{r}"
    );
    block_on(host.store.delete(&stray, Condition::Any)).unwrap();
    host.assert_consistent();

    // A block on a user that still exists (a removal cut short before deleting the user).
    let block = host.store.raw(&keys::block("acme", &alice)).unwrap();
    let mut b: serde_json::Value = serde_json::from_slice(&block).unwrap();
    b["id"] = json!(bob);
    b["userName"] = json!("bob@acme.example");
    b["externalId"] = serde_json::Value::Null;
    block_on(host.store.put(&keys::block("acme", &bob), b.to_string().as_bytes(), Condition::Any)).unwrap();
    let errs = errors(&host);
    assert!(
        errs.iter().any(|k| matches!(k, ProblemKind::BlockedUserPresent { id } if *id == bob)),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|k| matches!(k, ProblemKind::NotListed { list, .. } if list == "blocks")),
        "{errs:?}"
    );
    block_on(host.store.delete(&keys::block("acme", &bob), Condition::Any)).unwrap();

    // Lifted: nothing of the block is left.
    assert_eq!(host.send("DELETE", &format!("/admin/v1/tenants/acme/blocks/{alice}"), ADMIN, None).0, 204);
    host.assert_consistent();
    let left: Vec<String> = host
        .store
        .entries()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| {
            matches!(keys::parse(k), Some(keys::Key::Block { .. } | keys::Key::BlockExternalId { .. }))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(host.store.raw(&List::Blocks.len_key("acme")).as_deref(), Some(&b"0"[..]));
}

/// An outage at any point of a removal by hand never lets the user back without its block:
/// the user is still there (and Entra's create of it is refused as a duplicate or by the
/// block), or removed and blocked. The administrator's retry completes the removal.
#[test]
fn a_store_outage_at_any_point_of_a_removal_never_lets_the_user_back() {
    let mut outcomes = std::collections::BTreeMap::new();
    for n in 0..80 {
        let (host, _, alice, _, staff) = world();
        let t = host.connect("acme");
        let uri = format!("/admin/v1/tenants/acme/users/{alice}");
        host.store.fail_after(Some(n));
        let (first, _) = host.send("DELETE", &uri, ADMIN, None);
        host.store.set_down(false);
        host.store.fail_after(None);
        let body = json!({"userName": "ALICE@acme.example", "externalId": "ext-a"});
        let (create, b) = host.scim(&t, "POST", "Users", Some(body.clone()));
        assert!(create == 409 || create == 403, "n={n}: {create} {b}");
        let present = host.store.raw(&keys::user("acme", &alice)).is_some();
        *outcomes.entry((first, present, create)).or_insert(0) += 1;
        if !present {
            assert_eq!(create, 403, "n={n}: removed, so refused by the block: {b}");
        }
        if first == 204 && outcomes.len() > 1 {
            host.assert_consistent();
            break;
        }
        // The administrator tries again (after a list lease the outage left has expired):
        // removed and blocked. (A list change the outage cut in half on this store, which
        // applies a change's writes one by one, is the list's residual risk, not the block's.)
        host.clock.advance(3_000);
        let (again, b) = host.send("DELETE", &uri, ADMIN, None);
        assert_eq!(again, 204, "n={n}: {b}");
        assert!(host.store.raw(&keys::user("acme", &alice)).is_none(), "n={n}");
        let block_problems: Vec<ProblemKind> = errors(&host)
            .into_iter()
            .filter(|k| {
                matches!(
                    k,
                    ProblemKind::BlockNotAnchored { .. }
                        | ProblemKind::BlockedUserPresent { .. }
                        | ProblemKind::MembershipDangling { .. }
                        | ProblemKind::IndexStale { .. }
                        | ProblemKind::NotIndexed { .. }
                )
            })
            .collect();
        assert!(block_problems.is_empty(), "n={n}: {}", check(host.store.entries()));
        let (create, b) = host.scim(&t, "POST", "Users", Some(body));
        assert_eq!(create, 403, "n={n}: {b}");
        let (_, g) = host.scim(&t, "GET", &format!("Groups/{staff}"), None);
        assert!(!g.to_string().contains(&alice), "n={n}: {g}");
    }
    eprintln!("(first answer, user still present, Entra's create) → outage points: {outcomes:?}");
    assert!(outcomes.keys().any(|(first, present, _)| *first == 503 && !present), "{outcomes:?}");
}

/// Found by the etcd cluster chaos test: a membership change interrupted by an outage after the
/// membership key was written (or deleted) and before the group's member list was, answered
/// 503; Entra's retry then found the key as it wanted it and did nothing, and the group listed
/// a member it did not have (or missed one it had). The retry now finishes the change.
#[test]
fn a_retried_membership_change_finishes_one_an_outage_interrupted() {
    let members = |host: &Host, t: &support::Tenant, gid: &str| -> Vec<String> {
        let (s, g) = host.scim(t, "GET", &format!("Groups/{gid}"), None);
        assert_eq!(s, 200, "{g}");
        g["members"]
            .as_array()
            .map(|m| m.iter().map(|m| m["value"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let mut interrupted = 0;
    for (op, n) in ["add", "remove"].into_iter().flat_map(|op| (0..40).map(move |n| (op, n))) {
        let (host, _, alice, bob, staff) = world();
        let t = host.connect("acme");
        let who = if op == "add" { &bob } else { &alice };
        let ops = match op {
            "add" => json!([{"op": "add", "path": "members", "value": [{"value": who}]}]),
            _ => json!([{"op": "remove", "path": format!("members[value eq \"{who}\"]")}]),
        };
        host.store.fail_after(Some(n));
        let (first, _) = host.scim(&t, "PATCH", &format!("Groups/{staff}"), Some(patch(ops.clone())));
        host.store.set_down(false);
        host.store.fail_after(None);
        if first != 503 {
            assert!(matches!(first, 200 | 204), "{op} n={n}: {first}");
            continue;
        }
        interrupted += 1;
        // Entra retries later: a list lease the interrupted request held has expired.
        host.clock.advance(61_000);
        let (retry, b) = host.scim(&t, "PATCH", &format!("Groups/{staff}"), Some(patch(ops)));
        assert!(matches!(retry, 200 | 204), "{op} n={n}: retry {retry} {b}");
        let now = members(&host, &t, &staff);
        let count = now.iter().filter(|m| *m == who).count();
        assert_eq!(count, usize::from(op == "add"), "{op} n={n}: members {now:?}");
        // A list's own writes torn by the outage (MemStore applies a batch one write at a
        // time, as Spin's stores do; etcd applies it as one transaction) are the list's
        // business: here, the membership must agree everywhere else.
        let errors: Vec<_> = errors(&host)
            .into_iter()
            .filter(|k| !matches!(k, ProblemKind::ChunkLength { .. } | ProblemKind::PositionWrong { .. }))
            .collect();
        assert!(errors.is_empty(), "{op} n={n}: {errors:?}");
    }
    assert!(interrupted > 4, "the outages interrupted too few changes ({interrupted})");
}
