//! Per-function counters and latency histograms in Kamailio shared memory: each process
//! adds to its own set, and the RPC process adds the sets up. Each counter is
//! independent, so plain atomics suffice.

use crate::shm;
use kamailio_sys as k;
use std::ffi::c_uint;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (µs, inclusive) of the latency buckets; a last bucket takes the rest.
pub const LATENCY_BOUNDS_US: [u64; 9] = [10, 25, 50, 100, 250, 500, 1_000, 5_000, 50_000];

/// The script functions (cfg and KEMI share a counter set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Ani,
    Authenticated,
    Identify,
    Dno,
    Route,
    NeedsDip,
    DipAsync,
    NextRoute,
    Redirect,
    Emergency,
    E164,
    MediaUndo,
}

impl Func {
    pub const ALL: [Func; 12] = [
        Func::Ani,
        Func::Authenticated,
        Func::Identify,
        Func::Dno,
        Func::Route,
        Func::NeedsDip,
        Func::DipAsync,
        Func::NextRoute,
        Func::Redirect,
        Func::Emergency,
        Func::E164,
        Func::MediaUndo,
    ];

    /// The routes the function may run in (`REQUEST_ROUTE`, ...), with their names.
    /// kamailio.cfg refuses a call elsewhere when it reads the config; KEMI scripts may
    /// call from any route, so [`crate::guard`] checks each call. `warp_route()`
    /// admitted elsewhere would keep its trunk's place (only a request route's end, or
    /// its dialog, gives it back); `warp_next_route()` on a vendor's reply would report
    /// an attempt failed that did not; `warp_redirect()`'s branches, in a branch_route,
    /// would be forked along with the vendor being tried.
    pub const fn routes(self) -> (c_uint, &'static str) {
        const REQUEST: c_uint = k::REQUEST_ROUTE;
        match self {
            Func::Ani | Func::Identify | Func::Dno => (
                REQUEST | k::FAILURE_ROUTE | k::BRANCH_ROUTE,
                "request_route, failure_route and branch_route",
            ),
            Func::Authenticated
            | Func::Route
            | Func::NeedsDip
            | Func::DipAsync
            | Func::Redirect
            | Func::Emergency => (REQUEST, "request_route"),
            Func::NextRoute => (
                REQUEST | k::FAILURE_ROUTE,
                "request_route and failure_route",
            ),
            // It reads only its parameter.
            Func::E164 => (k::ANY_ROUTE, "any route"),
            // A refused offer's transaction: its final reply came.
            Func::MediaUndo => (
                k::FAILURE_ROUTE | k::ONREPLY_ROUTE,
                "failure_route and onreply_route",
            ),
        }
    }

    /// The cfg/KEMI name.
    pub fn name(self) -> &'static str {
        match self {
            Func::Ani => "warp_ani",
            Func::Authenticated => "warp_authenticated",
            Func::Identify => "warp_identify",
            Func::Dno => "warp_dno",
            Func::Route => "warp_route",
            Func::NeedsDip => "warp_needs_dip",
            Func::DipAsync => "warp_dip_async",
            Func::NextRoute => "warp_next_route",
            Func::Redirect => "warp_redirect",
            Func::Emergency => "warp_emergency",
            Func::E164 => "warp_e164",
            Func::MediaUndo => "warp_media_undo",
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
    latency: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    latency_sum_us: AtomicU64,
}

/// What `warp.stats` reports for one function.
pub struct FuncStats {
    pub func: Func,
    pub calls: u64,
    pub errors: u64,
    pub panics: u64,
    /// Calls per latency bucket (see [`LATENCY_BOUNDS_US`]).
    pub latency: [u64; LATENCY_BOUNDS_US.len() + 1],
    pub latency_sum_us: u64,
}

/// Counter sets, one per process (`process_no % SETS`), which `warp.stats` adds up: with
/// one shared set every worker's every call moved the same cache lines from core to
/// core. A set is 112 bytes a function, so one function's counters of two processes
/// never share a line.
const SETS: usize = 64;

#[derive(Default)]
#[repr(C)]
struct Set {
    funcs: [Counters; Func::ALL.len()],
}

#[repr(C)]
struct Shared {
    sets: [Set; SETS],
    /// SIP worker processes that ran child_init.
    workers: AtomicU64,
}

static SHARED: shm::Block<Shared> = shm::Block::new();

/// Allocates the zeroed counters; `mod_init` only.
pub fn init() -> Result<(), String> {
    SHARED
        .alloc(Shared {
            sets: std::array::from_fn(|_| Set::default()),
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

pub fn record(func: Func, outcome: Outcome, took: Duration) {
    if let Some(s) = shared() {
        // SAFETY: the core sets `process_no` in each process it forks, before any script.
        let set = usize::try_from(unsafe { k::process_no }).unwrap_or(0) % SETS;
        let c = &s.sets[set].funcs[func as usize];
        c.calls.fetch_add(1, Relaxed);
        let us = took.as_micros() as u64;
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        c.latency[bucket].fetch_add(1, Relaxed);
        c.latency_sum_us.fetch_add(us, Relaxed);
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

/// Counters of every function.
pub fn per_function() -> Vec<FuncStats> {
    Func::ALL.iter().map(|&func| of(func)).collect()
}

/// Counters of one function, summed over the processes' sets.
pub fn of(func: Func) -> FuncStats {
    let sets = shared().map_or(&[][..], |s| &s.sets[..]);
    let sum = |a: &dyn Fn(&Counters) -> &AtomicU64| {
        sets.iter()
            .map(|set| a(&set.funcs[func as usize]).load(Relaxed))
            .sum()
    };
    FuncStats {
        func,
        calls: sum(&|c| &c.calls),
        errors: sum(&|c| &c.errors),
        panics: sum(&|c| &c.panics),
        latency: std::array::from_fn(|i| sum(&|c| &c.latency[i])),
        latency_sum_us: sum(&|c| &c.latency_sum_us),
    }
}

pub fn workers() -> u64 {
    shared().map_or(0, |s| s.workers.load(Relaxed))
}
