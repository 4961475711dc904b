//! The snapshot's on-disk layout: a header, a section table, then 64-byte aligned
//! sections of fixed-size little-endian records.
//!
//! ```text
//! Header (64 B) | SectionEntry × n | pad | section 0 | pad | section 1 | …
//! ```
//! `header_hash` covers the header (with that field zeroed) and the section table, so
//! opening checks them in O(sections); `payload_hash` covers every byte after the table
//! and is checked by [`super::Snapshot::verify`].
//!
//! The header and section table are the same in every format version (the version says
//! how to read the sections), so a file of another format can still be named and served
//! ([`super::header_of_any_format`]): a new format changes sections, never these.

use bytemuck::{Pod, Zeroable};
use xxhash_rust::xxh3::xxh3_64;

pub const MAGIC: [u8; 8] = *b"WARPSNAP";
/// 6: a vendor's `keepalive` ([`super::records::VendorRec`]).
pub const FORMAT_VERSION: u32 = 6;
pub const ALIGN: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub section_count: u32,
    pub generation: u64,
    pub created_unix: i64,
    pub file_len: u64,
    pub payload_hash: u64,
    pub header_hash: u64,
    pub _reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct SectionEntry {
    pub id: u32,
    pub elem_size: u32,
    pub offset: u64,
    pub len: u64,
}

pub const HEADER_LEN: usize = std::mem::size_of::<Header>();
pub const ENTRY_LEN: usize = std::mem::size_of::<SectionEntry>();

/// Hash of the header (its `header_hash` zeroed) followed by the section table.
pub fn header_hash(header: &Header, table: &[u8]) -> u64 {
    let mut h = *header;
    h.header_hash = 0;
    let mut buf = Vec::with_capacity(HEADER_LEN + table.len());
    buf.extend_from_slice(bytemuck::bytes_of(&h));
    buf.extend_from_slice(table);
    xxh3_64(&buf)
}

pub fn payload_hash(payload: &[u8]) -> u64 {
    xxh3_64(payload)
}

pub fn pad_to_align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}
