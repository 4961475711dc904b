//! warp.so inside a real Kamailio 5.6 (Debian's package) on loopback.
//!
//! The tests live in tests/kamailio/, one concern per file; here is what several of them
//! share: the scripts they run, Kamailio started on the test data or on the shipped
//! config, and what they read back (warp.stats, CDR events, cluster counts).

#[path = "kamailio/api.rs"]
mod api;
#[path = "kamailio/async_dip.rs"]
mod async_dip;
#[path = "kamailio/auth.rs"]
mod auth;
#[path = "kamailio/bans.rs"]
mod bans;
#[path = "kamailio/cancel_failover.rs"]
mod cancel_failover;
#[path = "kamailio/cdr.rs"]
mod cdr;
#[path = "kamailio/cluster.rs"]
mod cluster;
#[path = "kamailio/config.rs"]
mod config;
#[path = "kamailio/edge.rs"]
mod edge;
#[path = "kamailio/emergency.rs"]
mod emergency;
#[path = "kamailio/emergency_more.rs"]
mod emergency_more;
#[path = "kamailio/failover.rs"]
mod failover;
#[path = "kamailio/fax.rs"]
mod fax;
#[path = "kamailio/fax_refused.rs"]
mod fax_refused;
#[path = "kamailio/fax_sipt.rs"]
mod fax_sipt;
#[path = "kamailio/hairpin.rs"]
mod hairpin;
#[path = "kamailio/in_dialog.rs"]
mod in_dialog;
#[path = "kamailio/in_dialog_pin.rs"]
mod in_dialog_pin;
#[path = "kamailio/ipv6.rs"]
mod ipv6;
#[path = "kamailio/keepalive.rs"]
mod keepalive;
#[path = "kamailio/keepalive_more.rs"]
mod keepalive_more;
#[path = "kamailio/keepalive_tcp.rs"]
mod keepalive_tcp;
#[path = "kamailio/kemi.rs"]
mod kemi;
#[path = "kamailio/limits.rs"]
mod limits;
#[path = "kamailio/log_flood.rs"]
mod log_flood;
#[path = "kamailio/lrn.rs"]
mod lrn;
#[path = "kamailio/media.rs"]
mod media;
#[path = "kamailio/module.rs"]
mod module;
#[path = "kamailio/phone_context.rs"]
mod phone_context;
#[path = "kamailio/prometheus.rs"]
mod prometheus;
#[path = "kamailio/rediss.rs"]
mod rediss;
#[path = "kamailio/reload.rs"]
mod reload;
#[path = "kamailio/restart.rs"]
mod restart;
#[path = "kamailio/review.rs"]
mod review;
#[path = "kamailio/review_s34.rs"]
mod review_s34;
#[path = "kamailio/review_s35.rs"]
mod review_s35;
#[path = "kamailio/review_s35b.rs"]
mod review_s35b;
#[path = "kamailio/review_s36.rs"]
mod review_s36;
#[path = "kamailio/route.rs"]
mod route;
#[path = "kamailio/rtp_timeout.rs"]
mod rtp_timeout;
#[path = "kamailio/scanners.rs"]
mod scanners;
#[path = "kamailio/shaken.rs"]
mod shaken;
#[path = "kamailio/shaken_attest.rs"]
mod shaken_attest;
#[path = "kamailio/shaken_div.rs"]
mod shaken_div;
#[path = "kamailio/shaken_fresh.rs"]
mod shaken_fresh;
#[path = "kamailio/spool.rs"]
mod spool;
mod support;
#[path = "kamailio/tcp.rs"]
mod tcp;
#[path = "kamailio/tcp_limit.rs"]
mod tcp_limit;
#[path = "kamailio/tls.rs"]
mod tls;
#[path = "kamailio/trunk_keepalive.rs"]
mod trunk_keepalive;
#[path = "kamailio/trunk_log.rs"]
mod trunk_log;
#[path = "kamailio/vendor_keepalive.rs"]
mod vendor_keepalive;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::sipp::Uac;
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

/// Two shipped-config edges on one dmq bus (`DMQ_ADDRESS`, `DMQ_NETWORK`
/// 127.0.0.1/32), B joined through A (`DMQ_PEER`), each with `defines` more: ready once
/// A lists B.
struct DmqEdges {
    a: Kamailio,
    b: Kamailio,
    // After the edges: dropped once they stopped.
    _dirs: [tempfile::TempDir; 2],
}

impl DmqEdges {
    fn start(data: &support::dataset::Data, defines: &[&str]) -> DmqEdges {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let edge = |dir: &Path, peer: Option<u16>| {
            let mut all: Vec<String> = [
                "DMQ_ADDRESS=\"sip:127.0.0.1:{port}\"",
                "DMQ_NETWORK=\"127.0.0.1/32\"",
            ]
            .iter()
            .chain(defines)
            .map(|d| d.to_string())
            .collect();
            all.extend(peer.map(|p| format!("DMQ_PEER=\"sip:127.0.0.1:{p}\"")));
            start_shipped(dir, data, &no_redis(), &all)
        };
        let a = edge(dirs[0].path(), None);
        let b = edge(dirs[1].path(), Some(a.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        let b_node = format!("port: {}", b.port);
        while !a.kamcmd(&["dmq.list_nodes"]).unwrap().contains(&b_node) {
            assert!(Instant::now() < deadline, "B never joined:\n{}", b.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        DmqEdges { a, b, _dirs: dirs }
    }
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

/// The shipped config's IPv6 socket beside its IPv4 one (`LISTEN_IPV6`): ::1 on the
/// edge's port.
fn dual_stack() -> String {
    "LISTEN_IPV6=udp:[::1]:{port}".to_owned()
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
    rtpengine_defines_at(&format!("udp:127.0.0.1:{}", rtpengine.ng_port))
}

/// The defines that turn the shipped config's rtpengine on, RTPENGINE_SOCK `socket`.
fn rtpengine_defines_at(socket: &str) -> Vec<String> {
    vec![
        "WITH_RTPENGINE".to_string(),
        format!("RTPENGINE_SOCK=\"{socket}\""),
    ]
}

/// The defines that turn the shipped config's topology hiding on.
fn with_topoh() -> Vec<String> {
    vec!["WITH_TOPOH".into(), "TOPOH_KEY=\"edge secret\"".into()]
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

/// Waits (10 s at most) until `k` holds no call: no dialog, `limits.active` 0 and no
/// trunk with a call counted (`warp.trunks`).
fn holds_no_call(k: &Kamailio) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while k.kamcmd(&["dlg.list"]).unwrap().contains("h_entry") {
        assert!(Instant::now() < deadline, "a dialog left:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_stat(k, "limits.active", "0");
    let trunks = k.rpc("warp.trunks");
    let busy = trunks
        .iter()
        .any(|(key, calls)| key.ends_with(".active") && calls != "0");
    assert!(!busy, "{trunks:?}");
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

/// The events of call `call` (Call-ID `<call>-<lport>`, see
/// [`raw_request`](support::udp::raw_request)) in the stream, as (event, attempt,
/// vendor, sip_code), in call order.
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

/// The kinds of `call`'s events (see [`events_of`]), in order.
fn event_kinds(cdrs: &[serde_json::Value], call: &str, lport: u16) -> Vec<String> {
    events_of(cdrs, call, lport)
        .into_iter()
        .map(|(kind, ..)| kind)
        .collect()
}

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
