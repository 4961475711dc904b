//! The client against peers that misbehave in ways a real rtpengine cannot be made to:
//! stub servers on loopback.

use std::net::SocketAddr;
use std::time::Duration;
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
