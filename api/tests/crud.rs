//! CRUD round trips for every resource, the audit trail, and bad inputs.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{TestApi, ROOT};
use md5::{Digest, Md5};
use serde_json::{json, Value};

/// (collection, create body, key field, patch body, a patched field and its new value)
fn cases() -> Vec<(
    &'static str,
    Value,
    &'static str,
    Value,
    &'static str,
    Value,
)> {
    vec![
        (
            "/api/v1/rate-plans",
            json!({"id": "wholesale"}),
            "id",
            json!({"description": "big"}),
            "description",
            json!("big"),
        ),
        (
            "/api/v1/customers",
            json!({"ban": "C9", "name": "Nine", "rate_plan": "retail",
            "contact_email": "ops@nine.example", "credit_limit": 250}),
            "ban",
            json!({"credit_limit": "99.95", "billing_model": "hybrid"}),
            "credit_limit",
            json!("99.95"),
        ),
        (
            "/api/v1/trunks",
            json!({"id": "T9", "ban": "C1", "auth_type": "IP_AND_CREDENTIALS"}),
            "id",
            json!({"max_concurrent": 40}),
            "max_concurrent",
            json!(40),
        ),
        (
            "/api/v1/trunks/T-C1/ips",
            json!({"addr": "198.51.100.0/24"}),
            "id",
            json!({"addr": "203.0.113.7"}),
            "addr",
            json!("203.0.113.7/32"),
        ),
        (
            "/api/v1/trunks/T-C1/credentials",
            json!({"username": "c1user", "realm": "warp",
            "password": "correct horse"}),
            "id",
            json!({"password": "battery staple"}),
            "username",
            json!("c1user"),
        ),
        (
            "/api/v1/numbers",
            json!({"e164": "(212) 555-0100", "ban": "C1", "status": "assigned"}),
            "e164",
            json!({"cnam": "ACME", "ban": "C2"}),
            "ban",
            json!("C2"),
        ),
        (
            "/api/v1/vendors",
            json!({"id": "V9", "name": "Nine", "kind": "LRN"}),
            "id",
            json!({"priority": 3, "indeterminate_zone": "INTERSTATE"}),
            "priority",
            json!(3),
        ),
        (
            "/api/v1/vendors/V1/gateways",
            json!({"priority": 2, "dialstring": "sip:{number}@b.example"}),
            "priority",
            json!({"dialstring": "sips:{number}@c.example"}),
            "dialstring",
            json!("sips:{number}@c.example"),
        ),
        (
            "/api/v1/rate-decks",
            json!({"rate_plan": "wholesale"}),
            "id",
            json!({"vendor_id": "V9", "rate_plan": null}),
            "vendor_id",
            json!("V9"),
        ),
        (
            "/api/v1/partitions",
            json!({"id": "P9", "name": "nine"}),
            "id",
            json!({"name": "renamed"}),
            "name",
            json!("renamed"),
        ),
        (
            "/api/v1/partitions/P1/routes",
            json!({"vendor_id": "V9", "position": 7}),
            "vendor_id",
            json!({"enabled": false}),
            "enabled",
            json!(false),
        ),
        (
            "/api/v1/customers/C1/partitions",
            json!({"partition_id": "P9", "priority": 2,
            "tz": "America/New_York", "days": 31, "start_minute": 480, "end_minute": 1080}),
            "id",
            json!({"priority": 5}),
            "priority",
            json!(5),
        ),
        (
            "/api/v1/overrides",
            json!({"ban": "C1", "prefix": "1212", "vendor_id": "V2",
            "valid_from": "2025-01-01T00:00:00Z"}),
            "id",
            json!({"prefix": "1213"}),
            "prefix",
            json!("1213"),
        ),
        (
            "/api/v1/exclusions",
            json!({"prefix": "53"}),
            "id",
            json!({"vendor_id": "V2"}),
            "vendor_id",
            json!("V2"),
        ),
        (
            "/api/v1/dno",
            json!({"number": "+1 (303) 555-0199"}),
            "number",
            json!({}),
            "number",
            json!("13035550199"),
        ),
    ]
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

async fn audit_rows(t: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

/// Webhook deliveries of changes (a debounced publish adds its own at any time).
async fn change_deliveries(t: &TestApi) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM api.webhook_deliveries
         WHERE event_type <> 'routing_snapshot.publish'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_resource_round_trips_and_every_change_is_audited() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/webhooks",
        json!({"url": "https://hooks.example/warp", "event_types": ["*"]}),
    )
    .await;
    let cases = cases();
    let mut created = Vec::new();
    for (path, body, key, patch, field, value) in &cases {
        let before = audit_rows(&t).await;
        let sent = change_deliveries(&t).await;
        let made = t.make(path, body.clone()).await;
        let id = id_text(&made[*key]);
        let item = format!("{path}/{id}");
        let got = t.get(&item, ROOT).await;
        assert_eq!(got.status, StatusCode::OK, "{item}: {}", got.body);
        assert_eq!(got.data(), &made, "{item}");
        let list = t.get(path, ROOT).await;
        assert!(
            list.data()
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r[*key] == made[*key]),
            "{path} lists {id}"
        );
        let p = t.call("PATCH", &item, ROOT, Some(patch.clone())).await;
        assert_eq!(p.status, StatusCode::OK, "{item}: {}", p.body);
        assert_eq!(&p.data()[*field], value, "{item}: {}", p.body);
        // A dno number has nothing to change but its key: its patch is `{}`.
        let changes = if patch == &json!({}) { 1 } else { 2 };
        let (audited, delivered) = (audit_rows(&t).await, change_deliveries(&t).await);
        assert_eq!(
            (audited, delivered),
            (before + changes, sent + changes),
            "{path}: create and update audited and delivered"
        );
        // Patches that change nothing: the row as it is, no audit row, no event.
        for same in [json!({}), patch.clone()] {
            let again = t.call("PATCH", &item, ROOT, Some(same.clone())).await;
            assert_eq!(
                again.status,
                StatusCode::OK,
                "{item} {same}: {}",
                again.body
            );
            assert_eq!(again.data(), p.data(), "{item} {same}");
        }
        assert_eq!(
            (audit_rows(&t).await, change_deliveries(&t).await),
            (audited, delivered),
            "{path}: an unchanged row is not audited or delivered"
        );
        created.push(item);
    }
    // The password never comes back, and Kamailio's ha1 is what was stored.
    let (ha1,): (String,) =
        sqlx::query_as("SELECT ha1 FROM trunk_credentials WHERE username = 'c1user'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(ha1, hex::encode(Md5::digest("c1user:warp:battery staple")));
    let (actor, origin): (String, String) =
        sqlx::query_as("SELECT actor, request_id FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(
        (actor.as_str(), origin.as_str()),
        ("bootstrap", "from local")
    );

    // Delete children before parents.
    for item in created.iter().rev() {
        let d = t.call("DELETE", item, ROOT, None).await;
        assert_eq!(d.status, StatusCode::OK, "{item}: {}", d.body);
        let gone = t.get(item, ROOT).await;
        assert_eq!(
            (gone.status, gone.code()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{item}"
        );
    }
}

#[tokio::test]
async fn lists_page_with_a_cursor_and_filter() {
    let t = TestApi::start().await;
    t.fixture().await;
    for i in 0..5 {
        t.make(
            "/api/v1/exclusions",
            json!({"ban": "C2", "prefix": format!("44{i}")}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut url = "/api/v1/exclusions?ban=C2&limit=2".to_string();
    loop {
        let r = t.get(&url, ROOT).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for x in r.data().as_array().unwrap() {
            seen.push(x["prefix"].as_str().unwrap().to_string());
        }
        match r.body["meta"]["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/exclusions?ban=C2&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["440", "441", "442", "443", "444"]);
    let r = t.get("/api/v1/exclusions?colour=blue", ROOT).await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::BAD_REQUEST, "INVALID_QUERY", "colour")
    );
    let r = t.get("/api/v1/exclusions?limit=0", ROOT).await;
    assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "limit"));
    let r = t.get("/api/v1/exclusions?cursor=%%%", ROOT).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Well-formed cursors that hold no key of the listing: not a number for a bigint
    // key, a number past a gateway's integer one.
    for (list, key) in [
        ("/api/v1/exclusions", "abc"),
        ("/api/v1/vendors/V1/gateways", "3000000000"),
    ] {
        let cursor = URL_SAFE_NO_PAD.encode(key);
        let r = t.get(&format!("{list}?cursor={cursor}"), ROOT).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::BAD_REQUEST, "INVALID_QUERY", "cursor"),
            "{list} after {key}: {}",
            r.body
        );
    }
}

/// (method, path, body, status, code, field)
type Bad = (
    &'static str,
    &'static str,
    Value,
    StatusCode,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn bad_inputs_get_the_documented_error_never_a_5xx() {
    let t = TestApi::start().await;
    t.fixture().await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: Vec<Bad> = vec![
        (
            "POST",
            "/api/v1/customers",
            json!({"name": "x", "rate_plan": "retail"}),
            unprocessable,
            "VALIDATION_ERROR",
            "ban",
        ),
        (
            "POST",
            "/api/v1/customers",
            json!({"ban": "X", "name": "x", "rate_plan": "retail", "max_results": "many"}),
            unprocessable,
            "VALIDATION_ERROR",
            "max_results",
        ),
        (
            "POST",
            "/api/v1/customers",
            json!({"ban": "X", "name": "x", "rate_plan": "retail", "colour": 1}),
            unprocessable,
            "VALIDATION_ERROR",
            "colour",
        ),
        (
            "POST",
            "/api/v1/customers",
            json!({"ban": "X", "name": "x", "rate_plan": "nope"}),
            unprocessable,
            "UNKNOWN_REFERENCE",
            "rate_plan",
        ),
        (
            "POST",
            "/api/v1/customers",
            json!({"ban": "X", "name": "x", "rate_plan": "retail", "billing_model": "barter"}),
            unprocessable,
            "VALIDATION_ERROR",
            "billing_model",
        ),
        (
            "POST",
            "/api/v1/customers",
            json!({"ban": "X", "name": "x", "rate_plan": "retail", "credit_limit": "-5"}),
            unprocessable,
            "VALIDATION_ERROR",
            "credit_limit",
        ),
        (
            "POST",
            "/api/v1/customers",
            json!({"ban": "X", "name": "x", "rate_plan": "retail", "credit_limit": "lots"}),
            unprocessable,
            "VALIDATION_ERROR",
            "credit_limit",
        ),
        (
            "POST",
            "/api/v1/customers",
            json!({"ban": "C1", "name": "dup", "rate_plan": "retail"}),
            StatusCode::CONFLICT,
            "CONFLICT",
            "ban",
        ),
        (
            "POST",
            "/api/v1/customers",
            json!([1, 2]),
            unprocessable,
            "VALIDATION_ERROR",
            "",
        ),
        (
            "POST",
            "/api/v1/numbers",
            json!({"e164": "12"}),
            unprocessable,
            "INVALID_PHONE_NUMBER",
            "e164",
        ),
        (
            "POST",
            "/api/v1/dno",
            json!({"number": "call me"}),
            unprocessable,
            "INVALID_PHONE_NUMBER",
            "number",
        ),
        (
            "POST",
            "/api/v1/trunks/T-C1/ips",
            json!({"addr": "300.1.1.1"}),
            unprocessable,
            "VALIDATION_ERROR",
            "addr",
        ),
        (
            "POST",
            "/api/v1/trunks/T-C1/credentials",
            json!({"username": "u", "password": "short"}),
            unprocessable,
            "VALIDATION_ERROR",
            "password",
        ),
        (
            "POST",
            "/api/v1/trunks/NOPE/ips",
            json!({"addr": "10.0.0.1"}),
            unprocessable,
            "UNKNOWN_REFERENCE",
            "trunk_id",
        ),
        (
            "POST",
            "/api/v1/overrides",
            json!({"prefix": "12a", "vendor_id": "V1"}),
            unprocessable,
            "VALIDATION_ERROR",
            "prefix",
        ),
        (
            "POST",
            "/api/v1/overrides",
            json!({"prefix": "1", "vendor_id": "V1", "tz": "Mars/Base", "days": 1,
            "start_minute": 0, "end_minute": 60}),
            unprocessable,
            "VALIDATION_ERROR",
            "tz",
        ),
        (
            "POST",
            "/api/v1/overrides",
            json!({"prefix": "1", "vendor_id": "V1", "tz": "UTC", "days": 1,
            "start_minute": 1440, "end_minute": 1440}),
            unprocessable,
            "VALIDATION_ERROR",
            "start_minute",
        ),
        (
            "POST",
            "/api/v1/vendors",
            json!({"id": "VX", "name": "x", "kind": "CHEAP"}),
            unprocessable,
            "VALIDATION_ERROR",
            "kind",
        ),
        (
            "POST",
            "/api/v1/vendors/V1/gateways",
            json!({"priority": 1, "dialstring": "sip:dup@x"}),
            StatusCode::CONFLICT,
            "CONFLICT",
            "vendor_id, priority",
        ),
        (
            "POST",
            "/api/v1/vendors/V1/gateways",
            json!({"priority": 5, "dialstring": "http://x"}),
            unprocessable,
            "VALIDATION_ERROR",
            "dialstring",
        ),
        (
            // It would end the Request-URI and add a header of its own.
            "POST",
            "/api/v1/vendors/V1/gateways",
            json!({"priority": 5, "dialstring": "sip:{number}@gw\r\nX-Evil: 1"}),
            unprocessable,
            "VALIDATION_ERROR",
            "dialstring",
        ),
        (
            // A tab would split the call records the id travels in.
            "POST",
            "/api/v1/vendors",
            json!({"id": "V\t2", "name": "x", "kind": "LRN"}),
            unprocessable,
            "VALIDATION_ERROR",
            "id",
        ),
        (
            "POST",
            "/api/v1/trunks",
            json!({"id": "T".repeat(129), "ban": "C1"}),
            unprocessable,
            "VALIDATION_ERROR",
            "id",
        ),
        (
            "PATCH",
            "/api/v1/customers/C1",
            json!({"ban": "C7"}),
            unprocessable,
            "VALIDATION_ERROR",
            "ban",
        ),
        (
            "PATCH",
            "/api/v1/customers/C1",
            json!({"max_results": 1000}),
            unprocessable,
            "VALIDATION_ERROR",
            "max_results",
        ),
        (
            "PATCH",
            "/api/v1/customers/NOPE",
            json!({"name": "x"}),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "",
        ),
        (
            "GET",
            "/api/v1/overrides/abc",
            Value::Null,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "",
        ),
        (
            "GET",
            "/api/v1/overrides/999999",
            Value::Null,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "",
        ),
        (
            "GET",
            "/api/v1/rate-decks/x/rows",
            Value::Null,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "",
        ),
        (
            "DELETE",
            "/api/v1/rate-plans/retail",
            Value::Null,
            StatusCode::CONFLICT,
            "CONFLICT",
            "id",
        ),
        (
            "GET",
            "/api/v1/nothing-here",
            Value::Null,
            StatusCode::NOT_FOUND,
            "ROUTE_NOT_FOUND",
            "",
        ),
        (
            "PUT",
            "/api/v1/customers",
            Value::Null,
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "",
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let body = (!body.is_null()).then_some(body.clone());
        let r = t.call(method, path, ROOT, body.clone()).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (status, code, field),
            "{method} {path} {body:?}: {}",
            r.body
        );
        assert_eq!(r.body["success"], false);
    }
    // A deck row keyed the way its vendor does not price.
    t.make(
        "/api/v1/vendors",
        json!({"id": "VO", "name": "ocn", "kind": "OCN_LATA"}),
    )
    .await;
    let deck = t
        .make("/api/v1/rate-decks", json!({"vendor_id": "VO"}))
        .await;
    let rows = format!("/api/v1/rate-decks/{}/rows", deck["id"]);
    let r = t
        .post(&rows, ROOT, json!({"prefix": "1212", "effective_from": "2025-01-01T00:00:00Z", "interstate": "0.01"}))
        .await;
    assert_eq!(
        (r.status, r.field()),
        (unprocessable, "prefix"),
        "{}",
        r.body
    );
    let r = t
        .post(&rows, ROOT, json!({"ocn": "1234", "lata": 132, "effective_from": "2025-01-01T00:00:00Z", "interstate": "0.01"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Not JSON at all: 400 MALFORMED_JSON.
    for raw in ["{", "{\"ban\": }", "nonsense", ""] {
        let req = Request::post("/api/v1/customers")
            .header("authorization", format!("Bearer {ROOT}"))
            .header("content-type", "application/json")
            .body(Body::from(raw))
            .unwrap();
        let r = t.raw(req).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "MALFORMED_JSON"),
            "{raw:?}"
        );
    }
}

/// The DNO table has no unique constraint: a number sent again (in any form, even at
/// the same time) is a conflict, not a second row that lists one number twice.
#[tokio::test]
async fn a_dno_number_is_listed_once() {
    let t = TestApi::start().await;
    let forms = [
        "+13035550100",
        "13035550100",
        "(303) 555-0100",
        "3035550100",
    ];
    let replies = futures_util::future::join_all(
        forms.map(|n| t.post("/api/v1/dno", ROOT, json!({ "number": n }))),
    )
    .await;
    let mut outcomes: Vec<_> = replies.iter().map(|r| (r.status, r.field())).collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            (StatusCode::CREATED, ""),
            (StatusCode::CONFLICT, "number"),
            (StatusCode::CONFLICT, "number"),
            (StatusCode::CONFLICT, "number"),
        ],
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let list = t.get("/api/v1/dno", ROOT).await;
    assert_eq!(list.data(), &json!([{"number": "13035550100"}]));
}

/// A customer whose numbers are assigned is still in use: its delete is a 409 naming
/// the first, not a 422 on a `check` field the request never sent; nothing is deleted.
/// Once the number is released, the delete goes through.
#[tokio::test]
async fn a_customer_with_assigned_numbers_is_not_deleted() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/numbers",
        json!({"e164": "+13035550100", "ban": "C2", "trunk_id": "T-C2", "status": "assigned"}),
    )
    .await;
    let r = t.call("DELETE", "/api/v1/customers/C2", ROOT, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "CONFLICT"),
        "{}",
        r.body
    );
    assert!(r.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("13035550100"));
    assert_eq!(
        t.get("/api/v1/trunks/T-C2", ROOT).await.status,
        StatusCode::OK
    );
    let r = t
        .call(
            "PATCH",
            "/api/v1/numbers/13035550100",
            ROOT,
            Some(json!({"status": "aging"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = t.call("DELETE", "/api/v1/customers/C2", ROOT, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let n = t.get("/api/v1/numbers/13035550100", ROOT).await;
    assert_eq!(
        (&n.data()["ban"], &n.data()["status"]),
        (&Value::Null, &json!("aging"))
    );
}

/// A number of the customer's being assigned while the customer is deleted: the delete
/// waits for it and is the same 409, counting it, not a 422 from the schema's check.
#[tokio::test]
async fn a_customer_whose_number_is_being_assigned_is_not_deleted() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/numbers",
        json!({"e164": "13035550101", "ban": "C2", "status": "reserved"}),
    )
    .await;
    let mut assigning = t.pool.begin().await.unwrap();
    sqlx::query("UPDATE numbers SET status = 'assigned' WHERE e164 = '13035550101'")
        .execute(&mut *assigning)
        .await
        .unwrap();
    let delete = t.call("DELETE", "/api/v1/customers/C2", ROOT, None);
    let commit = async {
        t.until_waiters(1).await;
        assigning.commit().await.unwrap();
    };
    let (r, ()) = tokio::join!(delete, commit);
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "CONFLICT"),
        "{}",
        r.body
    );
    let message = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("1 number(s) are assigned to this customer (first: 13035550101)"),
        "{message}"
    );
    assert_eq!(
        t.get("/api/v1/customers/C2", ROOT).await.status,
        StatusCode::OK
    );
}

/// An integer key may be spelt `01` or `+1` in a path; the audit row (and so the
/// audit-log filter and the webhook event) names the row by its key as answered.
#[tokio::test]
async fn changes_are_audited_under_the_rows_key_however_the_path_spells_it() {
    let t = TestApi::start().await;
    t.fixture().await;
    let made = t.make("/api/v1/exclusions", json!({"prefix": "53"})).await;
    let id = made["id"].to_string();
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/v1/exclusions/0{id}"),
            Some(json!({"prefix": "54"})),
        ),
        ("DELETE", format!("/api/v1/exclusions/+{id}"), None),
    ] {
        let r = t.call(method, &path, ROOT, body).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT entity_id FROM audit_log WHERE entity_type = 'exclusions' ORDER BY id",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(ids, [id.clone(), id.clone(), id.clone()]);
    let r = t
        .get(
            &format!("/api/v1/audit-log?entity_type=exclusions&entity_id={id}"),
            ROOT,
        )
        .await;
    assert_eq!(r.data().as_array().unwrap().len(), 3, "{}", r.body);
}

/// A trunk credential's realm and its stored ha1 (what the edge checks), by username.
async fn credential(t: &TestApi, user: &str) -> (String, String) {
    sqlx::query_as("SELECT realm, ha1 FROM trunk_credentials WHERE username = $1")
        .bind(user)
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

fn ha1(user: &str, realm: &str, password: &str) -> String {
    hex::encode(Md5::digest(format!("{user}:{realm}:{password}")))
}

/// A credential given no realm is stored in the edge's (WARP_SIP_REALM, the shipped
/// config's AUTH_REALM "warp" by default), its ha1 computed in it: in realm '' it could
/// never answer the edge's challenge.
#[tokio::test]
async fn a_credential_without_a_realm_gets_the_edges() {
    let t = TestApi::start().await;
    t.fixture().await;
    let path = "/api/v1/trunks/T-C1/credentials";
    let made = t
        .make(
            path,
            json!({"username": "pbx1", "password": "correct horse"}),
        )
        .await;
    assert_eq!(made["realm"], "warp");
    assert_eq!(
        credential(&t, "pbx1").await,
        ("warp".into(), ha1("pbx1", "warp", "correct horse"))
    );
    let t = TestApi::with(|k| (k == "WARP_SIP_REALM").then(|| "edge.example".into())).await;
    t.fixture().await;
    let made = t
        .make(
            path,
            json!({"username": "pbx2", "realm": null, "password": "correct horse"}),
        )
        .await;
    assert_eq!(made["realm"], "edge.example");
    assert_eq!(
        credential(&t, "pbx2").await.1,
        ha1("pbx2", "edge.example", "correct horse")
    );
    // An empty realm, given, is no realm the edge challenges in.
    let r = t
        .post(
            path,
            ROOT,
            json!({"username": "pbx3", "realm": "", "password": "correct horse"}),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "realm"),
        "{}",
        r.body
    );
}

/// A digest carries the username and realm in quoted strings: with a quote or a
/// backslash, no edge could ever be offered them as given, so the 201 would hide a
/// credential that can never authenticate. An `@` is fine: the edge looks it up whole.
#[tokio::test]
async fn a_credential_a_digest_cannot_carry_is_refused() {
    let t = TestApi::start().await;
    t.fixture().await;
    let path = "/api/v1/trunks/T-C1/credentials";
    for (username, realm, field) in [
        ("pbx\"1", "warp", "username"),
        ("pbx\\1", "warp", "username"),
        ("pbx1", "we\\rd", "realm"),
    ] {
        let body = json!({"username": username, "realm": realm, "password": "correct horse"});
        let r = t.post(path, ROOT, body).await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, field),
            "{username} {realm}: {}",
            r.body
        );
    }
    let made = t
        .make(
            path,
            json!({"username": "pbx@edge.example", "password": "correct horse"}),
        )
        .await;
    let item = format!("{path}/{}", made["id"]);
    let r = t
        .call(
            "PATCH",
            &item,
            ROOT,
            Some(json!({"username": "pbx\"2", "password": "correct horse"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "username"),
        "{}",
        r.body
    );
}

/// The password is kept only as ha1 = md5(username:realm:password): a new username or
/// realm without it is refused (its ha1 would stay the old pair's and match neither);
/// with it, ha1 is computed anew. A new password alone keeps the stored realm.
#[tokio::test]
async fn a_credentials_username_or_realm_changes_only_with_its_password() {
    let t = TestApi::start().await;
    t.fixture().await;
    let made = t
        .make(
            "/api/v1/trunks/T-C1/credentials",
            json!({"username": "pbx1", "password": "correct horse"}),
        )
        .await;
    let item = format!("/api/v1/trunks/T-C1/credentials/{}", made["id"]);
    let stored = credential(&t, "pbx1").await;
    for patch in [json!({"username": "pbx9"}), json!({"realm": "other"})] {
        let r = t.call("PATCH", &item, ROOT, Some(patch.clone())).await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "password"),
            "{patch}: {}",
            r.body
        );
        assert_eq!(credential(&t, "pbx1").await, stored, "{patch}");
    }
    let r = t
        .call(
            "PATCH",
            &item,
            ROOT,
            Some(json!({"username": "pbx9", "realm": "other", "password": "new password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        credential(&t, "pbx9").await,
        ("other".into(), ha1("pbx9", "other", "new password"))
    );
    let r = t
        .call(
            "PATCH",
            &item,
            ROOT,
            Some(json!({"password": "third password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        credential(&t, "pbx9").await,
        ("other".into(), ha1("pbx9", "other", "third password"))
    );
}

/// A credential belongs to the trunk it was made on: naming another trunk in a PATCH,
/// or reaching it through another trunk's path, is refused and leaves its trunk and ha1
/// as they were. Moved, its password would let whoever knew it call as the other
/// trunk, perhaps another customer's (the import clears the ha1 of a moved username).
#[tokio::test]
async fn a_credential_stays_on_the_trunk_it_was_made_on() {
    let t = TestApi::start().await;
    t.fixture().await;
    let made = t
        .make(
            "/api/v1/trunks/T-C1/credentials",
            json!({"username": "pbx1", "password": "correct horse"}),
        )
        .await;
    let owner = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT trunk_id, ha1 FROM trunk_credentials WHERE username = 'pbx1'",
        )
        .fetch_one(&t.pool)
        .await
        .unwrap()
    };
    let stored = owner().await;
    assert_eq!(stored.0, "T-C1");
    let own = format!("/api/v1/trunks/T-C1/credentials/{}", made["id"]);
    let other = format!("/api/v1/trunks/T-C2/credentials/{}", made["id"]);
    let r = t
        .call(
            "PATCH",
            &own,
            ROOT,
            Some(json!({"trunk_id": "T-C2", "password": "correct horse"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "trunk_id"),
        "{}",
        r.body
    );
    assert_eq!(owner().await, stored);
    let password = json!({"password": "another password"});
    let r = t.call("PATCH", &other, ROOT, Some(password)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(owner().await, stored);
    let r = t.call("DELETE", &other, ROOT, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(owner().await, stored);
}

/// `warp import` stores a credential's username and trunk only (realm '', no ha1). Its
/// password, set through the API, needs a realm too: in '' its ha1 would answer no
/// challenge, and the 200 would hide that.
#[tokio::test]
async fn an_imported_credential_gets_its_password_with_a_realm() {
    let t = TestApi::start().await;
    t.fixture().await;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO trunk_credentials (trunk_id, username) VALUES ('T-C1', 'imported') \
         RETURNING id",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    let item = format!("/api/v1/trunks/T-C1/credentials/{id}");
    let password = json!({"password": "correct horse"});
    let r = t.call("PATCH", &item, ROOT, Some(password)).await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "realm"),
        "{}",
        r.body
    );
    let with_realm = json!({"password": "correct horse", "realm": null});
    let r = t.call("PATCH", &item, ROOT, Some(with_realm)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        credential(&t, "imported").await,
        ("warp".into(), ha1("imported", "warp", "correct horse"))
    );
}

/// A trunk keeps its in-dialog keepalives unless it is told otherwise; the field is
/// created, patched and read like the others, a value that is no boolean is a 422
/// naming it, and the snapshot a SIP node maps carries what was last written.
#[tokio::test]
async fn a_trunks_keepalive_is_created_patched_read_and_published() {
    let t = TestApi::start().await;
    t.fixture().await;
    let made = json!({"id": "T-PBX", "ban": "C1", "keepalive": false});
    let published =
        |node: &warp_core::Snapshot, id: &str| node.trunk_by_id(id).map(|t| t.keepalive);
    keepalive_is_created_patched_read_and_published(&t, "trunks", "T-C1", made, published).await;
}

/// A vendor keeps its in-dialog keepalives unless it is told otherwise, as a trunk does.
#[tokio::test]
async fn a_vendors_keepalive_is_created_patched_read_and_published() {
    let t = TestApi::start().await;
    t.fixture().await;
    let made = json!({"id": "V-QUIET", "name": "Quiet", "kind": "DNIS", "keepalive": false});
    let published =
        |node: &warp_core::Snapshot, id: &str| node.vendor_by_id(id).map(|v| v.keepalive);
    keepalive_is_created_patched_read_and_published(&t, "vendors", "V1", made, published).await;
}

/// `existing` (made without a keepalive) has one; `made` (its id `keepalive` false) is
/// created without; both are patched to the other value; a value that is no boolean
/// is a 422 naming the field and changes nothing; `published` reads an id's keepalive
/// from the snapshot after each publish.
async fn keepalive_is_created_patched_read_and_published(
    t: &TestApi,
    collection: &str,
    existing: &str,
    made: Value,
    published: impl Fn(&warp_core::Snapshot, &str) -> Option<bool>,
) {
    let path = |id: &str| format!("/api/v1/{collection}/{id}");
    let keepalive = |id: String| async move { t.get(&id, ROOT).await.data()["keepalive"].clone() };
    assert_eq!(keepalive(path(existing)).await, true);
    let made = t.make(&format!("/api/v1/{collection}"), made).await;
    assert_eq!(made["keepalive"], false);
    let new = made["id"].as_str().unwrap().to_owned();
    let both = || {
        let node = warp_core::Snapshot::open(&t.dir.path().join("routing.snap")).unwrap();
        (published(&node, &new), published(&node, existing))
    };
    t.publish().await;
    assert_eq!(both(), (Some(false), Some(true)));

    let patch = |id: &str, body: Value| {
        let path = path(id);
        async move { t.call("PATCH", &path, ROOT, Some(body)).await }
    };
    let r = patch(existing, json!({"keepalive": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = patch(&new, json!({"keepalive": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(keepalive(path(&new)).await, true);
    assert_eq!(keepalive(path(existing)).await, false);
    t.publish().await;
    assert_eq!(both(), (Some(true), Some(false)));

    // The column is NOT NULL: null is a missing value.
    let bad = [
        (json!("sometimes"), "VALIDATION_ERROR"),
        (json!(1), "VALIDATION_ERROR"),
        (Value::Null, "MISSING_FIELD"),
    ];
    for (bad, code) in bad {
        let r = patch(existing, json!({ "keepalive": bad })).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, code, "keepalive"),
            "{bad}: {}",
            r.body
        );
    }
    assert_eq!(keepalive(path(existing)).await, false);
}
