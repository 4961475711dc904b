//! The seam to the routing engine (warp-core): the only file that knows how a decision
//! is made. Callers build a [`Query`] from the SIP message and act on the [`Answer`].
//!
//! No engine is linked yet (warp-core's snapshot API has not landed), so every query is
//! answered [`Answer::Unavailable`], which `warp_route()` turns into the fallback reply
//! code. Integrating the engine means: open the snapshot in [`init`] (pre-fork, so the
//! mapping is shared), and add `Route`/`Refuse` answers to [`decide`].

use crate::log::{lm_dbg, lm_warn};
use crate::params::Config;
use std::net::IpAddr;

/// One call to route, as read from the SIP message.
pub struct Query<'a> {
    /// Source address of the request (trunk/customer identification by IP ACL).
    pub source: Option<IpAddr>,
    /// Calling number (PAI → RPID → From user part), not yet normalised.
    pub ani: Option<&'a str>,
    /// Dialled number (R-URI user part or the script's argument), not yet normalised.
    pub dnis: &'a str,
}

pub enum Answer {
    /// No decision can be made (no engine or snapshot): answer with the fallback.
    Unavailable,
}

/// Prepares routing in `mod_init`.
pub fn init(config: &Config) -> Result<(), String> {
    lm_warn!(
        "no routing engine linked into this build: warp_route() answers {} {} (snapshot {} unused)",
        config.fallback_code,
        config.fallback_reason,
        config.snapshot
    );
    Ok(())
}

pub fn decide(query: &Query<'_>) -> Answer {
    lm_dbg!(
        "route {} -> {} from {}: no engine",
        query.ani.unwrap_or("-"),
        query.dnis,
        query.source.map_or_else(|| "-".into(), |ip| ip.to_string())
    );
    Answer::Unavailable
}
