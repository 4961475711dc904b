//! The CSV directory form of a [`Dataset`]: what `warp gen-data` writes, `warp import`
//! loads into PostgreSQL and `warp compile --from DIR` compiles. Every bad row is
//! reported with its file and line; a directory with any bad row yields no dataset.
//! The file and column list is in `docs/DATA_FORMAT.md`.

use crate::model::*;
use crate::money::parse_amount;
use crate::number::{Number, Prefix};
use crate::rating::Increments;
use crate::schedule::{Schedule, WeeklyWindow};
use crate::zone::Zone;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub file: String,
    pub line: u64,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{} bad row(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Rows(Vec<RowError>),
}

// ---- row shapes (all text, so every field error can be named) ----

#[derive(Serialize, Deserialize)]
struct LergCsv {
    npa_nxx: String,
    block: String,
    ocn: String,
    lata: String,
    state: String,
    rate_center: String,
}

#[derive(Serialize, Deserialize)]
struct LocalCsv {
    state_a: String,
    rate_center_a: String,
    state_b: String,
    rate_center_b: String,
}

#[derive(Serialize, Deserialize)]
struct DnoCsv {
    number: String,
}

#[derive(Serialize, Deserialize)]
struct LnpCsv {
    number: String,
    lrn: String,
}

#[derive(Serialize, Deserialize)]
struct CustomerCsv {
    ban: String,
    name: String,
    rate_plan: String,
    min_margin: String,
    rate_limit: String,
    max_results: String,
    enabled: String,
}

#[derive(Serialize, Deserialize)]
struct TrunkCsv {
    trunk_id: String,
    ban: String,
    max_concurrent: String,
    max_cps: String,
    enabled: String,
}

#[derive(Serialize, Deserialize)]
struct TrunkIpCsv {
    trunk_id: String,
    cidr: String,
}

#[derive(Serialize, Deserialize)]
struct TrunkCredentialCsv {
    trunk_id: String,
    username: String,
}

#[derive(Serialize, Deserialize)]
struct VendorCsv {
    vendor_id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    priority: String,
    indeterminate_zone: String,
    enabled: String,
}

#[derive(Serialize, Deserialize)]
struct GatewayCsv {
    vendor_id: String,
    priority: String,
    dialstring: String,
}

/// Shared by `vendor_rates.csv` (owner column `vendor_id`) and `customer_rates.csv`
/// (owner column `rate_plan`).
#[derive(Serialize, Deserialize)]
struct RateCsv {
    #[serde(alias = "vendor_id", alias = "rate_plan")]
    owner: String,
    prefix: String,
    ocn: String,
    lata: String,
    effective_from: String,
    effective_to: String,
    interstate: String,
    intrastate: String,
    local: String,
    zone1: String,
    tollfree: String,
    international: String,
    initial: String,
    subsequent: String,
    connect_fee: String,
    minimum_charge: String,
}

#[derive(Serialize, Deserialize)]
struct PartitionCsv {
    partition_id: String,
    name: String,
}

#[derive(Serialize, Deserialize)]
struct PartitionRouteCsv {
    partition_id: String,
    vendor_id: String,
}

/// The schedule columns that `customer_partitions.csv` and `overrides.csv` share.
struct ScheduleCsv {
    valid_from: String,
    valid_to: String,
    tz: String,
    days: String,
    start: String,
    end: String,
}

#[derive(Serialize, Deserialize)]
struct CustomerPartitionCsv {
    ban: String,
    partition_id: String,
    priority: String,
    valid_from: String,
    valid_to: String,
    tz: String,
    days: String,
    start: String,
    end: String,
}

#[derive(Serialize, Deserialize)]
struct OverrideCsv {
    ban: String,
    prefix: String,
    vendor_id: String,
    valid_from: String,
    valid_to: String,
    tz: String,
    days: String,
    start: String,
    end: String,
}

#[derive(Serialize, Deserialize)]
struct ExclusionCsv {
    ban: String,
    vendor_id: String,
    prefix: String,
}

/// Copies a row's schedule columns (csv's serde does not support `flatten`).
macro_rules! sched_of {
    ($x:expr) => {
        ScheduleCsv {
            valid_from: $x.valid_from.clone(),
            valid_to: $x.valid_to.clone(),
            tz: $x.tz.clone(),
            days: $x.days.clone(),
            start: $x.start.clone(),
            end: $x.end.clone(),
        }
    };
}

// ---- field parsers ----

fn opt(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

fn int<T: std::str::FromStr>(field: &str, s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{field}: {s:?} is not a valid whole number"))
}

fn flag(field: &str, s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "t" | "1" | "yes" => Ok(true),
        "false" | "f" | "0" | "no" => Ok(false),
        _ => Err(format!("{field}: {s:?} is not true/false")),
    }
}

fn amount(field: &str, s: &str) -> Result<Decimal, String> {
    parse_amount(s).map_err(|e| format!("{field}: {e}"))
}

fn opt_amount(field: &str, s: &str) -> Result<Option<Decimal>, String> {
    opt(s).map(|v| amount(field, v)).transpose()
}

/// RFC 3339, or a date meaning midnight UTC.
pub fn parse_time(field: &str, s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| format!("{field}: {s:?} is not an RFC 3339 time or YYYY-MM-DD date"))
}

fn number(field: &str, s: &str) -> Result<Number, String> {
    Number::parse(s).map_err(|e| format!("{field}: {e}"))
}

fn prefix(field: &str, s: &str) -> Result<Prefix, String> {
    Prefix::parse(s).map_err(|e| format!("{field}: {s:?}: {e}"))
}

fn schedule(s: &ScheduleCsv) -> Result<Schedule, String> {
    let from = opt(&s.valid_from)
        .map(|v| parse_time("valid_from", v))
        .transpose()?;
    let to = opt(&s.valid_to)
        .map(|v| parse_time("valid_to", v))
        .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            return Err(format!("valid_to {t} is not after valid_from {f}"));
        }
    }
    let window = match (opt(&s.tz), opt(&s.start), opt(&s.end)) {
        (None, None, None) if opt(&s.days).is_none() => None,
        (tz, start, end) => Some(WeeklyWindow {
            tz: tz
                .unwrap_or("UTC")
                .parse()
                .map_err(|_| format!("tz: {:?} is not an IANA time zone", s.tz))?,
            days: WeeklyWindow::parse_days(&s.days)?,
            start: start
                .map(WeeklyWindow::parse_minute)
                .transpose()?
                .unwrap_or(0),
            end: end
                .map(WeeklyWindow::parse_minute)
                .transpose()?
                .unwrap_or(24 * 60),
        }),
    };
    Ok(Schedule { from, to, window })
}

fn schedule_csv(s: &Schedule) -> ScheduleCsv {
    let t = |x: Option<DateTime<Utc>>| x.map(|t| t.to_rfc3339()).unwrap_or_default();
    let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let w = s.window.as_ref();
    ScheduleCsv {
        valid_from: t(s.from),
        valid_to: t(s.to),
        tz: w.map(|w| w.tz.name().to_string()).unwrap_or_default(),
        days: w.map(|w| days_text(w.days)).unwrap_or_default(),
        start: w.map(|w| hm(w.start)).unwrap_or_default(),
        end: w.map(|w| hm(w.end)).unwrap_or_default(),
    }
}

fn days_text(mask: u8) -> String {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    if mask == 0x7f {
        return "*".into();
    }
    (0..7)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| NAMES[i])
        .collect::<Vec<_>>()
        .join(",")
}

fn rate_row(r: RateCsv, owner_kind: Option<VendorKind>) -> Result<RateRow, String> {
    let key = match (opt(&r.prefix), opt(&r.ocn), opt(&r.lata)) {
        (Some(p), None, None) => RateKey::Prefix(prefix("prefix", p)?),
        (None, Some(ocn), Some(lata)) => RateKey::OcnLata {
            ocn: ocn.to_ascii_uppercase(),
            lata: int("lata", lata)?,
        },
        _ => return Err("give either prefix, or ocn and lata".into()),
    };
    match (owner_kind, &key) {
        (Some(VendorKind::OcnLata), RateKey::Prefix(_)) => {
            return Err(format!(
                "vendor {} is OCN_LATA: rows need ocn and lata",
                r.owner
            ))
        }
        (Some(k), RateKey::OcnLata { .. }) if k != VendorKind::OcnLata => {
            return Err(format!(
                "vendor {} is {}: rows need a prefix",
                r.owner,
                k.as_str()
            ))
        }
        (None, RateKey::OcnLata { .. }) => {
            return Err("customer rate plans are keyed by prefix".into())
        }
        _ => {}
    }
    let effective_from = parse_time("effective_from", &r.effective_from)?;
    let effective_to = opt(&r.effective_to)
        .map(|v| parse_time("effective_to", v))
        .transpose()?;
    if effective_to.is_some_and(|t| t <= effective_from) {
        return Err("effective_to is not after effective_from".into());
    }
    let rates = [
        opt_amount("interstate", &r.interstate)?,
        opt_amount("intrastate", &r.intrastate)?,
        opt_amount("local", &r.local)?,
        opt_amount("zone1", &r.zone1)?,
        opt_amount("tollfree", &r.tollfree)?,
        opt_amount("international", &r.international)?,
    ];
    if rates.iter().all(Option::is_none) {
        return Err("row has no rate in any zone".into());
    }
    let initial = opt(&r.initial)
        .map(|v| int("initial", v))
        .transpose()?
        .unwrap_or(6);
    let subsequent = opt(&r.subsequent)
        .map(|v| int("subsequent", v))
        .transpose()?
        .unwrap_or(6);
    Ok(RateRow {
        owner: r.owner.trim().to_string(),
        key,
        effective_from,
        effective_to,
        rates,
        increments: Increments::new(initial, subsequent)?,
        connect_fee: opt_amount("connect_fee", &r.connect_fee)?.unwrap_or_default(),
        minimum_charge: opt_amount("minimum_charge", &r.minimum_charge)?.unwrap_or_default(),
    })
}

// ---- reading ----

struct Reader<'a> {
    dir: &'a Path,
    errors: Vec<RowError>,
}

impl Reader<'_> {
    /// Streams `name`'s rows into `f`; a missing optional file is an empty table.
    fn each<R: DeserializeOwned>(
        &mut self,
        name: &str,
        required: bool,
        mut f: impl FnMut(R) -> Result<(), String>,
    ) -> Result<(), DatasetError> {
        let path = self.dir.join(name);
        if !path.exists() && !required {
            return Ok(());
        }
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(&path)
            .map_err(|e| DatasetError::Io {
                file: name.to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let mut rec = csv::StringRecord::new();
        let headers = rdr.headers().cloned().map_err(|e| DatasetError::Io {
            file: name.to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        loop {
            let line = rdr.position().line();
            match rdr.read_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {
                    let res = rec
                        .deserialize::<R>(Some(&headers))
                        .map_err(|e| format!("{e}"))
                        .and_then(&mut f);
                    if let Err(message) = res {
                        self.reject(
                            name,
                            line.max(rec.position().map_or(0, |p| p.line())),
                            message,
                        );
                    }
                }
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line());
                    self.reject(name, line, e.to_string());
                    if !matches!(
                        e.kind(),
                        csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }
                    ) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn reject(&mut self, file: &str, line: u64, message: String) {
        self.errors.push(RowError {
            file: file.to_string(),
            line,
            message,
        });
    }
}

fn known(set: &HashSet<String>, what: &str, id: &str) -> Result<String, String> {
    let id = id.trim();
    if set.contains(id) {
        Ok(id.to_string())
    } else {
        Err(format!("unknown {what} {id:?}"))
    }
}

fn fresh(set: &mut HashSet<String>, what: &str, id: &str) -> Result<String, String> {
    let id = id.trim();
    if id.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if !set.insert(id.to_string()) {
        return Err(format!("duplicate {what} {id:?}"));
    }
    Ok(id.to_string())
}

/// Reads a CSV directory, validating every row and every reference between files.
pub fn read_dir(dir: &Path) -> Result<Dataset, DatasetError> {
    let mut r = Reader {
        dir,
        errors: Vec::new(),
    };
    let mut d = Dataset::default();

    let mut lerg_keys = HashSet::new();
    r.each("lerg.csv", true, |x: LergCsv| {
        let npa_nxx: u32 = int("npa_nxx", &x.npa_nxx)?;
        if !(200_200..=999_999).contains(&npa_nxx) || (npa_nxx % 1000) < 200 {
            return Err(format!("npa_nxx {npa_nxx} is not a NANP NPA-NXX"));
        }
        let block = opt(&x.block)
            .map(|b| {
                int::<u8>("block", b).and_then(|b| {
                    if b <= 9 {
                        Ok(b)
                    } else {
                        Err("block must be 0-9".into())
                    }
                })
            })
            .transpose()?;
        if !lerg_keys.insert((npa_nxx, block)) {
            return Err(format!(
                "duplicate LERG entry {npa_nxx}{}",
                block.map(|b| b.to_string()).unwrap_or_default()
            ));
        }
        let state = x.state.trim().to_ascii_uppercase();
        if state.len() != 2 || !state.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("state {state:?} is not a two-letter code"));
        }
        d.lerg.push(LergBlock {
            npa_nxx,
            block,
            ocn: x.ocn.trim().to_ascii_uppercase(),
            lata: int("lata", &x.lata)?,
            state,
            rate_center: x.rate_center.trim().to_string(),
        });
        Ok(())
    })?;
    r.each("local_calling.csv", false, |x: LocalCsv| {
        d.local_calling.push(LocalPair {
            a: rate_center_key(&x.state_a.to_ascii_uppercase(), &x.rate_center_a),
            b: rate_center_key(&x.state_b.to_ascii_uppercase(), &x.rate_center_b),
        });
        Ok(())
    })?;
    r.each("dno.csv", false, |x: DnoCsv| {
        d.dno.push(number("number", &x.number)?);
        Ok(())
    })?;
    r.each("lnp.csv", false, |x: LnpCsv| {
        let n = number("number", &x.number)?;
        let lrn = number("lrn", &x.lrn)?;
        if !n.is_nanp() || !lrn.is_nanp() {
            return Err("LNP entries are NANP numbers".into());
        }
        d.lnp.push((n, lrn));
        Ok(())
    })?;

    let mut vendor_ids = HashSet::new();
    let mut vendor_kinds = HashMap::new();
    r.each("vendors.csv", true, |x: VendorCsv| {
        let id = fresh(&mut vendor_ids, "vendor_id", &x.vendor_id)?;
        let kind: VendorKind = x.kind.parse()?;
        vendor_kinds.insert(id.clone(), kind);
        d.vendors.push(Vendor {
            id,
            name: x.name.trim().to_string(),
            kind,
            priority: int("priority", &x.priority)?,
            indeterminate_zone: opt(&x.indeterminate_zone)
                .map(str::parse)
                .transpose()?
                .unwrap_or(Zone::Intrastate),
            gateways: Vec::new(),
            enabled: flag("enabled", &x.enabled)?,
        });
        Ok(())
    })?;
    let mut gateways: Vec<(String, i32, String)> = Vec::new();
    r.each("gateways.csv", false, |x: GatewayCsv| {
        let dial = x.dialstring.trim();
        if !(dial.starts_with("sip:") || dial.starts_with("sips:")) {
            return Err(format!("dialstring {dial:?} is not a sip: URI"));
        }
        gateways.push((
            known(&vendor_ids, "vendor_id", &x.vendor_id)?,
            int("priority", &x.priority)?,
            dial.to_string(),
        ));
        Ok(())
    })?;
    gateways.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let index: HashMap<String, usize> = d
        .vendors
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id.clone(), i))
        .collect();
    for (v, _, g) in gateways {
        d.vendors[index[&v]].gateways.push(g);
    }
    r.each("vendor_rates.csv", true, |x: RateCsv| {
        let kind = *vendor_kinds
            .get(x.owner.trim())
            .ok_or_else(|| format!("unknown vendor_id {:?}", x.owner))?;
        d.vendor_rates.push(rate_row(x, Some(kind))?);
        Ok(())
    })?;

    let mut plans = HashSet::new();
    r.each("customer_rates.csv", true, |x: RateCsv| {
        let row = rate_row(x, None)?;
        plans.insert(row.owner.clone());
        d.customer_rates.push(row);
        Ok(())
    })?;
    let mut bans = HashSet::new();
    r.each("customers.csv", true, |x: CustomerCsv| {
        let ban = fresh(&mut bans, "ban", &x.ban)?;
        let max_results = opt(&x.max_results)
            .map(|v| int("max_results", v))
            .transpose()?
            .unwrap_or(5);
        if max_results == 0 {
            return Err("max_results must be at least 1".into());
        }
        d.customers.push(Customer {
            ban,
            name: x.name.trim().to_string(),
            rate_plan: known(&plans, "rate_plan", &x.rate_plan)?,
            min_margin: opt_amount("min_margin", &x.min_margin)?.unwrap_or_default(),
            rate_limit: opt_amount("rate_limit", &x.rate_limit)?,
            max_results,
            enabled: flag("enabled", &x.enabled)?,
        });
        Ok(())
    })?;
    let mut trunk_ids = HashSet::new();
    r.each("trunks.csv", true, |x: TrunkCsv| {
        d.trunks.push(Trunk {
            id: fresh(&mut trunk_ids, "trunk_id", &x.trunk_id)?,
            ban: known(&bans, "ban", &x.ban)?,
            acl: Vec::new(),
            usernames: Vec::new(),
            max_concurrent: opt(&x.max_concurrent)
                .map(|v| int("max_concurrent", v))
                .transpose()?
                .unwrap_or(0),
            max_cps: opt(&x.max_cps)
                .map(|v| int("max_cps", v))
                .transpose()?
                .unwrap_or(0),
            enabled: flag("enabled", &x.enabled)?,
        });
        Ok(())
    })?;
    let trunk_index: HashMap<String, usize> = d
        .trunks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.clone(), i))
        .collect();
    let mut nets = HashSet::new();
    r.each("trunk_ips.csv", false, |x: TrunkIpCsv| {
        let t = known(&trunk_ids, "trunk_id", &x.trunk_id)?;
        let net: IpNet = x.cidr.parse()?;
        if !nets.insert((net.addr, net.len)) {
            return Err(format!("{} is already assigned to a trunk", x.cidr.trim()));
        }
        d.trunks[trunk_index[&t]].acl.push(net);
        Ok(())
    })?;
    let mut users = HashSet::new();
    r.each("trunk_credentials.csv", false, |x: TrunkCredentialCsv| {
        let t = known(&trunk_ids, "trunk_id", &x.trunk_id)?;
        let user = fresh(&mut users, "username", &x.username)?;
        d.trunks[trunk_index[&t]].usernames.push(user);
        Ok(())
    })?;

    let mut partition_ids = HashSet::new();
    r.each("partitions.csv", true, |x: PartitionCsv| {
        d.partitions.push(Partition {
            id: fresh(&mut partition_ids, "partition_id", &x.partition_id)?,
            name: x.name.trim().to_string(),
            vendors: Vec::new(),
        });
        Ok(())
    })?;
    let part_index: HashMap<String, usize> = d
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    r.each("partition_routes.csv", true, |x: PartitionRouteCsv| {
        let p = known(&partition_ids, "partition_id", &x.partition_id)?;
        let v = known(&vendor_ids, "vendor_id", &x.vendor_id)?;
        let vendors = &mut d.partitions[part_index[&p]].vendors;
        if vendors.contains(&v) {
            return Err(format!("vendor {v} is already in partition {p}"));
        }
        vendors.push(v);
        Ok(())
    })?;
    r.each(
        "customer_partitions.csv",
        true,
        |x: CustomerPartitionCsv| {
            d.customer_partitions.push(CustomerPartition {
                ban: known(&bans, "ban", &x.ban)?,
                partition: known(&partition_ids, "partition_id", &x.partition_id)?,
                priority: int("priority", &x.priority)?,
                schedule: schedule(&sched_of!(x))?,
            });
            Ok(())
        },
    )?;
    r.each("overrides.csv", false, |x: OverrideCsv| {
        d.overrides.push(Override {
            ban: opt(&x.ban).map(|b| known(&bans, "ban", b)).transpose()?,
            prefix: prefix("prefix", &x.prefix)?,
            vendor: known(&vendor_ids, "vendor_id", &x.vendor_id)?,
            schedule: schedule(&sched_of!(x))?,
        });
        Ok(())
    })?;
    r.each("exclusions.csv", false, |x: ExclusionCsv| {
        d.exclusions.push(Exclusion {
            ban: opt(&x.ban).map(|b| known(&bans, "ban", b)).transpose()?,
            vendor: opt(&x.vendor_id)
                .map(|v| known(&vendor_ids, "vendor_id", v))
                .transpose()?,
            prefix: prefix("prefix", &x.prefix)?,
        });
        Ok(())
    })?;

    if r.errors.is_empty() {
        Ok(d)
    } else {
        Err(DatasetError::Rows(r.errors))
    }
}

// ---- writing ----

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
            t.usernames.iter().map(|u| TrunkCredentialCsv {
                trunk_id: t.id.clone(),
                username: u.clone(),
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
