//! The snapshot's format version on the pull: the API says which one it serves
//! (`Warp-Snapshot-Format`, read from the file's header: a file another version
//! published may be served), and an edge that says which one it reads, in the same
//! header, is refused (406) a file of another format before a byte of it is sent, so
//! that an edge and an API upgraded at different times cost no download per poll.

use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderName, StatusCode};

pub const HEADER: HeaderName = HeaderName::from_static("warp-snapshot-format");

/// The header naming format `served`, for every answer about the file.
pub fn served(served: u32) -> (HeaderName, String) {
    (HEADER, served.to_string())
}

/// Refuses an edge that reads another format than `served`, the format of generation
/// `generation`; an edge that does not say (edges before the header) is sent the file
/// as always.
pub fn check(headers: &HeaderMap, served: u32, generation: u64) -> Result<(), ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(());
    };
    match value
        .to_str()
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    {
        Some(reads) if reads == served => Ok(()),
        Some(reads) => Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "SNAPSHOT_FORMAT",
            format!(
                "generation {generation} is snapshot format {served}; \
                 the edge reads format {reads}"
            ),
        )),
        None => Err(ApiError::bad_request(
            "BAD_SNAPSHOT_FORMAT",
            "Warp-Snapshot-Format must be the format version number the edge reads",
        )
        .field("Warp-Snapshot-Format")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(value: Option<&str>) -> Result<(), (StatusCode, &'static str)> {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(HEADER, v.parse().unwrap());
        }
        check(&headers, 5, 7).map_err(|e| (e.status, e.errors[0].code))
    }

    #[test]
    fn an_edge_is_refused_only_a_format_it_says_it_does_not_read() {
        assert_eq!(asking(None), Ok(()));
        assert_eq!(asking(Some("5")), Ok(()));
        assert_eq!(asking(Some(" 5 ")), Ok(()));
        assert_eq!(
            asking(Some("4")),
            Err((StatusCode::NOT_ACCEPTABLE, "SNAPSHOT_FORMAT"))
        );
        for bad in ["", "five", "5, 6", "-5"] {
            assert_eq!(
                asking(Some(bad)),
                Err((StatusCode::BAD_REQUEST, "BAD_SNAPSHOT_FORMAT")),
                "{bad:?}"
            );
        }
    }
}
