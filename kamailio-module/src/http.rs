//! A minimal blocking HTTP/1.1 GET, over TCP or TLS ([`crate::transport`]), with one
//! deadline for the whole exchange: the LRN dip runs inside a SIP worker, so every step
//! (connect, TLS handshake, write, read) is bounded by what is left of the call's
//! budget, and the host is resolved once, at start-up: a resolver lookup has no deadline
//! of its own.
//!
//! The connection is kept for the next request, one per process (each Kamailio process
//! is single-threaded), so only the first dip pays the TCP (and TLS) handshake. It is
//! opened by the process that uses it, when it first does: Kamailio forks its workers,
//! and a socket opened before would be shared by them. A response is read by its
//! Content-Length; one without (read to the connection's end), one saying `Connection:
//! close`, an HTTP/1.0 one or one with bytes after it ends the connection's use; a
//! chunked one is decoded (an HTTP/1.1 server may send any body so), any other
//! Transfer-Encoding refused. Any error drops the connection. A kept connection the
//! server closed while idle (its keep-alive timeout: a TLS close_notify, or just the TCP
//! connection's end) fails before any byte of the response: the request is then sent
//! once more, on a new connection, within the same deadline; never after a timeout, nor
//! once the response began.

use crate::endpoint::{self, Endpoint};
use crate::transport::{Connection, Deadline, Tls};
use rustls::ClientConfig;
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::Duration;

/// A reply larger than this is no LRN answer: refused rather than read to the end.
const MAX_RESPONSE: usize = 64 * 1024;

/// `http(s)://host[:port][/base]`, parsed and resolved once at start-up.
#[derive(Debug, Clone)]
pub struct Base {
    /// `host[:port]` as written: the Host header.
    authority: String,
    endpoint: Endpoint,
    path: String,
    /// For `https://`.
    tls: Option<Tls>,
}

impl Base {
    /// `trust`: what an `https://` server's certificate is checked against (asked for
    /// only then).
    pub fn parse(
        url: &str,
        trust: impl FnOnce() -> Result<Arc<ClientConfig>, String>,
    ) -> Result<Base, String> {
        let url = Url::parse(url)
            .ok_or_else(|| format!("{url:?} is not http(s)://host[:port][/path]"))?;
        let tls = match url.tls {
            true => {
                let trust = trust().map_err(|e| format!("its server cannot be checked: {e}"))?;
                Some(Tls::new(url.host, trust)?)
            }
            false => None,
        };
        Ok(Base {
            authority: url.authority.to_owned(),
            endpoint: Endpoint::resolve(url.host, url.port)?,
            path: url.path.to_owned(),
            tls,
        })
    }
}

/// The parts of `http(s)://host[:port][/path]`.
#[derive(Debug, PartialEq, Eq)]
struct Url<'u> {
    tls: bool,
    /// `host[:port]` as written.
    authority: &'u str,
    /// An IPv6 literal without its brackets.
    host: &'u str,
    port: u16,
    /// Without a trailing slash.
    path: &'u str,
}

impl<'u> Url<'u> {
    fn parse(url: &'u str) -> Option<Url<'u>> {
        let (tls, rest, default_port) = match url.strip_prefix("https://") {
            Some(rest) => (true, rest, 443),
            None => (false, url.strip_prefix("http://")?, 80),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = endpoint::split(authority, default_port)?;
        Some(Url {
            tls,
            authority,
            host,
            port,
            path,
        })
    }
}

pub struct Response {
    pub status: u16,
    /// `Retry-After` in seconds, when given.
    pub retry_after: Option<u64>,
    pub body: String,
}

/// GET `base` + `path` with `headers`, all within `timeout`, on this process's kept
/// connection to `base` when it has one.
pub fn get(
    base: &Base,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Response, String> {
    let deadline = Deadline::after(timeout);
    let request = request(base, path, headers);
    let kept = KEPT
        .take()
        .filter(|k| k.pid == std::process::id() && k.endpoint == base.endpoint);
    let outcome = match kept {
        Some(kept) => match exchange(kept.connection, &request, &deadline) {
            // Closed while idle, so no answer to this request began: a GET may go again.
            Err(Failure::Closed) => fresh(base, &request, &deadline),
            done => done,
        },
        None => fresh(base, &request, &deadline),
    };
    let (response, open) = outcome.map_err(String::from)?;
    if let Some(connection) = open {
        KEPT.set(Some(Kept {
            endpoint: base.endpoint.clone(),
            pid: std::process::id(),
            connection,
        }));
    }
    Ok(response)
}

thread_local! {
    /// The connection the last exchange left open, for the next one.
    static KEPT: Cell<Option<Kept>> = const { Cell::new(None) };
}

struct Kept {
    endpoint: Endpoint,
    /// The process that opened it: one inherited across a fork is not its to use.
    pid: u32,
    connection: Connection,
}

enum Failure {
    /// The connection ended (EOF, TLS close_notify, reset) before any byte of the
    /// response: what a kept connection the server closed while idle shows.
    Closed,
    Other(String),
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        Failure::Other(why)
    }
}

impl From<Failure> for String {
    fn from(failure: Failure) -> String {
        match failure {
            Failure::Closed => "connection closed before any response".into(),
            Failure::Other(why) => why,
        }
    }
}

fn request(base: &Base, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut request = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: keep-alive\r\n",
        base.path, base.authority
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// A new connection to `base`, and `request` on it.
fn fresh(
    base: &Base,
    request: &[u8],
    deadline: &Deadline,
) -> Result<(Response, Option<Connection>), Failure> {
    let connection = Connection::open(&base.endpoint, base.tls.as_ref(), deadline)?;
    exchange(connection, request, deadline)
}

/// Sends `request` and reads its response; the connection back when it may serve
/// another.
fn exchange(
    mut connection: Connection,
    request: &[u8],
    deadline: &Deadline,
) -> Result<(Response, Option<Connection>), Failure> {
    let failed = |e: std::io::Error, began: bool| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Failure::Other(deadline.passed()),
        // A TLS connection's end without close_notify shows as an unexpected EOF.
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof
            if !began =>
        {
            Failure::Closed
        }
        _ => Failure::Other(e.to_string()),
    };
    let mut stream = connection.within(deadline);
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|e| failed(e, false))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let ended = match stream.read(&mut buf) {
            Ok(0) if raw.is_empty() => return Err(Failure::Closed),
            Ok(0) => true,
            Ok(n) if raw.len() + n > MAX_RESPONSE => return Err(too_large().into()),
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                false
            }
            Err(e) => return Err(failed(e, !raw.is_empty())),
        };
        if let Some((response, reusable)) = framed(&raw, ended)? {
            return Ok((response, reusable.then_some(connection)));
        }
    }
}

fn too_large() -> String {
    format!("response over {MAX_RESPONSE} bytes")
}

/// The response `raw` holds, and whether its connection may serve another request;
/// `None` while more of it is to come (`ended`: no more will).
fn framed(raw: &[u8], ended: bool) -> Result<Option<(Response, bool)>, String> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return match ended {
            true => Err("truncated HTTP response".into()),
            false => Ok(None),
        };
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let rest = &raw[end + 4..];
    if let Some(coding) = header(&head, "transfer-encoding") {
        if !coding.eq_ignore_ascii_case("chunked") {
            return Err(format!("Transfer-Encoding {coding:?} not supported"));
        }
        return match dechunked(rest)? {
            // Bytes after the response answer nothing asked: the connection is not reused.
            Some((body, used)) => parse(&head, &body)
                .map(|response| Some((response, used == rest.len() && keeps_alive(&head)))),
            None if ended => Err("connection closed mid-response".into()),
            None => Ok(None),
        };
    }
    let length = header(&head, "content-length")
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| format!("bad Content-Length {v:?}"))
        })
        .transpose()?;
    let (body, reusable) = match length {
        Some(len) if len > MAX_RESPONSE - (end + 4) => return Err(too_large()),
        // Bytes after the response answer nothing asked: the connection is not reused.
        Some(len) if rest.len() >= len => (&rest[..len], rest.len() == len && keeps_alive(&head)),
        // Without a Content-Length the body ends with the connection.
        None if ended => (rest, false),
        _ if ended => return Err("connection closed mid-response".into()),
        _ => return Ok(None),
    };
    parse(&head, body).map(|response| Some((response, reusable)))
}

/// A chunked body (RFC 9112 7.1) decoded from `rest`, and the bytes it took (trailers
/// included); `None` while more of it is to come.
fn dechunked(rest: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line) = line_end(&rest[at..]) else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&rest[at..at + line]);
        // Chunk extensions (`;name=value`) say nothing an LRN answer needs.
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .ok()
            .filter(|&n| n <= MAX_RESPONSE)
            .ok_or_else(|| format!("bad chunk size {size_text:?}"))?;
        at += line + 2;
        if size == 0 {
            // Trailer lines, up to an empty one.
            loop {
                let Some(line) = line_end(&rest[at..]) else {
                    return Ok(None);
                };
                at += line + 2;
                if line == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        if rest.len() < at + size + 2 {
            return Ok(None);
        }
        if &rest[at + size..at + size + 2] != b"\r\n" {
            return Err("a chunk not ended by CRLF".into());
        }
        body.extend_from_slice(&rest[at..at + size]);
        at += size + 2;
    }
}

/// Where the first line of `bytes` ends (its CRLF), if it does.
fn line_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// Whether the server of a response with `head` keeps its connection open after it.
fn keeps_alive(head: &str) -> bool {
    head.starts_with("HTTP/1.1 ")
        && !header(head, "connection").is_some_and(|v| {
            v.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        })
}

/// The value of header `name` (lower case) in a response's `head`.
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn parse(head: &str, body: &[u8]) -> Result<Response, String> {
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
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";

    #[test]
    fn urls_name_their_scheme_host_port_and_path() {
        let url = |tls, authority, host, port, path| Url {
            tls,
            authority,
            host,
            port,
            path,
        };
        for (text, parsed) in [
            (
                "https://api-dev.ringer.tel",
                url(true, "api-dev.ringer.tel", "api-dev.ringer.tel", 443, ""),
            ),
            (
                "https://lrn.lan:8443/telique/",
                url(true, "lrn.lan:8443", "lrn.lan", 8443, "/telique"),
            ),
            ("https://[::1]/lrn", url(true, "[::1]", "::1", 443, "/lrn")),
            (
                "https://[2001:db8::5]:9443",
                url(true, "[2001:db8::5]:9443", "2001:db8::5", 9443, ""),
            ),
            (
                "http://10.0.0.5",
                url(false, "10.0.0.5", "10.0.0.5", 80, ""),
            ),
            (
                "http://[::1]:8081/x",
                url(false, "[::1]:8081", "::1", 8081, "/x"),
            ),
        ] {
            assert_eq!(Url::parse(text), Some(parsed), "{text:?}");
        }
        for bad in [
            "ftp://x",
            "https://",
            "https://::1/lrn",
            "HTTPS://x",
            "https:/x",
        ] {
            assert_eq!(Url::parse(bad), None, "{bad:?}");
        }
    }

    fn trusting_nobody() -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    #[test]
    fn only_an_https_url_asks_for_its_trust() {
        let untrusted = || Err("lrn_dip_ca /nowhere.pem: gone".to_owned());
        assert!(Base::parse("http://127.0.0.1:8081", untrusted).is_ok());
        let refused = Base::parse("https://127.0.0.1", untrusted).unwrap_err();
        assert!(refused.contains("/nowhere.pem: gone"), "{refused}");
        // An IP literal is checked as an IP address, in the certificate's IP names.
        let base = Base::parse("https://[::1]/lrn", trusting_nobody).unwrap();
        assert_eq!(base.endpoint, Endpoint::resolve("::1", 443).unwrap());
        assert!(
            format!("{:?}", base.tls).contains("IpAddress"),
            "{:?}",
            base.tls
        );
    }

    fn framed_text(raw: &str, ended: bool) -> Result<Option<(String, bool)>, String> {
        framed(raw.as_bytes(), ended).map(|f| f.map(|(r, reusable)| (r.body, reusable)))
    }

    #[test]
    fn a_response_ends_at_its_content_length() {
        assert_eq!(framed_text(OK, false), Ok(Some(("{}".into(), true))));
        assert_eq!(framed_text(&OK[..OK.len() - 1], false), Ok(None));
        assert_eq!(
            framed_text("HTTP/1.1 200 OK\r\nContent-Le", false),
            Ok(None)
        );
        // Cut short by the server: no answer, whatever part of it came.
        assert!(framed_text(&OK[..OK.len() - 1], true).is_err());
        assert!(framed_text("HTTP/1.1 200 OK\r\n", true).is_err());
    }

    #[test]
    fn only_an_http_1_1_response_that_asks_nothing_else_keeps_its_connection() {
        for (raw, reusable) in [
            (OK.to_owned(), true),
            (
                OK.replace("OK\r\n", "OK\r\nConnection: keep-alive\r\n"),
                true,
            ),
            (
                OK.replace("OK\r\n", "OK\r\nconnection: Upgrade, Close\r\n"),
                false,
            ),
            (OK.replace("HTTP/1.1", "HTTP/1.0"), false),
            // Bytes after the response answer nothing asked.
            (format!("{OK}HTTP/1.1 200"), false),
        ] {
            let (body, kept) = framed_text(&raw, false).unwrap().unwrap();
            assert_eq!((body.as_str(), kept), ("{}", reusable), "{raw:?}");
        }
    }

    #[test]
    fn a_response_without_a_content_length_ends_with_its_connection() {
        let raw = "HTTP/1.1 200 OK\r\n\r\n{\"lrn\":";
        assert_eq!(framed_text(raw, false), Ok(None));
        assert_eq!(
            framed_text(raw, true),
            Ok(Some(("{\"lrn\":".into(), false)))
        );
    }

    #[test]
    fn a_chunked_response_is_decoded() {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                       5;ext=1\r\n{\"a\":\r\n2\r\n1}\r\n0\r\nX-Trailer: t\r\n\r\n";
        assert_eq!(
            framed_text(chunked, false),
            Ok(Some((r#"{"a":1}"#.into(), true)))
        );
        // Not all of it yet: more to read; the connection ended there: broken.
        let cut = &chunked[..chunked.len() - 2];
        assert_eq!(framed_text(cut, false), Ok(None));
        assert!(framed_text(cut, true).is_err());
        // Bytes after it: read, but the connection is not used again.
        let more = format!("{chunked}HTTP/1.1");
        assert_eq!(
            framed_text(&more, false),
            Ok(Some((r#"{"a":1}"#.into(), false)))
        );
        let bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(framed_text(bad, false).unwrap_err().contains("chunk size"));
        let unended = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n";
        assert!(framed_text(unended, false).unwrap_err().contains("CRLF"));
    }

    #[test]
    fn framings_an_lrn_answer_has_no_need_of_are_refused() {
        let gzip = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert!(framed_text(gzip, false)
            .unwrap_err()
            .contains("Transfer-Encoding"));
        let huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", usize::MAX);
        assert_eq!(framed_text(&huge, false), Err(too_large()));
        let bad = "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n";
        assert!(framed_text(bad, false)
            .unwrap_err()
            .contains("Content-Length"));
    }

    /// What a test server does with each request it reads, in turn.
    enum Then {
        /// Writes the response and waits for the next request.
        Answer(&'static str),
        /// Writes the bytes and closes the connection.
        Close(&'static str),
        /// Answers nothing.
        Hang,
    }

    /// A server that treats requests as `script` says, across all connections; its base
    /// and the number of connections it accepted.
    fn server(script: Vec<Then>) -> (Base, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let base = Base::parse(&url, || Err("no TLS here".into())).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let script = Arc::new(Mutex::new(script.into_iter()));
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                count.fetch_add(1, SeqCst);
                let script = script.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 2048];
                    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                        let next = script.lock().unwrap().next();
                        match next {
                            Some(Then::Answer(raw)) => stream.write_all(raw.as_bytes()).unwrap(),
                            Some(Then::Close(raw)) => {
                                let _ = stream.write_all(raw.as_bytes());
                                return;
                            }
                            Some(Then::Hang) => std::thread::sleep(Duration::from_secs(2)),
                            None => return,
                        }
                    }
                });
            }
        });
        (base, accepted)
    }

    fn ask(base: &Base) -> Result<String, String> {
        get(base, "/", &[], Duration::from_millis(500)).map(|r| r.body)
    }

    #[test]
    fn requests_share_one_connection() {
        let (base, accepted) = server(vec![Then::Answer(OK), Then::Answer(OK), Then::Answer(OK)]);
        for _ in 0..3 {
            assert_eq!(ask(&base).as_deref(), Ok("{}"));
        }
        assert_eq!(accepted.load(SeqCst), 1);
    }

    #[test]
    fn a_connection_the_server_closed_while_idle_is_replaced_once() {
        // The first answer closes after it, unannounced, as an idle timeout does.
        let (base, accepted) = server(vec![Then::Close(OK), Then::Answer(OK), Then::Answer(OK)]);
        for _ in 0..3 {
            assert_eq!(ask(&base).as_deref(), Ok("{}"));
        }
        assert_eq!(accepted.load(SeqCst), 2);
    }

    #[test]
    fn a_request_is_not_sent_again_once_its_response_began_or_timed_out() {
        for (second, error) in [
            (Then::Close("HTTP/1.1 200 OK\r\n"), "truncated"),
            (Then::Hang, "timed out"),
        ] {
            let (base, accepted) = server(vec![Then::Answer(OK), second, Then::Answer(OK)]);
            assert_eq!(ask(&base).as_deref(), Ok("{}"));
            assert!(ask(&base).unwrap_err().contains(error));
            assert_eq!(accepted.load(SeqCst), 1, "{error}: sent again");
            // The failed connection is dropped: the next request opens another.
            assert_eq!(ask(&base).as_deref(), Ok("{}"));
            assert_eq!(accepted.load(SeqCst), 2);
        }
    }

    #[test]
    fn a_server_that_answers_a_tls_handshake_with_plain_http_fails_the_request() {
        let (plain, _) = server(vec![Then::Answer(OK)]);
        let https = Base::parse(&format!("https://{}", plain.authority), trusting_nobody).unwrap();
        let refused = ask(&https).unwrap_err();
        assert!(
            refused.starts_with("TLS handshake with 127.0.0.1 failed: received corrupt message"),
            "{refused}"
        );
    }

    #[test]
    fn a_fresh_connection_closed_before_any_response_is_a_failure() {
        let (base, accepted) = server(vec![Then::Close(""), Then::Answer(OK)]);
        assert!(ask(&base)
            .unwrap_err()
            .contains("closed before any response"));
        assert_eq!(accepted.load(SeqCst), 1);
    }
}
