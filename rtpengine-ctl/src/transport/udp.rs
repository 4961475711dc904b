//! UDP: one connected socket, a reader task, retransmission of the same bytes (same cookie).
//! Connected, the socket hears the ICMP port unreachable of a peer with nothing on its
//! port: the kernel reports it as ECONNREFUSED on the next receive or send.

use super::pending::Pending;
use super::{timeout_error, AbortOnDrop, Options};
use crate::error::{Error, Result};
use crate::message;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;

/// rtpengine's own limit for one ng datagram.
pub const MAX_DATAGRAM: usize = 0xffff;

/// The most one UDP datagram carries over IPv4 (65535 less the IP and UDP headers);
/// the kernel refuses a bigger one with a bare EMSGSIZE.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

#[derive(Debug)]
pub struct Udp {
    socket: Arc<UdpSocket>,
    pending: Pending,
    options: Options,
    _reader: AbortOnDrop,
}

impl Udp {
    pub async fn connect(peer: SocketAddr, options: Options) -> Result<Udp> {
        let local: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = Arc::new(UdpSocket::bind(local).await?);
        socket.connect(peer).await?;
        let pending = Pending::default();
        let reader = tokio::spawn(read_replies(socket.clone(), pending.clone()));
        Ok(Udp {
            socket,
            pending,
            options,
            _reader: AbortOnDrop(reader),
        })
    }

    pub async fn exchange(&self, cookie: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        let datagram = message::frame(cookie, body);
        if datagram.len() > MAX_UDP_PAYLOAD {
            return Err(Error::TooLarge {
                size: datagram.len(),
                limit: MAX_UDP_PAYLOAD,
            });
        }
        let mut waiter = self.pending.wait(cookie);
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            if let Err(e) = self.socket.send(&datagram).await {
                return Err(failure(e, &self.pending));
            }
            match tokio::time::timeout(self.options.timeout, waiter.reply()).await {
                Ok(reply) => return reply,
                Err(_) if attempts > self.options.retries => {
                    return Err(timeout_error(attempts, started))
                }
                Err(_) => {}
            }
        }
    }
}

async fn read_replies(socket: Arc<UdpSocket>, pending: Pending) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => match message::split(&buf[..n]) {
                Ok((cookie, body)) => pending.deliver(cookie, body),
                Err(e) => tracing::debug!("dropping unframed reply: {e}"),
            },
            Err(e) => {
                let e = failure(e, &pending);
                tracing::trace!("udp recv: {e}");
            }
        }
    }
}

/// The error a socket error makes of a request. A refusal, whichever of the reader's
/// receive or a request's send it shows up on, fails every request waiting at once:
/// nothing listens where they all went, and each would otherwise wait out its timeout.
fn failure(e: io::Error, pending: &Pending) -> Error {
    if e.kind() != io::ErrorKind::ConnectionRefused {
        return e.into();
    }
    pending.fail_waiting(|| Error::Refused);
    Error::Refused
}
