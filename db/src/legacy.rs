//! Routing the legacy way, for the benchmark's comparison: one SQL statement per call
//! against the provisioning tables, like VLCAdmin's `get_lrn_rates` procedure. It makes
//! the same decision as `Snapshot::route`; numbers are parsed here, as the procedure's
//! callers did, and everything else happens in PostgreSQL on indexed lookups.

use crate::DbError;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use warp_core::{Number, Zone};

/// One route, in the order to try.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyRoute {
    pub vendor_id: String,
    pub forced: bool,
    pub zone: String,
    pub vendor_rate: Decimal,
    pub customer_rate: Decimal,
    pub dialstrings: Vec<String>,
}

const QUERY: &str = r#"
WITH c AS (
    SELECT ban, rate_plan, min_margin, rate_limit, max_results
    FROM customers WHERE ban = $1 AND enabled
), blocked AS (
    SELECT 1 FROM dno WHERE number = $2
    UNION ALL
    SELECT 1 FROM exclusions
    WHERE vendor_id IS NULL AND (ban IS NULL OR ban = $1) AND prefix = ANY($5)
), n AS (
    SELECT l.lrn, ARRAY(SELECT left(l.lrn, i) FROM generate_series(1, length(l.lrn)) i) AS lrn_prefixes
    FROM (SELECT CASE WHEN $7 THEN coalesce((SELECT lrn FROM lnp WHERE number = $3 LIMIT 1), $4, $3)
                 ELSE $3 END AS lrn) l
), term AS (
    -- Rate centres compared by key, as rate_center_key (ASCII upper case) makes them
    -- for the snapshot and for local_calling; back in the default collation so
    -- local_calling's indexes still serve.
    SELECT b.ocn, b.lata, b.state, upper(b.rate_center COLLATE "C") COLLATE "default" AS rate_center
    FROM n, LATERAL (
        SELECT * FROM lerg_blocks
        WHERE npa_nxx = substr(n.lrn, 2, 6)::int
          AND (block = substr(n.lrn, 8, 1)::int OR block IS NULL)
        ORDER BY block NULLS LAST LIMIT 1) b
    WHERE $7
), orig AS (
    SELECT b.state, upper(b.rate_center COLLATE "C") COLLATE "default" AS rate_center
    FROM lerg_blocks b
    WHERE length($2) = 11 AND left($2, 1) = '1'
      AND b.npa_nxx = substr($2, 2, 6)::int
      AND (b.block = substr($2, 8, 1)::int OR b.block IS NULL)
    ORDER BY b.block NULLS LAST LIMIT 1
), j AS (
    SELECT CASE
        WHEN $6::text IS NOT NULL THEN $6::text
        WHEN t.state IS NULL OR o.state IS NULL THEN NULL
        WHEN (t.state, t.rate_center) = (o.state, o.rate_center) OR EXISTS (
            SELECT 1 FROM local_calling lc
            WHERE (lc.state_a, lc.rate_center_a, lc.state_b, lc.rate_center_b)
                  = (t.state, t.rate_center, o.state, o.rate_center)
               OR (lc.state_a, lc.rate_center_a, lc.state_b, lc.rate_center_b)
                  = (o.state, o.rate_center, t.state, t.rate_center)) THEN 'LOCAL'
        WHEN t.state = o.state THEN 'INTRASTATE'
        ELSE 'INTERSTATE' END AS zone
    FROM (SELECT 1) one LEFT JOIN term t ON true LEFT JOIN orig o ON true
), forced AS (
    SELECT o.vendor_id FROM overrides o, c
    WHERE (o.ban = c.ban OR o.ban IS NULL) AND o.prefix = ANY($5)
      AND schedule_applies(o.valid_from, o.valid_to, o.tz, o.days, o.start_minute, o.end_minute, $8)
    ORDER BY length(o.prefix) DESC, o.ban IS NULL, o.id LIMIT 1
), excluded AS (
    SELECT x.vendor_id FROM exclusions x, c
    WHERE x.vendor_id IS NOT NULL AND (x.ban IS NULL OR x.ban = c.ban) AND x.prefix = ANY($5)
), cand AS (
    -- An override forces its vendor first, but not past an exclusion of it.
    SELECT f.vendor_id, true AS forced
    FROM forced f JOIN vendors v ON v.id = f.vendor_id AND v.enabled
    WHERE f.vendor_id NOT IN (SELECT vendor_id FROM excluded)
    UNION
    SELECT pr.vendor_id, false
    FROM c
    JOIN customer_partitions cp ON cp.ban = c.ban
     AND schedule_applies(cp.valid_from, cp.valid_to, cp.tz, cp.days, cp.start_minute, cp.end_minute, $8)
    JOIN partition_routes pr ON pr.partition_id = cp.partition_id AND pr.enabled
    JOIN vendors v ON v.id = pr.vendor_id AND v.enabled
    WHERE pr.vendor_id NOT IN (SELECT vendor_id FROM forced)
      AND pr.vendor_id NOT IN (SELECT vendor_id FROM excluded)
), priced AS (
    SELECT cand.vendor_id, cand.forced, v.priority, z.zone, CASE z.zone
            WHEN 'INTERSTATE' THEN r.interstate WHEN 'INTRASTATE' THEN r.intrastate
            WHEN 'LOCAL' THEN r.local WHEN 'ZONE1' THEN r.zone1
            WHEN 'TOLLFREE' THEN r.tollfree ELSE r.international END AS rate
    FROM cand
    JOIN vendors v ON v.id = cand.vendor_id
    JOIN rate_decks d ON d.vendor_id = v.id
    CROSS JOIN n CROSS JOIN j
    CROSS JOIN LATERAL (SELECT coalesce(j.zone, v.indeterminate_zone) AS zone) z
    CROSS JOIN LATERAL (
        SELECT * FROM (
            SELECT rr.* FROM rate_rows rr
            WHERE rr.deck_id = d.id
              AND rr.prefix = ANY(CASE v.kind WHEN 'LRN' THEN n.lrn_prefixes
                                              WHEN 'OCN_LATA' THEN '{}'::text[] ELSE $5 END)
              AND rr.effective_from <= $8 AND (rr.effective_to IS NULL OR rr.effective_to > $8)
            UNION ALL
            SELECT rr.* FROM rate_rows rr JOIN term t ON rr.ocn = t.ocn AND rr.lata = t.lata
            WHERE v.kind = 'OCN_LATA' AND rr.deck_id = d.id
              AND rr.effective_from <= $8 AND (rr.effective_to IS NULL OR rr.effective_to > $8)
        ) m ORDER BY length(m.prefix) DESC NULLS LAST, m.effective_from DESC LIMIT 1) r
), sell AS (
    SELECT CASE coalesce(j.zone, 'INTRASTATE')
            WHEN 'INTERSTATE' THEN r.interstate WHEN 'INTRASTATE' THEN r.intrastate
            WHEN 'LOCAL' THEN r.local WHEN 'ZONE1' THEN r.zone1
            WHEN 'TOLLFREE' THEN r.tollfree ELSE r.international END AS rate
    FROM c JOIN rate_decks d ON d.rate_plan = c.rate_plan CROSS JOIN j
    CROSS JOIN LATERAL (
        SELECT * FROM rate_rows rr
        WHERE rr.deck_id = d.id AND rr.prefix = ANY($5)
          AND rr.effective_from <= $8 AND (rr.effective_to IS NULL OR rr.effective_to > $8)
        ORDER BY length(rr.prefix) DESC, rr.effective_from DESC LIMIT 1) r
)
SELECT p.vendor_id, p.forced, p.zone, p.rate, s.rate,
       ARRAY(SELECT replace(replace(g.dialstring, '{number}', $3),
                            '{national}', CASE WHEN $7 THEN substr($3, 2) ELSE $3 END)
             FROM gateways g WHERE g.vendor_id = p.vendor_id ORDER BY g.priority)
FROM priced p CROSS JOIN sell s CROSS JOIN c
WHERE p.rate IS NOT NULL AND s.rate IS NOT NULL AND NOT EXISTS (SELECT 1 FROM blocked)
  AND (p.forced OR p.rate <= coalesce(c.rate_limit, s.rate - c.min_margin))
ORDER BY p.forced DESC, p.rate, p.priority, p.vendor_id COLLATE "C"
LIMIT (SELECT max_results FROM c)
"#;

/// Routes one call with one query. A call the engine would reject (unknown or
/// disabled customer, DNO, blocked destination, no sell rate, nothing within the
/// limit) gets no routes; an unparsable dialled number is an error.
pub async fn legacy_route(
    pool: &PgPool,
    ban: &str,
    ani: Option<&str>,
    dnis: &str,
    lrn: Option<Number>,
    at: DateTime<Utc>,
) -> Result<Vec<LegacyRoute>, DbError> {
    let dnis = Number::parse(dnis)?;
    let ani = ani.and_then(|a| Number::parse(a).ok());
    let digits = dnis.to_string();
    let prefixes: Vec<String> = (1..=digits.len())
        .map(|i| digits[..i].to_string())
        .collect();
    // What the number alone decides (ARCHITECTURE.md, zones 1-2); LERG decides the rest.
    let fixed_zone = if dnis.is_toll_free() {
        Some(Zone::TollFree)
    } else if !dnis.is_nanp() {
        Some(Zone::International)
    } else if dnis.is_nanp_non_us() {
        Some(Zone::Zone1)
    } else {
        None
    };
    let rows: Vec<(String, bool, String, Decimal, Decimal, Vec<String>)> = sqlx::query_as(QUERY)
        .bind(ban)
        .bind(ani.map(|a| a.to_string()))
        .bind(&digits)
        .bind(lrn.filter(|l| l.is_nanp()).map(|l| l.to_string()))
        .bind(&prefixes)
        .bind(fixed_zone.map(Zone::as_str))
        .bind(dnis.is_nanp())
        .bind(at)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(vendor_id, forced, zone, vendor_rate, customer_rate, dialstrings)| LegacyRoute {
                vendor_id,
                forced,
                zone,
                vendor_rate,
                customer_rate,
                dialstrings,
            },
        )
        .collect())
}
