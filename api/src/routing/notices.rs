//! Routing changes made anywhere reach every instance: triggers on the tables the
//! dataset is loaded from notify [`CHANNEL`] at commit (a change through this API,
//! another instance, `warp import` or SQL by hand; see `schema.rs`), and each instance
//! listens and schedules a publish. A notice lost while the connection was down is made
//! up for by a publish once it is back.

use super::publisher::Publisher;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// The channel `api.routing_changed` notifies.
pub const CHANNEL: &str = "warp_routing";
/// Pause between attempts to reconnect the listener.
const RECONNECT: Duration = Duration::from_secs(1);

/// Listens for routing changes for as long as the process runs. The first `LISTEN` is
/// in place when this returns, so a change committed after the caller's next publish
/// loads its data is heard.
pub async fn listen(publisher: Arc<Publisher>, pool: PgPool) -> sqlx::Result<()> {
    let listener = connect(&pool).await?;
    tokio::spawn(follow(publisher, pool, listener));
    Ok(())
}

async fn connect(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn follow(publisher: Arc<Publisher>, pool: PgPool, mut listener: PgListener) {
    loop {
        match hear(&publisher, &mut listener).await {
            Ok(()) => tracing::warn!("routing change listener disconnected"),
            Err(e) => tracing::warn!(error = %e, "routing change listener failed"),
        }
        listener = reconnect(&pool).await;
        // What changed while no one listened.
        publisher.notified();
    }
}

/// Returns when the connection is lost: `try_recv` answers None then (and would
/// reconnect on the next call without saying so).
async fn hear(publisher: &Publisher, listener: &mut PgListener) -> sqlx::Result<()> {
    while listener.try_recv().await?.is_some() {
        publisher.notified();
    }
    Ok(())
}

async fn reconnect(pool: &PgPool) -> PgListener {
    loop {
        tokio::time::sleep(RECONNECT).await;
        match connect(pool).await {
            Ok(listener) => return listener,
            Err(e) => tracing::warn!(error = %e, "reconnecting the routing change listener"),
        }
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
