//! `--allow`: the networks whose ng datagrams the proxy answers. rtpengine has no ACL of
//! its own, and through the proxy anyone who reaches its socket could place and delete
//! calls or drain nodes; a carrier wants only its SIP edges answered.

use super::dropped::Dropped;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// An IPv4 or IPv6 network, `ADDRESS[/PREFIX]`; a bare address is a /32 or /128.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// Host bits zero (the parser refuses others).
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && masked(ip, self.prefix) == self.addr
    }
}

/// `ip` with all but its first `prefix` bits zeroed.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    let prefix = u32::from(prefix);
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            Ipv4Addr::from_bits(a.to_bits() & mask).into()
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            Ipv6Addr::from_bits(a.to_bits() & mask).into()
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Network, String> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{s}: not an IP address or network (ADDRESS[/PREFIX])"))?;
        let longest = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => longest,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= longest && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(format!("{s}: the prefix length must be 0 to {longest}"))?,
        };
        // 10.0.0.5/8 may be a typo for 10.0.0.5/32: an ACL should not guess which.
        let network = masked(addr, prefix);
        if network != addr {
            return Err(format!(
                "{s}: host bits are set (the network is {network}/{prefix})"
            ));
        }
        Ok(Network { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// As written on the command line, for the logged configuration.
impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The ng listeners' gate, shared by every listen socket. With no network listed every
/// source passes, as before `--allow` existed.
#[derive(Debug, Clone)]
pub struct AllowList {
    networks: Arc<[Network]>,
    refused: Dropped,
}

impl AllowList {
    pub fn new(networks: &[Network]) -> AllowList {
        AllowList {
            networks: networks.into(),
            refused: Dropped::new("from a source not allowed"),
        }
    }

    /// Whether a datagram of `len` bytes from `peer` is read; one that is not is counted
    /// and logged (once a minute at most). It is left unanswered: a reply would confirm
    /// the port to a scanner.
    pub fn admits(&self, peer: SocketAddr, len: usize) -> bool {
        // A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d.
        let ip = peer.ip().to_canonical();
        if self.networks.is_empty() || self.networks.iter().any(|n| n.contains(ip)) {
            return true;
        }
        self.refused.dropped(peer, len);
        false
    }

    /// Datagrams refused since the proxy started.
    pub fn refused(&self) -> u64 {
        self.refused.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Network {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_networks_hold_their_addresses_only() {
        let n = net("10.1.0.0/16");
        assert!(n.contains(ip("10.1.0.0")) && n.contains(ip("10.1.255.255")));
        assert!(!n.contains(ip("10.2.0.0")) && !n.contains(ip("10.0.255.255")));
        assert!(!n.contains(ip("::ffff:10.1.0.1")), "another family");
        let everything = net("0.0.0.0/0");
        assert!(everything.contains(ip("203.0.113.9")) && !everything.contains(ip("::1")));
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        assert!(!net("192.0.2.7").contains(ip("192.0.2.6")));
    }

    #[test]
    fn ipv6_networks_hold_their_addresses_only() {
        let n = net("2001:db8:0:10::/60");
        assert!(n.contains(ip("2001:db8:0:1f:ffff::1")));
        assert!(!n.contains(ip("2001:db8:0:20::")));
        assert!(!n.contains(ip("10.0.0.1")), "another family");
        assert_eq!(net("::1").to_string(), "::1/128");
        assert!(net("::1").contains(ip("::1")) && !net("::1").contains(ip("::2")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_networks_are_refused_with_the_reason() {
        let err = |s: &str| s.parse::<Network>().unwrap_err();
        for s in ["", "10.0.0", "host.example", "/8", "10.0.0.0 /8"] {
            assert!(err(s).contains("not an IP address"), "{s}: {}", err(s));
        }
        for s in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
        ] {
            assert_eq!(err(s), format!("{s}: the prefix length must be 0 to 32"));
        }
        assert!(err("::/129").ends_with("must be 0 to 128"));
        assert_eq!(
            err("10.0.0.5/8"),
            "10.0.0.5/8: host bits are set (the network is 10.0.0.0/8)"
        );
        assert!(err("2001:db8::1/32").contains("the network is 2001:db8::/32"));
    }

    #[test]
    fn an_empty_list_admits_everyone_a_list_its_networks_only() {
        let peer = |s: &str| SocketAddr::new(ip(s), 5060);
        let open = AllowList::new(&[]);
        assert!(open.admits(peer("203.0.113.9"), 10));
        let edges = AllowList::new(&[net("192.0.2.0/28"), net("2001:db8::7")]);
        assert!(edges.admits(peer("192.0.2.15"), 10));
        assert!(
            edges.admits(peer("::ffff:192.0.2.1"), 10),
            "dual-stack socket"
        );
        assert!(edges.admits(peer("2001:db8::7"), 10));
        assert!(!edges.admits(peer("192.0.2.16"), 10));
        assert!(!edges.admits(peer("2001:db8::8"), 10));
        assert_eq!((open.refused(), edges.refused()), (0, 2));
    }
}
