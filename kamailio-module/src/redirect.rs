//! `warp_redirect()`, for a redirect server: after `warp_route()` routed the request,
//! every attempt becomes a Contact of the 3xx the script then sends
//! (`sl_send_reply("300", "Multiple Choices")`): the R-URI, the first attempt, at q=1,
//! and each later attempt as a branch with a lower q, in failover order, so the client
//! (an SBC) fails over by itself. Not for a proxy, which would fork the branches in
//! parallel: there `warp_next_route()` fails over.

use crate::decision;
use crate::guard;
use crate::kstr;
use crate::log::lm_warn;
use crate::record::{self, Call, Hop};
use crate::sipmsg::SipMsg;
use crate::stats::Func;
use kamailio_sys as k;
use std::ffi::{c_char, c_int};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use warp_core::snapshot::fill_dialstring;

/// A redirect listed fewer attempts than it had and said so: once per process.
static CUT_SHORT_LOGGED: AtomicBool = AtomicBool::new(false);

/// The later attempts' URIs of `msg`'s routed call, in order; `None` if not routed.
fn later_uris(msg: &SipMsg) -> Result<Option<Vec<String>>, String> {
    decision::with_record(msg, |record| {
        let bad = || format!("bad call record {record:?}");
        let (call, _, later) = record::split(record).ok_or_else(bad)?;
        let call = Call::parse(call).ok_or_else(bad)?;
        let dialled = call.dialled().ok_or_else(bad)?;
        later
            .lines()
            .map(|line| {
                let hop = Hop::parse(line).ok_or_else(bad)?;
                let mut uri = String::new();
                fill_dialstring(&mut uri, hop.uri, dialled);
                Ok(uri)
            })
            .collect()
    })
    .transpose()
}

fn warp_redirect(msg: &SipMsg) -> Result<bool, String> {
    let Some(mut uris) = later_uris(msg)? else {
        return Ok(false);
    };
    if !decision::first_redirect(msg) {
        return Ok(true);
    }
    // The core keeps max_branches - 1 branches beside the R-URI: past them every
    // append fails, and the function with it. The 3xx lists the attempts that fit.
    // SAFETY: plain reads of this process's branch count and the core's limit.
    let room = unsafe { k::sr_dst_max_branches.saturating_sub(1 + k::nr_branches) } as usize;
    if uris.len() > room {
        if !CUT_SHORT_LOGGED.swap(true, Relaxed) {
            lm_warn!(
                "warp_redirect: max_branches leaves room for {room} of {} later attempts; \
                 the 3xx lists the first (logged once per process)",
                uris.len()
            );
        }
        uris.truncate(room);
    }
    // q from 1 (the R-URI) down to 1/n for the last of n attempts.
    let n = uris.len() as i32 + 1;
    // SAFETY: sets the q of the R-URI of the message being processed.
    unsafe { k::set_ruri_q(1000) };
    for (i, uri) in uris.iter().enumerate() {
        let q = 1000 * (n - 1 - i as i32) / n;
        let mut uri_str = kstr::from_bytes(uri.as_bytes());
        // SAFETY: the core copies the URI into the branch; the other parts are absent.
        let added = unsafe {
            k::append_branch(
                msg.raw(),
                &mut uri_str,
                null_mut(),
                null_mut(),
                q,
                0,
                null_mut(),
                null_mut(),
                0,
                null_mut(),
                null_mut(),
            )
        };
        if added < 0 {
            return Err(format!("cannot add branch {uri}"));
        }
    }
    Ok(true)
}

/// kamailio.cfg: `warp_redirect()`.
pub unsafe extern "C" fn w_warp_redirect(
    msg: *mut k::sip_msg,
    _: *mut c_char,
    _: *mut c_char,
) -> c_int {
    guard::script(Func::Redirect, msg, warp_redirect)
}

/// KEMI: `KSR.warp.warp_redirect()`.
pub unsafe extern "C" fn ki_warp_redirect(msg: *mut k::sip_msg) -> c_int {
    guard::kemi(Func::Redirect, msg, warp_redirect)
}
