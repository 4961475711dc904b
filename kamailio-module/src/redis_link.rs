//! A Redis connection of this process for work done inside a SIP worker (LNP cache,
//! cluster-wide CPS), bounded by a timeout. After a failure the process leaves Redis
//! alone for a second — logged once — instead of paying a connect timeout on every
//! call; callers then fall back to what they can do without it. An error reply (one
//! key of the wrong type, a read-only replica refusing a write) is that command's
//! failure only: the connection goes on serving the next call.

use crate::log::lm_warn;
use crate::redis::{self, Connection};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Error replies are logged at most this often: one bad key would otherwise log a line
/// per call.
const LOG_REFUSALS_EVERY: Duration = Duration::from_secs(60);

struct State {
    /// The process the connection belongs to (a child must not use its parent's).
    pid: u32,
    conn: Option<Connection>,
    paused_until: Option<Instant>,
    refusal_logged: Option<Instant>,
}

pub struct Link {
    /// Names the user in the log line.
    what: &'static str,
    state: Mutex<State>,
}

impl Link {
    pub const fn new(what: &'static str) -> Link {
        Link {
            what,
            state: Mutex::new(State {
                pid: 0,
                conn: None,
                paused_until: None,
                refusal_logged: None,
            }),
        }
    }

    /// Runs `op` on the connection to `redis_url`; `None` when Redis is unavailable.
    pub fn with<R>(
        &self,
        timeout: Duration,
        op: impl FnOnce(&mut Connection) -> Result<R, String>,
    ) -> Option<R> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        if state.pid != pid {
            *state = State {
                pid,
                conn: None,
                paused_until: None,
                refusal_logged: None,
            };
        }
        if state.paused_until.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        state.conn.take_if(|c| c.closed());
        let result = match state.conn.as_mut() {
            Some(c) => op(c),
            None => redis::target()
                .and_then(|t| Connection::open(t, timeout, timeout))
                .and_then(|mut c| {
                    let r = op(&mut c);
                    state.conn = Some(c);
                    r
                }),
        };
        match result {
            Ok(r) => {
                state.paused_until = None;
                Some(r)
            }
            Err(e) if state.conn.as_ref().is_some_and(|c| !c.is_broken()) => {
                let quiet = state
                    .refusal_logged
                    .is_some_and(|t| t.elapsed() < LOG_REFUSALS_EVERY);
                if !quiet {
                    lm_warn!(
                        "{} refused a command ({e}); the connection goes on",
                        self.what
                    );
                    state.refusal_logged = Some(Instant::now());
                }
                None
            }
            Err(e) => {
                if state.paused_until.is_none() {
                    lm_warn!("{} unavailable ({e}): going on without Redis", self.what);
                }
                state.conn = None;
                state.paused_until = Some(Instant::now() + PAUSE_AFTER_FAILURE);
                None
            }
        }
    }
}
