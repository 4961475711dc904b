//! Customers a re-import would delete while rows it does not carry still need them:
//! refused up front, naming the customer and what to do, instead of PostgreSQL's raw
//! check or foreign-key error halfway through the transaction.
//!
//! What goes with a deleted customer without a word, as with the API's delete: its
//! trunks, 911 addresses and SKU prices (cascade), and its numbers that are not
//! `assigned` (reserved, aging, ported out), which go back to the inventory with their
//! status and no customer (`ON DELETE SET NULL`).

use crate::DbError;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use warp_core::model::Dataset;

/// Numbers named in the refusal, per customer; the count says how many there are.
const NUMBERS_SHOWN: usize = 3;

/// Refuses `d` when a customer it drops has assigned numbers or billing records. Locks
/// the customers it drops (no number or wallet can come to reference them meanwhile)
/// and their numbers (none can become assigned meanwhile), as the API's delete does.
pub(crate) async fn refuse_dropping_customers_in_use(
    c: &mut PgConnection,
    d: &Dataset,
) -> Result<(), DbError> {
    let kept: Vec<&str> = d.customers.iter().map(|x| x.ban.as_str()).collect();
    let dropped: Vec<String> = sqlx::query_scalar(
        "SELECT ban FROM customers WHERE ban <> ALL($1) ORDER BY ban FOR UPDATE",
    )
    .bind(&kept)
    .fetch_all(&mut *c)
    .await?;
    if dropped.is_empty() {
        return Ok(());
    }
    refuse_assigned_numbers(c, &dropped).await?;
    refuse_billing_records(c, &dropped).await
}

async fn refuse_assigned_numbers(c: &mut PgConnection, dropped: &[String]) -> Result<(), DbError> {
    let held: Vec<(String, i64, Vec<String>)> = sqlx::query_as(
        "WITH n AS MATERIALIZED (SELECT ban, e164, status FROM numbers WHERE ban = ANY($1) FOR UPDATE)
         SELECT ban, count(*), (array_agg(e164 ORDER BY e164))[1:$2] FROM n
         WHERE status = 'assigned' GROUP BY ban ORDER BY ban",
    )
    .bind(dropped)
    .bind(NUMBERS_SHOWN as i32)
    .fetch_all(&mut *c)
    .await?;
    if held.is_empty() {
        return Ok(());
    }
    let each: Vec<String> = held
        .iter()
        .map(|(ban, n, first)| {
            let more = if usize::try_from(*n).unwrap_or(0) > first.len() {
                ", …"
            } else {
                ""
            };
            format!(
                "{ban} has {n} assigned number(s) ({}{more})",
                first.join(", ")
            )
        })
        .collect();
    Err(DbError::invalid(
        "customers",
        format!(
            "the dataset drops {} customer(s) that numbers are assigned to: {}; \
             release or move those numbers through the API (PATCH /api/v1/numbers/{{e164}}) \
             or keep the customer(s) in the dataset; nothing was imported",
            held.len(),
            each.join("; ")
        ),
    ))
}

/// Wallets, ledger entries, invoices and payment methods keep their customer (no
/// cascade): money owed or paid stays on record.
async fn refuse_billing_records(c: &mut PgConnection, dropped: &[String]) -> Result<(), DbError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT ban, what FROM (
             SELECT ban, 1 AS i, 'a wallet' AS what FROM billing.wallets WHERE ban = ANY($1)
             UNION SELECT ban, 2, 'transactions' FROM billing.transactions WHERE ban = ANY($1)
             UNION SELECT ban, 3, 'invoices' FROM billing.invoices WHERE ban = ANY($1)
             UNION SELECT ban, 4, 'payment methods' FROM billing.payment_methods WHERE ban = ANY($1)
         ) held ORDER BY ban, i",
    )
    .bind(dropped)
    .fetch_all(&mut *c)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (ban, what) in rows {
        held.entry(ban).or_default().push(what);
    }
    let each: Vec<String> = held
        .iter()
        .map(|(ban, what)| format!("{ban} has {}", what.join(", ")))
        .collect();
    Err(DbError::invalid(
        "customers",
        format!(
            "the dataset drops {} customer(s) with billing records: {}; \
             keep the customer(s) in the dataset (enabled false stops their calls); \
             nothing was imported",
            held.len(),
            each.join("; ")
        ),
    ))
}
