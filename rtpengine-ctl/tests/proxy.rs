//! The ng proxy in front of real rtpengine daemons (and real Redis).

mod common;

use common::{counted, media_port, qos_entries, rtp_packet, sdp, start_redis, Redis, Rtpengine};
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warp_rtpengine::bencode::{decode_dict, Dict};
use warp_rtpengine::commands::*;
use warp_rtpengine::proxy::config::{ListenSpec, NodeSpec, ProxyConfig};
use warp_rtpengine::proxy::Proxy;
use warp_rtpengine::{Client, Endpoint, Error, Options};
use warp_testkit::TestCa;

fn node(name: &str, r: &Rtpengine, weight: u32) -> NodeSpec {
    format!("{name}={},weight={weight}", r.ng).parse().unwrap()
}

/// The tests' proxy: on an ephemeral loopback port, short timers, metrics served.
fn config(nodes: Vec<NodeSpec>, redis: Option<&Redis>) -> ProxyConfig {
    log_to_captures();
    ProxyConfig {
        listen: vec![ListenSpec {
            addr: "127.0.0.1:0".parse().unwrap(),
            set: 0,
        }],
        nodes,
        redis_url: redis.map(|r| r.url.clone()),
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        upstream: Options {
            timeout: Duration::from_millis(150),
            retries: 1,
        },
        health_interval: Duration::from_millis(100),
        ..ProxyConfig::default()
    }
}

async fn start_proxy(nodes: Vec<NodeSpec>, redis: Option<&Redis>) -> Proxy {
    Proxy::start(config(nodes, redis)).await.unwrap()
}

async fn client_for(p: &Proxy) -> Client {
    Client::connect(&Endpoint::Udp(p.ng_addrs[0]), Options::default())
        .await
        .unwrap()
}

async fn direct(r: &Rtpengine) -> Client {
    Client::connect(&Endpoint::Udp(r.ng), Options::default())
        .await
        .unwrap()
}

fn offer(call: &str) -> Offer {
    let mut m = MediaRequest::new(Target::call(call).from_tag("caller"), sdp("a", 40000));
    m.supports = vec!["load limit".into()];
    Offer(m)
}

fn answer(call: &str) -> Answer {
    Answer(MediaRequest::new(
        Target::call(call).from_tag("caller").to_tag("callee"),
        sdp("b", 40002),
    ))
}

/// A call-id whose first choice, in this proxy's pool, is `node`.
fn call_preferring(p: &Proxy, node: &str, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|c| p.handler.pool.candidates(0, c.as_bytes())[0].spec.name == node)
        .unwrap()
}

async fn calls_on(r: &Rtpengine) -> Vec<String> {
    direct(r)
        .await
        .send(&List { limit: Some(1000) })
        .await
        .unwrap()
        .calls
}

#[tokio::test]
async fn spreads_by_weight_and_every_command_follows_its_call() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let p = start_proxy(vec![node("a", &a, 1), node("b", &b, 3)], None).await;
    let c = client_for(&p).await;
    c.send(&Ping).await.unwrap();
    let ids: Vec<String> = (0..12).map(|i| format!("spread-{i}")).collect();
    for id in &ids {
        c.send(&offer(id)).await.unwrap();
        c.send(&answer(id)).await.unwrap();
        let q = c.send(&Query(Target::call(id.as_str()))).await.unwrap();
        assert_eq!(q.parties.len(), 2, "query reached the call's node");
    }
    let (on_a, on_b) = (calls_on(&a).await, calls_on(&b).await);
    assert_eq!(
        on_a.len() + on_b.len(),
        ids.len(),
        "each call on exactly one node"
    );
    // Weighted rendezvous hashing is deterministic: the expected split is computed, and
    // across many call-ids it follows the weights (see the pool's unit test).
    let expected_b = ids
        .iter()
        .filter(|id| p.handler.pool.candidates(0, id.as_bytes())[0].spec.name == "b")
        .count();
    assert_eq!(on_b.len(), expected_b);
    assert!(
        on_b.len() > on_a.len(),
        "weight 3 node takes more: a={on_a:?} b={on_b:?}"
    );
    // list through the proxy merges both nodes.
    let all = c.send(&List { limit: Some(1000) }).await.unwrap();
    assert_eq!(all.calls.len(), ids.len());
    for id in &ids {
        c.send(&Delete {
            call: Target::call(id.as_str()).from_tag("caller"),
            fatal: true,
            ..Delete::default()
        })
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(calls_on(&a).await.is_empty() && calls_on(&b).await.is_empty());
}

#[tokio::test]
async fn killed_node_loses_no_new_call_and_restarted_node_rejoins() {
    let (mut a, b) = (Rtpengine::start(), Rtpengine::start());
    let p = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c = client_for(&p).await;
    a.kill();
    // No health check has run yet for some of these: the proxy must fail over by itself.
    for i in 0..10 {
        let id = format!("dead-{i}");
        c.send(&offer(&id))
            .await
            .unwrap_or_else(|e| panic!("offer {id}: {e}"));
        c.send(&answer(&id)).await.unwrap();
    }
    assert_eq!(calls_on(&b).await.len(), 10);
    assert!(!p.handler.pool.by_name("a").unwrap().is_alive());

    a.restart();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        p.handler.pool.by_name("a").unwrap().is_alive(),
        "health check brought a back"
    );
    let back = call_preferring(&p, "a", "rejoin");
    c.send(&offer(&back)).await.unwrap();
    assert_eq!(calls_on(&a).await, vec![back]);
}

/// A node whose rtpengine was killed leaves nothing on its port: the kernel refuses
/// each datagram to it (ICMP port unreachable). A new call's offer is then passed on at
/// once, not after the node's whole timeout, and the refusal marks the node dead.
#[tokio::test]
async fn an_offer_to_a_killed_node_is_refused_and_passed_on_at_once() {
    let (a, mut b) = (Rtpengine::start(), Rtpengine::start());
    let p = Proxy::start(ProxyConfig {
        upstream: Options {
            timeout: Duration::from_secs(2),
            retries: 1,
        },
        // One health round, at the start: only the offer can mark b dead in time.
        health_interval: Duration::from_secs(3600),
        ..config(vec![node("a", &a, 1), node("b", &b, 1)], None)
    })
    .await
    .unwrap();
    b.kill();
    // One try, long enough for a node's whole timeout: no retransmission in between.
    let c = Client::connect(
        &Endpoint::Udp(p.ng_addrs[0]),
        Options {
            timeout: Duration::from_secs(10),
            retries: 0,
        },
    )
    .await
    .unwrap();
    let id = call_preferring(&p, "b", "refused");
    let started = std::time::Instant::now();
    c.send(&offer(&id)).await.unwrap();
    let took = started.elapsed();
    assert_eq!(calls_on(&a).await, vec![id]);
    // Waiting out b's timeout would take 2 s, or 4 s with its retransmission.
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    let b = p.handler.pool.by_name("b").unwrap();
    assert!(!b.is_alive(), "the refusal marked b dead");
    assert_eq!((b.metrics.errors(), b.metrics.requests()), (1, 0));
}

/// A node that stalls past a health ping's timeout (a lost datagram, a moment's load)
/// but answers again is not dead: marked so, it would have the re-INVITE of a call it
/// holds placed on another node, moving the call's media, and its new calls sent away.
#[tokio::test]
async fn a_node_that_misses_a_ping_keeps_its_calls_and_stays_up() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let p = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c = client_for(&p).await;
    let id = call_preferring(&p, "a", "stall");
    c.send(&offer(&id)).await.unwrap();
    c.send(&answer(&id)).await.unwrap();
    let watched = p.handler.pool.by_name("a").unwrap().clone();
    let (stop_watching, mut watching) = tokio::sync::oneshot::channel::<()>();
    let seen_down = tokio::spawn(async move {
        let mut down = false;
        while watching.try_recv().is_err() {
            down |= !watched.is_alive();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        down
    });
    // a stalls 350 ms: a ping's timeout is 150 ms, so one ping (two at most) goes
    // unanswered. Its call's re-INVITE comes while it stalls, answered once it resumes.
    a.signal("-STOP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reinvite = tokio::spawn({
        let c = client_for(&p).await;
        let id = id.clone();
        async move { c.send(&offer(&id)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.signal("-CONT");
    reinvite
        .await
        .unwrap()
        .expect("the re-INVITE's offer is answered");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_watching.send(()).unwrap();
    assert_eq!(
        calls_on(&b).await,
        Vec::<String>::new(),
        "the re-INVITE moved the call to b"
    );
    assert_eq!(calls_on(&a).await, vec![id], "the call stays on a");
    assert!(!seen_down.await.unwrap(), "a was marked dead");
}

#[tokio::test]
async fn ran_out_of_ports_fails_over_and_drain_keeps_existing_calls() {
    // a has ports for exactly one call.
    let (a, b) = (Rtpengine::start_with(4, &[]), Rtpengine::start());
    let p = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c = client_for(&p).await;
    let first = call_preferring(&p, "a", "full");
    let second = call_preferring(&p, "a", "full2");
    c.send(&offer(&first)).await.unwrap();
    c.send(&offer(&second)).await.unwrap();
    assert_eq!(calls_on(&a).await, vec![first.clone()]);
    assert_eq!(calls_on(&b).await, vec![second.clone()]);
    let nodes = c.request(&admin("warp nodes", None)).await.unwrap();
    let errors_a = nodes.get_list("nodes").unwrap()[0]
        .as_dict()
        .unwrap()
        .get_int("errors");
    assert_eq!(errors_a, Some(1), "the refusal is counted");

    // Drain a: its existing call still reaches it; a new call preferring a goes to b.
    let third = call_preferring(&p, "a", "drained");
    let reply = c.request(&admin("warp drain", Some("a"))).await.unwrap();
    assert_eq!(reply.get_str("result"), Some("ok"));
    c.send(&answer(&first)).await.unwrap();
    c.send(&offer(&third)).await.unwrap();
    assert!(calls_on(&b).await.contains(&third));
    let nodes = c.request(&admin("warp nodes", None)).await.unwrap();
    let a_state = nodes.get_list("nodes").unwrap()[0]
        .as_dict()
        .unwrap()
        .clone();
    assert_eq!(a_state.get_int("draining"), Some(1));
    assert_eq!(a_state.get_int("active calls"), Some(1));
    let err = c.request(&admin("warp drain", Some("zz"))).await.unwrap();
    assert_eq!(err.get_str("error-reason"), Some("no node named \"zz\""));
}

/// A call that outlives the pin TTL without a command (no re-INVITE for hours) keeps
/// its pin while its node has it: its delete still reaches that node, not the node its
/// call-id hashes to.
#[tokio::test]
async fn a_call_longer_than_the_pin_ttl_keeps_its_node() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let p = Proxy::start(ProxyConfig {
        sticky_ttl: Duration::from_secs(1),
        qos_interval: Duration::from_millis(300),
        ..config(vec![node("a", &a, 1), node("b", &b, 1)], None)
    })
    .await
    .unwrap();
    let c = client_for(&p).await;
    // It hashes to a but lands on b (a drained), as after a failover.
    let call = call_preferring(&p, "a", "long");
    c.request(&admin("warp drain", Some("a"))).await.unwrap();
    c.send(&offer(&call)).await.unwrap();
    c.send(&answer(&call)).await.unwrap();
    c.request(&admin("warp undrain", Some("a"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.send(&Delete {
        call: Target::call(call.as_str()).from_tag("caller"),
        ..Delete::default()
    })
    .await
    .unwrap();
    assert_eq!(calls_on(&b).await, Vec::<String>::new(), "deleted on b");
}

/// A call with no signalling keeps its Redis pin as long as its node has it: the key is
/// renewed before it expires, not after, so another proxy finds the call at any moment.
#[tokio::test]
async fn a_long_call_keeps_its_redis_pin_without_a_gap() {
    let redis = start_redis();
    let a = Rtpengine::start();
    let p = Proxy::start(ProxyConfig {
        sticky_ttl: Duration::from_secs(2),
        // Not a divisor of the TTL: a renewal due only once the key is gone would come
        // 0.4 s after it went.
        qos_interval: Duration::from_millis(800),
        ..config(vec![node("a", &a, 1)], Some(&redis))
    })
    .await
    .unwrap();
    let c = client_for(&p).await;
    c.send(&offer("unbroken-1")).await.unwrap();
    c.send(&answer("unbroken-1")).await.unwrap();
    let mut conn = connect(&redis).await;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(7) {
        let left: i64 = redis::cmd("PTTL")
            .arg("warp:rtpengine:call:unbroken-1")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            left > 0,
            "no pin in Redis {:?} into the call",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(calls_on(&a).await, ["unbroken-1"], "the call is alive");
    c.send(&Delete {
        call: Target::call("unbroken-1").from_tag("caller"),
        ..Delete::default()
    })
    .await
    .unwrap();
    assert_eq!(
        shared_pin(&redis, "unbroken-1").await,
        None,
        "the delete unpins"
    );
}

/// The proxy's own queries of its calls (interim QoS, stale pins) wait on a node that
/// stopped answering for many calls at once, not one call after another: 20 calls at
/// 2 × 150 ms each would hold each pass 6 s.
#[tokio::test]
async fn a_node_that_stops_answering_does_not_stall_the_checks_of_its_calls() {
    let redis = start_redis();
    let a = Rtpengine::start_with(98, &[]);
    let p = Proxy::start(ProxyConfig {
        sticky_ttl: Duration::from_secs(1),
        // The test runs the checks itself.
        qos_interval: Duration::from_secs(3600),
        ..config(vec![node("a", &a, 1)], Some(&redis))
    })
    .await
    .unwrap();
    let c = client_for(&p).await;
    for i in 0..20 {
        c.send(&offer(&format!("hung-{i}"))).await.unwrap();
    }
    // Every pin past its TTL, so each pass queries all 20.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.signal("-STOP");
    let started = std::time::Instant::now();
    p.handler.interim_qos(Duration::ZERO).await;
    let interim = started.elapsed();
    p.handler.expire_pins().await;
    let expire = started.elapsed() - interim;
    a.signal("-CONT");
    assert!(
        interim < Duration::from_secs(2),
        "interim QoS took {interim:?}"
    );
    assert!(
        expire < Duration::from_secs(2),
        "stale pins took {expire:?}"
    );
    assert!(
        p.handler.sticky.long_calls(Duration::ZERO).is_empty(),
        "pins of calls their node did not confirm are dropped"
    );
}

/// Each node's list fits one datagram; merged they do not: the caller gets an error
/// reply saying so, not silence.
#[tokio::test]
async fn a_merged_reply_too_big_for_a_datagram_is_an_error_reply() {
    let (a, b) = (
        Rtpengine::start_with(80, &[]),
        Rtpengine::start_with(80, &[]),
    );
    for (r, name) in [(&a, "a"), (&b, "b")] {
        let d = direct(r).await;
        for i in 0..20 {
            let long = format!("{name}-{i}-{}", "x".repeat(1700));
            d.send(&offer(&long)).await.unwrap();
        }
    }
    let p = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c = client_for(&p).await;
    match c.send(&List { limit: Some(1000) }).await {
        Err(Error::Rtpengine(reason)) => assert!(
            reason.contains("too large for one UDP datagram"),
            "{reason}"
        ),
        other => panic!("expected an error reply, got {other:?}"),
    }
    // A limit that keeps the merged list small enough gets it.
    let some = c.send(&List { limit: Some(10) }).await.unwrap();
    assert_eq!(some.calls.len(), 10);
}

/// `list` through the proxy returns at most `limit` call-ids in all, as one rtpengine
/// does, not `limit` from each node.
#[tokio::test]
async fn a_merged_list_is_no_longer_than_its_limit() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    for (r, name) in [(&a, "a"), (&b, "b")] {
        let d = direct(r).await;
        for i in 0..3 {
            d.send(&offer(&format!("{name}-{i}"))).await.unwrap();
        }
    }
    let p = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c = client_for(&p).await;
    for (limit, len) in [(Some(4), 4), (Some(0), 0), (Some(10), 6), (None, 6)] {
        let mut calls = c.send(&List { limit }).await.unwrap().calls;
        calls.sort();
        calls.dedup();
        assert_eq!(calls.len(), len, "limit {limit:?}");
    }
}

/// A node that refuses `list` or does not answer is not a node without calls: when no
/// node lists its calls the reply is an error giving their reasons, and when some do,
/// the others are named in a warning beside the calls listed.
#[tokio::test]
async fn a_list_no_node_answered_is_an_error_not_an_empty_list() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    direct(&a).await.send(&offer("on-a")).await.unwrap();
    let p = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c = client_for(&p).await;
    // Both nodes refuse a negative limit.
    match c.send(&List { limit: Some(-1) }).await {
        Err(Error::Rtpengine(reason)) => {
            assert!(reason.contains("a: ") && reason.contains("b: "), "{reason}")
        }
        other => panic!("expected an error reply, got {other:?}"),
    }
    // b hangs: a's calls are listed, and b is named.
    b.signal("-STOP");
    let reply = c.request(&admin("list", None)).await.unwrap();
    b.signal("-CONT");
    assert_eq!(reply.get_str("result"), Some("ok"), "{reply:?}");
    let calls: Vec<&str> = (reply.get_list("calls").unwrap().iter())
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(calls, ["on-a"]);
    let warning = reply.get_str("warning").unwrap_or_default();
    assert!(
        warning.contains("b: ") && !warning.contains("a: "),
        "{warning}"
    );
}

/// A call-id is bytes: one that is not UTF-8 is pinned and followed like any other,
/// not handed to whichever node is next.
#[tokio::test]
async fn a_call_id_that_is_not_utf8_follows_its_call() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let p = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c = client_for(&p).await;
    let call_id: &[u8] = b"bin-\xff\xfe-1";
    let o = offer("placeholder");
    let mut d = o.to_dict();
    d.insert("call-id", call_id);
    let reply = c.request(&d).await.unwrap();
    assert_eq!(reply.get_str("result"), Some("ok"), "offer");
    for i in 0..10 {
        let mut q = Dict::new();
        q.insert("command", "query");
        q.insert("call-id", call_id);
        let reply = c.request(&q).await.unwrap();
        assert_eq!(reply.get_str("result"), Some("ok"), "query {i}: {reply:?}");
    }
    let mut del = Dict::new();
    del.insert("command", "delete");
    del.insert("call-id", call_id);
    del.insert("from-tag", "caller");
    let reply = c.request(&del).await.unwrap();
    assert_eq!(reply.get_str("result"), Some("ok"), "delete");
    assert!(calls_on(&a).await.is_empty() && calls_on(&b).await.is_empty());
}

fn admin(command: &'static str, node: Option<&'static str>) -> Dict<'static> {
    let mut d = Dict::new();
    d.insert("command", command);
    if let Some(n) = node {
        d.insert("node", n);
    }
    d
}

/// A proxy that lost its pins (restarted without Redis) still finds a call that is not
/// where the hash would put it: it asks the nodes in turn, so the call's later commands
/// and its delete reach its node.
#[tokio::test]
async fn a_call_whose_pin_was_lost_is_found_on_its_node() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let p1 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c1 = client_for(&p1).await;
    // It hashes to a but lands on b (a drained), as after a failover.
    let id = call_preferring(&p1, "a", "lost");
    c1.request(&admin("warp drain", Some("a"))).await.unwrap();
    c1.send(&offer(&id)).await.unwrap();
    assert_eq!(calls_on(&b).await, vec![id.clone()]);
    // Another proxy, as the first one restarted: no pins, nothing drained.
    let p2 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c2 = client_for(&p2).await;
    c2.send(&answer(&id)).await.unwrap();
    let q = c2.send(&Query(Target::call(id.as_str()))).await.unwrap();
    assert_eq!(q.parties.len(), 2);
    c2.send(&Delete {
        call: Target::call(id.as_str()).from_tag("caller"),
        ..Delete::default()
    })
    .await
    .unwrap();
    assert_eq!(calls_on(&b).await, Vec::<String>::new(), "deleted on b");
    let unknown = c2.send(&Query(Target::call("never-offered"))).await;
    assert!(
        matches!(&unknown, Err(Error::Rtpengine(reason)) if reason.contains("Unknown call-id")),
        "{unknown:?}"
    );
}

/// A BYE that is the first command a proxy without the call's pin sees: rtpengine answers
/// the delete of a call it does not have `ok` with a warning, not `Unknown call-id`, so
/// the node the hash names first must not end the search, or the call lives on (its
/// ports held) on the node that has it.
#[tokio::test]
async fn a_delete_whose_pin_was_lost_reaches_the_calls_node() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let p1 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c1 = client_for(&p1).await;
    let id = call_preferring(&p1, "a", "bye");
    c1.request(&admin("warp drain", Some("a"))).await.unwrap();
    c1.send(&offer(&id)).await.unwrap();
    c1.send(&answer(&id)).await.unwrap();
    assert_eq!(calls_on(&b).await, vec![id.clone()]);
    let p2 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let delete = Delete {
        call: Target::call(id.as_str()).from_tag("caller"),
        ..Delete::default()
    };
    let reply = client_for(&p2)
        .await
        .request(&delete.to_dict())
        .await
        .unwrap();
    assert_eq!(reply.get_str("result"), Some("ok"), "{reply:?}");
    assert_eq!(reply.get_str("warning"), None, "{reply:?}");
    assert_eq!(calls_on(&b).await, Vec::<String>::new(), "deleted on b");
    // A delete no node can place still gets rtpengine's own answer.
    let gone = Delete {
        call: Target::call("never-offered").from_tag("caller"),
        ..Delete::default()
    };
    let reply = client_for(&p2)
        .await
        .request(&gone.to_dict())
        .await
        .unwrap();
    assert_eq!(
        reply.get_str("warning"),
        Some("Call-ID not found or tags didn't match"),
        "{reply:?}"
    );
}

/// A re-INVITE (an `offer` with a to-tag) that is the first command a proxy without the
/// call's pin sees: placed by hash it would make a second call on a node that does not
/// have this one, moving the media there and leaving the old session holding its ports.
/// It is looked for like an answer, and reaches the call's node.
#[tokio::test]
async fn a_reinvite_whose_pin_was_lost_reaches_the_calls_node() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let p1 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c1 = client_for(&p1).await;
    let id = call_preferring(&p1, "a", "reinvite");
    c1.request(&admin("warp drain", Some("a"))).await.unwrap();
    let offered = c1.send(&offer(&id)).await.unwrap();
    c1.send(&answer(&id)).await.unwrap();
    assert_eq!(calls_on(&b).await, vec![id.clone()]);
    let p2 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], None).await;
    let c2 = client_for(&p2).await;
    let mut reinvite = offer(&id);
    reinvite.0.call.to_tag = Some("callee".into());
    let reoffered = c2.send(&reinvite).await.unwrap();
    assert_eq!(calls_on(&a).await, Vec::<String>::new(), "no session on a");
    assert_eq!(calls_on(&b).await, vec![id.clone()]);
    assert_eq!(
        media_port(&reoffered.sdp),
        media_port(&offered.sdp),
        "the call keeps its ports on b"
    );
    assert_eq!(
        p2.handler.sticky.lookup(id.as_bytes()).await.as_deref(),
        Some("b")
    );
    // A re-INVITE no node knows is placed as a new call, by hash.
    let unknown = call_preferring(&p2, "a", "reinvite-unknown");
    let mut stray = offer(&unknown);
    stray.0.call.to_tag = Some("callee".into());
    c2.send(&stray).await.unwrap();
    assert_eq!(calls_on(&a).await, vec![unknown]);
}

#[tokio::test]
async fn pins_are_shared_between_proxies_through_redis() {
    let redis = start_redis();
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let p1 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], Some(&redis)).await;
    let p2 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], Some(&redis)).await;
    pins_are_shared(&redis, [&p1, &p2], &b).await;
}

/// Over TLS (`rediss://` and the CA its certificate is of), as over TCP.
#[tokio::test]
async fn pins_are_shared_between_proxies_through_a_redis_over_tls() {
    let ca = TestCa::make("redis").unwrap();
    let redis = Redis::start_tls(&ca).unwrap();
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let over_tls = || ProxyConfig {
        redis_url: redis.tls_url.clone(),
        redis_ca: Some(ca.ca.clone()),
        ..config(vec![node("a", &a, 1), node("b", &b, 1)], None)
    };
    let p1 = Proxy::start(over_tls()).await.unwrap();
    let p2 = Proxy::start(over_tls()).await.unwrap();
    pins_are_shared(&redis, [&p1, &p2], &b).await;
}

#[tokio::test]
async fn a_redis_ca_that_cannot_be_read_stops_the_proxy_at_start() {
    let a = Rtpengine::start();
    let started = Proxy::start(ProxyConfig {
        redis_url: Some("rediss://:hunter2@127.0.0.1:6380/".into()),
        redis_ca: Some("/nonexistent/redis-ca.pem".into()),
        ..config(vec![node("a", &a, 1)], None)
    })
    .await;
    let Err(Error::Config(why)) = started else {
        panic!("started, or failed otherwise");
    };
    assert!(
        why.starts_with("WARP_REDIS_CA: \"/nonexistent/redis-ca.pem\" cannot be read"),
        "{why}"
    );
    assert!(why.contains("rediss://:***@127.0.0.1:6380/"), "{why}");
}

/// A call p1 puts on `b` while draining `a` is found there by p2, which asked Redis.
async fn pins_are_shared(redis: &Redis, [p1, p2]: [&Proxy; 2], b: &Rtpengine) {
    let (c1, c2) = (client_for(p1).await, client_for(p2).await);
    // p1 drains a, so a call that hashes to a lands on b; p2 (not draining) must still
    // find it on b because the pin is in Redis.
    c1.request(&admin("warp drain", Some("a"))).await.unwrap();
    let id = call_preferring(p2, "a", "shared");
    c1.send(&offer(&id)).await.unwrap();
    assert_eq!(calls_on(b).await, vec![id.clone()]);
    assert_eq!(shared_pin(redis, &id).await.as_deref(), Some("b"));
    c2.send(&answer(&id)).await.unwrap();
    let q = c2.send(&Query(Target::call(id.as_str()))).await.unwrap();
    assert_eq!(q.parties.len(), 2);
    // Without the pin p2 would have found the call too, by asking a first.
    assert_eq!(
        p2.handler.pool.by_name("a").unwrap().metrics.requests(),
        0,
        "p2 looked for the call on a: it did not take the pin from Redis"
    );
}

#[tokio::test]
async fn delete_writes_qos_to_the_stream_and_metrics_are_served() {
    let redis = start_redis();
    let a = Rtpengine::start();
    let p = start_proxy(vec![node("a", &a, 1)], Some(&redis)).await;
    let c = client_for(&p).await;
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut o = offer("qos-1");
    o.0.sdp = sdp("a", caller.local_addr().unwrap().port());
    c.send(&o).await.unwrap();
    let answered = c.send(&answer("qos-1")).await.unwrap();
    for seq in 0..15 {
        caller
            .send_to(
                &rtp_packet(seq, 0xabc),
                ("127.0.0.1", media_port(&answered.sdp)),
            )
            .unwrap();
    }
    // Asked of the node itself: the proxy's request count is checked below.
    counted(&direct(&a).await, "qos-1", 15).await;
    c.send(&Delete {
        call: Target::call("qos-1").from_tag("caller"),
        ..Delete::default()
    })
    .await
    .unwrap();

    let entries = qos_entries(&redis, 1).await;
    assert_eq!(entries.len(), 1);
    let f = &entries[0].1;
    assert_eq!(f["call_id"], "qos-1");
    assert_eq!(f["node"], "a");
    assert_eq!(f["event"], "final");
    assert_eq!(f["packets"], "15");
    let legs: serde_json::Value = serde_json::from_str(&f["qos"]).unwrap();
    assert_eq!(legs["legs"].as_array().unwrap().len(), 2);

    let metrics = http_get(p.metrics_addr.unwrap()).await;
    assert!(
        metrics.contains("warp_rtpengine_node_requests_total{node=\"a\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("warp_rtpengine_node_up{node=\"a\"} 1"));
    assert!(metrics.contains("warp_rtpengine_node_active_calls{node=\"a\"} 0"));
    assert!(metrics.contains("warp_rtpengine_qos_dropped_total 0"));
}

/// The calls a proxy counts on a node, as Prometheus reads them.
async fn active_calls(p: &Proxy, node: &str) -> i64 {
    let family = format!("warp_rtpengine_node_active_calls{{node=\"{node}\"}} ");
    let metrics = http_get(p.metrics_addr.unwrap()).await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(family.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {family}in {metrics}"))
}

/// The active-calls gauge counts the calls a proxy pins, wherever it learned the pin,
/// and follows a call that moves: a proxy that found a call's pin in Redis counts it
/// and its delete brings the count back to 0, not below; a re-INVITE that moves a call
/// off a dead node moves its count too.
#[tokio::test]
async fn active_calls_follow_pins_learned_from_redis_and_calls_that_move() {
    let redis = start_redis();
    let (mut a, b) = (Rtpengine::start(), Rtpengine::start());
    let p1 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], Some(&redis)).await;
    let p2 = start_proxy(vec![node("a", &a, 1), node("b", &b, 1)], Some(&redis)).await;
    let (c1, c2) = (client_for(&p1).await, client_for(&p2).await);
    let learned = call_preferring(&p1, "a", "learned");
    c1.send(&offer(&learned)).await.unwrap();
    assert_eq!(active_calls(&p1, "a").await, 1);
    c2.send(&answer(&learned)).await.unwrap();
    assert_eq!(
        active_calls(&p2, "a").await,
        1,
        "p2 pins it too, from Redis"
    );
    c2.send(&Delete {
        call: Target::call(learned.as_str()).from_tag("caller"),
        ..Delete::default()
    })
    .await
    .unwrap();
    assert_eq!(active_calls(&p2, "a").await, 0);

    let moved = call_preferring(&p1, "a", "moved");
    c1.send(&offer(&moved)).await.unwrap();
    assert_eq!(
        active_calls(&p1, "a").await,
        2,
        "p1 still pins the call p2 deleted, until a check finds it gone"
    );
    a.kill();
    // Three health pings in a row unanswered mark it dead.
    let dead = p1.handler.pool.by_name("a").unwrap();
    for _ in 0..150 {
        if !dead.is_alive() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!dead.is_alive(), "a, killed, is marked dead");
    c1.send(&offer(&moved)).await.unwrap();
    assert_eq!(calls_on(&b).await, vec![moved], "the re-INVITE moved it");
    assert_eq!(
        (active_calls(&p1, "a").await, active_calls(&p1, "b").await),
        (1, 1),
        "its count moved with it"
    );
}

/// One whole call (offer, answer, delete) through `c`.
async fn whole_call(c: &Client, call: &str) {
    c.send(&offer(call)).await.unwrap();
    c.send(&answer(call)).await.unwrap();
    c.send(&Delete {
        call: Target::call(call).from_tag("caller"),
        ..Delete::default()
    })
    .await
    .unwrap();
}

/// A Redis that refuses one command (the QoS stream's key holds a string: WRONGTYPE, as
/// OOM or READONLY would) is not a Redis that is down: pins are still shared.
#[tokio::test]
async fn a_command_redis_refuses_does_not_stop_pin_sharing() {
    let redis = start_redis();
    spoil_qos_stream(&redis).await;
    let a = Rtpengine::start();
    let p = start_proxy(vec![node("a", &a, 1)], Some(&redis)).await;
    let c = client_for(&p).await;
    whole_call(&c, "refused-qos").await;
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let call = format!("shared-{i}");
        c.send(&offer(&call)).await.unwrap();
        assert_eq!(
            shared_pin(&redis, &call).await.as_deref(),
            Some("a"),
            "{call}"
        );
    }
}

/// A record Redis refuses for good (WRONGTYPE: the stream's key holds a string) is
/// counted and dropped, not retried forever ahead of every later record.
#[tokio::test]
async fn a_qos_record_redis_refuses_is_counted_and_dropped() {
    let redis = start_redis();
    spoil_qos_stream(&redis).await;
    let a = Rtpengine::start();
    let p = start_proxy(vec![node("a", &a, 1)], Some(&redis)).await;
    let c = client_for(&p).await;
    whole_call(&c, "refused-1").await;
    whole_call(&c, "refused-2").await;
    let qos = p.handler.qos.as_ref().unwrap();
    assert_eq!(qos.flush(Duration::from_secs(3)).await, 0, "queue moved on");
    assert_eq!(qos.refused(), 2);
    let metrics = http_get(p.metrics_addr.unwrap()).await;
    assert!(
        metrics.contains("warp_rtpengine_qos_refused_total 2\n"),
        "{metrics}"
    );

    let _: () = redis::cmd("DEL")
        .arg("warp:qos:raw")
        .query_async(&mut connect(&redis).await)
        .await
        .unwrap();
    whole_call(&c, "accepted").await;
    assert_eq!(qos.flush(Duration::from_secs(3)).await, 0);
    let entries = qos_entries(&redis, 1).await;
    let calls: Vec<_> = entries.iter().map(|(_, f)| f["call_id"].as_str()).collect();
    assert_eq!(calls, ["accepted"]);
}

/// A Redis that refuses the proxy itself, for a wrong password or none where one is
/// required, is no outage that passes: each QoS record is counted as refused and
/// dropped at once, not queued until the queue fills, and the log says why.
#[tokio::test]
async fn qos_records_a_redis_refuses_for_its_password_are_counted_and_dropped() {
    let logs = Logs::capture();
    let redis = start_redis();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("secret")
        .query_async(&mut connect(&redis).await)
        .await
        .unwrap();
    let a = Rtpengine::start();
    let wrong = redis.url.replace("redis://", "redis://:wrong@");
    for (url, why) in [
        (wrong, "authentication failed"),
        (redis.url.clone(), "NOAUTH"),
    ] {
        let p = Proxy::start(ProxyConfig {
            redis_url: Some(url.clone()),
            ..config(vec![node("a", &a, 1)], None)
        })
        .await
        .unwrap();
        let c = client_for(&p).await;
        whole_call(&c, "unauthorized").await;
        let qos = p.handler.qos.as_ref().unwrap();
        let queued = qos.flush(Duration::from_secs(2)).await;
        let logged = logs.take();
        assert_eq!((queued, qos.refused()), (0, 1), "{url}: {logged}");
        assert!(
            logged.contains("QoS record refused by redis") && logged.contains(why),
            "{url}: {logged}"
        );
    }
}

thread_local! {
    /// Where the lines logged on this thread go while a [`Logs`] lives.
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { std::cell::RefCell::new(None) };
}

/// Installs, once and before any proxy of this binary logs, the one subscriber every
/// test shares: it writes to the [`Logs`] of the thread logging, if any. Subscribers
/// set per thread instead race: a callsite first reached on a thread without one can be
/// cached as of no interest while another thread's capture starts, and that capture
/// then misses the line.
fn log_to_captures() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| ThreadSink)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// What the proxy logs on this test's thread (its tasks run there too).
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> Logs {
        log_to_captures();
        let buf = Arc::<Mutex<Vec<u8>>>::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(buf.clone()));
        Logs(buf)
    }

    /// The lines logged since the last call.
    fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

struct ThreadSink;

impl std::io::Write for ThreadSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buf) = &*c.borrow() {
                buf.lock().unwrap().extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn connect(redis: &Redis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Makes the QoS stream's key a string, so Redis refuses every XADD to it (WRONGTYPE).
async fn spoil_qos_stream(redis: &Redis) {
    let _: () = redis::cmd("SET")
        .arg("warp:qos:raw")
        .arg("not a stream")
        .query_async(&mut connect(redis).await)
        .await
        .unwrap();
}

/// The node Redis pins `call` to.
async fn shared_pin(redis: &Redis, call: &str) -> Option<String> {
    let mut conn = connect(redis).await;
    redis::cmd("GET")
        .arg(format!("warp:rtpengine:call:{call}"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn calls_go_on_while_redis_is_away_and_their_qos_arrives_once_it_is_back() {
    let mut redis = start_redis();
    redis.stop();
    let a = Rtpengine::start();
    // Redis already down when the proxy starts.
    let p = start_proxy(vec![node("a", &a, 1)], Some(&redis)).await;
    // As Kamailio's rtpengine module asks: one try, a second to answer.
    let c = Client::connect(
        &Endpoint::Udp(p.ng_addrs[0]),
        Options {
            timeout: Duration::from_secs(1),
            retries: 0,
        },
    )
    .await
    .unwrap();
    whole_call(&c, "away-1").await;

    // Back: the QoS held arrives, and from then on pins are shared again.
    redis.restart().unwrap();
    let calls = |entries: Vec<(String, std::collections::HashMap<String, String>)>| {
        let mut calls: Vec<String> = entries
            .into_iter()
            .map(|(_, f)| f["call_id"].clone())
            .collect();
        calls.sort();
        calls
    };
    assert_eq!(calls(qos_entries(&redis, 1).await), ["away-1"]);
    c.send(&offer("back-1")).await.unwrap();
    assert_eq!(shared_pin(&redis, "back-1").await.as_deref(), Some("a"));
    whole_call(&c, "back-1").await;
    assert_eq!(calls(qos_entries(&redis, 2).await), ["away-1", "back-1"]);

    // Gone in mid-run, and back empty.
    redis.stop();
    whole_call(&c, "away-2").await;
    whole_call(&c, "away-3").await;
    // What a proxy stopping now would report lost: both records, held.
    let qos = p.handler.qos.as_ref().unwrap();
    assert_eq!(qos.flush(Duration::from_millis(300)).await, 2);
    redis.restart().unwrap();
    assert_eq!(qos.flush(Duration::from_secs(5)).await, 0);
    assert_eq!(calls(qos_entries(&redis, 2).await), ["away-2", "away-3"]);
}

async fn http_get(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// Sends one raw datagram to the proxy and returns the raw reply, if any.
fn raw_exchange(addr: std::net::SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.send_to(datagram, addr).unwrap();
    let mut buf = vec![0u8; 70000];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

fn error_reason(reply: &[u8], cookie: &str) -> String {
    let body = reply
        .strip_prefix(format!("{cookie} ").as_bytes())
        .expect("reply carries the cookie");
    let d = decode_dict(body).unwrap();
    assert_eq!(d.get_str("result"), Some("error"));
    d.get_str("error-reason").unwrap().to_owned()
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_never_stops_the_proxy() {
    let a = Rtpengine::start();
    let p = start_proxy(vec![node("a", &a, 1)], None).await;
    let addr = p.ng_addrs[0];
    tokio::task::spawn_blocking(move || {
        assert!(raw_exchange(addr, b"no-cookie-at-all").is_none());
        let r = raw_exchange(addr, b"c1 this is not bencode").unwrap();
        assert!(error_reason(&r, "c1").contains("malformed request"));
        let r = raw_exchange(addr, b"c2 d7:command4:pi").unwrap();
        assert!(error_reason(&r, "c2").contains("ends early"), "truncated");
        let r = raw_exchange(addr, b"c3 d7:command4:pingei1e").unwrap();
        assert!(error_reason(&r, "c3").contains("trailing data"));
        let mut big = b"c4 d3:sdp60000:".to_vec();
        big.extend(std::iter::repeat_n(b'x', 60000));
        big.push(b'e');
        let r = raw_exchange(addr, &big).unwrap();
        assert_eq!(
            error_reason(&r, "c4"),
            "Dictionary contains no key \"command\""
        );
        let r = raw_exchange(addr, b"c5 d7:command5:boguse").unwrap();
        assert_eq!(error_reason(&r, "c5"), "Unrecognized command");
        let r = raw_exchange(addr, b"c6 {\"command\": ").unwrap();
        let body = String::from_utf8_lossy(&r).into_owned();
        assert!(
            body.starts_with("c6 {") && body.contains("malformed request"),
            "{body}"
        );
        // JSON requests are relayed as they are and answered in JSON by the node.
        let r = raw_exchange(addr, br#"j1 {"command":"ping"}"#).unwrap();
        assert_eq!(String::from_utf8_lossy(&r), r#"j1 {"result":"pong"}"#);
        let nested = format!("c7 {}", "l".repeat(60000));
        let r = raw_exchange(addr, nested.as_bytes()).unwrap();
        assert!(error_reason(&r, "c7").contains("malformed"));
        // The largest datagram there is: under the proxy's own cookie it no longer fits
        // one. That request fails; the node that could not be sent it is not dead.
        let mut largest = b"c8 d7:command4:ping3:pad65476:".to_vec();
        largest.extend(std::iter::repeat_n(b'x', 65476));
        largest.push(b'e');
        assert_eq!(largest.len(), 65_507);
        let r = raw_exchange(addr, &largest).unwrap();
        assert_eq!(error_reason(&r, "c8"), "no rtpengine node available");
    })
    .await
    .unwrap();
    // Still serving, the node still alive.
    let c = client_for(&p).await;
    c.send(&Ping).await.unwrap();
    c.send(&Offer(MediaRequest::new(
        Target::call("after-the-largest").from_tag("caller"),
        sdp("a", 40000),
    )))
    .await
    .unwrap();
    assert!(matches!(
        c.send(&Delete {
            call: Target::call("nope"),
            fatal: true,
            ..Delete::default()
        })
        .await,
        Err(Error::Rtpengine(_))
    ));
}

/// Datagrams without a cookie (junk traffic, a scanner) are dropped and counted; the log
/// names them once a minute at most, with how many it did not name, not once each.
#[tokio::test]
async fn datagrams_without_a_cookie_are_counted_not_each_logged() {
    let logs = Logs::capture();
    let a = Rtpengine::start();
    let p = start_proxy(vec![node("a", &a, 1)], None).await;
    let addr = p.ng_addrs[0];
    tokio::task::spawn_blocking(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 256];
        // In batches the socket's buffer holds whole, each followed by a ping: its
        // answer says the proxy has read every datagram sent before it.
        for batch in 0..20 {
            for i in 0..50 {
                let junk: &[u8] = [&b"no-cookie-at-all"[..], b" empty cookie", b""][i % 3];
                s.send_to(junk, addr).unwrap();
            }
            let ping = format!("p{batch} d7:command4:pinge");
            s.send_to(ping.as_bytes(), addr).unwrap();
            let n = s.recv(&mut buf).unwrap();
            assert!(buf[..n].starts_with(format!("p{batch} ").as_bytes()));
        }
    })
    .await
    .unwrap();
    let logged = logs.take();
    let lines = logged.lines().filter(|l| l.contains("without cookie"));
    assert_eq!(lines.count(), 1, "{logged}");
    let metrics = http_get(p.metrics_addr.unwrap()).await;
    assert!(
        metrics.contains("\nwarp_rtpengine_datagrams_without_cookie_total 1000\n"),
        "{metrics}"
    );
}

/// Sends `request` under `cookie` from `source` to `proxy`; its reply, if one comes
/// within half a second.
async fn ask_from(
    source: &tokio::net::UdpSocket,
    proxy: std::net::SocketAddr,
    cookie: &str,
    request: &Dict<'_>,
) -> Option<Dict<'static>> {
    let body = warp_rtpengine::message::Format::Bencode
        .encode(request)
        .unwrap();
    let datagram = warp_rtpengine::message::frame(cookie.as_bytes(), &body);
    source.send_to(&datagram, proxy).await.unwrap();
    let mut buf = vec![0u8; 70000];
    let n = tokio::time::timeout(Duration::from_millis(500), source.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    let reply = buf[..n].strip_prefix(format!("{cookie} ").as_bytes());
    Some(
        decode_dict(reply.expect("reply carries the cookie"))
            .unwrap()
            .into_owned(),
    )
}

/// With `--allow`, a source outside every listed network gets no answer at all, not
/// even to the proxy's own admin commands (a reply would confirm the port to a
/// scanner); it is counted, and logged once a minute at most. 127.0.0.1 and 127.0.0.2
/// are both loopback: one proxy, two sources.
#[tokio::test]
async fn only_sources_the_allow_list_names_are_answered() {
    let logs = Logs::capture();
    let a = Rtpengine::start();
    let p = Proxy::start(ProxyConfig {
        allow: vec!["127.0.0.2/32".parse().unwrap()],
        ..config(vec![node("a", &a, 1)], None)
    })
    .await
    .unwrap();
    let addr = p.ng_addrs[0];
    let edge = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let pong = ask_from(&edge, addr, "e1", &Ping.to_dict()).await;
    assert_eq!(pong.unwrap().get_str("result"), Some("pong"));
    let placed = ask_from(&edge, addr, "e2", &offer("from-the-edge").to_dict()).await;
    assert_eq!(placed.unwrap().get_str("result"), Some("ok"));
    assert_eq!(calls_on(&a).await, ["from-the-edge"]);

    let strangers_offer = offer("from-a-stranger");
    let refused = [
        ("s1", Ping.to_dict()),
        ("s2", admin("warp drain", Some("a"))),
        ("s3", strangers_offer.to_dict()),
    ];
    for (cookie, request) in &refused {
        let reply = ask_from(&stranger, addr, cookie, request).await;
        assert!(reply.is_none(), "{cookie} answered: {reply:?}");
    }
    assert_eq!(calls_on(&a).await, ["from-the-edge"], "no call placed");
    let nodes = ask_from(&edge, addr, "e3", &admin("warp nodes", None))
        .await
        .unwrap();
    let a_state = nodes.get_list("nodes").unwrap()[0]
        .as_dict()
        .unwrap()
        .clone();
    assert_eq!(a_state.get_int("draining"), Some(0), "not drained");

    let metrics = http_get(p.metrics_addr.unwrap()).await;
    assert!(
        metrics.contains("\nwarp_rtpengine_datagrams_refused_total 3\n"),
        "{metrics}"
    );
    let logged = logs.take();
    let lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("not allowed"))
        .collect();
    assert_eq!(lines.len(), 1, "{logged}");
    let source = stranger.local_addr().unwrap().to_string();
    assert!(lines[0].contains(&source), "{logged}");
}

#[tokio::test]
async fn retransmitted_offer_is_answered_once() {
    let a = Rtpengine::start();
    let p = start_proxy(vec![node("a", &a, 1)], None).await;
    let addr = p.ng_addrs[0];
    let mut req = b"same-cookie ".to_vec();
    let o = offer("retrans");
    req.extend(warp_rtpengine::bencode::encode_dict(&o.to_dict()));
    let (first, second) = tokio::task::spawn_blocking(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = vec![0u8; 65536];
        s.send_to(&req, addr).unwrap();
        let n = s.recv(&mut buf).unwrap();
        let first = buf[..n].to_vec();
        s.send_to(&req, addr).unwrap();
        let n = s.recv(&mut buf).unwrap();
        (first, buf[..n].to_vec())
    })
    .await
    .unwrap();
    assert_eq!(first, second, "same reply, from the cache");
    let stats = direct(&a).await.send(&GetStatistics).await.unwrap();
    assert_eq!(stats.current_sessions(), Some(1));
    // rtpengine answers a repeated offer with the same SDP: only the node's count of
    // requests shows whether the retransmission reached it.
    assert_eq!(
        p.handler.pool.by_name("a").unwrap().metrics.requests(),
        1,
        "the retransmission was forwarded to the node"
    );
}

/// A delete of one via-branch leaves the call alive, and rtpengine keeps a deleted call
/// for its delete delay (30 s unless told otherwise), answering a repeated delete `ok`
/// with the call's stats again: only the delete that ends the call writes its record.
#[tokio::test]
async fn a_call_gets_one_final_qos_record_however_many_deletes() {
    let redis = start_redis();
    let a = Rtpengine::start();
    let p = start_proxy(vec![node("a", &a, 1)], Some(&redis)).await;
    let c = client_for(&p).await;
    for branch in ["br-1", "br-2"] {
        let mut o = offer("once-1");
        o.0.call.via_branch = Some(branch.into());
        c.send(&o).await.unwrap();
    }
    c.send(&answer("once-1")).await.unwrap();
    let delete = |via_branch: Option<&str>| Delete {
        call: Target {
            via_branch: via_branch.map(str::to_owned),
            ..Target::call("once-1").from_tag("caller")
        },
        delete_delay: Some(30),
        ..Delete::default()
    };
    c.send(&delete(Some("br-2"))).await.unwrap();
    c.send(&delete(None)).await.unwrap();
    let again = c.send(&delete(None)).await.unwrap();
    assert!(
        !again.parties.is_empty(),
        "rtpengine still answers with stats"
    );
    let qos = p.handler.qos.as_ref().unwrap();
    assert_eq!(qos.flush(Duration::from_secs(5)).await, 0);
    let entries = qos_entries(&redis, 1).await;
    let events: Vec<_> = entries
        .iter()
        .map(|(_, f)| (f["call_id"].as_str(), f["event"].as_str()))
        .collect();
    assert_eq!(events, [("once-1", "final")]);
}
