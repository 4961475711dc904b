//! How much memory a hostile reply costs the client. The stream transports read up to
//! 16 MiB; what that decodes into must stay within a small multiple of it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use warp_rtpengine::bencode::Dict;
use warp_rtpengine::{Client, Endpoint, Options};

/// The system allocator, keeping the bytes in use now and their highest mark.
struct Peak;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static HIGHEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            HIGHEST.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Peak = Peak;

/// A reply of a million empty dictionaries (2 MB) is held in memory in a few dozen MB:
/// each empty container used to be given room for 4 or 8 entries up front, 450 bytes for
/// the 2 bytes of `de`, so a 16 MiB reply took over 3.5 GB.
#[tokio::test(flavor = "current_thread")]
async fn empty_containers_in_a_reply_cost_no_room_for_entries() {
    let mut reply = b"d5:callsl".to_vec();
    reply.extend(b"de".repeat(1_000_000));
    reply.extend_from_slice(b"e6:result2:oke");
    let size = reply.len();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let request = common::read_request(&mut s, b"liste");
        let space = request.iter().position(|&b| b == b' ').unwrap();
        s.write_all(&request[..=space]).unwrap();
        s.write_all(&reply).unwrap();
    });
    let options = Options {
        timeout: Duration::from_secs(30),
        retries: 0,
    };
    let c = Client::connect(&Endpoint::Tcp(addr), options)
        .await
        .unwrap();
    let mut list = Dict::new();
    list.insert("command", "list");
    let before = IN_USE.load(Ordering::Relaxed);
    HIGHEST.store(before, Ordering::Relaxed);
    let got = c.request(&list).await.unwrap();
    let used = HIGHEST.load(Ordering::Relaxed) - before;
    server.join().unwrap();
    assert_eq!(got.get_list("calls").map(<[_]>::len), Some(1_000_000));
    assert!(
        used < 40 * size,
        "a {size} byte reply took {} MB at its peak",
        used >> 20
    );
}
