//! The shipped config's log against a flood: a stranger's refusals, and junk, are
//! logged once per address and kind in a window of LOG_WINDOW s, the rest counted into
//! one summary line when the window ends; a call's own lines are logged as before.

use super::hairpin::NO_HAIRPIN_CHECK;
use super::review::in_no_call;
use super::tcp::over;
use super::{no_redis, start_shipped};
use crate::support::dataset::Data;
use crate::support::tcp::SipStream;
use crate::support::udp::raw_request;
use crate::support::vendor::{Plays, Vendor};
use crate::support::{Kamailio, Reply};
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DIALLED: &str = "12125550123";

/// The window the tests log in: short, so its summary comes within seconds.
const WINDOW: u64 = 4;

/// How many requests each flood sends.
pub(super) const FLOOD: usize = 200;

/// The shipped config with `more` defines and LOG_WINDOW at [`WINDOW`].
pub(super) fn start(dir: &tempfile::TempDir, data: &Data, more: &[&str]) -> Kamailio {
    let mut defines = vec![format!("LOG_WINDOW={WINDOW}")];
    defines.extend(more.iter().map(|d| d.to_string()));
    start_shipped(dir.path(), data, &no_redis(), &defines)
}

/// Sleeps until just after a window starts (the edge's windows are whole multiples of
/// LOG_WINDOW s of the clock), so that a flood of a second or so stays within one.
pub(super) fn at_window_start() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into = Duration::from_secs(now.as_secs() % WINDOW)
        + Duration::from_nanos(now.subsec_nanos().into());
    std::thread::sleep(Duration::from_secs(WINDOW) + Duration::from_millis(50) - into);
}

/// How many lines of `k`'s log contain `text`.
pub(super) fn lines_with(k: &Kamailio, text: &str) -> usize {
    k.log().lines().filter(|line| line.contains(text)).count()
}

/// Waits (20 s at most) for the log line that sums up `source`'s refusals of `kind`
/// (`source` an address, or `trunk <id>`).
pub(super) fn summary(k: &Kamailio, source: &str, kind: &str) -> String {
    let head = format!("{source}: ");
    let tail = format!(" more refusals ({kind}) within {WINDOW} s, not logged");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = k.log();
        let found: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(&head) && line.contains(&tail))
            .collect();
        if !found.is_empty() {
            assert_eq!(found.len(), 1, "{log}");
            return found[0].to_owned();
        }
        assert!(Instant::now() < deadline, "no summary of {kind}:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A BYE of a call the edge never had, from `caller`'s connection.
fn bye_of_no_call(k: &Kamailio, caller: &SipStream, call: &str) -> String {
    let bye = raw_request(k.port, caller.local_port(), "BYE", DIALLED, call);
    over("tcp", &in_no_call(bye))
}

/// An INVITE from `sock` that names the edge's own Via: a loop, as anyone can forge it.
fn looped_invite(k: &Kamailio, sock: &UdpSocket, n: usize) -> String {
    let lport = sock.local_addr().unwrap().port();
    let invite = raw_request(k.port, lport, "INVITE", DIALLED, &format!("loop{n}"));
    let edge_via = format!(
        "Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-edge{n}\r\n",
        k.port
    );
    invite.replacen("From: ", &format!("{edge_via}From: "), 1)
}

/// [`FLOOD`] BYEs of unknown calls over one TCP connection, each answered 481, and as
/// many INVITEs over UDP naming the edge's own Via, each answered 482: each flood
/// logged once, and summed up once its window ended ("199 more"), not [`FLOOD`] lines;
/// another address's is logged on its own. The old config logged every one of them.
#[test]
fn the_shipped_config_logs_a_flood_of_calls_of_no_call_or_looped_once_and_sums_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let k = start(&dir, &data, &[]);
    let mut flooder = SipStream::connect_from("127.0.0.7", k.port);
    at_window_start();
    for n in 0..FLOOD {
        flooder.send(&bye_of_no_call(&k, &flooder, &format!("gone{n}")));
        let reply = Reply::parse(&flooder.next().unwrap());
        assert_eq!(reply.code, 481, "{}", k.log());
    }
    let looper = UdpSocket::bind(("127.0.0.9", 0)).unwrap();
    looper
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for n in 0..FLOOD {
        looper
            .send_to(
                looped_invite(&k, &looper, n).as_bytes(),
                ("127.0.0.1", k.port),
            )
            .unwrap();
        let mut buf = [0u8; 65535];
        let len = looper.recv(&mut buf).unwrap();
        let reply = Reply::parse(&String::from_utf8_lossy(&buf[..len]));
        assert_eq!(reply.code, 482, "{}", k.log());
    }
    let mut other = SipStream::connect_from("127.0.0.8", k.port);
    other.send(&bye_of_no_call(&k, &other, "other"));
    assert_eq!(Reply::parse(&other.next().unwrap()).code, 481);
    let refused = |source| lines_with(&k, &format!("from {source} refused: no such call"));
    assert_eq!(refused("127.0.0.7"), 1, "{}", k.log());
    assert_eq!(refused("127.0.0.8"), 1, "{}", k.log());
    let looped = lines_with(&k, "from 127.0.0.9 refused: a loop");
    assert_eq!(looped, 1, "{}", k.log());
    let line = summary(&k, "127.0.0.7", "no such call");
    assert!(line.contains(&format!(": {} more", FLOOD - 1)), "{line}");
    let line = summary(&k, "127.0.0.9", "a loop");
    assert!(line.contains(&format!(": {} more", FLOOD - 1)), "{line}");
    // One request is nothing to sum up.
    std::thread::sleep(Duration::from_secs(1));
    assert!(!k.log().contains("127.0.0.8: "), "{}", k.log());
}

/// An HTTP GET of /metrics over `http`'s connection; the edge's reply.
pub(super) fn get_metrics(k: &Kamailio, http: &mut SipStream) -> std::io::Result<Reply> {
    http.send(&format!(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/plain\r\n\r\n",
        k.port
    ));
    http.next().map(|text| Reply::parse(&text))
}

/// WITH_PROMETHEUS: [`FLOOD`] GETs of /metrics over one TCP connection from an address
/// PROM_ALLOW does not list, each answered 403: logged once and summed up once, and
/// another address is logged on its own. The old config logged every one of them.
#[test]
fn the_shipped_config_logs_a_flood_of_refused_http_once_and_sums_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let k = start(&dir, &data, &["WITH_PROMETHEUS"]);
    let mut flooder = SipStream::connect_from("127.0.0.7", k.port);
    at_window_start();
    for _ in 0..FLOOD {
        let reply = get_metrics(&k, &mut flooder).unwrap();
        assert_eq!(reply.code, 403, "{}", k.log());
    }
    let mut other = SipStream::connect_from("127.0.0.8", k.port);
    assert_eq!(get_metrics(&k, &mut other).unwrap().code, 403);
    let refused = |source| lines_with(&k, &format!("from {source} refused: not in PROM_ALLOW"));
    assert_eq!(refused("127.0.0.7"), 1, "{}", k.log());
    assert_eq!(refused("127.0.0.8"), 1, "{}", k.log());
    let line = summary(&k, "127.0.0.7", "HTTP not in PROM_ALLOW");
    assert!(line.contains(&format!(": {} more", FLOOD - 1)), "{line}");
}

/// WITH_ANTIFLOOD with WITH_PROMETHEUS: HTTP refusals count towards a ban as SIP's do
/// (over TCP an address is its own): past the density the address's connections are
/// closed unanswered, and its SIP goes unanswered too. The old config answered them all.
#[test]
fn the_shipped_config_bans_an_address_refused_over_http_over_and_over() {
    let dir = tempfile::tempdir().unwrap();
    let (k, refused) = http_flooded(&dir, |k, reply| assert_eq!(reply.code, 403, "{}", k.log()));
    assert!(
        (5..30).contains(&refused),
        "{refused} refused before the ban"
    );
    let mut again = SipStream::connect_from("127.0.0.7", k.port);
    assert!(get_metrics(&k, &mut again).is_err(), "banned, answered");
    let wait = Duration::from_secs(1);
    let reply = k.request_within(wait, "127.0.0.7", DIALLED, "OPTIONS", "");
    assert!(reply.is_none(), "banned, answered {reply:?}");
    assert_eq!(k.request("OPTIONS", "").code, 200, "{}", k.log());
}

/// The shipped config with WITH_PROMETHEUS and WITH_ANTIFLOOD (a ban past 5 refusals a
/// second), asked for its metrics from 127.0.0.7 over one connection until it stops
/// answering (30 times at most): each answer goes to `seen`; how many there were.
pub(super) fn http_flooded(
    dir: &tempfile::TempDir,
    seen: impl Fn(&Kamailio, &Reply),
) -> (Kamailio, usize) {
    let defines = [
        "WITH_PROMETHEUS",
        "WITH_ANTIFLOOD",
        "PIKE_DENSITY=5",
        "BAN_TIME=30",
    ];
    let k = start(dir, &Data::with_gateways(), &defines);
    let mut flooder = SipStream::connect_from("127.0.0.7", k.port);
    let answered = (0..30)
        .map_while(|_| get_metrics(&k, &mut flooder).ok())
        .inspect(|reply| seen(&k, reply))
        .count();
    (k, answered)
}

/// A trunk's calls are logged as before, each its own routing line, however many come
/// at once; so are its calls refused by routing (each its own "refused" line).
#[test]
fn the_shipped_config_logs_every_call_of_a_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start(&dir, &data, &[NO_HAIRPIN_CHECK]);
    for _ in 0..10 {
        assert_eq!(k.request("INVITE", "").code, 200, "{}", k.log());
    }
    assert_eq!(
        lines_with(&k, &format!("-> +{DIALLED} ")),
        10,
        "{}",
        k.log()
    );
    for _ in 0..10 {
        assert_eq!(
            k.request_to("127.0.0.1", "999", "INVITE", "").code,
            484,
            "{}",
            k.log()
        );
    }
    assert_eq!(
        lines_with(&k, "from 127.0.0.1 refused: 484"),
        10,
        "{}",
        k.log()
    );
}

/// Past LOG_ADDRESSES addresses in a window (a flood from sprayed or forged sources),
/// the refusals of any new one are counted together: logged once, summed up once, so
/// what the edge keeps stays bounded. The first addresses keep their own lines.
#[test]
fn the_shipped_config_counts_together_the_refusals_of_addresses_past_log_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let k = start(&dir, &data, &["LOG_ADDRESSES=2"]);
    let strangers = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"];
    at_window_start();
    for source in strangers {
        for _ in 0..3 {
            let reply = k.request_to(source, DIALLED, "INVITE", "");
            assert_eq!(reply.code, 403, "{}", k.log());
        }
    }
    let refused = |source| lines_with(&k, &format!("from {source} refused: 403"));
    assert_eq!(strangers.map(refused), [1, 1, 0, 0], "{}", k.log());
    let past = "refusals from more than 2 addresses: the others' are counted, not logged";
    assert_eq!(lines_with(&k, past), 1, "{}", k.log());
    let line = summary(&k, "127.0.0.11", "403 Forbidden");
    assert!(line.contains(": 2 more"), "{line}");
    let others = "5 more refusals from other addresses within 4 s, not logged";
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines_with(&k, others) == 0 {
        assert!(Instant::now() < deadline, "{}", k.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}
