//! Redis over TLS (`rediss://`, Redis's `tls-port`, as a managed Redis serves it): the
//! server's certificate checked against `redis_ca` and for the URL's host, AUTH sent
//! over the TLS session, which each process keeps as it keeps a plain connection.

use super::{start_reporting, start_shipped, ROUTE};
use crate::support::redis::Redis;
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::tls::Pki;
use crate::support::{dataset::Data, Kamailio, Script};
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret";

/// `rediss://` with the password to `redis`'s TLS port on `host`.
fn rediss(redis: &Redis, host: &str) -> String {
    format!(
        "rediss://:{PASSWORD}@{host}:{}",
        redis.tls_port.expect("a TLS port")
    )
}

/// The clients connected to `redis`'s TLS port.
fn tls_clients(redis: &Redis) -> usize {
    let port = format!("laddr=127.0.0.1:{} ", redis.tls_port.unwrap());
    redis
        .cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|client| client.contains(&port))
        .count()
}

/// Calls answered by the native route, one `start` event each.
fn calls(k: &Kamailio, n: usize) {
    for _ in 0..n {
        assert_eq!(k.request("INVITE", "").code, 200, "{}", k.log());
    }
}

/// CDR events reach a Redis on its TLS port, its certificate of the CA `redis_ca` names
/// and its password sent over TLS; a worker's events share its one TLS connection, and
/// one Redis closed while idle (its `timeout`) is replaced, not taken for an outage. The
/// old module took no `rediss://` and had no `redis_ca`.
#[test]
fn cdr_events_reach_a_redis_over_tls_on_one_kept_connection() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("redis");
    let redis = Redis::start_tls(dir.path(), &pki, PASSWORD);
    redis.cli(&["CONFIG", "SET", "timeout", "1"]);
    let (url, ca) = (rediss(&redis, "127.0.0.1"), pki.ca.to_str().unwrap());
    let k = start_reporting(
        dir.path(),
        &Data::default(),
        &url,
        Script::Native(ROUTE),
        &[("redis_ca", ca)],
    );
    calls(&k, 10);
    let cdrs = redis.wait_for("warp:cdr:raw", 10, Duration::from_secs(5));
    assert_eq!(cdrs.len(), 10, "{}", k.log());
    // The two SIP workers' senders, one connection each at most.
    assert!((1..=2).contains(&tls_clients(&redis)), "{}", k.log());
    // Redis drops a client idle for over a second when its cron gets round to it.
    std::thread::sleep(Duration::from_millis(3_500));
    assert_eq!(tls_clients(&redis), 0);
    calls(&k, 10);
    let cdrs = redis.wait_for("warp:cdr:raw", 20, Duration::from_secs(5));
    assert_eq!(cdrs.len(), 20, "{}", k.log());
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["cdr.sent"].as_str(),
            stats["cdr.redis_errors"].as_str()
        ),
        ("20", "0"),
        "{}",
        k.log()
    );
    let config = k.rpc("warp.config");
    assert_eq!(config["redis_ca"], ca);
    assert_eq!(config["redis_url"], url.replace(PASSWORD, "***"));
    assert!(!k.log().contains(PASSWORD), "{}", k.log());
}

/// A Redis whose certificate is of a CA `redis_ca` does not hold, or not for the URL's
/// host, is sent nothing: the events wait in memory, `cdr.redis_errors` counts, and the
/// log names the certificate's fault.
#[test]
fn cdr_events_wait_for_a_redis_whose_certificate_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("redis");
    let stranger = Pki::make("stranger");
    let redis = Redis::start_tls(dir.path(), &pki, PASSWORD);
    for (host, ca, why) in [
        (
            "127.0.0.1",
            &stranger.ca,
            "TLS handshake with 127.0.0.1 failed: invalid peer certificate: UnknownIssuer",
        ),
        // Its certificate is for the IP address 127.0.0.1 only.
        (
            "localhost",
            &pki.ca,
            "TLS handshake with localhost failed: invalid peer certificate: certificate not valid for name \"localhost\"",
        ),
    ] {
        let k = start_reporting(
            dir.path(),
            &Data::default(),
            &rediss(&redis, host),
            Script::Native(ROUTE),
            &[("redis_ca", ca.to_str().unwrap())],
        );
        calls(&k, 3);
        let deadline = Instant::now() + Duration::from_secs(5);
        while k.rpc("warp.stats")["cdr.redis_errors"] == "0" {
            assert!(Instant::now() < deadline, "no Redis error:\n{}", k.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = k.rpc("warp.stats");
        assert_eq!(
            (stats["cdr.sent"].as_str(), stats["cdr.overflow"].as_str()),
            ("0", "0"),
            "{host}"
        );
        assert!(
            k.log()
                .contains(&format!("Redis not taking CDR events ({why}")),
            "{}",
            k.log()
        );
    }
    assert_eq!(redis.cli(&["XLEN", "warp:cdr:raw"]).trim(), "0");
}

/// The LNP cache read over TLS: an entry another node wrote answers the call.
#[test]
fn the_lnp_cache_answers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("redis");
    let redis = Redis::start_tls(dir.path(), &pki, PASSWORD);
    redis.cli(&["SET", "warp:lnp:2125550009", "3035550000"]);
    let url = rediss(&redis, "127.0.0.1");
    let k = start_reporting(
        dir.path(),
        &Data::default(),
        &url,
        Script::Native(ROUTE),
        &[
            ("redis_ca", pki.ca.to_str().unwrap()),
            ("lrn_source", "snapshot,cache"),
        ],
    );
    let reply = k.request_to("127.0.0.1", "12125550009", "INVITE", "");
    assert_eq!(
        (reply.code, reply.header("X-Warp-LRN")),
        (200, Some("13035550000")),
        "{}",
        k.log()
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["lrn.cache_hits"].as_str(),
            stats["lrn.cache_errors"].as_str()
        ),
        ("1", "0")
    );
}

/// `rediss://` to a Redis that speaks no TLS on that port: the ClientHello gets garbage
/// back, or nothing, and the LNP cache lookup fails within `lrn_timeout` (the call
/// routed on the dialled number), never hangs.
#[test]
fn a_rediss_url_for_a_plain_redis_fails_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let k = start_reporting(
        dir.path(),
        &Data::default(),
        &url,
        Script::Native(ROUTE),
        &[("lrn_source", "snapshot,cache"), ("lrn_timeout", "200")],
    );
    let started = Instant::now();
    let reply = k.request_to("127.0.0.1", "12125550009", "INVITE", "");
    assert_eq!(
        (reply.code, reply.header("X-Warp-LRN")),
        (200, Some("12125550009"))
    );
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(k.rpc("warp.stats")["lrn.cache_errors"], "1");
    assert!(
        k.log()
            .contains("LNP cache unavailable (TLS handshake with 127.0.0.1 failed: "),
        "{}",
        k.log()
    );
    assert_eq!(
        k.rpc("warp.config")["redis_ca"],
        "/etc/ssl/certs/ca-certificates.crt"
    );
}

/// The shipped config reports to a Redis over TLS (`WARP_REDIS_URL` rediss, `REDIS_CA`
/// the CA its certificate chains to). The old config had no `REDIS_CA`: on the system's
/// CAs no event arrived.
#[test]
fn the_shipped_config_reports_to_a_redis_over_tls_whose_ca_redis_ca_names() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make("redis");
    let redis = Redis::start_tls(dir.path(), &pki, PASSWORD);
    let data = Data::with_gateways();
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
    let defines = [format!("REDIS_CA=\"{}\"", pki.ca.display())];
    let k = start_shipped(dir.path(), &data, &rediss(&redis, "127.0.0.1"), &defines);
    let status = Uac::new(k.port, dir.path(), 2, 10).spawn().wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    // start, answer and end of each.
    let cdrs = redis.wait_for("warp:cdr:raw", 6, Duration::from_secs(5));
    assert_eq!(cdrs.len(), 6, "{}", k.log());
    assert_eq!(k.rpc("warp.stats")["cdr.redis_errors"], "0");
}
