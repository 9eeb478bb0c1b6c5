//! The etcd store of the filter: [`scim_edge_etcd::EtcdStore`] over HTTP callouts to the Envoy
//! cluster named in the settings (every etcd member, balanced by Envoy: round robin, active
//! health checks on `/health`, outlier detection; see `envoy/envoy.yaml.tmpl`).
//!
//! The store (crate `scim-edge-etcd`) holds everything about etcd: the requests, the retry
//! policy across members within the request's deadline, and the write markers that keep a
//! retried write from applying twice. This module only carries its calls: one callout per
//! attempt, bounded by the attempt's timeout, and a retry's wait as a delayed callout to the
//! pause cluster. Envoy picks the member of each attempt; after a failure its round robin
//! moves on, and a member that keeps failing (or fails its health check) is taken out.

use std::rc::Rc;
use std::time::Duration;

use scim_edge_etcd::{EtcdConfig, Markers, Reply, Transport};

use crate::host;
use crate::settings::EtcdSettings;
use crate::task::Callouts;

pub type EtcdStore = scim_edge_etcd::EtcdStore<Callout>;

thread_local! {
    /// This VM's write markers. The writer id is random: unique among every VM that ever
    /// shares the cluster.
    static MARKERS: Rc<Markers> = Rc::new(Markers::new(writer_id()));
}

fn writer_id() -> String {
    let mut id = [0u8; 12];
    // Without entropy (which Envoy always has), the time keeps VMs apart well enough.
    if getrandom::fill(&mut id).is_err() {
        return format!("t{}", host::now_millis());
    }
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Attempts per store call (the deadline usually ends them first).
const MAX_ATTEMPTS: u32 = 8;

/// The store of one request, which starts now.
pub fn store(settings: Rc<EtcdSettings>, callouts: Rc<Callouts>) -> EtcdStore {
    let config = Rc::new(EtcdConfig {
        prefix: settings.prefix.clone(),
        budget: scim_edge_etcd::policy::Budget {
            timeout: settings.timeout,
            deadline: settings.deadline,
            max_attempts: MAX_ATTEMPTS,
        },
    });
    let markers = MARKERS.with(Rc::clone);
    EtcdStore::new(config, Callout { settings, callouts }, markers)
}

/// One callout per attempt.
pub struct Callout {
    settings: Rc<EtcdSettings>,
    callouts: Rc<Callouts>,
}

impl Transport for Callout {
    async fn call(&self, _attempt: u32, path: &str, body: &[u8], timeout: Duration) -> Reply {
        let s = &self.settings;
        let headers = vec![
            (":method", "POST"),
            (":path", path),
            (":authority", s.authority.as_str()),
            ("content-type", "application/json"),
        ];
        match self.callouts.dispatch(&s.cluster, headers, body, timeout) {
            Ok(token) => self.callouts.wait(token).await,
            Err(why) => Reply::NotSent(why),
        }
    }

    async fn pause(&self, d: Duration) {
        let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        host::pause(&self.callouts, self.settings.pause_cluster.as_deref(), millis).await;
    }

    fn now(&self) -> Duration {
        Duration::from_millis(host::now_millis())
    }
}
