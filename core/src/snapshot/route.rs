//! Least-cost routing over an open snapshot: the decision every entry point makes
//! (Kamailio, Lua, Jasmin, the API's simulation and `warp route`).

use super::decision::*;
use super::flatmap;
use super::records::*;
use super::Snapshot;
use crate::model::VendorKind;
use crate::money::Amount;
use crate::number::{Number, POW10};
use crate::schedule::{LocalMinute, WeeklyWindow};
use crate::zone::{classify, Zone};
use chrono::{DateTime, Utc};
use std::cell::RefCell;

/// Per-thread scratch indexed by rate owner, so pricing is O(candidates), not O(vendors).
#[derive(Default)]
struct Scratch {
    /// Per owner: which numbers it is priced by (`BY_*` bits); 0 = not wanted.
    want: Vec<u8>,
    /// Per owner: the row that prices it, or `NONE`.
    row: Vec<u32>,
    touched: Vec<u32>,
    /// This call's candidate vendors, kept between calls to spare the allocations.
    cands: Vec<Candidate>,
    /// The candidates with a rate within the limit, with their sort keys.
    priced: Vec<Priced>,
    /// Bit set over vendor indices: the vendors this call has already considered.
    seen: Vec<u64>,
    local: LocalMemo,
}

/// A priced candidate: `order` sorts routes (forced first, then rate, vendor priority
/// and vendor index, which makes keys unique and the order deterministic).
struct Priced {
    order: (bool, i64, i32, u32),
    cand: u32,
    row: u32,
    zone: Zone,
}

const BY_LRN: u8 = 1;
const BY_DNIS: u8 = 2;
const BY_OCN_LATA: u8 = 4;

impl Scratch {
    fn reset(&mut self, owners: usize) {
        for &o in &self.touched {
            self.want[o as usize] = 0;
            self.row[o as usize] = NONE;
        }
        self.touched.clear();
        self.cands.clear();
        self.priced.clear();
        if self.want.len() != owners {
            self.want = vec![0; owners];
            self.row = vec![NONE; owners];
        }
    }

    fn mark(&mut self, owner: u32, by: u8) {
        if let Some(w) = self.want.get_mut(owner as usize) {
            if *w == 0 {
                self.touched.push(owner);
            }
            *w |= by;
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

struct Candidate {
    vendor: u32,
    partition: u32,
    forced: bool,
}

/// The last conversion of a moment to a zone's local time, kept from call to call: the
/// calls of one second share it, and the zone's rules cost more than the rest of a
/// schedule check. Keyed by the zone itself, not its index, which is per snapshot.
type LocalMemo = Option<(chrono_tz::Tz, i64, LocalMinute)>;

impl ScheduleRec {
    /// Whether it applies at `at` (`t`: its Unix second).
    fn applies(
        &self,
        t: i64,
        at: DateTime<Utc>,
        tzs: &[chrono_tz::Tz],
        memo: &mut LocalMemo,
    ) -> bool {
        if t < self.from || t >= self.to {
            return false;
        }
        if self.tz == NONE {
            return true;
        }
        let Some(&tz) = tzs.get(self.tz as usize) else {
            return false;
        };
        let local = match *memo {
            Some((z, second, local)) if z == tz && second == t => local,
            _ => {
                let local = LocalMinute::of(tz, at);
                *memo = Some((tz, t, local));
                local
            }
        };
        WeeklyWindow {
            tz,
            days: self.days as u8,
            start: self.start as u16,
            end: self.end as u16,
        }
        .contains_local(local)
    }
}

/// Leaves the best `keep` entries of `v`, in order. A call keeps a handful of routes
/// out of tens of candidates: most are refused with one comparison against the worst
/// kept, where sorting them all cost more than the rest of the ordering.
fn keep_best(v: &mut Vec<Priced>, keep: usize) {
    let keep = keep.min(v.len());
    for i in 1..v.len() {
        let mut j = if i < keep {
            i
        } else if v[i].order < v[keep - 1].order {
            v.swap(i, keep - 1);
            keep - 1
        } else {
            continue;
        };
        while j > 0 && v[j - 1].order > v[j].order {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
    v.truncate(keep);
}

fn prefix_matches(value: u64, len: u32, n: Number) -> bool {
    len as usize <= n.len() && n.prefix_value(len as usize) == value
}

impl Snapshot {
    /// The refusals [`Snapshot::route`] makes whatever the dialled number's LRN: an
    /// unknown or disabled customer, a dialled number that is none, a DNO'd caller, a
    /// blocked destination. A caller about to pay for an LRN (an upstream dip) asks
    /// first.
    pub fn screen(&self, ban: &str, ani: Option<&str>, dnis: &str) -> Result<(), Reject> {
        let ci = self
            .customer_index(ban)
            .ok_or_else(|| Reject::UnknownCustomer(ban.to_string()))?;
        let cust = &self.customers()[ci];
        if cust.enabled == 0 {
            return Err(Reject::CustomerDisabled(ban.to_string()));
        }
        let dnis = Number::parse(dnis)?;
        if ani
            .and_then(|a| Number::parse(a).ok())
            .is_some_and(|a| self.is_dno(a))
        {
            return Err(Reject::DnoAni);
        }
        if self.exclusions_for(cust, dnis).any(|x| x.vendor == NONE) {
            return Err(Reject::ExcludedDestination);
        }
        Ok(())
    }

    /// The global and the customer's exclusions that match `dnis`.
    fn exclusions_for<'s>(
        &'s self,
        cust: &'s CustomerRec,
        dnis: Number,
    ) -> impl Iterator<Item = &'s ExclusionRec> {
        let global = self.meta.global_exclusions.get(self.exclusions());
        global
            .iter()
            .chain(cust.exclusions.get(self.exclusions()))
            .filter(move |x| prefix_matches(x.prefix, x.prefix_len, dnis))
    }

    /// Routes one call: DNO, exclusions, LRN, jurisdiction, candidates, pricing, limit,
    /// ordering (rate, then vendor priority, then vendor id).
    pub fn route(&self, req: &RouteRequest) -> Result<Decision<'_>, Reject> {
        let dnis = Number::parse(req.dnis);
        let ani = req.ani.and_then(|a| Number::parse(a).ok());
        if let Ok(d) = dnis {
            self.prefetch_number_facts(ani, d);
        }
        let ci = self
            .customer_index(req.ban)
            .ok_or_else(|| Reject::UnknownCustomer(req.ban.to_string()))?;
        let cust = &self.customers()[ci];
        if cust.enabled == 0 {
            return Err(Reject::CustomerDisabled(req.ban.to_string()));
        }
        let dnis = dnis?;
        // The exclusions that match this destination, found once: a destination block
        // refuses the call (after the DNO check, below), vendor ones leave their vendor
        // out.
        let mut excluded_vendors: Vec<u32> = Vec::new();
        let mut destination_excluded = false;
        for x in self.exclusions_for(cust, dnis) {
            if x.vendor == NONE {
                destination_excluded = true;
                break;
            }
            excluded_vendors.push(x.vendor);
        }

        let t = req.at.timestamp();
        let vendors = self.vendors();
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let sc: &mut Scratch = &mut guard;
            sc.reset(vendors.len() + self.plans().len());

            // An active override (longest prefix wins, customer's before global) goes first.
            let forced = cust
                .overrides
                .get(self.overrides())
                .iter()
                .chain(self.meta.global_overrides.get(self.overrides()))
                .filter(|o| {
                    prefix_matches(o.prefix, o.prefix_len, dnis)
                        && o.schedule.applies(t, req.at, &self.tzs, &mut sc.local)
                })
                .fold(None::<&OverrideRec>, |best, o| match best {
                    Some(b) if b.prefix_len >= o.prefix_len => Some(b),
                    _ => Some(o),
                });
            // An override forces its vendor first, but not past an exclusion of it.
            if let Some(o) = forced.filter(|o| {
                vendors
                    .get(o.vendor as usize)
                    .is_some_and(|v| v.enabled != 0)
                    && !excluded_vendors.contains(&o.vendor)
            }) {
                sc.mark(o.vendor, 0x80);
                sc.cands.push(Candidate {
                    vendor: o.vendor,
                    partition: NONE,
                    forced: true,
                });
            }
            // Vendors already placed (the forced one) or left out (excluded) are `seen`;
            // each vendor is credited to the first applicable partition that has it.
            sc.seen.clear();
            sc.seen.resize(vendors.len().div_ceil(64), 0);
            for &v in sc.cands.iter().map(|c| &c.vendor).chain(&excluded_vendors) {
                if let Some(w) = sc.seen.get_mut(v as usize / 64) {
                    *w |= 1 << (v % 64);
                }
            }
            for cp in cust.partitions.get(self.customer_partitions()) {
                if !cp.schedule.applies(t, req.at, &self.tzs, &mut sc.local) {
                    continue;
                }
                let Some(p) = self.partitions().get(cp.partition as usize) else {
                    continue;
                };
                for (w, &bits) in p.vendors.get(self.partition_vendors()).iter().enumerate() {
                    let Some(seen) = sc.seen.get_mut(w) else {
                        break;
                    };
                    let mut new = bits & !*seen;
                    *seen |= bits;
                    while new != 0 {
                        let v = (w * 64) as u32 + new.trailing_zeros();
                        new &= new - 1;
                        if vendors.get(v as usize).is_some_and(|r| r.enabled != 0) {
                            sc.mark(v, 0x80);
                            sc.cands.push(Candidate {
                                vendor: v,
                                partition: cp.partition,
                                forced: false,
                            });
                        }
                    }
                }
            }
            // Which number prices each candidate (0x80 above only reserved the slot).
            for c in &sc.cands {
                let by = match VendorKind::from_index(vendors[c.vendor as usize].kind as u8) {
                    Some(VendorKind::Lrn) => BY_LRN,
                    Some(VendorKind::OcnLata) => BY_OCN_LATA,
                    _ => BY_DNIS,
                };
                sc.want[c.vendor as usize] = by;
            }
            sc.mark(cust.plan, BY_DNIS);

            // The candidates above did not need the LNP answer: its probe's miss (and the
            // DNO and LERG ones, prefetched with it) had that long to arrive.
            let (lrn, lrn_source) = match (dnis.is_nanp(), self.lnp(dnis), req.lrn) {
                (true, Some(l), _) => (l, LrnSource::Snapshot),
                (true, None, Some(l)) if l.is_nanp() => (l, LrnSource::Supplied),
                _ => (dnis, LrnSource::Dnis),
            };
            if lrn != dnis {
                self.prefetch_pricing(lrn);
            }
            let terminating = if dnis.is_nanp() {
                self.lerg_lookup(lrn)
            } else {
                None
            };
            let originating = ani.and_then(|a| self.lerg_lookup(a));
            // Whether the two rate centres are local is needed only once pricing is done.
            if let (Some(t), Some(o)) = (terminating, originating) {
                self.prefetch_local(t.rate_center, o.rate_center);
            }
            if ani.is_some_and(|a| self.is_dno(a)) {
                return Err(Reject::DnoAni);
            }
            if destination_excluded {
                return Err(Reject::ExcludedDestination);
            }

            if lrn == dnis {
                self.price_by_prefix(sc, dnis, BY_DNIS | BY_LRN, t);
            } else {
                self.price_by_prefix(sc, dnis, BY_DNIS, t);
                self.price_by_prefix(sc, lrn, BY_LRN, t);
            }
            if let Some(l) = terminating {
                self.take_rows(sc, l.ocn_lata_rows, BY_OCN_LATA, t);
            }
            let jurisdiction = classify(
                ani,
                dnis,
                terminating.map(|l| l.place()),
                originating.map(|l| l.place()),
                |a, b| self.is_local(a, b),
            );

            let customer_zone = jurisdiction.resolve(Zone::Intrastate);
            let (sell, _) = self
                .rate_of(sc, cust.plan, customer_zone)
                .ok_or(Reject::NoSellRate)?;
            let limit = if cust.rate_limit != NO_AMOUNT {
                cust.rate_limit
            } else {
                sell.saturating_sub(cust.min_margin)
            };

            for (i, c) in sc.cands.iter().enumerate() {
                let v = &vendors[c.vendor as usize];
                let zone = jurisdiction.resolve(
                    Zone::from_index(v.indeterminate_zone as u8).unwrap_or(Zone::Intrastate),
                );
                let Some((rate, row)) = self.rate_of(sc, c.vendor, zone) else {
                    continue;
                };
                if c.forced || rate <= limit {
                    sc.priced.push(Priced {
                        order: (!c.forced, rate, v.priority, c.vendor),
                        cand: i as u32,
                        row,
                        zone,
                    });
                }
            }
            let max = req.max_results.unwrap_or(cust.max_results).max(1) as usize;
            let priced = &mut sc.priced;
            keep_best(priced, max);
            if priced.is_empty() {
                return Err(Reject::NoRoute);
            }
            let customer_rate = Amount(sell);
            let rows = self.rate_rows();
            let routes = priced
                .iter()
                .map(|p| {
                    let c = &sc.cands[p.cand as usize];
                    let (rate, row, zone) = (p.order.1, &rows[p.row as usize], p.zone);
                    let v = &vendors[c.vendor as usize];
                    Route {
                        vendor_id: self.str(v.id),
                        vendor_name: self.str(v.name),
                        partition: self
                            .partitions()
                            .get(c.partition as usize)
                            .map(|p| self.str(p.id)),
                        forced: c.forced,
                        zone,
                        vendor_rate: Amount(rate),
                        customer_rate,
                        margin: Amount(sell.saturating_sub(rate)),
                        increments: (row.initial, row.subsequent),
                        connect_fee: Amount(row.connect_fee),
                        dialstrings: Dialstrings {
                            templates: v.gateways.get(self.gateways()),
                            snapshot: self,
                            number: Dialled { number: dnis, lrn },
                        },
                    }
                })
                .collect();
            Ok(Decision {
                generation: self.generation(),
                ban: self.str(cust.ban),
                ani,
                dnis,
                lrn,
                lrn_source,
                jurisdiction,
                terminating,
                originating,
                customer_rate,
                customer_zone,
                rate_limit: Amount(limit),
                routes,
            })
        })
    }

    /// The DNO, LNP and LERG lookups of a call do not depend on each other: start them
    /// all before the first one is needed.
    fn prefetch_number_facts(&self, ani: Option<Number>, dnis: Number) {
        if let Some(a) = ani {
            flatmap::prefetch(self.dno_set(), a.value());
            if let Some(code) = a.npa_nxx() {
                flatmap::prefetch(self.lerg_map(), lerg_key(code, 6));
            }
        }
        if dnis.is_nanp() {
            flatmap::prefetch(self.lnp_map(), dnis.value());
        }
        self.prefetch_pricing(dnis);
    }

    /// What pricing by `n` will read: its LERG code and its prefix-map probes.
    fn prefetch_pricing(&self, n: Number) {
        if let Some(code) = n.npa_nxx() {
            flatmap::prefetch(self.lerg_map(), lerg_key(code, 6));
        }
        for key in self.prefix_keys(n) {
            flatmap::prefetch(self.prefix_map(), key);
        }
    }

    /// The rate (nanos) an owner's found row has in `zone`, and that row's index.
    fn rate_of(&self, sc: &Scratch, owner: u32, zone: Zone) -> Option<(i64, u32)> {
        let index = *sc.row.get(owner as usize)?;
        let rate = self.rate_rows().get(index as usize)?.rates[zone as usize];
        (rate != NO_AMOUNT).then_some((rate, index))
    }

    /// Longest-prefix match of `n` for every owner wanting `by`, in one walk over the
    /// prefix lengths present in the snapshot (longest first). Its probes were
    /// prefetched by `prefetch_pricing` when `n` became known; the rows of every prefix
    /// found are prefetched before the first is read, so their misses overlap.
    fn price_by_prefix(&self, sc: &mut Scratch, n: Number, by: u8, t: i64) {
        // A number has at most 15 digits, so at most 15 prefixes.
        let mut ranges = [0u64; 16];
        let mut found = 0;
        for key in self.prefix_keys(n) {
            if let Some(range) = flatmap::get(self.prefix_map(), key) {
                let (start, len) = ((range >> 32) as usize, (range & 0xffff_ffff) as usize);
                // take_rows reads every owner of the range (16 to a line) before any row.
                let owners = self.row_owners();
                for at in (start..start.saturating_add(len)).step_by(16).take(8) {
                    if let Some(owner) = owners.get(at) {
                        flatmap::prefetch_ref(owner);
                    }
                }
                if let Some(row) = self.rate_rows().get(start) {
                    flatmap::prefetch_ref(row);
                }
                if let Some(slot) = ranges.get_mut(found) {
                    *slot = range;
                    found += 1;
                }
            }
        }
        for &range in &ranges[..found] {
            self.take_rows(sc, range, by, t);
        }
    }

    /// The prefix-map keys of `n`'s prefixes, longest first, for the prefix lengths
    /// some rate row under its leading digits has.
    fn prefix_keys(&self, n: Number) -> impl Iterator<Item = u64> {
        let lengths = match n.len() {
            0 | 1 => self.meta.prefix_lengths,
            len => {
                let lead = (n.value() / POW10[len - 2]) as usize;
                self.meta
                    .prefix_lengths_by_lead
                    .get(lead)
                    .copied()
                    .unwrap_or(0)
            }
        };
        (1..=n.len())
            .rev()
            .filter(move |len| lengths & (1 << len) != 0)
            .map(move |len| ((len as u64) << 58) | (n.value() / POW10[n.len() - len]))
    }

    /// Gives each wanting, still unpriced owner its newest row effective at `t`
    /// (rows are ordered by owner, newest first).
    fn take_rows(&self, sc: &mut Scratch, range: u64, by: u8, t: i64) {
        let (start, len) = ((range >> 32) as usize, (range & 0xffff_ffff) as usize);
        let end = start.saturating_add(len);
        let owners = self.row_owners().get(start..end).unwrap_or(&[]);
        let rows = self.rate_rows();
        for (row, &owner) in (start..end).zip(owners) {
            let o = owner as usize;
            // Decide on the owner before touching the row: most rows under a short
            // prefix belong to vendors and plans this call does not use.
            if sc.want.get(o).is_none_or(|w| w & by == 0) || sc.row[o] != NONE {
                continue;
            }
            let Some(r) = rows.get(row).filter(|r| r.from <= t && t < r.to) else {
                continue;
            };
            sc.row[o] = row as u32;
            // Pricing reads one of its rates later; they often sit on the next line.
            flatmap::prefetch_ref(&r.rates[0]);
            flatmap::prefetch_ref(&r.rates[r.rates.len() - 1]);
        }
    }
}
