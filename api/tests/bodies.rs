//! Request bodies over a route's limit: refused with 413 in the envelope, and never
//! read further than that limit, with or without an `Idempotency-Key`.

mod common;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use common::{Reply, TestApi, ROOT};
use futures_util::stream::{self, StreamExt};
use std::time::Duration;

/// Three MiB of JSON-ish bytes, then a stream that never ends: a server that reads
/// beyond its limit waits forever.
fn endless_body() -> Body {
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let head = stream::iter((0..48).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    Body::from_stream(head.chain(stream::pending()))
}

async fn post(t: &TestApi, path: &str, idempotency_key: Option<&str>, body: Body) -> Reply {
    let mut req = Request::post(path)
        .header("authorization", format!("Bearer {ROOT}"))
        .header("content-type", "application/json");
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    tokio::time::timeout(Duration::from_secs(10), t.raw(req.body(body).unwrap()))
        .await
        .expect("the API answers without reading the whole body")
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_in_the_envelope_and_is_not_read_to_its_end() {
    let t = TestApi::start().await;
    for key in [None, Some("big-1")] {
        let r = post(&t, "/api/v1/trunks", key, endless_body()).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{key:?}");
        assert_eq!(
            r.code(),
            "PAYLOAD_TOO_LARGE",
            "{key:?}: {:?}",
            r.bytes.len()
        );
    }
    // A whole rate deck may be far bigger than any other body.
    let deck = t
        .make(
            "/api/v1/vendors",
            serde_json::json!({"id": "V1", "name": "One", "kind": "DNIS"}),
        )
        .await;
    let deck = t
        .make(
            "/api/v1/rate-decks",
            serde_json::json!({"vendor_id": deck["id"]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let mut csv = String::from("prefix,effective_from,interstate\n");
    while csv.len() < 3 * 1024 * 1024 {
        let n = csv.len();
        csv.push_str(&format!("1{n},2020-01-01,0.01\n"));
    }
    let req = Request::post(format!("/api/v1/rate-decks/{deck}/upload"))
        .header("authorization", format!("Bearer {ROOT}"))
        .header("content-type", "text/csv")
        .header("idempotency-key", "deck-1")
        .body(Body::from(csv.clone()))
        .unwrap();
    let r = t.raw(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Read and stored whole, not only accepted.
    let sent = csv.lines().count() - 1;
    assert_eq!(r.data()["rows"], sent, "{}", r.body);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM rate_rows WHERE deck_id = $1")
        .bind(deck)
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(stored as usize, sent);
}

/// `n` characters no compressor shortens (an index keeps at most ~2.7 kB of a value).
fn noise(n: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[tokio::test]
async fn values_too_long_for_their_index_are_4xx_never_a_5xx() {
    let t = TestApi::start().await;
    t.fixture().await;
    let long = noise(8000);
    let c1 = t.key("customer_admin", Some("C1")).await;
    let r = t
        .post(
            "/api/v1/trunks/T-C1/credentials",
            &c1,
            serde_json::json!({"username": long, "password": "long enough"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.field(), "username", "{}", r.body);
    let r = t
        .post(
            "/api/v1/users",
            &c1,
            serde_json::json!({"email": format!("{long}@example.com"), "name": "x",
                               "role": "read_only", "password": "long enough pass"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.field(), "email", "{}", r.body);
    let req = Request::post("/api/v1/trunks")
        .header("authorization", format!("Bearer {c1}"))
        .header("content-type", "application/json")
        .header("idempotency-key", &long)
        .body(Body::from(r#"{"id": "T-long", "ban": "C1"}"#))
        .unwrap();
    let r = t.raw(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.field(), "Idempotency-Key", "{}", r.body);
    // Staff resources keyed by free text too.
    let r = t
        .post("/api/v1/rate-plans", ROOT, serde_json::json!({"id": long}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.field(), "id", "{}", r.body);
}
