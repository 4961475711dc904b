//! STIR/SHAKEN attestation from the DID inventory (WITH_STIR_SHAKEN, STIR_ATTEST "auto"
//! by default): a call whose calling number is one the inventory assigns to the
//! customer of the trunk it came from is attested A (ATIS-1000074 5.2.3: the customer
//! is authenticated and may use the number), any other B; a fixed STIR_ATTEST forces
//! its own. A call signed again on a late failover keeps its first attestation.

use super::shaken::{the_identity, Signer, ORIG_TN, PAI};
use super::shaken_fresh::{failed_over_on, FRESH};
use super::{no_redis, start_shipped, Routing};
use crate::support::dataset::Data;
use crate::support::vendor::{Plays, Vendor};
use crate::support::{Kamailio, Script};
use std::path::Path;
use std::time::Duration;

/// C1's number (the calling number of [`PAI`]) and C2's.
const NUMBERS: &[(&str, &str)] = &[("+17205550199", "C1"), ("+13035550177", "C2")];
const C2_PAI: &str = "P-Asserted-Identity: <sip:+13035550177@127.0.0.1>\r\n";

fn data() -> Data {
    Data {
        numbers: NUMBERS,
        ..Data::with_gateways()
    }
}

/// From trunk T1 (C1's): its own number, written either way, is attested A; the From's
/// 3035550100 (no one's) and C2's number B. From T2 (C2's), C2's number is A.
#[test]
fn the_shipped_config_attests_a_call_from_the_customer_s_own_number_a() {
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &signer.defines(&[]));
    let dnis = "12125550123";
    let calls = [
        ("127.0.0.1", PAI, ORIG_TN, "A"),
        (
            "127.0.0.1",
            "P-Asserted-Identity: <tel:+1-720-555-0199>\r\n",
            ORIG_TN,
            "A",
        ),
        ("127.0.0.1", "", "13035550100", "B"),
        ("127.0.0.1", C2_PAI, "13035550177", "B"),
        ("127.0.0.3", C2_PAI, "13035550177", "A"),
    ];
    for (source, headers, orig, attest) in calls {
        let before = vendor.received("INVITE").len();
        let reply = k.request_to(source, dnis, "INVITE", headers);
        assert_eq!(reply.code, 200, "{}", k.log());
        let invite = vendor.received("INVITE")[before].clone();
        signer.assert_signed(the_identity(&invite), attest, (orig, dnis));
    }
    let line = format!("signed (STIR/SHAKEN): {ORIG_TN} -> {dnis}, attestation A");
    assert_eq!(k.log().matches(&line).count(), 2, "{}", k.log());
}

/// A fixed STIR_ATTEST is every call's, the customer's own number's too.
#[test]
fn the_shipped_config_attests_every_call_as_a_fixed_stir_attest_says() {
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let defines = signer.defines(&["STIR_ATTEST=\"B\""]);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let reply = k.request_to("127.0.0.1", "12125550123", "INVITE", PAI);
    assert_eq!(reply.code, 200, "{}", k.log());
    let invite = vendor.received("INVITE")[0].clone();
    signer.assert_signed(the_identity(&invite), "B", (ORIG_TN, "12125550123"));
}

/// A call from the customer's own number signed again when it fails over late (its
/// Identity STIR_FRESH s old) is attested A again, as at first, though the number left
/// the inventory while it rang: the same call, from the same origination point.
#[test]
fn the_shipped_config_keeps_the_attestation_when_it_signs_a_call_again() {
    for routing in [Routing::direct(), Routing::dipped()] {
        let signer = Signer::new();
        let rings = Duration::from_secs(FRESH as u64 + 1);
        let unassigned = |k: &Kamailio, snapshot: &Path| {
            let without = Data {
                generation: 2,
                ..Data::with_gateways()
            };
            without.publish(snapshot);
            assert_eq!(k.rpc("warp.reload")["generation"], "2");
        };
        let call = failed_over_on(&data(), &routing, &signer, rings, PAI, unassigned);
        let numbers = (ORIG_TN, &routing.number()[1..]);
        let first = signer.assert_signed(the_identity(&call.first), "A", numbers);
        let second = signer.assert_signed(the_identity(&call.second), "A", numbers);
        assert_eq!(second["origid"], first["origid"]);
        assert_eq!(call.log.matches("signed again (STIR/SHAKEN)").count(), 1);
    }
}

/// `$warp(attest)` from a KEMI script, as `KSR.pv.get` reads every pseudo-variable: A
/// for C1's own number from T1 once routed, B for another, and B before routing knew
/// the customer.
#[test]
fn warp_attest_reads_from_kemi() {
    let script = r#"
function ksr_request_route()
    local before = KSR.pv.get("$warp(attest)")
    if KSR.warp.warp_route() < 0 then
        KSR.sl.sl_send_reply(KSR.pv.get("$warp(code)"), KSR.pv.get("$warp(reason)"))
        return
    end
    KSR.hdr.append_to_reply("X-Warp-Attest: " .. before .. "/" .. KSR.pv.get("$warp(attest)") .. "\r\n")
    KSR.sl.sl_send_reply(200, "OK")
end
"#;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    data().publish(&snap);
    let k = Kamailio::start(&[("snapshot", snap.to_str().unwrap())], Script::Lua(script));
    for (headers, attest) in [(PAI, "B/A"), (C2_PAI, "B/B"), ("", "B/B")] {
        let reply = k.request("INVITE", headers);
        assert_eq!(reply.code, 200, "{}", k.log());
        assert_eq!(reply.header("X-Warp-Attest"), Some(attest), "{headers}");
    }
}
