//! JSON dictionaries, which rtpengine accepts instead of bencode (and then answers in JSON).
//!
//! JSON has no byte strings, so non-UTF-8 strings cannot be sent this way; numbers that
//! are not integers and booleans travel as their text, which is how rtpengine reads them.

use crate::bencode::{Dict, Value};
use serde_json::{Map, Value as Json};
use std::borrow::Cow;
use std::convert::Infallible;

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The cause in the message only, as [`crate::Error::Io`]'s.
    #[error("invalid JSON: {0}")]
    Syntax(serde_json::Error),
    #[error("JSON message is not an object")]
    NotObject,
    #[error("JSON null is not an ng value")]
    Null,
    #[error("string is not UTF-8 and cannot be sent as JSON")]
    NotUtf8,
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        JsonError::Syntax(e)
    }
}

pub fn decode_dict(input: &[u8]) -> Result<Dict<'static>, JsonError> {
    match from_json(serde_json::from_slice(input)?)? {
        Value::Dict(d) => Ok(d),
        _ => Err(JsonError::NotObject),
    }
}

pub fn encode_dict(dict: &Dict<'_>) -> Result<Vec<u8>, JsonError> {
    Ok(serde_json::to_vec(&dict_to_json(dict)?)?)
}

pub fn dict_to_json(dict: &Dict<'_>) -> Result<Json, JsonError> {
    dict_with(dict, utf8)
}

pub fn to_json(value: &Value<'_>) -> Result<Json, JsonError> {
    value_with(value, utf8)
}

/// For showing a reply rather than sending it: a string that is not UTF-8 (a binary
/// call-id) gets U+FFFD in place of its bad bytes instead of failing the whole reply.
pub fn dict_to_json_lossy(dict: &Dict<'_>) -> Json {
    let Ok(json) = dict_with(dict, |b| {
        Ok::<_, Infallible>(String::from_utf8_lossy(b).into_owned())
    });
    json
}

fn utf8(b: &[u8]) -> Result<String, JsonError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| JsonError::NotUtf8)
}

/// How byte strings become JSON strings.
type Text<E> = fn(&[u8]) -> Result<String, E>;

fn dict_with<E>(dict: &Dict<'_>, text: Text<E>) -> Result<Json, E> {
    let mut map = Map::with_capacity(dict.len());
    for (k, v) in dict.iter() {
        map.insert(text(k)?, value_with(v, text)?);
    }
    Ok(Json::Object(map))
}

fn value_with<E>(value: &Value<'_>, text: Text<E>) -> Result<Json, E> {
    Ok(match value {
        Value::Int(i) => Json::from(*i),
        Value::Bytes(b) => Json::String(text(b)?),
        Value::List(l) => Json::Array(
            l.iter()
                .map(|v| value_with(v, text))
                .collect::<Result<_, _>>()?,
        ),
        Value::Dict(d) => dict_with(d, text)?,
    })
}

pub fn from_json(json: Json) -> Result<Value<'static>, JsonError> {
    Ok(match json {
        Json::Null => return Err(JsonError::Null),
        Json::Bool(b) => Value::from(b.to_string()),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::from(n.to_string()),
        },
        Json::String(s) => Value::from(s),
        Json::Array(a) => Value::List(a.into_iter().map(from_json).collect::<Result<_, _>>()?),
        Json::Object(o) => {
            let mut d = Dict::new();
            // serde_json's map has no duplicate keys left.
            for (k, v) in o {
                d.push(Cow::Owned(k.into_bytes()), from_json(v)?);
            }
            Value::Dict(d)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_types() {
        let d = decode_dict(br#"{"command":"offer","TOS":184,"flags":["trust address"]}"#).unwrap();
        assert_eq!(d.get_str("command"), Some("offer"));
        assert_eq!(d.get_int("TOS"), Some(184));
        let back = encode_dict(&d).unwrap();
        assert_eq!(decode_dict(&back).unwrap(), d);
    }

    /// A hostile peer's reply of many keys (16 MiB fit over TCP or HTTP) decodes in linear
    /// time: checking each key against all earlier ones took 13 s for 100 000 keys.
    #[test]
    fn many_keys_decode_in_linear_time() {
        let body: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":{i}")).collect();
        let json = format!("{{{}}}", body.join(","));
        let started = std::time::Instant::now();
        let d = decode_dict(json.as_bytes()).unwrap();
        assert_eq!(d.len(), 50_000);
        assert_eq!(d.get_int("k49999"), Some(49_999));
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn non_utf8_is_an_error_not_a_panic() {
        let mut d = Dict::new();
        d.insert("sdp", &b"\xff\xfe"[..]);
        assert!(matches!(encode_dict(&d), Err(JsonError::NotUtf8)));
        assert_eq!(dict_to_json_lossy(&d)["sdp"], "\u{fffd}\u{fffd}");
    }
}
