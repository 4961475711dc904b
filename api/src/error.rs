//! The one error type: every failure becomes the envelope's `errors[]` with a stable
//! code, the HTTP status it implies, and the offending field when there is one.

use crate::envelope::Envelope;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One entry of `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorItem {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<ErrorItem>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            errors: vec![ErrorItem {
                code,
                message: message.into(),
                field: None,
            }],
        }
    }

    /// Names the field on the (single) error.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        for e in &mut self.errors {
            e.field = (!field.is_empty()).then(|| field.clone());
        }
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            message,
        )
        .field(field)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    /// A request body over its route's limit.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "the request body is over this endpoint's limit",
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// Logged with its cause; the client sees no internals.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
        )
    }

    /// Many row errors at once (a rate deck with several bad lines).
    pub fn many(status: StatusCode, errors: Vec<ErrorItem>) -> Self {
        ApiError { status, errors }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Envelope::<()>::failure(self.errors)).into_response()
    }
}

/// `Key (col)=(value) ...` → `col`, from PostgreSQL's constraint detail.
fn detail_column(detail: Option<&str>) -> Option<String> {
    let rest = detail?.strip_prefix("Key (")?;
    let end = rest.find(')')?;
    Some(rest[..end].to_string())
}

/// `customers_billing_model_check` on table `customers` → `billing_model`.
fn check_column(constraint: &str, table: Option<&str>) -> String {
    let c = table
        .and_then(|t| constraint.strip_prefix(t))
        .and_then(|c| c.strip_prefix('_'))
        .unwrap_or(constraint);
    c.strip_suffix("_check").unwrap_or(c).to_string()
}

impl From<sqlx::Error> for ApiError {
    /// Constraint violations are the client's mistake (4xx with the column named);
    /// anything else is ours.
    fn from(e: sqlx::Error) -> Self {
        let sqlx::Error::Database(db) = &e else {
            return Self::internal(e);
        };
        let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() else {
            return Self::internal(e);
        };
        let field = detail_column(pg.detail())
            .or_else(|| pg.column().map(str::to_string))
            .unwrap_or_default();
        let detail = pg.detail().unwrap_or(pg.message()).to_string();
        match pg.code() {
            "23505" => Self::conflict(detail).field(field),
            "23503" if detail.contains("still referenced") => {
                Self::conflict(format!("in use: {detail}")).field(field)
            }
            "23503" => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNKNOWN_REFERENCE",
                detail,
            )
            .field(field),
            "23514" => {
                let field = pg
                    .constraint()
                    .map(|c| check_column(c, pg.table()))
                    .unwrap_or_default();
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "VALIDATION_ERROR",
                    format!("value violates {}", pg.constraint().unwrap_or("a check")),
                )
                .field(field)
            }
            "23502" => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "MISSING_FIELD",
                format!("{field} is required"),
            )
            .field(field),
            // Bad text for a typed column, out of range, too long.
            c if c.starts_with("22") => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_VALUE",
                pg.message().to_string(),
            ),
            _ => Self::internal(e),
        }
    }
}

impl From<warp_db::DbError> for ApiError {
    fn from(e: warp_db::DbError) -> Self {
        match e {
            warp_db::DbError::Sql(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_come_out_of_postgres_messages() {
        assert_eq!(
            detail_column(Some("Key (ban)=(X1) already exists.")).as_deref(),
            Some("ban")
        );
        assert_eq!(detail_column(Some("nothing")), None);
        assert_eq!(
            check_column("customers_billing_model_check", Some("customers")),
            "billing_model"
        );
        assert_eq!(check_column("odd", None), "odd");
    }
}
