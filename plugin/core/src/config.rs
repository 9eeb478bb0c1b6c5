//! The plugin's configuration, parsed and validated once per host start.
//!
//! JSON, camelCase keys, every key optional:
//! ```json
//! {"adminTokenSha256": "<64 hex>", "publicBaseUrl": "https://scim.example.com",
//!  "defaultPageSize": 100, "maxPageSize": 1000}
//! ```
//! Without `adminTokenSha256` the admin API is off (every `/admin/` request gets 404).

use std::fmt;

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// SHA-256 of the operator's admin token. `None`: admin API off.
    pub admin_token_sha256: Option<[u8; 32]>,
    /// Base of the SCIM URLs handed out (`{base}/scim/v2/{connection}`), without a trailing
    /// slash. `None`: taken from each request's scheme and `Host`.
    pub public_base_url: Option<String>,
    pub default_page_size: usize,
    pub max_page_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            admin_token_sha256: None,
            public_base_url: None,
            default_page_size: 100,
            max_page_size: 1000,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    admin_token_sha256: Option<String>,
    public_base_url: Option<String>,
    default_page_size: Option<usize>,
    max_page_size: Option<usize>,
}

impl Config {
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        let json = json.trim();
        let raw: Raw = if json.is_empty() {
            Raw {
                admin_token_sha256: None,
                public_base_url: None,
                default_page_size: None,
                max_page_size: None,
            }
        } else {
            serde_json::from_str(json).map_err(|e| ConfigError(e.to_string()))?
        };
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
        Ok(Config { admin_token_sha256, public_base_url, default_page_size, max_page_size })
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
    fn contradictions_are_rejected_with_a_reason() {
        let e = Config::from_json(r#"{"defaultPageSize": 50, "maxPageSize": 10}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("larger than maxPageSize")));
        let e = Config::from_json(r#"{"adminTokenSha256": "xyz"}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("64 hex digits")));
        let e = Config::from_json(r#"{"publicBaseUrl": "ftp://x"}"#).err();
        assert!(e.is_some_and(|e| e.0.contains("publicBaseUrl")));
        assert!(Config::from_json(r#"{"adminToken": "x"}"#).is_err());
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
}
