//! Keepalives inside calls (see keepalive.rs) where what carries them changes: a call
//! restored from Redis after a restart (WITH_DIALOG_DB), and callers over TCP or TLS,
//! whose keepalives go over their connection while it lasts.

use super::keepalive::{ended_for_the_vendors_481, keepalive_defines, vanished_callers_call_ends};
use super::tcp::{call_over, caller_request, final_on, over, DIALLED};
use super::tls::{tls_port, with_tls};
use super::{event_kinds, holds_no_call, millis, start_shipped, wait_for_stat};
use crate::support::redis::Redis;
use crate::support::tcp::{Carrier, SipStream};
use crate::support::tls::Pki;
use crate::support::udp::{behind_nat, raw_request, raw_socket, InDialog};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{dataset::Data, Kamailio};
use std::time::{Duration, Instant};

/// The dialog module's flags for the keepalives asked for (dlg_set_property ka-src,
/// ka-dst): DLG_IFLAG_KA_SRC and DLG_IFLAG_KA_DST.
const KA_BOTH_SIDES: u32 = (1 << 1) | (1 << 2);

/// With WITH_DIALOG_DB a call's dialog row in Redis keeps the keepalives asked for it
/// (its `iflags`), and the dialog module, loading it after a crash and again after a
/// restart (the flags as they were), sends them again: the vendor, which forgot the
/// call meanwhile, answers 481, and the call is ended one interval and 10 s after the
/// restart as it would have been without one (BYEs to both sides, one `end` event, its
/// trunk place given back).
#[test]
fn the_shipped_config_ends_a_call_the_vendor_forgot_after_a_restart_with_the_dialog_db() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::ForgetsCalls);
    let mut defines = keepalive_defines();
    defines.push("WITH_DIALOG_DB".into());
    defines.push(format!("DIALOG_DB_URL=\"{}/1\"", redis.url()));
    let mut k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", DIALLED, "restored");
    InDialog::answered(&sock, &k, lport, ("restored", data.cheap.0), &invite);
    wait_for_stat(&k, "limits.active", "1");
    let stored = stored_iflags(&redis);
    assert_eq!(stored & KA_BOTH_SIDES, KA_BOTH_SIDES, "iflags {stored}");

    k.crash();
    k.start_again();
    k.stop();
    k.start_again();
    let restarted = Instant::now();
    assert_eq!(k.rpc("warp.stats")["limits.active"], "1", "{}", k.log());
    assert_eq!(loaded_iflags(&k), stored, "{}", k.log());
    // One interval from the dialog's load to the keepalive, 10 s from its 481.
    ended_for_the_vendors_481(&sock, &k, restarted, "the restart");
    assert!(!vendor.received("OPTIONS").is_empty(), "{}", k.log());
    vendor.wait_for("BYE", &k);
    holds_no_call(&k);
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let kinds: Vec<String> = event_kinds(&cdrs, "restored", lport);
    assert_eq!(kinds, ["start", "answer", "end"], "{cdrs:#?}");
    let end = cdrs.iter().find(|c| c["event"] == "end").unwrap();
    assert!(millis(end, "end") - millis(end, "answer") > 36_000, "{end}");
}

/// The `iflags` of the one dialog in Redis (database 1, DIALOG_DB_URL's here).
fn stored_iflags(redis: &Redis) -> u32 {
    let keys = redis.cli(&["-n", "1", "KEYS", "dialog:entry::*"]);
    let keys: Vec<&str> = keys
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let iflags = redis.cli(&["-n", "1", "HGET", keys[0], "iflags"]);
    iflags
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("iflags {iflags:?}"))
}

/// The `iflags` of `k`'s one dialog, as `dlg.list` shows it.
fn loaded_iflags(k: &Kamailio) -> u32 {
    let list = k.kamcmd(&["dlg.list"]).unwrap();
    let iflags = list
        .lines()
        .filter_map(|l| l.trim().strip_prefix("iflags: "));
    let iflags: Vec<u32> = iflags.map(|n| n.parse().unwrap()).collect();
    assert_eq!(iflags.len(), 1, "{list}");
    iflags[0]
}

/// Two callers behind NAT over TCP: one answers its keepalives over its connection and
/// its call stays up past two intervals until it hangs up; the other's PBX died (its
/// connection closed, nothing listening at its address), the keepalive's connection to
/// its alias is refused, and its call is ended as one whose caller answers nothing.
#[test]
fn the_shipped_config_keeps_a_tcp_callers_call_and_ends_one_whose_connection_is_gone() {
    let connect = |k: &Kamailio| SipStream::connect(k.port);
    keeps_a_callers_call_and_ends_one_whose_connection_is_gone("tcp", &[], connect);
}

/// As [`the_shipped_config_keeps_a_tcp_callers_call_and_ends_one_whose_connection_is_gone`],
/// over TLS (WITH_TLS): the keepalive to the vanished caller's alias tries a TLS
/// connection, refused alike.
#[test]
fn the_shipped_config_keeps_a_tls_callers_call_and_ends_one_whose_connection_is_gone() {
    let pki = Pki::make("edge");
    let connect = |k: &Kamailio| pki.connect(tls_port(k), false);
    keeps_a_callers_call_and_ends_one_whose_connection_is_gone("tls", &with_tls(&pki), connect);
}

/// Callers behind NAT over `transport` ("tcp", "tls"), connected by `connect`, the
/// shipped config started with `defines` too: see
/// [`the_shipped_config_keeps_a_tcp_callers_call_and_ends_one_whose_connection_is_gone`].
fn keeps_a_callers_call_and_ends_one_whose_connection_is_gone<S: Carrier>(
    transport: &str,
    defines: &[String],
    connect: impl Fn(&Kamailio) -> SipStream<S>,
) {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let mut defines = defines.to_vec();
    defines.extend(keepalive_defines());
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let call = |name| {
        let mut caller = connect(&k);
        let lport = caller.local_port();
        let invite = behind_nat(&raw_request(k.port, lport, "INVITE", DIALLED, name), lport);
        let ok = call_over(transport, &mut caller, &over(transport, &invite), name, &k);
        (caller, lport, ok)
    };
    let (mut alive, alive_port, ok) = call("alive");
    let (vanished, vanished_port, _) = call("vanished");
    let answered = Instant::now();
    wait_for_stat(&k, "limits.active", "2");
    drop(vanished);

    let vanished = format!("vanished-{vanished_port}");
    vanished_callers_call_ends(
        (&mut alive, ("200 OK", "")),
        &k,
        &vendor,
        &vanished,
        answered,
    );
    assert!(
        k.log().contains("Connection refused"),
        "no connection tried:\n{}",
        k.log()
    );
    wait_for_stat(&k, "limits.active", "1");

    let bye = caller_request("BYE", 2, "alive", alive_port, &ok);
    alive.send(&over(transport, &bye));
    let done = final_on(&mut alive, "alive", &k);
    assert!(done.starts_with("SIP/2.0 200 "), "{done}\n{}", k.log());
    assert_eq!(vendor.received("BYE").len(), 2, "{}", k.log());
    holds_no_call(&k);
    let cdrs = redis.wait_for("warp:cdr:raw", 6, Duration::from_secs(5));
    for (call, lport) in [("alive", alive_port), ("vanished", vanished_port)] {
        let kinds: Vec<String> = event_kinds(&cdrs, call, lport);
        assert_eq!(kinds, ["start", "answer", "end"], "{call}: {cdrs:#?}");
    }
}
