//! `warp_ani()`: finds the calling number (P-Asserted-Identity, else Remote-Party-ID,
//! else From) and exposes it as `$warp(ani)`, its header as `$warp(ani_source)`.

use crate::decision::{self, Field, Value};
use crate::guard;
use crate::sipmsg::SipMsg;
use crate::stats::Func;
use kamailio_sys as k;
use std::ffi::{c_char, c_int};

fn warp_ani(msg: &SipMsg) -> Result<bool, String> {
    let Some((source, ani)) = msg.ani() else {
        return Ok(false);
    };
    decision::set(msg, Field::Ani, Value::Str(ani));
    decision::set(msg, Field::AniSource, Value::Str(source.name().into()));
    Ok(true)
}

/// kamailio.cfg: `warp_ani()`.
pub unsafe extern "C" fn w_warp_ani(msg: *mut k::sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    guard::script(Func::Ani, msg, warp_ani)
}

/// KEMI: `KSR.warp.warp_ani()`.
pub unsafe extern "C" fn ki_warp_ani(msg: *mut k::sip_msg) -> c_int {
    guard::script(Func::Ani, msg, warp_ani)
}
