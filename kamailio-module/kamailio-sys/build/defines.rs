//! The `-D` set Kamailio's Makefile.defs used for the installed binary.
//!
//! Struct layouts in the headers depend on these (`USE_TCP`, `USE_COMP`, `DBG_SR_MEMORY`
//! changes `shm_malloc`'s arity, ...). Most are recoverable from `kamailio -v`'s flags line,
//! whose tokens `src/core/ver_defs.h` derives from them; the rest are the platform defaults
//! Makefile.defs sets for Linux. `verify_against_binary` proves the result by preprocessing
//! `SER_FULL_VERSION`/`SER_COMPILE_FLAGS` with it and comparing with the binary's strings.

use crate::installed::Installed;
use std::collections::HashMap;
use std::path::Path;

/// Set by Makefile.defs on Linux with gcc/clang regardless of options; invisible in `-v`.
const LINUX_PLATFORM_DEFINES: &[&str] = &[
    "WITH_XAVP",
    "USE_CORE_STATS",
    "STATISTICS",
    "MALLOC_STATS",
    "CC_GCC_LIKE_ASM",
    "HAVE_GETHOSTBYNAME2",
    "HAVE_UNION_SEMUN",
    "HAVE_SCHED_YIELD",
    "HAVE_MSG_NOSIGNAL",
    "HAVE_MSGHDR_MSG_CONTROL",
    "HAVE_ALLOCA_H",
    "HAVE_TIMEGM",
    "HAVE_SCHED_SETSCHEDULER",
    "HAVE_IP_MREQN",
    "HAVE_EPOLL",
    "HAVE_SIGIO_RT",
    "SIGINFO64_WORKARROUND",
    "HAVE_SELECT",
];

pub fn derive(installed: &Installed, src: &Path) -> Vec<String> {
    let token_to_macro = flag_tokens(src);
    let mut defines = vec![
        format!("NAME=\"{}\"", installed.name),
        format!("VERSION=\"{}\"", installed.release),
        format!("ARCH=\"{}\"", installed.arch),
        format!("OS={}_", installed.os),
        format!("OS_QUOTED=\"{}\"", installed.os),
        format!("__CPU_{}", installed.arch),
        format!("__OS_{}", installed.os),
        format!("VERSIONVAL={}", version_val(&installed.release)),
    ];
    defines.extend(LINUX_PLATFORM_DEFINES.iter().map(|d| d.to_string()));
    // "FAST_LOCK-ADAPTIVE_WAIT" and "...-NOSMP" carry two macros in one token.
    for token in installed.flags_line.split(", ").flat_map(|t| t.split('-')) {
        let token = token.trim();
        if !token.is_empty() {
            defines.push(
                token_to_macro
                    .get(token)
                    .cloned()
                    .unwrap_or_else(|| token.to_string()),
            );
        }
    }
    if let Some(loops) = &installed.adaptive_wait_loops {
        defines.push(format!("ADAPTIVE_WAIT_LOOPS={loops}"));
    }
    defines
}

/// Maps flag tokens whose text differs from their macro (e.g. `TLS_PTHREAD_MUTEX_SHARED`
/// comes from `KSR_PTHREAD_MUTEX_SHARED`), from `#ifdef M` / `#define M_STR ", TOKEN"` pairs.
fn flag_tokens(src: &Path) -> HashMap<String, String> {
    let ver_defs = src.join("src/core/ver_defs.h");
    println!("cargo:rerun-if-changed={}", ver_defs.display());
    let text = std::fs::read_to_string(&ver_defs).expect("read ver_defs.h");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let macro_name = w[0].strip_prefix("#ifdef")?.trim();
            let quoted = w[1]
                .strip_prefix("#define")?
                .split_once('"')?
                .1
                .strip_suffix('"')?;
            let token = quoted.trim_start_matches(", ").trim_start_matches('-');
            (!token.is_empty()).then(|| (token.to_string(), macro_name.to_string()))
        })
        .collect()
}

/// Makefile.defs: VERSION * 1000000 + PATCHLEVEL * 1000 + SUBLEVEL.
fn version_val(release: &str) -> u64 {
    let mut parts = release.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().unwrap_or(0)
    });
    let mut next = || parts.next().unwrap_or(0);
    next() * 1_000_000 + next() * 1000 + next()
}

/// Fails the build when the derived defines would not reproduce the installed binary's
/// version and flags strings, i.e. when the bindings could silently mismatch its layouts.
pub fn verify_against_binary(defines: &[String], installed: &Installed, src: &Path) {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let probe = out.join("ver_probe.c");
    std::fs::write(
        &probe,
        "#include \"core/ver_defs.h\"\nwarp_version SER_FULL_VERSION\nwarp_flags SER_COMPILE_FLAGS\n",
    )
    .expect("write ver_probe.c");
    let mut build = cc::Build::new();
    build
        .file(&probe)
        .include(src.join("src"))
        .cargo_metadata(false);
    apply(&mut build, defines);
    let expanded = String::from_utf8_lossy(&build.expand()).into_owned();
    let literal_after = |marker: &str| -> String {
        let line = expanded
            .lines()
            .find_map(|l| l.strip_prefix(marker))
            .unwrap_or_else(|| panic!("{marker} missing from preprocessed probe"));
        // Concatenate the adjacent string literals the macro expands to.
        line.split('"').skip(1).step_by(2).collect()
    };
    let (version, flags) = (literal_after("warp_version"), literal_after("warp_flags"));
    assert_eq!(
        version, installed.version_line,
        "SER_FULL_VERSION from the derived defines"
    );
    assert_eq!(
        flags, installed.flags_line,
        "SER_COMPILE_FLAGS from the derived defines differs from `kamailio -v`: \
         the defines in build/defines.rs need updating for this build of Kamailio"
    );
}

/// Passes `defines` (`NAME` or `NAME=value`) to a C compilation.
pub fn apply(build: &mut cc::Build, defines: &[String]) {
    for d in defines {
        match d.split_once('=') {
            Some((k, v)) => build.define(k, v),
            None => build.define(d, None),
        };
    }
}
