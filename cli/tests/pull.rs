//! `warp pull` against the real API (served from this process on a private PostgreSQL),
//! and against a server that sends something that is no snapshot.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use warp_testkit::Postgres;

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
        let pg = Postgres::start().expect("start a private PostgreSQL");
        let dir = tempfile::tempdir().unwrap();
        let published = dir.path().join("api.snap");
        let (db, snap) = (pg.url.clone(), published.display().to_string());
        let config = warp_api::config::Config::from_lookup(|k| match k {
            "WARP_DATABASE_URL" => Some(db.clone()),
            "WARP_SNAPSHOT" => Some(snap.clone()),
            "WARP_BOOTSTRAP_API_KEY" => Some(ROOT.into()),
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

    /// Publishes the routing data as it stands: the next generation.
    fn publish(&self) -> u64 {
        let d = self.post("routing/publish", serde_json::json!({}));
        d["generation"].as_u64().expect("a generation")
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
