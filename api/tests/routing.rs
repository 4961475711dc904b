//! Simulation, publishing and the snapshot pull, against a real PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{vendors, TestApi, ROOT};
use serde_json::{json, Value};

#[tokio::test]
async fn fixture_routes_cheapest_first_and_a_rate_change_shows_after_publish() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g1 = t.publish().await;
    let r = t.simulate("C1", "+12125556789").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["generation"].as_u64(), Some(g1));
    assert_eq!(vendors(&r), ["V1", "V2"]);
    let route = &r.data()["decision"]["routes"][0];
    assert_eq!(route["dialstrings"][0], "sip:12125556789@V1.example.net");

    // V1 becomes dearer than V2 through the API: not visible until published.
    let rows = t.get("/api/v1/rate-decks?vendor_id=V1", ROOT).await;
    let deck = rows.data()[0]["id"].as_i64().unwrap();
    let row = t
        .get(&format!("/api/v1/rate-decks/{deck}/rows"), ROOT)
        .await;
    let row_id = row.data()[0]["id"].as_i64().unwrap();
    let p = t
        .call(
            "PATCH",
            &format!("/api/v1/rate-decks/{deck}/rows/{row_id}"),
            ROOT,
            Some(json!({"interstate": "0.009", "intrastate": "0.009"})),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.data()["interstate"], "0.009000000");
    let g2 = t.publish().await;
    assert!(g2 > g1);
    let r = t.simulate("C1", "+12125556789").await;
    assert_eq!(r.data()["generation"].as_u64(), Some(g2));
    assert_eq!(vendors(&r), ["V2", "V1"], "{}", r.body);
    // A SIP node mapping WARP_SNAPSHOT sees the same.
    let node = warp_core::Snapshot::open(&t.dir.path().join("routing.snap")).unwrap();
    assert_eq!(node.generation(), g2);
    let call = warp_core::RouteRequest::new(
        "C1",
        Some("+13035551234"),
        "+12125556789",
        chrono::Utc::now(),
    );
    let decision = node.route(&call).unwrap();
    let ids: Vec<&str> = decision.routes.iter().map(|r| r.vendor_id).collect();
    assert_eq!(ids, ["V2", "V1"]);

    // GET /routing/lcr is the same decision from query parameters.
    let l = t
        .get(
            "/api/v1/routing/lcr?account_ban=C1&dnis=%2B12125556789&ani=%2B13035551234",
            ROOT,
        )
        .await;
    assert_eq!(l.status, StatusCode::OK, "{}", l.body);
    assert_eq!(vendors(&l), ["V2", "V1"]);
}

#[tokio::test]
async fn changes_publish_automatically_after_the_debounce() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    t.make(
        "/api/v1/exclusions",
        json!({"ban": "C1", "vendor_id": "V1", "prefix": "1212"}),
    )
    .await;
    routes_only_v2_after(&t, g, "no automatic publish").await;
}

/// Waits (10 s at most, else fails with `why`) for a generation after `g` to serve,
/// and checks that it routes C1's call to V2 alone (V1 excluded).
async fn routes_only_v2_after(t: &TestApi, g: u64, why: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = t.simulate("C1", "+12125556789").await;
        if r.data()["generation"].as_u64() > Some(g) {
            assert_eq!(vendors(&r), ["V2"], "{}", r.body);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{why}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rejections_carry_the_sip_reply_and_bad_numbers_are_422() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make("/api/v1/dno", json!({"number": "(303) 555-1234"}))
        .await;
    t.publish().await;
    let r = t.simulate("C1", "+12125556789").await;
    assert_eq!(r.data()["reject"]["reason"], "dno_ani", "{}", r.body);
    assert_eq!(r.data()["reject"]["sip_code"], 603);
    let r = t.simulate("NOPE", "+12125556789").await;
    assert_eq!(r.data()["reject"]["reason"], "unknown_customer");
    let r = t.simulate("C1", "12").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!((r.code(), r.field()), ("INVALID_PHONE_NUMBER", "dnis"));
    let r = t
        .post(
            "/api/v1/routing/simulate",
            ROOT,
            json!({"customer_ban": "C1", "dnis": "+12125556789", "lrn": "x1"}),
        )
        .await;
    assert_eq!((r.code(), r.field()), ("INVALID_PHONE_NUMBER", "lrn"));
    // max_results in the customer's own range: one route, or a refusal, never a guess.
    for (max, routes) in [(0, None), (1, Some(1)), (101, None)] {
        let body = json!({"customer_ban": "C1", "dnis": "+12125556789", "max_results": max});
        let r = t.post("/api/v1/routing/simulate", ROOT, body).await;
        match routes {
            Some(n) => assert_eq!(vendors(&r).len(), n, "{}", r.body),
            None => assert_eq!(
                (r.status, r.code(), r.field()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "VALIDATION_ERROR",
                    "max_results"
                ),
                "{}",
                r.body
            ),
        }
    }
    // Data edited by hand into something that makes no snapshot: 409, old one serves.
    sqlx::query("UPDATE customer_partitions SET tz = 'Mars/Base', days = 1, start_minute = 0, end_minute = 60")
        .execute(&t.pool)
        .await
        .unwrap();
    let before = t.simulate("C1", "+12125556789").await.data()["generation"].clone();
    publish_refused(&t, (StatusCode::CONFLICT, "COMPILE_FAILED"), before).await;
}

/// A time the snapshot cannot hold (it keeps whole seconds) is refused where it is
/// written, naming the field: stored, it would fail every publish after it.
#[tokio::test]
async fn times_with_a_fraction_of_a_second_are_refused_before_they_block_publishing() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    let deck = t.get("/api/v1/rate-decks?vendor_id=V1", ROOT).await.data()[0]["id"]
        .as_i64()
        .unwrap();
    let row = t
        .get(&format!("/api/v1/rate-decks/{deck}/rows"), ROOT)
        .await
        .data()[0]["id"]
        .as_i64()
        .unwrap();
    let late = "2031-01-01T00:00:00.25Z";
    let writes = [
        (
            "POST",
            format!("/api/v1/rate-decks/{deck}/rows"),
            json!({"prefix": "44", "effective_from": late, "international": "0.01"}),
            "effective_from",
        ),
        (
            "PATCH",
            format!("/api/v1/rate-decks/{deck}/rows/{row}"),
            json!({"effective_to": late}),
            "effective_to",
        ),
        (
            "POST",
            "/api/v1/customers/C1/partitions".into(),
            json!({"partition_id": "P1", "priority": 2, "valid_from": late}),
            "valid_from",
        ),
        (
            "POST",
            "/api/v1/overrides".into(),
            json!({"prefix": "1212", "vendor_id": "V2", "valid_to": late}),
            "valid_to",
        ),
    ];
    for (method, path, body, field) in writes {
        let r = t.call(method, &path, ROOT, Some(body)).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", field),
            "{method} {path}: {}",
            r.body
        );
    }
    // Whole seconds, in any offset, are taken, and the next publish goes through.
    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/rate-decks/{deck}/rows/{row}"),
            ROOT,
            Some(json!({"effective_to": "2031-01-01T01:00:00+01:00"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(t.publish().await, g + 1);
}

/// A customer set up before its rate plan has rates (the order the API's resources
/// suggest) routes nothing yet, and holds back no one else's change: the DNO number
/// added meanwhile is published.
#[tokio::test]
async fn a_customer_whose_plan_has_no_rates_yet_blocks_no_publish() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    t.make("/api/v1/rate-plans", json!({"id": "gold"})).await;
    t.make(
        "/api/v1/customers",
        json!({"ban": "C3", "name": "Customer C3", "rate_plan": "gold"}),
    )
    .await;
    t.make(
        "/api/v1/customers/C3/partitions",
        json!({"partition_id": "P1", "priority": 1}),
    )
    .await;
    t.make("/api/v1/dno", json!({"number": "+1 303 555 1234"}))
        .await;
    assert_eq!(t.publish().await, g + 1);
    let r = t.simulate("C1", "+12125556789").await;
    assert_eq!(r.data()["reject"]["reason"], "dno_ani", "{}", r.body);
    // No ANI: the one simulate() sends is now on the DNO list.
    let simulate_c3 = || {
        let body = json!({"customer_ban": "C3", "dnis": "+12125556789"});
        t.post("/api/v1/routing/simulate", ROOT, body)
    };
    let r = simulate_c3().await;
    assert_eq!(r.data()["reject"]["reason"], "no_sell_rate", "{}", r.body);
    assert_eq!(r.data()["reject"]["sip_code"], 404);
    // Once the plan has a rate, the customer routes.
    let deck = t
        .make("/api/v1/rate-decks", json!({"rate_plan": "gold"}))
        .await;
    t.deck_row(deck["id"].as_i64().unwrap(), "1", "0.01").await;
    t.publish().await;
    let r = simulate_c3().await;
    assert_eq!(vendors(&r), ["V1", "V2"], "{}", r.body);
}

/// A publish answered `refusal`, after which simulation still routes on generation
/// `serving`: the old snapshot serves.
async fn publish_refused(t: &TestApi, refusal: (StatusCode, &str), serving: Value) {
    let r = t.post("/api/v1/routing/publish", ROOT, json!({})).await;
    assert_eq!((r.status, r.code()), refusal, "{}", r.body);
    let now = t.simulate("C1", "+12125556789").await;
    assert_eq!(now.data()["generation"], serving);
}

#[tokio::test]
async fn simulate_agrees_with_the_engine_on_generated_data() {
    let t = TestApi::start().await;
    let d = warp_datagen::generate(warp_datagen::Scale::SMALL, 11);
    warp_db::import_dataset(&t.pool, &d).await.unwrap();
    let generation = t.publish().await;
    let bytes = warp_core::snapshot::compile(&d, generation).unwrap();
    let engine = warp_core::Snapshot::from_bytes(&bytes).unwrap();
    let at = chrono::Utc::now();
    let mut routed = 0;
    for (ban, ani, dnis) in warp_datagen::sample_calls(&d, 150, 3) {
        let r = t
            .post(
                "/api/v1/routing/simulate",
                ROOT,
                json!({"customer_ban": ban, "ani": ani, "dnis": dnis, "at": at}),
            )
            .await;
        let req = warp_core::RouteRequest::new(&ban, Some(&ani), &dnis, at);
        match engine.route(&req) {
            Ok(decision) => {
                routed += 1;
                assert_eq!(
                    r.data()["decision"],
                    serde_json::to_value(&decision).unwrap()
                );
            }
            Err(warp_core::Reject::InvalidDnis(_)) => {
                assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY)
            }
            Err(reject) => {
                assert_eq!(
                    r.data()["reject"]["reason"],
                    serde_json::to_value(&reject).unwrap()["reason"]
                )
            }
        }
    }
    assert!(routed > 50, "only {routed} calls routed");
}

/// The super admin and a SIP edge's key pull the snapshot alike: 200, then 304 on its
/// ETag, which names the generation and the payload's hash.
#[tokio::test]
async fn snapshot_pull_uses_the_generation_and_payload_as_etag() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    // The fixture's changes are in `g`: the debouncer, due after 100 ms, adds nothing.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let edge = t.key("sip_edge", None).await;
    for key in [ROOT, edge.as_str()] {
        let r = t.get("/api/v1/routing/snapshot", key).await;
        assert_eq!(r.status, StatusCode::OK);
        let etag = r.headers["etag"].to_str().unwrap().to_string();
        let snap = warp_core::Snapshot::from_bytes(&r.bytes).unwrap();
        assert_eq!(snap.generation(), g);
        assert_eq!(etag, format!("\"{g}.{:016x}\"", snap.payload_hash()));
        let req = Request::get("/api/v1/routing/snapshot")
            .header("authorization", format!("Bearer {key}"))
            .header("if-none-match", &etag)
            .body(Body::empty())
            .unwrap();
        let r304 = t.raw(req).await;
        assert_eq!(r304.status, StatusCode::NOT_MODIFIED);
        assert_eq!(r304.headers["etag"], etag.as_str());
        // The file on disk is what was served.
        let on_disk = std::fs::read(t.dir.path().join("routing.snap")).unwrap();
        assert_eq!(on_disk, r.bytes);
    }
}

/// Every answer names the file's format version (`Warp-Snapshot-Format`); an edge that
/// names another format it reads is refused (406) without a byte of the file, and one
/// naming this format, or none (edges before the header), is sent the file as ever.
#[tokio::test]
async fn snapshot_pull_names_its_format_and_sends_no_file_to_an_edge_of_another() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    let ours = warp_core::snapshot::format::FORMAT_VERSION;
    let on_disk = std::fs::read(t.dir.path().join("routing.snap")).unwrap();
    let edge = t.key("sip_edge", None).await;
    let pull = |reads: Option<String>, if_none_match: Option<&str>| {
        let mut req = Request::get("/api/v1/routing/snapshot")
            .header("authorization", format!("Bearer {edge}"));
        if let Some(reads) = reads {
            req = req.header("warp-snapshot-format", reads);
        }
        if let Some(etag) = if_none_match {
            req = req.header("if-none-match", etag);
        }
        req.body(Body::empty()).unwrap()
    };
    let format_of = |r: &common::Reply| {
        r.headers["warp-snapshot-format"]
            .to_str()
            .unwrap()
            .to_owned()
    };

    for reads in [None, Some(ours.to_string())] {
        let r = t.raw(pull(reads.clone(), None)).await;
        assert_eq!(r.status, StatusCode::OK, "{reads:?}");
        assert_eq!(r.bytes, on_disk);
        assert_eq!(format_of(&r), ours.to_string());
        let etag = r.headers["etag"].to_str().unwrap();
        let r304 = t.raw(pull(reads, Some(etag))).await;
        assert_eq!(r304.status, StatusCode::NOT_MODIFIED);
        assert_eq!(format_of(&r304), ours.to_string());
    }

    let other = ours + 1;
    let r = t.raw(pull(Some(other.to_string()), None)).await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.body);
    assert_eq!(r.code(), "SNAPSHOT_FORMAT");
    assert_eq!(
        r.body["errors"][0]["message"],
        format!("generation {g} is snapshot format {ours}; the edge reads format {other}")
    );
    assert_eq!(format_of(&r), ours.to_string());
    assert!(r.headers["etag"]
        .to_str()
        .unwrap()
        .starts_with(&format!("\"{g}.")));
    // The refusal is its envelope alone, not a byte of the file.
    assert!(r.body["errors"].is_array(), "no JSON envelope");
    assert_eq!(
        r.headers["content-length"],
        r.bytes.len().to_string().as_str()
    );
    assert!(
        r.bytes.len() < 200 && on_disk.len() > 10 * r.bytes.len(),
        "refusal {} bytes, file {} bytes",
        r.bytes.len(),
        on_disk.len()
    );

    let r = t.raw(pull(Some("five".into()), None)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "BAD_SNAPSHOT_FORMAT");
    assert!(r.bytes.len() < 300, "{}", r.bytes.len());
}

#[tokio::test]
async fn a_snapshot_that_cannot_be_written_is_a_server_fault_and_the_old_one_serves() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    block_snapshot(&t);
    let fault = (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL");
    publish_refused(&t, fault, g.into()).await;
    // The failed publish left no audit entry.
    assert_eq!(publishes_audited(&t).await, 1);
}

#[tokio::test]
async fn a_publish_that_cannot_be_audited_does_not_happen() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    for ddl in [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql
         AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse()",
    ] {
        sqlx::query(ddl).execute(&t.pool).await.unwrap();
    }
    let fault = (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL");
    publish_refused(&t, fault, g.into()).await;
    let node = warp_core::Snapshot::open(&t.dir.path().join("routing.snap")).unwrap();
    assert_eq!(
        node.generation(),
        g,
        "SIP nodes were handed an unaudited generation"
    );
    assert_eq!(publishes_audited(&t).await, 1);
}

async fn publishes_audited(t: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'publish'")
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

/// Takes the snapshot's path with a non-empty directory, so that the rename of a new
/// snapshot onto it fails; returns the path.
fn block_snapshot(t: &TestApi) -> std::path::PathBuf {
    let path = t.dir.path().join("routing.snap");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("other"), b"").unwrap();
    path
}

#[tokio::test]
async fn a_failed_automatic_publish_is_retried_without_another_change() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    let path = block_snapshot(&t);
    failed_publish_retried_once(&t, g, || std::fs::remove_dir_all(&path).unwrap()).await;
}

/// A routing change whose automatic publish fails (on generation `g`) is published
/// once `fix` mends the disk, with nothing else changing.
async fn failed_publish_retried_once(t: &TestApi, g: u64, fix: impl FnOnce()) {
    t.make(
        "/api/v1/exclusions",
        json!({"ban": "C1", "vendor_id": "V1", "prefix": "1212"}),
    )
    .await;
    let failures = "warp_api_snapshot_publish_failures_total 1";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(&t.get("/metrics", "").await.bytes).contains(failures) {
        assert!(
            std::time::Instant::now() < deadline,
            "no automatic publish failed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    fix();
    routes_only_v2_after(t, g, "the publish was not retried").await;
}

/// A snapshot on disk at the last generation there is (a file from elsewhere): a
/// publish fails, and the automatic one is counted and retried, rather than wrapping
/// to generation 0 or stopping the automatic publisher for good.
#[tokio::test]
async fn a_snapshot_at_the_last_generation_fails_the_publish_and_it_is_retried() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    let path = t.dir.path().join("routing.snap");
    let dataset = warp_db::load_dataset(&t.pool).await.unwrap();
    let last = warp_core::snapshot::compile(&dataset, u64::MAX).unwrap();
    warp_core::snapshot::publish(&last, &path).unwrap();
    let fault = (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL");
    publish_refused(&t, fault, g.into()).await;
    failed_publish_retried_once(&t, g, || std::fs::remove_file(&path).unwrap()).await;
}

/// An API that starts publishes what PostgreSQL holds when the snapshot on disk lacks
/// it (here a change made in SQL while no API ran), and keeps the generation when the
/// data is the same: SIP nodes reload nothing for a restart.
#[tokio::test]
async fn a_starting_api_publishes_what_its_snapshot_lacks_and_only_that() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    let generation = |state: &warp_api::state::AppState| {
        let current = state.publisher.current().map(|s| s.generation());
        let on_disk = warp_core::Snapshot::open(state.publisher.path()).unwrap();
        (current, on_disk.generation())
    };
    let same = warp_api::start(t.config.clone()).await.unwrap();
    assert_eq!(generation(&same), (Some(g), g), "a restart republished");
    same.webhooks.stop();

    sqlx::query("INSERT INTO exclusions (ban, vendor_id, prefix) VALUES ('C1', 'V1', '1212')")
        .execute(&t.pool)
        .await
        .unwrap();
    let changed = warp_api::start(t.config.clone()).await.unwrap();
    assert_eq!(generation(&changed), (Some(g + 1), g + 1));
    let (app, _) = warp_api::routes::app(changed.clone());
    let simulated = TestApi { app, ..t };
    routes_only_v2_after(&simulated, g, "the start published nothing").await;
    changed.webhooks.stop();
}

const N1: &str = "13035550100";

/// Waits (10 s at most) for the snapshot on disk, the one edges pull, to be newer than
/// `g` and for this instance's publish event for it; returns it.
async fn published_after(t: &TestApi, g: u64, events: i64) -> warp_core::Snapshot {
    let path = t.dir.path().join("routing.snap");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let snap = warp_core::Snapshot::open(&path).unwrap();
        if snap.generation() > g && t.publish_events().await > events {
            return snap;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after generation {g}, {events} events: generation {}, {} events",
            snap.generation(),
            t.publish_events().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A number is its customer's to call from (attestation A) while it is assigned with
/// voice on: assigning it through the API, turning its voice off and releasing it each
/// publish a new generation saying so, with this instance's publish event as for any
/// routing change made through it.
#[tokio::test]
async fn assigning_or_releasing_a_number_through_the_api_republishes() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/webhooks",
        json!({"url": "https://hooks.example.net/warp",
               "event_types": ["routing_snapshot.publish"]}),
    )
    .await;
    let mut g = t.publish().await;
    let number = warp_core::Number::from_digits(N1).unwrap();
    let path = format!("/api/v1/numbers/{N1}");
    let steps = [
        (json!({"status": "assigned", "ban": "C1"}), true),
        (json!({"voice_enabled": false}), false),
        (json!({"voice_enabled": true}), true),
        (json!({"status": "aging"}), false),
    ];
    t.make("/api/v1/numbers", json!({"e164": N1, "status": "reserved"}))
        .await;
    for (change, assigned) in steps {
        let events = t.publish_events().await;
        let r = t.call("PATCH", &path, ROOT, Some(change.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{change}: {}", r.body);
        let snap = published_after(&t, g, events).await;
        assert_eq!(snap.is_assigned(number, "C1"), assigned, "after {change}");
        assert!(!snap.is_assigned(number, "C2"), "after {change}");
        g = snap.generation();
    }
}

/// Whether a routing notice arrives within `wait`.
async fn notified(listener: &mut sqlx::postgres::PgListener, wait: u64) -> bool {
    let heard = tokio::time::timeout(std::time::Duration::from_millis(wait), listener.recv());
    heard.await.is_ok_and(|n| n.unwrap().payload() == "numbers")
}

/// The snapshot reads a number's digits, customer, status and voice flag alone: a CNAM,
/// an E911 address or a messaging flag changed tells no instance to compile again
/// (no notice, no publish), while an assignment does. `schema::ensure` narrows the
/// trigger a database already has.
#[tokio::test]
async fn only_what_the_snapshot_reads_of_a_number_republishes() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/numbers",
        json!({"e164": N1, "ban": "C1", "status": "assigned"}),
    )
    .await;
    let home = json!({"line1": "1 Main St", "city": "Denver", "state": "CO",
                      "postal_code": "80202", "ban": "C1"});
    let address = t.make("/api/v1/e911-addresses", home).await["id"].clone();
    t.make(
        "/api/v1/webhooks",
        json!({"url": "https://hooks.example.net/warp",
               "event_types": ["routing_snapshot.publish"]}),
    )
    .await;
    // A database set up by an earlier release: every update notified.
    sqlx::raw_sql(
        "CREATE OR REPLACE TRIGGER warp_api_routing_changed
         AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON numbers
         FOR EACH STATEMENT EXECUTE FUNCTION api.routing_changed()",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    warp_api::schema::ensure(&t.pool).await.unwrap();
    let g = t.publish().await;
    let events = t.publish_events().await;

    let mut listener = sqlx::postgres::PgListener::connect_with(&t.pool)
        .await
        .unwrap();
    listener.listen("warp_routing").await.unwrap();
    let path = format!("/api/v1/numbers/{N1}");
    for (method, at, body) in [
        ("PUT", format!("{path}/cnam"), json!({"cnam": "ACME"})),
        (
            "PUT",
            format!("{path}/e911"),
            json!({"address_id": address}),
        ),
        ("PATCH", path.clone(), json!({"sms_enabled": true})),
    ] {
        let r = t.call(method, &at, ROOT, Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{at}: {}", r.body);
        assert!(!notified(&mut listener, 300).await, "{at} notified");
    }
    // Past the debounce: nothing was compiled or published for them.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(t.publish_events().await, events);
    assert_eq!(
        warp_core::Snapshot::open(&t.dir.path().join("routing.snap"))
            .unwrap()
            .generation(),
        g
    );

    let r = t
        .call("PATCH", &path, ROOT, Some(json!({"voice_enabled": false})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        notified(&mut listener, 5_000).await,
        "an assignment change did not notify"
    );
    let snap = published_after(&t, g, events).await;
    assert!(!snap.is_assigned(warp_core::Number::from_digits(N1).unwrap(), "C1"));
}
