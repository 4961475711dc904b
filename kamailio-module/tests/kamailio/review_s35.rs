//! Review of session 35's changes to the carrier edge: what an attacker or the on-call
//! engineer would find in them, each with the case that showed it.

use super::hairpin::NO_HAIRPIN_CHECK;
use super::log_flood::{at_window_start, lines_with, start, summary};
use super::shaken::identity_lines;
use super::shaken_div::ForwardingEdge;
use super::tcp::DIALLED;
use crate::support::dataset::Data;
use crate::support::udp::{raw_request, raw_socket, InDialog};
use crate::support::vendor::{Plays, Vendor};

/// How many calls over its limit T1 places after the strangers.
const OVER: usize = 5;

/// Strangers from more than LOG_ADDRESSES addresses in a window (a flood sprayed from
/// forged sources, a few UDP packets) do not hide a trunk's calls over its limit: its
/// first refusal is logged with its Call-ID and the rest summed up naming the trunk,
/// as without the strangers. A trunk's are not counted among the addresses (trunks are
/// as many as the snapshot has). The config as landed counted them there, so the
/// trunk's refusals fell among "other addresses'": no line named it.
#[test]
fn the_shipped_config_logs_a_trunks_calls_over_its_limit_past_log_addresses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data {
        t1_limits: (1, 100),
        ..Data::with_gateways()
    };
    let _vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start(&dir, &data, &[NO_HAIRPIN_CHECK, "LOG_ADDRESSES=2"]);
    let (sock, lport) = raw_socket();
    let held = raw_request(k.port, lport, "INVITE", DIALLED, "held");
    InDialog::answered(&sock, &k, lport, ("held", data.cheap.0), &held);
    at_window_start();
    for source in ["127.0.0.11", "127.0.0.12", "127.0.0.13"] {
        let reply = k.request_to(source, DIALLED, "INVITE", "");
        assert_eq!(reply.code, 403, "{}", k.log());
    }
    for _ in 0..OVER {
        let reply = k.request("INVITE", "");
        assert_eq!(reply.code, 503, "{}", k.log());
    }
    let refused = lines_with(
        &k,
        "from 127.0.0.1 refused: 503 Concurrent Call Limit Exceeded",
    );
    assert_eq!(refused, 1, "{}", k.log());
    let line = summary(&k, "trunk T1", "503 Concurrent Call Limit Exceeded");
    assert!(line.contains(&format!(": {} more", OVER - 1)), "{line}");
}

/// A Diversion naming a URI longer than any number's (here past Kamailio's 8 kB print
/// buffer, which warp_e164() reads its parameter through) names no number: the call goes
/// on with the caller's Identity alone, logged once and short. As landed, the
/// transformations reading the header failed on it, three ERROR lines a call, and the
/// INFO line carried what was left.
#[test]
fn the_shipped_config_reads_no_number_in_a_diversion_too_long_for_one() {
    let edge = ForwardingEdge::start();
    let junk = "9".repeat(9000);
    let invite = edge.forwarded(&format!("Diversion: <sip:{junk}@pbx>\r\n"));
    assert_eq!(identity_lines(&invite), [edge.theirs.as_str()], "{invite}");
    let (k, log) = (&edge.k, edge.k.log());
    let refused: Vec<&str> = (log.lines())
        .filter(|l| l.contains("no div PASSporT, the header naming the number"))
        .collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert!(refused[0].ends_with("is 9010 bytes long"), "{}", refused[0]);
    // (The ERRORs of the dialog module are request_to()'s INVITE's: it has no Contact.)
    assert!(
        !log.contains("too big") && !log.contains("assignment failed"),
        "{log}"
    );
    assert_eq!(k.rpc("warp.stats")["warp_e164.errors"], "0", "{log}");
}
