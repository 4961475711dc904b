//! The snapshot pull streams the file from disk: an edge's pull holds no copy of it in
//! the API's memory, so a fleet pulling the 212 MB file at once costs no 212 MB each.
//! Its own test binary: it counts every allocation of the process.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TestApi, ROOT};
use http_body_util::BodyExt;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use tower::ServiceExt;
use warp_core::model::Dataset;
use warp_core::Number;

/// Bytes allocated now, and the most at any time since [`reset_peak`].
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: System's allocator, with the sizes counted on the way.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), SeqCst) + layout.size();
            PEAK.fetch_max(now, SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn reset_peak() -> usize {
    let now = LIVE.load(SeqCst);
    PEAK.store(now, SeqCst);
    now
}

#[tokio::test]
async fn a_pull_streams_the_file_and_holds_no_copy_of_it() {
    let t = TestApi::start().await;
    // A snapshot of some 45 MB: the LNP of a million numbers.
    let dataset = Dataset {
        lnp: (0..1_000_000u64)
            .map(|i| {
                let n = |base: u64| Number::from_value(base + i).unwrap();
                (n(12_120_000_000), n(13_030_000_000))
            })
            .collect(),
        ..Dataset::default()
    };
    let bytes = warp_core::snapshot::compile(&dataset, 7).unwrap();
    drop(dataset);
    let path = t.state.publisher.path().to_path_buf();
    warp_core::snapshot::publish(&bytes, &path).unwrap();
    let size = bytes.len();
    assert!(size > 20 << 20, "only {size} bytes");

    let payload = warp_core::snapshot::header(&bytes).unwrap().payload_hash;
    let before = reset_peak();
    let req = Request::get("/api/v1/routing/snapshot")
        .header("authorization", format!("Bearer {ROOT}"))
        .body(Body::empty())
        .unwrap();
    let res = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["etag"],
        format!("\"7.{payload:016x}\"").as_str()
    );
    assert_eq!(res.headers()["content-length"], size.to_string().as_str());
    // The edge reads it a chunk at a time, as a socket would take it.
    let mut body = res.into_body();
    let (mut read, mut same) = (0, true);
    while let Some(frame) = body.frame().await {
        let chunk = frame.unwrap().into_data().unwrap();
        same &= bytes[read..read + chunk.len()] == chunk[..];
        read += chunk.len();
    }
    let held = PEAK.load(SeqCst) - before;
    assert!(same && read == size, "the body is not the file");
    assert!(
        held < 4 << 20,
        "a pull of {size} bytes held {held} bytes at its peak"
    );
}
