//! The shipped config against scanners and OPTIONS floods: a scanner that names itself
//! in its User-Agent (SCANNER_UA), an address flooding the edge with OPTIONS, and what
//! a banned address still gets answered (WITH_ANTIFLOOD).

use super::{no_redis, refused_until_banned, start_shipped};
use crate::support::dataset::{Data, REALM};
use crate::support::udp::{
    assert_nothing_reaches, final_reply, raw_request, raw_socket, send_raw, InDialog,
};
use crate::support::vendor::{Plays, Vendor};
use crate::support::Kamailio;
use std::time::Duration;

const DIALLED: &str = "12125550123";

/// How long a dropped request is waited for.
const WAIT: Duration = Duration::from_secs(1);

/// WITH_ANTIFLOOD at the density of 5 the ban tests set, bans outlasting the test.
fn antiflood() -> Vec<String> {
    ["WITH_ANTIFLOOD", "PIKE_DENSITY=5", "BAN_TIME=30"]
        .map(String::from)
        .to_vec()
}

/// `kamcmd htable.dump ipban`: the banned addresses, as text.
fn bans(k: &Kamailio) -> String {
    k.kamcmd(&["htable.dump", "ipban"]).unwrap_or_default()
}

/// WITH_ANTIFLOOD: one address's burst of OPTIONS is answered 200 up to the density,
/// then banned (listed by `htable.dump ipban`) and answered nothing, while T1's call
/// from its own address still routes. The old config answered every OPTIONS and
/// counted none, so a flood of them was never banned.
#[test]
fn the_shipped_config_bans_an_address_flooding_it_with_options() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &antiflood());
    refused_until_banned(&k, "127.0.0.7", "OPTIONS", 200);
    assert_eq!(k.request("INVITE", "").code, 200, "{}", k.log());
}

/// WITH_ANTIFLOOD and WITH_AUTH: keepalives at their pace are never banned. One OPTIONS
/// a second from each of four trunks for 8 s, more than the density each but never in
/// pike's 2 s: T1, T2 and T4 (which asks for credentials too) from their addresses, and
/// T3's PBX, a credentials-only trunk that sends none with its OPTIONS, from one no
/// trunk lists; all answered 200, nobody banned. They were counted all the same: a
/// burst from T3's PBX then is banned within the density.
#[test]
fn the_shipped_config_answers_keepalives_at_their_pace_and_bans_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let mut defines = antiflood();
    defines.extend(["WITH_AUTH".to_string(), format!("AUTH_REALM=\"{REALM}\"")]);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let pbx = "127.0.0.9";
    let trunks = ["127.0.0.1", "127.0.0.3", "127.0.0.4", pbx];
    for _ in 0..8 {
        for source in trunks {
            let reply = k.request_within(WAIT, source, DIALLED, "OPTIONS", "");
            assert_eq!(reply.map(|r| r.code), Some(200), "{source}: {}", k.log());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(!k.log().contains("banned"), "{}", k.log());
    assert!(!bans(&k).contains("127.0.0."), "{}", bans(&k));

    let answered = (0..30)
        .map_while(|_| k.request_within(WAIT, pbx, DIALLED, "OPTIONS", ""))
        .inspect(|reply| assert_eq!(reply.code, 200, "{}", k.log()))
        .count();
    assert!(
        (1..=5).contains(&answered),
        "{answered} answered in a burst"
    );
    assert!(bans(&k).contains(pbx), "{}", bans(&k));
}

/// A request whose User-Agent names a scanner (SCANNER_UA's default, matched without
/// regard to case) gets no answer, whatever its method, and counts towards WITH_ANTIFLOOD's
/// ban: not banned at its first (a forged packet must not ban a trunk), banned once its
/// burst passes the density, logged once; its next request, with no User-Agent, is
/// dropped as well. T1 still gets in. The old config answered each like anyone's request.
#[test]
fn the_shipped_config_drops_a_scanner_and_bans_it_past_the_density() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &antiflood());
    let scanners = [
        ("127.0.0.7", "INVITE", "friendly-scanner"),
        ("127.0.0.8", "OPTIONS", "sipcli/v1.8"),
        ("127.0.0.9", "REGISTER", "VaxSIPUserAgent/3.1"),
        ("127.0.0.10", "OPTIONS", "SIPVicious 0.3.4"),
    ];
    // Short enough that the burst stays within pike's 2 s.
    let burst_wait = Duration::from_millis(100);
    for (source, method, agent) in scanners {
        let user_agent = format!("User-Agent: {agent}\r\n");
        let reply = k.request_within(WAIT, source, DIALLED, method, &user_agent);
        assert!(reply.is_none(), "{agent}: answered {reply:?}");
        assert!(
            !bans(&k).contains(source),
            "{agent}: banned at once: {}",
            bans(&k)
        );
        for _ in 0..8 {
            let reply = k.request_within(burst_wait, source, DIALLED, method, &user_agent);
            assert!(reply.is_none(), "{agent}: answered {reply:?}");
        }
        assert!(bans(&k).contains(source), "{agent}: {}", bans(&k));
        let reply = k.request_within(WAIT, source, DIALLED, "OPTIONS", "");
        assert!(reply.is_none(), "{agent}'s address: answered {reply:?}");
        let log = k.log();
        assert_eq!(log.matches(&format!("{source} banned")).count(), 1, "{log}");
    }
    assert_eq!(k.request("INVITE", "").code, 200, "{}", k.log());
}

/// Without WITH_ANTIFLOOD a scanner is dropped all the same, and nothing more: the
/// same address's next request is answered. SCANNER_UA replaces the default list, and
/// "" drops nobody.
#[test]
fn the_shipped_config_drops_the_scanners_scanner_ua_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let source = "127.0.0.7";
    let agent = |name| format!("User-Agent: {name}\r\n");
    let defines = ["SCANNER_UA=\"acme-probe\"".to_string()];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let probe = k.request_within(WAIT, source, DIALLED, "INVITE", &agent("acme-probe/2.0"));
    assert!(probe.is_none(), "answered {probe:?}");
    assert!(
        k.log()
            .contains(&format!("from {source} dropped: a scanner's User-Agent")),
        "{}",
        k.log()
    );
    assert_eq!(k.request_from(source, "OPTIONS", "").code, 200);
    let svmap = agent("friendly-scanner");
    assert_eq!(k.request_from(source, "OPTIONS", &svmap).code, 200);

    let dir = tempfile::tempdir().unwrap();
    let defines = ["SCANNER_UA=\"\"".to_string()];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    assert_eq!(k.request_from(source, "OPTIONS", &svmap).code, 200);
    assert_eq!(k.request_from(source, "INVITE", "").code, 403);
}

/// WITH_ANTIFLOOD: a banned address (T1's here, banned by an operator's `htable.seti`,
/// as pike and SCANNER_UA ban one) is answered nothing: not a keepalive with
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
    assert_nothing_reaches(&sock, "the caller", &k, Duration::from_secs(2));
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
