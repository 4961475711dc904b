//! Whole rate-deck uploads: validated by warp-core's reader, refused whole with every
//! bad line listed, overlapping effective dates refused.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{vendors, Reply, TestApi, ROOT};
use serde_json::json;

async fn deck_of(t: &TestApi, vendor: &str) -> i64 {
    let r = t
        .get(&format!("/api/v1/rate-decks?vendor_id={vendor}"), ROOT)
        .await;
    r.data()[0]["id"].as_i64().unwrap()
}

async fn upload_csv(t: &TestApi, deck: i64, query: &str, csv: &str) -> Reply {
    upload_as(t, deck, query, "text/csv", csv).await
}

async fn upload_as(t: &TestApi, deck: i64, query: &str, content_type: &str, body: &str) -> Reply {
    let req = Request::post(format!("/api/v1/rate-decks/{deck}/upload{query}"))
        .header("authorization", format!("Bearer {ROOT}"))
        .header("content-type", content_type)
        .body(Body::from(body.to_string()))
        .unwrap();
    t.raw(req).await
}

async fn row_count(t: &TestApi, deck: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rate_rows WHERE deck_id = $1")
        .bind(deck)
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_csv_deck_with_bad_rows_is_refused_whole_with_every_line_named() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    let csv = "prefix,effective_from,interstate,intrastate\n\
               1212,2026-01-01,0.001,0.001\n\
               12x3,2026-01-01,0.001,0.001\n\
               1214,someday,0.001,0.001\n\
               1215,2026-01-01,cheap,0.001\n\
               1216,2026-01-01,0.002,0.002\n";
    let r = upload_csv(&t, deck, "", csv).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["line 3", "line 4", "line 5"], "{}", r.body);
    assert!(r.body["errors"][1]["message"]
        .as_str()
        .unwrap()
        .contains("effective_from"));
    assert_eq!(row_count(&t, deck).await, 1, "nothing half-imported");

    let good = "prefix,effective_from,effective_to,interstate,intrastate\n\
                1212,2026-01-01,2026-06-01,0.001,0.001\n\
                1212,2026-06-01,,0.002,0.002\n";
    let r = upload_csv(&t, deck, "?mode=replace", good).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["rows"], 2);
    assert_eq!(r.data()["replaced"], 1);
    assert_eq!(row_count(&t, deck).await, 2);
}

#[tokio::test]
async fn overlapping_effective_dates_are_refused_in_the_deck_and_against_stored_rows() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    let overlapping = json!({"rows": [
        {"prefix": "1303", "effective_from": "2026-01-01", "effective_to": "2026-03-01", "interstate": 0.001},
        {"prefix": "1303", "effective_from": "2026-02-01", "interstate": 0.002},
        {"prefix": "1304", "effective_from": "2026-02-01", "interstate": 0.002}
    ]});
    let r = t
        .post(
            &format!("/api/v1/rate-decks/{deck}/upload"),
            ROOT,
            overlapping,
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "RATE_OVERLAP", "rows[1]"),
        "{}",
        r.body
    );
    // The fixture's row for prefix 1 runs from 2020 with no end: a new open row clashes.
    let r = t
        .post(
            &format!("/api/v1/rate-decks/{deck}/upload"),
            ROOT,
            json!({"effective_date": "2027-01-01", "rows": [{"prefix": "1", "interstate": "0.003"}]}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "RATE_OVERLAP"),
        "{}",
        r.body
    );
    let r = t
        .post(
            &format!("/api/v1/rate-decks/{deck}/rows"),
            ROOT,
            json!({"prefix": "1", "effective_from": "2030-01-01T00:00:00Z", "interstate": "0.1"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "RATE_OVERLAP")
    );
    assert_eq!(row_count(&t, deck).await, 1);
}

#[tokio::test]
async fn a_json_deck_names_bad_rows_by_index_and_a_good_one_routes_after_publish() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V2").await;
    let bad = json!({"rows": [
        {"prefix": "1212", "effective_from": "2020-01-01", "interstate": "0.001"},
        {"prefix": "1212", "effective_from": "2020-01-01", "colour": "red"},
        {"prefix": "1213", "effective_from": "2020-01-01", "interstate": true},
        {"prefix": "1214", "effective_from": "2020-01-01"}
    ]});
    let r = t
        .post(&format!("/api/v1/rate-decks/{deck}/upload"), ROOT, bad)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["rows[1].colour", "rows[2].interstate"],
        "{}",
        r.body
    );
    let r = t
        .post(
            &format!("/api/v1/rate-decks/{deck}/upload"),
            ROOT,
            json!({"rows": [{"prefix": "1214", "effective_from": "2020-01-01"}]}),
        )
        .await;
    assert_eq!(
        (r.code(), r.field()),
        ("INVALID_ROW", "rows[0]"),
        "{}",
        r.body
    );

    // V2 gets a cheaper, more specific row for 1212: it wins after publishing.
    let r = t
        .post(
            &format!("/api/v1/rate-decks/{deck}/upload"),
            ROOT,
            json!({"effective_date": "2020-01-01T00:00:00Z", "rows": [
                {"prefix": "1212", "interstate": 0.001, "intrastate": 0.001, "local": 0.001,
                 "zone1": 0.001, "tollfree": 0.001, "international": 0.001}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    t.publish().await;
    let s = t.simulate("C1", "+12125556789").await;
    assert_eq!(vendors(&s), ["V2", "V1"], "{}", s.body);
    assert_eq!(
        s.data()["decision"]["routes"][0]["vendor_rate"],
        json!("0.001")
    );
    // Unknown deck, non-numeric deck id.
    let r = upload_csv(&t, 999_999, "", "prefix\n1\n").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .post("/api/v1/rate-decks/abc/upload", ROOT, json!({"rows": []}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_overlapping_writes_to_one_deck_let_exactly_one_in() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    let rows = format!("/api/v1/rate-decks/{deck}/rows");
    // Open-ended rows of one key a day apart: any two overlap.
    let posts = (1..=6).map(|d| {
        let row = json!({"prefix": "1404", "effective_from": format!("2026-01-0{d}T00:00:00Z"),
                         "interstate": "0.01"});
        t.post(&rows, ROOT, row)
    });
    let csvs: Vec<String> = (1..=6)
        .map(|d| format!("prefix,effective_from,interstate\n1505,2026-02-0{d},0.01\n"))
        .collect();
    let uploads = csvs.iter().map(|csv| upload_csv(&t, deck, "", csv));
    let (posts, uploads) = futures_util::future::join(
        futures_util::future::join_all(posts),
        futures_util::future::join_all(uploads),
    )
    .await;
    for (replies, ok, field) in [
        (posts, StatusCode::CREATED, "effective_from"),
        (uploads, StatusCode::OK, "line 2"),
    ] {
        let won = replies.iter().filter(|r| r.status == ok).count();
        assert_eq!(
            won,
            1,
            "{:?}",
            replies.iter().map(|r| &r.body).collect::<Vec<_>>()
        );
        for r in replies.iter().filter(|r| r.status != ok) {
            assert_eq!(
                (r.status, r.code(), r.field()),
                (StatusCode::UNPROCESSABLE_ENTITY, "RATE_OVERLAP", field),
                "{}",
                r.body
            );
        }
    }
    assert_eq!(row_count(&t, deck).await, 3);
}

#[tokio::test]
async fn a_row_may_change_but_not_to_overlap_its_neighbour() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    let rows = format!("/api/v1/rate-decks/{deck}/rows");
    let first = t
        .make(
            &rows,
            json!({"prefix": "1606", "effective_from": "2026-01-01T00:00:00Z",
                   "effective_to": "2026-02-01T00:00:00Z", "interstate": "0.01"}),
        )
        .await;
    t.make(
        &rows,
        json!({"prefix": "1606", "effective_from": "2026-02-01T00:00:00Z", "interstate": "0.02"}),
    )
    .await;
    let item = format!("{rows}/{}", first["id"]);
    let r = t
        .call("PATCH", &item, ROOT, Some(json!({"interstate": "0.015"})))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "its own stored row is no clash: {}",
        r.body
    );
    let r = t
        .call(
            "PATCH",
            &item,
            ROOT,
            Some(json!({"effective_to": "2026-03-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "RATE_OVERLAP",
            "effective_from"
        ),
        "{}",
        r.body
    );
    // An appended deck that reaches into a stored row is named by its line.
    let r = upload_csv(
        &t,
        deck,
        "",
        "prefix,effective_from,effective_to,interstate\n1607,2026-01-01,,0.01\n1606,2025-12-01,2026-01-02,0.01\n",
    )
    .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "RATE_OVERLAP", "line 3"),
        "{}",
        r.body
    );
    assert_eq!(row_count(&t, deck).await, 3);
}

/// A column named twice in a CSV header is refused, not read from its last copy: the
/// rate (or the deck's owner) imported would be a guess between two values.
#[tokio::test]
async fn a_csv_column_named_twice_is_refused() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    for (csv, column) in [
        (
            "prefix,effective_from,interstate,interstate\n1302,2026-01-01,0.1,0.2\n",
            "interstate",
        ),
        (
            "vendor_id,prefix,effective_from,interstate,vendor_id\nV2,1306,2026-01-01,0.3,V1\n",
            "vendor_id",
        ),
    ] {
        let r = upload_csv(&t, deck, "", csv).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", column),
            "{csv}: {}",
            r.body
        );
    }
    assert_eq!(row_count(&t, deck).await, 1, "nothing imported");
}

/// An empty CSV body is no deck: refused, so a `replace` sent by a client that failed to
/// read its file does not empty the deck. A header alone still empties it on purpose.
#[tokio::test]
async fn an_empty_csv_body_replaces_nothing() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    for body in ["", "\u{feff}"] {
        let r = upload_csv(&t, deck, "?mode=replace", body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "BAD_CSV"),
            "{body:?}: {}",
            r.body
        );
        assert_eq!(row_count(&t, deck).await, 1, "the deck keeps its row");
    }
    let r = upload_csv(
        &t,
        deck,
        "?mode=replace",
        "prefix,effective_from,interstate\n",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(row_count(&t, deck).await, 0);
}

/// Deck rows are keyed as their vendor prices (OCN_LATA by ocn and lata, others by
/// prefix): a vendor's kind or a deck's owner may not change so that the stored rows
/// no longer fit, or the vendor would silently drop out of routing. An upload parsed
/// for one kind is refused if the kind changed before it got the deck's lock.
#[tokio::test]
async fn a_deck_keeps_an_owner_that_can_price_its_rows() {
    let t = TestApi::start().await;
    t.fixture().await;
    let v1_deck = deck_of(&t, "V1").await;
    let r = t
        .call(
            "PATCH",
            "/api/v1/vendors/V1",
            ROOT,
            Some(json!({"kind": "OCN_LATA"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::CONFLICT, "CONFLICT", "kind"),
        "{}",
        r.body
    );
    assert_eq!(
        t.get("/api/v1/vendors/V1", ROOT).await.data()["kind"],
        "DNIS"
    );
    t.publish().await;
    assert_eq!(
        vendors(&t.simulate("C1", "+12125550100").await),
        ["V1", "V2"]
    );

    // A deck moved to an OCN_LATA vendor (V3, deckless) or between prefix kinds.
    for (v, kind) in [("V3", "OCN_LATA"), ("V4", "LRN")] {
        t.make("/api/v1/vendors", json!({"id": v, "name": v, "kind": kind}))
            .await;
    }
    let deck = format!("/api/v1/rate-decks/{v1_deck}");
    let r = t
        .call("PATCH", &deck, ROOT, Some(json!({"vendor_id": "V3"})))
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::CONFLICT, "CONFLICT", "vendor_id"),
        "{}",
        r.body
    );
    let r = t
        .call("PATCH", &deck, ROOT, Some(json!({"vendor_id": "V4"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // An empty deck's vendor changes kind while a prefix deck for it is uploaded.
    let v3_deck = t
        .make("/api/v1/rate-decks", json!({"vendor_id": "V3"}))
        .await["id"]
        .as_i64()
        .unwrap();
    let r = t
        .call(
            "PATCH",
            "/api/v1/vendors/V3",
            ROOT,
            Some(json!({"kind": "DNIS"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "an empty deck fits any kind: {}",
        r.body
    );
    let csv = "prefix,effective_from,interstate\n1303,2026-01-01,0.1\n";
    let (changed, uploaded) = t
        .queued(
            &format!("SELECT 1 FROM rate_decks WHERE id = {v3_deck} FOR UPDATE"),
            t.call(
                "PATCH",
                "/api/v1/vendors/V3",
                ROOT,
                Some(json!({"kind": "OCN_LATA"})),
            ),
            upload_csv(&t, v3_deck, "", csv),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        (uploaded.status, uploaded.code()),
        (StatusCode::CONFLICT, "CONFLICT"),
        "{}",
        uploaded.body
    );
    assert_eq!(row_count(&t, v3_deck).await, 0);
}

/// Reading a large deck takes seconds of CPU; it runs off the async workers, so a
/// request sent meanwhile is answered at once, not after the deck is parsed (the test
/// runtime has a single thread: a parse on it would hold everything up).
#[tokio::test]
async fn a_large_upload_does_not_hold_up_other_requests() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    let mut csv = String::from("prefix,effective_from,interstate\n");
    for i in 0..200_000 {
        csv.push_str(&format!("{},2026-01-01,0.001\n", 2_000_000 + i));
    }
    let start = std::time::Instant::now();
    let upload = async {
        let r = upload_csv(&t, deck, "", &csv).await;
        (r, start.elapsed())
    };
    let asked = std::time::Duration::from_millis(300);
    let health = async {
        tokio::time::sleep(asked).await;
        let r = t
            .raw(Request::get("/health").body(Body::empty()).unwrap())
            .await;
        (r.status, start.elapsed())
    };
    let ((uploaded, upload_took), (health, answered)) = tokio::join!(upload, health);
    assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.body);
    assert_eq!(row_count(&t, deck).await, 200_001);
    assert_eq!(health, StatusCode::OK);
    // Answered at once, not after the parse: well within the first half of the
    // upload's time after it was asked (a bound that scales with a loaded machine).
    let waited = answered.saturating_sub(asked);
    assert!(
        answered < upload_took && waited < upload_took.saturating_sub(asked) / 2,
        "health answered {answered:?} after the start, asked at {asked:?}; the upload took {upload_took:?}"
    );
}

/// In a JSON deck a null value is an absent one: a row with `effective_from: null`
/// takes the deck's `effective_date`, as a row without the field does.
#[tokio::test]
async fn a_null_effective_from_takes_the_decks_effective_date() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    let r = t
        .post(
            &format!("/api/v1/rate-decks/{deck}/upload"),
            ROOT,
            json!({"effective_date": "2027-01-01", "rows": [
                {"prefix": "1303", "effective_from": null, "effective_to": null, "interstate": "0.003"},
                {"prefix": "1304", "interstate": "0.004"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let from: Vec<(String, String)> = sqlx::query_as(
        "SELECT prefix, effective_from::date::text FROM rate_rows
         WHERE deck_id = $1 AND prefix <> '1' ORDER BY prefix",
    )
    .bind(deck)
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(
        from,
        [
            ("1303".to_string(), "2027-01-01".to_string()),
            ("1304".to_string(), "2027-01-01".to_string())
        ]
    );
}

/// An upload to `/rate-decks/01/upload` is audited as deck 1, like any change.
#[tokio::test]
async fn an_upload_is_audited_under_the_decks_id() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    let r = upload_csv(
        &t,
        deck,
        "",
        "prefix,effective_from,interstate\n1303,2027-01-01,0.1\n",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let req = Request::post(format!("/api/v1/rate-decks/0{deck}/upload"))
        .header("authorization", format!("Bearer {ROOT}"))
        .header("content-type", "text/csv")
        .body(Body::from(
            "prefix,effective_from,interstate\n1304,2027-01-01,0.1\n",
        ))
        .unwrap();
    let r = t.raw(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT entity_id FROM audit_log WHERE action = 'upload' ORDER BY id")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    assert_eq!(ids, [deck.to_string(), deck.to_string()]);
}

/// A media type is case-blind and may carry parameters; a longer name is another type.
#[tokio::test]
async fn a_csv_upload_is_known_by_its_media_type_in_any_case() {
    let t = TestApi::start().await;
    t.fixture().await;
    let deck = deck_of(&t, "V1").await;
    let csv = "prefix,effective_from,interstate\n1305,2027-01-01,0.1\n";
    let r = upload_as(&t, deck, "", "Text/CSV ; charset=UTF-8", csv).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["rows"], 1);
    // Not CSV, so read as the JSON it is not.
    let r = upload_as(&t, deck, "", "text/csv-schema", csv).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["errors"][0]["code"], "MALFORMED_JSON", "{}", r.body);
}
