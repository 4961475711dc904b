//! The shipped config's WITH_PROMETHEUS: Kamailio's statistics, warp's among them, over
//! HTTP on the edge's TCP socket (xhttp, xhttp_prom), next to SIP.

use super::tcp::{over, takes_calls_from_a_stream_customer, DIALLED};
use super::{no_redis, start_shipped, warp_stats_named};
use crate::support::tcp::SipStream;
use crate::support::udp::raw_request;
use crate::support::vendor::{Plays, Vendor};
use crate::support::{dataset::Data, Kamailio, Reply};
use std::collections::BTreeMap;
use std::time::Duration;

/// An HTTP GET of `path` as Prometheus sends it (no Content-Length), over a new TCP
/// connection from the loopback address `source` to the edge's SIP socket.
fn get(k: &Kamailio, source: &str, path: &str) -> Reply {
    let mut http = SipStream::connect_from(source, k.port);
    http.send(&format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: Prometheus/2.45.0\r\n\
         Accept: text/plain\r\n\r\n",
        k.port
    ));
    let text = http
        .next()
        .unwrap_or_else(|e| panic!("no HTTP reply to GET {path} ({e}):\n{}", k.log()));
    Reply::parse(&text)
}

/// The samples of a Prometheus text body: metric name → value (its timestamp left out).
fn samples(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .collect()
}

/// WITH_PROMETHEUS: a scrape of /metrics from an address PROM_ALLOW lists gets every
/// counter of `warp.stats` (CDR ones aside, which Redis's absence moves meanwhile) as
/// `kamailio_warp_<name>`, with its value, after two calls over TCP; another address
/// gets 403, another path 404. SIP over TCP goes on as before, a request without
/// Content-Length still closing its connection unanswered. The old config served no
/// HTTP at all (the GET went unanswered).
#[test]
fn the_shipped_config_with_prometheus_serves_warps_counters_at_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let defines = [
        "WITH_PROMETHEUS=1".to_string(),
        "PROM_ALLOW=\"10.9.9.9/32,127.0.0.1/32\"".to_string(),
    ];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let mut caller = SipStream::connect(k.port);
    takes_calls_from_a_stream_customer(&k, &vendor, "tcp", &mut caller, || {});
    let mut unframed = SipStream::connect(k.port);
    let invite = over(
        "tcp",
        &raw_request(k.port, unframed.local_port(), "INVITE", DIALLED, "nolen"),
    )
    .replace("Content-Length: 0\r\n", "");
    unframed.send(&invite);
    assert!(
        unframed.closed_within(Duration::from_secs(3)),
        "{}",
        k.log()
    );

    let metrics = get(&k, "127.0.0.1", "/metrics");
    assert_eq!(metrics.code, 200, "{metrics:?}\n{}", k.log());
    let scraped = samples(&metrics.body);
    let warp: BTreeMap<String, String> = scraped
        .into_iter()
        .filter(|(name, _)| name.starts_with("kamailio_warp_"))
        .filter(|(name, _)| !name.starts_with("kamailio_warp_cdr_"))
        .collect();
    let expected: BTreeMap<String, String> =
        warp_stats_named(&k.rpc("warp.stats"), "kamailio_warp_")
            .into_iter()
            .filter(|(name, _)| !name.starts_with("kamailio_warp_cdr_"))
            .collect();
    assert_eq!(warp, expected, "{}", metrics.body);
    assert_eq!(warp["kamailio_warp_warp_route_calls"], "2");
    assert_eq!(warp["kamailio_warp_snapshot_generation"], "1");
    assert_eq!(warp["kamailio_warp_limits_active"], "0");
    // The other modules' statistics come along (xhttp_prom_stats "all").
    assert!(
        metrics.body.contains("\nkamailio_core_rcv_requests "),
        "{}",
        metrics.body
    );

    let stranger = get(&k, "127.0.0.2", "/metrics");
    assert_eq!(stranger.code, 403, "{stranger:?}");
    assert!(!stranger.body.contains("kamailio_"), "{}", stranger.body);
    assert_eq!(get(&k, "127.0.0.1", "/").code, 404);
    assert_eq!(get(&k, "127.0.0.1", "/metrics/more").code, 404);
    assert_eq!(get(&k, "127.0.0.2", "/other").code, 403);
}
