//! The LNP cache in Redis (`lrn_source` lists `cache`): what the upstream dip answered,
//! shared by every process and node, so a number is dipped once per `lrn_cache_ttl`.
//! Key `warp:lnp:<10 digits>`, value the LRN's 10 digits, or empty for "not ported".
//!
//! Lookups run in the SIP worker, bounded by `lrn_timeout`; when Redis is unavailable
//! the call goes on to the dip.

use crate::params;
use crate::redis::Connection;
use crate::redis_link::Link;
use warp_core::Number;

const PREFIX: &str = "warp:lnp:";

static LINK: Link = Link::new("LNP cache");

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

fn with_conn<R>(op: impl FnOnce(&mut Connection) -> Result<R, String>) -> Option<R> {
    LINK.with(params::config().lrn_timeout, op)
}

pub fn get(number: Number) -> Lookup {
    match with_conn(|c| c.get(&key(number))) {
        None => Lookup::Unavailable,
        Some(None) => Lookup::Miss,
        Some(Some(v)) if v.is_empty() => Lookup::NotPorted,
        // What a dip would not have answered is no answer: the number is dipped again.
        Some(Some(v)) => match Number::parse(&v) {
            Ok(lrn) if crate::lrn::routable(lrn) => Lookup::Ported(lrn),
            _ => Lookup::Miss,
        },
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
