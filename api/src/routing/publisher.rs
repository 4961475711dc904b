//! Snapshot publishing: load the dataset from PostgreSQL, compile it with warp-core,
//! write it atomically to WARP_SNAPSHOT as a new generation, keep it in memory for
//! simulation, and announce it on Redis. Changes schedule a debounced publish.

use crate::auth::Principal;
use crate::metrics::Metrics;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use warp_core::snapshot::{compile, publish, CompileError, OpenError};
use warp_core::Snapshot;

/// Redis pub/sub channel new generations are announced on, for whatever wants to know:
/// `warp pull --redis` on an edge pulls at once (warp.so does not listen: it looks at
/// the file, `reload_check`).
pub const CHANNEL: &str = "warp:snapshot";

/// The wait before retrying a failed automatic publish, doubled per failure up to
/// the maximum.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("loading the dataset: {0}")]
    Load(#[from] warp_db::DbError),
    #[error("compiling: {0}")]
    Compile(#[from] CompileError),
    /// The file could not be written: a server fault, not a dataset to fix.
    #[error("{0}")]
    Write(CompileError),
    #[error("reopening: {0}")]
    Open(#[from] OpenError),
    #[error("compile task: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The snapshot on disk (a file from elsewhere) holds the last generation there is.
    #[error("the snapshot holds generation {0}, the last one: remove or replace it")]
    LastGeneration(u64),
    #[error("recording the publish: {0}")]
    Audit(#[from] sqlx::Error),
}

/// A generation compiled and not yet installed.
struct Compiled {
    /// The count of changes it holds.
    covered: u64,
    bytes: Vec<u8>,
    /// Made of `bytes`.
    snapshot: Snapshot,
}

pub struct Publisher {
    pool: sqlx::PgPool,
    path: PathBuf,
    redis: Option<redis::Client>,
    debounce: Duration,
    metrics: Arc<Metrics>,
    current: RwLock<Option<Arc<Snapshot>>>,
    /// One publish at a time: generations are handed out in order.
    publishing: Mutex<()>,
    dirty: Notify,
    /// Routing changes so far, and how many of them the current snapshot holds: the
    /// debouncer skips a publish that an explicit one already covered.
    changes: AtomicU64,
    published_changes: AtomicU64,
}

impl Publisher {
    pub fn new(
        pool: sqlx::PgPool,
        config: &crate::config::Config,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let redis = config
            .redis_url
            .as_deref()
            .map(redis::Client::open)
            .transpose()?;
        // Start from the file SIP nodes already read, when there is a good one.
        let current = Snapshot::open_verified(&config.snapshot).ok().map(Arc::new);
        Ok(Publisher {
            pool,
            path: config.snapshot.clone(),
            redis,
            debounce: config.publish_debounce,
            metrics,
            current: RwLock::new(current),
            publishing: Mutex::new(()),
            dirty: Notify::new(),
            changes: AtomicU64::new(0),
            published_changes: AtomicU64::new(0),
        })
    }

    /// The snapshot simulation routes on: the last one published.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Marks routing data changed; the debouncer publishes once things are quiet.
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.dirty.notify_one();
    }

    /// Compiles and publishes a new generation now, on `who`'s behalf. Its audit row
    /// (and webhook event) is written first in a transaction committed only once the
    /// file is in place: a publish that cannot be recorded does not happen, and one
    /// that fails leaves no record.
    pub async fn publish(&self, who: &Principal) -> Result<u64, PublishError> {
        let _one = self.publishing.lock().await;
        let next = self.compile_next().await?;
        let mut tx = self.pool.begin().await?;
        let id = next.snapshot.generation().to_string();
        crate::audit::record(&mut tx, who, published_change(&id)).await?;
        let generation = self.install(next).await?;
        tx.commit().await?;
        Ok(generation)
    }

    /// Publishes unless the current snapshot already holds every counted change
    /// (checked under the lock: an explicit publish may just have covered them).
    async fn publish_pending(&self) -> Result<Option<u64>, PublishError> {
        let _one = self.publishing.lock().await;
        let pending =
            self.changes.load(Ordering::SeqCst) > self.published_changes.load(Ordering::SeqCst);
        if pending {
            let next = self.compile_next().await?;
            self.install(next).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// At start: publishes when PostgreSQL holds other routing data than the snapshot
    /// on disk (a change made while no API ran, or one whose publish the last run did
    /// not finish); the same data keeps its generation, and SIP nodes reload nothing.
    pub async fn publish_if_stale(&self) -> Result<Option<u64>, PublishError> {
        let _one = self.publishing.lock().await;
        let next = self.compile_next().await?;
        if self.current().map(|s| s.payload_hash()) == Some(next.snapshot.payload_hash()) {
            self.published_changes
                .fetch_max(next.covered, Ordering::SeqCst);
            return Ok(None);
        }
        self.install(next).await.map(Some)
    }

    /// The dataset PostgreSQL holds now, compiled as the next generation.
    async fn compile_next(&self) -> Result<Compiled, PublishError> {
        // Changes are committed before they are counted: what is counted now is loaded.
        let covered = self.changes.load(Ordering::SeqCst);
        let dataset = warp_db::load_dataset(&self.pool).await?;
        let on_disk = Snapshot::open(&self.path).map(|s| s.generation()).ok();
        let ours = self.current().map(|s| s.generation());
        let newest = on_disk.max(ours).unwrap_or(0);
        let generation = newest
            .checked_add(1)
            .ok_or(PublishError::LastGeneration(newest))?;
        let bytes = tokio::task::spawn_blocking(move || compile(&dataset, generation)).await??;
        let snapshot = Snapshot::from_bytes(&bytes)?;
        Ok(Compiled {
            covered,
            bytes,
            snapshot,
        })
    }

    /// Writes the compiled file, serves its snapshot to simulation and announces its
    /// generation.
    async fn install(&self, next: Compiled) -> Result<u64, PublishError> {
        let Compiled {
            covered,
            bytes,
            snapshot,
        } = next;
        let generation = snapshot.generation();
        let path = self.path.clone();
        // `publish` creates the directory too.
        tokio::task::spawn_blocking(move || publish(&bytes, &path))
            .await?
            .map_err(PublishError::Write)?;
        if let Ok(mut c) = self.current.write() {
            *c = Some(Arc::new(snapshot));
        }
        self.published_changes.fetch_max(covered, Ordering::SeqCst);
        self.metrics.published(generation);
        tracing::info!(generation, path = %self.path.display(), "published routing snapshot");
        self.announce(generation).await;
        Ok(generation)
    }

    /// Tells SIP nodes on Redis; a Redis outage only costs them the push.
    async fn announce(&self, generation: u64) {
        let Some(client) = &self.redis else { return };
        let message = serde_json::json!({
            "generation": generation,
            "path": self.path.display().to_string(),
        })
        .to_string();
        let send = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(message)
                .query_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(Duration::from_secs(2), send).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "announcing the snapshot on Redis"),
            Err(_) => tracing::warn!("announcing the snapshot on Redis timed out"),
        }
    }

    /// An automatic publish is no one's change (so not audited) but is still the
    /// `routing_snapshot.publish` webhook event.
    async fn published_event(&self, generation: u64) {
        let id = generation.to_string();
        let emitted = async {
            let mut conn = self.pool.acquire().await?;
            crate::webhooks::emit(&mut conn, &published_change(&id)).await
        };
        if let Err(e) = emitted.await {
            tracing::warn!(error = %e, generation, "queueing the publish webhook event");
        }
    }

    /// Publishes the counted changes the current snapshot lacks, now, with the
    /// publish event. At shutdown too: no other instance knows of this one's changes,
    /// so one left to the debouncer would wait for this instance's next start.
    pub async fn flush(&self) -> Result<(), PublishError> {
        if let Some(generation) = self.publish_pending().await? {
            self.published_event(generation).await;
        }
        Ok(())
    }

    /// Publishes after each burst of changes, once `debounce` passes without another.
    /// A failed publish is tried again, backing off: the changes it was for would
    /// otherwise wait, unpublished, for some other change.
    pub fn spawn_debouncer(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut retry = RETRY_FIRST;
            loop {
                me.dirty.notified().await;
                while tokio::time::timeout(me.debounce, me.dirty.notified())
                    .await
                    .is_ok()
                {}
                match me.flush().await {
                    Ok(()) => retry = RETRY_FIRST,
                    Err(e) => {
                        me.metrics.publish_failed();
                        tracing::error!(error = %e, retry_in = ?retry, "automatic snapshot publish failed");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(RETRY_MAX);
                        me.dirty.notify_one();
                    }
                }
            }
        });
    }
}

/// Generation `id` published: the audit entry and webhook event.
fn published_change(id: &str) -> crate::audit::Change<'_> {
    crate::audit::Change {
        action: "publish",
        class: crate::auth::roles::Class::Routing,
        entity_type: "routing_snapshot",
        entity_id: id,
        before: None,
        after: None,
    }
}
