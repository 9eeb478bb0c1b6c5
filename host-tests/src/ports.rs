//! Loopback ports for the processes the tests start (Envoy listeners, etcd client and peer
//! ports, Redis, `spin up`), chosen so that two never collide within a test run.
//!
//! "Bind port 0, read the number, drop the listener" is not enough: the kernel hands the same
//! free port to the next caller (another thread of the same test binary, or another test
//! binary), and an outgoing connection may take it before the server binds it. So a port here:
//! - comes from [`RANGE`], below Linux's ephemeral range (32768–60999 by default), where the
//!   kernel never picks the local port of an outgoing connection;
//! - is claimed with an exclusive `flock` on a file named after it in a shared directory, held
//!   until this process exits. `flock` locks belong to the open file, so a second claim of the
//!   same port fails whether it comes from this process or from another one, and the lock is
//!   released by the kernel when the process dies, however it dies;
//! - is free at the moment it is handed out (a bind succeeds), so a port some other program
//!   listens on is skipped.
//!
//! A port is handed out once per process and never given back: a test that restarts a server
//! keeps its ports, and a stopped server's port is not reused by a later test while a lingering
//! child might still hold it.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where ports are chosen: above the well-known and registered ports most services use, below
/// the ephemeral range.
pub const RANGE: std::ops::Range<u16> = 20_000..32_000;

/// The claimed ports' lock files, kept open (and so locked) until the process exits, and the
/// next port to try.
struct Claims {
    held: Vec<File>,
    next: u16,
}

static CLAIMS: Mutex<Claims> = Mutex::new(Claims { held: Vec::new(), next: 0 });

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("scim-edge-test-ports")
}

/// A loopback port no other caller of this function, in this process or any other, has been
/// given while this process lives, and that nothing listens on now.
///
/// # Panics
/// When the whole [`RANGE`] is taken, or the lock directory cannot be created: a test harness
/// fails loudly.
#[allow(clippy::expect_used, clippy::panic)]
pub fn free_port() -> u16 {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).expect("create the test port lock directory");
    let mut claims = CLAIMS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    claim(&mut claims, &dir).unwrap_or_else(|| panic!("no free loopback port left in {RANGE:?}"))
}

fn claim(claims: &mut Claims, dir: &std::path::Path) -> Option<u16> {
    let span = RANGE.end - RANGE.start;
    if claims.next == 0 {
        // Start each process somewhere else in the range, so concurrent runs rarely meet.
        claims.next = RANGE.start + (std::process::id() % u32::from(span)) as u16;
    }
    for _ in 0..span {
        let port = claims.next;
        claims.next = if port + 1 >= RANGE.end { RANGE.start } else { port + 1 };
        let Ok(file) =
            OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(port.to_string()))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // claimed by this process or a running one
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // something outside the tests listens there
        }
        claims.held.push(file);
        return Some(port);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ports_are_never_handed_out_twice_across_threads() {
        let threads: Vec<_> =
            (0..8).map(|_| std::thread::spawn(|| (0..50).map(|_| free_port()).collect::<Vec<_>>())).collect();
        let all: Vec<u16> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let distinct: HashSet<u16> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len(), "a port was handed out twice");
        assert!(all.iter().all(|p| RANGE.contains(p)), "ports outside {RANGE:?}");
    }

    #[test]
    fn a_claimed_port_is_refused_to_another_process_and_a_listened_one_skipped() {
        let port = free_port();
        // Another open file description of the same lock file (what another process would
        // get) cannot take the lock while this process holds it.
        let other = OpenOptions::new().write(true).open(lock_dir().join(port.to_string())).unwrap();
        assert!(other.try_lock().is_err(), "port {port} claimed twice");
        // A port something listens on is skipped: listen on the very port that would be
        // tried next (under the lock, so no other thread moves on meanwhile).
        let mut claims = CLAIMS.lock().unwrap();
        let dir = lock_dir();
        let mut listener = None;
        while listener.is_none() {
            let next = claims.next;
            listener = TcpListener::bind(("127.0.0.1", next)).ok().map(|l| (next, l));
            if listener.is_none() {
                claims.next += 1;
            }
        }
        let (taken, _listener) = listener.unwrap();
        let got = claim(&mut claims, &dir).unwrap();
        assert_ne!(got, taken, "a port in use was handed out");
        assert!(RANGE.contains(&got));
    }
}
