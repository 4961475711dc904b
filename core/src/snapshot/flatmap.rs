//! An open-addressing hash table laid out flat in the snapshot: a power-of-two array of
//! `(key, value)` slots, linear probing, at most half full, so a hit or miss costs one
//! or two cache lines. Keys are never `EMPTY`.

use bytemuck::{Pod, Zeroable};

pub const EMPTY: u64 = u64::MAX;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Slot {
    pub key: u64,
    pub value: u64,
}

/// A slot type: a `u64` key first, then whatever the table keeps inline, so a hit
/// needs no second, dependent read.
pub trait Keyed: Pod {
    fn key(&self) -> u64;
    /// An unused slot (its key is `EMPTY`).
    fn vacant() -> Self;
}

impl Keyed for Slot {
    #[inline]
    fn key(&self) -> u64 {
        self.key
    }
    fn vacant() -> Self {
        Slot {
            key: EMPTY,
            value: 0,
        }
    }
}

/// splitmix64's finaliser: spreads sequential keys (phone numbers) evenly.
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Builds the slot array for `entries` (keys must be distinct and not `EMPTY`).
pub fn build_slots<S: Keyed>(entries: impl ExactSizeIterator<Item = S>) -> Vec<S> {
    let cap = (entries.len() * 2).next_power_of_two().max(2);
    let mask = cap as u64 - 1;
    let mut slots = vec![S::vacant(); cap];
    for entry in entries {
        debug_assert_ne!(entry.key(), EMPTY);
        let mut i = mix(entry.key()) & mask;
        while slots[i as usize].key() != EMPTY {
            i = (i + 1) & mask;
        }
        slots[i as usize] = entry;
    }
    slots
}

/// Builds a table of `(key, value)` pairs.
pub fn build(entries: impl ExactSizeIterator<Item = (u64, u64)>) -> Vec<Slot> {
    build_slots(entries.map(|(key, value)| Slot { key, value }))
}

/// Looks `key` up. A corrupt table (not a power of two, or full) is bounded, never loops.
#[inline]
pub fn find<S: Keyed>(slots: &[S], key: u64) -> Option<&S> {
    if !slots.len().is_power_of_two() {
        return None;
    }
    let mask = slots.len() as u64 - 1;
    let mut i = mix(key) & mask;
    for _ in 0..slots.len() {
        let s = &slots[i as usize];
        if s.key() == key {
            return Some(s);
        }
        if s.key() == EMPTY {
            return None;
        }
        i = (i + 1) & mask;
    }
    None
}

/// Starts loading the slot `key` hashes to, so that lookups known early overlap their
/// cache misses instead of paying them one after another.
#[inline]
pub fn prefetch<S: Keyed>(slots: &[S], key: u64) {
    if !slots.len().is_power_of_two() {
        return;
    }
    prefetch_ref(&slots[(mix(key) & (slots.len() as u64 - 1)) as usize]);
}

/// Starts loading the cache line `value` begins in.
#[inline]
pub fn prefetch_ref<T>(value: &T) {
    let at: *const T = value;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint, and the address is that of a live value.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// The value stored under `key`.
#[inline]
pub fn get(slots: &[Slot], key: u64) -> Option<u64> {
    find(slots, key).map(|s| s.value)
}

/// Every value stored under `key`, in probe order. A table keyed by a hash of a name
/// ([`name_key`]) holds one slot per name, and two names may share a hash: the caller
/// takes the value whose record carries the name it looks for.
#[inline]
pub fn get_all(slots: &[Slot], key: u64) -> impl Iterator<Item = u64> + '_ {
    // A corrupt table (not a power of two) holds nothing; a full one is walked once.
    let len = if slots.len().is_power_of_two() {
        slots.len()
    } else {
        0
    };
    let mask = (len as u64).wrapping_sub(1);
    let start = mix(key);
    (0..len as u64)
        .map(move |k| &slots[((start + k) & mask) as usize])
        .take_while(|s| s.key != EMPTY)
        .filter(move |s| s.key == key)
        .map(|s| s.value)
}

/// The key a name (a BAN, a SIP username) is stored under: its xxh3, never `EMPTY`.
#[inline]
pub fn name_key(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes()).min(EMPTY - 1)
}

/// How many slots hold a key.
pub fn count_keys<S: Keyed>(slots: &[S]) -> usize {
    slots.iter().filter(|s| s.key() != EMPTY).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_misses_others() {
        let slots = build((0..10_000u32).map(|k| (k as u64 * 7919, k as u64)));
        for k in 0..10_000u64 {
            assert_eq!(get(&slots, k * 7919), Some(k));
        }
        assert_eq!(get(&slots, 1), None);
        assert_eq!(get(&build(std::iter::empty()), 5), None);
    }

    #[test]
    fn every_value_under_a_shared_key_is_found() {
        let slots = build([(7, 1), (9, 3), (7, 2)].into_iter());
        assert_eq!(get_all(&slots, 7).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(get_all(&slots, 9).collect::<Vec<_>>(), [3]);
        assert_eq!(get_all(&slots, 8).count(), 0);
        let full = vec![Slot { key: 1, value: 1 }; 8];
        assert_eq!(get_all(&full, 1).count(), 8);
        assert_eq!(get_all(&full[..3], 1).count(), 0);
        assert_ne!(name_key("x"), EMPTY);
    }

    #[test]
    fn corrupt_tables_do_not_loop() {
        let full = vec![Slot { key: 1, value: 1 }; 8];
        assert_eq!(get(&full, 2), None);
        let odd = vec![
            Slot {
                key: EMPTY,
                value: 0
            };
            3
        ];
        assert_eq!(get(&odd, 2), None);
    }
}
