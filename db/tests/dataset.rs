//! Dataset → PostgreSQL → Dataset against a real PostgreSQL.

mod common;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::path::Path;
use warp_core::model::{AssignedNumber, Dataset, RateKey};
use warp_core::snapshot::{compile, Snapshot};
use warp_core::Number;
use warp_datagen::{generate, Scale};

/// Sorts every table so two datasets compare as sets of rows.
fn sorted(mut d: Dataset) -> Dataset {
    fn s<T: std::fmt::Debug>(v: &mut [T]) {
        v.sort_by_cached_key(|x| format!("{x:?}"));
    }
    s(&mut d.lerg);
    s(&mut d.local_calling);
    s(&mut d.dno);
    s(&mut d.lnp);
    s(&mut d.customers);
    s(&mut d.trunks);
    s(&mut d.vendors);
    s(&mut d.vendor_rates);
    s(&mut d.customer_rates);
    s(&mut d.partitions);
    s(&mut d.customer_partitions);
    s(&mut d.overrides);
    s(&mut d.exclusions);
    s(&mut d.numbers);
    d
}

#[tokio::test]
async fn import_then_load_gives_the_dataset_back() {
    let (_pg, pool) = common::migrated_db().await;
    let d = generate(Scale::SMALL, 7);
    assert!(!d.overrides.is_empty() && !d.exclusions.is_empty());
    let report = warp_db::import_dataset(&pool, &d).await.unwrap();
    let rates = report
        .tables
        .iter()
        .find(|(t, _)| *t == "rate_rows")
        .unwrap();
    assert_eq!(
        rates.1 as usize,
        d.vendor_rates.len() + d.customer_rates.len()
    );
    let back = warp_db::load_dataset(&pool).await.unwrap();
    assert_eq!(sorted(back), sorted(d));
    // The import rebuilt the indexes it dropped for COPY and kept the unique key.
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE indexname IN
         ('rate_rows_deck_key_from', 'rate_rows_prefix', 'rate_rows_ocn_lata', 'dno_number', 'lnp_number')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(indexes, 5);
    // The import analyzed what it wrote.
    let analyzed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stats WHERE tablename IN ('rate_rows', 'lnp')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(analyzed > 0);
}

#[tokio::test]
async fn an_import_whose_analyze_fails_is_rolled_back() {
    let (_pg, pool) = common::migrated_db().await;
    let good = generate(Scale::SMALL, 3);
    warp_db::import_dataset(&pool, &good).await.unwrap();
    // Statistics on an expression that raises: only ANALYZE evaluates it.
    sqlx::raw_sql(
        "CREATE FUNCTION boom(text) RETURNS text IMMUTABLE LANGUAGE plpgsql
           AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$;
         CREATE STATISTICS dno_boom ON (boom(number)) FROM dno",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = warp_db::import_dataset(&pool, &generate(Scale::SMALL, 4))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert_holds(
        &pool,
        &good,
        "an import reported as failed left its data behind",
    )
    .await;
}

#[tokio::test]
async fn reimport_replaces_and_keeps_what_the_model_does_not_carry() {
    let (_pg, pool) = common::migrated_db().await;
    let a = generate(Scale::SMALL, 1);
    warp_db::import_dataset(&pool, &a).await.unwrap();
    let ban = &a.customers[0].ban;
    sqlx::query("UPDATE customers SET contact_email = 'noc@example.com' WHERE ban = $1")
        .bind(ban)
        .execute(&pool)
        .await
        .unwrap();

    let mut b = generate(Scale::SMALL, 2);
    b.customers
        .retain(|c| &c.ban == ban || c.ban.ends_with('3'));
    let keep: Vec<String> = b.customers.iter().map(|c| c.ban.clone()).collect();
    b.trunks.retain(|t| keep.contains(&t.ban));
    b.customer_partitions.retain(|c| keep.contains(&c.ban));
    b.overrides
        .retain(|o| o.ban.as_ref().is_none_or(|x| keep.contains(x)));
    b.exclusions
        .retain(|o| o.ban.as_ref().is_none_or(|x| keep.contains(x)));
    warp_db::import_dataset(&pool, &b).await.unwrap();
    assert_holds(&pool, &b, "the database does not hold what was imported").await;
    let email: Option<String> =
        sqlx::query_scalar("SELECT contact_email FROM customers WHERE ban = $1")
            .bind(ban)
            .fetch_optional(&pool)
            .await
            .unwrap()
            .flatten();
    assert_eq!(email.as_deref(), Some("noc@example.com"));
}

#[tokio::test]
async fn a_bad_dataset_imports_nothing() {
    let (_pg, pool) = common::migrated_db().await;
    let good = generate(Scale::SMALL, 3);
    warp_db::import_dataset(&pool, &good).await.unwrap();
    // Same vendor and key, starting later while the first row is still in force.
    let mut bad = good.clone();
    let mut later = bad.vendor_rates[0].clone();
    later.effective_from += chrono::Duration::seconds(1);
    later.effective_to = None;
    bad.vendor_rates.push(later);
    bad.dno.clear();
    let err = warp_db::import_dataset(&pool, &bad).await.unwrap_err();
    let at = format!("vendor_rates row {}", bad.vendor_rates.len());
    assert!(
        err.to_string().contains(&at) && err.to_string().contains("overlaps vendor_rates row 1"),
        "{err}"
    );
    assert_holds(&pool, &good, "the failed import rolled back").await;
}

/// The DID inventory's numbers assigned for voice load with their customer, and
/// compile into the snapshot (what `$warp(attest)` reads); reserved, aging, ported-out,
/// available and voice-disabled ones do not. A re-import leaves the inventory alone.
#[tokio::test]
async fn numbers_assigned_for_voice_load_with_their_customer() {
    let (_pg, pool) = common::migrated_db().await;
    let d = generate(Scale::SMALL, 7);
    warp_db::import_dataset(&pool, &d).await.unwrap();
    let (a, b) = (&d.customers[0].ban, &d.customers[1].ban);
    let rows = [
        ("13035550100", Some(a), "assigned", true),
        ("442079460000", Some(b), "assigned", true),
        ("13035550101", Some(a), "assigned", false),
        ("13035550102", Some(a), "reserved", true),
        ("13035550103", Some(a), "aging", true),
        ("13035550104", Some(a), "ported_out", true),
        ("13035550105", None, "available", true),
    ];
    for (e164, ban, status, voice) in rows {
        sqlx::query(
            "INSERT INTO numbers (e164, ban, status, voice_enabled) VALUES ($1, $2, $3, $4)",
        )
        .bind(e164)
        .bind(ban)
        .bind(status)
        .bind(voice)
        .execute(&pool)
        .await
        .unwrap();
    }
    let assigned = |n: &str, ban: &String| AssignedNumber {
        number: Number::from_digits(n).unwrap(),
        ban: ban.clone(),
    };
    let expected = vec![assigned("13035550100", a), assigned("442079460000", b)];
    let back = warp_db::load_dataset(&pool).await.unwrap();
    assert_eq!(back.numbers, expected);
    let s = Snapshot::from_bytes(&compile(&back, 1).unwrap()).unwrap();
    assert!(s.is_assigned(Number::from_digits("13035550100").unwrap(), a));
    assert!(!s.is_assigned(Number::from_digits("13035550100").unwrap(), b));
    assert!(!s.is_assigned(Number::from_digits("13035550101").unwrap(), a));
    assert_eq!(s.summary().assigned_numbers, 2);

    warp_db::import_dataset(&pool, &d).await.unwrap();
    assert_eq!(
        warp_db::load_dataset(&pool).await.unwrap().numbers,
        expected
    );
}

/// `cargo test --release -p warp-db --test dataset -- --ignored --nocapture`
#[tokio::test]
#[ignore = "large: generates and imports ≈3.3M rows"]
async fn large_import_timing() {
    let (_pg, pool) = common::migrated_db().await;
    let d = generate(Scale::LARGE, 7);
    let report = warp_db::import_dataset(&pool, &d).await.unwrap();
    println!("import: {:?} {:?}", report.elapsed, report.tables);
    let t = std::time::Instant::now();
    let back = warp_db::load_dataset(&pool).await.unwrap();
    println!("load: {:?}", t.elapsed());
    assert_eq!(back.vendor_rates.len(), d.vendor_rates.len());
}

#[tokio::test]
async fn a_window_starting_at_24_00_is_refused_on_load() {
    let (_pg, pool) = common::migrated_db().await;
    warp_db::import_dataset(&pool, &generate(Scale::SMALL, 3))
        .await
        .unwrap();
    // The schema takes 1440 in both columns; as a start it would cover the whole next day.
    sqlx::query(
        "UPDATE overrides SET tz = 'UTC', days = 1, start_minute = 1440, end_minute = 1440",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = warp_db::load_dataset(&pool).await.unwrap_err().to_string();
    assert!(
        err.contains("overrides") && err.contains("window start 1440 min"),
        "{err}"
    );
}

/// The error as a CLI prints it: the message, then each source's.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        s = format!("{s}: {x}");
        source = x.source();
    }
    s
}

#[tokio::test]
async fn a_row_the_schema_refuses_is_named_once_in_the_error() {
    let (_pg, pool) = common::migrated_db().await;
    let good = generate(Scale::SMALL, 5);
    warp_db::import_dataset(&pool, &good).await.unwrap();
    // Built past the CSV checks (which refuse both): PostgreSQL holds 1..100 results
    // and 32-bit limits.
    let mut bad = good.clone();
    bad.customers[2].max_results = 500;
    let err = chain(&warp_db::import_dataset(&pool, &bad).await.unwrap_err());
    let row = format!("Failing row contains ({}, ", bad.customers[2].ban);
    assert!(err.contains(&row), "{err}");
    assert_eq!(
        err.matches("customers_max_results_check").count(),
        1,
        "{err}"
    );

    let mut bad = good.clone();
    bad.trunks[1].max_cps = 3_000_000_000;
    let err = chain(&warp_db::import_dataset(&pool, &bad).await.unwrap_err());
    assert!(err.contains("line 2, column max_cps"), "{err}");
    assert_eq!(err.matches("out of range").count(), 1, "{err}");
    assert_holds(&pool, &good, "a refused import left rows behind").await;
}

/// `warp import`: the directory read, every row checked, then imported.
/// The database holds `d` (in any order): what was imported, or what a refused or
/// failed import found there.
async fn assert_holds(pool: &sqlx::PgPool, d: &Dataset, why: &str) {
    let held = sorted(warp_db::load_dataset(pool).await.unwrap());
    assert_eq!(held, sorted(d.clone()), "{why}");
}

async fn import_dir(pool: &sqlx::PgPool, dir: &Path) -> Result<Dataset, String> {
    let d = warp_core::dataset::read_dir(dir).map_err(|e| e.to_string())?;
    warp_db::import_dataset(pool, &d)
        .await
        .map_err(|e| chain(&e))?;
    Ok(d)
}

/// The line of `file` whose `column` holds `value` (written by `write_dir`: one line a
/// row, no field quoted that these tests look for).
fn line_of(dir: &Path, file: &str, column: &str, value: &str) -> usize {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let i = header.iter().position(|c| *c == column).unwrap();
    text.lines()
        .position(|l| l.split(',').nth(i) == Some(value))
        .unwrap_or_else(|| panic!("no {value} in {file}'s {column}"))
        + 1
}

fn amount(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn time(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn values_past_what_their_columns_hold_are_refused_by_line_before_anything_is_written() {
    let (_pg, pool) = common::migrated_db().await;
    let good = generate(Scale::SMALL, 3);
    warp_db::import_dataset(&pool, &good).await.unwrap();
    let mut bad = good.clone();
    let integer = "the database holds 0 to 2147483647";
    let numeric = "the database holds 0 to 999999999.999999999";
    // (file, column, value as written, the limit the error names) of each change.
    let mut expected = Vec::new();
    let mut refuse = |file, column, value, why| expected.push((file, column, value, why));
    bad.trunks[1].max_cps = 3_000_000_000;
    refuse("trunks.csv", "max_cps", "3000000000", integer);
    bad.trunks[2].max_concurrent = 2_147_483_648;
    refuse("trunks.csv", "max_concurrent", "2147483648", integer);
    bad.lerg[4].lata = 4_000_000_000;
    refuse("lerg.csv", "lata", "4000000000", integer);
    let lata = bad.vendor_rates.iter_mut().find_map(|r| match &mut r.key {
        RateKey::OcnLata { lata, .. } => Some(lata),
        RateKey::Prefix(_) => None,
    });
    *lata.expect("an OCN_LATA rate row") = u32::MAX;
    refuse("vendor_rates.csv", "lata", "4294967295", integer);
    bad.vendor_rates[1].increments.subsequent = 2_500_000_000;
    refuse("vendor_rates.csv", "subsequent", "2500000000", integer);
    bad.vendor_rates[2].rates[0] = Some(amount("1234567890.5"));
    refuse("vendor_rates.csv", "interstate", "1234567890.5", numeric);
    bad.customer_rates[3].connect_fee = amount("1000000000");
    refuse("customer_rates.csv", "connect_fee", "1000000000", numeric);
    bad.customers[1].min_margin = amount("1234567890.25");
    refuse("customers.csv", "min_margin", "1234567890.25", numeric);
    bad.customers[2].rate_limit = Some(amount("5000000000"));
    refuse("customers.csv", "rate_limit", "5000000000", numeric);
    // Past numeric(18, 9)'s places PostgreSQL would round it without a word.
    bad.vendor_rates[3].rates[1] = Some(amount("0.0123456789"));
    refuse(
        "vendor_rates.csv",
        "intrastate",
        "0.0123456789",
        "more than 9 decimal places",
    );
    bad.customer_rates[4].effective_from = time("0000-06-01T00:00:00Z");
    let years = "the database holds the years 1 to 9999 (UTC)";
    refuse(
        "customer_rates.csv",
        "effective_from",
        "0000-06-01T00:00:00+00:00",
        years,
    );

    let dir = tempfile::tempdir().unwrap();
    warp_core::dataset::write_dir(&bad, dir.path()).unwrap();
    let err = import_dir(&pool, dir.path()).await.unwrap_err();
    for (file, column, value, why) in expected {
        let line = line_of(dir.path(), file, column, value);
        let at = format!("{file}:{line}: {column}: ");
        assert!(
            err.lines().any(|l| l.contains(&at) && l.contains(why)),
            "{at}… {why} is not in\n{err}"
        );
    }
    assert!(err.starts_with("11 bad row(s)"), "{err}");
    assert_holds(&pool, &good, "a refused import changed the database").await;
}

#[tokio::test]
async fn values_at_the_ends_of_what_their_columns_hold_are_imported_exactly() {
    let (_pg, pool) = common::migrated_db().await;
    let mut d = generate(Scale::SMALL, 3);
    d.trunks[0].max_cps = i32::MAX as u32;
    d.lerg[0].lata = i32::MAX as u32;
    d.vendor_rates[0].increments.initial = i32::MAX as u32;
    d.vendor_rates[0].rates[0] = Some(amount("999999999.999999999"));
    d.customer_rates[0].minimum_charge = amount("999999999.999999999");
    d.customers[0].min_margin = amount("0.000000001");
    d.customer_rates[0].effective_from = time("0001-01-01T00:00:00Z");
    d.customer_rates[0].effective_to = Some(time("9999-12-31T23:59:59Z"));
    let dir = tempfile::tempdir().unwrap();
    warp_core::dataset::write_dir(&d, dir.path()).unwrap();
    let read = import_dir(&pool, dir.path()).await.unwrap();
    assert_eq!(sorted(read), sorted(d.clone()));
    assert_holds(&pool, &d, "the database does not hold what was imported").await;
}

/// Waits until `n` backends wait for a lock.
async fn lock_waiters(pool: &sqlx::PgPool, n: i64) {
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{n} backends never waited for a lock");
}

#[tokio::test]
async fn a_load_during_an_import_sees_all_of_it_or_none_of_it() {
    let (_pg, pool) = common::migrated_db().await;
    warp_db::import_dataset(&pool, &generate(Scale::SMALL, 3))
        .await
        .unwrap();
    let new = generate(Scale::SMALL, 4);
    // Holds the import after its TRUNCATE, at the rate plans' upsert; a load started
    // then waits for the import's locks and reads after it commits.
    let mut gate = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE rate_plans IN SHARE MODE")
        .execute(&mut *gate)
        .await
        .unwrap();
    let import = warp_db::import_dataset(&pool, &new);
    let load = async {
        lock_waiters(&pool, 1).await;
        warp_db::load_dataset(&pool).await
    };
    let release = async {
        lock_waiters(&pool, 2).await;
        gate.commit().await.unwrap();
    };
    let (imported, loaded, ()) = tokio::join!(import, load, release);
    imported.unwrap();
    let seen = loaded.unwrap();
    assert!(
        sorted(seen.clone()) == sorted(new),
        "the load saw half an import: {} LERG rows, {} vendor rates, {} customers",
        seen.lerg.len(),
        seen.vendor_rates.len(),
        seen.customers.len()
    );
}

#[tokio::test]
async fn an_import_rebuilds_an_index_whose_name_needs_quoting() {
    let (_pg, pool) = common::migrated_db().await;
    // An operator's own index on a bulk table, which the import drops and rebuilds.
    sqlx::raw_sql(r#"CREATE INDEX "Rate rows by LATA" ON rate_rows (lata)"#)
        .execute(&pool)
        .await
        .unwrap();
    warp_db::import_dataset(&pool, &generate(Scale::SMALL, 3))
        .await
        .unwrap();
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'Rate rows by LATA'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn a_reimport_keeps_a_password_the_dataset_gives_none_and_takes_one_it_gives() {
    let (_pg, pool) = common::migrated_db().await;
    let mut d = generate(Scale::SMALL, 5);
    let ti = d
        .trunks
        .iter()
        .position(|t| !t.credentials.is_empty())
        .unwrap();
    let user = d.trunks[ti].credentials[0].username.clone();
    warp_db::import_dataset(&pool, &d).await.unwrap();
    let set = |sql: &'static str| {
        let (pool, user) = (pool.clone(), user.clone());
        async move {
            sqlx::query(sql).bind(user).execute(&pool).await.unwrap();
        }
    };
    let stored = || {
        let (pool, user) = (pool.clone(), user.clone());
        async move {
            let row: (String, Option<String>, Option<String>) = sqlx::query_as(
                "SELECT realm, ha1, ha1b FROM trunk_credentials WHERE username = $1",
            )
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap();
            row
        }
    };
    let [a, b, c] = ["a", "b", "c"].map(|x| x.repeat(32));
    // A password set through the API since the import.
    set("UPDATE trunk_credentials SET realm = 'warp', ha1 = repeat('a', 32), ha1b = repeat('a', 32) WHERE username = $1").await;
    warp_db::import_dataset(&pool, &d).await.unwrap();
    assert_eq!(stored().await, ("warp".into(), Some(a.clone()), Some(a)));
    let back = warp_db::load_dataset(&pool).await.unwrap();
    let loaded = |d: &Dataset| {
        d.trunks
            .iter()
            .flat_map(|t| &t.credentials)
            .find(|c| c.username == user)
            .cloned()
            .unwrap()
    };
    assert_eq!(loaded(&back).realm, "warp");
    // A dataset that gives one replaces it, and the ha1b of the old password goes.
    d.trunks[ti].credentials[0].realm = "edge".into();
    d.trunks[ti].credentials[0].ha1 = Some(b.clone());
    warp_db::import_dataset(&pool, &d).await.unwrap();
    assert_eq!(stored().await, ("edge".into(), Some(b), None));
    assert_eq!(
        loaded(&warp_db::load_dataset(&pool).await.unwrap()),
        loaded(&d)
    );
    // Moved to another trunk with no ha1 given, it keeps no password: whoever knew the
    // old one would call as the new trunk.
    d.trunks[ti].credentials[0].ha1 = None;
    warp_db::import_dataset(&pool, &d).await.unwrap();
    assert_eq!(stored().await.1, Some("b".repeat(32)));
    let moved = d.trunks[ti].credentials.remove(0);
    let other = (0..d.trunks.len()).find(|&i| i != ti).unwrap();
    d.trunks[other].credentials.push(moved);
    warp_db::import_dataset(&pool, &d).await.unwrap();
    assert_eq!(stored().await, ("edge".into(), None, None));
    // An ha1 stored in no realm (before the API asked for one) can match no challenge:
    // it loads without it, and the rest of the dataset still compiles.
    set("UPDATE trunk_credentials SET realm = '', ha1 = repeat('c', 32) WHERE username = $1").await;
    assert_eq!(stored().await.1, Some(c));
    let back = warp_db::load_dataset(&pool).await.unwrap();
    assert_eq!(loaded(&back).ha1, None);
    warp_core::snapshot::compile(&back, 1).unwrap();
}

/// The keepalive column of row `id` of `table` (trunks or vendors).
async fn stored_keepalive(pool: &sqlx::PgPool, table: &str, id: &str) -> bool {
    sqlx::query_scalar(&format!("SELECT keepalive FROM {table} WHERE id = $1"))
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A trunk's keepalive is imported, loaded back and compiled; a re-import sets it as
/// the dataset says, and a trunk written before the column (the migration's default,
/// or an insert that names no keepalive) keeps its keepalives.
#[tokio::test]
async fn a_trunks_keepalive_is_imported_loaded_and_compiled() {
    let (_pg, pool) = common::migrated_db().await;
    let mut d = generate(Scale::SMALL, 4);
    let id = d.trunks[1].id.clone();
    d.trunks[1].keepalive = false;
    warp_db::import_dataset(&pool, &d).await.unwrap();
    let stored = || stored_keepalive(&pool, "trunks", &id);
    assert!(!stored().await);
    let back = warp_db::load_dataset(&pool).await.unwrap();
    assert_eq!(sorted(back.clone()), sorted(d.clone()));
    let snapshot = Snapshot::from_bytes(&compile(&back, 1).unwrap()).unwrap();
    assert_eq!(snapshot.trunk_by_id(&id).map(|t| t.keepalive), Some(false));
    assert_eq!(
        snapshot.all_trunks().filter(|t| !t.keepalive).count(),
        1,
        "only {id} is sent no keepalives"
    );

    d.trunks[1].keepalive = true;
    warp_db::import_dataset(&pool, &d).await.unwrap();
    assert!(stored().await);
    let ban = &d.trunks[1].ban;
    sqlx::query("INSERT INTO trunks (id, ban) VALUES ('T-NEW', $1)")
        .bind(ban)
        .execute(&pool)
        .await
        .unwrap();
    let back = warp_db::load_dataset(&pool).await.unwrap();
    assert!(back.trunks.iter().all(|t| t.keepalive));
}

/// A vendor's keepalive is imported, loaded back and compiled; a re-import sets it as
/// the dataset says, and a vendor written before the column (the migration's default,
/// or an insert that names no keepalive) keeps its keepalives.
#[tokio::test]
async fn a_vendors_keepalive_is_imported_loaded_and_compiled() {
    let (_pg, pool) = common::migrated_db().await;
    let mut d = generate(Scale::SMALL, 4);
    let id = d.vendors[1].id.clone();
    d.vendors[1].keepalive = false;
    warp_db::import_dataset(&pool, &d).await.unwrap();
    let stored = || stored_keepalive(&pool, "vendors", &id);
    assert!(!stored().await);
    let back = warp_db::load_dataset(&pool).await.unwrap();
    assert_eq!(sorted(back.clone()), sorted(d.clone()));
    let snapshot = Snapshot::from_bytes(&compile(&back, 1).unwrap()).unwrap();
    let keepalive = |id: &str| snapshot.vendor_by_id(id).map(|v| v.keepalive);
    assert_eq!(keepalive(&id), Some(false));
    let others: Vec<_> = back.vendors.iter().filter(|v| v.id != id).collect();
    assert!(!others.is_empty());
    assert!(
        others.iter().all(|v| keepalive(&v.id) == Some(true)),
        "only {id} is sent no keepalives"
    );

    d.vendors[1].keepalive = true;
    warp_db::import_dataset(&pool, &d).await.unwrap();
    assert!(stored().await);
    sqlx::query("INSERT INTO vendors (id, name, kind) VALUES ('V-NEW', 'New', 'DNIS')")
        .execute(&pool)
        .await
        .unwrap();
    let back = warp_db::load_dataset(&pool).await.unwrap();
    assert!(back.vendors.iter().any(|v| v.id == "V-NEW"));
    assert!(back.vendors.iter().all(|v| v.keepalive));
}
