//! The shipped config under an attacker's eye: what a stranger or a banned address can
//! still make the edge do with forged replies and requests.

use super::{no_redis, start_shipped};
use crate::support::dataset::Data;
use crate::support::udp::{
    assert_cancelled, assert_nothing_reaches, raw_request, raw_socket, send_raw,
};
use crate::support::vendor::{Plays, Vendor};
use crate::support::Reply;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// WITH_ANTIFLOOD at the density of 5 the ban tests set, bans outlasting the test.
fn antiflood() -> Vec<String> {
    ["WITH_ANTIFLOOD", "PIKE_DENSITY=5", "BAN_TIME=30"]
        .map(String::from)
        .to_vec()
}

/// `request` with a To tag: inside a call, of none the edge knows.
pub(super) fn in_no_call(request: String) -> String {
    request.replace(">\r\nCall-ID", ">;tag=gone\r\nCall-ID")
}

/// A forged final reply to a BYE the edge never sent, as one Via names it: what
/// reply_route's hold (kamailio #4169) looked for, matching no transaction.
fn forged_bye_reply(port: u16, n: usize) -> String {
    format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKforged{n}\r\n\
         From: <sip:a@127.0.0.1>;tag=f{n}\r\n\
         To: <sip:b@127.0.0.1>;tag=t{n}\r\n\
         Call-ID: forged-{n}\r\n\
         CSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A burst of forged 200s to BYEs (no transaction of the edge's) holds up no SIP worker:
/// an OPTIONS sent right after is answered at once. The old config's reply_route slept
/// 5 ms on each such reply before tm looked for its transaction, so a few hundred a
/// second from anyone, banned or not, kept every UDP worker asleep (here 600 held the
/// two workers the tests run 1.5 s).
#[test]
fn the_shipped_config_holds_no_worker_for_a_forged_reply_to_a_bye() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let (sock, _) = raw_socket();
    for n in 0..600 {
        send_raw(&sock, &k, &forged_bye_reply(k.port, n));
    }
    let sent = Instant::now();
    let reply = k.request_within(
        Duration::from_secs(5),
        "127.0.0.1",
        "12125550123",
        "OPTIONS",
        "",
    );
    let took = sent.elapsed();
    assert_eq!(reply.map(|r| r.code), Some(200), "{}", k.log());
    assert!(took < Duration::from_millis(300), "answered after {took:?}");
}

/// WITH_ANTIFLOOD: a banned address gets nothing out of the edge by dressing its requests
/// as a call's (a To tag) or as a CANCEL, the two its ban lets through: a BYE of no call
/// with the edge as its Route is not relayed to the Request-URI's third party, an
/// OPTIONS with a To tag or a CANCEL of no call, each with Max-Forwards 0, is not
/// answered 483, and a burst of them with a scanner's User-Agent is not logged as a ban
/// again and again. The CANCEL of a call it has ringing still ends that call (its 200,
/// the INVITE's 487). The old config let every request with a To tag and every CANCEL
/// past the ban: the BYE was relayed (and its reply came back), the other two answered,
/// and each scanner's request past the density logged "banned" anew.
#[test]
fn the_shipped_config_lets_a_banned_address_through_only_in_its_calls() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Rings);
    let k = start_shipped(dir.path(), &data, &no_redis(), &antiflood());
    let (trunk, trunk_port) = raw_socket();
    let ringing = |method| raw_request(k.port, trunk_port, method, "12125550123", "ringing");
    send_raw(&trunk, &k, &ringing("INVITE"));
    vendor.wait_for("INVITE", &k);
    k.kamcmd(&["htable.seti", "ipban", "127.0.0.1", "1"])
        .unwrap();
    let banned = "127.0.0.7";
    k.kamcmd(&["htable.seti", "ipban", banned, "1"]).unwrap();
    let sock = UdpSocket::bind((banned, 0)).unwrap();
    let lport = sock.local_addr().unwrap().port();
    let (third_party, tport) = raw_socket();
    let request = |method, call: &str| raw_request(k.port, lport, method, "12125550123", call);
    let last_hop = |request: String| request.replace("Max-Forwards: 70", "Max-Forwards: 0");
    let relayed_bye = in_no_call(request("BYE", "relay"))
        .replace(
            &format!("BYE sip:12125550123@127.0.0.1:{}", k.port),
            &format!("BYE sip:victim@127.0.0.1:{tport}"),
        )
        .replace(
            "To: ",
            &format!("Route: <sip:127.0.0.1:{};lr>\r\nTo: ", k.port),
        );
    let mut requests = vec![
        relayed_bye,
        last_hop(in_no_call(request("OPTIONS", "hop"))),
        last_hop(request("CANCEL", "nothing")),
    ];
    requests.extend((0..10).map(|n| {
        in_no_call(request("INFO", &format!("scan{n}"))).replace(
            "Max-Forwards",
            "User-Agent: friendly-scanner\r\nMax-Forwards",
        )
    }));
    for request in &requests {
        sock.send_to(request.as_bytes(), ("127.0.0.1", k.port))
            .unwrap();
    }
    assert_nothing_reaches(&third_party, "the third party", &k, Duration::from_secs(2));
    assert_nothing_reaches(&sock, "the banned address", &k, Duration::from_millis(500));
    let log = k.log();
    assert!(!log.contains(&format!("{banned} banned")), "{log}");

    send_raw(&trunk, &k, &ringing("CANCEL"));
    assert_cancelled(&trunk, &k);
}

/// WITH_ANTIFLOOD: what the edge refuses before it looks further counts towards the ban
/// as its other refusals do: an INVITE whose Max-Forwards ran out (483) and a request
/// sanity refuses as malformed (400, logged), from one address past the density, ban
/// it, and it is answered nothing more. The old config answered every one of them,
/// counting none: a flood of them was never banned (and sanity's autodrop ended the
/// script before the malformed request's log line).
#[test]
fn the_shipped_config_bans_an_address_refused_for_its_hops_or_a_malformed_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let k = start_shipped(dir.path(), &data, &no_redis(), &antiflood());
    // Each source's INVITE as it rewrites it: no hops left, an Expires that is no number.
    let refusals = [
        ("127.0.0.7", ("Max-Forwards: 70", "Max-Forwards: 0"), 483),
        (
            "127.0.0.8",
            ("Max-Forwards", "Expires: soon\r\nMax-Forwards"),
            400,
        ),
    ];
    for (source, (from, to), code) in refusals {
        let sock = UdpSocket::bind((source, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let lport = sock.local_addr().unwrap().port();
        let refused = (0..30)
            .map_while(|n| {
                let invite = raw_request(k.port, lport, "INVITE", "12125550123", &format!("c{n}"));
                sock.send_to(invite.replace(from, to).as_bytes(), ("127.0.0.1", k.port))
                    .unwrap();
                let mut buf = [0u8; 65535];
                let n = sock.recv(&mut buf).ok()?;
                Some(Reply::parse(&String::from_utf8_lossy(&buf[..n])))
            })
            .inspect(|reply| assert_eq!(reply.code, code, "{}", k.log()))
            .count();
        assert!(
            (5..30).contains(&refused),
            "{source}: {refused} refused before the ban"
        );
        let bans = k.kamcmd(&["htable.dump", "ipban"]).unwrap();
        assert!(bans.contains(source), "{bans}");
    }
    let log = k.log();
    assert!(log.contains("malformed request from 127.0.0.8"), "{log}");
}

/// WITH_PROMETHEUS: HTTP in a UDP datagram (xhttp takes it as it takes TCP) is answered
/// nothing, whatever its path or source: anyone can forge a datagram's source, and the
/// answer goes to whoever it names. The old config sent the metrics, kilobytes for a
/// request of a few dozen bytes, to any PROM_ALLOW address a datagram named (an
/// amplifier aimed at the Prometheus server), and a 403 or 404 to anyone else.
#[test]
fn the_shipped_config_answers_no_http_over_udp() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let defines = ["WITH_PROMETHEUS=1".to_string()];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    for (source, path) in [("127.0.0.1", "/metrics"), ("127.0.0.2", "/metrics")] {
        let sock = UdpSocket::bind((source, 0)).unwrap();
        let get = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", k.port);
        sock.send_to(get.as_bytes(), ("127.0.0.1", k.port)).unwrap();
        assert_nothing_reaches(&sock, source, &k, Duration::from_secs(1));
    }
}

/// A stranger's BYE of no call, with a To tag and the edge as its Route, goes nowhere:
/// not to its Request-URI's host and port over TCP, here the edge's own Redis, which
/// would run the lines of its body as commands. The old config relayed a BYE or an ACK
/// of any call it did not know wherever the Request-URI named (a restart may have
/// forgotten the call), so anyone could write to the CDR Redis with no password, reach
/// any host the edge reaches, or have tm send a BYE eleven times to a silent target.
#[test]
fn the_shipped_config_relays_no_bye_of_a_call_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let redis = crate::support::redis::Redis::start(dir.path());
    let redis_port = redis.url().rsplit(':').next().unwrap().to_owned();
    let data = Data::with_gateways();
    let k = start_shipped(dir.path(), &data, &redis.url(), &[]);
    let sock = UdpSocket::bind(("127.0.0.7", 0)).unwrap();
    let lport = sock.local_addr().unwrap().port();
    for method in ["BYE", "ACK"] {
        let body = format!("SET forged-{method} written\r\n");
        let request = in_no_call(raw_request(k.port, lport, method, "12125550123", method))
            .replace(
                &format!("{method} sip:12125550123@127.0.0.1:{}", k.port),
                &format!("{method} sip:redis@127.0.0.1:{redis_port};transport=tcp"),
            )
            .replace(
                "To: ",
                &format!("Route: <sip:127.0.0.1:{};lr>\r\nTo: ", k.port),
            )
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
            );
        sock.send_to(request.as_bytes(), ("127.0.0.1", k.port))
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    for method in ["BYE", "ACK"] {
        let written = redis.cli(&["GET", &format!("forged-{method}")]);
        assert!(
            written.trim().is_empty(),
            "{method}: Redis ran {written:?}\n{}",
            k.log()
        );
    }
}
