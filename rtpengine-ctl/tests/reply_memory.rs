//! How much memory hostile traffic costs: a reply to the client (the stream transports
//! read up to 16 MiB; what that decodes into must stay within a small multiple of it),
//! and a flood of requests to the proxy. One test at a time: they share the count.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use warp_rtpengine::bencode::Dict;
use warp_rtpengine::proxy::config::{ListenSpec, ProxyConfig};
use warp_rtpengine::proxy::Proxy;
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

/// Held by each test while it counts.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A reply of a million empty dictionaries (2 MB) is held in memory in a few dozen MB:
/// each empty container used to be given room for 4 or 8 entries up front, 450 bytes for
/// the 2 bytes of `de`, so a 16 MiB reply took over 3.5 GB.
#[tokio::test(flavor = "current_thread")]
async fn empty_containers_in_a_reply_cost_no_room_for_entries() {
    let _counting = ONE_AT_A_TIME.lock().await;
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

/// The proxy keeps each reply for retransmissions of its request, under the request's
/// cookie. Cookies of 60 000 bytes, each answered with itself and the reply: 3000 of
/// them (360 MB) are held in at most two generations of 64 MiB, not all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_huge_cookies_is_cached_within_the_bound() {
    let _counting = ONE_AT_A_TIME.lock().await;
    let node = common::Rtpengine::start();
    let proxy = Proxy::start(ProxyConfig {
        listen: vec![ListenSpec {
            addr: "127.0.0.1:0".parse().unwrap(),
            set: 0,
        }],
        nodes: vec![format!("a={}", node.ng).parse().unwrap()],
        ..ProxyConfig::default()
    })
    .await
    .unwrap();
    let flood = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    flood.connect(proxy.ng_addrs[0]).await.unwrap();
    let before = IN_USE.load(Ordering::Relaxed);
    let mut reply = vec![0u8; 65_536];
    for i in 0..3000 {
        let cookie = format!("{i:060000}");
        let request = [cookie.as_bytes(), b" d7:command10:warp nodese"].concat();
        flood.send(&request).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), flood.recv(&mut reply))
            .await
            .expect("the proxy answers")
            .unwrap();
        assert!(reply[..n].starts_with(cookie.as_bytes()), "request {i}");
    }
    let held = IN_USE.load(Ordering::Relaxed).saturating_sub(before);
    assert!(held < 144 << 20, "the proxy holds {} MB", held >> 20);
}
