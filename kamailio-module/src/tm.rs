//! The transaction module, when the config loads it: whether the message being handled
//! already has a transaction, and a hook run when tm creates one, which is when
//! `warp_route()`'s failover record must reach the transaction (see [`crate::failover`])
//! and when an INVITE's transaction is asked for the code of a final reply tm makes up
//! itself (a timeout's 408, a CANCEL's 487), or whether the last attempt was sent at
//! all: the dialog module reports the failure of such a call without it (see
//! [`local_final`]).

use crate::calls;
use crate::failover;
use crate::guard;
use crate::kstr;
use crate::log::{lm_err, lm_info};
use crate::record::{self, Hop};
use crate::sipmsg::SipMsg;
use kamailio_sys as k;
use std::ffi::{c_int, c_uint};
use std::ptr::null_mut;
use std::sync::{Mutex, OnceLock};

/// tm's `t_gett`, set once tm is bound and the hook registered.
static T_GETT: OnceLock<unsafe extern "C" fn() -> *mut k::cell> = OnceLock::new();
/// tm's `register_tmcb`, for callbacks on one transaction.
static REGISTER: OnceLock<k::register_tmcb_f> = OnceLock::new();
/// tm's functions to suspend a request's transaction and resume it elsewhere.
struct Suspension {
    newtran: unsafe extern "C" fn(*mut k::sip_msg) -> c_int,
    suspend: unsafe extern "C" fn(*mut k::sip_msg, *mut c_uint, *mut c_uint) -> c_int,
    cancel: unsafe extern "C" fn(c_uint, c_uint) -> c_int,
    resume: unsafe extern "C" fn(c_uint, c_uint, *mut k::action) -> c_int,
    resume_cb: unsafe extern "C" fn(c_uint, c_uint, *mut k::str_, *mut k::str_) -> c_int,
}
static SUSPENSION: OnceLock<Suspension> = OnceLock::new();
/// tm's `t_request`, which sends a request of the edge's own (a gateway's probe).
static REQUEST: OnceLock<
    unsafe extern "C" fn(
        *mut k::uac_req_t,
        *mut k::str_,
        *mut k::str_,
        *mut k::str_,
        *mut k::str_,
    ) -> c_int,
> = OnceLock::new();
/// The last final reply tm made up in this process: its request and what it says.
static LOCAL_FINAL: Mutex<Option<(usize, Final)>> = Mutex::new(None);
/// tm's FAKED_REPLY marker: a reply tm made up, not one received.
pub const FAKED_REPLY: isize = -1;

/// Binds tm and registers the hook. Called in the main process before the fork (rank
/// `PROC_INIT`): after every module's `mod_init`, so tm is ready whatever the order of
/// the `loadmodule` lines, and before the fork, as tm requires of this hook.
pub fn init() -> Result<(), String> {
    // SAFETY: plain lookup in the core's table of loaded modules' exports; tm exports
    // `load_tm` as not callable from scripts (NO_SCRIPT, -1).
    let export = unsafe { k::find_export(c"load_tm".as_ptr() as *mut _, -1, 0) };
    // SAFETY: tm exports `load_tm` with the `load_tm_f` signature (tm_load.h).
    let load: k::load_tm_f = unsafe { std::mem::transmute(export) };
    let Some(load) = load else {
        lm_info!("tm not loaded: the failover record is written only if warp_next_route() asks");
        return Ok(());
    };
    let mut api = k::tm_binds::default();
    // SAFETY: `api` is a valid, writable tm_binds.
    if unsafe { load(&mut api) } < 0 {
        return Err("cannot bind the tm API".into());
    }
    let (Some(register), Some(t_gett)) = (api.register_tmcb, api.t_gett) else {
        return Err("the tm API lacks register_tmcb or t_gett".into());
    };
    // SAFETY: a global TMCB_REQUEST_IN callback, registered before the fork.
    let registered = unsafe {
        register(
            null_mut(),
            null_mut(),
            k::TMCB_REQUEST_IN as c_int,
            Some(transaction_created),
            null_mut(),
            None,
        )
    };
    if registered <= 0 {
        return Err("cannot register the tm request-in callback".into());
    }
    let _ = T_GETT.set(t_gett);
    let _ = REGISTER.set(api.register_tmcb);
    if let Some(request) = api.t_request {
        let _ = REQUEST.set(request);
    }
    if let (Some(newtran), Some(suspend), Some(cancel), Some(resume), Some(resume_cb)) = (
        api.t_newtran,
        api.t_suspend,
        api.t_cancel_suspend,
        api.t_continue,
        api.t_continue_cb,
    ) {
        let _ = SUSPENSION.set(Suspension {
            newtran,
            suspend,
            cancel,
            resume,
            resume_cb,
        });
    }
    Ok(())
}

/// Sends an OPTIONS to `uri` from the edge itself; `cookie` comes back to
/// [`crate::gateways::probed`] with whether anything answered it (a reply of any code
/// from the network; tm's own 408 when nothing did is no answer).
pub fn options(uri: &str, cookie: usize) -> Result<(), String> {
    let request = REQUEST.get().ok_or("tm is not loaded")?;
    let mut method = kstr::from_bytes(b"OPTIONS");
    let mut target = kstr::from_bytes(uri.as_bytes());
    let mut from = kstr::from_bytes(b"sip:warp@localhost");
    let mut req = k::uac_req_t {
        method: &mut method,
        headers: null_mut(),
        body: null_mut(),
        ssock: null_mut(),
        ssockname: null_mut(),
        dialog: null_mut(),
        cb_flags: k::TMCB_LOCAL_COMPLETED as c_int,
        cb: Some(options_done),
        cbp: cookie as *mut std::ffi::c_void,
        callid: null_mut(),
    };
    let to: *mut k::str_ = &mut target;
    // SAFETY: tm copies what it keeps (into the transaction, in shm) before it returns.
    if unsafe { request(&mut req, to, to, &mut from, null_mut()) } < 0 {
        return Err(format!("tm could not send an OPTIONS to {uri}"));
    }
    Ok(())
}

unsafe extern "C" fn options_done(_t: *mut k::cell, _type: c_int, params: *mut k::tmcb_params) {
    guard::entry("gateway probe answered", (), || {
        // SAFETY: tm passes its params for the duration of the call, `param` pointing
        // at the cookie given to `options`.
        let Some(p) = (unsafe { params.as_ref() }) else {
            return;
        };
        let Some(&cookie) = (unsafe { p.param.as_ref() }) else {
            return;
        };
        let heard = !p.rpl.is_null() && p.rpl as isize != FAKED_REPLY;
        crate::gateways::probed(cookie as usize, heard);
    })
}

/// A suspended transaction: tm's hash index and label of it.
#[derive(Clone, Copy)]
pub struct Suspended {
    index: c_uint,
    label: c_uint,
}

/// Where a resumed request goes on: a route of kamailio.cfg, or a KEMI function.
pub enum Resume<'a> {
    Route(*mut k::action),
    Kemi(&'a str),
}

/// Makes `msg`'s transaction unless it has one: tm answers an INVITE 100 Trying and
/// takes its retransmissions and its CANCEL from then on.
pub fn transaction(msg: &SipMsg) -> Result<(), String> {
    let tm = SUSPENSION.get().ok_or("tm is not loaded")?;
    // SAFETY: the request the core is handling in this process.
    if !has_transaction() && unsafe { (tm.newtran)(msg.raw()) } <= 0 {
        return Err("cannot make the transaction".into());
    }
    Ok(())
}

/// Suspends `msg`'s [`transaction`].
pub fn suspend(msg: &SipMsg) -> Result<Suspended, String> {
    transaction(msg)?;
    let tm = SUSPENSION.get().ok_or("tm is not loaded")?;
    let (mut index, mut label) = (0, 0);
    // SAFETY: as above; tm writes the two numbers.
    match unsafe { (tm.suspend)(msg.raw(), &mut index, &mut label) } {
        0 => Ok(Suspended { index, label }),
        1 => Err("the caller cancelled the call".into()),
        e => Err(format!("tm cannot suspend the transaction ({e})")),
    }
}

/// Undoes [`suspend`]: the request goes on where it is.
pub fn unsuspend(suspended: Suspended) {
    let Some(tm) = SUSPENSION.get() else {
        return;
    };
    // SAFETY: a transaction this process suspended and nobody resumed.
    unsafe { (tm.cancel)(suspended.index, suspended.label) };
    // Kamailio 5.6's t_cancel_suspend() leaves the transaction marked suspended, and tm
    // drops every reply its branches get (fixed in tm by kamailio PR #3629, which
    // clears the flag there, as here, unlocked: the request route holds the call).
    if let Some(t) = current() {
        // SAFETY: the live transaction current in this process, just unsuspended.
        unsafe { (*t).flags &= !(k::T_ASYNC_SUSPENDED as std::ffi::c_ushort) };
    }
}

/// Resumes a suspended request in `to` (tm runs it as a failure_route; nothing when
/// the caller cancelled meanwhile: tm has answered it 487).
pub fn resume(suspended: Suspended, to: &Resume<'_>) {
    let Some(tm) = SUSPENSION.get() else {
        return;
    };
    let Suspended { index, label } = suspended;
    // SAFETY: tm looks the transaction up by its identity and checks it is suspended.
    unsafe {
        match *to {
            Resume::Route(actions) => (tm.resume)(index, label, actions),
            Resume::Kemi(function) => (tm.resume_cb)(
                index,
                label,
                &mut kstr::from_bytes(function.as_bytes()),
                &mut kstr::from_bytes(b"warp:dip"),
            ),
        };
        // What the resumed route left in this process (xavps, ...), as the async
        // module does after it.
        k::ksr_msg_env_reset();
    }
}

/// The transaction of the message this process is handling, if it has one (never when
/// tm is not loaded).
fn current() -> Option<*mut k::cell> {
    let t_gett = T_GETT.get()?;
    // SAFETY: tm's accessor of its per-process current transaction.
    let t = unsafe { t_gett() };
    // T_UNDEFINED is -1: not looked up yet.
    (!t.is_null() && t as isize != -1).then_some(t)
}

/// Whether the message this process is handling already has a transaction (false when
/// tm is not loaded).
pub fn has_transaction() -> bool {
    current().is_some()
}

/// The current transaction's flags (none without one).
fn flags() -> u32 {
    // SAFETY: a live transaction, current in this process.
    current().map_or(0, |t| unsafe { flags_of(t) })
}

/// `t`'s flags, read once, unlocked: tm sets `T_CANCELED` from whichever process takes
/// the CANCEL.
///
/// # Safety
/// `t` is a live transaction.
unsafe fn flags_of(t: *const k::cell) -> u32 {
    // SAFETY: a plain read of a field another process may be writing, as tm's own
    // `was_cancelled()` does.
    u32::from(unsafe { std::ptr::read_volatile(&(*t).flags) })
}

/// Whether the caller cancelled the current transaction (a CANCEL matched it; tm has
/// answered it 487 already).
pub fn cancelled() -> bool {
    flags() & k::T_CANCELED != 0
}

/// Whether the request being handled is one tm resumes after it was suspended (the
/// async module's `async_task_route()`): tm runs its route as a failure_route, though it
/// carries on the request route's work.
pub fn resumed() -> bool {
    flags() & k::T_ASYNC_CONTINUE != 0
}

/// The branches tm has sent, or tried to send, the current transaction's request on:
/// a destination it cannot send to (no socket for its transport, a name that does not
/// resolve) gets none.
pub fn branches() -> Option<u32> {
    // SAFETY: a live transaction, current in this process.
    current().map(|t| unsafe { branches_of(t) })
}

/// Whether the current transaction's attempt in progress got a reply (even a 100
/// Trying) from where it was sent, not one tm made up (its timeout's 408); `None`
/// without a transaction.
pub fn current_attempt_replied() -> Option<bool> {
    // SAFETY: a live transaction, current in this process; tm writes its branches under
    // the reply lock a failure route runs with.
    current().map(|t| unsafe { attempt_branches(t) }.any(replied))
}

/// Whether `uac` got a reply from where it was sent, not one tm made up.
fn replied(uac: &k::ua_client) -> bool {
    // A branch's flag says a reply came before the one being handled (as tm's own
    // `t_any_replied()` reads it: tm sets it only after the failure route); the reply
    // kept with the branch is that one: the vendor's, or tm's own (FAKED_REPLY).
    let kept = uac.reply as isize;
    uac.request.flags & k::F_RB_REPLIED as u16 != 0 || (kept != 0 && kept != FAKED_REPLY)
}

/// tm's internal code of a branch it could not send on (`uac->icode`): the send failed,
/// as when a TCP connection is refused.
const UNDELIVERED: c_int = 908;

/// Whether the current transaction's attempt in progress reached its vendor (see
/// [`attempt_sent`]); `None` without a transaction.
pub fn current_attempt_sent() -> Option<bool> {
    // SAFETY: a live transaction, current in this process.
    current().map(|t| unsafe { attempt_sent(t) })
}

/// Whether `t`'s attempt in progress reached its vendor: tm made a branch for it (none
/// for a destination it has no socket for, or a name that does not resolve) and sent
/// its request on one.
///
/// # Safety
/// `t` is a live transaction.
unsafe fn attempt_sent(t: *const k::cell) -> bool {
    unsafe { attempt_branches(t) }.any(|uac| uac.icode != UNDELIVERED)
}

/// Whether the caller cancelled `t` before its attempt in progress was sent: tm checks
/// for a CANCEL after the branch route of each branch it builds, and sends nothing
/// once it came. A branch it sent had its timer started once the request was out, or
/// has a reply from the vendor if that came first.
///
/// # Safety
/// `t` is a live transaction.
unsafe fn cancelled_before_sent(t: *const k::cell) -> bool {
    let went_out = |uac: &k::ua_client| {
        uac.icode != UNDELIVERED && (uac.request.fr_expire != 0 || replied(uac))
    };
    let cancelled = unsafe { flags_of(t) } & k::T_CANCELED != 0;
    cancelled && !unsafe { attempt_branches(t) }.any(went_out)
}

/// The branches of `t`'s attempt in progress: those tm made since
/// [`failover::branches_before`].
///
/// # Safety
/// `t` is a live transaction, and stays so while the branches are read.
unsafe fn attempt_branches<'t>(t: *const k::cell) -> impl Iterator<Item = &'t k::ua_client> {
    // SAFETY: `t` is live; its first `nr_of_outgoings` branches are in use.
    let branches = unsafe { branches_of(t) };
    (failover::branches_before()..branches).map(move |i| unsafe { &*(*t).uac.add(i as usize) })
}

/// # Safety
/// `t` is a live transaction.
unsafe fn branches_of(t: *const k::cell) -> u32 {
    u32::try_from(unsafe { (*t).nr_of_outgoings }).unwrap_or(0)
}

/// tm is creating a transaction for a request (its AVP list already the transaction's).
unsafe extern "C" fn transaction_created(
    t: *mut k::cell,
    _type: c_int,
    params: *mut k::tmcb_params,
) {
    guard::entry("transaction created", (), || {
        // SAFETY: tm passes its params, with the request, for the duration of the call.
        let req = unsafe { params.as_ref().and_then(|p| SipMsg::new(p.req)) };
        if let Some(req) = req {
            if let Err(e) = failover::flush(&req) {
                lm_err!("{e}: the call cannot fail over");
            }
            if calls::tracking() && req.is_invite() {
                watch_local_finals(t);
            }
        }
    })
}

/// Asks `t` for the code of every final reply tm makes up for it, once it forwards the
/// request. tm runs a transaction's callbacks last registered first, and the dialog
/// module registers its own when the transaction is created (or, with `t_newtran()`
/// first, at `dlg_manage()`): registered at forwarding, warp's runs before the
/// dialog's and has the code ready when the dialog reports the failure.
fn watch_local_finals(t: *mut k::cell) {
    forget_local_final(None);
    register_on(t, k::TMCB_REQUEST_FWDED, Some(forwarded));
}

fn register_on(t: *mut k::cell, kind: u32, callback: k::transaction_cb) {
    let Some(Some(register)) = REGISTER.get() else {
        return;
    };
    // SAFETY: `t` is a live transaction tm passed us; the callback takes no parameter.
    let registered = unsafe { register(null_mut(), t, kind as c_int, callback, null_mut(), None) };
    if registered <= 0 {
        lm_err!("cannot watch a transaction's local replies: its failure CDR has no code");
    }
}

/// tm forwards the request (each failover again: a repeated watch only repeats the note).
unsafe extern "C" fn forwarded(t: *mut k::cell, _type: c_int, _params: *mut k::tmcb_params) {
    guard::entry("request forwarded", (), || {
        register_on(t, k::TMCB_RESPONSE_READY, Some(final_ready))
    })
}

unsafe extern "C" fn final_ready(t: *mut k::cell, _type: c_int, params: *mut k::tmcb_params) {
    guard::entry("final reply", (), || {
        // SAFETY: tm passes its params for the duration of the call.
        let Some(p) = (unsafe { params.as_ref() }) else {
            return;
        };
        if p.code < 200 {
            return;
        }
        if p.code < 300 || failover::stored().is_none() {
            return forget_local_final(Some(p.req));
        }
        let code = || u16::try_from(p.code).unwrap_or(500);
        // The attempt in progress may never have been sent (the transaction's AVPs are
        // current while tm runs its callbacks): then this final reply, another
        // attempt's or tm's own, is not its outcome.
        // SAFETY: the live transaction tm runs the callback for.
        let outcome = if unsafe { cancelled_before_sent(t) } {
            if failover_attempt() {
                Final::NeverSent
            } else {
                // The call's first attempt: its failure is the caller's cancel (487).
                Final::Code(code())
            }
        } else if !unsafe { attempt_sent(t) } {
            Final::Code(failover::UNSENT)
        } else if p.rpl as isize == FAKED_REPLY {
            Final::Code(code())
        } else {
            // The final reply says it (a vendor's).
            return forget_local_final(Some(p.req));
        };
        *LOCAL_FINAL.lock().unwrap_or_else(|e| e.into_inner()) = Some((p.req as usize, outcome));
    })
}

/// Whether the attempt in progress (the transaction's AVPs are current) is one
/// `warp_next_route()` moved the call on to.
fn failover_attempt() -> bool {
    let stored = failover::stored();
    let hop = stored.as_deref().and_then(record::split);
    hop.and_then(|(_, hop, _)| Hop::parse(hop))
        .is_some_and(|hop| hop.attempt > 1)
}

/// Drops the note [`final_ready`] left in this process nobody took, if it names `req`
/// (all: any). A note is taken in the tm callback run that wrote it: one still there is
/// stale (its call relayed without a dialog, or its dialog gone), and would otherwise
/// be handed to a later transaction whose request copy tm put at the same address,
/// reporting that call's failure with a code that was never its own. Called at a
/// final reply that needs no note, and when an INVITE's transaction begins.
fn forget_local_final(req: Option<*mut k::sip_msg>) {
    let mut last = LOCAL_FINAL.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_some_and(|(r, _)| req.is_none_or(|req| r == req as usize)) {
        *last = None;
    }
}

/// What the final reply for a transaction tells of its attempt in progress, when the
/// reply itself does not say it (see [`local_final`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Final {
    /// The attempt failed with this code.
    Code(u16),
    /// The caller cancelled the call after `warp_next_route()` moved it on to this
    /// attempt, before it was sent: its vendor never saw the call, and the attempt
    /// before it has reported its failure already.
    NeverSent,
}

/// What the attempt in progress came to, when the final reply for `req`'s transaction
/// does not say it: a reply tm made up, or one to an earlier attempt when the last
/// could not be sent, or was never sent as the caller cancelled ([`final_ready`] saw
/// it; taken: asked once).
pub fn local_final(req: *mut k::sip_msg) -> Option<Final> {
    let mut last = LOCAL_FINAL.lock().unwrap_or_else(|e| e.into_inner());
    match *last {
        Some((r, outcome)) if r == req as usize => {
            *last = None;
            Some(outcome)
        }
        _ => None,
    }
}
