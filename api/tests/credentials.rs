//! Keys and users are cached per instance (auth::cache); a revocation, rotation or
//! disabling made anywhere — through another instance, or by hand in SQL — is refused
//! everywhere within moments, including when the change happened while an instance's
//! change listener was disconnected.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use common::{TestApi, ROOT};
use serde_json::json;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Well under the cache's 60 s lifetime: a refusal within this came from a notice.
const NOTICE: Duration = Duration::from_secs(5);

async fn status(app: &Router, key: &str) -> StatusCode {
    let req = Request::get("/api/v1/customers/C1")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

/// Waits until `app` refuses `key`; fails if that takes longer than [`NOTICE`].
async fn refused_soon(app: &Router, key: &str, what: &str) {
    let since = Instant::now();
    while status(app, key).await != StatusCode::UNAUTHORIZED {
        assert!(since.elapsed() < NOTICE, "{what}: still accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A second instance on the same database, as behind a load balancer.
async fn peer(t: &TestApi) -> Router {
    let state = warp_api::start(t.config.clone()).await.unwrap();
    warp_api::routes::app(state).0
}

/// Lets an instance's listener connect, so it caches what it checks.
async fn listening(app: &Router, key: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(app, key).await, StatusCode::OK);
}

/// The id of the key made last.
async fn last_key(t: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT max(id) FROM api.keys")
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_change_made_anywhere_is_refused_everywhere() {
    let t = TestApi::start().await;
    t.fixture().await;
    let a = t.app.clone();
    let b = peer(&t).await;

    // Revoked through A: A refuses at once, B on notice.
    let key = t.key("customer_admin", Some("C1")).await;
    listening(&a, &key).await;
    listening(&b, &key).await;
    let id = last_key(&t).await;
    let r = t
        .call("DELETE", &format!("/api/v1/api-keys/{id}"), ROOT, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(status(&a, &key).await, StatusCode::UNAUTHORIZED);
    refused_soon(&b, &key, "revoked through another instance").await;

    // Rotated through A: the old secret is refused on B.
    let key = t.key("customer_admin", Some("C1")).await;
    assert_eq!(status(&b, &key).await, StatusCode::OK);
    let id = last_key(&t).await;
    let r = t
        .post(&format!("/api/v1/api-keys/{id}/rotate"), ROOT, json!({}))
        .await;
    let new = r.data()["secret"].as_str().unwrap().to_string();
    refused_soon(&b, &key, "rotated through another instance").await;
    assert_eq!(status(&b, &new).await, StatusCode::OK);

    // Revoked by hand in SQL: no API call knew about it.
    assert_eq!(status(&a, &new).await, StatusCode::OK);
    sqlx::query("UPDATE api.keys SET revoked_at = now() WHERE id = $1")
        .bind(id)
        .execute(&t.pool)
        .await
        .unwrap();
    refused_soon(&a, &new, "revoked in SQL").await;
    refused_soon(&b, &new, "revoked in SQL").await;
}

#[tokio::test]
async fn a_change_missed_while_the_listener_was_down_is_not_served_from_cache() {
    let t = TestApi::start().await;
    t.fixture().await;
    let key = t.key("read_only", Some("C1")).await;
    listening(&t.app, &key).await;
    let id = last_key(&t).await;
    // Drop the listener's connection and revoke while it is gone: that notice is lost.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query LIKE 'LISTEN %warp_credentials%'",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(ended, [true], "one credential listener");
    sqlx::query("UPDATE api.keys SET revoked_at = now() WHERE id = $1")
        .bind(id)
        .execute(&t.pool)
        .await
        .unwrap();
    refused_soon(&t.app, &key, "revoked while the listener was down").await;
}
