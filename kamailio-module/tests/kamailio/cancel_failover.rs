//! A caller's CANCEL racing a failover: it comes after `warp_next_route()` moved the call
//! on (the failed attempt reported) but before the next attempt was sent. That attempt
//! never reached its vendor, so no CDR event names it: the call's last word is the
//! failure of the attempt before it. A vendor's call and an emergency call alike.
//!
//! The race is made deterministic by a next attempt's branch route that takes seconds:
//! the shipped config's with rtpengine frozen once the first attempt is out (its offer
//! waits out the rtpengine module's timeout), a script's with a sleep. The CANCEL comes
//! meanwhile, after the first attempt's `failed` event is in the stream.
//!
//! The caller's INVITE gets 487 and its CANCEL 200, and the Kamailio log has no
//! CRITICAL line: tm holds the next attempt's branch, made and never sent, open, and
//! asked for the reply to pick then (`t_check_status()` in the failure route) it logs
//! "BUG: t_pick_branch failed", which an operator would take for a fault.

use super::{events_of, rtpengine_defines, start_reporting, start_shipped, wait_for_stat, RELAY};
use crate::support::dataset::Data;
use crate::support::redis::Redis;
use crate::support::rtpengine::Rtpengine;
use crate::support::udp::{
    assert_cancelled, final_reply, next_request, raw_invite_with_sdp, raw_request, raw_socket,
    reply_to, send_raw,
};
use crate::support::vendor::{Plays, Vendor, REDIRECT_TARGET};
use crate::support::{free_udp_port, Kamailio, Script};
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

/// The first vendor fails (503) and the caller cancels as the call goes on to DEAR,
/// before DEAR is sent anything: the events are CHEAP's alone, DEAR never named.
#[test]
fn the_shipped_config_names_no_vendor_a_cancel_stopped_before_it_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let race = Race::shipped(dir.path(), &data, data.cheap.0, data.dear.0, &[]);
    race.names_the_first_attempt_alone(("+12125550123", "raced"), "CHEAP", UNAVAILABLE, 503);
}

/// As [`the_shipped_config_names_no_vendor_a_cancel_stopped_before_it_was_sent`], the
/// first vendor redirecting the call (302): the caller gets 487, neither the redirect
/// (never relayed) nor the 480 that stands for it when the call ends there.
#[test]
fn the_shipped_config_answers_487_to_a_cancel_that_stopped_a_failover_from_a_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let race = Race::shipped(dir.path(), &data, data.cheap.0, data.dear.0, &[]);
    let contact = format!("Contact: <{REDIRECT_TARGET}>\r\n");
    let redirect = ("302 Moved Temporarily", contact.as_str());
    race.names_the_first_attempt_alone(("+12125550123", "moved"), "CHEAP", redirect, 302);
}

/// As [`the_shipped_config_names_no_vendor_a_cancel_stopped_before_it_was_sent`], for an
/// emergency call whose first EMERGENCY_GATEWAY address fails: no event for the second
/// address, which never got the call.
#[test]
fn the_shipped_config_names_no_emergency_gateway_a_cancel_stopped_before_it_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let (first, second) = (free_udp_port(), free_udp_port());
    let gateways = format!("EMERGENCY_GATEWAY=\"127.0.0.1:{first},127.0.0.1:{second}\"");
    let race = Race::shipped(dir.path(), &data, first, second, &[gateways]);
    race.names_the_first_attempt_alone(("911", "help"), "emergency", UNAVAILABLE, 503);
}

/// No cancel, but no vendor can be sent to (`t_relay()` fails for each, and
/// `route[VENDOR]` returns -1): the caller gets tm's 500, and each attempt is a
/// `failed` event with 477 (the edge could not send it), the last one reported by the
/// dialog's failure; neither gateway is counted silent.
#[test]
fn the_shipped_config_reports_each_vendor_it_could_not_send_to_as_477() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data {
        uri_params: (";transport=sctp", ";transport=sctp"),
        ..Data::with_gateways()
    };
    let k = start_shipped(dir.path(), &data, &redis.url(), &[]);
    let (sock, lport) = raw_socket();
    send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "INVITE", "+12125550123", "unsent"),
    );
    assert_eq!(final_reply(&sock, &k, "unsent").code, 500, "{}", k.log());
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let event = |kind: &str, attempt, vendor: &str, code| {
        (kind.to_owned(), attempt, vendor.to_owned(), code)
    };
    assert_eq!(
        events_of(&cdrs, "unsent", lport),
        [
            event("start", 1, "CHEAP", None),
            event("failed", 1, "CHEAP", Some(477)),
            event("failed", 2, "DEAR", Some(477)),
        ],
        "{cdrs:#?}\n{}",
        k.log()
    );
    let gateways = k.rpc("warp.gateways");
    assert!(!gateways.contains_key("1.gateway"), "{gateways:?}");
}

/// A script that fails over as README's does, its `route[VENDOR]` calling
/// `warp_next_route()` when `t_relay()` fails without asking whether the caller
/// cancelled: the call goes no further, and DEAR, never sent the call, is neither named
/// in an event nor counted silent (`warp.gateways`).
#[test]
fn a_script_that_fails_over_a_cancelled_relay_blames_no_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let race = Race::scripted(dir.path(), &data, &slow_failover());
    race.names_the_first_attempt_alone(("+12125550123", "raced"), "CHEAP", UNAVAILABLE, 503);
}

/// The first attempt's failure a race fails over from: a gateway out of capacity.
const UNAVAILABLE: (&str, &str) = ("503 Service Unavailable", "");

/// README's failover (`route[VENDOR]` without `t_is_canceled()`), the next attempt's
/// branch route taking 3 s: [`RELAY`]'s call routing, relayed through it.
fn slow_failover() -> String {
    let (routed, _) = RELAY
        .split_once("    t_relay();\n}\nfailure_route")
        .expect("RELAY relays at the end of its request_route");
    format!("loadmodule \"cfgutils.so\"\n{routed}{SLOW_VENDOR}")
}

/// The end of [`slow_failover`]'s request route, and its routes.
const SLOW_VENDOR: &str = r#"    if (!t_newtran()) { sl_reply_error(); exit; }
    route(VENDOR);
}
route[VENDOR] {
    while (!t_relay()) {
        if (!warp_next_route()) { return -1; }
    }
    return 1;
}
failure_route[WARP_NEXT] {
    if (t_is_canceled()) { exit; }
    if (t_check_status("5[0-9][0-9]") && warp_next_route()) {
        t_on_failure("WARP_NEXT");
        t_on_branch("SLOW");
        route(VENDOR);
    }
}
branch_route[SLOW] {
    usleep(3000000);
}
"#;

/// Kamailio writing CDR events to Redis; the first attempt's gateway played by the test
/// (`first`), the second a vendor that would ring.
struct Race {
    // Dropped before the processes it talks to.
    k: Kamailio,
    /// Frozen for the next attempt's offer (the shipped config's race).
    rtpengine: Option<Rtpengine>,
    redis: Redis,
    first: UdpSocket,
    second: Vendor,
}

impl Race {
    /// The shipped config with WITH_RTPENGINE and `more` defines.
    fn shipped(dir: &Path, data: &Data, first: u16, second: u16, more: &[String]) -> Race {
        let redis = Redis::start(dir);
        let rtpengine = Rtpengine::start(dir);
        let mut defines = rtpengine_defines(&rtpengine);
        defines.extend_from_slice(more);
        let (first, second) = Race::gateways(first, second);
        let k = start_shipped(dir, data, &redis.url(), &defines);
        Race {
            k,
            rtpengine: Some(rtpengine),
            redis,
            first,
            second,
        }
    }

    /// `script`, failing over from CHEAP to DEAR.
    fn scripted(dir: &Path, data: &Data, script: &str) -> Race {
        let redis = Redis::start(dir);
        let (first, second) = Race::gateways(data.cheap.0, data.dear.0);
        let k = start_reporting(dir, data, &redis.url(), Script::Cfg(script), &[]);
        Race {
            k,
            rtpengine: None,
            redis,
            first,
            second,
        }
    }

    fn gateways(first: u16, second: u16) -> (UdpSocket, Vendor) {
        let first = UdpSocket::bind(("127.0.0.1", first)).unwrap();
        first
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (first, Vendor::start(second, Plays::Rings))
    }

    fn freeze_rtpengine(&self, frozen: bool) {
        if let Some(rtpengine) = &self.rtpengine {
            rtpengine.freeze(frozen);
        }
    }

    /// [`Race::run`]'s events are the first attempt's alone, to `vendor`: its start and
    /// its failure with `code`.
    fn names_the_first_attempt_alone(
        &self,
        (number, call): (&str, &str),
        vendor: &str,
        reply: (&str, &str),
        code: u64,
    ) {
        let events = self.run(number, call, reply);
        let event = |kind: &str, code| (kind.to_owned(), 1, vendor.to_owned(), code);
        assert_eq!(
            events,
            [event("start", None), event("failed", Some(code))],
            "{}",
            self.k.log()
        );
    }

    /// A call to `number` (Call-ID `call`) cancelled in the race after the first gateway
    /// answered `status` with `headers`, no gateway counted silent by it and no CRITICAL
    /// line logged; its CDR events.
    fn run(
        &self,
        number: &str,
        call: &str,
        (status, headers): (&str, &str),
    ) -> Vec<(String, u64, String, Option<u64>)> {
        let k = &self.k;
        let (sock, lport) = raw_socket();
        send_raw(&sock, k, &raw_invite_with_sdp(k.port, lport, number, call));
        let invite = next_request(&self.first, "INVITE", call, k);
        // The next attempt's offer now waits for rtpengine (about 5 s).
        self.freeze_rtpengine(true);
        let refused = reply_to(&invite, status, headers);
        self.first
            .send_to(refused.as_bytes(), ("127.0.0.1", k.port))
            .unwrap();
        // warp_next_route() has run: the first attempt's failure is reported.
        let cdrs = self
            .redis
            .wait_for("warp:cdr:raw", 2, Duration::from_secs(5));
        assert_eq!(
            events_of(&cdrs, call, lport).len(),
            2,
            "{cdrs:#?}\n{}",
            k.log()
        );
        send_raw(
            &sock,
            k,
            &raw_request(k.port, lport, "CANCEL", number, call),
        );
        assert_cancelled(&sock, k);
        self.freeze_rtpengine(false);
        assert!(
            self.second.received("INVITE").is_empty(),
            "the race was lost: the second attempt was sent\n{}",
            k.log()
        );
        // The call's place is given back as its dialog fails: any event of the failure
        // is queued by then.
        wait_for_stat(k, "limits.active", "0");
        // No gateway was judged by the attempt never sent.
        let gateways = k.rpc("warp.gateways");
        assert!(!gateways.contains_key("1.gateway"), "{gateways:?}");
        // The caller has its final reply: the failure route that raced the CANCEL is over.
        let log = k.log();
        assert!(!log.contains("CRITICAL") && !log.contains("BUG"), "{log}");
        let cdrs = self
            .redis
            .wait_for("warp:cdr:raw", 3, Duration::from_secs(1));
        events_of(&cdrs, call, lport)
    }
}
