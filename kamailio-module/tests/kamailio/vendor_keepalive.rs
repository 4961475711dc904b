//! A vendor whose switch ignores in-dialog OPTIONS (`keepalive` false): the vendor side
//! of its calls is sent no keepalives, so they are not ended for the answers that never
//! come, while the caller side still is; the vendor that counts is the one that
//! answered, after any failover. `$warp(vendor_keepalive)` says which vendors are.

use super::keepalive::{answering_keepalives, keepalive_defines};
use super::{start_on, start_shipped, wait_for_stat, RELAY};
use crate::support::dataset::Data;
use crate::support::udp::{final_reply, raw_invite_with_sdp, raw_socket, send_raw, InDialog};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{redis::Redis, Kamailio, Script};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// `$warp(vendor_keepalive)` is the vendor of the attempt in progress's: 1 before a
/// vendor is known and for CHEAP, `warp_route()`'s first; 0 for DEAR, whose switch
/// takes none, once `warp_next_route()` moved the call to it after CHEAP's 503.
/// `warp.route` says the same of each route.
#[test]
fn warp_vendor_keepalive_is_the_attempts_vendors() {
    let data = Data {
        keepalive_off: &["DEAR"],
        ..Data::with_gateways()
    };
    let _cheap = Vendor::start(data.cheap.0, Plays::Unavailable);
    let _dear = Vendor::start(data.dear.0, Plays::Answers);
    let says = |at: &str| {
        format!("xlog(\"L_INFO\", \"{at} $ci keepalive $warp(vendor_keepalive)\\n\");\n")
    };
    let script = RELAY
        .replacen(
            "    if (!warp_route())",
            &format!("    {}    if (!warp_route())", says("unrouted")),
            1,
        )
        .replacen(
            "    dlg_manage();",
            &format!("    {}    dlg_manage();", says("$warp(vendor)")),
            1,
        )
        .replacen(
            "        t_on_failure(\"WARP_NEXT\");",
            &format!(
                "        {}        t_on_failure(\"WARP_NEXT\");",
                says("$warp(vendor)")
            ),
            1,
        );
    assert_eq!(script.matches("vendor_keepalive").count(), 3);
    let (_dir, _, k) = start_on(&data, Script::Cfg(&script));
    let (sock, lport) = raw_socket();
    send_raw(
        &sock,
        &k,
        &raw_invite_with_sdp(k.port, lport, "+12125550123", "asked"),
    );
    assert_eq!(final_reply(&sock, &k, "asked").code, 200, "{}", k.log());
    let call = format!("asked-{lport}");
    let log = k.log();
    for said in ["unrouted", "CHEAP", "DEAR"].map(|at| format!("{at} {call} keepalive ")) {
        assert_eq!(log.matches(&said).count(), 1, "{said}: {log}");
    }
    let keepalive = |at| {
        let line = log
            .split(&format!("{at} {call} keepalive "))
            .nth(1)
            .unwrap();
        line.chars().next()
    };
    assert_eq!(
        ["unrouted", "CHEAP", "DEAR"].map(keepalive),
        [Some('1'), Some('1'), Some('0')],
        "{log}"
    );

    let routes = k
        .rpc_args(&["warp.route", "C1", "-", "s:+12125550123"])
        .unwrap();
    let route = |n| {
        [
            &routes[&format!("routes.{n}.vendor")],
            &routes[&format!("routes.{n}.keepalive")],
        ]
    };
    assert_eq!(
        [route(1), route(2)],
        [["CHEAP", "1"], ["DEAR", "0"]],
        "{routes:?}"
    );
}

/// CHEAP's switch takes no in-dialog OPTIONS and answers none: its call, the caller
/// answering its own keepalives, is sent it none and stays up past the failure limit.
#[test]
fn the_shipped_config_sends_no_keepalives_to_a_vendor_that_takes_none() {
    let data = Data {
        keepalive_off: &["CHEAP"],
        ..Data::with_gateways()
    };
    let mut edge = Edge::start(&data, (Plays::IgnoresOptions, Plays::Answers));
    edge.answered(data.cheap.0, "quiet");
    edge.stays_up_unkept("CHEAP");
}

/// CHEAP (keepalives on) refuses the call (503) and it fails over to DEAR, whose switch
/// takes no in-dialog OPTIONS: DEAR answers and is sent none, its call up past the
/// failure limit, as CHEAP's choice, made first, no longer counts.
#[test]
fn the_shipped_config_sends_no_keepalives_to_a_vendor_it_failed_over_to_that_takes_none() {
    let data = Data {
        keepalive_off: &["DEAR"],
        ..Data::with_gateways()
    };
    let mut edge = Edge::start(&data, (Plays::Unavailable, Plays::IgnoresOptions));
    edge.answered(data.dear.0, "failed-over");
    assert_eq!(edge.cheap.received("INVITE").len(), 1, "{}", edge.k.log());
    edge.stays_up_unkept("DEAR");
}

/// A vendor with keepalives (DEAR's are off) whose switch answers no in-dialog OPTIONS
/// has its call ended as every call was: one interval, tm's 32 s and 10 s after the
/// answer, the caller told with a BYE.
#[test]
fn the_shipped_config_ends_the_call_of_a_silent_vendor_with_keepalives() {
    let data = Data {
        keepalive_off: &["DEAR"],
        ..Data::with_gateways()
    };
    let mut edge = Edge::start(&data, (Plays::IgnoresOptions, Plays::Answers));
    edge.answered(data.cheap.0, "silent");
    let (sock, since) = (&edge.caller, edge.since);
    let got = answering_keepalives(
        sock,
        &edge.k,
        ("200 OK", ""),
        Duration::from_secs(95),
        |m| m.starts_with("BYE "),
    );
    let ended = since.elapsed();
    assert!(
        got.last().is_some_and(|m| m.starts_with("BYE ")),
        "the caller got no BYE: {got:#?}\n{}",
        edge.k.log()
    );
    assert!(
        (Duration::from_secs(65)..Duration::from_secs(85)).contains(&ended),
        "ended {ended:?} after the answer:\n{}",
        edge.k.log()
    );
    assert!(
        !edge.cheap.received("OPTIONS").is_empty(),
        "{}",
        edge.k.log()
    );
    wait_for_stat(&edge.k, "limits.active", "0");
}

/// The shipped config with keepalives as often as Kamailio allows (a call ended at its
/// side's first failure), CHEAP and DEAR playing as told, and one caller.
struct Edge {
    k: Kamailio,
    cheap: Vendor,
    dear: Vendor,
    caller: UdpSocket,
    lport: u16,
    dialog: Option<InDialog<'static>>,
    /// When its call was answered.
    since: Instant,
    _redis: Redis,
    _dir: tempfile::TempDir,
}

impl Edge {
    fn start(data: &Data, (cheap, dear): (Plays, Plays)) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(dir.path());
        let cheap = Vendor::start(data.cheap.0, cheap);
        let dear = Vendor::start(data.dear.0, dear);
        let k = start_shipped(dir.path(), data, &redis.url(), &keepalive_defines());
        let (caller, lport) = raw_socket();
        Edge {
            k,
            cheap,
            dear,
            caller,
            lport,
            dialog: None,
            since: Instant::now(),
            _redis: redis,
            _dir: dir,
        }
    }

    /// The caller's call `call`, answered by the vendor at port `vendor`.
    fn answered(&mut self, vendor: u16, call: &'static str) {
        let invite = raw_invite_with_sdp(self.k.port, self.lport, "+12125550123", call);
        let (dialog, _) =
            InDialog::answered(&self.caller, &self.k, self.lport, (call, vendor), &invite);
        self.dialog = Some(dialog);
        self.since = Instant::now();
        wait_for_stat(&self.k, "limits.active", "1");
    }

    /// The caller answers its keepalives past the point a silent side's call ends (one
    /// interval, tm's 32 s, 10 s): the call is still up, the caller sent two keepalives
    /// and `vendor` none; then the caller hangs up and the vendor gets the BYE.
    fn stays_up_unkept(&self, vendor: &str) {
        let got = answering_keepalives(
            &self.caller,
            &self.k,
            ("200 OK", ""),
            Duration::from_secs(80),
            |m| {
                assert!(!m.starts_with("BYE "), "the call was ended:\n{m}");
                false
            },
        );
        assert!(self.since.elapsed() > Duration::from_secs(75));
        wait_for_stat(&self.k, "limits.active", "1");
        let keepalives = got.iter().filter(|m| m.starts_with("OPTIONS ")).count();
        assert!(keepalives >= 2, "{keepalives} keepalives: {got:#?}");
        let switch = match vendor {
            "CHEAP" => &self.cheap,
            _ => &self.dear,
        };
        assert_eq!(switch.received("OPTIONS"), Vec::<String>::new(), "{vendor}");

        let dialog = self.dialog.as_ref().unwrap();
        send_raw(
            &self.caller,
            &self.k,
            &dialog.request("BYE", 2, "Content-Length: 0\r\n\r\n"),
        );
        assert_eq!(
            final_reply(&self.caller, &self.k, dialog.call).code,
            200,
            "{}",
            self.k.log()
        );
        assert_eq!(switch.received("BYE").len(), 1, "{}", self.k.log());
        wait_for_stat(&self.k, "limits.active", "0");
    }
}
