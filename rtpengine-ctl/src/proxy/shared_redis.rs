//! The proxy's Redis (pins shared between proxies, the QoS stream): connected lazily, so
//! a Redis that is down when the proxy starts is used once it comes up, and with short
//! timeouts, because pins are read on the call path. Its outages are logged once each.

use super::log_limit::OncePerMinute;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Each connection attempt, and each reply, may take this long: Kamailio gives an ng
/// request one second, and a new call may ask Redis twice (look up, then pin).
const TIMEOUT: Duration = Duration::from_millis(100);

/// After a failure, requests skip Redis this long instead of each waiting on it (a
/// Redis host that drops packets would cost every new call its timeouts).
const SKIP: Duration = Duration::from_secs(1);

/// Why a command got no reply.
#[derive(Debug)]
pub enum Failure {
    /// The same command may succeed later: Redis did not answer (or is skipped after
    /// failing to), or refused it for now (loading, a read-only replica, out of memory).
    Transient,
    /// Redis refused the command and would refuse it again: a key of another type, a
    /// bad argument, no permission, a wrong password or none where one is required.
    Refused(redis::RedisError),
}

impl Failure {
    /// Sorts an error reply by the redis crate's own retry advice, with two changes. OOM
    /// it calls final, but memory frees up as the stream's consumers trim it. A failed
    /// AUTH it would reconnect for, but the password stays wrong until someone fixes it.
    fn refusal(e: redis::RedisError) -> Failure {
        let for_good = match e.kind() {
            redis::ErrorKind::AuthenticationFailed => true,
            _ => matches!(e.retry_method(), redis::RetryMethod::NoRetry) && e.code() != Some("OOM"),
        };
        if for_good {
            Failure::Refused(e)
        } else {
            Failure::Transient
        }
    }
}

pub struct SharedRedis {
    conn: ConnectionManager,
    /// While Redis is down: until when requests skip it.
    down: Mutex<Option<Instant>>,
    /// Commands Redis refused are logged at most once a minute.
    refusal_log: OncePerMinute,
}

impl SharedRedis {
    /// A manager for `client` that connects on first use.
    pub fn new(client: redis::Client) -> redis::RedisResult<SharedRedis> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            // One attempt per request while Redis is away: retrying inside a request
            // would hold the call that made it.
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(SharedRedis {
            conn,
            down: Mutex::new(None),
            refusal_log: OncePerMinute::default(),
        })
    }

    /// Runs `cmd`; its reply, or why there is none: Redis failed it or is being skipped
    /// after a failure (the outage and the recovery are logged once each), or refused
    /// it. Only a Redis that does not answer is skipped: one that refuses a command (an
    /// error reply: a key of another type, OOM, READONLY) still takes the others, the
    /// call path's pins first.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Failure> {
        if self.down().is_some_and(|until| Instant::now() < until) {
            return Err(Failure::Transient);
        }
        let mut conn = self.conn.clone();
        let result = cmd.query_async::<T>(&mut conn).await;
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(value) => {
                if down.take().is_some() {
                    tracing::info!("redis is back: pins shared and QoS written again");
                }
                Ok(value)
            }
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                if down.replace(Instant::now() + SKIP).is_none() {
                    tracing::warn!("redis unavailable ({e}): pins stay local, QoS waits");
                }
                Err(Failure::Transient)
            }
            Err(e) => {
                drop(down);
                if self.refusal_log.due().is_some() {
                    tracing::warn!("redis refused a command: {e}");
                }
                Err(Failure::refusal(e))
            }
        }
    }

    fn down(&self) -> Option<Instant> {
        *self.down.lock().unwrap_or_else(|e| e.into_inner())
    }
}
