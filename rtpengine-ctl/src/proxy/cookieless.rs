//! Datagrams the ng listener drops for want of a cookie (junk traffic, a scanner):
//! counted for the metrics, and logged at most once a minute with how many went unnamed
//! since, so that a flood of them does not flood the log too.

use super::log_limit::OncePerMinute;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared by every listen socket.
#[derive(Debug, Clone, Default)]
pub struct Cookieless(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    dropped: AtomicU64,
    log: OncePerMinute,
}

impl Cookieless {
    /// Counts one datagram of `len` bytes from `peer`, dropped; names it in the log
    /// unless a line did within the last minute.
    pub fn dropped(&self, peer: SocketAddr, len: usize) {
        self.0.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(unnamed) = self.0.log.due() {
            tracing::warn!(
                %peer,
                len,
                "dropping datagram without cookie ({unnamed} more dropped since the last such line)"
            );
        }
    }

    /// Datagrams dropped since the proxy started.
    pub fn total(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}
