//! Datagrams the ng listener drops unanswered, one counter per reason (no cookie: junk
//! traffic, a scanner): counted for the metrics, and logged at most once a minute with
//! how many went unnamed since, so that a flood of them does not flood the log too.

use super::log_limit::OncePerMinute;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared by every listen socket.
#[derive(Debug, Clone)]
pub struct Dropped(Arc<Counts>);

#[derive(Debug)]
struct Counts {
    why: &'static str,
    dropped: AtomicU64,
    log: OncePerMinute,
}

impl Dropped {
    /// `why` ends the log line's "dropping datagram …".
    pub fn new(why: &'static str) -> Dropped {
        Dropped(Arc::new(Counts {
            why,
            dropped: AtomicU64::new(0),
            log: OncePerMinute::default(),
        }))
    }

    /// Counts one datagram of `len` bytes from `peer`, dropped; names it in the log
    /// unless a line did within the last minute.
    pub fn dropped(&self, peer: SocketAddr, len: usize) {
        self.0.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(unnamed) = self.0.log.due() {
            tracing::warn!(
                %peer,
                len,
                "dropping datagram {} ({unnamed} more dropped since the last such line)",
                self.0.why
            );
        }
    }

    /// Datagrams dropped since the proxy started.
    pub fn total(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}
