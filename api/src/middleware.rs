//! Cross-cutting request handling: metrics and logs, a handler's panic answered as a
//! 500, and the hash of the bearer token for the per-token limits (`ratelimit`) and the
//! key lookup.

use crate::auth::bearer;
use crate::auth::keys::hash;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

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

/// A handler that panics gets its caller a 500, not a connection reset with no answer;
/// run in a task of its own, which is where tokio catches a panic.
pub async fn catch_panic(req: Request, next: Next) -> Response {
    tokio::spawn(next.run(req))
        .await
        .unwrap_or_else(|e| ApiError::internal(e).into_response())
}

/// The hash of a request's bearer token, kept in its extensions once computed.
#[derive(Clone)]
pub struct Caller(pub String);

/// The caller's token for limits and key lookup: the hash of its bearer token, hashed
/// once per request whichever of them asks first.
pub fn caller(req: &mut Request) -> Option<String> {
    if let Some(Caller(known)) = req.extensions().get::<Caller>() {
        return Some(known.clone());
    }
    let hashed = hash(bearer(req.headers())?);
    req.extensions_mut().insert(Caller(hashed.clone()));
    Some(hashed)
}
