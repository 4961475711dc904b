//! `warp_dip_async(route)`: hands a call `warp_needs_dip()` found waiting on the upstream
//! LRN dip to one of Kamailio's async workers (core `async_workers`), so that a slow or
//! silent upstream holds up no SIP worker: its BYEs, keepalives and calls that need no
//! dip go on. The call's transaction is suspended (tm answers 100 Trying, takes the
//! retransmissions, and a CANCEL with 487); the async worker dips, then resumes the call
//! in `route` (a kamailio.cfg route, or with a KEMI script the function of that name),
//! where `warp_route()` routes it on that answer. The dip comes before the resumption,
//! not inside it: tm holds the transaction's reply lock while a resumed route runs, and
//! a CANCEL or a retransmission would wait on it. `lrn_timeout` bounds the call's whole
//! wait, from the hand-over: with every async worker busy, calls queue, and one that
//! waited that long is resumed without a dip, so a backlog never adds a dip's time per
//! queued call to post-dial delay. And at most `lrn_dip_queue` calls wait: one more is
//! routed on the dialled number at once, undipped (`lrn.overflow`), rather than block
//! the SIP worker on the core's full task socket, as would it also when the core cannot
//! take the task (its socket full with `async_nonblock=1`).
//!
//! Returns 0, which stops the script, once the call is handed over; false when there
//! is nothing to hand over (`warp_needs_dip()` said no), when the queue is full (the
//! call is then routed undipped) or it cannot be (no async workers, tm refused:
//! logged), and the script routes the call itself.

use crate::clock;
use crate::decision;
use crate::guard::{self, Verdict};
use crate::identify;
use crate::kstr;
use crate::log::lm_warn;
use crate::lrn;
use crate::params;
use crate::shm;
use crate::sipmsg::SipMsg;
use crate::stats::Func;
use crate::tm::{self, Resume, Suspended};
use kamailio_sys as k;
use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr::{addr_of_mut, null_mut};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Once;
use std::time::Duration;
use warp_core::Number;

/// The longest KEMI function name a task carries.
const CALLBACK_MAX: usize = 64;

/// What an async worker is handed: in shared memory, one block the core frees when the
/// task has run.
#[repr(C)]
struct Task {
    /// First: the core frees the task by this pointer.
    task: k::async_task_t,
    suspended: Suspended,
    number: u64,
    /// When the call was handed over (CLOCK_MONOTONIC, the same in every process): its
    /// wait for an async worker counts against `lrn_timeout`.
    handed_over: Duration,
    /// The kamailio.cfg route to resume in; null: the KEMI function `callback` names.
    route: *mut k::action,
    callback_len: usize,
    callback: [u8; CALLBACK_MAX],
}

/// The calls waiting for an async worker, shared by all processes.
#[repr(C)]
struct Queue {
    /// Handed over, not yet taken by an async worker.
    waiting: AtomicU64,
    /// Routed undipped because `lrn_dip_queue` calls were waiting, or the core could
    /// not take the task.
    overflow: AtomicU64,
    /// When an overflow was last logged (Unix ms): a flood logs once a second.
    logged_ms: AtomicI64,
}

static QUEUE: shm::Block<Queue> = shm::Block::new();

/// Allocates the queue's counts; `mod_init` only.
pub fn init() -> Result<(), String> {
    QUEUE
        .alloc(Queue {
            waiting: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            logged_ms: AtomicI64::new(0),
        })
        .map(drop)
}

/// Frees them; `destroy` only.
pub fn destroy() {
    QUEUE.free();
}

/// (name, value) for `warp.stats`' `lrn` group.
pub fn counts() -> Vec<(&'static str, u64)> {
    QUEUE.get().map_or_else(Vec::new, |q| {
        vec![
            ("queued", q.waiting.load(Relaxed)),
            ("overflow", q.overflow.load(Relaxed)),
        ]
    })
}

/// A place in the queue, given back when dropped unless an async worker is to take it
/// ([`Place::handed_over`]).
struct Place(&'static Queue);

impl Place {
    /// A place, if fewer than `lrn_dip_queue` calls are waiting.
    fn take(queue: &'static Queue) -> Option<Place> {
        let limit = params::config().lrn_dip_queue;
        queue
            .waiting
            .fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Place(queue))
    }

    /// Kept until the async worker's [`run`] gives it back.
    fn handed_over(self) {
        std::mem::forget(self);
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
    }
}

/// `number`'s call goes on in this process undipped: counted, and logged once a second.
fn overflow(queue: &Queue, number: Number, why: &str) -> Handover {
    let total = queue.overflow.fetch_add(1, Relaxed) + 1;
    let now = clock::now_ms();
    let last = queue.logged_ms.load(Relaxed);
    if now - last >= 1000
        && queue
            .logged_ms
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    {
        lm_warn!("{why}: routing {number} on the dialled number, undipped ({total} calls so far)");
    }
    lrn::undipped(number);
    Handover::Kept
}

/// Whether the call went to an async worker.
pub enum Handover {
    /// Suspended and handed over: the script stops (0).
    Suspended,
    /// Not handed over: the script goes on and routes the call (-1).
    Kept,
}

impl Verdict for Handover {
    fn code(self) -> c_int {
        match self {
            Handover::Suspended => 0,
            Handover::Kept => -1,
        }
    }
}

fn warp_dip_async(msg: &SipMsg, to: &str) -> Result<Handover, String> {
    let Some(number) = decision::take_dip(msg) else {
        return Ok(Handover::Kept);
    };
    // SAFETY: a core setting, fixed at start-up.
    if unsafe { k::async_task_workers_get() } <= 0 {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            lm_warn!("warp_dip_async(): no async_workers set, calls wait for their dip here");
        });
        return Ok(Handover::Kept);
    }
    let route = continuation(to)?;
    // The name only for a KEMI function (checked to fit); a route is its actions.
    let name = if route.is_null() { to.as_bytes() } else { &[] };
    let mut callback = [0u8; CALLBACK_MAX];
    callback[..name.len()].copy_from_slice(name);
    // Into the AVPs the transaction takes (or holds): the resumed route reads them.
    identify::hand_over(msg)?;
    // Made whatever comes next: a call kept here is routed in its transaction as a
    // resumed one is, and the script's next steps are the same either way.
    tm::transaction(msg)?;
    let queue = QUEUE.get().ok_or("warp_dip_async() before mod_init")?;
    let Some(place) = Place::take(queue) else {
        let limit = params::config().lrn_dip_queue;
        let why = format!("{limit} calls wait for their LRN dip");
        return Ok(overflow(queue, number, &why));
    };
    let suspended = tm::suspend(msg)?;
    let task = shm::new(Task {
        task: k::async_task_t {
            exec: Some(run),
            param: null_mut(),
        },
        suspended,
        number: number.value(),
        handed_over: clock::monotonic(),
        route,
        callback_len: name.len(),
        callback,
    });
    let task = match task {
        Ok(task) => task,
        Err(e) => {
            tm::unsuspend(suspended);
            return Err(e);
        }
    };
    // SAFETY: this process's alone until pushed; the task's parameter is itself.
    unsafe { (*task).task.param = task.cast() };
    // SAFETY: the core passes the pointer to an async worker, which runs and frees it.
    if unsafe { k::async_task_push(task.cast()) } < 0 {
        tm::unsuspend(suspended);
        // SAFETY: the core did not take it.
        unsafe { shm::delete(task) };
        return Ok(overflow(
            queue,
            number,
            "the core could not queue the call for an async worker",
        ));
    }
    place.handed_over();
    Ok(Handover::Suspended)
}

/// Where the resumed call goes on: kamailio.cfg's route `to` (an error if there is
/// none), or null when the config is a KEMI script (its function `to`).
fn continuation(to: &str) -> Result<*mut k::action, String> {
    // SAFETY: the core's config engine, set at start-up when the config is a KEMI script.
    if !unsafe { k::sr_kemi_eng_get() }.is_null() {
        if to.len() > CALLBACK_MAX {
            return Err(format!("a function name longer than {CALLBACK_MAX} bytes"));
        }
        return Ok(null_mut());
    }
    let name = CString::new(to).map_err(|_| "a route name with a NUL byte")?;
    // SAFETY: the core's table of kamailio.cfg's routes, complete since start-up.
    unsafe {
        let routes = addr_of_mut!(k::main_rt);
        let i = k::route_lookup(routes, name.as_ptr() as *mut c_char);
        let actions = usize::try_from(i)
            .ok()
            .map_or(null_mut(), |i| *(*routes).rlist.add(i));
        if actions.is_null() {
            return Err(format!("no route[{to}] to resume the call in"));
        }
        Ok(actions)
    }
}

/// An async worker's run of a [`Task`]: the dip, then the call resumed.
unsafe extern "C" fn run(param: *mut c_void) {
    // SAFETY: the task warp_dip_async() made; the core frees it once this returns.
    let Some(task) = (unsafe { param.cast::<Task>().as_ref() }) else {
        return;
    };
    // Its place in the queue, taken when it was handed over.
    if let Some(queue) = QUEUE.get() {
        queue.waiting.fetch_sub(1, Relaxed);
    }
    guard::entry("LRN dip of a suspended call", (), || {
        if let Some(number) = Number::from_value(task.number) {
            lrn::prefetch(number, clock::monotonic().saturating_sub(task.handed_over));
        }
    });
    // Resumed whatever the dip did, or the call would wait for tm's timer.
    guard::entry("resuming a call after its dip", (), || {
        let to = if task.route.is_null() {
            let name = &task.callback[..task.callback_len.min(CALLBACK_MAX)];
            Resume::Kemi(std::str::from_utf8(name).unwrap_or_default())
        } else {
            Resume::Route(task.route)
        };
        tm::resume(task.suspended, &to);
        lrn::forget_prefetched();
    });
}

/// `warp_dip_async()`'s fixup: refuses the config when the parameter names, as plain
/// text, a route kamailio.cfg does not have (a typo would otherwise show only when the
/// first call is handed over).
pub unsafe extern "C" fn fixup_route(param: *mut *mut c_void, param_no: c_int) -> c_int {
    // SAFETY: called by the core as a fixup.
    unsafe {
        guard::fixup_checked("warp_dip_async", param, param_no, |name| {
            continuation(name).map(drop)
        })
    }
}

/// kamailio.cfg: `warp_dip_async("ROUTE")`; the parameter is fixed up by
/// [`fixup_route`].
pub unsafe extern "C" fn w_warp_dip_async(
    msg: *mut k::sip_msg,
    route: *mut c_char,
    _: *mut c_char,
) -> c_int {
    // SAFETY: `route` is the fparam_t fixup_spve_null built for this call site.
    unsafe { guard::script_with_param(Func::DipAsync, msg, route, "route", warp_dip_async) }
}

/// KEMI: `KSR.warp.warp_dip_async(function)`: 0 when handed over (the script must stop:
/// the call goes on in `function`).
pub unsafe extern "C" fn ki_warp_dip_async(msg: *mut k::sip_msg, function: *mut k::str_) -> c_int {
    // SAFETY: the KEMI engine passes a str valid during the call.
    let function = unsafe { function.as_ref().map(|f| kstr::as_str(f)) };
    guard::kemi(Func::DipAsync, msg, |m| {
        warp_dip_async(m, function.as_deref().unwrap_or_default())
    })
}
