//! The ng requests the proxy is handling, so that a proxy told to stop answers them
//! before it goes: each has been sent on to a node, which acts on it whether or not
//! its reply gets back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

/// One request being handled: counted until dropped, however its task ends.
#[derive(Debug)]
pub struct Handling(Arc<AtomicUsize>);

impl InFlight {
    pub fn start(&self) -> Handling {
        self.0.fetch_add(1, Ordering::Relaxed);
        Handling(self.0.clone())
    }

    /// Waits up to `within` for every request being handled to end; the number still
    /// being handled then.
    pub async fn settle(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let handling = self.0.load(Ordering::Relaxed);
            if handling == 0 || tokio::time::Instant::now() >= deadline {
                return handling;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
