//! Call-id → node pins. Local map first; Redis (if configured) shares pins between proxy
//! instances, so an `answer` or `delete` reaching another proxy finds the call's node.
//! Redis trouble degrades to local pins plus deterministic hashing, never to a failed call.
//! Call-ids are bytes, as rtpengine takes them: one need not be UTF-8 to be pinned.

use super::shared_redis::SharedRedis;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY_PREFIX: &str = "warp:rtpengine:call:";

#[derive(Debug, Clone)]
struct Pin {
    node: String,
    created: Instant,
    /// When this process last wrote the pin (and its Redis key, which expires the TTL
    /// after) or learned it from Redis. Using a pin does not renew its key, so it does
    /// not count here.
    written: Instant,
}

pub struct Sticky {
    local: Mutex<HashMap<Vec<u8>, Pin>>,
    redis: Option<Arc<SharedRedis>>,
    ttl: Duration,
    /// How often [`Sticky::stale`] is asked.
    check_every: Duration,
    /// Per node name, the gauge of calls pinned to it here: changed with the pins,
    /// under their lock, so it cannot drift from them.
    active_calls: HashMap<String, Arc<AtomicI64>>,
}

impl Sticky {
    pub fn new(
        redis: Option<Arc<SharedRedis>>,
        ttl: Duration,
        check_every: Duration,
        active_calls: HashMap<String, Arc<AtomicI64>>,
    ) -> Sticky {
        Sticky {
            local: Mutex::new(HashMap::new()),
            redis,
            ttl,
            check_every,
            active_calls,
        }
    }

    /// Moves `node`'s gauge by `delta`; a node another proxy named in Redis but this one
    /// does not know has none.
    fn count(&self, node: &str, delta: i64) {
        if let Some(gauge) = self.active_calls.get(node) {
            gauge.fetch_add(delta, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Pin>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node this call is pinned to, if any.
    pub async fn lookup(&self, call_id: &[u8]) -> Option<String> {
        if let Some(pin) = self.lock().get(call_id) {
            return Some(pin.node.clone());
        }
        let redis = self.redis.as_ref()?;
        let found: Option<String> = redis
            .query(redis::cmd("GET").arg(redis_key(call_id)))
            .await
            .ok()?;
        if let Some(node) = &found {
            self.pin_local(call_id, node);
        }
        found
    }

    /// Pins `call_id` to `node`, here and in Redis.
    pub async fn pin(&self, call_id: &[u8], node: &str) {
        self.pin_local(call_id, node);
        if let Some(redis) = &self.redis {
            let set = redis::cmd("SET")
                .arg(redis_key(call_id))
                .arg(node)
                .arg("EX")
                .arg(self.ttl.as_secs().max(1))
                .clone();
            // Best effort: a pin Redis does not take stays local.
            let _ = redis.query::<()>(&set).await;
        }
    }

    /// Pins here; a call that moves to another node moves its count.
    fn pin_local(&self, call_id: &[u8], node: &str) {
        let now = Instant::now();
        let mut local = self.lock();
        match local.get_mut(call_id) {
            Some(pin) if pin.node == node => pin.written = now,
            _ => {
                let pin = Pin {
                    node: node.to_owned(),
                    created: now,
                    written: now,
                };
                if let Some(old) = local.insert(call_id.to_owned(), pin) {
                    self.count(&old.node, -1);
                }
                self.count(node, 1);
            }
        }
    }

    /// Forgets the call, here and in Redis; true if it was pinned here.
    pub async fn unpin(&self, call_id: &[u8]) -> bool {
        let pinned = self.forget(call_id);
        if let Some(redis) = &self.redis {
            let _ = redis
                .query::<()>(redis::cmd("DEL").arg(redis_key(call_id)))
                .await;
        }
        pinned
    }

    /// Calls pinned here for longer than `age`: (call-id, node).
    pub fn long_calls(&self, age: Duration) -> Vec<(Vec<u8>, String)> {
        self.lock()
            .iter()
            .filter(|(_, p)| p.created.elapsed() >= age)
            .map(|(c, p)| (c.clone(), p.node.clone()))
            .collect()
    }

    /// Pins whose key expires within two check intervals: (call-id, node). A call may
    /// last longer than the TTL with no signalling: ask its node, then renew its pin
    /// ([`Sticky::pin`]) or forget it ([`Sticky::forget`]). Two intervals, not one: the
    /// next check starts an interval after this one ends and takes time itself, so a key
    /// with just over one interval left could lapse before that check renews it.
    pub fn stale(&self) -> Vec<(Vec<u8>, String)> {
        let margin = self.check_every.saturating_mul(2);
        self.lock()
            .iter()
            .filter(|(_, p)| p.written.elapsed().saturating_add(margin) >= self.ttl)
            .map(|(c, p)| (c.clone(), p.node.clone()))
            .collect()
    }

    /// Drops the call's pin here only (as when its delete never came and its node no
    /// longer has it); true if there was one.
    pub fn forget(&self, call_id: &[u8]) -> bool {
        let mut local = self.lock();
        let Some(pin) = local.remove(call_id) else {
            return false;
        };
        self.count(&pin.node, -1);
        true
    }
}

fn redis_key(call_id: &[u8]) -> Vec<u8> {
    [KEY_PREFIX.as_bytes(), call_id].concat()
}
