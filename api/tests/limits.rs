//! Per-key rate limits shared by every API instance through Redis, and the in-process
//! fallback when Redis goes away.

mod common;

use axum::http::StatusCode;
use common::{TestApi, ROOT};
use warp_testkit::Redis;

fn header<'a>(r: &'a common::Reply, name: &str) -> &'a str {
    r.headers[name].to_str().unwrap()
}

#[tokio::test]
async fn two_instances_sharing_redis_share_one_budget_and_fall_back_when_it_goes() {
    let mut redis = Redis::start().expect("start a private redis-server");
    let url = redis.url.clone();
    let env = move |k: &str| match k {
        "WARP_REDIS_URL" => Some(url.clone()),
        "WARP_RATE_LIMIT" => Some("4".into()),
        _ => None,
    };
    let a = TestApi::with(env.clone()).await;
    let b = TestApi::with(env).await;
    common::well_inside_a_minute().await;
    for (t, remaining) in [(&a, "3"), (&b, "2"), (&a, "1"), (&b, "0")] {
        let r = t.get("/api/v1/vendors", ROOT).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(header(&r, "x-ratelimit-limit"), "4");
        assert_eq!(header(&r, "x-ratelimit-remaining"), remaining);
    }
    for t in [&a, &b] {
        let r = t.get("/api/v1/vendors", ROOT).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
        );
        assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
    }

    // Without Redis each instance counts on its own; nothing fails for it.
    redis.stop();
    for remaining in ["3", "2", "1", "0"] {
        let r = a.get("/api/v1/vendors", ROOT).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(header(&r, "x-ratelimit-remaining"), remaining);
    }
    let r = a.get("/api/v1/vendors", ROOT).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = b.get("/api/v1/vendors", ROOT).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Any bearer token gets a counter, made-up ones too: a flood of new tokens does not
/// grow an instance's counters without bound. Beyond what it holds (100,000 callers)
/// new callers share one budget, and callers counted before keep their own.
#[tokio::test]
async fn a_flood_of_new_callers_shares_one_budget_beyond_the_counters_held() {
    let limiter = warp_api::ratelimit::RateLimiter::new(2, None);
    assert!(limiter.hit("known").await.allowed);
    for i in 0..100_000 {
        limiter.hit(&format!("flood-{i}")).await;
    }
    let mut late = Vec::new();
    for i in 0..3 {
        late.push(limiter.hit(&format!("late-{i}")).await.allowed);
    }
    assert!(late.contains(&false), "{late:?}");
    assert!(limiter.hit("known").await.allowed);
    assert!(!limiter.hit("known").await.allowed);
}
