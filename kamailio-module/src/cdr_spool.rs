//! The CDR spool (`cdr_spool`, a directory): while Redis is unreachable, a sender
//! thread writes the events it cannot send to a file of its own instead of holding
//! them in memory, so neither a long outage (the `cdr_buffer` bound) nor stopping
//! Kamailio meanwhile loses them. Once Redis answers again, the first sender to get
//! through sends every spooled file it may take — its own, and those no live sender
//! writes or sends (an earlier run's; a process that got the pid since, as after a
//! reboot, does not count) — and deletes each once Redis has all its events.
//! A run that finds an earlier run's files starts a sender for them at once, before
//! any call.
//!
//! One file per sender, `cdr-<pid>-<nanos>.jsonl`, one event per line, synced to disk
//! after each write, locked (`flock`) by its writer from its creation for as long as
//! the writer has it open: a lock, unlike a start time compared with the file's,
//! holds whatever the clock does meanwhile, and goes with the process. A file is
//! taken by renaming it to `<name>.<pid of the taker>`
//! (atomic: two takers cannot both win), so a file whose taker died mid-send is taken
//! again later; its events may then reach Redis twice, as any batch cut off mid-way
//! may (consumers dedupe on call-id + event + attempt).

use crate::log::lm_err;
use crate::redis::Connection;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// This sender's spool: the directory and, once it has spooled, its own file.
pub struct Spool {
    dir: PathBuf,
    /// The most all spool files of the directory may take, in bytes (`cdr_spool_max_mb`).
    max: u64,
    own: Option<(PathBuf, File)>,
    /// Files may be waiting in the directory (from this or an earlier run).
    pending: bool,
    /// The last write failed: the next failure is no news.
    failing: bool,
}

/// A write that did not happen; `first` when the write before it worked.
pub struct WriteError {
    pub why: String,
    pub first: bool,
}

/// How a replay went: events sent, events Redis refused (they stay spooled), and lines
/// that were no event (a write cut off).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    pub sent: u64,
    pub refused: u64,
    pub corrupt: u64,
}

impl Spool {
    /// The spool in `dir`, created if missing, holding at most `max` bytes.
    pub fn open(dir: &Path, max: u64) -> Result<Spool, String> {
        fs::create_dir_all(dir).map_err(|e| format!("cdr_spool {}: {e}", dir.display()))?;
        Ok(Spool {
            dir: dir.to_owned(),
            max,
            own: None,
            pending: true,
            failing: false,
        })
    }

    /// Readies `dir` at start-up, while Kamailio may still run as root: creates it,
    /// hands it to `owner` (uid, gid), the user the workers will run as (`-u`/`-g`),
    /// and proves it writable, so a spool that could not take events fails the start
    /// instead of the first outage.
    pub fn prepare(dir: &Path, owner: Option<(u32, Option<u32>)>) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cdr_spool {}: {e}", dir.display());
        fs::create_dir_all(dir).map_err(fail)?;
        if let Some((uid, gid)) = owner {
            let meta = fs::metadata(dir).map_err(fail)?;
            if meta.uid() != uid || gid.is_some_and(|g| meta.gid() != g) {
                std::os::unix::fs::chown(dir, Some(uid), gid).map_err(|e| {
                    format!(
                        "cdr_spool {}: cannot hand it to uid {uid}, the user Kamailio runs \
                         as: {e}",
                        dir.display()
                    )
                })?;
            }
        }
        let probe = dir.join(format!(".probe-{}", std::process::id()));
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(fail)
    }

    /// Appends `events` to this sender's file and syncs it, unless that would take the
    /// spool past its bound.
    pub fn write(&mut self, events: &[String]) -> Result<(), WriteError> {
        let result = self.append(events);
        let first = !std::mem::replace(&mut self.failing, result.is_err());
        result.map_err(|why| WriteError { why, first })
    }

    fn append(&mut self, events: &[String]) -> Result<(), String> {
        let mut text = String::with_capacity(events.iter().map(|e| e.len() + 1).sum());
        for event in events {
            text.push_str(event);
            text.push('\n');
        }
        if self.used()? + text.len() as u64 > self.max {
            return Err(format!(
                "cdr_spool {} holds its cdr_spool_max_mb ({} MB)",
                self.dir.display(),
                self.max >> 20
            ));
        }
        if self.own.is_none() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let name = format!("cdr-{}-{nanos}.jsonl", std::process::id());
            let path = self.dir.join(&name);
            // Locked under a name no taker looks at, so it shows up held.
            let hidden = self.dir.join(format!(".{name}"));
            let fail = |e: std::io::Error| format!("{}: {e}", path.display());
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&hidden)
                .map_err(fail)?;
            let shown = flock(&file, libc::LOCK_EX | libc::LOCK_NB)
                .and_then(|()| fs::rename(&hidden, &path));
            if let Err(e) = shown {
                let _ = fs::remove_file(&hidden);
                return Err(fail(e));
            }
            self.own = Some((path, file));
        }
        let Some((path, file)) = self.own.as_mut() else {
            return Err("no spool file".into());
        };
        let before = file.metadata().map(|m| m.len());
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            // The events stay with the caller, to be written again: what part of them
            // reached the file (a full disk takes what fits) must not stay as a half
            // line for the next write to run into. If it cannot be cut off, the next
            // write goes to a new file and the replay skips the half line.
            let rolled_back =
                before.and_then(|len| file.set_len(len).and_then(|()| file.sync_data()));
            let why = format!("{}: {e}", path.display());
            if rolled_back.is_err() {
                self.own = None;
                self.pending = true;
            }
            return Err(why);
        }
        self.pending = true;
        Ok(())
    }

    /// The bytes the directory's spool files take, every process's together.
    fn used(&self) -> Result<u64, String> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        Ok(entries
            .filter_map(Result::ok)
            .filter(|e| owner(&e.path()).is_some())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum())
    }

    /// Whether spooled files may be waiting to be sent.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// Whether `dir` holds spool files (of any process).
    pub fn any_in(dir: &Path) -> bool {
        fs::read_dir(dir)
            .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| owner(&e.path()).is_some())))
    }

    /// Sends every file this sender may take to `stream`, in batches of `batch`, and
    /// deletes each once Redis took all of it; `done` counts what happened, also on
    /// `Err`. After each batch `live` sends what the process reported meanwhile: a
    /// spool of hours takes a while to send, and the process's queue would fill up
    /// and drop its calls' events if nobody read it. Stops at the first error, of a
    /// batch or of `live`, or the first entry Redis refused (the file stays, taken by
    /// this process, and is sent again later: at least once). A file that cannot be
    /// read or deleted, or a directory that cannot be listed, is logged and left for a
    /// later replay: it says nothing about Redis, and stopping there would hold back
    /// every file after it, and the process's own events, for good.
    pub fn replay(
        &mut self,
        conn: &mut Connection,
        stream: &str,
        batch: usize,
        done: &mut Replayed,
        live: &mut dyn FnMut(&mut Connection) -> Result<(), String>,
    ) -> Result<(), String> {
        // Later events go to a new file: this one is about to be sent.
        self.own = None;
        // Taken for an outage, a directory removed or made unreadable would hold each
        // batch back for the retry backoff while Redis takes them.
        let files = self.takeable().unwrap_or_else(|e| {
            lm_err!("spooled CDR events: {e}; left there");
            Vec::new()
        });
        for path in files {
            let Some(taken) = take(&path) else {
                continue;
            };
            let sent = match send_file(&taken, conn, stream, batch, done, live) {
                Ok(()) => fs::remove_file(&taken).map_err(|e| format!("cannot delete it: {e}")),
                Err(Failure::File(e)) => Err(e),
                Err(Failure::Redis(e)) => return Err(e),
            };
            if let Err(e) = sent {
                lm_err!("spooled CDR events in {}: {e}; left there", taken.display());
            }
        }
        self.pending = false;
        Ok(())
    }

    /// Spool files no live process other than this one writes or is sending.
    fn takeable(&self) -> Result<Vec<PathBuf>, String> {
        let me = std::process::id();
        let entries =
            fs::read_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| owner(p).is_some_and(|pid| pid == me || !holds(pid, p)))
            .collect();
        // A stable order; across files none is promised (events carry their times).
        files.sort();
        Ok(files)
    }
}

/// The process that holds a spool file: its taker if taken, else its writer.
fn owner(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("cdr-")?;
    let (written, taker) = match rest.split_once(".jsonl") {
        Some((w, "")) => (w, None),
        Some((w, t)) => (w, Some(t.strip_prefix('.')?)),
        None => return None,
    };
    match taker {
        Some(t) => t.parse().ok(),
        None => written.split_once('-')?.0.parse().ok(),
    }
}

/// Whether process `pid` still holds `path`: a file being written, while its writer
/// has it locked; a taken one, while its taker is alive and no younger than the
/// taking rename (the file's ctime). A pid another process got since (after a
/// reboot, most likely) holds nothing.
fn holds(pid: u32, path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "jsonl") {
        return File::open(path).is_ok_and(|f| {
            flock(&f, libc::LOCK_SH | libc::LOCK_NB)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock)
        });
    }
    let Some(started) = started_ms(pid) else {
        // No process, or (unreadable) one we cannot judge: alive means holding.
        return Path::new("/proc").join(pid.to_string()).exists();
    };
    // The boot time /proc gives is whole seconds: allow for it.
    fs::metadata(path)
        .ok()
        .map(|m| m.ctime() * 1000 + m.ctime_nsec() / 1_000_000)
        .is_none_or(|since| started <= since + 2000)
}

/// `flock(2)` on `file`; released when every handle of its open file is closed.
fn flock(file: &File, operation: i32) -> std::io::Result<()> {
    // SAFETY: a valid descriptor, owned by `file` for the duration of the call.
    match unsafe { libc::flock(file.as_raw_fd(), operation) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// When process `pid` started (Unix ms), from `/proc`.
fn started_ms(pid: u32) -> Option<i64> {
    extern "C" {
        fn sysconf(name: i32) -> i64;
    }
    const SC_CLK_TCK: i32 = 2;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses); the start
    // time, in clock ticks since boot, is the 22nd field of the line.
    let ticks: i64 = stat
        .get(stat.rfind(')')? + 2..)?
        .split(' ')
        .nth(19)?
        .parse()
        .ok()?;
    let boot: i64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { sysconf(SC_CLK_TCK) };
    (hz > 0).then(|| boot * 1000 + ticks * 1000 / hz)
}

/// Takes `path` for this process; `None` if another process took it first.
fn take(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let base = name.split_once(".jsonl").map(|(w, _)| w)?;
    let taken = path.with_file_name(format!("{base}.jsonl.{}", std::process::id()));
    if taken == path {
        return Some(taken);
    }
    fs::rename(path, &taken).ok().map(|()| taken)
}

/// Why a file was not sent whole.
enum Failure {
    /// Redis failed or refused (or `live` did).
    Redis(String),
    /// The file could not be read.
    File(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Failure {
        Failure::Redis(e)
    }
}

fn send_file(
    path: &Path,
    conn: &mut Connection,
    stream: &str,
    batch: usize,
    done: &mut Replayed,
    live: &mut dyn FnMut(&mut Connection) -> Result<(), String>,
) -> Result<(), Failure> {
    let unreadable = |e: std::io::Error| Failure::File(format!("cannot read it: {e}"));
    let file = File::open(path).map_err(unreadable)?;
    let mut events = Vec::with_capacity(batch);
    let mut lines = BufReader::new(file).split(b'\n');
    loop {
        let line = lines.next().transpose().map_err(unreadable)?;
        let end = line.is_none();
        // A line a crash cut short is no event (the poller could not read it), nor is
        // one cut inside a character: skipped, or the file would be retried for ever.
        // Parsed, not judged by its braces: a cut just after a `}` inside a value (a
        // Call-ID may hold one) still ends in `}`.
        match line.map(String::from_utf8) {
            Some(Ok(l)) if is_object(&l) => events.push(l),
            Some(_) => done.corrupt += 1,
            None => {}
        }
        if events.len() == batch || (end && !events.is_empty()) {
            let refused = conn.xadd_all(stream, "cdr", &events)?;
            done.sent += (events.len() - refused.len()) as u64;
            if let Some((_, why)) = refused.first() {
                done.refused += refused.len() as u64;
                let why = format!("Redis refused {} CDR events: {why}", refused.len());
                return Err(Failure::Redis(why));
            }
            events.clear();
            live(conn)?;
        }
        if end {
            return Ok(());
        }
    }
}

/// Whether `line` is one whole JSON object, as every event is.
fn is_object(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object())
}
