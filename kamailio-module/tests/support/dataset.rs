//! A small routing snapshot for the routing tests: customer C1 on trunk T1 (source
//! 127.0.0.1), two vendors for +1 destinations (CHEAP below DEAR), one DNO'd ANI.

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use warp_core::model::*;
use warp_core::rating::Increments;
use warp_core::schedule::Schedule;
use warp_core::{Number, Prefix, Zone};

pub const DNO_ANI: &str = "+13035550199";

fn rate_row(owner: &str, prefix: &str, rate: &str) -> RateRow {
    let rate: Decimal = rate.parse().unwrap();
    RateRow {
        owner: owner.into(),
        key: RateKey::Prefix(Prefix::parse(prefix).unwrap()),
        effective_from: Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
        effective_to: None,
        rates: [Some(rate); 6],
        increments: Increments::new(6, 6).unwrap(),
        connect_fee: Decimal::ZERO,
        minimum_charge: Decimal::ZERO,
    }
}

fn vendor(id: &str, gateway_port: u16) -> Vendor {
    Vendor {
        id: id.into(),
        name: format!("{id} carrier"),
        kind: VendorKind::Dnis,
        priority: 1,
        indeterminate_zone: Zone::Intrastate,
        gateways: vec![format!("sip:+{{number}}@127.0.0.1:{gateway_port}")],
        enabled: true,
    }
}

/// Compiles the dataset and publishes it at `path` (atomic rename, as production does).
pub fn publish(path: &Path) {
    let always = Schedule {
        from: None,
        to: None,
        window: None,
    };
    let dataset = Dataset {
        dno: vec![Number::parse(DNO_ANI).unwrap()],
        customers: vec![Customer {
            ban: "C1".into(),
            name: "Customer One".into(),
            rate_plan: "RETAIL".into(),
            min_margin: Decimal::ZERO,
            rate_limit: None,
            max_results: 5,
            enabled: true,
        }],
        trunks: vec![Trunk {
            id: "T1".into(),
            ban: "C1".into(),
            acl: vec![IpNet {
                addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                len: 32,
            }],
            usernames: vec![],
            max_concurrent: 100,
            max_cps: 100,
            enabled: true,
        }],
        vendors: vec![vendor("CHEAP", 5090), vendor("DEAR", 5091)],
        vendor_rates: vec![
            rate_row("CHEAP", "1", "0.004"),
            rate_row("DEAR", "1", "0.009"),
        ],
        customer_rates: vec![rate_row("RETAIL", "1", "0.02")],
        partitions: vec![Partition {
            id: "P1".into(),
            name: "Default".into(),
            vendors: vec!["DEAR".into(), "CHEAP".into()],
        }],
        customer_partitions: vec![CustomerPartition {
            ban: "C1".into(),
            partition: "P1".into(),
            priority: 1,
            schedule: always,
        }],
        ..Dataset::default()
    };
    let bytes = warp_core::snapshot::compile(&dataset, 1).expect("compile snapshot");
    warp_core::snapshot::publish(&bytes, path).expect("publish snapshot");
}
