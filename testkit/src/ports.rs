//! Ports for the services under test: free ones probed on loopback, and blocks below the
//! kernel's ephemeral range.
//!
//! rtpengine binds its media ports with `SO_REUSEADDR`, so a media port can land on top
//! of another daemon's ng socket (or Kamailio's SIP socket) and swallow what is sent to
//! it. Every port the tests probe with `bind(…:0)` comes from the kernel's ephemeral
//! range, so blocks are kept below that range and cannot meet them. For the same reason
//! a daemon that is killed and started again on its old ports takes them from a block:
//! while it is down, no probe elsewhere can take them.

use std::io;
use std::net::{TcpListener, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Ports under this are left to well-known services.
const FLOOR: u16 = 10_000;
/// Every block is this wide, whatever part of it a daemon uses.
const STRIDE: u16 = 100;

/// A UDP port on loopback that was free a moment ago (from the ephemeral range).
pub fn free_udp_port() -> io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A TCP port on loopback that was free a moment ago (from the ephemeral range).
pub fn free_tcp_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How many free ports a daemon is tried on before its start is given up.
const START_ATTEMPTS: usize = 5;

/// `start` on a port picked free, again on another when it fails: a port picked free
/// can be taken before the daemon binds it. The last failure when none worked.
pub(crate) fn start_on_a_free_port<T>(
    mut start: impl FnMut(u16) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match start(free_tcp_port()?) {
            Ok(started) => return Ok(started),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port to start on")))
}

/// `size` ports (at most 100) below the ephemeral range: a different block for each
/// call in this process, offset by pid so test binaries run side by side by hand rarely
/// share one.
pub fn port_block(size: u16) -> RangeInclusive<u16> {
    assert!(
        (1..=STRIDE).contains(&size),
        "a port block holds 1 to {STRIDE} ports"
    );
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let low = ephemeral_low();
    let blocks = usize::from(low.saturating_sub(FLOOR) / STRIDE);
    assert!(
        blocks >= 16,
        "net.ipv4.ip_local_port_range starts at {low}: too few ports below it for test port blocks"
    );
    let index = (std::process::id() as usize * 16 + NEXT.fetch_add(1, Ordering::Relaxed)) % blocks;
    let start = FLOOR + index as u16 * STRIDE;
    start..=start + size - 1
}

/// The low end of the kernel's ephemeral port range (Linux's default when unreadable).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_distinct_and_below_every_probed_port() {
        let a = port_block(60);
        let b = port_block(100);
        assert_eq!(a.clone().count(), 60);
        assert_eq!(b.clone().count(), 100);
        assert!(a.end() < b.start() || b.end() < a.start(), "{a:?} {b:?}");
        for _ in 0..50 {
            let probed = free_udp_port().unwrap();
            assert!(probed > *a.end() && probed > *b.end());
        }
    }
}
