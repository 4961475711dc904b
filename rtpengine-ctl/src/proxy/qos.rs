//! Per-call QoS for the `warp:qos:raw` stream, taken from `delete` (final) and `query`
//! (interim) replies, and the task that writes it to Redis off the request path.

use super::shared_redis::{Failure, SharedRedis};
use crate::replies::{CallStats, Counters};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub const STREAM: &str = "warp:qos:raw";

/// One leg (call party): what rtpengine received from it, and RTCP-reported quality of
/// the media it sent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LegQos {
    pub tag: String,
    pub label: Option<String>,
    pub packets: i64,
    pub bytes: i64,
    pub errors: i64,
    pub rtcp_packets: i64,
    pub mos: Option<f64>,
    pub mos_lowest: Option<f64>,
    pub jitter_ms: Option<i64>,
    pub packet_loss_pct: Option<i64>,
    pub packets_lost: Option<i64>,
    pub round_trip_us: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QosRecord {
    pub call_id: String,
    pub node: String,
    /// `final` (from delete) or `interim` (from a periodic query).
    pub event: &'static str,
    pub created: Option<i64>,
    pub legs: Vec<LegQos>,
}

impl QosRecord {
    /// A call-id that is not UTF-8 is written lossily: the stream's fields are text.
    pub fn from_stats(
        call_id: &[u8],
        node: &str,
        event: &'static str,
        stats: &CallStats,
    ) -> QosRecord {
        let legs = stats
            .parties
            .iter()
            .map(|p| {
                let quality = stats.ssrcs.iter().find(|q| p.ssrcs.contains(&q.ssrc));
                let avg = quality.and_then(|q| q.average);
                LegQos {
                    tag: p.tag.clone(),
                    label: p.label.clone(),
                    packets: p.rtp.packets,
                    bytes: p.rtp.bytes,
                    errors: p.rtp.errors,
                    rtcp_packets: p.rtcp.packets,
                    mos: avg.map(|a| a.mos),
                    mos_lowest: quality.and_then(|q| q.lowest).map(|l| l.mos),
                    jitter_ms: avg.and_then(|a| a.jitter_ms),
                    packet_loss_pct: avg.and_then(|a| a.packet_loss_pct),
                    packets_lost: quality.and_then(|q| q.cumulative_loss),
                    round_trip_us: avg.and_then(|a| a.round_trip_us),
                }
            })
            .collect();
        QosRecord {
            call_id: String::from_utf8_lossy(call_id).into_owned(),
            node: node.to_owned(),
            event,
            created: stats.created,
            legs,
        }
    }

    /// Call-level summary: worst MOS, worst jitter, total loss, total packets.
    fn summary(&self) -> (Option<f64>, Option<i64>, i64, Counters) {
        let mos = self.legs.iter().filter_map(|l| l.mos).reduce(f64::min);
        let jitter = self.legs.iter().filter_map(|l| l.jitter_ms).max();
        let lost = self
            .legs
            .iter()
            .filter_map(|l| l.packets_lost)
            .fold(0, i64::saturating_add);
        let mut total = Counters::default();
        for l in &self.legs {
            total.add(Counters {
                packets: l.packets,
                bytes: l.bytes,
                errors: l.errors,
            });
        }
        (mos, jitter, lost, total)
    }

    /// Stream entry fields: flat summary for simple consumers, `qos` JSON with every leg.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let (mos, jitter, lost, total) = self.summary();
        let opt = |v: Option<String>| v.unwrap_or_default();
        vec![
            ("call_id", self.call_id.clone()),
            ("node", self.node.clone()),
            ("event", self.event.to_owned()),
            ("mos", opt(mos.map(|m| format!("{m:.1}")))),
            ("jitter_ms", opt(jitter.map(|j| j.to_string()))),
            ("packets_lost", lost.to_string()),
            ("packets", total.packets.to_string()),
            ("bytes", total.bytes.to_string()),
            ("qos", serde_json::to_string(self).unwrap_or_default()),
        ]
    }
}

/// Queue to the writer: records wait there while Redis is away; a full queue drops
/// (counts, and logs the first of every thousand) rather than stall calls.
#[derive(Clone)]
pub struct QosSink {
    queue: mpsc::Sender<QosRecord>,
    dropped: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    /// Queued or being written.
    pending: Arc<AtomicU64>,
}

/// Records the queue holds while Redis is away: some minutes of a busy node's deletes.
const QUEUE: usize = 10_000;

impl QosSink {
    pub fn send(&self, record: QosRecord) {
        // Counted first: the writer may take the record before `try_send` returns.
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.queue.try_send(record).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 1000 == 1 {
                tracing::warn!("QoS queue full ({QUEUE} records): {n} dropped so far");
            }
        }
    }

    /// Records dropped on a full queue since the proxy started.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records Redis refused for good (and the writer dropped) since the proxy started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Waits up to `within` for every queued record to reach Redis; the records still
    /// waiting then.
    pub async fn flush(&self, within: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let pending = self.pending.load(Ordering::Relaxed);
            if pending == 0 || tokio::time::Instant::now() >= deadline {
                return pending;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts the task that writes queued records to Redis, in order, each until Redis takes
/// it (retrying every 50 ms to 1 s while Redis is away or refuses for now). A record
/// Redis refuses for good is counted, logged and dropped: retrying it would hold every
/// record behind it.
pub fn spawn_writer(redis: Arc<SharedRedis>) -> QosSink {
    let (tx, mut rx) = mpsc::channel::<QosRecord>(QUEUE);
    let pending = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let (written, counted) = (pending.clone(), refused.clone());
    tokio::spawn(async move {
        while let Some(record) = rx.recv().await {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(STREAM).arg("*");
            for (k, v) in record.fields() {
                cmd.arg(k).arg(v);
            }
            let mut wait = Duration::from_millis(50);
            loop {
                match redis.query::<String>(&cmd).await {
                    Ok(_) => break,
                    Err(Failure::Refused(e)) => {
                        let n = counted.fetch_add(1, Ordering::Relaxed) + 1;
                        if n % 1000 == 1 {
                            tracing::warn!(
                                call_id = record.call_id,
                                "QoS record refused by redis ({e}), dropped: {n} so far"
                            );
                        }
                        break;
                    }
                    Err(Failure::Transient) => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(1));
                    }
                }
            }
            written.fetch_sub(1, Ordering::Relaxed);
        }
    });
    QosSink {
        queue: tx,
        dropped: Arc::new(AtomicU64::new(0)),
        refused,
        pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replies::{MosSample, Party, SsrcQuality};

    #[test]
    fn legs_take_quality_of_their_own_ssrc() {
        let mut stats = CallStats::parse(crate::bencode::Dict::new());
        stats.parties = vec![
            Party {
                tag: "a".into(),
                rtp: Counters {
                    packets: 10,
                    bytes: 1720,
                    errors: 0,
                },
                ssrcs: vec![7],
                ..Party::default()
            },
            Party {
                tag: "b".into(),
                rtp: Counters {
                    packets: 5,
                    bytes: 860,
                    errors: 0,
                },
                ..Party::default()
            },
        ];
        stats.ssrcs = vec![SsrcQuality {
            ssrc: 7,
            cumulative_loss: Some(2),
            average: Some(MosSample {
                mos: 4.1,
                jitter_ms: Some(3),
                packet_loss_pct: Some(1),
                round_trip_us: None,
            }),
            lowest: None,
        }];
        let r = QosRecord::from_stats(b"c1", "n1", "final", &stats);
        assert_eq!(r.legs[0].mos, Some(4.1));
        assert_eq!(r.legs[1].mos, None);
        let f: std::collections::HashMap<_, _> = r.fields().into_iter().collect();
        assert_eq!(f["mos"], "4.1");
        assert_eq!(f["packets"], "15");
        assert_eq!(f["packets_lost"], "2");
        assert!(f["qos"].contains("\"tag\":\"b\""));
    }

    #[test]
    fn call_totals_saturate() {
        let mut stats = CallStats::parse(crate::bencode::Dict::new());
        let huge = Counters {
            packets: i64::MAX,
            bytes: i64::MAX,
            errors: 0,
        };
        let party = |tag: &str| Party {
            tag: tag.into(),
            rtp: huge,
            ssrcs: vec![1],
            ..Party::default()
        };
        stats.parties = vec![party("a"), party("b")];
        stats.ssrcs = vec![SsrcQuality {
            ssrc: 1,
            cumulative_loss: Some(i64::MAX),
            ..SsrcQuality::default()
        }];
        let r = QosRecord::from_stats(b"c1", "n1", "final", &stats);
        let f: std::collections::HashMap<_, _> = r.fields().into_iter().collect();
        assert_eq!(f["packets"], i64::MAX.to_string());
        assert_eq!(f["packets_lost"], i64::MAX.to_string());
    }
}
