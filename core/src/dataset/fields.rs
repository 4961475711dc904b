//! Field parsers and the conversions between rows and the model that more than one
//! file shares (schedules, rate rows).

use super::limits::{self, amount, count};
use super::rows::*;
use crate::model::*;
use crate::number::{Number, Prefix};
use crate::rating::Increments;
use crate::schedule::{Schedule, WeeklyWindow};
use crate::snapshot::records::pack_ocn;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

pub(super) fn opt(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

pub(super) fn int<T: std::str::FromStr>(field: &str, s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{field}: {s:?} is not a valid whole number"))
}

pub(super) fn flag(field: &str, s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "t" | "1" | "yes" => Ok(true),
        "false" | "f" | "0" | "no" => Ok(false),
        _ => Err(format!("{field}: {s:?} is not true/false")),
    }
}

pub(super) fn opt_amount(field: &str, s: &str) -> Result<Option<Decimal>, String> {
    opt(s).map(|v| amount(field, v)).transpose()
}

/// RFC 3339 in whole seconds, or a date meaning midnight UTC. The snapshot refuses a
/// fraction of a second, and PostgreSQL would round one to microseconds on import (a
/// time just before a second even to the next), so a dataset holding one would compile
/// from the database but not from its own files.
pub fn parse_time(field: &str, s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    let t = match DateTime::parse_from_rfc3339(s) {
        Ok(t) if t.timestamp_subsec_nanos() != 0 => {
            return Err(format!(
                "{field}: {s:?} has a fraction of a second (times are whole seconds)"
            ))
        }
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
            .map_err(|_| format!("{field}: {s:?} is not an RFC 3339 time or YYYY-MM-DD date"))?,
    };
    limits::time(field, s, t)
}

pub(super) fn number(field: &str, s: &str) -> Result<Number, String> {
    Number::parse(s).map_err(|e| format!("{field}: {e}"))
}

pub(super) fn prefix(field: &str, s: &str) -> Result<Prefix, String> {
    Prefix::parse(s).map_err(|e| format!("{field}: {s:?}: {e}"))
}

/// An OCN as the snapshot packs it: 1 to 4 letters or digits, kept upper-cased.
pub(super) fn ocn(field: &str, s: &str) -> Result<String, String> {
    let ocn = s.trim().to_ascii_uppercase();
    match pack_ocn(&ocn) {
        Some(_) => Ok(ocn),
        None => Err(format!("{field}: {s:?} is not 1 to 4 letters or digits")),
    }
}

pub(super) fn schedule(s: &ScheduleCsv) -> Result<Schedule, String> {
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
        (tz, start, end) => Some(
            WeeklyWindow::new(
                tz.unwrap_or("UTC")
                    .parse()
                    .map_err(|_| format!("tz: {:?} is not an IANA time zone", s.tz))?,
                WeeklyWindow::parse_days(&s.days)?,
                start
                    .map(WeeklyWindow::parse_minute)
                    .transpose()?
                    .unwrap_or(0),
                end.map(WeeklyWindow::parse_minute)
                    .transpose()?
                    .unwrap_or(24 * 60),
            )
            .map_err(|e| e.to_string())?,
        ),
    };
    Ok(Schedule { from, to, window })
}

pub(super) fn schedule_csv(s: &Schedule) -> ScheduleCsv {
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

pub(super) fn days_text(mask: u8) -> String {
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

pub(super) fn rate_row(r: RateCsv, owner_kind: Option<VendorKind>) -> Result<RateRow, String> {
    let key = match (opt(&r.prefix), opt(&r.ocn), opt(&r.lata)) {
        (Some(p), None, None) => RateKey::Prefix(prefix("prefix", p)?),
        (None, Some(o), Some(lata)) => RateKey::OcnLata {
            ocn: ocn("ocn", o)?,
            lata: count("lata", lata)?,
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
        .map(|v| count("initial", v))
        .transpose()?
        .unwrap_or(6);
    let subsequent = opt(&r.subsequent)
        .map(|v| count("subsequent", v))
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
