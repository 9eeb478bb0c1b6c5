//! The Envoy filter's two stores (etcd through HTTP callouts, Envoy shared data) in the real
//! Envoy 1.40, through the filter's `store-probe` build: the configured store exposed as
//! `GET/PUT/DELETE /scim/v2/_probe/{key}` with `x-condition: any | absent | <version>`.
//! These check the conditional-write contract of the core's `Store` trait where it matters —
//! across Envoy's worker threads and across Envoy processes — independently of the SCIM service.
//!
//! Needs Envoy and etcd: `envoy/setup.sh`.

// A test reports failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../src/envoy/mod.rs"]
mod envoy;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy::{probe_wasm, Envoy, Stack, StoreKind, PREFIX};

/// Status, `x-version` and body of one probe call.
fn probe(envoy: &Envoy, method: &str, key: &str, cond: &str, body: &[u8]) -> (u16, Option<u64>, Vec<u8>) {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("/scim/v2/_probe/{key}"))
        .header("x-condition", cond)
        .body(Bytes::copy_from_slice(body))
        .unwrap();
    let res = envoy.send(&req);
    let version = res.headers().get("x-version").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (res.status().as_u16(), version, res.body().to_vec())
}

/// The `Store` contract, step by step, against whichever store the stack runs.
fn conditional_writes(stack: &Stack) {
    let e = stack.envoy();
    assert_eq!(probe(e, "GET", "k", "any", b"").0, 404, "absent key");

    let (s, v1, _) = probe(e, "PUT", "k", "absent", b"one");
    assert_eq!(s, 200, "create if absent");
    let v1 = v1.unwrap();
    assert_eq!(probe(e, "PUT", "k", "absent", b"two").0, 409, "second create conflicts");
    assert_eq!(probe(e, "GET", "k", "any", b""), (200, Some(v1), b"one".to_vec()));

    assert_eq!(probe(e, "PUT", "k", &(v1 + 1000).to_string(), b"x").0, 409, "stale version");
    let (s, v2, _) = probe(e, "PUT", "k", &v1.to_string(), b"two");
    assert_eq!(s, 200, "write at the version read");
    let v2 = v2.unwrap();
    assert_ne!(v1, v2, "a write changes the version");
    assert_eq!(probe(e, "GET", "k", "any", b""), (200, Some(v2), b"two".to_vec()));

    assert_eq!(probe(e, "DELETE", "k", &v1.to_string(), b"").0, 409, "delete at a stale version");
    assert_eq!(probe(e, "DELETE", "k", "absent", b"").0, 409, "delete if absent is meaningless");
    assert_eq!(probe(e, "DELETE", "k", &v2.to_string(), b"").0, 204);
    assert_eq!(probe(e, "GET", "k", "any", b"").0, 404, "deleted");
    assert_eq!(probe(e, "PUT", "k", &v2.to_string(), b"x").0, 409, "version of a deleted key");
    assert_eq!(probe(e, "PUT", "k", "absent", b"again").0, 200, "create again after delete");

    assert_eq!(probe(e, "PUT", "k", "any", b"three").0, 200);
    assert_eq!(probe(e, "GET", "k", "any", b"").2, b"three");
    assert_eq!(probe(e, "DELETE", "k", "any", b"").0, 204);
    assert_eq!(probe(e, "DELETE", "k", "any", b"").0, 204, "deleting an absent key is fine");

    // An empty value is a value.
    assert_eq!(probe(e, "PUT", "empty", "absent", b"").0, 200);
    let (s, v, body) = probe(e, "GET", "empty", "any", b"");
    assert_eq!((s, body.len()), (200, 0));
    assert!(v.is_some());

    // A body Envoy delivers in many chunks (the filter pauses until the end of the stream).
    let big: Vec<u8> =
        (0..400_000u32).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i % 36) as usize]).collect();
    assert_eq!(probe(e, "PUT", "big", "any", &big).0, 200);
    let (s, _, body) = probe(e, "GET", "big", "any", b"");
    assert_eq!(s, 200);
    assert!(body == big, "400 kB value read back intact ({} bytes)", body.len());

    if let Some(etcd) = &stack.etcd {
        assert_eq!(etcd.get(&format!("{PREFIX}k")), None);
        assert_eq!(
            etcd.get(&format!("{PREFIX}big")).map(|v| v.len()),
            Some(big.len()),
            "stored under the prefix"
        );
        assert_eq!(etcd.get("big"), None, "nothing outside the prefix");
    }
    stack.assert_logs_clean();
}

#[test]
fn etcd_store_keeps_the_store_contract() {
    let stack = Stack::start_with(StoreKind::Etcd, 1, probe_wasm(), 2000);
    conditional_writes(&stack);
}

#[test]
fn shared_data_store_keeps_the_store_contract() {
    let stack = Stack::start_with(StoreKind::SharedData, 1, probe_wasm(), 2000);
    conditional_writes(&stack);
}

/// `threads` clients race to create each of `rounds` keys, each on its own connection, so
/// Envoy (`exact_balance`) spreads them over both worker threads (and both Envoys when there
/// are two). Exactly one create per key may win.
fn race_creates(stack: &Stack, threads: usize, rounds: usize) {
    for round in 0..rounds {
        let key = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(threads));
        let results: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let barrier = barrier.clone();
                    let key = key.clone();
                    let envoy = &stack.envoys[i % stack.envoys.len()];
                    s.spawn(move || {
                        barrier.wait();
                        probe(envoy, "PUT", &key, "absent", format!("writer {i}").as_bytes()).0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = results.iter().filter(|&&s| s == 200).count();
        let lost = results.iter().filter(|&&s| s == 409).count();
        assert_eq!((won, lost), (1, threads - 1), "round {round}: statuses {results:?}");
    }
    for e in &stack.envoys {
        e.assert_both_workers_served();
    }
    stack.assert_logs_clean();
}

#[test]
fn etcd_create_if_absent_has_one_winner_across_workers() {
    let stack = Stack::start_with(StoreKind::Etcd, 1, probe_wasm(), 2000);
    race_creates(&stack, 12, 15);
}

#[test]
fn shared_data_create_if_absent_has_one_winner_across_workers() {
    let stack = Stack::start_with(StoreKind::SharedData, 1, probe_wasm(), 2000);
    race_creates(&stack, 12, 15);
}

#[test]
fn etcd_create_if_absent_has_one_winner_across_two_envoys() {
    let mut stack = Stack::start_with(StoreKind::Etcd, 1, probe_wasm(), 2000);
    stack.add_envoy();
    race_creates(&stack, 12, 10);
    let (a, b) = (&stack.envoys[0], &stack.envoys[1]);
    let (_, v, _) = probe(a, "PUT", "shared", "absent", b"from a");
    assert_eq!(probe(b, "GET", "shared", "any", b""), (200, v, b"from a".to_vec()), "B reads A's write");
    assert_eq!(probe(b, "PUT", "shared", "absent", b"from b").0, 409);
}

#[test]
fn etcd_outage_is_unavailable_within_the_timeout_and_recovers() {
    let timeout_ms = 800;
    let mut stack = Stack::start_with(StoreKind::Etcd, 1, probe_wasm(), timeout_ms);
    assert_eq!(probe(stack.envoy(), "PUT", "k", "any", b"v").0, 200);

    // Hung etcd: the callout times out.
    stack.etcd().pause();
    let t = Instant::now();
    let (s, _, body) = probe(stack.envoy(), "GET", "k", "any", b"");
    let took = t.elapsed();
    stack.etcd().resume();
    assert_eq!(s, 503, "{}", String::from_utf8_lossy(&body));
    assert!(took < Duration::from_millis(timeout_ms + 1500), "answered after {took:?}");
    assert!(took >= Duration::from_millis(timeout_ms - 50), "answered before the timeout ({took:?})");

    // etcd gone: connection refused, answered at once.
    stack.etcd.as_mut().unwrap().kill();
    let t = Instant::now();
    assert_eq!(probe(stack.envoy(), "PUT", "k", "any", b"w").0, 503);
    assert!(t.elapsed() < Duration::from_millis(timeout_ms + 1500));

    stack.etcd.as_mut().unwrap().restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = 0;
    while Instant::now() < deadline {
        last = probe(stack.envoy(), "GET", "k", "any", b"").0;
        if last == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last, 200, "requests succeed again once etcd is back");
    assert_eq!(probe(stack.envoy(), "GET", "k", "any", b"").2, b"v", "the failed write changed nothing");
    stack.assert_logs_clean();
}
