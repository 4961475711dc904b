//! The shipped config against floods (WITH_ANTIFLOOD): what a banned address still gets
//! answered.

use super::{no_redis, start_shipped};
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw, InDialog};
use crate::support::dataset::Data;
use crate::support::vendor::{Plays, Vendor};
use crate::support::Kamailio;
use std::net::UdpSocket;
use std::time::Duration;

/// WITH_ANTIFLOOD at the density of 5 the ban tests set, bans outlasting the test.
fn antiflood() -> Vec<String> {
    ["WITH_ANTIFLOOD", "PIKE_DENSITY=5", "BAN_TIME=30"]
        .map(String::from)
        .to_vec()
}

/// Fails if `sock` receives anything within `wait`: the edge answered what it was sent.
fn assert_unanswered(sock: &UdpSocket, k: &Kamailio, wait: Duration) {
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 65535];
    if let Ok(n) = sock.recv(&mut buf) {
        let answer = String::from_utf8_lossy(&buf[..n]);
        panic!("answered:\n{answer}\n{}", k.log());
    }
}

/// WITH_ANTIFLOOD: a banned address (T1's here, banned by an operator's `htable.seti`,
/// as pike bans one) is answered nothing: not a keepalive with
/// Max-Forwards 0, which the edge answers as the next hop (the old config did, banned
/// or not), not an INVITE with none left (483), not a BYE of no call (481), nor a new
/// call. The call it has up still ends: its BYE reaches the vendor and is answered.
#[test]
fn the_shipped_config_answers_a_banned_address_nothing_but_in_its_calls() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &antiflood());
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "up");
    let (call, _) = InDialog::answered(&sock, &k, lport, ("up", data.cheap.0), &invite);
    let request = |method, call: &str| raw_request(k.port, lport, method, "+12125550123", call);
    // Each round's calls its own, so that none passes for a retransmission.
    let round = |tail: &str| {
        let last_hop = |request: String| request.replace("Max-Forwards: 70", "Max-Forwards: 0");
        let (hop, hops, stray) = (
            format!("hop{tail}"),
            format!("hops{tail}"),
            format!("stray{tail}"),
        );
        [
            (last_hop(request("OPTIONS", &hop)), hop, 200),
            (last_hop(request("INVITE", &hops)), hops, 483),
            // A To tag: inside a call, of none the edge knows.
            (
                request("BYE", &stray).replace(">\r\nCall-ID", ">;tag=gone\r\nCall-ID"),
                stray,
                481,
            ),
        ]
    };
    for (request, call, code) in round("") {
        send_raw(&sock, &k, &request);
        assert_eq!(final_reply(&sock, &k, &call).code, code, "{}", k.log());
    }

    k.kamcmd(&["htable.seti", "ipban", "127.0.0.1", "1"])
        .unwrap();
    for (request, _, _) in round("banned") {
        send_raw(&sock, &k, &request);
    }
    send_raw(&sock, &k, &request("INVITE", "new"));
    assert_unanswered(&sock, &k, Duration::from_secs(2));
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    send_raw(
        &sock,
        &k,
        &call.request("BYE", 2, "Content-Length: 0\r\n\r\n"),
    );
    assert_eq!(final_reply(&sock, &k, "up").code, 200, "{}", k.log());
    assert_eq!(vendor.received("BYE").len(), 1);
    assert_eq!(vendor.received("INVITE").len(), 1);
}
