//! What every handler shares.

use crate::auth::cache::Credentials;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::routing::publisher::Publisher;
use crate::webhooks::delivery::Dispatcher;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub publisher: Arc<Publisher>,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<RateLimiter>,
    /// Login attempts per account a minute ([`crate::auth::sessions::LOGIN_ATTEMPTS`]):
    /// the request limit is per bearer token, which a login has not got.
    pub login_limiter: Arc<RateLimiter>,
    pub webhooks: Arc<Dispatcher>,
    /// Signs and checks session JWTs.
    pub jwt_secret: Arc<[u8]>,
    /// Who recently checked keys and users are.
    pub credentials: Arc<Credentials>,
    /// The hash of `WARP_BOOTSTRAP_API_KEY`, compared with each key's.
    pub bootstrap_key_hash: Option<Arc<str>>,
}

impl AppState {
    /// Schedules a debounced snapshot publish after a change that affects routing.
    pub fn changed(&self, affects_routing: bool) {
        if affects_routing {
            self.publisher.changed();
        }
    }
}
