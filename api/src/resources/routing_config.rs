//! Routing configuration: rate plans, partitions and their vendor routes, customer ↔
//! partition assignments, overrides, exclusions, the DNO list.

use super::{check_prefix, check_schedule, normalise_number, number_key};
use crate::auth::roles::Class;
use crate::crud::Resource;
use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{FromRow, PgConnection};
use std::borrow::Cow;
use utoipa::ToSchema;

#[derive(Serialize, FromRow, ToSchema)]
pub struct RatePlan {
    pub id: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatePlanInput {
    pub id: String,
    pub description: Option<String>,
}

impl Resource for RatePlan {
    const NAME: &'static str = "rate_plan";
    const TABLE: &'static str = "rate_plans";
    const KEY: &'static str = "id";
    const CLASS: Class = Class::Platform;
    type Row = RatePlan;
    type Input = RatePlanInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        super::check_id(input, "id")
    }
}

#[derive(Serialize, FromRow, ToSchema)]
pub struct Partition {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionInput {
    pub id: String,
    pub name: String,
}

impl Resource for Partition {
    const NAME: &'static str = "partition";
    const TABLE: &'static str = "partitions";
    const KEY: &'static str = "id";
    const CLASS: Class = Class::Platform;
    type Row = Partition;
    type Input = PartitionInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        super::check_id(input, "id")
    }
}

/// A vendor a partition offers, in `position` order; disabled routes are skipped.
#[derive(Serialize, FromRow, ToSchema)]
pub struct PartitionRoute {
    pub partition_id: String,
    pub vendor_id: String,
    pub position: i32,
    pub enabled: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionRouteInput {
    pub vendor_id: String,
    pub position: i32,
    pub enabled: Option<bool>,
}

impl Resource for PartitionRoute {
    const NAME: &'static str = "partition_route";
    const TABLE: &'static str = "partition_routes";
    const KEY: &'static str = "vendor_id";
    const PARENT: Option<&'static str> = Some("partition_id");
    const CLASS: Class = Class::Platform;
    type Row = PartitionRoute;
    type Input = PartitionRouteInput;
}

/// A partition assigned to a customer, with priority (lower first) and an optional
/// validity range and weekly window (`days` bitmask Mon=1 … Sun=64, minutes after
/// local midnight in `tz`).
#[derive(Serialize, FromRow, ToSchema)]
pub struct CustomerPartition {
    pub id: i64,
    pub ban: String,
    pub partition_id: String,
    pub priority: i32,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub tz: Option<String>,
    pub days: Option<i16>,
    pub start_minute: Option<i16>,
    pub end_minute: Option<i16>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPartitionInput {
    pub partition_id: String,
    pub priority: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub tz: Option<String>,
    pub days: Option<i16>,
    pub start_minute: Option<i16>,
    pub end_minute: Option<i16>,
}

impl Resource for CustomerPartition {
    const NAME: &'static str = "customer_partition";
    const TABLE: &'static str = "customer_partitions";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const PARENT: Option<&'static str> = Some("ban");
    const CLASS: Class = Class::Platform;
    type Row = CustomerPartition;
    type Input = CustomerPartitionInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        check_schedule(input)
    }
}

/// Forces `vendor_id` first for calls to `prefix` (of one customer, or all when `ban`
/// is null) while its schedule applies.
#[derive(Serialize, FromRow, ToSchema)]
pub struct Override {
    pub id: i64,
    pub ban: Option<String>,
    pub prefix: String,
    pub vendor_id: String,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub tz: Option<String>,
    pub days: Option<i16>,
    pub start_minute: Option<i16>,
    pub end_minute: Option<i16>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideInput {
    pub ban: Option<String>,
    pub prefix: String,
    pub vendor_id: String,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub tz: Option<String>,
    pub days: Option<i16>,
    pub start_minute: Option<i16>,
    pub end_minute: Option<i16>,
}

impl Resource for Override {
    const NAME: &'static str = "override";
    const TABLE: &'static str = "overrides";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const FILTERS: &'static [&'static str] = &["ban", "vendor_id", "prefix"];
    const CLASS: Class = Class::Platform;
    type Row = Override;
    type Input = OverrideInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        check_prefix(input, "prefix")?;
        check_schedule(input)
    }
}

/// Without a vendor the destination is blocked; with one, that vendor is not used.
#[derive(Serialize, FromRow, ToSchema)]
pub struct Exclusion {
    pub id: i64,
    pub ban: Option<String>,
    pub vendor_id: Option<String>,
    pub prefix: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExclusionInput {
    pub ban: Option<String>,
    pub vendor_id: Option<String>,
    pub prefix: String,
}

impl Resource for Exclusion {
    const NAME: &'static str = "exclusion";
    const TABLE: &'static str = "exclusions";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const FILTERS: &'static [&'static str] = &["ban", "vendor_id", "prefix"];
    const CLASS: Class = Class::Platform;
    type Row = Exclusion;
    type Input = ExclusionInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        check_prefix(input, "prefix")
    }
}

/// A Do-Not-Originate number: calls from it are refused.
#[derive(Serialize, FromRow, ToSchema)]
pub struct DnoNumber {
    /// E.164 digits.
    pub number: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DnoNumberInput {
    /// Any accepted form; stored as E.164 digits.
    pub number: String,
}

impl Resource for DnoNumber {
    const NAME: &'static str = "dno_number";
    const TABLE: &'static str = "dno";
    const KEY: &'static str = "number";
    const CLASS: Class = Class::Platform;
    type Row = DnoNumber;
    type Input = DnoNumberInput;

    fn key(id: &str) -> Cow<'_, str> {
        number_key(id)
    }

    fn prepare(input: &mut Map<String, Value>, given: &[String]) -> ApiResult<()> {
        normalise_number(input, "number", given)
    }

    /// The table has no unique constraint (it is bulk-loaded): a number listed twice
    /// would be one entry shown as two, and paging by number would skip the second.
    /// Creates of one number take turns on a lock of that number.
    async fn check(
        conn: &mut PgConnection,
        _parent: Option<&str>,
        id: Option<&str>,
        row: &Map<String, Value>,
    ) -> ApiResult<()> {
        let (None, Some(number)) = (id, super::text(row, "number")) else {
            return Ok(());
        };
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('dno'), hashtext($1))")
            .bind(number)
            .execute(&mut *conn)
            .await?;
        let listed: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM dno WHERE number = $1")
            .bind(number)
            .fetch_optional(conn)
            .await?;
        match listed {
            Some(_) => {
                Err(ApiError::conflict(format!("{number} is already listed")).field("number"))
            }
            None => Ok(()),
        }
    }
}
