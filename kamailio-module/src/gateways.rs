//! Vendor gateways that stopped answering. A gateway that let `gateway_silences`
//! attempts in a row go unanswered (not even a 100 Trying before tm's timer ran out) is
//! tried last, after every other gateway of the call, for `gateway_down_time` seconds:
//! as lcr skips its defunct gateways, so that a dead vendor costs each call a timeout
//! (the 2 s the shipped config gives a vendor to answer) only while it is learnt.
//! Last, not left out: a call whose every other gateway fails still tries it. When the
//! time is up it takes its place again, and one more silence puts it back last at once;
//! any reply from it (an answer, or a failure a failover follows) starts the count
//! again. Kept per node, in shared memory, for all the node's processes.
//!
//! While a gateway is last, the timer process asks it every `gateway_probe_interval`
//! seconds whether it is back (an OPTIONS to the dialstring of its last unanswered
//! attempt, as dispatcher probes): any reply puts it back in its place before its time
//! is up, so no call has to find out; on probation, as when its time is up: an SBC may
//! answer OPTIONS with nothing behind it, so one more silence puts it last again.
//!
//! A gateway is its dialstring's host part (`host:port`, from after the `@` to the
//! parameters), whichever vendor or dialled number it serves; an emergency call's
//! destinations are gateways too, put last the same way ([`last_of`]).

use crate::clock;
use crate::guard;
use crate::log::{lm_info, lm_warn};
use crate::params;
use crate::shm::{self, Text};
use crate::timer;
use crate::tm;
use std::ffi::{c_uint, c_void};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Once;
use warp_core::Decision;

/// Gateways remembered (those that were silent once; one that answers again gives its
/// place up to a new one when all are taken).
const SLOTS: usize = 256;
/// The longest gateway name `warp.gateways` shows (longer ones are kept cut).
const NAME_MAX: usize = 64;
/// The attempts a call can have put last: as many as a mask has bits.
const POSITIONS: usize = 64;
/// The longest dialstring a gateway is probed at (one longer is not probed).
const PROBE_MAX: usize = 256;

#[repr(C)]
struct Slot {
    /// The gateway's hash; 0: free.
    key: AtomicU64,
    name: Text<NAME_MAX>,
    /// The dialstring of its last unanswered attempt, probed while it is last.
    probe: Text<PROBE_MAX>,
    /// Unanswered attempts in a row.
    silences: AtomicU32,
    /// Unix ms until which the gateway is tried last (0: in its place).
    down_until: AtomicI64,
}

#[repr(C)]
struct Table {
    /// The latest `down_until` of any slot: a call routed after it reads no slot.
    any_down_until: AtomicI64,
    marked_down: AtomicU64,
    slots: [Slot; SLOTS],
}

static TABLE: shm::Block<Table> = shm::Block::new();

/// Allocates the table unless `gateway_silences` is 0; `mod_init` only.
pub fn init() -> Result<(), String> {
    if params::config().gateway_silences == 0 {
        return Ok(());
    }
    let slots = std::array::from_fn(|_| Slot {
        key: AtomicU64::new(0),
        name: Text::new("").expect("an empty name fits"),
        probe: Text::new("").expect("an empty dialstring fits"),
        silences: AtomicU32::new(0),
        down_until: AtomicI64::new(0),
    });
    TABLE
        .alloc(Table {
            any_down_until: AtomicI64::new(0),
            marked_down: AtomicU64::new(0),
            slots,
        })
        .map(drop)
}

/// Frees the table; `destroy` only.
pub fn destroy() {
    TABLE.free();
}

/// The gateway a dialstring (or its template) sends to: its host part.
pub fn gateway_of(uri: &str) -> &str {
    let uri = uri.trim_start_matches('<');
    let rest = uri.split_once(':').map_or(uri, |(_, rest)| rest);
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    host.split([';', '?', '>']).next().unwrap_or(host)
}

fn key_of(gateway: &str) -> u64 {
    // FNV-1a; 0 marks a free slot.
    let hash = gateway.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash.max(1)
}

/// Where `key` lives, claiming a slot for it when `claim` (open addressing): a free
/// one, else, with every slot taken, one whose gateway answers again (no silence, not
/// last): forgetting it loses nothing, and with no free slot left no lookup stops
/// early, so taking one over breaks no other key's probe.
fn slot<'t>(table: &'t Table, key: u64, claim: bool, gateway: &str) -> Option<&'t Slot> {
    let start = (key % SLOTS as u64) as usize;
    let mut answering = None;
    for i in 0..SLOTS {
        let slot = &table.slots[(start + i) % SLOTS];
        match slot.key.load(Relaxed) {
            k if k == key => return Some(slot),
            0 if claim => match take(slot, 0, key, gateway) {
                Ok(slot) => return Some(slot),
                Err(k) if k == key => return Some(slot),
                Err(_) => continue,
            },
            0 => return None,
            k if answering.is_none() && slot.silences.load(Relaxed) == 0 => {
                answering = Some((slot, k));
            }
            _ => continue,
        }
    }
    if !claim {
        return None;
    }
    let now = clock::now_ms();
    let (slot, old) = answering.filter(|(slot, _)| slot.down_until.load(Relaxed) <= now)?;
    take(slot, old, key, gateway).ok()
}

/// `slot`, holding `old`, for `key` now, named `gateway`; else the key it holds.
fn take<'t>(slot: &'t Slot, old: u64, key: u64, gateway: &str) -> Result<&'t Slot, u64> {
    slot.key.compare_exchange(old, key, Relaxed, Relaxed)?;
    slot.silences.store(0, Relaxed);
    slot.down_until.store(0, Relaxed);
    let mut cut = gateway.len().min(NAME_MAX);
    while !gateway.is_char_boundary(cut) {
        cut -= 1;
    }
    let _ = slot.name.set(&gateway[..cut]);
    Ok(slot)
}

/// The table, `uri`'s gateway and its slot (claimed for it if `claim`), if tracked.
fn tracked(uri: &str, claim: bool) -> Option<(&'static Table, &str, &'static Slot)> {
    let table = TABLE.get()?;
    let gateway = gateway_of(uri);
    let slot = slot(table, key_of(gateway), claim, gateway)?;
    Some((table, gateway, slot))
}

/// An attempt sent to `uri` got no reply at all before tm gave up on it.
pub fn silent(uri: &str) {
    let Some((table, gateway, slot)) = tracked(uri, true) else {
        if TABLE.get().is_some() {
            static FULL: Once = Once::new();
            FULL.call_once(|| {
                lm_warn!("{SLOTS} gateways silent at once: later ones are not put last")
            });
        }
        return;
    };
    let config = params::config();
    // Too long to probe: it comes back when its time is up.
    let _ = slot
        .probe
        .set(if uri.len() <= PROBE_MAX { uri } else { "" });
    let silences = slot.silences.fetch_add(1, Relaxed).saturating_add(1);
    if silences < config.gateway_silences {
        return;
    }
    let now = clock::now_ms();
    let until = now.saturating_add(config.gateway_down_time.as_millis() as i64);
    if slot.down_until.swap(until, Relaxed) <= now {
        table.marked_down.fetch_add(1, Relaxed);
        lm_warn!(
            "gateway {gateway}: {silences} attempts in a row unanswered, tried last for {} s",
            config.gateway_down_time.as_secs()
        );
    }
    table.any_down_until.fetch_max(until, Relaxed);
}

/// `uri`'s gateway replied to an attempt: in its place again, its count started over.
pub fn heard(uri: &str) {
    if let Some((_, gateway, slot)) = tracked(uri, false) {
        back(slot, gateway, 0);
    }
}

/// `slot`'s gateway answered: in its place again, its count of silences `silences`.
fn back(slot: &Slot, gateway: &str, silences: u32) {
    if slot.silences.swap(silences, Relaxed) == 0 {
        return;
    }
    if slot.down_until.swap(0, Relaxed) > clock::now_ms() {
        lm_info!("gateway {gateway} answers again: back in its place");
    }
}

/// Has the timer process probe the gateways put last every `seconds`; `mod_init` only.
pub fn schedule_probes(seconds: u32) -> Result<(), String> {
    if seconds == 0 || TABLE.get().is_none() {
        return Ok(());
    }
    timer::every(seconds, probe_tick, "gateway_probe_interval")
}

unsafe extern "C" fn probe_tick(_ticks: c_uint, _param: *mut c_void) {
    guard::entry("gateway probes", (), probe_all);
}

/// Sends an OPTIONS to every gateway put last, with its slot's index and key as the
/// cookie [`probed`] gets back.
fn probe_all() {
    let Some(table) = TABLE.get() else {
        return;
    };
    let now = clock::now_ms();
    for (i, slot) in table.slots.iter().enumerate() {
        let key = slot.key.load(Relaxed);
        if key == 0 || slot.down_until.load(Relaxed) <= now {
            continue;
        }
        let uri = slot.probe.get();
        if uri.is_empty() {
            continue;
        }
        if let Err(e) = tm::options(&uri, cookie(key, i)) {
            lm_warn!("gateway {}: {e}", slot.name.get());
        }
    }
}

/// A probe's cookie: the slot's index in the low byte, its key's other bits above.
fn cookie(key: u64, index: usize) -> usize {
    ((key as usize) & !0xff) | index
}

/// A probe sent with `cookie` was answered (`heard`), or tm gave up on it.
pub fn probed(cookie: usize, heard: bool) {
    let Some(slot) = TABLE.get().and_then(|t| t.slots.get(cookie & 0xff)) else {
        return;
    };
    // The slot may have gone to another gateway since. Back on probation: an SBC can
    // answer OPTIONS with nothing behind it, so its next silence puts it last again,
    // as after its time is up; a call's reply clears it.
    if heard && self::cookie(slot.key.load(Relaxed), cookie & 0xff) == cookie {
        let probation = params::config().gateway_silences.saturating_sub(1);
        back(slot, &slot.name.get(), probation);
    }
}

/// The attempts of `d` (numbered from 0 in its order, vendor by vendor, each vendor's
/// gateways in turn) whose gateway is to be tried last at `now` (Unix ms), as a mask.
pub fn put_last(d: &Decision<'_>, now: i64) -> u64 {
    let templates = d
        .routes
        .iter()
        .flat_map(|r| (0..r.dialstrings.len()).map(|i| r.dialstrings.template(i)));
    last_of(templates.map(Option::unwrap_or_default), now)
}

/// The dialstrings (or templates) of `uris` (numbered from 0 in their order) whose
/// gateway is to be tried last at `now` (Unix ms), as a mask: [`put_last`] for
/// attempts no decision made (an emergency call's destinations).
pub fn last_of<U: AsRef<str>>(uris: impl IntoIterator<Item = U>, now: i64) -> u64 {
    let Some(table) = TABLE.get() else {
        return 0;
    };
    if now >= table.any_down_until.load(Relaxed) {
        return 0;
    }
    let mut mask = 0;
    for (position, uri) in uris.into_iter().take(POSITIONS).enumerate() {
        let gateway = gateway_of(uri.as_ref());
        let down = slot(table, key_of(gateway), false, gateway)
            .is_some_and(|s| s.down_until.load(Relaxed) > now);
        if down {
            mask |= 1 << position;
        }
    }
    mask
}

/// Whether the attempt at `position` (from 0) goes last by `mask` ([`put_last`],
/// [`last_of`]): those come after all the others, each group in its own order.
#[inline]
pub fn goes_last(mask: u64, position: u32) -> bool {
    mask.checked_shr(position).is_some_and(|m| m & 1 == 1)
}

/// (name, value) counters for `warp.stats`: gateways put last since the start, and
/// those last now.
pub fn counts() -> Vec<(&'static str, u64)> {
    let Some(table) = TABLE.get() else {
        return Vec::new();
    };
    let now = clock::now_ms();
    let last = table
        .slots
        .iter()
        .filter(|s| s.key.load(Relaxed) != 0 && s.down_until.load(Relaxed) > now)
        .count();
    vec![
        ("put_last", table.marked_down.load(Relaxed)),
        ("last", last as u64),
    ]
}

/// One known gateway for `warp.gateways`.
pub struct Row {
    pub gateway: String,
    pub silences: u32,
    /// ms it is still tried last for (0: in its place).
    pub last_for_ms: i64,
}

/// Every gateway that was ever silent, and how many times gateways were put last.
pub fn rows() -> (Vec<Row>, u64) {
    let Some(table) = TABLE.get() else {
        return (Vec::new(), 0);
    };
    let now = clock::now_ms();
    let rows = table
        .slots
        .iter()
        .filter(|s| s.key.load(Relaxed) != 0)
        .map(|s| Row {
            gateway: s.name.get(),
            silences: s.silences.load(Relaxed),
            last_for_ms: (s.down_until.load(Relaxed) - now).max(0),
        })
        .collect();
    (rows, table.marked_down.load(Relaxed))
}

#[cfg(test)]
mod tests {
    use super::{gateway_of, key_of, slot, Slot, Table, SLOTS};
    use crate::shm::Text;
    use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

    fn table() -> Box<Table> {
        Box::new(Table {
            any_down_until: AtomicI64::new(0),
            marked_down: AtomicU64::new(0),
            slots: std::array::from_fn(|_| Slot {
                key: AtomicU64::new(0),
                name: Text::new("").unwrap(),
                probe: Text::new("").unwrap(),
                silences: AtomicU32::new(0),
                down_until: AtomicI64::new(0),
            }),
        })
    }

    #[test]
    fn a_full_table_gives_a_gateway_that_answers_again_up_to_a_silent_one() {
        let table = table();
        let gateways: Vec<String> = (0..SLOTS).map(|i| format!("10.0.{i}.1:5060")).collect();
        for g in &gateways {
            let s = slot(&table, key_of(g), true, g).expect("a free slot");
            s.silences.store(1, Relaxed);
        }
        // Every slot taken: found again, each where it went.
        for g in &gateways {
            let s = slot(&table, key_of(g), false, g).expect("known");
            assert_eq!(s.name.get(), *g);
        }
        // One answers again; a new silent gateway takes its place, and the others stay.
        let answering = &gateways[77];
        slot(&table, key_of(answering), false, answering)
            .unwrap()
            .silences
            .store(0, Relaxed);
        let new = "192.0.2.9:5060";
        let s = slot(&table, key_of(new), true, new).expect("the answering one's slot");
        assert_eq!((s.name.get().as_str(), s.silences.load(Relaxed)), (new, 0));
        assert!(slot(&table, key_of(answering), false, answering).is_none());
        for g in gateways.iter().filter(|g| *g != answering) {
            assert!(slot(&table, key_of(g), false, g).is_some(), "{g}");
        }
    }

    #[test]
    fn a_gateway_is_the_dialstrings_host_part() {
        for (uri, gateway) in [
            ("sip:+12125550123@10.0.0.1:5060", "10.0.0.1:5060"),
            (
                "sip:{number}@gw.vendor.example;transport=tcp",
                "gw.vendor.example",
            ),
            (
                "<sip:1{national}@[2001:db8::1]:5080?X-A=b>",
                "[2001:db8::1]:5080",
            ),
            ("sip:10.0.0.2", "10.0.0.2"),
            ("sips:user:pw@gw:5061;lr", "gw:5061"),
        ] {
            assert_eq!(gateway_of(uri), gateway, "{uri}");
        }
    }
}
