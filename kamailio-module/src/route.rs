//! The seam to the routing engine (warp-core): the only file that knows how a decision
//! is made. Callers build a [`Query`] from the SIP message and act on the [`Answer`].

use crate::limits::{self, Admission};
use crate::lrn;
use crate::snapshot;
use std::net::IpAddr;
use warp_core::{Decision, Number, Reject, RouteRequest, Snapshot};

/// One call to route, as read from the SIP message.
pub struct Query<'a> {
    pub call_id: &'a str,
    /// Username auth authenticated: identifies the trunk when present.
    pub username: Option<&'a str>,
    /// Source address of the request: identifies the trunk (IP ACL) otherwise.
    pub source: Option<IpAddr>,
    /// Calling number (PAI → RPID → From user part), as received.
    pub ani: Option<&'a str>,
    /// Dialled number (R-URI user part or the script's argument), as received.
    pub dnis: &'a str,
}

/// One vendor to try, flattened to what the script and the failover AVPs carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub vendor: String,
    pub uri: String,
    pub zone: String,
    pub vendor_rate: String,
    pub customer_rate: String,
    pub partition: Option<String>,
}

/// What is known about a routed call whichever vendor takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub call_id: String,
    /// When it was routed, Unix milliseconds.
    pub start: i64,
    pub ban: String,
    pub trunk: String,
    /// Normalised (E.164 digits); empty when unknown.
    pub ani: String,
    pub dnis: String,
    pub lrn: String,
}

/// A routed call and the vendors to try, best first (never empty).
pub struct Routed {
    pub call: Call,
    pub hops: Vec<Hop>,
    /// The call's place in its trunk's concurrent calls, if counted.
    pub admission: Option<Admission>,
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

pub fn decide(query: &Query<'_>) -> Answer {
    let Some(snapshot) = snapshot::current() else {
        return Answer::Unavailable;
    };
    let trunk = match query.username {
        Some(user) => snapshot.trunk_by_username(user),
        None => query.source.and_then(|ip| snapshot.trunk_by_ip(ip)),
    };
    let Some(trunk) = trunk.filter(|t| t.enabled) else {
        let who = match query.username {
            Some(user) => format!("user {user}"),
            None => format!("source {:?}", query.source),
        };
        return Answer::Refuse {
            code: 403,
            reason: "Forbidden",
            why: format!("no enabled trunk for {who}"),
        };
    };
    let now = chrono::Utc::now();
    let lrn = lrn::supplied(&snapshot, query.dnis);
    let decision = match lookup(&snapshot, trunk.ban, query.ani, query.dnis, lrn, now) {
        Ok(d) => d,
        Err(reject) => return refuse(&reject),
    };
    let hops = hops(&decision);
    if hops.is_empty() {
        return refuse(&Reject::NoRoute);
    }
    // Only calls that would be routed count against the trunk's limits.
    let admission = match limits::admit(&trunk) {
        Ok(a) => a,
        Err(exceeded) => {
            return Answer::Refuse {
                code: 503,
                reason: exceeded.reason(),
                why: format!("trunk {}: {}", trunk.id, exceeded.reason()),
            }
        }
    };
    Answer::Route(Routed {
        call: Call {
            call_id: query.call_id.to_owned(),
            start: now.timestamp_millis(),
            ban: decision.ban.to_owned(),
            trunk: trunk.id.to_owned(),
            ani: decision.ani.map(|a| a.to_string()).unwrap_or_default(),
            dnis: decision.dnis.to_string(),
            lrn: decision.lrn.to_string(),
        },
        hops,
        admission,
    })
}

/// The engine's decision for a customer at `at` (also what `warp.route` simulates);
/// `lrn` is what the upstream dip said, for numbers the snapshot does not know.
pub fn lookup<'s>(
    snapshot: &'s Snapshot,
    ban: &str,
    ani: Option<&str>,
    dnis: &str,
    lrn: Option<Number>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Decision<'s>, Reject> {
    snapshot.route(&RouteRequest {
        ban,
        ani,
        dnis,
        lrn,
        at,
        max_results: None,
    })
}

/// Every (route, dialstring) pair in order: a vendor with several gateways is tried on
/// each before the next vendor.
pub fn hops(decision: &Decision<'_>) -> Vec<Hop> {
    let mut hops = Vec::with_capacity(decision.routes.iter().map(|r| r.dialstrings.len()).sum());
    for r in &decision.routes {
        // Formatted once per vendor, not per gateway.
        let vendor_rate = r.vendor_rate.to_string();
        let customer_rate = r.customer_rate.to_string();
        hops.extend(r.dialstrings.iter().map(|uri| Hop {
            vendor: r.vendor_id.to_owned(),
            uri: uri.clone(),
            zone: r.zone.as_str().to_owned(),
            vendor_rate: vendor_rate.clone(),
            customer_rate: customer_rate.clone(),
            partition: r.partition.map(str::to_owned),
        }));
    }
    hops
}

fn refuse(reject: &Reject) -> Answer {
    let (code, reason) = reject.sip();
    Answer::Refuse {
        code,
        reason,
        why: reject.to_string(),
    }
}
