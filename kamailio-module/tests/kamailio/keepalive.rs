//! Calls whose BYE never comes, on the shipped config: the dialog module's keepalives (an
//! OPTIONS inside the call to each side every DLG_KEEPALIVE s) end a call one side has
//! forgotten or vanished from, as its dialog timeout would hours later, and leave a call
//! whose sides both answer up.

use super::{
    event_kinds, events_of, holds_no_call, millis, rtpengine_defines, start_shipped, wait_for_stat,
    with_topoh, Routing,
};
use crate::support::rtpengine::wait_for_no_media_sessions;
use crate::support::tcp::{Carrier, SipStream};
use crate::support::udp::{
    behind_nat, final_reply, header_of, raw_invite_with_sdp, raw_request, raw_socket, reply_to,
    send_raw, InDialog,
};
use crate::support::{self, Kamailio};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Keepalives as often as Kamailio allows, a call ended at its side's first failure.
pub(super) fn keepalive_defines() -> Vec<String> {
    vec!["DLG_KEEPALIVE=30".into(), "DLG_KEEPALIVE_FAILS=1".into()]
}

/// A vendor's switch that restarted answers the OPTIONS inside a call it lost 481: the
/// call is ended 10 s after (one failure, DLG_KEEPALIVE_FAILS=1 here) as a timed-out
/// call is, both sides told with a BYE, its `end` event written, its trunk place, its
/// dialog and its media session gone. With WITH_TOPOH: the vendor's keepalive carries
/// the Call-ID the vendor knows the call by (masked), as its INVITE did.
#[test]
fn the_shipped_config_ends_a_call_the_vendor_forgot() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let rtpengine = support::rtpengine::Rtpengine::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::ForgetsCalls);
    let mut defines = keepalive_defines();
    defines.extend(rtpengine_defines(&rtpengine));
    defines.extend(with_topoh());
    let k = start_shipped(dir.path(), &data, &redis.url(), &defines);
    let (sock, lport) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, lport, "+12125550123", "forgot");
    InDialog::answered(&sock, &k, lport, ("forgot", data.cheap.0), &invite);
    let answered = Instant::now();
    wait_for_stat(&k, "limits.active", "1");

    // The caller answers its own keepalives: the call ends for the vendor's 481.
    ended_for_the_vendors_481(&sock, &k, answered, "the answer");
    let masked = header_of(&vendor.received("INVITE")[0], "Call-ID");
    let options = vendor.received("OPTIONS");
    assert!(!options.is_empty(), "{}", k.log());
    assert!(options.iter().all(|o| header_of(o, "Call-ID") == masked));
    assert!(!masked.starts_with("forgot-"), "not masked: {masked}");
    vendor.wait_for("BYE", &k);
    holds_no_call(&k);
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(5));
    let events = events_of(&cdrs, "forgot", lport);
    let kinds: Vec<&str> = events.iter().map(|(kind, ..)| kind.as_str()).collect();
    assert_eq!(kinds, ["start", "answer", "end"], "{cdrs:#?}");
    assert_eq!(events[2].3, Some(200), "{cdrs:#?}");
    let end = cdrs.iter().find(|c| c["event"] == "end").unwrap();
    let lasted = millis(end, "end") - millis(end, "answer");
    assert!((35_000..50_000).contains(&lasted), "{end}");
    wait_for_no_media_sessions(&rtpengine, &k);
}

/// Two callers behind NAT (their Contacts name a private address): one answers its
/// keepalives at the address its requests come from, with the 405 of a PBX that takes no
/// OPTIONS, the vendor its own with 200, and its call stays up past two intervals until
/// it hangs up, one `end` event; the other vanished and answers nothing, and its call
/// is ended after its keepalive timed out (tm's 32 s, then 10 s), the vendor told.
/// Both calls dipped (WITH_LRN_DIP): their dialogs, and the keepalives asked for them,
/// are made in the async worker's resumed route (the calls routed in the SIP worker are
/// [`the_shipped_config_ends_a_call_the_vendor_forgot`]'s).
#[test]
fn the_shipped_config_keeps_a_call_both_sides_answer_and_ends_one_whose_caller_vanished() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let routing = Routing::dipped();
    let k = start_shipped(
        dir.path(),
        &data,
        &redis.url(),
        &routing.defines(&keepalive_defines()),
    );
    let call = |name| {
        let (sock, lport) = raw_socket();
        let invite = behind_nat(
            &raw_request(k.port, lport, "INVITE", routing.number(), name),
            lport,
        );
        let (dialog, _) = InDialog::answered(&sock, &k, lport, (name, data.cheap.0), &invite);
        (sock, lport, dialog)
    };
    let (alive, alive_port, dialog) = call("alive");
    let (_vanished, vanished_port, _) = call("vanished");
    let answered = Instant::now();
    routing.took(&k, 2);
    wait_for_stat(&k, "limits.active", "2");

    let pbx_without_options = (
        "405 Method Not Allowed",
        "Allow: INVITE, ACK, BYE, CANCEL\r\n",
    );
    let vanished = format!("vanished-{vanished_port}");
    let alive_side = (&alive, pbx_without_options);
    vanished_callers_call_ends(alive_side, &k, &vendor, &vanished, answered);
    assert!(vendor.received("OPTIONS").len() >= 4, "{}", k.log());
    wait_for_stat(&k, "limits.active", "1");

    send_raw(
        &alive,
        &k,
        &dialog.request("BYE", 2, "Content-Length: 0\r\n\r\n"),
    );
    assert_eq!(final_reply(&alive, &k, "alive").code, 200, "{}", k.log());
    assert_eq!(vendor.received("BYE").len(), 2, "{}", k.log());
    wait_for_stat(&k, "limits.active", "0");
    let cdrs = redis.wait_for("warp:cdr:raw", 6, Duration::from_secs(5));
    for (call, lport) in [("alive", alive_port), ("vanished", vanished_port)] {
        let kinds: Vec<String> = event_kinds(&cdrs, call, lport);
        assert_eq!(kinds, ["start", "answer", "end"], "{call}: {cdrs:#?}");
    }
    let alive_end = cdrs
        .iter()
        .find(|c| c["event"] == "end" && c["call_id"] == format!("alive-{alive_port}"))
        .unwrap();
    let lasted = millis(alive_end, "end") - millis(alive_end, "answer");
    assert!(lasted > 65_000, "{alive_end}");
}

/// The caller at `sock` answers its keepalives 200 until its call's BYE, which it
/// answers too: the call ended for the vendor's 481 to its keepalive, one interval and
/// 10 s after `since` (`what` names that moment), the caller sent a keepalive before.
pub(super) fn ended_for_the_vendors_481(
    sock: &UdpSocket,
    k: &Kamailio,
    since: Instant,
    what: &str,
) {
    let got = answering_keepalives(sock, k, ("200 OK", ""), Duration::from_secs(55), |m| {
        m.starts_with("BYE ")
    });
    let bye = got.last().filter(|m| m.starts_with("BYE "));
    let bye = bye.unwrap_or_else(|| panic!("the caller got no BYE: {got:#?}\n{}", k.log()));
    let ended = since.elapsed();
    send_raw(sock, k, &reply_to(bye, "200 OK", ""));
    assert!(
        got.iter().any(|m| m.starts_with("OPTIONS ")),
        "the caller was sent no keepalive: {got:#?}"
    );
    // One interval to the keepalive, 10 s from its 481 to the BYEs.
    assert!(
        (Duration::from_secs(36)..Duration::from_secs(50)).contains(&ended),
        "ended {ended:?} after {what}:\n{}",
        k.log()
    );
}

/// While `alive` answers its keepalives as told, the call `vanished_call_id` of a caller
/// gone is ended for its keepalive's 408: the vendor gets its BYE (and no other) one
/// interval, tm's 32 s and 10 s after `answered`, and `alive`, sent two keepalives
/// meanwhile, no BYE.
pub(super) fn vanished_callers_call_ends(
    (alive, answer): (impl CallSide, (&str, &str)),
    k: &Kamailio,
    vendor: &support::vendor::Vendor,
    vanished_call_id: &str,
    answered: Instant,
) {
    let vanished_call = format!("Call-ID: {vanished_call_id}");
    let vendor_byes = || -> Vec<String> { vendor.received("BYE") };
    let got = answering_keepalives(alive, k, answer, Duration::from_secs(95), |m| {
        assert!(!m.starts_with("BYE "), "the live call was ended:\n{m}");
        vendor_byes().iter().any(|b| b.contains(&vanished_call))
    });
    let ended = answered.elapsed();
    assert_eq!(vendor_byes().len(), 1, "{got:#?}\n{}", k.log());
    // The keepalive at one interval; its 408 32 s later (also for a TCP or TLS
    // connection refused: a send that failed ends no transaction), then 10 s.
    assert!(
        (Duration::from_secs(65)..Duration::from_secs(85)).contains(&ended),
        "the vanished caller's call ended {ended:?} after the answer:\n{}",
        k.log()
    );
    let keepalives = got.iter().filter(|m| m.starts_with("OPTIONS ")).count();
    assert!(keepalives >= 2, "{keepalives} keepalives: {got:#?}");
}

/// Answers every OPTIONS `side` receives with `(status, headers)`, for at most `within`,
/// until `done` says so of a message (any other one, or "" when none came for 200 ms):
/// every message received, in order.
pub(super) fn answering_keepalives(
    mut side: impl CallSide,
    k: &Kamailio,
    (status, headers): (&str, &str),
    within: Duration,
    mut done: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let message = side.next_message();
        if message.starts_with("OPTIONS ") {
            side.send_message(k, &reply_to(&message, status, headers));
            got.push(message);
            continue;
        }
        let finished = done(&message);
        if !message.is_empty() {
            got.push(message);
        }
        if finished {
            return got;
        }
    }
    got
}

/// A side of a call as a test plays it: the socket, or the TCP or TLS connection, the
/// edge's requests reach it on and its replies go back over.
pub(super) trait CallSide {
    /// The next message, or "" when none came for 200 ms.
    fn next_message(&mut self) -> String;
    fn send_message(&mut self, k: &Kamailio, text: &str);
}

impl CallSide for &UdpSocket {
    fn next_message(&mut self) -> String {
        self.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 65535];
        match self.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(_) => String::new(),
        }
    }

    fn send_message(&mut self, k: &Kamailio, text: &str) {
        send_raw(self, k, text);
    }
}

impl<S: Carrier> CallSide for &mut SipStream<S> {
    fn next_message(&mut self) -> String {
        self.next_within(Duration::from_millis(200))
            .unwrap_or_default()
    }

    fn send_message(&mut self, _: &Kamailio, text: &str) {
        self.send(text);
    }
}
