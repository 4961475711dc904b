//! What routing answers: the request, the decision with its ordered routes, and the
//! reasons a call is refused with their SIP replies.

use super::records::StrRef;
use super::Snapshot;
use crate::money::Amount;
use crate::number::{push_digits, Number, NumberError};
use crate::zone::{Jurisdiction, Place, Zone};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One call to route.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub ban: &'a str,
    /// Calling number as received (any accepted form); `None` or invalid = unknown.
    pub ani: Option<&'a str>,
    pub dnis: &'a str,
    /// An LRN the caller already has (cache or upstream dip) when the snapshot has none.
    pub lrn: Option<Number>,
    pub at: DateTime<Utc>,
    /// Overrides the customer's `max_results`.
    pub max_results: Option<u32>,
}

impl<'a> RouteRequest<'a> {
    /// A call with nothing known beyond what it carries: no LRN from a cache or dip, the
    /// customer's own `max_results`.
    pub fn new(ban: &'a str, ani: Option<&'a str>, dnis: &'a str, at: DateTime<Utc>) -> Self {
        RouteRequest {
            ban,
            ani,
            dnis,
            lrn: None,
            at,
            max_results: None,
        }
    }
}

/// Why a call gets no routes, with the SIP reply it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Reject {
    #[error("unknown customer {0:?}")]
    UnknownCustomer(String),
    #[error("customer {0} is disabled")]
    CustomerDisabled(String),
    #[error("invalid dialled number: {0}")]
    InvalidDnis(String),
    #[error("calling number is on the Do-Not-Originate list")]
    DnoAni,
    #[error("destination is excluded for this customer")]
    ExcludedDestination,
    #[error("the customer's rate plan has no rate for this destination and zone")]
    NoSellRate,
    #[error("no vendor route within the rate limit")]
    NoRoute,
}

impl Reject {
    /// SIP status and reason phrase for the reply.
    pub fn sip(&self) -> (u16, &'static str) {
        match self {
            Reject::UnknownCustomer(_) | Reject::CustomerDisabled(_) => (403, "Forbidden"),
            Reject::InvalidDnis(_) => (484, "Address Incomplete"),
            Reject::DnoAni => (603, "Decline"),
            Reject::ExcludedDestination => (403, "Destination Blocked"),
            Reject::NoSellRate | Reject::NoRoute => (404, "No Route"),
        }
    }
}

impl From<NumberError> for Reject {
    fn from(e: NumberError) -> Self {
        Reject::InvalidDnis(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LrnSource {
    /// The snapshot's LNP table.
    Snapshot,
    /// Given by the caller (cache or upstream dip).
    Supplied,
    /// Not ported (or not NANP): the dialled number itself.
    Dnis,
}

/// LERG facts of one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LergInfo<'a> {
    pub ocn: [u8; 4],
    pub lata: u32,
    pub state: [u8; 2],
    pub rate_center: u32,
    /// Where this carrier and LATA's OCN/LATA rate rows are (`start << 32 | len`).
    pub(crate) ocn_lata_rows: u64,
    /// Where the rate centre's name is looked up, only when read: the call path
    /// never needs it, so routing does not pay the cache miss.
    pub(crate) names: RateCenterNames<'a>,
}

/// The snapshot a [`LergInfo`] came from. Facts compare equal by their fields alone.
#[derive(Clone, Copy)]
pub(crate) struct RateCenterNames<'a>(pub(crate) &'a Snapshot);

impl PartialEq for RateCenterNames<'_> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for RateCenterNames<'_> {}

impl std::fmt::Debug for RateCenterNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateCenterNames")
    }
}

impl<'a> LergInfo<'a> {
    /// The rate centre's name (stored as `STATE/NAME`, unique across states).
    pub fn rate_center_name(&self) -> &'a str {
        let key = std::str::from_utf8(self.names.0.rate_center_key(self.rate_center)).unwrap_or("");
        key.split_once('/').map_or(key, |(_, name)| name)
    }

    pub fn place(&self) -> Place {
        Place {
            state: self.state,
            rate_center: self.rate_center,
        }
    }

    pub fn ocn(&self) -> &str {
        std::str::from_utf8(&self.ocn).unwrap_or("").trim_end()
    }
    pub fn state(&self) -> &str {
        std::str::from_utf8(&self.state).unwrap_or("")
    }
}

impl Serialize for LergInfo<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("LergInfo", 4)?;
        st.serialize_field("ocn", self.ocn())?;
        st.serialize_field("lata", &self.lata)?;
        st.serialize_field("state", self.state())?;
        st.serialize_field("rate_center", self.rate_center_name())?;
        st.end()
    }
}

fn e164<S: serde::Serializer>(n: &Number, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("+{n}"))
}

fn e164_opt<S: serde::Serializer>(n: &Option<Number>, s: S) -> Result<S::Ok, S::Error> {
    match n {
        Some(n) => e164(n, s),
        None => s.serialize_none(),
    }
}

/// One vendor route, in the order to try.
#[derive(Debug, Clone, Serialize)]
pub struct Route<'a> {
    pub vendor_id: &'a str,
    pub vendor_name: &'a str,
    /// The partition that offered this vendor; `None` for a vendor an override forced
    /// first (an override stands outside the partitions, even when one also offers it).
    pub partition: Option<&'a str>,
    /// Forced first by an override.
    pub forced: bool,
    /// The zone this vendor prices the call in (its policy decides indeterminate calls).
    pub zone: Zone,
    pub vendor_rate: Amount,
    pub customer_rate: Amount,
    pub margin: Amount,
    pub increments: (u32, u32),
    pub connect_fee: Amount,
    pub dialstrings: Dialstrings<'a>,
}

/// A vendor's gateways in failover order, filled in for the call only when asked
/// (the SIP path needs one; building every string of every route would cost more
/// than the whole routing decision).
#[derive(Debug, Clone, Copy)]
pub struct Dialstrings<'a> {
    pub(super) templates: &'a [StrRef],
    pub(super) snapshot: &'a Snapshot,
    pub(super) number: Dialled,
}

/// What a dialstring template is filled in with: the dialled number and its LRN (the
/// number itself when it is not ported, or not known to be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialled {
    pub number: Number,
    pub lrn: Number,
}

impl Dialled {
    /// A number whose LRN is not known (or that is not ported).
    pub fn unported(number: Number) -> Self {
        Dialled {
            number,
            lrn: number,
        }
    }
}

impl<'a> Dialstrings<'a> {
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<String> {
        self.templates
            .get(i)
            .map(|t| expand(self.snapshot.str(*t), self.number))
    }

    pub fn first(&self) -> Option<String> {
        self.get(0)
    }

    /// Appends dialstring `i` to `out` (no allocation); false if there is none.
    pub fn push(&self, i: usize, out: &mut String) -> bool {
        let Some(t) = self.templates.get(i) else {
            return false;
        };
        fill_dialstring(out, self.snapshot.str(*t), self.number);
        true
    }

    /// Template `i` as the snapshot holds it, for a caller that keeps it with the call
    /// and fills it in only if its turn comes ([`fill_dialstring`], with the
    /// decision's `dnis` and `lrn`).
    pub fn template(&self, i: usize) -> Option<&'a str> {
        self.templates.get(i).map(|t| self.snapshot.str(*t))
    }

    pub fn iter(&self) -> impl Iterator<Item = String> + 'a {
        let (snap, n) = (self.snapshot, self.number);
        self.templates.iter().map(move |t| expand(snap.str(*t), n))
    }
}

impl Serialize for Dialstrings<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot(generation {})", self.generation())
    }
}

/// The routing decision for one call.
#[derive(Debug, Clone, Serialize)]
pub struct Decision<'a> {
    pub generation: u64,
    pub ban: &'a str,
    #[serde(serialize_with = "e164_opt")]
    pub ani: Option<Number>,
    #[serde(serialize_with = "e164")]
    pub dnis: Number,
    #[serde(serialize_with = "e164")]
    pub lrn: Number,
    pub lrn_source: LrnSource,
    pub jurisdiction: Jurisdiction,
    /// LERG facts of the terminating side (LRN, else DNIS).
    pub terminating: Option<LergInfo<'a>>,
    pub originating: Option<LergInfo<'a>>,
    /// What the customer pays per minute, in the zone its plan prices the call in.
    pub customer_rate: Amount,
    pub customer_zone: Zone,
    /// Vendor rates above this were dropped.
    pub rate_limit: Amount,
    pub routes: Vec<Route<'a>>,
}

/// Fills a dialstring template: `{number}` = E.164 digits, `{national}` = 10 NANP
/// digits, `{lrn}` = the LRN's E.164 digits (the number's own when not ported), `{npdi}`
/// = RFC 4694's `;rn=+<lrn>;npdi` for a ported number, nothing for another (whose
/// portability the next carrier checks itself: warp does not know that every number
/// it has no LRN for was looked up).
fn expand(template: &str, n: Dialled) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    fill_dialstring(&mut out, template, n);
    out
}

/// Appends `template` filled in for the dialled number `n` ([`expand`] into `out`), in
/// one pass and without the formatting machinery: also for a template kept from
/// [`Dialstrings::template`]. Templates are a few dozen bytes: a plain byte scan finds
/// `{` sooner than `memchr` is set up.
pub fn fill_dialstring(out: &mut String, template: &str, n: Dialled) {
    let mut rest = template;
    while let Some(open) = rest.bytes().position(|b| b == b'{') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        if let Some(after) = tail.strip_prefix("{number}") {
            n.number.push_to(out);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{national}") {
            match n.number.national() {
                Some(v) => push_digits(out, v, 10),
                None => n.number.push_to(out),
            }
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{lrn}") {
            n.lrn.push_to(out);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{npdi}") {
            if n.lrn != n.number {
                out.push_str(";rn=+");
                n.lrn.push_to(out);
                out.push_str(";npdi");
            }
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_one_pass() {
        let us = Dialled::unported(Number::parse("+13034449999").unwrap());
        let uk = Dialled::unported(Number::parse("+442079460000").unwrap());
        assert_eq!(
            expand("sip:+{number}@gw;n={national}", us),
            "sip:+13034449999@gw;n=3034449999"
        );
        // No national form outside NANP: the E.164 digits stand in.
        assert_eq!(expand("{national}@gw", uk), "442079460000@gw");
        // Unknown or unclosed placeholders are left as they are.
        assert_eq!(expand("{x}{number", us), "{x}{number");
        assert_eq!(expand("", us), "");
        let mut out = String::from("a:");
        fill_dialstring(&mut out, "{number}{number}", uk);
        assert_eq!(out, "a:442079460000442079460000");
    }

    #[test]
    fn a_ported_number_carries_its_lrn_as_rfc_4694_says() {
        let ported = Dialled {
            number: Number::parse("+12125550001").unwrap(),
            lrn: Number::parse("+13035559999").unwrap(),
        };
        assert_eq!(
            expand("sip:+{number}{npdi}@gw;user=phone", ported),
            "sip:+12125550001;rn=+13035559999;npdi@gw;user=phone"
        );
        assert_eq!(expand("sip:{lrn}@gw", ported), "sip:13035559999@gw");
        // Not ported, or not known to be: nothing to say, the number its own LRN.
        let unported = Dialled::unported(Number::parse("+12125550002").unwrap());
        assert_eq!(
            expand("sip:+{number}{npdi}@gw", unported),
            "sip:+12125550002@gw"
        );
        assert_eq!(expand("{lrn}", unported), "12125550002");
    }
}
