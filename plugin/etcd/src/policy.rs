//! The retry policy, as pure functions: what one attempt's reply means, whether and when to
//! try again, and what a write transaction's answer says about its fate.
//!
//! Three kinds of failure, told apart by what they imply for a write:
//!
//! | reply | [`Attempt`] | a write… |
//! |---|---|---|
//! | 200 | `Answered` | ran (its `succeeded` says how) |
//! | Envoy's 503 *connection failure* / *no healthy upstream*, a failed dispatch | `NotSent` | never reached etcd |
//! | a timeout (Envoy's 504), a reset, any other 5xx, 408, 429, an etcd error (leader changed, no leader, request timed out) | `Unknown` | may have applied, or may still apply |
//! | 400, 404 (etcd: invalid request, lease not found) | `Refused` | did not apply; another attempt would be refused too |
//!
//! `NotSent` and `Unknown` are retried (on another member: Envoy's load balancer moves on,
//! and ejects a failing member) until the attempts or the request's deadline run out;
//! `Refused` is not. An `Unknown` write is never blindly re-sent as a new write: every write is
//! guarded by a write marker (see the crate documentation), which makes re-sending the same
//! transaction safe and tells the store afterwards whether an earlier attempt applied.

use std::time::Duration;

use crate::Reply;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// etcd answered 200 with this body.
    Answered(Vec<u8>),
    /// The request never reached etcd.
    NotSent(String),
    /// The request may have reached etcd; `election` when etcd said its leader is changing or
    /// missing, which is worth a short wait before the next attempt.
    Unknown { why: String, election: bool },
    /// etcd refused the request itself.
    Refused(String),
}

impl Attempt {
    pub fn describe(&self) -> String {
        match self {
            Attempt::Answered(_) => "answered".to_owned(),
            Attempt::NotSent(why) | Attempt::Unknown { why, .. } | Attempt::Refused(why) => why.clone(),
        }
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.trim().chars().take(200).collect()
}

/// What a reply means (see the table in the module documentation).
pub fn classify(reply: Reply) -> Attempt {
    match reply {
        Reply::Response { status: 200, body } => Attempt::Answered(body),
        Reply::Response { status, body } => {
            let text = excerpt(&body);
            let why = format!("answered {status}: {text}");
            match status {
                // Envoy's own answers when it could not open a connection to the member
                // ("reset reason: [local |remote ]connection failure", "…: connection
                // timeout"), or had none to pick.
                503 if text.contains("no healthy upstream")
                    || text.contains("connection failure")
                    || text.contains("reset reason: connection timeout") =>
                {
                    Attempt::NotSent(why)
                }
                400 | 404 => Attempt::Refused(why),
                _ => {
                    // etcd's gRPC errors of a leader election (codes.Unavailable):
                    // "etcdserver: leader changed", "etcdserver: no leader",
                    // "etcdserver: request timed out[, possibly due to previous leader failure]".
                    let election = text.contains("leader") || text.contains("timed out") || status == 429;
                    Attempt::Unknown { why, election }
                }
            }
        }
        Reply::Failed(why) => Attempt::Unknown { why, election: false },
        Reply::NotSent(why) => Attempt::NotSent(why),
    }
}

/// The limits of one request's store calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bounds every attempt (the callout timeout).
    pub timeout: Duration,
    /// Retries happen only while the request is younger than this; first attempts always run.
    pub deadline: Duration,
    /// Attempts per store call, the first included.
    pub max_attempts: u32,
}

/// The shortest attempt worth making: a retry that would get less than this gives up.
pub const MIN_ATTEMPT: Duration = Duration::from_millis(20);

/// Wait before retry `n` (1 for the first retry): nothing before the first retry after a plain
/// failure (the balancer picks another member), doubling from 25 ms up to 400 ms otherwise,
/// which spans an etcd election (about 1-2 s at etcd's default 1 s election timeout).
pub fn backoff(retry: u32, last: &Attempt) -> Duration {
    let election = matches!(last, Attempt::Unknown { election: true, .. });
    if retry <= 1 && !election {
        return Duration::ZERO;
    }
    Duration::from_millis(25u64 << retry.min(4))
}

/// The next step of a store call that has made `done` attempts, the last ending as `last`,
/// `elapsed` into its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait `pause`, then try with this timeout.
    Try {
        pause: Duration,
        timeout: Duration,
    },
    GiveUp,
}

pub fn next(budget: &Budget, elapsed: Duration, done: u32, last: Option<&Attempt>) -> Next {
    let Some(last) = last else {
        return Next::Try { pause: Duration::ZERO, timeout: budget.timeout };
    };
    if matches!(last, Attempt::Answered(_) | Attempt::Refused(_)) || done >= budget.max_attempts {
        return Next::GiveUp;
    }
    let pause = backoff(done, last);
    let left = budget.deadline.saturating_sub(elapsed).saturating_sub(pause);
    if left < MIN_ATTEMPT {
        return Next::GiveUp;
    }
    Next::Try { pause, timeout: budget.timeout.min(left) }
}

/// What the write marker (the `failure` branch's range of it) shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerSeen {
    /// Still at the revision the write compared against: nothing of this write applied.
    Unmoved,
    /// Moved by this write's transaction, applied at this revision.
    Written(u64),
    /// Moved by this write's fence at this revision: the write never applied, and cannot.
    Fenced(u64),
}

/// The marker value a write transaction puts, and the one a fence puts.
pub const WRITTEN: &[u8] = b"w";
pub const FENCED: &[u8] = b"f";

/// Reads the marker as a failed transaction's `failure` branch returned it: `None` if absent
/// (`mod_revision` 0), else its `mod_revision` and value.
pub fn marker_seen(m0: u64, marker: Option<(u64, &[u8])>) -> Result<MarkerSeen, String> {
    match marker {
        None if m0 == 0 => Ok(MarkerSeen::Unmoved),
        Some((rev, _)) if rev == m0 => Ok(MarkerSeen::Unmoved),
        Some((rev, WRITTEN)) => Ok(MarkerSeen::Written(rev)),
        Some((rev, FENCED)) => Ok(MarkerSeen::Fenced(rev)),
        // Only this writer's requests touch its markers, and only forward.
        None => Err(format!("write marker vanished (expected at revision {m0})")),
        Some((rev, value)) => Err(format!("write marker at revision {rev} holds {:?}", excerpt(value))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Reply {
        Reply::Response { status, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn replies_are_classified_by_what_they_say_about_a_write() {
        assert_eq!(classify(response(200, "{}")), Attempt::Answered(b"{}".to_vec()));
        let refused = "upstream connect error or disconnect/reset before headers. reset reason: connection \
                       failure, transport failure reason: delayed connect error: Connection refused";
        assert!(matches!(classify(response(503, refused)), Attempt::NotSent(_)));
        assert!(matches!(classify(response(503, "no healthy upstream")), Attempt::NotSent(_)));
        let remote = "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";
        assert!(matches!(classify(response(503, remote)), Attempt::NotSent(_)));
        assert!(matches!(classify(Reply::NotSent("no such cluster".into())), Attempt::NotSent(_)));
        // Sent, fate unknown.
        let reset =
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
        assert!(matches!(classify(response(503, reset)), Attempt::Unknown { election: false, .. }));
        assert!(matches!(
            classify(response(504, "upstream request timeout")),
            Attempt::Unknown { election: false, .. }
        ));
        assert!(matches!(classify(Reply::Failed("reset".into())), Attempt::Unknown { election: false, .. }));
        for e in ["etcdserver: leader changed", "etcdserver: no leader", "etcdserver: request timed out"] {
            let body = format!(r#"{{"error":"{e}","code":14,"message":"{e}"}}"#);
            assert!(matches!(classify(response(503, &body)), Attempt::Unknown { election: true, .. }), "{e}");
        }
        assert!(matches!(classify(response(500, "{}")), Attempt::Unknown { election: false, .. }));
        let dup = r#"{"error":"etcdserver: duplicate key given in txn request","code":3}"#;
        assert!(matches!(classify(response(400, dup)), Attempt::Refused(_)));
        assert!(matches!(classify(response(404, "{}")), Attempt::Refused(_)));
    }

    const BUDGET: Budget = Budget {
        timeout: Duration::from_millis(1000),
        deadline: Duration::from_millis(3000),
        max_attempts: 6,
    };

    #[test]
    fn first_attempts_always_run_retries_only_within_the_deadline() {
        let ms = Duration::from_millis;
        let ms_next = |elapsed, done, last: &Attempt| next(&BUDGET, ms(elapsed), done, Some(last));
        // Past the deadline, the first attempt still runs (with the full timeout).
        assert_eq!(next(&BUDGET, ms(10_000), 0, None), Next::Try { pause: ms(0), timeout: ms(1000) });
        let timeout = Attempt::Unknown { why: "504".into(), election: false };
        assert_eq!(ms_next(1000, 1, &timeout), Next::Try { pause: ms(0), timeout: ms(1000) });
        // The last retry is cut to what is left of the deadline...
        assert_eq!(ms_next(2500, 2, &timeout), Next::Try { pause: ms(100), timeout: ms(400) });
        // ...and not made when too little is.
        assert_eq!(ms_next(2990, 2, &timeout), Next::GiveUp);
        // Elections wait before every retry; the wait doubles up to 400 ms.
        let election = Attempt::Unknown { why: "no leader".into(), election: true };
        assert_eq!(ms_next(5, 1, &election), Next::Try { pause: ms(50), timeout: ms(1000) });
        assert_eq!(ms_next(5, 5, &election), Next::Try { pause: ms(400), timeout: ms(1000) });
        // Attempts are bounded; answers and refusals end the call.
        assert_eq!(ms_next(5, 6, &election), Next::GiveUp);
        assert_eq!(ms_next(5, 1, &Attempt::Refused("400".into())), Next::GiveUp);
        assert_eq!(ms_next(5, 1, &Attempt::Answered(Vec::new())), Next::GiveUp);
    }

    #[test]
    fn the_marker_tells_the_fate_of_a_write() {
        assert_eq!(marker_seen(0, None), Ok(MarkerSeen::Unmoved));
        assert_eq!(marker_seen(7, Some((7, WRITTEN))), Ok(MarkerSeen::Unmoved));
        assert_eq!(marker_seen(7, Some((7, FENCED))), Ok(MarkerSeen::Unmoved));
        assert_eq!(marker_seen(0, Some((9, WRITTEN))), Ok(MarkerSeen::Written(9)));
        assert_eq!(marker_seen(7, Some((9, FENCED))), Ok(MarkerSeen::Fenced(9)));
        assert!(marker_seen(7, None).is_err());
        assert!(marker_seen(7, Some((9, b"x"))).is_err());
    }
}
