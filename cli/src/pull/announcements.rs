//! `warp pull --redis`: hears the API announce each new generation on Redis and wakes
//! the pull loop at once, rather than at its next poll. Redis being away costs only
//! that: the polls go on, and the subscription is made again when it is back.

use anyhow::{Context, Result};
use futures_util::StreamExt as _;
use redis::aio::PubSubStream;
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

pub struct Redis {
    client: redis::Client,
    /// The URL without its password, for the log.
    shown: String,
}

impl Redis {
    /// Refuses a URL that is no Redis URL, before anything runs.
    pub fn open(url: &str) -> Result<Redis> {
        let shown = warp_redact::mask_password(url);
        let client = redis::Client::open(url)
            .with_context(|| format!("{shown:?} is not a Redis URL (--redis, $WARP_REDIS_URL)"))?;
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
                Ok(stream) => {
                    eprintln!(
                        "warp: listening for new generations on {} channel {CHANNEL}",
                        self.shown
                    );
                    wake.notify_one();
                    retry = RETRY_FIRST;
                    let lost = hear(stream, &out, &wake).await;
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

    async fn subscribe(&self) -> Result<PubSubStream> {
        let subscribed = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            anyhow::Ok(pubsub.into_on_message())
        };
        timeout(CONNECT_TIMEOUT, subscribed)
            .await
            .with_context(|| format!("no answer in {CONNECT_TIMEOUT:?}"))?
    }
}

/// Takes the announcements until the connection is lost; why it was.
async fn hear(mut stream: PubSubStream, out: &Path, wake: &Notify) -> String {
    while let Some(message) = stream.next().await {
        take(message.get_payload_bytes(), out, wake);
    }
    "the connection closed".into()
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
