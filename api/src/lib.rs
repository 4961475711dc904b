//! WARP's REST API: provisioning resources, routing simulation on the same engine and
//! snapshot as the SIP path, snapshot publishing and pulling, CDRs, API keys with the
//! seven roles and the SIP edges' one, audit log, OpenAPI. See README.md for what is
//! and is not done.

pub mod audit;
pub mod auth;
pub mod cdrs;
pub mod config;
pub mod crud;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
pub mod notices;
pub mod openapi;
pub mod page;
pub mod ratelimit;
pub mod resources;
pub mod routes;
pub mod routing;
pub mod schema;
pub mod state;
pub mod webhooks;

use config::Config;
use metrics::Metrics;
use ratelimit::RateLimiter;
use routing::publisher::Publisher;
use state::AppState;
use std::str::FromStr;
use std::sync::Arc;
use webhooks::delivery::Dispatcher;

/// Generic plans for every prepared statement: the partitioned CDR tables cost
/// milliseconds to plan per call, and generic plans still prune partitions at run time.
/// Each new connection plans the CDR pages before it is handed out.
async fn connect(url: &str) -> anyhow::Result<sqlx::PgPool> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?
        .options([("plan_cache_mode", "force_generic_plan")]);
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        // Connections retired by age are replaced in the background, so preparing a
        // new one (`cdrs::warm`) does not land on a request.
        .min_connections(POOL_SIZE)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // Before the first migration there is nothing to plan yet.
                if let Err(e) = cdrs::warm(conn).await {
                    tracing::debug!(error = %e, "CDR queries not prepared on this connection");
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await?)
}

const POOL_SIZE: u32 = 16;

/// Opens every connection of the pool and prepares each (again, for those opened
/// before the migrations), so the first requests do not wait for either.
async fn fill(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let mut conns = Vec::new();
    for _ in 0..POOL_SIZE {
        conns.push(pool.acquire().await?);
    }
    for c in &mut conns {
        cdrs::warm(c).await?;
    }
    Ok(())
}

/// Connects, migrates, listens for routing changes made anywhere, publishes what the
/// snapshot on disk lacks, starts the publisher, the webhook deliveries and the purge of
/// expired idempotency records; the state every handler shares.
pub async fn start(config: Config) -> anyhow::Result<AppState> {
    let pool = connect(&config.database_url).await?;
    warp_db::migrate(&pool).await?;
    schema::ensure(&pool).await?;
    fill(&pool).await?;
    let metrics = Arc::new(Metrics::new()?);
    let publisher = Arc::new(Publisher::new(pool.clone(), &config, metrics.clone())?);
    // Listening first: a change committed once the start-up publish has loaded the
    // data is heard and published after it.
    routing::notices::listen(publisher.clone(), pool.clone()).await?;
    // What changed while no API ran reaches the SIP nodes now, not with the next change.
    if let Err(e) = publisher.publish_if_stale().await {
        tracing::warn!(error = %e, "the start-up publish failed; retrying");
        publisher.notified();
    }
    publisher.spawn_debouncer();
    idempotency::spawn_purger(pool.clone(), config.idempotency_ttl);
    let webhooks = Dispatcher::start(pool.clone(), config.webhooks)?;
    let jwt_secret: Arc<[u8]> = match &config.jwt_secret {
        Some(s) => s.as_bytes().into(),
        None => {
            let mut k = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut k);
            k.into()
        }
    };
    let credentials = Arc::new(auth::cache::Credentials::default());
    credentials.clone().spawn_listener(pool.clone());
    let bootstrap_key_hash = config
        .bootstrap_api_key
        .as_deref()
        .map(|k| auth::keys::hash(k).into());
    Ok(AppState {
        jwt_secret,
        credentials,
        bootstrap_key_hash,
        pool,
        limiter: Arc::new(RateLimiter::new(config.rate_limit, config.redis.clone())),
        login_limiter: Arc::new(RateLimiter::new(
            auth::sessions::LOGIN_ATTEMPTS,
            config.redis.clone(),
        )),
        webhooks,
        config: Arc::new(config),
        publisher,
        metrics,
    })
}

/// Once the server has answered its last request: publishes the routing changes still
/// waiting out the debounce and stops the webhook deliveries (an attempt cut short is
/// retried by the next process when its lease runs out).
pub async fn shutdown(state: &AppState) {
    if let Err(e) = state.publisher.flush().await {
        tracing::error!(error = %e, "publishing the queued routing changes at shutdown failed");
    }
    state.webhooks.stop();
}
