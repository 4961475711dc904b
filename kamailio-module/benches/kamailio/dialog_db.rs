//! The dialog-persistence variant (`WARP_BENCH_EDGE=dialog-db`): what `WITH_DIALOG_DB`
//! costs a carrier edge. The shipped kamailio.cfg runs twice side by side, as shipped
//! and with `WITH_DIALOG_DB` (its dialogs kept in Redis by db_redis, `db_mode` 1), each
//! relaying the edge variant's whole calls to one vendor gateway and writing its CDR
//! events to the same Redis. Per call: sipp's calls per second, the CPU of all of
//! Kamailio's processes and threads and that of Redis, the commands Redis ran, and the
//! datagrams the kernel dropped for a full socket buffer. `WARP_BENCH_BASELINE` adds the
//! shipped config on another warp.so build, to compare two builds.

use crate::support::redis::Redis;
use crate::support::{free_udp_port, Kamailio};
use crate::{edge, paired, prepare, processes, round, sorted, task_cpu_ns, Better, Cpus};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// sipp's calls in flight. Half the edge variant's: the shipped config keeps Kamailio's
/// default socket buffer (256 kB), which a burst of 256 call set-ups overflows once
/// each costs Redis round trips, and a BYE dropped three times outlives sipp's 5 s wait
/// for its 200 (the drops column shows what remains at this depth).
const IN_FLIGHT: usize = 128;

/// One side: its Kamailio and all its processes.
struct Setup {
    name: &'static str,
    k: Kamailio,
    pids: Vec<u32>,
}

/// The commands Redis has run so far for the edges: all but the bench's own (`INFO`,
/// `KEYS`, `CONFIG`, and redis-cli's `SELECT`).
fn commands(redis: &Redis) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| {
            !["info:", "keys:", "config|", "select:"]
                .iter()
                .any(|own| l.starts_with(own))
        })
        .filter_map(|l| {
            l.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// UDP datagrams the kernel has dropped so far for a full receive buffer (all sockets).
fn udp_buffer_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap_or(""), udp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Waits until every dialog has left Redis (seconds after its BYE: tm's wait timer) and
/// Redis has had no command for 300 ms (CDR events go out from a background thread), so
/// that a round's setup pays for them, not the next one.
fn settle(redis: &Redis) {
    let started = Instant::now();
    let mut last = None;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = commands(redis);
        let dialogs = redis.cli(&["-n", "1", "KEYS", "dialog:entry:*"]);
        if last == Some(now) && dialogs.trim().is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "Redis still busy two minutes after the round"
        );
        last = Some(now);
    }
}

pub fn run(scale: warp_datagen::Scale, calls: usize, rounds: usize, args: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let vendor_port = free_udp_port();
    let prepared = prepare(dir.path(), scale, Some(vendor_port));
    std::fs::write(dir.path().join("bench.xml"), edge::scenario()).unwrap();
    let redis = Redis::start(dir.path());
    // Redis as it ships (no append-only file): the tests' fsync on every write would
    // put the disk into every dialog write.
    redis.cli(&["CONFIG", "SET", "appendonly", "no"]);
    let vendor = edge::vendor(dir.path(), vendor_port);
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/kamailio/kamailio.cfg");
    // Relayed transactions and dialogs wait out their timers in shm; the shipped
    // config's per-call INFO line is left out (`--debug=1`): logging is not the cost
    // measured here.
    let mut args = args.to_vec();
    args.extend(["-m", "1024", "--debug=1"].map(String::from));
    let cpus = Cpus::detect();
    let built = crate::support::built_module();
    let mut variants: Vec<(&str, PathBuf, Vec<String>)> = vec![
        ("shipped config", built.clone(), Vec::new()),
        (
            "shipped config + WITH_DIALOG_DB",
            built,
            vec![
                "WITH_DIALOG_DB".into(),
                format!("DIALOG_DB_URL=\"{}/1\"", redis.url()),
            ],
        ),
    ];
    if let Ok(other) = std::env::var("WARP_BENCH_BASELINE") {
        variants.push((
            "shipped config, WARP_BENCH_BASELINE build",
            other.into(),
            Vec::new(),
        ));
    }
    let setups: Vec<Setup> = variants
        .into_iter()
        .enumerate()
        .map(|(i, (name, module, extra))| {
            let mut defines = vec![
                format!("WARP_SNAPSHOT=\"{}\"", prepared.snap.display()),
                format!("WARP_REDIS_URL=\"{}\"", redis.url()),
                format!(
                    "WARP_CDR_SPOOL=\"{}\"",
                    dir.path().join(format!("spool-{i}")).display()
                ),
                // sipp goes round the same 10,000 pairs of numbers, each again within
                // LOOP_WINDOW at these rates: the hairpin check would take them for loops.
                "LOOP_LIMIT=0".into(),
            ];
            defines.extend(extra);
            let k = Kamailio::start_file_module(&module, &cfg, &defines, &args);
            let (pids, _) = processes(&k);
            cpus.place(&pids);
            round(&k, &cpus, dir.path(), calls.min(2_000), IN_FLIGHT); // warm-up
            Setup { name, k, pids }
        })
        .collect();
    // Redis serves the edge: it runs where Kamailio runs, and its CPU is the edge's.
    cpus.place(&[redis.pid()]);
    cpus.generator(std::process::id());
    cpus.generator(vendor.pid());
    settle(&redis);

    // Per setup and round: calls/s; per call Kamailio's and Redis's CPU µs, Redis's
    // commands and the datagrams dropped.
    let mut cps = vec![Vec::new(); setups.len()];
    let mut kamailio_cpu = vec![Vec::new(); setups.len()];
    let mut redis_cpu = vec![Vec::new(); setups.len()];
    let mut total_cpu = vec![Vec::new(); setups.len()];
    let mut redis_commands = vec![Vec::new(); setups.len()];
    let mut drops = vec![Vec::new(); setups.len()];
    for r in 0..rounds {
        for i in (0..setups.len()).map(|j| (r + j) % setups.len()) {
            let s = &setups[i];
            let (k0, r0) = (task_cpu_ns(&s.pids), task_cpu_ns(&[redis.pid()]));
            let (c0, d0) = (commands(&redis), udp_buffer_drops());
            let done = round(&s.k, &cpus, dir.path(), calls, IN_FLIGHT);
            if let Some(errors) = done.failed {
                panic!(
                    "{}: sipp saw failed calls:\n{errors}\n{}",
                    s.name,
                    s.k.log()
                );
            }
            settle(&redis);
            let per_call = |n: u64| n as f64 / calls as f64;
            let k1 = task_cpu_ns(&s.pids) - k0;
            let r1 = task_cpu_ns(&[redis.pid()]) - r0;
            cps[i].push(calls as f64 / done.elapsed.as_secs_f64());
            kamailio_cpu[i].push(per_call(k1) / 1_000.0);
            redis_cpu[i].push(per_call(r1) / 1_000.0);
            total_cpu[i].push(per_call(k1 + r1) / 1_000.0);
            redis_commands[i].push(per_call(commands(&redis) - c0));
            drops[i].push(per_call(udp_buffer_drops() - d0));
        }
    }
    let median = |v: &Vec<f64>| sorted(v)[v.len() / 2];
    println!(
        "| setup | calls/s (median of {rounds} × {calls} calls, {IN_FLIGHT} in flight) \
         | Kamailio CPU µs/call | Redis CPU µs/call | Kamailio + Redis | Redis commands/call \
         | UDP datagrams dropped/call |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, s) in setups.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.4} |",
            s.name,
            median(&cps[i]),
            median(&kamailio_cpu[i]),
            median(&redis_cpu[i]),
            median(&total_cpu[i]),
            median(&redis_commands[i]),
            median(&drops[i])
        );
    }
    // Setup `a` against setup `b`, round by round.
    let compare = |title: &str, a: usize, b: usize| {
        println!();
        println!("Round by round, {title}:");
        println!("* calls/s: {}", paired(&cps, a, b, Better::Higher));
        println!(
            "* Kamailio CPU per call: {}",
            paired(&kamailio_cpu, a, b, Better::Lower)
        );
        println!(
            "* Kamailio + Redis CPU per call: {}",
            paired(&total_cpu, a, b, Better::Lower)
        );
    };
    compare("WITH_DIALOG_DB / as shipped", 1, 0);
    if setups.len() > 2 {
        compare("as shipped / the baseline build", 0, 2);
    }
}
