//! A service's `host[:port]` as its URL gives it (an IPv6 literal in brackets), resolved
//! once at start-up so no SIP worker waits on a resolver, and connected in the
//! resolver's order: `localhost` may list `::1` before `127.0.0.1`, and a service bound
//! to only one of them must still be reached.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    addrs: Vec<SocketAddr>,
}

/// Splits `host[:port]` / `[v6]:port`; `None` when it is neither.
pub fn split(hostport: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (host, rest) = v6.split_once(']')?;
            match rest {
                "" => (host, None),
                _ => (host, Some(rest.strip_prefix(':')?)),
            }
        }
        None => match hostport.rsplit_once(':') {
            // A bare IPv6 literal has colons but no brackets: its last group is no port.
            Some((host, _)) if host.contains(':') => return None,
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then_some((host, port))
}

impl Endpoint {
    pub fn resolve(host: &str, port: u16) -> Result<Endpoint, String> {
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host:?} ({e})"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host:?} has no address"));
        }
        Ok(Endpoint { addrs })
    }

    /// Tries each address in turn until one connects, all within `within`.
    pub fn connect(&self, within: Duration) -> Result<TcpStream, String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        for addr in &self.addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(addr, left) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(if last.is_empty() {
            format!("timed out after {} ms", within.as_millis())
        } else {
            last
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn splits_names_and_both_address_families() {
        assert_eq!(split("redis.lan", 6379), Some(("redis.lan", 6379)));
        assert_eq!(split("10.0.0.5:6380", 6379), Some(("10.0.0.5", 6380)));
        assert_eq!(split("[::1]:6380", 6379), Some(("::1", 6380)));
        assert_eq!(split("[2001:db8::1]", 80), Some(("2001:db8::1", 80)));
        for bad in [
            "",
            ":6379",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "host:port",
            "[]:1",
        ] {
            assert_eq!(split(bad, 1), None, "{bad:?}");
        }
    }

    #[test]
    fn connects_to_the_first_address_that_answers() {
        let listening = TcpListener::bind("127.0.0.1:0").unwrap();
        // A port nothing listens on: bound, then closed.
        let refusing = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let endpoint = Endpoint {
            addrs: vec![refusing, listening.local_addr().unwrap()],
        };
        let stream = endpoint.connect(Duration::from_secs(2)).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), listening.local_addr().unwrap());
        let none = Endpoint {
            addrs: vec![refusing],
        };
        assert!(none
            .connect(Duration::from_secs(2))
            .unwrap_err()
            .contains(&refusing.to_string()));
    }

    #[test]
    fn resolves_a_bracketed_literal() {
        let (host, port) = split("[::1]:6379", 1).unwrap();
        let endpoint = Endpoint::resolve(host, port).unwrap();
        assert_eq!(endpoint.addrs, ["[::1]:6379".parse().unwrap()]);
    }
}
