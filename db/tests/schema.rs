//! The schema against a real PostgreSQL: migrations, and the constraints that must
//! refuse bad data whoever writes it.

mod common;

use sqlx::PgPool;

async fn exec(pool: &PgPool, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(pool).await.map(|_| ())
}

/// The constraint a failed statement violated.
fn violated(r: Result<(), sqlx::Error>) -> String {
    match r {
        Err(sqlx::Error::Database(e)) => e.constraint().unwrap_or(e.message()).to_string(),
        other => panic!("expected a constraint violation, got {other:?}"),
    }
}

const VENDOR_AND_PLAN: &str = "
    INSERT INTO vendors (id, name, kind) VALUES ('V1', 'Vendor 1', 'LRN');
    INSERT INTO rate_plans (id) VALUES ('P1');
    INSERT INTO rate_decks (vendor_id) VALUES ('V1');
    INSERT INTO customers (ban, name, rate_plan) VALUES ('B1', 'Cust', 'P1');";

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_rerun_cleanly() {
    let (_pg, pool) = common::migrated_db().await;
    warp_db::migrate(&pool)
        .await
        .expect("second run is a no-op");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'billing')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(tables > 30, "only {tables} tables");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, 9);
}

#[tokio::test]
async fn provisioning_constraints_refuse_bad_rows() {
    let (_pg, pool) = common::migrated_db().await;
    exec(&pool, VENDOR_AND_PLAN).await.unwrap();
    let row = |from: &str, to: &str| {
        format!(
            "INSERT INTO rate_rows (deck_id, prefix, effective_from, effective_to, interstate)
             SELECT id, '1303', '{from}', {to}, 0.004 FROM rate_decks WHERE vendor_id = 'V1'"
        )
    };
    exec(&pool, &row("2025-01-01", "'2025-06-01'"))
        .await
        .unwrap();
    // Back to back is fine; the same vendor + prefix + start twice is not (overlapping
    // ranges are the writers' to refuse, see warp_db::rates).
    exec(&pool, &row("2025-06-01", "NULL")).await.unwrap();
    assert_eq!(
        violated(exec(&pool, &row("2025-06-01", "'2025-09-01'")).await),
        "rate_rows_deck_key_from"
    );
    // The same range under another prefix is another key.
    exec(
        &pool,
        &row("2025-03-01", "NULL").replace("'1303'", "'1720'"),
    )
    .await
    .unwrap();

    // A dialling prefix (011, 00) can match no E.164 number.
    assert_eq!(
        violated(
            exec(
                &pool,
                &row("2025-01-01", "NULL").replace("'1303'", "'01144'")
            )
            .await
        ),
        "rate_rows_prefix_no_leading_zero"
    );
    assert_eq!(
        violated(
            exec(
                &pool,
                "INSERT INTO exclusions (ban, prefix) VALUES ('B1', '0044')"
            )
            .await
        ),
        "exclusions_prefix_no_leading_zero"
    );
    assert_eq!(
        violated(
            exec(
                &pool,
                "INSERT INTO overrides (prefix, vendor_id) VALUES ('0', 'V1')"
            )
            .await
        ),
        "overrides_prefix_no_leading_zero"
    );

    let negative = "INSERT INTO rate_rows (deck_id, prefix, effective_from, interstate)
        SELECT id, '44', '2025-01-01', -0.01 FROM rate_decks WHERE vendor_id = 'V1'";
    assert_eq!(
        violated(exec(&pool, negative).await),
        "rate_rows_interstate_check"
    );
    assert_eq!(
        violated(exec(&pool, "UPDATE customers SET min_margin = -1").await),
        "customers_min_margin_check"
    );
    assert_eq!(
        violated(
            exec(
                &pool,
                "INSERT INTO partitions (id, name) VALUES ('P', 'p');
                 INSERT INTO partition_routes (partition_id, vendor_id, position)
                 VALUES ('P', 'NOPE', 1)"
            )
            .await
        ),
        "partition_routes_vendor_id_fkey"
    );
    assert_eq!(
        violated(
            exec(
                &pool,
                "INSERT INTO billing.transactions (ban, type, amount, balance_before, balance_after)
                 VALUES ('B1', 'payment', 10, 0, 5)"
            )
            .await
        ),
        "transactions_check"
    );
}

/// numeric takes NaN, and PostgreSQL orders it above every number: `CHECK (x >= 0)`
/// alone lets it in. Every numeric column refuses it, in every partition, and declares
/// a precision, which refuses infinities.
#[tokio::test]
async fn amounts_refuse_nan_and_infinity() {
    let (_pg, pool) = common::migrated_db().await;
    let cdr = |call: &str, at: &str, charge: &str| {
        format!(
            "INSERT INTO billing.rated_cdrs (call_id, start_stamp, ban, dnis, zone, disposition,
                 customer_rate, customer_initial, customer_subsequent, customer_charge)
             VALUES ('{call}', '{at}', 'B1', '13035550100', 'LOCAL', 'ANSWERED',
                     0.01, 6, 6, '{charge}')"
        )
    };
    let march = "2025-03-01 12:00Z";
    exec(&pool, &cdr("plain", march, "0.011")).await.unwrap();
    assert_eq!(
        violated(exec(&pool, &cdr("nan", march, "NaN")).await),
        "rated_cdrs_customer_charge_not_nan"
    );
    assert_eq!(
        violated(exec(&pool, &cdr("inf", march, "Infinity")).await),
        "numeric field overflow"
    );
    // A month partition made after the migration has the check too.
    exec(
        &pool,
        "SELECT billing.ensure_month_partitions('2031-01-01', 1)",
    )
    .await
    .unwrap();
    let later = "2031-01-15 12:00Z";
    exec(&pool, &cdr("later", later, "0.011")).await.unwrap();
    assert_eq!(
        violated(exec(&pool, &cdr("later-nan", later, "NaN")).await),
        "rated_cdrs_customer_charge_not_nan"
    );
    // An amount with no CHECK of its own: NaN = NaN would satisfy the ledger's sum.
    exec(&pool, VENDOR_AND_PLAN).await.unwrap();
    assert_eq!(
        violated(
            exec(
                &pool,
                "INSERT INTO billing.transactions (ban, type, amount, balance_before, balance_after)
                 VALUES ('B1', 'adjustment', 'NaN', 'NaN', 'NaN')"
            )
            .await
        ),
        "transactions_amount_not_nan"
    );
    let unguarded: Vec<String> = sqlx::query_scalar(
        "SELECT t.relname || '.' || a.attname
         FROM pg_attribute a
         JOIN pg_class t ON t.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname IN ('public', 'billing') AND t.relkind IN ('r', 'p')
           AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'numeric'::regtype
           AND (a.atttypmod = -1 OR NOT EXISTS (
               SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = t.oid AND k.contype = 'c' AND k.conkey = ARRAY[a.attnum]
                 AND pg_get_constraintdef(k.oid) LIKE '%<> ''NaN''::numeric%'))
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(unguarded.is_empty(), "take NaN or infinity: {unguarded:?}");
}

#[tokio::test]
async fn replayed_cdrs_collide_in_every_month_partition() {
    let (_pg, pool) = common::migrated_db().await;
    let insert = "INSERT INTO billing.raw_cdrs (call_id, leg, attempt, start_stamp, ban)
        SELECT 'call-' || m, 'A', 1, timestamptz '2025-01-15 12:00Z' + make_interval(months => m), 'B1'
        FROM generate_series(0, 5) m
        ON CONFLICT DO NOTHING";
    let first = sqlx::query(insert).execute(&pool).await.unwrap();
    assert_eq!(first.rows_affected(), 6);
    let replay = sqlx::query(insert).execute(&pool).await.unwrap();
    assert_eq!(replay.rows_affected(), 0, "a replay inserts nothing");
    let months: i64 = sqlx::query_scalar("SELECT count(DISTINCT tableoid) FROM billing.raw_cdrs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(months, 6, "one row in each month's partition");
    let plain = exec(
        &pool,
        "INSERT INTO billing.raw_cdrs (call_id, leg, attempt, start_stamp, ban)
         VALUES ('call-3', 'A', 1, '2025-04-15 12:00Z', 'B1')",
    )
    .await;
    assert!(violated(plain).starts_with("raw_cdrs_2025"));
    // Another attempt of the same call is a new row.
    exec(
        &pool,
        "INSERT INTO billing.raw_cdrs (call_id, leg, attempt, start_stamp, ban)
         VALUES ('call-3', 'A', 2, '2025-04-15 12:00:05Z', 'B1')",
    )
    .await
    .unwrap();
}
