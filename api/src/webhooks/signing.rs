//! The signature on every webhook request, `X-Warp-Signature: t=UNIX,v1=HEX` where HEX
//! is HMAC-SHA256 of `"{t}.{body}"` under the subscription's secret. The timestamp is
//! signed with the body, so a receiver that refuses old timestamps refuses replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "x-warp-signature";
/// How old a signature receivers should accept (what `verify` allows either way).
pub const TOLERANCE_SECS: i64 = 300;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The header value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = hex::encode(mac(secret, timestamp, body).finalize().into_bytes());
    format!("t={timestamp},v1={tag}")
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("not t=…,v1=…")]
    Malformed,
    #[error("timestamp outside the tolerance")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// What a receiver does: parse the header, refuse a stale timestamp, compare the tag in
/// constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), Invalid> {
    let mut timestamp = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => tag = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(tag)) = (timestamp, tag) else {
        return Err(Invalid::Malformed);
    };
    // abs_diff: a `t` near i64's ends would overflow a subtraction.
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(Invalid::Stale);
    }
    mac(secret, timestamp, body)
        .verify_slice(&tag)
        .map_err(|_| Invalid::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_secret_body_and_time() {
        let h = sign("whsec_x", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(verify("whsec_x", &h, b"{\"a\":1}", 1_700_000_100), Ok(()));
        assert_eq!(
            verify("whsec_y", &h, b"{\"a\":1}", 1_700_000_000),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify("whsec_x", &h, b"{\"a\":2}", 1_700_000_000),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(
                "whsec_x",
                &h,
                b"{\"a\":1}",
                1_700_000_000 + TOLERANCE_SECS + 1
            ),
            Err(Invalid::Stale)
        );
        assert_eq!(verify("whsec_x", "v1=00", b"", 0), Err(Invalid::Malformed));
    }

    #[test]
    fn a_timestamp_at_the_ends_of_its_range_is_stale_not_a_panic() {
        for t in [i64::MIN, i64::MAX] {
            let h = format!("t={t},v1=00");
            assert_eq!(verify("k", &h, b"", 1_700_000_000), Err(Invalid::Stale));
        }
        let h = format!("t={},v1=00", i64::MAX);
        assert_eq!(verify("k", &h, b"", -1), Err(Invalid::Stale));
    }
}
