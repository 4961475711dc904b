//! A small routing snapshot for the routing tests: customer C1 on trunks T1 (source
//! 127.0.0.1) and T4 (user `t4user` from 127.0.0.4), customer C2 on trunks T2
//! (127.0.0.3) and T3 (users `t3user` and `t3@pbx.test` from anywhere; `t3nopass` has
//! no password yet),
//! and optionally T6 (source ::1, an IPv6 ACL: [`Data::ipv6_trunk`]),
//! two vendors for +1 destinations (CHEAP below DEAR unless the rates say otherwise),
//! one DNO'd ANI. Every password is [`PASSWORD`] in [`REALM`].

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use warp_core::model::*;
use warp_core::rating::Increments;
use warp_core::schedule::Schedule;
use warp_core::{Number, Prefix, Zone};

pub const DNO_ANI: &str = "+13035550199";
/// The digest realm the credentials' ha1 are hashed in.
pub const REALM: &str = "warp.test";
pub const PASSWORD: &str = "secret";

fn rate_row(owner: &str, prefix: &str, rate: &str) -> RateRow {
    let rate: Decimal = rate.parse().unwrap();
    RateRow {
        owner: owner.into(),
        key: RateKey::Prefix(Prefix::parse(prefix).unwrap()),
        effective_from: Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
        effective_to: None,
        rates: [Some(rate); 6],
        increments: Increments::new(6, 6).unwrap(),
        connect_fee: Decimal::ZERO,
        minimum_charge: Decimal::ZERO,
    }
}

/// What varies between the tests' snapshots.
#[derive(Debug, Clone)]
pub struct Data {
    pub generation: u64,
    /// Gateway port and per-minute rate of vendor CHEAP, then DEAR.
    pub cheap: (u16, &'static str),
    pub dear: (u16, &'static str),
    /// URI parameters of CHEAP's gateway, then DEAR's (`;transport=tcp`); none by default.
    pub uri_params: (&'static str, &'static str),
    /// Host of CHEAP's gateway, then DEAR's (`[::1]`); 127.0.0.1 by default.
    pub gateway_hosts: (&'static str, &'static str),
    /// The user part of CHEAP's dialstring, then DEAR's (a tech prefix, `1234#{national}`);
    /// `+{number}` by default.
    pub dialled_as: (&'static str, &'static str),
    /// Whether C1 has trunk T6 too, known by its source ::1.
    pub ipv6_trunk: bool,
    /// T1's limits: concurrent calls, calls per second.
    pub t1_limits: (u32, u32),
    /// How many more trunks C2 has, `X<n>` from [`crowd_source`]`(n)`, and their limits.
    pub crowd: (u32, (u32, u32)),
    /// The DID inventory's numbers assigned for voice: (number, BAN); none by default.
    pub numbers: &'static [(&'static str, &'static str)],
    /// The trunks whose callers, and the vendors whose side of a call, are sent no
    /// in-dialog keepalives (by id); none by default.
    pub keepalive_off: &'static [&'static str],
}

/// The source address of trunk `X<n>` of [`Data::crowd`].
pub fn crowd_source(n: u32) -> String {
    format!("127.2.{}.{}", n / 250, n % 250 + 1)
}

impl Default for Data {
    fn default() -> Self {
        Data {
            generation: 1,
            cheap: (5090, "0.004"),
            dear: (5091, "0.009"),
            uri_params: ("", ""),
            gateway_hosts: ("127.0.0.1", "127.0.0.1"),
            dialled_as: ("+{number}", "+{number}"),
            ipv6_trunk: false,
            t1_limits: (100, 100),
            crowd: (0, (0, 0)),
            numbers: &[],
            keepalive_off: &[],
        }
    }
}

fn customer(ban: &str) -> Customer {
    Customer {
        ban: ban.into(),
        name: format!("Customer {ban}"),
        rate_plan: "RETAIL".into(),
        min_margin: Decimal::ZERO,
        rate_limit: None,
        max_results: 5,
        enabled: true,
    }
}

/// A trunk known by its address alone.
fn trunk(id: &str, ban: &str, ip: impl Into<IpAddr>, limits: (u32, u32)) -> Trunk {
    let addr = ip.into();
    Trunk {
        id: id.into(),
        ban: ban.into(),
        acl: vec![IpNet {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }],
        credentials: Vec::new(),
        auth: TrunkAuth::IpAcl,
        max_concurrent: limits.0,
        max_cps: limits.1,
        enabled: true,
        keepalive: true,
    }
}

/// `trunk`, asking for `users`' credentials as `auth` says.
fn with_users(trunk: Trunk, auth: TrunkAuth, users: &[(&str, bool)]) -> Trunk {
    use md5::{Digest, Md5};
    let credentials = users
        .iter()
        .map(|&(user, password_set)| Credential {
            username: user.into(),
            realm: REALM.into(),
            ha1: password_set
                .then(|| format!("{:x}", Md5::digest(format!("{user}:{REALM}:{PASSWORD}")))),
        })
        .collect();
    Trunk {
        auth,
        credentials,
        ..trunk
    }
}

fn vendor(id: &str, user: &str, host: &str, gateway_port: u16, uri_params: &str) -> Vendor {
    Vendor {
        id: id.into(),
        name: format!("{id} carrier"),
        kind: VendorKind::Dnis,
        priority: 1,
        indeterminate_zone: Zone::Intrastate,
        gateways: vec![format!("sip:{user}@{host}:{gateway_port}{uri_params}")],
        enabled: true,
        keepalive: true,
    }
}

impl Data {
    /// The default rates with both vendors' gateways on free ports, for the tests that
    /// start them.
    pub fn with_gateways() -> Data {
        Data {
            cheap: (super::free_udp_port(), "0.004"),
            dear: (super::free_udp_port(), "0.009"),
            ..Data::default()
        }
    }

    /// Compiles the dataset and publishes it at `path` (atomic rename, as production
    /// does).
    pub fn publish(&self, path: &Path) {
        warp_core::snapshot::publish(&self.compile(), path).expect("publish snapshot");
    }

    /// As [`Data::publish`], with `pad` zero bytes after the sections, counted in the
    /// checksums: a valid snapshot that takes as long to verify as a large one.
    pub fn publish_padded(&self, path: &Path, pad: usize) {
        use warp_core::snapshot::format::{header_hash, payload_hash, Header};
        use warp_core::snapshot::format::{ENTRY_LEN, HEADER_LEN};
        let mut bytes = self.compile();
        bytes.resize(bytes.len() + pad, 0);
        let mut header: Header = bytemuck::pod_read_unaligned(&bytes[..HEADER_LEN]);
        let table_end = HEADER_LEN + ENTRY_LEN * header.section_count as usize;
        header.file_len = bytes.len() as u64;
        header.payload_hash = payload_hash(&bytes[table_end..]);
        header.header_hash = header_hash(&header, &bytes[HEADER_LEN..table_end]);
        bytes[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&header));
        warp_core::snapshot::publish(&bytes, path).expect("publish snapshot");
    }

    fn compile(&self) -> Vec<u8> {
        warp_core::snapshot::compile(&self.dataset(), self.generation).expect("compile snapshot")
    }

    /// The routing data itself.
    pub fn dataset(&self) -> Dataset {
        let always = Schedule {
            from: None,
            to: None,
            window: None,
        };
        Dataset {
            dno: vec![Number::parse(DNO_ANI).unwrap()],
            customers: vec![customer("C1"), customer("C2")],
            trunks: [
                trunk("T1", "C1", Ipv4Addr::LOCALHOST, self.t1_limits),
                trunk("T2", "C2", Ipv4Addr::new(127, 0, 0, 3), (100, 100)),
                // Its address lists no call of its own: it asks for credentials alone.
                with_users(
                    trunk("T3", "C2", Ipv4Addr::new(127, 0, 0, 5), (100, 100)),
                    TrunkAuth::Credentials,
                    &[("t3user", true), ("t3@pbx.test", true), ("t3nopass", false)],
                ),
                with_users(
                    trunk("T4", "C1", Ipv4Addr::new(127, 0, 0, 4), (100, 100)),
                    TrunkAuth::IpAndCredentials,
                    &[("t4user", true)],
                ),
            ]
            .into_iter()
            .chain(
                self.ipv6_trunk
                    .then(|| trunk("T6", "C1", Ipv6Addr::LOCALHOST, (100, 100))),
            )
            .chain((0..self.crowd.0).map(|n| {
                let source: Ipv4Addr = crowd_source(n).parse().unwrap();
                trunk(&format!("X{n}"), "C2", source, self.crowd.1)
            }))
            .map(|t| Trunk {
                keepalive: !self.keepalive_off.contains(&t.id.as_str()),
                ..t
            })
            .collect(),
            vendors: vec![
                vendor(
                    "CHEAP",
                    self.dialled_as.0,
                    self.gateway_hosts.0,
                    self.cheap.0,
                    self.uri_params.0,
                ),
                vendor(
                    "DEAR",
                    self.dialled_as.1,
                    self.gateway_hosts.1,
                    self.dear.0,
                    self.uri_params.1,
                ),
            ]
            .into_iter()
            .map(|v| Vendor {
                keepalive: !self.keepalive_off.contains(&v.id.as_str()),
                ..v
            })
            .collect(),
            vendor_rates: vec![
                rate_row("CHEAP", "1", self.cheap.1),
                rate_row("DEAR", "1", self.dear.1),
            ],
            customer_rates: vec![rate_row("RETAIL", "1", "0.02")],
            partitions: vec![Partition {
                id: "P1".into(),
                name: "Default".into(),
                vendors: vec!["DEAR".into(), "CHEAP".into()],
            }],
            customer_partitions: ["C1", "C2"]
                .map(|ban| CustomerPartition {
                    ban: ban.into(),
                    partition: "P1".into(),
                    priority: 1,
                    schedule: always,
                })
                .into(),
            numbers: self
                .numbers
                .iter()
                .map(|(number, ban)| AssignedNumber {
                    number: Number::parse(number).unwrap(),
                    ban: ban.to_string(),
                })
                .collect(),
            ..Dataset::default()
        }
    }
}

/// The default dataset at `path`.
pub fn publish(path: &Path) {
    Data::default().publish(path);
}
