//! `warp pull --redis`: hears the API announce each new generation on Redis and wakes
//! the pull loop at once, rather than at its next poll. Redis being away costs only
//! that: the polls go on, and the subscription is made again when it is back.

use anyhow::{Context, Result};
use futures_util::StreamExt as _;
use redis::aio::{PubSubSink, PubSubStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{sleep, timeout};
use warp_core::Snapshot;

/// Where the API announces `{"generation": N, "path": "…"}` (warp-api's
/// `routing::publisher::CHANNEL`).
const CHANNEL: &str = "warp:snapshot";

/// The wait before subscribing again after a failure, doubled per failure up to the
/// maximum: a Redis that is away a long time is asked six times a minute.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A connection and subscription may take this long; past it, Redis counts as away.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A subscriber sends nothing, so a connection that died without a word (a NAT or
/// firewall forgetting it while idle, Redis's host gone) would leave it deaf for good:
/// it pings this often, and a ping unanswered for PING_TIMEOUT drops the connection.
/// A ping every 5 s is nothing to Redis even from a large fleet, and finds a dead
/// connection within 10 s.
const PING_EVERY: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Redis {
    client: redis::Client,
    /// The URL without its password, for the log.
    shown: String,
}

impl Redis {
    /// Refuses a URL that is no Redis URL, and for rediss:// a CA file that cannot be
    /// used, before anything runs.
    pub fn open(url: &str, ca: Option<&Path>) -> Result<Redis> {
        // The error names the variables, which --help ties to --redis and --redis-ca.
        let client = warp_redis::client(url, ca)?;
        let shown = warp_redact::mask_password(url);
        Ok(Redis { client, shown })
    }

    /// Forever: subscribes, wakes the puller for each announced generation that `out`
    /// does not hold, and subscribes again when the connection is lost. Each time it
    /// has subscribed it wakes the puller once, for what was announced while it was not
    /// listening. An outage is logged once, not at every attempt.
    pub async fn listen(self, out: PathBuf, wake: Arc<Notify>) {
        let mut retry = RETRY_FIRST;
        let mut away = false;
        loop {
            match self.subscribe().await {
                Ok((sink, stream)) => {
                    eprintln!(
                        "warp: listening for new generations on {} channel {CHANNEL}",
                        self.shown
                    );
                    wake.notify_one();
                    retry = RETRY_FIRST;
                    let lost = hear(sink, stream, &out, &wake).await;
                    eprintln!(
                        "warp: Redis {}: {lost}; polling meanwhile, subscribing again",
                        self.shown
                    );
                    away = true;
                }
                Err(e) if !away => {
                    eprintln!(
                        "warp: Redis {}: {}; polling meanwhile, subscribing again",
                        self.shown,
                        crate::said_once(&e)
                    );
                    away = true;
                }
                Err(_) => {}
            }
            sleep(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    async fn subscribe(&self) -> Result<(PubSubSink, PubSubStream)> {
        let subscribed = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            anyhow::Ok(pubsub.split())
        };
        timeout(CONNECT_TIMEOUT, subscribed)
            .await
            .with_context(|| format!("no answer in {CONNECT_TIMEOUT:?}"))?
    }
}

/// Takes the announcements until the connection is lost; why it was.
async fn hear(mut sink: PubSubSink, mut stream: PubSubStream, out: &Path, wake: &Notify) -> String {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => take(message.get_payload_bytes(), out, wake),
                None => return "the connection closed".into(),
            },
            _ = ping.tick() => match timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("ping: {e}"),
                Err(_) => return format!("no answer to a ping in {PING_TIMEOUT:?}"),
            },
        }
    }
}

/// Wakes the puller for an announced generation other than the one at `out`; says why
/// it ignores a message that is no announcement.
fn take(payload: &[u8], out: &Path, wake: &Notify) {
    match announced_generation(payload) {
        Some(g) if Some(g) == Snapshot::open(out).ok().map(|s| s.generation()) => {}
        Some(_) => wake.notify_one(),
        None => eprintln!(
            "warp: ignored a message on {CHANNEL} that is no {{\"generation\": N}}: {:?}",
            String::from_utf8_lossy(payload)
                .chars()
                .take(200)
                .collect::<String>()
        ),
    }
}

/// The generation an announcement names. Its `path` is where the API wrote the file,
/// on another machine, and is no concern of an edge's.
fn announced_generation(payload: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()?
        .get("generation")?
        .as_u64()
}
