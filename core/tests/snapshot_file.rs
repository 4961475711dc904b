//! The snapshot as a file: atomic publish, zero-copy open, and refusal of anything
//! corrupt, truncated or of another format version.

use std::path::Path;
use warp_core::dataset::{read_dir, write_dir};
use warp_core::snapshot::{compile, format, publish, OpenError, RouteRequest, Snapshot};

fn fixture_bytes(generation: u64) -> Vec<u8> {
    let d = read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture")).unwrap();
    compile(&d, generation).unwrap()
}

fn write(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join("routing.snap");
    std::fs::write(&p, bytes).unwrap();
    p
}

fn sample(s: &Snapshot) -> String {
    let at = "2026-03-04T15:00:00Z".parse().unwrap();
    let r = RouteRequest::new("C1", Some("3036291111"), "2125550000", at);
    format!(
        "{:?}",
        s.route(&r)
            .map(|d| d.routes.iter().map(|r| r.vendor_id).collect::<Vec<_>>())
    )
}

#[test]
fn publish_then_open_maps_the_same_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture_bytes(7);
    let path = dir.path().join("sub/routing.snap");
    publish(&bytes, &path).unwrap();
    let mapped = Snapshot::open_verified(&path).unwrap();
    let owned = Snapshot::from_bytes(&bytes).unwrap();
    assert_eq!(mapped.generation(), 7);
    assert_eq!(sample(&mapped), sample(&owned));
    assert_eq!(sample(&mapped), r#"Ok(["VA", "VD"])"#);
    let sum = mapped.summary();
    assert_eq!(
        (
            sum.customers,
            sum.vendors,
            sum.lerg_blocks,
            sum.dno_numbers,
            sum.lnp_entries
        ),
        (3, 6, 5, 1, 1)
    );
    // T1's 127.0.0.1 and 10.1.0.0/16, T2's /24, T3's IPv6 /32; T1's username, no hash.
    assert_eq!(
        (sum.acl_networks, sum.credentials, sum.credentials_with_ha1),
        (4, 1, 0)
    );
    // Publishing a new generation replaces the file; the old mapping keeps serving.
    publish(&fixture_bytes(8), &path).unwrap();
    assert_eq!(Snapshot::open(&path).unwrap().generation(), 8);
    assert_eq!(mapped.generation(), 7);
    assert_eq!(sample(&mapped), r#"Ok(["VA", "VD"])"#);
    // Readable by the SIP nodes' user in the publisher's group, by no one else: it
    // carries the trunks' password hashes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
    // No temp files left behind.
    assert_eq!(
        std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
        1
    );
}

/// A publish that fails at the rename (here: a directory is in the way) leaves the
/// directory as it found it, without its temp file.
#[test]
fn a_failed_publish_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.snap");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("keep"), b"x").unwrap();
    assert!(publish(&fixture_bytes(1), &path).is_err());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["routing.snap"]);
}

/// A publisher killed mid-write leaves its temp file; the next publish to the same path
/// removes it, but not a temp file another publisher still holds, nor one just made,
/// nor anything else in the directory.
#[test]
fn a_publish_removes_the_temp_files_killed_publishers_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.snap");
    let made = |name: &str, age_secs: u64| {
        let f = std::fs::File::create(dir.path().join(name)).unwrap();
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
        f.set_modified(then).unwrap();
        f
    };
    drop(made(".routing.snap.dead01.part", 3600));
    let writing = made(".routing.snap.busy01.part", 3600);
    writing.lock().unwrap();
    drop(made(".routing.snap.new001.part", 0));
    drop(made(".other.snap.dead02.part", 3600));
    drop(made(".tmpAbC123", 3600));
    publish(&fixture_bytes(1), &path).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".other.snap.dead02.part",
            ".routing.snap.busy01.part",
            ".routing.snap.new001.part",
            ".tmpAbC123",
            "routing.snap"
        ]
    );
    assert_eq!(Snapshot::open(&path).unwrap().generation(), 1);
}

#[test]
fn truncated_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture_bytes(1);
    for cut in [format::HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
        let p = write(dir.path(), &bytes[..cut]);
        let e = Snapshot::open(&p)
            .err()
            .unwrap_or_else(|| panic!("cut at {cut} opened"));
        assert!(matches!(e, OpenError::Length { .. }), "cut at {cut}: {e}");
    }
    // Shorter than a header: no header to quote.
    let p = write(dir.path(), &bytes[..10]);
    let e = Snapshot::open(&p).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "10 bytes is less than a snapshot header ({}): not a snapshot, or cut short",
            format::HEADER_LEN
        )
    );
    let p = write(dir.path(), &[]);
    assert!(matches!(Snapshot::open(&p), Err(OpenError::Empty { .. })));
}

#[test]
fn wrong_magic_and_version_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = fixture_bytes(1);
    bytes[8] = 99; // version field
    assert!(matches!(
        Snapshot::open(&write(dir.path(), &bytes)),
        Err(OpenError::Version { found: 99 })
    ));
    bytes[0] = b'X';
    assert!(matches!(
        Snapshot::open(&write(dir.path(), &bytes)),
        Err(OpenError::BadMagic)
    ));
    let e = Snapshot::open(&dir.path().join("missing.snap"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("missing.snap"), "{e}");
}

#[test]
fn any_flipped_byte_is_caught_by_open_or_verify() {
    let dir = tempfile::tempdir().unwrap();
    let good = fixture_bytes(1);
    // Every byte of the header and table, then a stride through the payload.
    let table_end = format::HEADER_LEN + 64 * format::ENTRY_LEN;
    let positions = (0..table_end.min(good.len())).chain((table_end..good.len()).step_by(97));
    for pos in positions {
        let mut bad = good.clone();
        bad[pos] ^= 0x5a;
        let p = write(dir.path(), &bad);
        let refused = Snapshot::open(&p).and_then(|s| s.verify()).is_err();
        // Padding between sections is outside every section but inside the payload hash.
        assert!(refused, "flip at byte {pos} went unnoticed");
    }
}

#[test]
fn corrupt_payload_never_panics_even_unverified() {
    // A worker that skipped verify() must still never crash on a damaged mapping.
    let good = fixture_bytes(1);
    let table_end = format::HEADER_LEN + 64 * format::ENTRY_LEN;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        let mut bad = good.clone();
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let pos = table_end + (seed as usize) % (bad.len() - table_end);
            bad[pos] = (seed >> 32) as u8;
        }
        let dir = tempfile::tempdir().unwrap();
        if let Ok(s) = Snapshot::open(&write(dir.path(), &bad)) {
            let _ = sample(&s);
            let _ = s.trunk_by_ip("127.0.0.1".parse().unwrap());
            let _ = s.summary();
        }
    }
}

/// A file rewritten in place under a mapping (`cp`, `scp` onto the served path) is
/// noticed after the fact, and what the engine read from it meanwhile cannot crash it.
#[test]
fn a_file_rewritten_in_place_is_noticed_and_read_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Compiled once: each compile stamps its second into the header.
    let first = fixture_bytes(1);
    let path = write(dir.path(), &first);
    let s = Snapshot::open(&path).unwrap();
    assert!(!s.rewritten());
    assert_eq!(s.mapping().map(<[u8]>::len), Some(first.len()));
    assert!(Snapshot::from_bytes(&first).unwrap().mapping().is_none());

    // The same bytes again: nothing changed that matters.
    std::fs::write(&path, &first).unwrap();
    assert!(!s.rewritten());
    assert_eq!(sample(&s), r#"Ok(["VA", "VD"])"#);

    // Another generation of the same length, then zeros (what a process that guards
    // the mapping sees once a truncated page faulted): both noticed, neither panics.
    let next = fixture_bytes(2);
    assert_eq!(next.len(), first.len());
    std::fs::write(&path, &next).unwrap();
    assert!(s.rewritten());
    std::fs::write(&path, vec![0u8; next.len()]).unwrap();
    assert!(s.rewritten());
    let _ = sample(&s);
    let _ = s.trunk_by_ip("127.0.0.1".parse().unwrap());
    let _ = s.is_dno(warp_core::Number::parse("3036291111").unwrap());
}

/// The same data compiles to the same payload whatever order its rows come in (files
/// and the database list them differently, and a map's order is random per process),
/// so two nodes can compare their snapshots by `payload_xxh3`.
#[test]
fn the_same_data_compiles_to_the_same_payload() {
    let d = read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture")).unwrap();
    let payload = |d| {
        Snapshot::from_bytes(&compile(d, 1).unwrap())
            .unwrap()
            .summary()
            .payload_xxh3
    };
    let mut shuffled = d.clone();
    shuffled.partitions.reverse();
    shuffled.lnp.reverse();
    shuffled.dno.reverse();
    shuffled.vendor_rates.reverse();
    shuffled.customer_rates.reverse();
    shuffled.lerg.reverse();
    shuffled.customers.reverse();
    shuffled.trunks.reverse();
    shuffled.exclusions.reverse();
    let first = payload(&d);
    for _ in 0..5 {
        assert_eq!(payload(&d), first);
    }
    assert_eq!(payload(&shuffled), first);
}

/// One owner's rows for one key may not overlap in time (the rule the database import
/// and the API keep): a dataset from files that breaks it is refused, naming the owner.
#[test]
fn overlapping_rate_rows_are_refused() {
    let d = read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture")).unwrap();
    let open_ended = d
        .vendor_rates
        .iter()
        .find(|r| r.effective_to.is_none())
        .unwrap()
        .clone();
    let mut later = open_ended.clone();
    later.effective_from += chrono::Duration::days(30);
    let mut bad = d.clone();
    bad.vendor_rates.push(later.clone());
    let err = compile(&bad, 1).map(drop).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: the rate rows for one key from ",
            open_ended.owner
        )) && err.ends_with("overlap in time"),
        "{err}"
    );
    // Closed where the next one starts: no overlap.
    let mut fine = d.clone();
    let closed = fine
        .vendor_rates
        .iter_mut()
        .find(|r| **r == open_ended)
        .unwrap();
    closed.effective_to = Some(later.effective_from);
    fine.vendor_rates.push(later);
    assert!(compile(&fine, 1).is_ok());
}

#[test]
fn csv_round_trip_keeps_every_decision() {
    let dir = tempfile::tempdir().unwrap();
    let d = read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture")).unwrap();
    write_dir(&d, dir.path()).unwrap();
    let again = read_dir(dir.path()).unwrap();
    assert_eq!(again, d);
    assert_eq!(
        sample(&Snapshot::from_bytes(&compile(&again, 1).unwrap()).unwrap()),
        sample(&Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap())
    );
}

#[test]
fn ids_and_dialstrings_that_would_break_a_call_record_or_a_request_uri_are_refused() {
    let good = read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture")).unwrap();
    let refused = |edit: &dyn Fn(&mut warp_core::model::Dataset)| {
        let mut d = good.clone();
        edit(&mut d);
        compile(&d, 1).map(drop).unwrap_err().to_string()
    };
    let e = refused(&|d| d.vendors[0].id = "V\t1".into());
    assert!(e.contains("vendor_id \"V\\t1\""), "{e}");
    let e = refused(&|d| d.trunks[0].id = "T".repeat(129));
    assert!(e.contains("1 to 128 bytes"), "{e}");
    let e = refused(&|d| d.customers[0].ban = "C1\r\nX".into());
    assert!(e.contains("customer BAN"), "{e}");
    let e = refused(&|d| d.vendors[0].gateways[0] = "sip:{number}@gw\r\nX-Evil: 1".into());
    assert!(e.contains("without spaces or control characters"), "{e}");
    let e = refused(&|d| d.vendors[0].gateways[0] = format!("sip:{}@gw", "9".repeat(260)));
    assert!(e.contains("at most 255 bytes"), "{e}");
    let e = refused(&|d| d.vendors[0].gateways[0] = "tel:+1{number}".into());
    assert!(e.contains("not a sip: or sips: URI"), "{e}");
    assert!(compile(&good, 1).is_ok());
}
