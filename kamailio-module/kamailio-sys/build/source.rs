//! Finds the Kamailio source tree whose headers match the installed binary.

use crate::installed::Installed;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/install-deps.sh unpacks `apt-get source kamailio=<installed version>`.
const DEB_SOURCE_CACHE: &str = "/var/cache/warp/kamailio-src";

pub fn locate(installed: &Installed) -> PathBuf {
    println!("cargo:rerun-if-env-changed=KAMAILIO_SRC");
    let src = match std::env::var_os("KAMAILIO_SRC") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(DEB_SOURCE_CACHE).join(debian_package_version()),
    };
    let marker = src.join("src/core/sr_module.h");
    assert!(
        marker.is_file(),
        "no Kamailio source tree at {} (missing {}): run scripts/install-deps.sh, \
         or point KAMAILIO_SRC at the source of `{}`",
        src.display(),
        marker.display(),
        installed.version_line
    );
    let release = source_release(&src);
    assert_eq!(
        release,
        installed.release,
        "Kamailio source at {} is {release}, the installed binary is {}",
        src.display(),
        installed.release
    );
    println!(
        "cargo:rerun-if-changed={}",
        src.join("src/Makefile.defs").display()
    );
    src
}

fn debian_package_version() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "kamailio"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .expect("the kamailio Debian package is not installed; set KAMAILIO_SRC");
    String::from_utf8(out.stdout).expect("dpkg-query output is UTF-8")
}

/// `VERSION.PATCHLEVEL.SUBLEVEL EXTRAVERSION` from src/Makefile.defs, as the core's RELEASE.
fn source_release(src: &Path) -> String {
    let defs =
        std::fs::read_to_string(src.join("src/Makefile.defs")).expect("read src/Makefile.defs");
    let var = |name: &str| {
        defs.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    format!(
        "{}.{}.{}{}",
        var("VERSION"),
        var("PATCHLEVEL"),
        var("SUBLEVEL"),
        var("EXTRAVERSION")
    )
}
