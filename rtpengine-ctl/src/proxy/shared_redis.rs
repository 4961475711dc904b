//! The proxy's Redis (pins shared between proxies, the QoS stream): connected lazily, so
//! a Redis that is down when the proxy starts is used once it comes up, and with short
//! timeouts, because pins are read on the call path. Its outages are logged once each.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Each connection attempt, and each reply, may take this long: Kamailio gives an ng
/// request one second, and a new call may ask Redis twice (look up, then pin).
const TIMEOUT: Duration = Duration::from_millis(100);

pub struct SharedRedis {
    conn: ConnectionManager,
    down: AtomicBool,
}

impl SharedRedis {
    /// A manager for `url` that connects on first use (so only a malformed URL fails).
    pub fn new(url: &str) -> redis::RedisResult<SharedRedis> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            // One attempt per request while Redis is away: retrying inside a request
            // would hold the call that made it.
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(redis::Client::open(url)?, config)?;
        Ok(SharedRedis {
            conn,
            down: AtomicBool::new(false),
        })
    }

    /// Runs `cmd`; its reply, or `None` (logged when Redis was fine until now).
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.conn.clone();
        match cmd.query_async::<T>(&mut conn).await {
            Ok(value) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis is back: pins shared and QoS written again");
                }
                Some(value)
            }
            Err(e) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!("redis unavailable ({e}): pins stay local, QoS waits");
                }
                None
            }
        }
    }
}
