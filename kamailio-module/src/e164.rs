//! `warp_e164(number, "$var(out)")`: a number in any form warp reads a dialled number in
//! (`+44 20 7946 0000`, `tel:2125550123;phone-context=+1`, `sip:3035550100@pbx`, ...),
//! normalised by warp-core as `warp_route()` normalises it, written to a pseudo-variable
//! in E.164 digits (no `+`, as `$warp(dnis_e164)` writes them). A script compares or
//! signs numbers from headers warp does not read (Diversion, History-Info) this way,
//! with no regex copy of the normalisation to fall behind it.

use crate::guard;
use crate::kstr;
use crate::log::lm_err;
use crate::sipmsg::SipMsg;
use crate::stats::Func;
use kamailio_sys as k;
use std::ffi::{c_char, c_int, c_void};
use warp_core::Number;

/// Writes `number` in E.164 digits to `out`: true; false when it is no telephone number
/// (`out` left as it was).
fn warp_e164(msg: &SipMsg, number: &str, out: *mut k::pv_spec_t) -> Result<bool, String> {
    let Ok(number) = Number::parse(number) else {
        return Ok(false);
    };
    let mut digits = String::with_capacity(15);
    number.push_to(&mut digits);
    let mut value = k::pv_value_t {
        rs: kstr::from_bytes(digits.as_bytes()),
        flags: k::PV_VAL_STR as c_int,
        ..Default::default()
    };
    // SAFETY: `out` is a writable spec (the fixup's check, or the KEMI lookup's); the
    // core copies the value before this returns.
    if unsafe { k::pv_set_spec_value(msg.raw(), out, 0, &mut value) } < 0 {
        return Err("cannot write the output pseudo-variable".into());
    }
    Ok(true)
}

/// `warp_e164()`'s fixup: the number a string with pseudo-variables, the output a
/// pseudo-variable the script can write (else the config is refused at start-up, not
/// at the first call).
pub unsafe extern "C" fn fixup_e164(param: *mut *mut c_void, param_no: c_int) -> c_int {
    guard::entry("warp_e164() fixup", -1, || {
        // SAFETY: called as the core would.
        let fixed = unsafe { k::fixup_spve_pvar(param, param_no) };
        if fixed != 0 || param_no != 2 {
            return fixed;
        }
        // SAFETY: fixup_pvar_null left a pvs_fixup_t, whose first member is the spec.
        let spec = unsafe {
            param
                .as_ref()
                .and_then(|p| p.cast::<k::pv_spec_t>().as_ref())
        };
        if spec.is_none_or(|spec| spec.setf.is_none()) {
            lm_err!("warp_e164(): the second parameter must be a pseudo-variable it can write");
            // SAFETY: frees what fixup_spve_pvar built.
            unsafe { k::fixup_free_spve_pvar(param, param_no) };
            return -1;
        }
        0
    })
}

/// kamailio.cfg: `warp_e164("$var(number)", "$var(out)")`, fixed up by [`fixup_e164`].
pub unsafe extern "C" fn w_warp_e164(
    msg: *mut k::sip_msg,
    number: *mut c_char,
    out: *mut c_char,
) -> c_int {
    let out = out.cast::<k::pv_spec_t>();
    // SAFETY: `number` is the fparam_t fixup_spve_null built for this call site.
    unsafe {
        guard::script_with_param(Func::E164, msg, number, "number", |m, number| {
            warp_e164(m, number, out)
        })
    }
}

/// KEMI: `KSR.warp.warp_e164(number, "$var(out)")`.
pub unsafe extern "C" fn ki_warp_e164(
    msg: *mut k::sip_msg,
    number: *mut k::str_,
    out: *mut k::str_,
) -> c_int {
    // SAFETY: the KEMI engine passes strs valid during the call.
    let (number, mut out) = unsafe {
        (
            number.as_ref().map(|n| kstr::as_str(n)),
            out.as_ref().copied(),
        )
    };
    guard::kemi(Func::E164, msg, |m| {
        // SAFETY: the core parses the name once and caches the spec for the process.
        let spec = out
            .as_mut()
            .map(|name| unsafe { k::pv_cache_get(name) })
            .filter(|spec| unsafe { spec.as_ref() }.is_some_and(|s| s.setf.is_some()))
            .ok_or("the second parameter is no pseudo-variable it can write")?;
        warp_e164(m, number.as_deref().unwrap_or_default(), spec)
    })
}
