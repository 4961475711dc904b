//! Which settings each service reads: a key unknown to every one of them is a typo.

/// A service: its table in the file and the environment variables it reads.
#[derive(Debug)]
pub struct Service {
    pub table: &'static str,
    pub vars: &'static [&'static str],
}

pub const API: Service = Service {
    table: "api",
    vars: &[
        "WARP_DATABASE_URL",
        "WARP_REDIS_URL",
        "WARP_REDIS_CA",
        "WARP_LISTEN",
        "WARP_SNAPSHOT",
        "WARP_BOOTSTRAP_API_KEY",
        "WARP_JWT_SECRET",
        "WARP_PUBLISH_DEBOUNCE_MS",
        "WARP_RATE_LIMIT",
        "WARP_IDEMPOTENCY_TTL_SECS",
        "WARP_WEBHOOK_TIMEOUT_MS",
        "WARP_WEBHOOK_MAX_ATTEMPTS",
        "WARP_WEBHOOK_BACKOFF_MS",
        "WARP_WEBHOOK_POLL_MS",
        "WARP_WEBHOOK_ALLOW_PRIVATE",
        "WARP_SIP_REALM",
    ],
};

/// `warp-rtpengine`: the client commands and the proxy.
pub const RTPENGINE: Service = Service {
    table: "rtpengine",
    vars: &[
        "WARP_RTPENGINE_NG",
        "WARP_REDIS_URL",
        "WARP_REDIS_CA",
        "WARP_RTPENGINE_METRICS",
    ],
};

/// `warp pull`, a SIP edge's snapshot fetcher.
pub const PULL: Service = Service {
    table: "pull",
    vars: &[
        "WARP_API_URL",
        "WARP_API_KEY",
        "WARP_REDIS_URL",
        "WARP_REDIS_CA",
        "WARP_SNAPSHOT",
    ],
};

pub const ALL: [&Service; 3] = [&API, &RTPENGINE, &PULL];

/// The file's key for a variable: `WARP_DATABASE_URL` is `database_url`.
pub fn key_of(var: &str) -> String {
    var.strip_prefix("WARP_")
        .unwrap_or(var)
        .to_ascii_lowercase()
}

impl Service {
    pub fn reads_key(&self, key: &str) -> bool {
        self.vars.iter().any(|v| key_of(v) == key)
    }
}
