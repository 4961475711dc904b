//! Rate rows: the no-overlap rule every writer keeps, and bulk writing with COPY.
//!
//! Rows of one deck and key may not overlap in time. The schema only refuses exact
//! duplicates (unique deck, key, start): a GiST exclusion constraint made a million-row
//! deck take over a minute to load. So a writer locks the deck ([`lock_deck`]), checks
//! its rows against each other and against the stored rows of their keys
//! ([`overlaps`], [`stored_spans`]), then writes, all in one transaction.

use crate::copy::copy_in;
use crate::DbError;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use warp_core::model::{RateKey, RateRow};

type Time = DateTime<Utc>;

/// What the rule looks at: the key as stored (`rate_key`) and `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub key: String,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

impl Span {
    pub fn of(r: &RateRow) -> Span {
        Span {
            key: key_text(&r.key),
            from: r.effective_from,
            to: r.effective_to,
        }
    }
}

/// The `rate_key` column's form of a key: the prefix, or `OCN/LATA`.
pub fn key_text(k: &RateKey) -> String {
    match k {
        RateKey::Prefix(p) => p.to_string(),
        RateKey::OcnLata { ocn, lata } => format!("{ocn}/{lata}"),
    }
}

/// Pairs `(i, j)` of spans of one key that overlap, `j` starting no earlier than `i`.
/// Only neighbours in start order are compared, which finds at least one pair whenever
/// any two spans of a key overlap.
pub fn overlaps(spans: &[Span]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| (&spans[a].key, spans[a].from).cmp(&(&spans[b].key, spans[b].from)));
    order
        .windows(2)
        .filter(|w| {
            let (a, b) = (&spans[w[0]], &spans[w[1]]);
            a.key == b.key && a.to.is_none_or(|t| t > b.from)
        })
        .map(|w| (w[0], w[1]))
        .collect()
}

/// Locks the deck until the transaction ends, so writers of one deck check and write
/// one at a time. Take it before touching the deck's rows (lock order: deck, then
/// rows). False when there is no such deck.
pub async fn lock_deck(c: &mut PgConnection, deck: i64) -> Result<bool, DbError> {
    let found = sqlx::query("SELECT 1 FROM rate_decks WHERE id = $1 FOR UPDATE")
        .bind(deck)
        .fetch_optional(c)
        .await?;
    Ok(found.is_some())
}

/// The stored rows of `deck` under `keys` (`rate_key` form), with their ids. Read
/// under [`lock_deck`] so no other writer adds to them before the caller commits.
pub async fn stored_spans(
    c: &mut PgConnection,
    deck: i64,
    keys: &[String],
) -> Result<Vec<(i64, Span)>, DbError> {
    let rows: Vec<(i64, String, Time, Option<Time>)> = sqlx::query_as(
        "SELECT id, rate_key, effective_from, effective_to FROM rate_rows
         WHERE deck_id = $1 AND rate_key = ANY($2)",
    )
    .bind(deck)
    .bind(keys)
    .fetch_all(c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, key, from, to)| (id, Span { key, from, to }))
        .collect())
}

/// COPYs checked rows, each with its deck id, into rate_rows.
pub async fn copy_rates<'a>(
    c: &mut PgConnection,
    rows: impl IntoIterator<Item = (i64, &'a RateRow)>,
) -> Result<u64, DbError> {
    copy_in(
        c,
        "rate_rows (deck_id, prefix, ocn, lata, effective_from, effective_to, interstate, \
         intrastate, local, zone1, tollfree, international, initial_secs, subsequent_secs, \
         connect_fee, minimum_charge)",
        rows,
        |w, (deck, r)| {
            w.field(deck);
            match &r.key {
                RateKey::Prefix(p) => w.field(p).opt(None::<u8>).opt(None::<u8>),
                RateKey::OcnLata { ocn, lata } => w.opt(None::<u8>).field(ocn).field(lata),
            };
            w.field(r.effective_from.to_rfc3339())
                .opt(r.effective_to.map(|t| t.to_rfc3339()));
            for rate in &r.rates {
                w.opt(*rate);
            }
            w.field(r.increments.initial)
                .field(r.increments.subsequent)
                .field(r.connect_fee)
                .field(r.minimum_charge);
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(key: &str, from: i64, to: Option<i64>) -> Span {
        let t = |d: i64| DateTime::from_timestamp(d * 86_400, 0).unwrap();
        Span {
            key: key.into(),
            from: t(from),
            to: to.map(t),
        }
    }

    #[test]
    fn only_ranges_of_one_key_that_meet_overlap() {
        let spans = [
            span("1303", 10, Some(20)),
            span("1303", 20, None),
            span("1720", 15, None),
            span("1303", 0, Some(10)),
        ];
        assert!(overlaps(&spans).is_empty(), "back to back, other keys");
        let spans = [
            span("1303", 10, None),
            span("1720", 0, None),
            span("1303", 30, Some(40)),
        ];
        assert_eq!(overlaps(&spans), [(0, 2)]);
        let same_start = [span("1/2", 5, Some(6)), span("1/2", 5, Some(6))];
        assert_eq!(overlaps(&same_start).len(), 1);
    }
}
