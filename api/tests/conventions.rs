//! Conventions every endpoint shares: the OpenAPI document matches the routes,
//! idempotent POSTs and their expiry, rate-limit headers, health/readiness/metrics,
//! CDR paging, and the Redis announcement of a new snapshot.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::post;
use axum::Router;
use common::{TestApi, ROOT};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use warp_api::{idempotency, middleware};

#[tokio::test]
async fn every_route_is_in_the_spec_and_every_spec_operation_is_served() {
    let t = TestApi::start().await;
    t.fixture().await;
    let spec = t.get("/api/v1/openapi.json", "").await;
    assert_eq!(spec.status, StatusCode::OK);
    assert!(spec.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec.body["paths"].as_object().unwrap();
    for must in [
        "/health",
        "/ready",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/customers",
        "/api/v1/trunks/{parent}/ips",
        "/api/v1/trunks/{parent}/credentials/{id}",
        "/api/v1/partitions/{parent}/routes",
        "/api/v1/customers/{parent}/partitions",
        "/api/v1/vendors/{parent}/gateways",
        "/api/v1/rate-decks/{id}/upload",
        "/api/v1/overrides",
        "/api/v1/exclusions",
        "/api/v1/dno",
        "/api/v1/numbers",
        "/api/v1/customers/{id}/cdrs",
        "/api/v1/api-keys/{id}/rotate",
        "/api/v1/routing/simulate",
        "/api/v1/routing/lcr",
        "/api/v1/routing/publish",
        "/api/v1/routing/snapshot",
        "/api/v1/webhooks/{id}",
        "/api/v1/webhooks/{parent}/deliveries",
        "/api/v1/e911-addresses/validate",
        "/api/v1/numbers/{id}/e911",
        "/api/v1/numbers/{id}/cnam",
    ] {
        assert!(paths.contains_key(must), "{must} missing from the spec");
    }
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path.replace("{parent}", "zz").replace("{id}", "zz");
        // The router's methods on the path (its 405's Allow) are the documented ones.
        let r = t.call("OPTIONS", &concrete, ROOT, None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let mut served: Vec<String> = r.headers["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_lowercase())
            .filter(|m| m != "head")
            .collect();
        let mut documented: Vec<String> = item.as_object().unwrap().keys().cloned().collect();
        documented.retain(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()));
        served.sort();
        documented.sort();
        assert_eq!(served, documented, "{path}");
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|code| code.starts_with('2')),
                "{method} {path}"
            );
            // Served (no router fallback), and no input makes it fail with a 5xx.
            for body in [None, Some(json!({})), Some(json!({"x": [1]}))] {
                let r = t
                    .call(&method.to_uppercase(), &concrete, ROOT, body.clone())
                    .await;
                assert!(
                    !matches!(r.code(), "ROUTE_NOT_FOUND" | "METHOD_NOT_ALLOWED"),
                    "{method} {path} is in the spec but not routed"
                );
                assert!(
                    !r.status.is_server_error(),
                    "{method} {path} {body:?}: {}",
                    r.body
                );
                // Refused for want of a query parameter: the spec says it is required.
                if r.code() == "INVALID_QUERY" {
                    let params = op["parameters"].as_array().cloned().unwrap_or_default();
                    assert!(
                        params
                            .iter()
                            .any(|p| p["in"] == "query" && p["required"] == true),
                        "{method} {path} needs a query parameter it documents as optional: {}",
                        r.body
                    );
                }
            }
        }
    }
    assert!(operations > 80, "{operations} operations");
    // A deck may be sent as CSV, as the upload's summary says.
    let upload = &paths["/api/v1/rate-decks/{id}/upload"]["post"]["requestBody"]["content"];
    assert!(upload["text/csv"].is_object(), "{upload}");
}

/// Each kind of success (a create, another write, a read, a conditional GET) is
/// answered with a status its operation documents: a client generated from the spec
/// takes any other for a failure.
#[tokio::test]
async fn successes_are_answered_with_a_status_the_spec_documents() {
    let t = TestApi::start().await;
    t.fixture().await;
    let spec = t.get("/api/v1/openapi.json", "").await.body;
    // The fixture's publish is done (its debounce is 100 ms); no change comes between
    // the two GETs.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let etag = t.get("/api/v1/routing/snapshot", ROOT).await.headers["etag"].clone();
    let documented = |method: &str, path: &str| {
        let responses = &spec["paths"][path][method.to_lowercase()]["responses"];
        responses
            .as_object()
            .map(|r| r.keys().cloned().collect::<Vec<_>>())
    };
    let req = Request::get("/api/v1/routing/snapshot")
        .header("authorization", format!("Bearer {ROOT}"))
        .header("if-none-match", etag)
        .body(Body::empty())
        .unwrap();
    assert_eq!(t.raw(req).await.status, StatusCode::NOT_MODIFIED);
    let codes = documented("GET", "/api/v1/routing/snapshot").unwrap_or_default();
    assert!(codes.contains(&"304".to_string()), "{codes:?}");
    let calls = [
        (
            "POST",
            "/api/v1/customers",
            "/api/v1/customers",
            Some(json!({"ban": "C3", "name": "Three", "rate_plan": "retail"})),
        ),
        (
            "POST",
            "/api/v1/trunks/{parent}/ips",
            "/api/v1/trunks/T-C1/ips",
            Some(json!({"addr": "198.51.100.0/24"})),
        ),
        (
            "POST",
            "/api/v1/api-keys",
            "/api/v1/api-keys",
            Some(json!({"name": "ops", "role": "support"})),
        ),
        (
            "POST",
            "/api/v1/users",
            "/api/v1/users",
            Some(
                json!({"email": "ann@c1.example", "role": "customer_admin", "ban": "C1",
                     "password": "a long passphrase"}),
            ),
        ),
        (
            "POST",
            "/api/v1/webhooks",
            "/api/v1/webhooks",
            Some(json!({"url": "https://hooks.example/warp", "event_types": ["*"]})),
        ),
        (
            "PATCH",
            "/api/v1/customers/{id}",
            "/api/v1/customers/C3",
            Some(json!({"name": "Three Inc."})),
        ),
        (
            "GET",
            "/api/v1/customers/{id}",
            "/api/v1/customers/C3",
            None,
        ),
        (
            "POST",
            "/api/v1/routing/simulate",
            "/api/v1/routing/simulate",
            Some(json!({"customer_ban": "C1", "dnis": "+13035550100"})),
        ),
    ];
    for (method, path, concrete, body) in calls {
        let r = t.call(method, concrete, ROOT, body).await;
        assert!(r.status.is_success(), "{method} {concrete}: {}", r.body);
        let codes = documented(method, path).unwrap_or_default();
        assert!(
            codes.contains(&r.status.as_str().to_string()),
            "{method} {path} answers {} but documents {codes:?}",
            r.status
        );
    }
}

/// How many statements PostgreSQL logged with `needle` in them (or their parameters).
async fn logged(t: &TestApi, needle: &str) -> usize {
    let (data,): (String,) = sqlx::query_as("SHOW data_directory")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    // testkit's pg_ctl writes the server log beside the data directory.
    let log = std::path::Path::new(&data).with_file_name("postgres.log");
    let text = std::fs::read_to_string(log).unwrap();
    text.matches(needle).count()
}

/// The idempotency layer checks who the caller is before it claims the key; the
/// handler then reuses that answer rather than checking again (a key not in the
/// credential cache, or not known at all, cost two database lookups).
#[tokio::test]
async fn an_idempotent_post_authenticates_its_caller_once() {
    let t = TestApi::start().await;
    sqlx::query("ALTER SYSTEM SET log_statement = 'all'")
        .execute(&t.pool)
        .await
        .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&t.pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let token = "warp_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";
    let hash = warp_api::auth::keys::hash(token);
    let r = t
        .raw(
            Request::post("/api/v1/partitions")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("idempotency-key", "once")
                .body(Body::from(json!({"id": "P1", "name": "x"}).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(logged(&t, &hash).await, 1, "api.keys lookups of the token");
}

/// A handler that panics answers 500 (not a connection reset), and gives up its
/// Idempotency-Key's claim: the client's retry runs again instead of hearing "still
/// running" until the claim counts as abandoned, five minutes on.
#[tokio::test]
async fn a_panicking_handler_answers_500_and_its_retry_runs_again() {
    let t = TestApi::start().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let handler = {
        let runs = runs.clone();
        move || async move {
            if runs.fetch_add(1, SeqCst).is_multiple_of(2) {
                panic!("a defect in a handler");
            }
            StatusCode::CREATED
        }
    };
    let app = Router::new()
        .route("/boom", post(handler))
        .layer(from_fn_with_state(
            t.state.clone(),
            idempotency::idempotency,
        ))
        .layer(from_fn(middleware::catch_panic));
    let send = |key: Option<&str>| {
        let mut req = Request::post("/boom").header("authorization", format!("Bearer {ROOT}"));
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    for key in [Some("retried"), None] {
        let failed = send(key).await.unwrap();
        assert_eq!(
            failed.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{key:?}"
        );
        let body = failed.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["errors"][0]["code"], "INTERNAL", "{body}");
        let retried = send(key).await.unwrap();
        assert_eq!(retried.status(), StatusCode::CREATED, "{key:?}");
    }
    assert_eq!(runs.load(SeqCst), 4);
}

/// A filter taking only a few values lists them in the spec, and the API holds to it.
#[tokio::test]
async fn closed_filters_list_their_values_in_the_spec() {
    let t = TestApi::start().await;
    t.fixture().await;
    let spec = t.get("/api/v1/openapi.json", "").await;
    let values = |path: &str, name: &str| {
        let params = spec.body["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has no parameters"));
        let param = (params.iter())
            .find(|p| p["name"] == name && p["in"] == "query")
            .unwrap_or_else(|| panic!("{path} has no {name} parameter"));
        param["schema"]["enum"].clone()
    };
    assert_eq!(
        values("/api/v1/numbers", "status"),
        json!(["available", "reserved", "assigned", "aging", "ported_out"])
    );
    assert_eq!(
        values("/api/v1/webhooks", "active"),
        json!(["true", "false"])
    );
    assert_eq!(
        values("/api/v1/customers/{id}/cdrs", "disposition"),
        json!(["ANSWERED", "NO_ANSWER", "BUSY", "FAILED", "CANCELLED"])
    );
    // An open one lists none.
    assert_eq!(values("/api/v1/numbers", "ban"), Value::Null);
    // A value the spec does not list is refused.
    let r = t.get("/api/v1/numbers?status=lost", ROOT).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INVALID_QUERY")
    );
}

#[tokio::test]
async fn a_repeated_post_with_an_idempotency_key_answers_once() {
    let t = TestApi::start().await;
    let send = |body: Value| {
        Request::post("/api/v1/partitions")
            .header("authorization", format!("Bearer {ROOT}"))
            .header("content-type", "application/json")
            .header("idempotency-key", "abc-1")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let first = t.raw(send(json!({"id": "P1", "name": "one"}))).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = t.raw(send(json!({"id": "P1", "name": "one"}))).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let other = t.raw(send(json!({"id": "P2", "name": "two"}))).await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED")
    );
    // Two at once with a fresh key: one runs, the other replays or is told to wait.
    let race = |id: &str| {
        Request::post("/api/v1/partitions")
            .header("authorization", format!("Bearer {ROOT}"))
            .header("content-type", "application/json")
            .header("idempotency-key", "abc-2")
            .body(Body::from(json!({"id": id, "name": "x"}).to_string()))
            .unwrap()
    };
    let (a, b) = tokio::join!(t.raw(race("P3")), t.raw(race("P3")));
    let mut outcomes = [
        (a.status, a.code().to_string()),
        (b.status, b.code().to_string()),
    ];
    outcomes.sort();
    assert_eq!(
        outcomes[0],
        (StatusCode::CREATED, String::new()),
        "{outcomes:?}"
    );
    assert!(
        outcomes[1] == (StatusCode::CREATED, String::new())
            || outcomes[1] == (StatusCode::CONFLICT, "IDEMPOTENCY_IN_PROGRESS".into()),
        "{outcomes:?}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM partitions")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

/// An `Idempotency-Key` that is not header text (here UTF-8) is refused, not ignored:
/// ignored, the retry it was sent to make safe would run the request a second time.
#[tokio::test]
async fn an_idempotency_key_that_is_not_ascii_is_refused_not_ignored() {
    let t = TestApi::start().await;
    let send = || {
        let key = axum::http::HeaderValue::from_bytes("clé-1".as_bytes()).unwrap();
        Request::post("/api/v1/rate-plans")
            .header("authorization", format!("Bearer {ROOT}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(json!({"id": "retail"}).to_string()))
            .unwrap()
    };
    for _ in 0..2 {
        let r = t.raw(send()).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::BAD_REQUEST, "INVALID_HEADER", "Idempotency-Key"),
            "{}",
            r.body
        );
    }
    let plans: i64 = sqlx::query_scalar("SELECT count(*) FROM rate_plans")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(plans, 0);
}

/// A JSON POST by `bearer` with Idempotency-Key `key`.
fn keyed_post(path: &str, bearer: &str, key: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A sign-in or refresh sent with a bearer and an Idempotency-Key (a client that adds
/// both to every POST) keeps no token in its idempotency record: tokens are secrets,
/// shown once, as a new key's is.
#[tokio::test]
async fn an_idempotency_record_keeps_no_session_token() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/users",
        json!({"email": "ann@c1.example", "role": "customer_admin", "ban": "C1",
               "password": "a long passphrase"}),
    )
    .await;
    let login = || {
        keyed_post(
            "/api/v1/auth/login",
            ROOT,
            "login-1",
            json!({"email": "ann@c1.example", "password": "a long passphrase"}),
        )
    };
    let first = t.raw(login()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let token = |r: &common::Reply, name: &str| r.data()[name].as_str().unwrap().to_string();
    let (access, refresh) = (
        token(&first, "access_token"),
        token(&first, "refresh_token"),
    );
    let renewed = keyed_post(
        "/api/v1/auth/refresh",
        &access,
        "refresh-1",
        json!({"refresh_token": refresh}),
    );
    let renewed = t.raw(renewed).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT body FROM api.idempotency")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "both requests claimed their keys");
    let tokens = [
        access,
        refresh,
        token(&renewed, "access_token"),
        token(&renewed, "refresh_token"),
    ];
    for body in &stored {
        let body = String::from_utf8_lossy(body);
        assert!(!tokens.iter().any(|t| body.contains(t)), "kept: {body}");
    }
    let again = t.raw(login()).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert!(again.data()["refresh_token"].is_null(), "{}", again.body);
}

/// What an idempotency record keeps and whom it answers: no secret shown once (a new
/// key's), no stranger or revoked key (nothing claimed, nothing replayed), and the
/// query string is part of the request.
#[tokio::test]
async fn an_idempotency_record_keeps_no_secret_and_answers_only_its_accepted_caller() {
    let t = TestApi::start().await;
    t.fixture().await;
    let admin = t
        .make(
            "/api/v1/api-keys",
            json!({"name": "admin", "role": "customer_admin", "ban": "C1"}),
        )
        .await;
    let (admin_id, admin) = (
        admin["id"].as_i64().unwrap(),
        admin["secret"].as_str().unwrap().to_string(),
    );
    let mint = || {
        keyed_post(
            "/api/v1/api-keys",
            &admin,
            "k1",
            json!({"name": "ro", "role": "read_only"}),
        )
    };
    let first = t.raw(mint()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let secret = first.data()["secret"].as_str().unwrap().to_string();
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT body FROM api.idempotency")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|b| !String::from_utf8_lossy(b).contains(&secret)),
        "the secret is kept in api.idempotency"
    );
    let again = t.raw(mint()).await;
    assert_eq!(
        (again.status, again.data()["secret"].is_null()),
        (StatusCode::CREATED, true),
        "{}",
        again.body
    );
    // Revoked, the key gets no replay; a stranger claims nothing.
    t.call(
        "DELETE",
        &format!("/api/v1/api-keys/{admin_id}"),
        ROOT,
        None,
    )
    .await;
    assert_eq!(t.raw(mint()).await.status, StatusCode::UNAUTHORIZED);
    let stranger = keyed_post("/api/v1/partitions", "not-a-key", "k2", json!({"id": "PX"}));
    assert_eq!(t.raw(stranger).await.status, StatusCode::UNAUTHORIZED);
    let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM api.idempotency WHERE key = 'k2'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(claimed, 0);
    // Another query string with the same key and body is another request.
    let part = |query: &str| {
        keyed_post(
            &format!("/api/v1/partitions{query}"),
            ROOT,
            "k3",
            json!({"id": "PQ", "name": "q"}),
        )
    };
    assert_eq!(t.raw(part("?a=1")).await.status, StatusCode::CREATED);
    let other = t.raw(part("?a=2")).await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED")
    );
    // A claim left running by a request that never finished (its client went away)
    // does not hold the key for the whole TTL.
    sqlx::query(
        "INSERT INTO api.idempotency (actor, key, request_hash, status, body, created_at)
         SELECT actor, 'k4', request_hash, 0, '', now() - interval '10 minutes'
         FROM api.idempotency WHERE key = 'k3'",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    let abandoned = keyed_post(
        "/api/v1/partitions",
        ROOT,
        "k4",
        json!({"id": "PA", "name": "a"}),
    );
    assert_eq!(t.raw(abandoned).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn an_idempotency_key_expires_and_its_record_is_purged() {
    let t = TestApi::start().await;
    let send = |key: &str, id: &str| {
        Request::post("/api/v1/partitions")
            .header("authorization", format!("Bearer {ROOT}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(json!({"id": id, "name": "x"}).to_string()))
            .unwrap()
    };
    assert_eq!(t.raw(send("k-1", "P1")).await.status, StatusCode::CREATED);
    let reused = t.raw(send("k-1", "P2")).await;
    assert_eq!(reused.code(), "IDEMPOTENCY_KEY_REUSED");
    let age = |key: &'static str| {
        sqlx::query(
            "UPDATE api.idempotency SET created_at = now() - interval '25 hours' WHERE key = $1",
        )
        .bind(key)
        .execute(&t.pool)
    };
    // Past the TTL (24 h) the key is new again: the request runs, and is then replayed.
    age("k-1").await.unwrap();
    let fresh = t.raw(send("k-1", "P2")).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.body);
    assert!(!fresh.headers.contains_key("idempotent-replayed"));
    let replayed = t.raw(send("k-1", "P2")).await;
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    // The purge removes expired records and nothing else.
    assert_eq!(t.raw(send("k-2", "P3")).await.status, StatusCode::CREATED);
    age("k-2").await.unwrap();
    let purged = warp_api::idempotency::purge(&t.pool, t.config.idempotency_ttl)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM api.idempotency")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert_eq!(keys, ["k-1"]);
}

#[tokio::test]
async fn rate_limits_are_per_key_and_announced_in_headers() {
    let t = TestApi::with(|k| (k == "WARP_RATE_LIMIT").then(|| "3".into())).await;
    for remaining in ["2", "1", "0"] {
        let r = t.get("/api/v1/vendors", ROOT).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-ratelimit-limit"], "3");
        assert_eq!(r.headers["x-ratelimit-remaining"], remaining);
        assert!(r.headers.contains_key("x-ratelimit-reset"));
    }
    let r = t.get("/api/v1/vendors", ROOT).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
    );
    // Another key has its own budget; public endpoints are not counted.
    let other = t.get("/api/v1/vendors", "someone-else").await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.get("/health", "").await.status, StatusCode::OK);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let t = TestApi::start().await;
    let h = t.get("/health", "").await;
    assert_eq!(
        (h.status, &h.body["success"]),
        (StatusCode::OK, &json!(true))
    );
    let r = t.get("/ready", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.data()["generation"],
        1,
        "an empty dataset is published at start"
    );
    let m = t.get("/metrics", "").await;
    let text = String::from_utf8(m.bytes).unwrap();
    assert!(text.contains("warp_api_requests_total"), "{text}");
    assert!(text.contains("warp_api_snapshot_generation 1"), "{text}");
}

#[tokio::test]
async fn made_up_methods_add_no_metric_series() {
    let t = TestApi::start().await;
    for i in 0..3 {
        let req = Request::builder()
            .method(format!("BREW{i}").as_str())
            .uri("/api/v1/customers")
            .body(Body::empty())
            .unwrap();
        assert_eq!(t.raw(req).await.status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = String::from_utf8(t.get("/metrics", "").await.bytes).unwrap();
    assert!(!text.contains("BREW"), "{text}");
    let series =
        r#"warp_api_requests_total{method="other",route="/api/v1/customers",status="405"} 3"#;
    assert!(text.contains(series), "{text}");
}

async fn add_cdr(t: &TestApi, ban: &str, call: &str, at: &str, zone: &str) {
    sqlx::query(
        "INSERT INTO billing.rated_cdrs (call_id, start_stamp, ban, dnis, zone, disposition,
             duration_secs, billed_secs, customer_rate, customer_initial, customer_subsequent,
             customer_charge, vendor_rate, vendor_cost, margin)
         VALUES ($1, $2::timestamptz, $3, '12125556789', $4, 'ANSWERED', 61, 66, 0.01, 6, 6,
                 0.011, 0.004, 0.0044, 0.0066)",
    )
    .bind(call)
    .bind(at)
    .bind(ban)
    .bind(zone)
    .execute(&t.pool)
    .await
    .unwrap();
}

/// The call ids of a CDR page, in order.
fn call_ids(r: &common::Reply) -> Vec<&str> {
    cdr_fields(r, ["call_id"])
        .into_iter()
        .map(|[id]| id)
        .collect()
}

/// The fields `names` of each CDR on the page `r`.
fn cdr_fields<'r, const N: usize>(r: &'r common::Reply, names: [&str; N]) -> Vec<[&'r str; N]> {
    (r.data().as_array().unwrap().iter())
        .map(|c| names.map(|k| c[k].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn cdrs_are_per_customer_filtered_and_cursor_paged() {
    let t = TestApi::start().await;
    t.fixture().await;
    // Pages cross month (partition) boundaries, one call exactly on one; the last is in
    // a month with no partition of its own (the default partition holds it).
    let starts = [
        "2026-01-01T10:00:00Z",
        "2026-01-02T10:00:00Z",
        "2026-01-31T23:00:00Z",
        "2026-02-01T00:00:00Z",
        "2026-03-15T10:00:00Z",
        "2031-06-01T00:00:00Z",
    ];
    for (i, at) in starts.iter().enumerate() {
        let zone = if i % 2 == 0 { "INTERSTATE" } else { "LOCAL" };
        add_cdr(&t, "C1", &format!("call-{i}"), at, zone).await;
    }
    add_cdr(&t, "C2", "other", "2026-01-02T00:00:00Z", "LOCAL").await;
    let key = t.key("read_only", Some("C1")).await;
    let mut calls = Vec::new();
    let mut url = "/api/v1/customers/C1/cdrs?limit=2".to_string();
    loop {
        let r = t.get(&url, &key).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for c in r.data().as_array().unwrap() {
            assert!(c.get("vendor_cost").is_none() && c.get("margin").is_none());
            calls.push(c["call_id"].as_str().unwrap().to_string());
        }
        match r.body["meta"]["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/customers/C1/cdrs?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        calls,
        ["call-0", "call-1", "call-2", "call-3", "call-4", "call-5"]
    );
    let r = t
        .get(
            "/api/v1/customers/C1/cdrs?zone=interstate&start_date=2026-01-02T00:00:00Z",
            &key,
        )
        .await;
    let ids = call_ids(&r);
    assert_eq!(ids, ["call-2", "call-4"]);
    assert_eq!(r.data()[0]["customer_charge"], "0.011000");
    let r = t
        .get(
            "/api/v1/customers/C1/cdrs?start_date=2026-01-02T00:00:00Z&end_date=2026-02-01T00:00:00Z",
            &key,
        )
        .await;
    let ids = call_ids(&r);
    assert_eq!(ids, ["call-1", "call-2"]);
    let r = t
        .get(
            "/api/v1/customers/C1/cdrs?start_date=2031-06-01T00:00:00Z",
            &key,
        )
        .await;
    assert_eq!(call_ids(&r), ["call-5"]);
    let r = t
        .get(
            "/api/v1/customers/C1/cdrs?disposition=Answered&zone=%20local&start_date=2031-06-01T00:00:00Z",
            &key,
        )
        .await;
    assert_eq!(call_ids(&r), ["call-5"], "{}", r.body);
    for bad in [
        "start_date=yesterday",
        "limit=-1",
        "cursor=nope",
        "dnis_prefix=12a",
        "colour=red",
        "zone=interstat",
        "disposition=answerd",
    ] {
        let r = t
            .get(&format!("/api/v1/customers/C1/cdrs?{bad}"), &key)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
}

/// A cursor as the API makes them: the base64 of the last row's sort key.
fn cursor(key: Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.to_string())
}

#[tokio::test]
async fn cdr_dates_with_signed_years_are_read_like_any_other() {
    let t = TestApi::start().await;
    t.fixture().await;
    add_cdr(&t, "C1", "call-0", "2026-01-01T10:00:00Z", "LOCAL").await;
    add_cdr(&t, "C1", "call-1", "2026-02-01T10:00:00Z", "LOCAL").await;
    let key = t.key("read_only", Some("C1")).await;
    let before_all = cursor(json!(["-0001-06-01T00:00:00Z", "", "", 1]));
    for (query, expected) in [
        (
            "start_date=-0001-06-01T00:00:00Z",
            &["call-0", "call-1"][..],
        ),
        ("start_date=%2B10000-01-01T00:00:00Z", &[]),
        (&format!("cursor={before_all}"), &["call-0", "call-1"]),
    ] {
        let r = t
            .get(&format!("/api/v1/customers/C1/cdrs?{query}"), &key)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        assert_eq!(call_ids(&r), expected, "{query}");
    }
}

#[tokio::test]
async fn a_cdr_cursor_from_before_start_date_still_keeps_to_start_date() {
    let t = TestApi::start().await;
    t.fixture().await;
    for (call, at) in [
        ("call-0", "2026-01-01T10:00:00Z"),
        ("call-1", "2026-02-01T10:00:00Z"),
        ("call-2", "2026-03-01T10:00:00Z"),
        ("call-3", "2026-04-01T10:00:00Z"),
    ] {
        add_cdr(&t, "C1", call, at, "LOCAL").await;
    }
    let key = t.key("read_only", Some("C1")).await;
    // The unfiltered listing's first cursor, kept when the date filter is added.
    let first = t.get("/api/v1/customers/C1/cdrs?limit=1", &key).await;
    let c = first.body["meta"]["next_cursor"].as_str().unwrap();
    let r = t
        .get(
            &format!("/api/v1/customers/C1/cdrs?start_date=2026-03-01T00:00:00Z&cursor={c}"),
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(call_ids(&r), ["call-2", "call-3"]);
}

#[tokio::test]
async fn a_cdr_shows_every_column_as_stored() {
    let t = TestApi::start().await;
    t.fixture().await;
    sqlx::query(
        "INSERT INTO billing.rated_cdrs (call_id, leg, attempt, start_stamp, answer_stamp,
             end_stamp, ban, trunk_id, ani, dnis, lrn, zone, ocn, lata, state,
             routing_partition, vendor_id, sip_code, disposition, duration_secs, billed_secs,
             customer_rate, customer_initial, customer_subsequent, customer_charge,
             vendor_rate, vendor_cost, margin)
         VALUES (E'a\"b\\\\c\\u0001d\u{e9}', 'B', 3, '2026-03-04 05:06:07.123456+00',
                 '2026-03-04 05:06:09.5+00', '2026-03-04 05:07:10+00', 'C1', 'T1',
                 '+12125550100', '13125550101', '13125559999', 'INTRASTATE', '9740', 358,
                 'IL', 'P1', 'V1', 200, 'ANSWERED', 61, 66, 0.012345678, 6, 6, 0.013580,
                 0.004, 0.0044, 0.0066)",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    let key = t.key("read_only", Some("C1")).await;
    let r = t.get("/api/v1/customers/C1/cdrs", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.data(),
        &serde_json::json!([{
            "call_id": "a\"b\\c\u{1}d\u{e9}",
            "leg": "B",
            "attempt": 3,
            "start_stamp": "2026-03-04T05:06:07.123456Z",
            "answer_stamp": "2026-03-04T05:06:09.500Z",
            "end_stamp": "2026-03-04T05:07:10Z",
            "ban": "C1",
            "trunk_id": "T1",
            "ani": "+12125550100",
            "dnis": "13125550101",
            "lrn": "13125559999",
            "zone": "INTRASTATE",
            "ocn": "9740",
            "lata": 358,
            "state": "IL",
            "routing_partition": "P1",
            "vendor_id": "V1",
            "sip_code": 200,
            "disposition": "ANSWERED",
            "duration_secs": 61,
            "billed_secs": 66,
            "customer_rate": "0.012345678",
            "customer_charge": "0.013580",
        }])
    );
    assert_eq!(
        r.body["meta"],
        serde_json::json!({"count": 1, "limit": 100})
    );
    // A row with every optional column empty.
    add_cdr(&t, "C1", "bare", "2026-03-05T00:00:00Z", "LOCAL").await;
    let r = t
        .get(
            "/api/v1/customers/C1/cdrs?start_date=2026-03-05T00:00:00Z",
            &key,
        )
        .await;
    let cdr = &r.data()[0];
    for empty in [
        "answer_stamp",
        "end_stamp",
        "trunk_id",
        "ani",
        "lrn",
        "ocn",
        "lata",
    ] {
        assert_eq!(cdr[empty], serde_json::Value::Null, "{empty}");
    }
    assert_eq!(cdr["call_id"], "bare");
}

#[tokio::test]
async fn a_new_generation_is_announced_on_redis() {
    let (generation, body) = publish_and_hear(Duration::ZERO).await;
    assert_eq!(body["generation"], generation);
    assert!(body["path"].as_str().unwrap().ends_with("routing.snap"));
}

/// A Redis that answers nothing for 1.5 s (busy) still gets the announcement: the
/// publish gives it 2 s, not the Redis client's own shorter defaults (1 s to connect,
/// 0.5 s for a reply).
#[tokio::test]
async fn a_new_generation_is_announced_on_a_redis_slow_to_answer() {
    let (generation, body) = publish_and_hear(Duration::from_millis(1500)).await;
    assert_eq!(body["generation"], generation);
}

/// Publishes on an API announcing on a private Redis, which answers no client for
/// `pause` from just before; the generation, and the announcement a subscriber heard.
async fn publish_and_hear(pause: Duration) -> (u64, Value) {
    use futures_util::StreamExt;
    let r = warp_testkit::Redis::start().expect("start a private redis-server");
    let url = r.url.clone();
    let t = TestApi::with(|k| (k == "WARP_REDIS_URL").then(|| url.clone())).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe(warp_api::routing::publisher::CHANNEL)
        .await
        .unwrap();
    if !pause.is_zero() {
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(pause.as_millis().to_string())
            .arg("ALL")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    let generation = t.publish().await;
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.on_message().next())
        .await
        .expect("an announcement")
        .unwrap();
    let body: Value = serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
    (generation, body)
}

#[tokio::test]
async fn an_idempotency_key_belongs_to_the_user_not_to_one_access_token() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/users",
        json!({"email": "ops@c1.example", "name": "Ops", "role": "customer_admin",
               "ban": "C1", "password": "a long password"}),
    )
    .await;
    let login = t
        .post(
            "/api/v1/auth/login",
            "",
            json!({"email": "ops@c1.example", "password": "a long password"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let first_token = login.data()["access_token"].as_str().unwrap().to_string();
    // A token is stamped to the second: the refreshed one must differ.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed = t
        .post(
            "/api/v1/auth/refresh",
            "",
            json!({"refresh_token": login.data()["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let second_token = refreshed.data()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first_token, second_token);

    // A client retries its POST after refreshing an expiring token.
    let send = |token: &str| {
        keyed_post(
            "/api/v1/e911-addresses",
            token,
            "address-1",
            json!({"line1": "1 Main St", "city": "Denver", "state": "CO",
                   "postal_code": "80202"}),
        )
    };
    let first = t.raw(send(&first_token)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = t.raw(send(&second_token)).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM e911_addresses")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn an_idempotent_post_whose_client_went_away_still_finishes_and_is_replayed() {
    use tower::ServiceExt;
    let t = TestApi::start().await;
    t.fixture().await;
    let send = || {
        Request::post("/api/v1/trunks/T-C1/ips")
            .header("authorization", format!("Bearer {ROOT}"))
            .header("content-type", "application/json")
            .header("idempotency-key", "ip-1")
            .body(Body::from(json!({"addr": "198.51.100.7/32"}).to_string()))
            .unwrap()
    };
    // Writers of trunk networks take turns on this lock: the request waits on it.
    let mut holder = t.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('trunk_ips'))")
        .execute(&mut *holder)
        .await
        .unwrap();
    // The client gives up while the request waits, dropping its side of it.
    let gone = tokio::time::timeout(Duration::from_millis(500), t.app.clone().oneshot(send()));
    assert!(gone.await.is_err(), "the request should still be waiting");
    holder.commit().await.unwrap();

    // Its retry gets the answer of the request it started, not a claim stuck as running.
    let mut again = t.raw(send()).await;
    for _ in 0..50 {
        if again.code() != "IDEMPOTENCY_IN_PROGRESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        again = t.raw(send()).await;
    }
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM trunk_ips WHERE trunk_id = 'T-C1'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// `Authorization`'s scheme name is case-insensitive (RFC 9110 11.1): a client that
/// writes `bearer` or `BEARER` is authenticated like one that writes `Bearer`; another
/// scheme, or none before the token, is not.
#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case() {
    let t = TestApi::start().await;
    t.fixture().await;
    let with = |value: String| {
        Request::get("/api/v1/customers/C1")
            .header("authorization", value)
            .body(Body::empty())
            .unwrap()
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = t.raw(with(format!("{scheme} {ROOT}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}: {}", r.body);
    }
    for value in [
        format!("Basic {ROOT}"),
        format!("Bearer{ROOT}"),
        ROOT.to_string(),
    ] {
        let r = t.raw(with(value.clone())).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{value}: {}", r.body);
    }
}

#[tokio::test]
async fn infinite_cdr_timestamps_are_written_not_a_panic() {
    let t = TestApi::start().await;
    t.fixture().await;
    for (call, start) in [("early", "-infinity"), ("late", "infinity")] {
        add_cdr(&t, "C1", call, start, "LOCAL").await;
    }
    sqlx::query("UPDATE billing.rated_cdrs SET answer_stamp = '-infinity', end_stamp = 'infinity'")
        .execute(&t.pool)
        .await
        .unwrap();
    let key = t.key("read_only", Some("C1")).await;
    let r = t.get("/api/v1/customers/C1/cdrs", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stamps = cdr_fields(&r, ["start_stamp", "answer_stamp", "end_stamp"]);
    assert_eq!(
        stamps,
        [
            ["-infinity", "-infinity", "infinity"],
            ["infinity", "-infinity", "infinity"]
        ]
    );
    // A page ending on an infinite start: its cursor is made without a panic.
    let r = t.get("/api/v1/customers/C1/cdrs?limit=1", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(call_ids(&r), ["early"]);
}

/// A NaN amount stored before migration 0007 (`CHECK (customer_rate >= 0)` holds for
/// NaN, and 0007's checks are NOT VALID: older rows are not re-read) is shown as
/// PostgreSQL writes it, and the pages around it are still served.
#[tokio::test]
async fn a_nan_amount_is_written_not_a_server_fault() {
    let t = TestApi::start().await;
    t.fixture().await;
    for (call, at) in [
        ("before", "2026-03-01T00:00:00Z"),
        ("nan", "2026-03-02T00:00:00Z"),
    ] {
        add_cdr(&t, "C1", call, at, "LOCAL").await;
    }
    // Such a row, written as it was before 0007.
    sqlx::raw_sql(
        "ALTER TABLE billing.rated_cdrs DROP CONSTRAINT rated_cdrs_customer_rate_not_nan,
             DROP CONSTRAINT rated_cdrs_customer_charge_not_nan;
         UPDATE billing.rated_cdrs SET customer_rate = 'NaN', customer_charge = 'NaN'
         WHERE call_id = 'nan'",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    let key = t.key("read_only", Some("C1")).await;
    let r = t.get("/api/v1/customers/C1/cdrs", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let amounts = cdr_fields(&r, ["customer_rate", "customer_charge"]);
    assert_eq!(amounts, [["0.010000000", "0.011000"], ["NaN", "NaN"]]);
}
