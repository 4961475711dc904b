//! The routing snapshot each process routes on, and how a new generation reaches them.
//!
//! `mod_init` maps the file before the fork, so every worker starts on one shared
//! mapping. `warp.reload` verifies the new file in the RPC process and only then bumps
//! an epoch in shared memory; each process compares that epoch with its own on its next
//! lookup and remaps there. A lookup in progress holds an `Arc` to the mapping it
//! started on, so it finishes on the old generation, which is unmapped with its last
//! reference. A file that fails verification never bumps the epoch: workers keep
//! serving the old one.
//!
//! A worker remaps from the path, so it finds the verified file only if nobody has
//! renamed another over it since. The reload records which file it verified (device
//! and inode); a worker that finds another there verifies it in full before mapping it,
//! and says so. Reloads may run at once in several RPC processes (ctl, jsonrpcs): each
//! publishes only if the path still names the file it verified, else verifies the new
//! one, so the last to publish names the newest file, not the one it started on. A
//! worker whose remap fails keeps its mapping and tries again when the file at the path
//! changes, checked at most once a second.
//!
//! With `reload_check`, the core's timer process looks at the path every so many
//! seconds and runs that same reload when another file has been renamed over it.
//!
//! A file rewritten in place (`cp` or `scp` onto the path) changes under every
//! mapping of it. Each mapping is guarded against SIGBUS ([`crate::sigbus`]), and a
//! lookup is checked afterwards ([`intact`]): a process that finds its mapping
//! rewritten drops the lookup's answer and the mapping, and maps the file at the path
//! again, verified in full, as soon as it is sound (looked at once a second).

use crate::guard;
use crate::log::{lm_err, lm_info, lm_warn};
use crate::params;
use crate::shm;
use crate::sigbus;
use crate::timer;
use std::ffi::{c_uint, c_void};
use std::ops::Deref;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warp_core::Snapshot;

#[repr(C)]
struct Shared {
    /// `published.epoch`, read on every lookup without the lock.
    epoch: AtomicU64,
    /// What the last successful reload published, read and written as one.
    published: shm::Locked<Published>,
    reloads: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Published {
    /// Bumped by every successful reload.
    epoch: u64,
    /// Generation the reload verified (0: none yet).
    generation: u64,
    /// The file it verified.
    file: FileId,
}

static SHARED: shm::Block<Shared> = shm::Block::new();

/// This process's mapping and the epoch it belongs to.
struct Current {
    epoch: u64,
    snapshot: Option<Arc<Mapped>>,
    /// The last remap that failed, until one succeeds.
    failed: Option<Failed>,
    /// When to look again at a file found rewritten in place, until it maps.
    rewritten: Option<Rewritten>,
}

struct Rewritten {
    next_look: Instant,
    /// Whether a look found the file unsound yet (said once).
    said: bool,
}

/// A snapshot this process maps, guarded against its file being truncated under it.
pub struct Mapped {
    // Declared first, so dropped (unguarded) before the snapshot unmaps.
    _guard: Option<sigbus::Guard>,
    snapshot: Snapshot,
}

impl Mapped {
    fn new(snapshot: Snapshot) -> Mapped {
        let guard = snapshot.mapping().and_then(sigbus::guard);
        if guard.is_none() {
            lm_warn!("every SIGBUS guard slot is taken: this snapshot mapping is unguarded");
        }
        Mapped {
            _guard: guard,
            snapshot,
        }
    }
}

impl Deref for Mapped {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}

struct Failed {
    epoch: u64,
    /// The file that failed (`None`: there was none to open).
    file: Option<FileId>,
    next_look: Instant,
}

static CURRENT: Mutex<Current> = Mutex::new(Current {
    epoch: 0,
    snapshot: None,
    failed: None,
    rewritten: None,
});

/// How often a process whose remap failed looks whether the file has changed.
const RETRY: Duration = Duration::from_secs(1);

/// Which file a path names: a rename over the path changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The file `path` names now; `None` when it names none.
    fn at(path: impl AsRef<Path>) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|m| FileId::of(&m))
    }
}

/// Maps `path` (header checks only) and says which file that was.
fn open(path: &Path) -> Result<(Mapped, FileId), (Option<FileId>, String)> {
    let file = std::fs::File::open(path).map_err(|e| (None, e.to_string()))?;
    let id = file
        .metadata()
        .map(|m| FileId::of(&m))
        .map_err(|e| (None, e.to_string()))?;
    let snapshot = Snapshot::open_file(&file, path).map_err(|e| (Some(id), e.to_string()))?;
    Ok((Mapped::new(snapshot), id))
}

/// Maps and verifies `path` in full.
fn open_verified(path: &Path) -> Result<(Mapped, FileId), String> {
    let (snapshot, id) = open(path).map_err(|(_, e)| e)?;
    snapshot.verify().map_err(|e| e.to_string())?;
    Ok((snapshot, id))
}

/// How often a reload verifies again when the file was replaced while it verified.
const REPUBLISH_TRIES: usize = 3;

/// Maps and verifies `path` in full and records it as the file every process maps,
/// with a new epoch. Returns the snapshot and its epoch.
fn verify_and_publish(shared: &Shared, path: &Path) -> Result<(Mapped, u64), String> {
    for _ in 0..REPUBLISH_TRIES {
        let (snapshot, id) = open_verified(path)?;
        // The path is looked at under the lock: a reload that verified an older file
        // while another published a newer one must not publish after it.
        let published = shared.published.with(|p| {
            let now = FileId::at(path);
            (now == Some(id)).then(|| {
                *p = Published {
                    epoch: p.epoch + 1,
                    generation: snapshot.generation(),
                    file: id,
                };
                // After the file's identity: a process seeing the new epoch reads them.
                shared.epoch.store(p.epoch, SeqCst);
                p.epoch
            })
        });
        if let Some(epoch) = published {
            return Ok((snapshot, epoch));
        }
    }
    Err(format!(
        "the file was replaced {REPUBLISH_TRIES} times while it was verified"
    ))
}

/// Maps the configured snapshot (`mod_init`). A missing or corrupt file is logged and
/// leaves Kamailio running: routing answers the fallback until a reload succeeds.
pub fn init() -> Result<(), String> {
    let shared = SHARED.alloc(Shared {
        epoch: AtomicU64::new(0),
        published: shm::Locked::new(Published {
            epoch: 0,
            generation: 0,
            file: FileId { dev: 0, ino: 0 },
        }),
        reloads: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    })?;
    let config = params::config();
    // Before the fork: no other process publishes.
    match open_verified(Path::new(&config.snapshot)) {
        Ok((snapshot, file)) => {
            shared.published.with(|p| {
                p.generation = snapshot.generation();
                p.file = file;
            });
            lm_info!(
                "snapshot {} generation {} mapped",
                config.snapshot,
                snapshot.generation()
            );
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

/// Lets go of the mapping inherited from `mod_init`, in a process that does not route
/// (the main process, timers): it would otherwise keep the first generation mapped, and
/// its file's disk space held, as long as Kamailio runs, whatever reloads follow. Should
/// it route after all (a timer's route calling `warp_route()`), its first lookup maps
/// the published file, as after a reload.
pub fn release() {
    let mut cur = lock();
    cur.snapshot = None;
    // No reload publishes this epoch, so the next lookup remaps.
    cur.epoch = u64::MAX;
}

fn lock() -> std::sync::MutexGuard<'static, Current> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    CURRENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The snapshot to route on now, remapped first if a reload happened since this
/// process last looked.
pub fn current() -> Option<Arc<Mapped>> {
    let mut cur = lock();
    cur.map_rewritten();
    if let Some(shared) = SHARED.get() {
        let epoch = shared.epoch.load(SeqCst);
        if epoch != cur.epoch && cur.worth_trying(epoch) {
            // The published file and its epoch, which may be newer than `epoch`.
            let published = shared.published.with(|p| *p);
            let epoch = published.epoch;
            match remap(&published) {
                Ok(s) => {
                    cur.epoch = epoch;
                    cur.snapshot = Some(Arc::new(s));
                    cur.rewritten = None;
                    if cur.failed.take().is_some() {
                        lm_info!("snapshot remapped after an earlier failure");
                    }
                }
                Err((file, e)) => {
                    if !matches!(&cur.failed, Some(f) if f.epoch == epoch) {
                        lm_err!(
                            "snapshot remap refused ({e}): keeping the old one, \
                             trying again when the file changes"
                        );
                    }
                    cur.failed = Some(Failed {
                        epoch,
                        file,
                        next_look: Instant::now() + RETRY,
                    });
                }
            }
        }
    }
    cur.snapshot.clone()
}

/// Whether what a lookup just read from `snapshot` can be trusted: false when its
/// file was rewritten in place meanwhile. The process then drops the mapping, and
/// its next lookup maps the file at the path again.
pub fn intact(snapshot: &Arc<Mapped>) -> bool {
    if !snapshot.rewritten() {
        return true;
    }
    let mut cur = lock();
    if cur
        .snapshot
        .as_ref()
        .is_some_and(|s| Arc::ptr_eq(s, snapshot))
    {
        cur.snapshot = None;
        cur.rewritten = Some(Rewritten {
            next_look: Instant::now(),
            said: false,
        });
        lm_err!(
            "snapshot {} generation {} was rewritten in place under its mapping: the \
             lookup's answer is dropped and the file is mapped again once it verifies; \
             publish snapshots by rename (warp publish, or mv), never cp or scp onto \
             the path",
            params::config().snapshot,
            snapshot.generation()
        );
    }
    false
}

impl Current {
    /// Maps the file at the path again after [`intact`] found this process's mapping
    /// rewritten, once it verifies in full.
    fn map_rewritten(&mut self) {
        let Some(rewritten) = self.rewritten.as_mut() else {
            return;
        };
        let now = Instant::now();
        if now < rewritten.next_look {
            return;
        }
        rewritten.next_look = now + RETRY;
        let path = &params::config().snapshot;
        match open_verified(Path::new(path)) {
            Ok((snapshot, _)) => {
                lm_warn!(
                    "snapshot {path} generation {} mapped again after it was rewritten \
                     in place; run warp.reload so that every process maps the same file",
                    snapshot.generation()
                );
                self.snapshot = Some(Arc::new(snapshot));
                self.rewritten = None;
            }
            Err(e) if !rewritten.said => {
                rewritten.said = true;
                lm_err!(
                    "snapshot {path} refused after it was rewritten in place ({e}): \
                     warp answers the fallback, looking again every second"
                );
            }
            Err(_) => {}
        }
    }

    /// Whether to remap for `epoch`: not again on the file that just failed.
    fn worth_trying(&mut self, epoch: u64) -> bool {
        let Some(failed) = self.failed.as_mut().filter(|f| f.epoch == epoch) else {
            return true;
        };
        let now = Instant::now();
        if now < failed.next_look {
            return false;
        }
        failed.next_look = now + RETRY;
        FileId::at(&params::config().snapshot) != failed.file
    }
}

/// Maps the file the RPC process verified. The header check is enough when it is that
/// very file (the header's checksum covers the payload's); another renamed over it
/// since is verified in full.
fn remap(published: &Published) -> Result<Mapped, (Option<FileId>, String)> {
    let path = &params::config().snapshot;
    let (snapshot, id) = open(Path::new(path))?;
    let generation = published.generation;
    if id != published.file || snapshot.generation() != generation {
        snapshot.verify().map_err(|e| (Some(id), e.to_string()))?;
        lm_warn!(
            "snapshot {path} was replaced after warp.reload verified generation \
             {generation}: this process maps generation {} (verified in full); \
             run warp.reload so that every process does",
            snapshot.generation()
        );
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
    let (snapshot, epoch) = match verify_and_publish(shared, Path::new(path)) {
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
    // Another reload publishing after this one makes this process remap too.
    cur.epoch = epoch;
    shared.reloads.fetch_add(1, Relaxed);
    cur.snapshot = Some(Arc::new(snapshot));
    cur.failed = None;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    lm_info!("snapshot {path} generation {generation} published to all processes ({millis:.1} ms)");
    // Allowed (a rollback is a reload of an older file), but never by accident unseen.
    if let Some(newer) = previous.filter(|&p| p > generation) {
        lm_warn!("snapshot {path} generation {generation} replaced the newer generation {newer}");
    }
    Ok(Reloaded {
        previous,
        generation,
        millis,
    })
}

/// Registers the `reload_check` timer (`mod_init`; 0 seconds: none).
pub fn schedule_checks(seconds: u32) -> Result<(), String> {
    if seconds == 0 {
        return Ok(());
    }
    timer::every(seconds, check_tick, "reload_check")
}

/// The core's timer process, every `reload_check` seconds.
unsafe extern "C" fn check_tick(_ticks: c_uint, _param: *mut c_void) {
    guard::entry("reload_check", (), check);
}

/// The last file [`check`] found refused: not tried again until another replaces it.
static CHECK_REFUSED: Mutex<Option<FileId>> = Mutex::new(None);

/// Reloads when the path names another file than the one published, as when a
/// publisher (`warp compile`, the API) renamed a new generation over it. A file
/// rewritten in place keeps its identity: [`intact`] deals with that one.
fn check() {
    let Some(shared) = SHARED.get() else {
        return;
    };
    let path = &params::config().snapshot;
    // Missing: nothing new to serve (the old mapping stays valid).
    let Some(found) = FileId::at(path) else {
        return;
    };
    let mut refused = CHECK_REFUSED.lock().unwrap_or_else(|e| e.into_inner());
    if found == shared.published.with(|p| p.file) || *refused == Some(found) {
        return;
    }
    lm_info!("snapshot {path}: a new file at the path (reload_check), reloading");
    // Refusals are logged by reload(), once per file thanks to `refused`.
    *refused = reload().is_err().then_some(found);
    // The timer process routes no call: it keeps no mapping.
    release();
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
