//! `warp pull`: a SIP edge fetches the routing snapshot the API published and
//! publishes it locally (atomic rename), where warp.so's `reload_check` takes it up.
//! With `--every` it polls, and with `--redis` it also pulls soon after the API
//! announces a generation (`announcements`, within `--spread`), the polls kept as the
//! safety net. It names the snapshot format it reads, and a file of another format
//! costs no download ([`format`]): a polling edge says so once per generation and keeps
//! its file.

mod announcements;
mod format;
mod jitter;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::FutureExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use warp_core::snapshot::format::FORMAT_VERSION;
use warp_core::snapshot::publish;
use warp_core::Snapshot;

#[derive(Args)]
pub struct PullArgs {
    /// The API's base URL, e.g. https://api.example.net
    #[arg(long, env = "WARP_API_URL")]
    api: String,
    /// A bearer key that may pull the snapshot.
    #[arg(long, env = "WARP_API_KEY", hide_env_values = true)]
    key: String,
    /// Where to publish it [default: $WARP_SNAPSHOT, else the config file's snapshot,
    /// else /var/lib/warp/routing.snap]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds between pulls, forever (a failed pull is reported and tried again), each
    /// wait spread at random over ±10 % so that a fleet of edges does not poll in step;
    /// 0 pulls once and says by its exit status whether that worked.
    #[arg(long, default_value_t = 0)]
    every: u64,
    /// With --every: the Redis (redis://…, or rediss://… over TLS) the API announces each
    /// new generation on (channel warp:snapshot). One this edge does not hold is pulled
    /// within --spread; the polls stay, the safety net for a missed announcement. A
    /// single pull ignores it.
    #[arg(long, env = "WARP_REDIS_URL", hide_env_values = true)]
    redis: Option<String>,
    /// With a rediss:// --redis: the PEM file of the CAs its certificate must chain to
    /// [default: the system's, /etc/ssl/certs/ca-certificates.crt]
    #[arg(long, env = "WARP_REDIS_CA", value_name = "FILE")]
    redis_ca: Option<PathBuf>,
    /// With --redis: after an announcement, each edge waits a random delay below this
    /// many seconds before it pulls, so that a fleet does not download the new snapshot
    /// all in the same instant; 0 pulls at once. A poll falling due meanwhile is that
    /// pull, and announcements heard meanwhile add none. At most 300.
    #[arg(long, value_name = "SECONDS", default_value_t = SPREAD_DEFAULT,
          value_parser = spread_seconds, allow_negative_numbers = true)]
    spread: u64,
    /// Seconds one pull may take, the download included.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// 5 s turns an announcement's burst into a stream of starts (50 edges: one every
/// 0.1 s on average, so the API no longer reads and sends 50 copies at once) while the
/// last edge hardly finishes later: the uplink needs longer than that to send them all
/// anyway (50 × 212 MB is 8.5 s at 10 Gb/s). A reload still reaches each edge within
/// 5 s and its download.
const SPREAD_DEFAULT: u64 = 5;

/// Five minutes: more is a mistake (milliseconds meant, say), since a reload would wait
/// past any poll worth running, which ends the wait anyway.
const SPREAD_MAX: u64 = 300;

fn spread_seconds(given: &str) -> Result<u64, String> {
    match given.parse() {
        Ok(s) if s <= SPREAD_MAX => Ok(s),
        _ => Err(format!(
            "{given:?} is not a whole number of seconds from 0 to {SPREAD_MAX}"
        )),
    }
}

pub fn run(mut a: PullArgs, settings: &warp_config::Settings) -> Result<()> {
    let out = crate::snapshot_path(a.out.take(), settings);
    let url = format!("{}/api/v1/routing/snapshot", a.api.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(a.timeout.max(1)))
        .build()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if a.every == 0 {
        let said = rt.block_on(pull_once(&client, &url, &a.key, &out))?;
        outln!("{said}")?;
        return Ok(());
    }
    // An empty variable is unset, as elsewhere.
    let redis = a.redis.take().filter(|r| !r.is_empty());
    let redis_ca = a.redis_ca.take().filter(|ca| !ca.as_os_str().is_empty());
    eprintln!(
        "{}",
        effective_configuration(&a, &out, redis.as_deref(), redis_ca.as_deref(), settings)
    );
    let redis = redis
        .as_deref()
        .map(|url| announcements::Redis::open(url, redis_ca.as_deref()))
        .transpose()?;
    let (every, spread) = (Duration::from_secs(a.every), Duration::from_secs(a.spread));
    rt.block_on(async {
        let wake = Arc::new(Notify::new());
        if let Some(redis) = redis {
            tokio::spawn(redis.listen(out.clone(), Arc::clone(&wake)));
        }
        // The refusal said last: the same again (each poll while the API serves that
        // file) is not said again.
        let mut refused = None;
        loop {
            match pull_once(&client, &url, &a.key, &out).await {
                Ok(said) => {
                    refused = None;
                    outln!("{said}")?;
                }
                Err(e) => {
                    let now = e.downcast_ref::<format::Refused>().copied();
                    if now.is_none() || now != refused {
                        eprintln!("warp: {}", crate::said_once(&e));
                    }
                    refused = now;
                }
            }
            until_next_pull(every, spread, &wake).await;
        }
    })
}

/// The settings a polling edge runs with, for its log (the architecture's contract:
/// every service prints its effective configuration at start, secrets masked): the key
/// never, URLs without their passwords.
fn effective_configuration(
    a: &PullArgs,
    out: &Path,
    redis: Option<&str>,
    redis_ca: Option<&Path>,
    settings: &warp_config::Settings,
) -> String {
    let shown = |path: Option<&Path>| path.map_or("-".to_owned(), |p| p.display().to_string());
    format!(
        "warp pull: effective configuration: api {}, key ***, out {}, every {} s, redis {}, \
         redis_ca {}, spread {} s, timeout {} s, config file {}",
        warp_redact::mask_password(&a.api),
        out.display(),
        a.every,
        redis.map_or("-".to_owned(), warp_redact::mask_password),
        shown(redis_ca),
        a.spread,
        a.timeout,
        shown(settings.file()),
    )
}

/// Waits for the poll (`every`, jittered), or for a wake-up (an announcement) and then a
/// random delay below `spread`; a poll falling due during that delay ends it, one pull
/// for both. A wake-up that came during the last pull is kept for this wait:
/// announcements made meanwhile cost one more pull, not one each.
async fn until_next_pull(every: Duration, spread: Duration, wake: &Notify) {
    let poll = tokio::time::sleep(jitter::spread(every));
    tokio::pin!(poll);
    tokio::select! {
        () = &mut poll => return,
        () = wake.notified() => {}
    }
    tokio::select! {
        () = &mut poll => {}
        () = tokio::time::sleep(jitter::below(spread)) => {}
    }
    // Those heard during the delay: the pull about to be made covers them.
    let _ = wake.notified().now_or_never();
}

/// One conditional GET: the file at `out` is replaced only when the API sends another
/// generation (no 304) and what it sent verifies.
async fn pull_once(client: &reqwest::Client, url: &str, key: &str, out: &Path) -> Result<String> {
    // What is there now, if it is a sound snapshot: a damaged one is replaced.
    let held = Snapshot::open_verified(out)
        .ok()
        .map(|s| (s.generation(), s.payload_hash()));
    let current = held.map(|(g, _)| g);
    let mut req = client
        .get(url)
        .bearer_auth(key)
        .header(format::HEADER, FORMAT_VERSION);
    // The URL as errors name it: a proxy's credentials in it are not for the log.
    let url = warp_redact::mask_password(url);
    if let Some((g, payload)) = held {
        // The payload too: a file compiled by hand may bear the API's number.
        req = req.header(
            reqwest::header::IF_NONE_MATCH,
            format!("\"{g}.{payload:016x}\""),
        );
    }
    let res = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = res.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        let g = current.unwrap_or_default();
        return Ok(format!("{} is current: generation {g}", out.display()));
    }
    if let Some(refused) = format::Refused::of(&res) {
        return Err(anyhow::Error::new(refused)
            .context(format!("GET {url}: refused, {} kept", out.display())));
    }
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        bail!("GET {url}: {status}: {}", api_message(&body));
    }
    let bytes = res
        .bytes()
        .await
        .with_context(|| format!("GET {url}: reading the snapshot"))?;
    let snap = Snapshot::from_bytes(&bytes)
        .and_then(|s| s.verify().map(|()| s))
        .with_context(|| {
            format!(
                "GET {url}: what it sent is no sound snapshot, {} kept",
                out.display()
            )
        })?;
    publish(&bytes, out)?;
    Ok(format!(
        "published {} generation {} ({} bytes; was {})",
        out.display(),
        snap.generation(),
        bytes.len(),
        current.map_or("none".into(), |g| g.to_string())
    ))
}

/// The API's own words for a refusal (its envelope's first error), else the body.
fn api_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}
