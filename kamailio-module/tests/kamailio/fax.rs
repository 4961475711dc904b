//! WITH_RTPENGINE carries fax (T.38, ITU-T T.38 Annex D, RFC 3362): a call answered on
//! G.711 that either side re-INVITEs to `m=image … udptl t38` reaches the other side as
//! T.38 on rtpengine's ports, its attributes kept, and its UDPTL datagrams are relayed
//! both ways; a re-INVITE back to audio is carried too, and a T.38 offer refused (488)
//! leaves the call up until its BYE. A caller on SRTP switches to T.38 and back as well.

use super::{event_kinds, rtpengine_defines_at, start_shipped};
use crate::support::dataset::Data;
use crate::support::redis::Redis;
use crate::support::rtpengine::{wait_for_no_media_sessions, Rtpengine};
use crate::support::sdp::srtp_offer;
use crate::support::udp::{
    body_of, next_request, raw_request, raw_socket, reply_to, send_raw, with_sdp, InDialog,
};
use crate::support::{Kamailio, Reply};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// The T.38 attributes a fax gateway typically offers (RFC 3362 / T.38 Annex D).
const T38_ATTRIBUTES: [&str; 6] = [
    "a=T38FaxVersion:0",
    "a=T38MaxBitRate:14400",
    "a=T38FaxRateManagement:transferredTCF",
    "a=T38FaxMaxBuffer:262",
    "a=T38FaxMaxDatagram:176",
    "a=T38FaxUdpEC:t38UDPRedundancy",
];

/// Which side of the call sends a re-INVITE.
#[derive(Clone, Copy, Debug)]
pub(super) enum Side {
    Caller,
    Vendor,
}

/// The shipped config with WITH_RTPENGINE, its CDR events in a real Redis, and a vendor
/// gateway played by the test on a raw socket (its SIP), so that it answers each offer
/// as the test says.
pub(super) struct FaxEdge {
    pub(super) k: Kamailio,
    pub(super) rtpengine: Rtpengine,
    pub(super) redis: Redis,
    pub(super) vendor: UdpSocket,
    pub(super) vendor_port: u16,
    /// The second vendor's gateway (DEAR), which a failover reaches.
    pub(super) dear: UdpSocket,
    // After the daemons: dropped once they stopped.
    _dir: tempfile::TempDir,
}

/// One side's media sockets: its audio and, once it switches, its fax (UDPTL).
pub(super) struct Media {
    pub(super) audio: UdpSocket,
    pub(super) fax: UdpSocket,
}

impl Media {
    pub(super) fn new() -> Media {
        let bind = || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            sock
        };
        Media {
            audio: bind(),
            fax: bind(),
        }
    }

    pub(super) fn audio_port(&self) -> u16 {
        self.audio.local_addr().unwrap().port()
    }

    pub(super) fn fax_port(&self) -> u16 {
        self.fax.local_addr().unwrap().port()
    }
}

impl FaxEdge {
    pub(super) fn start() -> FaxEdge {
        FaxEdge::start_with(its_socket)
    }

    /// As [`FaxEdge::start`], RTPENGINE_SOCK as `socket` names it from the rtpengine
    /// started.
    pub(super) fn start_with(socket: impl FnOnce(&Rtpengine) -> String) -> FaxEdge {
        FaxEdge::start_defined(socket, &[])
    }

    /// As [`FaxEdge::start_with`], with the defines `more`.
    pub(super) fn start_defined(
        socket: impl FnOnce(&Rtpengine) -> String,
        more: &[String],
    ) -> FaxEdge {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(dir.path());
        let data = Data::with_gateways();
        let vendor = UdpSocket::bind(("127.0.0.1", data.cheap.0)).unwrap();
        vendor
            .set_read_timeout(Some(Duration::from_secs(8)))
            .unwrap();
        let dear = UdpSocket::bind(("127.0.0.1", data.dear.0)).unwrap();
        dear.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let rtpengine = Rtpengine::start(dir.path());
        let mut defines = rtpengine_defines_at(&socket(&rtpengine));
        defines.extend_from_slice(more);
        let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
        FaxEdge {
            k,
            rtpengine,
            redis,
            vendor,
            vendor_port: data.cheap.0,
            dear,
            _dir: dir,
        }
    }

    /// Call `call` from the caller's `sock` at `lport` with `offer`, answered by the
    /// vendor with G.711 on `vendor_audio` and ACKed: its dialog, the offer as the
    /// vendor got it and the answer as the caller got it.
    pub(super) fn call<'a>(
        &self,
        (sock, lport): (&UdpSocket, u16),
        call: &'a str,
        offer: &str,
        vendor_audio: u16,
    ) -> (InDialog<'a>, String, String) {
        let invite = self.invite(lport, call, &sdp_body(offer));
        self.call_with((sock, lport), call, &invite, vendor_audio)
    }

    /// The caller's INVITE from `lport` of call `call`, carrying `body` (with its
    /// headers: [`sdp_body`], [`multipart`]).
    pub(super) fn invite(&self, lport: u16, call: &str, body: &str) -> String {
        raw_request(self.k.port, lport, "INVITE", "+12125550123", call).replace(NO_BODY, body)
    }

    /// As [`FaxEdge::call`], the caller's INVITE as `invite` has it.
    pub(super) fn call_with<'a>(
        &self,
        caller: (&UdpSocket, u16),
        call: &'a str,
        invite: &str,
        vendor_audio: u16,
    ) -> (InDialog<'a>, String, String) {
        let answer = sdp_body(&audio_sdp("v", 1, vendor_audio));
        self.call_answered(caller, call, invite, &answer)
    }

    /// As [`FaxEdge::call_with`], the vendor's 200 carrying `answer` (a body with its
    /// headers: [`sdp_body`], [`multipart`]).
    pub(super) fn call_answered<'a>(
        &self,
        (sock, lport): (&UdpSocket, u16),
        call: &'a str,
        invite: &str,
        answer: &str,
    ) -> (InDialog<'a>, String, String) {
        std::thread::scope(|s| {
            let vendor = s.spawn(|| {
                let invite = next_request(&self.vendor, "INVITE", call, &self.k);
                let ok = reply_to(&invite, "200 OK", &self.vendor_contact());
                let to = header_line(&ok, "To");
                let ok = ok.replacen(&to, &format!("{to};tag=vendor"), 1);
                self.send_from_vendor(&ok.replace(NO_BODY, answer));
                invite
            });
            let (dialog, ok) =
                InDialog::answered(sock, &self.k, lport, (call, self.vendor_port), invite);
            let invite = vendor.join().unwrap();
            (dialog, body_of(&invite).to_owned(), body_of(&ok).to_owned())
        })
    }

    fn vendor_contact(&self) -> String {
        format!("Contact: <sip:vendor@127.0.0.1:{}>\r\n", self.vendor_port)
    }

    /// The vendor's reply `status` to `request`, with its Contact and `sdp`.
    pub(super) fn vendor_replies(&self, request: &str, status: &str, sdp: &str) {
        let reply = reply_to(request, status, &self.vendor_contact());
        self.send_from_vendor(&with_sdp(&reply, sdp));
    }

    /// The vendor re-INVITEs (CSeq 3) without SDP, asking for an offer (RFC 3261 14.2):
    /// the caller at `sock` offers `caller_sdp` in its 200, the vendor answers
    /// `vendor_sdp` in its ACK. The re-INVITE as the caller got it, the 200 as the
    /// vendor got it, and the ACK's SDP as the caller got it.
    pub(super) fn late_offer_from_vendor(
        &self,
        call: (&UdpSocket, &InDialog),
        caller_sdp: &str,
        vendor_sdp: &str,
    ) -> (String, Reply, String) {
        let bodies = (&sdp_body(caller_sdp)[..], &sdp_body(vendor_sdp)[..]);
        self.late_offer_from_vendor_with(call, bodies)
    }

    /// As [`FaxEdge::late_offer_from_vendor`], the offer and the answer in bodies as
    /// `caller_body` and `vendor_body` have them, with their headers ([`sdp_body`],
    /// [`multipart`]).
    pub(super) fn late_offer_from_vendor_with(
        &self,
        (sock, dialog): (&UdpSocket, &InDialog),
        (caller_body, vendor_body): (&str, &str),
    ) -> (String, Reply, String) {
        let (call, vport) = (dialog.call, self.vendor_port);
        self.send_from_vendor(&dialog.vendor_request("INVITE", 3, vport));
        let at_caller = next_request(sock, "INVITE", call, &self.k);
        let contact = format!("Contact: <sip:caller@127.0.0.1:{}>\r\n", dialog.lport);
        let ok = reply_to(&at_caller, "200 OK", &contact);
        send_raw(sock, &self.k, &ok.replace(NO_BODY, caller_body));
        let at_vendor = self.final_at(&self.vendor, call);
        let ack = dialog.vendor_request("ACK", 3, vport);
        self.send_from_vendor(&ack.replace(NO_BODY, vendor_body));
        let ack = next_request(sock, "ACK", call, &self.k);
        (at_caller, at_vendor, body_of(&ack).to_owned())
    }

    pub(super) fn send_from_vendor(&self, text: &str) {
        self.vendor
            .send_to(text.as_bytes(), ("127.0.0.1", self.k.port))
            .unwrap();
    }

    /// The next final reply `sock` receives in call `call`, skipping the requests it
    /// receives meanwhile (the other side's ACK of a 200).
    pub(super) fn final_at(&self, sock: &UdpSocket, call: &str) -> Reply {
        let mut buf = [0u8; 65535];
        loop {
            let n = (sock.recv(&mut buf))
                .unwrap_or_else(|e| panic!("no final reply ({e}):\n{}", self.k.log()));
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.starts_with("SIP/2.0 ") {
                let reply = Reply::parse(&text);
                let ours = (reply.header("Call-ID")).is_some_and(|id| id.starts_with(call));
                if reply.code >= 200 && ours {
                    return reply;
                }
            }
        }
    }

    /// `from` re-INVITEs (CSeq `cseq`) with `offer`, the other side answers `answer`
    /// (200 with it; `None`: 488 Not Acceptable Here, no SDP). The offer as the other
    /// side got it, and the final reply as `from` got it; a 200 is ACKed.
    pub(super) fn reinvite(
        &self,
        call: (&UdpSocket, &InDialog),
        from: Side,
        cseq: u32,
        offer: &str,
        answer: Option<&str>,
    ) -> (String, Reply) {
        self.reinvite_with(call, from, (cseq, &sdp_body(offer)), answer)
    }

    /// As [`FaxEdge::reinvite`], the offer's body as `offered` has it, with its headers
    /// ([`sdp_body`], [`multipart`]).
    pub(super) fn reinvite_with(
        &self,
        (sock, dialog): (&UdpSocket, &InDialog),
        from: Side,
        (cseq, offered): (u32, &str),
        answer: Option<&str>,
    ) -> (String, Reply) {
        let call = dialog.call;
        let (status, answer) = match answer {
            Some(sdp) => ("200 OK", sdp),
            None => ("488 Not Acceptable Here", ""),
        };
        match from {
            Side::Caller => {
                send_raw(sock, &self.k, &dialog.request("INVITE", cseq, offered));
                let invite = next_request(&self.vendor, "INVITE", call, &self.k);
                self.vendor_replies(&invite, status, answer);
                let reply = self.final_at(sock, call);
                let ack = dialog.request("ACK", cseq, "Content-Length: 0\r\n\r\n");
                let ack = acking(ack, reply.code, cseq);
                send_raw(sock, &self.k, &ack);
                (body_of(&invite).to_owned(), reply)
            }
            Side::Vendor => {
                let vport = self.vendor_port;
                let invite = dialog.vendor_request("INVITE", cseq, vport);
                self.send_from_vendor(&invite.replace(NO_BODY, offered));
                let at_caller = next_request(sock, "INVITE", call, &self.k);
                let contact = format!("Contact: <sip:caller@127.0.0.1:{}>\r\n", dialog.lport);
                let reply = reply_to(&at_caller, status, &contact);
                send_raw(sock, &self.k, &with_sdp(&reply, answer));
                let reply = self.final_at(&self.vendor, call);
                let ack = dialog.vendor_request("ACK", cseq, vport);
                let ack = acking(ack, reply.code, cseq);
                self.send_from_vendor(&ack);
                (body_of(&at_caller).to_owned(), reply)
            }
        }
    }

    /// The caller hangs up (CSeq `cseq`): its BYE answered 200, the call gone from the
    /// edge and rtpengine, its events start, answer and end.
    pub(super) fn hang_up(&self, (sock, dialog): (&UdpSocket, &InDialog), cseq: u32) {
        let call = dialog.call;
        send_raw(
            sock,
            &self.k,
            &dialog.request("BYE", cseq, "Content-Length: 0\r\n\r\n"),
        );
        let bye = next_request(&self.vendor, "BYE", call, &self.k);
        self.send_from_vendor(&reply_to(&bye, "200 OK", ""));
        loop {
            let reply = self.final_at(sock, call);
            if reply.header("CSeq").is_some_and(|c| c.ends_with(" BYE")) {
                assert_eq!(reply.code, 200, "{}", self.k.log());
                break;
            }
        }
        wait_for_no_media_sessions(&self.rtpengine, &self.k);
        // This call's own events: an edge's earlier calls left theirs in the stream.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let cdrs = self.redis.cdrs("warp:cdr:raw");
            let kinds = event_kinds(&cdrs, call, dialog.lport);
            if kinds.len() >= 3 || Instant::now() > deadline {
                let log = self.k.log();
                assert_eq!(kinds, ["start", "answer", "end"], "{cdrs:?}\n{log}");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Datagrams `from` sends to rtpengine's `port` (the one the SDP it got names) reach
    /// `to`, unchanged: `packet(n)` for n in 0..5.
    pub(super) fn relays(
        &self,
        from: &UdpSocket,
        port: u16,
        to: &UdpSocket,
        packet: fn(u16) -> Vec<u8>,
    ) {
        let mut buf = [0u8; 2048];
        for n in 0..5 {
            let sent = packet(n);
            from.send_to(&sent, ("127.0.0.1", port)).unwrap();
            let got = to.recv(&mut buf).unwrap_or_else(|e| {
                let log = self.rtpengine.log();
                panic!("datagram {n} sent to {port} never came ({e}):\n{log}")
            });
            assert_eq!(&buf[..got], &sent[..], "datagram {n}");
        }
    }

    /// `from`, on `offerer`'s audio, re-INVITEs back to G.711 (CSeq `cseq`, also its
    /// SDP's version; the answer's `answer_version`), taken by `answerer`: plain RTP
    /// offered and answered on rtpengine's ports, and relayed both ways.
    fn back_to_audio(
        &self,
        call: (&UdpSocket, &InDialog),
        from: Side,
        cseq: u32,
        (offerer, answerer): (&Media, &Media),
        answer_version: u32,
    ) {
        let offer = audio_sdp("o", cseq, offerer.audio_port());
        let answer = audio_sdp("a", answer_version, answerer.audio_port());
        let (offered, reply) = self.reinvite(call, from, cseq, &offer, Some(&answer));
        assert_eq!(reply.code, 200, "{from:?}: {}", self.k.log());
        self.assert_audio(&offered, "RTP/AVP");
        self.assert_audio(&reply.body, "RTP/AVP");
        let to_answerer = media_port(&offered, "audio").unwrap();
        let to_offerer = media_port(&reply.body, "audio").unwrap();
        self.relays(&offerer.audio, to_offerer, &answerer.audio, rtp);
        self.relays(&answerer.audio, to_answerer, &offerer.audio, rtp);
    }

    /// `sdp` carries T.38 (`m=image <port> udptl t38`) on one of rtpengine's ports, every
    /// attribute of [`T38_ATTRIBUTES`] kept, and no audio.
    pub(super) fn assert_t38(&self, sdp: &str) {
        let k = &self.k;
        let image = sdp
            .lines()
            .find(|l| l.starts_with("m=image "))
            .unwrap_or_else(|| panic!("no m=image in {sdp}\n{}", k.log()));
        let fields: Vec<&str> = image.split_whitespace().collect();
        assert_eq!(fields[2..], ["udptl", "t38"], "{sdp}\n{}", k.log());
        let port: u16 = fields[1].parse().unwrap_or(0);
        assert!(self.rtpengine.ports.contains(&port), "{sdp}\n{}", k.log());
        for attribute in T38_ATTRIBUTES {
            assert!(
                sdp.lines().any(|l| l == attribute),
                "{attribute} lost: {sdp}"
            );
        }
        assert!(
            !sdp.lines()
                .any(|l| l.starts_with("m=audio ") && !l.starts_with("m=audio 0 ")),
            "{sdp}"
        );
    }

    /// `sdp` carries audio on one of rtpengine's ports, with `profile` (`RTP/AVP`,
    /// `RTP/SAVP`), and no T.38 still open.
    pub(super) fn assert_audio(&self, sdp: &str, profile: &str) {
        let k = &self.k;
        let port =
            media_port(sdp, "audio").unwrap_or_else(|| panic!("no audio in {sdp}\n{}", k.log()));
        assert!(self.rtpengine.ports.contains(&port), "{sdp}\n{}", k.log());
        let audio = sdp.lines().find(|l| l.starts_with("m=audio ")).unwrap();
        assert!(
            audio.contains(&format!(" {profile} ")),
            "{sdp}\n{}",
            k.log()
        );
        assert!(
            media_port(sdp, "image").unwrap_or(0) == 0,
            "T.38 still open: {sdp}"
        );
    }
}

/// A caller on SRTP (`caller`'s audio) and a vendor on plain RTP (`vendor`'s) in call
/// `call`, which the vendor switched to T.38 when `faxed`: its dialog, the vendor's CSeq
/// 2 taken by the T.38 re-INVITE.
pub(super) fn srtp_call<'a>(
    edge: &FaxEdge,
    (sock, lport): (&UdpSocket, u16),
    call: &'a str,
    (caller, vendor): (&Media, &Media),
    faxed: bool,
) -> InDialog<'a> {
    let offer = srtp_offer(1, caller.audio_port());
    let (dialog, _, _) = edge.call((sock, lport), call, &offer, vendor.audio_port());
    if faxed {
        let offer = t38_sdp("v", 2, vendor.fax_port());
        let answer = t38_sdp("c", 2, caller.fax_port());
        let (offered, reply) =
            edge.reinvite((sock, &dialog), Side::Vendor, 2, &offer, Some(&answer));
        assert_eq!(reply.code, 200, "{}", edge.k.log());
        edge.assert_t38(&offered);
        edge.assert_t38(&reply.body);
    }
    dialog
}

/// `ack` of a re-INVITE (CSeq `cseq`) answered `code`: a failure's ACK is of the
/// INVITE's own transaction, hop by hop (its branch: the tests' branches name method and
/// CSeq).
fn acking(ack: String, code: u16, cseq: u32) -> String {
    if code == 200 {
        return ack;
    }
    ack.replace(&format!("ACK{cseq}"), &format!("INVITE{cseq}"))
}

/// The port of `sdp`'s first `m=<kind>` line.
pub(super) fn media_port(sdp: &str, kind: &str) -> Option<u16> {
    sdp.lines()
        .find_map(|l| l.strip_prefix(&format!("m={kind} ")))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The whole `name:` header line of `message`.
pub(super) fn header_line(message: &str, name: &str) -> String {
    message
        .split("\r\n")
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {message}"))
        .to_owned()
}

/// RTPENGINE_SOCK naming `rtpengine` alone.
pub(super) fn its_socket(rtpengine: &Rtpengine) -> String {
    format!("udp:127.0.0.1:{}", rtpengine.ng_port)
}

/// How a message's body, with its headers, is made of an SDP: [`sdp_body`],
/// [`multipart`].
pub(super) type Body = fn(&str) -> String;

/// What a message without a body ends with, for a body to replace.
const NO_BODY: &str = "Content-Length: 0\r\n\r\n";

/// `sdp` as SIP-T sends it (RFC 3204): a multipart/mixed body of the SDP and an ISUP
/// part, with its headers.
pub(super) fn multipart(sdp: &str) -> String {
    let body = format!(
        "--b1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n\
         --b1\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\n\x01\x00\r\n--b1--\r\n"
    );
    format!(
        "Content-Type: multipart/mixed;boundary=b1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The body of a message carrying `sdp`, with its headers.
pub(super) fn sdp_body(sdp: &str) -> String {
    format!(
        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// G.711 (PCMU) on `port`, SDP version `version` of origin `who`.
pub(super) fn audio_sdp(who: &str, version: u32, port: u16) -> String {
    format!(
        "v=0\r\no={who} 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\n"
    )
}

/// T.38 over UDPTL on `port`, SDP version `version` of origin `who`.
pub(super) fn t38_sdp(who: &str, version: u32, port: u16) -> String {
    let attributes: String = T38_ATTRIBUTES.iter().map(|a| format!("{a}\r\n")).collect();
    format!(
        "v=0\r\no={who} 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=image {port} udptl t38\r\n{attributes}"
    )
}

/// A UDPTL datagram (T.38 Annex D): sequence number `n`, a primary IFP packet (a T.30
/// indicator, CED), no redundancy.
pub(super) fn udptl(n: u16) -> Vec<u8> {
    let mut packet = n.to_be_bytes().to_vec();
    packet.extend_from_slice(&[0x01, 0x02, 0x00]);
    packet
}

/// An RTP packet of G.711 (PCMU, 20 ms), sequence number `n`.
pub(super) fn rtp(n: u16) -> Vec<u8> {
    let mut packet = vec![0x80, 0x00];
    packet.extend_from_slice(&n.to_be_bytes());
    packet.extend_from_slice(&(u32::from(n) * 160).to_be_bytes());
    packet.extend_from_slice(&0x5741_5250_u32.to_be_bytes());
    packet.resize(12 + 160, 0xff);
    packet
}

/// A call on G.711 that `side` switches to T.38: the other side gets `m=image … udptl
/// t38` on rtpengine's ports with its attributes, the answer comes back so, and UDPTL
/// flows both ways through rtpengine; then `side` switches it back to audio, and the
/// caller hangs up: its end event written, nothing left in rtpengine.
fn switches_to_t38_and_back(side: Side) {
    let edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let offer = audio_sdp("c", 1, caller.audio_port());
    let (dialog, _, _) = edge.call((&sock, lport), "fax", &offer, vendor.audio_port());
    let call = (&sock, &dialog);
    // The T.38 offer, from `side`'s fax port; the answer from the other's.
    let (offerer, answerer) = match side {
        Side::Caller => (&caller, &vendor),
        Side::Vendor => (&vendor, &caller),
    };
    let offer = t38_sdp("o", 2, offerer.fax_port());
    let answer = t38_sdp("a", 2, answerer.fax_port());
    let (offered, reply) = edge.reinvite(call, side, 2, &offer, Some(&answer));
    assert_eq!(reply.code, 200, "{}", edge.k.log());
    edge.assert_t38(&offered);
    edge.assert_t38(&reply.body);
    let to_answerer = media_port(&offered, "image").unwrap();
    let to_offerer = media_port(&reply.body, "image").unwrap();
    edge.relays(&offerer.fax, to_offerer, &answerer.fax, udptl);
    edge.relays(&answerer.fax, to_answerer, &offerer.fax, udptl);
    // The fax sent: back to G.711.
    edge.back_to_audio(call, side, 3, (offerer, answerer), 3);
    edge.hang_up(call, 4);
}

/// The vendor's side (the fax machine called, on hearing the caller's CNG) switches the
/// call to T.38 and back.
#[test]
fn the_shipped_config_carries_a_vendors_switch_to_t38_and_back() {
    switches_to_t38_and_back(Side::Vendor);
}

/// The caller's side switches the call to T.38 and back: the vendor, which is offered
/// plain RTP (RTP/AVP) for audio, gets T.38 as it was offered.
#[test]
fn the_shipped_config_carries_a_callers_switch_to_t38_and_back() {
    switches_to_t38_and_back(Side::Caller);
}

/// A T.38 re-INVITE refused with 488 (the other side takes no T.38, RFC 3261 14.1: the
/// session stays as it was): the offerer gets the 488, the call stays up and anchored
/// (counted, its media session kept), and the caller's BYE ends it as usual, its end
/// event written. rtpengine 10.5 has no word for a failed offer (sipwise/rtpengine#1046)
/// and already moved the offerer's side to T.38 (new ports: UDPTL has no RTCP), so the
/// old audio may no longer pass one way; the offerer's re-INVITE with its audio
/// (RFC 6337 3.4: it offers the session reinstated) puts it back, both ways. Either
/// side's refusal.
#[test]
fn the_shipped_config_keeps_a_call_up_when_t38_is_refused() {
    for side in [Side::Caller, Side::Vendor] {
        let edge = FaxEdge::start();
        let (sock, lport) = raw_socket();
        let (caller, vendor) = (Media::new(), Media::new());
        let offer = audio_sdp("c", 1, caller.audio_port());
        let (dialog, _, _) = edge.call((&sock, lport), "nofax", &offer, vendor.audio_port());
        let call = (&sock, &dialog);
        let (offerer, answerer) = match side {
            Side::Caller => (&caller, &vendor),
            Side::Vendor => (&vendor, &caller),
        };
        let offer = t38_sdp("o", 2, offerer.fax_port());
        let (_, reply) = edge.reinvite(call, side, 2, &offer, None);
        assert_eq!(reply.code, 488, "{side:?}: {}", edge.k.log());
        assert_eq!(edge.k.rpc("warp.stats")["limits.active"], "1");
        let list = edge.rtpengine.ng("d7:command4:liste").unwrap_or_default();
        assert!(
            list.contains(&format!("nofax-{lport}")),
            "media gone: {list}"
        );
        // The session reinstated, offered again: G.711 both ways.
        edge.back_to_audio(call, side, 3, (offerer, answerer), 2);
        edge.hang_up(call, 4);
    }
}

/// A caller on SRTP (RTP/SAVP, SDES keys; plain RTP to the vendor) whose call the vendor
/// switches to T.38: the caller is offered T.38 over UDPTL as the vendor offered it (T.38
/// has no SRTP: rtpengine's RTP/AVP or RTP/SAVP applies to RTP alone), UDPTL flows both
/// ways; the caller's re-INVITE back to audio on SRTP gets SRTP with rtpengine's key, the
/// vendor plain RTP.
#[test]
fn the_shipped_config_carries_an_srtp_callers_switch_to_t38_and_back() {
    srtp_caller_switched_to_t38_and_back(Side::Caller, "RTP/SAVP");
}

/// As [`the_shipped_config_carries_an_srtp_callers_switch_to_t38_and_back`], the vendor
/// switching back to audio: its plain RTP reaches the caller as SRTP again, with
/// rtpengine's key. rtpengine forgets a side's profile once its media turned T.38, and
/// offered the caller plain RTP/AVP before the edge kept the caller's profile
/// (route[FAX_PROFILE]).
#[test]
fn the_shipped_config_offers_an_srtp_caller_srtp_again_when_the_vendor_ends_t38() {
    srtp_caller_switched_to_t38_and_back(Side::Vendor, "RTP/SAVP");
}

/// As [`the_shipped_config_offers_an_srtp_caller_srtp_again_when_the_vendor_ends_t38`],
/// the caller on SRTP with RTCP feedback (RTP/SAVPF): offered RTP/SAVPF again, its own
/// profile (the edge read it from rtpengine's query, and matched "RTP/SAVP" in it
/// before: the caller was offered RTP/SAVP).
#[test]
fn the_shipped_config_offers_an_savpf_caller_its_own_profile_again_when_the_vendor_ends_t38() {
    srtp_caller_switched_to_t38_and_back(Side::Vendor, "RTP/SAVPF");
}

/// A call of a caller on SRTP (`profile`: RTP/SAVP or RTP/SAVPF) that the vendor
/// switches to T.38, then `back` to audio, the caller's SRTP answered with rtpengine's
/// key on its profile and the vendor on plain RTP each way. The caller's tag holds a "."
/// (as a SIP token may), which the path the edge reads rtpengine's query with splits at.
fn srtp_caller_switched_to_t38_and_back(back: Side, profile: &str) {
    let edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let offer = secure_offer(profile, 1, caller.audio_port());
    let (dialog, to_vendor, to_caller) =
        edge.call((&sock, lport), "srtp.fax", &offer, vendor.audio_port());
    edge.assert_audio(&to_vendor, "RTP/AVP");
    edge.assert_audio(&to_caller, profile);
    let call = (&sock, &dialog);
    let offer = t38_sdp("v", 2, vendor.fax_port());
    let answer = t38_sdp("c", 2, caller.fax_port());
    let (offered, reply) = edge.reinvite(call, Side::Vendor, 2, &offer, Some(&answer));
    assert_eq!(reply.code, 200, "{}", edge.k.log());
    edge.assert_t38(&offered);
    assert!(!offered.contains("a=crypto"), "{offered}");
    edge.assert_t38(&reply.body);
    let to_caller = media_port(&offered, "image").unwrap();
    let to_vendor = media_port(&reply.body, "image").unwrap();
    edge.relays(&vendor.fax, to_vendor, &caller.fax, udptl);
    edge.relays(&caller.fax, to_caller, &vendor.fax, udptl);
    // Back to audio: SRTP to and from the caller, RTP to and from the vendor.
    let (srtp, rtp) = (
        secure_offer(profile, 3, caller.audio_port()),
        audio_sdp("v", 3, vendor.audio_port()),
    );
    let (offered, reply) = match back {
        Side::Caller => edge.reinvite(call, back, 2, &srtp, Some(&rtp)),
        Side::Vendor => edge.reinvite(call, back, 3, &rtp, Some(&srtp)),
    };
    assert_eq!(reply.code, 200, "{}", edge.k.log());
    let (at_caller, at_vendor) = match back {
        Side::Caller => (&reply.body, &offered),
        Side::Vendor => (&offered, &reply.body),
    };
    edge.assert_audio(at_vendor, "RTP/AVP");
    assert!(!at_vendor.contains("a=crypto"), "{at_vendor}");
    edge.assert_audio(at_caller, profile);
    assert!(at_caller.contains("a=crypto:1 "), "{at_caller}");
    edge.hang_up(call, 3);
}

/// The caller's SRTP offer (SDES keys) on `profile` (RTP/SAVP, RTP/SAVPF).
fn secure_offer(profile: &str, version: u32, port: u16) -> String {
    srtp_offer(version, port).replace(" RTP/SAVP ", &format!(" {profile} "))
}

/// A caller on SRTP whose call the vendor switched to T.38 comes back to audio on plain
/// RTP (RTP/AVP, no key) itself: the profile the edge kept at the fax is dropped, so the
/// vendor's answer reaches the caller as plain RTP, and so does the vendor's re-INVITE
/// after (before, both were forced to the kept RTP/SAVP). The caller's plain RTP comes
/// in its re-INVITE, or in its reply to the vendor's re-INVITE without SDP (the vendor's
/// answer in its ACK).
#[test]
fn the_shipped_config_follows_a_caller_back_from_t38_on_another_profile() {
    for in_reply in [false, true] {
        let edge = FaxEdge::start();
        let (sock, lport) = raw_socket();
        let (caller, vendor) = (Media::new(), Media::new());
        let call = "plainagain";
        let dialog = srtp_call(&edge, (&sock, lport), call, (&caller, &vendor), true);
        let plain = |who, version, media: &Media| audio_sdp(who, version, media.audio_port());
        let at_caller = if in_reply {
            let (offer, answer) = (plain("c", 3, &caller), plain("v", 3, &vendor));
            let (_, at_vendor, ack) =
                edge.late_offer_from_vendor((&sock, &dialog), &offer, &answer);
            edge.assert_audio(&at_vendor.body, "RTP/AVP");
            ack
        } else {
            let (offer, answer) = (plain("c", 3, &caller), plain("v", 3, &vendor));
            let (offered, reply) =
                edge.reinvite((&sock, &dialog), Side::Caller, 2, &offer, Some(&answer));
            assert_eq!(reply.code, 200, "{}", edge.k.log());
            edge.assert_audio(&offered, "RTP/AVP");
            reply.body
        };
        edge.assert_audio(&at_caller, "RTP/AVP");
        assert!(
            !at_caller.contains("a=crypto"),
            "in reply {in_reply}: {at_caller}"
        );
        // The vendor's next re-INVITE with audio: offered the caller as plain RTP too.
        let (offer, answer) = (plain("v", 4, &vendor), plain("c", 4, &caller));
        let call_now = (&sock, &dialog);
        let (offered, reply) = edge.reinvite(call_now, Side::Vendor, 4, &offer, Some(&answer));
        assert_eq!(reply.code, 200, "{}", edge.k.log());
        edge.assert_audio(&offered, "RTP/AVP");
        assert!(
            !offered.contains("a=crypto"),
            "in reply {in_reply}: {offered}"
        );
        edge.hang_up(call_now, 3);
    }
}

/// rtpengine's query fails at a T.38 offer (rtpengine restarted, the call forgotten):
/// the edge keeps no profile for the caller (it kept RTP/AVP for the rest of the call
/// before) and logs it once, however many T.38 offers fail so; the first T.38 offer
/// after the caller's SRTP came back asks again, and the vendor's way back to audio
/// then reaches the caller as SRTP.
#[test]
fn the_shipped_config_asks_again_for_the_callers_profile_after_a_failed_query() {
    let mut edge = FaxEdge::start();
    let (sock, lport) = raw_socket();
    let (caller, vendor) = (Media::new(), Media::new());
    let call = "lostquery";
    let dialog = srtp_call(&edge, (&sock, lport), call, (&caller, &vendor), false);
    edge.rtpengine.restart(&[]);
    let call_now = (&sock, &dialog);
    // Two T.38 offers from the vendor, rtpengine knowing no audio of the caller's.
    for cseq in [2, 3] {
        let offer = t38_sdp("v", cseq, vendor.fax_port());
        let answer = t38_sdp("c", cseq, caller.fax_port());
        let (offered, reply) = edge.reinvite(call_now, Side::Vendor, cseq, &offer, Some(&answer));
        assert_eq!(reply.code, 200, "{}", edge.k.log());
        edge.assert_t38(&offered);
        let dialogs = edge.k.kamcmd(&["dlg.list"]).unwrap();
        assert!(!dialogs.contains("caller_profile"), "{dialogs}");
    }
    let log = edge.k.log();
    assert_eq!(
        log.matches("no audio profile of the caller's").count(),
        1,
        "{log}"
    );
    // The caller back on SRTP, then the vendor's T.38 and its way back to audio.
    let srtp = srtp_offer(4, caller.audio_port());
    let rtp = audio_sdp("v", 4, vendor.audio_port());
    let (_, reply) = edge.reinvite(call_now, Side::Caller, 2, &srtp, Some(&rtp));
    assert_eq!(reply.code, 200, "{}", edge.k.log());
    let offer = t38_sdp("v", 5, vendor.fax_port());
    let answer = t38_sdp("c", 5, caller.fax_port());
    let (_, reply) = edge.reinvite(call_now, Side::Vendor, 5, &offer, Some(&answer));
    assert_eq!(reply.code, 200, "{}", edge.k.log());
    let (rtp, srtp) = (
        audio_sdp("v", 6, vendor.audio_port()),
        srtp_offer(6, caller.audio_port()),
    );
    let (offered, reply) = edge.reinvite(call_now, Side::Vendor, 6, &rtp, Some(&srtp));
    assert_eq!(reply.code, 200, "{}", edge.k.log());
    edge.assert_audio(&offered, "RTP/SAVP");
    assert!(offered.contains("a=crypto:1 "), "{offered}");
    edge.hang_up(call_now, 3);
}
