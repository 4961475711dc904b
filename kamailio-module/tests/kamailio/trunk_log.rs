//! A trunk's own refusals in the shipped config's log: those over its CPS or
//! concurrent-call limit are logged once per trunk and limit a window and summed up,
//! as a stranger's are (log_flood.rs), while warp.trunks counts each. Also what the
//! config asks and logs around them: warp_identify() once per request over TCP, a ban
//! over HTTP named by its method and URL, and a start-up free of the warning a
//! constant condition draws.

use super::hairpin::NO_HAIRPIN_CHECK;
use super::log_flood::{at_window_start, http_flooded, lines_with, start, summary, FLOOD};
use super::tcp::{final_on, over, DIALLED};
use crate::support::dataset::Data;
use crate::support::tcp::SipStream;
use crate::support::udp::{raw_request, raw_socket, InDialog};
use crate::support::vendor::{Plays, Vendor};
use crate::support::Kamailio;

/// T1's own count of its calls refused over `limit` (`cps`, `concurrent`), from
/// warp.trunks.
fn refused_over(k: &Kamailio, limit: &str) -> String {
    let trunk = k.rpc_args(&["warp.trunks", "T1"]).unwrap();
    trunk[&format!("T1.refused_{limit}")].clone()
}

/// T1 may hold one call: with it up, [`FLOOD`] more calls at once, each refused 503, are
/// logged once, and summed up once the window ended, naming the trunk ("trunk T1: 199
/// more"); warp.trunks counts every one. The old config logged each of them.
#[test]
fn the_shipped_config_logs_a_trunks_calls_over_its_concurrent_limit_once_and_sums_them_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data {
        t1_limits: (1, 100),
        ..Data::with_gateways()
    };
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start(&dir, &data, &[NO_HAIRPIN_CHECK]);
    let (sock, lport) = raw_socket();
    let held = raw_request(k.port, lport, "INVITE", DIALLED, "held");
    InDialog::answered(&sock, &k, lport, ("held", data.cheap.0), &held);
    at_window_start();
    for _ in 0..FLOOD {
        let reply = k.request("INVITE", "");
        assert_eq!(
            (reply.code, reply.reason.as_str()),
            (503, "Concurrent Call Limit Exceeded"),
            "{}",
            k.log()
        );
    }
    let refused = lines_with(
        &k,
        "from 127.0.0.1 refused: 503 Concurrent Call Limit Exceeded",
    );
    assert_eq!(refused, 1, "{}", k.log());
    let line = summary(&k, "trunk T1", "503 Concurrent Call Limit Exceeded");
    assert!(line.contains(&format!(": {} more", FLOOD - 1)), "{line}");
    assert_eq!(refused_over(&k, "concurrent"), FLOOD.to_string());
}

/// T1 may place one call a second: of [`FLOOD`] calls at once, those past it are refused
/// 503, logged once and summed up; warp.trunks counts every one. The old config logged
/// each of them.
#[test]
fn the_shipped_config_logs_a_trunks_calls_over_its_cps_limit_once_and_sums_them_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data {
        t1_limits: (100, 1),
        ..Data::with_gateways()
    };
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start(&dir, &data, &[NO_HAIRPIN_CHECK]);
    at_window_start();
    let refused = (0..FLOOD)
        .map(|_| k.request("INVITE", ""))
        .filter(|reply| reply.code == 503)
        .inspect(|reply| assert_eq!(reply.reason, "CPS Limit Exceeded", "{}", k.log()))
        .count();
    assert!(refused > FLOOD / 2, "{refused} refused:\n{}", k.log());
    let logged = lines_with(&k, "from 127.0.0.1 refused: 503 CPS Limit Exceeded");
    assert_eq!(logged, 1, "{}", k.log());
    let line = summary(&k, "trunk T1", "503 CPS Limit Exceeded");
    assert!(line.contains(&format!(": {} more", refused - 1)), "{line}");
    assert_eq!(refused_over(&k, "cps"), refused.to_string());
}

/// How many calls T1 places over TCP.
const TCP_CALLS: usize = 5;

/// T1, an IP_ACL trunk, places [`TCP_CALLS`] calls over one TCP connection, each
/// answered: warp.stats counts as many warp_identify() calls, one per INVITE. The old
/// config asked twice for each (route[TCP_LIMIT], then route[AUTH]).
#[test]
fn the_shipped_config_identifies_a_trunks_request_over_tcp_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start(&dir, &data, &[NO_HAIRPIN_CHECK]);
    let mut caller = SipStream::connect(k.port);
    let lport = caller.local_port();
    for n in 0..TCP_CALLS {
        let call = format!("tcp{n}");
        caller.send(&over(
            "tcp",
            &raw_request(k.port, lport, "INVITE", DIALLED, &call),
        ));
        let ok = final_on(&mut caller, &call, &k);
        assert!(ok.starts_with("SIP/2.0 200 "), "{ok}\n{}", k.log());
    }
    let stats = k.rpc("warp.stats");
    assert_eq!(
        stats["warp_identify.calls"],
        TCP_CALLS.to_string(),
        "{stats:?}"
    );
}

/// WITH_ANTIFLOOD with WITH_PROMETHEUS: an address banned for its refused HTTP requests
/// is logged with the request's method and URL, which say what it was after. The old
/// config logged its Call-ID, which HTTP has none of: `<null>`.
#[test]
fn the_shipped_config_logs_a_ban_over_http_with_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let (k, answered) = http_flooded(&dir, |_, _| ());
    assert!(answered < 30, "never banned:\n{}", k.log());
    let log = k.log();
    let bans: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("127.0.0.7 banned"))
        .collect();
    assert_eq!(bans.len(), 1, "{log}");
    assert!(bans[0].ends_with("(HTTP GET /metrics)"), "{}", bans[0]);
}

/// The shipped config starts without Kamailio's warning of a condition that is
/// constant (route[HAIRPIN]'s LOOP_LIMIT of 0, the check off), which the old config
/// drew whatever LOOP_LIMIT was; its hairpin check is still off at 0 (hairpin.rs).
#[test]
fn the_shipped_config_starts_without_a_warning_of_a_constant_condition() {
    let dir = tempfile::tempdir().unwrap();
    let k = start(&dir, &Data::with_gateways(), &[]);
    assert_eq!(k.request("OPTIONS", "").code, 200, "{}", k.log());
    assert!(!k.log().contains("constant value in"), "{}", k.log());
}
