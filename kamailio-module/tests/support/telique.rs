//! A local stand-in for Telique's LRN API that speaks its contract and fails the way a
//! remote service does. Behaviour by the number asked for (10 national digits):
//! `…0001` ported to 303-555-9999, `…0002` not ported, `…0003` answers after 1 s,
//! `…0009` ported like `…0001` but saying `Connection: close` and leaving the connection
//! open 2 s after the answer, `…0015` ported like `…0001`, then the connection closed
//! although the answer kept it alive (as an idle timeout closes it), `…0016` ported like
//! `…0001` in a chunked body (to an HTTP/1.1 client that keeps the connection),
//! `…0004` 429 (Retry-After: 1), `…0008` 429 (Retry-After: 5), `…0014` 429 (no
//! Retry-After), `…0005` 503, `…0006` a 200 of 100 kB (a misbehaving
//! proxy in between), `…0007` a 200 whose lookup failed (`status` not `success`, no
//! `lrn`), `…0010` a 200 about another number (`phone_number` 212-555-0001), `…0011` a
//! 200 whose `lrn` is no NANP number, `…0012` a 200 about another number given as a
//! JSON number, `…0013` a 200 whose `status` is a number (500) and `lrn` empty. A wrong
//! `x-api-token` gets 401. Requests on one connection are served in turn until the client
//! closes it or asks for its close (HTTP/1.0, `Connection: close`). Over TLS (as the real
//! one serves), a connection is ended with a close_notify.

use super::tls::Pki;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "t0ken";

pub struct Telique {
    pub port: u16,
    tls: bool,
    /// Request paths received, in order.
    seen: Arc<Mutex<Vec<String>>>,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
}

impl Telique {
    pub fn start() -> Telique {
        Telique::serving(None)
    }

    /// Over TLS, with `pki`'s certificate for 127.0.0.1.
    pub fn start_tls(pki: &Pki) -> Telique {
        Telique::serving(Some(pki.server_config()))
    }

    fn serving(tls: Option<Arc<ServerConfig>>) -> Telique {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        let secure = tls.is_some();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                accepted.fetch_add(1, SeqCst);
                let log = log.clone();
                match tls.clone() {
                    None => std::thread::spawn(move || while serve(&mut stream, &log) {}),
                    Some(config) => std::thread::spawn(move || {
                        let session = ServerConnection::new(config).unwrap();
                        let mut stream = StreamOwned::new(session, stream);
                        while serve(&mut stream, &log) {}
                        stream.conn.send_close_notify();
                        let _ = stream.flush();
                    }),
                };
            }
        });
        Telique {
            port,
            tls: secure,
            seen,
            connections,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// How many connections clients opened.
    pub fn connections(&self) -> usize {
        self.connections.load(SeqCst)
    }

    /// Waits (10 s at most) until a request about `number` has come in.
    pub fn wait_for(&self, number: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.seen().iter().any(|p| p.contains(number)) {
            assert!(Instant::now() < deadline, "no dip of {number}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Answers one request on `stream`; whether the connection may serve another.
fn serve(stream: &mut (impl Read + Write), log: &Mutex<Vec<String>>) -> bool {
    // A client sends its next request only once it has the answer to the last.
    let mut request = Vec::new();
    let mut buf = [0u8; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request).into_owned();
    let keep_alive = request
        .lines()
        .next()
        .is_some_and(|l| l.ends_with(" HTTP/1.1"))
        && !request
            .lines()
            .any(|l| l.eq_ignore_ascii_case("connection: close"));
    let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
    log.lock().unwrap().push(path.clone());
    let token_ok = request
        .lines()
        .any(|l| l.to_ascii_lowercase() == format!("x-api-token: {TOKEN}"));
    let number = path
        .strip_prefix("/v1/telique/lrn/")
        .and_then(|p| p.strip_suffix("?format=json"))
        .unwrap_or("");
    let (status, extra, body) = if !token_ok {
        (
            "401 Unauthorized",
            "",
            r#"{"error":"invalid token"}"#.to_owned(),
        )
    } else if ["0001", "0002", "0009", "0015", "0016"]
        .iter()
        .any(|n| number.ends_with(n))
    {
        let lrn = if !number.ends_with("0002") {
            "3035559999"
        } else {
            ""
        };
        let body = format!(
            r#"{{"phone_number":"{number}","lrn":"{lrn}","status":"success","metadata":{{"spid":"1234","lnp_type":"wireless","activation_timestamp":"2024-01-01T00:00:00Z","last_updated":"2024-06-01T00:00:00Z"}}}}"#
        );
        ("200 OK", "", body)
    } else if number.ends_with("0010") || number.ends_with("0011") {
        let (asked, lrn) = if number.ends_with("0010") {
            ("2125550001", "3035559999")
        } else {
            (number, "+442071234567")
        };
        (
            "200 OK",
            "",
            format!(
                r#"{{"phone_number":"{asked}","lrn":"{lrn}","status":"success","metadata":{{}}}}"#
            ),
        )
    } else if number.ends_with("0012") {
        (
            "200 OK",
            "",
            r#"{"phone_number":2125550001,"lrn":"3035559999","status":"success"}"#.to_owned(),
        )
    } else if number.ends_with("0013") {
        (
            "200 OK",
            "",
            format!(r#"{{"phone_number":"{number}","lrn":"","status":500}}"#),
        )
    } else if number.ends_with("0003") {
        std::thread::sleep(Duration::from_secs(1));
        (
            "200 OK",
            "",
            format!(
                r#"{{"phone_number":"{number}","lrn":"3035559999","status":"success","metadata":{{}}}}"#
            ),
        )
    } else if number.ends_with("0006") {
        let pad = "x".repeat(100_000);
        (
            "200 OK",
            "",
            format!(r#"{{"phone_number":"{number}","lrn":"","pad":"{pad}"}}"#),
        )
    } else if number.ends_with("0007") {
        (
            "200 OK",
            "",
            format!(r#"{{"phone_number":"{number}","status":"error","message":"lookup failed"}}"#),
        )
    } else if number.ends_with("0004") || number.ends_with("0008") || number.ends_with("0014") {
        (
            "429 Too Many Requests",
            if number.ends_with("0004") {
                "Retry-After: 1\r\n"
            } else if number.ends_with("0008") {
                "Retry-After: 5\r\n"
            } else {
                ""
            },
            r#"{"error":"rate limited"}"#.to_owned(),
        )
    } else {
        (
            "503 Service Unavailable",
            "",
            r#"{"error":"upstream down"}"#.to_owned(),
        )
    };
    let says_close = !keep_alive || number.ends_with("0009");
    let connection = if says_close { "close" } else { "keep-alive" };
    let sent = if number.ends_with("0016") && keep_alive {
        // As a server behind a proxy that streams may: two chunks, then the last.
        let (first, second) = body.split_at(body.len() / 2);
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x}\r\n{first}\r\n{:x};part=2\r\n{second}\r\n0\r\n\r\n",
            first.len(),
            second.len()
        )
    } else {
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
            body.len()
        )
    };
    let sent = sent.and_then(|()| stream.flush());
    // …0009: a proxy that keeps the connection open after its answer anyway.
    if number.ends_with("0009") {
        std::thread::sleep(Duration::from_secs(2));
    }
    sent.is_ok() && !says_close && !number.ends_with("0015")
}
