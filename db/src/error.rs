//! The one error type of warp-db.

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row that does not make a valid model value (e.g. edited by hand).
    #[error("{table}: {message}")]
    Invalid {
        table: &'static str,
        message: String,
    },
    #[error("invalid number: {0}")]
    Number(#[from] warp_core::NumberError),
}

impl DbError {
    pub(crate) fn invalid(table: &'static str, message: impl Into<String>) -> Self {
        DbError::Invalid {
            table,
            message: message.into(),
        }
    }
}
