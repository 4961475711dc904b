//! SIP over TCP on the shipped config: customers' switches and vendors' gateways that
//! send or take calls over TCP (RFC 3261 18), next to UDP on the same socket.

use super::hairpin::NO_HAIRPIN_CHECK;
use super::{end_the_only_dialog, no_redis, start_shipped, with_topoh, Routing};
use crate::support::tcp::{Carrier, SipStream};
use crate::support::udp::{
    behind_nat, contact_uri, final_reply, final_reply_text, header_of, next_request, raw_request,
    raw_socket, reply_to, send_raw,
};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{self, dataset::Data, Kamailio};
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

pub(super) const DIALLED: &str = "+12125550123";

/// `request` as a switch sends it over TCP: its Via names TCP, its Contact the
/// transport.
fn over_tcp(request: &str) -> String {
    over("tcp", request)
}

/// `request` as a peer sends it over `transport` ("tcp", "tls"): its Via names it,
/// its Contact too.
pub(super) fn over(transport: &str, request: &str) -> String {
    let via = format!("Via: SIP/2.0/{} ", transport.to_ascii_uppercase());
    let request = request.replacen("Via: SIP/2.0/UDP ", &via, 1);
    let Some(contact) = request.find("\r\nContact: <") else {
        return request;
    };
    let end = contact + request[contact..].find('>').unwrap();
    format!(
        "{};transport={transport}{}",
        &request[..end],
        &request[end..]
    )
}

/// Every Record-Route of `message`, in order.
pub(super) fn record_routes(message: &str) -> Vec<String> {
    message
        .split("\r\n")
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("Record-Route: "))
        .flat_map(|v| v.split(", "))
        .map(str::to_owned)
        .collect()
}

/// The edge's two Record-Routes of a call that changes transport (rr's double
/// Record-Route), the one toward the vendor first: the vendor's route set. Each names
/// its side's transport ("udp", "tcp", "tls").
pub(super) fn double_record_route(
    message: &str,
    vendor_side: &str,
    caller_side: &str,
    k: &Kamailio,
) -> Vec<String> {
    let rrs = record_routes(message);
    assert_eq!(rrs.len(), 2, "{message}\n{}", k.log());
    let transport = |rr: &String| match rr.split(";transport=").nth(1) {
        Some(rest) => rest[..3].to_owned(),
        None => "udp".to_owned(),
    };
    assert_eq!(
        [transport(&rrs[0]), transport(&rrs[1])],
        [vendor_side, caller_side],
        "{rrs:?}"
    );
    rrs
}

/// An in-dialog `method` of call `call` from the caller at `lport`, in the dialog the
/// 200 `ok` set up: to its Contact, along its Record-Route.
pub(super) fn caller_request(method: &str, cseq: u32, call: &str, lport: u16, ok: &str) -> String {
    let route = caller_route(&record_routes(ok));
    let to = header_of(ok, "To");
    raw_request(0, lport, method, DIALLED, call)
        .replacen(
            &format!("{method} sip:{DIALLED}@127.0.0.1:0"),
            &format!("{method} {}", contact_uri(ok)),
            1,
        )
        .replace(
            &format!("branch=z9hG4bK-{call}{lport}"),
            &format!("branch=z9hG4bK-{method}{cseq}{lport}"),
        )
        .replacen(
            &format!("To: <sip:{DIALLED}@127.0.0.1>"),
            &format!("Route: {route}\r\nTo: {to}"),
            1,
        )
        .replacen(
            &format!("CSeq: 1 {method}"),
            &format!("CSeq: {cseq} {method}"),
            1,
        )
}

/// The vendor's BYE of the call its `invite` started, answered with `ok`: to the
/// caller's Contact along the Record-Route, from `via` (the vendor's own, transport
/// included).
pub(super) fn vendor_bye(invite: &str, ok: &str, via: &str) -> String {
    let route = record_routes(invite).join(", ");
    format!(
        "BYE {contact} SIP/2.0\r\n\
         Via: SIP/2.0/{via};branch=z9hG4bK-vbye{call}\r\n\
         Route: {route}\r\n\
         From: {to}\r\n\
         To: {from}\r\n\
         Call-ID: {call}\r\n\
         CSeq: 1 BYE\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        contact = contact_uri(invite),
        call = header_of(invite, "Call-ID"),
        to = header_of(ok, "To"),
        from = header_of(invite, "From"),
    )
}

/// The next request of `method` of call `call` on `stream`, skipping anything else.
pub(super) fn next_on<S: Carrier>(
    stream: &mut SipStream<S>,
    method: &str,
    call: &str,
    k: &Kamailio,
) -> String {
    loop {
        let message = stream
            .next()
            .unwrap_or_else(|e| panic!("no {method} of {call} over TCP ({e}):\n{}", k.log()));
        if message.starts_with(&format!("{method} "))
            && message.contains(&format!("\r\nCall-ID: {call}-"))
        {
            return message;
        }
    }
}

/// The next final reply on `stream` of call `call`, skipping anything else.
pub(super) fn final_on<S: Carrier>(stream: &mut SipStream<S>, call: &str, k: &Kamailio) -> String {
    loop {
        let message = stream
            .next()
            .unwrap_or_else(|e| panic!("no final reply of {call} over TCP ({e}):\n{}", k.log()));
        let reply = message.starts_with("SIP/2.0 ") && !message.starts_with("SIP/2.0 1");
        if reply && message.contains(&format!("\r\nCall-ID: {call}-")) {
            return message;
        }
    }
}

/// A caller over TCP, answered by `vendor` (UDP): the call `call` set up (200, ACK),
/// its 200 returned as it came.
fn tcp_call(caller: &mut SipStream, invite: &str, call: &str, k: &Kamailio) -> String {
    call_over("tcp", caller, invite, call, k)
}

/// A caller over `transport` ("tcp", "tls"), answered by a vendor on UDP: the call
/// `call` set up (200, ACK), its 200 returned as it came.
pub(super) fn call_over<S: Carrier>(
    transport: &str,
    caller: &mut SipStream<S>,
    invite: &str,
    call: &str,
    k: &Kamailio,
) -> String {
    caller.send(invite);
    let ok = final_on(caller, call, k);
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}\n{}", k.log());
    double_record_route(&ok, "udp", transport, k);
    let ack = caller_request("ACK", 1, call, caller.local_port(), &ok);
    caller.send(&over(transport, &ack));
    ok
}

/// The caller's route set: the 200's Record-Routes, last first.
fn caller_route(rrs: &[String]) -> String {
    rrs.iter().rev().cloned().collect::<Vec<_>>().join(", ")
}

/// A switch that sends its calls over TCP to a vendor on UDP: each call is answered,
/// and ended by either side, every request and reply to the switch over its
/// connection, the edge's Record-Route doubled (one for each transport), so that
/// either side's BYE crosses from one transport to the other. The old config
/// listened on UDP alone: the switch could not connect.
#[test]
fn the_shipped_config_takes_calls_from_a_customer_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let mut caller = SipStream::connect(k.port);
    takes_calls_from_a_stream_customer(&k, &vendor, "tcp", &mut caller, || {});
}

/// Two calls from `caller`, a customer on `transport` (`tcp`, `tls`), through `k` to
/// `vendor` on UDP: the first ended by the caller, then `between` (a look at the
/// connection), the second by the vendor, whose BYE reaches the caller over its
/// connection; each answered, the Record-Route doubled.
pub(super) fn takes_calls_from_a_stream_customer<S: Carrier>(
    k: &Kamailio,
    vendor: &Vendor,
    transport: &str,
    caller: &mut SipStream<S>,
    between: impl FnOnce(),
) {
    let lport = caller.local_port();
    // The caller hangs up.
    let invite = over(
        transport,
        &raw_request(k.port, lport, "INVITE", DIALLED, "hangup"),
    );
    let ok = call_over(transport, caller, &invite, "hangup", k);
    let bye = caller_request("BYE", 2, "hangup", lport, &ok);
    caller.send(&over(transport, &bye));
    let done = final_on(caller, "hangup", k);
    assert!(done.starts_with("SIP/2.0 200 "), "{done}\n{}", k.log());
    assert_eq!(vendor.received("BYE").len(), 1, "{}", k.log());
    between();

    // The vendor hangs up: its BYE reaches the caller over the caller's connection.
    let invite = over(
        transport,
        &raw_request(k.port, lport, "INVITE", DIALLED, "vendorbye"),
    );
    let ok = call_over(transport, caller, &invite, "vendorbye", k);
    let invites = vendor.received("INVITE");
    let relayed = invites.last().unwrap();
    assert!(
        relayed.contains("\r\nVia: SIP/2.0/UDP 127.0.0.1:"),
        "{relayed}"
    );
    let (vsock, vport) = raw_socket();
    let bye = vendor_bye(relayed, &ok, &format!("UDP 127.0.0.1:{vport}"));
    vsock
        .send_to(bye.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
    let bye = next_on(caller, "BYE", "vendorbye", k);
    let via = format!(
        "\r\nVia: SIP/2.0/{} 127.0.0.1:",
        transport.to_ascii_uppercase()
    );
    assert!(bye.contains(&via), "{bye}");
    caller.send(&reply_to(&bye, "200 OK", ""));
    let call_id = header_of(relayed, "Call-ID");
    let done = support::Reply::parse(&final_reply_text(&vsock, k, &call_id));
    assert_eq!(done.code, 200, "{}", k.log());
}

/// A vendor whose gateway URI says `transport=tcp` gets its calls over TCP from a
/// caller on UDP: answered, and ended by either side, the vendor's requests and
/// replies over the connection the edge opened, the Record-Route doubled. The old
/// config could not send to it (477, failed over).
#[test]
fn the_shipped_config_places_calls_with_a_vendor_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let (data, gateway) = stream_vendor("tcp");
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    places_calls_with_a_stream_vendor(&k, data.cheap.0, "tcp", || SipStream::accept(&gateway));
}

/// The gateways' data with CHEAP's gateway taking calls over `transport` (`tcp`,
/// `tls`), and the socket it listens on.
pub(super) fn stream_vendor(transport: &str) -> (Data, TcpListener) {
    let params = if transport == "tls" {
        ";transport=tls"
    } else {
        ";transport=tcp"
    };
    // The gateways' ports are free for UDP: another test may hold one for TCP.
    loop {
        let data = Data {
            uri_params: (params, ""),
            ..Data::with_gateways()
        };
        if let Ok(gateway) = TcpListener::bind(("127.0.0.1", data.cheap.0)) {
            return (data, gateway);
        }
    }
}

/// `invite`, which reached the vendor at `port` over `transport`, answered 200 by it on
/// `stream`, its To tagged `tag`: the 200 as sent.
pub(super) fn vendor_answers<S: Carrier>(
    stream: &mut SipStream<S>,
    invite: &str,
    (transport, port): (&str, u16),
    tag: &str,
) -> String {
    let to = format!("To: {}", header_of(invite, "To"));
    let contact = format!("Contact: <sip:vendor@127.0.0.1:{port};transport={transport}>\r\n");
    let ok = reply_to(invite, "200 OK", &contact).replacen(&to, &format!("{to};tag={tag}"), 1);
    stream.send(&ok);
    ok
}

/// Two calls from a caller on UDP through `k` to the vendor at `port` over `transport`
/// (`tcp`, `tls`), on the connection the edge opens to it (`accept`): each answered,
/// the Record-Route doubled, the first ended by the caller, the second by the vendor,
/// each BYE crossing transports.
pub(super) fn places_calls_with_a_stream_vendor<S: Carrier>(
    k: &Kamailio,
    port: u16,
    transport: &str,
    accept: impl Fn() -> SipStream<S>,
) {
    let (sock, lport) = raw_socket();
    let via = transport.to_ascii_uppercase();
    let mut vendor: Option<SipStream<S>> = None;
    for (call, vendor_hangs_up) in [("hangup", false), ("vendorbye", true)] {
        send_raw(
            &sock,
            k,
            &raw_request(k.port, lport, "INVITE", DIALLED, call),
        );
        let to_vendor = vendor.get_or_insert_with(&accept);
        let invite = next_on(to_vendor, "INVITE", call, k);
        assert!(
            invite.contains(&format!("\r\nVia: SIP/2.0/{via} 127.0.0.1:")),
            "{invite}"
        );
        double_record_route(&invite, transport, "udp", k);
        let tag = format!("{transport}vendor");
        let ok = vendor_answers(to_vendor, &invite, (transport, port), &tag);
        let answered = final_reply_text(&sock, k, &format!("{call}-"));
        assert!(
            answered.starts_with("SIP/2.0 200 "),
            "{answered}\n{}",
            k.log()
        );
        let in_dialog = |method, cseq| caller_request(method, cseq, call, lport, &answered);
        send_raw(&sock, k, &in_dialog("ACK", 1));
        next_on(to_vendor, "ACK", call, k);
        if vendor_hangs_up {
            to_vendor.send(&vendor_bye(
                &invite,
                &ok,
                &format!("{via} 127.0.0.1:{port}"),
            ));
            let bye = next_request(&sock, "BYE", call, k);
            sock.send_to(
                reply_to(&bye, "200 OK", "").as_bytes(),
                ("127.0.0.1", k.port),
            )
            .unwrap();
            let done = to_vendor.next().unwrap();
            assert!(
                done.starts_with("SIP/2.0 200 ") && done.contains("CSeq: 1 BYE"),
                "{done}"
            );
        } else {
            send_raw(&sock, k, &in_dialog("BYE", 2));
            let bye = next_on(to_vendor, "BYE", call, k);
            to_vendor.send(&reply_to(&bye, "200 OK", ""));
            assert_eq!(final_reply(&sock, k, call).code, 200, "{}", k.log());
        }
    }
}

/// A caller behind NAT over TCP (its Via and Contact name 192.168.1.10:5060) can be
/// reached only over the connection it opened. That connection outlives
/// `TCP_LIFETIME` (2 s here) with its call up and nothing sent, where a stranger's
/// idle one is closed: the BYE the edge sends itself (`dlg.end_dlg`) and the vendor's
/// both reach the caller over it.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat_over_its_tcp_connection() {
    reaches_a_caller_behind_nat_over_its_tcp_connection(&Routing::direct());
}

fn reaches_a_caller_behind_nat_over_its_tcp_connection(routing: &Routing) {
    let connect = |k: &Kamailio| SipStream::connect(k.port);
    reaches_a_caller_behind_nat_over_its_connection(routing, "tcp", &[], connect);
}

/// As [`the_shipped_config_reaches_a_caller_behind_nat_over_its_tcp_connection`], for
/// calls dipped in an async worker (WITH_LRN_DIP): routed, answered and relayed to the
/// caller's connection from the resumed route's process.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat_over_its_tcp_connection_after_the_dip() {
    reaches_a_caller_behind_nat_over_its_tcp_connection(&Routing::dipped());
}

/// As [`the_shipped_config_reaches_a_caller_behind_nat_over_its_tcp_connection`], with
/// WITH_TOPOH: the vendor gets the caller's Contact masked, its `;alias` and
/// `;transport=tcp` inside, and the edge's two Record-Routes (one for each transport),
/// the second masked; unmasked again, they still take the vendor's BYE, and the
/// edge's own, to the caller's connection.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat_over_its_tcp_connection_with_topology_hidden() {
    let connect = |k: &Kamailio| SipStream::connect(k.port);
    reaches_a_caller_behind_nat_over_its_connection(
        &Routing::direct(),
        "tcp",
        &with_topoh(),
        connect,
    );
}

/// A caller behind NAT over `transport` ("tcp", "tls"), its connections made by
/// `connect`, the shipped config started with `defines` too: see
/// [`the_shipped_config_reaches_a_caller_behind_nat_over_its_tcp_connection`].
pub(super) fn reaches_a_caller_behind_nat_over_its_connection<S: Carrier>(
    routing: &Routing,
    transport: &str,
    defines: &[String],
    connect: impl Fn(&Kamailio) -> SipStream<S>,
) {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let mut defines = defines.to_vec();
    defines.push("TCP_LIFETIME=2".to_string());
    let k = start_shipped(dir.path(), &data, &no_redis(), &routing.defines(&defines));
    let mut caller = connect(&k);
    let lport = caller.local_port();
    let user = routing.number();
    let nat_invite = |call| {
        over(
            transport,
            &behind_nat(&raw_request(k.port, lport, "INVITE", user, call), lport),
        )
    };
    // A TCP worker keeps a connection 5 s after its last message (Kamailio's
    // TCP_CHILD_TIMEOUT), then the main process TCP_LIFETIME more.
    let past_lifetime = || std::thread::sleep(Duration::from_secs(10));

    let mut stranger = connect(&k);
    let options = over(
        transport,
        &raw_request(k.port, stranger.local_port(), "OPTIONS", DIALLED, "idle"),
    );
    stranger.send(&options);
    assert!(final_on(&mut stranger, "idle", &k).starts_with("SIP/2.0 200 "));
    call_over(transport, &mut caller, &nat_invite("ended"), "ended", &k);
    assert!(
        stranger.closed_within(Duration::from_secs(15)),
        "{}",
        k.log()
    );

    // The call's connection has been idle as long as the stranger's.
    std::thread::sleep(Duration::from_secs(1));
    end_the_only_dialog(&k);
    let bye = next_on(&mut caller, "BYE", "ended", &k);
    caller.send(&reply_to(&bye, "200 OK", ""));

    let ok = call_over(
        transport,
        &mut caller,
        &nat_invite("refreshed"),
        "refreshed",
        &k,
    );
    let invites = vendor.received("INVITE");
    let relayed = invites.last().unwrap();
    // The caller's Contact, aliased; with WITH_TOPOH masked, the alias inside.
    let contact = contact_uri(relayed);
    if defines.iter().any(|d| d == "WITH_TOPOH") {
        assert!(
            contact.starts_with("sip:127.0.0.8;") && !contact.contains("192.168."),
            "{relayed}"
        );
    } else {
        assert!(contact.contains(";alias="), "{relayed}");
    }
    past_lifetime();
    let (vsock, vport) = raw_socket();
    let bye = vendor_bye(relayed, &ok, &format!("UDP 127.0.0.1:{vport}"));
    vsock
        .send_to(bye.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
    let bye = next_on(&mut caller, "BYE", "refreshed", &k);
    caller.send(&reply_to(&bye, "200 OK", ""));
    let call_id = header_of(relayed, "Call-ID");
    let done = support::Reply::parse(&final_reply_text(&vsock, &k, &call_id));
    assert_eq!(done.code, 200, "{}", k.log());
    routing.took(&k, 2);
}

/// `request` grown past 3 kB, as a switch offering many codecs with long headers sends
/// it: an SDP body of `lines` attribute lines and as many headers.
fn large(request: &str, lines: usize) -> String {
    let headers: String = (0..lines)
        .map(|i| format!("X-Long-Header-{i}: {}\r\n", "h".repeat(40)))
        .collect();
    let mut sdp = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 6000 RTP/AVP 0\r\n"
        .to_owned();
    for i in 0..lines {
        sdp.push_str(&format!("a=fmtp:{} {}\r\n", 96 + i, "x".repeat(40)));
    }
    request.replacen(
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        &format!(
            "{headers}Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
        1,
    )
}

/// An INVITE of 3 kB and more (many codecs, long headers) is taken over TCP from a
/// switch and relayed whole; one sent over UDP is relayed to a UDP vendor over UDP
/// as it came (not switched to TCP, which a vendor may not listen on). The old config
/// took no TCP.
#[test]
fn the_shipped_config_takes_a_large_invite_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let mut caller = SipStream::connect(k.port);
    let lport = caller.local_port();
    let invite = large(
        &over_tcp(&raw_request(k.port, lport, "INVITE", DIALLED, "big")),
        30,
    );
    assert!(invite.len() > 3000, "{}", invite.len());
    tcp_call(&mut caller, &invite, "big", &k);
    let (sock, lport) = raw_socket();
    let invite = large(&raw_request(k.port, lport, "INVITE", DIALLED, "bigudp"), 30);
    send_raw(&sock, &k, &invite);
    assert_eq!(final_reply(&sock, &k, "bigudp").code, 200, "{}", k.log());
    let invites = vendor.received("INVITE");
    assert_eq!(invites.len(), 2, "{}", k.log());
    for relayed in invites {
        assert!(relayed.len() > 3000, "{relayed}");
        assert!(relayed.contains("\r\nX-Long-Header-29: "), "{relayed}");
        assert!(
            relayed.ends_with(&format!("a=fmtp:125 {}\r\n", "x".repeat(40))),
            "{relayed}"
        );
    }
}

/// Garbage, a message cut short and one without Content-Length over TCP hold up no
/// worker and break nothing: the message without a length is refused and its
/// connection closed (RFC 3261 18.3), and calls over TCP and UDP go on meanwhile,
/// more connections hanging on a half message than the edge has TCP workers.
#[test]
fn the_shipped_config_takes_calls_over_tcp_past_garbage_and_half_messages() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let mut garbage = SipStream::connect(k.port);
    garbage.send("\u{1}\u{2}hello there\r\n\r\n\r\n\r\nnot SIP at all\r\n\r\n");
    let mut half = Vec::new();
    for n in 0..4 {
        let mut stream = SipStream::connect(k.port);
        let call = format!("half{n}");
        let invite = over_tcp(&raw_request(
            k.port,
            stream.local_port(),
            "INVITE",
            DIALLED,
            &call,
        ))
        .replace(
            "Content-Length: 0\r\n\r\n",
            "Content-Length: 500\r\n\r\nv=0\r\n",
        );
        stream.send(&invite);
        half.push(stream);
    }
    let mut unframed = SipStream::connect(k.port);
    let invite = over_tcp(&raw_request(
        k.port,
        unframed.local_port(),
        "INVITE",
        DIALLED,
        "nolen",
    ))
    .replace("Content-Length: 0\r\n", "");
    unframed.send(&invite);
    assert!(
        unframed.closed_within(Duration::from_secs(3)),
        "{}",
        k.log()
    );

    let mut caller = SipStream::connect(k.port);
    let invite = over_tcp(&raw_request(
        k.port,
        caller.local_port(),
        "INVITE",
        DIALLED,
        "after",
    ));
    tcp_call(&mut caller, &invite, "after", &k);
    let (sock, lport) = raw_socket();
    send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "INVITE", DIALLED, "udp"),
    );
    assert_eq!(final_reply(&sock, &k, "udp").code, 200, "{}", k.log());
    assert_eq!(k.rpc("warp.stats")["limits.active"], "2", "{}", k.log());
}

/// A call a vendor on TCP routes back to the edge (here over UDP) carries the edge's
/// Via naming TCP: the edge still knows it for its own and refuses it (482) rather
/// than route it again. The old loop check looked for a Via naming UDP alone.
#[test]
fn the_shipped_config_stops_a_call_a_vendor_on_tcp_routes_back_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, gateway) = stream_vendor("tcp");
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    stops_a_call_a_stream_vendor_routes_back(&k, || SipStream::accept(&gateway));
}

/// A call through `k` to the vendor whose connection `accept` takes, sent back to the
/// edge over UDP as the vendor's proxy would (its Via on top of the edge's): 482.
pub(super) fn stops_a_call_a_stream_vendor_routes_back<S: Carrier>(
    k: &Kamailio,
    accept: impl FnOnce() -> SipStream<S>,
) {
    let (sock, lport) = raw_socket();
    send_raw(
        &sock,
        k,
        &raw_request(k.port, lport, "INVITE", DIALLED, "looped"),
    );
    let mut vendor = accept();
    let invite = next_on(&mut vendor, "INVITE", "looped", k);
    let (vsock, vport) = raw_socket();
    let own_via = format!("\r\nVia: SIP/2.0/UDP 127.0.0.1:{vport};branch=z9hG4bK-back\r\nVia: ");
    let back = invite.replacen("\r\nVia: ", &own_via, 1);
    vsock
        .send_to(back.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
    assert_eq!(final_reply(&vsock, k, "looped").code, 482, "{}", k.log());
}

/// GATEWAY_SILENCES with a vendor gateway on TCP. One that refuses the connection
/// (nothing listens on its port) fails each call over at once (477) and is no silence:
/// however many calls it refuses, it keeps its place and `warp.gateways` lists nothing.
/// One that takes the connection and never answers is silent as a UDP one is: after
/// three calls it is tried last, the next call going straight to the other vendor.
#[test]
fn the_shipped_config_puts_a_silent_tcp_gateway_last_but_not_one_that_refuses_connections() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data {
        uri_params: (";transport=tcp", ""),
        ..Data::with_gateways()
    };
    // The gateway's port, bound at once (no other socket of the busy test run can take
    // it meanwhile), and not listening yet: a connection to it is refused as to a port
    // no process has.
    let gateway = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], data.cheap.0));
    gateway.bind(&address.into()).unwrap();
    let dear = Vendor::start(data.dear.0, Plays::Answers);
    let defines = [NO_HAIRPIN_CHECK.into()];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let (sock, lport) = raw_socket();
    for n in 0..4 {
        let (code, took) = timed_call(&k, (&sock, lport), &format!("refused{n}"));
        assert!(code == 200 && took < QUICK, "{code} {took:?}\n{}", k.log());
    }
    let gateways = k.rpc("warp.gateways");
    assert_eq!(
        (gateways["put_last"].as_str(), gateways.get("1.gateway")),
        ("0", None),
        "{gateways:?}\n{}",
        k.log()
    );

    // Connections taken (the kernel's backlog), nothing ever read or answered.
    gateway.listen(128).unwrap();
    a_silent_gateway_goes_last(&k, &data, &dear);
}

/// Longer than a failover past a gateway that refuses or fails at once takes, shorter
/// than one past a silent gateway (the edge's wait for its reply).
const QUICK: Duration = Duration::from_millis(1500);

/// Call `call` through `k` from the caller's UDP socket (and its port): its final
/// reply's code, and how long it took.
fn timed_call(k: &Kamailio, (sock, lport): (&UdpSocket, u16), call: &str) -> (u16, Duration) {
    let sent = Instant::now();
    send_raw(
        sock,
        k,
        &raw_request(k.port, lport, "INVITE", DIALLED, call),
    );
    (final_reply(sock, k, call).code, sent.elapsed())
}

/// GATEWAY_SILENCES (3 by default) calls through `k` to CHEAP's gateway, which now
/// takes them and never answers: each is answered by DEAR (`dear`) once the edge gave
/// up waiting. CHEAP's gateway is then tried last, as `warp.gateways` lists it, and the
/// next call goes straight to DEAR.
pub(super) fn a_silent_gateway_goes_last(k: &Kamailio, data: &Data, dear: &Vendor) {
    let (sock, lport) = raw_socket();
    let answered_before = dear.received("INVITE").len();
    for n in 0..3 {
        let (code, took) = timed_call(k, (&sock, lport), &format!("silent{n}"));
        assert!(code == 200 && took >= QUICK, "{code} {took:?}\n{}", k.log());
    }
    let gateways = k.rpc("warp.gateways");
    let gateway = format!("127.0.0.1:{}", data.cheap.0);
    assert_eq!(
        (
            gateways["put_last"].as_str(),
            gateways["1.gateway"].as_str(),
            gateways["1.silences"].as_str()
        ),
        ("1", gateway.as_str(), "3"),
        "{gateways:?}\n{}",
        k.log()
    );
    let (code, took) = timed_call(k, (&sock, lport), "straight");
    assert!(code == 200 && took < QUICK, "{code} {took:?}\n{}", k.log());
    assert_eq!(
        dear.received("INVITE").len(),
        answered_before + 4,
        "{}",
        k.log()
    );
}

/// WITH_LRN_DIP with TCP on both sides: a dipped call from a switch over TCP is relayed
/// by the async worker it was resumed in over a TCP connection that worker opens to the
/// vendor, and the vendor's 200 reaches the switch over its own connection. A call the
/// switch cancels over TCP while its dip runs gets its 200 and 487 there, and no
/// vendor sees it once the LRN comes.
#[test]
fn the_shipped_config_dips_a_call_from_a_tcp_switch_to_a_tcp_vendor_and_takes_its_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let (data, gateway) = stream_vendor("tcp");
    let telique = crate::support::telique::Telique::start();
    let defines = super::dip_defines(&telique, 3000);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let mut caller = SipStream::connect(k.port);
    let lport = caller.local_port();
    let invite = |number, call| over_tcp(&raw_request(k.port, lport, "INVITE", number, call));

    caller.send(&invite("+12125550001", "dipped"));
    let mut vendor = SipStream::accept(&gateway);
    let relayed = next_on(&mut vendor, "INVITE", "dipped", &k);
    vendor_answers(&mut vendor, &relayed, ("tcp", data.cheap.0), "dipvendor");
    let ok = final_on(&mut caller, "dipped", &k);
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}\n{}", k.log());
    let ack = caller_request("ACK", 1, "dipped", lport, &ok);
    caller.send(&over_tcp(&ack));
    next_on(&mut vendor, "ACK", "dipped", &k);

    // Its dip answers after 1 s; the CANCEL comes meanwhile.
    caller.send(&invite("12125550003", "gone"));
    telique.wait_for("2125550003");
    caller.send(&over_tcp(&raw_request(
        k.port,
        lport,
        "CANCEL",
        "12125550003",
        "gone",
    )));
    let mut codes = [
        final_on(&mut caller, "gone", &k),
        final_on(&mut caller, "gone", &k),
    ]
    .map(|reply| reply[8..11].to_owned());
    codes.sort();
    assert_eq!(codes, ["200", "487"], "{}", k.log());
    // Past its dip, the next call is the next the vendor sees.
    std::thread::sleep(Duration::from_millis(1500));
    caller.send(&invite("+12125550001", "after"));
    let next = vendor.next().unwrap();
    assert!(
        next.starts_with("INVITE ") && next.contains("\r\nCall-ID: after-"),
        "{next}\n{}",
        k.log()
    );
}

/// WITH_AUTH over TCP: a credentials trunk's PBX (T3) whose cached credentials are
/// stale is challenged over its connection, and its answer to that challenge, on the
/// same connection, identifies the trunk and the call is answered.
#[test]
fn the_shipped_config_authenticates_a_credentials_trunk_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let defines = [
        "WITH_AUTH".to_string(),
        format!("AUTH_REALM=\"{}\"", crate::support::dataset::REALM),
    ];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let mut caller = SipStream::connect(k.port);
    let ok = call_as_t3(&k, &mut caller, "authed");
    assert!(k.log().contains("/T3 "), "{ok}\n{}", k.log());
}

/// WITH_AUTH: the credentials trunk T3's INVITE `call` on `stream`, sent first with
/// stale credentials (a nonce of the PBX's cache), challenged 407 on the connection, then
/// again answering the challenge: the 200 the call got.
pub(super) fn call_as_t3(k: &Kamailio, stream: &mut SipStream, call: &str) -> String {
    let lport = stream.local_port();
    let t3 = super::Credentials {
        user: "t3user",
        password: crate::support::dataset::PASSWORD,
        realm: crate::support::dataset::REALM,
    };
    let invite = |call: &str, credentials: &str| {
        over_tcp(&raw_request(k.port, lport, "INVITE", DIALLED, call)).replacen(
            "Max-Forwards: ",
            &format!("{credentials}Max-Forwards: "),
            1,
        )
    };
    let stale = super::digest_answer(k, DIALLED, "bm9ub25jZQ", true, &t3);
    stream.send(&invite("stale", &stale));
    let challenge = final_on(stream, "stale", k);
    assert!(
        challenge.starts_with("SIP/2.0 407 "),
        "{challenge}\n{}",
        k.log()
    );
    let header = header_of(&challenge, "Proxy-Authenticate");
    let nonce = header
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let answer = super::digest_answer(k, DIALLED, nonce, true, &t3);
    call_over("tcp", stream, &invite(call, &answer), call, k)
}

/// WITH_ANTIFLOOD over TCP: a stranger's switch refused (403) over its connection more
/// than PIKE_DENSITY times is banned by its address, as `kamcmd htable.dump ipban`
/// shows; its requests go unanswered then, on that connection and on a new one. A
/// trunk's burst of calls over its own connection, past the density, is never counted.
#[test]
fn the_shipped_config_bans_a_stranger_over_tcp_but_not_a_trunks_burst() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let defines = [
        "WITH_ANTIFLOOD",
        "PIKE_DENSITY=5",
        "BAN_TIME=30",
        NO_HAIRPIN_CHECK,
    ]
    .map(String::from);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let stranger = "127.0.0.7";
    let wait = Duration::from_secs(1);
    // The stranger's INVITE `call` on `stream`, and its final reply within `wait`.
    let try_call = |stream: &mut SipStream, call: &str| {
        let lport = stream.local_port();
        stream.send(&over_tcp(&raw_request(
            k.port, lport, "INVITE", DIALLED, call,
        )));
        stream.next_within(wait).ok()
    };
    let mut scanner = SipStream::connect_from(stranger, k.port);
    let refused = (0..30)
        .map_while(|n| try_call(&mut scanner, &format!("scan{n}")))
        .inspect(|reply| assert!(reply.starts_with("SIP/2.0 403 "), "{reply}\n{}", k.log()))
        .count();
    assert!(
        (5..30).contains(&refused),
        "{refused} refused before the ban"
    );
    let bans = k.kamcmd(&["htable.dump", "ipban"]).unwrap();
    assert!(bans.contains(stranger), "{bans}");
    // Past pike's own memory of the burst (a quiet 2 s unit, and its 4 s latency): the
    // ban alone holds it now.
    std::thread::sleep(Duration::from_secs(6));
    let reply = try_call(&mut scanner, "again");
    assert!(reply.is_none(), "banned, answered {reply:?}");
    let mut reconnected = SipStream::connect_from(stranger, k.port);
    let reply = try_call(&mut reconnected, "anew");
    assert!(reply.is_none(), "banned, answered {reply:?}");

    // T1's switch over TCP, more calls in 2 s than the density.
    let mut trunk = SipStream::connect(k.port);
    let lport = trunk.local_port();
    for n in 0..20 {
        let call = format!("burst{n}");
        let invite = over_tcp(&raw_request(k.port, lport, "INVITE", DIALLED, &call));
        tcp_call(&mut trunk, &invite, &call, &k);
    }
    let bans = k.kamcmd(&["htable.dump", "ipban"]).unwrap();
    assert!(!bans.contains("127.0.0.1"), "{bans}");
}
