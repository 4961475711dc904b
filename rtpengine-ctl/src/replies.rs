//! Typed replies. Each keeps the raw dictionary too, because rtpengine adds keys between
//! versions and callers should not lose them.

use crate::bencode::{Dict, Value};
use crate::error::{Error, Result};
use serde::Serialize;

/// A plain `ok`, possibly with a non-fatal warning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ack {
    pub warning: Option<String>,
}

impl Ack {
    pub fn parse(reply: &Dict<'_>) -> Ack {
        Ack {
            warning: reply.get_str("warning").map(str::to_owned),
        }
    }
}

/// `offer` / `answer`: the rewritten SDP.
#[derive(Debug, Clone)]
pub struct SdpReply {
    pub sdp: String,
    pub warning: Option<String>,
    pub raw: Dict<'static>,
}

impl SdpReply {
    pub fn parse(raw: Dict<'static>) -> Result<SdpReply> {
        let sdp = match raw.get("sdp") {
            Some(Value::Bytes(b)) => String::from_utf8(b.to_vec())
                .map_err(|_| Error::Protocol("SDP in reply is not UTF-8".into()))?,
            _ => return Err(Error::Protocol("reply has no sdp".into())),
        };
        Ok(SdpReply {
            sdp,
            warning: raw.get_str("warning").map(str::to_owned),
            raw,
        })
    }
}

/// `list`: call-ids the daemon knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallList {
    pub calls: Vec<String>,
}

impl CallList {
    pub fn parse(raw: Dict<'static>) -> Result<CallList> {
        let calls = raw
            .get_list("calls")
            .ok_or_else(|| Error::Protocol("list reply has no calls".into()))?
            .iter()
            .map(|c| String::from_utf8_lossy(c.as_bytes().unwrap_or_default()).into_owned())
            .collect();
        Ok(CallList { calls })
    }
}

/// `statistics`: the daemon's counters (`currentstatistics`, `totalstatistics`, …).
#[derive(Debug, Clone)]
pub struct Statistics {
    pub raw: Dict<'static>,
}

impl Statistics {
    pub fn parse(mut raw: Dict<'static>) -> Result<Statistics> {
        match raw.remove("statistics") {
            Some(Value::Dict(d)) => Ok(Statistics { raw: d }),
            _ => Err(Error::Protocol("statistics reply has no statistics".into())),
        }
    }

    /// Sessions this daemon owns right now.
    pub fn current_sessions(&self) -> Option<i64> {
        self.raw
            .get_dict("currentstatistics")
            .and_then(|c| c.get_int("sessionsown"))
    }

    pub fn uptime_seconds(&self) -> Option<i64> {
        self.raw
            .get_dict("totalstatistics")
            .and_then(|t| t.get_int("uptime"))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayMediaReply {
    /// Length of what is played, when rtpengine knows it.
    pub duration_ms: Option<i64>,
}

/// Packet counters as rtpengine reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub packets: i64,
    pub bytes: i64,
    pub errors: i64,
}

impl Counters {
    fn parse(d: Option<&Dict<'_>>) -> Counters {
        let get = |k| d.and_then(|d| d.get_int(k)).unwrap_or(0);
        Counters {
            packets: get("packets"),
            bytes: get("bytes"),
            errors: get("errors"),
        }
    }

    /// Saturating: the counters come from the node's reply, and a sum over i64::MAX
    /// would panic (debug) or turn negative (release).
    pub(crate) fn add(&mut self, other: Counters) {
        self.packets = self.packets.saturating_add(other.packets);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.errors = self.errors.saturating_add(other.errors);
    }
}

/// `query` and `delete`: the call's parties, their streams and quality.
#[derive(Debug, Clone)]
pub struct CallStats {
    pub created: Option<i64>,
    pub last_signal: Option<i64>,
    pub parties: Vec<Party>,
    pub totals_rtp: Counters,
    pub totals_rtcp: Counters,
    pub ssrcs: Vec<SsrcQuality>,
    pub warning: Option<String>,
    pub raw: Dict<'static>,
}

/// One call party (`tags` entry). Stream counters count what rtpengine received from it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Party {
    pub tag: String,
    pub label: Option<String>,
    pub in_dialogue_with: Option<String>,
    pub rtp: Counters,
    pub rtcp: Counters,
    /// SSRCs seen in RTP from this party.
    pub ssrcs: Vec<u32>,
    /// `local address:port` of each RTP stream, where this party sends to.
    pub local_rtp: Vec<String>,
}

/// RTCP-derived quality of one SSRC (present only once RTCP reports arrived).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SsrcQuality {
    pub ssrc: u32,
    pub cumulative_loss: Option<i64>,
    pub average: Option<MosSample>,
    pub lowest: Option<MosSample>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MosSample {
    /// 1.0 to 5.0 (rtpengine sends tenths).
    pub mos: f64,
    pub jitter_ms: Option<i64>,
    pub packet_loss_pct: Option<i64>,
    pub round_trip_us: Option<i64>,
}

impl MosSample {
    fn parse(d: Option<&Dict<'_>>) -> Option<MosSample> {
        let d = d?;
        Some(MosSample {
            mos: d.get_int("MOS")? as f64 / 10.0,
            jitter_ms: d.get_int("jitter"),
            packet_loss_pct: d.get_int("packet loss"),
            round_trip_us: d.get_int("round-trip time"),
        })
    }
}

impl CallStats {
    pub fn parse(raw: Dict<'static>) -> CallStats {
        let totals = raw.get_dict("totals");
        CallStats {
            created: raw.get_int("created"),
            last_signal: raw.get_int("last signal"),
            parties: raw
                .get_dict("tags")
                .map(|tags| {
                    tags.iter()
                        .filter_map(|(_, t)| t.as_dict())
                        .map(Party::parse)
                        .collect()
                })
                .unwrap_or_default(),
            totals_rtp: Counters::parse(totals.and_then(|t| t.get_dict("RTP"))),
            totals_rtcp: Counters::parse(totals.and_then(|t| t.get_dict("RTCP"))),
            ssrcs: raw
                .get_dict("SSRC")
                .map(|s| s.iter().filter_map(SsrcQuality::parse).collect())
                .unwrap_or_default(),
            warning: raw.get_str("warning").map(str::to_owned),
            raw,
        }
    }
}

impl Party {
    fn parse(t: &Dict<'_>) -> Party {
        let text = |k| t.get_str(k).map(str::to_owned);
        let mut party = Party {
            tag: text("tag").unwrap_or_default(),
            label: text("label"),
            in_dialogue_with: text("in dialogue with"),
            ..Party::default()
        };
        let streams = t
            .get_list("medias")
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_dict)
            .flat_map(|m| m.get_list("streams").unwrap_or_default())
            .filter_map(Value::as_dict);
        for s in streams {
            let counters = Counters::parse(s.get_dict("stats"));
            let is_rtcp = s
                .get_list("flags")
                .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("RTCP")));
            if is_rtcp {
                party.rtcp.add(counters);
                continue;
            }
            party.rtp.add(counters);
            if let Some(ssrc) = s.get_int("SSRC").and_then(|v| u32::try_from(v).ok()) {
                party.ssrcs.push(ssrc);
            }
            if let (Some(a), Some(p)) = (s.get_str("local address"), s.get_int("local port")) {
                party.local_rtp.push(format!("{a}:{p}"));
            }
        }
        party
    }
}

impl SsrcQuality {
    fn parse((key, v): (&[u8], &Value<'_>)) -> Option<SsrcQuality> {
        let ssrc = std::str::from_utf8(key).ok()?.parse().ok()?;
        let d = v.as_dict()?;
        Some(SsrcQuality {
            ssrc,
            cumulative_loss: d.get_int("cumulative loss"),
            average: MosSample::parse(d.get_dict("average MOS")),
            lowest: MosSample::parse(d.get_dict("lowest MOS")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::decode_dict;

    /// The shape of a `query` reply from rtpengine 10.5 after 20 RTP packets each way (as
    /// captured on this machine), plus an `SSRC` section in the documented shape (it needs
    /// RTCP reports to appear).
    const QUERY: &str = r#"{"created":1795308403,"last signal":1795308404,
      "SSRC":{"4369":{"cumulative loss":3,
                      "average MOS":{"MOS":41,"round-trip time":2000,"jitter":3,"packet loss":1,"samples":3},
                      "lowest MOS":{"MOS":40,"jitter":5,"packet loss":2}},
              "8738":{}},
      "tags":{
        "ft1":{"tag":"ft1","created":1795308403,"medias":[{"index":1,"type":"audio","streams":[
           {"local port":41012,"local address":"127.0.0.1","flags":["RTP","filled"],"SSRC":4369,
            "stats":{"packets":20,"bytes":3440,"errors":0}},
           {"local port":41013,"local address":"127.0.0.1","flags":["RTCP","filled"],
            "stats":{"packets":4,"bytes":128,"errors":0}}]}]},
        "tt1":{"tag":"tt1","medias":[{"streams":[
           {"local port":41000,"local address":"127.0.0.1","flags":["RTP"],"SSRC":8738,
            "stats":{"packets":20,"bytes":3440,"errors":0}}]}]}},
      "totals":{"RTP":{"packets":40,"bytes":6880,"errors":0},"RTCP":{"packets":4,"bytes":128,"errors":0}},
      "result":"ok"}"#;

    #[test]
    fn parses_parties_counters_and_mos() {
        let stats = CallStats::parse(decode_dict(QUERY.as_bytes()).unwrap());
        assert_eq!(stats.created, Some(1795308403));
        assert_eq!(stats.parties.len(), 2);
        let ft1 = &stats.parties[0];
        assert_eq!(ft1.tag, "ft1");
        assert_eq!(
            ft1.rtp,
            Counters {
                packets: 20,
                bytes: 3440,
                errors: 0
            }
        );
        assert_eq!(ft1.rtcp.packets, 4);
        assert_eq!(ft1.ssrcs, vec![4369]);
        assert_eq!(ft1.local_rtp, vec!["127.0.0.1:41012".to_string()]);
        assert_eq!(stats.totals_rtp.packets, 40);
        assert_eq!(stats.ssrcs.len(), 2);
        let q = &stats.ssrcs[0];
        assert_eq!(q.ssrc, 4369);
        assert_eq!(q.average.unwrap().mos, 4.1);
        assert_eq!(q.lowest.unwrap().jitter_ms, Some(5));
        assert!(stats.ssrcs[1].average.is_none());
    }

    /// Counters come from the node; two near i64::MAX must not overflow their sum.
    #[test]
    fn counter_sums_saturate() {
        let max = i64::MAX;
        let reply = format!(
            r#"{{"tags":{{"t":{{"tag":"t","medias":[{{"streams":[
              {{"flags":["RTP"],"stats":{{"packets":{max},"bytes":{max},"errors":1}}}},
              {{"flags":["RTP"],"stats":{{"packets":{max},"bytes":1,"errors":1}}}}]}}]}}}},
              "result":"ok"}}"#
        );
        let stats = CallStats::parse(decode_dict(reply.as_bytes()).unwrap().into_owned());
        let rtp = stats.parties[0].rtp;
        assert_eq!((rtp.packets, rtp.bytes, rtp.errors), (max, max, 2));
    }
}
