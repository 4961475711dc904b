//! Prometheus metrics: per node latency, requests, errors, active calls, up/draining;
//! served as text on `GET /metrics` by a tiny HTTP responder.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Debug)]
pub struct NodeMetrics {
    name: String,
    requests: AtomicU64,
    errors: AtomicU64,
    failovers: AtomicU64,
    /// Kept by the pins themselves ([`super::sticky::Sticky`]).
    active_calls: Arc<AtomicI64>,
    up: AtomicI64,
    draining: AtomicI64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_sum_us: AtomicU64,
}

impl NodeMetrics {
    pub fn new(name: &str) -> NodeMetrics {
        NodeMetrics {
            name: name.replace(['\\', '"', '\n'], "_"),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            active_calls: Arc::new(AtomicI64::new(0)),
            up: AtomicI64::new(1),
            draining: AtomicI64::new(0),
            latency_buckets: Default::default(),
            latency_sum_us: AtomicU64::new(0),
        }
    }

    /// A request answered by this node after `elapsed`.
    pub fn answered(&self, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// No answer, or an error reply.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A new call moved on from this node to the next.
    pub fn failover(&self) {
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }

    /// The gauge of calls pinned to this node, for the pins to keep.
    pub fn active_calls_gauge(&self) -> Arc<AtomicI64> {
        self.active_calls.clone()
    }

    pub fn active_calls(&self) -> i64 {
        self.active_calls.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(i64::from(up), Ordering::Relaxed);
    }

    pub fn set_draining(&self, on: bool) {
        self.draining.store(i64::from(on), Ordering::Relaxed);
    }

    /// One family's sample for this node.
    fn sample(&self, out: &mut String, family: &str, value: impl std::fmt::Display) {
        let _ = writeln!(out, "{family}{{node=\"{}\"}} {value}", self.name);
    }

    fn latency(&self, out: &mut String) {
        let n = &self.name;
        let family = "warp_rtpengine_node_latency_seconds";
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{family}_bucket{{node=\"{n}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let requests = self.requests();
        let _ = writeln!(
            out,
            "{family}_bucket{{node=\"{n}\",le=\"+Inf\"}} {requests}"
        );
        let sum = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{family}_sum{{node=\"{n}\"}} {sum}");
        let _ = writeln!(out, "{family}_count{{node=\"{n}\"}} {requests}");
    }
}

/// A per-node family other than the latency histogram: name, type, value.
type Family = (&'static str, &'static str, fn(&NodeMetrics) -> i64);

const FAMILIES: [Family; 6] = [
    ("warp_rtpengine_node_requests_total", "counter", |m| {
        get(&m.requests)
    }),
    ("warp_rtpengine_node_errors_total", "counter", |m| {
        get(&m.errors)
    }),
    ("warp_rtpengine_node_failovers_total", "counter", |m| {
        get(&m.failovers)
    }),
    ("warp_rtpengine_node_active_calls", "gauge", |m| {
        m.active_calls()
    }),
    ("warp_rtpengine_node_up", "gauge", |m| {
        m.up.load(Ordering::Relaxed)
    }),
    ("warp_rtpengine_node_draining", "gauge", |m| {
        m.draining.load(Ordering::Relaxed)
    }),
];

fn get(counter: &AtomicU64) -> i64 {
    counter.load(Ordering::Relaxed) as i64
}

/// The proxy's counters that belong to no node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// QoS records dropped on a full queue.
    pub qos_dropped: u64,
    /// QoS records Redis refused for good.
    pub qos_refused: u64,
    /// ng datagrams dropped for want of a cookie.
    pub datagrams_without_cookie: u64,
    /// ng datagrams dropped for coming from a source `--allow` does not list.
    pub datagrams_refused: u64,
}

/// The whole exposition for a set of nodes and the proxy's totals; each family's samples
/// together, after its TYPE line, as the text format wants.
pub fn render<'a>(nodes: impl Iterator<Item = &'a NodeMetrics> + Clone, totals: Totals) -> String {
    let mut out = String::new();
    for (family, kind, value) in FAMILIES {
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for m in nodes.clone() {
            m.sample(&mut out, family, value(m));
        }
    }
    out.push_str("# TYPE warp_rtpengine_node_latency_seconds histogram\n");
    for m in nodes {
        m.latency(&mut out);
    }
    for (family, value) in [
        ("warp_rtpengine_qos_dropped_total", totals.qos_dropped),
        ("warp_rtpengine_qos_refused_total", totals.qos_refused),
        (
            "warp_rtpengine_datagrams_without_cookie_total",
            totals.datagrams_without_cookie,
        ),
        (
            "warp_rtpengine_datagrams_refused_total",
            totals.datagrams_refused,
        ),
    ] {
        let _ = writeln!(out, "# TYPE {family} counter\n{family} {value}");
    }
    out
}

/// The most of a request head the listener reads: a scraper's fits many times over, and
/// a client sending more cannot hold a task reading forever.
const MAX_HEAD: usize = 8192;

/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// The wait after a failed accept, doubled after each one that fails in a row, up to
/// the longest.
const FIRST_ACCEPT_WAIT: Duration = Duration::from_millis(100);
const LONGEST_ACCEPT_WAIT: Duration = Duration::from_secs(1);

/// Serves `render()` on `GET /metrics` (and `HEAD`); another path is 404, another method
/// on `/metrics` 405, a request that is not HTTP 400.
pub async fn serve(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    let mut wait = FIRST_ACCEPT_WAIT;
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => {
                wait = FIRST_ACCEPT_WAIT;
                stream
            }
            // Out of file handles (EMFILE), every accept fails at once until a
            // connection closes: trying again at once would spin a core meanwhile.
            Err(e) => {
                if wait == FIRST_ACCEPT_WAIT {
                    tracing::warn!("metrics listener cannot accept ({e}): retrying every 0.1-1 s");
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LONGEST_ACCEPT_WAIT);
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            let head = read_head(&mut stream).await;
            let _ = stream.write_all(&respond(&head, &*render)).await;
        });
    }
}

/// The request head up to its blank line, or what came of it within the size and time
/// limits. Read whole, so closing does not reset a connection the client still writes to.
async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut limited = stream.take(MAX_HEAD as u64);
    let _ = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head_ends(&head) {
            match limited.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    head
}

fn head_ends(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

/// The whole response to a request head.
fn respond(head: &[u8], render: &dyn Fn() -> String) -> Vec<u8> {
    // Only a complete request line counts: a cut one could name another path.
    let line = match head.iter().position(|&b| b == b'\n') {
        Some(end) => String::from_utf8_lossy(&head[..end]),
        None => return response("400 Bad Request", "", "bad request\n", true),
    };
    let parts: Vec<&str> = line.split_whitespace().collect();
    let [method, target, version] = parts[..] else {
        return response("400 Bad Request", "", "bad request\n", true);
    };
    if !version.starts_with("HTTP/") {
        return response("400 Bad Request", "", "bad request\n", true);
    }
    // A query string (`?name[]=…`, as Prometheus may add) does not change the answer.
    let path = target.split('?').next().unwrap_or(target);
    match method {
        _ if path != "/metrics" => response("404 Not Found", "", "not found\n", method != "HEAD"),
        "GET" | "HEAD" => response(
            "200 OK",
            "Content-Type: text/plain; version=0.0.4\r\n",
            &render(),
            method == "GET",
        ),
        _ => response(
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            "method not allowed\n",
            true,
        ),
    }
}

/// A response with `extra` header lines; a HEAD request gets the length but no body.
fn response(status: &str, extra: &str, body: &str, with_body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The family a sample line belongs to (histogram suffixes folded in).
    fn family(line: &str) -> &str {
        let name = line.split(['{', ' ']).next().unwrap_or(line);
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
            .unwrap_or(name)
    }

    #[test]
    fn each_family_is_one_group_after_its_type_line() {
        let (a, b) = (NodeMetrics::new("a"), NodeMetrics::new("b"));
        a.answered(Duration::from_micros(300));
        b.error();
        b.set_up(false);
        let totals = Totals {
            qos_dropped: 7,
            qos_refused: 3,
            datagrams_without_cookie: 5,
            datagrams_refused: 2,
        };
        let text = render([&a, &b].into_iter(), totals);
        let mut seen: Vec<&str> = Vec::new();
        let mut typed: Option<&str> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed = rest.split(' ').next();
                assert!(!seen.contains(&typed.unwrap()), "{line} twice:\n{text}");
                continue;
            }
            let f = family(line);
            assert_eq!(Some(f), typed, "{line} outside its group:\n{text}");
            if seen.last() != Some(&f) {
                seen.push(f);
            }
        }
        assert_eq!(seen.len(), 11, "{text}");
        assert!(text.contains("warp_rtpengine_node_requests_total{node=\"a\"} 1\n"));
        assert!(text.contains("warp_rtpengine_node_errors_total{node=\"b\"} 1\n"));
        assert!(text.contains("warp_rtpengine_node_up{node=\"b\"} 0\n"));
        assert!(text
            .contains("warp_rtpengine_node_latency_seconds_bucket{node=\"a\",le=\"0.0005\"} 1\n"));
        assert!(text.contains("warp_rtpengine_qos_dropped_total 7\n"));
        assert!(text.contains("warp_rtpengine_qos_refused_total 3\n"));
        assert!(text.contains("warp_rtpengine_datagrams_without_cookie_total 5\n"));
        assert!(text.contains("warp_rtpengine_datagrams_refused_total 2\n"));
    }

    /// What the listener answers `request` (sent whole, then the write side shut).
    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("answered in time")
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn only_get_or_head_of_the_metrics_path_gets_the_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::new(|| "metric 1\n".to_owned())));
        let get = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
        assert!(get.ends_with("\r\n\r\nmetric 1\n"), "{get}");
        let scrape = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
        let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 9\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "no body: {head}");
        for other in [
            "GET / HTTP/1.1",
            "GET /metricsx HTTP/1.1",
            "HEAD /x HTTP/1.1",
        ] {
            let reply = exchange(addr, format!("{other}\r\n\r\n").as_bytes()).await;
            assert!(
                reply.starts_with("HTTP/1.1 404 Not Found\r\n"),
                "{other}: {reply}"
            );
        }
        for method in ["POST", "PUT", "DELETE"] {
            let reply = exchange(
                addr,
                format!("{method} /metrics HTTP/1.1\r\n\r\n").as_bytes(),
            )
            .await;
            assert!(
                reply.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
                "{reply}"
            );
            assert!(reply.contains("Allow: GET, HEAD\r\n"), "{reply}");
        }
        assert!(exchange(addr, b"hello\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 400 "));
        // A head that never ends is read only up to the limit, then answered.
        let endless = vec![b'x'; MAX_HEAD];
        let reply = exchange(addr, &endless).await;
        assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    }
}
