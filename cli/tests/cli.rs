//! The `warp` binary end to end, as an operator runs it: generate, compile, inspect,
//! route, and the PostgreSQL round trip (import → compile from the database) against a
//! real PostgreSQL.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn warp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warp"))
        .args(args)
        .output()
        .expect("warp runs")
}

/// Runs warp with stdout into a pipe whose reader is gone, as `warp … | head -1` has
/// once head exits: every write fails with EPIPE. The reader is closed before warp
/// starts, so no write can slip into the pipe first.
fn warp_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_warp"))
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("warp runs")
}

/// What warp does when its output cannot be delivered: quiet, but never success.
fn assert_closed_pipe_exit(what: &str, out: &Output) {
    assert!(
        out.status.code() == Some(141) && out.stderr.is_empty(),
        "{what}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ok(args: &[&str]) -> String {
    let out = warp(args);
    assert!(
        out.status.success(),
        "warp {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A temp dir holding a generated dataset (`data`, with `calls` sample calls) and its
/// compiled snapshot (`routing.snap`).
fn compiled(calls: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let snap = dir.path().join("routing.snap");
    ok(&["gen-data", "--out", p(&data), "--calls", calls]);
    ok(&["compile", "--from", p(&data), "--out", p(&snap)]);
    (dir, data, snap)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const AT: &str = "2026-03-04T15:00:00Z";

fn route_json(snap: &Path, ban: &str, ani: &str, dnis: &str) -> Value {
    let out = ok(&[
        "route",
        "--snapshot",
        p(snap),
        "--ban",
        ban,
        "--ani",
        ani,
        "--dnis",
        dnis,
        "--at",
        AT,
        "--json",
    ]);
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn generate_compile_inspect_and_route() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let snap = dir.path().join("routing.snap");
    ok(&[
        "gen-data",
        "--scale",
        "small",
        "--seed",
        "7",
        "--out",
        p(&data),
        "--calls",
        "50",
    ]);
    // Deterministic: the same seed writes the same files.
    let again = dir.path().join("again");
    ok(&[
        "gen-data",
        "--scale",
        "small",
        "--seed",
        "7",
        "--out",
        p(&again),
        "--calls",
        "50",
    ]);
    for f in [
        "vendor_rates.csv",
        "lerg.csv",
        "lnp.csv",
        "sample_calls.csv",
    ] {
        assert_eq!(
            std::fs::read(data.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }
    ok(&["compile", "--from", p(&data), "--out", p(&snap)]);
    let summary: Value = serde_json::from_str(&ok(&["inspect", p(&snap), "--json"])).unwrap();
    assert_eq!(summary["generation"], 1);
    assert_eq!(summary["vendors"], 7);
    assert_eq!(summary["dno_numbers"], 1000);
    // The DID inventory is the database's: a directory's snapshot lists no numbers.
    assert_eq!(summary["assigned_numbers"], 0);
    // Of the 10 ACL rows, the 3 of CREDENTIALS trunks are left out; none has a password.
    assert_eq!(summary["acl_networks"], 7);
    assert_eq!(summary["credentials"], 6);
    assert_eq!(summary["credentials_with_ha1"], 0);
    // Recompiling bumps the generation.
    ok(&["compile", "--from", p(&data), "--out", p(&snap)]);
    assert!(ok(&["inspect", p(&snap)]).contains("generation 2"));

    // An international call of customer 100001: its 44 override forces V007 first.
    let d = route_json(&snap, "100001", "+13035551212", "+442079460000");
    assert_eq!(d["jurisdiction"], "INTERNATIONAL");
    assert_eq!(d["routes"][0]["vendor_id"], "V007");
    assert_eq!(d["routes"][0]["forced"], true);
    assert!(d["routes"][0]["dialstrings"][0]
        .as_str()
        .unwrap()
        .starts_with("sip:+442079460000@"));
    // Rates are decimal strings, never floats.
    assert!(d["routes"][0]["vendor_rate"].is_string());

    // A batch prints one decision per call, rejections included.
    let batch = ok(&[
        "route",
        "--snapshot",
        p(&snap),
        "--batch",
        p(&data.join("sample_calls.csv")),
        "--at",
        AT,
        "--json",
    ]);
    let lines: Vec<Value> = batch
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 50);
    assert!(
        lines.iter().any(|l| l["sip_code"] == 603),
        "the sample has DNO callers"
    );
    assert!(lines.iter().filter(|l| l["routes"].is_array()).count() > 30);

    // Bad input is a clear error, not a panic.
    let bad = warp(&[
        "route",
        "--snapshot",
        p(&snap),
        "--ban",
        "100001",
        "--dnis",
        "12ab",
        "--json",
    ]);
    assert!(bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("\"sip_code\":484"));
    // --max-results in a customer's own range, 1 to 100: the engine reads 0 as 1.
    let max = |n: &str| {
        warp(&[
            "route",
            "--snapshot",
            p(&snap),
            "--ban",
            "100001",
            "--dnis",
            "+442079460000",
            "--at",
            AT,
            "--json",
            "--max-results",
            n,
        ])
    };
    let one: Value = serde_json::from_slice(&max("1").stdout).unwrap();
    assert_eq!(one["routes"].as_array().unwrap().len(), 1, "{one}");
    for n in ["0", "101"] {
        let out = max(n);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--max-results {n}: {err}");
        assert!(
            err.contains(&format!("invalid value '{n}' for '--max-results")),
            "{err}"
        );
    }
    let missing = warp(&["inspect", p(&dir.path().join("nope.snap"))]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.snap"));
}

/// Exit 141 (128 + SIGPIPE), as a shell reports for `cat` in the same pipe, so that
/// `set -o pipefail` sees the output was cut short.
#[test]
fn a_closed_stdout_ends_each_command_quietly_but_not_successfully() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let snap = dir.path().join("routing.snap");
    let calls = data.join("sample_calls.csv");
    // In order: each command's work is done before it prints, so later ones use it.
    for args in [
        &["gen-data", "--out", p(&data), "--calls", "5"][..],
        &["compile", "--from", p(&data), "--out", p(&snap)],
        &["inspect", p(&snap)],
        &["inspect", p(&snap), "--json"],
        &["route", "--snapshot", p(&snap), "--batch", p(&calls)],
        &[
            "bench-route",
            "--snapshot",
            p(&snap),
            "--calls",
            p(&calls),
            "--iterations",
            "10",
        ],
    ] {
        assert_closed_pipe_exit(args[0], &warp_into_closed_pipe(args));
    }
    // Any other failed write is an error said as such.
    let full = Command::new(env!("CARGO_BIN_EXE_warp"))
        .args(["inspect", p(&snap)])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(full.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&full.stderr),
        "warp: No space left on device (os error 28)\n"
    );
}

/// Each cause said once, though the dataset's error repeats its I/O error.
#[test]
fn a_missing_dataset_directory_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nodir");
    let out = warp(&[
        "compile",
        "--from",
        p(&missing),
        "--out",
        p(&dir.path().join("x.snap")),
    ]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "warp: reading {}: lerg.csv: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
}

#[test]
fn each_command_says_once_what_is_wrong_with_a_path_that_is_not_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.snap");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("nope.snap");
    let text = dir.path().join("text.snap");
    std::fs::write(&text, "ban,ani,dnis\n".repeat(100)).unwrap();
    for (path, what) in [
        (dir.path(), " is a directory, not a snapshot"),
        (&empty, " is empty, not a snapshot"),
        (&missing, ": No such file or directory (os error 2)"),
        (&text, ": not a WARP routing snapshot (bad magic)"),
    ] {
        let want = format!("warp: {}{what}\n", path.display());
        for args in [
            &["inspect", p(path)][..],
            &["route", "--snapshot", p(path), "--ban", "1", "--dnis", "1"],
            &["bench-route", "--snapshot", p(path), "--calls", p(&text)],
        ] {
            let out = warp(args);
            assert!(!out.status.success());
            assert_eq!(String::from_utf8_lossy(&out.stderr), want, "{args:?}");
        }
    }
}

/// `route` gives the SIP path's decision, so it reads only a snapshot the SIP path
/// would load: one whose payload fails its checksum is refused, not routed on.
#[test]
fn route_refuses_a_snapshot_whose_payload_is_corrupt() {
    let (_dir, _, snap) = compiled("0");
    let mut bytes = std::fs::read(&snap).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(&snap, bytes).unwrap();
    let out = warp(&[
        "route",
        "--snapshot",
        p(&snap),
        "--ban",
        "100001",
        "--dnis",
        "+442079460000",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "warp: {}: snapshot data is corrupt (payload checksum mismatch)\n",
            snap.display()
        )
    );
}

#[test]
fn import_to_postgres_and_compile_from_it() {
    let pg = warp_testkit::Postgres::start().expect("postgres starts");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&[
        "gen-data",
        "--scale",
        "small",
        "--seed",
        "11",
        "--out",
        p(&data),
        "--calls",
        "20",
    ]);
    let imported = ok(&["import", "--db", &pg.url, "--from", p(&data)]);
    assert!(imported.contains("rate_rows"), "{imported}");
    let quiet = warp_into_closed_pipe(&["import", "--db", &pg.url, "--from", p(&data)]);
    assert_closed_pipe_exit("import", &quiet);

    let from_csv = dir.path().join("csv.snap");
    let from_db = dir.path().join("db.snap");
    ok(&["compile", "--from", p(&data), "--out", p(&from_csv)]);
    ok(&["compile", "--from", &pg.url, "--out", p(&from_db)]);
    let calls = std::fs::read_to_string(data.join("sample_calls.csv")).unwrap();
    for line in calls.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (a, b) = (
            route_json(&from_csv, f[0], f[1], f[2]),
            route_json(&from_db, f[0], f[1], f[2]),
        );
        assert_eq!(a["routes"], b["routes"], "{line}");
        assert_eq!(a["rejected"], b["rejected"], "{line}");
    }

    // A row the import could not store faithfully is refused before anything is
    // written: a state with the '/' that ends a state in a rate-centre key, a NUL
    // that PostgreSQL text cannot hold.
    let local = data.join("local_calling.csv");
    let mut text = std::fs::read_to_string(&local).unwrap();
    let local_line = text.lines().count() + 1;
    text.push_str("NY,RC212-00,N/Y,RC212-01\n");
    std::fs::write(&local, text).unwrap();
    let customers = data.join("customers.csv");
    let text = std::fs::read_to_string(&customers).unwrap();
    std::fs::write(&customers, text.replacen(",Customer ", ",Cust\0omer ", 1)).unwrap();
    let out = warp(&["import", "--db", &pg.url, "--from", p(&data)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        format!("local_calling.csv:{local_line}: state_b \"N/Y\" contains '/'"),
        "customers.csv:2: name contains a NUL character".to_string(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in {err}");
    }

    // A deck with a bad row imports nothing and names the line.
    let rates = data.join("vendor_rates.csv");
    let mut text = std::fs::read_to_string(&rates).unwrap();
    let good_rows = text.lines().count() - 1;
    text.push_str("V001,1999,,,2025-01-01,,abc,,,,,,6,6,,\n");
    std::fs::write(&rates, text).unwrap();
    let out = warp(&["import", "--db", &pg.url, "--from", p(&data)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("vendor_rates.csv:{}", good_rows + 2)),
        "{err}"
    );
    // The database still holds the previous import.
    ok(&["compile", "--from", &pg.url, "--out", p(&from_db)]);
    let summary: Value = serde_json::from_str(&ok(&["inspect", p(&from_db), "--json"])).unwrap();
    assert_eq!(
        summary["vendor_rate_rows"].as_u64().unwrap() as usize,
        good_rows
    );
}

#[test]
fn call_files_are_read_by_column_name_and_bad_bench_arguments_are_refused() {
    let (dir, data, snap) = compiled("5");
    // Another column order, and no ani column: each field still goes where it belongs.
    let calls = dir.path().join("calls.csv");
    std::fs::write(&calls, "dnis,ban\n+442079460000,100001\n").unwrap();
    let batch = ok(&[
        "route",
        "--snapshot",
        p(&snap),
        "--batch",
        p(&calls),
        "--at",
        AT,
        "--json",
    ]);
    let d: Value = serde_json::from_str(batch.trim()).unwrap();
    assert_eq!(d["jurisdiction"], "INTERNATIONAL", "{d}");
    let bench = ok(&[
        "bench-route",
        "--snapshot",
        p(&snap),
        "--calls",
        p(&calls),
        "--iterations",
        "10",
    ]);
    assert!(bench.contains("10 decisions"), "{bench}");
    // The snapshot's own resident pages, never more than its file (the binary's and
    // libraries' pages are counted apart).
    let (resident, file) = bench
        .split_once("snapshot mapping ")
        .and_then(|(_, m)| m.split_once(" KiB resident of a "))
        .and_then(|(r, f)| {
            Some((
                r.parse::<u64>().ok()?,
                f.split(' ').next()?.parse::<u64>().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("no snapshot mapping RSS in {bench}"));
    assert!(0 < resident && resident <= file + 4, "{bench}");

    let refused = |args: &[&str], needle: &str| {
        let out = warp(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && !err.contains("panicked"), "{err}");
        assert!(err.contains(needle), "{err}");
    };
    // A batch takes no one call's --ani or --lrn.
    for (flag, value) in [("--ani", "3035551212"), ("--lrn", "3035550000")] {
        let out = warp(&[
            "route",
            "--snapshot",
            p(&snap),
            "--batch",
            p(&calls),
            flag,
            value,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains("cannot be used with"), "{err}");
    }
    std::fs::write(&calls, "number\n+442079460000\n").unwrap();
    refused(
        &["bench-route", "--snapshot", p(&snap), "--calls", p(&calls)],
        "ban and dnis",
    );
    refused(
        &["route", "--snapshot", p(&snap), "--batch", p(&calls)],
        "ban and dnis",
    );
    let sample = data.join("sample_calls.csv");
    for flag in ["--iterations", "--legacy-calls"] {
        refused(
            &[
                "bench-route",
                "--snapshot",
                p(&snap),
                "--calls",
                p(&sample),
                flag,
                "0",
            ],
            "at least 1",
        );
        // More than memory (or the address space) holds: said, not a panic or abort.
        for huge in ["1000000000000000", &usize::MAX.to_string()] {
            let (iterations, legacy_calls) = match flag {
                "--iterations" => (huge, "1"),
                _ => ("10", huge),
            };
            refused(
                &[
                    "bench-route",
                    "--snapshot",
                    p(&snap),
                    "--calls",
                    p(&sample),
                    "--legacy-db",
                    "postgres://postgres@127.0.0.1:1/none",
                    "--iterations",
                    iterations,
                    "--legacy-calls",
                    legacy_calls,
                ],
                &format!("warp: {flag} {huge}: no memory for that many latencies: "),
            );
        }
    }
}

#[test]
fn compile_over_an_unreadable_snapshot_does_not_restart_the_generations() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let snap = dir.path().join("routing.snap");
    ok(&["gen-data", "--out", p(&data), "--calls", "0"]);
    let compile = |extra: &[&str]| {
        let mut args = vec!["compile", "--from", p(&data), "--out", p(&snap)];
        args.extend_from_slice(extra);
        warp(&args)
    };
    assert!(compile(&["--generation", "7"]).status.success());
    let bytes = std::fs::read(&snap).unwrap();
    std::fs::write(&snap, &bytes[..bytes.len() / 2]).unwrap();
    let out = compile(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "compiled over it as generation 1");
    assert!(
        err.contains("--generation") && err.contains("truncated"),
        "{err}"
    );
    assert!(compile(&["--generation", "8"]).status.success());
    let generation = || {
        let summary: Value = serde_json::from_str(&ok(&["inspect", p(&snap), "--json"])).unwrap();
        summary["generation"].as_u64().unwrap()
    };
    assert_eq!(generation(), 8);
    // Sound again: the next compile follows on from it.
    assert!(compile(&[]).status.success());
    assert_eq!(generation(), 9);

    assert!(compile(&["--generation", &u64::MAX.to_string()])
        .status
        .success());
    assert_eq!(generation(), u64::MAX);
    let out = compile(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("last generation"),
        "{err}"
    );
}

/// A legacy query that fails (here: a database without WARP's schema) ends the bench
/// with the database's error, instead of timing failures as decisions and printing a
/// ratio against them.
#[test]
fn a_legacy_bench_whose_queries_fail_fails() {
    let pg = warp_testkit::Postgres::start().expect("postgres starts");
    let empty = pg.create_db("empty").unwrap();
    let (_dir, data, snap) = compiled("5");
    let out = warp(&[
        "bench-route",
        "--snapshot",
        p(&snap),
        "--calls",
        p(&data.join("sample_calls.csv")),
        "--iterations",
        "10",
        "--legacy-db",
        &empty,
        "--legacy-calls",
        "5",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("legacy SQL / snapshot"), "{stdout}");
    assert!(
        stderr.starts_with("warp: legacy SQL decision for ") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

/// Sample calls are written as they are made: a `--calls` too big to hold in memory
/// fills the file until the disk is full (here a 4 MiB file size limit), says so and
/// fails, rather than aborting; its first calls are those a small count writes.
#[test]
fn gen_data_writes_any_number_of_calls_without_holding_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // dash counts 512-byte blocks. SIGXFSZ ignored, a write past the limit fails with
    // EFBIG instead of killing.
    let out = Command::new("sh")
        .args(["-c", r#"ulimit -f 8192; trap '' XFSZ; exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_warp"))
        .args(["gen-data", "--out", p(&data), "--calls"])
        .arg(usize::MAX.to_string())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err, "warp: File too large (os error 27)\n");
    let many = std::fs::read(data.join("sample_calls.csv")).unwrap();
    assert!(many.len() > 1 << 20, "{} bytes", many.len());
    let few = dir.path().join("few");
    ok(&["gen-data", "--out", p(&few), "--calls", "50"]);
    let few = std::fs::read_to_string(few.join("sample_calls.csv")).unwrap();
    assert!(many.starts_with(few.as_bytes()), "{few}");
}

/// `route` finds its snapshot in `$WARP_SNAPSHOT` when not given one; set but empty it
/// is unset, as the API reads it: the default path, not a refusal.
#[test]
fn route_reads_warp_snapshot_and_an_empty_one_is_unset() {
    let (_dir, _data, snap) = compiled("5");
    let route = |value: &Path| {
        Command::new(env!("CARGO_BIN_EXE_warp"))
            .args(["route", "--ban", "100001", "--dnis", "+442079460000"])
            .args(["--at", AT, "--json"])
            .env("WARP_SNAPSHOT", value)
            .output()
            .expect("warp runs")
    };
    let out = route(&snap);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["jurisdiction"], "INTERNATIONAL");
    let out = route(Path::new(""));
    let err = String::from_utf8_lossy(&out.stderr);
    // No snapshot is installed at the default path on a test machine; one that has
    // one routes from it.
    assert!(
        out.status.success() || err.contains("/var/lib/warp/routing.snap"),
        "{err}"
    );
}
