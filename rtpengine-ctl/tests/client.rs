//! Every typed command against a real rtpengine 10.5, over each transport.

mod common;

use common::{counted, media_port, rtp_packet, sdp, Rtpengine};
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use warp_rtpengine::bencode::Dict;
use warp_rtpengine::commands::*;
use warp_rtpengine::message::{self, Format};
use warp_rtpengine::transport::Transport;
use warp_rtpengine::{blocking, Client, Endpoint, Error, Options};

async fn udp_client(r: &Rtpengine) -> Client {
    Client::connect(&Endpoint::Udp(r.ng), Options::default())
        .await
        .unwrap()
}

fn offer(call: &str, port: u16) -> Offer {
    Offer(MediaRequest::new(
        Target::call(call).from_tag("caller"),
        sdp("a", port),
    ))
}

fn answer(call: &str, port: u16) -> Answer {
    Answer(MediaRequest::new(
        Target::call(call).from_tag("caller").to_tag("callee"),
        sdp("b", port),
    ))
}

#[tokio::test]
async fn ping_over_udp_tcp_http_and_json() {
    let r = Rtpengine::start();
    let endpoints = [
        Endpoint::Udp(r.ng),
        Endpoint::Tcp(r.tcp),
        format!("http://{}", r.http).parse().unwrap(),
    ];
    for ep in &endpoints {
        let c = Client::connect(ep, Options::default()).await.unwrap();
        c.send(&Ping).await.unwrap_or_else(|e| panic!("{ep}: {e}"));
    }
    let json = udp_client(&r).await.with_format(Format::Json);
    json.send(&Ping).await.unwrap();
    // TCP carries many requests on one connection, concurrently.
    let tcp = std::sync::Arc::new(
        Client::connect(&endpoints[1], Options::default())
            .await
            .unwrap(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let tcp = tcp.clone();
        tasks.spawn(async move { tcp.send(&Ping).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
}

/// rtpengine 10.5 reads its TCP socket as one bencode value after another: a body that
/// is not exactly one (JSON, cut short, empty) gets no reply and leaves it waiting for
/// the rest, so nothing more on the connection is answered; bytes after the value become
/// the start of the next request's cookie, so that reply comes back under a cookie no
/// one waits for. The client refuses such a body before it goes out.
#[tokio::test]
async fn a_body_that_is_not_one_bencode_value_is_refused_over_tcp() {
    let r = Rtpengine::start();
    let opts = Options {
        timeout: Duration::from_millis(300),
        retries: 0,
    };
    let tcp = Client::connect(&Endpoint::Tcp(r.tcp), opts).await.unwrap();
    tcp.send(&Ping).await.unwrap();
    for body in [
        &br#"{"command":"ping"}"#[..],
        b"d7:command4:ping",
        b"d7:command4:pingexx",
        b"",
    ] {
        let shown = String::from_utf8_lossy(body);
        let err = tcp.exchange(body).await.unwrap_err();
        assert!(matches!(&err, Error::Config(_)), "{shown}: {err}");
        tcp.send(&Ping)
            .await
            .unwrap_or_else(|e| panic!("after {shown}: {e}"));
    }
    let err = tcp.exchange(br#"{"command":"ping"}"#).await.unwrap_err();
    assert!(err.to_string().contains("JSON over TCP"), "{err}");
    let json = Client::connect(&Endpoint::Tcp(r.tcp), opts)
        .await
        .unwrap()
        .with_format(Format::Json);
    assert!(matches!(json.send(&Ping).await, Err(Error::Config(_))));
}

/// Requests waiting on a TCP connection fail as soon as it is dropped, here because
/// another request's write to a hung node was cut short by its caller, not when their
/// own time runs out: a caller can move on at once.
#[tokio::test]
async fn requests_waiting_on_a_dropped_tcp_connection_fail_at_once() {
    let r = Rtpengine::start();
    let opts = Options {
        timeout: Duration::from_secs(3),
        retries: 0,
    };
    let tcp = Client::connect(&Endpoint::Tcp(r.tcp), opts).await.unwrap();
    tcp.send(&Ping).await.unwrap();
    // Hung: it neither answers nor reads, so a write bigger than the socket buffers stalls.
    r.signal("-STOP");
    let pad = 32 << 20;
    let big = format!("d7:command4:ping3:pad{pad}:{}e", "x".repeat(pad));
    let started = Instant::now();
    let ((waiting, failed_after), given_up) = tokio::join!(
        async { (tcp.send(&Ping).await, started.elapsed()) },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tokio::time::timeout(Duration::from_millis(300), tcp.exchange(big.as_bytes())).await
        },
    );
    r.signal("-CONT");
    assert!(given_up.is_err(), "the big write was not cut short");
    let err = waiting.unwrap_err();
    assert!(matches!(err, Error::Lost(_)), "{err}");
    assert!(failed_after < Duration::from_secs(1), "{failed_after:?}");
    tcp.send(&Ping).await.unwrap();
}

#[tokio::test]
async fn offer_answer_rtp_query_list_delete() {
    let r = Rtpengine::start();
    let c = udp_client(&r).await;
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (caller_port, callee_port) = (
        caller.local_addr().unwrap().port(),
        callee.local_addr().unwrap().port(),
    );

    let mut o = offer("call-rtp", caller_port);
    o.0.flags.push("trust address".into());
    o.0.replace = vec!["origin".into(), "session connection".into()];
    o.0.ice = Some(Ice::Remove);
    o.0.transport_protocol = Some(TransportProtocol::RtpAvp);
    o.0.codec.strip = vec!["PCMA".into()];
    o.0.supports = vec!["load limit".into()];
    let offered = c.send(&o).await.unwrap();
    assert!(
        !offered.sdp.contains("PCMA"),
        "PCMA stripped: {}",
        offered.sdp
    );
    let to_callee = media_port(&offered.sdp);
    assert!(r.media.contains(&to_callee));

    let answered = c.send(&answer("call-rtp", callee_port)).await.unwrap();
    let to_caller = media_port(&answered.sdp);
    assert!(r.media.contains(&to_caller));

    // Real RTP both ways through the allocated ports.
    for seq in 0..10 {
        caller
            .send_to(&rtp_packet(seq, 0x1111), ("127.0.0.1", to_caller))
            .unwrap();
        callee
            .send_to(&rtp_packet(seq, 0x2222), ("127.0.0.1", to_callee))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    callee
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let n = callee.recv(&mut buf).expect("callee receives relayed RTP");
    assert_eq!(n, 172);
    counted(&c, "call-rtp", 20).await;

    let stats = c.send(&Query(Target::call("call-rtp"))).await.unwrap();
    let party = |tag: &str| stats.parties.iter().find(|p| p.tag == tag).unwrap().clone();
    assert_eq!(party("caller").rtp.packets, 10);
    assert_eq!(party("caller").rtp.bytes, 1720);
    assert_eq!(party("caller").ssrcs, vec![0x1111]);
    assert_eq!(party("callee").rtp.packets, 10);
    assert_eq!(stats.totals_rtp.packets, 20);

    let list = c.send(&List { limit: Some(100) }).await.unwrap();
    assert!(list.calls.contains(&"call-rtp".to_string()));

    let deleted = c
        .send(&Delete {
            call: Target::call("call-rtp").from_tag("caller"),
            ..Delete::default()
        })
        .await
        .unwrap();
    assert_eq!(deleted.totals_rtp.packets, 20, "delete carries final stats");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let list = c.send(&List::default()).await.unwrap();
    assert!(!list.calls.contains(&"call-rtp".to_string()));
}

#[tokio::test]
async fn per_call_operations_and_statistics() {
    let r = Rtpengine::start();
    let c = udp_client(&r).await;
    c.send(&offer("ops", 40000)).await.unwrap();
    c.send(&answer("ops", 40002)).await.unwrap();
    for op in [
        CallOp::BlockDtmf,
        CallOp::UnblockDtmf,
        CallOp::BlockMedia,
        CallOp::UnblockMedia,
        CallOp::SilenceMedia,
        CallOp::UnsilenceMedia,
        CallOp::StartRecording,
        CallOp::StopRecording,
    ] {
        let ack = c
            .send(&CallCommand::new(
                op,
                Target::call("ops").from_tag("caller"),
            ))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", op.command()));
        assert_eq!(ack.warning, None, "{}", op.command());
    }

    // play media: a 100 ms WAV the daemon can read; stop media afterwards.
    let wav = r.dir.path().join("beep.wav");
    std::fs::write(&wav, wav_bytes(800)).unwrap();
    let played = c
        .send(&PlayMedia {
            call: Target::call("ops").from_tag("caller"),
            source: MediaSource::File(wav.display().to_string()),
            repeat_times: Some(1),
        })
        .await
        .unwrap();
    assert_eq!(played.duration_ms, Some(100));
    c.send(&CallCommand::new(
        CallOp::StopMedia,
        Target::call("ops").from_tag("caller"),
    ))
    .await
    .unwrap();

    let stats = c.send(&GetStatistics).await.unwrap();
    assert_eq!(stats.current_sessions(), Some(1));
    assert!(stats.uptime_seconds().is_some());

    // Errors are typed: unknown call with `fatal`, unknown command through raw access.
    let err = c
        .send(&Delete {
            call: Target::call("no-such-call"),
            fatal: true,
            ..Delete::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rtpengine(r) if r.contains("not found")),
        "{err}"
    );
    let mut raw = Dict::new();
    raw.insert("command", "frobnicate");
    let reply = c.request(&raw).await.unwrap();
    assert_eq!(reply.get_str("result"), Some("error"));
    assert_eq!(reply.get_str("error-reason"), Some("Unrecognized command"));
}

/// Mono 8 kHz 16-bit PCM WAV of `samples` samples of a square wave.
fn wav_bytes(samples: u32) -> Vec<u8> {
    let data_len = samples * 2;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let v: i16 = if (i / 10) % 2 == 0 { 8000 } else { -8000 };
        w.extend_from_slice(&v.to_le_bytes());
    }
    w
}

#[test]
fn blocking_client_and_load_limit_failure_reason() {
    // Four media ports are one call: the second offer runs out.
    let r = Rtpengine::start_with(4, &[]);
    let c = blocking::Client::connect(&Endpoint::Udp(r.ng), Options::default()).unwrap();
    c.send(&Ping).unwrap();
    c.send(&offer("first", 40000)).unwrap();
    let err = c.send(&offer("second", 40010)).unwrap_err();
    assert!(
        matches!(&err, Error::Rtpengine(r) if r == "Ran out of ports"),
        "{err}"
    );
}

/// An async caller (a tokio worker thread) can use and drop the blocking client: it
/// runs its own runtime on a thread of its own.
#[tokio::test]
async fn blocking_client_works_inside_a_tokio_runtime() {
    let r = Rtpengine::start();
    let c = blocking::Client::connect(&Endpoint::Udp(r.ng), Options::default()).unwrap();
    c.send(&Ping).unwrap();
    let json = c.with_format(Format::Json);
    json.send(&Ping).unwrap();
    drop(json);
}

#[tokio::test]
async fn udp_timeout_retransmits_then_fails() {
    // A socket that never answers: the client retries, then reports a timeout.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let opts = Options {
        timeout: Duration::from_millis(50),
        retries: 2,
    };
    let c = Client::connect(&Endpoint::Udp(silent.local_addr().unwrap()), opts)
        .await
        .unwrap();
    let task = tokio::spawn(async move { c.send(&Ping).await });
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        let n = silent.recv(&mut buf).await.unwrap();
        seen.push(buf[..n].to_vec());
    }
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout { attempts: 3, .. }), "{err}");
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "retransmissions reuse the cookie"
    );
}

/// A killed rtpengine leaves nothing on its port: the kernel answers each datagram with
/// ICMP port unreachable, and the request fails at once, saying so, instead of waiting
/// out every retransmission's timeout.
#[tokio::test]
async fn a_udp_request_to_a_killed_rtpengine_is_refused_at_once() {
    let mut r = Rtpengine::start();
    let c = udp_client(&r).await;
    c.send(&Ping).await.unwrap();
    r.kill();
    let started = Instant::now();
    let err = c.send(&Ping).await.unwrap_err();
    // Options::default() waits 1 s for each of three tries.
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "{err} after {took:?}");
    assert!(err.to_string().contains("port unreachable"), "{err}");
}

/// A request one byte over what one UDP datagram carries is refused before it goes out,
/// naming its size and the limit (the kernel would say only "Message too long"); one
/// exactly at the limit reaches rtpengine and is answered.
#[tokio::test]
async fn a_udp_request_over_one_datagram_is_refused_by_its_size() {
    let r = Rtpengine::start();
    let t = Transport::open(&Endpoint::Udp(r.ng), Options::default())
        .await
        .unwrap();
    // A ping padded so that `c1 ` and it make `datagram` bytes.
    let ping = |datagram: usize| {
        let frame = |pad: usize| format!("d7:command4:ping3:pad{pad}:{}e", "x".repeat(pad));
        let mut pad = datagram - 3 - frame(0).len();
        while 3 + frame(pad).len() > datagram {
            pad -= 1;
        }
        let body = frame(pad);
        assert_eq!(3 + body.len(), datagram);
        body.into_bytes()
    };
    let reply = t.exchange(b"c1", &ping(65_507)).await.unwrap();
    let reply = message::parse_body(&reply).unwrap();
    assert_eq!(reply.get_str("result"), Some("pong"));
    let err = t.exchange(b"c2", &ping(65_508)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("65508") && text.contains("65507"), "{text}");
    assert!(err.is_unsendable(), "{text}");
}
