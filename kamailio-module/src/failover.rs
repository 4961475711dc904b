//! Serial failover: `warp_route()` keeps the call and the vendors after the first in
//! AVPs, which travel with the transaction; `warp_next_route()`, called from a
//! `failure_route` (in whichever process sees the 5xx, 408 or timeout), points the
//! request at the next one, after reporting the failed attempt (a `failed` CDR event
//! with `$T_reply_code`). The last attempt's failure is reported when the dialog fails
//! (see [`crate::calls`]). Which replies fail over is the script's choice, as with
//! lcr's `next_gw()`: `t_check_status("5[0-9][0-9]|408") || t_branch_timeout()`.

use crate::avp;
use crate::cdr;
use crate::decision;
use crate::guard;
use crate::route::{Call, Hop};
use crate::sipmsg::SipMsg;
use crate::stats::Func;
use kamailio_sys as k;
use std::ffi::{c_char, c_int};

/// One AVP per vendor still to try, the next one added last (found first).
const HOPS: &str = "warp_hops";
/// The vendor being tried.
const CURRENT: &str = "warp_hop";
/// The call's customer side, one AVP.
const CALL: &str = "warp_call";

/// Fields are tab-separated: none of them (ids, digits, URIs, decimals) holds a tab.
fn join(fields: &[&str]) -> String {
    fields.join("\t")
}

pub fn encode_hop(attempt: u32, h: &Hop) -> String {
    let partition = h.partition.as_deref().unwrap_or("");
    let attempt = attempt.to_string();
    join(&[
        &attempt,
        &h.vendor,
        &h.uri,
        &h.zone,
        &h.vendor_rate,
        &h.customer_rate,
        partition,
    ])
}

pub fn decode_hop(text: &str) -> Option<(u32, Hop)> {
    let f: Vec<&str> = text.split('\t').collect();
    let [attempt, vendor, uri, zone, vendor_rate, customer_rate, partition] = f[..] else {
        return None;
    };
    let hop = Hop {
        vendor: vendor.into(),
        uri: uri.into(),
        zone: zone.into(),
        vendor_rate: vendor_rate.into(),
        customer_rate: customer_rate.into(),
        partition: Some(partition.to_owned()).filter(|p| !p.is_empty()),
    };
    Some((attempt.parse().ok()?, hop))
}

pub fn encode_call(c: &Call) -> String {
    let start = c.start.to_string();
    join(&[
        &c.call_id, &start, &c.ban, &c.trunk, &c.ani, &c.dnis, &c.lrn,
    ])
}

pub fn decode_call(text: &str) -> Option<Call> {
    let f: Vec<&str> = text.split('\t').collect();
    let [call_id, start, ban, trunk, ani, dnis, lrn] = f[..] else {
        return None;
    };
    Some(Call {
        call_id: call_id.into(),
        start: start.parse().ok()?,
        ban: ban.into(),
        trunk: trunk.into(),
        ani: ani.into(),
        dnis: dnis.into(),
        lrn: lrn.into(),
    })
}

/// Keeps `call`, the first hop as the current attempt and every later hop (attempts
/// 2, 3, ...) for failover, replacing what an earlier `warp_route()` on this message
/// stored.
pub fn store(call: &Call, hops: &[Hop]) -> Result<(), String> {
    for name in [HOPS, CURRENT, CALL] {
        avp::clear(name);
    }
    for (i, hop) in hops.iter().enumerate().skip(1).rev() {
        avp::push(HOPS, &encode_hop(i as u32 + 1, hop))?;
    }
    avp::push(CURRENT, &encode_hop(1, &hops[0]))?;
    avp::push(CALL, &encode_call(call))
}

/// The call `warp_route()` stored for this transaction.
pub fn call() -> Option<Call> {
    avp::get(CALL).and_then(|c| decode_call(&c))
}

/// The attempt in progress for this transaction, and its vendor.
pub fn current() -> Option<(u32, Hop)> {
    avp::get(CURRENT).and_then(|h| decode_hop(&h))
}

fn warp_next_route(msg: &SipMsg) -> Result<bool, String> {
    // Nothing left: the dialog's failure reports this last attempt.
    let Some(text) = avp::pop(HOPS) else {
        return Ok(false);
    };
    let call = call();
    if let (Some(call), Some((attempt, hop))) = (&call, current()) {
        let sip_code = msg
            .pv_int("$T_reply_code")
            .and_then(|c| u16::try_from(c).ok());
        cdr::emit(&cdr::Event {
            kind: cdr::Kind::Failed,
            call,
            attempt,
            hop: &hop,
            answer: None,
            end: Some(cdr::now_ms()),
            sip_code,
        });
    }
    let (attempt, hop) = decode_hop(&text).ok_or_else(|| format!("bad {HOPS} AVP {text:?}"))?;
    msg.set_ruri(&hop.uri)?;
    avp::clear(CURRENT);
    avp::push(CURRENT, &text)?;
    if let Some(call) = &call {
        decision::expose_call(msg, call);
    }
    decision::expose_hop(msg, attempt, &hop);
    Ok(true)
}

/// kamailio.cfg: `warp_next_route()`: 1 when the R-URI now points at the next vendor,
/// -1 when none is left.
pub unsafe extern "C" fn w_warp_next_route(
    msg: *mut k::sip_msg,
    _: *mut c_char,
    _: *mut c_char,
) -> c_int {
    guard::script(Func::NextRoute, msg, warp_next_route)
}

/// KEMI: `KSR.warp.warp_next_route()`.
pub unsafe extern "C" fn ki_warp_next_route(msg: *mut k::sip_msg) -> c_int {
    guard::script(Func::NextRoute, msg, warp_next_route)
}
