//! A SIP-T call (RFC 3204: SDP and ISUP in a multipart/mixed body, between wholesale
//! carriers), offer and answer multipart, whose T.38 re-INVITE is refused keeps its
//! G.711 both ways as a plain call does (fax_refused.rs): the edge keeps the SDP part of
//! each body (sdpops' `$sdp(body)`) and puts rtpengine back to it. Before, such a call's
//! exchange was not kept, and the refusal left its audio one way. What is kept lives as
//! long as the call may: MAX_CALL_DURATION (it was fixed at 4 h 1 min), and an answer
//! kept from a 183 while the call still rings.

use super::fax::{
    audio_sdp, its_socket, media_port, multipart, sdp_body, Body, FaxEdge, Media, Side,
};
use super::fax_refused::{kept, refused_t38_keeps_audio};
use super::review_s36::{invite, reply_coded, vendor_reply};
use crate::support::udp::{next_request, raw_socket, send_raw};
use std::time::Duration;

/// Four SIP-T calls on one edge, whose T.38 offer, from the caller then the vendor, in a
/// plain SDP body then a multipart one, the other side refuses (488): G.711 passes both
/// ways after, on the same ports, with no re-offer; the call ends cleanly and what was
/// kept of it goes.
#[test]
fn the_shipped_config_undoes_a_refused_offer_of_a_sip_t_call() {
    let edge = FaxEdge::start();
    let refusals: [(Side, Body); 4] = [
        (Side::Caller, sdp_body),
        (Side::Caller, multipart),
        (Side::Vendor, sdp_body),
        (Side::Vendor, multipart),
    ];
    for (n, (side, t38_body)) in refusals.into_iter().enumerate() {
        let call = format!("sipt{n}");
        let (sock, lport) = raw_socket();
        let (caller, vendor) = (Media::new(), Media::new());
        let offer = multipart(&audio_sdp("c", 1, caller.audio_port()));
        let invite = edge.invite(lport, &call, &offer);
        let answer = multipart(&audio_sdp("v", 1, vendor.audio_port()));
        let (dialog, at_vendor, at_caller) =
            edge.call_answered((&sock, lport), &call, &invite, &answer);
        assert!(at_caller.contains("application/isup"), "{at_caller}");
        let to_vendor = media_port(&at_caller, "audio").unwrap();
        let to_caller = media_port(&at_vendor, "audio").unwrap();
        let media = ((&caller, to_vendor), (&vendor, to_caller));
        refused_t38_keeps_audio(&edge, (&sock, &dialog), side, (2, t38_body), media);
        let call_id = format!("{call}-{lport}");
        let exchange = format!("name: {call_id}\n");
        assert!(kept(&edge).contains(&exchange), "{}", kept(&edge));
        edge.hang_up((&sock, &dialog), 3);
        assert!(!kept(&edge).contains(&call_id), "{}", kept(&edge));
    }
}

/// A SIP-T call whose vendor re-INVITEs without SDP: the caller's offer in its 200 and
/// the vendor's answer in its ACK, both multipart, are the exchange kept (from the
/// ACK), so the caller's T.38 offer the vendor then refuses is undone: G.711 both ways.
#[test]
fn the_shipped_config_undoes_a_refused_offer_after_a_sip_t_late_offer() {
    let edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let call = "siptlate";
    let offer = multipart(&audio_sdp("c", 1, caller.audio_port()));
    let invite = edge.invite(lport, call, &offer);
    let answer = multipart(&audio_sdp("v", 1, vendor.audio_port()));
    let (dialog, _, _) = edge.call_answered((&sock, lport), call, &invite, &answer);
    let (offer, answer) = (
        multipart(&audio_sdp("c", 2, caller.audio_port())),
        multipart(&audio_sdp("v", 2, vendor.audio_port())),
    );
    let (_, at_vendor, at_caller) =
        edge.late_offer_from_vendor_with((&sock, &dialog), (&offer, &answer));
    let to_vendor = media_port(&at_caller, "audio").unwrap();
    let to_caller = media_port(&at_vendor.body, "audio").unwrap();
    let media = ((&caller, to_vendor), (&vendor, to_caller));
    refused_t38_keeps_audio(&edge, (&sock, &dialog), Side::Caller, (2, multipart), media);
    let kept = kept(&edge);
    assert!(kept.contains(&format!("name: {call}-{lport}\n")), "{kept}");
    assert!(!kept.contains("/late"), "{kept}");
    edge.hang_up((&sock, &dialog), 3);
}

/// MAX_CALL_DURATION raised to a day: the htable of kept exchanges expires them a day
/// after they were kept (`htable.listTables`), not 4 h 1 min: a longer call kept its
/// exchange no longer than that.
#[test]
fn the_shipped_config_keeps_exchanges_as_long_as_a_raised_max_call_duration() {
    let day = ["MAX_CALL_DURATION=86400".to_string()];
    let edge = FaxEdge::start_defined(its_socket, &day);
    let tables = edge.k.kamcmd(&["htable.listTables"]).unwrap();
    let media_kept = tables
        .split("name: ")
        .find(|table| table.starts_with("media_kept"))
        .unwrap_or_else(|| panic!("no media_kept: {tables}"));
    assert!(media_kept.contains("expire: 86400\n"), "{media_kept}");
}

/// An answer kept from a 183 while the call rings outlives MAX_CALL_DURATION (2 s here)
/// past the htable's sweep (every 2 s): the call may be answered, by a 200 without SDP,
/// up to 180 s later (tm's max_inv_lifetime) and last MAX_CALL_DURATION from then.
#[test]
fn the_shipped_config_keeps_an_answer_from_a_183_while_the_call_rings() {
    let short = ["MAX_CALL_DURATION=2".to_string()];
    let edge = FaxEdge::start_defined(its_socket, &short);
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let call = "ringing183";
    send_raw(&sock, &edge.k, &invite(&edge, lport, call, &caller));
    let at_vendor = next_request(&edge.vendor, "INVITE", call, &edge.k);
    let answer = audio_sdp("v", 1, vendor.audio_port());
    let early = "183 Session Progress";
    let port = edge.vendor_port;
    edge.send_from_vendor(&vendor_reply(&at_vendor, early, "early", port, &answer));
    reply_coded(&sock, &edge, 183);
    let exchange = format!("name: {call}-{lport}\n");
    assert!(kept(&edge).contains(&exchange), "{}", kept(&edge));
    std::thread::sleep(Duration::from_secs(5));
    assert!(kept(&edge).contains(&exchange), "{}", kept(&edge));
}
