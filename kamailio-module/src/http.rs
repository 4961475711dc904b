//! A minimal blocking HTTP GET with one deadline for the whole exchange: the LRN dip
//! runs inside a SIP worker, so every step (connect, write, read) is bounded by what is
//! left of the call's budget, and the host is resolved once, at start-up: a resolver
//! lookup has no deadline of its own. HTTP/1.0, so the server sends a plain body and
//! closes. Plain `http://` only: a TLS upstream is reached through a local proxy.

use crate::endpoint::{self, Endpoint};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A reply larger than this is no LRN answer: refused rather than read to the end.
const MAX_RESPONSE: usize = 64 * 1024;

/// `http://host[:port][/base]`, parsed and resolved once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// `host[:port]` as written: the Host header.
    authority: String,
    endpoint: Endpoint,
    path: String,
}

impl Base {
    pub fn parse(url: &str) -> Result<Base, String> {
        let bad = || format!("{url:?} is not http://host[:port][/path]");
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = endpoint::split(hostport, 80).ok_or_else(bad)?;
        Ok(Base {
            authority: hostport.to_owned(),
            endpoint: Endpoint::resolve(host, port)?,
            path: path.to_owned(),
        })
    }
}

pub struct Response {
    pub status: u16,
    /// `Retry-After` in seconds, when given.
    pub retry_after: Option<u64>,
    pub body: String,
}

/// GET `base` + `path` with `headers`, all within `timeout`.
pub fn get(
    base: &Base,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("timed out after {} ms", timeout.as_millis()))
    };
    let mut stream = base.endpoint.connect(left()?)?;
    let mut request = format!(
        "GET {}{path} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n",
        base.path, base.authority
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if raw.len() + n > MAX_RESPONSE => {
                return Err(format!("response over {MAX_RESPONSE} bytes"))
            }
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                // A server that keeps the connection open anyway has said all it will
                // once its Content-Length is in.
                if complete(&raw) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("timed out after {} ms", timeout.as_millis()))
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    parse(&String::from_utf8_lossy(&raw))
}

/// Whether `raw` holds a whole response by its Content-Length.
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    header(&String::from_utf8_lossy(&raw[..end]), "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| raw.len() - (end + 4) >= len)
}

/// The value of header `name` (lower case) in a response's `head`.
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn parse(text: &str) -> Result<Response, String> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("truncated HTTP response")?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("bad HTTP status line")?;
    let retry_after = header(head, "retry-after").and_then(|v| v.parse().ok());
    Ok(Response {
        status,
        retry_after,
        body: body.to_owned(),
    })
}
