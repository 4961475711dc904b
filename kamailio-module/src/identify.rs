//! `warp_identify()`: the trunk, and so the customer, a request comes from — the
//! authenticated user's, else the source address's, as `warp_route()` finds it — for a
//! script that acts on the customer before routing (which auth to ask for, its own
//! policy). Sets `$warp(trunk)` and `$warp(ban)`; refused, `$warp(code)` says 403.

use crate::decision;
use crate::guard;
use crate::route;
use crate::sipmsg::SipMsg;
use crate::snapshot;
use crate::stats::Func;
use kamailio_sys as k;
use std::ffi::{c_char, c_int};

fn warp_identify(msg: &SipMsg) -> Result<bool, String> {
    let Some(snapshot) = snapshot::current() else {
        decision::unavailable(msg, "no routing snapshot loaded".into());
        return Ok(false);
    };
    let username = msg.authenticated_user();
    match route::trunk(&snapshot, username.as_deref(), msg.source_ip()) {
        Ok(trunk) => {
            decision::set_trunk(msg, trunk.id, trunk.ban);
            Ok(true)
        }
        Err(why) => {
            decision::refuse(msg, 403, "Forbidden", why);
            Ok(false)
        }
    }
}

/// kamailio.cfg: `warp_identify()`.
pub unsafe extern "C" fn w_warp_identify(
    msg: *mut k::sip_msg,
    _: *mut c_char,
    _: *mut c_char,
) -> c_int {
    guard::script(Func::Identify, msg, warp_identify)
}

/// KEMI: `KSR.warp.warp_identify()`.
pub unsafe extern "C" fn ki_warp_identify(msg: *mut k::sip_msg) -> c_int {
    guard::kemi(Func::Identify, msg, warp_identify)
}
