//! A real redis-server on a private loopback port, persisting to a temp dir (append-only
//! file, fsync always) so a stop and restart keeps what was written; optionally with a
//! TLS port beside it and a password.

use super::binary;
use super::tls::Pki;
use std::collections::{BTreeSet, HashSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    dir: PathBuf,
    /// The plain port, which [`Redis::cli`] uses.
    pub port: u16,
    /// The TLS port, when started by [`Redis::start_tls`].
    pub tls_port: Option<u16>,
    /// What every client must give (`requirepass`).
    password: Option<String>,
    /// The server's TLS arguments.
    tls: Vec<String>,
}

impl Redis {
    pub fn start(dir: &Path) -> Redis {
        let port = warp_testkit::free_tcp_port().unwrap();
        let mut redis = Redis {
            child: None,
            dir: dir.to_owned(),
            port,
            tls_port: None,
            password: None,
            tls: Vec::new(),
        };
        redis.restart();
        redis
    }

    /// A Redis that also takes TLS on `tls_port`, presenting `pki`'s certificate for
    /// 127.0.0.1 (asking clients for none), and wants `password` on either port.
    pub fn start_tls(dir: &Path, pki: &Pki, password: &str) -> Redis {
        let port = warp_testkit::free_tcp_port().unwrap();
        let tls_port = warp_testkit::free_tcp_port().unwrap();
        let mut tls = warp_testkit::redis_tls_arguments(pki, tls_port);
        tls.extend(["--requirepass".into(), password.to_owned()]);
        let mut redis = Redis {
            child: None,
            dir: dir.to_owned(),
            port,
            tls_port: Some(tls_port),
            password: Some(password.to_owned()),
            tls,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again (same port, same data) after [`Redis::stop`].
    pub fn restart(&mut self) {
        let child = Command::new(binary("redis-server"))
            // IPv6 loopback too, where the host has it ("-": optional).
            .args([
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                &self.port.to_string(),
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.tls)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [Some(self.port), self.tls_port].into_iter().flatten() {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not come up");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Freezes the server (SIGSTOP) or lets it go on (SIGCONT): frozen, it keeps its
    /// connections and answers nothing, as a hung Redis or a network black hole does.
    pub fn freeze(&self, frozen: bool) {
        super::freeze(self.pid(), frozen);
    }

    /// Stops the server (SIGTERM: it flushes its append-only file first).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis running").id()
    }

    /// Runs one command with redis-cli (on the plain port, with the password); its raw
    /// output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cli = Command::new(binary("redis-cli"));
        if let Some(password) = &self.password {
            cli.env("REDISCLI_AUTH", password);
        }
        let out = cli
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The `cdr` field of every entry of `stream`, parsed, each event once. Delivery is
    /// at least once: a batch whose exchange timed out after Redis took it (a loaded
    /// box) is sent again, byte for byte, and a consumer keys on call, attempt and event
    /// (ARCHITECTURE.md: replays are idempotent). An event emitted twice is no copy: its
    /// time differs.
    pub fn cdrs(&self, stream: &str) -> Vec<serde_json::Value> {
        let text = self.cli(&["XRANGE", stream, "-", "+"]);
        let lines: Vec<&str> = text.lines().collect();
        let mut seen = HashSet::new();
        // id, field, value per entry.
        lines
            .chunks(3)
            .filter(|e| e.len() == 3 && e[1] == "cdr" && seen.insert(e[2]))
            .map(|e| serde_json::from_str(e[2]).expect("cdr is JSON"))
            .collect()
    }

    /// Waits until `stream` holds events of at least `n` calls; returns their Call-IDs.
    pub fn wait_for_calls(&self, stream: &str, n: usize, within: Duration) -> BTreeSet<String> {
        let deadline = Instant::now() + within;
        loop {
            let calls: BTreeSet<String> = (self.cdrs(stream).iter())
                .filter_map(|c| c["call_id"].as_str().map(str::to_owned))
                .collect();
            if calls.len() >= n || Instant::now() > deadline {
                return calls;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `stream` holds at least `n` events; returns them.
    pub fn wait_for(&self, stream: &str, n: usize, within: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let cdrs = self.cdrs(stream);
            if cdrs.len() >= n || Instant::now() > deadline {
                return cdrs;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
