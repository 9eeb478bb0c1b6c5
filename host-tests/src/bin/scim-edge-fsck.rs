//! `scim-edge-fsck`: checks a scim-edge store's invariants (`scim_edge_core::consistency`)
//! without changing it.
//!
//! ```text
//! cargo run -p scim-edge-host-tests --bin scim-edge-fsck                       # ./.scim-edge/sqlite_key_value.db
//! cargo run -p scim-edge-host-tests --bin scim-edge-fsck -- --sqlite PATH [--store default]
//! cargo run -p scim-edge-host-tests --bin scim-edge-fsck -- --etcd http://127.0.0.1:2379 [--prefix scim-edge/]
//! cargo run -p scim-edge-host-tests --bin scim-edge-fsck -- --redis redis://127.0.0.1:6379
//! ```
//!
//! Sources:
//! - **SQLite**: Spin's key-value table `spin_key_value(store, key, value)` (the dev host's
//!   `.scim-edge/sqlite_key_value.db`, or `spin up`'s `.spin/sqlite_key_value.db`), opened
//!   read-only. Values carry the Spin adapter's encoding (`plugin/spin/src/store.rs`,
//!   [`scim_edge_host_tests::spin_value`]): a tag byte (live or tombstone) and write ids;
//!   `claim/…` keys are the adapter's own; a claim whose key holds nothing is reported (a
//!   creator died between its claim and its write: the key can no longer be created).
//! - **Redis**: the same encoding, in the Redis database a Spin runtime config
//!   (`[key_value_store.default]`, `type = "redis"`) points at: every key (`SCAN`), then `GET`
//!   each. Spin's Redis store has no store label: the database holds one store.
//! - **etcd**: the JSON gateway (`POST /v3/kv/range`) over plain HTTP, every key under the
//!   Envoy filter's prefix (default `scim-edge/`), read in pages of 1000 keys.
//!
//! Prints what it read and every problem, errors first. Exit status: 0 when there is no error
//! (garbage — leftovers that change no answer — is listed but tolerated), 1 when there are
//! errors, 2 when the store could not be read. On a store that is serving requests, a problem
//! can be a request in flight: run it twice, the real ones are there both times.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rusqlite::{Connection, OpenFlags};
use scim_edge_core::consistency;
use serde_json::{json, Value};

const USAGE: &str =
    "usage: scim-edge-fsck [--sqlite PATH [--store LABEL] | --etcd URL [--prefix PREFIX] | --redis redis://HOST:PORT]";

enum Source {
    Sqlite { path: String, store: String },
    Etcd { url: String, prefix: String },
    Redis { url: String },
}

fn parse_args() -> anyhow::Result<Source> {
    let mut args = std::env::args().skip(1);
    let (mut sqlite, mut store, mut etcd, mut prefix, mut redis) =
        (None, "default".to_owned(), None, "scim-edge/".to_owned(), None);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--sqlite" => sqlite = Some(value()?),
            "--store" => store = value()?,
            "--etcd" => etcd = Some(value()?),
            "--prefix" => prefix = value()?,
            "--redis" => redis = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if [sqlite.is_some(), etcd.is_some(), redis.is_some()].into_iter().filter(|&x| x).count() > 1 {
        bail!("--sqlite, --etcd and --redis exclude each other\n{USAGE}");
    }
    if let Some(url) = redis {
        return Ok(Source::Redis { url });
    }
    Ok(match (sqlite, etcd) {
        (_, Some(url)) => Source::Etcd { url, prefix },
        (path, None) => {
            Source::Sqlite { path: path.unwrap_or_else(|| ".scim-edge/sqlite_key_value.db".into()), store }
        }
    })
}

/// Live keys of a Spin SQLite store, the adapter's tag removed; undecodable values reported.
fn read_sqlite(
    path: &str,
    store: &str,
    host_problems: &mut Vec<String>,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_context(|| format!("opening {path}"))?;
    let mut stmt = conn.prepare("SELECT key, value FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
    let rows = stmt.query_map([store], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let raw = rows.collect::<Result<Vec<_>, _>>()?;
    Ok(spin_entries(raw, host_problems))
}

/// The core's entries of a Spin store (either backend); values the adapter did not write are
/// reported.
fn spin_entries(raw: Vec<(String, Vec<u8>)>, host_problems: &mut Vec<String>) -> Vec<(String, Vec<u8>)> {
    for key in scim_edge_host_tests::spin_value::unwritten_claims(&raw) {
        host_problems.push(format!(
            "garbage: {key}: claimed for creation (claim/{key}) but not written: a creator died \
             between its claim and its write; a create of it 30 s after one first found it so \
             takes it over"
        ));
    }
    let (entries, foreign) = scim_edge_host_tests::spin_value::core_entries(raw);
    for key in foreign {
        host_problems.push(format!("error: {key}: not written by the Spin adapter (no live/tombstone tag)"));
    }
    entries
}

/// Every key of Spin's Redis store.
fn read_redis(url: &str, host_problems: &mut Vec<String>) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut redis =
        scim_edge_host_tests::resp::Redis::connect(url).with_context(|| format!("connecting to {url}"))?;
    let raw = redis.dump().with_context(|| format!("reading {url}"))?;
    Ok(spin_entries(raw, host_problems))
}

/// One POST over plain HTTP/1.1; returns the body (Content-Length or chunked).
fn post_json(url: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
    let authority = url
        .strip_prefix("http://")
        .context("--etcd takes an http:// URL (use a local port-forward for TLS endpoints)")?
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(authority).with_context(|| format!("connecting to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let payload = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no HTTP header in etcd's answer")?;
    let (head, rest) = raw.split_at(split);
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut body = rest.get(4..).unwrap_or_default().to_vec();
    let status = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    if status != "200" {
        bail!("etcd answered {status}: {}", String::from_utf8_lossy(&body));
    }
    serde_json::from_slice(&body).context("etcd's answer is not JSON")
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").context("truncated chunk")?;
        let size_text = String::from_utf8_lossy(data.get(..line_end).unwrap_or_default()).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = data.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).context("truncated chunk")?);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// The key after every key starting with `prefix` (etcd's `range_end` for a prefix).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn read_etcd(
    url: &str,
    prefix: &str,
    host_problems: &mut Vec<String>,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let end = BASE64.encode(prefix_end(prefix.as_bytes()));
    let mut from = prefix.as_bytes().to_vec();
    let mut out = Vec::new();
    loop {
        let req = json!({"key": BASE64.encode(&from), "range_end": end, "limit": 1000});
        let res = post_json(url, "/v3/kv/range", &req)?;
        let kvs = res.get("kvs").and_then(Value::as_array).cloned().unwrap_or_default();
        for kv in &kvs {
            let key = BASE64
                .decode(kv.get("key").and_then(Value::as_str).unwrap_or_default())
                .context("key is not base64")?;
            let value = BASE64
                .decode(kv.get("value").and_then(Value::as_str).unwrap_or_default())
                .context("value is not base64")?;
            from = key.clone();
            from.push(0);
            match String::from_utf8(key) {
                Ok(k) => out.push((k.strip_prefix(prefix).unwrap_or(&k).to_owned(), value)),
                Err(e) => host_problems.push(format!("error: a key under {prefix:?} is not UTF-8: {e}")),
            }
        }
        if !res.get("more").and_then(Value::as_bool).unwrap_or(false) || kvs.is_empty() {
            return Ok(out);
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let source = parse_args()?;
    let mut host_problems = Vec::new();
    let (what, entries) = match &source {
        Source::Sqlite { path, store } => {
            (format!("SQLite {path} (store {store:?})"), read_sqlite(path, store, &mut host_problems)?)
        }
        Source::Etcd { url, prefix } => {
            (format!("etcd {url} (prefix {prefix:?})"), read_etcd(url, prefix, &mut host_problems)?)
        }
        Source::Redis { url } => (format!("Redis {url}"), read_redis(url, &mut host_problems)?),
    };
    let report = consistency::check(entries);
    // A host problem is an error unless it says it is garbage (pending, changes no answer).
    let ok = !report.has_errors() && host_problems.iter().all(|p| p.starts_with("garbage:"));
    let mut out = format!("scim-edge-fsck: {what}\n{report}");
    for p in &host_problems {
        out.push_str(&format!("  {p}\n"));
    }
    out.push_str(if ok { "consistent\n" } else { "INCONSISTENT\n" });
    // A closed pipe (`| head`) is not an error of the check.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(ok)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("scim-edge-fsck: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_prefix_range_and_chunked_bodies() {
        assert_eq!(prefix_end(b"scim-edge/"), b"scim-edge0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(), b"abcde".to_vec());
    }
}
