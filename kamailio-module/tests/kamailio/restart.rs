//! Calls that outlive what held them: a call past its dialog's timeout is ended with BYEs,
//! and with WITH_DIALOG_DB a call answered before a crash or restart is counted, ended and
//! reported after it, across the cluster too.

use super::{calls_key, event_kinds, millis, node_name, start_shipped, wait_for_stat, Routing};
use crate::support;
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw, InDialog};
use std::time::{Duration, Instant};

/// A call still up `MAX_CALL_DURATION` after its answer (the dialog's timeout, cut to 2 s
/// here) is ended there and then: both sides get a BYE, so the call stops when its
/// `end` event says, rather than run on unbilled (and uncounted) once the dialog is
/// forgotten.
#[test]
fn the_shipped_config_ends_a_call_that_outlives_its_max_call_duration() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let k = start_shipped(
        dir.path(),
        &data,
        &redis.url(),
        &["MAX_CALL_DURATION=2".to_string()],
    );
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "long");
    InDialog::answered(&sock, &k, lport, ("long", data.cheap.0), &invite);
    // Nobody hangs up: the call is ended 2 s after the answer.
    let mut buf = [0u8; 65535];
    let deadline = Instant::now() + Duration::from_secs(6);
    let caller_bye = loop {
        assert!(
            Instant::now() < deadline,
            "the caller got no BYE:\n{}",
            k.log()
        );
        if let Ok(n) = sock.recv(&mut buf) {
            if buf[..n].starts_with(b"BYE ") {
                break true;
            }
        }
    };
    assert!(caller_bye);
    vendor.wait_for("BYE", &k);
    wait_for_stat(&k, "limits.active", "0");
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let kinds: Vec<String> = event_kinds(&cdrs, "long", lport);
    assert_eq!(kinds, ["start", "answer", "end"], "{cdrs:#?}");
    let end = cdrs.iter().find(|c| c["event"] == "end").unwrap();
    let lasted = millis(end, "end") - millis(end, "answer");
    assert!((1500..4000).contains(&lasted), "{end}");
}

/// With `WITH_DIALOG_DB` the shipped config keeps its calls in Redis: a call answered
/// before a crash (or a restart) counts against its trunk again once Kamailio is back,
/// and its BYE ends it with an `end` event carrying the answer time reported before.
#[test]
fn a_call_answered_before_a_crash_or_restart_is_counted_ended_and_reported_after_it() {
    a_call_survives_crash_and_restart(false, &Routing::direct());
}

/// As [`a_call_answered_before_a_crash_or_restart_is_counted_ended_and_reported_after_it`],
/// for a call dipped in an async worker: its dialog, written to Redis, was made in the
/// resumed route.
#[test]
fn a_dipped_call_answered_before_a_crash_or_restart_is_counted_ended_and_reported_after_it() {
    a_call_survives_crash_and_restart(false, &Routing::dipped());
}

/// As above with `WITH_CLUSTER`: the call counts again for the other edges, under the
/// restarted node's name.
#[test]
fn a_call_answered_before_a_restart_counts_again_across_the_cluster() {
    a_call_survives_crash_and_restart(true, &Routing::direct());
}

fn a_call_survives_crash_and_restart(cluster: bool, routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let mut defines = routing.defines(&[
        "WITH_DIALOG_DB".to_string(),
        format!("DIALOG_DB_URL=\"{}/1\"", redis.url()),
    ]);
    if cluster {
        defines.push("WITH_CLUSTER".into());
    }
    let mut k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", routing.number(), "survivor");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("survivor", data.cheap.0), &invite);
    routing.took(&k, 1);
    wait_for_stat(&k, "limits.active", "1");
    let before = redis.wait_for("warp:cdr:raw", 2, Duration::from_secs(5));
    let answer = before.iter().find(|c| c["event"] == "answer").cloned();
    let answer = answer.unwrap_or_else(|| panic!("no answer event: {before:#?}"));

    k.crash();
    k.start_again();
    assert_eq!(k.rpc("warp.stats")["limits.active"], "1", "{}", k.log());
    k.stop();
    k.start_again();
    assert_eq!(k.rpc("warp.stats")["limits.active"], "1", "{}", k.log());
    // This run's count in Redis (written by the heartbeat), when the edges share one.
    // None once the heartbeat has deleted the field of a trunk with no call left.
    let node_count = || redis.cli(&["HGET", &calls_key("T1"), &node_name(&k)]);
    let wait_for_node_count = |n: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Some(node_count().trim())
            .filter(|c| !c.is_empty())
            .unwrap_or("0")
            != n
        {
            assert!(Instant::now() < deadline, "{}", k.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    if cluster {
        wait_for_node_count("1");
    }
    send_raw(
        &sock,
        &k,
        &dialog.request("BYE", 2, "Content-Length: 0\r\n\r\n"),
    );
    assert_eq!(final_reply(&sock, &k, "survivor").code, 200, "{}", k.log());
    assert_eq!(vendor.received("BYE").len(), 1);
    wait_for_stat(&k, "limits.active", "0");
    if cluster {
        wait_for_node_count("0");
    }
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let kinds: Vec<String> = event_kinds(&cdrs, "survivor", lport);
    assert_eq!(kinds, ["start", "answer", "end"], "{cdrs:#?}");
    let end = cdrs.iter().find(|c| c["event"] == "end").unwrap();
    for field in [
        "answer",
        "vendor",
        "attempt",
        "customer_rate",
        "vendor_rate",
        "trunk",
    ] {
        assert_eq!(end[field], answer[field], "{field}: {end} after {answer}");
    }
    assert!(millis(end, "end") > millis(&answer, "answer"), "{end}");
    // The ended call's dialog leaves Redis once its BYE's transaction is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis
        .cli(&["-n", "1", "KEYS", "dialog*:entry::*"])
        .trim()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "{}", k.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}
