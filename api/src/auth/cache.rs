//! Recently checked credentials, so a request does not pay a database round trip to
//! learn who sent it (at 2,000 requests/s that lookup was a third of PostgreSQL's
//! statements).
//!
//! Revocation stays immediate: a trigger notifies `warp_credentials` on every change to
//! `api.keys` or `api.users` (through this API, another instance, or by hand), and each
//! instance's listener forgets everything it holds. Nothing is cached while the
//! listener is not connected, so a lost notification cannot keep a revoked key alive;
//! entries also expire after [`TTL`].

use super::roles::Role;
use crate::notices::{self, Follower};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The channel the `api.keys` and `api.users` triggers notify.
pub const CHANNEL: &str = "warp_credentials";
/// The longest an entry is trusted without the database.
pub const TTL: Duration = Duration::from_secs(60);
/// Beyond this many credentials the cache starts over rather than grow.
const CAPACITY: usize = 10_000;

/// What a credential grants: the `Principal` minus where the request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub actor: String,
    pub role: Role,
    pub ban: Option<String>,
}

#[derive(Default)]
pub struct Credentials {
    entries: Mutex<HashMap<String, (Instant, Grant)>>,
    /// Bumped by every forget, so a lookup that raced a change is not stored.
    generation: AtomicU64,
    listening: AtomicBool,
}

impl Credentials {
    /// The grant of `lookup` (a key hash or `user:ID`), if held and fresh.
    pub fn get(&self, lookup: &str) -> Option<Grant> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(lookup)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, grant)| grant.clone())
    }

    /// Where the database read of a credential starts; pass it to [`Self::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Holds `grant`, read from the database since `generation`, unless anything
    /// changed meanwhile or no change could be heard.
    pub fn put(&self, lookup: String, grant: Grant, generation: u64) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock that forget takes, so a forget cannot slip between.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(lookup, (Instant::now(), grant));
    }

    /// Forgets every credential: something about keys or users changed.
    pub fn forget_all(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Listens for changes for as long as the process runs, reconnecting when the
    /// connection drops; caching is off while it is down.
    pub fn spawn_listener(self: Arc<Self>, pool: PgPool) {
        notices::spawn(pool, CHANNEL, self, None);
    }

    #[cfg(test)]
    fn hear_changes(&self) {
        self.listening.store(true, Ordering::Release);
    }
}

impl Follower for Credentials {
    /// Anything cached before this point may have missed a change.
    fn listening(&self) {
        self.forget_all();
        self.listening.store(true, Ordering::Release);
    }

    fn heard(&self) {
        self.forget_all();
    }

    fn lost(&self) {
        self.listening.store(false, Ordering::Release);
        self.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            actor: "api-key:1".into(),
            role: Role::ReadOnly,
            ban: Some("C1".into()),
        }
    }

    #[test]
    fn nothing_is_held_while_changes_cannot_be_heard() {
        let c = Credentials::default();
        c.put("h".into(), grant(), c.generation());
        assert_eq!(c.get("h"), None);
        c.hear_changes();
        c.put("h".into(), grant(), c.generation());
        assert_eq!(c.get("h"), Some(grant()));
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_held() {
        let c = Credentials::default();
        c.hear_changes();
        let before = c.generation();
        c.forget_all();
        c.put("h".into(), grant(), before);
        assert_eq!(c.get("h"), None);
    }

    #[test]
    fn the_triggers_notify_the_channel_listened_to() {
        assert!(crate::schema::SCHEMA.contains(&format!("pg_notify('{CHANNEL}'")));
    }

    #[test]
    fn forgetting_drops_everything() {
        let c = Credentials::default();
        c.hear_changes();
        c.put("h".into(), grant(), c.generation());
        c.forget_all();
        assert_eq!(c.get("h"), None);
    }
}
