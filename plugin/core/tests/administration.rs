#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a failed unwrap is a failed test
//! Tenant administration through the admin API: the first administrator, acting users and
//! their roles, the users page, plans, token lifetime, the provisioning log as a change feed,
//! and the connection's status. See docs/admin-api.md.

mod support;

use scim_edge_core::consistency::Severity;
use serde_json::{json, Value};
use support::{patch, Host, Tenant, ADMIN};

/// Tenant `acme` with its first administrator and SCIM on; returns the admin's user id.
fn acme(host: &Host) -> (Tenant, String) {
    let (s, b) = host.send(
        "PUT",
        "/admin/v1/tenants/acme",
        ADMIN,
        Some(json!({"name": "Acme", "admin": {"userName": "Ada@acme.example", "displayName": "Ada Admin"}})),
    );
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["users"], json!({"active": 1, "disabled": 0}));
    let t = host.connect("acme");
    let (_, list) = host.send("GET", "/admin/v1/tenants/acme/users", ADMIN, None);
    let admin = &list["users"][0];
    assert_eq!((admin["role"].as_str(), admin["source"].as_str()), (Some("administrator"), Some("local")));
    (t, admin["id"].as_str().unwrap().to_owned())
}

fn user(host: &Host, id: &str) -> Value {
    let (s, u) = host.send("GET", &format!("/admin/v1/tenants/acme/users/{id}"), ADMIN, None);
    assert_eq!(s, 200, "{u}");
    u
}

fn log(host: &Host, query: &str) -> Value {
    let (s, b) = host.send("GET", &format!("/admin/v1/tenants/acme/log?{query}"), ADMIN, None);
    assert_eq!(s, 200, "{b}");
    b
}

fn ops(page: &Value) -> Vec<String> {
    page["entries"].as_array().unwrap().iter().map(|e| e["operation"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn entra_matches_the_local_first_administrator_by_user_name() {
    let host = Host::new();
    let (t, admin) = acme(&host);
    // Entra looks the user up first (and finds the local administrator) ...
    let (s, found) = host.scim(&t, "GET", "Users?filter=userName%20eq%20%22ada@acme.example%22", None);
    assert_eq!((s, found["totalResults"].as_u64()), (200, Some(1)));
    // ... or creates it: the same user, SCIM-managed now, still an administrator.
    let (s, u) = host.scim(
        &t,
        "POST",
        "Users",
        Some(json!({"userName": "ada@acme.example", "externalId": "e-ada", "displayName": "Ada L."})),
    );
    assert_eq!(s, 201, "{u}");
    assert_eq!(u["id"], admin.as_str());
    let a = user(&host, &admin);
    assert_eq!((a["role"].as_str(), a["source"].as_str()), (Some("administrator"), Some("scim")));
    assert_eq!(a["displayName"], "Ada L.");
    assert_eq!(ops(&log(&host, "operation=user.")), ["user.match"]);
    host.assert_consistent();
}

#[test]
fn roles_decide_what_an_acting_user_may_do() {
    let host = Host::new();
    let (t, admin) = acme(&host);
    let bob = host.create_user(&t, "bob@acme.example");
    let tech = host.create_user(&t, "tech@acme.example");
    // Provisioned users get the base role; only an administrator raises them.
    assert_eq!(user(&host, &bob)["role"], "user");
    let uri = |id: &str| format!("/admin/v1/tenants/acme/users/{id}");
    let (s, b) = host.acting(&bob, "PATCH", &uri(&tech), Some(json!({"role": "system_technician"})));
    assert_eq!(s, 403, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("needs the administrator role"), "{b}");
    let (s, b) = host.acting(&admin, "PATCH", &uri(&tech), Some(json!({"role": "system_technician"})));
    assert_eq!((s, b["role"].as_str()), (200, Some("system_technician")), "{b}");
    // A system technician manages SCIM but not users.
    let (s, b) = host.acting(&tech, "POST", "/admin/v1/tenants/acme/scim", None);
    assert_eq!(s, 201, "{b}");
    let t = Tenant {
        base: b["url"].as_str().unwrap().trim_start_matches("http://scim.test").to_owned(),
        token: b["token"].as_str().unwrap().to_owned(),
        ..t
    };
    let (s, b) = host.acting(&tech, "DELETE", &uri(&bob), None);
    assert_eq!(s, 403);
    assert!(b["detail"].as_str().unwrap().contains("administrator role"), "{b}");
    // A base user sees nothing; an unknown or disabled acting user is refused.
    for (path, method) in
        [("/scim", "GET"), ("/scim", "POST"), ("/users", "GET"), ("/log", "GET"), ("", "GET")]
    {
        let (s, b) = host.acting(&bob, method, &format!("/admin/v1/tenants/acme{path}"), None);
        assert_eq!(s, 403, "{method} {path}: {b}");
        assert!(b["detail"].as_str().unwrap().contains("administrator"), "{b}");
    }
    let (s, _) = host.acting("0123456789abcdef0123456789abcdef", "GET", "/admin/v1/tenants/acme/users", None);
    assert_eq!(s, 403);
    let (s, _) = host.acting(&admin, "GET", "/admin/v1/tenants", None);
    assert_eq!(s, 403, "listing tenants is the operator's");
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(host.scim(&t, "PATCH", &format!("Users/{tech}"), Some(off)).0, 200);
    let (s, b) = host.acting(&tech, "GET", "/admin/v1/tenants/acme/scim", None);
    assert_eq!(s, 403);
    assert!(b["detail"].as_str().unwrap().contains("disabled"), "{b}");
    // Nobody changes their own role or removes themselves.
    let (s, _) = host.acting(&admin, "PATCH", &uri(&admin), Some(json!({"role": "user"})));
    assert_eq!(s, 403);
    let (s, _) = host.acting(&admin, "DELETE", &uri(&admin), None);
    assert_eq!(s, 403);
    // Unknown roles are refused; extraRoles adds more.
    let (s, b) = host.send("PATCH", &uri(&bob), ADMIN, Some(json!({"role": "root"})));
    assert_eq!((s, b["scimType"].as_str()), (400, Some("invalidValue")));
    // Refusals are logged with the acting user.
    let refused = log(&host, "outcome=failure&operation=user.role&actor=user");
    let statuses: Vec<(&str, u64)> = refused["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"]["id"].as_str().unwrap(), e["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(statuses, [(admin.as_str(), 403), (bob.as_str(), 403)]);
    host.assert_consistent();
}

#[test]
fn a_role_survives_every_scim_write_and_removal_is_immediate() {
    let host = Host::new();
    let (t, _) = acme(&host);
    let id = host.create_user(&t, "carol@acme.example");
    let uri = format!("/admin/v1/tenants/acme/users/{id}");
    assert_eq!(host.send("PATCH", &uri, ADMIN, Some(json!({"role": "administrator"}))).0, 200);
    // Entra sends roles as data: stored, granting nothing, the role stays.
    let put = json!({"userName": "carol@acme.example", "displayName": "Carol", "active": true,
                     "roles": [{"value": "user", "primary": true}]});
    assert_eq!(host.scim(&t, "PUT", &format!("Users/{id}"), Some(put)).0, 200);
    let off = patch(json!([{"op": "replace", "path": "active", "value": "False"}]));
    assert_eq!(host.scim(&t, "PATCH", &format!("Users/{id}"), Some(off)).0, 200);
    let u = user(&host, &id);
    assert_eq!((u["role"].as_str(), u["state"].as_str()), (Some("administrator"), Some("disabled")));
    let (_, tenant) = host.send("GET", "/admin/v1/tenants/acme", ADMIN, None);
    assert_eq!(tenant["users"], json!({"active": 1, "disabled": 1}));
    // Users page filters and paging.
    let (_, page) = host.send("GET", "/admin/v1/tenants/acme/users?state=disabled", ADMIN, None);
    assert_eq!(
        (page["totalResults"].as_u64(), page["users"][0]["id"].as_str()),
        (Some(1), Some(id.as_str()))
    );
    let (_, page) = host.send("GET", "/admin/v1/tenants/acme/users?q=CAROL&source=scim", ADMIN, None);
    assert_eq!(page["totalResults"], 1);
    let (_, page) = host.send("GET", "/admin/v1/tenants/acme/users?startIndex=2&count=1", ADMIN, None);
    assert_eq!((page["totalResults"].as_u64(), page["itemsPerPage"].as_u64()), (Some(2), Some(1)));
    // Removed at once: SCIM sees a deleted user, and cannot create it again until the block
    // the removal left is lifted; then it comes back with the base role.
    assert_eq!(host.send("DELETE", &uri, ADMIN, None).0, 204);
    assert_eq!(host.scim(&t, "GET", &format!("Users/{id}"), None).0, 404);
    let (s, b) = host.scim(&t, "POST", "Users", Some(json!({"userName": "carol@acme.example"})));
    assert_eq!(s, 403, "{b}");
    assert_eq!(host.send("DELETE", &format!("/admin/v1/tenants/acme/blocks/{id}"), ADMIN, None).0, 204);
    let again = host.create_user(&t, "carol@acme.example");
    assert_ne!(again, id);
    assert_eq!(user(&host, &again)["role"], "user");
    let (_, tenant) = host.send("GET", "/admin/v1/tenants/acme", ADMIN, None);
    assert_eq!(tenant["users"], json!({"active": 2, "disabled": 0}));
    host.assert_consistent();
}

/// A block refuses its `externalId` only where the configuration makes `externalId` unique: by
/// default two people may share one (Entra fills it from `mailNickname`), and a create under
/// another `userName` with the removed user's `externalId` is another person, who must not be
/// locked out. With `uniqueness.externalId` it names one person, so it is blocked too, until
/// the block is lifted.
#[test]
fn a_block_refuses_the_external_id_only_where_it_is_unique() {
    for (config, unique) in [("", false), (r#""uniqueness": {"externalId": true}"#, true)] {
        let host = Host::with_config(config);
        let (t, _) = acme(&host);
        let dave = json!({"userName": "dave@acme.example", "externalId": "oid-dave"});
        let (s, created) = host.scim(&t, "POST", "Users", Some(dave));
        assert_eq!(s, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(host.send("DELETE", &format!("/admin/v1/tenants/acme/users/{id}"), ADMIN, None).0, 204);
        let (_, list) = host.send("GET", "/admin/v1/tenants/acme/blocks", ADMIN, None);
        assert_eq!(list["blocks"][0]["externalIdBlocked"], json!(unique), "{list}");
        host.assert_consistent();

        // The removed userName is blocked either way.
        let (s, b) = host.scim(&t, "POST", "Users", Some(json!({"userName": "Dave@acme.example"})));
        assert_eq!(s, 403, "{b}");
        let other = json!({"userName": "dan@acme.example", "externalId": "oid-dave"});
        let (s, b) = host.scim(&t, "POST", "Users", Some(other.clone()));
        if unique {
            assert_eq!(s, 403, "{b}");
            assert!(b["detail"].as_str().unwrap().contains("blocked by a tenant administrator"), "{b}");
            let (s, found) = host.scim(&t, "GET", "Users?filter=externalId%20eq%20%22oid-dave%22", None);
            assert_eq!((s, found["totalResults"].as_u64()), (200, Some(0)), "{found}");
            // Lifted: the externalId is free again.
            assert_eq!(
                host.send("DELETE", &format!("/admin/v1/tenants/acme/blocks/{id}"), ADMIN, None).0,
                204
            );
            let (s, b) = host.scim(&t, "POST", "Users", Some(other));
            assert_eq!(s, 201, "{b}");
        } else {
            assert_eq!(s, 201, "another person sharing the externalId: {b}");
            assert_eq!(b["externalId"], "oid-dave");
        }
        host.assert_consistent();
    }
}

/// The guide's urgent removal: a user removed by hand stays out whatever Entra's next cycle
/// sends, until an administrator lifts the block; who may see and lift blocks, and the log.
#[test]
fn a_removal_by_hand_blocks_the_identity_until_an_administrator_lifts_it() {
    let host = Host::new();
    let (t, admin) = acme(&host);
    let tech = host.create_user(&t, "tess@acme.example");
    host.send(
        "PATCH",
        &format!("/admin/v1/tenants/acme/users/{tech}"),
        ADMIN,
        Some(json!({"role": "system_technician"})),
    );
    let (s, dave) = host.scim(
        &t,
        "POST",
        "Users",
        Some(json!({"userName": "Dave@acme.example", "externalId": "oid-dave"})),
    );
    assert_eq!(s, 201);
    let dave = dave["id"].as_str().unwrap().to_owned();
    let erin = host.create_user(&t, "erin@acme.example");
    let users = "/admin/v1/tenants/acme/users";
    let blocks = "/admin/v1/tenants/acme/blocks";

    // A system technician may not remove users; the administrator may.
    assert_eq!(host.acting(&tech, "DELETE", &format!("{users}/{dave}"), None).0, 403);
    assert_eq!(host.acting(&admin, "DELETE", &format!("{users}/{dave}"), None).0, 204);
    // Removing it again completes nothing new and answers 204 with the same block.
    assert_eq!(host.acting(&admin, "DELETE", &format!("{users}/{dave}"), None).0, 204);
    let (s, list) = host.acting(&tech, "GET", blocks, None);
    assert_eq!(s, 200, "{list}");
    assert_eq!((list["totalResults"].as_u64(), list["itemsPerPage"].as_u64()), (Some(1), Some(1)));
    let block = &list["blocks"][0];
    assert_eq!(
        (block["id"].as_str(), block["userName"].as_str(), block["externalId"].as_str()),
        (Some(dave.as_str()), Some("Dave@acme.example"), Some("oid-dave"))
    );
    assert_eq!(block["blockedBy"], json!({"type": "user", "id": admin, "userName": "Ada@acme.example"}));
    let at = block["blockedAt"].as_str().unwrap().to_owned();
    let (_, page) = host.send("GET", users, ADMIN, None);
    assert!(!page.to_string().contains(&dave), "the removed user is not listed: {page}");

    // Entra's next cycle, in every shape, is refused with the block's detail.
    let refused = |(s, b): (u16, Value)| {
        assert_eq!(s, 403, "{b}");
        let d = b["detail"].as_str().unwrap();
        assert!(d.contains("blocked by a tenant administrator") && d.contains(&at), "{d}");
        assert!(b.get("scimType").is_none(), "{b}");
    };
    refused(host.scim(&t, "POST", "Users", Some(json!({"userName": "dave@ACME.example"}))));
    for value in [json!(true), json!("True")] {
        let on = patch(json!([{"op": "Replace", "path": "active", "value": value}]));
        refused(host.scim(&t, "PATCH", &format!("Users/{dave}"), Some(on)));
    }
    let pathless = patch(json!([{"op": "replace", "value": {"active": true, "displayName": "D"}}]));
    refused(host.scim(&t, "PATCH", &format!("Users/{dave}"), Some(pathless)));
    let put = json!({"userName": "Dave@acme.example", "active": true});
    refused(host.scim(&t, "PUT", &format!("Users/{dave}"), Some(put)));
    // Another user cannot take the blocked name either.
    let rename = patch(json!([{"op": "Replace", "path": "userName", "value": "DAVE@acme.example"}]));
    refused(host.scim(&t, "PATCH", &format!("Users/{erin}"), Some(rename)));
    assert_eq!(user(&host, &erin)["userName"], "erin@acme.example");
    assert_eq!(host.scim(&t, "GET", &format!("Users/{dave}"), None).0, 404);
    host.assert_consistent();

    // Lifting needs the administrator role; unknown blocks are 404.
    assert_eq!(host.acting(&tech, "DELETE", &format!("{blocks}/{dave}"), None).0, 403);
    assert_eq!(host.send("DELETE", &format!("{blocks}/{erin}"), ADMIN, None).0, 404);
    assert_eq!(host.send("GET", &format!("{blocks}/not-an-id"), ADMIN, None).0, 404);
    assert_eq!(host.acting(&admin, "DELETE", &format!("{blocks}/{dave}"), None).0, 204);
    let (_, list) = host.send("GET", blocks, ADMIN, None);
    assert_eq!(list["totalResults"], 0);
    let (s, again) = host.scim(
        &t,
        "POST",
        "Users",
        Some(json!({"userName": "dave@acme.example", "externalId": "oid-dave"})),
    );
    assert_eq!(s, 201, "{again}");
    assert_eq!(user(&host, again["id"].as_str().unwrap())["role"], "user");
    host.assert_consistent();

    // The log: the removal and its block, the refusals with their detail, the lift.
    let entries = log(&host, "resourceType=User&count=100");
    let seen: Vec<(String, String, u64)> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let actor = e["actor"]["type"].as_str().unwrap().to_owned();
            (e["operation"].as_str().unwrap().to_owned(), actor, e["status"].as_u64().unwrap())
        })
        .collect();
    for want in [
        ("user.remove", "user", 204),
        ("user.block", "user", 204),
        ("user.create", "scim", 403),
        ("user.update", "scim", 403),
        ("user.replace", "scim", 403),
        ("user.unblock", "user", 403),
        ("user.unblock", "user", 204),
    ] {
        let want = (want.0.to_owned(), want.1.to_owned(), want.2);
        assert!(seen.contains(&want), "{want:?} not in {seen:?}");
    }
    let unblock = log(&host, "operation=user.unblock&outcome=success");
    assert_eq!(unblock["entries"][0]["targetName"], "Dave@acme.example");
    assert_eq!(unblock["entries"][0]["target"], json!(dave));
}

/// The plan and local administrators are the operator's: an acting administrator may rename
/// the tenant but not change its plan, and `admin` creates a user only with the tenant.
#[test]
fn plans_and_local_administrators_are_the_operators() {
    let host = Host::new();
    let (t, admin) = acme(&host);
    let before = host.store.dump();
    let (s, b) = host.acting(&admin, "PUT", "/admin/v1/tenants/acme", Some(json!({"plan": "basic"})));
    assert_eq!(s, 403, "{b}");
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("changing the plan") && detail.contains("operator"), "{detail}");
    // An acting user may not smuggle a first administrator into an existing tenant either.
    let smuggled = json!({"name": "Acme", "admin": {"userName": "mallory@acme.example"}});
    let (s, b) = host.acting(&admin, "PUT", "/admin/v1/tenants/acme", Some(smuggled.clone()));
    assert_eq!(s, 403, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("local administrator is an operator action"), "{b}");
    // Nothing changed but the log's two refusals.
    let log_key = |k: &String| k.contains("/log/");
    let without_log = |d: &std::collections::BTreeMap<String, String>| {
        d.iter().filter(|(k, _)| !log_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
    };
    assert_eq!(without_log(&host.store.dump()), without_log(&before));
    let refused = log(&host, "operation=tenant.update&outcome=failure");
    assert_eq!(refused["entries"].as_array().unwrap().len(), 2, "{refused}");
    // The same plan is no change: the settings form saves a new name.
    let (s, b) = host.acting(
        &admin,
        "PUT",
        "/admin/v1/tenants/acme",
        Some(json!({"name": "Acme Ltd", "plan": "advanced"})),
    );
    assert_eq!((s, b["name"].as_str(), b["plan"].as_str()), (200, Some("Acme Ltd"), Some("advanced")), "{b}");
    // The operator's update with an unknown admin creates nobody (admin counts on create only) ...
    let (s, b) = host.send("PUT", "/admin/v1/tenants/acme", ADMIN, Some(smuggled));
    assert_eq!((s, b["scimType"].as_str()), (400, Some("invalidValue")), "{b}");
    assert!(b["detail"].as_str().unwrap().contains("only when the tenant is created"), "{b}");
    let (_, users) = host.send("GET", "/admin/v1/tenants/acme/users", ADMIN, None);
    assert_eq!(users["totalResults"], 1, "{users}");
    // ... and naming the existing first administrator (a retried create) is a plain update.
    let again = json!({"name": "Acme", "admin": {"userName": "ada@acme.example"}});
    let (s, b) = host.send("PUT", "/admin/v1/tenants/acme", ADMIN, Some(again));
    assert_eq!((s, b["users"]["active"].as_u64()), (200, Some(1)), "{b}");
    // The operator changes the plan.
    let (s, b) = host.send("PUT", "/admin/v1/tenants/acme", ADMIN, Some(json!({"plan": "basic"})));
    assert_eq!((s, b["plan"].as_str()), (200, Some("basic")), "{b}");
    assert_eq!(host.scim(&t, "GET", "Users", None).0, 403);
    host.assert_consistent();
}

#[test]
fn leaving_the_plan_turns_scim_off_with_a_reason() {
    let host = Host::new();
    let (t, _) = acme(&host);
    assert_eq!(host.scim(&t, "GET", "Users", None).0, 200);
    let (s, b) = host.send("PUT", "/admin/v1/tenants/acme", ADMIN, Some(json!({"plan": "basic"})));
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["name"].as_str(), b["scim"].is_null()), (Some("Acme"), true));
    let (s, b) = host.scim(&t, "GET", "Users", None);
    assert_eq!(s, 403, "{b}");
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("\"basic\" plan") && detail.contains("advanced"), "{detail}");
    let (s, b) = host.send("POST", "/admin/v1/tenants/acme/scim", ADMIN, None);
    assert_eq!(s, 403, "{b}");
    // Moving back does not turn the old connection on: a new generate does.
    assert_eq!(host.send("PUT", "/admin/v1/tenants/acme", ADMIN, Some(json!({"plan": "advanced"}))).0, 200);
    assert_eq!(host.scim(&t, "GET", "Users", None).0, 403);
    let t2 = host.connect("acme");
    assert_eq!(host.scim(&t, "GET", "Users", None).0, 401);
    assert_eq!(host.scim(&t2, "GET", "Users", None).0, 200);
    host.assert_consistent();
}

/// A SCIM request reads only its connection record, so every change of a connection changes
/// the record before the tenant. An outage at any point of a regenerate, a revoke or a plan
/// change leaves the old token working only where nothing changed: never once the tenant
/// points elsewhere or left the plan, and never after the admin was told it worked.
#[test]
fn an_outage_at_any_point_of_a_connection_change_never_leaves_the_old_token_working() {
    let changes = [
        ("POST", "/admin/v1/tenants/acme/scim", None),
        ("DELETE", "/admin/v1/tenants/acme/scim", None),
        ("PUT", "/admin/v1/tenants/acme", Some(json!({"plan": "basic"}))),
    ];
    for (method, path, body) in changes {
        let mut done = false;
        for n in 0..40 {
            let host = Host::new();
            let (t, _) = acme(&host);
            host.store.fail_after(Some(n));
            let (s, b) = host.send(method, path, ADMIN, body.clone());
            host.store.set_down(false);
            host.store.fail_after(None);
            let (old, _) = host.scim(&t, "GET", "Users", None);
            let raw = host.store.raw(&scim_edge_core::keys::tenant("acme")).unwrap();
            let tenant: Value = serde_json::from_slice(&raw).unwrap();
            let unchanged = tenant["plan"] == "advanced" && tenant["connection"] == t.connection.as_str();
            assert!(
                old != 200 || unchanged,
                "{method} {path} failing after {n} ops ({s} {b}): old token works"
            );
            if s < 300 {
                assert_ne!(old, 200, "{method} {path}: answered {s} but the old token works");
                host.assert_consistent();
                done = true;
                break;
            }
            assert_eq!(s, 503, "{b}");
            // The admin retries, which finishes the change.
            assert!(host.send(method, path, ADMIN, body.clone()).0 < 300);
            assert_ne!(host.scim(&t, "GET", "Users", None).0, 200);
            // A generate the outage cut short may leave its unused record (garbage) behind.
            let report = scim_edge_core::consistency::check(host.store.entries());
            let errors = report.problems.iter().filter(|p| p.severity() == Severity::Error).count();
            assert_eq!(errors, 0, "{report}");
        }
        assert!(done, "{method} {path} never completed");
    }
}

#[test]
fn tokens_expire_with_a_clear_detail() {
    let host = Host::with_config(r#""defaultTokenLifetimeDays": 30"#);
    let (t, _) = acme(&host);
    let (_, c) = host.send("GET", "/admin/v1/tenants/acme/scim", ADMIN, None);
    assert_eq!(c["expiresAt"], "2026-01-31T00:00:00.000Z");
    host.clock.advance(29 * 86_400_000);
    assert_eq!(host.scim(&t, "GET", "Users", None).0, 200);
    host.clock.advance(86_400_000);
    let (s, b) = host.scim(&t, "GET", "Users", None);
    assert_eq!(s, 401);
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("expired") && detail.contains("generate a new SCIM configuration"), "{detail}");
    let (_, c) = host.send("GET", "/admin/v1/tenants/acme/scim", ADMIN, None);
    assert_eq!(c["expired"], true);
    // Per generate, and per tenant.
    let (s, g) = host.send("POST", "/admin/v1/tenants/acme/scim", ADMIN, Some(json!({"expiresInDays": 1})));
    assert_eq!((s, g["regenerated"].as_bool()), (201, Some(true)));
    assert_eq!(g["expiresAt"], "2026-02-01T00:00:00.000Z");
    let (s, b) = host.send("PUT", "/admin/v1/tenants/acme", ADMIN, Some(json!({"tokenLifetimeDays": null})));
    assert_eq!((s, b["tokenLifetimeDays"].is_null()), (200, true));
    let (_, g) = host.send("POST", "/admin/v1/tenants/acme/scim", ADMIN, None);
    assert_eq!(g["expiresAt"], "2026-03-02T00:00:00.000Z", "the configured default applies");
}

#[test]
fn the_log_is_a_change_feed_without_secrets_and_the_connection_shows_its_use() {
    let host = Host::with_config(r#""logSize": 20"#);
    let (t, admin) = acme(&host);
    let head = log(&host, "count=1");
    let cursor = head["entries"][0]["seq"].as_u64().unwrap();
    assert_eq!(ops(&head), ["scim.generate"]);
    let u = host.create_user(&t, "dan@acme.example");
    let g = host.create_group(&t, "Staff", &[&u]);
    assert_eq!(host.scim(&t, "POST", "Users", Some(json!({"userName": "DAN@acme.example"}))).0, 409);
    assert_eq!(host.scim(&t, "GET", "Users", None).0, 200);
    host.acting(
        &admin,
        "PATCH",
        &format!("/admin/v1/tenants/acme/users/{u}"),
        Some(json!({"role": "administrator"})),
    );
    // Follow the feed from the cursor: every write in order, reads not at all.
    let feed = log(&host, &format!("after={cursor}"));
    assert_eq!(ops(&feed), ["user.create", "group.create", "user.create", "user.role"]);
    let e = &feed["entries"];
    assert_eq!(
        (e[0]["target"].as_str(), e[0]["targetName"].as_str()),
        (Some(u.as_str()), Some("dan@acme.example"))
    );
    assert_eq!((e[1]["target"].as_str(), e[1]["resourceType"].as_str()), (Some(g.as_str()), Some("Group")));
    assert_eq!((e[2]["outcome"].as_str(), e[2]["status"].as_u64()), (Some("failure"), Some(409)));
    // A failed create names the userName that did not make it, and the reason.
    assert_eq!((e[2]["targetName"].as_str(), e[2]["target"].as_str()), (Some("DAN@acme.example"), None));
    assert!(e[2]["detail"].as_str().unwrap().contains("already in use"), "{}", e[2]);
    assert_eq!(e[0]["actor"]["type"], "scim");
    assert_eq!(
        (e[3]["actor"]["type"].as_str(), e[3]["actor"]["id"].as_str()),
        (Some("user"), Some(admin.as_str()))
    );
    let next = feed["next"].as_u64().unwrap();
    assert!(log(&host, &format!("after={next}"))["entries"].as_array().unwrap().is_empty());
    // Regenerate, revoke: in the log; no token anywhere in it.
    let (_, g2) = host.send("POST", "/admin/v1/tenants/acme/scim", ADMIN, None);
    assert_eq!(host.send("DELETE", "/admin/v1/tenants/acme/scim", ADMIN, None).0, 204);
    let all = log(&host, "count=500");
    assert_eq!(ops(&all)[..2], ["scim.revoke", "scim.regenerate"]);
    let text = all.to_string() + &host.store.dump().values().cloned().collect::<String>();
    for secret in [t.token.as_str(), g2["token"].as_str().unwrap(), ADMIN] {
        assert!(!text.contains(secret), "a token is in the log or the store");
    }
    // Bounded: past logSize entries the oldest go, and a cursor that fell behind gets 410.
    let t = host.connect("acme");
    for i in 0..30 {
        host.create_user(&t, &format!("bulk{i}@acme.example"));
    }
    let page = log(&host, "count=500");
    assert_eq!(page["entries"].as_array().unwrap().len(), 20);
    let (s, b) = host.send("GET", &format!("/admin/v1/tenants/acme/log?after={cursor}"), ADMIN, None);
    assert_eq!(s, 410, "{b}");
    let older = log(&host, &format!("before={}&count=5", page["entries"][4]["seq"]));
    assert_eq!(older["entries"][0]["seq"], page["entries"][5]["seq"]);
    // The connection's status: requests and failures since it was created.
    host.scim(&t, "GET", "Users/00000000000000000000000000000000", None);
    let (_, c) = host.send("GET", "/admin/v1/tenants/acme/scim", ADMIN, None);
    assert_eq!((c["requests"].as_u64(), c["failures"].as_u64()), (Some(31), Some(1)), "{c}");
    assert!(c["lastUsedAt"].is_string());
    let (_, list) = host.send("GET", "/admin/v1/tenants", ADMIN, None);
    assert_eq!(list["tenants"][0]["users"]["active"], 32);
    host.assert_consistent();
}

#[test]
fn the_page_and_the_api_exist_only_with_an_admin_token() {
    use scim_edge_core::testing::{FixedClock, MemStore, SeqRandom};
    let (store, clock, random) = (MemStore::new(), FixedClock::default(), SeqRandom::new(1));
    let config = scim_edge_core::Config::default();
    let env = scim_edge_core::Env { store: &store, clock: &clock, random: &random, config: &config };
    for path in ["/admin/", "/admin", "/admin/app.js", "/admin/v1/tenants"] {
        let req = http::Request::get(path).body(bytes::Bytes::new()).unwrap();
        let res = support::block_on(scim_edge_core::handle(req, &env));
        assert_eq!(res.status(), 404, "{path}");
    }
    let host = Host::new();
    let r = host.raw_with("GET", "/admin/", None, &[("accept-encoding", "gzip")], "");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get("content-encoding").map(|v| v.as_bytes()), Some(&b"gzip"[..]));
    let mut html = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.raw[..]), &mut html).unwrap();
    assert!(html.contains("<html"));
    // Without gzip in Accept-Encoding: 406, the page is for browsers.
    assert_eq!(host.raw("GET", "/admin/", None, "").status, 406);
}

/// Successful reads are counted one in eight (with weight eight), so lookups do not write;
/// writes and failures exactly.
#[test]
fn reads_are_counted_by_sampling_and_writes_exactly() {
    let host = Host::new();
    let (t, _) = acme(&host);
    let id = host.create_user(&t, "eve@acme.example");
    let before = host.store.ops();
    for _ in 0..800 {
        assert_eq!(host.scim(&t, "GET", &format!("Users/{id}"), None).0, 200);
    }
    let per_read = (host.store.ops() - before) as f64 / 800.0;
    let (_, c) = host.send("GET", "/admin/v1/tenants/acme/scim", ADMIN, None);
    let requests = c["requests"].as_i64().unwrap();
    assert!((1 + 600..=1 + 1000).contains(&requests), "{c}");
    assert_eq!(c["failures"], 0);
    // Sampling is what keeps a read at about 4 store operations (connection, tenant, user, and
    // now and then the counter).
    assert!(per_read < 4.5, "{per_read} store operations per read");
}

/// A refused sign-in on a known connection is counted, shown on the connection and logged —
/// once a minute per reason, so a flood costs a bounded number of writes and leaves the
/// tenant's real log entries in place.
#[test]
fn refused_sign_ins_are_counted_shown_and_logged_once_a_minute() {
    let host = Host::with_config(r#""logSize": 20, "rateLimit": {"requestsPerSecond": 1, "burst": 3}"#);
    let (t, _) = acme(&host);
    let uri = format!("{}/Users", t.base);
    let status = |host: &Host| host.send("GET", "/admin/v1/tenants/acme/scim", ADMIN, None).1;
    let refusals = |host: &Host| {
        log(host, "operation=signIn.refused&count=500")["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["detail"].as_str().unwrap().to_owned(), e["status"].as_u64().unwrap()))
            .collect::<Vec<_>>()
    };
    let real = log(&host, "count=500")["entries"].as_array().unwrap().len();
    // A flood of wrong tokens: 1,000 refusals, one entry, about one write in eight.
    let before = host.store.ops();
    for _ in 0..1000 {
        assert_eq!(host.send("GET", &uri, "sce_wrong", None).0, 401);
    }
    let per_request = (host.store.ops() - before) as f64 / 1000.0;
    assert!(per_request < 1.5, "{per_request} store operations per refused request");
    assert_eq!(refusals(&host), [("signIn refused: wrong token".to_owned(), 401)]);
    let c = status(&host);
    assert_eq!(c["lastRefusedReason"], "wrong token", "{c}");
    assert_eq!(c["lastRefusedAt"], "2026-01-01T00:00:00.000Z", "{c}");
    let failures = c["failures"].as_u64().unwrap();
    assert!((600..=1400).contains(&failures), "sampled, about 1000: {c}");
    assert_eq!(log(&host, "count=500")["entries"].as_array().unwrap().len(), real + 1, "real entries kept");
    // No header, and a doubled scheme with a wrong token: their own reasons.
    assert_eq!(host.raw("GET", &uri, None, "").status, 401);
    assert_eq!(
        host.send("GET", &uri, &format!("Bearer {}", t.token), None).0,
        200,
        "the pasted header value"
    );
    // A minute later the same reason is noted again; the rate limit is a reason of its own.
    host.clock.advance(60_000);
    assert_eq!(host.send("GET", &uri, "sce_wrong", None).0, 401);
    for _ in 0..3 {
        assert_eq!(host.scim(&t, "GET", "Users", None).0, 200);
    }
    for _ in 0..5 {
        assert_eq!(host.scim(&t, "GET", "Users", None).0, 429);
    }
    let c = status(&host);
    assert_eq!(
        (c["lastRefusedReason"].as_str(), c["lastRefusedAt"].as_str()),
        (Some("too many requests (rate limit)"), Some("2026-01-01T00:01:00.000Z")),
        "{c}"
    );
    assert_eq!(
        refusals(&host),
        [
            ("signIn refused: too many requests (rate limit)".to_owned(), 429),
            ("signIn refused: wrong token".to_owned(), 401),
            ("signIn refused: no token sent".to_owned(), 401),
            ("signIn refused: wrong token".to_owned(), 401),
        ]
    );
    // Expired, and off by a plan change: the record still exists, so they are noted too.
    host.clock.advance(60_000);
    let (_, g) = host.send("POST", "/admin/v1/tenants/acme/scim", ADMIN, Some(json!({"expiresInDays": 1})));
    let expiring = format!("{}/Users", g["url"].as_str().unwrap().trim_start_matches("http://scim.test"));
    let token = g["token"].as_str().unwrap().to_owned();
    host.clock.advance(86_400_000);
    assert_eq!(host.send("GET", &expiring, &token, None).0, 401);
    assert_eq!(status(&host)["lastRefusedReason"], "token expired");
    let t = host.connect("acme");
    assert_eq!(host.send("PUT", "/admin/v1/tenants/acme", ADMIN, Some(json!({"plan": "basic"}))).0, 200);
    assert_eq!(host.scim(&t, "GET", "Users", None).0, 403);
    let off = host.store.raw(&format!("v1/conn/{}", t.connection)).unwrap();
    let off: Value = serde_json::from_slice(&off).unwrap();
    assert_eq!(off["lastRefusedReason"], "SCIM turned off by a plan change", "{off}");
    assert_eq!(refusals(&host)[0], ("signIn refused: SCIM turned off by a plan change".to_owned(), 403));
    // An unknown connection id is nobody's: nothing is written.
    let before = host.store.dump();
    assert_eq!(host.send("GET", "/scim/v2/0123456789abcdef0123456789abcdef/Users", "sce_x", None).0, 401);
    assert_eq!(host.store.dump(), before);
    host.assert_consistent();
}

/// The guide's troubleshooting after a Regenerate: Entra still sending the old Tenant URL and
/// Secret Token gets a 401 that says the configuration was replaced, and the refusal is noted
/// on the tenant's current connection, where the administrator looks; the old token never
/// works again, and the marker the old connection leaves is consistent.
#[test]
fn the_old_tenant_url_after_a_regenerate_is_refused_with_its_reason_and_noted() {
    let host = Host::new();
    let (old, _) = acme(&host);
    assert_eq!(host.scim(&old, "GET", "Users", None).0, 200);
    host.clock.advance(60_000);
    let new = host.connect("acme");
    assert_ne!(new.connection, old.connection);
    for token in [old.token.as_str(), new.token.as_str(), "sce_wrong"] {
        let (s, b) = host.send("GET", &format!("{}/Users", old.base), token, None);
        assert_eq!(s, 401, "{b}");
        let d = b["detail"].as_str().unwrap();
        assert!(d.contains("replaced at 2026-01-01T00:01:00.000Z by a newer SCIM configuration"), "{d}");
    }
    let (_, c) = host.send("GET", "/admin/v1/tenants/acme/scim", ADMIN, None);
    let reason = "a replaced SCIM configuration (from before the last Regenerate) is still in use";
    assert_eq!(c["lastRefusedReason"], reason, "{c}");
    let entries = log(&host, "operation=signIn.refused")["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "once a minute: {entries:?}");
    assert_eq!(entries[0]["detail"], format!("signIn refused: {reason}"));
    assert_eq!(entries[0]["status"], 401);
    // The marker holds no token hash, and the new connection works.
    let marker: Value =
        serde_json::from_slice(&host.store.raw(&format!("v1/conn/{}", old.connection)).unwrap()).unwrap();
    assert_eq!(
        (marker["tokenSha256"].as_str(), marker["tenant"].as_str()),
        (Some(""), Some("acme")),
        "{marker}"
    );
    assert_eq!(host.scim(&new, "GET", "Users", None).0, 200);
    host.assert_consistent();
    // Regenerated again: both old URLs are noted on the newest connection; revoked: no
    // connection to note on, still 401 with the reason.
    host.clock.advance(60_000);
    let newest = host.connect("acme");
    assert_eq!(host.send("GET", &format!("{}/Users", new.base), &new.token, None).0, 401);
    let (_, c) = host.send("GET", "/admin/v1/tenants/acme/scim", ADMIN, None);
    assert_eq!(
        (c["url"].as_str().map(|u| u.ends_with(&newest.connection)), c["lastRefusedReason"].as_str()),
        (Some(true), Some(reason)),
        "{c}"
    );
    assert_eq!(host.send("DELETE", "/admin/v1/tenants/acme/scim", ADMIN, None).0, 204);
    assert_eq!(host.send("GET", &format!("{}/Users", old.base), &old.token, None).0, 401);
    host.assert_consistent();
}

/// Entra's Test Connection (a GUID userName that finds nothing) is logged, once a minute, and
/// counted exactly: the page never shows 0 requests after it; lookups of real names are not.
#[test]
fn test_connection_is_logged_and_counted() {
    let host = Host::new();
    let (t, _) = acme(&host);
    let probe = "Users?filter=userName%20eq%20%226f1c2a34-9b7d-4e21-8c3a-0d5e7f9a1b2c%22";
    for _ in 0..3 {
        let (s, b) = host.scim(&t, "GET", probe, None);
        assert_eq!((s, b["totalResults"].as_u64()), (200, Some(0)));
    }
    assert_eq!(host.scim(&t, "GET", "Users?filter=userName%20eq%20%22nobody%40acme.example%22", None).0, 200);
    let tested = log(&host, "operation=connection.tested");
    let e = tested["entries"].as_array().unwrap();
    assert_eq!(e.len(), 1, "{tested}");
    assert_eq!((e[0]["status"].as_u64(), e[0]["target"].as_str()), (Some(200), Some(t.connection.as_str())));
    let (_, c) = host.send("GET", "/admin/v1/tenants/acme/scim", ADMIN, None);
    assert!(c["requests"].as_u64().unwrap() >= 3, "{c}");
    assert!(c["lastUsedAt"].is_string() && c["lastRefusedAt"].is_null(), "{c}");
    host.clock.advance(60_000);
    host.scim(&t, "GET", probe, None);
    assert_eq!(log(&host, "operation=connection.tested")["entries"].as_array().unwrap().len(), 2);
}
