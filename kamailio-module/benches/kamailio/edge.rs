//! The carrier-edge variant (`WARP_BENCH_EDGE=1`): what warp costs where it runs in
//! production, in front of `t_relay()`. Each call is a whole dialog relayed statefully
//! and record-routed to a vendor gateway (a sipp UAS) and back: INVITE, 100, 200, ACK,
//! BYE, 200. Bare relays every call to the gateway; warp and lcr choose it, as in the
//! stateless variant, with a failure route for serial failover (unused: the gateway
//! answers every call). Every call is one warp routes, so all three relay the same work.

use crate::support::sipp::{in_dialog, invite, Answer, Uas};
use std::path::Path;
use warp_core::model::Dataset;

/// sipp's calls in flight: each lasts its 20 ms pause at least.
pub const IN_FLIGHT: usize = 256;

/// A whole call per injection-file line (ANI; DNIS), following Kamailio's Record-Route.
/// The BYE waits a moment after the ACK: sent back to back, the two workers may relay
/// them out of order. A call that stays unanswered fails the round rather than hang it.
pub fn scenario() -> String {
    let (caller, callee) = ("[field0]", "[field1]");
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="warp edge bench">
{}  <recv response="100" optional="true"/>
  <recv response="200" rrs="true" timeout="5000"/>
{}  <pause milliseconds="20"/>
{}  <recv response="200" crlf="true" timeout="5000"/>
</scenario>
"#,
        invite(caller, callee, "", ""),
        in_dialog("ACK", 1, caller, callee, ""),
        in_dialog("BYE", 2, caller, callee, ""),
    )
}

/// Modules and the in-dialog part every setup shares: ACK and BYE follow the route.
/// The socket may take a window of requests at once (the kernel allows 4 MB here).
const RELAY: &str = r#"
maxbuffer=4194304
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "siputils.so"
request_route {
    if (has_totag()) {
        if (loose_route()) { t_relay(); }
        exit;
    }
    route(CHOOSE);
    record_route();
    t_on_failure("NEXT");
    t_relay();
}
"#;

/// Bare: the one gateway at `port`, no failover.
pub fn bare(port: u16) -> String {
    format!(
        "{RELAY}route[CHOOSE] {{ rewritehostport(\"127.0.0.1:{port}\"); }}\n\
         failure_route[NEXT] {{ exit; }}\n"
    )
}

pub fn warp() -> String {
    choosing("!warp_route()", "warp_next_route()")
}

/// lcr's modules and parameters (`modules`), choosing and failing over with lcr.
pub fn lcr(modules: &str) -> String {
    modules.to_owned() + &choosing(r#"load_gws("1") != 1 || !next_gw()"#, "next_gw()")
}

/// The relay choosing its gateway with `refused` (true: no route, 404) and failing over
/// on 5xx or 408 while `next` finds another.
fn choosing(refused: &str, next: &str) -> String {
    format!(
        r#"{RELAY}route[CHOOSE] {{
    if ({refused}) {{ sl_send_reply("404", "No Route"); exit; }}
}}
failure_route[NEXT] {{
    if (t_check_status("5[0-9][0-9]|408") && {next}) {{
        t_on_failure("NEXT");
        t_relay();
    }}
}}
"#
    )
}

/// Every vendor's gateways, reached at the one UAS on `port` (their dialstrings keep
/// their user part).
pub fn point_gateways_at(d: &mut Dataset, port: u16) {
    for v in &mut d.vendors {
        for g in &mut v.gateways {
            let user = g.split_once('@').map_or("sip:", |(u, _)| u);
            *g = format!("{user}@127.0.0.1:{port}");
        }
    }
}

/// The vendor gateway: a sipp UAS answering every call, on the generator's CPU.
pub fn vendor(dir: &Path, port: u16) -> Uas {
    Uas::untraced(dir, port, Answer::Accept)
}
