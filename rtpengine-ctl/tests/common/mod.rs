//! Real daemons for the tests: rtpengine (userspace, loopback) on free ports in temp dirs,
//! killed on drop, and Redis from warp-testkit. A missing binary fails the test.
#![allow(dead_code)] // each test binary uses a different part of this harness

use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warp_rtpengine::commands::{Query, Target};
use warp_rtpengine::Client;

pub struct Rtpengine {
    child: Option<Child>,
    pub ng: SocketAddr,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    /// Media ports it allocates from.
    pub media: RangeInclusive<u16>,
    extra: Vec<String>,
    pub dir: tempfile::TempDir,
}

/// Control ports (ng over UDP, ng over TCP, HTTP) and `media` media ports, from one
/// block below the ephemeral range: a restarted daemon gets its old ports back, since no
/// probe elsewhere can take them while it is down.
fn ports(media: u16) -> (SocketAddr, SocketAddr, SocketAddr, RangeInclusive<u16>) {
    let block = warp_testkit::port_block(media + 2);
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let control = block.start() + media;
    (
        at(control),
        at(control),
        at(control + 1),
        *block.start()..=control - 1,
    )
}

impl Rtpengine {
    pub fn start() -> Rtpengine {
        Rtpengine::start_with(60, &[])
    }

    /// `media` media ports (4 per call, at most 98), extra command-line options.
    pub fn start_with(media: u16, extra: &[&str]) -> Rtpengine {
        let mut tries = 0;
        loop {
            let (ng, tcp, http, media) = ports(media);
            let mut r = Rtpengine {
                child: None,
                ng,
                tcp,
                http,
                media,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                dir: tempfile::tempdir().unwrap(),
            };
            tries += 1;
            match r.try_spawn() {
                Ok(()) => return r,
                // A daemon a test binary run by hand left behind can still hold the
                // block: the next one (libwebsockets says "binding" for the HTTP port).
                Err(log) if tries < 4 && (log.contains("in use") || log.contains("binding")) => {}
                Err(log) => panic!("rtpengine did not start: {log}"),
            }
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("rtpengine.log")
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("rtpengine did not start: {log}");
        }
    }

    /// Starts rtpengine and waits for it to answer; its log if it does not.
    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = Command::new("rtpengine")
            .args([
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--table=-1",
                "--interface=127.0.0.1",
                "--delete-delay=0",
                "--num-threads=2",
                "--log-level=5",
            ])
            .arg(format!("--listen-ng={}", self.ng))
            .arg(format!("--listen-tcp-ng={}", self.tcp))
            .arg(format!("--listen-http={}", self.http))
            .arg(format!("--port-min={}", self.media.start()))
            .arg(format!("--port-max={}", self.media.end()))
            .arg(format!("--recording-dir={}", self.dir.path().display()))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rtpengine (Debian package rtpengine-daemon) must be installed");
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 256];
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!("rtpengine exited ({status}): {}", self.log()));
            }
            let _ = sock.send_to(b"ready d7:command4:pinge", self.ng);
            if let Ok(n) = sock.recv(&mut buf) {
                if buf[..n].ends_with(b"pong") || buf[..n].ends_with(b"ponge") {
                    return Ok(());
                }
            }
        }
        self.kill();
        Err(format!("rtpengine did not answer ping: {}", self.log()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the daemon: a node that stops answering
    /// without its socket going away, as a hung host. A stop returns once every thread
    /// has stopped: kill returns before, the stop lands as the thread that took the
    /// signal next runs, and on a loaded machine another thread can answer meanwhile.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("rtpengine is running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while signal == "-STOP" && !all_threads_stopped(pid) {
            assert!(Instant::now() < deadline, "rtpengine {pid} did not stop");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Same ports, fresh process (calls are gone, as after a crash).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether every thread of process `pid` is stopped (state `T` in its stat line).
fn all_threads_stopped(pid: u32) -> bool {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks.flatten().all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which may hold spaces and parentheses.
        stat.rfind(')')
            .and_then(|end| stat.get(end + 2..end + 3))
            .is_some_and(|state| state == "T")
    })
}

pub use warp_testkit::Redis;

/// A throwaway redis-server; a missing binary fails the test.
pub fn start_redis() -> Redis {
    Redis::start().expect("redis-server (Debian package redis-server) must be installed")
}

/// The entries of the QoS stream, waiting up to five seconds for `n` to arrive (the
/// proxy writes them from a background task).
pub async fn qos_entries(
    redis: &Redis,
    n: usize,
) -> Vec<(String, std::collections::HashMap<String, String>)> {
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut entries = Vec::new();
    for _ in 0..250 {
        entries = redis::cmd("XRANGE")
            .arg("warp:qos:raw")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        if entries.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    entries
}

/// Waits (5 s at most) until rtpengine has counted `packets` RTP packets of `call` in
/// all: it relays on threads of its own, so packets just sent are counted a moment
/// later, and how long a moment is on a loaded machine is anyone's guess.
pub async fn counted(c: &Client, call: &str, packets: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = c.send(&Query(Target::call(call))).await.unwrap();
        if stats.totals_rtp.packets >= packets {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{call}: {} of {packets} RTP packets counted",
            stats.totals_rtp.packets
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain audio SDP offering PCMU/PCMA/telephone-event at `port` on loopback.
pub fn sdp(user: &str, port: u16) -> String {
    format!(
        "v=0\r\no={user} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// The `m=audio` port of an SDP.
pub fn media_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port in {sdp}"))
}

/// One RTP packet (PCMU, 20 ms of silence).
pub fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(0xffu8, 160));
    p
}

/// What a stub peer reads of one ng request on `s`: up to and including `end`.
pub fn read_request(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut request = Vec::new();
    let mut buf = [0u8; 256];
    while !request.ends_with(end) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "client closed before its request was in");
        request.extend_from_slice(&buf[..n]);
    }
    request
}
