//! `warp_ani()`: finds the calling number (P-Asserted-Identity, else Remote-Party-ID,
//! else From) and exposes it as `$warp(ani)`, its header as `$warp(ani_source)`.

use crate::decision::{self, Field, Value};
use crate::guard;
use crate::sipmsg::SipMsg;
use crate::stats::Func;
use kamailio_sys as k;
use std::ffi::{c_char, c_int};

/// Finds the ANI and exposes it in `$warp(...)`; shared with `warp_route()`.
pub fn find(msg: &SipMsg) -> Option<String> {
    let (source, ani) = msg.ani()?;
    decision::set(msg, Field::Ani, Value::Str(ani.clone()));
    decision::set(msg, Field::AniSource, Value::Str(source.name().into()));
    Some(ani)
}

fn warp_ani(msg: &SipMsg) -> Result<bool, String> {
    Ok(find(msg).is_some())
}

/// kamailio.cfg: `warp_ani()`.
pub unsafe extern "C" fn w_warp_ani(msg: *mut k::sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    guard::script(Func::Ani, msg, warp_ani)
}

/// KEMI: `KSR.warp.warp_ani()`.
pub unsafe extern "C" fn ki_warp_ani(msg: *mut k::sip_msg) -> c_int {
    guard::script(Func::Ani, msg, warp_ani)
}
