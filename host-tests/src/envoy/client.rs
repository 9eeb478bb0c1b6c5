//! A small blocking HTTP/1.1 client (one connection per request, `Connection: close`) and an
//! echo server that plays the application behind Envoy. Enough for loopback tests, with no
//! extra dependencies.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `req` (origin-form URI, e.g. `/scim/v2/…?x=1`) to `addr` and reads the whole response.
pub fn send(addr: SocketAddr, req: &http::Request<Bytes>) -> io::Result<http::Response<Bytes>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method(), target);
    if !req.headers().contains_key(http::header::HOST) {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (name, value) in req.headers() {
        if name == http::header::CONNECTION || name == http::header::CONTENT_LENGTH {
            continue;
        }
        head.push_str(name.as_str());
        head.push_str(": ");
        head.push_str(value.to_str().map_err(|e| io::Error::other(e.to_string()))?);
        head.push_str("\r\n");
    }
    let body = req.body();
    let bodied = matches!(*req.method(), http::Method::POST | http::Method::PUT | http::Method::PATCH);
    if bodied || !body.is_empty() {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    let sent =
        stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).and_then(|()| stream.flush());
    let mut raw = Vec::new();
    let read = read_response(&mut stream, &mut raw);
    // A server may answer (e.g. 413) and close before it has read the whole body; then the
    // write or the read fails, but its answer is what the test wants.
    if raw.is_empty() {
        sent?;
        read?;
    }
    parse_response(&raw)
}

/// Reads until the response is complete (by its `content-length` or final chunk) or the
/// server closes: a server that keeps the connection open a while after a complete response
/// (Envoy's delayed close after some local replies, up to 1 s) does not slow the client down.
fn read_response(stream: &mut TcpStream, raw: &mut Vec<u8>) -> io::Result<()> {
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = find(raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let chunked = head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
            match (length, chunked) {
                (Some(n), false) if body.len() >= n => return Ok(()),
                (_, true)
                    if find(body, b"0\r\n\r\n").is_some_and(|i| i == 0 || body[..i].ends_with(b"\r\n")) =>
                {
                    return Ok(())
                }
                _ => {}
            }
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn parse_response(raw: &[u8]) -> io::Result<http::Response<Bytes>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad HTTP response: {what}"));
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let status: u16 =
        status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad(status_line))?;
    let mut res = http::Response::builder().status(status);
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| bad(line))?;
        let value = value.trim();
        let lower = name.to_ascii_lowercase();
        if lower == "content-length" {
            length = value.parse::<usize>().ok();
        }
        if lower == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
        res = res.header(lower, value);
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest).ok_or_else(|| bad("broken chunked body"))?
    } else if let Some(n) = length {
        rest.get(..n).ok_or_else(|| bad("body shorter than content-length"))?.to_vec()
    } else {
        rest.to_vec()
    };
    res.body(Bytes::from(body)).map_err(|e| bad(&e.to_string()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(raw, b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// A request as the echo server saw it: request line, headers, body.
type Received = (String, Vec<(String, String)>, Vec<u8>);

fn read_request(stream: &mut TcpStream) -> io::Result<Option<Received>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut body = raw[end + 4..].to_vec();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        while find(&body, b"0\r\n\r\n").is_none() {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        body = dechunk(&body).unwrap_or_default();
    } else {
        let len = header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        while body.len() < len {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
    }
    Ok(Some((request_line, headers, body)))
}

/// The application behind Envoy: answers every request with 200 and a JSON description of
/// what it received (`requestLine`, `headers` as `[name, value]` pairs, `body`), plus the
/// header `x-echo: upstream`.
pub struct Echo {
    pub port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo upstream");
        let port = listener.local_addr().expect("echo address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (flag, counter) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
                    // Keep-alive: Envoy reuses upstream connections.
                    while let Ok(Some((request_line, headers, body))) = read_request(&mut conn) {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let echo = json!({
                            "requestLine": request_line,
                            "headers": headers,
                            "body": String::from_utf8_lossy(&body),
                        })
                        .to_string();
                        let res = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-echo: upstream\r\ncontent-length: {}\r\n\r\n{}",
                            echo.len(),
                            echo
                        );
                        if conn.write_all(res.as_bytes()).is_err() {
                            break;
                        }
                    }
                    let _ = conn.shutdown(Shutdown::Both);
                });
            }
        });
        Echo { port, requests, stop, thread: Some(thread) }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
