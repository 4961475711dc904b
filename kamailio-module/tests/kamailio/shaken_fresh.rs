//! STIR/SHAKEN on a late failover (WITH_STIR_SHAKEN): verifiers take a PASSporT no older
//! than 60 s (RFC 8224 6.2.1, ATIS-1000074), so a call that rang at a vendor a while and
//! then failed over reaches the next one with the edge's Identity signed anew once it is
//! STIR_FRESH s old ([`FRESH`] here, to keep the tests short), and with the first one
//! before then. A caller's own Identity passes on unaltered however late.

use super::shaken::{identity_lines, the_identity, Signer, ORIG_TN, PAI};
use super::{no_redis, start_shipped, Routing};
use crate::support::dataset::Data;
use crate::support::vendor::{Plays, Vendor};
use crate::support::Kamailio;
use std::path::Path;
use std::time::Duration;

/// STIR_FRESH in these tests, seconds.
pub(super) const FRESH: i64 = 2;

/// A call the first vendor rang, then refused 503, and the second answered.
pub(super) struct FailedOver {
    /// The INVITE each vendor got, the first's and the second's.
    pub(super) first: String,
    pub(super) second: String,
    /// When the second's came (Unix time, s): as the caller got its 200.
    pub(super) arrived: i64,
    pub(super) log: String,
}

/// A call from the trunk, with `headers`, that the first vendor rings for `rings` before
/// it refuses it 503, on the shipped config signing with `signer`'s key, routed so;
/// `meanwhile` runs as it rings.
pub(super) fn failed_over_after(
    routing: &Routing,
    signer: &Signer,
    rings: Duration,
    headers: &str,
    meanwhile: impl FnOnce(),
) -> FailedOver {
    let data = Data::with_gateways();
    failed_over_on(&data, routing, signer, rings, headers, |_, _| meanwhile())
}

/// As [`failed_over_after`], on the snapshot of `data` (which has gateways);
/// `meanwhile` gets the edge and its snapshot's path.
pub(super) fn failed_over_on(
    data: &Data,
    routing: &Routing,
    signer: &Signer,
    rings: Duration,
    headers: &str,
    meanwhile: impl FnOnce(&Kamailio, &Path),
) -> FailedOver {
    let dir = tempfile::tempdir().unwrap();
    let cheap = Vendor::start(data.cheap.0, Plays::RingsThenUnavailable(rings));
    let dear = Vendor::start(data.dear.0, Plays::Answers);
    let fresh = format!("STIR_FRESH={FRESH}");
    let defines = routing.defines(&signer.defines(&[&fresh]));
    let k = start_shipped(dir.path(), data, &no_redis(), &defines);
    let wait = rings + Duration::from_secs(5);
    let number = routing.number();
    let reply = std::thread::scope(|scope| {
        let call = scope.spawn(|| k.request_within(wait, "127.0.0.1", number, "INVITE", headers));
        cheap.wait_for("INVITE", &k);
        meanwhile(&k, &dir.path().join("routing.snap"));
        call.join().unwrap()
    });
    let arrived = chrono::Utc::now().timestamp();
    assert_eq!(reply.map(|r| r.code), Some(200), "{}", k.log());
    routing.took(&k, 1);
    let (first, second) = (cheap.received("INVITE"), dear.received("INVITE"));
    assert_eq!((first.len(), second.len()), (1, 1), "{}", k.log());
    FailedOver {
        first: first[0].clone(),
        second: second[0].clone(),
        arrived,
        log: k.log(),
    }
}

/// A call that rang at the first vendor longer than STIR_FRESH and then failed over
/// reaches the second with one Identity, signed anew: its iat after the first's and
/// within STIR_FRESH of its arrival, the same numbers and origid (the same call, from
/// the same origination point), verifying with the certificate's key.
#[test]
fn the_shipped_config_signs_a_call_again_when_it_fails_over_late() {
    signs_a_call_again_when_it_fails_over_late(&Routing::direct());
}

/// As [`the_shipped_config_signs_a_call_again_when_it_fails_over_late`], for a call
/// dipped in an async worker, whose every branch is made in what is to tm a failure
/// route.
#[test]
fn the_shipped_config_signs_a_call_again_when_it_fails_over_late_after_the_dip() {
    signs_a_call_again_when_it_fails_over_late(&Routing::dipped());
}

fn signs_a_call_again_when_it_fails_over_late(routing: &Routing) {
    let signer = Signer::new();
    let rings = Duration::from_secs(FRESH as u64 + 1);
    let call = failed_over_after(routing, &signer, rings, PAI, || {});
    let numbers = (ORIG_TN, &routing.number()[1..]);
    let first = signer.assert_signed(the_identity(&call.first), "B", numbers);
    let second = signer.assert_signed(the_identity(&call.second), "B", numbers);
    let iat = |claims: &serde_json::Value| claims["iat"].as_i64().unwrap();
    assert!(iat(&second) > iat(&first), "{first} then {second}");
    assert!(
        call.arrived - iat(&second) <= FRESH,
        "{second} arrived at {}",
        call.arrived
    );
    assert_eq!(second["origid"], first["origid"]);
    assert_eq!(call.log.matches("signed (STIR/SHAKEN)").count(), 1);
    assert_eq!(call.log.matches("signed again (STIR/SHAKEN)").count(), 1);
}

/// A call that failed over before its Identity was STIR_FRESH s old reaches the second
/// vendor with the first one: nothing is signed twice for nothing.
#[test]
fn the_shipped_config_keeps_a_fresh_identity_when_a_call_fails_over() {
    let signer = Signer::new();
    let rings = Duration::from_millis(500);
    let call = failed_over_after(&Routing::direct(), &signer, rings, PAI, || {});
    assert_eq!(the_identity(&call.second), the_identity(&call.first));
    assert!(!call.log.contains("signed again"), "{}", call.log);
}

/// A call whose Identity cannot be signed again when it fails over late (its key gone
/// meanwhile) reaches the next vendor unsigned, logged, rather than with the stale one
/// a verifier may refuse the call for (RFC 8224's 403 Stale Date).
#[test]
fn the_shipped_config_sends_a_late_failover_on_unsigned_when_its_key_cannot_sign_again() {
    let signer = Signer::new();
    let rings = Duration::from_secs(FRESH as u64 + 1);
    let lose_key = || std::fs::remove_file(signer.key()).unwrap();
    let call = failed_over_after(&Routing::direct(), &signer, rings, PAI, lose_key);
    assert_eq!(identity_lines(&call.first).len(), 1, "{}", call.first);
    assert_eq!(
        identity_lines(&call.second),
        Vec::<&str>::new(),
        "{}",
        call.second
    );
    let unsigned = "goes on unsigned to DEAR: its Identity is ";
    let why = "s old, and STIR_KEY did not sign again (libsecsipid -";
    assert!(
        call.log.contains(unsigned) && call.log.contains(why),
        "{}",
        call.log
    );
}

/// A call that came signed by its originating carrier reaches the second vendor, however
/// long the first rang, with that Identity alone, as it came: the edge signs nothing.
#[test]
fn the_shipped_config_passes_a_callers_identity_on_unaltered_when_it_fails_over_late() {
    let theirs = "Identity: eyJhbGciOiJFUzI1NiIsInBwdCI6InNoYWtlbiIsInR5cCI6InBhc3Nwb3J0In0.\
                  eyJhdHRlc3QiOiJBIiwiaWF0IjoxfQ.c2lnbmVkIGJ5IGFub3RoZXIgY2Fycmllcg\
                  ;info=<https://cert.example.org/sp.pem>;alg=ES256;ppt=shaken";
    let signer = Signer::new();
    let rings = Duration::from_secs(FRESH as u64 + 1);
    let headers = format!("{PAI}{theirs}\r\n");
    let call = failed_over_after(&Routing::direct(), &signer, rings, &headers, || {});
    assert_eq!(identity_lines(&call.first), [theirs], "{}", call.first);
    assert_eq!(identity_lines(&call.second), [theirs], "{}", call.second);
    assert!(!call.log.contains("(STIR/SHAKEN)"), "{}", call.log);
}
