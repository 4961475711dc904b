//! A PBX's RFC 3966 local number in a sip: R-URI without `user=phone` (Cisco CUCM,
//! Asterisk dialplans, Teams Direct Routing SBCs send `sip:2125550123;phone-context=+1@
//! edge`): Kamailio's parser leaves the parameters in the user part, and the call is
//! routed as the number in its phone-context, as for `user=phone` or a tel: URI. And
//! `warp_e164()`, which reads any number as warp reads a dialled one.

use super::shaken_div::adds_a_div_passport;
use super::{start_on_test_data, start_shipped};
use crate::support::dataset::Data;
use crate::support::redis::Redis;
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw, InDialog};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{Kamailio, Script};
use std::time::Duration;

/// The same number as a global number and as local numbers a PBX sends, with the
/// telephone-subscriber parameters RFC 3966 lets it carry: each a call to +1 212 555 0123.
const SAME_NUMBER: [&str; 6] = [
    "+12125550123",
    "2125550123;phone-context=+1",
    "555-0123;phone-context=+1-212",
    "2125550123;isub=1234;phone-context=+1",
    "2125550123;ext=22;phone-context=+1",
    "2125550123;npdi;rn=+13035550000;phone-context=+1",
];

/// Each of [`SAME_NUMBER`], sent without `user=phone` to the shipped config, reaches the
/// cheapest vendor with the same R-URI as when dialled as +12125550123, and its CDR's
/// dnis is the E.164 number.
#[test]
fn the_shipped_config_routes_a_local_number_in_its_phone_context_without_user_phone() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    // One pair of numbers called again and again: no hairpin loop here.
    let k = start_shipped(dir.path(), &data, &redis.url(), &["LOOP_LIMIT=0".into()]);
    let (sock, lport) = raw_socket();
    let calls: Vec<String> = (0..SAME_NUMBER.len()).map(|i| format!("pc{i}")).collect();
    for (user, call) in SAME_NUMBER.iter().zip(&calls) {
        let invite = raw_request(k.port, lport, "INVITE", user, call);
        InDialog::answered(&sock, &k, lport, (call, data.cheap.0), &invite);
    }
    let invites = vendor.received("INVITE");
    let request_lines: Vec<&str> = invites.iter().filter_map(|i| i.lines().next()).collect();
    let routed = format!("INVITE sip:+12125550123@127.0.0.1:{} SIP/2.0", data.cheap.0);
    assert_eq!(
        request_lines,
        vec![routed.as_str(); SAME_NUMBER.len()],
        "{}",
        k.log()
    );
    let cdrs = redis.wait_for("warp:cdr:raw", 2 * calls.len(), Duration::from_secs(5));
    for call in &calls {
        let call_id = format!("{call}-{lport}");
        let start = cdrs
            .iter()
            .find(|c| c["event"] == "start" && c["call_id"] == call_id.as_str())
            .unwrap_or_else(|| panic!("no start event for {call_id}: {cdrs:#?}"));
        assert_eq!(start["dnis"], "12125550123", "{start:#?}");
    }
}

/// The code the test data's routing script answers a call to `user` (sent as it is,
/// without `user=phone`) with, and the R-URI it routed it to.
fn routed(k: &Kamailio, user: &str) -> (u16, Option<String>, Option<String>) {
    let (sock, lport) = raw_socket();
    let call = format!("local{lport}");
    send_raw(&sock, k, &raw_request(k.port, lport, "INVITE", user, &call));
    let reply = final_reply(&sock, k, &call);
    let header = |name| reply.header(name).map(str::to_owned);
    (reply.code, header("X-Warp-RURI"), header("X-Warp-Why"))
}

/// A phone-context that is a domain name names no digits: the number is read as
/// written (here a NANP number); +44's is +44 20 7946 0000, which C1 has no route for
/// (not New Jersey's 207-946-0000); a user part that is no number is refused 484 in
/// any context.
#[test]
fn a_local_number_in_a_domain_or_foreign_context_and_junk_in_any() {
    let (_data, k) = start_on_test_data(Script::Native(super::ROUTE));
    let cheapest = Some("sip:+12125550123@127.0.0.1:5090".to_owned());
    let (code, ruri, why) = routed(&k, "2125550123;phone-context=example.com");
    assert_eq!((code, ruri), (200, cheapest), "{why:?}\n{}", k.log());
    let (code, _, why) = routed(&k, "2079460000;phone-context=+44");
    assert_eq!(code, 404, "{why:?}\n{}", k.log());
    let (code, _, why) = routed(&k, "abc;phone-context=+1");
    assert_eq!(
        (code, why.as_deref()),
        (
            484,
            Some("invalid dialled number: invalid character 'a' in number")
        ),
        "{}",
        k.log()
    );
}

/// Numbers as headers write them, each with the E.164 digits warp reads it as, or
/// `None` for one that is no telephone number.
const WRITTEN: [(&str, Option<&str>); 7] = [
    ("tel:+44 20 7946 0000", Some("442079460000")),
    ("+44 (0) 20 7946 0000", Some("442079460000")),
    (
        "sip:2125550123;phone-context=+1@pbx.example",
        Some("12125550123"),
    ),
    (
        "<sip:5550100;phone-context=+1-303@pbx.example;user=phone>",
        Some("13035550100"),
    ),
    ("3035550100", Some("13035550100")),
    ("sip:alice@pbx.example", None),
    ("12345", None),
];

/// kamailio.cfg's `warp_e164(number, out)`: 1 with the number in E.164 digits in `out`,
/// -1 (`out` untouched) for no number.
#[test]
fn warp_e164_writes_a_number_in_e164_digits_from_kamailio_cfg() {
    let script = r#"
    $var(e164) = "untouched";
    $var(rc) = warp_e164("$hdr(X-Number)", "$var(e164)");
    append_to_reply("X-RC: $var(rc)\r\nX-E164: $var(e164)\r\n");
    sl_send_reply("200", "OK");
"#;
    let k = Kamailio::start(&[], Script::Native(script));
    assert_writes_e164(&k);
    assert_eq!(k.rpc("warp.stats")["warp_e164.calls"], "7");
}

/// KEMI's `KSR.warp.warp_e164(number, "$var(out)")`, as kamailio.cfg's.
#[test]
fn warp_e164_writes_a_number_in_e164_digits_from_kemi() {
    let script = r#"
function ksr_request_route()
    KSR.pv.sets("$var(e164)", "untouched")
    local rc = KSR.warp.warp_e164(KSR.hdr.get("X-Number"), "$var(e164)")
    KSR.hdr.append_to_reply("X-RC: " .. rc .. "\r\nX-E164: " .. KSR.pv.get("$var(e164)") .. "\r\n")
    KSR.sl.sl_send_reply(200, "OK")
end
"#;
    let k = Kamailio::start(&[], Script::Lua(script));
    assert_writes_e164(&k);
}

fn assert_writes_e164(k: &Kamailio) {
    for (number, e164) in WRITTEN {
        let reply = k.request("INVITE", &format!("X-Number: {number}\r\n"));
        let expected = match e164 {
            Some(digits) => (Some("1"), Some(digits)),
            None => (Some("-1"), Some("untouched")),
        };
        assert_eq!(
            (reply.header("X-RC"), reply.header("X-E164")),
            expected,
            "{number}\n{}",
            k.log()
        );
    }
}

/// An output the script cannot write is refused when Kamailio reads the config, not
/// at the first call.
#[test]
fn warp_e164_into_a_read_only_pseudo_variable_is_refused_at_start_up() {
    let script = r#"
    warp_e164("$hdr(X-Number)", "$si");
    sl_send_reply("200", "OK");
"#;
    let log = Kamailio::refused(&[], Script::Native(script));
    assert!(
        log.contains("warp_e164(): the second parameter must be a pseudo-variable it can write"),
        "{log}"
    );
}

/// A signed call forwarded by a PBX whose Diversion names the number first dialled as a
/// local number in its phone-context (`5550100` in `+1-303`'s, 13035550100): the edge
/// adds its div PASSporT, as for a Diversion naming +13035550100.
#[test]
fn the_shipped_config_adds_a_div_passport_for_a_diversion_naming_a_local_number() {
    adds_a_div_passport(
        "Diversion: <sip:5550100;phone-context=+1-303@pbx.example>;reason=unconditional",
    );
}
