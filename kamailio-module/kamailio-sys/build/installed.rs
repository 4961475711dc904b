//! What the installed `kamailio` binary says about itself (`kamailio -v`).

use std::path::PathBuf;
use std::process::Command;

pub struct Installed {
    /// `SER_FULL_VERSION`, e.g. `kamailio 5.6.3 (x86_64/linux)`.
    pub version_line: String,
    /// `SER_COMPILE_FLAGS`, e.g. `USE_TCP, USE_TLS, ...`.
    pub flags_line: String,
    /// `ADAPTIVE_WAIT_LOOPS` (a `-D` value the flags string does not carry).
    pub adaptive_wait_loops: Option<String>,
    /// Parsed from `version_line`.
    pub name: String,
    pub release: String,
    pub arch: String,
    pub os: String,
}

impl Installed {
    pub fn probe() -> Self {
        println!("cargo:rerun-if-env-changed=KAMAILIO_BIN");
        let bin = binary();
        println!("cargo:rerun-if-changed={}", bin.display());
        let out = Command::new(&bin).arg("-v").output().unwrap_or_else(|e| {
            panic!("cannot run `{} -v`: {e} (set KAMAILIO_BIN)", bin.display())
        });
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| {
                    panic!("`{} -v` printed no `{key}` line:\n{text}", bin.display())
                })
        };
        // `full_version`: SER_FULL_VERSION, then the source's commit (REPO_VER), which a
        // build from git or from a release tarball prints and a distribution package does
        // not. The core checks a module's `module_version` against SER_FULL_VERSION alone.
        let full_version = field("version:");
        let version_line = match full_version.find(')') {
            Some(end) => full_version[..=end].to_string(),
            None => full_version,
        };
        let flags_line = field("flags:");
        let adaptive_wait_loops = text.lines().find_map(|l| {
            l.split(", ")
                .find_map(|kv| kv.strip_prefix("ADAPTIVE_WAIT_LOOPS "))
                .map(str::to_string)
        });
        // "kamailio 5.6.3 (x86_64/linux)"
        let parse = || -> Option<(String, String, String, String)> {
            let (name, rest) = version_line.split_once(' ')?;
            let (release, rest) = rest.split_once(" (")?;
            let (arch, os) = rest.strip_suffix(')')?.split_once('/')?;
            Some((name.into(), release.into(), arch.into(), os.into()))
        };
        let (name, release, arch, os) =
            parse().unwrap_or_else(|| panic!("unexpected version line {version_line:?}"));
        Installed {
            version_line,
            flags_line,
            adaptive_wait_loops,
            name,
            release,
            arch,
            os,
        }
    }
}

fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("KAMAILIO_BIN") {
        return bin.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("kamailio"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/kamailio"))
}
