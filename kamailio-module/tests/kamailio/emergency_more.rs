//! Emergency calls past one gateway: EMERGENCY_GATEWAY's addresses tried in order as a
//! vendor's gateways are (a 503 or silence from one, the next), each failure a `failed`
//! CDR event; and a PBX's RFC 3966 local number, `911;phone-context=+1`, known for one.

use super::{events_of, shipped_config, start_shipped, wait_for_stat};
use crate::support::dataset::Data;
use crate::support::redis::Redis;
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw, InDialog};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{free_udp_port, Kamailio};
use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn gateways_define(ports: &[u16]) -> String {
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!("EMERGENCY_GATEWAY=\"{}\"", addresses.join(","))
}

/// A gateway's port held by a socket that never answers.
fn silent_gateway() -> (UdpSocket, u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// A 911 from the caller's `sock` at `lport`, Call-ID `call`, answered by the gateway at
/// `port` and hung up.
fn call_911(k: &Kamailio, sock: &UdpSocket, lport: u16, (call, port): (&str, u16)) {
    let invite = raw_request(k.port, lport, "INVITE", "911", call);
    let (dialog, _) = InDialog::answered(sock, k, lport, (call, port), &invite);
    send_raw(
        sock,
        k,
        &dialog.request("BYE", 2, "Content-Length: 0\r\n\r\n"),
    );
    assert_eq!(final_reply(sock, k, call).code, 200, "{}", k.log());
}

/// The Call-IDs' calls (`<call>-<lport>`: `call`) of the INVITEs in `received`.
fn calls_of(received: &[String]) -> Vec<String> {
    let call_id = |m: &String| {
        let id = m.lines().find_map(|l| l.strip_prefix("Call-ID: "))?;
        Some(id.rsplit_once('-').map_or(id, |(call, _)| call).to_owned())
    };
    received.iter().filter_map(call_id).collect()
}

/// The events of `call` (the edge's one call) once the stream has `n` (5 s at most), as
/// (event, attempt, vendor, sip_code).
fn events(
    redis: &Redis,
    call: &str,
    lport: u16,
    n: usize,
) -> Vec<(String, u64, String, Option<u64>)> {
    let cdrs = redis.wait_for("warp:cdr:raw", n, Duration::from_secs(5));
    events_of(&cdrs, call, lport)
}

fn event(kind: &str, attempt: u64, code: Option<u64>) -> (String, u64, String, Option<u64>) {
    (kind.to_owned(), attempt, "emergency".to_owned(), code)
}

/// A 911 to `k`, whose first gateway fails with `code`, reaches the `second`, is
/// answered and hung up: its CDR events are the first's failure, then the second's
/// answer and end.
fn fails_over_to_the_second_gateway(k: &Kamailio, redis: &Redis, code: u64, second: u16) {
    let (sock, lport) = raw_socket();
    call_911(k, &sock, lport, ("help", second));
    assert_eq!(
        events(redis, "help", lport, 4),
        [
            event("start", 1, None),
            event("failed", 1, Some(code)),
            event("answer", 2, Some(200)),
            event("end", 2, Some(200)),
        ],
        "{}",
        k.log()
    );
}

/// EMERGENCY_GATEWAY's first address answers 503: the call goes to the second, as
/// `sip:911@` it, and completes.
#[test]
fn the_shipped_config_fails_an_emergency_call_over_a_gateway_that_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let (busy_port, backup_port) = (free_udp_port(), free_udp_port());
    let busy = Vendor::start(busy_port, Plays::Unavailable);
    let backup = Vendor::start(backup_port, Plays::Answers);
    let defines = [gateways_define(&[busy_port, backup_port])];
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    fails_over_to_the_second_gateway(&k, &redis, 503, backup_port);
    for (gateway, port) in [(&busy, busy_port), (&backup, backup_port)] {
        let invites = gateway.received("INVITE");
        let request_lines: Vec<&str> = invites.iter().filter_map(|i| i.lines().next()).collect();
        assert_eq!(
            request_lines,
            [format!("INVITE sip:911@127.0.0.1:{port} SIP/2.0")],
            "{}",
            k.log()
        );
    }
}

/// EMERGENCY_GATEWAY's first address never answers: after the 2 s a vendor gets, the
/// call goes to the second and completes.
#[test]
fn the_shipped_config_fails_an_emergency_call_over_a_silent_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let (_silent, silent_port) = silent_gateway();
    let backup_port = free_udp_port();
    let _backup = Vendor::start(backup_port, Plays::Answers);
    let defines = [gateways_define(&[silent_port, backup_port])];
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    fails_over_to_the_second_gateway(&k, &redis, 408, backup_port);
}

/// Every gateway fails (a 503, then silence): the caller gets a final error, and each
/// gateway's failure is a `failed` event; no vendor is tried.
#[test]
fn the_shipped_config_answers_an_emergency_call_all_its_gateways_fail() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let busy_port = free_udp_port();
    let _busy = Vendor::start(busy_port, Plays::Unavailable);
    let (_silent, silent_port) = silent_gateway();
    let defines = [gateways_define(&[busy_port, silent_port])];
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "INVITE", "911", "lost"),
    );
    // The 408 of the silent gateway's timeout: tm prefers a 4xx to the 503.
    assert_eq!(final_reply(&sock, &k, "lost").code, 408, "{}", k.log());
    assert_eq!(
        events(&redis, "lost", lport, 3),
        [
            event("start", 1, None),
            event("failed", 1, Some(503)),
            event("failed", 2, Some(408)),
        ],
        "{}",
        k.log()
    );
    assert!(vendor.received("INVITE").is_empty(), "{}", k.log());
}

/// A PBX's local number, `sip:911;phone-context=+1@edge;user=phone` (RFC 3966), or
/// without `user=phone` (the core then keeps the parameter in the user part): an
/// emergency call, to the gateway as `sip:911@` it (the digits alone), recorded as a
/// call to 911; no vendor gets it.
#[test]
fn the_shipped_config_knows_an_emergency_call_with_a_phone_context() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let psap_port = free_udp_port();
    let psap = Vendor::start(psap_port, Plays::Answers);
    let k = start_shipped(
        dir.path(),
        &data,
        &redis.url(),
        &[gateways_define(&[psap_port])],
    );
    let (sock, lport) = raw_socket();
    let local = |call, uri_params| {
        raw_request(k.port, lport, "INVITE", "911;phone-context=+1", call).replacen(
            &format!("@127.0.0.1:{} SIP/2.0", k.port),
            &format!("@127.0.0.1:{}{uri_params} SIP/2.0", k.port),
            1,
        )
    };
    for (call, uri_params) in [("phone", ";user=phone"), ("plain", "")] {
        InDialog::answered(
            &sock,
            &k,
            lport,
            (call, psap_port),
            &local(call, uri_params),
        );
    }
    let invites = psap.received("INVITE");
    let request_lines: Vec<&str> = invites.iter().filter_map(|i| i.lines().next()).collect();
    assert_eq!(
        request_lines,
        vec![format!("INVITE sip:911@127.0.0.1:{psap_port} SIP/2.0"); 2],
        "{}",
        k.log()
    );
    assert!(vendor.received("INVITE").is_empty(), "{}", k.log());
    let cdrs = redis.wait_for("warp:cdr:raw", 4, Duration::from_secs(5));
    let starts: Vec<_> = (cdrs.iter())
        .filter(|c| c["event"] == "start")
        .map(|c| (&c["dnis"], &c["vendor"], &c["zone"]))
        .collect();
    let emergency = (&"911".into(), &"emergency".into(), &"EMERGENCY".into());
    assert_eq!(starts, [emergency; 2], "{cdrs:#?}");
}

/// An EMERGENCY_GATEWAY address silent for GATEWAY_SILENCES calls is tried last, as a
/// vendor gateway is: the next 911 goes to the backup at once, without the 2 s wait, and
/// its record has the backup as attempt 1, no `failed` event for the silent one. Probed
/// meanwhile (an OPTIONS to `sip:911@` it), it answers, and is first again.
#[test]
fn the_shipped_config_tries_a_silent_emergency_gateway_last_until_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let (silent, primary_port) = silent_gateway();
    let backup_port = free_udp_port();
    let backup = Vendor::start(backup_port, Plays::Answers);
    let defines = [
        gateways_define(&[primary_port, backup_port]),
        "GATEWAY_SILENCES=1".into(),
        "GATEWAY_DOWN_TIME=60".into(),
        "GATEWAY_PROBE=1".into(),
    ];
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    // The primary's silence: failed over after 2 s, and put last.
    call_911(&k, &sock, lport, ("silent", backup_port));
    assert_eq!(k.rpc("warp.stats")["gateways.last"], "1", "{}", k.log());
    // The next call: the backup at once, the primary not at all.
    let sent = Instant::now();
    call_911(&k, &sock, lport, ("straight", backup_port));
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        calls_of(&backup.received("INVITE")),
        ["silent", "straight"],
        "{}",
        k.log()
    );
    assert_eq!(
        events(&redis, "straight", lport, 7),
        [
            event("start", 1, None),
            event("answer", 1, Some(200)),
            event("end", 1, Some(200)),
        ],
        "{}",
        k.log()
    );
    // The primary got the first call's INVITE (and tm's retransmissions), none of the
    // second's, and is probed: OPTIONS to the URI of its unanswered attempt.
    silent
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut invites, mut probes) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 65535];
    let deadline = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < deadline {
        let Ok(n) = silent.recv(&mut buf) else {
            continue;
        };
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        match message.split(' ').next() {
            Some("INVITE") => invites.push(message),
            _ => probes.push(message.lines().next().unwrap_or_default().to_owned()),
        }
    }
    let invited: BTreeSet<String> = calls_of(&invites).into_iter().collect();
    assert_eq!(
        invited,
        BTreeSet::from(["silent".to_owned()]),
        "{}",
        k.log()
    );
    let probe = format!("OPTIONS sip:911@127.0.0.1:{primary_port} SIP/2.0");
    assert!(
        !probes.is_empty() && probes.iter().all(|p| *p == probe),
        "{probes:?}"
    );
    // It answers the probe: in its place again, and the next 911 goes to it first.
    drop(silent);
    let primary = Vendor::start(primary_port, Plays::Answers);
    wait_for_stat(&k, "gateways.last", "0");
    call_911(&k, &sock, lport, ("back", primary_port));
    assert_eq!(
        calls_of(&primary.received("INVITE")),
        ["back"],
        "{}",
        k.log()
    );
    assert_eq!(
        calls_of(&backup.received("INVITE")),
        ["silent", "straight"],
        "{}",
        k.log()
    );
}

/// An EMERGENCY_GATEWAY that is no list of SIP URIs or hosts stops the edge at start-up
/// with the reason: found then, not by the first 911, which it would fail.
#[test]
fn the_shipped_config_refuses_a_malformed_emergency_gateway_at_start_up() {
    let gateway = "EMERGENCY_GATEWAY=\"esrp-a.example, 911@esrp-b.example\"".to_string();
    let log = Kamailio::refused_file(&shipped_config(), &[gateway]);
    assert!(
        log.contains(r#"warp_emergency(): emergency destination "911@esrp-b.example""#),
        "{log}"
    );
}
