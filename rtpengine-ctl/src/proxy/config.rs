//! Proxy configuration: listeners and the sources they answer, nodes, timers. Parsed from
//! the command line / environment.

use super::allow::Network;
use crate::transport::Options;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// One rtpengine node: `[NAME=]HOST:PORT[,weight=N][,set=N]`. The name identifies the node
/// in Redis and metrics, so proxies sharing Redis must name nodes alike (default: the address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
    pub set: u32,
}

impl FromStr for NodeSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(',');
        let first = parts.next().unwrap_or_default();
        let (name, addr_text) = match first.split_once('=') {
            Some((n, a)) => (Some(n.to_owned()), a),
            None => (None, first),
        };
        let addr = match addr_text.parse::<crate::Endpoint>()? {
            crate::Endpoint::Udp(a) => a,
            other => return Err(format!("{other}: nodes are reached over UDP")),
        };
        let mut spec = NodeSpec {
            name: name.unwrap_or_else(|| addr.to_string()),
            addr,
            weight: 1,
            set: 0,
        };
        for opt in parts {
            let (k, v) = opt
                .split_once('=')
                .ok_or(format!("{opt}: expected key=value"))?;
            let n: u32 = v.parse().map_err(|_| format!("{opt}: not a number"))?;
            match k {
                "weight" => spec.weight = n,
                "set" => spec.set = n,
                _ => return Err(format!("{k}: unknown node option (weight, set)")),
            }
        }
        Ok(spec)
    }
}

/// A listening ng socket and the node set it serves: `HOST:PORT[=SET]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenSpec {
    pub addr: SocketAddr,
    pub set: u32,
}

impl FromStr for ListenSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, set) = match s.rsplit_once('=') {
            Some((a, set)) => (
                a,
                set.parse()
                    .map_err(|_| format!("{set}: not a set number"))?,
            ),
            None => (s, 0),
        };
        Ok(ListenSpec {
            addr: addr.parse().map_err(|e| format!("{addr}: {e}"))?,
            set,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: Vec<ListenSpec>,
    /// Sources the ng listeners answer; none listed: every source.
    pub allow: Vec<Network>,
    pub nodes: Vec<NodeSpec>,
    pub redis_url: Option<String>,
    /// The CAs (PEM) a `rediss://` Redis's certificate must chain to; `None`: the system's.
    pub redis_ca: Option<PathBuf>,
    pub metrics: Option<SocketAddr>,
    /// Per forwarded request: short, so failover fits inside the caller's own timeout.
    pub upstream: Options,
    pub health_interval: Duration,
    /// Calls older than this are queried for interim QoS, every this often.
    pub qos_interval: Duration,
    /// How long a call-id stays pinned to its node without being seen.
    pub sticky_ttl: Duration,
}

impl ProxyConfig {
    /// Refuses what would misbehave rather than fail: a node name given twice (lookups
    /// by name and the hash seed would take the first for both) and zero timers (a
    /// QoS or health loop that never sleeps, pins that expire at once, requests that
    /// time out before they are sent).
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        if let Some(n) = self.nodes.iter().find(|n| !names.insert(n.name.as_str())) {
            return Err(format!("node name {} is given twice", n.name));
        }
        let timers = [
            ("health interval", self.health_interval),
            ("QoS interval", self.qos_interval),
            ("sticky TTL", self.sticky_ttl),
            ("node timeout", self.upstream.timeout),
        ];
        match timers.iter().find(|(_, d)| d.is_zero()) {
            Some((what, _)) => Err(format!("the {what} must be more than zero")),
            None => Ok(()),
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: Vec::new(),
            allow: Vec::new(),
            nodes: Vec::new(),
            redis_url: None,
            redis_ca: None,
            metrics: None,
            upstream: Options {
                timeout: Duration::from_millis(300),
                retries: 1,
            },
            health_interval: Duration::from_secs(1),
            qos_interval: Duration::from_secs(300),
            sticky_ttl: Duration::from_secs(7200),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_node_and_listen_specs() {
        let n: NodeSpec = "a=127.0.0.1:2223,weight=3,set=1".parse().unwrap();
        assert_eq!((n.name.as_str(), n.weight, n.set), ("a", 3, 1));
        let n: NodeSpec = "127.0.0.1:2223".parse().unwrap();
        assert_eq!(n.name, "127.0.0.1:2223");
        assert!("tcp:127.0.0.1:1".parse::<NodeSpec>().is_err());
        assert!("127.0.0.1:1,color=red".parse::<NodeSpec>().is_err());
        let l: ListenSpec = "127.0.0.1:2230=2".parse().unwrap();
        assert_eq!(l.set, 2);
    }

    #[test]
    fn refuses_a_node_name_twice_and_zero_timers() {
        let nodes = ["x=127.0.0.1:2223", "y=127.0.0.1:2224"];
        let config = |nodes: &[&str]| ProxyConfig {
            nodes: nodes.iter().map(|n| n.parse().unwrap()).collect(),
            ..ProxyConfig::default()
        };
        assert_eq!(config(&nodes).validate(), Ok(()));
        let twice = config(&["x=127.0.0.1:2223", "x=127.0.0.1:2224"]).validate();
        assert_eq!(twice, Err("node name x is given twice".into()));
        let no_sleep = ProxyConfig {
            qos_interval: Duration::ZERO,
            ..config(&nodes)
        };
        assert_eq!(
            no_sleep.validate(),
            Err("the QoS interval must be more than zero".into())
        );
    }
}
