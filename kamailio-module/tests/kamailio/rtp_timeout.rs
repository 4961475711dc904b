//! WITH_RTPENGINE ends a call whose media stopped: rtpengine, after `--timeout` s without
//! a packet from either side, asks the edge over XMLRPC (`--b2b-url`,
//! `--xmlrpc-format=2`: `dlg.terminate_dlg`) to end it, and the edge ends it as it ends a
//! call itself (routed in place or after the dip, topology hidden or not); a call whose
//! media flows stays up, and nobody but rtpengine, over TCP, ends a call so.

use super::{
    event_kinds, holds_no_call, millis, rtpengine_defines, start_shipped, with_topoh, Routing,
};
use crate::support::dataset::Data;
use crate::support::redis::Redis;
use crate::support::rtpengine::{wait_for_no_media_sessions, Rtpengine};
use crate::support::tcp::SipStream;
use crate::support::udp::{
    body_of, final_reply, header_of, next_request, raw_request, raw_socket, reply_to, send_raw,
    with_sdp, InDialog,
};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{Kamailio, Reply};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// rtpengine's `--timeout` here, in s: rtpengine takes 1 at least, and counts whole
/// seconds, so 2 keeps a call whose packets come every 20 ms clear of it on a loaded
/// machine.
const TIMEOUT: u64 = 2;

/// The shipped config with WITH_RTPENGINE, its CDR events in a real Redis, calls
/// answered by a vendor with SDP.
struct MediaEdge {
    k: Kamailio,
    rtpengine: Rtpengine,
    redis: Redis,
    vendor: Vendor,
    vendor_port: u16,
    // After the daemons: dropped once they stopped.
    _dir: tempfile::TempDir,
}

impl MediaEdge {
    /// Calls routed by `routing`, `more` defines; rtpengine ends a call after
    /// [`TIMEOUT`] s without media and tells the edge when `timing_out`, else it keeps
    /// its default (60 s, and tells no one).
    fn start(routing: &Routing, more: &[String], timing_out: bool) -> MediaEdge {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(dir.path());
        let data = Data::with_gateways();
        let vendor = Vendor::start(data.cheap.0, Plays::Answers);
        let mut rtpengine = Rtpengine::start(dir.path());
        let mut defines = rtpengine_defines(&rtpengine);
        defines.extend_from_slice(more);
        let k = start_shipped(dir.path(), &data, &redis.url(), &routing.defines(&defines));
        if timing_out {
            rtpengine.restart_timing_out(TIMEOUT as u32, k.port);
        }
        MediaEdge {
            k,
            rtpengine,
            redis,
            vendor,
            vendor_port: data.cheap.0,
            _dir: dir,
        }
    }

    /// Call `call` from the caller's `sock` at `lport`, its audio at `rtp_port`: routed
    /// by `routing`, answered and ACKed. Its dialog and the 200 as the caller got it.
    fn call<'a>(
        &self,
        (sock, lport): (&UdpSocket, u16),
        call: &'a str,
        routing: &Routing,
        rtp_port: u16,
    ) -> (InDialog<'a>, Reply) {
        let sdp = format!(
            "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0\r\n"
        );
        let invite = with_sdp(
            &raw_request(self.k.port, lport, "INVITE", routing.number(), call),
            &sdp,
        );
        let (dialog, ok) =
            InDialog::answered(sock, &self.k, lport, (call, self.vendor_port), &invite);
        (dialog, Reply::parse(&ok))
    }

    /// The edge ends call `call`: the BYE the caller at `sock` gets, answered 200 at
    /// once; the vendor's BYEs. At once: Kamailio 5.6's dialog module sends the
    /// caller's BYE, then the vendor's, and skipped the vendor's when the caller's 200
    /// was taken in meanwhile (kamailio issue #4169), about one run in three here
    /// before the shipped config's reply_route held such a 200 back.
    fn ended_by_the_edge(&self, sock: &UdpSocket, call: &str) -> (String, Vec<String>) {
        let bye = next_request(sock, "BYE", call, &self.k);
        send_raw(sock, &self.k, &reply_to(&bye, "200 OK", ""));
        (bye, self.vendor.wait_for("BYE", &self.k))
    }

    /// The call is gone from the edge and from rtpengine: no place held, no dialog, no
    /// media session.
    fn holds_no_call(&self) {
        holds_no_call(&self.k);
        wait_for_no_media_sessions(&self.rtpengine, &self.k);
    }

    /// The kinds of call `call`'s CDR events (Call-ID `<call>-<lport>`), once `n`
    /// events are in the stream; and how long it lasted in ms, end minus answer.
    fn events(&self, call: &str, lport: u16, n: usize) -> (Vec<String>, Option<i64>) {
        let cdrs = self
            .redis
            .wait_for("warp:cdr:raw", n, Duration::from_secs(5));
        let kinds = event_kinds(&cdrs, call, lport);
        let call_id = format!("{call}-{lport}");
        let lasted = cdrs
            .iter()
            .find(|c| c["event"] == "end" && c["call_id"] == call_id.as_str())
            .map(|end| millis(end, "end") - millis(end, "answer"));
        (kinds, lasted)
    }
}

/// The audio port of an SDP.
fn audio_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no audio in {sdp}"))
}

/// The requests of `method` in call `call` that `sock` receives within `within`, a
/// retransmission counted with its first.
fn requests_within(sock: &UdpSocket, method: &str, call: &str, within: Duration) -> usize {
    let wait = sock.read_timeout().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + within;
    let mut buf = [0u8; 65535];
    let mut seen = std::collections::BTreeSet::new();
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let ours = message.contains(&format!("\r\nCall-ID: {call}-"));
            if ours && message.starts_with(&format!("{method} ")) {
                seen.insert(message);
            }
        }
    }
    sock.set_read_timeout(wait).unwrap();
    seen.len()
}

/// A call answered with SDP in which nobody sends a packet: [`TIMEOUT`] s on, rtpengine
/// deletes its media and has the edge end it (routed in place).
#[test]
fn the_shipped_config_ends_a_call_whose_media_stopped() {
    ends_a_call_whose_media_stopped(&Routing::direct(), &[]);
}

/// As [`the_shipped_config_ends_a_call_whose_media_stopped`], with WITH_TOPOH: rtpengine
/// knows the caller's Call-ID (topoh unmasks before the script makes the offer), which
/// the dialog has too, and the vendor's BYE carries the masked one the vendor knows.
#[test]
fn the_shipped_config_ends_a_call_whose_media_stopped_with_topology_hidden() {
    ends_a_call_whose_media_stopped(&Routing::direct(), &with_topoh());
}

/// As [`the_shipped_config_ends_a_call_whose_media_stopped`], for a call dipped in an
/// async worker: its offer was made, and its dialog, in the route it was resumed in.
#[test]
fn the_shipped_config_ends_a_call_whose_media_stopped_after_the_dip() {
    ends_a_call_whose_media_stopped(&Routing::dipped(), &[]);
}

/// Both sides get one BYE, no sooner than the timeout; the call's `end` event is written
/// once, its duration the timeout's; its trunk place, dialog and media are gone. The old
/// config took no XMLRPC: rtpengine's callback went unanswered and the call ran on.
fn ends_a_call_whose_media_stopped(routing: &Routing, more: &[String]) {
    let edge = MediaEdge::start(routing, more, true);
    let k = &edge.k;
    let (sock, lport) = raw_socket();
    edge.call((&sock, lport), "silent", routing, 6000);
    let answered = Instant::now();
    let (_, byes) = edge.ended_by_the_edge(&sock, "silent");
    let after = answered.elapsed();
    // rtpengine counts whole seconds and looks once a second.
    let timeout = Duration::from_secs(TIMEOUT);
    assert!(
        after > timeout - Duration::from_secs(1) && after < timeout + Duration::from_secs(4),
        "BYE {after:?} after the answer"
    );
    let invites = edge.vendor.received("INVITE");
    // The vendor's BYE is of the call it knows: under the Call-ID its INVITE had.
    assert_eq!(
        header_of(&byes[0], "Call-ID"),
        header_of(&invites[0], "Call-ID"),
        "{}",
        k.log()
    );
    edge.holds_no_call();
    let (kinds, lasted) = edge.events("silent", lport, 3);
    assert_eq!(kinds, ["start", "answer", "end"]);
    let lasted = lasted.unwrap();
    assert!(
        (1000..(TIMEOUT as i64 + 4) * 1000).contains(&lasted),
        "{lasted} ms"
    );
    // Once: rtpengine's request answered at the first try (it tries again, 3 times,
    // after a fault or no answer), no second BYE to either side, no second end.
    let rtpengine_log = edge.rtpengine.log();
    assert!(
        rtpengine_log.contains("Initiating XMLRPC call for tag silent-")
            && !rtpengine_log.contains("XMLRPC fault")
            && !rtpengine_log.contains("XMLRPC child exited"),
        "{rtpengine_log}"
    );
    assert_eq!(
        requests_within(&sock, "BYE", "silent", Duration::from_secs(1)),
        0
    );
    assert_eq!(edge.vendor.received("BYE").len(), 1);
    assert_eq!(edge.events("silent", lport, 3).0.len(), 3);
    routing.took(k, 1);
}

/// RTP from `sockets` to rtpengine's ports they are paired with, a packet from each
/// every 20 ms (G.711, 160 bytes), for `lasting`.
fn send_rtp(sockets: &[(UdpSocket, u16)], lasting: Duration) {
    let end = Instant::now() + lasting;
    let mut seq: u16 = 0;
    while Instant::now() < end {
        let mut packet = vec![0x80, 0x00];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        packet.extend_from_slice(&0x5741_5250_u32.to_be_bytes());
        packet.resize(12 + 160, 0xff);
        for (sock, port) in sockets {
            let _ = sock.send_to(&packet, ("127.0.0.1", *port));
        }
        seq = seq.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Of two calls, the one whose two sides send RTP (to rtpengine's ports of the SDP each
/// got) stays up well past the timeout, while the silent one beside it is ended; it
/// ends as usual with the caller's BYE: one BYE to the vendor, its `end` event, nothing
/// held. On the old config both stayed up.
#[test]
fn the_shipped_config_keeps_a_call_whose_media_flows_past_the_rtp_timeout() {
    let routing = Routing::direct();
    let edge = MediaEdge::start(&routing, &[], true);
    let k = &edge.k;
    let (sock, lport) = raw_socket();
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let caller_port = caller_rtp.local_addr().unwrap().port();
    let (dialog, ok) = edge.call((&sock, lport), "talking", &routing, caller_port);
    let vendor_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to_vendor = audio_port(body_of(&edge.vendor.received("INVITE")[0]));
    let rtp = [(caller_rtp, audio_port(&ok.body)), (vendor_rtp, to_vendor)];
    let talk = Duration::from_secs(3 * TIMEOUT);
    // The media flows a second past the caller's BYE.
    let talking = Instant::now();
    let media = std::thread::spawn(move || send_rtp(&rtp, talk + Duration::from_secs(1)));
    let (quiet_sock, quiet_lport) = raw_socket();
    edge.call((&quiet_sock, quiet_lport), "quiet", &routing, 6000);
    let (_, to_vendor) = edge.ended_by_the_edge(&quiet_sock, "quiet");
    let byes = requests_within(
        &sock,
        "BYE",
        "talking",
        talk.saturating_sub(talking.elapsed()),
    );
    assert_eq!(byes, 0, "{}", k.log());
    assert_eq!(to_vendor.len(), 1, "{to_vendor:?}");
    assert!(
        to_vendor[0].contains("\r\nCall-ID: quiet-"),
        "{}",
        to_vendor[0]
    );
    assert_eq!(k.rpc("warp.stats")["limits.active"], "1");
    send_raw(
        &sock,
        k,
        &dialog.request("BYE", 2, "Content-Length: 0\r\n\r\n"),
    );
    assert_eq!(final_reply(&sock, k, "talking").code, 200, "{}", k.log());
    media.join().unwrap();
    assert_eq!(edge.vendor.wait_for("BYE", &edge.k).len(), 2);
    edge.holds_no_call();
    let (kinds, lasted) = edge.events("talking", lport, 6);
    assert_eq!(kinds, ["start", "answer", "end"]);
    let lasted = lasted.unwrap();
    assert!(lasted >= talk.as_millis() as i64 - 500, "{lasted} ms");
}

/// `dlg.terminate_dlg` of `(call_id, from_tag, to_tag)`, or another `method` with those
/// arguments, as rtpengine's XMLRPC client posts it, from the loopback address
/// `source` over TCP to the edge's SIP socket: the HTTP reply.
fn xmlrpc(k: &Kamailio, source: &str, method: &str, args: [&str; 3]) -> Reply {
    let mut http = SipStream::connect_from(source, k.port);
    http.send(&xmlrpc_post(k, method, args));
    let text = http
        .next()
        .unwrap_or_else(|e| panic!("no HTTP reply to {method} ({e}):\n{}", k.log()));
    Reply::parse(&text)
}

fn xmlrpc_post(k: &Kamailio, method: &str, args: [&str; 3]) -> String {
    let params: String = args
        .iter()
        .map(|a| format!("<param><value><string>{a}</string></value></param>"))
        .collect();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodCall>\
         <methodName>{method}</methodName>\r\n<params>{params}</params></methodCall>\r\n"
    );
    format!(
        "POST /RPC2 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: */*\r\n\
         Content-Type: text/xml\r\nUser-Agent: Xmlrpc-c/1.54.06 Curl/7.88.1\r\n\
         Content-Length: {}\r\n\r\n{body}",
        k.port,
        body.len()
    )
}

/// WITH_PROMETHEUS beside it (one xhttp route for both): rtpengine's request to end a
/// call, from anyone RTPENGINE_ALLOW does not list (127.0.0.2), is refused 403; so is
/// another RPC command from rtpengine's address (xmlrpc serves them all); the request
/// over UDP, whose source anyone can forge, is answered nothing. The call stays up through all of
/// them, and the same request from rtpengine's address, over TCP, ends it. Metrics are
/// served as before. The old config served no XMLRPC (404 from rtpengine's address).
#[test]
fn the_shipped_config_takes_an_rtp_timeout_from_rtpengine_alone() {
    let routing = Routing::direct();
    let prometheus = ["WITH_PROMETHEUS=1".to_string()];
    let edge = MediaEdge::start(&routing, &prometheus, false);
    let k = &edge.k;
    let (sock, lport) = raw_socket();
    edge.call((&sock, lport), "kept", &routing, 6000);
    let call_id = format!("kept-{lport}");
    let ids = [call_id.as_str(), &format!("kept{lport}"), "vendor"];

    let stranger = xmlrpc(k, "127.0.0.2", "dlg.terminate_dlg", ids);
    assert_eq!(stranger.code, 403, "{stranger:?}\n{}", k.log());
    let other = xmlrpc(k, "127.0.0.1", "dlg.end_dlg", ids);
    assert_eq!(other.code, 403, "{other:?}");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    udp.send_to(
        xmlrpc_post(k, "dlg.terminate_dlg", ids).as_bytes(),
        ("127.0.0.1", k.port),
    )
    .unwrap();
    let mut buf = [0u8; 65535];
    let over_udp = udp
        .recv(&mut buf)
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
    assert!(over_udp.is_err(), "answered over UDP: {over_udp:?}");
    let metrics = {
        let mut http = SipStream::connect_from("127.0.0.1", k.port);
        http.send(&format!(
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            k.port
        ));
        Reply::parse(&http.next().unwrap())
    };
    assert_eq!(metrics.code, 200, "{}", k.log());

    // Still up: no BYE either way, its place held.
    assert_eq!(
        requests_within(&sock, "BYE", "kept", Duration::from_millis(500)),
        0
    );
    assert!(edge.vendor.received("BYE").is_empty());
    assert_eq!(k.rpc("warp.stats")["limits.active"], "1");

    let rtpengine = xmlrpc(k, "127.0.0.1", "dlg.terminate_dlg", ids);
    assert_eq!(rtpengine.code, 200, "{rtpengine:?}");
    assert!(!rtpengine.body.contains("<fault>"), "{}", rtpengine.body);
    assert_eq!(edge.ended_by_the_edge(&sock, "kept").1.len(), 1);
    edge.holds_no_call();
}
