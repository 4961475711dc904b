//! The retransmission cache: a client's retransmitted request (same peer, same cookie)
//! is answered once, like rtpengine does. Replies are kept 30-60 s (two generations
//! swapped every 30 s, as rtpengine's own cache), in at most twice `GENERATION_BYTES`:
//! a flood of requests, or of huge cookies, starts the next generation early rather
//! than growing the cache without bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GENERATION: Duration = Duration::from_secs(30);

/// The cookies and replies one generation holds at most. A thousand calls a second
/// with WebRTC-sized SDPs fill one in about 9 s, still past Kamailio's last
/// retransmission (5 × 1 s by default).
const GENERATION_BYTES: usize = 64 << 20;

/// What an entry costs beyond its cookie and reply (its address, its slot in the map,
/// allocation headers), roughly: so that a flood of tiny entries fills a generation too.
const ENTRY_OVERHEAD: usize = 128;

/// Who asked, and the cookie they asked under.
pub type Key = (SocketAddr, Vec<u8>);

enum Slot {
    InFlight,
    Done(Arc<Vec<u8>>),
}

/// The bytes an entry whose cookie is `cookie_len` long counts for.
fn cost(cookie_len: usize, slot: &Slot) -> usize {
    let reply = match slot {
        Slot::InFlight => 0,
        Slot::Done(reply) => reply.len(),
    };
    ENTRY_OVERHEAD + cookie_len + reply
}

#[derive(Default)]
struct Generation {
    entries: HashMap<Key, Slot>,
    bytes: usize,
}

impl Generation {
    fn insert(&mut self, key: Key, slot: Slot) {
        let cookie_len = key.1.len();
        self.bytes += cost(cookie_len, &slot);
        if let Some(old) = self.entries.insert(key, slot) {
            self.bytes -= cost(cookie_len, &old);
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= cost(key.1.len(), &old);
        }
    }
}

struct Generations {
    current: Generation,
    previous: Generation,
    started: Instant,
}

impl Generations {
    /// Starts a new generation once the current one is 30 s old or full. The requests
    /// still in flight in the one that goes stay known: a retransmission of one must
    /// not be handled, and sent to a node, a second time.
    fn renew_when_due(&mut self) {
        if self.started.elapsed() < GENERATION && self.current.bytes < GENERATION_BYTES {
            return;
        }
        let gone = std::mem::replace(&mut self.previous, std::mem::take(&mut self.current));
        self.started = Instant::now();
        for (key, slot) in gone.entries {
            if matches!(slot, Slot::InFlight) {
                self.current.insert(key, slot);
            }
        }
    }
}

#[derive(Clone)]
pub struct ReplyCache(Arc<Mutex<Generations>>);

/// What the cache knows of a request.
pub enum Seen {
    New,
    InFlight,
    Answered(Arc<Vec<u8>>),
}

impl ReplyCache {
    pub fn new() -> ReplyCache {
        ReplyCache(Arc::new(Mutex::new(Generations {
            current: Generation::default(),
            previous: Generation::default(),
            started: Instant::now(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks the request up; one not seen before is marked in flight.
    pub fn begin(&self, key: &Key) -> Seen {
        let mut g = self.lock();
        g.renew_when_due();
        let found = (g.current.entries.get(key)).or_else(|| g.previous.entries.get(key));
        match found {
            Some(Slot::InFlight) => Seen::InFlight,
            Some(Slot::Done(r)) => Seen::Answered(r.clone()),
            None => {
                g.current.insert(key.clone(), Slot::InFlight);
                Seen::New
            }
        }
    }

    /// The request is answered: with `reply` kept for its retransmissions, or forgotten.
    pub fn finish(&self, key: Key, reply: Option<Arc<Vec<u8>>>) {
        let mut g = self.lock();
        g.previous.remove(&key);
        match reply {
            Some(r) => g.current.insert(key, Slot::Done(r)),
            None => g.current.remove(&key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(cookie: &str) -> Key {
        (
            "127.0.0.1:5060".parse().unwrap(),
            cookie.as_bytes().to_vec(),
        )
    }

    /// Replies that fill generation after generation (a flood) push older replies out,
    /// but not a request still in flight: its retransmission is still not handled anew.
    #[test]
    fn a_request_in_flight_outlives_generations_a_flood_fills() {
        let cache = ReplyCache::new();
        assert!(matches!(cache.begin(&key("slow")), Seen::New));
        cache.begin(&key("answered"));
        cache.finish(key("answered"), Some(Arc::new(b"ok".to_vec())));
        let big = Arc::new(vec![0u8; 1 << 20]);
        for i in 0..3 * (GENERATION_BYTES >> 20) {
            let flood = key(&format!("flood{i}"));
            cache.begin(&flood);
            cache.finish(flood, Some(big.clone()));
        }
        assert!(matches!(cache.begin(&key("slow")), Seen::InFlight));
        assert!(matches!(cache.begin(&key("answered")), Seen::New));
        let g = cache.lock();
        let held = g.current.bytes + g.previous.bytes;
        assert!(held <= 2 * GENERATION_BYTES + (2 << 20), "{held}");
    }
}
