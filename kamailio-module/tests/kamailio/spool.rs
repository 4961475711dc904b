//! The CDR spool (`cdr_spool`): events kept on disk while Redis is down or refuses them,
//! and sent once it takes them or on the next run, whatever became of the files (another
//! process's pid, a live writer's lock, unreadable, cut short, over `cdr_spool_max_mb`).

use super::{wait_for_stat, ROUTE};
use crate::support::{self, Kamailio, Script};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The modparams of a CDR spool in `dir/spool` while Redis is down, with the test
/// dataset's snapshot.
struct SpoolParams {
    snap: String,
    url: String,
    spool: std::path::PathBuf,
}

impl SpoolParams {
    /// Publishes the snapshot in `dir` and starts and stops a Redis there (its URL then
    /// refuses connections); the Redis is the test's to restart.
    fn redis_down(dir: &Path) -> (support::redis::Redis, SpoolParams) {
        let mut redis = support::redis::Redis::start(dir);
        redis.stop();
        let params = SpoolParams::new(dir, redis.url());
        (redis, params)
    }

    /// Publishes the snapshot in `dir`; CDR events go to the Redis at `url`.
    fn new(dir: &Path, url: String) -> SpoolParams {
        let snap = dir.join("routing.snap");
        support::dataset::publish(&snap);
        SpoolParams {
            snap: snap.to_str().unwrap().to_owned(),
            url,
            spool: dir.join("spool"),
        }
    }

    fn with<'a>(&'a self, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut params = vec![
            ("snapshot", self.snap.as_str()),
            ("redis_url", &self.url),
            ("cdr_stream", "warp:cdr:raw"),
            ("cdr_spool", self.spool.to_str().unwrap()),
        ];
        params.extend_from_slice(more);
        params
    }
}

#[test]
fn cdr_events_spooled_while_redis_is_down_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut redis, spooled) = SpoolParams::redis_down(dir.path());
    let spool = &spooled.spool;
    // Room for all 40 in memory, whichever worker takes them and however slowly the
    // disk takes a batch: what this shows is that they are on disk, not in memory,
    // when Kamailio stops (without the spool they are lost then).
    let params = spooled.with(&[("cdr_buffer", "40")]);
    let mut k = Kamailio::start(&params, Script::Native(ROUTE));
    for _ in 0..40 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    wait_for_stat(&k, "cdr.spooled", "40");
    assert_eq!(k.rpc("warp.stats")["cdr.overflow"], "0");
    let log = k.stop();
    assert!(log.contains("spooling them"), "{log}");
    assert!(!log.contains("are lost"), "{log}");
    let spooled: usize = std::fs::read_dir(spool)
        .unwrap()
        .map(|f| {
            std::fs::read_to_string(f.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(spooled, 40);
    // A crash in mid-write leaves a cut-off last line: skipped and counted, not sent,
    // even cut just after a `}` (a Call-ID may hold one).
    let file = std::fs::read_dir(spool)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"event\":\"start\",\"call_id\":\"a}");
    std::fs::write(&file, text).unwrap();
    // Another run's file, one event and a last line cut inside a character.
    let mut other = b"{\"event\":\"start\",\"call_id\":\"other-run\"}\n".to_vec();
    other.extend_from_slice(b"{\"event\":\"start\",\"vendor\":\"Telef\xc3");
    std::fs::write(spool.join("cdr-99999999-1.jsonl"), other).unwrap();

    // The next run, with Redis back, sends the last runs' spool before any call.
    redis.restart();
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    let cdrs = redis.wait_for("warp:cdr:raw", 41, Duration::from_secs(15));
    assert_eq!(cdrs.len(), 41, "{}", k.log());
    assert!(cdrs.iter().all(|c| c["event"] == "start"));
    wait_for_stat(&k, "cdr.unspooled", "41");
    let log = k.log();
    // "… (N cut-off lines skipped)", once per sender that replayed.
    let pieces: Vec<&str> = log.split(" cut-off lines skipped").collect();
    let skipped: usize = pieces[..pieces.len() - 1]
        .iter()
        .map(|before| before.rsplit('(').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(skipped, 2, "{log}");
    assert_eq!(std::fs::read_dir(spool).unwrap().count(), 0);
    // Its own events follow.
    assert_eq!(k.request("INVITE", "").code, 200);
    assert_eq!(
        redis
            .wait_for("warp:cdr:raw", 42, Duration::from_secs(15))
            .len(),
        42
    );
}

#[test]
fn a_spool_file_whose_pid_another_process_has_now_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let spooled = SpoolParams::new(dir.path(), redis.url());
    std::fs::create_dir(&spooled.spool).unwrap();
    // Spooled an hour ago by a process whose pid now names another one, started since
    // (as after a reboot): that one holds no spool file.
    let mut other = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let hour_ago = (std::time::SystemTime::now() - Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let events: String = (0..3)
        .map(|i| format!("{{\"event\":\"start\",\"call_id\":\"before-reboot-{i}\"}}\n"))
        .collect();
    let file = spooled
        .spool
        .join(format!("cdr-{}-{hour_ago}.jsonl", other.id()));
    std::fs::write(&file, events).unwrap();

    let k = Kamailio::start(&spooled.with(&[]), Script::Native(ROUTE));
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(15));
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(cdrs.len(), 3, "{}", k.log());
    assert!(cdrs
        .iter()
        .all(|c| c["call_id"].as_str().unwrap().starts_with("before-reboot-")));
    wait_for_stat(&k, "cdr.unspooled", "3");
    assert_eq!(std::fs::read_dir(&spooled.spool).unwrap().count(), 0);
}

/// A spool file is its writer's for as long as the writer has it open, whatever the
/// clocks say. Here a live writer's file is named as if written long before the
/// writer started, as after the clock stepped forward while it spooled: taken from
/// under it, what it wrote next went to a deleted file and was lost.
#[test]
fn a_spool_file_its_live_writer_holds_is_not_taken_whatever_the_clock_says() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let spooled = SpoolParams::new(dir.path(), redis.url());
    std::fs::create_dir(&spooled.spool).unwrap();
    let (go, wrote) = (dir.path().join("go"), dir.path().join("wrote"));
    // A writer as a sender is: its file open and locked; three events now, a fourth
    // once told to (and then it says so).
    let event = |i: usize| format!("'{{\"event\":\"start\",\"call_id\":\"held-{i}\"}}'");
    let script = format!(
        "f=\"$0/cdr-$$-1.jsonl\"; exec 9>>\"$f\"; flock -x 9; printf '%s\\n' {} {} {} >&9; \
         while [ ! -e \"$1\" ]; do sleep 0.05; done; printf '%s\\n' {} >&9; : >\"$2\"; \
         exec sleep 60",
        event(0),
        event(1),
        event(2),
        event(3)
    );
    let mut writer = Command::new("sh")
        .args(["-c", &script])
        .arg(&spooled.spool)
        .arg(&go)
        .arg(&wrote)
        .spawn()
        .unwrap();
    let file = spooled.spool.join(format!("cdr-{}-1.jsonl", writer.id()));
    let lines = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines(&file) < 3 {
        assert!(Instant::now() < deadline, "the writer wrote nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut k = Kamailio::start(&spooled.with(&[]), Script::Native(ROUTE));
    // Long enough for the first worker's sender to try Redis and the spool.
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(&go, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !wrote.exists() {
        assert!(
            Instant::now() < deadline,
            "the writer never wrote its fourth event"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = writer.kill();
    let _ = writer.wait();
    k.stop();

    // The writer gone, the next run sends its file, whole.
    let k = Kamailio::start(&spooled.with(&[]), Script::Native(ROUTE));
    let cdrs = redis.wait_for("warp:cdr:raw", 4, Duration::from_secs(10));
    let calls: BTreeSet<&str> = cdrs.iter().filter_map(|c| c["call_id"].as_str()).collect();
    assert_eq!(
        calls,
        BTreeSet::from(["held-0", "held-1", "held-2", "held-3"]),
        "{}",
        k.log()
    );
    wait_for_stat(&k, "cdr.unspooled", "4");
    assert_eq!(std::fs::read_dir(&spooled.spool).unwrap().count(), 0);
}

/// A spool entry that cannot be read (here a directory under a spool file's name; a
/// bad sector does the same) is left and logged: the files after it are sent all the
/// same, and Redis, which took everything, is not taken for down.
#[test]
fn a_spool_file_that_cannot_be_read_holds_back_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let spooled = SpoolParams::new(dir.path(), redis.url());
    std::fs::create_dir(&spooled.spool).unwrap();
    // Both of processes no longer alive; the unreadable one sorts first.
    let unreadable = spooled.spool.join("cdr-99999998-1.jsonl");
    std::fs::create_dir(&unreadable).unwrap();
    let events: String = (0..3)
        .map(|i| format!("{{\"event\":\"start\",\"call_id\":\"earlier-{i}\"}}\n"))
        .collect();
    std::fs::write(spooled.spool.join("cdr-99999999-1.jsonl"), events).unwrap();

    let k = Kamailio::start(&spooled.with(&[]), Script::Native(ROUTE));
    let cdrs = redis.wait_for("warp:cdr:raw", 3, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 3, "{}", k.log());
    wait_for_stat(&k, "cdr.unspooled", "3");
    let log = k.log();
    assert!(log.contains("cdr-99999998-1.jsonl"), "{log}");
    assert!(!log.contains("Redis not taking CDR events"), "{log}");
    // The rest left the spool; the unreadable entry stays, taken.
    let left: Vec<String> = std::fs::read_dir(&spooled.spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("cdr-99999998-1.jsonl."), "{left:?}");
    // Calls go on reporting.
    assert_eq!(k.request("INVITE", "").code, 200);
    assert_eq!(
        redis
            .wait_for("warp:cdr:raw", 4, Duration::from_secs(10))
            .len(),
        4,
        "{}",
        k.log()
    );
    assert_eq!(k.rpc("warp.stats")["cdr.redis_errors"], "0", "{}", k.log());
}

/// A spool directory that can no longer be listed (removed while Kamailio runs, with
/// what it held) is the spool's failure, not Redis's: once Redis is back, the events
/// of calls reach it at once rather than one batch per retry, the sender taking every
/// replay for a new outage.
#[test]
fn a_spool_directory_removed_while_running_holds_back_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let (mut redis, spooled) = SpoolParams::redis_down(dir.path());
    let k = Kamailio::start(&spooled.with(&[]), Script::Native(ROUTE));
    for _ in 0..5 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    wait_for_stat(&k, "cdr.spooled", "5");
    std::fs::remove_dir_all(&spooled.spool).unwrap();
    redis.restart();
    for _ in 0..20 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    let cdrs = redis.wait_for("warp:cdr:raw", 20, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 20, "{}", k.log());
    let errors = || k.rpc("warp.stats")["cdr.redis_errors"].clone();
    let before = errors();
    // Longer than the sender's longest retry backoff.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(errors(), before, "{}", k.log());
    let log = k.log();
    assert!(log.contains("Redis is back"), "{log}");
    assert!(log.contains("spooled CDR events: "), "{log}");
}

/// An earlier run's spool is sent while calls go on: the sender sending it still takes
/// the events of its process's calls, so none is dropped on a full buffer meanwhile,
/// however long the spool takes to send.
#[test]
fn events_of_calls_made_while_a_spool_is_sent_are_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let spooled = SpoolParams::new(dir.path(), redis.url());
    std::fs::create_dir(&spooled.spool).unwrap();
    // A long outage's worth, left by a process that no longer exists.
    const OLD: usize = 300_000;
    let events: String = (0..OLD)
        .map(|i| format!("{{\"event\":\"start\",\"call_id\":\"earlier-run-{i}\"}}\n"))
        .collect();
    std::fs::write(spooled.spool.join("cdr-99999999-1.jsonl"), events).unwrap();
    let k = Kamailio::start(
        &spooled.with(&[("cdr_buffer", "20")]),
        Script::Native(ROUTE),
    );
    // At 50 calls a second, under the trunk's limit of 100.
    const CALLS: usize = 100;
    for _ in 0..CALLS {
        assert_eq!(k.request("INVITE", "").code, 200, "{}", k.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Delivery is at least once: an exchange that times out mid-file (a loaded machine,
    // a slow fsync) sends the file again from its start, so Redis may hold copies. Done
    // once the spool is sent and Redis holds every event.
    let xlen = || {
        redis
            .cli(&["XLEN", "warp:cdr:raw"])
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    let spooled_left = || std::fs::read_dir(&spooled.spool).unwrap().count();
    let done = || {
        use std::cmp::Ordering::*;
        spooled_left() == 0
            && match xlen().cmp(&(OLD + CALLS)) {
                Less => false,
                Equal => true,
                Greater => {
                    let cdrs = redis.cdrs("warp:cdr:raw");
                    let calls: BTreeSet<&str> =
                        cdrs.iter().filter_map(|c| c["call_id"].as_str()).collect();
                    calls.len() == OLD + CALLS
                }
            }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        let stats = k.rpc("warp.stats");
        assert_eq!(
            stats["cdr.overflow"], "0",
            "calls' events dropped while the spool was sent"
        );
        assert!(
            Instant::now() < deadline,
            "{} entries in Redis for {} events, {} spool files left\n{}",
            xlen(),
            OLD + CALLS,
            spooled_left(),
            k.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = k.rpc("warp.stats");
    assert_eq!(stats["cdr.overflow"], "0");
    assert_eq!(stats["cdr.queued"], CALLS.to_string());
}

/// A local port that accepts no connection and refuses none, as a Redis behind a
/// firewall that drops packets would: its listener's accept queue is full, so the
/// kernel drops every further SYN. Keep the pair alive while the port is needed.
fn blackhole() -> (std::net::TcpListener, Vec<std::net::TcpStream>, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    while let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        queued.push(stream);
        assert!(queued.len() < 10_000, "the accept queue never filled");
    }
    (listener, queued, addr.port())
}

#[test]
fn a_redis_that_drops_packets_holds_the_spooling_sender_only_briefly() {
    let dir = tempfile::tempdir().unwrap();
    let (_listener, _queued, port) = blackhole();
    let spooled = SpoolParams::new(dir.path(), format!("redis://127.0.0.1:{port}"));
    let params = spooled.with(&[("cdr_buffer", "20")]);
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    // 80 calls in about 2 s, some 20 a second into each worker's queue of 20: a
    // connection attempt that hung for long would overflow it.
    for _ in 0..80 {
        assert_eq!(k.request("INVITE", "").code, 200);
        std::thread::sleep(Duration::from_millis(25));
    }
    wait_for_stat(&k, "cdr.spooled", "80");
    assert_eq!(k.rpc("warp.stats")["cdr.overflow"], "0", "{}", k.log());
    assert!(
        k.log().contains("Redis not taking CDR events"),
        "{}",
        k.log()
    );
}

#[test]
fn a_full_spool_holds_new_events_in_memory_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let (mut redis, spooled) = SpoolParams::redis_down(dir.path());
    let spool = &spooled.spool;
    // An earlier run's spool (a pid no process can have) already holds the bound, 1 MB.
    std::fs::create_dir(spool).unwrap();
    let pad = "x".repeat(450);
    let old: String = (0..2400)
        .map(|i| format!("{{\"event\":\"start\",\"call_id\":\"earlier-{i}\",\"pad\":\"{pad}\"}}\n"))
        .collect();
    assert!(old.len() > 1 << 20);
    std::fs::write(spool.join("cdr-99999999-1.jsonl"), &old).unwrap();
    let params = spooled.with(&[("cdr_spool_max_mb", "1")]);
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    for _ in 0..40 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    let full = "holds its cdr_spool_max_mb (1 MB)): holding them in memory";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !k.log().contains(full) {
        assert!(Instant::now() < deadline, "{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = k.rpc("warp.stats");
    assert_eq!(
        (
            stats["cdr.spooled"].as_str(),
            stats["cdr.overflow"].as_str()
        ),
        ("0", "0")
    );
    assert_eq!(std::fs::read_dir(spool).unwrap().count(), 1);
    // Logged once per process and outage, not on every retry.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(k.log().matches(full).count() <= 2, "{}", k.log());

    // Redis back: the earlier run's events and this run's held ones all arrive.
    redis.restart();
    let calls = redis.wait_for_calls("warp:cdr:raw", 2440, Duration::from_secs(20));
    assert_eq!(calls.len(), 2440, "{}", k.log());
    let earlier = calls.iter().filter(|c| c.starts_with("earlier-")).count();
    assert_eq!(earlier, 2400);
    // The file goes once sent whole; the count includes what a cut-short pass sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(spool).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let unspooled: u64 = k.rpc("warp.stats")["cdr.unspooled"].parse().unwrap();
    assert!(unspooled >= 2400, "{unspooled}");
}

/// A Redis that hangs (connections up, no answer) holds events in a spooling sender's
/// memory only briefly: it gives up on Redis after 200 ms (not 2 s) and spools, so
/// stopping Kamailio then loses none; the next run sends them.
#[test]
fn a_stop_while_redis_hangs_loses_no_event_with_a_spool() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let spooled = SpoolParams::new(dir.path(), redis.url());
    let params = spooled.with(&[]);
    let mut k = Kamailio::start(&params, Script::Native(ROUTE));
    assert_eq!(k.request("INVITE", "").code, 200);
    assert_eq!(
        redis
            .wait_for("warp:cdr:raw", 1, Duration::from_secs(5))
            .len(),
        1
    );
    redis.freeze(true);
    for _ in 0..10 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    // Well before the exchange's own timeout gives up on Redis, every event is on disk.
    let sent = Instant::now();
    wait_for_stat(&k, "cdr.spooled", "10");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    k.stop();
    redis.freeze(false);
    let _next = Kamailio::start(&params, Script::Native(ROUTE));
    let calls = redis.wait_for_calls("warp:cdr:raw", 11, Duration::from_secs(10));
    assert_eq!(calls.len(), 11, "{calls:?}");
}

/// A spool write the disk cut short (ENOSPC) leaves no half line for the next write to
/// run into: every event arrives, each a JSON object of its own.
#[test]
fn a_spool_write_the_disk_cut_short_merges_no_events() {
    let dir = tempfile::tempdir().unwrap();
    let (mut redis, spooled) = SpoolParams::redis_down(dir.path());
    let spool = spooled.spool.clone();
    std::fs::create_dir(&spool).unwrap();
    // A 64 kB file system for the spool, nearly filled.
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&spool)
        .status()
        .unwrap();
    assert!(mount.success(), "mount tmpfs (the tests run as root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(spool.clone());
    let filler = spool.join("filler");
    std::fs::write(&filler, vec![b'x'; 56 * 1024]).unwrap();
    let k = Kamailio::start(&spooled.with(&[]), Script::Native(ROUTE));
    let mut calls = 0;
    while !k.log().contains("cannot spool CDR events") {
        assert!(calls < 200, "the spool never filled up:\n{}", k.log());
        assert_eq!(k.request("INVITE", "").code, 200);
        calls += 1;
        std::thread::sleep(Duration::from_millis(30));
    }
    // Space comes back (another spool sent, logs rotated): the next write succeeds.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(k.request("INVITE", "").code, 200);
    calls += 1;
    // Every event on disk, the held one written after its cut-off try.
    wait_for_stat(&k, "cdr.spooled", &calls.to_string());
    redis.restart();
    let cdrs = redis.wait_for("warp:cdr:raw", calls, Duration::from_secs(15));
    let ids: BTreeSet<&str> = cdrs
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!((cdrs.len(), ids.len()), (calls, calls), "{}", k.log());
}

/// Redis answering every XADD with an error reply (here WRONGTYPE, the stream's key
/// holding a string; LOADING while a restarted Redis reads its data back and READONLY
/// after a failover take the same path): each event is kept, in memory or in the
/// spool, and arrives once Redis takes it.
fn events_redis_refuses_arrive_once_it_takes_them(spool: bool) {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    redis.cli(&["SET", "warp:cdr:raw", "not a stream"]);
    let spooled = SpoolParams::new(dir.path(), redis.url());
    let mut params = spooled.with(&[]);
    if !spool {
        params.retain(|&(name, _)| name != "cdr_spool");
    }
    let k = Kamailio::start(&params, Script::Native(ROUTE));
    for _ in 0..20 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    let count = |key: &str| k.rpc("warp.stats")[key].parse::<u64>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count("cdr.rejected") < 20 {
        assert!(Instant::now() < deadline, "{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    if spool {
        wait_for_stat(&k, "cdr.spooled", "20");
    }
    assert_eq!(redis.cli(&["TYPE", "warp:cdr:raw"]).trim(), "string");
    assert_eq!((count("cdr.sent"), count("cdr.overflow")), (0, 0));
    assert!(k.log().contains("WRONGTYPE"), "{}", k.log());

    redis.cli(&["DEL", "warp:cdr:raw"]);
    let cdrs = redis.wait_for("warp:cdr:raw", 20, Duration::from_secs(15));
    assert!(cdrs.iter().all(|c| c["event"] == "start"));
    if spool {
        // At least once: a refusal in mid-file (the key deleted between two entries of
        // one pipeline) would send the file's head again.
        assert!(cdrs.len() >= 20, "{}", k.log());
        wait_for_stat(&k, "cdr.spooled", "20");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_dir(&spooled.spool).unwrap().count() > 0 {
            assert!(Instant::now() < deadline, "{}", k.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    } else {
        assert_eq!(cdrs.len(), 20, "{}", k.log());
        wait_for_stat(&k, "cdr.sent", "20");
    }
    assert!(k.log().contains("Redis is back"), "{}", k.log());
}

#[test]
fn events_redis_refuses_wait_in_memory_and_arrive_once_it_takes_them() {
    events_redis_refuses_arrive_once_it_takes_them(false);
}

#[test]
fn events_redis_refuses_are_spooled_and_arrive_once_it_takes_them() {
    events_redis_refuses_arrive_once_it_takes_them(true);
}

#[test]
fn the_spool_belongs_to_the_user_kamailio_drops_to() {
    let dir = tempfile::tempdir().unwrap();
    // The workers, as nobody, must reach the spool inside the temp dir.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (_redis, spooled) = SpoolParams::redis_down(dir.path());
    let spool = &spooled.spool;
    let params = spooled.with(&[]);
    let args = ["-u", "nobody", "-g", "nogroup"].map(String::from);
    let k = Kamailio::start_with(&params, Script::Native(ROUTE), &args);
    for _ in 0..3 {
        assert_eq!(k.request("INVITE", "").code, 200);
    }
    wait_for_stat(&k, "cdr.spooled", "3");
    let id = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let nobody: u32 = String::from_utf8(id.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(spool).unwrap().uid(), nobody);
    for file in std::fs::read_dir(spool).unwrap() {
        assert_eq!(file.unwrap().metadata().unwrap().uid(), nobody);
    }
}
