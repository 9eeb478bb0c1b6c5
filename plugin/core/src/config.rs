//! The plugin's configuration, parsed and validated once per host start.
//!
//! JSON, camelCase keys, every key optional:
//! ```json
//! {"adminTokenSha256": "<64 hex>", "publicBaseUrl": "https://scim.example.com",
//!  "defaultPageSize": 100, "maxPageSize": 1000}
//! ```
//! Without `adminTokenSha256` the admin API is off (every `/admin/` request gets 404).
//!
//! Input limits (see [`crate::limits`] for what each bounds and the answer when exceeded),
//! each optional with a safe default and an accepted range:
//! `maxBodyBytes`, `maxJsonDepth`, `maxFilterLength`, `maxFilterDepth`, `maxPatchOperations`,
//! `maxMembersPerRequest`, `maxAttributesPerResource`, `maxValueBytes`, `maxResourceBytes`.
//!
//! `"rateLimit": {"requestsPerSecond": 50, "burst": 500}` sets the per-tenant rate limit
//! ([`crate::rate`]; both keys optional, those are the defaults, and so is an absent key: the
//! limit is on unless the key is `null`).
//!
//! Tenant administration: `"logSize": 1000` (provisioning-log entries kept per tenant, oldest
//! dropped first), `"extraRoles": ["auditor"]` (roles besides `user`, `administrator` and
//! `system_technician`; they grant what `user` grants), `"defaultTokenLifetimeDays": 365`
//! (expiry of generated SCIM tokens when the tenant sets none; absent: tokens do not expire).
//!
//! Uniqueness: `"uniqueness": {"externalId": false, "groupDisplayName": false}` (both keys
//! optional, those are the defaults). `userName` is always unique per tenant (ignoring case).
//! RFC 7643 gives `externalId` no uniqueness (Entra fills it from `mailNickname`, which two
//! users may share) and Entra allows two groups with one `displayName`, so by default both are
//! indexed without being unique; `true` makes the attribute unique per tenant and resource
//! type again (a second resource with the value gets 409 `uniqueness`), and `/Schemas` says so.
//!
//! Sign-in links and browser sessions ([`crate::sessions`]), every key optional, these are the
//! defaults: `"sessions": {"linkTtlSeconds": 300, "maxLinkTtlSeconds": 3600,
//! "idleTimeoutSeconds": 1800, "absoluteTimeoutSeconds": 43200, "frameAncestors": []}`.
//! `frameAncestors` lists the origins (`https://app.example.com`, or `'self'`) that may embed the
//! admin page in a frame; empty: none may (`frame-ancestors 'none'`).

use std::fmt;

use serde::Deserialize;

use crate::limits::{Limits, RANGES};
use crate::rate::RateLimit;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// SHA-256 of the operator's admin token. `None`: admin API off.
    pub admin_token_sha256: Option<[u8; 32]>,
    /// Base of the SCIM URLs handed out (`{base}/scim/v2/{connection}`), without a trailing
    /// slash. `None`: taken from each request's scheme and `Host`.
    pub public_base_url: Option<String>,
    pub default_page_size: usize,
    pub max_page_size: usize,
    pub limits: Limits,
    /// Per-tenant token bucket (on by default, see [`crate::rate`]); `None`: off.
    pub rate_limit: Option<RateLimit>,
    /// Provisioning-log entries kept per tenant.
    pub log_size: u64,
    /// Roles beyond the built-in ones (`crate::roles`).
    pub extra_roles: Vec<String>,
    /// Lifetime of generated SCIM tokens when the tenant sets none; `None`: no expiry.
    pub default_token_lifetime_days: Option<u32>,
    /// Which attributes besides `userName` are unique per tenant.
    pub uniqueness: UniqueAttributes,
    /// Sign-in links and browser sessions (`crate::sessions`).
    pub sessions: SessionLimits,
}

/// Lifetimes of sign-in links and sessions, and who may frame the admin page (`"sessions"`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SessionLimits {
    /// How long a sign-in link stays usable when the request names no `ttlSeconds`.
    pub link_ttl_seconds: u64,
    /// The longest `ttlSeconds` a request may ask for.
    pub max_link_ttl_seconds: u64,
    /// A session unused this long ends.
    pub idle_timeout_seconds: u64,
    /// A session ends this long after sign-in, however used.
    pub absolute_timeout_seconds: u64,
    /// Origins that may embed the admin page (`frame-ancestors`); empty: none.
    pub frame_ancestors: Vec<String>,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            link_ttl_seconds: 300,
            max_link_ttl_seconds: 3600,
            idle_timeout_seconds: 1800,
            absolute_timeout_seconds: 43_200,
            frame_ancestors: Vec::new(),
        }
    }
}

impl SessionLimits {
    fn validate(&self) -> Result<(), ConfigError> {
        let ranges = [
            ("linkTtlSeconds", self.link_ttl_seconds, 10, 86_400),
            ("maxLinkTtlSeconds", self.max_link_ttl_seconds, 10, 86_400),
            ("idleTimeoutSeconds", self.idle_timeout_seconds, 60, 7 * 86_400),
            ("absoluteTimeoutSeconds", self.absolute_timeout_seconds, 60, 30 * 86_400),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError(format!(
                    "sessions.{key} must be between {min} and {max}, got {value}"
                )));
            }
        }
        if self.link_ttl_seconds > self.max_link_ttl_seconds {
            return Err(ConfigError(format!(
                "sessions.linkTtlSeconds ({}) is larger than sessions.maxLinkTtlSeconds ({})",
                self.link_ttl_seconds, self.max_link_ttl_seconds
            )));
        }
        if self.idle_timeout_seconds > self.absolute_timeout_seconds {
            return Err(ConfigError(format!(
                "sessions.idleTimeoutSeconds ({}) is larger than sessions.absoluteTimeoutSeconds ({})",
                self.idle_timeout_seconds, self.absolute_timeout_seconds
            )));
        }
        if self.frame_ancestors.len() > 16 {
            return Err(ConfigError("sessions.frameAncestors may name at most 16 origins".into()));
        }
        for a in &self.frame_ancestors {
            if !valid_frame_ancestor(a) {
                return Err(ConfigError(format!(
                    "sessions.frameAncestors: {a:?} is not an origin such as https://app.example.com (or 'self')"
                )));
            }
        }
        Ok(())
    }

    /// The page's `frame-ancestors` source list.
    pub fn frame_ancestors_csp(&self) -> String {
        if self.frame_ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            self.frame_ancestors.join(" ")
        }
    }
}

/// `'self'`, or `http(s)://host[:port]` (a leading `*.` wildcard allowed): nothing that could
/// end the CSP directive or add another.
fn valid_frame_ancestor(a: &str) -> bool {
    if a == "'self'" {
        return true;
    }
    let Some(host) = a.strip_prefix("https://").or_else(|| a.strip_prefix("http://")) else {
        return false;
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
}

/// The optional uniqueness of attributes RFC 7643 does not make unique (`"uniqueness"`).
/// Off by default: the values are indexed (filters on them stay cheap) but may be shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UniqueAttributes {
    /// `externalId` of users (among users) and of groups (among groups).
    pub external_id: bool,
    /// Group `displayName`, ignoring case.
    pub group_display_name: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            admin_token_sha256: None,
            public_base_url: None,
            default_page_size: 100,
            max_page_size: 1000,
            limits: Limits::default(),
            rate_limit: Some(RateLimit::default()),
            log_size: 1000,
            extra_roles: Vec::new(),
            default_token_lifetime_days: None,
            uniqueness: UniqueAttributes::default(),
            sessions: SessionLimits::default(),
        }
    }
}

/// Why a configuration was rejected, in words an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid scim-edge configuration: {}", self.0)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    admin_token_sha256: Option<String>,
    public_base_url: Option<String>,
    default_page_size: Option<usize>,
    max_page_size: Option<usize>,
    max_body_bytes: Option<usize>,
    max_json_depth: Option<usize>,
    max_filter_length: Option<usize>,
    max_filter_depth: Option<usize>,
    max_patch_operations: Option<usize>,
    max_members_per_request: Option<usize>,
    max_attributes_per_resource: Option<usize>,
    max_value_bytes: Option<usize>,
    max_resource_bytes: Option<usize>,
    /// Absent: the default limit; `null`: off (hence not a plain `Option`).
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<RawRateLimit>>,
    log_size: Option<u64>,
    extra_roles: Option<Vec<String>>,
    default_token_lifetime_days: Option<u32>,
    uniqueness: Option<UniqueAttributes>,
    sessions: Option<SessionLimits>,
}

/// A key that is present, `null` included: `Some(None)` for `null`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRateLimit {
    requests_per_second: Option<u32>,
    burst: Option<u32>,
}

impl Config {
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        Config::from_json_with(json, None, None)
    }

    /// [`Config::from_json`] with `adminTokenSha256` and `publicBaseUrl` set over what `json`
    /// says, where given and not blank (a host that takes them from separate settings, such as
    /// Spin's variables), without building and parsing the JSON a second time.
    pub fn from_json_with(
        json: &str,
        admin_token_sha256: Option<&str>,
        public_base_url: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let json = json.trim();
        let mut raw: Raw = if json.is_empty() {
            Raw::default()
        } else {
            // from_slice, not from_str: the rest of the plugin parses JSON from bytes, and a second
            // reader type would compile serde_json's whole parser in again (~11 KB of .wasm).
            serde_json::from_slice(json.as_bytes()).map_err(|e| {
                ConfigError(if e.is_syntax() || e.is_eof() {
                    format!("not valid JSON: {e}")
                } else {
                    e.to_string()
                })
            })?
        };
        let given = |v: Option<&str>| v.filter(|v| !v.trim().is_empty()).map(str::to_owned);
        if let Some(v) = given(admin_token_sha256) {
            raw.admin_token_sha256 = Some(v);
        }
        if let Some(v) = given(public_base_url) {
            raw.public_base_url = Some(v);
        }
        let d = Config::default();
        let admin_token_sha256 = match raw.admin_token_sha256.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(h) => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(h, &mut out).map_err(|_| {
                    ConfigError(
                        "adminTokenSha256 must be the SHA-256 of the admin token as 64 hex digits \
                         (e.g. `printf %s \"$TOKEN\" | sha256sum`)"
                            .into(),
                    )
                })?;
                Some(out)
            }
        };
        let public_base_url = match raw.public_base_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                let u = u.trim_end_matches('/');
                if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() <= "https://".len() {
                    return Err(ConfigError(format!(
                        "publicBaseUrl must be an absolute http(s) URL such as https://scim.example.com, got {u:?}"
                    )));
                }
                Some(u.to_owned())
            }
        };
        let default_page_size = raw.default_page_size.unwrap_or(d.default_page_size);
        let max_page_size = raw.max_page_size.unwrap_or(d.max_page_size);
        if default_page_size == 0 || max_page_size == 0 {
            return Err(ConfigError("defaultPageSize and maxPageSize must be at least 1".into()));
        }
        if default_page_size > max_page_size {
            return Err(ConfigError(format!(
                "defaultPageSize ({default_page_size}) is larger than maxPageSize ({max_page_size})"
            )));
        }
        let dl = Limits::default();
        let limits = Limits {
            max_body_bytes: raw.max_body_bytes.unwrap_or(dl.max_body_bytes),
            max_json_depth: raw.max_json_depth.unwrap_or(dl.max_json_depth),
            max_filter_length: raw.max_filter_length.unwrap_or(dl.max_filter_length),
            max_filter_depth: raw.max_filter_depth.unwrap_or(dl.max_filter_depth),
            max_patch_operations: raw.max_patch_operations.unwrap_or(dl.max_patch_operations),
            max_members_per_request: raw.max_members_per_request.unwrap_or(dl.max_members_per_request),
            max_attributes_per_resource: raw
                .max_attributes_per_resource
                .unwrap_or(dl.max_attributes_per_resource),
            max_value_bytes: raw.max_value_bytes.unwrap_or(dl.max_value_bytes),
            max_resource_bytes: raw.max_resource_bytes.unwrap_or(dl.max_resource_bytes),
        };
        for ((key, value), (_, min, max)) in limits.by_key().into_iter().zip(RANGES) {
            if !(min..=max).contains(&value) {
                return Err(ConfigError(format!("{key} must be between {min} and {max}, got {value}")));
            }
        }
        if limits.max_value_bytes > limits.max_resource_bytes {
            return Err(ConfigError(format!(
                "maxValueBytes ({}) is larger than maxResourceBytes ({})",
                limits.max_value_bytes, limits.max_resource_bytes
            )));
        }
        if limits.max_resource_bytes > limits.max_body_bytes {
            return Err(ConfigError(format!(
                "maxResourceBytes ({}) is larger than maxBodyBytes ({}): a PUT of a stored resource would not fit",
                limits.max_resource_bytes, limits.max_body_bytes
            )));
        }
        let rate_limit = match raw.rate_limit {
            None => d.rate_limit,
            Some(None) => None,
            Some(Some(r)) => {
                let d = RateLimit::default();
                let rl = RateLimit {
                    requests_per_second: r.requests_per_second.unwrap_or(d.requests_per_second),
                    burst: r.burst.unwrap_or(d.burst),
                };
                if !(1..=1_000_000).contains(&rl.requests_per_second) || !(1..=10_000_000).contains(&rl.burst)
                {
                    return Err(ConfigError(format!(
                        "rateLimit.requestsPerSecond must be 1..=1000000 and rateLimit.burst 1..=10000000, \
                         got {} and {}",
                        rl.requests_per_second, rl.burst
                    )));
                }
                Some(rl)
            }
        };
        let log_size = raw.log_size.unwrap_or(d.log_size);
        if !(10..=1_000_000).contains(&log_size) {
            return Err(ConfigError(format!("logSize must be between 10 and 1000000, got {log_size}")));
        }
        let extra_roles = raw.extra_roles.unwrap_or_default();
        if extra_roles.len() > 32 {
            return Err(ConfigError("extraRoles may name at most 32 roles".into()));
        }
        for (i, r) in extra_roles.iter().enumerate() {
            if !crate::roles::valid_name(r) {
                return Err(ConfigError(format!(
                    "extraRoles: {r:?} is not a role name (1-32 characters from a-z 0-9 _)"
                )));
            }
            if crate::roles::BUILTIN.contains(&r.as_str()) || extra_roles.iter().take(i).any(|x| x == r) {
                return Err(ConfigError(format!("extraRoles: {r:?} is named twice or is a built-in role")));
            }
        }
        let default_token_lifetime_days = raw.default_token_lifetime_days;
        if default_token_lifetime_days.is_some_and(|d| !(1..=36_500).contains(&d)) {
            return Err(ConfigError("defaultTokenLifetimeDays must be between 1 and 36500".into()));
        }
        let sessions = raw.sessions.unwrap_or_default();
        sessions.validate()?;
        Ok(Config {
            admin_token_sha256,
            public_base_url,
            default_page_size,
            max_page_size,
            limits,
            rate_limit,
            log_size,
            extra_roles,
            default_token_lifetime_days,
            uniqueness: raw.uniqueness.unwrap_or_default(),
            sessions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_default_with_admin_off() {
        assert_eq!(Config::from_json("").ok(), Some(Config::default()));
        assert_eq!(Config::from_json("{}").ok(), Some(Config::default()));
    }

    #[test]
    fn separate_settings_override_the_json_unless_blank() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let json = format!(r#"{{"adminTokenSha256": "{a}", "publicBaseUrl": "https://json.example"}}"#);
        let c = Config::from_json_with(&json, Some(&b), Some(" ")).ok();
        assert_eq!(c.as_ref().and_then(|c| c.admin_token_sha256), Some([0xbb; 32]));
        assert_eq!(c.and_then(|c| c.public_base_url).as_deref(), Some("https://json.example"));
        let c = Config::from_json_with("", None, Some("https://var.example")).ok();
        assert_eq!(c.and_then(|c| c.public_base_url).as_deref(), Some("https://var.example"));
        // An override is validated like the JSON key.
        assert!(Config::from_json_with("{}", Some("xyz"), None).is_err_and(|e| e.0.contains("64 hex digits")));
    }

    #[test]
    fn syntax_errors_say_not_valid_json_and_data_errors_name_the_key() {
        let e = Config::from_json(r#"{"maxBodyBytes": "#).err().map(|e| e.0).unwrap_or_default();
        assert!(e.starts_with("not valid JSON: "), "{e}");
        let e = Config::from_json(r#"{"limits": 1}"#).err().map(|e| e.0).unwrap_or_default();
        assert!(e.contains("unknown field `limits`") && !e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn contradictions_are_rejected_with_a_reason() {
        let e = Config::from_json(r#"{"defaultPageSize": 50, "maxPageSize": 10}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("larger than maxPageSize")));
        let e = Config::from_json(r#"{"adminTokenSha256": "xyz"}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("64 hex digits")));
        let e = Config::from_json(r#"{"publicBaseUrl": "ftp://x"}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("publicBaseUrl")));
        assert!(Config::from_json(r#"{"adminToken": "x"}"#).is_err());
        let e = Config::from_json(r#"{"maxFilterDepth": 33}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("maxFilterDepth must be between 1 and 32")));
        let e = Config::from_json(r#"{"maxBodyBytes": 0}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("maxBodyBytes")));
        let e = Config::from_json(r#"{"maxValueBytes": 100000, "maxResourceBytes": 65536}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("larger than maxResourceBytes")));
        let e = Config::from_json(r#"{"maxResourceBytes": 2000000}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("larger than maxBodyBytes")));
    }

    #[test]
    fn rate_limit_is_on_unless_turned_off() {
        let on = Some(RateLimit { requests_per_second: 50, burst: 500 });
        assert_eq!(Config::default().rate_limit, on);
        assert_eq!(Config::from_json("{}").unwrap().rate_limit, on);
        assert_eq!(Config::from_json(r#"{"rateLimit": null}"#).unwrap().rate_limit, None);
        let c = Config::from_json(r#"{"rateLimit": {}}"#).unwrap();
        assert_eq!(c.rate_limit, Some(RateLimit { requests_per_second: 50, burst: 500 }));
        let c = Config::from_json(r#"{"rateLimit": {"requestsPerSecond": 25, "burst": 40}}"#).unwrap();
        assert_eq!(c.rate_limit, Some(RateLimit { requests_per_second: 25, burst: 40 }));
        assert!(Config::from_json(r#"{"rateLimit": {"requestsPerSecond": 0}}"#).is_err());
        assert!(Config::from_json(r#"{"rateLimit": {"rps": 5}}"#).is_err());
    }

    #[test]
    fn limits_have_safe_defaults_and_parse() {
        let d = Config::default().limits;
        assert_eq!((d.max_body_bytes, d.max_json_depth, d.max_filter_length), (1 << 20, 32, 4096));
        assert_eq!((d.max_filter_depth, d.max_patch_operations, d.max_members_per_request), (16, 256, 1000));
        assert_eq!(
            (d.max_attributes_per_resource, d.max_value_bytes, d.max_resource_bytes),
            (1000, 16384, 65536)
        );
        let c = Config::from_json(
            r#"{"maxBodyBytes": 8192, "maxJsonDepth": 10, "maxFilterLength": 300, "maxFilterDepth": 2,
                "maxPatchOperations": 3, "maxMembersPerRequest": 4, "maxAttributesPerResource": 20,
                "maxValueBytes": 500, "maxResourceBytes": 5000}"#,
        )
        .unwrap();
        assert_eq!(
            c.limits,
            Limits {
                max_body_bytes: 8192,
                max_json_depth: 10,
                max_filter_length: 300,
                max_filter_depth: 2,
                max_patch_operations: 3,
                max_members_per_request: 4,
                max_attributes_per_resource: 20,
                max_value_bytes: 500,
                max_resource_bytes: 5000,
            }
        );
    }

    #[test]
    fn administration_keys() {
        let c = Config::from_json(
            r#"{"logSize": 50, "extraRoles": ["auditor"], "defaultTokenLifetimeDays": 30}"#,
        )
        .unwrap();
        assert_eq!(
            (c.log_size, c.extra_roles.clone(), c.default_token_lifetime_days),
            (50, vec!["auditor".to_owned()], Some(30))
        );
        let e = Config::from_json(r#"{"extraRoles": ["administrator"]}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("built-in")));
        let e = Config::from_json(r#"{"extraRoles": ["Bad Role"]}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("not a role name")));
        assert!(Config::from_json(r#"{"logSize": 1}"#).is_err());
        assert!(Config::from_json(r#"{"defaultTokenLifetimeDays": 0}"#).is_err());
    }

    #[test]
    fn uniqueness_of_external_id_and_group_names_is_off_unless_asked_for() {
        assert_eq!(
            Config::default().uniqueness,
            UniqueAttributes { external_id: false, group_display_name: false }
        );
        let c = Config::from_json(r#"{"uniqueness": {"externalId": true}}"#).unwrap();
        assert_eq!(c.uniqueness, UniqueAttributes { external_id: true, group_display_name: false });
        let c =
            Config::from_json(r#"{"uniqueness": {"groupDisplayName": true, "externalId": false}}"#).unwrap();
        assert_eq!(c.uniqueness, UniqueAttributes { external_id: false, group_display_name: true });
        let e = Config::from_json(r#"{"uniqueness": {"userName": false}}"#)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(e.contains("unknown field `userName`"), "{e}");
        assert!(Config::from_json(r#"{"uniqueness": {"externalId": "yes"}}"#).is_err());
    }

    #[test]
    fn parses_everything() {
        let h = "a".repeat(64);
        let c = Config::from_json(&format!(
            r#"{{"adminTokenSha256":"{h}","publicBaseUrl":"https://x.example/","maxPageSize":5,"defaultPageSize":5}}"#
        ));
        let c = c.ok();
        assert_eq!(c.as_ref().and_then(|c| c.public_base_url.clone()).as_deref(), Some("https://x.example"));
        assert_eq!(c.map(|c| c.admin_token_sha256.is_some()), Some(true));
    }

    #[test]
    fn session_limits_default_parse_and_reject_contradictions() {
        let d = Config::from_json("{}").map(|c| c.sessions);
        assert_eq!(d, Ok(SessionLimits::default()));
        assert_eq!(SessionLimits::default().frame_ancestors_csp(), "'none'");
        let c = Config::from_json(
            r#"{"sessions": {"linkTtlSeconds": 60, "idleTimeoutSeconds": 600,
                "frameAncestors": ["https://app.example.com", "'self'", "https://*.example.org:8443"]}}"#,
        )
        .map(|c| c.sessions);
        let c = c.unwrap_or_default();
        assert_eq!((c.link_ttl_seconds, c.idle_timeout_seconds), (60, 600));
        assert_eq!(c.frame_ancestors_csp(), "https://app.example.com 'self' https://*.example.org:8443");
        for (bad, says) in [
            (r#"{"sessions": {"linkTtlSeconds": 5}}"#, "linkTtlSeconds must be between"),
            (r#"{"sessions": {"linkTtlSeconds": 7200}}"#, "larger than sessions.maxLinkTtlSeconds"),
            (
                r#"{"sessions": {"idleTimeoutSeconds": 7200, "absoluteTimeoutSeconds": 3600}}"#,
                "idleTimeoutSeconds",
            ),
            (r#"{"sessions": {"frameAncestors": ["https://a.example; script-src *"]}}"#, "not an origin"),
            (r#"{"sessions": {"frameAncestors": ["*"]}}"#, "not an origin"),
            (r#"{"sessions": {"frameAncestors": ["'none' https://a"]}}"#, "not an origin"),
            (r#"{"sessions": {"idle": 5}}"#, "unknown field"),
        ] {
            let e = Config::from_json(bad).err().map(|e| e.0).unwrap_or_default();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
