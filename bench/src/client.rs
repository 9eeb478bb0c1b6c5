//! The load tool's HTTP/1.1 client: one connection per worker, kept alive across requests and
//! phases, reopened when the server closes it (an HTTP/1.0 server such as Python's `wsgiref`
//! closes after every response). hyper's connection-level API, no pool, no TLS: on loopback
//! the client costs a few microseconds per request and stays out of the numbers it reports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go: a SCIM base URL (`http://host:port/base/path`) and its bearer token.
#[derive(Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub authority: HeaderValue,
    /// The base URL's path without a trailing slash (`/scim/v2/{connection}`, `/v2`, or empty).
    pub base_path: String,
    pub authorization: Option<HeaderValue>,
    pub timeout: Duration,
}

impl Target {
    /// Parses `http://host:port/path` and resolves the host once.
    pub async fn new(url: &str, token: Option<&str>, timeout: Duration) -> anyhow::Result<Target> {
        let uri: http::Uri = url.parse().with_context(|| format!("--url {url:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("--url: only http:// is supported (got {other}://); benchmark on loopback"),
            None => bail!("--url {url:?} needs a scheme: http://host:port/path"),
        }
        let authority = uri.authority().ok_or_else(|| anyhow!("--url {url:?} has no host"))?;
        let host_port = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.host()),
        };
        let addr = tokio::net::lookup_host(&host_port)
            .await
            .with_context(|| format!("resolving {host_port}"))?
            .next()
            .ok_or_else(|| anyhow!("{host_port} resolves to no address"))?;
        let authorization = match token {
            Some(t) if !t.is_empty() => Some(
                HeaderValue::from_str(&format!("Bearer {t}"))
                    .context("--token is not a valid header value")?,
            ),
            _ => None,
        };
        Ok(Target {
            addr,
            authority: HeaderValue::from_str(authority.as_str())?,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            authorization,
            timeout,
        })
    }
}

/// A response: status and the whole body.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// One worker's connection.
pub struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened so far (1 for a keep-alive server, one per request for HTTP/1.0).
    pub connects: u64,
}

impl Conn {
    pub fn new(target: Arc<Target>) -> Conn {
        Conn { target, sender: None, connects: 0 }
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let stream = TcpStream::connect(self.target.addr)
            .await
            .with_context(|| format!("connecting to {}", self.target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // The connection task ends when the server closes; its error, if any, surfaces in
        // the request that was in flight.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        self.connects += 1;
        Ok(())
    }

    /// A sender that is ready for a request, on the current connection or a new one.
    async fn ready(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        for _ in 0..2 {
            if let Some(sender) = self.sender.as_mut() {
                // Fails when the server closed the connection after the previous response.
                if !sender.is_closed() && sender.ready().await.is_ok() {
                    break;
                }
            }
            self.sender = None;
            self.connect().await?;
        }
        self.sender.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    /// Sends `method {base_path}{path_and_query}` with an optional JSON body and reads the
    /// whole response. Not retried: a failed POST may have been applied.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Reply> {
        let timeout = self.target.timeout;
        match tokio::time::timeout(timeout, self.send_inner(method, path_and_query, body)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection may hold a late response: never reuse it.
                self.sender = None;
                bail!("no response within {timeout:?}")
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Reply> {
        let target = self.target.clone();
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", target.base_path))
            .header(HOST, target.authority.clone());
        if let Some(auth) = &target.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let sender = self.ready().await?;
        let res = match sender.send_request(req).await {
            Ok(res) => res,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let status = res.status();
        let body = match res.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(anyhow!("reading the response body: {e}"));
            }
        };
        Ok(Reply { status, body })
    }
}

/// Percent-encodes a query parameter value (everything but RFC 3986's unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 0xf] {
                out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0').to_ascii_uppercase());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_filter() {
        assert_eq!(encode(r#"userName eq "a@b.c""#), "userName%20eq%20%22a%40b.c%22");
    }
}
