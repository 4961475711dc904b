//! The provisioning resources under /api/v1, each a [`Resource`](crate::crud::Resource)
//! definition (rate decks add a whole-deck upload).

pub mod accounts;
pub mod cnam;
pub mod deck_upload;
pub mod e911;
pub mod number_services;
pub mod rate_decks;
pub mod routing_config;
pub mod vendors;

use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use std::borrow::Cow;
use warp_core::schedule::{WeeklyWindow, WindowError};
use warp_core::{Number, Prefix};

fn text<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    obj.get(field).and_then(Value::as_str)
}

/// Refuses an id a routing snapshot could not carry (`warp_core::model::check_id`):
/// told now, not when the next snapshot fails to compile.
fn check_id(obj: &Map<String, Value>, field: &str) -> ApiResult<()> {
    check_field(obj, field, warp_core::model::check_id)
}

/// Runs the model's `check` on `field` when it is given.
fn check_field(
    obj: &Map<String, Value>,
    field: &str,
    check: fn(&str) -> Result<(), String>,
) -> ApiResult<()> {
    text(obj, field).map_or(Ok(()), |v| {
        check(v).map_err(|e| ApiError::invalid(field, e))
    })
}

/// Refuses an amount with more decimal places than its column keeps: PostgreSQL would
/// round it silently, and the rate or limit stored would not be the one sent.
fn check_places(obj: &Map<String, Value>, fields: &[&str], places: u32) -> ApiResult<()> {
    for field in fields {
        let Some(amount) = text(obj, field).and_then(|v| v.parse::<Decimal>().ok()) else {
            continue;
        };
        if amount.normalize().scale() > places {
            return Err(ApiError::invalid(
                field,
                format!("{amount} has more than {places} decimal places"),
            ));
        }
    }
    Ok(())
}

/// Refuses a time with a fraction of a second: the snapshot keeps whole seconds and
/// refuses any other, so one stored would fail every publish after it (the dataset
/// reader, and so a deck upload, refuses it too).
fn check_whole_seconds(obj: &Map<String, Value>, fields: &[&str]) -> ApiResult<()> {
    for field in fields {
        let Some(t) = text(obj, field).and_then(|v| v.parse::<DateTime<Utc>>().ok()) else {
            continue;
        };
        if t.timestamp_subsec_nanos() != 0 {
            return Err(ApiError::invalid(
                field,
                format!("{t} has a fraction of a second (times are whole seconds)"),
            ));
        }
    }
    Ok(())
}

/// A number in a path as its row's key, E.164 digits. Digits are taken as they are:
/// that is the form stored and answered (read as a number, a 10-digit international
/// one would turn into a NANP one). Any other accepted form (`+E.164`, a `tel:` URI)
/// is normalised; what is no number stays as it is and names nothing.
pub fn number_key(id: &str) -> Cow<'_, str> {
    if id.bytes().all(|b| b.is_ascii_digit()) {
        return Cow::Borrowed(id);
    }
    Number::parse(id).map_or(Cow::Borrowed(id), |n| Cow::Owned(n.to_string()))
}

/// Rewrites a telephone number field (any accepted form) as E.164 digits.
/// Only when given: a stored value is E.164 digits already.
pub fn normalise_number(
    obj: &mut Map<String, Value>,
    field: &str,
    given: &[String],
) -> ApiResult<()> {
    if !given.iter().any(|g| g == field) {
        return Ok(());
    }
    if let Some(raw) = text(obj, field) {
        let n = Number::parse(raw).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_PHONE_NUMBER",
                format!("{raw:?}: {e}"),
            )
            .field(field)
        })?;
        obj.insert(field.into(), n.to_string().into());
    }
    Ok(())
}

/// Refuses to move row `id` (a trunk or an E911 address, which numbers reference by
/// `column` of SQL type `ty`) to the customer `row` names while numbers of another
/// customer still use it: they would point at a row that is no longer their
/// customer's. Staff move or detach the numbers first; moving them silently would hand
/// DIDs (and their billing) to another customer.
async fn refuse_stranding_numbers(
    conn: &mut PgConnection,
    id: Option<&str>,
    row: &Map<String, Value>,
    column: &str,
    ty: &str,
    what: &str,
) -> ApiResult<()> {
    let Some(id) = id else { return Ok(()) };
    let sql = format!(
        "SELECT count(*), min(e164) FROM numbers
         WHERE {column} = CAST($1 AS {ty}) AND ban IS DISTINCT FROM $2"
    );
    let (n, first): (i64, Option<String>) = sqlx::query_as(&sql)
        .bind(id)
        .bind(text(row, "ban"))
        .fetch_one(conn)
        .await?;
    match first {
        Some(first) => Err(ApiError::conflict(format!(
            "{n} number(s) of another customer use this {what} (first: {first}); \
             move them or take the {what} off them before moving it"
        ))
        .field("ban")),
        None => Ok(()),
    }
}

/// A digit prefix as the engine reads it.
pub fn check_prefix(obj: &Map<String, Value>, field: &str) -> ApiResult<()> {
    match text(obj, field) {
        Some(p) => Prefix::parse(p)
            .map(drop)
            .map_err(|e| ApiError::invalid(field, format!("{p:?}: {e}"))),
        None => Ok(()),
    }
}

/// The validity range in whole seconds, and the weekly window one the engine takes: a
/// zone it knows, a start within the day (24:00 only as an end), at least one weekday.
/// The schema keeps the four window fields all set or all null.
pub fn check_schedule(obj: &Map<String, Value>) -> ApiResult<()> {
    check_whole_seconds(obj, &["valid_from", "valid_to"])?;
    let Some(tz) = text(obj, "tz") else {
        return Ok(());
    };
    let tz = tz
        .parse::<chrono_tz::Tz>()
        .map_err(|_| ApiError::invalid("tz", format!("{tz:?} is not an IANA time zone")))?;
    let small = |field| obj.get(field).and_then(Value::as_u64);
    match (small("days"), small("start_minute"), small("end_minute")) {
        (Some(days), Some(start), Some(end)) => {
            let fit = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
            let days = u8::try_from(days).unwrap_or(u8::MAX);
            WeeklyWindow::new(tz, days, fit(start), fit(end))
                .map(drop)
                .map_err(|e| {
                    let field = match e {
                        WindowError::Start(_) => "start_minute",
                        WindowError::End(_) => "end_minute",
                        WindowError::Days(_) => "days",
                    };
                    ApiError::invalid(field, e.to_string())
                })
        }
        // Missing or negative values are the schema's to refuse, by name.
        _ => Ok(()),
    }
}
