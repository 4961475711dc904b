//! TCP_MAX_PER_ADDRESS on the shipped config: one address cannot hold more TCP or TLS
//! connections than that, so that it cannot use up the edge's own limit
//! (TCP_MAX_CONNECTIONS) and lock every trunk out of TCP and TLS.

use super::tcp::{over, DIALLED};
use super::tls::{tls_port, with_tls};
use super::{no_redis, start_shipped};
use crate::support::tcp::{Carrier, SipStream};
use crate::support::tls::Pki;
use crate::support::udp::raw_request;
use crate::support::{dataset::Data, Kamailio};
use std::io::ErrorKind;
use std::time::Duration;

/// The limit the tests set (TCP_MAX_PER_ADDRESS).
pub(super) const LIMIT: usize = 4;
/// A stranger's address (no trunk's ACL names it), and another one's.
pub(super) const STRANGER: &str = "127.0.0.7";
const OTHER_STRANGER: &str = "127.0.0.9";
/// T1's address.
const TRUNK: &str = "127.0.0.1";

fn start(dir: &std::path::Path, mut defines: Vec<String>) -> Kamailio {
    defines.push(format!("TCP_MAX_PER_ADDRESS={LIMIT}"));
    start_shipped(dir, &Data::with_gateways(), &no_redis(), &defines)
}

/// An OPTIONS outside a call on `stream` over `transport`: whether the edge answered it
/// (200) rather than closed the connection unanswered.
fn ask<S: Carrier>(k: &Kamailio, stream: &mut SipStream<S>, transport: &str, call: &str) -> bool {
    let options = raw_request(k.port, stream.local_port(), "OPTIONS", DIALLED, call);
    stream.send(&over(transport, &options));
    match stream.next_within(Duration::from_secs(3)) {
        Ok(reply) => {
            assert!(reply.starts_with("SIP/2.0 200 "), "{reply}\n{}", k.log());
            true
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            false
        }
        Err(e) => panic!("{call}: neither answered nor closed ({e})\n{}", k.log()),
    }
}

/// A new TCP connection from `source` that asks once: the stream, and whether it was
/// answered.
fn connect_and_ask(k: &Kamailio, source: &str, call: &str) -> (SipStream, bool) {
    let mut stream = SipStream::connect_from(source, k.port);
    let answered = ask(k, &mut stream, "tcp", call);
    (stream, answered)
}

/// `count` new connections from `source`, each asking once: those answered, and how many
/// were closed unanswered.
pub(super) fn ask_on_new_connections(
    k: &Kamailio,
    source: &str,
    count: usize,
    name: &str,
) -> (Vec<SipStream>, usize) {
    let mut answered = Vec::new();
    let mut closed = 0;
    for n in 0..count {
        match connect_and_ask(k, source, &format!("{name}{n}")) {
            (stream, true) => answered.push(stream),
            (_, false) => closed += 1,
        }
    }
    (answered, closed)
}

/// A stranger that opens LIMIT + 2 connections, each asking an OPTIONS, gets the first
/// LIMIT answered; the other two are closed unanswered. Meanwhile another stranger's
/// address is not held back, nor T1's, a trunk's own address, which has no limit. The
/// old config answered every one: an address could open connections until the edge
/// had none left to take.
#[test]
fn the_shipped_config_closes_connections_past_an_addresss_limit_unanswered() {
    let dir = tempfile::tempdir().unwrap();
    let k = start(dir.path(), Vec::new());
    let (held, closed) = ask_on_new_connections(&k, STRANGER, LIMIT + 2, "over");
    assert_eq!((held.len(), closed), (LIMIT, 2), "{}", k.log());

    let (other, closed) = ask_on_new_connections(&k, OTHER_STRANGER, 1, "other");
    assert_eq!((other.len(), closed), (1, 0), "{}", k.log());
    let (trunk, closed) = ask_on_new_connections(&k, TRUNK, LIMIT + 2, "trunk");
    assert_eq!((trunk.len(), closed), (LIMIT + 2, 0), "{}", k.log());
    // The held connections still serve their address.
    for (n, mut stream) in held.into_iter().enumerate() {
        assert!(
            ask(&k, &mut stream, "tcp", &format!("again{n}")),
            "{}",
            k.log()
        );
    }
}

/// An address's TCP and TLS connections count together: a stranger holding LIMIT - 1
/// over TCP and one over TLS is at its limit, and its next connection over TLS is
/// closed unanswered, as is its next over TCP.
#[test]
fn the_shipped_config_counts_an_addresss_tls_connections_with_its_tcp_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("edge");
    let k = start(dir.path(), with_tls(&pki));
    let (held, closed) = ask_on_new_connections(&k, STRANGER, LIMIT - 1, "tcp");
    assert_eq!((held.len(), closed), (LIMIT - 1, 0), "{}", k.log());
    let mut tls = pki.connect_from(STRANGER, tls_port(&k), false);
    assert!(ask(&k, &mut tls, "tls", "tls"), "{}", k.log());

    let mut over_limit = pki.connect_from(STRANGER, tls_port(&k), false);
    assert!(!ask(&k, &mut over_limit, "tls", "overtls"), "{}", k.log());
    let (_, answered) = connect_and_ask(&k, STRANGER, "overtcp");
    assert!(!answered, "{}", k.log());
}

/// A connection stops counting however it ends: closed by the stranger, reset by it,
/// or closed by the edge once idle for TCP_LIFETIME (2 s here): each time, as many new
/// ones as were gone are answered, and one more is closed unanswered.
#[test]
fn the_shipped_config_counts_no_connection_that_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let k = start(dir.path(), vec!["TCP_LIFETIME=2".into()]);
    let (mut held, closed) = ask_on_new_connections(&k, STRANGER, LIMIT + 1, "full");
    assert_eq!((held.len(), closed), (LIMIT, 1), "{}", k.log());
    // What the edge sees gone only once its TCP main process heard of it.
    let settle = || std::thread::sleep(Duration::from_millis(500));

    drop(held.drain(..2));
    settle();
    let (reopened, closed) = ask_on_new_connections(&k, STRANGER, 3, "closed");
    assert_eq!((reopened.len(), closed), (2, 1), "{}", k.log());
    held.extend(reopened);

    for stream in held.drain(..2) {
        stream.reset();
    }
    settle();
    let (reopened, closed) = ask_on_new_connections(&k, STRANGER, 3, "reset");
    assert_eq!((reopened.len(), closed), (2, 1), "{}", k.log());
    held.extend(reopened);

    // A TCP worker keeps a connection 5 s after its last message, the main process
    // TCP_LIFETIME more: then the edge closes each.
    for stream in &mut held {
        assert!(stream.closed_within(Duration::from_secs(15)), "{}", k.log());
    }
    settle();
    let (reopened, closed) = ask_on_new_connections(&k, STRANGER, LIMIT + 1, "idle");
    assert_eq!((reopened.len(), closed), (LIMIT, 1), "{}", k.log());
}
