//! The filter's plugin configuration (`configuration` of the wasm filter in `envoy.yaml`),
//! parsed and validated once per VM in `on_configure`.
//!
//! ```json
//! {"scim":  {"adminTokenSha256": "<64 hex>", "publicBaseUrl": "https://scim.example.com"},
//!  "store": {"type": "etcd", "cluster": "etcd", "authority": "127.0.0.1:2379",
//!            "prefix": "scim-edge/", "timeoutMs": 2000, "deadlineMs": 6000}}
//! ```
//! or `"store": {"type": "shared-data"}` (optionally with `"prefix"`).
//!
//! - `scim` is the core's [`Config`] (its keys and checks are the core's); absent means the
//!   core's defaults, which switch the admin API off.
//! - `store` is required: durable (`etcd`) or volatile (`shared-data`) state must be a choice.
//!   For `etcd`, `cluster` names the Envoy cluster the callouts go to (default `etcd`),
//!   `authority` is the `Host` they carry (default: the cluster name), `prefix` is put before
//!   every key (default `scim-edge/`), `timeoutMs` bounds every callout (default 2000).
//!   `deadlineMs` (default three times `timeoutMs`) is how long after its start a request may
//!   still retry a failed etcd call on another member (see `scim_edge_etcd::policy`); a
//!   request's first attempt at each call always runs.
//!   `pauseCluster` (default `scim_pause`) is where a request waiting for a list another
//!   request is changing parks between its reads of etcd: a `GET /scim-edge/pause` callout
//!   carrying `x-envoy-fault-delay-request: <ms>`, which Envoy's fault filter on that cluster's
//!   listener answers after the delay (see `envoy/envoy.yaml.tmpl`). A proxy-wasm request has
//!   no timer of its own; without this its retries would hammer etcd while the holder writes.
//!   `""` turns it off (retries read again at once); a cluster without the fault filter
//!   answers at once, which is the same.
//!
//! - `edge` (optional) guards the product's routes behind the filter: who the caller is, which
//!   routes, what to do with unknown callers, the headers set for the product
//!   (`scim_edge_core::edge` documents every key). Off when absent.
//!
//! Unknown keys are errors, so a typo cannot silently fall back to a default.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use scim_edge_core::edge::EdgeConfig;
use scim_edge_core::Config;
use serde::Deserialize;

pub const DEFAULT_PREFIX: &str = "scim-edge/";
const DEFAULT_CLUSTER: &str = "etcd";
const DEFAULT_PAUSE_CLUSTER: &str = "scim_pause";
const DEFAULT_TIMEOUT_MS: u64 = 2000;
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_DEADLINE_MS: u64 = 300_000;

/// The validated configuration.
#[derive(Debug)]
pub struct Settings {
    pub scim: Config,
    pub store: StoreSettings,
    /// The product's routes the filter guards (`scim_edge_core::edge`); `None`: off.
    pub edge: Option<EdgeConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    Etcd(Rc<EtcdSettings>),
    SharedData { prefix: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    pub cluster: String,
    pub authority: String,
    pub prefix: String,
    pub timeout: Duration,
    /// Retries of failed etcd calls happen only this long after the request started.
    pub deadline: Duration,
    /// Where waiters park between retries; `None`: they do not.
    pub pause_cluster: Option<String>,
}

/// Why the configuration was rejected; logged by `on_configure`, which then fails the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid scim-edge plugin configuration: {}", self.0)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    scim: Option<serde_json::Value>,
    store: Option<RawStore>,
    edge: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    cluster: Option<String>,
    authority: Option<String>,
    prefix: Option<String>,
    timeout_ms: Option<u64>,
    deadline_ms: Option<u64>,
    pause_cluster: Option<String>,
}

const STORE_HINT: &str = r#"set "store" to {"type": "etcd", "cluster": "<envoy cluster>"} (durable, shared by every Envoy) or {"type": "shared-data"} (this Envoy process only, lost on restart)"#;

impl Settings {
    pub fn from_json(bytes: &[u8]) -> Result<Settings, SettingsError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SettingsError("it is not UTF-8".into()))?;
        if text.trim().is_empty() {
            return Err(SettingsError(
                r#"it is empty; expected {"scim": {...}, "store": {"type": "etcd" | "shared-data", ...}}"#
                    .into(),
            ));
        }
        // from_slice, not from_str: one serde_json reader type in the filter (see Config::from_json).
        let raw: Raw =
            serde_json::from_slice(text.trim().as_bytes()).map_err(|e| SettingsError(e.to_string()))?;
        let scim = match raw.scim {
            None | Some(serde_json::Value::Null) => Config::from_json(""),
            Some(v @ serde_json::Value::Object(_)) => Config::from_json(&v.to_string()),
            Some(_) => return Err(SettingsError("\"scim\" must be a JSON object".into())),
        }
        .map_err(|e| SettingsError(format!("\"scim\": {}", e.0)))?;
        let Some(store) = raw.store else {
            return Err(SettingsError(format!("\"store\" is missing: {STORE_HINT}")));
        };
        let store = store_settings(store)?;
        let edge = match raw.edge {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(EdgeConfig::from_value(&v, &scim).map_err(|e| SettingsError(e.0))?),
        };
        Ok(Settings { scim, store, edge })
    }
}

fn store_settings(raw: RawStore) -> Result<StoreSettings, SettingsError> {
    let prefix = raw.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    if prefix.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(SettingsError(format!("store.prefix {prefix:?} must be printable ASCII without spaces")));
    }
    match raw.kind.as_str() {
        "etcd" => {
            let cluster = raw.cluster.unwrap_or_else(|| DEFAULT_CLUSTER.to_owned());
            if cluster.is_empty() || cluster.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err(SettingsError(format!(
                    "store.cluster {cluster:?} must name a cluster defined in envoy.yaml"
                )));
            }
            let authority = raw.authority.unwrap_or_else(|| cluster.clone());
            if authority.is_empty() || authority.bytes().any(|b| !b.is_ascii_graphic() || b == b'/') {
                return Err(SettingsError(format!(
                    "store.authority {authority:?} must be a host[:port] such as 127.0.0.1:2379"
                )));
            }
            let pause_cluster = raw.pause_cluster.unwrap_or_else(|| DEFAULT_PAUSE_CLUSTER.to_owned());
            if pause_cluster.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err(SettingsError(format!(
                    "store.pauseCluster {pause_cluster:?} must name a cluster defined in envoy.yaml, or be \"\" (off)"
                )));
            }
            let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
            if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
                return Err(SettingsError(format!(
                    "store.timeoutMs must be between 1 and {MAX_TIMEOUT_MS}, got {timeout_ms}"
                )));
            }
            let deadline_ms = raw.deadline_ms.unwrap_or(3 * timeout_ms);
            if !(timeout_ms..=MAX_DEADLINE_MS).contains(&deadline_ms) {
                return Err(SettingsError(format!(
                    "store.deadlineMs must be between store.timeoutMs ({timeout_ms}) and {MAX_DEADLINE_MS}, got {deadline_ms}"
                )));
            }
            Ok(StoreSettings::Etcd(Rc::new(EtcdSettings {
                cluster,
                authority,
                prefix,
                timeout: Duration::from_millis(timeout_ms),
                deadline: Duration::from_millis(deadline_ms),
                pause_cluster: Some(pause_cluster).filter(|c| !c.is_empty()),
            })))
        }
        "shared-data" => {
            for (key, set) in [
                ("cluster", raw.cluster.is_some()),
                ("authority", raw.authority.is_some()),
                ("timeoutMs", raw.timeout_ms.is_some()),
                ("deadlineMs", raw.deadline_ms.is_some()),
                ("pauseCluster", raw.pause_cluster.is_some()),
            ] {
                if set {
                    return Err(SettingsError(format!(
                        "store.{key} applies to the etcd store only, not to shared-data"
                    )));
                }
            }
            Ok(StoreSettings::SharedData { prefix })
        }
        other => Err(SettingsError(format!("store.type {other:?} is not a store: {STORE_HINT}"))),
    }
}

impl StoreSettings {
    /// One line for the log at configure time.
    pub fn describe(&self) -> String {
        match self {
            StoreSettings::Etcd(e) => format!(
                "etcd via cluster {:?} (authority {}, prefix {:?}, timeout {} ms, retries for {} ms, waiters pause on {})",
                e.cluster,
                e.authority,
                e.prefix,
                e.timeout.as_millis(),
                e.deadline.as_millis(),
                e.pause_cluster.as_deref().map_or("nothing".to_owned(), |c| format!("{c:?}")),
            ),
            StoreSettings::SharedData { prefix } => {
                format!("Envoy shared data (volatile: this process only), prefix {prefix:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        Settings::from_json(json.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn etcd_defaults() {
        let s = Settings::from_json(br#"{"store":{"type":"etcd"}}"#).unwrap();
        assert_eq!(
            s.store,
            StoreSettings::Etcd(Rc::new(EtcdSettings {
                cluster: "etcd".into(),
                authority: "etcd".into(),
                prefix: "scim-edge/".into(),
                timeout: Duration::from_millis(2000),
                deadline: Duration::from_millis(6000),
                pause_cluster: Some("scim_pause".into()),
            }))
        );
        let off = Settings::from_json(br#"{"store":{"type":"etcd","pauseCluster":""}}"#).unwrap();
        assert!(matches!(off.store, StoreSettings::Etcd(e) if e.pause_cluster.is_none()));
        assert_eq!(s.scim, Config::default());
    }

    #[test]
    fn shared_data_and_scim() {
        let h = "ab".repeat(32);
        let s = Settings::from_json(
            format!(r#"{{"scim":{{"adminTokenSha256":"{h}"}},"store":{{"type":"shared-data"}}}}"#).as_bytes(),
        )
        .unwrap();
        assert!(s.scim.admin_token_sha256.is_some());
        assert_eq!(s.store, StoreSettings::SharedData { prefix: "scim-edge/".into() });
    }

    #[test]
    fn problems_are_named() {
        assert!(err("{}").contains("\"store\" is missing"));
        assert!(err(r#"{"store":{"type":"redis"}}"#).contains("store.type \"redis\""));
        assert!(err(r#"{"store":{"type":"etcd","timeoutMs":0}}"#).contains("store.timeoutMs"));
        assert!(
            err(r#"{"store":{"type":"etcd","timeoutMs":500,"deadlineMs":400}}"#).contains("store.deadlineMs")
        );
        assert!(err(r#"{"store":{"type":"shared-data","deadlineMs":400}}"#).contains("store.deadlineMs"));
        assert!(err(r#"{"store":{"type":"etcd","clustr":"x"}}"#).contains("clustr"));
        assert!(err(r#"{"store":{"type":"shared-data","cluster":"x"}}"#).contains("store.cluster"));
        assert!(err(r#"{"store":{"type":"shared-data","pauseCluster":"x"}}"#).contains("store.pauseCluster"));
        assert!(err(r#"{"store":{"type":"etcd","pauseCluster":"a b"}}"#).contains("store.pauseCluster"));
        assert!(err(r#"{"scim":{"adminTokenSha256":"xyz"},"store":{"type":"etcd"}}"#).contains("64 hex"));
        assert!(err(r#"{"scim":[],"store":{"type":"etcd"}}"#).contains("\"scim\" must be"));
        assert!(err("not json").contains("invalid scim-edge plugin configuration"));
        assert!(err(r#"{"store":{"type":"etcd"},"edge":{"identity":{},"tenant":{"fixed":"a"}}}"#)
            .contains("edge: identity"));
        let s = Settings::from_json(
            br#"{"store":{"type":"etcd"},"edge":{"identity":{"header":"x-user"},"tenant":{"fixed":"acme"}}}"#,
        )
        .unwrap();
        assert!(s.edge.is_some_and(|e| e.guards("/app")));
    }
}
