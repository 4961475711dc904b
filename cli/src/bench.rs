//! `warp bench-route`: per-call latency percentiles and memory growth of the full
//! routing decision on a real snapshot — what criterion's means do not show — and,
//! in the same run, the legacy one-SQL-query-per-call decision for comparison.

use crate::calls::{self, Call};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;
use warp_core::{RouteRequest, Snapshot};
use warp_db::DbError;

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long)]
    snapshot: PathBuf,
    /// CSV of ban,ani,dnis (as `warp gen-data` writes to sample_calls.csv).
    #[arg(long)]
    calls: PathBuf,
    /// How many decisions to time (the sample calls are cycled); at least 1, or there
    /// is no latency to report.
    #[arg(long, default_value_t = 1_000_000, value_parser = at_least_one)]
    iterations: usize,
    /// Also time the legacy way — one SQL query per call, like `get_lrn_rates` —
    /// against this PostgreSQL holding the same data, and print the ratio.
    #[arg(long)]
    legacy_db: Option<String>,
    /// Calls to send through the legacy query (at least 1).
    #[arg(long, default_value_t = 2_000, value_parser = at_least_one)]
    legacy_calls: usize,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

/// Resident memory split as the kernel reports it (kB): anonymous vs file-backed.
fn rss() -> Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("RssAnon:"), field("RssFile:")))
}

/// Resident kB of this process's mapping that starts at `start` (/proc/self/smaps):
/// the snapshot's own, apart from the binary and libraries `RssFile` counts too.
fn mapping_rss(start: usize) -> Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut lines = smaps.lines();
    let header = format!("{start:x}-");
    lines
        .by_ref()
        .find(|l| l.starts_with(&header))
        .ok_or_else(|| anyhow!("no mapping at {start:#x} in /proc/self/smaps"))?;
    lines
        .find_map(|l| l.strip_prefix("Rss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no Rss for the mapping at {start:#x} in /proc/self/smaps"))
}

/// An empty buffer for `n` latencies, allocated up front (so it is no part of the
/// memory growth measured, and no reallocation is timed), or a clear error when `n` is
/// more than memory can hold, rather than an abort.
fn latency_buffer(n: usize, flag: &str) -> Result<Vec<u64>> {
    let mut lat = Vec::new();
    lat.try_reserve_exact(n)
        .with_context(|| format!("{flag} {n}: no memory for that many latencies"))?;
    Ok(lat)
}

/// p50, p90, p99, p99.9 and max in µs of nanosecond latencies.
fn percentiles(lat: &mut [u64]) -> [f64; 5] {
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    [pct(0.5), pct(0.9), pct(0.99), pct(0.999), pct(1.0)]
}

fn print_latency(label: &str, p: [f64; 5]) -> std::io::Result<()> {
    outln!(
        "{label} latency µs: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        p[0],
        p[1],
        p[2],
        p[3],
        p[4]
    )
}

pub fn run(a: BenchArgs) -> Result<()> {
    let calls = calls::read(&a.calls)?;
    if calls.is_empty() {
        bail!("{} has no calls", a.calls.display());
    }
    let (anon0, _) = rss()?;
    // Both buffers before any work: a count memory cannot hold is refused at once.
    let mut lat = latency_buffer(a.iterations, "--iterations")?;
    let legacy_lat = match a.legacy_db {
        Some(_) => latency_buffer(a.legacy_calls, "--legacy-calls")?,
        None => Vec::new(),
    };
    let t = Instant::now();
    let snap = crate::in_snapshot(&a.snapshot, Snapshot::open(&a.snapshot))?;
    let open = t.elapsed();
    let at = Utc::now();
    let (mut routed, mut rejected) = (0usize, 0usize);
    let started = Instant::now();
    for i in 0..a.iterations {
        let Call { ban, ani, dnis } = &calls[i % calls.len()];
        let req = RouteRequest::new(ban, ani.as_deref(), dnis, at);
        let t = Instant::now();
        let out = snap.route(&req);
        lat.push(t.elapsed().as_nanos() as u64);
        match out {
            Ok(d) => routed += usize::from(!d.routes.is_empty()),
            Err(_) => rejected += 1,
        }
    }
    let wall = started.elapsed();
    let (anon1, file1) = rss()?;
    let mapped = match snap.mapping() {
        Some(bytes) => mapping_rss(bytes.as_ptr() as usize)?,
        None => 0,
    };
    outln!(
        "snapshot generation {} opened in {open:.2?}",
        snap.generation()
    )?;
    outln!(
        "{} decisions in {wall:.2?} ({:.0}/s on one thread): {routed} routed, {rejected} rejected",
        a.iterations,
        a.iterations as f64 / wall.as_secs_f64()
    )?;
    let snap_p = percentiles(&mut lat);
    print_latency("snapshot", snap_p)?;
    outln!(
        "memory: anonymous RSS grew {} KiB (incl. the {} KiB latency buffer); snapshot mapping {mapped} KiB resident of a {} KiB file (shared; the binary and libraries another {} KiB file-backed)",
        anon1.saturating_sub(anon0),
        a.iterations * 8 / 1024,
        std::fs::metadata(&a.snapshot)?.len() / 1024,
        file1.saturating_sub(mapped)
    )?;
    if let Some(url) = &a.legacy_db {
        let legacy_p = legacy(url, &calls, a.legacy_calls, legacy_lat, at)?;
        outln!(
            "legacy SQL / snapshot: p50 {:.0}x, p99 {:.0}x",
            legacy_p[0] / snap_p[0],
            legacy_p[2] / snap_p[2]
        )?;
    }
    Ok(())
}

/// The same calls through one SQL query each, one after another on one connection.
/// `lat` is an empty buffer for the `n` latencies.
fn legacy(
    url: &str,
    calls: &[Call],
    n: usize,
    mut lat: Vec<u64>,
    at: DateTime<Utc>,
) -> Result<[f64; 5]> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let pool = warp_db::connect(url).await?;
        let started = Instant::now();
        for i in 0..n {
            let Call { ban, ani, dnis } = &calls[i % calls.len()];
            let t = Instant::now();
            let outcome = warp_db::legacy_route(&pool, ban, ani.as_deref(), dnis, None, at).await;
            lat.push(t.elapsed().as_nanos() as u64);
            match outcome {
                // An unparsable number is answered without a query; it is timed alike.
                Ok(_) | Err(DbError::Number(_)) => {}
                // A failed query is no decision: timing it would report a bogus ratio.
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("legacy SQL decision for {ban} -> {dnis}")))
                }
            }
        }
        let wall = started.elapsed();
        outln!(
            "legacy SQL: {n} decisions in {wall:.2?} ({:.0}/s on one connection)",
            n as f64 / wall.as_secs_f64()
        )?;
        let p = percentiles(&mut lat);
        print_latency("legacy SQL", p)?;
        Ok(p)
    })
}
