//! The compiled snapshot against a deliberately naive router written straight from
//! ARCHITECTURE.md over the in-memory dataset: linear scans, no indexes, no flat
//! layout. Both must make the same decision for every generated call.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;
use warp_core::model::{Dataset, RateKey, RateRow, VendorKind};
use warp_core::number::{Number, Prefix};
use warp_core::snapshot::{compile, Reject, RouteRequest, Snapshot};
use warp_core::zone::{classify, Place};
use warp_core::Zone;
use warp_datagen::{generate, sample_calls, Scale};

#[derive(Debug, PartialEq)]
enum Outcome {
    /// Vendor, rate, forced, and the partition the vendor is credited to.
    Routes(Vec<(String, Decimal, bool, Option<String>)>),
    Rejected(&'static str),
}

fn kind(r: &Reject) -> &'static str {
    match r {
        Reject::UnknownCustomer(_) => "unknown",
        Reject::CustomerDisabled(_) => "disabled",
        Reject::InvalidDnis(_) => "invalid",
        Reject::DnoAni => "dno",
        Reject::ExcludedDestination => "excluded",
        Reject::NoSellRate => "no_sell_rate",
        Reject::NoRoute => "no_route",
    }
}

fn matches(p: Prefix, n: Number) -> bool {
    p.matches(n)
}

/// The LERG row of a number: its thousands block if listed, else its NPA-NXX.
fn lerg(d: &Dataset, n: Number) -> Option<&warp_core::model::LergBlock> {
    let code = n.npa_nxx()?;
    let block = (n.npa_nxx_x()? % 10) as u8;
    d.lerg
        .iter()
        .find(|b| b.npa_nxx == code && b.block == Some(block))
        .or_else(|| {
            d.lerg
                .iter()
                .find(|b| b.npa_nxx == code && b.block.is_none())
        })
}

/// The row pricing `owner`: longest key that has a row effective at `at`, newest first.
fn price<'a>(
    rows: &'a [RateRow],
    owner: &str,
    n: Number,
    ocn_lata: Option<(&str, u32)>,
    by_ocn: bool,
    at: DateTime<Utc>,
) -> Option<&'a RateRow> {
    rows.iter()
        .filter(|r| r.owner == owner && r.effective_at(at))
        .filter(|r| match (&r.key, by_ocn) {
            (RateKey::Prefix(p), false) => matches(*p, n),
            (RateKey::OcnLata { ocn, lata }, true) => ocn_lata == Some((ocn.as_str(), *lata)),
            _ => false,
        })
        .max_by_key(|r| {
            (
                match &r.key {
                    RateKey::Prefix(p) => p.len,
                    _ => 0,
                },
                r.effective_from,
            )
        })
}

fn naive(d: &Dataset, ban: &str, ani: Option<&str>, dnis: &str, at: DateTime<Utc>) -> Outcome {
    let Some(c) = d.customers.iter().find(|c| c.ban == ban) else {
        return Outcome::Rejected("unknown");
    };
    if !c.enabled {
        return Outcome::Rejected("disabled");
    }
    let Ok(dnis) = Number::parse(dnis) else {
        return Outcome::Rejected("invalid");
    };
    let ani = ani.and_then(|a| Number::parse(a).ok());
    if ani.is_some_and(|a| d.dno.contains(&a)) {
        return Outcome::Rejected("dno");
    }
    let applies = |b: &Option<String>| b.as_deref().is_none_or(|b| b == ban);
    let mut excluded = Vec::new();
    for x in d
        .exclusions
        .iter()
        .filter(|x| applies(&x.ban) && matches(x.prefix, dnis))
    {
        match &x.vendor {
            None => return Outcome::Rejected("excluded"),
            Some(v) => excluded.push(v.clone()),
        }
    }
    let lrn = if dnis.is_nanp() {
        d.lnp
            .iter()
            .find(|(n, _)| *n == dnis)
            .map(|(_, l)| *l)
            .unwrap_or(dnis)
    } else {
        dnis
    };
    let mut rc_ids: HashMap<String, u32> = HashMap::new();
    let mut rc = |k: String| {
        let next = rc_ids.len() as u32;
        *rc_ids.entry(k).or_insert(next)
    };
    let mut place = |n: Number| {
        lerg(d, n).map(|b| Place {
            state: [b.state.as_bytes()[0], b.state.as_bytes()[1]],
            rate_center: rc(format!("{}/{}", b.state, b.rate_center)),
        })
    };
    let term = if dnis.is_nanp() { place(lrn) } else { None };
    let orig = ani.and_then(&mut place);
    let local: Vec<(u32, u32)> = d
        .local_calling
        .iter()
        .map(|p| (rc(p.a.clone()), rc(p.b.clone())))
        .collect();
    let j = classify(ani, dnis, term, orig, |a, b| {
        local
            .iter()
            .any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
    });

    // Candidates: partitions open now by priority, then their vendors in order.
    let mut parts: Vec<_> = d
        .customer_partitions
        .iter()
        .filter(|cp| cp.ban == ban && cp.schedule.applies(at))
        .collect();
    parts.sort_by_key(|cp| cp.priority);
    let vendor = |id: &str| d.vendors.iter().find(|v| v.id == id).unwrap();
    let mut cands: Vec<(String, bool, Option<String>)> = Vec::new();
    let forced = d
        .overrides
        .iter()
        .filter(|o| applies(&o.ban) && matches(o.prefix, dnis) && o.schedule.applies(at))
        .fold(None::<&warp_core::model::Override>, |best, o| match best {
            Some(b)
                if b.prefix.len > o.prefix.len
                    || (b.prefix.len == o.prefix.len && (b.ban.is_some() || o.ban.is_none())) =>
            {
                Some(b)
            }
            _ => Some(o),
        });
    // "Minus exclusions" (ARCHITECTURE.md): an excluded vendor is not forced either.
    if let Some(o) = forced.filter(|o| vendor(&o.vendor).enabled && !excluded.contains(&o.vendor)) {
        cands.push((o.vendor.clone(), true, None));
    }
    for cp in parts {
        let p = d.partitions.iter().find(|p| p.id == cp.partition).unwrap();
        for v in &p.vendors {
            if vendor(v).enabled && !cands.iter().any(|(c, ..)| c == v) && !excluded.contains(v) {
                cands.push((v.clone(), false, Some(p.id.clone())));
            }
        }
    }
    let term_lerg = if dnis.is_nanp() { lerg(d, lrn) } else { None };
    let ocn_lata = term_lerg.map(|b| (b.ocn.as_str(), b.lata));
    let customer_zone = j.resolve(Zone::Intrastate);
    let Some(sell) = price(&d.customer_rates, &c.rate_plan, dnis, None, false, at)
        .and_then(|r| r.rates[customer_zone as usize])
    else {
        return Outcome::Rejected("no_sell_rate");
    };
    let limit = c.rate_limit.unwrap_or(sell - c.min_margin);
    let mut priced: Vec<(bool, Decimal, i32, String, Option<String>)> = cands
        .into_iter()
        .filter_map(|(v, forced, partition)| {
            let vd = vendor(&v);
            let zone = j.resolve(vd.indeterminate_zone);
            let row = match vd.kind {
                VendorKind::Lrn => price(&d.vendor_rates, &v, lrn, None, false, at),
                VendorKind::OcnLata => price(&d.vendor_rates, &v, lrn, ocn_lata, true, at),
                VendorKind::Dnis | VendorKind::International => {
                    price(&d.vendor_rates, &v, dnis, None, false, at)
                }
            }?;
            let rate = row.rates[zone as usize]?;
            (forced || rate <= limit).then_some((forced, rate, vd.priority, v, partition))
        })
        .collect();
    priced.sort_by(|a, b| (!a.0, a.1, a.2, &a.3).cmp(&(!b.0, b.1, b.2, &b.3)));
    priced.truncate(c.max_results as usize);
    if priced.is_empty() {
        return Outcome::Rejected("no_route");
    }
    Outcome::Routes(
        priced
            .into_iter()
            .map(|(f, r, _, v, p)| (v, r.normalize(), f, p))
            .collect(),
    )
}

#[test]
fn snapshot_and_naive_router_agree_on_every_generated_call() {
    let times: Vec<DateTime<Utc>> = [
        "2026-03-04T15:00:00Z",
        "2026-03-04T23:30:00Z",
        "2026-03-07T16:00:00Z",
        "2026-07-01T14:00:00Z",
    ]
    .iter()
    .map(|t| t.parse().unwrap())
    .collect();
    let (mut routed, mut screened_out) = (0, 0);
    for seed in [1u64, 2, 3] {
        let d = generate(Scale::SMALL, seed);
        let snap = Snapshot::from_bytes(&compile(&d, seed).unwrap()).unwrap();
        for (i, (ban, ani, dnis)) in sample_calls(&d, 400, seed).iter().enumerate() {
            let at = times[i % times.len()];
            let ani = Some(ani.as_str());
            let fast = match snap.route(&RouteRequest::new(ban, ani, dnis, at)) {
                Ok(dec) => Outcome::Routes(
                    dec.routes
                        .iter()
                        .map(|r| {
                            (
                                r.vendor_id.to_string(),
                                r.vendor_rate.to_decimal(),
                                r.forced,
                                r.partition.map(str::to_string),
                            )
                        })
                        .collect(),
                ),
                Err(e) => Outcome::Rejected(kind(&e)),
            };
            // What `screen` refuses is what the route refuses before pricing.
            let early = match &fast {
                Outcome::Rejected(k) if !matches!(*k, "no_sell_rate" | "no_route") => Some(*k),
                _ => None,
            };
            let screened = snap.screen(ban, ani, dnis).err();
            assert_eq!(
                screened.as_ref().map(kind),
                early,
                "{ban} {ani:?} -> {dnis}"
            );
            screened_out += early.is_some() as usize;
            let slow = naive(&d, ban, ani, dnis, at);
            assert_eq!(
                fast, slow,
                "seed {seed}, call {ban} {ani:?} -> {dnis} at {at}"
            );
            routed += matches!(fast, Outcome::Routes(_)) as usize;
        }
    }
    assert!(
        routed > 600,
        "only {routed} of 1200 calls routed: the sample is not exercising LCR"
    );
    assert!(screened_out > 20, "only {screened_out} calls screened out");
}
