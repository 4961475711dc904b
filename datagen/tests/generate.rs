//! What the generator promises: one `(scale, seed)` gives the same files every time,
//! warp-core reads them back and compiles them, each scale makes what it names, and
//! every number it makes is a NANP number of its own LERG, every local pair a pair of
//! its rate centres.

use std::collections::{BTreeMap, HashMap, HashSet};
use warp_core::dataset;
use warp_core::model::{rate_center_key, Dataset, RateKey, VendorKind};
use warp_core::snapshot::{self, Snapshot};
use warp_core::Number;
use warp_datagen::{generate, sample_calls, Scale};

/// The files `warp gen-data` writes for `d`, by name.
fn files(d: &Dataset) -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    dataset::write_dir(d, dir.path()).unwrap();
    std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn a_seed_gives_the_same_files_and_another_seed_other_ones() {
    let (d, again, other) = (
        generate(Scale::SMALL, 7),
        generate(Scale::SMALL, 7),
        generate(Scale::SMALL, 8),
    );
    let (a, b, c) = (files(&d), files(&again), files(&other));
    assert!(a.contains_key("lerg.csv"), "{:?}", a.keys());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "seed 7 wrote two different {name}");
    }
    // Files the seed draws; customers, partitions and the like are fixed by the scale.
    for name in ["lerg.csv", "lnp.csv", "dno.csv", "vendor_rates.csv"] {
        assert!(a[name] != c[name], "seeds 7 and 8 wrote the same {name}");
    }
    assert_eq!(sample_calls(&d, 300, 1), sample_calls(&again, 300, 1));
    assert_ne!(sample_calls(&d, 300, 1), sample_calls(&d, 300, 2));
}

#[test]
fn warp_core_reads_back_what_was_written_and_compiles_it() {
    let d = generate(Scale::SMALL, 3);
    let dir = tempfile::tempdir().unwrap();
    dataset::write_dir(&d, dir.path()).unwrap();
    let back = dataset::read_dir(dir.path()).expect("warp-core reads the generated files");
    assert!(back == d, "the dataset read back is not the one generated");
    let bytes = snapshot::compile(&back, 1).expect("the generated dataset compiles");
    let s = Snapshot::from_bytes(&bytes).unwrap().summary();
    assert_eq!(
        (
            s.lerg_blocks,
            s.lnp_entries,
            s.dno_numbers,
            s.vendors,
            s.customers
        ),
        (
            d.lerg.len(),
            d.lnp.len(),
            d.dno.len(),
            d.vendors.len(),
            d.customers.len()
        )
    );
}

fn npas(d: &Dataset) -> HashSet<u32> {
    d.lerg.iter().map(|b| b.npa_nxx / 1000).collect()
}

fn check_counts(s: Scale, d: &Dataset) {
    assert_eq!(npas(d).len(), s.npas, "NPAs");
    assert_eq!((d.lnp.len(), d.dno.len()), (s.lnp, s.dno), "LNP, DNO");
    let kinds = [
        (VendorKind::Lrn, s.lrn_vendors),
        (VendorKind::OcnLata, s.ocn_lata_vendors),
        (VendorKind::Dnis, s.dnis_vendors),
        (VendorKind::International, s.intl_vendors),
    ];
    for (kind, n) in kinds {
        let made = d.vendors.iter().filter(|v| v.kind == kind).count();
        assert_eq!(made, n, "{kind:?} vendors");
    }
    assert_eq!(
        (d.customers.len(), d.trunks.len()),
        (s.customers, s.customers)
    );
    let plans: HashSet<&str> = d.customer_rates.iter().map(|r| r.owner.as_str()).collect();
    assert_eq!(plans.len(), s.plans, "rate plans");
    // Each LRN deck prices `rows_per_lrn_vendor` NPA-NXX codes (some twice, with a
    // scheduled change).
    let lrn: HashSet<&str> = d
        .vendors
        .iter()
        .filter(|v| v.kind == VendorKind::Lrn)
        .map(|v| v.id.as_str())
        .collect();
    let mut codes: HashMap<&str, HashSet<String>> = HashMap::new();
    for r in d
        .vendor_rates
        .iter()
        .filter(|r| lrn.contains(r.owner.as_str()))
    {
        if let RateKey::Prefix(p) = &r.key {
            if p.to_string().len() == 7 {
                codes.entry(&r.owner).or_default().insert(p.to_string());
            }
        }
    }
    for v in &lrn {
        let n = codes.get(v).map_or(0, HashSet::len);
        assert_eq!(n, s.rows_per_lrn_vendor, "NPA-NXX rows of {v}");
    }
}

#[test]
fn the_small_scale_makes_what_it_names() {
    check_counts(Scale::SMALL, &generate(Scale::SMALL, 5));
}

/// The large scale's figures, as its documentation gives them: ≈300k LERG blocks, 1M
/// LNP, 1M DNO, 50 vendors with ≈1M rate rows, 1k customers.
#[test]
fn the_large_scale_makes_what_it_names() {
    let d = generate(Scale::LARGE, 5);
    check_counts(Scale::LARGE, &d);
    let near = |n: usize, about: usize| n * 10 >= about * 8 && n * 10 <= about * 12;
    assert!(near(d.lerg.len(), 300_000), "{} LERG blocks", d.lerg.len());
    assert!(
        near(d.vendor_rates.len(), 1_000_000),
        "{} rate rows",
        d.vendor_rates.len()
    );
    assert_eq!((d.vendors.len(), d.customers.len()), (50, 1_000));
}

/// A geographic NANP area code: N11 codes, N9X (kept for expansion), the N00 service
/// codes, toll-free 8XX and the non-geographic 456 and 555 are not.
fn geographic_npa(npa: u32) -> bool {
    let tollfree = [800, 833, 844, 855, 866, 877, 888];
    (200..1000).contains(&npa)
        && npa % 100 != 11
        && npa / 10 % 10 != 9
        && !npa.is_multiple_of(100)
        && !tollfree.contains(&npa)
        && ![456, 555].contains(&npa)
}

#[test]
fn every_number_is_a_nanp_number_of_its_own_lerg() {
    // Every NPA the large scale uses, at the small scale's sizes.
    let scale = Scale {
        npas: Scale::LARGE.npas,
        ..Scale::SMALL
    };
    let d = generate(scale, 9);
    let mut state_of = HashMap::new();
    for b in &d.lerg {
        let (npa, nxx) = (b.npa_nxx / 1000, b.npa_nxx % 1000);
        assert!(geographic_npa(npa), "NPA {npa}");
        assert!(nxx >= 200 && nxx % 100 != 11, "NXX {nxx} of {npa}");
        assert_eq!(
            *state_of.entry(npa).or_insert(b.state.as_str()),
            b.state,
            "NPA {npa} in two states"
        );
        assert!((100..1000).contains(&b.lata), "LATA {}", b.lata);
    }
    let codes: HashSet<u32> = d.lerg.iter().map(|b| b.npa_nxx).collect();
    let in_lerg = |n: &Number| n.npa_nxx().is_some_and(|c| codes.contains(&c));
    for (n, lrn) in &d.lnp {
        assert!(in_lerg(n) && in_lerg(lrn), "+{n} ported to +{lrn}");
        assert_eq!(
            lrn.value() % 10_000,
            0,
            "LRN +{lrn} is a switch's NPA-NXX-0000"
        );
    }
    for n in &d.dno {
        assert!(in_lerg(n), "DNO +{n}");
    }
    let pairs: HashSet<(&str, u32)> = d.lerg.iter().map(|b| (b.ocn.as_str(), b.lata)).collect();
    for r in &d.vendor_rates {
        if let RateKey::OcnLata { ocn, lata } = &r.key {
            assert!(pairs.contains(&(ocn.as_str(), *lata)), "{ocn}/{lata}");
        }
    }
}

/// The local calling table names only rate centres the generated LERG has: the
/// snapshot refuses any other.
#[test]
fn every_local_pair_names_rate_centres_of_lerg_codes() {
    for seed in [1, 7, 11] {
        let d = generate(Scale::SMALL, seed);
        let lerg: HashSet<String> = d
            .lerg
            .iter()
            .map(|b| rate_center_key(&b.state, &b.rate_center))
            .collect();
        assert!(!d.local_calling.is_empty());
        for p in &d.local_calling {
            assert!(
                lerg.contains(&p.a) && lerg.contains(&p.b),
                "seed {seed}: {} - {}",
                p.a,
                p.b
            );
        }
    }
}

/// The sample mixes every kind of call the docs name, an unknown caller to a domestic
/// US number among them: what the vendors' indeterminate-zone policy decides.
#[test]
fn sample_calls_include_unknown_callers_to_domestic_numbers() {
    let d = generate(Scale::SMALL, 3);
    let domestic = |dnis: &str| {
        Number::parse(dnis).is_ok_and(|n| n.is_nanp() && !n.is_toll_free() && !n.is_nanp_non_us())
    };
    let calls = sample_calls(&d, 100, 1);
    let unknown: Vec<_> = calls
        .iter()
        .filter(|(_, ani, _)| ani == "anonymous")
        .collect();
    assert!(!unknown.is_empty());
    assert!(
        unknown.iter().any(|(_, _, dnis)| domestic(dnis)),
        "unknown callers only dial {:?}",
        unknown.iter().map(|c| &c.2).collect::<Vec<_>>()
    );
}
