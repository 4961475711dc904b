//! Serial failover: `warp_route()` keeps the call, the vendor being tried and the ones
//! after it in an AVP, which travels with the transaction. The AVP is written when the
//! record first needs to leave this process: when tm creates the request's transaction
//! (or at once if it has one), or when `warp_next_route()` or the dialog asks for it. A
//! call answered statelessly (a redirect server) never pays for it: it costs a shared
//! memory allocation and a copy. `warp_next_route()`, called from a `failure_route`
//! (in whichever process sees the 5xx, 408 or timeout), points the request at the next
//! one, after reporting the failed attempt (a `failed` CDR event with `$T_reply_code`);
//! never once the caller cancelled. The last attempt's failure is reported when the
//! dialog fails (see [`crate::calls`]), unless the caller cancelled before it was sent
//! ([`crate::tm::Final::NeverSent`]). Which replies fail over is the script's choice,
//! as with lcr's `next_gw()`: `t_check_status("5[0-9][0-9]|408") || t_branch_timeout()`, and
//! `t_relay()` failing: an attempt tm made no branch for (no socket for its transport,
//! a name that does not resolve) or could not send on (a TCP connection refused) is
//! reported failed with [`UNSENT`].

use crate::avp;
use crate::cdr;
use crate::clock;
use crate::decision;
use crate::gateways;
use crate::guard;
use crate::log::lm_info;
use crate::record::{self, Call, Hop};
use crate::sipmsg::SipMsg;
use crate::stats::Func;
use crate::tm;
use kamailio_sys as k;
use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// One AVP per call holding its record (see [`crate::record`]): one allocation per
/// call, as Kamailio's allocator is what a per-hop AVP would cost.
const AVP: &str = "warp";
/// The transaction's branch count when the attempt in progress began, written by
/// `warp_next_route()`, and by `warp_route()` for a call whose transaction had
/// branches already (tm's blind one, a call resumed after `warp_dip_async()`): unset,
/// the first attempt began with none.
const BRANCHES_BEFORE: &str = "warp_branches";
/// The code an attempt that could not be sent fails with: Kamailio's for a request it
/// could not send on.
pub const UNSENT: u16 = 477;

/// Whether `$T_reply_code` can be read: tmx, which provides it, is loaded. Decided in
/// `mod_init` (before the fork): without tmx the core's lookup of the variable fails
/// with two error lines, which at every failover would flood the log.
static REPLY_CODE: AtomicBool = AtomicBool::new(false);

/// Notes whether tmx is loaded; `mod_init` only.
pub fn init() {
    // SAFETY: reads the core's list of loaded modules.
    let tmx = !unsafe { k::find_module_by_name(c"tmx".as_ptr() as *mut _) }.is_null();
    REPLY_CODE.store(tmx, Relaxed);
    if !tmx {
        lm_info!("tmx not loaded: the failed event of an attempt failed over has no sip_code");
    }
}

/// The transaction's branch count when the attempt in progress began: its branches
/// are the ones tm made since (see [`tm::attempt_sent`]).
pub fn branches_before() -> u32 {
    avp::get(BRANCHES_BEFORE)
        .and_then(|b| b.parse().ok())
        .unwrap_or(0)
}

/// Tells [`gateways`] how the attempt in progress to `hop`'s gateway went, once it
/// failed: unanswered (sent, and not a byte back before tm gave up) or heard.
fn judge_gateway(hop: &Hop<'_>, sent: Option<bool>) {
    if sent != Some(true) {
        return;
    }
    match tm::current_attempt_replied() {
        Some(false) => gateways::silent(hop.uri),
        Some(true) => gateways::heard(hop.uri),
        None => {}
    }
}

/// Keeps `record` for failover, replacing what an earlier `warp_route()` on this
/// message stored.
pub fn store(record: &str) -> Result<(), String> {
    avp::clear(AVP);
    avp::push(AVP, record)
}

/// `msg`'s record, just routed and left with the decision: into the AVP now if `msg`
/// already has a transaction; otherwise it waits for [`flush`].
pub fn keep(msg: &SipMsg) -> Result<(), String> {
    let Some(branches) = tm::branches() else {
        return Ok(());
    };
    flush(msg)?;
    // A suspended call's transaction has tm's blind branch: not the first attempt's.
    if branches > 0 {
        note_branches_before(branches)?;
    }
    Ok(())
}

/// The attempt about to begin does so with the transaction's `branches`.
fn note_branches_before(branches: u32) -> Result<(), String> {
    avp::clear(BRANCHES_BEFORE);
    avp::push(BRANCHES_BEFORE, &branches.to_string())
}

/// Writes `msg`'s record, completed, into the AVP list current now if it still waits.
pub fn flush(msg: &SipMsg) -> Result<(), String> {
    decision::take_unstored(msg, store).unwrap_or(Ok(()))
}

/// The record `warp_route()` kept for `msg`.
pub fn record(msg: &SipMsg) -> Result<Option<String>, String> {
    flush(msg)?;
    Ok(stored())
}

/// The record in the AVP list current now (a transaction's, while tm runs its callbacks).
pub fn stored() -> Option<String> {
    avp::get(AVP)
}

fn warp_next_route(msg: &SipMsg) -> Result<bool, String> {
    // A cancelled call goes no further, whatever the script checked: the dialog's
    // failure reports the attempt in progress, or nothing if it was never sent.
    if tm::cancelled() {
        return Ok(false);
    }
    let Some(stored) = record(msg)? else {
        return Ok(false);
    };
    let Some((call_line, failed_line, later)) = record::split(&stored) else {
        return Ok(false);
    };
    let bad = || format!("bad {AVP} AVP {stored:?}");
    let failed = Hop::parse(failed_line).ok_or_else(bad)?;
    let sent = tm::current_attempt_sent();
    judge_gateway(&failed, sent);
    // Nothing left: the dialog's failure reports this last attempt.
    if later.is_empty() {
        return Ok(false);
    }
    let call = Call::parse(call_line).ok_or_else(bad)?;
    let sip_code = if sent == Some(false) {
        Some(UNSENT)
    } else if REPLY_CODE.load(Relaxed) {
        msg.pv_int("$T_reply_code")
            .and_then(|c| u16::try_from(c).ok())
    } else {
        None
    };
    cdr::emit(&cdr::Event {
        kind: cdr::Kind::Failed,
        call: &call,
        hop: &failed,
        answer: None,
        end: Some(clock::now_ms()),
        sip_code,
    });
    let mut remaining = decision::take_record(msg);
    remaining.push_str(call_line);
    let uri = record::push_later(&mut remaining, call.dialled(), later).ok_or_else(bad)?;
    msg.set_ruri(&remaining[uri])?;
    store(&remaining)?;
    if let Some((call, hop, _)) = record::split(&remaining) {
        crate::calls::failed_over(msg, call, hop);
    }
    if let Some(n) = tm::branches() {
        note_branches_before(n)?;
    }
    decision::put_record(msg, remaining, None, false);
    Ok(true)
}

/// kamailio.cfg: `warp_next_route()`: 1 when the R-URI now points at the next vendor,
/// -1 when none is left or the caller cancelled.
pub unsafe extern "C" fn w_warp_next_route(
    msg: *mut k::sip_msg,
    _: *mut c_char,
    _: *mut c_char,
) -> c_int {
    guard::script(Func::NextRoute, msg, warp_next_route)
}

/// KEMI: `KSR.warp.warp_next_route()`.
pub unsafe extern "C" fn ki_warp_next_route(msg: *mut k::sip_msg) -> c_int {
    guard::kemi(Func::NextRoute, msg, warp_next_route)
}
