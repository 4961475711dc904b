//! What the proxy does with one request body: pick the node, forward the bytes unchanged,
//! fail a new call over when a node cannot take it, keep pins and QoS up to date, and
//! answer with the node's reply body unchanged.

use super::pool::{Node, Pool};
use super::qos::{QosRecord, QosSink};
use super::sticky::Sticky;
use crate::bencode::{Dict, Value};
use crate::commands::check_result;
use crate::error::Result;
use crate::message::{self, Format};
use crate::replies::CallStats;
use futures_util::{stream, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Replies that mean "this node cannot take the call now, another might" (as Kamailio's
/// rtpengine module decides).
const OVERLOAD_REASONS: [&str; 2] = ["Parallel session limit reached", "Ran out of ports"];

/// What rtpengine says to a `delete` of a call it does not have (or whose tags do not
/// match its own).
const DELETE_FOUND_NO_CALL: &str = "Call-ID not found or tags didn't match";

/// What the proxy answers when no node took a command (or none answered).
const NO_NODE: &str = "no rtpengine node available";

/// The proxy's own `query`s (stale pins, interim QoS) in flight at once: a node that does
/// not answer costs each of its calls the whole timeout, which one call after another
/// would stretch the periodic checks far past their interval.
const CHECKS_IN_FLIGHT: usize = 32;

/// Admin commands the proxy answers itself (rtpengine rejects them as unrecognized).
pub const CMD_NODES: &str = "warp nodes";
pub const CMD_DRAIN: &str = "warp drain";
pub const CMD_UNDRAIN: &str = "warp undrain";

pub struct Handler {
    pub pool: Pool,
    pub sticky: Sticky,
    pub qos: Option<QosSink>,
    round_robin: AtomicU64,
}

/// A reply body and whether a retransmitted request may be answered from cache.
pub struct Handled {
    pub body: Vec<u8>,
    pub cacheable: bool,
}

impl Handler {
    pub fn new(pool: Pool, sticky: Sticky, qos: Option<QosSink>) -> Handler {
        Handler {
            pool,
            sticky,
            qos,
            round_robin: AtomicU64::new(0),
        }
    }

    pub async fn handle(&self, set: u32, body: &[u8]) -> Handled {
        let format = Format::detect(body).unwrap_or_default();
        let request = match message::parse_body(body) {
            Ok(d) => d,
            Err(e) => return uncached(error_body(format, &format!("malformed request: {e}"))),
        };
        let Some(command) = request.get_str("command") else {
            return uncached(error_body(format, "Dictionary contains no key \"command\""));
        };
        let cacheable = !matches!(command, "ping" | "query" | "list" | "statistics");
        let body = match command {
            CMD_NODES => self.nodes_reply(format),
            CMD_DRAIN | CMD_UNDRAIN => self.drain(format, &request, command == CMD_DRAIN),
            "list" => self.list(set, &request, body, format).await,
            // Bytes, not text: a call-id need not be UTF-8 to be followed to its node.
            _ => match request.get("call-id").and_then(Value::as_bytes) {
                Some(call_id) => {
                    self.call_command(set, command, call_id, &request, body, format)
                        .await
                }
                None => self.any_node(set, body, format).await,
            },
        };
        Handled { body, cacheable }
    }

    /// Forwards and records latency; a node that does not answer, or refuses (nothing
    /// listens on its port), is marked dead (one sent a request too big to go out is
    /// not: every node would be, by one datagram).
    async fn forward(&self, node: &Node, body: &[u8]) -> Result<Vec<u8>> {
        let started = Instant::now();
        match node.client.exchange(body).await {
            Ok(reply) => {
                node.metrics.answered(started.elapsed());
                Ok(reply)
            }
            Err(e) if e.is_unsendable() => {
                tracing::warn!(node = %node.spec.name, "request not sent: {e}");
                Err(e)
            }
            Err(e) => {
                tracing::warn!(node = %node.spec.name, "no answer: {e}");
                node.metrics.error();
                node.mark(false);
                Err(e)
            }
        }
    }

    /// Commands about no call (ping, statistics, unknown ones): any live node, in turn.
    async fn any_node(&self, set: u32, body: &[u8], format: Format) -> Vec<u8> {
        let turn = self.round_robin.fetch_add(1, Ordering::Relaxed);
        for node in self.pool.candidates(set, &turn.to_le_bytes()) {
            if let Ok(reply) = self.forward(&node, body).await {
                return reply;
            }
        }
        error_body(format, NO_NODE)
    }

    async fn call_command(
        &self,
        set: u32,
        command: &str,
        call_id: &[u8],
        request: &Dict<'_>,
        body: &[u8],
        format: Format,
    ) -> Vec<u8> {
        let mut known = match self.sticky.lookup(call_id).await {
            Some(name) => self.pool.by_name(&name).cloned(),
            None => None,
        };
        let offer = command == "offer";
        // A re-INVITE without a pin is looked for like the call's other commands, but
        // with a query: an offer makes the call on whichever node it reaches.
        if known.is_none() && offer && is_reinvite(request) {
            let found = self
                .search(set, call_id, &query_body(call_id), format)
                .await;
            known = found.ok().map(|(node, _)| node);
        }
        match known {
            // Only a call not yet living on a live node may move; an existing call stays
            // put (a draining node keeps its calls).
            Some(node) if !offer || node.is_alive() => {
                self.at_node(command, call_id, &node, request, body, format)
                    .await
            }
            None if !offer => match self.search(set, call_id, body, format).await {
                Ok((node, reply)) => {
                    self.found(command, call_id, &node, request, &reply).await;
                    reply
                }
                Err(refused) => refused,
            },
            _ => self.place(set, call_id, request, body, format).await,
        }
    }

    /// A command for a call whose node is known: there, and nowhere else.
    async fn at_node(
        &self,
        command: &str,
        call_id: &[u8],
        node: &Node,
        request: &Dict<'_>,
        body: &[u8],
        format: Format,
    ) -> Vec<u8> {
        let reply = match self.forward(node, body).await {
            Ok(r) => r,
            Err(e) => return no_answer(format, node, &e),
        };
        if matches!(command, "offer" | "answer" | "delete") {
            if let Ok(parsed) = message::parse_body(&reply) {
                self.after_reply(command, call_id, node, request, parsed)
                    .await;
            }
        }
        reply
    }

    /// A new call (or one whose node is dead): the nodes that take new calls, best first,
    /// past those that do not answer or refuse it as overloaded.
    async fn place(
        &self,
        set: u32,
        call_id: &[u8],
        request: &Dict<'_>,
        body: &[u8],
        format: Format,
    ) -> Vec<u8> {
        let mut refused = None;
        for node in self.pool.candidates(set, call_id) {
            let Ok(reply) = self.forward(&node, body).await else {
                node.metrics.failover();
                continue;
            };
            let Ok(parsed) = message::parse_body(&reply) else {
                return reply;
            };
            if is_overload(&parsed) {
                let call_id = String::from_utf8_lossy(call_id);
                tracing::info!(node = %node.spec.name, %call_id, "node refused a new call, trying the next");
                node.metrics.failover();
                node.metrics.error();
                refused = Some(reply);
                continue;
            }
            self.after_reply("offer", call_id, &node, request, parsed)
                .await;
            return reply;
        }
        refused.unwrap_or_else(|| error_body(format, NO_NODE))
    }

    /// A call this proxy has no pin for (it restarted without Redis, or the pin lapsed):
    /// `body` to the nodes that may hold it, in turn, until one does not answer that it
    /// has no such call: that node and its reply. When none has it, the last answer, or
    /// why the last node gave none.
    async fn search(
        &self,
        set: u32,
        call_id: &[u8],
        body: &[u8],
        format: Format,
    ) -> std::result::Result<(Arc<Node>, Vec<u8>), Vec<u8>> {
        let mut refused = None;
        for node in self.pool.holders(set, call_id) {
            match self.forward(&node, body).await {
                Ok(reply) if message::parse_body(&reply).is_ok_and(|d| is_unknown_call(&d)) => {
                    refused = Some(reply)
                }
                Ok(reply) => return Ok((node, reply)),
                Err(e) => refused = Some(no_answer(format, &node, &e)),
            }
        }
        Err(refused.unwrap_or_else(|| error_body(format, NO_NODE)))
    }

    /// A call found by [`Handler::search`]: an answer pins it there again, a query or
    /// the like too, so its later commands go straight there; a delete does not: a
    /// repeated delete is found too (rtpengine keeps a deleted call for its delete
    /// delay), and must not write a second final record.
    async fn found(
        &self,
        command: &str,
        call_id: &[u8],
        node: &Node,
        request: &Dict<'_>,
        reply: &[u8],
    ) {
        let Ok(parsed) = message::parse_body(reply) else {
            return;
        };
        if matches!(command, "answer" | "delete") {
            self.after_reply(command, call_id, node, request, parsed)
                .await;
        } else {
            self.sticky.pin(call_id, &node.spec.name).await;
        }
    }

    async fn after_reply(
        &self,
        command: &str,
        call_id: &[u8],
        node: &Node,
        request: &Dict<'_>,
        reply: Dict<'_>,
    ) {
        if reply.get_str("result") != Some("ok") {
            node.metrics.error();
            return;
        }
        if command != "delete" {
            self.sticky.pin(call_id, &node.spec.name).await;
            return;
        }
        // A delete of one branch leaves the call alive. A repeated delete finds no pin
        // (rtpengine keeps a deleted call for its delete delay and answers it again with
        // the same stats): only the delete that ends the call writes its final record.
        if request.get("via-branch").is_some() {
            return;
        }
        if !self.sticky.unpin(call_id).await {
            return;
        }
        let stats = CallStats::parse(reply.into_owned());
        if let (Some(qos), false) = (&self.qos, stats.parties.is_empty()) {
            qos.send(QosRecord::from_stats(
                call_id,
                &node.spec.name,
                "final",
                &stats,
            ));
        }
    }

    /// Keeps the pins of calls their node still has, however long since their last
    /// command (a long call without re-INVITEs outlives the TTL; its delete must still
    /// find its node), and drops the others.
    pub async fn expire_pins(&self) {
        stream::iter(self.sticky.stale())
            .for_each_concurrent(CHECKS_IN_FLIGHT, |(call_id, name)| async move {
                let alive = match self.pool.by_name(&name) {
                    Some(node) => query(node, &call_id).await.is_ok(),
                    None => false,
                };
                if alive {
                    self.sticky.pin(&call_id, &name).await;
                } else {
                    self.sticky.forget(&call_id);
                }
            })
            .await;
    }

    /// Queries calls pinned for longer than `age` and queues interim QoS for them.
    pub async fn interim_qos(&self, age: std::time::Duration) {
        let Some(qos) = &self.qos else { return };
        stream::iter(self.sticky.long_calls(age))
            .for_each_concurrent(CHECKS_IN_FLIGHT, |(call_id, name)| async move {
                let Some(node) = self.pool.by_name(&name) else {
                    return;
                };
                match query(node, &call_id).await {
                    Ok(stats) => {
                        qos.send(QosRecord::from_stats(&call_id, &name, "interim", &stats))
                    }
                    Err(e) => {
                        let call_id = String::from_utf8_lossy(&call_id);
                        tracing::debug!(%call_id, "interim query: {e}");
                    }
                }
            })
            .await;
    }

    /// `list` over every live node of the set, merged, no longer than its limit. The
    /// nodes that refused or did not answer are named in a `warning`, and when none
    /// answered the reply is an error saying why: an empty list would say the set has
    /// no calls.
    async fn list(&self, set: u32, request: &Dict<'_>, body: &[u8], format: Format) -> Vec<u8> {
        let limit = list_limit(request);
        let mut calls = Vec::new();
        let live: Vec<&Arc<Node>> = (self.pool.nodes.iter())
            .filter(|n| n.spec.set == set && n.is_alive())
            .collect();
        if live.is_empty() {
            return error_body(format, NO_NODE);
        }
        let (mut answered, mut failures) = (false, Vec::new());
        for node in live {
            if calls.len() >= limit {
                break;
            }
            let listed = match self.forward(node, body).await {
                Ok(reply) => message::parse_body(&reply).and_then(|d| check_result(d.into_owned())),
                Err(e) => Err(e),
            };
            match listed {
                Ok(d) => {
                    answered = true;
                    calls.extend(d.get_list("calls").unwrap_or_default().iter().cloned());
                }
                Err(e) => failures.push(format!("{}: {e}", node.spec.name)),
            }
        }
        if !answered && !failures.is_empty() {
            let reason = format!("no node listed its calls: {}", failures.join("; "));
            return error_body(format, &reason);
        }
        calls.truncate(limit);
        let mut d = Dict::new();
        d.insert("calls", Value::List(calls));
        d.insert("result", "ok");
        if !failures.is_empty() {
            d.insert(
                "warning",
                format!("calls of these nodes are missing: {}", failures.join("; ")),
            );
        }
        encode(format, &d)
    }

    fn nodes_reply(&self, format: Format) -> Vec<u8> {
        let nodes = self
            .pool
            .nodes
            .iter()
            .map(|n| {
                let mut d = Dict::new();
                d.insert("name", n.spec.name.clone());
                d.insert("address", n.spec.addr.to_string());
                d.insert("weight", i64::from(n.spec.weight));
                d.insert("set", i64::from(n.spec.set));
                d.insert("alive", i64::from(n.is_alive()));
                d.insert("draining", i64::from(n.is_draining()));
                d.insert("active calls", n.metrics.active_calls());
                d.insert("requests", n.metrics.requests() as i64);
                d.insert("errors", n.metrics.errors() as i64);
                Value::Dict(d)
            })
            .collect::<Vec<_>>();
        let mut d = Dict::new();
        d.insert("nodes", Value::List(nodes));
        d.insert("result", "ok");
        encode(format, &d)
    }

    fn drain(&self, format: Format, request: &Dict<'_>, on: bool) -> Vec<u8> {
        let Some(name) = request.get_str("node") else {
            return error_body(format, "drain needs a \"node\" key");
        };
        let Some(node) = self.pool.by_name(name) else {
            return error_body(format, &format!("no node named {name:?}"));
        };
        node.set_draining(on);
        tracing::info!(node = name, draining = on, "drain state changed");
        let mut d = Dict::new();
        d.insert("result", "ok");
        encode(format, &d)
    }
}

/// How many call-ids a `list` returns in all, as one rtpengine would: its `limit`, a
/// number or digits, or 32 when there is none. Any other limit caps nothing here; the
/// nodes read it their way (below 0 they refuse it).
fn list_limit(request: &Dict<'_>) -> usize {
    let limit = match request.get("limit") {
        None => Some(32),
        Some(v) => v.as_int().or_else(|| v.as_str()?.parse().ok()),
    };
    limit
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(usize::MAX)
}

/// `query` for a call by its call-id as it came, UTF-8 or not.
fn query_dict(call_id: &[u8]) -> Dict<'_> {
    let mut d = Dict::new();
    d.insert("command", "query");
    d.insert("call-id", call_id);
    d
}

/// The `query` as a body to forward: bencode, as the nodes are asked.
fn query_body(call_id: &[u8]) -> Vec<u8> {
    crate::bencode::encode_dict(&query_dict(call_id))
}

/// The call's stats from `node`.
async fn query(node: &Node, call_id: &[u8]) -> Result<CallStats> {
    let reply = node.client.request(&query_dict(call_id)).await?;
    Ok(CallStats::parse(check_result(reply)?))
}

/// An offer with a to-tag renegotiates a call already set up (a re-INVITE or UPDATE).
fn is_reinvite(request: &Dict<'_>) -> bool {
    (request.get("to-tag").and_then(Value::as_bytes)).is_some_and(|tag| !tag.is_empty())
}

fn uncached(body: Vec<u8>) -> Handled {
    Handled {
        body,
        cacheable: false,
    }
}

/// rtpengine's answer about a call it does not have: `Unknown call-id` (in either case)
/// as the error, or for a `delete` its own words, as a warning beside `ok` or, with the
/// `fatal` flag, as the error.
fn is_unknown_call(reply: &Dict<'_>) -> bool {
    let (reason, warning) = (reply.get_str("error-reason"), reply.get_str("warning"));
    match reply.get_str("result") {
        Some("error") => reason.is_some_and(|r| {
            r.eq_ignore_ascii_case("Unknown call-id") || r == DELETE_FOUND_NO_CALL
        }),
        Some("ok") => warning == Some(DELETE_FOUND_NO_CALL),
        _ => false,
    }
}

/// The error a client gets when the node of its call does not answer.
fn no_answer(format: Format, node: &Node, e: &crate::error::Error) -> Vec<u8> {
    let reason = format!("rtpengine node {} did not answer: {e}", node.spec.name);
    error_body(format, &reason)
}

fn is_overload(reply: &Dict<'_>) -> bool {
    match reply.get_str("result") {
        Some("load limit") => true,
        Some("error") => reply
            .get_str("error-reason")
            .is_some_and(|r| OVERLOAD_REASONS.contains(&r)),
        _ => false,
    }
}

/// Encodes a reply the proxy makes itself, in the request's format.
fn encode(format: Format, d: &Dict<'_>) -> Vec<u8> {
    format
        .encode(d)
        .unwrap_or_else(|_| crate::bencode::encode_dict(d))
}

/// An rtpengine-style error reply.
pub fn error_body(format: Format, reason: &str) -> Vec<u8> {
    let mut d = Dict::new();
    d.insert("result", "error");
    d.insert("error-reason", reason);
    encode(format, &d)
}
