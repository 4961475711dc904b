//! The client against peers that misbehave in ways a real rtpengine cannot be made to:
//! stub servers on loopback.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
