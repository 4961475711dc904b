//! Following a PostgreSQL NOTIFY channel for as long as the process runs: the credential
//! cache and the snapshot publisher hear changes made anywhere (this instance, another,
//! SQL by hand), and a dropped connection is made again.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// Pause between a lost connection and the next attempt to listen.
const RECONNECT: Duration = Duration::from_secs(1);

/// What a channel's follower does as the listener comes and goes.
pub trait Follower: Send + Sync + 'static {
    /// `LISTEN` is in place on a new connection: a notice sent before may have been
    /// missed.
    fn listening(&self);
    /// A notice arrived.
    fn heard(&self);
    /// The connection is lost, or could not be made; another attempt follows.
    fn lost(&self) {}
}

/// A connection listening on `channel`.
pub async fn connect(pool: &PgPool, channel: &str) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Follows `channel` for `follower` until the process ends: on `listener` when the
/// caller is listening already (then no [`Follower::listening`] for it), else on a new
/// connection made at once.
pub fn spawn<F: Follower>(
    pool: PgPool,
    channel: &'static str,
    follower: Arc<F>,
    mut listener: Option<PgListener>,
) {
    tokio::spawn(async move {
        loop {
            let followed = match listener.take() {
                Some(l) => hear(&*follower, l).await,
                None => match connect(&pool, channel).await {
                    Ok(l) => {
                        follower.listening();
                        hear(&*follower, l).await
                    }
                    Err(e) => Err(e),
                },
            };
            match followed {
                Ok(()) => tracing::warn!(channel, "change listener disconnected"),
                Err(e) => tracing::warn!(channel, error = %e, "change listener failed"),
            }
            follower.lost();
            tokio::time::sleep(RECONNECT).await;
        }
    });
}

/// Returns when the connection is lost: `try_recv` answers None then (and would
/// reconnect on the next call without saying so, hiding what was missed).
async fn hear(follower: &impl Follower, mut listener: PgListener) -> sqlx::Result<()> {
    while listener.try_recv().await?.is_some() {
        follower.heard();
    }
    Ok(())
}
