//! WITH_RTPENGINE: the media of calls anchored in rtpengine (routed in place or after the
//! dip, topology hidden or not), re-INVITEs anchored too, a caller's SRTP bridged to a
//! vendor's RTP, and the media session deleted however the call ends.

use super::{end_the_only_dialog, start_shipped_with_rtpengine, with_topoh, Routing};
use crate::support;
use crate::support::rtpengine::wait_for_no_media_sessions;
use crate::support::sdp::{assert_plain_rtp, assert_srtp, audio_ports, srtp_offer};
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::udp::{
    assert_cancelled, body_of, final_reply, final_reply_text, finals_within, next_request,
    raw_invite_with_sdp, raw_request, raw_socket, reply_to, send_raw, with_sdp, InDialog,
};
use std::time::Duration;

/// The shipped config with WITH_RTPENGINE against a real rtpengine: both sides see
/// rtpengine's ports in the SDP, and the sessions are deleted with the BYE.
#[test]
fn the_shipped_config_anchors_media_in_rtpengine() {
    anchors_media_in_rtpengine(&Routing::direct(), &[]);
}

/// As [`the_shipped_config_anchors_media_in_rtpengine`], with WITH_TOPOH: the vendor's
/// answer and the BYE reach rtpengine under the caller's Call-ID (topoh unmasks before
/// the script runs), so the offer's session is answered and deleted.
#[test]
fn the_shipped_config_anchors_media_in_rtpengine_with_topology_hidden() {
    anchors_media_in_rtpengine(&Routing::direct(), &with_topoh());
}

/// As [`the_shipped_config_anchors_media_in_rtpengine`], for calls dipped in an async
/// worker (WITH_LRN_DIP): their offer is made in the resumed route, to tm a failure
/// route, where `rtpengine_manage()` would delete the media rather than offer it.
#[test]
fn the_shipped_config_anchors_the_media_of_calls_dipped_in_an_async_worker() {
    anchors_media_in_rtpengine(&Routing::dipped(), &[]);
}

/// Three calls with SDP, routed by `routing`, through the shipped config with
/// WITH_RTPENGINE and `more` defines, their media checked.
fn anchors_media_in_rtpengine(routing: &Routing, more: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let cheap_port = data.cheap.0;
    let _vendor = Uas::start(dir.path(), cheap_port, Answer::AcceptMedia);
    // Redis nowhere: this test is about media, CDR events just go to the spool.
    let defines = routing.defines(more);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &defines);
    let uac_log = dir.path().join("uac-messages.log");
    let trace = [
        "-trace_msg".to_string(),
        "-message_file".into(),
        uac_log.display().to_string(),
    ];
    let extra: Vec<&str> = trace
        .iter()
        .map(String::as_str)
        .chain(routing.sipp())
        .collect();
    let status = Uac {
        media: true,
        extra: &extra,
        ..Uac::new(k.port, dir.path(), 3, 10)
    }
    .spawn()
    .wait()
    .unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());

    // The vendor got rtpengine's port instead of the caller's 6000, the caller got
    // rtpengine's instead of the vendor's 7000.
    let offered: Vec<u16> = audio_ports(&dir.path().join(format!("uas-{cheap_port}.log")))
        .into_iter()
        .filter(|&p| p != 7000) // its own answers
        .collect();
    let answered: Vec<u16> = audio_ports(&uac_log)
        .into_iter()
        .filter(|&p| p != 6000) // its own offers
        .collect();
    assert_eq!(
        (offered.len(), answered.len()),
        (3, 3),
        "{offered:?} {answered:?}"
    );
    for port in offered.iter().chain(&answered) {
        assert!(
            rtpengine.ports.contains(port),
            "{port} not from rtpengine\n{}",
            k.log()
        );
    }
    // Each call offered by the caller and answered by the vendor: the vendor's SDP is
    // an answer to rtpengine, not an offer of its own.
    let commands = rtpengine.commands();
    assert_eq!(
        (commands.get("offer"), commands.get("answer")),
        (Some(&3), Some(&3)),
        "{commands:?}"
    );
    // Deleted with each BYE: no call left in rtpengine.
    wait_for_no_media_sessions(&rtpengine, &k);
    routing.took(&k, 3);
}

/// No vendor can be sent to: the caller gets one final reply (tm's), not a stateless
/// one beside it, and the media session offered for the call is deleted.
#[test]
fn the_shipped_config_answers_once_and_frees_the_media_when_no_vendor_can_be_sent_to() {
    answers_once_when_no_vendor_can_be_sent_to(&Routing::direct());
}

/// As [`the_shipped_config_answers_once_and_frees_the_media_when_no_vendor_can_be_sent_to`],
/// for a call dipped in an async worker: the same reply as routed in place.
#[test]
fn the_shipped_config_answers_once_when_no_vendor_can_be_sent_to_after_the_dip() {
    answers_once_when_no_vendor_can_be_sent_to(&Routing::dipped());
}

fn answers_once_when_no_vendor_can_be_sent_to(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data {
        uri_params: (";transport=sctp", ";transport=sctp"),
        ..support::dataset::Data::with_gateways()
    };
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &routing.defines(&[]));
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, routing.number(), "unsent");
    send_raw(&sock, &k, &invite);
    let finals = finals_within(&sock, Duration::from_secs(2));
    assert_eq!(finals.len(), 1, "{finals:#?}\n{}", k.log());
    assert!(finals.iter().all(|(code, _)| *code == 500), "{finals:?}");
    wait_for_no_media_sessions(&rtpengine, &k);
    assert_eq!(k.rpc("warp.stats")["limits.active"], "0");
    routing.took(&k, 1);
}

/// A caller's CANCEL while the vendor rings: 487, and the media session is deleted.
#[test]
fn the_shipped_config_frees_the_media_of_a_cancelled_call() {
    frees_the_media_of_a_cancelled_call(&Routing::direct());
}

/// As [`the_shipped_config_frees_the_media_of_a_cancelled_call`], for a call dipped in
/// an async worker: its media was offered in the resumed route.
#[test]
fn the_shipped_config_frees_the_media_of_a_cancelled_call_after_the_dip() {
    frees_the_media_of_a_cancelled_call(&Routing::dipped());
}

fn frees_the_media_of_a_cancelled_call(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Rings);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &routing.defines(&[]));
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, routing.number(), "cancelled");
    send_raw(&sock, &k, &invite);
    vendor.wait_for("INVITE", &k);
    let cancel = raw_request(k.port, lport, "CANCEL", "+12125550123", "cancelled");
    send_raw(&sock, &k, &cancel);
    assert_cancelled(&sock, &k);
    wait_for_no_media_sessions(&rtpengine, &k);
    routing.took(&k, 1);
}

/// A re-INVITE (hold, a codec change) keeps the media in rtpengine: neither side sees
/// the other's own address.
#[test]
fn the_shipped_config_anchors_a_reinvite_in_rtpengine() {
    anchors_a_reinvite_in_rtpengine(&Routing::direct());
}

/// As [`the_shipped_config_anchors_a_reinvite_in_rtpengine`], for a call dipped in an
/// async worker: its dialog and its media were made in the resumed route.
#[test]
fn the_shipped_config_anchors_a_reinvite_in_rtpengine_after_the_dip() {
    anchors_a_reinvite_in_rtpengine(&Routing::dipped());
}

fn anchors_a_reinvite_in_rtpengine(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &routing.defines(&[]));
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, routing.number(), "reinvite");
    let (dialog, ok) = InDialog::answered(&sock, &k, lport, ("reinvite", data.cheap.0), &invite);
    let ok = support::Reply::parse(&ok);
    assert!(dialog.route.is_some(), "the edge records its route");
    let in_dialog = |method: &str, cseq: u32, body: &str| dialog.request(method, cseq, body);
    let hold = "v=0\r\no=c 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 6002 RTP/AVP 0\r\na=sendonly\r\n";
    let body = format!(
        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
        hold.len()
    );
    send_raw(&sock, &k, &in_dialog("INVITE", 2, &body));
    let ok2 = final_reply(&sock, &k, "reinvite");
    assert_eq!(ok2.code, 200, "{}", k.log());
    let audio = |sdp: &str| -> u16 {
        sdp.lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let invites = vendor.received("INVITE");
    assert_eq!(invites.len(), 2);
    for port in [
        audio(&invites[0]),
        audio(&invites[1]),
        audio(&ok.body),
        audio(&ok2.body),
    ] {
        assert!(
            rtpengine.ports.contains(&port),
            "{port} not from rtpengine\n{}",
            k.log()
        );
    }
    routing.took(&k, 1);
}

/// A caller that offers SRTP (RTP/SAVP, SDES keys) reaches a vendor that takes plain
/// RTP, as wholesale vendors do: rtpengine bridges them. The vendor is offered RTP/AVP
/// with no key; the caller gets RTP/SAVP with rtpengine's own key, in the answer and in
/// a re-INVITE either side sends later.
#[test]
fn the_shipped_config_bridges_a_callers_srtp_to_a_vendors_rtp() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &[]);
    let (sock, lport) = raw_socket();
    let srtp = srtp_offer;
    let request = raw_request(k.port, lport, "INVITE", "+12125550123", "srtp");
    let invite = with_sdp(&request, &srtp(1, 6000));
    let (dialog, ok) = InDialog::answered(&sock, &k, lport, ("srtp", data.cheap.0), &invite);
    let ok = support::Reply::parse(&ok);
    // Plain RTP to the vendor, SRTP back to the caller, each on rtpengine's ports.
    let to_vendor = vendor.received("INVITE");
    assert_eq!(to_vendor.len(), 1);
    assert_plain_rtp(&to_vendor[0], &rtpengine, &k);
    assert_srtp(&ok.body, &rtpengine, &k);
    // The caller's re-INVITE (a new key): the same, both ways.
    let body = srtp(2, 6002);
    let content = format!(
        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    send_raw(&sock, &k, &dialog.request("INVITE", 2, &content));
    let reply = final_reply(&sock, &k, "srtp");
    assert_eq!(reply.code, 200, "{}", k.log());
    let to_vendor = vendor.received("INVITE");
    assert_eq!(to_vendor.len(), 2);
    assert_plain_rtp(&to_vendor[1], &rtpengine, &k);
    assert_srtp(&reply.body, &rtpengine, &k);
    // The vendor's re-INVITE in plain RTP: SRTP to the caller, the caller's SRTP
    // answer plain RTP to the vendor.
    let vsock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    vsock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let vport = vsock.local_addr().unwrap().port();
    let rtp = "v=0\r\no=v 1 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 7002 RTP/AVP 0\r\n";
    let reinvite = with_sdp(&dialog.vendor_request("INVITE", 5, vport), rtp);
    vsock
        .send_to(reinvite.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
    let at_caller = next_request(&sock, "INVITE", "srtp", &k);
    assert_srtp(body_of(&at_caller), &rtpengine, &k);
    let contact = format!("Contact: <sip:caller@127.0.0.1:{lport}>\r\n");
    let answer = with_sdp(&reply_to(&at_caller, "200 OK", &contact), &srtp(3, 6004));
    send_raw(&sock, &k, &answer);
    let at_vendor = final_reply_text(&vsock, &k, "srtp-");
    assert!(at_vendor.starts_with("SIP/2.0 200 "), "{at_vendor}");
    assert_plain_rtp(body_of(&at_vendor), &rtpengine, &k);
    // To the vendor's Contact as its re-INVITE refreshed it (RFC 3261 12.2.2): the
    // edge relays a request of a call to that side's current target alone.
    let refreshed = InDialog {
        vendor: vport,
        ..dialog
    };
    send_raw(
        &sock,
        &k,
        &refreshed.request("BYE", 3, "Content-Length: 0\r\n\r\n"),
    );
    wait_for_no_media_sessions(&rtpengine, &k);
}

/// A vendor's refusal of a re-INVITE (488 with the SDP it would take, RFC 3261
/// 21.4.26) leaves the call as it was: its media stays in rtpengine until the BYE.
#[test]
fn the_shipped_config_keeps_the_media_of_a_call_whose_reinvite_was_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let plays = support::vendor::Plays::RefusesReoffers;
    let _vendor = support::vendor::Vendor::start(data.cheap.0, plays);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &[]);
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, "+12125550123", "refused");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("refused", data.cheap.0), &invite);
    let offer = &invite[invite.find("Content-Type:").unwrap()..];
    send_raw(&sock, &k, &dialog.request("INVITE", 2, offer));
    assert_eq!(final_reply(&sock, &k, "refused").code, 488, "{}", k.log());
    let list = rtpengine.ng("d7:command4:liste").unwrap_or_default();
    assert!(
        list.contains(&format!("refused-{lport}")),
        "the media went: {list}\n{}",
        k.log()
    );
    send_raw(
        &sock,
        &k,
        &dialog.request("BYE", 3, "Content-Length: 0\r\n\r\n"),
    );
    wait_for_no_media_sessions(&rtpengine, &k);
}

/// A call the edge ends itself (its dialog timed out, or an operator's `dlg.end_dlg`)
/// frees its media session with the BYEs, as one a side hung up does.
#[test]
fn the_shipped_config_frees_the_media_of_a_call_it_ends_itself() {
    frees_the_media_of_a_call_it_ends_itself(&Routing::direct());
}

/// As [`the_shipped_config_frees_the_media_of_a_call_it_ends_itself`], for a call
/// dipped in an async worker: its dialog and its media were made in the resumed route.
#[test]
fn the_shipped_config_frees_the_media_of_a_call_it_ends_itself_after_the_dip() {
    frees_the_media_of_a_call_it_ends_itself(&Routing::dipped());
}

fn frees_the_media_of_a_call_it_ends_itself(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &routing.defines(&[]));
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, routing.number(), "ended");
    InDialog::answered(&sock, &k, lport, ("ended", data.cheap.0), &invite);
    end_the_only_dialog(&k);
    vendor.wait_for("BYE", &k);
    wait_for_no_media_sessions(&rtpengine, &k);
    routing.took(&k, 1);
}
