//! A SIP peer over UDP on loopback, one message at a time: a caller's requests to the edge
//! and the replies it waits for, the requests of an answered call ([`InDialog`]), and the
//! parts of a message the tests read or rewrite.

use super::{Kamailio, Reply};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A UDP socket of the caller's on 127.0.0.1, and its port.
pub fn raw_socket() -> (std::net::UdpSocket, u16) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let lport = sock.local_addr().unwrap().port();
    (sock, lport)
}

/// Fails if `who`'s `sock` receives anything within `wait`.
pub fn assert_nothing_reaches(sock: &std::net::UdpSocket, who: &str, k: &Kamailio, wait: Duration) {
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 65535];
    if let Ok(n) = sock.recv(&mut buf) {
        let message = String::from_utf8_lossy(&buf[..n]);
        panic!("{who} received:\n{message}\n{}", k.log());
    }
}

/// Sends `text` from the caller's `sock` to Kamailio.
pub fn send_raw(sock: &std::net::UdpSocket, k: &Kamailio, text: &str) {
    sock.send_to(text.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
}

/// A request of call `call` (Call-ID `<call>-<lport>`, one transaction: CANCEL and
/// retransmissions share the INVITE's branch) from the caller at `lport` to `user`.
pub fn raw_request(port: u16, lport: u16, method: &str, user: &str, call: &str) -> String {
    format!(
        "{method} sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-{call}{lport}\r\n\
         From: <sip:3035550100@127.0.0.1>;tag={call}{lport}\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: {call}-{lport}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:3035550100@127.0.0.1:{lport}>\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The next final reply `sock` receives for `call` (see [`raw_request`]), skipping
/// provisional ones and tm's retransmissions of other calls' finals.
pub fn final_reply(sock: &std::net::UdpSocket, k: &Kamailio, call: &str) -> Reply {
    Reply::parse(&final_reply_text(sock, k, &format!("{call}-")))
}

/// The next final reply `sock` receives whose Call-ID starts with `call_id`, as it
/// came.
pub fn final_reply_text(sock: &std::net::UdpSocket, k: &Kamailio, call_id: &str) -> String {
    let mut buf = [0u8; 65535];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no final reply ({e}):\n{}", k.log()));
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let reply = Reply::parse(&text);
        let ours = reply
            .header("Call-ID")
            .is_some_and(|id| id.starts_with(call_id));
        if reply.code >= 200 && ours {
            return text;
        }
    }
}

/// Asserts that a CANCEL sent from `sock` got its 200 and the INVITE its 487, in either
/// order: the edge answers the CANCEL in one worker while another may relay the 487.
pub fn assert_cancelled(sock: &std::net::UdpSocket, k: &Kamailio) {
    let mut codes: Vec<u16> = final_replies(sock, k, 2)
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    codes.sort();
    assert_eq!(codes, [200, 487], "{}", k.log());
}

/// The next `n` final replies `sock` receives, as (call, code) in the order they came
/// (the call as [`raw_request`] names it); a repeated final to a request already
/// answered (the vendor's 200 again, no ACK having come) is skipped.
pub fn final_replies(sock: &std::net::UdpSocket, k: &Kamailio, n: usize) -> Vec<(String, u16)> {
    let mut answered: Vec<(String, String)> = Vec::new();
    let mut finals = Vec::new();
    let mut buf = [0u8; 65535];
    while finals.len() < n {
        let len = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{finals:?}, no more final replies ({e}):\n{}", k.log()));
        let reply = Reply::parse(&String::from_utf8_lossy(&buf[..len]));
        let call = reply.header("Call-ID").and_then(|id| id.rsplit_once('-'));
        let request = (
            call.map_or("", |(call, _)| call).to_owned(),
            reply.header("CSeq").unwrap_or_default().to_owned(),
        );
        if reply.code >= 200 && !answered.contains(&request) {
            finals.push((request.0.clone(), reply.code));
            answered.push(request);
        }
    }
    finals
}

/// [`raw_request`]'s INVITE with an SDP offer (audio on port 6000).
pub fn raw_invite_with_sdp(port: u16, lport: u16, user: &str, call: &str) -> String {
    let sdp = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 6000 RTP/AVP 0\r\n";
    with_sdp(&raw_request(port, lport, "INVITE", user, call), sdp)
}

/// A bodiless `request` carrying `sdp` instead (as it is if `sdp` is empty).
pub fn with_sdp(request: &str, sdp: &str) -> String {
    if sdp.is_empty() {
        return request.to_owned();
    }
    request.replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
    )
}

/// A request of the caller's side of an answered call [`raw_request`] started, to the
/// vendor's Contact, with the edge's Record-Route as its Route (`None`: a caller that
/// ignored it).
pub struct InDialog<'a> {
    pub edge: u16,
    pub lport: u16,
    pub call: &'a str,
    pub vendor: u16,
    pub route: Option<String>,
    pub to: String,
}

impl<'a> InDialog<'a> {
    /// Sends `invite` (Call-ID `call`) to the edge, expects the vendor's 200 and ACKs
    /// it: the answered call's dialog, with the 200's Record-Route as its route, and
    /// the 200 as it came.
    pub fn answered(
        sock: &std::net::UdpSocket,
        k: &Kamailio,
        lport: u16,
        (call, vendor): (&'a str, u16),
        invite: &str,
    ) -> (Self, String) {
        send_raw(sock, k, invite);
        let text = final_reply_text(sock, k, &format!("{call}-"));
        let ok = Reply::parse(&text);
        assert_eq!(ok.code, 200, "{}", k.log());
        let dialog = InDialog {
            edge: k.port,
            lport,
            call,
            vendor,
            route: ok.header("Record-Route").map(str::to_owned),
            to: ok.header("To").unwrap().to_owned(),
        };
        send_raw(
            sock,
            k,
            &dialog.request("ACK", 1, "Content-Length: 0\r\n\r\n"),
        );
        (dialog, text)
    }

    pub fn request(&self, method: &str, cseq: u32, body: &str) -> String {
        let route = self
            .route
            .as_deref()
            .map(|r| format!("Route: {r}\r\n"))
            .unwrap_or_default();
        raw_request(self.edge, self.lport, method, "+12125550123", self.call)
            .replace(
                &format!("{method} sip:+12125550123@127.0.0.1:{}", self.edge),
                &format!("{method} sip:vendor@127.0.0.1:{}", self.vendor),
            )
            .replace(
                &format!("branch=z9hG4bK-{}{}", self.call, self.lport),
                &format!("branch=z9hG4bK-{method}{cseq}{}", self.lport),
            )
            .replace(
                "To: <sip:+12125550123@127.0.0.1>",
                &format!("{route}To: {}", self.to),
            )
            .replace(
                &format!("CSeq: 1 {method}"),
                &format!("CSeq: {cseq} {method}"),
            )
            .replace("Content-Length: 0\r\n\r\n", body)
    }

    /// A request of the vendor's side of the call, sent from `vport`: to the caller's
    /// Contact, through the edge's Record-Route, From and To swapped.
    pub fn vendor_request(&self, method: &str, cseq: u32, vport: u16) -> String {
        let route = self.route.as_deref().expect("the edge's Record-Route");
        format!(
            "{method} sip:3035550100@127.0.0.1:{lport} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{vport};branch=z9hG4bK-v{method}{cseq}{lport}\r\n\
             Route: {route}\r\n\
             From: {to}\r\n\
             To: <sip:3035550100@127.0.0.1>;tag={call}{lport}\r\n\
             Call-ID: {call}-{lport}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:vendor@127.0.0.1:{vport}>\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            lport = self.lport,
            to = self.to,
            call = self.call,
        )
    }
}

/// The distinct final replies (code, To header) `sock` receives within `within`.
pub fn finals_within(sock: &std::net::UdpSocket, within: Duration) -> BTreeSet<(u16, String)> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + within;
    let mut buf = [0u8; 65535];
    let mut finals = BTreeSet::new();
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let reply = Reply::parse(&String::from_utf8_lossy(&buf[..n]));
            if reply.code >= 200 {
                finals.insert((reply.code, reply.header("To").unwrap_or("").to_owned()));
            }
        }
    }
    finals
}

/// The body of a SIP message.
pub fn body_of(message: &str) -> &str {
    message.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// The value of `message`'s first header `name`.
pub fn header_of(message: &str, name: &str) -> String {
    message
        .split("\r\n")
        .skip(1)
        .find_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} in {message}"))
}

/// `request` as a caller behind NAT sends it from `lport`: its Via and Contact name a
/// private address, and its Via asks for no `rport`.
pub fn behind_nat(request: &str, lport: u16) -> String {
    request
        .replace(
            &format!("Via: SIP/2.0/UDP 127.0.0.1:{lport}"),
            "Via: SIP/2.0/UDP 192.168.1.10:5060",
        )
        .replace(
            &format!("Contact: <sip:3035550100@127.0.0.1:{lport}>"),
            "Contact: <sip:3035550100@192.168.1.10:5060>",
        )
}

/// The next request of `method` in call `call` (see [`raw_request`]) that `sock`
/// receives, skipping anything else.
pub fn next_request(sock: &std::net::UdpSocket, method: &str, call: &str, k: &Kamailio) -> String {
    let mut buf = [0u8; 65535];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {method} of {call} ({e}):\n{}", k.log()));
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        let call_id = format!("\r\nCall-ID: {call}-");
        if message.starts_with(&format!("{method} ")) && message.contains(&call_id) {
            return message;
        }
    }
}

/// The URI of `message`'s Contact.
pub fn contact_uri(message: &str) -> String {
    let contact = message
        .lines()
        .find_map(|l| l.strip_prefix("Contact: "))
        .unwrap_or_else(|| panic!("no Contact in {message}"));
    contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned()
}

/// A reply `status` to `request`, with `headers` (each ending in CRLF) and no body.
pub fn reply_to(request: &str, status: &str, headers: &str) -> String {
    let echoed = ["via", "from", "to", "call-id", "cseq", "record-route"];
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in request.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").trim();
        if echoed.contains(&name.to_ascii_lowercase().as_str()) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out + headers + "Content-Length: 0\r\n\r\n"
}
