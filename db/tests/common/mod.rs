//! A migrated database on a private PostgreSQL for each test.

use sqlx::PgPool;
use warp_testkit::Postgres;

/// Keep the `Postgres` alive as long as the pool: dropping it stops the server.
pub async fn migrated_db() -> (Postgres, PgPool) {
    let pg = Postgres::start().expect("start a private PostgreSQL");
    let pool = warp_db::connect(&pg.url).await.expect("connect");
    warp_db::migrate(&pool).await.expect("migrate");
    (pg, pool)
}
