//! The seam to the routing engine (warp-core): the only file that knows how a decision
//! is made. Callers build a [`Query`] from the SIP message and act on the [`Answer`]
//! and the call's record.

use crate::calls;
use crate::emergency;
use crate::gateways;
use crate::limits::{self, Admission, Exceeded};
use crate::lrn;
use crate::record::{self, Attempts, LaterAttempts};
use crate::snapshot;
use crate::tm;
use std::net::IpAddr;
use std::ops::Range;
use warp_core::snapshot::TrunkView;
use warp_core::{Decision, Number, Reject, RouteRequest, Snapshot};

/// One call to route, as read from the SIP message.
pub struct Query<'a> {
    pub call_id: &'a str,
    /// The credentials the script vouched for: they identify the trunk when present.
    pub credentials: Option<Credentials<'a>>,
    /// Source address of the request: identifies the trunk (IP ACL) otherwise.
    pub source: Option<IpAddr>,
    /// Calling number (PAI → RPID → From user part), as received.
    pub ani: Option<&'a str>,
    /// Dialled number (R-URI user part or the script's argument), as received.
    pub dnis: &'a str,
}

/// Digest credentials the script checked and vouched for (`warp_authenticated()`).
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub username: &'a str,
    /// The hash `$warp(ha1)` gave them to be checked against, if it did: they stand for
    /// the username only while the snapshot still has that hash.
    pub ha1: Option<&'a str>,
}

pub enum Answer {
    /// Routed: the call's record is written up to its first attempt, its dialstring at
    /// `uri`; `later` writes the rest, if any. The admission is its place among its
    /// trunk's concurrent calls, if counted.
    Route {
        admission: Option<Admission>,
        uri: Range<usize>,
        later: Option<LaterAttempts>,
    },
    /// Refused, with the SIP reply to send (unknown trunk, DNO, no route, ...).
    Refuse {
        code: u16,
        reason: &'static str,
        why: String,
    },
    /// No decision possible (no snapshot loaded): answer with the fallback.
    Unavailable,
}

/// Decides `query`; when it is routed, writes the call's record (see
/// [`crate::record`]) up to its first attempt into `record`, which is left as it was
/// otherwise.
pub fn decide(query: &Query<'_>, record: &mut String) -> Answer {
    // A snapshot file rewritten in place under this process's mapping is noticed
    // after the lookup: its answer is dropped, and the lookup runs once more on the
    // file mapped again, if it is sound by then.
    for _ in 0..2 {
        let Some(snapshot) = snapshot::current() else {
            return Answer::Unavailable;
        };
        let written = record.len();
        let verdict = verdict(&snapshot, query, record);
        if !snapshot::intact(&snapshot) {
            record.truncate(written);
            continue;
        }
        let (trunk, decision, uri, last) = match verdict {
            Ok(routed) => routed,
            Err(refused) => {
                record.truncate(written);
                return refused.into();
            }
        };
        // A call its caller cancelled while its LRN was looked up (in an async
        // worker: tm took the CANCEL meanwhile and answered 487) goes no further.
        if tm::cancelled() {
            record.truncate(written);
            return Answer::Refuse {
                code: 487,
                reason: "Request Terminated",
                why: "cancelled by the caller while it was routed".into(),
            };
        }
        // Only calls that would be routed count against the trunk's limits.
        return match limits::admit(&trunk) {
            Ok(admission) => Answer::Route {
                admission,
                uri,
                later: Some(LaterAttempts::new(&snapshot, decision, last)),
            },
            Err(exceeded) => {
                record.truncate(written);
                over_limit(&trunk, exceeded).into()
            }
        };
    }
    Answer::Unavailable
}

/// An emergency call (the script knows it by its dialled number) from the trunk `query`
/// comes from, sent to `destinations` (see [`emergency::check`], checked by the caller)
/// in turn, those whose gateway is put last ([`gateways`]) after the others: written
/// into `record` as a call with one attempt per destination, to vendor `emergency` in
/// zone `EMERGENCY` at no rate, so that `warp_next_route()` fails it over as a vendor
/// call. Only the trunk is checked, as [`decide`] checks it (a stranger's call is
/// refused 403): no Do-Not-Originate list, no limit (nor counted in them), no LRN, no
/// route stands between a caller and help.
pub fn emergency(query: &Query<'_>, destinations: &str, record: &mut String) -> Answer {
    let Some(dialled) = emergency::dialled(query.dnis) else {
        return Answer::Refuse {
            code: 484,
            reason: "Address Incomplete",
            why: format!("{:?} is no emergency number", query.dnis),
        };
    };
    // Read again if the file was rewritten in place under the mapping, as in `decide`.
    for _ in 0..2 {
        let Some(snapshot) = snapshot::current() else {
            return Answer::Unavailable;
        };
        let written = record.len();
        let trunk = trunk(&snapshot, query.credentials, query.source);
        if let Ok(trunk) = &trunk {
            let ani = query.ani.and_then(|a| Number::parse(a).ok());
            let start = chrono::Utc::now().timestamp_millis();
            let call = (query.call_id, start);
            record::push_emergency_call(record, call, (trunk.ban, trunk.id), ani, dialled);
        }
        if !snapshot::intact(&snapshot) {
            record.truncate(written);
            continue;
        }
        return match trunk {
            Ok(_) if record.len() - written > calls::LINE_MAX => {
                record.truncate(written);
                long_call_id(query.call_id).into()
            }
            Ok(_) => {
                let uris: Vec<_> = emergency::destinations(destinations)
                    .map(|destination| emergency::uri(destination, dialled))
                    .collect();
                // Numbered in the order tried, as a vendor call's attempts.
                let last = gateways::last_of(&uris, chrono::Utc::now().timestamp_millis());
                let mut first = None;
                for (attempt, uri) in (1..).zip(emergency::in_turn(&uris, last)) {
                    let at = record::push_emergency_hop(record, attempt, uri);
                    first.get_or_insert(at);
                }
                Answer::Route {
                    admission: None,
                    uri: first.unwrap_or_default(),
                    later: None,
                }
            }
            Err(why) => Answer::Refuse {
                code: 403,
                reason: "Forbidden",
                why,
            },
        };
    }
    Answer::Unavailable
}

/// The number deciding `query` would ask the upstream LRN dip about, if it would: the
/// dip is due ([`lrn::dip_due`]), the dialled number is one the snapshot cannot give an
/// LRN for, and the call passes what is checked before a dip (its trunk, the DNO list,
/// a blocked destination, the trunk's limits by this node's counts). A hint for the
/// script, which hands such a call to an async worker: it counts nothing, and a wrong
/// guess only routes the call in the other process.
pub fn needs_dip(query: &Query<'_>) -> Option<Number> {
    let snapshot = snapshot::current()?;
    if !lrn::dip_due() {
        return None;
    }
    let number = lrn::wanted(&snapshot, query.dnis)?;
    let trunk = trunk(&snapshot, query.credentials, query.source).ok()?;
    snapshot.screen(trunk.ban, query.ani, query.dnis).ok()?;
    (!limits::full(&trunk)).then_some(number)
}

/// The trunk, the decision, the first attempt's dialstring in `record` (the call line
/// and first hop pushed) and the gateways put last, or the refusal to answer.
fn verdict<'s>(
    snapshot: &'s Snapshot,
    query: &Query<'_>,
    record: &mut String,
) -> Result<(TrunkView<'s>, Decision<'s>, Range<usize>, u64), Refusal> {
    let trunk = trunk(snapshot, query.credentials, query.source).map_err(|why| Refusal {
        code: 403,
        reason: "Forbidden",
        why,
    })?;
    let now = chrono::Utc::now();
    let decision = gated_lookup(snapshot, trunk.ban, query.ani, query.dnis, now, || {
        limits::check(&trunk).map_err(|exceeded| over_limit(&trunk, exceeded))
    })?;
    let written = record.len();
    record::push_call(
        record,
        query.call_id,
        now.timestamp_millis(),
        trunk.id,
        &decision,
    );
    if record.len() - written > calls::LINE_MAX {
        return Err(long_call_id(query.call_id));
    }
    let last = gateways::put_last(&decision, now.timestamp_millis());
    let uri = record::push_hops(record, &decision, Attempts::First, last)
        .ok_or_else(|| refuse(&Reject::NoRoute))?;
    Ok((trunk, decision, uri, last))
}

/// The enabled trunk (and so the customer) a request comes from, as its auth type
/// asks: the one `credentials` authenticate as (from an address in its ACL too, for
/// IP_AND_CREDENTIALS), else the one whose ACL holds `source` (IP_ACL only); why not,
/// in words. Credentials checked against a hash count only while `snapshot` has that
/// hash for their username: a reload since the check may have given it another owner.
pub fn trunk<'s>(
    snapshot: &'s Snapshot,
    credentials: Option<Credentials<'_>>,
    source: Option<IpAddr>,
) -> Result<TrunkView<'s>, String> {
    let username = credentials.map(|c| c.username);
    let trunk = match credentials {
        Some(Credentials {
            username: user,
            ha1,
        }) => {
            let credential = snapshot.credential(user);
            if ha1.is_some() && credential.and_then(|c| c.ha1) != ha1 {
                return Err(format!(
                    "user {user} was checked against a password hash the snapshot no longer has"
                ));
            }
            credential.map(|c| c.trunk)
        }
        None => source.and_then(|ip| snapshot.trunk_by_ip(ip)),
    };
    let Some(trunk) = trunk.filter(|t| t.enabled) else {
        let who = match (username, source) {
            (Some(user), _) => format!("user {user}"),
            (None, Some(ip)) => format!("source {ip}"),
            (None, None) => "a source of unknown address family".to_owned(),
        };
        return Err(format!("no enabled trunk for {who}"));
    };
    let auth = trunk.auth;
    if username.is_none() && auth.checks_credentials() {
        return Err(format!(
            "trunk {} needs credentials ({})",
            trunk.id,
            auth.as_str()
        ));
    }
    if username.is_some() && auth.checks_address() {
        let from = source.filter(|&ip| snapshot.acl_holds(&trunk, ip));
        if from.is_none() {
            let source = source.map_or("an unknown address".to_owned(), |ip| ip.to_string());
            return Err(format!(
                "trunk {} takes credentials only from its addresses, not {source} ({})",
                trunk.id,
                auth.as_str()
            ));
        }
    }
    Ok(trunk)
}

/// The engine's decision for a customer at `at` (also what `warp.route` simulates),
/// with the LRN of the LNP cache or the upstream dip for a number the snapshot does
/// not know.
pub fn lookup<'s>(
    snapshot: &'s Snapshot,
    ban: &str,
    ani: Option<&str>,
    dnis: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Decision<'s>, Reject> {
    gated_lookup(snapshot, ban, ani, dnis, at, || Ok(()))
}

/// [`lookup`], refused by `gate` too before an LRN is looked for outside the snapshot.
fn gated_lookup<'s, E: From<Reject>>(
    snapshot: &'s Snapshot,
    ban: &str,
    ani: Option<&str>,
    dnis: &str,
    at: chrono::DateTime<chrono::Utc>,
    gate: impl FnOnce() -> Result<(), E>,
) -> Result<Decision<'s>, E> {
    let lrn = match lrn::wanted(snapshot, dnis) {
        Some(number) => {
            // What no LRN would change is refused before paying for one: a DNO'd
            // caller's flood costs no dips (nor their time, nor the breaker).
            snapshot.screen(ban, ani, dnis)?;
            gate()?;
            lrn::supplied(number)
        }
        None => None,
    };
    Ok(snapshot.route(&RouteRequest {
        ban,
        ani,
        dnis,
        lrn,
        at,
        max_results: None,
    })?)
}

/// What [`Answer::Refuse`] carries.
struct Refusal {
    code: u16,
    reason: &'static str,
    why: String,
}

impl From<Refusal> for Answer {
    fn from(Refusal { code, reason, why }: Refusal) -> Answer {
        Answer::Refuse { code, reason, why }
    }
}

impl From<Reject> for Refusal {
    fn from(reject: Reject) -> Refusal {
        refuse(&reject)
    }
}

fn refuse(reject: &Reject) -> Refusal {
    let (code, reason) = reject.sip();
    Refusal {
        code,
        reason,
        why: reject.to_string(),
    }
}

/// A call line over [`calls::LINE_MAX`]: only a huge Call-ID makes one.
fn long_call_id(call_id: &str) -> Refusal {
    Refusal {
        code: 400,
        reason: "Bad Request",
        why: format!(
            "a Call-ID of {} bytes: longer than a tracked call can hold",
            call_id.len()
        ),
    }
}

/// `trunk` is over one of its limits.
fn over_limit(trunk: &TrunkView<'_>, exceeded: Exceeded) -> Refusal {
    Refusal {
        code: 503,
        reason: exceeded.reason(),
        why: format!("trunk {}: {}", trunk.id, exceeded.reason()),
    }
}
