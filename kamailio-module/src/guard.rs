//! The wall between Kamailio and Rust: every entry point the core calls runs inside one
//! of these, so a Rust panic never unwinds into C. A panic is logged with LM_ERR and the
//! entry point returns its fallback (script functions also answer the fallback reply).

use crate::decision;
use crate::kstr;
use crate::log::{lm_err, lm_warn};
use crate::params;
use crate::reply;
use crate::sipmsg::SipMsg;
use crate::stats::{self, Func, Outcome};
use crate::tm;
use kamailio_sys as k;
use std::any::Any;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

/// Routes panic messages (with their location) to Kamailio's log instead of stderr,
/// which a daemonised Kamailio has closed.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| lm_err!("{info}")));
}

/// Runs a non-script entry point (life cycle, fixup, pseudo-variable, RPC); returns
/// `fallback` if it panics.
pub fn entry<T>(what: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        lm_err!(
            "{what}: caught panic ({}), returning the fallback",
            panic_text(&*payload)
        );
        fallback
    })
}

/// The background threads `fault_inject` may name, besides the script functions.
pub const THREAD_FAULT_POINTS: [&str; 2] = ["cdr_sender", "cluster_heartbeat"];

/// Panics the first time a background thread of this process passes `point`, when
/// `fault_inject` names it: tests of the threads' own guards.
pub fn fault_point(point: &str) {
    debug_assert!(THREAD_FAULT_POINTS.contains(&point));
    static FIRED: AtomicBool = AtomicBool::new(false);
    if params::config().fault_inject.as_deref() == Some(point) && !FIRED.swap(true, Relaxed) {
        panic!("fault injected by modparam fault_inject");
    }
}

/// What a script function's body gives the script, as its return code.
pub trait Verdict {
    fn code(self) -> c_int;
}

/// True or false: 1 or -1.
impl Verdict for bool {
    fn code(self) -> c_int {
        if self {
            1
        } else {
            -1
        }
    }
}

/// Runs kamailio.cfg's script function `func` for `msg` and maps its result to the
/// script's return code: `Ok(v)` → `v`'s ([`Verdict`]), `Err` → -2 (logged, with
/// the fallback reply in `$warp(code)`/`$warp(reason)`). A panic
/// answers the request with the fallback reply and returns 0, which ends the script.
pub fn script<V: Verdict>(
    func: Func,
    msg: *mut k::sip_msg,
    body: impl FnOnce(&SipMsg) -> Result<V, String>,
) -> c_int {
    run(func, msg, body, Caller::Cfg)
}

/// [`script`] for a KEMI export. A KEMI script goes on whatever a function returns, so
/// a panic sends no reply (the script would send its own after it): it returns -2 with
/// the fallback reply in `$warp(code)`/`$warp(reason)`, for the script's refusal branch.
pub fn kemi<V: Verdict>(
    func: Func,
    msg: *mut k::sip_msg,
    body: impl FnOnce(&SipMsg) -> Result<V, String>,
) -> c_int {
    run(func, msg, body, Caller::Kemi)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Cfg,
    Kemi,
}

fn run<V: Verdict>(
    func: Func,
    msg: *mut k::sip_msg,
    body: impl FnOnce(&SipMsg) -> Result<V, String>,
    caller: Caller,
) -> c_int {
    // SAFETY: `msg` is what the core passed to the calling entry point.
    let Some(msg) = (unsafe { SipMsg::new(msg) }) else {
        lm_err!("{}: called without a message", func.name());
        return -2;
    };
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        if params::config().fault_inject.as_deref() == Some(func.name()) {
            panic!("fault injected by modparam fault_inject");
        }
        in_its_routes(func)?;
        body(&msg)
    }));
    let took = started.elapsed();
    match result {
        Ok(Ok(verdict)) => {
            stats::record(func, Outcome::Done, took);
            verdict.code()
        }
        Ok(Err(e)) => {
            stats::record(func, Outcome::Error, took);
            lm_err!("{}: {e}", func.name());
            // The script's refusal branch answers `$warp(code)`: the fallback, not
            // an unset code that sl_send_reply() cannot send.
            set_fallback(func, &msg, e);
            -2
        }
        Err(payload) => {
            stats::record(func, Outcome::Panic, took);
            let why = format!("caught panic ({})", panic_text(&*payload));
            lm_err!("{}: {why}, answering with the fallback", func.name());
            if caller == Caller::Kemi {
                set_fallback(func, &msg, why);
                return -2;
            }
            // The message that made the body panic may make the reply panic too: that
            // one must not unwind into the core either.
            if msg.is_request() {
                match catch_unwind(AssertUnwindSafe(|| reply::fallback(&msg))) {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => lm_warn!("{}: fallback reply failed: {e}", func.name()),
                    Err(_) => lm_err!("{}: the fallback reply panicked too", func.name()),
                }
            }
            0
        }
    }
}

/// [`script`] for a function whose one parameter `fixup_spve_null` fixed up: `body`
/// gets its value for `msg`; one that does not evaluate is an error naming `what`.
///
/// # Safety
/// `param` must be the `fparam_t` `fixup_spve_null` built for the calling site.
pub unsafe fn script_with_param<V: Verdict>(
    func: Func,
    msg: *mut k::sip_msg,
    param: *mut c_char,
    what: &str,
    body: impl FnOnce(&SipMsg, &str) -> Result<V, String>,
) -> c_int {
    script(func, msg, |m| {
        // SAFETY: see above; the value lives while the core handles `msg`. Copied: it
        // may be warp's own `$warp(...)` text, which the body rewrites as it goes.
        let value = unsafe { kstr::param(m.raw(), param) }
            .ok_or_else(|| format!("cannot evaluate the {what} parameter"))?
            .into_owned();
        body(m, &value)
    })
}

/// A fixup for a function of one string parameter: `fixup_spve_null`'s, after `check`
/// has passed the parameter when it is written as plain text (a pseudo-variable's value
/// is known only per call). A mistake then stops Kamailio at start-up with `func`'s name
/// and `check`'s words, rather than failing every call that reaches the function.
///
/// # Safety
/// As a fixup the core calls: `param` points at the parameter's NUL-terminated text.
pub unsafe fn fixup_checked(
    func: &str,
    param: *mut *mut c_void,
    param_no: c_int,
    check: impl FnOnce(&str) -> Result<(), String>,
) -> c_int {
    entry(func, -1, || {
        // SAFETY: before its fixup the core passes the parameter's text, NUL-terminated.
        let text = unsafe { param.as_ref() }
            .filter(|text| !text.is_null())
            .map(|&text| unsafe { CStr::from_ptr(text.cast()) }.to_string_lossy());
        if let Some(text) = text.filter(|t| !t.contains('$')) {
            if let Err(e) = check(&text) {
                lm_err!("{func}(): {e}");
                return -1;
            }
        }
        // SAFETY: called as the core would.
        unsafe { k::fixup_spve_null(param, param_no) }
    })
}

/// Leaves the fallback reply in `$warp(code)`/`$warp(reason)` for `msg`, a request (a
/// reply has no refusal to send).
fn set_fallback(func: Func, msg: &SipMsg, why: String) {
    if !msg.is_request() {
        return;
    }
    if catch_unwind(AssertUnwindSafe(|| decision::unavailable(msg, why))).is_err() {
        lm_err!("{}: setting the fallback panicked too", func.name());
    }
}

/// `Err` unless the route being run is one of `func`'s ([`Func::routes`]).
fn in_its_routes(func: Func) -> Result<(), String> {
    let (routes, names) = func.routes();
    // SAFETY: the core sets `route_type` before running any route of this process.
    let running = unsafe { k::route_type };
    // A request tm resumes (`async_task_route()`) runs as a failure_route, but what it
    // does is the request route's: its end, or its dialog, still settles the call.
    let resumed_request =
        running == k::FAILURE_ROUTE as c_int && routes & k::REQUEST_ROUTE != 0 && tm::resumed();
    if running & routes as c_int == 0 && !resumed_request {
        return Err(format!("{}() runs in {names} only", func.name()));
    }
    Ok(())
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
