//! Requests within a call on the shipped config: relayed only for the edge's own calls
//! (and no transfer), a PRACK in the early dialog, a BYE without its route or slow to be
//! answered, a caller behind NAT, and WITH_TOPOH hiding each side's topology from the
//! other.

use super::{
    by_call, end_the_only_dialog, event_kinds, no_redis, shipped_config, start_shipped,
    wait_for_stat, with_topoh, Routing,
};
use crate::support::rtpengine::wait_for_no_media_sessions;
use crate::support::udp::{
    behind_nat, contact_uri, final_reply, final_reply_text, header_of, next_request,
    raw_invite_with_sdp, raw_request, raw_socket, reply_to, send_raw, InDialog,
};
use crate::support::{self, Kamailio, Reply};
use std::time::{Duration, Instant};

/// A caller that ignores the Record-Route and sends its BYE without a Route still ends
/// the call at the edge: the vendor is told, the trunk's place is given back and the
/// call's end is reported now, not when the dialog times out hours later, and its media
/// session is deleted.
#[test]
fn the_shipped_config_ends_a_call_whose_bye_lost_its_route() {
    ends_a_call_whose_bye_lost_its_route(&[]);
}

/// As [`the_shipped_config_ends_a_call_whose_bye_lost_its_route`], with WITH_TOPOH:
/// the dialog module's BYE reaches the vendor, and its 200 (under the masked Call-ID,
/// which topoh leaves in a reply to the edge's own request) ends the call.
#[test]
fn the_shipped_config_ends_a_call_whose_bye_lost_its_route_with_topology_hidden() {
    ends_a_call_whose_bye_lost_its_route(&with_topoh());
}

fn ends_a_call_whose_bye_lost_its_route(more: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let rtpengine = support::rtpengine::Rtpengine::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let mut defines = vec![
        "WITH_RTPENGINE".to_string(),
        format!("RTPENGINE_SOCK=\"udp:127.0.0.1:{}\"", rtpengine.ng_port),
    ];
    defines.extend_from_slice(more);
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, "+12125550123", "noroute");
    let (with_route, _) = InDialog::answered(&sock, &k, lport, ("noroute", data.cheap.0), &invite);
    wait_for_stat(&k, "limits.active", "1");
    let without_route = InDialog {
        route: None,
        ..with_route
    };
    send_raw(
        &sock,
        &k,
        &without_route.request("BYE", 2, "Content-Length: 0\r\n\r\n"),
    );
    let bye_reply = final_reply(&sock, &k, "noroute");
    assert_eq!(bye_reply.code, 200, "{}", k.log());
    vendor.wait_for("BYE", &k);
    wait_for_stat(&k, "limits.active", "0");
    // Each worker writes its own events: the answer and the end, a moment apart, may
    // reach the stream in either order.
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let calls = by_call(&cdrs);
    let kinds: Vec<&str> = calls
        .values()
        .flatten()
        .map(|c| c["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["start", "answer", "end"], "{}", k.log());
    wait_for_no_media_sessions(&rtpengine, &k);
}

/// A request in an early dialog (a PRACK for the vendor's 180) is a call's own too:
/// relayed, not refused as belonging to no call.
#[test]
fn the_shipped_config_relays_a_prack_in_the_early_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Rings);
    let nowhere = no_redis();
    let k = start_shipped(dir.path(), &data, &nowhere, &[]);
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "early");
    send_raw(&sock, &k, &invite);
    let mut buf = [0u8; 65535];
    let ringing = loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no 180 ({e}):\n{}", k.log()));
        let reply = support::Reply::parse(&String::from_utf8_lossy(&buf[..n]));
        if reply.code == 180 {
            break reply;
        }
    };
    let early = InDialog {
        edge: k.port,
        lport,
        call: "early",
        vendor: data.cheap.0,
        route: ringing.header("Record-Route").map(str::to_owned),
        to: ringing.header("To").unwrap().to_owned(),
    };
    send_raw(
        &sock,
        &k,
        &early.request("PRACK", 2, "Content-Length: 0\r\n\r\n"),
    );
    vendor.wait_for("PRACK", &k);
}

/// A BYE the vendor is slow to answer (or whose first 200s were lost) is sent again
/// until RFC 3261's 32 s are up, not given up with a 408 after the 2 s a vendor has to
/// take a call: the edge's own BYE (`dlg.end_dlg`) is sent until the vendor answers
/// it, and a caller's hang-up gets the vendor's 200.
#[test]
fn the_shipped_config_keeps_sending_a_bye_the_vendor_is_slow_to_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let plays = support::vendor::Plays::HangsUpSlowly;
    let vendor = support::vendor::Vendor::start(data.cheap.0, plays);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let byes_of = |call: &str| {
        let id = format!("Call-ID: {call}-");
        let byes = vendor.received("BYE");
        byes.iter().filter(|m| m.contains(&id)).count()
    };

    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "ended");
    InDialog::answered(&sock, &k, lport, ("ended", data.cheap.0), &invite);
    end_the_only_dialog(&k);
    let deadline = Instant::now() + support::vendor::HANG_UP_DELAY * 2;
    while byes_of("ended") < 4 {
        assert!(
            Instant::now() < deadline,
            "the edge's BYE given up after {} copies:\n{}",
            byes_of("ended"),
            k.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Another caller: the first gets the edge's BYEs too.
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "hangup");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("hangup", data.cheap.0), &invite);
    let bye = dialog.request("BYE", 2, "Content-Length: 0\r\n\r\n");
    send_raw(&sock, &k, &bye);
    assert_eq!(final_reply(&sock, &k, "hangup").code, 200, "{}", k.log());
    // Sent at 0, 0.5 and 1.5 s unanswered, answered at 3.5 s.
    assert!(byes_of("hangup") >= 4, "{}", k.log());
}

/// A request that only looks in-dialog (a To tag, the edge's address as its Route) but
/// belongs to no call of the edge's is refused (481), not relayed wherever its
/// Request-URI points past the trunk ACL, the limits and the CDRs; the requests of a
/// real call still pass both ways.
#[test]
fn the_shipped_config_relays_in_dialog_requests_only_of_its_calls_and_no_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let nowhere = no_redis();
    let k = start_shipped(dir.path(), &data, &nowhere, &[]);
    let (sock, lport) = raw_socket();
    let forged = InDialog {
        edge: k.port,
        lport,
        call: "forged",
        vendor: data.cheap.0,
        route: Some(format!("<sip:127.0.0.1:{};lr>", k.port)),
        to: "<sip:+12125550123@127.0.0.1>;tag=forged".into(),
    };
    send_raw(
        &sock,
        &k,
        &forged.request("INVITE", 2, "Content-Length: 0\r\n\r\n"),
    );
    let reply = final_reply(&sock, &k, "forged");
    assert_eq!(reply.code, 481, "relayed:\n{}", k.log());
    assert!(vendor.received("INVITE").is_empty());
    // One without a Route, of no call the edge knows (one a restart forgot, or a
    // peer's stale dialog): 481 too, which tells the peer its dialog is gone (RFC 3261
    // 12.2.2), not 404.
    let stray = InDialog {
        route: None,
        call: "stray",
        ..forged
    };
    for (method, cseq) in [("INVITE", 2), ("BYE", 3)] {
        send_raw(
            &sock,
            &k,
            &stray.request(method, cseq, "Content-Length: 0\r\n\r\n"),
        );
        let reply = final_reply(&sock, &k, "stray");
        assert_eq!(reply.code, 481, "{method}: {}", k.log());
    }

    // A call's own: the caller's re-INVITE reaches the vendor, the vendor's INFO the
    // caller.
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "real");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("real", data.cheap.0), &invite);
    send_raw(
        &sock,
        &k,
        &dialog.request("INVITE", 2, "Content-Length: 0\r\n\r\n"),
    );
    assert_eq!(final_reply(&sock, &k, "real").code, 200, "{}", k.log());
    assert_eq!(vendor.received("INVITE").len(), 2);
    // A transfer would have the vendor call a number of the caller's choosing, unrouted
    // and unbilled.
    send_raw(
        &sock,
        &k,
        &dialog.request(
            "REFER",
            3,
            "Refer-To: <sip:+15555550100@127.0.0.1>\r\nContent-Length: 0\r\n\r\n",
        ),
    );
    assert_eq!(final_reply(&sock, &k, "real").code, 403, "{}", k.log());
    assert!(vendor.received("REFER").is_empty());
    let (vsock, vport) = raw_socket();
    send_raw(&vsock, &k, &dialog.vendor_request("INFO", 1, vport));
    let mut buf = [0u8; 65535];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no INFO ({e}):\n{}", k.log()));
    assert!(
        buf[..n].starts_with(b"INFO "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// A caller behind NAT names its private address in its Via (without `rport`) and in
/// its Contact. The edge answers it where its requests come from all the same, and the
/// requests inside its calls reach it there: the BYE the edge sends itself, and the
/// vendor's re-INVITE and, after the caller's 200 named the private address again, the
/// vendor's BYE.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat() {
    reaches_a_caller_behind_nat(&Routing::direct(), &[]);
}

/// As [`the_shipped_config_reaches_a_caller_behind_nat`], with WITH_TOPOH: the alias
/// the edge puts in the caller's Contact is masked with it, and unmasked with it.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat_with_topology_hidden() {
    reaches_a_caller_behind_nat(&Routing::direct(), &with_topoh());
}

/// As [`the_shipped_config_reaches_a_caller_behind_nat`], for calls dipped in an async
/// worker (WITH_LRN_DIP): their dialog is made in the resumed route, from the INVITE as
/// tm keeps it, so the caller's Contact has to be aliased there too, or the edge's own
/// BYE goes to the private address.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat_after_the_dip() {
    reaches_a_caller_behind_nat(&Routing::dipped(), &[]);
}

/// Two calls from a caller behind NAT, routed by `routing`, through the shipped config
/// with `more` defines.
fn reaches_a_caller_behind_nat(routing: &Routing, more: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &routing.defines(more));
    let (sock, lport) = raw_socket();
    let user = routing.number();
    let invite = behind_nat(&raw_request(k.port, lport, "INVITE", user, "ended"), lport);
    // The old config sent every reply to 127.0.0.1:5060, the Via's port.
    InDialog::answered(&sock, &k, lport, ("ended", data.cheap.0), &invite);
    end_the_only_dialog(&k);
    let bye = next_request(&sock, "BYE", "ended", &k);
    sock.send_to(
        reply_to(&bye, "200 OK", "").as_bytes(),
        ("127.0.0.1", k.port),
    )
    .unwrap();

    let invite = behind_nat(
        &raw_request(k.port, lport, "INVITE", user, "refreshed"),
        lport,
    );
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("refreshed", data.cheap.0), &invite);
    let (vsock, vport) = raw_socket();
    // The vendor's requests go to the Contact and by the Call-ID its INVITE named.
    let invites = vendor.received("INVITE");
    let invite = invites.last().unwrap();
    let call_id = header_of(invite, "Call-ID");
    let to_caller = |request: String, target: &str| {
        let uri = format!("sip:3035550100@127.0.0.1:{lport}");
        let request = request.replacen(&uri, target, 1).replacen(
            &format!("Call-ID: refreshed-{lport}"),
            &format!("Call-ID: {call_id}"),
            1,
        );
        vsock
            .send_to(request.as_bytes(), ("127.0.0.1", k.port))
            .unwrap();
    };
    to_caller(
        dialog.vendor_request("INVITE", 1, vport),
        &contact_uri(invite),
    );
    let reinvite = next_request(&sock, "INVITE", "refreshed", &k);
    let private = "Contact: <sip:3035550100@192.168.1.10:5060>\r\n";
    sock.send_to(
        reply_to(&reinvite, "200 OK", private).as_bytes(),
        ("127.0.0.1", k.port),
    )
    .unwrap();
    let ok = support::Reply::parse(&final_reply_text(&vsock, &k, &call_id));
    assert_eq!(ok.code, 200, "{}", k.log());
    let target = ok.header("Contact").unwrap().trim_matches(['<', '>']);
    to_caller(dialog.vendor_request("BYE", 2, vport), target);
    next_request(&sock, "BYE", "refreshed", &k);
    routing.took(&k, 2);
}

/// WITH_TOPOH without a TOPOH_KEY: every edge would mask with topoh's built-in key,
/// which anyone can read in Kamailio's source.
#[test]
fn the_shipped_config_refuses_topology_hiding_without_a_key() {
    let log = Kamailio::refused_file(&shipped_config(), &["WITH_TOPOH".into()]);
    assert!(
        log.contains("TOPOH_KEY_is_required_with_WITH_TOPOH"),
        "{log}"
    );
}

/// WITH_TOPOH: a vendor learns nothing of the customer's network from the calls it
/// gets (the customer here an SBC at `lport` in front of a PBX at 10.20.30.40), nor
/// the customer anything of the vendor's, and the call still ends from either side or
/// from the edge. The script, the dialogs and the CDRs see the customer's Call-ID.
#[test]
fn the_shipped_config_hides_each_sides_topology_from_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let vport = data.cheap.0;
    let vendor = support::vendor::Vendor::start(vport, support::vendor::Plays::Answers);
    // Masked URIs name the edge itself, as the config asks an operator to set it.
    let mut defines = with_topoh();
    defines.push("TOPOH_MASK_IP=\"127.0.0.1\"".into());
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    let customers = [format!(":{lport}"), "10.20.30.40".into()];
    // Calls as the vendor sees them: its INVITE, the Call-ID it names the call by.
    let answered = |call: &'static str| {
        let invite = behind_an_sbc(
            &raw_request(k.port, lport, "INVITE", "+12125550123", call),
            lport,
        );
        let (dialog, ok) = InDialog::answered(&sock, &k, lport, (call, vport), &invite);
        let seen = vendor.received("INVITE").pop().unwrap();
        for address in customers.iter().chain([&format!("{call}-{lport}")]) {
            assert!(!seen.contains(address.as_str()), "{address} in\n{seen}");
        }
        assert!(!ok.contains(&format!(":{vport}")), "{ok}");
        let masked = header_of(&seen, "Call-ID");
        (dialog, ok, seen, masked)
    };
    // The vendor's BYE has the Call-ID it knows the call by.
    let vendor_ended = |masked: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let byes = vendor.received("BYE");
            if let Some(bye) = byes.iter().find(|b| b.contains(masked)) {
                assert!(!customers.iter().any(|a| bye.contains(a.as_str())), "{bye}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no BYE of {masked}:\n{byes:?}\n{}",
                k.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // The edge ends the call (dlg.end_dlg): the customer's BYE names its own Call-ID.
    let (_, _, _, masked) = answered("byedge");
    end_the_only_dialog(&k);
    let bye = next_request(&sock, "BYE", "byedge", &k);
    send_raw(&sock, &k, &reply_to(&bye, "200 OK", ""));
    vendor_ended(&masked);

    // The customer hangs up, to the Contact the 200 gave it.
    let (dialog, ok, _, masked) = answered("byecaller");
    let bye = dialog
        .request("BYE", 2, "Content-Length: 0\r\n\r\n")
        .replacen(
            &format!("sip:vendor@127.0.0.1:{vport}"),
            &contact_uri(&ok),
            1,
        );
    send_raw(&sock, &k, &bye);
    assert_eq!(final_reply(&sock, &k, "byecaller").code, 200, "{}", k.log());
    vendor_ended(&masked);

    // The vendor hangs up, as a vendor would: to the INVITE's Contact, through its
    // Record-Route, by the Call-ID it got.
    let (dialog, _, seen, masked) = answered("byevendor");
    let route: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("Record-Route: "))
        .collect();
    let dialog = InDialog {
        route: Some(route.join(", ")),
        ..dialog
    };
    let (vsock, vsport) = raw_socket();
    let bye = dialog
        .vendor_request("BYE", 2, vsport)
        .replacen(
            &format!("sip:3035550100@127.0.0.1:{lport}"),
            &contact_uri(&seen),
            1,
        )
        .replace(
            &format!("Call-ID: byevendor-{lport}"),
            &format!("Call-ID: {masked}"),
        );
    vsock
        .send_to(bye.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
    let bye = next_request(&sock, "BYE", "byevendor", &k);
    assert!(!bye.contains(&format!(":{vsport}")), "{bye}");
    send_raw(&sock, &k, &reply_to(&bye, "200 OK", ""));
    let ok = Reply::parse(&final_reply_text(&vsock, &k, &masked));
    assert_eq!(ok.code, 200, "{}", k.log());

    // Each call reported whole, under the Call-ID the customer's own CDRs have.
    let cdrs = redis.wait_for("warp:cdr:raw", 9, Duration::from_secs(5));
    for call in ["byedge", "byecaller", "byevendor"] {
        let kinds: Vec<String> = event_kinds(&cdrs, call, lport);
        assert_eq!(kinds, ["start", "answer", "end"], "{call}: {cdrs:#?}");
    }
}

/// `request` as a customer's SBC at `lport` relays it from a PBX at 10.20.30.40: the
/// PBX's Via under the SBC's, the PBX's Contact, the SBC's Record-Route.
fn behind_an_sbc(request: &str, lport: u16) -> String {
    let sbc = format!("Via: SIP/2.0/UDP 127.0.0.1:{lport};");
    let (head, tail) = request.split_once(&sbc).unwrap();
    let (via, rest) = tail.split_once("\r\n").unwrap();
    format!(
        "{head}{sbc}{via}\r\n\
         Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-pbx{lport}\r\n\
         Record-Route: <sip:127.0.0.1:{lport};lr>\r\n{rest}"
    )
    .replace(
        &format!("Contact: <sip:3035550100@127.0.0.1:{lport}>"),
        "Contact: <sip:3035550100@10.20.30.40:5060>",
    )
}
