//! warp.so's parameters: `warp.config` reports them as they took effect (secrets masked),
//! and a configuration that could not work is refused at start-up with the reason.

use super::ANI_ROUTE;
use crate::support::{Kamailio, Script};

#[test]
fn config_rpc_reports_effective_parameters_with_secrets_masked() {
    let params = [
        ("snapshot", "/srv/warp/routing.snap"),
        ("redis_url", "redis://warp:s3cret@127.0.0.1:6390/0"),
        ("lrn_source", "snapshot,cache,dip"),
        ("lrn_dip_url", "http://127.0.0.1:9/telique"),
        ("lrn_dip_token", "t0psecret"),
        // Read only for an https URL: a missing file does not stop this one.
        ("lrn_dip_ca", "/nowhere/ca.pem"),
        ("cdr_stream", "warp:cdr:test"),
        // Read only for a rediss URL.
        ("redis_ca", "/nowhere/redis-ca.pem"),
    ];
    let k = Kamailio::start(&params, Script::Native(ANI_ROUTE));
    let config = k.rpc("warp.config");
    assert_eq!(config["snapshot"], "/srv/warp/routing.snap");
    assert_eq!(config["redis_url"], "redis://warp:***@127.0.0.1:6390/0");
    assert_eq!(config["lrn_source"], "snapshot,cache,dip");
    assert_eq!(config["cdr_stream"], "warp:cdr:test");
    assert_eq!(config["fallback_code"], "503");
    assert_eq!(config["cluster_timeout"], "20");
    assert_eq!(config["lrn_dip_url"], "http://127.0.0.1:9/telique");
    assert_eq!(config["lrn_dip_token"], "***");
    assert_eq!(config["lrn_dip_ca"], "/nowhere/ca.pem");
    assert_eq!(config["redis_ca"], "/nowhere/redis-ca.pem");
    assert!(!k.log().contains("s3cret") && !k.log().contains("t0psecret"));
}

#[test]
fn bad_configuration_is_refused_at_startup() {
    let log = Kamailio::refused(
        &[],
        Script::Native("append_to_reply(\"X: $warp(bogus)\\r\\n\");"),
    );
    assert!(
        log.contains("unknown pseudo-variable $warp(bogus)"),
        "{log}"
    );
    let log = Kamailio::refused(&[], Script::Native("warp_dip_async(\"NOWHERE\");"));
    assert!(
        log.contains("warp_dip_async(): no route[NOWHERE] to resume the call in"),
        "{log}"
    );
    let log = Kamailio::refused(&[], Script::Native("warp_emergency(\"911 at the PSAP\");"));
    assert!(
        log.contains(r#"warp_emergency(): emergency destination "911 at the PSAP""#),
        "{log}"
    );
    let cases: [(&[(&str, &str)], &str); 23] = [
        (
            &[("fallback_code", "200")],
            "fallback_code 200 is not a SIP final failure code",
        ),
        // sl reads the byte before a reason phrase: an empty one crashed the worker
        // that sent a caught panic's fallback reply, and Kamailio with it.
        (
            &[("fallback_reason", "")],
            "fallback_reason must not be empty",
        ),
        // kamailio.cfg's escapes: a line break would add headers to every fallback reply.
        (
            &[("fallback_reason", r"Busy\r\nX-Injected: 1")],
            "fallback_reason must not contain a line break",
        ),
        // A token read with its trailing newline would end the dip's headers early.
        (
            &[
                ("lrn_dip_url", "http://127.0.0.1:9/lrn"),
                ("lrn_dip_token", r"s3cret\n"),
            ],
            "lrn_dip_token must not contain a line break",
        ),
        (
            &[("fallback_reason", r"Occup\xe9")],
            "fallback_reason is not UTF-8",
        ),
        // A misspelt fault point would never fire.
        (
            &[("fault_inject", "warp_rout")],
            "fault_inject \"warp_rout\" is no fault point (warp_ani, ",
        ),
        (
            &[("lrn_source", "snapshot,oracle")],
            "unknown lrn_source \"oracle\"",
        ),
        (
            &[("lrn_source", "snapshot,dip")],
            "lrn_source lists dip but lrn_dip_url is not set",
        ),
        // An https upstream's trust is read at start-up: a file missing, or holding no
        // CA certificate, fails it.
        (
            &[
                ("lrn_dip_url", "https://127.0.0.1:9/lrn"),
                ("lrn_dip_ca", "/nowhere/ca.pem"),
            ],
            "lrn_dip_url: its server cannot be checked: lrn_dip_ca /nowhere/ca.pem: I/O error: No such file or directory",
        ),
        (
            &[
                ("lrn_dip_url", "https://127.0.0.1:9/lrn"),
                ("lrn_dip_ca", "/etc/hostname"),
            ],
            "lrn_dip_ca /etc/hostname: no CA certificate in it",
        ),
        // Resolved at start-up, so no SIP worker ever waits on the resolver.
        (
            &[("lrn_dip_url", "http://no-such-host.invalid:8080/lrn")],
            "lrn_dip_url: cannot resolve \"no-such-host.invalid\"",
        ),
        // Redis too; and a bad URL's password is not logged (below).
        (
            &[
                ("lrn_source", "snapshot,cache"),
                ("redis_url", "redis://no-such-host.invalid:6379"),
            ],
            "cannot resolve \"no-such-host.invalid\"",
        ),
        (
            &[
                ("lrn_source", "snapshot,cache"),
                ("redis_url", "redis://:s3cret@127.0.0.1:63x79"),
            ],
            "redis://:***@127.0.0.1:63x79",
        ),
        // A rediss server's trust is read at start-up too, the password still masked.
        (
            &[
                ("lrn_source", "snapshot,cache"),
                ("redis_url", "rediss://:s3cret@127.0.0.1:6380"),
                ("redis_ca", "/nowhere/ca.pem"),
            ],
            "redis_url \"rediss://:***@127.0.0.1:6380\": its server cannot be checked: redis_ca /nowhere/ca.pem: I/O error: No such file or directory",
        ),
        (
            &[
                ("lrn_source", "snapshot,cache"),
                ("redis_url", "rediss://127.0.0.1"),
                ("redis_ca", "/etc/hostname"),
            ],
            "redis_ca /etc/hostname: no CA certificate in it",
        ),
        // A scheme mistyped: the password is still not logged.
        (
            &[
                ("lrn_source", "snapshot,cache"),
                ("redis_url", "redis:/:s3cret@127.0.0.1:6379"),
            ],
            "***@127.0.0.1:6379\" is not redis://",
        ),
        (
            &[("cluster_timeout", "0")],
            "cluster_timeout 0 must be positive",
        ),
        (
            &[("reload_check", "-1")],
            "reload_check -1 must be from 0 (off) to 3600 seconds",
        ),
        (
            &[("gateway_silences", "-1")],
            "gateway_silences -1 must be 0 (off) or more",
        ),
        (
            &[("gateway_down_time", "0")],
            "gateway_down_time 0 must be positive",
        ),
        (
            &[("gateway_probe_interval", "-5")],
            "gateway_probe_interval -5 must be 0 (off) or more",
        ),
        // A spool that could take no event fails the start, not the first Redis outage.
        (
            &[
                ("cdr_stream", "warp:cdr:raw"),
                ("cdr_spool", "/etc/hostname/spool"),
            ],
            "cdr_spool /etc/hostname/spool: Not a directory",
        ),
        // Each process reserves its whole queue on its first event: 2^31 events would
        // abort the first SIP worker that reports one.
        (
            &[("cdr_buffer", "2147483647")],
            "cdr_buffer 2147483647 must be from 1 to 1000000",
        ),
    ];
    for (params, why) in cases {
        let log = Kamailio::refused(params, Script::Native(ANI_ROUTE));
        assert!(log.contains(why), "{log}");
        assert!(!log.contains("s3cret"), "{log}");
    }
}
