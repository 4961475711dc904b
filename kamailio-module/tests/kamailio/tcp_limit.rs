//! TCP_MAX_PER_ADDRESS on the shipped config: one address cannot hold more TCP or TLS
//! connections than that, so that it cannot use up the edge's own limit
//! (TCP_MAX_CONNECTIONS) and lock every trunk out of TCP and TLS.

use super::tcp::{over, DIALLED};
use super::{no_redis, start_shipped};
use crate::support::tcp::SipStream;
use crate::support::udp::raw_request;
use crate::support::{dataset::Data, Kamailio};
use std::io::ErrorKind;
use std::time::Duration;

/// The limit the tests set (TCP_MAX_PER_ADDRESS).
const LIMIT: usize = 4;
/// A stranger's address (no trunk's ACL names it), and another one's.
const STRANGER: &str = "127.0.0.7";
const OTHER_STRANGER: &str = "127.0.0.9";
/// T1's address.
const TRUNK: &str = "127.0.0.1";

fn start(dir: &std::path::Path, more: &[&str]) -> Kamailio {
    let mut defines = vec![format!("TCP_MAX_PER_ADDRESS={LIMIT}")];
    defines.extend(more.iter().map(|d| d.to_string()));
    start_shipped(dir, &Data::with_gateways(), &no_redis(), &defines)
}

/// A new connection from `source` that sends an OPTIONS outside a call: the stream, and
/// whether the edge answered it (200) rather than closed the connection unanswered.
fn connect_and_ask(k: &Kamailio, source: &str, call: &str) -> (SipStream, bool) {
    let mut stream = SipStream::connect_from(source, k.port);
    let options = raw_request(k.port, stream.local_port(), "OPTIONS", DIALLED, call);
    stream.send(&over("tcp", &options));
    match stream.next_within(Duration::from_secs(3)) {
        Ok(reply) => {
            assert!(reply.starts_with("SIP/2.0 200 "), "{reply}\n{}", k.log());
            (stream, true)
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            (stream, false)
        }
        Err(e) => panic!("{call}: neither answered nor closed ({e})\n{}", k.log()),
    }
}

/// `count` new connections from `source`, each asking once: those answered, and how many
/// were closed unanswered.
fn ask_on_new_connections(
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
    let k = start(dir.path(), &[]);
    let (held, closed) = ask_on_new_connections(&k, STRANGER, LIMIT + 2, "over");
    assert_eq!((held.len(), closed), (LIMIT, 2), "{}", k.log());

    let (other, closed) = ask_on_new_connections(&k, OTHER_STRANGER, 1, "other");
    assert_eq!((other.len(), closed), (1, 0), "{}", k.log());
    let (trunk, closed) = ask_on_new_connections(&k, TRUNK, LIMIT + 2, "trunk");
    assert_eq!((trunk.len(), closed), (LIMIT + 2, 0), "{}", k.log());
    // The held connections still serve their address.
    for (n, mut stream) in held.into_iter().enumerate() {
        let call = format!("again{n}");
        let options = raw_request(k.port, stream.local_port(), "OPTIONS", DIALLED, &call);
        stream.send(&over("tcp", &options));
        let reply = stream.next().unwrap();
        assert!(reply.starts_with("SIP/2.0 200 "), "{reply}\n{}", k.log());
    }
}

/// A connection stops counting however it ends: closed by the stranger, reset by it,
/// or closed by the edge once idle for TCP_LIFETIME (2 s here): each time, as many new
/// ones as were gone are answered, and one more is closed unanswered.
#[test]
fn the_shipped_config_counts_no_connection_that_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let k = start(dir.path(), &["TCP_LIFETIME=2"]);
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
