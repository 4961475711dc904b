//! The dual-stack edge (`LISTEN_IPV6` beside `LISTEN`): IPv6 trunks' calls to IPv4 and IPv6
//! vendors, refusals, bans and digest auth over IPv6, a caller behind NAT66, and media
//! bridged across address families by rtpengine.

use super::hairpin::NO_HAIRPIN_CHECK;
use super::{
    authenticated_invite, by_call, dual_stack, end_the_only_dialog, no_redis, refused_until_banned,
    shipped_config, start_shipped, start_shipped_with_rtpengine, wait_for_stat, Credentials,
    Routing,
};
use crate::support::rtpengine::wait_for_no_media_sessions;
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::udp::{
    final_reply_text, header_of, next_request, raw_request, reply_to, with_sdp,
};
use crate::support::{self, Kamailio};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// `LISTEN_IPV6` without `LISTEN` would be the edge's only socket, its IPv4 addresses
/// dropped: Kamailio refuses the config at the line that says so.
#[test]
fn the_shipped_config_refuses_an_ipv6_socket_without_an_ipv4_one() {
    let dir = tempfile::tempdir().unwrap();
    // The test's own `LISTEN` define ignored.
    let text = std::fs::read_to_string(shipped_config())
        .unwrap()
        .replace("#!ifdef LISTEN\n", "#!ifdef UNSET_LISTEN\n");
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("LISTEN_IPV6_needs_LISTEN"))
        .unwrap();
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg, text).unwrap();
    let log = Kamailio::refused_file(&cfg, &[dual_stack()]);
    assert!(log.contains(&format!("line {line}, column")), "{log}");
    assert!(!log.contains("Listening on"), "{log}");
}

/// A dual-stack edge (`LISTEN` and `LISTEN_IPV6`): trunk T6, known by its IPv6 address,
/// calls over IPv6 to a vendor reached over IPv4. The edge records its route on both
/// sockets (rr's double Record-Route), so the caller's BYE reaches the vendor and the
/// vendor's BYE the caller; the calls report as calls over IPv4 do.
#[test]
fn the_shipped_config_takes_an_ipv6_trunks_calls_to_an_ipv4_vendor() {
    calls_to_cheap(&[("::1", "T6")], ("127.0.0.1", "127.0.0.1"));
}

/// As [`the_shipped_config_takes_an_ipv6_trunks_calls_to_an_ipv4_vendor`], to a vendor
/// gateway named by its IPv6 address (`sip:...@[::1]:port`); and T1's calls over IPv4
/// to it, crossing the other way.
#[test]
fn the_shipped_config_takes_an_ipv6_trunks_calls_to_an_ipv6_vendor() {
    calls_to_cheap(&[("::1", "T6"), ("127.0.0.1", "T1")], ("[::1]", "::1"));
}

/// Calls from each (source address, trunk) of `callers` to CHEAP, whose gateway is
/// `host` in its dialstring and listens on `ip`: two the caller ends, two the vendor
/// ends.
fn calls_to_cheap(callers: &[(&str, &str)], (host, ip): (&'static str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data {
        ipv6_trunk: true,
        gateway_hosts: (host, "127.0.0.1"),
        ..support::dataset::Data::with_gateways()
    };
    let defines = [dual_stack(), NO_HAIRPIN_CHECK.into()];
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let ends = [(false, Answer::Accept), (true, Answer::AcceptThenHangUp)];
    for (source, (callee_hangs_up, answer)) in callers
        .iter()
        .flat_map(|&(source, _)| ends.map(|end| (source, end)))
    {
        let vendor = Uas::start_on(dir.path(), ip, data.cheap.0, answer);
        let status = Uac {
            source,
            callee_hangs_up,
            ..Uac::new(k.port, dir.path(), 2, 10)
        }
        .spawn()
        .wait()
        .unwrap();
        assert!(
            status.success(),
            "calls from {source} failed ({status}), the callee hanging up: {callee_hangs_up}:\n{}",
            k.log()
        );
        assert_eq!(vendor.invites(), 2, "{}", k.log());
    }
    // Each call's dialog saw its BYE: its place given back, its end reported.
    wait_for_stat(&k, "limits.active", "0");
    let n = 4 * callers.len();
    let cdrs = redis.wait_for("warp:cdr:raw", 3 * n, Duration::from_secs(10));
    let calls = by_call(&cdrs);
    assert_eq!((cdrs.len(), calls.len()), (3 * n, n), "{cdrs:#?}");
    let mut trunks = BTreeMap::new();
    for events in calls.values() {
        let trunk = events[0]["trunk"].as_str().unwrap();
        *trunks.entry(trunk).or_insert(0) += 1;
        let seen: Vec<(&str, &str, &str)> = (events.iter())
            .map(|e| {
                let field = |name: &str| e[name].as_str().unwrap();
                (field("event"), field("trunk"), field("vendor"))
            })
            .collect();
        let expected = ["start", "answer", "end"].map(|kind| (kind, trunk, "CHEAP"));
        assert_eq!(seen, expected, "{events:#?}");
    }
    let expected: BTreeMap<&str, usize> = callers.iter().map(|&(_, trunk)| (trunk, 4)).collect();
    assert_eq!(trunks, expected, "{cdrs:#?}");
}

/// A dual-stack edge refuses an IPv6 address no trunk lists (403: T1's 127.0.0.1 is
/// no match for ::1), and WITH_ANTIFLOOD bans one refused over and over by that
/// address, as `kamcmd htable.dump ipban` shows it and `htable.delete` lifts it.
#[test]
fn the_shipped_config_refuses_and_bans_an_unknown_ipv6_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let mut defines = vec![dual_stack()];
    defines.extend(["WITH_ANTIFLOOD", "PIKE_DENSITY=5", "BAN_TIME=30"].map(String::from));
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let stranger = "::1";
    refused_until_banned(&k, stranger, "INVITE", 403);
    assert!(
        k.log().contains("from ::1 refused: 403 Forbidden"),
        "{}",
        k.log()
    );
    // The ban is the stranger's alone: T1 still gets in.
    assert_eq!(k.request("INVITE", "").code, 200, "{}", k.log());
    k.kamcmd(&["htable.delete", "ipban", stranger]).unwrap();
    let bans = k.kamcmd(&["htable.dump", "ipban"]).unwrap();
    assert!(!bans.contains(stranger), "{bans}");
}

/// A dual-stack edge with WITH_AUTH: a credentials trunk's PBX (T3) calling from ::1,
/// an address no trunk lists, is challenged over IPv6 (407) and, answering with its
/// password, taken as T3 and its call answered; a wrong password is challenged again.
#[test]
fn the_shipped_config_authenticates_a_credentials_trunk_calling_from_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let realm = support::dataset::REALM;
    let defines = [
        dual_stack(),
        "WITH_AUTH".into(),
        format!("AUTH_REALM=\"{realm}\""),
    ];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let t3 = |password| Credentials {
        user: "t3user",
        password,
        realm,
    };
    let dnis = "12125550123";
    let reply = authenticated_invite(&k, "::1", dnis, &t3(support::dataset::PASSWORD));
    assert_eq!(reply.code, 200, "{}", k.log());
    assert!(k.log().contains("/T3 "), "{}", k.log());
    let reply = authenticated_invite(&k, "::1", dnis, &t3("guessed"));
    assert_eq!(reply.code, 407, "{}", k.log());
}

/// WITH_RTPENGINE on a dual-stack edge: rtpengine bridges the media of a call crossing
/// address families, each side given an address of its own: T6's offer from ::1
/// (c=IN IP6) reaches a vendor over IPv4 with an IPv4 address and the vendor's answer
/// reaches T6 with an IPv6 one; T1's call over IPv4 to a vendor at [::1] the other way.
#[test]
fn the_shipped_config_bridges_the_media_of_calls_crossing_address_families() {
    let crossings = [
        ("::1", ("127.0.0.1", "127.0.0.1")),
        ("127.0.0.1", ("[::1]", "::1")),
    ];
    for (source, (host, ip)) in crossings {
        let dir = tempfile::tempdir().unwrap();
        let data = support::dataset::Data {
            ipv6_trunk: true,
            gateway_hosts: (host, "127.0.0.1"),
            ..support::dataset::Data::with_gateways()
        };
        let _vendor = Uas::start_on(dir.path(), ip, data.cheap.0, Answer::AcceptMedia);
        let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &[dual_stack()]);
        let uac_log = dir.path().join("uac-messages.log");
        let trace = ["-trace_msg", "-message_file", uac_log.to_str().unwrap()];
        let status = Uac {
            source,
            media: true,
            extra: &trace,
            ..Uac::new(k.port, dir.path(), 1, 10)
        }
        .spawn()
        .wait()
        .unwrap();
        assert!(status.success(), "call failed ({status}):\n{}", k.log());
        // rtpengine's addresses in each SDP the edge passed on: the vendor's offer, the
        // caller's answer.
        let vendor_log = dir.path().join(format!("uas-{}.log", data.cheap.0));
        assert_anchored_in_family(&vendor_log, &rtpengine, ip, &k);
        assert_anchored_in_family(&uac_log, &rtpengine, source, &k);
        wait_for_no_media_sessions(&rtpengine, &k);
    }
}

/// WITH_RTPENGINE: a call failed over from a vendor reached over IPv6 to one over IPv4
/// is offered to each anew, with rtpengine's address of that vendor's family, and the
/// IPv4 caller gets the answer in its own.
#[test]
fn the_shipped_config_offers_each_vendor_media_of_its_own_family() {
    offers_each_vendor_media_of_its_own_family(&Routing::direct());
}

/// As [`the_shipped_config_offers_each_vendor_media_of_its_own_family`], for a call
/// dipped in an async worker (its branches made in the resumed and the failure route).
#[test]
fn the_shipped_config_offers_each_vendor_media_of_its_own_family_after_the_dip() {
    offers_each_vendor_media_of_its_own_family(&Routing::dipped());
}

fn offers_each_vendor_media_of_its_own_family(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data {
        gateway_hosts: ("[::1]", "127.0.0.1"),
        ..support::dataset::Data::with_gateways()
    };
    let _cheap = Uas::start_on(dir.path(), "::1", data.cheap.0, Answer::Unavailable);
    let _dear = Uas::start(dir.path(), data.dear.0, Answer::AcceptMedia);
    let defines = routing.defines(&[dual_stack()]);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &defines);
    let uac_log = dir.path().join("uac-messages.log");
    let trace = ["-trace_msg", "-message_file", uac_log.to_str().unwrap()];
    let extra: Vec<&str> = trace.into_iter().chain(routing.sipp()).collect();
    let status = Uac {
        media: true,
        extra: &extra,
        ..Uac::new(k.port, dir.path(), 1, 10)
    }
    .spawn()
    .wait()
    .unwrap();
    assert!(status.success(), "call failed ({status}):\n{}", k.log());
    let vendor_log = |port: u16| dir.path().join(format!("uas-{port}.log"));
    assert_anchored_in_family(&vendor_log(data.cheap.0), &rtpengine, "::1", &k);
    assert_anchored_in_family(&vendor_log(data.dear.0), &rtpengine, "127.0.0.1", &k);
    assert_anchored_in_family(&uac_log, &rtpengine, "127.0.0.1", &k);
    wait_for_no_media_sessions(&rtpengine, &k);
    routing.took(&k, 1);
}

/// Asserts that the SDPs in a sipp message log that name rtpengine's ports (the ones
/// the edge passed on) name its address `peer`, of `peer`'s family, and that there is
/// one at least.
fn assert_anchored_in_family(
    log: &Path,
    rtpengine: &support::rtpengine::Rtpengine,
    peer: &str,
    k: &Kamailio,
) {
    let family = if peer.contains(':') { "IP6" } else { "IP4" };
    let anchored: Vec<String> = media_addresses(log)
        .into_iter()
        .filter(|(_, port)| rtpengine.ports.contains(port))
        .map(|(connection, _)| connection)
        .collect();
    let expected = format!("IN {family} {peer}");
    assert!(
        !anchored.is_empty() && anchored.iter().all(|c| *c == expected),
        "{} has {anchored:?}, not {expected}:\n{}",
        log.display(),
        k.log()
    );
}

/// The connection address (`IN IP4 127.0.0.1`) and audio port of every SDP in a sipp
/// message log.
fn media_addresses(log: &Path) -> Vec<(String, u16)> {
    media_addresses_in(&std::fs::read_to_string(log).unwrap_or_default())
}

/// The connection address and audio port of every SDP in `text` (messages).
fn media_addresses_in(text: &str) -> Vec<(String, u16)> {
    let mut connection = String::new();
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(address) = line.strip_prefix("c=") {
            connection = address.to_owned();
        } else if let Some(rest) = line.strip_prefix("m=audio ") {
            let port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            found.extend(port.map(|p| (connection.clone(), p)));
        }
    }
    found
}

/// A caller behind NAT over IPv6 (NAT66: its Via and Contact name [fd00::10]:5060, no
/// `rport`) on a dual-stack edge: its Contact is aliased to the address it calls from,
/// as an IPv4 caller's is, so the replies and the edge's own BYE reach it.
#[test]
fn the_shipped_config_reaches_an_ipv6_caller_behind_nat() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data {
        ipv6_trunk: true,
        ..support::dataset::Data::with_gateways()
    };
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[dual_stack()]);
    let caller = Ipv6Caller::new(&k, data.cheap.0, Some("[fd00::10]:5060"));
    let ok = support::Reply::parse(&caller.call("nat6", ""));
    assert_eq!(ok.code, 200, "{}", k.log());
    // The vendor got the caller's Contact with the address it calls from.
    let relayed = vendor.received("INVITE");
    let contact = header_of(&relayed[0], "Contact");
    let alias = format!("alias=[::1]~{}~1", caller.lport);
    assert!(contact.contains(&alias), "{contact}");
    end_the_only_dialog(&k);
    let bye = next_request(&caller.sock, "BYE", "nat6", &k);
    caller.send(&reply_to(&bye, "200 OK", ""));
}

/// WITH_RTPENGINE on a dual-stack edge: a re-INVITE of a call crossing families is
/// anchored in each side's family, as its INVITE was: the IPv4 vendor is offered
/// rtpengine's IPv4 address, the IPv6 caller answered with its IPv6 one.
#[test]
fn the_shipped_config_anchors_a_reinvite_across_address_families() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data {
        ipv6_trunk: true,
        ..support::dataset::Data::with_gateways()
    };
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &[dual_stack()]);
    let caller = Ipv6Caller::new(&k, data.cheap.0, None);
    let sdp = "v=0\r\no=c 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
               m=audio 6000 RTP/AVP 0\r\n";
    let ok = caller.call("reoffer6", sdp);
    caller.send(&caller.in_dialog("INVITE", 2, "reoffer6", &ok, sdp));
    let reok = final_reply_text(&caller.sock, &k, "reoffer6-");
    let invites = vendor.received("INVITE");
    assert_eq!(invites.len(), 2, "{}", k.log());
    let (to_vendor, to_caller) = ("IN IP4 127.0.0.1", "IN IP6 ::1");
    let passed = [
        (&invites[0], to_vendor),
        (&invites[1], to_vendor),
        (&ok, to_caller),
        (&reok, to_caller),
    ];
    for (message, expected) in passed {
        let media = media_addresses_in(message);
        assert!(
            matches!(&media[..], [(c, port)] if c == expected && rtpengine.ports.contains(port)),
            "{message}\n{}",
            k.log()
        );
    }
}

/// A caller on ::1 calling through a dual-stack edge over IPv6, its Via and Contact
/// naming `via` (its own address and port, or a private one behind NAT), to the vendor
/// at 127.0.0.1:`vendor` (whose Contact is `sip:vendor@127.0.0.1:<vendor>`).
struct Ipv6Caller<'a> {
    k: &'a Kamailio,
    sock: std::net::UdpSocket,
    lport: u16,
    via: String,
    vendor: u16,
}

impl<'a> Ipv6Caller<'a> {
    fn new(k: &'a Kamailio, vendor: u16, via: Option<&str>) -> Self {
        let sock = std::net::UdpSocket::bind("[::1]:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let lport = sock.local_addr().unwrap().port();
        let via = via.map_or_else(|| format!("[::1]:{lport}"), str::to_owned);
        Ipv6Caller {
            k,
            sock,
            lport,
            via,
            vendor,
        }
    }

    fn send(&self, message: &str) {
        (self.sock.send_to(message.as_bytes(), ("::1", self.k.port))).unwrap();
    }

    /// Places call `call` ([`raw_request`]'s Call-ID) offering `sdp` (none if empty)
    /// and returns its final reply as it came, ACKed if it was a 200.
    fn call(&self, call: &str, sdp: &str) -> String {
        let lport = self.lport;
        let invite = raw_request(self.k.port, lport, "INVITE", "+12125550123", call)
            .replace(
                &format!("Via: SIP/2.0/UDP 127.0.0.1:{lport}"),
                &format!("Via: SIP/2.0/UDP {}", self.via),
            )
            .replace(
                &format!("Contact: <sip:3035550100@127.0.0.1:{lport}>"),
                &format!("Contact: <sip:3035550100@{}>", self.via),
            )
            .replace("@127.0.0.1:", "@[::1]:");
        self.send(&with_sdp(&invite, sdp));
        let text = final_reply_text(&self.sock, self.k, &format!("{call}-"));
        if support::Reply::parse(&text).code == 200 {
            self.send(&self.in_dialog("ACK", 1, call, &text, ""));
        }
        text
    }

    /// The caller's request `method` in call `call`, answered by `ok`: to the vendor's
    /// Contact along the route the edge recorded, offering `sdp` (none if empty).
    fn in_dialog(&self, method: &str, cseq: u32, call: &str, ok: &str, sdp: &str) -> String {
        let (lport, via) = (self.lport, &self.via);
        let request = format!(
            "{method} sip:vendor@127.0.0.1:{vendor} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via};branch=z9hG4bK-{method}{cseq}{call}{lport}\r\n\
             Route: {route}\r\n\
             From: <sip:3035550100@[::1]>;tag={call}{lport}\r\n\
             To: {to}\r\n\
             Call-ID: {call}-{lport}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:3035550100@{via}>\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            vendor = self.vendor,
            route = route_set(ok),
            to = header_of(ok, "To"),
        );
        with_sdp(&request, sdp)
    }
}

/// The route set a caller takes from `reply`'s Record-Route headers: all their entries,
/// last first.
fn route_set(reply: &str) -> String {
    let mut routes: Vec<&str> = (reply.split("\r\n"))
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix("Record-Route:"))
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    routes.reverse();
    routes.join(", ")
}
