//! Fixed-size records of the snapshot's sections. All `Pod`: any bytes are a valid
//! value, so a corrupt file can give wrong answers but never undefined behaviour, and
//! every index read from a record is bounds-checked where it is used.

use bytemuck::{Pod, Zeroable};

/// "No such index" in index fields.
pub const NONE: u32 = u32::MAX;
/// "No amount" in money fields (nano-units).
pub const NO_AMOUNT: i64 = i64::MIN;

/// Section identifiers, stable across format versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionId {
    Meta = 1,
    Strings = 2,
    TimeZones = 3,
    Customers = 10,
    CustomerMap = 11,
    CustomerPartitions = 12,
    /// The DID inventory's numbers assigned for voice: number -> customer index.
    CustomerNumbers = 13,
    Trunks = 20,
    Acl4Map = 21,
    Acl6 = 22,
    Credentials = 23,
    CredentialMap = 24,
    Partitions = 30,
    PartitionVendors = 31,
    Vendors = 40,
    Gateways = 41,
    Plans = 42,
    RateRows = 50,
    PrefixMap = 51,
    /// The owner of each rate row, in row order: scanned before any row is read.
    RowOwners = 54,
    LergMap = 61,
    RateCenters = 62,
    LocalSet = 63,
    DnoSet = 70,
    LnpMap = 71,
    Overrides = 80,
    Exclusions = 81,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default, PartialEq, Eq)]
pub struct StrRef {
    pub off: u32,
    pub len: u32,
}

/// Global facts and ranges that do not belong to one record.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Meta {
    /// Bit `n` set when some rate prefix has `n` digits.
    pub prefix_lengths: u32,
    pub vendor_count: u32,
    /// Per leading two digits `dd`: bit `n` set when some rate prefix of `n` digits can
    /// match a number starting `dd`, so a NANP number skips the lengths only
    /// international prefixes have (and the other way round).
    pub prefix_lengths_by_lead: [u32; 100],
    /// Bit `n` set when some IPv4 ACL entry is a /n.
    pub acl4_lengths: u64,
    pub global_overrides: Range,
    pub global_exclusions: Range,
    pub vendor_rate_rows: u64,
    pub customer_rate_rows: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub len: u32,
}

impl Range {
    pub fn get<T>(self, items: &[T]) -> &[T] {
        let s = self.start as usize;
        items
            .get(s..s.saturating_add(self.len as usize))
            .unwrap_or(&[])
    }
}

/// Validity and weekly window (see [`crate::schedule::Schedule`]).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct ScheduleRec {
    /// Unix seconds; `i64::MIN` = open.
    pub from: i64,
    /// Unix seconds; `i64::MAX` = open.
    pub to: i64,
    /// Index into the time-zone table; `NONE` = no weekly window.
    pub tz: u32,
    pub days: u32,
    pub start: u32,
    pub end: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct CustomerRec {
    pub ban: StrRef,
    pub name: StrRef,
    pub min_margin: i64,
    pub rate_limit: i64,
    /// Owner index of the rate plan.
    pub plan: u32,
    pub max_results: u32,
    pub partitions: Range,
    pub overrides: Range,
    pub exclusions: Range,
    pub enabled: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct CustomerPartitionRec {
    pub partition: u32,
    pub priority: i32,
    pub schedule: ScheduleRec,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct TrunkRec {
    pub id: StrRef,
    pub customer: u32,
    pub max_concurrent: u32,
    pub max_cps: u32,
    pub enabled: u32,
    /// [`crate::model::TrunkAuth`] as its index.
    pub auth: u32,
    /// Nonzero: the trunk's PBX is sent no in-dialog keepalives. Format 5's padding
    /// word, which every writer zeroed: a file from before the field reads as keepalives
    /// on, as the trunks it was compiled from were, and a reader from before it reads
    /// past it, sending keepalives as it always did.
    pub keepalive_off: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Acl6Rec {
    pub addr: [u8; 16],
    pub len: u32,
    pub trunk: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct CredentialRec {
    pub username: StrRef,
    /// Empty when `ha1` is.
    pub realm: StrRef,
    /// Lowercase hex; empty when no password is set.
    pub ha1: StrRef,
    pub trunk: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct PartitionRec {
    pub id: StrRef,
    pub name: StrRef,
    /// Words of the partition's vendor bit set (bit `v % 64` of word `v / 64`).
    pub vendors: Range,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct VendorRec {
    pub id: StrRef,
    pub name: StrRef,
    pub kind: u32,
    pub indeterminate_zone: u32,
    pub priority: i32,
    pub enabled: u32,
    pub gateways: Range,
    /// Nonzero: the vendor's side of its calls is sent in-dialog keepalives (format 6;
    /// format 5's record had no room left, so the format changed).
    pub keepalive: u32,
    /// Zeroed: room for a flag that needs no format change, zero meaning what a file
    /// from before it meant.
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct RateRec {
    /// Vendor index, or vendor count + plan index.
    pub owner: u32,
    pub initial: u32,
    pub subsequent: u32,
    pub _pad: u32,
    /// Unix seconds.
    pub from: i64,
    /// Unix seconds; `i64::MAX` = open.
    pub to: i64,
    pub connect_fee: i64,
    pub minimum_charge: i64,
    /// Per zone (`Zone as usize`); `NO_AMOUNT` = not offered.
    pub rates: [i64; 6],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct LergRec {
    pub ocn: [u8; 4],
    pub lata: u32,
    pub state: [u8; 2],
    /// Set on an NPA-NXX record whose code is split into thousands blocks.
    pub pooled: u8,
    pub _pad: u8,
    pub rate_center: u32,
}

/// A LERG map slot keeps its record, and where its OCN/LATA rates are, inline: one
/// cache miss per probe.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct LergSlot {
    pub key: u64,
    pub rec: LergRec,
    /// The OCN/LATA rate rows for this code's carrier and LATA (`start << 32 | len`).
    pub ocn_lata_rows: u64,
}

impl super::flatmap::Keyed for LergSlot {
    #[inline]
    fn key(&self) -> u64 {
        self.key
    }
    fn vacant() -> Self {
        LergSlot {
            key: super::flatmap::EMPTY,
            rec: Zeroable::zeroed(),
            ocn_lata_rows: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct OverrideRec {
    pub prefix: u64,
    pub prefix_len: u32,
    pub vendor: u32,
    pub schedule: ScheduleRec,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct ExclusionRec {
    pub prefix: u64,
    pub prefix_len: u32,
    /// `NONE`: the destination itself is blocked.
    pub vendor: u32,
}

/// Packs a 1-4 character OCN for map keys, uppercased: a deck's `swbt` is the LERG's
/// `SWBT`, whoever built the dataset.
pub fn pack_ocn(ocn: &str) -> Option<[u8; 4]> {
    let b = ocn.as_bytes();
    if b.is_empty() || b.len() > 4 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut out = [b' '; 4];
    out[..b.len()].copy_from_slice(b);
    out.make_ascii_uppercase();
    Some(out)
}

pub fn ocn_lata_key(ocn: [u8; 4], lata: u32) -> u64 {
    (u32::from_le_bytes(ocn) as u64) << 32 | lata as u64
}

/// LERG map keys: the digit count in the top bits keeps NPA-NXX and NPA-NXX-X apart.
pub fn lerg_key(digits: u32, len: u64) -> u64 {
    len << 58 | digits as u64
}

pub fn acl4_key(addr: u32, len: u32) -> u64 {
    (len as u64) << 32 | (addr & crate::model::IpNet::mask4(len)) as u64
}
