//! Property tests of the codec and of the proxy's request handling on arbitrary bytes.

use proptest::prelude::*;
use std::borrow::Cow;
use warp_rtpengine::bencode::{self, Dict, Value};
use warp_rtpengine::message;
use warp_rtpengine::proxy::handler::Handler;
use warp_rtpengine::proxy::pool::Pool;
use warp_rtpengine::proxy::sticky::Sticky;

fn value() -> impl Strategy<Value = Value<'static>> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bytes(Cow::Owned(b))),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), inner), 0..8)
                .prop_map(|entries| {
                    let mut d = Dict::new();
                    for (k, v) in entries {
                        d.insert(k, v);
                    }
                    Value::Dict(d)
                }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// encode → decode is the identity, and the scanner measures exactly the encoding.
    #[test]
    fn round_trip(v in value()) {
        let mut wire = Vec::new();
        bencode::encode_into(&v, &mut wire);
        prop_assert_eq!(bencode::decode(&wire).unwrap(), v);
        prop_assert_eq!(bencode::value_len(&wire).unwrap(), Some(wire.len()));
        // Every strict prefix is incomplete, never an error or a wrong length.
        for cut in [0, wire.len() / 3, wire.len().saturating_sub(1)] {
            if cut < wire.len() {
                prop_assert_eq!(bencode::value_len(&wire[..cut]).unwrap(), None);
            }
        }
    }

    /// Arbitrary bytes never panic; decoder and scanner agree on where a value ends.
    #[test]
    fn arbitrary_bytes_are_handled(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let decoded = bencode::decode_prefix(&bytes).map(|(_, n)| n);
        let scanned = bencode::value_len(&bytes);
        match (decoded, scanned) {
            (Ok(n), Ok(Some(m))) => prop_assert_eq!(n, m),
            (Err(bencode::DecodeError::Incomplete(_)), Ok(None)) => {}
            (Err(bencode::DecodeError::Malformed { .. }), Err(_)) => {}
            (d, s) => prop_assert!(false, "decoder {:?} vs scanner {:?}", d, s),
        }
        let _ = message::parse_body(&bytes);
    }

    /// Fed in pieces (as a TCP stream arrives), the scanner ends where one pass does,
    /// for valid values followed by more bytes and for arbitrary bytes alike.
    #[test]
    fn scanner_resumes_across_pieces(
        v in value(),
        noise in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = Vec::new();
        bencode::encode_into(&v, &mut wire);
        let valid = wire.len();
        wire.extend_from_slice(b"i1e");
        for input in [&wire, &noise] {
            let mut ends: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            ends.sort_unstable();
            ends.push(input.len());
            let mut scanner = bencode::Scanner::default();
            let mut pieces = Ok(None);
            for end in ends {
                pieces = scanner.scan(&input[..end]);
                if !matches!(pieces, Ok(None)) {
                    break;
                }
            }
            let whole = bencode::value_len(input);
            prop_assert_eq!(pieces.is_err(), whole.is_err());
            prop_assert_eq!(pieces.ok(), whole.ok());
        }
        prop_assert_eq!(bencode::value_len(&wire).unwrap(), Some(valid));
    }

    /// Mutated valid requests: the proxy always answers with an error dictionary, never panics.
    #[test]
    fn proxy_answers_any_request_body(v in value(), flip in any::<usize>(), byte in any::<u8>()) {
        let mut d = Dict::new();
        d.insert("command", "offer");
        d.insert("call-id", "fuzz");
        d.insert("x", v);
        let mut wire = bencode::encode_dict(&d);
        let at = flip % wire.len();
        wire[at] = byte;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let reply = rt.block_on(async {
            // A pool with no nodes: every request that parses ends as "no node available".
            let handler = Handler::new(Pool::connect(&[], Default::default(), Default::default()).await.unwrap(), Sticky::new(None, std::time::Duration::from_secs(60), std::time::Duration::from_secs(1), Default::default()), None);
            handler.handle(0, &wire).await.body
        });
        let reply = message::parse_body(&reply).unwrap().into_owned();
        prop_assert_eq!(reply.get_str("result"), Some("error"));
        prop_assert!(reply.get_str("error-reason").is_some());
    }
}
