//! Cross-cutting request handling: metrics and logs, per-key rate limits with
//! `X-RateLimit-*` headers, and idempotent POSTs (`Idempotency-Key`).

use crate::auth::keys::hash;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Request bodies kept for idempotent replay are at most this big.
const MAX_BODY: usize = 256 * 1024 * 1024;
const WINDOW: Duration = Duration::from_secs(60);

pub async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let took = started.elapsed();
    let status = res.status().as_u16();
    st.metrics
        .request(&method, &route, status, took.as_secs_f64());
    tracing::info!(%method, %route, status, ms = took.as_millis() as u64, "request");
    res
}

/// The caller's identity for limits and idempotency: the hash of its bearer token.
fn caller(headers: &HeaderMap) -> Option<String> {
    let token = headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    Some(hash(token.trim()))
}

/// A fixed one-minute window per key.
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32) -> Self {
        RateLimiter {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request: (allowed, remaining, seconds until the window resets).
    fn hit(&self, who: &str) -> (bool, u32, u64) {
        let now = Instant::now();
        let Ok(mut w) = self.windows.lock() else {
            return (true, self.limit, 0);
        };
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = w.entry(who.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        let reset = WINDOW.saturating_sub(now.duration_since(entry.0)).as_secs();
        if entry.1 >= self.limit {
            return (false, 0, reset);
        }
        entry.1 += 1;
        (true, self.limit - entry.1, reset)
    }
}

pub async fn rate_limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(who) = caller(req.headers()) else {
        return next.run(req).await;
    };
    let (allowed, remaining, reset) = st.limiter.hit(&who);
    let mut res = if allowed {
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
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset));
    res
}

pub async fn idempotency(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (Some(key), Some(actor)) = (key, caller(req.headers())) else {
        return next.run(req).await;
    };
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    match replay_or_run(&st, req, next, actor, key).await {
        Ok(res) | Err(res) => res,
    }
}

async fn replay_or_run(
    st: &AppState,
    req: Request,
    next: Next,
    actor: String,
    key: String,
) -> Result<Response, Response> {
    let fail = |e: ApiError| e.into_response();
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| fail(ApiError::bad_request("BAD_BODY", "body too large")))?;
    let mut h = Sha256::new();
    h.update(parts.uri.path().as_bytes());
    h.update([0]);
    h.update(&body);
    let request_hash = hex::encode(h.finalize());
    // Claim the key first (status 0 = running), so a concurrent repeat cannot run too.
    let claimed = sqlx::query(
        "INSERT INTO api.idempotency (actor, key, request_hash, status, body)
         VALUES ($1, $2, $3, 0, '') ON CONFLICT DO NOTHING",
    )
    .bind(&actor)
    .bind(&key)
    .bind(&request_hash)
    .execute(&st.pool)
    .await
    .map_err(|e| fail(e.into()))?
    .rows_affected()
        == 1;
    if !claimed {
        return replay(st, &actor, &key, &request_hash).await;
    }
    let res = next.run(Request::from_parts(parts, Body::from(body))).await;
    // A failure of ours is not an answer to keep: the client may retry it.
    if res.status().is_server_error() {
        sqlx::query("DELETE FROM api.idempotency WHERE actor = $1 AND key = $2")
            .bind(&actor)
            .bind(&key)
            .execute(&st.pool)
            .await
            .map_err(|e| fail(e.into()))?;
        return Ok(res);
    }
    let (parts, body) = res.into_parts();
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| fail(ApiError::internal(e)))?;
    sqlx::query("UPDATE api.idempotency SET status = $3, body = $4 WHERE actor = $1 AND key = $2")
        .bind(&actor)
        .bind(&key)
        .bind(parts.status.as_u16() as i16)
        .bind(bytes.as_ref())
        .execute(&st.pool)
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The stored answer to a key already used: replayed, or refused if the key was used
/// for another request or its first request is still running.
async fn replay(
    st: &AppState,
    actor: &str,
    key: &str,
    request_hash: &str,
) -> Result<Response, Response> {
    let fail = |e: ApiError| e.into_response();
    let stored: Option<(String, i16, Vec<u8>)> = sqlx::query_as(
        "SELECT request_hash, status, body FROM api.idempotency WHERE actor = $1 AND key = $2",
    )
    .bind(actor)
    .bind(key)
    .fetch_optional(&st.pool)
    .await
    .map_err(|e| fail(e.into()))?;
    let Some((hash, status, bytes)) = stored else {
        return Err(fail(ApiError::conflict(
            "retry: the first request just failed",
        )));
    };
    if hash != request_hash {
        return Err(fail(
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used for a different request",
            )
            .field("Idempotency-Key"),
        ));
    }
    if status == 0 {
        return Err(fail(ApiError::new(
            StatusCode::CONFLICT,
            "IDEMPOTENCY_IN_PROGRESS",
            "the first request with this Idempotency-Key is still running",
        )));
    }
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    Ok((
        status,
        [
            ("content-type", "application/json"),
            ("idempotent-replayed", "true"),
        ],
        bytes,
    )
        .into_response())
}
