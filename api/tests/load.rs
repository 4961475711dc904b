//! Load figures for the targets, on loopback against a real listener. Ignored
//! by default (they take minutes and want a release build):
//!
//! `cargo test --release -p warp-api --test load -- --ignored --nocapture --test-threads 1`
//!
//! Open-loop: each request has a scheduled send time and its latency counts from
//! then, so a stall is not hidden by the sender waiting for it.

mod common;

use common::TestApi;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One keep-alive HTTP/1.1 connection: just enough client for a load test.
struct Conn(BufReader<TcpStream>);

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn(BufReader::new(TcpStream::connect(addr).await.unwrap()))
    }

    async fn send(&mut self, method: &str, path: &str, key: &str, body: &str) -> u16 {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.0.get_mut().write_all(req.as_bytes()).await.unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).await.unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0;
        loop {
            line.clear();
            self.0.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        self.0.read_exact(&mut body).await.unwrap();
        status
    }
}

/// An API whose per-key rate limit (6,000 a minute by default) is out of the way.
async fn unlimited() -> TestApi {
    TestApi::with(|k| (k == "WARP_RATE_LIMIT").then(|| "100000000".to_string())).await
}

/// The box's 1/5/15-minute load averages: the cores are shared, so figures need them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn serve(t: &TestApi) -> SocketAddr {
    let (app, _) = warp_api::routes::app(t.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Sends `requests` (path, body) round-robin at `rate` per second over `conns`
/// connections; prints and returns the latency percentiles.
async fn open_loop(
    addr: SocketAddr,
    key: &str,
    method: &'static str,
    requests: Vec<(String, String)>,
    rate: f64,
    total: usize,
    conns: usize,
) -> (Duration, Duration, Duration) {
    let start = Instant::now() + Duration::from_millis(200);
    let requests = std::sync::Arc::new(requests);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (key, requests) = (key.to_string(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let mut lat = Vec::new();
            let mut i = c;
            while i < total {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let (path, body) = &requests[i % requests.len()];
                let status = conn.send(method, path, &key, body).await;
                // Anything else (a 429 above all) is not the work being measured.
                assert_eq!(status, 200, "{path}");
                lat.push(due.elapsed());
                i += conns;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    let took = start.elapsed();
    println!(
        "{method} x{}: {:.0} req/s achieved, p50 {:?} p99 {:?} max {:?} (load average {})",
        all.len(),
        all.len() as f64 / took.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        all[all.len() - 1],
        load_average()
    );
    (pct(0.5), pct(0.99), all[all.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn simulate_at_2000_per_second() {
    let t = unlimited().await;
    let d = warp_datagen::generate(warp_datagen::Scale::SMALL, 5);
    warp_db::import_dataset(&t.pool, &d).await.unwrap();
    t.publish().await;
    let key = t.key("support", None).await;
    let calls: Vec<(String, String)> = warp_datagen::sample_calls(&d, 2000, 9)
        .into_iter()
        .map(|(ban, ani, dnis)| {
            let body = json!({"customer_ban": ban, "ani": ani, "dnis": dnis}).to_string();
            ("/api/v1/routing/simulate".to_string(), body)
        })
        .collect();
    let addr = serve(&t).await;
    open_loop(addr, &key, "POST", calls, 2000.0, 20_000, 32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn paged_cdr_queries_at_2000_per_second() {
    let rows: i64 = std::env::var("WARP_BENCH_CDRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let t = unlimited().await;
    t.fixture().await;
    let started = Instant::now();
    // 1,000 customers' worth of calls, spread evenly over 2026, C1 among them.
    sqlx::query(
        "INSERT INTO billing.rated_cdrs (call_id, start_stamp, ban, dnis, zone, disposition,
             duration_secs, billed_secs, customer_rate, customer_initial, customer_subsequent,
             customer_charge)
         SELECT 'c' || g, timestamptz '2026-01-01' + (g * 31535999 / $1) * interval '1 second',
                CASE WHEN g % 1000 = 0 THEN 'C1' ELSE 'X' || (g % 1000) END,
                '12125550000', 'INTERSTATE', 'ANSWERED', 60, 60, 0.01, 6, 6, 0.01
         FROM generate_series(1, $1) g",
    )
    .bind(rows)
    .execute(&t.pool)
    .await
    .unwrap();
    // As an operator would after a bulk load: otherwise autovacuum works through the
    // fresh partitions (and reads set hint bits) during the measurement.
    sqlx::query("VACUUM ANALYZE billing.rated_cdrs")
        .execute(&t.pool)
        .await
        .unwrap();
    println!("{rows} CDRs loaded in {:?}", started.elapsed());
    let key = t.key("read_only", Some("C1")).await;
    let pages: Vec<(String, String)> = (1..=12)
        .map(|m| {
            let path =
                format!("/api/v1/customers/C1/cdrs?limit=100&start_date=2026-{m:02}-01T00:00:00Z");
            (path, String::new())
        })
        .collect();
    let addr = serve(&t).await;
    open_loop(addr, &key, "GET", pages, 2000.0, 20_000, 32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn a_million_row_deck_upload() {
    let t = unlimited().await;
    t.fixture().await;
    let decks = t.get("/api/v1/rate-decks?vendor_id=V1", common::ROOT).await;
    let deck = decks.data()[0]["id"].as_i64().unwrap();
    let mut csv = String::from("prefix,effective_from,interstate,intrastate,local\n");
    for i in 0..1_000_000u64 {
        csv.push_str(&format!(
            "1{:09},2026-01-01,0.0045,0.0042,0.0015\n",
            2_002_000_000 + i
        ));
    }
    let addr = serve(&t).await;
    let mut conn = Conn::open(addr).await;
    let started = Instant::now();
    let req = format!(
        "POST /api/v1/rate-decks/{deck}/upload?mode=replace HTTP/1.1\r\nhost: bench\r\n\
         authorization: Bearer {}\r\ncontent-type: text/csv\r\ncontent-length: {}\r\n\r\n",
        common::ROOT,
        csv.len()
    );
    conn.0.get_mut().write_all(req.as_bytes()).await.unwrap();
    conn.0.get_mut().write_all(csv.as_bytes()).await.unwrap();
    let mut line = String::new();
    conn.0.read_line(&mut line).await.unwrap();
    println!(
        "1M-row deck upload: {} in {:?} (load average {})",
        line.trim(),
        started.elapsed(),
        load_average()
    );
    assert!(line.contains(" 200 "), "{line}");
}
