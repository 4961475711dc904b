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
        .body(Body::from(csv))
        .unwrap();
    let r = t.raw(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
