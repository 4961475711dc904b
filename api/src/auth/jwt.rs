//! HS256 JSON Web Tokens for user sessions: just what sessions need (sign, verify,
//! expiry), on the HMAC-SHA256 the crate already carries.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: i64,
    pub iat: i64,
    pub exp: i64,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length")
}

pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let body = serde_json::to_vec(claims).unwrap_or_default();
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(body)
    );
    let mut m = mac(secret);
    m.update(signed.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signed}.{sig}")
}

/// The claims of a token signed with `secret`, HS256, not expired at `now`.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Option<Claims> {
    let (signed, sig) = token.rsplit_once('.')?;
    let (header, body) = signed.split_once('.')?;
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header["alg"] != "HS256" {
        return None;
    }
    let mut m = mac(secret);
    m.update(signed.as_bytes());
    m.verify_slice(&URL_SAFE_NO_PAD.decode(sig).ok()?).ok()?;
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
    (claims.exp > now).then_some(claims)
}

/// Whether a bearer token is shaped like a JWT rather than an API key.
pub fn looks_like_jwt(token: &str) -> bool {
    token.matches('.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_until_they_expire_and_not_with_another_key() {
        let c = Claims {
            sub: 7,
            iat: 100,
            exp: 200,
        };
        let t = sign(b"k1", &c);
        assert!(looks_like_jwt(&t));
        assert_eq!(verify(b"k1", &t, 150), Some(c));
        assert_eq!(verify(b"k1", &t, 200), None);
        assert_eq!(verify(b"k2", &t, 150), None);
        let mut tampered = t.clone();
        tampered.insert(t.find('.').unwrap() + 2, 'x');
        assert_eq!(verify(b"k1", &tampered, 150), None);
        assert_eq!(verify(b"k1", "a.b.c", 150), None);
    }
}
