//! CNAM: the caller-ID name a number presents, set and read on the number
//! (`/numbers/{id}/cnam`). Checked and stored locally: no CNAM provider's registration
//! contract is documented (see README).

use super::accounts::PhoneNumber;
use super::number_services::{change_number, read_number, Target};
use crate::auth::Principal;
use crate::envelope::Envelope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// CNAM display names are at most 15 characters.
const MAX: usize = 15;

/// A display name as CNAM databases take it: trimmed, 1–15 characters of letters,
/// digits, spaces and `, . - & '`, at least one letter or digit.
pub fn check(name: &str) -> ApiResult<String> {
    let name = name.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || " ,.-&'".contains(c);
    if name.chars().count() > MAX
        || !name.chars().all(allowed)
        || !name.chars().any(|c| c.is_ascii_alphanumeric())
    {
        return Err(ApiError::invalid(
            "cnam",
            format!("{name:?}: 1 to {MAX} letters, digits, spaces or , . - & '"),
        ));
    }
    Ok(name.to_string())
}

/// The number resource's own `cnam` field goes through the same check.
pub fn normalise(input: &mut Map<String, Value>, given: &[String]) -> ApiResult<()> {
    if !given.iter().any(|g| g == "cnam") {
        return Ok(());
    }
    if let Some(Value::String(name)) = input.get("cnam") {
        let name = check(name)?;
        input.insert("cnam".into(), name.into());
    }
    Ok(())
}

#[derive(Serialize, ToSchema)]
pub struct NumberCnam {
    pub e164: String,
    pub cnam: Option<String>,
}

impl From<PhoneNumber> for NumberCnam {
    fn from(n: PhoneNumber) -> Self {
        NumberCnam {
            e164: n.e164,
            cnam: n.cnam,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCnam {
    /// The name to present; null removes it.
    pub cnam: Option<String>,
}

pub async fn get(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Envelope<NumberCnam>> {
    Ok(Envelope::ok(read_number(&st, &who, &id).await?.into()))
}

pub async fn set(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(req): Json<SetCnam>,
) -> ApiResult<Envelope<NumberCnam>> {
    let name = req.cnam.as_deref().map(check).transpose()?;
    let n = change_number(&st, &who, &id, Target::Cnam(name)).await?;
    Ok(Envelope::ok(n.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_limited_to_what_cnam_carries() {
        assert_eq!(check(" ACME Corp. ").unwrap(), "ACME Corp.");
        assert_eq!(check("O'Neil & Sons").unwrap(), "O'Neil & Sons");
        for bad in ["", "   ", "---", "SIXTEEN CHARS XX", "ACME<script>", "Zoë"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
