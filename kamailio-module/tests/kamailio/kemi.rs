//! warp's functions from KEMI scripts (Lua, Python): callable as from kamailio.cfg, a
//! panic's fallback left to the script's refusal branch, and each refused outside the
//! routes kamailio.cfg allows it in.

use super::{routed_to_the_cheapest_vendor, start_on_test_data, RELAY};
use crate::support::sipp::{Answer, Uas};
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw};
use crate::support::{self, Kamailio, Script};
use std::time::Duration;

/// From KEMI a function's 0 does not end the script: a panic there sends no reply and
/// returns -2 with the fallback in `$warp(code)`/`$warp(reason)`, so the script's
/// refusal branch answers once.
#[test]
fn a_panic_under_kemi_leaves_the_fallback_to_the_script_and_one_reply() {
    let script = r#"
function ksr_request_route()
    local rc = KSR.warp.warp_route()
    if rc < 0 then
        KSR.hdr.append_to_reply("X-Warp-RC: " .. rc .. "\r\n")
        KSR.sl.sl_send_reply(KSR.pv.get("$warp(code)"), KSR.pv.get("$warp(reason)"))
        return
    end
    KSR.sl.sl_send_reply(200, "Routed after " .. rc)
end
"#;
    let params = [
        ("fault_inject", "warp_route"),
        ("fallback_code", "500"),
        ("fallback_reason", "Warp Internal Error"),
    ];
    let k = Kamailio::start(&params, Script::Lua(script));
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "kemipanic");
    send_raw(&sock, &k, &invite);
    let reply = final_reply(&sock, &k, "kemipanic");
    assert_eq!(
        (reply.code, reply.reason.as_str(), reply.header("X-Warp-RC")),
        (500, "Warp Internal Error", Some("-2")),
        "{}",
        k.log()
    );
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 65535];
    let second = sock
        .recv(&mut buf)
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
    assert!(second.is_err(), "a second reply: {second:?}");
    assert_eq!(k.rpc("warp.stats")["warp_route.panics"], "1");
}

#[test]
fn kemi_exports_are_callable_from_lua() {
    let script = r#"
function ksr_request_route()
    if KSR.warp.warp_ani() > 0 then
        KSR.hdr.append_to_reply("X-Warp-ANI: " .. KSR.pv.get("$warp(ani)") .. "\r\n")
    end
    -- No snapshot: identify answers the fallback, DNO cannot be checked (-2).
    KSR.hdr.append_to_reply("X-Warp-Identify: " .. KSR.warp.warp_identify() .. "\r\n")
    KSR.hdr.append_to_reply("X-Warp-DNO: " .. KSR.warp.warp_dno() .. "/"
        .. KSR.warp.warp_dno_number("+13035550199") .. "\r\n")
    -- No snapshot to know the trunk by (-1); no SIP URI to send to (-2).
    KSR.hdr.append_to_reply("X-Warp-Emergency: "
        .. KSR.warp.warp_emergency("sip:911@127.0.0.1:9") .. "/"
        .. KSR.warp.warp_emergency("911 at the PSAP") .. "\r\n")
    if KSR.warp.warp_route_dnis("18005550100") < 0 then
        -- Nothing routed, so no vendor to fail over to.
        KSR.hdr.append_to_reply("X-Warp-Next: " .. KSR.warp.warp_next_route() .. "\r\n")
        KSR.hdr.append_to_reply("X-Warp-Redirect: " .. KSR.warp.warp_redirect() .. "\r\n")
        KSR.sl.sl_send_reply(KSR.pv.get("$warp(code)"), KSR.pv.get("$warp(reason)"))
        return
    end
    KSR.sl.sl_send_reply(200, "OK")
end
"#;
    let params = [
        ("snapshot", "/nonexistent/routing.snap"),
        ("fallback_code", "503"),
    ];
    let k = Kamailio::start(&params, Script::Lua(script));
    let reply = k.request("INVITE", "Remote-Party-ID: <sip:4155550123@x.example>\r\n");
    assert_eq!(reply.code, 503);
    assert_eq!(reply.header("X-Warp-ANI"), Some("4155550123"));
    assert_eq!(reply.header("X-Warp-Next"), Some("-1"));
    assert_eq!(reply.header("X-Warp-Redirect"), Some("-1"));
    assert_eq!(reply.header("X-Warp-Identify"), Some("-1"));
    assert_eq!(reply.header("X-Warp-DNO"), Some("-2/-2"));
    assert_eq!(reply.header("X-Warp-Emergency"), Some("-1/-2"));
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_identify.calls"], "1");
    assert_eq!(stats["warp_dno.calls"], "2");
    assert_eq!(stats["warp_dno.errors"], "2");
    assert_eq!(stats["warp_ani.calls"], "1");
    assert_eq!(stats["warp_route.calls"], "1");
    assert_eq!(stats["warp_next_route.calls"], "1");
    assert_eq!(stats["warp_emergency.calls"], "2");
    assert_eq!(stats["warp_emergency.errors"], "1");
}

/// The same decision from a Python KEMI script (app_python3): `KSR.warp.*` and
/// `$warp(...)` as Lua and kamailio.cfg have them.
#[test]
fn kemi_exports_route_a_call_from_python() {
    let script = r#"
import KSR as KSR

def mod_init():
    return Edge()

class Edge:
    def child_init(self, rank):
        return 0

    def ksr_request_route(self, msg):
        if KSR.warp.warp_route() < 0:
            KSR.sl.sl_send_reply(int(KSR.pv.get("$warp(code)")), KSR.pv.get("$warp(reason)"))
            return 1
        rates = KSR.pv.get("$warp(vendor_rate)") + "/" + KSR.pv.get("$warp(customer_rate)")
        for header, value in [("Vendor", KSR.pv.get("$warp(vendor)")),
                              ("BAN", KSR.pv.get("$warp(ban)")),
                              ("Trunk", KSR.pv.get("$warp(trunk)")),
                              ("Rates", rates), ("RURI", KSR.pv.get("$ru"))]:
            KSR.hdr.append_to_reply("X-Warp-" + header + ": " + value + "\r\n")
        KSR.sl.sl_send_reply(200, "Routed")
        return 1
"#;
    let (_data, k) = start_on_test_data(Script::Python(script));
    routed_to_the_cheapest_vendor(&k);
    assert_eq!(k.request_from("127.0.0.2", "INVITE", "").code, 403);
    let dno = format!(
        "P-Asserted-Identity: <tel:{}>\r\n",
        support::dataset::DNO_ANI
    );
    assert_eq!(k.request("INVITE", &dno).code, 603);
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_route.calls"], "3");
    assert_eq!(stats["warp_route.errors"], "0");
}

/// A KEMI script's request route opening: route the call, or send warp's refusal.
const KEMI_ROUTE: &str = r#"
    if KSR.warp.warp_route() < 0 then
        KSR.sl.sl_send_reply(KSR.pv.get("$warp(code)"), KSR.pv.get("$warp(reason)"))
        return
    end
"#;

/// A Kamailio relaying under KEMI over the gateways' data whose `hook` route
/// (`t_on_failure`, `t_on_reply`, `t_on_branch`) logs what `KSR.warp.<func>()` returns
/// there and `$warp(code)` after it, as `<label>: <func>() = N, code C`. `more` adds a
/// line to the request route before the relay and functions to the script.
fn start_kemi_probe(
    (hook, label, func): (&str, &str, &str),
    (more_route, more_functions): (&str, &str),
) -> (tempfile::TempDir, support::dataset::Data, Kamailio) {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    let data = support::dataset::Data::with_gateways();
    data.publish(&snap);
    let lua = format!(
        "function ksr_request_route(){KEMI_ROUTE}    KSR.tm.{hook}(\"ksr_probe\")\n\
         {more_route}    KSR.tm.t_relay()\nend\n\
         function ksr_probe()\n    \
         KSR.info(\"{label}: {func}() = \" .. KSR.warp.{func}() .. \", code \" .. \
         tostring(KSR.pv.get(\"$warp(code)\")) .. \"\\n\")\nend\n\
         {more_functions}"
    );
    let k = Kamailio::start(
        &[("snapshot", snap.to_str().unwrap())],
        Script::LuaRelay(&lua),
    );
    (dir, data, k)
}

#[test]
fn warp_route_outside_the_request_route_is_refused_and_holds_no_place() {
    // kamailio.cfg: refused when the config is read.
    let failure = RELAY.replace("if (t_is_canceled()) { exit; }", "warp_route();");
    assert_ne!(failure, RELAY);
    let log = Kamailio::refused(&[], Script::Cfg(&failure));
    assert!(log.contains("misused command warp_route"), "{log}");

    // KEMI: its functions may be called from any route, so warp_route() checks.
    let (dir, data, k) =
        start_kemi_probe(("t_on_failure", "failure route", "warp_route"), ("", ""));
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
    // The vendor's 503, which tm relays as 500 (RFC 3261 16.7).
    let reply = k.request("INVITE", "");
    assert_eq!(reply.code, 500, "{} {}", reply.reason, k.log());
    let log = k.log();
    // The script's refusal branch has the fallback to send.
    assert!(
        log.contains("failure route: warp_route() = -2, code 503"),
        "{log}"
    );
    assert!(
        log.contains("warp_route() runs in request_route only"),
        "{log}"
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["warp_route.calls"].as_str(),
            stats["limits.active"].as_str()
        ),
        ("2", "0")
    );
}

/// kamailio.cfg refuses `warp_next_route()` outside request and failure routes; from
/// KEMI, where any route may call it, it must refuse too: called on a vendor's reply it
/// would report the attempt failed and skip the next vendor.
#[test]
fn warp_next_route_outside_request_and_failure_routes_is_refused_under_kemi() {
    let (dir, data, k) = start_kemi_probe(
        ("t_on_reply", "reply route", "warp_next_route"),
        (
            "    KSR.tm.t_on_failure(\"ksr_failure\")\n",
            r#"
function ksr_failure()
    if KSR.warp.warp_next_route() > 0 then
        KSR.tm.t_on_failure("ksr_failure")
        KSR.tm.t_relay()
    end
end
"#,
        ),
    );
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
    let dear = Uas::start(dir.path(), data.dear.0, Answer::RingThenBusy);
    // CHEAP's 503 fails over to DEAR, which rings, then is busy.
    let reply = k.request("INVITE", "");
    assert_eq!(reply.code, 486, "{} {}", reply.reason, k.log());
    assert_eq!(dear.invites(), 1, "{}", k.log());
    let log = k.log();
    assert!(log.contains("reply route: warp_next_route() = -2"), "{log}");
}

/// kamailio.cfg allows `warp_redirect()` in request_route only; from KEMI it must
/// refuse elsewhere too: in a branch_route its branches joined the fork, and every
/// vendor was called at once.
#[test]
fn warp_redirect_outside_the_request_route_is_refused_under_kemi() {
    let (dir, data, k) =
        start_kemi_probe(("t_on_branch", "branch route", "warp_redirect"), ("", ""));
    let cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
    let dear = Uas::start(dir.path(), data.dear.0, Answer::RingThenBusy);
    // CHEAP alone gets the call, and its 503 (relayed as 500) is the answer.
    let reply = k.request("INVITE", "");
    assert_eq!(reply.code, 500, "{} {}", reply.reason, k.log());
    assert_eq!((cheap.invites(), dear.invites()), (1, 0), "{}", k.log());
    let log = k.log();
    assert!(log.contains("branch route: warp_redirect() = -2"), "{log}");
}

/// The checks have their routes too (request, failure and branch routes;
/// `warp_authenticated()` the request route only), which kamailio.cfg enforces when it
/// reads the config; from KEMI they must refuse elsewhere: on a vendor's reply,
/// `warp_identify()` took the vendor's address for a customer's trunk.
#[test]
fn checks_outside_their_routes_are_refused_under_kemi() {
    for (hook, label, func) in [
        ("t_on_reply", "reply route", "warp_ani"),
        ("t_on_reply", "reply route", "warp_identify"),
        ("t_on_reply", "reply route", "warp_dno"),
        ("t_on_failure", "failure route", "warp_authenticated"),
    ] {
        let (dir, data, k) = start_kemi_probe((hook, label, func), ("", ""));
        let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
        let reply = k.request("INVITE", "");
        assert_eq!(reply.code, 500, "{} {}", reply.reason, k.log());
        let log = k.log();
        assert!(log.contains(&format!("{label}: {func}() = -2")), "{log}");
        assert!(log.contains(&format!("{func}() runs in ")), "{log}");
    }
}
