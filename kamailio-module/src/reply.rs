//! Stateless replies through the sl module's API (bound in `mod_init`), as C modules do
//! with `sl_load_api()`; sl adds the To-tag and absorbs the ACK of a negative reply.

use crate::kstr;
use crate::params;
use crate::sipmsg::SipMsg;
use kamailio_sys as k;
use std::sync::OnceLock;

static SL: OnceLock<k::sl_api_t> = OnceLock::new();

/// `sl_load_api()`: finds sl's `bind_sl` export and fills in its API.
pub fn bind() -> Result<(), String> {
    // SAFETY: plain lookup in the core's table of loaded modules' exports.
    let export = unsafe { k::find_export(c"bind_sl".as_ptr() as *mut _, 0, 0) };
    // SAFETY: sl exports `bind_sl` with exactly the `bind_sl_f` signature, as sl.h declares.
    let bind: k::bind_sl_f = unsafe { std::mem::transmute(export) };
    let bind = bind.ok_or("the sl module must be loaded (loadmodule \"sl.so\") before warp")?;
    let mut api = k::sl_api_t::default();
    // SAFETY: `api` is a valid, writable sl_api_t.
    if unsafe { bind(&mut api) } < 0 {
        return Err("cannot bind the sl API".into());
    }
    SL.set(api).map_err(|_| "sl API bound twice".to_string())
}

/// Sends `code reason` for the request `msg`.
pub fn send(msg: &SipMsg, code: u16, reason: &str) -> Result<(), String> {
    let reply = SL
        .get()
        .and_then(|sl| sl.freply)
        .ok_or("sl API not bound")?;
    let mut reason = kstr::from_bytes(reason.as_bytes());
    // SAFETY: `msg` is the message of the current entry point; sl copies `reason`.
    if unsafe { reply(msg.raw(), i32::from(code), &mut reason) } < 0 {
        return Err(format!("sl could not send {code}"));
    }
    Ok(())
}

/// Answers `msg` with the configured fallback (`fallback_code`, `fallback_reason`).
pub fn fallback(msg: &SipMsg) -> Result<(), String> {
    let config = params::config();
    send(msg, config.fallback_code, &config.fallback_reason)
}
