//! Datagrams the ng listener drops for want of a cookie (junk traffic, a scanner):
//! counted for the metrics, and logged at most once a minute with how many went unnamed
//! since, so that a flood of them does not flood the log too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(60);

/// Shared by every listen socket.
#[derive(Debug, Clone, Default)]
pub struct Cookieless(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    dropped: AtomicU64,
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    last_line: Option<Instant>,
    /// Dropped since the last line, not named in one.
    unnamed: u64,
}

impl Cookieless {
    /// Counts one datagram of `len` bytes from `peer`, dropped; names it in the log
    /// unless a line did within the last minute.
    pub fn dropped(&self, peer: SocketAddr, len: usize) {
        self.0.dropped.fetch_add(1, Ordering::Relaxed);
        let mut log = self.0.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.last_line.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            log.unnamed += 1;
            return;
        }
        log.last_line = Some(Instant::now());
        let unnamed = std::mem::take(&mut log.unnamed);
        drop(log);
        tracing::warn!(
            %peer,
            len,
            "dropping datagram without cookie ({unnamed} more dropped since the last such line)"
        );
    }

    /// Datagrams dropped since the proxy started.
    pub fn total(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}
