//! Per-function counters in Kamailio shared memory.
//!
//! Allocated in `mod_init`, before the workers fork, so every process maps the same
//! block at the same address: all workers add to one set of counters, and the RPC
//! process reads them. Plain atomics suffice (no lock): each counter is independent.

use std::mem::size_of;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::Relaxed};

/// The script functions (cfg and KEMI share a counter set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Ani,
    Route,
}

impl Func {
    pub const ALL: [Func; 2] = [Func::Ani, Func::Route];

    /// The cfg/KEMI name.
    pub fn name(self) -> &'static str {
        match self {
            Func::Ani => "warp_ani",
            Func::Route => "warp_route",
        }
    }
}

/// How one call of a script function ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Returned true or false to the script.
    Done,
    /// Failed (logged, returned an error code).
    Error,
    /// Panicked (caught, logged, answered with the fallback reply).
    Panic,
}

#[derive(Default)]
#[repr(C)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    panics: AtomicU64,
}

#[repr(C)]
struct Shared {
    funcs: [Counters; Func::ALL.len()],
    /// SIP worker processes that ran child_init.
    workers: AtomicU64,
}

static SHARED: AtomicPtr<Shared> = AtomicPtr::new(null_mut());

/// Allocates the zeroed counters in shm; `mod_init` only.
pub fn init() -> Result<(), String> {
    // SAFETY: plain allocation from the core's shm pool.
    let block = unsafe { kamailio_sys::warp_shm_malloc(size_of::<Shared>()) } as *mut Shared;
    if block.is_null() {
        return Err("out of shared memory for the statistics".into());
    }
    // SAFETY: fresh, suitably aligned (shm_malloc aligns for any type) and exclusively ours.
    unsafe {
        block.write(Shared {
            funcs: Default::default(),
            workers: AtomicU64::new(0),
        });
    }
    SHARED.store(block, Relaxed);
    Ok(())
}

/// Frees the counters; `destroy` only (main process, at shutdown).
pub fn destroy() {
    let block = SHARED.swap(null_mut(), Relaxed);
    if !block.is_null() {
        // SAFETY: allocated by `init` with shm_malloc; no reader remains at shutdown.
        unsafe { kamailio_sys::warp_shm_free(block.cast()) };
    }
}

fn shared() -> Option<&'static Shared> {
    // SAFETY: set once before fork and valid until `destroy` at shutdown.
    unsafe { SHARED.load(Relaxed).as_ref() }
}

pub fn record(func: Func, outcome: Outcome) {
    if let Some(s) = shared() {
        let c = &s.funcs[func as usize];
        c.calls.fetch_add(1, Relaxed);
        match outcome {
            Outcome::Done => {}
            Outcome::Error => _ = c.errors.fetch_add(1, Relaxed),
            Outcome::Panic => _ = c.panics.fetch_add(1, Relaxed),
        }
    }
}

pub fn worker_started() {
    if let Some(s) = shared() {
        s.workers.fetch_add(1, Relaxed);
    }
}

/// (function, calls, errors, panics) for every function.
pub fn per_function() -> Vec<(Func, u64, u64, u64)> {
    Func::ALL
        .iter()
        .map(|&f| match shared() {
            Some(s) => {
                let c = &s.funcs[f as usize];
                (
                    f,
                    c.calls.load(Relaxed),
                    c.errors.load(Relaxed),
                    c.panics.load(Relaxed),
                )
            }
            None => (f, 0, 0, 0),
        })
        .collect()
}

pub fn workers() -> u64 {
    shared().map_or(0, |s| s.workers.load(Relaxed))
}
