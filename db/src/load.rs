//! PostgreSQL → Dataset: the inverse of [`import_dataset`](crate::import_dataset), and
//! what `warp compile` reads when the source is the database.

use crate::import::{REPLACED, SCHEDULE_COLUMNS};
use crate::DbError;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use warp_core::model::*;
use warp_core::number::{Number, Prefix};
use warp_core::rating::Increments;
use warp_core::schedule::{Schedule, WeeklyWindow};

type ScheduleCols = (
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<i16>,
    Option<i16>,
    Option<i16>,
);

type CustomerCols = (String, String, String, Decimal, Option<Decimal>, i32, bool);

type RateCols = (
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
    i32,
    i32,
    Decimal,
    Decimal,
);

/// Every table [`load_dataset`] reads: a change to any of them is a routing change (the
/// API's triggers on them tell its instances to republish).
pub const ROUTING_TABLES: &[&str] = &[
    "customer_partitions",
    "customers",
    "dno",
    "exclusions",
    "gateways",
    "lerg_blocks",
    "lnp",
    "local_calling",
    "numbers",
    "overrides",
    "partition_routes",
    "partitions",
    "rate_decks",
    "rate_rows",
    "trunk_credentials",
    "trunk_ips",
    "trunks",
    "vendors",
];

/// The columns [`load_dataset`] reads of the routing tables it reads only part of (a
/// table not listed is read whole): a change to another column, such as a number's
/// CNAM or E911 address, is no routing change (the API's trigger on the table watches
/// these alone).
pub const ROUTING_COLUMNS: &[(&str, &[&str])] =
    &[("numbers", &["e164", "ban", "status", "voice_enabled"])];

/// The columns of `table` a change to which is a routing change; `None`: all of them.
pub fn routing_columns(table: &str) -> Option<&'static [&'static str]> {
    ROUTING_COLUMNS
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, columns)| *columns)
}

/// Reads the provisioning data back as a Dataset, in one consistent snapshot.
pub async fn load_dataset(pool: &PgPool) -> Result<Dataset, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // The import TRUNCATEs these, which is not MVCC-safe: a snapshot taken before it
    // commits sees them empty afterwards, beside the old customers and vendors. LOCK
    // takes no snapshot, so it goes first: an import in progress is waited for, and
    // one that starts now waits for this load.
    sqlx::query(&format!("LOCK TABLE {REPLACED} IN ACCESS SHARE MODE"))
        .execute(&mut *tx)
        .await?;
    let c: &mut PgConnection = &mut tx;
    let mut d = Dataset::default();

    let rows: Vec<(i32, Option<i16>, String, i32, String, String)> = sqlx::query_as(
        "SELECT npa_nxx, block, ocn, lata, state, rate_center FROM lerg_blocks ORDER BY ctid",
    )
    .fetch_all(&mut *c)
    .await?;
    for (npa_nxx, block, ocn, lata, state, rate_center) in rows {
        d.lerg.push(LergBlock {
            npa_nxx: unsigned("lerg_blocks", npa_nxx)?,
            block: block.map(|b| unsigned("lerg_blocks", b)).transpose()?,
            ocn,
            lata: unsigned("lerg_blocks", lata)?,
            state,
            rate_center,
        });
    }
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT state_a, rate_center_a, state_b, rate_center_b FROM local_calling ORDER BY ctid",
    )
    .fetch_all(&mut *c)
    .await?;
    d.local_calling = rows
        .into_iter()
        .map(|(sa, ra, sb, rb)| LocalPair {
            a: rate_center_key(&sa, &ra),
            b: rate_center_key(&sb, &rb),
        })
        .collect();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT number FROM dno ORDER BY ctid")
        .fetch_all(&mut *c)
        .await?;
    d.dno = rows
        .iter()
        .map(|(n,)| Number::from_digits(n))
        .collect::<Result<_, _>>()?;
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT number, lrn FROM lnp ORDER BY ctid")
        .fetch_all(&mut *c)
        .await?;
    d.lnp = rows
        .iter()
        .map(|(n, l)| Ok((Number::from_digits(n)?, Number::from_digits(l)?)))
        .collect::<Result<_, DbError>>()?;
    d.numbers = load_numbers(c).await?;

    let rows: Vec<CustomerCols> = sqlx::query_as(
        "SELECT ban, name, rate_plan, min_margin, rate_limit, max_results, enabled
             FROM customers ORDER BY ban",
    )
    .fetch_all(&mut *c)
    .await?;
    for (ban, name, rate_plan, min_margin, rate_limit, max_results, enabled) in rows {
        d.customers.push(Customer {
            ban,
            name,
            rate_plan,
            min_margin,
            rate_limit,
            max_results: unsigned("customers", max_results)?,
            enabled,
        });
    }
    d.trunks = load_trunks(c).await?;
    d.vendors = load_vendors(c).await?;
    d.vendor_rates = load_rates(c, "vendor_id").await?;
    d.customer_rates = load_rates(c, "rate_plan").await?;

    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, name FROM partitions ORDER BY id")
        .fetch_all(&mut *c)
        .await?;
    let mut routes: HashMap<String, Vec<String>> = HashMap::new();
    let pr: Vec<(String, String)> = sqlx::query_as(
        "SELECT partition_id, vendor_id FROM partition_routes WHERE enabled
         ORDER BY partition_id, position",
    )
    .fetch_all(&mut *c)
    .await?;
    for (p, v) in pr {
        routes.entry(p).or_default().push(v);
    }
    d.partitions = rows
        .into_iter()
        .map(|(id, name)| Partition {
            vendors: routes.remove(&id).unwrap_or_default(),
            id,
            name,
        })
        .collect();

    let rows: Vec<(String, String, i32, ScheduleCols)> = fetch_scheduled(
        c,
        &format!("SELECT ban, partition_id, priority, {SCHEDULE_COLUMNS} FROM customer_partitions ORDER BY id"),
    )
    .await?;
    for (ban, partition, priority, s) in rows {
        d.customer_partitions.push(CustomerPartition {
            ban,
            partition,
            priority,
            schedule: schedule("customer_partitions", s)?,
        });
    }
    let rows: Vec<(Option<String>, String, String, ScheduleCols)> = fetch_scheduled(
        c,
        &format!("SELECT ban, prefix, vendor_id, {SCHEDULE_COLUMNS} FROM overrides ORDER BY id"),
    )
    .await?;
    for (ban, p, vendor, s) in rows {
        d.overrides.push(Override {
            ban,
            prefix: prefix("overrides", &p)?,
            vendor,
            schedule: schedule("overrides", s)?,
        });
    }
    let rows: Vec<(Option<String>, Option<String>, String)> =
        sqlx::query_as("SELECT ban, vendor_id, prefix FROM exclusions ORDER BY id")
            .fetch_all(&mut *c)
            .await?;
    for (ban, vendor, p) in rows {
        d.exclusions.push(Exclusion {
            ban,
            vendor,
            prefix: prefix("exclusions", &p)?,
        });
    }
    tx.commit().await?;
    Ok(d)
}

/// The DID inventory's numbers assigned for voice, with their customer: the calling
/// numbers a customer's calls are fully attested for. A reserved, aging or ported-out
/// number, or one whose voice is off, is no longer (or not yet) the customer's to call
/// from. (An assigned number always has a customer: the table's CHECK.)
const NUMBERS_READ: &str = "SELECT e164, ban FROM numbers
     WHERE status = 'assigned' AND voice_enabled AND ban IS NOT NULL ORDER BY e164";

async fn load_numbers(c: &mut PgConnection) -> Result<Vec<AssignedNumber>, DbError> {
    let rows: Vec<(String, String)> = sqlx::query_as(NUMBERS_READ).fetch_all(&mut *c).await?;
    rows.into_iter()
        .map(|(number, ban)| {
            Ok(AssignedNumber {
                number: Number::from_digits(&number)?,
                ban,
            })
        })
        .collect()
}

async fn load_trunks(c: &mut PgConnection) -> Result<Vec<Trunk>, DbError> {
    let rows: Vec<(String, String, i32, i32, bool, String, bool)> = sqlx::query_as(
        "SELECT id, ban, max_concurrent, max_cps, enabled, auth_type, keepalive FROM trunks \
         ORDER BY id",
    )
    .fetch_all(&mut *c)
    .await?;
    let mut acl: HashMap<String, Vec<IpNet>> = HashMap::new();
    let ips: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT trunk_id, host(addr), masklen(addr) FROM trunk_ips ORDER BY id")
            .fetch_all(&mut *c)
            .await?;
    for (t, addr, len) in ips {
        let net = format!("{addr}/{len}")
            .parse()
            .map_err(|e: String| DbError::invalid("trunk_ips", e))?;
        acl.entry(t).or_default().push(net);
    }
    let mut credentials: HashMap<String, Vec<Credential>> = HashMap::new();
    let creds: Vec<(String, String, String, Option<String>)> =
        sqlx::query_as("SELECT trunk_id, username, realm, ha1 FROM trunk_credentials ORDER BY id")
            .fetch_all(&mut *c)
            .await?;
    for (t, username, realm, ha1) in creds {
        let mut credential = Credential {
            username,
            realm,
            ha1,
        };
        // An ha1 hashed in no realm (stored before the API asked for one) matches no
        // challenge: without it the credential is what it was, and the rest compiles.
        if credential.check().is_err() {
            credential.ha1 = None;
        }
        credentials.entry(t).or_default().push(credential);
    }
    rows.into_iter()
        .map(
            |(id, ban, max_concurrent, max_cps, enabled, auth_type, keepalive)| {
                Ok(Trunk {
                    acl: acl.remove(&id).unwrap_or_default(),
                    credentials: credentials.remove(&id).unwrap_or_default(),
                    auth: auth_type
                        .parse()
                        .map_err(|e: String| DbError::invalid("trunks", e))?,
                    id,
                    ban,
                    max_concurrent: unsigned("trunks", max_concurrent)?,
                    max_cps: unsigned("trunks", max_cps)?,
                    enabled,
                    keepalive,
                })
            },
        )
        .collect()
}

async fn load_vendors(c: &mut PgConnection) -> Result<Vec<Vendor>, DbError> {
    let rows: Vec<(String, String, String, i32, String, bool, bool)> = sqlx::query_as(
        "SELECT id, name, kind, priority, indeterminate_zone, enabled, keepalive FROM vendors \
         ORDER BY id",
    )
    .fetch_all(&mut *c)
    .await?;
    let mut gateways: HashMap<String, Vec<String>> = HashMap::new();
    let gw: Vec<(String, String)> =
        sqlx::query_as("SELECT vendor_id, dialstring FROM gateways ORDER BY vendor_id, priority")
            .fetch_all(&mut *c)
            .await?;
    for (v, g) in gw {
        gateways.entry(v).or_default().push(g);
    }
    rows.into_iter()
        .map(|(id, name, kind, priority, zone, enabled, keepalive)| {
            let bad = |e: String| DbError::invalid("vendors", e);
            Ok(Vendor {
                gateways: gateways.remove(&id).unwrap_or_default(),
                id,
                name,
                kind: kind.parse().map_err(bad)?,
                priority,
                indeterminate_zone: zone.parse().map_err(bad)?,
                enabled,
                keepalive,
            })
        })
        .collect()
}

/// Rate rows of the decks owned by `owner_column` (`vendor_id` or `rate_plan`).
async fn load_rates(c: &mut PgConnection, owner_column: &str) -> Result<Vec<RateRow>, DbError> {
    let rows: Vec<RateCols> = sqlx::query_as(&format!(
        "SELECT d.{owner_column}, r.prefix, r.ocn, r.lata, r.effective_from, r.effective_to,
                r.interstate, r.intrastate, r.local, r.zone1, r.tollfree, r.international,
                r.initial_secs, r.subsequent_secs, r.connect_fee, r.minimum_charge
         FROM rate_rows r JOIN rate_decks d ON d.id = r.deck_id
         WHERE d.{owner_column} IS NOT NULL ORDER BY r.id"
    ))
    .fetch_all(&mut *c)
    .await?;
    rows.into_iter().map(rate_row).collect()
}

fn rate_row(r: RateCols) -> Result<RateRow, DbError> {
    let (owner, p, ocn, lata, from, to, a, b, l, z, t, i, initial, subsequent, fee, min) = r;
    let key = match (p, ocn, lata) {
        (Some(p), None, None) => RateKey::Prefix(prefix("rate_rows", &p)?),
        (None, Some(ocn), Some(lata)) => RateKey::OcnLata {
            ocn,
            lata: unsigned("rate_rows", lata)?,
        },
        _ => {
            return Err(DbError::invalid(
                "rate_rows",
                "row has neither prefix nor ocn+lata",
            ))
        }
    };
    Ok(RateRow {
        owner,
        key,
        effective_from: from,
        effective_to: to,
        rates: [a, b, l, z, t, i],
        increments: Increments::new(
            unsigned("rate_rows", initial)?,
            unsigned("rate_rows", subsequent)?,
        )
        .map_err(|e| DbError::invalid("rate_rows", e))?,
        connect_fee: fee,
        minimum_charge: min,
    })
}

/// Fetches rows whose last six columns are a schedule.
async fn fetch_scheduled<A, B, C>(
    c: &mut PgConnection,
    sql: &str,
) -> Result<Vec<(A, B, C, ScheduleCols)>, DbError>
where
    for<'r> (
        A,
        B,
        C,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<String>,
        Option<i16>,
        Option<i16>,
        Option<i16>,
    ): sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    A: Send + Unpin,
    B: Send + Unpin,
    C: Send + Unpin,
{
    let rows: Vec<(A, B, C, _, _, _, _, _, _)> = sqlx::query_as(sql).fetch_all(c).await?;
    Ok(rows
        .into_iter()
        .map(|(a, b, x, f, t, tz, days, s, e)| (a, b, x, (f, t, tz, days, s, e)))
        .collect())
}

fn schedule(table: &'static str, s: ScheduleCols) -> Result<Schedule, DbError> {
    let (from, to, tz, days, start, end) = s;
    let window = match (tz, days, start, end) {
        (Some(tz), Some(days), Some(start), Some(end)) => Some(
            WeeklyWindow::new(
                tz.parse()
                    .map_err(|_| DbError::invalid(table, format!("unknown time zone {tz:?}")))?,
                unsigned(table, days)?,
                unsigned(table, start)?,
                unsigned(table, end)?,
            )
            .map_err(|e| DbError::invalid(table, e.to_string()))?,
        ),
        _ => None,
    };
    Ok(Schedule { from, to, window })
}

fn prefix(table: &'static str, p: &str) -> Result<Prefix, DbError> {
    Prefix::parse(p).map_err(|e| DbError::invalid(table, format!("prefix {p:?}: {e}")))
}

/// Narrows a stored integer to the model's unsigned type, refusing what does not fit.
fn unsigned<T: TryFrom<S>, S: Copy + std::fmt::Display>(
    table: &'static str,
    v: S,
) -> Result<T, DbError> {
    T::try_from(v).map_err(|_| DbError::invalid(table, format!("{v} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::{routing_columns, NUMBERS_READ, ROUTING_COLUMNS, ROUTING_TABLES};
    use std::collections::BTreeSet;

    /// The tables this file's queries name after `FROM` or `JOIN`.
    fn tables_read() -> BTreeSet<&'static str> {
        let source = include_str!("load.rs");
        ["FROM ", "JOIN "]
            .iter()
            .flat_map(|word| source.split(word).skip(1))
            .filter_map(|after| {
                let mut name = after.split(|c: char| !(c.is_ascii_lowercase() || c == '_'));
                name.next().filter(|n| !n.is_empty())
            })
            .collect()
    }

    /// The columns watched for routing changes on `numbers` are the ones its query
    /// names (its lowercase words, string literals and the table aside): a column read
    /// but not watched would leave its changes unpublished.
    #[test]
    fn the_numbers_columns_watched_are_the_columns_read() {
        let unquoted: String = NUMBERS_READ.split('\'').step_by(2).collect();
        let named: BTreeSet<&str> = unquoted
            .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase()) && *w != "numbers")
            .collect();
        let watched: BTreeSet<&str> = routing_columns("numbers")
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(named, watched);
        for (table, _) in ROUTING_COLUMNS {
            assert!(ROUTING_TABLES.contains(table), "{table}");
        }
        assert_eq!(routing_columns("trunks"), None);
    }

    #[test]
    fn routing_tables_are_the_tables_the_load_reads() {
        let listed: BTreeSet<&str> = ROUTING_TABLES.iter().copied().collect();
        assert_eq!(listed, tables_read());
    }
}
