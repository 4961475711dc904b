//! The node pool: liveness, draining, weights and the deterministic choice of a node for a
//! new call. The choice is weighted rendezvous hashing of the call-id, so every proxy with
//! the same node list picks the same node without talking to the others, and a node going
//! away moves only the calls that would have gone to it.

use super::config::NodeSpec;
use super::metrics::NodeMetrics;
use crate::client::Client;
use crate::commands::Ping;
use crate::error::Result;
use crate::transport::{Endpoint, Options};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Health pings missed in a row that mark a node dead. One missed ping is a lost
/// datagram or a moment's stall as often as a dead node, and a node marked dead has
/// its calls' re-INVITEs placed on other nodes, moving their media. A node that stops
/// answering the calls sent to it is marked dead by those at once.
const MISSED_PINGS_FOR_DEAD: u32 = 3;

#[derive(Debug)]
pub struct Node {
    pub spec: NodeSpec,
    pub client: Client,
    health: Client,
    alive: AtomicBool,
    /// Health pings missed since the last one answered.
    missed_pings: AtomicU32,
    draining: AtomicBool,
    seed: u64,
    pub metrics: NodeMetrics,
}

impl Node {
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::Relaxed);
        self.metrics.set_draining(on);
    }

    pub fn mark(&self, alive: bool) {
        if self.alive.swap(alive, Ordering::Relaxed) != alive {
            if alive {
                tracing::info!(node = %self.spec.name, "node is back");
            } else {
                tracing::warn!(node = %self.spec.name, "node marked dead");
            }
        }
        self.metrics.set_up(alive);
    }

    /// A health ping's outcome: one answered marks the node alive; it is marked dead
    /// once `MISSED_PINGS_FOR_DEAD` in a row went unanswered.
    fn pinged(&self, answered: bool) {
        if answered {
            self.missed_pings.store(0, Ordering::Relaxed);
            self.mark(true);
        } else if self.missed_pings.fetch_add(1, Ordering::Relaxed) + 1 >= MISSED_PINGS_FOR_DEAD {
            self.mark(false);
        }
    }

    /// Takes new calls: alive, not draining, weight above zero.
    fn takes_new_calls(&self) -> bool {
        self.is_alive() && !self.is_draining() && self.spec.weight > 0
    }

    /// Rendezvous score: weight / -ln(u), u uniform in (0, 1) from the key's hash.
    fn score(&self, key: &[u8]) -> f64 {
        let h = xxh3_64_with_seed(key, self.seed);
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        f64::from(self.spec.weight) / -u.ln()
    }
}

#[derive(Debug)]
pub struct Pool {
    pub nodes: Vec<Arc<Node>>,
}

impl Pool {
    pub async fn connect(
        specs: &[NodeSpec],
        upstream: Options,
        health_timeout: Duration,
    ) -> Result<Pool> {
        let mut nodes = Vec::with_capacity(specs.len());
        for spec in specs {
            let ep = Endpoint::Udp(spec.addr);
            let health_opts = Options {
                timeout: health_timeout,
                retries: 0,
            };
            nodes.push(Arc::new(Node {
                client: Client::connect(&ep, upstream).await?,
                health: Client::connect(&ep, health_opts).await?,
                // Optimistic until the first health check says otherwise.
                alive: AtomicBool::new(true),
                missed_pings: AtomicU32::new(0),
                draining: AtomicBool::new(false),
                seed: xxh3_64_with_seed(spec.name.as_bytes(), 0),
                metrics: NodeMetrics::new(&spec.name),
                spec: spec.clone(),
            }));
        }
        Ok(Pool { nodes })
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().find(|n| n.spec.name == name)
    }

    /// Nodes of `set` that take new calls, best first for `key`.
    pub fn candidates(&self, set: u32, key: &[u8]) -> Vec<Arc<Node>> {
        self.ranked(set, key, |n| n.takes_new_calls())
    }

    /// Every node of `set` that may hold the call `key` when no pin says which: the
    /// live ones first, each group best first (a call usually lives where the hash put
    /// it), draining and weight-0 nodes included, since they keep their calls.
    pub fn holders(&self, set: u32, key: &[u8]) -> Vec<Arc<Node>> {
        let mut nodes = self.ranked(set, key, |_| true);
        nodes.sort_by_key(|n| !n.is_alive());
        nodes
    }

    /// The nodes of `set` that pass `keep`, by rendezvous score, best first.
    fn ranked(&self, set: u32, key: &[u8], keep: impl Fn(&Node) -> bool) -> Vec<Arc<Node>> {
        let mut scored: Vec<(f64, &Arc<Node>)> = self
            .nodes
            .iter()
            .filter(|n| n.spec.set == set && keep(n))
            .map(|n| (n.score(key), n))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().map(|(_, n)| n.clone()).collect()
    }

    /// Pings every node once; the caller repeats this on its interval.
    pub async fn check_health(&self) {
        let mut checks = tokio::task::JoinSet::new();
        for n in &self.nodes {
            let n = n.clone();
            checks.spawn(async move {
                let answered = n.health.send(&Ping).await.is_ok();
                n.pinged(answered);
            });
        }
        while checks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, weight: u32) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            addr: "127.0.0.1:9".parse().unwrap(),
            weight,
            set: 0,
        }
    }

    #[tokio::test]
    async fn weighted_choice_is_proportional_and_stable() {
        let pool = Pool::connect(
            &[spec("a", 1), spec("b", 3)],
            Options::default(),
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        let mut to_b = 0;
        for i in 0..4000 {
            let key = format!("call-{i}");
            let first = pool.candidates(0, key.as_bytes())[0].spec.name.clone();
            assert_eq!(first, pool.candidates(0, key.as_bytes())[0].spec.name);
            to_b += usize::from(first == "b");
        }
        assert!((2800..3200).contains(&to_b), "b got {to_b} of 4000");
        // Draining a node moves new calls off it and nothing else.
        pool.nodes[1].set_draining(true);
        assert!(pool.candidates(0, b"x").iter().all(|n| n.spec.name == "a"));
        assert!(pool.candidates(1, b"x").is_empty());
    }
}
