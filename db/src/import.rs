//! Dataset → PostgreSQL, in one transaction. Keyed entities (rate plans, vendors,
//! customers, trunks, credentials, partitions) are upserted so what the model does not
//! carry (contacts, billing model, numbers, wallets) survives a re-import, and so does a
//! password set through the API when the dataset gives the credential none; everything
//! else is replaced wholesale with COPY. A dataset is refused, before anything is
//! written, when it drops a customer numbers are assigned to or billing records keep,
//! or moves a trunk numbers of its customer use (see [`crate::in_use`]).

use crate::copy::{copy_in, Row};
use crate::in_use::refuse_changes_in_use;
use crate::rates::{copy_rates, key_text, overlaps, Span};
use crate::DbError;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use warp_core::model::{Dataset, RateRow};
use warp_core::schedule::Schedule;

/// Rows written per table, and how long the whole import took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub tables: Vec<(&'static str, u64)>,
    pub elapsed: Duration,
}

/// Tables replaced wholesale; none is referenced from outside this list.
pub(crate) const REPLACED: &str = "rate_rows, gateways, partition_routes, customer_partitions, \
    overrides, exclusions, trunk_ips, lerg_blocks, local_calling, dno, lnp";

/// A keyed table: staged with COPY, then upserted, then rows missing from it deleted.
struct Keyed {
    table: &'static str,
    key: &'static str,
    columns: &'static [&'static str],
    /// What an upsert sets, when not every column from the staged row.
    update: Option<&'static str>,
}

const RATE_PLANS: Keyed = Keyed {
    table: "rate_plans",
    key: "id",
    columns: &["id"],
    update: None,
};
const VENDORS: Keyed = Keyed {
    table: "vendors",
    key: "id",
    columns: &[
        "id",
        "name",
        "kind",
        "priority",
        "indeterminate_zone",
        "enabled",
        "keepalive",
    ],
    update: None,
};
const CUSTOMERS: Keyed = Keyed {
    table: "customers",
    key: "ban",
    columns: &[
        "ban",
        "name",
        "rate_plan",
        "min_margin",
        "rate_limit",
        "max_results",
        "enabled",
    ],
    update: None,
};
const TRUNKS: Keyed = Keyed {
    table: "trunks",
    key: "id",
    columns: &[
        "id",
        "ban",
        "max_concurrent",
        "max_cps",
        "enabled",
        "auth_type",
        "keepalive",
    ],
    update: None,
};
const CREDENTIALS: Keyed = Keyed {
    table: "trunk_credentials",
    key: "username",
    columns: &["username", "trunk_id", "realm", "ha1"],
    // A credential the dataset gives no ha1 keeps the password it has, on the same
    // trunk: moved to another (perhaps another customer's), whoever knew the password
    // would call as that trunk, so it needs a new one. A new ha1 makes the old ha1b
    // (another hash of the old password) stale.
    update: Some(
        "trunk_id = EXCLUDED.trunk_id, \
         realm = CASE WHEN EXCLUDED.ha1 IS NULL AND trunk_credentials.trunk_id = EXCLUDED.trunk_id \
                 THEN trunk_credentials.realm ELSE EXCLUDED.realm END, \
         ha1b = CASE WHEN EXCLUDED.ha1 IS NULL AND trunk_credentials.trunk_id = EXCLUDED.trunk_id \
                THEN trunk_credentials.ha1b END, \
         ha1 = CASE WHEN EXCLUDED.ha1 IS NULL AND trunk_credentials.trunk_id = EXCLUDED.trunk_id \
               THEN trunk_credentials.ha1 ELSE EXCLUDED.ha1 END",
    ),
};
const PARTITIONS: Keyed = Keyed {
    table: "partitions",
    key: "id",
    columns: &["id", "name"],
    update: None,
};

/// Replaces the provisioning data with `d` in one transaction.
pub async fn import_dataset(pool: &PgPool, d: &Dataset) -> Result<ImportReport, DbError> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let c: &mut PgConnection = &mut tx;
    let mut tables = Vec::new();
    // Every deck, then the rate rows wholesale: the lock order the API's writers use.
    sqlx::query("SELECT id FROM rate_decks ORDER BY id FOR UPDATE")
        .execute(&mut *c)
        .await?;
    // Before the first write: what the numbers or billing still need stays.
    refuse_changes_in_use(c, d).await?;
    sqlx::query(&format!("TRUNCATE {REPLACED}"))
        .execute(&mut *c)
        .await?;

    // Parents first for upserts, children first for deletions.
    let plans: BTreeSet<&str> = d
        .customer_rates
        .iter()
        .map(|r| r.owner.as_str())
        .chain(d.customers.iter().map(|c| c.rate_plan.as_str()))
        .collect();
    let n = stage(c, &RATE_PLANS, plans, |w, p| {
        w.field(p);
    })
    .await?;
    tables.push(("rate_plans", n));
    let n = stage(c, &VENDORS, &d.vendors, |w, v| {
        w.field(&v.id)
            .field(&v.name)
            .field(v.kind.as_str())
            .field(v.priority)
            .field(v.indeterminate_zone.as_str())
            .field(v.enabled)
            .field(v.keepalive);
    })
    .await?;
    tables.push(("vendors", n));
    let n = stage(c, &CUSTOMERS, &d.customers, |w, x| {
        w.field(&x.ban)
            .field(&x.name)
            .field(&x.rate_plan)
            .field(x.min_margin)
            .opt(x.rate_limit)
            .field(x.max_results)
            .field(x.enabled);
    })
    .await?;
    tables.push(("customers", n));
    let n = stage(c, &TRUNKS, &d.trunks, |w, t| {
        w.field(&t.id)
            .field(&t.ban)
            .field(t.max_concurrent)
            .field(t.max_cps)
            .field(t.enabled)
            .field(t.auth.as_str())
            .field(t.keepalive);
    })
    .await?;
    tables.push(("trunks", n));
    let creds = d
        .trunks
        .iter()
        .flat_map(|t| t.credentials.iter().map(move |c| (c, &t.id)));
    let n = stage(c, &CREDENTIALS, creds, |w, (c, t)| {
        w.field(&c.username)
            .field(t)
            .field(&c.realm)
            .opt(c.ha1.as_deref());
    })
    .await?;
    tables.push(("trunk_credentials", n));
    let n = stage(c, &PARTITIONS, &d.partitions, |w, p| {
        w.field(&p.id).field(&p.name);
    })
    .await?;
    tables.push(("partitions", n));
    for k in [
        &CREDENTIALS,
        &TRUNKS,
        &CUSTOMERS,
        &PARTITIONS,
        &VENDORS,
        &RATE_PLANS,
    ] {
        delete_unstaged(c, k).await?;
    }

    let n = copy_in(
        c,
        "trunk_ips (trunk_id, addr)",
        d.trunks
            .iter()
            .flat_map(|t| t.acl.iter().map(move |a| (&t.id, a))),
        |w, (t, a)| {
            w.field(t).field(format_args!("{}/{}", a.addr, a.len));
        },
    )
    .await?;
    tables.push(("trunk_ips", n));
    let gateways = d.vendors.iter().flat_map(|v| {
        v.gateways
            .iter()
            .enumerate()
            .map(move |(i, g)| (&v.id, i + 1, g))
    });
    let n = copy_in(
        c,
        "gateways (vendor_id, priority, dialstring)",
        gateways,
        |w, (v, i, g)| {
            w.field(v).field(i).field(g);
        },
    )
    .await?;
    tables.push(("gateways", n));
    let routes = d.partitions.iter().flat_map(|p| {
        p.vendors
            .iter()
            .enumerate()
            .map(move |(i, v)| (&p.id, v, i + 1))
    });
    let n = copy_in(
        c,
        "partition_routes (partition_id, vendor_id, position)",
        routes,
        |w, (p, v, i)| {
            w.field(p).field(v).field(i);
        },
    )
    .await?;
    tables.push(("partition_routes", n));
    let n = copy_in(
        c,
        &format!("customer_partitions (ban, partition_id, priority, {SCHEDULE_COLUMNS})"),
        &d.customer_partitions,
        |w, cp| {
            w.field(&cp.ban).field(&cp.partition).field(cp.priority);
            schedule_fields(w, &cp.schedule);
        },
    )
    .await?;
    tables.push(("customer_partitions", n));
    let n = copy_in(
        c,
        &format!("overrides (ban, prefix, vendor_id, {SCHEDULE_COLUMNS})"),
        &d.overrides,
        |w, o| {
            w.opt(o.ban.as_ref()).field(o.prefix).field(&o.vendor);
            schedule_fields(w, &o.schedule);
        },
    )
    .await?;
    tables.push(("overrides", n));
    let n = copy_in(
        c,
        "exclusions (ban, vendor_id, prefix)",
        &d.exclusions,
        |w, x| {
            w.opt(x.ban.as_ref()).opt(x.vendor.as_ref()).field(x.prefix);
        },
    )
    .await?;
    tables.push(("exclusions", n));

    sqlx::raw_sql(
        "INSERT INTO rate_decks (vendor_id) SELECT id FROM vendors ON CONFLICT DO NOTHING;
         INSERT INTO rate_decks (rate_plan) SELECT id FROM rate_plans ON CONFLICT DO NOTHING",
    )
    .execute(&mut *c)
    .await?;
    let decks: Vec<(i64, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, vendor_id, rate_plan FROM rate_decks")
            .fetch_all(&mut *c)
            .await?;
    let vendor_deck: HashMap<String, i64> = decks
        .iter()
        .filter_map(|(id, v, _)| Some((v.clone()?, *id)))
        .collect();
    let plan_deck: HashMap<String, i64> = decks
        .iter()
        .filter_map(|(id, _, p)| Some((p.clone()?, *id)))
        .collect();
    let rows = d
        .vendor_rates
        .iter()
        .map(|r| (vendor_deck.get(&r.owner), r))
        .chain(
            d.customer_rates
                .iter()
                .map(|r| (plan_deck.get(&r.owner), r)),
        )
        .map(|(deck, r)| {
            let unknown = || DbError::invalid("rate_rows", format!("unknown vendor {:?}", r.owner));
            Ok((*deck.ok_or_else(unknown)?, r))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    refuse_overlaps(d, &rows)?;
    let rebuild = drop_secondary_indexes(c, BULK_TABLES).await?;
    let n = copy_rates(c, rows).await?;
    tables.push(("rate_rows", n));

    let n = copy_in(
        c,
        "lerg_blocks (npa_nxx, block, ocn, lata, state, rate_center)",
        &d.lerg,
        |w, b| {
            w.field(b.npa_nxx)
                .opt(b.block)
                .field(&b.ocn)
                .field(b.lata)
                .field(&b.state)
                .field(&b.rate_center);
        },
    )
    .await?;
    tables.push(("lerg_blocks", n));
    let n = copy_in(
        c,
        "local_calling (state_a, rate_center_a, state_b, rate_center_b)",
        &d.local_calling,
        |w, p| {
            let (sa, ra) = p.a.split_once('/').unwrap_or(("", &p.a));
            let (sb, rb) = p.b.split_once('/').unwrap_or(("", &p.b));
            w.field(sa).field(ra).field(sb).field(rb);
        },
    )
    .await?;
    tables.push(("local_calling", n));
    let n = copy_in(c, "dno (number)", &d.dno, |w, n| {
        w.field(n);
    })
    .await?;
    tables.push(("dno", n));
    let n = copy_in(c, "lnp (number, lrn)", &d.lnp, |w, (n, l)| {
        w.field(n).field(l);
    })
    .await?;
    tables.push(("lnp", n));
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *c)
        .await?;
    for ddl in rebuild {
        sqlx::query(&ddl).execute(&mut *c).await?;
    }
    // Fresh statistics, so the planner uses the indexes the legacy query relies on.
    // Inside the transaction (ANALYZE samples the rows it wrote): the statistics
    // appear with the data, and a failure rolls the import back instead of failing
    // the command after the data was committed. The tables are locked by the TRUNCATE
    // until the commit anyway; sampling adds little to that.
    sqlx::query("ANALYZE rate_rows, lerg_blocks, local_calling, dno, lnp, customer_partitions, partition_routes")
        .execute(&mut *c)
        .await?;

    tx.commit().await?;
    Ok(ImportReport {
        tables,
        elapsed: started.elapsed(),
    })
}

/// The million-row tables: their secondary indexes are built once after COPY, far
/// faster than maintained row by row.
const BULK_TABLES: &[&str] = &["rate_rows", "dno", "lnp"];

/// Drops the non-unique indexes of `tables` (inside the import's transaction) and
/// returns the DDL that recreates them, read from the catalog so the migrations stay
/// the only definition.
async fn drop_secondary_indexes(
    c: &mut PgConnection,
    tables: &[&str],
) -> Result<Vec<String>, DbError> {
    let found: Vec<(String, String)> = sqlx::query_as(
        // regclass text: the name quoted (and qualified) as DROP INDEX needs it.
        "SELECT x.indexrelid::regclass::text, pg_get_indexdef(x.indexrelid)
         FROM pg_index x
         JOIN pg_class t ON t.oid = x.indrelid
         WHERE t.relname = ANY($1) AND t.relnamespace = 'public'::regnamespace
           AND NOT x.indisunique AND NOT x.indisprimary",
    )
    .bind(tables)
    .fetch_all(&mut *c)
    .await?;
    let mut rebuild = Vec::with_capacity(found.len());
    for (index, ddl) in found {
        sqlx::query(&format!("DROP INDEX {index}"))
            .execute(&mut *c)
            .await?;
        rebuild.push(ddl);
    }
    Ok(rebuild)
}

/// Refuses rows of one owner and key whose effective dates overlap, naming both by
/// their place in the dataset (`vendor_rates` row 3: the third data row).
fn refuse_overlaps(d: &Dataset, rows: &[(i64, &RateRow)]) -> Result<(), DbError> {
    let spans: Vec<Span> = rows
        .iter()
        .map(|(deck, r)| Span {
            key: format!("{deck} {}", key_text(&r.key)),
            ..Span::of(r)
        })
        .collect();
    let Some(&(a, b)) = overlaps(&spans).first() else {
        return Ok(());
    };
    let place = |i: usize| match i.checked_sub(d.vendor_rates.len()) {
        None => format!("vendor_rates row {}", i + 1),
        Some(j) => format!("customer_rates row {}", j + 1),
    };
    let r = rows[b].1;
    Err(DbError::invalid(
        "rate_rows",
        format!(
            "{}: {} {} from {} overlaps {} (effective dates of one key may not overlap)",
            place(b),
            r.owner,
            key_text(&r.key),
            r.effective_from,
            place(a)
        ),
    ))
}

/// COPYs `rows` into a temp copy of `k.table`, upserts them, and keeps the stage for
/// [`delete_unstaged`].
async fn stage<T>(
    c: &mut PgConnection,
    k: &Keyed,
    rows: impl IntoIterator<Item = T>,
    write: impl FnMut(&mut Row, T),
) -> Result<u64, DbError> {
    let (t, cols) = (k.table, k.columns.join(", "));
    sqlx::query(&format!(
        "CREATE TEMP TABLE stage_{t} ON COMMIT DROP AS SELECT {cols} FROM {t} WITH NO DATA"
    ))
    .execute(&mut *c)
    .await?;
    let n = copy_in(c, &format!("stage_{t} ({cols})"), rows, write).await?;
    let updates: Vec<String> = k
        .columns
        .iter()
        .filter(|col| **col != k.key)
        .map(|col| format!("{col} = EXCLUDED.{col}"))
        .collect();
    let action = match k.update {
        Some(set) => format!("UPDATE SET {set}"),
        None if updates.is_empty() => "NOTHING".to_string(),
        None => format!("UPDATE SET {}", updates.join(", ")),
    };
    sqlx::query(&format!(
        "INSERT INTO {t} ({cols}) SELECT {cols} FROM stage_{t} ON CONFLICT ({}) DO {action}",
        k.key
    ))
    .execute(&mut *c)
    .await?;
    Ok(n)
}

async fn delete_unstaged(c: &mut PgConnection, k: &Keyed) -> Result<(), DbError> {
    let (t, key) = (k.table, k.key);
    sqlx::query(&format!(
        "DELETE FROM {t} WHERE {key} NOT IN (SELECT {key} FROM stage_{t})"
    ))
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(crate) const SCHEDULE_COLUMNS: &str =
    "valid_from, valid_to, tz, days, start_minute, end_minute";

fn schedule_fields(w: &mut Row, s: &Schedule) {
    let w = w
        .opt(s.from.map(|t| t.to_rfc3339()))
        .opt(s.to.map(|t| t.to_rfc3339()));
    match &s.window {
        Some(win) => w
            .field(win.tz.name())
            .field(win.days)
            .field(win.start)
            .field(win.end),
        None => w
            .opt(None::<u8>)
            .opt(None::<u8>)
            .opt(None::<u8>)
            .opt(None::<u8>),
    };
}
