//! Routing changes counted against what publishes covered: a publish covers the changes
//! counted before it loaded the data (a change is committed before it is counted), so
//! a burst that a publish since has covered is not published again.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Changes {
    counted: AtomicU64,
    covered: AtomicU64,
}

impl Changes {
    pub fn count(&self) {
        self.counted.fetch_add(1, Ordering::SeqCst);
    }

    /// Where a publish about to load the data stands: hand it to [`Self::cover`] once
    /// that publish is in place.
    pub fn mark(&self) -> u64 {
        self.counted.load(Ordering::SeqCst)
    }

    pub fn cover(&self, mark: u64) {
        self.covered.fetch_max(mark, Ordering::SeqCst);
    }

    /// Whether a change was counted that no publish has covered.
    pub fn pending(&self) -> bool {
        self.counted.load(Ordering::SeqCst) > self.covered.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_counted_after_the_mark_stays_pending() {
        let c = Changes::default();
        assert!(!c.pending());
        c.count();
        let mark = c.mark();
        c.count();
        c.cover(mark);
        assert!(c.pending());
        c.cover(c.mark());
        assert!(!c.pending());
        // A slower publish with an older mark uncovers nothing.
        c.cover(mark);
        assert!(!c.pending());
    }
}
