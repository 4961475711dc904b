//! The shipped config as a carrier runs it: the carrier edge routing, authenticating,
//! failing over and reporting, every feature on at once, the Record-Route of its default
//! socket, keepalives sent with Max-Forwards 0, and the caller's STIR/SHAKEN Identity
//! header passed on unaltered.

use super::hairpin::NO_HAIRPIN_CHECK;
use super::{
    authenticated_invite, by_call, calls_key, challenge, digest_answer, digest_credentials,
    dip_defines, no_calls_counted, no_redis, rtpengine_defines, shipped_config, start_config,
    start_shipped, wait_for_stat, with_topoh, Credentials, CLUSTER_TIMEOUT,
};
use crate::support;
use crate::support::rtpengine::wait_for_no_media_sessions;
use crate::support::sdp::audio_ports;
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
        NO_HAIRPIN_CHECK.to_string(),
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

/// STIR/SHAKEN (RFC 8224, ATIS-1000074): the caller's Identity header, the PASSporT its
/// originating carrier signed over the calling and called numbers, reaches the vendor
/// byte for byte, as an intermediate carrier must pass it on (a signature over a
/// changed header no longer verifies, and the call loses its attestation); with
/// WITH_TOPOH too, which rewrites the Call-ID, Via and Contact but not it.
#[test]
fn the_shipped_config_passes_the_callers_identity_header_to_the_vendor_unaltered() {
    let passport = [
        "eyJhbGciOiJFUzI1NiIsInBwdCI6InNoYWtlbiIsInR5cCI6InBhc3Nwb3J0IiwieDV1IjoiaHR0cHM6",
        "Ly9jZXJ0LmV4YW1wbGUub3JnL3NwLnBlbSJ9.eyJhdHRlc3QiOiJBIiwiZGVzdCI6eyJ0biI6WyIxMjEy",
        "NTU1MDEyMyJdfSwiaWF0IjoxNzk1NDQ2NDAwLCJvcmlnIjp7InRuIjoiMTcyMDU1NTAxOTkifSwib3JpZ2lk",
        "IjoiNGQ3ZWY5ZTQtYmQ2OC00ZjQ4LWE4NjgtMzRiZGQ1NzRkNjE5In0.Yd2WwAM3IgwJ6JLiU9EvXzTdwY",
        "9b1uyvU6Vt2BxSCSwA1zq4ZuTQGZsf7E8Ys2SmUlRUyRgKXRmh0jVKnqIfhg",
    ]
    .concat();
    let identity =
        format!("Identity: {passport};info=<https://cert.example.org/sp.pem>;alg=ES256;ppt=shaken");
    for defines in [vec![], with_topoh()] {
        let dir = tempfile::tempdir().unwrap();
        let data = support::dataset::Data::with_gateways();
        let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
        let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
        let reply = k.request("INVITE", &format!("{identity}\r\n"));
        assert_eq!(reply.code, 200, "{defines:?}: {}", k.log());
        let invites = vendor.received("INVITE");
        assert_eq!(invites.len(), 1, "{defines:?}");
        let passed: Vec<&str> = invites[0]
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("identity:"))
            .collect();
        assert_eq!(passed, [identity.as_str()], "{defines:?}: {}", invites[0]);
    }
}
