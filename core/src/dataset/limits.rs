//! What the PostgreSQL columns a dataset is imported into hold (`migrations/`), where
//! the model's types hold more. Checked as a file is read, a value past them is refused
//! by file, line and column before `warp import` writes anything; unchecked, PostgreSQL
//! refused it halfway through the import, naming only the line of its COPY.

use super::fields::int;
use crate::money::{parse_amount, MoneyError, SCALE};
use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;

/// `integer`: counts, LATAs and billing increments are `u32` in the model.
const INTEGER_MAX: u32 = i32::MAX as u32;

/// `numeric(18, 9)`, every rate and amount: [`SCALE`] places (those the snapshot
/// keeps, and `parse_amount` refuses more) and so 9 digits before the point.
fn amount_max() -> Decimal {
    Decimal::new(999_999_999_999_999_999, SCALE)
}

/// `timestamptz` as the import writes it, RFC 3339 text: PostgreSQL reads no year 0
/// and no five-digit year there.
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// A whole number for an `integer` column that the model keeps in a `u32`.
pub(super) fn count(field: &str, s: &str) -> Result<u32, String> {
    // Read wider than a u32, so that a value past it too is named as out of range.
    let n: u128 = int(field, s)?;
    (n <= u128::from(INTEGER_MAX))
        .then_some(n as u32)
        .ok_or_else(|| {
            format!("{field}: {n} is out of range: the database holds 0 to {INTEGER_MAX}")
        })
}

/// A non-negative amount for a `numeric(18, 9)` column.
pub(super) fn amount(field: &str, s: &str) -> Result<Decimal, String> {
    match parse_amount(s) {
        Ok(d) if d <= amount_max() => Ok(d),
        // Past what the snapshot's nanos hold too: past the column's range as well.
        Ok(d) | Err(MoneyError::OutOfRange(d)) => Err(format!(
            "{field}: {d} is out of range: the database holds 0 to {}",
            amount_max()
        )),
        Err(e) => Err(format!("{field}: {e}")),
    }
}

/// A time for a `timestamptz` column.
pub(super) fn time(field: &str, s: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if YEARS.contains(&t.year()) {
        Ok(t)
    } else {
        Err(format!(
            "{field}: {s:?} is out of range: the database holds the years {} to {} (UTC)",
            YEARS.start(),
            YEARS.end()
        ))
    }
}
