//! Customers and trunks a re-import would delete or move while rows it does not carry
//! (numbers, billing records) still need them: refused up front, naming them and what
//! to do, as the API's 409s do, instead of PostgreSQL's raw check or foreign-key error
//! halfway through the transaction (or a number left on another customer's trunk).
//!
//! What goes with a deleted customer without a word, as with the API's delete: its
//! trunks, 911 addresses and SKU prices (cascade), and its numbers that are not
//! `assigned` (reserved, aging, ported out), which go back to the inventory with their
//! status and no customer (`ON DELETE SET NULL`). A number on a deleted trunk keeps its
//! customer and loses the trunk, as with the API's delete of a trunk.

use crate::DbError;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use warp_core::model::Dataset;

/// Numbers named in a refusal, per customer or trunk; the count says how many there are.
const NUMBERS_SHOWN: usize = 3;
/// Customers or trunks named in a refusal: a dataset dropping hundreds stays readable.
const HOLDERS_SHOWN: usize = 10;

/// Refuses `d` when a customer it drops has assigned numbers or billing records, or a
/// trunk it moves to another customer carries numbers not of that customer. Locks the
/// customers it drops and the trunks it moves (no number or wallet can come to
/// reference them meanwhile) and their numbers (none can change meanwhile), as the
/// API's delete and update do.
pub(crate) async fn refuse_changes_in_use(
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
    if !dropped.is_empty() {
        refuse_assigned_numbers(c, &dropped).await?;
        refuse_billing_records(c, &dropped).await?;
    }
    refuse_stranding_numbers(c, d).await
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
        .map(|(ban, n, first)| format!("{ban} has {n} assigned number(s) ({})", shown(*n, first)))
        .collect();
    Err(DbError::invalid(
        "customers",
        format!(
            "the dataset drops {} customer(s) that numbers are assigned to: {}; \
             release or move those numbers through the API (PATCH /api/v1/numbers/{{e164}}) \
             or keep the customer(s) in the dataset; nothing was imported",
            held.len(),
            listed(&each)
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
            listed(&each)
        ),
    ))
}

/// A trunk the dataset gives another customer may not take numbers of its current one
/// along (the API refuses that move too): they would stay on another customer's trunk.
async fn refuse_stranding_numbers(c: &mut PgConnection, d: &Dataset) -> Result<(), DbError> {
    let ids: Vec<&str> = d.trunks.iter().map(|t| t.id.as_str()).collect();
    let bans: Vec<&str> = d.trunks.iter().map(|t| t.ban.as_str()).collect();
    let moved: Vec<String> = sqlx::query_scalar(
        "SELECT t.id FROM trunks t JOIN unnest($1::text[], $2::text[]) AS d (id, ban) ON d.id = t.id
         WHERE t.ban <> d.ban ORDER BY t.id FOR UPDATE OF t",
    )
    .bind(&ids)
    .bind(&bans)
    .fetch_all(&mut *c)
    .await?;
    if moved.is_empty() {
        return Ok(());
    }
    let stranded: Vec<(String, String, i64, Vec<String>)> = sqlx::query_as(
        "WITH n AS MATERIALIZED (SELECT e164, ban, trunk_id FROM numbers
                                 WHERE trunk_id = ANY($3) FOR UPDATE)
         SELECT n.trunk_id, d.ban, count(*), (array_agg(n.e164 ORDER BY n.e164))[1:$4]
         FROM n JOIN unnest($1::text[], $2::text[]) AS d (id, ban) ON d.id = n.trunk_id
         WHERE n.ban IS DISTINCT FROM d.ban
         GROUP BY n.trunk_id, d.ban ORDER BY n.trunk_id",
    )
    .bind(&ids)
    .bind(&bans)
    .bind(&moved)
    .bind(NUMBERS_SHOWN as i32)
    .fetch_all(&mut *c)
    .await?;
    if stranded.is_empty() {
        return Ok(());
    }
    let each: Vec<String> = stranded
        .iter()
        .map(|(trunk, ban, n, first)| {
            format!(
                "{trunk} (to customer {ban}) carries {n} number(s) of another customer ({})",
                shown(*n, first)
            )
        })
        .collect();
    Err(DbError::invalid(
        "trunks",
        format!(
            "the dataset moves {} trunk(s) that numbers of another customer use: {}; \
             move those numbers or take the trunk off them through the API \
             (PATCH /api/v1/numbers/{{e164}}), or leave the trunk(s) with their customer \
             in the dataset; nothing was imported",
            stranded.len(),
            listed(&each)
        ),
    ))
}

/// The first numbers, and an ellipsis when there are more than those.
fn shown(count: i64, first: &[String]) -> String {
    let more = usize::try_from(count).unwrap_or(0) > first.len();
    format!("{}{}", first.join(", "), if more { ", …" } else { "" })
}

/// The first holders, and how many more there are.
fn listed(each: &[String]) -> String {
    let shown = each[..each.len().min(HOLDERS_SHOWN)].join("; ");
    match each.len().checked_sub(HOLDERS_SHOWN) {
        Some(more) if more > 0 => format!("{shown}; and {more} more"),
        _ => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_list_of_holders_names_the_first_ten_and_counts_the_rest() {
        let each: Vec<String> = (1..=12).map(|i| format!("C{i}")).collect();
        assert_eq!(
            listed(&each),
            "C1; C2; C3; C4; C5; C6; C7; C8; C9; C10; and 2 more"
        );
        assert_eq!(listed(&each[..10]), each[..10].join("; "));
    }

    #[test]
    fn numbers_past_the_first_few_are_marked() {
        let first = ["1".to_string(), "2".to_string()];
        assert_eq!(shown(2, &first), "1, 2");
        assert_eq!(shown(5, &first), "1, 2, …");
    }
}
