//! Several API instances on one database, as behind a load balancer, each with its own
//! snapshot file: a generation is the same bytes on every instance, every instance
//! follows a change made through any other (or in SQL), an edge's ETag from one is
//! good at the others, and no edge is ever handed an older generation than it holds.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use common::{TestApi, ROOT};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Longer than the test instances' 100 ms debounce, and what it takes to publish.
const SETTLE: Duration = Duration::from_millis(400);
/// The longest a follow or catch-up may take here.
const SOON: Duration = Duration::from_secs(10);

/// Another instance on `t`'s database, its snapshot in `dir`.
struct Peer {
    app: Router,
    state: warp_api::state::AppState,
    snapshot: PathBuf,
}

impl Peer {
    /// Stops its database work, and frees its connections for the next instance (the
    /// test server takes 50).
    async fn stop(self) {
        self.state.webhooks.stop();
        self.state.pool.close().await;
    }
}

async fn peer(t: &TestApi, dir: &Path, debounce: Duration) -> Peer {
    let mut config = t.config.clone();
    config.snapshot = dir.join("routing.snap");
    config.publish_debounce = debounce;
    let state = warp_api::start(config)
        .await
        .expect("start a second instance");
    Peer {
        snapshot: state.publisher.path().to_path_buf(),
        app: warp_api::routes::app(state.clone()).0,
        state,
    }
}

fn snapshot_of(t: &TestApi) -> PathBuf {
    t.state.publisher.path().to_path_buf()
}

/// The generation and payload hash of snapshot bytes.
fn stamp(bytes: &[u8]) -> (u64, u64) {
    let s = warp_core::Snapshot::from_bytes(bytes).expect("a sound snapshot");
    (s.generation(), s.payload_hash())
}

/// The same bytes; else fails naming the generation and payload of each.
fn same_file(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: generation and payload {:x?}, not {:x?}",
        stamp(got),
        stamp(want)
    );
}

fn generation_at(path: &Path) -> u64 {
    warp_core::Snapshot::open(path).unwrap().generation()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let since = Instant::now();
    while !done() {
        assert!(since.elapsed() < SOON, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Both files hold the same generation, byte for byte; returns it.
async fn agreed(a: &Path, b: &Path, after: u64) -> u64 {
    let same = || {
        let (a, b) = (std::fs::read(a), std::fs::read(b));
        matches!((a, b), (Ok(a), Ok(b)) if a == b && stamp(&a).0 > after)
    };
    until("the instances never agreed on a newer generation", same).await;
    generation_at(a)
}

/// A JSON call as the root key.
async fn call(app: &Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ROOT}"))
        .header("content-type", "application/json")
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn publish(app: &Router) -> u64 {
    let (status, body) = call(app, "POST", "/api/v1/routing/publish", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["generation"].as_u64().unwrap()
}

/// V1 priced at `rate` in every zone, through `app`.
async fn reprice(app: &Router, rate: &str) {
    let (_, decks) = call(app, "GET", "/api/v1/rate-decks?vendor_id=V1", None).await;
    let deck = decks["data"][0]["id"].as_i64().unwrap();
    let rows = format!("/api/v1/rate-decks/{deck}/rows");
    let (_, rows_now) = call(app, "GET", &rows, None).await;
    let row = rows_now["data"][0]["id"].as_i64().unwrap();
    // A deck row has a column per zone, named as the zone in lower case.
    let body: serde_json::Map<String, Value> = (warp_core::Zone::ALL.iter())
        .map(|z| (z.as_str().to_lowercase(), json!(rate)))
        .collect();
    let (status, answer) = call(app, "PATCH", &format!("{rows}/{row}"), Some(body.into())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

struct Pulled {
    status: StatusCode,
    etag: Option<u64>,
    bytes: Vec<u8>,
}

/// An edge's conditional GET of the snapshot, holding generation `held`.
async fn pull(app: &Router, held: Option<u64>) -> Pulled {
    let mut req =
        Request::get("/api/v1/routing/snapshot").header("authorization", format!("Bearer {ROOT}"));
    if let Some(g) = held {
        req = req.header("if-none-match", format!("\"{g}\""));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let etag = res.headers().get("etag").map(|v| {
        let v = v.to_str().unwrap();
        // "generation.payload hash"
        let tag = v.trim_matches('"');
        tag.split('.').next().unwrap().parse().unwrap()
    });
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Pulled {
        status,
        etag,
        bytes,
    }
}

#[tokio::test]
async fn a_change_through_one_instance_reaches_the_others_as_the_same_generation_and_bytes() {
    let a = TestApi::start().await;
    a.fixture().await;
    let g = a.publish().await;
    tokio::time::sleep(SETTLE).await;
    let b_dir = tempfile::tempdir().unwrap();
    let b = peer(&a, b_dir.path(), Duration::from_millis(100)).await;

    // B starts on A's data: A's generation, A's bytes; an edge's ETag from A is a 304.
    let from_a = pull(&a.app, None).await;
    assert_eq!(from_a.etag, Some(g));
    same_file(
        &std::fs::read(&b.snapshot).unwrap(),
        &from_a.bytes,
        "B's start",
    );
    let at_b = pull(&b.app, Some(g)).await;
    assert_eq!(
        (at_b.status, at_b.etag),
        (StatusCode::NOT_MODIFIED, Some(g))
    );

    // Every publish event is seen from here on (its delivery row; nothing listens).
    a.make(
        "/api/v1/webhooks",
        json!({"url": "https://hooks.example.net/warp",
               "event_types": ["routing_snapshot.publish"]}),
    )
    .await;

    // A change through A reaches B with no call to B.
    reprice(&a.app, "0.009").await;
    let g2 = agreed(&snapshot_of(&a), &b.snapshot, g).await;
    let from_b = pull(&b.app, Some(g)).await;
    assert_eq!(from_b.status, StatusCode::OK);
    same_file(
        &from_b.bytes,
        &std::fs::read(snapshot_of(&a)).unwrap(),
        "B's pull",
    );

    // One made in SQL, through no instance, reaches both.
    sqlx::query("INSERT INTO exclusions (ban, vendor_id, prefix) VALUES ('C1', 'V1', '1212')")
        .execute(&a.pool)
        .await
        .unwrap();
    agreed(&snapshot_of(&a), &b.snapshot, g2).await;

    // Only A, through which the change was made, wrote its publish event.
    tokio::time::sleep(SETTLE).await;
    assert_eq!(a.publish_events().await, 1);
}

#[tokio::test]
async fn an_instance_behind_answers_a_newer_etag_with_304_and_catches_up() {
    let a = TestApi::start().await;
    a.fixture().await;
    let g = a.publish().await;
    tokio::time::sleep(SETTLE).await;
    // B waits a minute before following: behind, for the length of this test.
    let b_dir = tempfile::tempdir().unwrap();
    let b = peer(&a, b_dir.path(), Duration::from_secs(60)).await;
    assert_eq!(
        generation_at(&b.snapshot),
        g,
        "B started on another generation"
    );
    reprice(&a.app, "0.009").await;
    let g2 = a.publish().await;
    assert!(g2 > g);
    assert_eq!(
        generation_at(&b.snapshot),
        g,
        "B followed before its debounce"
    );

    // An edge that got g2 from A is not handed B's g.
    let at_b = pull(&b.app, Some(g2)).await;
    assert_eq!(
        (at_b.status, at_b.etag),
        (StatusCode::NOT_MODIFIED, Some(g2))
    );
    assert!(at_b.bytes.is_empty());

    // B catches up at once, to A's very file.
    until("B did not catch up", || generation_at(&b.snapshot) == g2).await;
    let a_file = std::fs::read(snapshot_of(&a)).unwrap();
    same_file(
        &std::fs::read(&b.snapshot).unwrap(),
        &a_file,
        "B's catch-up",
    );
    let from_b = pull(&b.app, Some(g)).await;
    assert_eq!(from_b.status, StatusCode::OK);
    same_file(&from_b.bytes, &a_file, "B's pull");
}

#[tokio::test]
async fn an_edge_holding_a_generation_no_instance_handed_out_is_sent_the_clusters() {
    let a = TestApi::start().await;
    a.fixture().await;
    let g = a.publish().await;
    // A file compiled elsewhere, or before the database was restored: far above g.
    let foreign = g + 1_000;
    let from_a = pull(&a.app, Some(foreign)).await;
    assert_eq!((from_a.status, from_a.etag), (StatusCode::OK, Some(g)));
    same_file(
        &from_a.bytes,
        &std::fs::read(snapshot_of(&a)).unwrap(),
        "the foreign edge's pull",
    );
    // Which sets the edge right: it is current from then on.
    assert_eq!(pull(&a.app, Some(g)).await.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn an_edge_holding_our_generation_number_with_other_data_is_sent_ours() {
    let a = TestApi::start().await;
    a.fixture().await;
    let g = a.publish().await;
    let ours = std::fs::read(snapshot_of(&a)).unwrap();
    let (_, payload) = stamp(&ours);
    let ask = |tag: String| {
        let app = a.app.clone();
        async move {
            let req = Request::get("/api/v1/routing/snapshot")
                .header("authorization", format!("Bearer {ROOT}"))
                .header("if-none-match", tag)
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap().status()
        }
    };
    // `warp compile` by hand numbers a first file 1 too: same number, other data.
    let other = payload ^ 1;
    assert_eq!(ask(format!("\"{g}.{other:016x}\"")).await, StatusCode::OK);
    assert_eq!(
        ask(format!("\"{g}.{payload:016x}\"")).await,
        StatusCode::NOT_MODIFIED
    );
    // A client that names the generation alone is taken at its word, as before.
    assert_eq!(ask(format!("\"{g}\"")).await, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_generation_being_handed_out_is_waited_for_not_taken_for_a_foreign_one() {
    let a = TestApi::start().await;
    a.fixture().await;
    let g = a.publish().await;
    // Another instance mid-publish: it holds the lock, has served g + 1 to an edge, and
    // commits the number a moment later.
    let mut other = a.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE api.snapshot_generation IN EXCLUSIVE MODE")
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query("UPDATE api.snapshot_generation SET generation = generation + 1")
        .execute(&mut *other)
        .await
        .unwrap();
    let commit_soon = async {
        tokio::time::sleep(SETTLE).await;
        other.commit().await.unwrap();
    };
    let (at_a, ()) = tokio::join!(pull(&a.app, Some(g + 1)), commit_soon);
    assert_eq!(
        (at_a.status, at_a.etag),
        (StatusCode::NOT_MODIFIED, Some(g + 1)),
        "an edge holding the generation being handed out was sent back"
    );
}

#[tokio::test]
async fn concurrent_publishes_never_number_two_payloads_alike_nor_send_an_edge_back() {
    let a = TestApi::start().await;
    a.fixture().await;
    let b_dir = tempfile::tempdir().unwrap();
    let b = peer(&a, b_dir.path(), Duration::from_millis(100)).await;
    // Every generation seen, and its payload.
    let mut payloads: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seen = |(generation, payload): (u64, u64)| {
        let first = *payloads.entry(generation).or_insert(payload);
        assert_eq!(first, payload, "generation {generation} is two payloads");
    };
    let mut held: Option<u64> = None;
    for round in 0..8u32 {
        // A change through one instance or the other, then both publish at once while
        // an edge pulls from both.
        let writer = if round % 2 == 0 { &a.app } else { &b.app };
        reprice(writer, &format!("0.{:03}", 10 + round)).await;
        let edge = async {
            let mut held = held;
            let mut got = Vec::new();
            for app in [&a.app, &b.app, &a.app, &b.app] {
                let p = pull(app, held).await;
                if p.status == StatusCode::NOT_MODIFIED {
                    continue;
                }
                assert_eq!(p.status, StatusCode::OK);
                let (generation, payload) = stamp(&p.bytes);
                assert!(
                    held < Some(generation),
                    "an edge holding {held:?} was sent generation {generation}"
                );
                held = Some(generation);
                got.push((generation, payload));
            }
            (held, got)
        };
        let (_, _, (now_held, got)) = tokio::join!(publish(&a.app), publish(&b.app), edge);
        held = now_held;
        got.into_iter().for_each(&mut seen);
        seen(stamp(&std::fs::read(snapshot_of(&a)).unwrap()));
        seen(stamp(&std::fs::read(&b.snapshot).unwrap()));
    }
    agreed(&snapshot_of(&a), &b.snapshot, 0).await;
}

#[tokio::test]
async fn a_restarted_instance_numbers_above_its_file_and_the_others_follow() {
    let a = TestApi::start().await;
    a.fixture().await;
    let g = a.publish().await;
    tokio::time::sleep(SETTLE).await;
    let a_payload = stamp(&std::fs::read(snapshot_of(&a)).unwrap()).1;

    // B's disk holds generation 100 of other data (a file from elsewhere): an edge may
    // hold it, so B numbers A's data above it.
    let b_dir = tempfile::tempdir().unwrap();
    let foreign = warp_core::snapshot::compile(&Default::default(), 100).unwrap();
    warp_core::snapshot::publish(&foreign, &b_dir.path().join("routing.snap")).unwrap();
    let b = peer(&a, b_dir.path(), Duration::from_millis(100)).await;
    let b_file = std::fs::read(&b.snapshot).unwrap();
    assert_eq!(stamp(&b_file), (101, a_payload));
    assert!(g < 101);

    // A, asked for 101 by an edge, answers 304 and takes the same file.
    let at_a = pull(&a.app, Some(101)).await;
    assert_eq!(at_a.status, StatusCode::NOT_MODIFIED);
    until("A did not catch up", || {
        generation_at(&snapshot_of(&a)) == 101
    })
    .await;
    same_file(
        &std::fs::read(snapshot_of(&a)).unwrap(),
        &b_file,
        "A's catch-up",
    );

    // A restart on the same data keeps 101 and its bytes, with or without the file.
    b.stop().await;
    let again = peer(&a, b_dir.path(), Duration::from_millis(100)).await;
    same_file(
        &std::fs::read(&again.snapshot).unwrap(),
        &b_file,
        "a restart",
    );
    again.stop().await;
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = peer(&a, fresh_dir.path(), Duration::from_millis(100)).await;
    same_file(
        &std::fs::read(&fresh.snapshot).unwrap(),
        &b_file,
        "a start without the file",
    );
}

#[tokio::test]
async fn a_change_made_while_the_listener_was_down_is_published_once_it_is_back() {
    let t = TestApi::start().await;
    t.fixture().await;
    let g = t.publish().await;
    tokio::time::sleep(SETTLE).await;
    let ended: Vec<(i32, bool)> = sqlx::query_as(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query LIKE 'LISTEN %warp_routing%'",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    let [(pid, true)] = ended[..] else {
        panic!("not one routing change listener ended: {ended:?}");
    };
    // Its session ends at once; the listener reconnects a second later.
    let since = Instant::now();
    while sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)",
    )
    .bind(pid)
    .fetch_one(&t.pool)
    .await
    .unwrap()
    {
        assert!(since.elapsed() < SOON, "the listener's session did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // No instance made it, and no one listened: only the reconnection publishes it.
    sqlx::query("INSERT INTO exclusions (ban, vendor_id, prefix) VALUES ('C1', 'V1', '1212')")
        .execute(&t.pool)
        .await
        .unwrap();
    let path = snapshot_of(&t);
    until("the change was not published", || generation_at(&path) > g).await;
}
