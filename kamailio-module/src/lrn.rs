//! LRNs from outside the snapshot: the Redis LNP cache ([`crate::lrn_cache`]) and the
//! upstream LRN dip (Telique's contract: `GET /v1/telique/lrn/{number}?format=json`
//! with header `x-api-token`, reply `{phone_number, lrn, status, metadata{...}}`) for
//! NANP numbers the snapshot's LNP table does not know, when `lrn_source` lists `dip`.
//!
//! The dip runs in the process routing the call (a SIP worker, or an async worker when
//! the script hands such calls over: `warp_needs_dip()`), bounded by `lrn_timeout`
//! (counted, in an async worker, from the hand-over: a call that waited for a free
//! worker gets what is left, and none is made once the wait took it all); any failure (timeout,
//! refused, 429, 5xx, a reply without a usable LRN) routes the call on the dialled
//! number. A circuit breaker shared by all workers stops dipping after
//! `lrn_breaker_failures` failures in a row, for `lrn_breaker_cooldown`, and at once for
//! a Retry-After on any reply but a 200 (a 429's, a 503's), or for the cooldown on a 429
//! without one; then one call tries again and its outcome closes or reopens it.

use crate::clock;
use crate::http;
use crate::log::lm_warn;
use crate::lrn_cache;
use crate::params::{self, LrnSource};
use crate::shm;
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use warp_core::{Number, Snapshot};

#[repr(C)]
struct Shared {
    /// Failures in a row.
    failures: AtomicU64,
    /// Unix ms until which no dip is tried (0: closed).
    open_until: AtomicI64,
    dips: AtomicU64,
    ported: AtomicU64,
    not_ported: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    /// Dips not made, or cut short, because the call waited for an async worker.
    late: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    cache_errors: AtomicU64,
}

static SHARED: shm::Block<Shared> = shm::Block::new();

/// Allocates the breaker; `mod_init` only.
pub fn init() -> Result<(), String> {
    SHARED
        .alloc(Shared {
            failures: AtomicU64::new(0),
            open_until: AtomicI64::new(0),
            dips: AtomicU64::new(0),
            ported: AtomicU64::new(0),
            not_ported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            late: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            cache_errors: AtomicU64::new(0),
        })
        .map(drop)
}

/// Frees the breaker; `destroy` only.
pub fn destroy() {
    SHARED.free();
}

/// The longest pause a Retry-After can impose: a daily quota's `86400` would stop
/// every dip for a day, which only a restart could undo.
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// The LNP cache and the upstream dip `lrn_source` lists.
fn sources() -> (bool, Option<&'static Dip>) {
    let config = params::config();
    let cache = config.lrn_sources.contains(&LrnSource::Cache);
    let dip = config
        .lrn_dip
        .as_ref()
        .filter(|_| config.lrn_sources.contains(&LrnSource::Dip));
    (cache, dip)
}

/// `dnis` as a number to ask the LNP cache or the upstream dip about: when `lrn_source`
/// lists one, the number is NANP (not toll-free: those are not ported this way) and the
/// snapshot does not know it.
pub fn wanted(snapshot: &Snapshot, dnis: &str) -> Option<Number> {
    let (cache, dip) = sources();
    if !cache && dip.is_none() {
        return None;
    }
    let number = Number::parse(dnis).ok()?;
    (number.is_nanp() && !number.is_toll_free() && snapshot.lnp(number).is_none()).then_some(number)
}

/// Whether a number [`wanted`] would be dipped now: `lrn_source` lists the dip and the
/// breaker is closed, or its pause is over.
pub fn dip_due() -> bool {
    let (_, dip) = sources();
    dip.is_some()
        && SHARED.get().is_some_and(|s| {
            let until = s.open_until.load(Relaxed);
            until == 0 || clock::now_ms() >= until
        })
}

thread_local! {
    /// The answer [`prefetch`] got for a number, for the decision about to be made on it.
    static PREFETCHED: Cell<Option<(Number, Option<Number>)>> = const { Cell::new(None) };
}

/// Looks `number` up as [`supplied`] does, for a call that `waited` since it was handed
/// over, and keeps the answer for the next [`supplied`] of it in this process: an async
/// worker dips before it resumes the call, whose decision then takes the answer rather
/// than waiting with tm's lock held.
pub fn prefetch(number: Number, waited: Duration) {
    let lrn = lookup(number, params::config().lrn_timeout.saturating_sub(waited));
    PREFETCHED.set(Some((number, lrn)));
}

/// The decision about to be made on `number` in this process gets no LRN from the cache
/// or the dip: the call is routed on the dialled number (no async worker could take it).
pub fn undipped(number: Number) {
    PREFETCHED.set(Some((number, None)));
}

/// Drops what [`prefetch`] or [`undipped`] kept and no decision took.
pub fn forget_prefetched() {
    PREFETCHED.set(None);
}

/// An LRN for `number` (see [`wanted`]) from the LNP cache or the upstream dip, as
/// `lrn_source` lists them.
pub fn supplied(number: Number) -> Option<Number> {
    match PREFETCHED.take() {
        Some((fetched, lrn)) if fetched == number => return lrn,
        _ => {}
    }
    lookup(number, params::config().lrn_timeout)
}

/// [`supplied`]'s lookup, with `budget` for the dip.
fn lookup(number: Number, budget: Duration) -> Option<Number> {
    let (cache, dip) = sources();
    let shared = SHARED.get()?;
    if cache {
        let counter = match lrn_cache::get(number) {
            lrn_cache::Lookup::Ported(lrn) => {
                shared.cache_hits.fetch_add(1, Relaxed);
                return Some(lrn);
            }
            lrn_cache::Lookup::NotPorted => {
                shared.cache_hits.fetch_add(1, Relaxed);
                return None;
            }
            lrn_cache::Lookup::Miss => &shared.cache_misses,
            lrn_cache::Lookup::Unavailable => &shared.cache_errors,
        };
        counter.fetch_add(1, Relaxed);
    }
    let lrn = dip.and_then(|dip| upstream(shared, dip, number, budget))?;
    if cache {
        lrn_cache::put(number, lrn);
    }
    lrn
}

/// Dips `number` within `budget` unless the breaker is open: `Some(lrn)` when upstream
/// answered (`Some(None)`: not ported), `None` when it could not.
fn upstream(
    shared: &Shared,
    dip: &Dip,
    number: Number,
    budget: Duration,
) -> Option<Option<Number>> {
    let config = params::config();
    if budget.is_zero() {
        shared.late.fetch_add(1, Relaxed);
        return None;
    }
    let Some(probe) = admit(shared) else {
        shared.skipped.fetch_add(1, Relaxed);
        return None;
    };
    shared.dips.fetch_add(1, Relaxed);
    let started = Instant::now();
    match ask(dip, number, budget) {
        Ok(lrn) => {
            shared.failures.store(0, Relaxed);
            // Only the probe that reopened the breaker closes it, and only if nobody
            // paused the dip meanwhile: a dip that started before a 429 says nothing
            // about the upstream's rate limit now.
            if probe != 0 {
                let _ = shared
                    .open_until
                    .compare_exchange(probe, 0, Relaxed, Relaxed);
            }
            let counter = if lrn.is_some() {
                &shared.ported
            } else {
                &shared.not_ported
            };
            counter.fetch_add(1, Relaxed);
            Some(lrn)
        }
        // The upstream ran out of a time the call's wait had cut short: no fault of its
        // own, so the breaker hears nothing of it (a probe's pause simply runs out).
        Err((why, _)) if budget < config.lrn_timeout && started.elapsed() >= budget => {
            shared.late.fetch_add(1, Relaxed);
            lm_warn!(
                "LRN dip for {number} cut short by the call's wait ({why}): routing on the dialled number"
            );
            None
        }
        Err((why, retry_after)) => {
            shared.failed.fetch_add(1, Relaxed);
            let failures = shared.failures.fetch_add(1, Relaxed) + 1;
            lm_warn!("LRN dip for {number} failed ({why}): routing on the dialled number");
            // A Retry-After (a 429's, a 503's) is honoured at once; a run of failures
            // opens the breaker for the cooldown (or the Retry-After, if longer).
            let open_for = if failures >= config.lrn_breaker_failures {
                lm_warn!("LRN dip: {failures} failures in a row, pausing the dip");
                Some(
                    config
                        .lrn_breaker_cooldown
                        .max(retry_after.unwrap_or_default()),
                )
            } else {
                retry_after
            };
            if let Some(pause) = open_for.map(|p| p.min(MAX_PAUSE)) {
                let until = clock::now_ms().saturating_add(pause.as_millis() as i64);
                // The longer pause wins: a timeout's cooldown never cuts a Retry-After.
                shared.open_until.fetch_max(until, Relaxed);
                lm_warn!("LRN dip paused for {} ms", pause.as_millis());
            }
            None
        }
    }
}

/// Closed: dip (`Some(0)`). Open: no dip (`None`) until the pause is over, then one
/// caller, the one that moves the deadline on, tries (`Some(the new deadline)`).
fn admit(shared: &Shared) -> Option<i64> {
    let until = shared.open_until.load(Relaxed);
    if until == 0 {
        return Some(0);
    }
    let now = clock::now_ms();
    let cooldown = params::config().lrn_breaker_cooldown.as_millis() as i64;
    let next = now + cooldown;
    (now >= until
        && shared
            .open_until
            .compare_exchange(until, next, Relaxed, Relaxed)
            .is_ok())
    .then_some(next)
}

/// The configured upstream.
#[derive(Debug)]
pub struct Dip {
    pub url: String,
    pub base: http::Base,
    /// The CAs an https server's certificate is checked against.
    pub ca: std::path::PathBuf,
    pub token: String,
}

/// One dip: `Ok(None)` when the number is not ported; `Err` with the reason and the
/// upstream's Retry-After.
fn ask(
    dip: &Dip,
    number: Number,
    timeout: Duration,
) -> Result<Option<Number>, (String, Option<Duration>)> {
    let national = number.national().unwrap_or(number.value());
    let path = format!("/v1/telique/lrn/{national}?format=json");
    let headers = [("x-api-token", dip.token.as_str())];
    let reply = http::get(&dip.base, &path, &headers, timeout).map_err(|e| (e, None))?;
    if reply.status != 200 {
        // A 429 asks for quiet even when it does not say how long (Telique's anonymous
        // limit is 10 a minute): the next call must not dip at once, so the cooldown.
        let retry = match (reply.retry_after, reply.status) {
            (Some(secs), _) => Some(Duration::from_secs(secs)),
            (None, 429) => Some(params::config().lrn_breaker_cooldown),
            (None, _) => None,
        };
        return Err((format!("HTTP {}", reply.status), retry));
    }
    let body: serde_json::Value =
        serde_json::from_str(&reply.body).map_err(|e| (format!("bad JSON: {e}"), None))?;
    // Only a successful lookup may say "not ported": that answer is cached for a day.
    match body.get("status") {
        None => {}
        Some(serde_json::Value::String(s)) if s == "success" => {}
        Some(other) => return Err((format!("status {other}"), None)),
    }
    // An answer about another number (a caching proxy's mix-up) would be cached a day.
    let about = match body.get("phone_number") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err((format!("phone_number {other}"), None)),
        None => None,
    };
    if let Some(about) = about {
        if Number::parse(&about).ok() != Some(number) {
            return Err((format!("an answer about {about}"), None));
        }
    }
    let lrn = match body.get("lrn") {
        Some(serde_json::Value::String(s)) if s.is_empty() => return Ok(None),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err(("a reply without an lrn".into(), None)),
    };
    let lrn = Number::parse(&lrn).map_err(|e| (format!("bad lrn {lrn:?}: {e}"), None))?;
    if !routable(lrn) {
        return Err((format!("no NANP LRN: {lrn}"), None));
    }
    Ok((lrn != number).then_some(lrn))
}

/// An LRN names a NANP switch, never a toll-free number; anything else cannot be routed
/// or cached as one, whoever says it (the dip, or whatever wrote the shared cache).
pub fn routable(lrn: Number) -> bool {
    lrn.is_nanp() && !lrn.is_toll_free()
}

/// (name, value) counters for `warp.stats`.
pub fn counts() -> Vec<(&'static str, u64)> {
    let Some(s) = SHARED.get() else {
        return Vec::new();
    };
    let open = s.open_until.load(Relaxed) > clock::now_ms();
    vec![
        ("dips", s.dips.load(Relaxed)),
        ("ported", s.ported.load(Relaxed)),
        ("not_ported", s.not_ported.load(Relaxed)),
        ("failed", s.failed.load(Relaxed)),
        ("skipped", s.skipped.load(Relaxed)),
        ("late", s.late.load(Relaxed)),
        ("cache_hits", s.cache_hits.load(Relaxed)),
        ("cache_misses", s.cache_misses.load(Relaxed)),
        ("cache_errors", s.cache_errors.load(Relaxed)),
        ("breaker_open", u64::from(open)),
    ]
}
