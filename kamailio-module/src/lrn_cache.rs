//! The LNP cache in Redis (`lrn_source` lists `cache`): what the upstream dip answered,
//! shared by every process and node, so a number is dipped once per `lrn_cache_ttl`.
//! Key `warp:lnp:<10 digits>`, value the LRN's 10 digits, or empty for "not ported".
//!
//! Lookups run in the SIP worker on a connection of its own, bounded by `lrn_timeout`.
//! After a Redis failure this process leaves the cache alone for a second instead of
//! paying a connect timeout on every call; the call goes on to the dip.

use crate::log::lm_warn;
use crate::params;
use crate::redis::{Connection, Target};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use warp_core::Number;

const PREFIX: &str = "warp:lnp:";
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// This process's connection (a child must not use its parent's socket).
struct Link {
    pid: u32,
    conn: Option<Connection>,
    paused_until: Option<Instant>,
}

static LINK: Mutex<Link> = Mutex::new(Link {
    pid: 0,
    conn: None,
    paused_until: None,
});

/// What the cache knows about a number.
pub enum Lookup {
    Ported(Number),
    NotPorted,
    Miss,
    /// Redis failed or is paused: no answer either way.
    Unavailable,
}

fn key(number: Number) -> String {
    format!("{PREFIX}{}", number.national().unwrap_or(number.value()))
}

/// Runs `op` on this process's connection; `None` when Redis is unavailable.
fn with_conn<R>(op: impl FnOnce(&mut Connection) -> Result<R, String>) -> Option<R> {
    let mut link = LINK.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if link.pid != pid {
        *link = Link {
            pid,
            conn: None,
            paused_until: None,
        };
    }
    if link.paused_until.is_some_and(|t| Instant::now() < t) {
        return None;
    }
    let config = params::config();
    let result = match link.conn.as_mut() {
        Some(c) => op(c),
        None => Target::parse(&config.redis_url)
            .and_then(|t| Connection::open(&t, config.lrn_timeout))
            .and_then(|mut c| {
                let r = op(&mut c);
                link.conn = Some(c);
                r
            }),
    };
    match result {
        Ok(r) => {
            link.paused_until = None;
            Some(r)
        }
        Err(e) => {
            if link.paused_until.is_none() {
                lm_warn!("LNP cache unavailable ({e}): going to the dip");
            }
            link.conn = None;
            link.paused_until = Some(Instant::now() + PAUSE_AFTER_FAILURE);
            None
        }
    }
}

pub fn get(number: Number) -> Lookup {
    match with_conn(|c| c.get(&key(number))) {
        None => Lookup::Unavailable,
        Some(None) => Lookup::Miss,
        Some(Some(v)) if v.is_empty() => Lookup::NotPorted,
        Some(Some(v)) => Number::parse(&v).map_or(Lookup::Miss, Lookup::Ported),
    }
}

/// Remembers what the dip said about `number`.
pub fn put(number: Number, lrn: Option<Number>) {
    let value = lrn
        .map(|l| l.national().unwrap_or(l.value()).to_string())
        .unwrap_or_default();
    let ttl = params::config().lrn_cache_ttl.as_secs();
    with_conn(|c| c.set_ex(&key(number), &value, ttl));
}
