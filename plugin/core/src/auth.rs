//! Bearer-token checks. Tokens are never stored or compared in plaintext: only their SHA-256,
//! compared in constant time.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The token of an `Authorization: Bearer <token>` header.
///
/// The scheme is case-insensitive, and the header is read as people paste it: spaces and tabs
/// around and between the parts are ignored, and a doubled scheme (`Bearer Bearer <token>`,
/// any case of either word) counts as one. The product guide tells administrators to paste the
/// *Authorization Header value* (`Bearer sce_…`) into Entra's *Secret Token*, to which Entra
/// adds its own `Bearer `. Anything else — another scheme, no token, a token with inner
/// whitespace, a third `Bearer` — is no bearer token.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    bearer_value(headers.get(http::header::AUTHORIZATION)?.to_str().ok()?)
}

fn bearer_value(v: &str) -> Option<&str> {
    let is_space = |c: char| c == ' ' || c == '\t';
    let is_bearer = |w: &str| w.eq_ignore_ascii_case("bearer");
    let mut words = v.split(is_space).filter(|w| !w.is_empty());
    let (first, second, third) = (words.next()?, words.next()?, words.next());
    if !is_bearer(first) || words.next().is_some() {
        return None;
    }
    match third {
        None => Some(second),
        Some(token) if is_bearer(second) => Some(token),
        Some(_) => None,
    }
}

pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `token` hashes to `expected`, in constant time.
pub fn token_matches(token: &str, expected: &[u8; 32]) -> bool {
    sha256(token).ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        // (header value, token it yields)
        let cases: &[(&str, Option<&str>)] = &[
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("  Bearer\tabc\t ", Some("abc")),
            ("Bearer \t  abc", Some("abc")),
            // The Authorization Header value pasted into Entra's Secret Token.
            ("Bearer Bearer sce_0123", Some("sce_0123")),
            ("Bearer bearer sce_0123", Some("sce_0123")),
            ("bEARER BeArEr sce_0123", Some("sce_0123")),
            ("Bearer   Bearer\t\tsce_0123  ", Some("sce_0123")),
            // A token that is itself the word: one `Bearer` is the scheme, the other the token.
            ("Bearer Bearer", Some("Bearer")),
            // Everything else: no token.
            ("", None),
            ("   ", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearer  \t ", None),
            ("Basic abc", None),
            ("Basic Bearer abc", None),
            ("abc", None),
            ("Bearerabc", None),
            ("Bearer Bearer Bearer abc", None),
            ("Bearer abc def", None),
            ("Bearer Basic abc", None),
            ("Bearer Bearer abc def", None),
            ("Bearer\nabc", None),
            ("Token abc", None),
        ];
        for (value, want) in cases {
            assert_eq!(bearer_value(value), *want, "{value:?}");
            let mut h = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(value) {
                h.insert(http::header::AUTHORIZATION, v);
                assert_eq!(bearer(&h), *want, "{value:?} as a header");
            }
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_bytes(b"Bearer \xff").unwrap());
        assert_eq!(bearer(&h), None, "not visible ASCII");
    }

    #[test]
    fn matching() {
        let h = sha256("s3cret");
        assert!(token_matches("s3cret", &h));
        assert!(!token_matches("s3cres", &h));
        assert!(!token_matches("", &h));
    }
}
