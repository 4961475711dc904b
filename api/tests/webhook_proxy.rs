//! The webhook client ignores HTTP_PROXY/HTTPS_PROXY: through a proxy, the destination
//! would be resolved and reached by the proxy, past the check of its addresses. Its own
//! test binary, because the proxy is set in the process's environment.

mod common;

use axum::http::StatusCode;
use common::{TestApi, ROOT};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn deliveries_do_not_go_through_a_proxy_from_the_environment() {
    // A "proxy" that answers 200 to whatever it is sent.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let reached = Arc::new(AtomicUsize::new(0));
    let count = reached.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = proxy.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        std::env::set_var(var, &proxy_url);
    }
    // Private destinations are not allowed (the default).
    let t = TestApi::with_vars(&[
        ("WARP_WEBHOOK_POLL_MS", "20"),
        ("WARP_WEBHOOK_MAX_ATTEMPTS", "1"),
    ])
    .await;
    t.fixture().await;
    let r = t
        .post(
            "/api/v1/webhooks",
            ROOT,
            json!({"url": "http://localhost:9/hook", "event_types": ["trunks.update"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let webhook = r.data()["id"].as_i64().unwrap();
    let r = t
        .call(
            "PATCH",
            "/api/v1/trunks/T-C1",
            ROOT,
            Some(json!({"max_cps": 3})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let log = loop {
        let r = t
            .get(&format!("/api/v1/webhooks/{webhook}/deliveries"), ROOT)
            .await;
        let log = r.data().as_array().cloned().unwrap_or_default();
        if !log.is_empty() && log.iter().all(|d| d["status"] != "pending") {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delivery did not settle: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let said = log[0]["attempts"][0]["error"].as_str().unwrap_or("");
    assert_eq!(log[0]["status"], "failed", "{}", log[0]);
    assert!(
        said.contains("refused: localhost has no public address"),
        "{said}"
    );
    assert_eq!(reached.load(Ordering::SeqCst), 0, "the proxy was used");
}
