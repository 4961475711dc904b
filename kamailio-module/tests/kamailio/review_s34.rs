//! A review of this session's carrier-edge changes (EMERGENCY_GATEWAY's failover, the
//! refusal log limiter, TCP_MAX_PER_ADDRESS, STIR_FRESH): what it found wrong, each
//! on the shipped config.

use super::tcp::{call_as_t3, caller_request, final_on, over, DIALLED};
use super::tcp_limit::{ask_on_new_connections, LIMIT, STRANGER};
use super::{no_redis, start_shipped};
use crate::support::dataset::{Data, REALM};
use crate::support::tcp::SipStream;
use crate::support::udp::raw_request;
use crate::support::vendor::{Plays, Vendor};
use std::time::Duration;

/// WITH_AUTH: a credentials trunk's PBX (T3, from an address no trunk's ACL names)
/// whose call is up over its TCP connection, idle past TCP_LIFETIME (its connection
/// kept open as long as a call lasts, route[TCP_KEEP]): the connection still counts
/// against its address, so the other connections from there get one fewer than
/// TCP_MAX_PER_ADDRESS, and the PBX's BYE on it ends the call. The old config let the
/// connection's entry expire TCP_LIFETIME after its last request: the address's others
/// took the whole limit, and the BYE's connection, counted anew, was closed unanswered,
/// the call left up (and billed) until MAX_CALL_DURATION.
#[test]
fn the_shipped_config_counts_a_credentials_trunks_connection_as_long_as_its_call() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let defines = [
        "WITH_AUTH".to_string(),
        format!("AUTH_REALM=\"{REALM}\""),
        format!("TCP_MAX_PER_ADDRESS={LIMIT}"),
        "TCP_LIFETIME=2".to_string(),
    ];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let mut pbx = SipStream::connect_from(STRANGER, k.port);
    let lport = pbx.local_port();
    let ok = call_as_t3(&k, &mut pbx, "long");

    // Past TCP_LIFETIME (2 s) and htable's timer (2 s): the connection is still up.
    std::thread::sleep(Duration::from_secs(5));
    let (others, closed) = ask_on_new_connections(&k, STRANGER, LIMIT, "other");
    let bye = caller_request("BYE", 2, "long", lport, &ok);
    pbx.send(&over("tcp", &bye));
    let done = final_on(&mut pbx, "long", &k);
    assert!(done.starts_with("SIP/2.0 200 "), "{done}\n{}", k.log());
    assert_eq!(vendor.received("BYE").len(), 1, "{}", k.log());
    assert_eq!((others.len(), closed), (LIMIT - 1, 1), "{}", k.log());
}

/// WITH_ANTIFLOOD: a stranger at its TCP_MAX_PER_ADDRESS that goes on opening
/// connections, each sending an OPTIONS, has every one of them closed, those that get
/// its address banned too. The old config counted the refusal towards the ban first,
/// and route[FLOOD] ends the script as it bans: the connection that tipped the ban, and
/// each one while pike still saw the flood, stayed open, uncounted, for as long as its
/// requests kept coming.
#[test]
fn the_shipped_config_closes_a_connection_past_the_limit_that_gets_its_address_banned() {
    let dir = tempfile::tempdir().unwrap();
    let defines = [
        "WITH_ANTIFLOOD".to_string(),
        "PIKE_DENSITY=8".to_string(),
        "BAN_TIME=30".to_string(),
        format!("TCP_MAX_PER_ADDRESS={LIMIT}"),
    ];
    let k = start_shipped(dir.path(), &Data::with_gateways(), &no_redis(), &defines);
    let (held, closed) = ask_on_new_connections(&k, STRANGER, LIMIT, "held");
    assert_eq!((held.len(), closed), (LIMIT, 0), "{}", k.log());
    for n in 0..24 {
        let mut over_limit = SipStream::connect_from(STRANGER, k.port);
        let call = format!("over{n}");
        let options = raw_request(k.port, over_limit.local_port(), "OPTIONS", DIALLED, &call);
        over_limit.send(&over("tcp", &options));
        assert!(
            over_limit.closed_within(Duration::from_secs(2)),
            "{call} left open\n{}",
            k.log()
        );
    }
    let bans = k.kamcmd(&["htable.dump", "ipban"]).unwrap();
    assert!(bans.contains(STRANGER), "{bans}");
}
