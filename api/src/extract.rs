//! Extractors whose failures speak the envelope: a JSON body that is not JSON is a 400,
//! one of the wrong shape is a 422 naming the field; bad paths and queries are 400s.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A request body as bytes, at most the route's limit (`routes::body_limit`).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(),
                _ => ApiError::bad_request("BAD_BODY", e.body_text()),
            })
    }
}

/// A JSON request body.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses JSON, naming the field a type error is in (`rows[3].prefix`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::bad_request("MALFORMED_JSON", inner.to_string());
        }
        let path = e.path().to_string();
        let msg = inner.to_string();
        // "missing field `x`" points at the parent object: name the field itself.
        let named = ["missing field", "unknown field"]
            .iter()
            .any(|p| msg.starts_with(p))
            .then(|| msg.split('`').nth(1))
            .flatten();
        let field = match named {
            Some(f) if !path.ends_with(f) => format!("{path}.{f}"),
            _ => path,
        };
        let field = field.trim_start_matches('.').to_string();
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", msg).field(field)
    })
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request("INVALID_PATH", e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request("INVALID_QUERY", e.body_text())
    }
}

/// Path parameters, rejected in the envelope.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query parameters, rejected in the envelope.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);
