//! The DID inventory's numbers in the snapshot: which customer may present which
//! calling number (what STIR/SHAKEN full attestation asks).

use std::path::Path;
use warp_core::dataset::read_dir;
use warp_core::model::{AssignedNumber, Dataset};
use warp_core::snapshot::{compile, OpenError, Snapshot};
use warp_core::Number;

fn number(n: &str) -> Number {
    Number::parse(n).unwrap()
}

fn assigned(n: &str, ban: &str) -> AssignedNumber {
    AssignedNumber {
        number: number(n),
        ban: ban.into(),
    }
}

/// The fixture (customers C1, C2, C3) with numbers of C1's and C2's.
fn dataset() -> Dataset {
    let mut d = read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture")).unwrap();
    d.numbers = vec![
        assigned("+13035550100", "C1"),
        assigned("+13035550101", "C1"),
        assigned("+442079460000", "C2"),
    ];
    d
}

#[test]
fn a_customer_s_own_numbers_are_assigned_to_it_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.snap");
    warp_core::snapshot::publish(&compile(&dataset(), 1).unwrap(), &path).unwrap();
    let s = Snapshot::open_verified(&path).unwrap();
    assert_eq!(s.summary().assigned_numbers, 3);
    assert!(s.is_assigned(number("+13035550100"), "C1"));
    assert!(s.is_assigned(number("3035550101"), "C1"));
    assert!(s.is_assigned(number("+442079460000"), "C2"));
    // Another customer's number, a number of nobody's, a customer of none.
    assert!(!s.is_assigned(number("+13035550100"), "C2"));
    assert!(!s.is_assigned(number("+442079460000"), "C1"));
    assert!(!s.is_assigned(number("+13035550102"), "C1"));
    assert!(!s.is_assigned(number("+13035550100"), "C3"));
    assert!(!s.is_assigned(number("+13035550100"), "NOBODY"));
}

#[test]
fn a_dataset_without_numbers_attests_none() {
    let mut d = dataset();
    d.numbers.clear();
    let s = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    assert_eq!(s.summary().assigned_numbers, 0);
    assert!(!s.is_assigned(number("+13035550100"), "C1"));
}

#[test]
fn a_number_of_two_customers_or_of_an_unknown_one_is_refused() {
    let mut d = dataset();
    d.numbers.push(assigned("+13035550100", "C2"));
    let e = compile(&d, 1).err().unwrap().to_string();
    assert_eq!(e, "number +13035550100 is assigned to two customers");
    // Listed twice for one customer: one assignment.
    let mut d = dataset();
    d.numbers.push(assigned("+13035550100", "C1"));
    let s = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    assert_eq!(s.summary().assigned_numbers, 3);
    let mut d = dataset();
    d.numbers.push(assigned("+13035550199", "C9"));
    let e = compile(&d, 1).err().unwrap().to_string();
    assert_eq!(e, "number +13035550199: unknown customer C9");
}

#[test]
fn a_snapshot_of_the_format_before_numbers_is_refused() {
    let mut bytes = compile(&dataset(), 1).unwrap();
    // Version 4 had no numbers section: this build would find one missing.
    bytes[8..12].copy_from_slice(&4u32.to_le_bytes());
    assert!(matches!(
        Snapshot::from_bytes(&bytes),
        Err(OpenError::Version { found: 4 })
    ));
}
