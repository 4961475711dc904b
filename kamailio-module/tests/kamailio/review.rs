//! The shipped config under an attacker's eye: what a stranger or a banned address can
//! still make the edge do with forged replies and requests.

use super::{no_redis, start_shipped};
use crate::support::dataset::Data;
use crate::support::udp::{raw_socket, send_raw};
use std::time::{Duration, Instant};

/// A forged final reply to a BYE the edge never sent, as one Via names it: what
/// reply_route's hold (kamailio #4169) looked for, matching no transaction.
fn forged_bye_reply(port: u16, n: usize) -> String {
    format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKforged{n}\r\n\
         From: <sip:a@127.0.0.1>;tag=f{n}\r\n\
         To: <sip:b@127.0.0.1>;tag=t{n}\r\n\
         Call-ID: forged-{n}\r\n\
         CSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A burst of forged 200s to BYEs (no transaction of the edge's) holds up no SIP worker:
/// an OPTIONS sent right after is answered at once. The old config's reply_route slept
/// 5 ms on each such reply before tm looked for its transaction, so a few hundred a
/// second from anyone, banned or not, kept every UDP worker asleep (here 600 held the
/// two workers the tests run 1.5 s).
#[test]
fn the_shipped_config_holds_no_worker_for_a_forged_reply_to_a_bye() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let (sock, _) = raw_socket();
    for n in 0..600 {
        send_raw(&sock, &k, &forged_bye_reply(k.port, n));
    }
    let sent = Instant::now();
    let reply = k.request_within(
        Duration::from_secs(5),
        "127.0.0.1",
        "12125550123",
        "OPTIONS",
        "",
    );
    let took = sent.elapsed();
    assert_eq!(reply.map(|r| r.code), Some(200), "{}", k.log());
    assert!(took < Duration::from_millis(300), "answered after {took:?}");
}
