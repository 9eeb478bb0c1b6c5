#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a failed unwrap is a failed test
//! Sign-in links and browser sessions (`scim_edge_core::sessions`): a tenant's own people use
//! the admin page without the operator's token. See docs/admin-api.md.

mod support;

use serde_json::{json, Value};
use support::{patch, Host, Reply, Tenant, ADMIN};

const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml");

/// Tenant `acme` with its first administrator (Ada), a system technician (Tess), a base user
/// (Bob) and SCIM on; returns the tenant and the three ids.
fn acme(host: &Host) -> (Tenant, String, String, String) {
    let (s, b) = host.send(
        "PUT",
        "/admin/v1/tenants/acme",
        ADMIN,
        Some(json!({"name": "Acme", "admin": {"userName": "ada@acme.example", "displayName": "Ada Admin"}})),
    );
    assert_eq!(s, 201, "{b}");
    let t = host.connect("acme");
    let (_, list) = host.send("GET", "/admin/v1/tenants/acme/users", ADMIN, None);
    let ada = list["users"][0]["id"].as_str().unwrap().to_owned();
    let tess = host.create_user(&t, "tess@acme.example");
    let bob = host.create_user(&t, "bob@acme.example");
    let (s, _) = host.send(
        "PATCH",
        &format!("/admin/v1/tenants/acme/users/{tess}"),
        ADMIN,
        Some(json!({"role": "system_technician"})),
    );
    assert_eq!(s, 200);
    (t, ada, tess, bob)
}

/// Mints a sign-in link; returns (link id, the token from the URL's `t=`, the whole answer).
fn mint(host: &Host, tenant: &str, body: Value) -> (String, String, Value) {
    let (s, b) = host.send("POST", &format!("/admin/v1/tenants/{tenant}/sessions"), ADMIN, Some(body));
    assert_eq!(s, 201, "{b}");
    let url = b["url"].as_str().unwrap();
    let token = url.split_once("?t=").unwrap().1.to_owned();
    (b["id"].as_str().unwrap().to_owned(), token, b)
}

/// Opens a sign-in link as a browser does.
fn open(host: &Host, token: &str) -> Reply {
    host.raw_with("GET", &format!("/admin/v1/sign-in?t={token}"), None, &[HTML], "")
}

fn set_cookie(r: &Reply) -> String {
    r.headers.get("set-cookie").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// Signs `user` in; returns the session cookie (`name=value`) and the anti-CSRF token.
fn sign_in(host: &Host, tenant: &str, user: &str) -> (String, String) {
    let (_, token, _) = mint(host, tenant, json!({"user": user}));
    let r = open(host, &token);
    assert_eq!(r.status, 303, "{:?}", r.raw);
    assert_eq!(r.headers["location"], "/admin/");
    let cookie = set_cookie(&r).split(';').next().unwrap().to_owned();
    let who = call(host, &cookie, None, "GET", "/admin/v1/session", None);
    assert_eq!(who.status, 200, "{}", who.body);
    (cookie, who.body["csrfToken"].as_str().unwrap().to_owned())
}

/// An admin API call with a session cookie (and the anti-CSRF token, when given).
fn call(
    host: &Host,
    cookie: &str,
    csrf: Option<&str>,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> Reply {
    let mut headers = vec![("cookie", cookie)];
    if let Some(c) = csrf {
        headers.push(("x-csrf-token", c));
    }
    host.raw_with(method, uri, None, &headers, body.map(|b| b.to_string()).unwrap_or_default())
}

fn log_ops(host: &Host, query: &str) -> Vec<(String, String)> {
    let (s, b) = host.send("GET", &format!("/admin/v1/tenants/acme/log?{query}"), ADMIN, None);
    assert_eq!(s, 200, "{b}");
    b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["operation"].as_str().unwrap().to_owned(), e["detail"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[test]
fn a_link_signs_its_user_in_once_into_its_tenant_only() {
    let host = Host::new();
    let (_, ada, _, bob) = acme(&host);
    let (id, token, minted) = mint(&host, "acme", json!({"user": "ADA@acme.example"}));
    assert_eq!(minted["user"], ada.as_str());
    assert!(minted["url"].as_str().unwrap().starts_with("http://scim.test/admin/v1/sign-in?t=sel_"));
    assert_eq!(token.len(), 4 + 32 + 64, "id and 256-bit secret");
    assert_eq!(minted["expiresAt"], "2026-01-01T00:05:00.000Z", "linkTtlSeconds 300 by default");
    // Unused, the operator sees a link.
    let (s, b) = host.send("GET", &format!("/admin/v1/tenants/acme/sessions/{id}"), ADMIN, None);
    assert_eq!((s, b["state"].as_str()), (200, Some("link")), "{b}");

    let r = open(&host, &token);
    assert_eq!(r.status, 303);
    assert_eq!(r.headers["location"], "/admin/");
    assert_eq!(r.headers["cache-control"], "no-store");
    let cookie = set_cookie(&r);
    assert!(cookie.starts_with(&format!("scim_edge_session={id}.")), "{cookie}");
    for attr in ["Path=/admin/v1", "HttpOnly", "SameSite=Strict", "Max-Age=43200"] {
        assert!(cookie.contains(attr), "{attr}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "the public URL is http");
    let cookie = cookie.split(';').next().unwrap().to_owned();

    let who = call(&host, &cookie, None, "GET", "/admin/v1/session", None);
    assert_eq!(who.status, 200, "{}", who.body);
    assert_eq!(who.body["tenant"], "acme");
    assert_eq!(who.body["tenantName"], "Acme");
    assert_eq!(who.body["user"]["userName"], "ada@acme.example");
    assert_eq!(who.body["role"], "administrator");
    assert_eq!(who.body["permissions"], json!(["viewUsers", "manageScim", "manageUsers"]));
    let csrf = who.body["csrfToken"].as_str().unwrap().to_owned();
    let (s, b) = host.send("GET", &format!("/admin/v1/tenants/acme/sessions/{id}"), ADMIN, None);
    assert_eq!((s, b["state"].as_str(), b["role"].as_str()), (200, Some("signedIn"), Some("administrator")));

    // The session acts as Ada in acme: reads, and changes with the anti-CSRF token.
    let r = call(&host, &cookie, None, "GET", "/admin/v1/tenants/acme/users", None);
    assert_eq!((r.status, r.body["totalResults"].as_u64()), (200, Some(3)));
    let role = json!({"role": "system_technician"});
    let uri = format!("/admin/v1/tenants/acme/users/{bob}");
    let r = call(&host, &cookie, None, "PATCH", &uri, Some(role.clone()));
    assert_eq!(r.status, 403, "no anti-CSRF token");
    assert!(r.body["detail"].as_str().unwrap().contains("X-CSRF-Token"), "{}", r.body);
    let r = call(&host, &cookie, Some("0".repeat(64).as_str()), "PATCH", &uri, Some(role.clone()));
    assert_eq!(r.status, 403, "a wrong anti-CSRF token");
    let r = call(&host, &cookie, Some(&csrf), "PATCH", &uri, Some(role));
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("system_technician")), "{}", r.body);
    // X-Acting-User cannot make the session someone else.
    let r = host.raw_with(
        "PATCH",
        &format!("/admin/v1/tenants/acme/users/{ada}"),
        None,
        &[("cookie", &cookie), ("x-csrf-token", &csrf), ("x-acting-user", &bob)],
        json!({"role": "user"}).to_string(),
    );
    assert_eq!(r.status, 403, "acting as Ada, who cannot change her own role: {}", r.body);

    // Tenant B, the tenant list, and the operator's own calls are out of reach.
    host.tenant("other");
    for (method, path) in [
        ("GET", "/admin/v1/tenants/other"),
        ("GET", "/admin/v1/tenants/other/users"),
        ("GET", "/admin/v1/tenants/other/log"),
        ("GET", "/admin/v1/tenants"),
        ("POST", "/admin/v1/tenants/acme/sessions"),
        ("DELETE", &format!("/admin/v1/tenants/acme/sessions/{id}")),
        ("PUT", "/admin/v1/tenants/newco"),
    ] {
        let r = call(&host, &cookie, Some(&csrf), method, path, Some(json!({"user": ada, "name": "x"})));
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }

    // The link worked once.
    let again = open(&host, &token);
    assert_eq!((again.status, again.headers["location"].to_str().unwrap()), (303, "/admin/#/link/used"));
    assert!(again.headers.get("set-cookie").is_none());
    let r = host.raw("GET", &format!("/admin/v1/sign-in?t={token}"), None, "");
    assert_eq!(r.status, 401, "an API client gets the error itself");
    assert!(r.body["detail"].as_str().unwrap().contains("already used"), "{}", r.body);

    let ops = log_ops(&host, "resourceType=Session");
    let names: Vec<&str> = ops.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(names, ["session.refused", "session.refused", "session.start", "session.link"], "{ops:?}");
    assert!(ops[2].1.contains(&format!("sign-in link {id}")), "{ops:?}");
    assert!(ops[0].1.contains("already used"), "{ops:?}");
    // The session's changes are logged as Ada's.
    let (_, b) = host.send("GET", "/admin/v1/tenants/acme/log?operation=user.role&actor=user", ADMIN, None);
    assert_eq!(b["entries"][1]["actor"]["userName"], "ada@acme.example", "{b}");

    // No link, session or CSRF value is stored (only their SHA-256).
    let secret = token.trim_start_matches("sel_").get(32..).unwrap().to_owned();
    let session_secret = cookie.split_once('.').unwrap().1.to_owned();
    for (k, v) in host.store.dump() {
        for s in [&secret, &session_secret, &csrf] {
            assert!(!v.contains(s.as_str()) && !k.contains(s.as_str()), "{k} holds a secret");
        }
    }
    host.assert_consistent();
}

#[test]
fn https_makes_the_cookie_secure_and_sign_out_clears_it() {
    let host = Host::with_config(r#""publicBaseUrl": "https://scim.example.com""#);
    let (_, ada, _, _) = acme(&host);
    let (_, token, minted) =
        mint(&host, "acme", json!({"user": ada, "returnUrl": "https://app.acme.example/settings"}));
    assert!(minted["url"].as_str().unwrap().starts_with("https://scim.example.com/admin/v1/sign-in?t="));
    let r = open(&host, &token);
    assert!(set_cookie(&r).ends_with("; Secure"), "{}", set_cookie(&r));
    let cookie = set_cookie(&r).split(';').next().unwrap().to_owned();
    let who = call(&host, &cookie, None, "GET", "/admin/v1/session", None);
    assert_eq!(who.body["returnUrl"], "https://app.acme.example/settings");
    let csrf = who.body["csrfToken"].as_str().unwrap().to_owned();
    let r = call(&host, &cookie, None, "DELETE", "/admin/v1/session", None);
    assert_eq!(r.status, 403, "signing out needs the anti-CSRF token too");
    let r = call(&host, &cookie, Some(&csrf), "DELETE", "/admin/v1/session", None);
    assert_eq!((r.status, r.body["returnUrl"].as_str()), (200, Some("https://app.acme.example/settings")));
    let cleared = set_cookie(&r);
    assert!(cleared.starts_with("scim_edge_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    let r = call(&host, &cookie, None, "GET", "/admin/v1/session", None);
    assert_eq!(r.status, 401);
    assert!(set_cookie(&r).contains("Max-Age=0"), "a dead session's cookie is cleared");
    assert_eq!(log_ops(&host, "operation=session.end")[0].1, "signed out");
}

#[test]
fn roles_apply_unchanged_through_a_session() {
    let host = Host::new();
    let (_, ada, tess, bob) = acme(&host);
    // A system technician manages SCIM but not users.
    let (cookie, csrf) = sign_in(&host, "acme", &tess);
    let r = call(&host, &cookie, Some(&csrf), "POST", "/admin/v1/tenants/acme/scim", None);
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(&host, &cookie, Some(&csrf), "DELETE", &format!("/admin/v1/tenants/acme/users/{bob}"), None);
    assert_eq!(r.status, 403);
    assert!(r.body["detail"].as_str().unwrap().contains("needs the administrator role"), "{}", r.body);
    let who = call(&host, &cookie, None, "GET", "/admin/v1/session", None);
    assert_eq!(who.body["permissions"], json!(["viewUsers", "manageScim"]));
    // A base user may sign in and sees nothing: the page shows what role is needed.
    let (cookie, _) = sign_in(&host, "acme", "bob@acme.example");
    let who = call(&host, &cookie, None, "GET", "/admin/v1/session", None);
    assert_eq!((who.body["role"].as_str(), who.body["permissions"].clone()), (Some("user"), json!([])));
    let r = call(&host, &cookie, None, "GET", "/admin/v1/tenants/acme/users", None);
    assert_eq!(r.status, 403);
    // An administrator's session removes a user urgently.
    let (cookie, csrf) = sign_in(&host, "acme", &ada);
    let r = call(&host, &cookie, Some(&csrf), "DELETE", &format!("/admin/v1/tenants/acme/users/{bob}"), None);
    assert_eq!(r.status, 204, "{}", r.body);
}

#[test]
fn a_session_ends_when_its_user_is_disabled_removed_or_loses_the_role() {
    let host = Host::new();
    let (t, ada, tess, bob) = acme(&host);
    let is_ended = |cookie: &str, why: &str| {
        let r = call(&host, cookie, None, "GET", "/admin/v1/tenants/acme", None);
        assert_eq!(r.status, 401, "{why}: {}", r.body);
        assert!(r.body["detail"].as_str().unwrap().contains(why), "{why}: {}", r.body);
        assert!(set_cookie(&r).contains("Max-Age=0"));
        // Ended for good: the next request finds no session at all.
        let r = call(&host, cookie, None, "GET", "/admin/v1/tenants/acme", None);
        assert!(r.body["detail"].as_str().unwrap().contains("has ended"), "{}", r.body);
    };
    // Disabled by Entra.
    let (tess_session, _) = sign_in(&host, "acme", &tess);
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(host.scim(&t, "PATCH", &format!("Users/{tess}"), Some(off)).0, 200);
    is_ended(&tess_session, "was disabled");
    // Loses the role; a raise keeps the session.
    let raise = host.create_user(&t, "ray@acme.example");
    let (ray_session, _) = sign_in(&host, "acme", &raise);
    let (ada_session, _) = sign_in(&host, "acme", &ada);
    let set_role = |id: &str, role: &str| {
        let uri = format!("/admin/v1/tenants/acme/users/{id}");
        assert_eq!(host.send("PATCH", &uri, ADMIN, Some(json!({"role": role}))).0, 200);
    };
    set_role(&raise, "administrator");
    assert_eq!(call(&host, &ray_session, None, "GET", "/admin/v1/tenants/acme", None).status, 200);
    set_role(&ada, "system_technician");
    is_ended(&ada_session, "role changed from \"administrator\" to \"system_technician\"");
    // Removed (and blocked) by an administrator.
    let (bob_session, _) = sign_in(&host, "acme", &bob);
    assert_eq!(host.send("DELETE", &format!("/admin/v1/tenants/acme/users/{bob}"), ADMIN, None).0, 204);
    is_ended(&bob_session, "was removed");
    let ends = log_ops(&host, "operation=session.end");
    assert_eq!(ends.len(), 3, "{ends:?}");
    // A link of a user disabled or removed since it was minted signs nobody in.
    let (_, token, _) = mint(&host, "acme", json!({"user": raise}));
    assert_eq!(host.send("DELETE", &format!("/admin/v1/tenants/acme/users/{raise}"), ADMIN, None).0, 204);
    assert_eq!(open(&host, &token).headers["location"], "/admin/#/link/refused");
    host.assert_consistent();
}

#[test]
fn links_and_sessions_expire_and_can_be_revoked() {
    let host = Host::with_config(
        r#""sessions": {"linkTtlSeconds": 60, "idleTimeoutSeconds": 600, "absoluteTimeoutSeconds": 3600}"#,
    );
    let (_, ada, _, _) = acme(&host);
    // An expired link.
    let (_, token, _) = mint(&host, "acme", json!({"user": ada}));
    host.clock.advance(60_000);
    assert_eq!(open(&host, &token).headers["location"], "/admin/#/link/expired");
    // ttlSeconds within the configured bounds.
    let (_, token, b) = mint(&host, "acme", json!({"user": ada, "ttlSeconds": 3600}));
    assert_eq!(b["expiresAt"], "2026-01-01T01:01:00.000Z");
    host.clock.advance(3_000_000);
    assert_eq!(open(&host, &token).status, 303);
    // Idle: used every 5 minutes it lives, left alone 10 minutes it ends.
    let (cookie, _) = sign_in(&host, "acme", &ada);
    for _ in 0..3 {
        host.clock.advance(300_000);
        assert_eq!(call(&host, &cookie, None, "GET", "/admin/v1/session", None).status, 200);
    }
    host.clock.advance(600_000);
    let r = call(&host, &cookie, None, "GET", "/admin/v1/session", None);
    assert_eq!(r.status, 401);
    assert!(r.body["detail"].as_str().unwrap().contains("idle"), "{}", r.body);
    // Absolute: however busy, it ends after an hour.
    let (cookie, _) = sign_in(&host, "acme", &ada);
    for _ in 0..11 {
        host.clock.advance(300_000);
        assert_eq!(call(&host, &cookie, None, "GET", "/admin/v1/session", None).status, 200);
    }
    host.clock.advance(300_000);
    let r = call(&host, &cookie, None, "GET", "/admin/v1/session", None);
    assert!(r.body["detail"].as_str().unwrap().contains("time limit"), "{}", r.body);
    // Revoked by the operator: a session, and a link before it is used.
    let (cookie, _) = sign_in(&host, "acme", &ada);
    let id = cookie.split_once('=').unwrap().1.split('.').next().unwrap().to_owned();
    assert_eq!(
        host.send("DELETE", "/admin/v1/tenants/other/sessions/0123456789abcdef0123456789abcdef", ADMIN, None)
            .0,
        404
    );
    assert_eq!(host.send("DELETE", &format!("/admin/v1/tenants/acme/sessions/{id}"), ADMIN, None).0, 204);
    assert_eq!(call(&host, &cookie, None, "GET", "/admin/v1/session", None).status, 401);
    let (link, token, _) = mint(&host, "acme", json!({"user": ada}));
    assert_eq!(host.send("DELETE", &format!("/admin/v1/tenants/acme/sessions/{link}"), ADMIN, None).0, 204);
    assert_eq!(open(&host, &token).headers["location"], "/admin/#/link/invalid");
    let revokes = log_ops(&host, "operation=session.revoke");
    assert_eq!(revokes.len(), 2, "{revokes:?}");
}

#[test]
fn bad_link_requests_and_forged_cookies_are_refused() {
    let host = Host::new();
    let (t, _, tess, _) = acme(&host);
    let post = |body: Value| host.send("POST", "/admin/v1/tenants/acme/sessions", ADMIN, Some(body));
    for (body, status) in [
        (json!({}), 400),
        (json!({"user": ""}), 400),
        (json!({"user": "nobody@acme.example"}), 404),
        (json!({"user": tess, "ttlSeconds": 5}), 400),
        (json!({"user": tess, "ttlSeconds": 3601}), 400),
        (json!({"user": tess, "returnUrl": "javascript:alert(1)"}), 400),
    ] {
        let (s, b) = post(body.clone());
        assert_eq!(s, status, "{body}: {b}");
    }
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(host.scim(&t, "PATCH", &format!("Users/{tess}"), Some(off)).0, 200);
    assert_eq!(post(json!({"user": tess})).0, 403, "a disabled user gets no link");
    let (s, _) = host.acting(&tess, "POST", "/admin/v1/tenants/acme/sessions", Some(json!({"user": tess})));
    assert_eq!(s, 403, "only the operator mints links");
    assert_eq!(
        host.send("POST", "/admin/v1/tenants/nope/sessions", ADMIN, Some(json!({"user": "x"}))).0,
        404
    );
    // Forged or mangled cookies and tokens: 401, nothing logged.
    let before = log_ops(&host, "resourceType=Session").len();
    let (id, token, _) = mint(&host, "acme", json!({"user": "ada@acme.example"}));
    let wrong = format!("sel_{id}{}", "0".repeat(64));
    assert_eq!(open(&host, &wrong).headers["location"], "/admin/#/link/invalid");
    assert_eq!(open(&host, "garbage").headers["location"], "/admin/#/link/invalid");
    for cookie in [format!("scim_edge_session={id}.{}", "0".repeat(64)), "scim_edge_session=x".into()] {
        let r = call(&host, &cookie, None, "GET", "/admin/v1/tenants/acme", None);
        assert_eq!(r.status, 401, "{cookie}");
    }
    assert_eq!(log_ops(&host, "resourceType=Session").len(), before + 1, "only the minting");
    // The link still works: the forgeries did not consume it.
    assert_eq!(open(&host, &token).headers["location"], "/admin/");
    // No cookie, no token.
    assert_eq!(host.raw("GET", "/admin/v1/session", None, "").status, 401);
    assert_eq!(host.send("GET", "/admin/v1/session", ADMIN, None).0, 404, "the operator has no session");
    assert_eq!(host.send("POST", "/admin/v1/sign-in", ADMIN, None).0, 405);
}

#[test]
fn the_page_reads_groups_with_member_counts_and_a_users_detail() {
    let host = Host::new();
    let (t, ada, tess, bob) = acme(&host);
    let eng = host.create_group(&t, "Engineering", &[&tess, &bob]);
    host.create_group(&t, "Empty", &[]);
    let (cookie, _) = sign_in(&host, "acme", &tess);
    let r = call(&host, &cookie, None, "GET", "/admin/v1/tenants/acme/groups", None);
    assert_eq!((r.status, r.body["totalResults"].as_u64()), (200, Some(2)), "{}", r.body);
    let counts: Vec<(String, u64)> = r.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["displayName"].as_str().unwrap().to_owned(), g["members"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, [("Engineering".to_owned(), 2), ("Empty".to_owned(), 0)]);
    let r = call(&host, &cookie, None, "GET", &format!("/admin/v1/tenants/acme/groups/{eng}?count=1"), None);
    assert_eq!((r.status, r.body["totalResults"].as_u64()), (200, Some(2)), "{}", r.body);
    assert_eq!(r.body["members"].as_array().unwrap().len(), 1, "paged");
    let r = call(&host, &cookie, None, "GET", &format!("/admin/v1/tenants/acme/users/{bob}"), None);
    assert_eq!(r.body["attributes"]["userName"], "bob@acme.example", "{}", r.body);
    assert_eq!(r.body["groups"], json!([{"id": eng, "displayName": "Engineering"}]));
    let r = call(&host, &cookie, None, "GET", &format!("/admin/v1/tenants/acme/users/{ada}"), None);
    assert_eq!(r.body["groups"], json!([]));
    let (cookie, _) = sign_in(&host, "acme", &bob);
    assert_eq!(call(&host, &cookie, None, "GET", "/admin/v1/tenants/acme/groups", None).status, 403);
}

#[test]
fn the_log_is_searchable_by_user_and_time() {
    let host = Host::new();
    let (t, _, _, bob) = acme(&host);
    host.clock.advance(86_400_000);
    let carl = host.create_user(&t, "carl@acme.example");
    let (_, b) = host.send("GET", "/admin/v1/tenants/acme/log?user=BOB@acme.example", ADMIN, None);
    let targets: Vec<&str> =
        b["entries"].as_array().unwrap().iter().map(|e| e["target"].as_str().unwrap()).collect();
    assert!(!targets.is_empty() && targets.iter().all(|t| *t == bob), "{b}");
    let (_, b) = host.send("GET", &format!("/admin/v1/tenants/acme/log?user={carl}"), ADMIN, None);
    assert_eq!(b["entries"].as_array().unwrap().len(), 1, "{b}");
    let (_, b) = host.send("GET", "/admin/v1/tenants/acme/log?since=2026-01-02T00:00:00.000Z", ADMIN, None);
    assert_eq!(b["entries"].as_array().unwrap().len(), 1, "only carl's creation is on day 2: {b}");
    let (_, b) = host.send("GET", "/admin/v1/tenants/acme/log?until=2026-01-01T23:59:59.999Z", ADMIN, None);
    assert!(b["entries"].as_array().unwrap().iter().all(|e| e["target"] != carl.as_str()), "{b}");
}
