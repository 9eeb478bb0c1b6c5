//! The one error type of the core: a SCIM error response (RFC 7644 §3.12).

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use crate::store::StoreError;

macro_rules! scim_types {
    ($($variant:ident => $wire:literal, $status:literal;)*) => {
        /// `scimType` values of RFC 7644 §3.12, each with the status it is sent with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ScimType { $($variant),* }

        impl ScimType {
            pub fn as_str(self) -> &'static str {
                match self { $(ScimType::$variant => $wire),* }
            }
            pub fn status(self) -> StatusCode {
                match self {
                    $(ScimType::$variant => StatusCode::from_u16($status).unwrap_or(StatusCode::BAD_REQUEST)),*
                }
            }
        }
    };
}

scim_types! {
    InvalidFilter => "invalidFilter", 400;
    TooMany => "tooMany", 400;
    Uniqueness => "uniqueness", 409;
    Mutability => "mutability", 400;
    InvalidSyntax => "invalidSyntax", 400;
    InvalidPath => "invalidPath", 400;
    NoTarget => "noTarget", 400;
    InvalidValue => "invalidValue", 400;
    InvalidVers => "invalidVers", 412;
    Sensitive => "sensitive", 403;
}

/// A SCIM error: status, optional `scimType`, and a `detail` a human can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<ScimType>,
    pub detail: String,
    /// Adds `WWW-Authenticate: Bearer` (401 answers).
    pub challenge: bool,
    /// Adds `Allow` (405 answers).
    pub allow: Option<&'static str>,
    /// Adds `Retry-After`, in seconds (429 answers).
    pub retry_after: Option<u64>,
}

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

impl ScimError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type: None,
            detail: detail.into(),
            challenge: false,
            allow: None,
            retry_after: None,
        }
    }
    pub fn typed(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError {
            status: scim_type.status(),
            scim_type: Some(scim_type),
            ..Self::new(StatusCode::BAD_REQUEST, detail)
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::InvalidSyntax, detail)
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::InvalidValue, detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::InvalidPath, detail)
    }
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::InvalidFilter, detail)
    }
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::NoTarget, detail)
    }
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::Mutability, detail)
    }
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::Uniqueness, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ScimError { challenge: true, ..Self::new(StatusCode::UNAUTHORIZED, detail) }
    }
    pub fn method_not_allowed(allow: &'static str) -> Self {
        ScimError {
            allow: Some(allow),
            ..Self::new(StatusCode::METHOD_NOT_ALLOWED, format!("this endpoint supports only {allow}"))
        }
    }
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            // Not "nothing was changed": the store has no transactions, and a write that failed
            // half-way may have left part of itself (SECURITY.md, residual risks).
            "the directory store is unavailable; retry later",
        )
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }

    /// The only place that writes the SCIM error body.
    pub fn into_response(self) -> http::Response<Bytes> {
        let mut body = serde_json::json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_str(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, body.as_object_mut()) {
            obj.insert("scimType".into(), t.as_str().into());
        }
        let mut res = http::Response::new(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
        if self.challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim-edge\""));
        }
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        // Every 503 says when to retry (Entra backs off on it): a second, unless it said.
        let retry_after =
            self.retry_after.or_else(|| (self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
        if let Some(secs) = retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            // A conflict that reaches a client means retries ran out under contention.
            StoreError::Conflict => ScimError::new(
                StatusCode::CONFLICT,
                "the resource was changed by a concurrent request; retry",
            ),
            StoreError::Unavailable(_) => ScimError::unavailable(),
        }
    }
}

pub type ScimResult<T> = Result<T, ScimError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_503_says_when_to_retry() {
        let res = ScimError::from(StoreError::Unavailable("etcd: down".into())).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
        let said = ScimError { retry_after: Some(7), ..ScimError::unavailable() }.into_response();
        assert_eq!(said.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("7"));
        let other = ScimError::internal("bug").into_response();
        assert!(other.headers().get(header::RETRY_AFTER).is_none());
    }
}
