//! Keepalives (see keepalive.rs) to a side over TCP or TLS with no NAT in between that
//! went away: a vendor gateway the edge connected to, whose SBC vanished or restarted,
//! and a PBX that connected to the edge and takes requests at its Contact (its own
//! address and listening port), not only over the connection it opened.

use super::keepalive::{answering_keepalives, ended_for_the_vendors_481, keepalive_defines};
use super::tcp::{
    caller_request, double_record_route, final_on, next_on, over, stream_vendor, vendor_answers,
    vendor_bye, DIALLED,
};
use super::tls::with_tls;
use super::{event_kinds, holds_no_call, start_shipped, wait_for_stat};
use crate::support::redis::Redis;
use crate::support::tcp::{Carrier, SipStream, WAIT};
use crate::support::tls::Pki;
use crate::support::udp::{
    contact_uri, final_reply_text, header_of, raw_request, raw_socket, reply_to, send_raw,
};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{dataset::Data, Kamailio, Reply};
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

/// The calls of the vendors that vanish and of those that restart.
const VANISHED: &str = "vanished";
const FORGOT: &str = "forgot";

/// Longer than the first keepalive takes to come (one interval after the answer).
const TO_THE_KEEPALIVE: Duration = Duration::from_secs(60);

/// A vendor reached over TCP whose gateway vanished mid-call (its listener and
/// connection gone): the keepalive's new connection is refused, and the call is ended
/// one interval, tm's 32 s and 10 s after the answer, the caller sent its BYE and the
/// call its `end` event.
#[test]
fn the_shipped_config_ends_a_call_whose_tcp_vendor_vanished() {
    ends_a_call_whose_vendor_vanished("tcp", &[], SipStream::accept_within);
}

/// As [`the_shipped_config_ends_a_call_whose_tcp_vendor_vanished`], the vendor's
/// gateway reached over TLS (`;transport=tls`): the keepalive's TLS connection is
/// refused alike.
#[test]
fn the_shipped_config_ends_a_call_whose_tls_vendor_vanished() {
    let (edge, vendor) = (Pki::make("edge"), Pki::make("vendor"));
    let accept = |gateway: &TcpListener, wait| vendor.accept_within(gateway, wait);
    ends_a_call_whose_vendor_vanished("tls", &with_tls(&edge), accept);
}

/// A vendor reached over TCP whose SBC restarted mid-call (its connection gone, a new
/// listener on its port) takes the keepalive on the new connection the edge opens and
/// answers 481: the call is ended 10 s later, the caller's BYE sent, the vendor's over
/// that connection.
#[test]
fn the_shipped_config_ends_a_call_a_restarted_tcp_vendor_forgot() {
    ends_a_call_a_restarted_vendor_forgot("tcp", &[], SipStream::accept_within);
}

/// As [`the_shipped_config_ends_a_call_a_restarted_tcp_vendor_forgot`], over TLS.
#[test]
fn the_shipped_config_ends_a_call_a_restarted_tls_vendor_forgot() {
    let (edge, vendor) = (Pki::make("edge"), Pki::make("vendor"));
    let accept = |gateway: &TcpListener, wait| vendor.accept_within(gateway, wait);
    ends_a_call_a_restarted_vendor_forgot("tls", &with_tls(&edge), accept);
}

/// See [`the_shipped_config_ends_a_call_whose_tcp_vendor_vanished`]: over `transport`,
/// the edge started with `defines` too, the vendor's connections taken by `accept`.
fn ends_a_call_whose_vendor_vanished<S: Carrier>(
    transport: &str,
    defines: &[String],
    accept: impl Fn(&TcpListener, Duration) -> SipStream<S>,
) {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let (data, gateway) = stream_vendor(transport);
    let mut defines = defines.to_vec();
    defines.extend(keepalive_defines());
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    let vendor = (VANISHED, transport, data.cheap.0);
    let connection = accept_a_call((&sock, lport), &k, vendor, || accept(&gateway, WAIT));
    let answered = Instant::now();
    wait_for_stat(&k, "limits.active", "1");
    drop(connection);
    drop(gateway);

    let got = answering_keepalives(&sock, &k, ("200 OK", ""), Duration::from_secs(95), |m| {
        m.starts_with("BYE ")
    });
    let ended = answered.elapsed();
    let bye = got.last().filter(|m| m.starts_with("BYE "));
    let bye = bye.unwrap_or_else(|| panic!("the caller got no BYE: {got:#?}\n{}", k.log()));
    send_raw(&sock, &k, &reply_to(bye, "200 OK", ""));
    // The keepalive at one interval; its 408 32 s later, then 10 s.
    assert!(
        (Duration::from_secs(65)..Duration::from_secs(85)).contains(&ended),
        "ended {ended:?} after the answer:\n{}",
        k.log()
    );
    assert!(k.log().contains("Connection refused"), "{}", k.log());
    ended_with_its_end_event(&k, &redis, VANISHED, lport);
}

/// See [`the_shipped_config_ends_a_call_a_restarted_tcp_vendor_forgot`]: over
/// `transport`, the edge started with `defines` too, the vendor's connections taken
/// by `accept`.
fn ends_a_call_a_restarted_vendor_forgot<S: Carrier + Send>(
    transport: &str,
    defines: &[String],
    accept: impl Fn(&TcpListener, Duration) -> SipStream<S> + Sync,
) {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let (data, gateway) = stream_vendor(transport);
    let mut defines = defines.to_vec();
    defines.extend(keepalive_defines());
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    let vendor = (FORGOT, transport, data.cheap.0);
    let connection = accept_a_call((&sock, lport), &k, vendor, || accept(&gateway, WAIT));
    let answered = Instant::now();
    wait_for_stat(&k, "limits.active", "1");
    drop(connection);
    drop(gateway);
    let restarted = TcpListener::bind(("127.0.0.1", data.cheap.0)).unwrap();

    let (options, bye) = std::thread::scope(|scope| {
        let vendor = scope.spawn(|| {
            let mut connection = accept(&restarted, TO_THE_KEEPALIVE);
            let options = next_on(&mut connection, "OPTIONS", FORGOT, &k);
            let forgot = "481 Call/Transaction Does Not Exist";
            connection.send(&reply_to(&options, forgot, ""));
            // The BYE comes 10 s after the 481, past next_on()'s wait.
            let bye = loop {
                let message = connection.next_within(Duration::from_secs(15));
                let message = message.unwrap_or_else(|e| panic!("no BYE ({e}):\n{}", k.log()));
                if message.starts_with("BYE ") {
                    break message;
                }
            };
            connection.send(&reply_to(&bye, forgot, ""));
            (options, bye)
        });
        ended_for_the_vendors_481(&sock, &k, answered, "the answer");
        vendor.join().unwrap()
    });
    let via = format!("\r\nVia: SIP/2.0/{} ", transport.to_ascii_uppercase());
    assert!(
        options.contains(&via) && bye.contains(&via),
        "{options}\n{bye}"
    );
    ended_with_its_end_event(&k, &redis, FORGOT, lport);
}

/// Call `call` from the caller on UDP at `sock` (and its port) to the vendor at `port`
/// over `transport`, answered by it on the connection `accept` takes, and
/// acknowledged: that connection.
fn accept_a_call<S: Carrier>(
    (sock, lport): (&UdpSocket, u16),
    k: &Kamailio,
    (call, transport, port): (&str, &str, u16),
    accept: impl FnOnce() -> SipStream<S>,
) -> SipStream<S> {
    send_raw(
        sock,
        k,
        &raw_request(k.port, lport, "INVITE", DIALLED, call),
    );
    let mut connection = accept();
    let invite = next_on(&mut connection, "INVITE", call, k);
    vendor_answers(&mut connection, &invite, (transport, port), "gone");
    let answered = final_reply_text(sock, k, &format!("{call}-"));
    assert!(
        answered.starts_with("SIP/2.0 200 "),
        "{answered}\n{}",
        k.log()
    );
    send_raw(sock, k, &caller_request("ACK", 1, call, lport, &answered));
    next_on(&mut connection, "ACK", call, k);
    connection
}

/// Call `call` of the caller at `lport` ended: no dialog left, its events `start`,
/// `answer` and `end`.
fn ended_with_its_end_event(k: &Kamailio, redis: &Redis, call: &str, lport: u16) {
    holds_no_call(k);
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let kinds: Vec<String> = event_kinds(&cdrs, call, lport);
    assert_eq!(kinds, ["start", "answer", "end"], "{cdrs:#?}");
}

/// A PBX over TCP not behind NAT: it listens at the address and port its Via and
/// Contact name, and connects to the edge from another port, as TCP clients do. Its
/// Contact reaches the vendor as it sent it (no alias of the connection's port). Its
/// PBX goes away (connection and listener gone): the keepalive's new connection to its
/// Contact is refused and the call is ended one interval, tm's 32 s and 10 s after the
/// answer, the vendor sent its BYE.
#[test]
fn the_shipped_config_ends_a_call_whose_tcp_caller_not_behind_nat_went_away() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &redis.url(), &keepalive_defines());
    let pbx = TcpListener::bind("127.0.0.1:0").unwrap();
    let contact = pbx.local_addr().unwrap().port();
    let (caller, _) = pbx_call(&k, &vendor, contact, "pbxgone");
    let answered = Instant::now();
    wait_for_stat(&k, "limits.active", "1");
    drop(caller);
    drop(pbx);

    let this_call = format!("\r\nCall-ID: pbxgone-{contact}\r\n");
    let deadline = answered + Duration::from_secs(95);
    while !vendor
        .received("BYE")
        .iter()
        .any(|b| b.contains(&this_call))
    {
        assert!(
            Instant::now() < deadline,
            "no BYE to the vendor:\n{}",
            k.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended = answered.elapsed();
    // The keepalive at one interval; its 408 32 s later, then 10 s.
    assert!(
        (Duration::from_secs(65)..Duration::from_secs(85)).contains(&ended),
        "ended {ended:?} after the answer:\n{}",
        k.log()
    );
    assert!(k.log().contains("Connection refused"), "{}", k.log());
    ended_with_its_end_event(&k, &redis, "pbxgone", contact);
}

/// A PBX over TCP not behind NAT (see
/// [`the_shipped_config_ends_a_call_whose_tcp_caller_not_behind_nat_went_away`]) closes
/// its connection while the call is up, as a PBX does with one it no longer uses, and
/// still listens at its Contact: the vendor's BYE reaches it on a new connection there,
/// and the call ends as any does (200 to the vendor, its `end` event).
#[test]
fn the_shipped_config_reaches_a_tcp_caller_that_closed_its_connection_at_its_contact() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &redis.url(), &[]);
    let pbx = TcpListener::bind("127.0.0.1:0").unwrap();
    let contact = pbx.local_addr().unwrap().port();
    let (caller, ok) = pbx_call(&k, &vendor, contact, "closed");
    wait_for_stat(&k, "limits.active", "1");
    drop(caller);
    // The edge has seen the connection closed.
    std::thread::sleep(Duration::from_millis(500));

    let invites = vendor.received("INVITE");
    let relayed = invites.last().unwrap();
    let (vsock, vport) = raw_socket();
    let bye = vendor_bye(relayed, &ok, &format!("UDP 127.0.0.1:{vport}"));
    vsock
        .send_to(bye.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
    let mut reopened = SipStream::accept(&pbx);
    let bye = next_on(&mut reopened, "BYE", "closed", &k);
    reopened.send(&reply_to(&bye, "200 OK", ""));
    let call_id = header_of(relayed, "Call-ID");
    let done = Reply::parse(&final_reply_text(&vsock, &k, &call_id));
    assert_eq!(done.code, 200, "{}", k.log());
    ended_with_its_end_event(&k, &redis, "closed", contact);
}

/// Call `call` over TCP from a PBX listening at 127.0.0.1:`contact` (its Via and
/// Contact name it), on a connection of its own from another port, to `vendor`:
/// answered and acknowledged, its Contact relayed unaliased. The connection, and the
/// 200 the PBX got.
fn pbx_call(k: &Kamailio, vendor: &Vendor, contact: u16, call: &str) -> (SipStream, String) {
    let mut caller = SipStream::connect(k.port);
    assert_ne!(caller.local_port(), contact);
    let invite = over(
        "tcp",
        &raw_request(k.port, contact, "INVITE", DIALLED, call),
    );
    caller.send(&invite);
    let ok = final_on(&mut caller, call, k);
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}\n{}", k.log());
    double_record_route(&ok, "udp", "tcp", k);
    let ack = caller_request("ACK", 1, call, contact, &ok);
    caller.send(&over("tcp", &ack));
    let invites = vendor.received("INVITE");
    let relayed = invites.last().unwrap();
    assert_eq!(
        contact_uri(relayed),
        format!("sip:3035550100@127.0.0.1:{contact};transport=tcp"),
        "{relayed}"
    );
    (caller, ok)
}
