//! The life of a routed call after `warp_route()`: its place among its trunk's
//! concurrent calls (see [`crate::limits`]) and its answer, end and failure CDR events.
//!
//! `warp_route()` leaves the call pending for its request. If the dialog module creates
//! a dialog for that request (`dlg_manage()`), the dialog takes the call over: warp
//! keeps the call in shared memory with the dialog and reports `answer` on the 2xx,
//! `end` when it ends or expires and `failed` when no vendor took it, giving the
//! trunk's place back then — in whichever process that happens. A call no dialog took
//! (the script answered the request itself, or there is no dialog module) gives its
//! place back when the request route finishes and reports nothing after `start`.
//!
//! When the dialog module keeps its dialogs in a database (its `db_mode`), an answered
//! call's record goes into its dialog too: after a restart or a crash the dialog comes
//! back with it, and warp takes the call up again (its place, its `end` event).

use crate::cdr::{self, Event, Kind};
use crate::clock;
use crate::failover;
use crate::gateways;
use crate::guard;
use crate::kstr;
use crate::limits::{self, Admission};
use crate::log::{lm_err, lm_info};
use crate::record::{self, Call, Hop};
use crate::shm;
use crate::sipmsg::SipMsg;
use crate::tm::Final;
use kamailio_sys as k;
use std::ffi::{c_int, c_uint, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use warp_core::model::{DIALSTRING_MAX, ID_MAX};

/// A call routed for the request this process is running the script for.
struct Pending {
    msg: (u32, i32),
    admission: Option<Admission>,
}

static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

static DIALOG: OnceLock<k::dlg_binds> = OnceLock::new();

/// The dialog module writes its dialogs to a database: answered calls are noted in
/// theirs ([`ANSWERED_VAR`]). Set in `mod_init`, inherited by the workers.
static PERSISTED: AtomicBool = AtomicBool::new(false);

/// A call kept with its dialog, in shared memory: the dialog's callbacks run in any
/// process.
#[repr(C)]
struct Tracked {
    admission: Option<Admission>,
    released: AtomicBool,
    /// Unix milliseconds; 0 until answered, [`ENDED_UNANSWERED`] once it can no longer
    /// be. Claimed by compare-and-swap by the answer and by the end, which run in any
    /// process: an `answer` event is emitted exactly when the `end` carries its time.
    answered: AtomicI64,
    /// The call line of the call's record.
    call: shm::Text<LINE_MAX>,
    /// The record's line of the attempt in progress (the answered one once confirmed).
    hop: shm::Text<LINE_MAX>,
}

/// [`Tracked::answered`] of a call that ended before any answer.
const ENDED_UNANSWERED: i64 = -1;

/// The longest record line a tracked call holds: `warp_route()` refuses a call whose
/// line is longer (a Call-ID of some kilobytes) rather than let it run uncounted.
pub const LINE_MAX: usize = 1024;

/// The longest attempt line a snapshot can give (the compiler bounds ids and
/// dialstrings): attempt, vendor id, the dialstring with each 8-byte `{number}` filled
/// with 15 digits, zone, two rates in nanos, partition id, and the tabs between. It
/// must fit, or a call would run untracked (first attempt) or keep naming the vendor
/// before (a later one).
const HOP_MAX: usize = 10
    + 1
    + ID_MAX
    + 1
    + DIALSTRING_MAX / 8 * 15
    + DIALSTRING_MAX % 8
    + 1
    + "INTERNATIONAL".len()
    + 2 * (1 + 20)
    + 1
    + ID_MAX;
const _: () = assert!(
    HOP_MAX <= LINE_MAX,
    "an attempt line must fit a tracked call"
);

/// Hooks into the core and, when it is loaded, the dialog module; `mod_init` only.
pub fn init() -> Result<(), String> {
    // SAFETY: registration before fork, as the core requires.
    if unsafe {
        k::register_script_cb(
            Some(request_done),
            // FAILURE_CB: a request tm resumed (`async_task_route()`) ends as one.
            k::POST_SCRIPT_CB | k::REQUEST_CB | k::FAILURE_CB,
            null_mut(),
        )
    } < 0
    {
        return Err("cannot register the post-script callback".into());
    }
    // SAFETY: plain lookup in the core's table of loaded modules' exports.
    let export = unsafe { k::find_export(c"load_dlg".as_ptr() as *mut _, 0, 0) };
    // SAFETY: dialog exports `load_dlg` with the `load_dlg_f` signature (dlg_load.h).
    let load: k::load_dlg_f = unsafe { std::mem::transmute(export) };
    let Some(load) = load else {
        lm_info!(
            "dialog module not loaded: concurrent calls count only while routed, \
             no answer/end/failed CDR events"
        );
        return Ok(());
    };
    let mut api = k::dlg_binds::default();
    // SAFETY: `api` is a valid, writable dlg_binds.
    if unsafe { load(&mut api) } < 0 {
        return Err("cannot bind the dialog API".into());
    }
    let register = api
        .register_dlgcb
        .ok_or("dialog API without register_dlgcb")?;
    // SAFETY: DLGCB_CREATED is registered alone, without a dialog, in mod_init.
    if unsafe {
        register(
            null_mut(),
            k::DLGCB_CREATED as c_int,
            Some(dialog_created),
            null_mut(),
            None,
        )
    } < 0
    {
        return Err("cannot register the dialog creation callback".into());
    }
    if dialog_db_mode() != 0 {
        // SAFETY: DLGCB_LOADED is registered alone, without a dialog, in mod_init; the
        // dialog module runs it for each dialog it loaded, before the workers fork.
        if unsafe {
            register(
                null_mut(),
                k::DLGCB_LOADED as c_int,
                Some(dialog_loaded),
                null_mut(),
                None,
            )
        } < 0
        {
            return Err("cannot register the dialog load callback".into());
        }
        PERSISTED.store(true, SeqCst);
    }
    let _ = DIALOG.set(api);
    Ok(())
}

/// The dialog module's `db_mode` parameter (0: dialogs in memory only).
fn dialog_db_mode() -> c_int {
    // SAFETY: lookups in the core's table of loaded modules and their parameters; the
    // parameter is the module's `int`, set while the config was read, before mod_init.
    unsafe {
        let dialog = k::find_module_by_name(c"dialog".as_ptr() as *mut _);
        let mut kind = 0;
        let mode = k::find_param_export(
            dialog,
            c"db_mode".as_ptr() as *mut _,
            k::PARAM_INT,
            &mut kind,
        ) as *const c_int;
        mode.as_ref().copied().unwrap_or(0)
    }
}

/// Whether calls are tracked with their dialogs (the dialog module is loaded).
pub fn tracking() -> bool {
    DIALOG.get().is_some()
}

fn pending() -> std::sync::MutexGuard<'static, Option<Pending>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

fn release(admission: Option<Admission>) {
    if let Some(a) = admission {
        limits::release(a);
    }
}

/// `warp_route()` routed the call `msg` carries.
pub fn routed(msg: &SipMsg, admission: Option<Admission>) {
    let earlier = pending().replace(Pending {
        msg: msg.identity(),
        admission,
    });
    // warp_route() ran twice on one request: the first admission is void.
    release(earlier.and_then(|p| p.admission));
}

/// After every request route (and failure route): a call no dialog took gives its
/// place back.
unsafe extern "C" fn request_done(_msg: *mut k::sip_msg, _flags: c_uint, _: *mut c_void) -> c_int {
    guard::entry("post-script callback", 1, || {
        release(pending().take().and_then(|p| p.admission));
        1
    })
}

/// A dialog was created for a request: if warp routed it, the dialog keeps the call.
unsafe extern "C" fn dialog_created(
    dlg: *mut k::dlg_cell,
    _type: c_int,
    params: *mut k::dlg_cb_params,
) {
    guard::entry("dialog created", (), || {
        // SAFETY: the dialog module passes its params, with the creating request.
        let req = unsafe { params.as_ref().and_then(|p| SipMsg::new(p.req)) };
        let Some(req) = req else {
            return;
        };
        let taken = {
            let mut pending = pending();
            match pending.as_ref() {
                Some(p) if p.msg == req.identity() => pending.take(),
                _ => None,
            }
        };
        let Some(p) = taken else {
            return;
        };
        if let Err(e) = track(&req, dlg, p.admission) {
            lm_err!("{e}: the call's end is not tracked");
            release(p.admission);
        }
    })
}

/// The ends a dialog reports. TERMINATED_CONFIRMED is the only end a script's one-sided
/// `dlg_bye()` reports (a BYE also reports TERMINATED first).
const ENDS: u32 = k::DLGCB_TERMINATED | k::DLGCB_TERMINATED_CONFIRMED | k::DLGCB_EXPIRED;

fn track(req: &SipMsg, dlg: *mut k::dlg_cell, admission: Option<Admission>) -> Result<(), String> {
    // The request's AVPs: what warp_route() stored.
    let stored = failover::record(req)?.ok_or("no warp AVP")?;
    let (call, hop, _) = record::split(&stored).ok_or("no attempt in the warp AVP")?;
    // CONFIRMED_NA is the 2xx (in its transaction, with its AVPs); CONFIRMED, the ACK,
    // would come without them.
    let types = k::DLGCB_CONFIRMED_NA | k::DLGCB_FAILED | ENDS;
    follow(dlg, types, admission, 0, call, hop)
}

/// Keeps the call (`call` and `hop`, its record's lines) with `dlg` and has the dialog
/// module report its `types` of events; the call's place is given back once it ends.
fn follow(
    dlg: *mut k::dlg_cell,
    types: u32,
    admission: Option<Admission>,
    answered: i64,
    call: &str,
    hop: &str,
) -> Result<(), String> {
    let register = DIALOG
        .get()
        .and_then(|d| d.register_dlgcb)
        .ok_or("dialog API not bound")?;
    let tracked = shm::new(Tracked {
        admission,
        released: AtomicBool::new(false),
        answered: AtomicI64::new(answered),
        call: shm::Text::new(call)?,
        hop: shm::Text::new(hop)?,
    })?;
    // SAFETY: `dlg` is the dialog being created or loaded; the module frees `tracked`
    // with it.
    if unsafe {
        register(
            dlg,
            types as c_int,
            Some(dialog_event),
            tracked.cast(),
            Some(tracked_free),
        )
    } < 0
    {
        // SAFETY: not handed over.
        unsafe { shm::delete(tracked) };
        return Err("cannot register the dialog callbacks".into());
    }
    Ok(())
}

/// The dialog variable holding an answered call's answer time (Unix milliseconds) and
/// record lines, for a dialog module that writes its dialogs to a database.
const ANSWERED_VAR: &str = "warp_answered";

/// The dialog module loaded `dlg` from its database (Kamailio started again): if warp
/// noted an answered call in it, the call counts against its trunk again and its end
/// is reported as if Kamailio had never stopped.
unsafe extern "C" fn dialog_loaded(dlg: *mut k::dlg_cell, _type: c_int, _: *mut k::dlg_cb_params) {
    guard::entry("dialog loaded", (), || {
        let Some(noted) = dialog_var(dlg, ANSWERED_VAR) else {
            // Not warp's call, or one never answered (its transaction is gone).
            return;
        };
        let taken = take_up(dlg, &noted);
        if let Err(e) = taken {
            lm_err!("a call in progress before the restart is not tracked: {e}: {noted:?}");
        }
    })
}

fn take_up(dlg: *mut k::dlg_cell, noted: &str) -> Result<(), String> {
    let (answered, record) = noted.split_once('\n').ok_or("no record")?;
    let answered: i64 = answered.parse().map_err(|_| "no answer time")?;
    let (call, hop, _) = record::split(record).ok_or("no attempt")?;
    let trunk = Call::parse(call).ok_or("a malformed call line")?.trunk;
    Hop::parse(hop).ok_or("a malformed attempt line")?;
    let admission = limits::readmit(trunk);
    follow(dlg, ENDS, admission, answered, call, hop).inspect_err(|_| release(admission))
}

/// What the reply a dialog callback is about tells of the attempt in progress: its SIP
/// code; for a reply tm made up (a timeout's 408, a CANCEL's 487, a failed relay's 5xx)
/// or a last attempt never sent, what only tm's own callback saw.
fn reply_outcome(params: &k::dlg_cb_params) -> Option<Final> {
    let local = crate::tm::local_final(params.req);
    if local.is_some() || params.rpl as isize == crate::tm::FAKED_REPLY {
        return local;
    }
    // SAFETY: a reply the dialog module passes for the duration of the callback.
    let reply = unsafe { params.rpl.as_ref()? };
    // SAFETY: a parsed reply's first line holds the reply variant.
    let code = u16::try_from(unsafe { reply.first_line.u.reply.statuscode }).ok()?;
    Some(Final::Code(code))
}

unsafe extern "C" fn dialog_event(
    dlg: *mut k::dlg_cell,
    kind: c_int,
    params: *mut k::dlg_cb_params,
) {
    guard::entry("dialog event", (), || {
        // SAFETY: `param` points at the pointer given at registration, valid until
        // `tracked_free`.
        let Some(params) = (unsafe { params.as_ref() }) else {
            return;
        };
        let Some(tracked) = (unsafe { params.param.as_ref() })
            .and_then(|t| unsafe { (*t as *const Tracked).as_ref() })
        else {
            return;
        };
        on_event(dlg, tracked, kind as u32, reply_outcome(params));
    })
}

/// The dialog variable holding, once the call failed over, its call line and the
/// attempt in progress (see [`failed_over`]).
const ATTEMPT_VAR: &str = "warp_attempt";

/// `warp_next_route()` moved `msg`'s call on to another attempt (`call`, its record's
/// call line; `hop`, the new attempt's line): noted in the call's dialog, for an end
/// its dialog reports before any answer or failure (the operator's `dlg.end_dlg`, a
/// script's `dlg_bye()` on a ringing call), which may come in a process that cannot
/// read the transaction's AVPs. Failover only: no cost to a call that does not.
pub fn failed_over(msg: &SipMsg, call: &str, hop: &str) {
    let Some(api) = DIALOG.get() else {
        return;
    };
    let (Some(get), Some(release)) = (api.get_dlg, api.release_dlg) else {
        return;
    };
    // SAFETY: the dialog module looks the dialog of the message being handled up (its
    // context in a request or failure route) and returns it referenced, or null.
    let dlg = unsafe { get(msg.raw()) };
    if dlg.is_null() {
        return;
    }
    set_dialog_var(dlg, ATTEMPT_VAR, &format!("{call}\n{hop}"));
    // SAFETY: gives back the reference `get` took.
    unsafe { release(dlg) };
}

/// Sets `name` to `value` in `dlg`, a dialog referenced or a callback is running for.
fn set_dialog_var(dlg: *mut k::dlg_cell, name: &str, value: &str) {
    let Some(set) = DIALOG.get().and_then(|api| api.set_dlg_var) else {
        return;
    };
    let mut key = kstr::from_bytes(name.as_bytes());
    let mut val = kstr::from_bytes(value.as_bytes());
    // SAFETY: a live dialog; the module copies key and value into shm.
    if unsafe { set(dlg, &mut key, &mut val) } != 0 {
        lm_err!("cannot note {name} in the call's dialog");
    }
}

/// The value of `name` in `dlg`, a dialog a callback is running for.
fn dialog_var(dlg: *mut k::dlg_cell, name: &str) -> Option<String> {
    let get = DIALOG.get()?.get_dlg_varval?;
    let mut key = kstr::from_bytes(name.as_bytes());
    let mut val = kstr::from_bytes(b"");
    // SAFETY: the value is copied into a buffer of this process, read at once.
    if dlg.is_null() || unsafe { get(dlg, &mut key, &mut val) } != 0 || val.s.is_null() {
        return None;
    }
    // SAFETY: filled in by the module just now.
    Some(unsafe { kstr::to_string(&val) })
}

/// The attempt [`failed_over`] noted in `dlg` for the call `call` (its call line).
fn noted_attempt(dlg: *mut k::dlg_cell, call: &str) -> Option<String> {
    let value = dialog_var(dlg, ATTEMPT_VAR)?;
    // A dialog context left from another call must not lend its attempt.
    let (noted, hop) = value.split_once('\n')?;
    (noted == call).then(|| hop.to_owned())
}

fn on_event(dlg: *mut k::dlg_cell, tracked: &Tracked, kind: u32, outcome: Option<Final>) {
    let now = clock::now_ms();
    let sip_code = match outcome {
        Some(Final::Code(code)) => Some(code),
        _ => None,
    };
    // Answer and failure come with the INVITE transaction, whose AVPs name the vendor
    // that answered or failed last (after any failover).
    if kind & (k::DLGCB_CONFIRMED_NA | k::DLGCB_FAILED) != 0 {
        if let Some((_, hop, _)) = failover::stored().as_deref().and_then(record::split) {
            let _ = tracked.hop.set(hop);
        }
    } else if tracked.answered.load(SeqCst) == 0 && !tracked.released.load(SeqCst) {
        // Ended while ringing, perhaps after failover: on the attempt then in progress.
        if let Some(hop) = noted_attempt(dlg, &tracked.call.get()) {
            let _ = tracked.hop.set(&hop);
        }
    }
    let (call_line, hop_line) = (tracked.call.get(), tracked.hop.get());
    let (Some(call), Some(hop)) = (Call::parse(&call_line), Hop::parse(&hop_line)) else {
        return;
    };
    let event = |kind, answer, end, sip_code| {
        cdr::emit(&Event {
            kind,
            call: &call,
            hop: &hop,
            answer,
            end,
            sip_code,
        });
    };
    // One outcome per call: the dialog module can report a call's end more than once
    // (dlg.end_dlg run twice, a timeout's BYE crossing the caller's, an early dialog
    // ended by RPC and then failed or answered by the vendor).
    if kind & k::DLGCB_CONFIRMED_NA != 0 {
        if !answer(&tracked.answered, now) {
            return;
        }
        event(Kind::Answer, Some(now), None, sip_code.or(Some(200)));
        gateways::heard(hop.uri);
        if PERSISTED.load(SeqCst) {
            set_dialog_var(
                dlg,
                ANSWERED_VAR,
                &format!("{now}\n{call_line}\n{hop_line}"),
            );
        }
    } else if kind & k::DLGCB_FAILED != 0 {
        // An attempt the caller cancelled before it was sent has no event: its vendor
        // never saw the call, and the call's last word is the failure of the attempt
        // before it, reported as the call moved on.
        if end(tracked).is_some() && outcome != Some(Final::NeverSent) {
            event(Kind::Failed, None, Some(now), sip_code);
        }
    } else if let Some(answered) = end(tracked) {
        // Terminated by BYE (ours or the script's `dlg_bye()`), or expired. Ended before
        // any answer (the operator's `dlg.end_dlg` on a ringing call), the call was
        // terminated, not completed: a 200 would read as answered.
        let code = if answered.is_some() { 200 } else { 487 };
        event(Kind::End, answered, Some(now), Some(code));
    }
}

/// Claims a call's answer (its [`Tracked::answered`]) at `now`: `false` when it ended
/// first or was answered already (no second `answer` event).
fn answer(answered: &AtomicI64, now: i64) -> bool {
    answered.compare_exchange(0, now, SeqCst, SeqCst).is_ok()
}

/// Closes a call's [`Tracked::answered`] as it ends: the answer time if an answer
/// claimed it first. Read and closed in one step, so an answer in another process is
/// either in the end event or never emitted.
fn close(answered: &AtomicI64) -> Option<i64> {
    let claimed = answered.compare_exchange(0, ENDED_UNANSWERED, SeqCst, SeqCst);
    claimed.err().filter(|&t| t > 0)
}

/// Gives the trunk's place back, once, whichever of end, failure, expiry or
/// destruction comes first. `None` unless this was that once; else the answer time,
/// if the call was answered (see [`close`]).
fn end(tracked: &Tracked) -> Option<Option<i64>> {
    if tracked.released.swap(true, SeqCst) {
        return None;
    }
    release(tracked.admission);
    Some(close(&tracked.answered))
}

unsafe extern "C" fn tracked_free(param: *mut c_void) {
    guard::entry("dialog freed", (), || {
        let tracked = param as *mut Tracked;
        // SAFETY: allocated and initialised by `track`; the module frees it once.
        if let Some(t) = unsafe { tracked.as_ref() } {
            end(t);
            unsafe { shm::delete(tracked) };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_carries_the_answer_that_claimed_the_call_first() {
        let answered = AtomicI64::new(0);
        assert!(answer(&answered, 5));
        assert!(!answer(&answered, 6), "a second answer event");
        assert_eq!(close(&answered), Some(5));
    }

    #[test]
    fn an_answer_after_the_end_is_not_emitted() {
        let ended = AtomicI64::new(0);
        assert_eq!(close(&ended), None);
        assert!(!answer(&ended, 5));
        assert_eq!(close(&ended), None);
    }

    #[test]
    fn a_call_brought_back_answered_ends_with_its_answer() {
        let restored = AtomicI64::new(1_700_000_000_000);
        assert!(!answer(&restored, 5));
        assert_eq!(close(&restored), Some(1_700_000_000_000));
    }
}
