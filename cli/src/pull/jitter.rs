//! The random parts of the pull loop's waits, so that a fleet of edges does not pull in
//! step: the wait between polls, and the wait after an announcement (`--spread`).
//!
//! Polls, ±10 %: edges started together (a fleet rolled out at once, a data centre back
//! from an outage) drift apart within a few rounds, while the poll, the safety net when
//! an announcement is missed, still comes within 1.1 × `--every`. A wider spread would
//! scatter them sooner but stretch that bound; a narrower one leaves them bunched.

use rand::Rng;
use std::time::Duration;

/// `every`, give or take a tenth of it, uniformly.
pub fn spread(every: Duration) -> Duration {
    let tenth = every / 10;
    every - tenth + below(tenth * 2)
}

/// Uniformly from zero up to, not including, `limit`; zero when `limit` is.
pub fn below(limit: Duration) -> Duration {
    if limit.is_zero() {
        return Duration::ZERO;
    }
    rand::thread_rng().gen_range(Duration::ZERO..limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_spread_over_a_tenth_either_side() {
        let every = Duration::from_secs(60);
        let waits: Vec<Duration> = (0..1000).map(|_| spread(every)).collect();
        let (min, max) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
        assert!(*min >= Duration::from_secs(54) && *max <= Duration::from_secs(66));
        // Both ends are reached, not a narrower band (all 1000 draws missing either
        // side's outer 2 s: a chance under 1 in 10^78).
        assert!(*min < Duration::from_secs(56) && *max > Duration::from_secs(64));
    }

    #[test]
    fn one_second_still_spreads() {
        let waits: std::collections::HashSet<Duration> =
            (0..100).map(|_| spread(Duration::from_secs(1))).collect();
        assert!(waits.len() > 10, "{waits:?}");
    }

    #[test]
    fn delays_fall_anywhere_below_the_limit() {
        let limit = Duration::from_secs(5);
        let delays: Vec<Duration> = (0..1000).map(|_| below(limit)).collect();
        assert!(delays.iter().all(|d| *d < limit), "{delays:?}");
        // Both ends are reached, not a narrower band (all 1000 draws missing either
        // outer half second: a chance under 1 in 10^45).
        let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
        assert!(*min < Duration::from_millis(500), "{min:?}");
        assert!(*max > Duration::from_millis(4500), "{max:?}");
    }

    #[test]
    fn no_limit_is_no_delay() {
        assert_eq!(below(Duration::ZERO), Duration::ZERO);
    }
}
