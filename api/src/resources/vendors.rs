//! Vendors (providers) with their jurisdiction policy, and their gateways.

use crate::auth::roles::Class;
use crate::crud::Resource;
use crate::error::ApiResult;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;
use warp_core::model::check_dialstring;

#[derive(Serialize, FromRow, ToSchema)]
pub struct Vendor {
    pub id: String,
    pub name: String,
    /// LRN, OCN_LATA, DNIS or INTERNATIONAL: what the vendor prices by.
    pub kind: String,
    /// Lower is preferred when rates tie.
    pub priority: i32,
    /// Jurisdiction policy: the zone indeterminate traffic is priced in.
    pub indeterminate_zone: String,
    pub enabled: bool,
    /// The edge sends the vendor's side of each answered call an in-dialog OPTIONS every
    /// DLG_KEEPALIVE s and ends a call whose switch stops answering; false for a switch
    /// that ignores in-dialog OPTIONS (its calls would be ended a few minutes in). The
    /// caller's side is as its trunk's `keepalive` says.
    pub keepalive: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorInput {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub priority: Option<i32>,
    pub indeterminate_zone: Option<String>,
    pub enabled: Option<bool>,
    /// true when not given; see `Vendor`.
    pub keepalive: Option<bool>,
}

impl Resource for Vendor {
    const NAME: &'static str = "vendor";
    const TABLE: &'static str = "vendors";
    const KEY: &'static str = "id";
    const CLASS: Class = Class::Platform;
    type Row = Vendor;
    type Input = VendorInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        super::check_id(input, "id")
    }

    /// A vendor changing kind must still price its deck's rows: the deck is locked, as
    /// its row writers lock it, and checked under the new kind.
    async fn check(
        conn: &mut PgConnection,
        _parent: Option<&str>,
        id: Option<&str>,
        row: &Map<String, Value>,
    ) -> ApiResult<()> {
        let Some(id) = id else { return Ok(()) };
        let deck: Option<i64> =
            sqlx::query_scalar("SELECT id FROM rate_decks WHERE vendor_id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        match deck {
            Some(deck) => {
                let kind = super::text(row, "kind");
                super::rate_decks::refuse_misfit_rows(conn, deck, kind, "kind").await
            }
            None => Ok(()),
        }
    }
}

/// A dialstring template in failover order (`{number}`, `{national}`, `{lrn}`, `{npdi}`).
#[derive(Serialize, FromRow, ToSchema)]
pub struct Gateway {
    pub vendor_id: String,
    pub priority: i32,
    pub dialstring: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayInput {
    pub priority: i32,
    /// A sip: or sips: URI template.
    pub dialstring: String,
}

impl Resource for Gateway {
    const NAME: &'static str = "gateway";
    const TABLE: &'static str = "gateways";
    const KEY: &'static str = "priority";
    const KEY_TYPE: &'static str = "integer";
    const PARENT: Option<&'static str> = Some("vendor_id");
    const CLASS: Class = Class::Platform;
    type Row = Gateway;
    type Input = GatewayInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        super::check_field(input, "dialstring", check_dialstring)
    }
}
