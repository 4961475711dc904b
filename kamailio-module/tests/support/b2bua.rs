//! A vendor gateway that takes calls as a B2BUA and places a call to one number again
//! as a new call — its own Call-ID, tags and Via, the same calling and called numbers —
//! to an edge, from an address a customer trunk's ACL lists: a hairpin loop, as a
//! wholesale vendor (or a carrier behind it) that routes the number back to a partner
//! of the edge's makes one. Nothing the edge put on the call comes back with it, so
//! the edge's Via check cannot see it. The edge's INVITE gets the final reply the call
//! placed again got (a loop ends in a failure: the end-to-end ACK of a 2xx is not
//! played). Any other INVITE is answered 200, a BYE or an OPTIONS 200.

use super::vendor::{header, reply};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the calls it places again go.
pub struct Loop {
    /// The edges' ports on 127.0.0.1: a call goes to the edge after the one that sent
    /// it (the same one when there is one), as a partner spreading calls over the
    /// edges would send it.
    pub edges: Vec<u16>,
    /// The address it places calls from, one a trunk's ACL lists (127.0.0.3: T2's).
    pub source: &'static str,
    /// The called number it routes back: the user part of the edge's Request-URI.
    pub number: &'static str,
    /// How long after the edge's INVITE it places the call again: one hop of the loop.
    pub hop: Duration,
}

pub struct B2bua {
    /// The INVITEs the edges sent it, in order.
    invites: Arc<Mutex<Vec<String>>>,
    /// The final reply each call it placed again got, as (Call-ID, code), in order.
    finals: Arc<Mutex<Vec<(String, u16)>>>,
}

/// The edge's INVITE a call placed again answers, until that call's final reply; and
/// where the INVITE came from.
type Waiting = Arc<Mutex<HashMap<String, (String, SocketAddr)>>>;

impl B2bua {
    /// The gateway on 127.0.0.1:`port`.
    pub fn start(port: u16, looping: Loop) -> B2bua {
        let gateway = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let caller = UdpSocket::bind((looping.source, 0)).unwrap();
        let b2bua = B2bua {
            invites: Arc::default(),
            finals: Arc::default(),
        };
        let waiting = Waiting::default();
        let placing = Placing {
            caller: caller.try_clone().unwrap(),
            waiting: waiting.clone(),
            looping,
            placed: 0,
        };
        let answering = gateway.try_clone().unwrap();
        let finals = b2bua.finals.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            while let Ok((n, edge)) = caller.recv_from(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]);
                let code = msg.strip_prefix("SIP/2.0 ").and_then(|s| s.get(..3));
                let Some(code @ 200..) = code.and_then(|c| c.parse::<u16>().ok()) else {
                    continue;
                };
                let call_id = header(&msg, "call-id").to_owned();
                let Some((invite, from)) = waiting.lock().unwrap().remove(&call_id) else {
                    continue;
                };
                let _ = caller.send_to(ack(&msg).as_bytes(), edge);
                let status = msg["SIP/2.0 ".len()..].split("\r\n").next().unwrap_or("");
                let relayed = reply(status, &invite, port) + "Content-Length: 0\r\n\r\n";
                let _ = answering.send_to(relayed.as_bytes(), from);
                finals.lock().unwrap().push((call_id, code));
            }
        });
        let invites = b2bua.invites.clone();
        std::thread::spawn(move || serve(gateway, port, invites, placing));
        b2bua
    }

    /// The INVITEs the edges sent it, in order.
    pub fn invites(&self) -> Vec<String> {
        self.invites.lock().unwrap().clone()
    }

    /// The final reply each call it placed again got, as (Call-ID, code), in order.
    pub fn finals(&self) -> Vec<(String, u16)> {
        self.finals.lock().unwrap().clone()
    }
}

/// Answers what the edges send the gateway on `port`, placing the calls to the looped
/// number again.
fn serve(gateway: UdpSocket, port: u16, invites: Arc<Mutex<Vec<String>>>, mut placing: Placing) {
    let mut buf = [0u8; 65535];
    while let Ok((n, from)) = gateway.recv_from(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let answer = |status: &str| {
            let out = reply(status, &msg, port) + "Content-Length: 0\r\n\r\n";
            let _ = gateway.send_to(out.as_bytes(), from);
        };
        match msg.split(' ').next().unwrap_or("") {
            "INVITE" => {
                invites.lock().unwrap().push(msg.clone());
                if called_user(&msg) == placing.looping.number {
                    answer("100 Trying");
                    placing.again(msg, from);
                } else {
                    answer("200 OK");
                }
            }
            "BYE" | "OPTIONS" => answer("200 OK"),
            _ => {}
        }
    }
}

/// The calls placed again: from `caller`, waiting for their final replies in `waiting`.
struct Placing {
    caller: UdpSocket,
    waiting: Waiting,
    looping: Loop,
    placed: u32,
}

impl Placing {
    /// Places `invite`'s call again, [`Loop::hop`] from now, to the edge after `from`.
    fn again(&mut self, invite: String, from: SocketAddr) {
        self.placed += 1;
        let edges = &self.looping.edges;
        let next = edges
            .iter()
            .position(|&p| p == from.port())
            .map_or(0, |i| (i + 1) % edges.len());
        let edge = SocketAddr::from(([127, 0, 0, 1], edges[next]));
        let local = self.caller.local_addr().unwrap();
        let call_id = format!("placed-again-{}-{}", self.placed, local.port());
        let placed = format!(
            "INVITE sip:{user}@{edge} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id}\r\n\
             From: <sip:{caller}@{ip}>;tag={call_id}\r\n\
             To: <sip:{user}@{edge}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:{caller}@{local}>\r\n\
             {identity}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            user = called_user(&invite),
            caller = uri_user(header(&invite, "from")),
            ip = local.ip(),
            identity = match header(&invite, "p-asserted-identity") {
                "" => String::new(),
                pai => format!("P-Asserted-Identity: {pai}\r\n"),
            },
        );
        self.waiting.lock().unwrap().insert(call_id, (invite, from));
        let (caller, hop) = (self.caller.try_clone().unwrap(), self.looping.hop);
        std::thread::spawn(move || {
            std::thread::sleep(hop);
            let _ = caller.send_to(placed.as_bytes(), edge);
        });
    }
}

/// The user part of a request's Request-URI.
fn called_user(request: &str) -> &str {
    let uri = request.split(' ').nth(1).unwrap_or("");
    uri_user(uri)
}

/// The user part of the (first) SIP URI in `text`.
fn uri_user(text: &str) -> &str {
    let after = text.split_once("sip:").map_or("", |(_, rest)| rest);
    after.split(['@', ';', '>']).next().unwrap_or("")
}

/// The ACK of `final_reply`, a failure to an INVITE this side placed: in the INVITE's
/// transaction (RFC 3261 17.1.1.3), to where the INVITE went.
fn ack(final_reply: &str) -> String {
    let to = header(final_reply, "to");
    let user = uri_user(to);
    let host = to.split_once('@').map_or("", |(_, rest)| rest);
    let host = host.split(['>', ';']).next().unwrap_or("");
    format!(
        "ACK sip:{user}@{host} SIP/2.0\r\n\
         Via: {via}\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        via = header(final_reply, "via"),
        from = header(final_reply, "from"),
        call_id = header(final_reply, "call-id"),
    )
}
