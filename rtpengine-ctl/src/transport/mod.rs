//! The three ways to reach rtpengine's ng port. Each exchanges one framed request for the
//! body of the reply carrying the same cookie.

mod http;
mod pending;
mod tcp;
mod udp;

pub use http::Http;
pub use tcp::Tcp;
pub use udp::Udp;
pub use udp::{MAX_DATAGRAM, MAX_UDP_PAYLOAD};

use crate::error::{Error, Result};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

/// The largest reply the stream transports read (16 MiB, far above any ng reply): a
/// peer sending more is broken or not rtpengine, and is not read into memory whole.
const MAX_MESSAGE: usize = 16 << 20;

/// Per-attempt timeout and retransmissions (UDP only; TCP and HTTP wait the whole budget once).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub timeout: Duration,
    pub retries: u32,
}

impl Default for Options {
    /// Kamailio waits 1 s per try; fewer tries fail a dead node faster.
    fn default() -> Self {
        Options {
            timeout: Duration::from_millis(1000),
            retries: 2,
        }
    }
}

impl Options {
    /// Saturating: `--retries 4294967295` or a huge timeout means "wait very long", not a panic.
    pub fn total(&self) -> Duration {
        self.timeout.saturating_mul(self.retries.saturating_add(1))
    }
}

/// Where an ng endpoint is: `udp:HOST:PORT` (or bare `HOST:PORT`), `tcp:HOST:PORT`,
/// `http://HOST:PORT[/path]` (path defaults to `/ng`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
    },
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("http://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/ng"),
            };
            return Ok(Endpoint::Http {
                addr: resolve(authority)?,
                host: authority.to_owned(),
                path: path.to_owned(),
            });
        }
        if let Some(rest) = s.strip_prefix("tcp:") {
            return Ok(Endpoint::Tcp(resolve(rest)?));
        }
        Ok(Endpoint::Udp(resolve(s.strip_prefix("udp:").unwrap_or(s))?))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Udp(a) => write!(f, "udp:{a}"),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Http { host, path, .. } => write!(f, "http://{host}{path}"),
        }
    }
}

fn resolve(hostport: &str) -> Result<SocketAddr, String> {
    hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))
}

/// An open transport.
#[derive(Debug)]
pub enum Transport {
    Udp(Udp),
    Tcp(Tcp),
    Http(Http),
}

impl Transport {
    pub async fn open(endpoint: &Endpoint, options: Options) -> Result<Transport> {
        Ok(match endpoint {
            Endpoint::Udp(a) => Transport::Udp(Udp::connect(*a, options).await?),
            Endpoint::Tcp(a) => Transport::Tcp(Tcp::new(*a, options)),
            Endpoint::Http { addr, host, path } => {
                Transport::Http(Http::new(*addr, host.clone(), path.clone(), options))
            }
        })
    }

    /// Sends `cookie SP body` and returns the reply's body.
    pub async fn exchange(&self, cookie: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        match self {
            Transport::Udp(t) => t.exchange(cookie, body).await,
            Transport::Tcp(t) => t.exchange(cookie, body).await,
            Transport::Http(t) => t.exchange(cookie, body).await,
        }
    }
}

/// Aborts a background task when its owner goes away.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn timeout_error(attempts: u32, started: std::time::Instant) -> Error {
    Error::Timeout {
        attempts,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_forms() {
        let u: Endpoint = "127.0.0.1:2223".parse().unwrap();
        assert_eq!(u, Endpoint::Udp("127.0.0.1:2223".parse().unwrap()));
        assert_eq!("udp:127.0.0.1:2223".parse::<Endpoint>().unwrap(), u);
        assert!(matches!("tcp:127.0.0.1:1".parse(), Ok(Endpoint::Tcp(_))));
        match "http://127.0.0.1:2225".parse().unwrap() {
            Endpoint::Http { path, .. } => assert_eq!(path, "/ng"),
            other => panic!("{other:?}"),
        }
        assert!("nonsense".parse::<Endpoint>().is_err());
    }

    #[test]
    fn total_budget_saturates_instead_of_overflowing() {
        let most = Options {
            timeout: Duration::MAX,
            retries: u32::MAX,
        };
        assert_eq!(most.total(), Duration::MAX);
        let default = Options::default();
        assert_eq!(default.total(), Duration::from_secs(3));
    }
}
