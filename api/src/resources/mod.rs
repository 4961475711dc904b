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
use serde_json::{Map, Value};
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

/// A digit prefix as the engine reads it.
pub fn check_prefix(obj: &Map<String, Value>, field: &str) -> ApiResult<()> {
    match text(obj, field) {
        Some(p) => Prefix::parse(p)
            .map(drop)
            .map_err(|e| ApiError::invalid(field, format!("{p:?}: {e}"))),
        None => Ok(()),
    }
}

/// The weekly window's time zone must be one the engine knows.
pub fn check_schedule(obj: &Map<String, Value>) -> ApiResult<()> {
    match text(obj, "tz") {
        Some(tz) => tz
            .parse::<chrono_tz::Tz>()
            .map(drop)
            .map_err(|_| ApiError::invalid("tz", format!("{tz:?} is not an IANA time zone"))),
        None => Ok(()),
    }
}
