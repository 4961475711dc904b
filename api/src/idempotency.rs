//! Idempotent POSTs (`Idempotency-Key`): the key is claimed before the request runs, its
//! answer stored per caller and replayed for `WARP_IDEMPOTENCY_TTL_SECS` (24 h); after
//! that the record is purged and the key is new again. Only a caller the API accepts
//! (now: a revoked key gets nothing replayed) claims a key, and a secret an answer
//! shows (a new API key's, a webhook's) is not kept: it is shown once.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes;
use crate::state::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest `Idempotency-Key` taken.
const MAX_KEY: usize = 255;
/// A claim still marked running after this long belongs to a request that will never
/// finish (its client went away, its instance stopped): the key may be claimed again.
const ABANDONED: Duration = Duration::from_secs(300);
/// The purge runs at least this often (and at most once a second).
const MAX_PURGE_PERIOD: Duration = Duration::from_secs(3600);

pub async fn idempotency(State(st): State<AppState>, req: Request, next: Next) -> Response {
    // Err: bytes that are not visible ASCII, which a key (a structured-field string) is.
    let key = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string));
    let Some(key) = key.filter(|_| req.method() == Method::POST) else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    // The outcome stays in the request's extensions: the handler does not check again.
    let who = Principal::from_request_parts(&mut parts, &st).await;
    let req = Request::from_parts(parts, body);
    // Keys are the caller's (`api-key:ID`, `user:ID`), not one token's: a user retrying
    // with a refreshed access token, or a key after its rotation, is the same caller.
    let Ok(Principal { actor, .. }) = who else {
        // The handler refuses it as it would without the key.
        return next.run(req).await;
    };
    // Kept in a primary key, whose index holds at most ~2.7 kB of it. A key that is
    // refused, not ignored: run without it, a retry would run twice.
    let key = match key {
        Ok(key) if key.len() <= MAX_KEY => key,
        _ => {
            return ApiError::bad_request(
                "INVALID_HEADER",
                format!("an Idempotency-Key is visible ASCII, at most {MAX_KEY} bytes"),
            )
            .field("Idempotency-Key")
            .into_response()
        }
    };
    // Its own task, run to the end even when the client goes away (which drops this
    // future): cancelled after its change committed but before its answer was stored,
    // the request would hold its claim as running, then run again once the claim was
    // taken for abandoned.
    let pool = st.pool.clone();
    let claim = (actor.clone(), key.clone());
    let holds_claim = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn({
        let holds_claim = holds_claim.clone();
        async move {
            match replay_or_run(&st, req, next, actor, key, &holds_claim).await {
                Ok(res) | Err(res) => res,
            }
        }
    });
    match run.await {
        Ok(res) => res,
        Err(e) => {
            // A panic is a failure of ours, as a 5xx is: its claim goes, or every retry
            // would be told "still running" until the claim counted as abandoned.
            if holds_claim.load(Ordering::SeqCst) {
                let (actor, key) = claim;
                if let Err(e) = release(&pool, &actor, &key).await {
                    tracing::warn!(error = %e, "idempotency claim of a failed request kept");
                }
            }
            ApiError::internal(e).into_response()
        }
    }
}

/// Gives up a claim on `key`, whose request failed on our side: a retry runs again.
async fn release(pool: &PgPool, actor: &str, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM api.idempotency WHERE actor = $1 AND key = $2")
        .bind(actor)
        .bind(key)
        .execute(pool)
        .await
        .map(drop)
}

async fn replay_or_run(
    st: &AppState,
    req: Request,
    next: Next,
    actor: String,
    key: String,
    holds_claim: &AtomicBool,
) -> Result<Response, Response> {
    let fail = |e: ApiError| e.into_response();
    let (parts, body) = req.into_parts();
    // No more than the handler would read: a body over its route's limit is refused
    // here, not held in memory whole first.
    let route = parts.extensions.get::<MatchedPath>();
    let limit = routes::body_limit(route.map_or("", MatchedPath::as_str));
    let body = to_bytes(body, limit)
        .await
        .map_err(|_| fail(ApiError::too_large()))?;
    let mut h = Sha256::new();
    // The query too: `?mode=append` and `?mode=replace` are different requests.
    let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
    h.update(target.as_bytes());
    h.update([0]);
    h.update(&body);
    let request_hash = hex::encode(h.finalize());
    // Claim the key first (status 0 = running), so a concurrent repeat cannot run too;
    // an expired record not yet purged, or a claim abandoned while running, is claimed
    // over, as if it were gone.
    let claimed = sqlx::query(
        "INSERT INTO api.idempotency (actor, key, request_hash, status, body)
         VALUES ($1, $2, $3, 0, '')
         ON CONFLICT (actor, key) DO UPDATE
             SET request_hash = EXCLUDED.request_hash, status = 0, body = '', created_at = now()
             WHERE api.idempotency.created_at < now() - make_interval(secs => $4)
                OR (api.idempotency.status = 0
                    AND api.idempotency.created_at < now() - make_interval(secs => $5))",
    )
    .bind(&actor)
    .bind(&key)
    .bind(&request_hash)
    .bind(st.config.idempotency_ttl.as_secs_f64())
    .bind(ABANDONED.as_secs_f64())
    .execute(&st.pool)
    .await
    .map_err(|e| fail(e.into()))?
    .rows_affected()
        == 1;
    if !claimed {
        return replay(st, &actor, &key, &request_hash).await;
    }
    holds_claim.store(true, Ordering::SeqCst);
    let res = next.run(Request::from_parts(parts, Body::from(body))).await;
    // A failure of ours is not an answer to keep: the client may retry it.
    if res.status().is_server_error() {
        release(&st.pool, &actor, &key)
            .await
            .map_err(|e| fail(e.into()))?;
        return Ok(res);
    }
    let (parts, body) = res.into_parts();
    // Our own answer, already whole in memory.
    let bytes = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| fail(ApiError::internal(e)))?;
    sqlx::query("UPDATE api.idempotency SET status = $3, body = $4 WHERE actor = $1 AND key = $2")
        .bind(&actor)
        .bind(&key)
        .bind(parts.status.as_u16() as i16)
        .bind(without_secret(&bytes))
        .execute(&st.pool)
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// What an answer's data may show once but no record may keep: a new key's or
/// webhook's `secret`, a session's tokens.
const SECRETS: [&str; 3] = ["/data/secret", "/data/access_token", "/data/refresh_token"];

/// `answer` as it may be stored: its [`SECRETS`] blanked out.
fn without_secret(answer: &[u8]) -> Vec<u8> {
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(answer) else {
        return answer.to_vec();
    };
    let mut blanked = false;
    for pointer in SECRETS {
        if let Some(secret) = json.pointer_mut(pointer) {
            *secret = serde_json::Value::Null;
            blanked = true;
        }
    }
    if blanked {
        serde_json::to_vec(&json).unwrap_or_default()
    } else {
        answer.to_vec()
    }
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

/// Deletes the records older than `ttl`; how many went.
pub async fn purge(pool: &PgPool, ttl: Duration) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM api.idempotency WHERE created_at < now() - make_interval(secs => $1)",
    )
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}

/// Purges expired records in the background, every `ttl` (at most hourly).
pub fn spawn_purger(pool: PgPool, ttl: Duration) {
    let period = ttl.clamp(Duration::from_secs(1), MAX_PURGE_PERIOD);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            match purge(&pool, ttl).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "expired idempotency records purged"),
                Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
            }
        }
    });
}
