//! `warp_route([dnis])`: identifies the trunk (authenticated user, else source IP) and
//! asks [`crate::route`] for a decision. On success it sets the R-URI to the best
//! vendor's dialstring, keeps the rest for failover, reports the `start` CDR event and
//! exposes the decision through `$warp(...)`; on a refusal `$warp(code)`/`$warp(reason)`
//! say what to answer (the fallback when no snapshot is loaded). `warp_needs_dip([dnis])`
//! tells the script beforehand whether the call would wait on the upstream LRN dip, so
//! that it can hand it to an async worker (`warp_dip_async()`, [`crate::dip_async`]).

use crate::ani;
use crate::calls;
use crate::cdr;
use crate::decision;
use crate::emergency;
use crate::failover;
use crate::guard;
use crate::identify;
use crate::kstr;
use crate::log::lm_dbg;
use crate::lrn;
use crate::record::{self, Call, Hop};
use crate::route::{self, Answer, Query};
use crate::sipmsg::SipMsg;
use crate::stats::Func;
use kamailio_sys as k;
use std::ffi::{c_char, c_int, c_void};

/// A refusal the request earns by itself, before any decision.
struct Fault {
    code: u16,
    reason: &'static str,
    why: &'static str,
}

/// Calls `f` with the query `msg` makes: `dnis` is the script's dialled number, else the
/// R-URI's user part.
fn query<R>(msg: &SipMsg, dnis: Option<&str>, f: impl FnOnce(&Query<'_>) -> R) -> Result<R, Fault> {
    let ruri_user;
    let dnis = match dnis {
        Some(d) => d,
        // The caller's mistake, answered like any number that is none.
        None => {
            ruri_user = msg.ruri_user().ok_or(Fault {
                code: 484,
                reason: "Address Incomplete",
                why: "no dialled number: the R-URI has no user part",
            })?;
            &ruri_user
        }
    };
    let ani = ani::find(msg);
    let vouched = identify::vouched(msg);
    // A Call-ID header with nothing in it (the core parses it): the caller's mistake.
    let call_id = msg.call_id().ok_or(Fault {
        code: 400,
        reason: "Bad Request",
        why: "the request has no Call-ID",
    })?;
    Ok(f(&Query {
        call_id: &call_id,
        credentials: vouched.as_ref().map(identify::Vouched::credentials),
        source: msg.source_ip(),
        ani: ani.as_deref(),
        dnis,
    }))
}

fn warp_route(msg: &SipMsg, dnis: Option<&str>) -> Result<bool, String> {
    decide(msg, dnis, route::decide)
}

/// `warp_emergency(destinations)`: the R-URI's user part is an emergency number (the
/// script knows which); the call goes to the first of `destinations` (comma-separated,
/// the next ones its failover) if its trunk is known, whatever else `warp_route()` would
/// check (see [`route::emergency`]).
fn warp_emergency(msg: &SipMsg, destinations: &str) -> Result<bool, String> {
    // The script's mistake, not the caller's: the call cannot be sent anywhere.
    emergency::check(destinations)?;
    // The number as dialled: 911 in its phone-context (+1) is no +1911.
    let dialled = msg.ruri_user_as_dialled();
    decide(msg, dialled.as_deref(), |query, record| {
        route::emergency(query, destinations, record)
    })
}

/// `warp_needs_dip([dnis])`: whether `warp_route()` would ask the upstream LRN dip for
/// this call (see [`route::needs_dip`]); false for a request it would refuse anyway.
fn warp_needs_dip(msg: &SipMsg, dnis: Option<&str>) -> Result<bool, String> {
    // An earlier call's overflow its script never routed must not undip this one.
    lrn::forget_prefetched();
    let number = query(msg, dnis, route::needs_dip).ok().flatten();
    decision::set_dip(msg, number);
    Ok(number.is_some())
}

/// Decides `msg`'s call as `how` does (the engine's decision, or an emergency call's)
/// and acts on the answer; a request that cannot be a call is refused first.
fn decide(
    msg: &SipMsg,
    dnis: Option<&str>,
    how: impl FnOnce(&Query<'_>, &mut String) -> Answer,
) -> Result<bool, String> {
    query(msg, dnis, |query| act(msg, query, how)).unwrap_or_else(|fault| {
        decision::refuse(msg, fault.code, fault.reason, fault.why.into());
        Ok(false)
    })
}

/// Sets the R-URI, reports the `start` event and keeps the record for failover and
/// `$warp(...)` of a call `how` routed, or the refusal of one it did not.
fn act(
    msg: &SipMsg,
    query: &Query<'_>,
    how: impl FnOnce(&Query<'_>, &mut String) -> Answer,
) -> Result<bool, String> {
    let mut record = decision::take_record(msg);
    match how(query, &mut record) {
        Answer::Route {
            admission,
            uri,
            later,
        } => {
            calls::routed(msg, admission);
            msg.set_ruri(record.get(uri).ok_or("bad record")?)?;
            if cdr::enabled() {
                let (call, hop, _) = record::split(&record).ok_or("empty record")?;
                let (call, hop) = Call::parse(call).zip(Hop::parse(hop)).ok_or("bad record")?;
                cdr::emit(&cdr::Event {
                    kind: cdr::Kind::Start,
                    call: &call,
                    hop: &hop,
                    answer: None,
                    end: None,
                    sip_code: None,
                });
            }
            decision::put_record(msg, record, later, true);
            failover::keep(msg)?;
            Ok(true)
        }
        Answer::Refuse { code, reason, why } => {
            // The script decides whether a refusal deserves a log line ($warp(reason)).
            lm_dbg!("call to {} refused: {why}", query.dnis);
            // The buffer, still empty, keeps its capacity for the next call.
            decision::put_record(msg, record, None, false);
            decision::refuse(msg, code, reason, why);
            Ok(false)
        }
        Answer::Unavailable => {
            decision::put_record(msg, record, None, false);
            decision::unavailable(msg, "no routing snapshot loaded".into());
            Ok(false)
        }
    }
}

/// kamailio.cfg: `warp_route()`, routing the R-URI's user part.
pub unsafe extern "C" fn w_warp_route(
    msg: *mut k::sip_msg,
    _: *mut c_char,
    _: *mut c_char,
) -> c_int {
    guard::script(Func::Route, msg, |m| warp_route(m, None))
}

/// kamailio.cfg: `warp_route("$var(dnis)")`; the parameter is fixed up by `fixup_spve_null`.
pub unsafe extern "C" fn w_warp_route_dnis(
    msg: *mut k::sip_msg,
    dnis: *mut c_char,
    _: *mut c_char,
) -> c_int {
    // SAFETY: `dnis` is the fparam_t fixup_spve_null built for this call site.
    unsafe {
        guard::script_with_param(Func::Route, msg, dnis, "dialled-number", |m, dnis| {
            warp_route(m, Some(dnis))
        })
    }
}

/// KEMI: `KSR.warp.warp_route()`.
pub unsafe extern "C" fn ki_warp_route(msg: *mut k::sip_msg) -> c_int {
    guard::kemi(Func::Route, msg, |m| warp_route(m, None))
}

/// KEMI: `KSR.warp.warp_route_dnis(dnis)`.
pub unsafe extern "C" fn ki_warp_route_dnis(msg: *mut k::sip_msg, dnis: *mut k::str_) -> c_int {
    // SAFETY: app_lua passes a str valid during the call.
    let dnis = unsafe { dnis.as_ref().map(|d| kstr::as_str(d)) };
    guard::kemi(Func::Route, msg, |m| warp_route(m, dnis.as_deref()))
}

/// kamailio.cfg: `warp_emergency("sip:911@psap.example")`, or
/// `warp_emergency("esrp-a.example,esrp-b.example:5062")`; the parameter is fixed up by
/// `fixup_spve_null`.
pub unsafe extern "C" fn w_warp_emergency(
    msg: *mut k::sip_msg,
    destinations: *mut c_char,
    _: *mut c_char,
) -> c_int {
    // SAFETY: `destinations` is the fparam_t fixup_spve_null built for this call site.
    unsafe {
        guard::script_with_param(
            Func::Emergency,
            msg,
            destinations,
            "emergency-destinations",
            warp_emergency,
        )
    }
}

/// `warp_emergency()`'s fixup: refuses the config when its destinations, written as
/// plain text (`EMERGENCY_GATEWAY`), are no list of SIP URIs or hosts: found at start-up,
/// not by the first emergency call. An empty one is let be: kamailio.cfg names
/// `EMERGENCY_GATEWAY` even when unset (""), and refuses emergency calls before.
pub unsafe extern "C" fn fixup_emergency(param: *mut *mut c_void, param_no: c_int) -> c_int {
    let check = |list: &str| match list {
        "" => Ok(()),
        list => emergency::check(list),
    };
    // SAFETY: called by the core as a fixup.
    unsafe { guard::fixup_checked("warp_emergency", param, param_no, check) }
}

/// KEMI: `KSR.warp.warp_emergency(destinations)`.
pub unsafe extern "C" fn ki_warp_emergency(
    msg: *mut k::sip_msg,
    destinations: *mut k::str_,
) -> c_int {
    // SAFETY: app_lua passes a str valid during the call.
    let destinations = unsafe { destinations.as_ref().map(|d| kstr::as_str(d)) };
    guard::kemi(Func::Emergency, msg, |m| match destinations.as_deref() {
        Some(destinations) => warp_emergency(m, destinations),
        None => Err("no emergency destination given".into()),
    })
}

/// kamailio.cfg: `warp_needs_dip()`, for the R-URI's user part.
pub unsafe extern "C" fn w_warp_needs_dip(
    msg: *mut k::sip_msg,
    _: *mut c_char,
    _: *mut c_char,
) -> c_int {
    guard::script(Func::NeedsDip, msg, |m| warp_needs_dip(m, None))
}

/// kamailio.cfg: `warp_needs_dip("$var(dnis)")`, as `warp_route("$var(dnis)")`.
pub unsafe extern "C" fn w_warp_needs_dip_dnis(
    msg: *mut k::sip_msg,
    dnis: *mut c_char,
    _: *mut c_char,
) -> c_int {
    // SAFETY: `dnis` is the fparam_t fixup_spve_null built for this call site.
    unsafe {
        guard::script_with_param(Func::NeedsDip, msg, dnis, "dialled-number", |m, dnis| {
            warp_needs_dip(m, Some(dnis))
        })
    }
}

/// KEMI: `KSR.warp.warp_needs_dip()`.
pub unsafe extern "C" fn ki_warp_needs_dip(msg: *mut k::sip_msg) -> c_int {
    guard::kemi(Func::NeedsDip, msg, |m| warp_needs_dip(m, None))
}

/// KEMI: `KSR.warp.warp_needs_dip_dnis(dnis)`.
pub unsafe extern "C" fn ki_warp_needs_dip_dnis(msg: *mut k::sip_msg, dnis: *mut k::str_) -> c_int {
    // SAFETY: app_lua passes a str valid during the call.
    let dnis = unsafe { dnis.as_ref().map(|d| kstr::as_str(d)) };
    guard::kemi(Func::NeedsDip, msg, |m| warp_needs_dip(m, dnis.as_deref()))
}
