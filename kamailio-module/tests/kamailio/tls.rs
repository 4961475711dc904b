//! SIP over TLS on the shipped config (WITH_TLS): customers' PBXs that carry SRTP and
//! vendors' gateways that take calls over TLS (RFC 3261 26.2), next to UDP and TCP.

use super::tcp::{
    a_silent_gateway_goes_last, call_over, caller_request, final_on, next_on, over,
    places_calls_with_a_stream_vendor, reaches_a_caller_behind_nat_over_its_connection,
    stops_a_call_a_stream_vendor_routes_back, stream_vendor, takes_calls_from_a_stream_customer,
    vendor_answers, DIALLED,
};
use super::{
    no_redis, shipped_config, start_shipped, start_shipped_with_rtpengine, with_topoh, Routing,
};
use crate::support::rtpengine::wait_for_no_media_sessions;
use crate::support::sdp::{assert_plain_rtp, assert_srtp, srtp_offer};
use crate::support::tcp::SipStream;
use crate::support::tls::Pki;
use crate::support::udp::{body_of, raw_request, with_sdp};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{dataset::Data, Kamailio};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// The defines that turn the shipped config's TLS on, with `pki`'s certificate for the
/// edge's.
pub(super) fn with_tls(pki: &Pki) -> Vec<String> {
    vec![
        "WITH_TLS".into(),
        format!("TLS_CERT=\"{}\"", pki.server_cert.display()),
        format!("TLS_KEY=\"{}\"", pki.server_key.display()),
    ]
}

/// The edge's TLS port: a LISTEN without a protocol takes TLS on its port + 1.
pub(super) fn tls_port(k: &Kamailio) -> u16 {
    k.port + 1
}

/// A PBX that sends its calls over TLS to a vendor on UDP: each call is answered, and
/// ended by either side, every request and reply to the PBX over its connection, the
/// edge's Record-Route doubled (one for each transport). The connection is listed by
/// `kamcmd tls.list`. The old config had no TLS: nothing listened on the TLS port.
#[test]
fn the_shipped_config_takes_calls_from_a_customer_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("edge");
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &with_tls(&pki));
    let mut caller = pki.connect(tls_port(&k), false);
    let lport = caller.local_port();
    takes_calls_from_a_stream_customer(&k, &vendor, "tls", &mut caller, || {
        let connections = k.kamcmd(&["tls.list"]).unwrap();
        assert!(
            connections.contains(&format!("src_port: {lport}")),
            "{connections}"
        );
    });
}

/// A vendor whose gateway URI says `transport=tls` gets its calls over TLS from a
/// caller on UDP: answered, and ended by either side, the vendor's requests and
/// replies over the connection the edge opened. The vendor's certificate is of a CA
/// the edge does not know (it checks none). The old config could not send to it
/// (477, failed over).
#[test]
fn the_shipped_config_places_calls_with_a_vendor_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let edge = Pki::make("edge");
    let vendor_pki = Pki::make("vendor");
    let (data, gateway) = stream_vendor("tls");
    let k = start_shipped(dir.path(), &data, &no_redis(), &with_tls(&edge));
    places_calls_with_a_stream_vendor(&k, data.cheap.0, "tls", || vendor_pki.accept(&gateway));
}

/// A caller behind NAT over TLS is reached over the connection it opened, which
/// outlives `TCP_LIFETIME` with its call up where a stranger's idle one is closed
/// (tcpops keeps a trunk's TLS connection as it does a TCP one): as
/// `the_shipped_config_reaches_a_caller_behind_nat_over_its_tcp_connection`.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat_over_its_tls_connection() {
    let pki = Pki::make("edge");
    let connect = |k: &Kamailio| pki.connect(tls_port(k), false);
    reaches_a_caller_behind_nat_over_its_connection(
        &Routing::direct(),
        "tls",
        &with_tls(&pki),
        connect,
    );
}

/// Connections that never finish a TLS handshake (silent, or a ClientHello cut short),
/// more of them than the edge has TCP workers, and plain SIP sent to the TLS port hold
/// up no worker: the plain one is closed, the next call over TLS goes through, and the
/// unfinished ones are closed once `TCP_LIFETIME` (2 s here) and a TCP worker's 5 s
/// have passed (tls.so's own default would keep them 10 minutes).
#[test]
fn the_shipped_config_takes_tls_calls_past_unfinished_handshakes_and_plain_sip() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("edge");
    let data = Data::with_gateways();
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let mut defines = with_tls(&pki);
    defines.push("TCP_LIFETIME=2".into());
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let silent = TcpStream::connect(("127.0.0.1", tls_port(&k))).unwrap();
        let mut half_hello = TcpStream::connect(("127.0.0.1", tls_port(&k))).unwrap();
        // A TLS record header announcing a 512-byte handshake message, and 5 bytes of it.
        half_hello
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03])
            .unwrap();
        stalled.extend([SipStream::new(silent), SipStream::new(half_hello)]);
    }
    let mut plain = SipStream::new(TcpStream::connect(("127.0.0.1", tls_port(&k))).unwrap());
    let lport = plain.local_port();
    plain.send(&over(
        "tls",
        &raw_request(k.port, lport, "INVITE", DIALLED, "plain"),
    ));
    assert!(plain.closed_within(Duration::from_secs(3)), "{}", k.log());

    let mut caller = pki.connect(tls_port(&k), false);
    let lport = caller.local_port();
    let invite = over(
        "tls",
        &raw_request(k.port, lport, "INVITE", DIALLED, "after"),
    );
    call_over("tls", &mut caller, &invite, "after", &k);
    assert_eq!(k.rpc("warp.stats")["limits.active"], "1", "{}", k.log());
    for connection in &mut stalled {
        assert!(
            connection.closed_within(Duration::from_secs(15)),
            "{}",
            k.log()
        );
    }
}

/// With TLS_CA (mutual TLS) a call over TLS is taken from a PBX whose certificate that
/// CA signed, and refused (403) from one that presented none; a vendor over TLS still
/// gets its calls with a certificate of a CA the edge does not know (TLS_CA is for
/// customers). The old config had no TLS.
#[test]
fn the_shipped_config_with_tls_ca_takes_calls_only_from_pbxs_with_its_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let edge = Pki::make("edge");
    let vendor_pki = Pki::make("vendor");
    let (data, gateway) = stream_vendor("tls");
    let mut defines = with_tls(&edge);
    defines.push(format!("TLS_CA=\"{}\"", edge.ca.display()));
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);

    let mut stranger = edge.connect(tls_port(&k), false);
    let lport = stranger.local_port();
    let invite = over(
        "tls",
        &raw_request(k.port, lport, "INVITE", DIALLED, "nocert"),
    );
    stranger.send(&invite);
    let refused = final_on(&mut stranger, "nocert", &k);
    assert!(
        refused.starts_with("SIP/2.0 403 "),
        "{refused}\n{}",
        k.log()
    );

    let mut pbx = edge.connect(tls_port(&k), true);
    let lport = pbx.local_port();
    let invite = over(
        "tls",
        &raw_request(k.port, lport, "INVITE", DIALLED, "cert"),
    );
    pbx.send(&invite);
    let mut vendor = vendor_pki.accept(&gateway);
    let relayed = next_on(&mut vendor, "INVITE", "cert", &k);
    vendor_answers(&mut vendor, &relayed, ("tls", data.cheap.0), "v");
    let answered = final_on(&mut pbx, "cert", &k);
    assert!(
        answered.starts_with("SIP/2.0 200 "),
        "{answered}\n{}",
        k.log()
    );
}

/// WITH_TLS without TLS_CERT or TLS_KEY: the edge refuses to start, naming what it
/// lacks (tls.so would otherwise take a cert.pem beside the config). The old config
/// ignored WITH_TLS and started without TLS.
#[test]
fn the_shipped_config_refuses_tls_without_a_certificate_and_key() {
    let pki = Pki::make("edge");
    let with = with_tls(&pki);
    for (left_out, named) in [
        (1, "TLS_CERT_is_required_with_WITH_TLS"),
        (2, "TLS_KEY_is_required_with_WITH_TLS"),
    ] {
        let mut defines = with.clone();
        defines.remove(left_out);
        let log = Kamailio::refused_file(&shipped_config(), &defines);
        assert!(log.contains(named), "{log}");
    }
}

/// A call a vendor on TLS routes back to the edge (here over UDP) carries the edge's Via
/// naming TLS on the TLS port, not the one it came back to: the edge still knows it for
/// its own and refuses it (482) rather than route it again. The old loop check knew
/// Vias naming UDP or TCP on the receiving socket alone.
#[test]
fn the_shipped_config_stops_a_call_a_vendor_on_tls_routes_back_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("edge");
    let (data, gateway) = stream_vendor("tls");
    let k = start_shipped(dir.path(), &data, &no_redis(), &with_tls(&pki));
    stops_a_call_a_stream_vendor_routes_back(&k, || pki.accept(&gateway));
}

/// The case TLS is there for: a PBX that carries its SRTP keys over TLS reaches a
/// vendor on plain RTP over UDP (WITH_TLS and WITH_RTPENGINE at once): the vendor is
/// offered RTP/AVP with no key, the PBX answered over its connection with RTP/SAVP and
/// rtpengine's own key; its BYE frees the media.
#[test]
fn the_shipped_config_bridges_srtp_from_a_customer_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("edge");
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &with_tls(&pki));
    let mut caller = pki.connect(tls_port(&k), false);
    let lport = caller.local_port();
    let request = raw_request(k.port, lport, "INVITE", DIALLED, "srtp");
    let invite = over("tls", &with_sdp(&request, &srtp_offer(1, 6000)));
    let ok = call_over("tls", &mut caller, &invite, "srtp", &k);
    assert_srtp(body_of(&ok), &rtpengine, &k);
    assert_plain_rtp(&vendor.received("INVITE")[0], &rtpengine, &k);
    let bye = caller_request("BYE", 2, "srtp", lport, &ok);
    caller.send(&over("tls", &bye));
    let done = final_on(&mut caller, "srtp", &k);
    assert!(done.starts_with("SIP/2.0 200 "), "{done}\n{}", k.log());
    wait_for_no_media_sessions(&rtpengine, &k);
}

/// As [`the_shipped_config_reaches_a_caller_behind_nat_over_its_tls_connection`], with
/// WITH_TOPOH: the vendor gets the caller's Contact masked, its `;alias` and
/// `;transport=tls` inside, and the edge's Record-Routes masked; unmasked again, they
/// take the vendor's BYE, and the edge's own, to the caller's TLS connection.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat_over_its_tls_connection_with_topology_hidden() {
    let pki = Pki::make("edge");
    let connect = |k: &Kamailio| pki.connect(tls_port(k), false);
    let mut defines = with_tls(&pki);
    defines.extend(with_topoh());
    reaches_a_caller_behind_nat_over_its_connection(&Routing::direct(), "tls", &defines, connect);
}

/// GATEWAY_SILENCES with a vendor gateway on TLS whose port takes the connection and
/// never completes the handshake (nothing read, no ServerHello): silent as a UDP or TCP
/// one is, after three calls it is tried last, the next call going straight to the
/// other vendor.
#[test]
fn the_shipped_config_puts_a_tls_gateway_that_never_completes_its_handshake_last() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("edge");
    let (data, _never_accepted) = stream_vendor("tls");
    let dear = Vendor::start(data.dear.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &with_tls(&pki));
    a_silent_gateway_goes_last(&k, &data, &dear);
}
