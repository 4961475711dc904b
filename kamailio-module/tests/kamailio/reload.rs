//! A new routing snapshot while calls flow: `warp.reload` and `reload_check` swap
//! generations and refuse a corrupt one, a snapshot rewritten in place or replaced under a
//! worker's remap never takes Kamailio down, a reload outrun by another publishes the
//! newest, and reloads under sustained load fail no call.

use super::{start_on, start_on_test_data, wait_for_stat, RELAY, ROUTE};
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::{self, Kamailio, Script};
use std::path::Path;
use std::time::Duration;

fn rates(data: &support::dataset::Data) -> &'static str {
    if data.cheap.1 < data.dear.1 {
        "CHEAP"
    } else {
        "DEAR"
    }
}

#[test]
fn reload_swaps_the_generation_and_later_calls_follow_the_new_rates() {
    let mut data = support::dataset::Data::default();
    let (_dir, snap, k) = start_on(&data, Script::Native(ROUTE));
    assert_eq!(
        k.request("INVITE", "").header("X-Warp-Vendor"),
        Some("CHEAP")
    );

    // DEAR becomes the cheaper vendor in generation 2.
    data.generation = 2;
    data.cheap.1 = "0.012";
    data.publish(&snap);
    // Published but not reloaded: still generation 1 everywhere.
    assert_eq!(
        k.request("INVITE", "").header("X-Warp-Vendor"),
        Some("CHEAP")
    );
    let reloaded = k.rpc("warp.reload");
    assert_eq!(reloaded["previous"], "1");
    assert_eq!(reloaded["generation"], "2");
    assert!(reloaded["millis"].parse::<f64>().unwrap() < 50.0);
    // Enough requests from fresh sockets that both workers take some.
    for _ in 0..8 {
        let reply = k.request("INVITE", "");
        assert_eq!(reply.header("X-Warp-Vendor"), Some(rates(&data)));
        assert_eq!(reply.header("X-Warp-Rates"), Some("0.009/0.02"));
    }
    // Nothing keeps generation 1's file mapped, its disk space held: the receivers
    // remap on their next call, the processes that route none let go at the start.
    let replaced = format!("{} (deleted)", snap.display());
    for (pid, what) in k.processes() {
        if what.starts_with("udp receiver") {
            continue;
        }
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        assert!(!maps.contains(&replaced), "{what} maps {replaced}");
    }
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["snapshot.generation"], "2");
    assert_eq!(stats["snapshot.reloads"], "1");
    assert!(k.log().contains("generation 2 published to all processes"));
    assert!(!k.log().contains("replaced the newer"));

    // A rollback to generation 1 is served, and logged as one.
    data.generation = 1;
    data.cheap.1 = "0.005";
    data.publish(&snap);
    let reloaded = k.rpc("warp.reload");
    assert_eq!(reloaded["previous"], "2");
    assert_eq!(reloaded["generation"], "1");
    for _ in 0..8 {
        let reply = k.request("INVITE", "");
        assert_eq!(reply.header("X-Warp-Vendor"), Some("CHEAP"));
    }
    assert!(k
        .log()
        .contains("generation 1 replaced the newer generation 2"));
}

#[test]
fn a_corrupt_snapshot_is_refused_on_reload_and_the_old_one_keeps_serving() {
    let (dir, k) = start_on_test_data(Script::Native(ROUTE));
    let snap = dir.path().join("routing.snap");
    let good = std::fs::read(&snap).unwrap();

    // Truncated, then one payload byte flipped: both refused.
    let truncated = dir.path().join("truncated");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    std::fs::rename(&truncated, &snap).unwrap();
    let fault = k.rpc_args(&["warp.reload"]).unwrap_err();
    assert!(fault.contains("truncated"), "{fault}");
    assert!(fault.contains("generation 1 keeps serving"), "{fault}");

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    std::fs::write(dir.path().join("flipped"), &flipped).unwrap();
    std::fs::rename(dir.path().join("flipped"), &snap).unwrap();
    let fault = k.rpc_args(&["warp.reload"]).unwrap_err();
    assert!(fault.contains("corrupt"), "{fault}");

    for _ in 0..6 {
        let reply = k.request("INVITE", "");
        assert_eq!(
            (reply.code, reply.header("X-Warp-Vendor")),
            (200, Some("CHEAP"))
        );
    }
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["snapshot.generation"], "1");
    assert_eq!(stats["snapshot.refused"], "2");
    assert_eq!(stats["snapshot.reloads"], "0");
    let log = k.log();
    assert!(log.contains("refused (snapshot is truncated"), "{log}");
    assert!(log.contains("refused (snapshot data is corrupt"), "{log}");
}

/// With `reload_check`, a generation renamed over the path (as `warp compile` and the
/// API publish) is served without `warp.reload`; a corrupt one is refused once, not at
/// every look, and the old one serves until a sound one follows.
#[test]
fn reload_check_serves_a_published_generation_without_kamcmd() {
    let mut data = support::dataset::Data::default();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    data.publish(&snap);
    let params = [("snapshot", snap.to_str().unwrap()), ("reload_check", "1")];
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    let vendor = |k: &Kamailio| {
        k.request("INVITE", "")
            .header("X-Warp-Vendor")
            .map(str::to_owned)
    };
    assert_eq!(vendor(&k).as_deref(), Some("CHEAP"));

    data.generation = 2;
    data.cheap.1 = "0.012";
    data.publish(&snap);
    wait_for_stat(&k, "snapshot.reloads", "1");
    for _ in 0..6 {
        assert_eq!(vendor(&k).as_deref(), Some("DEAR"));
    }
    assert!(
        k.log().contains("a new file at the path (reload_check)"),
        "{}",
        k.log()
    );

    let good = std::fs::read(&snap).unwrap();
    std::fs::write(dir.path().join("half"), &good[..good.len() / 2]).unwrap();
    std::fs::rename(dir.path().join("half"), &snap).unwrap();
    wait_for_stat(&k, "snapshot.refused", "1");
    // Two more looks find the same refused file: not verified, nor logged, again.
    std::thread::sleep(Duration::from_millis(2500));
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["snapshot.refused"].as_str(),
            stats["snapshot.generation"].as_str()
        ),
        ("1", "2")
    );
    assert_eq!(vendor(&k).as_deref(), Some("DEAR"));

    data.generation = 3;
    data.cheap.1 = "0.004";
    data.publish(&snap);
    wait_for_stat(&k, "snapshot.reloads", "2");
    assert_eq!(vendor(&k).as_deref(), Some("CHEAP"));
    assert_eq!(k.rpc("warp.stats")["snapshot.generation"], "3");
}

/// `cp` or `scp` onto the served path truncates, then rewrites, the very file every
/// process maps. The first worker to read a page past the new end used to die of
/// SIGBUS and take Kamailio down; now its call gets the fallback, and each process
/// maps the file again once it verifies (at once, or within a second).
#[test]
fn a_snapshot_rewritten_in_place_never_takes_kamailio_down() {
    let mut data = support::dataset::Data::default();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    data.publish(&snap);
    let k = Kamailio::start(
        &[
            ("snapshot", snap.to_str().unwrap()),
            ("fallback_code", "480"),
            ("fallback_reason", "No Routing Data"),
        ],
        Script::Native(ROUTE),
    );
    assert_eq!(
        k.request("INVITE", "").header("X-Warp-Vendor"),
        Some("CHEAP")
    );
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let mapped = inode(&snap);

    // cp's first step: the mapped file is cut to nothing. Fresh sockets, so that
    // both workers take some.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&snap)
        .unwrap();
    for _ in 0..8 {
        let reply = k.request("INVITE", "");
        assert_eq!(
            (reply.code, reply.reason.as_str()),
            (480, "No Routing Data")
        );
    }

    // Then the new contents, into the same file.
    data.generation = 2;
    data.cheap.1 = "0.012";
    let next = dir.path().join("next.snap");
    data.publish(&next);
    std::fs::write(&snap, std::fs::read(&next).unwrap()).unwrap();
    assert_eq!(inode(&snap), mapped);
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..8 {
        let reply = k.request("INVITE", "");
        assert_eq!(reply.header("X-Warp-Vendor"), Some(rates(&data)));
        assert_eq!(reply.header("X-Warp-Rates"), Some("0.009/0.02"));
    }
    let log = k.log();
    assert!(
        log.contains("was rewritten in place under its mapping"),
        "{log}"
    );
    assert!(
        log.contains("generation 2 mapped again after it was rewritten"),
        "{log}"
    );
}

/// One RPC command through jsonrpcs' datagram socket `socket` (another process than
/// ctl's); its `result`, or the error.
fn jsonrpc(dir: &Path, socket: &Path, method: &str) -> serde_json::Value {
    let client = dir.join(format!("jsonrpc-client-{method}.sock"));
    let _ = std::fs::remove_file(&client);
    let sock = std::os::unix::net::UnixDatagram::bind(&client).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = serde_json::json!({"jsonrpc": "2.0", "method": method, "id": 1});
    sock.send_to(request.to_string().as_bytes(), socket)
        .unwrap();
    let mut buf = vec![0; 65536];
    let n = sock.recv(&mut buf).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    reply.get("result").unwrap_or(&reply).clone()
}

#[test]
fn a_reload_outrun_by_another_publishes_the_file_the_path_names_now() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    let rpc_sock = dir.path().join("jsonrpc.sock");
    let mut data = support::dataset::Data::default();
    data.publish(&snap);
    let cfg = format!(
        "loadmodule \"jsonrpcs.so\"\nmodparam(\"jsonrpcs\", \"transport\", 4)\n\
         modparam(\"jsonrpcs\", \"dgram_socket\", \"{}\")\nrequest_route {{\n{ROUTE}\n}}\n",
        rpc_sock.display()
    );
    let k = Kamailio::start(&[("snapshot", snap.to_str().unwrap())], Script::Cfg(&cfg));
    // Generation 2 is large: ctl's process takes a while to verify it...
    data.generation = 2;
    data.publish_padded(&snap, 256 << 20);
    std::thread::scope(|s| {
        let slow = s.spawn(|| k.rpc("warp.reload"));
        std::thread::sleep(Duration::from_millis(300));
        // ... while generation 3 is published and reloaded through jsonrpcs.
        data.generation = 3;
        data.publish(&snap);
        assert_eq!(
            jsonrpc(dir.path(), &rpc_sock, "warp.reload")["generation"],
            3
        );
        assert!(!slow.is_finished(), "the first reload was not outrun");
        // The first reload, finishing last, publishes what the path names now.
        assert_eq!(slow.join().unwrap()["generation"], "3");
    });
    assert_eq!(k.rpc("warp.stats")["snapshot.generation"], "3");
    assert_eq!(
        jsonrpc(dir.path(), &rpc_sock, "warp.stats")["snapshot"]["generation"],
        "3"
    );
    for _ in 0..6 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    let log = k.log();
    assert!(!log.contains("was replaced after warp.reload"), "{log}");
}

#[test]
fn a_worker_whose_remap_fails_keeps_its_snapshot_and_retries_once_the_file_changes() {
    let mut data = support::dataset::Data::default();
    let (dir, snap, k) = start_on(&data, Script::Native(ROUTE));
    let vendors = |calls| -> Vec<Option<String>> {
        (0..calls)
            .map(|_| {
                k.request("INVITE", "")
                    .header("X-Warp-Vendor")
                    .map(Into::into)
            })
            .collect()
    };
    // Generation 2 (DEAR cheaper) is verified and published...
    data.generation = 2;
    data.cheap.1 = "0.012";
    data.publish(&snap);
    assert_eq!(k.rpc("warp.reload")["generation"], "2");
    // ... but before the workers remap, a broken file is renamed over it.
    let good = std::fs::read(&snap).unwrap();
    let broken = dir.path().join("broken");
    std::fs::write(&broken, &good[..good.len() / 2]).unwrap();
    std::fs::rename(&broken, &snap).unwrap();
    let old = vec![Some("CHEAP".to_owned()); 6];
    assert_eq!(vendors(6), old, "{}", k.log());
    // The same broken file is not tried on every call, nor logged each time.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(vendors(6), old);
    let refusals = k.log().matches("snapshot remap refused").count();
    assert!((1..=2).contains(&refusals), "{}", k.log());

    // A sound file replaces it: each worker maps it within a second, verified in full.
    data.generation = 3;
    data.publish(&snap);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(vendors(8), vec![Some("DEAR".to_owned()); 8], "{}", k.log());
    assert!(
        k.log().contains(
            "was replaced after warp.reload verified generation 2: this process maps generation 3"
        ),
        "{}",
        k.log()
    );
}

#[test]
fn reload_under_sustained_load_fails_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("routing.snap");
    let mut data = support::dataset::Data::with_gateways();
    data.publish(&snap);
    let cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
    let dear = Uas::start(dir.path(), data.dear.0, Answer::Accept);
    let k = Kamailio::start(&[("snapshot", snap.to_str().unwrap())], Script::Cfg(RELAY));
    let mut uac = Uac::new(k.port, dir.path(), 400, 80).spawn();
    // Flip the cheaper vendor every 0.8 s while calls flow.
    for generation in 2..=5 {
        std::thread::sleep(Duration::from_millis(800));
        data.generation = generation;
        data.cheap.1 = if generation % 2 == 0 {
            "0.012"
        } else {
            "0.004"
        };
        data.publish(&snap);
        assert_eq!(k.rpc("warp.reload")["generation"], generation.to_string());
    }
    let status = uac.wait().unwrap();
    assert!(
        status.success(),
        "sipp saw failed calls ({status}):\n{}",
        k.log()
    );
    let (to_cheap, to_dear) = (cheap.invites(), dear.invites());
    assert_eq!(
        to_cheap + to_dear,
        400,
        "each call reached exactly one vendor"
    );
    assert!(to_cheap > 0 && to_dear > 0, "{to_cheap} / {to_dear}");
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["snapshot.generation"], "5");
    assert_eq!(stats["warp_route.calls"], "400");
    assert_eq!(stats["warp_route.errors"], "0");
}
