//! The routing decision in kamailio.cfg: `warp_route()` sends a call to the cheapest vendor
//! or refuses it (an unknown source, a DNO caller, a malformed number), `warp_identify()`
//! and `warp_dno()` on their own, `warp_redirect()`'s 300, the fallback reply without a
//! snapshot or after a panic, and `warp.route`, which simulates a decision over RPC.

use super::{routed_to_the_cheapest_vendor, start_on_test_data, ANI_ROUTE, ROUTE};
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw};
use crate::support::{self, Kamailio, Script};

#[test]
fn route_sends_the_call_to_the_cheapest_vendor() {
    let (_data, k) = start_on_test_data(Script::Native(ROUTE));
    let reply = routed_to_the_cheapest_vendor(&k);
    assert_eq!(reply.header("X-Warp-Partition"), Some("P1"));
    assert!(reply.header("X-Warp-Zone").is_some_and(|z| !z.is_empty()));
    assert!(k.log().contains("generation 1 mapped"));
}

#[test]
fn route_refuses_unknown_sources_and_dno_callers() {
    let (_data, k) = start_on_test_data(Script::Native(ROUTE));
    let reply = k.request_from("127.0.0.2", "INVITE", "");
    assert_eq!(reply.code, 403, "no trunk has 127.0.0.2 in its ACL");
    let dno = format!(
        "P-Asserted-Identity: <tel:{}>\r\n",
        support::dataset::DNO_ANI
    );
    let reply = k.request("INVITE", &dno);
    assert_eq!((reply.code, reply.reason.as_str()), (603, "Decline"));
    assert_eq!(reply.header("X-Warp-ANI"), Some(support::dataset::DNO_ANI));
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_route.calls"], "2");
    assert_eq!(stats["warp_route.errors"], "0");
}

/// `$warp(code)` belongs to the last decision: a routed call shows no refusal that an
/// earlier check on the same request made.
#[test]
fn a_routed_call_shows_no_earlier_refusal() {
    let script = format!(
        r#"
    if (warp_dno("{}")) {{
        append_to_reply("X-Warp-DNO: $warp(code)\r\n");
    }}
    {ROUTE}"#,
        support::dataset::DNO_ANI
    );
    let script = script.replace(
        "sl_send_reply(\"200\", \"Routed\");",
        "append_to_reply(\"X-Warp-Code: $warp(code)\\r\\n\");\n    sl_send_reply(\"200\", \"Routed\");",
    );
    let (_data, k) = start_on_test_data(Script::Native(&script));
    let reply = k.request("INVITE", "");
    assert_eq!(
        (
            reply.code,
            reply.header("X-Warp-DNO"),
            reply.header("X-Warp-Code")
        ),
        (200, Some("603"), Some("<null>")),
        "{}",
        k.log()
    );
}

#[test]
fn malformed_numbers_get_a_clear_refusal_and_the_next_call_routes() {
    let (_data, k) = start_on_test_data(Script::Native(ROUTE));
    // Dialled numbers that are no E.164 number: 484, with the reason in $warp(why).
    for user in [
        "nobody",
        "12",
        "+0442079460000",
        "+1234567890123456789012",
        "+1212555012a",
        "%2B12125550123",
        // A number only in a parameter is none (parameters after one are ignored:
        // see a_dialled_number_with_portability_parameters_is_routed_on_its_number).
        ";ext=12125550123",
    ] {
        let reply = k.request_to("127.0.0.1", user, "INVITE", "");
        assert_eq!(
            (reply.code, reply.reason.as_str()),
            (484, "Address Incomplete"),
            "{user}: {}",
            k.log()
        );
        assert!(
            reply.header("X-Warp-Why").is_some_and(|w| !w.is_empty()),
            "{user}"
        );
    }
    // A local number dialled in its phone-context: +44 20 7946 0000 (which C1 has no
    // rate for), not 207-946-0000 in New Jersey; in +1's, the NANP number.
    for (context, code) in [("+44", 404), ("+1", 200)] {
        assert_eq!(dial_in_context(&k, context), code, "{context}: {}", k.log());
    }
    // A Request-URI without a user part dials no number: 484 too, not an error.
    let (sock, lport) = raw_socket();
    let request =
        raw_request(k.port, lport, "INVITE", "NOUSER", "nouser").replacen("sip:NOUSER@", "sip:", 1);
    send_raw(&sock, &k, &request);
    let reply = final_reply(&sock, &k, "nouser");
    assert_eq!(
        (reply.code, reply.reason.as_str()),
        (484, "Address Incomplete")
    );
    assert_eq!(
        reply.header("X-Warp-Why"),
        Some("no dialled number: the R-URI has no user part")
    );
    // A caller's number that is garbage is no ANI: the call routes without one.
    let reply = k.request(
        "INVITE",
        "P-Asserted-Identity: <sip:not;a=number@127.0.0.1>\r\n",
    );
    assert_eq!(reply.code, 200, "{}", k.log());
    let reply = k.request("INVITE", "");
    assert_eq!(reply.code, 200, "{}", k.log());
    // A Call-ID too long for a tracked call to hold is refused before it is counted,
    // not routed uncounted past the trunk's limits.
    let reply = k.invite_with_call_id_tail(&"x".repeat(1100));
    assert_eq!((reply.code, reply.reason.as_str()), (400, "Bad Request"));
    assert!(reply
        .header("X-Warp-Why")
        .is_some_and(|w| w.contains("longer than a tracked call can hold")));
    assert_eq!(k.invite_with_call_id_tail(&"x".repeat(500)).code, 200);
    // A Call-ID header with nothing in it is the caller's mistake too: 400, no error.
    let (sock, lport) = raw_socket();
    let request = raw_request(k.port, lport, "INVITE", "+12125550123", "nocallid").replacen(
        &format!("Call-ID: nocallid-{lport}"),
        "Call-ID:  ",
        1,
    );
    send_raw(&sock, &k, &request);
    let mut buf = [0u8; 65535];
    let n = sock.recv(&mut buf).unwrap();
    let reply = support::Reply::parse(&String::from_utf8_lossy(&buf[..n]));
    assert_eq!(
        (reply.code, reply.reason.as_str()),
        (400, "Bad Request"),
        "{}",
        k.log()
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_route.errors"], "0");
    assert_eq!(stats["warp_route.panics"], "0");
}

/// The code an INVITE to 2079460000 in `context` (a phone-context, `user=phone`) gets.
fn dial_in_context(k: &Kamailio, context: &str) -> u16 {
    let (sock, lport) = raw_socket();
    let call = format!("context{lport}");
    let request = raw_request(k.port, lport, "INVITE", "LOCAL", &call).replacen(
        &format!("sip:LOCAL@127.0.0.1:{}", k.port),
        &format!(
            "sip:2079460000;phone-context={context}@127.0.0.1:{};user=phone",
            k.port
        ),
        1,
    );
    send_raw(&sock, k, &request);
    final_reply(&sock, k, &call).code
}

/// A local number dialled in its phone-context is read in it even when the script (or
/// sanity's URI checks, as in the shipped config) had the core parse the R-URI first.
#[test]
fn a_dialled_local_number_keeps_its_phone_context_after_the_script_read_it() {
    let script = format!("$var(dialled) = $rU;\n{ROUTE}");
    let (_data, k) = start_on_test_data(Script::Native(&script));
    for (context, code) in [("+44", 404), ("+1", 200)] {
        assert_eq!(dial_in_context(&k, context), code, "{context}: {}", k.log());
    }
}

/// A number-portability R-URI (RFC 4694 `;npdi;rn=`) without `user=phone`: the core
/// leaves the parameters in the user part, and the call is routed on its number, the
/// vendor's R-URI carrying the number alone.
#[test]
fn a_dialled_number_with_portability_parameters_is_routed_on_its_number() {
    let (_data, k) = start_on_test_data(Script::Native(ROUTE));
    let (sock, lport) = raw_socket();
    let call = format!("npdi{lport}");
    let user = "+12125550123;npdi;rn=+13035550000";
    send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "INVITE", user, &call),
    );
    let reply = final_reply(&sock, &k, &call);
    assert_eq!(
        reply.code,
        200,
        "{:?}\n{}",
        reply.header("X-Warp-Why"),
        k.log()
    );
    let ruri = reply.header("X-Warp-RURI").unwrap();
    assert!(ruri.starts_with("sip:+12125550123@"), "{ruri}");
}

/// The trunk and DNO checks on their own, before any routing: the caller's number
/// (PAI/RPID/From) or the one in X-Number.
const IDENTIFY_AND_DNO: &str = r#"
    if (!warp_identify()) {
        append_to_reply("X-Warp-Why: $warp(why)\r\n");
        sl_send_reply("$warp(code)", "$warp(reason)");
        exit;
    }
    append_to_reply("X-Warp-Trunk: $warp(trunk)\r\nX-Warp-BAN: $warp(ban)\r\n");
    if (is_present_hf("X-Number")) {
        if (warp_dno("$hdr(X-Number)")) {
            sl_send_reply("$warp(code)", "$warp(reason)");
            exit;
        }
    } else if (warp_dno()) {
        append_to_reply("X-Warp-ANI: $warp(ani)\r\nX-Warp-Why: $warp(why)\r\n");
        sl_send_reply("$warp(code)", "$warp(reason)");
        exit;
    }
    sl_send_reply("200", "Clean");
"#;

#[test]
fn trunk_and_dno_checks_work_on_their_own() {
    let (_data, k) = start_on_test_data(Script::Native(IDENTIFY_AND_DNO));
    let clean = k.request(
        "INVITE",
        "P-Asserted-Identity: <sip:+17205550199@x.example>\r\n",
    );
    assert_eq!(
        (clean.code, clean.reason.as_str()),
        (200, "Clean"),
        "{}",
        k.log()
    );
    assert_eq!(clean.header("X-Warp-Trunk"), Some("T1"));
    assert_eq!(clean.header("X-Warp-BAN"), Some("C1"));

    let stranger = k.request_from("127.0.0.2", "INVITE", "");
    assert_eq!(
        (stranger.code, stranger.reason.as_str()),
        (403, "Forbidden")
    );
    assert_eq!(
        stranger.header("X-Warp-Why"),
        Some("no enabled trunk for source 127.0.0.2")
    );

    let dno = support::dataset::DNO_ANI;
    let caller = k.request("INVITE", &format!("P-Asserted-Identity: <tel:{dno}>\r\n"));
    assert_eq!((caller.code, caller.reason.as_str()), (603, "Decline"));
    assert_eq!(caller.header("X-Warp-ANI"), Some(dno));
    let digits = dno.trim_start_matches('+');
    assert_eq!(
        caller.header("X-Warp-Why"),
        Some(format!("{digits} is on the DNO list").as_str())
    );
    let given = |number: &str| k.request("INVITE", &format!("X-Number: {number}\r\n")).code;
    assert_eq!(given(dno), 603);
    assert_eq!(given("+17205550199"), 200);
    // A number that does not parse is on no list, as in warp_route().
    assert_eq!(given("not-a-number"), 200);

    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_identify.calls"], "6");
    assert_eq!(stats["warp_dno.calls"], "5");
    assert_eq!(stats["warp_dno.errors"], "0");
}

/// A redirect server: every vendor, in failover order, as a Contact of the 300.
const REDIRECT: &str = r#"
    if (!warp_route()) {
        sl_send_reply("$warp(code)", "$warp(reason)");
        exit;
    }
    warp_redirect();
    sl_send_reply("300", "Multiple Choices");
"#;

#[test]
fn a_redirect_lists_every_vendor_in_failover_order() {
    let data = tempfile::tempdir().unwrap();
    let snap = data.path().join("routing.snap");
    let data = support::dataset::Data::with_gateways();
    data.publish(&snap);
    let (cheap, dear) = (data.cheap.0, data.dear.0);
    // Called twice, it lists each vendor once.
    let script = REDIRECT.replace("warp_redirect();", "warp_redirect();\n    warp_redirect();");
    let k = Kamailio::start(
        &[("snapshot", snap.to_str().unwrap())],
        Script::Native(&script),
    );
    let reply = k.request("INVITE", "");
    assert_eq!(
        (reply.code, reply.reason.as_str()),
        (300, "Multiple Choices"),
        "{}",
        k.log()
    );
    let contact = format!(
        "<sip:+12125550123@127.0.0.1:{cheap}>;q=1, <sip:+12125550123@127.0.0.1:{dear}>;q=0.5"
    );
    assert_eq!(reply.header("Contact"), Some(contact.as_str()));
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_redirect.calls"], "2");
    assert_eq!(stats["warp_redirect.errors"], "0");
}

/// Kamailio holds `max_branches` - 1 branches beside the R-URI: a redirect with more
/// attempts lists those that fit, and still succeeds (it returned -2, with two error
/// lines, at every call).
#[test]
fn a_redirect_lists_the_vendors_max_branches_has_room_for() {
    let data = tempfile::tempdir().unwrap();
    let snap = data.path().join("routing.snap");
    let data = support::dataset::Data::with_gateways();
    data.publish(&snap);
    let script = REDIRECT.replace(
        "warp_redirect();",
        "$var(rc) = warp_redirect();\n    append_to_reply(\"X-Warp-RC: $var(rc)\\r\\n\");",
    );
    let k = Kamailio::start(
        &[("snapshot", snap.to_str().unwrap())],
        Script::Cfg(&format!("max_branches=1\nrequest_route {{\n{script}\n}}\n")),
    );
    for _ in 0..2 {
        let reply = k.request("INVITE", "");
        let contact = format!("<sip:+12125550123@127.0.0.1:{}>;q=1", data.cheap.0);
        assert_eq!(
            (
                reply.code,
                reply.header("Contact"),
                reply.header("X-Warp-RC")
            ),
            (300, Some(contact.as_str()), Some("1")),
            "{}",
            k.log()
        );
    }
    let log = k.log();
    assert!(!log.contains("max nr of branches exceeded"), "{log}");
    assert!(
        log.contains("max_branches leaves room for 0 of 1 later attempts"),
        "{log}"
    );
}

#[test]
fn route_takes_the_dialled_number_from_its_parameter() {
    let script = ROUTE.replace("warp_route()", "warp_route(\"$hdr(X-Number)\")");
    let (_data, k) = start_on_test_data(Script::Native(&script));
    // The R-URI's user is no number: only the parameter can route this call.
    let reply = k.request_to(
        "127.0.0.1",
        "nobody",
        "INVITE",
        "X-Number: +12125550123\r\n",
    );
    assert_eq!(reply.code, 200, "{}", k.log());
    assert_eq!(
        reply.header("X-Warp-RURI"),
        Some("sip:+12125550123@127.0.0.1:5090")
    );
    // A local number in a parameter is read in its phone-context too: +1 212, and
    // +44 20 7946 0000, which C1 has no route for (not the NANP's 207-946-0000).
    let local = |number: &str| {
        let headers = format!("X-Number: {number}\r\n");
        k.request_to("127.0.0.1", "nobody", "INVITE", &headers)
    };
    let reply = local("<tel:555-0123;phone-context=+1-212>");
    assert_eq!(reply.code, 200, "{}", k.log());
    assert_eq!(
        reply.header("X-Warp-RURI"),
        Some("sip:+12125550123@127.0.0.1:5090")
    );
    assert_eq!(local("tel:2079460000;phone-context=+44").code, 404);
}

#[test]
fn route_reads_the_request_uri_the_script_rewrote() {
    // A tech prefix stripped (the rewritten URI), then read back (the core's parse of
    // it cached in the message): warp must route on what the script left.
    let script = format!("if ($rU =~ \"^999\") {{ strip(3); $var(dialled) = $rU; }}\n{ROUTE}");
    let (_data, k) = start_on_test_data(Script::Native(&script));
    for user in ["999+12125550123", "+12125550123"] {
        let reply = k.request_to("127.0.0.1", user, "INVITE", "");
        assert_eq!(reply.code, 200, "{user}: {}", k.log());
        assert_eq!(
            reply.header("X-Warp-RURI"),
            Some("sip:+12125550123@127.0.0.1:5090"),
            "{user}"
        );
    }
    // A URI the quick reader leaves to the core's parser (a password in the userinfo).
    let reply = k.request_to("127.0.0.1", "+12125550123:secret", "INVITE", "");
    assert_eq!(reply.code, 200, "{}", k.log());
}

#[test]
fn route_without_a_valid_snapshot_answers_the_configured_fallback() {
    let data = tempfile::tempdir().unwrap();
    let snap = data.path().join("routing.snap");
    std::fs::write(&snap, b"not a snapshot").unwrap();
    let params = [
        ("snapshot", snap.to_str().unwrap()),
        ("fallback_code", "480"),
        ("fallback_reason", "No Routing Data"),
    ];
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    assert!(
        k.log()
            .contains("routing.snap refused (14 bytes is less than a snapshot header"),
        "{}",
        k.log()
    );
    let reply = k.request(
        "INVITE",
        "P-Asserted-Identity: <sip:+17205550199@x.example>\r\n",
    );
    assert_eq!(
        (reply.code, reply.reason.as_str()),
        (480, "No Routing Data")
    );
    assert_eq!(reply.header("X-Warp-ANI"), Some("+17205550199"));
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_route.calls"], "1");
    assert_eq!(stats["warp_route.errors"], "0");
}

#[test]
fn a_panic_is_caught_and_answered_with_the_fallback_reply() {
    let params = [
        ("fault_inject", "warp_ani"),
        ("fallback_code", "500"),
        ("fallback_reason", "Warp Internal Error"),
    ];
    let k = Kamailio::start(&params, Script::Native(ANI_ROUTE));
    for _ in 0..2 {
        let reply = k.request("OPTIONS", "");
        assert_eq!(
            (reply.code, reply.reason.as_str()),
            (500, "Warp Internal Error")
        );
        // The script ended at the panicking function: nothing after it ran.
        assert_eq!(reply.header("X-Warp-Pid"), None);
    }
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_ani.calls"], "2");
    assert_eq!(stats["warp_ani.panics"], "2");
    let log = k.log();
    assert!(
        log.contains("warp_ani: caught panic (fault injected by modparam fault_inject)"),
        "{log}"
    );
}

#[test]
fn a_route_rpc_fault_echoing_a_huge_argument_still_reaches_kamcmd() {
    let (_dir, k) = start_on_test_data(Script::Native(ROUTE));
    let ban = format!("s:{}", "B".repeat(60_000));
    let fault = k
        .rpc_args(&["warp.route", &ban, "-", "s:+13035550100"])
        .unwrap_err();
    assert!(fault.starts_with("error: 403 - "), "{fault:?}");
}

#[test]
fn route_rpc_simulates_a_decision() {
    let (_data, k) = start_on_test_data(Script::Native(ROUTE));
    let d = k
        .rpc_args(&["warp.route", "C1", "s:+17205550199", "s:12125550123"])
        .unwrap();
    assert_eq!(d["generation"], "1");
    assert_eq!(d["ban"], "C1");
    assert_eq!(d["dnis"], "12125550123");
    assert_eq!(d["lrn"], "12125550123");
    assert_eq!(d["lrn_source"], "dnis");
    assert_eq!(d["routes.1.vendor"], "CHEAP");
    assert_eq!(d["routes.1.uri"], "sip:+12125550123@127.0.0.1:5090");
    assert_eq!(d["routes.1.vendor_rate"], "0.004");
    assert_eq!(d["routes.2.vendor"], "DEAR");
    assert_eq!(d["routes.2.partition"], "P1");
    assert!(!d["zone"].is_empty());
    let dno = k
        .rpc_args(&[
            "warp.route",
            "C1",
            &format!("s:{}", support::dataset::DNO_ANI),
            "s:12125550123",
        ])
        .unwrap_err();
    assert!(dno.contains("603"), "{dno}");
    let unknown = k
        .rpc_args(&["warp.route", "NOPE", "-", "s:12125550123"])
        .unwrap_err();
    assert!(unknown.contains("403"), "{unknown}");
    // From an address: the trunk its ACL names, as a call from there would find it.
    let by_address = k
        .rpc_args(&["warp.route", "127.0.0.3", "-", "s:12125550123"])
        .unwrap();
    assert_eq!(
        (by_address["trunk"].as_str(), by_address["ban"].as_str()),
        ("T2", "C2")
    );
    assert_eq!(by_address["routes.1.vendor"], "CHEAP");
    // A stranger, and T3's address: T3 takes calls by credentials alone.
    for source in ["127.0.0.9", "127.0.0.5"] {
        let refused = k
            .rpc_args(&["warp.route", source, "-", "s:12125550123"])
            .unwrap_err();
        let why = format!("403 - Forbidden: no enabled trunk for source {source}");
        assert!(refused.contains(&why), "{refused}");
    }
    // kamcmd sends digits as a C int: 14125550123 arrives as 1240648235, 12125550123
    // as a negative number. Neither is routed as the number it is not.
    for number in ["14125550123", "12125550123"] {
        let plain = k.rpc_args(&["warp.route", "C1", "-", number]).unwrap_err();
        assert!(plain.contains("dnis") && plain.contains("s:"), "{plain}");
    }
}
