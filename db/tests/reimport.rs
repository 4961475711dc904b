//! Re-importing a dataset that drops a customer rows outside the dataset still need
//! (assigned numbers, billing records), against a real PostgreSQL.

mod common;

use sqlx::PgPool;
use warp_core::model::Dataset;
use warp_datagen::{generate, Scale};

/// `d` without customer `ban` and everything of its that the dataset carries.
fn without(d: &Dataset, ban: &str) -> Dataset {
    let mut d = d.clone();
    d.customers.retain(|c| c.ban != ban);
    d.trunks.retain(|t| t.ban != ban);
    d.customer_partitions.retain(|c| c.ban != ban);
    d.overrides.retain(|o| o.ban.as_deref() != Some(ban));
    d.exclusions.retain(|x| x.ban.as_deref() != Some(ban));
    d
}

async fn add_number(pool: &PgPool, e164: &str, ban: &str, status: &str) {
    sqlx::query(
        "INSERT INTO numbers (e164, ban, trunk_id, status)
         VALUES ($1, $2, (SELECT min(id) FROM trunks WHERE ban = $2), $3)",
    )
    .bind(e164)
    .bind(ban)
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
}

/// Rows per table an import writes or a deleted customer takes along.
async fn counts(pool: &PgPool) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for table in [
        "customers",
        "trunks",
        "trunk_ips",
        "trunk_credentials",
        "customer_partitions",
        "overrides",
        "exclusions",
        "rate_plans",
        "rate_rows",
        "dno",
        "lnp",
        "numbers",
        "billing.wallets",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        out.push((table, n));
    }
    out
}

/// Every number with its customer, trunk and status.
async fn numbers(pool: &PgPool) -> Vec<(String, Option<String>, Option<String>, String)> {
    sqlx::query_as("SELECT e164, ban, trunk_id, status FROM numbers ORDER BY e164")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn dropping_a_customer_with_assigned_numbers_is_refused_and_writes_nothing() {
    let (_pg, pool) = common::migrated_db().await;
    let a = generate(Scale::SMALL, 7);
    warp_db::import_dataset(&pool, &a).await.unwrap();
    let (kept, gone) = (&a.customers[0].ban, &a.customers[1].ban);
    for n in ["13035550104", "13035550101", "13035550102", "13035550103"] {
        add_number(&pool, n, gone, "assigned").await;
    }
    add_number(&pool, "13035550105", gone, "reserved").await;
    add_number(&pool, "13035550200", kept, "assigned").await;
    let (rows, inventory) = (counts(&pool).await, numbers(&pool).await);

    // Besides dropping the customer, the dataset would replace what COPY writes.
    let mut b = without(&a, gone);
    b.dno.clear();
    b.lnp.clear();
    let err = warp_db::import_dataset(&pool, &b)
        .await
        .unwrap_err()
        .to_string();
    for needle in [
        format!("{gone} has 4 assigned number(s) (13035550101, 13035550102, 13035550103, …)"),
        "release or move those numbers through the API".to_string(),
        "keep the customer(s) in the dataset".to_string(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in {err}");
    }
    assert!(!err.contains(kept.as_str()), "{err}");
    assert!(
        !err.contains("13035550105"),
        "a reserved number is named: {err}"
    );
    assert_eq!(counts(&pool).await, rows, "the refused import wrote rows");
    assert_eq!(numbers(&pool).await, inventory);
}

#[tokio::test]
async fn a_reimport_that_keeps_the_customer_keeps_its_numbers() {
    let (_pg, pool) = common::migrated_db().await;
    let a = generate(Scale::SMALL, 7);
    warp_db::import_dataset(&pool, &a).await.unwrap();
    let ban = &a.customers[1].ban;
    add_number(&pool, "13035550101", ban, "assigned").await;
    let inventory = numbers(&pool).await;

    let mut b = without(&a, &a.customers[2].ban);
    b.customers[1].name = "Renamed".into();
    warp_db::import_dataset(&pool, &b).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT name FROM customers WHERE ban = $1")
        .bind(ban)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(name, "Renamed");
    assert_eq!(numbers(&pool).await, inventory);
}

/// As the API's delete: a number held for the customer but not assigned to it goes back
/// to the inventory with its status, without customer or trunk.
#[tokio::test]
async fn dropping_a_customer_without_assigned_numbers_releases_the_others() {
    let (_pg, pool) = common::migrated_db().await;
    let a = generate(Scale::SMALL, 7);
    warp_db::import_dataset(&pool, &a).await.unwrap();
    let gone = &a.customers[1].ban;
    add_number(&pool, "13035550102", gone, "reserved").await;
    add_number(&pool, "13035550103", gone, "aging").await;

    warp_db::import_dataset(&pool, &without(&a, gone))
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM customers WHERE ban = $1")
        .bind(gone)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        numbers(&pool).await,
        vec![
            ("13035550102".into(), None, None, "reserved".into()),
            ("13035550103".into(), None, None, "aging".into()),
        ]
    );
}

#[tokio::test]
async fn dropping_a_customer_with_billing_records_is_refused_and_writes_nothing() {
    let (_pg, pool) = common::migrated_db().await;
    let a = generate(Scale::SMALL, 7);
    warp_db::import_dataset(&pool, &a).await.unwrap();
    let gone = &a.customers[1].ban;
    sqlx::query("INSERT INTO billing.wallets (ban, balance) VALUES ($1, 12.5)")
        .bind(gone)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO billing.transactions (ban, type, amount, balance_before, balance_after)
         VALUES ($1, 'payment', 12.5, 0, 12.5)",
    )
    .bind(gone)
    .execute(&pool)
    .await
    .unwrap();
    let rows = counts(&pool).await;

    let err = warp_db::import_dataset(&pool, &without(&a, gone))
        .await
        .unwrap_err()
        .to_string();
    for needle in [
        format!("{gone} has a wallet, transactions"),
        "keep the customer(s) in the dataset".to_string(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in {err}");
    }
    assert_eq!(counts(&pool).await, rows, "the refused import wrote rows");
}

/// As the API's update of a trunk: moved to another customer, it may not take numbers
/// of its current one along.
#[tokio::test]
async fn moving_a_trunk_that_numbers_of_its_customer_use_is_refused() {
    let (_pg, pool) = common::migrated_db().await;
    let a = generate(Scale::SMALL, 7);
    warp_db::import_dataset(&pool, &a).await.unwrap();
    let (from, to) = (&a.customers[0].ban, &a.customers[1].ban);
    add_number(&pool, "13035550101", from, "assigned").await;
    let trunk: String = sqlx::query_scalar("SELECT trunk_id FROM numbers")
        .fetch_one(&pool)
        .await
        .unwrap();
    let rows = counts(&pool).await;

    let mut b = a.clone();
    b.trunks
        .iter_mut()
        .filter(|t| t.id == trunk)
        .for_each(|t| t.ban = to.clone());
    b.dno.clear();
    let err = warp_db::import_dataset(&pool, &b)
        .await
        .unwrap_err()
        .to_string();
    let needle =
        format!("{trunk} (to customer {to}) carries 1 number(s) of another customer (13035550101)");
    assert!(err.contains(&needle), "missing {needle:?} in {err}");
    assert_eq!(counts(&pool).await, rows, "the refused import wrote rows");

    // Taken off the trunk, the number no longer holds the trunk back.
    sqlx::query("UPDATE numbers SET trunk_id = NULL")
        .execute(&pool)
        .await
        .unwrap();
    warp_db::import_dataset(&pool, &b).await.unwrap();
    let owner: String = sqlx::query_scalar("SELECT ban FROM trunks WHERE id = $1")
        .bind(&trunk)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(&owner, to);
}
