//! A load generator for ng endpoints: COUNT requests, CONCURRENCY in flight, latency
//! percentiles and throughput. Used for docs/BENCHMARKS.md (direct vs through the proxy).

use crate::bencode::{encode_dict, Dict};
use crate::{Client, Endpoint, Options};
use anyhow::bail;
use clap::Args;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 10_000)]
    count: u32,
    #[arg(long, default_value_t = 1)]
    concurrency: u32,
    /// `ping`, or `query` of a call-id that does not exist (a realistic small lookup).
    #[arg(long, default_value = "ping")]
    command: String,
    /// Separate UDP sockets (clients) sharing the load.
    #[arg(long, default_value_t = 1)]
    sockets: u32,
}

pub async fn run(
    ng: &Endpoint,
    options: Options,
    args: BenchArgs,
    json: bool,
) -> anyhow::Result<()> {
    let mut request = Dict::new();
    request.insert("command", args.command.as_str());
    if args.command == "query" {
        request.insert("call-id", "warp-bench-no-such-call");
    }
    let body = Arc::new(encode_dict(&request));
    let mut clients = Vec::new();
    for _ in 0..args.sockets.max(1) {
        clients.push(Arc::new(Client::connect(ng, options).await?));
    }
    // Warm up (ARP-free loopback, but lazily created state in the peer).
    clients[0].exchange(&body).await?;

    // No more tasks than requests; the report says the concurrency that ran.
    let concurrency = args.concurrency.clamp(1, args.count.max(1));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..concurrency {
        // The first `count % concurrency` tasks send one more: exactly `count` in all.
        let per_task = args.count / concurrency + u32::from(t < args.count % concurrency);
        let client = clients[t as usize % clients.len()].clone();
        let body = body.clone();
        tasks.spawn(async move {
            // Grown as answers come, not reserved: a count memory cannot hold runs
            // until stopped rather than aborting before the first request.
            let mut lat = Vec::new();
            let (mut errors, mut first_error) = (0u32, None);
            for _ in 0..per_task {
                let t0 = Instant::now();
                match client.exchange(&body).await {
                    Ok(_) => lat.push(t0.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first_error)
        });
    }
    let mut all = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    while let Some(done) = tasks.join_next().await {
        let (lat, e, first) = done?;
        all.extend(lat);
        errors += e;
        first_error = first_error.or(first);
    }
    let wall = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let rate = all.len() as f64 / wall.as_secs_f64();
    if json {
        super::emit(serde_json::json!({
            "endpoint": ng.to_string(), "command": args.command, "ok": all.len(), "errors": errors,
            "concurrency": concurrency, "seconds": wall.as_secs_f64(), "per_second": rate,
            "p50_us": us(pct(0.50)), "p90_us": us(pct(0.90)), "p99_us": us(pct(0.99)),
            "max_us": us(all.last().copied().unwrap_or_default()),
        }))?;
    } else {
        super::emit(format_args!(
            "{ng} {}: {} ok, {errors} errors, concurrency {}, {:.0}/s, p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
            args.command,
            all.len(),
            concurrency,
            rate,
            us(pct(0.50)),
            us(pct(0.90)),
            us(pct(0.99)),
            us(all.last().copied().unwrap_or_default()),
        ))?;
    }
    // Nothing was measured: the report stands, but the run is no success.
    match first_error {
        Some(e) if all.is_empty() => bail!("all {errors} requests failed, the first: {e}"),
        _ => Ok(()),
    }
}
