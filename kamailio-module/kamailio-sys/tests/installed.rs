//! The build script's reading of `kamailio -v`, run on a stand-in binary's output.

// The build script's module, as it is: only `probe` is used here.
#[allow(dead_code)]
#[path = "../build/installed.rs"]
mod installed;

use std::os::unix::fs::PermissionsExt;

/// A Kamailio built from its release tarball or a git checkout prints its commit after
/// SER_FULL_VERSION; `module_version` must still be SER_FULL_VERSION, or the core
/// refuses the module (and the build could not parse the line at all).
#[test]
fn the_commit_after_the_version_is_not_part_of_module_version() {
    let dir = std::env::temp_dir().join(format!("warp-installed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("kamailio");
    std::fs::write(
        &bin,
        "#!/bin/sh\n\
         echo 'version: kamailio 5.6.3 (x86_64/linux) d99da9'\n\
         echo 'flags: USE_TCP, USE_TLS, FAST_LOCK-ADAPTIVE_WAIT, USE_FUTEX'\n\
         echo 'ADAPTIVE_WAIT_LOOPS 1024, MAX_RECV_BUFFER_SIZE 262144'\n\
         echo 'id: d99da9 '\n",
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::env::set_var("KAMAILIO_BIN", &bin);

    let probed = installed::Installed::probe();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(probed.version_line, "kamailio 5.6.3 (x86_64/linux)");
    assert_eq!(
        probed.flags_line,
        "USE_TCP, USE_TLS, FAST_LOCK-ADAPTIVE_WAIT, USE_FUTEX"
    );
    assert_eq!(
        (&*probed.name, &*probed.release, &*probed.arch, &*probed.os),
        ("kamailio", "5.6.3", "x86_64", "linux")
    );
    assert_eq!(probed.adaptive_wait_loops.as_deref(), Some("1024"));
}
