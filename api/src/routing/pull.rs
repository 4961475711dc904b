//! `GET /routing/snapshot`: the published file for SIP edges. Its `ETag` names the
//! generation and the payload's hash (`"7.1f2e3d4c5b6a7980"`); an edge naming what it
//! holds in `If-None-Match` gets a 304 when that is this file, or a newer one some
//! instance handed out, and the file otherwise. Every answer names the file's format
//! version ([`format`]), and an edge that reads another is refused it.

mod format;

use super::generations::{self, Stamp};
use crate::auth::roles::{Access, Class};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

/// A snapshot an edge says it holds: its generation, and its payload's hash unless the
/// edge named the generation alone (as clients before the hash did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag {
    generation: u64,
    payload: Option<u64>,
}

impl Tag {
    fn parse(text: &str) -> Option<Tag> {
        let inner = text.trim().strip_prefix('"')?.strip_suffix('"')?;
        let (generation, payload) = match inner.split_once('.') {
            Some((g, p)) => (g, Some(u64::from_str_radix(p, 16).ok()?)),
            None => (inner, None),
        };
        Some(Tag {
            generation: generation.parse().ok()?,
            payload,
        })
    }

    fn etag(self) -> String {
        match self.payload {
            Some(p) => format!("\"{}.{p:016x}\"", self.generation),
            None => format!("\"{}\"", self.generation),
        }
    }

    /// Names `generation` with payload `payload` (a tag without a hash names any).
    fn names(self, generation: u64, payload: u64) -> bool {
        self.generation == generation && self.payload.is_none_or(|p| p == payload)
    }
}

/// The current snapshot file; `If-None-Match` → 304 (see the module's doc).
pub async fn snapshot(
    State(st): State<AppState>,
    who: Principal,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // The file carries the trunks' password hashes (ha1): its own class, not open to
    // every role that may simulate a call on it.
    who.require(Class::Snapshot, Access::Read)?;
    let path = st.publisher.path().to_path_buf();
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NO_SNAPSHOT",
            "no routing snapshot has been published yet",
        )
    };
    // One open file throughout: a publish renames another over the path meanwhile,
    // and this answer stays the generation it read. Its header alone is read: the file
    // may be of a format this build cannot open, which edges of that format can.
    let opened = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        let header = warp_core::snapshot::header_of_any_format(&file, &path)
            .map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>((file, header))
    })
    .await
    .map_err(ApiError::internal)?;
    let (file, header) = opened.map_err(|_| missing())?;
    let ours = Stamp::of_header(&header);
    let served = format::served(header.version);
    if let Some(answer) = already_held(&st, &headers, &ours).await {
        return Ok(([served], answer).into_response());
    }
    let etag = Tag {
        generation: ours.generation,
        payload: Some(ours.payload_hash),
    }
    .etag();
    if let Err(refused) = format::check(&headers, header.version, ours.generation) {
        // Named as the file would be, so that an edge tells one refused file from the next.
        return Ok(([served, (ETAG, etag)], refused).into_response());
    }
    // Streamed, not read whole: a fleet pulling the 212 MB file at once would hold a
    // copy per edge. The edge verifies the checksum of what it got.
    let body = Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(file)));
    Ok((
        [
            served,
            (ETAG, etag),
            (CONTENT_TYPE, "application/octet-stream".to_string()),
            (CONTENT_LENGTH, header.file_len.to_string()),
        ],
        body,
    )
        .into_response())
}

/// The newest snapshot `If-None-Match` names (`*` names `ours`) that is `ours` or
/// newer: the edge has this file already, or a newer one ([`already_held`] tells whether
/// the cluster handed it out). Our generation with another payload is not ours: a file
/// compiled elsewhere that happens to have our number.
fn newest_named(headers: &HeaderMap, ours: &Stamp) -> Option<Tag> {
    let named = headers.get(IF_NONE_MATCH)?.to_str().ok()?;
    let ours_tag = Tag {
        generation: ours.generation,
        payload: Some(ours.payload_hash),
    };
    named
        .split(',')
        .filter_map(|text| match text.trim() {
            "*" => Some(ours_tag),
            text => Tag::parse(text),
        })
        .filter(|t| t.generation > ours.generation || t.names(ours.generation, ours.payload_hash))
        .max_by_key(|t| t.generation)
}

/// A 304 for an edge that holds `ours`, or a newer snapshot the cluster handed out
/// (this instance is behind: it catches up at once). A newer one no instance handed out
/// (a file compiled elsewhere, a cluster whose database was restored) is not the
/// cluster's data: the edge is sent `ours` rather than kept on it for good.
async fn already_held(st: &AppState, headers: &HeaderMap, ours: &Stamp) -> Option<Response> {
    let held = newest_named(headers, ours)?;
    if held.generation > ours.generation {
        match last_handed_out(st).await {
            Ok(last) if !handed_out(last.as_ref(), held) => {
                tracing::warn!(
                    held = held.generation,
                    last = last.map_or(0, |l| l.generation),
                    ours = ours.generation,
                    "an edge holds a generation no instance handed out: sending it ours"
                );
                return None;
            }
            // Unknown (the database away): never risk sending an edge back.
            _ => st.publisher.catch_up(),
        }
    }
    Some((StatusCode::NOT_MODIFIED, [(ETAG, held.etag())]).into_response())
}

/// Whether `held` is a snapshot the cluster handed out, `last` being the last one: an
/// older generation, or the last itself.
fn handed_out(last: Option<&Stamp>, held: Tag) -> bool {
    last.is_some_and(|l| held.generation < l.generation || held.names(l.generation, l.payload_hash))
}

/// The last snapshot any instance handed out (none yet: `None`), once any publish in
/// flight has committed its number.
async fn last_handed_out(st: &AppState) -> sqlx::Result<Option<Stamp>> {
    let mut conn = st.pool.acquire().await?;
    generations::last_settled(&mut conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: Stamp = Stamp {
        generation: 5,
        payload_hash: 0xab,
        created_unix: 0,
    };

    fn held(if_none_match: &str) -> Option<(u64, Option<u64>)> {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, if_none_match.parse().unwrap());
        newest_named(&headers, &OURS).map(|t| (t.generation, t.payload))
    }

    #[test]
    fn an_edge_holding_ours_or_newer_is_not_sent_the_file() {
        assert_eq!(held("\"5\""), Some((5, None)));
        assert_eq!(held("\"5.00000000000000ab\""), Some((5, Some(0xab))));
        assert_eq!(held("\"7\""), Some((7, None)));
        assert_eq!(held("\"7.00000000000000cd\""), Some((7, Some(0xcd))));
        assert_eq!(held("\"4\", \"9\""), Some((9, None)));
        assert_eq!(held("*"), Some((5, Some(0xab))));
        assert_eq!(held("\"4\""), None);
        assert_eq!(held("W/\"5\", \"x\", 5, \"5.zz\""), None);
    }

    #[test]
    fn our_generation_with_another_payload_is_not_ours() {
        assert_eq!(held("\"5.00000000000000cd\""), None);
    }

    #[test]
    fn a_tag_reads_back_as_written() {
        let tag = Tag {
            generation: 12,
            payload: Some(0x1f2e_3d4c_5b6a_7980),
        };
        assert_eq!(tag.etag(), "\"12.1f2e3d4c5b6a7980\"");
        assert_eq!(Tag::parse(&tag.etag()), Some(tag));
    }

    #[test]
    fn handed_out_is_up_to_the_last_and_the_last_itself() {
        let last = Stamp {
            generation: 8,
            ..OURS
        };
        let tag = |generation, payload| Tag {
            generation,
            payload,
        };
        assert!(handed_out(Some(&last), tag(7, Some(0x99))));
        assert!(handed_out(Some(&last), tag(8, Some(0xab))));
        assert!(handed_out(Some(&last), tag(8, None)));
        assert!(!handed_out(Some(&last), tag(8, Some(0x99))));
        assert!(!handed_out(Some(&last), tag(9, None)));
        assert!(!handed_out(None, tag(1, None)));
    }
}
