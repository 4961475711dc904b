//! Calls handed to an async worker for their LRN dip (`warp_dip_async()` from KEMI and
//! kamailio.cfg), and the shipped config's WITH_LRN_DIP: other calls routed meanwhile, a
//! call's wait bounded by LRN_TIMEOUT, calls past a full queue or async socket routed
//! undipped, every dipped call completed, a cancelled one going no further.

use super::hairpin::NO_HAIRPIN_CHECK;
use super::{dip_defines, no_redis, start_shipped};
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::udp::{
    assert_cancelled, final_replies, final_reply, raw_request, raw_socket, send_raw,
};
use crate::support::{self, Kamailio, Script};
use std::path::Path;
use std::time::{Duration, Instant};

/// A Lua KEMI script hands a call that needs the LRN dip to an async worker
/// (`KSR.warp.warp_dip_async()`), which dips and resumes it in the script's function
/// of that name, where `warp_route()` routes it on the LRN; a call that needs no dip
/// is routed where it came in.
#[test]
fn kemi_hands_a_call_to_an_async_worker_for_its_dip() {
    hands_a_dipped_call_to_an_async_worker(|dir| {
        let lua = dir.join("edge.lua");
        std::fs::write(
            &lua,
            r#"
function ksr_request_route()
    KSR.info("warp-test: " .. KSR.pv.get("$rU") .. " came to " .. KSR.pv.get("$pp") .. "\n")
    if KSR.warp.warp_needs_dip() > 0 and KSR.warp.warp_dip_async("ksr_warp_decide") == 0 then
        return
    end
    ksr_warp_decide()
end

function ksr_warp_decide()
    KSR.info("warp-test: " .. KSR.pv.get("$rU") .. " routed in " .. KSR.pv.get("$pp") .. "\n")
    if KSR.warp.warp_route() < 0 then
        KSR.sl.send_reply(KSR.pv.get("$warp(code)"), KSR.pv.get("$warp(reason)"))
        return
    end
    KSR.hdr.append_to_reply("X-Warp-LRN: " .. KSR.pv.get("$warp(lrn)") .. "\r\n")
    KSR.sl.send_reply(200, "Routed")
end
"#,
        )
        .unwrap();
        format!(
            "loadmodule \"app_lua.so\"\nmodparam(\"app_lua\", \"load\", \"{}\")\n\
             cfgengine \"lua\"\n",
            lua.display()
        )
    });
}

/// The same from kamailio.cfg, resumed in the route `warp_dip_async()` names (one whose
/// name is longer than a KEMI function's may be).
#[test]
fn warp_dip_async_resumes_a_call_in_the_route_it_names() {
    hands_a_dipped_call_to_an_async_worker(|_| {
        r#"
loadmodule "xlog.so"
request_route {
	xlog("L_INFO", "warp-test: $rU came to $pp\n");
	if (warp_needs_dip()) {
		warp_dip_async("DECIDE_THE_ROUTE_OF_A_CALL_WHOSE_LRN_THE_UPSTREAM_DIP_HAS_JUST_SUPPLIED");
	}
	route(DECIDE_THE_ROUTE_OF_A_CALL_WHOSE_LRN_THE_UPSTREAM_DIP_HAS_JUST_SUPPLIED);
}

route[DECIDE_THE_ROUTE_OF_A_CALL_WHOSE_LRN_THE_UPSTREAM_DIP_HAS_JUST_SUPPLIED] {
	xlog("L_INFO", "warp-test: $rU routed in $pp\n");
	if (!warp_route()) {
		send_reply("$warp(code)", "$warp(reason)");
		exit;
	}
	append_to_reply("X-Warp-LRN: $warp(lrn)\r\n");
	send_reply("200", "Routed");
}
"#
        .to_owned()
    });
}

/// Starts Kamailio with tm, 2 async workers and the LRN dip on the test data, and the
/// routing `script(dir)` gives: it logs `warp-test: <number> came to <pid>` and
/// `... routed in <pid>`, and answers a routed call 200 `Routed` with `X-Warp-LRN`. A
/// ported number's call is handed over and routed on its LRN in another process; a
/// toll-free one is routed where it came in.
fn hands_a_dipped_call_to_an_async_worker(script: impl FnOnce(&Path) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    support::dataset::Data::default().publish(&snap);
    let telique = support::telique::Telique::start();
    let cfg = format!(
        "async_workers=2\nloadmodule \"tm.so\"\n{}",
        script(dir.path())
    );
    let url = telique.url();
    let token = support::telique::TOKEN;
    let params = [
        ("snapshot", snap.to_str().unwrap()),
        ("lrn_source", "snapshot,dip"),
        ("lrn_dip_url", url.as_str()),
        ("lrn_dip_token", token),
    ];
    let k = Kamailio::start(&params, Script::Cfg(&cfg));
    // Ported (the dip says so): routed on its LRN, in another process.
    let ported = k.request_to("127.0.0.1", "12125550001", "INVITE", "");
    assert_eq!(
        (ported.code, ported.reason.as_str()),
        (200, "Routed"),
        "{}",
        k.log()
    );
    assert_eq!(
        ported.header("X-Warp-LRN"),
        Some("13035559999"),
        "{}",
        k.log()
    );
    // Toll-free: no dip, routed where it came in.
    let tollfree = k.request_to("127.0.0.1", "18005550123", "INVITE", "");
    assert_eq!(tollfree.code, 200, "{}", k.log());
    let log = k.log();
    let pid = |number: &str, what: &str| -> String {
        let mark = format!("warp-test: {number} {what} ");
        let line = log.lines().find(|l| l.contains(&mark));
        let pid = line.and_then(|l| l.split(&mark).nth(1));
        pid.unwrap_or_else(|| panic!("no {mark:?} in\n{log}"))
            .trim()
            .to_owned()
    };
    assert_ne!(
        pid("12125550001", "came to"),
        pid("12125550001", "routed in")
    );
    assert_eq!(
        pid("18005550123", "came to"),
        pid("18005550123", "routed in")
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["warp_dip_async.calls"].as_str(),
            stats["warp_route.calls"].as_str(),
            stats["lrn.ported"].as_str()
        ),
        ("1", "2", "1"),
        "{stats:?}"
    );
}

#[test]
fn the_shipped_config_routes_a_retransmitted_invite_once_while_the_dip_is_slow() {
    let DipEdge {
        _dir,
        redis,
        cheap,
        telique: _telique,
        k,
    } = DipEdge::start(900);
    // An INVITE whose number the dip answers slowly (0.9 s), sent again after 0.5 s as
    // a UAC over UDP does when no 100 Trying has come.
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "12125550003", "retransmitted");
    for wait in [0, 500] {
        std::thread::sleep(Duration::from_millis(wait));
        send_raw(&sock, &k, &invite);
    }
    let code = final_reply(&sock, &k, "retransmitted").code;
    assert_eq!(code, 200, "{}", k.log());
    // Long enough for a second routing of the retransmission (0.5 s behind) to show.
    std::thread::sleep(Duration::from_millis(1200));
    let starts = redis
        .cdrs("warp:cdr:raw")
        .into_iter()
        .filter(|c| c["event"] == "start")
        .count();
    assert_eq!(
        (starts, cheap.invites()),
        (1, 1),
        "routed more than once:\n{}",
        k.log()
    );
    assert_eq!(k.rpc("warp.stats")["warp_route.calls"], "1", "{}", k.log());
}

/// The shipped config with WITH_LRN_DIP (a call waits `timeout_ms` for the dip) on the
/// gateways' data, CHEAP's gateway answering, CDR events to its own Redis. Bind every
/// field where it is taken apart: one left to `..` is dropped at once, and its part
/// (the temp dir, Redis, the Telique stub) with it.
struct DipEdge {
    _dir: tempfile::TempDir,
    redis: support::redis::Redis,
    cheap: Uas,
    telique: support::telique::Telique,
    k: Kamailio,
}

impl DipEdge {
    fn start(timeout_ms: u32) -> DipEdge {
        DipEdge::start_with(timeout_ms, &[])
    }

    /// With more defines (`DIP_WORKERS=1`).
    fn start_with(timeout_ms: u32, extra: &[&str]) -> DipEdge {
        DipEdge::start_on(support::dataset::Data::with_gateways(), timeout_ms, extra)
    }

    /// On `data` (its gateways on free ports).
    fn start_on(data: support::dataset::Data, timeout_ms: u32, extra: &[&str]) -> DipEdge {
        let dir = tempfile::tempdir().unwrap();
        let redis = support::redis::Redis::start(dir.path());
        let cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
        let telique = support::telique::Telique::start();
        let mut defines = dip_defines(&telique, timeout_ms);
        defines.extend(extra.iter().map(|d| d.to_string()));
        let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
        DipEdge {
            _dir: dir,
            redis,
            cheap,
            telique,
            k,
        }
    }
}

/// The shipped config dips Telique over https (`LRN_DIP_URL` https, `LRN_DIP_CA` the CA
/// its certificate chains to) in its async worker: both calls are routed on their LRN,
/// and the worker's dips share one TLS connection. The old config had no `LRN_DIP_CA`
/// and the old module took no https.
#[test]
fn the_shipped_config_dips_an_https_telique_whose_ca_lrn_dip_ca_names() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::Pki::make("telique");
    let telique = support::telique::Telique::start_tls(&pki);
    let data = support::dataset::Data::with_gateways();
    let cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
    let mut defines = dip_defines(&telique, 1000);
    defines.push(format!("LRN_DIP_CA=\"{}\"", pki.ca.display()));
    defines.push("DIP_WORKERS=1".into());
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let status = Uac {
        extra: &["-s", "12125550001"],
        ..Uac::new(k.port, dir.path(), 2, 10)
    }
    .spawn()
    .wait()
    .unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!(cheap.invites(), 2, "{}", k.log());
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["warp_dip_async.calls"].as_str(),
            stats["lrn.ported"].as_str(),
            stats["lrn.failed"].as_str()
        ),
        ("2", "2", "0"),
        "{stats:?}"
    );
    assert_eq!(telique.connections(), 1);
    assert_eq!(
        k.rpc("warp.config")["lrn_dip_ca"],
        pki.ca.display().to_string()
    );
}

/// With WITH_LRN_DIP a call waits for its dip in one of the core's async workers,
/// not in a SIP worker: three calls whose dips take 1 s (more than the 2 SIP workers)
/// are dipped at once, and a call that needs no dip (a toll-free number) is answered
/// meanwhile, before any of them. Each is then routed once, its LRN come.
#[test]
fn the_shipped_config_routes_other_calls_while_dips_are_slow() {
    let DipEdge {
        _dir,
        redis: _redis,
        cheap,
        telique,
        k,
    } = DipEdge::start(3000);
    let (sock, lport) = raw_socket();
    for call in ["slow0", "slow1", "slow2"] {
        send_raw(
            &sock,
            &k,
            &raw_request(k.port, lport, "INVITE", "12125550003", call),
        );
    }
    // In the SIP workers only two dips could be under way before the first answer.
    let deadline = Instant::now() + Duration::from_millis(800);
    while telique.seen().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "dips under way: {:?}\n{}",
            telique.seen(),
            k.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let tollfree = raw_request(k.port, lport, "INVITE", "18005550123", "tollfree");
    send_raw(&sock, &k, &tollfree);
    let finals = final_replies(&sock, &k, 4);
    assert_eq!(
        finals[0],
        ("tollfree".to_owned(), 200),
        "{finals:?}\n{}",
        k.log()
    );
    assert!(
        finals.iter().all(|(_, code)| *code == 200),
        "{finals:?}\n{}",
        k.log()
    );
    assert_eq!(cheap.invites(), 4, "{}", k.log());
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["warp_needs_dip.calls"].as_str(),
            stats["warp_route.calls"].as_str(),
            stats["lrn.dips"].as_str()
        ),
        ("4", "4", "3"),
        "{stats:?}"
    );
}

/// `LRN_TIMEOUT` bounds a call's whole wait for its dip, its wait for a free async
/// worker included: with one async worker, three calls whose dips take 1 s each and a
/// timeout of 1.5 s, the first is routed on its LRN at 1 s, the second gets the 0.5 s
/// left of its time and the third none, and both are routed on the dialled number by
/// 1.5 s (not at 2 s and 3 s, one whole dip after another), the breaker none the wiser.
#[test]
fn a_call_queued_for_its_dip_waits_no_longer_than_the_lrn_timeout_in_all() {
    let DipEdge {
        _dir,
        redis: _redis,
        cheap,
        telique,
        k,
    } = DipEdge::start_with(1500, &["DIP_WORKERS=1"]);
    let (sock, lport) = raw_socket();
    let sent = Instant::now();
    for call in ["queued0", "queued1", "queued2"] {
        send_raw(
            &sock,
            &k,
            &raw_request(k.port, lport, "INVITE", "12125550003", call),
        );
    }
    let finals = final_replies(&sock, &k, 3);
    let waited = sent.elapsed();
    assert!(
        finals.iter().all(|(_, code)| *code == 200),
        "{finals:?}\n{}",
        k.log()
    );
    assert!(
        waited < Duration::from_millis(2300),
        "the last call was answered after {waited:?}\n{}",
        k.log()
    );
    assert_eq!(cheap.invites(), 3, "{}", k.log());
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["lrn.ported"].as_str(),
            stats["lrn.late"].as_str(),
            stats["lrn.failed"].as_str(),
            stats["lrn.breaker_open"].as_str()
        ),
        ("1", "2", "0", "0"),
        "{stats:?}\n{:?}",
        telique.seen()
    );
}

/// At most `DIP_QUEUE` calls wait for an async worker: with one worker dipping (1 s a
/// dip) and two calls waiting, the next two are routed at once on the dialled number,
/// undipped, and answered before any call that waits; the waiting ones get their dips.
#[test]
fn calls_past_a_full_dip_queue_are_routed_undipped_at_once() {
    let DipEdge {
        _dir,
        redis: _redis,
        cheap,
        telique,
        k,
    } = DipEdge::start_with(5000, &["DIP_WORKERS=1", "DIP_QUEUE=2"]);
    let (sock, lport) = raw_socket();
    let invite = |call: &str| {
        let text = raw_request(k.port, lport, "INVITE", "12125550003", call);
        send_raw(&sock, &k, &text);
    };
    invite("dipping");
    telique.wait_for("2125550003");
    invite("queued0");
    invite("queued1");
    // Two SIP workers take requests in no set order: the next two only once both wait.
    let deadline = Instant::now() + Duration::from_secs(2);
    while k.rpc("warp.stats")["lrn.queued"] != "2" {
        assert!(Instant::now() < deadline, "not queued:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = Instant::now();
    invite("over0");
    invite("over1");
    let finals = final_replies(&sock, &k, 2);
    let waited = sent.elapsed();
    let mut first: Vec<_> = finals
        .iter()
        .map(|(call, code)| (call.as_str(), *code))
        .collect();
    first.sort();
    assert_eq!(first, [("over0", 200), ("over1", 200)], "{}", k.log());
    assert!(
        waited < Duration::from_millis(700),
        "the calls past the queue were answered after {waited:?}\n{}",
        k.log()
    );
    let mut rest = Vec::new();
    while rest.len() < 3 {
        let (call, code) = final_replies(&sock, &k, 1).remove(0);
        // The vendor's 200 again (no ACK came), relayed, is no new answer.
        if !call.starts_with("over") && !rest.iter().any(|(c, _)| *c == call) {
            rest.push((call, code));
        }
    }
    rest.sort();
    let answered = [("dipping", 200), ("queued0", 200), ("queued1", 200)];
    assert_eq!(rest, answered.map(|(c, code)| (c.to_owned(), code)));
    assert_eq!(cheap.invites(), 5, "{}", k.log());
    assert_eq!(telique.seen().len(), 3, "{:?}", telique.seen());
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["lrn.overflow"].as_str(),
            stats["lrn.queued"].as_str(),
            stats["lrn.ported"].as_str(),
            stats["lrn.late"].as_str()
        ),
        ("2", "0", "3", "0"),
        "{stats:?}"
    );
    assert!(
        k.log().contains("2 calls wait for their LRN dip: routing"),
        "{}",
        k.log()
    );
}

/// How many task pointers the core's async socket (a Unix datagram socket pair)
/// holds before a write would block, at this machine's buffer sizes.
fn async_socket_room() -> usize {
    let (tx, _rx) = std::os::unix::net::UnixDatagram::pair().unwrap();
    tx.set_nonblocking(true).unwrap();
    (0..).take_while(|_| tx.send(&[0u8; 8]).is_ok()).count()
}

/// A burst larger than the core's async task socket holds (`DIP_QUEUE` set above it):
/// the calls the socket has no room for are routed at once, undipped, rather than
/// hold a SIP worker until an async worker frees a place (`async_nonblock`); a call
/// needing no dip is answered at once meanwhile, and every call completes.
#[test]
fn a_burst_past_the_async_socket_is_routed_without_holding_a_sip_worker() {
    let DipEdge {
        _dir,
        redis: _redis,
        cheap,
        telique: _telique,
        k,
    } = DipEdge::start_on(
        support::dataset::Data {
            t1_limits: (5000, 5000),
            ..support::dataset::Data::with_gateways()
        },
        4000,
        &["DIP_WORKERS=1", "DIP_QUEUE=100000", NO_HAIRPIN_CHECK],
    );
    let calls = async_socket_room() as u32 + 60;
    let dir = k.dir().to_owned();
    let mut burst = Uac {
        extra: &["-s", "12125550003"],
        ..Uac::new(k.port, &dir, calls, 1000)
    }
    .spawn();
    let deadline = Instant::now() + Duration::from_secs(3);
    while k.rpc("warp.stats")["lrn.overflow"] == "0" {
        assert!(Instant::now() < deadline, "no overflow:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let (sock, lport) = raw_socket();
    let sent = Instant::now();
    let tollfree = raw_request(k.port, lport, "INVITE", "18005550123", "tollfree");
    send_raw(&sock, &k, &tollfree);
    assert_eq!(final_reply(&sock, &k, "tollfree").code, 200, "{}", k.log());
    let waited = sent.elapsed();
    assert!(
        waited < Duration::from_millis(500),
        "a call needing no dip waited {waited:?}\n{}",
        k.log()
    );
    let status = burst.wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!(cheap.invites(), calls as usize + 1, "{}", k.log());
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["lrn.queued"], "0", "{stats:?}");
    assert!(
        k.log()
            .contains("the core could not queue the call for an async worker"),
        "{}",
        k.log()
    );
}

/// Sustained load through the async workers: 400 calls at 80 a second, each dipped
/// (the stub says the number is ported) in an async worker and resumed there, all
/// completed, each routed once, with its CDR events and its trunk place given back.
#[test]
fn the_shipped_config_completes_every_dipped_call_under_load() {
    let DipEdge {
        _dir,
        redis,
        cheap,
        telique: _telique,
        k,
    } = DipEdge::start_with(1000, &[NO_HAIRPIN_CHECK]);
    let dir = k.dir().to_owned();
    let status = Uac {
        extra: &["-s", "12125550001"],
        ..Uac::new(k.port, &dir, 400, 80)
    }
    .spawn()
    .wait()
    .unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!(cheap.invites(), 400, "{}", k.log());
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["warp_dip_async.calls"].as_str(),
            stats["warp_route.calls"].as_str(),
            stats["lrn.ported"].as_str(),
            stats["warp_route.errors"].as_str()
        ),
        ("400", "400", "400", "0"),
        "{stats:?}"
    );
    // start, answer and end for each.
    let cdrs = redis.wait_for("warp:cdr:raw", 1200, Duration::from_secs(10));
    let ends = cdrs.iter().filter(|c| c["event"] == "end").count();
    assert_eq!((cdrs.len(), ends), (1200, 400));
    let t1 = k.rpc_args(&["warp.trunks", "T1"]).unwrap();
    assert_eq!(t1["T1.active"], "0", "{t1:?}");
}

/// A call whose caller cancels it while its dip runs (in an async worker) gets its 487
/// at once, and goes no further once the LRN comes: no vendor sees it, it writes no CDR
/// event and takes no place of its trunk's.
#[test]
fn a_call_cancelled_while_its_dip_runs_goes_no_further() {
    let DipEdge {
        _dir,
        redis,
        cheap,
        telique,
        k,
    } = DipEdge::start(3000);
    let (sock, lport) = raw_socket();
    send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "INVITE", "12125550003", "gone"),
    );
    telique.wait_for("2125550003");
    send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "CANCEL", "12125550003", "gone"),
    );
    assert_cancelled(&sock, &k);
    // The dip answers 1 s after it was asked; then the call would be routed.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(cheap.invites(), 0, "{}", k.log());
    assert_eq!(redis.cdrs("warp:cdr:raw"), Vec::<serde_json::Value>::new());
    let t1 = k.rpc_args(&["warp.trunks", "T1"]).unwrap();
    assert_eq!(t1["T1.active"], "0", "{t1:?}");
}
