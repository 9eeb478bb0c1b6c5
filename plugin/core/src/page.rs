//! The admin page: a static single-page app (`page/index.html`, `app.js`, `app.css`) compiled
//! into the plugin and served under `/admin/`. It talks to the admin API (`/admin/v1/…`) from the
//! browser with the operator's token; this module only hands out the three files.
//!
//! Not here: authentication (the page itself is public and holds no data; every API call it
//! makes carries the token) and routing (the caller passes the path after `/admin`).
//!
//! The files are served with a strict Content-Security-Policy (no inline script or style, no
//! other origin, no framing), so the page keeps working only as long as it stays free of inline
//! code: a unit test below checks `index.html` for it.

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};

use crate::error::{ScimError, ScimResult};

/// Where the page lives; `/admin` redirects here so relative URLs (`app.js`, `v1/…`) resolve.
pub const PAGE_PATH: &str = "/admin/";

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const APP_CSS: &str = include_str!("page/app.css");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Same origin only (plus `data:` images, so the stylesheet may inline small icons); no framing.
const CSP: &str =
    "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

/// The file a path after `/admin` names.
fn file(rest: &str) -> Option<(&'static str, &'static str)> {
    match rest {
        "/" | "/index.html" => Some((INDEX_HTML, HTML)),
        "/app.js" => Some((APP_JS, JS)),
        "/app.css" => Some((APP_CSS, CSS)),
        _ => None,
    }
}

/// Answers a request for the admin page. `rest` is the path after `/admin` (`""`, `"/"`,
/// `"/app.js"`, …; no query). GET and HEAD only; HEAD gets the headers without the body.
pub fn serve(rest: &str, method: &Method) -> ScimResult<http::Response<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ScimError::method_not_allowed("GET, HEAD"));
    }
    if rest.is_empty() {
        // 308 keeps the method (HEAD stays HEAD).
        return Ok(response(StatusCode::PERMANENT_REDIRECT, Bytes::new(), |h| {
            h.insert(header::LOCATION, HeaderValue::from_static(PAGE_PATH));
        }));
    }
    let (body, content_type) = file(rest).ok_or_else(|| {
        ScimError::not_found(
            "no such file of the admin page: it is served at /admin/ (index.html, app.js, app.css)",
        )
    })?;
    let body = if method == Method::HEAD { Bytes::new() } else { Bytes::from_static(body.as_bytes()) };
    Ok(response(StatusCode::OK, body, |h| {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }))
}

fn response(
    status: StatusCode,
    body: Bytes,
    extra: impl FnOnce(&mut http::HeaderMap),
) -> http::Response<Bytes> {
    let mut res = http::Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    // Revalidate every time: a plugin upgrade must not leave an old app.js talking to a new API.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    extra(h);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(rest: &str) -> ScimResult<http::Response<Bytes>> {
        serve(rest, &Method::GET)
    }

    fn header(res: &http::Response<Bytes>, name: header::HeaderName) -> &str {
        res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[test]
    fn serves_each_file_with_its_content_type() {
        for (rest, ct, marker) in [
            ("/", HTML, "<!doctype html>"),
            ("/index.html", HTML, "<!doctype html>"),
            ("/app.js", JS, "use strict"),
            ("/app.css", CSS, "--"),
        ] {
            let res = get(rest).unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{rest}");
            assert_eq!(header(&res, header::CONTENT_TYPE), ct, "{rest}");
            assert!(String::from_utf8_lossy(res.body()).to_ascii_lowercase().contains(marker), "{rest}");
        }
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
    fn bare_admin_redirects_to_the_page() {
        let res = get("").unwrap();
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&res, header::LOCATION), "/admin/");
        assert!(res.body().is_empty());
    }

    #[test]
    fn head_has_the_headers_and_no_body() {
        let res = serve("/app.js", &Method::HEAD).unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, header::CONTENT_TYPE), JS);
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
            let err = serve("/", &m).unwrap_err();
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
