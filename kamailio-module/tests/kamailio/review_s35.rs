//! Review of session 35's changes to the carrier edge: what an attacker or the on-call
//! engineer would find in them, each with the case that showed it.

use super::hairpin::NO_HAIRPIN_CHECK;
use super::log_flood::{at_window_start, lines_with, start, summary};
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
