//! User sessions: sign-in, 1-hour access JWTs, rotating 30-day refresh tokens,
//! disabling, and the same RBAC and tenancy as keys.

mod common;

use axum::http::StatusCode;
use common::{TestApi, ROOT};
use serde_json::json;
use warp_api::auth::jwt::{self, Claims};

const SECRET: &str = "jwt-secret-for-tests";

#[tokio::test]
async fn users_sign_in_refresh_and_are_disabled() {
    let t = TestApi::with(|k| (k == "WARP_JWT_SECRET").then(|| SECRET.into())).await;
    t.fixture().await;
    let user = t
        .make(
            "/api/v1/users",
            json!({"email": "ann@c1.example", "role": "customer_admin", "ban": "C1",
                   "password": "a long passphrase"}),
        )
        .await;
    assert!(user.get("password_hash").is_none());
    let bad = t
        .post(
            "/api/v1/auth/login",
            "",
            json!({"email": "ann@c1.example", "password": "nope"}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    let login = t
        .post(
            "/api/v1/auth/login",
            "",
            json!({"email": "ANN@c1.example", "password": "a long passphrase"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.data()["expires_in"], 3600);
    let access = login.data()["access_token"].as_str().unwrap().to_string();
    let refresh = login.data()["refresh_token"].as_str().unwrap().to_string();
    let claims = jwt::verify(SECRET.as_bytes(), &access, chrono::Utc::now().timestamp()).unwrap();
    assert_eq!(claims.exp - claims.iat, 3600);

    // The session acts as its user: own customer only, customer-admin rights.
    assert_eq!(
        t.get("/api/v1/customers/C1", &access).await.status,
        StatusCode::OK
    );
    assert_eq!(
        t.get("/api/v1/customers/C2", &access).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get("/api/v1/vendors", &access).await.status,
        StatusCode::FORBIDDEN
    );
    let r = t
        .post("/api/v1/trunks", &access, json!({"id": "T-ann"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (actor,): (String,) =
        sqlx::query_as("SELECT actor FROM audit_log WHERE entity_id = 'T-ann'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(actor, format!("user:{}", user["id"]));
    // A customer admin manages its own users, never staff.
    let r = t
        .post(
            "/api/v1/users",
            &access,
            json!({"email": "bob@c1.example", "role": "read_only", "password": "another passphrase"}),
        )
        .await;
    assert_eq!(
        (r.status, &r.data()["ban"]),
        (StatusCode::CREATED, &json!("C1"))
    );
    let r = t
        .post(
            "/api/v1/users",
            &access,
            json!({"email": "eve@x.example", "role": "support", "password": "another passphrase"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .post(
            "/api/v1/users",
            ROOT,
            json!({"email": "short@x.example", "role": "support", "password": "short"}),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "password")
    );

    // Refresh rotates: the old refresh token is spent.
    let r = t
        .post(
            "/api/v1/auth/refresh",
            "",
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let refresh2 = r.data()["refresh_token"].as_str().unwrap().to_string();
    let again = t
        .post(
            "/api/v1/auth/refresh",
            "",
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    // Expired and forged tokens are refused.
    let now = chrono::Utc::now().timestamp();
    let sub = user["id"].as_i64().unwrap();
    let expired = jwt::sign(
        SECRET.as_bytes(),
        &Claims {
            sub,
            iat: now - 7200,
            exp: now - 3600,
        },
    );
    assert_eq!(
        t.get("/api/v1/customers/C1", &expired).await.status,
        StatusCode::UNAUTHORIZED
    );
    let forged = jwt::sign(
        b"not the secret",
        &Claims {
            sub,
            iat: now,
            exp: now + 60,
        },
    );
    assert_eq!(
        t.get("/api/v1/customers/C1", &forged).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Disabling ends everything at once.
    let d = t
        .call("DELETE", &format!("/api/v1/users/{sub}"), ROOT, None)
        .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(
        t.get("/api/v1/customers/C1", &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = t
        .post(
            "/api/v1/auth/refresh",
            "",
            json!({"refresh_token": refresh2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .post(
            "/api/v1/auth/login",
            "",
            json!({"email": "ann@c1.example", "password": "a long passphrase"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Password guessing is bounded: an account gets 10 login attempts a minute, right or
/// wrong, wherever they come from.
#[tokio::test]
async fn login_attempts_are_limited_per_account() {
    let t = TestApi::with(|k| (k == "WARP_JWT_SECRET").then(|| SECRET.into())).await;
    t.fixture().await;
    t.make(
        "/api/v1/users",
        json!({"email": "bob@c1.example", "role": "read_only", "ban": "C1",
               "password": "a long passphrase"}),
    )
    .await;
    let attempt = |email: &str, password: &str| {
        t.post(
            "/api/v1/auth/login",
            "",
            json!({ "email": email, "password": password }),
        )
    };
    for _ in 0..10 {
        assert_eq!(
            attempt("bob@c1.example", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = attempt("BOB@c1.example", "a long passphrase").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
    );
    // An account differing only in case is the same account: refused, not a second
    // one whose row the login could pick instead.
    let r = t
        .post(
            "/api/v1/users",
            common::ROOT,
            json!({"email": "BOB@C1.example", "role": "super_admin", "password": "x long passphrase"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    // Another account is unaffected.
    assert_eq!(
        attempt("ann@c1.example", "nope").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Disabling a disabled user changes nothing: the same answer, no second audit row,
/// no second `users.disable` event (as revoking a revoked key).
#[tokio::test]
async fn disabling_a_disabled_user_again_is_no_change() {
    let t = TestApi::start().await;
    let user = t
        .make(
            "/api/v1/users",
            json!({"email": "sue@x.example", "role": "support", "password": "a long passphrase"}),
        )
        .await;
    let path = format!("/api/v1/users/{}", user["id"]);
    let first = t.call("DELETE", &path, ROOT, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let again = t.call("DELETE", &path, ROOT, None).await;
    assert_eq!((again.status, again.data()), (StatusCode::OK, first.data()));
    let (audited,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_log WHERE entity_type = 'users' AND action = 'disable'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}
