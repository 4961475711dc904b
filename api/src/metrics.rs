//! Prometheus metrics, served at /metrics.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    publishes: IntCounter,
    publish_failures: IntCounter,
    generation: IntGauge,
    simulations: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "warp_api_requests_total",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("warp_api_request_seconds", "HTTP request latency").buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
            ]),
            &["method", "route"],
        )?;
        let publishes =
            IntCounter::new("warp_api_snapshot_publishes_total", "snapshots published")?;
        let publish_failures = IntCounter::new(
            "warp_api_snapshot_publish_failures_total",
            "automatic publishes that failed",
        )?;
        let generation = IntGauge::new("warp_api_snapshot_generation", "current generation")?;
        let simulations = IntCounter::new("warp_api_simulations_total", "routing simulations")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(publishes.clone()))?;
        registry.register(Box::new(publish_failures.clone()))?;
        registry.register(Box::new(generation.clone()))?;
        registry.register(Box::new(simulations.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            publishes,
            publish_failures,
            generation,
            simulations,
        })
    }

    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    pub fn published(&self, generation: u64) {
        self.publishes.inc();
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    pub fn publish_failed(&self) {
        self.publish_failures.inc();
    }

    pub fn simulated(&self) {
        self.simulations.inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own well-formed families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The method as a label: HTTP lets a client send any token as its method, and each new
/// one would be a new series kept for the life of the process.
fn method_label(method: &str) -> &str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}
