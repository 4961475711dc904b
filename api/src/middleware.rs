//! Cross-cutting request handling: metrics and logs, and who the caller is for the
//! per-key limits (`ratelimit`) and idempotent POSTs (`idempotency`).

use crate::auth::keys::hash;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
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

/// The caller's identity for limits and idempotency: the hash of its bearer token.
pub fn caller(headers: &HeaderMap) -> Option<String> {
    let token = headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    Some(hash(token.trim()))
}
