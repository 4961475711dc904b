//! A T.38 re-INVITE refused (488) leaves the call's G.711 audio as it was, both ways on
//! the ports each side already had, with no re-offer: rtpengine (10.5) had applied the
//! offer at once (sipwise/rtpengine#1046), and the edge puts it back to the call's last
//! offer and answer (route[MEDIA_KEEP], failure_route[MEDIA_UNDO], warp_media_undo()).
//! What the edge kept of a call goes at its end.

use super::fax::{audio_sdp, media_port, rtp, sdp_body, t38_sdp, Body, FaxEdge, Media, Side};
use crate::support::udp::{raw_socket, InDialog};
use std::net::UdpSocket;

/// Calls a test makes on one edge: more would be refused as a hairpin loop (the same
/// numbers, LOOP_LIMIT).
const CALLS: usize = 5;

/// `CALLS` calls on G.711, audio relayed both ways, whose T.38 offer from `side` the
/// other side refuses (488): each call's audio then passes both ways on the same ports
/// (the refusal stopped the offerer's inbound audio in every call before), the call
/// ends cleanly, and the exchange kept of it is gone with it.
pub(super) fn keeps_audio_after_a_refused_t38_offer(edge: &FaxEdge, side: Side) {
    for n in 0..CALLS {
        let call: &'static str = Box::leak(format!("refused{n}").into_boxed_str());
        let (sock, lport) = raw_socket();
        let (caller, vendor) = (Media::new(), Media::new());
        let offer = audio_sdp("c", 1, caller.audio_port());
        let (dialog, at_vendor, at_caller) =
            edge.call((&sock, lport), call, &offer, vendor.audio_port());
        let to_vendor = media_port(&at_caller, "audio").unwrap();
        let to_caller = media_port(&at_vendor, "audio").unwrap();
        let call_id = format!("{call}-{lport}");
        assert!(kept(edge).contains(&call_id), "{}", edge.k.log());
        let media = ((&caller, to_vendor), (&vendor, to_caller));
        refused_t38_keeps_audio(edge, (&sock, &dialog), side, (2, sdp_body), media);
        edge.hang_up((&sock, &dialog), 3);
        assert!(!kept(edge).contains(&call_id), "{}", kept(edge));
    }
    assert!(
        !edge.k.log().contains("warp_media_undo: "),
        "{}",
        edge.k.log()
    );
}

/// In `call`, G.711 relayed both ways (the caller's `to_vendor`, the vendor's
/// `to_caller`), `side` offers T.38 (CSeq `cseq`, in a body as `body` makes it:
/// [`sdp_body`], [`multipart`](super::fax::multipart)) and the other side refuses it
/// (488): G.711 still passes both ways, on the same ports, no re-offer.
pub(super) fn refused_t38_keeps_audio(
    edge: &FaxEdge,
    call: (&UdpSocket, &InDialog),
    side: Side,
    (cseq, body): (u32, Body),
    ((caller, to_vendor), (vendor, to_caller)): ((&Media, u16), (&Media, u16)),
) {
    edge.relays(&caller.audio, to_vendor, &vendor.audio, rtp);
    edge.relays(&vendor.audio, to_caller, &caller.audio, rtp);
    let offerer = match side {
        Side::Caller => caller,
        Side::Vendor => vendor,
    };
    let t38 = body(&t38_sdp("o", cseq, offerer.fax_port()));
    let (_, reply) = edge.reinvite_with(call, side, (cseq, &t38), None);
    assert_eq!(reply.code, 488, "{side:?}: {}", edge.k.log());
    edge.relays(&caller.audio, to_vendor, &vendor.audio, rtp);
    edge.relays(&vendor.audio, to_caller, &caller.audio, rtp);
}

/// What the edge keeps of its calls' offers and answers (the media_kept htable).
pub(super) fn kept(edge: &FaxEdge) -> String {
    edge.k
        .kamcmd(&["htable.dump", "media_kept"])
        .unwrap_or_default()
}

/// The vendor refuses the caller's T.38 offer: the caller's audio, which rtpengine had
/// moved to T.38, still reaches it.
#[test]
fn the_shipped_config_keeps_audio_both_ways_when_the_vendor_refuses_t38() {
    keeps_audio_after_a_refused_t38_offer(&FaxEdge::start(), Side::Caller);
}

/// The caller refuses the vendor's T.38 offer: the vendor's audio still reaches it.
#[test]
fn the_shipped_config_keeps_audio_both_ways_when_the_caller_refuses_t38() {
    keeps_audio_after_a_refused_t38_offer(&FaxEdge::start(), Side::Vendor);
}
