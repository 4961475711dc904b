//! Codec throughput: encode + decode of a typical offer (Kamailio-style keys, 10-line SDP).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use warp_rtpengine::bencode::{decode_dict, encode_dict_into, Dict, Value};

fn typical_offer() -> Dict<'static> {
    let sdp =
        "v=0\r\no=- 1545997027 1 IN IP4 198.51.100.1\r\ns=tester\r\nc=IN IP4 198.51.100.1\r\n\
               t=0 0\r\nm=audio 2000 RTP/AVP 0 8 18 101\r\na=rtpmap:18 G729/8000\r\n\
               a=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
               a=ptime:20\r\na=sendrecv\r\n";
    let mut d = Dict::new();
    d.insert("supports", Value::from(["load limit"]));
    d.insert("sdp", sdp);
    d.insert("ICE", "remove");
    d.insert("flags", Value::from(["trust-address"]));
    d.insert("replace", Value::from(["origin", "session-connection"]));
    d.insert("transport-protocol", "RTP/AVP");
    d.insert("rtcp-mux", Value::from(["demux"]));
    d.insert("call-id", "a84b4c76e66710@pc33.atlanta.example.com");
    d.insert("via-branch", "z9hG4bK776asdhds.0");
    d.insert("received-from", Value::from(["IP4", "198.51.100.1"]));
    d.insert("from-tag", "1928301774");
    d.insert("command", "offer");
    d
}

fn bench(c: &mut Criterion) {
    let offer = typical_offer();
    let mut wire = Vec::with_capacity(1024);
    encode_dict_into(&offer, &mut wire);
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("offer_encode_decode", |b| {
        let mut buf = Vec::with_capacity(1024);
        b.iter(|| {
            buf.clear();
            encode_dict_into(black_box(&offer), &mut buf);
            let d = decode_dict(black_box(&buf)).unwrap();
            black_box(d.len())
        })
    });
    g.bench_function("offer_decode", |b| {
        b.iter(|| black_box(decode_dict(black_box(&wire)).unwrap().len()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
