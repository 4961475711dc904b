//! Per-trunk limits enforced across all workers: calls per second and concurrent calls,
//! counted in one table in shared memory. With `cluster_cps`, calls per second are
//! counted in Redis instead (`warp:cps:<trunk>:<unix second>`, INCRBY + EXPIRE), and with
//! `cluster_concurrent` concurrent calls too (see [`crate::cluster_calls`]), so every
//! node sharing it enforces one limit; when Redis does not answer within
//! `cluster_timeout` the node falls back to its own count.
//!
//! Slots are keyed by a hash of the trunk id rather than by the snapshot's trunk index:
//! a call admitted under one snapshot generation is released under whatever generation
//! is current when it ends, and indexes may differ between generations.

use crate::cluster_calls;
use crate::params;
use crate::redis_link::Link;
use crate::shm;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use warp_core::snapshot::TrunkView;

/// Trunks one node can limit; a trunk beyond this is admitted unlimited (and logged).
const SLOTS: usize = 4096;
static CLUSTER: Link = Link::new("cluster CPS counter");
/// Seconds a cluster CPS key outlives its second.
const CPS_KEY_TTL: u64 = 2;

#[repr(C)]
struct Slot {
    /// FNV-1a of the trunk id, never 0; 0 = free slot.
    key: AtomicU64,
    /// Calls admitted and not yet released.
    active: AtomicU64,
    /// Unix second (high 32 bits) and calls admitted in it (low 32 bits).
    window: AtomicU64,
    /// Some of its calls were counted in Redis: the heartbeat keeps its count there.
    clustered: AtomicBool,
}

#[repr(C)]
struct Table {
    slots: [Slot; SLOTS],
    refused_cps: AtomicU64,
    refused_concurrent: AtomicU64,
    /// Limits (a call's CPS, its concurrency: one each) judged on this node's own
    /// counts because Redis did not answer in time: while it grows, each node enforces
    /// the whole limit by itself.
    cluster_fallbacks: AtomicU64,
}

static TABLE: shm::Block<Table> = shm::Block::new();

/// Allocates the table; `mod_init` only.
pub fn init() -> Result<(), String> {
    let slot = |_| Slot {
        key: AtomicU64::new(0),
        active: AtomicU64::new(0),
        window: AtomicU64::new(0),
        clustered: AtomicBool::new(false),
    };
    TABLE
        .alloc(Table {
            slots: std::array::from_fn(slot),
            refused_cps: AtomicU64::new(0),
            refused_concurrent: AtomicU64::new(0),
            cluster_fallbacks: AtomicU64::new(0),
        })
        .map(drop)
}

/// Frees the table; `destroy` only.
pub fn destroy() {
    TABLE.free();
}

fn key(trunk: &str) -> u64 {
    let hash = trunk.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash.max(1)
}

/// The trunk's slot, claimed on first use (open addressing, linear probing).
fn slot(table: &Table, trunk: &str) -> Option<usize> {
    let key = key(trunk);
    (0..SLOTS)
        .map(|i| (key as usize).wrapping_add(i) % SLOTS)
        .find(|&i| {
            let k = &table.slots[i].key;
            k.load(Relaxed) == key
                || k.compare_exchange(0, key, Relaxed, Relaxed)
                    .map_or_else(|held| held == key, |_| true)
        })
}

/// Why a call was refused: the reason phrase of the 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Cps,
    Concurrent,
}

impl Exceeded {
    pub fn reason(self) -> &'static str {
        match self {
            Exceeded::Cps => "CPS Limit Exceeded",
            Exceeded::Concurrent => "Concurrent Call Limit Exceeded",
        }
    }
}

/// A call counted against its trunk's concurrent calls until [`release`]d.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    slot: usize,
    /// Also counted in Redis.
    cluster: bool,
}

/// Counts a new call against `trunk`'s limits (0 = unlimited) in the current second.
/// `Ok(None)` when the call is not counted (no table, or the table is full).
pub fn admit(trunk: &TrunkView<'_>) -> Result<Option<Admission>, Exceeded> {
    let Some(table) = TABLE.get() else {
        return Ok(None);
    };
    let Some(i) = slot(table, trunk.id) else {
        crate::log::lm_warn!("trunk table full ({SLOTS}): {} is not limited", trunk.id);
        return Ok(None);
    };
    let slot = &table.slots[i];
    let Some(counted) = count_cps(table, slot, trunk) else {
        table.refused_cps.fetch_add(1, Relaxed);
        return Err(Exceeded::Cps);
    };
    let max = u64::from(trunk.max_concurrent);
    if max != 0 && params::config().cluster_concurrent {
        let key = slot.key.load(Relaxed);
        // Counted here before Redis counts it, and given back in Redis before here
        // (see `release`): a heartbeat that reads this count between the two then
        // writes one call too many into Redis for a beat, never one too few, so no
        // node admits over the limit on the strength of it.
        slot.clustered.store(true, Relaxed);
        slot.active.fetch_add(1, Relaxed);
        match cluster_calls::admit(key, max) {
            Some(true) => {
                return Ok(Some(Admission {
                    slot: i,
                    cluster: true,
                }));
            }
            Some(false) => {
                slot.active.fetch_sub(1, Relaxed);
                table.refused_concurrent.fetch_add(1, Relaxed);
                uncount_cps(slot, counted);
                return Err(Exceeded::Concurrent);
            }
            None => {
                slot.active.fetch_sub(1, Relaxed);
                table.cluster_fallbacks.fetch_add(1, Relaxed);
            }
        }
    }
    let reserved = slot
        .active
        .fetch_update(Relaxed, Relaxed, |a| (max == 0 || a < max).then_some(a + 1));
    if reserved.is_err() {
        table.refused_concurrent.fetch_add(1, Relaxed);
        uncount_cps(slot, counted);
        return Err(Exceeded::Concurrent);
    }
    Ok(Some(Admission {
        slot: i,
        cluster: false,
    }))
}

/// Where [`count_cps`] counted a call.
enum Counted {
    /// The trunk has no CPS limit.
    Unlimited,
    /// In the node's window of this unix second.
    Local(u64),
    /// In this Redis key.
    Cluster(String),
}

/// Counts the call in this second's window; `None` when that went over `max_cps`.
fn count_cps(table: &Table, slot: &Slot, trunk: &TrunkView<'_>) -> Option<Counted> {
    let cps = u64::from(trunk.max_cps);
    if cps == 0 {
        return Some(Counted::Unlimited);
    }
    // Read here, not when the call arrived: a decision that waited on an LRN dip would
    // count into a second that is over.
    let now = chrono::Utc::now().timestamp() as u64 & 0xffff_ffff;
    if params::config().cluster_cps {
        let key = format!("warp:cps:{}:{now}", trunk.id);
        let timeout = params::config().cluster_timeout;
        if let Some(n) = CLUSTER.with(timeout, |c| c.incrby_expire(&key, 1, CPS_KEY_TTL)) {
            return (n as u64 <= cps).then_some(Counted::Cluster(key));
        }
        table.cluster_fallbacks.fetch_add(1, Relaxed);
    }
    count_in_window(&slot.window, now, cps).then_some(Counted::Local(now))
}

/// Counts a call of unix second `now` in `window` (the second in its high 32 bits, its
/// calls in the low 32); `false` when the window holds `cps` calls already.
fn count_in_window(window: &AtomicU64, now: u64, cps: u64) -> bool {
    window
        .fetch_update(Relaxed, Relaxed, |w| {
            let second = w >> 32;
            // Only a later second opens a new window: a worker whose clock read is a
            // moment behind another's counts into the window already open rather than
            // resetting it. A clock further behind was stepped back (NTP, a resumed VM):
            // waiting for it to catch up would hold the trunk to `cps` calls in all.
            match (now > second || now + 1 < second, w & 0xffff_ffff) {
                (true, _) => Some(now << 32 | 1),
                (false, n) if n >= cps => None,
                (false, _) => Some(w + 1),
            }
        })
        .is_ok()
}

/// Gives back the count of a call its concurrent calls then refused: a trunk at its
/// concurrent limit would otherwise spend its calls per second on calls never made,
/// and the next call in that second, with a place free, would be refused for CPS.
fn uncount_cps(slot: &Slot, counted: Counted) {
    match counted {
        Counted::Unlimited => {}
        Counted::Local(second) => {
            // Only while that window is open: a later one never counted this call.
            let _ = slot.window.fetch_update(Relaxed, Relaxed, |w| {
                (w >> 32 == second && w & 0xffff_ffff > 0).then(|| w - 1)
            });
        }
        Counted::Cluster(key) => {
            CLUSTER.with(params::config().cluster_timeout, |c| {
                c.incrby_expire(&key, -1, CPS_KEY_TTL)
            });
        }
    }
}

/// Counts again, without judging any limit, a call admitted before a restart that its
/// dialog brought back (see [`crate::calls`]): its place was taken then. `None` when
/// the trunk cannot be counted (no table, or the table is full).
pub fn readmit(trunk: &str) -> Option<Admission> {
    let table = TABLE.get()?;
    let i = slot(table, trunk)?;
    let slot = &table.slots[i];
    // With cluster_concurrent the heartbeat writes the count under this run's node
    // name; the former run's field goes with its node key.
    let cluster = params::config().cluster_concurrent;
    if cluster {
        slot.clustered.store(true, Relaxed);
    }
    slot.active.fetch_add(1, Relaxed);
    Some(Admission { slot: i, cluster })
}

/// Ends an admitted call; call exactly once per admission.
pub fn release(admission: Admission) {
    if let Some(table) = TABLE.get() {
        let slot = &table.slots[admission.slot];
        // Redis first: see `admit`.
        if admission.cluster {
            cluster_calls::release(slot.key.load(Relaxed));
        }
        let _ = slot
            .active
            .fetch_update(Relaxed, Relaxed, |a| a.checked_sub(1));
    }
}

/// (trunk key, calls in progress) of every trunk whose calls were counted in Redis.
pub fn clustered() -> Vec<(u64, u64)> {
    TABLE.get().map_or(Vec::new(), |t| {
        t.slots
            .iter()
            .filter(|s| s.clustered.load(Relaxed))
            .map(|s| (s.key.load(Relaxed), s.active.load(Relaxed)))
            .collect()
    })
}

/// `warp.stats`' `limits` counters by name.
pub fn counts() -> Vec<(&'static str, u64)> {
    let Some(t) = TABLE.get() else {
        return Vec::new();
    };
    vec![
        (
            "active",
            t.slots.iter().map(|s| s.active.load(Relaxed)).sum(),
        ),
        ("refused_cps", t.refused_cps.load(Relaxed)),
        ("refused_concurrent", t.refused_concurrent.load(Relaxed)),
        ("cluster_fallbacks", t.cluster_fallbacks.load(Relaxed)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_its_second_and_survives_a_clock_stepped_back() {
        let window = AtomicU64::new(0);
        let second = 1_700_000_000 & 0xffff_ffff;
        assert!((0..3).all(|_| count_in_window(&window, second, 3)));
        assert!(!count_in_window(&window, second, 3));
        // A read a moment behind another worker's counts into the open window.
        assert!(!count_in_window(&window, second - 1, 3));
        // The clock stepped back a minute: calls are counted, not refused for a minute.
        assert!((0..3).all(|_| count_in_window(&window, second - 60, 3)));
        assert!(!count_in_window(&window, second - 60, 3));
        assert!(count_in_window(&window, second - 59, 3));
    }
}
