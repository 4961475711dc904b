//! The one error type of warp-db.

use sqlx::postgres::PgDatabaseError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Not a `#[source]`: sqlx's message already carries its source's, and a CLI
    /// printing the chain would say it three times.
    #[error("database: {}", describe(.0))]
    Sql(sqlx::Error),
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

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Sql(e)
    }
}

/// PostgreSQL's message with its detail and context, which name the offending row
/// ("Failing row contains (…)", "COPY trunks, line 3, column max_cps: …"): the message
/// alone does not say which of a million imported rows was refused.
fn describe(e: &sqlx::Error) -> String {
    let Some(pg) = e
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<PgDatabaseError>())
    else {
        return e.to_string();
    };
    let mut s = pg.message().to_string();
    for part in [pg.detail(), pg.r#where()].into_iter().flatten() {
        s.push_str(" (");
        s.push_str(part);
        s.push(')');
    }
    s
}

impl DbError {
    pub(crate) fn invalid(table: &'static str, message: impl Into<String>) -> Self {
        DbError::Invalid {
            table,
            message: message.into(),
        }
    }
}
