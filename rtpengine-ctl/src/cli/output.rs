//! Human renderings of replies (the `--json` output is the raw reply instead).

use crate::bencode::{Dict, Value};
use crate::replies::{CallStats, Statistics};
use std::fmt::Write as _;
use std::time::Duration;

pub fn pong(elapsed: Duration) -> String {
    format!("pong ({:.2} ms)", elapsed.as_secs_f64() * 1000.0)
}

pub fn call_stats(s: &CallStats) -> String {
    let mut out = String::new();
    if let Some(w) = &s.warning {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "{:<20} {:>10} {:>12} {:>7} {:>6}  sends to",
        "party", "packets", "bytes", "errors", "rtcp"
    );
    for p in &s.parties {
        let _ = writeln!(
            out,
            "{:<20} {:>10} {:>12} {:>7} {:>6}  {}",
            p.tag,
            p.rtp.packets,
            p.rtp.bytes,
            p.rtp.errors,
            p.rtcp.packets,
            p.local_rtp.join(" ")
        );
    }
    let _ = write!(
        out,
        "{:<20} {:>10} {:>12} {:>7} {:>6}",
        "total",
        s.totals_rtp.packets,
        s.totals_rtp.bytes,
        s.totals_rtp.errors,
        s.totals_rtcp.packets
    );
    for (ssrc, avg) in s.ssrcs.iter().filter_map(|q| Some((q.ssrc, q.average?))) {
        let _ = write!(out, "\nSSRC {ssrc}: MOS {:.1}", avg.mos);
        // rtpengine leaves out what it could not measure: say nothing rather than "None".
        if let Some(j) = avg.jitter_ms {
            let _ = write!(out, ", jitter {j} ms");
        }
        if let Some(l) = avg.packet_loss_pct {
            let _ = write!(out, ", loss {l}%");
        }
    }
    out
}

/// Flattens nested statistics into `section.key: value` lines; list items by index
/// (`interfaces.0.ports.used`), since rtpengine keeps per-interface port use and
/// per-proxy counters in lists.
pub fn statistics(s: &Statistics) -> String {
    let mut out = Vec::new();
    flatten_dict("", &s.raw, &mut out);
    out.join("\n")
}

fn flatten_dict(prefix: &str, d: &Dict<'_>, out: &mut Vec<String>) {
    for (k, v) in d.iter() {
        flatten(&format!("{prefix}{}", String::from_utf8_lossy(k)), v, out);
    }
}

fn flatten(key: &str, v: &Value<'_>, out: &mut Vec<String>) {
    match v {
        Value::Dict(inner) => flatten_dict(&format!("{key}."), inner, out),
        Value::List(items) if items.is_empty() => out.push(format!("{key}: []")),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{key}.{i}"), item, out);
            }
        }
        Value::Int(i) => out.push(format!("{key}: {i}")),
        Value::Bytes(b) => out.push(format!("{key}: {}", String::from_utf8_lossy(b))),
    }
}

pub fn nodes(reply: &Dict<'_>) -> String {
    let mut out = format!(
        "{:<24} {:<22} {:>6} {:>3} {:<6} {:>8} {:>10} {:>8}",
        "node", "address", "weight", "set", "state", "calls", "requests", "errors"
    );
    for n in reply
        .get_list("nodes")
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_dict)
    {
        let int = |k| n.get_int(k).unwrap_or(0);
        let state = match (int("alive"), int("draining")) {
            (0, _) => "dead",
            (_, 1) => "drain",
            _ => "up",
        };
        let _ = write!(
            out,
            "\n{:<24} {:<22} {:>6} {:>3} {:<6} {:>8} {:>10} {:>8}",
            n.get_str("name").unwrap_or("?"),
            n.get_str("address").unwrap_or("?"),
            int("weight"),
            int("set"),
            state,
            int("active calls"),
            int("requests"),
            int("errors")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrc_quality_shows_numbers_not_options() {
        let reply = br#"{"SSRC":{"4369":{"average MOS":{"MOS":41,"jitter":3,"packet loss":1}},
            "8738":{"average MOS":{"MOS":38}}},"result":"ok"}"#;
        let text = call_stats(&CallStats::parse(crate::json::decode_dict(reply).unwrap()));
        assert!(
            text.contains("\nSSRC 4369: MOS 4.1, jitter 3 ms, loss 1%"),
            "{text}"
        );
        assert!(text.ends_with("\nSSRC 8738: MOS 3.8"), "{text}");
    }
}
