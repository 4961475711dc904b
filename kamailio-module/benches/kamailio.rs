//! Calls per second through a real Kamailio on loopback, in one run on one dataset:
//! a bare stateless reply, warp routing, and Kamailio's own `lcr` module loaded with the
//! same vendors and prefixes. Each answers every INVITE statelessly with a 302 whose
//! Contact is the R-URI it chose (404 when there is none; bare only rewrites the host),
//! written by the core from the R-URI, so the figures compare routing cost. A setup
//! that logs during the rounds fails: it would be measuring its log writes.
//!
//! `cargo bench -p warp-kamailio --bench kamailio` (env: `WARP_BENCH_SCALE` small|large,
//! `WARP_BENCH_CALLS` per round, default 20000; `WARP_BENCH_ROUNDS`, default 3;
//! `WARP_BENCH_MEM`, Kamailio's `-x`; `WARP_BENCH_BASELINE`, the path of another
//! warp.so build to run as a fourth setup, to compare two builds under the same load;
//! `WARP_BENCH_FLOOD`, calls per saturation round, default 200000, 0 for none;
//! `WARP_BENCH_COLD`, drop the page cache before Kamailio maps the snapshot;
//! `WARP_BENCH_EDGE=1`, the carrier-edge variant of [`edge`]: whole calls relayed
//! statefully, no saturation round, CPU counted over all of Kamailio's processes;
//! `WARP_BENCH_EDGE=dialog-db`, the shipped config with and without `WITH_DIALOG_DB`,
//! see [`dialog_db`]).
//! Prints Markdown for docs/BENCHMARKS.md.
//!
//! sipp is the ceiling of the CPS column for every setup; the routing cost is the
//! workers' CPU time per call, and the calls per second one worker core could answer at
//! that cost (1 s / CPU per call). After each sipp round the same setup takes a
//! saturation round from [`flood`], which answers the issue's question directly: how
//! many calls per second the workers' core can answer. sipp and the flood run on CPU 0
//! and the Kamailios on the other CPUs (`WARP_BENCH_PIN=0`: wherever the scheduler puts
//! them).

#[path = "kamailio/dialog_db.rs"]
mod dialog_db;
#[path = "kamailio/edge.rs"]
mod edge;
#[path = "kamailio/flood.rs"]
mod flood;
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)] // shared with the tests, which use the rest of it
mod support;

use flood::Flood;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{binary, Kamailio, Script};
use warp_core::model::{Dataset, RateKey, VendorKind};
use warp_core::{Number, RouteRequest, Snapshot};

/// sipp's calls in flight: enough to keep both workers busy, few enough not to queue.
const IN_FLIGHT: usize = 64;

/// One INVITE per call from the injection file (ANI; DNIS); any final reply ends it.
fn scenario() -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="warp bench">
{}  <recv response="302" optional="true" next="done"/>
  <recv response="404"/>
  <label id="done"/>
</scenario>
"#,
        support::sipp::invite("[field0]", "[field1]", "", "")
    )
}

const BARE: &str = r#"
request_route {
    if (is_method("ACK")) { exit; }
    rewritehostport("127.0.0.1:5060");
    sl_send_reply("302", "Moved Temporarily");
}
"#;

const WARP: &str = r#"
request_route {
    if (is_method("ACK")) { exit; }
    if (!warp_route()) {
        sl_send_reply("404", "No Route");
        exit;
    }
    sl_send_reply("302", "Moved Temporarily");
}
"#;

const LCR: &str = r#"
request_route {
    if (is_method("ACK")) { exit; }
    if (load_gws("1") != 1 || !next_gw()) {
        sl_send_reply("404", "No Route");
        exit;
    }
    sl_send_reply("302", "Moved Temporarily");
}
"#;

/// The setups' names in the tables: bare, warp, lcr, the baseline build.
struct Names {
    bare: &'static str,
    warp: &'static str,
    lcr: &'static str,
    baseline: &'static str,
}

const STATELESS: Names = Names {
    bare: "bare stateless 302",
    warp: "warp_route() + 302",
    lcr: "lcr load_gws()/next_gw() + 302",
    baseline: "warp_route() + 302, WARP_BENCH_BASELINE build",
};

const EDGE: Names = Names {
    bare: "bare t_relay() to one gateway",
    warp: "warp_route() + t_relay()",
    lcr: "lcr load_gws()/next_gw() + t_relay()",
    baseline: "warp_route() + t_relay(), WARP_BENCH_BASELINE build",
};

/// lcr's modules and parameters, its tables in the db_text directory `db`.
fn lcr_modules(db: &Path) -> String {
    format!(
        r#"
loadmodule "db_text.so"
loadmodule "lcr.so"
modparam("lcr", "db_url", "text://{}")
modparam("lcr", "gw_uri_avp", "$avp(i:709)")
modparam("lcr", "ruri_user_avp", "$avp(i:500)")
modparam("lcr", "lcr_rule_hash_size", 16384)
"#,
        db.display()
    )
}

/// The calls warp routes for customer `ban` now (no DNO, no "no route"), the only ones
/// sent in either variant: warp answers the others with a cheap 404 where lcr and bare
/// redirect or relay every call, which would flatter warp's per-call cost.
fn routable(snapshot: &[u8], ban: &str, calls: &[(String, String)]) -> Vec<(String, String)> {
    let snapshot = Snapshot::from_bytes(snapshot).expect("open the compiled snapshot");
    let at = chrono::Utc::now();
    calls
        .iter()
        .filter(|(ani, dnis)| {
            snapshot
                .route(&RouteRequest::new(ban, Some(ani), dnis, at))
                .is_ok()
        })
        .cloned()
        .collect()
}

/// The dataset, its snapshot and the calls every variant runs on.
struct Prepared {
    d: Dataset,
    bytes: Vec<u8>,
    snap: PathBuf,
    calls: Vec<(String, String)>,
}

/// Generates the dataset (the sipp trunk's limits lifted; every gateway at
/// `vendor_port` when given), publishes its snapshot in `dir` and writes `calls.csv`
/// there, sipp's injection file of the calls warp routes.
fn prepare(dir: &Path, scale: warp_datagen::Scale, vendor_port: Option<u16>) -> Prepared {
    let mut d = warp_datagen::generate(scale, 42);
    // The first customer's trunk is 127.0.0.1 (sipp); lift its limits for the bench.
    d.trunks[0].max_cps = 0;
    d.trunks[0].max_concurrent = 0;
    if let Some(port) = vendor_port {
        edge::point_gateways_at(&mut d, port);
    }
    let snap = dir.join("routing.snap");
    let bytes = warp_core::snapshot::compile(&d, 1).expect("compile");
    warp_core::snapshot::publish(&bytes, &snap).expect("publish");
    if std::env::var_os("WARP_BENCH_COLD").is_some() {
        // As after a reboot: Kamailio faults the snapshot in from disk, not from the
        // page cache its writer filled (needs root).
        let dropped = Command::new("sync").status().is_ok_and(|s| s.success())
            && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
        assert!(dropped, "WARP_BENCH_COLD: cannot drop the page cache");
    }
    let sample = warp_datagen::sample_calls(&d, 10_000, 7);
    let e164 = |n: &str| Number::parse(n).map_or(n.to_owned(), |n| format!("+{n}"));
    let sample: Vec<(String, String)> = sample
        .iter()
        .map(|(_, ani, dnis)| (e164(ani), e164(dnis)))
        .collect();
    let calls = routable(&bytes, &d.trunks[0].ban, &sample);
    let mut csv = String::from("SEQUENTIAL\n");
    for (ani, dnis) in &calls {
        let _ = writeln!(csv, "{ani};{dnis};");
    }
    std::fs::write(dir.join("calls.csv"), &csv).unwrap();
    Prepared {
        d,
        bytes,
        snap,
        calls,
    }
}

/// lcr's tables (db_text) from the dataset: one lcr gateway per vendor gateway (warp
/// keeps every gateway of every chosen vendor for failover, so lcr lists them too; a
/// `{national}` template becomes `strip` 2, dropping the `+1`; all at `gw_port` when
/// given, else each at a port of its own), one rule per
/// dialled-number prefix a vendor prices (DNIS, international and LRN decks, the latter
/// matched on the dialled number since lcr has no LNP), its targets ordered by rate.
/// OCN/LATA decks have no prefix and are left out.
fn lcr_tables(d: &Dataset, dir: &Path, gw_port: Option<u16>) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let mut gws = String::from(
        "id(int,auto) lcr_id(int) gw_name(string,null) ip_addr(string,null) hostname(string,null) \
         port(int,null) params(string,null) uri_scheme(int,null) transport(int,null) strip(int,null) \
         prefix(string,null) tag(string,null) flags(int) defunct(int,null) \n",
    );
    // Vendor index by id, and each vendor's lcr gateway ids in failover order.
    let mut ids = HashMap::new();
    let mut vendor_gws: Vec<Vec<usize>> = Vec::new();
    let mut gw_id = 0;
    for (i, v) in d.vendors.iter().enumerate() {
        ids.insert(v.id.clone(), i);
        let mut own = Vec::new();
        for (j, template) in v.gateways.iter().enumerate() {
            gw_id += 1;
            let strip = if template.contains("{national}") {
                2
            } else {
                0
            };
            let _ = writeln!(
                gws,
                "{gw_id}:1:{}-{}:127.0.0.1::{}::1:1:{strip}:::0:0",
                v.id,
                j + 1,
                gw_port.map_or(6000 + 1000 * j + i, usize::from)
            );
            own.push(gw_id);
        }
        vendor_gws.push(own);
    }
    // Each vendor's price per prefix.
    let mut prices: Vec<HashMap<String, rust_decimal::Decimal>> =
        vec![HashMap::new(); d.vendors.len()];
    for row in &d.vendor_rates {
        let (RateKey::Prefix(p), Some(&v)) = (&row.key, ids.get(&row.owner)) else {
            continue;
        };
        if d.vendors[v].kind == VendorKind::OcnLata || row.effective_to.is_some() {
            continue;
        }
        if let Some(rate) = row.rates.iter().flatten().next() {
            prices[v].entry(format!("+{p}")).or_insert(*rate);
        }
    }
    // One stopper rule per prefix any vendor prices, listing every vendor that covers
    // it — at the rate of that vendor's own longest prefix of it — cheapest first: the
    // choice warp makes (each vendor priced by its longest match, then by rate), not
    // lcr's default of preferring whichever vendors price the longest prefix.
    let all: BTreeSet<&String> = prices.iter().flat_map(HashMap::keys).collect();
    let by_prefix = all.into_iter().map(|prefix| {
        let mut vendors: Vec<(rust_decimal::Decimal, usize)> = prices
            .iter()
            .enumerate()
            .filter_map(|(v, own)| {
                let longest = (2..=prefix.len())
                    .rev()
                    .find_map(|n| own.get(&prefix[..n]))?;
                Some((*longest, v))
            })
            .collect();
        vendors.sort();
        let gws: Vec<usize> = vendors
            .iter()
            .flat_map(|&(_, v)| vendor_gws[v].iter().copied())
            .collect();
        (prefix, gws)
    });
    let mut rules = String::from(
        "id(int,auto) lcr_id(int) prefix(string,null) from_uri(string,null) request_uri(string,null) \
         mt_tvalue(string,null) stopper(int) enabled(int) \n",
    );
    let mut targets = String::from(
        "id(int,auto) lcr_id(int) rule_id(int) gw_id(int) priority(int) weight(int) \n",
    );
    let mut target_id = 0;
    for (rule_id, (prefix, gws)) in by_prefix.enumerate() {
        let rule_id = rule_id + 1;
        let _ = writeln!(rules, "{rule_id}:1:{prefix}::::1:1");
        for (priority, gw) in gws.iter().enumerate() {
            target_id += 1;
            let _ = writeln!(
                targets,
                "{target_id}:1:{rule_id}:{gw}:{}:1",
                priority.min(255)
            );
        }
    }
    let version = "id(int,auto) table_name(string) table_version(int) \n\
                   1:lcr_gw:3\n2:lcr_rule:3\n3:lcr_rule_target:1\n";
    std::fs::write(dir.join("version"), version).unwrap();
    std::fs::write(dir.join("lcr_gw"), gws).unwrap();
    std::fs::write(dir.join("lcr_rule"), rules).unwrap();
    std::fs::write(dir.join("lcr_rule_target"), targets).unwrap();
    target_id
}

/// One setup's Kamailio, started for the whole run.
struct Server {
    name: &'static str,
    k: Kamailio,
    /// The processes whose CPU a call costs: the SIP workers, or all with tm.
    counted: Vec<u32>,
    /// The SIP workers, whose memory the RSS column reports.
    workers: Vec<u32>,
    /// The log's length after the warm-up: the rounds must add nothing.
    logged: usize,
}

struct Round {
    elapsed: Duration,
    /// sipp's last error lines when a call failed.
    failed: Option<String>,
}

/// Where sipp and the Kamailios run: with `pin`, sipp on CPU 0 and every Kamailio
/// process on the other CPUs, as a PBX and an edge proxy on separate hosts would be, so
/// the generator's work neither lands on a worker's core nor evicts its caches.
struct Cpus {
    pin: bool,
    kamailio: String,
}

impl Cpus {
    fn detect() -> Cpus {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pin = n >= 2 && std::env::var("WARP_BENCH_PIN").map_or(true, |v| v != "0");
        Cpus {
            pin,
            kamailio: format!("1-{}", n - 1),
        }
    }

    fn sipp(&self) -> Command {
        if self.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(binary("sipp"));
            c
        } else {
            Command::new(binary("sipp"))
        }
    }

    /// Pins a load generator or vendor process (this one runs the flood) to the
    /// generator's CPU.
    fn generator(&self, pid: u32) {
        if self.pin {
            taskset("0", pid);
        }
    }

    /// Pins every process of `k` (workers, timers, the main one) to the Kamailio CPUs.
    fn place(&self, pids: &[u32]) {
        if !self.pin {
            return;
        }
        for &pid in pids {
            taskset(&self.kamailio, pid);
        }
    }
}

fn taskset(cpus: &str, pid: u32) {
    let ok = Command::new("taskset")
        .args(["-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset -p -c {cpus} {pid} failed");
}

/// `calls` calls as fast as the server answers, `in_flight` outstanding.
fn round(k: &Kamailio, cpus: &Cpus, dir: &Path, calls: usize, in_flight: usize) -> Round {
    let errors = dir.join("sipp-errors.log");
    let _ = std::fs::remove_file(&errors);
    let started = Instant::now();
    let status = cpus
        .sipp()
        .arg(format!("127.0.0.1:{}", k.port))
        .arg("-sf")
        .arg(dir.join("bench.xml"))
        .arg("-inf")
        .arg(dir.join("calls.csv"))
        .args([
            "-i",
            "127.0.0.1",
            "-nostdin",
            "-r",
            "100000",
            "-l",
            &in_flight.to_string(),
        ])
        .args(["-m", &calls.to_string(), "-timeout", "120s", "-trace_err"])
        // Bursts of a window's replies must not overflow sipp's socket (64 kB default).
        .args(["-buff_size", "4194304"])
        .arg("-error_file")
        .arg(&errors)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run sipp");
    let elapsed = started.elapsed();
    let failed = (!status.success()).then(|| {
        let log = std::fs::read_to_string(&errors).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    });
    Round { elapsed, failed }
}

/// Kamailio's processes (`core.psx`): all of them, and the SIP workers ("receiver").
fn processes(k: &Kamailio) -> (Vec<u32>, Vec<u32>) {
    let ps = k.processes();
    let workers = ps.iter().filter(|(_, what)| what.contains("receiver"));
    (
        ps.iter().map(|&(pid, _)| pid).collect(),
        workers.map(|&(pid, _)| pid).collect(),
    )
}

/// CPU time (ns, user + system) the processes `pids` have used so far, all their
/// threads (warp's CDR sender, Redis's I/O threads): the scheduler's own count, finer
/// than /proc/<pid>/stat's 10 ms ticks.
fn task_cpu_ns(pids: &[u32]) -> u64 {
    let schedstat = |path: PathBuf| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    pids.iter()
        .flat_map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
        })
        .flatten()
        .map(|task| schedstat(task.path().join("schedstat")))
        .sum()
}

/// RSS of the workers (kB): total, and the part that is file-backed (the snapshot).
fn worker_rss(pids: &[u32]) -> (u64, u64) {
    pids.iter().fold((0, 0), |(total, file), pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (total + kb("VmRSS:"), file + kb("RssFile:"))
    })
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: a benchmark
    // of minutes has no place there.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("run with `cargo bench -p warp-kamailio --bench kamailio`");
        return;
    }
    let scale_name = std::env::var("WARP_BENCH_SCALE").unwrap_or_else(|_| "small".into());
    let scale = warp_datagen::Scale::by_name(&scale_name).expect("WARP_BENCH_SCALE small|large");
    let env = |name, default| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (calls, rounds): (usize, usize) =
        (env("WARP_BENCH_CALLS", 20_000), env("WARP_BENCH_ROUNDS", 3));
    // Kamailio's memory manager for shm and pkg (`-x`): qm is its default.
    let mut args = match std::env::var("WARP_BENCH_MEM") {
        Ok(m) => vec!["-x".to_string(), m],
        Err(_) => Vec::new(),
    };
    let variant = std::env::var("WARP_BENCH_EDGE").ok();
    if variant.as_deref() == Some("dialog-db") {
        dialog_db::run(scale, calls, rounds, &args);
        return;
    }
    let edge = variant.is_some();
    // The flood counts stateless replies; a relayed call is a dialog.
    let flood: usize = if edge {
        0
    } else {
        env("WARP_BENCH_FLOOD", 200_000)
    };
    let (names, in_flight) = if edge {
        (EDGE, edge::IN_FLIGHT)
    } else {
        (STATELESS, IN_FLIGHT)
    };
    let dir = tempfile::tempdir().unwrap();
    let vendor_port = edge.then(support::free_udp_port);

    let t = Instant::now();
    let Prepared {
        d,
        bytes,
        snap,
        calls: calls_sent,
    } = prepare(dir.path(), scale, vendor_port);
    // lcr keeps its rules in shm loaded row by row from the database: the large
    // dataset's millions of rule targets are beyond a test-sized Kamailio.
    let with_lcr = scale_name != "large";
    let targets = if with_lcr {
        lcr_tables(&d, &dir.path().join("lcr"), vendor_port)
    } else {
        0
    };
    let scenario = if edge { edge::scenario() } else { scenario() };
    std::fs::write(dir.path().join("bench.xml"), scenario).unwrap();
    eprintln!(
        "dataset {scale_name}: {} vendors, {} vendor rate rows, {} LNP, {} DNO; snapshot {} MB; \
         lcr {targets} rule targets; prepared in {:.1} s",
        d.vendors.len(),
        d.vendor_rates.len(),
        d.lnp.len(),
        d.dno.len(),
        bytes.len() / 1_000_000,
        t.elapsed().as_secs_f64()
    );

    // Relayed transactions wait out tm's timers in shm: seconds of calls at once.
    let vendor = vendor_port.map(|port| {
        args.extend(["-m".to_string(), "1024".to_string()]);
        edge::vendor(dir.path(), port)
    });
    let lcr_modules = lcr_modules(&dir.path().join("lcr"));
    let (bare, warp, lcr) = match vendor_port {
        Some(port) => (edge::bare(port), edge::warp(), edge::lcr(&lcr_modules)),
        None => (BARE.to_owned(), WARP.to_owned(), lcr_modules + LCR),
    };
    let built = support::built_module();
    let mut setups = vec![
        (names.bare, built.clone(), Script::Cfg(&bare)),
        (names.warp, built, Script::Cfg(&warp)),
    ];
    if with_lcr {
        setups.push((names.lcr, support::built_module(), Script::Cfg(&lcr)));
    }
    if let Ok(other) = std::env::var("WARP_BENCH_BASELINE") {
        setups.push((names.baseline, other.into(), Script::Cfg(&warp)));
    }
    let snap_param = snap.to_str().unwrap();
    let cpus = Cpus::detect();
    // All run side by side and take turns, round after round, so drift in the
    // machine's load (it is shared) hits them alike.
    let servers: Vec<Server> = setups
        .into_iter()
        .map(|(name, module, script)| {
            let k = Kamailio::start_module(&module, &[("snapshot", snap_param)], script, &args);
            let (all, workers) = processes(&k);
            cpus.place(&all);
            // tm's timers work for every relayed call outside the SIP workers.
            let counted = if edge { all } else { workers.clone() };
            round(&k, &cpus, dir.path(), calls.min(2_000), in_flight); // warm-up
            let logged = k.log().len();
            Server {
                name,
                k,
                counted,
                workers,
                logged,
            }
        })
        .collect();
    // Per setup and round: sipp's calls per second and the workers' CPU µs per call;
    // the flood's calls per second and the share of a core the workers used meanwhile.
    let mut cps: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut flood_cps: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut flood_busy: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut floods: Vec<Flood> = servers
        .iter()
        .map(|s| Flood::new(s.k.port, calls_sent.clone()))
        .collect();
    cpus.generator(std::process::id());
    if let Some(v) = &vendor {
        cpus.generator(v.pid());
    }
    for r in 0..rounds {
        // Each round starts with the next setup, so none always follows the same one.
        for i in (0..servers.len()).map(|k| (r + k) % servers.len()) {
            let server = &servers[i];
            let (name, k, pids) = (server.name, &server.k, &server.counted);
            let used = task_cpu_ns(pids);
            let r = round(k, &cpus, dir.path(), calls, in_flight);
            if let Some(errors) = r.failed {
                panic!("{name}: sipp saw failed calls:\n{errors}\n{}", k.log());
            }
            cps[i].push(calls as f64 / r.elapsed.as_secs_f64());
            cpu[i].push((task_cpu_ns(pids) - used) as f64 / 1_000.0 / calls as f64);
            if flood > 0 {
                let used = task_cpu_ns(pids);
                let f = floods[i].run(flood);
                let answered = f.redirected + f.refused;
                assert!(
                    f.other == 0 && f.lost * 1_000 <= flood,
                    "{name}: flood got {} other replies and lost {} of {flood}",
                    f.other,
                    f.lost
                );
                eprintln!(
                    "{name}: flood {} redirected, {} refused, {} lost in {:?}, generator CPU {:?}",
                    f.redirected, f.refused, f.lost, f.elapsed, f.generator_cpu
                );
                flood_cps[i].push(answered as f64 / f.elapsed.as_secs_f64());
                flood_busy[i].push((task_cpu_ns(pids) - used) as f64 / f.elapsed.as_nanos() as f64);
            }
            let log = k.log();
            assert!(
                log.len() - server.logged < 4096,
                "{name} logs during the rounds:\n{}",
                &log[server.logged..]
            );
        }
    }
    let index = |wanted: &str| servers.iter().position(|s| s.name == wanted);
    let mut pairs = Vec::new();
    let mut compare = |what: &str, values: &[Vec<f64>], better: Better| {
        pairs.push(format!(
            "{what}: warp/bare {}",
            paired(values, 1, 0, better)
        ));
        if let Some(l) = index(names.lcr) {
            pairs.push(format!("{what}: warp/lcr {}", paired(values, 1, l, better)));
            pairs.push(format!("{what}: lcr/bare {}", paired(values, l, 0, better)));
        }
        if let Some(b) = index(names.baseline) {
            pairs.push(format!(
                "{what}: warp/baseline {}",
                paired(values, 1, b, better)
            ));
        }
    };
    compare("worker CPU per call (sipp)", &cpu, Better::Lower);
    if flood > 0 {
        compare("calls/s at saturation (flood)", &flood_cps, Better::Higher);
    }
    let mut results = Vec::new();
    for (server, (mut cps, mut cpu)) in servers.iter().zip(cps.into_iter().zip(cpu)) {
        let (name, k) = (server.name, &server.k);
        cps.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        let rss = worker_rss(&server.workers);
        let reload = if name == names.warp {
            k.rpc("warp.reload").get("millis").cloned()
        } else {
            None
        };
        eprintln!(
            "{name}: {cps:?} cps, {cpu:?} µs CPU/call, worker RSS {rss:?} kB, reload {reload:?} ms"
        );
        results.push((name, cps, cpu, rss, reload));
    }
    let median = |v: &Vec<f64>| v[v.len() / 2];
    let (bare, bare_cpu) = (median(&results[0].1), median(&results[0].2));
    println!(
        "| setup | median CPS (of {rounds} × {calls} calls) | min – max | CPS vs bare \
         | worker CPU µs/call (median) | min – max | CPU vs bare | calls/s per worker core \
         | worker RSS total / file-backed (kB, both workers) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, cps, cpu, rss, _) in &results {
        println!(
            "| {name} | {:.0} | {:.0} – {:.0} | {:.3} | {:.2} | {:.2} – {:.2} | {:.2}× | {:.0} | {} / {} |",
            median(cps),
            cps[0],
            cps[cps.len() - 1],
            median(cps) / bare,
            median(cpu),
            cpu[0],
            cpu[cpu.len() - 1],
            median(cpu) / bare_cpu,
            1e6 / median(cpu),
            rss.0,
            rss.1
        );
    }
    let (warp, warp_cpu) = (median(&results[1].1), median(&results[1].2));
    let vs_lcr = results
        .iter()
        .find(|r| r.0 == names.lcr)
        .map_or("n/a".to_string(), |r| {
            format!(
                "{:.3} (CPU per call warp/lcr {:.2}, per-core capacity warp/lcr {:.3})",
                warp / median(&r.1),
                warp_cpu / median(&r.2),
                median(&r.2) / warp_cpu
            )
        });
    println!();
    println!(
        "warp / bare CPS = {:.3}; warp / lcr CPS = {vs_lcr}; warp routing adds {:.2} µs CPU per call; \
         warp.reload of this snapshot: {} ms",
        warp / bare,
        warp_cpu - bare_cpu,
        results[1].4.as_deref().unwrap_or("?")
    );
    if flood > 0 {
        println!();
        println!(
            "| setup | calls/s at saturation (median of {rounds} × {flood} calls) | min – max \
             | vs bare | workers' busy share of a core (median) |"
        );
        println!("|---|---|---|---|---|");
        let bare = median(&sorted(&flood_cps[0]));
        for (i, server) in servers.iter().enumerate() {
            let name = server.name;
            let (c, busy) = (sorted(&flood_cps[i]), sorted(&flood_busy[i]));
            println!(
                "| {name} | {:.0} | {:.0} – {:.0} | {:.3} | {:.2} |",
                median(&c),
                c[0],
                c[c.len() - 1],
                median(&c) / bare,
                median(&busy)
            );
        }
    }
    println!();
    println!(
        "Round by round ({}):",
        if cpus.pin {
            "load generators pinned to CPU 0, Kamailio to the others"
        } else {
            "unpinned"
        }
    );
    for p in pairs {
        println!("* {p}");
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

/// The same round of two setups ran back to back under the same load: their ratio,
/// round by round, is steadier than the ratio of their medians.
fn paired(values: &[Vec<f64>], a: usize, b: usize, better: Better) -> String {
    let r = sorted(
        &values[a]
            .iter()
            .zip(&values[b])
            .map(|(x, y)| x / y)
            .collect::<Vec<_>>(),
    );
    let (won, how) = match better {
        Better::Lower => (r.iter().filter(|&&x| x < 1.0).count(), "below"),
        Better::Higher => (r.iter().filter(|&&x| x > 1.0).count(), "above"),
    };
    format!(
        "median {:.3}, quartiles {:.3} – {:.3}, min – max {:.3} – {:.3}, {how} 1 in {won} of {}",
        r[r.len() / 2],
        r[r.len() / 4],
        r[r.len() * 3 / 4],
        r[0],
        r[r.len() - 1],
        r.len()
    )
}
