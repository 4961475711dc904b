//! Generation numbers shared by every instance. PostgreSQL keeps the last one handed
//! out, with its payload's hash and the time it was stamped (`api.snapshot_generation`).
//! A publisher locks that table, loads and compiles, and then decides: the same payload
//! keeps its generation and stamp, so every instance writes the same bytes under the
//! same number; any other payload takes the next number. Loading under the lock keeps
//! the order: a higher generation never holds older data.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use warp_core::snapshot::format::Header;
use warp_core::Snapshot;

/// What makes a snapshot's bytes, besides its payload: its generation and creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub generation: u64,
    pub payload_hash: u64,
    pub created_unix: i64,
}

impl Stamp {
    pub fn of(s: &Snapshot) -> Self {
        Stamp {
            generation: s.generation(),
            payload_hash: s.payload_hash(),
            created_unix: s.created_unix(),
        }
    }

    /// As [`Stamp::of`], from a header alone (a file of any format).
    pub fn of_header(h: &Header) -> Self {
        Stamp {
            generation: h.generation,
            payload_hash: h.payload_hash,
            created_unix: h.created_unix,
        }
    }

    /// The same generation of the same data (stamped at the same time or not).
    fn same_data(&self, other: &Stamp) -> bool {
        (self.generation, self.payload_hash) == (other.generation, other.payload_hash)
    }
}

/// Holds every other instance's publish off until `tx` ends. Reading stays open.
pub async fn lock(tx: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("LOCK TABLE api.snapshot_generation IN EXCLUSIVE MODE")
        .execute(tx)
        .await
        .map(drop)
}

const LAST: &str = "SELECT generation, payload_hash, created_unix FROM api.snapshot_generation";

/// The last generation handed out, if any has been.
pub async fn last(tx: &mut PgConnection) -> sqlx::Result<Option<Stamp>> {
    read(tx, LAST).await
}

/// The last generation handed out, once any publish in flight has ended: an instance
/// serves its new file just before its transaction commits the number, and a reader
/// that did not wait could take that file for one no instance handed out.
pub async fn last_settled(conn: &mut PgConnection) -> sqlx::Result<Option<Stamp>> {
    // FOR SHARE waits for the EXCLUSIVE lock a publisher holds.
    read(conn, &format!("{LAST} FOR SHARE")).await
}

async fn read(conn: &mut PgConnection, sql: &str) -> sqlx::Result<Option<Stamp>> {
    let row: Option<(Decimal, String, i64)> = sqlx::query_as(sql).fetch_optional(conn).await?;
    let Some((generation, hash, created_unix)) = row else {
        return Ok(None);
    };
    let unreadable =
        |what: String| sqlx::Error::Decode(format!("api.snapshot_generation holds {what}").into());
    Ok(Some(Stamp {
        generation: generation
            .to_u64()
            .ok_or_else(|| unreadable(format!("generation {generation}")))?,
        payload_hash: u64::from_str_radix(&hash, 16)
            .map_err(|_| unreadable(format!("payload hash {hash:?}")))?,
        created_unix,
    }))
}

/// Makes `stamp` the last generation handed out.
pub async fn record(tx: &mut PgConnection, stamp: &Stamp) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO api.snapshot_generation (generation, payload_hash, created_unix)
         VALUES ($1, $2, $3)
         ON CONFLICT (only_row) DO UPDATE SET generation = EXCLUDED.generation,
             payload_hash = EXCLUDED.payload_hash, created_unix = EXCLUDED.created_unix,
             decided_at = now()",
    )
    .bind(Decimal::from(stamp.generation))
    .bind(format!("{:016x}", stamp.payload_hash))
    .bind(stamp.created_unix)
    .execute(tx)
    .await
    .map(drop)
}

/// The stamp of a payload hashing `payload_hash`, compiled at `created_unix`, given the
/// `last` generation handed out and the snapshots this instance `held` (its file, the
/// one in memory). The last one's, when it is this payload and nothing held is as new
/// with other data or newer; else one past the newest of them all (a file from
/// elsewhere included: an edge may hold it). A cluster with no record yet starts from
/// what it holds. `Err(newest)` when `newest` is the last generation there is.
pub fn decide(
    last: Option<Stamp>,
    held: &[Stamp],
    payload_hash: u64,
    created_unix: i64,
) -> Result<Stamp, u64> {
    let newest_held = held.iter().max_by_key(|s| s.generation).copied();
    let last = last.or(newest_held);
    if let Some(last) = last.filter(|l| l.payload_hash == payload_hash) {
        if held
            .iter()
            .all(|h| h.generation < last.generation || h.same_data(&last))
        {
            return Ok(last);
        }
    }
    let newest = last
        .iter()
        .chain(held)
        .map(|s| s.generation)
        .max()
        .unwrap_or(0);
    let generation = newest.checked_add(1).ok_or(newest)?;
    Ok(Stamp {
        generation,
        payload_hash,
        created_unix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(generation: u64, payload_hash: u64) -> Stamp {
        Stamp {
            generation,
            payload_hash,
            created_unix: 1_000 + generation as i64,
        }
    }

    #[test]
    fn the_same_payload_keeps_its_generation_and_stamp() {
        let last = stamp(5, 0xa);
        assert_eq!(decide(Some(last), &[], 0xa, 9_999), Ok(last));
        assert_eq!(decide(Some(last), &[stamp(4, 0xb)], 0xa, 9_999), Ok(last));
        assert_eq!(decide(Some(last), &[last], 0xa, 9_999), Ok(last));
    }

    #[test]
    fn another_payload_takes_the_next_generation() {
        let next = decide(Some(stamp(5, 0xa)), &[stamp(5, 0xa)], 0xb, 9_999);
        assert_eq!(
            next,
            Ok(Stamp {
                generation: 6,
                payload_hash: 0xb,
                created_unix: 9_999
            })
        );
    }

    #[test]
    fn numbering_stays_above_what_is_held() {
        // A file from elsewhere, newer than the record: above it, even for the same data.
        let from_elsewhere = stamp(40, 0xc);
        for payload in [0xa, 0xc] {
            let next = decide(Some(stamp(5, 0xa)), &[from_elsewhere], payload, 0);
            assert_eq!(next.map(|s| s.generation), Ok(41));
        }
        // As new as the record, with other data: not that number again.
        let next = decide(Some(stamp(5, 0xa)), &[stamp(5, 0xd)], 0xa, 0);
        assert_eq!(next.map(|s| s.generation), Ok(6));
    }

    #[test]
    fn without_a_record_the_file_held_is_the_last() {
        let held = stamp(12, 0xa);
        assert_eq!(decide(None, &[held, stamp(9, 0xa)], 0xa, 0), Ok(held));
        assert_eq!(decide(None, &[held], 0xb, 0).map(|s| s.generation), Ok(13));
        assert_eq!(decide(None, &[], 0xb, 0).map(|s| s.generation), Ok(1));
    }

    #[test]
    fn past_the_last_generation_is_refused() {
        assert_eq!(
            decide(Some(stamp(3, 0xa)), &[stamp(u64::MAX, 0xa)], 0xa, 0),
            Err(u64::MAX)
        );
    }
}
