//! The LRN dip in warp.so: Telique over http and https (kept connections, the server
//! checked against `lrn_dip_ca`), failures routed on the dialled number and the breaker,
//! 429s honoured, and the LNP cache in Redis in front of the dip.

use super::{dip_params, start_dipping, start_with_dip, ROUTE};
use crate::support::{self, Kamailio, Script};
use std::time::{Duration, Instant};

/// As [`start_with_dip`], with one SIP worker: every call is dipped by the same process.
fn start_with_dip_in_one_worker() -> (tempfile::TempDir, support::telique::Telique, Kamailio) {
    let script = format!("children=1\nrequest_route {{\n{ROUTE}\n}}\n");
    start_dipping(&support::dataset::Data::default(), Script::Cfg(&script))
}

/// Kamailio with one SIP worker, dipping at `url` with `more` parameters (`lrn_dip_ca`).
fn start_dipping_at(url: &str, more: &[(&str, &str)]) -> (tempfile::TempDir, Kamailio) {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    support::dataset::Data::default().publish(&snap);
    let mut params = dip_params(snap.to_str().unwrap(), url).to_vec();
    params.extend_from_slice(more);
    let script = format!("children=1\nrequest_route {{\n{ROUTE}\n}}\n");
    let k = Kamailio::start(&params, Script::Cfg(&script));
    (dir, k)
}

#[test]
fn the_lrn_dip_supplies_the_lrn_of_numbers_the_snapshot_does_not_know() {
    let (_dir, telique, k) = start_with_dip(&support::dataset::Data::default());
    let ported = k.request_to("127.0.0.1", "12125550001", "INVITE", "");
    assert_eq!(ported.code, 200, "{}", k.log());
    assert_eq!(ported.header("X-Warp-LRN"), Some("13035559999"));
    let not_ported = k.request_to("127.0.0.1", "12125550002", "INVITE", "");
    assert_eq!(not_ported.header("X-Warp-LRN"), Some("12125550002"));
    // A server that keeps the connection open: read up to its Content-Length.
    let kept_open = k.request_to("127.0.0.1", "12125550009", "INVITE", "");
    assert_eq!(
        kept_open.header("X-Warp-LRN"),
        Some("13035559999"),
        "{}",
        k.log()
    );
    // A chunked answer (an HTTP/1.1 server may send any so), on the kept connection.
    let chunked = k.request_to("127.0.0.1", "12125550016", "INVITE", "");
    assert_eq!(
        chunked.header("X-Warp-LRN"),
        Some("13035559999"),
        "{}",
        k.log()
    );
    // Toll-free numbers are not dipped; nor is a call refused whatever its LRN: a
    // DNO'd caller (a robocall flood) costs no dips.
    k.request_to("127.0.0.1", "18005550001", "INVITE", "");
    let dno = format!(
        "P-Asserted-Identity: <tel:{}>\r\n",
        support::dataset::DNO_ANI
    );
    let refused = k.request_to("127.0.0.1", "12125550001", "INVITE", &dno);
    assert_eq!(refused.code, 603);
    assert_eq!(
        telique.seen(),
        [
            "/v1/telique/lrn/2125550001?format=json",
            "/v1/telique/lrn/2125550002?format=json",
            "/v1/telique/lrn/2125550009?format=json",
            "/v1/telique/lrn/2125550016?format=json"
        ]
    );
    // warp.route simulates with the dip too.
    let d = k
        .rpc_args(&["warp.route", "C1", "-", "s:12125550001"])
        .unwrap();
    assert_eq!(
        (d["lrn"].as_str(), d["lrn_source"].as_str()),
        ("13035559999", "supplied")
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["lrn.dips"], "5");
    assert_eq!(stats["lrn.ported"], "4");
    assert_eq!(stats["lrn.not_ported"], "1");
}

/// A worker keeps its connection to Telique between dips: only the first dip pays for
/// the handshake. A reply saying `Connection: close` ends that connection's use.
#[test]
fn lrn_dips_from_one_worker_share_one_connection() {
    let (_dir, telique, k) = start_with_dip_in_one_worker();
    let lrn_of = |dnis| routed_lrn(&k, dnis).unwrap_or_else(|| panic!("{}", k.log()));
    for _ in 0..2 {
        assert_eq!(lrn_of("12125550001"), "13035559999");
        assert_eq!(lrn_of("12125550002"), "12125550002");
    }
    assert_eq!(lrn_of("12125550009"), "13035559999");
    assert_eq!((telique.seen().len(), telique.connections()), (5, 1));
    // …0009 said close (and holds its end open): the next dip opens a connection.
    assert_eq!(lrn_of("12125550001"), "13035559999");
    assert_eq!(telique.connections(), 2);
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (stats["lrn.dips"].as_str(), stats["lrn.failed"].as_str()),
        ("6", "0")
    );
}

/// The LRN an INVITE to `dnis` was routed on (the test scripts' `X-Warp-LRN`), or none
/// when it was not routed (its reply carries none).
fn routed_lrn(k: &Kamailio, dnis: &str) -> Option<String> {
    let reply = k.request_to("127.0.0.1", dnis, "INVITE", "");
    let lrn = reply.header("X-Warp-LRN").map(str::to_owned);
    assert!(lrn.is_none() || reply.code == 200, "{}", k.log());
    lrn
}

/// Telique (or its proxy) closing a kept connection while idle is no failure: the dip is
/// asked again at once, on a new connection, which then serves the dips after it.
#[test]
fn an_lrn_dip_connection_closed_while_idle_is_replaced_not_counted_failed() {
    let (_dir, telique, k) = start_with_dip_in_one_worker();
    let lrn_of = |dnis| routed_lrn(&k, dnis).unwrap_or_else(|| panic!("{}", k.log()));
    // Answered with keep-alive, then closed, as an idle timeout closes it.
    assert_eq!(lrn_of("12125550015"), "13035559999");
    assert_eq!(lrn_of("12125550001"), "13035559999", "{}", k.log());
    assert_eq!(lrn_of("12125550002"), "12125550002");
    assert_eq!((telique.seen().len(), telique.connections()), (3, 2));
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["lrn.dips"].as_str(),
            stats["lrn.failed"].as_str(),
            stats["lrn.ported"].as_str()
        ),
        ("3", "0", "2")
    );
    assert!(!k.log().contains("LRN dip for"), "{}", k.log());
}

/// The LRN dip over https, as the real Telique serves it: the server's certificate
/// checked against `lrn_dip_ca`, the TLS session kept for the next dips as a plain
/// connection is, and one the server ended while idle (a close_notify after a keep-alive
/// reply) replaced, not counted failed. The old module had no `lrn_dip_ca` and took
/// only `http://`.
#[test]
fn the_lrn_dip_supplies_the_lrn_over_https_on_one_kept_tls_connection() {
    let pki = support::tls::Pki::make("telique");
    let telique = support::telique::Telique::start_tls(&pki);
    let ca = pki.ca.to_str().unwrap();
    let (_snap, k) = start_dipping_at(&telique.url(), &[("lrn_dip_ca", ca)]);
    let lrn_of = |dnis| routed_lrn(&k, dnis).unwrap_or_else(|| panic!("{}", k.log()));
    assert_eq!(lrn_of("12125550001"), "13035559999");
    assert_eq!(lrn_of("12125550002"), "12125550002");
    assert_eq!((telique.seen().len(), telique.connections()), (2, 1));
    assert_eq!(lrn_of("12125550015"), "13035559999");
    assert_eq!(lrn_of("12125550001"), "13035559999", "{}", k.log());
    assert_eq!((telique.seen().len(), telique.connections()), (4, 2));
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["lrn.dips"].as_str(),
            stats["lrn.failed"].as_str(),
            stats["lrn.ported"].as_str()
        ),
        ("4", "0", "3")
    );
    assert!(!k.log().contains("LRN dip for"), "{}", k.log());
    assert_eq!(k.rpc("warp.config")["lrn_dip_ca"], ca);
}

/// An https server whose certificate is of a CA `lrn_dip_ca` does not hold, or does not
/// name the URL's host, is asked nothing: each dip fails (logged as the certificate's
/// fault), the call is routed on the dialled number, and the breaker counts it.
#[test]
fn an_lrn_dip_server_whose_certificate_is_not_trusted_fails_the_dip() {
    let pki = support::tls::Pki::make("telique");
    let stranger = support::tls::Pki::make("stranger");
    let telique = support::telique::Telique::start_tls(&pki);
    for (url, ca, why) in [
        (
            telique.url(),
            &stranger.ca,
            "TLS handshake with 127.0.0.1 failed: invalid peer certificate: UnknownIssuer",
        ),
        // Its certificate is for the IP address 127.0.0.1 only.
        (
            telique.url().replace("127.0.0.1", "localhost"),
            &pki.ca,
            "TLS handshake with localhost failed: invalid peer certificate: certificate not valid for name \"localhost\"",
        ),
    ] {
        let (_snap, k) = start_dipping_at(&url, &[("lrn_dip_ca", ca.to_str().unwrap())]);
        for _ in 0..3 {
            let reply = k.request_to("127.0.0.1", "12125550001", "INVITE", "");
            assert_eq!(
                (reply.code, reply.header("X-Warp-LRN")),
                (200, Some("12125550001")),
                "{}",
                k.log()
            );
        }
        let stats = k.rpc("warp.stats");
        assert_eq!(
            (
                stats["lrn.failed"].as_str(),
                stats["lrn.breaker_open"].as_str()
            ),
            ("3", "1"),
            "{url}"
        );
        assert!(
            k.log()
                .contains(&format!("LRN dip for 12125550001 failed ({why}")),
            "{}",
            k.log()
        );
    }
    assert!(telique.seen().is_empty(), "{:?}", telique.seen());
}

/// An https server that takes the connection and never answers the TLS handshake: the
/// dip fails within `lrn_timeout` and the call is routed on the dialled number. (The
/// trust is the default, the system's CAs.)
#[test]
fn an_lrn_dip_server_silent_in_the_tls_handshake_fails_the_dip_within_the_lrn_timeout() {
    // Never accepted: the kernel takes the connection and the ClientHello, nobody answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let (_snap, k) = start_dipping_at(&url, &[]);
    let started = Instant::now();
    let reply = k.request_to("127.0.0.1", "12125550001", "INVITE", "");
    assert_eq!(
        (reply.code, reply.header("X-Warp-LRN")),
        (200, Some("12125550001"))
    );
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(k.rpc("warp.stats")["lrn.failed"], "1");
    assert!(
        k.log()
            .contains("TLS handshake with 127.0.0.1 failed: timed out after 200 ms"),
        "{}",
        k.log()
    );
    assert_eq!(
        k.rpc("warp.config")["lrn_dip_ca"],
        "/etc/ssl/certs/ca-certificates.crt"
    );
}

#[test]
fn lrn_dip_failures_route_on_the_dialled_number_and_trip_the_breaker() {
    let (_dir, telique, k) = start_with_dip(&support::dataset::Data::default());
    // Slow (1 s against a 200 ms budget), down, rate limited: each call is still routed
    // on the dialled number, and no later than the budget allows.
    for number in ["12125550003", "12125550005", "12125550004"] {
        let started = Instant::now();
        let reply = k.request_to("127.0.0.1", number, "INVITE", "");
        assert_eq!(
            (reply.code, reply.header("X-Warp-LRN")),
            (200, Some(number))
        );
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{number}: {:?}",
            started.elapsed()
        );
    }
    // Three failures in a row: the breaker is open, the next calls do not dip.
    let asked = telique.seen().len();
    for _ in 0..3 {
        let reply = k.request_to("127.0.0.1", "12125550001", "INVITE", "");
        assert_eq!(reply.header("X-Warp-LRN"), Some("12125550001"));
    }
    assert_eq!(telique.seen().len(), asked, "dipped with the breaker open");
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["lrn.failed"], "3");
    assert_eq!(stats["lrn.skipped"], "3");
    assert_eq!(stats["lrn.breaker_open"], "1");
    assert!(
        k.log().contains("LRN dip: 3 failures in a row"),
        "{}",
        k.log()
    );
    // After the cooldown one call tries again; its success closes the breaker.
    std::thread::sleep(Duration::from_millis(1600));
    let reply = k.request_to("127.0.0.1", "12125550001", "INVITE", "");
    assert_eq!(reply.header("X-Warp-LRN"), Some("13035559999"));
    assert_eq!(k.rpc("warp.stats")["lrn.breaker_open"], "0");
    // A reply too large to be an LRN answer is a failure, not read to its end.
    let reply = k.request_to("127.0.0.1", "12125550006", "INVITE", "");
    assert_eq!(reply.header("X-Warp-LRN"), Some("12125550006"));
    assert_eq!(k.rpc("warp.stats")["lrn.failed"], "4");
    assert!(k.log().contains("response over 65536 bytes"), "{}", k.log());
    // A lookup that failed upstream is no "not ported".
    let reply = k.request_to("127.0.0.1", "12125550007", "INVITE", "");
    assert_eq!(reply.header("X-Warp-LRN"), Some("12125550007"));
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["lrn.failed"].as_str(),
            stats["lrn.not_ported"].as_str()
        ),
        ("5", "0")
    );
    assert!(k.log().contains("failed (status \"error\")"), "{}", k.log());
    // An answer about another number (as text or a JSON number), an LRN that is no NANP
    // number, or a status that is not "success" (even one that is not text) is no
    // answer: it is neither used nor cached for a day.
    // (Two at a time after an answer, so the breaker, at three failures, stays shut.)
    for pair in [
        ["12125550010", "12125550011"],
        ["12125550012", "12125550013"],
    ] {
        k.request_to("127.0.0.1", "12125550002", "INVITE", "");
        for number in pair {
            let reply = k.request_to("127.0.0.1", number, "INVITE", "");
            assert_eq!(reply.header("X-Warp-LRN"), Some(number), "{}", k.log());
        }
    }
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["lrn.failed"].as_str(),
            stats["lrn.not_ported"].as_str()
        ),
        ("9", "2")
    );
    assert!(k.log().contains("answer about 2125550001"), "{}", k.log());
    assert!(k.log().contains("no NANP LRN"), "{}", k.log());
}

#[test]
fn a_dip_that_began_before_a_429_does_not_lift_its_pause() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    support::dataset::publish(&snap);
    let telique = support::telique::Telique::start();
    let url = telique.url();
    let mut params = dip_params(snap.to_str().unwrap(), &url);
    params[4] = ("lrn_timeout", "1500");
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    let lrn_of = |dnis| routed_lrn(&k, dnis);
    std::thread::scope(|scope| {
        // A dip that takes 1 s and, once Telique has it, a 429 asking for 5 s of quiet...
        let slow = scope.spawn(|| lrn_of("12125550003"));
        telique.wait_for("2125550003");
        assert_eq!(lrn_of("12125550008").as_deref(), Some("12125550008"));
        // ...which the slow dip's success, when it comes, must not cut short.
        assert_eq!(slow.join().unwrap().as_deref(), Some("13035559999"));
    });
    assert_eq!(lrn_of("12125550001").as_deref(), Some("12125550001"));
    assert!(
        !telique.seen().iter().any(|p| p.contains("2125550001")),
        "dipped during the upstream's Retry-After: {:?}",
        telique.seen()
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["lrn.skipped"].as_str(),
            stats["lrn.breaker_open"].as_str()
        ),
        ("1", "1")
    );
}

/// Telique's contract: the client must honour 429, also one that names no Retry-After.
#[test]
fn a_429_without_retry_after_pauses_the_dip_for_the_cooldown() {
    let (_dir, telique, k) = start_with_dip(&support::dataset::Data::default());
    let lrn_of = |dnis| routed_lrn(&k, dnis);
    assert_eq!(lrn_of("12125550014").as_deref(), Some("12125550014"));
    // One failure of three: only the 429 itself can keep the next call from dipping.
    assert_eq!(lrn_of("12125550001").as_deref(), Some("12125550001"));
    assert_eq!(
        telique.seen().len(),
        1,
        "dipped again right after a 429: {:?}",
        telique.seen()
    );
    assert_eq!(k.rpc("warp.stats")["lrn.breaker_open"], "1");
    // Once the cooldown (1.5 s) is over, the dip is asked again.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(lrn_of("12125550001").as_deref(), Some("13035559999"));
    assert_eq!(k.rpc("warp.stats")["lrn.breaker_open"], "0");
}

/// A server on `redis_url` that answers its first GET with a bulk length of 1 TiB, its
/// second with a 10-byte value one byte every 40 ms, any later one with nil.
fn lying_redis() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let gets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let gets = gets.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || !buf[..n].windows(3).any(|w| w == b"GET") {
                        return;
                    }
                    let reply: &[u8] = match gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    {
                        0 => b"$1099511627776\r\n",
                        1 => {
                            let _ = conn.write_all(b"$10\r\n");
                            for b in b"3035559999\r\n" {
                                std::thread::sleep(Duration::from_millis(40));
                                let _ = conn.write_all(&[*b]);
                            }
                            continue;
                        }
                        _ => b"$-1\r\n",
                    };
                    let _ = conn.write_all(reply);
                }
            });
        }
    });
    port
}

#[test]
fn a_redis_that_lies_about_lengths_or_trickles_neither_stops_nor_holds_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    support::dataset::publish(&snap);
    let redis_url = format!("redis://127.0.0.1:{}", lying_redis());
    let params = [
        ("snapshot", snap.to_str().unwrap()),
        ("lrn_source", "snapshot,cache"),
        ("redis_url", redis_url.as_str()),
        ("lrn_timeout", "50"),
    ];
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    let timed_call = || {
        let started = Instant::now();
        let reply = k.request_to("127.0.0.1", "12125550001", "INVITE", "");
        (
            reply.code,
            reply.header("X-Warp-LRN").map(str::to_owned),
            started.elapsed(),
        )
    };
    // 1 TiB announced: refused, not allocated; the call routes on the dialled number.
    let (code, lrn, _) = timed_call();
    assert_eq!(
        (code, lrn.as_deref()),
        (200, Some("12125550001")),
        "{}",
        k.log()
    );
    // After the 1 s pause a failure earns, a reply that trickles past the 50 ms budget.
    std::thread::sleep(Duration::from_millis(1100));
    let (code, lrn, took) = timed_call();
    assert_eq!(
        (code, lrn.as_deref()),
        (200, Some("12125550001")),
        "{}",
        k.log()
    );
    assert!(
        took < Duration::from_millis(250),
        "the call waited {took:?}"
    );
    let log = k.log();
    assert!(log.contains("bulk reply of 1099511627776 bytes"), "{log}");
    assert!(log.contains("timed out"), "{log}");
    assert_eq!(k.request("OPTIONS", "").code, 200);
}

#[test]
fn the_lnp_cache_answers_before_the_dip_and_remembers_what_it_said() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = support::redis::Redis::start(dir.path());
    let snap = dir.path().join("routing.snap");
    support::dataset::publish(&snap);
    let telique = support::telique::Telique::start();
    let (url, redis_url) = (telique.url(), redis.url());
    let mut params = dip_params(snap.to_str().unwrap(), &url).to_vec();
    params.extend([
        ("lrn_source", "snapshot,cache,dip"),
        ("redis_url", redis_url.as_str()),
        ("lrn_cache_ttl", "3600"),
    ]);
    // One worker: each call meets the same process's Redis connection.
    let script = format!("children=1\nrequest_route {{\n{ROUTE}\n}}\n");
    let k = Kamailio::start(&params, Script::Cfg(&script));
    let lrn_of = |dnis| routed_lrn(&k, dnis).unwrap_or_else(|| panic!("{}", k.log()));
    // Known to the cache (another node dipped it): no dip.
    redis.cli(&["SET", "warp:lnp:2125550009", "3035550000"]);
    assert_eq!(lrn_of("12125550009"), "13035550000");
    assert!(telique.seen().is_empty());
    // An entry no dip would have given (a toll-free "LRN", written by something else)
    // is not routed on: the number is dipped, and the entry replaced.
    redis.cli(&["SET", "warp:lnp:2125550001", "8005550000"]);
    assert_eq!(lrn_of("12125550001"), "13035559999");
    assert_eq!(telique.seen().len(), 1);
    // Dipped once, then answered by the cache: ported and not ported alike.
    for _ in 0..2 {
        assert_eq!(lrn_of("12125550001"), "13035559999");
        assert_eq!(lrn_of("12125550002"), "12125550002");
    }
    assert_eq!(telique.seen().len(), 2);
    assert_eq!(
        redis.cli(&["GET", "warp:lnp:2125550001"]).trim(),
        "3035559999"
    );
    assert_eq!(redis.cli(&["GET", "warp:lnp:2125550002"]).trim(), "");
    let ttl: u64 = redis
        .cli(&["TTL", "warp:lnp:2125550002"])
        .trim()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&ttl), "{ttl}");
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["lrn.cache_hits"], "4");
    assert_eq!(stats["lrn.cache_misses"], "2");
    assert_eq!(stats["lrn.dips"], "2");
    // A key Redis refuses to read (another type: WRONGTYPE) is that number's trouble
    // only: the next number is still answered by the cache, not dipped.
    redis.cli(&["DEL", "warp:lnp:2125550001"]);
    redis.cli(&["HSET", "warp:lnp:2125550001", "lrn", "3035550000"]);
    assert_eq!(lrn_of("12125550001"), "13035559999");
    assert_eq!(lrn_of("12125550009"), "13035550000");
    assert_eq!(telique.seen().len(), 3);
    // Redis gone: the dip answers, calls are still routed on the LRN.
    redis.stop();
    assert_eq!(lrn_of("12125550001"), "13035559999");
    assert_eq!(telique.seen().len(), 4);
    let stats = k.rpc("warp.stats");
    assert_ne!(stats["lrn.cache_errors"], "0");
    assert!(k.log().contains("LNP cache unavailable"), "{}", k.log());
}

/// A vendor whose dialstring asks for it (`{npdi}`, `{lrn}`) is told a ported number's
/// LRN, RFC 4694's way or as the number it routes on, on the first attempt and on one
/// failed over to, and in `warp.route`; a number not ported is sent as it was dialled.
#[test]
fn a_ported_numbers_lrn_reaches_the_vendors_whose_dialstrings_ask_for_it() {
    let data = support::dataset::Data {
        dialled_as: ("+{number}{npdi}", "{lrn}"),
        ..Default::default()
    };
    let script = r#"
    if (!warp_route()) {
        sl_send_reply("$warp(code)", "$warp(reason)");
        exit;
    }
    append_to_reply("X-Warp-RURI: $ru\r\n");
    if (warp_next_route()) {
        append_to_reply("X-Warp-Next: $ru\r\n");
    }
    sl_send_reply("200", "Routed");
"#;
    let (_dir, _telique, k) = super::start_dipping(&data, Script::Native(script));
    let ported = k.request_to("127.0.0.1", "12125550001", "INVITE", "");
    assert_eq!(ported.code, 200, "{}", k.log());
    assert_eq!(
        ported.header("X-Warp-RURI"),
        Some("sip:+12125550001;rn=+13035559999;npdi@127.0.0.1:5090")
    );
    assert_eq!(
        ported.header("X-Warp-Next"),
        Some("sip:13035559999@127.0.0.1:5091")
    );
    let not_ported = k.request_to("127.0.0.1", "12125550002", "INVITE", "");
    assert_eq!(
        not_ported.header("X-Warp-RURI"),
        Some("sip:+12125550002@127.0.0.1:5090")
    );
    assert_eq!(
        not_ported.header("X-Warp-Next"),
        Some("sip:12125550002@127.0.0.1:5091")
    );
    let d = k
        .rpc_args(&["warp.route", "C1", "-", "s:12125550001"])
        .unwrap();
    assert_eq!(
        (d["routes.1.uri"].as_str(), d["routes.2.uri"].as_str()),
        (
            "sip:+12125550001;rn=+13035559999;npdi@127.0.0.1:5090",
            "sip:13035559999@127.0.0.1:5091"
        )
    );
}
