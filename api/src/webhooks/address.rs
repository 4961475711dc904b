//! Which addresses a webhook may be sent to: only globally reachable ones. The blocks
//! refused are those IANA's special-purpose registries (IPv4 and IPv6) mark not
//! globally reachable, multicast, and the IPv6 space outside global unicast
//! (`2000::/3`), which IANA has not allocated for use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A block of addresses and what the registries call it.
struct Block {
    first: IpAddr,
    prefix: u8,
    name: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, name: &'static str) -> Block {
    let first = IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    Block {
        first,
        prefix,
        name,
    }
}

const fn v6(segments: [u16; 8], prefix: u8, name: &'static str) -> Block {
    let [a, b, c, d, e, f, g, h] = segments;
    let first = IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h));
    Block {
        first,
        prefix,
        name,
    }
}

/// The blocks refused, the first that holds an address naming it: a more specific
/// block comes before the one it lies in.
const REFUSED: &[Block] = &[
    v4(0, 0, 0, 0, 8, "this network, RFC 791"),
    v4(10, 0, 0, 0, 8, "private-use, RFC 1918"),
    v4(100, 64, 0, 0, 10, "shared address space, CGNAT, RFC 6598"),
    v4(127, 0, 0, 0, 8, "loopback, RFC 1122"),
    v4(169, 254, 0, 0, 16, "link-local, RFC 3927"),
    v4(172, 16, 0, 0, 12, "private-use, RFC 1918"),
    // Whole: its two globally reachable entries (PCP and TURN anycast, 192.0.0.9 and
    // .10) are answered by the nearest such server, which may be in our own network.
    v4(192, 0, 0, 0, 24, "IETF protocol assignments, RFC 6890"),
    v4(192, 0, 2, 0, 24, "documentation, TEST-NET-1, RFC 5737"),
    v4(
        192,
        88,
        99,
        0,
        24,
        "6to4 relay anycast, deprecated, RFC 7526",
    ),
    v4(192, 168, 0, 0, 16, "private-use, RFC 1918"),
    v4(198, 18, 0, 0, 15, "benchmarking, RFC 2544"),
    v4(198, 51, 100, 0, 24, "documentation, TEST-NET-2, RFC 5737"),
    v4(203, 0, 113, 0, 24, "documentation, TEST-NET-3, RFC 5737"),
    v4(224, 0, 0, 0, 4, "multicast, RFC 5771"),
    v4(255, 255, 255, 255, 32, "limited broadcast, RFC 919"),
    v4(240, 0, 0, 0, 4, "reserved, RFC 1112"),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified, RFC 4291"),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback, RFC 4291"),
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-compatible, deprecated, RFC 4291",
    ),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use IPv4/IPv6 translation, RFC 8215",
    ),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only, RFC 6666"),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo, RFC 4380"),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "benchmarking, RFC 5180"),
    v6(
        [0x2001, 0x10, 0, 0, 0, 0, 0, 0],
        28,
        "ORCHID, deprecated, RFC 4843",
    ),
    // Whole, as its IPv4 counterpart: what in it is global (anycast PCP, TURN, DNS-SD
    // SRP; AMT, AS112, ORCHIDv2, DRIP) serves no webhooks.
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments, RFC 2928",
    ),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation, RFC 3849",
    ),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation, RFC 9637"),
    v6(
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "segment routing SIDs, RFC 9602",
    ),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique-local, RFC 4193"),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local, RFC 4291"),
    v6(
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "site-local, deprecated, RFC 3879",
    ),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast, RFC 4291"),
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        3,
        "reserved, not global unicast, RFC 4291",
    ),
    v6(
        [0x4000, 0, 0, 0, 0, 0, 0, 0],
        2,
        "reserved, not global unicast, RFC 4291",
    ),
    v6(
        [0x8000, 0, 0, 0, 0, 0, 0, 0],
        1,
        "reserved, not global unicast, RFC 4291",
    ),
];

impl Block {
    fn holds(&self, ip: IpAddr) -> bool {
        let (first, ip, bits) = match (self.first, ip) {
            (IpAddr::V4(f), IpAddr::V4(a)) => {
                (u128::from(u32::from(f)), u128::from(u32::from(a)), 32)
            }
            (IpAddr::V6(f), IpAddr::V6(a)) => (u128::from(f), u128::from(a), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        first.checked_shr(host_bits) == ip.checked_shr(host_bits)
    }
}

/// Why `ip` is not reachable on the public internet (the block it lies in), or `None`
/// when it is. An IPv6 address that a host, a NAT64 translator or a 6to4 relay turns
/// into an IPv4 one is judged as that IPv4 address.
pub fn not_public(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    REFUSED.iter().find(|b| b.holds(ip)).map(|b| b.name)
}

/// The address `url` names as its host, if it is written as one and is not public,
/// with the block it lies in.
pub fn private_literal(url: &str) -> Option<(IpAddr, &'static str)> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()?;
    not_public(ip).map(|why| (ip, why))
}

/// The IPv4 address an IPv6 one stands for where a host, a NAT64 translator or a 6to4
/// relay would turn it into IPv4: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
/// (`::ffff:0:a.b.c.d`), NAT64's well-known prefix (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:AABB:CCDD::/48`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = v6.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match v6.segments() {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0xffff, 0, ..] => Some(last),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(last),
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per block: its first and last address, and where it borders public space the
    /// addresses just outside it.
    const REFUSED_ADDRESSES: &[&str] = &[
        "0.0.0.0",
        "0.255.255.255",
        "10.0.0.0",
        "10.255.255.255",
        "100.64.0.0",
        "100.127.255.255",
        "127.0.0.0",
        "127.255.255.255",
        "169.254.0.0",
        "169.254.255.255",
        "172.16.0.0",
        "172.31.255.255",
        "192.0.0.0",
        "192.0.0.9",
        "192.0.0.10",
        "192.0.0.255",
        "192.0.2.0",
        "192.0.2.255",
        "192.88.99.0",
        "192.88.99.255",
        "192.168.0.0",
        "192.168.255.255",
        "198.18.0.0",
        "198.19.255.255",
        "198.51.100.0",
        "198.51.100.255",
        "203.0.113.0",
        "203.0.113.255",
        "224.0.0.0",
        "239.255.255.255",
        "240.0.0.0",
        "255.255.255.254",
        "255.255.255.255",
        "::",
        "::1",
        "::2",
        "::ffff:ffff",
        "64:ff9b:1::",
        "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        "100::",
        "100::ffff:ffff:ffff:ffff",
        "2001::",
        "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:2::",
        "2001:2:0:ffff:ffff:ffff:ffff:ffff",
        "2001:10::",
        "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:1::1",
        "2001:3::1",
        "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db8::",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "3fff::",
        "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
        "5f00::",
        "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fc00::",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::",
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fec0::",
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "ff00::",
        "ff02::1",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "4000::",
        "8000::",
        // A non-public IPv4 address, carried in IPv6 to a host, translator or relay.
        "::ffff:10.0.0.1",
        "::ffff:198.18.0.1",
        "::ffff:0:10.0.0.1",
        "::ffff:0:192.0.0.9",
        "64:ff9b::10.0.0.1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::169.254.169.254",
        "64:ff9b::198.18.0.1",
        "64:ff9b::203.0.113.9",
        "2002:a00:1::1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "2002:c612:1::1",
        "2002:c000:9::1",
        // IPv4-compatible addresses are refused whatever they carry.
        "::8.8.8.8",
        "::127.0.0.1",
        // Teredo: the IPv4 server and (obfuscated) client it tunnels to.
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    ];

    const PUBLIC_ADDRESSES: &[&str] = &[
        "1.0.0.0",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "191.255.255.255",
        "192.0.1.0",
        "192.0.3.0",
        "192.31.196.1",
        "192.52.193.1",
        "192.88.98.255",
        "192.88.100.0",
        "192.167.255.255",
        "192.169.0.0",
        "192.175.48.1",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.99.255",
        "198.51.101.0",
        "203.0.112.255",
        "203.0.114.0",
        "223.255.255.255",
        "2000::",
        "2001:200::",
        "2001:4860::8888",
        "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db9::",
        "2620:4f:8000::1",
        "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "3fff:1000::",
        "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "::ffff:8.8.8.8",
        "::ffff:0:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "64:ff9b::198.20.0.1",
        "2002:808:808::1",
    ];

    #[test]
    fn every_special_purpose_block_is_refused_and_its_neighbours_are_not() {
        for ip in REFUSED_ADDRESSES {
            let why = not_public(ip.parse().unwrap());
            assert!(why.is_some(), "{ip} was taken for public");
        }
        for ip in PUBLIC_ADDRESSES {
            let why = not_public(ip.parse().unwrap());
            assert_eq!(why, None, "{ip}");
        }
    }

    #[test]
    fn addresses_are_named_by_their_own_block() {
        for (ip, name) in [
            ("198.18.7.1", "benchmarking, RFC 2544"),
            ("192.0.0.170", "IETF protocol assignments, RFC 6890"),
            ("255.255.255.255", "limited broadcast, RFC 919"),
            ("::ffff:100.64.0.1", "shared address space, CGNAT, RFC 6598"),
            ("2001:db8::1", "documentation, RFC 3849"),
            ("2001::1", "Teredo, RFC 4380"),
            ("fd12::1", "unique-local, RFC 4193"),
            ("::1", "loopback, RFC 4291"),
        ] {
            assert_eq!(not_public(ip.parse().unwrap()), Some(name), "{ip}");
        }
    }

    /// The last address of block `b`.
    fn last(b: &Block) -> IpAddr {
        let prefix = u32::from(b.prefix);
        match b.first {
            IpAddr::V4(f) => (u32::from(f) | u32::MAX.checked_shr(prefix).unwrap_or(0))
                .to_be_bytes()
                .into(),
            IpAddr::V6(f) => (u128::from(f) | u128::MAX.checked_shr(prefix).unwrap_or(0))
                .to_be_bytes()
                .into(),
        }
    }

    /// A block that a block before it covers whole would name nothing: its first or
    /// its last address must be named by it.
    #[test]
    fn no_block_is_hidden_by_an_earlier_one() {
        for b in REFUSED {
            let named = |ip: IpAddr| REFUSED.iter().find(|o| o.holds(ip)).map(|o| o.name);
            assert!(
                [named(b.first), named(last(b))].contains(&Some(b.name)),
                "{}/{} ({}) is hidden",
                b.first,
                b.prefix,
                b.name
            );
        }
    }
}
