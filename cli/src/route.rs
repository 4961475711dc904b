//! `warp route`: one call, or a CSV batch, through the same engine the SIP path uses.

use crate::calls::{self, Call};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use warp_core::model::MAX_RESULTS_MAX;
use warp_core::{Decision, Number, RouteRequest, Snapshot};

#[derive(Args)]
pub struct RouteArgs {
    /// The snapshot file [default: $WARP_SNAPSHOT, or /var/lib/warp/routing.snap when
    /// that is unset or empty, as the API reads it]
    #[arg(long)]
    snapshot: Option<PathBuf>,
    #[arg(long, required_unless_present = "batch")]
    ban: Option<String>,
    /// Calling number (any accepted form); omit for unknown.
    #[arg(long)]
    ani: Option<String>,
    #[arg(long, required_unless_present = "batch")]
    dnis: Option<String>,
    /// An LRN from a cache or dip, used when the snapshot has none.
    #[arg(long)]
    lrn: Option<String>,
    /// Call time (RFC 3339); default now.
    #[arg(long)]
    at: Option<DateTime<Utc>>,
    /// Overrides the customer's max_results, in the same range (1 to 100): the engine
    /// would read 0 as 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_RESULTS_MAX as i64))]
    max_results: Option<u32>,
    /// CSV with columns ban,ani,dnis: route every row. Not with --ani or --lrn, which
    /// belong to one call: the file's ANI would be left unused, one LRN given to all.
    #[arg(long, conflicts_with_all = ["ban", "ani", "dnis", "lrn"])]
    batch: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn run(mut a: RouteArgs) -> Result<()> {
    // Verified, as the SIP path loads it: a corrupt payload decodes into wrong answers.
    let path = crate::snapshot_path(a.snapshot.take(), &warp_config::Settings::default());
    let snap = crate::in_snapshot(&path, Snapshot::open_verified(&path))?;
    let lrn = a
        .lrn
        .as_deref()
        .map(Number::parse)
        .transpose()
        .context("--lrn")?;
    let at = a.at.unwrap_or_else(Utc::now);
    let calls = match &a.batch {
        Some(path) => calls::read(path)?,
        None => vec![Call {
            ban: a.ban.clone().unwrap_or_default(),
            ani: a.ani.clone(),
            dnis: a.dnis.clone().unwrap_or_default(),
        }],
    };
    let mut out = std::io::stdout().lock();
    for Call { ban, ani, dnis } in &calls {
        let req = RouteRequest {
            ban,
            ani: ani.as_deref(),
            dnis,
            lrn,
            at,
            max_results: a.max_results,
        };
        let outcome = snap.route(&req);
        if a.json {
            let v = match &outcome {
                Ok(d) => serde_json::to_value(d)?,
                Err(r) => serde_json::json!({
                    "ban": ban, "ani": ani, "dnis": dnis,
                    "rejected": r, "message": r.to_string(), "sip_code": r.sip().0,
                }),
            };
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
        } else {
            print_human(&mut out, ban, ani.as_deref(), dnis, &outcome)?;
        }
    }
    Ok(())
}

fn print_human(
    out: &mut impl Write,
    ban: &str,
    ani: Option<&str>,
    dnis: &str,
    outcome: &Result<Decision, warp_core::Reject>,
) -> std::io::Result<()> {
    writeln!(out, "call {ban}: {} -> {dnis}", ani.unwrap_or("(no ANI)"))?;
    let d = match outcome {
        Ok(d) => d,
        Err(r) => {
            let (code, phrase) = r.sip();
            return writeln!(out, "  REJECT {code} {phrase}: {r}\n");
        }
    };
    writeln!(
        out,
        "  LRN +{} ({:?})  zone {}  customer rate {} ({})  rate limit {}",
        d.lrn, d.lrn_source, d.jurisdiction, d.customer_rate, d.customer_zone, d.rate_limit
    )?;
    for (side, l) in [
        ("terminating", &d.terminating),
        ("originating", &d.originating),
    ] {
        if let Some(l) = l {
            writeln!(
                out,
                "  {side}: OCN {} LATA {} {} {}",
                l.ocn(),
                l.lata,
                l.state(),
                l.rate_center_name()
            )?;
        }
    }
    writeln!(
        out,
        "  {:>2}  {:<8} {:<10} {:<13} {:>11} {:>11} {:>10}  dialstring",
        "#", "vendor", "partition", "zone", "vendor rate", "cust rate", "margin"
    )?;
    for (i, r) in d.routes.iter().enumerate() {
        writeln!(
            out,
            "  {:>2}  {:<8} {:<10} {:<13} {:>11} {:>11} {:>10}  {}{}",
            i + 1,
            r.vendor_id,
            r.partition.unwrap_or("-"),
            r.zone.as_str(),
            r.vendor_rate.to_string(),
            r.customer_rate.to_string(),
            r.margin.to_string(),
            r.dialstrings.first().unwrap_or_else(|| "-".into()),
            if r.forced { "  (override)" } else { "" }
        )?;
    }
    writeln!(out)
}
