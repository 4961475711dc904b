//! `warp pull` against the real API (served from this process on a private PostgreSQL),
//! and against a server that sends something that is no snapshot; `warp pull --every
//! --redis` hearing the API's announcements on a real Redis, and spreading the pulls
//! they cause (`--spread`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warp_testkit::{Postgres, Redis, TestCa};

const ROOT: &str = "pull-test-root-key";

struct Api {
    url: String,
    published: PathBuf,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    _pg: Postgres,
}

impl Api {
    fn start() -> Api {
        Api::announcing_on(None, None)
    }

    /// The API, announcing each new generation on `redis` when there is one (a rediss
    /// one's certificate checked against `ca`).
    fn announcing_on(redis: Option<&str>, ca: Option<&Path>) -> Api {
        let pg = Postgres::start().expect("start a private PostgreSQL");
        let dir = tempfile::tempdir().unwrap();
        let published = dir.path().join("api.snap");
        let (db, snap) = (pg.url.clone(), published.display().to_string());
        let config = warp_api::config::Config::from_lookup(|k| match k {
            "WARP_DATABASE_URL" => Some(db.clone()),
            "WARP_SNAPSHOT" => Some(snap.clone()),
            "WARP_BOOTSTRAP_API_KEY" => Some(ROOT.into()),
            "WARP_REDIS_URL" => redis.map(str::to_owned),
            "WARP_REDIS_CA" => ca.map(|ca| ca.display().to_string()),
            _ => None,
        })
        .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let addr = rt.block_on(async {
            let state = warp_api::start(config).await.expect("start the API");
            let (app, _) = warp_api::routes::app(state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move { axum::serve(listener, app).await });
            addr
        });
        Api {
            url: format!("http://{addr}"),
            published,
            rt,
            _dir: dir,
            _pg: pg,
        }
    }

    /// A super-admin POST of `body` to `path`; the answer's `data`.
    fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}/api/v1/{path}", self.url))
                .bearer_auth(ROOT)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let r: serde_json::Value = serde_json::from_str(&r).unwrap();
            r["data"].clone()
        })
    }

    /// Changes the routing data (a partition more) and publishes it: the next
    /// generation (the same data would keep its generation).
    fn publish(&self) -> u64 {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let partition =
            serde_json::json!({"id": format!("P{n}"), "name": format!("partition {n}")});
        self.post("partitions", partition);
        let d = self.post("routing/publish", serde_json::json!({}));
        d["generation"].as_u64().expect("a generation")
    }

    /// How many pulls the API has refused for the snapshot's format (406), from its
    /// metrics.
    fn refusals(&self) -> u64 {
        let text = self.rt.block_on(async {
            reqwest::get(format!("{}/metrics", self.url))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        let line = r#"warp_api_requests_total{method="GET",route="/api/v1/routing/snapshot",status="406"} "#;
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .map_or(0, |n| n.parse().unwrap())
    }

    /// Serves, as generation `generation`, snapshot `file` relabelled as format
    /// `version`: a file an API of another version published, which this build does
    /// not read. It waits out first the publish the API's own notice of the last change
    /// may have scheduled (500 ms of quiet): one after the file is placed would find no
    /// file of its own there and write it back.
    fn serve_in_format(&self, file: &[u8], generation: u64, version: u32) {
        use warp_core::snapshot::format::{header_hash, Header, ENTRY_LEN, HEADER_LEN};
        std::thread::sleep(Duration::from_millis(1000));
        let mut bytes = file.to_vec();
        warp_core::snapshot::restamp(&mut bytes, generation, 0).unwrap();
        let mut h = warp_core::snapshot::header(&bytes).unwrap();
        h.version = version;
        let table = HEADER_LEN..HEADER_LEN + ENTRY_LEN * h.section_count as usize;
        h.header_hash = header_hash(&h, &bytes[table]);
        let mut put = |at: usize, field: &[u8]| bytes[at..at + field.len()].copy_from_slice(field);
        put(
            std::mem::offset_of!(Header, version),
            &version.to_le_bytes(),
        );
        put(
            std::mem::offset_of!(Header, header_hash),
            &h.header_hash.to_le_bytes(),
        );
        warp_core::snapshot::publish(&bytes, &self.published).unwrap();
    }

    /// A new staff or machine key of `role` (`sip_edge`: a SIP edge's, which may pull
    /// the snapshot and nothing else).
    fn key(&self, role: &str) -> String {
        let d = self.post("api-keys", serde_json::json!({"name": role, "role": role}));
        d["secret"].as_str().expect("a secret").to_owned()
    }
}

fn pull(api: &str, key: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warp"))
        .args(["pull", "--api", api, "--key", key, "--out"])
        .arg(out)
        .output()
        .expect("warp runs")
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn an_edge_pulls_each_new_generation_once_and_keeps_its_copy_when_a_pull_fails() {
    let api = Api::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("edge/routing.snap");
    let g = api.publish();
    let key = api.key("sip_edge");
    let first = pull(&api.url, &key, &out);
    assert!(first.status.success(), "{}", said(&first));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&api.published).unwrap()
    );
    assert!(
        said(&first).contains(&format!("generation {g} ")),
        "{}",
        said(&first)
    );
    // Nothing new: a 304, and the file is not rewritten.
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&out).unwrap());
    let before = inode();
    let again = pull(&api.url, &key, &out);
    assert!(
        said(&again).contains(&format!("is current: generation {g}")),
        "{}",
        said(&again)
    );
    assert_eq!(inode(), before);
    // A new generation replaces it.
    let next = api.publish();
    assert!(next > g);
    assert!(pull(&api.url, &key, &out).status.success());
    assert_eq!(warp_core::Snapshot::open(&out).unwrap().generation(), next);

    // Refusals say why, and leave the edge's copy serving.
    let wrong = pull(&api.url, "not-a-key", &out);
    assert!(!wrong.status.success());
    assert!(said(&wrong).contains("401"), "{}", said(&wrong));
    // Support staff may simulate calls on it, not take the file (it holds password hashes).
    let staff = pull(&api.url, &api.key("support"), &out);
    assert!(!staff.status.success());
    assert!(said(&staff).contains("403 Forbidden"), "{}", said(&staff));
    let closed = format!(
        "http://127.0.0.1:{}",
        warp_testkit::free_tcp_port().unwrap()
    );
    let down = pull(&closed, &key, &out);
    assert!(!down.status.success());
    assert!(
        said(&down).contains(&format!("GET {closed}/api/v1/routing/snapshot")),
        "{}",
        said(&down)
    );
    let garbled = garbling_server();
    let bad = pull(&garbled, &key, &out);
    assert!(!bad.status.success());
    assert!(said(&bad).contains("no sound snapshot"), "{}", said(&bad));
    assert_eq!(
        warp_core::Snapshot::open_verified(&out)
            .unwrap()
            .generation(),
        next
    );
}

/// A file compiled by hand on the edge (`warp compile` numbers a first file 1, as the
/// API numbers its first) bears the API's number with other data: the pull replaces it.
#[test]
fn an_edge_file_with_the_apis_number_and_other_data_is_replaced() {
    let api = Api::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("routing.snap");
    let g = api.publish();
    let by_hand = warp_core::snapshot::compile(&Default::default(), g).unwrap();
    warp_core::snapshot::publish(&by_hand, &out).unwrap();
    let pulled = pull(&api.url, &api.key("sip_edge"), &out);
    assert!(pulled.status.success(), "{}", said(&pulled));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&api.published).unwrap(),
        "{}",
        said(&pulled)
    );
}

/// An API serving a snapshot format this edge does not read (one upgraded before it, or
/// after): a pull downloads nothing and fails naming both formats, the edge's file
/// kept; an edge that names no format (those before the header) is sent the file as
/// ever, with the header naming its format.
#[test]
fn a_pull_of_a_snapshot_in_another_format_fails_naming_both_and_downloads_nothing() {
    let api = Api::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("routing.snap");
    let key = api.key("sip_edge");
    let g = api.publish();
    assert!(pull(&api.url, &key, &out).status.success());
    let held = std::fs::read(&out).unwrap();
    let ours = warp_core::snapshot::format::FORMAT_VERSION;
    let other = ours + 1;
    api.serve_in_format(&held, g + 1, other);

    let refused = pull(&api.url, &key, &out);
    assert!(!refused.status.success(), "{}", said(&refused));
    assert!(
        said(&refused).contains(&format!(
            "generation {} is snapshot format {other} and this warp reads format {ours}",
            g + 1
        )),
        "{}",
        said(&refused)
    );
    assert!(
        !said(&refused).contains("no sound snapshot"),
        "{}",
        said(&refused)
    );
    assert_eq!(std::fs::read(&out).unwrap(), held);
    assert_eq!(api.refusals(), 1);

    let old_edge = api.rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/routing/snapshot", api.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let format = r.headers()["warp-snapshot-format"]
            .to_str()
            .unwrap()
            .to_owned();
        (r.status(), format, r.bytes().await.unwrap())
    });
    assert_eq!(old_edge.0, reqwest::StatusCode::OK);
    assert_eq!(old_edge.1, other.to_string());
    assert_eq!(old_edge.2, std::fs::read(&api.published).unwrap());
}

/// A polling edge says once per generation that the API serves a format it does not
/// read, not at every poll, keeps its file meanwhile, and pulls as usual once the
/// API serves its format again.
#[test]
fn a_polling_edge_says_once_per_generation_that_the_format_differs_and_pulls_when_it_matches() {
    let api = Api::start();
    let key = api.key("sip_edge");
    let g = api.publish();
    let mut edge = Edge::start(&api, &key, &["--every", "1"]);
    edge.wait_for(g, Duration::from_secs(10));
    let held = std::fs::read(&api.published).unwrap();
    let other = warp_core::snapshot::format::FORMAT_VERSION + 1;
    let said_for = |edge: &Edge, generation: u64| {
        let told = format!("generation {generation} is snapshot format {other}");
        edge.stderr().matches(&told).count()
    };
    let refusals_reach = |n: u64| {
        let start = Instant::now();
        while api.refusals() < n {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{} refusals",
                api.refusals()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for (foreign, polls) in [(g + 1, 3), (g + 2, 6)] {
        api.serve_in_format(&held, foreign, other);
        refusals_reach(polls);
        assert_eq!(said_for(&edge, foreign), 1, "{}", edge.said());
        assert_eq!(edge.generation(), Some(g), "{}", edge.said());
        assert!(edge.running(), "{}", edge.said());
    }
    assert!(
        !edge.stderr().contains("no sound snapshot"),
        "{}",
        edge.said()
    );
    let back = api.publish();
    edge.wait_for(back, Duration::from_secs(10));
}

/// A server that answers one request 200 with bytes that are no snapshot, as a
/// misconfigured proxy in front of the API might.
fn garbling_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request);
        let body = b"<html>Welcome to nginx!</html>";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body);
    });
    format!("http://{addr}")
}

/// `warp pull --every …` running in the background as a service would, its output
/// in files; killed on drop.
struct Edge {
    child: Child,
    out: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Edge {
    /// `warp pull --every every --redis redis --spread spread`.
    fn listening(api: &Api, key: &str, every: &str, redis: &str, spread: &str) -> Edge {
        let args = ["--every", every, "--redis", redis, "--spread", spread];
        Edge::start(api, key, &args)
    }

    fn start(api: &Api, key: &str, args: &[&str]) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("routing.snap");
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_warp"))
            .args(["pull", "--api", &api.url, "--key", key, "--out"])
            .arg(&out)
            .args(args)
            .env_remove("WARP_REDIS_URL")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("warp runs");
        Edge {
            child,
            out,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// The generation the edge's file holds now.
    fn generation(&self) -> Option<u64> {
        warp_core::Snapshot::open_verified(&self.out)
            .ok()
            .map(|s| s.generation())
    }

    /// Waits until the edge holds generation `g`; how long that took.
    fn wait_for(&mut self, g: u64, within: Duration) -> Duration {
        arrivals(std::slice::from_mut(self), g, within)[0]
    }

    /// The pulls it has reported (one stdout line each).
    fn pulls(&self) -> usize {
        std::fs::read_to_string(&self.stdout)
            .unwrap()
            .lines()
            .count()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }

    fn said(&self) -> String {
        let stdout = std::fs::read_to_string(&self.stdout).unwrap();
        format!("stdout:\n{stdout}stderr:\n{}", self.stderr())
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// Waits until each edge holds generation `g`; how long each took (to within 20 ms).
fn arrivals(edges: &mut [Edge], g: u64, within: Duration) -> Vec<Duration> {
    let start = Instant::now();
    let mut took = vec![None; edges.len()];
    loop {
        for (edge, took) in edges.iter_mut().zip(&mut took) {
            if took.is_some() {
                continue;
            }
            if edge.generation() == Some(g) {
                *took = Some(start.elapsed());
                continue;
            }
            assert!(
                start.elapsed() < within,
                "generation {g} did not reach the edge within {within:?}; it holds {:?}\n{}",
                edge.generation(),
                edge.said()
            );
            assert!(edge.running(), "warp pull ended\n{}", edge.said());
        }
        if let Some(all) = took.iter().copied().collect::<Option<Vec<_>>>() {
            return all;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polling once an hour: whatever reaches an edge sooner came by an announcement (or
/// by the pull it makes on subscribing).
const HOURLY: &str = "3600";

/// Waits until `n` clients are subscribed to the announcements on `redis`.
fn wait_for_subscribers(redis: &str, n: i64) {
    let start = Instant::now();
    while subscribers(redis) != n {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} subscribers to warp:snapshot, not {n}",
            subscribers(redis)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn subscribers(redis: &str) -> i64 {
    let mut conn = redis::Client::open(redis)
        .unwrap()
        .get_connection()
        .unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("warp:snapshot")
        .query(&mut conn)
        .unwrap();
    n
}

/// Publishes `message` on the announcement channel; how many subscribers got it.
fn announce(redis: &str, message: &[u8]) -> i64 {
    let mut conn = redis::Client::open(redis)
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("PUBLISH")
        .arg("warp:snapshot")
        .arg(message)
        .query(&mut conn)
        .unwrap()
}

/// The API announcing on a private Redis, its first generation published, and a key
/// an edge pulls with.
struct Announcing {
    redis: Redis,
    api: Api,
    key: String,
    first: u64,
}

impl Announcing {
    fn start() -> Announcing {
        let redis = Redis::start().expect("start a private redis-server");
        let api = Api::announcing_on(Some(&redis.url), None);
        let first = api.publish();
        let key = api.key("sip_edge");
        Announcing {
            redis,
            api,
            key,
            first,
        }
    }

    /// `n` edges polling hourly, spreading the pulls announcements cause over `spread`
    /// seconds and listening through `via` (the Redis itself, or a relay to it), once
    /// each holds the first generation, all have subscribed and each has made the pull
    /// that follows (two pulls in all): what one pulls next was announced.
    fn settled_edges(&self, n: usize, via: &str, spread: &str) -> Vec<Edge> {
        let mut edges: Vec<Edge> = (0..n)
            .map(|_| Edge::listening(&self.api, &self.key, HOURLY, via, spread))
            .collect();
        arrivals(&mut edges, self.first, Duration::from_secs(20));
        wait_for_subscribers(&self.redis.url, n.try_into().unwrap());
        let start = Instant::now();
        for edge in &edges {
            while edge.pulls() < 2 {
                assert!(start.elapsed() < Duration::from_secs(20), "{}", edge.said());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        edges
    }

    fn settled_edge(&self, via: &str, spread: &str) -> Edge {
        self.settled_edges(1, via, spread).remove(0)
    }
}

/// No spread: an edge pulls as soon as it hears an announcement.
const AT_ONCE: &str = "0";

#[test]
fn with_no_spread_an_edge_takes_a_generation_as_soon_as_the_api_announces_it() {
    let a = Announcing::start();
    let mut edge = a.settled_edge(&a.redis.url, AT_ONCE);
    let api = &a.api;
    for _ in 0..2 {
        let next = api.publish();
        let took = edge.wait_for(next, Duration::from_secs(5));
        assert!(took < Duration::from_secs(5));
    }
    assert_eq!(
        std::fs::read(&edge.out).unwrap(),
        std::fs::read(&api.published).unwrap()
    );
    assert!(
        edge.stderr()
            .contains("listening for new generations on redis://127.0.0.1:"),
        "{}",
        edge.said()
    );
}

#[test]
fn a_fleet_spreads_the_pulls_of_an_announced_generation_over_the_spread() {
    let a = Announcing::start();
    let mut fleet = a.settled_edges(4, &a.redis.url, "3");
    let mut took = Vec::new();
    for _ in 0..3 {
        let next = a.api.publish();
        // Each edge within the spread and its pull.
        took.extend(arrivals(&mut fleet, next, Duration::from_secs(3 + 3)));
    }
    // Not all at once: all twelve under 1 s has a chance of 1 in 531 441.
    let latest = took.iter().max().unwrap();
    assert!(*latest > Duration::from_secs(1), "{took:?}");
}

/// Polling every 2 s, with an announced pull put off by up to 12 s: the poll that
/// falls due first is the pull, and ends the wait.
#[test]
fn a_poll_falling_due_while_an_edge_waits_to_pull_is_that_pull() {
    let a = Announcing::start();
    let mut edge = Edge::listening(&a.api, &a.key, "2", &a.redis.url, "12");
    edge.wait_for(a.first, Duration::from_secs(20));
    wait_for_subscribers(&a.redis.url, 1);
    // Once it has made the pull that follows subscribing, just after a poll.
    let pulled_beyond = |n: usize, within: Duration| {
        let start = Instant::now();
        while edge.pulls() <= n {
            assert!(start.elapsed() < within, "{}", edge.said());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    pulled_beyond(1, Duration::from_secs(20));
    pulled_beyond(edge.pulls(), Duration::from_secs(5));
    let before = edge.pulls();
    let next = a.api.publish();
    let announced = Instant::now();
    // Watched past the end of the longest wait: when it took `next`, when it pulled.
    let (mut took, mut pulled) = (None, Vec::new());
    while announced.elapsed() < Duration::from_secs(13) {
        if took.is_none() && edge.generation() == Some(next) {
            took = Some(announced.elapsed());
        }
        let made = edge.pulls() - before;
        assert!(
            made <= pulled.len() + 1,
            "two pulls at once\n{}",
            edge.said()
        );
        if made > pulled.len() {
            pulled.push(Instant::now());
        }
        assert!(edge.running(), "{}", edge.said());
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = took.expect("the generation reached the edge");
    assert!(took < Duration::from_secs(5), "{took:?}\n{}", edge.said());
    // One pull every 1.8 to 2.2 s: none made for the announcement as well.
    for pair in pulled.windows(2) {
        assert!(
            pair[1] - pair[0] > Duration::from_secs(1),
            "{pulled:?}\n{}",
            edge.said()
        );
    }
}

#[test]
fn an_edge_ignores_what_is_no_announcement_and_one_of_the_generation_it_holds() {
    let a = Announcing::start();
    let mut edge = a.settled_edge(&a.redis.url, AT_ONCE);
    let (api, redis, g) = (&a.api, &a.redis, a.first);
    let pulls = edge.pulls();
    let garbage: [&[u8]; 5] = [
        b"not json",
        b"{\"generation\": \"7\"}",
        b"{\"generation\": -1}",
        b"[]",
        &[0xff, 0xfe, 0],
    ];
    for message in garbage {
        assert_eq!(announce(&redis.url, message), 1);
    }
    // The generation it holds: nothing to pull.
    let held = format!("{{\"generation\": {g}, \"path\": \"/elsewhere/routing.snap\"}}");
    assert_eq!(announce(&redis.url, held.as_bytes()), 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(edge.pulls(), pulls, "{}", edge.said());
    assert!(edge.running(), "{}", edge.said());
    let ignored = edge
        .stderr()
        .matches("ignored a message on warp:snapshot")
        .count();
    assert_eq!(ignored, garbage.len(), "{}", edge.said());
    assert!(edge.stderr().contains("\"not json\""), "{}", edge.said());

    // It still hears the next one.
    let next = api.publish();
    edge.wait_for(next, Duration::from_secs(5));
    assert_eq!(edge.pulls(), pulls + 1, "{}", edge.said());
}

#[test]
fn announcements_during_a_pull_cost_one_more_pull_not_one_each() {
    let a = Announcing::start();
    let edge = a.settled_edge(&a.redis.url, AT_ONCE);
    let (api, key, g) = (&a.api, &a.key, a.first);
    // The first wakes it, the rest come while it pulls.
    let more = pulls_for_a_burst(&a, &edge, Duration::from_secs(10), Duration::from_secs(2));
    assert!(more <= 2, "{more} pulls\n{}", edge.said());
    assert_eq!(edge.generation(), Some(g));

    // With --every 0 the variable is no concern: one pull, and done.
    let once = Command::new(env!("CARGO_BIN_EXE_warp"))
        .args(["pull", "--api", &api.url, "--key", key, "--out"])
        .arg(&edge.out)
        .env("WARP_REDIS_URL", "redis://127.0.0.1:1/")
        .output()
        .unwrap();
    assert!(once.status.success(), "{}", said(&once));
}

/// Announces twenty generations the edge does not hold (nor the API serves) at once;
/// the pulls it makes for them, counted once it has made one and `then` has passed.
fn pulls_for_a_burst(a: &Announcing, edge: &Edge, first_within: Duration, then: Duration) -> usize {
    let pulls = edge.pulls();
    let mut burst = redis::pipe();
    for n in 1..=20 {
        let message = format!("{{\"generation\": {}}}", a.first + 1000 + n);
        burst.cmd("PUBLISH").arg("warp:snapshot").arg(message);
    }
    let mut conn = redis::Client::open(a.redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let heard: Vec<i64> = burst.query(&mut conn).unwrap();
    assert_eq!(heard, vec![1; 20]);
    let start = Instant::now();
    while edge.pulls() == pulls {
        assert!(start.elapsed() < first_within, "{}", edge.said());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Time for any more it would make.
    std::thread::sleep(then);
    edge.pulls() - pulls
}

#[test]
fn announcements_heard_while_an_edge_waits_to_pull_add_no_pull() {
    let a = Announcing::start();
    let edge = a.settled_edge(&a.redis.url, "3");
    // The first starts the wait, the rest come during it (within a millisecond or so),
    // and the pull that ends it covers them; another wait would end within 3 s.
    let more = pulls_for_a_burst(
        &a,
        &edge,
        Duration::from_secs(3 + 3),
        Duration::from_secs(4),
    );
    assert_eq!(more, 1, "{}", edge.said());
    assert_eq!(edge.generation(), Some(a.first));
}

#[test]
fn a_bad_redis_url_is_refused_at_start_without_its_password() {
    let out = Command::new(env!("CARGO_BIN_EXE_warp"))
        .args([
            "pull",
            "--api",
            "http://127.0.0.1:1",
            "--key",
            "k",
            "--every",
            "5",
        ])
        .args(["--redis", "http://:hunter2@cache:6379"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(said(&out).contains("is not a Redis URL"), "{}", said(&out));
    assert!(!said(&out).contains("hunter2"), "{}", said(&out));
}

/// A polling edge says at start what it runs with, as every service does: its key
/// never, its URLs without their passwords.
#[test]
fn a_polling_edge_prints_its_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("routing.snap");
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warp"))
        .args([
            "pull",
            "--api",
            "http://edge:apipw@127.0.0.1:1",
            "--key",
            "k3yk3y",
        ])
        .args(["--every", "60", "--spread", "2", "--out"])
        .arg(&out)
        .args(["--redis", "redis://:hunter2@127.0.0.1:1/"])
        .env("WARP_CONFIG", "")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let said = loop {
        let said = std::fs::read_to_string(&stderr).unwrap();
        if said.contains("effective configuration") || start.elapsed() > Duration::from_secs(10) {
            break said;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let line = said
        .lines()
        .find(|l| l.contains("effective configuration"))
        .unwrap_or_else(|| panic!("no effective configuration in:\n{said}"));
    let expected = format!(
        "warp pull: effective configuration: api http://edge:***@127.0.0.1:1, key ***, out {}, \
         every 60 s, redis redis://:***@127.0.0.1:1/, redis_ca -, spread 2 s, timeout 60 s, \
         config file -",
        out.display()
    );
    assert_eq!(line, expected);
    for secret in ["apipw", "k3yk3y", "hunter2"] {
        assert!(!said.contains(secret), "{secret} in:\n{said}");
    }
}

/// The API announcing on a Redis over TLS, and an edge listening there, both trusting
/// the test CA that signed its certificate.
#[test]
fn an_edge_hears_the_announcements_on_a_redis_over_tls() {
    let ca = TestCa::make("redis").unwrap();
    let redis = Redis::start_tls(&ca).unwrap();
    let rediss = redis.tls_url.clone().unwrap();
    let api = Api::announcing_on(Some(&rediss), Some(&ca.ca));
    let first = api.publish();
    let key = api.key("sip_edge");
    let trusting = ["--redis-ca", ca.ca.to_str().unwrap()];
    let args = ["--every", HOURLY, "--redis", &rediss, "--spread", AT_ONCE];
    let mut edge = Edge::start(&api, &key, &[&args[..], &trusting].concat());
    edge.wait_for(first, Duration::from_secs(20));
    wait_for_subscribers(&redis.url, 1);
    // The pull that follows subscribing: what the edge pulls next was announced.
    let start = Instant::now();
    while edge.pulls() < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", edge.said());
        std::thread::sleep(Duration::from_millis(50));
    }
    let next = api.publish();
    edge.wait_for(next, Duration::from_secs(5));
    assert!(
        edge.stderr()
            .contains("listening for new generations on rediss://127.0.0.1:"),
        "{}",
        edge.said()
    );
}

#[test]
fn a_redis_ca_that_cannot_be_read_is_refused_at_start() {
    let mut warp = Command::new(env!("CARGO_BIN_EXE_warp"))
        .args(["pull", "--api", "http://127.0.0.1:1", "--key", "k"])
        .args([
            "--every",
            "5",
            "--redis",
            "rediss://:hunter2@127.0.0.1:6380/",
        ])
        .env("WARP_REDIS_CA", "/nonexistent/redis-ca.pem")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Not refused, it would poll forever.
    let start = Instant::now();
    while warp.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = warp.kill();
    let out = warp.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        said(&out).contains("WARP_REDIS_CA: \"/nonexistent/redis-ca.pem\" cannot be read"),
        "{}",
        said(&out)
    );
    assert!(
        said(&out).contains("rediss://:***@127.0.0.1:6380/"),
        "{}",
        said(&out)
    );
    assert!(!said(&out).contains("hunter2"), "{}", said(&out));
}

#[test]
fn a_spread_that_is_no_whole_number_of_seconds_up_to_300_is_refused_at_start() {
    let pull = |spread: &str| {
        Command::new(env!("CARGO_BIN_EXE_warp"))
            .args(["pull", "--api", "http://127.0.0.1:1", "--key", "k"])
            .args(["--spread", spread])
            .output()
            .unwrap()
    };
    for bad in ["-1", "301", "1.5", "5s", "", "18446744073709551616"] {
        let out = pull(bad);
        assert_eq!(out.status.code(), Some(2), "{}", said(&out));
        let expected = format!(
            "invalid value '{bad}' for '--spread <SECONDS>': \"{bad}\" is not a whole number of seconds from 0 to 300"
        );
        assert!(said(&out).contains(&expected), "{}", said(&out));
    }
    // The bounds are taken: the pull itself is what fails, the API being away.
    for good in ["0", "300"] {
        let out = pull(good);
        assert_eq!(out.status.code(), Some(1), "{}", said(&out));
        assert!(
            said(&out).contains("GET http://127.0.0.1:1/"),
            "{}",
            said(&out)
        );
    }
}

#[test]
fn an_edge_polls_while_redis_is_away_and_listens_again_when_it_is_back() {
    let Announcing {
        mut redis,
        api,
        key,
        first: g,
    } = Announcing::start();
    let mut hourly = Edge::listening(&api, &key, HOURLY, &redis.url, AT_ONCE);
    let mut polling = Edge::listening(&api, &key, "2", &redis.url, AT_ONCE);
    hourly.wait_for(g, Duration::from_secs(20));
    polling.wait_for(g, Duration::from_secs(20));
    wait_for_subscribers(&redis.url, 2);

    redis.stop();
    // Long enough for several attempts to subscribe again.
    std::thread::sleep(Duration::from_secs(4));
    let during = api.publish();
    polling.wait_for(during, Duration::from_secs(10));
    assert!(hourly.running() && polling.running());
    assert_eq!(hourly.generation(), Some(g), "nothing told it");
    for edge in [&hourly, &polling] {
        let lost = edge.stderr().matches("polling meanwhile").count();
        assert_eq!(lost, 1, "logged once:\n{}", edge.said());
    }

    redis.restart().expect("redis-server again on its port");
    // Subscribed again, it pulls what it may have missed.
    hourly.wait_for(during, Duration::from_secs(20));
    wait_for_subscribers(&redis.url, 2);
    let after = api.publish();
    let took = hourly.wait_for(after, Duration::from_secs(5));
    assert!(took < Duration::from_secs(5));
    polling.wait_for(after, Duration::from_secs(5));
    assert_eq!(
        hourly
            .stderr()
            .matches("listening for new generations")
            .count(),
        2,
        "{}",
        hourly.said()
    );
}

#[test]
fn an_edge_whose_subscription_went_silent_subscribes_again() {
    let a = Announcing::start();
    let relay = SilencingRelay::to(a.redis.port);
    let mut edge = a.settled_edge(&relay.url, AT_ONCE);
    let api = &a.api;

    // A ping answered keeps the subscription.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        !edge.stderr().contains("subscribing again"),
        "{}",
        edge.said()
    );

    relay.silence();
    let next = api.publish();
    // Its pings go unanswered: within 5 s + 5 s it drops the connection, subscribes
    // again on a new one and pulls.
    edge.wait_for(next, Duration::from_secs(20));
    assert!(
        edge.stderr().contains("no answer to a ping"),
        "{}",
        edge.said()
    );
}

/// A TCP relay to a local port whose connections can go silent: what they carry, both
/// ways, is dropped, but they stay open, as when a NAT or firewall forgets an idle
/// connection and no reset ever comes. Connections made after that are relayed.
struct SilencingRelay {
    url: String,
    /// Connections numbered below this are silent.
    silent_below: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
}

impl SilencingRelay {
    fn to(port: u16) -> SilencingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}/", listener.local_addr().unwrap());
        let silent_below = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (silent, count) = (Arc::clone(&silent_below), Arc::clone(&accepted));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let silent = Arc::clone(&silent);
                    std::thread::spawn(move || {
                        relay(from, to, || n < silent.load(Ordering::SeqCst))
                    });
                }
            }
        });
        SilencingRelay {
            url,
            silent_below,
            accepted,
        }
    }

    /// Silences every connection made so far.
    fn silence(&self) {
        self.silent_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

fn relay(mut from: TcpStream, mut to: TcpStream, silent: impl Fn() -> bool) {
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if !silent() && to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
    if !silent() {
        let _ = to.shutdown(std::net::Shutdown::Write);
    }
}

/// `warp` with none of the test runner's `WARP_*` variables, reading `config`.
fn warp_with_config(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warp"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("WARP_") {
            command.env_remove(var);
        }
    }
    command.env("WARP_CONFIG", config);
    command
}

#[test]
fn an_edge_pulls_with_its_settings_from_the_file_alone() {
    let api = Api::start();
    api.publish();
    let key = api.key("sip_edge");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("edge.snap");
    let config = dir.path().join("warp.toml");
    std::fs::write(
        &config,
        format!(
            "snapshot = {:?}\n\n[pull]\napi_url = \"{}\"\napi_key = \"{key}\"\n",
            out.display().to_string(),
            api.url
        ),
    )
    .unwrap();
    let pulled = warp_with_config(&config).arg("pull").output().unwrap();
    assert!(pulled.status.success(), "{}", said(&pulled));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&api.published).unwrap()
    );

    // A typo stops pull naming it; the commands that are no service read no file.
    std::fs::write(&config, "[pull]\napi_ur = \"http://x\"\n").unwrap();
    let refused = warp_with_config(&config).arg("pull").output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    assert!(
        said(&refused).contains("line 2: `pull.api_ur`"),
        "{}",
        said(&refused)
    );
    let inspected = warp_with_config(&config)
        .arg("inspect")
        .arg(&out)
        .output()
        .unwrap();
    assert!(inspected.status.success(), "{}", said(&inspected));
}
