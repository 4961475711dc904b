//! The client against peers that misbehave in ways a real rtpengine cannot be made to:
//! stub servers on loopback.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warp_rtpengine::bencode;
use warp_rtpengine::commands::Ping;
use warp_rtpengine::{Client, Endpoint, Error, Options};

fn options(timeout: Duration) -> Options {
    Options {
        timeout,
        retries: 0,
    }
}

/// The cookie of a message (`cookie SP body`).
fn cookie_of(message: &[u8]) -> Vec<u8> {
    let space = message.iter().position(|&b| b == b' ').unwrap();
    message[..space].to_vec()
}

/// The CPU time this thread has used so far (Linux schedstat).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    Duration::from_nanos(stat.split(' ').next().unwrap().parse().unwrap())
}

/// A UDP peer that answers each request with `cookie SP body`, the bodies in turn.
async fn udp_stub(bodies: &'static [&'static [u8]]) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        for body in bodies {
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            let reply = [&cookie_of(&buf[..n])[..], b" ", body].concat();
            socket.send_to(&reply, from).await.unwrap();
        }
    });
    addr
}

/// rtpengine copies a reason from its input (a bad call-id, a bad SDP line) without
/// checking it is UTF-8: such a reason is shown lossily decoded, not as "(no reason)".
#[tokio::test]
async fn a_reason_that_is_not_utf8_is_shown_lossily_decoded() {
    let addr = udp_stub(&[
        b"d6:result5:error12:error-reason10:bad \xff\xfe tage",
        b"d6:result10:load limit7:message8:full \xff!!e",
    ])
    .await;
    let c = Client::connect(&Endpoint::Udp(addr), options(Duration::from_secs(2)))
        .await
        .unwrap();
    match c.send(&Ping).await {
        Err(Error::Rtpengine(reason)) => assert_eq!(reason, "bad \u{fffd}\u{fffd} tag"),
        other => panic!("expected an rtpengine error, got {other:?}"),
    }
    match c.send(&Ping).await {
        Err(Error::LoadLimit(message)) => assert_eq!(message, "full \u{fffd}!!"),
        other => panic!("expected a load limit, got {other:?}"),
    }
}

/// An HTTP server that answers one request with `respond(cookie)` and then keeps the
/// connection open until the client closes it, `Connection: close` notwithstanding.
async fn keep_alive_http(respond: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"pinge") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed before its request was in");
            request.extend_from_slice(&buf[..n]);
        }
        let head_end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        s.write_all(&respond(&cookie_of(&request[head_end + 4..])))
            .await
            .unwrap();
        while s.read(&mut buf).await.unwrap_or(0) > 0 {}
    });
    addr
}

/// The reply ends where its Content-Length or its last chunk says: the client does not
/// wait for a close that does not come.
#[tokio::test]
async fn an_http_reply_ends_by_its_framing_on_a_connection_kept_open() {
    let by_length: fn(&[u8]) -> Vec<u8> = |cookie| {
        let payload = [cookie, b" d6:result4:ponge"].concat();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        [head.as_bytes(), &payload].concat()
    };
    let chunked: fn(&[u8]) -> Vec<u8> = |cookie| {
        let first = [cookie, b" d6:resu"].concat();
        let head = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            first.len()
        );
        [head.as_bytes(), &first, b"\r\n9\r\nlt4:ponge\r\n0\r\n\r\n"].concat()
    };
    for respond in [by_length, chunked] {
        let addr = keep_alive_http(respond).await;
        let endpoint = format!("http://{addr}").parse().unwrap();
        let c = Client::connect(&endpoint, options(Duration::from_secs(2)))
            .await
            .unwrap();
        c.send(&Ping).await.unwrap();
    }
}
/// A 2 MiB TCP reply that arrives in a thousand pieces is scanned once in all, not again
/// from its start for every piece: the reader (on this test's thread, as the runtime is
/// current-thread) stays mostly idle while the server dribbles. Rescanning kept it busy
/// for nearly the whole transfer.
#[tokio::test]
async fn a_tcp_reply_dribbled_in_pieces_is_scanned_once() {
    // A list of empty call-ids: the most bencode tokens per byte.
    let mut body = b"d5:callsl".to_vec();
    body.extend(b"0:".repeat(1 << 20));
    body.extend_from_slice(b"e6:result2:oke");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = body.clone();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let request = common::read_request(&mut s, b"liste");
        let mut wire = cookie_of(&request);
        wire.push(b' ');
        wire.extend_from_slice(&reply);
        for piece in wire.chunks(2048) {
            s.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let c = Client::connect(&Endpoint::Tcp(addr), options(Duration::from_secs(60)))
        .await
        .unwrap();
    let (cpu_before, started) = (thread_cpu(), Instant::now());
    let got = c.exchange(b"d7:command4:liste").await.unwrap();
    let (cpu, wall) = (thread_cpu() - cpu_before, started.elapsed());
    server.join().unwrap();
    assert!(
        got == body,
        "reply of {} bytes, not {}",
        got.len(),
        body.len()
    );
    assert!(cpu < wall / 3, "the reader was busy {cpu:?} of {wall:?}");
}

/// A TCP peer answering `pong` to every whole message on every connection; its first
/// connection is not read until `release` says so, as a node that hangs a while.
fn slow_first_tcp_peer(release: std::sync::mpsc::Receiver<()>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut release = Some(release);
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            let wait = release.take();
            std::thread::spawn(move || {
                if let Some(wait) = wait {
                    let _ = wait.recv();
                }
                let mut buf = Vec::new();
                let mut chunk = [0u8; 64 << 10];
                while let Ok(n @ 1..) = s.read(&mut chunk) {
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(space) = buf.iter().position(|&b| b == b' ') {
                        let Ok(Some(len)) = bencode::value_len(&buf[space + 1..]) else {
                            break;
                        };
                        let reply = [&buf[..space], b" d6:result4:ponge"].concat();
                        s.write_all(&reply).unwrap();
                        buf.drain(..space + 1 + len);
                    }
                }
            });
        }
    });
    addr
}

/// A request whose write runs out of time leaves half of it on the connection: the
/// next request must not follow it there, where the peer reads it as the rest of the
/// first (and answers neither).
#[tokio::test]
async fn a_tcp_request_cut_short_does_not_swallow_the_next() {
    let (release, wait) = std::sync::mpsc::channel();
    let addr = slow_first_tcp_peer(wait);
    let c = Client::connect(&Endpoint::Tcp(addr), options(Duration::from_millis(500)))
        .await
        .unwrap();
    // Far more than the socket buffers hold while the peer does not read.
    let pad = 32 << 20;
    let big = format!("d7:command4:ping3:pad{pad}:{}e", "x".repeat(pad));
    let err = c.exchange(big.as_bytes()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    release.send(()).unwrap();
    c.send(&Ping).await.unwrap();
}
