//! The UDP ng listener: a datagram from a source not allowed, or without a cookie, is
//! dropped as it is read; then one task per request, each looked up in the
//! retransmission cache first.

use super::allow::AllowList;
use super::dropped::Dropped;
use super::handler::{error_body, Handler};
use super::in_flight::InFlight;
use super::reply_cache::{ReplyCache, Seen};
use crate::message::{self, Format};
use crate::transport::{MAX_DATAGRAM, MAX_UDP_PAYLOAD};
use std::sync::Arc;
use tokio::net::UdpSocket;

/// A reply merged from several nodes (`list`) can be bigger than one datagram carries,
/// and could not be sent at all.
const MAX_REPLY: usize = MAX_UDP_PAYLOAD;

/// Serves `socket` until aborted. A request already read is handled to its end in a
/// task of its own (counted in `in_flight`), which keeps the socket to answer on.
pub async fn serve_udp(
    handler: Arc<Handler>,
    socket: UdpSocket,
    set: u32,
    in_flight: InFlight,
    allow: AllowList,
    cookieless: Dropped,
) {
    let socket = Arc::new(socket);
    let cache = ReplyCache::new();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("ng recv: {e}");
                continue;
            }
        };
        // Before any parsing: answering a stranger's ping would confirm the port.
        if !allow.admits(peer, n) {
            continue;
        }
        let Ok((cookie, body)) = message::split(&buf[..n]) else {
            // Without a cookie there is nothing a client could match a reply to.
            cookieless.dropped(peer, n);
            continue;
        };
        let (key, body) = ((peer, cookie.to_vec()), body.to_vec());
        let (handler, socket, cache) = (handler.clone(), socket.clone(), cache.clone());
        let handling = in_flight.start();
        tokio::spawn(async move {
            let _handling = handling;
            let cookie = &key.1;
            match cache.begin(&key) {
                Seen::InFlight => return,
                Seen::Answered(reply) => {
                    let _ = socket.send_to(&reply, peer).await;
                    return;
                }
                Seen::New => {}
            }
            let handled = handler.handle(set, &body).await;
            let mut reply = message::frame(cookie, &handled.body);
            if reply.len() > MAX_REPLY {
                tracing::warn!(%peer, len = reply.len(), "reply too large for one UDP datagram");
                let reason = format!(
                    "reply too large for one UDP datagram ({} bytes)",
                    reply.len()
                );
                let format = Format::detect(&body).unwrap_or_default();
                reply = message::frame(cookie, &error_body(format, &reason));
            }
            let reply = Arc::new(reply);
            if let Err(e) = socket.send_to(&reply, peer).await {
                tracing::warn!(%peer, "ng reply not sent: {e}");
            }
            cache.finish(key, handled.cacheable.then_some(reply));
        });
    }
}
