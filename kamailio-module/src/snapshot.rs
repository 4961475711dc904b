//! The routing snapshot each process routes on, and how a new generation reaches them.
//!
//! `mod_init` maps the file before the fork, so every worker starts on one shared
//! mapping. `warp.reload` verifies the new file in the RPC process and only then bumps
//! an epoch in shared memory; each process compares that epoch with its own on its next
//! lookup and remaps there. A lookup in progress holds an `Arc` to the mapping it
//! started on, so it finishes on the old generation, which is unmapped with its last
//! reference. A file that fails verification never bumps the epoch: workers keep
//! serving the old one.

use crate::log::{lm_err, lm_info};
use crate::params;
use crate::shm;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use warp_core::Snapshot;

#[repr(C)]
struct Shared {
    /// Bumped by every successful reload.
    epoch: AtomicU64,
    /// Generation the last successful reload verified (0: none yet).
    generation: AtomicU64,
    reloads: AtomicU64,
    refused: AtomicU64,
}

static SHARED: shm::Block<Shared> = shm::Block::new();

/// This process's mapping and the epoch it belongs to.
struct Current {
    epoch: u64,
    snapshot: Option<Arc<Snapshot>>,
}

static CURRENT: Mutex<Current> = Mutex::new(Current {
    epoch: 0,
    snapshot: None,
});

/// Maps the configured snapshot (`mod_init`). A missing or corrupt file is logged and
/// leaves Kamailio running: routing answers the fallback until a reload succeeds.
pub fn init() -> Result<(), String> {
    let shared = SHARED.alloc(Shared {
        epoch: AtomicU64::new(0),
        generation: AtomicU64::new(0),
        reloads: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    })?;
    let config = params::config();
    match Snapshot::open_verified(Path::new(&config.snapshot)) {
        Ok(snapshot) => {
            lm_info!(
                "snapshot {} generation {} mapped",
                config.snapshot,
                snapshot.generation()
            );
            shared.generation.store(snapshot.generation(), SeqCst);
            lock().snapshot = Some(Arc::new(snapshot));
        }
        Err(e) => lm_err!(
            "snapshot {} refused ({e}): warp_route() answers {} {}",
            config.snapshot,
            config.fallback_code,
            config.fallback_reason
        ),
    }
    Ok(())
}

fn lock() -> std::sync::MutexGuard<'static, Current> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    CURRENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The snapshot to route on now, remapped first if a reload happened since this
/// process last looked.
pub fn current() -> Option<Arc<Snapshot>> {
    let mut cur = lock();
    if let Some(shared) = SHARED.get() {
        let epoch = shared.epoch.load(SeqCst);
        if epoch != cur.epoch {
            // Whatever happens, do not retry this epoch on every call.
            cur.epoch = epoch;
            match remap(shared.generation.load(SeqCst)) {
                Ok(s) => cur.snapshot = Some(Arc::new(s)),
                Err(e) => lm_err!("snapshot remap refused ({e}): keeping the old one"),
            }
        }
    }
    cur.snapshot.clone()
}

/// Maps the file the RPC process verified. The header check is enough when it is the
/// generation that was verified (the header's checksum covers the payload's); a file
/// published again since then is verified in full.
fn remap(verified: u64) -> Result<Snapshot, String> {
    let path = Path::new(&params::config().snapshot);
    let snapshot = Snapshot::open(path).map_err(|e| e.to_string())?;
    if snapshot.generation() != verified {
        snapshot.verify().map_err(|e| e.to_string())?;
    }
    Ok(snapshot)
}

/// What `warp.reload` reports.
pub struct Reloaded {
    pub previous: Option<u64>,
    pub generation: u64,
    pub millis: f64,
}

/// `warp.reload`: verifies the configured file in full and, if it is sound, publishes
/// it to every process. Refusals are logged and leave the current snapshot in place.
pub fn reload() -> Result<Reloaded, String> {
    let shared = SHARED.get().ok_or("module not initialised")?;
    let path = &params::config().snapshot;
    let started = Instant::now();
    let snapshot = match Snapshot::open_verified(Path::new(path)) {
        Ok(s) => s,
        Err(e) => {
            shared.refused.fetch_add(1, Relaxed);
            let previous = generation().map_or("none".into(), |g| g.to_string());
            let why = format!("snapshot {path} refused ({e}); generation {previous} keeps serving");
            lm_err!("{why}");
            return Err(why);
        }
    };
    let generation = snapshot.generation();
    let mut cur = lock();
    let previous = cur.snapshot.as_ref().map(|s| s.generation());
    shared.generation.store(generation, SeqCst);
    // After the generation: a process seeing the new epoch reads the new generation.
    cur.epoch = shared.epoch.fetch_add(1, SeqCst) + 1;
    shared.reloads.fetch_add(1, Relaxed);
    cur.snapshot = Some(Arc::new(snapshot));
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    lm_info!("snapshot {path} generation {generation} published to all processes ({millis:.1} ms)");
    Ok(Reloaded {
        previous,
        generation,
        millis,
    })
}

/// Generation of the snapshot this process routes on now.
pub fn generation() -> Option<u64> {
    current().map(|s| s.generation())
}

/// (epoch, successful reloads, refused reloads), for `warp.stats`.
pub fn reload_counts() -> (u64, u64, u64) {
    SHARED.get().map_or((0, 0, 0), |s| {
        (
            s.epoch.load(Relaxed),
            s.reloads.load(Relaxed),
            s.refused.load(Relaxed),
        )
    })
}

/// Frees the shared state; `destroy` only.
pub fn destroy() {
    SHARED.free();
}
