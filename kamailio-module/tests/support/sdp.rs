//! SDP as the tests offer it, and what they check of the SDP the edge passed on: the audio
//! ports in a sipp message log, a caller's SRTP offer, RTP or SRTP on rtpengine's ports.

use super::rtpengine::Rtpengine;
use super::Kamailio;
use std::path::Path;

/// Ports of the `m=audio` lines in a sipp message log.
pub fn audio_ports(log: &Path) -> Vec<u16> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("m=audio "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// A caller's SRTP offer (SDP version `version`, audio on `port`) with its SDES key.
pub fn srtp_offer(version: u32, port: u16) -> String {
    format!(
        "v=0\r\no=c 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/SAVP 0\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{CALLER_KEY}\r\n"
    )
}

/// An SDES key (30 bytes, base64) of the caller's.
const CALLER_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

/// `sdp` offers or answers plain RTP on one of `rtpengine`'s ports, no key.
pub fn assert_plain_rtp(sdp: &str, rtpengine: &Rtpengine, k: &Kamailio) {
    let m = media_line(sdp, k);
    assert!(
        m.ends_with(" RTP/AVP 0") || m.contains(" RTP/AVP "),
        "{sdp}"
    );
    assert!(!sdp.contains("a=crypto"), "{sdp}");
    assert!(
        rtpengine.ports.contains(&media_port(&m)),
        "{sdp}\n{}",
        k.log()
    );
}

/// `sdp` offers or answers SRTP on one of `rtpengine`'s ports, with a key of its own.
pub fn assert_srtp(sdp: &str, rtpengine: &Rtpengine, k: &Kamailio) {
    let m = media_line(sdp, k);
    assert!(m.contains(" RTP/SAVP "), "{sdp}\n{}", k.log());
    assert!(
        sdp.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{sdp}"
    );
    assert!(
        !sdp.contains(CALLER_KEY),
        "the caller's own key came back: {sdp}"
    );
    assert!(
        rtpengine.ports.contains(&media_port(&m)),
        "{sdp}\n{}",
        k.log()
    );
}

fn media_line(sdp: &str, k: &Kamailio) -> String {
    sdp.lines()
        .find(|l| l.starts_with("m=audio "))
        .unwrap_or_else(|| panic!("no audio in {sdp:?}\n{}", k.log()))
        .trim_end()
        .to_owned()
}

fn media_port(m: &str) -> u16 {
    m.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}
