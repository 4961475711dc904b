//! The snapshot format on the pull: the edge names the one it reads
//! (`Warp-Snapshot-Format`), and the API refuses it (406) a file of another format
//! before a byte of it is sent, naming the file's format and generation (warp-api's
//! `routing::pull::format`). An API before the header ignores it and sends the file,
//! which the edge then refuses as before.

use reqwest::header::{HeaderName, ETAG};
use reqwest::{Response, StatusCode};
use warp_core::snapshot::format::FORMAT_VERSION;

pub const HEADER: HeaderName = HeaderName::from_static("warp-snapshot-format");

/// The API's refusal of a snapshot in another format than this build reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The format of the file the API serves.
    pub served: u32,
    /// Its generation, from the refusal's ETag (when there is one).
    pub generation: Option<u64>,
}

impl Refused {
    /// The refusal `res` is, if it is one: a 406 naming the format served.
    pub fn of(res: &Response) -> Option<Refused> {
        if res.status() != StatusCode::NOT_ACCEPTABLE {
            return None;
        }
        let header = |name| res.headers().get(name)?.to_str().ok();
        let served = header(HEADER)?.trim().parse().ok()?;
        // `"7.1f2e3d4c5b6a7980"`: the generation before the dot.
        let generation = header(ETAG).and_then(|etag| {
            let inner = etag.trim().trim_matches('"');
            inner.split('.').next()?.parse().ok()
        });
        Some(Refused { served, generation })
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.generation {
            Some(g) => write!(f, "generation {g} is snapshot format {}", self.served)?,
            None => write!(f, "the snapshot is format {}", self.served)?,
        }
        write!(f, " and this warp reads format {FORMAT_VERSION}")
    }
}

impl std::error::Error for Refused {}
