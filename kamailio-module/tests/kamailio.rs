//! warp.so inside a real Kamailio 5.6 (Debian's package) on loopback.
//!
//! The tests live in tests/kamailio/, one concern per file; here is what several of them
//! share: the scripts they run, Kamailio started on the test data or on the shipped
//! config, and what they read back (warp.stats, CDR events, cluster counts).

#[path = "kamailio/async_dip.rs"]
mod async_dip;
#[path = "kamailio/auth.rs"]
mod auth;
#[path = "kamailio/cdr.rs"]
mod cdr;
#[path = "kamailio/cluster.rs"]
mod cluster;
#[path = "kamailio/config.rs"]
mod config;
#[path = "kamailio/failover.rs"]
mod failover;
#[path = "kamailio/kemi.rs"]
mod kemi;
#[path = "kamailio/limits.rs"]
mod limits;
#[path = "kamailio/lrn.rs"]
mod lrn;
#[path = "kamailio/module.rs"]
mod module;
#[path = "kamailio/prometheus.rs"]
mod prometheus;
#[path = "kamailio/rediss.rs"]
mod rediss;
#[path = "kamailio/reload.rs"]
mod reload;
#[path = "kamailio/route.rs"]
mod route;
#[path = "kamailio/spool.rs"]
mod spool;
mod support;
#[path = "kamailio/tcp.rs"]
mod tcp;
#[path = "kamailio/tls.rs"]
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::rtpengine::wait_for_no_media_sessions;
use support::sdp::{assert_plain_rtp, assert_srtp, audio_ports, srtp_offer};
use support::sipp::{Answer, Uac, Uas};
use support::udp::{
    behind_nat, body_of, contact_uri, final_replies, final_reply, final_reply_text, finals_within,
    header_of, next_request, raw_invite_with_sdp, raw_request, raw_socket, reply_to, send_raw,
    with_sdp, InDialog,
};
use support::{Kamailio, Reply, Script};

/// Answers every request with 200, carrying the ANI warp_ani() found and the worker pid.
const ANI_ROUTE: &str = r#"
    if (warp_ani()) {
        append_to_reply("X-Warp-ANI: $warp(ani)\r\nX-Warp-ANI-Source: $warp(ani_source)\r\n");
    }
    append_to_reply("X-Warp-Pid: $pp\r\n");
    sl_send_reply("200", "OK");
"#;

/// `warp.stats`' counters under the names Kamailio's statistics give them: `prefix` and
/// the key flattened (`warp_route.calls` → `<prefix>warp_route_calls`), the latency
/// histogram left out, no snapshot's generation 0.
fn warp_stats_named(stats: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    stats
        .iter()
        .filter(|(key, _)| !key.contains(".latency_us."))
        .map(|(key, value)| {
            let value = if value == "none" { "0" } else { value };
            (
                format!("{prefix}{}", key.replace('.', "_")),
                value.to_owned(),
            )
        })
        .collect()
}

/// Routes with warp_route(): refusals answered with `$warp(code)`/`$warp(reason)`,
/// routed calls answered 200 with the decision in headers (instead of relaying).
const ROUTE: &str = r#"
    if (!warp_route()) {
        append_to_reply("X-Warp-ANI: $warp(ani)\r\nX-Warp-Why: $warp(why)\r\n");
        sl_send_reply("$warp(code)", "$warp(reason)");
        exit;
    }
    append_to_reply("X-Warp-RURI: $ru\r\nX-Warp-Vendor: $warp(vendor)\r\nX-Warp-BAN: $warp(ban)\r\n");
    append_to_reply("X-Warp-Trunk: $warp(trunk)\r\nX-Warp-Zone: $warp(zone)\r\nX-Warp-Partition: $warp(partition)\r\n");
    append_to_reply("X-Warp-Rates: $warp(vendor_rate)/$warp(customer_rate)\r\nX-Warp-LRN: $warp(lrn)\r\n");
    sl_send_reply("200", "Routed");
"#;

/// Kamailio on the test dataset's snapshot, published in a temp dir of its own that
/// the caller keeps while Kamailio runs.
fn start_on_test_data(script: Script<'_>) -> (tempfile::TempDir, Kamailio) {
    let (dir, _, k) = start_on(&support::dataset::Data::default(), script);
    (dir, k)
}

/// As [`start_on_test_data`], on `data`; also the snapshot's path, where later
/// generations are published.
fn start_on(
    data: &support::dataset::Data,
    script: Script<'_>,
) -> (tempfile::TempDir, PathBuf, Kamailio) {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    data.publish(&snap);
    let k = Kamailio::start(&[("snapshot", snap.to_str().unwrap())], script);
    (dir, snap, k)
}

/// A call from T1 on the test data, routed by a script that answers with the decision
/// in `X-Warp-*` headers: it went to CHEAP, the cheapest vendor.
fn routed_to_the_cheapest_vendor(k: &Kamailio) -> Reply {
    let reply = k.request(
        "INVITE",
        "P-Asserted-Identity: <sip:+17205550199@x.example>\r\n",
    );
    assert_eq!(
        (reply.code, reply.reason.as_str()),
        (200, "Routed"),
        "{}",
        k.log()
    );
    assert_eq!(
        reply.header("X-Warp-RURI"),
        Some("sip:+12125550123@127.0.0.1:5090")
    );
    assert_eq!(reply.header("X-Warp-Vendor"), Some("CHEAP"));
    assert_eq!(reply.header("X-Warp-BAN"), Some("C1"));
    assert_eq!(reply.header("X-Warp-Trunk"), Some("T1"));
    assert_eq!(reply.header("X-Warp-Rates"), Some("0.004/0.02"));
    reply
}

/// Relays routed calls to the vendor (stateful, record-routed), fails over to the next
/// vendor on 5xx, 408 or timeout, relays in-dialog requests along the recorded route;
/// refusals answered with `$warp(code)`/`$warp(reason)`.
const RELAY: &str = r#"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "rr.so"
loadmodule "dialog.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
modparam("tm", "fr_timer", 1000)
request_route {
    if (has_totag()) {
        if (loose_route() || (is_method("ACK") && t_check_trans())) {
            t_relay();
        }
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) { t_relay(); }
        exit;
    }
    if (!warp_route()) {
        sl_send_reply("$warp(code)", "$warp(reason)");
        exit;
    }
    dlg_manage();
    record_route();
    t_on_failure("WARP_NEXT");
    t_relay();
}
failure_route[WARP_NEXT] {
    if (t_is_canceled()) { exit; }
    if ((t_check_status("5[0-9][0-9]|408") || t_branch_timeout()) && warp_next_route()) {
        xlog("L_INFO", "failover $ci to $warp(vendor) attempt $warp(attempt) ban $warp(ban)\n");
        t_on_failure("WARP_NEXT");
        t_relay();
    }
}
"#;

/// A test that fails while its sipp calls run leaves no sipp behind: the UAC goes with
/// its handle, as the other daemons of these tests do.
#[test]
fn a_uac_dropped_unfinished_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing answers there: sipp would retransmit until its own timeout.
    let calls = Uac::new(support::free_udp_port(), dir.path(), 1, 1).spawn();
    let pid = calls.id();
    drop(calls);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "sipp {pid} still runs"
    );
}

fn md5_hex(text: &str) -> String {
    use md5::{Digest, Md5};
    format!("{:x}", Md5::digest(text.as_bytes()))
}

/// Who answers a digest challenge, and how.
struct Credentials<'a> {
    user: &'a str,
    password: &'a str,
    realm: &'a str,
}

/// An INVITE for `dnis` from `source`, answering the proxy's digest challenge.
fn authenticated_invite(
    k: &Kamailio,
    source: &str,
    dnis: &str,
    c: &Credentials<'_>,
) -> support::Reply {
    let credentials = digest_credentials(k, source, dnis, c);
    k.request_to(source, dnis, "INVITE", &credentials)
}

/// The challenge the proxy sends to an INVITE for `dnis` from `source`: its nonce, and
/// whether it offers qop=auth.
fn challenge(k: &Kamailio, source: &str, dnis: &str) -> (String, bool) {
    let challenge = k.request_to(source, dnis, "INVITE", "X-Want-Auth: 1\r\n");
    assert_eq!(challenge.code, 407, "{}", k.log());
    let header = challenge.header("Proxy-Authenticate").unwrap();
    let nonce = header
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    (nonce.to_owned(), header.contains("qop=\"auth\""))
}

/// The headers of an INVITE for `dnis` from `source` that answer the challenge the
/// proxy sent to the first one (with qop=auth when it offered that).
fn digest_credentials(k: &Kamailio, source: &str, dnis: &str, c: &Credentials<'_>) -> String {
    let (nonce, qop) = challenge(k, source, dnis);
    digest_answer(k, dnis, &nonce, qop, c)
}

/// The headers of an INVITE for `dnis` answering `nonce`: with qop=auth and the nonce
/// count 1, or as an RFC 2069 UA answers.
fn digest_answer(k: &Kamailio, dnis: &str, nonce: &str, qop: bool, c: &Credentials<'_>) -> String {
    let uri = format!("sip:{dnis}@127.0.0.1:{}", k.port);
    let (user, realm) = (c.user, c.realm);
    let ha1 = md5_hex(&format!("{user}:{realm}:{}", c.password));
    let ha2 = md5_hex(&format!("INVITE:{uri}"));
    let (response, qop) = match qop {
        true => (
            md5_hex(&format!("{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}")),
            ", qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
        ),
        false => (md5_hex(&format!("{ha1}:{nonce}:{ha2}")), ""),
    };
    format!(
        "X-Want-Auth: 1\r\nProxy-Authorization: Digest username=\"{user}\", realm=\"{realm}\", \
         nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"{qop}, algorithm=MD5\r\n"
    )
}

/// Events per call-id in call order. Processes queue their events separately (the
/// failure in one worker, the answer in another), so the stream's order is not it.
fn by_call(cdrs: &[serde_json::Value]) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut calls: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for cdr in cdrs {
        calls
            .entry(cdr["call_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(cdr.clone());
    }
    let rank = |e: &serde_json::Value| {
        let kind = ["start", "answer", "failed", "end"]
            .iter()
            .position(|k| e["event"] == *k);
        (e["attempt"].as_u64(), kind)
    };
    for events in calls.values_mut() {
        events.sort_by_key(rank);
    }
    calls
}

fn millis(cdr: &serde_json::Value, field: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(cdr[field].as_str().unwrap())
        .unwrap_or_else(|e| panic!("{field} of {cdr}: {e}"))
        .timestamp_millis()
}

/// Kamailio running `script` on `data`'s snapshot (published in `dir`), writing CDR
/// events to `warp:cdr:raw` in the Redis at `redis_url`, with `more` parameters.
fn start_reporting(
    dir: &Path,
    data: &support::dataset::Data,
    redis_url: &str,
    script: Script<'_>,
    more: &[(&str, &str)],
) -> Kamailio {
    let snap = dir.join("routing.snap");
    data.publish(&snap);
    let mut params = vec![
        ("snapshot", snap.to_str().unwrap()),
        ("redis_url", redis_url),
        ("cdr_stream", "warp:cdr:raw"),
    ];
    params.extend_from_slice(more);
    Kamailio::start(&params, script)
}

/// configs/kamailio/kamailio.cfg as shipped, on `data`'s snapshot (published in `dir`),
/// its CDR events to `redis_url` (spooled in `dir`), with `defines` on top.
fn start_shipped(
    dir: &Path,
    data: &support::dataset::Data,
    redis_url: &str,
    defines: &[String],
) -> Kamailio {
    start_config(&shipped_config(), dir, data, redis_url, defines)
}

/// A Redis URL nothing listens on, for a test that reads no CDR event.
fn no_redis() -> String {
    format!("redis://127.0.0.1:{}", support::free_udp_port())
}

/// configs/kamailio/kamailio.cfg, as shipped.
fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/kamailio/kamailio.cfg")
}

/// [`start_shipped`] with the config at `cfg` (the shipped one, edited).
fn start_config(
    cfg: &Path,
    dir: &Path,
    data: &support::dataset::Data,
    redis_url: &str,
    defines: &[String],
) -> Kamailio {
    let snap = dir.join("routing.snap");
    data.publish(&snap);
    let mut all = vec![
        format!("WARP_SNAPSHOT=\"{}\"", snap.display()),
        format!("WARP_REDIS_URL=\"{redis_url}\""),
        format!("WARP_CDR_SPOOL=\"{}\"", dir.join("spool").display()),
    ];
    all.extend_from_slice(defines);
    Kamailio::start_file(cfg, &all, &[])
}

/// The shipped config written into `dir` with Redis's budget for WITH_CLUSTER as the
/// cluster tests give it: within the shipped 20 ms, Redis on a loaded test machine can
/// miss an admission (the edge counts alone) or a call's release (counted on until the
/// next beat).
fn patient_cluster_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(shipped_config()).unwrap();
    let cluster = "modparam(\"warp\", \"cluster_concurrent\", 1)\n";
    let budget = format!("modparam(\"warp\", \"cluster_timeout\", {CLUSTER_TIMEOUT})\n");
    let patient = text.replace(cluster, &format!("{cluster}{budget}"));
    assert_ne!(patient, text);
    let cfg = dir.join("kamailio.cfg");
    std::fs::write(&cfg, patient).unwrap();
    cfg
}

/// configs/kamailio/kamailio.cfg as shipped, with digest auth (checked against the
/// snapshot's ha1) and a cluster budget for a loaded test machine.
#[test]
fn the_shipped_carrier_edge_config_routes_authenticates_fails_over_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Unavailable);
    let dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let defines = [
        "WITH_AUTH".to_string(),
        format!("AUTH_REALM=\"{}\"", support::dataset::REALM),
        "WITH_CLUSTER".to_string(),
    ];
    let cfg = patient_cluster_config(dir.path());
    let k = start_config(&cfg, dir.path(), &data, &redis.url(), &defines);
    assert_eq!(k.rpc("warp.config")["cluster_timeout"], CLUSTER_TIMEOUT);

    // T1 by its address: CHEAP answers 503, DEAR takes the calls.
    let status = Uac::new(k.port, dir.path(), 5, 10).spawn().wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!(dear.invites(), 5);
    // Counted in Redis with the other edges, and given back when they ended.
    wait_for_stat(&k, "limits.active", "0");
    assert!(no_calls_counted(&redis, "T1"));
    assert_eq!(k.rpc("warp.stats")["limits.cluster_fallbacks"], "0");
    let cdrs = redis.wait_for("warp:cdr:raw", 20, Duration::from_secs(10));
    let calls = by_call(&cdrs);
    assert_eq!((cdrs.len(), calls.len()), (20, 5), "{cdrs:#?}");
    for events in calls.values() {
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["start", "failed", "answer", "end"]);
    }

    // An address no trunk lists is challenged; T3's credentials identify T3, whose
    // customer has no route to the UK (404), a wrong password is challenged again.
    let unknown = k.request_from("127.0.0.9", "INVITE", "");
    assert_eq!(unknown.code, 407, "{}", k.log());
    let uk = "011442079460000";
    let t3 = Credentials {
        user: "t3user",
        password: support::dataset::PASSWORD,
        realm: support::dataset::REALM,
    };
    let reply = authenticated_invite(&k, "127.0.0.9", uk, &t3);
    assert_eq!(
        (reply.code, reply.reason.as_str()),
        (404, "No Route"),
        "{}",
        k.log()
    );
    // Refused by the customer's rate plan, not for want of a trunk.
    assert!(
        k.log()
            .contains("refused: 404 No Route (the customer's rate plan has no rate"),
        "{}",
        k.log()
    );
    let wrong = Credentials {
        password: "guess",
        ..t3
    };
    let reply = authenticated_invite(&k, "127.0.0.9", uk, &wrong);
    assert_eq!(reply.code, 407);
    // A username with no password set yet, or none the snapshot knows: asked again.
    for user in ["t3nopass", "nobody"] {
        let reply = authenticated_invite(&k, "127.0.0.9", uk, &Credentials { user, ..t3 });
        assert_eq!(reply.code, 407, "{user}");
    }
    // T4 asks for credentials and its address: challenged there, refused elsewhere.
    let t4 = Credentials {
        user: "t4user",
        ..t3
    };
    assert_eq!(k.request_from("127.0.0.4", "INVITE", "").code, 407);
    let reply = authenticated_invite(&k, "127.0.0.4", uk, &t4);
    assert_eq!((reply.code, reply.reason.as_str()), (404, "No Route"));
    let reply = authenticated_invite(&k, "127.0.0.9", uk, &t4);
    assert_eq!(reply.code, 403, "{}", k.log());
    assert!(
        k.log()
            .contains("trunk T4 takes credentials only from its addresses"),
        "{}",
        k.log()
    );
    // T3's answer to a challenge, seen on the wire, serves no second request: not the
    // same again, nor from another address, nor for another number. The challenge
    // that answers a replay is stale: the PBX's password may be right.
    let seen = digest_credentials(&k, "127.0.0.9", uk, &t3);
    assert!(seen.contains("qop=auth, nc=00000001"), "{seen}");
    let reply = k.request_to("127.0.0.9", uk, "INVITE", &seen);
    assert_eq!(reply.code, 404, "{}", k.log());
    let replays = [
        ("127.0.0.9", uk),
        ("127.0.0.10", uk),
        ("127.0.0.9", "011442079460001"),
    ];
    let replayed = |seen: &str| {
        for (source, dnis) in replays {
            let replayed = k.request_to(source, dnis, "INVITE", seen);
            assert_eq!(replayed.code, 407, "{source} {dnis}: {}", k.log());
            let challenge = replayed.header("Proxy-Authenticate").unwrap();
            assert!(challenge.contains("stale=true"), "{challenge}");
        }
    };
    replayed(&seen);
    // A PBX that does not do qop answers the same challenge without it: its nonce
    // serves once.
    let (nonce, _) = challenge(&k, "127.0.0.9", uk);
    let seen = digest_answer(&k, uk, &nonce, false, &t3);
    let reply = k.request_to("127.0.0.9", uk, "INVITE", &seen);
    assert_eq!(reply.code, 404, "{}", k.log());
    replayed(&seen);
    // sipp as a PBX on T3's credentials: each call is challenged and answered with
    // qop=auth, and reaches the vendor.
    let status = Uac {
        source: "127.0.0.9",
        auth: Some(("t3user", support::dataset::PASSWORD)),
        ..Uac::new(k.port, dir.path(), 5, 10)
    }
    .spawn()
    .wait()
    .unwrap();
    assert!(
        status.success(),
        "T3's calls failed ({status}):\n{}",
        k.log()
    );
    assert_eq!(dear.invites(), 10);
    let cdrs = redis.wait_for("warp:cdr:raw", 40, Duration::from_secs(10));
    let t3_calls = cdrs
        .iter()
        .filter(|e| e["event"] == "answer" && e["trunk"] == "T3")
        .count();
    assert_eq!(t3_calls, 5, "{cdrs:#?}");
    // No password check logged an error: an unknown user never reached one.
    assert!(!k.log().contains("invalid password value"), "{}", k.log());

    // A DNO'd caller: 403.
    let dno = format!(
        "P-Asserted-Identity: <tel:{}>\r\n",
        support::dataset::DNO_ANI
    );
    let reply = k.request("INVITE", &dno);
    assert_eq!(
        (reply.code, reply.reason.as_str()),
        (403, "Forbidden (DNO)")
    );
    // Trunk keepalives.
    assert_eq!(k.request("OPTIONS", "").code, 200);
}

/// `WITH_ANTIFLOOD`: an unknown address refused more than PIKE_DENSITY times in 2 s is
/// banned for BAN_TIME s (its requests go unanswered, so a scanner learns nothing and
/// costs no reply), while a trunk's own burst of calls is never counted.
#[test]
fn the_shipped_config_bans_an_address_it_refuses_over_and_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let defines = ["WITH_ANTIFLOOD", "PIKE_DENSITY=5", "BAN_TIME=3"].map(String::from);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let (dnis, wait) = ("12125550123", Duration::from_secs(1));
    let stranger = "127.0.0.7";
    refused_until_banned(&k, stranger, "INVITE", 403);
    // T1's burst, over the density, is its own business (its CPS limit's).
    for _ in 0..20 {
        let reply = k.request_to("127.0.0.1", dnis, "INVITE", "");
        assert_eq!(reply.code, 200, "{}", k.log());
    }
    std::thread::sleep(Duration::from_secs(4));
    let reply = k.request_within(wait, stranger, dnis, "INVITE", "");
    assert_eq!(
        reply.map(|r| r.code),
        Some(403),
        "the ban outlived BAN_TIME"
    );
}

/// Sends `method` from `source` until the edge stops answering: refused with `code`
/// each time before, banned at the density of 5 the tests set, and then deaf to it.
fn refused_until_banned(k: &Kamailio, source: &str, method: &str, code: u16) {
    let (dnis, wait) = ("12125550123", Duration::from_secs(1));
    let refused = (0..30)
        .map_while(|_| k.request_within(wait, source, dnis, method, ""))
        .inspect(|reply| assert_eq!(reply.code, code, "{}", k.log()))
        .count();
    assert!(
        (5..30).contains(&refused),
        "{refused} refused before the ban"
    );
    for method in ["OPTIONS", "INVITE"] {
        let reply = k.request_within(wait, source, dnis, method, "");
        assert!(reply.is_none(), "banned, answered {reply:?}");
    }
    assert!(k.log().contains(&format!("{source} banned")), "{}", k.log());
    let bans = k.kamcmd(&["htable.dump", "ipban"]).unwrap();
    assert!(bans.contains(source), "{bans}");
}

/// `WITH_ANTIFLOOD` with `DMQ_ADDRESS`: a ban made on one edge holds on the other, which
/// joined the first over dmq; a KDMQ from outside `DMQ_NETWORK` is dropped unanswered.
#[test]
fn the_shipped_config_shares_its_bans_with_the_other_edges() {
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let edge = |dir: &Path, peer: Option<u16>| {
        let mut defines = [
            "WITH_ANTIFLOOD",
            "PIKE_DENSITY=5",
            "BAN_TIME=30",
            "DMQ_ADDRESS=\"sip:127.0.0.1:{port}\"",
            "DMQ_NETWORK=\"127.0.0.1/32\"",
        ]
        .map(String::from)
        .to_vec();
        defines.extend(peer.map(|p| format!("DMQ_PEER=\"sip:127.0.0.1:{p}\"")));
        start_shipped(dir, &data, &no_redis(), &defines)
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = edge(dir_a.path(), None);
    let b = edge(dir_b.path(), Some(a.port));
    // B has joined A's bus once A lists it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let b_node = format!("port: {}", b.port);
    while !a.kamcmd(&["dmq.list_nodes"]).unwrap().contains(&b_node) {
        assert!(Instant::now() < deadline, "B never joined:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let stranger = "127.0.0.7";
    refused_until_banned(&a, stranger, "INVITE", 403);
    let wait = Duration::from_millis(500);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b
        .kamcmd(&["htable.dump", "ipban"])
        .unwrap()
        .contains(stranger)
    {
        assert!(
            Instant::now() < deadline,
            "the ban never reached B:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = b.request_within(wait, stranger, "12125550123", "INVITE", "");
    assert!(reply.is_none(), "banned on A, answered by B: {reply:?}");
    // A trunk still gets in through B.
    assert_eq!(b.request("INVITE", "").code, 200, "{}", b.log());
    // dmq answers a KDMQ from the edges' network, and no other.
    let kdmq = |source| b.request_within(wait, source, "htable", "KDMQ", "");
    assert!(kdmq("127.0.0.1").is_some(), "{}", b.log());
    assert!(kdmq("127.0.0.9").is_none());
}

/// `WITH_ANTIFLOOD`: a REGISTER scan (hunting for extensions) is refused with a 405 and
/// banned like a stranger's calls; a trunk's out-of-dialog REGISTER now and then is not.
#[test]
fn the_shipped_config_bans_a_register_scanner() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let defines = ["WITH_ANTIFLOOD", "PIKE_DENSITY=5", "BAN_TIME=3"].map(String::from);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    refused_until_banned(&k, "127.0.0.7", "REGISTER", 405);
    for _ in 0..3 {
        let reply = k.request_to("127.0.0.1", "12125550123", "REGISTER", "");
        assert_eq!(reply.code, 405, "{}", k.log());
    }
}

/// `WITH_ANTIFLOOD` with `WITH_AUTH`: wrong passwords count towards a ban, challenges to
/// requests without credentials do not (every call of a credentials trunk starts with
/// one); the trunk itself still gets in from elsewhere with its right password.
#[test]
fn the_shipped_config_bans_an_address_guessing_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let realm = support::dataset::REALM;
    let defines = [
        "WITH_AUTH".to_string(),
        format!("AUTH_REALM=\"{realm}\""),
        "WITH_ANTIFLOOD".into(),
        "PIKE_DENSITY=5".into(),
    ];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let (dnis, wait) = ("12125550123", Duration::from_secs(1));
    for _ in 0..20 {
        let reply = k.request_to("127.0.0.7", dnis, "INVITE", "");
        assert_eq!(reply.code, 407, "{}", k.log());
    }
    let guesser = "127.0.0.8";
    let guess = |password| Credentials {
        user: "t3user",
        password,
        realm,
    };
    let refused = (0..30)
        .map_while(|_| {
            let answer = digest_credentials(&k, guesser, dnis, &guess("guessed"));
            k.request_within(wait, guesser, dnis, "INVITE", &answer)
        })
        .inspect(|reply| assert_eq!(reply.code, 407, "{}", k.log()))
        .count();
    assert!(
        (5..30).contains(&refused),
        "{refused} guesses before the ban"
    );
    let reply = k.request_within(wait, guesser, dnis, "INVITE", "");
    assert!(reply.is_none(), "banned, answered {reply:?}");
    let reply = authenticated_invite(&k, "127.0.0.9", dnis, &guess(support::dataset::PASSWORD));
    assert_eq!(reply.code, 200, "{}", k.log());
}

/// Listening where the config says by default (no `LISTEN`), the edge records a route
/// its peers can send to: the address a call came in on, not 0.0.0.0, which a vendor
/// could not send the call's BYE to.
#[test]
fn the_shipped_config_records_a_reachable_route_on_its_default_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    // The config's own socket: the test's `LISTEN` define ignored, the default port
    // made a free one.
    let port = support::free_udp_port();
    let text = std::fs::read_to_string(shipped_config())
        .unwrap()
        .replace("LISTEN", "UNSET_LISTEN")
        .replace("5060", &port.to_string());
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg, text).unwrap();
    let nowhere = no_redis();
    let k = start_config(&cfg, dir.path(), &data, &nowhere, &[]);
    let (sock, lport) = raw_socket();
    let invite = raw_request(port, lport, "INVITE", "+12125550123", "default");
    sock.send_to(invite.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    assert_eq!(final_reply(&sock, &k, "default").code, 200, "{}", k.log());
    let relayed = vendor.received("INVITE");
    let routes: Vec<std::net::IpAddr> = relayed[0]
        .lines()
        .filter_map(|l| l.strip_prefix("Record-Route: <sip:"))
        .map(|uri| uri.split([':', ';', '>']).next().unwrap().parse().unwrap())
        .collect();
    assert!(!routes.is_empty(), "{}", relayed[0]);
    assert!(
        routes.iter().all(|ip| !ip.is_unspecified()),
        "{}",
        relayed[0]
    );
    assert!(routes.contains(&"127.0.0.1".parse().unwrap()), "{routes:?}");
}

/// The shipped config's IPv6 socket beside its IPv4 one (`LISTEN_IPV6`): ::1 on the
/// edge's port.
fn dual_stack() -> String {
    "LISTEN_IPV6=udp:[::1]:{port}".to_owned()
}

/// `LISTEN_IPV6` without `LISTEN` would be the edge's only socket, its IPv4 addresses
/// dropped: Kamailio refuses the config at the line that says so.
#[test]
fn the_shipped_config_refuses_an_ipv6_socket_without_an_ipv4_one() {
    let dir = tempfile::tempdir().unwrap();
    // The test's own `LISTEN` define ignored.
    let text = std::fs::read_to_string(shipped_config())
        .unwrap()
        .replace("#!ifdef LISTEN\n", "#!ifdef UNSET_LISTEN\n");
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("LISTEN_IPV6_needs_LISTEN"))
        .unwrap();
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg, text).unwrap();
    let log = Kamailio::refused_file(&cfg, &[dual_stack()]);
    assert!(log.contains(&format!("line {line}, column")), "{log}");
    assert!(!log.contains("Listening on"), "{log}");
}

/// A dual-stack edge (`LISTEN` and `LISTEN_IPV6`): trunk T6, known by its IPv6 address,
/// calls over IPv6 to a vendor reached over IPv4. The edge records its route on both
/// sockets (rr's double Record-Route), so the caller's BYE reaches the vendor and the
/// vendor's BYE the caller; the calls report as calls over IPv4 do.
#[test]
fn the_shipped_config_takes_an_ipv6_trunks_calls_to_an_ipv4_vendor() {
    calls_to_cheap(&[("::1", "T6")], ("127.0.0.1", "127.0.0.1"));
}

/// As [`the_shipped_config_takes_an_ipv6_trunks_calls_to_an_ipv4_vendor`], to a vendor
/// gateway named by its IPv6 address (`sip:...@[::1]:port`); and T1's calls over IPv4
/// to it, crossing the other way.
#[test]
fn the_shipped_config_takes_an_ipv6_trunks_calls_to_an_ipv6_vendor() {
    calls_to_cheap(&[("::1", "T6"), ("127.0.0.1", "T1")], ("[::1]", "::1"));
}

/// Calls from each (source address, trunk) of `callers` to CHEAP, whose gateway is
/// `host` in its dialstring and listens on `ip`: two the caller ends, two the vendor
/// ends.
fn calls_to_cheap(callers: &[(&str, &str)], (host, ip): (&'static str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data {
        ipv6_trunk: true,
        gateway_hosts: (host, "127.0.0.1"),
        ..support::dataset::Data::with_gateways()
    };
    let k = start_shipped(dir.path(), &data, &redis.url(), &[dual_stack()]);
    let ends = [(false, Answer::Accept), (true, Answer::AcceptThenHangUp)];
    for (source, (callee_hangs_up, answer)) in callers
        .iter()
        .flat_map(|&(source, _)| ends.map(|end| (source, end)))
    {
        let vendor = Uas::start_on(dir.path(), ip, data.cheap.0, answer);
        let status = Uac {
            source,
            callee_hangs_up,
            ..Uac::new(k.port, dir.path(), 2, 10)
        }
        .spawn()
        .wait()
        .unwrap();
        assert!(
            status.success(),
            "calls from {source} failed ({status}), the callee hanging up: {callee_hangs_up}:\n{}",
            k.log()
        );
        assert_eq!(vendor.invites(), 2, "{}", k.log());
    }
    // Each call's dialog saw its BYE: its place given back, its end reported.
    wait_for_stat(&k, "limits.active", "0");
    let n = 4 * callers.len();
    let cdrs = redis.wait_for("warp:cdr:raw", 3 * n, Duration::from_secs(10));
    let calls = by_call(&cdrs);
    assert_eq!((cdrs.len(), calls.len()), (3 * n, n), "{cdrs:#?}");
    let mut trunks = BTreeMap::new();
    for events in calls.values() {
        let trunk = events[0]["trunk"].as_str().unwrap();
        *trunks.entry(trunk).or_insert(0) += 1;
        let seen: Vec<(&str, &str, &str)> = (events.iter())
            .map(|e| {
                let field = |name: &str| e[name].as_str().unwrap();
                (field("event"), field("trunk"), field("vendor"))
            })
            .collect();
        let expected = ["start", "answer", "end"].map(|kind| (kind, trunk, "CHEAP"));
        assert_eq!(seen, expected, "{events:#?}");
    }
    let expected: BTreeMap<&str, usize> = callers.iter().map(|&(_, trunk)| (trunk, 4)).collect();
    assert_eq!(trunks, expected, "{cdrs:#?}");
}

/// A dual-stack edge refuses an IPv6 address no trunk lists (403: T1's 127.0.0.1 is
/// no match for ::1), and WITH_ANTIFLOOD bans one refused over and over by that
/// address, as `kamcmd htable.dump ipban` shows it and `htable.delete` lifts it.
#[test]
fn the_shipped_config_refuses_and_bans_an_unknown_ipv6_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let mut defines = vec![dual_stack()];
    defines.extend(["WITH_ANTIFLOOD", "PIKE_DENSITY=5", "BAN_TIME=30"].map(String::from));
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let stranger = "::1";
    refused_until_banned(&k, stranger, "INVITE", 403);
    assert!(
        k.log().contains("from ::1 refused: 403 Forbidden"),
        "{}",
        k.log()
    );
    // The ban is the stranger's alone: T1 still gets in.
    assert_eq!(k.request("INVITE", "").code, 200, "{}", k.log());
    k.kamcmd(&["htable.delete", "ipban", stranger]).unwrap();
    let bans = k.kamcmd(&["htable.dump", "ipban"]).unwrap();
    assert!(!bans.contains(stranger), "{bans}");
}

/// A dual-stack edge with WITH_AUTH: a credentials trunk's PBX (T3) calling from ::1,
/// an address no trunk lists, is challenged over IPv6 (407) and, answering with its
/// password, taken as T3 and its call answered; a wrong password is challenged again.
#[test]
fn the_shipped_config_authenticates_a_credentials_trunk_calling_from_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let realm = support::dataset::REALM;
    let defines = [
        dual_stack(),
        "WITH_AUTH".into(),
        format!("AUTH_REALM=\"{realm}\""),
    ];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let t3 = |password| Credentials {
        user: "t3user",
        password,
        realm,
    };
    let dnis = "12125550123";
    let reply = authenticated_invite(&k, "::1", dnis, &t3(support::dataset::PASSWORD));
    assert_eq!(reply.code, 200, "{}", k.log());
    assert!(k.log().contains("/T3 "), "{}", k.log());
    let reply = authenticated_invite(&k, "::1", dnis, &t3("guessed"));
    assert_eq!(reply.code, 407, "{}", k.log());
}

/// A keepalive OPTIONS with Max-Forwards 0 (as SBCs send them, for the next hop to
/// answer: RFC 3261 16.3) gets 200, not 483; an INVITE with none left still gets 483.
#[test]
fn the_shipped_config_answers_keepalives_sent_with_max_forwards_0() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let nowhere = no_redis();
    let k = start_shipped(dir.path(), &data, &nowhere, &[]);
    let (sock, lport) = raw_socket();
    for (method, code) in [("OPTIONS", 200), ("INVITE", 483)] {
        let request = raw_request(k.port, lport, method, "+12125550123", method)
            .replace("Max-Forwards: 70", "Max-Forwards: 0");
        send_raw(&sock, &k, &request);
        assert_eq!(final_reply(&sock, &k, method).code, code, "{}", k.log());
    }
}

/// How a shipped config test's calls are routed: straight away in the SIP worker, or
/// dipped first: with WITH_LRN_DIP, to a number the Telique stub says is ported, each
/// call handed to an async worker and routed in the route it is resumed in, to tm a
/// failure route.
struct Routing {
    telique: Option<support::telique::Telique>,
}

impl Routing {
    fn direct() -> Routing {
        Routing { telique: None }
    }

    fn dipped() -> Routing {
        Routing {
            telique: Some(support::telique::Telique::start()),
        }
    }

    /// The number a raw request dials.
    fn number(&self) -> &'static str {
        match self.telique {
            None => "+12125550123",
            Some(_) => "+12125550001",
        }
    }

    /// sipp's arguments for that number (none: sipp's own, the same).
    fn sipp(&self) -> Vec<&'static str> {
        match self.telique {
            None => Vec::new(),
            Some(_) => vec!["-s", &self.number()[1..]],
        }
    }

    /// The shipped config's defines for this routing, `more` after them.
    fn defines(&self, more: &[String]) -> Vec<String> {
        let mut defines = self
            .telique
            .as_ref()
            .map(|telique| dip_defines(telique, 1000))
            .unwrap_or_default();
        defines.extend_from_slice(more);
        defines
    }

    /// Asserts that `k` routed `calls` calls this way (dipped: each handed to an async
    /// worker and routed on the LRN the dip brought back).
    fn took(&self, k: &Kamailio, calls: usize) {
        if self.telique.is_none() {
            return;
        }
        let stats = k.rpc("warp.stats");
        let calls = calls.to_string();
        assert_eq!(
            (
                stats["warp_dip_async.calls"].as_str(),
                stats["lrn.ported"].as_str()
            ),
            (calls.as_str(), calls.as_str()),
            "{stats:?}"
        );
    }
}

/// The shipped config's defines for the LRN dip to `telique`, a call waiting
/// `timeout_ms` for it.
fn dip_defines(telique: &support::telique::Telique, timeout_ms: u32) -> Vec<String> {
    vec![
        "WITH_LRN_DIP".to_string(),
        format!("LRN_DIP_URL=\"{}\"", telique.url()),
        format!("LRN_DIP_TOKEN=\"{}\"", support::telique::TOKEN),
        format!("LRN_TIMEOUT={timeout_ms}"),
    ]
}

/// Kamailio routing `data`'s snapshot with [`ROUTE`], the LRN dip asking a Telique stub.
fn start_with_dip(
    data: &support::dataset::Data,
) -> (tempfile::TempDir, support::telique::Telique, Kamailio) {
    start_dipping(data, Script::Native(ROUTE))
}

fn start_dipping(
    data: &support::dataset::Data,
    script: Script<'_>,
) -> (tempfile::TempDir, support::telique::Telique, Kamailio) {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    data.publish(&snap);
    let telique = support::telique::Telique::start();
    let k = Kamailio::start(&dip_params(snap.to_str().unwrap(), &telique.url()), script);
    (dir, telique, k)
}

fn dip_params<'a>(snap: &'a str, url: &'a str) -> [(&'a str, &'a str); 7] {
    [
        ("snapshot", snap),
        ("lrn_source", "snapshot,dip"),
        ("lrn_dip_url", url),
        ("lrn_dip_token", support::telique::TOKEN),
        ("lrn_timeout", "200"),
        ("lrn_breaker_failures", "3"),
        ("lrn_breaker_cooldown", "1500"),
    ]
}

/// The shipped config with WITH_RTPENGINE against a real rtpengine: both sides see
/// rtpengine's ports in the SDP, and the sessions are deleted with the BYE.
#[test]
fn the_shipped_config_anchors_media_in_rtpengine() {
    anchors_media_in_rtpengine(&Routing::direct(), &[]);
}

/// As [`the_shipped_config_anchors_media_in_rtpengine`], with WITH_TOPOH: the vendor's
/// answer and the BYE reach rtpengine under the caller's Call-ID (topoh unmasks before
/// the script runs), so the offer's session is answered and deleted.
#[test]
fn the_shipped_config_anchors_media_in_rtpengine_with_topology_hidden() {
    anchors_media_in_rtpengine(&Routing::direct(), &with_topoh());
}

/// As [`the_shipped_config_anchors_media_in_rtpengine`], for calls dipped in an async
/// worker (WITH_LRN_DIP): their offer is made in the resumed route, to tm a failure
/// route, where `rtpengine_manage()` would delete the media rather than offer it.
#[test]
fn the_shipped_config_anchors_the_media_of_calls_dipped_in_an_async_worker() {
    anchors_media_in_rtpengine(&Routing::dipped(), &[]);
}

/// Three calls with SDP, routed by `routing`, through the shipped config with
/// WITH_RTPENGINE and `more` defines, their media checked.
fn anchors_media_in_rtpengine(routing: &Routing, more: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let cheap_port = data.cheap.0;
    let _vendor = Uas::start(dir.path(), cheap_port, Answer::AcceptMedia);
    // Redis nowhere: this test is about media, CDR events just go to the spool.
    let defines = routing.defines(more);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &defines);
    let uac_log = dir.path().join("uac-messages.log");
    let trace = [
        "-trace_msg".to_string(),
        "-message_file".into(),
        uac_log.display().to_string(),
    ];
    let extra: Vec<&str> = trace
        .iter()
        .map(String::as_str)
        .chain(routing.sipp())
        .collect();
    let status = Uac {
        media: true,
        extra: &extra,
        ..Uac::new(k.port, dir.path(), 3, 10)
    }
    .spawn()
    .wait()
    .unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());

    // The vendor got rtpengine's port instead of the caller's 6000, the caller got
    // rtpengine's instead of the vendor's 7000.
    let offered: Vec<u16> = audio_ports(&dir.path().join(format!("uas-{cheap_port}.log")))
        .into_iter()
        .filter(|&p| p != 7000) // its own answers
        .collect();
    let answered: Vec<u16> = audio_ports(&uac_log)
        .into_iter()
        .filter(|&p| p != 6000) // its own offers
        .collect();
    assert_eq!(
        (offered.len(), answered.len()),
        (3, 3),
        "{offered:?} {answered:?}"
    );
    for port in offered.iter().chain(&answered) {
        assert!(
            rtpengine.ports.contains(port),
            "{port} not from rtpengine\n{}",
            k.log()
        );
    }
    // Each call offered by the caller and answered by the vendor: the vendor's SDP is
    // an answer to rtpengine, not an offer of its own.
    let commands = rtpengine.commands();
    assert_eq!(
        (commands.get("offer"), commands.get("answer")),
        (Some(&3), Some(&3)),
        "{commands:?}"
    );
    // Deleted with each BYE: no call left in rtpengine.
    wait_for_no_media_sessions(&rtpengine, &k);
    routing.took(&k, 3);
}

/// WITH_RTPENGINE on a dual-stack edge: rtpengine bridges the media of a call crossing
/// address families, each side given an address of its own: T6's offer from ::1
/// (c=IN IP6) reaches a vendor over IPv4 with an IPv4 address and the vendor's answer
/// reaches T6 with an IPv6 one; T1's call over IPv4 to a vendor at [::1] the other way.
#[test]
fn the_shipped_config_bridges_the_media_of_calls_crossing_address_families() {
    let crossings = [
        ("::1", ("127.0.0.1", "127.0.0.1")),
        ("127.0.0.1", ("[::1]", "::1")),
    ];
    for (source, (host, ip)) in crossings {
        let dir = tempfile::tempdir().unwrap();
        let data = support::dataset::Data {
            ipv6_trunk: true,
            gateway_hosts: (host, "127.0.0.1"),
            ..support::dataset::Data::with_gateways()
        };
        let _vendor = Uas::start_on(dir.path(), ip, data.cheap.0, Answer::AcceptMedia);
        let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &[dual_stack()]);
        let uac_log = dir.path().join("uac-messages.log");
        let trace = ["-trace_msg", "-message_file", uac_log.to_str().unwrap()];
        let status = Uac {
            source,
            media: true,
            extra: &trace,
            ..Uac::new(k.port, dir.path(), 1, 10)
        }
        .spawn()
        .wait()
        .unwrap();
        assert!(status.success(), "call failed ({status}):\n{}", k.log());
        // rtpengine's addresses in each SDP the edge passed on: the vendor's offer, the
        // caller's answer.
        let vendor_log = dir.path().join(format!("uas-{}.log", data.cheap.0));
        assert_anchored_in_family(&vendor_log, &rtpengine, ip, &k);
        assert_anchored_in_family(&uac_log, &rtpengine, source, &k);
        wait_for_no_media_sessions(&rtpengine, &k);
    }
}

/// WITH_RTPENGINE: a call failed over from a vendor reached over IPv6 to one over IPv4
/// is offered to each anew, with rtpengine's address of that vendor's family, and the
/// IPv4 caller gets the answer in its own.
#[test]
fn the_shipped_config_offers_each_vendor_media_of_its_own_family() {
    offers_each_vendor_media_of_its_own_family(&Routing::direct());
}

/// As [`the_shipped_config_offers_each_vendor_media_of_its_own_family`], for a call
/// dipped in an async worker (its branches made in the resumed and the failure route).
#[test]
fn the_shipped_config_offers_each_vendor_media_of_its_own_family_after_the_dip() {
    offers_each_vendor_media_of_its_own_family(&Routing::dipped());
}

fn offers_each_vendor_media_of_its_own_family(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data {
        gateway_hosts: ("[::1]", "127.0.0.1"),
        ..support::dataset::Data::with_gateways()
    };
    let _cheap = Uas::start_on(dir.path(), "::1", data.cheap.0, Answer::Unavailable);
    let _dear = Uas::start(dir.path(), data.dear.0, Answer::AcceptMedia);
    let defines = routing.defines(&[dual_stack()]);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &defines);
    let uac_log = dir.path().join("uac-messages.log");
    let trace = ["-trace_msg", "-message_file", uac_log.to_str().unwrap()];
    let extra: Vec<&str> = trace.into_iter().chain(routing.sipp()).collect();
    let status = Uac {
        media: true,
        extra: &extra,
        ..Uac::new(k.port, dir.path(), 1, 10)
    }
    .spawn()
    .wait()
    .unwrap();
    assert!(status.success(), "call failed ({status}):\n{}", k.log());
    let vendor_log = |port: u16| dir.path().join(format!("uas-{port}.log"));
    assert_anchored_in_family(&vendor_log(data.cheap.0), &rtpengine, "::1", &k);
    assert_anchored_in_family(&vendor_log(data.dear.0), &rtpengine, "127.0.0.1", &k);
    assert_anchored_in_family(&uac_log, &rtpengine, "127.0.0.1", &k);
    wait_for_no_media_sessions(&rtpengine, &k);
    routing.took(&k, 1);
}

/// Asserts that the SDPs in a sipp message log that name rtpengine's ports (the ones
/// the edge passed on) name its address `peer`, of `peer`'s family, and that there is
/// one at least.
fn assert_anchored_in_family(
    log: &Path,
    rtpengine: &support::rtpengine::Rtpengine,
    peer: &str,
    k: &Kamailio,
) {
    let family = if peer.contains(':') { "IP6" } else { "IP4" };
    let anchored: Vec<String> = media_addresses(log)
        .into_iter()
        .filter(|(_, port)| rtpengine.ports.contains(port))
        .map(|(connection, _)| connection)
        .collect();
    let expected = format!("IN {family} {peer}");
    assert!(
        !anchored.is_empty() && anchored.iter().all(|c| *c == expected),
        "{} has {anchored:?}, not {expected}:\n{}",
        log.display(),
        k.log()
    );
}

/// The connection address (`IN IP4 127.0.0.1`) and audio port of every SDP in a sipp
/// message log.
fn media_addresses(log: &Path) -> Vec<(String, u16)> {
    media_addresses_in(&std::fs::read_to_string(log).unwrap_or_default())
}

/// The connection address and audio port of every SDP in `text` (messages).
fn media_addresses_in(text: &str) -> Vec<(String, u16)> {
    let mut connection = String::new();
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(address) = line.strip_prefix("c=") {
            connection = address.to_owned();
        } else if let Some(rest) = line.strip_prefix("m=audio ") {
            let port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            found.extend(port.map(|p| (connection.clone(), p)));
        }
    }
    found
}

/// The shipped config with WITH_RTPENGINE against a real rtpengine, calls from `data`
/// (Redis nowhere: CDR events just go to the spool), and `more` defines.
fn start_shipped_with_rtpengine(
    dir: &Path,
    data: &support::dataset::Data,
    more: &[String],
) -> (support::rtpengine::Rtpengine, Kamailio) {
    let rtpengine = support::rtpengine::Rtpengine::start(dir);
    let mut defines = rtpengine_defines(&rtpengine);
    defines.extend_from_slice(more);
    let nowhere = no_redis();
    let k = start_shipped(dir, data, &nowhere, &defines);
    (rtpengine, k)
}

/// The shipped config's defines for media anchored in `rtpengine`.
fn rtpengine_defines(rtpengine: &support::rtpengine::Rtpengine) -> Vec<String> {
    vec![
        "WITH_RTPENGINE".to_string(),
        format!("RTPENGINE_SOCK=\"udp:127.0.0.1:{}\"", rtpengine.ng_port),
    ]
}

/// Every feature of the shipped config on at once, as a carrier runs it: calls from an
/// IP_AND_CREDENTIALS trunk (challenged, answered) with SDP to a number Telique says is
/// ported, dipped in an async worker and resumed there, where the media is offered to
/// rtpengine; the first vendor answers 503, the second takes the call with media; the
/// dialogs kept in Redis, the trunk counted with the other edges, the vendors seeing
/// masked Call-IDs. Each feature composes with the others.
#[test]
fn the_shipped_config_with_every_feature_on_completes_calls() {
    const CALLS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let (cheap_port, dear_port) = (data.cheap.0, data.dear.0);
    let _cheap = Uas::start(dir.path(), cheap_port, Answer::Unavailable);
    let _dear = Uas::start(dir.path(), dear_port, Answer::AcceptMedia);
    let telique = support::telique::Telique::start();
    let rtpengine = support::rtpengine::Rtpengine::start(dir.path());
    let mut defines = vec![
        "WITH_AUTH".to_string(),
        format!("AUTH_REALM=\"{}\"", support::dataset::REALM),
        "WITH_CLUSTER".to_string(),
        "WITH_DIALOG_DB".to_string(),
        format!("DIALOG_DB_URL=\"{}/1\"", redis.url()),
        "WITH_ANTIFLOOD".to_string(),
    ];
    defines.extend(dip_defines(&telique, 1000));
    defines.extend(rtpengine_defines(&rtpengine));
    defines.extend(with_topoh());
    let cfg = patient_cluster_config(dir.path());
    let k = start_config(&cfg, dir.path(), &data, &redis.url(), &defines);

    // T4 (IP_AND_CREDENTIALS) from its address, each call held 1.5 s.
    let uac_log = dir.path().join("uac-messages.log");
    let uac_log_arg = uac_log.display().to_string();
    let extra = [
        "-trace_msg",
        "-message_file",
        &uac_log_arg,
        "-s",
        "12125550001",
    ];
    let mut calls = Uac {
        source: "127.0.0.4",
        auth: Some(("t4user", support::dataset::PASSWORD)),
        media: true,
        hold_ms: 1500,
        extra: &extra,
        ..Uac::new(k.port, dir.path(), CALLS as u32, 10)
    }
    .spawn();
    // The dialogs in the dialog database while the calls are up, by Call-ID.
    let mut stored = BTreeSet::new();
    let status = loop {
        for key in redis.cli(&["-n", "1", "KEYS", "dialog*:entry::*"]).lines() {
            let call_id = redis.cli(&["-n", "1", "HGET", key, "callid"]);
            stored.insert(call_id.trim().to_owned());
        }
        if let Some(status) = calls.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    let callers = call_ids(&uac_log);
    assert_eq!(callers.len(), CALLS, "{callers:?}");
    stored.remove("");
    assert_eq!(stored, callers, "{}", k.log());

    // Dipped in an async worker, ported.
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["warp_dip_async.calls"].as_str(),
            stats["lrn.ported"].as_str(),
            stats["limits.cluster_fallbacks"].as_str(),
        ),
        ("3", "3", "0"),
        "{stats:?}"
    );
    // Each vendor was offered rtpengine's port, never the caller's 6000; the caller got
    // rtpengine's instead of the vendor's 7000.
    for port in [cheap_port, dear_port] {
        let offered = audio_ports(&dir.path().join(format!("uas-{port}.log")));
        let offered: Vec<u16> = offered.into_iter().filter(|&p| p != 7000).collect();
        assert_eq!(offered.len(), CALLS, "{port}: {offered:?}\n{}", k.log());
        assert!(
            offered.iter().all(|p| rtpengine.ports.contains(p)),
            "{port} ({cheap_port} {dear_port}): {offered:?} {:?}\n{}",
            rtpengine.commands(),
            k.log()
        );
    }
    let answered: Vec<u16> = audio_ports(&uac_log)
        .into_iter()
        .filter(|&p| p != 6000)
        .collect();
    assert_eq!(answered.len(), CALLS, "{answered:?}");
    assert!(answered.iter().all(|p| rtpengine.ports.contains(p)));
    // Offered once per vendor tried (the failover branch offered again, to the same
    // ports), answered once per call.
    let commands = rtpengine.commands();
    assert_eq!(
        (commands.get("offer"), commands.get("answer")),
        (Some(&(2 * CALLS)), Some(&CALLS)),
        "{commands:?}"
    );
    wait_for_no_media_sessions(&rtpengine, &k);
    // No vendor saw a Call-ID of the caller's (topoh).
    for port in [cheap_port, dear_port] {
        let seen = std::fs::read_to_string(dir.path().join(format!("uas-{port}.log"))).unwrap();
        assert!(seen.contains("INVITE sip:"), "{port}: {seen}");
        for call_id in &callers {
            assert!(!seen.contains(call_id.as_str()), "{call_id} in {seen}");
        }
    }

    // Reported under the caller's Call-IDs: the 503, then the answer.
    let cdrs = redis.wait_for("warp:cdr:raw", 4 * CALLS, Duration::from_secs(10));
    let reported = by_call(&cdrs);
    assert_eq!(
        reported.keys().cloned().collect::<BTreeSet<_>>(),
        callers,
        "{cdrs:#?}"
    );
    for events in reported.values() {
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["start", "failed", "answer", "end"], "{cdrs:#?}");
    }
    // The trunk's places given back, here and across the cluster; the dialogs gone from
    // Redis.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t4 = k.rpc_args(&["warp.trunks", "T4"]).unwrap();
        let dialogs = redis.cli(&["-n", "1", "KEYS", "dialog*:entry::*"]);
        if t4["T4.active"] == "0" && no_calls_counted(&redis, "T4") && dialogs.trim().is_empty() {
            break;
        }
        let counted = redis.cli(&["HGETALL", &calls_key("T4")]);
        assert!(
            Instant::now() < deadline,
            "{t4:?} counted {counted:?}, dialogs {dialogs:?}\n{}",
            k.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Call-IDs of the calls in a sipp message log.
fn call_ids(log: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Call-ID: "))
        .map(str::to_owned)
        .collect()
}

/// No vendor can be sent to: the caller gets one final reply (tm's), not a stateless
/// one beside it, and the media session offered for the call is deleted.
#[test]
fn the_shipped_config_answers_once_and_frees_the_media_when_no_vendor_can_be_sent_to() {
    answers_once_when_no_vendor_can_be_sent_to(&Routing::direct());
}

/// As [`the_shipped_config_answers_once_and_frees_the_media_when_no_vendor_can_be_sent_to`],
/// for a call dipped in an async worker: the same reply as routed in place.
#[test]
fn the_shipped_config_answers_once_when_no_vendor_can_be_sent_to_after_the_dip() {
    answers_once_when_no_vendor_can_be_sent_to(&Routing::dipped());
}

fn answers_once_when_no_vendor_can_be_sent_to(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data {
        uri_params: (";transport=sctp", ";transport=sctp"),
        ..support::dataset::Data::with_gateways()
    };
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &routing.defines(&[]));
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, routing.number(), "unsent");
    send_raw(&sock, &k, &invite);
    let finals = finals_within(&sock, Duration::from_secs(2));
    assert_eq!(finals.len(), 1, "{finals:#?}\n{}", k.log());
    assert!(finals.iter().all(|(code, _)| *code == 500), "{finals:?}");
    wait_for_no_media_sessions(&rtpengine, &k);
    assert_eq!(k.rpc("warp.stats")["limits.active"], "0");
    routing.took(&k, 1);
}

/// A caller's CANCEL while the vendor rings: 487, and the media session is deleted.
#[test]
fn the_shipped_config_frees_the_media_of_a_cancelled_call() {
    frees_the_media_of_a_cancelled_call(&Routing::direct());
}

/// As [`the_shipped_config_frees_the_media_of_a_cancelled_call`], for a call dipped in
/// an async worker: its media was offered in the resumed route.
#[test]
fn the_shipped_config_frees_the_media_of_a_cancelled_call_after_the_dip() {
    frees_the_media_of_a_cancelled_call(&Routing::dipped());
}

fn frees_the_media_of_a_cancelled_call(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Rings);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &routing.defines(&[]));
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, routing.number(), "cancelled");
    send_raw(&sock, &k, &invite);
    let deadline = Instant::now() + Duration::from_secs(5);
    while vendor.received("INVITE").is_empty() {
        assert!(Instant::now() < deadline, "{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let cancel = raw_request(k.port, lport, "CANCEL", "+12125550123", "cancelled");
    send_raw(&sock, &k, &cancel);
    // The CANCEL's 200 and the INVITE's 487, in either order: the edge answers the
    // CANCEL in one worker while another may relay the vendor's 487 first.
    let mut codes: Vec<u16> = final_replies(&sock, &k, 2)
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    codes.sort();
    assert_eq!(codes, [200, 487], "{}", k.log());
    wait_for_no_media_sessions(&rtpengine, &k);
    routing.took(&k, 1);
}

/// A caller that ignores the Record-Route and sends its BYE without a Route still ends
/// the call at the edge: the vendor is told, the trunk's place is given back and the
/// call's end is reported now, not when the dialog times out hours later, and its media
/// session is deleted.
#[test]
fn the_shipped_config_ends_a_call_whose_bye_lost_its_route() {
    ends_a_call_whose_bye_lost_its_route(&[]);
}

/// As [`the_shipped_config_ends_a_call_whose_bye_lost_its_route`], with WITH_TOPOH:
/// the dialog module's BYE reaches the vendor, and its 200 (under the masked Call-ID,
/// which topoh leaves in a reply to the edge's own request) ends the call.
#[test]
fn the_shipped_config_ends_a_call_whose_bye_lost_its_route_with_topology_hidden() {
    ends_a_call_whose_bye_lost_its_route(&with_topoh());
}

fn ends_a_call_whose_bye_lost_its_route(more: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let rtpengine = support::rtpengine::Rtpengine::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let mut defines = vec![
        "WITH_RTPENGINE".to_string(),
        format!("RTPENGINE_SOCK=\"udp:127.0.0.1:{}\"", rtpengine.ng_port),
    ];
    defines.extend_from_slice(more);
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, "+12125550123", "noroute");
    let (with_route, _) = InDialog::answered(&sock, &k, lport, ("noroute", data.cheap.0), &invite);
    wait_for_stat(&k, "limits.active", "1");
    let without_route = InDialog {
        route: None,
        ..with_route
    };
    send_raw(
        &sock,
        &k,
        &without_route.request("BYE", 2, "Content-Length: 0\r\n\r\n"),
    );
    let bye_reply = final_reply(&sock, &k, "noroute");
    assert_eq!(bye_reply.code, 200, "{}", k.log());
    let deadline = Instant::now() + Duration::from_secs(5);
    while vendor.received("BYE").is_empty() {
        assert!(Instant::now() < deadline, "no BYE:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_stat(&k, "limits.active", "0");
    // Each worker writes its own events: the answer and the end, a moment apart, may
    // reach the stream in either order.
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let calls = by_call(&cdrs);
    let kinds: Vec<&str> = calls
        .values()
        .flatten()
        .map(|c| c["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["start", "answer", "end"], "{}", k.log());
    wait_for_no_media_sessions(&rtpengine, &k);
}

/// A re-INVITE (hold, a codec change) keeps the media in rtpengine: neither side sees
/// the other's own address.
#[test]
fn the_shipped_config_anchors_a_reinvite_in_rtpengine() {
    anchors_a_reinvite_in_rtpengine(&Routing::direct());
}

/// As [`the_shipped_config_anchors_a_reinvite_in_rtpengine`], for a call dipped in an
/// async worker: its dialog and its media were made in the resumed route.
#[test]
fn the_shipped_config_anchors_a_reinvite_in_rtpengine_after_the_dip() {
    anchors_a_reinvite_in_rtpengine(&Routing::dipped());
}

fn anchors_a_reinvite_in_rtpengine(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &routing.defines(&[]));
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, routing.number(), "reinvite");
    let (dialog, ok) = InDialog::answered(&sock, &k, lport, ("reinvite", data.cheap.0), &invite);
    let ok = support::Reply::parse(&ok);
    assert!(dialog.route.is_some(), "the edge records its route");
    let in_dialog = |method: &str, cseq: u32, body: &str| dialog.request(method, cseq, body);
    let hold = "v=0\r\no=c 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 6002 RTP/AVP 0\r\na=sendonly\r\n";
    let body = format!(
        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
        hold.len()
    );
    send_raw(&sock, &k, &in_dialog("INVITE", 2, &body));
    let ok2 = final_reply(&sock, &k, "reinvite");
    assert_eq!(ok2.code, 200, "{}", k.log());
    let audio = |sdp: &str| -> u16 {
        sdp.lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let invites = vendor.received("INVITE");
    assert_eq!(invites.len(), 2);
    for port in [
        audio(&invites[0]),
        audio(&invites[1]),
        audio(&ok.body),
        audio(&ok2.body),
    ] {
        assert!(
            rtpengine.ports.contains(&port),
            "{port} not from rtpengine\n{}",
            k.log()
        );
    }
    routing.took(&k, 1);
}

/// A caller that offers SRTP (RTP/SAVP, SDES keys) reaches a vendor that takes plain
/// RTP, as wholesale vendors do: rtpengine bridges them. The vendor is offered RTP/AVP
/// with no key; the caller gets RTP/SAVP with rtpengine's own key, in the answer and in
/// a re-INVITE either side sends later.
#[test]
fn the_shipped_config_bridges_a_callers_srtp_to_a_vendors_rtp() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &[]);
    let (sock, lport) = raw_socket();
    let srtp = srtp_offer;
    let request = raw_request(k.port, lport, "INVITE", "+12125550123", "srtp");
    let invite = with_sdp(&request, &srtp(1, 6000));
    let (dialog, ok) = InDialog::answered(&sock, &k, lport, ("srtp", data.cheap.0), &invite);
    let ok = support::Reply::parse(&ok);
    // Plain RTP to the vendor, SRTP back to the caller, each on rtpengine's ports.
    let to_vendor = vendor.received("INVITE");
    assert_eq!(to_vendor.len(), 1);
    assert_plain_rtp(&to_vendor[0], &rtpengine, &k);
    assert_srtp(&ok.body, &rtpengine, &k);
    // The caller's re-INVITE (a new key): the same, both ways.
    let body = srtp(2, 6002);
    let content = format!(
        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    send_raw(&sock, &k, &dialog.request("INVITE", 2, &content));
    let reply = final_reply(&sock, &k, "srtp");
    assert_eq!(reply.code, 200, "{}", k.log());
    let to_vendor = vendor.received("INVITE");
    assert_eq!(to_vendor.len(), 2);
    assert_plain_rtp(&to_vendor[1], &rtpengine, &k);
    assert_srtp(&reply.body, &rtpengine, &k);
    // The vendor's re-INVITE in plain RTP: SRTP to the caller, the caller's SRTP
    // answer plain RTP to the vendor.
    let vsock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    vsock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let vport = vsock.local_addr().unwrap().port();
    let rtp = "v=0\r\no=v 1 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 7002 RTP/AVP 0\r\n";
    let reinvite = with_sdp(&dialog.vendor_request("INVITE", 5, vport), rtp);
    vsock
        .send_to(reinvite.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
    let at_caller = next_request(&sock, "INVITE", "srtp", &k);
    assert_srtp(body_of(&at_caller), &rtpengine, &k);
    let contact = format!("Contact: <sip:caller@127.0.0.1:{lport}>\r\n");
    let answer = with_sdp(&reply_to(&at_caller, "200 OK", &contact), &srtp(3, 6004));
    send_raw(&sock, &k, &answer);
    let at_vendor = final_reply_text(&vsock, &k, "srtp-");
    assert!(at_vendor.starts_with("SIP/2.0 200 "), "{at_vendor}");
    assert_plain_rtp(body_of(&at_vendor), &rtpengine, &k);
    send_raw(
        &sock,
        &k,
        &dialog.request("BYE", 3, "Content-Length: 0\r\n\r\n"),
    );
    wait_for_no_media_sessions(&rtpengine, &k);
}

/// A vendor's refusal of a re-INVITE (488 with the SDP it would take, RFC 3261
/// 21.4.26) leaves the call as it was: its media stays in rtpengine until the BYE.
#[test]
fn the_shipped_config_keeps_the_media_of_a_call_whose_reinvite_was_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let plays = support::vendor::Plays::RefusesReoffers;
    let _vendor = support::vendor::Vendor::start(data.cheap.0, plays);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &[]);
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, "+12125550123", "refused");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("refused", data.cheap.0), &invite);
    let offer = &invite[invite.find("Content-Type:").unwrap()..];
    send_raw(&sock, &k, &dialog.request("INVITE", 2, offer));
    assert_eq!(final_reply(&sock, &k, "refused").code, 488, "{}", k.log());
    let list = rtpengine.ng("d7:command4:liste").unwrap_or_default();
    assert!(
        list.contains(&format!("refused-{lport}")),
        "the media went: {list}\n{}",
        k.log()
    );
    send_raw(
        &sock,
        &k,
        &dialog.request("BYE", 3, "Content-Length: 0\r\n\r\n"),
    );
    wait_for_no_media_sessions(&rtpengine, &k);
}

/// A request in an early dialog (a PRACK for the vendor's 180) is a call's own too:
/// relayed, not refused as belonging to no call.
#[test]
fn the_shipped_config_relays_a_prack_in_the_early_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Rings);
    let nowhere = no_redis();
    let k = start_shipped(dir.path(), &data, &nowhere, &[]);
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "early");
    send_raw(&sock, &k, &invite);
    let mut buf = [0u8; 65535];
    let ringing = loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no 180 ({e}):\n{}", k.log()));
        let reply = support::Reply::parse(&String::from_utf8_lossy(&buf[..n]));
        if reply.code == 180 {
            break reply;
        }
    };
    let early = InDialog {
        edge: k.port,
        lport,
        call: "early",
        vendor: data.cheap.0,
        route: ringing.header("Record-Route").map(str::to_owned),
        to: ringing.header("To").unwrap().to_owned(),
    };
    send_raw(
        &sock,
        &k,
        &early.request("PRACK", 2, "Content-Length: 0\r\n\r\n"),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while vendor.received("PRACK").is_empty() {
        assert!(Instant::now() < deadline, "no PRACK:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A call the edge ends itself (its dialog timed out, or an operator's `dlg.end_dlg`)
/// frees its media session with the BYEs, as one a side hung up does.
#[test]
fn the_shipped_config_frees_the_media_of_a_call_it_ends_itself() {
    frees_the_media_of_a_call_it_ends_itself(&Routing::direct());
}

/// As [`the_shipped_config_frees_the_media_of_a_call_it_ends_itself`], for a call
/// dipped in an async worker: its dialog and its media were made in the resumed route.
#[test]
fn the_shipped_config_frees_the_media_of_a_call_it_ends_itself_after_the_dip() {
    frees_the_media_of_a_call_it_ends_itself(&Routing::dipped());
}

fn frees_the_media_of_a_call_it_ends_itself(routing: &Routing) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &routing.defines(&[]));
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, routing.number(), "ended");
    InDialog::answered(&sock, &k, lport, ("ended", data.cheap.0), &invite);
    end_the_only_dialog(&k);
    let deadline = Instant::now() + Duration::from_secs(5);
    while vendor.received("BYE").is_empty() {
        assert!(Instant::now() < deadline, "no BYE:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_no_media_sessions(&rtpengine, &k);
    routing.took(&k, 1);
}

/// A BYE the vendor is slow to answer (or whose first 200s were lost) is sent again
/// until RFC 3261's 32 s are up, not given up with a 408 after the 2 s a vendor has to
/// take a call: the edge's own BYE (`dlg.end_dlg`) is sent until the vendor answers
/// it, and a caller's hang-up gets the vendor's 200.
#[test]
fn the_shipped_config_keeps_sending_a_bye_the_vendor_is_slow_to_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let plays = support::vendor::Plays::HangsUpSlowly;
    let vendor = support::vendor::Vendor::start(data.cheap.0, plays);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let byes_of = |call: &str| {
        let id = format!("Call-ID: {call}-");
        let byes = vendor.received("BYE");
        byes.iter().filter(|m| m.contains(&id)).count()
    };

    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "ended");
    InDialog::answered(&sock, &k, lport, ("ended", data.cheap.0), &invite);
    end_the_only_dialog(&k);
    let deadline = Instant::now() + support::vendor::HANG_UP_DELAY * 2;
    while byes_of("ended") < 4 {
        assert!(
            Instant::now() < deadline,
            "the edge's BYE given up after {} copies:\n{}",
            byes_of("ended"),
            k.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Another caller: the first gets the edge's BYEs too.
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "hangup");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("hangup", data.cheap.0), &invite);
    let bye = dialog.request("BYE", 2, "Content-Length: 0\r\n\r\n");
    send_raw(&sock, &k, &bye);
    assert_eq!(final_reply(&sock, &k, "hangup").code, 200, "{}", k.log());
    // Sent at 0, 0.5 and 1.5 s unanswered, answered at 3.5 s.
    assert!(byes_of("hangup") >= 4, "{}", k.log());
}

/// A request that only looks in-dialog (a To tag, the edge's address as its Route) but
/// belongs to no call of the edge's is refused (481), not relayed wherever its
/// Request-URI points past the trunk ACL, the limits and the CDRs; the requests of a
/// real call still pass both ways.
#[test]
fn the_shipped_config_relays_in_dialog_requests_only_of_its_calls_and_no_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let nowhere = no_redis();
    let k = start_shipped(dir.path(), &data, &nowhere, &[]);
    let (sock, lport) = raw_socket();
    let forged = InDialog {
        edge: k.port,
        lport,
        call: "forged",
        vendor: data.cheap.0,
        route: Some(format!("<sip:127.0.0.1:{};lr>", k.port)),
        to: "<sip:+12125550123@127.0.0.1>;tag=forged".into(),
    };
    send_raw(
        &sock,
        &k,
        &forged.request("INVITE", 2, "Content-Length: 0\r\n\r\n"),
    );
    let reply = final_reply(&sock, &k, "forged");
    assert_eq!(reply.code, 481, "relayed:\n{}", k.log());
    assert!(vendor.received("INVITE").is_empty());
    // One without a Route, of no call the edge knows (one a restart forgot, or a
    // peer's stale dialog): 481 too, which tells the peer its dialog is gone (RFC 3261
    // 12.2.2), not 404.
    let stray = InDialog {
        route: None,
        call: "stray",
        ..forged
    };
    for (method, cseq) in [("INVITE", 2), ("BYE", 3)] {
        send_raw(
            &sock,
            &k,
            &stray.request(method, cseq, "Content-Length: 0\r\n\r\n"),
        );
        let reply = final_reply(&sock, &k, "stray");
        assert_eq!(reply.code, 481, "{method}: {}", k.log());
    }

    // A call's own: the caller's re-INVITE reaches the vendor, the vendor's INFO the
    // caller.
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "real");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("real", data.cheap.0), &invite);
    send_raw(
        &sock,
        &k,
        &dialog.request("INVITE", 2, "Content-Length: 0\r\n\r\n"),
    );
    assert_eq!(final_reply(&sock, &k, "real").code, 200, "{}", k.log());
    assert_eq!(vendor.received("INVITE").len(), 2);
    // A transfer would have the vendor call a number of the caller's choosing, unrouted
    // and unbilled.
    send_raw(
        &sock,
        &k,
        &dialog.request(
            "REFER",
            3,
            "Refer-To: <sip:+15555550100@127.0.0.1>\r\nContent-Length: 0\r\n\r\n",
        ),
    );
    assert_eq!(final_reply(&sock, &k, "real").code, 403, "{}", k.log());
    assert!(vendor.received("REFER").is_empty());
    let (vsock, vport) = raw_socket();
    send_raw(&vsock, &k, &dialog.vendor_request("INFO", 1, vport));
    let mut buf = [0u8; 65535];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no INFO ({e}):\n{}", k.log()));
    assert!(
        buf[..n].starts_with(b"INFO "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// A caller behind NAT names its private address in its Via (without `rport`) and in
/// its Contact. The edge answers it where its requests come from all the same, and the
/// requests inside its calls reach it there: the BYE the edge sends itself, and the
/// vendor's re-INVITE and, after the caller's 200 named the private address again, the
/// vendor's BYE.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat() {
    reaches_a_caller_behind_nat(&Routing::direct(), &[]);
}

/// As [`the_shipped_config_reaches_a_caller_behind_nat`], with WITH_TOPOH: the alias
/// the edge puts in the caller's Contact is masked with it, and unmasked with it.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat_with_topology_hidden() {
    reaches_a_caller_behind_nat(&Routing::direct(), &with_topoh());
}

/// As [`the_shipped_config_reaches_a_caller_behind_nat`], for calls dipped in an async
/// worker (WITH_LRN_DIP): their dialog is made in the resumed route, from the INVITE as
/// tm keeps it, so the caller's Contact has to be aliased there too, or the edge's own
/// BYE goes to the private address.
#[test]
fn the_shipped_config_reaches_a_caller_behind_nat_after_the_dip() {
    reaches_a_caller_behind_nat(&Routing::dipped(), &[]);
}

/// Two calls from a caller behind NAT, routed by `routing`, through the shipped config
/// with `more` defines.
fn reaches_a_caller_behind_nat(routing: &Routing, more: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &routing.defines(more));
    let (sock, lport) = raw_socket();
    let user = routing.number();
    let invite = behind_nat(&raw_request(k.port, lport, "INVITE", user, "ended"), lport);
    // The old config sent every reply to 127.0.0.1:5060, the Via's port.
    InDialog::answered(&sock, &k, lport, ("ended", data.cheap.0), &invite);
    end_the_only_dialog(&k);
    let bye = next_request(&sock, "BYE", "ended", &k);
    sock.send_to(
        reply_to(&bye, "200 OK", "").as_bytes(),
        ("127.0.0.1", k.port),
    )
    .unwrap();

    let invite = behind_nat(
        &raw_request(k.port, lport, "INVITE", user, "refreshed"),
        lport,
    );
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("refreshed", data.cheap.0), &invite);
    let (vsock, vport) = raw_socket();
    // The vendor's requests go to the Contact and by the Call-ID its INVITE named.
    let invites = vendor.received("INVITE");
    let invite = invites.last().unwrap();
    let call_id = header_of(invite, "Call-ID");
    let to_caller = |request: String, target: &str| {
        let uri = format!("sip:3035550100@127.0.0.1:{lport}");
        let request = request.replacen(&uri, target, 1).replacen(
            &format!("Call-ID: refreshed-{lport}"),
            &format!("Call-ID: {call_id}"),
            1,
        );
        vsock
            .send_to(request.as_bytes(), ("127.0.0.1", k.port))
            .unwrap();
    };
    to_caller(
        dialog.vendor_request("INVITE", 1, vport),
        &contact_uri(invite),
    );
    let reinvite = next_request(&sock, "INVITE", "refreshed", &k);
    let private = "Contact: <sip:3035550100@192.168.1.10:5060>\r\n";
    sock.send_to(
        reply_to(&reinvite, "200 OK", private).as_bytes(),
        ("127.0.0.1", k.port),
    )
    .unwrap();
    let ok = support::Reply::parse(&final_reply_text(&vsock, &k, &call_id));
    assert_eq!(ok.code, 200, "{}", k.log());
    let target = ok.header("Contact").unwrap().trim_matches(['<', '>']);
    to_caller(dialog.vendor_request("BYE", 2, vport), target);
    next_request(&sock, "BYE", "refreshed", &k);
    routing.took(&k, 2);
}

/// A caller behind NAT over IPv6 (NAT66: its Via and Contact name [fd00::10]:5060, no
/// `rport`) on a dual-stack edge: its Contact is aliased to the address it calls from,
/// as an IPv4 caller's is, so the replies and the edge's own BYE reach it.
#[test]
fn the_shipped_config_reaches_an_ipv6_caller_behind_nat() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data {
        ipv6_trunk: true,
        ..support::dataset::Data::with_gateways()
    };
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[dual_stack()]);
    let caller = Ipv6Caller::new(&k, data.cheap.0, Some("[fd00::10]:5060"));
    let ok = support::Reply::parse(&caller.call("nat6", ""));
    assert_eq!(ok.code, 200, "{}", k.log());
    // The vendor got the caller's Contact with the address it calls from.
    let relayed = vendor.received("INVITE");
    let contact = header_of(&relayed[0], "Contact");
    let alias = format!("alias=[::1]~{}~1", caller.lport);
    assert!(contact.contains(&alias), "{contact}");
    end_the_only_dialog(&k);
    let bye = next_request(&caller.sock, "BYE", "nat6", &k);
    caller.send(&reply_to(&bye, "200 OK", ""));
}

/// WITH_RTPENGINE on a dual-stack edge: a re-INVITE of a call crossing families is
/// anchored in each side's family, as its INVITE was: the IPv4 vendor is offered
/// rtpengine's IPv4 address, the IPv6 caller answered with its IPv6 one.
#[test]
fn the_shipped_config_anchors_a_reinvite_across_address_families() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data {
        ipv6_trunk: true,
        ..support::dataset::Data::with_gateways()
    };
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let (rtpengine, k) = start_shipped_with_rtpengine(dir.path(), &data, &[dual_stack()]);
    let caller = Ipv6Caller::new(&k, data.cheap.0, None);
    let sdp = "v=0\r\no=c 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
               m=audio 6000 RTP/AVP 0\r\n";
    let ok = caller.call("reoffer6", sdp);
    caller.send(&caller.in_dialog("INVITE", 2, "reoffer6", &ok, sdp));
    let reok = final_reply_text(&caller.sock, &k, "reoffer6-");
    let invites = vendor.received("INVITE");
    assert_eq!(invites.len(), 2, "{}", k.log());
    let (to_vendor, to_caller) = ("IN IP4 127.0.0.1", "IN IP6 ::1");
    let passed = [
        (&invites[0], to_vendor),
        (&invites[1], to_vendor),
        (&ok, to_caller),
        (&reok, to_caller),
    ];
    for (message, expected) in passed {
        let media = media_addresses_in(message);
        assert!(
            matches!(&media[..], [(c, port)] if c == expected && rtpengine.ports.contains(port)),
            "{message}\n{}",
            k.log()
        );
    }
}

/// A caller on ::1 calling through a dual-stack edge over IPv6, its Via and Contact
/// naming `via` (its own address and port, or a private one behind NAT), to the vendor
/// at 127.0.0.1:`vendor` (whose Contact is `sip:vendor@127.0.0.1:<vendor>`).
struct Ipv6Caller<'a> {
    k: &'a Kamailio,
    sock: std::net::UdpSocket,
    lport: u16,
    via: String,
    vendor: u16,
}

impl<'a> Ipv6Caller<'a> {
    fn new(k: &'a Kamailio, vendor: u16, via: Option<&str>) -> Self {
        let sock = std::net::UdpSocket::bind("[::1]:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let lport = sock.local_addr().unwrap().port();
        let via = via.map_or_else(|| format!("[::1]:{lport}"), str::to_owned);
        Ipv6Caller {
            k,
            sock,
            lport,
            via,
            vendor,
        }
    }

    fn send(&self, message: &str) {
        (self.sock.send_to(message.as_bytes(), ("::1", self.k.port))).unwrap();
    }

    /// Places call `call` ([`raw_request`]'s Call-ID) offering `sdp` (none if empty)
    /// and returns its final reply as it came, ACKed if it was a 200.
    fn call(&self, call: &str, sdp: &str) -> String {
        let lport = self.lport;
        let invite = raw_request(self.k.port, lport, "INVITE", "+12125550123", call)
            .replace(
                &format!("Via: SIP/2.0/UDP 127.0.0.1:{lport}"),
                &format!("Via: SIP/2.0/UDP {}", self.via),
            )
            .replace(
                &format!("Contact: <sip:3035550100@127.0.0.1:{lport}>"),
                &format!("Contact: <sip:3035550100@{}>", self.via),
            )
            .replace("@127.0.0.1:", "@[::1]:");
        self.send(&with_sdp(&invite, sdp));
        let text = final_reply_text(&self.sock, self.k, &format!("{call}-"));
        if support::Reply::parse(&text).code == 200 {
            self.send(&self.in_dialog("ACK", 1, call, &text, ""));
        }
        text
    }

    /// The caller's request `method` in call `call`, answered by `ok`: to the vendor's
    /// Contact along the route the edge recorded, offering `sdp` (none if empty).
    fn in_dialog(&self, method: &str, cseq: u32, call: &str, ok: &str, sdp: &str) -> String {
        let (lport, via) = (self.lport, &self.via);
        let request = format!(
            "{method} sip:vendor@127.0.0.1:{vendor} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via};branch=z9hG4bK-{method}{cseq}{call}{lport}\r\n\
             Route: {route}\r\n\
             From: <sip:3035550100@[::1]>;tag={call}{lport}\r\n\
             To: {to}\r\n\
             Call-ID: {call}-{lport}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:3035550100@{via}>\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            vendor = self.vendor,
            route = route_set(ok),
            to = header_of(ok, "To"),
        );
        with_sdp(&request, sdp)
    }
}

/// The route set a caller takes from `reply`'s Record-Route headers: all their entries,
/// last first.
fn route_set(reply: &str) -> String {
    let mut routes: Vec<&str> = (reply.split("\r\n"))
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix("Record-Route:"))
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    routes.reverse();
    routes.join(", ")
}

/// The defines that turn the shipped config's topology hiding on.
fn with_topoh() -> Vec<String> {
    vec!["WITH_TOPOH".into(), "TOPOH_KEY=\"edge secret\"".into()]
}

/// WITH_TOPOH without a TOPOH_KEY: every edge would mask with topoh's built-in key,
/// which anyone can read in Kamailio's source.
#[test]
fn the_shipped_config_refuses_topology_hiding_without_a_key() {
    let log = Kamailio::refused_file(&shipped_config(), &["WITH_TOPOH".into()]);
    assert!(
        log.contains("TOPOH_KEY_is_required_with_WITH_TOPOH"),
        "{log}"
    );
}

/// WITH_TOPOH: a vendor learns nothing of the customer's network from the calls it
/// gets (the customer here an SBC at `lport` in front of a PBX at 10.20.30.40), nor
/// the customer anything of the vendor's, and the call still ends from either side or
/// from the edge. The script, the dialogs and the CDRs see the customer's Call-ID.
#[test]
fn the_shipped_config_hides_each_sides_topology_from_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let vport = data.cheap.0;
    let vendor = support::vendor::Vendor::start(vport, support::vendor::Plays::Answers);
    // Masked URIs name the edge itself, as the config asks an operator to set it.
    let mut defines = with_topoh();
    defines.push("TOPOH_MASK_IP=\"127.0.0.1\"".into());
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    let customers = [format!(":{lport}"), "10.20.30.40".into()];
    // Calls as the vendor sees them: its INVITE, the Call-ID it names the call by.
    let answered = |call: &'static str| {
        let invite = behind_an_sbc(
            &raw_request(k.port, lport, "INVITE", "+12125550123", call),
            lport,
        );
        let (dialog, ok) = InDialog::answered(&sock, &k, lport, (call, vport), &invite);
        let seen = vendor.received("INVITE").pop().unwrap();
        for address in customers.iter().chain([&format!("{call}-{lport}")]) {
            assert!(!seen.contains(address.as_str()), "{address} in\n{seen}");
        }
        assert!(!ok.contains(&format!(":{vport}")), "{ok}");
        let masked = header_of(&seen, "Call-ID");
        (dialog, ok, seen, masked)
    };
    // The vendor's BYE has the Call-ID it knows the call by.
    let vendor_ended = |masked: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let byes = vendor.received("BYE");
            if let Some(bye) = byes.iter().find(|b| b.contains(masked)) {
                assert!(!customers.iter().any(|a| bye.contains(a.as_str())), "{bye}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no BYE of {masked}:\n{byes:?}\n{}",
                k.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // The edge ends the call (dlg.end_dlg): the customer's BYE names its own Call-ID.
    let (_, _, _, masked) = answered("byedge");
    end_the_only_dialog(&k);
    let bye = next_request(&sock, "BYE", "byedge", &k);
    send_raw(&sock, &k, &reply_to(&bye, "200 OK", ""));
    vendor_ended(&masked);

    // The customer hangs up, to the Contact the 200 gave it.
    let (dialog, ok, _, masked) = answered("byecaller");
    let bye = dialog
        .request("BYE", 2, "Content-Length: 0\r\n\r\n")
        .replacen(
            &format!("sip:vendor@127.0.0.1:{vport}"),
            &contact_uri(&ok),
            1,
        );
    send_raw(&sock, &k, &bye);
    assert_eq!(final_reply(&sock, &k, "byecaller").code, 200, "{}", k.log());
    vendor_ended(&masked);

    // The vendor hangs up, as a vendor would: to the INVITE's Contact, through its
    // Record-Route, by the Call-ID it got.
    let (dialog, _, seen, masked) = answered("byevendor");
    let route: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("Record-Route: "))
        .collect();
    let dialog = InDialog {
        route: Some(route.join(", ")),
        ..dialog
    };
    let (vsock, vsport) = raw_socket();
    let bye = dialog
        .vendor_request("BYE", 2, vsport)
        .replacen(
            &format!("sip:3035550100@127.0.0.1:{lport}"),
            &contact_uri(&seen),
            1,
        )
        .replace(
            &format!("Call-ID: byevendor-{lport}"),
            &format!("Call-ID: {masked}"),
        );
    vsock
        .send_to(bye.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
    let bye = next_request(&sock, "BYE", "byevendor", &k);
    assert!(!bye.contains(&format!(":{vsport}")), "{bye}");
    send_raw(&sock, &k, &reply_to(&bye, "200 OK", ""));
    let ok = Reply::parse(&final_reply_text(&vsock, &k, &masked));
    assert_eq!(ok.code, 200, "{}", k.log());

    // Each call reported whole, under the Call-ID the customer's own CDRs have.
    let cdrs = redis.wait_for("warp:cdr:raw", 9, Duration::from_secs(5));
    for call in ["byedge", "byecaller", "byevendor"] {
        let kinds: Vec<String> = events_of(&cdrs, call, lport)
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(kinds, ["start", "answer", "end"], "{call}: {cdrs:#?}");
    }
}

/// `request` as a customer's SBC at `lport` relays it from a PBX at 10.20.30.40: the
/// PBX's Via under the SBC's, the PBX's Contact, the SBC's Record-Route.
fn behind_an_sbc(request: &str, lport: u16) -> String {
    let sbc = format!("Via: SIP/2.0/UDP 127.0.0.1:{lport};");
    let (head, tail) = request.split_once(&sbc).unwrap();
    let (via, rest) = tail.split_once("\r\n").unwrap();
    format!(
        "{head}{sbc}{via}\r\n\
         Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-pbx{lport}\r\n\
         Record-Route: <sip:127.0.0.1:{lport};lr>\r\n{rest}"
    )
    .replace(
        &format!("Contact: <sip:3035550100@127.0.0.1:{lport}>"),
        "Contact: <sip:3035550100@10.20.30.40:5060>",
    )
}

/// Sleeps until just after the start of the next wall-clock second (CPS windows).
fn at_next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(
        Duration::from_millis(1_020) - Duration::from_nanos(now.subsec_nanos().into()),
    );
}

/// Loopback Redis answers in well under a millisecond, but a loaded CI box can hold a
/// reply past the default 20 ms, and a call then judged on the node's own count would
/// read as a defect of the cluster count.
const CLUSTER_TIMEOUT: &str = "1000";

/// Polls `k`'s `warp.stats` until `key` reads `value` (fails after 10 s).
fn wait_for_stat(k: &Kamailio, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while k.rpc("warp.stats")[key] != value {
        assert!(
            Instant::now() < deadline,
            "{key} never reached {value}:\n{}",
            k.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `warp:calls:*` hash of `trunk`: FNV-1a of its id. Named, not looked up: the
/// heartbeat deletes a node's field once the trunk has no call there, and the hash with
/// its last field.
fn calls_key(trunk: &str) -> String {
    let hash = trunk.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("warp:calls:{hash:016x}")
}

/// No node counts a call of `trunk` in Redis (a field of 0, or none).
fn no_calls_counted(redis: &support::redis::Redis, trunk: &str) -> bool {
    // None left at all once the heartbeat dropped the node's field of the trunk.
    let counts = redis.cli(&["HVALS", &calls_key(trunk)]);
    counts
        .lines()
        .map(str::trim)
        .all(|n| n.is_empty() || n == "0")
}

/// The name `cluster_concurrent` counts `k`'s calls under: host and main process id.
fn node_name(k: &Kamailio) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    format!("{}:{}", host.trim(), k.pid())
}

/// Ends Kamailio's one dialog as an operator would (`kamcmd dlg.end_dlg`).
fn end_the_only_dialog(k: &Kamailio) {
    let list = k.kamcmd(&["dlg.list"]).unwrap();
    let field = |name: &str| {
        list.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .to_owned()
    };
    k.kamcmd(&["dlg.end_dlg", &field("h_entry"), &field("h_id")])
        .unwrap();
}

/// The events of call `call` (Call-ID `<call>-<lport>`, see [`raw_request`]) in the
/// stream, as (event, attempt, vendor, sip_code), in call order.
fn events_of(
    cdrs: &[serde_json::Value],
    call: &str,
    lport: u16,
) -> Vec<(String, u64, String, Option<u64>)> {
    by_call(cdrs)
        .remove(&format!("{call}-{lport}"))
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["event"].as_str().unwrap().to_owned(),
                c["attempt"].as_u64().unwrap(),
                c["vendor"].as_str().unwrap().to_owned(),
                c["sip_code"].as_u64(),
            )
        })
        .collect()
}

/// A call still up when its dialog times out (the shipped config's `default_timeout`,
/// cut to 2 s here) is ended there and then: both sides get a BYE, so the call stops
/// when its `end` event says, rather than run on unbilled (and uncounted) once the
/// dialog is forgotten.
#[test]
fn the_shipped_config_ends_a_call_that_outlives_its_dialog_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let text = std::fs::read_to_string(shipped_config()).unwrap();
    let short = text.replace(
        "modparam(\"dialog\", \"default_timeout\", 14400)",
        "modparam(\"dialog\", \"default_timeout\", 2)",
    );
    assert_ne!(short, text);
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg, short).unwrap();
    let k = start_config(&cfg, dir.path(), &data, &redis.url(), &[]);
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "long");
    InDialog::answered(&sock, &k, lport, ("long", data.cheap.0), &invite);
    // Nobody hangs up: the dialog times out 2 s after the answer.
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
    while vendor.received("BYE").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the vendor got no BYE:\n{}",
            k.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_stat(&k, "limits.active", "0");
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let kinds: Vec<String> = events_of(&cdrs, "long", lport)
        .into_iter()
        .map(|(kind, ..)| kind)
        .collect();
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
    let kinds: Vec<String> = events_of(&cdrs, "survivor", lport)
        .into_iter()
        .map(|(kind, ..)| kind)
        .collect();
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

/// The bearer key warp-api is started with in [`serve_api`].
const API_KEY: &str = "journey-root-key";

/// warp-api as its README starts it, in this process on a port of its own (kept
/// serving by `rt`), on PostgreSQL at `db`, publishing to `snapshot`; its base URL.
fn serve_api(rt: &tokio::runtime::Runtime, db: &str, snapshot: &Path) -> String {
    let config = warp_api::config::Config::from_lookup(|k| match k {
        "WARP_DATABASE_URL" => Some(db.to_owned()),
        "WARP_SNAPSHOT" => Some(snapshot.display().to_string()),
        "WARP_BOOTSTRAP_API_KEY" => Some(API_KEY.into()),
        // Published when the operator says so, not in between.
        "WARP_PUBLISH_DEBOUNCE_MS" => Some("600000".into()),
        _ => None,
    })
    .unwrap();
    rt.block_on(async {
        let state = warp_api::start(config).await.expect("start warp-api");
        let (app, _) = warp_api::routes::app(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    })
}

/// One request to the API at `base` with `body` of `content_type`: status and envelope.
fn api_call(
    rt: &tokio::runtime::Runtime,
    base: &str,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
) -> (u16, serde_json::Value) {
    rt.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = reqwest::Client::new()
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(API_KEY);
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let res = req.send().await.expect("reach warp-api");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_default())
    })
}

/// The operator's journey across the parts, as the READMEs tell it: the dataset
/// imported into PostgreSQL (`warp import`: CSV files, migrations, import), warp-api
/// started on it publishing the snapshot, the shipped kamailio.cfg routing on the file
/// the API wrote; then through the API a cheaper vendor (a CSV deck), a Do-Not-Originate
/// number in a written-out form, a new sell rate, a publish, which warp.so takes up by
/// itself (`reload_check`); calls routed by the new data, with their CDR events in Redis.
#[test]
fn routing_changed_through_the_api_reaches_calls_after_publish() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
    let new_port = support::free_udp_port();
    let new = Uas::start(dir.path(), new_port, Answer::Accept);

    // warp import --db … --from data/
    let pg = warp_testkit::Postgres::start().unwrap();
    let csv = dir.path().join("data");
    warp_core::dataset::write_dir(&data.dataset(), &csv).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = warp_db::connect(&pg.url).await.unwrap();
        warp_db::migrate(&pool).await.unwrap();
        let d = warp_core::dataset::read_dir(&csv).unwrap();
        warp_db::import_dataset(&pool, &d).await.unwrap();
    });
    // The API publishes what PostgreSQL holds as generation 1, where warp.so maps it.
    let snap = dir.path().join("lib/routing.snap");
    let api = serve_api(&rt, &pg.url, &snap);
    let call = |method: &str, path: &str, body: serde_json::Value| {
        api_call(
            &rt,
            &api,
            method,
            path,
            Some(("application/json", body.to_string())),
        )
    };
    let k = Kamailio::start_file(
        &shipped_config(),
        &[
            format!("WARP_SNAPSHOT=\"{}\"", snap.display()),
            format!("WARP_REDIS_URL=\"{}\"", redis.url()),
            format!("WARP_CDR_SPOOL=\"{}\"", dir.path().join("spool").display()),
        ],
        &[],
    );
    assert_eq!(k.rpc("warp.stats")["snapshot.generation"], "1");
    let status = Uac::new(k.port, dir.path(), 2, 10).spawn().wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!(cheap.invites(), 2);

    // Vendor NEW, cheaper than CHEAP, from a CSV deck, offered in the customers' partition.
    let created = |(status, body): (u16, serde_json::Value)| {
        assert_eq!(status, 201, "{body}");
        body["data"].clone()
    };
    created(call(
        "POST",
        "/vendors",
        serde_json::json!({"id": "NEW", "name": "New carrier", "kind": "DNIS"}),
    ));
    created(call(
        "POST",
        "/vendors/NEW/gateways",
        serde_json::json!({"priority": 1,
                           "dialstring": format!("sip:+{{number}}@127.0.0.1:{new_port}")}),
    ));
    let deck = created(call(
        "POST",
        "/rate-decks",
        serde_json::json!({"vendor_id": "NEW"}),
    ))["id"]
        .as_i64()
        .unwrap();
    let deck_csv =
        "prefix,effective_from,interstate,intrastate,local,zone1,tollfree,international\n\
                    1,2020-01-01,0.002,0.002,0.002,0.002,0.002,0.002\n";
    let (status, body) = api_call(
        &rt,
        &api,
        "POST",
        &format!("/rate-decks/{deck}/upload"),
        Some(("text/csv", deck_csv.into())),
    );
    assert_eq!(status, 200, "{body}");
    created(call(
        "POST",
        "/partitions/P1/routes",
        serde_json::json!({"vendor_id": "NEW", "position": 3}),
    ));
    // A DNO number as a person writes it; the calls carry it as a tel: URI.
    created(call(
        "POST",
        "/dno",
        serde_json::json!({"number": "+1 (720) 555-0188"}),
    ));
    // The customers' sell rate goes from 0.02 to 0.03.
    let (_, decks) = api_call(&rt, &api, "GET", "/rate-decks?rate_plan=RETAIL", None);
    let retail = decks["data"][0]["id"].as_i64().unwrap();
    let (_, rows) = api_call(
        &rt,
        &api,
        "GET",
        &format!("/rate-decks/{retail}/rows"),
        None,
    );
    let row = rows["data"][0]["id"].as_i64().unwrap();
    let rate = "0.03";
    let (status, body) = call(
        "PATCH",
        &format!("/rate-decks/{retail}/rows/{row}"),
        serde_json::json!({"interstate": rate, "intrastate": rate, "local": rate,
                           "zone1": rate, "tollfree": rate, "international": rate}),
    );
    assert_eq!(status, 200, "{body}");

    let (status, published) = call("POST", "/routing/publish", serde_json::json!({}));
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["data"]["generation"], 2);
    assert_eq!(published["data"]["path"], snap.display().to_string());
    // The shipped config's reload_check takes up the API's newest file within its 2 s,
    // under the generation the API gave it: nobody runs kamcmd.
    wait_for_stat(&k, "snapshot.reloads", "1");
    assert_eq!(k.rpc("warp.stats")["snapshot.generation"], "2");
    assert!(k.log().contains("a new file at the path (reload_check)"));

    let status = Uac::new(k.port, dir.path(), 2, 10).spawn().wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!((cheap.invites(), new.invites()), (2, 2));
    let dno = k.request("INVITE", "P-Asserted-Identity: <tel:+17205550188>\r\n");
    assert_eq!(
        (dno.code, dno.reason.as_str()),
        (403, "Forbidden (DNO)"),
        "{}",
        k.log()
    );

    // Each call's start, answer and end, priced as routed.
    let cdrs = redis.wait_for("warp:cdr:raw", 12, Duration::from_secs(10));
    let calls = by_call(&cdrs);
    assert_eq!((cdrs.len(), calls.len()), (12, 4), "{cdrs:#?}");
    let mut priced: Vec<(&str, &str, &str)> = calls
        .values()
        .map(|events| {
            let kinds: Vec<&str> = events
                .iter()
                .map(|e| e["event"].as_str().unwrap())
                .collect();
            assert_eq!(kinds, ["start", "answer", "end"]);
            let e = &events[0];
            (
                e["vendor"].as_str().unwrap(),
                e["vendor_rate"].as_str().unwrap(),
                e["customer_rate"].as_str().unwrap(),
            )
        })
        .collect();
    priced.sort_unstable();
    assert_eq!(
        priced,
        [
            ("CHEAP", "0.004", "0.02"),
            ("CHEAP", "0.004", "0.02"),
            ("NEW", "0.002", "0.03"),
            ("NEW", "0.002", "0.03")
        ]
    );
}

/// A trunk and its credentials made through warp-api authenticate its calls on the
/// shipped kamailio.cfg (`WITH_AUTH`): the password the API hashed in its default realm
/// answers the edge's default challenge, checked against the published snapshot, with
/// no database in the call path; the trunk's auth type, changed through the API, decides
/// where those credentials count.
#[test]
fn trunk_credentials_made_through_the_api_authenticate_on_the_shipped_config() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let pg = warp_testkit::Postgres::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = warp_db::connect(&pg.url).await.unwrap();
        warp_db::migrate(&pool).await.unwrap();
        warp_db::import_dataset(&pool, &data.dataset())
            .await
            .unwrap();
    });
    let snap = dir.path().join("lib/routing.snap");
    let api = serve_api(&rt, &pg.url, &snap);
    let call = |method: &str, path: &str, body: serde_json::Value| {
        let (status, body) = api_call(
            &rt,
            &api,
            method,
            path,
            Some(("application/json", body.to_string())),
        );
        assert!(status < 300, "{method} {path}: {status} {body}");
    };
    let k = Kamailio::start_file(
        &shipped_config(),
        &[
            format!("WARP_SNAPSHOT=\"{}\"", snap.display()),
            format!("WARP_REDIS_URL=\"{}\"", redis.url()),
            format!("WARP_CDR_SPOOL=\"{}\"", dir.path().join("spool").display()),
            "WITH_AUTH".into(),
        ],
        &[],
    );
    let mut generation = 1;
    let mut publish = || {
        call("POST", "/routing/publish", serde_json::json!({}));
        generation += 1;
        wait_for_stat(&k, "snapshot.generation", &generation.to_string());
    };
    let as_pbx9 = |password| Credentials {
        user: "pbx9",
        password,
        // Neither the API's WARP_SIP_REALM nor the config's AUTH_REALM is set.
        realm: "warp",
    };
    // Routed past identification to C1's plan, which has no rate to the UK: 404.
    let uk = "011442079460000";
    let reply_from =
        |source, password| authenticated_invite(&k, source, uk, &as_pbx9(password)).code;
    assert_eq!(
        reply_from("127.0.0.9", "pbx9-secret"),
        407,
        "no such user yet"
    );

    call(
        "POST",
        "/trunks",
        serde_json::json!({"id": "T9", "ban": "C1", "auth_type": "CREDENTIALS"}),
    );
    call(
        "POST",
        "/trunks/T9/credentials",
        serde_json::json!({"username": "pbx9", "password": "pbx9-secret"}),
    );
    publish();
    assert_eq!(reply_from("127.0.0.9", "pbx9-secret"), 404, "{}", k.log());
    assert!(k.log().contains("refused: 404 No Route"), "{}", k.log());
    assert_eq!(reply_from("127.0.0.9", "guess"), 407);

    // Credentials and an address: from elsewhere refused, from its network let in.
    call(
        "PATCH",
        "/trunks/T9",
        serde_json::json!({"auth_type": "IP_AND_CREDENTIALS"}),
    );
    publish();
    assert_eq!(reply_from("127.0.0.9", "pbx9-secret"), 403, "{}", k.log());
    call(
        "POST",
        "/trunks/T9/ips",
        serde_json::json!({"addr": "127.0.0.8/31"}),
    );
    publish();
    assert_eq!(reply_from("127.0.0.9", "pbx9-secret"), 404, "{}", k.log());
    // Its address alone is challenged.
    assert_eq!(k.request_from("127.0.0.9", "INVITE", "").code, 407);
}
