//! Writing a dataset back as a directory that reading gives back unchanged.

use super::fields::*;
use super::rows::*;
use super::DatasetError;
use crate::model::*;
use rust_decimal::Decimal;
use serde::Serialize;
use std::path::Path;

fn write<R: Serialize>(
    dir: &Path,
    name: &str,
    header: Option<&[&str]>,
    rows: impl IntoIterator<Item = R>,
) -> Result<(), DatasetError> {
    let io = |e: csv::Error| DatasetError::Io {
        file: name.to_string(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut w = csv::WriterBuilder::new()
        .has_headers(header.is_none())
        .from_path(dir.join(name))
        .map_err(io)?;
    if let Some(h) = header {
        w.write_record(h).map_err(io)?;
    }
    for row in rows {
        w.serialize(row).map_err(io)?;
    }
    w.flush().map_err(|source| DatasetError::Io {
        file: name.to_string(),
        source,
    })
}

fn text(d: Option<Decimal>) -> String {
    d.map(|d| d.normalize().to_string()).unwrap_or_default()
}

fn rate_csv(r: &RateRow) -> RateCsv {
    let (prefix, ocn, lata) = match &r.key {
        RateKey::Prefix(p) => (p.to_string(), String::new(), String::new()),
        RateKey::OcnLata { ocn, lata } => (String::new(), ocn.clone(), lata.to_string()),
    };
    RateCsv {
        owner: r.owner.clone(),
        prefix,
        ocn,
        lata,
        effective_from: r.effective_from.to_rfc3339(),
        effective_to: r.effective_to.map(|t| t.to_rfc3339()).unwrap_or_default(),
        interstate: text(r.rates[0]),
        intrastate: text(r.rates[1]),
        local: text(r.rates[2]),
        zone1: text(r.rates[3]),
        tollfree: text(r.rates[4]),
        international: text(r.rates[5]),
        initial: r.increments.initial.to_string(),
        subsequent: r.increments.subsequent.to_string(),
        connect_fee: text(Some(r.connect_fee)),
        minimum_charge: text(Some(r.minimum_charge)),
    }
}

/// The columns of `vendor_rates.csv` and `customer_rates.csv` after the owner column.
pub const RATE_COLUMNS: [&str; 15] = [
    "prefix",
    "ocn",
    "lata",
    "effective_from",
    "effective_to",
    "interstate",
    "intrastate",
    "local",
    "zone1",
    "tollfree",
    "international",
    "initial",
    "subsequent",
    "connect_fee",
    "minimum_charge",
];

fn rate_header(owner: &'static str) -> Vec<&'static str> {
    std::iter::once(owner).chain(RATE_COLUMNS).collect()
}

/// Writes a dataset as a CSV directory that [`read_dir`] reads back unchanged.
pub fn write_dir(d: &Dataset, dir: &Path) -> Result<(), DatasetError> {
    std::fs::create_dir_all(dir).map_err(|source| DatasetError::Io {
        file: dir.display().to_string(),
        source,
    })?;
    write(
        dir,
        "lerg.csv",
        None,
        d.lerg.iter().map(|b| LergCsv {
            npa_nxx: b.npa_nxx.to_string(),
            block: b.block.map(|x| x.to_string()).unwrap_or_default(),
            ocn: b.ocn.clone(),
            lata: b.lata.to_string(),
            state: b.state.clone(),
            rate_center: b.rate_center.clone(),
        }),
    )?;
    write(
        dir,
        "local_calling.csv",
        None,
        d.local_calling.iter().map(|p| {
            let (sa, ra) = p.a.split_once('/').unwrap_or(("", &p.a));
            let (sb, rb) = p.b.split_once('/').unwrap_or(("", &p.b));
            LocalCsv {
                state_a: sa.into(),
                rate_center_a: ra.into(),
                state_b: sb.into(),
                rate_center_b: rb.into(),
            }
        }),
    )?;
    write(
        dir,
        "dno.csv",
        None,
        d.dno.iter().map(|n| DnoCsv {
            number: format!("+{n}"),
        }),
    )?;
    write(
        dir,
        "lnp.csv",
        None,
        d.lnp.iter().map(|(n, l)| LnpCsv {
            number: format!("+{n}"),
            lrn: format!("+{l}"),
        }),
    )?;
    write(
        dir,
        "vendors.csv",
        None,
        d.vendors.iter().map(|v| VendorCsv {
            vendor_id: v.id.clone(),
            name: v.name.clone(),
            kind: v.kind.as_str().into(),
            priority: v.priority.to_string(),
            indeterminate_zone: v.indeterminate_zone.as_str().into(),
            enabled: v.enabled.to_string(),
            keepalive: v.keepalive.to_string(),
        }),
    )?;
    write(
        dir,
        "gateways.csv",
        None,
        d.vendors.iter().flat_map(|v| {
            v.gateways.iter().enumerate().map(|(i, g)| GatewayCsv {
                vendor_id: v.id.clone(),
                priority: (i + 1).to_string(),
                dialstring: g.clone(),
            })
        }),
    )?;
    write(
        dir,
        "vendor_rates.csv",
        Some(&rate_header("vendor_id")),
        d.vendor_rates.iter().map(rate_csv),
    )?;
    write(
        dir,
        "customer_rates.csv",
        Some(&rate_header("rate_plan")),
        d.customer_rates.iter().map(rate_csv),
    )?;
    write(
        dir,
        "customers.csv",
        None,
        d.customers.iter().map(|c| CustomerCsv {
            ban: c.ban.clone(),
            name: c.name.clone(),
            rate_plan: c.rate_plan.clone(),
            min_margin: text(Some(c.min_margin)),
            rate_limit: text(c.rate_limit),
            max_results: c.max_results.to_string(),
            enabled: c.enabled.to_string(),
        }),
    )?;
    write(
        dir,
        "trunks.csv",
        None,
        d.trunks.iter().map(|t| TrunkCsv {
            trunk_id: t.id.clone(),
            ban: t.ban.clone(),
            max_concurrent: t.max_concurrent.to_string(),
            max_cps: t.max_cps.to_string(),
            enabled: t.enabled.to_string(),
            auth_type: t.auth.as_str().to_string(),
            keepalive: t.keepalive.to_string(),
        }),
    )?;
    write(
        dir,
        "trunk_ips.csv",
        None,
        d.trunks.iter().flat_map(|t| {
            t.acl.iter().map(|n| TrunkIpCsv {
                trunk_id: t.id.clone(),
                cidr: format!("{}/{}", n.addr, n.len),
            })
        }),
    )?;
    write(
        dir,
        "trunk_credentials.csv",
        None,
        d.trunks.iter().flat_map(|t| {
            t.credentials.iter().map(|c| TrunkCredentialCsv {
                trunk_id: t.id.clone(),
                username: c.username.clone(),
                realm: c.realm.clone(),
                ha1: c.ha1.clone().unwrap_or_default(),
            })
        }),
    )?;
    write(
        dir,
        "partitions.csv",
        None,
        d.partitions.iter().map(|p| PartitionCsv {
            partition_id: p.id.clone(),
            name: p.name.clone(),
        }),
    )?;
    write(
        dir,
        "partition_routes.csv",
        None,
        d.partitions.iter().flat_map(|p| {
            p.vendors.iter().map(|v| PartitionRouteCsv {
                partition_id: p.id.clone(),
                vendor_id: v.clone(),
            })
        }),
    )?;
    write(
        dir,
        "customer_partitions.csv",
        None,
        d.customer_partitions.iter().map(|c| {
            let ScheduleCsv {
                valid_from,
                valid_to,
                tz,
                days,
                start,
                end,
            } = schedule_csv(&c.schedule);
            CustomerPartitionCsv {
                ban: c.ban.clone(),
                partition_id: c.partition.clone(),
                priority: c.priority.to_string(),
                valid_from,
                valid_to,
                tz,
                days,
                start,
                end,
            }
        }),
    )?;
    write(
        dir,
        "overrides.csv",
        None,
        d.overrides.iter().map(|o| {
            let ScheduleCsv {
                valid_from,
                valid_to,
                tz,
                days,
                start,
                end,
            } = schedule_csv(&o.schedule);
            OverrideCsv {
                ban: o.ban.clone().unwrap_or_default(),
                prefix: o.prefix.to_string(),
                vendor_id: o.vendor.clone(),
                valid_from,
                valid_to,
                tz,
                days,
                start,
                end,
            }
        }),
    )?;
    write(
        dir,
        "exclusions.csv",
        None,
        d.exclusions.iter().map(|x| ExclusionCsv {
            ban: x.ban.clone().unwrap_or_default(),
            vendor_id: x.vendor.clone().unwrap_or_default(),
            prefix: x.prefix.to_string(),
        }),
    )?;
    Ok(())
}
