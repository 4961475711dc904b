//! `warp_dno([number])`: whether the calling number — P-Asserted-Identity, else
//! Remote-Party-ID, else From, as `warp_ani()` finds it — or `number` is on the
//! Do-Not-Originate list. True when it is, with `$warp(code)`/`$warp(reason)` set to
//! what `warp_route()` answers such a call (603 Decline). A number that does not parse
//! is on no list, as in `warp_route()`.

use crate::ani;
use crate::decision;
use crate::guard;
use crate::kstr;
use crate::sipmsg::SipMsg;
use crate::snapshot;
use crate::stats::Func;
use kamailio_sys as k;
use std::ffi::{c_char, c_int};
use warp_core::{Number, Reject};

fn warp_dno(msg: &SipMsg, number: Option<&str>) -> Result<bool, String> {
    let snapshot = snapshot::current().ok_or("no routing snapshot loaded: DNO not checked")?;
    let found;
    let number = match number {
        Some(n) => n,
        None => {
            found = ani::find(msg);
            match found.as_deref() {
                Some(n) => n,
                None => return Ok(false),
            }
        }
    };
    let listed = Number::parse(number).ok().filter(|n| snapshot.is_dno(*n));
    if !snapshot::intact(&snapshot) {
        return Err("snapshot file rewritten in place: DNO not checked".into());
    }
    let Some(number) = listed else {
        return Ok(false);
    };
    let (code, reason) = Reject::DnoAni.sip();
    decision::refuse(msg, code, reason, format!("{number} is on the DNO list"));
    Ok(true)
}

/// kamailio.cfg: `warp_dno()`, the calling number.
pub unsafe extern "C" fn w_warp_dno(msg: *mut k::sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    guard::script(Func::Dno, msg, |m| warp_dno(m, None))
}

/// kamailio.cfg: `warp_dno("$var(number)")`; the parameter is fixed up by
/// `fixup_spve_null`.
pub unsafe extern "C" fn w_warp_dno_number(
    msg: *mut k::sip_msg,
    number: *mut c_char,
    _: *mut c_char,
) -> c_int {
    // SAFETY: `number` is the fparam_t fixup_spve_null built for this call site.
    unsafe {
        guard::script_with_param(Func::Dno, msg, number, "number", |m, number| {
            warp_dno(m, Some(number))
        })
    }
}

/// KEMI: `KSR.warp.warp_dno()`.
pub unsafe extern "C" fn ki_warp_dno(msg: *mut k::sip_msg) -> c_int {
    guard::kemi(Func::Dno, msg, |m| warp_dno(m, None))
}

/// KEMI: `KSR.warp.warp_dno_number(number)`.
pub unsafe extern "C" fn ki_warp_dno_number(msg: *mut k::sip_msg, number: *mut k::str_) -> c_int {
    // SAFETY: app_lua passes a str valid during the call.
    let number = unsafe { number.as_ref().map(|n| kstr::as_str(n)) };
    guard::kemi(Func::Dno, msg, |m| warp_dno(m, number.as_deref()))
}
