//! Money is decimal end to end: an amount sent as a JSON number or string is stored
//! and answered digit for digit, and one the schema would round is refused.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Reply, TestApi, ROOT};

/// POSTs `body` as written: a JSON number must reach the API as its own digits.
async fn post_text(t: &TestApi, path: &str, body: &str) -> Reply {
    let req = Request::post(path)
        .header("authorization", format!("Bearer {ROOT}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    t.raw(req).await
}

async fn deck(t: &TestApi) -> i64 {
    let r = t.get("/api/v1/rate-decks?vendor_id=V1", ROOT).await;
    r.data()[0]["id"].as_i64().unwrap()
}

/// An amount with more digits than an f64 holds (18 significant, 9 places).
const LONG: &str = "123456789.123456789";

#[tokio::test]
async fn json_numbers_keep_every_digit() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck(&t).await;

    let row = format!(
        r#"{{"prefix": "1303", "effective_from": "2020-01-01T00:00:00Z", "interstate": {LONG}}}"#
    );
    let r = post_text(&t, &format!("/api/v1/rate-decks/{deck}/rows"), &row).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.data()["interstate"], LONG, "{}", r.body);

    let upload = format!(
        r#"{{"rows": [{{"prefix": "1720", "effective_from": "2020-01-01", "interstate": {LONG}}}]}}"#
    );
    let r = post_text(&t, &format!("/api/v1/rate-decks/{deck}/upload"), &upload).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stored: String = sqlx::query_scalar(
        "SELECT interstate::text FROM rate_rows WHERE deck_id = $1 AND prefix = '1720'",
    )
    .bind(deck)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(stored, LONG);

    let customer =
        format!(r#"{{"ban": "C7", "name": "Seven", "rate_plan": "retail", "rate_limit": {LONG}}}"#);
    let r = post_text(&t, "/api/v1/customers", &customer).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.data()["rate_limit"], LONG, "{}", r.body);
}

#[tokio::test]
async fn amounts_the_schema_would_round_are_refused() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck(&t).await;
    let rows = format!("/api/v1/rate-decks/{deck}/rows");

    // Ten places: numeric(18, 9) would store 0.000000002 and bill that.
    let row = r#"{"prefix": "1303", "effective_from": "2020-01-01T00:00:00Z",
                  "interstate": "0.0000000015"}"#;
    let r = post_text(&t, &rows, row).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.field(), "interstate", "{}", r.body);
    let row = r#"{"prefix": "1303", "effective_from": "2020-01-01T00:00:00Z",
                  "connect_fee": 0.0000000001}"#;
    let r = post_text(&t, &rows, row).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.field(), "connect_fee", "{}", r.body);

    // Three places: numeric(14, 2) would store 10.01.
    let customer = r#"{"ban": "C7", "name": "Seven", "rate_plan": "retail",
                       "credit_limit": "10.005"}"#;
    let r = post_text(&t, "/api/v1/customers", customer).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.field(), "credit_limit", "{}", r.body);
    let r = t
        .call(
            "PATCH",
            "/api/v1/customers/C1",
            ROOT,
            Some(serde_json::json!({"min_margin": "0.0000000001"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.field(), "min_margin", "{}", r.body);

    // Trailing zeros are no extra precision.
    let customer = r#"{"ban": "C7", "name": "Seven", "rate_plan": "retail",
                       "credit_limit": "10.5000"}"#;
    let r = post_text(&t, "/api/v1/customers", customer).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.data()["credit_limit"], "10.50", "{}", r.body);
}
