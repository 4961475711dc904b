//! WARP's PostgreSQL side: the schema (`migrations/`), moving a provisioning
//! [`Dataset`](warp_core::model::Dataset) in and out of it, and the legacy one-query-per-call
//! routing the benchmarks compare the snapshot against.

mod copy;
mod error;
mod import;
mod in_use;
mod legacy;
mod load;
pub mod rates;

pub use error::DbError;
pub use import::{import_dataset, ImportReport};
pub use legacy::{legacy_route, LegacyRoute};
pub use load::{load_dataset, routing_columns, ROUTING_TABLES};

use sqlx::postgres::{PgPool, PgPoolOptions};

/// Opens a connection pool.
pub async fn connect(url: &str) -> Result<PgPool, DbError> {
    Ok(PgPoolOptions::new().max_connections(8).connect(url).await?)
}

/// Applies the migrations that are not applied yet.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    sqlx::migrate!("../migrations").run(pool).await?;
    Ok(())
}
