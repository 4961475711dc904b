//! Snapshot publishing: load the dataset from PostgreSQL, compile it with warp-core,
//! number it as every instance does ([`generations`]), write it atomically to
//! WARP_SNAPSHOT, keep it in memory for simulation, and announce it on Redis. Changes
//! made here, and those heard of from anywhere ([`super::notices`]), schedule a
//! debounced publish.

use super::changes::Changes;
use super::generations::{self, Stamp};
use crate::auth::Principal;
use crate::metrics::Metrics;
use sqlx::PgConnection;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use warp_core::snapshot::{compile, publish, restamp, CompileError, OpenError};
use warp_core::Snapshot;

/// Redis pub/sub channel new generations are announced on, for whatever wants to know:
/// `warp pull --redis` on an edge pulls within its `--spread` (warp.so does not listen:
/// it looks at the file, `reload_check`).
pub const CHANNEL: &str = "warp:snapshot";

/// An announcement may take this long, connecting included: a Redis that does not
/// answer costs a publish no more.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// A snapshot (a file from elsewhere) holds the last generation there is.
    #[error("generation {0} is published, the last one there is: remove or replace the snapshot holding it")]
    LastGeneration(u64),
    #[error("recording the publish: {0}")]
    Audit(#[from] sqlx::Error),
    #[error("deciding the generation: {0}")]
    Generation(sqlx::Error),
}

/// A generation compiled and not yet installed.
struct Compiled {
    /// The changes it holds: [`Changes::mark`] of those heard of and of those made here.
    covered: (u64, u64),
    bytes: Vec<u8>,
    /// Made of `bytes`.
    snapshot: Snapshot,
    /// Whether this instance serves it already, in memory and on disk.
    serving: bool,
}

pub struct Publisher {
    pool: sqlx::PgPool,
    path: PathBuf,
    redis: Option<redis::Client>,
    debounce: Duration,
    metrics: Arc<Metrics>,
    current: RwLock<Option<Arc<Snapshot>>>,
    /// One publish at a time in this instance.
    publishing: Mutex<()>,
    dirty: Notify,
    /// An edge holds a newer generation than this instance serves.
    behind: Notify,
    /// Routing changes heard of, made anywhere: what the debouncer publishes.
    heard: Changes,
    /// Those made through this instance: their publish is its `publish` event, so each
    /// change is one event, not one per instance.
    made: Changes,
}

impl Publisher {
    pub fn new(
        pool: sqlx::PgPool,
        config: &crate::config::Config,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        // Start from the file SIP nodes already read, when there is a good one.
        let current = Snapshot::open_verified(&config.snapshot).ok().map(Arc::new);
        Ok(Publisher {
            pool,
            path: config.snapshot.clone(),
            redis: config.redis.clone(),
            debounce: config.publish_debounce,
            metrics,
            current: RwLock::new(current),
            publishing: Mutex::new(()),
            dirty: Notify::new(),
            behind: Notify::new(),
            heard: Changes::default(),
            made: Changes::default(),
        })
    }

    /// The snapshot simulation routes on: the last one published.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Marks routing data changed through this instance; the debouncer publishes once
    /// things are quiet.
    pub fn changed(&self) {
        self.made.count();
        self.notified();
    }

    /// Marks routing data changed somewhere (a notice from PostgreSQL: this instance,
    /// another, an import or SQL by hand); the debouncer publishes once things are quiet.
    pub fn notified(&self) {
        self.heard.count();
        self.dirty.notify_one();
    }

    /// An edge holds a newer generation than this instance serves: publishes now,
    /// without waiting out the debounce, if another instance did publish one.
    pub fn catch_up(&self) {
        self.behind.notify_one();
    }

    /// Compiles and publishes what PostgreSQL holds now, on `who`'s behalf, and
    /// announces its generation: a new one, or the one every instance gives that data
    /// already (announced all the same: an explicit publish is a call to pull). Its
    /// audit row (and webhook event) is written first in a transaction committed only
    /// once the file is in place: a publish that cannot be recorded does not happen, and
    /// one that fails leaves no record.
    pub async fn publish(&self, who: &Principal) -> Result<u64, PublishError> {
        let _one = self.publishing.lock().await;
        let mut tx = self.pool.begin().await?;
        let next = self.compile_next(&mut tx).await?;
        let generation = next.snapshot.generation();
        let id = generation.to_string();
        crate::audit::record(&mut tx, who, published_change(&id)).await?;
        self.install(next).await?;
        tx.commit().await?;
        self.announce(generation).await;
        Ok(generation)
    }

    /// At start: serves the generation PostgreSQL's data has (a new one when no
    /// instance published that data: a change made while no API ran, or one whose
    /// publish did not finish). The same data keeps its generation and bytes, and SIP
    /// nodes reload nothing.
    pub async fn publish_if_stale(&self) -> Result<(), PublishError> {
        let _one = self.publishing.lock().await;
        self.update().await.map(drop)
    }

    /// Compiles what PostgreSQL holds now and installs and announces it unless it is
    /// served already; its generation.
    async fn update(&self) -> Result<u64, PublishError> {
        let mut tx = self.pool.begin().await.map_err(PublishError::Generation)?;
        let next = self.compile_next(&mut tx).await?;
        let generation = next.snapshot.generation();
        let written = self.install(next).await?;
        tx.commit().await.map_err(PublishError::Generation)?;
        if written {
            self.announce(generation).await;
        }
        Ok(generation)
    }

    /// The dataset PostgreSQL holds now, compiled and stamped with its generation,
    /// decided in `tx` under the cluster-wide lock, which the caller's commit releases
    /// once the file is in place.
    async fn compile_next(&self, tx: &mut PgConnection) -> Result<Compiled, PublishError> {
        generations::lock(tx)
            .await
            .map_err(PublishError::Generation)?;
        // Changes are committed before they are counted: what is counted now is loaded.
        let covered = (self.heard.mark(), self.made.mark());
        let dataset = warp_db::load_dataset(&self.pool).await?;
        let mut bytes = tokio::task::spawn_blocking(move || compile(&dataset, 0)).await??;
        let compiled = warp_core::snapshot::header(&bytes)?;
        let on_disk = Snapshot::open(&self.path).ok().map(|s| Stamp::of(&s));
        let in_memory = self.current().map(|s| Stamp::of(&s));
        let held: Vec<Stamp> = on_disk.into_iter().chain(in_memory).collect();
        let last = generations::last(tx)
            .await
            .map_err(PublishError::Generation)?;
        let stamp = generations::decide(last, &held, compiled.payload_hash, compiled.created_unix)
            .map_err(PublishError::LastGeneration)?;
        if last != Some(stamp) {
            generations::record(tx, &stamp)
                .await
                .map_err(PublishError::Generation)?;
        }
        restamp(&mut bytes, stamp.generation, stamp.created_unix)?;
        let snapshot = Snapshot::from_bytes(&bytes)?;
        Ok(Compiled {
            covered,
            bytes,
            snapshot,
            serving: on_disk == Some(stamp) && in_memory == Some(stamp),
        })
    }

    /// Writes the compiled file and serves its snapshot to simulation, unless this
    /// instance serves it already; whether it did. Announcing waits for the caller's
    /// commit: a Redis that does not answer must not hold every instance's publishes.
    async fn install(&self, next: Compiled) -> Result<bool, PublishError> {
        let Compiled {
            covered: (heard, made),
            bytes,
            snapshot,
            serving,
        } = next;
        if !serving {
            let generation = snapshot.generation();
            let path = self.path.clone();
            // `publish` creates the directory too.
            tokio::task::spawn_blocking(move || publish(&bytes, &path))
                .await?
                .map_err(PublishError::Write)?;
            if let Ok(mut c) = self.current.write() {
                *c = Some(Arc::new(snapshot));
            }
            self.metrics.published(generation);
            tracing::info!(generation, path = %self.path.display(), "published routing snapshot");
        }
        self.heard.cover(heard);
        self.made.cover(made);
        Ok(!serving)
    }

    /// Tells SIP nodes on Redis; a Redis outage only costs them the push.
    async fn announce(&self, generation: u64) {
        let Some(client) = &self.redis else { return };
        let message = serde_json::json!({
            "generation": generation,
            "path": self.path.display().to_string(),
        })
        .to_string();
        // The one bound is ANNOUNCE_TIMEOUT: the client's own defaults (1 s to connect,
        // 0.5 s for a reply) would drop an announcement to a Redis busy for a second.
        let unbounded = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let send = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&unbounded)
                .await?;
            redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(message)
                .query_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(ANNOUNCE_TIMEOUT, send).await {
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

    /// Publishes the changes heard of that no publish has covered yet, now; with the
    /// publish event when some were made through this instance (the others publishing
    /// them write none). At shutdown too: the event is this instance's to write.
    pub async fn flush(&self) -> Result<(), PublishError> {
        let _one = self.publishing.lock().await;
        if !self.heard.pending() {
            return Ok(());
        }
        let made_here = self.made.pending();
        let generation = self.update().await?;
        if made_here {
            self.published_event(generation).await;
        }
        Ok(())
    }

    /// Counts a change to publish when PostgreSQL's last generation is newer than the
    /// one served here. An edge naming a generation no instance handed out (a file from
    /// elsewhere) costs this look, not a compile.
    async fn check_behind(&self) -> Result<(), PublishError> {
        let last = async {
            let mut conn = self.pool.acquire().await?;
            generations::last(&mut conn).await
        };
        let last = last.await.map_err(PublishError::Generation)?;
        if last.map(|l| l.generation) > self.current().map(|s| s.generation()) {
            self.heard.count();
        }
        Ok(())
    }

    /// Waits out the debounce: `debounce` without another change, or until an edge
    /// shows this instance may be behind, which no wait helps (then true).
    async fn quiet(&self) -> bool {
        loop {
            tokio::select! {
                more = tokio::time::timeout(self.debounce, self.dirty.notified()) => {
                    if more.is_err() {
                        return false;
                    }
                }
                () = self.behind.notified() => return true,
            }
        }
    }

    /// Publishes after each burst of changes, once `debounce` passes without another,
    /// and at once when an edge shows this instance is behind.
    /// A failed publish is tried again, backing off: the changes it was for would
    /// otherwise wait, unpublished, for some other change.
    pub fn spawn_debouncer(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut retry = RETRY_FIRST;
            loop {
                let behind = tokio::select! {
                    () = me.dirty.notified() => me.quiet().await,
                    () = me.behind.notified() => true,
                };
                let published = async {
                    if behind {
                        me.check_behind().await?;
                    }
                    me.flush().await
                };
                match published.await {
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
