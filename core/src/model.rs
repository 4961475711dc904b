//! The provisioning model: what PostgreSQL holds and the snapshot compiles.

use crate::number::{Number, Prefix};
use crate::rating::Increments;
use crate::schedule::Schedule;
use crate::zone::Zone;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::net::IpAddr;
use std::str::FromStr;

/// One LERG row: an NPA-NXX, or a thousands block of one when `block` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct LergBlock {
    pub npa_nxx: u32,
    pub block: Option<u8>,
    pub ocn: String,
    pub lata: u32,
    pub state: String,
    pub rate_center: String,
}

/// Two rate centres (`STATE/NAME`) in one local calling area.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalPair {
    pub a: String,
    pub b: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub ban: String,
    pub name: String,
    /// The sell-side rate plan; every route carries the customer rate from it.
    pub rate_plan: String,
    pub min_margin: Decimal,
    /// Explicit ceiling on vendor rates; otherwise sell rate minus minimum margin.
    pub rate_limit: Option<Decimal>,
    pub max_results: u32,
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpNet {
    /// The network itself, host bits cleared: `10.1.2.9/24` is `10.1.2.0/24`.
    pub fn network(self) -> IpNet {
        let len = u32::from(self.len);
        let addr = match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & IpNet::mask4(len)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & IpNet::mask6(len)).into()),
        };
        IpNet { addr, ..self }
    }

    /// The IPv4 network an IPv4-mapped IPv6 network names (`::ffff:10.0.0.0/104` is
    /// `10.0.0.0/8`); any other network as it is. Kamailio reports an IPv4 peer as IPv4
    /// even on a dual-stack socket, so a mapped network is only ever matched this way.
    pub fn unmapped(self) -> IpNet {
        match self.addr {
            IpAddr::V6(a) if self.len >= 96 => match a.to_ipv4_mapped() {
                Some(v4) => IpNet {
                    addr: IpAddr::V4(v4),
                    len: self.len - 96,
                },
                None => self,
            },
            _ => self,
        }
    }

    /// The network mask of an IPv4 prefix of `len` bits.
    pub fn mask4(len: u32) -> u32 {
        u32::MAX.checked_shl(32 - len.min(32)).unwrap_or(0)
    }

    /// The network mask of an IPv6 prefix of `len` bits.
    pub fn mask6(len: u32) -> u128 {
        u128::MAX.checked_shl(128 - len.min(128)).unwrap_or(0)
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = match s.trim().split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("bad IP address {a:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        // A bare address is one host; `10.1.2.0/` lost its length and is refused, not
        // read as a host route the writer never meant.
        let len = match l {
            None => max,
            Some(l) => Some(l)
                .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|l| l.parse::<u8>().ok())
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("bad prefix length in {s:?}"))?,
        };
        Ok(IpNet { addr, len })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trunk {
    pub id: String,
    pub ban: String,
    pub acl: Vec<IpNet>,
    pub credentials: Vec<Credential>,
    pub auth: TrunkAuth,
    /// 0 = unlimited.
    pub max_concurrent: u32,
    /// 0 = unlimited.
    pub max_cps: u32,
    pub enabled: bool,
    /// The edge sends the trunk's side of an answered call in-dialog keepalives
    /// (OPTIONS) and ends a call whose PBX stops answering them; off for a PBX that
    /// ignores in-dialog OPTIONS, whose calls would be ended a few minutes in.
    pub keepalive: bool,
}

/// Digest credentials a trunk may authenticate with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    /// The realm `ha1` was hashed in; empty without one.
    pub realm: String,
    /// md5(username:realm:password) in lowercase hex, as Kamailio's auth checks it;
    /// none until a password is set (the password itself is never kept).
    pub ha1: Option<String>,
}

impl Credential {
    /// An ha1 is 32 lowercase hex digits (the schema's CHECK) hashed in a realm: one
    /// without its realm could never be checked.
    pub fn check(&self) -> Result<(), String> {
        let Some(ha1) = &self.ha1 else {
            return Ok(());
        };
        if ha1.len() != 32 || !ha1.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("ha1 {ha1:?} is not 32 hex digits"));
        }
        if self.realm.is_empty() {
            return Err(format!(
                "{}: an ha1 needs the realm it was hashed in",
                self.username
            ));
        }
        Ok(())
    }
}

/// How a trunk proves who it is: the schema's `trunks.auth_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum TrunkAuth {
    /// By the source address, in its ACL; its credentials identify nothing.
    #[default]
    IpAcl = 0,
    /// By digest credentials alone; its addresses admit nothing.
    Credentials = 1,
    /// By digest credentials, sent from an address in its ACL.
    IpAndCredentials = 2,
}

impl TrunkAuth {
    pub const ALL: [Self; 3] = [Self::IpAcl, Self::Credentials, Self::IpAndCredentials];

    pub fn from_index(i: u8) -> Option<Self> {
        Self::ALL.get(i as usize).copied()
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IpAcl => "IP_ACL",
            Self::Credentials => "CREDENTIALS",
            Self::IpAndCredentials => "IP_AND_CREDENTIALS",
        }
    }
    /// Does the source address count (alone, or with credentials)?
    pub fn checks_address(self) -> bool {
        self != Self::Credentials
    }
    /// Are credentials asked for (alone, or with the address)?
    pub fn checks_credentials(self) -> bool {
        self != Self::IpAcl
    }
}

impl FromStr for TrunkAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        by_name(&Self::ALL, Self::as_str, "auth type", s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VendorKind {
    /// Priced by the longest prefix of the LRN.
    Lrn = 0,
    /// Priced by (OCN, LATA) of the LRN.
    OcnLata = 1,
    /// Priced by the longest prefix of the dialled number.
    Dnis = 2,
    /// Priced by the longest prefix of the E.164 number.
    International = 3,
}

impl VendorKind {
    pub const ALL: [Self; 4] = [Self::Lrn, Self::OcnLata, Self::Dnis, Self::International];

    pub fn from_index(i: u8) -> Option<Self> {
        Self::ALL.get(i as usize).copied()
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lrn => "LRN",
            Self::OcnLata => "OCN_LATA",
            Self::Dnis => "DNIS",
            Self::International => "INTERNATIONAL",
        }
    }
}

impl FromStr for VendorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        by_name(&Self::ALL, Self::as_str, "vendor type", s)
    }
}

/// `s` (trimmed, either case) as the one of `all` that `name` calls so; the error
/// lists the names.
pub(crate) fn by_name<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
    s: &str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|&k| name(k).eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|&k| name(k)).collect();
            format!("unknown {what} {s:?} ({})", names.join(", "))
        })
}

/// The longest id (BAN, trunk, vendor, partition) the model takes.
pub const ID_MAX: usize = 128;
/// The longest gateway dialstring template the model takes.
pub const DIALSTRING_MAX: usize = 255;
/// The routes a customer may ask for: PostgreSQL's `customers` holds 1 to this.
pub const MAX_RESULTS_MAX: u32 = 100;

/// Checks an id (BAN, trunk, vendor, partition). Ids travel in tab-separated call
/// records, SIP headers and CDRs: a tab, line break or other control character would
/// break them, and one of kilobytes would not fit where a routed call is tracked.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > ID_MAX || id.chars().any(char::is_control) {
        return Err(format!(
            "{id:?}: an id is 1 to {ID_MAX} bytes without control characters"
        ));
    }
    Ok(())
}

/// Checks a digest username: the credentials carry it in a quoted string, which a
/// quote would end and a backslash escape, so an ha1 hashed over it would never match.
pub fn check_username(username: &str) -> Result<(), String> {
    check_digest_text("a digest username", username)
}

/// Checks a digest realm: the edge sends it in a quoted string and hashes it into ha1
/// as is (see [`check_username`]).
pub fn check_realm(realm: &str) -> Result<(), String> {
    check_digest_text("a realm", realm)
}

fn check_digest_text(what: &str, text: &str) -> Result<(), String> {
    let bad = |c: char| c.is_control() || c == '"' || c == '\\';
    if text.is_empty() || text.len() > ID_MAX || text.chars().any(bad) {
        return Err(format!(
            "{text:?}: {what} is 1 to {ID_MAX} bytes without quotes, backslashes or \
             control characters"
        ));
    }
    Ok(())
}

/// Checks a gateway dialstring template, which becomes a Request-URI: a `sip:` or
/// `sips:` URI (either case) of at most [`DIALSTRING_MAX`] bytes, with no whitespace
/// or control character that would end the request line or inject a header.
pub fn check_dialstring(template: &str) -> Result<(), String> {
    let scheme = |s: &str| {
        template
            .get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    };
    let clean = !template
        .chars()
        .any(|c| c.is_whitespace() || c.is_control());
    if !(scheme("sip:") || scheme("sips:")) || template.len() > DIALSTRING_MAX || !clean {
        return Err(format!(
            "dialstring {template:?} is not a sip: or sips: URI of at most \
             {DIALSTRING_MAX} bytes without spaces or control characters"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vendor {
    pub id: String,
    pub name: String,
    pub kind: VendorKind,
    /// Lower is preferred when rates tie.
    pub priority: i32,
    /// The zone indeterminate traffic is priced in (jurisdiction policy).
    pub indeterminate_zone: Zone,
    /// Dialstring templates in failover order; `{number}` is the E.164 number without `+`,
    /// `{national}` the 10 NANP digits (or the E.164 number outside NANP), `{lrn}` and
    /// `{npdi}` its LRN (see [`crate::snapshot::fill_dialstring`]).
    pub gateways: Vec<String>,
    pub enabled: bool,
    /// The edge sends the vendor's side of an answered call in-dialog keepalives
    /// (OPTIONS) and ends a call whose switch stops answering them; off for a switch
    /// that ignores in-dialog OPTIONS, whose calls would be ended a few minutes in.
    pub keepalive: bool,
}

/// What a rate row is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    Prefix(Prefix),
    OcnLata { ocn: String, lata: u32 },
}

/// A row of a vendor deck (owner = vendor id) or a customer rate plan (owner = plan id).
#[derive(Debug, Clone, PartialEq)]
pub struct RateRow {
    pub owner: String,
    pub key: RateKey,
    pub effective_from: DateTime<Utc>,
    pub effective_to: Option<DateTime<Utc>>,
    /// Per-minute rate by zone, indexed by `Zone as usize`; `None` = not offered.
    pub rates: [Option<Decimal>; 6],
    pub increments: Increments,
    pub connect_fee: Decimal,
    pub minimum_charge: Decimal,
}

impl RateRow {
    pub fn effective_at(&self, t: DateTime<Utc>) -> bool {
        t >= self.effective_from && self.effective_to.is_none_or(|e| t < e)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub id: String,
    pub name: String,
    pub vendors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerPartition {
    pub ban: String,
    pub partition: String,
    /// Lower is tried first.
    pub priority: i32,
    pub schedule: Schedule,
}

/// Forces a vendor first for matching calls, regardless of cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// `None` applies to every customer.
    pub ban: Option<String>,
    pub prefix: Prefix,
    pub vendor: String,
    pub schedule: Schedule,
}

/// Without a vendor: the destination is blocked. With one: that vendor is not used for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    pub ban: Option<String>,
    pub vendor: Option<String>,
    pub prefix: Prefix,
}

/// A number of the DID inventory assigned to a customer for voice: a call from that
/// customer presenting it is one whose calling number the carrier knows it may use
/// (STIR/SHAKEN full attestation, ATIS-1000074 5.2.3).
#[derive(Debug, Clone, PartialEq)]
pub struct AssignedNumber {
    pub number: Number,
    pub ban: String,
}

/// Everything routing needs, as provisioned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub lerg: Vec<LergBlock>,
    pub local_calling: Vec<LocalPair>,
    pub dno: Vec<Number>,
    pub lnp: Vec<(Number, Number)>,
    pub customers: Vec<Customer>,
    pub trunks: Vec<Trunk>,
    pub vendors: Vec<Vendor>,
    pub vendor_rates: Vec<RateRow>,
    pub customer_rates: Vec<RateRow>,
    pub partitions: Vec<Partition>,
    pub customer_partitions: Vec<CustomerPartition>,
    pub overrides: Vec<Override>,
    pub exclusions: Vec<Exclusion>,
    /// The DID inventory's numbers assigned for voice. Only the database carries them
    /// (the API keeps the inventory); a dataset from files or `datagen` has none.
    pub numbers: Vec<AssignedNumber>,
}

/// The rate-centre key used by the LERG and the local calling table.
pub fn rate_center_key(state: &str, name: &str) -> String {
    // Case-blind: the LERG and a local calling table from another source may spell
    // one rate centre "DENVER" and "Denver".
    let mut key = format!("{}/{}", state.trim(), name.trim());
    key.make_ascii_uppercase();
    key
}
