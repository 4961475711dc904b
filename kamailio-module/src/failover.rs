//! Serial failover: `warp_route()` keeps the call, the vendor being tried and the ones
//! after it in an AVP, which travels with the transaction; `warp_next_route()`, called from a
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

/// One AVP per call, one line per record: the call, the attempt in progress, then the
/// attempts still to make. One allocation per call: Kamailio's allocator is what a
/// per-hop AVP would cost.
const AVP: &str = "warp";

/// Fields are tab-separated, records newline-separated: none of the fields (ids,
/// digits, URIs, decimals) holds either.
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

/// Keeps `call` with its first hop as the attempt in progress and every later hop
/// (attempts 2, 3, ...) for failover, replacing what an earlier `warp_route()` on this
/// message stored.
pub fn store(call: &Call, hops: &[Hop]) -> Result<(), String> {
    let mut record = encode_call(call);
    for (i, hop) in hops.iter().enumerate() {
        record.push('\n');
        record.push_str(&encode_hop(i as u32 + 1, hop));
    }
    avp::clear(AVP);
    avp::push(AVP, &record)
}

/// The call `warp_route()` stored for this transaction.
pub fn call() -> Option<Call> {
    avp::get(AVP).and_then(|r| decode_call(r.lines().next()?))
}

/// The attempt in progress for this transaction, and its vendor.
pub fn current() -> Option<(u32, Hop)> {
    avp::get(AVP).and_then(|r| decode_hop(r.lines().nth(1)?))
}

fn warp_next_route(msg: &SipMsg) -> Result<bool, String> {
    let Some(record) = avp::get(AVP) else {
        return Ok(false);
    };
    let lines: Vec<&str> = record.lines().collect();
    // Nothing left: the dialog's failure reports this last attempt.
    let [call_text, failed_text, next_text, rest @ ..] = &lines[..] else {
        return Ok(false);
    };
    let bad = || format!("bad {AVP} AVP {record:?}");
    let call = decode_call(call_text).ok_or_else(bad)?;
    let (failed, failed_hop) = decode_hop(failed_text).ok_or_else(bad)?;
    let (attempt, hop) = decode_hop(next_text).ok_or_else(bad)?;
    let sip_code = msg
        .pv_int("$T_reply_code")
        .and_then(|c| u16::try_from(c).ok());
    cdr::emit(&cdr::Event {
        kind: cdr::Kind::Failed,
        call: &call,
        attempt: failed,
        hop: &failed_hop,
        answer: None,
        end: Some(cdr::now_ms()),
        sip_code,
    });
    msg.set_ruri(&hop.uri)?;
    avp::clear(AVP);
    let remaining: Vec<&str> = [*call_text, *next_text]
        .into_iter()
        .chain(rest.iter().copied())
        .collect();
    avp::push(AVP, &remaining.join("\n"))?;
    decision::expose_call(msg, &call);
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
