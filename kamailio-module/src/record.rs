//! The text a routed call travels with: the `warp` AVP (see [`crate::failover`]), the
//! copy its dialog keeps and what `$warp(...)` reads. Line 1 is the call, line 2 the
//! attempt in progress, then the attempts still to make; fields are tab-separated.
//!
//! It is written straight from the engine's decision into one reused buffer and read
//! back as borrowed views, so routing a call allocates nothing. The attempts after the
//! first are appended only when the record leaves the process ([`LaterAttempts`]), and
//! keep their gateway's dialstring template, filled in for the call's dialled number
//! when their turn comes ([`push_later`]), as lcr builds a gateway's URI only in
//! `next_gw()`: most calls never fail over. Rates are kept as the snapshot's nano-units
//! and turn into decimal text only when someone reads them (`$warp(...)`, a CDR event,
//! `warp.route`).

use crate::snapshot::Mapped;
use std::ops::Range;
use std::sync::Arc;
use warp_core::money::Amount;
use warp_core::number::push_digits;
use warp_core::snapshot::{fill_dialstring, Dialled};
use warp_core::{Decision, Number};

/// What is known about a routed call whichever vendor takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    pub call_id: &'a str,
    /// When it was routed, Unix milliseconds.
    pub start: i64,
    pub ban: &'a str,
    pub trunk: &'a str,
    /// Normalised (E.164 digits); empty when unknown.
    pub ani: &'a str,
    pub dnis: &'a str,
    pub lrn: &'a str,
}

/// One vendor gateway to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop<'a> {
    /// 1 for the first vendor tried.
    pub attempt: u32,
    pub vendor: &'a str,
    pub uri: &'a str,
    pub zone: &'a str,
    pub vendor_rate: Amount,
    pub customer_rate: Amount,
    pub partition: Option<&'a str>,
}

/// The `N` tab-separated fields of `line`, or `None` if it has another count.
fn fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut parts = line.split('\t');
    let mut out = [""; N];
    for slot in &mut out {
        *slot = parts.next()?;
    }
    parts.next().is_none().then_some(out)
}

impl<'a> Call<'a> {
    /// What its later attempts' dialstrings are filled in with; `None` when its dialled
    /// number is no digits (a record damaged on the way). An LRN that is none (an
    /// emergency call's) is the number's own.
    pub fn dialled(&self) -> Option<Dialled> {
        let number = Number::from_digits(self.dnis).ok()?;
        let lrn = Number::from_digits(self.lrn).unwrap_or(number);
        Some(Dialled { number, lrn })
    }

    pub fn parse(line: &'a str) -> Option<Self> {
        let [call_id, start, ban, trunk, ani, dnis, lrn] = fields(line)?;
        Some(Call {
            call_id,
            start: start.parse().ok()?,
            ban,
            trunk,
            ani,
            dnis,
            lrn,
        })
    }
}

impl<'a> Hop<'a> {
    pub fn parse(line: &'a str) -> Option<Self> {
        let [attempt, vendor, uri, zone, vendor_rate, customer_rate, partition] = fields(line)?;
        Some(Hop {
            attempt: attempt.parse().ok()?,
            vendor,
            uri,
            zone,
            vendor_rate: Amount(vendor_rate.parse().ok()?),
            customer_rate: Amount(customer_rate.parse().ok()?),
            partition: Some(partition).filter(|p| !p.is_empty()),
        })
    }
}

/// Appends the call line of a routed call.
pub fn push_call(out: &mut String, call_id: &str, start: i64, trunk: &str, d: &Decision<'_>) {
    push_call_head(out, call_id, start, d.ban, trunk);
    out.push('\t');
    if let Some(ani) = d.ani {
        ani.push_to(out);
    }
    out.push('\t');
    d.dnis.push_to(out);
    out.push('\t');
    d.lrn.push_to(out);
}

/// Appends the call line of an emergency call, which no routing decision made: its
/// dialled number as dialled (`911` is no E.164 number) and no LRN.
pub fn push_emergency_call(
    out: &mut String,
    (call_id, start): (&str, i64),
    (ban, trunk): (&str, &str),
    ani: Option<Number>,
    dialled: &str,
) {
    push_call_head(out, call_id, start, ban, trunk);
    out.push('\t');
    if let Some(ani) = ani {
        ani.push_to(out);
    }
    out.push('\t');
    out.push_str(dialled);
    out.push('\t');
}

/// Appends an emergency call's attempt number `attempt`: to `uri`, zone `EMERGENCY`, free
/// of charge. Returns where `uri` is in `out`.
pub fn push_emergency_hop(out: &mut String, attempt: u32, uri: &str) -> Range<usize> {
    out.push('\n');
    push_int(out, attempt.into());
    out.push('\t');
    out.push_str(EMERGENCY);
    out.push('\t');
    let start = out.len();
    out.push_str(uri);
    let at = start..out.len();
    out.push('\t');
    out.push_str(EMERGENCY_ZONE);
    out.push_str("\t0\t0\t");
    at
}

/// The vendor an emergency call's record names: no vendor of the snapshot's.
pub const EMERGENCY: &str = "emergency";
/// Its zone, beside the snapshot's (`LOCAL`, `INTERSTATE`, ...).
pub const EMERGENCY_ZONE: &str = "EMERGENCY";

/// The call line's Call-ID, start, BAN and trunk. The Call-ID is the one field from
/// outside: a tab or line break in it (which no valid Call-ID has) becomes a space, so
/// the record stays readable.
fn push_call_head(out: &mut String, call_id: &str, start: i64, ban: &str, trunk: &str) {
    if call_id.bytes().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
        let separator = |c: char| matches!(c, '\t' | '\n' | '\r');
        out.extend(call_id.chars().map(|c| if separator(c) { ' ' } else { c }));
    } else {
        out.push_str(call_id);
    }
    out.push('\t');
    push_int(out, start);
    for field in [ban, trunk] {
        out.push('\t');
        out.push_str(field);
    }
}

/// Which of a decision's attempts [`push_hops`] appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempts {
    /// The first, its dialstring filled in: what a routed call needs at once.
    First,
    /// Every one after the first, templates kept: what failover needs.
    Later,
    /// Both (`warp.route`).
    All,
}

/// Appends one line per (vendor, gateway) of `d` among `which`, each after a line
/// break, attempts numbered from 1: a vendor with several gateways is tried on each
/// before the next vendor, except that the gateways whose bit is set in `last`
/// (positions in that order, from 0: see [`crate::gateways::put_last`]) come after all
/// the others. The first attempt's dialstring is filled in, the others' templates kept.
/// Returns where the first attempt's dialstring is in `out`, if written.
pub fn push_hops(
    out: &mut String,
    d: &Decision<'_>,
    which: Attempts,
    last: u64,
) -> Option<Range<usize>> {
    let mut attempt = 0;
    let mut first = None;
    // Two passes only when some gateway goes last: first the others, then those.
    for pass_of_last in [false, true] {
        if pass_of_last && last == 0 {
            break;
        }
        let mut position = 0u32;
        for r in &d.routes {
            // What the vendor's lines share after the dialstring, written once per vendor.
            let mut tail: Option<Range<usize>> = None;
            for i in 0..r.dialstrings.len() {
                let goes_last = crate::gateways::goes_last(last, position);
                position += 1;
                if goes_last != pass_of_last {
                    continue;
                }
                attempt += 1;
                let wanted = match which {
                    Attempts::First => attempt == 1,
                    Attempts::Later => attempt > 1,
                    Attempts::All => true,
                };
                if !wanted {
                    continue;
                }
                out.push('\n');
                push_int(out, attempt);
                out.push('\t');
                out.push_str(r.vendor_id);
                out.push('\t');
                if attempt == 1 {
                    let uri = out.len();
                    r.dialstrings.push(i, out);
                    first = Some(uri..out.len());
                } else {
                    out.push_str(r.dialstrings.template(i).unwrap_or_default());
                }
                match &tail {
                    // SAFETY: `shared` spans whole `str`s pushed below, so the copy is UTF-8.
                    Some(shared) => unsafe { out.as_mut_vec() }.extend_from_within(shared.clone()),
                    None => {
                        let start = out.len();
                        out.push('\t');
                        out.push_str(r.zone.as_str());
                        for rate in [r.vendor_rate, r.customer_rate] {
                            out.push('\t');
                            push_int(out, rate.0);
                        }
                        out.push('\t');
                        out.push_str(r.partition.unwrap_or(""));
                        tail = Some(start..out.len());
                    }
                }
            }
            if which == Attempts::First && first.is_some() {
                return first;
            }
        }
    }
    first
}

/// A routed call's attempts after the first, appended to its record only when the
/// record leaves this process (see [`crate::failover`]): a call answered statelessly
/// never needs them, and writing them cost more than the rest of the record.
pub struct LaterAttempts {
    // Declared before `_snapshot`, so dropped first: it borrows from that snapshot.
    decision: Decision<'static>,
    _snapshot: Arc<Mapped>,
    /// The gateways put last when the first attempt was chosen (see [`push_hops`]).
    last: u64,
}

impl LaterAttempts {
    pub fn new<'s>(snapshot: &'s Arc<Mapped>, decision: Decision<'s>, last: u64) -> Self {
        // SAFETY: a decision borrows only from the snapshot that made it (`route` ties
        // its lifetime to `&self`): the mapping and the `Snapshot` inside the `Arc`'s
        // allocation, which the clone kept beside it keeps alive, at the same address,
        // for as long as the decision.
        let decision = unsafe { std::mem::transmute::<Decision<'s>, Decision<'static>>(decision) };
        LaterAttempts {
            decision,
            _snapshot: Arc::clone(snapshot),
            last,
        }
    }

    /// Appends the later attempts' lines to `record`, whose first attempt is this
    /// decision's.
    pub fn push_to(&self, record: &mut String) {
        push_hops(record, &self.decision, Attempts::Later, self.last);
    }
}

/// Appends the attempts still to make, `later` of a record whose call is `dialled`,
/// after a line break: the first becomes the attempt in progress, its dialstring filled
/// in. Returns where that dialstring is in `out`; `None` if `later` has no attempt, or
/// its template has placeholders and the call no number (`dialled` `None`: an emergency
/// call to `000` is no E.164 number, and its destinations are no templates).
pub fn push_later(out: &mut String, dialled: Option<Dialled>, later: &str) -> Option<Range<usize>> {
    let (next, rest) = later.split_once('\n').unwrap_or((later, ""));
    let mut fields = next.splitn(4, '\t');
    let (attempt, vendor, template, tail) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if dialled.is_none() && template.contains('{') {
        return None;
    }
    out.push('\n');
    out.push_str(attempt);
    out.push('\t');
    out.push_str(vendor);
    out.push('\t');
    let uri = out.len();
    match dialled {
        Some(dialled) => fill_dialstring(out, template, dialled),
        None => out.push_str(template),
    }
    let filled = uri..out.len();
    out.push('\t');
    out.push_str(tail);
    if !rest.is_empty() {
        out.push('\n');
        out.push_str(rest);
    }
    Some(filled)
}

/// Appends `n` in decimal.
fn push_int(out: &mut String, n: i64) {
    // Attempt numbers: one digit, no buffer.
    if let Ok(digit @ 0..=9) = u8::try_from(n) {
        out.push(char::from(b'0' + digit));
        return;
    }
    if n < 0 {
        out.push('-');
    }
    push_digits(out, n.unsigned_abs(), 1);
}

/// A record's call line, the attempt in progress and the text after it (the later
/// attempts, empty when none is left).
pub fn split(record: &str) -> Option<(&str, &str, &str)> {
    let (call, rest) = record.split_once('\n')?;
    let (current, later) = rest.split_once('\n').unwrap_or((rest, ""));
    Some((call, current, later))
}

#[cfg(test)]
mod tests {
    use super::{push_hops, Attempts, Hop};
    use warp_core::{RouteRequest, Snapshot};

    /// (vendor, gateway) of each attempt line, and the attempt numbers, of `out` (hop
    /// lines only): the first attempt's dialstring is filled in, the others' templates.
    fn hops(out: &str) -> (Vec<(String, String)>, Vec<u32>) {
        out.lines()
            .filter_map(Hop::parse)
            .map(|h| {
                let gateway = crate::gateways::gateway_of(h.uri).to_owned();
                ((h.vendor.to_owned(), gateway), h.attempt)
            })
            .unzip()
    }

    #[test]
    fn gateways_put_last_follow_the_others_in_their_own_order() {
        let d = warp_datagen::generate(warp_datagen::Scale::SMALL, 42);
        let bytes = warp_core::snapshot::compile(&d, 1).unwrap();
        let snapshot = Snapshot::from_bytes(&bytes).unwrap();
        // A call with several vendors, each with two gateways.
        let decision = warp_datagen::sample_calls(&d, 200, 7)
            .iter()
            .find_map(|(ban, ani, dnis)| {
                let decision = snapshot
                    .route(&RouteRequest {
                        ban,
                        ani: Some(ani),
                        dnis,
                        lrn: None,
                        at: chrono::Utc::now(),
                        max_results: None,
                    })
                    .ok()?;
                (decision.routes.len() >= 3).then_some(decision)
            })
            .expect("a call with three vendors");
        let mut natural = String::new();
        push_hops(&mut natural, &decision, Attempts::All, 0);
        let (natural, numbers) = hops(&natural);
        assert!(natural.len() >= 6, "{natural:?}");
        assert_eq!(numbers, (1..=natural.len() as u32).collect::<Vec<_>>());

        // The first attempt and the third put last.
        let last = 0b101;
        let mut all = String::new();
        push_hops(&mut all, &decision, Attempts::All, last);
        let (reordered, numbers) = hops(&all);
        assert_eq!(numbers, (1..=natural.len() as u32).collect::<Vec<_>>());
        let mut expected: Vec<_> = natural.iter().skip(1).cloned().collect();
        expected.remove(1);
        expected.extend([natural[0].clone(), natural[2].clone()]);
        assert_eq!(reordered, expected);

        // What a call gets: its first attempt, then the later ones, as `All` says.
        let mut record = String::new();
        let first = push_hops(&mut record, &decision, Attempts::First, last).unwrap();
        assert!(!record[first].contains('{'), "{record}");
        push_hops(&mut record, &decision, Attempts::Later, last);
        assert_eq!(hops(&record), (reordered, numbers));
    }
}
