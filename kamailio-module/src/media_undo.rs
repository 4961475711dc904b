//! `warp_media_undo(socket, kept)`: puts rtpengine back to a call's last offer and answer
//! once a later offer was refused. rtpengine (10.5) applies an offer at once and has no
//! word for a failed one (sipwise/rtpengine#1046): a T.38 re-INVITE refused 488 left the
//! offerer's side on T.38 ports, its old audio stopped one way. The old offer and answer
//! are sent again over ng, from the same side with the same flags; what rtpengine
//! answers is dropped (both sides keep the SDP they had). The rtpengine module cannot do
//! it: it reads the SDP from the message, or from one pseudo-variable for every call.
//!
//! `socket` is RTPENGINE_SOCK as the rtpengine module reads it: of several rtpengines,
//! the one that knows the call (an ng `query`) is sent the exchange; none knowing it
//! (or none answering) is logged and leaves the call as it is.
//!
//! `kept` is what kamailio.cfg kept of the last exchange (route[MEDIA_KEEP]): a first line
//! `<from-tag> <to-tag> <offer's address family> <answer's address family> <caller|vendor>`
//! (who offered), then the offer's SDP, a line `-`, and the answer's.

use crate::guard;
use crate::kstr;
use crate::stats::Func;
use kamailio_sys as k;
use std::ffi::{c_char, c_int};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How long rtpengine gets to answer each command (the rtpengine module's default).
const NG_TIMEOUT: Duration = Duration::from_secs(1);

/// One exchange as kept.
#[derive(Debug, PartialEq)]
struct Kept<'a> {
    from_tag: &'a str,
    to_tag: &'a str,
    offer_family: &'a str,
    answer_family: &'a str,
    caller_offered: bool,
    offer: String,
    answer: String,
}

fn parse(kept: &str) -> Result<Kept<'_>, String> {
    let (head, sdps) = kept.split_once('\n').ok_or("no SDP kept")?;
    let fields: Vec<&str> = head.split_whitespace().collect();
    let [from_tag, to_tag, offer_family, answer_family, offerer] = fields[..] else {
        return Err(format!("kept exchange's first line unreadable: {head}"));
    };
    let (offer, answer) = sdps
        .split_once("\n-\n")
        .or_else(|| sdps.split_once("\n-\r\n"))
        .ok_or("kept exchange has no answer")?;
    Ok(Kept {
        from_tag,
        to_tag,
        offer_family,
        answer_family,
        caller_offered: offerer == "caller",
        offer: sdp_lines(offer),
        answer: sdp_lines(answer),
    })
}

/// `sdp` ending with one CRLF, as it came (the separator took its last line break).
fn sdp_lines(sdp: &str) -> String {
    format!("{}\r\n", sdp.trim_end())
}

/// The profile of `sdp`'s first audio (`RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...).
fn audio_profile(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().nth(1))
}

fn bencoded(text: &str) -> String {
    format!("{}:{text}", text.len())
}

/// The ng `command` (offer or answer) of `sdp`, its media addresses of `family`, on
/// `profile` (as the edge's own commands: plain RTP to the vendor, the caller's own
/// profile to the caller).
fn ng_command(
    kept: &Kept,
    command: &str,
    sdp: &str,
    family: &str,
    profile: &str,
    call_id: &str,
) -> String {
    // Keys in bencode's sorted order.
    format!(
        "d14:address-family{}7:call-id{}7:command{}8:from-tag{}7:replacel6:origin18:session-connectione3:sdp{}6:to-tag{}18:transport-protocol{}e",
        bencoded(family),
        bencoded(call_id),
        bencoded(command),
        bencoded(kept.from_tag),
        bencoded(sdp),
        bencoded(kept.to_tag),
        bencoded(profile),
    )
}

/// The rtpengines `socket` names, as the rtpengine module's rtpengine_sock does: one or
/// more `udp:host:port` (`udp6:`), each perhaps with a `=weight`, space-separated, after
/// a set's `N ==`.
fn instances(socket: &str) -> Vec<&str> {
    socket
        .split_whitespace()
        .filter(|t| *t != "==" && !t.chars().all(|c| c.is_ascii_digit()))
        .map(|t| match t.rsplit_once('=') {
            Some((instance, weight)) if weight.chars().all(|c| c.is_ascii_digit()) => instance,
            _ => t,
        })
        .collect()
}

/// An ng control socket's address (`udp:host:port`, `udp6:[addr]:port`).
fn address(instance: &str) -> Result<SocketAddr, String> {
    let address = instance
        .strip_prefix("udp:")
        .or_else(|| instance.strip_prefix("udp6:"))
        .unwrap_or(instance);
    (address.to_socket_addrs())
        .map_err(|e| format!("{instance}: {e}"))?
        .next()
        .ok_or_else(|| format!("{instance}: no address"))
}

/// Sends `command` to rtpengine at `to` and waits for its reply: an error unless "ok".
fn send(to: SocketAddr, command: &str) -> Result<(), String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let local = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
    let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(NG_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let cookie = format!("warp{}-{}", std::process::id(), NEXT.fetch_add(1, Relaxed));
    let request = format!("{cookie} {command}");
    sock.send_to(request.as_bytes(), to)
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 65535];
    loop {
        let n = sock
            .recv(&mut buf)
            .map_err(|e| format!("rtpengine at {to}: {e}"))?;
        let reply = String::from_utf8_lossy(&buf[..n]);
        let Some(reply) = reply.strip_prefix(&format!("{cookie} ")) else {
            continue;
        };
        if reply.contains("6:result2:ok") {
            return Ok(());
        }
        return Err(format!("rtpengine at {to} refused: {reply}"));
    }
}

/// The rtpengine of those `socket` names that has call `call_id`: the one alone, or the
/// first of several that knows the call (the rtpengine module picked it by a hash of the
/// Call-ID and the weights): an offer sent to another would open the call there.
fn instance_of(socket: &str, call_id: &str) -> Result<SocketAddr, String> {
    let named = instances(socket);
    if let [one] = named[..] {
        return address(one);
    }
    let query = format!("d7:call-id{}7:command5:querye", bencoded(call_id));
    let mut why = format!("no rtpengine in \"{socket}\"");
    for instance in named {
        match address(instance).and_then(|to| send(to, &query).map(|()| to)) {
            Ok(to) => return Ok(to),
            Err(e) => why = format!("no rtpengine of \"{socket}\" has the call ({e})"),
        }
    }
    Err(why)
}

fn warp_media_undo(call_id: &str, socket: &str, kept: &str) -> Result<bool, String> {
    let kept = parse(kept)?;
    let rtpengine = instance_of(socket, call_id)?;
    let (caller_sdp, _) = if kept.caller_offered {
        (&kept.offer, &kept.answer)
    } else {
        (&kept.answer, &kept.offer)
    };
    let caller_profile = audio_profile(caller_sdp).unwrap_or("RTP/AVP");
    // The offer goes to the answerer, the answer to the offerer.
    let (to_answerer, to_offerer) = if kept.caller_offered {
        ("RTP/AVP", caller_profile)
    } else {
        (caller_profile, "RTP/AVP")
    };
    let offer = ng_command(
        &kept,
        "offer",
        &kept.offer,
        kept.offer_family,
        to_answerer,
        call_id,
    );
    send(rtpengine, &offer)?;
    let answer = ng_command(
        &kept,
        "answer",
        &kept.answer,
        kept.answer_family,
        to_offerer,
        call_id,
    );
    send(rtpengine, &answer)?;
    Ok(true)
}

/// kamailio.cfg: `warp_media_undo(RTPENGINE_SOCK, "$sht(media_kept=>$ci)")`, both fixed
/// up by `fixup_spve_null`.
pub unsafe extern "C" fn w_warp_media_undo(
    msg: *mut k::sip_msg,
    socket: *mut c_char,
    kept: *mut c_char,
) -> c_int {
    guard::script(Func::MediaUndo, msg, |m| {
        // SAFETY: both are the fparam_t fixup_spve_null built for this call site.
        let socket = unsafe { kstr::param(m.raw(), socket) }.ok_or("cannot evaluate the socket")?;
        let kept =
            unsafe { kstr::param(m.raw(), kept) }.ok_or("cannot evaluate the exchange kept")?;
        let call_id = m.call_id().ok_or("no Call-ID")?;
        warp_media_undo(&call_id, &socket, &kept)
    })
}

/// KEMI: `KSR.warp.warp_media_undo(socket, kept)`.
pub unsafe extern "C" fn ki_warp_media_undo(
    msg: *mut k::sip_msg,
    socket: *mut k::str_,
    kept: *mut k::str_,
) -> c_int {
    // SAFETY: app_lua passes strs valid during the call.
    let (socket, kept) = unsafe { (socket.as_ref(), kept.as_ref()) };
    guard::kemi(Func::MediaUndo, msg, |m| {
        let (socket, kept) = (socket.ok_or("no socket")?, kept.ok_or("no exchange kept")?);
        let call_id = m.call_id().ok_or("no Call-ID")?;
        warp_media_undo(&call_id, &kstr::as_str(socket), &kstr::as_str(kept))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\nm=audio 4000 RTP/SAVP 0\r\n";
    const ANSWER: &str = "v=0\r\nm=audio 5000 RTP/AVP 0\r\n";

    #[test]
    fn reads_a_kept_exchange() {
        let kept = format!("c1 v1 IP4 IP6 caller\n{OFFER}\n-\n{ANSWER}");
        let kept = parse(&kept).unwrap();
        assert_eq!((kept.from_tag, kept.to_tag), ("c1", "v1"));
        assert_eq!((kept.offer_family, kept.answer_family), ("IP4", "IP6"));
        assert!(kept.caller_offered);
        assert_eq!((kept.offer.as_str(), kept.answer.as_str()), (OFFER, ANSWER));
        assert_eq!(audio_profile(&kept.offer), Some("RTP/SAVP"));
    }

    #[test]
    fn names_each_rtpengine_as_the_rtpengine_module_reads_them() {
        assert_eq!(instances("udp:127.0.0.1:2223"), ["udp:127.0.0.1:2223"]);
        assert_eq!(
            instances("udp:a:2223=2 udp6:[::1]:2223"),
            ["udp:a:2223", "udp6:[::1]:2223"]
        );
        assert_eq!(instances("1 == udp:b:2223=1"), ["udp:b:2223"]);
        assert!(instances(" ").is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(parse("c1 v1 IP4\nv=0\n-\nv=0").is_err());
        assert!(parse("c1 v1 IP4 IP4 caller\nv=0\r\n").is_err());
        assert!(parse("").is_err());
    }
}
