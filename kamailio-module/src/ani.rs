//! `warp_ani()`: finds the calling number (P-Asserted-Identity, else Remote-Party-ID,
//! else From) and exposes it as `$warp(ani)`, its header as `$warp(ani_source)`.

use crate::decision;
use crate::guard;
use crate::sipmsg::SipMsg;
use crate::stats::Func;
use kamailio_sys as k;
use std::borrow::Cow;
use std::ffi::{c_char, c_int};
use warp_core::Number;

/// Finds the ANI and exposes it in `$warp(...)`; shared with `warp_route()`.
pub fn find(msg: &SipMsg) -> Option<Cow<'_, str>> {
    let (source, ani) = msg.ani()?;
    decision::set_ani(msg, source, &ani);
    Some(ani)
}

/// The calling number as [`find`] finds it, read as warp reads a number
/// (`$warp(ani_e164)`); `None` without one, or when it is no telephone number.
pub fn find_number(msg: &SipMsg) -> Option<Number> {
    Number::parse(&find(msg)?).ok()
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
    guard::kemi(Func::Ani, msg, warp_ani)
}
