//! A real compiled snapshot damaged every way a disk, a copy or a writer bug can damage
//! it: every header and section-table bit, bits through the payload, every truncation
//! up to past the section table and samples beyond, and section tables that pass the
//! header checksum but lie (so the bounds checks themselves are exercised, not only the
//! hash in front of them). Each is refused, or (payload damage, unverified open, as
//! `Snapshot::open` documents) routes without panicking.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::OnceLock;
use warp_core::model::Dataset;
use warp_core::snapshot::format::{self, Header, SectionEntry, ENTRY_LEN, HEADER_LEN};
use warp_core::snapshot::{compile, OpenError, RouteRequest, Snapshot};
use warp_datagen::{generate, sample_calls, Scale};

struct Fixture {
    d: Dataset,
    bytes: Vec<u8>,
    calls: Vec<(String, String, String)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let d = generate(Scale::SMALL, 7);
        let bytes = compile(&d, 42).unwrap();
        let calls = sample_calls(&d, 60, 7);
        Fixture { d, bytes, calls }
    })
}

fn header(bytes: &[u8]) -> Header {
    bytemuck::pod_read_unaligned(&bytes[..HEADER_LEN])
}

fn table_end(bytes: &[u8]) -> usize {
    HEADER_LEN + ENTRY_LEN * header(bytes).section_count as usize
}

fn table(bytes: &[u8]) -> Vec<SectionEntry> {
    bytes[HEADER_LEN..table_end(bytes)]
        .chunks_exact(ENTRY_LEN)
        .map(bytemuck::pod_read_unaligned)
        .collect()
}

/// Everything a SIP node asks a snapshot; returns how many calls got routes.
fn exercise(s: &Snapshot) -> usize {
    let f = fixture();
    let at = "2026-03-04T15:00:00Z".parse().unwrap();
    let mut routed = 0;
    for (ban, ani, dnis) in &f.calls {
        let _ = s.screen(ban, Some(ani), dnis);
        if let Ok(d) = s.route(&RouteRequest::new(ban, Some(ani), dnis, at)) {
            routed += 1;
            for r in &d.routes {
                let _ = r.dialstrings.iter().count();
            }
            let _ = d.terminating.map(|t| t.rate_center_name());
        }
    }
    for t in f.d.trunks.iter().take(20) {
        for net in &t.acl {
            if let Some(trunk) = s.trunk_by_ip(net.addr) {
                let _ = s.acl_holds(&trunk, net.addr);
            }
        }
        for c in &t.credentials {
            let _ = s.credential(&c.username);
        }
    }
    let _ = s.summary();
    routed
}

/// The file at `path`, opened without and with verification.
fn open_both(path: &Path) -> (Result<Snapshot, OpenError>, Result<Snapshot, OpenError>) {
    (Snapshot::open(path), Snapshot::open_verified(path))
}

#[test]
fn the_undamaged_snapshot_opens_and_routes() {
    let f = fixture();
    let (_dir, path) = written(&f.bytes);
    let s = Snapshot::open_verified(&path).unwrap();
    assert_eq!(s.generation(), 42);
    // Enough routes that damage has something to break.
    assert!(exercise(&s) > f.calls.len() / 3);
}

#[test]
fn every_header_and_table_bit_flip_is_refused_by_the_fast_open() {
    let f = fixture();
    let (_dir, path) = written(&f.bytes);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Pad after the table too: outside every section, inside the payload checksum.
    for pos in 0..format::pad_to_align(table_end(&f.bytes)) {
        for bit in 0..8 {
            file.write_at(&[f.bytes[pos] ^ (1 << bit)], pos as u64)
                .unwrap();
            let (fast, verified) = open_both(&path);
            assert!(
                verified.is_err(),
                "bit {bit} of byte {pos} passed open_verified"
            );
            if pos < table_end(&f.bytes) {
                assert!(fast.is_err(), "bit {bit} of byte {pos} passed open");
            }
            drop(fast);
            file.write_at(&f.bytes[pos..=pos], pos as u64).unwrap();
        }
    }
    assert!(Snapshot::open_verified(&path).is_ok());
}

#[test]
fn payload_bit_flips_are_refused_verified_and_route_without_panic_unverified() {
    let f = fixture();
    let (_dir, path) = written(&f.bytes);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // In every section: its first and last byte and a dozen between (an odd stride
    // shifts them through its records' fields), and the padding before the first.
    let mut positions = vec![table_end(&f.bytes), f.bytes.len() - 1];
    for e in table(&f.bytes).iter().filter(|e| e.len > 0) {
        let (offset, len) = (e.offset as usize, e.len as usize);
        positions.extend((0..len).step_by((len / 12).max(1) | 1).map(|p| offset + p));
        positions.push(offset + len - 1);
    }
    for (i, pos) in positions.into_iter().enumerate() {
        let bit = i % 8;
        file.write_at(&[f.bytes[pos] ^ (1 << bit)], pos as u64)
            .unwrap();
        let (fast, verified) = open_both(&path);
        assert!(
            verified.is_err(),
            "bit {bit} of payload byte {pos} passed open_verified"
        );
        if let Ok(s) = fast {
            assert!(s.verify().is_err());
            exercise(&s);
        }
        file.write_at(&f.bytes[pos..=pos], pos as u64).unwrap();
    }
}

#[test]
fn every_truncation_and_any_extension_is_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.snap");
    let len = f.bytes.len();
    let cuts = (0..=format::pad_to_align(table_end(&f.bytes)) + 64)
        .chain((0..len).step_by(len / 97))
        .chain(len - 64..len);
    for cut in cuts {
        std::fs::write(&path, &f.bytes[..cut]).unwrap();
        let (fast, verified) = open_both(&path);
        assert!(fast.is_err(), "{cut} of {len} bytes opened");
        assert!(verified.is_err());
        assert!(Snapshot::from_bytes(&f.bytes[..cut]).is_err());
    }
    for extra in [1, 63, 64, 4096] {
        let mut longer = f.bytes.clone();
        longer.resize(len + extra, 0);
        std::fs::write(&path, &longer).unwrap();
        assert!(matches!(
            Snapshot::open(&path),
            Err(OpenError::Length { .. })
        ));
    }
    for fill in [0u8, 0xff] {
        std::fs::write(&path, vec![fill; len]).unwrap();
        assert!(matches!(Snapshot::open(&path), Err(OpenError::BadMagic)));
    }
}

/// A change to a header and its section table.
type Edit<'a> = dyn Fn(&mut Header, &mut Vec<SectionEntry>) + 'a;

/// Signs `bytes` as the writer would after `edit` changed its header or table: the
/// header checksum matches, so what is refused is refused by the layout checks.
fn resigned(edit: impl FnOnce(&mut Header, &mut Vec<SectionEntry>)) -> Vec<u8> {
    let mut bytes = fixture().bytes.clone();
    let mut h = header(&bytes);
    let end = table_end(&bytes);
    let mut table = table(&bytes);
    edit(&mut h, &mut table);
    bytes[HEADER_LEN..end].copy_from_slice(bytemuck::cast_slice(&table));
    // As far as the edited count says, within the file.
    let end = (HEADER_LEN + ENTRY_LEN * h.section_count as usize).min(bytes.len());
    h.payload_hash = format::payload_hash(&bytes[end..]);
    h.header_hash = format::header_hash(&h, &bytes[HEADER_LEN..end]);
    bytes[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&h));
    bytes
}

/// `bytes` as a snapshot file in a directory of its own (removed when dropped).
fn written(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.snap");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn open_written(bytes: &[u8]) -> Result<Snapshot, OpenError> {
    let (_dir, path) = written(bytes);
    let fast = Snapshot::open(&path);
    // Mapped and in memory agree.
    assert_eq!(
        fast.as_ref().err().map(ToString::to_string),
        Snapshot::from_bytes(bytes).err().map(|e| e.to_string())
    );
    fast
}

#[test]
fn a_signed_header_with_lying_counts_is_refused() {
    let len = fixture().bytes.len() as u64;
    let refused = |what: &str, edit: &Edit<'_>| {
        let e = open_written(&resigned(edit))
            .err()
            .unwrap_or_else(|| panic!("{what}: opened"));
        e.to_string()
    };
    let e = refused("a table past the end", &|h, _| h.section_count = u32::MAX);
    assert!(e.contains("checksum"), "{e}");
    let e = refused("no sections", &|h, _| h.section_count = 0);
    assert!(e.contains("missing"), "{e}");
    let e = refused("future version", &|h, _| h.version += 1);
    assert!(e.contains("version"), "{e}");
    let e = refused("longer file", &|h, _| h.file_len += 64);
    assert!(e.contains("truncated or padded"), "{e}");
    for i in 0..table(&fixture().bytes).len() {
        let at = |what: &str| format!("{what} of entry {i}");
        // Whole records, at least 64 bytes of them.
        let records = |e: &SectionEntry| e.elem_size as u64 * 64;
        let e = refused(&at("offset at the end"), &|_, t| {
            t[i].offset = len;
            t[i].len = records(&t[i]);
        });
        assert!(e.contains("extends past the end"), "{e}");
        let e = refused(&at("offset + len wrapping"), &|_, t| {
            t[i].offset = u64::MAX - 63;
            t[i].len = records(&t[i]);
        });
        assert!(e.contains("extends past the end"), "{e}");
        let e = refused(&at("huge len"), &|_, t| {
            t[i].len = (u64::MAX / t[i].elem_size as u64) * t[i].elem_size as u64;
        });
        assert!(e.contains("extends past the end"), "{e}");
        let e = refused(&at("misaligned offset"), &|_, t| t[i].offset += 1);
        assert!(e.contains("misaligned"), "{e}");
        let e = refused(&at("record size"), &|_, t| t[i].elem_size += 1);
        assert!(e.contains("record size"), "{e}");
        let e = refused(&at("unknown id"), &|_, t| t[i].id = 999);
        assert!(e.contains("missing"), "{e}");
    }
}

#[test]
fn a_signed_header_with_odd_but_bounded_sections_routes_without_panic() {
    let n = table(&fixture().bytes).len();
    let len = fixture().bytes.len() as u64;
    // An entry more: what follows the table read as one, and ignored.
    if let Ok(s) = open_written(&resigned(|h, _| h.section_count += 1)) {
        exercise(&s);
    }
    let mut opened = 0;
    for i in 0..n {
        let edits: [&Edit<'_>; 4] = [
            // Empty.
            &|_, t| t[i].len = 0,
            // Over the header and the table.
            &|_, t| t[i].offset = 0,
            // On top of the next section.
            &|_, t| t[i].offset = t[(i + 1) % t.len()].offset,
            // Up to the end of the file.
            &|_, t| {
                let size = t[i].elem_size as u64;
                t[i].len = (len - t[i].offset) / size * size;
            },
        ];
        for edit in edits {
            if let Ok(s) = open_written(&resigned(edit)) {
                exercise(&s);
                opened += 1;
            }
        }
    }
    // Most of them pass the layout checks: the engine itself met them.
    assert!(opened > n * 3, "only {opened} opened");
    for generation in [0, u64::MAX] {
        let s = open_written(&resigned(|h, _| h.generation = generation)).unwrap();
        assert_eq!(s.generation(), generation);
    }
}
