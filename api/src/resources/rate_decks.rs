//! Rate decks, one per vendor (buy side) or rate plan (sell side), and their rows one
//! by one; whole-deck uploads are in [`deck_upload`](super::deck_upload).

use crate::auth::roles::Class;
use crate::crud::{Resource, Rule};
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;
use warp_db::rates::{self, overlaps, Span};

#[derive(Serialize, FromRow, ToSchema)]
pub struct RateDeck {
    pub id: i64,
    pub vendor_id: Option<String>,
    pub rate_plan: Option<String>,
}

/// Exactly one of `vendor_id` and `rate_plan`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateDeckInput {
    pub vendor_id: Option<String>,
    pub rate_plan: Option<String>,
}

impl Resource for RateDeck {
    const NAME: &'static str = "rate_deck";
    const TABLE: &'static str = "rate_decks";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const FILTERS: &'static [&'static str] = &["vendor_id", "rate_plan"];
    const CLASS: Class = Class::Platform;
    type Row = RateDeck;
    type Input = RateDeckInput;

    /// A deck given to another owner must suit its rows (see [`refuse_misfit_rows`]).
    /// Runs under the deck's row lock; the new vendor is share-locked so its kind
    /// cannot change before this commits. Its own vendor is not: a change of that
    /// vendor's kind holds the vendor and waits for this deck (the other lock order).
    async fn check(
        conn: &mut PgConnection,
        _parent: Option<&str>,
        id: Option<&str>,
        row: &Map<String, Value>,
    ) -> ApiResult<()> {
        let Some(deck) = id.and_then(|i| i.parse().ok()) else {
            return Ok(());
        };
        let vendor = super::text(row, "vendor_id");
        let owner: Option<String> =
            sqlx::query_scalar("SELECT vendor_id FROM rate_decks WHERE id = $1")
                .bind(deck)
                .fetch_one(&mut *conn)
                .await?;
        if owner.as_deref() == vendor {
            return Ok(());
        }
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM vendors WHERE id = $1 FOR SHARE")
                .bind(vendor)
                .fetch_optional(&mut *conn)
                .await?;
        refuse_misfit_rows(conn, deck, kind.as_deref(), "vendor_id").await
    }
}

/// Refuses to have deck `deck` priced by an owner of `kind` (a vendor's kind, none for
/// a rate plan) while it holds a row keyed otherwise than that owner prices (the rule
/// of [`RateDeckRow`]): the engine would never look such rows up, and the vendor would
/// drop out of routing without a word. The caller holds the deck's lock.
pub async fn refuse_misfit_rows(
    conn: &mut PgConnection,
    deck: i64,
    kind: Option<&str>,
    field: &str,
) -> ApiResult<()> {
    let misfit: Option<String> = sqlx::query_scalar(
        "SELECT rate_key FROM rate_rows WHERE deck_id = $1
           AND (CASE $2::text WHEN 'OCN_LATA' THEN ocn IS NULL ELSE prefix IS NULL END)
         ORDER BY id LIMIT 1",
    )
    .bind(deck)
    .bind(kind)
    .fetch_optional(conn)
    .await?;
    match misfit {
        Some(key) => Err(ApiError::conflict(format!(
            "deck {deck} holds rows keyed like {key}, which an owner pricing by {} cannot \
             use (OCN_LATA vendors price by ocn and lata, every other deck by prefix); \
             replace its rows first",
            kind.unwrap_or("prefix")
        ))
        .field(field)),
        None => Ok(()),
    }
}

/// A rate row's amounts.
const MONEY: [&str; 8] = [
    "interstate",
    "intrastate",
    "local",
    "zone1",
    "tollfree",
    "international",
    "connect_fee",
    "minimum_charge",
];

/// Per-minute rates by zone (null = not offered), keyed by a digit prefix or by
/// (OCN, LATA), effective over [effective_from, effective_to).
#[derive(Serialize, FromRow, ToSchema)]
pub struct RateDeckRow {
    pub id: i64,
    pub deck_id: i64,
    pub prefix: Option<String>,
    pub ocn: Option<String>,
    pub lata: Option<i32>,
    pub effective_from: DateTime<Utc>,
    pub effective_to: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub interstate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub intrastate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub local: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub zone1: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub tollfree: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub international: Option<Decimal>,
    pub initial_secs: i32,
    pub subsequent_secs: i32,
    #[schema(value_type = String)]
    pub connect_fee: Decimal,
    #[schema(value_type = String)]
    pub minimum_charge: Decimal,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateDeckRowInput {
    pub prefix: Option<String>,
    pub ocn: Option<String>,
    pub lata: Option<i32>,
    pub effective_from: DateTime<Utc>,
    pub effective_to: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub interstate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub intrastate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub local: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub zone1: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub tollfree: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub international: Option<Decimal>,
    pub initial_secs: Option<i32>,
    pub subsequent_secs: Option<i32>,
    #[schema(value_type = Option<String>)]
    pub connect_fee: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub minimum_charge: Option<Decimal>,
}

impl Resource for RateDeckRow {
    const NAME: &'static str = "rate_row";
    const TABLE: &'static str = "rate_rows";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const PARENT: Option<&'static str> = Some("deck_id");
    const PARENT_TYPE: &'static str = "bigint";
    const FILTERS: &'static [&'static str] = &["prefix", "ocn"];
    const CLASS: Class = Class::Platform;
    const RULE: Option<Rule> = Some(Rule {
        holds: "CASE (SELECT coalesce(v.kind, 'PLAN') FROM rate_decks d
                      LEFT JOIN vendors v ON v.id = d.vendor_id WHERE d.id = r.deck_id)
                WHEN 'OCN_LATA' THEN r.ocn IS NOT NULL ELSE r.prefix IS NOT NULL END",
        field: "prefix",
        message: "OCN_LATA vendors price by ocn and lata; every other deck by prefix",
    });
    type Row = RateDeckRow;
    type Input = RateDeckRowInput;

    /// As exact as the snapshot and the deck upload keep rates and times.
    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        super::check_places(input, &MONEY, warp_core::money::SCALE)?;
        super::check_whole_seconds(input, &["effective_from", "effective_to"])
    }

    /// Writers of one deck take turns (see `warp_db::rates`).
    async fn lock(conn: &mut PgConnection, parent: Option<&str>) -> ApiResult<()> {
        if let Some(deck) = parent.and_then(|p| p.parse().ok()) {
            rates::lock_deck(conn, deck).await?;
        }
        Ok(())
    }

    /// Refuses a row whose effective dates overlap a stored row of its deck and key.
    async fn check(
        conn: &mut PgConnection,
        parent: Option<&str>,
        id: Option<&str>,
        row: &Map<String, Value>,
    ) -> ApiResult<()> {
        // A row without a deck, key or start is the schema's to refuse.
        let (Some(deck), Ok(r)) = (
            parent.and_then(|p| p.parse::<i64>().ok()),
            serde_json::from_value::<RowSpan>(Value::Object(row.clone())),
        ) else {
            return Ok(());
        };
        let key = match (r.prefix, r.ocn, r.lata) {
            (Some(p), _, _) => p,
            (None, Some(o), Some(l)) => format!("{o}/{l}"),
            _ => return Ok(()),
        };
        let own = id.and_then(|i| i.parse::<i64>().ok());
        let (ids, mut spans): (Vec<i64>, Vec<Span>) =
            rates::stored_spans(conn, deck, std::slice::from_ref(&key))
                .await?
                .into_iter()
                .filter(|(i, _)| Some(*i) != own)
                .unzip();
        spans.push(Span {
            key,
            from: r.effective_from,
            to: r.effective_to,
        });
        let new = spans.len() - 1;
        match overlaps(&spans)
            .into_iter()
            .find(|&(a, b)| a == new || b == new)
        {
            Some((a, b)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "RATE_OVERLAP",
                format!(
                    "overlapping effective dates: {} from {} overlaps stored row {}",
                    spans[new].key,
                    r.effective_from,
                    ids[a.min(b)]
                ),
            )
            .field("effective_from")),
            None => Ok(()),
        }
    }
}

/// What the overlap check reads of a row being written.
#[derive(Deserialize)]
struct RowSpan {
    prefix: Option<String>,
    ocn: Option<String>,
    lata: Option<i32>,
    effective_from: DateTime<Utc>,
    effective_to: Option<DateTime<Utc>>,
}
