//! A customer's rated calls (billing.rated_cdrs), filtered, in start order, paged by
//! a cursor on (start, call-id, leg, attempt). Vendor cost and margin stay internal.

use crate::auth::roles::{Access, Class};
use crate::auth::Principal;
use crate::envelope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::page::{bad_cursor, one_of, Page, DEFAULT_LIMIT};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::sync::LazyLock;
use utoipa::ToSchema;
use warp_core::zone::Zone;

mod json;
mod wire;

#[derive(Default, Deserialize)]
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

/// A rated call as the API shows it: the schema of what [`json::rows`] writes.
#[derive(ToSchema)]
#[allow(dead_code)] // Never built: it describes the JSON written from the rows.
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

/// [`Cdr`]'s columns, as [`json::COLUMNS`] names them.
static CDR_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let names: Vec<&str> = json::COLUMNS.iter().map(|(name, _)| *name).collect();
    names.join(", ")
});

type Cursor = (DateTime<Utc>, String, String, i32);

enum Bind {
    Text(String),
    Time(DateTime<Utc>),
    Int(i32),
}

/// Conditions joined by AND, each with its typed parameter.
#[derive(Default)]
struct Filters {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Filters {
    /// `condition` is the left side and operator, e.g. `"start_stamp >= "`.
    fn add(&mut self, condition: &str, value: Bind) {
        self.binds.push(value);
        self.clauses
            .push(format!("{condition}${}", self.binds.len()));
    }
}

/// The sort key of a row (columns 3, 0, 1, 2), as the cursor carries it.
fn cursor_of(row: &PgRow) -> String {
    let key = (|| -> Result<_, sqlx::error::BoxDynError> {
        // An infinite start makes no cursor (and the page after it a 400), not a panic.
        let at = wire::utc(row.try_get_raw(3)?.as_bytes()?)?;
        let (call, leg): (&str, &str) = (row.try_get(0)?, row.try_get(1)?);
        Ok((at, call, leg, row.try_get::<i32, _>(2)?))
    })();
    key.ok()
        .and_then(|k| serde_json::to_string(&k).ok())
        .unwrap_or_default()
}

pub async fn list(
    State(st): State<AppState>,
    who: Principal,
    Path(ban): Path<String>,
    Query(q): Query<CdrQuery>,
) -> ApiResult<Response> {
    who.require(Class::Cdrs, Access::Read)?;
    who.check_ban(&ban, "customer")?;
    let page = Page::new(q.limit, q.cursor.clone())?;
    let after: Option<Cursor> = page
        .after
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|_| bad_cursor())?;
    let q = checked(q)?;
    let mut conn = st.pool.acquire().await?;
    let rows = fetch_page(&mut conn, ban, q, after, page.limit).await?;
    let (rows, meta) = page.finish(rows, cursor_of);
    Ok(envelope::raw_page(&meta, |body| json::rows(body, &rows))?)
}

/// The dispositions a rated call can have (the CHECK on billing.rated_cdrs).
const DISPOSITIONS: &[&str] = &["ANSWERED", "NO_ANSWER", "BUSY", "FAILED", "CANCELLED"];

/// The filters taking only a few values, for the spec.
pub const FILTER_VALUES: &[(&str, &[&str])] = &[("disposition", DISPOSITIONS)];

/// `q` with its zone and disposition in their stored (upper) case. A value no CDR
/// can hold is refused, so a misspelt filter is not read as "no calls".
fn checked(mut q: CdrQuery) -> ApiResult<CdrQuery> {
    let invalid =
        |field: &str, why: String| ApiError::bad_request("INVALID_QUERY", why).field(field);
    if let Some(p) = q
        .dnis_prefix
        .as_deref()
        .filter(|p| !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid("dnis_prefix", format!("{p:?} is not digits")));
    }
    if let Some(z) = &q.zone {
        let zone = z.parse::<Zone>().map_err(|why| invalid("zone", why))?;
        q.zone = Some(zone.as_str().to_string());
    }
    if let Some(d) = &q.disposition {
        q.disposition = Some(one_of("disposition", d, DISPOSITIONS)?.to_string());
    }
    Ok(q)
}

/// Up to `limit + 1` CDRs of `ban` matching `q`, after the cursor's row.
async fn fetch_page(
    conn: &mut PgConnection,
    ban: String,
    q: CdrQuery,
    after: Option<Cursor>,
    limit: usize,
) -> sqlx::Result<Vec<PgRow>> {
    let wanted = limit + 1;
    // The later of the two: a cursor from before start_date (made by another query)
    // must not start the page, or the rest of it below would ignore start_date.
    let from = after.as_ref().map(|c| c.0).max(q.start_date);
    // A page nearly always lies within the month it starts in, so the first query reads
    // that month's partition by name: through the parent, every execution of the
    // generic plan locked and opened every partition and its indexes (most of
    // PostgreSQL's time per page). Only a short page looks further, through the parent.
    // Partitions are named by four-digit years: a signed year (`-0001`, `+10000`) names
    // none and would not even be an identifier.
    let Some((month, month_end)) = from
        .filter(|f| (0..=9999).contains(&f.year()))
        .and_then(|f| Some((f, next_month(f)?)))
    else {
        let all = (q.start_date, q.end_date);
        return fetch_rows(conn, PARENT, &ban, &q, all, after, wanted).await;
    };
    let partition = format!("{PARENT}_{}", month.format("%Y%m"));
    let window = (
        q.start_date,
        Some(q.end_date.map_or(month_end, |e| e.min(month_end))),
    );
    let mut rows = match fetch_rows(conn, &partition, &ban, &q, window, after.clone(), wanted).await
    {
        // No partition for that month yet: its rows are in the default one.
        Err(e) if is_undefined_table(&e) => {
            fetch_rows(conn, PARENT, &ban, &q, window, after, wanted).await?
        }
        other => other?,
    };
    if rows.len() < wanted && q.end_date.is_none_or(|e| month_end < e) {
        let rest = (Some(month_end), q.end_date);
        let rest = fetch_rows(conn, PARENT, &ban, &q, rest, None, wanted).await?;
        rows.extend(rest.into_iter().take(wanted - rows.len()));
    }
    Ok(rows)
}

/// The partitioned table; its monthly partitions are `{PARENT}_YYYYMM` (UTC months).
const PARENT: &str = "billing.rated_cdrs";

fn is_undefined_table(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "42P01")
}

/// The first instant of the month after `t`'s (UTC, as the CDR partitions are cut).
fn next_month(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (y, m) = match t.month() {
        12 => (t.year() + 1, 1),
        m => (t.year(), m + 1),
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()
}

/// Up to `n` CDRs of `ban` in `table` matching `q`'s filters, starting in
/// `[from, until)`, after the cursor's row.
async fn fetch_rows(
    conn: &mut PgConnection,
    table: &str,
    ban: &str,
    q: &CdrQuery,
    (from, until): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    after: Option<Cursor>,
    n: usize,
) -> sqlx::Result<Vec<PgRow>> {
    // Only the filters given, bound with their own types, so the (ban, start) index
    // and partition pruning apply.
    let mut f = Filters::default();
    f.add("ban = ", Bind::Text(ban.to_string()));
    if let Some(t) = from {
        f.add("start_stamp >= ", Bind::Time(t));
    }
    if let Some(t) = until {
        f.add("start_stamp < ", Bind::Time(t));
    }
    for (col, v) in [
        ("zone = ", q.zone.clone()),
        ("vendor_id = ", q.vendor_id.clone()),
        ("disposition = ", q.disposition.clone()),
        ("trunk_id = ", q.trunk_id.clone()),
    ] {
        if let Some(v) = v {
            f.add(col, Bind::Text(v));
        }
    }
    if let Some(p) = &q.dnis_prefix {
        f.add("dnis LIKE ", Bind::Text(format!("{p}%")));
    }
    if let Some((ts, call, leg, attempt)) = after {
        f.add("start_stamp >= ", Bind::Time(ts));
        let n = f.binds.len();
        f.clauses.push(format!(
            "(start_stamp, call_id, leg, attempt) > (${n}, ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3
        ));
        f.binds
            .extend([Bind::Text(call), Bind::Text(leg), Bind::Int(attempt)]);
    }
    let sql = format!(
        "SELECT {} FROM {table} WHERE {}
         ORDER BY start_stamp, call_id, leg, attempt LIMIT {}",
        *CDR_COLUMNS,
        f.clauses.join(" AND "),
        n
    );
    let mut query = sqlx::query(&sql);
    for b in f.binds {
        query = match b {
            Bind::Text(v) => query.bind(v),
            Bind::Time(v) => query.bind(v),
            Bind::Int(v) => query.bind(v),
        };
    }
    query.fetch_all(conn).await
}

/// Months back from now whose page queries each connection prepares when it opens.
const WARM_MONTHS: u32 = 12;

/// Prepares the usual page queries (a first page from a date, the pages after it) on a
/// new connection, for each month of the last year and the next: a page reads its
/// month's partition by name, and the first generic plan of each such statement reads
/// that partition's catalog (milliseconds, on a client's request otherwise; in the
/// first second of a load test they were its worst latencies).
pub async fn warm(conn: &mut PgConnection) -> sqlx::Result<()> {
    // Months counted from year 0, so that stepping across a new year is plain addition.
    let now = Utc::now();
    let this = now.year() * 12 + now.month0() as i32;
    for month in this - WARM_MONTHS as i32..=this + 1 {
        let Some(start) = Utc
            .with_ymd_and_hms(
                month.div_euclid(12),
                month.rem_euclid(12) as u32 + 1,
                1,
                0,
                0,
                0,
            )
            .single()
        else {
            continue;
        };
        for after in [None, Some((start, String::new(), String::new(), 1))] {
            let q = CdrQuery {
                start_date: Some(start),
                ..CdrQuery::default()
            };
            fetch_page(conn, String::new(), q, after, DEFAULT_LIMIT).await?;
        }
    }
    Ok(())
}
