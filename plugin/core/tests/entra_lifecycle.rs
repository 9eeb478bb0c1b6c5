//! The Entra lifecycle scenario (`scim_edge_core::testing::scenario`) against the core
//! itself: requests go straight into `scim_edge_core::handle` over the in-memory fakes.
//! The same suite runs against the Spin component and the Envoy filter in `host-tests`.

use bytes::Bytes;
use scim_edge_core::testing::scenario::{block_on, entra_lifecycle, Dialect, Report, Target};
use scim_edge_core::testing::{FixedClock, MemStore, SeqRandom};
use scim_edge_core::{Config, ConfigError, Env};
use sha2::{Digest, Sha256};

const ADMIN_TOKEN: &str = "entra-lifecycle-admin-token-0123456789abcdef";

/// The core as a host: `handle` over a [`MemStore`], a clock that moves 10 ms per
/// request (so `meta.lastModified` differs between writes) and seeded randomness.
struct Core {
    store: MemStore,
    clock: FixedClock,
    random: SeqRandom,
    config: Config,
}

impl Core {
    fn new(seed: u64, public_base_url: Option<&str>) -> Result<Core, ConfigError> {
        let hash = hex::encode(Sha256::digest(ADMIN_TOKEN.as_bytes()));
        let json = match public_base_url {
            // No rate limit: the clock stands still, so a bucket would never refill.
            Some(url) => {
                format!(r#"{{"adminTokenSha256":"{hash}","publicBaseUrl":"{url}","rateLimit":null}}"#)
            }
            None => format!(r#"{{"adminTokenSha256":"{hash}","rateLimit":null}}"#),
        };
        let config = Config::from_json(&json)?;
        Ok(Core {
            store: MemStore::new(),
            clock: FixedClock::default(),
            random: SeqRandom::new(seed),
            config,
        })
    }
}

impl Target for Core {
    async fn send(&mut self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        // 10 ms a request: a thousand requests fit in a minute, like on a real host.
        self.clock.advance(10);
        let env = Env { store: &self.store, clock: &self.clock, random: &self.random, config: &self.config };
        scim_edge_core::handle(req, &env).await
    }

    async fn stored(&mut self, key: &str) -> Option<Vec<u8>> {
        self.store.raw(key)
    }

    fn admin_token(&self) -> String {
        ADMIN_TOKEN.to_owned()
    }
}

/// Runs the lifecycle; the error is the readable [`Failure`](scim_edge_core::testing::scenario::Failure).
fn run(core: &mut Core, dialect: Dialect) -> Result<Report, String> {
    let outcome = block_on(entra_lifecycle(core, dialect)).ok_or_else(|| {
        format!("the {dialect:?} lifecycle did not complete: the core awaited something that never woke it")
    })?;
    let report = outcome.map_err(|failure| failure.to_string())?;
    println!("{report}");
    Ok(report)
}

#[test]
fn entra_lifecycle_default_dialect() {
    let mut core = Core::new(1, None).expect("valid test configuration");
    let outcome = run(&mut core, Dialect::Default);
    if let Err(failure) = &outcome {
        panic!("{failure}");
    }
    assert!(outcome.is_ok());
    let report = outcome.unwrap();
    assert_eq!(report.tenant, "entra-default");
}

#[test]
fn entra_lifecycle_aad_opt_scim_062020() {
    let mut core = Core::new(2, None).expect("valid test configuration");
    let outcome = run(&mut core, Dialect::AadOptScim062020);
    if let Err(failure) = &outcome {
        panic!("{failure}");
    }
    assert!(outcome.is_ok());
    let report = outcome.unwrap();
    assert_eq!(report.tenant, "entra-optflag");
}

/// Both dialects on one store (and with `publicBaseUrl` configured): tenants do not see
/// each other, and the second run is not disturbed by what the first left behind.
#[test]
fn entra_lifecycle_both_dialects_share_a_store() {
    let mut core = Core::new(3, Some("https://scim.example.com/")).expect("valid test configuration");
    let first = run(&mut core, Dialect::Default).unwrap_or_else(|failure| panic!("{failure}"));
    let second = run(&mut core, Dialect::AadOptScim062020).unwrap_or_else(|failure| panic!("{failure}"));
    assert_ne!(first.tenant, second.tenant);
    let keys = core.store.dump();
    assert!(keys.keys().any(|k| k.starts_with("v1/t/entra-default/")));
    assert!(keys.keys().any(|k| k.starts_with("v1/t/entra-optflag/")));
}
