//! Routing changes made anywhere reach every instance: triggers on the tables the
//! dataset is loaded from notify [`CHANNEL`] at commit (a change through this API,
//! another instance, `warp import` or SQL by hand; see `schema.rs`), and each instance
//! listens and schedules a publish. A notice lost while the connection was down is made
//! up for by a publish once it is back.

use super::publisher::Publisher;
use crate::notices::{self, Follower};
use sqlx::PgPool;
use std::sync::Arc;

/// The channel `api.routing_changed` notifies.
pub const CHANNEL: &str = "warp_routing";

/// Listens for routing changes for as long as the process runs. The first `LISTEN` is
/// in place when this returns, so a change committed after the caller's next publish
/// loads its data is heard.
pub async fn listen(publisher: Arc<Publisher>, pool: PgPool) -> sqlx::Result<()> {
    let listener = notices::connect(&pool, CHANNEL).await?;
    notices::spawn(pool, CHANNEL, publisher, Some(listener));
    Ok(())
}

impl Follower for Publisher {
    /// What changed while no one listened.
    fn listening(&self) {
        self.notified();
    }

    fn heard(&self) {
        self.notified();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_triggers_notify_the_channel_listened_to() {
        let notify = format!("pg_notify('{}'", super::CHANNEL);
        assert!(crate::schema::SCHEMA.contains(&notify));
    }
}
