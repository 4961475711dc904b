//! The `warp-api` binary configured by a TOML file alone (`WARP_CONFIG`), no `WARP_*`
//! variable set: it connects, listens and answers where the file says, and prints the
//! file's secrets masked.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warp_testkit::Postgres;

const ROOT: &str = "root-from-the-file";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary with none of the test runner's `WARP_*` variables: only `vars`.
fn warp_api(vars: &[(&str, &std::path::Path)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warp-api"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("WARP_") {
            command.env_remove(var);
        }
    }
    command.envs(vars.iter().copied());
    command
}

#[tokio::test]
async fn the_api_runs_on_settings_from_the_file_alone() {
    let pg = Postgres::start().expect("start a private PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // The test server trusts local connections: the password is there to be masked.
    let database_url = pg.url.replace("postgres@", "postgres:db-secret-in-file@");
    let config = dir.path().join("warp.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = {database_url:?}\nsnapshot = {:?}\n\n[api]\nlisten = \"{addr}\"\n\
             bootstrap_api_key = \"{ROOT}\"\nrate_limit = 600\n",
            dir.path().join("routing.snap").display().to_string()
        ),
    )
    .unwrap();
    let log = dir.path().join("warp-api.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut server = Server(
        warp_api(&[("WARP_CONFIG", &config)])
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start warp-api"),
    );
    let since = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        let text = || std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("warp-api exited, {status}: {}", text());
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "no listener: {}",
            text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut conn = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /api/v1/vendors HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {ROOT}\r\n\
         connection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_string(&mut answer))
        .await
        .expect("an answer within 30 s")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("postgres:***@127.0.0.1"), "{text}");
    assert!(text.contains("WARP_RATE_LIMIT=600"), "{text}");
    assert!(text.contains(&config.display().to_string()), "{text}");
    assert!(
        !text.contains("db-secret-in-file") && !text.contains(ROOT),
        "{text}"
    );
}

#[test]
fn a_typo_in_the_file_stops_the_api_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warp.toml");
    std::fs::write(
        &config,
        "database_url = \"postgres://warp@db/warp\"\n[api]\nlistn = \"0.0.0.0:8080\"\n",
    )
    .unwrap();
    let out = warp_api(&[("WARP_CONFIG", &config)]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "the config file {}, line 3: `api.listn` is not a setting",
            config.display()
        )),
        "{stderr}"
    );
}
