//! The response envelope of the product requirements: `success`, `data`, `meta`,
//! `errors[]` on every answer, success or not.

use crate::error::{ApiError, ErrorItem};
use axum::http::header::CONTENT_TYPE;
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

/// A page whose `data` (a JSON array) `write_data` writes itself, straight into the
/// body: the envelope of [`Envelope::page`] with no second pass over the rows.
pub fn raw_page<E>(
    meta: &Meta,
    write_data: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Response, E> {
    let mut body = b"{\"success\":true,\"data\":".to_vec();
    write_data(&mut body)?;
    body.extend_from_slice(b",\"meta\":");
    if serde_json::to_writer(&mut body, meta).is_err() {
        return Ok(ApiError::internal("writing the page's meta").into_response());
    }
    body.extend_from_slice(b",\"errors\":[]}");
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_page_is_the_envelope_of_its_data() {
        let data = serde_json::json!([{"a": "x\"y", "b": null}, {"c": 1.5}]);
        for next_cursor in [None, Some("abc".to_string())] {
            let meta = Meta {
                count: 2,
                limit: 10,
                next_cursor,
            };
            let raw = raw_page(&meta, |body| serde_json::to_writer(body, &data)).unwrap();
            let expected = serde_json::to_vec(&Envelope::page(&data, meta.clone())).unwrap();
            let body = body_of(raw);
            assert_eq!(
                String::from_utf8(body).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    fn body_of(r: Response) -> Vec<u8> {
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(axum::body::to_bytes(r.into_body(), usize::MAX))
            .unwrap()
            .to_vec()
    }
}
