//! A real rtpengine (userspace forwarding, no kernel module) on loopback with its ng
//! control socket on a private port.

use super::{binary, free_udp_port, Kamailio};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

pub struct Rtpengine {
    child: Child,
    log: PathBuf,
    pub ng_port: u16,
    /// Media ports it allocates from.
    pub ports: std::ops::RangeInclusive<u16>,
}

impl Rtpengine {
    /// Starts rtpengine on a free ng port; another probed port if the first was taken
    /// before rtpengine bound it.
    pub fn start(dir: &Path) -> Rtpengine {
        for _ in 0..2 {
            if let Some(r) = Rtpengine::try_start(dir) {
                return r;
            }
        }
        Rtpengine::try_start(dir).unwrap_or_else(|| {
            let log = std::fs::read_to_string(dir.join("rtpengine.log")).unwrap_or_default();
            panic!("rtpengine did not come up:\n{log}")
        })
    }

    fn try_start(dir: &Path) -> Option<Rtpengine> {
        let ng_port = free_udp_port();
        let ports = warp_testkit::port_block(100);
        // Each attempt's log afresh.
        let log = dir.join("rtpengine.log");
        std::fs::File::create(&log).unwrap();
        let child = spawn(&log, ng_port, &ports, &[]);
        let mut r = Rtpengine {
            child,
            log,
            ng_port,
            ports,
        };
        r.answers().then_some(r)
    }

    /// Starts rtpengine again, on the same control and media ports, ending a call after
    /// `timeout` s without a packet (`--timeout`, at least 1) and telling the edge
    /// listening on `edge_port` over XMLRPC (`--b2b-url`, `--xmlrpc-format=2`: the
    /// dialog module's `dlg.terminate_dlg`). Restarted, not started so, since the edge
    /// needs rtpengine's port before it starts and rtpengine the edge's; the calls it
    /// held are forgotten.
    pub fn restart_timing_out(&mut self, timeout: u32, edge_port: u16) {
        self.restart(&[
            format!("--timeout={timeout}"),
            format!("--b2b-url=http://127.0.0.1:{edge_port}/RPC2"),
            "--xmlrpc-format=2".to_owned(),
        ]);
    }

    /// Starts rtpengine again, on the same control and media ports, with `more`
    /// arguments: the calls it held are forgotten.
    pub fn restart(&mut self, more: &[String]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.log, self.ng_port, &self.ports, more);
        assert!(
            self.answers(),
            "rtpengine did not come back:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Waits (10 s at most) for rtpengine to answer a ping: false when it exited (a
    /// port it could not bind) or never answered (dropped, it is killed).
    fn answers(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ng("d7:command4:pinge").is_none() {
            if Instant::now() > deadline || self.child.try_wait().is_ok_and(|s| s.is_some()) {
                return false;
            }
        }
        true
    }

    /// Freezes rtpengine (SIGSTOP) or lets it go on (SIGCONT): frozen, it answers no
    /// command, and Kamailio's rtpengine module waits out its timeout and retries
    /// (about 5 s) in whatever route asked.
    pub fn freeze(&self, frozen: bool) {
        super::freeze(self.child.id(), frozen);
    }

    /// What it logged (info: each command, each call it closed and why).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many of each ng command (`offer`, `answer`, `delete` …) rtpengine received,
    /// the tests' own included.
    pub fn commands(&self) -> std::collections::BTreeMap<String, usize> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut counts = std::collections::BTreeMap::new();
        for line in log.lines() {
            let command = line.split("Received command '").nth(1);
            if let Some(name) = command.and_then(|rest| rest.split('\'').next()) {
                *counts.entry(name.to_owned()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Sends one bencoded ng command; the bencoded reply.
    pub fn ng(&self, command: &str) -> Option<String> {
        // rtpengine answers a repeated cookie from its cache: one per command.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let cookie = format!("c{}", NEXT.fetch_add(1, Relaxed));
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let request = format!("{cookie} {command}");
        sock.send_to(request.as_bytes(), ("127.0.0.1", self.ng_port))
            .ok()?;
        let mut buf = [0u8; 65535];
        let n = sock.recv(&mut buf).ok()?;
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        reply.strip_prefix(&format!("{cookie} ")).map(str::to_owned)
    }
}

/// rtpengine on `ng_port` and the media `ports`, logging to `log` (appended to: a
/// restart's commands count with the first run's), with `more` arguments.
fn spawn(
    log: &Path,
    ng_port: u16,
    ports: &std::ops::RangeInclusive<u16>,
    more: &[String],
) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(binary("rtpengine"))
        .args([
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--table=-1",
        ])
        // Info: each ng command it receives is logged (see `commands`). Media on
        // IPv4 and IPv6, as the SDP's recipient reaches it.
        .args(["--interface=127.0.0.1", "--interface=::1"])
        .args(["--num-threads=1", "--log-level=6"])
        // A deleted call is gone at once, not kept 30 s for late packets.
        .arg("--delete-delay=0")
        .arg(format!("--listen-ng=127.0.0.1:{ng_port}"))
        .arg(format!("--port-min={}", ports.start()))
        .arg(format!("--port-max={}", ports.end()))
        .args(more)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start rtpengine")
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (5 s at most) until rtpengine holds no call.
pub fn wait_for_no_media_sessions(rtpengine: &Rtpengine, k: &Kamailio) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = rtpengine.ng("d7:command4:liste").unwrap_or_default();
        if list.contains("5:callsle") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sessions left: {list}\n{}",
            k.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
