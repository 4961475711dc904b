//! Per-key request limits with `X-RateLimit-*` headers: a fixed one-minute window per
//! bearer token. With `WARP_REDIS_URL` the count lives in Redis, so every instance
//! shares one budget; while Redis does not answer, each instance counts in process
//! (logged once per outage) and no request fails for it.

use crate::error::ApiError;
use crate::middleware::caller;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WINDOW: Duration = Duration::from_secs(60);
/// A Redis call slower than this counts as Redis being down.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a Redis failure, requests skip it this long instead of each waiting on it.
const REDIS_RETRY: Duration = Duration::from_secs(5);
/// Callers an instance counts on its own at once. Any caller (a bearer token that may be
/// made up, a login's account) gets a counter, so without a bound a flood of new ones
/// would grow the map as fast as they arrive.
pub const MAX_LOCAL_CALLERS: usize = 100_000;
/// While the map is full, callers without a counter share this one: a flood of new
/// tokens is limited as one caller, and callers already counted keep their own.
const OVERFLOW: &str = "overflow";

/// One request counted: allowed or not, what is left, seconds until the window resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub remaining: u32,
    pub reset: u64,
}

fn verdict(limit: u32, count: u64, reset: u64) -> Verdict {
    Verdict {
        allowed: count <= u64::from(limit),
        remaining: u32::try_from(u64::from(limit).saturating_sub(count)).unwrap_or(0),
        reset,
    }
}

pub struct RateLimiter {
    limit: u32,
    local: Mutex<Local>,
    shared: Option<Shared>,
}

/// In-process counters: (window start, count) per caller, and when the ones whose
/// window ended were last dropped.
struct Local {
    counts: HashMap<String, (Instant, u64)>,
    swept: Instant,
}

/// The Redis counter and what is known of its health.
struct Shared {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    skip_until: Mutex<Option<Instant>>,
    down: AtomicBool,
}

impl RateLimiter {
    pub fn new(limit: u32, redis: Option<redis::Client>) -> Self {
        RateLimiter {
            limit,
            local: Mutex::new(Local {
                counts: HashMap::new(),
                swept: Instant::now(),
            }),
            shared: redis.map(|client| Shared {
                client,
                conn: tokio::sync::Mutex::new(None),
                skip_until: Mutex::new(None),
                down: AtomicBool::new(false),
            }),
        }
    }

    /// Counts a request for `who`: in Redis when it answers, else in process.
    pub async fn hit(&self, who: &str) -> Verdict {
        if let Some(shared) = &self.shared {
            if let Some(count) = shared.count(who).await {
                let now = unix_now();
                return verdict(self.limit, count, WINDOW.as_secs() - now % WINDOW.as_secs());
            }
        }
        self.hit_local(who)
    }

    fn hit_local(&self, who: &str) -> Verdict {
        let now = Instant::now();
        let Ok(mut local) = self.local.lock() else {
            return verdict(self.limit, 0, 0);
        };
        // Once a window, not per request: the sweep reads every counter.
        if now.duration_since(local.swept) >= WINDOW {
            local
                .counts
                .retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            local.swept = now;
        }
        let key = if local.counts.len() >= MAX_LOCAL_CALLERS && !local.counts.contains_key(who) {
            OVERFLOW
        } else {
            who
        };
        let entry = local.counts.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        let left = WINDOW.saturating_sub(now.duration_since(entry.0));
        // Rounded up, as Redis's wall-clock windows are: a client that waits `reset`
        // seconds finds the window over, not a second short of it.
        let reset = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        // Refused requests do not count, so the budget is exactly the limit.
        let count = entry.1 + 1;
        if count <= u64::from(self.limit) {
            entry.1 = count;
        }
        verdict(self.limit, count, reset)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Shared {
    /// This window's count for `who` after this request, or None while Redis is down.
    async fn count(&self, who: &str) -> Option<u64> {
        let skipping = self
            .skip_until
            .lock()
            .ok()
            .and_then(|s| *s)
            .is_some_and(|t| Instant::now() < t);
        if skipping {
            return None;
        }
        match tokio::time::timeout(REDIS_TIMEOUT, self.incr(who)).await {
            Ok(Ok(count)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared once more");
                }
                Some(count)
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                *self.conn.lock().await = None;
                if let Ok(mut s) = self.skip_until.lock() {
                    *s = Some(Instant::now() + REDIS_RETRY);
                }
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "Redis unreachable: rate limits fall back to this instance's own counts");
                }
                None
            }
        }
    }

    async fn incr(&self, who: &str) -> redis::RedisResult<u64> {
        let mut conn = {
            let mut held = self.conn.lock().await;
            match &*held {
                Some(c) => c.clone(),
                None => {
                    let c = self.client.get_multiplexed_async_connection().await?;
                    *held = Some(c.clone());
                    c
                }
            }
        };
        let key = format!("warp:ratelimit:{who}:{}", unix_now() / WINDOW.as_secs());
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, 2 * WINDOW.as_secs() as i64)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }
}

pub async fn rate_limit(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(who) = caller(&mut req) else {
        return next.run(req).await;
    };
    let v = st.limiter.hit(&who).await;
    let mut res = if v.allowed {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("more than {} requests a minute", st.limiter.limit),
        )
        .into_response()
    };
    let h = res.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(st.limiter.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(v.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(v.reset));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_reset_is_never_before_the_window_ends() {
        let limiter = RateLimiter::new(1, None);
        assert!(limiter.hit("k").await.allowed);
        let refused = limiter.hit("k").await;
        assert!(!refused.allowed);
        // The window started a moment ago: all but a sliver of a minute is left.
        assert_eq!(refused.reset, 60);
    }
}
