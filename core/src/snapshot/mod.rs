//! The routing snapshot: one immutable file compiled from the provisioning data and
//! opened zero-copy with `mmap`, so every forked Kamailio worker shares one copy in the
//! page cache. See [`format`] for the layout.

mod any_format;
mod compile;
mod decision;
pub mod flatmap;
pub mod format;
pub mod records;
mod route;
mod stamp;

pub use any_format::header_of_any_format;
pub use compile::{compile, publish, CompileError};
use decision::RateCenterNames;
pub use decision::{
    fill_dialstring, Decision, Dialled, Dialstrings, LergInfo, LrnSource, Reject, Route,
    RouteRequest,
};
pub use stamp::{header, restamp};

use crate::model::TrunkAuth;
use bytemuck::Pod;
use chrono_tz::Tz;
use format::*;
use records::*;
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `error` is not a `#[source]`: the message already ends with it, and a CLI
    /// printing the chain would say it twice.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// Caught before mapping, which would fail with an errno that does not say why.
    #[error("{path} is a directory, not a snapshot")]
    Directory { path: String },
    /// Caught before the length check, which would blame a header there is none of.
    #[error("{path} is empty, not a snapshot")]
    Empty { path: String },
    #[error("not a WARP routing snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Version { found: u32 },
    #[error("snapshot is truncated or padded: header says {expected} bytes, file has {actual}")]
    Length { expected: u64, actual: u64 },
    /// Caught before the header is read: there is none to blame.
    #[error("{actual} bytes is less than a snapshot header ({HEADER_LEN}): not a snapshot, or cut short")]
    Short { actual: u64 },
    #[error("snapshot header or section table is corrupt (checksum mismatch)")]
    HeaderChecksum,
    #[error("snapshot data is corrupt (payload checksum mismatch)")]
    PayloadChecksum,
    #[error("snapshot section {id} is malformed: {why}")]
    Section { id: u32, why: &'static str },
    #[error("snapshot names an unknown time zone {0:?}")]
    TimeZone(String),
}

enum Backing {
    Mapped(memmap2::Mmap),
    /// `u64` words keep in-memory snapshots 8-byte aligned like a mapping.
    Owned(Vec<u64>, usize),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(words, len) => &bytemuck::cast_slice(words)[..*len],
        }
    }
}

/// Byte range of a validated section.
#[derive(Clone, Copy, Default)]
struct Sec {
    offset: usize,
    count: usize,
}

macro_rules! sections {
    ($($field:ident: $id:ident => $ty:ty),* $(,)?) => {
        #[derive(Default)]
        struct Sections { $($field: Sec,)* }

        impl Sections {
            fn locate(bytes: &[u8], table: &[SectionEntry]) -> Result<Self, OpenError> {
                let mut s = Sections::default();
                $(s.$field = find::<$ty>(bytes, table, SectionId::$id)?;)*
                Ok(s)
            }
        }

        impl Snapshot {
            $(
                #[inline]
                fn $field(&self) -> &[$ty] {
                    self.slice(self.sections.$field)
                }
            )*
        }
    };
}

sections! {
    meta_sec: Meta => Meta,
    strings: Strings => u8,
    tz_names: TimeZones => StrRef,
    customers: Customers => CustomerRec,
    customer_map: CustomerMap => flatmap::Slot,
    customer_partitions: CustomerPartitions => CustomerPartitionRec,
    customer_numbers: CustomerNumbers => flatmap::Slot,
    trunks: Trunks => TrunkRec,
    acl4: Acl4Map => flatmap::Slot,
    acl6: Acl6 => Acl6Rec,
    credentials: Credentials => CredentialRec,
    credential_map: CredentialMap => flatmap::Slot,
    partitions: Partitions => PartitionRec,
    partition_vendors: PartitionVendors => u64,
    vendors: Vendors => VendorRec,
    gateways: Gateways => StrRef,
    plans: Plans => StrRef,
    rate_rows: RateRows => RateRec,
    prefix_map: PrefixMap => flatmap::Slot,
    row_owners: RowOwners => u32,
    lerg_map: LergMap => LergSlot,
    rate_centers: RateCenters => StrRef,
    local_set: LocalSet => flatmap::Slot,
    dno_set: DnoSet => flatmap::Slot,
    lnp_map: LnpMap => flatmap::Slot,
    overrides: Overrides => OverrideRec,
    exclusions: Exclusions => ExclusionRec,
}

fn find<T: Pod>(bytes: &[u8], table: &[SectionEntry], id: SectionId) -> Result<Sec, OpenError> {
    let bad = |why| OpenError::Section { id: id as u32, why };
    let e = table
        .iter()
        .find(|e| e.id == id as u32)
        .ok_or(bad("missing"))?;
    let size = std::mem::size_of::<T>();
    if e.elem_size as usize != size {
        return Err(bad("record size differs from this build"));
    }
    let (offset, len) = (e.offset as usize, e.len as usize);
    if offset % ALIGN != 0 || len % size != 0 {
        return Err(bad("misaligned"));
    }
    if offset.checked_add(len).is_none_or(|end| end > bytes.len()) {
        return Err(bad("extends past the end of the file"));
    }
    Ok(Sec {
        offset,
        count: len / size,
    })
}

/// Counts of what a snapshot holds, for `warp inspect` and `warp.stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub generation: u64,
    pub format_version: u32,
    pub created_unix: i64,
    pub file_bytes: u64,
    /// xxh3 of everything after the header, hex: the same data compiles to the same
    /// payload, so two nodes can tell whether they hold the same routing data.
    pub payload_xxh3: String,
    pub customers: usize,
    pub trunks: usize,
    pub vendors: usize,
    pub partitions: usize,
    pub vendor_rate_rows: u64,
    pub customer_rate_rows: u64,
    pub lerg_blocks: usize,
    pub dno_numbers: usize,
    pub lnp_entries: usize,
    /// The DID inventory's numbers assigned to a customer for voice.
    pub assigned_numbers: usize,
    pub overrides: usize,
    pub exclusions: usize,
    /// Networks in the trunks' IP ACLs (a CREDENTIALS trunk's are not compiled in).
    pub acl_networks: usize,
    /// SIP usernames that identify a trunk (an IP_ACL trunk's are not compiled in),
    /// and how many of them have a password hash to be checked against.
    pub credentials: usize,
    pub credentials_with_ha1: usize,
}

/// The header of snapshot `bytes` and its section table, checked (magic, version,
/// length, header checksum); the payload is not.
fn read_header(bytes: &[u8]) -> Result<(Header, &[u8]), OpenError> {
    let header = header_with_magic(bytes)?;
    // Before the rest: what another format says past its version is not to be trusted.
    if header.version != FORMAT_VERSION {
        return Err(OpenError::Version {
            found: header.version,
        });
    }
    sealed(header, bytes)
}

/// As [`read_header`], whatever the format version (see [`any_format`]).
fn read_header_of_any_format(bytes: &[u8]) -> Result<(Header, &[u8]), OpenError> {
    sealed(header_with_magic(bytes)?, bytes)
}

fn header_with_magic(bytes: &[u8]) -> Result<Header, OpenError> {
    if bytes.len() < HEADER_LEN {
        return Err(OpenError::Short {
            actual: bytes.len() as u64,
        });
    }
    let header: Header = bytemuck::pod_read_unaligned(&bytes[..HEADER_LEN]);
    if header.magic != MAGIC {
        return Err(OpenError::BadMagic);
    }
    Ok(header)
}

/// `header` and the section table after it, once its length and checksum check out.
fn sealed(header: Header, bytes: &[u8]) -> Result<(Header, &[u8]), OpenError> {
    if header.file_len != bytes.len() as u64 {
        return Err(OpenError::Length {
            expected: header.file_len,
            actual: bytes.len() as u64,
        });
    }
    let table_end = (header.section_count as usize)
        .checked_mul(ENTRY_LEN)
        .and_then(|t| t.checked_add(HEADER_LEN))
        .filter(|&e| e <= bytes.len())
        .ok_or(OpenError::HeaderChecksum)?;
    let table_bytes = &bytes[HEADER_LEN..table_end];
    if header_hash(&header, table_bytes) != header.header_hash {
        return Err(OpenError::HeaderChecksum);
    }
    Ok((header, table_bytes))
}

/// Maps the snapshot `file` (`path` only names it in errors), refusing a directory and
/// an empty file with errors that say so.
fn map(file: &std::fs::File, path: &Path) -> Result<memmap2::Mmap, OpenError> {
    let name = || path.display().to_string();
    let io = |error| OpenError::Io {
        path: name(),
        error,
    };
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(OpenError::Directory { path: name() });
    }
    if meta.len() == 0 {
        return Err(OpenError::Empty { path: name() });
    }
    // SAFETY: snapshots are published by rename, never modified in place. A file
    // rewritten in place anyway changes (or, truncated, faults) under the mapping:
    // every read stays in bounds and any bytes decode (the engine takes corrupt
    // payloads without panicking), and `rewritten()` tells the caller afterwards.
    unsafe { memmap2::Mmap::map(file) }.map_err(io)
}

/// An open snapshot. Cheap to share across threads (`&Snapshot` is all lookups need).
pub struct Snapshot {
    backing: Backing,
    header: Header,
    sections: Sections,
    meta: Meta,
    tzs: Vec<Tz>,
}

impl Snapshot {
    /// Maps `path` and checks its header, layout and string table: O(sections + names),
    /// not O(size). The payload checksum is [`Snapshot::verify`]'s job.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let file = std::fs::File::open(path).map_err(|error| OpenError::Io {
            path: path.display().to_string(),
            error,
        })?;
        Self::open_file(&file, path)
    }

    /// As [`Snapshot::open`], on a file already open (whose identity the caller may
    /// have checked); `path` only names it in errors.
    pub fn open_file(file: &std::fs::File, path: &Path) -> Result<Self, OpenError> {
        let map = map(file, path)?;
        // A decision reads a few dozen lines scattered over the whole snapshot: with 4 kB
        // pages nearly each is also a TLB miss and a page walk. Where the kernel can
        // (Linux 6.x on ext4/xfs/tmpfs with THP `madvise`), it maps the file with 2 MB
        // pages instead; elsewhere the hint is refused and nothing changes.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Self::from_backing(Backing::Mapped(map))
    }

    /// Opens `path` and verifies the payload checksum: what a reload should use.
    pub fn open_verified(path: &Path) -> Result<Self, OpenError> {
        let s = Self::open(path)?;
        s.verify()?;
        Ok(s)
    }

    /// Opens snapshot bytes held in memory (tests, the API's simulation).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OpenError> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        let s = Self::from_backing(Backing::Owned(words, bytes.len()))?;
        s.verify()?;
        Ok(s)
    }

    fn from_backing(backing: Backing) -> Result<Self, OpenError> {
        let bytes = backing.bytes();
        let (header, table_bytes) = read_header(bytes)?;
        let table: Vec<SectionEntry> = table_bytes
            .chunks_exact(ENTRY_LEN)
            .map(bytemuck::pod_read_unaligned)
            .collect();
        let sections = Sections::locate(bytes, &table)?;
        let mut snap = Snapshot {
            backing,
            header,
            sections,
            meta: bytemuck::Zeroable::zeroed(),
            tzs: Vec::new(),
        };
        // Checked once here so that reading a name never decodes it again.
        std::str::from_utf8(snap.strings()).map_err(|_| OpenError::Section {
            id: SectionId::Strings as u32,
            why: "strings are not UTF-8",
        })?;
        snap.meta = *snap.meta_sec().first().ok_or(OpenError::Section {
            id: SectionId::Meta as u32,
            why: "empty",
        })?;
        snap.tzs = snap
            .tz_names()
            .iter()
            .map(|r| {
                let name = snap.str(*r);
                name.parse::<Tz>()
                    .map_err(|_| OpenError::TimeZone(name.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(snap)
    }

    /// Checks the payload checksum: O(size), a few ms per 100 MB.
    pub fn verify(&self) -> Result<(), OpenError> {
        let table_end = HEADER_LEN + ENTRY_LEN * self.header.section_count as usize;
        if payload_hash(&self.backing.bytes()[table_end..]) != self.header.payload_hash {
            return Err(OpenError::PayloadChecksum);
        }
        Ok(())
    }

    /// The mapped file's bytes, when the snapshot is a mapping: for a process that
    /// guards the range against a file truncated under it.
    pub fn mapping(&self) -> Option<&[u8]> {
        match &self.backing {
            Backing::Mapped(m) => Some(m),
            Backing::Owned(..) => None,
        }
    }

    /// Whether the header no longer reads as it did at open: the file was rewritten
    /// in place (or truncated, or its pages replaced) since, so what was read from it
    /// may be a mix of two files. A rewrite writes the header first, and any other
    /// content changes its payload hash, so a lookup checked after it was made used
    /// the file that was opened.
    pub fn rewritten(&self) -> bool {
        let live = self.backing.bytes().as_ptr().cast::<[u8; HEADER_LEN]>();
        // SAFETY: the backing holds at least a header (checked at open). A volatile
        // read, because the bytes can change under a mapping without this process
        // writing them.
        let live = unsafe { std::ptr::read_volatile(live) };
        live.as_slice() != bytemuck::bytes_of(&self.header)
    }

    pub fn generation(&self) -> u64 {
        self.header.generation
    }

    /// When it was compiled (Unix seconds), or stamped ([`restamp`]).
    pub fn created_unix(&self) -> i64 {
        self.header.created_unix
    }

    /// The payload's checksum: the same routing data compiles to the same payload,
    /// whatever its generation or compile time.
    pub fn payload_hash(&self) -> u64 {
        self.header.payload_hash
    }

    pub fn summary(&self) -> Summary {
        Summary {
            generation: self.header.generation,
            format_version: self.header.version,
            created_unix: self.header.created_unix,
            file_bytes: self.header.file_len,
            payload_xxh3: format!("{:016x}", self.payload_hash()),
            customers: self.customers().len(),
            trunks: self.trunks().len(),
            vendors: self.vendors().len(),
            partitions: self.partitions().len(),
            vendor_rate_rows: self.meta.vendor_rate_rows,
            customer_rate_rows: self.meta.customer_rate_rows,
            lerg_blocks: flatmap::count_keys(self.lerg_map()),
            dno_numbers: flatmap::count_keys(self.dno_set()),
            lnp_entries: flatmap::count_keys(self.lnp_map()),
            assigned_numbers: flatmap::count_keys(self.customer_numbers()),
            overrides: self.overrides().len(),
            exclusions: self.exclusions().len(),
            acl_networks: flatmap::count_keys(self.acl4()) + self.acl6().len(),
            credentials: self.credentials().len(),
            credentials_with_ha1: self.credentials().iter().filter(|c| c.ha1.len > 0).count(),
        }
    }

    /// A section's records. Called several times per routing decision, so it does no
    /// work that `find` already did at open (bytemuck's checked cast divides by the
    /// record size on every call).
    #[inline]
    fn slice<T: Pod>(&self, s: Sec) -> &[T] {
        const { assert!(std::mem::align_of::<T>() <= 8) };
        let bytes = self.backing.bytes();
        // SAFETY: `find` checked at open that `offset + count * size_of::<T>()` lies
        // within these same bytes and that `offset` is a multiple of 64; the backing
        // is 8-byte aligned (a page-aligned mapping or a Vec<u64>), so the records are
        // aligned for T (align <= 8, asserted above). T is Pod: any bytes are a valid T.
        // The bytes do not change while mapped unless the file is rewritten in place,
        // which `rewritten()` catches (see `open_file`).
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().add(s.offset).cast::<T>(), s.count) }
    }

    #[inline]
    fn bytes(&self, r: StrRef) -> &[u8] {
        let s = r.off as usize;
        self.strings()
            .get(s..s.saturating_add(r.len as usize))
            .unwrap_or(&[])
    }

    /// A string of the snapshot; "" if its reference is out of bounds or splits a
    /// character.
    #[inline]
    fn str(&self, r: StrRef) -> &str {
        // SAFETY: `from_backing` refused any snapshot whose strings section is not
        // UTF-8, and the bytes never change while mapped (snapshots are replaced by
        // rename). `get` below still checks bounds and character boundaries.
        let all = unsafe { std::str::from_utf8_unchecked(self.strings()) };
        let s = r.off as usize;
        all.get(s..s.saturating_add(r.len as usize)).unwrap_or("")
    }

    /// Is `number` (E.164 digits value) on the Do-Not-Originate list?
    #[inline]
    pub fn is_dno(&self, number: crate::Number) -> bool {
        flatmap::get(self.dno_set(), number.value()).is_some()
    }

    /// Is `number` (E.164 digits value) assigned to customer `ban` for voice? What
    /// full attestation (STIR/SHAKEN "A") asks of a call's calling number.
    #[inline]
    pub fn is_assigned(&self, number: crate::Number, ban: &str) -> bool {
        flatmap::get(self.customer_numbers(), number.value())
            .and_then(|i| self.customers().get(usize::try_from(i).ok()?))
            .is_some_and(|c| self.bytes(c.ban) == ban.as_bytes())
    }

    /// The LRN a NANP number is ported to, from the snapshot's LNP table.
    #[inline]
    pub fn lnp(&self, number: crate::Number) -> Option<crate::Number> {
        let lrn = flatmap::get(self.lnp_map(), number.value())?;
        crate::Number::from_value(lrn)
    }

    /// Every trunk, in the snapshot's order.
    pub fn all_trunks(&self) -> impl Iterator<Item = TrunkView<'_>> + '_ {
        (0..self.trunks().len() as u32).filter_map(|i| self.trunk(i))
    }

    /// The trunk whose id is `id` (the trunks are sorted by id).
    pub fn trunk_by_id(&self, id: &str) -> Option<TrunkView<'_>> {
        let trunks = self.trunks();
        let i = trunks
            .binary_search_by(|t| self.bytes(t.id).cmp(id.as_bytes()))
            .ok()?;
        self.trunk(i as u32)
    }

    /// The vendor whose id is `id` (the vendors are sorted by id, as the trunks are).
    pub fn vendor_by_id(&self, id: &str) -> Option<VendorView<'_>> {
        let vendors = self.vendors();
        let i = vendors
            .binary_search_by(|v| self.bytes(v.id).cmp(id.as_bytes()))
            .ok()?;
        let v = &vendors[i];
        Some(VendorView {
            id: self.str(v.id),
            keepalive: v.keepalive != 0,
        })
    }

    /// The trunk whose IP ACL holds `ip` (longest prefix wins). An IPv4 peer that a
    /// dual-stack socket reports as IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is that IPv4
    /// address: the IPv4 ACLs are searched first.
    pub fn trunk_by_ip(&self, ip: IpAddr) -> Option<TrunkView<'_>> {
        self.trunk(self.acl_holders(ip).next()?)
    }

    /// Does `trunk`'s own ACL hold `ip` (whichever trunk a longer prefix names)?
    pub fn acl_holds(&self, trunk: &TrunkView<'_>, ip: IpAddr) -> bool {
        self.acl_holders(ip).any(|t| t == trunk.index)
    }

    /// The trunks whose ACL holds `ip`, longest prefix first.
    fn acl_holders(&self, ip: IpAddr) -> impl Iterator<Item = u32> + '_ {
        let v4 = match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        let by_v4 = v4.into_iter().flat_map(move |a| {
            let a = u32::from(a);
            (0..=32u32)
                .rev()
                .filter(|l| self.meta.acl4_lengths & (1 << l) != 0)
                .filter_map(move |l| flatmap::get(self.acl4(), acl4_key(a, l)))
                .map(|t| t as u32)
        });
        let v6 = match ip {
            IpAddr::V6(a) => Some(u128::from(a)),
            IpAddr::V4(_) => None,
        };
        let by_v6 = v6.into_iter().flat_map(move |a| {
            self.acl6()
                .iter()
                .filter(move |e| {
                    let mask = crate::model::IpNet::mask6(e.len);
                    a & mask == u128::from_be_bytes(e.addr) & mask
                })
                .map(|e| e.trunk)
        });
        by_v4.chain(by_v6)
    }

    /// The trunk an authenticated SIP username belongs to, when its auth type asks for
    /// credentials (an IP_ACL trunk's usernames are not in the snapshot).
    pub fn trunk_by_username(&self, username: &str) -> Option<TrunkView<'_>> {
        Some(self.credential(username)?.trunk)
    }

    /// The credentials named `username`, of a trunk whose auth type asks for them.
    pub fn credential(&self, username: &str) -> Option<CredentialView<'_>> {
        // Usernames are made by customers: one whose hash matches another's finds its
        // own record, never locks the other out.
        let c = flatmap::get_all(self.credential_map(), flatmap::name_key(username))
            .filter_map(|i| self.credentials().get(i as usize))
            .find(|c| self.str(c.username) == username)?;
        let ha1 = self.str(c.ha1);
        Some(CredentialView {
            trunk: self.trunk(c.trunk)?,
            realm: self.str(c.realm),
            ha1: (!ha1.is_empty()).then_some(ha1),
        })
    }

    fn trunk(&self, idx: u32) -> Option<TrunkView<'_>> {
        let t = self.trunks().get(idx as usize)?;
        let c = self.customers().get(t.customer as usize)?;
        Some(TrunkView {
            id: self.str(t.id),
            ban: self.str(c.ban),
            index: idx,
            max_concurrent: t.max_concurrent,
            max_cps: t.max_cps,
            enabled: t.enabled != 0,
            keepalive: t.keepalive_off == 0,
            // Out of range only in a file the checksum missed: ask for everything.
            auth: TrunkAuth::from_index(t.auth as u8).unwrap_or(TrunkAuth::IpAndCredentials),
        })
    }

    fn customer_index(&self, ban: &str) -> Option<usize> {
        flatmap::get_all(self.customer_map(), flatmap::name_key(ban))
            .map(|i| i as usize)
            .find(|&i| {
                self.customers()
                    .get(i)
                    .is_some_and(|c| self.bytes(c.ban) == ban.as_bytes())
            })
    }

    /// LERG facts for a NANP number: its thousands block if listed, else its NPA-NXX.
    pub fn lerg_lookup(&self, n: crate::Number) -> Option<LergInfo<'_>> {
        let map = self.lerg_map();
        let code = flatmap::find(map, lerg_key(n.npa_nxx()?, 6));
        // Only codes split into thousands blocks (or not listed at all) need a second probe.
        let slot = match code {
            Some(c) if c.rec.pooled == 0 => c,
            _ => flatmap::find(map, lerg_key(n.npa_nxx_x()?, 7)).or(code)?,
        };
        let r = &slot.rec;
        Some(LergInfo {
            ocn: r.ocn,
            lata: r.lata,
            state: r.state,
            rate_center: r.rate_center,
            ocn_lata_rows: slot.ocn_lata_rows,
            names: RateCenterNames(self),
        })
    }

    /// A rate centre's `STATE/NAME` key.
    fn rate_center_key(&self, rate_center: u32) -> &[u8] {
        self.rate_centers()
            .get(rate_center as usize)
            .map_or(&[], |s| self.bytes(*s))
    }

    fn is_local(&self, a: u32, b: u32) -> bool {
        flatmap::get(self.local_set(), local_key(a, b)).is_some()
    }

    /// Starts loading what `is_local(a, b)` will read.
    fn prefetch_local(&self, a: u32, b: u32) {
        if a != b {
            flatmap::prefetch(self.local_set(), local_key(a, b));
        }
    }
}

/// The local-calling set's key of two rate centres, in either order.
fn local_key(a: u32, b: u32) -> u64 {
    (a.min(b) as u64) << 32 | a.max(b) as u64
}

/// A trunk as the SIP path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkView<'a> {
    pub id: &'a str,
    pub ban: &'a str,
    /// Stable within one snapshot generation: shared counters index by it.
    pub index: u32,
    pub max_concurrent: u32,
    pub max_cps: u32,
    pub enabled: bool,
    /// See [`crate::model::Trunk::keepalive`].
    pub keepalive: bool,
    pub auth: TrunkAuth,
}

/// A vendor as the SIP path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorView<'a> {
    pub id: &'a str,
    /// See [`crate::model::Vendor::keepalive`].
    pub keepalive: bool,
}

/// A trunk's digest credentials, as the edge checks them.
#[derive(Debug, Clone, Copy)]
pub struct CredentialView<'a> {
    pub trunk: TrunkView<'a>,
    pub realm: &'a str,
    /// md5(username:realm:password) in lowercase hex; none until a password is set.
    pub ha1: Option<&'a str>,
}
