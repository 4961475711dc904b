//! Session 36's review of the refused offer's undo (route[MEDIA_KEEP],
//! failure_route[MEDIA_UNDO], warp_media_undo()) against a real Kamailio and rtpengine:
//! the exchange kept is the call's last one with its vendor, whoever offered it and
//! however the first INVITE was answered; every way a call ends frees it; and an edge
//! given several rtpengines undoes the offer on the one that has the call.

use super::fax::{audio_sdp, header_line, media_port, sdp_body, t38_sdp, FaxEdge, Media, Side};
use super::fax_refused::{keeps_audio_after_a_refused_t38_offer, kept, refused_t38_keeps_audio};
use crate::support::rtpengine::Rtpengine;
use crate::support::udp::{
    assert_cancelled, body_of, final_reply, final_reply_text, next_request, raw_request,
    raw_socket, reply_to, send_raw, with_sdp, InDialog,
};
use crate::support::Reply;
use std::net::UdpSocket;
use std::time::Duration;

/// Waits (up to 3 s) until nothing of `call_id` is kept.
fn assert_forgotten(edge: &FaxEdge, call_id: &str, how: &str) {
    for _ in 0..30 {
        if !kept(edge).contains(call_id) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{how}: still kept: {}\n{}", kept(edge), edge.k.log());
}

/// A vendor's reply `status` to `invite` from `port`, its To tagged `tag`, with `sdp`
/// (none if empty).
pub(super) fn vendor_reply(invite: &str, status: &str, tag: &str, port: u16, sdp: &str) -> String {
    let reply = reply_to(
        invite,
        status,
        &format!("Contact: <sip:vendor@127.0.0.1:{port}>\r\n"),
    );
    let to = header_line(&reply, "To");
    with_sdp(&reply.replacen(&to, &format!("{to};tag={tag}"), 1), sdp)
}

/// The next reply `code` `sock` receives, skipping others.
pub(super) fn reply_coded(sock: &UdpSocket, edge: &FaxEdge, code: u16) -> Reply {
    let mut buf = [0u8; 65535];
    loop {
        let n =
            (sock.recv(&mut buf)).unwrap_or_else(|e| panic!("no {code} ({e}):\n{}", edge.k.log()));
        let reply = Reply::parse(&String::from_utf8_lossy(&buf[..n]));
        if reply.code == code {
            return reply;
        }
    }
}

/// The caller's INVITE of call `call` offering G.711 on `caller`'s audio.
pub(super) fn invite(edge: &FaxEdge, lport: u16, call: &str, caller: &Media) -> String {
    let offer = audio_sdp("c", 1, caller.audio_port());
    with_sdp(
        &raw_request(edge.k.port, lport, "INVITE", "+12125550123", call),
        &offer,
    )
}

/// A call the vendor answers in a 183 with SDP (G.711 on `vendor`'s audio), then in a
/// 200 without (the answer given: RFC 3261 13.2.1 has the 200 repeat it, which some
/// gateways do not), ACKed: its dialog and the rtpengine ports each side sends to.
fn answered_in_183<'a>(
    edge: &FaxEdge,
    (sock, lport): (&UdpSocket, u16),
    call: &'a str,
    (caller, vendor): (&Media, &Media),
) -> (InDialog<'a>, u16, u16) {
    send_raw(sock, &edge.k, &invite(edge, lport, call, caller));
    let at_vendor = next_request(&edge.vendor, "INVITE", call, &edge.k);
    let answer = audio_sdp("v", 1, vendor.audio_port());
    let port = edge.vendor_port;
    edge.send_from_vendor(&vendor_reply(
        &at_vendor,
        "183 Session Progress",
        "early",
        port,
        &answer,
    ));
    let early = reply_coded(sock, edge, 183);
    edge.send_from_vendor(&vendor_reply(&at_vendor, "200 OK", "early", port, ""));
    let ok = Reply::parse(&final_reply_text(sock, &edge.k, &format!("{call}-")));
    assert_eq!(ok.code, 200, "{}", edge.k.log());
    let dialog = InDialog {
        edge: edge.k.port,
        lport,
        call,
        vendor: port,
        route: ok.header("Record-Route").map(str::to_owned),
        to: ok.header("To").unwrap().to_owned(),
    };
    send_raw(
        sock,
        &edge.k,
        &dialog.request("ACK", 1, "Content-Length: 0\r\n\r\n"),
    );
    let to_vendor = media_port(&early.body, "audio").unwrap();
    let to_caller = media_port(body_of(&at_vendor), "audio").unwrap();
    (dialog, to_vendor, to_caller)
}

/// A call whose answer came in its 183 (with SDP), its 200 without: the exchange is kept
/// (a first INVITE's `$T_req($tt)` is $null, which the cfg's `!= ""` takes as empty), so
/// the caller's T.38 offer the vendor refuses is undone, G.711 both ways after.
#[test]
fn the_shipped_config_undoes_a_refused_offer_of_a_call_answered_in_its_183() {
    let edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let (dialog, to_vendor, to_caller) =
        answered_in_183(&edge, (&sock, lport), "early183", (&caller, &vendor));
    assert!(kept(&edge).contains("early"), "{}", kept(&edge));
    let media = ((&caller, to_vendor), (&vendor, to_caller));
    refused_t38_keeps_audio(&edge, (&sock, &dialog), Side::Caller, (2, sdp_body), media);
    edge.hang_up((&sock, &dialog), 3);
    assert_forgotten(&edge, &format!("early183-{lport}"), "caller's BYE");
}

/// The caller re-INVITEs first (its audio again, taken), then the vendor offers T.38,
/// which the caller refuses: the exchange replayed is the caller's (its tags the other
/// way round from the refused offer's), and G.711 flows both ways after.
#[test]
fn the_shipped_config_undoes_a_vendors_refused_offer_after_the_callers_own() {
    let edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let offer = audio_sdp("c", 1, caller.audio_port());
    let (dialog, _, _) = edge.call((&sock, lport), "swapped", &offer, vendor.audio_port());
    let call = (&sock, &dialog);
    let (offer, answer) = (
        audio_sdp("c", 2, caller.audio_port()),
        audio_sdp("v", 2, vendor.audio_port()),
    );
    let (offered, reply) = edge.reinvite(call, Side::Caller, 2, &offer, Some(&answer));
    assert_eq!(reply.code, 200, "{}", edge.k.log());
    let to_vendor = media_port(&reply.body, "audio").unwrap();
    let to_caller = media_port(&offered, "audio").unwrap();
    let media = ((&caller, to_vendor), (&vendor, to_caller));
    refused_t38_keeps_audio(&edge, call, Side::Vendor, (2, sdp_body), media);
    edge.hang_up(call, 3);
}

/// The vendor re-INVITEs without SDP, the caller offers in its 200 and the vendor
/// answers in its ACK (the exchange kept from the ACK, its tags the reply's way round);
/// then the vendor refuses the caller's T.38 offer: G.711 flows both ways after.
#[test]
fn the_shipped_config_undoes_a_refused_offer_after_a_late_offer() {
    let edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let offer = audio_sdp("c", 1, caller.audio_port());
    let (dialog, _, _) = edge.call((&sock, lport), "lateoffer", &offer, vendor.audio_port());
    let (offer, answer) = (
        audio_sdp("c", 2, caller.audio_port()),
        audio_sdp("v", 2, vendor.audio_port()),
    );
    let (_, at_vendor, at_caller) = edge.late_offer_from_vendor((&sock, &dialog), &offer, &answer);
    let to_vendor = media_port(&at_caller, "audio").unwrap();
    let to_caller = media_port(&at_vendor.body, "audio").unwrap();
    assert!(!kept(&edge).contains("/late"), "{}", kept(&edge));
    let media = ((&caller, to_vendor), (&vendor, to_caller));
    refused_t38_keeps_audio(&edge, (&sock, &dialog), Side::Caller, (2, sdp_body), media);
    edge.hang_up((&sock, &dialog), 3);
}

/// CHEAP answers in a 183 with SDP, then fails (503); DEAR answers: what is kept is
/// DEAR's exchange (its to-tag), not CHEAP's.
#[test]
fn the_shipped_config_keeps_the_answering_vendors_exchange_after_a_failover() {
    let edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, first, second) = (Media::new(), Media::new(), Media::new());
    let call = "failedover";
    send_raw(&sock, &edge.k, &invite(&edge, lport, call, &caller));
    let at_cheap = next_request(&edge.vendor, "INVITE", call, &edge.k);
    let port = edge.vendor_port;
    let early = audio_sdp("a", 1, first.audio_port());
    edge.send_from_vendor(&vendor_reply(
        &at_cheap,
        "183 Session Progress",
        "cheaptag",
        port,
        &early,
    ));
    reply_coded(&sock, &edge, 183);
    assert!(kept(&edge).contains("cheaptag"), "{}", kept(&edge));
    edge.send_from_vendor(&vendor_reply(
        &at_cheap,
        "503 Service Unavailable",
        "cheaptag",
        port,
        "",
    ));
    let at_dear = next_request(&edge.dear, "INVITE", call, &edge.k);
    let dear_port = edge.dear.local_addr().unwrap().port();
    let answer = audio_sdp("b", 1, second.audio_port());
    let ok = vendor_reply(&at_dear, "200 OK", "deartag", dear_port, &answer);
    edge.dear
        .send_to(ok.as_bytes(), ("127.0.0.1", edge.k.port))
        .unwrap();
    assert_eq!(
        final_reply(&sock, &edge.k, call).code,
        200,
        "{}",
        edge.k.log()
    );
    let kept = kept(&edge);
    assert!(
        kept.contains("deartag") && !kept.contains("cheaptag"),
        "{kept}"
    );
}

/// Every way a call ends frees what was kept of it: the caller's CANCEL after a 183 with
/// SDP; every vendor failing after one (503 each); the vendor's BYE; the edge's own BYEs
/// (`dlg.terminate_dlg`, as rtpengine's media timeout, its dialog timeout and a
/// failed keepalive send them).
#[test]
fn the_shipped_config_forgets_what_it_kept_of_a_call_however_it_ends() {
    let edge = FaxEdge::start();
    let port = edge.vendor_port;
    let early = |invite: &str, media: &Media| {
        let sdp = audio_sdp("v", 1, media.audio_port());
        edge.send_from_vendor(&vendor_reply(
            invite,
            "183 Session Progress",
            "ringing",
            port,
            &sdp,
        ));
    };
    // Cancelled.
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    send_raw(&sock, &edge.k, &invite(&edge, lport, "cancelled", &caller));
    let at_vendor = next_request(&edge.vendor, "INVITE", "cancelled", &edge.k);
    early(&at_vendor, &vendor);
    reply_coded(&sock, &edge, 183);
    assert!(
        kept(&edge).contains(&format!("cancelled-{lport}")),
        "{}",
        kept(&edge)
    );
    let cancel = raw_request(edge.k.port, lport, "CANCEL", "+12125550123", "cancelled");
    send_raw(&sock, &edge.k, &cancel);
    let at_vendor_cancel = next_request(&edge.vendor, "CANCEL", "cancelled", &edge.k);
    edge.send_from_vendor(&reply_to(&at_vendor_cancel, "200 OK", ""));
    edge.send_from_vendor(&vendor_reply(
        &at_vendor,
        "487 Request Terminated",
        "ringing",
        port,
        "",
    ));
    assert_cancelled(&sock, &edge.k);
    assert_forgotten(&edge, &format!("cancelled-{lport}"), "CANCEL");
    // Every vendor failed.
    let (sock, lport) = raw_socket();
    send_raw(&sock, &edge.k, &invite(&edge, lport, "allfailed", &caller));
    let at_cheap = next_request(&edge.vendor, "INVITE", "allfailed", &edge.k);
    early(&at_cheap, &vendor);
    reply_coded(&sock, &edge, 183);
    edge.send_from_vendor(&vendor_reply(
        &at_cheap,
        "503 Service Unavailable",
        "ringing",
        port,
        "",
    ));
    let at_dear = next_request(&edge.dear, "INVITE", "allfailed", &edge.k);
    let failed = reply_to(&at_dear, "503 Service Unavailable", "");
    edge.dear
        .send_to(failed.as_bytes(), ("127.0.0.1", edge.k.port))
        .unwrap();
    assert!(final_reply(&sock, &edge.k, "allfailed").code >= 400);
    assert_forgotten(&edge, &format!("allfailed-{lport}"), "every vendor failed");
    // The vendor's BYE.
    let (sock, lport) = raw_socket();
    let offer = audio_sdp("c", 1, caller.audio_port());
    let (dialog, _, _) = edge.call((&sock, lport), "vendorbye", &offer, vendor.audio_port());
    assert!(
        kept(&edge).contains(&format!("vendorbye-{lport}")),
        "{}",
        kept(&edge)
    );
    edge.send_from_vendor(&dialog.vendor_request("BYE", 2, port));
    let bye = next_request(&sock, "BYE", "vendorbye", &edge.k);
    send_raw(&sock, &edge.k, &reply_to(&bye, "200 OK", ""));
    assert_forgotten(&edge, &format!("vendorbye-{lport}"), "vendor's BYE");
    // The edge's own BYEs.
    let (sock, lport) = raw_socket();
    edge.call((&sock, lport), "edgebye", &offer, vendor.audio_port());
    assert!(
        kept(&edge).contains(&format!("edgebye-{lport}")),
        "{}",
        kept(&edge)
    );
    let call_id = format!("edgebye-{lport}");
    let caller_tag = format!("edgebye{lport}");
    (edge
        .k
        .kamcmd(&["dlg.terminate_dlg", &call_id, &caller_tag, "vendor"]))
    .unwrap();
    assert_forgotten(&edge, &format!("edgebye-{lport}"), "dlg.terminate_dlg");
}

/// A refused offer in a call nothing was kept of (its exchange's SDP over 4 kB): the
/// 488 reaches the offerer, nothing is replayed and no error is logged.
#[test]
fn the_shipped_config_passes_a_refusal_when_nothing_was_kept() {
    let edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let padding: String = (0..80).map(|n| format!("a=x-pad:{n:064}\r\n")).collect();
    let offer = audio_sdp("c", 1, caller.audio_port()) + &padding;
    let (dialog, _, _) = edge.call((&sock, lport), "unkept", &offer, vendor.audio_port());
    assert!(
        !kept(&edge).contains(&format!("name: unkept-{lport}\n")),
        "{}",
        kept(&edge)
    );
    let t38 = t38_sdp("o", 2, caller.fax_port());
    let (_, reply) = edge.reinvite((&sock, &dialog), Side::Caller, 2, &t38, None);
    assert_eq!(reply.code, 488, "{}", edge.k.log());
    let log = edge.k.log();
    assert!(!log.contains("warp_media_undo"), "{log}");
    edge.hang_up((&sock, &dialog), 3);
}

/// RTPENGINE_SOCK naming two rtpengines, with weights: each call's media is on one of
/// them (the rtpengine module picks), and a refused offer is undone on that one, G.711
/// both ways after, in every call.
#[test]
fn the_shipped_config_undoes_a_refused_offer_on_the_rtpengine_that_has_the_call() {
    let other_dir = tempfile::tempdir().unwrap();
    let other = Rtpengine::start(other_dir.path());
    let edge = FaxEdge::start_with(|r: &Rtpengine| {
        format!(
            "udp:127.0.0.1:{}=1 udp:127.0.0.1:{}=1",
            other.ng_port, r.ng_port
        )
    });
    keeps_audio_after_a_refused_t38_offer(&edge, Side::Caller);
}
