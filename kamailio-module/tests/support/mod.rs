//! A real Kamailio on loopback with warp.so loaded: private port, temp dir, ctl socket.
//! Every helper panics (fails the test) when Kamailio, kamcmd or the built module is
//! missing: these tests never skip.

pub mod b2bua;
pub mod dataset;
pub mod redis;
pub mod rtpengine;
pub mod sdp;
pub mod sipp;
pub mod tcp;
pub mod telique;
pub mod tls;
pub mod udp;
pub mod vendor;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's module directory (kamailio, kamailio-extra-modules, kamailio-redis-modules,
/// kamailio-lua-modules, kamailio-python3-modules, kamailio-tls-modules,
/// kamailio-secsipid-modules, kamailio-xml-modules: scripts/install-deps.sh's).
const MODULES_DIR: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/";

/// An executable from PATH or /usr/sbin (where Debian puts kamailio and kamcmd).
pub fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found on PATH or in /usr/sbin: run scripts/install-deps.sh")
        })
}

/// The cdylib cargo built for this test run (the library is a dependency of the tests):
/// found upwards from the test binary, target/<profile>/deps/<test>, so first in deps/
/// where cargo writes it, whatever the target dir or profile.
pub fn built_module() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .skip(1)
        .map(|dir| dir.join("libwarp_kamailio.so"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("libwarp_kamailio.so not found above {}", exe.display()))
}

/// An IP address as the host of a SIP URI or Via: an IPv6 one in brackets.
pub fn uri_host(ip: &str) -> String {
    match ip.parse() {
        Ok(std::net::IpAddr::V6(_)) => format!("[{ip}]"),
        _ => ip.to_owned(),
    }
}

/// The edge's loopback address in the family of `source`'s: ::1 for an IPv6 peer.
pub fn edge_address(source: &str) -> &'static str {
    match source.parse() {
        Ok(std::net::IpAddr::V6(_)) => "::1",
        _ => "127.0.0.1",
    }
}

/// Freezes the process `pid` (SIGSTOP) or lets it go on (SIGCONT): frozen, it keeps
/// its sockets and answers nothing, as a hung server does.
pub fn freeze(pid: u32, frozen: bool) {
    let signal = if frozen { "-STOP" } else { "-CONT" };
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn free_udp_port() -> u16 {
    warp_testkit::free_udp_port().unwrap()
}

/// A port on 127.0.0.1 free for UDP and for TCP (a config file's socket takes both),
/// the next one free for TCP too (a socket without a protocol takes TLS there).
fn free_udp_and_tcp_port() -> u16 {
    loop {
        let port = free_udp_port();
        let tcp_free = |port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if tcp_free(port) && port < u16::MAX && tcp_free(port + 1) {
            return port;
        }
    }
}

/// What the script does with each request.
pub enum Script<'a> {
    /// Body of a native `request_route { ... }`.
    Native(&'a str),
    /// A KEMI Lua script defining `ksr_request_route()`.
    Lua(&'a str),
    /// A KEMI Lua script that relays: tm and tmx loaded too.
    LuaRelay(&'a str),
    /// A KEMI Python script whose `mod_init()` returns the object with
    /// `ksr_request_route(self, msg)`.
    Python(&'a str),
    /// Everything after the base configuration: extra modules, parameters and routes.
    Cfg(&'a str),
}

pub struct Kamailio {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    /// What it was started with, to start it again ([`Kamailio::start_again`]).
    cfg: PathBuf,
    args: Vec<String>,
}

impl Kamailio {
    /// Starts Kamailio (2 SIP workers, foreground) and waits until warp's RPC answers.
    pub fn start(modparams: &[(&str, &str)], script: Script<'_>) -> Self {
        Self::start_with(modparams, script, &[])
    }

    /// As [`Kamailio::start`], with more command-line arguments.
    pub fn start_with(modparams: &[(&str, &str)], script: Script<'_>, args: &[String]) -> Self {
        Self::start_module(&built_module(), modparams, script, args)
    }

    /// As [`Kamailio::start_with`], loading `module` as warp.so (e.g. an older build to
    /// compare with).
    pub fn start_module(
        module: &Path,
        modparams: &[(&str, &str)],
        script: Script<'_>,
        args: &[String],
    ) -> Self {
        let (dir, cfg, port) = Self::prepare(module, modparams, script);
        Self::run(dir, &cfg, port, args).running()
    }

    /// Starts Kamailio on a config file of the repository, passing `defines` (`-A`) and
    /// more command-line `args`; warp.so is found first in the temp dir (`-L`). The
    /// config must take `LISTEN`, `CTL_SOCK` and `CHILDREN` defines; `{port}` in a define
    /// is the port it listens on.
    pub fn start_file(cfg: &Path, defines: &[String], args: &[String]) -> Self {
        Self::start_file_module(&built_module(), cfg, defines, args)
    }

    /// As [`Kamailio::start_file`], loading `module` as warp.so.
    pub fn start_file_module(
        module: &Path,
        cfg: &Path,
        defines: &[String],
        args: &[String],
    ) -> Self {
        Self::spawn_file(module, cfg, defines, args).running()
    }

    /// Starts Kamailio on a config file of the repository as [`Kamailio::start_file`]
    /// does, expecting it to refuse the configuration; returns its log.
    pub fn refused_file(cfg: &Path, defines: &[String]) -> String {
        Self::spawn_file(&built_module(), cfg, defines, &[]).refusal()
    }

    fn spawn_file(module: &Path, cfg: &Path, defines: &[String], args: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_and_tcp_port();
        std::fs::copy(module, dir.path().join("warp.so")).unwrap();
        let mut all = vec![
            "-L".to_string(),
            format!("{}:{MODULES_DIR}", dir.path().display()),
            "-A".into(),
            // No protocol: the socket takes UDP and TCP.
            format!("LISTEN=127.0.0.1:{port}"),
            "-A".into(),
            format!(
                "CTL_SOCK=\"unix:{}\"",
                dir.path().join("ctl.sock").display()
            ),
            "-A".into(),
            "CHILDREN=2".into(),
        ];
        // A define may name the port the edge listens on, not known before now.
        for d in defines {
            all.extend(["-A".into(), d.replace("{port}", &port.to_string())]);
        }
        all.extend_from_slice(args);
        Self::run(dir, cfg, port, &all)
    }

    fn running(mut self) -> Self {
        self.wait_up();
        self
    }

    /// Starts Kamailio again after [`Kamailio::stop`] or [`Kamailio::crash`]: same
    /// config, arguments, port and directory; its log goes on in the same file.
    pub fn start_again(&mut self) {
        self.child = Self::spawn_kamailio(self.dir.path(), &self.cfg, &self.args);
        self.wait_up();
    }

    fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("kamailio exited ({status}):\n{}", self.log());
            }
            if self.kamcmd(&["warp.version"]).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts Kamailio expecting it to refuse the configuration; returns its log.
    pub fn refused(modparams: &[(&str, &str)], script: Script<'_>) -> String {
        Self::spawn(modparams, script).refusal()
    }

    /// Waits for Kamailio to exit on a configuration it refuses; returns its log.
    fn refusal(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    !status.success(),
                    "kamailio exited successfully:\n{}",
                    self.log()
                );
                return self.log();
            }
            assert!(
                self.kamcmd(&["warp.version"]).is_err() && Instant::now() < deadline,
                "kamailio accepted the configuration:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn spawn(modparams: &[(&str, &str)], script: Script<'_>) -> Self {
        let (dir, cfg, port) = Self::prepare(&built_module(), modparams, script);
        Self::run(dir, &cfg, port, &[])
    }

    fn run(dir: tempfile::TempDir, cfg: &Path, port: u16, args: &[String]) -> Self {
        Kamailio {
            child: Self::spawn_kamailio(dir.path(), cfg, args),
            dir,
            port,
            cfg: cfg.to_owned(),
            args: args.to_vec(),
        }
    }

    fn spawn_kamailio(dir: &Path, cfg: &Path, args: &[String]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("kamailio.log"))
            .unwrap();
        Command::new(binary("kamailio"))
            .args(["-DD", "-E", "-m", "32", "-M", "8", "-f"])
            .arg(cfg)
            .arg("-w")
            .arg(dir)
            .arg("-Y")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kamailio")
    }

    fn prepare(
        built: &Path,
        modparams: &[(&str, &str)],
        script: Script<'_>,
    ) -> (tempfile::TempDir, PathBuf, u16) {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        // Deployed under the name kamailio.cfg files use.
        let module = dir.path().join("warp.so");
        std::fs::copy(built, &module).unwrap();
        // No CDR events unless a test asks (and names its own Redis).
        let params: String = [("cdr_stream", "")]
            .iter()
            .chain(modparams)
            .map(|(k, v)| match v.parse::<i64>() {
                Ok(n) => format!("modparam(\"warp\", \"{k}\", {n})\n"),
                Err(_) => format!("modparam(\"warp\", \"{k}\", \"{v}\")\n"),
            })
            .collect();
        let routing = match script {
            Script::Native(body) => format!("request_route {{\n{body}\n}}\n"),
            Script::Cfg(text) => text.to_owned(),
            Script::Lua(code) | Script::LuaRelay(code) | Script::Python(code) => {
                let (file, module, engine) = match script {
                    // Not warp.py: Python would import warp.so, beside it, for it.
                    Script::Python(_) => ("edge.py", "app_python3", "python"),
                    _ => ("warp.lua", "app_lua", "lua"),
                };
                let path = dir.path().join(file);
                std::fs::write(&path, code).unwrap();
                let tm = match script {
                    Script::LuaRelay(_) => "loadmodule \"tm.so\"\nloadmodule \"tmx.so\"\n",
                    _ => "",
                };
                format!(
                    "{tm}loadmodule \"{module}.so\"\nmodparam(\"{module}\", \"load\", \"{}\")\ncfgengine \"{engine}\"\n",
                    path.display()
                )
            }
        };
        let cfg = format!(
            "#!KAMAILIO\n\
             debug=2\nlog_stderror=yes\nchildren=2\ndisable_tcp=yes\nauto_aliases=no\n\
             listen=udp:127.0.0.1:{port}\n\
             mpath=\"{MODULES_DIR}\"\n\
             loadmodule \"sl.so\"\nloadmodule \"pv.so\"\nloadmodule \"textops.so\"\nloadmodule \"ctl.so\"\n\
             loadmodule \"{module}\"\n\
             modparam(\"ctl\", \"binrpc\", \"unix:{ctl}\")\n\
             {params}{routing}",
            module = module.display(),
            ctl = dir.path().join("ctl.sock").display(),
        );
        let path = dir.path().join("kamailio.cfg");
        std::fs::write(&path, cfg).unwrap();
        (dir, path, port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs kamcmd; its output, or on failure its error text.
    pub fn kamcmd(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(binary("kamcmd"))
            .arg("-s")
            .arg(format!(
                "unix:{}",
                self.dir.path().join("ctl.sock").display()
            ))
            .args(args)
            .output()
            .expect("run kamcmd");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        // kamcmd prints RPC faults as "error: <code> - <message>", with exit status 0.
        if out.status.success() && !stdout.starts_with("error:") {
            Ok(stdout)
        } else {
            Err(stdout + &String::from_utf8_lossy(&out.stderr))
        }
    }

    /// Runs an RPC command; its reply flattened to `a.b: value` pairs.
    pub fn rpc(&self, command: &str) -> BTreeMap<String, String> {
        self.rpc_args(&[command])
            .unwrap_or_else(|e| panic!("kamcmd {command} failed: {e}\n{}", self.log()))
    }

    /// Runs an RPC command with arguments; the flattened reply or the fault text.
    pub fn rpc_args(&self, args: &[&str]) -> Result<BTreeMap<String, String>, String> {
        self.kamcmd(args).map(|text| flatten_rpc(&text))
    }

    /// Every process of this Kamailio, as (pid, description) from `core.psx`.
    pub fn processes(&self) -> Vec<(u32, String)> {
        let list = self.kamcmd(&["core.psx"]).unwrap();
        let mut pid = 0;
        let mut all = Vec::new();
        for line in list.lines().map(str::trim) {
            if let Some(p) = line.strip_prefix("PID: ") {
                pid = p.parse().unwrap();
            } else if let Some(what) = line.strip_prefix("DSC: ") {
                all.push((pid, what.to_owned()));
            }
        }
        all
    }

    /// Sends one request from a fresh UDP socket on 127.0.0.1 and returns the final reply.
    pub fn request(&self, method: &str, headers: &str) -> Reply {
        self.request_from("127.0.0.1", method, headers)
    }

    /// As [`Kamailio::request`], from another loopback address (e.g. an unknown peer).
    pub fn request_from(&self, source: &str, method: &str, headers: &str) -> Reply {
        self.request_to(source, "12125550123", method, headers)
    }

    /// A request for `user` (the dialled number) from `source`.
    pub fn request_to(&self, source: &str, user: &str, method: &str, headers: &str) -> Reply {
        let from = format!("<sip:3035550100@{}>", uri_host(source));
        self.send(source, user, method, &from, headers, "")
    }

    /// An INVITE whose Call-ID ends in `tail` (after the usual `warp-test-<port>-<n>`).
    pub fn invite_with_call_id_tail(&self, tail: &str) -> Reply {
        let from = "<sip:3035550100@127.0.0.1>";
        self.send("127.0.0.1", "12125550123", "INVITE", from, "", tail)
    }

    /// An OPTIONS from 127.0.0.1 whose From header has the value `from` (a tag added).
    pub fn request_with_from(&self, from: &str) -> Reply {
        self.send("127.0.0.1", "12125550123", "OPTIONS", from, "", "")
    }

    /// [`Kamailio::request_to`], but a request that gets no final reply within `wait`
    /// is `None` (e.g. one the edge drops).
    pub fn request_within(
        &self,
        wait: Duration,
        source: &str,
        user: &str,
        method: &str,
        headers: &str,
    ) -> Option<Reply> {
        let from = format!("<sip:3035550100@{}>", uri_host(source));
        self.exchange(wait, source, user, method, &from, headers, "")
            .ok()
    }

    fn send(
        &self,
        source: &str,
        user: &str,
        method: &str,
        from: &str,
        headers: &str,
        call_id_tail: &str,
    ) -> Reply {
        let wait = Duration::from_secs(5);
        self.exchange(wait, source, user, method, from, headers, call_id_tail)
            .unwrap_or_else(|e| panic!("no reply ({e}):\n{}", self.log()))
    }

    /// Sends one request from a fresh UDP socket on `source` to the edge's socket of its
    /// family (::1 for an IPv6 source); its final reply, or the error of waiting `wait`
    /// for it.
    #[allow(clippy::too_many_arguments)]
    fn exchange(
        &self,
        wait: Duration,
        source: &str,
        user: &str,
        method: &str,
        from: &str,
        headers: &str,
        call_id_tail: &str,
    ) -> std::io::Result<Reply> {
        let sock = UdpSocket::bind((source, 0)).unwrap();
        sock.set_read_timeout(Some(wait)).unwrap();
        let lport = sock.local_addr().unwrap().port();
        // The kernel may hand a later request the port of an earlier one: the sequence
        // number keeps their Call-IDs and branches apart.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = format!(
            "{lport}-{}",
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let edge = edge_address(source);
        let (via, host) = (uri_host(source), uri_host(edge));
        let msg = format!(
            "{method} sip:{user}@{host}:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via}:{lport};branch=z9hG4bK-{id}\r\n\
             From: {from};tag=t{id}\r\n\
             To: <sip:{user}@{host}>\r\n\
             Call-ID: warp-test-{id}{call_id_tail}\r\n\
             CSeq: 1 {method}\r\n\
             {headers}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            port = self.port
        );
        sock.send_to(msg.as_bytes(), (edge, self.port)).unwrap();
        let mut buf = [0u8; 65535];
        loop {
            let n = sock.recv(&mut buf)?;
            let reply = Reply::parse(&String::from_utf8_lossy(&buf[..n]));
            if reply.code >= 200 {
                return Ok(reply);
            }
        }
    }
}

impl Kamailio {
    /// Stops Kamailio as its service would (SIGTERM: the main process stops its
    /// children, then runs the modules' `destroy`) and returns its whole log.
    pub fn stop(&mut self) -> String {
        self.terminate();
        self.log()
    }

    /// Kills every process of this Kamailio at once (SIGKILL), as a crash or a power
    /// cut would: no module's `destroy` runs, nothing is given back.
    ///
    /// The main process dies first: told of a dead child it would shut down in order,
    /// and dialog's shutdown ends every call (warp gives their places back).
    pub fn crash(&mut self) {
        let main = self.child.id().to_string();
        let children = Command::new("pgrep")
            .args(["-P", &main])
            .output()
            .expect("run pgrep");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let children = String::from_utf8_lossy(&children.stdout);
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(children.split_whitespace())
            .status();
    }

    /// The main process's id (a cluster node's name ends in it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn terminate(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SIGTERM lets the main process stop its children and free shm.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.terminate();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub reason: String,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn parse(text: &str) -> Reply {
        let mut lines = text.split("\r\n");
        let status = lines.next().unwrap_or_default();
        let mut parts = status.splitn(3, ' ');
        let (_, code, reason) = (parts.next(), parts.next(), parts.next());
        let headers = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Reply {
            code: code
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {status:?}")),
            reason: reason.unwrap_or_default().to_string(),
            headers,
            body: text
                .split_once("\r\n\r\n")
                .map_or("", |(_, body)| body)
                .to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// kamcmd's indented `{ key: value }` output as `outer.inner: value` pairs.
fn flatten_rpc(text: &str) -> BTreeMap<String, String> {
    let mut path: Vec<String> = Vec::new();
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line == "}" {
            path.pop();
        } else if let Some((key, value)) = line.split_once(':') {
            let key = key.trim().to_string();
            match value.trim() {
                "{" => path.push(key),
                v => {
                    let full = path
                        .iter()
                        .chain([&key])
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(".");
                    out.insert(full, v.to_string());
                }
            }
        }
    }
    out
}
