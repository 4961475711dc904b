//! The core's timer process: a module's work every so many seconds.

use kamailio_sys as k;
use std::ffi::{c_uint, c_void};

/// Has the timer process call `tick` every `seconds`; `mod_init` only (`what` names the
/// parameter that asked, for the error).
pub fn every(
    seconds: u32,
    tick: unsafe extern "C" fn(c_uint, *mut c_void),
    what: &str,
) -> Result<(), String> {
    // SAFETY: mod_init, before the fork, as the core requires of timers.
    if unsafe { k::register_timer(Some(tick), std::ptr::null_mut(), seconds) } < 0 {
        return Err(format!("{what}: the core could not register its timer"));
    }
    Ok(())
}
