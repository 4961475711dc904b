//! A trunk whose PBX ignores in-dialog OPTIONS (`keepalive` false): its callers are sent
//! no keepalives, so its calls are not ended for the answers that never come, while
//! the vendor side of each call still is; `$warp(keepalive)` says which trunks are.

use super::keepalive::{keepalive_defines, CallSide};
use super::{event_kinds, millis, start_on, start_shipped, wait_for_stat};
use crate::support::dataset::Data;
use crate::support::udp::{
    final_reply, header_of, raw_invite_with_sdp, raw_socket, send_raw, InDialog,
};
use crate::support::vendor::{Plays, Vendor};
use crate::support::{redis::Redis, Kamailio, Script};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// T2's source address (see [`Data`]).
const T2: &str = "127.0.0.3";

/// Answers with `$warp(keepalive)` before and after `warp_identify()`.
const SAYS_KEEPALIVE: &str = r#"
    append_to_reply("X-Before: $warp(keepalive)\r\n");
    if (!warp_identify()) {
        sl_send_reply("$warp(code)", "$warp(reason)");
        exit;
    }
    append_to_reply("X-Trunk: $warp(trunk)\r\nX-Keepalive: $warp(keepalive)\r\n");
    sl_send_reply("200", "OK");
"#;

/// `$warp(keepalive)` is the identified trunk's: 0 for T2, whose PBX takes none, 1 for
/// T1; 1 before any trunk is known (a caller is sent keepalives unless its trunk says
/// not), never `$null`.
#[test]
fn warp_keepalive_is_the_identified_trunks() {
    let data = Data {
        keepalive_off: &["T2"],
        ..Data::default()
    };
    let (_dir, _, k) = start_on(&data, Script::Native(SAYS_KEEPALIVE));
    for (source, trunk, keepalive) in [("127.0.0.1", "T1", "1"), (T2, "T2", "0")] {
        let reply = k.request_from(source, "INVITE", "");
        assert_eq!(reply.code, 200, "{}", k.log());
        let said = ["X-Before", "X-Trunk", "X-Keepalive"].map(|h| reply.header(h));
        assert_eq!(said, [Some("1"), Some(trunk), Some(keepalive)], "{reply:?}");
    }
    let t2 = k.rpc_args(&["warp.trunks", "T2"]).unwrap();
    assert_eq!(t2["T2.keepalive"], "0", "{t2:?}");
    let t1 = k.rpc_args(&["warp.trunks", "T1"]).unwrap();
    assert_eq!(t1["T1.keepalive"], "1", "{t1:?}");
}

/// Two callers whose PBXs answer no in-dialog OPTIONS, the vendor answering its own:
/// T1's (keepalives on) call is ended as every call was, one interval, tm's 32 s and
/// 10 s after the answer, BYEs to both sides; T2's (keepalive false) is sent no OPTIONS
/// and stays up past that, the vendor's side of it sent its keepalives all along, until
/// its caller hangs up.
#[test]
fn the_shipped_config_sends_no_keepalives_to_a_trunk_that_takes_none() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let data = Data {
        keepalive_off: &["T2"],
        ..Data::with_gateways()
    };
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &redis.url(), &keepalive_defines());
    let (loud, loud_port) = raw_socket();
    let invite = raw_invite_with_sdp(k.port, loud_port, "+12125550123", "loud");
    InDialog::answered(&loud, &k, loud_port, ("loud", data.cheap.0), &invite);
    let (quiet, quiet_port, quiet_dialog) = t2_call(&k, data.cheap.0);
    let answered = Instant::now();
    wait_for_stat(&k, "limits.active", "2");

    // Neither caller answers anything: T1's call ends for its keepalive's 408.
    let loud_call = format!("Call-ID: loud-{loud_port}");
    let vendor_byes = || vendor.received("BYE");
    let (mut to_loud, mut to_quiet) = (Vec::new(), Vec::new());
    let deadline = answered + Duration::from_secs(95);
    while !vendor_byes().iter().any(|b| b.contains(&loud_call)) {
        assert!(
            Instant::now() < deadline,
            "T1's call was never ended: {to_loud:#?}\n{}",
            k.log()
        );
        for (mut side, got) in [(&loud, &mut to_loud), (&quiet, &mut to_quiet)] {
            let message = side.next_message();
            if !message.is_empty() {
                got.push(message);
            }
        }
    }
    let ended = answered.elapsed();
    assert!(
        (Duration::from_secs(65)..Duration::from_secs(85)).contains(&ended),
        "T1's call ended {ended:?} after the answer:\n{}",
        k.log()
    );
    assert!(
        to_loud.iter().any(|m| m.starts_with("OPTIONS ")),
        "{to_loud:#?}"
    );
    // T2's caller got nothing at all, its call still up past the failure limit.
    assert!(to_quiet.is_empty(), "T2's caller was sent {to_quiet:#?}");
    wait_for_stat(&k, "limits.active", "1");
    let quiet_call = format!("quiet-{quiet_port}");
    let vendor_options = vendor.received("OPTIONS");
    let quiet_options = vendor_options
        .iter()
        .filter(|o| header_of(o, "Call-ID") == quiet_call)
        .count();
    assert!(quiet_options >= 2, "{vendor_options:#?}\n{}", k.log());

    send_raw(
        &quiet,
        &k,
        &quiet_dialog.request("BYE", 2, "Content-Length: 0\r\n\r\n"),
    );
    assert_eq!(final_reply(&quiet, &k, "quiet").code, 200, "{}", k.log());
    wait_for_stat(&k, "limits.active", "0");
    assert_eq!(vendor_byes().len(), 2, "{}", k.log());
    let cdrs = redis.wait_for("warp:cdr:raw", 6, Duration::from_secs(5));
    for (call, port) in [("loud", loud_port), ("quiet", quiet_port)] {
        let kinds = event_kinds(&cdrs, call, port);
        assert_eq!(kinds, ["start", "answer", "end"], "{call}: {cdrs:#?}");
    }
    // T2's call outlived T1's, which ended at the failure limit.
    let ended_at = |call: &str| {
        let end = cdrs
            .iter()
            .find(|c| c["event"] == "end" && c["call_id"] == call);
        millis(end.unwrap(), "end")
    };
    assert!(
        ended_at(&quiet_call) > ended_at(&format!("loud-{loud_port}")),
        "{cdrs:#?}"
    );
}

/// An answered call `quiet` from T2's address: its socket, port and dialog (its Via
/// and Contact naming that address, where the edge's requests to the caller go).
fn t2_call(k: &Kamailio, vendor: u16) -> (UdpSocket, u16, InDialog<'static>) {
    let sock = UdpSocket::bind((T2, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let invite = raw_invite_with_sdp(k.port, port, "+12125550123", "quiet")
        .replace(&format!("127.0.0.1:{port}"), &format!("{T2}:{port}"));
    let (dialog, _) = InDialog::answered(&sock, k, port, ("quiet", vendor), &invite);
    (sock, port, dialog)
}
