//! Limits held across nodes sharing Redis (`cluster_cps`, `cluster_concurrent`): one
//! limit for all nodes, a crashed node's calls no longer counted once its key expires, a
//! heartbeat that keeps beating after a panic, counts Redis lost, and connections Redis
//! closed while idle.

use super::{
    at_next_second, calls_key, no_calls_counted, node_name, wait_for_stat, CLUSTER_TIMEOUT, RELAY,
    ROUTE,
};
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::{self, Kamailio, Script};
use std::time::{Duration, Instant};

#[test]
fn cluster_cps_holds_one_limit_across_nodes_sharing_redis() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = support::redis::Redis::start(dir.path());
    let snap = dir.path().join("routing.snap");
    support::dataset::Data {
        t1_limits: (100, 5),
        ..Default::default()
    }
    .publish(&snap);
    let url = redis.url();
    let params = [
        ("snapshot", snap.to_str().unwrap()),
        ("redis_url", url.as_str()),
        ("cluster_cps", "1"),
        ("cluster_timeout", CLUSTER_TIMEOUT),
    ];
    let nodes = [
        Kamailio::start(&params, Script::Native(ROUTE)),
        Kamailio::start(&params, Script::Native(ROUTE)),
    ];
    let routed = |nodes: &[&Kamailio], calls: usize| {
        at_next_second();
        (0..calls)
            .filter(|i| nodes[i % nodes.len()].request("INVITE", "").code == 200)
            .count()
    };
    // 20 calls within one second, alternating between the nodes: 5 in all.
    assert_eq!(routed(&[&nodes[0], &nodes[1]], 20), 5);
    let refused: u64 = nodes
        .iter()
        .map(|k| {
            k.rpc("warp.stats")["limits.refused_cps"]
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(refused, 15);
    // Redis gone: each node counts on its own again, and says how often.
    let fallbacks = || -> u64 {
        nodes[0].rpc("warp.stats")["limits.cluster_fallbacks"]
            .parse()
            .unwrap()
    };
    let before = fallbacks();
    redis.stop();
    assert_eq!(routed(&[&nodes[0]], 10), 5);
    assert_eq!(fallbacks() - before, 10);
    assert!(
        nodes[0].log().contains("cluster CPS counter unavailable"),
        "{}",
        nodes[0].log()
    );
}

/// A Redis that closes idle connections (its `timeout`, as managed services set it, or
/// a NAT or proxy in between): the next exchange connects again at once, not taking
/// Redis for down (a second of node-local limits, a CDR batch held back).
#[test]
fn a_connection_redis_closed_while_idle_is_replaced_not_taken_for_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    redis.cli(&["CONFIG", "SET", "timeout", "1"]);
    let snap = dir.path().join("routing.snap");
    support::dataset::Data::default().publish(&snap);
    let url = redis.url();
    let k = Kamailio::start(
        &[
            ("snapshot", snap.to_str().unwrap()),
            ("redis_url", url.as_str()),
            ("cluster_cps", "1"),
            ("cluster_timeout", CLUSTER_TIMEOUT),
            ("cdr_stream", "warp:cdr:raw"),
        ],
        Script::Native(ROUTE),
    );
    let calls = |n| {
        for _ in 0..n {
            assert_eq!(k.request("INVITE", "").code, 200);
        }
    };
    calls(10);
    assert_eq!(
        redis
            .wait_for("warp:cdr:raw", 10, Duration::from_secs(5))
            .len(),
        10
    );
    // Redis drops a client idle for over a second when its cron gets round to it.
    std::thread::sleep(Duration::from_millis(3_500));
    calls(10);
    assert_eq!(
        redis
            .wait_for("warp:cdr:raw", 20, Duration::from_secs(5))
            .len(),
        20
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["limits.cluster_fallbacks"], "0", "{}", k.log());
    assert_eq!(stats["cdr.redis_errors"], "0", "{}", k.log());
}

/// Nodes sharing one Redis for `cluster_concurrent`, T1 limited to 3 concurrent
/// calls, the cheap vendor answering every call.
struct Cluster {
    dir: tempfile::TempDir,
    redis: support::redis::Redis,
    cheap: Uas,
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let redis = support::redis::Redis::start(dir.path());
        let data = support::dataset::Data {
            t1_limits: (3, 100),
            ..support::dataset::Data::with_gateways()
        };
        data.publish(&dir.path().join("routing.snap"));
        let cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
        Cluster { dir, redis, cheap }
    }

    fn node(&self) -> Kamailio {
        self.node_with(&[])
    }

    fn node_with(&self, more: &[(&str, &str)]) -> Kamailio {
        let snap = self.dir.path().join("routing.snap");
        let url = self.redis.url();
        let mut params = vec![
            ("snapshot", snap.to_str().unwrap()),
            ("redis_url", &url),
            ("cluster_concurrent", "1"),
            ("cluster_timeout", CLUSTER_TIMEOUT),
        ];
        params.extend_from_slice(more);
        Kamailio::start(&params, Script::Cfg(RELAY))
    }
}

#[test]
fn a_heartbeat_that_panicked_keeps_beating() {
    let cluster = Cluster::new();
    // The first beat panics, before it could say the node is alive.
    let node = cluster.node_with(&[("fault_inject", "cluster_heartbeat")]);
    let deadline = Instant::now() + Duration::from_secs(8);
    while cluster
        .redis
        .cli(&["KEYS", "warp:node:*"])
        .trim()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "no beat after the panic:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        node.log()
            .contains("cluster heartbeat: caught panic (fault injected by modparam fault_inject)"),
        "{}",
        node.log()
    );
}

#[test]
fn cluster_concurrent_calls_hold_one_limit_across_nodes_sharing_redis() {
    let cluster = Cluster::new();
    let (dir, redis, cheap) = (&cluster.dir, &cluster.redis, &cluster.cheap);
    let nodes = [cluster.node(), cluster.node()];
    // T1's 3 places taken on the first node...
    let mut held = Uac {
        hold_ms: 3000,
        ..Uac::new(nodes[0].port, dir.path(), 3, 10)
    }
    .spawn();
    wait_for_stat(&nodes[0], "limits.active", "3");
    // ...leave none on the second.
    let refused = Uac::new(nodes[1].port, dir.path(), 3, 10)
        .spawn()
        .wait()
        .unwrap();
    assert!(
        !refused.success(),
        "T1 went over its limit on the second node"
    );
    assert_eq!(nodes[1].rpc("warp.stats")["limits.refused_concurrent"], "3");
    assert!(held.wait().unwrap().success(), "{}", nodes[0].log());
    // Their end gives the places back to every node.
    wait_for_stat(&nodes[0], "limits.active", "0");
    let again = Uac::new(nodes[1].port, dir.path(), 3, 10)
        .spawn()
        .wait()
        .unwrap();
    assert!(again.success(), "{}", nodes[1].log());
    assert_eq!(
        cheap.invites(),
        6,
        "3 calls on each node reached the vendor"
    );
    wait_for_stat(&nodes[1], "limits.active", "0");
    assert!(
        no_calls_counted(redis, "T1"),
        "calls still counted in Redis"
    );
    let key = calls_key("T1");
    // A third node's calls count while its node key lives...
    redis.cli(&["HSET", &key, "elsewhere:1", "3"]);
    redis.cli(&["SET", "warp:node:elsewhere:1", "1", "EX", "60"]);
    let one_call = || {
        Uac::new(nodes[1].port, dir.path(), 1, 10)
            .spawn()
            .wait()
            .unwrap()
    };
    assert!(
        !one_call().success(),
        "a live node's calls were not counted"
    );
    // ...and are dropped once it has expired (the node died).
    redis.cli(&["DEL", "warp:node:elsewhere:1"]);
    assert!(one_call().success(), "{}", nodes[1].log());
    assert_eq!(redis.cli(&["HEXISTS", &key, "elsewhere:1"]).trim(), "0");
}

#[test]
fn a_crashed_nodes_calls_stop_counting_once_its_node_key_expires() {
    let cluster = Cluster::new();
    let (dir, redis) = (&cluster.dir, &cluster.redis);
    let mut doomed = cluster.node();
    let survivor = cluster.node();
    // T1's 3 places taken on the first node, by calls that would last a minute...
    let mut held = Uac {
        hold_ms: 60_000,
        ..Uac::new(doomed.port, dir.path(), 3, 10)
    }
    .spawn();
    wait_for_stat(&doomed, "limits.active", "3");
    // ...which dies with them: no BYE, no release, no destroy.
    doomed.crash();
    let _ = held.kill();
    let _ = held.wait();
    let one_call = || {
        Uac::new(survivor.port, dir.path(), 1, 10)
            .spawn()
            .wait()
            .unwrap()
            .success()
    };
    let crashed = Instant::now();
    assert!(!one_call(), "the dead node's calls did not count at first");
    // Its node key lives at most 10 s after its last sign of life.
    while !one_call() {
        assert!(
            crashed.elapsed() < Duration::from_secs(15),
            "the dead node's calls still count:\n{}",
            survivor.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        (redis.cli(&["HEXISTS", &calls_key("T1"), &node_name(&doomed)])).trim(),
        "0"
    );
}

/// Redis loses the counts (restarted without its data) while T1's 3 places are taken:
/// the calls' ends must not count below none, or the next calls would find 6 places.
#[test]
fn calls_ending_after_redis_lost_their_count_free_no_extra_places() {
    let cluster = Cluster::new();
    let (dir, redis) = (&cluster.dir, &cluster.redis);
    let node = cluster.node();
    let mut held = Uac {
        hold_ms: 1500,
        ..Uac::new(node.port, dir.path(), 3, 100)
    }
    .spawn();
    let started = Instant::now();
    wait_for_stat(&node, "limits.active", "3");
    // Just before the calls end, so that the heartbeat (every 3 s) rarely rewrites the
    // node's count in between and hides what the ends do.
    std::thread::sleep(Duration::from_millis(1400).saturating_sub(started.elapsed()));
    redis.cli(&["FLUSHALL"]);
    assert!(held.wait().unwrap().success(), "{}", node.log());
    let _ = Uac {
        hold_ms: 1000,
        ..Uac::new(node.port, dir.path(), 6, 100)
    }
    .spawn()
    .wait();
    let stats = node.rpc("warp.stats");
    assert_eq!(
        (
            stats["limits.refused_concurrent"].as_str(),
            stats["limits.cluster_fallbacks"].as_str()
        ),
        ("3", "0"),
        "{}",
        node.log()
    );
}
