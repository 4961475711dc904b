//! The `warp-api` binary stops on SIGTERM as it does on Ctrl-C: it answers the requests
//! in flight, publishes the routing changes still waiting out the debounce, and exits 0.

mod common;

use common::{TestApi, ROOT};
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warp_core::Snapshot;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A vendor's creation as raw HTTP/1.1: its head with the first `split` bytes of the
/// body, then the rest.
fn new_vendor(id: &str, split: usize) -> (String, String) {
    let body = format!(r#"{{"id": "{id}", "name": "{id}", "kind": "DNIS"}}"#);
    let head = format!(
        "POST /api/v1/vendors HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {ROOT}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(split);
    (format!("{head}{first}"), rest.to_string())
}

/// What the server sends until it closes the connection: 30 s at most, or a server
/// that holds it open unanswered would hang the test instead of failing it.
async fn read_all(conn: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer));
    assert!(
        read.await.is_ok(),
        "no answer and the connection still open after 30 s: {:?}",
        String::from_utf8_lossy(&answer)
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_and_publishes_queued_changes() {
    let t = TestApi::start().await;
    let snapshot = t.dir.path().join("served.snap");
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = std::fs::File::create(t.dir.path().join("warp-api.log")).unwrap();
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_warp-api"))
            .env("WARP_DATABASE_URL", &t.config.database_url)
            .env("WARP_SNAPSHOT", &snapshot)
            .env("WARP_BOOTSTRAP_API_KEY", ROOT)
            .env("WARP_LISTEN", addr.to_string())
            // Nothing is published by the debouncer within this test.
            .env("WARP_PUBLISH_DEBOUNCE_MS", "600000")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start warp-api"),
    );
    let since = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        assert!(since.elapsed() < Duration::from_secs(60), "no listener");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = Snapshot::open(&snapshot).unwrap().summary();
    assert_eq!(before.vendors, 0);

    // A change answered before the signal, one still being sent when it comes.
    let (head, rest) = new_vendor("V1", 0);
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(format!("{head}{rest}").as_bytes())
        .await
        .unwrap();
    let answer = read_all(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let (head, rest) = new_vendor("V2", 10);
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    in_flight.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kill = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    in_flight.write_all(rest.as_bytes()).await.unwrap();
    let answer = read_all(&mut in_flight).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer:?}");

    let since = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(since.elapsed() < Duration::from_secs(30), "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let after = Snapshot::open(&snapshot).unwrap().summary();
    assert!(after.generation > before.generation);
    assert_eq!(after.vendors, 2, "both changes are published");
}
