//! ng message framing: `<cookie> <SP> <dictionary>`, the dictionary in bencode or JSON.

use crate::bencode::{self, Dict};
use crate::error::Error;
use crate::json;

/// How a dictionary is written; rtpengine answers in the format it was asked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Bencode,
    Json,
}

impl Format {
    /// rtpengine decides by the first byte of the body, and so do we.
    pub fn detect(body: &[u8]) -> Option<Format> {
        match body.first() {
            Some(b'd') => Some(Format::Bencode),
            Some(b'{') => Some(Format::Json),
            _ => None,
        }
    }

    pub fn encode(self, dict: &Dict<'_>) -> Result<Vec<u8>, Error> {
        match self {
            Format::Bencode => Ok(bencode::encode_dict(dict)),
            Format::Json => Ok(json::encode_dict(dict)?),
        }
    }
}

/// Splits a message into cookie and body at the first space.
pub fn split(message: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let at = message
        .iter()
        .position(|&b| b == b' ')
        .ok_or(Error::Frame("no space after the cookie"))?;
    if at == 0 {
        return Err(Error::Frame("empty cookie"));
    }
    Ok((&message[..at], &message[at + 1..]))
}

pub fn frame(cookie: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 1 + body.len());
    out.extend_from_slice(cookie);
    out.push(b' ');
    out.extend_from_slice(body);
    out
}

/// Decodes a body in whichever format it is in. Bencode borrows from `body`.
pub fn parse_body(body: &[u8]) -> Result<Dict<'_>, Error> {
    match Format::detect(body) {
        Some(Format::Bencode) => Ok(bencode::decode_dict(body)?),
        Some(Format::Json) => Ok(json::decode_dict(body)?),
        None => Err(Error::Frame(
            "body is neither a bencode nor a JSON dictionary",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_first_space_only() {
        let (c, b) = split(b"5323_1 d3:sdp3:a be").unwrap();
        assert_eq!(c, b"5323_1");
        assert_eq!(b, b"d3:sdp3:a be");
        assert!(split(b"nospace").is_err());
        assert!(split(b" d4:pinge").is_err());
    }

    #[test]
    fn both_formats_parse_to_the_same_dict() {
        let a = parse_body(b"d7:command4:pinge").unwrap();
        let b = parse_body(br#"{"command":"ping"}"#).unwrap();
        assert_eq!(a, b);
        assert!(parse_body(b"ping").is_err());
    }
}
