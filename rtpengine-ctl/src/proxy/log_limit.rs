//! A log line that may come at most once a minute however often its cause does: a
//! flood of junk datagrams or of Redis refusals must not flood the log too.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct OncePerMinute(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    last_line: Option<Instant>,
    /// Occurrences since the last line, not named in one.
    unnamed: u64,
}

impl OncePerMinute {
    /// One more occurrence: `Some(n)` when a line is due (`n`: those since the last line
    /// that went unnamed), `None` when one came within the minute.
    pub fn due(&self) -> Option<u64> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.last_line.is_some_and(|at| at.elapsed() < EVERY) {
            state.unnamed += 1;
            return None;
        }
        state.last_line = Some(Instant::now());
        Some(std::mem::take(&mut state.unnamed))
    }
}
