//! Bad CSV rows are reported by file and line, and nothing is half-loaded.

use std::path::Path;
use warp_core::dataset::{read_dir, DatasetError};

fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

fn append(dir: &Path, file: &str, lines: &str) {
    let p = dir.join(file);
    let mut s = std::fs::read_to_string(&p).unwrap();
    s.push_str(lines);
    std::fs::write(p, s).unwrap();
}

fn errors(dir: &Path) -> Vec<String> {
    match read_dir(dir) {
        Err(DatasetError::Rows(rows)) => rows.iter().map(|r| r.to_string()).collect(),
        other => panic!("expected row errors, got {other:?}"),
    }
}

#[test]
fn every_bad_rate_row_is_listed_with_its_line() {
    let dir = fixture_copy();
    // The fixture's vendor_rates.csv has a header and 15 rows: new rows start at line 17.
    append(
        dir.path(),
        "vendor_rates.csv",
        "VA,1404,,,2025-01-01,,0.01,0.01,0.01,,,,6,6,,\n\
         VA,14x5,,,2025-01-01,,0.01,,,,,,6,6,,\n\
         VZ,1404,,,2025-01-01,,0.01,,,,,,6,6,,\n\
         VA,1405,,,2025-13-01,,0.01,,,,,,6,6,,\n\
         VA,1406,,,2025-01-01,,-0.01,,,,,,6,6,,\n\
         VA,1407,,,2025-01-01,,0.0000000001,,,,,,6,6,,\n\
         VA,1408,,,2025-01-01,,,,,,,,6,6,,\n\
         VA,1409,,,2025-01-01,2024-01-01,0.01,,,,,,6,6,,\n\
         VA,1410,,,2025-01-01,,0.01,,,,,,0,6,,\n\
         VC,1411,,,2025-01-01,,0.01,,,,,,6,6,,\n\
         VA,1412,,,2025-01-01\n",
    );
    let e = errors(dir.path());
    let lines: Vec<&str> = e.iter().map(|s| s.split(": ").next().unwrap()).collect();
    assert_eq!(
        lines,
        (18..=27)
            .map(|l| format!("vendor_rates.csv:{l}"))
            .collect::<Vec<_>>(),
        "{e:#?}"
    );
    let text = e.join("\n");
    for needle in [
        "invalid character 'x'",
        "unknown vendor_id \"VZ\"",
        "effective_from",
        "negative",
        "more than 9 decimal places",
        "no rate in any zone",
        "effective_to is not after effective_from",
        "at least 1 second",
        "OCN_LATA",
        "found record with 5 fields",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn references_between_files_are_checked() {
    let dir = fixture_copy();
    append(dir.path(), "partition_routes.csv", "P9,VA\nP1,VQ\nP1,VA\n");
    append(
        dir.path(),
        "customers.csv",
        "C9,Nine,NOPLAN,0,,5,true\nC1,Dup,PLAN1,0,,5,true\n",
    );
    append(
        dir.path(),
        "trunk_ips.csv",
        "T1,10.1.2.0/24\nT2,300.1.1.1\n",
    );
    append(
        dir.path(),
        "customer_partitions.csv",
        "C1,P1,1,,,Mars/Olympus,,,\nC1,P1,1,,,UTC,Funday,,\nC1,P1,1,,,UTC,Mon,24:00,\n",
    );
    append(dir.path(), "lnp.csv", "+12125550000,+442079460000\n");
    let e = errors(dir.path()).join("\n");
    for needle in [
        "partition_routes.csv:9: unknown partition_id \"P9\"",
        "partition_routes.csv:10: unknown vendor_id \"VQ\"",
        "partition_routes.csv:11: vendor VA is already in partition P1",
        "customers.csv:5: unknown rate_plan \"NOPLAN\"",
        "customers.csv:6: duplicate ban \"C1\"",
        "trunk_ips.csv:6: 10.1.2.0/24 is already assigned",
        "trunk_ips.csv:7: bad IP address",
        "customer_partitions.csv:6: tz",
        "customer_partitions.csv:7: unknown day",
        "customer_partitions.csv:8: window start 1440 min is not a time of day",
        "lnp.csv:3: LNP entries are NANP numbers",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
}

#[test]
fn a_missing_required_file_is_named() {
    let dir = fixture_copy();
    std::fs::remove_file(dir.path().join("vendors.csv")).unwrap();
    let e = read_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("vendors.csv"), "{e}");
}

#[test]
fn ids_and_dialstrings_that_would_break_a_record_or_a_request_uri_are_rejected_by_line() {
    let dir = fixture_copy();
    // Header and 7 rows in each: new rows start at line 9 (gateways), 8 (vendors).
    append(
        dir.path(),
        "gateways.csv",
        "VA,7,\"sip:{number}@gw\r\nX-Evil: 1\"\nVA,8,sip:{number}@gw ;x\nVA,9,tel:+{number}\nVA,10,SIPS:{number}@gw.example\n",
    );
    append(
        dir.path(),
        "vendors.csv",
        "\"V\tX\",Tab,LRN,1,INTRASTATE,true\n",
    );
    let e = errors(dir.path());
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].starts_with("vendors.csv:8: vendor_id \"V\\tX\": an id is"),
        "{e:#?}"
    );
    // The first bad gateway spans two lines; the uppercase scheme is a valid one.
    for (line, row) in [(9, 1), (11, 2), (12, 3)] {
        assert!(
            e[row].starts_with(&format!("gateways.csv:{line}: dialstring")),
            "{e:#?}"
        );
    }
}

#[test]
fn a_row_refused_after_its_id_is_known_is_reported_not_a_panic() {
    let dir = fixture_copy();
    // VA has gateways and T1 has IPs: their own rows fail on a later field.
    let edit = |file: &str, from: &str, to: &str| {
        let p = dir.path().join(file);
        let s = std::fs::read_to_string(&p).unwrap().replace(from, to);
        std::fs::write(p, s).unwrap();
    };
    edit(
        "vendors.csv",
        "VA,Alpha LRN,LRN,1,",
        "VA,Alpha LRN,LRN,3000000000,",
    );
    edit("trunks.csv", "T1,C1,10,5,", "T1,C1,10,x,");
    let e = errors(dir.path()).join("\n");
    for needle in ["vendors.csv:2: priority", "trunks.csv:2: max_cps"] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
}

#[test]
fn a_time_with_a_fraction_of_a_second_is_refused_by_line() {
    let dir = fixture_copy();
    // vendor_rates.csv: header and 15 rows; customer_partitions.csv: header and 4.
    append(
        dir.path(),
        "vendor_rates.csv",
        "VA,1404,,,2024-12-31T23:59:59.9999996Z,,0.01,,,,,,6,6,,\n",
    );
    append(
        dir.path(),
        "customer_partitions.csv",
        "C1,P1,1,2025-01-01T00:00:00.5+01:00,,,,,\n",
    );
    let e = errors(dir.path()).join("\n");
    for needle in [
        "vendor_rates.csv:17: effective_from: \"2024-12-31T23:59:59.9999996Z\" has a fraction",
        "customer_partitions.csv:6: valid_from",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
}

#[test]
fn a_lerg_row_without_a_rate_centre_is_refused_by_line() {
    let dir = fixture_copy();
    // lerg.csv: header and 5 rows.
    append(
        dir.path(),
        "lerg.csv",
        "719556,,0303,658,CO,\n719557,,0303,658,CO,  \n",
    );
    let e = errors(dir.path()).join("\n");
    for needle in ["lerg.csv:7: rate_center", "lerg.csv:8: rate_center"] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
}

#[test]
fn a_cidr_with_an_empty_or_signed_prefix_length_is_refused_by_line() {
    let dir = fixture_copy();
    // trunk_ips.csv: header and 4 rows.
    append(
        dir.path(),
        "trunk_ips.csv",
        "T2,10.9.0.0/\nT2,2001:db9::/\nT2,10.8.0.0/+24\n",
    );
    let e = errors(dir.path()).join("\n");
    for needle in [
        "trunk_ips.csv:6: bad prefix length in \"10.9.0.0/\"",
        "trunk_ips.csv:7: bad prefix length in \"2001:db9::/\"",
        "trunk_ips.csv:8: bad prefix length in \"10.8.0.0/+24\"",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
    // A bare address is still one host.
    let host: warp_core::model::IpNet = "10.9.0.1".parse().unwrap();
    assert_eq!(host.len, 32);
}

#[test]
fn a_time_of_day_with_a_sign_is_refused_by_line() {
    let dir = fixture_copy();
    // customer_partitions.csv: header and 4 rows; overrides.csv: header and 1.
    append(
        dir.path(),
        "customer_partitions.csv",
        "C1,P1,1,,,UTC,Mon,+9:00,17:00\nC1,P1,1,,,UTC,Mon,09:00,-1:00\nC1,P1,1,,,UTC,Mon,9:+5,17:00\n",
    );
    append(dir.path(), "overrides.csv", "C1,1720,VD,,,UTC,*,+09:00,\n");
    let e = errors(dir.path()).join("\n");
    for needle in [
        "customer_partitions.csv:6: bad time of day \"+9:00\"",
        "customer_partitions.csv:7: bad time of day \"-1:00\"",
        "customer_partitions.csv:8: bad time of day \"9:+5\"",
        "overrides.csv:3: bad time of day \"+09:00\"",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
    // The accepted forms.
    use warp_core::schedule::WeeklyWindow;
    assert_eq!(WeeklyWindow::parse_minute("9:05"), Ok(545));
    assert_eq!(WeeklyWindow::parse_minute("09:05"), Ok(545));
    assert_eq!(WeeklyWindow::parse_minute("24:00"), Ok(1440));
    for bad in ["9:5", "009:00", "09:005", " 9 :00", ""] {
        assert!(WeeklyWindow::parse_minute(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_local_calling_row_naming_a_rate_centre_no_lerg_code_has_is_refused_by_line() {
    let dir = fixture_copy();
    // local_calling.csv: header and 1 row. Case and spaces do not matter, as in the LERG.
    append(
        dir.path(),
        "local_calling.csv",
        "CO,DENVR,CO,BOULDER\nco, denver ,NY,BOULDER\nCO,Denver,CO,Colospgs\n",
    );
    let e = errors(dir.path());
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with("local_calling.csv:3: state_a/rate_center_a \"CO/DENVR\" is the rate centre of no lerg.csv code"),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with("local_calling.csv:4: state_b/rate_center_b \"NY/BOULDER\""),
        "{e:#?}"
    );
}

#[test]
fn a_network_written_with_host_bits_is_the_network_and_counted_once() {
    let dir = fixture_copy();
    // trunk_ips.csv: header and 4 rows; T2 holds 10.1.2.0/24.
    append(dir.path(), "trunk_ips.csv", "T3,10.7.0.5/16\n");
    let d = read_dir(dir.path()).unwrap();
    let t3 = d.trunks.iter().find(|t| t.id == "T3").unwrap();
    assert_eq!(t3.acl.last().unwrap().to_string(), "10.7.0.0/16");
    warp_core::snapshot::compile(&d, 1).unwrap();
    // The snapshot masks host bits: this is T2's network a second time.
    append(dir.path(), "trunk_ips.csv", "T1,10.1.2.9/24\n");
    let e = errors(dir.path()).join("\n");
    assert!(
        e.contains(
            "trunk_ips.csv:7: 10.1.2.9/24 is already assigned to a trunk (network 10.1.2.0/24)"
        ),
        "{e}"
    );
}

#[test]
fn a_number_ported_to_two_lrns_is_refused_by_line() {
    let dir = fixture_copy();
    // lnp.csv: header and 1 row, +12125551234 ported to +13034440000. A repeat of the
    // same entry is harmless; another LRN for it would fail every compile.
    append(
        dir.path(),
        "lnp.csv",
        "+12125551234,+13034440000\n+12125551234,+13036290000\n",
    );
    let e = errors(dir.path()).join("\n");
    assert_eq!(
        e,
        "lnp.csv:4: +12125551234 is already ported to +13034440000, not +13036290000"
    );
}

#[test]
fn an_ocn_the_snapshot_cannot_hold_is_refused_by_line() {
    let dir = fixture_copy();
    // lerg.csv: header and 5 rows; vendor_rates.csv: header and 15 (VC is OCN_LATA).
    append(
        dir.path(),
        "lerg.csv",
        "719560,,12345,658,CO,COLOSPGS\n719561,,,658,CO,COLOSPGS\n719562,,0a-1,658,CO,COLOSPGS\n719563,,6b1c,658,CO,COLOSPGS\n",
    );
    append(
        dir.path(),
        "vendor_rates.csv",
        "VC,,ABCDE,656,2025-01-01,,0.01,,,,,,6,6,,\n",
    );
    let e = errors(dir.path()).join("\n");
    assert_eq!(
        e,
        "lerg.csv:7: ocn: \"12345\" is not 1 to 4 letters or digits\n\
         lerg.csv:8: ocn: \"\" is not 1 to 4 letters or digits\n\
         lerg.csv:9: ocn: \"0a-1\" is not 1 to 4 letters or digits\n\
         vendor_rates.csv:17: ocn: \"ABCDE\" is not 1 to 4 letters or digits"
    );
}

#[test]
fn a_rate_plan_that_is_not_an_id_is_refused_by_line() {
    let dir = fixture_copy();
    // customer_rates.csv: header and 3 rows.
    append(
        dir.path(),
        "customer_rates.csv",
        ",1,,,2025-01-01,,0.01,,,,,,1,1,,\n\"PLAN\u{7}\",1,,,2025-01-01,,0.01,,,,,,1,1,,\n",
    );
    let e = errors(dir.path());
    let lines: Vec<&str> = e
        .iter()
        .map(|s| s.split(" an id").next().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "customer_rates.csv:5: rate_plan \"\":",
            "customer_rates.csv:6: rate_plan \"PLAN\\u{7}\":",
        ],
        "{e:#?}"
    );
}

#[test]
fn max_results_outside_1_to_100_is_refused_by_line() {
    let dir = fixture_copy();
    // customers.csv: header and 3 rows. PostgreSQL holds 1 to 100 (`warp import` would
    // fail on the row with a constraint error), as do the API and `warp route`.
    append(
        dir.path(),
        "customers.csv",
        "C4,Four,PLAN1,0,,0,true\nC5,Five,PLAN1,0,,101,true\nC6,Six,PLAN1,0,,100,true\n",
    );
    assert_eq!(
        errors(dir.path()),
        [
            "customers.csv:5: max_results 0 is not from 1 to 100",
            "customers.csv:6: max_results 101 is not from 1 to 100",
        ]
    );
}

#[test]
fn trunk_auth_types_and_credentials_are_read_and_checked() {
    let dir = fixture_copy();
    let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
    write(
        "trunks.csv",
        "trunk_id,ban,max_concurrent,max_cps,enabled,auth_type\n\
         T1,C1,10,5,true,\n\
         T2,C2,0,0,true,credentials\n\
         T3,C3,0,0,true,IP_AND_CREDENTIALS\n",
    );
    write(
        "trunk_credentials.csv",
        "trunk_id,username,realm,ha1\n\
         T1,trunk1,,\n\
         T2,trunk2,warp, 0123456789ABCDEF0123456789abcdef\n",
    );
    let d = read_dir(dir.path()).unwrap();
    let auth: Vec<&str> = d.trunks.iter().map(|t| t.auth.as_str()).collect();
    // Left empty, T1 asks for what it lists: addresses and credentials.
    assert_eq!(
        auth,
        ["IP_AND_CREDENTIALS", "CREDENTIALS", "IP_AND_CREDENTIALS"]
    );
    let t2 = &d.trunks[1].credentials[0];
    assert_eq!(
        (t2.realm.as_str(), t2.ha1.as_deref()),
        ("warp", Some("0123456789abcdef0123456789abcdef"))
    );
    // Written out and read back, the same trunks.
    let out = tempfile::tempdir().unwrap();
    warp_core::dataset::write_dir(&d, out.path()).unwrap();
    assert_eq!(read_dir(out.path()).unwrap().trunks, d.trunks);

    append(dir.path(), "trunks.csv", "T4,C1,0,0,true,PASSWORD\n");
    append(
        dir.path(),
        "trunk_credentials.csv",
        "T2,nowhere,,0123456789abcdef0123456789abcdef\nT2,short,warp,0123\n",
    );
    let e = errors(dir.path());
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].starts_with("trunks.csv:5: unknown auth type \"PASSWORD\""),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with("trunk_credentials.csv:4: nowhere: an ha1 needs the realm"),
        "{e:#?}"
    );
    assert!(
        e[2].starts_with("trunk_credentials.csv:5: ha1 \"0123\" is not 32 hex digits"),
        "{e:#?}"
    );
}

#[test]
fn a_trunks_keepalive_is_on_unless_its_column_says_no() {
    let dir = fixture_copy();
    // The fixture's trunks.csv predates the column: every trunk keeps its keepalives.
    let d = read_dir(dir.path()).unwrap();
    assert!(d.trunks.iter().all(|t| t.keepalive), "{:?}", d.trunks);
    std::fs::write(
        dir.path().join("trunks.csv"),
        "trunk_id,ban,max_concurrent,max_cps,enabled,auth_type,keepalive\n\
         T1,C1,10,5,true,,false\n\
         T2,C2,0,0,true,,\n\
         T3,C3,0,0,true,,no\n",
    )
    .unwrap();
    let d = read_dir(dir.path()).unwrap();
    let keepalive: Vec<_> = d
        .trunks
        .iter()
        .map(|t| (t.id.as_str(), t.keepalive))
        .collect();
    assert_eq!(keepalive, [("T1", false), ("T2", true), ("T3", false)]);
    // Written out and read back, the same trunks.
    let out = tempfile::tempdir().unwrap();
    warp_core::dataset::write_dir(&d, out.path()).unwrap();
    assert_eq!(read_dir(out.path()).unwrap().trunks, d.trunks);

    append(dir.path(), "trunks.csv", "T4,C1,0,0,true,,sometimes\n");
    assert_eq!(
        errors(dir.path()),
        ["trunks.csv:5: keepalive: \"sometimes\" is not true/false"]
    );
}

#[test]
fn a_vendors_keepalive_is_on_unless_its_column_says_no() {
    let dir = fixture_copy();
    // The fixture's vendors.csv predates the column: every vendor keeps its keepalives.
    let d = read_dir(dir.path()).unwrap();
    assert!(d.vendors.iter().all(|v| v.keepalive), "{:?}", d.vendors);
    std::fs::write(
        dir.path().join("vendors.csv"),
        "vendor_id,name,type,priority,indeterminate_zone,enabled,keepalive\n\
         VA,Alpha LRN,LRN,1,INTRASTATE,true,false\n\
         VB,Bravo LRN,LRN,2,INTERSTATE,true,\n\
         VC,Charlie OCN,OCN_LATA,1,,true,no\n\
         VD,Delta DNIS,DNIS,5,,true,yes\n\
         VI,India Intl,INTERNATIONAL,1,,true,true\n\
         VX,Disabled,LRN,1,,false,0\n",
    )
    .unwrap();
    let d = read_dir(dir.path()).unwrap();
    let keepalive: Vec<_> = d
        .vendors
        .iter()
        .map(|v| (v.id.as_str(), v.keepalive))
        .collect();
    assert_eq!(
        keepalive,
        [
            ("VA", false),
            ("VB", true),
            ("VC", false),
            ("VD", true),
            ("VI", true),
            ("VX", false)
        ]
    );
    // Written out and read back, the same vendors.
    let out = tempfile::tempdir().unwrap();
    warp_core::dataset::write_dir(&d, out.path()).unwrap();
    assert_eq!(read_dir(out.path()).unwrap().vendors, d.vendors);

    append(
        dir.path(),
        "vendors.csv",
        "VY,Yankee,DNIS,1,,true,sometimes\n",
    );
    assert_eq!(
        errors(dir.path()),
        ["vendors.csv:8: keepalive: \"sometimes\" is not true/false"]
    );
}

/// A digest carries its username and realm in quoted strings: a quote or backslash in
/// either could never be offered as given, so its ha1 would never match. An `@` is
/// fine (the edge looks the username up whole).
#[test]
fn credentials_a_digest_cannot_carry_are_row_errors() {
    let dir = fixture_copy();
    std::fs::write(
        dir.path().join("trunk_credentials.csv"),
        "trunk_id,username,realm,ha1\n\
         T1,\"pbx\"\"1\",warp,\n\
         T1,back\\slash,,\n\
         T1,pbx2,\"we\"\"rd\",\n\
         T1,pbx@edge.example,warp,\n",
    )
    .unwrap();
    let e = errors(dir.path());
    assert_eq!(e.len(), 3, "{e:#?}");
    let expected = [
        "trunk_credentials.csv:2: \"pbx\\\"1\": a digest username is 1 to",
        "trunk_credentials.csv:3: \"back\\\\slash\": a digest username is 1 to",
        "trunk_credentials.csv:4: \"we\\\"rd\": a realm is 1 to",
    ];
    for (e, expected) in e.iter().zip(expected) {
        assert!(e.starts_with(expected), "{e}");
    }
}

#[test]
fn values_past_what_the_database_holds_are_refused_with_its_range_whatever_their_form() {
    let dir = fixture_copy();
    // Past a u32, past the snapshot's nanos, and into year 10000 only in UTC: each is
    // named by the database's range, not as a malformed value. The last rows are in it.
    append(
        dir.path(),
        "trunks.csv",
        "T4,C1,99999999999999999999,0,true\nT5,C1,2147483647,+2147483647,true\n",
    );
    append(
        dir.path(),
        "vendor_rates.csv",
        "VA,1404,,,2025-01-01,,0.01,,,,,,6,6,99999999999,\n\
         VA,1405,,,9999-12-31T23:59:59-10:00,,0.01,,,,,,6,6,,\n\
         VA,1406,,,0001-01-01T00:00:00+01:00,,0.01,,,,,,6,6,,\n\
         VA,1407,,,9999-12-31T23:59:59Z,,999999999.999999999,,,,,,6,6,,\n",
    );
    assert_eq!(
        errors(dir.path()),
        [
            "vendor_rates.csv:17: connect_fee: 99999999999 is out of range: \
             the database holds 0 to 999999999.999999999",
            "vendor_rates.csv:18: effective_from: \"9999-12-31T23:59:59-10:00\" is out of \
             range: the database holds the years 1 to 9999 (UTC)",
            "vendor_rates.csv:19: effective_from: \"0001-01-01T00:00:00+01:00\" is out of \
             range: the database holds the years 1 to 9999 (UTC)",
            "trunks.csv:5: max_concurrent: 99999999999999999999 is out of range: \
             the database holds 0 to 2147483647",
        ]
    );
}
