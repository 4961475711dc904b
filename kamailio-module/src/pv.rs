//! The `$warp(name)` pseudo-variables: read-only views of [`crate::decision`],
//! `$warp(ha1)`, the offered credentials' password hash (see [`identify::offered_ha1`]),
//! and `$warp(ani_e164)` / `$warp(dnis_e164)`, the calling and dialled numbers as warp
//! reads them, in E.164 digits: a script can tell one pair of numbers apart from another
//! (the shipped config's hairpin check) whatever format they were written in, and
//! `$warp(attest)`, the STIR/SHAKEN attestation the call can be given (see [`attest`]),
//! and `$warp(keepalive)` / `$warp(vendor_keepalive)`, whether the identified trunk and
//! the vendor of the attempt in progress are sent in-dialog keepalives (see
//! [`keepalive`]).

use crate::ani;
use crate::attest;
use crate::decision::{self, Field, Value};
use crate::guard;
use crate::identify;
use crate::keepalive;
use crate::kstr;
use crate::log::lm_err;
use crate::sipmsg::SipMsg;
use kamailio_sys as k;
use std::cell::RefCell;
use std::ffi::c_int;
use warp_core::Number;

/// `$warp(ha1)`'s name index: looked up in the snapshot when read, not a decision field.
const HA1: c_int = -1;
/// `$warp(ani_e164)`'s and `$warp(dnis_e164)`'s: read from the message when read.
const ANI_E164: c_int = -2;
const DNIS_E164: c_int = -3;
/// `$warp(attest)`'s: worked out when read.
const ATTEST: c_int = -4;
/// `$warp(keepalive)`'s and `$warp(vendor_keepalive)`'s: looked up in the snapshot
/// when read.
const KEEPALIVE: c_int = -5;
const VENDOR_KEEPALIVE: c_int = -6;

thread_local! {
    /// `$warp(ha1)`'s value until the core has copied it: no snapshot mapping may be
    /// swapped under it.
    static HA1_TEXT: RefCell<String> = const { RefCell::new(String::new()) };
    /// `$warp(ani_e164)`'s and `$warp(dnis_e164)`'s values until the core has copied
    /// them: one buffer each, so a script joining or comparing the two reads both intact.
    static E164_TEXT: RefCell<[String; 2]> = const { RefCell::new([String::new(), String::new()]) };
}

/// Resolves the inner name once, at config parsing; unknown names fail the start-up.
pub unsafe extern "C" fn pv_parse_warp_name(sp: *mut k::pv_spec_t, name: *mut k::str_) -> c_int {
    guard::entry("$warp(...) name", -1, || {
        // SAFETY: the core passes the spec being built and the text inside the parentheses.
        let (Some(sp), Some(name)) = (unsafe { sp.as_mut() }, unsafe { name.as_ref() }) else {
            return -1;
        };
        // SAFETY: `name` points into the config text.
        let text = unsafe { kstr::to_string(name) };
        let index = match Field::parse(&text) {
            Some(field) => field.index() as c_int,
            None if text == "ha1" => HA1,
            None if text == "ani_e164" => ANI_E164,
            None if text == "dnis_e164" => DNIS_E164,
            None if text == "attest" => ATTEST,
            None if text == "keepalive" => KEEPALIVE,
            None if text == "vendor_keepalive" => VENDOR_KEEPALIVE,
            None => {
                lm_err!("unknown pseudo-variable $warp({text})");
                return -1;
            }
        };
        sp.pvp.pvn.type_ = k::PV_NAME_INTSTR as c_int;
        // Plain integers in the union the core hands back to `pv_get_warp`.
        sp.pvp.pvn.u.isname.type_ = 0;
        sp.pvp.pvn.u.isname.name.n = index;
        0
    })
}

/// `$warp(name)`: the value for the current message, `$null` when unset.
pub unsafe extern "C" fn pv_get_warp(
    msg: *mut k::sip_msg,
    param: *mut k::pv_param_t,
    res: *mut k::pv_value_t,
) -> c_int {
    guard::entry("$warp(...)", -1, || {
        // SAFETY: core-provided pointers of the current evaluation.
        let (Some(m), Some(p)) = (unsafe { SipMsg::new(msg) }, unsafe { param.as_ref() }) else {
            return -1;
        };
        // SAFETY: set by `pv_parse_warp_name`.
        let index = unsafe { p.pvn.u.isname.name.n };
        if index == HA1 {
            return HA1_TEXT.with_borrow_mut(|ha1| {
                // SAFETY: as below; the text stays put until the next read.
                unsafe {
                    if identify::offered_ha1(&m, ha1) {
                        k::pv_get_strval(msg, param, res, &mut kstr::from_bytes(ha1.as_bytes()))
                    } else {
                        k::pv_get_null(msg, param, res)
                    }
                }
            });
        }
        if index == ANI_E164 || index == DNIS_E164 {
            let number = e164(&m, index);
            let slot = usize::from(index == DNIS_E164);
            return E164_TEXT.with_borrow_mut(|texts| {
                let text = &mut texts[slot];
                text.clear();
                // SAFETY: as below; the text stays put until this name is read again.
                unsafe {
                    match number {
                        Some(number) => {
                            number.push_to(text);
                            let mut value = kstr::from_bytes(text.as_bytes());
                            k::pv_get_strval(msg, param, res, &mut value)
                        }
                        None => k::pv_get_null(msg, param, res),
                    }
                }
            });
        }
        if index == ATTEST {
            let attest = attest::attestation(&m);
            // SAFETY: as below; the text is static.
            return unsafe {
                k::pv_get_strval(msg, param, res, &mut kstr::from_bytes(attest.as_bytes()))
            };
        }
        if index == KEEPALIVE || index == VENDOR_KEEPALIVE {
            let on = match index {
                KEEPALIVE => keepalive::caller(&m),
                _ => keepalive::vendor(&m),
            };
            // SAFETY: as below; an integer is copied at once.
            return unsafe { k::pv_get_sintval(msg, param, res, on.into()) };
        }
        let Some(field) = Field::from_index(index as usize) else {
            return -1;
        };
        decision::with(&m, field, |value| {
            // SAFETY: the core copies the value before the state can change.
            unsafe {
                match value {
                    Some(Value::Str(s)) => {
                        k::pv_get_strval(msg, param, res, &mut kstr::from_bytes(s.as_bytes()))
                    }
                    Some(Value::Int(i)) => k::pv_get_sintval(msg, param, res, i as c_int),
                    None => k::pv_get_null(msg, param, res),
                }
            }
        })
    })
}

/// The calling number as `warp_ani()` finds it (setting `$warp(ani)` as it does), or the
/// dialled number as `warp_route()` reads it, the R-URI's user part; `None` when it is
/// no telephone number.
fn e164(msg: &SipMsg, index: c_int) -> Option<Number> {
    match index {
        ANI_E164 => ani::find_number(msg),
        _ => Number::parse(&msg.ruri_user()?).ok(),
    }
}
