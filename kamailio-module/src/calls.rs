//! The life of an admitted call, for the concurrent-call count: `warp_route()` admits
//! the call (see [`crate::limits`]) and leaves the admission pending for the message;
//! if the dialog module creates a dialog for that request, the dialog takes the
//! admission over and gives it back when it fails, ends or expires — in whichever
//! process that happens. An admission no dialog took (the script answered the request
//! itself, or has no dialog module) is given back when the request route finishes.

use crate::guard;
use crate::limits::{self, Admission};
use crate::log::{lm_err, lm_info};
use crate::sipmsg::SipMsg;
use kamailio_sys as k;
use std::ffi::{c_int, c_uint, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};

/// The admission of the request this process is running the script for.
static PENDING: Mutex<Option<((u32, i32), Admission)>> = Mutex::new(None);

static DIALOG: OnceLock<k::dlg_binds> = OnceLock::new();

/// Per-dialog state, in shared memory: the dialog's callbacks may run in any process.
#[repr(C)]
struct Tracked {
    admission: Admission,
    released: AtomicBool,
}

/// Hooks into the core and, when it is loaded, the dialog module; `mod_init` only.
pub fn init() -> Result<(), String> {
    // SAFETY: registration before fork, as the core requires.
    if unsafe {
        k::register_script_cb(
            Some(request_done),
            k::POST_SCRIPT_CB | k::REQUEST_CB,
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
        lm_info!("dialog module not loaded: per-trunk concurrent calls are not tracked beyond the request route");
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
    let _ = DIALOG.set(api);
    Ok(())
}

fn pending() -> std::sync::MutexGuard<'static, Option<((u32, i32), Admission)>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// `warp_route()` admitted the call `msg` carries.
pub fn admitted(msg: &SipMsg, admission: Admission) {
    if let Some((_, earlier)) = pending().replace((msg.identity(), admission)) {
        // warp_route() ran twice on one request: the first admission is void.
        limits::release(earlier);
    }
}

/// After every request route: an admission no dialog took is given back.
unsafe extern "C" fn request_done(_msg: *mut k::sip_msg, _flags: c_uint, _: *mut c_void) -> c_int {
    guard::entry("post-script callback", 1, || {
        if let Some((_, admission)) = pending().take() {
            limits::release(admission);
        }
        1
    })
}

/// A dialog was created for a request: if warp admitted it, the dialog owns the
/// admission from now on.
unsafe extern "C" fn dialog_created(
    dlg: *mut k::dlg_cell,
    _type: c_int,
    params: *mut k::dlg_cb_params,
) {
    guard::entry("dialog created", (), || {
        // SAFETY: the dialog module passes its params, with the creating request.
        let Some(req) = (unsafe { params.as_ref() }).and_then(|p| unsafe { SipMsg::new(p.req) })
        else {
            return;
        };
        let mut pending = pending();
        let Some((identity, admission)) = *pending else {
            return;
        };
        if identity != req.identity() {
            return;
        }
        *pending = None;
        drop(pending);
        if let Err(e) = track(dlg, admission) {
            lm_err!("{e}: the call is not counted as in progress");
            limits::release(admission);
        }
    })
}

fn track(dlg: *mut k::dlg_cell, admission: Admission) -> Result<(), String> {
    let register = DIALOG
        .get()
        .and_then(|d| d.register_dlgcb)
        .ok_or("dialog API not bound")?;
    // SAFETY: plain shm allocation, freed by `tracked_free` when the dialog goes.
    let tracked = unsafe { k::warp_shm_malloc(std::mem::size_of::<Tracked>()) } as *mut Tracked;
    if tracked.is_null() {
        return Err("out of shared memory".into());
    }
    // SAFETY: fresh and aligned.
    unsafe {
        tracked.write(Tracked {
            admission,
            released: AtomicBool::new(false),
        })
    };
    let types = (k::DLGCB_FAILED | k::DLGCB_TERMINATED | k::DLGCB_EXPIRED) as c_int;
    // SAFETY: `dlg` is the dialog being created; the module frees `tracked` with it.
    if unsafe {
        register(
            dlg,
            types,
            Some(dialog_ended),
            tracked.cast(),
            Some(tracked_free),
        )
    } < 0
    {
        // SAFETY: not handed over.
        unsafe { k::warp_shm_free(tracked.cast()) };
        return Err("cannot register the dialog end callback".into());
    }
    Ok(())
}

/// Gives the admission back, once, whichever of end, failure, expiry or destruction
/// comes first.
fn end(tracked: &Tracked) {
    if !tracked.released.swap(true, SeqCst) {
        limits::release(tracked.admission);
    }
}

unsafe extern "C" fn dialog_ended(
    _dlg: *mut k::dlg_cell,
    _type: c_int,
    params: *mut k::dlg_cb_params,
) {
    guard::entry("dialog ended", (), || {
        // SAFETY: `param` points at the pointer given at registration.
        let tracked = unsafe { params.as_ref().and_then(|p| p.param.as_ref()) };
        if let Some(t) = tracked.and_then(|t| unsafe { (*t as *const Tracked).as_ref() }) {
            end(t);
        }
    })
}

unsafe extern "C" fn tracked_free(param: *mut c_void) {
    guard::entry("dialog freed", (), || {
        // SAFETY: allocated and initialised by `track`; the module frees it once.
        if let Some(t) = unsafe { (param as *const Tracked).as_ref() } {
            end(t);
            unsafe { k::warp_shm_free(param) };
        }
    })
}
