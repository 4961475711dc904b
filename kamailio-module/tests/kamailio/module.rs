//! warp.so loaded into Kamailio: the version it reports, the ANI `warp_ani()` finds (PAI,
//! then RPID, then From), and its counters: shared by all workers, one per request, and
//! listed among Kamailio's own statistics with the values of `warp.stats`.

use super::{start_on, warp_stats_named, ANI_ROUTE, ROUTE};
use crate::support::{self, binary, Kamailio, Script};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

#[test]
fn module_loads_and_reports_the_kamailio_it_was_built_for() {
    let k = Kamailio::start(&[], Script::Native(ANI_ROUTE));
    let version = k.rpc("warp.version");
    assert_eq!(
        version["module"],
        concat!("warp ", env!("CARGO_PKG_VERSION"))
    );
    let v = Command::new(binary("kamailio")).arg("-v").output().unwrap();
    let v = String::from_utf8_lossy(&v.stdout).into_owned();
    let installed = v
        .lines()
        .find_map(|l| l.strip_prefix("version:"))
        .unwrap()
        .trim();
    assert_eq!(version["kamailio"], installed);
}

#[test]
fn ani_comes_from_pai_then_rpid_then_from() {
    let k = Kamailio::start(&[], Script::Native(ANI_ROUTE));
    let cases = [
        (
            "P-Asserted-Identity: <sip:+17205550199@carrier.example>\r\n\
             Remote-Party-ID: <sip:4155550123@carrier.example>;party=calling\r\n",
            "+17205550199",
            "pai",
        ),
        // A PAI without a user part names no number: fall through to RPID.
        (
            "P-Asserted-Identity: <sip:carrier.example>\r\n\
             Remote-Party-ID: <sip:4155550123@carrier.example>;party=calling\r\n",
            "4155550123",
            "rpid",
        ),
        (
            "P-Asserted-Identity: <tel:+13035550111>\r\n",
            "+13035550111",
            "pai",
        ),
        // RFC 3325's sip and tel identity (as IMS sends them): the number, not the name.
        (
            "P-Asserted-Identity: <sip:alice@carrier.example>, <tel:+13035550111>\r\n",
            "+13035550111",
            "pai",
        ),
        // A local number is a number in its phone-context.
        (
            "P-Asserted-Identity: <tel:303-555-0133;phone-context=+1>\r\n",
            "+1303-555-0133",
            "pai",
        ),
        // A later PAI header the parser cannot read leaves the one before it standing.
        (
            "P-Asserted-Identity: <tel:+13035550122>\r\n\
             P-Asserted-Identity: \"x <sip:1@x>\r\n",
            "+13035550122",
            "pai",
        ),
        // An RPID about the called party says nothing of the caller.
        (
            "Remote-Party-ID: <sip:4155550123@carrier.example>;party=called\r\n",
            "3035550100",
            "from",
        ),
        // ... but the calling party's RPID after it does.
        (
            "Remote-Party-ID: <sip:4155550123@carrier.example>;party=called\r\n\
             Remote-Party-ID: \"Caller\" <sip:4155550124@carrier.example>;party=calling\r\n",
            "4155550124",
            "rpid",
        ),
        // One header may list several parties, comma-separated, as several headers do.
        (
            "Remote-Party-ID: <sip:4155550125@carrier.example>;party=calling;screen=yes, \
             <sip:4155550126@carrier.example>;party=called\r\n",
            "4155550125",
            "rpid",
        ),
        (
            "Remote-Party-ID: <sip:4155550123@carrier.example>;party=called, \
             \"Caller, Inc.\" <sip:4155550124@carrier.example>;party=calling\r\n",
            "4155550124",
            "rpid",
        ),
        // An identity naming no number does not hide the number after it (else a
        // junk PAI would carry a DNO'd From past the check).
        (
            "P-Asserted-Identity: <sip:anonymous@anonymous.invalid>\r\n",
            "3035550100",
            "from",
        ),
        (
            "P-Asserted-Identity: <sip:anonymous@anonymous.invalid>\r\n\
             Remote-Party-ID: <sip:alice@carrier.example>;party=calling\r\n",
            "3035550100",
            "from",
        ),
        (
            "Remote-Party-ID: <sip:alice@carrier.example>;party=calling\r\n",
            "3035550100",
            "from",
        ),
        ("", "3035550100", "from"),
    ];
    for (headers, ani, source) in cases {
        let reply = k.request("OPTIONS", headers);
        assert_eq!(reply.code, 200);
        assert_eq!(reply.header("X-Warp-ANI"), Some(ani), "headers: {headers}");
        assert_eq!(
            reply.header("X-Warp-ANI-Source"),
            Some(source),
            "headers: {headers}"
        );
    }
    // From headers in every form: a quoted display name (with brackets and an escaped
    // quote in it), an addr-spec without brackets (the tag is the header's), a tel URI.
    let froms = [
        (
            r#""Sales <east>" <sip:3035550111@carrier.example>"#,
            "3035550111",
        ),
        ("sip:3035550122@carrier.example", "3035550122"),
        (r#""A \"quoted\" name" <tel:+13035550133>"#, "+13035550133"),
        // No number anywhere: the user part still shows (and routes as an unknown ANI).
        ("<sip:anonymous@anonymous.invalid>", "anonymous"),
    ];
    for (from, ani) in froms {
        let reply = k.request_with_from(from);
        assert_eq!(reply.header("X-Warp-ANI"), Some(ani), "From: {from}");
    }
}

#[test]
fn counters_are_shared_by_all_workers() {
    // Each request keeps its worker 20 ms, so with four in flight the other worker
    // must take some: the kernel hands a datagram to a reader that is waiting.
    let script = format!(
        "loadmodule \"cfgutils.so\"\nrequest_route {{\n    usleep(20000);\n{ANI_ROUTE}\n}}\n"
    );
    let k = Kamailio::start(&[], Script::Cfg(&script));
    let pids: BTreeSet<String> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..10)
                        .map(|_| {
                            k.request("OPTIONS", "")
                                .header("X-Warp-Pid")
                                .unwrap()
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        pids.len() >= 2,
        "all 40 requests went to one worker: {pids:?}"
    );
    // Read from the RPC process, which handled no SIP itself.
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["workers"], "2");
    assert_eq!(stats["warp_ani.calls"], "40");
    assert_eq!(stats["warp_ani.errors"], "0");
    assert_eq!(stats["warp_ani.panics"], "0");
    assert_eq!(stats["warp_route.calls"], "0");
}

#[test]
fn sipp_traffic_is_counted_once_per_request() {
    let k = Kamailio::start(&[], Script::Native(ANI_ROUTE));
    let scenario = k.dir().join("options.xml");
    std::fs::write(&scenario, SIPP_OPTIONS).unwrap();
    let status = Command::new(binary("sipp"))
        .arg(format!("127.0.0.1:{}", k.port))
        .arg("-sf")
        .arg(&scenario)
        .args([
            "-i",
            "127.0.0.1",
            "-m",
            "200",
            "-r",
            "100",
            "-l",
            "20",
            "-nostdin",
            "-timeout",
            "30s",
        ])
        .current_dir(k.dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run sipp");
    assert!(
        status.success(),
        "sipp reported failed calls ({status}):\n{}",
        k.log()
    );
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["warp_ani.calls"], "200");
    assert_eq!(stats["warp_ani.errors"], "0");
    // Every call lands in one latency bucket; finding an ANI takes microseconds.
    let buckets: Vec<(&String, u64)> = stats
        .iter()
        .filter(|(k, _)| k.starts_with("warp_ani.latency_us."))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    assert_eq!(buckets.len(), 10, "{stats:?}");
    assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 200);
    assert!(stats["warp_ani.latency_us.gt_50000"] == "0", "{stats:?}");
    assert!(stats["warp_ani.latency_sum_us"].parse::<u64>().unwrap() > 0);
}

/// `kamcmd stats.get_statistics <which>` ("warp:", "all"): Kamailio's own statistics,
/// `group:name` → value.
fn statistics(k: &Kamailio, which: &str) -> BTreeMap<String, String> {
    let text = k
        .kamcmd(&["stats.get_statistics", which])
        .unwrap_or_else(|e| panic!("stats.get_statistics {which}: {e}\n{}", k.log()));
    text.lines()
        .filter_map(|line| line.trim().split_once(" = "))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Every counter of `warp.stats` (but its latency histogram) is one of Kamailio's own
/// statistics too, group `warp`, with the same value: routed and refused calls, a
/// trunk's CPS refusals, the snapshot's generation. The old module registered none.
#[test]
fn kamailio_statistics_list_warps_counters_with_the_values_of_warp_stats() {
    let data = support::dataset::Data {
        t1_limits: (100, 1),
        ..Default::default()
    };
    let script = format!(
        "loadmodule \"kex.so\"\nloadmodule \"counters.so\"\nrequest_route {{\n{ROUTE}\n}}\n"
    );
    let (_dir, _, k) = start_on(&data, Script::Cfg(&script));
    // T1 takes one call a second: of three at once, one or two are refused.
    let codes: Vec<u16> = (0..3).map(|_| k.request("INVITE", "").code).collect();
    assert!(codes.contains(&200) && codes.contains(&503), "{codes:?}");
    assert_eq!(k.request_from("127.0.0.2", "INVITE", "").code, 403);

    let stats = k.rpc("warp.stats");
    let kamailio = statistics(&k, "warp:");
    assert_eq!(kamailio, warp_stats_named(&stats, "warp:"), "{}", k.log());
    assert_eq!(kamailio["warp:warp_route_calls"], "4");
    let refused = codes.iter().filter(|&&c| c == 503).count().to_string();
    assert_eq!(kamailio["warp:limits_refused_cps"], refused);
    assert_eq!(kamailio["warp:snapshot_generation"], "1");
    assert_eq!(kamailio["warp:workers"], "2");
    // Among every module's statistics too.
    assert_eq!(statistics(&k, "all")["warp:warp_route_calls"], "4");
    // Each names the key of warp.stats it is (the counters module's help); a reset
    // leaves warp's counts alone.
    let help = k.kamcmd(&["cnt.help", "warp", "limits_refused_cps"]);
    assert_eq!(help.unwrap().trim(), "warp.stats limits.refused_cps");
    k.kamcmd(&["stats.reset_statistics", "warp:"]).unwrap();
    assert_eq!(statistics(&k, "warp:"), kamailio);
}

/// One OPTIONS per call; the call fails unless the reply carries the PAI's number.
const SIPP_OPTIONS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="warp ani">
  <send>
    <![CDATA[
      OPTIONS sip:12125550123@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:3035550100@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:12125550123@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      P-Asserted-Identity: <sip:+17205550199@[local_ip]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200">
    <action>
      <ereg regexp="X-Warp-ANI: \+17205550199" search_in="msg" check_it="true" assign_to="ani"/>
    </action>
  </recv>
  <Reference variables="ani"/>
</scenario>
"#;
