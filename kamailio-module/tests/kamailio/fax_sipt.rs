//! A SIP-T call (RFC 3204: SDP and ISUP in a multipart/mixed body, between wholesale
//! carriers), offer and answer multipart, whose T.38 re-INVITE is refused keeps its
//! G.711 both ways as a plain call does (fax_refused.rs): the edge keeps the SDP part of
//! each body (sdpops' `$sdp(body)`) and puts rtpengine back to it. Before, such a call's
//! exchange was not kept, and the refusal left its audio one way.

use super::fax::{audio_sdp, media_port, multipart, sdp_body, Body, FaxEdge, Media, Side};
use super::fax_refused::{kept, refused_t38_keeps_audio};
use crate::support::udp::raw_socket;

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
