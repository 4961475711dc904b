//! Hairpin loops on the shipped config (route[HAIRPIN]): a vendor, or a carrier behind
//! it, places the edge's call again as a new call — a B2BUA's new Call-ID, no Via of
//! the edge's — that comes back through a customer trunk. The edge counts each pair of
//! numbers' calls in a row and refuses the one past LOOP_LIMIT with 482.

use super::{holds_no_call, no_redis, start_shipped, DmqEdges};
use crate::support::b2bua::{B2bua, Loop};
use crate::support::dataset::Data;
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{self, Kamailio};
use std::time::{Duration, Instant};

/// The define for a test whose calls are one pair of numbers over and over, as load
/// (sipp's calls, a trunk's burst): route[HAIRPIN] would refuse them as a loop.
pub(crate) const NO_HAIRPIN_CHECK: &str = "LOOP_LIMIT=0";

/// The shipped LOOP_LIMIT and LOOP_WINDOW.
const LOOP_LIMIT: usize = 5;
const LOOP_WINDOW: Duration = Duration::from_secs(3);
/// The caller of every call here, as sipp's calls name it too.
const CALLER: &str = "P-Asserted-Identity: <sip:+17205550199@127.0.0.1>\r\n";
/// The number the B2BUA routes back to the edge, as the caller dials it and as the
/// edge's dialstring gives it to the vendor.
const LOOPED: (&str, &str) = ("12125550777", "+12125550777");
/// That pair as the edge counts it (E.164, in `htable.dump hairpin`).
const PAIR: &str = "17205550199->12125550777";
/// T2's address, where the B2BUA places its calls from.
const T2: &str = "127.0.0.3";
/// A hop of the loop: the B2BUA places the call again this long after it came.
const HOP: Duration = Duration::from_millis(100);

/// A vendor that places a call to [`LOOPED`] again as a new call (new Call-ID, no Via
/// of the edge's) from T2's address is stopped: the call started by the caller ends
/// with 482 after LOOP_LIMIT INVITEs reached the vendor, not one per hop until a timer
/// ends it; every leg gets its final reply (the refused call's 482, relayed back hop by
/// hop), the refusal is logged once with the pair, trunk and count, the refused call
/// leaves no CDR event (as any call refused before routing), and no dialog or trunk
/// place is left held. The caller's call to another number, up meanwhile, completes.
#[test]
fn the_shipped_config_stops_a_call_a_vendor_places_again_through_a_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = only_cheap();
    let k = start_shipped(dir.path(), &data, &redis.url(), &[]);
    let b2bua = B2bua::start(data.cheap.0, looping(vec![k.port]));
    // The other call: the same caller to 12125550123, answered by the B2BUA and held
    // for 2 s, its INVITE in before the looped one.
    let mut other = Uac {
        hold_ms: 2000,
        ..Uac::new(k.port, dir.path(), 1, 1)
    }
    .spawn();
    wait_until(&k, "the other call's INVITE", || {
        !b2bua.invites().is_empty()
    });

    let looped = k.request_to("127.0.0.1", LOOPED.0, "INVITE", CALLER);
    assert_eq!(looped.code, 482, "{}", k.log());
    let to_vendor = looped_invites(&b2bua);
    assert_eq!(to_vendor, LOOP_LIMIT, "{}", k.log());
    // Each call the B2BUA placed got a final reply: the last one the edge's own 482.
    let finals = b2bua.finals();
    assert_eq!(finals.len(), LOOP_LIMIT, "{finals:?}\n{}", k.log());
    assert!(finals.iter().all(|(_, code)| *code == 482), "{finals:?}");
    let (refused, _) = &finals[0];
    let line = format!(
        "{refused} from {T2} refused: 482 Loop Detected (hairpin: {PAIR} called {} times in \
         a row, this time from trunk T2)",
        LOOP_LIMIT + 1
    );
    let log = k.log();
    assert_eq!(log.matches(&line).count(), 1, "{log}");
    assert_eq!(log.matches("(hairpin: ").count(), 1, "{log}");
    let counted = k.kamcmd(&["htable.dump", "hairpin"]).unwrap();
    assert!(
        counted.contains(&format!("name: {PAIR}"))
            && counted.contains(&format!("value: {}", LOOP_LIMIT + 1)),
        "{counted}"
    );
    assert!(other.wait().unwrap().success(), "{}", k.log());
    holds_no_call(&k);
    // Every leg the edge routed started a CDR; the refused one none.
    let cdrs = redis.wait_for("warp:cdr:raw", 2 * LOOP_LIMIT, Duration::from_secs(5));
    let started: Vec<&str> = cdrs
        .iter()
        .filter(|c| c["event"] == "start" && c["dnis"] == PAIR.split("->").nth(1).unwrap())
        .filter_map(|c| c["call_id"].as_str())
        .collect();
    assert_eq!(started.len(), LOOP_LIMIT, "{cdrs:#?}");
    assert!(!started.contains(&refused.as_str()), "{cdrs:#?}");
}

/// A pair called LOOP_LIMIT times in a row, as a person redialling or a dialer does (no
/// loop: sipp, each call answered and ended), completes every call; one more at once
/// is refused; once LOOP_WINDOW has passed without a call of the pair, it starts a new
/// row and LOOP_LIMIT calls complete again.
#[test]
fn the_shipped_config_completes_a_pair_called_loop_limit_times_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let in_a_row = || Uac::new(k.port, dir.path(), LOOP_LIMIT as u32, 10).spawn();
    let status = in_a_row().wait().unwrap();
    assert!(status.success(), "{}", k.log());
    // sipp's pair: its caller, its dialled number.
    let one_more = k.request_to("127.0.0.1", "12125550123", "INVITE", CALLER);
    assert_eq!(one_more.code, 482, "{}", k.log());
    std::thread::sleep(LOOP_WINDOW + Duration::from_millis(1500));
    let status = in_a_row().wait().unwrap();
    assert!(status.success(), "{}", k.log());
}

/// The pair is the numbers warp reads, in E.164: a calling number written
/// `+13035550100`, `13035550100`, `3035550100`, as a tel: URI with separators or in a
/// phone-context, and a dialled number written as many ways, are one pair, and its
/// call past LOOP_LIMIT is refused whatever its format.
#[test]
fn the_shipped_config_counts_a_pair_whatever_format_its_numbers_come_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _cheap = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let formats = [
        ("<sip:+13035550100@127.0.0.1>", "+12125550123"),
        ("<sip:13035550100@127.0.0.1>", "12125550123"),
        ("<sip:3035550100@127.0.0.1>", "2125550123"),
        ("<tel:+1-303-555-0100>", "+1-212-555-0123"),
        ("<tel:303-555-0100;phone-context=+1>", "(212)555-0123"),
        ("<sip:303.555.0100@127.0.0.1;user=phone>", "01112125550123"),
    ];
    assert_eq!(formats.len(), LOOP_LIMIT + 1);
    let codes: Vec<u16> = formats
        .iter()
        .map(|(ani, dnis)| {
            let caller = format!("P-Asserted-Identity: {ani}\r\n");
            k.request_to("127.0.0.1", dnis, "INVITE", &caller).code
        })
        .collect();
    assert_eq!(codes, [200, 200, 200, 200, 200, 482], "{}", k.log());
    let line = "refused: 482 Loop Detected (hairpin: 13035550100->12125550123 called 6 times";
    assert!(k.log().contains(line), "{}", k.log());
}

/// A call whose calling number is none (anonymous) is not counted: more than
/// LOOP_LIMIT of them to one number are all routed, and the table holds nothing.
#[test]
fn the_shipped_config_counts_no_call_without_a_calling_number() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let _cheap = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let (sock, lport) = raw_socket();
    for n in 0..=LOOP_LIMIT {
        let call = format!("anonymous{n}");
        let invite = raw_request(k.port, lport, "INVITE", "12125550123", &call).replace(
            "From: <sip:3035550100@127.0.0.1>",
            "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>",
        );
        send_raw(&sock, &k, &invite);
        assert_eq!(final_reply(&sock, &k, &call).code, 200, "{}", k.log());
    }
    let counted = k.kamcmd(&["htable.dump", "hairpin"]).unwrap();
    assert!(!counted.contains("name:"), "{counted}");
}

/// DMQ_ADDRESS (without WITH_ANTIFLOOD) shares the counts: a B2BUA that places each
/// call again through the other edge is stopped after LOOP_LIMIT INVITEs in all, not
/// LOOP_LIMIT through each edge.
#[test]
fn the_shipped_config_stops_a_hairpin_through_two_edges() {
    let data = only_cheap();
    let edges = DmqEdges::start(&data, &[]);
    let (a, b) = (&edges.a, &edges.b);
    let b2bua = B2bua::start(data.cheap.0, looping(vec![a.port, b.port]));
    let looped = a.request_to("127.0.0.1", LOOPED.0, "INVITE", CALLER);
    assert_eq!(looped.code, 482, "{}\n{}", a.log(), b.log());
    assert_eq!(
        looped_invites(&b2bua),
        LOOP_LIMIT,
        "{}\n{}",
        a.log(),
        b.log()
    );
    // The sixth call of the pair came to B (A took the first, third and fifth).
    let line = format!("(hairpin: {PAIR} called 6 times in a row, this time from trunk T2)");
    assert!(b.log().contains(&line), "{}", b.log());
    holds_no_call(a);
    holds_no_call(b);
}

/// The dataset with DEAR's gateway one the edge cannot send to (it serves no SCTP):
/// CHEAP is each call's only vendor, as for a number whose only route loops.
fn only_cheap() -> Data {
    Data {
        uri_params: ("", ";transport=sctp"),
        ..Data::with_gateways()
    }
}

/// The B2BUA's loop: [`LOOPED`]'s calls placed again from T2, through `edges`.
fn looping(edges: Vec<u16>) -> Loop {
    Loop {
        edges,
        source: T2,
        number: LOOPED.1,
        hop: HOP,
    }
}

/// The INVITEs for the looped number the B2BUA received.
fn looped_invites(b2bua: &B2bua) -> usize {
    let uri = format!("INVITE sip:{}@", LOOPED.1);
    b2bua
        .invites()
        .iter()
        .filter(|i| i.starts_with(&uri))
        .count()
}

/// Waits up to 10 s for `done`.
fn wait_until(k: &Kamailio, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "no {what}:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
