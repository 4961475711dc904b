//! The legacy one-query routing makes the same decisions as the snapshot engine.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use warp_core::model::{rate_center_key, Exclusion, Override};
use warp_core::number::Prefix;
use warp_core::schedule::Schedule;
use warp_core::snapshot::{compile, Snapshot};
use warp_core::{RouteRequest, Zone};
use warp_datagen::{generate, Scale};

/// A small deterministic generator (xorshift), enough to pick calls.
struct Pick(u64);

impl Pick {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Calls across every zone: LERG numbers (some ported), toll-free, Canada, abroad.
fn calls(d: &warp_core::model::Dataset, count: usize) -> Vec<(String, String, String)> {
    let mut p = Pick(0x9e37_79b9_7f4a_7c15);
    let nanp = |p: &mut Pick| {
        let b = &d.lerg[p.next(d.lerg.len())];
        let block = b.block.map_or(p.next(10) as u32, u32::from);
        format!("1{}{}{:03}", b.npa_nxx, block, p.next(1000))
    };
    (0..count)
        .map(|i| {
            let ban = d.customers[p.next(d.customers.len())].ban.clone();
            let ani = match i % 10 {
                0 => "+442079460000".to_string(),
                1 => format!("+{}", d.dno[p.next(d.dno.len())]),
                _ => format!("+{}", nanp(&mut p)),
            };
            let dnis = match i % 7 {
                0 => format!("+{}", d.lnp[p.next(d.lnp.len())].0),
                1 => "+18005550123".to_string(),
                2 => "+14165550123".to_string(),
                3 => format!("+44{}", 2_079_460_000 + p.next(1000)),
                _ => format!("+{}", nanp(&mut p)),
            };
            (ban, ani, dnis)
        })
        .collect()
}

/// A route as both sides report it: vendor, forced, zone, rates, dialstrings.
type Row = (String, bool, String, Decimal, Decimal, Vec<String>);

/// The snapshot's routes for a call; none when it rejects the call.
fn snapshot_routes(
    snap: &Snapshot,
    ban: &str,
    ani: &str,
    dnis: &str,
    at: DateTime<Utc>,
) -> Vec<Row> {
    let req = RouteRequest::new(ban, Some(ani), dnis, at);
    match snap.route(&req) {
        Ok(dec) => dec
            .routes
            .iter()
            .map(|r| {
                (
                    r.vendor_id.to_string(),
                    r.forced,
                    r.zone.as_str().to_string(),
                    r.vendor_rate.to_decimal(),
                    r.customer_rate.to_decimal(),
                    r.dialstrings.iter().collect::<Vec<_>>(),
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn legacy_routes(
    pool: &PgPool,
    ban: &str,
    ani: &str,
    dnis: &str,
    at: DateTime<Utc>,
) -> Vec<Row> {
    warp_db::legacy_route(pool, ban, Some(ani), dnis, None, at)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.vendor_id,
                r.forced,
                r.zone,
                r.vendor_rate,
                r.customer_rate,
                r.dialstrings,
            )
        })
        .collect()
}

/// A weekday afternoon, a weekend night, and a time after scheduled rate changes.
fn times() -> [DateTime<Utc>; 3] {
    [
        Utc.with_ymd_and_hms(2026, 3, 4, 15, 30, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 8, 4, 10, 0).unwrap(),
        Utc.with_ymd_and_hms(2027, 7, 1, 12, 0, 0).unwrap(),
    ]
}

#[tokio::test]
async fn legacy_query_orders_vendors_like_the_snapshot() {
    let (_pg, pool) = common::migrated_db().await;
    let d = generate(Scale::SMALL, 11);
    warp_db::import_dataset(&pool, &d).await.unwrap();
    let snap = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    let times = times();
    let (mut routed, mut zones) = (0, std::collections::HashSet::new());
    for (i, (ban, ani, dnis)) in calls(&d, 300).into_iter().enumerate() {
        let at = times[i % times.len()];
        let want = snapshot_routes(&snap, &ban, &ani, &dnis, at);
        zones.extend(want.iter().map(|r| r.2.clone()));
        let got = legacy_routes(&pool, &ban, &ani, &dnis, at).await;
        assert_eq!(got, want, "call {i}: {ban} {ani} -> {dnis} at {at}");
        routed += usize::from(!want.is_empty());
    }
    assert!(
        routed > 100,
        "only {routed} calls routed: the batch is too thin"
    );
    assert!(zones.len() >= 4, "zones exercised: {zones:?}");
    assert!(zones.contains(Zone::International.as_str()));
}

#[tokio::test]
async fn legacy_query_refuses_garbage_numbers_cleanly() {
    let (_pg, pool) = common::migrated_db().await;
    let at = Utc::now();
    let err = warp_db::legacy_route(&pool, "B", None, "not-a-number", None, at).await;
    assert!(matches!(err, Err(warp_db::DbError::Number(_))));
    let none = warp_db::legacy_route(&pool, "nobody", None, "+13035550100", None, at)
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn an_override_does_not_force_a_vendor_excluded_for_the_destination() {
    let (_pg, pool) = common::migrated_db().await;
    let mut d = generate(Scale::SMALL, 11);
    let at = times()[0];
    let before = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    // A call with two routes: the second vendor is forced and excluded for its number.
    let (ban, ani, dnis, vendor) = calls(&d, 300)
        .into_iter()
        .find_map(|(ban, ani, dnis)| {
            let routes = snapshot_routes(&before, &ban, &ani, &dnis, at);
            let vendor = routes.get(1)?.0.clone();
            Some((ban, ani, dnis, vendor))
        })
        .expect("a call with two routes");
    let prefix = Prefix::parse(dnis.trim_start_matches('+')).unwrap();
    d.overrides.push(Override {
        ban: Some(ban.clone()),
        prefix,
        vendor: vendor.clone(),
        schedule: Schedule::default(),
    });
    d.exclusions.push(Exclusion {
        ban: Some(ban.clone()),
        vendor: Some(vendor.clone()),
        prefix,
    });
    warp_db::import_dataset(&pool, &d).await.unwrap();
    let snap = Snapshot::from_bytes(&compile(&d, 2).unwrap()).unwrap();
    let want = snapshot_routes(&snap, &ban, &ani, &dnis, at);
    assert!(!want.is_empty() && want.iter().all(|r| r.0 != vendor));
    let got = legacy_routes(&pool, &ban, &ani, &dnis, at).await;
    assert_eq!(
        got, want,
        "{ban} {ani} -> {dnis}: {vendor} forced and excluded"
    );
}

#[tokio::test]
async fn legacy_query_finds_local_calls_whatever_the_case_of_rate_centres() {
    let (_pg, pool) = common::migrated_db().await;
    let mut d = generate(Scale::SMALL, 11);
    // Every other code spells its rate centre in lower case: one rate centre, two
    // spellings, and the local calling table's keys are upper case.
    for (i, b) in d.lerg.iter_mut().enumerate() {
        if i % 2 == 0 {
            b.rate_center = b.rate_center.to_lowercase();
        }
    }
    warp_db::import_dataset(&pool, &d).await.unwrap();
    let snap = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    // A number in each code that is not split into thousands blocks, by rate centre.
    let mut numbers: std::collections::HashMap<String, Vec<String>> = Default::default();
    for b in &d.lerg {
        let pooled = d
            .lerg
            .iter()
            .any(|x| x.npa_nxx == b.npa_nxx && x.block.is_some());
        if b.block.is_none() && !pooled {
            numbers
                .entry(rate_center_key(&b.state, &b.rate_center))
                .or_default()
                .push(format!("+1{}5123", b.npa_nxx));
        }
    }
    let same = numbers
        .values()
        .filter(|n| n.len() > 1)
        .map(|n| (&n[0], &n[1]));
    let pairs = d
        .local_calling
        .iter()
        .filter_map(|p| Some((numbers.get(&p.a)?.first()?, numbers.get(&p.b)?.first()?)));
    let (mut local, at) = (0, times()[0]);
    for (ani, dnis) in same.take(20).chain(pairs.take(20)) {
        for c in &d.customers {
            let want = snapshot_routes(&snap, &c.ban, ani, dnis, at);
            local += want.iter().filter(|r| r.2 == "LOCAL").count();
            let got = legacy_routes(&pool, &c.ban, ani, dnis, at).await;
            assert_eq!(got, want, "{} {ani} -> {dnis}", c.ban);
        }
    }
    assert!(local > 0, "no local call routed");
}
