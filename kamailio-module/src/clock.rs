//! The time readings the module's processes share: wall-clock Unix milliseconds (CDR
//! events, pauses and deadlines kept in shared memory) and CLOCK_MONOTONIC (a wait
//! measured across processes, where a std `Instant` cannot travel).

use std::time::Duration;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The time on CLOCK_MONOTONIC, the same in every process of the host.
pub fn monotonic() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the struct it is given; CLOCK_MONOTONIC is always there on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
