//! CDR events in Redis's stream: every call's start, failed attempts, answer and end, with
//! the code of a reply tm made up; a ringing call the operator ends; a sender that
//! panicked; Redis stopped under load, and what a full buffer or a stop loses, loudly.

use super::{
    by_call, end_the_only_dialog, events_of, millis, start_reporting, start_shipped, wait_for_stat,
    RELAY, ROUTE,
};
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw};
use crate::support::{self, Kamailio, Script};
use std::collections::BTreeSet;
use std::time::Duration;

/// `redis_url` may name Redis by an IPv6 literal, in brackets as in any URL.
#[test]
fn cdr_events_reach_a_redis_named_by_an_ipv6_literal() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::default();
    let url = format!("redis://[::1]:{}", redis.port);
    let k = start_reporting(dir.path(), &data, &url, Script::Native(ROUTE), &[]);
    let (sock, lport) = raw_socket();
    send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "INVITE", "+12125550123", "v6"),
    );
    assert_eq!(final_reply(&sock, &k, "v6").code, 200, "{}", k.log());
    let cdrs = redis.wait_for("warp:cdr:raw", 1, Duration::from_secs(5));
    assert_eq!(cdrs.len(), 1, "{}", k.log());
    assert_eq!(cdrs[0]["event"], "start");
}

#[test]
fn every_call_leaves_its_raw_cdrs_in_the_redis_stream() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
    let _dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let k = start_reporting(dir.path(), &data, &redis.url(), Script::Cfg(RELAY), &[]);
    let status = Uac::new(k.port, dir.path(), 10, 10).spawn().wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());

    // start, failed at CHEAP (503), answer and end at DEAR: 4 per call.
    let cdrs = redis.wait_for("warp:cdr:raw", 40, Duration::from_secs(10));
    let calls = by_call(&cdrs);
    assert_eq!((cdrs.len(), calls.len()), (40, 10), "{cdrs:#?}");
    for (call_id, events) in calls {
        let kinds: Vec<(&str, u64, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap(),
                    e["attempt"].as_u64().unwrap(),
                    e["vendor"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("start", 1, "CHEAP"),
                ("failed", 1, "CHEAP"),
                ("answer", 2, "DEAR"),
                ("end", 2, "DEAR")
            ],
            "{call_id}"
        );
        for e in &events {
            assert_eq!(e["ban"], "C1");
            assert_eq!(e["trunk"], "T1");
            assert_eq!(e["ani"], "17205550199");
            assert_eq!(e["dnis"], "12125550123");
            assert_eq!(e["lrn"], "12125550123");
            assert_eq!(e["partition"], "P1");
            assert!(!e["zone"].as_str().unwrap().is_empty());
        }
        let [start, failed, answer, end] = &events[..] else {
            unreachable!()
        };
        assert_eq!(failed["sip_code"], 503);
        assert_eq!(failed["vendor_rate"], "0.004");
        assert_eq!(
            (answer["sip_code"].as_u64(), end["sip_code"].as_u64()),
            (Some(200), Some(200))
        );
        assert_eq!(answer["vendor_rate"], "0.009");
        assert!(start["answer"].is_null() && start["end"].is_null());
        let t0 = millis(start, "start");
        assert_eq!(millis(end, "start"), t0);
        assert!(t0 <= millis(answer, "answer"));
        // Each call lasts 200 ms between the caller's ACK and BYE.
        assert!(millis(end, "end") - millis(end, "answer") >= 150, "{end}");
    }
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["cdr.sent"], "40");
    assert_eq!(stats["cdr.overflow"], "0");
}

#[test]
fn a_cdr_sender_that_panicked_starts_again_with_the_events_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    // Each worker's sender panics on its first batch, events in hand.
    let k = start_reporting(
        dir.path(),
        &support::dataset::Data::default(),
        &redis.url(),
        Script::Native(ROUTE),
        &[("fault_inject", "cdr_sender")],
    );
    for _ in 0..20 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    let cdrs = redis.wait_for("warp:cdr:raw", 20, Duration::from_secs(10));
    let calls: BTreeSet<&str> = cdrs.iter().filter_map(|c| c["call_id"].as_str()).collect();
    assert_eq!(calls.len(), 20, "{}", k.log());
    assert!(
        k.log()
            .contains("CDR sender: caught panic (fault injected by modparam fault_inject)"),
        "{}",
        k.log()
    );
}

#[test]
fn a_ringing_call_the_operator_ends_reports_one_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::RingThenBusy);
    // No failover: the vendor's 486 is the call's last word.
    let no_failover = RELAY.replace("t_check_status(\"5[0-9][0-9]|408\")", "false");
    assert_ne!(no_failover, RELAY);
    let script = Script::Cfg(&no_failover);
    let k = start_reporting(dir.path(), &data, &redis.url(), script, &[]);
    let mut ringing = Uac::new(k.port, dir.path(), 1, 1).spawn();
    wait_for_stat(&k, "limits.active", "1");
    std::thread::sleep(Duration::from_millis(300));
    // The operator ends the call while it rings (dialog module: terminated), then the
    // vendor turns it down (dialog module: failed).
    end_the_only_dialog(&k);
    let _ = ringing.wait();
    wait_for_stat(&k, "limits.active", "0");
    std::thread::sleep(Duration::from_millis(2000));
    let cdrs = redis.cdrs("warp:cdr:raw");
    let kinds: Vec<&str> = cdrs.iter().map(|c| c["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["start", "end"], "{}", k.log());
    // Never answered: the end says the call was terminated, not completed.
    assert_eq!(cdrs[1]["sip_code"], 487, "{cdrs:#?}");
    assert!(cdrs[1]["answer"].is_null(), "{cdrs:#?}");
}

#[test]
fn redis_stopped_mid_load_loses_no_cdr_within_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
    let buffer = [("cdr_buffer", "5000")];
    let k = start_reporting(dir.path(), &data, &redis.url(), Script::Cfg(RELAY), &buffer);
    let mut uac = Uac::new(k.port, dir.path(), 200, 50).spawn();
    std::thread::sleep(Duration::from_millis(1000));
    redis.stop();
    // Calls keep flowing while Redis is down.
    std::thread::sleep(Duration::from_millis(2000));
    let during = k.rpc("warp.stats");
    redis.restart();
    let status = uac.wait().unwrap();
    assert!(
        status.success(),
        "calls failed while Redis was down ({status}):\n{}",
        k.log()
    );
    assert_ne!(
        during["cdr.redis_errors"], "0",
        "Redis was never found down"
    );

    let cdrs = redis.wait_for("warp:cdr:raw", 600, Duration::from_secs(15));
    // Delivery is at least once: count distinct events.
    let distinct: BTreeSet<(String, String)> = cdrs
        .iter()
        .map(|c| (c["call_id"].to_string(), c["event"].to_string()))
        .collect();
    assert_eq!(
        distinct.len(),
        600,
        "start, answer and end of 200 calls:\n{}",
        k.log()
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["cdr.overflow"], "0");
    assert!(
        k.log().contains("Redis not taking CDR events"),
        "{}",
        k.log()
    );
    assert!(k.log().contains("Redis is back"), "{}", k.log());
}

#[test]
fn cdr_events_dropped_on_a_full_buffer_or_at_shutdown_are_counted_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    support::dataset::publish(&snap);
    // Nothing listens on the Redis port: every event waits in the 5-event buffer.
    let dead = format!("redis://127.0.0.1:{}", support::free_udp_port());
    let params = [
        ("snapshot", snap.to_str().unwrap()),
        ("redis_url", &dead),
        ("cdr_stream", "warp:cdr:raw"),
        ("cdr_buffer", "5"),
    ];
    let mut k = Kamailio::start(&params, Script::Native(ROUTE));
    for _ in 0..40 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    let stats = k.rpc("warp.stats");
    let queued: u64 = stats["cdr.queued"].parse().unwrap();
    let overflow: u64 = stats["cdr.overflow"].parse().unwrap();
    assert_eq!(queued + overflow, 40);
    // Each of the two workers holds up to 5, its sender's batch included.
    assert!(queued <= 10, "{queued} held");
    assert!(
        k.log().contains("CDR buffer full (5 events)"),
        "{}",
        k.log()
    );
    // Stopping Kamailio while Redis is still down loses the queued events: loudly.
    let log = k.stop();
    let lost = format!(
        "{queued} CDR events were still queued when Kamailio stopped and are lost \
         (Redis unreachable, refusing or behind; 0 of {queued} delivered or spooled, \
         {overflow} dropped on a full buffer before)"
    );
    assert!(log.contains(&lost), "no {lost:?} in\n{log}");
}

#[test]
fn failure_cdrs_carry_the_code_of_a_reply_tm_made_up() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    // Both vendors' gateways are silent: nothing listens on their ports.
    let data = support::dataset::Data::with_gateways();
    let k = start_reporting(dir.path(), &data, &redis.url(), Script::Cfg(RELAY), &[]);
    let (sock, lport) = raw_socket();
    let send = |text: String| send_raw(&sock, &k, &text);
    // The caller gives up before any vendor answered: tm answers the INVITE 487.
    send(raw_request(
        k.port,
        lport,
        "INVITE",
        "12125550123",
        "cancelled",
    ));
    std::thread::sleep(Duration::from_millis(300));
    send(raw_request(
        k.port,
        lport,
        "CANCEL",
        "12125550123",
        "cancelled",
    ));
    let replies = [0, 1].map(|_| final_reply(&sock, &k, "cancelled"));
    let mut codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
    codes.sort();
    assert_eq!(codes, [200, 487], "{}", k.log());
    // Nobody answers either vendor: tm's timer answers 408, after failover.
    send(raw_request(
        k.port,
        lport,
        "INVITE",
        "12125550123",
        "unanswered",
    ));
    assert_eq!(
        final_reply(&sock, &k, "unanswered").code,
        408,
        "{}",
        k.log()
    );

    let cdrs = redis.wait_for("warp:cdr:raw", 5, Duration::from_secs(5));
    let outcome = |call: &str| -> Vec<(String, Option<u64>)> {
        cdrs.iter()
            .filter(|c| c["call_id"] == format!("{call}-{lport}").as_str())
            .map(|c| {
                (
                    c["event"].as_str().unwrap().to_owned(),
                    c["sip_code"].as_u64(),
                )
            })
            .collect()
    };
    let event = |kind: &str, code: u64| (kind.to_owned(), Some(code));
    assert_eq!(
        outcome("cancelled"),
        [("start".to_owned(), None), event("failed", 487)],
        "{cdrs:#?}"
    );
    assert_eq!(
        outcome("unanswered"),
        [
            ("start".to_owned(), None),
            event("failed", 408),
            event("failed", 408)
        ],
        "{cdrs:#?}"
    );
}

/// A final reply tm's callback noted for a call whose dialog never asked for it (here:
/// a call the script relays without the dialog module, whose last attempt could not
/// be sent: 477) is not handed to a later call whose request tm copied to the same
/// place in shared memory (as it does here: same size, the first copy freed): that
/// call's failure is reported with its vendor's own code, not the earlier call's.
#[test]
fn a_local_final_no_dialog_asked_for_is_not_reported_for_a_later_call() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    // CHEAP answers 503; DEAR cannot be sent to (UDP only) until generation 2, and then
    // rings and answers 486 (a code tm relays as it is: a 503 it would make a 500).
    let mut data = support::dataset::Data {
        uri_params: ("", ";transport=tcp"),
        ..support::dataset::Data::with_gateways()
    };
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
    let _dear = Uas::start(dir.path(), data.dear.0, Answer::RingThenBusy);
    // One worker, so that both calls' replies meet the same process's note; dialogs for
    // the calls that ask, once tm copied the request (the dialog's own shared memory
    // would otherwise take the place the first copy left); transactions freed soon
    // after their final reply.
    let script = RELAY
        .replace(
            "    dlg_manage();\n",
            "    t_newtran();\n    if ($hdr(X-Track) == \"yes\") { dlg_manage(); }\n",
        )
        .replace(
            "modparam(\"tm\", \"fr_timer\", 1000)\n",
            "children=1\nmodparam(\"tm\", \"fr_timer\", 1000)\nmodparam(\"tm\", \"wt_timer\", 200)\n",
        );
    assert!(script.contains("X-Track") && script.contains("wt_timer"));
    let k = start_reporting(dir.path(), &data, &redis.url(), Script::Cfg(&script), &[]);
    let (sock, lport) = raw_socket();
    // Same size, header value and call name alike: tm's copy of the second request
    // may take the place the first one's had.
    let invite = |call: &str, track: &str| {
        raw_request(k.port, lport, "INVITE", "+12125550123", call).replace(
            "Max-Forwards: 70\r\n",
            &format!("X-Track: {track}\r\nMax-Forwards: 70\r\n"),
        )
    };
    // No dialog: CHEAP's 503, then DEAR unsent (tm's callback notes 477 for nobody).
    send_raw(&sock, &k, &invite("plain", "no!"));
    assert_eq!(final_reply(&sock, &k, "plain").code, 500, "{}", k.log());
    // DEAR reachable now.
    data.generation = 2;
    data.uri_params = ("", ";transport=udp");
    data.publish(&dir.path().join("routing.snap"));
    k.rpc("warp.reload");
    // The first transaction is gone (wait timer) before the second comes.
    std::thread::sleep(Duration::from_millis(1500));
    send_raw(&sock, &k, &invite("track", "yes"));
    assert_eq!(final_reply(&sock, &k, "track").code, 486, "{}", k.log());

    // Two events of the plain call, three of the tracked one.
    let cdrs = redis.wait_for("warp:cdr:raw", 5, Duration::from_secs(5));
    let tracked: Vec<(String, String, Option<u64>)> = cdrs
        .iter()
        .filter(|c| c["call_id"] == format!("track-{lport}").as_str())
        .map(|c| {
            (
                c["event"].as_str().unwrap().to_owned(),
                c["vendor"].as_str().unwrap().to_owned(),
                c["sip_code"].as_u64(),
            )
        })
        .collect();
    let event = |kind: &str, vendor: &str, code| (kind.to_owned(), vendor.to_owned(), code);
    assert_eq!(
        tracked,
        [
            event("start", "CHEAP", None),
            event("failed", "CHEAP", Some(503)),
            event("failed", "DEAR", Some(486)),
        ],
        "{cdrs:#?}\n{}",
        k.log()
    );
}

/// A ringing call the operator ends after it failed over reports its end on the attempt
/// that was ringing, not on the vendor that had already failed (whose attempt has its
/// `failed` event).
#[test]
fn a_ringing_call_the_operator_ends_after_failover_ends_on_the_ringing_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
    let dear = support::vendor::Vendor::start(data.dear.0, support::vendor::Plays::Rings);
    let k = start_shipped(dir.path(), &data, &redis.url(), &[]);
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "ended");
    send_raw(&sock, &k, &invite);
    dear.wait_for("INVITE", &k);
    end_the_only_dialog(&k);
    wait_for_stat(&k, "limits.active", "0");
    // The caller gives up too.
    send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "CANCEL", "+12125550123", "ended"),
    );
    redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    // Time for any event after the outcome to show.
    std::thread::sleep(Duration::from_millis(500));
    let cdrs = redis.cdrs("warp:cdr:raw");
    let events = events_of(&cdrs, "ended", lport);
    let event = |kind: &str, attempt, vendor: &str, code| {
        (kind.to_owned(), attempt, vendor.to_owned(), code)
    };
    assert_eq!(
        events,
        [
            event("start", 1, "CHEAP", None),
            event("failed", 1, "CHEAP", Some(503)),
            event("end", 2, "DEAR", Some(487)),
        ],
        "{cdrs:#?}"
    );
}
