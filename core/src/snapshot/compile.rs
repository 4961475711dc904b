//! Compiling a [`Dataset`] into snapshot bytes, and publishing them atomically.

use super::flatmap;
use super::format::*;
use super::records::*;
use crate::model::*;
use crate::money::{to_nanos, MoneyError};
use crate::schedule::Schedule;
use bytemuck::Pod;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{what}: {source}")]
    Money { what: String, source: MoneyError },
    #[error("{0}")]
    Invalid(String),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn nanos(what: impl Fn() -> String, d: rust_decimal::Decimal) -> Result<i64, CompileError> {
    to_nanos(d).map_err(|source| CompileError::Money {
        what: what(),
        source,
    })
}

#[derive(Default)]
struct Strings {
    bytes: Vec<u8>,
    seen: HashMap<String, StrRef>,
}

impl Strings {
    fn add(&mut self, s: &str) -> StrRef {
        if let Some(r) = self.seen.get(s) {
            return *r;
        }
        let r = StrRef {
            off: self.bytes.len() as u32,
            len: s.len() as u32,
        };
        self.bytes.extend_from_slice(s.as_bytes());
        self.seen.insert(s.to_string(), r);
        r
    }
}

struct Writer {
    sections: Vec<(SectionId, u32, Vec<u8>)>,
}

impl Writer {
    fn put<T: Pod>(&mut self, id: SectionId, items: &[T]) {
        self.sections.push((
            id,
            std::mem::size_of::<T>() as u32,
            bytemuck::cast_slice(items).to_vec(),
        ));
    }

    fn finish(self, generation: u64, created_unix: i64) -> Vec<u8> {
        let table_end = HEADER_LEN + ENTRY_LEN * self.sections.len();
        let mut offset = pad_to_align(table_end);
        let mut table = Vec::with_capacity(self.sections.len());
        for (id, elem_size, data) in &self.sections {
            table.push(SectionEntry {
                id: *id as u32,
                elem_size: *elem_size,
                offset: offset as u64,
                len: data.len() as u64,
            });
            offset = pad_to_align(offset + data.len());
        }
        let mut out = vec![0u8; offset];
        for (entry, (_, _, data)) in table.iter().zip(&self.sections) {
            let o = entry.offset as usize;
            out[o..o + data.len()].copy_from_slice(data);
        }
        let table_bytes = bytemuck::cast_slice::<SectionEntry, u8>(&table).to_vec();
        out[HEADER_LEN..table_end].copy_from_slice(&table_bytes);
        let mut header = Header {
            magic: MAGIC,
            version: FORMAT_VERSION,
            section_count: table.len() as u32,
            generation,
            created_unix,
            file_len: out.len() as u64,
            payload_hash: payload_hash(&out[table_end..]),
            header_hash: 0,
            _reserved: 0,
        };
        header.header_hash = header_hash(&header, &table_bytes);
        out[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&header));
        out
    }
}

/// `t` in Unix seconds, as the snapshot keeps times: one with a fraction of a second is
/// refused, or the snapshot would switch at another instant than the dataset (and
/// every other reader of it) says.
fn whole_seconds(t: DateTime<Utc>, what: impl Fn() -> String) -> Result<i64, CompileError> {
    if t.timestamp_subsec_nanos() != 0 {
        return Err(invalid(format!(
            "{}: {t} has a fraction of a second (times are whole seconds)",
            what()
        )));
    }
    Ok(t.timestamp())
}

fn schedule_rec(
    s: &Schedule,
    tzs: &mut Vec<String>,
    strings: &mut Strings,
    what: impl Fn() -> String,
) -> Result<ScheduleRec, CompileError> {
    let (tz, days, start, end) = match s.window {
        Some(w) => {
            let name = w.tz.name().to_string();
            let idx = tzs.iter().position(|t| *t == name).unwrap_or_else(|| {
                strings.add(&name);
                tzs.push(name);
                tzs.len() - 1
            });
            (idx as u32, w.days as u32, w.start as u32, w.end as u32)
        }
        None => (NONE, 0, 0, 0),
    };
    Ok(ScheduleRec {
        from: s.from.map_or(Ok(i64::MIN), |t| whole_seconds(t, &what))?,
        to: s.to.map_or(Ok(i64::MAX), |t| whole_seconds(t, &what))?,
        tz,
        days,
        start,
        end,
    })
}

/// `items` ordered by `key`: a dataset read from files or from the database lists its
/// rows in another order, and the same data must compile to the same payload.
fn sorted_by<'a, T, K: Ord>(items: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<&'a T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by_key(|a| key(a));
    sorted
}

fn index_of<'a>(ids: impl Iterator<Item = &'a str>) -> HashMap<&'a str, u32> {
    ids.enumerate().map(|(i, id)| (id, i as u32)).collect()
}

/// [`index_of`] for ids that must be unique: a repeat would leave every reference to
/// it pointing at the last one listed (and a lookup by it at either).
fn unique_index<'a>(
    what: &str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<&'a str, u32>, CompileError> {
    let mut index = HashMap::new();
    for (i, id) in ids.enumerate() {
        if index.insert(id, i as u32).is_some() {
            return Err(invalid(format!("{what} {id} is listed twice")));
        }
    }
    Ok(index)
}

fn rate_rec(row: &RateRow, owner: u32) -> Result<RateRec, CompileError> {
    let what = || {
        format!(
            "rate row {} {:?} from {}",
            row.owner, row.key, row.effective_from
        )
    };
    let mut rates = [NO_AMOUNT; 6];
    for (slot, r) in rates.iter_mut().zip(&row.rates) {
        if let Some(r) = r {
            *slot = nanos(what, *r)?;
        }
    }
    Ok(RateRec {
        owner,
        initial: row.increments.initial,
        subsequent: row.increments.subsequent,
        _pad: 0,
        from: whole_seconds(row.effective_from, what)?,
        to: row
            .effective_to
            .map_or(Ok(i64::MAX), |t| whole_seconds(t, what))?,
        connect_fee: nanos(what, row.connect_fee)?,
        minimum_charge: nanos(what, row.minimum_charge)?,
        rates,
    })
}

/// Compiles `d` into snapshot bytes with the given generation.
pub fn compile(d: &Dataset, generation: u64) -> Result<Vec<u8>, CompileError> {
    let mut c = Compiler {
        d,
        s: Strings::default(),
        tzs: Vec::new(),
        meta: bytemuck::Zeroable::zeroed(),
        w: Writer {
            sections: Vec::new(),
        },
        vendor_ix: HashMap::new(),
        plan_ix: HashMap::new(),
        part_ix: HashMap::new(),
        cust_ix: HashMap::new(),
        ocn_lata_rows: HashMap::new(),
    };
    check_names(d)?;
    c.vendors()?;
    c.rates()?;
    c.lerg()?;
    c.numbers()?;
    c.partitions()?;
    c.customers()?;
    c.trunks()?;
    Ok(c.finish(generation))
}

fn invalid(why: String) -> CompileError {
    CompileError::Invalid(why)
}

/// Ids and dialstrings as the model allows them ([`check_id`], [`check_dialstring`]),
/// whichever way the dataset was built.
fn check_names(d: &Dataset) -> Result<(), CompileError> {
    let ids = (d.customers.iter().map(|c| ("customer BAN", c.ban.as_str())))
        .chain(d.trunks.iter().map(|t| ("trunk_id", t.id.as_str())))
        .chain(d.vendors.iter().map(|v| ("vendor_id", v.id.as_str())))
        .chain(d.partitions.iter().map(|p| ("partition_id", p.id.as_str())));
    for (what, id) in ids {
        check_id(id).map_err(|e| invalid(format!("{what} {e}")))?;
    }
    for v in &d.vendors {
        for g in &v.gateways {
            check_dialstring(g).map_err(|e| invalid(format!("vendor {}: {e}", v.id)))?;
        }
    }
    Ok(())
}

/// One compilation: the string table, time zones and `Meta` fill up as each part of
/// the dataset is written out; the id → index maps let later parts refer to earlier ones.
struct Compiler<'d> {
    d: &'d Dataset,
    s: Strings,
    tzs: Vec<String>,
    meta: Meta,
    w: Writer,
    vendor_ix: HashMap<&'d str, u32>,
    plan_ix: HashMap<&'d str, u32>,
    part_ix: HashMap<&'d str, u32>,
    cust_ix: HashMap<&'d str, u32>,
    /// OCN/LATA key → its rows' range, kept inline in the LERG records it prices.
    ocn_lata_rows: HashMap<u64, u64>,
}

impl<'d> Compiler<'d> {
    /// Vendors sorted by id: index order is the final tie-break of route ordering.
    fn vendors(&mut self) -> Result<(), CompileError> {
        let vendors = sorted_by(&self.d.vendors, |v| &v.id);
        self.vendor_ix = unique_index("vendor", vendors.iter().map(|v| v.id.as_str()))?;
        let mut gateways = Vec::new();
        let recs: Vec<VendorRec> = vendors
            .iter()
            .map(|v| {
                let start = gateways.len() as u32;
                gateways.extend(v.gateways.iter().map(|g| self.s.add(g)));
                VendorRec {
                    id: self.s.add(&v.id),
                    name: self.s.add(&v.name),
                    kind: v.kind as u32,
                    indeterminate_zone: v.indeterminate_zone as u32,
                    priority: v.priority,
                    enabled: v.enabled as u32,
                    gateways: Range {
                        start,
                        len: v.gateways.len() as u32,
                    },
                    keepalive: v.keepalive.into(),
                    _pad: 0,
                }
            })
            .collect();
        self.meta.vendor_count = recs.len() as u32;
        self.w.put(SectionId::Vendors, &recs);
        self.w.put(SectionId::Gateways, &gateways);
        Ok(())
    }

    /// Vendor decks and customer rate plans, grouped by key (then owner, newest
    /// first) so the rows a call reads under one prefix are adjacent in memory.
    fn rates(&mut self) -> Result<(), CompileError> {
        let d = self.d;
        // Every customer's plan, rates or not: one without any yet (a customer set up
        // before its deck) refuses that customer's calls, not the whole snapshot.
        let mut plans: Vec<&str> = (d.customer_rates.iter().map(|r| r.owner.as_str()))
            .chain(d.customers.iter().map(|c| c.rate_plan.as_str()))
            .collect();
        plans.sort_unstable();
        plans.dedup();
        self.plan_ix = index_of(plans.iter().copied());
        let plan_recs: Vec<StrRef> = plans.iter().map(|p| self.s.add(p)).collect();

        let mut rows = Vec::with_capacity(d.vendor_rates.len() + d.customer_rates.len());
        let mut by_prefix: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut by_ocn_lata: HashMap<u64, Vec<u32>> = HashMap::new();
        let vendor_count = self.meta.vendor_count;
        let owners = d
            .vendor_rates
            .iter()
            .map(|r| (r, self.vendor_ix.get(r.owner.as_str()).copied()))
            .chain(d.customer_rates.iter().map(|r| {
                let plan = self.plan_ix.get(r.owner.as_str());
                (r, plan.map(|p| p + vendor_count))
            }));
        let meta = &mut self.meta;
        for (row, owner) in owners {
            let owner = owner
                .ok_or_else(|| invalid(format!("rate row for unknown owner {}", row.owner)))?;
            let id = rows.len() as u32;
            rows.push(rate_rec(row, owner)?);
            match &row.key {
                RateKey::Prefix(p) => {
                    meta.prefix_lengths |= 1 << p.len;
                    let leads = match p.len {
                        1 => (p.value * 10..p.value * 10 + 10).collect::<Vec<_>>(),
                        len => vec![p.value / crate::number::POW10[len as usize - 2]],
                    };
                    for lead in leads {
                        meta.prefix_lengths_by_lead[lead as usize] |= 1 << p.len;
                    }
                    by_prefix.entry(p.key()).or_default().push(id);
                }
                RateKey::OcnLata { ocn, lata } => {
                    let ocn = pack_ocn(ocn).ok_or_else(|| {
                        invalid(format!("OCN {ocn:?} is not 1-4 letters or digits"))
                    })?;
                    by_ocn_lata
                        .entry(ocn_lata_key(ocn, *lata))
                        .or_default()
                        .push(id);
                }
            }
        }
        meta.vendor_rate_rows = d.vendor_rates.len() as u64;
        meta.customer_rate_rows = d.customer_rates.len() as u64;
        // Owner indices back to their ids, for the overlap error.
        let mut owners = vec![""; vendor_count as usize + plans.len()];
        for (id, &i) in &self.vendor_ix {
            owners[i as usize] = id;
        }
        for (i, plan) in plans.iter().enumerate() {
            owners[vendor_count as usize + i] = plan;
        }
        let mut order: Vec<u32> = Vec::with_capacity(rows.len());
        let prefix_map =
            flatmap::build(group_rows(&rows, &owners, by_prefix, &mut order)?.into_iter());
        self.ocn_lata_rows = group_rows(&rows, &owners, by_ocn_lata, &mut order)?
            .into_iter()
            .collect();
        let rows: Vec<RateRec> = order.iter().map(|&i| rows[i as usize]).collect();
        let row_owners: Vec<u32> = rows.iter().map(|r| r.owner).collect();
        self.w.put(SectionId::Plans, &plan_recs);
        self.w.put(SectionId::RateRows, &rows);
        self.w.put(SectionId::PrefixMap, &prefix_map);
        self.w.put(SectionId::RowOwners, &row_owners);
        Ok(())
    }

    /// LERG codes and blocks, rate centres and the local calling table.
    fn lerg(&mut self) -> Result<(), CompileError> {
        let d = self.d;
        let mut rate_centers: Vec<StrRef> = Vec::new();
        let mut rc_ix: HashMap<String, u32> = HashMap::new();
        let mut rc = |key: String, s: &mut Strings| {
            *rc_ix.entry(key).or_insert_with_key(|k| {
                rate_centers.push(s.add(k));
                rate_centers.len() as u32 - 1
            })
        };
        let pooled: std::collections::HashSet<u32> = d
            .lerg
            .iter()
            .filter(|b| b.block.is_some())
            .map(|b| b.npa_nxx)
            .collect();
        let mut slots = Vec::with_capacity(d.lerg.len());
        // In key order: insertion order decides the hash table's layout and the rate
        // centres' numbering.
        for b in sorted_by(&d.lerg, |b| (b.npa_nxx, b.block)) {
            let ocn = pack_ocn(&b.ocn).ok_or_else(|| {
                invalid(format!(
                    "LERG {}: OCN {:?} is not 1-4 letters or digits",
                    b.npa_nxx, b.ocn
                ))
            })?;
            // Every code without a rate centre would share its state's empty key, and
            // calls between any two of them would be priced LOCAL.
            if b.rate_center.trim().is_empty() {
                return Err(invalid(format!(
                    "LERG {}{}: no rate centre",
                    b.npa_nxx,
                    b.block.map(|x| x.to_string()).unwrap_or_default()
                )));
            }
            let st = b.state.as_bytes();
            let key = match b.block {
                Some(x) => lerg_key(b.npa_nxx * 10 + x as u32, 7),
                None => lerg_key(b.npa_nxx, 6),
            };
            let rec = LergRec {
                ocn,
                lata: b.lata,
                state: [
                    st.first().copied().unwrap_or(b'?'),
                    st.get(1).copied().unwrap_or(b'?'),
                ],
                pooled: (b.block.is_none() && pooled.contains(&b.npa_nxx)) as u8,
                _pad: 0,
                rate_center: rc(rate_center_key(&b.state, &b.rate_center), &mut self.s),
            };
            let ocn_lata_rows = self
                .ocn_lata_rows
                .get(&ocn_lata_key(ocn, b.lata))
                .copied()
                .unwrap_or(0);
            slots.push(LergSlot {
                key,
                rec,
                ocn_lata_rows,
            });
        }
        // A pair naming a rate centre no LERG code has is a typo or a stale table: no
        // call is ever in it, and the pair it was meant to be is missing.
        let mut local_keys = Vec::with_capacity(d.local_calling.len());
        for p in &d.local_calling {
            let known = |key: &str| {
                rc_ix.get(key).copied().ok_or_else(|| {
                    invalid(format!(
                        "local calling pair {} - {}: rate centre {key} is in no LERG code",
                        p.a, p.b
                    ))
                })
            };
            let (a, b) = (known(&p.a)?, known(&p.b)?);
            local_keys.push((a.min(b) as u64) << 32 | a.max(b) as u64);
        }
        local_keys.sort_unstable();
        local_keys.dedup();
        self.w
            .put(SectionId::LergMap, &flatmap::build_slots(slots.into_iter()));
        self.w.put(SectionId::RateCenters, &rate_centers);
        let local = flatmap::build(local_keys.into_iter().map(|k| (k, 0)));
        self.w.put(SectionId::LocalSet, &local);
        Ok(())
    }

    /// The DNO set and the LNP table.
    fn numbers(&mut self) -> Result<(), CompileError> {
        let mut dno: Vec<u64> = self.d.dno.iter().map(|n| n.value()).collect();
        dno.sort_unstable();
        dno.dedup();
        let mut lnp: HashMap<u64, u64> = HashMap::with_capacity(self.d.lnp.len());
        for (n, l) in &self.d.lnp {
            if lnp
                .insert(n.value(), l.value())
                .is_some_and(|old| old != l.value())
            {
                return Err(invalid(format!(
                    "LNP: +{n} is ported to two different LRNs"
                )));
            }
        }
        let dno = flatmap::build(dno.into_iter().map(|k| (k, 0)));
        self.w.put(SectionId::DnoSet, &dno);
        // Inserted in number order: the table's layout then depends on the numbers only.
        let mut lnp: Vec<(u64, u64)> = lnp.into_iter().collect();
        lnp.sort_unstable();
        self.w
            .put(SectionId::LnpMap, &flatmap::build(lnp.into_iter()));
        Ok(())
    }

    /// Partitions sorted by id, as vendors are.
    fn partitions(&mut self) -> Result<(), CompileError> {
        let partitions = sorted_by(&self.d.partitions, |p| &p.id);
        self.part_ix = unique_index("partition", partitions.iter().map(|p| p.id.as_str()))?;
        // Each partition's vendors as a bit set over vendor indices: a call merges its
        // partitions a word at a time.
        let words = (self.meta.vendor_count as usize).div_ceil(64);
        let mut bits = vec![0u64; words * partitions.len()];
        let mut recs = Vec::with_capacity(partitions.len());
        for (i, p) in partitions.iter().enumerate() {
            for v in &p.vendors {
                let v = self
                    .vendor(v)
                    .map_err(|e| invalid(format!("partition {}: {e}", p.id)))?
                    as usize;
                bits[i * words + v / 64] |= 1 << (v % 64);
            }
            recs.push(PartitionRec {
                id: self.s.add(&p.id),
                name: self.s.add(&p.name),
                vendors: Range {
                    start: (i * words) as u32,
                    len: words as u32,
                },
            });
        }
        self.w.put(SectionId::Partitions, &recs);
        self.w.put(SectionId::PartitionVendors, &bits);
        Ok(())
    }

    fn vendor(&self, id: &str) -> Result<u32, CompileError> {
        self.vendor_ix
            .get(id)
            .copied()
            .ok_or_else(|| invalid(format!("unknown vendor {id}")))
    }

    /// The overrides and exclusions of one customer (`None`: the global ones), appended
    /// to the shared lists; returns their ranges.
    fn rules(
        &mut self,
        ban: Option<&str>,
        overrides: &mut Vec<OverrideRec>,
        exclusions: &mut Vec<ExclusionRec>,
    ) -> Result<(Range, Range), CompileError> {
        let d = self.d;
        let o_start = overrides.len() as u32;
        for o in d.overrides.iter().filter(|o| o.ban.as_deref() == ban) {
            overrides.push(OverrideRec {
                prefix: o.prefix.value,
                prefix_len: o.prefix.len as u32,
                vendor: self.vendor(&o.vendor)?,
                schedule: schedule_rec(&o.schedule, &mut self.tzs, &mut self.s, || {
                    format!("override {} -> {}", o.prefix, o.vendor)
                })?,
            });
        }
        let x_start = exclusions.len() as u32;
        for x in d.exclusions.iter().filter(|x| x.ban.as_deref() == ban) {
            exclusions.push(ExclusionRec {
                prefix: x.prefix.value,
                prefix_len: x.prefix.len as u32,
                vendor: match &x.vendor {
                    Some(v) => self.vendor(v)?,
                    None => NONE,
                },
            });
        }
        // Unlike overrides (the first of two equally long wins), their order decides
        // nothing: fixed, the same rules compile to the same bytes.
        exclusions[x_start as usize..].sort_unstable_by_key(|x| (x.prefix_len, x.prefix, x.vendor));
        Ok((
            Range {
                start: o_start,
                len: overrides.len() as u32 - o_start,
            },
            Range {
                start: x_start,
                len: exclusions.len() as u32 - x_start,
            },
        ))
    }

    /// Customers sorted by BAN, with their partitions, overrides and exclusions (global
    /// ones first).
    fn customers(&mut self) -> Result<(), CompileError> {
        let d = self.d;
        let customers = sorted_by(&d.customers, |c| &c.ban);
        self.cust_ix = unique_index("customer", customers.iter().map(|c| c.ban.as_str()))?;
        let (mut overrides, mut exclusions) = (Vec::new(), Vec::new());
        (self.meta.global_overrides, self.meta.global_exclusions) =
            self.rules(None, &mut overrides, &mut exclusions)?;
        let mut cparts: Vec<&CustomerPartition> = d.customer_partitions.iter().collect();
        cparts.sort_by_key(|c| (self.cust_ix.get(c.ban.as_str()).copied(), c.priority));
        let mut cpart_recs = Vec::with_capacity(cparts.len());
        let mut recs = Vec::with_capacity(customers.len());
        for c in &customers {
            let start = cpart_recs.len() as u32;
            for cp in cparts.iter().filter(|cp| cp.ban == c.ban) {
                cpart_recs.push(CustomerPartitionRec {
                    partition: *self.part_ix.get(cp.partition.as_str()).ok_or_else(|| {
                        invalid(format!(
                            "customer {}: unknown partition {}",
                            c.ban, cp.partition
                        ))
                    })?,
                    priority: cp.priority,
                    schedule: schedule_rec(&cp.schedule, &mut self.tzs, &mut self.s, || {
                        format!("customer {} partition {}", cp.ban, cp.partition)
                    })?,
                });
            }
            let (ovr, excl) = self.rules(Some(&c.ban), &mut overrides, &mut exclusions)?;
            let what = || format!("customer {}", c.ban);
            // `rates` indexed every customer's plan.
            let plan = self.plan_ix[c.rate_plan.as_str()];
            recs.push(CustomerRec {
                ban: self.s.add(&c.ban),
                name: self.s.add(&c.name),
                min_margin: nanos(what, c.min_margin)?,
                rate_limit: c
                    .rate_limit
                    .map(|r| nanos(what, r))
                    .transpose()?
                    .unwrap_or(NO_AMOUNT),
                plan: plan + self.meta.vendor_count,
                max_results: c.max_results,
                partitions: Range {
                    start,
                    len: cpart_recs.len() as u32 - start,
                },
                overrides: ovr,
                exclusions: excl,
                enabled: c.enabled as u32,
                _pad: 0,
            });
        }
        let map = flatmap::build(
            customers
                .iter()
                .enumerate()
                .map(|(i, c)| (flatmap::name_key(&c.ban), i as u64)),
        );
        self.w.put(SectionId::Customers, &recs);
        self.w.put(SectionId::CustomerMap, &map);
        self.assigned_numbers()?;
        self.w.put(SectionId::CustomerPartitions, &cpart_recs);
        self.w.put(SectionId::Overrides, &overrides);
        self.w.put(SectionId::Exclusions, &exclusions);
        Ok(())
    }

    /// The inventory's numbers assigned for voice, each to its customer's index: one
    /// number is one customer's (the database's key), so a number listed for two is
    /// refused rather than attested for either.
    fn assigned_numbers(&mut self) -> Result<(), CompileError> {
        let mut numbers = Vec::with_capacity(self.d.numbers.len());
        for n in &self.d.numbers {
            let customer = self.cust_ix.get(n.ban.as_str()).ok_or_else(|| {
                invalid(format!("number +{}: unknown customer {}", n.number, n.ban))
            })?;
            numbers.push((n.number.value(), u64::from(*customer)));
        }
        // In number order: the table's layout then depends on the numbers only.
        numbers.sort_unstable();
        numbers.dedup();
        if let Some(w) = numbers.windows(2).find(|w| w[0].0 == w[1].0) {
            // E.164 digits have no leading zero: the value is the number.
            return Err(invalid(format!(
                "number +{} is assigned to two customers",
                w[0].0
            )));
        }
        self.w.put(
            SectionId::CustomerNumbers,
            &flatmap::build(numbers.into_iter()),
        );
        Ok(())
    }

    /// Trunks sorted by id, and how calls find them: IP ACLs (v4 hashed per prefix
    /// length, v6 longest first) and SIP usernames. Only what a trunk's auth type
    /// checks goes in: a CREDENTIALS trunk's addresses, or an IP_ACL trunk's
    /// credentials, would let in a call its operator meant to keep out.
    fn trunks(&mut self) -> Result<(), CompileError> {
        let trunks = sorted_by(&self.d.trunks, |t| &t.id);
        unique_index("trunk", trunks.iter().map(|t| t.id.as_str()))?;
        let usernames = trunks.iter().flat_map(|t| &t.credentials);
        unique_index("trunk username", usernames.map(|c| c.username.as_str()))?;
        let mut recs = Vec::with_capacity(trunks.len());
        let mut acl4 = Vec::new();
        let mut acl6 = Vec::new();
        let mut creds = Vec::new();
        let mut cred_keys = Vec::new();
        for (ti, t) in trunks.iter().enumerate() {
            recs.push(TrunkRec {
                id: self.s.add(&t.id),
                customer: *self.cust_ix.get(t.ban.as_str()).ok_or_else(|| {
                    invalid(format!("trunk {}: unknown customer {}", t.id, t.ban))
                })?,
                max_concurrent: t.max_concurrent,
                max_cps: t.max_cps,
                enabled: t.enabled as u32,
                auth: t.auth as u32,
                keepalive_off: (!t.keepalive).into(),
            });
            let acl = if t.auth.checks_address() {
                &t.acl[..]
            } else {
                &[]
            };
            for net in acl.iter().map(|n| n.unmapped()) {
                match net.addr {
                    IpAddr::V4(a) => {
                        self.meta.acl4_lengths |= 1 << net.len;
                        acl4.push((acl4_key(u32::from(a), net.len as u32), ti as u64));
                    }
                    IpAddr::V6(a) => acl6.push(Acl6Rec {
                        addr: (u128::from(a) & IpNet::mask6(net.len.into())).to_be_bytes(),
                        len: net.len as u32,
                        trunk: ti as u32,
                    }),
                }
            }
            let credentials = if t.auth.checks_credentials() {
                &t.credentials[..]
            } else {
                &[]
            };
            for c in credentials {
                c.check()
                    .map_err(|e| invalid(format!("trunk {}: {e}", t.id)))?;
                cred_keys.push((flatmap::name_key(&c.username), creds.len() as u64));
                let ha1 = c.ha1.as_deref().unwrap_or("");
                creds.push(CredentialRec {
                    username: self.s.add(&c.username),
                    realm: self.s.add(if ha1.is_empty() { "" } else { &c.realm }),
                    ha1: self.s.add(ha1),
                    trunk: ti as u32,
                    _pad: 0,
                });
            }
        }
        acl4.sort_unstable();
        if let Some(w) = acl4.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(invalid(format!(
                "an IPv4 network is assigned to two trunks ({} and {})",
                trunks[w[0].1 as usize].id, trunks[w[1].1 as usize].id
            )));
        }
        acl6.sort_by_key(|a| (std::cmp::Reverse(a.len), a.addr));
        if let Some(w) = acl6
            .windows(2)
            .find(|w| (w[0].len, w[0].addr) == (w[1].len, w[1].addr))
        {
            return Err(invalid(format!(
                "an IPv6 network is assigned to two trunks ({} and {})",
                trunks[w[0].trunk as usize].id, trunks[w[1].trunk as usize].id
            )));
        }
        let cred_map = flatmap::build(cred_keys.into_iter());
        self.w.put(SectionId::Trunks, &recs);
        self.w
            .put(SectionId::Acl4Map, &flatmap::build(acl4.into_iter()));
        self.w.put(SectionId::Acl6, &acl6);
        self.w.put(SectionId::Credentials, &creds);
        self.w.put(SectionId::CredentialMap, &cred_map);
        Ok(())
    }

    /// The sections every part added to: time zones, strings and `Meta`, then the file.
    fn finish(mut self, generation: u64) -> Vec<u8> {
        let tz_refs: Vec<StrRef> = self.tzs.iter().map(|t| self.s.add(t)).collect();
        self.w.put(SectionId::TimeZones, &tz_refs);
        self.w.put(SectionId::Strings, &self.s.bytes);
        self.w.put(SectionId::Meta, &[self.meta]);
        self.w.finish(generation, chrono::Utc::now().timestamp())
    }
}

/// Orders each key's rows by owner, newest first, appending them to `order`; returns
/// the key → (start, len) map. Rows of one owner whose periods overlap are refused (the
/// rule the database import and the API keep, so a dataset from files meets it too).
/// Orders each key's rows (owner, then newest first) into `order` and returns each
/// key's `start << 32 | len` range in it.
fn group_rows(
    rows: &[RateRec],
    owners: &[&str],
    map: HashMap<u64, Vec<u32>>,
    order: &mut Vec<u32>,
) -> Result<Vec<(u64, u64)>, CompileError> {
    // By key, so the same rows always compile to the same bytes (a map's order is
    // random per process).
    let mut groups: Vec<(u64, Vec<u32>)> = map.into_iter().collect();
    groups.sort_unstable_by_key(|&(key, _)| key);
    let mut entries = Vec::with_capacity(groups.len());
    for (key, mut ids) in groups {
        ids.sort_unstable_by_key(|&i| {
            (
                rows[i as usize].owner,
                std::cmp::Reverse(rows[i as usize].from),
            )
        });
        // Newest first: an older row overlaps the next newer one when it ends after
        // that one starts.
        if let Some(w) = ids.windows(2).find(|w| {
            let (newer, older) = (&rows[w[0] as usize], &rows[w[1] as usize]);
            newer.owner == older.owner && older.to > newer.from
        }) {
            let (newer, older) = (&rows[w[0] as usize], &rows[w[1] as usize]);
            let when = |t: i64| {
                DateTime::<Utc>::from_timestamp(t, 0).map_or(t.to_string(), |t| t.to_rfc3339())
            };
            return Err(invalid(format!(
                "{}: the rate rows for one key from {} and from {} overlap in time",
                owners.get(newer.owner as usize).copied().unwrap_or("?"),
                when(older.from),
                when(newer.from)
            )));
        }
        entries.push((key, ((order.len() as u64) << 32) | ids.len() as u64));
        order.extend(ids);
    }
    Ok(entries)
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory. Readers see the old file or the new one, never a mix.
///
/// The temp file, `.NAME.XXXXXX.part` beside `path`, is locked while it is written; one
/// a killed publisher left behind (unlocked, a minute old) is removed by the next
/// publish to the same path, so crashes do not fill the disk with partial snapshots.
pub fn publish(bytes: &[u8], path: &Path) -> Result<(), CompileError> {
    let io = |source| CompileError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let prefix = format!(
        ".{}.",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    remove_abandoned(dir, &prefix);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(PART)
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.as_file().lock().map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    // Temp files are created 0600; Kamailio and the other readers often run as
    // another user than the publisher, in its group. Not for everyone: the file
    // carries the trunks' password hashes (ha1).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o640))
            .map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

const PART: &str = ".part";

/// Removes the temp files of publishes to this path whose publisher is gone: no lock
/// held on them, and older than a publisher takes to lock the file it just created.
/// Best effort: what cannot be read or removed stays, and the publish goes on.
fn remove_abandoned(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(prefix) && name.ends_with(PART)) {
            continue;
        }
        let Ok(file) = std::fs::File::open(entry.path()) else {
            continue;
        };
        let age = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if age.is_some_and(|a| a.as_secs() >= 60) && file.try_lock().is_ok() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
