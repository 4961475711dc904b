//! A number's E911 address and CNAM, read and set through their own endpoints; a
//! change is checked against the number's customer, written, read back and audited as
//! a `numbers` update in one transaction.

use super::accounts::PhoneNumber;
use crate::audit::{self, Change};
use crate::auth::roles::Access;
use crate::auth::Principal;
use crate::crud::{fetch, fetch_for_update, Resource};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What changes on the number.
pub enum Target {
    /// The E911 address (a validated one of the number's customer), or none.
    E911(Option<i64>),
    /// The CNAM display name (already checked), or none.
    Cnam(Option<String>),
}

/// The number as the caller may read it.
pub async fn read_number(st: &AppState, who: &Principal, id: &str) -> ApiResult<PhoneNumber> {
    who.require(PhoneNumber::CLASS, Access::Read)?;
    let mut conn = st.pool.acquire().await?;
    fetch::<PhoneNumber>(&mut conn, who, None, &PhoneNumber::key(id)).await
}

pub async fn change_number(
    st: &AppState,
    who: &Principal,
    id: &str,
    target: Target,
) -> ApiResult<PhoneNumber> {
    who.require(PhoneNumber::CLASS, Access::Write)?;
    let mut tx = st.pool.begin().await?;
    // Locked: the checks below read the number's customer, which a concurrent move
    // could otherwise change before this write lands.
    let before = fetch_for_update::<PhoneNumber>(&mut tx, who, None, &PhoneNumber::key(id)).await?;
    let e164 = before.e164.as_str();
    match target {
        Target::E911(address) => {
            if let Some(address) = address {
                check_address(&mut tx, &before, address).await?;
            }
            sqlx::query("UPDATE numbers SET e911_address_id = $2 WHERE e164 = $1")
                .bind(e164)
                .bind(address)
                .execute(&mut *tx)
                .await?
        }
        Target::Cnam(name) => {
            sqlx::query("UPDATE numbers SET cnam = $2 WHERE e164 = $1")
                .bind(e164)
                .bind(name)
                .execute(&mut *tx)
                .await?
        }
    };
    let after = fetch::<PhoneNumber>(&mut tx, who, None, e164).await?;
    let change = Change {
        action: "update",
        class: PhoneNumber::CLASS,
        entity_type: PhoneNumber::ENTITY,
        entity_id: &after.e164,
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&after).ok(),
    };
    audit::record(&mut tx, who, change).await?;
    tx.commit().await?;
    Ok(after)
}

/// The address must be the number's customer's and validated. Share-locked, so it
/// cannot move to another customer before this transaction commits (a move waits, then
/// sees the number using it).
async fn check_address(
    conn: &mut sqlx::PgConnection,
    number: &PhoneNumber,
    address: i64,
) -> ApiResult<()> {
    let Some(ban) = &number.ban else {
        return Err(ApiError::invalid(
            "address_id",
            "the number belongs to no customer yet",
        ));
    };
    let found: Option<(bool,)> = sqlx::query_as(
        "SELECT validated_at IS NOT NULL FROM e911_addresses WHERE id = $1 AND ban = $2
         FOR SHARE",
    )
    .bind(address)
    .bind(ban)
    .fetch_optional(conn)
    .await?;
    match found {
        Some((true,)) => Ok(()),
        Some((false,)) => Err(ApiError::invalid(
            "address_id",
            "the address has not been validated",
        )),
        None => Err(ApiError::invalid(
            "address_id",
            "no such address for this number's customer",
        )),
    }
}
