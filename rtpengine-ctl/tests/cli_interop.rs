//! The `warp-rtpengine` binary and Sipwise's own `rtpengine-ng-client` (Debian
//! rtpengine-utils) working on the same calls, directly and through the proxy binary.

mod common;

use common::{media_port, rtp_packet, sdp, Rtpengine};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_warp-rtpengine");

fn ours(ng: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--ng")
        .arg(ng)
        .args(args)
        .output()
        .unwrap();
    ok_stdout(out, args)
}

fn sipwise(port: u16, args: &[&str]) -> String {
    let out = Command::new("rtpengine-ng-client")
        .args(["--proxy-address=127.0.0.1", &format!("--proxy-port={port}")])
        .args(args)
        .output()
        .expect("rtpengine-ng-client (Debian package rtpengine-utils) must be installed");
    ok_stdout(out, args)
}

fn ok_stdout(out: Output, args: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The SDP rtpengine-ng-client prints after "New SDP:".
fn new_sdp(output: &str) -> &str {
    output
        .split("New SDP:")
        .nth(1)
        .expect("ng-client printed a new SDP")
}

#[test]
fn our_cli_and_sipwise_client_share_calls_with_real_rtp() {
    let r = Rtpengine::start();
    let ng = r.ng.to_string();
    let port = r.ng.port();
    assert!(ours(&ng, &["ping"]).starts_with("pong"));
    assert!(sipwise(port, &["ping"]).contains("pong"));

    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (cp, ep) = (
        caller.local_addr().unwrap().port(),
        callee.local_addr().unwrap().port(),
    );

    // Offer with our CLI, answer with Sipwise's client.
    let offered = ours(
        &ng,
        &[
            "offer",
            "--call-id",
            "interop-1",
            "--from-tag",
            "ft",
            "--sdp",
            &sdp("a", cp),
            "--flag",
            "trust address",
            "--replace",
            "origin",
            "--ice",
            "remove",
        ],
    );
    let to_callee = media_port(&offered);
    let answered = sipwise(
        port,
        &[
            "answer",
            "--call-id=interop-1",
            "--from-tag=ft",
            "--to-tag=tt",
            "--trust-address",
            &format!("--sdp={}", sdp("b", ep)),
        ],
    );
    let to_caller = media_port(new_sdp(&answered));

    for seq in 0..12 {
        caller
            .send_to(&rtp_packet(seq, 0x51), ("127.0.0.1", to_caller))
            .unwrap();
        callee
            .send_to(&rtp_packet(seq, 0x52), ("127.0.0.1", to_callee))
            .unwrap();
    }
    // Both clients see the same counters, once rtpengine (relaying on threads of its
    // own) has counted every packet: 5 s at most.
    let deadline = Instant::now() + Duration::from_secs(5);
    let json = loop {
        let json: serde_json::Value =
            serde_json::from_str(&ours(&ng, &["--json", "query", "interop-1"])).unwrap();
        if json["totals"]["RTP"]["packets"] == 24 || Instant::now() > deadline {
            break json;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(json["totals"]["RTP"]["packets"], 24, "{json}");
    let human = ours(&ng, &["query", "interop-1"]);
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("ft ") && l.contains(" 12 ")),
        "{human}"
    );
    let theirs = sipwise(port, &["query", "--call-id=interop-1"]);
    assert!(
        theirs.contains("packets => 24") || theirs.contains("packets => '24'"),
        "{theirs}"
    );

    assert!(ours(&ng, &["list"]).lines().any(|l| l == "interop-1"));
    sipwise(port, &["delete", "--call-id=interop-1", "--from-tag=ft"]);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!ours(&ng, &["list"]).contains("interop-1"));

    let stats = ours(&ng, &["stats"]);
    assert!(
        stats.contains("totalstatistics.managedsessions: 1"),
        "{stats}"
    );
    // Lists (per-interface port use, per-proxy counters) are shown item by item.
    assert!(stats.contains("\ninterfaces.0.ports.free: "), "{stats}");
    assert!(
        stats.contains("\ncontrolstatistics.proxies.0.proxy: 127.0.0.1"),
        "{stats}"
    );

    // Errors are clear and the exit status says so.
    let out = Command::new(BIN)
        .args(["--ng", &ng, "delete", "--call-id", "nope", "--fatal"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rtpengine error"));
}

/// `proxy` takes none of the options for talking to one ng endpoint: its help does not
/// show them, and given before or after its name they are refused, not ignored.
#[test]
fn proxy_neither_offers_nor_takes_the_client_options() {
    let help = Command::new(BIN)
        .args(["proxy", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--node-timeout-ms"), "{help}");
    for option in ["--ng", "--json", "--timeout-ms", "--retries"] {
        assert!(!help.contains(&format!("{option} ")), "{option} in {help}");
    }
    let proxy = ["--listen", "127.0.0.1:0", "--node", "127.0.0.1:9"];
    for (given, option) in [
        (["proxy", "--timeout-ms", "500"], "--timeout-ms"),
        (["--ng", "127.0.0.1:9", "proxy"], "--ng"),
    ] {
        let mut child = Command::new(BIN)
            .args(given)
            .args(proxy)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A binary that took the option would run the proxy: it gets two seconds.
        let deadline = Instant::now() + Duration::from_secs(2);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{given:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{option} is for talking to one ng endpoint")),
            "{given:?}: {stderr}"
        );
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the proxy binary at `ng` answers a ping; fails at once if it exits.
fn wait_until_up(ng: &str, proxy: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = proxy.0.try_wait().unwrap() {
            panic!("proxy binary exited: {status}");
        }
        let out = Command::new(BIN)
            .args(["--ng", ng, "--timeout-ms", "200", "ping"])
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(Instant::now() < deadline, "proxy binary did not come up");
    }
}

/// `WARP_RTPENGINE_NG` is for the client commands: a shell set up for them may start
/// the proxy, whose start must not depend on that name resolving (DNS not up yet at
/// boot, a name known only elsewhere).
#[test]
fn the_proxy_starts_whatever_client_endpoint_its_environment_names() {
    let a = Rtpengine::start();
    for ng in ["rtpengine.invalid:2223", "not an endpoint"] {
        let listen = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut proxy = Running(
            Command::new(BIN)
                .args(["proxy", "--listen", &listen.to_string()])
                .args(["--node", &a.ng.to_string()])
                .env("WARP_RTPENGINE_NG", ng)
                .env_remove("WARP_REDIS_URL")
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until_up(&listen.to_string(), &mut proxy);
    }
}

#[test]
fn a_stopped_proxy_reports_the_qos_records_redis_never_took() {
    let a = Rtpengine::start();
    let listen = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let no_redis = format!(
        "redis://127.0.0.1:{}/",
        warp_testkit::free_tcp_port().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("proxy.log");
    let mut proxy = Running(
        Command::new(BIN)
            .args(["proxy", "--listen", &listen.to_string()])
            .args(["--node", &format!("a={}", a.ng), "--redis", &no_redis])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until_up(&listen.to_string(), &mut proxy);
    let offer = [
        "offer",
        "--call-id=unrecorded",
        "--from-tag=ft",
        &format!("--sdp={}", sdp("a", 40000)),
    ];
    sipwise(listen.port(), &offer);
    sipwise(
        listen.port(),
        &["delete", "--call-id=unrecorded", "--from-tag=ft"],
    );

    // SIGTERM, as systemd stops it: a clean exit that says what Redis never got.
    let stopped = Command::new("kill")
        .args(["-TERM", &proxy.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = proxy.0.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {text}");
    assert!(
        text.contains("1 QoS records not written to Redis are lost at shutdown"),
        "{text}"
    );
}

/// A node that holds each `offer` a second before passing it on to `node`, as one busy
/// with it; the rest (health pings) passes at once. Tells `held` of each offer it holds.
fn slow_offers(node: SocketAddr) -> (SocketAddr, mpsc::Receiver<()>) {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    let addr = front.local_addr().unwrap();
    let (held, offers) = mpsc::channel();
    std::thread::spawn(move || {
        // One socket towards the node per proxy socket, whose replies go back to it.
        let mut towards: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = front.recv_from(&mut buf) {
            let out = towards.entry(from).or_insert_with(|| {
                let out = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                out.connect(node).unwrap();
                let (back, front) = (out.clone(), front.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = back.recv(&mut buf) {
                        let _ = front.send_to(&buf[..n], from);
                    }
                });
                out
            });
            let (out, datagram) = (out.clone(), buf[..n].to_vec());
            if datagram.windows(7).any(|w| w == b"5:offer") {
                let _ = held.send(());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(1));
                    let _ = out.send(&datagram);
                });
            } else {
                let _ = out.send(&datagram);
            }
        }
    });
    (addr, offers)
}

/// SIGTERM while an offer is with its node (systemd restarting the proxy amid calls):
/// the proxy stops reading requests but answers that one before it exits. The node has
/// set the call up; Kamailio, left unanswered, would retransmit to a proxy that no
/// longer knows the request.
#[test]
fn a_stopping_proxy_answers_the_requests_it_is_handling() {
    use warp_rtpengine::bencode::{decode_dict, encode_dict, Dict};
    let a = Rtpengine::start();
    let (slow, offers) = slow_offers(a.ng);
    let listen = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("proxy.log");
    let mut proxy = Running(
        Command::new(BIN)
            .args(["proxy", "--listen", &listen.to_string()])
            .args(["--node", &format!("a={slow}")])
            .args(["--node-timeout-ms", "3000", "--node-retries", "0"])
            .env_remove("WARP_REDIS_URL")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until_up(&listen.to_string(), &mut proxy);
    let mut offer = Dict::new();
    offer.insert("command", "offer");
    offer.insert("call-id", "mid-restart");
    offer.insert("from-tag", "ft");
    let sdp = sdp("a", 40000);
    offer.insert("sdp", sdp.as_str());
    let kamailio = UdpSocket::bind("127.0.0.1:0").unwrap();
    kamailio
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let datagram = [&b"stop1 "[..], &encode_dict(&offer)].concat();
    kamailio.send_to(&datagram, listen).unwrap();
    offers
        .recv_timeout(Duration::from_secs(5))
        .expect("the offer reached the node");

    let stopped = Command::new("kill")
        .args(["-TERM", &proxy.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut buf = [0u8; 65536];
    let n = kamailio.recv(&mut buf).unwrap_or_else(|e| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("the offer being handled got no reply ({e}): {text}")
    });
    let reply = buf[..n]
        .strip_prefix(b"stop1 ")
        .expect("the reply carries the request's cookie");
    let reply = decode_dict(reply).unwrap();
    assert_eq!(reply.get_str("result"), Some("ok"), "{reply:?}");
    assert!(reply.get_str("sdp").is_some(), "{reply:?}");
    let status = proxy.0.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {text}");
    assert!(!text.contains("left unanswered"), "{text}");
    assert_eq!(ours(&a.ng.to_string(), &["list"]).trim(), "mid-restart");
}

#[test]
fn proxy_binary_serves_our_cli_and_sipwise_client() {
    let (a, b) = (Rtpengine::start(), Rtpengine::start());
    let listen = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut proxy = Running(
        Command::new(BIN)
            .args(["proxy", "--listen", &listen.to_string()])
            .args(["--node", &format!("a={},weight=1", a.ng)])
            .args(["--node", &format!("b={},weight=2", b.ng)])
            .args(["--health-interval-ms", "200"])
            .env_remove("WARP_REDIS_URL")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ng = listen.to_string();
    wait_until_up(&ng, &mut proxy);
    assert!(sipwise(listen.port(), &["ping"]).contains("pong"));
    let offered = sipwise(
        listen.port(),
        &[
            "offer",
            "--call-id=via-proxy",
            "--from-tag=ft",
            &format!("--sdp={}", sdp("a", 40000)),
        ],
    );
    media_port(new_sdp(&offered));
    let nodes = ours(&ng, &["nodes"]);
    let calls: u32 = nodes
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(5).unwrap().parse::<u32>().unwrap())
        .sum();
    assert_eq!(calls, 1, "{nodes}");
    let json: serde_json::Value = serde_json::from_str(&ours(&ng, &["--json", "nodes"])).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 2);
    // The proxy's list is both nodes' lists merged: the call, then nothing.
    assert_eq!(ours(&ng, &["list"]).trim(), "via-proxy");
    sipwise(
        listen.port(),
        &["delete", "--call-id=via-proxy", "--from-tag=ft"],
    );
    assert_eq!(ours(&ng, &["list"]).trim(), "");
    for node in [&a, &b] {
        assert_eq!(ours(&node.ng.to_string(), &["list"]).trim(), "");
    }
}

/// A metrics listener out of file handles (EMFILE: every accept fails until one closes)
/// waits before it tries again instead of retrying at once, which would burn a core for
/// as long as the connections keep coming; once handles are free, it serves again.
#[test]
fn a_metrics_listener_out_of_file_handles_backs_off() {
    const HANDLES: usize = 64;
    let a = Rtpengine::start();
    let listen = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let metrics = SocketAddr::from(([127, 0, 0, 1], warp_testkit::free_tcp_port().unwrap()));
    let mut proxy = Running(
        Command::new("sh")
            .args(["-c", &format!("ulimit -n {HANDLES} && exec \"$0\" \"$@\"")])
            .args([BIN, "proxy", "--listen", &listen.to_string()])
            .args([
                "--node",
                &a.ng.to_string(),
                "--metrics",
                &metrics.to_string(),
            ])
            .env_remove("WARP_REDIS_URL")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_up(&listen.to_string(), &mut proxy);
    let pid = proxy.0.id();
    // Connections that send nothing are held for the 2 s a request head may take: the
    // listener takes as many as it has handles for, and fails to accept the others.
    let held: Vec<std::net::TcpStream> = (0..4 * HANDLES)
        .map(|_| std::net::TcpStream::connect(metrics).unwrap())
        .collect();
    let open = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while open() < HANDLES {
        assert!(Instant::now() < deadline, "{} handles open", open());
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    // A tight loop takes about 100 ticks a second of a core (USER_HZ is 100).
    assert!(
        used < 20,
        "{used} ticks of CPU in one second out of handles"
    );
    assert!(open() >= HANDLES, "no longer out of handles");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = scrape(metrics);
        if reply.starts_with("HTTP/1.1 200 OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics not served again: {reply:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The CPU time process `pid` has used, user and system, in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // utime and stime are the 12th and 13th fields after the command's closing ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// What the metrics listener at `addr` answers `GET /metrics`, or an empty string.
fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `bench` sends exactly `--count` requests (and its one warm-up ping), also when the
/// concurrency does not divide the count.
#[test]
fn bench_sends_exactly_the_count_asked_for() {
    let r = Rtpengine::start();
    let ng = r.ng.to_string();
    let pings = || -> u64 {
        ours(&ng, &["stats"])
            .lines()
            .find_map(|l| l.strip_prefix("controlstatistics.totalpingcount: "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the node counts pings")
    };
    let before = pings();
    let out = ours(
        &ng,
        &["--json", "bench", "--count", "10", "--concurrency", "3"],
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["ok"].as_u64(), report["errors"].as_u64()),
        (Some(10), Some(0)),
        "{out}"
    );
    assert_eq!(pings() - before, 11, "the node got 10 and the warm-up");
    // More in flight than there are requests: one task per request, not a million idle.
    let out = ours(
        &ng,
        &[
            "--json",
            "bench",
            "--count",
            "2",
            "--concurrency",
            "1000000",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["ok"].as_u64(), report["concurrency"].as_u64()),
        (Some(2), Some(2)),
        "{out}"
    );
}

/// A reply holding bytes that are not UTF-8 (a call-id some SIP stack made binary) is
/// still printed as JSON, its bad bytes as U+FFFD, rather than failing the command.
#[test]
fn json_output_shows_a_call_id_that_is_not_utf8() {
    use warp_rtpengine::bencode::{encode_dict, Dict};
    let r = Rtpengine::start();
    let mut offer = Dict::new();
    offer.insert("command", "offer");
    offer.insert("call-id", &b"bin\xffcall"[..]);
    offer.insert("from-tag", "ft");
    let sdp = sdp("a", 40000);
    offer.insert("sdp", sdp.as_str());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut datagram = b"c1 ".to_vec();
    datagram.extend_from_slice(&encode_dict(&offer));
    sock.send_to(&datagram, r.ng).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap();
    assert!(
        buf[..n].windows(4).any(|w| w == b"2:ok"),
        "offer answered ok"
    );

    let ng = r.ng.to_string();
    let listed = ours(&ng, &["--json", "list"]);
    assert!(listed.contains("bin\u{fffd}call"), "{listed}");
    let raw = ours(&ng, &["raw", r#"{"command":"list"}"#]);
    assert!(raw.contains("bin\u{fffd}call"), "{raw}");
}

/// `warp-rtpengine ping | true`: a reader that goes away before the result is written
/// ends the command quietly, not with a panic (exit 101).
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let r = Rtpengine::start();
    let mut child = Command::new(BIN)
        .args(["--ng", &r.ng.to_string(), "ping"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A bench whose every request fails (a peer that answers the warm-up ping, then
/// nothing) still prints its report, but exits 1 saying why: it measured nothing.
#[test]
fn a_bench_whose_requests_all_fail_fails() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ng = peer.local_addr().unwrap().to_string();
    let answer_once = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        let cookie = buf[..n].split(|&b| b == b' ').next().unwrap();
        let pong = [cookie, b" d6:result4:ponge"].concat();
        peer.send_to(&pong, from).unwrap();
        peer // open but silent from now on
    });
    let out = Command::new(BIN)
        .args(["--ng", &ng, "--timeout-ms", "50", "--retries", "0"])
        .args(["bench", "--count", "4", "--concurrency", "2"])
        .output()
        .unwrap();
    let _peer = answer_once.join().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains(": 0 ok, 4 errors,"), "{stdout}");
    assert!(
        stderr.starts_with("error: all 4 requests failed, the first: no reply after 1 attempt(s)"),
        "{stderr}"
    );
}

/// An error's cause is said once: a refused connection, bad JSON.
#[test]
fn an_error_is_said_once() {
    // A port just freed: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let tcp = format!("tcp:{closed}");
    for (args, cause) in [
        (vec!["--ng", &tcp, "ping"], "Connection refused"),
        (vec!["raw", "{bad"], "key must be a string"),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.matches(cause).count(), 1, "{args:?}: {stderr}");
    }
}
