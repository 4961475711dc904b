//! Failover to the next vendor: on a 503, a timeout or a vendor the edge cannot send to,
//! from kamailio.cfg's failure route and in the shipped config (routed in place or after
//! the dip); a vendor's redirect, or a call it routes back to the edge, is a failed
//! attempt; a silent gateway is tried last until it answers; a vendor that rang out is
//! not failed over.

use super::{
    by_call, dual_stack, events_of, no_redis, start_shipped, wait_for_stat, with_topoh, Routing,
    RELAY,
};
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::udp::{
    final_replies, final_reply, finals_within, raw_request, raw_socket, send_raw, InDialog,
};
use crate::support::{self, Kamailio, Script};
use std::path::Path;
use std::time::{Duration, Instant};

/// A snapshot whose cheap vendor answers every INVITE with 503 and whose dear vendor
/// accepts, and a Kamailio relaying with `script`, after `calls` calls through it.
fn fail_over_calls<'a>(
    dir: &'a Path,
    script: &str,
    calls: u32,
) -> (support::dataset::Data, Kamailio, Uac<'a>, Uas) {
    let snap = dir.join("routing.snap");
    let data = support::dataset::Data::with_gateways();
    data.publish(&snap);
    let (cheap_port, dear_port) = (data.cheap.0, data.dear.0);
    let cheap = Uas::start(dir, cheap_port, Answer::Unavailable);
    let dear = Uas::start(dir, dear_port, Answer::Accept);
    let k = Kamailio::start(&[("snapshot", snap.to_str().unwrap())], Script::Cfg(script));
    let uac = Uac::new(k.port, dir, calls, calls);
    let status = uac.spawn().wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    let calls = calls as usize;
    assert_eq!((cheap.invites(), dear.invites()), (calls, calls));
    // Both dialstrings filled in: the first when routed, the next one at failover.
    let filled = |port| format!("sip:+12125550123@127.0.0.1:{port} ");
    assert_eq!(cheap.invites_to(&filled(cheap_port)), calls);
    assert_eq!(dear.invites_to(&filled(dear_port)), calls);
    assert!(k.log().contains("to DEAR attempt 2 ban C1"), "{}", k.log());
    (data, k, uac, dear)
}

#[test]
fn a_503_or_a_timeout_from_the_first_vendor_fails_over_to_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    let (mut data, k, uac, dear) = fail_over_calls(dir.path(), RELAY, 20);

    // CHEAP's gateway now points at a port nobody answers on: tm's timer fires (408).
    data.generation = 2;
    data.cheap.0 = support::free_udp_port();
    data.publish(&snap);
    k.rpc("warp.reload");
    let status = Uac { calls: 3, ..uac }.spawn().wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!(dear.invites(), 23);
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_next_route.calls"], "23");
    assert_eq!(stats["warp_next_route.errors"], "0");
}

#[test]
fn the_failover_record_reaches_the_transaction_without_a_dialog() {
    // No dialog asks for the record: tm's request-in hook writes it into the
    // transaction, or warp_route() does when tm created the transaction before it.
    let no_dialog = RELAY.replace("    dlg_manage();\n", "");
    let routed_inside = no_dialog.replace(
        "    if (!warp_route()) {",
        "    t_newtran();\n    if (!warp_route()) {",
    );
    assert!(!no_dialog.contains("dlg_manage") && routed_inside.contains("t_newtran"));
    for script in [no_dialog, routed_inside] {
        let dir = tempfile::tempdir().unwrap();
        let (_, k, ..) = fail_over_calls(dir.path(), &script, 10);
        assert_eq!(k.rpc("warp.stats")["warp_next_route.errors"], "0");
    }
}

/// Without tmx a failed attempt's event has no code (README), and that costs no
/// error lines: the core's lookup of `$T_reply_code` logged two at every failover.
#[test]
fn failover_without_tmx_logs_no_error_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let script = RELAY.replace("loadmodule \"tmx.so\"\n", "");
    assert!(!script.contains("tmx"));
    let (_, k, ..) = fail_over_calls(dir.path(), &script, 5);
    let log = k.log();
    assert!(!log.contains("T_reply_code"), "{log}");
    assert_eq!(k.rpc("warp.stats")["warp_next_route.errors"], "0");
}

/// A vendor the edge cannot send to (a transport it does not serve, a gateway whose
/// name does not resolve, a TCP gateway that refuses the connection) is a failed
/// attempt like a 503: the call goes on to the next, and that attempt's `failed` event
/// says 477 (Kamailio's code for a request it could not send), not the code of the
/// attempt before it.
#[test]
fn the_shipped_config_fails_over_past_a_vendor_it_cannot_send_to() {
    for unsendable in UNSENDABLE {
        fails_over_past_a_vendor_it_cannot_send_to(&Routing::direct(), unsendable);
    }
}

/// As [`the_shipped_config_fails_over_past_a_vendor_it_cannot_send_to`], for calls
/// dipped in an async worker: the failover to the next vendor is made in the resumed
/// route, to tm a failure route.
#[test]
fn the_shipped_config_fails_over_past_a_vendor_it_cannot_send_to_after_the_dip() {
    for unsendable in UNSENDABLE {
        fails_over_past_a_vendor_it_cannot_send_to(&Routing::dipped(), unsendable);
    }
}

/// Gateway URI parameters the shipped config cannot send to: SCTP, which it does not
/// serve (no socket), and TCP to a port nothing listens on (the connection refused).
const UNSENDABLE: [&str; 2] = [";transport=sctp", ";transport=tcp"];

/// The calls of [`the_shipped_config_fails_over_past_a_vendor_it_cannot_send_to`], to
/// a gateway whose URI has the `unsendable` parameters.
fn fails_over_past_a_vendor_it_cannot_send_to(routing: &Routing, unsendable: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let events = |cdrs: &[serde_json::Value]| -> Vec<Vec<(String, String, Option<u64>)>> {
        by_call(cdrs)
            .values()
            .map(|events| {
                events
                    .iter()
                    .map(|e| {
                        (
                            e["event"].as_str().unwrap().to_owned(),
                            e["vendor"].as_str().unwrap().to_owned(),
                            e["sip_code"].as_u64(),
                        )
                    })
                    .collect()
            })
            .collect()
    };
    let event = |kind: &str, vendor: &str, code| (kind.to_owned(), vendor.to_owned(), code);
    // CHEAP, first, cannot be sent to.
    let data = support::dataset::Data {
        uri_params: (unsendable, ""),
        ..support::dataset::Data::with_gateways()
    };
    let dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let k = start_shipped(dir.path(), &data, &redis.url(), &routing.defines(&[]));
    let status = Uac {
        extra: &routing.sipp(),
        ..Uac::new(k.port, dir.path(), 3, 10)
    }
    .spawn()
    .wait()
    .unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!(dear.invites(), 3);
    routing.took(&k, 3);
    let cdrs = redis.wait_for("warp:cdr:raw", 12, Duration::from_secs(10));
    let expected = vec![
        event("start", "CHEAP", None),
        event("failed", "CHEAP", Some(477)),
        event("answer", "DEAR", Some(200)),
        event("end", "DEAR", Some(200)),
    ];
    assert_eq!(events(&cdrs), vec![expected; 3], "{cdrs:#?}");
    drop(k);
    drop(dear);

    // CHEAP answers 503, DEAR cannot be sent to: the caller gets CHEAP's 503 (as 500,
    // tm's RFC 3261 16.7 remap), and each vendor's failure is reported with its code.
    redis.cli(&["DEL", "warp:cdr:raw"]);
    let data = support::dataset::Data {
        uri_params: ("", unsendable),
        ..support::dataset::Data::with_gateways()
    };
    let cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
    let k = start_shipped(dir.path(), &data, &redis.url(), &routing.defines(&[]));
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", routing.number(), "unsent");
    send_raw(&sock, &k, &invite);
    assert_eq!(final_reply(&sock, &k, "unsent").code, 500, "{}", k.log());
    assert_eq!(cheap.invites(), 1);
    routing.took(&k, 1);
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(10));
    let expected = vec![
        event("start", "CHEAP", None),
        event("failed", "CHEAP", Some(503)),
        event("failed", "DEAR", Some(477)),
    ];
    assert_eq!(events(&cdrs), vec![expected], "{cdrs:#?}");
}

/// A vendor that rang until the ring timeout had the callee: the call fails (408)
/// rather than ring the callee again through the next vendor. One that never answered
/// at all within fr_timer is failed over.
#[test]
fn the_shipped_config_fails_over_a_silent_vendor_but_not_one_that_rang_out() {
    fails_over_a_silent_vendor_but_not_one_that_rang_out(&Routing::direct());
}

/// As [`the_shipped_config_fails_over_a_silent_vendor_but_not_one_that_rang_out`], for
/// calls dipped in an async worker: the ring-out and timeout are read in the failure
/// route after the resumed one.
#[test]
fn the_shipped_config_fails_over_a_silent_vendor_but_not_one_that_rang_out_after_the_dip() {
    fails_over_a_silent_vendor_but_not_one_that_rang_out(&Routing::dipped());
}

fn fails_over_a_silent_vendor_but_not_one_that_rang_out(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let call = |k: &Kamailio, call: &str| {
        let (sock, lport) = raw_socket();
        let invite = raw_request(k.port, lport, "INVITE", routing.number(), call);
        send_raw(&sock, k, &invite);
        let code = final_reply(&sock, k, call).code;
        routing.took(k, 1);
        code
    };
    let ringing = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Rings);
    let defines = routing.defines(&["RING_TIMEOUT=2500".into()]);
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    assert_eq!(call(&k, "rangout"), 408, "{}", k.log());
    assert_eq!(ringing.received("INVITE").len(), 1);
    assert_eq!(dear.invites(), 0, "the callee was rung again:\n{}", k.log());
    drop(k);

    // CHEAP's port held by a socket that never answers.
    let data = support::dataset::Data::with_gateways();
    let dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let _silent = std::net::UdpSocket::bind(("127.0.0.1", data.cheap.0)).unwrap();
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    assert_eq!(call(&k, "silent"), 200, "{}", k.log());
    assert_eq!(dear.invites(), 1);
}

/// A vendor gateway that lets three calls in a row go unanswered (no reply at all in
/// the 2 s the shipped config gives it) is tried last for `GATEWAY_DOWN_TIME`: the next
/// call goes straight to the other vendor, without the 2 s wait, and `warp.gateways`
/// lists it; once the time is up it is tried first again, and its answer puts it back.
#[test]
fn a_vendor_gateway_that_stopped_answering_is_tried_last_until_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let silent = std::net::UdpSocket::bind(("127.0.0.1", data.cheap.0)).unwrap();
    // No probes: it comes back when its time is up.
    let defines = ["GATEWAY_DOWN_TIME=4".to_string(), "GATEWAY_PROBE=0".into()];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let (sock, lport) = raw_socket();
    let invite = |call: &str| {
        let request = raw_request(k.port, lport, "INVITE", "+12125550123", call);
        send_raw(&sock, &k, &request);
    };
    for call in ["silent0", "silent1", "silent2"] {
        invite(call);
    }
    let finals = final_replies(&sock, &k, 3);
    assert!(
        finals.iter().all(|(_, code)| *code == 200),
        "{finals:?}\n{}",
        k.log()
    );
    let gateway = format!("127.0.0.1:{}", data.cheap.0);
    let gateways = k.rpc("warp.gateways");
    assert_eq!(
        (
            gateways.get("put_last").map(String::as_str),
            gateways.get("1.gateway").map(String::as_str),
            gateways.get("1.silences").map(String::as_str)
        ),
        (Some("1"), Some(gateway.as_str()), Some("3")),
        "{gateways:?}\n{}",
        k.log()
    );
    assert_ne!(gateways["1.last_for_ms"], "0");
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["gateways.put_last"].as_str(),
            stats["gateways.last"].as_str()
        ),
        ("1", "1")
    );
    // The next call: the other vendor at once, nothing to the silent one.
    let sent = Instant::now();
    invite("straight");
    assert_eq!(final_reply(&sock, &k, "straight").code, 200, "{}", k.log());
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(dear.invites(), 4);
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut calls = std::collections::BTreeSet::new();
    let mut buf = [0u8; 65535];
    while let Ok(n) = silent.recv(&mut buf) {
        let request = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(request.starts_with("INVITE "), "{request}");
        let call = request.lines().find_map(|l| l.strip_prefix("Call-ID: "));
        calls.insert(call.unwrap_or_default().to_owned());
    }
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.iter().all(|c| c.starts_with("silent")), "{calls:?}");
    // Its time up, it is first again; it answers, and is in its place.
    drop(silent);
    let cheap = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    std::thread::sleep(Duration::from_secs(4));
    invite("again");
    assert_eq!(final_reply(&sock, &k, "again").code, 200, "{}", k.log());
    assert_eq!(cheap.received("INVITE").len(), 1, "{}", k.log());
    let gateways = k.rpc("warp.gateways");
    assert_eq!(
        (
            gateways["1.gateway"].as_str(),
            gateways["1.silences"].as_str(),
            gateways["1.last_for_ms"].as_str()
        ),
        (gateway.as_str(), "0", "0"),
        "{gateways:?}"
    );
    assert_eq!(k.rpc("warp.stats")["gateways.last"], "0");
}

/// A gateway put last is asked every `GATEWAY_PROBE` seconds whether it is back (an
/// OPTIONS to the dialstring of its last unanswered call): once it answers, it is in
/// its place again long before `GATEWAY_DOWN_TIME`, on probation (one silence would put
/// it last again), and the next call goes to it first; its answer clears it.
#[test]
fn a_vendor_gateway_put_last_is_probed_back_into_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let silent = std::net::UdpSocket::bind(("127.0.0.1", data.cheap.0)).unwrap();
    let defines = ["GATEWAY_DOWN_TIME=60".to_string(), "GATEWAY_PROBE=1".into()];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let (sock, lport) = raw_socket();
    for call in ["silent0", "silent1", "silent2"] {
        let request = raw_request(k.port, lport, "INVITE", "+12125550123", call);
        send_raw(&sock, &k, &request);
    }
    let finals = final_replies(&sock, &k, 3);
    assert!(finals.iter().all(|(_, code)| *code == 200), "{finals:?}");
    assert_eq!(k.rpc("warp.stats")["gateways.last"], "1", "{}", k.log());
    // Probed while it stays silent: an OPTIONS to its dialstring, unanswered.
    silent
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 65535];
    let probe = loop {
        let n = silent.recv(&mut buf).expect("a probe");
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        if message.starts_with("OPTIONS ") {
            break message;
        }
    };
    assert!(
        probe.starts_with(&format!(
            "OPTIONS sip:+12125550123@127.0.0.1:{} ",
            data.cheap.0
        )),
        "{probe}"
    );
    assert_eq!(k.rpc("warp.stats")["gateways.last"], "1");
    // It answers again: back in its place within a probe or two, no call needed.
    drop(silent);
    let cheap = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    wait_for_stat(&k, "gateways.last", "0");
    // On probation (one silence from last again) until a call of its own is answered.
    assert_eq!(k.rpc("warp.gateways")["1.silences"], "2");
    assert!(cheap.received("INVITE").is_empty());
    let request = raw_request(k.port, lport, "INVITE", "+12125550123", "back");
    send_raw(&sock, &k, &request);
    assert_eq!(final_reply(&sock, &k, "back").code, 200, "{}", k.log());
    assert_eq!(cheap.received("INVITE").len(), 1, "{}", k.log());
    assert_eq!(k.rpc("warp.gateways")["1.silences"], "0");
}

/// A vendor's redirect (3xx) never reaches the caller, whose switch would follow it to
/// wherever the vendor says, past the edge's routing and billing: it is a failed
/// attempt (on to the next vendor), and is not the reply the caller gets when a later
/// vendor fails too: that one's (a busy callee's 486), or 480 when none is left.
#[test]
fn the_shipped_config_fails_over_a_vendor_redirect_and_never_relays_it() {
    fails_over_a_vendor_redirect_and_never_relays_it(&Routing::direct());
}

/// As [`the_shipped_config_fails_over_a_vendor_redirect_and_never_relays_it`], for
/// calls dipped in an async worker: the failover branches are made in the failure route
/// again.
#[test]
fn the_shipped_config_fails_over_a_vendor_redirect_and_never_relays_it_after_the_dip() {
    fails_over_a_vendor_redirect_and_never_relays_it(&Routing::dipped());
}

fn fails_over_a_vendor_redirect_and_never_relays_it(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let redirects = support::vendor::Plays::Redirects;
    let call = |k: &Kamailio, call: &str| {
        let (sock, lport) = raw_socket();
        let invite = raw_request(k.port, lport, "INVITE", routing.number(), call);
        send_raw(&sock, k, &invite);
        let reply = final_reply(&sock, k, call);
        routing.took(k, 1);
        let contact = reply.header("Contact").unwrap_or_default();
        assert!(
            !contact.contains(support::vendor::REDIRECT_TARGET),
            "{reply:?}\n{}",
            k.log()
        );
        reply.code
    };

    let data = support::dataset::Data::with_gateways();
    let cheap = support::vendor::Vendor::start(data.cheap.0, redirects);
    let _dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let defines = routing.defines(&[]);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    assert_eq!(call(&k, "moved"), 200, "{}", k.log());
    assert_eq!(cheap.received("INVITE").len(), 1);
    drop(k);

    let data = support::dataset::Data::with_gateways();
    let _cheap = support::vendor::Vendor::start(data.cheap.0, redirects);
    let _dear = Uas::start(dir.path(), data.dear.0, Answer::RingThenBusy);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    assert_eq!(call(&k, "busy"), 486, "{}", k.log());
    drop(k);

    // A directory of its own: no CDR events the calls above spooled.
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
    let _dear = support::vendor::Vendor::start(data.dear.0, redirects);
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    assert_eq!(call(&k, "lastmoved"), 480, "{}", k.log());
    // Each attempt's failure, the last with the code the caller got.
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let events: Vec<Vec<(String, String, Option<u64>)>> = by_call(&cdrs)
        .values()
        .map(|call| {
            call.iter()
                .map(|e| {
                    let text = |field: &str| e[field].as_str().unwrap().to_owned();
                    (text("event"), text("vendor"), e["sip_code"].as_u64())
                })
                .collect()
        })
        .collect();
    let event = |kind: &str, vendor: &str, code| (kind.to_owned(), vendor.to_owned(), code);
    let expected = vec![
        event("start", "CHEAP", None),
        event("failed", "CHEAP", Some(503)),
        event("failed", "DEAR", Some(480)),
    ];
    assert_eq!(events, vec![expected], "{cdrs:#?}");
}

/// A call a vendor routes back to the edge (a partner that sends calls to the edge too,
/// its routing looping) is refused there with 482, as RFC 3261 16.3 has a proxy detect
/// a loop by its own Via, rather than routed again at every turn until Max-Forwards ran
/// out: each turn another of the trunk's calls per second, another `start` and another
/// INVITE to the vendor. The looping vendor is failed over, and the next takes the call.
#[test]
fn the_shipped_config_stops_a_call_a_vendor_routes_back_to_it() {
    stops_a_call_a_vendor_routes_back_to_it(&[], ("127.0.0.1", "127.0.0.1"));
}

/// As [`the_shipped_config_stops_a_call_a_vendor_routes_back_to_it`], through a vendor
/// reached over IPv6: the edge's Via names its socket in brackets (`[::1]:port`).
#[test]
fn the_shipped_config_stops_a_call_a_vendor_routes_back_to_it_over_ipv6() {
    stops_a_call_a_vendor_routes_back_to_it(&[dual_stack()], ("[::1]", "::1"));
}

/// As [`the_shipped_config_stops_a_call_a_vendor_routes_back_to_it`], with WITH_TOPOH:
/// topoh masks every Via but the edge's own, so the returning INVITE still shows it.
#[test]
fn the_shipped_config_stops_a_call_a_vendor_routes_back_to_it_with_topology_hidden() {
    stops_a_call_a_vendor_routes_back_to_it(&with_topoh(), ("127.0.0.1", "127.0.0.1"));
}

/// A call from T1 whose first vendor, CHEAP, routes it back to the edge: its gateway
/// `host` in its dialstring, listening on `ip`.
fn stops_a_call_a_vendor_routes_back_to_it(defines: &[String], (host, ip): (&'static str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data {
        gateway_hosts: (host, "127.0.0.1"),
        ..support::dataset::Data::with_gateways()
    };
    let _dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let k = start_shipped(dir.path(), &data, &redis.url(), defines);
    let loops = support::vendor::Plays::LoopsBack(k.port);
    let looping = support::vendor::Vendor::start_on(ip, data.cheap.0, loops);
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "looped");
    InDialog::answered(&sock, &k, lport, ("looped", data.dear.0), &invite);
    assert_eq!(looping.received("INVITE").len(), 1, "{}", k.log());
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let events = events_of(&cdrs, "looped", lport);
    let event = |kind: &str, attempt, vendor: &str, code| {
        (kind.to_owned(), attempt, vendor.to_owned(), code)
    };
    let expected = [
        event("start", 1, "CHEAP", None),
        event("failed", 1, "CHEAP", Some(482)),
        event("answer", 2, "DEAR", Some(200)),
    ];
    assert_eq!(events, expected, "{cdrs:#?}");
}

/// RING_TIMEOUT runs from the vendor's first ringing, not from its latest 180: a vendor
/// that sends its 180 again every second (as RFC 3261 13.3.1.1 has a UAS do) still
/// rings out when it says.
#[test]
fn the_shipped_config_rings_out_a_vendor_that_repeats_its_180() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let plays = support::vendor::Plays::KeepsRinging;
    let ringing = support::vendor::Vendor::start(data.cheap.0, plays);
    let nowhere = no_redis();
    let defines = ["RING_TIMEOUT=2500".to_string()];
    let k = start_shipped(dir.path(), &data, &nowhere, &defines);
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "rings");
    send_raw(&sock, &k, &invite);
    // 2.5 s from the 180 (the old config rang on to tm's max_inv_lifetime, 180 s).
    let finals = finals_within(&sock, Duration::from_secs(4));
    let codes: Vec<u16> = finals.iter().map(|(code, _)| *code).collect();
    assert_eq!(codes, [408], "{}", k.log());
    assert_eq!(ringing.received("CANCEL").len(), 1, "{}", k.log());
}
