//! Cookies: rtpengine caches replies by cookie alone, across all its clients, so a cookie
//! must be unique to this process and this request. A retransmission reuses its cookie,
//! which makes a retransmitted `offer` idempotent.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct CookieJar {
    prefix: String,
    next: AtomicU64,
}

impl CookieJar {
    /// A jar whose prefix is random per jar (std's hasher keys come from the OS RNG) plus
    /// the process id, so two processes or two clients in one process never collide.
    pub fn new() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        CookieJar {
            prefix: format!(
                "{:x}{:x}",
                h.finish() & 0xffff_ffff_ffff,
                std::process::id()
            ),
            next: AtomicU64::new(1),
        }
    }

    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}_{n}", self.prefix)
    }
}

impl Default for CookieJar {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_unique_and_space_free() {
        let a = CookieJar::new();
        let b = CookieJar::new();
        let (x, y, z) = (a.next(), a.next(), b.next());
        assert_ne!(x, y);
        assert_ne!(x, z);
        assert!(!x.contains(' '));
    }
}
