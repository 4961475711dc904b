//! Per-trunk concurrent calls counted across nodes (`cluster_concurrent=1`), in the
//! Redis at `redis_url`: hash `warp:calls:<trunk key>` holds one field per node, its
//! calls in progress on that trunk, and `warp:node:<node>` (expiring after
//! [`NODE_TTL`]) says the node is alive. Admission sums the fields of live nodes and
//! counts the call in one atomic script; a field whose node key expired (the node died
//! or restarted, it gets a new name) is dropped on the way, so a dead node's calls stop
//! counting within [`NODE_TTL`].
//!
//! The first SIP worker keeps the node key alive and rewrites the node's fields from
//! its own count in shared memory every [`BEAT`], which also repairs a count that missed
//! an increment or a decrement while Redis was unreachable. When Redis does not answer
//! within `cluster_timeout`, admission falls back to the node's own count
//! (see [`crate::limits`]).

use crate::guard;
use crate::limits;
use crate::log::lm_err;
use crate::params;
use crate::redis_link::Link;
use std::sync::OnceLock;
use std::time::Duration;

/// How long a node's calls count after it last showed it is alive (s).
const NODE_TTL: u64 = 10;
/// How often the first SIP worker shows its node is alive.
const BEAT: Duration = Duration::from_secs(3);

/// Admission: sums the calls of live nodes (dropping dead nodes' fields), refuses at
/// the limit (-1), else counts the call for this node; keeps this node alive.
/// KEYS[1] = the trunk's hash; ARGV = node, limit, node TTL.
const ADMIT: &str = r"
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] == ARGV[1] or redis.call('EXISTS', 'warp:node:' .. fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
redis.call('SET', 'warp:node:' .. ARGV[1], '1', 'EX', ARGV[3])
if total >= tonumber(ARGV[2]) then return -1 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
";

/// A call's end: one call fewer for this node, never below none. A field Redis lost
/// (restarted without its data, or dropped by another node while this one could not
/// reach it) would otherwise go negative and give every node places the trunk does not
/// have until the next beat. KEYS[1] = the trunk's hash; ARGV[1] = node.
const RELEASE: &str = r"
if (tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0) <= 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
";

/// This Kamailio's name among the nodes: host and main process id, so a restarted
/// node never inherits the calls of its former self.
static NODE: OnceLock<String> = OnceLock::new();
/// The SIP workers' connection.
static CALLS: Link = Link::new("cluster call counter");
/// The heartbeat thread's connection, so a worker never waits behind it.
static BEATS: Link = Link::new("cluster call heartbeat");

/// Names the node; `mod_init` only (the workers inherit the name).
pub fn init() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let _ = NODE.set(format!("{}:{}", host.trim(), std::process::id()));
}

fn node() -> &'static str {
    NODE.get().map_or("", String::as_str)
}

fn hash(trunk_key: u64) -> String {
    format!("warp:calls:{trunk_key:016x}")
}

/// Counts a call on the trunk if the live nodes hold fewer than `max`: `Some(false)`
/// at the limit, `None` when Redis is unavailable.
pub fn admit(trunk_key: u64, max: u64) -> Option<bool> {
    let (max, ttl) = (max.to_string(), NODE_TTL.to_string());
    CALLS
        .with(params::config().cluster_timeout, |c| {
            c.eval_int(ADMIT, &[&hash(trunk_key)], &[node(), &max, &ttl])
        })
        .map(|n| n >= 0)
}

/// Gives back a call [`admit`] counted; a lost decrement is repaired by the next beat.
pub fn release(trunk_key: u64) {
    CALLS.with(params::config().cluster_timeout, |c| {
        c.eval_int(RELEASE, &[&hash(trunk_key)], &[node()])
    });
}

/// Starts the heartbeat thread; the first SIP worker only.
pub fn start_heartbeat() {
    let spawned = std::thread::Builder::new()
        .name("warp-cluster".into())
        .spawn(|| loop {
            // One beat that panicked must not end the beats: the node's calls would
            // stop counting on every other node.
            guard::entry("cluster heartbeat", (), beat);
            std::thread::sleep(BEAT);
        });
    if let Err(e) = spawned {
        lm_err!("cannot start the cluster heartbeat thread: {e}: this node's calls stop counting on other nodes {NODE_TTL} s after its last call");
    }
}

/// Keeps the node alive and sets its field of every trunk it counted in Redis to the
/// calls it has in progress there; a trunk with none loses its field, after which its
/// slot may be reclaimed (see [`limits::settle`]).
fn beat() {
    guard::fault_point("cluster_heartbeat");
    let node = node();
    let ttl = NODE_TTL.to_string();
    let alive = format!("warp:node:{node}");
    let counts: Vec<(usize, String, String)> = limits::clustered()
        .into_iter()
        .map(|(slot, key, active)| (slot, hash(key), active.to_string()))
        .collect();
    let mut commands: Vec<Vec<&[u8]>> =
        vec![vec![b"SET", alive.as_bytes(), b"1", b"EX", ttl.as_bytes()]];
    commands.extend(counts.iter().map(|(_, key, n)| match n.as_str() {
        "0" => vec![&b"HDEL"[..], key.as_bytes(), node.as_bytes()],
        n => vec![&b"HSET"[..], key.as_bytes(), node.as_bytes(), n.as_bytes()],
    }));
    if BEATS
        .with(params::config().cluster_timeout, |c| c.all(&commands))
        .is_some()
    {
        (counts.iter())
            .filter(|(_, _, n)| n == "0")
            .for_each(|&(slot, _, _)| limits::settle(slot));
    }
}
