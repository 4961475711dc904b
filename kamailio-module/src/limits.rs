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
//!
//! A trunk keeps its slot while it has calls; once idle (no call in progress, its CPS
//! window over, its cluster count settled) the slot can be reclaimed, which happens
//! when a new trunk finds the table full: trunks come and go over a Kamailio's life,
//! and one that came late must not be left unlimited. Finding a trunk's slot takes no
//! lock; claiming and reclaiming take the table's, and a call holds its slot (`users`)
//! while it is judged, so a slot never changes trunk under a call.

use crate::cluster_calls;
use crate::params;
use crate::redis_link::Link;
use crate::shm;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use warp_core::snapshot::TrunkView;

/// Trunks one node can limit at once; a trunk beyond this, while every slot is busy,
/// is admitted unlimited (and logged).
const SLOTS: usize = 4096;
/// Slot keys that are not a trunk's: never used (ends a search, see [`find`]),
/// reclaimed (a search goes on past it, a claim may take it), being reclaimed.
const FREE: u64 = 0;
const GONE: u64 = u64::MAX;
const TAKING: u64 = u64::MAX - 1;
static CLUSTER: Link = Link::new("cluster CPS counter");
/// Seconds a cluster CPS key outlives its second.
const CPS_KEY_TTL: u64 = 2;

#[repr(C)]
struct Slot {
    /// FNV-1a of the trunk id, or [`FREE`], [`GONE`], [`TAKING`].
    key: AtomicU64,
    /// Calls being judged on this slot right now: it is not reclaimed under them.
    users: AtomicU64,
    /// Calls admitted and not yet released.
    active: AtomicU64,
    /// Unix second (high 32 bits) and calls admitted in it (low 32 bits).
    window: AtomicU64,
    /// Some of its calls were counted in Redis: the heartbeat keeps its count there.
    clustered: AtomicBool,
    /// Its calls refused over each limit since the trunk took the slot.
    refused_cps: AtomicU64,
    refused_concurrent: AtomicU64,
}

#[repr(C)]
struct Table {
    slots: [Slot; SLOTS],
    /// Held to claim or reclaim slots; the unix second of the last sweep for idle ones.
    claims: shm::Locked<u64>,
    refused_cps: AtomicU64,
    refused_concurrent: AtomicU64,
    /// Limits (a call's CPS, its concurrency: one each) judged on this node's own
    /// counts because Redis did not answer in time: while it grows, each node enforces
    /// the whole limit by itself.
    cluster_fallbacks: AtomicU64,
    /// Calls admitted uncounted because every slot was busy with other trunks.
    unlimited: AtomicU64,
}

static TABLE: shm::Block<Table> = shm::Block::new();

/// Allocates the table; `mod_init` only.
pub fn init() -> Result<(), String> {
    TABLE.alloc(Table::new()).map(drop)
}

/// Frees the table; `destroy` only.
pub fn destroy() {
    TABLE.free();
}

impl Table {
    fn new() -> Table {
        let slot = |_| Slot {
            key: AtomicU64::new(FREE),
            users: AtomicU64::new(0),
            active: AtomicU64::new(0),
            window: AtomicU64::new(0),
            clustered: AtomicBool::new(false),
            refused_cps: AtomicU64::new(0),
            refused_concurrent: AtomicU64::new(0),
        };
        Table {
            slots: std::array::from_fn(slot),
            claims: shm::Locked::new(0),
            refused_cps: AtomicU64::new(0),
            refused_concurrent: AtomicU64::new(0),
            cluster_fallbacks: AtomicU64::new(0),
            unlimited: AtomicU64::new(0),
        }
    }

    /// `trunk`'s slot, claimed on first use, held while the guard lives; [`Full`] when
    /// every slot is busy with other trunks. `now`: the unix second.
    fn hold(&self, trunk: &str, now: u64) -> Result<Held<'_>, Full> {
        let key = key(trunk);
        loop {
            let Some(index) = self.find(key) else {
                return self.claim(key, now);
            };
            if let Some(held) = self.try_hold(index, key) {
                return Ok(held);
            }
            // Reclaimed between the search and the hold: search again.
        }
    }

    /// Holds slot `index` if it is still `key`'s.
    fn try_hold(&self, index: usize, key: u64) -> Option<Held<'_>> {
        let slot = &self.slots[index];
        // Held, then checked: a sweep marks the slot, then checks `users` (SeqCst on
        // both sides), so either it sees this call or this call sees its mark.
        slot.users.fetch_add(1, SeqCst);
        let held = Held { slot, index };
        (slot.key.load(SeqCst) == key).then_some(held)
    }

    /// The slot holding `key`, without claiming one.
    fn find(&self, key: u64) -> Option<usize> {
        probe(key)
            .map(|i| (i, self.slots[i].key.load(SeqCst)))
            .take_while(|&(_, k)| k != FREE)
            .find_map(|(i, k)| (k == key).then_some(i))
    }

    /// Finds or claims `key`'s slot under the table's lock, and holds it; sweeps idle
    /// slots (once a second at most) when none is left.
    fn claim(&self, key: u64, now: u64) -> Result<Held<'_>, Full> {
        self.claims.with(|last_sweep| {
            let mut swept = false;
            let index = self.place(key).or_else(|| {
                if *last_sweep == now {
                    return None;
                }
                (*last_sweep, swept) = (now, true);
                self.sweep(now);
                self.place(key)
            });
            let Some(index) = index else {
                return Err(Full { swept });
            };
            let slot = &self.slots[index];
            if slot.key.load(SeqCst) != key {
                // Another trunk's counts, or none.
                slot.refused_cps.store(0, Relaxed);
                slot.refused_concurrent.store(0, Relaxed);
            }
            // Under the lock no one else claims or reclaims; searches only read keys.
            slot.key.store(key, SeqCst);
            slot.users.fetch_add(1, SeqCst);
            Ok(Held { slot, index })
        })
    }

    /// Where `key` is, else where it goes: the first reclaimed slot on its way, or the
    /// free one that ends it; `None` when the table is full. Under the lock.
    fn place(&self, key: u64) -> Option<usize> {
        let mut gone = None;
        for i in probe(key) {
            match self.slots[i].key.load(SeqCst) {
                k if k == key => return Some(i),
                FREE => return gone.or(Some(i)),
                GONE => gone = gone.or(Some(i)),
                _ => {}
            }
        }
        gone
    }

    /// Reclaims every idle slot (see [`Slot::idle`]). Under the lock.
    fn sweep(&self, now: u64) {
        for slot in &self.slots {
            let key = slot.key.load(SeqCst);
            if matches!(key, FREE | GONE | TAKING) || !slot.idle(now) {
                continue;
            }
            slot.key.store(TAKING, SeqCst);
            let unheld = slot.users.load(SeqCst) == 0 && slot.idle(now);
            slot.key.store(if unheld { GONE } else { key }, SeqCst);
        }
    }
}

impl Slot {
    /// No call in progress or being judged, no count in this second's window or the
    /// last one, and none left for the cluster heartbeat to write (see [`settle`]).
    fn idle(&self, now: u64) -> bool {
        self.active.load(SeqCst) == 0
            && !self.clustered.load(SeqCst)
            && now.abs_diff(self.window.load(Relaxed) >> 32) > 1
    }
}

/// The order in which slots are searched for `key` (open addressing, linear probing).
fn probe(key: u64) -> impl Iterator<Item = usize> {
    (0..SLOTS).map(move |i| (key as usize).wrapping_add(i) % SLOTS)
}

/// Every slot is busy with other trunks; `swept`: this call looked for idle ones (which
/// happens once a second at most).
struct Full {
    swept: bool,
}

/// Counts a call its trunk's limits cannot count, and says so once a second.
fn left_out(table: &Table, trunk: &str, full: Full) {
    table.unlimited.fetch_add(1, Relaxed);
    if full.swept {
        crate::log::lm_warn!(
            "trunk table full: {SLOTS} trunks had calls in the last seconds; {trunk} and any other trunk new to it are not limited until one is idle (limits.unlimited counts their calls)"
        );
    }
}

/// A trunk's slot, held against reclamation while a call is judged on it.
struct Held<'a> {
    slot: &'a Slot,
    index: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.slot.users.fetch_sub(1, SeqCst);
    }
}

fn key(trunk: &str) -> u64 {
    let hash = trunk.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash.clamp(FREE + 1, TAKING - 1)
}

fn unix_second() -> u64 {
    chrono::Utc::now().timestamp() as u64 & 0xffff_ffff
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
    // Read here, not when the call arrived: a decision that waited on an LRN dip would
    // count into a second that is over.
    let now = unix_second();
    let held = match table.hold(trunk.id, now) {
        Ok(held) => held,
        Err(full) => {
            left_out(table, trunk.id, full);
            return Ok(None);
        }
    };
    let (slot, i) = (held.slot, held.index);
    let Some(counted) = count_cps(table, slot, trunk, now) else {
        return Err(refused(table, slot, Exceeded::Cps));
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
                uncount_cps(slot, counted);
                return Err(refused(table, slot, Exceeded::Concurrent));
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
        uncount_cps(slot, counted);
        return Err(refused(table, slot, Exceeded::Concurrent));
    }
    Ok(Some(Admission {
        slot: i,
        cluster: false,
    }))
}

/// Counts a call refused over a limit, on the node and on its trunk; returns `why`.
fn refused(table: &Table, slot: &Slot, why: Exceeded) -> Exceeded {
    let (node, trunk) = match why {
        Exceeded::Cps => (&table.refused_cps, &slot.refused_cps),
        Exceeded::Concurrent => (&table.refused_concurrent, &slot.refused_concurrent),
    };
    node.fetch_add(1, Relaxed);
    trunk.fetch_add(1, Relaxed);
    why
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
fn count_cps(table: &Table, slot: &Slot, trunk: &TrunkView<'_>, now: u64) -> Option<Counted> {
    let cps = u64::from(trunk.max_cps);
    if cps == 0 {
        return Some(Counted::Unlimited);
    }
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
            match (opens_window(w, now), w & 0xffff_ffff) {
                (true, _) => Some(now << 32 | 1),
                (false, n) if n >= cps => None,
                (false, _) => Some(w + 1),
            }
        })
        .is_ok()
}

/// Whether a call of unix second `now` starts a new window rather than counting into
/// `window`'s. Only a later second does: a worker whose clock read is a moment behind
/// another's counts into the window already open rather than resetting it. A clock
/// further behind was stepped back (NTP, a resumed VM): waiting for it to catch up
/// would hold the trunk to `cps` calls in all.
fn opens_window(window: u64, now: u64) -> bool {
    let second = window >> 32;
    now > second || now + 1 < second
}

/// Whether `trunk` is at one of its limits already, by this node's own counts, without
/// counting anything: a call about to wait on an LRN lookup is refused before it pays
/// for one, as [`admit`] would refuse it after (an over-limit flood would otherwise
/// cost a dip a call, and a worker's wait on each). CPS counted in Redis
/// (`cluster_cps`) is left to [`admit`]. A refusal counts as [`admit`]'s do.
pub fn check(trunk: &TrunkView<'_>) -> Result<(), Exceeded> {
    reached(trunk, refused).map_or(Ok(()), Err)
}

/// [`check`] counting no refusal: whether a call would be refused before its dip.
pub fn full(trunk: &TrunkView<'_>) -> bool {
    reached(trunk, |_, _, why| why).is_some()
}

/// The limit `trunk` is at by [`check`]'s rule, told to `seen` first.
fn reached(
    trunk: &TrunkView<'_>,
    seen: impl FnOnce(&Table, &Slot, Exceeded) -> Exceeded,
) -> Option<Exceeded> {
    let table = TABLE.get()?;
    let key = key(trunk.id);
    // Held while read, so a slot reclaimed meanwhile is never read as this trunk's.
    let held = table.find(key).and_then(|i| table.try_hold(i, key))?;
    let cps = u64::from(trunk.max_cps);
    let window = held.slot.window.load(Relaxed);
    if cps != 0
        && !params::config().cluster_cps
        && !opens_window(window, unix_second())
        && window & 0xffff_ffff >= cps
    {
        return Some(seen(table, held.slot, Exceeded::Cps));
    }
    let max = u64::from(trunk.max_concurrent);
    if max != 0 && held.slot.active.load(Relaxed) >= max {
        return Some(seen(table, held.slot, Exceeded::Concurrent));
    }
    None
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
    let held = table
        .hold(trunk, unix_second())
        .map_err(|full| left_out(table, trunk, full))
        .ok()?;
    let (slot, i) = (held.slot, held.index);
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

/// (slot, trunk key, calls in progress) of every trunk whose calls were counted in
/// Redis since the heartbeat last [`settle`]d it.
pub fn clustered() -> Vec<(usize, u64, u64)> {
    TABLE.get().map_or(Vec::new(), |t| {
        (t.slots.iter().enumerate())
            .filter(|(_, s)| s.clustered.load(SeqCst))
            .map(|(i, s)| (i, s.key.load(SeqCst), s.active.load(SeqCst)))
            .collect()
    })
}

/// The heartbeat removed the trunk of `slot` from Redis, as it had no call: the slot
/// can be reclaimed unless one has started since. A call admitted between that check
/// and the store is still counted in Redis and given back there at its end; only the
/// heartbeat's repair of its count is lost, until the trunk's next admission.
pub fn settle(slot: usize) {
    if let Some(slot) = TABLE.get().and_then(|t| t.slots.get(slot)) {
        if slot.active.load(SeqCst) == 0 {
            slot.clustered.store(false, SeqCst);
        }
    }
}

/// A trunk's counts on this node (`warp.trunks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Calls in progress.
    pub active: u64,
    /// Calls refused over each limit since the trunk took its slot: its first call
    /// here, or its first since it sat idle while the table filled up with others.
    pub refused_cps: u64,
    pub refused_concurrent: u64,
}

/// `trunk`'s counts on this node; zeros for one it has not counted.
pub fn usage(trunk: &str) -> Usage {
    let Some(table) = TABLE.get() else {
        return Usage::default();
    };
    let key = key(trunk);
    // Held while read, so a slot reclaimed meanwhile is never read as this trunk's.
    let Some(held) = table.find(key).and_then(|i| table.try_hold(i, key)) else {
        return Usage::default();
    };
    Usage {
        active: held.slot.active.load(Relaxed),
        refused_cps: held.slot.refused_cps.load(Relaxed),
        refused_concurrent: held.slot.refused_concurrent.load(Relaxed),
    }
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
        ("unlimited", t.unlimited.load(Relaxed)),
        (
            "trunks",
            t.slots
                .iter()
                .filter(|s| !matches!(s.key.load(Relaxed), FREE | GONE))
                .count() as u64,
        ),
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

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("T{i}")).collect()
    }

    fn live_keys(table: &Table) -> Vec<u64> {
        (table.slots.iter())
            .map(|s| s.key.load(SeqCst))
            .filter(|k| !matches!(*k, FREE | GONE | TAKING))
            .collect()
    }

    #[test]
    fn a_full_table_gives_an_idle_trunks_slot_to_a_new_one() {
        let table = Box::new(Table::new());
        let now = 1_000;
        let ids = ids(SLOTS + 1);
        let index: Vec<usize> = (ids[..SLOTS].iter())
            .map(|id| table.hold(id, now).ok().unwrap().index)
            .collect();
        // Four trunks are busy: a call in progress, calls in this second, a count the
        // heartbeat has yet to settle, a call being judged.
        table.slots[index[0]].active.store(1, SeqCst);
        table.slots[index[1]].window.store(now << 32 | 1, SeqCst);
        table.slots[index[2]].clustered.store(true, SeqCst);
        let judged = table.hold(&ids[3], now).ok().unwrap();
        let newcomer = table.hold(&ids[SLOTS], now + 1).ok().unwrap();
        drop(newcomer);
        assert_eq!(live_keys(&table).len(), 5, "the idle trunks were reclaimed");
        for (i, id) in ids[..4].iter().enumerate() {
            assert_eq!(table.find(key(id)), Some(index[i]), "busy {id} moved");
        }
        assert_eq!(judged.index, index[3]);
        // A reclaimed trunk that calls again gets a slot of its own.
        let back = table.hold(&ids[10], now + 1).ok().unwrap();
        assert_eq!(table.find(key(&ids[10])), Some(back.index));
    }

    #[test]
    fn a_table_of_busy_trunks_looks_for_idle_ones_once_a_second() {
        let table = Box::new(Table::new());
        let ids = ids(SLOTS + 1);
        for id in &ids[..SLOTS] {
            let held = table.hold(id, 10).ok().unwrap();
            held.slot.active.store(1, SeqCst);
        }
        let newcomer = &ids[SLOTS];
        assert!(matches!(
            table.hold(newcomer, 10),
            Err(Full { swept: true })
        ));
        assert!(matches!(
            table.hold(newcomer, 10),
            Err(Full { swept: false })
        ));
        let first = table.find(key(&ids[0])).unwrap();
        table.slots[first].active.store(0, SeqCst);
        // Idle now, but the table was swept this second already.
        assert!(matches!(
            table.hold(newcomer, 10),
            Err(Full { swept: false })
        ));
        let held = table.hold(newcomer, 11).ok().unwrap();
        assert_eq!(held.index, first);
        assert_eq!(table.find(key(&ids[0])), None);
    }

    #[test]
    fn a_trunk_past_a_reclaimed_slot_is_found_not_claimed_twice() {
        let table = Box::new(Table::new());
        // Three trunks whose search starts at the same slot.
        let mut by_home: std::collections::HashMap<usize, Vec<String>> = Default::default();
        let same_home = (0..)
            .map(|i| format!("T{i}"))
            .find_map(|id| {
                let ids = by_home.entry(key(&id) as usize % SLOTS).or_default();
                ids.push(id);
                (ids.len() == 3).then(|| ids.clone())
            })
            .unwrap();
        let [a, b, c] = [0, 1, 2].map(|i| &same_home[i]);
        let first = table.hold(a, 5).ok().unwrap().index;
        let second = table.hold(b, 5).ok().unwrap();
        second.slot.active.store(1, SeqCst);
        table.sweep(7);
        assert_eq!(table.slots[first].key.load(SeqCst), GONE);
        assert_eq!(table.hold(b, 7).ok().unwrap().index, second.index);
        assert_eq!(table.hold(c, 7).ok().unwrap().index, first);
        assert_eq!(live_keys(&table).len(), 2);
    }

    #[test]
    fn a_sweep_takes_no_slot_held_and_a_hold_takes_no_slot_swept() {
        let table = Box::new(Table::new());
        let index = table.hold("T1", 1).ok().unwrap().index;
        // Found, then held: the sweep leaves it.
        let held = table.try_hold(index, key("T1")).unwrap();
        table.sweep(5);
        assert_eq!(table.slots[index].key.load(SeqCst), key("T1"));
        drop(held);
        // Found, then swept before the hold: the hold sees it went.
        assert_eq!(table.find(key("T1")), Some(index));
        table.sweep(5);
        assert!(table.try_hold(index, key("T1")).is_none());
        assert_eq!(
            table.slots[index].users.load(SeqCst),
            0,
            "a failed hold let go"
        );
    }
}
