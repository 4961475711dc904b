//! A review of the STIR/SHAKEN attestation and fax (T.38) changes: an SRTP caller's
//! media offered in a reply, to a re-INVITE that came without SDP, before and after the
//! call faxed (T.38): the caller gets SRTP, the vendor plain RTP; and SDP in a
//! multipart/mixed body (SIP-T), a fax re-INVITE's too, anchored as any other.

use super::fax::{
    audio_sdp, media_port, multipart, sdp_body, srtp_call, t38_sdp, udptl, FaxEdge, Media,
};
use crate::support::sdp::srtp_offer;
use crate::support::udp::{body_of, next_request, raw_socket, send_raw};

/// The vendor re-INVITEs (CSeq 3) without SDP, asking for an offer (RFC 3261 14.2): the
/// caller's SRTP offer in its 200 reaches the vendor as plain RTP, no key (vendors take
/// RTP/AVP alone), and the vendor's answer in its ACK reaches the caller as SRTP with
/// rtpengine's key. Before the call faxed and after (a fax gateway ending T.38 so).
#[test]
fn the_shipped_config_offers_a_vendor_plain_rtp_in_an_srtp_callers_reply_to_a_reinvite_without_sdp()
{
    for faxed in [false, true] {
        let edge = FaxEdge::start();
        let (sock, lport) = raw_socket();
        let (caller, vendor) = (Media::new(), Media::new());
        let call = "lateoffer";
        let dialog = srtp_call(&edge, (&sock, lport), call, (&caller, &vendor), faxed);
        let offer = srtp_offer(3, caller.audio_port());
        let answer = audio_sdp("v", 3, vendor.audio_port());
        let (at_caller, at_vendor, ack) =
            edge.late_offer_from_vendor((&sock, &dialog), &offer, &answer);
        assert_eq!(body_of(&at_caller), "", "{}", edge.k.log());
        assert_eq!(at_vendor.code, 200, "{}", edge.k.log());
        edge.assert_audio(&at_vendor.body, "RTP/AVP");
        assert!(
            !at_vendor.body.contains("a=crypto"),
            "faxed {faxed}: {}",
            at_vendor.body
        );
        edge.assert_audio(&ack, "RTP/SAVP");
        assert!(ack.contains("a=crypto:1 "), "faxed {faxed}: {ack}");
        edge.hang_up((&sock, &dialog), 4);
    }
}

/// The caller on SRTP re-INVITEs (CSeq 2) without SDP: the vendor's plain RTP offer in
/// its 200 reaches the caller as SRTP with rtpengine's key, and the caller's SRTP answer
/// in its ACK reaches the vendor as plain RTP. Before the call faxed and after: rtpengine
/// 10.5 forgets the caller's profile once its media turned T.38 (route[FAX_PROFILE]).
#[test]
fn the_shipped_config_offers_an_srtp_caller_srtp_in_a_vendors_reply_to_a_reinvite_without_sdp() {
    for faxed in [false, true] {
        let edge = FaxEdge::start();
        let (sock, lport) = raw_socket();
        let (caller, vendor) = (Media::new(), Media::new());
        let call = "callerlate";
        let dialog = srtp_call(&edge, (&sock, lport), call, (&caller, &vendor), faxed);
        let cseq = 3;
        send_raw(
            &sock,
            &edge.k,
            &dialog.request("INVITE", cseq, "Content-Length: 0\r\n\r\n"),
        );
        let invite = next_request(&edge.vendor, "INVITE", call, &edge.k);
        assert_eq!(body_of(&invite), "", "{}", edge.k.log());
        let offer = audio_sdp("v", 3, vendor.audio_port());
        edge.vendor_replies(&invite, "200 OK", &offer);
        let at_caller = edge.final_at(&sock, call);
        assert_eq!(at_caller.code, 200, "{}", edge.k.log());
        edge.assert_audio(&at_caller.body, "RTP/SAVP");
        assert!(
            at_caller.body.contains("a=crypto:1 "),
            "faxed {faxed}: {}",
            at_caller.body
        );
        let answer = srtp_offer(4, caller.audio_port());
        send_raw(
            &sock,
            &edge.k,
            &dialog.request("ACK", cseq, &sdp_body(&answer)),
        );
        let ack = next_request(&edge.vendor, "ACK", call, &edge.k);
        edge.assert_audio(body_of(&ack), "RTP/AVP");
        assert!(!body_of(&ack).contains("a=crypto"), "faxed {faxed}: {ack}");
        edge.hang_up((&sock, &dialog), 4);
    }
}

/// SDP in a multipart/mixed body (SIP-T's SDP and ISUP) is anchored as any other: a
/// caller's INVITE so reaches the vendor on rtpengine's ports, and so does its
/// re-INVITE to T.38, whose UDPTL then flows through rtpengine both ways. (rtpengine
/// rewrites the SDP part; before, such a body passed untouched, the caller's own
/// address given the vendor.)
#[test]
fn the_shipped_config_anchors_the_sdp_of_a_multipart_body() {
    let edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let call = "sipt";
    let invite = edge.invite(
        lport,
        call,
        &multipart(&audio_sdp("c", 1, caller.audio_port())),
    );
    let (dialog, to_vendor, _) = edge.call_with((&sock, lport), call, &invite, vendor.audio_port());
    assert!(to_vendor.contains("application/isup"), "{to_vendor}");
    edge.assert_audio(&to_vendor, "RTP/AVP");
    let offer = multipart(&t38_sdp("c", 2, caller.fax_port()));
    send_raw(&sock, &edge.k, &dialog.request("INVITE", 2, &offer));
    let at_vendor = next_request(&edge.vendor, "INVITE", call, &edge.k);
    let offered = body_of(&at_vendor);
    edge.assert_t38(offered);
    let answer = t38_sdp("v", 2, vendor.fax_port());
    edge.vendor_replies(&at_vendor, "200 OK", &answer);
    let reply = edge.final_at(&sock, call);
    assert_eq!(reply.code, 200, "{}", edge.k.log());
    edge.assert_t38(&reply.body);
    send_raw(
        &sock,
        &edge.k,
        &dialog.request("ACK", 2, "Content-Length: 0\r\n\r\n"),
    );
    let to_vendor = media_port(offered, "image").unwrap();
    let to_caller = media_port(&reply.body, "image").unwrap();
    edge.relays(&caller.fax, to_caller, &vendor.fax, udptl);
    edge.relays(&vendor.fax, to_vendor, &caller.fax, udptl);
    edge.hang_up((&sock, &dialog), 3);
}
