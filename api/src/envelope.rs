//! The response envelope of the product requirements: `success`, `data`, `meta`,
//! `errors[]` on every answer, success or not.

use crate::error::ErrorItem;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// Paging facts of a list answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Meta {
    pub count: usize,
    pub limit: usize,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    pub errors: Vec<ErrorItem>,
}

impl<T> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Envelope {
            success: true,
            data: Some(data),
            meta: None,
            errors: Vec::new(),
        }
    }

    pub fn page(data: T, meta: Meta) -> Self {
        Envelope {
            meta: Some(meta),
            ..Self::ok(data)
        }
    }

    pub fn failure(errors: Vec<ErrorItem>) -> Self {
        Envelope {
            success: false,
            data: None,
            meta: None,
            errors,
        }
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}
