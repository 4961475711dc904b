//! Prometheus metrics: per node latency, requests, errors, active calls, up/draining;
//! served as text on `GET /metrics` by a tiny HTTP responder.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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
    active_calls: AtomicI64,
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
            active_calls: AtomicI64::new(0),
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

    pub fn call_started(&self) {
        self.active_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn call_ended(&self) {
        self.active_calls.fetch_sub(1, Ordering::Relaxed);
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

    fn render(&self, out: &mut String) {
        let n = &self.name;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "warp_rtpengine_node_requests_total{{node=\"{n}\"}} {}",
            get(&self.requests)
        );
        let _ = writeln!(
            out,
            "warp_rtpengine_node_errors_total{{node=\"{n}\"}} {}",
            get(&self.errors)
        );
        let _ = writeln!(
            out,
            "warp_rtpengine_node_failovers_total{{node=\"{n}\"}} {}",
            get(&self.failovers)
        );
        let _ = writeln!(
            out,
            "warp_rtpengine_node_active_calls{{node=\"{n}\"}} {}",
            self.active_calls()
        );
        let _ = writeln!(
            out,
            "warp_rtpengine_node_up{{node=\"{n}\"}} {}",
            self.up.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "warp_rtpengine_node_draining{{node=\"{n}\"}} {}",
            self.draining.load(Ordering::Relaxed)
        );
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += get(count);
            let _ = writeln!(out, "warp_rtpengine_node_latency_seconds_bucket{{node=\"{n}\",le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "warp_rtpengine_node_latency_seconds_bucket{{node=\"{n}\",le=\"+Inf\"}} {}",
            get(&self.requests)
        );
        let _ = writeln!(
            out,
            "warp_rtpengine_node_latency_seconds_sum{{node=\"{n}\"}} {}",
            get(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "warp_rtpengine_node_latency_seconds_count{{node=\"{n}\"}} {}",
            get(&self.requests)
        );
    }
}

/// The whole exposition for a set of nodes, and the QoS records the proxy dropped.
pub fn render<'a>(nodes: impl Iterator<Item = &'a NodeMetrics>, qos_dropped: u64) -> String {
    let mut out = String::from(
        "# TYPE warp_rtpengine_node_requests_total counter\n\
         # TYPE warp_rtpengine_node_errors_total counter\n\
         # TYPE warp_rtpengine_node_failovers_total counter\n\
         # TYPE warp_rtpengine_node_active_calls gauge\n\
         # TYPE warp_rtpengine_node_up gauge\n\
         # TYPE warp_rtpengine_node_draining gauge\n\
         # TYPE warp_rtpengine_node_latency_seconds histogram\n\
         # TYPE warp_rtpengine_qos_dropped_total counter\n",
    );
    let _ = writeln!(out, "warp_rtpengine_qos_dropped_total {qos_dropped}");
    for m in nodes {
        m.render(&mut out);
    }
    out
}

/// Serves `render()` to any HTTP request on `listener`.
pub async fn serve(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut req = [0u8; 1024];
            // The request itself does not matter; read its head so the client sees a reply.
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut req)).await;
            let body = render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}
