//! `warp`: the admin CLI for data work — generate, compile, inspect and route.

/// `println!` that returns the write error instead of panicking on it: a closed pipe
/// (`warp inspect x.snap | head -1`) then ends the command in `main`.
macro_rules! outln {
    ($($arg:tt)*) => {
        {
            use std::io::Write as _;
            writeln!(std::io::stdout(), $($arg)*)
        }
    };
}

mod bench;
mod calls;
mod db;
mod pull;
mod route;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;
use warp_config::Settings;
use warp_core::dataset;
use warp_core::snapshot::{self, OpenError, Snapshot};

#[derive(Parser)]
#[command(
    name = "warp",
    version,
    about = "WARP admin CLI: generate, compile, inspect and route"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a deterministic synthetic dataset as a CSV directory.
    GenData {
        /// small (tests, demo) or large (≈300k LERG blocks, 1M LNP, 1M DNO, 1M rate rows)
        #[arg(long, default_value = "small")]
        scale: String,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// Also write this many sample calls to OUT/sample_calls.csv.
        #[arg(long, default_value_t = 1000)]
        calls: usize,
    },
    /// Validate a CSV directory and load it into PostgreSQL (all or nothing).
    Import {
        #[arg(long, env = "WARP_DATABASE_URL")]
        db: String,
        #[arg(long)]
        from: PathBuf,
    },
    /// Compile a CSV directory or a PostgreSQL database (postgres://…) into a routing
    /// snapshot, published atomically.
    Compile {
        #[arg(long)]
        from: String,
        #[arg(long)]
        out: PathBuf,
        /// Defaults to the current snapshot's generation + 1 (or 1).
        #[arg(long)]
        generation: Option<u64>,
    },
    /// Print a snapshot's header and counts.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Route one call (or a CSV batch of ban,ani,dnis) the way the SIP path does.
    Route(route::RouteArgs),
    /// Fetch the snapshot the API published, when newer, and publish it here (a SIP
    /// edge's copy, which warp.so's reload_check takes up).
    Pull(pull::PullArgs),
    /// Time the full routing decision per call (percentiles) and its memory growth.
    BenchRoute(bench::BenchArgs),
}

/// Exit status when stdout's reader has gone (`warp route … | head -1`): 128 + SIGPIPE,
/// what a shell reports for `cat` in the same place. No message, since the reader chose
/// to stop; but not 0, since part of the output was never delivered and a script under
/// `set -o pipefail` must not take the command for a success.
const CLOSED_PIPE_STATUS: i32 = 141;

fn main() {
    let (cli, settings) = command_line();
    if let Err(e) = run(cli, &settings) {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        {
            std::process::exit(CLOSED_PIPE_STATUS);
        }
        eprintln!("warp: {}", said_once(&e));
        std::process::exit(1);
    }
}

/// The command line, or clap's usage error and exit. `pull`, the one service among
/// these commands (a SIP edge runs it with `--every`), takes what the environment does
/// not set from the TOML file (warp-config's `[pull]` and top level); the others read
/// no file, so that a broken one leaves them working.
fn command_line() -> (Cli, Settings) {
    let args: Vec<_> = std::env::args_os().collect();
    let pull = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(&args)
        .is_ok_and(|m| m.subcommand_name() == Some("pull"));
    let settings = if pull {
        warp_config::load_or_exit(&warp_config::PULL, Cli::command())
    } else {
        Settings::default()
    };
    let cli = warp_config::fill_from_file(Cli::command(), &settings)
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
        .unwrap_or_else(|e| e.exit());
    (cli, settings)
}

/// The error and its causes, each cause left out when the text already ends with it:
/// many errors repeat their source in their own message (for readers that print only
/// the message), which `{:#}` would then print twice.
fn said_once(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run(cli: Cli, settings: &Settings) -> Result<()> {
    match cli.cmd {
        Cmd::GenData {
            scale,
            seed,
            out,
            calls,
        } => gen_data(&scale, seed, &out, calls),
        Cmd::Import { db, from } => db::import(&db, &from),
        Cmd::Compile {
            from,
            out,
            generation,
        } => compile(&from, &out, generation),
        Cmd::Inspect { file, json } => inspect(&file, json),
        Cmd::Route(args) => route::run(args),
        Cmd::Pull(args) => pull::run(args, settings),
        Cmd::BenchRoute(args) => bench::run(args),
    }
}

fn gen_data(scale: &str, seed: u64, out: &Path, calls: usize) -> Result<()> {
    let Some(s) = warp_datagen::Scale::by_name(scale) else {
        bail!("unknown scale {scale:?} (small or large)");
    };
    let t = Instant::now();
    let d = warp_datagen::generate(s, seed);
    dataset::write_dir(&d, out)?;
    let mut w = csv::Writer::from_path(out.join("sample_calls.csv"))?;
    w.write_record(["ban", "ani", "dnis"])?;
    for (ban, ani, dnis) in warp_datagen::sample_call_stream(&d, seed).take(calls) {
        w.write_record([ban, ani, dnis])?;
    }
    w.flush()?;
    outln!(
        "wrote {} in {:.1?}: {} LERG blocks, {} LNP, {} DNO, {} vendors, {} vendor rate rows, {} customers, {} sample calls",
        out.display(),
        t.elapsed(),
        d.lerg.len(),
        d.lnp.len(),
        d.dno.len(),
        d.vendors.len(),
        d.vendor_rates.len(),
        d.customers.len(),
        calls
    )?;
    Ok(())
}

fn compile(from: &str, out: &Path, generation: Option<u64>) -> Result<()> {
    let t = Instant::now();
    let d = if from.starts_with("postgres://") || from.starts_with("postgresql://") {
        db::load(from)?
    } else {
        dataset::read_dir(Path::new(from)).with_context(|| format!("reading {from}"))?
    };
    let read = t.elapsed();
    let generation = match generation {
        Some(g) => g,
        None => next_generation(out)?,
    };
    let t = Instant::now();
    let bytes = snapshot::compile(&d, generation)?;
    snapshot::publish(&bytes, out)?;
    outln!(
        "published {} generation {generation}: {} bytes (read {read:.1?}, compiled and written {:.1?})",
        out.display(),
        bytes.len(),
        t.elapsed()
    )?;
    Ok(())
}

/// The generation after the snapshot at `out`, or 1 when there is none. A file there
/// that cannot be read is refused rather than counted as none: starting again at 1
/// would reuse generations SIP nodes already hold (the API serves the generation as
/// the snapshot's ETag), and they would keep their old copy.
fn next_generation(out: &Path) -> Result<u64> {
    let context = || {
        format!(
            "reading the generation of the current snapshot {} (give --generation to replace it)",
            out.display()
        )
    };
    if !out.try_exists().with_context(context)? {
        return Ok(1);
    }
    let current = Snapshot::open(out).with_context(context)?.generation();
    current
        .checked_add(1)
        .with_context(|| format!("{} has the last generation, {current}", out.display()))
}

/// The snapshot a command reads or writes: the one given, else `$WARP_SNAPSHOT`, else
/// the file's `snapshot`, else the default path. An empty variable is unset, as the API
/// reads it.
fn snapshot_path(given: Option<PathBuf>, settings: &Settings) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::var_os("WARP_SNAPSHOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| settings.from_file("WARP_SNAPSHOT").map(PathBuf::from))
            .unwrap_or_else(|| "/var/lib/warp/routing.snap".into())
    })
}

/// Names `path` in an error from opening or verifying it: the errors about the file
/// itself already do, the others (bad magic, checksum, …) say what is wrong but not with
/// which file, and `route` takes one from `$WARP_SNAPSHOT` or a default path.
fn in_snapshot<T>(path: &Path, r: Result<T, OpenError>) -> Result<T> {
    r.map_err(|e| match e {
        OpenError::Io { .. } | OpenError::Directory { .. } | OpenError::Empty { .. } => e.into(),
        e => anyhow::Error::new(e).context(path.display().to_string()),
    })
}

fn inspect(file: &Path, json: bool) -> Result<()> {
    let t = Instant::now();
    let s = in_snapshot(file, Snapshot::open(file))?;
    let opened = t.elapsed();
    in_snapshot(file, s.verify())?;
    let sum = s.summary();
    if json {
        outln!("{}", serde_json::to_string_pretty(&sum)?)?;
        return Ok(());
    }
    let created = chrono::DateTime::from_timestamp(sum.created_unix, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    outln!(
        "{}: WARP routing snapshot, format {}, generation {}",
        file.display(),
        sum.format_version,
        sum.generation
    )?;
    outln!(
        "  created {created}, {} bytes, opened in {opened:.1?}, checksum ok",
        sum.file_bytes
    )?;
    outln!(
        "  customers {}  trunks {}  vendors {}  partitions {}",
        sum.customers,
        sum.trunks,
        sum.vendors,
        sum.partitions
    )?;
    outln!(
        "  vendor rate rows {}  customer rate rows {}",
        sum.vendor_rate_rows,
        sum.customer_rate_rows
    )?;
    outln!(
        "  LERG blocks {}  LNP {}  DNO {}  assigned numbers {}",
        sum.lerg_blocks,
        sum.lnp_entries,
        sum.dno_numbers,
        sum.assigned_numbers
    )?;
    outln!(
        "  overrides {}  exclusions {}",
        sum.overrides,
        sum.exclusions
    )?;
    outln!(
        "  ACL networks {}  SIP usernames {} ({} with a password hash)",
        sum.acl_networks,
        sum.credentials,
        sum.credentials_with_ha1
    )?;
    Ok(())
}
