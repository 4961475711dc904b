//! The `warp-rtpengine` binary taking its env-backed settings from the TOML file
//! `WARP_CONFIG` names when the environment has none, against a real rtpengine.

mod common;

use common::Rtpengine;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_warp-rtpengine");

/// The binary with none of the test runner's `WARP_*` variables, reading `config`.
fn warp_rtpengine(config: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("WARP_") {
            command.env_remove(var);
        }
    }
    command.env("WARP_CONFIG", config);
    command
}

fn stdout_of(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_client_finds_its_node_in_the_file_and_the_environment_wins_over_it() {
    let r = Rtpengine::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warp.toml");
    // The top level names a node nothing listens on; [rtpengine] wins over it.
    std::fs::write(
        &config,
        format!(
            "rtpengine_ng = \"127.0.0.1:9\"\n\n[rtpengine]\nrtpengine_ng = \"{}\"\n",
            r.ng
        ),
    )
    .unwrap();
    let out = warp_rtpengine(&config).arg("ping").output().unwrap();
    assert!(stdout_of(out).starts_with("pong"));

    std::fs::write(&config, "[rtpengine]\nrtpengine_ng = \"127.0.0.1:9\"\n").unwrap();
    let out = warp_rtpengine(&config)
        .env("WARP_RTPENGINE_NG", r.ng.to_string())
        .arg("ping")
        .output()
        .unwrap();
    assert!(stdout_of(out).starts_with("pong"));
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_proxy_takes_its_metrics_and_redis_from_the_file_and_masks_the_password() {
    let a = Rtpengine::start();
    let dir = tempfile::tempdir().unwrap();
    let metrics = SocketAddr::from(([127, 0, 0, 1], warp_testkit::free_tcp_port().unwrap()));
    // No Redis there: the proxy starts anyway and uses it once it answers.
    let redis = format!(
        "redis://:redis-secret-in-file@127.0.0.1:{}/",
        warp_testkit::free_tcp_port().unwrap()
    );
    let config = dir.path().join("warp.toml");
    std::fs::write(
        &config,
        format!("redis_url = \"{redis}\"\n\n[rtpengine]\nrtpengine_metrics = \"{metrics}\"\n"),
    )
    .unwrap();
    let listen = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = dir.path().join("proxy.log");
    let mut proxy = Running(
        warp_rtpengine(&config)
            .args(["proxy", "--listen", &listen.to_string()])
            .args(["--node", &a.ng.to_string()])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(metrics).is_err() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(status) = proxy.0.try_wait().unwrap() {
            panic!("proxy exited, {status}: {text}");
        }
        assert!(Instant::now() < deadline, "no metrics listener: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("effective configuration"), "{text}");
    assert!(text.contains("redis://:***@127.0.0.1"), "{text}");
    assert!(text.contains(&config.display().to_string()), "{text}");
    assert!(!text.contains("redis-secret-in-file"), "{text}");
    // Nor does --help show it as the option's default.
    let help = warp_rtpengine(&config)
        .args(["proxy", "--help"])
        .output()
        .unwrap();
    let help = stdout_of(help);
    assert!(help.contains("--redis <REDIS>"), "{help}");
    assert!(!help.contains("redis-secret-in-file"), "{help}");
}

#[test]
fn a_file_that_is_not_toml_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warp.toml");
    std::fs::write(&config, "[rtpengine\nrtpengine_ng = 1\n").unwrap();
    let out = warp_rtpengine(&config).arg("ping").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the config file {} is not valid TOML",
            config.display()
        )),
        "{stderr}"
    );
}
