//! warp-api on a Redis over TLS (`WARP_REDIS_URL=rediss://…` and `WARP_REDIS_CA`, a real
//! redis-server's TLS port): the rate limits its instances share there, a Redis whose
//! certificate is of another CA, and a CA file that cannot be read.

mod common;

use axum::http::StatusCode;
use common::{TestApi, ROOT};
use std::process::Command;
use warp_testkit::{Redis, TestCa};

/// Two instances with a limit of 4 requests a minute, on `redis`'s TLS port, trusting
/// the CAs in `ca`.
async fn instances(redis: &Redis, ca: &TestCa) -> (TestApi, TestApi) {
    let (url, ca) = (redis.tls_url.clone().unwrap(), ca.ca.display().to_string());
    let env = move |k: &str| match k {
        "WARP_REDIS_URL" => Some(url.clone()),
        "WARP_REDIS_CA" => Some(ca.clone()),
        "WARP_RATE_LIMIT" => Some("4".into()),
        _ => None,
    };
    (TestApi::with(env.clone()).await, TestApi::with(env).await)
}

/// A request of the root key: its status and what it has left of its budget.
async fn request(t: &TestApi) -> (StatusCode, String) {
    let r = t.get("/api/v1/vendors", ROOT).await;
    let left = r.headers["x-ratelimit-remaining"].to_str().unwrap();
    (r.status, left.to_owned())
}

/// The rate-limit counters in Redis, read on its plain port.
async fn counters(redis: &Redis) -> Vec<String> {
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg("warp:ratelimit:*")
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn instances_share_one_budget_through_a_redis_over_tls() {
    let ca = TestCa::make("redis").unwrap();
    let redis = Redis::start_tls(&ca).unwrap();
    let (a, b) = instances(&redis, &ca).await;
    common::well_inside_a_minute().await;
    for (t, left) in [(&a, "3"), (&b, "2"), (&a, "1"), (&b, "0")] {
        assert_eq!(request(t).await, (StatusCode::OK, left.into()));
    }
    for t in [&a, &b] {
        assert_eq!(
            request(t).await,
            (StatusCode::TOO_MANY_REQUESTS, "0".into())
        );
    }
    assert_eq!(counters(&redis).await.len(), 1);
}

/// A certificate the API cannot trust is Redis unreachable: each instance counts on its
/// own, as documented for a Redis that is down, and nothing is sent to that server.
#[tokio::test]
async fn a_redis_whose_certificate_is_of_another_ca_is_not_used() {
    let (ours, theirs) = (
        TestCa::make("redis").unwrap(),
        TestCa::make("other").unwrap(),
    );
    let redis = Redis::start_tls(&ours).unwrap();
    let (a, b) = instances(&redis, &theirs).await;
    for left in ["3", "2", "1", "0"] {
        assert_eq!(request(&a).await, (StatusCode::OK, left.into()));
    }
    assert_eq!(request(&a).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(request(&b).await, (StatusCode::OK, "3".into()));
    assert_eq!(counters(&redis).await, Vec::<String>::new());
}

#[test]
fn a_redis_ca_that_cannot_be_read_stops_warp_api_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_warp-api"))
        .env("WARP_DATABASE_URL", "postgres://warp@127.0.0.1:1/warp")
        .env("WARP_REDIS_URL", "rediss://:hunter2@127.0.0.1:6380/")
        .env("WARP_REDIS_CA", "/nonexistent/redis-ca.pem")
        .output()
        .expect("run warp-api");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("WARP_REDIS_CA: \"/nonexistent/redis-ca.pem\" cannot be read"),
        "{said}"
    );
    assert!(said.contains("rediss://:***@127.0.0.1:6380/"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}
