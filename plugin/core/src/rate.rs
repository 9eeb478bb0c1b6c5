//! Per-tenant rate limiting: a token bucket kept in the store (`keys::rate`), so it holds
//! across Envoy workers, Envoy processes sharing etcd, and Spin instances — every one of them
//! reads and writes the same bucket.
//!
//! Each authenticated SCIM request takes one token; the bucket refills at
//! `requestsPerSecond` up to `burst`. An empty bucket answers `429 Too Many Requests` with
//! `Retry-After` (whole seconds until a token is back). Admin requests are not limited.
//!
//! **Cost:** one read and one conditional write per SCIM request. Concurrent requests of one
//! tenant race on the bucket's compare-and-swap; a loser re-reads (up to [`ATTEMPTS`] times)
//! and, if it still loses, is answered 429 with `Retry-After: 1` rather than let through
//! uncounted — contention that high means the tenant is far above any sane rate. With the
//! limiter off (`"rateLimit": null`) none of this runs.
//!
//! On by default: Entra's provisioning service expects at least 25 requests/s per tenant
//! (gallery checklist) and is known to back off on 429 only sometimes; the defaults (50/s
//! sustained, bursts of 500) leave it twice that.

use serde::{Deserialize, Serialize};

use crate::error::{ScimError, ScimResult};
use crate::store::{get_json, put_json, Condition, Store, StoreError};
use crate::{keys, Env};

/// Compare-and-swap attempts on a contended bucket.
pub const ATTEMPTS: usize = 4;

/// The configured rate (see `Config::rate_limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests_per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { requests_per_second: 50, burst: 500 }
    }
}

/// The stored bucket: tokens in thousandths (integer arithmetic), and when it was last filled.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Bucket {
    milli_tokens: u64,
    at_ms: u64,
}

const ONE: u64 = 1000;

/// Takes a token from the tenant's bucket, or answers 429.
pub async fn admit<S: Store>(env: &Env<'_, S>, tenant: &str, limit: RateLimit) -> ScimResult<()> {
    let key = keys::rate(tenant);
    let rate = u64::from(limit.requests_per_second.max(1));
    let capacity = u64::from(limit.burst.max(1)).saturating_mul(ONE);
    for _ in 0..ATTEMPTS {
        let now = env.clock.now_millis();
        let (bucket, cond) = match get_json::<S, Bucket>(env.store, &key).await {
            Ok(Some((b, v))) => (b, Condition::Version(v)),
            Ok(None) => (Bucket { milli_tokens: capacity, at_ms: now }, Condition::Absent),
            // An unreadable bucket is replaced by a full one.
            Err(e) if e.status == http::StatusCode::INTERNAL_SERVER_ERROR => {
                (Bucket { milli_tokens: capacity, at_ms: now }, Condition::Any)
            }
            Err(e) => return Err(e),
        };
        // Elapsed milliseconds × requests per second = thousandths of a token.
        let refill = now.saturating_sub(bucket.at_ms).saturating_mul(rate);
        let tokens = bucket.milli_tokens.saturating_add(refill).min(capacity);
        if tokens < ONE {
            // Milliseconds until one token: (ONE - tokens) / rate, rounded up to whole seconds.
            let wait_ms = (ONE - tokens).div_ceil(rate);
            return Err(too_many(tenant, limit, wait_ms.div_ceil(1000).max(1)));
        }
        let next = Bucket { milli_tokens: tokens - ONE, at_ms: now.max(bucket.at_ms) };
        match put_json(env.store, &key, &next, cond).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(too_many(tenant, limit, 1))
}

fn too_many(tenant: &str, limit: RateLimit, retry_after: u64) -> ScimError {
    ScimError {
        retry_after: Some(retry_after),
        ..ScimError::new(
            http::StatusCode::TOO_MANY_REQUESTS,
            format!(
                "tenant {tenant:?} is over its rate limit of {} requests/s (bursts of {}) (rateLimit); \
                 retry after {retry_after} s",
                limit.requests_per_second, limit.burst
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FixedClock, MemStore, SeqRandom};
    use crate::Config;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        crate::testing::scenario::block_on(f).expect("the future completes without I/O")
    }

    #[test]
    fn bursts_then_the_sustained_rate_then_429_with_retry_after() {
        let (store, clock, random, config) =
            (MemStore::new(), FixedClock::default(), SeqRandom::new(1), Config::default());
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        let limit = RateLimit { requests_per_second: 25, burst: 50 };
        for i in 0..50 {
            assert!(block_on(admit(&env, "t", limit)).is_ok(), "burst request {i}");
        }
        let e = block_on(admit(&env, "t", limit)).unwrap_err();
        assert_eq!(e.status, http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after, Some(1));
        assert!(e.detail.contains("25 requests/s"), "{}", e.detail);
        let res = e.into_response();
        assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        // Sustained: 25 per second, for ten seconds, all admitted; the 26th of a second is not.
        for _ in 0..10 {
            clock.advance(1000);
            for i in 0..25 {
                assert!(block_on(admit(&env, "t", limit)).is_ok(), "sustained request {i}");
            }
            assert!(block_on(admit(&env, "t", limit)).is_err());
        }
        // Other tenants have their own bucket.
        assert!(block_on(admit(&env, "u", limit)).is_ok());
        // A long pause refills to the burst, not beyond.
        clock.advance(3_600_000);
        for _ in 0..50 {
            assert!(block_on(admit(&env, "t", limit)).is_ok());
        }
        assert!(block_on(admit(&env, "t", limit)).is_err());
    }

    #[test]
    fn slow_rates_say_how_long_to_wait() {
        let (store, clock, random, config) =
            (MemStore::new(), FixedClock::default(), SeqRandom::new(1), Config::default());
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        let limit = RateLimit { requests_per_second: 1, burst: 1 };
        assert!(block_on(admit(&env, "t", limit)).is_ok());
        clock.advance(200);
        assert_eq!(block_on(admit(&env, "t", limit)).unwrap_err().retry_after, Some(1));
        store.set_down(true);
        let e = block_on(admit(&env, "t", limit)).unwrap_err();
        assert_eq!(e.status, http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
