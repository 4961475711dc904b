//! The routing semantics of ARCHITECTURE.md, end to end: CSV fixture → dataset →
//! compiled snapshot → decisions, with every expected figure worked out by hand in
//! the comments (rates per minute).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::path::Path;
use warp_core::dataset::read_dir;
use warp_core::snapshot::{compile, LrnSource, Reject, RouteRequest, Snapshot};
use warp_core::{Decision, Jurisdiction, Number, Zone};

fn fixture() -> Snapshot {
    let d = read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture"))
        .expect("fixture is valid");
    Snapshot::from_bytes(&compile(&d, 42).expect("compiles")).expect("opens")
}

/// Wednesday 4 March 2026, 10:00 in New York.
const WED_10AM_NY: &str = "2026-03-04T15:00:00Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn req<'a>(ban: &'a str, ani: Option<&'a str>, dnis: &'a str) -> RouteRequest<'a> {
    RouteRequest::new(ban, ani, dnis, t(WED_10AM_NY))
}

fn vendors<'a>(d: &Decision<'a>) -> Vec<(&'a str, String)> {
    d.routes
        .iter()
        .map(|r| (r.vendor_id, r.vendor_rate.to_string()))
        .collect()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

const DENVER: Option<&str> = Some("3036291111");

#[test]
fn local_call_orders_by_rate_and_drops_what_breaks_the_margin() {
    let s = fixture();
    // Denver -> Boulder is LOCAL (local calling pair). Sell LOCAL 0.006, margin 0.001
    // => limit 0.005: VD (0.008) is dropped, the disabled VX never appears.
    let d = s.route(&req("C1", DENVER, "3034449999")).unwrap();
    assert_eq!(d.jurisdiction, Jurisdiction::Zone(Zone::Local));
    assert_eq!(d.rate_limit.to_decimal(), dec("0.005"));
    assert_eq!(
        vendors(&d),
        [
            ("VC", "0.002".into()),
            ("VA", "0.003".into()),
            ("VB", "0.0045".into())
        ]
    );
    let va = &d.routes[1];
    assert_eq!(va.customer_rate.to_decimal(), dec("0.006"));
    assert_eq!(va.margin.to_decimal(), dec("0.003"));
    assert_eq!(va.partition, Some("P1"));
    assert_eq!(va.increments, (6, 6));
    // Gateways in priority order, templates filled.
    assert_eq!(
        va.dialstrings.iter().collect::<Vec<_>>(),
        [
            "sip:+13034449999@va1.example:5060",
            "sip:3034449999@va2.example:5060"
        ]
    );
    assert_eq!(d.generation, 42);
}

#[test]
fn ported_number_is_priced_and_zoned_by_its_lrn() {
    let s = fixture();
    // 212-555-1234 is ported to a Boulder switch: LOCAL from Denver. LRN vendors price
    // 1303444…, OCN_LATA uses Boulder's OCN 0202/LATA 656; VB is excluded for C1 on
    // 1212; VD prices the dialled 1212, whose row has no LOCAL rate.
    let d = s.route(&req("C1", DENVER, "+12125551234")).unwrap();
    assert_eq!(d.lrn, Number::parse("3034440000").unwrap());
    assert_eq!(d.lrn_source, LrnSource::Snapshot);
    assert_eq!(d.jurisdiction, Jurisdiction::Zone(Zone::Local));
    assert_eq!(
        vendors(&d),
        [("VC", "0.002".into()), ("VA", "0.003".into())]
    );
    assert_eq!(d.terminating.unwrap().ocn(), "0202");
}

#[test]
fn a_supplied_lrn_is_used_when_the_snapshot_has_none() {
    let s = fixture();
    let mut r = req("C1", DENVER, "2125550000");
    r.lrn = Some(Number::parse("3034440000").unwrap());
    let d = s.route(&r).unwrap();
    assert_eq!(d.lrn_source, LrnSource::Supplied);
    assert_eq!(d.jurisdiction, Jurisdiction::Zone(Zone::Local));
}

#[test]
fn interstate_uses_rates_effective_at_call_time() {
    let s = fixture();
    // Denver -> New York: INTERSTATE, sell 0.010 - 0.001 => limit 0.009.
    // VD's 1212 row is 0.009 until 1 June 2026, 0.003 after.
    let d = s.route(&req("C1", DENVER, "2125550000")).unwrap();
    assert_eq!(d.jurisdiction, Jurisdiction::Zone(Zone::Interstate));
    assert_eq!(
        vendors(&d),
        [("VA", "0.006".into()), ("VD", "0.009".into())]
    );
    let mut later = req("C1", DENVER, "2125550000");
    later.at = t("2026-07-01T15:00:00Z");
    let d = s.route(&later).unwrap();
    assert_eq!(
        vendors(&d),
        [("VD", "0.003".into()), ("VA", "0.006".into())]
    );
}

#[test]
fn thousands_block_beats_its_npa_nxx() {
    let s = fixture();
    // 212-555-7xxx is pooled to OCN 0505 (LATA 132), which VC prices at 0.004.
    let d = s.route(&req("C1", DENVER, "2125557000")).unwrap();
    assert_eq!(d.terminating.unwrap().ocn(), "0505");
    assert_eq!(
        vendors(&d),
        [
            ("VC", "0.004".into()),
            ("VA", "0.006".into()),
            ("VD", "0.009".into())
        ]
    );
}

#[test]
fn override_forces_its_vendor_first_even_above_the_limit() {
    let s = fixture();
    // Denver -> Colorado Springs: INTRASTATE, limit 0.009 - 0.001 = 0.008. VD (0.0085)
    // is forced by C1's 1719 override; VA and VB tie at 0.005 and VA's priority wins.
    let d = s.route(&req("C1", DENVER, "7195550000")).unwrap();
    assert_eq!(d.jurisdiction, Jurisdiction::Zone(Zone::Intrastate));
    assert_eq!(
        vendors(&d),
        [
            ("VD", "0.0085".into()),
            ("VA", "0.005".into()),
            ("VB", "0.005".into())
        ]
    );
    assert!(d.routes[0].forced);
    assert!(!d.routes[1].forced);
}

#[test]
fn an_override_does_not_force_a_vendor_an_exclusion_leaves_out() {
    // C1 excludes VB on 1212; an override of 1212 to VB must not bring it back.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    let mut o = d.overrides[0].clone();
    o.prefix = warp_core::Prefix::parse("1212").unwrap();
    o.vendor = "VB".into();
    d.overrides.push(o);
    let s = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    let decision = s.route(&req("C1", DENVER, "2125550000")).unwrap();
    assert!(
        decision
            .routes
            .iter()
            .all(|r| r.vendor_id != "VB" && !r.forced),
        "{:?}",
        vendors(&decision)
    );
}

#[test]
fn dno_and_exclusions_reject_with_the_right_sip_code() {
    let s = fixture();
    let dno = s
        .route(&req("C1", Some("+1 303 629 0000"), "2125550000"))
        .unwrap_err();
    assert_eq!(dno, Reject::DnoAni);
    assert_eq!(dno.sip().0, 603);
    let blocked = s.route(&req("C1", DENVER, "19005551234")).unwrap_err();
    assert_eq!(blocked, Reject::ExcludedDestination);
    assert_eq!(blocked.sip().0, 403);
    // C2 may not call the UK; C1 may.
    assert_eq!(
        s.route(&req("C2", DENVER, "+442079460000")).unwrap_err(),
        Reject::ExcludedDestination
    );
    assert!(s.route(&req("C1", DENVER, "+442079460000")).is_ok());
}

#[test]
fn indeterminate_ani_follows_each_vendors_policy() {
    let s = fixture();
    // No ANI: customer side prices INTRASTATE (0.009 - 0.001 => limit 0.008).
    // VA (policy INTRASTATE) 1303 intra 0.004; VB (policy INTERSTATE) 1303629 inter
    // 0.007 — the longer prefix wins over VB's cheaper 1303; VD 1 intra 0.0085 is over.
    for ani in [
        None,
        Some("anonymous"),
        Some("+442079460000"),
        Some("5055551111"),
    ] {
        let d = s.route(&req("C1", ani, "3036291234")).unwrap();
        assert_eq!(d.jurisdiction, Jurisdiction::Indeterminate, "ani {ani:?}");
        assert_eq!(d.customer_zone, Zone::Intrastate);
        assert_eq!(
            vendors(&d),
            [("VA", "0.004".into()), ("VB", "0.007".into())]
        );
        assert_eq!(d.routes[0].zone, Zone::Intrastate);
        assert_eq!(d.routes[1].zone, Zone::Interstate);
    }
}

#[test]
fn toll_free_zone1_and_international() {
    let s = fixture();
    let tf = s.route(&req("C1", DENVER, "8005551234")).unwrap();
    assert_eq!(tf.jurisdiction, Jurisdiction::Zone(Zone::TollFree));
    assert_eq!(vendors(&tf), [("VD", "0.001".into())]);
    let ca = s.route(&req("C1", DENVER, "4165551234")).unwrap();
    assert_eq!(ca.jurisdiction, Jurisdiction::Zone(Zone::Zone1));
    assert_eq!(vendors(&ca), [("VD", "0.02".into())]);
    // UK mobile: the 447 rows (vendor and plan) beat the 44 ones.
    let uk = s.route(&req("C1", DENVER, "011447911123456")).unwrap();
    assert_eq!(uk.jurisdiction, Jurisdiction::Zone(Zone::International));
    assert_eq!(uk.customer_rate.to_decimal(), dec("0.08"));
    assert_eq!(vendors(&uk), [("VI", "0.05".into())]);
    assert_eq!(uk.routes[0].increments, (60, 60));
    let fixed = s.route(&req("C1", DENVER, "+442079460000")).unwrap();
    assert_eq!(fixed.routes[0].connect_fee.to_decimal(), dec("0.01"));
}

#[test]
fn time_windows_choose_partitions_and_explicit_limits_apply() {
    let s = fixture();
    // C2 in New York business hours: P1 then P2; explicit limit 0.0046; 2 results.
    let d = s.route(&req("C2", DENVER, "3034449999")).unwrap();
    assert_eq!(d.rate_limit.to_decimal(), dec("0.0046"));
    assert_eq!(
        vendors(&d),
        [("VC", "0.002".into()), ("VA", "0.003".into())]
    );
    // 18:00 in New York: only P2 (VD at 0.008) is open, and it is over the limit.
    let mut evening = req("C2", DENVER, "3034449999");
    evening.at = t("2026-03-04T23:00:00Z");
    assert_eq!(s.route(&evening).unwrap_err(), Reject::NoRoute);
    // After the spring-forward, 09:30 EDT is 13:30Z: business hours again.
    let mut edt = req("C2", DENVER, "3034449999");
    edt.at = t("2026-03-09T13:30:00Z");
    assert_eq!(vendors(&s.route(&edt).unwrap()).len(), 2);
    edt.max_results = Some(1);
    assert_eq!(vendors(&s.route(&edt).unwrap()), [("VC", "0.002".into())]);
}

#[test]
fn unknown_disabled_and_malformed_are_clear_rejections() {
    let s = fixture();
    assert_eq!(
        s.route(&req("NOPE", DENVER, "3034449999")).unwrap_err(),
        Reject::UnknownCustomer("NOPE".into())
    );
    assert_eq!(
        s.route(&req("C3", DENVER, "3034449999")).unwrap_err(),
        Reject::CustomerDisabled("C3".into())
    );
    for bad in [
        "12345",
        "",
        "sip:alice@example.com",
        "30362912ab",
        "+1234567890123456",
    ] {
        let e = s.route(&req("C1", DENVER, bad)).unwrap_err();
        assert!(matches!(e, Reject::InvalidDnis(_)), "{bad:?} gave {e:?}");
        assert_eq!(e.sip().0, 484);
    }
    // A destination the customer's plan does not price.
    assert_eq!(
        s.route(&req("C1", DENVER, "+33142685300")).unwrap_err(),
        Reject::NoSellRate
    );
}

#[test]
fn trunks_are_found_by_source_address_and_username() {
    let s = fixture();
    let ip = |a: &str| s.trunk_by_ip(a.parse().unwrap()).map(|t| t.id);
    assert_eq!(ip("127.0.0.1"), Some("T1"));
    assert_eq!(ip("10.1.9.9"), Some("T1"));
    assert_eq!(ip("10.1.2.3"), Some("T2")); // the /24 beats the /16
    assert_eq!(ip("2001:db8::42"), Some("T3"));
    assert_eq!(ip("8.8.8.8"), None);
    let t1 = s.trunk_by_username("trunk1").unwrap();
    assert_eq!((t1.ban, t1.max_concurrent, t1.max_cps), ("C1", 10, 5));
    assert!(s.trunk_by_username("trunk2").is_none());
    // T2's /24 names T2, but it lies in T1's own /16 too.
    let at = |a: &str| a.parse().unwrap();
    assert!(s.acl_holds(&t1, at("10.1.2.3")));
    assert!(s.acl_holds(&t1, at("::ffff:10.1.9.9")));
    assert!(!s.acl_holds(&t1, at("10.2.0.1")));
    let t3 = s.trunk_by_ip(at("2001:db8::42")).unwrap();
    assert!(s.acl_holds(&t3, at("2001:db8::1")));
    assert!(!s.acl_holds(&t3, at("127.0.0.1")));
}

#[test]
fn a_trunks_keepalive_travels_through_the_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    d.trunks
        .iter_mut()
        .find(|t| t.id == "T2")
        .unwrap()
        .keepalive = false;
    let s = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    let keepalive: Vec<_> = s.all_trunks().map(|t| (t.id, t.keepalive)).collect();
    assert_eq!(keepalive, [("T1", true), ("T2", false), ("T3", true)]);
    // Found by id, and by how its calls find it.
    assert_eq!(s.trunk_by_id("T2").map(|t| t.keepalive), Some(false));
    assert_eq!(s.trunk_by_id("T3").map(|t| t.keepalive), Some(true));
    assert!(s.trunk_by_id("T4").is_none());
    let t2 = s.trunk_by_ip("10.1.2.3".parse().unwrap()).unwrap();
    assert_eq!((t2.id, t2.keepalive), ("T2", false));
}

#[test]
fn a_vendors_keepalive_travels_through_the_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    d.vendors
        .iter_mut()
        .find(|v| v.id == "VC")
        .unwrap()
        .keepalive = false;
    let s = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    let keepalive = |id| s.vendor_by_id(id).map(|v| (v.id, v.keepalive));
    assert_eq!(keepalive("VC"), Some(("VC", false)));
    for id in ["VA", "VB", "VD", "VI", "VX"] {
        assert_eq!(keepalive(id), Some((id, true)));
    }
    assert_eq!(keepalive("VZ"), None);
    assert_eq!(keepalive(""), None);
}

#[test]
fn a_trunk_is_found_only_the_ways_its_auth_type_asks_for() {
    use warp_core::model::{Credential, TrunkAuth};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    // The fixture's trunks.csv predates auth_type: each trunk asks for what it lists.
    let auth: Vec<_> = d.trunks.iter().map(|t| (t.id.as_str(), t.auth)).collect();
    assert_eq!(
        auth,
        [
            ("T1", TrunkAuth::IpAndCredentials),
            ("T2", TrunkAuth::IpAcl),
            ("T3", TrunkAuth::IpAcl)
        ]
    );
    let credential = |user: &str, ha1: Option<&str>| Credential {
        username: user.into(),
        realm: "warp".into(),
        ha1: ha1.map(Into::into),
    };
    let ha1 = "0123456789abcdef0123456789abcdef";
    for t in &mut d.trunks {
        match t.id.as_str() {
            "T2" => {
                t.auth = TrunkAuth::Credentials;
                t.credentials = vec![credential("trunk2", Some(ha1)), credential("new2", None)];
            }
            "T3" => t.credentials = vec![credential("trunk3", Some(ha1))],
            _ => {}
        }
    }
    let s = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    // T2 asks for credentials alone: its /24 admits nothing, so T1's /16 holds it.
    let ip = |a: &str| s.trunk_by_ip(a.parse().unwrap()).map(|t| t.id);
    assert_eq!(ip("10.1.2.3"), Some("T1"));
    let c = s.credential("trunk2").unwrap();
    assert_eq!((c.trunk.id, c.realm, c.ha1), ("T2", "warp", Some(ha1)));
    assert_eq!(c.trunk.auth, TrunkAuth::Credentials);
    // No password yet: known, with nothing to check a password against.
    let c = s.credential("new2").unwrap();
    assert_eq!((c.trunk.id, c.ha1), ("T2", None));
    // T3 (IP_ACL) is found by its address; its credentials identify nothing.
    assert_eq!(ip("2001:db8::42"), Some("T3"));
    assert!(s.credential("trunk3").is_none());
    // An ha1 must be hex in a realm, or the compile names the trunk.
    let mut bad = d.clone();
    bad.trunks[1].credentials[0].realm.clear();
    let err = compile(&bad, 2).unwrap_err().to_string();
    assert!(
        err.contains("trunk T2: trunk2: an ha1 needs the realm"),
        "{err}"
    );
}

#[test]
fn an_ipv4_source_written_as_ipv4_mapped_ipv6_finds_its_ipv4_trunk() {
    // A dual-stack (IPv6) socket reports an IPv4 peer as ::ffff:a.b.c.d: it is the same
    // source, and its trunk is the one whose IPv4 ACL holds it.
    let s = fixture();
    let ip = |a: &str| s.trunk_by_ip(a.parse().unwrap()).map(|t| t.id);
    assert_eq!(ip("::ffff:127.0.0.1"), Some("T1"));
    assert_eq!(ip("::ffff:10.1.2.3"), Some("T2"));
    assert_eq!(ip("::ffff:10.1.9.9"), Some("T1"));
    assert_eq!(ip("::ffff:8.8.8.8"), None);
    // Native IPv6 is untouched, and no other IPv6 form of an IPv4 address is taken for
    // it: the loopback ::1, IPv4-compatible ::127.0.0.1 (deprecated), NAT64's
    // 64:ff9b::127.0.0.1 are IPv6 sources of their own.
    assert_eq!(ip("2001:db8::42"), Some("T3"));
    for other in ["::1", "::127.0.0.1", "64:ff9b::127.0.0.1"] {
        assert_eq!(ip(other), None, "{other}");
    }
}

#[test]
fn an_acl_network_written_as_ipv4_mapped_ipv6_holds_its_ipv4_peers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    let t2 = d.trunks.iter_mut().find(|t| t.id == "T2").unwrap();
    t2.acl.push("::ffff:192.0.2.0/120".parse().unwrap());
    let s = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    let ip = |a: &str| s.trunk_by_ip(a.parse().unwrap()).map(|t| t.id);
    // Kamailio hands an IPv4 peer over as IPv4, whichever way the ACL wrote it.
    assert_eq!(ip("192.0.2.77"), Some("T2"));
    assert_eq!(ip("::ffff:192.0.2.77"), Some("T2"));
    assert_eq!(ip("192.0.3.1"), None);
    // It is the IPv4 network, so naming it for a second trunk is naming it twice.
    let t1 = d.trunks.iter_mut().find(|t| t.id == "T1").unwrap();
    t1.acl.push("192.0.2.0/24".parse().unwrap());
    let err = compile(&d, 2).unwrap_err().to_string();
    assert!(
        err.contains("an IPv4 network is assigned to two trunks (T1 and T2)"),
        "{err}"
    );
}

#[test]
fn rate_centre_names_match_whatever_their_case() {
    // The LERG and the local calling table often come from different sources; one
    // writing "Denver" and the other "DENVER" must still make Denver -> Boulder LOCAL.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    for b in &mut d.lerg {
        b.rate_center = match b.rate_center.as_str() {
            "DENVER" => "Denver".into(),
            "BOULDER" => " boulder".into(),
            other => other.into(),
        };
    }
    d.local_calling[0].a = warp_core::model::rate_center_key("co", "denver");
    let s = Snapshot::from_bytes(&compile(&d, 42).unwrap()).unwrap();
    let d = s.route(&req("C1", DENVER, "3034449999")).unwrap();
    assert_eq!(d.jurisdiction, Jurisdiction::Zone(Zone::Local));
}

#[test]
fn ani_forms_are_all_understood() {
    let s = fixture();
    for ani in [
        "+13036291111",
        "13036291111",
        "sip:+13036291111@pbx.example;user=phone",
        "tel:303-629-1111",
    ] {
        let d = s.route(&req("C1", Some(ani), "3034449999")).unwrap();
        assert_eq!(d.jurisdiction, Jurisdiction::Zone(Zone::Local), "{ani}");
    }
}

#[test]
fn a_trunk_network_is_matched_longest_first_and_never_shared() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    let net = |cidr: &str| {
        let (addr, len) = cidr.split_once('/').unwrap();
        warp_core::model::IpNet {
            addr: addr.parse().unwrap(),
            len: len.parse().unwrap(),
        }
    };
    // A longer IPv6 prefix inside T3's 2001:db8::/32 belongs to T1.
    let t1 = d.trunks.iter_mut().find(|t| t.id == "T1").unwrap();
    t1.acl.push(net("2001:db8:1::/48"));
    let snap = Snapshot::from_bytes(&compile(&d, 1).unwrap()).unwrap();
    let trunk_of = |ip: &str| snap.trunk_by_ip(ip.parse().unwrap()).map(|t| t.id);
    assert_eq!(trunk_of("2001:db8:1::5"), Some("T1"));
    assert_eq!(trunk_of("2001:db8:2::5"), Some("T3"));
    // T3's network again, written with host bits set: the same network, refused.
    let t1 = d.trunks.iter_mut().find(|t| t.id == "T1").unwrap();
    t1.acl.push(net("2001:db8::1/32"));
    let err = compile(&d, 2).unwrap_err().to_string();
    assert!(
        err.contains("an IPv6 network is assigned to two trunks (T1 and T3)"),
        "{err}"
    );
}

#[test]
fn a_dataset_that_names_one_thing_twice_or_splits_a_second_is_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let good = read_dir(&dir).unwrap();
    let refused = |change: &dyn Fn(&mut warp_core::model::Dataset)| {
        let mut d = good.clone();
        change(&mut d);
        compile(&d, 1).unwrap_err().to_string()
    };
    let twice = [
        refused(&|d| d.customers.push(d.customers[0].clone())),
        refused(&|d| d.vendors.push(d.vendors[0].clone())),
        refused(&|d| d.partitions.push(d.partitions[0].clone())),
        refused(&|d| d.trunks.push(d.trunks[0].clone())),
        refused(&|d| {
            let credential = d.trunks[0].credentials[0].clone();
            d.trunks[1].credentials.push(credential);
        }),
    ];
    for err in twice {
        assert!(err.contains("is listed twice"), "{err}");
    }
    // The snapshot keeps whole seconds: a rate switching at .900 would switch early.
    let err = refused(&|d| {
        d.vendor_rates[0].effective_from += chrono::Duration::milliseconds(900);
    });
    assert!(err.contains("has a fraction of a second"), "{err}");
}

#[test]
fn a_lerg_code_without_a_rate_centre_is_refused_not_made_local() {
    // Two Colorado codes with no rate centre would share the key "CO/": Denver ->
    // Colorado Springs would be priced LOCAL instead of INTRASTATE.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    for b in &mut d.lerg {
        if matches!(b.rate_center.as_str(), "DENVER" | "COLOSPGS") {
            b.rate_center = " ".into();
        }
    }
    let err = compile(&d, 1).map(drop).unwrap_err().to_string();
    assert!(
        err.contains("303629") && err.contains("rate centre"),
        "{err}"
    );
}

#[test]
fn ocns_match_whatever_their_case() {
    // Importers uppercase OCNs, but a dataset built another way may not: a deck's
    // "swbt" must price the LERG's "SWBT" (Denver -> Boulder, VC's LOCAL 0.002).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    for b in d.lerg.iter_mut().filter(|b| b.ocn == "0202") {
        b.ocn = "Swbt".into();
    }
    for r in &mut d.vendor_rates {
        if let warp_core::model::RateKey::OcnLata { ocn, .. } = &mut r.key {
            if ocn == "0202" {
                *ocn = "swbt".into();
            }
        }
    }
    let s = Snapshot::from_bytes(&compile(&d, 42).unwrap()).unwrap();
    let d = s.route(&req("C1", DENVER, "3034449999")).unwrap();
    assert_eq!(vendors(&d)[0], ("VC", "0.002".into()));
    assert_eq!(d.terminating.unwrap().ocn(), "SWBT");
}

#[test]
fn a_local_calling_pair_naming_a_rate_centre_no_lerg_code_has_is_refused() {
    // Built in memory, as the database load does: compile checks it whatever the source.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture");
    let mut d = read_dir(&dir).unwrap();
    d.local_calling[0].b = warp_core::model::rate_center_key("CO", "BOULDDER");
    let err = compile(&d, 1).map(drop).unwrap_err().to_string();
    assert!(
        err.contains("CO/DENVER - CO/BOULDDER") && err.contains("CO/BOULDDER is in no LERG code"),
        "{err}"
    );
}

/// The fixture's dataset, for a test that changes it before compiling.
fn dataset() -> warp_core::model::Dataset {
    read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture")).unwrap()
}

fn compiled(d: &warp_core::model::Dataset) -> Snapshot {
    Snapshot::from_bytes(&compile(d, 1).unwrap()).unwrap()
}

#[test]
fn a_rate_applies_from_its_first_second_up_to_not_including_its_end() {
    // VD's 1212 row at 0.009 ends, and the 0.003 one starts, at 2026-06-01T00:00:00Z.
    let at = |s: &Snapshot, when: &str| {
        let mut r = req("C1", DENVER, "2125550000");
        r.at = t(when);
        let d = s.route(&r).unwrap();
        let vd = d.routes.iter().find(|r| r.vendor_id == "VD").unwrap();
        vd.vendor_rate.to_string()
    };
    let s = fixture();
    assert_eq!(at(&s, "2026-05-31T23:59:59Z"), "0.009");
    assert_eq!(at(&s, "2026-06-01T00:00:00Z"), "0.003");
    // Without the newer row, the old one still ends there: VD falls back to its
    // 1 row (INTERSTATE 0.008).
    let mut d = dataset();
    d.vendor_rates
        .retain(|r| !(r.owner == "VD" && r.effective_from == t("2026-06-01T00:00:00Z")));
    let s = compiled(&d);
    assert_eq!(at(&s, "2026-05-31T23:59:59Z"), "0.009");
    assert_eq!(at(&s, "2026-06-01T00:00:00Z"), "0.008");
}

#[test]
fn equal_rate_and_priority_are_ordered_by_vendor_id_not_dataset_order() {
    // VA and VB both price Colorado Springs at 0.005 (after VD, forced); with equal
    // priorities the id decides, however the dataset lists the vendors.
    let mut d = dataset();
    d.vendors.reverse();
    for v in &mut d.vendors {
        v.priority = 1;
    }
    let after_forced = |d: &warp_core::model::Dataset| {
        let s = compiled(d);
        let dec = s.route(&req("C1", DENVER, "7195550000")).unwrap();
        let ids: Vec<String> = dec.routes[1..].iter().map(|r| r.vendor_id.into()).collect();
        ids
    };
    assert_eq!(after_forced(&d), ["VA", "VB"]);
    // A lower priority number goes first whatever the id.
    d.vendors
        .iter_mut()
        .find(|v| v.id == "VB")
        .unwrap()
        .priority = 0;
    assert_eq!(after_forced(&d), ["VB", "VA"]);
}

#[test]
fn a_vendor_is_credited_to_the_first_open_partition_by_priority() {
    // VD is in P1 and P2. Given to C1 at priority 0, P2 comes first and offers VD;
    // closed (outside its window), P1 offers it.
    let mut d = dataset();
    d.customer_partitions
        .push(warp_core::model::CustomerPartition {
            ban: "C1".into(),
            partition: "P2".into(),
            priority: 0,
            schedule: Default::default(),
        });
    let partition = |d: &warp_core::model::Dataset| {
        let s = compiled(d);
        let dec = s.route(&req("C1", DENVER, "8005551234")).unwrap();
        dec.routes[0].partition.map(str::to_string)
    };
    assert_eq!(partition(&d).as_deref(), Some("P2"));
    d.customer_partitions.last_mut().unwrap().schedule.to = Some(t("2026-01-01T00:00:00Z"));
    assert_eq!(partition(&d).as_deref(), Some("P1"));
}

#[test]
fn an_overnight_window_follows_local_time_across_a_dst_change() {
    // A global override to VD, Saturdays 22:00 to 06:00 New York time. The night of
    // 7-8 March 2026 springs forward: it starts at 03:00Z (EST) and ends at 10:00Z (EDT).
    let mut d = dataset();
    let ny = chrono_tz::America::New_York;
    let sat = warp_core::schedule::WeeklyWindow::parse_days("Sat").unwrap();
    d.overrides.push(warp_core::model::Override {
        ban: None,
        prefix: warp_core::Prefix::parse("1303").unwrap(),
        vendor: "VD".into(),
        schedule: warp_core::schedule::Schedule {
            window: Some(warp_core::schedule::WeeklyWindow::new(ny, sat, 22 * 60, 6 * 60).unwrap()),
            ..Default::default()
        },
    });
    let s = compiled(&d);
    let forced = |when: &str| {
        let mut r = req("C1", DENVER, "3034449999");
        r.at = t(when);
        s.route(&r).unwrap().routes[0].forced
    };
    for (when, expected) in [
        ("2026-03-08T02:59:00Z", false), // Sat 21:59 EST
        ("2026-03-08T03:00:00Z", true),  // Sat 22:00 EST
        ("2026-03-08T09:59:00Z", true),  // Sun 05:59 EDT
        ("2026-03-08T10:00:00Z", false), // Sun 06:00 EDT (05:00 in EST)
        ("2026-03-09T03:30:00Z", false), // Sun 23:30 EDT: Sunday is not in the window
    ] {
        assert_eq!(forced(when), expected, "{when}");
    }
}
