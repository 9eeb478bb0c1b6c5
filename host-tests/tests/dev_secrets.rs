//! `scim-edge-dev` (the Spin component on the wasmtime dev host) never writes a token where it
//! does not belong: after a lifecycle with every kind of credential — the admin token right
//! and wrong, generated and regenerated SCIM tokens, wrong and revoked ones — none of them is
//! in its request log lines or its stderr, nor in Spin's SQLite table. By design the start
//! banner shows the admin token and the demo connection's token once, and the state directory
//! keeps them in two owner-only files (`admin-token`, `demo-scim.json`); nothing else may.
//! (The same check for Envoy and etcd: `envoy_e2e.rs`.)

// A test reports failure by panicking; `serde_json::Value` indexing answers `Null` for a
// missing key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[allow(dead_code)]
#[path = "../src/envoy/client.rs"]
mod client;

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

const BANNER_END: &str = "Ctrl-C to stop.";

fn call(addr: SocketAddr, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut b =
        http::Request::builder().method(method).uri(path).header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        b = b.header("content-type", "application/scim+json");
    }
    let req = b.body(body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string()))).unwrap();
    let res = client::send(addr, &req).unwrap();
    (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(Value::Null))
}

#[test]
fn the_dev_host_logs_no_token_and_stores_only_hashes() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("scim-edge-dev-secrets-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scim-edge-dev"))
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            lines.push(line);
        }
        lines
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });

    // The banner: where it listens and the demo connection.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut banner = Vec::new();
    while banner.last().is_none_or(|l: &String| l != BANNER_END) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => banner.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no banner from scim-edge-dev: {banner:?}");
            }
        }
    }
    let field = |label: &str| -> String {
        let line =
            banner.iter().find(|l| l.contains(label)).unwrap_or_else(|| panic!("{label} in {banner:?}"));
        line.rsplit(' ').next().unwrap().to_owned()
    };
    let addr: SocketAddr = field("listening on").trim_start_matches("http://").parse().unwrap();
    let demo_token = field("Secret Token:");
    let admin_token = std::fs::read_to_string(dir.join(".scim-edge/admin-token")).unwrap().trim().to_owned();
    assert_eq!(field("admin token:"), admin_token);

    let wrong_admin = "wrong-admin-token-0a1b2c3d4e5f6a7b".to_owned();
    let wrong_scim = format!("sce_{}", "5d".repeat(32));
    let mut secrets = vec![admin_token.clone(), demo_token.clone(), wrong_admin.clone(), wrong_scim.clone()];

    let (s, _) = call(addr, "GET", "/admin/v1/tenants/demo", &wrong_admin, None);
    assert_eq!(s, 401);
    let (s, _) = call(
        addr,
        "PUT",
        "/admin/v1/tenants/acme",
        &admin_token,
        Some(json!({"name": "Acme", "plan": "advanced"})),
    );
    assert_eq!(s, 201);
    let path_of = |v: &Value| {
        let url = v["url"].as_str().unwrap();
        url[url.find("/scim/v2/").unwrap()..].to_owned()
    };
    let (s, first) = call(addr, "POST", "/admin/v1/tenants/acme/scim", &admin_token, None);
    assert_eq!(s, 201, "{first}");
    let (first_path, first_token) = (path_of(&first), first["token"].as_str().unwrap().to_owned());
    secrets.push(first_token.clone());
    let user =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "kept@example.com"});
    let (s, u) = call(addr, "POST", &format!("{first_path}/Users"), &first_token, Some(user));
    assert_eq!(s, 201, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    for bad in [&wrong_scim, &admin_token, &demo_token] {
        let (s, _) = call(addr, "GET", &format!("{first_path}/Users"), bad, None);
        assert_eq!(s, 401);
    }
    let (s, second) = call(addr, "POST", "/admin/v1/tenants/acme/scim", &admin_token, None);
    assert_eq!(s, 201, "{second}");
    let (second_path, second_token) = (path_of(&second), second["token"].as_str().unwrap().to_owned());
    secrets.push(second_token.clone());
    let (s, _) = call(
        addr,
        "GET",
        &format!("{second_path}/Users?filter=userName%20eq%20%22kept%40example.com%22"),
        &first_token,
        None,
    );
    assert_eq!(s, 401, "the old token after regenerate");
    let (s, _) = call(addr, "DELETE", &format!("{second_path}/Users/{id}"), &second_token, None);
    assert_eq!(s, 204);
    let (s, _) = call(addr, "GET", "/scim/v2/x/Users", &demo_token, None);
    assert_eq!(s, 401);
    let demo_path = banner.iter().find(|l| l.contains("SCIM Tenant URL:")).map(|l| {
        let url = l.rsplit(' ').next().unwrap();
        url[url.find("/scim/v2/").unwrap()..].to_owned()
    });
    let (s, _) = call(addr, "GET", &format!("{}/Users", demo_path.unwrap()), &demo_token, None);
    assert_eq!(s, 200);

    Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("scim-edge-dev did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();

    // The banner shows the admin token and the demo token once each, by design.
    let banner_text = banner.join("\n");
    // The search itself finds what is there.
    assert_eq!(scim_edge_host_tests::leaks(banner_text.as_bytes(), &secrets[..2]), secrets[..2].to_vec());
    assert_eq!(banner_text.matches(admin_token.as_str()).count(), 1, "{banner_text}");
    assert!(banner_text.contains(&demo_token));
    let after_banner = &lines[banner.len()..];
    assert!(after_banner.len() >= 12, "one log line per request: {after_banner:?}");
    assert_eq!(
        scim_edge_host_tests::leaks(after_banner.join("\n").as_bytes(), &secrets),
        Vec::<String>::new(),
        "{after_banner:?}"
    );
    assert_eq!(
        scim_edge_host_tests::leaks(&stderr, &secrets),
        Vec::<String>::new(),
        "{}",
        String::from_utf8_lossy(&stderr)
    );

    // The store holds hashes only; the two token files are the documented exceptions.
    let state = dir.join(".scim-edge");
    let mut checked = 0;
    for entry in std::fs::read_dir(&state).unwrap().map(Result::unwrap) {
        let name = entry.file_name().into_string().unwrap();
        if name == "admin-token" || name == "demo-scim.json" {
            continue;
        }
        assert!(name.starts_with("sqlite_key_value.db"), "unexpected file {name}");
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(scim_edge_host_tests::leaks(&bytes, &secrets), Vec::<String>::new(), "{name}");
        checked += 1;
    }
    assert!(checked >= 1);
    let _ = std::fs::remove_dir_all(&dir);
}
