//! A throwaway redis-server on 127.0.0.1 at a free port, no persistence, stopped on
//! drop.

use std::io;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

pub struct Redis {
    /// `redis://127.0.0.1:PORT/`
    pub url: String,
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> io::Result<Self> {
        let port = crate::free_tcp_port()?;
        let mut redis = Redis {
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            child: None,
        };
        redis.restart()?;
        Ok(redis)
    }

    /// Starts the server again on its port, empty, after [`Redis::stop`] (a test of what
    /// happens when Redis comes back).
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        // Owned at once, so a failed start still stops the process.
        self.child = Some(
            Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()?,
        );
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            sleep(Duration::from_millis(25));
        }
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

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
