//! Cursor paging: `?limit=N&cursor=C`, where the cursor is the opaque (base64) sort key
//! of the last row of the previous page.

use crate::envelope::Meta;
use crate::error::{ApiError, ApiResult};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::HashMap;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

pub struct Page {
    pub limit: usize,
    /// The decoded sort key to continue after.
    pub after: Option<String>,
}

impl Page {
    /// Takes `limit` and `cursor` out of the query.
    pub fn take(query: &mut HashMap<String, String>) -> ApiResult<Page> {
        let limit = query
            .remove("limit")
            .map(|v| v.parse::<usize>().unwrap_or(0));
        Page::new(limit, query.remove("cursor"))
    }

    pub fn new(limit: Option<usize>, cursor: Option<String>) -> ApiResult<Page> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "INVALID_QUERY",
                format!("limit must be 1..={MAX_LIMIT}"),
            )
            .field("limit"));
        }
        let after = cursor
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(bad_cursor)
            })
            .transpose()?;
        Ok(Page { limit, after })
    }

    /// Trims the extra row fetched to detect a next page and says where it starts.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Meta) {
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);
        let next_cursor = more
            .then(|| rows.last().map(|r| URL_SAFE_NO_PAD.encode(key(r))))
            .flatten();
        let meta = Meta {
            count: rows.len(),
            limit: self.limit,
            next_cursor,
        };
        (rows, meta)
    }
}

/// One page of an `api.*` table ordered by its integer id, limited to the caller's
/// tenant (`None`: every tenant): what the key and user listings share.
pub async fn by_id<T>(
    pool: &sqlx::PgPool,
    query: &mut HashMap<String, String>,
    table: &str,
    columns: &str,
    tenant: Option<&str>,
    id: impl Fn(&T) -> i64,
) -> ApiResult<(Vec<T>, Meta)>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let page = Page::take(query)?;
    no_extra(query)?;
    let after: i64 = page
        .after
        .as_deref()
        .map_or(Ok(0), str::parse)
        .map_err(|_| bad_cursor())?;
    let rows: Vec<T> = sqlx::query_as(&format!(
        "SELECT {columns} FROM {table} WHERE id > $1 AND ($2::text IS NULL OR ban = $2)
         ORDER BY id LIMIT $3"
    ))
    .bind(after)
    .bind(tenant)
    .bind(page.limit as i64 + 1)
    .fetch_all(pool)
    .await?;
    Ok(page.finish(rows, |r| id(r).to_string()))
}

/// A cursor that decodes to no sort key of the listing: a bad query (400), whatever
/// the key's type.
pub fn bad_cursor() -> ApiError {
    ApiError::bad_request("INVALID_QUERY", "cursor is not one we gave").field("cursor")
}

/// Refuses query parameters nobody reads, naming the first.
pub fn no_extra(query: &HashMap<String, String>) -> ApiResult<()> {
    match query.keys().next() {
        Some(k) => Err(ApiError::bad_request(
            "INVALID_QUERY",
            format!("unknown query parameter {k:?}"),
        )
        .field(k.clone())),
        None => Ok(()),
    }
}

/// `value` as stored, if it is one of `known` in any case: a filter value no row can
/// hold is refused (400 naming the filter), so a misspelt filter is not read as "none".
pub fn one_of(field: &str, value: &str, known: &[&'static str]) -> ApiResult<&'static str> {
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(value))
        .copied()
        .ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_QUERY",
                format!(
                    "unknown {field} {value:?} (expected one of {})",
                    known.join(", ")
                ),
            )
            .field(field)
        })
}
