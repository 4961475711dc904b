//! A throwaway redis-server on 127.0.0.1 at a free port, no persistence, stopped on
//! drop; optionally taking TLS on a second port.

use crate::pki::TestCa;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

pub struct Redis {
    /// `redis://127.0.0.1:PORT/`
    pub url: String,
    pub port: u16,
    /// `rediss://127.0.0.1:TLS_PORT/`, when started by [`Redis::start_tls`].
    pub tls_url: Option<String>,
    /// The server's TLS arguments.
    tls: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> io::Result<Self> {
        crate::ports::start_on_a_free_port(|port| {
            let mut redis = Redis::on(port);
            redis.restart().map(|()| redis)
        })
    }

    /// Starts a server that also takes TLS (Redis's `tls-port`) on `tls_url`, presenting
    /// `ca`'s certificate for 127.0.0.1 and asking clients for none. The plain port stays,
    /// for the test to look inside.
    pub fn start_tls(ca: &TestCa) -> io::Result<Self> {
        crate::ports::start_on_a_free_port(|port| {
            let tls_port = crate::ports::free_tcp_port()?;
            let mut redis = Redis::on(port);
            redis.tls_url = Some(format!("rediss://127.0.0.1:{tls_port}/"));
            redis.tls = tls_arguments(ca, tls_port);
            redis.restart().map(|()| redis)
        })
    }

    fn on(port: u16) -> Redis {
        Redis {
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            tls_url: None,
            tls: Vec::new(),
            child: None,
        }
    }

    /// Starts the server again on its port, empty, after [`Redis::stop`] (a test of what
    /// happens when Redis comes back). Fails if the port was taken meanwhile.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        // Owned at once, so a failed start still stops the process.
        let child = self.child.insert(
            Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(&self.tls)
                .stdout(Stdio::null())
                .spawn()?,
        );
        let pid = child.id();
        for _ in 0..200 {
            // A connect alone may reach whatever took the port (even another
            // redis-server) while ours fails to bind it and exits. Its TLS port, if
            // any, is bound before either answers.
            if answers_as(self.port, pid) {
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Err(io::Error::other(format!(
                    "redis-server exited ({status}): is port {} taken?{}",
                    self.port,
                    if self.tls.is_empty() {
                        ""
                    } else {
                        " or its TLS port?"
                    }
                )));
            }
            sleep(Duration::from_millis(25));
        }
        self.stop();
        Err(io::Error::other("redis-server did not start"))
    }

    /// Stops the server now (a test of what happens when Redis goes away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether the server on `port` is redis-server process `pid`, by its `INFO server`.
fn answers_as(port: u16, pid: u32) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if s.set_read_timeout(Some(Duration::from_millis(500)))
        .is_err()
        || s.write_all(b"INFO server\r\n").is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((_, rest)) = text.split_once("process_id:") {
            if let Some((id, _)) = rest.split_once("\r\n") {
                return id == pid.to_string();
            }
        }
    }
    false
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// redis-server's arguments for TLS on `tls_port`, presenting `ca`'s certificate for
/// 127.0.0.1 and asking clients for none.
pub fn tls_arguments(ca: &TestCa, tls_port: u16) -> Vec<String> {
    let file = |p: &std::path::Path| p.to_string_lossy().into_owned();
    vec![
        "--tls-port".into(),
        tls_port.to_string(),
        "--tls-cert-file".into(),
        file(&ca.server_cert),
        "--tls-key-file".into(),
        file(&ca.server_key),
        "--tls-ca-cert-file".into(),
        file(&ca.ca),
        "--tls-auth-clients".into(),
        "no".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn restart_fails_when_the_port_was_taken_meanwhile() {
        let mut redis = Redis::start().unwrap();
        redis.stop();
        let thief = TcpListener::bind(("127.0.0.1", redis.port)).unwrap();
        let err = redis.restart().unwrap_err();
        assert!(err.to_string().contains("exited"), "{err}");
        assert!(
            redis.child.is_none(),
            "the failed redis-server is not left behind"
        );
        drop(thief);
        redis.restart().unwrap();
    }
}
