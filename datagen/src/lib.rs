//! Deterministic synthetic data shaped like a US wholesale carrier's: NPAs spread over
//! states and LATAs, NPA-NXX codes with pooled thousands blocks, rate centres with
//! local calling areas, ported numbers, a DNO list, LRN / OCN-LATA / DNIS /
//! international vendors with rate decks (some with scheduled rate changes), customers
//! with rate plans, trunks, partitions, time windows, overrides and exclusions.
//!
//! The same `(scale, seed)` always yields the same dataset (ChaCha8 is stable).

use chrono::{DateTime, TimeZone, Utc};
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use warp_core::model::*;
use warp_core::number::{Number, Prefix};
use warp_core::rating::Increments;
use warp_core::schedule::{Schedule, WeeklyWindow};
use warp_core::zone::Zone;

mod npas;

/// How much data to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub npas: usize,
    /// Share of NXX codes (of 800 per NPA) in service, in percent.
    pub nxx_density: u32,
    /// Share of NPA-NXX codes split into thousands blocks, in percent.
    pub pooled: u32,
    pub lnp: usize,
    pub dno: usize,
    pub lrn_vendors: usize,
    pub ocn_lata_vendors: usize,
    pub dnis_vendors: usize,
    pub intl_vendors: usize,
    /// NPA-NXX rows in each LRN vendor's deck.
    pub rows_per_lrn_vendor: usize,
    pub customers: usize,
    pub plans: usize,
}

impl Scale {
    /// For tests and the demo: a few thousand rows, everything exercised.
    pub const SMALL: Scale = Scale {
        npas: 12,
        nxx_density: 10,
        pooled: 10,
        lnp: 1_000,
        dno: 1_000,
        lrn_vendors: 3,
        ocn_lata_vendors: 1,
        dnis_vendors: 1,
        intl_vendors: 2,
        rows_per_lrn_vendor: 800,
        customers: 10,
        plans: 2,
    };

    /// Production-sized: ≈300k LERG blocks, 1M LNP, 1M DNO, 50 vendors with ≈1M rate
    /// rows, 1k customers.
    pub const LARGE: Scale = Scale {
        // All 304 listed: a larger number took no more, and the scale misstated itself.
        npas: npas::US_NPAS.len(),
        nxx_density: 86,
        pooled: 5,
        lnp: 1_000_000,
        dno: 1_000_000,
        lrn_vendors: 30,
        ocn_lata_vendors: 8,
        dnis_vendors: 4,
        intl_vendors: 8,
        rows_per_lrn_vendor: 30_000,
        customers: 1_000,
        plans: 20,
    };

    pub fn by_name(name: &str) -> Option<Scale> {
        match name {
            "small" => Some(Scale::SMALL),
            "large" => Some(Scale::LARGE),
            _ => None,
        }
    }
}

/// Country codes with a realistic spread of international destinations.
const COUNTRIES: [&str; 24] = [
    "44", "33", "49", "39", "34", "52", "55", "91", "86", "81", "61", "63", "234", "254", "27",
    "20", "971", "966", "92", "880", "62", "84", "57", "58",
];

/// Rate-centre rate centres per NPA.
const RATE_CENTERS_PER_NPA: u32 = 20;

fn money(rng: &mut ChaCha8Rng, lo_micros: i64, hi_micros: i64) -> Decimal {
    // Four to six decimals, as real decks carry.
    Decimal::new(rng.gen_range(lo_micros..=hi_micros), 6).normalize()
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .expect("valid date")
}

struct Gen {
    rng: ChaCha8Rng,
    scale: Scale,
    d: Dataset,
    /// All NPA-NXX codes in service, with their OCN and LATA.
    codes: Vec<(u32, String, u32)>,
}

/// Builds a dataset for `scale` from `seed`.
pub fn generate(scale: Scale, seed: u64) -> Dataset {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        scale,
        d: Dataset::default(),
        codes: Vec::new(),
    };
    g.lerg();
    g.numbers();
    g.vendors();
    g.customers();
    g.d
}

impl Gen {
    fn lerg(&mut self) {
        let ocns: Vec<String> = (0..500)
            .map(|i| format!("{:04}", 1000 + i * 17 % 9000))
            .collect();
        let mut latas: HashMap<&str, u32> = HashMap::new();
        for &(npa, state) in npas::US_NPAS.iter().take(self.scale.npas) {
            // One LATA per state and NPA pair's neighbourhood: new NPAs of a state share
            // its LATA numbering (3-digit, as in the LERG).
            let next = 100 + latas.len() as u32 * 12;
            let lata = *latas.entry(state).or_insert(next) + (npa as u32 % 3) * 2;
            let mut in_service = HashSet::new();
            for nxx in 200u32..1000 {
                if nxx % 100 == 11 || self.rng.gen_range(0..100) >= self.scale.nxx_density {
                    continue;
                }
                let npa_nxx = npa as u32 * 1000 + nxx;
                let ocn = ocns[self.rng.gen_range(0..ocns.len())].clone();
                let rc = format!("RC{npa}-{:02}", nxx % RATE_CENTERS_PER_NPA);
                in_service.insert(nxx % RATE_CENTERS_PER_NPA);
                self.codes.push((npa_nxx, ocn.clone(), lata));
                self.d.lerg.push(LergBlock {
                    npa_nxx,
                    block: None,
                    ocn: ocn.clone(),
                    lata,
                    state: state.into(),
                    rate_center: rc.clone(),
                });
                if self.rng.gen_range(0..100) < self.scale.pooled {
                    // Number pooling: blocks of one code held by other carriers.
                    for block in 0..10u8 {
                        let ocn = ocns[self.rng.gen_range(0..ocns.len())].clone();
                        self.d.lerg.push(LergBlock {
                            npa_nxx,
                            block: Some(block),
                            ocn,
                            lata,
                            state: state.into(),
                            rate_center: rc.clone(),
                        });
                    }
                }
            }
            // Neighbouring rate centres of one NPA call each other locally, when both
            // have a code: the snapshot refuses a pair naming one the LERG lacks.
            for r in 0..RATE_CENTERS_PER_NPA - 1 {
                if r % 2 == 0 && in_service.contains(&r) && in_service.contains(&(r + 1)) {
                    self.d.local_calling.push(LocalPair {
                        a: rate_center_key(state, &format!("RC{npa}-{r:02}")),
                        b: rate_center_key(state, &format!("RC{npa}-{:02}", r + 1)),
                    });
                }
            }
        }
    }

    fn random_number(&mut self) -> Number {
        let (code, _, _) = &self.codes[self.rng.gen_range(0..self.codes.len())];
        let line = self.rng.gen_range(0..10_000u64);
        Number::from_value(10_000_000_000 + *code as u64 * 10_000 + line).expect("11 digits")
    }

    fn numbers(&mut self) {
        let mut seen = HashSet::with_capacity(self.scale.lnp);
        while self.d.lnp.len() < self.scale.lnp {
            let n = self.random_number();
            if !seen.insert(n) {
                continue;
            }
            // Ported to another switch: the LRN is the new switch's NPA-NXX + 0000.
            let (to, _, _) = &self.codes[self.rng.gen_range(0..self.codes.len())];
            let lrn = Number::from_value(10_000_000_000 + *to as u64 * 10_000).expect("11 digits");
            self.d.lnp.push((n, lrn));
        }
        let mut dno = HashSet::with_capacity(self.scale.dno);
        while dno.len() < self.scale.dno {
            let n = self.random_number();
            if dno.insert(n) {
                self.d.dno.push(n);
            }
        }
    }

    fn rate_row(
        &mut self,
        owner: &str,
        key: RateKey,
        rates: [Option<Decimal>; 6],
        incr: Increments,
    ) -> RateRow {
        RateRow {
            owner: owner.into(),
            key,
            effective_from: at(2025, 1, 1),
            effective_to: None,
            rates,
            increments: incr,
            connect_fee: Decimal::ZERO,
            minimum_charge: Decimal::ZERO,
        }
    }

    /// Domestic rates: interstate, intrastate, local, plus zone1 and toll-free where given.
    fn domestic(&mut self) -> [Option<Decimal>; 6] {
        let inter = money(&mut self.rng, 2_500, 9_000);
        let intra = money(&mut self.rng, 2_000, 10_000);
        let local = money(&mut self.rng, 1_000, 6_000);
        [Some(inter), Some(intra), Some(local), None, None, None]
    }

    /// Pushes a row, and now and then a scheduled rate change of it.
    fn push_vendor_row(&mut self, mut row: RateRow) {
        if self.rng.gen_range(0..100) < 5 {
            let change = at(2026, 6, 1);
            let mut next = row.clone();
            next.effective_from = change;
            for r in next.rates.iter_mut().flatten() {
                *r = (*r * Decimal::new(9, 1)).round_dp(6).normalize();
            }
            row.effective_to = Some(change);
            self.d.vendor_rates.push(row);
            self.d.vendor_rates.push(next);
        } else {
            self.d.vendor_rates.push(row);
        }
    }

    fn vendors(&mut self) {
        let s = self.scale;
        let kinds = std::iter::repeat_n(VendorKind::Lrn, s.lrn_vendors)
            .chain(std::iter::repeat_n(VendorKind::OcnLata, s.ocn_lata_vendors))
            .chain(std::iter::repeat_n(VendorKind::Dnis, s.dnis_vendors))
            .chain(std::iter::repeat_n(
                VendorKind::International,
                s.intl_vendors,
            ));
        let six = Increments::new(6, 6).expect("valid");
        let per_second = Increments::PER_SECOND;
        let sixty = Increments::new(60, 60).expect("valid");
        for (i, kind) in kinds.enumerate() {
            let id = format!("V{:03}", i + 1);
            let host = format!("gw{}.vendor{:03}.example", 1, i + 1);
            self.d.vendors.push(Vendor {
                id: id.clone(),
                name: format!("Vendor {:03} {}", i + 1, kind.as_str()),
                kind,
                priority: self.rng.gen_range(1..10),
                indeterminate_zone: if i % 3 == 0 {
                    Zone::Interstate
                } else {
                    Zone::Intrastate
                },
                gateways: vec![
                    format!("sip:+{{number}}@{host}:5060"),
                    format!("sip:{{national}}@gw2.vendor{:03}.example:5060", i + 1),
                ],
                enabled: true,
                keepalive: true,
            });
            match kind {
                VendorKind::Lrn => {
                    let n = s.rows_per_lrn_vendor.min(self.codes.len());
                    let picks: Vec<u32> = self
                        .codes
                        .choose_multiple(&mut self.rng, n)
                        .map(|c| c.0)
                        .collect();
                    for code in picks {
                        let prefix = Prefix::parse(&format!("1{code}")).expect("digits");
                        let rates = self.domestic();
                        let row = self.rate_row(&id, RateKey::Prefix(prefix), rates, six);
                        self.push_vendor_row(row);
                    }
                    // A catch-all NANP row, dearer, so every domestic call has a price.
                    let mut rates = self.domestic();
                    for r in rates.iter_mut().flatten() {
                        *r += Decimal::new(4, 3);
                    }
                    rates[Zone::Zone1 as usize] = Some(money(&mut self.rng, 10_000, 30_000));
                    let row = self.rate_row(
                        &id,
                        RateKey::Prefix(Prefix::parse("1").expect("digit")),
                        rates,
                        six,
                    );
                    self.d.vendor_rates.push(row);
                }
                VendorKind::OcnLata => {
                    let mut pairs: Vec<(String, u32)> =
                        self.codes.iter().map(|c| (c.1.clone(), c.2)).collect();
                    pairs.sort();
                    pairs.dedup();
                    let n = (s.rows_per_lrn_vendor / 3).min(pairs.len());
                    for (ocn, lata) in pairs
                        .choose_multiple(&mut self.rng, n)
                        .cloned()
                        .collect::<Vec<_>>()
                    {
                        let rates = self.domestic();
                        let row =
                            self.rate_row(&id, RateKey::OcnLata { ocn, lata }, rates, per_second);
                        self.push_vendor_row(row);
                    }
                }
                VendorKind::Dnis => {
                    let npas: Vec<u32> = {
                        let mut v: Vec<u32> = self.codes.iter().map(|c| c.0 / 1000).collect();
                        v.dedup();
                        v
                    };
                    for npa in npas {
                        let mut rates = self.domestic();
                        rates[Zone::TollFree as usize] = Some(money(&mut self.rng, 500, 1_500));
                        let row = self.rate_row(
                            &id,
                            RateKey::Prefix(Prefix::parse(&format!("1{npa}")).expect("digits")),
                            rates,
                            six,
                        );
                        self.push_vendor_row(row);
                    }
                    for tf in ["1800", "1833", "1844", "1855", "1866", "1877", "1888"] {
                        let rate = money(&mut self.rng, 500, 1_500);
                        let row = self.rate_row(
                            &id,
                            RateKey::Prefix(Prefix::parse(tf).expect("digits")),
                            [None, None, None, None, Some(rate), None],
                            six,
                        );
                        self.d.vendor_rates.push(row);
                    }
                }
                VendorKind::International => {
                    for cc in COUNTRIES {
                        let base = self.rng.gen_range(5_000..150_000);
                        let rate = money(&mut self.rng, base, base + 5_000);
                        let row = self.rate_row(
                            &id,
                            RateKey::Prefix(Prefix::parse(cc).expect("digits")),
                            [None, None, None, None, None, Some(rate)],
                            sixty,
                        );
                        self.push_vendor_row(row);
                        // Mobile ranges cost more.
                        for m in 0..3 {
                            let p = Prefix::parse(&format!("{cc}{}", 7 + m % 3)).expect("digits");
                            let rate = money(&mut self.rng, base * 2, base * 2 + 20_000);
                            let row = self.rate_row(
                                &id,
                                RateKey::Prefix(p),
                                [None, None, None, None, None, Some(rate)],
                                sixty,
                            );
                            self.d.vendor_rates.push(row);
                        }
                    }
                }
            }
        }
    }

    fn customers(&mut self) {
        let s = self.scale;
        let per_second = Increments::PER_SECOND;
        for p in 0..s.plans {
            let plan = format!("PLAN{:02}", p + 1);
            let markup = Decimal::new(p as i64, 3);
            let nanp = [
                Some(Decimal::new(12, 3) + markup),
                Some(Decimal::new(14, 3) + markup),
                Some(Decimal::new(9, 3) + markup),
                Some(Decimal::new(35, 3) + markup),
                Some(Decimal::new(25, 4) + markup),
                None,
            ];
            let row = self.rate_row(
                &plan,
                RateKey::Prefix(Prefix::parse("1").expect("digit")),
                nanp,
                per_second,
            );
            self.d.customer_rates.push(row);
            for cc in COUNTRIES {
                let rate = money(&mut self.rng, 400_000, 500_000);
                let row = self.rate_row(
                    &plan,
                    RateKey::Prefix(Prefix::parse(cc).expect("digits")),
                    [None, None, None, None, None, Some(rate)],
                    per_second,
                );
                self.d.customer_rates.push(row);
            }
        }
        let vendor_ids: Vec<String> = self.d.vendors.iter().map(|v| v.id.clone()).collect();
        let intl: Vec<String> = self
            .d
            .vendors
            .iter()
            .filter(|v| v.kind == VendorKind::International)
            .map(|v| v.id.clone())
            .collect();
        self.d.partitions = vec![
            Partition {
                id: "PREMIUM".into(),
                name: "All vendors".into(),
                vendors: vendor_ids.clone(),
            },
            Partition {
                id: "STANDARD".into(),
                name: "Domestic value routes".into(),
                vendors: vendor_ids.iter().step_by(2).cloned().collect(),
            },
            Partition {
                id: "INTL".into(),
                name: "International".into(),
                vendors: intl,
            },
        ];
        for c in 0..s.customers {
            let ban = format!("{}", 100_001 + c);
            self.d.customers.push(Customer {
                ban: ban.clone(),
                name: format!("Customer {ban}"),
                rate_plan: format!("PLAN{:02}", c % s.plans + 1),
                min_margin: Decimal::new(5, 4),
                rate_limit: None,
                max_results: 5,
                enabled: true,
            });
            // The first customer's trunk is this host, so the lab can send it calls.
            let ip = if c == 0 {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V4(Ipv4Addr::from(0x6440_0000u32 + c as u32)) // 100.64.0.0/10
            };
            // Each way a trunk proves itself; the lab's own trunk by its address alone.
            let auth = TrunkAuth::from_index((c % 3) as u8).unwrap_or_default();
            let credentials = auth
                .checks_credentials()
                .then(|| Credential {
                    username: format!("trunk{ban}"),
                    realm: String::new(),
                    ha1: None,
                })
                .into_iter()
                .collect();
            self.d.trunks.push(Trunk {
                id: format!("T{ban}"),
                ban: ban.clone(),
                acl: vec![IpNet { addr: ip, len: 32 }],
                credentials,
                auth,
                max_concurrent: 100 + (c as u32 % 10) * 50,
                max_cps: 10 + c as u32 % 20,
                enabled: true,
                keepalive: true,
            });
            let business_hours = Schedule {
                from: None,
                to: None,
                window: Some(WeeklyWindow {
                    tz: chrono_tz::America::New_York,
                    days: 0b001_1111,
                    start: 8 * 60,
                    end: 18 * 60,
                }),
            };
            let (first, second) = if c % 2 == 0 {
                ("STANDARD", "PREMIUM")
            } else {
                ("PREMIUM", "INTL")
            };
            self.d.customer_partitions.push(CustomerPartition {
                ban: ban.clone(),
                partition: first.into(),
                priority: 1,
                schedule: if c % 4 == 0 {
                    business_hours
                } else {
                    Schedule::default()
                },
            });
            self.d.customer_partitions.push(CustomerPartition {
                ban: ban.clone(),
                partition: second.into(),
                priority: 2,
                schedule: Schedule::default(),
            });
        }
        let first_ban = self.d.customers[0].ban.clone();
        self.d.overrides.push(Override {
            ban: Some(first_ban.clone()),
            prefix: Prefix::parse("44").expect("digits"),
            vendor: self
                .d
                .vendors
                .iter()
                .rev()
                .find(|v| v.kind == VendorKind::International)
                .map(|v| v.id.clone())
                .unwrap_or_default(),
            schedule: Schedule::default(),
        });
        // Premium-rate and a high-fraud destination blocked for everyone.
        self.d.exclusions.push(Exclusion {
            ban: None,
            vendor: None,
            prefix: Prefix::parse("1900").expect("digits"),
        });
        self.d.exclusions.push(Exclusion {
            ban: Some(first_ban),
            vendor: None,
            prefix: Prefix::parse("234").expect("digits"),
        });
        self.d.exclusions.push(Exclusion {
            ban: None,
            vendor: Some(self.d.vendors[0].id.clone()),
            prefix: Prefix::parse("1212").expect("digits"),
        });
    }
}

/// Sample calls over the dataset (ban, ani, dnis), for the demo and benchmarks: a mix of
/// local, intra/interstate, ported, DNO, toll-free, Canadian and international calls.
pub fn sample_calls(d: &Dataset, n: usize, seed: u64) -> Vec<(String, String, String)> {
    sample_call_stream(d, seed).take(n).collect()
}

/// The calls of [`sample_calls`], endless and made one at a time: a file of any length
/// is written without holding it all.
pub fn sample_call_stream(
    d: &Dataset,
    seed: u64,
) -> impl Iterator<Item = (String, String, String)> + '_ {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let lerg: Vec<u32> = d
        .lerg
        .iter()
        .filter(|b| b.block.is_none())
        .map(|b| b.npa_nxx)
        .collect();
    let nanp = move |rng: &mut ChaCha8Rng| {
        format!(
            "+1{}{:04}",
            lerg[rng.gen_range(0..lerg.len())],
            rng.gen_range(0..10_000)
        )
    };
    (0usize..).map(move |i| {
        let ban = d.customers[rng.gen_range(0..d.customers.len())].ban.clone();
        // The ANI's case and the DNIS's must not coincide: with `1` here, every unknown
        // caller dialled toll-free, and no sample reached the indeterminate policy.
        let ani = match i % 20 {
            0 if !d.dno.is_empty() => format!("+{}", d.dno[rng.gen_range(0..d.dno.len())]),
            5 => "anonymous".into(),
            _ => nanp(&mut rng),
        };
        let dnis = match i % 10 {
            0 if !d.lnp.is_empty() => format!("+{}", d.lnp[rng.gen_range(0..d.lnp.len())].0),
            1 => format!("+1800{:07}", rng.gen_range(2_000_000..10_000_000)),
            2 => format!("+1416{:07}", rng.gen_range(2_000_000..10_000_000)),
            3 => format!(
                "011{}{:08}",
                COUNTRIES[rng.gen_range(0..COUNTRIES.len())],
                rng.gen_range(0..100_000_000)
            ),
            _ => nanp(&mut rng),
        };
        (ban, ani, dnis)
    })
}
