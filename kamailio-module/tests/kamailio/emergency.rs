//! Emergency calls (911, 933): sent to EMERGENCY_GATEWAY from any known trunk, past the
//! Do-Not-Originate list and the trunk's limits, recorded free of charge; a stranger's
//! refused, and all of them refused 503 where no gateway is set.

use super::{events_of, start_shipped, wait_for_stat};
use crate::support::dataset::{Data, DNO_ANI};
use crate::support::udp::{assert_nothing_reaches, final_reply, raw_request, raw_socket, InDialog};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{self, free_udp_port, Kamailio};
use std::time::Duration;

/// `request` as the caller presents `number` in a P-Asserted-Identity.
fn asserting(request: &str, number: &str) -> String {
    request.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nP-Asserted-Identity: <sip:{number}@127.0.0.1>\r\n"),
        1,
    )
}

fn gateway_define(port: u16) -> String {
    format!("EMERGENCY_GATEWAY=\"127.0.0.1:{port}\"")
}

/// T1 may hold one call: with it up, its next call is refused 503, and yet a 911 from
/// a Do-Not-Originate number reaches the emergency gateway (as `sip:911@`, not a
/// vendor's dialstring), is answered, and its CDR events say what it was; a 933 too.
#[test]
fn the_shipped_config_sends_emergency_calls_to_their_gateway_past_dno_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = Data {
        t1_limits: (1, 100),
        ..Data::with_gateways()
    };
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let psap_port = free_udp_port();
    let psap = Vendor::start(psap_port, Plays::Answers);
    let k = start_shipped(
        dir.path(),
        &data,
        &redis.url(),
        &[gateway_define(psap_port)],
    );
    let (sock, lport) = raw_socket();

    let held = raw_request(k.port, lport, "INVITE", "+12125550123", "held");
    InDialog::answered(&sock, &k, lport, ("held", data.cheap.0), &held);
    let over = raw_request(k.port, lport, "INVITE", "+12125550123", "over");
    support::udp::send_raw(&sock, &k, &over);
    assert_eq!(final_reply(&sock, &k, "over").code, 503, "{}", k.log());

    let help = asserting(
        &raw_request(k.port, lport, "INVITE", "911", "help"),
        DNO_ANI,
    );
    InDialog::answered(&sock, &k, lport, ("help", psap_port), &help);
    let test = raw_request(k.port, lport, "INVITE", "933", "test");
    InDialog::answered(&sock, &k, lport, ("test", psap_port), &test);
    let reached: Vec<String> = psap
        .received("INVITE")
        .iter()
        .map(|invite| invite.lines().next().unwrap().to_owned())
        .collect();
    assert_eq!(
        reached,
        [
            format!("INVITE sip:911@127.0.0.1:{psap_port} SIP/2.0"),
            format!("INVITE sip:933@127.0.0.1:{psap_port} SIP/2.0"),
        ]
    );
    assert_eq!(vendor.received("INVITE").len(), 1, "{}", k.log());
    // Neither counts among T1's calls.
    wait_for_stat(&k, "limits.active", "1");

    let cdrs = redis.wait_for("warp:cdr:raw", 6, Duration::from_secs(5));
    let kinds = |call| -> Vec<(String, String)> {
        events_of(&cdrs, call, lport)
            .into_iter()
            .map(|(kind, _, vendor, _)| (kind, vendor))
            .collect()
    };
    let emergency = |kind: &str| (kind.to_owned(), "emergency".to_owned());
    assert_eq!(
        kinds("help"),
        [emergency("start"), emergency("answer")],
        "{cdrs:#?}"
    );
    assert_eq!(
        kinds("test"),
        [emergency("start"), emergency("answer")],
        "{cdrs:#?}"
    );
    let start = cdrs
        .iter()
        .find(|c| c["event"] == "start" && c["dnis"] == "911")
        .unwrap_or_else(|| panic!("{cdrs:#?}"));
    assert_eq!(start["zone"], "EMERGENCY", "{start}");
    assert_eq!(start["trunk"], "T1", "{start}");
    assert_eq!(start["ani"], DNO_ANI.trim_start_matches('+'), "{start}");
    assert_eq!(start["vendor_rate"], "0", "{start}");
    assert_eq!(start["customer_rate"], "0", "{start}");
}

/// WITH_ANTIFLOOD: T1's address banned (over UDP anyone can have it banned with forged
/// requests), its calls go unanswered but for its emergency calls.
#[test]
fn the_shipped_config_lets_a_trunks_emergency_calls_past_a_ban_of_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let psap_port = free_udp_port();
    let _psap = Vendor::start(psap_port, Plays::Answers);
    let defines = [
        "WITH_ANTIFLOOD".to_string(),
        "BAN_TIME=60".into(),
        gateway_define(psap_port),
    ];
    let k = start_shipped(dir.path(), &data, &super::no_redis(), &defines);
    k.kamcmd(&["htable.seti", "ipban", "127.0.0.1", "1"])
        .unwrap();
    let (sock, lport) = raw_socket();
    let call = raw_request(k.port, lport, "INVITE", "+12125550123", "banned");
    support::udp::send_raw(&sock, &k, &call);
    assert_nothing_reaches(&sock, "the banned trunk", &k, Duration::from_secs(1));
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let help = raw_request(k.port, lport, "INVITE", "911", "help");
    InDialog::answered(&sock, &k, lport, ("help", psap_port), &help);
}

/// An emergency call from an address no trunk lists is refused as any of its calls; with
/// no EMERGENCY_GATEWAY, a trunk's is refused 503, and reaches no vendor.
#[test]
fn the_shipped_config_refuses_emergency_calls_it_cannot_place() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let psap_port = free_udp_port();
    let psap = Vendor::start(psap_port, Plays::Answers);
    let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let stranger_port = stranger.local_addr().unwrap().port();
    let call_from_stranger = |k: &Kamailio| {
        let invite = raw_request(k.port, stranger_port, "INVITE", "911", "stranger");
        stranger
            .send_to(invite.as_bytes(), ("127.0.0.1", k.port))
            .unwrap();
        final_reply(&stranger, k, "stranger")
    };

    let with_gateway = tempfile::tempdir().unwrap();
    let k = start_shipped(
        with_gateway.path(),
        &data,
        &super::no_redis(),
        &[gateway_define(psap_port)],
    );
    assert_eq!(call_from_stranger(&k).code, 403, "{}", k.log());
    drop(k);

    let k = start_shipped(dir.path(), &data, &super::no_redis(), &[]);
    let (sock, lport) = raw_socket();
    support::udp::send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "INVITE", "911", "none"),
    );
    let refused = final_reply(&sock, &k, "none");
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (503, "Emergency Calls Not Served"),
        "{}",
        k.log()
    );
    assert!(
        k.log().contains("emergency call to 911 refused"),
        "{}",
        k.log()
    );
    assert!(psap.received("INVITE").is_empty());
    assert!(vendor.received("INVITE").is_empty());
}
