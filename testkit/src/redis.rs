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
    child: Child,
}

impl Redis {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> io::Result<Self> {
        let port = crate::free_tcp_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()?;
        // Owned at once, so a failed start still stops the process.
        let redis = Redis {
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            child,
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(redis);
            }
            sleep(Duration::from_millis(25));
        }
        Err(io::Error::other("redis-server did not start"))
    }

    /// Stops the server now (a test of what happens when Redis goes away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
