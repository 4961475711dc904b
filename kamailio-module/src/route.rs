//! The seam to the routing engine (warp-core): the only file that knows how a decision
//! is made. Callers build a [`Query`] from the SIP message and act on the [`Answer`].
//!
//! The snapshot is mapped in `mod_init`, before the workers fork, so all of them share
//! one read-only mapping through the page cache.

use crate::log::{lm_err, lm_info};
use crate::params::Config;
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;
use warp_core::{Reject, RouteRequest, Snapshot};

static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();

/// One call to route, as read from the SIP message.
pub struct Query<'a> {
    /// Source address of the request: identifies the trunk (IP ACL) and customer.
    pub source: Option<IpAddr>,
    /// Calling number (PAI → RPID → From user part), as received.
    pub ani: Option<&'a str>,
    /// Dialled number (R-URI user part or the script's argument), as received.
    pub dnis: &'a str,
}

/// The best route, flattened to what the script sees.
pub struct Routed {
    pub uri: String,
    pub ban: String,
    pub trunk: String,
    pub zone: &'static str,
    pub lrn: String,
    pub vendor: String,
    pub vendor_rate: String,
    pub customer_rate: String,
    pub partition: Option<String>,
}

pub enum Answer {
    Route(Routed),
    /// Refused, with the SIP reply to send (unknown trunk, DNO, no route, ...).
    Refuse {
        code: u16,
        reason: &'static str,
        why: String,
    },
    /// No decision possible (no snapshot loaded): answer with the fallback.
    Unavailable,
}

/// Maps the snapshot in `mod_init`. A missing or corrupt snapshot is logged and leaves
/// Kamailio running, answering routing requests with the fallback reply.
pub fn init(config: &Config) -> Result<(), String> {
    match Snapshot::open_verified(Path::new(&config.snapshot)) {
        Ok(snapshot) => {
            lm_info!(
                "snapshot {} generation {} mapped",
                config.snapshot,
                snapshot.generation()
            );
            // mod_init runs once per process life: the cell is empty.
            let _ = SNAPSHOT.set(snapshot);
        }
        Err(e) => lm_err!(
            "snapshot {} refused ({e}): warp_route() answers {} {}",
            config.snapshot,
            config.fallback_code,
            config.fallback_reason
        ),
    }
    Ok(())
}

pub fn decide(query: &Query<'_>) -> Answer {
    let Some(snapshot) = SNAPSHOT.get() else {
        return Answer::Unavailable;
    };
    let Some(trunk) = query
        .source
        .and_then(|ip| snapshot.trunk_by_ip(ip))
        .filter(|t| t.enabled)
    else {
        return Answer::Refuse {
            code: 403,
            reason: "Forbidden",
            why: format!("no enabled trunk for source {:?}", query.source),
        };
    };
    let request = RouteRequest {
        ban: trunk.ban,
        ani: query.ani,
        dnis: query.dnis,
        lrn: None,
        at: chrono::Utc::now(),
        max_results: None,
    };
    let decision = match snapshot.route(&request) {
        Ok(d) => d,
        Err(reject) => return refuse(&reject),
    };
    let Some((best, uri)) = decision
        .routes
        .first()
        .and_then(|r| Some((r, r.dialstrings.first()?)))
    else {
        return refuse(&Reject::NoRoute);
    };
    Answer::Route(Routed {
        uri: uri.clone(),
        ban: decision.ban.to_owned(),
        trunk: trunk.id.to_owned(),
        zone: best.zone.as_str(),
        lrn: decision.lrn.to_string(),
        vendor: best.vendor_id.to_owned(),
        vendor_rate: best.vendor_rate.to_string(),
        customer_rate: best.customer_rate.to_string(),
        partition: best.partition.map(str::to_owned),
    })
}

fn refuse(reject: &Reject) -> Answer {
    let (code, reason) = reject.sip();
    Answer::Refuse {
        code,
        reason,
        why: reject.to_string(),
    }
}
