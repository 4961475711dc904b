//! A customer's rated calls (billing.rated_cdrs), filtered, in start order, paged by
//! a cursor on (start, call-id, leg, attempt). Vendor cost and margin stay internal.

use crate::auth::roles::{Access, Class};
use crate::auth::Principal;
use crate::envelope::Envelope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::page::Page;
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdrQuery {
    /// Calls starting at or after.
    pub start_date: Option<DateTime<Utc>>,
    /// Calls starting before.
    pub end_date: Option<DateTime<Utc>>,
    pub zone: Option<String>,
    pub vendor_id: Option<String>,
    pub disposition: Option<String>,
    pub trunk_id: Option<String>,
    /// Dialled numbers starting with these digits.
    pub dnis_prefix: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

pub const FILTERS: &[&str] = &[
    "start_date",
    "end_date",
    "zone",
    "vendor_id",
    "disposition",
    "trunk_id",
    "dnis_prefix",
];

#[derive(Serialize, FromRow, ToSchema)]
pub struct Cdr {
    pub call_id: String,
    pub leg: String,
    pub attempt: i32,
    pub start_stamp: DateTime<Utc>,
    pub answer_stamp: Option<DateTime<Utc>>,
    pub end_stamp: Option<DateTime<Utc>>,
    pub ban: String,
    pub trunk_id: Option<String>,
    pub ani: Option<String>,
    pub dnis: String,
    pub lrn: Option<String>,
    pub zone: String,
    pub ocn: Option<String>,
    pub lata: Option<i32>,
    pub state: Option<String>,
    pub routing_partition: Option<String>,
    pub vendor_id: Option<String>,
    pub sip_code: Option<i32>,
    pub disposition: String,
    pub duration_secs: i32,
    pub billed_secs: i32,
    #[schema(value_type = String)]
    pub customer_rate: Decimal,
    #[schema(value_type = String)]
    pub customer_charge: Decimal,
}

type Cursor = (DateTime<Utc>, String, String, i32);

fn cursor_of(c: &Cdr) -> String {
    serde_json::to_string(&(c.start_stamp, &c.call_id, &c.leg, c.attempt)).unwrap_or_default()
}

pub async fn list(
    State(st): State<AppState>,
    who: Principal,
    Path(ban): Path<String>,
    Query(q): Query<CdrQuery>,
) -> ApiResult<Envelope<Vec<Cdr>>> {
    who.require(Class::Cdrs, Access::Read)?;
    who.check_ban(&ban, "customer")?;
    let page = Page::new(q.limit, q.cursor)?;
    let after: Option<Cursor> = page
        .after
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|_| {
            ApiError::bad_request("INVALID_QUERY", "cursor is not one we gave").field("cursor")
        })?;
    if let Some(p) = q
        .dnis_prefix
        .as_deref()
        .filter(|p| !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            ApiError::bad_request("INVALID_QUERY", format!("{p:?} is not digits"))
                .field("dnis_prefix"),
        );
    }
    let (a_ts, a_id, a_leg, a_att) = match after {
        Some((t, c, l, a)) => (Some(t), Some(c), Some(l), Some(a)),
        None => (None, None, None, None),
    };
    let rows: Vec<Cdr> = sqlx::query_as(
        "SELECT call_id, leg, attempt, start_stamp, answer_stamp, end_stamp, ban, trunk_id,
                ani, dnis, lrn, zone, ocn, lata, state, routing_partition, vendor_id, sip_code,
                disposition, duration_secs, billed_secs, customer_rate, customer_charge
         FROM billing.rated_cdrs
         WHERE ban = $1
           AND ($2::timestamptz IS NULL OR start_stamp >= $2)
           AND ($3::timestamptz IS NULL OR start_stamp < $3)
           AND ($4::text IS NULL OR zone = $4)
           AND ($5::text IS NULL OR vendor_id = $5)
           AND ($6::text IS NULL OR disposition = $6)
           AND ($7::text IS NULL OR trunk_id = $7)
           AND ($8::text IS NULL OR starts_with(dnis, $8))
           AND ($9::timestamptz IS NULL
                OR (start_stamp, call_id, leg, attempt) > ($9, $10::text, $11::text, $12::int))
         ORDER BY start_stamp, call_id, leg, attempt
         LIMIT $13",
    )
    .bind(&ban)
    .bind(q.start_date)
    .bind(q.end_date)
    .bind(q.zone.map(|z| z.to_ascii_uppercase()))
    .bind(q.vendor_id)
    .bind(q.disposition.map(|d| d.to_ascii_uppercase()))
    .bind(q.trunk_id)
    .bind(q.dnis_prefix)
    .bind(a_ts)
    .bind(a_id)
    .bind(a_leg)
    .bind(a_att)
    .bind(page.limit as i64 + 1)
    .fetch_all(&st.pool)
    .await?;
    let (rows, meta) = page.finish(rows, cursor_of);
    Ok(Envelope::page(rows, meta))
}
