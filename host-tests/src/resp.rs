//! A minimal blocking Redis client (RESP2 over one TCP connection), enough to read the keys of
//! Spin's Redis key-value store from outside: `scim-edge-fsck --redis`, the real-Spin tests'
//! store assertions, and `INFO` for measurements. No dependency: the `redis` crate would be
//! several hundred crates' worth of features for four commands.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

pub struct Redis {
    reader: BufReader<TcpStream>,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Redis {
    /// Connects to `host:port` (a `redis://host:port` URL is accepted too).
    pub fn connect(addr: &str) -> io::Result<Redis> {
        let addr = addr.strip_prefix("redis://").unwrap_or(addr).trim_end_matches('/');
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Redis { reader: BufReader::new(stream) })
    }

    /// Sends one command and reads its reply. A Redis error is an `Ok(Reply::Error)`.
    pub fn cmd(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out)?;
        self.read_reply()
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed"));
        }
        Ok(line.trim_end_matches("\r\n").to_owned())
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at_checked(1).ok_or_else(|| bad("empty reply line"))?;
        let int = |s: &str| s.parse::<i64>().map_err(|_| bad(format!("bad length {s:?}")));
        Ok(match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(int(rest)?),
            "$" => match usize::try_from(int(rest)?) {
                Err(_) => Reply::Bulk(None),
                Ok(n) => {
                    let mut buf = vec![0; n + 2];
                    io::Read::read_exact(&mut self.reader, &mut buf)?;
                    buf.truncate(n);
                    Reply::Bulk(Some(buf))
                }
            },
            "*" => match usize::try_from(int(rest)?) {
                Err(_) => Reply::Array(None),
                Ok(n) => Reply::Array(Some((0..n).map(|_| self.read_reply()).collect::<io::Result<_>>()?)),
            },
            other => return Err(bad(format!("unknown reply type {other:?}"))),
        })
    }

    /// `GET key`.
    pub fn get(&mut self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match self.cmd(&[b"GET", key.as_bytes()])? {
            Reply::Bulk(v) => Ok(v),
            other => Err(bad(format!("GET {key}: {other:?}"))),
        }
    }

    /// Every key (`SCAN` to the end), sorted.
    pub fn keys(&mut self) -> io::Result<Vec<String>> {
        let mut cursor = b"0".to_vec();
        let mut keys = Vec::new();
        loop {
            let reply = self.cmd(&[b"SCAN", &cursor, b"COUNT", b"1000"])?;
            let Reply::Array(Some(parts)) = reply else { return Err(bad(format!("SCAN: {reply:?}"))) };
            let [Reply::Bulk(Some(next)), Reply::Array(Some(batch))] = parts.as_slice() else {
                return Err(bad(format!("SCAN: {parts:?}")));
            };
            for k in batch {
                match k {
                    Reply::Bulk(Some(k)) => keys.push(String::from_utf8_lossy(k).into_owned()),
                    other => return Err(bad(format!("SCAN key: {other:?}"))),
                }
            }
            if next.as_slice() == b"0" {
                keys.sort();
                return Ok(keys);
            }
            cursor.clone_from(next);
        }
    }

    /// Every key with its value (keys that vanish between `SCAN` and `GET` are left out).
    pub fn dump(&mut self) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for key in self.keys()? {
            if let Some(v) = self.get(&key)? {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// One field of `INFO section` (e.g. `INFO commandstats`, `cmdstat_unwatch`).
    pub fn info_field(&mut self, section: &str, field: &str) -> io::Result<Option<String>> {
        let Reply::Bulk(Some(text)) = self.cmd(&[b"INFO", section.as_bytes()])? else {
            return Err(bad("INFO: not a bulk string"));
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        Ok(text.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned)))
    }
}
