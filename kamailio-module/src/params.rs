//! Module parameters: the raw cells Kamailio writes `modparam("warp", ...)` values into,
//! and the validated [`Config`] built from them in `mod_init` (before the workers fork,
//! so every process inherits the same copy).

use crate::core_cell::CoreCell;
use crate::guard::THREAD_FAULT_POINTS;
use crate::http;
use crate::lrn::Dip;
use crate::redis;
use crate::stats::Func;
use crate::transport;
use std::ffi::{c_char, c_int, CStr};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

type StrParam = CoreCell<*const c_char>;

pub static SNAPSHOT: StrParam = CoreCell::new(std::ptr::null());
pub static REDIS_URL: StrParam = CoreCell::new(std::ptr::null());
pub static REDIS_CA: StrParam = CoreCell::new(std::ptr::null());
pub static LRN_SOURCE: StrParam = CoreCell::new(std::ptr::null());
pub static CDR_STREAM: StrParam = CoreCell::new(std::ptr::null());
pub static CDR_BUFFER: CoreCell<c_int> = CoreCell::new(10_000);
/// A process reserves its whole CDR queue (32 bytes an event) on its first event.
const CDR_BUFFER_MAX: usize = 1_000_000;
pub static CDR_SPOOL: StrParam = CoreCell::new(std::ptr::null());
pub static CDR_SPOOL_MAX_MB: CoreCell<c_int> = CoreCell::new(4096);
pub static CLUSTER_CPS: CoreCell<c_int> = CoreCell::new(0);
pub static CLUSTER_CONCURRENT: CoreCell<c_int> = CoreCell::new(0);
pub static CLUSTER_TIMEOUT: CoreCell<c_int> = CoreCell::new(20);
pub static LRN_DIP_URL: StrParam = CoreCell::new(std::ptr::null());
pub static LRN_DIP_CA: StrParam = CoreCell::new(std::ptr::null());
/// Debian's bundle of the system's trusted CAs.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";
pub static LRN_DIP_TOKEN: StrParam = CoreCell::new(std::ptr::null());
pub static LRN_TIMEOUT: CoreCell<c_int> = CoreCell::new(50);
pub static LRN_CACHE_TTL: CoreCell<c_int> = CoreCell::new(86_400);
pub static LRN_BREAKER_FAILURES: CoreCell<c_int> = CoreCell::new(5);
pub static LRN_BREAKER_COOLDOWN: CoreCell<c_int> = CoreCell::new(10_000);
/// Below the ~278 task pointers the core's async socket holds at Linux's default
/// buffer size, past which handing a call over blocks (or fails, `async_nonblock`).
pub static LRN_DIP_QUEUE: CoreCell<c_int> = CoreCell::new(200);
pub static GATEWAY_SILENCES: CoreCell<c_int> = CoreCell::new(3);
pub static GATEWAY_DOWN_TIME: CoreCell<c_int> = CoreCell::new(30);
pub static GATEWAY_PROBE_INTERVAL: CoreCell<c_int> = CoreCell::new(10);
pub static FALLBACK_CODE: CoreCell<c_int> = CoreCell::new(503);
pub static FALLBACK_REASON: StrParam = CoreCell::new(std::ptr::null());
pub static FAULT_INJECT: StrParam = CoreCell::new(std::ptr::null());
pub static RELOAD_CHECK: CoreCell<c_int> = CoreCell::new(0);
/// The longest `reload_check` period, in seconds.
const RELOAD_CHECK_MAX: u32 = 3600;

/// Where an LRN may come from, in the order `lrn_source` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrnSource {
    /// The snapshot's LNP table.
    Snapshot,
    /// The shared Redis LNP cache (filled by the dip).
    Cache,
    /// The upstream (Telique) dip, bounded by a timeout and a circuit breaker.
    Dip,
}

impl LrnSource {
    fn parse(token: &str) -> Result<Self, String> {
        match token {
            "snapshot" => Ok(Self::Snapshot),
            "cache" => Ok(Self::Cache),
            "dip" => Ok(Self::Dip),
            other => Err(format!(
                "unknown lrn_source {other:?} (snapshot, cache, dip)"
            )),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Cache => "cache",
            Self::Dip => "dip",
        }
    }
}

#[derive(Debug)]
pub struct Config {
    pub snapshot: String,
    pub redis_url: String,
    /// What a `rediss://` server's certificate is checked against.
    pub redis_ca: PathBuf,
    pub lrn_sources: Vec<LrnSource>,
    /// The upstream LRN service, when `lrn_dip_url` is set.
    pub lrn_dip: Option<Dip>,
    /// Count trunk CPS in Redis (all nodes sharing it) instead of per node.
    pub cluster_cps: bool,
    /// Count trunk concurrent calls in Redis (all nodes sharing it) instead of per node.
    pub cluster_concurrent: bool,
    /// Bounds each Redis exchange of the cluster-wide counts; past it a call is judged
    /// on the node's own counts.
    pub cluster_timeout: Duration,
    /// Bounds each dip and each LNP cache lookup.
    pub lrn_timeout: Duration,
    pub lrn_cache_ttl: Duration,
    pub lrn_breaker_failures: u64,
    pub lrn_breaker_cooldown: Duration,
    /// Calls that may wait for an async worker for their dip (`warp_dip_async()`);
    /// one more is routed on the dialled number at once.
    pub lrn_dip_queue: u64,
    /// Unanswered attempts in a row that put a vendor gateway last (0: never).
    pub gateway_silences: u32,
    /// How long such a gateway is tried last.
    pub gateway_down_time: Duration,
    /// Seconds between OPTIONS probes of the gateways tried last (0: none).
    pub gateway_probe_interval: u32,
    /// Empty: no CDR events.
    pub cdr_stream: String,
    /// CDR events each process holds while Redis is slow or down.
    pub cdr_buffer: usize,
    /// Where CDR events go while Redis is unreachable; `None`: they wait in memory.
    pub cdr_spool: Option<PathBuf>,
    /// The most the spool's files may take on disk, all processes together, in bytes.
    pub cdr_spool_max: u64,
    pub fallback_code: u16,
    pub fallback_reason: String,
    /// Seconds between looks at the snapshot path for a newly published file
    /// (0: a new generation is served only on `warp.reload`).
    pub reload_check: u32,
    /// Name of a script function that panics on every call: exercises the panic guard.
    pub fault_inject: Option<String>,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Validates the parameters (modparam, else the environment contract, else the default).
pub fn init() -> Result<&'static Config, String> {
    let text = |name: &str, cell: &StrParam, env: Option<&str>, default: &str| {
        let ptr = cell.read();
        if !ptr.is_null() {
            // SAFETY: the core stored a NUL-terminated string from the parsed config.
            let s = unsafe { CStr::from_ptr(ptr) };
            return s
                .to_str()
                .map(str::to_owned)
                .map_err(|_| format!("{name} is not UTF-8"));
        }
        Ok(env.and_then(set_env).unwrap_or_else(|| default.to_owned()))
    };
    let fallback_code = FALLBACK_CODE.read();
    let fallback_code = u16::try_from(fallback_code)
        .ok()
        .filter(|c| (300..=699).contains(c))
        .ok_or_else(|| format!("fallback_code {fallback_code} is not a SIP final failure code"))?;
    // sl reads the byte before the reason phrase it is given; an empty Rust string's
    // pointer is dangling, so that read would crash the worker sending the fallback.
    // Text that goes into a status line or a header.
    let line = |name: &str, cell: &StrParam, default: &str| {
        text(name, cell, None, default).and_then(|v| one_line(name, v))
    };
    let fallback_reason = line("fallback_reason", &FALLBACK_REASON, "Service Unavailable")?;
    if fallback_reason.is_empty() {
        return Err("fallback_reason must not be empty".into());
    }
    let reload_check = RELOAD_CHECK.read();
    let reload_check = u32::try_from(reload_check)
        .ok()
        .filter(|s| *s <= RELOAD_CHECK_MAX)
        .ok_or_else(|| {
            format!(
                "reload_check {reload_check} must be from 0 (off) to {RELOAD_CHECK_MAX} seconds"
            )
        })?;
    let cdr_buffer = CDR_BUFFER.read();
    let cdr_buffer = usize::try_from(cdr_buffer)
        .ok()
        .filter(|b| (1..=CDR_BUFFER_MAX).contains(b))
        .ok_or_else(|| format!("cdr_buffer {cdr_buffer} must be from 1 to {CDR_BUFFER_MAX}"))?;
    let lrn_sources = text("lrn_source", &LRN_SOURCE, None, "snapshot")?
        .split(',')
        .map(|t| LrnSource::parse(t.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let positive = |cell: &CoreCell<c_int>, name: &str| {
        let v = cell.read();
        u64::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("{name} {v} must be positive"))
    };
    let dip_url = text("lrn_dip_url", &LRN_DIP_URL, None, "")?;
    let lrn_dip = if dip_url.is_empty() {
        None
    } else {
        let ca = PathBuf::from(text("lrn_dip_ca", &LRN_DIP_CA, None, SYSTEM_CAS)?);
        // Read and checked here, before the fork, once: only for an https URL.
        let trust = || transport::trusting("lrn_dip_ca", &ca);
        Some(Dip {
            base: http::Base::parse(&dip_url, trust).map_err(|e| format!("lrn_dip_url: {e}"))?,
            url: dip_url,
            ca,
            token: line("lrn_dip_token", &LRN_DIP_TOKEN, "")?,
        })
    };
    if lrn_sources.contains(&LrnSource::Dip) && lrn_dip.is_none() {
        return Err("lrn_source lists dip but lrn_dip_url is not set".into());
    }
    let redis_url = text(
        "redis_url",
        &REDIS_URL,
        Some("WARP_REDIS_URL"),
        "redis://127.0.0.1:6379",
    )?;
    let redis_ca = PathBuf::from(text("redis_ca", &REDIS_CA, None, SYSTEM_CAS)?);
    let switch = |cell: &CoreCell<c_int>, name: &str| match cell.read() {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(format!("{name} {other} is neither 0 nor 1")),
    };
    let cluster_cps = switch(&CLUSTER_CPS, "cluster_cps")?;
    let cluster_concurrent = switch(&CLUSTER_CONCURRENT, "cluster_concurrent")?;
    if cluster_cps || cluster_concurrent || lrn_sources.contains(&LrnSource::Cache) {
        redis::init(&redis_url, &redis_ca)?;
    }
    let gateway_silences = GATEWAY_SILENCES.read();
    let gateway_silences = u32::try_from(gateway_silences)
        .map_err(|_| format!("gateway_silences {gateway_silences} must be 0 (off) or more"))?;
    let gateway_probe_interval = GATEWAY_PROBE_INTERVAL.read();
    let gateway_probe_interval = u32::try_from(gateway_probe_interval).map_err(|_| {
        format!("gateway_probe_interval {gateway_probe_interval} must be 0 (off) or more")
    })?;
    let config = Config {
        snapshot: text(
            "snapshot",
            &SNAPSHOT,
            Some("WARP_SNAPSHOT"),
            "/var/lib/warp/routing.snap",
        )?,
        redis_url,
        redis_ca,
        lrn_sources,
        lrn_dip,
        cluster_cps,
        cluster_concurrent,
        cluster_timeout: Duration::from_millis(positive(&CLUSTER_TIMEOUT, "cluster_timeout")?),
        lrn_timeout: Duration::from_millis(positive(&LRN_TIMEOUT, "lrn_timeout")?),
        lrn_cache_ttl: Duration::from_secs(positive(&LRN_CACHE_TTL, "lrn_cache_ttl")?),
        lrn_breaker_failures: positive(&LRN_BREAKER_FAILURES, "lrn_breaker_failures")?,
        lrn_breaker_cooldown: Duration::from_millis(positive(
            &LRN_BREAKER_COOLDOWN,
            "lrn_breaker_cooldown",
        )?),
        lrn_dip_queue: positive(&LRN_DIP_QUEUE, "lrn_dip_queue")?,
        gateway_silences,
        gateway_probe_interval,
        gateway_down_time: Duration::from_secs(positive(&GATEWAY_DOWN_TIME, "gateway_down_time")?),
        cdr_stream: text("cdr_stream", &CDR_STREAM, None, "warp:cdr:raw")?,
        cdr_buffer,
        cdr_spool: Some(text("cdr_spool", &CDR_SPOOL, None, "")?)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from),
        cdr_spool_max: positive(&CDR_SPOOL_MAX_MB, "cdr_spool_max_mb")? << 20,
        fallback_code,
        fallback_reason,
        reload_check,
        fault_inject: fault_point(text("fault_inject", &FAULT_INJECT, None, "")?)?,
    };
    Ok(CONFIG.get_or_init(|| config))
}

/// `fault_inject`'s point, refused unless a script function or a background thread has
/// it: a misspelt one would never fire, and the test relying on it would not notice.
fn fault_point(value: String) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let functions = Func::ALL.map(Func::name);
    let points: Vec<&str> = functions
        .iter()
        .chain(&THREAD_FAULT_POINTS)
        .copied()
        .collect();
    if !points.contains(&value.as_str()) {
        return Err(format!(
            "fault_inject {value:?} is no fault point ({})",
            points.join(", ")
        ));
    }
    Ok(Some(value))
}

/// `value`, refused when it holds a control character: the reason phrase goes into a
/// status line and the token into a header, where a line break (as from a value read
/// with its trailing newline) would end the line and start another.
fn one_line(name: &str, value: String) -> Result<String, String> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "{name} must not contain a line break or control character"
        ));
    }
    Ok(value)
}

/// The configuration `mod_init` validated.
pub fn config() -> &'static Config {
    CONFIG
        .get()
        .expect("warp: configuration read before mod_init")
}

impl Config {
    /// The effective settings as (name, value), secrets masked: logged at start-up and
    /// returned by the `warp.config` RPC.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let lrn: Vec<&str> = self.lrn_sources.iter().map(|s| s.name()).collect();
        vec![
            ("snapshot", self.snapshot.clone()),
            ("redis_url", warp_redact::mask_password(&self.redis_url)),
            ("redis_ca", self.redis_ca.display().to_string()),
            ("lrn_source", lrn.join(",")),
            (
                "lrn_dip_url",
                self.lrn_dip
                    .as_ref()
                    .map(|d| d.url.clone())
                    .unwrap_or_default(),
            ),
            (
                "lrn_dip_ca",
                self.lrn_dip
                    .as_ref()
                    .map(|d| d.ca.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "lrn_dip_token",
                self.lrn_dip
                    .as_ref()
                    .filter(|d| !d.token.is_empty())
                    .map_or("", |_| "***")
                    .to_owned(),
            ),
            ("cluster_cps", u8::from(self.cluster_cps).to_string()),
            (
                "cluster_concurrent",
                u8::from(self.cluster_concurrent).to_string(),
            ),
            (
                "cluster_timeout",
                self.cluster_timeout.as_millis().to_string(),
            ),
            ("lrn_timeout", self.lrn_timeout.as_millis().to_string()),
            ("lrn_cache_ttl", self.lrn_cache_ttl.as_secs().to_string()),
            (
                "lrn_breaker_failures",
                self.lrn_breaker_failures.to_string(),
            ),
            (
                "lrn_breaker_cooldown",
                self.lrn_breaker_cooldown.as_millis().to_string(),
            ),
            ("lrn_dip_queue", self.lrn_dip_queue.to_string()),
            ("gateway_silences", self.gateway_silences.to_string()),
            (
                "gateway_down_time",
                self.gateway_down_time.as_secs().to_string(),
            ),
            (
                "gateway_probe_interval",
                self.gateway_probe_interval.to_string(),
            ),
            ("cdr_stream", self.cdr_stream.clone()),
            ("cdr_buffer", self.cdr_buffer.to_string()),
            (
                "cdr_spool",
                self.cdr_spool
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
            ("cdr_spool_max_mb", (self.cdr_spool_max >> 20).to_string()),
            ("reload_check", self.reload_check.to_string()),
            ("fallback_code", self.fallback_code.to_string()),
            ("fallback_reason", self.fallback_reason.clone()),
            (
                "fault_inject",
                self.fault_inject.clone().unwrap_or_default(),
            ),
        ]
    }
}

/// The value of the environment variable `name`; an empty one is unset, as a unit
/// file's `Environment=WARP_SNAPSHOT=` means (and as the API reads it).
fn set_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::set_env;

    #[test]
    fn an_empty_environment_variable_is_unset() {
        std::env::set_var("WARP_TEST_PARAMS_EMPTY", "");
        std::env::set_var("WARP_TEST_PARAMS_SET", "/srv/routing.snap");
        assert_eq!(set_env("WARP_TEST_PARAMS_EMPTY"), None);
        assert_eq!(
            set_env("WARP_TEST_PARAMS_SET").as_deref(),
            Some("/srv/routing.snap")
        );
        assert_eq!(set_env("WARP_TEST_PARAMS_NEVER_SET"), None);
    }
}
