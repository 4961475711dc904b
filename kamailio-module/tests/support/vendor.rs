//! A vendor gateway for the cases sipp's stock scenarios do not play: one that rings
//! and answers a CANCEL as RFC 3261 says (200, then 487 to the INVITE), one that
//! answers every INVITE, re-INVITEs included, with SDP of its own, one that refuses
//! re-INVITEs (488 with SDP), one that redirects (302), one that refuses every call
//! (503) at once or after ringing, one that proxies calls back to the edge (a loop),
//! one that forgot the calls it answered (481), and one that ignores the OPTIONS inside
//! its calls. Each other answers a BYE and an OPTIONS 200. It keeps every message it receives.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plays {
    /// 180 to every INVITE, and nothing more until a CANCEL.
    Rings,
    /// As `Rings`, and the 180 again every second (as a UAS keeps a proxy's
    /// transaction alive, RFC 3261 13.3.1.1, or a gateway repeats it).
    KeepsRinging,
    /// 200 with SDP (audio on port 7000) to every INVITE, 200 to BYE.
    Answers,
    /// As `Answers`, but a BYE is answered only when a copy of it comes
    /// [`HANG_UP_DELAY`] after its first: a gateway slow to hang up, or one whose
    /// first 200s were lost.
    HangsUpSlowly,
    /// As `Answers`, but 481 to every OPTIONS and BYE inside a call: a switch that
    /// restarted and lost the calls it had up.
    ForgetsCalls,
    /// As `Answers`, but no reply at all to an OPTIONS inside a call: a switch that
    /// ignores in-dialog OPTIONS.
    IgnoresOptions,
    /// As `Answers` to the first INVITE; a re-INVITE gets 488 with the SDP it would
    /// take (RFC 3261 21.4.26).
    RefusesReoffers,
    /// 302 to every INVITE, to [`REDIRECT_TARGET`].
    Redirects,
    /// 503 to every INVITE: a gateway out of capacity, which the edge fails over.
    Unavailable,
    /// 180 to every INVITE, then, that long after, 503: a gateway that rang the callee
    /// a while and then lost the call's way on (the edge fails it over all the same).
    RingsThenUnavailable(std::time::Duration),
    /// A proxy that routes every INVITE back to the edge at this port (a partner that
    /// sends calls to the edge too, its routing looping), and the edge's replies back
    /// to the edge's INVITE.
    LoopsBack(u16),
}

/// Where `Redirects` sends a call: somewhere the caller must never be told of.
pub const REDIRECT_TARGET: &str = "sip:+12125550123@192.0.2.1";

/// Its SDP's audio port.
pub const AUDIO_PORT: u16 = 7000;

/// How long `HangsUpSlowly` leaves a BYE unanswered: beyond the 2 s a vendor has for
/// its first reply to an INVITE.
pub const HANG_UP_DELAY: std::time::Duration = std::time::Duration::from_secs(3);

pub struct Vendor {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Vendor {
    pub fn start(port: u16, plays: Plays) -> Vendor {
        Self::start_on("127.0.0.1", port, plays)
    }

    /// As [`Vendor::start`], on `ip` (`::1`: a gateway reached over IPv6, which sends
    /// what it proxies back to the edge over IPv6 too).
    pub fn start_on(ip: &str, port: u16, plays: Plays) -> Vendor {
        let sock = UdpSocket::bind((ip, port)).unwrap();
        let edge_ip = super::edge_address(ip);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        if plays == Plays::KeepsRinging {
            let again = Some(std::time::Duration::from_secs(1));
            sock.set_read_timeout(again).unwrap();
        }
        std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            let mut invite = String::new();
            // Where the INVITE still ringing came from.
            let mut ringing = None;
            // When each call's first BYE came, by Call-ID.
            let mut first_bye = std::collections::HashMap::new();
            loop {
                let (n, from) = match sock.recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        if let Some(to) = ringing {
                            let again =
                                reply("180 Ringing", &invite, port) + "Content-Length: 0\r\n\r\n";
                            let _ = sock.send_to(again.as_bytes(), to);
                        }
                        continue;
                    }
                    Err(_) => break,
                };
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                log.lock().unwrap().push(msg.clone());
                let answer = |status: &str, req: &str, sdp: bool| {
                    let mut out = reply(status, req, port);
                    if sdp {
                        let body = format!(
                            "v=0\r\no=v 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                             t=0 0\r\nm=audio {AUDIO_PORT} RTP/AVP 0\r\n"
                        );
                        out.push_str(&format!(
                            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        ));
                    } else {
                        out.push_str("Content-Length: 0\r\n\r\n");
                    }
                    let _ = sock.send_to(out.as_bytes(), from);
                };
                let method = msg.split(' ').next().unwrap_or("");
                match (plays, method) {
                    (Plays::Rings | Plays::KeepsRinging, "INVITE") => {
                        invite = msg.clone();
                        ringing = Some(from);
                        answer("180 Ringing", &msg, false);
                    }
                    (Plays::Rings | Plays::KeepsRinging, "CANCEL") => {
                        ringing = None;
                        answer("200 OK", &msg, false);
                        answer("487 Request Terminated", &invite, false);
                    }
                    (
                        Plays::Answers
                        | Plays::HangsUpSlowly
                        | Plays::ForgetsCalls
                        | Plays::IgnoresOptions,
                        "INVITE",
                    ) => answer("200 OK", &msg, true),
                    (Plays::IgnoresOptions, "OPTIONS") if header(&msg, "to").contains("tag=") => {}
                    (Plays::HangsUpSlowly, "BYE") => {
                        let call = header(&msg, "call-id").to_owned();
                        let first = *first_bye
                            .entry(call)
                            .or_insert_with(std::time::Instant::now);
                        if first.elapsed() >= HANG_UP_DELAY {
                            answer("200 OK", &msg, false);
                        }
                    }
                    (Plays::RefusesReoffers, "INVITE") if invite.is_empty() => {
                        invite = msg.clone();
                        answer("200 OK", &msg, true);
                    }
                    (Plays::RefusesReoffers, "INVITE") => {
                        answer("488 Not Acceptable Here", &msg, true)
                    }
                    (Plays::Redirects, "INVITE") => {
                        let own = format!("Contact: <sip:vendor@127.0.0.1:{port}>");
                        let moved = reply("302 Moved Temporarily", &msg, port)
                            .replace(&own, &format!("Contact: <{REDIRECT_TARGET}>"));
                        let _ =
                            sock.send_to((moved + "Content-Length: 0\r\n\r\n").as_bytes(), from);
                    }
                    (Plays::Unavailable, "INVITE") => {
                        answer("503 Service Unavailable", &msg, false)
                    }
                    (Plays::RingsThenUnavailable(after), "INVITE") => {
                        answer("180 Ringing", &msg, false);
                        let late = reply("503 Service Unavailable", &msg, port)
                            + "Content-Length: 0\r\n\r\n";
                        let sock = sock.try_clone().unwrap();
                        std::thread::spawn(move || {
                            std::thread::sleep(after);
                            let _ = sock.send_to(late.as_bytes(), from);
                        });
                    }
                    (Plays::LoopsBack(edge), "INVITE") => {
                        answer("100 Trying", &msg, false);
                        let _ = sock.send_to(proxied(&msg, port).as_bytes(), (edge_ip, edge));
                    }
                    (Plays::LoopsBack(edge), "SIP/2.0") => {
                        let _ = sock.send_to(unproxied(&msg).as_bytes(), (edge_ip, edge));
                    }
                    (Plays::ForgetsCalls, "BYE" | "OPTIONS")
                        if header(&msg, "to").contains("tag=") =>
                    {
                        answer("481 Call/Transaction Does Not Exist", &msg, false)
                    }
                    (_, "BYE" | "OPTIONS") => answer("200 OK", &msg, false),
                    _ => {}
                }
            }
        });
        Vendor { seen }
    }

    /// The `method` requests it received, once the first came: within 5 s, or the test
    /// fails with `k`'s log.
    pub fn wait_for(&self, method: &str, k: &super::Kamailio) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let received = self.received(method);
            if !received.is_empty() {
                return received;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the vendor got no {method}:\n{}",
                k.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The requests of `method` it received, in order.
    pub fn received(&self, method: &str) -> Vec<String> {
        let prefix = format!("{method} ");
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|m| m.starts_with(&prefix))
            .cloned()
            .collect()
    }
}

/// The value of `req`'s first header `name` (lowercase), "" when it has none.
pub(super) fn header<'a>(req: &'a str, name: &str) -> &'a str {
    req.split("\r\n")
        .skip(1)
        .find_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
        .unwrap_or("")
}

/// `req` forwarded by a proxy at `port`: a Via of its own on top (its branch the same
/// for a retransmission), one hop fewer.
fn proxied(req: &str, port: u16) -> String {
    let hops: u32 = header(req, "max-forwards").parse().unwrap_or(70);
    let branch = header(req, "via").rsplit("branch=").next().unwrap_or("");
    let (line, rest) = req.split_once("\r\n").unwrap_or((req, ""));
    let rest = rest.replacen(
        &format!("Max-Forwards: {hops}"),
        &format!("Max-Forwards: {}", hops.saturating_sub(1)),
        1,
    );
    format!("{line}\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-p{branch}\r\n{rest}")
}

/// A reply to a request [`proxied`] sent, for the hop before it: its top Via removed.
fn unproxied(reply: &str) -> String {
    let Some(ours) = reply.find("\r\nVia: ") else {
        return reply.to_owned();
    };
    let after = reply[ours + 2..]
        .find("\r\n")
        .map_or(reply.len(), |end| ours + 2 + end);
    format!("{}{}", &reply[..ours], &reply[after..])
}

/// The head of a reply to `req`: its Via, From, Call-ID, CSeq and Record-Route, its To
/// with the vendor's tag, a Contact.
pub(super) fn reply(status: &str, req: &str, port: u16) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in req.split("\r\n").skip(1) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" | "record-route" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" if line.contains("tag=") => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" => {
                out.push_str(line);
                out.push_str(";tag=vendor\r\n");
            }
            _ => {}
        }
    }
    out.push_str(&format!("Contact: <sip:vendor@127.0.0.1:{port}>\r\n"));
    out
}
