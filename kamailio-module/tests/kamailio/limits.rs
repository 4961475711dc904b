//! A trunk's limits on one node: calls per second and concurrent calls (503 over them,
//! other trunks unaffected), refusals that spend no CPS and no dip, and a trunk new to a
//! full limit table still held to its limits.

use super::{
    at_next_second, dip_params, start_with_dip, wait_for_stat, CLUSTER_TIMEOUT, RELAY, ROUTE,
};
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::{self, Kamailio, Script};
use std::time::{Duration, Instant};

#[test]
fn a_trunk_over_its_cps_gets_503_while_other_trunks_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    let data = support::dataset::Data {
        t1_limits: (100, 5),
        ..Default::default()
    };
    data.publish(&snap);
    let k = Kamailio::start(
        &[("snapshot", snap.to_str().unwrap())],
        Script::Native(ROUTE),
    );
    let probe = |source| Uac {
        source,
        probe: true,
        // A refused call just fails: no BYE for it (which would be routed too).
        extra: &["-default_behaviors", "abortunexp"],
        ..Uac::new(k.port, dir.path(), 30, 15)
    };
    // T1 (5 cps) and T2 (100 cps) at 15 calls per second each, at the same time.
    let (mut t1, mut t2) = (probe("127.0.0.1").spawn(), probe("127.0.0.3").spawn());
    let (t1, t2) = (t1.wait().unwrap(), t2.wait().unwrap());
    assert!(
        t2.success(),
        "T2 lost calls to T1's limit ({t2}):\n{}",
        k.log()
    );
    assert!(!t1.success(), "T1 went over its CPS unrefused");
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_route.calls"], "60");
    let refused: u32 = stats["limits.refused_cps"].parse().unwrap();
    // 30 calls over 2-3 s at most 5 admitted per second.
    assert!((15..=25).contains(&refused), "{refused} refused");
    assert_eq!(stats["limits.refused_concurrent"], "0");
    let reply = k.request("INVITE", "");
    assert!(
        reply.code == 200 || reply.reason == "CPS Limit Exceeded",
        "{} {}",
        reply.code,
        reply.reason
    );
}

#[test]
fn a_call_held_up_by_the_lrn_dip_counts_in_the_second_it_is_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    support::dataset::Data {
        t1_limits: (100, 5),
        ..Default::default()
    }
    .publish(&snap);
    let telique = support::telique::Telique::start();
    let url = telique.url();
    let mut params = dip_params(snap.to_str().unwrap(), &url);
    params[4] = ("lrn_timeout", "900");
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    // A call that waits 0.9 s on the (slow) dip, from second s into second s+1...
    at_next_second();
    std::thread::sleep(Duration::from_millis(280));
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let slow = std::thread::scope(|scope| {
        let slow = scope.spawn(|| k.request_to("127.0.0.1", "12125550003", "INVITE", "").code);
        // ... while T1's 5 calls of second s+1 arrive: all admitted.
        at_next_second();
        let first = (0..5)
            .filter(|_| k.request("INVITE", "").code == 200)
            .count();
        assert_eq!(first, 5, "{}", k.log());
        slow.join().unwrap()
    });
    // The slow call is the 6th of second s+1 and so are any after it: none may reopen
    // second s's window and start counting s+1 afresh.
    let late: Vec<u16> = (0..5).map(|_| k.request("INVITE", "").code).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(now, second, "the calls took too long to share one second");
    assert_eq!((slow, late), (503, vec![503; 5]), "{}", k.log());
}

#[test]
fn calls_over_a_trunks_cps_are_refused_before_they_pay_for_an_lrn_dip() {
    let (_dir, telique, k) = start_with_dip(&support::dataset::Data {
        t1_limits: (100, 3),
        ..Default::default()
    });
    // Ten calls in one second to a number only the dip knows, on a 3 cps trunk.
    at_next_second();
    let replies: Vec<(u16, String)> = (0..10)
        .map(|_| k.request_to("127.0.0.1", "12125550001", "INVITE", ""))
        .map(|r| (r.code, r.reason))
        .collect();
    let routed = replies.iter().filter(|(code, _)| *code == 200).count();
    assert_eq!(routed, 3, "{replies:?}");
    assert!(
        (replies.iter())
            .filter(|(code, _)| *code != 200)
            .all(|(code, reason)| (*code, reason.as_str()) == (503, "CPS Limit Exceeded")),
        "{replies:?}"
    );
    // Only the calls admitted were dipped: the refused ones cost the upstream nothing.
    assert_eq!(telique.seen().len(), routed, "{:?}", telique.seen());
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["lrn.dips"].as_str(),
            stats["limits.refused_cps"].as_str()
        ),
        ("3", "7")
    );
}

#[test]
fn a_trunk_at_its_concurrent_calls_gets_503_until_its_calls_end() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    let data = support::dataset::Data {
        t1_limits: (3, 100),
        ..support::dataset::Data::with_gateways()
    };
    data.publish(&snap);
    let cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
    let k = Kamailio::start(&[("snapshot", snap.to_str().unwrap())], Script::Cfg(RELAY));
    // 10 calls of 1.5 s within 0.5 s from T1: 3 fit; T2 calls meanwhile.
    let mut t1 = Uac {
        hold_ms: 1500,
        ..Uac::new(k.port, dir.path(), 10, 20)
    }
    .spawn();
    // kamcmd shows T1 full while its calls are up.
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut t1_now = k.rpc_args(&["warp.trunks", "T1"]).unwrap();
    while t1_now["T1.active"] != "3" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        t1_now = k.rpc_args(&["warp.trunks", "T1"]).unwrap();
    }
    assert_eq!(
        (
            t1_now["T1.active"].as_str(),
            t1_now["T1.max_concurrent"].as_str()
        ),
        ("3", "3"),
        "{t1_now:?}"
    );
    let t2 = Uac {
        source: "127.0.0.3",
        ..Uac::new(k.port, dir.path(), 3, 10)
    }
    .spawn()
    .wait()
    .unwrap();
    assert!(
        t2.success(),
        "T2 lost calls to T1's limit ({t2}):\n{}",
        k.log()
    );
    assert!(
        !t1.wait().unwrap().success(),
        "T1 went over its limit unrefused"
    );
    assert_eq!(
        cheap.invites(),
        6,
        "3 calls of T1 and 3 of T2 reached the vendor"
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["limits.refused_concurrent"], "7");
    // Every admitted call ended with a BYE: the dialog module gave its place back.
    assert_eq!(stats["limits.active"], "0", "{}", k.log());
    // The refusals were T1's: the busy list names it alone; T2 is there when asked for.
    let busy = k.rpc("warp.trunks");
    let t1 = [
        "ban",
        "active",
        "refused_concurrent",
        "refused_cps",
        "max_cps",
    ]
    .map(|f| busy[&format!("T1.{f}")].as_str());
    assert_eq!(t1, ["C1", "0", "7", "0", "100"], "{busy:?}");
    assert!(!busy.keys().any(|k| k.starts_with("T2.")), "{busy:?}");
    let t2 = k.rpc_args(&["warp.trunks", "T2"]).unwrap();
    assert_eq!(t2["T2.refused_concurrent"], "0", "{t2:?}");
    let unknown = k.rpc_args(&["warp.trunks", "T9"]).unwrap_err();
    assert!(
        unknown.contains("404") && unknown.contains("no trunk T9"),
        "{unknown}"
    );
    // kamcmd sends digits as a number: a numeric trunk id is still one trunk's.
    let numeric = k.rpc_args(&["warp.trunks", "42"]).unwrap_err();
    assert!(numeric.contains("no trunk 42"), "{numeric}");
    let again = Uac::new(k.port, dir.path(), 3, 10).spawn().wait().unwrap();
    assert!(
        again.success(),
        "T1 still refused after its calls ended:\n{}",
        k.log()
    );
}

/// T1 at its one concurrent call: the calls refused for that in a fresh second, more
/// than its 3 calls per second, are each refused for concurrency, not for CPS, which
/// counts the calls admitted only.
fn calls_refused_at_the_concurrent_limit_spend_no_cps(redis: Option<&support::redis::Redis>) {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    let data = support::dataset::Data {
        t1_limits: (1, 3),
        ..support::dataset::Data::with_gateways()
    };
    data.publish(&snap);
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
    let url = redis.map(support::redis::Redis::url);
    let mut params = vec![("snapshot", snap.to_str().unwrap())];
    if let Some(url) = &url {
        params.extend([
            ("redis_url", url.as_str()),
            ("cluster_cps", "1"),
            ("cluster_concurrent", "1"),
            ("cluster_timeout", CLUSTER_TIMEOUT),
        ]);
    }
    let k = Kamailio::start(&params, Script::Cfg(RELAY));
    let mut held = Uac {
        hold_ms: 4000,
        ..Uac::new(k.port, dir.path(), 1, 10)
    }
    .spawn();
    wait_for_stat(&k, "limits.active", "1");
    at_next_second();
    let reasons: Vec<String> = (0..5).map(|_| k.request("INVITE", "").reason).collect();
    assert_eq!(
        reasons,
        vec!["Concurrent Call Limit Exceeded"; 5],
        "{}",
        k.log()
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["limits.refused_cps"].as_str(),
            stats["limits.cluster_fallbacks"].as_str()
        ),
        ("0", "0")
    );
    assert!(held.wait().unwrap().success(), "{}", k.log());
}

#[test]
fn calls_refused_at_the_concurrent_limit_spend_no_calls_per_second() {
    calls_refused_at_the_concurrent_limit_spend_no_cps(None);
}

#[test]
fn calls_refused_at_the_cluster_concurrent_limit_spend_no_cluster_cps() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    calls_refused_at_the_concurrent_limit_spend_no_cps(Some(&redis));
}

/// More trunks call over Kamailio's life than its limit table holds at once (4,096):
/// once the crowd's calls are over, a trunk new to the table is still held to its
/// limits, in a slot an idle trunk gave up. With `cluster_concurrent` an idle trunk
/// gives up its slot once the heartbeat has taken its count out of Redis.
fn a_trunk_new_to_a_full_limit_table_is_still_limited(redis: Option<&support::redis::Redis>) {
    const CROWD: u32 = 4096;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    let data = support::dataset::Data {
        t1_limits: (100, 1),
        crowd: (CROWD, (10, 0)),
        ..support::dataset::Data::default()
    };
    data.publish(&snap);
    let url = redis.map(support::redis::Redis::url);
    let mut params = vec![("snapshot", snap.to_str().unwrap())];
    if let Some(url) = &url {
        params.extend([
            ("redis_url", url.as_str()),
            ("cluster_concurrent", "1"),
            ("cluster_timeout", CLUSTER_TIMEOUT),
        ]);
    }
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    for n in 0..CROWD {
        let reply = k.request_from(&support::dataset::crowd_source(n), "INVITE", "");
        assert_eq!(reply.code, 200, "X{n}: {}\n{}", reply.reason, k.log());
    }
    assert_eq!(k.rpc("warp.stats")["limits.trunks"], "4096");
    if redis.is_some() {
        // A heartbeat (every 3 s) while the crowd was calling settled only the trunks
        // that had called by then: let one settle them all.
        std::thread::sleep(Duration::from_millis(3500));
    }
    // T1's second call in a second is over its 1 call per second: refused once T1 has
    // a slot (with the cluster, once a heartbeat has settled the crowd's counts).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        at_next_second();
        let replies = [k.request("INVITE", ""), k.request("INVITE", "")];
        let codes = replies.each_ref().map(|r| r.code);
        if codes == [200, 503] {
            assert_eq!(replies[1].reason, "CPS Limit Exceeded");
            break;
        }
        assert!(
            codes == [200, 200] && redis.is_some() && Instant::now() < deadline,
            "T1 is not limited: {codes:?}\n{}",
            k.log()
        );
    }
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["limits.trunks"], "1", "the idle crowd kept its slots");
    if let Some(redis) = redis {
        let keys = redis.cli(&["KEYS", "warp:calls:*"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.trim().is_empty()).collect();
        assert!(
            keys.len() <= 1,
            "the crowd's counts stayed in Redis: {} keys",
            keys.len()
        );
    } else {
        assert_eq!(stats["limits.unlimited"], "0");
    }
}

#[test]
fn a_trunk_new_to_a_full_limit_table_takes_an_idle_trunks_slot() {
    a_trunk_new_to_a_full_limit_table_is_still_limited(None);
}

#[test]
fn a_trunk_new_to_a_full_cluster_limit_table_takes_a_settled_trunks_slot() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    a_trunk_new_to_a_full_limit_table_is_still_limited(Some(&redis));
}
