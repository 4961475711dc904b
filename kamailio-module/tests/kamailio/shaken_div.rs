//! STIR/SHAKEN for a call a customer forwards (WITH_STIR_SHAKEN; RFC 8946, ATIS-1000085):
//! a PBX that forwards a call it received sends it on with the caller's Identity, over
//! the number first dialled, and a Diversion or History-Info naming that number. The
//! edge, the forwarding party's provider, keeps that Identity as it came and adds a
//! second, a `div` PASSporT from the number first dialled to the one dialled now, which
//! verifies with the edge's certificate.

use super::shaken::{identity_lines, invite_reaching, Signer, ORIG_TN, PAI, X5U};
use super::shaken_fresh::{failed_over_after, FRESH};
use super::{no_redis, start_shipped, Routing};
use crate::support::dataset::Data;
use crate::support::vendor::{Plays, Vendor};
use crate::support::Kamailio;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

/// The number the caller dialled, which the customer's PBX forwarded to [`DIALLED`].
const FIRST_DIALLED: &str = "13035550100";
const DIALLED: &str = "12125550123";

/// The caller's originating carrier's certificate URL.
const THEIR_X5U: &str = "https://cert.upstream.test/sp.pem";

/// The Identity header the caller's originating carrier gave its call to
/// [`FIRST_DIALLED`], signed with `upstream`'s key just now.
fn their_identity(upstream: &Signer) -> String {
    let header = json!({"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": THEIR_X5U});
    let claims = json!({
        "attest": "A",
        "dest": {"tn": [FIRST_DIALLED]},
        "iat": chrono::Utc::now().timestamp(),
        "orig": {"tn": ORIG_TN},
        "origid": "8d4b1c4e-5a1f-4c2b-9a3e-2f6d7c8b9a01",
    });
    let jws = upstream.sign(&header, &claims);
    format!("Identity: {jws};info=<{THEIR_X5U}>;alg=ES256;ppt=shaken")
}

/// A header line's value.
fn value(line: &str) -> &str {
    line.split_once(':').unwrap().1.trim()
}

/// Asserts that `identity`, an Identity header's value, is a div PASSporT the edge
/// signed within 10 s for the call from [`ORIG_TN`] forwarded from [`FIRST_DIALLED`] to
/// `dialled`: header and claims exactly as RFC 8946 4 has them; its iat.
fn assert_div(edge: &Signer, identity: &str, dialled: &str) -> i64 {
    let (token, params) = identity.split_once(';').unwrap();
    assert_eq!(
        params,
        format!("info=<{X5U}>;alg=ES256;ppt=div"),
        "{identity}"
    );
    let json = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{identity}");
    assert_eq!(
        json(parts[0]),
        json!({"alg": "ES256", "ppt": "div", "typ": "passport", "x5u": X5U})
    );
    let mut claims = json(parts[1]);
    let iat = claims["iat"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now - 10..=now).contains(&iat), "iat {iat}, now {now}");
    claims.as_object_mut().unwrap().remove("iat");
    assert_eq!(
        claims,
        json!({
            "dest": {"tn": [dialled]},
            "div": {"tn": FIRST_DIALLED},
            "orig": {"tn": ORIG_TN},
        })
    );
    edge.assert_verifies(token);
    iat
}

/// A signed call the customer forwarded, the number first dialled named by `diverted`
/// (a Diversion or a History-Info header), reaches the vendor with the caller's
/// Identity as it came, then the edge's div PASSporT.
pub(super) fn adds_a_div_passport(diverted: &str) {
    let edge = ForwardingEdge::start();
    let invite = edge.forwarded(&format!("{diverted}\r\n"));
    let lines = identity_lines(&invite);
    assert_eq!(lines.len(), 2, "{invite}");
    assert_eq!(lines[0], edge.theirs);
    assert_div(&edge.signer, value(lines[1]), DIALLED);
    assert!(
        !edge.k.log().contains("signed (STIR/SHAKEN)"),
        "{}",
        edge.k.log()
    );
}

/// The shipped config signing with `signer`'s key, a vendor answering, and the Identity
/// the caller's originating carrier gave its call to [`FIRST_DIALLED`] (another key's).
pub(super) struct ForwardingEdge {
    pub(super) signer: Signer,
    pub(super) k: Kamailio,
    vendor: Vendor,
    pub(super) theirs: String,
    // After the daemons: dropped once they stopped.
    _dir: tempfile::TempDir,
}

impl ForwardingEdge {
    pub(super) fn start() -> ForwardingEdge {
        let (signer, upstream) = (Signer::new(), Signer::new());
        let dir = tempfile::tempdir().unwrap();
        let data = Data::with_gateways();
        let vendor = Vendor::start(data.cheap.0, Plays::Answers);
        let k = start_shipped(dir.path(), &data, &no_redis(), &signer.defines(&[]));
        ForwardingEdge {
            signer,
            k,
            vendor,
            theirs: their_identity(&upstream),
            _dir: dir,
        }
    }

    /// The caller's signed call to [`DIALLED`] with `diverted` (headers, each ending its
    /// line), as it reached the vendor.
    pub(super) fn forwarded(&self, diverted: &str) -> String {
        let headers = format!("{PAI}{}\r\n{diverted}", self.theirs);
        invite_reaching(&self.k, &self.vendor, DIALLED, &headers)
    }
}

/// A Diversion (RFC 5806) names the number first dialled.
#[test]
fn the_shipped_config_adds_a_div_passport_to_a_signed_call_forwarded_with_a_diversion() {
    adds_a_div_passport("Diversion: <sip:+13035550100@pbx>;reason=unconditional");
}

/// A History-Info (RFC 7044) names it, in its first entry, in 10 digits.
#[test]
fn the_shipped_config_adds_a_div_passport_to_a_signed_call_forwarded_with_history_info() {
    adds_a_div_passport(
        "History-Info: <sip:3035550100@pbx;user=phone>;index=1,\
         <sip:+12125550123@127.0.0.1>;index=1.1",
    );
}

/// A signed call with no Diversion, or one naming the number dialled (whatever a
/// History-Info names: the Diversion wins), or another number than the one the caller's
/// PASSporT is for (a verifier would fail that div), reaches the vendor with the
/// caller's Identity alone, as it came.
#[test]
fn the_shipped_config_adds_no_div_passport_unless_a_signed_call_was_forwarded() {
    let edge = ForwardingEdge::start();
    for diverted in [
        "",
        "Diversion: <sip:+12125550123@pbx>;reason=unconditional\r\n",
        "Diversion: <sip:+13035550111@pbx>;reason=unconditional\r\n",
        // Diversion wins over History-Info.
        "Diversion: <sip:+12125550123@pbx>\r\nHistory-Info: <sip:+13035550100@pbx>;index=1\r\n",
    ] {
        let invite = edge.forwarded(diverted);
        assert_eq!(identity_lines(&invite), [edge.theirs.as_str()], "{invite}");
    }
    let log = edge.k.log();
    assert!(!log.contains("STIR div"), "{log}");
    let refused = "no div PASSporT, the caller's Identity is not for 13035550111";
    assert!(log.contains(refused), "{log}");
}

/// An unsigned call the customer forwarded is the edge's to sign as its originating
/// provider: one shaken PASSporT over the number dialled now, no div (RFC 8946's div
/// extends a PASSporT the call came with).
#[test]
fn the_shipped_config_signs_an_unsigned_forwarded_call_as_any_other() {
    let edge = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &edge.defines(&[]));
    let diverted = "Diversion: <sip:+13035550100@pbx>;reason=unconditional\r\n";
    let invite = invite_reaching(&k, &vendor, DIALLED, &format!("{PAI}{diverted}"));
    let lines = identity_lines(&invite);
    assert_eq!(lines.len(), 1, "{invite}");
    edge.assert_signed(value(lines[0]), "B", (ORIG_TN, DIALLED));
}

/// A forwarded call that rang at the first vendor longer than STIR_FRESH and then failed
/// over reaches the second with the caller's Identity as it came and a div PASSporT
/// signed anew, iat after the first's and within STIR_FRESH of its arrival.
#[test]
fn the_shipped_config_signs_a_div_passport_again_on_a_late_failover() {
    signs_a_div_passport_again_when_it_fails_over_late(&Routing::direct());
}

/// As [`the_shipped_config_signs_a_div_passport_again_on_a_late_failover`],
/// for a call dipped in an async worker: over the number dialled, not its LRN.
#[test]
fn the_shipped_config_signs_a_div_passport_again_on_a_late_failover_after_the_dip() {
    signs_a_div_passport_again_when_it_fails_over_late(&Routing::dipped());
}

fn signs_a_div_passport_again_when_it_fails_over_late(routing: &Routing) {
    let (edge, upstream) = (Signer::new(), Signer::new());
    let theirs = their_identity(&upstream);
    let diverted = "Diversion: <sip:+13035550100@pbx>;reason=unconditional";
    let headers = format!("{PAI}{theirs}\r\n{diverted}\r\n");
    let rings = Duration::from_secs(FRESH as u64 + 1);
    let call = failed_over_after(routing, &edge, rings, &headers, || {});
    let dialled = &routing.number()[1..];
    let [first, second] = [&call.first, &call.second].map(|invite| {
        let lines = identity_lines(invite);
        assert_eq!(lines.len(), 2, "{invite}");
        assert_eq!(lines[0], theirs);
        assert_div(&edge, value(lines[1]), dialled)
    });
    assert!(second > first, "iat {first} then {second}");
    assert!(
        call.arrived - second <= FRESH,
        "iat {second}, arrived {}",
        call.arrived
    );
    assert_eq!(call.log.matches("forwarded (STIR div PASSporT)").count(), 2);
}
