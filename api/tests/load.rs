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

/// One keep-alive HTTP/1.1 connection: just enough client for a load test, reusing
/// its buffers so the generator takes as little of the shared cores as it can.
struct Conn {
    stream: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn {
            stream: BufReader::new(TcpStream::connect(addr).await.unwrap()),
            line: String::new(),
            body: Vec::new(),
        }
    }

    /// Sends one request (whole, as [`request`] writes it); the answer's status.
    async fn send(&mut self, request: &[u8]) -> u16 {
        self.stream.get_mut().write_all(request).await.unwrap();
        self.line.clear();
        self.stream.read_line(&mut self.line).await.unwrap();
        let status = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0;
        loop {
            self.line.clear();
            self.stream.read_line(&mut self.line).await.unwrap();
            if self.line == "\r\n" {
                break;
            }
            if let Some((name, value)) = self.line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    len = value.trim().parse().unwrap_or(0);
                }
            }
        }
        // Grows once to the largest answer; never zeroed again.
        if self.body.len() < len {
            self.body.resize(len, 0);
        }
        self.stream.read_exact(&mut self.body[..len]).await.unwrap();
        status
    }
}

/// The bytes of one request.
fn request(method: &str, path: &str, key: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
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

/// The `warp-api` binary on the test's database: its own process and runtime, as
/// deployed, so the load generator's tasks do not run on the server's threads. Its
/// request log goes to a file, as a deployment's would.
struct Server {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(t: &TestApi) -> Server {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = std::fs::File::create(t.dir.path().join("warp-api.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_warp-api"))
        .env("WARP_DATABASE_URL", &t.config.database_url)
        .env("WARP_SNAPSHOT", &t.config.snapshot)
        .env("WARP_BOOTSTRAP_API_KEY", common::ROOT)
        .env("WARP_RATE_LIMIT", t.config.rate_limit.to_string())
        .env("WARP_LISTEN", addr.to_string())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start warp-api");
    let server = Server { child, addr };
    let since = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "warp-api did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

/// CPU time (ns) of every thread of process `pid`, from the scheduler's counters.
fn process_cpu(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time (ns) of every PostgreSQL process on the box.
fn postgres_cpu() -> u64 {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter(|p| {
            std::fs::read_to_string(p.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|p| process_cpu(&p.file_name().to_string_lossy()))
        .sum()
}

/// CPU time so far of the API server, PostgreSQL and this process (the generator).
fn cpu(server: &Server) -> [u64; 3] {
    [
        process_cpu(&server.child.id().to_string()),
        postgres_cpu(),
        process_cpu("self"),
    ]
}

/// The rate to offer: `WARP_BENCH_RATE` per second, else the 2,000.
fn rate() -> f64 {
    std::env::var("WARP_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000.0)
}

/// Sends `requests` (path, body) round-robin at `rate` per second over `conns`
/// connections; prints the latency percentiles and each party's CPU per request.
async fn open_loop(
    server: &Server,
    key: &str,
    method: &'static str,
    requests: Vec<(String, String)>,
    rate: f64,
    total: usize,
    conns: usize,
) {
    let addr = server.addr;
    let cpu_before = cpu(server);
    let start = Instant::now() + Duration::from_millis(200);
    let requests: Vec<(String, Vec<u8>)> = requests
        .into_iter()
        .map(|(path, body)| {
            let bytes = request(method, &path, key, &body);
            (path, bytes)
        })
        .collect();
    let requests = std::sync::Arc::new(requests);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let mut lat = Vec::new();
            let mut i = c;
            while i < total {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let (path, request) = &requests[i % requests.len()];
                let status = conn.send(request).await;
                // Anything else (a 429 above all) is not the work being measured.
                assert_eq!(status, 200, "{path}");
                lat.push((due - start, due.elapsed()));
                i += conns;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    // The worst latency of each second of the run: shows whether a tail is one stall
    // or spread out.
    let mut worst = vec![Duration::ZERO; 1 + (total as f64 / rate) as usize];
    for t in tasks {
        for (sent, latency) in t.await.unwrap() {
            let second = &mut worst[sent.as_secs() as usize];
            *second = (*second).max(latency);
            all.push(latency);
        }
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    let took = start.elapsed();
    let per_request = |i: usize| (cpu(server)[i] - cpu_before[i]) / 1000 / all.len() as u64;
    println!(
        "{method} x{}: {:.0} req/s achieved, p50 {:?} p99 {:?} max {:?} (load average {}); \
         CPU per request: API {} µs, PostgreSQL {} µs, load generator {} µs",
        all.len(),
        all.len() as f64 / took.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        all[all.len() - 1],
        load_average(),
        per_request(0),
        per_request(1),
        per_request(2),
    );
    let worst: Vec<String> = worst
        .iter()
        .map(|w| format!("{:.1}", w.as_secs_f64() * 1e3))
        .collect();
    println!(
        "worst latency per second of sending (ms): {}",
        worst.join(" ")
    );
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
    let server = serve(&t).await;
    open_loop(&server, &key, "POST", calls, rate(), 20_000, 32).await;
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
    // The test's PostgreSQL runs with fsync off, so the load's gigabytes sit dirty in
    // the page cache and the kernel wrote them back mid-measurement (1.5 GB in one
    // second, the cores busy in writeback). Write them out first, as a server with
    // fsync on would have by its next checkpoint.
    sqlx::query("CHECKPOINT").execute(&t.pool).await.unwrap();
    let synced = std::process::Command::new("sync").status().unwrap();
    assert!(synced.success());
    println!("{rows} CDRs loaded in {:?}", started.elapsed());
    let key = t.key("read_only", Some("C1")).await;
    let pages: Vec<(String, String)> = (1..=12)
        .map(|m| {
            let path =
                format!("/api/v1/customers/C1/cdrs?limit=100&start_date=2026-{m:02}-01T00:00:00Z");
            (path, String::new())
        })
        .collect();
    let server = serve(&t).await;
    open_loop(&server, &key, "GET", pages, rate(), 20_000, 32).await;
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
    let server = serve(&t).await;
    let mut conn = Conn::open(server.addr).await;
    let started = Instant::now();
    let req = format!(
        "POST /api/v1/rate-decks/{deck}/upload?mode=replace HTTP/1.1\r\nhost: bench\r\n\
         authorization: Bearer {}\r\ncontent-type: text/csv\r\ncontent-length: {}\r\n\r\n",
        common::ROOT,
        csv.len()
    );
    conn.stream
        .get_mut()
        .write_all(req.as_bytes())
        .await
        .unwrap();
    conn.stream
        .get_mut()
        .write_all(csv.as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    conn.stream.read_line(&mut line).await.unwrap();
    println!(
        "1M-row deck upload: {} in {:?} (load average {})",
        line.trim(),
        started.elapsed(),
        load_average()
    );
    assert!(line.contains(" 200 "), "{line}");
}
