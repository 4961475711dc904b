//! Per-function counters in Kamailio shared memory: all workers add to one set, and
//! the RPC process reads them. Each counter is independent, so plain atomics suffice.

use crate::shm;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The script functions (cfg and KEMI share a counter set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Ani,
    Route,
    NextRoute,
}

impl Func {
    pub const ALL: [Func; 3] = [Func::Ani, Func::Route, Func::NextRoute];

    /// The cfg/KEMI name.
    pub fn name(self) -> &'static str {
        match self {
            Func::Ani => "warp_ani",
            Func::Route => "warp_route",
            Func::NextRoute => "warp_next_route",
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

static SHARED: shm::Block<Shared> = shm::Block::new();

/// Allocates the zeroed counters; `mod_init` only.
pub fn init() -> Result<(), String> {
    SHARED
        .alloc(Shared {
            funcs: Default::default(),
            workers: AtomicU64::new(0),
        })
        .map(drop)
}

/// Frees the counters; `destroy` only.
pub fn destroy() {
    SHARED.free();
}

fn shared() -> Option<&'static Shared> {
    SHARED.get()
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
