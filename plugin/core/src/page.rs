//! The admin page: a static single-page app (`page/index.html`, `app.js`, `app.css`) compiled
//! into the plugin and served under `/admin/`. It talks to the admin API (`/admin/v1/…`) from the
//! browser with the operator's token, or with a tenant person's session cookie
//! (`crate::sessions`); this module only hands out the three files.
//!
//! Not here: authentication (the page itself is public and holds no data; every API call it
//! makes carries the token) and routing (the caller passes the path after `/admin`).
//!
//! The files are served with a strict Content-Security-Policy (no inline script or style, no
//! other origin, no framing), so the page keeps working only as long as it stays free of inline
//! code: a unit test below checks `index.html` for it.
//!
//! The plugin carries the files gzip-compressed (`build.rs` compresses them at build time: ~18 KB
//! instead of ~70 KB of text in every `.wasm`) and serves those bytes as they are, with
//! `Content-Encoding: gzip`. Every browser accepts gzip; a client that does not say so in
//! `Accept-Encoding` (curl without `--compressed`, for one) gets a 406 telling it the page is
//! for a browser, rather than bytes it cannot read. Nothing decompresses in the plugin.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use crate::error::{ScimError, ScimResult};

/// Where the page lives; `/admin` redirects here so relative URLs (`app.js`, `v1/…`) resolve.
pub const PAGE_PATH: &str = "/admin/";

const INDEX_HTML_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/index.html.gz"));
const APP_JS_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.js.gz"));
const APP_CSS_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.css.gz"));

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Same origin only (plus `data:` images, so the stylesheet may inline small icons); framing
/// only by the configured origins (`sessions.frameAncestors`), by default none.
const CSP_SOURCES: &str = "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:";
#[cfg(test)]
const CSP: &str =
    "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

/// The file a path after `/admin` names: its gzip bytes and content type.
fn file(rest: &str) -> Option<(&'static [u8], &'static str)> {
    match rest {
        "/" | "/index.html" => Some((INDEX_HTML_GZ, HTML)),
        "/app.js" => Some((APP_JS_GZ, JS)),
        "/app.css" => Some((APP_CSS_GZ, CSS)),
        _ => None,
    }
}

/// Whether `Accept-Encoding` (RFC 9110 §12.5.3) admits gzip: a `gzip` (or `x-gzip`) entry
/// with a non-zero weight, else a `*` with a non-zero weight.
///
/// A request without the header gets `false`. RFC 9110 would let us send any coding then, but
/// the clients that send none (scripts, probes, curl without `--compressed`) are exactly those
/// that would show gzip bytes as garbage, and every browser sends the header.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let coding = parts.next().unwrap_or_default().trim_ascii();
            // q=0 (also 0.0, 0.000) means "not acceptable"; any other weight accepts.
            let refused = parts.any(|p| match p.trim_ascii() {
                [b'q' | b'Q', b'=', q @ ..] => q.iter().all(|&b| b == b'0' || b == b'.'),
                _ => false,
            });
            if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                return !refused;
            }
            if coding == b"*" {
                star = !refused;
            }
        }
    }
    star
}

/// Answers a request for the admin page. `rest` is the path after `/admin` (`""`, `"/"`,
/// `"/app.js"`, …; no query); `headers` are the request's (for `Accept-Encoding`). GET and HEAD
/// only; HEAD gets the headers without the body. `frame_ancestors` is the CSP source list of who
/// may frame the page (`'none'`, or the configured origins).
pub fn serve(
    rest: &str,
    method: &Method,
    headers: &HeaderMap,
    frame_ancestors: &str,
) -> ScimResult<http::Response<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ScimError::method_not_allowed("GET, HEAD"));
    }
    if rest.is_empty() {
        // 308 keeps the method (HEAD stays HEAD).
        return Ok(response(StatusCode::PERMANENT_REDIRECT, Bytes::new(), frame_ancestors, |h| {
            h.insert(header::LOCATION, HeaderValue::from_static(PAGE_PATH));
        }));
    }
    let (body, content_type) = file(rest).ok_or_else(|| {
        ScimError::not_found(
            "no such file of the admin page: it is served at /admin/ (index.html, app.js, app.css)",
        )
    })?;
    if !accepts_gzip(headers) {
        let mut res = ScimError::new(
            StatusCode::NOT_ACCEPTABLE,
            "the admin page needs a browser: its files are served gzip-compressed only, and this \
             request's Accept-Encoding does not accept gzip (with curl, add --compressed)",
        )
        .into_response();
        res.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        return Ok(res);
    }
    let body = if method == Method::HEAD { Bytes::new() } else { Bytes::from_static(body) };
    Ok(response(StatusCode::OK, body, frame_ancestors, |h| {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }))
}

fn response(
    status: StatusCode,
    body: Bytes,
    frame_ancestors: &str,
    extra: impl FnOnce(&mut http::HeaderMap),
) -> http::Response<Bytes> {
    let mut res = http::Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    // Revalidate every time: a plugin upgrade must not leave an old app.js talking to a new API.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The configuration validated the origins; a value that still does not fit a header frames nothing.
    let framed = frame_ancestors != "'none'";
    let csp = HeaderValue::from_str(&format!("{CSP_SOURCES}; frame-ancestors {frame_ancestors}"))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"));
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !framed {
        // For browsers without CSP level 2; with origins configured, CSP alone decides.
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    extra(h);
    res
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    // The sources the build script compressed: what a browser must see after decoding.
    const INDEX_HTML: &str = include_str!("page/index.html");
    const APP_JS: &str = include_str!("page/app.js");
    const APP_CSS: &str = include_str!("page/app.css");

    const BROWSER: &str = "gzip, deflate, br, zstd";

    fn get_with(rest: &str, accept_encoding: Option<&str>) -> ScimResult<http::Response<Bytes>> {
        let mut headers = HeaderMap::new();
        if let Some(ae) = accept_encoding {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(ae).unwrap());
        }
        serve(rest, &Method::GET, &headers, "'none'")
    }

    fn get(rest: &str) -> ScimResult<http::Response<Bytes>> {
        get_with(rest, Some(BROWSER))
    }

    fn header(res: &http::Response<Bytes>, name: header::HeaderName) -> &str {
        res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn serves_each_file_gzipped_with_its_content_type() {
        for (rest, ct, original) in [
            ("/", HTML, INDEX_HTML),
            ("/index.html", HTML, INDEX_HTML),
            ("/app.js", JS, APP_JS),
            ("/app.css", CSS, APP_CSS),
        ] {
            let res = get(rest).unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{rest}");
            assert_eq!(header(&res, header::CONTENT_TYPE), ct, "{rest}");
            assert_eq!(header(&res, header::CONTENT_ENCODING), "gzip", "{rest}");
            assert_eq!(header(&res, header::VARY), "Accept-Encoding", "{rest}");
            // The served bytes decode to the file in the source tree, and are actually smaller.
            assert_eq!(gunzip(res.body()), original, "{rest}");
            assert!(res.body().len() * 2 < original.len(), "{rest}: {} bytes", res.body().len());
        }
        assert!(INDEX_HTML.to_ascii_lowercase().contains("<!doctype html>"));
        assert!(APP_JS.contains("use strict"));
    }

    #[test]
    fn accept_encoding_must_admit_gzip() {
        for ae in [
            "gzip",
            "GZIP",
            "x-gzip",
            "deflate, gzip;q=0.5",
            "br;q=1.0, gzip;q=0.8, *;q=0.1",
            "*",
            "identity;q=1, *;q=0.5",
        ] {
            let res = get_with("/app.js", Some(ae)).unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{ae}");
        }
        let refused =
            ["", "identity", "br, deflate", "gzip;q=0", "gzip; q=0.000, br", "*;q=0", "gzip;q=0, *"];
        for ae in refused.into_iter().map(Some).chain([None]) {
            let res = get_with("/", ae).unwrap();
            assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE, "{ae:?}");
            assert_eq!(header(&res, header::VARY), "Accept-Encoding");
            assert_eq!(header(&res, header::CONTENT_TYPE), crate::error::SCIM_CONTENT_TYPE);
            assert!(header(&res, header::CONTENT_ENCODING).is_empty());
            let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
            assert_eq!(body["status"], "406");
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains("needs a browser") && detail.contains("gzip"), "{detail}");
        }
        // The redirect has no body to encode.
        assert_eq!(get_with("", None).unwrap().status(), StatusCode::PERMANENT_REDIRECT);
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        for rest in ["", "/", "/app.js", "/app.css"] {
            let res = get(rest).unwrap();
            assert_eq!(header(&res, header::CONTENT_SECURITY_POLICY), CSP, "{rest}");
            assert!(header(&res, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
            assert!(header(&res, header::CONTENT_SECURITY_POLICY).contains("frame-ancestors 'none'"));
            assert_eq!(header(&res, header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{rest}");
            assert_eq!(header(&res, header::REFERRER_POLICY), "no-referrer", "{rest}");
            assert_eq!(header(&res, header::CACHE_CONTROL), "no-cache", "{rest}");
        }
    }

    #[test]
    fn configured_origins_may_frame_the_page() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(BROWSER));
        let res = serve("/", &Method::GET, &headers, "https://app.example.com 'self'").unwrap();
        assert!(header(&res, header::CONTENT_SECURITY_POLICY)
            .ends_with("; frame-ancestors https://app.example.com 'self'"));
        assert!(res.headers().get(header::X_FRAME_OPTIONS).is_none());
        assert_eq!(header(&get("/").unwrap(), header::X_FRAME_OPTIONS), "DENY");
    }

    #[test]
    fn bare_admin_redirects_to_the_page() {
        let res = get("").unwrap();
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&res, header::LOCATION), "/admin/");
        assert!(res.body().is_empty());
    }

    #[test]
    fn head_has_the_headers_and_no_body() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(BROWSER));
        let res = serve("/app.js", &Method::HEAD, &headers, "'none'").unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, header::CONTENT_TYPE), JS);
        assert_eq!(header(&res, header::CONTENT_ENCODING), "gzip");
        assert!(res.body().is_empty());
    }

    #[test]
    fn unknown_files_are_404() {
        for rest in ["/nope.js", "/app.js/", "/../Cargo.toml", "/APP.JS", "/v1", "//app.js"] {
            let err = get(rest).unwrap_err();
            assert_eq!(err.status, StatusCode::NOT_FOUND, "{rest}");
        }
    }

    #[test]
    fn only_get_and_head() {
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
            let err = serve("/", &m, &HeaderMap::new(), "'none'").unwrap_err();
            assert_eq!(err.status, StatusCode::METHOD_NOT_ALLOWED, "{m}");
            assert_eq!(err.allow, Some("GET, HEAD"));
        }
    }

    /// The CSP forbids inline code: the page must load its script and style from files.
    #[test]
    fn index_html_has_no_inline_script_or_style() {
        let html = INDEX_HTML.to_ascii_lowercase();
        let mut rest = html.as_str();
        while let Some(at) = rest.find("<script") {
            let tag_end = rest[at..].find('>').map(|e| at + e).unwrap();
            let tag = &rest[at..=tag_end];
            assert!(tag.contains("src="), "inline <script>: {tag}");
            assert!(rest[tag_end + 1..].trim_start().starts_with("</script>"), "script with a body: {tag}");
            rest = &rest[tag_end + 1..];
        }
        assert!(!html.contains("<style"), "inline <style>");
        assert!(!html.contains(" style="), "style attribute");
        for handler in
            [" onclick=", " onload=", " onsubmit=", " onchange=", " oninput=", " onerror=", "javascript:"]
        {
            assert!(!html.contains(handler), "inline handler {handler}");
        }
        assert!(html.contains("<script src=\"app.js\""));
        assert!(html.contains("href=\"app.css\""));
    }

    /// The script must not build markup from strings (all API text goes through textContent).
    #[test]
    fn app_js_never_assigns_inner_html() {
        assert!(!APP_JS.contains("innerHTML"));
        assert!(!APP_JS.contains("outerHTML"));
        assert!(!APP_JS.contains("insertAdjacentHTML"));
        assert!(!APP_JS.contains("document.write"));
        assert!(!APP_JS.contains("eval("));
    }
}
