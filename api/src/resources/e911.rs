//! E911: customers' dispatchable addresses (validated and normalised locally; no 911
//! provider contract is documented, see README) and their provisioning on numbers
//! (`/numbers/{id}/e911`).

use super::accounts::PhoneNumber;
use super::number_services::{change_number, read_number, Target};
use crate::auth::roles::{Access, Class};
use crate::auth::Principal;
use crate::crud::{Resource, Tenant};
use crate::envelope::Envelope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY", "PR", "VI", "GU", "AS", "MP",
];
const CA_PROVINCES: &[&str] = &[
    "AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT",
];

#[derive(Serialize, FromRow, ToSchema)]
pub struct E911Address {
    pub id: i64,
    pub ban: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub country: String,
    /// When the address last passed validation.
    pub validated_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct E911AddressInput {
    pub ban: Option<String>,
    /// Civic address: house number and street (no PO boxes).
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    /// Two-letter state, territory or province code.
    pub state: String,
    pub postal_code: String,
    /// US (default) or CA.
    pub country: Option<String>,
}

impl Resource for E911Address {
    const NAME: &'static str = "e911_address";
    const TABLE: &'static str = "e911_addresses";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const TENANT: Tenant = Tenant::Column("ban");
    const FILTERS: &'static [&'static str] = &["ban"];
    const CLASS: Class = Class::Technical;
    const ROUTING: bool = false;
    /// Set by `prepare` for a create; a PATCH that changes nothing keeps it.
    const STAMP: Option<&'static str> = Some("validated_at");
    type Row = E911Address;
    type Input = E911AddressInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        normalise(input)?;
        input.insert("validated_at".into(), Utc::now().to_rfc3339().into());
        Ok(())
    }

    /// Runs under the address's row lock; provisioning share-locks the address, so
    /// either waits for the other.
    async fn check(
        conn: &mut PgConnection,
        _parent: Option<&str>,
        id: Option<&str>,
        row: &Map<String, Value>,
    ) -> ApiResult<()> {
        super::refuse_stranding_numbers(conn, id, row, "e911_address_id", "bigint", "address").await
    }

    /// Deleting an address numbers use would take their 911 location away silently (the
    /// schema sets it null): they are taken off it first, each on purpose. Provisioning
    /// share-locks the address, so it waits for this delete or this delete for it.
    async fn check_delete(conn: &mut PgConnection, id: &str) -> ApiResult<()> {
        let (n, first): (i64, Option<String>) = sqlx::query_as(
            "SELECT count(*), min(e164) FROM numbers WHERE e911_address_id = CAST($1 AS bigint)",
        )
        .bind(id)
        .fetch_one(conn)
        .await?;
        match first {
            Some(first) => Err(ApiError::conflict(format!(
                "{n} number(s) use this address for 911 (first: {first}); take it off them \
                 (DELETE /api/v1/numbers/{{e164}}/e911) before deleting it"
            ))),
            None => Ok(()),
        }
    }
}

/// Trimmed text of `field`, refused when empty or longer than `max`.
fn text(input: &Map<String, Value>, field: &str, max: usize) -> ApiResult<String> {
    let t = input
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    if t.is_empty() || t.chars().count() > max {
        return Err(ApiError::invalid(field, format!("1 to {max} characters")));
    }
    Ok(t)
}

/// Checks a dispatchable address and rewrites it in its normal form (upper-case codes,
/// ZIP or `A1A 1A1` postal codes).
fn normalise(input: &mut Map<String, Value>) -> ApiResult<()> {
    let line1 = text(input, "line1", 60)?;
    if !line1.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(ApiError::invalid("line1", "starts with the house number"));
    }
    let squashed: String = line1.to_uppercase().replace(['.', ' '], "");
    if squashed.contains("POBOX") {
        return Err(ApiError::invalid(
            "line1",
            "a PO box is not a dispatchable address",
        ));
    }
    let city = text(input, "city", 40)?;
    let country = match input.get("country").and_then(Value::as_str) {
        None => "US".to_string(),
        Some(c) => c.trim().to_uppercase(),
    };
    let state = text(input, "state", 2)?.to_uppercase();
    let postal = text(input, "postal_code", 10)?.to_uppercase();
    let postal = match country.as_str() {
        "US" if US_STATES.contains(&state.as_str()) => us_zip(&postal),
        "CA" if CA_PROVINCES.contains(&state.as_str()) => ca_postal(&postal),
        "US" | "CA" => {
            return Err(ApiError::invalid(
                "state",
                format!("{state:?} is not a {country} state or province code"),
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                "country",
                "E911 addresses are in the US or Canada",
            ))
        }
    }
    .ok_or_else(|| {
        ApiError::invalid(
            "postal_code",
            format!("{postal:?} is not a {country} postal code"),
        )
    })?;
    if let Some(Value::String(l2)) = input.get("line2") {
        if l2.chars().count() > 60 {
            return Err(ApiError::invalid("line2", "at most 60 characters"));
        }
    }
    for (k, v) in [
        ("line1", line1),
        ("city", city),
        ("state", state),
        ("postal_code", postal),
        ("country", country),
    ] {
        input.insert(k.into(), v.into());
    }
    Ok(())
}

fn us_zip(p: &str) -> Option<String> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match p.split_once('-') {
        None if digits(p, 5) => Some(p.to_string()),
        Some((a, b)) if digits(a, 5) && digits(b, 4) => Some(p.to_string()),
        _ => None,
    }
}

fn ca_postal(p: &str) -> Option<String> {
    let c: Vec<char> = p.chars().filter(|c| *c != ' ').collect();
    let shape = c.len() == 6
        && c.iter().enumerate().all(|(i, ch)| {
            if i % 2 == 0 {
                ch.is_ascii_uppercase()
            } else {
                ch.is_ascii_digit()
            }
        });
    shape.then(|| format!("{}{}{} {}{}{}", c[0], c[1], c[2], c[3], c[4], c[5]))
}

/// Checks an address without storing it; answers its normal form.
pub async fn validate(
    who: Principal,
    Json(input): Json<E911AddressInput>,
) -> ApiResult<Envelope<E911AddressInput>> {
    who.require(Class::Technical, Access::Read)?;
    let Value::Object(mut m) = serde_json::to_value(input).map_err(ApiError::internal)? else {
        return Err(ApiError::internal("input is not an object"));
    };
    normalise(&mut m)?;
    let out = serde_json::from_value(Value::Object(m)).map_err(ApiError::internal)?;
    Ok(Envelope::ok(out))
}

/// A number's 911 address.
#[derive(Serialize, ToSchema)]
pub struct NumberE911 {
    pub e164: String,
    pub address: Option<E911Address>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Provision {
    /// A validated address of the number's customer.
    pub address_id: i64,
}

async fn answer(st: &AppState, n: PhoneNumber) -> ApiResult<NumberE911> {
    // The number is the caller's, so its address may be shown: if it is the number's
    // customer's (a move refuses to leave another's, but rows written before may).
    let address = sqlx::query_as(
        "SELECT * FROM e911_addresses WHERE id = $1 AND ban IS NOT DISTINCT FROM $2",
    )
    .bind(n.e911_address_id)
    .bind(&n.ban)
    .fetch_optional(&st.pool)
    .await?;
    Ok(NumberE911 {
        e164: n.e164,
        address,
    })
}

pub async fn get(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Envelope<NumberE911>> {
    let n = read_number(&st, &who, &id).await?;
    Ok(Envelope::ok(answer(&st, n).await?))
}

pub async fn provision(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(p): Json<Provision>,
) -> ApiResult<Envelope<NumberE911>> {
    let target = Target::E911(Some(p.address_id));
    let n = change_number(&st, &who, &id, target).await?;
    Ok(Envelope::ok(answer(&st, n).await?))
}

pub async fn unprovision(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Envelope<NumberE911>> {
    let n = change_number(&st, &who, &id, Target::E911(None)).await?;
    Ok(Envelope::ok(answer(&st, n).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn address(v: Value) -> ApiResult<Map<String, Value>> {
        let Value::Object(mut m) = v else { panic!() };
        normalise(&mut m).map(|()| m)
    }

    #[test]
    fn addresses_are_normalised_or_refused_naming_the_field() {
        let ok = address(
            json!({"line1": " 123 Main St ", "city": "Denver", "state": "co",
                                "postal_code": "80202-1234"}),
        )
        .unwrap();
        assert_eq!(
            (ok["state"].as_str(), ok["country"].as_str()),
            (Some("CO"), Some("US"))
        );
        assert_eq!(ok["line1"], "123 Main St");
        let ca = address(
            json!({"line1": "1 Rue Bank", "city": "Ottawa", "state": "ON",
                                "postal_code": "k1a0b1", "country": "ca"}),
        )
        .unwrap();
        assert_eq!(ca["postal_code"], "K1A 0B1");
        for (bad, field) in [
            (
                json!({"line1": "Main St", "city": "X", "state": "CO", "postal_code": "80202"}),
                "line1",
            ),
            (
                json!({"line1": "1 P.O. Box 7", "city": "X", "state": "CO", "postal_code": "80202"}),
                "line1",
            ),
            (
                json!({"line1": "1 Main", "city": "", "state": "CO", "postal_code": "80202"}),
                "city",
            ),
            (
                json!({"line1": "1 Main", "city": "X", "state": "ZZ", "postal_code": "80202"}),
                "state",
            ),
            (
                json!({"line1": "1 Main", "city": "X", "state": "CO", "postal_code": "8020"}),
                "postal_code",
            ),
            (
                json!({"line1": "1 Main", "city": "X", "state": "ON", "postal_code": "K1A0B1",
                    "country": "FR"}),
                "country",
            ),
        ] {
            let e = address(bad.clone()).unwrap_err();
            assert_eq!(e.errors[0].field.as_deref(), Some(field), "{bad}");
        }
    }
}
